//! The end-to-end scenarios against a real directory (slapd or Samba AD, started by
//! `scripts/ldap/`): each test seeds users into an OU of its own, syncs them with the
//! `partnersync` binary into its own Graph emulator process, changes the directory and
//! checks what the next runs plan, report and write (the emulator's operation log).
//!
//! `tests/e2e_slapd.rs` and `tests/e2e_samba.rs` run every scenario on their server.
#![allow(dead_code)]

use serde_json::{json, Value};

use crate::e2e::{
    assert_no_writes, change, changed_attributes, partnersync, Job, Outcome, TempDir, RULES,
};
use crate::ldap::{self, Admin, Server};

const STAFF: &str = "contoso.com";
const PARTNERS: &str = "partners.contoso.com";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// OpenLDAP: `uid=NAME` entries of inetOrgPerson + contosoPartnerAux (which carries
    /// userPrincipalName and extensionAttribute1), anchored on entryUUID, syncrepl deltas.
    Slapd,
    /// Samba AD DC: `CN=NAME` user objects with sAMAccountName and userAccountControl,
    /// Exchange's extensionAttribute1 in the schema, anchored on objectGUID, DirSync deltas.
    Samba,
}

/// The test's OU in the directory and an admin connection to change it.
pub struct Directory {
    server: Server,
    flavor: Flavor,
    pub ou: String,
    admin: Admin,
    tag: String,
}

impl Directory {
    /// Connects and creates the test's OU; `None` when the server is not configured and
    /// servers are not required (the test is then skipped, saying so).
    pub async fn new(flavor: Flavor, test: &str) -> Option<Directory> {
        let server = match flavor {
            Flavor::Slapd => ldap::slapd(test)?,
            Flavor::Samba => ldap::samba(test)?,
        };
        let mut admin = server.admin().await;
        let name = ldap::unique(&format!("e2e-{test}"));
        let ou = admin.add_ou(&server.get("BASE"), &name).await;
        // sAMAccountName has 20 characters at most and is unique in the whole domain: a
        // short tag from the clock and a counter keeps names apart across tests and runs.
        let unique = crate::e2e::unique("x");
        let mut parts = unique.rsplit('-');
        let counter = parts.next().unwrap_or("0");
        let nanos: u64 = parts.next().and_then(|n| n.parse().ok()).unwrap_or(0);
        let tag = format!("{}{counter}", nanos % 1_000_000);
        Some(Directory {
            server,
            flavor,
            ou,
            admin,
            tag,
        })
    }

    /// The unique account name for `base` (`ana` → `ana123456`).
    pub fn name(&self, base: &str) -> String {
        format!("{base}{}", self.tag)
    }

    /// The displayName `add_user` gives `base`.
    pub fn display(&self, base: &str) -> String {
        format!("{base} {}", self.tag)
    }

    pub fn dn(&self, name: &str) -> String {
        match self.flavor {
            Flavor::Slapd => format!("uid={name},{}", self.ou),
            Flavor::Samba => format!("CN={name},{}", self.ou),
        }
    }

    /// Adds a user `base`+tag with UPN `NAME@domain` and, when given, extensionAttribute1.
    /// Returns the name.
    pub async fn add_user(&mut self, base: &str, domain: &str, marker: Option<&str>) -> String {
        let name = self.name(base);
        let dn = self.dn(&name);
        let upn = format!("{name}@{domain}");
        let display = self.display(base);
        let mut attrs: Vec<(&str, Vec<&str>)> = match self.flavor {
            Flavor::Slapd => vec![
                ("objectClass", vec!["inetOrgPerson", "contosoPartnerAux"]),
                ("uid", vec![&name]),
                ("cn", vec![&display]),
            ],
            Flavor::Samba => vec![
                ("objectClass", vec!["user"]),
                ("sAMAccountName", vec![&name]),
                // NORMAL_ACCOUNT | PASSWD_NOTREQD: enabled, without a password.
                ("userAccountControl", vec!["544"]),
            ],
        };
        attrs.extend([
            ("givenName", vec![base]),
            ("sn", vec![self.tag.as_str()]),
            ("displayName", vec![display.as_str()]),
            ("mail", vec![upn.as_str()]),
            ("userPrincipalName", vec![upn.as_str()]),
        ]);
        if let Some(m) = marker {
            attrs.push(("extensionAttribute1", vec![m]));
        }
        self.admin.add(&dn, attrs).await;
        name
    }

