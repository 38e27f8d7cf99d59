//! Throughput of the full stack (GraphTarget → graph-rs-sdk → emulator), not a timed test.
//!
//! 1. `loopback`: creates/s with throttling off, to show what the client itself costs.
//! 2. `quota-at-rate`: 15,000 creates with the emulator enforcing Graph's write quota (3,000
//!    per 150 s per app and tenant) at a 10× time scale, i.e. five quota windows at a scaled
//!    200 writes/s, the client configured at that rate.
//! 3. `quota-2x-warning`: the client configured at twice the quota; the emulator sends
//!    `x-ms-throttle-limit-percentage` above 80 % as Graph does, so the client slows early.
//! 4. `quota-2x-429s`: the same without the warning header: only 429s tell the client, and
//!    every one must be absorbed (waited out and retried) without a failure or duplicate.
//!
//! Each reports sustained writes/s ÷ 200, failures, duplicates (201s beyond one per user in
//! the emulator's operation log), 429s in the log and as seen by the client, and ends with a
//! comparison table.
//!
//! `cargo bench -p partnersync-graph --bench throughput` (sizes: PS_BENCH_QUOTA_USERS,
//! PS_BENCH_LOOPBACK_USERS; subset: PS_BENCH_VARIANTS=quota-2x-429s,loopback).

use std::time::{Duration, Instant};

use partnersync_core::Anchor;
use partnersync_graph::{
    DomainKind, EndpointOverride, GraphConfig, GraphTarget, SecretSource, TransportConfig,
    VerifiedDomain,
};
use partnersync_graph_emulator::{Emulator, EmulatorConfig, EmulatorHandle};
use partnersync_target::{Attributes, CreationMode, Operation, TargetDirectory};

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

fn target(emu: &EmulatorHandle, writes_per_second: f64, tag: &str) -> BenchResult<GraphTarget> {
    let secret_file =
        std::env::temp_dir().join(format!("ps-graph-bench-{}-{tag}", std::process::id()));
    std::fs::write(&secret_file, emu.client_secret())?;
    let mut config = GraphConfig::new(
        emu.tenant_id(),
        emu.client_id(),
        SecretSource::File(secret_file.clone()),
    );
    config.endpoint = Some(EndpointOverride {
        graph_url: emu.graph_url(),
        token_url: emu.token_url(),
    });
    config.verified_domains = vec![VerifiedDomain {
        name: "contoso.com".into(),
        kind: DomainKind::Managed,
    }];
    config.transport = TransportConfig {
        writes_per_second,
        max_concurrency: 16,
        backoff_base: Duration::from_millis(50),
        backoff_max: Duration::from_secs(15),
        retry_budget: 10_000.0,
        ..TransportConfig::default()
    };
    let target = GraphTarget::new(config)?;
    let _ = std::fs::remove_file(&secret_file);
    Ok(target)
}

fn creates(range: std::ops::Range<u32>) -> BenchResult<Vec<Operation>> {
    range
        .map(|n| {
            let mut attributes = Attributes::new();
            attributes.insert(
                "userPrincipalName".into(),
                vec![format!("bench{n:06}@contoso.com")],
            );
            attributes.insert("displayName".into(), vec![format!("Bench {n}")]);
            Ok(Operation::Create {
                anchor: Anchor::from_bytes(format!("{n:016}").into_bytes())?,
                mode: CreationMode::Direct,
                attributes,
            })
        })
        .collect()
}

/// One benchmark variant.
#[derive(Clone, Copy)]
struct Variant {
    name: &'static str,
    /// Emulator enforces the write quota (scaled 10×).
    quota: bool,
    /// Client's writes per second (`None`: unlimited).
    client_rate: Option<f64>,
    /// Emulator sends `x-ms-throttle-limit-percentage` above 80 % of a limit.
    warning_header: bool,
}

const SCALED_RATE: f64 = 3_000.0 / 150.0 * 10.0;
/// The emulator's write bucket starts full: this many writes before the refill rate rules.
const QUOTA_BUCKET: f64 = 3_000.0;

struct Outcome {
    name: &'static str,
    users: u32,
    secs: f64,
    failures: usize,
    active: usize,
    created: usize,
    throttled_in_log: usize,
    stats: partnersync_graph::TransportStats,
}

