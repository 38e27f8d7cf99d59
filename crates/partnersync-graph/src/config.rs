//! Configuration of the Graph target: tenant, app credentials, endpoints, creation mode,
//! verified-domain rules, the anchor attribute and the transport budget.

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

/// How the app proves its identity to Entra ID (client-credentials grant).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialSource {
    /// A client secret.
    Secret(SecretSource),
    /// A certificate: a JWT client assertion signed with its private key (RS256, `x5t`).
    Certificate {
        /// PEM file with the certificate, and the private key unless `private_key` is set.
        certificate: PathBuf,
        /// PEM file with the private key, when it is not in `certificate`.
        private_key: Option<PathBuf>,
    },
}

impl From<SecretSource> for CredentialSource {
    fn from(source: SecretSource) -> Self {
        CredentialSource::Secret(source)
    }
}

/// A loaded credential, ready to authenticate. `Debug` never shows secrets or keys.
#[derive(Debug, Clone)]
pub(crate) enum Credential {
    Secret(Secret),
    Certificate(crate::credential::ClientCertificate),
}

impl CredentialSource {
    /// Reads the secret, or loads and checks the certificate and its key.
    pub(crate) fn load(&self) -> Result<Credential, GraphError> {
        match self {
            CredentialSource::Secret(s) => s.load().map(Credential::Secret),
            CredentialSource::Certificate {
                certificate,
                private_key,
            } => crate::credential::ClientCertificate::load(certificate, private_key.as_deref())
                .map(Credential::Certificate),
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

/// The user property that binds a user to its source anchor (the hard match): what
/// [`crate::GraphTarget`] writes the anchor into, lists managed users by, looks anchors up
/// with and reads the anchor back from.
///
/// Either `onPremisesImmutableId` (the default, as Entra Connect does) or a directory
/// extension property registered on an app, named as Graph names it:
/// `extension_<the owner app's appId without hyphens>_<name>`. Graph does not keep extension
/// values unique, so with one partnersync relies on the UPN's uniqueness (and its own state)
/// to create each user once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnchorAttribute(String);

impl AnchorAttribute {
    /// `onPremisesImmutableId`.
    pub const IMMUTABLE_ID: &'static str = "onPremisesImmutableId";

    /// `onPremisesImmutableId`, the default.
    pub fn immutable_id() -> Self {
        AnchorAttribute(Self::IMMUTABLE_ID.to_string())
    }

    /// Checks `name`: `onPremisesImmutableId` (any letter case) or a well-formed extension
    /// property name (`extension_`, 32 hex digits, `_`, then letters, digits and underscores).
    /// The error says what to write instead.
    pub fn new(name: &str) -> Result<Self, GraphError> {
        let name = name.trim();
        if name.eq_ignore_ascii_case(Self::IMMUTABLE_ID) {
            return Ok(Self::immutable_id());
        }
        let extension = name
            .strip_prefix("extension_")
            .and_then(|rest| rest.split_once('_'))
            .is_some_and(|(app, property)| {
                app.len() == 32
                    && app.chars().all(|c| c.is_ascii_hexdigit())
                    && !property.is_empty()
                    && property
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_')
            });
        if extension {
            Ok(AnchorAttribute(name.to_string()))
        } else {
            Err(GraphError::Config(format!(
                "{name:?} is neither onPremisesImmutableId nor a directory extension property; \
                 write \"onPremisesImmutableId\" (the default) or the extension property's full \
                 name as Graph reports it (GET /applications/{{object id}}/extensionProperties): \
                 extension_<appId of the app that owns it, without hyphens>_<name>, e.g. \
                 \"extension_0b9e4f3a7c214d8eb5a62f1e9c8d7b64_partnerAnchor\""
            )))
        }
    }

    /// The property name as Graph spells it.
    pub fn name(&self) -> &str {
        &self.0
    }

    /// Whether it is a directory extension property (not `onPremisesImmutableId`).
    pub fn is_extension(&self) -> bool {
        self.0 != Self::IMMUTABLE_ID
    }
}

impl Default for AnchorAttribute {
    fn default() -> Self {
        Self::immutable_id()
    }
}

impl std::fmt::Display for AnchorAttribute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// How invitations are sent in [`CreationMode::Invitation`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvitationConfig {
    /// Where the guest lands after redeeming (`inviteRedirectUrl`).
    pub redirect_url: String,
    /// Whether Microsoft emails the invitation (`sendInvitationMessage`).
    pub send_message: bool,
    /// Whether an existing *internal* user (one created with `POST /users`, not invited)
    /// whose `mail` is the address being invited is converted to B2B in place
    /// (`invitedUser.id`, same object id, UPN and groups) and bound to the source anchor.
    /// Off by default: conversion changes how that person signs in (their Entra password
    /// stops being used), so partnersync then reports a conflict naming the user instead.
    pub convert_internal_users: bool,
}

impl Default for InvitationConfig {
    fn default() -> Self {
        InvitationConfig {
            redirect_url: "https://myapps.microsoft.com".into(),
            send_message: false,
            convert_internal_users: false,
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
    /// The client secret or certificate.
    pub credential: CredentialSource,
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
    /// The property that binds users to their source anchors (default
    /// `onPremisesImmutableId`).
    pub anchor_attribute: AnchorAttribute,
    /// Writes per `$batch` request (1–20; 1 sends every operation on its own).
    pub batch_size: usize,
    /// Transport budget.
    pub transport: TransportConfig,
}

impl GraphConfig {
    /// A config for the worldwide cloud with defaults for everything else. `credential` is a
    /// [`SecretSource`] or a [`CredentialSource`].
    pub fn new(
        tenant_id: impl Into<String>,
        client_id: impl Into<String>,
        credential: impl Into<CredentialSource>,
    ) -> Self {
        GraphConfig {
            tenant_id: tenant_id.into(),
            client_id: client_id.into(),
            credential: credential.into(),
            cloud: NationalCloud::Global,
            endpoint: None,
            creation_mode: CreationMode::Direct,
            verified_domains: Vec::new(),
            invitation: InvitationConfig::default(),
            anchor_attribute: AnchorAttribute::default(),
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
