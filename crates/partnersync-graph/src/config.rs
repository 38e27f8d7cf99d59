//! Configuration of the Graph target: tenant, app credentials, endpoints, creation mode,
//! verified-domain rules and the transport budget.

use std::path::PathBuf;
use std::time::Duration;

pub use partnersync_target::CreationMode;

use crate::GraphError;

/// Where the client secret comes from. Never the command line: argv is visible to every
/// local user in `ps`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// The named environment variable.
    Env(String),
    /// The first line of this file (trailing whitespace trimmed).
    File(PathBuf),
}

/// A secret value. `Debug` and `Display` never show it.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value, for the one place that sends it.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl SecretSource {
    /// Reads the secret. Errors name the variable or file, never the value.
    pub fn load(&self) -> Result<Secret, GraphError> {
        match self {
            SecretSource::Env(name) => match std::env::var(name) {
                Ok(v) if !v.trim().is_empty() => Ok(Secret(v.trim().to_string())),
                _ => Err(GraphError::Config(format!(
                    "the client secret environment variable {name} is not set or empty"
                ))),
            },
            SecretSource::File(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    GraphError::Config(format!(
                        "cannot read the client secret file {}: {e}",
                        path.display()
                    ))
                })?;
                let line = text.lines().next().unwrap_or("").trim();
                if line.is_empty() {
                    return Err(GraphError::Config(format!(
                        "the client secret file {} is empty",
                        path.display()
                    )));
                }
                Ok(Secret(line.to_string()))
            }
        }
    }
}

/// Microsoft's national clouds: login authority and Graph host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NationalCloud {
    /// Worldwide (`login.microsoftonline.com`, `graph.microsoft.com`).
    #[default]
    Global,
    /// US Government L4 (`login.microsoftonline.us`, `graph.microsoft.us`).
    UsGov,
    /// US Government L5 / DoD (`login.microsoftonline.us`, `dod-graph.microsoft.us`).
    UsGovDod,
    /// China, operated by 21Vianet (`login.chinacloudapi.cn`, `microsoftgraph.chinacloudapi.cn`).
    China,
}

impl NationalCloud {
    /// The login authority host.
    pub fn login_host(self) -> &'static str {
        match self {
            NationalCloud::Global => "https://login.microsoftonline.com",
            NationalCloud::UsGov | NationalCloud::UsGovDod => "https://login.microsoftonline.us",
            NationalCloud::China => "https://login.chinacloudapi.cn",
        }
    }

    /// The Graph root (`…/v1.0`).
    pub fn graph_url(self) -> &'static str {
        match self {
            NationalCloud::Global => "https://graph.microsoft.com/v1.0",
            NationalCloud::UsGov => "https://graph.microsoft.us/v1.0",
            NationalCloud::UsGovDod => "https://dod-graph.microsoft.us/v1.0",
            NationalCloud::China => "https://microsoftgraph.chinacloudapi.cn/v1.0",
        }
    }

    /// The `.default` scope of this cloud's Graph.
    pub fn scope(self) -> String {
        let host = self.graph_url().trim_end_matches("/v1.0");
        format!("{host}/.default")
    }
}

/// Explicit endpoints, e.g. the emulator's. Plain `http` needs the `emulator` feature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointOverride {
    /// Graph root such as `http://127.0.0.1:8787/v1.0` (no trailing slash needed).
    pub graph_url: String,
    /// Token endpoint such as `http://127.0.0.1:8787/{tenant}/oauth2/v2.0/token`.
    pub token_url: String,
}

/// How a verified domain signs its users in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DomainKind {
    /// Passwords live in Entra ID: direct creation sets a strong random password.
    Managed,
    /// Sign-in is federated to the on-premises IdP: no password, the anchor binds the account.
    Federated,
}

/// A verified domain users may be created in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedDomain {
    /// Domain name, e.g. `partners.contoso.com`.
    pub name: String,
    /// Managed or federated.
    pub kind: DomainKind,
}

