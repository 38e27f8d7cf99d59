//! The function tables of both dialects: names, arities, argument positions, and the
//! checks done once at parse time.

use std::sync::Arc;

use crate::ast::{Call, Expr, Position, Precomputed};
use crate::parse::edit_distance;
use crate::Dialect;

macro_rules! funcs {
    ($($v:ident),* $(,)?) => {
        /// Every function either dialect knows. Same-named functions whose arguments differ
        /// between the dialects (`Join`, `Switch`, `Replace`, `FormatDateTime`) are separate.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[allow(missing_docs)]
        pub enum Func { $($v),* }
    };
}

funcs!(
    Append,
    AppRoleAssignments,
    AppRoleAssignmentsComplex,
    AssertiveAppRoleAssignmentsComplex,
    BitAnd,
    BitOr,
    CBool,
    CDate,
    CGuid,
    CNum,
    CRef,
    CStr,
    Coalesce,
    Contains,
    ConvertFromBase64,
    ConvertFromUtf8Hex,
    ConvertToBase64,
    ConvertToUtf8Hex,
    Count,
    DateAdd,
    DateDiff,
    DateFromNum,
    DefaultDomain,
    DnComponent,
    DnComponentRev,
    Error,
    EscapeDnComponent,
    FormatDateTime,
    FormatDateTimeProv,
    Guid,
    IgnoreFlowIfNullOrEmpty,
    Iif,
    ImportedValue,
    InStr,
    InStrRev,
    IsBitSet,
    IsDate,
    IsEmpty,
    IsGuid,
    IsNull,
    IsNullOrEmpty,
    IsNumeric,
    IsPresent,
    IsString,
    Item,
    ItemOrNull,
    Join,
    JoinProv,
    LCase,
    Left,
    Len,
    LTrim,
    Mid,
    NormalizeDiacritics,
    Not,
    Now,
    NumFromDate,
    PadLeft,
    PadRight,
    PCase,
    RandomNum,
    RandomString,
    Redact,
    RemoveDuplicates,
    Replace,
    ReplaceProv,
    ReplaceChars,
    Right,
    RTrim,
    Select,
    SelectUniqueValue,
    SingleAppRoleAssignment,
    Split,
    StringFromGuid,
    StringFromSid,
    StripSpaces,
    Switch,
    SwitchProv,
    ToLower,
    ToUpper,
    Trim,
    UCase,
    ValueCount,
    Where,
    With,
    Word,
    CertExtensionOids,
    CertFormat,
    CertFriendlyName,
    CertHashString,
    CertIssuer,
    CertIssuerDn,
    CertIssuerOid,
    CertKeyAlgorithm,
    CertKeyAlgorithmParams,
    CertNameInfo,
    CertNotAfter,
    CertNotBefore,
    CertPublicKeyOid,
    CertPublicKeyParametersOid,
    CertSerialNumber,
    CertSignatureAlgorithmOid,
    CertSubject,
    CertSubjectNameDn,
    CertSubjectNameOid,
    CertThumbprint,
    CertVersion,
    IsCert,
);

/// One entry of a dialect's function table.
#[derive(Debug, Clone, Copy)]
pub struct Signature {
    /// The name as written (case-sensitive).
    pub name: &'static str,
    /// The function.
    pub func: Func,
    /// Fewest arguments.
    pub min: usize,
    /// Most arguments (`usize::MAX` for variadic).
    pub max: usize,
}

const MANY: usize = usize::MAX;

const fn sig(name: &'static str, func: Func, min: usize, max: usize) -> Signature {
    Signature {
        name,
        func,
        min,
        max,
    }
}

