//! HTTP glue: one axum fallback handler that does what IIS/HTTP.sys and Graph's front door do
//! (411, body limits, request ids, faults, authentication), then dispatches to the token
//! endpoint, the admin API or the Graph handlers. Also start-up, shutdown and persistence.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body as AxumBody, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use axum::serve::ListenerExt;
use axum::Router;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::admin::{self, Operation};
use crate::api::{self, ApiRequest, ApiResponse, Body, ODATA_JSON};
use crate::auth;
use crate::config::{EmulatorConfig, Settings, TenantConfig};
use crate::error::{Error, GraphError};
use crate::faults::{Fault, FaultInjector};
use crate::store::Directory;
use crate::throttle::Throttler;
use crate::util::{self, SplitMix64};

/// Locks a mutex, recovering the data if another thread panicked while holding it.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// State shared by all requests.
pub(crate) struct Shared {
    pub tenant: TenantConfig,
    pub base_url: String,
    pub dir: Mutex<Directory>,
    pub settings: Mutex<Settings>,
    pub throttle: Mutex<Throttler>,
    pub faults: Mutex<FaultInjector>,
    pub log: Mutex<Vec<Operation>>,
    /// Seeded: batch shuffling (reproducible).
    pub rng: Mutex<SplitMix64>,
    /// Time-seeded: request ids (unique across runs).
    pub ids: Mutex<SplitMix64>,
    pub dirty: AtomicBool,
    pub op_seq: AtomicU64,
    pub state_file: Option<PathBuf>,
}

impl Shared {
    pub(crate) fn new_id(&self) -> String {
        lock(&self.ids).guid()
    }

    pub(crate) fn mark_dirty(&self) {
        self.dirty.store(true, Ordering::Release);
    }

    pub(crate) fn settings(&self) -> Settings {
        lock(&self.settings).clone()
    }

    pub(crate) fn record(
        &self,
        method: &str,
        path: &str,
        query: &str,
        status: u16,
        client_id: Option<&str>,
        batch_item: Option<&str>,
    ) {
        let seq = self.op_seq.fetch_add(1, Ordering::Relaxed) + 1;
        let op = Operation {
            seq,
            method: method.to_string(),
            path: path.to_string(),
            query: query.to_string(),
            status,
            client_id: client_id.map(str::to_string),
            batch_item: batch_item.map(str::to_string),
            at: util::iso_z(chrono::Utc::now()),
        };
        let cap = lock(&self.settings).max_log_entries.max(1);
        let mut log = lock(&self.log);
        if log.len() >= cap {
            let excess = log.len() + 1 - cap;
            // Drop a tenth extra so trimming is amortised.
            let n = (excess + cap / 10).min(log.len());
            log.drain(..n);
        }
        log.push(op);
    }

    /// Writes the state file if there is one (atomically: temp file + rename).
    pub(crate) fn save(&self) -> Result<(), Error> {
        let Some(path) = &self.state_file else {
            return Ok(());
        };
        let text = {
            let dir = lock(&self.dir);
            let file = StateFileRef {
                format: STATE_FORMAT,
                tenant_id: &self.tenant.tenant_id,
                directory: &dir,
            };
            serde_json::to_string(&file).map_err(|e| Error::State {
                path: path.display().to_string(),
                message: e.to_string(),
            })?
        };
        let tmp = path.with_extension("tmp");
        let io = |source| Error::Io {
            path: path.display().to_string(),
            source,
        };
        std::fs::write(&tmp, text).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)?;
        Ok(())
    }
}

const STATE_FORMAT: u32 = 1;

#[derive(Serialize)]
struct StateFileRef<'a> {
    format: u32,
    tenant_id: &'a str,
    directory: &'a Directory,
}

#[derive(Deserialize)]
struct StateFile {
    format: u32,
    tenant_id: String,
    directory: Directory,
}

fn load_state(
    path: &std::path::Path,
    tenant: &TenantConfig,
    seed: u64,
) -> Result<Directory, Error> {
    if !path.exists() {
        return Ok(Directory::new(seed));
    }
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.display().to_string(),
        source,
    })?;
    let bad = |message: String| Error::State {
        path: path.display().to_string(),
        message,
    };
    let file: StateFile = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    if file.format != STATE_FORMAT {
        return Err(bad(format!("unsupported format {}", file.format)));
    }
    if !file.tenant_id.eq_ignore_ascii_case(&tenant.tenant_id) {
        return Err(bad(format!(
            "the file belongs to tenant {}, not {}",
            file.tenant_id, tenant.tenant_id
        )));
    }
    let mut dir = file.directory;
    dir.reindex();
    Ok(dir)
}

