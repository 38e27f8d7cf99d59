//! Entries reduced to what a rule set reads, for evaluating many times or over many
//! entries: a directory entry carries dozens of attributes, the rules read a handful.

use partnersync_core::{AttributeValue, Entry};

use crate::eval::AttributeLookup;
use crate::rules::RuleSet;

/// An entry holding only the attributes a [`RuleSet`] reads (and its DN), laid out
/// compactly. Evaluating a prepared entry gives exactly the same results as evaluating the
/// entry it came from; it is faster because lookups scan a few names instead of all of them
/// and touch less memory.
///
/// ```
/// use partnersync_core::{Anchor, Entry, UserType};
/// use partnersync_rules::RuleSet;
///
/// let rules = RuleSet::from_toml_str(r#"
///     [[rule]]
///     name = "ut"
///     precedence = 1
///     [[rule.flow]]
///     target = "userType"
///     expression = 'IIF(InStr(LCase([userPrincipalName]), "@partners.") > 0, "Guest", "Member")'
/// "#).unwrap();
/// let mut entry = Entry::new(Anchor::from_bytes(vec![1; 16]).unwrap(), "CN=Ana,DC=contoso,DC=com");
/// entry.attributes.insert_text("userPrincipalName", "ana@partners.contoso.com");
/// entry.attributes.insert_text("description", "not read by any rule");
/// let prepared = rules.prepare(&entry);
/// assert_eq!(prepared.len(), 1);
/// assert_eq!(rules.user_type(&prepared).unwrap(), Some(UserType::Guest));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedEntry {
    dn: Box<str>,
    attributes: Box<[PreparedAttribute]>,
}

/// One kept attribute: its name and values.
type PreparedAttribute = (Box<str>, Box<[AttributeValue]>);

impl PreparedEntry {
    /// How many attributes were kept.
    pub fn len(&self) -> usize {
        self.attributes.len()
    }

    /// Whether no attribute was kept.
    pub fn is_empty(&self) -> bool {
        self.attributes.is_empty()
    }

    /// The entry's DN.
    pub fn dn(&self) -> &str {
        &self.dn
    }
}

impl AttributeLookup for PreparedEntry {
    fn lookup(&self, name: &str) -> Option<&[AttributeValue]> {
        self.attributes
            .iter()
            .find(|(n, _)| n.len() == name.len() && n.eq_ignore_ascii_case(name))
            .map(|(_, v)| &**v)
    }

    fn dn(&self) -> Option<&str> {
        Some(&self.dn)
    }
}

impl RuleSet {
    /// Reduces `entry` to the attributes this rule set reads (scoping clauses, flows,
    /// `memberOf` for ISMEMBEROF). Prepare once, evaluate many times.
    pub fn prepare(&self, entry: &Entry) -> PreparedEntry {
        let wanted = self.read_attributes();
        let attributes: Vec<PreparedAttribute> = entry
            .attributes
            .iter()
            .filter(|(name, _)| wanted.iter().any(|w| name.matches(w)))
            .map(|(name, values)| (Box::from(name.as_str()), values.to_vec().into_boxed_slice()))
            .collect();
        PreparedEntry {
            dn: entry.dn.as_str().into(),
            attributes: attributes.into_boxed_slice(),
        }
    }
}
