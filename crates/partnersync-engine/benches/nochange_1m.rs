//! Benchmark binary (not a timed test) for `scripts/bench-engine.sh`: a full no-change cycle
//! over N (default 1,000,000) in-memory source entries against a target and a SQLite state
//! file that already hold every object — issue 6's "plan 1,000,000 source entries against a
//! matching target with no changes".
//!
//! ```text
//! cargo bench -p partnersync-engine --bench nochange_1m -- setup N DIR
//! cargo bench -p partnersync-engine --bench nochange_1m -- measure N DIR
//! ```
//!
//! `setup` builds the directory and a target holding every user as a first sync creates
//! them, then runs the first cycle: a full cycle that hard-matches every user (zero writes)
//! and records all N objects in `DIR/state.db`. `measure` runs in a fresh process, so setup's
//! memory does not count: it builds the same source and target, then times the real code
//! path of the next full cycle, `prepare_cycle` (read, evaluate, load the state, list the
//! target, match, plan) and `execute_cycle` (guard, apply nothing, record), and prints
//! `key value` lines: times, resident memory (the fixtures alone, and the peak while
//! planning, reset with `/proc/self/clear_refs` after the fixtures are built), and the
//! writes the cycle made.
//!
//! The allocator is mimalloc, as in the `partnersync` binary.

mod fixture;

#[global_allocator]
static GLOBAL: fixture::CountingAlloc = fixture::CountingAlloc;

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use partnersync_engine::{
    execute_cycle, prepare_cycle, run_cycle, CycleHooks, SqliteStateStore, StateStore,
};
use partnersync_target::block_on;

fn main() -> ExitCode {
    // `cargo bench` passes `--bench`; the rest are ours.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let (Some(command), Some(n), Some(dir)) = (args.first(), args.get(1), args.get(2)) else {
        eprintln!("usage: nochange_1m setup|measure N DIR");
        return ExitCode::from(2);
    };
    let Ok(n) = n.replace('_', "").parse::<u64>() else {
        eprintln!("N must be a number, not {n:?}");
        return ExitCode::from(2);
    };
    let result = match command.as_str() {
        "setup" => setup(n, Path::new(dir)),
        "measure" => measure(n, Path::new(dir), false),
        "measure-materialised" => measure(n, Path::new(dir), true),
        "reference" => reference(n, Some(Path::new(dir))),
        other => Err(format!(
            "unknown command {other:?}; use setup, measure, measure-materialised or reference"
        )),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nochange_1m: {e}");
            ExitCode::FAILURE
        }
    }
}

fn setup(n: u64, dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for name in ["state.db", "state.db-wal", "state.db-shm"] {
        let _ = std::fs::remove_file(dir.join(name));
    }
    let rules = fixture::rules();
    // The generated users must be exactly what a first sync creates from the rules.
    let sample = fixture::entries(n.min(1000));
    let expected = fixture::target_matching(&rules, &sample);
    let expected = block_on(partnersync_target::TargetDirectory::list_managed(&expected))
        .map_err(|e| e.to_string())?;
    for (i, want) in (1..).zip(&expected) {
        if &fixture::user(i) != want {
            return Err(format!(
                "fixture::user({i}) differs from what the rules create: {:?} vs {want:?}",
                fixture::user(i)
            ));
        }
    }
    let (source, target) = (fixture::GeneratedSource(n), fixture::GeneratedTarget(n));
    let mut state = SqliteStateStore::open(&dir.join("state.db")).map_err(|e| e.to_string())?;
    let t = Instant::now();
    let report = block_on(run_cycle(
        &source,
        &target,
        &rules,
        &mut state,
        &fixture::full_cycle(),
    ))
    .map_err(|e| e.to_string())?;
    println!("setup_first_cycle_s {:.2}", t.elapsed().as_secs_f64());
    println!("setup_first_cycle_writes {}", report.attempted);
    let objects = state.object_count().map_err(|e| e.to_string())?;
    println!("setup_state_objects {objects}");
    if objects as u64 != n || report.attempted != 0 {
        return Err(format!(
            "the first cycle should adopt all {n} users without writing; it recorded {objects} and wrote {}",
            report.attempted
        ));
    }
    Ok(())
}

