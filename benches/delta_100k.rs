//! Benchmark binary (not a timed test) for `scripts/bench-engine.sh`: a delta cycle over a
//! 100,000-user slapd directory with 100 changes (issue 6: "reads about 100 entries,
//! finishes in < 2 s, 100 writes"), through the real parts: `LdapSource` (syncrepl
//! refreshOnly), the engine's `run_cycle` with a SQLite state file, and `GraphTarget` into
//! the in-process Graph emulator.
//!
//! ```text
//! cargo bench --bench delta_100k -- ENV_FILE WORK_DIR
//! ```
//!
//! `ENV_FILE` is the env file of a slapd started by `scripts/ldap/slapd.sh` (its bind
//! passwords are throwaway test values; none goes on argv). The cycles:
//!
//! 1. `setup`: the first, full cycle creates every user in the emulator (throttling off,
//!    the client's write rate unlimited, `$batch` of 20);
//! 2. `settle`: a delta cycle; the target's change feed returns the users cycle 1 created,
//!    all as the state recorded them: echoes of partnersync's own writes, recognised as
//!    such (`settle_target_echoes`) and not planned again, so it writes nothing;
//! 3. `nochange`: a delta cycle with nothing changed anywhere;
//! 4. `delta`: after `ldapmodify` moves 100 Member users to the partner domain (UPN suffix
//!    `@partners.contoso.com`, `extensionAttribute1` removed), the measured delta cycle:
//!    100 Member → Guest updates, the client's write rate unlimited;
//! 5. `after`: a delta cycle right after (the change feed returns cycle 4's own writes);
//! 6. `delta_at_quota`: the 100 users moved back (Guest → Member) and a delta cycle with
//!    the client at Graph's write quota, 20 writes/s (`TransportConfig::default`).
//!
//! For each cycle it prints `key value` lines: wall time, mode, the entries and deletions
//! the LDAP source passed on (counted between `LdapSource` and the engine), target changes
//! seen, writes attempted (and how many of them retry an earlier failure) and failed,
//! userType changes, and the writes the emulator answered (its operation log: `$batch`
//! items and single requests that create, change or delete users).
//!
//! slapd's `entryUUID`s are time-based (version 1) UUIDs, so a few of their base64 forms
//! differ only in letter case; `onPremisesImmutableId` is unique regardless of case, so
//! those creates fail with a conflict (`*_immutable_id_conflicts`) and every later cycle
//! retries them (`*_writes_retried`).
//!
//! The allocator is mimalloc, as in the `partnersync` binary.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use partnersync_core::{Anchor, Entry};

use partnersync_engine::{run_cycle, CycleOptions, PlanOptions, SqliteStateStore, StateStore};
use partnersync_graph::{
    DomainKind, EndpointOverride, GraphConfig, GraphTarget, SecretSource, TransportConfig,
    VerifiedDomain,
};
use partnersync_graph_emulator::{Emulator, EmulatorConfig, EmulatorHandle};
use partnersync_ldap::{DeltaChoice, LdapConfig, LdapSource};
use partnersync_rules::RuleSet;
use partnersync_source::{
    Cookie, DeltaRead, EntrySink, ReadSummary, SinkError, SourceDescription, SourceDirectory,
    SourceError,
};

type BenchResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const RULES: &str = include_str!("../examples/partnersync.toml");
const BASE: &str = "ou=People,dc=contoso,dc=com";
/// Users moved to the partner domain.
const CHANGES: usize = 100;

fn main() -> ExitCode {
    // `cargo bench` passes `--bench`; the rest are ours.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let (Some(env_file), Some(work)) = (args.first(), args.get(1)) else {
        eprintln!("usage: delta_100k ENV_FILE WORK_DIR");
        return ExitCode::from(2);
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("delta_100k: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(bench(Path::new(env_file), Path::new(work))) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("delta_100k: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The slapd the script started, as its env file describes it.
struct Slapd {
    vars: HashMap<String, String>,
}

impl Slapd {
    fn load(path: &Path) -> BenchResult<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let vars = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.trim_matches('\'').to_string()))
            .collect();
        Ok(Slapd { vars })
    }

    fn get(&self, key: &str) -> BenchResult<&str> {
        self.vars
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| format!("{key} missing from the env file").into())
    }

    fn users(&self) -> BenchResult<usize> {
        Ok(self.get("LDAP_USERS")?.parse()?)
    }

    /// Applies `ldif` as the directory's administrator.
    fn modify(&self, work: &Path, ldif: &str) -> BenchResult<()> {
        let file = work.join("changes.ldif");
        std::fs::write(&file, ldif)?;
        let pw = work.join("admin.pw");
        write_private(&pw, self.get("LDAP_ADMIN_PW")?)?;
        let out = Command::new("ldapmodify")
            .args([
                "-x",
                "-H",
                self.get("LDAP_URL")?,
                "-D",
                self.get("LDAP_ADMIN_DN")?,
            ])
            .arg("-y")
            .arg(&pw)
            .arg("-f")
            .arg(&file)
            .output()?;
        if !out.status.success() {
            return Err(format!(
                "ldapmodify failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )
            .into());
        }
        Ok(())
    }
}

