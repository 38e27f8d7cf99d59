//! `partnersync`: the command-line tool. A thin layer over the library crates: it parses
//! arguments, reads files, calls the crates and turns their results into output and exit
//! codes. No sync logic lives here.
// The doc comments on commands and arguments are the `--help` text, written for
// administrators ("[[rule]] tables", "ldap://host[:port]"), not rustdoc links.
#![allow(rustdoc::broken_intra_doc_links)]

mod config;
mod demo;
mod eval;
mod rules;
mod source;
mod sync;
mod target;

use std::process::ExitCode;

/// mimalloc instead of glibc's malloc: reading a directory allocates per LDAP message and
/// value, and the allocator was half the CPU time of a full read.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};

/// Sync locally-managed partner accounts from Active Directory / LDAP into Entra ID as B2B
/// guests.
#[derive(Parser)]
#[command(name = "partnersync", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole job on the embedded default: the sample LDIF and rules, a local Graph
    /// emulator in-process, state in .partnersync-demo/. Run it again: zero writes.
    ///
    /// Exit codes: 0 done; 1 could not run; 2 bad configuration; 3 some object failed or is
    /// in error; 4 the deletion guard stopped the run (nothing was written).
    Demo(demo::DemoArgs),
    #[command(flatten)]
    Sync(sync::SyncCommand),
    /// Evaluate one expression against one object and print the result as JSON.
    ///
    /// Exit codes: 0 a value was printed; 2 the expression does not parse (diagnostic on
    /// stderr); 3 the expression raised Error(...) or failed at run time
    /// ({"error": "..."} on stdout).
    Eval(eval::EvalArgs),
    /// Work with sync rules: run rule tests, explain what the rules do to an entry.
    #[command(subcommand)]
    Rules(rules::RulesCommand),
    /// Read the source directory: check the connection, stream entries (full or delta).
    #[command(subcommand)]
    Source(source::SourceCommand),
    /// Check the Entra ID tenant of the [target] table: authentication, permissions, domains.
    #[command(subcommand)]
    Target(target::TargetCommand),
    /// Run the local Microsoft Graph emulator (same as the `partnersync-graph-emulator`
    /// binary): `partnersync graph-emulator --listen 127.0.0.1:0 [--state FILE] [--tenant FILE]`.
    #[command(name = "graph-emulator", disable_help_flag = true)]
    GraphEmulator {
        /// Arguments passed to the emulator (`--help` shows them).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn main() -> ExitCode {
    quiet_broken_pipe();
    let cli = Cli::parse();
    match cli.command {
        Command::Demo(args) => demo::run(args),
        Command::Sync(cmd) => sync::run(cmd),
        Command::Eval(args) => eval::run(args),
        Command::Rules(cmd) => rules::run(cmd),
        Command::Source(cmd) => source::run(cmd),
        Command::Target(cmd) => target::run(cmd),
        Command::GraphEmulator { args } => match partnersync_graph_emulator::run_cli_blocking(args)
        {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("partnersync graph-emulator: {e}");
                ExitCode::from(match e {
                    partnersync_graph_emulator::Error::Usage(_) => 2,
                    _ => 1,
                })
            }
        },
    }
}

/// The async runtime the commands that talk to servers run on (two workers: the machine
/// this runs on is usually small, and the work is I/O). A failure is reported and becomes
/// exit code 1.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("error: cannot start the async runtime: {e}");
            ExitCode::from(1)
        })
}

/// `partnersync rules explain ... | head` must end quietly when the reader goes away,
/// not with a panic about a broken pipe.
fn quiet_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.contains("Broken pipe") {
            std::process::exit(0);
        }
        default(info);
    }));
}
