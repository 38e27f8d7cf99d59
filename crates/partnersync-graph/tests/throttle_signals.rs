//! Adaptive slowing on Graph's early warning (`x-ms-throttle-limit-percentage`) against the
//! emulator's write quota, compared with the same run where only 429s tell the client.

mod common;

use std::time::Duration;

use common::{anchor, partner, start_configured};
use partnersync_graph::TransportConfig;
use partnersync_graph_emulator::{EmulatorConfig, RetryAfterMode};
use partnersync_target::{CreationMode, Operation, TargetDirectory};

/// A write quota of 1,000 per 10 s (refill 100/s; Graph's is 3,000 per 150 s) and a client
/// configured for three times that rate.
fn quota(headers: bool) -> EmulatorConfig {
    let mut config = EmulatorConfig::default();
    let t = &mut config.settings.throttling;
    t.enabled = true;
    t.time_scale = 10.0;
    t.app_write_limit = 1_000;
    t.app_write_window_secs = 100.0;
    t.retry_after = RetryAfterMode::Fractional;
    t.limit_percentage_header = headers;
    config
}

fn transport() -> TransportConfig {
    TransportConfig {
        writes_per_second: 300.0,
        max_concurrency: 4,
        max_attempts: 20,
        backoff_base: Duration::from_millis(20),
        backoff_max: Duration::from_secs(2),
        retry_budget: 10_000.0,
        retry_budget_refill: 0.2,
        request_timeout: Duration::from_secs(20),
    }
}

fn creates(range: std::ops::Range<u32>) -> Vec<Operation> {
    range
        .map(|n| Operation::Create {
            anchor: anchor(n),
            mode: CreationMode::Direct,
            attributes: partner(n, "contoso.com"),
        })
        .collect()
}

/// (429s in the emulator's log, 201s, the target's stats after the run)
async fn run(
    headers: bool,
    users: u32,
) -> (usize, usize, partnersync_graph::TransportStats, common::Env) {
    let env = start_configured(quota(headers), None, transport(), 10).await;
    let results = env.target.apply(&creates(0..users)).await;
    let failed: Vec<_> = results.iter().filter(|r| r.is_err()).collect();
    assert!(
        failed.is_empty(),
        "{} failed, first: {:?}",
        failed.len(),
        failed.first()
    );
    let log = env.emu.admin().operations();
    let throttled = log.iter().filter(|o| o.status == 429).count();
    let created = log
        .iter()
        .filter(|o| o.method == "POST" && o.path == "/v1.0/users" && o.status == 201)
        .count();
    let stats = env.target.transport_stats();
    (throttled, created, stats, env)
}

#[tokio::test]
async fn the_early_warning_slows_the_client_before_any_429_and_it_recovers_after() {
    // 1,500 writes: well past the 80 % mark of the quota.
    let (throttled, created, stats, env) = run(true, 1_500).await;
    assert_eq!(created, 1_500, "one create per user");
    assert!(stats.pressure_signals > 0, "{stats:?}");
    assert_eq!(
        throttled, 0,
        "slowed down before Graph throttled: {stats:?}"
    );
    assert_eq!(stats.throttled, 0);
    assert!(stats.write_rate < 0.7 * stats.max_write_rate, "{stats:?}");
    // Once the quota has refilled, writes without the warning bring the rate back up.
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    let before = env.target.transport_stats().write_rate;
    let r = env.target.apply(&creates(9_000..9_001)).await;
    assert!(r[0].is_ok(), "{r:?}");
    let after = env.target.transport_stats().write_rate;
    assert!(after > before + 25.0, "rate {before} -> {after}");
}

#[tokio::test]
async fn without_the_warning_429s_happen_and_are_absorbed() {
    // 2,000 writes cannot fit under the quota unless the client is slower than 200/s.
    let (throttled, created, stats, _env) = run(false, 2_000).await;
    assert_eq!(created, 2_000, "one create per user, nothing lost");
    assert!(throttled > 0, "the quota was hit");
    assert_eq!(stats.pressure_signals, 0);
    assert_eq!(stats.throttled as usize, throttled, "{stats:?}");
}
