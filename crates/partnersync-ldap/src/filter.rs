//! RFC 4515 escaping for values placed into LDAP filters.

/// Escapes a value for use inside an LDAP filter (RFC 4515 §3): `*`, `(`, `)`, `\`, NUL and
/// every byte that is not printable ASCII become `\xx`. Works on bytes, so binary values
/// (an `objectGUID`) can be searched for too.
///
/// ```
/// use partnersync_ldap::escape_filter_value;
///
/// assert_eq!(escape_filter_value("a*b(c)\\d"), "a\\2ab\\28c\\29\\5cd");
/// let filter = format!("(userPrincipalName={})", escape_filter_value("*)(uid=*"));
/// assert_eq!(filter, "(userPrincipalName=\\2a\\29\\28uid=\\2a)");
/// assert_eq!(escape_filter_value([0x01u8, 0xff]), "\\01\\ff");
/// ```
pub fn escape_filter_value(value: impl AsRef<[u8]>) -> String {
    let bytes = value.as_ref();
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        match b {
            b'*' | b'(' | b')' | b'\\' | 0 => out.push_str(&format!("\\{b:02x}")),
            0x20..=0x7e => out.push(char::from(b)),
            _ => out.push_str(&format!("\\{b:02x}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaped_values_parse_and_match_literally() {
        for v in ["plain", "a*b", "(x)", "back\\slash", "Łukasz Żółć", "\0nul"] {
            let f = format!("(cn={})", escape_filter_value(v));
            assert!(ldap3::parse_filter(&f).is_ok(), "{f}");
            assert!(!f[4..f.len() - 1].contains(['*', '(', ')']), "{f}");
        }
        assert_eq!(escape_filter_value("é"), "\\c3\\a9");
    }
}