    pub async fn set(&mut self, name: &str, attribute: &str, value: &str) {
        let dn = self.dn(name);
        self.admin.replace(&dn, attribute, value).await;
    }

    /// Renames the entry (new RDN, same OU); returns the new DN.
    pub async fn rename(&mut self, name: &str, new_name: &str) -> String {
        let dn = self.dn(name);
        let rdn = match self.flavor {
            Flavor::Slapd => format!("uid={new_name}"),
            Flavor::Samba => format!("CN={new_name}"),
        };
        self.admin.rename(&dn, &rdn, None).await;
        self.dn(new_name)
    }

    pub async fn delete(&mut self, name: &str) {
        let dn = self.dn(name);
        self.admin.delete(&dn).await;
    }

    /// The `[source]` table reading the test's OU as the sync account (the password goes
    /// to a file in the test's directory); `filter` replaces the default filter.
    pub fn source_toml(&self, dir: &TempDir, filter: Option<&str>) -> String {
        let password = dir.private_file("ldap-password", &self.server.get("BIND_PW"));
        let mut t = format!(
            "kind = \"ldap\"\nurl = \"{}\"\nbase_dns = [\"{}\"]\nbind_dn = \"{}\"\npassword_file = \"{}\"\nstarttls = false\nallow_plaintext_bind = true\nconnect_timeout_secs = 5\n",
            self.server.get("URL"),
            self.ou,
            self.server.get("BIND_DN"),
            password.display()
        );
        if let Some(f) = filter {
            t.push_str(&format!("filter = \"{f}\"\n"));
        }
        t
    }
}

/// The create action for the user with this UPN.
#[track_caller]
fn create_for<'a>(r: &'a Outcome, upn: &str) -> &'a Value {
    r.json["plan"]["actions"]
        .as_array()
        .and_then(|a| {
            a.iter().find(|a| {
                a["action"] == "create"
                    && a["attributes"]["userPrincipalName"][0]
                        .as_str()
                        .is_some_and(|u| u.eq_ignore_ascii_case(upn))
            })
        })
        .unwrap_or_else(|| panic!("no create of {upn} in {}", r.stdout))
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

