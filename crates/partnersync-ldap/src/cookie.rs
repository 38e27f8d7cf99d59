//! The LDAP source's cookie: versioned, self-describing JSON.
//!
//! ```text
//! partnersync-ldap-cookie/2\n{"mechanism":"syncrepl","server":"…","scope":"…","state":{…},"known":["<ImmutableId>",…]}
//! ```
//! - `mechanism` and `server` (the DC's NTDS settings DN, or the URL and naming contexts)
//!   bind the cookie to where it came from: another DC, another server or another mechanism
//!   means a full read;
//! - `scope` fingerprints the bases, filter, OU lists, attributes and anchor: a cookie made
//!   for another scope would silently miss entries that came into scope;
//! - `known` lists the anchors in scope after the read, so deletions (and objects leaving
//!   the scope) are reported exactly: only anchors that were in scope are reported deleted.
//!   Anchors are written as their ImmutableId (base64, or the text of an entryUUID);
//!   version 1 held entryUUIDs as 16 bytes, which are other anchors, so it is refused.

use std::collections::BTreeSet;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use partnersync_core::Anchor;
use partnersync_source::Cookie;
use serde::{Deserialize, Serialize};

const MAGIC: &str = "partnersync-ldap-cookie/";
const VERSION: u32 = 2;

/// The mechanism-specific position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub(crate) enum DeltaState {
    /// Per base DN: the RFC 4533 cookie and the anchors in scope under that base.
    SyncRepl { bases: Vec<SyncBase> },
    /// The DirSync cookie (base64).
    DirSync { cookie: String },
    /// The highest committed USN when the previous read started, and the DC's invocationId.
    UsnChanged { usn: u64, invocation_id: String },
}

impl DeltaState {
    pub(crate) fn mechanism(&self) -> &'static str {
        match self {
            DeltaState::SyncRepl { .. } => "syncrepl",
            DeltaState::DirSync { .. } => "dirsync",
            DeltaState::UsnChanged { .. } => "usnchanged",
        }
    }
}

/// The syncrepl position of one base DN.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SyncBase {
    /// The server's cookie (base64), None until it issued one.
    pub cookie: Option<String>,
    /// The anchors in scope under this base.
    #[serde(with = "known_set")]
    pub known: BTreeSet<Vec<u8>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LdapCookie {
    pub server: String,
    pub scope: String,
    pub state: DeltaState,
    /// The anchors in scope (DirSync, uSNChanged; syncrepl keeps them per base).
    #[serde(with = "known_set", default)]
    pub known: BTreeSet<Vec<u8>>,
}

impl LdapCookie {
    pub(crate) fn encode(&self) -> Cookie {
        let json = serde_json::to_string(self).unwrap_or_default();
        Cookie::new(format!("{MAGIC}{VERSION}\n{json}").into_bytes())
    }

    /// Decodes a cookie, or says why it cannot be used (for `FullReadRequired`).
    pub(crate) fn decode(cookie: &Cookie) -> Result<Self, String> {
        let text = std::str::from_utf8(cookie.as_bytes())
            .map_err(|_| "the cookie was not issued by the LDAP source".to_string())?;
        let Some(rest) = text.strip_prefix(MAGIC) else {
            return Err("the cookie was not issued by the LDAP source".into());
        };
        let (version, json) = rest.split_once('\n').unwrap_or((rest, ""));
        if version != VERSION.to_string() {
            return Err(format!(
                "the cookie has format version {version}; this version of partnersync reads version {VERSION}"
            ));
        }
        serde_json::from_str(json).map_err(|e| format!("the cookie is damaged ({e})"))
    }
}

pub(crate) fn b64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

pub(crate) fn unb64(text: &str) -> Option<Vec<u8>> {
    B64.decode(text).ok()
}

mod known_set {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(set: &BTreeSet<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        let ids: Result<Vec<String>, _> = set
            .iter()
            .map(|a| Anchor::from_bytes(a.clone()).map(|a| a.to_immutable_id()))
            .collect();
        s.collect_seq(ids.map_err(serde::ser::Error::custom)?)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeSet<Vec<u8>>, D::Error> {
        let list = Vec::<String>::deserialize(d)?;
        list.iter()
            .map(|s| {
                Anchor::from_immutable_id(s)
                    .map(|a| a.as_bytes().to_vec())
                    .map_err(serde::de::Error::custom)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_round_trip_and_foreign_ones_are_refused() {
        let c = LdapCookie {
            server: "ldap://x|dc=x".into(),
            scope: "abc".into(),
            state: DeltaState::UsnChanged {
                usn: 42,
                invocation_id: "g".into(),
            },
            known: [vec![1u8, 2], vec![3]].into_iter().collect(),
        };
        let encoded = c.encode();
        assert!(encoded
            .as_bytes()
            .starts_with(b"partnersync-ldap-cookie/2\n{"));
        assert_eq!(LdapCookie::decode(&encoded).unwrap(), c);
        // Version 1 held entryUUID anchors as 16 bytes: a full read, not false deletions.
        let v1 = String::from_utf8(encoded.as_bytes().to_vec())
            .unwrap()
            .replacen("cookie/2", "cookie/1", 1);
        assert!(LdapCookie::decode(&Cookie::new(v1.into_bytes()))
            .unwrap_err()
            .contains("format version 1"));
        assert!(LdapCookie::decode(&Cookie::new(b"\xff".to_vec()))
            .unwrap_err()
            .contains("not issued by the LDAP source"));
        assert!(
            LdapCookie::decode(&Cookie::new(b"partnersync-ldap-cookie/9\n{}".to_vec()))
                .unwrap_err()
                .contains("version 9")
        );
        assert!(
            LdapCookie::decode(&Cookie::new(b"partnersync-ldap-cookie/2\n{".to_vec()))
                .unwrap_err()
                .contains("damaged")
        );
    }

    #[test]
    fn known_anchors_are_written_as_immutable_ids() {
        let uuid = Anchor::from_uuid_str("3b5c9e50-2f1a-103f-8e61-6b2b4d3c7041").unwrap();
        let c = LdapCookie {
            server: "ldap://x|dc=x".into(),
            scope: "abc".into(),
            state: DeltaState::SyncRepl {
                bases: vec![SyncBase {
                    cookie: Some(b64(b"rid=001,csn=1")),
                    known: [uuid.as_bytes().to_vec()].into_iter().collect(),
                }],
            },
            known: [vec![0xfb; 16]].into_iter().collect(),
        };
        let encoded = c.encode();
        let text = std::str::from_utf8(encoded.as_bytes()).unwrap();
        assert!(
            text.contains(r#""known":["3b5c9e50-2f1a-103f-8e61-6b2b4d3c7041"]"#),
            "{text}"
        );
        assert!(
            text.contains(r#""known":["+/v7+/v7+/v7+/v7+/v7+w=="]"#),
            "{text}"
        );
        assert_eq!(LdapCookie::decode(&encoded).unwrap(), c);
    }
}
