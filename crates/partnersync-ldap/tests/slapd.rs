//! Integration tests against OpenLDAP slapd (scripts/ldap/slapd.sh): full reads with paging,
//! Unicode, binary values and a large group; syncrepl deltas; TLS; error cases.

mod common;

use std::collections::BTreeSet;

use common::{anchors, delta, dns, full, full_read_required, ldap_error, slapd, unique};
use partnersync_core::{Anchor, AttributeValue};
use partnersync_ldap::{DeltaChoice, LdapSource, LdapSourceError};
use partnersync_source::{Cookie, DeltaMechanism, ServerKind, SourceDirectory};

const PHOTO: &[u8] = &[0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46, 0x00, 0x80];

async fn seed_user(admin: &mut common::Admin, ou: &str, uid: &str, name: &str, marker: &str) {
    let dn = format!("uid={uid},{ou}");
    let upn = format!("{uid}@partners.contoso.com");
    admin
        .add(
            &dn,
            vec![
                ("objectClass", vec!["inetOrgPerson", "contosoPartnerAux"]),
                ("uid", vec![uid]),
                ("cn", vec![name]),
                ("sn", vec![name]),
                ("displayName", vec![name]),
                ("userPrincipalName", vec![&upn]),
                ("extensionAttribute1", vec![marker]),
            ],
        )
        .await;
}

#[tokio::test]
async fn full_read_pages_through_every_user_with_anchors_from_entry_uuid() {
    let Some(server) = slapd("full_read_pages_through_every_user") else {
        return;
    };
    let mut config = server.config(&format!("ou=People,{}", server.get("BASE")));
    config.page_size = 100;
    config.attributes = vec![
        "uid".into(),
        "displayName".into(),
        "extensionAttribute1".into(),
    ];
    let source = LdapSource::new(config).unwrap();
    let d = source.describe().await.unwrap();
    assert_eq!(d.kind, ServerKind::OpenLdap);
    assert_eq!(d.delta, DeltaMechanism::SyncRepl);
    assert_eq!(d.naming_contexts, vec![server.get("BASE")]);
    let (all, summary) = full(&source).await;
    let expected: u64 = server.get("USERS").parse().unwrap();
    assert_eq!(summary.entries, expected);
    assert_eq!(all.entries.len() as u64, expected);
    let distinct: BTreeSet<&Anchor> = all.entries.iter().map(|e| &e.anchor).collect();
    assert_eq!(distinct.len() as u64, expected);
    // The anchor is entryUUID in text form, lowercase, and that text is the ImmutableId
    // (Entra ID ignores case, and base64 of slapd's time-based UUIDs can differ only in case).
    let first = &all.entries[0];
    let uuid = first.attributes.first_text("entryUUID").unwrap();
    assert_eq!(first.anchor.to_immutable_id(), uuid.to_ascii_lowercase());
    assert_eq!(first.anchor.as_bytes().len(), 36);
    assert_eq!(first.anchor.to_guid_string(), None);
    assert!(first.attributes.first_text("uid").is_some());
    assert!(first.attributes.contains("entryUUID"));
    assert!(
        !first.attributes.contains("mail"),
        "only the configured attributes are read"
    );
    assert!(summary.cookie.is_some());
}

