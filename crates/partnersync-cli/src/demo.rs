//! `partnersync demo`: the whole job on the embedded default, with nothing installed. The
//! sample LDIF (or any `[source]`), the sample rules, a local Microsoft Graph emulator
//! started in-process with its directory kept in a file, and a SQLite state file: read →
//! evaluate → plan → guard → apply → record, printed for a person to read.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use partnersync_engine::{run_cycle, Action, CycleError, CycleOptions, SqliteStateStore};
use partnersync_graph::{
    DomainKind, EndpointOverride, GraphConfig, GraphTarget, SecretSource, VerifiedDomain,
};
use partnersync_graph_emulator::{Emulator, EmulatorConfig};
use partnersync_rules::RuleSet;

#[derive(Args)]
pub struct DemoArgs {
    /// The configuration (rules and a [source] table).
    #[arg(long, default_value = "examples/partnersync.toml")]
    config: PathBuf,
    /// Where the emulator's directory and the state file are kept between runs.
    #[arg(long, default_value = ".partnersync-demo")]
    state_dir: PathBuf,
    /// Compute and show the plan, write nothing.
    #[arg(long)]
    staging: bool,
    /// Let this run disable or delete up to N users despite the deletion guard.
    #[arg(long, value_name = "N")]
    allow_deletes: Option<usize>,
}

pub fn run(args: DemoArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(demo(&args)) {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("error: {msg}");
            ExitCode::from(1)
        }
    }
}

async fn demo(args: &DemoArgs) -> Result<ExitCode, String> {
    let text = std::fs::read_to_string(&args.config)
        .map_err(|e| format!("cannot read {}: {e}", args.config.display()))?;
    let rules = match RuleSet::from_toml_str(&text) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {}: {e}", args.config.display());
            return Ok(ExitCode::from(2));
        }
    };
    let source = match crate::source::from_config(&args.config) {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    std::fs::create_dir_all(&args.state_dir)
        .map_err(|e| format!("cannot create {}: {e}", args.state_dir.display()))?;
    let emulator = Emulator::start(EmulatorConfig {
        state_file: Some(args.state_dir.join("graph-emulator.json")),
        ..EmulatorConfig::default()
    })
    .await
    .map_err(|e| format!("cannot start the Graph emulator: {e}"))?;
    let secret_file = args.state_dir.join("client-secret");
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
    graph.verified_domains = vec![
        VerifiedDomain {
            name: "contoso.com".into(),
            kind: DomainKind::Managed,
        },
        VerifiedDomain {
            name: "partners.contoso.com".into(),
            kind: DomainKind::Federated,
        },
    ];
    let target =
        GraphTarget::new(graph).map_err(|e| format!("cannot set up the Graph target: {e}"))?;
    let mut state =
        SqliteStateStore::open(&args.state_dir.join("state.db")).map_err(|e| e.to_string())?;
    println!("source:  {}", args.config.display());
    println!(
        "target:  local Microsoft Graph emulator at {} (directory kept in {})",
        emulator.graph_url(),
        args.state_dir.join("graph-emulator.json").display()
    );
    println!("state:   {}", state.path().display());
    let options = CycleOptions {
        staging: args.staging,
        allow_deletes: args.allow_deletes,
        ..CycleOptions::default()
    };
    let result = run_cycle(source.as_dyn(), &target, &rules, &mut state, &options).await;
    // Save the emulator's directory before printing the outcome, so a reader that goes away
    // early (`| head`) cannot lose what was written.
    emulator
        .shutdown()
        .await
        .map_err(|e| format!("stopping the emulator: {e}"))?;
    let code = match result {
        Ok(report) => {
            print_plan(&report.plan);
            if args.staging {
                println!("\nstaging: nothing was written.");
            } else {
                let ok = report.attempted - report.failures.len();
                println!(
                    "\napplied: {ok} of {} write(s) succeeded.",
                    report.attempted
                );
                for (anchor, e) in &report.failures {
                    println!("  FAILED {anchor}: {e}");
                }
            }
            if report.plan.is_empty() && report.plan.errors.is_empty() {
                println!("nothing to do: the tenant already matches the directory (zero writes).");
            }
            if report.failures.is_empty() && report.plan.errors.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(3)
            }
        }
        Err(CycleError::Guard(tripped)) => {
            println!("\nSTOPPED by the deletion guard: {tripped}");
            println!(
                "Review the list; rerun with --allow-deletes {} to accept it for one run.",
                tripped.would_remove.len()
            );
            ExitCode::from(4)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    };
    Ok(code)
}

fn print_plan(plan: &partnersync_engine::SyncPlan) {
    let c = plan.counts();
    println!(
        "\nplan: {} create, {} update ({} userType change), {} restore, {} disable, {} delete, {} object(s) in error",
        c.creates, c.updates, c.user_type_changes, c.restores, c.disables, c.deletes, c.errors
    );
    for action in &plan.actions {
        match action {
            Action::Create { dn, attributes, .. } => {
                let ut = attributes
                    .get("userType")
                    .and_then(|v| v.first())
                    .map_or("-", String::as_str);
                let upn = attributes
                    .get("userPrincipalName")
                    .and_then(|v| v.first())
                    .map_or("-", String::as_str);
                println!("  + create  {upn:<40} userType={ut:<6} {dn}");
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
            Action::Adopt { dn, matched_on, .. } => {
                println!("  = adopt   {dn} (soft match on {matched_on})")
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
    for e in &plan.errors {
        println!("  ! error   {}: {}", e.dn, e.message);
    }
}

/// Writes the emulator's (fake) client secret where only this user can read it, so the
/// Graph target reads it from a file as it would a real one.
fn write_private(path: &Path, secret: &str) -> Result<(), String> {
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
