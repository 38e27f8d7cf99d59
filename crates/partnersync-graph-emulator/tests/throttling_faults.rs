//! Checklist §7 item 13: throttling (quota under concurrency, Retry-After modes, headers,
//! time scale) and seeded fault injection through the handle and the admin API.

mod common;

use std::time::{Duration, Instant};

use common::*;
use partnersync_graph_emulator::{Fault, FaultRule, RetryAfterMode};
use serde_json::{json, Value};

#[tokio::test]
async fn item13_write_quota_holds_under_concurrent_clients() {
    let mut cfg = config();
    // 30 writes per 3,000 s: no token refills while the test runs, however slow the machine.
    cfg.settings.throttling.app_write_limit = 30;
    cfg.settings.throttling.app_write_window_secs = 3_000.0;
    let env = start_with(cfg).await;
    let mut tasks = Vec::new();
    for c in 0..8 {
        let http = env.http.clone();
        let url = env.url("/users");
        let token = env.token.clone();
        tasks.push(tokio::spawn(async move {
            let mut codes = Vec::new();
            for i in 0..10 {
                let r = http
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&user(&format!("c{c}n{i}")))
                    .send()
                    .await
                    .expect("send");
                let status = r.status().as_u16();
                if status == 429 {
                    let ra = r
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string();
                    let scope = r
                        .headers()
                        .get("x-ms-throttle-scope")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string();
                    let v: Value = r.json().await.expect("json");
                    assert_eq!(v["error"]["code"], "TooManyRequests");
                    assert_eq!(v["error"]["message"], "Please retry again later.");
                    assert_eq!(v["error"]["innerError"]["status"], "429");
                    assert!(
                        ra.parse::<u64>().is_ok_and(|s| s >= 1),
                        "integer Retry-After: {ra}"
                    );
                    assert!(scope.starts_with("Tenant_Application/Write/"), "{scope}");
                }
                codes.push(status);
            }
            codes
        }));
    }
    let mut ok = 0;
    let mut throttled = 0;
    for t in tasks {
        for s in t.await.expect("task") {
            match s {
                201 => ok += 1,
                429 => throttled += 1,
                other => panic!("unexpected {other}"),
            }
        }
    }
    assert_eq!(ok, 30, "exactly the quota succeeds");
    assert_eq!(throttled, 50);
    assert_eq!(env.emu.admin().count().active, 30);
}

#[tokio::test]
async fn item13_time_scale_and_fractional_retry_after() {
    let mut cfg = config();
    cfg.settings.throttling.app_write_limit = 3;
    cfg.settings.throttling.time_scale = 30.0; // 150 s window → 5 s: one write per 1.67 s
    cfg.settings.throttling.retry_after = RetryAfterMode::Fractional;
    cfg.settings.throttling.charge_while_throttled = false;
    let env = start_with(cfg).await;
    for i in 0..3 {
        assert_eq!(
            env.post("/users", &user(&format!("t{i}"))).await.status,
            201
        );
    }
    let r = env.post("/users", &user("t3")).await;
    assert_eq!(r.status, 429);
    let ra: f64 = r
        .header("retry-after")
        .unwrap_or_default()
        .parse()
        .expect("fractional");
    assert!(
        ra > 0.0 && ra <= 1.7,
        "one write refills in 1.67 s at 30x: {ra}"
    );
    assert_eq!(
        r.header("x-ms-throttle-information").as_deref(),
        Some("WriteLimitExceeded")
    );
    tokio::time::sleep(Duration::from_secs_f64(ra + 0.02)).await;
    assert_eq!(
        env.post("/users", &user("t3")).await.status,
        201,
        "honouring Retry-After succeeds"
    );
    // Reads have their own resource-unit budget and report their cost.
    let g = env.get("/users?$select=id&$top=5").await;
    assert_eq!(g.header("x-ms-resource-unit").as_deref(), Some("1"));
    assert_eq!(
        env.get("/users")
            .await
            .header("x-ms-resource-unit")
            .as_deref(),
        Some("2")
    );
}

