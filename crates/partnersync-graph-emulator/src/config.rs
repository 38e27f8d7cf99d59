//! Tenant and emulator configuration.

use serde::{Deserialize, Serialize};

use crate::Error;

/// How a verified domain authenticates its users.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DomainKind {
    /// Passwords live in Entra ID; `POST /users` needs a `passwordProfile`.
    Managed,
    /// Sign-in is federated; `POST /users` needs an `onPremisesImmutableId`.
    Federated,
}

/// A verified domain of the tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifiedDomain {
    /// The domain name, e.g. `contoso.com`.
    pub name: String,
    /// Managed or federated.
    pub kind: DomainKind,
}

/// An application permission (app role) of Microsoft Graph the emulator understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Permission {
    /// `User.Read.All`: read users and deleted users.
    #[serde(rename = "User.Read.All")]
    UserReadAll,
    /// `User.ReadWrite.All`: create, update, delete and restore users; invite guests.
    #[serde(rename = "User.ReadWrite.All")]
    UserReadWriteAll,
    /// `User.Invite.All`: create invitations.
    #[serde(rename = "User.Invite.All")]
    UserInviteAll,
    /// `User.ManageIdentities.All`: write the `identities` property.
    #[serde(rename = "User.ManageIdentities.All")]
    UserManageIdentitiesAll,
    /// `User-PasswordProfile.ReadWrite.All`: reset other users' passwords (`passwordProfile`
    /// on PATCH), which `User.ReadWrite.All` alone does not allow.
    #[serde(rename = "User-PasswordProfile.ReadWrite.All")]
    UserPasswordProfileReadWriteAll,
    /// `User-ConvertToInternal.ReadWrite.All`: convert external users to internal members
    /// (beta `convertExternalToInternalMemberUser`).
    #[serde(rename = "User-ConvertToInternal.ReadWrite.All")]
    UserConvertToInternalReadWriteAll,
    /// `Directory.Read.All`: read everything in the directory.
    #[serde(rename = "Directory.Read.All")]
    DirectoryReadAll,
    /// `Directory.ReadWrite.All`: write everything in the directory.
    #[serde(rename = "Directory.ReadWrite.All")]
    DirectoryReadWriteAll,
}

impl Permission {
    /// The role name as it appears in tokens (`User.Read.All`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::UserReadAll => "User.Read.All",
            Permission::UserReadWriteAll => "User.ReadWrite.All",
            Permission::UserInviteAll => "User.Invite.All",
            Permission::UserManageIdentitiesAll => "User.ManageIdentities.All",
            Permission::UserPasswordProfileReadWriteAll => "User-PasswordProfile.ReadWrite.All",
            Permission::UserConvertToInternalReadWriteAll => "User-ConvertToInternal.ReadWrite.All",
            Permission::DirectoryReadAll => "Directory.Read.All",
            Permission::DirectoryReadWriteAll => "Directory.ReadWrite.All",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        [
            Permission::UserReadAll,
            Permission::UserReadWriteAll,
            Permission::UserInviteAll,
            Permission::UserManageIdentitiesAll,
            Permission::UserPasswordProfileReadWriteAll,
            Permission::UserConvertToInternalReadWriteAll,
            Permission::DirectoryReadAll,
            Permission::DirectoryReadWriteAll,
        ]
        .into_iter()
        .find(|p| p.as_str().eq_ignore_ascii_case(s))
    }
}

/// An app registration the token endpoint accepts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppRegistration {
    /// Application (client) id.
    pub client_id: String,
    /// Client secret; `None` for an app that only authenticates with a client assertion.
    #[serde(default)]
    pub client_secret: Option<String>,
    /// Certificates (PEM text; only `CERTIFICATE` sections are read) whose keys may sign a
    /// `client_assertion`, as uploaded under "Certificates & secrets". The token endpoint
    /// finds the key by the assertion's `x5t#S256`/`x5t`, verifies the RS256 signature, `aud`
    /// (this token endpoint), `iss`/`sub` and `nbf`/`exp`. Empty: no certificate credential.
    #[serde(default)]
    pub certificates: Vec<String>,
    /// Granted application permissions.
    pub permissions: Vec<Permission>,
    /// Display name, for logs.
    #[serde(default)]
    pub display_name: Option<String>,
}

