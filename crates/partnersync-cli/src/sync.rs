//! The administrator's commands: `init`, `check`, `plan`, `apply`, `sync`, `run`,
//! `preview` and `status`. Each loads the configuration file, connects what it needs and
//! calls the engine; the output is written for a person (or, with `--json`, for scripts).

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::{Args, Subcommand};
use partnersync_core::Anchor;
use partnersync_engine::{
    apply_saved_plan, prepare_cycle, Action, CycleError, CycleHooks, CycleReport, Managed,
    PlanInput, Progress, SqliteStateStore, StateStore, SyncPlan,
};
use partnersync_graph::{EndpointOverride, GraphConfig, GraphTarget, SecretSource};
use partnersync_graph_emulator::{Emulator, EmulatorConfig, EmulatorHandle};
use partnersync_source::EntryCollector;
use partnersync_target::TargetDirectory;
use serde_json::json;

use crate::config::{self, Loaded, TargetSpec};

/// Exit codes shared by the sync commands (documented in `--help` and the README).
pub(crate) mod exit {
    /// Done.
    pub const OK: u8 = 0;
    /// Could not run (source, target or state unreachable or failing).
    pub const FAILED: u8 = 1;
    /// Bad configuration or usage.
    pub const CONFIG: u8 = 2;
    /// Ran, but some object failed or is in error (see the output; retried next cycle).
    pub const OBJECT_ERRORS: u8 = 3;
    /// The deletion guard stopped the run: nothing was written.
    pub const GUARD: u8 = 4;
    /// `apply PLAN`: the plan is stale: nothing was written.
    pub const STALE: u8 = 5;
    /// Interrupted (SIGINT/SIGTERM) after finishing the batch in flight.
    pub const INTERRUPTED: u8 = 130;
}

/// Options every sync command takes.
#[derive(Args, Clone)]
pub struct Common {
    /// The configuration file.
    #[arg(long, short = 'c', default_value = "partnersync.toml")]
    config: PathBuf,
    /// Machine-readable output (one JSON document on stdout).
    #[arg(long)]
    json: bool,
}

#[derive(Args, Clone)]
pub struct RunOptions {
    /// Compute and record the plan, write nothing.
    #[arg(long)]
    staging: bool,
    /// Let this run disable or delete up to N users despite the deletion guard.
    #[arg(long, value_name = "N")]
    allow_deletes: Option<usize>,
    /// Read everything (source and target) instead of only what changed.
    #[arg(long)]
    full: bool,
}

/// The sync commands.
#[derive(Subcommand)]
pub enum SyncCommand {
    /// Write a commented partnersync.toml and the sample directory (data/partners.ldif) to
    /// start from.
    Init {
        /// Where to write them.
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Overwrite existing files.
        #[arg(long)]
        force: bool,
    },
    /// Check everything at once: configuration, rule tests, state file, source, target.
    ///
    /// Exit codes: 0 all good; 1 something needs fixing (listed); 2 bad configuration.
    Check(Common),
    /// Show what a sync would change, write nothing. `--out plan.json` saves it for
    /// `partnersync apply plan.json`.
    ///
    /// Exit codes: 0 done (with --detailed-exitcode: 0 no changes, 2 changes, 1 error);
    /// 1 could not run; 2 bad configuration; 4 the deletion guard would stop it.
    Plan {
        #[command(flatten)]
        common: Common,
        /// Save the plan (JSON) to this file.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Exit 2 when the plan has changes, 0 when it has none (errors exit 1).
        #[arg(long)]
        detailed_exitcode: bool,
        /// Read everything instead of only what changed.
        #[arg(long)]
        full: bool,
    },
    /// Apply a saved plan exactly (refused if stale), or without one plan and apply.
    ///
    /// Exit codes: 0 applied; 1 could not run; 2 bad configuration; 3 some writes failed;
    /// 4 deletion guard; 5 the plan is stale (nothing written); 130 interrupted.
    Apply {
        #[command(flatten)]
        common: Common,
        /// The plan file from `partnersync plan --out`.
        plan: Option<PathBuf>,
        /// Let this run disable or delete up to N users despite the deletion guard.
        #[arg(long, value_name = "N")]
        allow_deletes: Option<usize>,
    },
    /// Plan and apply in one go, with the guards.
    ///
    /// Exit codes: 0 done; 1 could not run; 2 bad configuration; 3 some object failed or
    /// is in error; 4 the deletion guard stopped the run (nothing written); 130 interrupted.
    Sync {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        run: RunOptions,
    },
    /// Sync on a schedule until stopped (SIGINT/SIGTERM finish the batch in flight).
    Run {
        #[command(flatten)]
        common: Common,
        /// Time between cycles (e.g. 30m, 1h); a random ±10% jitter is added.
        #[arg(long, default_value = "30m")]
        every: String,
        /// Serve /healthz and Prometheus /metrics on this address (e.g. 127.0.0.1:9464).
        #[arg(long, value_name = "ADDR")]
        listen: Option<std::net::SocketAddr>,
        /// Stop after this many cycles (default: run until stopped).
        #[arg(long, value_name = "N")]
        cycles: Option<u64>,
    },
    /// Follow one object from its source attributes through each rule to the planned
    /// Graph call.
    Preview {
        #[command(flatten)]
        common: Common,
        /// The object: its anchor (ImmutableId or GUID) or its DN.
        object: String,
    },
    /// Show the last runs, counts, objects waiting for a retry, cookies and the next run.
    Status {
        #[command(flatten)]
        common: Common,
        /// How many runs to show.
        #[arg(long, default_value_t = 10)]
        runs: usize,
    },
}

pub fn run(cmd: SyncCommand) -> ExitCode {
    if let SyncCommand::Init { dir, force } = &cmd {
        return ExitCode::from(init(dir, *force));
    }
    let runtime = match crate::runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    ExitCode::from(runtime.block_on(dispatch(cmd)))
}

