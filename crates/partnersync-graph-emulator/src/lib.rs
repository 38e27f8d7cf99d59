//! A local, stateful Microsoft Graph for tests and rehearsals.
//!
//! `partnersync-graph-emulator` serves the slice of Microsoft Graph v1.0 that a directory sync
//! uses — `/users` (create, read, update, soft delete, list with `$filter`/`$select`/`$top`/
//! `$count`/paging), `/users/delta`, `/directory/deletedItems` (restore, purge), `/invitations`,
//! `$batch` — plus the OAuth 2.0 client-credentials token endpoint, Graph's throttling limits
//! and a seeded fault injector, all on a loopback port. Tests start it in-process; the binary
//! of the same name serves it to scripts and other languages' Graph SDKs.
//!
//! Two design decisions shape it:
//!
//! * **Fidelity over convenience.** Everything it accepts, real Graph must accept: the same
//!   status codes and error bodies (`{"error":{"code","message","innerError":{…}}}`), the same
//!   advanced-query rules, the same 411 on a body-less POST. One property table
//!   (`schema.rs`) drives validation, projection and `$filter` support so those rules cannot
//!   drift apart. Where Microsoft's behaviour is uncertain, the strict [`QueryMode`] chooses
//!   the reading that rejects more.
//! * **One lock, synchronous handlers.** The directory lives behind a single mutex and every
//!   handler is a plain function over it; `$batch` items run through the same handlers. Only
//!   the HTTP layer (latency faults, dropped connections, shutdown) is async. This keeps the
//!   semantics easy to reason about and still serves thousands of requests per second.
//!
//! ```no_run
//! use partnersync_graph_emulator::{Emulator, EmulatorConfig};
//!
//! # async fn demo() -> Result<(), partnersync_graph_emulator::Error> {
//! let emu = Emulator::start(EmulatorConfig::default()).await?;
//! println!("Graph at {}, tokens from {}", emu.graph_url(), emu.token_url());
//! emu.admin().generate_users(10, "user", "contoso.com")?;
//! assert_eq!(emu.admin().count().active, 10);
//! // … point a Graph client at emu.graph_url() with a token for emu.client_id() …
//! emu.shutdown().await?;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
// The workspace MSRV is 1.80; `Option::is_none_or` (1.82) is not available there.
#![allow(clippy::unnecessary_map_or)]

mod admin;
mod api;
mod auth;
mod cli;
mod config;
mod error;
mod faults;
mod filter;
mod query;
mod schema;
mod server;
mod store;
mod throttle;
mod util;

pub use admin::{Admin, Operation, UserCounts};
pub use cli::{run_cli, run_cli_blocking, USAGE};
pub use config::{
    AppRegistration, DomainKind, EmulatorConfig, Permission, QueryMode, RetryAfterMode, Settings,
    TenantConfig, ThrottleConfig, VerifiedDomain, DEFAULT_CLIENT_CERTIFICATE, DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET, DEFAULT_TENANT_ID,
};
pub use error::Error;
pub use faults::{Fault, FaultAction, FaultRule};

use std::net::SocketAddr;

/// Entry point: starts emulators.
#[derive(Debug, Clone, Copy)]
pub struct Emulator;

impl Emulator {
    /// Starts an emulator on `config.listen` (a loopback address; port 0 picks a free port)
    /// and returns once it accepts connections.
    pub async fn start(config: EmulatorConfig) -> Result<EmulatorHandle, Error> {
        let running = server::start(config).await?;
        Ok(EmulatorHandle {
            running: Some(running),
        })
    }
}

/// A running emulator. Dropping it stops the server (without waiting); call
/// [`EmulatorHandle::shutdown`] to stop it cleanly and save state.
pub struct EmulatorHandle {
    running: Option<server::Running>,
}

impl std::fmt::Debug for EmulatorHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmulatorHandle")
            .field("base_url", &self.base_url())
            .finish()
    }
}

impl EmulatorHandle {
    fn shared(&self) -> Option<&std::sync::Arc<server::Shared>> {
        self.running.as_ref().map(|r| &r.shared)
    }

