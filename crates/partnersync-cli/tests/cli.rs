//! The CLI contract: `partnersync eval`, `rules test` and `rules explain`, called exactly as
//! scripts and the acceptance tests call them.

use std::path::PathBuf;
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_partnersync"))
}

fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

fn eval(args: &[&str]) -> (i32, serde_json::Value, String) {
    let out: Output = bin().arg("eval").args(args).output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let json = if stdout.trim().is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(stdout.trim()).unwrap()
    };
    (
        out.status.code().unwrap(),
        json,
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn eval_prints_one_json_value() {
    let (code, v, _) = eval(&[
        "--attributes",
        r#"{"userPrincipalName": "ana@partners.contoso.com"}"#,
        r#"IIF(InStr(LCase([userPrincipalName]), "@partners.contoso.com") > 0, "Guest", "Member")"#,
    ]);
    assert_eq!((code, v), (0, serde_json::json!("Guest")));
    let (code, v, _) = eval(&["10-2*3"]);
    assert_eq!((code, v), (0, serde_json::json!(24)));
    let (code, v, err) = eval(&["-5 + 2"]);
    assert_eq!(
        (code, v),
        (0, serde_json::json!(-3)),
        "an expression may start with '-': {err}"
    );
    let (code, v, _) = eval(&["--attributes", r#"{"p": ["b", "a"]}"#, "[p]"]);
    assert_eq!((code, v), (0, serde_json::json!(["b", "a"])));
    let (code, v, _) = eval(&["IsPresent([nothing])"]);
    assert_eq!((code, v), (0, serde_json::json!(false)));
    let (code, v, _) = eval(&["--attributes", r#"{"x": null}"#, "[x]"]);
    assert_eq!((code, v), (0, serde_json::Value::Null));
}

#[test]
fn eval_prints_sentinels() {
    let (code, v, _) = eval(&["AuthoritativeNull"]);
    assert_eq!(
        (code, v),
        (0, serde_json::json!({"sentinel": "AuthoritativeNull"}))
    );
    let (code, v, _) = eval(&["IgnoreThisFlow"]);
    assert_eq!(
        (code, v),
        (0, serde_json::json!({"sentinel": "IgnoreThisFlow"}))
    );
    let (code, v, _) = eval(&["--dialect", "provisioning", "IgnoreFlowIfNullOrEmpty([x])"]);
    assert_eq!(
        (code, v),
        (0, serde_json::json!({"sentinel": "IgnoreFlow"}))
    );
}

#[test]
fn eval_error_exits_3_with_the_message_on_stdout() {
    let (code, v, _) =
        eval(&[r#"Error("UserPrincipalName is not present to determine UserType")"#]);
    assert_eq!(code, 3);
    assert_eq!(
        v,
        serde_json::json!({"error": "UserPrincipalName is not present to determine UserType"})
    );
    let (code, v, _) = eval(&["CNum(\"abc\")"]);
    assert_eq!(code, 3);
    assert!(v["error"].as_str().unwrap().contains("not a number"));
}

#[test]
fn eval_parse_error_exits_2_with_a_caret_diagnostic() {
    let (code, v, err) = eval(&["IIF(Lcase([x]) = \"a\", 1, 2)"]);
    assert_eq!(code, 2);
    assert_eq!(v, serde_json::Value::Null, "nothing on stdout");
    assert!(err.contains("line 1, column 5"), "{err}");
    assert!(err.contains("    ^^^^^"), "{err}");
    assert!(err.contains("did you mean 'LCase'"), "{err}");
}

#[test]
fn eval_uses_types_and_dialects() {
    let (code, v, _) = eval(&[
        "--attributes",
        r#"{"uac": "514"}"#,
        "--types",
        r#"{"uac": "num"}"#,
        "BitAnd([uac], 2)",
    ]);
    assert_eq!((code, v), (0, serde_json::json!(2)));
    let (code, v, _) = eval(&[
        "--attributes",
        r#"{"p": "one"}"#,
        "--types",
        r#"{"p": "mvstring"}"#,
        "Trim([p])",
    ]);
    assert_eq!((code, v), (0, serde_json::json!(["one"])));
    let (code, v, _) = eval(&[
        "--dialect",
        "provisioning",
        "--attributes",
        r#"{"mobile": "+1 (555) 123-4567"}"#,
        r#"Replace([mobile], , "[()\\s-]+", , "", , )"#,
    ]);
    assert_eq!((code, v), (0, serde_json::json!("+15551234567")));
    let (code, _, err) = eval(&["--dialect", "cloudsync", "1"]);
    assert_eq!(code, 2);
    assert!(err.contains("aadconnect or provisioning"), "{err}");
    let (code, _, err) = eval(&["--types", r#"{"x": "integer"}"#, "1"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown attribute type"), "{err}");
}

#[test]
fn rules_test_passes_on_the_recipes_and_fails_with_a_diff() {
    for cfg in [
        "examples/partnersync.toml",
        "examples/rules/usertype-upn-suffix.toml",
        "examples/rules/usertype-extensionattribute1.toml",
    ] {
        let out = bin()
            .args(["rules", "test", "--config"])
            .arg(repo(cfg))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{cfg}: {stdout}");
        assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
    }
    let dir = std::env::temp_dir().join(format!("partnersync-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("failing.toml");
    std::fs::write(
        &cfg,
        r#"
[[rule]]
name = "ut"
precedence = 1
[[rule.flow]]
target = "userType"
constant = "Member"
[[test]]
name = "should be a guest"
attributes = { userPrincipalName = "a@partners.contoso.com" }
expect = { userType = "Guest" }
"#,
    )
    .unwrap();
    let out = bin()
        .args(["rules", "test", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout.contains("FAIL  should be a guest"), "{stdout}");
    assert!(stdout.contains("- expected: \"Guest\""), "{stdout}");
    assert!(
        stdout.contains("+ actual:   \"Member\" (rule \"ut\")"),
        "{stdout}"
    );
    assert!(stdout.contains("0 passed, 1 failed"), "{stdout}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn rules_explain_shows_rules_flows_and_result() {
    let out = bin()
        .args(["rules", "explain", "--config"])
        .arg(repo("examples/partnersync.toml"))
        .arg("--ldif")
        .arg(repo("examples/data/partners.ldif"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("CN=Elena Rossi,OU=Partners,DC=contoso,DC=com"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "rules in scope: UserType from extensionAttribute1, In from AD - User UserType"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("userType = \"Guest\"   <- In from AD - User UserType"),
        "{stdout}"
    );
    assert!(
        stdout.contains("CN=Chloé Dubois"),
        "base64 DNs are decoded: {stdout}"
    );
    assert_eq!(out.status.code(), Some(0), "{stdout}");

    let out = bin()
        .args(["rules", "explain", "--json", "--config"])
        .arg(repo("examples/rules/usertype-upn-suffix.toml"))
        .args(["--attributes", r#"{"displayName": "No UPN"}"#])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "an entry in error exits 3");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["evaluation"]["errors"][0]["message"],
        "UserPrincipalName is not present to determine UserType"
    );
    assert_eq!(
        v["evaluation"]["errors"][0]["rule"],
        "In from AD - User UserType"
    );
}

#[test]
fn bad_configuration_names_the_line() {
    let dir = std::env::temp_dir().join(format!("partnersync-cli-badcfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("bad.toml");
    std::fs::write(&cfg, "[[rule]]\nname = \"ut\"\nprecedence = 1\n[[rule.flow]]\ntarget = \"userType\"\nexpression = 'IIF([a] = \"x\", \"Guest\")'\n").unwrap();
    let out = bin()
        .args(["rules", "test", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr
            .contains("bad.toml: line 6: rule \"ut\", flow userType: IIF takes 3 arguments, got 2"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn graph_emulator_subcommand_prints_the_startup_contract() {
    use std::io::BufRead;
    let mut child = bin()
        .args(["graph-emulator", "--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    child.kill().ok();
    child.wait().ok();
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    let url = v["graph_url"].as_str().unwrap();
    assert!(
        url.starts_with("http://127.0.0.1:") && url.ends_with("/v1.0"),
        "{line}"
    );
    for key in ["token_url", "tenant_id", "client_id", "client_secret"] {
        assert!(v[key].is_string(), "{key} missing: {line}");
    }
    let out = bin().args(["graph-emulator", "--bogus"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// The README's first command: the sample directory synced into an in-process Graph
/// emulator; a second run writes nothing; moving a user to the partner domain is exactly one
/// Member -> Guest change; removing many users trips the deletion guard and writes nothing.
#[test]
fn demo_runs_the_whole_job_and_converges() {
    let dir = std::env::temp_dir().join(format!("partnersync-demo-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("examples/data")).unwrap();
    std::fs::copy(
        repo("examples/partnersync.toml"),
        dir.join("examples/partnersync.toml"),
    )
    .unwrap();
    let ldif = dir.join("examples/data/partners.ldif");
    std::fs::copy(repo("examples/data/partners.ldif"), &ldif).unwrap();
    let demo = || {
        let out = bin().arg("demo").current_dir(&dir).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };

    let (code, first) = demo();
    assert_eq!(code, Some(0), "{first}");
    assert!(
        first.contains("plan: 12 create, 0 adopt, 0 update"),
        "{first}"
    );
    assert!(
        first.contains("ana.lopez@partners.contoso.com           userType=Guest"),
        "{first}"
    );
    assert!(
        first.contains("grace.kim@contoso.com                    userType=Member"),
        "{first}"
    );
    assert!(
        first.contains("applied: 12 of 12 write(s) succeeded."),
        "{first}"
    );

    let (code, second) = demo();
    assert_eq!(code, Some(0), "{second}");
    assert!(
        second.contains("nothing to write: the tenant already matches the directory."),
        "{second}"
    );
    assert!(
        !second.contains("applied:"),
        "no '0 of 0 writes' line: {second}"
    );

    let text = std::fs::read_to_string(&ldif).unwrap();
    std::fs::write(
        &ldif,
        text.replace(
            "userPrincipalName: kwame.mensah@contoso.com",
            "userPrincipalName: kwame.mensah@partners.contoso.com",
        ),
    )
    .unwrap();
    let (code, third) = demo();
    assert_eq!(code, Some(0), "{third}");
    assert!(
        third.contains("plan: 0 create, 0 adopt, 1 update (1 userType change)"),
        "{third}"
    );
    assert!(
        third.contains("userType: [\"Member\"] -> [\"Guest\"]"),
        "{third}"
    );

    // Remove every staff member: 6 of 12 managed users (50%) is above the 10% guard.
    let text = std::fs::read_to_string(&ldif).unwrap();
    let kept: Vec<&str> = text
        .split("\n\n")
        .filter(|record| !record.contains("OU=Staff"))
        .collect();
    std::fs::write(&ldif, kept.join("\n\n")).unwrap();
    let (code, fourth) = demo();
    assert_eq!(code, Some(4), "{fourth}");
    assert!(fourth.contains("STOPPED by the deletion guard"), "{fourth}");
    assert!(fourth.contains("nothing was written"), "{fourth}");
    let (_, fifth) = demo();
    assert!(
        fifth.contains("STOPPED by the deletion guard"),
        "still blocked: nothing changed: {fifth}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
