//! The admin API (handle and HTTP), the binary's start-up contract, SIGTERM and persistence.

mod common;

use common::*;
use serde_json::{json, Value};
use tokio::io::AsyncBufReadExt;

#[tokio::test]
async fn admin_handle_seeds_lists_counts_resets_and_logs() {
    let env = start().await;
    let admin = env.emu.admin();
    assert_eq!(
        env.emu.tenant_id(),
        partnersync_graph_emulator::DEFAULT_TENANT_ID
    );
    let seeded = admin
        .seed_user(
            json!({"userPrincipalName": "synced@contoso.com", "displayName": "Synced",
        "mailNickname": "synced", "accountEnabled": true, "onPremisesSyncEnabled": true}),
        )
        .expect("seed");
    assert_eq!(seeded["onPremisesSyncEnabled"], true);
    assert!(
        admin
            .seed_user(json!({"userPrincipalName": "SYNCED@contoso.com"}))
            .is_err(),
        "uniqueness holds"
    );
    admin
        .generate_users(3, "g", "contoso.com")
        .expect("generate");
    assert_eq!(admin.count().active, 4);
    assert_eq!(admin.users().len(), 4);
    assert!(admin.user("g00002@contoso.com").is_some());

    env.clear_log();
    env.get("/users?$top=2").await;
    env.delete("/users/g00001@contoso.com").await;
    let ops = admin.operations();
    assert_eq!(ops.len(), 2);
    assert_eq!(
        (
            ops[0].method.as_str(),
            ops[0].path.as_str(),
            ops[0].query.as_str(),
            ops[0].status
        ),
        ("GET", "/v1.0/users", "$top=2", 200)
    );
    assert_eq!((ops[1].method.as_str(), ops[1].status), ("DELETE", 204));
    assert_eq!(
        ops[1].client_id.as_deref(),
        Some(env.emu.client_id().as_str())
    );
    assert_eq!(admin.count().deleted, 1);

    admin.reset();
    assert_eq!(admin.count().active, 0);
    assert_eq!(admin.count().deleted, 0);
    assert!(admin.operations().is_empty());
}

impl Env {
    fn clear_log(&self) {
        self.emu.admin().clear_operations();
    }
}

#[tokio::test]
async fn admin_http_api() {
    let env = start().await;
    let base = format!("{}/_emulator", env.emu.base_url());
    let http = &env.http;
    let r = http
        .post(format!("{base}/users/generate"))
        .json(&json!({"count": 5, "domain": "contoso.com"}))
        .send()
        .await
        .expect("gen");
    assert_eq!(r.status().as_u16(), 201);
    let r = http
        .post(format!("{base}/users"))
        .json(&json!([{"userPrincipalName": "one@contoso.com", "displayName": "One"}]))
        .send()
        .await
        .expect("seed");
    assert_eq!(r.status().as_u16(), 201);
    let c: Value = http
        .get(format!("{base}/users/count"))
        .send()
        .await
        .expect("count")
        .json()
        .await
        .expect("json");
    assert_eq!(c, json!({"active": 6, "deleted": 0}));
    let r = http
        .delete(format!("{base}/log"))
        .send()
        .await
        .expect("clear log");
    assert_eq!(r.status().as_u16(), 200);
    env.get("/users").await;
    let log: Value = http
        .get(format!("{base}/log"))
        .send()
        .await
        .expect("log")
        .json()
        .await
        .expect("json");
    assert_eq!(log["value"][0]["path"], "/v1.0/users");
    assert_eq!(log["value"][0]["status"], 200);
    let info: Value = http
        .get(&base)
        .send()
        .await
        .expect("info")
        .json()
        .await
        .expect("json");
    assert_eq!(info["graph_url"], env.emu.graph_url());
    let t: Value = http
        .post(format!("{base}/token"))
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("json");
    let tok = t["access_token"].as_str().unwrap_or_default().to_string();
    assert_eq!(
        env.send_raw("GET", &env.url("/users"), None, &[], Some(&tok))
            .await
            .status,
        200
    );
    // Invitation redemption over HTTP.
    let inv = env.post("/invitations", &json!({"invitedUserEmailAddress": "r@fabrikam.com", "inviteRedirectUrl": "https://x.example"})).await.json();
    let uid = inv["invitedUser"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let u: Value = http
        .post(format!("{base}/users/{uid}/redeem"))
        .json(&json!({"issuer": "mail"}))
        .send()
        .await
        .expect("redeem")
        .json()
        .await
        .expect("json");
    assert_eq!(u["externalUserState"], "Accepted");
    let r = http
        .post(format!("{base}/reset"))
        .send()
        .await
        .expect("reset");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(env.emu.admin().count().active, 0);
}

fn temp_path(name: &str) -> std::path::PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    std::env::temp_dir().join(format!(
        "ps-graph-emu-{}-{nanos}-{name}",
        std::process::id()
    ))
}

