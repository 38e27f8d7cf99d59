//! Fault tests: 429 storms with fractional Retry-After, 503 bursts, dropped connections and
//! a dead tenant, with the emulator's operation log as the witness.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{anchor, fast_transport, partner, start_configured, start_with};
use partnersync_graph_emulator::{EmulatorConfig, Fault, FaultRule, RetryAfterMode};
use partnersync_target::{
    CreationMode, ErrorCategory, Operation, OperationOutcome, TargetDirectory,
};

fn creates(range: std::ops::Range<u32>) -> Vec<Operation> {
    range
        .map(|n| Operation::Create {
            anchor: anchor(n),
            mode: CreationMode::Direct,
            attributes: partner(n, "contoso.com"),
        })
        .collect()
}

/// A seeded storm on `POST /users`: 40 % 429s with fractional Retry-After, a script of
/// 503/504 bursts and dropped connections (inside a `$batch` the emulator answers a dropped
/// item with 504; a dropped `$batch` request loses the whole batch).
async fn storm(batch_size: usize) {
    let env = start_configured(
        EmulatorConfig::default(),
        None,
        fast_transport(),
        batch_size,
    )
    .await;
    let admin = env.emu.admin();
    admin.update_settings(|s| s.throttling.retry_after = RetryAfterMode::Fractional);
    let burst = |status| {
        Some(Fault::Status {
            status,
            retry_after: None,
        })
    };
    admin.set_faults(vec![
        FaultRule::random(
            "/v1.0/users",
            0.4,
            Fault::Status {
                status: 429,
                retry_after: Some(0.05),
            },
        )
        .with_method("POST"),
        FaultRule::script(
            "/v1.0/users",
            vec![
                burst(503),
                burst(503),
                Some(Fault::Drop),
                None,
                Some(Fault::Drop),
                burst(504),
            ],
        )
        .with_method("POST"),
        FaultRule::script("/v1.0/$batch", vec![None, Some(Fault::Drop), burst(503)]),
    ]);
    let ops = creates(0..60);
    let results = env.target.apply(&ops).await;
    for r in &results {
        assert!(matches!(r, Ok(OperationOutcome::Created { .. })), "{r:?}");
    }
    let log = admin.operations();
    let posts: Vec<_> = log
        .iter()
        .filter(|o| o.method == "POST" && o.path == "/v1.0/users")
        .collect();
    let throttled = posts.iter().filter(|o| o.status == 429).count();
    assert!(throttled >= 10, "the storm hit: {throttled} 429s");
    assert!(posts.iter().any(|o| o.status == 503));
    if batch_size == 1 {
        assert!(posts.iter().any(|o| o.status == 0), "a dropped connection");
    } else {
        assert!(posts.iter().all(|o| o.batch_item.is_some()));
        assert!(log
            .iter()
            .any(|o| o.path == "/v1.0/$batch" && o.status == 0));
    }
    assert_eq!(posts.iter().filter(|o| o.status == 201).count(), 60);
    assert_eq!(admin.count().active, 60, "no duplicate create");
    let mut by_anchor: HashMap<String, usize> = HashMap::new();
    for u in admin.users() {
        *by_anchor
            .entry(
                u["onPremisesImmutableId"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            )
            .or_default() += 1;
    }
    assert!(by_anchor.values().all(|&n| n == 1));
    assert_eq!(by_anchor.len(), 60);
}

#[tokio::test]
async fn storm_ends_every_direct_create_exactly_once() {
    storm(1).await;
}

#[tokio::test]
async fn storm_ends_every_batched_create_exactly_once() {
    storm(20).await;
}

#[tokio::test]
async fn paging_treats_a_429_page_as_a_retry() {
    let env = start_with(EmulatorConfig::default(), None, fast_transport()).await;
    let admin = env.emu.admin();
    let users = (0..1_100u32).map(|n| {
        serde_json::json!({
            "accountEnabled": true,
            "displayName": format!("S {n}"),
            "mailNickname": format!("s{n}"),
            "userPrincipalName": format!("s{n}@contoso.com"),
            "onPremisesImmutableId": anchor(n).to_immutable_id(),
        })
    });
    admin.seed_users(users).expect("seed");
    admin.update_settings(|s| s.throttling.retry_after = RetryAfterMode::Fractional);
    admin.set_faults(vec![FaultRule::script(
        "/v1.0/users",
        vec![
            None,
            Some(Fault::Status {
                status: 429,
                retry_after: Some(0.2),
            }),
        ],
    )
    .with_method("GET")]);
    let started = Instant::now();
    let listed = env.target.list_managed().await.expect("list");
    assert_eq!(listed.len(), 1_100);
    assert!(
        started.elapsed() >= Duration::from_millis(190),
        "Retry-After 0.2 honoured"
    );
}

#[tokio::test]
async fn a_dead_tenant_fails_fast_with_a_clear_error() {
    let mut transport = fast_transport();
    transport.retry_budget = 5.0;
    transport.max_attempts = 50;
    let env = start_with(EmulatorConfig::default(), None, transport).await;
    let admin = env.emu.admin();
    admin.set_faults(vec![FaultRule::random(
        "/v1.0/*",
        1.0,
        Fault::Status {
            status: 503,
            retry_after: None,
        },
    )]);
    let started = Instant::now();
    let results = env.target.apply(&creates(0..20)).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    for r in &results {
        let e = r.as_ref().expect_err("dead tenant");
        assert_eq!(e.category, ErrorCategory::Transient);
    }
    assert!(results.iter().any(|r| r
        .as_ref()
        .err()
        .is_some_and(|e| e.message.contains("retry budget exhausted"))));
    let attempts = admin
        .operations()
        .iter()
        .filter(|o| o.path == "/v1.0/users")
        .count();
    assert!(attempts <= 20 + 5, "{attempts} attempts");
}

#[tokio::test]
async fn write_rate_is_bounded_by_the_token_bucket() {
    let mut transport = fast_transport();
    transport.writes_per_second = 40.0;
    let env = start_with(EmulatorConfig::default(), None, transport).await;
    let started = Instant::now();
    let results = env.target.apply(&creates(0..80)).await;
    assert!(results.iter().all(|r| r.is_ok()));
    // 40 in the initial burst, 40 more at 40/s.
    let secs = started.elapsed().as_secs_f64();
    assert!(secs >= 0.9, "{secs} s");
}
