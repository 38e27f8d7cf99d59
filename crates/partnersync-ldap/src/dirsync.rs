//! Active Directory's DirSync control (MS-ADTS 3.1.1.3.4.1.3, OID 1.2.840.113556.1.4.841).
//!
//! DirSync returns the objects whose *requested* attributes changed since the cookie, with
//! only the changed attributes, and deleted objects as tombstones (`isDeleted: TRUE`). A sync
//! wants whole entries in scope, so each changed live object is read again with the
//! configured filter: found and in scope → an entry; otherwise, if it was in scope → deleted.
//! The base must be the naming-context head; the filter must match tombstones (hence
//! `change_filter`, not `objectCategory`). The more-data loop runs until the DC says it is
//! done (Samba returns everything at once; AD pages by size).

use std::collections::BTreeSet;

use bytes::BytesMut;
use ldap3::asn1::{parse_tag, parse_uint, ASNTag, Integer, OctetString, Sequence, Tag, PL};
use ldap3::controls::RawControl;
use ldap3::Scope;
use partnersync_core::Anchor;

use crate::error::LdapSourceError;
use crate::read::{resolve_ranges, Emitter, Plan, Scoped};
use crate::session::{RawEntry, Session, DIRSYNC_OID};

/// Attributes every DirSync request carries: `name` so every changed object is returned
/// (objects with none of the requested attributes are skipped) and renames are reported.
const DIRSYNC_ATTRS: &[&str] = &["objectGUID", "name", "isDeleted", "instanceType"];

/// A filter that matches nothing: used to obtain a cookie at the current position without
/// transferring the directory.
const MATCH_NOTHING: &str = "(&(objectClass=user)(!(objectClass=user)))";

fn request(cookie: &[u8]) -> Result<RawControl, LdapSourceError> {
    let seq = Tag::Sequence(Sequence {
        inner: vec![
            Tag::Integer(Integer {
                inner: 0,
                ..Default::default()
            }),
            Tag::Integer(Integer {
                inner: 0,
                ..Default::default()
            }),
            Tag::OctetString(OctetString {
                inner: cookie.to_vec(),
                ..Default::default()
            }),
        ],
        ..Default::default()
    })
    .into_structure();
    let mut buf = BytesMut::new();
    ldap3::asn1::write::encode_into(&mut buf, seq).map_err(|e| LdapSourceError::Protocol {
        url: String::new(),
        reason: format!("cannot encode the DirSync control: {e}"),
    })?;
    Ok(RawControl {
        ctype: DIRSYNC_OID.into(),
        crit: true,
        val: Some(buf.to_vec()),
    })
}

/// The response value: SEQUENCE { MoreResults INTEGER, unused INTEGER, CookieServer OCTET STRING }.
pub(crate) fn parse_response(val: &[u8]) -> Option<(bool, Vec<u8>)> {
    let parts = parse_tag(val).ok()?.1.expect_constructed()?;
    let more = match &parts.first()?.payload {
        PL::P(b) => parse_uint(b).ok()?.1 != 0,
        PL::C(_) => return None,
    };
    let cookie = match &parts.get(2)?.payload {
        PL::P(b) => b.clone(),
        PL::C(_) => return None,
    };
    Some((more, cookie))
}

/// One DirSync pass with the more-data loop; every returned object goes to `each`.
async fn pass(
    session: &mut Session,
    plan: &Plan,
    filter: &str,
    attrs: Vec<String>,
    mut cookie: Vec<u8>,
    mut each: impl FnMut(RawEntry),
) -> Result<Vec<u8>, LdapSourceError> {
    let nc = plan.naming_context.clone();
    for _round in 0..100_000 {
        let mut search = session
            .search(
                &nc,
                Scope::Subtree,
                filter,
                attrs.clone(),
                vec![request(&cookie)?],
                None,
            )
            .await?;
        while let Some(raw) = search.next().await? {
            each(raw);
        }
        let (res, info) = search.finish().await?;
        let value = res
            .ctrls
            .iter()
            .find(|c| c.1.ctype == DIRSYNC_OID)
            .and_then(|c| c.1.val.clone());
        match res.rc {
            0 => {}
            50 => {
                return Err(LdapSourceError::DirSyncPrivilegeMissing {
                    bind_dn: session.bind_dn.clone(),
                    naming_context: nc,
                    text: res.text.trim().to_string(),
                })
            }
            12 => {
                return Err(LdapSourceError::ControlNotSupported {
                    url: info.url.clone(),
                    mechanism: "dirsync",
                    control_name: "DirSync",
                    oid: DIRSYNC_OID,
                })
            }
            _ => return Err(info.result_error(res, &format!("DirSync on '{nc}'"), &nc)),
        }
        let Some((more, next)) = value.as_deref().and_then(parse_response) else {
            return Err(LdapSourceError::Protocol {
                url: info.url.clone(),
                reason: "the DirSync reply carries no readable DirSync control".into(),
            });
        };
        cookie = next;
        if !more {
            return Ok(cookie);
        }
    }
    Err(LdapSourceError::Protocol {
        url: session.info.url.clone(),
        reason: "DirSync kept saying more data is available".into(),
    })
}