/// How invitations are sent in [`CreationMode::Invitation`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvitationConfig {
    /// Where the guest lands after redeeming (`inviteRedirectUrl`).
    pub redirect_url: String,
    /// Whether Microsoft emails the invitation (`sendInvitationMessage`).
    pub send_message: bool,
}

impl Default for InvitationConfig {
    fn default() -> Self {
        InvitationConfig {
            redirect_url: "https://myapps.microsoft.com".into(),
            send_message: false,
        }
    }
}

/// The transport budget (rate, retries, concurrency).
#[derive(Debug, Clone, PartialEq)]
pub struct TransportConfig {
    /// Writes per second (Graph: 3,000 per 150 s per app and tenant = 20/s).
    pub writes_per_second: f64,
    /// Requests in flight at once.
    pub max_concurrency: usize,
    /// Attempts per request, the first included.
    pub max_attempts: u32,
    /// First backoff delay (doubled per attempt, with jitter).
    pub backoff_base: Duration,
    /// Largest backoff delay, and largest honoured `Retry-After`.
    pub backoff_max: Duration,
    /// Retries available at once across all requests; a success earns back
    /// `retry_budget_refill` of one. When empty, requests fail at once.
    pub retry_budget: f64,
    /// Retry budget earned per successful request.
    pub retry_budget_refill: f64,
    /// Timeout of one HTTP attempt.
    pub request_timeout: Duration,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            writes_per_second: 20.0,
            max_concurrency: 8,
            max_attempts: 8,
            backoff_base: Duration::from_millis(250),
            backoff_max: Duration::from_secs(60),
            retry_budget: 200.0,
            retry_budget_refill: 0.2,
            request_timeout: Duration::from_secs(60),
        }
    }
}

/// Everything [`crate::GraphTarget`] needs.
#[derive(Debug, Clone)]
pub struct GraphConfig {
    /// Tenant (directory) id or a verified domain of it.
    pub tenant_id: String,
    /// Application (client) id.
    pub client_id: String,
    /// Where the client secret is read from.
    pub client_secret: SecretSource,
    /// National cloud (ignored for Graph and login hosts when `endpoint` is set).
    pub cloud: NationalCloud,
    /// Explicit endpoints (the emulator).
    pub endpoint: Option<EndpointOverride>,
    /// Direct creation or invitation.
    pub creation_mode: CreationMode,
    /// Domains users may be created in; a UPN outside them is refused before any request.
    pub verified_domains: Vec<VerifiedDomain>,
    /// Invitation settings (creation mode `invitation`).
    pub invitation: InvitationConfig,
    /// Writes per `$batch` request (1–20; 1 sends every operation on its own).
    pub batch_size: usize,
    /// Transport budget.
    pub transport: TransportConfig,
}

impl GraphConfig {
    /// A config for the worldwide cloud with defaults for everything else.
    pub fn new(
        tenant_id: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: SecretSource,
    ) -> Self {
        GraphConfig {
            tenant_id: tenant_id.into(),
            client_id: client_id.into(),
            client_secret,
            cloud: NationalCloud::Global,
            endpoint: None,
            creation_mode: CreationMode::Direct,
            verified_domains: Vec::new(),
            invitation: InvitationConfig::default(),
            batch_size: 20,
            transport: TransportConfig::default(),
        }
    }

    pub(crate) fn token_url(&self) -> String {
        match &self.endpoint {
            Some(e) => e.token_url.clone(),
            None => format!(
                "{}/{}/oauth2/v2.0/token",
                self.cloud.login_host(),
                self.tenant_id
            ),
        }
    }

    pub(crate) fn domain(&self, upn: &str) -> Option<&VerifiedDomain> {
        let domain = upn.rsplit_once('@')?.1;
        self.verified_domains
            .iter()
            .find(|d| d.name.eq_ignore_ascii_case(domain))
    }
}
