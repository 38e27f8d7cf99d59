//! `partnersync target check` against an emulator started by the test: a fully permitted
//! app, a read-only app, a wrong secret, a certificate credential, a domain the tenant does
//! not have, and configuration errors.

use std::path::{Path, PathBuf};
use std::process::Command;

use partnersync_graph_emulator::{
    AppRegistration, Emulator, EmulatorConfig, EmulatorHandle, Permission,
};

const READER_ID: &str = "11111111-2222-4333-8444-555555555555";
const READER_SECRET: &str = "reader-secret~value";

fn dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ps-target-check-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// A config whose [target] points at `emu`, with `credential` lines and `extra` lines.
fn write_config(
    dir: &Path,
    emu: &EmulatorHandle,
    client_id: &str,
    credential: &str,
    extra: &str,
) -> PathBuf {
    let text = format!(
        r#"[source]
kind = "ldif"
path = "partners.ldif"

[target]
kind = "graph"
tenant_id = "{tenant}"
client_id = "{client_id}"
{credential}
graph_url = "{graph}"
token_url = "{token}"
{extra}
[[target.domains]]
name = "partners.contoso.com"
kind = "federated"
"#,
        tenant = emu.tenant_id(),
        graph = emu.graph_url(),
        token = emu.token_url(),
    );
    let path = dir.join("partnersync.toml");
    std::fs::write(&path, text).expect("config");
    path
}

/// Runs the binary off the async runtime (the emulator serves on it meanwhile).
async fn check(config: &Path, json: bool) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_partnersync"));
    cmd.args(["target", "check", "--config"]).arg(config);
    if json {
        cmd.arg("--json");
    }
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("join")
        .expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn emulator() -> EmulatorHandle {
    let mut config = EmulatorConfig::default();
    config.tenant.apps.push(AppRegistration {
        client_id: READER_ID.into(),
        client_secret: Some(READER_SECRET.into()),
        certificates: vec![],
        permissions: vec![Permission::UserReadAll],
        display_name: Some("reader".into()),
    });
    Emulator::start(config).await.expect("emulator")
}

#[tokio::test]
async fn a_fully_permitted_app_is_ready_to_sync() {
    let emu = emulator().await;
    let d = dir("ok");
    // A relative secret file: resolved against the config file's directory.
    std::fs::write(d.join("secret"), emu.client_secret()).expect("secret");
    let config = write_config(
        &d,
        &emu,
        &emu.client_id(),
        "client_secret_file = \"secret\"",
        "",
    );
    let (code, out, err) = check(&config, false).await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("OK: authenticated to tenant"), "{out}");
    assert!(out.contains("OK: can read users"), "{out}");
    assert!(
        out.contains("OK: can create, update, disable, delete and restore users"),
        "{out}"
    );
    assert!(
        out.contains("OK: partners.contoso.com is verified and federated"),
        "{out}"
    );
    assert!(
        out.contains("contoso.onmicrosoft.com") && out.contains("(initial)"),
        "{out}"
    );
    assert!(out.contains("result: ready to sync"), "{out}");
    assert!(!out.contains(&emu.client_secret()) && !err.contains(&emu.client_secret()));

    let (code, out, _) = check(&config, true).await;
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON object");
    assert_eq!(v["ok"], true);
    assert!(v["roles"]
        .as_array()
        .is_some_and(|r| r.iter().any(|x| x == "User.ReadWrite.All")));
    assert!(v["findings"]
        .as_array()
        .is_some_and(|f| f.iter().all(|x| x["level"] != "missing")));
    assert!(v["domains"].as_array().is_some_and(|d| d.len() == 3));
    let _ = std::fs::remove_dir_all(&d);
}

#[tokio::test]
async fn a_read_only_app_is_told_which_permission_to_grant() {
    let emu = emulator().await;
    let d = dir("reader");
    let config = write_config(
        &d,
        &emu,
        READER_ID,
        "client_secret_env = \"PS_TARGET_CHECK_READER_SECRET\"",
        "creation = \"invitation\"",
    );
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_partnersync"));
    cmd.args(["target", "check", "--config"])
        .arg(&config)
        .env("PS_TARGET_CHECK_READER_SECRET", READER_SECRET);
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("join")
        .expect("runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("OK: can read users (User.Read.All)"),
        "{text}"
    );
    assert!(
        text.contains("MISSING: User.ReadWrite.All application permission"),
        "{text}"
    );
    assert!(
        text.contains("API permissions") && text.contains("Grant admin consent"),
        "{text}"
    );
    assert!(
        text.contains("MISSING: creation = \"invitation\" needs the User.Invite.All"),
        "{text}"
    );
    assert!(text.contains("result: 2 findings block a sync"), "{text}");
    let _ = std::fs::remove_dir_all(&d);
}

