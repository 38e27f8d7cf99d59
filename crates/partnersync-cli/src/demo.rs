//! `partnersync demo`: the whole job on the embedded default, with nothing installed. The
//! sample LDIF (or any `[source]`), the sample rules, a local Microsoft Graph emulator
//! started in-process with its directory kept in a file, and a SQLite state file: read →
//! evaluate → plan → guard → apply → record, printed for a person to read.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use partnersync_engine::{run_cycle, CycleError, CycleOptions, SqliteStateStore};
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
    let runtime = match crate::runtime() {
        Ok(r) => r,
        Err(code) => return code,
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
    let directory = args.state_dir.join("graph-emulator.json");
    let connected = crate::sync::start_emulator_target(
        &directory,
        crate::config::sample_domains(),
        partnersync_graph::CreationMode::Direct,
        partnersync_graph::AnchorAttribute::default(),
    )
    .await?;
    let graph_url = connected
        .emulator
        .as_ref()
        .map(|e| e.graph_url())
        .unwrap_or_default();
    let mut state =
        SqliteStateStore::open(&args.state_dir.join("state.db")).map_err(|e| e.to_string())?;
    println!("source:  {}", args.config.display());
    println!(
        "target:  local Microsoft Graph emulator at {} (directory kept in {})",
        graph_url,
        directory.display()
    );
    println!("state:   {}", state.path().display());
    let options = CycleOptions {
        staging: args.staging,
        allow_deletes: args.allow_deletes,
        ..CycleOptions::default()
    };
    let result = run_cycle(
        source.as_dyn(),
        &connected.target,
        &rules,
        &mut state,
        &options,
    )
    .await;
    // Save the emulator's directory before printing the outcome, so a reader that goes away
    // early (`| head`) cannot lose what was written.
    connected.close().await?;
    let code = match result {
        Ok(report) => {
            println!();
            crate::sync::print_plan(&report.plan);
            crate::sync::print_outcome(&report, args.staging);
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