async fn dispatch(cmd: SyncCommand) -> u8 {
    match cmd {
        SyncCommand::Init { .. } => exit::CONFIG,
        SyncCommand::Check(c) => check(&c).await,
        SyncCommand::Plan {
            common,
            out,
            detailed_exitcode,
            full,
        } => plan(&common, out.as_deref(), detailed_exitcode, full).await,
        SyncCommand::Apply {
            common,
            plan,
            allow_deletes,
        } => match plan {
            Some(p) => apply(&common, &p, allow_deletes).await,
            None => {
                sync(
                    &common,
                    &RunOptions {
                        staging: false,
                        allow_deletes,
                        full: false,
                    },
                )
                .await
            }
        },
        SyncCommand::Sync { common, run } => sync(&common, &run).await,
        SyncCommand::Run {
            common,
            every,
            listen,
            cycles,
        } => scheduled(&common, &every, listen, cycles).await,
        SyncCommand::Preview { common, object } => preview(&common, &object).await,
        SyncCommand::Status { common, runs } => status(&common, runs),
    }
}

fn config_error(msg: impl std::fmt::Display) -> u8 {
    eprintln!("error: {msg}");
    exit::CONFIG
}

fn failed(msg: impl std::fmt::Display) -> u8 {
    eprintln!("error: {msg}");
    exit::FAILED
}

/// The target and, for the emulator, the running emulator to stop afterwards.
pub(crate) struct Connected {
    pub(crate) target: GraphTarget,
    pub(crate) emulator: Option<EmulatorHandle>,
}

impl Connected {
    /// Stops the emulator, if any, saving its directory.
    /// [`close`](Self::close), reporting a failure on stderr: the command's work is done
    /// by then, so it does not change the outcome.
    async fn close_or_report(self) {
        if let Err(e) = self.close().await {
            eprintln!("error: {e}");
        }
    }

    pub(crate) async fn close(self) -> Result<(), String> {
        if let Some(e) = self.emulator {
            e.shutdown()
                .await
                .map_err(|e| format!("stopping the Graph emulator: {e}"))?;
        }
        Ok(())
    }
}

/// Writes a secret where only this user can read it.
pub(crate) fn write_private(path: &Path, secret: &str) -> Result<(), String> {
    use std::io::Write as _;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut f = options
        .open(path)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    f.write_all(secret.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

async fn connect(loaded: &Loaded) -> Result<Connected, String> {
    match &loaded.target {
        TargetSpec::Graph(g) => Ok(Connected {
            target: GraphTarget::new((**g).clone())
                .map_err(|e| format!("cannot set up the Graph target: {e}"))?,
            emulator: None,
        }),
        TargetSpec::Emulator {
            state_file,
            domains,
            creation,
            anchor_attribute,
        } => {
            start_emulator_target(
                state_file,
                domains.clone(),
                *creation,
                anchor_attribute.clone(),
            )
            .await
        }
    }
}

/// Starts the local Graph emulator in-process, its directory kept in `state_file`, and a
/// [`GraphTarget`] talking to it with the emulator's app (the secret goes through a private
/// file beside the directory, as a real one would).
pub(crate) async fn start_emulator_target(
    state_file: &Path,
    domains: Vec<partnersync_graph::VerifiedDomain>,
    creation: partnersync_graph::CreationMode,
    anchor_attribute: partnersync_graph::AnchorAttribute,
) -> Result<Connected, String> {
    let dir = state_file
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    // The same port every run when it is free: change-feed links the emulator handed out
    // name its address, and partnersync only follows links to the host it talks to.
    let port_file = dir.join("emulator-port");
    let port: u16 = std::fs::read_to_string(&port_file)
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0);
    let start = |port: u16| {
        Emulator::start(EmulatorConfig {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
            state_file: Some(state_file.to_path_buf()),
            ..EmulatorConfig::default()
        })
    };
    let first = start(port).await;
    let emulator = match first {
        Err(_) if port != 0 => start(0).await,
        other => other,
    }
    .map_err(|e| format!("cannot start the Graph emulator: {e}"))?;
    if let Some(p) = url_port(&emulator.graph_url()) {
        let _ = std::fs::write(&port_file, p.to_string());
    }
    let secret_file = dir.join("emulator-client-secret");
    write_private(&secret_file, &emulator.client_secret())?;
    let mut graph = GraphConfig::new(
        emulator.tenant_id(),
        emulator.client_id(),
        SecretSource::File(secret_file),
    );
    graph.endpoint = Some(EndpointOverride {
        graph_url: emulator.graph_url(),
        token_url: emulator.token_url(),
    });
    graph.verified_domains = domains;
    graph.creation_mode = creation;
    graph.anchor_attribute = anchor_attribute;
    let target =
        GraphTarget::new(graph).map_err(|e| format!("cannot set up the Graph target: {e}"))?;
    Ok(Connected {
        target,
        emulator: Some(emulator),
    })
}

fn url_port(url: &str) -> Option<u16> {
    let rest = url.split("://").nth(1)?;
    let host = rest.split('/').next()?;
    host.rsplit(':').next()?.parse().ok()
}

fn open_state(loaded: &Loaded) -> Result<SqliteStateStore, String> {
    if let Some(dir) = loaded.state_path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    SqliteStateStore::open(&loaded.state_path).map_err(|e| e.to_string())
}

fn source_for(loaded: &Loaded) -> Result<crate::source::Source, u8> {
    crate::source::from_config_for(&loaded.path, loaded.rules.source_attributes())
        .map_err(|_| exit::CONFIG)
}

/// Everything a command that reads both sides needs.
struct Session {
    loaded: Loaded,
    source: crate::source::Source,
    connected: Connected,
    state: SqliteStateStore,
}

async fn session(common: &Common) -> Result<Session, u8> {
    let loaded = config::load(&common.config).map_err(config_error)?;
    let source = source_for(&loaded)?;
    let state = open_state(&loaded).map_err(failed)?;
    let connected = connect(&loaded).await.map_err(failed)?;
    Ok(Session {
        loaded,
        source,
        connected,
        state,
    })
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Prints a plan for a person: one line per write, attribute changes old → new,
/// userType changes called out, errors with what to do.
pub(crate) fn print_plan(plan: &SyncPlan) {
    let c = plan.counts();
    println!(
        "plan: {} create, {} adopt, {} update ({} userType change), {} restore, {} disable, {} delete, {} object(s) in error",
        c.creates, c.adoptions, c.updates, c.user_type_changes, c.restores, c.disables, c.deletes, c.errors
    );
    for action in &plan.actions {
        match action {
            Action::Create {
                dn,
                attributes,
                mode,
                ..
            } => {
                let first = |k: &str| {
                    attributes
                        .get(k)
                        .and_then(|v| v.first())
                        .map_or("-", String::as_str)
                };
                let how = match mode {
                    partnersync_target::CreationMode::Direct => "",
                    partnersync_target::CreationMode::Invitation => " (invitation)",
                };
                println!(
                    "  + create  {:<40} userType={:<6} {dn}{how}",
                    first("userPrincipalName"),
                    first("userType")
                );
            }
            Action::Adopt {
                dn,
                matched_on,
                id,
                changes,
                ..
            } => {
                println!("  = adopt   {dn}: cloud user {id} (soft match on {matched_on})");
                for ch in changes {
                    println!("      {}: {:?} -> {:?}", ch.attribute, ch.old, ch.new);
                }
            }
            Action::Update { dn, changes, .. } => {
                let mark = if action.changes_user_type() {
                    "  ~ update  (userType change!)"
                } else {
                    "  ~ update "
                };
                println!("{mark} {dn}");
                for ch in changes {
                    println!("      {}: {:?} -> {:?}", ch.attribute, ch.old, ch.new);
                }
            }
            Action::Restore { dn, .. } => println!("  ^ restore {dn}"),
            Action::Disable { anchor, .. } => {
                println!("  - disable {anchor} (no longer in the source)")
            }
            Action::Delete { anchor, .. } => {
                println!("  x delete  {anchor} (no longer in the source)")
            }
        }
    }
    for k in &plan.kept {
        println!("  . kept    {k}");
    }
    for e in &plan.errors {
        println!("  ! error   {}: {}", e.dn, e.message);
    }
}

/// Shows apply progress: a bar with ETA on a terminal, a log line every few seconds
/// otherwise.
fn progress_hooks(json: bool) -> CycleHooks {
    let hooks = CycleHooks::default();
    if json {
        return hooks;
    }
    if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::hidden();
        bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} writes  {msg}")
        {
            bar.set_style(style);
        }
        return CycleHooks {
            progress: Some(Arc::new(move |p: &Progress| {
                bar.set_length(p.total as u64);
                bar.set_position(p.done as u64);
                bar.set_message(format!(
                    "{} failed, {:.1}/s, ETA {}",
                    p.failed,
                    p.writes_per_second,
                    eta(p.eta)
                ));
                if p.done >= p.total {
                    bar.finish_and_clear();
                }
            })),
            ..hooks
        };
    }
    let last = Mutex::new(None::<Instant>);
    CycleHooks {
        progress: Some(Arc::new(move |p: &Progress| {
            let Ok(mut last) = last.lock() else { return };
            let due = last.is_none_or(|t| t.elapsed() >= Duration::from_secs(5));
            if due || p.done >= p.total {
                *last = Some(Instant::now());
                eprintln!(
                    "progress: {}/{} writes, {} failed, {:.1} writes/s, ETA {}",
                    p.done,
                    p.total,
                    p.failed,
                    p.writes_per_second,
                    eta(p.eta)
                );
            }
        })),
        ..hooks
    }
}

