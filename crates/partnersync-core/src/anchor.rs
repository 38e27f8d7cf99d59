use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

/// The stable identity of a source object: `objectGUID`, `ms-DS-ConsistencyGuid`,
/// `entryUUID`, `nsUniqueId` or another attribute, as bytes.
///
/// An anchor never changes when an object is renamed or moved, which is why the sync keys
/// everything on it rather than on the DN.
///
/// # Text form and ImmutableId
///
/// The ImmutableId (what goes into Entra ID's `onPremisesImmutableId`, the state file and
/// plans) is the base64 of the bytes, as Entra Connect writes it, so users Connect synced
/// from Active Directory hard-match. Entra ID compares `onPremisesImmutableId` without regard
/// to case, though, and base64 is case-sensitive: OpenLDAP's time-based entryUUIDs share most
/// of their bytes, and among 100,000 of them some pairs have base64 forms that differ only in
/// letter case, so the second of each pair could never be created. Anchors from `entryUUID`
/// and `nsUniqueId` are therefore held in **text form**: their bytes are the identifier's
/// canonical lowercase text (`xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, or
/// `xxxxxxxx-xxxxxxxx-xxxxxxxx-xxxxxxxx` for `nsUniqueId`; see [`Anchor::from_uuid_str`],
/// [`Anchor::from_uuid_bytes`], [`Anchor::from_ns_unique_id_str`]), and that text is their
/// ImmutableId as it is, with no base64. Base64 never contains `-`, so the two kinds of
/// ImmutableId cannot be mistaken for each other, and every anchor has exactly one.
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
    /// The text was not an RFC 4122 UUID.
    #[error("'{0}' is not a UUID (expected xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)")]
    NotAUuid(String),
    /// The text was not a 389 Directory Server `nsUniqueId`.
    #[error("'{0}' is not an nsUniqueId (expected xxxxxxxx-xxxxxxxx-xxxxxxxx-xxxxxxxx)")]
    NotAnNsUniqueId(String),
    /// The text was not valid base64.
    #[error("'{0}' is not valid base64")]
    NotBase64(String),
    /// An ImmutableId with a `-` (so not base64) that is not a UUID or an `nsUniqueId`.
    #[error(
        "'{0}' is not an ImmutableId: with a '-' it must be a UUID \
         (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx) or an nsUniqueId \
         (xxxxxxxx-xxxxxxxx-xxxxxxxx-xxxxxxxx)"
    )]
    NotAnImmutableId(String),
    /// Base64 of an anchor in text form, whose ImmutableId is the text itself (so that no
    /// anchor has two ImmutableIds).
    #[error("'{0}' is base64 of '{1}'; the ImmutableId of that anchor is '{1}' itself")]
    Base64OfText(String, String),
}

