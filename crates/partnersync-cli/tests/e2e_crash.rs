//! `kill -9` in the middle of an apply of 2,000 creates, then a rerun: exactly 2,000 users,
//! none created twice, none lost.
//!
//! The source is a generated LDIF file; the target is a Graph emulator *process* (not the
//! in-process emulator, which would die with the sync) reached as `kind = "graph"`. The
//! sync's write budget (`writes_per_second`) stretches the apply over a few seconds, so
//! the kill lands after some creates and well before the last.

mod e2e;

use std::collections::BTreeSet;
use std::os::unix::process::ExitStatusExt as _;
use std::process::Stdio;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use e2e::{assert_no_writes, clip, Job, BIN};

const USERS: usize = 2_000;

/// 2,000 partner accounts with random-looking binary objectGUID anchors. Entra ID (and the
/// emulator) compares ImmutableIds without regard to case, so the anchors are checked to
/// differ case-insensitively too, as random GUIDs do in practice.
fn ldif() -> (String, BTreeSet<String>) {
    let mut text = String::from("version: 1\n\n");
    let mut anchors = BTreeSet::new();
    let mut folded = BTreeSet::new();
    let mut seed = 0x5eed_e2e0_u64;
    let mut next = || {
        // splitmix64
        seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    for i in 1..=USERS {
        let mut guid = [0u8; 16];
        guid[..8].copy_from_slice(&next().to_le_bytes());
        guid[8..].copy_from_slice(&next().to_le_bytes());
        let guid = B64.encode(guid);
        assert!(
            folded.insert(guid.to_ascii_lowercase()),
            "anchor {guid} repeats"
        );
        text.push_str(&format!(
            "dn: CN=Crash User {i:05},OU=Partners,DC=contoso,DC=com\n\
             objectClass: user\n\
             objectGUID:: {guid}\n\
             sAMAccountName: crash{i:05}\n\
             givenName: Crash\n\
             sn: User{i:05}\n\
             displayName: Crash User {i:05}\n\
             userPrincipalName: crash{i:05}@partners.contoso.com\n\
             mail: crash{i:05}@partners.contoso.com\n\
             userAccountControl: 512\n\n"
        ));
        anchors.insert(guid);
    }
    (text, anchors)
}

#[tokio::test]
async fn kill_9_mid_apply_then_a_rerun_ends_with_exactly_2000_users() {
    let (text, anchors) = ldif();
    let job = Job::start_with(
        "kill9",
        &|dir| {
            let path = dir.path.join("partners.ldif");
            std::fs::write(&path, &text).expect("write the LDIF");
            format!("kind = \"ldif\"\npath = \"{}\"\n", path.display())
        },
        "",
        // 2,000 creates at 400 writes/s: about 5 s of apply to kill in.
        400.0,
    )
    .await;
    let emu = &job.emulator;

    let mut sync = tokio::process::Command::new(BIN)
        .args(["sync", "--json", "--config"])
        .arg(&job.config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start partnersync sync");
    let deadline = Instant::now() + Duration::from_secs(60);
    let at_kill = loop {
        let (active, _) = emu.counts().await;
        if active >= 300 {
            break active;
        }
        if let Some(status) = sync.try_wait().expect("poll the sync") {
            panic!("the sync ended ({status}) before 300 users existed ({active})");
        }
        assert!(
            Instant::now() < deadline,
            "no progress: {active} users after 60 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    sync.start_kill().expect("SIGKILL the sync");
    let status = sync.wait().await.expect("reap the sync");
    assert_eq!(status.signal(), Some(9), "{status}");
    // Let a batch the emulator was still answering land: the count holds still.
    let mut after = emu.counts().await;
    for _ in 0..25 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = emu.counts().await;
        if now == after {
            break;
        }
        after = now;
    }
    let (after_kill, deleted) = after;
    assert_eq!(deleted, 0);
    assert!(
        (at_kill as usize..USERS).contains(&(after_kill as usize)),
        "killed mid-apply: {at_kill} users at the kill, {after_kill} after, of {USERS}"
    );
    let status = job.run("status", &[]).await.expect(0);
    let unfinished = status.json["unfinished_writes"]
        .as_u64()
        .expect("unfinished_writes");
    eprintln!(
        "killed with {at_kill} users created ({after_kill} after the batch in flight); unfinished writes in the journal: {unfinished}"
    );

    // The rerun creates exactly the missing ones: the users created before the kill are
    // found by anchor, never created again.
    let seq = emu.last_seq().await;
    let r = job.sync(&[]).await.expect(0);
    let missing = USERS - after_kill as usize;
    assert_eq!(r.actions_of("create").len(), missing, "{}", clip(&r.stdout));
    assert_eq!(r.actions().len(), missing);
    assert_eq!(r.attempted(), missing as u64);
    assert_eq!(r.json["failures"], serde_json::json!([]));
    assert_eq!(
        r.json["recovered"], unfinished,
        "the journal's writes were checked"
    );
    let writes = emu.writes_after(seq).await;
    assert_eq!(writes.len(), missing);
    assert!(
        writes
            .iter()
            .all(|w| w.method == "POST" && w.path == "/v1.0/users" && w.status == 201),
        "only successful creates"
    );

    // Exactly 2,000 users, one per anchor and UPN, and exactly 2,000 creates in all.
    assert_eq!(emu.counts().await, (USERS as u64, 0));
    let users = emu.users().await;
    let ids: BTreeSet<String> = users
        .iter()
        .map(|u| {
            u["onPremisesImmutableId"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    assert_eq!(ids, anchors, "every source object, each once");
    let upns: BTreeSet<&str> = users
        .iter()
        .filter_map(|u| u["userPrincipalName"].as_str())
        .collect();
    assert_eq!(upns.len(), USERS);
    assert!(users.iter().all(|u| u["userType"] == "Guest"));
    let creates = emu.writes_after(0).await;
    let created = creates
        .iter()
        .filter(|w| w.method == "POST" && w.path == "/v1.0/users" && w.status == 201)
        .count();
    let refused: Vec<_> = creates.iter().filter(|w| w.status >= 400).collect();
    assert_eq!(created, USERS, "one successful create per user");
    assert!(
        refused.is_empty(),
        "no create was tried twice: {refused:#?}"
    );

    // And the state agrees: nothing left to do.
    let seq = emu.last_seq().await;
    let r = job.sync(&[]).await.expect(0);
    assert_eq!(r.attempted(), 0, "{}", clip(&r.stdout));
    assert_no_writes(&emu.writes_after(seq).await, "the run after the recovery");
    let status = job.run("status", &[]).await.expect(0);
    assert_eq!(status.json["managed"], USERS as u64);
    assert_eq!(status.json["unfinished_writes"], 0);
}
