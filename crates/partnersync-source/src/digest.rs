//! A small, stable, non-cryptographic hash for cookies: 64-bit FNV-1a.
//!
//! Cookies outlive the process that wrote them, so the hash must never change between Rust
//! releases (std's `DefaultHasher` may). FNV-1a also has the property that matters for
//! change detection: two inputs of the same length that differ in a single byte always hash
//! differently; for other edits a collision has a probability of about 2⁻⁶⁴. It is not meant
//! to resist deliberate collisions — whoever can edit the source can change it anyway.

use partnersync_core::Entry;

/// 64-bit FNV-1a.
#[derive(Debug, Clone)]
pub(crate) struct Fnv64(u64);

impl Fnv64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    pub(crate) fn new() -> Self {
        Fnv64(Self::OFFSET)
    }

    pub(crate) fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(Self::PRIME);
        }
    }

    /// Writes a length prefix and then the bytes, so that field boundaries are unambiguous.
    pub(crate) fn write_field(&mut self, bytes: &[u8]) {
        self.write(&(bytes.len() as u64).to_le_bytes());
        self.write(bytes);
    }

    pub(crate) fn write_str_lowercase(&mut self, s: &str) {
        self.write(&(s.len() as u64).to_le_bytes());
        for b in s.bytes() {
            self.write(&[b.to_ascii_lowercase()]);
        }
    }

    pub(crate) fn finish(&self) -> u64 {
        self.0
    }
}

/// FNV-1a of `bytes`.
pub(crate) fn fnv64(bytes: &[u8]) -> u64 {
    let mut h = Fnv64::new();
    h.write(bytes);
    h.finish()
}

/// A hash of what an entry says, ignoring what LDAP ignores: the order of attributes, the
/// case of attribute names and the order of values. The DN is compared exactly, so a rename
/// (even a change of case) is a change.
pub(crate) fn entry_content_hash(entry: &Entry) -> u64 {
    let mut h = Fnv64::new();
    h.write_field(entry.dn.as_bytes());
    let mut attrs: Vec<(String, Vec<&[u8]>)> = entry
        .attributes
        .iter()
        .map(|(name, values)| {
            let mut v: Vec<&[u8]> = values.iter().map(|v| v.as_bytes()).collect();
            v.sort_unstable();
            (name.as_str().to_ascii_lowercase(), v)
        })
        .collect();
    attrs.sort_unstable();
    h.write(&(attrs.len() as u64).to_le_bytes());
    for (name, values) in attrs {
        h.write_field(name.as_bytes());
        h.write(&(values.len() as u64).to_le_bytes());
        for v in values {
            h.write_field(v);
        }
    }
    h.finish()
}

/// Appends `n` as an unsigned LEB128 varint.
pub(crate) fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Reads bytes from the front of a slice, failing (with `None`) instead of panicking.
pub(crate) struct ByteReader<'a>(pub(crate) &'a [u8]);

impl<'a> ByteReader<'a> {
    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.0.len() {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    pub(crate) fn u64_le(&mut self) -> Option<u64> {
        let bytes: [u8; 8] = self.take(8)?.try_into().ok()?;
        Some(u64::from_le_bytes(bytes))
    }

    pub(crate) fn varint(&mut self) -> Option<u64> {
        let mut n: u64 = 0;
        for shift in (0..64).step_by(7) {
            let byte = *self.take(1)?.first()?;
            n |= u64::from(byte & 0x7f).checked_shl(shift)?;
            if byte & 0x80 == 0 {
                return Some(n);
            }
        }
        None
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use partnersync_core::{Anchor, AttributeValue};

    #[test]
    fn fnv_matches_the_reference_vectors() {
        assert_eq!(fnv64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn content_hash_ignores_order_and_name_case_but_not_dn_case() {
        let anchor = Anchor::from_bytes(vec![1]).unwrap();
        let mut a = Entry::new(anchor.clone(), "cn=a,dc=x");
        a.attributes.insert("mail", "a@x");
        a.attributes.insert("proxyAddresses", "SMTP:a@x");
        a.attributes.insert("proxyAddresses", "smtp:b@x");
        let mut b = Entry::new(anchor.clone(), "cn=a,dc=x");
        b.attributes.insert("PROXYADDRESSES", "smtp:b@x");
        b.attributes.insert("proxyaddresses", "SMTP:a@x");
        b.attributes.insert("Mail", "a@x");
        assert_eq!(entry_content_hash(&a), entry_content_hash(&b));
        let mut renamed = a.clone();
        renamed.dn = "CN=a,dc=x".into();
        assert_ne!(entry_content_hash(&a), entry_content_hash(&renamed));
        let mut moved_value = a.clone();
        moved_value.attributes.set("mail", vec![]);
        moved_value
            .attributes
            .insert("mai", AttributeValue::from("la@x"));
        assert_ne!(entry_content_hash(&a), entry_content_hash(&moved_value));
    }

    #[test]
    fn varints_round_trip_and_bad_input_fails_softly() {
        for n in [0u64, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            let mut buf = Vec::new();
            put_varint(&mut buf, n);
            let mut r = ByteReader(&buf);
            assert_eq!(r.varint(), Some(n));
            assert!(r.is_empty());
        }
        assert_eq!(ByteReader(&[0x80, 0x80]).varint(), None);
        assert_eq!(ByteReader(&[0xff; 11]).varint(), None);
        assert_eq!(ByteReader(&[1, 2]).u64_le(), None);
        assert_eq!(ByteReader(&[1, 2]).take(3), None);
    }
}
