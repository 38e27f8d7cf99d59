//! The functions themselves. Special forms (IIF, Switch, Select, ...) evaluate their own
//! arguments lazily; every other function gets its arguments evaluated and, when one that
//! expects a single value receives several, runs once per value.

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::Utc;
use smallvec::SmallVec;

use crate::ast::{Call, Expr, Precomputed};
use crate::eval::{fail, parse_int, EvalError, Evaluator, Res, Stop};
use crate::functions::{ArgPosition, Func};
use crate::value::Value;
use crate::{datetime, text, Dialect};

pub(crate) type Args<'a> = SmallVec<[Value<'a>; 4]>;

/// The longest text a function may build from a length argument (PadLeft, PadRight):
/// far beyond any directory attribute, small enough that a typo cannot exhaust memory.
const MAX_BUILT_TEXT: i64 = 1 << 20;

pub(crate) fn call<'a>(ev: &mut Evaluator<'a>, call: &'a Call) -> Res<'a> {
    let name = call.name;
    match call.func {
        Func::Iif => {
            let cond = eval_arg(ev, call, 0)?;
            let branch = if ev.truth(&cond, "IIF's condition")? {
                1
            } else {
                2
            };
            eval_arg(ev, call, branch)
        }
        Func::Switch => {
            // Every condition is evaluated, as documented ("Switch evaluates all
            // expressions"), so an error in any condition surfaces; only the chosen value is
            // evaluated, which is what makes `True, Error("...")` a usable default.
            let mut chosen: Option<&'a Option<Expr>> = None;
            for pair in call.args.chunks(2) {
                let cond = match &pair[0] {
                    Some(e) => ev.eval(e)?,
                    None => Value::Null,
                };
                if ev.truth(&cond, "a Switch condition")? && chosen.is_none() {
                    chosen = pair.get(1);
                }
            }
            match chosen {
                Some(Some(e)) => ev.eval(e),
                _ => Ok(Value::Null),
            }
        }
        Func::SwitchProv => {
            let source = eval_arg(ev, call, 0)?;
            // A missing or empty source matches the key "" (the documented way to handle
            // empty values).
            let source_text = match &source {
                Value::Null => Cow::Borrowed(""),
                v => ev.text(v, "Switch's source")?,
            };
            for pair in call.args[2..].chunks(2) {
                let key = match &pair[0] {
                    Some(e) => ev.eval(e)?,
                    None => Value::Null,
                };
                let key_text = match &key {
                    Value::Null => Cow::Borrowed(""),
                    v => ev.text(v, "a Switch key")?,
                };
                if key_text == source_text {
                    return match pair.get(1) {
                        Some(Some(e)) => ev.eval(e),
                        _ => Ok(Value::Null),
                    };
                }
            }
            eval_arg(ev, call, 1)
        }
        Func::Coalesce => {
            for arg in call.args.iter().flatten() {
                let v = ev.eval(arg)?;
                if !v.is_null() {
                    return Ok(v);
                }
            }
            Ok(Value::Null)
        }
        Func::IgnoreFlowIfNullOrEmpty => {
            let v = eval_arg(ev, call, 0)?;
            if v.is_null_or_empty() {
                Err(Stop::IgnoreFlow)
            } else {
                Ok(v)
            }
        }
        Func::Select | Func::Where => {
            let var = var_name(call);
            let source = eval_arg(ev, call, 1)?;
            let items = match source {
                Value::Null => return Ok(Value::Null),
                Value::Multi(v) => v,
                single => vec![single],
            };
            let body = match call.args.get(2) {
                Some(Some(e)) => e,
                _ => return Ok(Value::Null),
            };
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                if call.func == Func::Select {
                    match ev.with_var(var, item, |ev| ev.eval(body))? {
                        Value::Null => {}
                        Value::Multi(vs) => out.extend(vs),
                        v => out.push(v),
                    }
                } else {
                    let keep = ev.with_var(var, item.clone(), |ev| ev.eval(body))?;
                    if ev.truth(&keep, "Where's condition")? {
                        out.push(item);
                    }
                }
            }
            Ok(if out.is_empty() {
                Value::Null
            } else {
                Value::Multi(out)
            })
        }
        Func::With => {
            let var = var_name(call);
            let value = eval_arg(ev, call, 1)?;
            match call.args.get(2) {
                Some(Some(body)) => ev.with_var(var, value, |ev| ev.eval(body)),
                _ => Ok(Value::Null),
            }
        }
        Func::SelectUniqueValue => {
            for arg in call.args.iter().flatten() {
                let v = ev.eval(arg)?;
                if v.is_null_or_empty() {
                    continue;
                }
                let free = match (&ev.ctx.uniqueness, v.to_text(ev.dialect)) {
                    (Some(check), Some(t)) => check(&t),
                    _ => true,
                };
                if free {
                    return Ok(v);
                }
            }
            fail("SelectUniqueValue: every candidate is already taken in the target")
        }
        Func::ImportedValue | Func::ValueCount => {
            let attr = match call.args.first() {
                Some(Some(Expr::Str(s))) => s.as_ref(),
                _ => return fail(format!("{name} takes an attribute name in quotes")),
            };
            let v = ev.attribute(attr)?;
            if call.func == Func::ImportedValue {
                Ok(v)
            } else {
                Ok(Value::Num(count(&v)))
            }
        }
        Func::ReplaceProv => replace_provisioning(ev, call),
        _ => {
            let mut args: Args<'a> = SmallVec::with_capacity(call.args.len());
            for i in 0..call.args.len() {
                args.push(eval_arg(ev, call, i)?);
            }
            lifted(ev, call, name, &mut args)
        }
    }
}