/// Entra Connect Sync's functions (Functions Reference, plus `ImportedValue`,
/// `ValueCount`, `With`, `ItemOrNull`, `RandomNum`).
pub static AADCONNECT: &[Signature] = &[
    sig("BitAnd", Func::BitAnd, 2, 2),
    sig("BitOr", Func::BitOr, 2, 2),
    sig("CBool", Func::CBool, 1, 1),
    sig("CDate", Func::CDate, 1, 1),
    sig("CGuid", Func::CGuid, 1, 1),
    sig("CNum", Func::CNum, 1, 1),
    sig("CRef", Func::CRef, 1, 1),
    sig("CStr", Func::CStr, 1, 1),
    sig("CertExtensionOids", Func::CertExtensionOids, 1, 1),
    sig("CertFormat", Func::CertFormat, 1, 1),
    sig("CertFriendlyName", Func::CertFriendlyName, 1, 1),
    sig("CertHashString", Func::CertHashString, 1, 1),
    sig("CertIssuer", Func::CertIssuer, 1, 1),
    sig("CertIssuerDN", Func::CertIssuerDn, 1, 1),
    sig("CertIssuerOid", Func::CertIssuerOid, 1, 1),
    sig("CertKeyAlgorithm", Func::CertKeyAlgorithm, 1, 1),
    sig("CertKeyAlgorithmParams", Func::CertKeyAlgorithmParams, 1, 1),
    sig("CertNameInfo", Func::CertNameInfo, 3, 3),
    sig("CertNotAfter", Func::CertNotAfter, 1, 1),
    sig("CertNotBefore", Func::CertNotBefore, 1, 1),
    sig("CertPublicKeyOid", Func::CertPublicKeyOid, 1, 1),
    sig(
        "CertPublicKeyParametersOid",
        Func::CertPublicKeyParametersOid,
        1,
        1,
    ),
    sig("CertSerialNumber", Func::CertSerialNumber, 1, 1),
    sig(
        "CertSignatureAlgorithmOid",
        Func::CertSignatureAlgorithmOid,
        1,
        1,
    ),
    sig("CertSubject", Func::CertSubject, 1, 1),
    sig("CertSubjectNameDN", Func::CertSubjectNameDn, 1, 1),
    sig("CertSubjectNameOid", Func::CertSubjectNameOid, 1, 1),
    sig("CertThumbprint", Func::CertThumbprint, 1, 1),
    sig("CertVersion", Func::CertVersion, 1, 1),
    sig("Contains", Func::Contains, 2, 3),
    sig("ConvertFromBase64", Func::ConvertFromBase64, 1, 2),
    sig("ConvertFromUTF8Hex", Func::ConvertFromUtf8Hex, 1, 1),
    sig("ConvertToBase64", Func::ConvertToBase64, 1, 1),
    sig("ConvertToUTF8Hex", Func::ConvertToUtf8Hex, 1, 1),
    sig("Count", Func::Count, 1, 1),
    sig("DateAdd", Func::DateAdd, 3, 3),
    sig("DateFromNum", Func::DateFromNum, 1, 1),
    sig("DNComponent", Func::DnComponent, 2, 2),
    sig("DNComponentRev", Func::DnComponentRev, 2, 3),
    sig("Error", Func::Error, 1, 1),
    sig("EscapeDNComponent", Func::EscapeDnComponent, 1, 1),
    sig("FormatDateTime", Func::FormatDateTime, 2, 2),
    sig("Guid", Func::Guid, 0, 0),
    sig("IIF", Func::Iif, 3, 3),
    sig("ImportedValue", Func::ImportedValue, 1, 1),
    sig("InStr", Func::InStr, 2, 4),
    sig("InStrRev", Func::InStrRev, 2, 4),
    sig("IsBitSet", Func::IsBitSet, 2, 2),
    sig("IsCert", Func::IsCert, 1, 1),
    sig("IsDate", Func::IsDate, 1, 1),
    sig("IsEmpty", Func::IsEmpty, 1, 1),
    sig("IsGuid", Func::IsGuid, 1, 1),
    sig("IsNull", Func::IsNull, 1, 1),
    sig("IsNullOrEmpty", Func::IsNullOrEmpty, 1, 1),
    sig("IsNumeric", Func::IsNumeric, 1, 1),
    sig("IsPresent", Func::IsPresent, 1, 1),
    sig("IsString", Func::IsString, 1, 1),
    sig("Item", Func::Item, 2, 2),
    sig("ItemOrNull", Func::ItemOrNull, 2, 2),
    sig("Join", Func::Join, 1, 2),
    sig("LCase", Func::LCase, 1, 1),
    sig("Left", Func::Left, 2, 2),
    sig("Len", Func::Len, 1, 1),
    sig("LTrim", Func::LTrim, 1, 1),
    // Documented with three parameters, but Microsoft's own Item example calls it with two
    // (expressions.md §6 item 4): two means "to the end".
    sig("Mid", Func::Mid, 2, 3),
    sig("Now", Func::Now, 0, 0),
    sig("NumFromDate", Func::NumFromDate, 1, 1),
    sig("PadLeft", Func::PadLeft, 3, 3),
    sig("PadRight", Func::PadRight, 3, 3),
    sig("PCase", Func::PCase, 1, 1),
    sig("RandomNum", Func::RandomNum, 2, 2),
    sig("RemoveDuplicates", Func::RemoveDuplicates, 1, 1),
    sig("Replace", Func::Replace, 3, 3),
    sig("ReplaceChars", Func::ReplaceChars, 2, 2),
    sig("Right", Func::Right, 2, 2),
    sig("RTrim", Func::RTrim, 1, 1),
    sig("Select", Func::Select, 3, 3),
    sig("Split", Func::Split, 2, 3),
    sig("StringFromGuid", Func::StringFromGuid, 1, 1),
    sig("StringFromSid", Func::StringFromSid, 1, 1),
    sig("Switch", Func::Switch, 2, MANY),
    sig("Trim", Func::Trim, 1, 1),
    sig("UCase", Func::UCase, 1, 1),
    sig("ValueCount", Func::ValueCount, 1, 1),
    sig("Where", Func::Where, 3, 3),
    sig("With", Func::With, 3, 3),
    sig("Word", Func::Word, 3, 3),
];

