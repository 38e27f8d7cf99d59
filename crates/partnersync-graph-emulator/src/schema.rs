//! The `user` resource: which properties exist, how they may be written, filtered and
//! projected. One table drives validation, `$select`, `$filter` support and the default
//! projection, so the rules cannot drift apart.

/// Value shape of a property.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Str,
    Bool,
    StrList,
    DateTime,
    ExtAttrs,
    PasswordProfile,
    Identities,
}

/// Whether an app may set the property.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Write {
    Writable,
    ReadOnly,
    /// Not updatable in app-only context, and not selectable on the collection.
    PersonalSite,
}

// Filter operator flags.
pub(crate) const EQ: u16 = 1;
pub(crate) const NE: u16 = 1 << 1;
pub(crate) const NOT: u16 = 1 << 2;
pub(crate) const IN: u16 = 1 << 3;
pub(crate) const STARTS: u16 = 1 << 4;
pub(crate) const ENDS: u16 = 1 << 5;
pub(crate) const GELE: u16 = 1 << 6;
pub(crate) const EQNULL: u16 = 1 << 7;
pub(crate) const COUNT: u16 = 1 << 8;
const ALL: u16 = EQ | NE | NOT | IN | STARTS | GELE | EQNULL;

/// `$filter` support of a property: `default` works without advanced-query parameters,
/// `advanced` needs them, `uncertain` is default in lenient mode and advanced in strict mode.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FilterSupport {
    pub default: u16,
    pub advanced: u16,
    pub uncertain: u16,
}

const fn fs(default: u16, advanced: u16, uncertain: u16) -> FilterSupport {
    FilterSupport {
        default,
        advanced,
        uncertain,
    }
}

const NONE: FilterSupport = fs(0, 0, 0);
/// Typical optional string attribute (jobTitle, department, …).
const PLAIN: FilterSupport = fs(EQ | IN | STARTS, NE | NOT | EQNULL | GELE, 0);

/// Sorting support: none, by default, or only with advanced parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sort {
    No,
    Default,
    Advanced,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Prop {
    pub name: &'static str,
    pub kind: Kind,
    pub write: Write,
    pub default_projection: bool,
    pub max_len: Option<usize>,
    pub filter: FilterSupport,
    pub sort: Sort,
    /// Allowed to be `null` on PATCH.
    pub clearable: bool,
}

const fn p(
    name: &'static str,
    kind: Kind,
    write: Write,
    default_projection: bool,
    max_len: Option<usize>,
    filter: FilterSupport,
) -> Prop {
    Prop {
        name,
        kind,
        write,
        default_projection,
        max_len,
        filter,
        sort: Sort::No,
        clearable: true,
    }
}

const fn sorted(mut prop: Prop, sort: Sort) -> Prop {
    prop.sort = sort;
    prop
}

const fn required(mut prop: Prop) -> Prop {
    prop.clearable = false;
    prop
}

use Kind::*;
use Write::*;