/// Initial sync (both recipes), a no-change run, then delta runs after a modify, a rename,
/// a Member → Guest move and a delete, each with exactly the writes it needs.
pub async fn lifecycle(flavor: Flavor) {
    let Some(mut d) = Directory::new(flavor, "lifecycle").await else {
        return;
    };
    // Recipe 1 (UPN suffix) and recipe 2 (extensionAttribute1), and their interplay.
    let guest_by_upn = d.add_user("gupn", PARTNERS, None).await;
    let guest_by_marker = d.add_user("gmark", STAFF, Some("Partner")).await;
    let member = d.add_user("member", STAFF, None).await;
    let member_by_marker = d.add_user("mmark", PARTNERS, Some("Member")).await;
    let mover = d.add_user("mover", STAFF, None).await;
    let leaver = d.add_user("leaver", PARTNERS, None).await;
    let expected = [
        (&guest_by_upn, PARTNERS, "Guest"),
        (&guest_by_marker, STAFF, "Guest"),
        (&member, STAFF, "Member"),
        (&member_by_marker, PARTNERS, "Member"),
        (&mover, STAFF, "Member"),
        (&leaver, PARTNERS, "Guest"),
    ];
    let upn = |name: &str, domain: &str| format!("{name}@{domain}");
    // One removal of six managed users is 17%: above the default 10%.
    let job = Job::start(
        "lifecycle",
        &|dir| d.source_toml(dir, None),
        "[guard]\nmax_deletes = 3\nmax_delete_percent = 50\n",
    )
    .await;
    let emu = &job.emulator;

    let check = job.run("check", &[]).await.expect(0);
    assert_eq!(check.json["ok"], true, "{}", check.stdout);

    // 1. Initial sync: everything created, with the right userType.
    let r = job.sync(&[]).await.expect(0);
    assert!(r.mode().starts_with("full"), "{}", r.stdout);
    assert_eq!(r.json["outcome"], "applied");
    assert_eq!(r.json["source_entries"], 6);
    assert_eq!(r.actions_of("create").len(), 6, "{}", r.stdout);
    assert_eq!(r.actions().len(), 6);
    assert_eq!(r.attempted(), 6);
    assert_eq!(r.json["failures"], json!([]));
    let users = emu.users().await;
    assert_eq!(users.len(), 6);
    for (name, domain, user_type) in expected {
        let u = emu.user(&upn(name, domain)).await;
        assert_eq!(u["userType"], user_type, "{name}: {u}");
        assert_eq!(u["accountEnabled"], true, "{name}: {u}");
        assert_eq!(u["mail"], upn(name, domain).as_str());
        let create = create_for(&r, &upn(name, domain));
        assert_eq!(u["onPremisesImmutableId"], create["anchor"], "{name}");
        assert!(
            text(&create["dn"]).eq_ignore_ascii_case(&d.dn(name)),
            "{create}"
        );
    }
    if flavor == Flavor::Slapd {
        // An entryUUID anchor reaches Graph as its lowercase text, not base64: Entra ID
        // compares ImmutableIds ignoring case.
        let dn = d.dn(&guest_by_upn);
        let uuid = String::from_utf8(d.admin.value(&dn, "entryUUID").await).expect("text");
        let u = emu.user(&upn(&guest_by_upn, PARTNERS)).await;
        assert_eq!(
            u["onPremisesImmutableId"],
            uuid.to_ascii_lowercase().as_str(),
            "{u}"
        );
    }
    let writes = emu.writes_after(0).await;
    assert_eq!(writes.len(), 6, "{writes:#?}");
    assert!(
        writes
            .iter()
            .all(|w| w.method == "POST" && w.path == "/v1.0/users" && w.status == 201),
        "{writes:#?}"
    );

    // 2. Nothing changed: a delta run with zero writes.
    let seq = emu.last_seq().await;
    let r = job.sync(&[]).await.expect(0);
    assert_eq!(r.mode(), "delta", "{}", r.stdout);
    assert_eq!(r.attempted(), 0);
    assert_eq!(r.actions(), Vec::<Value>::new());
    assert_no_writes(&emu.writes_after(seq).await, "a run without changes");

    // 3. Modify: one attribute, one PATCH.
    let gupn_id = emu.user(&upn(&guest_by_upn, PARTNERS)).await["id"].clone();
    let old_display = d.display("gupn");
    d.set(&guest_by_upn, "displayName", "Gupn Renamed Display")
        .await;
    let seq = emu.last_seq().await;
    let r = job.sync(&[]).await.expect(0);
    assert_eq!(r.mode(), "delta", "{}", r.stdout);
    assert_eq!(r.json["source_entries"], 1, "{}", r.stdout);
    let updates = r.actions_of("update");
    assert_eq!((r.actions().len(), updates.len()), (1, 1), "{}", r.stdout);
    assert_eq!(updates[0]["id"], gupn_id);
    assert_eq!(
        change(&updates[0], "displayName"),
        (json!([old_display]), json!(["Gupn Renamed Display"]))
    );
    assert_eq!(changed_attributes(&updates[0]).len(), 1, "{}", updates[0]);
    assert_eq!(r.attempted(), 1);
    let writes = emu.writes_after(seq).await;
    assert_eq!(writes.len(), 1, "{writes:#?}");
    assert_eq!(
        (writes[0].method.as_str(), writes[0].status),
        ("PATCH", 204)
    );
    assert_eq!(
        writes[0].path,
        format!("/v1.0/users/{}", text(&gupn_id)),
        "{writes:#?}"
    );
    assert_eq!(
        emu.user(&upn(&guest_by_upn, PARTNERS)).await["displayName"],
        "Gupn Renamed Display"
    );

    // 4. Rename: the DN is not mapped to any Graph attribute, so nothing is written; the
    // object stays bound to its user under its new DN.
    let gmark_id = emu.user(&upn(&guest_by_marker, STAFF)).await["id"].clone();
    let renamed = d.name("gmarkx");
    let new_dn = d.rename(&guest_by_marker, &renamed).await;
    let seq = emu.last_seq().await;
    let r = job.sync(&[]).await.expect(0);
    assert_eq!(r.mode(), "delta", "{}", r.stdout);
    assert_eq!(r.json["source_entries"], 1, "{}", r.stdout);
    assert_eq!(r.actions(), Vec::<Value>::new(), "{}", r.stdout);
    assert_eq!(r.attempted(), 0);
    assert_no_writes(&emu.writes_after(seq).await, "a rename");
    let p = job.run("preview", &[&new_dn]).await.expect(0);
    assert_eq!(p.json["target_user"]["id"], gmark_id, "{}", p.stdout);
    assert_eq!(p.json["plan"]["actions"], json!([]), "{}", p.stdout);
    // The same object by its ImmutableId; an entryUUID's in upper case too, as Entra ID
    // ignores case.
    let mut anchor = text(&p.json["anchor"]).to_string();
    if flavor == Flavor::Slapd {
        anchor.make_ascii_uppercase();
    }
    let by_anchor = job.run("preview", &[&anchor]).await.expect(0);
    assert_eq!(by_anchor.json["dn"], p.json["dn"], "{}", by_anchor.stdout);

    // 5. Member → Guest: the UPN moves to the partner domain; one PATCH with the UPN and
    // the userType change.
    let mover_id = emu.user(&upn(&mover, STAFF)).await["id"].clone();
    d.set(&mover, "userPrincipalName", &upn(&mover, PARTNERS))
        .await;
    let seq = emu.last_seq().await;
    // What the administrator reads first: the change called out.
    let human = partnersync(&["plan", "--config", &job.config.display().to_string()])
        .await
        .expect(0);
    assert!(
        human.stdout.contains("1 update (1 userType change)")
            && human.stdout.contains("(userType change!)"),
        "{}",
        human.stdout
    );
    let r = job.sync(&[]).await.expect(0);
    assert_eq!(r.mode(), "delta", "{}", r.stdout);
    let updates = r.actions_of("update");
    assert_eq!((r.actions().len(), updates.len()), (1, 1), "{}", r.stdout);
    assert_eq!(updates[0]["id"], mover_id);
    assert_eq!(
        change(&updates[0], "userType"),
        (json!(["Member"]), json!(["Guest"]))
    );
    assert_eq!(
        change(&updates[0], "userPrincipalName"),
        (json!([upn(&mover, STAFF)]), json!([upn(&mover, PARTNERS)]))
    );
    assert_eq!(
        changed_attributes(&updates[0]),
        ["userPrincipalName", "userType"]
            .into_iter()
            .map(String::from)
            .collect()
    );
    assert_eq!(r.attempted(), 1);
    let writes = emu.writes_after(seq).await;
    assert_eq!(writes.len(), 1, "{writes:#?}");
    assert_eq!(
        (writes[0].method.as_str(), writes[0].path.as_str()),
        ("PATCH", format!("/v1.0/users/{}", text(&mover_id)).as_str())
    );
    let moved = emu.user(&upn(&mover, PARTNERS)).await;
    assert_eq!(
        (&moved["id"], &moved["userType"]),
        (&mover_id, &json!("Guest"))
    );

    // 6. Delete: disable-then-delete disables first; the user stays in the directory.
    let leaver_id = emu.user(&upn(&leaver, PARTNERS)).await["id"].clone();
    d.delete(&leaver).await;
    let seq = emu.last_seq().await;
    let r = job.sync(&[]).await.expect(0);
    assert_eq!(r.mode(), "delta", "{}", r.stdout);
    let disables = r.actions_of("disable");
    assert_eq!((r.actions().len(), disables.len()), (1, 1), "{}", r.stdout);
    assert_eq!(disables[0]["id"], leaver_id);
    assert_eq!(r.attempted(), 1);
    let writes = emu.writes_after(seq).await;
    assert_eq!(writes.len(), 1, "{writes:#?}");
    assert_eq!(
        (writes[0].method.as_str(), writes[0].path.as_str()),
        (
            "PATCH",
            format!("/v1.0/users/{}", text(&leaver_id)).as_str()
        )
    );
    assert_eq!(
        emu.user(&upn(&leaver, PARTNERS)).await["accountEnabled"],
        false
    );
    assert_eq!(emu.counts().await, (6, 0));

    // 7. And quiet again.
    let seq = emu.last_seq().await;
    let r = job.sync(&[]).await.expect(0);
    assert_eq!(
        (r.mode().as_str(), r.attempted()),
        ("delta", 0),
        "{}",
        r.stdout
    );
    assert_no_writes(&emu.writes_after(seq).await, "the last run");
    let status = job.run("status", &[]).await.expect(0);
    assert_eq!(status.json["managed"], 6, "{}", status.stdout);
    assert_eq!(status.json["unfinished_writes"], 0, "{}", status.stdout);
}