fn eta(d: Option<Duration>) -> String {
    match d {
        None => "-".into(),
        Some(d) => {
            let s = d.as_secs();
            if s >= 3600 {
                format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
            } else if s >= 60 {
                format!("{}m{:02}s", s / 60, s % 60)
            } else {
                format!("{s}s")
            }
        }
    }
}

/// SIGINT / SIGTERM set the cancel flag: the batch in flight finishes and is recorded.
fn install_signal_handlers(hooks: &CycleHooks, quiet: bool) {
    let cancel = hooks.cancel.clone();
    // Registered now, not in the task: a signal that arrives before the task first runs
    // must not kill the process with a batch unrecorded.
    #[cfg(unix)]
    let signals = {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(term), Ok(int)) => Some((term, int)),
            _ => None,
        }
    };
    tokio::spawn(async move {
        #[cfg(unix)]
        match signals {
            Some((mut term, mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            None => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        cancel.store(true, Ordering::SeqCst);
        if !quiet {
            eprintln!("stopping: finishing the batch in flight and recording state");
        }
    });
}

fn report_json(report: &CycleReport, staging: bool) -> serde_json::Value {
    json!({
        "outcome": if report.interrupted { "interrupted" } else if report.stopped.is_some() { "stopped" } else if staging { "staged" } else { "applied" },
        "mode": report.mode.to_string(),
        "source_entries": report.source_entries,
        "target_changes": report.target_changes,
        "target_echoes": report.target_echoes,
        "attempted": report.attempted,
        "failures": report.failures.iter().map(|(a, e)| json!({"anchor": a, "category": e.category, "code": e.code, "message": e.message})).collect::<Vec<_>>(),
        "recovered": report.recovered,
        "stopped": report.stopped,
        "run_id": report.run_id,
        "plan": report.plan,
    })
}

fn print_report(report: &CycleReport, staging: bool) {
    let echoes = if report.target_echoes > 0 {
        format!(
            ", {} of them only partnersync's own writes",
            report.target_echoes
        )
    } else {
        String::new()
    };
    println!(
        "read:    {} ({} source entr{}, {} target change(s){echoes})",
        report.mode,
        report.source_entries,
        if report.source_entries == 1 {
            "y"
        } else {
            "ies"
        },
        report.target_changes
    );
    if report.recovered > 0 {
        println!(
            "recovered: {} write(s) from an interrupted run were checked against the tenant by anchor",
            report.recovered
        );
    }
    print_plan(&report.plan);
    print_outcome(report, staging);
}

/// What the apply of a cycle did, after its plan (`sync`, `run`, `demo`): the writes and
/// their failures, or one plain line when there was nothing to write.
pub(crate) fn print_outcome(report: &CycleReport, staging: bool) {
    if staging {
        println!("\nstaging: nothing was written.");
    } else if report.attempted > 0 {
        let ok = report.attempted - report.failures.len();
        println!(
            "\napplied: {ok} of {} write(s) succeeded.",
            report.attempted
        );
        for (anchor, e) in &report.failures {
            println!("  FAILED {anchor}: {e} (retried next cycle)");
        }
    }
    if let Some(s) = &report.stopped {
        println!("STOPPED by the error policy: {s}");
    }
    if report.interrupted {
        println!(
            "INTERRUPTED: the batch in flight finished and was recorded; the next run carries on."
        );
    }
    if report.plan.is_empty() && report.plan.errors.is_empty() {
        println!("\nnothing to write: the tenant already matches the directory.");
    }
}

/// Prints what an applying command (`sync`, `apply`) did, as JSON or text, and gives its
/// exit code.
fn applied(result: Result<CycleReport, CycleError>, json: bool, staging: bool) -> u8 {
    match result {
        Ok(report) => {
            if json {
                println!("{}", report_json(&report, staging));
            } else {
                print_report(&report, staging);
            }
            outcome_code(&report)
        }
        Err(e) => cycle_error(e, json),
    }
}

fn outcome_code(report: &CycleReport) -> u8 {
    if report.interrupted {
        exit::INTERRUPTED
    } else if report.failures.is_empty()
        && report.plan.errors.is_empty()
        && report.stopped.is_none()
    {
        exit::OK
    } else {
        exit::OBJECT_ERRORS
    }
}

fn cycle_error(e: CycleError, json: bool) -> u8 {
    let code = match &e {
        CycleError::Guard(_) => exit::GUARD,
        CycleError::StalePlan(_) => exit::STALE,
        _ => exit::FAILED,
    };
    if json {
        let mut v = json!({"outcome": "error", "error": e.to_string()});
        if let CycleError::Guard(t) = &e {
            v["would_remove"] = json!(t.would_remove);
        }
        println!("{v}");
    } else if let CycleError::Guard(t) = &e {
        println!("STOPPED by the deletion guard: {t}");
        println!(
            "Review the list; rerun with --allow-deletes {} to accept it for one run, or raise [guard] max_deletes / max_delete_percent.",
            t.would_remove.len()
        );
    } else {
        eprintln!("error: {e}");
    }
    code
}

async fn sync(common: &Common, run: &RunOptions) -> u8 {
    let mut s = match session(common).await {
        Ok(s) => s,
        Err(code) => return code,
    };
    let mut options = s.loaded.options.clone();
    options.staging |= run.staging;
    options.allow_deletes = run.allow_deletes;
    options.force_full = run.full;
    let hooks = progress_hooks(common.json);
    install_signal_handlers(&hooks, common.json);
    let result = partnersync_engine::run_cycle_with(
        s.source.as_dyn(),
        &s.connected.target,
        &s.loaded.rules,
        &mut s.state,
        &options,
        &hooks,
    )
    .await;
    s.connected.close_or_report().await;
    applied(result, common.json, options.staging)
}

async fn plan(common: &Common, out: Option<&Path>, detailed: bool, full: bool) -> u8 {
    let fail = |code: u8| if detailed { exit::FAILED } else { code };
    let mut s = match session(common).await {
        Ok(s) => s,
        Err(code) => return fail(code),
    };
    let mut options = s.loaded.options.clone();
    options.force_full = full;
    let prepared = prepare_cycle(
        s.source.as_dyn(),
        &s.connected.target,
        &s.loaded.rules,
        &mut s.state,
        &options,
    )
    .await;
    s.connected.close_or_report().await;
    let prepared = match prepared {
        Ok(p) => p,
        Err(e) => return fail(cycle_error(e, common.json)),
    };
    let guard_base = match prepared.guard_source_entries(&s.state) {
        Ok(n) => n,
        Err(e) => return fail(failed(e)),
    };
    let guard = options.guard.check(&prepared.plan, guard_base, None);
    if let Some(path) = out {
        let text = match serde_json::to_string_pretty(&prepared.plan) {
            Ok(t) => t,
            Err(e) => return failed(format!("cannot encode the plan: {e}")),
        };
        if let Err(e) = std::fs::write(path, text + "\n") {
            return fail(failed(format!("cannot write {}: {e}", path.display())));
        }
    }
    if common.json {
        println!(
            "{}",
            json!({"mode": prepared.mode.to_string(), "source_entries": prepared.source_entries,
                   "guard": guard.as_ref().err().map(ToString::to_string), "plan": prepared.plan})
        );
    } else {
        println!("read:    {}", prepared.mode);
        print_plan(&prepared.plan);
        if let Err(t) = &guard {
            println!("\nWARNING: the deletion guard would stop this plan: {t}");
        }
        match out {
            Some(p) => println!(
                "\nsaved to {}; apply exactly this with: partnersync apply --config {} {}",
                p.display(),
                common.config.display(),
                p.display()
            ),
            None => println!("\nnothing was written (plan only)."),
        }
    }
    if guard.is_err() && !detailed {
        return exit::GUARD;
    }
    if detailed {
        if prepared.plan.is_empty() {
            exit::OK
        } else {
            2
        }
    } else {
        exit::OK
    }
}

async fn apply(common: &Common, plan_file: &Path, allow_deletes: Option<usize>) -> u8 {
    let text = match std::fs::read_to_string(plan_file) {
        Ok(t) => t,
        Err(e) => return config_error(format!("cannot read {}: {e}", plan_file.display())),
    };
    let saved: SyncPlan = match serde_json::from_str(&text) {
        Ok(p) => p,
        Err(e) => {
            return config_error(format!(
                "{}: not a partnersync plan (line {}, column {}: {e}); write one with `partnersync plan --out FILE`",
                plan_file.display(),
                e.line(),
                e.column()
            ))
        }
    };
    let mut s = match session(common).await {
        Ok(s) => s,
        Err(code) => return code,
    };
    let mut options = s.loaded.options.clone();
    options.allow_deletes = allow_deletes;
    let hooks = progress_hooks(common.json);
    install_signal_handlers(&hooks, common.json);
    let result = apply_saved_plan(
        &saved,
        s.source.as_dyn(),
        &s.connected.target,
        &s.loaded.rules,
        &mut s.state,
        &options,
        &hooks,
    )
    .await;
    s.connected.close_or_report().await;
    applied(result, common.json, false)
}

/// What `run --listen` serves.
#[derive(Default)]
struct Metrics {
    cycles: std::collections::BTreeMap<String, u64>,
    writes: u64,
    write_failures: u64,
    last_outcome: Option<String>,
    last_finished: i64,
    last_duration: f64,
    last_error: Option<String>,
    pending: usize,
    next_run: i64,
}

/// One metric in Prometheus' text format: its help and type lines, then its samples.
fn metric(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(String, String)]) {
    out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
    for (labels, value) in samples {
        out.push_str(&format!("{name}{labels} {value}\n"));
    }
}

fn render_metrics(m: &Metrics) -> String {
    let mut s = String::new();
    let one = |v: String| vec![(String::new(), v)];
    let by_outcome: Vec<(String, String)> = m
        .cycles
        .iter()
        .map(|(k, v)| (format!("{{outcome=\"{k}\"}}"), v.to_string()))
        .collect();
    metric(
        &mut s,
        "partnersync_cycles_total",
        "counter",
        "Sync cycles run, by outcome.",
        &by_outcome,
    );
    metric(
        &mut s,
        "partnersync_writes_total",
        "counter",
        "Writes attempted against the target.",
        &one(m.writes.to_string()),
    );
    metric(
        &mut s,
        "partnersync_write_failures_total",
        "counter",
        "Writes that failed.",
        &one(m.write_failures.to_string()),
    );
    metric(
        &mut s,
        "partnersync_last_cycle_timestamp_seconds",
        "gauge",
        "When the last cycle finished.",
        &one(m.last_finished.to_string()),
    );
    metric(
        &mut s,
        "partnersync_last_cycle_duration_seconds",
        "gauge",
        "How long the last cycle took.",
        &one(format!("{:.3}", m.last_duration)),
    );
    metric(
        &mut s,
        "partnersync_pending_objects",
        "gauge",
        "Objects waiting for a retry.",
        &one(m.pending.to_string()),
    );
    metric(
        &mut s,
        "partnersync_next_run_timestamp_seconds",
        "gauge",
        "When the next cycle starts.",
        &one(m.next_run.to_string()),
    );
    s
}

async fn serve(addr: std::net::SocketAddr, metrics: Arc<Mutex<Metrics>>) -> Result<(), String> {
    use axum::http::StatusCode;
    use axum::routing::get;
    let m1 = metrics.clone();
    let app = axum::Router::new()
        .route(
            "/healthz",
            get(move || {
                let m = m1.clone();
                async move {
                    let Ok(m) = m.lock() else {
                        return (
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "state lock poisoned\n".to_string(),
                        );
                    };
                    match (&m.last_outcome, &m.last_error) {
                        (_, Some(e)) => (
                            StatusCode::SERVICE_UNAVAILABLE,
                            format!("last cycle failed: {e}\n"),
                        ),
                        (None, None) => {
                            (StatusCode::OK, "starting: no cycle finished yet\n".into())
                        }
                        (Some(o), None) => (StatusCode::OK, format!("ok: last cycle {o}\n")),
                    }
                }
            }),
        )
        .route(
            "/metrics",
            get(move || {
                let m = metrics.clone();
                async move { m.lock().map(|m| render_metrics(&m)).unwrap_or_default() }
            }),
        );
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    if let Ok(a) = listener.local_addr() {
        eprintln!("serving /healthz and /metrics on http://{a}");
    }
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(())
}

fn jitter(every: Duration) -> Duration {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    // ±10%, from the clock's sub-second noise: enough to keep several instances apart.
    let factor = 0.9 + 0.2 * (f64::from(nanos % 1_000_000) / 1_000_000.0);
    Duration::from_secs_f64(every.as_secs_f64() * factor)
}

async fn scheduled(
    common: &Common,
    every: &str,
    listen: Option<std::net::SocketAddr>,
    cycles: Option<u64>,
) -> u8 {
    let every = match config::parse_duration(every) {
        Ok(Some(d)) => d,
        Ok(None) => return config_error("--every never: use `partnersync sync` for one run"),
        Err(e) => return config_error(format!("--every: {e}")),
    };
    let loaded = match config::load(&common.config) {
        Ok(l) => l,
        Err(e) => return config_error(e),
    };
    drop(loaded);
    let metrics = Arc::new(Mutex::new(Metrics::default()));
    if let Some(addr) = listen {
        if let Err(e) = serve(addr, metrics.clone()).await {
            return failed(e);
        }
    }
    let hooks = progress_hooks(common.json);
    install_signal_handlers(&hooks, common.json);
    let mut n = 0u64;
    loop {
        n += 1;
        let started = Instant::now();
        let (outcome, error, writes, failures, pending, next) =
            one_scheduled_cycle(common, &hooks, every).await;
        if let Ok(mut m) = metrics.lock() {
            *m.cycles.entry(outcome.clone()).or_default() += 1;
            m.writes += writes as u64;
            m.write_failures += failures as u64;
            m.last_outcome = Some(outcome.clone());
            m.last_error = error.clone();
            m.last_finished = now();
            m.last_duration = started.elapsed().as_secs_f64();
            m.pending = pending;
            m.next_run = next;
        }
        let line = json!({"event": "cycle", "n": n, "outcome": outcome, "error": error, "writes": writes, "failures": failures, "next_run_at": next});
        eprintln!("{line}");
        if hooks.cancel.load(Ordering::SeqCst) || cycles.is_some_and(|c| n >= c) {
            return exit::OK;
        }
        let wait = Duration::from_secs((next - now()).max(0) as u64);
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            if hooks.cancel.load(Ordering::SeqCst) {
                return exit::OK;
            }
            tokio::time::sleep(Duration::from_millis(200).min(deadline - Instant::now())).await;
        }
    }
}