/// The Entra provisioning service's functions (app provisioning reference, plus the
/// functions only the Cloud Sync reference lists).
pub static PROVISIONING: &[Signature] = &[
    sig("Append", Func::Append, 2, 2),
    sig("AppRoleAssignments", Func::AppRoleAssignments, 1, 1),
    sig(
        "AppRoleAssignmentsComplex",
        Func::AppRoleAssignmentsComplex,
        1,
        1,
    ),
    sig(
        "AssertiveAppRoleAssignmentsComplex",
        Func::AssertiveAppRoleAssignmentsComplex,
        1,
        1,
    ),
    sig("BitAnd", Func::BitAnd, 2, 2),
    sig("CBool", Func::CBool, 1, 1),
    sig("CDate", Func::CDate, 1, 1),
    sig("Coalesce", Func::Coalesce, 1, MANY),
    sig("ConvertFromBase64", Func::ConvertFromBase64, 1, 2),
    sig("ConvertToBase64", Func::ConvertToBase64, 1, 1),
    sig("ConvertToUTF8Hex", Func::ConvertToUtf8Hex, 1, 1),
    sig("Count", Func::Count, 1, 1),
    sig("CStr", Func::CStr, 1, 1),
    sig("DateAdd", Func::DateAdd, 3, 3),
    sig("DateDiff", Func::DateDiff, 3, 3),
    sig("DateFromNum", Func::DateFromNum, 1, 1),
    sig("DefaultDomain", Func::DefaultDomain, 0, 0),
    sig("DNComponent", Func::DnComponent, 2, 2),
    sig("Error", Func::Error, 1, 1),
    // Cloud Sync documents (source, inputFormat, outputFormat); app provisioning adds
    // dateTimeStyles as the second argument. The arity tells them apart.
    sig("FormatDateTime", Func::FormatDateTimeProv, 3, 4),
    sig("Guid", Func::Guid, 0, 0),
    sig(
        "IgnoreFlowIfNullOrEmpty",
        Func::IgnoreFlowIfNullOrEmpty,
        1,
        1,
    ),
    sig("IIF", Func::Iif, 3, 3),
    sig("InStr", Func::InStr, 2, 4),
    sig("IsNull", Func::IsNull, 1, 1),
    sig("IsNullOrEmpty", Func::IsNullOrEmpty, 1, 1),
    sig("IsPresent", Func::IsPresent, 1, 1),
    sig("IsString", Func::IsString, 1, 1),
    sig("Item", Func::Item, 2, 2),
    sig("Join", Func::JoinProv, 1, MANY),
    sig("Left", Func::Left, 2, 2),
    // Microsoft's Cloud Sync reference copies Connect examples that call Mid with two
    // arguments and use CRef and Contains; they are accepted here too.
    sig("Mid", Func::Mid, 2, 3),
    sig("CRef", Func::CRef, 1, 1),
    sig("Contains", Func::Contains, 2, 3),
    sig("NormalizeDiacritics", Func::NormalizeDiacritics, 1, 1),
    sig("Not", Func::Not, 1, 1),
    sig("Now", Func::Now, 0, 0),
    sig("NumFromDate", Func::NumFromDate, 1, 1),
    sig("PCase", Func::PCase, 1, 2),
    sig("RandomString", Func::RandomString, 5, 6),
    sig("Redact", Func::Redact, 1, 1),
    sig("RemoveDuplicates", Func::RemoveDuplicates, 1, 1),
    sig("Replace", Func::ReplaceProv, 3, 7),
    sig("SelectUniqueValue", Func::SelectUniqueValue, 2, MANY),
    sig(
        "SingleAppRoleAssignment",
        Func::SingleAppRoleAssignment,
        1,
        1,
    ),
    sig("Split", Func::Split, 2, 2),
    sig("StringFromSid", Func::StringFromSid, 1, 1),
    sig("StringFromSID", Func::StringFromSid, 1, 1),
    sig("StripSpaces", Func::StripSpaces, 1, 1),
    sig("Switch", Func::SwitchProv, 2, MANY),
    sig("ToLower", Func::ToLower, 1, 2),
    sig("ToUpper", Func::ToUpper, 1, 2),
    sig("Trim", Func::Trim, 1, 1),
    sig("Word", Func::Word, 3, 3),
];

