//! Integration tests against a Samba AD DC (scripts/ldap/samba-ad.sh): binary objectGUID
//! anchors, range retrieval of a 1,600-member group, DirSync and uSNChanged deltas, TLS,
//! and the DirSync privilege error.

mod common;

use std::collections::BTreeSet;

use common::{anchors, delta, dns, full, full_read_required, ldap_error, samba, unique, Server};
use partnersync_core::{Anchor, AttributeValue};
use partnersync_ldap::{DeltaChoice, LdapConfig, LdapSource, LdapSourceError};
use partnersync_source::{DeltaMechanism, EntryCollector, ServerKind, SourceDirectory};

const ATTRS: &[&str] = &[
    "sAMAccountName",
    "userPrincipalName",
    "displayName",
    "extensionAttribute1",
    "member",
];

fn config(server: &Server, bases: &[&str]) -> LdapConfig {
    let mut c = server.config(bases[0]);
    c.base_dns = bases.iter().map(|b| b.to_string()).collect();
    c.attributes = ATTRS.iter().map(|a| a.to_string()).collect();
    c
}

async fn seed_user(admin: &mut common::Admin, ou: &str, sam: &str, display: &str, marker: &str) {
    let upn = format!("{sam}@partners.contoso.com");
    admin
        .add(
            &format!("CN={sam},{ou}"),
            vec![
                ("objectClass", vec!["user"]),
                ("sAMAccountName", vec![sam]),
                ("userPrincipalName", vec![&upn]),
                ("displayName", vec![display]),
                ("userAccountControl", vec!["544"]),
                ("extensionAttribute1", vec![marker]),
            ],
        )
        .await;
}

#[tokio::test]
async fn full_read_anchors_on_object_guid_and_reads_every_member_of_a_large_group() {
    let Some(server) = samba("ad_full_read") else {
        return;
    };
    let base = server.get("BASE");
    let partners = format!("OU=Partners,{base}");
    let groups = format!("OU=Groups,{base}");
    let mut c = config(&server, &[&partners, &groups]);
    c.filter = "(|(objectClass=user)(objectClass=group))".into();
    let source = LdapSource::new(c).unwrap();
    let d = source.describe().await.unwrap();
    assert_eq!(d.kind, ServerKind::ActiveDirectory);
    assert_eq!(d.delta, DeltaMechanism::DirSync);
    assert_eq!(d.naming_contexts, vec![base.clone()]);
    let (all, summary) = full(&source).await;
    let users: usize = server.get("USERS").parse().unwrap();
    assert_eq!(all.entries.len(), users + 1);
    assert!(summary.cookie.is_some());
    let group = all
        .entries
        .iter()
        .find(|e| e.dn.eq_ignore_ascii_case(&server.get("GROUP_DN")))
        .expect("the group");
    let members: usize = server.get("GROUP_MEMBERS").parse().unwrap();
    assert!(members > 1500);
    assert_eq!(group.attributes.get("member").unwrap().len(), members);
    // objectGUID: 16 raw bytes, kept binary, and the anchor; ImmutableId and GUID string.
    let mut admin = server.admin().await;
    let first = &all.entries[0];
    let guid = admin.value(&first.dn, "objectGUID").await;
    assert_eq!(first.anchor.as_bytes(), guid.as_slice());
    assert_eq!(
        first.attributes.get("objectGUID").unwrap()[0],
        AttributeValue::Binary(guid.clone())
    );
    let guid_string = first.anchor.to_guid_string().unwrap();
    assert_eq!(guid_string.len(), 36);
    assert_eq!(Anchor::from_guid_str(&guid_string).unwrap(), first.anchor);
    assert_eq!(
        Anchor::from_immutable_id(&first.anchor.to_immutable_id()).unwrap(),
        first.anchor
    );
    let distinct: BTreeSet<&Anchor> = all.entries.iter().map(|e| &e.anchor).collect();
    assert_eq!(distinct.len(), all.entries.len());
}

