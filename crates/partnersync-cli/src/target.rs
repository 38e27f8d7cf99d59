//! `partnersync target check`: can the configured app sync the configured tenant?
//!
//! Loads the `[target]` table of the configuration file, authenticates, probes read
//! permission, reads write and invite permissions from the token, lists the tenant's
//! domains, and prints one line per finding ("OK: …", "WARNING: …", "MISSING: …") with what
//! to do. The work is `partnersync_graph::GraphTarget::check`; this file only loads and
//! prints.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};
use partnersync_graph::{CheckReport, GraphConfig, GraphTarget, Level};

#[derive(Subcommand)]
pub enum TargetCommand {
    /// Authenticate to the tenant of the [target] table and check that the app can sync:
    /// read users (probed with one read), create/update/delete users and invite guests
    /// (judged from the application permissions in the token; no test write is made), and
    /// that the configured [[target.domains]] are verified domains of the tenant with the
    /// configured kind. Prints what is missing and where to fix it.
    ///
    /// Exit codes: 0 everything needed is there (warnings may be printed); 1 something blocks
    /// a sync (authentication, a permission, a domain); 2 bad arguments or configuration.
    Check(CheckArgs),
}

#[derive(Args)]
pub struct CheckArgs {
    /// The configuration file (TOML) with a [target] table.
    #[arg(long, short = 'c', default_value = "partnersync.toml")]
    config: PathBuf,
    /// Print the report as one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(cmd: TargetCommand) -> ExitCode {
    match cmd {
        TargetCommand::Check(args) => check(&args),
    }
}

fn config_error(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::from(2)
}

/// The `[target]` table of `path` as a `GraphConfig`.
fn load(path: &Path) -> Result<GraphConfig, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    // Only the message: toml's Display quotes the offending line, which could hold a secret.
    let file: toml::Table =
        toml::from_str(&text).map_err(|e| format!("{}: {}", path.display(), e.message().trim()))?;
    let Some(table) = file.get("target") else {
        return Err(format!(
            "{} has no [target] table; add one (kind = \"graph\", tenant_id, client_id, a \
             credential and [[target.domains]]; see the partnersync-graph README)",
            path.display()
        ));
    };
    if table.get("kind").and_then(toml::Value::as_str) == Some("emulator") {
        return Err(format!(
            "{}: [target] kind = \"emulator\" is the built-in local emulator; target check \
             checks a Microsoft Entra tenant (kind = \"graph\")",
            path.display()
        ));
    }
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    GraphConfig::from_toml_value(table, &dir).map_err(|e| format!("{}: {e}", path.display()))
}

fn check(args: &CheckArgs) -> ExitCode {
    let config = match load(&args.config) {
        Ok(c) => c,
        Err(e) => return config_error(e),
    };
    let summary = format!(
        "tenant {}, app {}, Graph {}",
        config.tenant_id,
        config.client_id,
        config
            .endpoint
            .as_ref()
            .map_or(config.cloud.graph_url(), |e| e.graph_url.as_str())
    );
    // Building the target reads the secret or certificate: a missing variable or file is a
    // configuration error.
    let target = match GraphTarget::new(config) {
        Ok(t) => t,
        Err(e) => return config_error(format!("{}: {e}", args.config.display())),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let report = runtime.block_on(target.check());
    if args.json {
        print_json(&report, &summary);
    } else {
        print_text(&report, &summary);
    }
    if report.blocks_sync() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn label(level: Level) -> &'static str {
    match level {
        Level::Ok => "OK",
        Level::Warning => "WARNING",
        Level::Missing => "MISSING",
    }
}

fn print_text(report: &CheckReport, summary: &str) {
    println!("partnersync target check: {summary}");
    for f in &report.findings {
        println!("{}: {}", label(f.level), f.message);
    }
    if !report.roles.is_empty() {
        println!(
            "application permissions in the token: {}",
            report.roles.join(", ")
        );
    }
    if !report.domains.is_empty() {
        println!("domains of the tenant:");
        for d in &report.domains {
            println!(
                "  {:<40} {:<10} {}{}",
                d.name,
                if d.verified { "verified" } else { "unverified" },
                d.authentication.to_ascii_lowercase(),
                if d.initial { " (initial)" } else { "" }
            );
        }
    }
    println!(
        "note: reading is probed with one read; write and invite permissions are judged from \
         the token's roles claim (what Graph authorises app-only calls against); no test \
         write is made."
    );
    let blocking = report
        .findings
        .iter()
        .filter(|f| f.level == Level::Missing)
        .count();
    if blocking == 0 {
        println!("result: ready to sync");
    } else {
        println!(
            "result: {blocking} finding{} block{} a sync",
            if blocking == 1 { "" } else { "s" },
            if blocking == 1 { "s" } else { "" }
        );
    }
}

fn print_json(report: &CheckReport, summary: &str) {
    let v = serde_json::json!({
        "ok": !report.blocks_sync(),
        "target": summary,
        "findings": report.findings,
        "roles": report.roles,
        "domains": report.domains,
    });
    println!("{v}");
}