/// The function table of a dialect.
pub fn table(dialect: Dialect) -> &'static [Signature] {
    match dialect {
        Dialect::AadConnect => AADCONNECT,
        Dialect::Provisioning => PROVISIONING,
    }
}

/// Looks up a function by its exact (case-sensitive) name.
pub fn lookup(dialect: Dialect, name: &str) -> Option<&'static Signature> {
    table(dialect).iter().find(|s| s.name == name)
}

/// The name a function has in `dialect` (for messages and printing).
pub fn name_of(dialect: Dialect, func: Func) -> &'static str {
    table(dialect)
        .iter()
        .chain(table(dialect.other()))
        .find(|s| s.func == func)
        .map_or("?", |s| s.name)
}

/// Functions of one dialect that admins paste into the other, and what to write instead.
const EQUIVALENTS: &[(&str, Dialect, &str)] = &[
    ("ToLower", Dialect::AadConnect, "LCase(...)"),
    ("ToUpper", Dialect::AadConnect, "UCase(...)"),
    (
        "Append",
        Dialect::AadConnect,
        "the & operator: [a] & \"suffix\"",
    ),
    (
        "Coalesce",
        Dialect::AadConnect,
        "IIF(IsPresent([a]), [a], [b])",
    ),
    (
        "Not",
        Dialect::AadConnect,
        "a comparison with False: IsPresent([a]) = False",
    ),
    (
        "StripSpaces",
        Dialect::AadConnect,
        "Replace([a], \" \", \"\")",
    ),
    ("LCase", Dialect::Provisioning, "ToLower(...)"),
    ("UCase", Dialect::Provisioning, "ToUpper(...)"),
    (
        "Right",
        Dialect::Provisioning,
        "Mid(...) or Replace with a regex",
    ),
    ("InStrRev", Dialect::Provisioning, "Replace with a regex"),
    (
        "EndsWith",
        Dialect::AadConnect,
        "Right(LCase([a]), Len(\"@suffix\")) = \"@suffix\", or the ENDSWITH scoping operator",
    ),
    (
        "StartsWith",
        Dialect::AadConnect,
        "Left([a], Len(\"prefix\")) = \"prefix\", or the STARTSWITH scoping operator",
    ),
    (
        "EndsWith",
        Dialect::Provisioning,
        "the ENDS_WITH scoping operator, or Replace with a regex",
    ),
];