/// One cycle of `run`: (outcome, error, writes, failed writes, objects pending, next run).
/// The next run's time is recorded in the state for `status`.
async fn one_scheduled_cycle(
    common: &Common,
    hooks: &CycleHooks,
    every: Duration,
) -> (String, Option<String>, usize, usize, usize, i64) {
    let next = || now() + jitter(every).as_secs() as i64;
    let mut s = match session(common).await {
        Ok(s) => s,
        Err(code) => {
            return (
                "failed".into(),
                Some(format!("setup failed (exit {code})")),
                0,
                0,
                0,
                next(),
            )
        }
    };
    let result = partnersync_engine::run_cycle_with(
        s.source.as_dyn(),
        &s.connected.target,
        &s.loaded.rules,
        &mut s.state,
        &s.loaded.options,
        hooks,
    )
    .await;
    let pending = s.state.pending().map(|p| p.len()).unwrap_or(0);
    let next_run = next();
    let _ = s
        .state
        .set_setting("next_run_at", Some(next_run.to_string().as_bytes()));
    s.connected.close_or_report().await;
    let (outcome, error, writes, failures) = match result {
        Ok(r) => {
            if !common.json {
                print_report(&r, s.loaded.options.staging);
            }
            let outcome = if r.interrupted {
                "interrupted"
            } else if r.failures.is_empty() {
                "applied"
            } else {
                "applied-with-errors"
            };
            (outcome.to_string(), None, r.attempted, r.failures.len())
        }
        Err(CycleError::Guard(t)) => ("guard-tripped".into(), Some(t.to_string()), 0, 0),
        Err(e) => ("failed".into(), Some(e.to_string()), 0, 0),
    };
    (outcome, error, writes, failures, pending, next_run)
}