/// The tenant the emulator serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantConfig {
    /// Tenant (directory) id, a GUID.
    pub tenant_id: String,
    /// Organization display name.
    #[serde(default = "default_org_name")]
    pub display_name: String,
    /// The initial `*.onmicrosoft.com` domain (always managed, always verified).
    pub initial_domain: String,
    /// Further verified domains.
    #[serde(default)]
    pub verified_domains: Vec<VerifiedDomain>,
    /// App registrations whose credentials the token endpoint accepts.
    pub apps: Vec<AppRegistration>,
}

fn default_org_name() -> String {
    "Contoso".to_string()
}

/// Tenant id of the default tenant.
pub const DEFAULT_TENANT_ID: &str = "6f1c6a2e-3b7d-4c59-9a1e-0d5b8e2f4a71";
/// Client id of the default tenant's full-permission app.
pub const DEFAULT_CLIENT_ID: &str = "0b9e4f3a-7c21-4d8e-b5a6-2f1e9c8d7b64";
/// Client secret of the default tenant's full-permission app.
pub const DEFAULT_CLIENT_SECRET: &str = "emulator-secret~not-a-real-secret";

/// Certificate **and private key** (PEM) of the default app's certificate credential. Like
/// [`DEFAULT_CLIENT_SECRET`] it is published on purpose for tests and rehearsals: write it to
/// a file and point a client's certificate credential at it. Never trust it anywhere else.
pub const DEFAULT_CLIENT_CERTIFICATE: &str = include_str!("../certs/emulator-app.pem");

impl Default for TenantConfig {
    /// `contoso.onmicrosoft.com`, `contoso.com` (managed), `partners.contoso.com` (federated),
    /// one app with full user and invitation permissions.
    fn default() -> Self {
        TenantConfig {
            tenant_id: DEFAULT_TENANT_ID.to_string(),
            display_name: default_org_name(),
            initial_domain: "contoso.onmicrosoft.com".to_string(),
            verified_domains: vec![
                VerifiedDomain {
                    name: "contoso.com".to_string(),
                    kind: DomainKind::Managed,
                },
                VerifiedDomain {
                    name: "partners.contoso.com".to_string(),
                    kind: DomainKind::Federated,
                },
            ],
            apps: vec![AppRegistration {
                client_id: DEFAULT_CLIENT_ID.to_string(),
                client_secret: Some(DEFAULT_CLIENT_SECRET.to_string()),
                certificates: vec![DEFAULT_CLIENT_CERTIFICATE.to_string()],
                permissions: vec![
                    Permission::UserReadWriteAll,
                    Permission::UserInviteAll,
                    Permission::UserManageIdentitiesAll,
                    Permission::UserPasswordProfileReadWriteAll,
                    Permission::UserConvertToInternalReadWriteAll,
                    Permission::DirectoryReadAll,
                ],
                display_name: Some("partnersync".to_string()),
            }],
        }
    }
}