/// A "did you mean" for an unknown function name: a wrong case, a near miss, or a
/// function of the other dialect.
pub fn suggest(dialect: Dialect, name: &str) -> Option<String> {
    let t = table(dialect);
    if let Some(s) = t.iter().find(|s| s.name.eq_ignore_ascii_case(name)) {
        return Some(format!(
            "function names are case-sensitive: did you mean '{}'?",
            s.name
        ));
    }
    if let Some((_, _, instead)) = EQUIVALENTS
        .iter()
        .find(|(n, d, _)| n.eq_ignore_ascii_case(name) && *d == dialect)
    {
        return Some(format!(
            "'{name}' is not a {dialect} function; write {instead}"
        ));
    }
    if let Some(s) = lookup(dialect.other(), name) {
        return Some(format!(
            "'{}' belongs to the {} dialect",
            s.name,
            dialect.other()
        ));
    }
    let best = t
        .iter()
        .map(|s| {
            (
                edit_distance(&s.name.to_ascii_lowercase(), &name.to_ascii_lowercase()),
                s.name,
            )
        })
        .min();
    if let Some((d, n)) = best {
        if d <= 2.max(name.len() / 4) {
            return Some(format!("did you mean '{n}'?"));
        }
    }
    None
}

impl Func {
    /// Whether the function's first argument is an attribute *name* in quotes
    /// (`ImportedValue("proxyAddresses")`, `ValueCount("member")`).
    pub fn takes_attribute_name(self) -> bool {
        matches!(self, Func::ImportedValue | Func::ValueCount)
    }

    /// Functions whose result is different every time (kept out of constant folding and
    /// flagged in `rules explain`).
    pub fn is_volatile(self) -> bool {
        matches!(
            self,
            Func::Guid | Func::Now | Func::RandomNum | Func::RandomString
        )
    }

    /// How argument `index` is used, for per-value lifting of multi-valued attributes.
    pub fn position(self, index: usize) -> ArgPosition {
        use ArgPosition::*;
        match self {
            Func::Iif => {
                if index == 0 {
                    Scalar
                } else {
                    Passthrough
                }
            }
            Func::Switch => {
                if index % 2 == 0 {
                    Scalar
                } else {
                    Passthrough
                }
            }
            Func::SwitchProv => {
                if index == 0 {
                    Scalar
                } else {
                    Passthrough
                }
            }
            Func::Coalesce
            | Func::Redact
            | Func::IgnoreFlowIfNullOrEmpty
            | Func::SelectUniqueValue => Passthrough,
            Func::With => {
                if index == 1 {
                    Whole
                } else {
                    Passthrough
                }
            }
            Func::Select | Func::Where => {
                if index == 1 {
                    Whole
                } else {
                    Scalar
                }
            }
            Func::Count
            | Func::Item
            | Func::ItemOrNull
            | Func::RemoveDuplicates
            | Func::Contains
            | Func::AppRoleAssignments
            | Func::AppRoleAssignmentsComplex
            | Func::AssertiveAppRoleAssignmentsComplex
            | Func::SingleAppRoleAssignment => {
                if index == 0 {
                    Whole
                } else {
                    Scalar
                }
            }
            Func::Join => {
                if index == 0 {
                    Whole
                } else {
                    Scalar
                }
            }
            Func::JoinProv => {
                if index == 0 {
                    Scalar
                } else {
                    Whole
                }
            }
            Func::IsNull
            | Func::IsNullOrEmpty
            | Func::IsPresent
            | Func::IsEmpty
            | Func::IsString
            | Func::IsDate
            | Func::IsNumeric
            | Func::IsGuid
            | Func::IsCert => Whole,
            _ => Scalar,
        }
    }
}