fn write_private(path: &Path, text: &str) -> BenchResult<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

/// The users moved to the partner domain: distinct odd numbers (`extensionAttribute1 =
/// Member` in `slapd.sh`'s directory), spread over it.
fn moved(users: usize) -> Vec<usize> {
    let half = users / 2;
    (1..=CHANGES).map(|k| 2 * ((k * 4999) % half) + 1).collect()
}

/// Member → Guest: the UPN moves to the partner domain and the explicit marker goes, so the
/// UPN rule decides.
fn to_partner_domain(users: &[usize]) -> String {
    users
        .iter()
        .map(|i| {
            format!(
                "dn: uid=user{i:06},{BASE}\nchangetype: modify\nreplace: userPrincipalName\nuserPrincipalName: user{i:06}@partners.contoso.com\n-\ndelete: extensionAttribute1\n-\n\n"
            )
        })
        .collect()
}

/// Guest → Member: back as `slapd.sh` created them.
fn back_to_members(users: &[usize]) -> String {
    users
        .iter()
        .map(|i| {
            format!(
                "dn: uid=user{i:06},{BASE}\nchangetype: modify\nreplace: userPrincipalName\nuserPrincipalName: user{i:06}@contoso.com\n-\nadd: extensionAttribute1\nextensionAttribute1: Member\n-\n\n"
            )
        })
        .collect()
}

fn graph_target(
    emu: &EmulatorHandle,
    work: &Path,
    transport: TransportConfig,
) -> BenchResult<GraphTarget> {
    let secret = work.join("client-secret");
    write_private(&secret, &emu.client_secret())?;
    let mut config = GraphConfig::new(emu.tenant_id(), emu.client_id(), SecretSource::File(secret));
    config.endpoint = Some(EndpointOverride {
        graph_url: emu.graph_url(),
        token_url: emu.token_url(),
    });
    config.verified_domains = vec![
        VerifiedDomain {
            name: "contoso.com".into(),
            kind: DomainKind::Managed,
        },
        VerifiedDomain {
            name: "partners.contoso.com".into(),
            kind: DomainKind::Federated,
        },
    ];
    config.batch_size = 20;
    config.transport = transport;
    Ok(GraphTarget::new(config)?)
}

/// The client without a write-rate limit (the emulator does not throttle either).
fn unlimited() -> TransportConfig {
    TransportConfig {
        writes_per_second: 1.0e6,
        max_concurrency: 8,
        ..TransportConfig::default()
    }
}

/// Writes the emulator answered since its log was last cleared: batch items and single
/// requests that create, change or delete a user.
fn emulator_writes(emu: &EmulatorHandle) -> usize {
    emu.admin()
        .operations()
        .iter()
        .filter(|o| {
            matches!(o.method.as_str(), "POST" | "PATCH" | "DELETE")
                && !o.path.ends_with("/$batch")
                && o.path.contains("/users")
                && (200..300).contains(&o.status)
        })
        .count()
}

/// The LDAP source, counting what it passes to the engine.
struct CountingSource {
    inner: LdapSource,
    entries: AtomicUsize,
    deleted: AtomicUsize,
}

struct CountingSink<'a> {
    inner: &'a mut dyn EntrySink,
    entries: usize,
    deleted: usize,
}

impl EntrySink for CountingSink<'_> {
    fn entry(&mut self, e: Entry) -> Result<(), SinkError> {
        self.entries += 1;
        self.inner.entry(e)
    }

    fn deleted(&mut self, a: Anchor) -> Result<(), SinkError> {
        self.deleted += 1;
        self.inner.deleted(a)
    }
}

impl CountingSource {
    fn record(&self, sink: &CountingSink<'_>) {
        self.entries.fetch_add(sink.entries, Ordering::Relaxed);
        self.deleted.fetch_add(sink.deleted, Ordering::Relaxed);
    }

    /// Entries and deletions passed on since the last call.
    fn take(&self) -> (usize, usize) {
        (
            self.entries.swap(0, Ordering::Relaxed),
            self.deleted.swap(0, Ordering::Relaxed),
        )
    }
}

#[async_trait::async_trait]
impl SourceDirectory for CountingSource {
    async fn describe(&self) -> Result<SourceDescription, SourceError> {
        self.inner.describe().await
    }

    async fn full_read(&self, sink: &mut dyn EntrySink) -> Result<ReadSummary, SourceError> {
        let mut counting = CountingSink {
            inner: sink,
            entries: 0,
            deleted: 0,
        };
        let r = self.inner.full_read(&mut counting).await;
        self.record(&counting);
        r
    }

    async fn delta_read(
        &self,
        cookie: &Cookie,
        sink: &mut dyn EntrySink,
    ) -> Result<DeltaRead, SourceError> {
        let mut counting = CountingSink {
            inner: sink,
            entries: 0,
            deleted: 0,
        };
        let r = self.inner.delta_read(cookie, &mut counting).await;
        self.record(&counting);
        r
    }
}

struct Cycle<'a> {
    emu: &'a EmulatorHandle,
    source: &'a CountingSource,
    rules: &'a RuleSet,
    state: &'a mut SqliteStateStore,
    options: &'a CycleOptions,
}