impl TenantConfig {
    /// Loads a tenant config from a TOML or (by `.json` extension) JSON file.
    pub fn load(path: &std::path::Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.display().to_string(),
            source,
        })?;
        let parsed: Result<Self, String> = if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"))
        {
            serde_json::from_str(&text).map_err(|e| e.to_string())
        } else {
            toml::from_str(&text).map_err(|e| e.to_string())
        };
        let config = parsed.map_err(|message| Error::Config {
            path: path.display().to_string(),
            message,
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks the invariants the emulator relies on.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |message: String| Error::Config {
            path: "<tenant>".to_string(),
            message,
        };
        if !crate::util::is_guid(&self.tenant_id) {
            return Err(bad(format!("tenant_id '{}' is not a GUID", self.tenant_id)));
        }
        if !self
            .initial_domain
            .to_ascii_lowercase()
            .ends_with(".onmicrosoft.com")
        {
            return Err(bad(format!(
                "initial_domain '{}' must end in .onmicrosoft.com",
                self.initial_domain
            )));
        }
        if self.apps.is_empty() {
            return Err(bad("at least one app registration is needed".to_string()));
        }
        for app in &self.apps {
            for pem in &app.certificates {
                crate::auth::registered_keys(pem)
                    .map_err(|e| bad(format!("app {}: a certificate is {e}", app.client_id)))?;
            }
        }
        Ok(())
    }

    /// Finds the kind of a domain (the initial domain is managed); `None` if not verified.
    pub fn domain_kind(&self, domain: &str) -> Option<DomainKind> {
        if domain.eq_ignore_ascii_case(&self.initial_domain) {
            return Some(DomainKind::Managed);
        }
        self.verified_domains
            .iter()
            .find(|d| d.name.eq_ignore_ascii_case(domain))
            .map(|d| d.kind)
    }

    /// Looks an app registration up by client id.
    pub fn app(&self, client_id: &str) -> Option<&AppRegistration> {
        self.apps
            .iter()
            .find(|a| a.client_id.eq_ignore_ascii_case(client_id))
    }
}

/// How `Retry-After` values are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum RetryAfterMode {
    /// Whole seconds, rounded up (what most real responses carry).
    #[default]
    Integer,
    /// Seconds with three decimals, e.g. `2.128` (seen in Microsoft's docs and batch items).
    Fractional,
}

/// How the advanced-query rules of `$filter` are enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum QueryMode {
    /// Properties and operators whose default support is uncertain in Microsoft's tables need
    /// the advanced-query parameters; next pages of advanced queries need the header again.
    #[default]
    Strict,
    /// Only the clearly documented rules; uncertain ones are treated as default-supported and
    /// next pages do not need the header again.
    Lenient,
}

/// Throttling limits (§4.1 of the reference). Windows are divided by `time_scale`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ThrottleConfig {
    /// Whether throttling is applied at all.
    pub enabled: bool,
    /// Speed-up factor: 10.0 runs every window (and every `Retry-After`) ten times faster.
    pub time_scale: f64,
    /// `Retry-After` format.
    pub retry_after: RetryAfterMode,
    /// Writes per app and tenant per `app_write_window_secs`.
    pub app_write_limit: u32,
    /// Window of `app_write_limit`, in seconds (150).
    pub app_write_window_secs: f64,
    /// Writes per tenant (all apps) per `tenant_write_window_secs`.
    pub tenant_write_limit: u32,
    /// Window of `tenant_write_limit` (300).
    pub tenant_write_window_secs: f64,
    /// Resource units per 10 s for small (< 50 users), medium (50–500) and large tenants.
    pub resource_units_per_10s: [u32; 3],
    /// Resource units per app across all tenants per 20 s (150,000).
    pub app_resource_units_per_20s: u32,
    /// Writes per app across all tenants per 5 minutes (70,000).
    pub app_all_tenants_write_limit: u32,
    /// Invitations per tenant per `invitation_window_secs`.
    pub invitation_limit: u32,
    /// Window of `invitation_limit` (5).
    pub invitation_window_secs: f64,
    /// Whether requests rejected with 429 still count (Graph keeps counting while throttled).
    pub charge_while_throttled: bool,
    /// Whether allowed responses carry `x-ms-throttle-limit-percentage` (the use of the
    /// most-used limit the request counts against, 0.8–1.8) once a limit is above 80 %, as
    /// Graph's identity limits do. Off: clients only learn about the quota from 429s.
    pub limit_percentage_header: bool,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        ThrottleConfig {
            enabled: true,
            time_scale: 1.0,
            retry_after: RetryAfterMode::Integer,
            app_write_limit: 3_000,
            app_write_window_secs: 150.0,
            tenant_write_limit: 18_000,
            tenant_write_window_secs: 300.0,
            resource_units_per_10s: [3_500, 5_000, 8_000],
            app_resource_units_per_20s: 150_000,
            app_all_tenants_write_limit: 70_000,
            invitation_limit: 150,
            invitation_window_secs: 5.0,
            charge_while_throttled: true,
            limit_percentage_header: true,
        }
    }
}