/// How a function uses one of its arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgPosition {
    /// Expects one value; multi-valued input runs the function per value.
    Scalar,
    /// Hands the value on unchanged.
    Passthrough,
    /// Consumes the whole set of values.
    Whole,
}

impl ArgPosition {
    /// The position of an argument, given the position of the call itself.
    pub fn within(self, parent: Position) -> Position {
        match self {
            ArgPosition::Scalar => Position::Scalar,
            ArgPosition::Whole => Position::Whole,
            ArgPosition::Passthrough => parent,
        }
    }
}

fn literal(arg: Option<&Option<Expr>>) -> Option<&str> {
    match arg {
        Some(Some(Expr::Str(s))) => Some(s),
        _ => None,
    }
}

/// Arity and static checks done at parse time. Returns a message and an optional help.
pub(crate) fn check_call(
    dialect: Dialect,
    sig: &Signature,
    call: &Call,
) -> Result<(), (String, Option<String>)> {
    let n = call.args.len();
    if n < sig.min || n > sig.max {
        let expected = match (sig.min, sig.max) {
            (a, b) if a == b => format!("{a}"),
            (a, MANY) => format!("at least {a}"),
            (a, b) => format!("{a} to {b}"),
        };
        let plural = if sig.max == 1 && sig.min == 1 {
            ""
        } else {
            "s"
        };
        return Err((
            format!("{} takes {expected} argument{plural}, got {n}", sig.name),
            Some(usage(dialect, sig.func).to_string()),
        ));
    }
    let name = sig.name;
    match sig.func {
        Func::Switch if n % 2 != 0 => {
            return Err((
                format!("{name} takes condition/value pairs, but got {n} arguments"),
                Some("write Switch(condition1, value1, condition2, value2, ...); add True, <default> as the last pair for a default".into()),
            ));
        }
        Func::SwitchProv if n % 2 != 0 => {
            return Err((
                format!("{name} takes a source, a default and key/value pairs, but got {n} arguments"),
                Some("write Switch([source], \"default\", \"key1\", \"value1\", ...); leave the default empty with ', ,'".into()),
            ));
        }
        Func::Select | Func::Where | Func::With
            if !matches!(call.args.first(), Some(Some(Expr::Var(_)))) =>
        {
            return Err((
                format!("the first argument of {name} must be a variable such as $item"),
                Some(usage(dialect, sig.func).to_string()),
            ));
        }
        Func::ImportedValue | Func::ValueCount if literal(call.args.first()).is_none() => {
            return Err((
                format!(
                    "{name} takes the attribute name as a string, e.g. {name}(\"proxyAddresses\")"
                ),
                None,
            ));
        }
        _ => {}
    }
    Ok(())
}

/// Work hoisted to compile time: literal regexes and ReplaceChars tables are checked and
/// built once.
pub(crate) fn precompute(dialect: Dialect, mut call: Call) -> Result<Call, String> {
    match call.func {
        Func::ReplaceChars => {
            if let Some(pattern) = literal(call.args.get(1)) {
                let table = crate::text::parse_replace_chars_pattern(pattern)
                    .map_err(|e| format!("ReplaceChars: {e}"))?;
                call.cache = Some(Arc::new(Precomputed::CharTable(table)));
            }
        }
        Func::InStr if call.args.len() == 2 => {
            if let Some(needle) = literal(call.args.get(1)) {
                let finder = memchr::memmem::Finder::new(needle.as_bytes()).into_owned();
                call.cache = Some(Arc::new(Precomputed::Finder(Box::new(finder))));
            }
        }
        Func::ReplaceProv => {
            if let Some(pattern) = literal(call.args.get(2)) {
                let re = crate::text::dotnet_regex(pattern)
                    .map_err(|e| format!("Replace: invalid regexPattern: {e}"))?;
                call.cache = Some(Arc::new(Precomputed::Regex(re)));
            }
        }
        _ => {}
    }
    let _ = dialect;
    Ok(call)
}