fn var_name(call: &Call) -> &str {
    match call.args.first() {
        Some(Some(Expr::Var(v))) => v,
        _ => "item",
    }
}

fn eval_arg<'a>(ev: &mut Evaluator<'a>, call: &'a Call, i: usize) -> Res<'a> {
    match call.args.get(i) {
        Some(Some(e)) => match call.lifts.iter().find(|(at, _)| *at == i) {
            Some((_, names)) => ev.eval_lifted(e, names),
            None => ev.eval(e),
        },
        _ => Ok(Value::Null),
    }
}

/// Runs an eager function, once per value when a single-value argument holds several.
pub(crate) fn lifted<'a>(
    ev: &mut Evaluator<'a>,
    call: &'a Call,
    name: &'static str,
    args: &mut Args<'a>,
) -> Res<'a> {
    let multi = args.iter().enumerate().position(|(i, v)| {
        matches!(v, Value::Multi(_)) && call.func.position(i) == ArgPosition::Scalar
    });
    let Some(i) = multi else {
        return eager(ev, call, name, args);
    };
    let Value::Multi(values) = std::mem::replace(&mut args[i], Value::Null) else {
        return eager(ev, call, name, args);
    };
    let mut out = Vec::with_capacity(values.len());
    for v in values {
        let mut each = args.clone();
        each[i] = v;
        match lifted(ev, call, name, &mut each)? {
            Value::Null => {}
            Value::Multi(vs) => out.extend(vs),
            v => out.push(v),
        }
    }
    Ok(if out.is_empty() {
        Value::Null
    } else {
        Value::Multi(out)
    })
}

fn count(v: &Value<'_>) -> i64 {
    match v {
        Value::Null => 0,
        Value::Multi(vs) => vs.len() as i64,
        _ => 1,
    }
}

fn as_list<'a>(v: Value<'a>) -> Vec<Value<'a>> {
    match v {
        Value::Null => Vec::new(),
        Value::Multi(vs) => vs,
        single => vec![single],
    }
}

/// Text argument as a `Cow` that keeps borrowing from the entry where it can.
fn cow_text<'a>(ev: &Evaluator<'a>, v: Value<'a>, what: &str) -> Result<Cow<'a, str>, Stop> {
    match v {
        Value::Str(s) | Value::Ref(s) => Ok(s),
        other => Ok(Cow::Owned(ev.text(&other, what)?.into_owned())),
    }
}

/// Applies `f` to a borrowed or owned string, borrowing the result when `f` returns a
/// sub-slice of its input (Trim and friends allocate nothing on borrowed input).
fn slice_map<'a>(s: Cow<'a, str>, f: impl Fn(&str) -> &str) -> Value<'a> {
    match s {
        Cow::Borrowed(b) => Value::Str(Cow::Borrowed(f(b))),
        Cow::Owned(o) => Value::string(f(&o).to_string()),
    }
}

/// Case mapping one character to one character, as .NET's invariant culture does:
/// characters whose full mapping is several characters (`ß` → `SS`) keep their form, except
/// `İ`, whose simple lower-case mapping is `i`.
fn map_case(s: &str, upper: bool) -> String {
    if s.is_ascii() {
        return if upper {
            s.to_ascii_uppercase()
        } else {
            s.to_ascii_lowercase()
        };
    }
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let mapped: Option<char> = if upper {
            let mut m = c.to_uppercase();
            match (m.next(), m.next()) {
                (Some(x), None) => Some(x),
                _ => None,
            }
        } else if c == '\u{130}' {
            Some('i')
        } else {
            let mut m = c.to_lowercase();
            match (m.next(), m.next()) {
                (Some(x), None) => Some(x),
                _ => None,
            }
        };
        out.push(mapped.unwrap_or(c));
    }
    out
}

fn lower<'a>(s: Cow<'a, str>) -> Value<'a> {
    if s.is_ascii() && !s.bytes().any(|b| b.is_ascii_uppercase()) {
        return Value::Str(s);
    }
    Value::string(map_case(&s, false))
}

fn upper<'a>(s: Cow<'a, str>) -> Value<'a> {
    if s.is_ascii() && !s.bytes().any(|b| b.is_ascii_lowercase()) {
        return Value::Str(s);
    }
    Value::string(map_case(&s, true))
}

fn err_map<T>(name: &str, r: Result<T, String>) -> Result<T, Stop> {
    r.map_err(|e| Stop::Error(Box::new(EvalError::new(format!("{name}: {e}")))))
}

/// Characters `s` has, counted the way VB counts them (Unicode scalar values).
fn char_slice(s: &str, start: usize, len: usize) -> &str {
    let mut idx = s
        .char_indices()
        .map(|(i, _)| i)
        .chain(std::iter::once(s.len()));
    let from = idx.nth(start).unwrap_or(s.len());
    let to = if len == 0 {
        from
    } else {
        idx.nth(len - 1).unwrap_or(s.len())
    };
    &s[from..to.max(from)]
}

