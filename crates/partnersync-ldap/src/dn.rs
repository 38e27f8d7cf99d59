//! Just enough DN handling to compare DNs for OU include/exclude: split into RDNs at
//! unescaped commas, trim, compare ignoring ASCII case.

/// The RDNs of a DN, trimmed and lowercased (escapes kept as written).
pub(crate) fn normalized_rdns(dn: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut escaped = false;
    for c in dn.chars() {
        if escaped {
            current.push(c);
            escaped = false;
            continue;
        }
        match c {
            '\\' => {
                current.push(c);
                escaped = true;
            }
            ',' => {
                parts.push(normalize_rdn(&current));
                current.clear();
            }
            _ => current.push(c),
        }
    }
    if !current.trim().is_empty() || !parts.is_empty() {
        parts.push(normalize_rdn(&current));
    }
    parts
}

fn normalize_rdn(rdn: &str) -> String {
    match rdn.split_once('=') {
        Some((t, v)) => format!("{}={}", t.trim(), v.trim()).to_ascii_lowercase(),
        None => rdn.trim().to_ascii_lowercase(),
    }
}

/// Checks that `dn` looks like a DN: `type=value` RDNs separated by commas.
pub(crate) fn validate(dn: &str) -> Result<(), String> {
    let rdns = normalized_rdns(dn);
    if rdns.is_empty() {
        return Err("it is empty".into());
    }
    for r in &rdns {
        let Some((t, v)) = r.split_once('=') else {
            return Err(format!("'{r}' has no '='"));
        };
        if t.is_empty() || v.is_empty() {
            return Err(format!("'{r}' needs an attribute type and a value"));
        }
    }
    Ok(())
}

/// Whether `dn` is `ancestor` or below it.
pub(crate) fn is_under(dn: &[String], ancestor: &[String]) -> bool {
    dn.len() >= ancestor.len() && dn[dn.len() - ancestor.len()..] == *ancestor
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_compare_by_rdn_ignoring_case_and_spaces() {
        let a = normalized_rdns("CN=Ana\\, Jr ,OU=Partners, DC=Contoso,DC=com");
        assert_eq!(a, ["cn=ana\\, jr", "ou=partners", "dc=contoso", "dc=com"]);
        assert!(is_under(
            &a,
            &normalized_rdns("ou=partners,dc=contoso,dc=com")
        ));
        assert!(!is_under(
            &a,
            &normalized_rdns("ou=Staff,dc=contoso,dc=com")
        ));
        assert!(!is_under(&normalized_rdns("dc=com"), &a));
        assert!(validate("OU=x,DC=y").is_ok());
        assert!(validate("").is_err());
        assert!(validate("nonsense").is_err());
        assert!(validate("ou=,dc=x").is_err());
    }
}