async fn spawn_binary(state: &std::path::Path) -> (tokio::process::Child, Value, String) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_partnersync-graph-emulator"))
        .args(["--listen", "127.0.0.1:0", "--state"])
        .arg(state)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let line = tokio::time::timeout(std::time::Duration::from_secs(20), lines.next_line())
        .await
        .expect("start-up line in time")
        .expect("read")
        .expect("a line");
    let v = serde_json::from_str(&line).expect("start-up JSON");
    (child, v, line)
}

async fn sigterm(child: &mut tokio::process::Child) -> std::process::ExitStatus {
    let pid = child.id().expect("pid");
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    tokio::time::timeout(std::time::Duration::from_secs(10), child.wait())
        .await
        .expect("exits")
        .expect("wait")
}

#[tokio::test]
async fn binary_prints_contract_stops_on_sigterm_and_persists_state() {
    let state = temp_path("state.json");
    let (mut child, contract, raw_line) = spawn_binary(&state).await;
    let keys: Vec<&str> = contract
        .as_object()
        .map(|m| m.keys().map(String::as_str).collect())
        .unwrap_or_default();
    assert_eq!(keys.len(), 5, "{contract}");
    assert!(
        raw_line.starts_with("{\"graph_url\": \"http://127.0.0.1:"),
        "{raw_line}"
    );
    let graph = contract["graph_url"]
        .as_str()
        .expect("graph_url")
        .to_string();
    assert!(graph.starts_with("http://127.0.0.1:") && graph.ends_with("/v1.0"));
    let tenant = contract["tenant_id"].as_str().expect("tenant_id");
    assert!(contract["token_url"]
        .as_str()
        .is_some_and(|t| t.ends_with(&format!("/{tenant}/oauth2/v2.0/token"))));
    let http = reqwest::Client::new();
    let token = fetch_token(
        &http,
        contract["token_url"].as_str().unwrap_or(""),
        contract["client_id"].as_str().unwrap_or(""),
        contract["client_secret"].as_str().unwrap_or(""),
    )
    .await;
    let r = http
        .post(format!("{graph}/users"))
        .bearer_auth(&token)
        .json(&user("persisted"))
        .send()
        .await
        .expect("create");
    assert_eq!(r.status().as_u16(), 201);
    let status = sigterm(&mut child).await;
    assert!(status.success(), "clean exit: {status:?}");
    assert!(state.exists());

    // Restart on the same state file: the user and the token (same signing key) survive.
    let (mut child, contract, _) = spawn_binary(&state).await;
    let graph = contract["graph_url"].as_str().unwrap_or("").to_string();
    let r = http
        .get(format!("{graph}/users/persisted@contoso.com"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("get");
    assert_eq!(r.status().as_u16(), 200);
    assert!(sigterm(&mut child).await.success());
    let _ = std::fs::remove_file(&state);
}

#[tokio::test]
async fn binary_rejects_bad_arguments() {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_partnersync-graph-emulator"))
        .args(["--listen", "10.1.2.3:0"])
        .output()
        .await
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("loopback"));
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_partnersync-graph-emulator"))
        .args(["--bogus"])
        .output()
        .await
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test]
async fn binary_refuses_a_corrupt_state_file_and_uses_a_tenant_config() {
    let state = temp_path("corrupt.json");
    std::fs::write(&state, "{not json").expect("write");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_partnersync-graph-emulator"))
        .args(["--listen", "127.0.0.1:0", "--state"])
        .arg(&state)
        .output()
        .await
        .expect("run");
    let _ = std::fs::remove_file(&state);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid state file"));

    let tenant = temp_path("tenant.toml");
    std::fs::write(
        &tenant,
        r#"
tenant_id = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
initial_domain = "fabrikam.onmicrosoft.com"
[[apps]]
client_id = "11111111-2222-4333-8444-555555555555"
client_secret = "s3cret"
permissions = ["User.Read.All"]
"#,
    )
    .expect("write");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_partnersync-graph-emulator"))
        .args(["--listen", "127.0.0.1:0", "--tenant"])
        .arg(&tenant)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let line = tokio::io::BufReader::new(stdout)
        .lines()
        .next_line()
        .await
        .expect("read")
        .expect("line");
    let contract: Value = serde_json::from_str(&line).expect("json");
    assert_eq!(
        contract["tenant_id"],
        "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
    );
    assert_eq!(contract["client_secret"], "s3cret");
    let http = reqwest::Client::new();
    let token = fetch_token(
        &http,
        contract["token_url"].as_str().unwrap_or(""),
        "11111111-2222-4333-8444-555555555555",
        "s3cret",
    )
    .await;
    let graph = contract["graph_url"].as_str().unwrap_or("");
    let r = http
        .post(format!("{graph}/users"))
        .bearer_auth(&token)
        .json(&user("x"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status().as_u16(), 403, "read-only app from the config");
    assert!(sigterm(&mut child).await.success());
    let _ = std::fs::remove_file(&tenant);
}
