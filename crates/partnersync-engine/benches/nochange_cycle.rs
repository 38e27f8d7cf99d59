//! Criterion bench: planning a full no-change cycle (`prepare_cycle`) over 100,000
//! in-memory entries whose users and state rows already exist — the smaller, repeatable
//! version of `nochange_1m` for tracking regressions.
//!
//! `cargo bench -p partnersync-engine --bench nochange_cycle` (size: PS_BENCH_ENTRIES).

mod fixture;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use partnersync_engine::{prepare_cycle, run_cycle, SqliteStateStore};
use partnersync_target::block_on;

fn nochange_full_cycle(c: &mut Criterion) {
    let n: u64 = std::env::var("PS_BENCH_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let rules = fixture::rules();
    let (source, target) = fixture::in_sync(&rules, n);
    let dir =
        std::env::temp_dir().join(format!("partnersync-nochange-cycle-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut state = SqliteStateStore::open(&dir.join("state.db")).expect("state file");
    let options = fixture::full_cycle();
    // The first cycle adopts every user (no writes) and records them in the state file.
    let first =
        block_on(run_cycle(&source, &target, &rules, &mut state, &options)).expect("first cycle");
    assert_eq!(first.attempted, 0);

    let mut group = c.benchmark_group("nochange_full_cycle");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Elements(n));
    group.bench_function(BenchmarkId::new("prepare_cycle", n), |b| {
        b.iter(|| {
            let prepared = block_on(prepare_cycle(
                &source, &target, &rules, &mut state, &options,
            ))
            .expect("prepare");
            assert!(prepared.plan.is_empty(), "no change, no write");
            prepared
        })
    });
    group.finish();
    std::fs::remove_dir_all(&dir).ok();
}

criterion_group!(benches, nochange_full_cycle);
criterion_main!(benches);
