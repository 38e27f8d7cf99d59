use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

/// An attribute name that compares, hashes and sorts ASCII-case-insensitively, as LDAP
/// attribute descriptions do, while keeping the spelling it was created with.
#[derive(Clone)]
pub struct AttributeName(Box<str>);

impl AttributeName {
    /// A name with the given spelling.
    pub fn new(name: impl Into<Box<str>>) -> Self {
        AttributeName(name.into())
    }

    /// The spelling the name was created with.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this name equals `other`, ignoring ASCII case.
    pub fn matches(&self, other: &str) -> bool {
        self.0.eq_ignore_ascii_case(other)
    }
}

impl PartialEq for AttributeName {
    fn eq(&self, other: &Self) -> bool {
        self.0.eq_ignore_ascii_case(&other.0)
    }
}

impl Eq for AttributeName {}

impl Hash for AttributeName {
    fn hash<H: Hasher>(&self, state: &mut H) {
        for b in self.0.bytes() {
            state.write_u8(b.to_ascii_lowercase());
        }
        state.write_u8(0xff);
    }
}

impl PartialOrd for AttributeName {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for AttributeName {
    fn cmp(&self, other: &Self) -> Ordering {
        let a = self.0.bytes().map(|b| b.to_ascii_lowercase());
        let b = other.0.bytes().map(|b| b.to_ascii_lowercase());
        a.cmp(b)
    }
}

impl fmt::Debug for AttributeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for AttributeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for AttributeName {
    fn from(s: &str) -> Self {
        AttributeName::new(s)
    }
}

impl From<String> for AttributeName {
    fn from(s: String) -> Self {
        AttributeName::new(s)
    }
}

/// One value of an attribute: UTF-8 text, or bytes that are not (or must not be treated
/// as) text, such as `objectGUID`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AttributeValue {
    /// A UTF-8 string.
    Text(String),
    /// Raw bytes.
    Binary(Vec<u8>),
}

impl AttributeValue {
    /// A value from bytes: text when they are valid UTF-8, binary otherwise.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        match String::from_utf8(bytes) {
            Ok(s) => AttributeValue::Text(s),
            Err(e) => AttributeValue::Binary(e.into_bytes()),
        }
    }

    /// The value as text, if it is text.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            AttributeValue::Text(s) => Some(s),
            AttributeValue::Binary(_) => None,
        }
    }

    /// The value's bytes (UTF-8 for text).
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            AttributeValue::Text(s) => s.as_bytes(),
            AttributeValue::Binary(b) => b,
        }
    }

    /// The value as text, replacing invalid UTF-8 in binary values.
    pub fn to_text_lossy(&self) -> Cow<'_, str> {
        match self {
            AttributeValue::Text(s) => Cow::Borrowed(s),
            AttributeValue::Binary(b) => String::from_utf8_lossy(b),
        }
    }
}

impl From<&str> for AttributeValue {
    fn from(s: &str) -> Self {
        AttributeValue::Text(s.to_string())
    }
}

impl From<String> for AttributeValue {
    fn from(s: String) -> Self {
        AttributeValue::Text(s)
    }
}

impl From<Vec<u8>> for AttributeValue {
    fn from(b: Vec<u8>) -> Self {
        AttributeValue::Binary(b)
    }
}

/// The attributes of an entry: names (case-insensitive) to one or more values, in the
/// order they were first added.
///
/// An attribute with no values is absent: removing the last value removes the name.
/// Entries have tens of attributes, so lookups scan a vector; that is faster than hashing a
/// case-folded key and keeps the source's order for display.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attributes {
    items: Vec<(AttributeName, Vec<AttributeValue>)>,
}

impl Attributes {
    /// No attributes.
    pub fn new() -> Self {
        Self::default()
    }

    /// The values of `name` (case-insensitive), or `None` when absent.
    pub fn get(&self, name: &str) -> Option<&[AttributeValue]> {
        self.items
            .iter()
            .find(|(n, _)| n.matches(name))
            .map(|(_, v)| v.as_slice())
    }

    /// The first value of `name` if it is text.
    pub fn first_text(&self, name: &str) -> Option<&str> {
        self.get(name)?.first()?.as_text()
    }

    /// Whether `name` is present.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Adds a value to `name`, creating it if needed.
    pub fn insert(&mut self, name: impl Into<AttributeName>, value: impl Into<AttributeValue>) {
        let name = name.into();
        let value = value.into();
        match self.items.iter_mut().find(|(n, _)| *n == name) {
            Some((_, values)) => values.push(value),
            None => self.items.push((name, vec![value])),
        }
    }

    /// Adds a text value to `name`.
    pub fn insert_text(&mut self, name: &str, value: &str) {
        self.insert(name, value);
    }

    /// Replaces all values of `name`; an empty list removes the attribute.
    pub fn set(&mut self, name: impl Into<AttributeName>, values: Vec<AttributeValue>) {
        let name = name.into();
        if values.is_empty() {
            self.remove(name.as_str());
            return;
        }
        match self.items.iter_mut().find(|(n, _)| *n == name) {
            Some((_, slot)) => *slot = values,
            None => self.items.push((name, values)),
        }
    }

    /// Removes `name` and returns its values.
    pub fn remove(&mut self, name: &str) -> Option<Vec<AttributeValue>> {
        let pos = self.items.iter().position(|(n, _)| n.matches(name))?;
        Some(self.items.remove(pos).1)
    }

    /// Iterates over names and their values.
    pub fn iter(&self) -> impl Iterator<Item = (&AttributeName, &[AttributeValue])> {
        self.items.iter().map(|(n, v)| (n, v.as_slice()))
    }

    /// The number of attributes present.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether there are no attributes.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::hash_map::DefaultHasher;

    fn hash_of(n: &AttributeName) -> u64 {
        let mut h = DefaultHasher::new();
        n.hash(&mut h);
        h.finish()
    }

    #[test]
    fn names_ignore_case_but_keep_spelling() {
        let a = AttributeName::new("userPrincipalName");
        let b = AttributeName::new("USERPRINCIPALNAME");
        assert_eq!(a, b);
        assert_eq!(hash_of(&a), hash_of(&b));
        assert_eq!(a.cmp(&b), Ordering::Equal);
        assert_eq!(a.as_str(), "userPrincipalName");
        assert!(AttributeName::new("cn") < AttributeName::new("Mail"));
    }

    #[test]
    fn attributes_are_multi_valued_and_binary_safe() {
        let mut attrs = Attributes::new();
        attrs.insert("proxyAddresses", "SMTP:a@contoso.com");
        attrs.insert("PROXYADDRESSES", "smtp:b@contoso.com");
        attrs.insert("objectGUID", vec![0u8, 159, 146, 150]);
        assert_eq!(attrs.len(), 2);
        assert_eq!(attrs.get("proxyaddresses").unwrap().len(), 2);
        assert_eq!(
            attrs.get("objectguid").unwrap()[0].as_bytes(),
            &[0u8, 159, 146, 150]
        );
        assert_eq!(attrs.get("objectGUID").unwrap()[0].as_text(), None);
        attrs.set("proxyAddresses", vec![]);
        assert!(!attrs.contains("proxyAddresses"));
        assert_eq!(
            AttributeValue::from_bytes(b"abc".to_vec()),
            AttributeValue::Text("abc".into())
        );
    }
}