async fn run(users: u32, v: Variant) -> BenchResult<Outcome> {
    let mut config = EmulatorConfig::default();
    config.settings.throttling.enabled = v.quota;
    config.settings.throttling.time_scale = 10.0;
    config.settings.throttling.limit_percentage_header = v.warning_header;
    config.settings.max_log_entries = 1_000_000;
    let emu = Emulator::start(config).await?;
    let target = target(&emu, v.client_rate.unwrap_or(1.0e6), v.name)?;
    let ops = creates(0..users)?;
    // One warm-up call fetches the token and opens connections.
    target.list_managed().await?;
    let started = Instant::now();
    let results = target.apply(&ops).await;
    let secs = started.elapsed().as_secs_f64();
    let failures = results.iter().filter(|r| r.is_err()).count();
    if let Some(Err(e)) = results.iter().find(|r| r.is_err()) {
        eprintln!("{}: first failure: {e}", v.name);
    }
    let admin = emu.admin();
    let active = admin.count().active;
    let log = admin.operations();
    let created = log
        .iter()
        .filter(|o| o.path == "/v1.0/users" && o.method == "POST" && o.status == 201)
        .count();
    let throttled_in_log = log.iter().filter(|o| o.status == 429).count();
    let outcome = Outcome {
        name: v.name,
        users,
        secs,
        failures,
        active,
        created,
        throttled_in_log,
        stats: target.transport_stats(),
    };
    print_line(&outcome, v.quota);
    emu.shutdown().await?;
    Ok(outcome)
}

fn print_line(o: &Outcome, quota: bool) {
    let per_sec = f64::from(o.users) / o.secs;
    if quota {
        println!(
            "{}: {} creates in {:.1} s = {per_sec:.1} writes/s; / {SCALED_RATE} = {:.3}; failures {}; \
             users {}; 201s {} (duplicates {}); 429s {} (client saw {}, retried {}); early warnings {}; \
             final client rate {:.0}/s of {:.0}/s",
            o.name,
            o.users,
            o.secs,
            per_sec / SCALED_RATE,
            o.failures,
            o.active,
            o.created,
            o.created.saturating_sub(o.users as usize),
            o.throttled_in_log,
            o.stats.throttled,
            o.stats.retries,
            o.stats.pressure_signals,
            o.stats.write_rate,
            o.stats.max_write_rate,
        );
    } else {
        println!(
            "{}: {} creates in {:.2} s = {per_sec:.0} creates/s; failures {}; users {}",
            o.name, o.users, o.secs, o.failures, o.active
        );
    }
}

fn size(var: &str, default: u32) -> u32 {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> BenchResult<()> {
    let variants = [
        Variant {
            name: "loopback",
            quota: false,
            client_rate: None,
            warning_header: true,
        },
        Variant {
            name: "quota-at-rate",
            quota: true,
            client_rate: Some(SCALED_RATE),
            warning_header: true,
        },
        Variant {
            name: "quota-2x-warning",
            quota: true,
            client_rate: Some(2.0 * SCALED_RATE),
            warning_header: true,
        },
        Variant {
            name: "quota-2x-429s",
            quota: true,
            client_rate: Some(2.0 * SCALED_RATE),
            warning_header: false,
        },
    ];
    // PS_BENCH_VARIANTS=quota-2x-429s,loopback runs a subset.
    let wanted = std::env::var("PS_BENCH_VARIANTS").unwrap_or_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let outcomes = runtime.block_on(async {
        let mut out = Vec::new();
        for v in variants {
            if !wanted.is_empty() && !wanted.split(',').any(|w| w.trim() == v.name) {
                continue;
            }
            let users = if v.quota {
                size("PS_BENCH_QUOTA_USERS", 15_000)
            } else {
                size("PS_BENCH_LOOPBACK_USERS", 5_000)
            };
            out.push((run(users, v).await?, v));
        }
        BenchResult::Ok(out)
    })?;
    // The emulator's write bucket starts full (3,000 writes), so a client that uses the
    // quota perfectly creates 15,000 users in (15,000 - 3,000) / 200 = 60 s: 250/s ("ideal").
    println!();
    println!(
        "| variant | client rate | writes/s | / 200 | / ideal | 429s (log / client) | early warnings | failures | duplicates |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for (o, v) in &outcomes {
        let per_sec = f64::from(o.users) / o.secs;
        let rate = v
            .client_rate
            .map_or("unlimited".to_string(), |r| format!("{r:.0}/s"));
        let (ratio, ideal) = if v.quota {
            // The best any client can do: the full bucket at once, then the refill rate.
            let users = f64::from(o.users);
            let best = users / ((users - QUOTA_BUCKET).max(0.0) / SCALED_RATE).max(1e-9);
            (
                format!("{:.3}", per_sec / SCALED_RATE),
                format!("{:.3} of {best:.0}/s", per_sec / best),
            )
        } else {
            ("-".to_string(), "-".to_string())
        };
        println!(
            "| {} | {rate} | {per_sec:.1} | {ratio} | {ideal} | {} / {} | {} | {} | {} |",
            o.name,
            o.throttled_in_log,
            o.stats.throttled,
            o.stats.pressure_signals,
            o.failures,
            o.created.saturating_sub(o.users as usize),
        );
    }
    Ok(())
}