/// More removals than `[guard] max_deletes`: exit 4 and nothing written, until
/// `--allow-deletes N` accepts exactly that many.
pub async fn deletion_guard(flavor: Flavor) {
    let Some(mut d) = Directory::new(flavor, "guard").await else {
        return;
    };
    let mut names = Vec::new();
    for i in 0..6 {
        names.push(d.add_user(&format!("g{i}"), PARTNERS, None).await);
    }
    let job = Job::start(
        "guard",
        &|dir| d.source_toml(dir, None),
        "[guard]\nmax_deletes = 3\nmax_delete_percent = 100\n",
    )
    .await;
    let emu = &job.emulator;
    let r = job.sync(&[]).await.expect(0);
    assert_eq!(r.attempted(), 6, "{}", r.stdout);
    let anchors: Vec<String> = names[..4]
        .iter()
        .map(|n| text(&create_for(&r, &format!("{n}@{PARTNERS}"))["anchor"]).to_string())
        .collect();
    for n in &names[..4] {
        d.delete(n).await;
    }
    let seq = emu.last_seq().await;

    let r = job.sync(&[]).await.expect(4);
    assert_eq!(r.json["outcome"], "error", "{}", r.stdout);
    let error = text(&r.json["error"]);
    assert!(error.contains("nothing was written"), "{error}");
    let mut would_remove: Vec<String> = r.json["would_remove"]
        .as_array()
        .expect("would_remove")
        .iter()
        .map(|a| text(a).to_string())
        .collect();
    would_remove.sort();
    let mut expected = anchors.clone();
    expected.sort();
    assert_eq!(would_remove, expected);
    // `plan` says the same without writing, and 3 allowed deletes are not 4.
    job.run("plan", &[]).await.expect(4);
    job.sync(&["--allow-deletes", "3"]).await.expect(4);
    assert_no_writes(&emu.writes_after(seq).await, "a tripped guard");
    for u in emu.users().await {
        assert_eq!(u["accountEnabled"], true, "{u}");
    }
    let status = job.run("status", &[]).await.expect(0);
    assert_eq!(
        status.json["runs"][0]["outcome"], "guard-tripped",
        "{}",
        status.stdout
    );

    // Accepted for one run: exactly those four are disabled.
    let r = job.sync(&["--allow-deletes", "4"]).await.expect(0);
    let mut disabled: Vec<String> = r
        .actions_of("disable")
        .iter()
        .map(|a| text(&a["anchor"]).to_string())
        .collect();
    disabled.sort();
    assert_eq!(disabled, expected, "{}", r.stdout);
    assert_eq!((r.actions().len(), r.attempted()), (4, 4));
    let writes = emu.writes_after(seq).await;
    assert_eq!(writes.len(), 4, "{writes:#?}");
    assert!(writes.iter().all(|w| w.method == "PATCH"), "{writes:#?}");
    for u in emu.users().await {
        let removed = anchors
            .iter()
            .any(|a| u["onPremisesImmutableId"] == a.as_str());
        assert_eq!(u["accountEnabled"], !removed, "{u}");
    }
}