#[tokio::test]
async fn full_read_keeps_unicode_binary_values_and_all_members_of_a_large_group() {
    let Some(server) = slapd("full_read_unicode_binary_large_group") else {
        return;
    };
    let mut admin = server.admin().await;
    let name = unique("content");
    let ou = admin.add_ou(&server.get("BASE"), &name).await;
    seed_user(&mut admin, &ou, "lukasz", "Łukasz Żółć", "Partner").await;
    seed_user(&mut admin, &ou, "jose", "José Núñez 山田", "Member").await;
    admin
        .ldap
        .modify(
            &format!("uid=jose,{ou}"),
            vec![ldap3::Mod::Add(
                b"jpegPhoto".to_vec(),
                [PHOTO.to_vec()].into_iter().collect(),
            )],
        )
        .await
        .unwrap()
        .success()
        .unwrap();
    let members: Vec<String> = (1..=1600)
        .map(|i| format!("uid=user{i:06},ou=People,{}", server.get("BASE")))
        .collect();
    let group_dn = format!("cn=All Partners,{ou}");
    let mut attrs = vec![
        ("objectClass", vec!["groupOfNames"]),
        ("cn", vec!["All Partners"]),
    ];
    attrs.push(("member", members.iter().map(String::as_str).collect()));
    admin.add(&group_dn, attrs).await;

    let mut config = server.config(&ou);
    config.filter = "(|(objectClass=inetOrgPerson)(objectClass=groupOfNames))".into();
    let source = LdapSource::new(config).unwrap();
    let (all, _) = full(&source).await;
    assert_eq!(all.entries.len(), 3, "{:?}", dns(&all));
    let lukasz = all
        .entries
        .iter()
        .find(|e| e.dn.starts_with("uid=lukasz"))
        .unwrap();
    assert_eq!(
        lukasz.attributes.first_text("displayName"),
        Some("Łukasz Żółć")
    );
    let jose = all
        .entries
        .iter()
        .find(|e| e.dn.starts_with("uid=jose"))
        .unwrap();
    assert_eq!(jose.attributes.first_text("cn"), Some("José Núñez 山田"));
    assert_eq!(
        jose.attributes.get("jpegPhoto").unwrap()[0],
        AttributeValue::Binary(PHOTO.to_vec())
    );
    let group = all.entries.iter().find(|e| e.dn == group_dn).unwrap();
    assert_eq!(group.attributes.get("member").unwrap().len(), 1600);
    // entryUUID text → the anchor in text form.
    let uuid =
        String::from_utf8(admin.value(&format!("uid=lukasz,{ou}"), "entryUUID").await).unwrap();
    assert_eq!(lukasz.anchor, Anchor::from_uuid_str(&uuid).unwrap());
    assert_eq!(lukasz.anchor.to_immutable_id(), uuid.to_ascii_lowercase());
}

#[tokio::test]
async fn syncrepl_delta_returns_exactly_the_changes() {
    let Some(server) = slapd("syncrepl_delta") else {
        return;
    };
    let mut admin = server.admin().await;
    let name = unique("syncrepl");
    let ou = admin.add_ou(&server.get("BASE"), &name).await;
    let other = admin
        .add_ou(&server.get("BASE"), &format!("{name}-elsewhere"))
        .await;
    for (uid, n) in [
        ("u1", "Ana"),
        ("u2", "Bo"),
        ("u3", "Cy"),
        ("u4", "Dé"),
        ("u5", "Eve"),
        ("u7", "Gus"),
    ] {
        seed_user(&mut admin, &ou, uid, n, "Partner").await;
    }
    let mut config = server.config(&ou);
    config.filter = "(&(objectClass=inetOrgPerson)(extensionAttribute1=Partner))".into();
    config.delta = DeltaChoice::SyncRepl;
    let source = LdapSource::new(config).unwrap();
    let (all, summary) = full(&source).await;
    assert_eq!(all.entries.len(), 6);
    let anchor_of = |uid: &str| {
        all.entries
            .iter()
            .find(|e| e.dn.starts_with(&format!("uid={uid},")))
            .map(|e| e.anchor.clone())
            .unwrap()
    };
    let cookie = summary.cookie.unwrap();

    // Nothing changed: nothing comes back.
    let (none, s) = delta(&source, &cookie).await;
    assert!(
        none.entries.is_empty() && none.deleted.is_empty(),
        "{none:?}"
    );
    let cookie = s.cookie;

    admin
        .replace(&format!("uid=u1,{ou}"), "displayName", "Ana (modified)")
        .await;
    admin.rename(&format!("uid=u2,{ou}"), "uid=u2b", None).await;
    admin.delete(&format!("uid=u3,{ou}")).await;
    admin
        .replace(&format!("uid=u4,{ou}"), "extensionAttribute1", "Member")
        .await; // leaves the filter
    admin
        .rename(&format!("uid=u5,{ou}"), "uid=u5", Some(&other))
        .await; // leaves the base
    seed_user(&mut admin, &ou, "u6", "Fay", "Partner").await;
    seed_user(&mut admin, &other, "x1", "Not in scope", "Partner").await;

    let (changes, s) = delta(&source, &cookie).await;
    assert_eq!(
        dns(&changes),
        [
            format!("uid=u1,{ou}"),
            format!("uid=u2b,{ou}"),
            format!("uid=u6,{ou}")
        ]
        .into_iter()
        .map(|d| d.to_ascii_lowercase())
        .collect::<BTreeSet<_>>()
    );
    let modified = changes
        .entries
        .iter()
        .find(|e| e.dn.starts_with("uid=u1,"))
        .unwrap();
    assert_eq!(
        modified.attributes.first_text("displayName"),
        Some("Ana (modified)")
    );
    assert_eq!(modified.anchor, anchor_of("u1"));
    let renamed = changes
        .entries
        .iter()
        .find(|e| e.dn.starts_with("uid=u2b,"))
        .unwrap();
    assert_eq!(renamed.anchor, anchor_of("u2"));
    assert_eq!(
        anchors(&changes),
        [anchor_of("u3"), anchor_of("u4"), anchor_of("u5")]
            .into_iter()
            .collect()
    );
    assert_eq!((s.changed, s.deleted), (3, 3));

    // The next delta starts after these changes.
    let (again, _) = delta(&source, &s.cookie).await;
    assert!(
        again.entries.is_empty() && again.deleted.is_empty(),
        "{again:?}"
    );

    // A cookie for another scope, a damaged one, or another source's: full read required.
    let mut other_scope = server.config(&other);
    other_scope.delta = DeltaChoice::SyncRepl;
    let reason = full_read_required(&LdapSource::new(other_scope).unwrap(), &s.cookie).await;
    assert!(reason.contains("scope"), "{reason}");
    let reason = full_read_required(&source, &Cookie::new(b"garbage".to_vec())).await;
    assert!(reason.contains("not issued by the LDAP source"), "{reason}");
    let mut none_config = server.config(&ou);
    none_config.delta = DeltaChoice::None;
    let reason = full_read_required(&LdapSource::new(none_config).unwrap(), &s.cookie).await;
    assert!(reason.contains("no delta mechanism"), "{reason}");
}