fn date_arg<'a>(
    ev: &Evaluator<'a>,
    v: &Value<'a>,
    name: &str,
) -> Result<chrono::DateTime<Utc>, Stop> {
    match v {
        Value::Date(d) => Ok(*d),
        Value::Num(_) => fail(format!(
            "{name} needs a date; convert FILETIME numbers with DateFromNum"
        )),
        other => {
            let t = ev.text(other, name)?;
            err_map(name, datetime::parse_date(&t))
        }
    }
}

fn date_out<'a>(ev: &Evaluator<'a>, d: chrono::DateTime<Utc>) -> Value<'a> {
    match ev.dialect {
        Dialect::AadConnect => Value::Date(d),
        Dialect::Provisioning => Value::string(datetime::format_provisioning(d)),
    }
}

static RNG_STATE: AtomicU64 = AtomicU64::new(0);

/// A small, fast, non-cryptographic generator (splitmix64) for Guid, RandomNum and
/// RandomString; seeded from the clock once per process. Passwords are not made here.
fn next_random() -> u64 {
    let mut s = RNG_STATE.load(Ordering::Relaxed);
    if s == 0 {
        s = Utc::now().timestamp_nanos_opt().unwrap_or(1) as u64 | 1;
    }
    let next = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
    RNG_STATE.store(next, Ordering::Relaxed);
    let mut z = next;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn new_guid() -> String {
    let a = next_random().to_le_bytes();
    let b = next_random().to_le_bytes();
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&a);
    bytes[8..].copy_from_slice(&b);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let h: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn compare_mode<'a>(ev: &Evaluator<'a>, v: Option<&Value<'a>>, name: &str) -> Result<bool, Stop> {
    // Returns true for text (case-insensitive) comparison.
    match v {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Num(0)) => Ok(false),
        Some(Value::Num(1)) => Ok(true),
        Some(other) => {
            let t = ev.text(other, name)?;
            match t.as_ref() {
                "vbTextCompare" | "CaseInsensitive" => Ok(true),
                "vbBinaryCompare" | "CaseSensitive" => Ok(false),
                x => fail(format!(
                    "{name}: unknown comparison {x:?}; use vbTextCompare or vbBinaryCompare"
                )),
            }
        }
    }
}

/// Where a literal needle first occurs in `s`, as InStr counts (1-based characters, 0
/// when absent).
pub(crate) fn find_position(f: &memchr::memmem::Finder<'_>, s: &str) -> i64 {
    match find_bytes(f, s.as_bytes()) {
        None => 0,
        Some(b) => {
            let prefix = &s[..b];
            1 + if prefix.is_ascii() {
                b
            } else {
                prefix.chars().count()
            } as i64
        }
    }
}

/// The byte offset of the first occurrence of the finder's needle in `hay`. Short text
/// (a UPN, a mail address) is scanned for the needle's first byte directly, which costs
/// less than setting up the finder's search.
pub(crate) fn find_bytes(f: &memchr::memmem::Finder<'_>, hay: &[u8]) -> Option<usize> {
    let needle = f.needle();
    if hay.len() >= 64 {
        return f.find(hay);
    }
    let Some((&first, rest)) = needle.split_first() else {
        return Some(0);
    };
    let last = hay.len().checked_sub(needle.len())?;
    let mut from = 0;
    while from <= last {
        let i = from + memchr::memchr(first, &hay[from..=last])?;
        if &hay[i + 1..i + needle.len()] == rest {
            return Some(i);
        }
        from = i + 1;
    }
    None
}

/// Whether `func` is one of the presence tests [`presence`] computes.
pub(crate) fn is_presence(func: Func) -> bool {
    matches!(
        func,
        Func::IsNull | Func::IsNullOrEmpty | Func::IsPresent | Func::IsEmpty
    )
}

/// IsNull, IsNullOrEmpty, IsPresent and IsEmpty of `v`; `None` for other functions.
#[inline(always)]
pub(crate) fn presence(func: Func, v: &Value<'_>) -> Option<bool> {
    Some(match func {
        Func::IsNull => v.is_null(),
        Func::IsNullOrEmpty => v.is_null_or_empty(),
        Func::IsPresent => !v.is_null_or_empty(),
        Func::IsEmpty => !v.is_null() && v.is_null_or_empty(),
        _ => return None,
    })
}

/// The one-argument functions [`unary`] implements.
pub(crate) fn is_unary(func: Func) -> bool {
    matches!(
        func,
        Func::IsNull
            | Func::IsNullOrEmpty
            | Func::IsPresent
            | Func::IsEmpty
            | Func::CBool
            | Func::CStr
            | Func::LCase
            | Func::ToLower
            | Func::UCase
            | Func::ToUpper
            | Func::Trim
            | Func::LTrim
            | Func::RTrim
            | Func::StripSpaces
            | Func::Len
            | Func::Not
    )
}

