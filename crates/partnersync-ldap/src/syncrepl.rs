//! RFC 4533 content synchronisation, refreshOnly (OpenLDAP syncprov, 389-ds content sync).
//!
//! One refreshOnly search per base DN. With the delete phase (syncprov's session log) the
//! server lists the entryUUIDs deleted or out of the filter since the cookie; with the
//! present phase (e.g. after a server restart) it lists every entryUUID still there, and the
//! ones we knew but were neither present nor sent are the deleted ones. Deletions are only
//! reported for anchors that were in scope (the cookie keeps them per base), because syncprov
//! also names entries that never matched.
//!
//! The server names entries by syncUUID, the entryUUID as 16 bytes in RFC order, while an
//! entry's anchor is its entryUUID in text form: every syncUUID becomes that anchor
//! ([`Anchor::from_uuid_bytes`]) before it is compared, kept or reported.

use std::collections::{BTreeSet, HashSet};
use std::panic::{catch_unwind, AssertUnwindSafe};

use ldap3::controls::{
    parse_syncinfo, Control, ControlType, EntryState, MakeCritical, RawControl, RefreshMode,
    SyncDone, SyncInfo, SyncRequest, SyncState,
};
use ldap3::Scope;
use partnersync_core::Anchor;

use crate::cookie::{b64, unb64, SyncBase};
use crate::error::LdapSourceError;
use crate::read::{resolve_ranges, Emitter, Plan, Scoped};
use crate::session::{Item, Session};

/// RFC 4533's e-syncRefreshRequired result code.
const SYNC_REFRESH_REQUIRED: u32 = 4096;

/// What a syncrepl pass produced.
pub(crate) enum SyncOutcome {
    Done(Vec<SyncBase>),
    /// The server asked for a full reload (cookie too old).
    RefreshRequired(String),
}

/// A filter no entry matches (on the entryUUID index syncprov setups have): a refreshOnly
/// search with it costs nothing and returns a
/// cookie for "now".
const MATCH_NOTHING: &str = "(entryUUID=00000000-0000-0000-0000-000000000000)";

/// A cookie per base for "now", with no known anchors yet.
pub(crate) async fn initial_cookies(
    session: &mut Session,
    plan: &Plan,
) -> Result<Vec<SyncBase>, LdapSourceError> {
    let mut probe = plan.clone();
    probe.filter = MATCH_NOTHING.to_string();
    probe.attrs = vec!["1.1".to_string()];
    let (tx, _rx) = tokio::sync::mpsc::channel(1);
    let mut nothing = Emitter::new(tx);
    match run(session, &probe, None, &mut nothing).await? {
        SyncOutcome::Done(bases) => Ok(bases),
        SyncOutcome::RefreshRequired(reason) => Err(LdapSourceError::Protocol {
            url: session.info.url.clone(),
            reason,
        }),
    }
}

