//! The administrator's commands end to end on the embedded default (sample LDIF, rules,
//! in-process Graph emulator, SQLite state): init, check, plan/apply with a stale-plan
//! refusal, sync (zero writes when nothing changed, exactly the Member → Guest change),
//! the deletion guard, staging, preview, status and `run` with /healthz and /metrics.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_partnersync"))
}

struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn init(name: &str) -> Dir {
    let dir = std::env::temp_dir().join(format!("ps-sync-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let out = bin().arg("init").arg(&dir).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Dir(dir)
}

fn run(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = bin()
        .args(args)
        .arg("--config")
        .arg(dir.join("partnersync.toml"))
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn json(dir: &Path, args: &[&str]) -> (i32, serde_json::Value) {
    let mut a = args.to_vec();
    a.push("--json");
    let (code, out, err) = run(dir, &a);
    let v = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
    (code, v)
}

fn edit_ldif(dir: &Path, from: &str, to: &str) {
    let p = dir.join("data/partners.ldif");
    let text = std::fs::read_to_string(&p).unwrap();
    assert!(text.contains(from), "{from} not in the sample");
    std::fs::write(&p, text.replace(from, to)).unwrap();
}

#[test]
fn init_refuses_to_overwrite_and_check_reports_every_part() {
    let d = init("init");
    let out = bin().arg("init").arg(&d.0).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--force"));
    let (code, v) = json(&d.0, &["check"]);
    assert_eq!(code, 0, "{v}");
    let checks: Vec<&str> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["check"].as_str().unwrap())
        .collect();
    assert_eq!(
        checks,
        ["configuration", "rule tests", "state", "source", "target"]
    );
    // A broken rule test is a finding, with the test named.
    let cfg = d.0.join("partnersync.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    let broken = text.replacen("userType = \"Guest\"", "userType = \"Member\"", 1);
    assert_ne!(text, broken);
    std::fs::write(&cfg, broken).unwrap();
    let (code, out, _) = run(&d.0, &["check"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("FAIL  rule tests"), "{out}");
    let typo = text.replace("delete_mode = ", "delete_mod = ");
    assert_ne!(text, typo);
    std::fs::write(&cfg, typo).unwrap();
    let (code, _, err) = run(&d.0, &["sync"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("delete_mod") && err.contains("[sync]"),
        "{err}"
    );
}

#[test]
fn sync_plan_apply_and_the_guards() {
    let d = init("sync");
    let (code, v) = json(&d.0, &["sync"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["plan"]["actions"].as_array().unwrap().len(), 12);
    assert_eq!(v["attempted"], 12);

    // Nothing changed: zero writes, and only the change feed was read.
    let (code, v) = json(&d.0, &["sync"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["attempted"], 0);
    assert_eq!(v["mode"], "delta");
    assert_eq!(v["source_entries"], 0);

    // Kwame (no extensionAttribute1) moves to the partner domain: exactly one update, a
    // userType change.
    edit_ldif(
        &d.0,
        "kwame.mensah@contoso.com",
        "kwame.mensah@partners.contoso.com",
    );
    let plan_path = d.0.join("plan.json");
    let plan_arg = plan_path.to_str().unwrap();
    let (code, out, _) = run(&d.0, &["plan", "--out", plan_arg]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("1 update (1 userType change)"), "{out}");
    assert!(
        out.contains("userType: [\"Member\"] -> [\"Guest\"]"),
        "{out}"
    );
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&plan_path).unwrap()).unwrap();
    assert_eq!(saved["version"], 1);
    assert!(
        saved["binding"]["state_generation"].as_u64().is_some(),
        "{saved}"
    );

    // The source changes again after the review: the saved plan is stale.
    edit_ldif(&d.0, "Lena Schmidt", "Lena Schmidt-Weber");
    let (code, v) = json(&d.0, &["apply", plan_arg]);
    assert_eq!(code, 5, "{v}");
    assert!(v["error"].as_str().unwrap().contains("stale"), "{v}");
    let (_, v) = json(&d.0, &["status"]);
    assert_eq!(
        v["runs"][0]["outcome"], "applied",
        "nothing was recorded as applied"
    );

    // Plan again and apply exactly that.
    let (code, _, _) = run(&d.0, &["plan", "--out", plan_arg]);
    assert_eq!(code, 0);
    let (code, v) = json(&d.0, &["apply", plan_arg]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["attempted"], 2);
    // The same plan a second time: refused, the state moved on.
    let (code, _) = json(&d.0, &["apply", plan_arg]);
    assert_eq!(code, 5);
    let (code, _, _) = run(&d.0, &["plan", "--detailed-exitcode"]);
    assert_eq!(code, 0, "no changes left");

    // Staff leave the directory: 6 of 12 is above the 10% guard. Nothing is written.
    let p = d.0.join("data/partners.ldif");
    let text = std::fs::read_to_string(&p).unwrap();
    let kept: Vec<&str> = text
        .split("\n\n")
        .filter(|block| !block.contains("OU=Staff"))
        .collect();
    std::fs::write(&p, kept.join("\n\n")).unwrap();
    let (code, out, _) = run(&d.0, &["plan", "--detailed-exitcode"]);
    assert_eq!(code, 2, "changes pending: {out}");
    let (code, out, _) = run(&d.0, &["sync", "--staging"]);
    assert_eq!(code, 4, "the guard applies to staging too: {out}");
    let (code, out, _) = run(&d.0, &["sync"]);
    assert_eq!(code, 4, "{out}");
    assert!(out.contains("nothing was written"), "{out}");
    let (_, v) = json(&d.0, &["status"]);
    assert_eq!(v["runs"][0]["outcome"], "guard-tripped");
    assert_eq!(v["managed"], 12);
    let (code, v) = json(&d.0, &["sync", "--staging", "--allow-deletes", "6"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["outcome"], "staged");
    assert_eq!(v["attempted"], 0);
    let (code, v) = json(&d.0, &["sync", "--allow-deletes", "6"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["attempted"], 6, "disabled, not deleted: {v}");
    assert!(v["plan"]["actions"]
        .as_array()
        .unwrap()
        .iter()
        .all(|a| a["action"] == "disable"));
}

/// `[target] anchor_attribute` names a directory extension property: the preview writes the
/// anchor there, a sync binds every user through it, and the next sync matches them by it
/// and writes nothing. A malformed name stops at load, naming the key.
#[test]
fn sync_binds_users_through_a_configured_extension_anchor() {
    const EXT: &str = "extension_0b9e4f3a7c214d8eb5a62f1e9c8d7b64_partnerAnchor";
    let d = init("extension-anchor");
    let config = d.0.join("partnersync.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let with = |name: &str| {
        text.replacen(
            "kind = \"emulator\"\n",
            &format!("kind = \"emulator\"\nanchor_attribute = \"{name}\"\n"),
            1,
        )
    };
    std::fs::write(&config, with("extension_partnerAnchor")).unwrap();
    let (code, _, err) = run(&d.0, &["sync"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("[target] anchor_attribute:") && err.contains("without hyphens"),
        "{err}"
    );

    std::fs::write(&config, with(EXT)).unwrap();
    let (code, out, err) = run(
        &d.0,
        &["preview", "CN=Dmitri Volkov,OU=Partners,DC=contoso,DC=com"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("\"{EXT}\"")), "{out}");

    let (code, v) = json(&d.0, &["sync"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["attempted"], 12, "{v}");
    assert_eq!(v["failures"].as_array().map(Vec::len), Some(0), "{v}");
    let directory: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(d.0.join(".partnersync/graph-emulator.json")).unwrap(),
    )
    .unwrap();
    let bound = directory["directory"]["users"]
        .as_object()
        .unwrap()
        .values()
        .filter(|u| u["props"][EXT].is_string())
        .count();
    assert_eq!(bound, 12, "every user bound through the extension");

    // A full cycle lists the users by the extension and matches every one: zero writes.
    let (code, v) = json(&d.0, &["sync", "--full"]);
    assert_eq!(code, 0, "{v}");
    assert!(
        v["mode"].as_str().is_some_and(|m| m.starts_with("full")),
        "{v}"
    );
    assert_eq!(v["attempted"], 0, "{v}");
    let (code, v) = json(&d.0, &["sync"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["attempted"], 0, "{v}");
}

#[test]
fn preview_follows_one_object_to_the_graph_call() {
    let d = init("preview");
    let (code, out, err) = run(
        &d.0,
        &["preview", "CN=Dmitri Volkov,OU=Partners,DC=contoso,DC=com"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("rules in scope"), "{out}");
    assert!(out.contains("Graph call: POST /users"), "{out}");
    assert!(out.contains("\"onPremisesImmutableId\""), "{out}");
    assert!(
        !out.contains("password\":"),
        "no password is ever shown: {out}"
    );
    let (code, _, err) = run(&d.0, &["preview", "CN=Nobody,DC=contoso,DC=com"]);
    assert_eq!(code, 3);
    assert!(err.contains("no object in the source"), "{err}");
}

#[test]
fn run_serves_health_and_metrics_and_stops_on_sigterm() {
    let d = init("run");
    let mut child = bin()
        .args([
            "run",
            "--every",
            "1h",
            "--listen",
            "127.0.0.1:0",
            "--json",
            "--config",
        ])
        .arg(d.0.join("partnersync.toml"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut addr = None;
    let mut cycled = false;
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("serving /healthz and /metrics on http://") {
            addr = Some(rest.trim().to_string());
        }
        if line.contains("\"event\":\"cycle\"") {
            assert!(line.contains("\"outcome\":\"applied\""), "{line}");
            cycled = true;
            break;
        }
    }
    assert!(cycled);
    let addr = addr.expect("the address is printed");
    let get = |path: &str| {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut r = String::new();
        s.read_to_string(&mut r).unwrap();
        r
    };
    let health = get("/healthz");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let metrics = get("/metrics");
    assert!(
        metrics.contains("partnersync_cycles_total{outcome=\"applied\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("partnersync_writes_total 12"), "{metrics}");
    let (_, v) = json(&d.0, &["status"]);
    assert!(v["next_run_at"].as_i64().unwrap() > 0, "{v}");
    // SIGTERM: a clean stop.
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
}