/// A source read that returns nothing never removes anyone, whatever the limits and
/// `--allow-deletes` say: exit 4, nothing written.
pub async fn empty_source(flavor: Flavor) {
    let Some(mut d) = Directory::new(flavor, "empty").await else {
        return;
    };
    let mut names = Vec::new();
    for i in 0..3 {
        names.push(d.add_user(&format!("e{i}"), PARTNERS, None).await);
    }
    // Generous limits: only the empty-source rule may stop these runs.
    let settings = "[guard]\nmax_deletes = 500\nmax_delete_percent = 100\n";
    let job = Job::start("empty", &|dir| d.source_toml(dir, None), settings).await;
    let emu = &job.emulator;
    job.sync(&[]).await.expect(0);
    let seq = emu.last_seq().await;

    // A filter that matches nothing (a typo in the configuration).
    job.configure(
        &d.source_toml(
            &job.dir,
            Some("(description=partnersync-e2e-matches-nothing)"),
        ),
        settings,
    );
    let r = job.sync(&[]).await.expect(4);
    assert!(
        r.mode().is_empty(),
        "no report, only the error: {}",
        r.stdout
    );
    let error = text(&r.json["error"]);
    assert!(error.contains("source returned no entries"), "{error}");
    assert_eq!(r.json["would_remove"].as_array().map(Vec::len), Some(3));
    job.sync(&["--allow-deletes", "3"]).await.expect(4);
    assert_no_writes(&emu.writes_after(seq).await, "an empty source read");

    // Back to the real filter: nothing to do.
    job.configure(&d.source_toml(&job.dir, None), settings);
    let r = job.sync(&[]).await.expect(0);
    assert_eq!(r.attempted(), 0, "{}", r.stdout);

    // Every user deleted in the source: the source is empty again, seen through a delta.
    for n in &names {
        d.delete(n).await;
    }
    let r = job.sync(&[]).await.expect(4);
    let error = text(&r.json["error"]);
    assert!(error.contains("source returned no entries"), "{error}");
    job.sync(&["--full"]).await.expect(4);
    assert_no_writes(&emu.writes_after(seq).await, "a source emptied by deletes");
    for u in emu.users().await {
        assert_eq!(u["accountEnabled"], true, "{u}");
    }
}