fn find_entry<'a>(
    entries: &'a [partnersync_core::Entry],
    key: &str,
) -> Option<&'a partnersync_core::Entry> {
    // A GUID-shaped key is both an entryUUID's ImmutableId and an objectGUID's GUID string
    // (whose bytes are another anchor), so both are tried.
    let anchors: Vec<Anchor> = [
        Anchor::from_immutable_id(key).ok(),
        Anchor::from_guid_str(key).ok(),
    ]
    .into_iter()
    .flatten()
    .collect();
    entries
        .iter()
        .find(|e| anchors.contains(&e.anchor) || e.dn.eq_ignore_ascii_case(key.trim()))
}

async fn preview(common: &Common, key: &str) -> u8 {
    let mut s = match session(common).await {
        Ok(s) => s,
        Err(code) => return code,
    };
    let code = preview_in(&mut s, common, key).await;
    s.connected.close_or_report().await;
    code
}

async fn preview_in(s: &mut Session, common: &Common, key: &str) -> u8 {
    let mut collector = EntryCollector::default();
    if let Err(e) = s.source.as_dyn().full_read(&mut collector).await {
        return failed(format!("reading the source: {e}"));
    }
    let Some(entry) = find_entry(&collector.entries, key) else {
        eprintln!(
            "error: no object in the source has the anchor or DN {key:?} ({} entries read); give an ImmutableId, a GUID or a DN as `source read` shows them",
            collector.entries.len()
        );
        return exit::OBJECT_ERRORS;
    };
    let row = match s.state.object(&entry.anchor) {
        Ok(r) => r,
        Err(e) => return failed(e),
    };
    let mode = if row.is_some() {
        partnersync_rules::EvaluationMode::Update
    } else {
        partnersync_rules::EvaluationMode::Create
    };
    let ev = s.loaded.rules.evaluate_with(entry, mode, true);
    let desired = partnersync_engine::DesiredObject::from_evaluation(entry, &ev);
    let user = match s.connected.target.find_by_anchor(&entry.anchor).await {
        Ok(u) => u,
        Err(e) => return failed(format!("looking the object up in the target: {e}")),
    };
    let mut managed = std::collections::HashMap::new();
    if let Some(r) = &row {
        managed.insert(
            r.anchor.clone(),
            Managed {
                disabled_at: r.disabled_at,
            },
        );
    }
    let users: Vec<_> = user.iter().cloned().collect();
    let the_plan = partnersync_engine::plan_with(
        &PlanInput {
            desired: std::slice::from_ref(&desired),
            target: &users,
            managed: &managed,
            soft_matches: &std::collections::HashMap::new(),
        },
        &s.loaded.options.plan,
    );
    let anchor_attribute = s.connected.target.anchor_attribute().name();
    let calls: Vec<serde_json::Value> = the_plan
        .actions
        .iter()
        .map(|a| graph_call(a, anchor_attribute))
        .collect();
    if common.json {
        println!(
            "{}",
            json!({"dn": entry.dn, "anchor": entry.anchor.to_immutable_id(), "evaluation": ev,
                   "target_user": user.as_ref().map(|u| json!({"id": u.id, "attributes": u.attributes, "enabled": u.enabled, "deleted": u.deleted})),
                   "plan": the_plan, "graph_calls": calls})
        );
        return exit::OK;
    }
    println!("source attributes of {}:", entry.dn);
    for (name, values) in entry.attributes.iter() {
        let shown: Vec<String> = values
            .iter()
            .map(|v| v.to_text_lossy().into_owned())
            .collect();
        println!("    {name}: {}", shown.join(" | "));
    }
    println!();
    crate::rules::print_explanation(&s.loaded.rules, entry, &ev);
    match &user {
        Some(u) => println!(
            "in the target: user {} ({}{})",
            u.id,
            if u.enabled { "enabled" } else { "disabled" },
            if u.deleted { ", soft-deleted" } else { "" }
        ),
        None => println!(
            "in the target: no user bound to anchor {}",
            entry.anchor.to_immutable_id()
        ),
    }
    println!();
    print_plan(&the_plan);
    for c in &calls {
        println!(
            "\nGraph call: {} {}\n{}",
            c["method"].as_str().unwrap_or(""),
            c["url"].as_str().unwrap_or(""),
            serde_json::to_string_pretty(&c["body"]).unwrap_or_default()
        );
    }
    if the_plan.is_empty() && the_plan.errors.is_empty() {
        println!("no Graph call: the target already matches.");
    }
    exit::OK
}