#[tokio::test]
async fn item13_invitation_quota() {
    let mut cfg = config();
    cfg.settings.throttling.invitation_limit = 2;
    cfg.settings.throttling.invitation_window_secs = 600.0;
    let env = start_with(cfg).await;
    let inv = |n: u32| json!({"invitedUserEmailAddress": format!("g{n}@fabrikam.com"), "inviteRedirectUrl": "https://x.example"});
    assert_eq!(env.post("/invitations", &inv(1)).await.status, 201);
    assert_eq!(env.post("/invitations", &inv(2)).await.status, 201);
    assert_eq!(env.post("/invitations", &inv(3)).await.status, 429);
}

#[tokio::test]
async fn faults_scripts_and_seeded_probabilities() {
    let env = start().await;
    let admin = env.emu.admin();
    admin.set_faults(vec![FaultRule::script(
        "/v1.0/users",
        vec![
            Some(Fault::Status {
                status: 429,
                retry_after: Some(2.0),
            }),
            Some(Fault::Status {
                status: 503,
                retry_after: None,
            }),
            Some(Fault::Status {
                status: 504,
                retry_after: None,
            }),
            Some(Fault::Latency { ms: 200 }),
            Some(Fault::Drop),
            None,
        ],
    )
    .with_method("GET")]);
    let r = env.get("/users").await;
    assert_error(&r, 429, "TooManyRequests", "Please retry again later.");
    assert_eq!(r.header("retry-after").as_deref(), Some("2"));
    assert_error(
        &env.get("/users").await,
        503,
        "serviceNotAvailable",
        "The service is temporarily unavailable. Please retry later.",
    );
    assert_eq!(env.get("/users").await.status, 504);
    let t = Instant::now();
    assert_eq!(env.get("/users").await.status, 200);
    assert!(t.elapsed() >= Duration::from_millis(200));
    let dropped = env
        .http
        .get(env.url("/users"))
        .bearer_auth(&env.token)
        .send()
        .await;
    let failed = match dropped {
        Err(_) => true,
        Ok(r) => r.text().await.is_err(),
    };
    assert!(failed, "dropped connection is an error for the client");
    assert_eq!(env.get("/users").await.status, 200);
    // POSTs were not matched by the GET-only rule.
    assert_eq!(env.post("/users", &user("f")).await.status, 201);
    let ops = admin.operations();
    let statuses: Vec<u16> = ops
        .iter()
        .filter(|o| o.method == "GET" && o.path == "/v1.0/users")
        .map(|o| o.status)
        .collect();
    assert_eq!(statuses, vec![429, 503, 504, 200, 0, 200]);

    // Seeded randomness: same seed, same storm.
    let storm = |seed: u64| {
        let admin = admin.clone();
        let env = &env;
        async move {
            admin.reseed(seed);
            admin.set_faults(vec![FaultRule::random(
                "/v1.0/users*",
                0.5,
                Fault::Status {
                    status: 500,
                    retry_after: None,
                },
            )]);
            let mut out = Vec::new();
            for _ in 0..20 {
                out.push(env.get("/users?$top=1").await.status);
            }
            out
        }
    };
    let a = storm(7).await;
    let b = storm(7).await;
    assert_eq!(a, b);
    assert!(a.contains(&500) && a.contains(&200));
    admin.clear_faults();
}

#[tokio::test]
async fn faults_through_the_admin_http_api() {
    let env = start().await;
    let base = env.emu.base_url();
    let rule = json!([{"method": "POST", "path": "/v1.0/users", "script": [{"type": "status", "status": 500}]}]);
    let r = env
        .http
        .put(format!("{base}/_emulator/faults"))
        .json(&rule)
        .send()
        .await
        .expect("put");
    assert_eq!(r.status().as_u16(), 200);
    let r = env.post("/users", &user("x")).await;
    assert_error(
        &r,
        500,
        "UnknownError",
        "An internal server error occurred. Please retry later.",
    );
    assert_eq!(env.post("/users", &user("x")).await.status, 201);
    let listed: Value = env
        .http
        .get(format!("{base}/_emulator/faults"))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(listed["value"][0]["path"], "/v1.0/users");
    // Settings over HTTP: switch throttling off and query mode to lenient.
    let s: Value = env
        .http
        .patch(format!("{base}/_emulator/settings"))
        .json(&json!({"throttling": {"enabled": false}, "query_mode": "lenient"}))
        .send()
        .await
        .expect("patch")
        .json()
        .await
        .expect("json");
    assert_eq!(s["throttling"]["enabled"], false);
    assert_eq!(s["query_mode"], "lenient");
}