/// `sync --staging` computes and records the plan and writes nothing; the next real run
/// still does everything.
pub async fn staging(flavor: Flavor) {
    let Some(mut d) = Directory::new(flavor, "staging").await else {
        return;
    };
    let a = d.add_user("sa", PARTNERS, None).await;
    d.add_user("sb", STAFF, None).await;
    d.add_user("sc", STAFF, Some("Partner")).await;
    let job = Job::start("staging", &|dir| d.source_toml(dir, None), "").await;
    let emu = &job.emulator;

    let r = job.sync(&["--staging"]).await.expect(0);
    assert_eq!(r.json["outcome"], "staged", "{}", r.stdout);
    assert_eq!(r.actions_of("create").len(), 3, "{}", r.stdout);
    assert_eq!(r.attempted(), 0);
    assert_no_writes(&emu.writes_after(0).await, "staging");
    assert_eq!(emu.counts().await, (0, 0));
    let status = job.run("status", &[]).await.expect(0);
    assert_eq!(
        status.json["runs"][0]["outcome"], "staged",
        "{}",
        status.stdout
    );
    assert_eq!(status.json["managed"], 0, "{}", status.stdout);

    let r = job.sync(&[]).await.expect(0);
    assert_eq!(
        (r.actions_of("create").len(), r.attempted()),
        (3, 3),
        "{}",
        r.stdout
    );
    assert_eq!(emu.counts().await, (3, 0));

    d.set(&a, "displayName", "Staged Change").await;
    let seq = emu.last_seq().await;
    let r = job.sync(&["--staging"]).await.expect(0);
    assert_eq!(r.json["outcome"], "staged", "{}", r.stdout);
    assert_eq!(r.actions_of("update").len(), 1, "{}", r.stdout);
    assert_eq!(r.attempted(), 0);
    assert_no_writes(&emu.writes_after(seq).await, "staging a change");
    assert_ne!(
        emu.user(&format!("{a}@{PARTNERS}")).await["displayName"],
        "Staged Change"
    );
    // Staging did not use up the change: the real run applies it.
    let r = job.sync(&[]).await.expect(0);
    assert_eq!(
        (r.actions_of("update").len(), r.attempted()),
        (1, 1),
        "{}",
        r.stdout
    );
    assert_eq!(emu.writes_after(seq).await.len(), 1);
    assert_eq!(
        emu.user(&format!("{a}@{PARTNERS}")).await["displayName"],
        "Staged Change"
    );
}

