//! Benchmark binary (not a timed test) for `scripts/ldap/bench.sh`: a full read, or a delta
//! read from a cookie file, of the slapd that `scripts/ldap/slapd.sh` started, printing
//! entries, seconds, entries per second and the process's peak RSS.
//!
//! ```text
//! bench_read full  ENV_FILE BASE [COOKIE_OUT]
//! bench_read delta ENV_FILE BASE COOKIE_IN
//! ```
//! The bind password is read from the env file (a throwaway test server's), never argv.

// The allocator the partnersync binary uses (ldap3 allocates per message and value), so the
// bench measures what `partnersync source read` does.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::HashMap;
use std::time::Instant;

use partnersync_core::{Anchor, Entry};
use partnersync_ldap::{LdapConfig, LdapSource};
use partnersync_source::{Cookie, DeltaRead, EntrySink, SinkError, SourceDirectory};

/// Counts what streams past without keeping it (the engine's sinks process and drop).
#[derive(Default)]
struct Count {
    entries: u64,
    deleted: u64,
    attributes: u64,
}

impl EntrySink for Count {
    fn entry(&mut self, e: Entry) -> Result<(), SinkError> {
        self.entries += 1;
        self.attributes += e.attributes.len() as u64;
        Ok(())
    }
    fn deleted(&mut self, _: Anchor) -> Result<(), SinkError> {
        self.deleted += 1;
        Ok(())
    }
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: bench_read full|delta ENV_FILE BASE [COOKIE]");
        std::process::exit(2);
    }
    let env: HashMap<String, String> = std::fs::read_to_string(&args[2])?
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('\'').to_string()))
        .collect();
    let get = |k: &str| {
        env.get(k)
            .cloned()
            .ok_or(format!("{k} missing from the env file"))
    };
    std::env::set_var("PARTNERSYNC_BENCH_PW", get("LDAP_BIND_PW")?);
    let mut config = LdapConfig::new(get("LDAP_URL")?);
    config.base_dns = vec![args[3].clone()];
    config.filter = "(objectClass=inetOrgPerson)".into();
    config.bind_dn = Some(get("LDAP_BIND_DN")?);
    config.password_env = Some("PARTNERSYNC_BENCH_PW".into());
    config.starttls = false;
    config.allow_plaintext_bind = true;
    config.page_size = 1000;
    if std::env::var("BENCH_DELTA").is_ok_and(|v| v == "none") {
        config.delta = partnersync_ldap::DeltaChoice::None;
    }
    let source = LdapSource::new(config)?;
    let mut sink = Count::default();
    let start = Instant::now();
    match args[1].as_str() {
        "full" => {
            let summary = source.full_read(&mut sink).await?;
            let secs = start.elapsed().as_secs_f64();
            if let (Some(path), Some(cookie)) = (args.get(4), summary.cookie) {
                std::fs::write(path, cookie.as_bytes())?;
            }
            println!(
                "partnersync-ldap full read: {} entries ({} attribute values sets) in {secs:.2} s = {:.0} entries/s, peak RSS {:.0} MB",
                sink.entries,
                sink.attributes,
                sink.entries as f64 / secs,
                peak_rss_mb()
            );
        }
        "delta" => {
            let path = args.get(4).ok_or("delta needs a cookie file")?;
            let cookie = Cookie::new(std::fs::read(path)?);
            let outcome = source.delta_read(&cookie, &mut sink).await?;
            let secs = start.elapsed().as_secs_f64();
            match outcome {
                DeltaRead::Changes(d) => println!(
                    "partnersync-ldap delta read: {} changed, {} deleted in {secs:.3} s, peak RSS {:.0} MB",
                    d.changed,
                    d.deleted,
                    peak_rss_mb()
                ),
                DeltaRead::FullReadRequired { reason } => {
                    println!("delta read: full read required: {reason}")
                }
            }
        }
        other => return Err(format!("unknown mode {other}").into()),
    }
    Ok(())
}