/// A running server.
pub(crate) struct Running {
    pub shared: Arc<Shared>,
    pub addr: SocketAddr,
    pub shutdown: tokio::sync::watch::Sender<bool>,
    pub server: tokio::task::JoinHandle<()>,
}

pub(crate) async fn start(config: EmulatorConfig) -> Result<Running, Error> {
    config.tenant.validate()?;
    if !config.listen.ip().is_loopback() {
        return Err(Error::Listen {
            addr: config.listen.to_string(),
            message: "only loopback addresses are allowed".to_string(),
        });
    }
    let dir = match &config.state_file {
        Some(p) => load_state(p, &config.tenant, config.seed)?,
        None => Directory::new(config.seed),
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| Error::Listen {
            addr: config.listen.to_string(),
            message: e.to_string(),
        })?;
    let addr = listener.local_addr().map_err(|e| Error::Listen {
        addr: config.listen.to_string(),
        message: e.to_string(),
    })?;
    let shared = Arc::new(Shared {
        tenant: config.tenant.clone(),
        base_url: format!("http://{addr}"),
        dir: Mutex::new(dir),
        settings: Mutex::new(config.settings.clone()),
        throttle: Mutex::new(Throttler::default()),
        faults: Mutex::new(FaultInjector::new(config.seed)),
        log: Mutex::new(Vec::new()),
        rng: Mutex::new(SplitMix64::new(config.seed ^ 0x0005_EED0_F1D5)),
        ids: Mutex::new(SplitMix64::from_time()),
        dirty: AtomicBool::new(false),
        op_seq: AtomicU64::new(0),
        state_file: config.state_file.clone(),
    });
    let (tx, mut rx) = tokio::sync::watch::channel(false);
    let app = Router::new().fallback(entry).with_state(shared.clone());
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let persist = shared.clone();
    let mut persist_rx = tx.subscribe();
    let server = tokio::spawn(async move {
        // Persist dirty state every 500 ms while running.
        let saver = tokio::spawn(async move {
            if persist.state_file.is_none() {
                return;
            }
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    _ = persist_rx.changed() => break,
                }
                if persist.dirty.swap(false, Ordering::AcqRel) {
                    if let Err(e) = persist.save() {
                        eprintln!("partnersync-graph-emulator: {e}");
                    }
                }
            }
        });
        let shutdown = async move {
            while !*rx.borrow() {
                if rx.changed().await.is_err() {
                    break;
                }
            }
        };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            eprintln!("partnersync-graph-emulator: server error: {e}");
        }
        saver.abort();
    });
    Ok(Running {
        shared,
        addr,
        shutdown: tx,
        server,
    })
}

/// A body that fails on first poll: hyper then aborts the connection (a "dropped" response).
struct DroppedBody;

impl HttpBody for DroppedBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Poll::Ready(Some(Err(std::io::Error::other(
            "connection dropped by fault injection",
        ))))
    }
}

/// How long a request body may take to arrive.
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Bodies up to this size are read completely even when over the limit, so that the client
/// receives the 413 rather than a connection reset.
const DRAIN_CAP: usize = 64 * 1024 * 1024;

const LENGTH_REQUIRED_PAGE: &str = "<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 4.01//EN\"\"http://www.w3.org/TR/html4/strict.dtd\">\r\n<HTML><HEAD><TITLE>Length Required</TITLE>\r\n<META HTTP-EQUIV=\"Content-Type\" Content=\"text/html; charset=us-ascii\"></HEAD>\r\n<BODY><h2>Length Required</h2>\r\n<hr><p>HTTP Error 411. The request must be chunked or have a content length.</p>\r\n</BODY></HTML>\r\n";

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Body,
    content_type: Option<&'static str>,
}

impl Reply {
    fn from_api(r: ApiResponse) -> Self {
        Reply {
            status: r.status,
            headers: r.headers,
            body: r.body,
            content_type: Some(ODATA_JSON),
        }
    }

    fn from_error(e: &GraphError, request_id: &str, client_request_id: &str) -> Self {
        Reply {
            status: e.status,
            headers: e.headers.clone(),
            body: Body::Json(e.body(request_id, client_request_id)),
            content_type: Some("application/json"),
        }
    }