/// Everything [`crate::Emulator::start`] needs.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// Address to listen on; must be a loopback address. Port 0 picks a free port.
    pub listen: std::net::SocketAddr,
    /// The tenant to serve.
    pub tenant: TenantConfig,
    /// Mutable behaviour (throttling, query mode, …); can be changed later through the handle.
    pub settings: Settings,
    /// If set, state is loaded from and saved to this JSON file.
    pub state_file: Option<std::path::PathBuf>,
    /// Seed for fault-injection decisions and batch shuffling (reproducible storms).
    pub seed: u64,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        EmulatorConfig {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            tenant: TenantConfig::default(),
            settings: Settings::default(),
            state_file: None,
            seed: 0x00C0_FFEE,
        }
    }
}

/// Behaviour switches that may be changed while the emulator runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Throttling limits.
    pub throttling: ThrottleConfig,
    /// Advanced-query enforcement.
    pub query_mode: QueryMode,
    /// Return `$batch` responses in a (seeded) shuffled order.
    pub shuffle_batch_responses: bool,
    /// Lifetime of issued access tokens, seconds.
    pub token_lifetime_secs: u64,
    /// Lifetime of delta tokens, seconds (7 days in Graph).
    pub delta_token_lifetime_secs: u64,
    /// How long soft-deleted users stay restorable, seconds (30 days in Graph).
    pub deleted_retention_secs: u64,
    /// Default page size of `/users/delta` (Graph honours `Prefer: odata.maxpagesize`).
    pub delta_page_size: usize,
    /// Largest accepted request body, bytes (Graph: 4 MB).
    pub max_body_bytes: usize,
    /// The operation log keeps at most this many entries (oldest dropped first).
    pub max_log_entries: usize,
    /// Simulated replication lag: a new user shows up in list results (and `$count`) only this
    /// many milliseconds after its creation; `GET /users/{id}` sees it at once. 0 = off.
    pub replication_lag_ms: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            throttling: ThrottleConfig::default(),
            query_mode: QueryMode::Strict,
            shuffle_batch_responses: false,
            token_lifetime_secs: 3_599,
            delta_token_lifetime_secs: 7 * 24 * 3_600,
            deleted_retention_secs: 30 * 24 * 3_600,
            delta_page_size: 100,
            max_body_bytes: 4 * 1024 * 1024,
            max_log_entries: 100_000,
            replication_lag_ms: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_toml_and_json_tenants() {
        let dir = std::env::temp_dir();
        let stamp = std::process::id();
        let toml_path = dir.join(format!("ps-emu-tenant-{stamp}.toml"));
        let text = r#"
tenant_id = "6f1c6a2e-3b7d-4c59-9a1e-0d5b8e2f4a71"
initial_domain = "fabrikam.onmicrosoft.com"
verified_domains = [ { name = "fabrikam.com", kind = "Federated" } ]
[[apps]]
client_id = "11111111-2222-4333-8444-555555555555"
client_secret = "reader"
permissions = ["User.Read.All"]
"#;
        assert!(std::fs::write(&toml_path, text).is_ok());
        let t = TenantConfig::load(&toml_path);
        let _ = std::fs::remove_file(&toml_path);
        let t = t.unwrap_or_default();
        assert_eq!(t.initial_domain, "fabrikam.onmicrosoft.com");
        assert_eq!(t.domain_kind("FABRIKAM.com"), Some(DomainKind::Federated));
        assert_eq!(t.apps[0].permissions, vec![Permission::UserReadAll]);

        let json_path = dir.join(format!("ps-emu-tenant-{stamp}.json"));
        let bad = serde_json::json!({"tenant_id": "nope", "initial_domain": "x.com", "apps": []});
        assert!(std::fs::write(&json_path, bad.to_string()).is_ok());
        let e = TenantConfig::load(&json_path);
        let _ = std::fs::remove_file(&json_path);
        assert!(matches!(e, Err(Error::Config { .. })));
    }
}