/// The Graph request an action becomes, the anchor written to `anchor_attribute` (password
/// placeholders only: the real one is generated at apply time and never shown).
fn graph_call(a: &Action, anchor_attribute: &str) -> serde_json::Value {
    let body_of = |attrs: &partnersync_target::Attributes| -> serde_json::Value {
        let mut m = serde_json::Map::new();
        for (k, v) in attrs {
            let value = match v.as_slice() {
                [] => serde_json::Value::Null,
                [one] if one == "true" || one == "false" => json!(one == "true"),
                [one] => json!(one),
                many => json!(many),
            };
            m.insert(k.clone(), value);
        }
        serde_json::Value::Object(m)
    };
    match a {
        Action::Create {
            anchor,
            mode: partnersync_target::CreationMode::Direct,
            attributes,
            ..
        } => {
            let mut body = body_of(attributes);
            body[anchor_attribute] = json!(anchor);
            json!({"method": "POST", "url": "/users", "body": body,
                   "note": "managed domains also get a random password, generated at apply time and never shown or stored"})
        }
        Action::Create { attributes, .. } => json!({"method": "POST", "url": "/invitations",
            "body": {"invitedUserEmailAddress": attributes.get("mail").and_then(|v| v.first()),
                     "invitedUserDisplayName": attributes.get("displayName").and_then(|v| v.first()),
                     "invitedUserType": attributes.get("userType").and_then(|v| v.first()).map_or("Guest", |s| s.as_str())}}),
        Action::Adopt {
            id,
            changes,
            anchor,
            ..
        } => {
            let mut body = body_of(
                &changes
                    .iter()
                    .map(|c| (c.attribute.clone(), c.new.clone()))
                    .collect(),
            );
            body[anchor_attribute] = json!(anchor);
            json!({"method": "PATCH", "url": format!("/users/{id}"), "body": body})
        }
        Action::Update { id, changes, .. } => {
            json!({"method": "PATCH", "url": format!("/users/{id}"),
            "body": body_of(&changes.iter().map(|c| (c.attribute.clone(), c.new.clone())).collect())})
        }
        Action::Restore { id, .. } => {
            json!({"method": "POST", "url": format!("/directory/deletedItems/{id}/restore"), "body": null})
        }
        Action::Disable { id, .. } => {
            json!({"method": "PATCH", "url": format!("/users/{id}"), "body": {"accountEnabled": false}})
        }
        Action::Delete { id, .. } => {
            json!({"method": "DELETE", "url": format!("/users/{id}"), "body": null})
        }
    }
}

