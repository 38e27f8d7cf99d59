//! Values Microsoft Graph would reject, caught while planning so that a dry run shows
//! what the real run would fail on (graph.md §1.2: required properties, lengths, the UPN
//! character set and verified domains, `userType`, `mailNickname`'s forbidden characters).

use partnersync_target::CreationMode;

use crate::{DesiredObject, PlanOptions};

/// Longest values Graph accepts, by property.
const MAX_LENGTH: &[(&str, usize)] = &[
    ("displayName", 256),
    ("mailNickname", 64),
    ("givenName", 64),
    ("surname", 64),
    ("companyName", 64),
    ("department", 64),
    ("jobTitle", 128),
    ("employeeId", 16),
    ("userPrincipalName", 113),
];

const UPN_LOCAL_EXTRA: &[char] = &['\'', '.', '-', '_', '!', '#', '^', '~'];
const NICKNAME_FORBIDDEN: &[char] = &[
    ' ', '@', '(', ')', '\\', '[', ']', '"', ';', ':', '<', '>', ',',
];

fn first<'a>(d: &'a DesiredObject, name: &str) -> Option<&'a str> {
    d.attributes
        .get(name)
        .and_then(|v| v.first())
        .map(String::as_str)
}

/// Problems with `d` that Graph would reject, in words naming the attribute and what to
/// do. `creating` is true when the plan would create the user.
pub(crate) fn check(d: &DesiredObject, creating: bool, options: &PlanOptions) -> Vec<String> {
    let mut problems = Vec::new();
    for (name, values) in &d.attributes {
        if let Some((_, max)) = MAX_LENGTH.iter().find(|(n, _)| n == name) {
            // A value is at least as many bytes long as it has characters.
            if let Some(v) = values.first().filter(|v| v.len() > *max) {
                let len = v.chars().count();
                if len > *max {
                    problems.push(format!(
                        "{name} is {len} characters long; Graph accepts at most {max}"
                    ));
                }
            }
        }
    }
    if let Some(t) = first(d, "userType") {
        if t != "Member" && t != "Guest" {
            problems.push(format!(
                "userType {t:?} is neither Member nor Guest; fix the userType rule"
            ));
        }
    }
    if let Some(n) = first(d, "mailNickname") {
        if let Some(c) = n
            .chars()
            .find(|c| NICKNAME_FORBIDDEN.contains(c) || !c.is_ascii())
        {
            problems.push(format!(
                "mailNickname {n:?} contains {c:?}, which Graph rejects"
            ));
        }
    }
    if d.attributes.contains_key("displayName")
        && first(d, "displayName").is_none_or(str::is_empty)
        && !creating
    {
        problems
            .push("displayName would be cleared; Graph does not allow an empty displayName".into());
    }
    let direct = options.creation == CreationMode::Direct;
    match first(d, "userPrincipalName") {
        Some(upn) => {
            if let Some(p) = upn_problem(upn, direct.then_some(&options.verified_domains[..])) {
                problems.push(p);
            }
        }
        None if creating && direct => problems.push(
            "no userPrincipalName: a directly created user needs one; map userPrincipalName in the rules".into(),
        ),
        None => {}
    }
    if creating && !direct && first(d, "mail").is_none_or(str::is_empty) {
        problems.push(
            "no mail: an invitation is sent to the mail address; map mail in the rules".into(),
        );
    }
    problems
}

fn upn_problem(upn: &str, verified: Option<&[String]>) -> Option<String> {
    let Some((local, domain)) = upn.rsplit_once('@') else {
        return Some(format!(
            "userPrincipalName {upn:?} has no @domain part; Graph needs alias@domain"
        ));
    };
    if local.is_empty() || local.chars().count() > 64 {
        return Some(format!(
            "userPrincipalName {upn:?}: the part before @ must be 1 to 64 characters"
        ));
    }
    if let Some(c) = local
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || UPN_LOCAL_EXTRA.contains(c)))
    {
        return Some(format!(
            "userPrincipalName {upn:?} contains {c:?}; Graph allows only A-Z a-z 0-9 ' . - _ ! # ^ ~ before the @"
        ));
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Some(format!(
            "userPrincipalName {upn:?}: the part before @ cannot start or end with a dot or contain two dots in a row"
        ));
    }
    if let Some(domains) = verified.filter(|d| !d.is_empty()) {
        if !domains.iter().any(|d| d.eq_ignore_ascii_case(domain)) {
            let domain = domain.to_ascii_lowercase();
            return Some(format!(
                "userPrincipalName {upn:?} is in {domain}, which is not a verified domain of the tenant (verified: {}); add the domain in Entra ID or change the UPN rule",
                domains.join(", ")
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use partnersync_core::Anchor;

    fn desired(pairs: &[(&str, &str)]) -> DesiredObject {
        DesiredObject {
            anchor: Anchor::from_bytes(vec![1; 16]).unwrap(),
            dn: "CN=x".into(),
            in_scope: true,
            attributes: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), vec![v.to_string()]))
                .collect(),
            apply_once: Default::default(),
            errors: Vec::new(),
        }
    }

    fn options(domains: &[&str]) -> PlanOptions {
        PlanOptions {
            verified_domains: domains.iter().map(|d| d.to_string()).collect(),
            ..PlanOptions::default()
        }
    }

    #[test]
    fn what_graph_rejects_is_named() {
        let o = options(&["contoso.com", "partners.contoso.com"]);
        assert!(check(
            &desired(&[
                ("userPrincipalName", "ana@partners.contoso.com"),
                ("displayName", "Ana")
            ]),
            true,
            &o
        )
        .is_empty());
        let cases = [
            (
                vec![
                    ("userPrincipalName", "ana@fabrikam.com"),
                    ("displayName", "A"),
                ],
                "not a verified domain",
            ),
            (
                vec![
                    ("userPrincipalName", "añа@contoso.com"),
                    ("displayName", "A"),
                ],
                "contains 'ñ'",
            ),
            (
                vec![
                    ("userPrincipalName", ".ana@contoso.com"),
                    ("displayName", "A"),
                ],
                "dot",
            ),
            (
                vec![("userPrincipalName", "ana"), ("displayName", "A")],
                "no @domain",
            ),
            (
                vec![
                    ("userPrincipalName", "a@contoso.com"),
                    ("displayName", "A"),
                    ("userType", "guest"),
                ],
                "neither Member nor Guest",
            ),
            (
                vec![
                    ("userPrincipalName", "a@contoso.com"),
                    ("displayName", "A"),
                    ("mailNickname", "a b"),
                ],
                "mailNickname",
            ),
            (vec![("displayName", "A")], "no userPrincipalName"),
        ];
        for (pairs, expected) in cases {
            let problems = check(&desired(&pairs), true, &o);
            assert!(
                problems.iter().any(|p| p.contains(expected)),
                "{pairs:?}: {problems:?}"
            );
        }
        let long = "x".repeat(257);
        let p = check(&desired(&[("displayName", long.as_str())]), false, &o);
        assert!(
            p[0].contains("257 characters") && p[0].contains("256"),
            "{p:?}"
        );
    }

    #[test]
    fn invitations_need_mail_not_a_verified_upn() {
        let o = PlanOptions {
            creation: CreationMode::Invitation,
            ..options(&["contoso.com"])
        };
        let p = check(
            &desired(&[("userPrincipalName", "ana@fabrikam.com")]),
            true,
            &o,
        );
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("no mail"));
    }
}