#[tokio::test]
async fn ou_include_and_exclude_lists_limit_the_scope() {
    let Some(server) = slapd("ou_include_exclude") else {
        return;
    };
    let mut admin = server.admin().await;
    let name = unique("ous");
    let ou = admin.add_ou(&server.get("BASE"), &name).await;
    let mut sub = Vec::new();
    for part in ["In", "Out", "Other"] {
        let dn = format!("ou={part},{ou}");
        admin
            .add(
                &dn,
                vec![
                    ("objectClass", vec!["organizationalUnit"]),
                    ("ou", vec![part]),
                ],
            )
            .await;
        seed_user(&mut admin, &dn, &format!("u{part}"), part, "Partner").await;
        sub.push(dn);
    }
    let mut config = server.config(&ou);
    config.include_ous = vec![sub[0].clone(), sub[1].clone()];
    config.exclude_ous = vec![sub[1].to_uppercase()];
    let (all, _) = full(&LdapSource::new(config).unwrap()).await;
    assert_eq!(
        dns(&all),
        [format!("uid=uIn,{}", sub[0]).to_ascii_lowercase()]
            .into_iter()
            .collect()
    );
}

#[tokio::test]
async fn starttls_and_ldaps_with_the_generated_ca() {
    let Some(server) = slapd("starttls_and_ldaps") else {
        return;
    };
    let base = format!("ou=People,{}", server.get("BASE"));
    let ca = server.get("CA");
    // StartTLS on the plain port, to the name in the certificate.
    let mut starttls = server.config(&base);
    starttls.url = server.get("URL").replace("127.0.0.1", "localhost");
    starttls.starttls = true;
    starttls.allow_plaintext_bind = false;
    starttls.ca_file = Some(ca.clone().into());
    starttls.attributes = vec!["uid".into()];
    let (all, _) = full(&LdapSource::new(starttls).unwrap()).await;
    assert!(!all.entries.is_empty());
    // LDAPS to the IP address (the certificate has it as a SAN).
    let mut ldaps = server.config(&base);
    ldaps.url = server.get("LDAPS_URL");
    ldaps.allow_plaintext_bind = false;
    ldaps.ca_file = Some(ca.into());
    ldaps.attributes = vec!["uid".into()];
    let (all2, _) = full(&LdapSource::new(ldaps.clone()).unwrap()).await;
    assert_eq!(all.entries.len(), all2.entries.len());

    // Another CA: refused, naming the certificate and why.
    ldaps.ca_file = Some(server.get("UNTRUSTED_CA").into());
    let err = LdapSource::new(ldaps.clone())
        .unwrap()
        .describe()
        .await
        .unwrap_err();
    let err = ldap_error(err);
    let LdapSourceError::UntrustedCertificate {
        certificate,
        reason,
        ..
    } = &err
    else {
        panic!("{err}")
    };
    assert_eq!(
        certificate.as_deref(),
        Some("subject CN=localhost, issued by CN=partnersync test CA (slapd)")
    );
    assert!(reason.contains("certificate verify failed"), "{reason}");
    assert!(err.to_string().contains("ca_file"), "{err}");

    // Turning checks off works (loudly).
    ldaps.ca_file = None;
    ldaps.insecure_skip_verify = true;
    LdapSource::new(ldaps).unwrap().describe().await.unwrap();
}