/// The two text forms: group lengths of a UUID and of an `nsUniqueId`.
const UUID_GROUPS: [usize; 5] = [8, 4, 4, 4, 12];
const NS_UNIQUE_ID_GROUPS: [usize; 4] = [8, 8, 8, 8];

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

    /// The text-form anchor of an RFC 4122 UUID string such as `entryUUID` (any case,
    /// optionally in braces): its canonical lowercase text.
    pub fn from_uuid_str(text: &str) -> Result<Self, AnchorError> {
        let t = text.trim();
        let t = t
            .strip_prefix('{')
            .and_then(|s| s.strip_suffix('}'))
            .unwrap_or(t);
        canonical_text(t, &UUID_GROUPS)
            .map(Anchor)
            .ok_or_else(|| AnchorError::NotAUuid(text.to_string()))
    }

    /// The text-form anchor of a UUID given as its 16 bytes in RFC 4122 (big-endian,
    /// textual) order, as in a binary `entryUUID` or RFC 4533's syncUUIDs. The same UUID
    /// as text gives the same anchor ([`Anchor::from_uuid_str`]).
    pub fn from_uuid_bytes(bytes: &[u8; 16]) -> Self {
        Anchor(hyphenated(bytes, &UUID_GROUPS))
    }

    /// The text-form anchor of a 389 Directory Server `nsUniqueId`
    /// (`xxxxxxxx-xxxxxxxx-xxxxxxxx-xxxxxxxx`, any case): its canonical lowercase text.
    pub fn from_ns_unique_id_str(text: &str) -> Result<Self, AnchorError> {
        canonical_text(text.trim(), &NS_UNIQUE_ID_GROUPS)
            .map(Anchor)
            .ok_or_else(|| AnchorError::NotAnNsUniqueId(text.to_string()))
    }

    /// The text-form anchor of an `nsUniqueId` given as its 16 bytes in textual order.
    pub fn from_ns_unique_id_bytes(bytes: &[u8; 16]) -> Self {
        Anchor(hyphenated(bytes, &NS_UNIQUE_ID_GROUPS))
    }

    /// An anchor from its ImmutableId (see [`Anchor::to_immutable_id`]): text with a `-` is
    /// a UUID or `nsUniqueId` in text form (upper case is accepted, as Entra ID ignores
    /// case), anything else is base64 of the anchor bytes.
    pub fn from_immutable_id(text: &str) -> Result<Self, AnchorError> {
        let t = text.trim();
        if t.contains('-') {
            return canonical_text(t, &UUID_GROUPS)
                .or_else(|| canonical_text(t, &NS_UNIQUE_ID_GROUPS))
                .map(Anchor)
                .ok_or_else(|| AnchorError::NotAnImmutableId(text.to_string()));
        }
        let bytes = STANDARD
            .decode(t)
            .map_err(|_| AnchorError::NotBase64(text.to_string()))?;
        let anchor = Anchor::from_bytes(bytes)?;
        if let Some(form) = anchor.text_form() {
            return Err(AnchorError::Base64OfText(
                text.to_string(),
                form.to_string(),
            ));
        }
        Ok(anchor)
    }

    /// The raw anchor bytes (for an anchor in text form: the ASCII text).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The ImmutableId, what goes into `onPremisesImmutableId` in Entra ID: the text of an
    /// anchor in text form, otherwise the base64 of the anchor bytes (Entra Connect's form).
    pub fn to_immutable_id(&self) -> String {
        match self.text_form() {
            Some(text) => text.to_string(),
            None => STANDARD.encode(&self.0),
        }
    }

    /// The text of an anchor in text form (a UUID or an `nsUniqueId` in canonical lowercase
    /// text), or None for any other anchor.
    pub fn text_form(&self) -> Option<&str> {
        let is_text =
            is_canonical(&self.0, &UUID_GROUPS) || is_canonical(&self.0, &NS_UNIQUE_ID_GROUPS);
        is_text.then(|| std::str::from_utf8(&self.0).ok()).flatten()
    }

    /// The anchor as a GUID string (Microsoft byte order), if it is 16 bytes long (an
    /// `objectGUID` or `ms-DS-ConsistencyGuid`; an anchor in text form is not).
    pub fn to_guid_string(&self) -> Option<String> {
        let bytes: &[u8; 16] = self.0.as_slice().try_into().ok()?;
        Some(guid_string_from_bytes(bytes))
    }
}

impl fmt::Debug for Anchor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Quoted, so that a UUID in text form cannot be taken for a Microsoft GUID.
        if let Some(text) = self.text_form() {
            return write!(f, "Anchor({text:?})");
        }
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

/// Whether `bytes` are lowercase hex digits in groups of these lengths joined by `-`.
fn is_canonical(bytes: &[u8], groups: &[usize]) -> bool {
    let mut parts = bytes.split(|b| *b == b'-');
    groups.iter().all(|len| {
        parts.next().is_some_and(|p| {
            p.len() == *len && p.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        })
    }) && parts.next().is_none()
}

/// `text` lowercased, if it is hex digits (any case) in groups of these lengths.
fn canonical_text(text: &str, groups: &[usize]) -> Option<Vec<u8>> {
    let lower = text.to_ascii_lowercase().into_bytes();
    is_canonical(&lower, groups).then_some(lower)
}