/// Runs refreshOnly on every base. `previous` is None for the initial (full) read.
pub(crate) async fn run(
    session: &mut Session,
    plan: &Plan,
    previous: Option<Vec<SyncBase>>,
    out: &mut Emitter,
) -> Result<SyncOutcome, LdapSourceError> {
    let initial = previous.is_none();
    let previous = previous.unwrap_or_else(|| {
        plan.bases
            .iter()
            .map(|_| SyncBase {
                cookie: None,
                known: BTreeSet::new(),
            })
            .collect()
    });
    let mut next_bases = Vec::new();
    let mut deletions: BTreeSet<Vec<u8>> = BTreeSet::new();
    let mut sent_all: HashSet<Vec<u8>> = HashSet::new();
    let mut side = session.ldap.clone();
    for (base, prev) in plan.bases.iter().zip(previous) {
        let cookie = prev.cookie.as_deref().and_then(unb64);
        let request: RawControl = SyncRequest {
            mode: RefreshMode::RefreshOnly,
            cookie,
            reload_hint: false,
        }
        .critical()
        .into();
        let info = session.info.clone();
        let mut search = session
            .search(
                base,
                Scope::Subtree,
                &plan.filter,
                plan.attrs.clone(),
                vec![request],
                None,
            )
            .await?;
        let mut new_cookie: Option<Vec<u8>> = None;
        // Anchor bytes (text form), like `present`, `sent` and `out_of_scope`.
        let mut deleted_uuids: HashSet<Vec<u8>> = HashSet::new();
        let mut present: HashSet<Vec<u8>> = HashSet::new();
        let mut present_phase = false;
        let mut sent: HashSet<Vec<u8>> = HashSet::new();
        let mut out_of_scope: HashSet<Vec<u8>> = HashSet::new();
        let mut count = 0u64;
        while let Some(item) = search.next_item().await? {
            match item {
                Item::Intermediate(re) => {
                    let info_msg =
                        catch_unwind(AssertUnwindSafe(|| parse_syncinfo(re))).map_err(|_| {
                            LdapSourceError::Protocol {
                                url: info.url.clone(),
                                reason: format!(
                                    "an unreadable syncInfo message during syncrepl on {base}"
                                ),
                            }
                        })?;
                    match info_msg {
                        SyncInfo::NewCookie(c) => new_cookie = Some(c),
                        SyncInfo::RefreshDelete { cookie, .. } => {
                            if cookie.is_some() {
                                new_cookie = cookie;
                            }
                        }
                        SyncInfo::RefreshPresent { cookie, .. } => {
                            present_phase = true;
                            if cookie.is_some() {
                                new_cookie = cookie;
                            }
                        }
                        SyncInfo::SyncIdSet {
                            cookie,
                            refresh_deletes,
                            sync_uuids,
                        } => {
                            if cookie.is_some() {
                                new_cookie = cookie;
                            }
                            let anchors = sync_uuids
                                .iter()
                                .map(|u| sync_uuid_anchor(u, &info.url, base))
                                .collect::<Result<Vec<_>, _>>()?;
                            if refresh_deletes {
                                deleted_uuids.extend(anchors);
                            } else {
                                present_phase = true;
                                present.extend(anchors);
                            }
                        }
                    }
                }
                Item::Entry(mut raw) => {
                    let state =
                        sync_state(&raw.controls).map_err(|reason| LdapSourceError::Protocol {
                            url: info.url.clone(),
                            reason: format!("{reason} on entry {}", raw.dn),
                        })?;
                    if let Some(state) = &state {
                        if let Some(c) = &state.cookie {
                            new_cookie = Some(c.clone());
                        }
                        match state.state {
                            EntryState::Present => {
                                present.insert(sync_uuid_anchor(
                                    &state.entry_uuid,
                                    &info.url,
                                    base,
                                )?);
                                continue;
                            }
                            EntryState::Delete => {
                                deleted_uuids.insert(sync_uuid_anchor(
                                    &state.entry_uuid,
                                    &info.url,
                                    base,
                                )?);
                                continue;
                            }
                            EntryState::Add | EntryState::Modify => {}
                        }
                    }
                    count += 1;
                    resolve_ranges(&mut side, &info, &mut raw).await?;
                    match plan.to_entry(raw, true)? {
                        Scoped::In(entry) => {
                            sent.insert(entry.anchor.as_bytes().to_vec());
                            out.entry(entry).await?;
                        }
                        Scoped::Out(anchor) => {
                            out_of_scope.insert(anchor.as_bytes().to_vec());
                        }
                    }
                }
            }
        }
        let (res, info) = search.finish().await?;
        for c in &res.ctrls {
            if c.1.ctype == "1.3.6.1.4.1.4203.1.9.1.3" {
                let done: SyncDone = catch_unwind(AssertUnwindSafe(|| c.1.parse::<SyncDone>()))
                    .map_err(|_| LdapSourceError::Protocol {
                        url: info.url.clone(),
                        reason: format!("an unreadable Sync Done control from syncrepl on {base}"),
                    })?;
                if done.cookie.is_some() {
                    new_cookie = done.cookie;
                }
                if !done.refresh_deletes && !initial {
                    present_phase = true;
                }
            }
        }
        match res.rc {
            0 => {}
            SYNC_REFRESH_REQUIRED => {
                return Ok(SyncOutcome::RefreshRequired(format!(
                    "the server asked for a full reload of {base} (e-syncRefreshRequired: {})",
                    res.text.trim()
                )))
            }
            4 => {
                return Err(LdapSourceError::SizeLimitExceeded {
                    base: base.clone(),
                    entries: count,
                })
            }
            12 | 53 => {
                return Err(LdapSourceError::SyncprovMissing {
                    base: base.clone(),
                    text: format!("{} (LDAP result {})", res.text.trim(), res.rc),
                })
            }
            _ => return Err(info.result_error(res, &format!("syncrepl under '{base}'"), base)),
        }
        // The anchors in scope under this base after the pass.
        let mut known = prev.known;
        let mut gone: Vec<Vec<u8>> = Vec::new();
        if present_phase && !initial {
            gone.extend(
                known
                    .iter()
                    .filter(|a| !present.contains(*a) && !sent.contains(*a))
                    .cloned(),
            );
        }
        gone.extend(
            deleted_uuids
                .into_iter()
                .chain(out_of_scope)
                .filter(|a| known.contains(a)),
        );
        for a in gone {
            known.remove(&a);
            deletions.insert(a);
        }
        known.extend(sent.iter().cloned());
        sent_all.extend(sent);
        next_bases.push(SyncBase {
            cookie: new_cookie
                .or_else(|| prev.cookie.as_deref().and_then(unb64))
                .map(|c| b64(&c)),
            known,
        });
    }
    // An entry moved from one base to another is sent by one and deleted by the other.
    for a in deletions {
        if sent_all.contains(&a) {
            continue;
        }
        if let Ok(anchor) = Anchor::from_bytes(a) {
            out.deleted(anchor).await?;
        }
    }
    out.flush().await?;
    Ok(SyncOutcome::Done(next_bases))
}

