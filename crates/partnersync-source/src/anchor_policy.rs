use std::fmt;

use partnersync_core::{Anchor, AttributeName, AttributeValue, Attributes};

use crate::error::AnchorProblem;

/// How an anchor attribute's value becomes anchor bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AnchorEncoding {
    /// A Microsoft GUID (`objectGUID`, `ms-DS-ConsistencyGuid`): 16 raw bytes, kept as they
    /// are; a GUID string is accepted too and converted to Microsoft's mixed-endian byte order.
    MicrosoftGuid,
    /// An RFC 4122 UUID string (`entryUUID`): its 16 bytes in RFC (big-endian, textual)
    /// order — *not* Microsoft's mixed-endian order. 16 raw bytes are kept as they are.
    Uuid,
    /// 389 Directory Server's `nsUniqueId` (`xxxxxxxx-xxxxxxxx-xxxxxxxx-xxxxxxxx`): the 32 hex
    /// digits as 16 bytes, in textual order.
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

    /// Turns one attribute value into anchor bytes, or says what was expected.
    pub fn decode(self, value: &AttributeValue) -> Result<Anchor, String> {
        let bytes = value.as_bytes();
        let anchor = match self {
            AnchorEncoding::MicrosoftGuid if bytes.len() == 16 => {
                Anchor::from_bytes(bytes.to_vec())
            }
            AnchorEncoding::MicrosoftGuid => match value.as_text() {
                Some(text) if text.trim().len() >= 32 => Anchor::from_guid_str(text),
                _ => {
                    return Err(format!(
                        "expected a 16-byte binary GUID (base64-encoded after '::' in LDIF) or a \
                         GUID string, found {} bytes",
                        bytes.len()
                    ))
                }
            },
            AnchorEncoding::Uuid if bytes.len() == 16 && value.as_text().is_none() => {
                Anchor::from_bytes(bytes.to_vec())
            }
            AnchorEncoding::Uuid => {
                return value
                    .as_text()
                    .and_then(uuid_bytes)
                    .and_then(|b| Anchor::from_bytes(b.to_vec()).ok())
                    .ok_or_else(|| {
                        format!(
                            "'{}' is not a UUID (expected xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)",
                            value.to_text_lossy()
                        )
                    })
            }
            AnchorEncoding::NsUniqueId => {
                return value
                    .as_text()
                    .and_then(ns_unique_id_bytes)
                    .and_then(|b| Anchor::from_bytes(b.to_vec()).ok())
                    .ok_or_else(|| {
                        format!(
                            "'{}' is not an nsUniqueId (expected \
                             xxxxxxxx-xxxxxxxx-xxxxxxxx-xxxxxxxx)",
                            value.to_text_lossy()
                        )
                    })
            }
            AnchorEncoding::Raw => Anchor::from_bytes(bytes.to_vec()),
        };
        anchor.map_err(|e| e.to_string())
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
    /// How its value becomes anchor bytes.
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
        }
    }
}

/// 16 bytes from 32 hex digits, ignoring `-` separators wherever they are.
fn hex16(text: &str) -> Option<[u8; 16]> {
    let digits: Vec<u8> = text.bytes().filter(|b| *b != b'-').collect();
    if digits.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (slot, pair) in out.iter_mut().zip(digits.chunks(2)) {
        let pair = std::str::from_utf8(pair).ok()?;
        *slot = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(out)
}

/// An RFC 4122 UUID string (optionally in braces) as its 16 bytes in textual order.
fn uuid_bytes(text: &str) -> Option<[u8; 16]> {
    let t = text.trim();
    let t = t
        .strip_prefix('{')
        .and_then(|s| s.strip_suffix('}'))
        .unwrap_or(t);
    let groups: Vec<&str> = t.split('-').collect();
    if groups.iter().map(|g| g.len()).ne([8, 4, 4, 4, 12]) {
        return None;
    }
    hex16(t)
}

/// An `nsUniqueId` (`xxxxxxxx-xxxxxxxx-xxxxxxxx-xxxxxxxx`) as 16 bytes in textual order.
fn ns_unique_id_bytes(text: &str) -> Option<[u8; 16]> {
    let t = text.trim();
    if t.split('-').map(|g| g.len()).ne([8, 8, 8, 8]) {
        return None;
    }
    hex16(t)
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
    fn entry_uuid_uses_rfc_byte_order() {
        let a = AnchorPolicy::default()
            .anchor_of(&attrs(&[(
                "entryUUID",
                "00112233-4455-6677-8899-AABBCCDDEEFF".into(),
            )]))
            .unwrap();
        assert_eq!(
            a.as_bytes(),
            &[
                0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd,
                0xee, 0xff
            ]
        );
    }

    #[test]
    fn ns_unique_id_is_hex_in_textual_order() {
        let a = AnchorPolicy::default()
            .anchor_of(&attrs(&[(
                "nsUniqueId",
                "00112233-44556677-8899aabb-ccddeeff".into(),
            )]))
            .unwrap();
        assert_eq!(a.as_bytes()[..4], [0x00, 0x11, 0x22, 0x33]);
        assert_eq!(a.as_bytes().len(), 16);
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
        assert!(uuid_bytes("0011223-34455-6677-8899-aabbccddeeff").is_none());
        assert!(uuid_bytes("zz112233-4455-6677-8899-aabbccddeeff").is_none());
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