#[tokio::test]
async fn errors_are_categorised_and_carry_no_password() {
    let Some(server) = slapd("errors_are_categorised") else {
        return;
    };
    let base = format!("ou=People,{}", server.get("BASE"));

    // Unreachable: a closed port.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut c = server.config(&base);
    c.url = format!("ldap://127.0.0.1:{closed}");
    let err = ldap_error(LdapSource::new(c).unwrap().describe().await.unwrap_err());
    assert!(matches!(err, LdapSourceError::Unreachable { .. }), "{err}");

    // Bad credentials.
    let mut c = server.config(&base);
    std::env::set_var("PARTNERSYNC_TEST_WRONG_PW", "definitely-wrong-Pa55");
    c.password_env = Some("PARTNERSYNC_TEST_WRONG_PW".into());
    let err = ldap_error(LdapSource::new(c).unwrap().describe().await.unwrap_err());
    assert!(
        matches!(err, LdapSourceError::BadCredentials { .. }),
        "{err}"
    );
    assert!(!err.to_string().contains("definitely-wrong"), "{err}");
    assert!(!format!("{err:?}").contains("definitely-wrong"));

    // A plaintext bind is refused unless allowed.
    let mut c = server.config(&base);
    c.allow_plaintext_bind = false;
    let err = ldap_error(LdapSource::new(c).unwrap().describe().await.unwrap_err());
    assert!(
        matches!(err, LdapSourceError::PlaintextBindRefused { .. }),
        "{err}"
    );

    // The server's size limit (500 for an account without `limits`).
    let mut c = server.config(&base);
    c.bind_dn = Some(server.get("LIMITED_DN"));
    c.password_env = Some(server.password_var("LIMITED_PW"));
    c.delta = DeltaChoice::None;
    let mut sink = partnersync_source::EntryCollector::new();
    let err = ldap_error(
        LdapSource::new(c)
            .unwrap()
            .full_read(&mut sink)
            .await
            .unwrap_err(),
    );
    assert!(
        matches!(err, LdapSourceError::SizeLimitExceeded { entries: 500, .. }),
        "{err}"
    );

    // syncrepl on a database without syncprov.
    let mut c = server.config(&server.get("NOSYNC_BASE"));
    c.delta = DeltaChoice::SyncRepl;
    c.filter = "(objectClass=person)".into();
    let mut sink = partnersync_source::EntryCollector::new();
    let err = ldap_error(
        LdapSource::new(c)
            .unwrap()
            .full_read(&mut sink)
            .await
            .unwrap_err(),
    );
    assert!(
        matches!(err, LdapSourceError::SyncprovMissing { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("overlay syncprov"), "{err}");

    // A base that does not exist.
    let c = server.config(&format!("ou=Nowhere,{}", server.get("BASE")));
    let mut sink = partnersync_source::EntryCollector::new();
    let err = ldap_error(
        LdapSource::new(c)
            .unwrap()
            .full_read(&mut sink)
            .await
            .unwrap_err(),
    );
    assert!(matches!(err, LdapSourceError::NoSuchBase { .. }), "{err}");
}