/// A one-argument function applied to one (already lifted) value. Shared by the tree
/// walk ([`eager`]) and the compiled fast path, so both compute the same thing.
pub(crate) fn unary<'a>(
    ev: &Evaluator<'a>,
    func: Func,
    name: &'static str,
    v: Value<'a>,
) -> Res<'a> {
    macro_rules! text_or_null {
        ($v:expr) => {{
            match $v {
                Value::Null => return Ok(Value::Null),
                v => cow_text(ev, v, name)?,
            }
        }};
    }
    if let Some(b) = presence(func, &v) {
        return Ok(Value::Bool(b));
    }
    match func {
        Func::CBool => Ok(Value::Bool(ev.truth(&v, name)?)),
        Func::CStr => match v {
            Value::Null => Ok(Value::Null),
            v @ Value::Str(_) => Ok(v),
            Value::Ref(r) => Ok(Value::Str(r)),
            v => Ok(Value::string(ev.text(&v, name)?.into_owned())),
        },
        Func::LCase | Func::ToLower => Ok(lower(text_or_null!(v))),
        Func::UCase | Func::ToUpper => Ok(upper(text_or_null!(v))),
        Func::Trim => Ok(slice_map(text_or_null!(v), str::trim)),
        Func::LTrim => Ok(slice_map(text_or_null!(v), str::trim_start)),
        Func::RTrim => Ok(slice_map(text_or_null!(v), str::trim_end)),
        Func::StripSpaces => {
            let s = text_or_null!(v);
            if !s.contains(' ') {
                return Ok(Value::Str(s));
            }
            Ok(Value::string(s.replace(' ', "")))
        }
        Func::Len => {
            let s = text_or_null!(v);
            Ok(Value::Num(s.chars().count() as i64))
        }
        Func::Not => {
            let t = match &v {
                Value::Bool(b) => *b,
                Value::Str(s) => s.trim().eq_ignore_ascii_case("true"),
                _ => false,
            };
            Ok(Value::Bool(!t))
        }
        _ => fail(format!(
            "{name}: internal error: not a one-argument function"
        )),
    }
}