/// What the parts cost on their own: a full read of the in-memory source into a sink that
/// drops every entry, the target's listing of managed users, and a scan of the state file.
fn reference(n: u64, dir: Option<&Path>) -> Result<(), String> {
    struct Drop(usize);
    impl partnersync_source::EntrySink for Drop {
        fn entry(
            &mut self,
            _: partnersync_core::Entry,
        ) -> Result<(), partnersync_source::SinkError> {
            self.0 += 1;
            Ok(())
        }
        fn deleted(
            &mut self,
            _: partnersync_core::Anchor,
        ) -> Result<(), partnersync_source::SinkError> {
            Ok(())
        }
    }
    // What the generators cost by themselves (they stand in for servers; this part of
    // `measure`'s time is theirs, not the engine's).
    let t = Instant::now();
    let mut sink = Drop(0);
    block_on(partnersync_source::SourceDirectory::full_read(
        &fixture::GeneratedSource(n),
        &mut sink,
    ))
    .map_err(|e| e.to_string())?;
    println!("generated_source_read_s {:.2}", t.elapsed().as_secs_f64());
    let t = Instant::now();
    block_on(partnersync_target::TargetDirectory::list_managed_each(
        &fixture::GeneratedTarget(n),
        &mut |u| {
            std::hint::black_box(u);
            Ok(())
        },
    ))
    .map_err(|e| e.to_string())?;
    println!("generated_target_list_s {:.2}", t.elapsed().as_secs_f64());
    let rules = fixture::rules();
    let (source, target) = fixture::in_sync(&rules, n);
    let base = fixture::heap_mib();
    println!("fixtures_heap_mib {base:.0}");
    println!("fixtures_rss_mib {:.0}", fixture::rss_mib());
    fixture::reset_peaks();
    let t = Instant::now();
    let mut sink = Drop(0);
    block_on(partnersync_source::SourceDirectory::full_read(
        &source, &mut sink,
    ))
    .map_err(|e| e.to_string())?;
    println!("source_read_s {:.2}", t.elapsed().as_secs_f64());
    println!(
        "source_read_heap_peak_over_fixtures_mib {:.0}",
        fixture::heap_peak_mib() - base
    );
    fixture::reset_peaks();
    let t = Instant::now();
    let listing = block_on(partnersync_target::TargetDirectory::list_managed(&target))
        .map_err(|e| e.to_string())?;
    println!("target_list_s {:.2}", t.elapsed().as_secs_f64());
    println!("target_list_users {}", listing.len());
    println!("target_list_heap_mib {:.0}", fixture::heap_mib() - base);
    drop(listing);
    if let Some(dir) = dir {
        let state = SqliteStateStore::open(&dir.join("state.db")).map_err(|e| e.to_string())?;
        let t = Instant::now();
        let mut rows = 0usize;
        state
            .scan_objects(&mut |_| {
                rows += 1;
                Ok(())
            })
            .map_err(|e| e.to_string())?;
        println!("state_scan_s {:.2}", t.elapsed().as_secs_f64());
        println!("state_scan_rows {rows}");
    }
    Ok(())
}

/// A no-change full cycle. The source and target are generated as they are read
/// (`GeneratedSource`, `GeneratedTarget`: like a directory server and a tenant, they hold
/// nothing in this process), or with `materialised` the `InMemorySource` and
/// `InMemoryTarget` holding every entry and user (about 3.3 GB by themselves at 1M).
fn measure(n: u64, dir: &Path, materialised: bool) -> Result<(), String> {
    let rules = fixture::rules();
    let t = Instant::now();
    let in_memory = materialised.then(|| fixture::in_sync(&rules, n));
    let generated = (fixture::GeneratedSource(n), fixture::GeneratedTarget(n));
    let (source, target): (
        &dyn partnersync_source::SourceDirectory,
        &dyn partnersync_target::TargetDirectory,
    ) = match &in_memory {
        Some((source, target)) => (source, target),
        None => (&generated.0, &generated.1),
    };
    println!(
        "fixtures {}",
        if materialised {
            "materialised"
        } else {
            "generated"
        }
    );
    println!("fixtures_s {:.2}", t.elapsed().as_secs_f64());
    let mut state = SqliteStateStore::open(&dir.join("state.db")).map_err(|e| e.to_string())?;
    let objects = state.object_count().map_err(|e| e.to_string())?;
    if objects as u64 != n {
        return Err(format!(
            "{} holds {objects} objects, not {n}: run setup first",
            dir.display()
        ));
    }
    println!("entries {n}");
    println!("state_objects {objects}");
    let fixtures_heap = fixture::heap_mib();
    println!("fixtures_heap_mib {fixtures_heap:.0}");
    println!("fixtures_rss_mib {:.0}", fixture::rss_mib());
    // From here on, VmHWM and the heap peak are the cycle's (with the fixtures resident).
    let reset = fixture::reset_peaks();
    println!("peak_reset {}", if reset { "yes" } else { "no" });

    let options = fixture::full_cycle();
    let (t, cpu, all_cpu) = (
        Instant::now(),
        fixture::thread_cpu_s(),
        fixture::process_cpu_s(),
    );
    let prepared = block_on(prepare_cycle(source, target, &rules, &mut state, &options))
        .map_err(|e| e.to_string())?;
    let prepare_s = t.elapsed().as_secs_f64();
    let prepare_cpu_s = fixture::thread_cpu_s() - cpu;
    println!("prepare_s {prepare_s:.2}");
    println!("prepare_cpu_s {prepare_cpu_s:.2}");
    println!(
        "prepare_all_threads_cpu_s {:.2}",
        fixture::process_cpu_s() - all_cpu
    );
    println!("prepare_peak_rss_mib {:.0}", fixture::peak_rss_mib());
    println!(
        "prepare_heap_peak_over_fixtures_mib {:.0}",
        fixture::heap_peak_mib() - fixtures_heap
    );
    println!("mode {}", prepared.mode);
    println!("source_entries {}", prepared.source_entries);
    println!("planned_actions {}", prepared.plan.actions.len());
    println!("planned_errors {}", prepared.plan.errors.len());

    let (t, cpu) = (Instant::now(), fixture::thread_cpu_s());
    let report = block_on(execute_cycle(
        prepared,
        target,
        &mut state,
        &options,
        &CycleHooks::default(),
    ))
    .map_err(|e| e.to_string())?;
    let execute_s = t.elapsed().as_secs_f64();
    let execute_cpu_s = fixture::thread_cpu_s() - cpu;
    println!("execute_s {execute_s:.2}");
    println!("execute_cpu_s {execute_cpu_s:.2}");
    println!("cycle_s {:.2}", prepare_s + execute_s);
    println!("cycle_cpu_s {:.2}", prepare_cpu_s + execute_cpu_s);
    println!("cycle_peak_rss_mib {:.0}", fixture::peak_rss_mib());
    println!(
        "cycle_heap_peak_over_fixtures_mib {:.0}",
        fixture::heap_peak_mib() - fixtures_heap
    );
    println!("writes_attempted {}", report.attempted);
    if let Some((_, target)) = &in_memory {
        println!("target_log_writes {}", target.log().len());
    }
    Ok(())
}