impl Cycle<'_> {
    async fn run(&mut self, name: &str, target: &GraphTarget) -> BenchResult<()> {
        self.emu.admin().clear_operations();
        self.source.take();
        // Objects whose last write failed: the cycle retries them.
        let retry: HashSet<String> = self
            .state
            .pending()?
            .into_iter()
            .map(|p| p.anchor)
            .collect();
        let started = Instant::now();
        let report = run_cycle(self.source, target, self.rules, self.state, self.options).await?;
        let secs = started.elapsed().as_secs_f64();
        let (ldap_entries, ldap_deleted) = self.source.take();
        let counts = report.plan.counts();
        println!("{name}_s {secs:.3}");
        println!("{name}_mode {}", report.mode);
        println!("{name}_source_entries {}", report.source_entries);
        println!("{name}_ldap_entries {ldap_entries}");
        println!("{name}_ldap_deleted {ldap_deleted}");
        println!("{name}_target_changes {}", report.target_changes);
        println!("{name}_target_echoes {}", report.target_echoes);
        println!("{name}_writes {}", report.attempted);
        let retried = report
            .plan
            .actions
            .iter()
            .filter(|a| retry.contains(a.anchor()))
            .count();
        println!("{name}_writes_retried {retried}");
        println!("{name}_failures {}", report.failures.len());
        let conflicts = report
            .failures
            .iter()
            .filter(|(_, e)| e.to_string().contains("onPremisesImmutableId"))
            .count();
        println!("{name}_immutable_id_conflicts {conflicts}");
        println!("{name}_user_type_changes {}", counts.user_type_changes);
        println!("{name}_creates {}", counts.creates);
        println!("{name}_updates {}", counts.updates);
        println!("{name}_emulator_writes {}", emulator_writes(self.emu));
        if let Some((anchor, e)) = report.failures.first() {
            println!("{name}_first_failure {anchor}: {e}");
        }
        Ok(())
    }
}

async fn bench(env_file: &Path, work: &Path) -> BenchResult<()> {
    std::fs::create_dir_all(work)?;
    for name in ["state.db", "state.db-wal", "state.db-shm"] {
        let _ = std::fs::remove_file(work.join(name));
    }
    let slapd = Slapd::load(env_file)?;
    let users = slapd.users()?;
    println!("directory_users {users}");
    let rules = RuleSet::from_toml_str(RULES)?;

    std::env::set_var("PARTNERSYNC_BENCH_LDAP_PW", slapd.get("LDAP_BIND_PW")?);
    let mut ldap = LdapConfig::new(slapd.get("LDAP_URL")?);
    ldap.base_dns = vec![BASE.to_string()];
    ldap.filter = "(objectClass=inetOrgPerson)".into();
    ldap.bind_dn = Some(slapd.get("LDAP_BIND_DN")?.to_string());
    ldap.password_env = Some("PARTNERSYNC_BENCH_LDAP_PW".into());
    ldap.starttls = false;
    ldap.allow_plaintext_bind = true;
    ldap.page_size = 1000;
    ldap.attributes = rules.source_attributes();
    ldap.delta = DeltaChoice::SyncRepl;
    let source = CountingSource {
        inner: LdapSource::new(ldap)?,
        entries: AtomicUsize::new(0),
        deleted: AtomicUsize::new(0),
    };

    let mut emulator = EmulatorConfig::default();
    emulator.settings.throttling.enabled = false;
    emulator.settings.max_log_entries = 1_000_000;
    let emu = Emulator::start(emulator).await?;
    let fast = graph_target(&emu, work, unlimited())?;

    let mut state = SqliteStateStore::open(&work.join("state.db"))?;
    let options = CycleOptions {
        plan: PlanOptions {
            verified_domains: vec!["contoso.com".into(), "partners.contoso.com".into()],
            ..PlanOptions::default()
        },
        batch_size: 20,
        config_digest: "delta_100k".into(),
        ..CycleOptions::default()
    };
    let mut cycle = Cycle {
        emu: &emu,
        source: &source,
        rules: &rules,
        state: &mut state,
        options: &options,
    };
    cycle.run("setup", &fast).await?;
    println!("emulator_users {}", emu.admin().count().active);
    cycle.run("settle", &fast).await?;
    cycle.run("nochange", &fast).await?;

    let moved = moved(users);
    slapd.modify(work, &to_partner_domain(&moved))?;
    println!("ldap_modified {}", moved.len());
    cycle.run("delta", &fast).await?;
    cycle.run("after", &fast).await?;

    slapd.modify(work, &back_to_members(&moved))?;
    let at_quota = graph_target(&emu, work, TransportConfig::default())?;
    // The token and connections first, as the fast target had them.
    partnersync_target::TargetDirectory::delta_cookie(&at_quota).await?;
    cycle.run("delta_at_quota", &at_quota).await?;

    emu.shutdown().await?;
    for name in ["client-secret", "admin.pw", "changes.ldif"] {
        let _ = std::fs::remove_file(work.join(name));
    }
    Ok(())
}
