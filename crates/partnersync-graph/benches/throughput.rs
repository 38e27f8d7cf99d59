//! Throughput of the full stack (GraphTarget → graph-rs-sdk → emulator), not a timed test.
//!
//! 1. Quota: 15,000 creates with the emulator enforcing Graph's write quota (3,000 per 150 s
//!    per app and tenant) at a 10× time scale, i.e. five quota windows at a scaled 200
//!    writes/s. Reports sustained writes/s ÷ 200, failures, duplicates and absorbed 429s.
//! 2. Loopback: creates/s with throttling off, to show what the client itself costs.
//!
//! `cargo bench -p partnersync-graph --bench throughput` (sizes: PS_BENCH_QUOTA_USERS,
//! PS_BENCH_LOOPBACK_USERS).

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

async fn run(users: u32, throttled: bool) -> BenchResult<()> {
    let mut config = EmulatorConfig::default();
    config.settings.throttling.enabled = throttled;
    config.settings.throttling.time_scale = 10.0;
    config.settings.max_log_entries = 1_000_000;
    let emu = Emulator::start(config).await?;
    let scaled_rate = 3_000.0 / 150.0 * 10.0;
    let rate = if throttled { scaled_rate } else { 1.0e6 };
    let target = target(&emu, rate, if throttled { "quota" } else { "loopback" })?;
    let ops = creates(0..users)?;
    // One warm-up call fetches the token and opens connections.
    target.list_managed().await?;
    let started = Instant::now();
    let results = target.apply(&ops).await;
    let secs = started.elapsed().as_secs_f64();
    let failures = results.iter().filter(|r| r.is_err()).count();
    if let Some(Err(e)) = results.iter().find(|r| r.is_err()) {
        eprintln!("first failure: {e}");
    }
    let admin = emu.admin();
    let active = admin.count().active;
    let log = admin.operations();
    let created = log
        .iter()
        .filter(|o| o.path == "/v1.0/users" && o.method == "POST" && o.status == 201)
        .count();
    let throttled_items = log.iter().filter(|o| o.status == 429).count();
    let per_sec = f64::from(users) / secs;
    if throttled {
        println!(
            "quota: {users} creates in {secs:.1} s = {per_sec:.1} writes/s; ÷ {scaled_rate} = {:.3}; \
             failures {failures}; users {active}; 201s {created} (duplicates {}); 429s absorbed {throttled_items}",
            per_sec / scaled_rate,
            created.saturating_sub(users as usize)
        );
    } else {
        println!(
            "loopback: {users} creates in {secs:.2} s = {per_sec:.0} creates/s; failures {failures}; users {active}"
        );
    }
    emu.shutdown().await?;
    Ok(())
}

fn size(var: &str, default: u32) -> u32 {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> BenchResult<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        run(size("PS_BENCH_LOOPBACK_USERS", 5_000), false).await?;
        run(size("PS_BENCH_QUOTA_USERS", 15_000), true).await
    })
}