    fn json(status: u16, v: Value) -> Self {
        Reply {
            status,
            headers: Vec::new(),
            body: Body::Json(v),
            content_type: Some("application/json; charset=utf-8"),
        }
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

async fn entry(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let method = parts.method.as_str().to_ascii_uppercase();
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().unwrap_or("").to_string();
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let request_id = shared.new_id();
    let client_request_id = header(&headers, "client-request-id")
        .map(str::to_string)
        .unwrap_or_else(|| request_id.clone());
    let settings = shared.settings();
    let has_length = header(&headers, "content-length").is_some()
        || header(&headers, "transfer-encoding").is_some();

    // `Err(true)`: too large; `Err(false)`: the client stopped sending (timed out).
    let read_body = |body: AxumBody, limit: usize| async move {
        match tokio::time::timeout(BODY_READ_TIMEOUT, axum::body::to_bytes(body, limit)).await {
            Ok(Ok(bytes)) => Ok(bytes),
            Ok(Err(_)) => Err(true),
            Err(_) => Err(false),
        }
    };

    // The admin API: not authenticated, not logged, not subject to faults.
    if path.starts_with("/_emulator") {
        let bytes = read_body(body, DRAIN_CAP).await.unwrap_or_default();
        let (status, value) = admin::handle_http(&shared, &method, &path, &query, &bytes);
        return build(Reply::json(status, value), &request_id, &client_request_id);
    }

    // Injected faults.
    let mut terminal: Option<Fault> = None;
    let mut latency_ms: u64 = 0;
    let faults = lock(&shared.faults).decide(&method, &path);
    for f in faults {
        match f {
            Fault::Latency { ms } => latency_ms = latency_ms.saturating_add(ms),
            other => terminal = Some(other),
        }
    }
    if latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(latency_ms)).await;
    }
    match terminal {
        Some(Fault::Drop) => {
            shared.record(&method, &path, &query, 0, None, None);
            return Response::new(AxumBody::new(DroppedBody));
        }
        Some(Fault::Status {
            status,
            retry_after,
        }) => {
            let e = api::fault_error(status, retry_after, &settings);
            shared.record(&method, &path, &query, status, None, None);
            return build(
                Reply::from_error(&e, &request_id, &client_request_id),
                &request_id,
                &client_request_id,
            );
        }
        Some(Fault::Latency { .. }) | None => {}
    }

    // HTTP.sys rejects a POST/PUT with neither a body length nor chunked encoding.
    if (method == "POST" || method == "PUT") && !has_length {
        shared.record(&method, &path, &query, 411, None, None);
        return build(
            Reply {
                status: 411,
                headers: Vec::new(),
                body: Body::Text(LENGTH_REQUIRED_PAGE.to_string()),
                content_type: Some("text/html; charset=us-ascii"),
            },
            &request_id,
            &client_request_id,
        );
    }
    // Read (and drain) up to a hard cap so the client gets the 413 instead of a reset.
    let bytes = match read_body(body, DRAIN_CAP.max(settings.max_body_bytes)).await {
        Ok(b) => Ok(b),
        Err(true) => Err(true),
        Err(false) => {
            let e = GraphError::new(
                408,
                "RequestTimeout",
                "The request body was not received in time.",
            );
            shared.record(&method, &path, &query, 408, None, None);
            return build(
                Reply::from_error(&e, &request_id, &client_request_id),
                &request_id,
                &client_request_id,
            );
        }
    };
    let Some(bytes) = bytes.ok().filter(|b| b.len() <= settings.max_body_bytes) else {
        let e = GraphError::new(
            413,
            "Request_EntityTooLarge",
            format!(
                "The request body exceeds the maximum allowed size of {} bytes.",
                settings.max_body_bytes
            ),
        );
        shared.record(&method, &path, &query, 413, None, None);
        return build(
            Reply::from_error(&e, &request_id, &client_request_id),
            &request_id,
            &client_request_id,
        );
    };

    let (reply, client_id, latency) = dispatch(
        &shared,
        &settings,
        &method,
        &path,
        &query,
        &headers,
        &bytes,
        &request_id,
        &client_request_id,
    );
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    shared.record(
        &method,
        &path,
        &query,
        reply.status,
        client_id.as_deref(),
        None,
    );
    build(reply, &request_id, &client_request_id)
}