/// `plan --out`, a source change, `apply PLAN`: refused as stale (exit 5), nothing
/// written; a fresh plan applies exactly.
pub async fn stale_plan(flavor: Flavor) {
    let Some(mut d) = Directory::new(flavor, "stale").await else {
        return;
    };
    let a = d.add_user("pa", PARTNERS, None).await;
    let b = d.add_user("pb", STAFF, None).await;
    d.add_user("pc", STAFF, None).await;
    let job = Job::start("stale", &|dir| d.source_toml(dir, None), "").await;
    let emu = &job.emulator;
    job.sync(&[]).await.expect(0);
    let a_id = emu.user(&format!("{a}@{PARTNERS}")).await["id"].clone();
    let b_id = emu.user(&format!("{b}@{STAFF}")).await["id"].clone();

    d.set(&a, "displayName", "Planned A").await;
    let first = job.file("first.json");
    let r = job.run("plan", &["--out", &first]).await.expect(0);
    assert_eq!(r.actions_of("update").len(), 1, "{}", r.stdout);
    let saved: Value =
        serde_json::from_str(&std::fs::read_to_string(&first).expect("plan file")).expect("JSON");
    assert_eq!(saved["actions"].as_array().map(Vec::len), Some(1));

    // The source changes after the review.
    d.set(&b, "displayName", "Unplanned B").await;
    let seq = emu.last_seq().await;
    let r = job.run("apply", &[&first]).await.expect(5);
    assert!(text(&r.json["error"]).contains("stale"), "{}", r.stdout);
    assert_no_writes(&emu.writes_after(seq).await, "a stale plan");
    assert_ne!(
        emu.user(&format!("{a}@{PARTNERS}")).await["displayName"],
        "Planned A"
    );

    // Planned again: both changes, applied exactly.
    let second = job.file("second.json");
    let r = job
        .run("plan", &["--out", &second, "--detailed-exitcode"])
        .await
        .expect(2);
    let planned = r.actions();
    assert_eq!(planned.len(), 2, "{}", r.stdout);
    let r = job.run("apply", &[&second]).await.expect(0);
    assert_eq!(r.actions(), planned, "apply runs exactly the saved plan");
    assert_eq!(r.attempted(), 2);
    let writes = emu.writes_after(seq).await;
    let mut paths: Vec<(String, String)> = writes
        .iter()
        .map(|w| (w.method.clone(), w.path.clone()))
        .collect();
    paths.sort();
    let mut expected = vec![
        ("PATCH".to_string(), format!("/v1.0/users/{}", text(&a_id))),
        ("PATCH".to_string(), format!("/v1.0/users/{}", text(&b_id))),
    ];
    expected.sort();
    assert_eq!(paths, expected, "{writes:#?}");
    assert_eq!(
        emu.user(&format!("{a}@{PARTNERS}")).await["displayName"],
        "Planned A"
    );
    assert_eq!(
        emu.user(&format!("{b}@{STAFF}")).await["displayName"],
        "Unplanned B"
    );

    // A plan that was applied is spent.
    let seq = emu.last_seq().await;
    job.run("apply", &[&second]).await.expect(5);
    job.run("plan", &["--detailed-exitcode"]).await.expect(0);
    let r = job.sync(&[]).await.expect(0);
    assert_eq!(r.attempted(), 0, "{}", r.stdout);
    assert_no_writes(&emu.writes_after(seq).await, "after the applied plan");
}