#[tokio::test]
async fn range_retrieval_fetches_every_value_of_a_ranged_attribute() {
    // Samba returns all 1,600 members at once unless asked for a range, while AD cuts at
    // 1,500: asking for the first 1,000 makes Samba answer like AD, with `member;range=0-999`.
    let Some(server) = samba("ad_range_retrieval") else {
        return;
    };
    let groups = format!("OU=Groups,{}", server.get("BASE"));
    let mut c = config(&server, &[&groups]);
    c.filter = "(objectClass=group)".into();
    c.attributes = vec!["cn".into(), "member;range=0-999".into()];
    c.delta = DeltaChoice::None;
    let (all, _) = full(&LdapSource::new(c).unwrap()).await;
    let group = all
        .entries
        .iter()
        .find(|e| e.dn.eq_ignore_ascii_case(&server.get("GROUP_DN")))
        .expect("the group");
    let members: usize = server.get("GROUP_MEMBERS").parse().unwrap();
    let values = group
        .attributes
        .get("member")
        .expect("member, without the range option");
    assert_eq!(values.len(), members);
    let distinct: BTreeSet<String> = values
        .iter()
        .map(|v| v.to_text_lossy().into_owned())
        .collect();
    assert_eq!(distinct.len(), members);
    assert!(!group
        .attributes
        .iter()
        .any(|(n, _)| n.as_str().contains(';')));
}

/// Seeds an OU, reads it, changes it, and checks that the delta returns exactly the changes.
async fn delta_returns_exactly_the_changes(server: &Server, mechanism: DeltaChoice, tag: &str) {
    let mut admin = server.admin().await;
    let name = unique(tag);
    let ou = admin.add_ou(&server.get("BASE"), &name).await;
    let excluded = admin.add_ou(&ou, "Excluded").await;
    let short = &name[name.len() - 6..];
    let sam = |n: &str| format!("{n}{short}");
    for (n, display) in [
        ("a", "Ana López"),
        ("b", "Bo"),
        ("c", "Cy"),
        ("d", "Dé"),
        ("e", "Eve Ørsted"),
        ("g", "Gus"),
    ] {
        seed_user(&mut admin, &ou, &sam(n), display, "Partner").await;
    }
    let mut c = config(server, &[&ou]);
    c.filter = "(&(objectClass=user)(extensionAttribute1=Partner))".into();
    c.exclude_ous = vec![excluded.clone()];
    c.delta = mechanism;
    let source = LdapSource::new(c).unwrap();
    let (all, summary) = full(&source).await;
    assert_eq!(all.entries.len(), 6, "{:?}", dns(&all));
    let ana = all
        .entries
        .iter()
        .find(|e| e.dn.starts_with(&format!("CN={}", sam("a"))))
        .unwrap();
    assert_eq!(ana.attributes.first_text("displayName"), Some("Ana López"));
    let anchor_of = |n: &str| {
        all.entries
            .iter()
            .find(|e| e.dn.starts_with(&format!("CN={},", sam(n))))
            .map(|e| e.anchor.clone())
            .unwrap()
    };
    let cookie = summary.cookie.unwrap();

    let (none, s) = delta(&source, &cookie).await;
    assert!(
        none.entries.is_empty() && none.deleted.is_empty(),
        "{:?} {:?}",
        dns(&none),
        none.deleted
    );
    let cookie = s.cookie;

    let dn = |n: &str| format!("CN={},{ou}", sam(n));
    admin
        .replace(&dn("a"), "displayName", "Ana (modified)")
        .await;
    admin
        .rename(&dn("b"), &format!("CN={}-renamed", sam("b")), None)
        .await;
    admin.delete(&dn("c")).await;
    admin
        .replace(&dn("d"), "extensionAttribute1", "Member")
        .await; // leaves the filter
    admin
        .rename(&dn("e"), &format!("CN={}", sam("e")), Some(&excluded))
        .await; // excluded OU
    seed_user(&mut admin, &ou, &sam("f"), "Fay 山田", "Partner").await;
    seed_user(&mut admin, &excluded, &sam("x"), "Not in scope", "Partner").await;

    let (changes, s) = delta(&source, &cookie).await;
    let expected: BTreeSet<String> = [dn("a"), format!("CN={}-renamed,{ou}", sam("b")), dn("f")]
        .into_iter()
        .map(|d| d.to_ascii_lowercase())
        .collect();
    assert_eq!(dns(&changes), expected);
    let a = changes
        .entries
        .iter()
        .find(|e| e.anchor == anchor_of("a"))
        .unwrap();
    assert_eq!(
        a.attributes.first_text("displayName"),
        Some("Ana (modified)")
    );
    // Whole entries, not just the changed attributes.
    assert!(a.attributes.contains("userPrincipalName"));
    assert!(changes.entries.iter().any(|e| e.anchor == anchor_of("b")));
    let f = changes
        .entries
        .iter()
        .find(|e| e.dn.starts_with(&format!("CN={},", sam("f"))))
        .unwrap();
    assert_eq!(f.attributes.first_text("displayName"), Some("Fay 山田"));
    assert_eq!(
        anchors(&changes),
        [anchor_of("c"), anchor_of("d"), anchor_of("e")]
            .into_iter()
            .collect()
    );
    assert_eq!((s.changed, s.deleted), (3, 3));

    let (again, _) = delta(&source, &s.cookie).await;
    assert!(
        again.entries.is_empty() && again.deleted.is_empty(),
        "{:?} {:?}",
        dns(&again),
        again.deleted
    );
}

