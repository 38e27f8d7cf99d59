//! Throughput figures (ignored by default; run in release):
//! `cargo test --release -p partnersync-graph-emulator --test throughput -- --ignored --nocapture`

mod common;

use std::time::{Duration, Instant};

use common::*;

const CLIENTS: usize = 8;

#[derive(Clone, Copy)]
enum Workload {
    Create,
    /// Walks the whole directory by following nextLinks (100 users per page).
    PagedRead,
    /// A page of a `startsWith` filter that has to skip most of the directory.
    FilteredRead,
    /// `userPrincipalName eq '…'` lookups (answered from the index).
    Lookup,
}

async fn run(env: &Env, workload: Workload, secs: f64) -> (usize, Duration) {
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(secs);
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let http = env.http.clone();
        let base = env.emu.graph_url();
        let token = env.token.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = 0usize;
            let first = format!("{base}/users?$select=id,userPrincipalName&$top=100");
            let mut next: Option<String> = None;
            while Instant::now() < deadline {
                let req = match workload {
                    Workload::Create => http.post(format!("{base}/users")).json(&user(&format!("bench{c}x{n}"))),
                    Workload::PagedRead => http.get(next.clone().unwrap_or_else(|| first.clone())),
                    Workload::Lookup => http.get(format!(
                        "{base}/users?$select=id,userPrincipalName&$filter=userPrincipalName%20eq%20'page{:05}@contoso.com'",
                        n % 10_000 + 1
                    )),
                    Workload::FilteredRead => http.get(format!(
                        "{base}/users?$select=id,userPrincipalName&$top=100&$filter=startswith(userPrincipalName,'page0')"
                    )),
                };
                let resp = req.bearer_auth(&token).send().await.expect("send");
                let status = resp.status().as_u16();
                assert!(status < 300, "status {status}");
                if let Workload::PagedRead = workload {
                    let v: serde_json::Value = resp.json().await.expect("json");
                    next = v["@odata.nextLink"].as_str().map(str::to_string);
                } else {
                    let _ = resp.bytes().await;
                }
                n += 1;
            }
            n
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap_or(0);
    }
    (total, start.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn throughput_creates_and_paged_reads() {
    let mut cfg = config();
    cfg.settings.throttling.enabled = false;
    cfg.settings.max_log_entries = 10_000;
    let env = start_with(cfg).await;
    let (creates, t) = run(&env, Workload::Create, 3.0).await;
    println!(
        "creates: {creates} in {:.2}s = {:.0}/s ({CLIENTS} clients)",
        t.as_secs_f64(),
        creates as f64 / t.as_secs_f64()
    );
    env.emu
        .admin()
        .generate_users(10_000, "page", "contoso.com")
        .expect("seed");
    let users = env.emu.admin().count().active;
    for (name, w) in [
        ("paged reads (nextLink walk, 100/page)", Workload::PagedRead),
        (
            "filtered page reads (startsWith, full scan)",
            Workload::FilteredRead,
        ),
        ("UPN eq lookups", Workload::Lookup),
    ] {
        let (reads, t) = run(&env, w, 3.0).await;
        println!(
            "{name}: {reads} in {:.2}s = {:.0}/s ({CLIENTS} clients, {users} users)",
            t.as_secs_f64(),
            reads as f64 / t.as_secs_f64()
        );
    }
}