    /// The socket address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.running
            .as_ref()
            .map(|r| r.addr)
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// `http://127.0.0.1:PORT/v1.0` — the Graph endpoint (no trailing slash).
    pub fn graph_url(&self) -> String {
        format!("{}/v1.0", self.base_url())
    }

    /// `http://127.0.0.1:PORT/{tenant}/oauth2/v2.0/token`.
    pub fn token_url(&self) -> String {
        format!("{}/{}/oauth2/v2.0/token", self.base_url(), self.tenant_id())
    }

    /// The tenant (directory) id.
    pub fn tenant_id(&self) -> String {
        self.shared()
            .map(|s| s.tenant.tenant_id.clone())
            .unwrap_or_default()
    }

    /// Client id of the tenant's first app registration.
    pub fn client_id(&self) -> String {
        self.shared()
            .and_then(|s| s.tenant.apps.first())
            .map(|a| a.client_id.clone())
            .unwrap_or_default()
    }

    /// Client secret of the tenant's first app registration (empty if it has none).
    pub fn client_secret(&self) -> String {
        self.shared()
            .and_then(|s| s.tenant.apps.first())
            .and_then(|a| a.client_secret.clone())
            .unwrap_or_default()
    }

    /// The tenant configuration being served.
    pub fn tenant(&self) -> TenantConfig {
        self.shared().map(|s| s.tenant.clone()).unwrap_or_default()
    }

    /// The one-line JSON start-up contract the binary prints, keys in the documented order:
    /// `{"graph_url": …, "token_url": …, "tenant_id": …, "client_id": …, "client_secret": …}`.
    pub fn startup_line(&self) -> String {
        let q = |s: String| serde_json::Value::String(s).to_string();
        format!(
            "{{\"graph_url\": {}, \"token_url\": {}, \"tenant_id\": {}, \"client_id\": {}, \"client_secret\": {}}}",
            q(self.graph_url()),
            q(self.token_url()),
            q(self.tenant_id()),
            q(self.client_id()),
            q(self.client_secret()),
        )
    }

    /// Administrative access (seed, list, reset, log, faults, settings, …).
    pub fn admin(&self) -> Admin {
        match self.shared() {
            Some(s) => Admin { shared: s.clone() },
            // Unreachable in practice: `running` is only taken by `shutdown(self)`.
            None => Admin {
                shared: std::sync::Arc::new(dummy_shared()),
            },
        }
    }

    /// Mints an access token for the first app registration.
    pub fn token(&self) -> Result<String, Error> {
        self.admin().issue_token(&self.client_id())
    }

    /// Stops accepting connections, waits for in-flight requests, saves state.
    pub async fn shutdown(mut self) -> Result<(), Error> {
        if let Some(r) = self.running.take() {
            let _ = r.shutdown.send(true);
            let _ = r.server.await;
            r.shared.save()?;
        }
        Ok(())
    }

    /// Waits until the server stops (after [`EmulatorHandle::stop_signal`] or a fatal error).
    pub(crate) async fn stopped(&mut self) {
        if let Some(r) = self.running.as_mut() {
            let _ = (&mut r.server).await;
        }
    }

    /// Asks the server to stop without waiting.
    pub fn stop_signal(&self) {
        if let Some(r) = &self.running {
            let _ = r.shutdown.send(true);
        }
    }
}

impl Drop for EmulatorHandle {
    fn drop(&mut self) {
        if let Some(r) = &self.running {
            let _ = r.shutdown.send(true);
        }
    }
}

fn dummy_shared() -> server::Shared {
    use std::sync::atomic::{AtomicBool, AtomicU64};
    use std::sync::Mutex;
    server::Shared {
        tenant: TenantConfig::default(),
        base_url: String::new(),
        dir: Mutex::new(store::Directory::new(0)),
        settings: Mutex::new(Settings::default()),
        throttle: Mutex::new(throttle::Throttler::default()),
        faults: Mutex::new(faults::FaultInjector::new(0)),
        log: Mutex::new(Vec::new()),
        rng: Mutex::new(util::SplitMix64::new(0)),
        ids: Mutex::new(util::SplitMix64::new(0)),
        dirty: AtomicBool::new(false),
        op_seq: AtomicU64::new(0),
        state_file: None,
    }
}