/// 16 bytes as lowercase hex in groups of these lengths (in hex digits) joined by `-`.
fn hyphenated(bytes: &[u8; 16], groups: &[usize]) -> Vec<u8> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut digits = bytes
        .iter()
        .flat_map(|b| [HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
    let mut out = Vec::with_capacity(32 + groups.len() - 1);
    for (i, len) in groups.iter().enumerate() {
        if i > 0 {
            out.push(b'-');
        }
        out.extend(digits.by_ref().take(*len));
    }
    out
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

    const UUID: &str = "00112233-4455-6677-8899-aabbccddeeff";
    const UUID_BYTES: [u8; 16] = [
        0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee,
        0xff,
    ];

    #[test]
    fn uuids_are_their_lowercase_text_and_that_is_the_immutable_id() {
        let a = Anchor::from_uuid_str("{00112233-4455-6677-8899-AABBCCDDEEFF}").unwrap();
        assert_eq!(a.as_bytes(), UUID.as_bytes());
        assert_eq!(a.text_form(), Some(UUID));
        assert_eq!(a.to_immutable_id(), UUID);
        assert_eq!(a.to_string(), UUID);
        assert_eq!(Anchor::from_uuid_bytes(&UUID_BYTES), a);
        assert_eq!(Anchor::from_uuid_str(UUID).unwrap(), a);
        assert_eq!(Anchor::from_immutable_id(UUID).unwrap(), a);
        // Entra ID ignores case, so upper case means the same anchor.
        assert_eq!(
            Anchor::from_immutable_id(&UUID.to_ascii_uppercase()).unwrap(),
            a
        );
        assert_eq!(a.to_guid_string(), None);
        assert_eq!(format!("{a:?}"), format!("Anchor({UUID:?})"));
    }

    #[test]
    fn ns_unique_ids_are_their_lowercase_text_and_that_is_the_immutable_id() {
        let text = "00112233-44556677-8899aabb-ccddeeff";
        let a = Anchor::from_ns_unique_id_str(" 00112233-44556677-8899AABB-CCDDEEFF ").unwrap();
        assert_eq!(a.as_bytes(), text.as_bytes());
        assert_eq!(a.to_immutable_id(), text);
        assert_eq!(Anchor::from_ns_unique_id_bytes(&UUID_BYTES), a);
        assert_eq!(Anchor::from_immutable_id(text).unwrap(), a);
        assert_ne!(a, Anchor::from_uuid_bytes(&UUID_BYTES));
        assert!(Anchor::from_uuid_str(text).is_err());
        assert!(Anchor::from_ns_unique_id_str(UUID).is_err());
    }

    #[test]
    fn other_text_is_not_a_text_form() {
        for raw in [
            "E-1001",
            "2024-001",
            "00112233-4455-6677-8899-AABBCCDDEEFF",
            "00112233-4455-6677-8899-aabbccddeeff-",
            "{00112233-4455-6677-8899-aabbccddeeff}",
        ] {
            let a = Anchor::from_bytes(raw.as_bytes().to_vec()).unwrap();
            assert_eq!(a.text_form(), None, "{raw}");
            assert!(!a.to_immutable_id().contains('-'), "{raw}");
            assert_eq!(Anchor::from_immutable_id(&a.to_immutable_id()).unwrap(), a);
        }
    }

    #[test]
    fn malformed_text_forms_are_rejected_with_the_text() {
        for bad in [
            "not-a-uuid",
            "+0112233-4455-6677-8899-aabbccddeeff",
            "0011223-34455-6677-8899-aabbccddeeff",
            "zz112233-4455-6677-8899-aabbccddeeff",
            "{00112233-4455-6677-8899-aabbccddeeff}",
        ] {
            assert_eq!(
                Anchor::from_immutable_id(bad),
                Err(AnchorError::NotAnImmutableId(bad.to_string()))
            );
        }
        assert!(Anchor::from_uuid_str("+0112233-4455-6677-8899-aabbccddeeff").is_err());
        assert!(matches!(
            Anchor::from_uuid_str("x"),
            Err(AnchorError::NotAUuid(t)) if t == "x"
        ));
        assert!(matches!(
            Anchor::from_ns_unique_id_str("x"),
            Err(AnchorError::NotAnNsUniqueId(t)) if t == "x"
        ));
        // The text's base64 would be a second ImmutableId for the same anchor.
        let b64 = STANDARD.encode(UUID);
        assert_eq!(
            Anchor::from_immutable_id(&b64),
            Err(AnchorError::Base64OfText(b64.clone(), UUID.to_string()))
        );
    }

    /// Why text form exists: two UUIDs whose base64 differs only in letter case (the first
    /// six bits 0 → `A`, 26 → `a`) would be one ImmutableId to Entra ID.
    #[test]
    fn text_form_tells_apart_uuids_whose_base64_differs_only_in_case() {
        let mut other = UUID_BYTES;
        other[0] = 26 << 2;
        let (x, y) = (STANDARD.encode(UUID_BYTES), STANDARD.encode(other));
        assert_ne!(x, y);
        assert!(x.eq_ignore_ascii_case(&y), "{x} {y}");
        let (x, y) = (
            Anchor::from_uuid_bytes(&UUID_BYTES).to_immutable_id(),
            Anchor::from_uuid_bytes(&other).to_immutable_id(),
        );
        assert!(!x.eq_ignore_ascii_case(&y), "{x} {y}");
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn every_anchor_round_trips_through_its_immutable_id(
                bytes in prop::collection::vec(any::<u8>(), 1..64),
                hexish in "[0-9a-fA-F-]{1,40}",
            ) {
                for bytes in [bytes, hexish.into_bytes()] {
                    let a = Anchor::from_bytes(bytes).unwrap();
                    let id = a.to_immutable_id();
                    prop_assert_eq!(id.contains('-'), a.text_form().is_some());
                    prop_assert_eq!(Anchor::from_immutable_id(&id).unwrap(), a);
                }
            }

            #[test]
            fn uuids_round_trip_from_bytes_and_text_of_any_case(
                bytes in any::<[u8; 16]>(), upper in any::<bool>()
            ) {
                let a = Anchor::from_uuid_bytes(&bytes);
                let id = a.to_immutable_id();
                prop_assert_eq!(id.len(), 36);
                prop_assert_eq!(&id, &id.to_ascii_lowercase());
                let shown = if upper { id.to_ascii_uppercase() } else { id.clone() };
                prop_assert_eq!(Anchor::from_uuid_str(&shown).unwrap(), a.clone());
                prop_assert_eq!(Anchor::from_immutable_id(&shown).unwrap(), a.clone());
                let ns = Anchor::from_ns_unique_id_bytes(&bytes);
                prop_assert_eq!(Anchor::from_immutable_id(&ns.to_immutable_id()).unwrap(), ns);
            }

            #[test]
            fn distinct_uuids_have_immutable_ids_distinct_ignoring_case(
                x in any::<[u8; 16]>(), y in any::<[u8; 16]>(), flip in 0usize..16
            ) {
                // Also a pair one bit apart, like time-based UUIDs from one host.
                let mut near = x;
                near[flip] ^= 0x20;
                for (a, b) in [(x, y), (x, near)] {
                    prop_assume!(a != b);
                    let (ia, ib) = (
                        Anchor::from_uuid_bytes(&a).to_immutable_id(),
                        Anchor::from_uuid_bytes(&b).to_immutable_id(),
                    );
                    prop_assert!(!ia.eq_ignore_ascii_case(&ib));
                    let (na, nb) = (
                        Anchor::from_ns_unique_id_bytes(&a).to_immutable_id(),
                        Anchor::from_ns_unique_id_bytes(&b).to_immutable_id(),
                    );
                    prop_assert!(!na.eq_ignore_ascii_case(&nb));
                }
            }
        }
    }
}