pub(crate) static PROPS: &[Prop] = &[
    p(
        "businessPhones",
        StrList,
        Writable,
        true,
        Some(64),
        fs(EQ, NOT | COUNT, 0),
    ),
    sorted(
        required(p(
            "displayName",
            Str,
            Writable,
            true,
            Some(256),
            fs(EQ | IN | STARTS, NE | NOT | EQNULL | GELE, 0),
        )),
        Sort::Default,
    ),
    p(
        "givenName",
        Str,
        Writable,
        true,
        Some(64),
        fs(EQ | IN | STARTS | GELE, NE | NOT | EQNULL, 0),
    ),
    sorted(
        p("id", Str, ReadOnly, true, None, fs(EQ | IN, NE | NOT, 0)),
        Sort::No,
    ),
    p("jobTitle", Str, Writable, true, Some(128), PLAIN),
    p(
        "mail",
        Str,
        Writable,
        true,
        Some(256),
        fs(EQ | IN | STARTS | GELE, NE | NOT | ENDS | EQNULL, 0),
    ),
    p("mobilePhone", Str, Writable, true, Some(64), PLAIN),
    p("officeLocation", Str, Writable, true, Some(128), PLAIN),
    p("preferredLanguage", Str, Writable, true, Some(64), PLAIN),
    p(
        "surname",
        Str,
        Writable,
        true,
        Some(64),
        fs(EQ | IN | STARTS | GELE, NE | NOT | EQNULL, 0),
    ),
    sorted(
        required(p(
            "userPrincipalName",
            Str,
            Writable,
            true,
            Some(113),
            fs(EQ | IN | STARTS, NE | NOT | ENDS | GELE, 0),
        )),
        Sort::Default,
    ),
    required(p(
        "accountEnabled",
        Bool,
        Writable,
        false,
        None,
        fs(EQ | IN, NE | NOT | EQNULL, 0),
    )),
    p(
        "ageGroup",
        Str,
        Writable,
        false,
        None,
        fs(EQ | IN, NE | NOT | EQNULL, 0),
    ),
    p("city", Str, Writable, false, Some(128), PLAIN),
    p("companyName", Str, Writable, false, Some(64), fs(0, ALL, 0)),
    p("country", Str, Writable, false, Some(128), PLAIN),
    sorted(
        p(
            "createdDateTime",
            DateTime,
            ReadOnly,
            false,
            None,
            fs(EQ | GELE, NE | IN | NOT | EQNULL, 0),
        ),
        Sort::Advanced,
    ),
    p(
        "creationType",
        Str,
        ReadOnly,
        false,
        None,
        fs(EQ | IN, NE | NOT | EQNULL, 0),
    ),
    p(
        "deletedDateTime",
        DateTime,
        ReadOnly,
        false,
        None,
        fs(EQ | GELE, NE | IN | NOT | EQNULL, 0),
    ),
    p("department", Str, Writable, false, Some(64), PLAIN),
    p(
        "employeeHireDate",
        DateTime,
        Writable,
        false,
        None,
        fs(0, EQ | NE | NOT | GELE | IN | EQNULL, 0),
    ),
    p(
        "employeeId",
        Str,
        Writable,
        false,
        Some(16),
        fs(0, NE | NOT | GELE | EQNULL, EQ | STARTS | IN),
    ),
    p("employeeType", Str, Writable, false, None, fs(0, ALL, 0)),
    p(
        "externalUserState",
        Str,
        ReadOnly,
        false,
        None,
        fs(EQ | IN, NE | NOT | EQNULL, 0),
    ),
    p(
        "externalUserStateChangeDateTime",
        DateTime,
        ReadOnly,
        false,
        None,
        fs(EQ | IN, NE | NOT | GELE, 0),
    ),
    p("faxNumber", Str, Writable, false, Some(64), PLAIN),
    p(
        "identities",
        Identities,
        Writable,
        false,
        None,
        fs(EQ, 0, 0),
    ),
    required(p(
        "mailNickname",
        Str,
        Writable,
        false,
        Some(64),
        fs(EQ | IN | STARTS | GELE, NE | NOT | EQNULL, 0),
    )),
    p(
        "onPremisesDistinguishedName",
        Str,
        ReadOnly,
        false,
        None,
        NONE,
    ),
    p("onPremisesDomainName", Str, ReadOnly, false, None, NONE),
    p(
        "onPremisesExtensionAttributes",
        ExtAttrs,
        Writable,
        false,
        None,
        fs(0, ALL, 0),
    ),
    p(
        "onPremisesImmutableId",
        Str,
        Writable,
        false,
        None,
        fs(0, NE | NOT | EQNULL, EQ | IN | GELE),
    ),
    p(
        "onPremisesLastSyncDateTime",
        DateTime,
        ReadOnly,
        false,
        None,
        fs(EQ | GELE, NE | NOT | IN | EQNULL, 0),
    ),
    p(
        "onPremisesSamAccountName",
        Str,
        ReadOnly,
        false,
        None,
        fs(EQ | IN | STARTS, NE | NOT | GELE | EQNULL, 0),
    ),
    p(
        "onPremisesSecurityIdentifier",
        Str,
        ReadOnly,
        false,
        None,
        fs(EQ, NE | NOT | IN | EQNULL, 0),
    ),
    p(
        "onPremisesSyncEnabled",
        Bool,
        ReadOnly,
        false,
        None,
        fs(EQ | IN, NE | NOT | GELE | EQNULL, 0),
    ),
    p(
        "onPremisesUserPrincipalName",
        Str,
        ReadOnly,
        false,
        None,
        fs(EQ | IN | STARTS, NE | NOT | ENDS | EQNULL, 0),
    ),
    p(
        "otherMails",
        StrList,
        Writable,
        false,
        None,
        fs(EQ | STARTS | GELE, NOT | ENDS | COUNT, 0),
    ),
    p(
        "passwordPolicies",
        Str,
        Writable,
        false,
        None,
        fs(0, EQ | NE | NOT | IN | EQNULL, 0),
    ),
    p(
        "passwordProfile",
        PasswordProfile,
        Writable,
        false,
        None,
        NONE,
    ),
    p("postalCode", Str, Writable, false, Some(40), PLAIN),
    p(
        "proxyAddresses",
        StrList,
        ReadOnly,
        false,
        None,
        fs(EQ | STARTS | GELE, NOT | ENDS | COUNT, 0),
    ),
    p(
        "showInAddressList",
        Bool,
        Writable,
        false,
        None,
        fs(0, EQ | NE | NOT | EQNULL, 0),
    ),
    p("state", Str, Writable, false, Some(128), PLAIN),
    p("streetAddress", Str, Writable, false, Some(1024), PLAIN),
    p(
        "usageLocation",
        Str,
        Writable,
        false,
        None,
        fs(EQ, NE | NOT | IN | STARTS | EQNULL | GELE, 0),
    ),
    p(
        "userType",
        Str,
        Writable,
        false,
        None,
        fs(EQ | IN, NE | NOT | EQNULL, 0),
    ),
    // SharePoint-backed properties: not selectable on the collection, not writable app-only.
    p("aboutMe", Str, PersonalSite, false, None, NONE),
    p("birthday", DateTime, PersonalSite, false, None, NONE),
    p("hireDate", DateTime, PersonalSite, false, None, NONE),
    p("interests", StrList, PersonalSite, false, None, NONE),
    p("mySite", Str, PersonalSite, false, None, NONE),
    p("pastProjects", StrList, PersonalSite, false, None, NONE),
    p("preferredName", Str, PersonalSite, false, None, NONE),
    p("responsibilities", StrList, PersonalSite, false, None, NONE),
    p("schools", StrList, PersonalSite, false, None, NONE),
    p("skills", StrList, PersonalSite, false, None, NONE),
];