#[tokio::test]
async fn a_wrong_secret_or_a_foreign_domain_blocks_with_advice() {
    let emu = emulator().await;
    let d = dir("wrong");
    std::fs::write(d.join("secret"), "not-the-secret").expect("secret");
    let config = write_config(
        &d,
        &emu,
        &emu.client_id(),
        "client_secret_file = \"secret\"",
        "",
    );
    let (code, out, _) = check(&config, false).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("MISSING: cannot authenticate"), "{out}");
    assert!(out.contains("AADSTS7000215"), "{out}");
    assert!(out.contains("Certificates & secrets"), "{out}");
    assert!(!out.contains("not-the-secret"), "{out}");

    std::fs::write(d.join("secret"), emu.client_secret()).expect("secret");
    let config = write_config(
        &d,
        &emu,
        &emu.client_id(),
        "client_secret_file = \"secret\"",
        "[[target.domains]]\nname = \"fabrikam.example\"\nkind = \"managed\"\n[[target.domains]]\nname = \"contoso.com\"\nkind = \"federated\"",
    );
    let (code, out, _) = check(&config, false).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("MISSING: [[target.domains]] fabrikam.example is not a domain of this tenant"),
        "{out}"
    );
    assert!(
        out.contains("WARNING: contoso.com is managed in the tenant but configured as federated"),
        "{out}"
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[tokio::test]
async fn a_certificate_credential_is_checked_and_described() {
    let emu = emulator().await;
    let d = dir("cert");
    std::fs::write(
        d.join("app.pem"),
        partnersync_graph_emulator::DEFAULT_CLIENT_CERTIFICATE,
    )
    .expect("pem");
    let config = write_config(
        &d,
        &emu,
        &emu.client_id(),
        "certificate_file = \"app.pem\"",
        "",
    );
    let (code, out, err) = check(&config, false).await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("OK: certificate CN=partnersync emulator app"),
        "{out}"
    );
    assert!(out.contains("thumbprint"), "{out}");
    assert!(out.contains("with certificate"), "{out}");
    assert!(!out.contains("PRIVATE KEY"));
    let _ = std::fs::remove_dir_all(&d);
}

#[tokio::test]
async fn configuration_errors_exit_2_and_never_echo_secrets() {
    let emu = emulator().await;
    let d = dir("config");
    let config = write_config(
        &d,
        &emu,
        &emu.client_id(),
        "client_secret = \"Inline~Secret~123\"",
        "",
    );
    let (code, out, err) = check(&config, false).await;
    assert_eq!(code, 2, "{out}\n{err}");
    assert!(err.contains("client_secret_env"), "{err}");
    assert!(
        !err.contains("Inline~Secret~123") && !out.contains("Inline~Secret~123"),
        "{err}"
    );

    let config = write_config(
        &d,
        &emu,
        &emu.client_id(),
        "client_secret_env = \"PS_TARGET_CHECK_UNSET_VAR\"",
        "",
    );
    let (code, _, err) = check(&config, false).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("PS_TARGET_CHECK_UNSET_VAR"), "{err}");

    let config = write_config(
        &d,
        &emu,
        &emu.client_id(),
        "client_secret_env = \"X\"\nbatchsize = 3",
        "",
    );
    let (code, _, err) = check(&config, false).await;
    assert_eq!(code, 2);
    assert!(err.contains("batchsize"), "{err}");

    std::fs::write(
        d.join("no-target.toml"),
        "[source]\nkind = \"ldif\"\npath = \"x\"\n",
    )
    .expect("write");
    let (code, _, err) = check(&d.join("no-target.toml"), false).await;
    assert_eq!(code, 2);
    assert!(err.contains("no [target] table"), "{err}");
    let (code, _, _) = check(&d.join("missing.toml"), false).await;
    assert_eq!(code, 2);
    let _ = std::fs::remove_dir_all(&d);
}