/// A one-line usage reminder for arity errors.
pub fn usage(dialect: Dialect, func: Func) -> &'static str {
    match (dialect, func) {
        (_, Func::Iif) => "IIF(condition, valueIfTrue, valueIfFalse)",
        (_, Func::Switch) => "Switch(condition1, value1, condition2, value2, ...)",
        (_, Func::SwitchProv) => "Switch([source], defaultValue, key1, value1, key2, value2, ...)",
        (_, Func::Join) => "Join([multiValuedAttribute]) or Join([multiValuedAttribute], \"delimiter\")",
        (_, Func::JoinProv) => "Join(separator, source1, source2, ...)",
        (_, Func::ReplaceProv) => "Replace(source, oldValue, regexPattern, regexGroupName, replacementValue, replacementAttributeName, template)",
        (_, Func::Replace) => "Replace(string, oldValue, newValue)",
        (_, Func::FormatDateTime) => "FormatDateTime(date, \"format\")",
        (_, Func::FormatDateTimeProv) => "FormatDateTime(source, [dateTimeStyles], inputFormat, outputFormat)",
        (_, Func::Mid) => "Mid(string, start, length)",
        (_, Func::Left) => "Left(string, numChars)",
        (_, Func::Right) => "Right(string, numChars)",
        (_, Func::Word) => "Word(string, wordNumber, delimiters)",
        (_, Func::InStr) => "InStr(string, search[, start[, vbTextCompare|vbBinaryCompare]])",
        (_, Func::InStrRev) => "InStrRev(string, search[, start[, vbTextCompare|vbBinaryCompare]])",
        (_, Func::Select) => "Select($item, [multiValuedAttribute], expression using $item)",
        (_, Func::Where) => "Where($item, [multiValuedAttribute], condition using $item)",
        (_, Func::With) => "With($name, subExpression, expression using $name)",
        (_, Func::DateAdd) => "DateAdd(interval, number, date)",
        (_, Func::DateDiff) => "DateDiff(interval, date1, date2)",
        (_, Func::Split) => "Split(string, delimiter)",
        (_, Func::Item) => "Item([multiValuedAttribute], index)",
        (_, Func::Contains) => "Contains([multiValuedAttribute], search[, CaseInsensitive])",
        (_, Func::PadLeft) => "PadLeft(string, length, padCharacter)",
        (_, Func::PadRight) => "PadRight(string, length, padCharacter)",
        (_, Func::RandomString) => "RandomString(length, minNumbers, minSpecial, minCapital, minLower[, charactersToAvoid])",
        (_, Func::Coalesce) => "Coalesce(source1, source2, ..., defaultValue)",
        (_, Func::Append) => "Append(source, suffix)",
        (_, Func::DnComponentRev) => "DNComponentRev(dn, n[, \"DC\"])",
        (_, Func::ConvertFromBase64) => "ConvertFromBase64(string[, UTF8|ASCII|Unicode])",
        (_, Func::CertNameInfo) => "CertNameInfo(certificate, x509NameType, includesIssuerName)",
        (_, Func::SelectUniqueValue) => "SelectUniqueValue(candidate1, candidate2, ...)",
        (_, Func::ToLower | Func::ToUpper) => "ToLower(source[, culture])",
        (_, Func::PCase) => "PCase(source[, wordSeparators])",
        (_, f) => {
            if f.is_volatile() { "Name()" } else { "Name(value)" }
        }
    }
}
