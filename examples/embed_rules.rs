//! Embedding the rule engine: load a rule set from TOML and derive UserType for an entry.
//!
//! Run with `cargo run --example embed_rules`.

use partnersync::core::{Anchor, Entry};
use partnersync::rules::RuleSet;

const RULES: &str = r#"
[[rule]]
name = "UserType from the UPN suffix"
precedence = 50
[[rule.flow]]
target = "userType"
expression = '''IIF(IsPresent([userPrincipalName]),
    IIF(CBool(InStr(LCase([userPrincipalName]), "@partners.contoso.com") = 0), "Member", "Guest"),
    Error("UserPrincipalName is not present to determine UserType"))'''
"#;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rules = RuleSet::from_toml_str(RULES)?;
    for upn in ["ana@partners.contoso.com", "dana@contoso.com"] {
        let mut entry = Entry::new(
            Anchor::from_guid_str("6f1c2b3a-0d4e-4f51-9a62-7b8c9d0e1f21")?,
            "CN=x,DC=contoso,DC=com",
        );
        entry.attributes.insert_text("userPrincipalName", upn);
        println!("{upn}: {:?}", rules.user_type(&entry)?);
    }
    let nameless = Entry::new(
        Anchor::from_bytes(vec![1; 16])?,
        "CN=no upn,DC=contoso,DC=com",
    );
    println!("no UPN: {}", rules.user_type(&nameless).unwrap_err());
    Ok(())
}