/// The default target, `kind = "emulator"`: the emulator runs inside each `partnersync`
/// process and keeps its directory in `state_file` between runs.
pub async fn in_process_emulator(flavor: Flavor) {
    let Some(mut d) = Directory::new(flavor, "inproc").await else {
        return;
    };
    let guest = d.add_user("ia", PARTNERS, None).await;
    let member = d.add_user("ib", STAFF, None).await;
    let marked = d.add_user("ic", STAFF, Some("Partner")).await;
    let dir = TempDir::new("inproc");
    let config = dir.path.join("partnersync.toml");
    std::fs::write(
        &config,
        format!(
            "{RULES}\n[source]\n{}\n[target]\nkind = \"emulator\"\nstate_file = \"graph-emulator.json\"\n\n[state]\npath = \"state.db\"\n",
            d.source_toml(&dir, None)
        ),
    )
    .expect("write the configuration");
    let config = config.display().to_string();
    let args = ["sync", "--config", config.as_str(), "--json"];
    let sync = || partnersync(&args);
    // The emulator's directory file: {"directory": {"users": {seq: {"props": {...}}}}}.
    let directory = || -> Vec<Value> {
        let text = std::fs::read_to_string(dir.path.join("graph-emulator.json"))
            .expect("the emulator's directory file");
        let v: Value = serde_json::from_str(&text).expect("JSON");
        v["directory"]["users"]
            .as_object()
            .map(|users| users.values().map(|u| u["props"].clone()).collect())
            .unwrap_or_default()
    };
    let user_type = |users: &[Value], upn: &str| -> Value {
        users
            .iter()
            .find(|u| u["userPrincipalName"] == upn)
            .map(|u| u["userType"].clone())
            .unwrap_or_else(|| panic!("no {upn} in {users:?}"))
    };

    let r = sync().await.expect(0);
    assert_eq!(
        (r.actions_of("create").len(), r.attempted()),
        (3, 3),
        "{}",
        r.stdout
    );
    let users = directory();
    assert_eq!(users.len(), 3);
    assert_eq!(user_type(&users, &format!("{guest}@{PARTNERS}")), "Guest");
    assert_eq!(user_type(&users, &format!("{member}@{STAFF}")), "Member");
    assert_eq!(user_type(&users, &format!("{marked}@{STAFF}")), "Guest");

    let r = sync().await.expect(0);
    assert_eq!(r.attempted(), 0, "{}", r.stdout);
    assert_eq!(r.actions(), Vec::<Value>::new());

    d.set(&member, "extensionAttribute1", "Partner").await;
    let r = sync().await.expect(0);
    let updates = r.actions_of("update");
    assert_eq!((updates.len(), r.attempted()), (1, 1), "{}", r.stdout);
    assert_eq!(
        change(&updates[0], "userType"),
        (json!(["Member"]), json!(["Guest"]))
    );
    assert_eq!(
        user_type(&directory(), &format!("{member}@{STAFF}")),
        "Guest"
    );
    assert_eq!(directory().len(), 3);
}