/// A cookie for "now", taken before a full read (changes during the read come again).
pub(crate) async fn initial_cookie(
    session: &mut Session,
    plan: &Plan,
) -> Result<Vec<u8>, LdapSourceError> {
    let attrs = DIRSYNC_ATTRS.iter().map(|s| s.to_string()).collect();
    pass(session, plan, MATCH_NOTHING, attrs, Vec::new(), |_| {}).await
}

/// The changes since `cookie`; updates `known` and returns the next cookie.
pub(crate) async fn delta(
    session: &mut Session,
    plan: &Plan,
    cookie: Vec<u8>,
    known: &mut BTreeSet<Vec<u8>>,
    out: &mut Emitter,
) -> Result<Vec<u8>, LdapSourceError> {
    let mut attrs: Vec<String> = DIRSYNC_ATTRS.iter().map(|s| s.to_string()).collect();
    for a in &plan.attrs {
        if !attrs.iter().any(|x| x.eq_ignore_ascii_case(a)) {
            attrs.push(a.clone());
        }
    }
    let mut tombstones: Vec<Vec<u8>> = Vec::new();
    let mut live: Vec<(String, Option<Vec<u8>>)> = Vec::new();
    let change_filter = plan.change_filter.clone();
    let next = pass(session, plan, &change_filter, attrs, cookie, |raw| {
        let guid = raw
            .attrs
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("objectGUID"))
            .and_then(|(_, v)| v.first().cloned());
        let deleted = raw.attrs.iter().any(|(n, v)| {
            n.eq_ignore_ascii_case("isDeleted")
                && v.first().is_some_and(|x| x.eq_ignore_ascii_case(b"TRUE"))
        });
        match (deleted, guid) {
            (true, Some(g)) => tombstones.push(g),
            (true, None) => {}
            (false, g) => live.push((raw.dn, g)),
        }
    })
    .await?;
    let mut sent: BTreeSet<Vec<u8>> = BTreeSet::new();
    let mut gone: BTreeSet<Vec<u8>> = tombstones.into_iter().collect();
    let mut side = session.ldap.clone();
    let info = session.info.clone();
    for (entry_dn, guid) in live {
        let found = match crate::session::search_all(
            &mut side,
            &info,
            &entry_dn,
            Scope::Base,
            &plan.filter,
            &plan.attrs.iter().map(String::as_str).collect::<Vec<_>>(),
            vec![],
        )
        .await
        {
            Ok(found) => found,
            // Deleted or moved since DirSync named it: the next pass reports it.
            Err(LdapSourceError::NoSuchBase { .. }) => Vec::new(),
            Err(e) => return Err(e),
        };
        match found.into_iter().next() {
            Some(mut raw) => {
                resolve_ranges(&mut side, &info, &mut raw).await?;
                match plan.to_entry(raw, false)? {
                    Scoped::In(entry) => {
                        sent.insert(entry.anchor.as_bytes().to_vec());
                        out.entry(entry).await?;
                    }
                    Scoped::Out(anchor) => {
                        gone.insert(anchor.as_bytes().to_vec());
                    }
                }
            }
            None => {
                if let Some(g) = guid {
                    gone.insert(g);
                }
            }
        }
    }
    for a in gone {
        if sent.contains(&a) || !known.remove(&a) {
            continue;
        }
        if let Ok(anchor) = Anchor::from_bytes(a) {
            out.deleted(anchor).await?;
        }
    }
    known.extend(sent);
    out.flush().await?;
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_control_round_trips_through_ber() {
        let c = request(b"MSDS").unwrap();
        assert!(c.crit);
        let val = c.val.unwrap();
        // The request has the same shape as the response: flags, size, cookie.
        assert_eq!(parse_response(&val), Some((false, b"MSDS".to_vec())));
        assert_eq!(parse_response(&[0x30, 0x00]), None);
        assert_eq!(parse_response(b"junk"), None);
    }
}
