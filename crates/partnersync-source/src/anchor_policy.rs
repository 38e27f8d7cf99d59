use std::fmt;

use partnersync_core::{Anchor, AnchorError, AttributeName, AttributeValue, Attributes};

use crate::error::AnchorProblem;

/// How an anchor attribute's value becomes an [`Anchor`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AnchorEncoding {
    /// A Microsoft GUID (`objectGUID`, `ms-DS-ConsistencyGuid`): 16 raw bytes, kept as they
    /// are; a GUID string is accepted too and converted to Microsoft's mixed-endian byte order.
    /// The ImmutableId is base64 of the 16 bytes, as Entra Connect writes it.
    MicrosoftGuid,
    /// An RFC 4122 UUID (`entryUUID`), as text of any case or as 16 raw bytes in RFC
    /// (big-endian, textual) order. The anchor is in text form, the canonical lowercase
    /// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` ([`Anchor::from_uuid_str`]), which is also its
    /// ImmutableId: Entra ID compares ImmutableIds ignoring case, and the base64 of
    /// OpenLDAP's time-based UUIDs, which share most of their bytes, can differ only in case.
    Uuid,
    /// 389 Directory Server's `nsUniqueId` (`xxxxxxxx-xxxxxxxx-xxxxxxxx-xxxxxxxx`), as text or
    /// as 16 raw bytes in textual order. Like [`AnchorEncoding::Uuid`], the anchor is its
    /// canonical lowercase text ([`Anchor::from_ns_unique_id_str`]).
    NsUniqueId,
    /// The value's bytes as they are (any other attribute, e.g. an employee number).
    Raw,
}

impl AnchorEncoding {
    /// The encoding of a well-known anchor attribute, or [`AnchorEncoding::Raw`].
    pub fn for_attribute(name: &str) -> Self {
        if name.eq_ignore_ascii_case("objectGUID")
            || name.eq_ignore_ascii_case("ms-DS-ConsistencyGuid")
        {
            AnchorEncoding::MicrosoftGuid
        } else if name.eq_ignore_ascii_case("entryUUID") {
            AnchorEncoding::Uuid
        } else if name.eq_ignore_ascii_case("nsUniqueId") {
            AnchorEncoding::NsUniqueId
        } else {
            AnchorEncoding::Raw
        }
    }

    /// Turns one attribute value into an anchor, or says what was expected.
    pub fn decode(self, value: &AttributeValue) -> Result<Anchor, String> {
        let bytes = value.as_bytes();
        // 16 bytes are never the text of a GUID, UUID or nsUniqueId, so they are the raw
        // identifier even when they happen to be valid UTF-8.
        let raw16: Option<&[u8; 16]> = bytes.try_into().ok();
        let text = || value.as_text().unwrap_or_default();
        match (self, raw16) {
            (AnchorEncoding::MicrosoftGuid, Some(raw)) => Anchor::from_bytes(raw.to_vec()),
            (AnchorEncoding::MicrosoftGuid, None) if text().trim().len() >= 32 => {
                Anchor::from_guid_str(text())
            }
            (AnchorEncoding::MicrosoftGuid, None) => {
                return Err(format!(
                    "expected a 16-byte binary GUID (base64-encoded after '::' in LDIF) or a \
                     GUID string, found {} bytes",
                    bytes.len()
                ))
            }
            (AnchorEncoding::Uuid, Some(raw)) => Ok(Anchor::from_uuid_bytes(raw)),
            (AnchorEncoding::Uuid, None) => Anchor::from_uuid_str(text())
                .map_err(|_| AnchorError::NotAUuid(value.to_text_lossy().into_owned())),
            (AnchorEncoding::NsUniqueId, Some(raw)) => Ok(Anchor::from_ns_unique_id_bytes(raw)),
            (AnchorEncoding::NsUniqueId, None) => Anchor::from_ns_unique_id_str(text())
                .map_err(|_| AnchorError::NotAnNsUniqueId(value.to_text_lossy().into_owned())),
            (AnchorEncoding::Raw, _) => Anchor::from_bytes(bytes.to_vec()),
        }
        .map_err(|e| e.to_string())
    }
}

impl fmt::Display for AnchorEncoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AnchorEncoding::MicrosoftGuid => "Microsoft GUID",
            AnchorEncoding::Uuid => "RFC 4122 UUID",
            AnchorEncoding::NsUniqueId => "nsUniqueId",
            AnchorEncoding::Raw => "raw bytes",
        })
    }
}

/// One attribute an anchor may come from, and how to decode it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AnchorAttribute {
    /// The attribute name (case-insensitive).
    pub name: AttributeName,
    /// How its value becomes an anchor.
    pub encoding: AnchorEncoding,
}

impl AnchorAttribute {
    /// An anchor attribute whose encoding follows from its name (see
    /// [`AnchorEncoding::for_attribute`]).
    pub fn new(name: &str) -> Self {
        AnchorAttribute {
            name: AttributeName::new(name),
            encoding: AnchorEncoding::for_attribute(name),
        }
    }

