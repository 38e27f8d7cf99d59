//! Shared helpers of the end-to-end tests (`tests/e2e_*.rs`): the real `partnersync` binary,
//! one Graph emulator *process* per test (so its operation log outlives each sync run and
//! a `kill -9` of the sync leaves it standing), a temporary directory per test, and the
//! configuration file that ties them together.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_partnersync");

/// The rules every end-to-end test syncs with: Microsoft's two UserType recipes.
pub const RULES: &str = include_str!("../fixtures/e2e-rules.toml");

/// A name unique within this test process and across runs (for directories, OUs, users).
pub fn unique(tag: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{tag}-{}-{nanos}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A directory of its own for one test, removed on drop (kept when
/// `PARTNERSYNC_E2E_KEEP=1`, to look at after a failure).
pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new(test: &str) -> Self {
        let path = std::env::temp_dir().join(format!("partnersync-e2e-{}", unique(test)));
        std::fs::create_dir_all(&path).expect("create the test directory");
        TempDir { path }
    }

    /// Writes a file only this user can read (passwords, secrets).
    pub fn private_file(&self, name: &str, text: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt as _;
        let p = self.path.join(name);
        std::fs::write(&p, text).expect("write a private file");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).expect("chmod 600");
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var("PARTNERSYNC_E2E_KEEP").is_ok_and(|v| v == "1") {
            eprintln!("kept {}", self.path.display());
            return;
        }
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// What one run of the binary did.
#[derive(Debug)]
pub struct Outcome {
    pub args: Vec<String>,
    pub code: Option<i32>,
    /// stdout as JSON (`--json`), or `Null` when it is not JSON.
    pub json: Value,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    /// Checks the exit code, showing everything the run printed when it differs.
    #[track_caller]
    pub fn expect(self, code: i32) -> Self {
        assert_eq!(
            self.code,
            Some(code),
            "partnersync {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.args,
            clip(&self.stdout),
            clip(&self.stderr)
        );
        self
    }

    /// The plan's actions (`sync`, `apply` and `plan` print them under `plan`).
    pub fn actions(&self) -> Vec<Value> {
        self.json["plan"]["actions"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The actions of one kind (`create`, `update`, `disable`, ...).
    pub fn actions_of(&self, kind: &str) -> Vec<Value> {
        self.actions()
            .into_iter()
            .filter(|a| a["action"] == kind)
            .collect()
    }

    pub fn attempted(&self) -> u64 {
        self.json["attempted"].as_u64().unwrap_or_else(|| {
            panic!(
                "no `attempted` in the output of {:?}: {}",
                self.args, self.stdout
            )
        })
    }

    pub fn mode(&self) -> String {
        self.json["mode"].as_str().unwrap_or_default().to_string()
    }
}

/// The start and end of a long output (a plan of 2,000 creates is 700 KB).
pub fn clip(text: &str) -> String {
    const KEEP: usize = 3_000;
    if text.len() <= 2 * KEEP {
        return text.to_string();
    }
    let mut head = KEEP;
    while !text.is_char_boundary(head) {
        head -= 1;
    }
    let mut tail = text.len() - KEEP;
    while !text.is_char_boundary(tail) {
        tail += 1;
    }
    format!(
        "{} […{} bytes…] {}",
        &text[..head],
        tail - head,
        &text[tail..]
    )
}

/// Runs `partnersync ARGS` to completion.
pub async fn partnersync(args: &[&str]) -> Outcome {
    let out = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .expect("run partnersync");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    Outcome {
        args: args.iter().map(|a| a.to_string()).collect(),
        code: out.status.code(),
        json: serde_json::from_str(stdout.trim()).unwrap_or(Value::Null),
        stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// One write the emulator answered (batch items counted one by one, the `$batch`
/// envelope, token requests and reads not at all).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    pub seq: u64,
    pub method: String,
    pub path: String,
    pub status: u64,
}

/// `partnersync graph-emulator --listen 127.0.0.1:0 --state FILE --no-throttling`, a child
/// process killed on drop.
pub struct EmulatorProcess {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// The start-up line: graph_url, token_url, tenant_id, client_id, client_secret.
    pub startup: Value,
    http: reqwest::Client,
}

impl EmulatorProcess {
    pub async fn start(dir: &TempDir) -> Self {
        let log = std::fs::File::create(dir.path.join("emulator.log")).expect("emulator log");
        let mut child = Command::new(BIN)
            .args([
                "graph-emulator",
                "--listen",
                "127.0.0.1:0",
                "--no-throttling",
            ])
            .arg("--state")
            .arg(dir.path.join("graph-emulator.json"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("start the Graph emulator");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("the emulator prints its start-up line within 30 s")
            .expect("read the emulator's stdout")
            .expect("the emulator's start-up line");
        // Keep draining stdout so the emulator never writes into a closed pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let startup: Value = serde_json::from_str(&line).expect("start-up line is JSON");
        let graph_url = startup["graph_url"].as_str().expect("graph_url");
        let base = graph_url
            .strip_suffix("/v1.0")
            .expect("graph_url ends with /v1.0")
            .to_string();
        EmulatorProcess {
            child,
            base,
            startup,
            http: reqwest::Client::new(),
        }
    }

    /// The `[target]` table for a sync against this emulator (the secret goes to a file).
    pub fn target_toml(&self, dir: &TempDir, writes_per_second: f64) -> String {
        let s = |k: &str| self.startup[k].as_str().expect(k).to_string();
        let secret = dir.private_file("client-secret", &s("client_secret"));
        format!(
            r#"[target]
kind = "graph"
tenant_id = "{}"
client_id = "{}"
client_secret_file = "{}"
graph_url = "{}"
token_url = "{}"
writes_per_second = {writes_per_second:.1}

[[target.domains]]
name = "contoso.com"
kind = "managed"

[[target.domains]]
name = "partners.contoso.com"
kind = "federated"
"#,
            s("tenant_id"),
            s("client_id"),
            secret.display(),
            s("graph_url"),
            s("token_url"),
        )
    }

    async fn get(&self, path: &str) -> Value {
        let url = format!("{}/_emulator{path}", self.base);
        let resp = self
            .http
            .get(&url)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        assert!(resp.status().is_success(), "GET {url}: {}", resp.status());
        let bytes = resp.bytes().await.expect("admin response body");
        serde_json::from_slice(&bytes).expect("admin response is JSON")
    }

    /// Every active user, full objects.
    pub async fn users(&self) -> Vec<Value> {
        self.get("/users").await["value"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The active user with this UPN (case-insensitive).
    pub async fn user(&self, upn: &str) -> Value {
        let users = self.users().await;
        users
            .into_iter()
            .find(|u| {
                u["userPrincipalName"]
                    .as_str()
                    .is_some_and(|v| v.eq_ignore_ascii_case(upn))
            })
            .unwrap_or_else(|| panic!("no user {upn} in the emulator"))
    }

    /// (active, soft-deleted) users.
    pub async fn counts(&self) -> (u64, u64) {
        let c = self.get("/users/count").await;
        (
            c["active"].as_u64().expect("active"),
            c["deleted"].as_u64().expect("deleted"),
        )
    }

    /// The operation log.
    pub async fn log(&self) -> Vec<Value> {
        self.get("/log").await["value"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The last operation's sequence number (0 when none).
    pub async fn last_seq(&self) -> u64 {
        self.log()
            .await
            .iter()
            .filter_map(|o| o["seq"].as_u64())
            .max()
            .unwrap_or(0)
    }

    /// Writes to the directory after operation `seq`.
    pub async fn writes_after(&self, seq: u64) -> Vec<Write> {
        let mut writes: Vec<Write> = self
            .log()
            .await
            .iter()
            .filter(|o| o["seq"].as_u64().is_some_and(|s| s > seq))
            .filter_map(|o| {
                let method = o["method"].as_str()?.to_string();
                let path = o["path"].as_str()?.to_string();
                let graph = path.starts_with("/v1.0/") || path.starts_with("/beta/");
                let envelope = path.ends_with("/$batch") || path.ends_with("/%24batch");
                let read = method == "GET" || path.contains("getByIds");
                (graph && !envelope && !read).then(|| Write {
                    seq: o["seq"].as_u64().unwrap_or(0),
                    method,
                    path,
                    status: o["status"].as_u64().unwrap_or(0),
                })
            })
            .collect();
        writes.sort_by_key(|w| w.seq);
        writes
    }
}

impl Drop for EmulatorProcess {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        for _ in 0..200 {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// One test's sync job: its directory, its emulator, its configuration file.
pub struct Job {
    pub dir: TempDir,
    pub emulator: EmulatorProcess,
    pub config: PathBuf,
    config_arg: String,
}

impl Job {
    /// `source` is the body of the `[source]` table; `settings` holds the `[sync]` and
    /// `[guard]` tables (or nothing, for the defaults).
    pub async fn start(test: &str, source: &dyn Fn(&TempDir) -> String, settings: &str) -> Job {
        Self::start_with(test, source, settings, 1000.0).await
    }

    pub async fn start_with(
        test: &str,
        source: &dyn Fn(&TempDir) -> String,
        settings: &str,
        writes_per_second: f64,
    ) -> Job {
        let dir = TempDir::new(test);
        let emulator = EmulatorProcess::start(&dir).await;
        let config = dir.path.join("partnersync.toml");
        let job = Job {
            config_arg: config.display().to_string(),
            config,
            emulator,
            dir,
        };
        job.configure_with(&source(&job.dir), settings, writes_per_second);
        job
    }

    /// (Re)writes the configuration file.
    pub fn configure(&self, source: &str, settings: &str) {
        self.configure_with(source, settings, 1000.0);
    }

    fn configure_with(&self, source: &str, settings: &str, writes_per_second: f64) {
        let text = format!(
            "{RULES}\n[source]\n{source}\n{target}\n[state]\npath = \"state.db\"\n\n{settings}\n",
            target = self.emulator.target_toml(&self.dir, writes_per_second),
        );
        std::fs::write(&self.config, text).expect("write the configuration");
    }

    /// `partnersync COMMAND --config FILE --json EXTRA...`
    pub async fn run(&self, command: &str, extra: &[&str]) -> Outcome {
        let mut args = vec![command, "--config", &self.config_arg, "--json"];
        args.extend_from_slice(extra);
        partnersync(&args).await
    }

    pub async fn sync(&self, extra: &[&str]) -> Outcome {
        self.run("sync", extra).await
    }

    /// A path in the job's directory, as an argument.
    pub fn file(&self, name: &str) -> String {
        self.dir.path.join(name).display().to_string()
    }
}

/// The set of `attribute` names in an update action's changes.
pub fn changed_attributes(action: &Value) -> BTreeSet<String> {
    action["changes"]
        .as_array()
        .map(|c| {
            c.iter()
                .filter_map(|ch| ch["attribute"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// One change of an update action: (old, new).
#[track_caller]
pub fn change(action: &Value, attribute: &str) -> (Value, Value) {
    let ch = action["changes"]
        .as_array()
        .and_then(|c| c.iter().find(|ch| ch["attribute"] == attribute))
        .unwrap_or_else(|| panic!("no change of {attribute} in {action}"));
    (ch["old"].clone(), ch["new"].clone())
}

/// Checks that a run wrote nothing (the emulator's log shows no write after `seq`).
#[track_caller]
pub fn assert_no_writes(writes: &[Write], what: &str) {
    assert!(
        writes.is_empty(),
        "{what}: expected no writes, the emulator saw {writes:#?}"
    );
}

pub fn dir_of(path: &Path) -> String {
    path.display().to_string()
}