/// Properties stored on every user (everything except the write-only password profile and
/// the SharePoint-backed ones).
pub(crate) fn stored_props() -> impl Iterator<Item = &'static Prop> {
    PROPS
        .iter()
        .filter(|p| p.kind != PasswordProfile && p.write != PersonalSite)
}

/// Case-insensitive lookup of a property by name.
pub(crate) fn prop(name: &str) -> Option<&'static Prop> {
    PROPS.iter().find(|p| p.name.eq_ignore_ascii_case(name))
}

/// `mailboxSettings` is selectable on a single user only; the emulator treats it as missing.
pub(crate) fn collection_forbidden(name: &str) -> bool {
    prop(name).is_some_and(|p| p.write == PersonalSite)
        || name.eq_ignore_ascii_case("mailboxSettings")
}

/// The 11 properties returned without `$select`.
pub(crate) fn default_projection() -> Vec<&'static str> {
    PROPS
        .iter()
        .filter(|p| p.default_projection)
        .map(|p| p.name)
        .collect()
}

/// Registered extension properties (`extension_<appId>_<name>`) are stored as given.
pub(crate) fn is_extension_property(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.starts_with("extension_")
        && lower.len() > "extension_".len() + 33
        && lower["extension_".len()..]
            .split_once('_')
            .is_some_and(|(app, rest)| {
                app.len() == 32 && app.chars().all(|c| c.is_ascii_hexdigit()) && !rest.is_empty()
            })
}

pub(crate) const EXTENSION_ATTRIBUTE_COUNT: usize = 15;

/// How a registered extension property filters. Microsoft's samples filter them with `eq`
/// without advanced-query parameters (so `in` too); `ne`, `not` and `null` comparisons need
/// advanced queries as for every directory property (aad-advanced-queries: "all properties
/// that support `eq` also support `ne` or `not`", advanced only). `startsWith` is not
/// documented either way: uncertain (advanced in strict mode). Their data type is not known
/// here (the emulator keeps no registrations), so literals are not type-checked.
pub(crate) static EXTENSION_PROPERTY: Prop = p(
    "extension_",
    Str,
    Writable,
    false,
    None,
    fs(EQ | IN, NE | NOT | EQNULL | GELE, STARTS),
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_projection_has_eleven() {
        assert_eq!(default_projection().len(), 11);
    }

    #[test]
    fn extension_names() {
        assert!(is_extension_property(
            "extension_0b9e4f3a7c214d8eb5a62f1e9c8d7b64_costCenter"
        ));
        assert!(!is_extension_property("extension_foo"));
    }
}