    /// An anchor attribute with an explicit encoding.
    pub fn with_encoding(name: &str, encoding: AnchorEncoding) -> Self {
        AnchorAttribute {
            name: AttributeName::new(name),
            encoding,
        }
    }
}

/// Which attributes an entry's [`Anchor`] comes from: the first of them that is present
/// decides (a present but unusable one is an error, never skipped, so an entry's anchor
/// cannot silently switch attributes).
///
/// The default tries `objectGUID`, then `entryUUID`, then `nsUniqueId`. Active Directory
/// setups that follow Entra Connect's choice use
/// `AnchorPolicy::new(["ms-DS-ConsistencyGuid", "objectGUID"])`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AnchorPolicy {
    attributes: Vec<AnchorAttribute>,
}

impl Default for AnchorPolicy {
    fn default() -> Self {
        AnchorPolicy::new(["objectGUID", "entryUUID", "nsUniqueId"])
    }
}

impl AnchorPolicy {
    /// Tries the named attributes in order, each decoded as its name suggests.
    pub fn new<'a>(names: impl IntoIterator<Item = &'a str>) -> Self {
        AnchorPolicy {
            attributes: names.into_iter().map(AnchorAttribute::new).collect(),
        }
    }

    /// Tries the given attributes in order.
    pub fn from_attributes(attributes: Vec<AnchorAttribute>) -> Self {
        AnchorPolicy { attributes }
    }

    /// The attributes tried, in order.
    pub fn attributes(&self) -> &[AnchorAttribute] {
        &self.attributes
    }

    /// The anchor of an entry with these attributes.
    pub fn anchor_of(&self, attributes: &Attributes) -> Result<Anchor, AnchorProblem> {
        for candidate in &self.attributes {
            let Some(values) = attributes.get(candidate.name.as_str()) else {
                continue;
            };
            return match values {
                [value] => {
                    candidate
                        .encoding
                        .decode(value)
                        .map_err(|reason| AnchorProblem::Malformed {
                            attribute: candidate.name.to_string(),
                            reason,
                        })
                }
                _ => Err(AnchorProblem::MultipleValues {
                    attribute: candidate.name.to_string(),
                    count: values.len(),
                }),
            };
        }
        Err(AnchorProblem::Missing {
            tried: self.attributes.iter().map(|a| a.name.to_string()).collect(),
        })
    }

    /// A stable fingerprint of the policy, for cookies: a cookie made under another policy
    /// has other anchors and must not be used.
    pub(crate) fn fingerprint(&self, hasher: &mut crate::digest::Fnv64) {
        for a in &self.attributes {
            hasher.write_str_lowercase(a.name.as_str());
            hasher.write(a.encoding.to_string().as_bytes());
            // Cookies from builds that kept these anchors as 16 bytes hold other anchors.
            if matches!(
                a.encoding,
                AnchorEncoding::Uuid | AnchorEncoding::NsUniqueId
            ) {
                hasher.write(b" as text");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(pairs: &[(&str, AttributeValue)]) -> Attributes {
        let mut a = Attributes::new();
        for (n, v) in pairs {
            a.insert(*n, v.clone());
        }
        a
    }

    #[test]
    fn object_guid_bytes_are_kept_and_guid_strings_use_microsoft_order() {
        let policy = AnchorPolicy::default();
        let raw: Vec<u8> = (0u8..16).collect();
        let a = policy
            .anchor_of(&attrs(&[(
                "objectguid",
                AttributeValue::Binary(raw.clone()),
            )]))
            .unwrap();
        assert_eq!(a.as_bytes(), raw.as_slice());
        let s = policy
            .anchor_of(&attrs(&[(
                "objectGUID",
                "{00112233-4455-6677-8899-aabbccddeeff}".into(),
            )]))
            .unwrap();
        assert_eq!(
            s,
            Anchor::from_guid_str("00112233-4455-6677-8899-aabbccddeeff").unwrap()
        );
        assert_eq!(s.as_bytes()[0], 0x33);
    }

    #[test]
    fn entry_uuid_is_its_lowercase_text() {
        let a = AnchorPolicy::default()
            .anchor_of(&attrs(&[(
                "entryUUID",
                "00112233-4455-6677-8899-AABBCCDDEEFF".into(),
            )]))
            .unwrap();
        assert_eq!(a.as_bytes(), b"00112233-4455-6677-8899-aabbccddeeff");
        assert_eq!(a.to_immutable_id(), "00112233-4455-6677-8899-aabbccddeeff");
    }

    /// syncrepl names entries by their syncUUID, the entryUUID's 16 bytes in RFC order; it
    /// must be the same anchor as the entry's entryUUID text.
    #[test]
    fn entry_uuid_text_and_its_16_bytes_are_the_same_anchor() {
        let raw: [u8; 16] = [
            0x3b, 0x5c, 0x9e, 0x50, 0x2f, 0x1a, 0x10, 0x3f, 0x8e, 0x61, 0x6b, 0x2b, 0x4d, 0x3c,
            0x70, 0x41,
        ];
        let text = "3b5c9e50-2f1a-103f-8e61-6b2b4d3c7041";
        let policy = AnchorPolicy::default();
        let from_text = policy
            .anchor_of(&attrs(&[("entryUUID", text.into())]))
            .unwrap();
        let from_binary = policy
            .anchor_of(&attrs(&[(
                "entryUUID",
                AttributeValue::Binary(raw.to_vec()),
            )]))
            .unwrap();
        assert_eq!(from_text, from_binary);
        assert_eq!(from_text, Anchor::from_uuid_bytes(&raw));
        assert_eq!(
            AnchorEncoding::Uuid.decode(&AttributeValue::from_bytes(raw.to_vec())),
            Ok(from_text.clone())
        );
        // 16 bytes that happen to be UTF-8 are still the raw UUID, never text.
        let ascii = *b"0123456789abcdef";
        assert_eq!(
            AnchorEncoding::Uuid.decode(&AttributeValue::from_bytes(ascii.to_vec())),
            Ok(Anchor::from_uuid_bytes(&ascii))
        );
    }

    #[test]
    fn ns_unique_id_is_its_lowercase_text() {
        let policy = AnchorPolicy::default();
        let a = policy
            .anchor_of(&attrs(&[(
                "nsUniqueId",
                "00112233-44556677-8899AABB-ccddeeff".into(),
            )]))
            .unwrap();
        assert_eq!(a.as_bytes(), b"00112233-44556677-8899aabb-ccddeeff");
        let raw: Vec<u8> = (0u8..16).map(|i| i * 0x11).collect();
        let binary = policy
            .anchor_of(&attrs(&[("nsUniqueId", AttributeValue::Binary(raw))]))
            .unwrap();
        assert_eq!(binary, a);
    }

    #[test]
    fn the_first_present_attribute_decides() {
        let both = attrs(&[
            ("entryUUID", "00112233-4455-6677-8899-aabbccddeeff".into()),
            ("objectGUID", AttributeValue::Binary(vec![7; 16])),
        ]);
        assert_eq!(
            AnchorPolicy::default().anchor_of(&both).unwrap().as_bytes(),
            &[7; 16]
        );
        let bad_guid = attrs(&[
            ("objectGUID", AttributeValue::Binary(vec![7; 5])),
            ("entryUUID", "00112233-4455-6677-8899-aabbccddeeff".into()),
        ]);
        let err = AnchorPolicy::default().anchor_of(&bad_guid).unwrap_err();
        assert!(
            matches!(&err, AnchorProblem::Malformed { attribute, .. } if attribute == "objectGUID")
        );
        assert!(err.to_string().contains("found 5 bytes"), "{err}");
    }

    #[test]
    fn problems_are_reported() {
        let policy = AnchorPolicy::default();
        let err = policy.anchor_of(&attrs(&[("cn", "x".into())])).unwrap_err();
        assert_eq!(
            err,
            AnchorProblem::Missing {
                tried: vec!["objectGUID".into(), "entryUUID".into(), "nsUniqueId".into()]
            }
        );
        assert!(err
            .to_string()
            .contains("none of objectGUID, entryUUID, nsUniqueId is present"));
        let two = attrs(&[("entryUUID", "a".into()), ("entryUUID", "b".into())]);
        assert_eq!(
            policy.anchor_of(&two).unwrap_err(),
            AnchorProblem::MultipleValues {
                attribute: "entryUUID".into(),
                count: 2
            }
        );
        let bad = policy
            .anchor_of(&attrs(&[("entryUUID", "not-a-uuid".into())]))
            .unwrap_err();
        assert!(
            bad.to_string().contains("'not-a-uuid' is not a UUID"),
            "{bad}"
        );
        let bad = policy
            .anchor_of(&attrs(&[("nsUniqueId", "00112233-4455".into())]))
            .unwrap_err();
        assert!(bad.to_string().contains("is not an nsUniqueId"), "{bad}");
        for text in [
            "0011223-34455-6677-8899-aabbccddeeff",
            "zz112233-4455-6677-8899-aabbccddeeff",
            "+0112233-4455-6677-8899-aabbccddeeff",
        ] {
            assert!(AnchorEncoding::Uuid.decode(&text.into()).is_err(), "{text}");
        }
    }

    #[test]
    fn custom_attributes_are_raw() {
        let policy = AnchorPolicy::new(["employeeNumber"]);
        let a = policy
            .anchor_of(&attrs(&[("EMPLOYEENUMBER", "E-1001".into())]))
            .unwrap();
        assert_eq!(a.as_bytes(), b"E-1001");
        let empty = policy
            .anchor_of(&attrs(&[("employeeNumber", "".into())]))
            .unwrap_err();
        assert!(matches!(empty, AnchorProblem::Malformed { .. }));
        let explicit = AnchorPolicy::from_attributes(vec![AnchorAttribute::with_encoding(
            "uid",
            AnchorEncoding::Raw,
        )]);
        assert_eq!(explicit.attributes()[0].encoding, AnchorEncoding::Raw);
        assert_eq!(
            AnchorAttribute::new("ms-DS-ConsistencyGuid").encoding,
            AnchorEncoding::MicrosoftGuid
        );
    }
}