fn eager<'a>(
    ev: &mut Evaluator<'a>,
    call: &'a Call,
    name: &'static str,
    args: &mut Args<'a>,
) -> Res<'a> {
    let mut it = args.drain(..);
    let mut next = || it.next().unwrap_or(Value::Null);
    let connect = ev.dialect == Dialect::AadConnect;
    macro_rules! text_or_null {
        ($v:expr) => {{
            match $v {
                Value::Null => return Ok(Value::Null),
                v => cow_text(ev, v, name)?,
            }
        }};
    }
    macro_rules! text_or_empty {
        ($v:expr) => {{
            match $v {
                Value::Null => return Ok(Value::str("")),
                v => cow_text(ev, v, name)?,
            }
        }};
    }
    match call.func {
        Func::Error => {
            let msg = match next() {
                Value::Null => String::new(),
                v => ev.text(&v, name)?.into_owned(),
            };
            Err(Stop::Error(Box::new(EvalError { message: msg, raised: true })))
        }
        // ---- presence and type tests
        // One-argument functions shared with the compiled fast path (ToLower and ToUpper
        // ignore their culture argument).
        Func::IsNull
        | Func::IsNullOrEmpty
        | Func::IsPresent
        | Func::IsEmpty
        | Func::CBool
        | Func::CStr
        | Func::LCase
        | Func::ToLower
        | Func::UCase
        | Func::ToUpper
        | Func::Trim
        | Func::LTrim
        | Func::RTrim
        | Func::StripSpaces
        | Func::Len
        | Func::Not => unary(ev, call.func, name, next()),
        Func::IsString => Ok(Value::Bool(matches!(
            next(),
            Value::Str(_) | Value::Num(_) | Value::Bool(_) | Value::Ref(_) | Value::Date(_)
        ))),
        Func::IsNumeric => Ok(Value::Bool(match next() {
            Value::Num(_) => true,
            Value::Str(s) => parse_int(&s).is_some(),
            _ => false,
        })),
        Func::IsDate => Ok(Value::Bool(match next() {
            Value::Date(_) => true,
            Value::Str(s) => datetime::parse_date(&s).is_ok(),
            _ => false,
        })),
        Func::IsGuid => Ok(Value::Bool(match next() {
            Value::Str(s) => text::is_guid(&s),
            _ => false,
        })),
        Func::IsBitSet => {
            let (v, f) = (next(), next());
            if v.is_null() || f.is_null() {
                return Ok(Value::Bool(false));
            }
            let (v, f) = (ev.num(&v, name)?, ev.num(&f, name)?);
            Ok(Value::Bool(f != 0 && v & f == f))
        }
        // ---- conversion
        Func::CNum => match next() {
            Value::Null => Ok(Value::Null),
            Value::Num(n) => Ok(Value::Num(n)),
            v => {
                let t = ev.text(&v, name)?;
                match parse_int(&t) {
                    Some(n) => Ok(Value::Num(n)),
                    None => fail(format!("CNum: {t:?} is not a number (check with IsNumeric first)")),
                }
            }
        },
        Func::CRef => match next() {
            Value::Null => Ok(Value::Null),
            v => Ok(Value::Ref(cow_text(ev, v, name)?)),
        },
        Func::CDate => match next() {
            Value::Null => Ok(Value::Null),
            v => {
                let d = date_arg(ev, &v, name)?;
                Ok(date_out(ev, d))
            }
        },
        Func::CGuid => {
            let s = text_or_null!(next());
            Ok(Value::Bin(Cow::Owned(err_map(name, text::guid_to_bytes(&s))?)))
        }
        Func::StringFromGuid => match next() {
            Value::Null => Ok(Value::Null),
            Value::Bin(b) => Ok(Value::string(err_map(name, text::string_from_guid(&b))?)),
            other => fail(format!("StringFromGuid needs a binary GUID, got a {} value", other.type_name())),
        },
        Func::StringFromSid => match next() {
            Value::Null => Ok(Value::Null),
            Value::Bin(b) => Ok(Value::string(err_map(name, text::string_from_sid(&b))?)),
            other => fail(format!("{name} needs a binary SID, got a {} value", other.type_name())),
        },
        Func::ConvertToBase64 => match next() {
            Value::Null => Ok(Value::Null),
            // Bytes (objectGUID for sourceAnchor, as Connect's docs do) encode as they are;
            // text encodes as UTF-16LE, as documented.
            Value::Bin(b) => {
                use base64::Engine as _;
                Ok(Value::string(base64::engine::general_purpose::STANDARD.encode(b)))
            }
            v => Ok(Value::string(text::to_base64_utf16le(&cow_text(ev, v, name)?))),
        },
        Func::ConvertFromBase64 => {
            let s = text_or_null!(next());
            let enc = match next() {
                Value::Null => text::Base64TextEncoding::Unicode,
                v => match ev.text(&v, name)?.as_ref() {
                    "Unicode" => text::Base64TextEncoding::Unicode,
                    "UTF8" => text::Base64TextEncoding::Utf8,
                    "ASCII" => text::Base64TextEncoding::Ascii,
                    other => return fail(format!("{name}: unknown encoding {other:?}; use UTF8, ASCII or Unicode")),
                },
            };
            Ok(Value::string(err_map(name, text::from_base64(&s, enc))?))
        }
        Func::ConvertToUtf8Hex => {
            let s = text_or_null!(next());
            Ok(Value::string(text::to_utf8_hex(&s)))
        }
        Func::ConvertFromUtf8Hex => {
            let s = text_or_null!(next());
            Ok(Value::string(err_map(name, text::from_utf8_hex(&s))?))
        }
        // ---- dates
        Func::Now => Ok(date_out(ev, Utc::now())),
        Func::DateFromNum => match next() {
            Value::Null => Ok(Value::Null),
            v => {
                let n = ev.num(&v, name)?;
                let d = err_map(name, datetime::filetime_to_date(n))?;
                Ok(date_out(ev, d))
            }
        },
        Func::NumFromDate => match next() {
            Value::Null => Ok(Value::Null),
            v => Ok(Value::Num(datetime::date_to_filetime(date_arg(ev, &v, name)?))),
        },
        Func::DateAdd => {
            let interval = ev.text(&next(), name)?.into_owned();
            if !connect && !datetime::provisioning_intervals_ok(&interval) {
                return fail(format!("DateAdd: interval {interval:?} is not one of yyyy, m, d, ww, h, n, s"));
            }
            let n = next();
            let d = next();
            if n.is_null() || d.is_null() {
                return Ok(Value::Null);
            }
            let n = ev.num(&n, name)?;
            let d = date_arg(ev, &d, name)?;
            let r = err_map(name, datetime::date_add(&interval, n, d))?;
            Ok(date_out(ev, r))
        }
        Func::DateDiff => {
            let interval = ev.text(&next(), name)?.into_owned();
            if !datetime::provisioning_intervals_ok(&interval) {
                return fail(format!("DateDiff: interval {interval:?} is not one of yyyy, m, d, ww, h, n, s"));
            }
            let (a, b) = (next(), next());
            if a.is_null() || b.is_null() {
                return Ok(Value::Null);
            }
            let (a, b) = (date_arg(ev, &a, name)?, date_arg(ev, &b, name)?);
            Ok(Value::Num(err_map(name, datetime::date_diff(&interval, a, b))?))
        }
        Func::FormatDateTime => {
            let d = next();
            let fmt = next();
            if d.is_null() {
                return Ok(Value::Null);
            }
            let d = date_arg(ev, &d, name)?;
            let fmt = ev.text(&fmt, name)?;
            Ok(Value::string(err_map(name, datetime::format_dotnet(d, &fmt))?))
        }
        Func::FormatDateTimeProv => {
            let all: Vec<Value<'a>> = (0..call.args.len()).map(|_| next()).collect();
            let (source, input, output) = if all.len() == 4 {
                (&all[0], &all[2], &all[3])
            } else {
                (&all[0], &all[1], &all[2])
            };
            if source.is_null() {
                return Ok(Value::Null);
            }
            let s = ev.text(source, name)?;
            let d = match input {
                Value::Null => err_map(name, datetime::parse_date(&s))?,
                f => err_map(name, datetime::parse_dotnet_exact(&s, &ev.text(f, name)?))?,
            };
            let out = ev.text(output, name)?;
            Ok(Value::string(err_map(name, datetime::format_dotnet(d, &out))?))
        }
        // ---- directory
        Func::DnComponent => {
            let dn = text_or_null!(next());
            let n = ev.num(&next(), name)?;
            Ok(Value::string(err_map(name, text::dn_component(&dn, n))?))
        }
        Func::DnComponentRev => {
            let dn = text_or_null!(next());
            let n = ev.num(&next(), name)?;
            let skip_dc = match next() {
                Value::Null => false,
                v => {
                    let o = ev.text(&v, name)?;
                    if o.eq_ignore_ascii_case("DC") {
                        true
                    } else {
                        return fail(format!("DNComponentRev: unknown option {o:?}; the only option is \"DC\""));
                    }
                }
            };
            Ok(Value::string(err_map(name, text::dn_component_rev(&dn, n, skip_dc))?))
        }
        Func::EscapeDnComponent => {
            let s = text_or_null!(next());
            Ok(Value::string(text::escape_dn_component(&s)))
        }
        // ---- numbers
        Func::BitAnd | Func::BitOr => {
            let (a, b) = (next(), next());
            if a.is_null() || b.is_null() {
                return Ok(Value::Null);
            }
            let (a, b) = (ev.num(&a, name)?, ev.num(&b, name)?);
            Ok(Value::Num(if call.func == Func::BitAnd { a & b } else { a | b }))
        }
        Func::RandomNum => {
            let (lo, hi) = (ev.num(&next(), name)?, ev.num(&next(), name)?);
            if hi < lo {
                return fail(format!("RandomNum: end {hi} is smaller than start {lo}"));
            }
            let span = (hi as i128 - lo as i128 + 1) as u128;
            Ok(Value::Num((lo as i128 + (next_random() as u128 % span) as i128) as i64))
        }
        // ---- multi-valued
        Func::Count => Ok(Value::Num(count(&next()))),
        Func::Item | Func::ItemOrNull => {
            let list = as_list(next());
            let i = next();
            let i = if i.is_null() { 0 } else { ev.num(&i, name)? };
            match usize::try_from(i).ok().filter(|&i| i >= 1 && i <= list.len()) {
                Some(i) => Ok(list.into_iter().nth(i - 1).unwrap_or(Value::Null)),
                None if call.func == Func::ItemOrNull => Ok(Value::Null),
                None => fail(format!("Item: index {i} is out of range: the attribute has {} value(s) (indexes start at 1; ItemOrNull returns NULL instead)", list.len())),
            }
        }
        Func::Contains => {
            let list = as_list(next());
            let search = next();
            let ci = compare_mode(ev, Some(&next()), name)?;
            if search.is_null() {
                return Ok(Value::Num(0));
            }
            let needle = ev.text(&search, name)?.into_owned();
            let needle_l = needle.to_lowercase();
            for (i, v) in list.iter().enumerate() {
                let hit = match v {
                    Value::Ref(r) => r.eq_ignore_ascii_case(&needle),
                    other => {
                        let t = ev.text(other, name)?;
                        if ci { t.to_lowercase().contains(&needle_l) } else { t.contains(needle.as_str()) }
                    }
                };
                if hit {
                    return Ok(Value::Num(i as i64 + 1));
                }
            }
            Ok(Value::Num(0))
        }
        Func::Join => {
            let list = next();
            let delim = match next() {
                Value::Null if call.args.len() < 2 => Cow::Borrowed(" "),
                Value::Null => Cow::Borrowed(""),
                v => Cow::Owned(ev.text(&v, name)?.into_owned()),
            };
            if list.is_null() {
                return Ok(Value::Null);
            }
            let mut out = String::new();
            for (i, v) in as_list(list).iter().enumerate() {
                if i > 0 {
                    out.push_str(&delim);
                }
                out.push_str(&ev.text(v, name)?);
            }
            Ok(Value::string(out))
        }
        Func::JoinProv => {
            let sep = match next() {
                Value::Null => String::new(),
                v => ev.text(&v, name)?.into_owned(),
            };
            let mut out = String::new();
            let mut first = true;
            for _ in 1..call.args.len() {
                for v in as_list(next()) {
                    let t = ev.text(&v, name)?;
                    if t.is_empty() {
                        continue;
                    }
                    if !first {
                        out.push_str(&sep);
                    }
                    first = false;
                    out.push_str(&t);
                }
            }
            Ok(Value::string(out))
        }
        Func::RemoveDuplicates => {
            let v = next();
            let Value::Multi(vs) = v else { return Ok(v) };
            let mut out: Vec<Value<'a>> = Vec::with_capacity(vs.len());
            for v in vs {
                if !out.contains(&v) {
                    out.push(v);
                }
            }
            Ok(Value::Multi(out))
        }
        Func::Split => {
            let s = text_or_null!(next());
            let d = ev.text(&next(), name)?.into_owned();
            let limit = match next() {
                Value::Null => None,
                v => Some(ev.num(&v, name)?),
            };
            if connect && d.chars().count() != 1 {
                return fail(format!("Split: the delimiter must be exactly one character, got {d:?}"));
            }
            if d.is_empty() {
                return Ok(Value::Multi(vec![Value::string(s.into_owned())]));
            }
            let parts: Vec<Value<'a>> = match limit {
                Some(n) if n < 1 => return fail(format!("Split: limit must be at least 1, got {n}")),
                Some(n) => s.splitn(n as usize, d.as_str()).map(|p| Value::string(p.to_string())).collect(),
                None => s.split(d.as_str()).map(|p| Value::string(p.to_string())).collect(),
            };
            Ok(Value::Multi(parts))
        }
        // ---- text
        Func::Guid => Ok(Value::string(new_guid())),
        Func::Left | Func::Right => {
            let s = text_or_empty!(next());
            let n = ev.num(&next(), name)?;
            let len = s.chars().count();
            if n < 0 || n as usize >= len {
                return Ok(Value::Str(s));
            }
            let n = n as usize;
            let start = if call.func == Func::Left { 0 } else { len - n };
            Ok(match s {
                Cow::Borrowed(b) => Value::str(char_slice(b, start, n)),
                Cow::Owned(o) => Value::string(char_slice(&o, start, n).to_string()),
            })
        }
        Func::Mid => {
            let s = text_or_empty!(next());
            let start = ev.num(&next(), name)?;
            let n = match next() {
                Value::Null => i64::MAX,
                v => ev.num(&v, name)?,
            };
            let len = s.chars().count() as i64;
            // Documented edge rules: n = 0 gives "", n < 0 the input, a start before 1 or
            // past the end the input.
            if n == 0 {
                return Ok(Value::str(""));
            }
            if n < 0 || start <= 0 || start > len {
                return Ok(Value::Str(s));
            }
            let from = (start - 1) as usize;
            let take = n.min(len - start + 1) as usize;
            Ok(match s {
                Cow::Borrowed(b) => Value::str(char_slice(b, from, take)),
                Cow::Owned(o) => Value::string(char_slice(&o, from, take).to_string()),
            })
        }
        Func::PadLeft | Func::PadRight => {
            let s = text_or_empty!(next());
            let len = ev.num(&next(), name)?;
            let pad = ev.text(&next(), name)?.into_owned();
            let mut pc = pad.chars();
            let (Some(c), None) = (pc.next(), pc.next()) else {
                return fail(format!("{name}: the padding must be exactly one character, got {pad:?}"));
            };
            let have = s.chars().count() as i64;
            if have >= len {
                return Ok(Value::Str(s));
            }
            if len > MAX_BUILT_TEXT {
                return fail(format!("{name}: length {len} is larger than partnersync builds ({MAX_BUILT_TEXT} characters)"));
            }
            let fill: String = std::iter::repeat_n(c, (len - have) as usize).collect();
            Ok(Value::string(if call.func == Func::PadLeft { fill + &s } else { s.into_owned() + &fill }))
        }
        Func::PCase => {
            let s = text_or_null!(next());
            let seps = next();
            Ok(Value::string(match (&seps, connect) {
                (_, true) => text::pcase_connect(&s),
                (Value::Null, false) => text::pcase_dotnet(&s),
                (v, false) => text::pcase_with_separators(&s, &ev.text(v, name)?),
            }))
        }
        Func::NormalizeDiacritics => {
            let s = text_or_null!(next());
            if s.is_ascii() {
                return Ok(Value::Str(s));
            }
            Ok(Value::string(text::normalize_diacritics(&s)))
        }
        Func::Word => {
            let s = text_or_empty!(next());
            let n = ev.num(&next(), name)?;
            let d = ev.text(&next(), name)?.into_owned();
            Ok(Value::string(text::word(&s, n, &d)))
        }
        Func::InStr | Func::InStrRev => {
            let s = next();
            let m = next();
            let start = next();
            let ci = compare_mode(ev, Some(&next()), name)?;
            if s.is_null() || m.is_null() {
                return Ok(Value::Num(0));
            }
            let s = ev.text(&s, name)?;
            let m = ev.text(&m, name)?;
            if let Some(pre) = &call.cache {
                if let Precomputed::Finder(f) = pre.as_ref() {
                    // Literal needle, start 1, binary compare: the common partner test.
                    if m.is_empty() {
                        return Ok(Value::Num(1));
                    }
                    return Ok(Value::Num(find_position(f, &s)));
                }
            }
            let r = if call.func == Func::InStr {
                let start = if start.is_null() { 1 } else { ev.num(&start, name)? };
                text::instr(&s, &m, start, ci)
            } else {
                let start = if start.is_null() { None } else { Some(ev.num(&start, name)?) };
                text::instr_rev(&s, &m, start, ci)
            };
            Ok(Value::Num(err_map(name, r)?))
        }
        Func::Replace => {
            let s = text_or_null!(next());
            let old = text::replace_monikers(&ev.text(&next(), name)?);
            let new = text::replace_monikers(&ev.text(&next(), name)?);
            if old.is_empty() || !s.contains(old.as_str()) {
                return Ok(Value::Str(s));
            }
            Ok(Value::string(s.replace(old.as_str(), &new)))
        }
        Func::ReplaceChars => {
            let s = text_or_null!(next());
            let table = match &call.cache {
                Some(pre) => match pre.as_ref() {
                    Precomputed::CharTable(t) => Cow::Borrowed(t),
                    _ => return fail("ReplaceChars: internal cache mismatch"),
                },
                None => {
                    let pattern = next();
                    let p = ev.text(&pattern, name)?;
                    Cow::Owned(err_map(name, text::parse_replace_chars_pattern(&p))?)
                }
            };
            Ok(Value::string(text::replace_chars(&s, &table)))
        }
        Func::Append => {
            let s = text_or_null!(next());
            let suffix = next();
            if suffix.is_null() {
                return Ok(Value::Str(s));
            }
            let suffix = ev.text(&suffix, name)?;
            Ok(Value::string(format!("{s}{suffix}")))
        }
        Func::Redact => Ok(next()),
        Func::RandomString => {
            let mut nums = [0i64; 5];
            for n in nums.iter_mut() {
                let v = next();
                *n = if v.is_null() { 0 } else { ev.num(&v, name)? };
            }
            let avoid = match next() {
                Value::Null => String::new(),
                v => ev.text(&v, name)?.into_owned(),
            };
            let mut rng = next_random;
            Ok(Value::string(err_map(
                name,
                text::random_string(nums[0], nums[1], nums[2], nums[3], nums[4], &avoid, &mut rng),
            )?))
        }
        Func::AppRoleAssignments | Func::AppRoleAssignmentsComplex | Func::AssertiveAppRoleAssignmentsComplex => Ok(next()),
        Func::SingleAppRoleAssignment => Ok(as_list(next()).into_iter().next().unwrap_or(Value::Null)),
        Func::DefaultDomain => match ev.ctx.parameters.get("DefaultDomain") {
            Some(d) => Ok(Value::str(d)),
            None => fail("DefaultDomain() needs the parameter DefaultDomain under [parameters] (the tenant's default verified domain)"),
        },
        Func::CertExtensionOids | Func::CertFormat | Func::CertFriendlyName | Func::CertHashString
        | Func::CertIssuer | Func::CertIssuerDn | Func::CertIssuerOid | Func::CertKeyAlgorithm
        | Func::CertKeyAlgorithmParams | Func::CertNameInfo | Func::CertNotAfter | Func::CertNotBefore
        | Func::CertPublicKeyOid | Func::CertPublicKeyParametersOid | Func::CertSerialNumber
        | Func::CertSignatureAlgorithmOid | Func::CertSubject | Func::CertSubjectNameDn
        | Func::CertSubjectNameOid | Func::CertThumbprint | Func::CertVersion | Func::IsCert => {
            crate::cert::evaluate(call.func, next(), next(), next())
        }
        // Special forms are handled in `call`.
        Func::Iif | Func::Switch | Func::SwitchProv | Func::Coalesce | Func::IgnoreFlowIfNullOrEmpty
        | Func::Select | Func::Where | Func::With | Func::SelectUniqueValue | Func::ImportedValue
        | Func::ValueCount | Func::ReplaceProv => fail(format!("{name}: internal error: special form evaluated eagerly")),
    }
}

