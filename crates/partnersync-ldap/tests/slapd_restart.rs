//! syncrepl's present phase: after slapd restarts, syncprov's in-memory session log is gone
//! and a delta is answered with the list of entries still present; the source must derive
//! the deletions itself. In its own test binary because it restarts the shared server (cargo
//! runs test binaries one at a time).

mod common;

use std::process::Command;

use common::{anchors, delta, dns, full, slapd, unique};
use partnersync_ldap::DeltaChoice;
use partnersync_ldap::LdapSource;

#[tokio::test]
async fn syncrepl_present_phase_after_a_server_restart_still_finds_deletions() {
    let Some(server) = slapd("syncrepl_present_phase") else {
        return;
    };
    let mut admin = server.admin().await;
    let name = unique("present");
    let ou = format!("ou={name},{}", server.get("BASE"));
    admin
        .add(
            &ou,
            vec![
                ("objectClass", vec!["organizationalUnit"]),
                ("ou", vec![name.as_str()]),
            ],
        )
        .await;
    for uid in ["p1", "p2", "p3", "p4"] {
        admin
            .add(
                &format!("uid={uid},{ou}"),
                vec![
                    ("objectClass", vec!["inetOrgPerson"]),
                    ("uid", vec![uid]),
                    ("cn", vec![uid]),
                    ("sn", vec![uid]),
                ],
            )
            .await;
    }
    let mut config = server.config(&ou);
    config.delta = DeltaChoice::SyncRepl;
    let source = LdapSource::new(config).unwrap();
    let (all, summary) = full(&source).await;
    assert_eq!(all.entries.len(), 4);
    let anchor_of = |uid: &str| {
        all.entries
            .iter()
            .find(|e| e.dn.starts_with(&format!("uid={uid},")))
            .map(|e| e.anchor.clone())
            .unwrap()
    };
    admin.delete(&format!("uid=p2,{ou}")).await;
    admin
        .replace(&format!("uid=p3,{ou}"), "cn", "p3 changed")
        .await;
    drop(admin);

    let dir = std::path::Path::new(&server.get("LOG"))
        .parent()
        .unwrap()
        .to_path_buf();
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/ldap/slapd.sh");
    let status = Command::new("bash")
        .arg(&script)
        .arg("restart")
        .env("SLAPD_DIR", &dir)
        .status()
        .unwrap();
    assert!(
        status.success(),
        "restarting slapd failed; log:\n{}",
        server.log_tail()
    );

    let (changes, s) = delta(&source, &summary.cookie.unwrap()).await;
    assert_eq!(
        dns(&changes),
        [format!("uid=p3,{ou}").to_ascii_lowercase()]
            .into_iter()
            .collect()
    );
    assert_eq!(anchors(&changes), [anchor_of("p2")].into_iter().collect());
    // And deltas go on from there.
    let mut admin = server.admin().await;
    admin.delete(&format!("uid=p4,{ou}")).await;
    let (changes, _) = delta(&source, &s.cookie).await;
    assert!(changes.entries.is_empty());
    assert_eq!(anchors(&changes), [anchor_of("p4")].into_iter().collect());
}