fn status(common: &Common, limit: usize) -> u8 {
    let loaded = match config::load(&common.config) {
        Ok(l) => l,
        Err(e) => return config_error(e),
    };
    if !loaded.state_path.exists() {
        if common.json {
            println!("{}", json!({"state": null, "runs": []}));
        } else {
            println!(
                "no state yet at {}: partnersync has not run with this configuration. Try `partnersync plan`.",
                loaded.state_path.display()
            );
        }
        return exit::OK;
    }
    let st = match open_state(&loaded) {
        Ok(s) => s,
        Err(e) => return failed(e),
    };
    let text = |k: &str| -> Option<String> {
        st.setting(k)
            .ok()
            .flatten()
            .and_then(|v| String::from_utf8(v).ok())
    };
    let bytes = |k: &str| st.setting(k).ok().flatten().map(|v| v.len());
    let runs = st.runs(limit).unwrap_or_default();
    let pending = st.pending().unwrap_or_default();
    let unfinished = st.unfinished().map(|u| u.len()).unwrap_or(0);
    let managed = st.object_count().unwrap_or(0);
    let generation = partnersync_engine::state_generation(&st).unwrap_or(0);
    if common.json {
        println!(
            "{}",
            json!({"state": loaded.state_path, "managed": managed, "generation": generation,
                   "source_cookie_bytes": bytes("source_cookie"), "target_cookie": text("target_cookie").is_some(),
                   "last_full_at": text("last_full_at").and_then(|v| v.parse::<i64>().ok()),
                   "next_run_at": text("next_run_at").and_then(|v| v.parse::<i64>().ok()),
                   "unfinished_writes": unfinished, "pending": pending, "runs": runs})
        );
        return exit::OK;
    }
    let when = |t: i64| -> String {
        let ago = now() - t;
        match ago {
            i64::MIN..=-1 => format!("in {}", eta(Some(Duration::from_secs((-ago) as u64)))),
            0..=59 => format!("{ago}s ago"),
            60..=3599 => format!("{}m ago", ago / 60),
            3600..=86_399 => format!("{}h ago", ago / 3600),
            _ => format!("{}d ago", ago / 86_400),
        }
    };
    println!("state:     {}", loaded.state_path.display());
    println!("managed:   {managed} user(s)");
    println!(
        "cookies:   source {}; target {}",
        bytes("source_cookie").map_or("none (next run reads everything)".to_string(), |n| format!(
            "{n} bytes"
        )),
        if text("target_cookie").is_some() {
            "change feed ready"
        } else {
            "none (next run lists everything)"
        }
    );
    if let Some(t) = text("last_full_at").and_then(|v| v.parse::<i64>().ok()) {
        println!("last full: {}", when(t));
    }
    match text("next_run_at").and_then(|v| v.parse::<i64>().ok()) {
        Some(t) => println!("next run:  {}", when(t)),
        None => println!("next run:  not scheduled (`partnersync run --every 30m` schedules runs)"),
    }
    if unfinished > 0 {
        println!("WARNING:   {unfinished} write(s) of an interrupted run are unconfirmed; the next run checks them by anchor.");
    }
    println!("\nlast runs:");
    if runs.is_empty() {
        println!("  none");
    }
    for r in &runs {
        let s = &r.summary;
        println!(
            "  #{:<4} {:<22} {:<10} {} create, {} update, {} disable, {} delete, {} error(s); {}",
            r.id,
            r.outcome,
            when(r.finished_at),
            s["creates"],
            s["updates"],
            s["disables"],
            s["deletes"],
            r.errors.len(),
            s["mode"].as_str().unwrap_or("")
        );
    }
    println!("\nwaiting for a retry: {}", pending.len());
    for p in pending.iter().take(20) {
        println!("  {} ({} attempt(s)): {}", p.dn, p.attempts, p.error);
    }
    if pending.len() > 20 {
        println!(
            "  … and {} more (`partnersync status --json` lists all)",
            pending.len() - 20
        );
    }
    exit::OK
}

