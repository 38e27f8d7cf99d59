use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

/// The stable identity of a source object: the bytes of `objectGUID`,
/// `ms-DS-ConsistencyGuid`, `entryUUID` or `nsUniqueId`.
///
/// An anchor never changes when an object is renamed or moved, which is why the sync keys
/// everything on it rather than on the DN.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Anchor(Vec<u8>);

/// Why bytes or text could not become an [`Anchor`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnchorError {
    /// The anchor was empty.
    #[error("an anchor cannot be empty")]
    Empty,
    /// The text was not a GUID in `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` or `{…}` form.
    #[error("'{0}' is not a GUID (expected xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)")]
    NotAGuid(String),
    /// The text was not valid base64.
    #[error("'{0}' is not valid base64")]
    NotBase64(String),
}

impl Anchor {
    /// An anchor from raw bytes (for example the 16 bytes of `objectGUID`).
    pub fn from_bytes(bytes: impl Into<Vec<u8>>) -> Result<Self, AnchorError> {
        let bytes = bytes.into();
        if bytes.is_empty() {
            return Err(AnchorError::Empty);
        }
        Ok(Anchor(bytes))
    }

    /// An anchor from a GUID string, in Microsoft's byte order (the first three fields
    /// little-endian), which is how `objectGUID` is stored in Active Directory.
    pub fn from_guid_str(text: &str) -> Result<Self, AnchorError> {
        guid_bytes_from_str(text)
            .map(|b| Anchor(b.to_vec()))
            .ok_or_else(|| AnchorError::NotAGuid(text.to_string()))
    }

    /// An anchor from Connect's ImmutableId (base64 of the anchor bytes).
    pub fn from_immutable_id(text: &str) -> Result<Self, AnchorError> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|_| AnchorError::NotBase64(text.to_string()))?;
        Anchor::from_bytes(bytes)
    }

    /// The raw anchor bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Connect's ImmutableId: the base64 of the anchor bytes. This is what goes into
    /// `onPremisesImmutableId` in Entra ID.
    pub fn to_immutable_id(&self) -> String {
        STANDARD.encode(&self.0)
    }

    /// The anchor as a GUID string (Microsoft byte order), if it is 16 bytes long.
    pub fn to_guid_string(&self) -> Option<String> {
        let bytes: &[u8; 16] = self.0.as_slice().try_into().ok()?;
        Some(guid_string_from_bytes(bytes))
    }
}

impl fmt::Debug for Anchor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_guid_string() {
            Some(guid) => write!(f, "Anchor({guid})"),
            None => write!(f, "Anchor({})", self.to_immutable_id()),
        }
    }
}

impl fmt::Display for Anchor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_immutable_id())
    }
}

/// Renders 16 GUID bytes in Microsoft's mixed-endian order as
/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` (lower case).
pub(crate) fn guid_string_from_bytes(b: &[u8; 16]) -> String {
    format!(
        "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
        b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]
    )
}

/// Parses `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, optionally in braces, into Microsoft's
/// byte order.
pub(crate) fn guid_bytes_from_str(text: &str) -> Option<[u8; 16]> {
    let t = text.trim();
    let t = t
        .strip_prefix('{')
        .and_then(|s| s.strip_suffix('}'))
        .unwrap_or(t);
    let groups: Vec<&str> = t.split('-').collect();
    let lens = [8, 4, 4, 4, 12];
    if groups.len() != 5 || groups.iter().zip(lens).any(|(g, l)| g.len() != l) {
        return None;
    }
    let hex: String = groups.concat();
    let mut raw = [0u8; 16];
    for (i, slot) in raw.iter_mut().enumerate() {
        *slot = u8::from_str_radix(hex.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some([
        raw[3], raw[2], raw[1], raw[0], raw[5], raw[4], raw[7], raw[6], raw[8], raw[9], raw[10],
        raw[11], raw[12], raw[13], raw[14], raw[15],
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guid_round_trip_uses_microsoft_byte_order() {
        let a = Anchor::from_guid_str("{00112233-4455-6677-8899-aabbccddeeff}").unwrap();
        assert_eq!(
            a.as_bytes(),
            &[
                0x33, 0x22, 0x11, 0x00, 0x55, 0x44, 0x77, 0x66, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd,
                0xee, 0xff
            ]
        );
        assert_eq!(
            a.to_guid_string().unwrap(),
            "00112233-4455-6677-8899-aabbccddeeff"
        );
        assert_eq!(a.to_immutable_id(), "MyIRAFVEd2aImaq7zN3u/w==");
        assert_eq!(
            Anchor::from_immutable_id("MyIRAFVEd2aImaq7zN3u/w==").unwrap(),
            a
        );
    }

    #[test]
    fn bad_input_is_rejected_with_the_text() {
        assert_eq!(Anchor::from_bytes(Vec::new()), Err(AnchorError::Empty));
        assert!(
            matches!(Anchor::from_guid_str("not-a-guid"), Err(AnchorError::NotAGuid(t)) if t == "not-a-guid")
        );
        assert!(Anchor::from_guid_str("0011223-34455-6677-8899-aabbccddeeff").is_err());
        assert!(Anchor::from_immutable_id("***").is_err());
        assert_eq!(
            Anchor::from_bytes(vec![1, 2, 3]).unwrap().to_guid_string(),
            None
        );
    }
}