/// The anchor bytes of a syncUUID: the entryUUID's text form, as the entry's anchor has it.
fn sync_uuid_anchor(uuid: &[u8], url: &str, base: &str) -> Result<Vec<u8>, LdapSourceError> {
    let raw: &[u8; 16] = uuid.try_into().map_err(|_| LdapSourceError::Protocol {
        url: url.to_string(),
        reason: format!(
            "a syncUUID of {} bytes (not 16) during syncrepl on {base}",
            uuid.len()
        ),
    })?;
    Ok(Anchor::from_uuid_bytes(raw).as_bytes().to_vec())
}

/// The Sync State control of an entry, if any.
fn sync_state(controls: &[Control]) -> Result<Option<SyncState>, String> {
    for c in controls {
        if matches!(c.0, Some(ControlType::SyncState)) || c.1.ctype == "1.3.6.1.4.1.4203.1.9.1.2" {
            return catch_unwind(AssertUnwindSafe(|| c.1.parse::<SyncState>()))
                .map(Some)
                .map_err(|_| "an unreadable Sync State control".to_string());
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_uuids_become_the_entry_uuid_anchor() {
        // The syncUUID bytes of entryUUID 3b5c9e50-2f1a-103f-8e61-6b2b4d3c7041.
        let uuid = [
            0x3b, 0x5c, 0x9e, 0x50, 0x2f, 0x1a, 0x10, 0x3f, 0x8e, 0x61, 0x6b, 0x2b, 0x4d, 0x3c,
            0x70, 0x41,
        ];
        let policy = partnersync_source::AnchorPolicy::new(["entryUUID"]);
        let mut attrs = partnersync_core::Attributes::new();
        attrs.insert("entryUUID", "3B5C9E50-2F1A-103F-8E61-6B2B4D3C7041");
        let entry_anchor = policy.anchor_of(&attrs).unwrap();
        assert_eq!(
            sync_uuid_anchor(&uuid, "ldap://x", "dc=x").unwrap(),
            entry_anchor.as_bytes()
        );
        let err = sync_uuid_anchor(&uuid[..15], "ldap://x", "dc=x").unwrap_err();
        assert!(err.to_string().contains("syncUUID of 15 bytes"), "{err}");
    }
}