#[allow(clippy::too_many_arguments)]
fn dispatch(
    shared: &Shared,
    settings: &Settings,
    method: &str,
    path: &str,
    query: &str,
    headers: &[(String, String)],
    body: &[u8],
    request_id: &str,
    client_request_id: &str,
) -> (Reply, Option<String>, Duration) {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let err = |e: GraphError| Reply::from_error(&e, request_id, client_request_id);
    // Token endpoint and discovery document.
    match segs.as_slice() {
        [tenant, "oauth2", "v2.0", "token"] => {
            if method != "POST" {
                return (
                    Reply::json(
                        405,
                        json!({"error": "invalid_request", "error_description": "AADSTS900561: The endpoint only accepts POST requests."}),
                    ),
                    None,
                    Duration::ZERO,
                );
            }
            let key = lock(&shared.dir).token_key;
            let reply = match auth::token_endpoint(
                &shared.tenant,
                &shared.base_url,
                key,
                settings.token_lifetime_secs,
                tenant,
                header(headers, "authorization"),
                body,
            ) {
                Ok(v) => Reply::json(200, v),
                Err(e) => Reply::json(e.status, e.body),
            };
            return (reply, None, Duration::ZERO);
        }
        [tenant, "v2.0", ".well-known", "openid-configuration"]
            if auth::tenant_matches(&shared.tenant, tenant) =>
        {
            let base = &shared.base_url;
            let tid = &shared.tenant.tenant_id;
            return (
                Reply::json(
                    200,
                    json!({
                        "token_endpoint": format!("{base}/{tid}/oauth2/v2.0/token"),
                        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
                        "issuer": format!("https://login.microsoftonline.com/{tid}/v2.0"),
                        "authorization_endpoint": format!("{base}/{tid}/oauth2/v2.0/authorize"),
                        "jwks_uri": format!("{base}/{tid}/discovery/v2.0/keys"),
                        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                        "tenant_region_scope": "EU",
                    }),
                ),
                None,
                Duration::ZERO,
            );
        }
        _ => {}
    }
    let version_ok = segs
        .first()
        .is_some_and(|s| s.eq_ignore_ascii_case("v1.0") || s.eq_ignore_ascii_case("beta"));
    if !version_ok {
        return (
            err(GraphError::new(400, "BadRequest", "Invalid version.")),
            None,
            Duration::ZERO,
        );
    }
    let key = lock(&shared.dir).token_key;
    let app = match auth::verify(header(headers, "authorization"), &shared.tenant, key) {
        Ok(app) => app,
        Err(e) => return (err(e), None, Duration::ZERO),
    };
    let prefix = if segs[0].eq_ignore_ascii_case("beta") {
        "/beta"
    } else {
        "/v1.0"
    };
    let is_batch = segs.len() == 2
        && util::percent_decode(segs[1], false).is_some_and(|s| s.eq_ignore_ascii_case("$batch"));
    if is_batch && method == "POST" {
        return match api::batch(shared, &app, settings, body, prefix, client_request_id) {
            Ok(out) => (
                Reply::from_api(out.response),
                Some(app.client_id),
                out.latency,
            ),
            Err(e) => (err(e), Some(app.client_id), Duration::ZERO),
        };
    }
    let req = ApiRequest {
        method,
        path,
        query,
        headers,
        body,
    };
    let reply = match api::handle(shared, &app, settings, &req) {
        Ok(r) => Reply::from_api(r),
        Err(e) => err(e),
    };
    (reply, Some(app.client_id), Duration::ZERO)
}

fn build(reply: Reply, request_id: &str, client_request_id: &str) -> Response {
    let mut content_type = reply.content_type;
    let mut extra = reply.headers;
    if let Some(i) = extra
        .iter()
        .position(|(k, _)| k.eq_ignore_ascii_case("content-type"))
    {
        let (_, v) = extra.remove(i);
        content_type = None;
        extra.push(("Content-Type".into(), v));
    }
    let body = match reply.body {
        Body::Empty => AxumBody::empty(),
        Body::Json(v) => AxumBody::from(serde_json::to_vec(&v).unwrap_or_default()),
        Body::Text(t) => AxumBody::from(t),
    };
    let has_body = !matches!(reply.status, 204 | 304);
    let mut resp = Response::new(if has_body { body } else { AxumBody::empty() });
    *resp.status_mut() =
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = resp.headers_mut();
    let mut put = |k: &str, v: &str| {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(k), HeaderValue::try_from(v)) {
            h.append(name, value);
        }
    };
    if has_body {
        if let Some(ct) = content_type {
            put("Content-Type", ct);
        }
    }
    put("request-id", request_id);
    put("client-request-id", client_request_id);
    put(
        "x-ms-ags-diagnostic",
        r#"{"ServerInfo":{"DataCenter":"Local","Slice":"E","Ring":"0","ScaleUnit":"000","RoleInstance":"partnersync-graph-emulator"}}"#,
    );
    put("Cache-Control", "no-cache");
    for (k, v) in &extra {
        put(k, v);
    }
    resp
}
