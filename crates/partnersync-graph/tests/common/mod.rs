//! Shared helpers: an in-process emulator and a `GraphTarget` aimed at it.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use partnersync_core::Anchor;
use partnersync_graph::{
    CredentialSource, DomainKind, EndpointOverride, GraphConfig, GraphTarget, SecretSource,
    TransportConfig, VerifiedDomain,
};
use partnersync_graph_emulator::{Emulator, EmulatorConfig, EmulatorHandle};
use partnersync_target::Attributes;

pub struct Env {
    pub emu: EmulatorHandle,
    pub target: GraphTarget,
    secret_file: PathBuf,
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.secret_file);
    }
}

/// Fast retries so fault tests stay short.
pub fn fast_transport() -> TransportConfig {
    TransportConfig {
        writes_per_second: 500.0,
        max_concurrency: 8,
        max_attempts: 10,
        backoff_base: Duration::from_millis(5),
        backoff_max: Duration::from_secs(2),
        retry_budget: 1_000.0,
        retry_budget_refill: 0.2,
        request_timeout: Duration::from_secs(10),
    }
}

pub async fn start() -> Env {
    start_with(EmulatorConfig::default(), None, fast_transport()).await
}

/// Starts an emulator and a target for `app` (client id, secret), default app if `None`.
pub async fn start_with(
    config: EmulatorConfig,
    app: Option<(&str, &str)>,
    transport: TransportConfig,
) -> Env {
    start_configured(config, app, transport, 20).await
}

/// Like [`start_with`], with `batch_size` operations per `$batch` (1 = no batching).
pub async fn start_configured(
    config: EmulatorConfig,
    app: Option<(&str, &str)>,
    transport: TransportConfig,
    batch_size: usize,
) -> Env {
    let emu = Emulator::start(config).await.expect("emulator starts");
    let (client_id, secret) = match app {
        Some((id, secret)) => (id.to_string(), secret.to_string()),
        None => (emu.client_id(), emu.client_secret()),
    };
    let secret_file = temp_file(&emu, "secret", &format!("{secret}\n"));
    finish(
        emu,
        client_id,
        SecretSource::File(secret_file.clone()).into(),
        secret_file,
        transport,
        batch_size,
    )
}

/// A file in the temp directory, unique to this process and emulator.
pub fn temp_file(emu: &EmulatorHandle, name: &str, contents: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!(
        "ps-graph-{name}-{}-{}",
        std::process::id(),
        emu.addr().port()
    ));
    std::fs::write(&path, contents).expect("write temp file");
    path
}

/// An emulator and a target that authenticates with `credential` (the file `cleanup` is
/// removed when the Env is dropped).
pub async fn start_with_credential(
    config: EmulatorConfig,
    credential: impl FnOnce(&EmulatorHandle) -> (CredentialSource, PathBuf),
) -> Result<Env, partnersync_graph::GraphError> {
    let emu = Emulator::start(config).await.expect("emulator starts");
    let (credential, cleanup) = credential(&emu);
    let client_id = emu.client_id();
    build(
        emu,
        client_id,
        credential,
        cleanup,
        fast_transport(),
        20,
        &|_| {},
    )
}

/// The default app with its secret, the config changed by `tweak` before the target is built.
pub async fn start_tweaked(config: EmulatorConfig, tweak: &dyn Fn(&mut GraphConfig)) -> Env {
    let emu = Emulator::start(config).await.expect("emulator starts");
    let secret_file = temp_file(&emu, "secret", &emu.client_secret());
    let client_id = emu.client_id();
    build(
        emu,
        client_id,
        SecretSource::File(secret_file.clone()).into(),
        secret_file,
        fast_transport(),
        20,
        tweak,
    )
    .expect("target builds")
}

fn finish(
    emu: EmulatorHandle,
    client_id: String,
    credential: CredentialSource,
    secret_file: PathBuf,
    transport: TransportConfig,
    batch_size: usize,
) -> Env {
    build(
        emu,
        client_id,
        credential,
        secret_file,
        transport,
        batch_size,
        &|_| {},
    )
    .expect("target builds")
}

fn build(
    emu: EmulatorHandle,
    client_id: String,
    credential: CredentialSource,
    secret_file: PathBuf,
    transport: TransportConfig,
    batch_size: usize,
    tweak: &dyn Fn(&mut GraphConfig),
) -> Result<Env, partnersync_graph::GraphError> {
    let mut config = GraphConfig::new(emu.tenant_id(), client_id, credential);
    config.endpoint = Some(EndpointOverride {
        graph_url: emu.graph_url(),
        token_url: emu.token_url(),
    });
    config.verified_domains = vec![
        VerifiedDomain {
            name: "contoso.com".into(),
            kind: DomainKind::Managed,
        },
        VerifiedDomain {
            name: "partners.contoso.com".into(),
            kind: DomainKind::Federated,
        },
    ];
    config.transport = transport;
    config.batch_size = batch_size;
    tweak(&mut config);
    let target = match GraphTarget::new(config) {
        Ok(t) => t,
        Err(e) => {
            let _ = std::fs::remove_file(&secret_file);
            return Err(e);
        }
    };
    Ok(Env {
        emu,
        target,
        secret_file,
    })
}

pub fn anchor(n: u32) -> Anchor {
    // Decimal digits: the emulator compares immutable ids case-insensitively, so anchors that
    // differ only in base64 letter case would collide.
    Anchor::from_bytes(format!("{n:016}").into_bytes()).expect("16 bytes")
}

pub fn attrs(pairs: &[(&str, &str)]) -> Attributes {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), vec![v.to_string()]))
        .collect()
}

pub fn partner(n: u32, domain: &str) -> Attributes {
    attrs(&[
        ("userPrincipalName", &format!("partner{n:05}@{domain}")),
        ("displayName", &format!("Partner {n}")),
        ("companyName", "Fabrikam"),
    ])
}