/// The provisioning dialect's seven-argument Replace (expressions.md §2.5), choosing its
/// mode from which arguments are present.
fn replace_provisioning<'a>(ev: &mut Evaluator<'a>, call: &'a Call) -> Res<'a> {
    let name = "Replace";
    let source = eval_arg(ev, call, 0)?;
    let old = eval_arg(ev, call, 1)?;
    let pattern = eval_arg(ev, call, 2)?;
    let group = eval_arg(ev, call, 3)?;
    let replacement = eval_arg(ev, call, 4)?;
    let template = eval_arg(ev, call, 6)?;
    let regex = || -> Result<Cow<'a, regex::Regex>, Stop> {
        if let Some(pre) = &call.cache {
            if let Precomputed::Regex(re) = pre.as_ref() {
                return Ok(Cow::Borrowed(re));
            }
        }
        let p = ev.text(&pattern, name)?;
        Ok(Cow::Owned(err_map(name, text::dotnet_regex(&p))?))
    };
    if !old.is_null() {
        let old = ev.text(&old, name)?.into_owned();
        if !template.is_null() {
            // Template mode: put the source into the template where oldValue stands.
            let t = ev.text(&template, name)?.into_owned();
            let s = match &source {
                Value::Null => String::new(),
                v => ev.text(v, name)?.into_owned(),
            };
            return Ok(Value::string(t.replace(old.as_str(), &s)));
        }
        let s = match source {
            Value::Null => return Ok(Value::Null),
            v => cow_text(ev, v, name)?,
        };
        let new = match &replacement {
            Value::Null => String::new(),
            v => ev.text(v, name)?.into_owned(),
        };
        if old.is_empty() || !s.contains(old.as_str()) {
            return Ok(Value::Str(s));
        }
        return Ok(Value::string(s.replace(old.as_str(), &new)));
    }
    if pattern.is_null() {
        return fail("Replace needs either oldValue or regexPattern");
    }
    let re = regex()?;
    if group.is_null() {
        let s = match source {
            Value::Null => return Ok(Value::Null),
            v => cow_text(ev, v, name)?,
        };
        let rep = match &replacement {
            Value::Null => String::new(),
            v => text::dotnet_replacement_for(&re, &ev.text(v, name)?),
        };
        return Ok(match re.replace_all(&s, rep.as_str()) {
            Cow::Borrowed(_) => Value::Str(s),
            Cow::Owned(o) => Value::string(o),
        });
    }
    let group = ev.text(&group, name)?.into_owned();
    if !replacement.is_null() {
        // Replace what the named group matched, everywhere.
        let s = match source {
            Value::Null => return Ok(Value::Null),
            v => cow_text(ev, v, name)?,
        };
        let rep = ev.text(&replacement, name)?.into_owned();
        let mut out = String::with_capacity(s.len());
        let mut last = 0;
        for caps in re.captures_iter(&s) {
            if let Some(m) = caps.name(&group) {
                out.push_str(&s[last..m.start()]);
                out.push_str(&rep);
                last = m.end();
            }
        }
        out.push_str(&s[last..]);
        return Ok(Value::string(out));
    }
    // replacementAttributeName mode: the source if it has a value, else the named group
    // extracted from the other attribute.
    if !source.is_null_or_empty() {
        return Ok(source);
    }
    let other =
        match call.args.get(5) {
            Some(Some(Expr::Str(attr))) => ev.attribute(attr)?,
            Some(Some(e)) => ev.eval(e)?,
            _ => return fail(
                "Replace with regexGroupName needs replacementValue or replacementAttributeName",
            ),
        };
    if other.is_null() {
        return Ok(Value::Null);
    }
    let t = ev.text(&other, name)?.into_owned();
    Ok(
        match re
            .captures(&t)
            .and_then(|c| c.name(&group).map(|m| m.as_str().to_string()))
        {
            Some(m) => Value::string(m),
            None => Value::Null,
        },
    )
}
