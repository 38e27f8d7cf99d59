//! Active Directory uSNChanged polling, pinned to one DC.
//!
//! Before a read, the DC's `highestCommittedUSN` (rootDSE) is the watermark; the next delta
//! pages `(&(filter)(uSNChanged>=watermark+1))`. USNs are per DC, so the cookie stores the
//! DC (`dsServiceName`) and its `invocationId`: another DC, a restored DC (new invocationId)
//! or a USN that went backwards forces a full read instead of silently missing changes.
//! Deletions and objects leaving the scope: one more search with the Show Deleted control
//! for every candidate object changed since the watermark; those that were in scope and were
//! not sent as entries are reported deleted.

use std::collections::BTreeSet;

use ldap3::controls::RawControl;
use ldap3::Scope;
use partnersync_core::Anchor;

use crate::error::LdapSourceError;
use crate::read::{resolve_ranges, Emitter, Plan, Scoped};
use crate::session::{Session, SHOW_DELETED_OID};

/// The DC's invocationId (hex), read from its NTDS settings object.
pub(crate) async fn invocation_id(session: &mut Session) -> Result<String, LdapSourceError> {
    let Some(ds) = session.root.ds_service_name.clone() else {
        return Err(LdapSourceError::Protocol {
            url: session.info.url.clone(),
            reason: "the rootDSE has no dsServiceName".into(),
        });
    };
    let found = session
        .search_all(
            &ds,
            Scope::Base,
            "(objectClass=*)",
            &["invocationId"],
            vec![],
        )
        .await?;
    found
        .into_iter()
        .next()
        .and_then(|e| {
            e.attrs
                .into_iter()
                .find(|(n, _)| n.eq_ignore_ascii_case("invocationId"))
        })
        .and_then(|(_, v)| v.into_iter().next())
        .map(|b| b.iter().map(|x| format!("{x:02x}")).collect())
        .ok_or_else(|| LdapSourceError::Protocol {
            url: session.info.url.clone(),
            reason: format!("cannot read invocationId of {ds}"),
        })
}

/// The changes since `usn`; updates `known`.
pub(crate) async fn delta(
    session: &mut Session,
    plan: &Plan,
    usn: u64,
    known: &mut BTreeSet<Vec<u8>>,
    out: &mut Emitter,
) -> Result<(), LdapSourceError> {
    let since = usn + 1;
    let mut sent: BTreeSet<Vec<u8>> = BTreeSet::new();
    let mut gone: BTreeSet<Vec<u8>> = BTreeSet::new();
    let mut side = session.ldap.clone();
    let filter = format!("(&{}(uSNChanged>={since}))", plan.filter);
    for base in &plan.bases {
        let info = session.info.clone();
        let mut search = session
            .search(
                base,
                Scope::Subtree,
                &filter,
                plan.attrs.clone(),
                vec![],
                plan.page_size,
            )
            .await?;
        while let Some(mut raw) = search.next().await? {
            resolve_ranges(&mut side, &info, &mut raw).await?;
            match plan.to_entry(raw, true)? {
                Scoped::In(entry) => {
                    sent.insert(entry.anchor.as_bytes().to_vec());
                    out.entry(entry).await?;
                }
                Scoped::Out(anchor) => {
                    gone.insert(anchor.as_bytes().to_vec());
                }
            }
        }
        let (res, info) = search.finish().await?;
        if res.rc != 0 {
            return Err(info.result_error(res, &format!("uSNChanged search under '{base}'"), base));
        }
    }
    // Everything that changed, deleted objects included, anywhere in the naming context.
    let nc = plan.naming_context.clone();
    let candidates = format!("(&{}(uSNChanged>={since}))", plan.change_filter);
    let show_deleted = RawControl {
        ctype: SHOW_DELETED_OID.into(),
        crit: true,
        val: None,
    };
    let controls = if session.root.supports(SHOW_DELETED_OID) {
        vec![show_deleted]
    } else {
        vec![]
    };
    let mut search = session
        .search(
            &nc,
            Scope::Subtree,
            &candidates,
            plan.anchor_attrs.clone(),
            controls,
            plan.page_size,
        )
        .await?;
    while let Some(raw) = search.next().await? {
        if let Ok(anchor) = plan.anchor_of(&raw) {
            gone.insert(anchor.as_bytes().to_vec());
        }
    }
    let (res, info) = search.finish().await?;
    if res.rc != 0 {
        return Err(info.result_error(res, &format!("uSNChanged search under '{nc}'"), &nc));
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
    Ok(())
}