async fn check(common: &Common) -> u8 {
    let mut problems = 0;
    let mut findings: Vec<serde_json::Value> = Vec::new();
    let mut say = |ok: bool, what: &str, detail: String| {
        if !ok {
            problems += 1;
        }
        findings.push(json!({"ok": ok, "check": what, "detail": detail}));
    };
    let loaded = match config::load(&common.config) {
        Ok(l) => l,
        Err(e) => {
            if common.json {
                println!(
                    "{}",
                    json!({"ok": false, "findings": [{"ok": false, "check": "configuration", "detail": e}]})
                );
            } else {
                println!("FAIL  configuration: {e}");
            }
            return exit::CONFIG;
        }
    };
    say(
        true,
        "configuration",
        format!("{} loads", loaded.path.display()),
    );
    let tests = loaded.rules.run_tests();
    if tests.outcomes.is_empty() {
        say(
            true,
            "rule tests",
            "no [[test]] tables: consider adding some beside the rules".into(),
        );
    } else if tests.failed() == 0 {
        say(true, "rule tests", format!("{} passed", tests.passed()));
    } else {
        let failed: Vec<String> = tests
            .outcomes
            .iter()
            .filter(|o| !o.passed())
            .map(|o| o.name.clone())
            .collect();
        say(
            false,
            "rule tests",
            format!(
                "{} of {} failed: {} (`partnersync rules test` shows why)",
                tests.failed(),
                tests.outcomes.len(),
                failed.join(", ")
            ),
        );
    }
    match open_state(&loaded) {
        Ok(st) => say(
            true,
            "state",
            format!(
                "{} opens ({} managed user(s))",
                loaded.state_path.display(),
                st.object_count().unwrap_or(0)
            ),
        ),
        Err(e) => say(false, "state", e),
    }
    match source_for(&loaded) {
        Err(_) => say(
            false,
            "source",
            "the [source] table is not usable (see the error above)".into(),
        ),
        Ok(source) => match source.as_dyn().describe().await {
            Ok(d) => say(true, "source", format!("reachable: {d:?}")),
            Err(e) => say(false, "source", e.to_string()),
        },
    }
    match connect(&loaded).await {
        Err(e) => say(false, "target", e),
        Ok(c) => {
            match c.target.delta_cookie().await {
                Ok(_) => say(
                    true,
                    "target",
                    "authenticated; users can be read (change tracking works)".into(),
                ),
                Err(e) => say(
                    false,
                    "target",
                    format!("{e} (`partnersync target check` probes permissions in detail)"),
                ),
            }
            if let Err(e) = c.close().await {
                say(false, "target", e);
            }
        }
    }
    if common.json {
        println!("{}", json!({"ok": problems == 0, "findings": findings}));
    } else {
        for f in &findings {
            println!(
                "{}  {}: {}",
                if f["ok"] == true { "OK  " } else { "FAIL" },
                f["check"].as_str().unwrap_or(""),
                f["detail"].as_str().unwrap_or("")
            );
        }
        if problems == 0 {
            println!("\nall checks passed: `partnersync plan` shows what a sync would do.");
        } else {
            println!("\n{problems} check(s) need attention.");
        }
    }
    if problems == 0 {
        exit::OK
    } else {
        exit::FAILED
    }
}

const SAMPLE_CONFIG: &str = include_str!("../../../examples/partnersync.toml");
const SAMPLE_LDIF: &str = include_str!("../../../examples/data/partners.ldif");

const INIT_TAIL: &str = r#"
# ---------------------------------------------------------------------------------------
# Where the writes go. "emulator" runs a local Microsoft Graph emulator in-process, with
# its directory in a file: try everything without a tenant. For a tenant:
#
#   [target]
#   kind = "graph"
#   tenant_id = "contoso.onmicrosoft.com"
#   client_id = "00000000-0000-0000-0000-000000000000"
#   client_secret_env = "PARTNERSYNC_CLIENT_SECRET"   # or client_secret_file = "secret"
#   creation = "direct"                               # or "invitation"
#   # The property users are bound to their source objects through (the hard match):
#   # onPremisesImmutableId, or a directory extension property registered on an app.
#   # anchor_attribute = "extension_<appId without hyphens>_partnerAnchor"
#   [[target.domains]]
#   name = "partners.contoso.com"
#   kind = "federated"                                # or "managed"
[target]
kind = "emulator"
state_file = ".partnersync/graph-emulator.json"

# What partnersync remembers between runs (SQLite; `sqlite3` shows it plainly).
[state]
path = ".partnersync/state.db"

[sync]
# What happens to users whose source object is gone: "disable-then-delete" (disable now,
# delete after delete_after_days), "delete" (soft delete at once), or "report" (only list).
delete_mode = "disable-then-delete"
delete_after_days = 30
# Adopt cloud users without an anchor whose UPN or mail matches (ambiguity is reported).
soft_match = false
# A full reconciliation at least this often; other runs read only what changed.
full_every = "24h"
# A value changed in the portal: "correct" puts the rule's value back, "report" lists it.
drift = "correct"
# Stop applying after this many failed writes (or: stop_above_error_percent = 5).
# stop_after_errors = 50

# Deletion safety: a run that would disable or delete more than this stops and writes
# nothing (`--allow-deletes N` lifts it for one run).
[guard]
max_deletes = 500
max_delete_percent = 10
"#;

fn init(dir: &Path, force: bool) -> u8 {
    let config = dir.join("partnersync.toml");
    let data = dir.join("data").join("partners.ldif");
    for p in [&config, &data] {
        if p.exists() && !force {
            return config_error(format!(
                "{} exists; pass --force to overwrite it",
                p.display()
            ));
        }
    }
    if let Err(e) = std::fs::create_dir_all(dir.join("data")) {
        return failed(format!("cannot create {}: {e}", dir.join("data").display()));
    }
    let text = format!("{}{}", SAMPLE_CONFIG.trim_end(), INIT_TAIL);
    for (p, t) in [(&config, text.as_str()), (&data, SAMPLE_LDIF)] {
        if let Err(e) = std::fs::write(p, t) {
            return failed(format!("cannot write {}: {e}", p.display()));
        }
    }
    println!("wrote {} and {}", config.display(), data.display());
    println!(
        "next: partnersync check --config {c}   then   partnersync plan --config {c}",
        c = config.display()
    );
    exit::OK
}

#[cfg(test)]
mod tests {
    use super::*;
    use partnersync_core::Entry;

    #[test]
    fn preview_finds_an_entry_by_immutable_id_guid_or_dn() {
        let guid = "6f1c2b3a-0d4e-4f51-9a62-7b8c9d0e1f21";
        let uuid = "3b5c9e50-2f1a-103f-8e61-6b2b4d3c7041";
        let entries = [
            Entry::new(Anchor::from_guid_str(guid).unwrap(), "CN=Ad,DC=x"),
            Entry::new(Anchor::from_uuid_str(uuid).unwrap(), "uid=ldap,dc=x"),
        ];
        let dn_of = |key: &str| find_entry(&entries, key).map(|e| e.dn.as_str());
        assert_eq!(dn_of(guid), Some("CN=Ad,DC=x"));
        assert_eq!(
            dn_of(&entries[0].anchor.to_immutable_id()),
            Some("CN=Ad,DC=x")
        );
        assert_eq!(dn_of(uuid), Some("uid=ldap,dc=x"));
        assert_eq!(dn_of(&uuid.to_ascii_uppercase()), Some("uid=ldap,dc=x"));
        assert_eq!(dn_of("UID=LDAP,DC=X"), Some("uid=ldap,dc=x"));
        assert_eq!(dn_of("3b5c9e50-2f1a-103f-8e61-6b2b4d3c7042"), None);
    }
}