#[tokio::test]
async fn dirsync_delta_returns_exactly_the_changes() {
    let Some(server) = samba("ad_dirsync_delta") else {
        return;
    };
    delta_returns_exactly_the_changes(&server, DeltaChoice::DirSync, "ds").await;
}

#[tokio::test]
async fn usnchanged_delta_returns_exactly_the_changes() {
    let Some(server) = samba("ad_usnchanged_delta") else {
        return;
    };
    delta_returns_exactly_the_changes(&server, DeltaChoice::UsnChanged, "usn").await;
}

#[tokio::test]
async fn foreign_cookies_require_a_full_read() {
    let Some(server) = samba("ad_foreign_cookies") else {
        return;
    };
    let partners = format!("OU=Partners,{}", server.get("BASE"));
    let mut c = config(&server, &[&partners]);
    c.attributes = vec!["sAMAccountName".into()];
    c.delta = DeltaChoice::DirSync;
    let dirsync = LdapSource::new(c.clone()).unwrap();
    let (_, summary) = full(&dirsync).await;
    let cookie = summary.cookie.unwrap();
    c.delta = DeltaChoice::UsnChanged;
    let reason = full_read_required(&LdapSource::new(c.clone()).unwrap(), &cookie).await;
    assert!(reason.contains("now uses usnchanged"), "{reason}");
    // Another "DC": the same cookie presented to a source whose server identity differs.
    let text = String::from_utf8(cookie.as_bytes().to_vec()).unwrap();
    let forged = text.replace("CN=DC1,", "CN=DC2,");
    assert_ne!(forged, text);
    c.delta = DeltaChoice::DirSync;
    let reason = full_read_required(
        &LdapSource::new(c).unwrap(),
        &partnersync_source::Cookie::new(forged.into_bytes()),
    )
    .await;
    assert!(
        reason.contains("another server or domain controller"),
        "{reason}"
    );
}

