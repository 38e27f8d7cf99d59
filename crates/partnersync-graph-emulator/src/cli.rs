//! Command-line front end, shared by the `partnersync-graph-emulator` binary and (later)
//! `partnersync graph-emulator`.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use crate::config::{EmulatorConfig, QueryMode, RetryAfterMode, TenantConfig};
use crate::error::Error;
use crate::Emulator;

/// Usage text.
pub const USAGE: &str = "\
usage: partnersync-graph-emulator --listen 127.0.0.1:PORT [options]

  --listen ADDR          loopback address to listen on; port 0 picks a free port
  --state FILE           load state from FILE if it exists, save to it while running
  --tenant CONFIG        tenant config (TOML, or JSON by .json extension); default: contoso
  --seed N               seed for fault injection and batch shuffling
  --time-scale X         run throttling windows X times faster (e.g. 10, 100)
  --no-throttling        disable throttling
  --retry-after MODE     integer (default) or fractional Retry-After values
  --lenient              lenient advanced-query mode (default strict)
  -h, --help             this text

Once listening, prints one line of JSON on stdout:
  {\"graph_url\": …, \"token_url\": …, \"tenant_id\": …, \"client_id\": …, \"client_secret\": …}
and runs until SIGTERM or Ctrl-C.";

fn parse(args: Vec<String>) -> Result<Option<EmulatorConfig>, Error> {
    let mut config = EmulatorConfig::default();
    let mut listen: Option<SocketAddr> = None;
    let mut it = args.into_iter();
    let usage = |m: String| Error::Usage(format!("{m}\n\n{USAGE}"));
    while let Some(arg) = it.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let value = |it: &mut std::vec::IntoIter<String>| {
            inline
                .clone()
                .or_else(|| it.next())
                .ok_or_else(|| usage(format!("{name} needs a value")))
        };
        match name.as_str() {
            "-h" | "--help" => return Ok(None),
            "--listen" => {
                let v = value(&mut it)?;
                listen = Some(v.parse().map_err(|_| {
                    usage(format!(
                        "--listen: '{v}' is not an address like 127.0.0.1:8787"
                    ))
                })?);
            }
            "--state" => config.state_file = Some(PathBuf::from(value(&mut it)?)),
            "--tenant" => {
                config.tenant = TenantConfig::load(std::path::Path::new(&value(&mut it)?))?
            }
            "--seed" => {
                let v = value(&mut it)?;
                config.seed = v
                    .parse()
                    .map_err(|_| usage(format!("--seed: '{v}' is not a number")))?;
            }
            "--time-scale" => {
                let v = value(&mut it)?;
                let x: f64 = v
                    .parse()
                    .ok()
                    .filter(|x: &f64| *x > 0.0 && x.is_finite())
                    .ok_or_else(|| {
                        usage(format!("--time-scale: '{v}' is not a positive number"))
                    })?;
                config.settings.throttling.time_scale = x;
            }
            "--no-throttling" => config.settings.throttling.enabled = false,
            "--retry-after" => {
                config.settings.throttling.retry_after = match value(&mut it)?.as_str() {
                    "integer" => RetryAfterMode::Integer,
                    "fractional" => RetryAfterMode::Fractional,
                    other => return Err(usage(format!("--retry-after: unknown mode '{other}'"))),
                }
            }
            "--lenient" => config.settings.query_mode = QueryMode::Lenient,
            other => return Err(usage(format!("unknown argument '{other}'"))),
        }
    }
    config.listen = listen.ok_or_else(|| usage("--listen is required".to_string()))?;
    Ok(Some(config))
}

/// Runs the emulator as a command: parses `args` (without the program name), starts it, prints
/// the start-up JSON line on stdout, and serves until SIGTERM or Ctrl-C, then saves state.
pub async fn run_cli(args: impl IntoIterator<Item = String>) -> Result<(), Error> {
    let Some(config) = parse(args.into_iter().collect())? else {
        println!("{USAGE}");
        return Ok(());
    };
    // Signal handlers first: a caller may send SIGTERM as soon as it has read the
    // startup line, and a signal before the handler exists would kill the process
    // without saving its state.
    let signals = Signals::install();
    let mut emu = Emulator::start(config).await?;
    {
        let mut out = std::io::stdout().lock();
        let line = emu.startup_line();
        writeln!(out, "{line}")
            .and_then(|_| out.flush())
            .map_err(|source| Error::Io {
                path: "<stdout>".into(),
                source,
            })?;
    }
    signals.wait(&mut emu).await;
    emu.shutdown().await
}

/// [`run_cli`] on a runtime of its own, for callers that are not async (e.g. the
/// `partnersync` CLI's `graph-emulator` subcommand). Blocks until the emulator stops.
pub fn run_cli_blocking(args: impl IntoIterator<Item = String>) -> Result<(), Error> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|source| Error::Io {
            path: "<tokio runtime>".into(),
            source,
        })?;
    runtime.block_on(run_cli(args))
}

/// SIGTERM and SIGINT, registered before the emulator announces itself.
struct Signals {
    #[cfg(unix)]
    unix: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl Signals {
    fn install() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let unix = match (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) {
                (Ok(term), Ok(int)) => Some((term, int)),
                _ => None,
            };
            Signals { unix }
        }
        #[cfg(not(unix))]
        {
            Signals {}
        }
    }

    async fn wait(self, emu: &mut crate::EmulatorHandle) {
        #[cfg(unix)]
        if let Some((mut term, mut int)) = self.unix {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
                _ = emu.stopped() => {}
            }
            return;
        }
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = emu.stopped() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn parses_arguments() {
        let c = parse(args(
            "--listen 127.0.0.1:0 --time-scale 10 --no-throttling --seed=7",
        ));
        let c = c.ok().flatten();
        assert!(c
            .as_ref()
            .is_some_and(|c| c.seed == 7 && !c.settings.throttling.enabled));
        assert!(parse(args("--time-scale 10")).is_err());
        assert!(parse(args("--listen nowhere")).is_err());
        assert!(matches!(parse(args("--help")), Ok(None)));
    }
}