#[tokio::test]
async fn dirsync_without_the_privilege_is_a_clear_error() {
    let Some(server) = samba("ad_dirsync_privilege") else {
        return;
    };
    let partners = format!("OU=Partners,{}", server.get("BASE"));
    let mut c = config(&server, &[&partners]);
    c.bind_dn = Some(server.get("NODIRSYNC_DN"));
    c.password_env = Some(server.password_var("NODIRSYNC_PW"));
    c.delta = DeltaChoice::DirSync;
    let mut sink = EntryCollector::new();
    let err = ldap_error(
        LdapSource::new(c)
            .unwrap()
            .full_read(&mut sink)
            .await
            .unwrap_err(),
    );
    assert!(
        matches!(err, LdapSourceError::DirSyncPrivilegeMissing { .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("Replicating Directory Changes"),
        "{err}"
    );
}

#[tokio::test]
async fn syncrepl_on_ad_is_refused_before_any_control_is_sent() {
    // Samba answers an unsupported critical control in a way that crashes ldap3's
    // connection task; the rootDSE check must stop it first, with a clear error.
    let Some(server) = samba("ad_syncrepl_refused") else {
        return;
    };
    let partners = format!("OU=Partners,{}", server.get("BASE"));
    let mut c = config(&server, &[&partners]);
    c.delta = DeltaChoice::SyncRepl;
    c.anchor = vec!["entryUUID".into()];
    let err = ldap_error(LdapSource::new(c).unwrap().describe().await.unwrap_err());
    assert!(
        matches!(err, LdapSourceError::SyncprovMissing { .. }),
        "{err}"
    );
}

#[tokio::test]
async fn ldaps_and_starttls_with_the_generated_ca() {
    let Some(server) = samba("ad_tls") else {
        return;
    };
    let partners = format!("OU=Partners,{}", server.get("BASE"));
    let mut c = config(&server, &[&partners]);
    c.attributes = vec!["sAMAccountName".into()];
    c.allow_plaintext_bind = false;
    c.ca_file = Some(server.get("CA").into());
    c.delta = DeltaChoice::None;
    c.url = server.get("LDAPS_URL");
    let (a, _) = full(&LdapSource::new(c.clone()).unwrap()).await;
    c.url = server.get("URL");
    c.starttls = true;
    let (b, _) = full(&LdapSource::new(c.clone()).unwrap()).await;
    assert_eq!(a.entries.len(), b.entries.len());
    assert!(!a.entries.is_empty());
    c.ca_file = Some(server.get("UNTRUSTED_CA").into());
    let err = ldap_error(LdapSource::new(c).unwrap().describe().await.unwrap_err());
    let LdapSourceError::UntrustedCertificate { certificate, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(
        certificate.as_deref(),
        Some("subject CN=dc1.contoso.com, issued by CN=partnersync test CA (samba)")
    );
}

#[tokio::test]
async fn usnchanged_detects_a_restored_domain_controller() {
    let Some(server) = samba("ad_usn_restore") else {
        return;
    };
    let partners = format!("OU=Partners,{}", server.get("BASE"));
    let mut c = config(&server, &[&partners]);
    c.attributes = vec!["sAMAccountName".into()];
    c.delta = DeltaChoice::UsnChanged;
    let source = LdapSource::new(c).unwrap();
    let (_, summary) = full(&source).await;
    let text = String::from_utf8(summary.cookie.unwrap().into_bytes()).unwrap();
    let (head, json) = text.split_once('\n').unwrap();
    let cookie: serde_json::Value = serde_json::from_str(json).unwrap();
    let forge = |field: &str, value: serde_json::Value| {
        let mut c = cookie.clone();
        c["state"][field] = value;
        partnersync_source::Cookie::new(format!("{head}\n{c}").into_bytes())
    };
    // A restore gives the DC a new invocationId ...
    let reason = full_read_required(&source, &forge("invocation_id", "00ff".into())).await;
    assert!(reason.contains("invocationId changed"), "{reason}");
    // ... and the USN of a cookie from before a restore may be ahead of the DC's.
    let reason = full_read_required(&source, &forge("usn", (u64::MAX / 2).into())).await;
    assert!(reason.contains("went back"), "{reason}");
    // The genuine cookie still works.
    delta(&source, &forge("usn", cookie["state"]["usn"].clone())).await;
}
