//! The `[target]` table of partnersync's configuration file → [`GraphConfig`].
//!
//! ```toml
//! [target]
//! kind = "graph"                   # the only kind
//! tenant_id = "contoso.onmicrosoft.com"
//! client_id = "0b9e4f3a-7c21-4d8e-b5a6-2f1e9c8d7b64"
//! client_secret_env = "PARTNERSYNC_CLIENT_SECRET"   # or client_secret_file = "secret"
//! # certificate_file = "app.pem"   # cert + key PEM instead of a secret (private_key_file
//! #                                # if the key is in its own file)
//! cloud = "global"                 # global | usgov | usgov-dod | china
//! creation = "direct"              # direct | invitation
//! convert_internal_users = false   # invitation: convert an existing internal user in place
//! send_invitation_message = false
//! invite_redirect_url = "https://myapps.microsoft.com"
//! writes_per_second = 20
//! batch_size = 20
//! anchor_attribute = "onPremisesImmutableId"   # or "extension_<appId without hyphens>_<name>"
//! # graph_url / token_url: endpoint override (the emulator)
//! [[target.domains]]
//! name = "partners.contoso.com"
//! kind = "federated"               # managed | federated
//! ```
//!
//! Relative paths are resolved against the configuration file's directory. Unknown keys are
//! refused by name, and a secret written into the file (`client_secret = "…"`) is refused
//! without echoing it: secrets come from an environment variable or a file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::config::{
    AnchorAttribute, CredentialSource, DomainKind, EndpointOverride, GraphConfig, InvitationConfig,
    NationalCloud, SecretSource, TransportConfig, VerifiedDomain,
};
use crate::{CreationMode, GraphError};

/// The `[target]` table as written in the configuration file. Embed it in a larger serde
/// config (`target: TargetConfig`) or use [`GraphConfig::from_toml_value`]; turn it into a
/// [`GraphConfig`] with [`TargetConfig::into_graph_config`].
///
/// When deserialising it from file text yourself, print `toml::de::Error::message()` (and
/// the line from its span), not its `Display`, which quotes the offending line.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// `"graph"`, the only kind (optional).
    #[serde(default = "graph_kind")]
    pub kind: String,
    /// Tenant id (GUID) or one of its domains.
    pub tenant_id: String,
    /// Application (client) id of the app registration.
    pub client_id: String,
    /// Name of the environment variable that holds the client secret.
    #[serde(default)]
    pub client_secret_env: Option<String>,
    /// File whose first line is the client secret.
    #[serde(default)]
    pub client_secret_file: Option<PathBuf>,
    /// PEM file with the app's certificate (and its private key, unless `private_key_file`).
    #[serde(default)]
    pub certificate_file: Option<PathBuf>,
    /// PEM file with the certificate's private key, when it is kept apart.
    #[serde(default)]
    pub private_key_file: Option<PathBuf>,
    /// Refused: present only to explain why.
    #[serde(default, rename = "client_secret")]
    #[doc(hidden)]
    pub inline_secret: Option<RefusedSecret>,
    /// `global`, `usgov`, `usgov-dod` or `china`.
    #[serde(default)]
    pub cloud: CloudName,
    /// `direct` or `invitation`.
    #[serde(default = "direct")]
    pub creation: CreationMode,
    /// Invitation mode: convert an existing internal user with the same mail to B2B in place.
    #[serde(default)]
    pub convert_internal_users: bool,
    /// Invitation mode: whether Microsoft emails the invitation.
    #[serde(default)]
    pub send_invitation_message: bool,
    /// Invitation mode: where the guest lands after redeeming.
    #[serde(default = "redirect")]
    pub invite_redirect_url: String,
    /// Write budget (Graph allows 3,000 writes per 150 s per app and tenant = 20/s).
    #[serde(default = "twenty_f")]
    pub writes_per_second: f64,
    /// Writes per `$batch` request, 1–20.
    #[serde(default = "twenty")]
    pub batch_size: usize,
    /// The user property that binds users to their source anchors: `onPremisesImmutableId`
    /// (default) or a directory extension property `extension_<appId without hyphens>_<name>`.
    #[serde(default)]
    pub anchor_attribute: Option<String>,
    /// Requests in flight at once.
    #[serde(default)]
    pub max_concurrency: Option<usize>,
    /// Timeout of one HTTP attempt, seconds.
    #[serde(default)]
    pub request_timeout_secs: Option<u64>,
    /// Graph endpoint override, e.g. the emulator's `http://127.0.0.1:PORT/v1.0`.
    #[serde(default)]
    pub graph_url: Option<String>,
    /// Token endpoint override (with `graph_url`).
    #[serde(default)]
    pub token_url: Option<String>,
    /// Verified domains users may be created in.
    #[serde(default)]
    pub domains: Vec<DomainEntry>,
}

/// One `[[target.domains]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainEntry {
    /// Domain name.
    pub name: String,
    /// `managed` or `federated`.
    pub kind: DomainKindName,
}

/// `managed` | `federated`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DomainKindName {
    /// Passwords in Entra ID.
    Managed,
    /// Federated sign-in.
    Federated,
}

/// `global` | `usgov` | `usgov-dod` | `china`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CloudName {
    /// Worldwide.
    #[default]
    Global,
    /// US Government L4.
    Usgov,
    /// US Government L5 (DoD).
    UsgovDod,
    /// China (21Vianet).
    China,
}

/// Stands for a `client_secret` key, which is always refused; it never holds the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedSecret;

const INLINE_SECRET: &str = "client_secret: a secret is never written into the configuration \
     file (it would end up in backups, version control and support bundles); put it in an \
     environment variable and set client_secret_env = \"NAME\", or in a file only the service \
     account can read and set client_secret_file = \"/path\" (or use certificate_file)";

impl<'de> Deserialize<'de> for RefusedSecret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(deserializer)?;
        Err(serde::de::Error::custom(INLINE_SECRET))
    }
}

fn graph_kind() -> String {
    "graph".into()
}
fn direct() -> CreationMode {
    CreationMode::Direct
}
fn redirect() -> String {
    InvitationConfig::default().redirect_url
}
fn twenty_f() -> f64 {
    20.0
}
fn twenty() -> usize {
    20
}

fn err(key: &str, what: impl std::fmt::Display) -> GraphError {
    GraphError::Config(format!("[target] {key}: {what}"))
}

impl TargetConfig {
    /// Checks the values and builds the [`GraphConfig`]; relative paths are resolved against
    /// `base_dir` (the configuration file's directory). Nothing is read from disk or the
    /// environment yet: that happens in [`crate::GraphTarget::new`].
    pub fn into_graph_config(self, base_dir: &Path) -> Result<GraphConfig, GraphError> {
        if self.inline_secret.is_some() {
            return Err(GraphError::Config(format!("[target] {INLINE_SECRET}")));
        }
        if self.kind != "graph" {
            return Err(err(
                "kind",
                format!(
                    "unknown target kind {:?}; the only kind is \"graph\" (Microsoft Graph)",
                    self.kind
                ),
            ));
        }
        for (key, value) in [
            ("tenant_id", &self.tenant_id),
            ("client_id", &self.client_id),
        ] {
            if value.trim().is_empty() {
                return Err(err(
                    key,
                    "must not be empty; copy it from Entra admin center > App registrations > \
                     your app > Overview",
                ));
            }
        }
        let resolve = |p: &PathBuf| {
            if p.is_absolute() {
                p.clone()
            } else {
                base_dir.join(p)
            }
        };
        let credential = match (
            &self.client_secret_env,
            &self.client_secret_file,
            &self.certificate_file,
        ) {
            (Some(var), None, None) => {
                if var.trim().is_empty() || var.contains('=') || var.contains(char::is_whitespace) {
                    return Err(err(
                        "client_secret_env",
                        "must be the NAME of an environment variable (e.g. \
                         \"PARTNERSYNC_CLIENT_SECRET\"), not the secret",
                    ));
                }
                CredentialSource::Secret(SecretSource::Env(var.clone()))
            }
            (None, Some(file), None) => CredentialSource::Secret(SecretSource::File(resolve(file))),
            (None, None, Some(cert)) => CredentialSource::Certificate {
                certificate: resolve(cert),
                private_key: self.private_key_file.as_ref().map(resolve),
            },
            (None, None, None) => {
                return Err(err(
                    "client_secret_env",
                    "no credential: set one of client_secret_env (environment variable \
                     name), client_secret_file or certificate_file",
                ))
            }
            _ => {
                return Err(err(
                    "client_secret_env",
                    "client_secret_env, client_secret_file and certificate_file are \
                     alternatives; set exactly one",
                ))
            }
        };
        if self.private_key_file.is_some() && self.certificate_file.is_none() {
            return Err(err(
                "private_key_file",
                "only makes sense with certificate_file; remove it or add certificate_file",
            ));
        }
        if !(self.writes_per_second.is_finite() && self.writes_per_second > 0.0) {
            return Err(err(
                "writes_per_second",
                "must be a number above 0 (Graph allows 20 per second per app and tenant)",
            ));
        }
        if !(1..=20).contains(&self.batch_size) {
            return Err(err(
                "batch_size",
                format!(
                    "{} is out of range; Graph's $batch takes 1 to 20 requests",
                    self.batch_size
                ),
            ));
        }
        if self.max_concurrency == Some(0) {
            return Err(err("max_concurrency", "must be at least 1"));
        }
        if self.request_timeout_secs == Some(0) {
            return Err(err("request_timeout_secs", "must be at least 1 second"));
        }
        if !self.invite_redirect_url.starts_with("https://") {
            return Err(err(
                "invite_redirect_url",
                "must be an https:// URL (e.g. \"https://myapps.microsoft.com\")",
            ));
        }
        let endpoint = match (&self.graph_url, &self.token_url) {
            (None, None) => None,
            (Some(graph_url), Some(token_url)) => {
                for (key, url) in [("graph_url", graph_url), ("token_url", token_url)] {
                    let parsed = url::Url::parse(url)
                        .map_err(|e| err(key, format!("{url:?} is not a URL ({e})")))?;
                    match parsed.scheme() {
                        "https" => {}
                        "http" if cfg!(feature = "emulator") => {}
                        "http" => {
                            return Err(err(
                                key,
                                "plain http is only for the local Graph emulator (a build \
                                 with partnersync-graph's `emulator` feature); use https",
                            ))
                        }
                        other => {
                            return Err(err(
                                key,
                                format!("unsupported scheme {other:?}; use https"),
                            ))
                        }
                    }
                }
                Some(EndpointOverride {
                    graph_url: graph_url.clone(),
                    token_url: token_url.clone(),
                })
            }
            (Some(_), None) => {
                return Err(err("token_url", "graph_url needs token_url as well"));
            }
            (None, Some(_)) => {
                return Err(err("graph_url", "token_url needs graph_url as well"));
            }
        };
        let anchor_attribute = match &self.anchor_attribute {
            None => AnchorAttribute::default(),
            Some(name) => AnchorAttribute::new(name).map_err(|e| match e {
                GraphError::Config(why) => err("anchor_attribute", why),
            })?,
        };
        let mut verified_domains = Vec::with_capacity(self.domains.len());
        for (i, d) in self.domains.iter().enumerate() {
            let name = d.name.trim();
            if name.is_empty() || !name.contains('.') || name.contains('@') {
                return Err(err(
                    &format!("domains[{i}].name"),
                    format!(
                        "{:?} is not a domain name like \"partners.contoso.com\"",
                        d.name
                    ),
                ));
            }
            if verified_domains
                .iter()
                .any(|v: &VerifiedDomain| v.name.eq_ignore_ascii_case(name))
            {
                return Err(err(
                    &format!("domains[{i}].name"),
                    format!("{name} is listed twice"),
                ));
            }
            verified_domains.push(VerifiedDomain {
                name: name.to_string(),
                kind: match d.kind {
                    DomainKindName::Managed => DomainKind::Managed,
                    DomainKindName::Federated => DomainKind::Federated,
                },
            });
        }
        if self.creation == CreationMode::Direct && verified_domains.is_empty() {
            return Err(err(
                "domains",
                "creation = \"direct\" needs at least one [[target.domains]] entry (a verified \
                 domain of the tenant, managed or federated) to create users in",
            ));
        }
        let defaults = TransportConfig::default();
        let transport = TransportConfig {
            writes_per_second: self.writes_per_second,
            max_concurrency: self.max_concurrency.unwrap_or(defaults.max_concurrency),
            request_timeout: self
                .request_timeout_secs
                .map(Duration::from_secs)
                .unwrap_or(defaults.request_timeout),
            ..defaults
        };
        let mut config = GraphConfig::new(self.tenant_id.trim(), self.client_id.trim(), credential);
        config.cloud = match self.cloud {
            CloudName::Global => NationalCloud::Global,
            CloudName::Usgov => NationalCloud::UsGov,
            CloudName::UsgovDod => NationalCloud::UsGovDod,
            CloudName::China => NationalCloud::China,
        };
        config.endpoint = endpoint;
        config.creation_mode = self.creation;
        config.verified_domains = verified_domains;
        config.invitation = InvitationConfig {
            redirect_url: self.invite_redirect_url,
            send_message: self.send_invitation_message,
            convert_internal_users: self.convert_internal_users,
        };
        config.batch_size = self.batch_size;
        config.anchor_attribute = anchor_attribute;
        config.transport = transport;
        Ok(config)
    }
}

impl GraphConfig {
    /// Builds the config from the `[target]` table (`table` is the table itself, not the
    /// whole file). Relative paths are resolved against `base_dir`, the configuration file's
    /// directory. Errors name the key and say what to do; an inline `client_secret` is
    /// refused without being echoed.
    pub fn from_toml_value(
        table: &toml::Value,
        base_dir: &Path,
    ) -> Result<GraphConfig, GraphError> {
        let Some(map) = table.as_table() else {
            return Err(GraphError::Config(
                "[target] must be a table (a [target] section in the configuration file)".into(),
            ));
        };
        if map.contains_key("client_secret") {
            return Err(GraphError::Config(format!("[target] {INLINE_SECRET}")));
        }
        // Deserialise from text so errors carry a position, which names the key.
        let text = toml::to_string(map)
            .map_err(|e| GraphError::Config(format!("[target] cannot be read: {e}")))?;
        let parsed: TargetConfig = toml::from_str(&text).map_err(|e| {
            let key = e.span().and_then(|span| key_at(&text, span.start));
            let message = e.message().trim().to_string();
            let advice = if message.starts_with("unknown field") {
                "; remove it or check its spelling"
            } else {
                ""
            };
            match key {
                Some(key) if !message.starts_with("unknown field") => {
                    GraphError::Config(format!("[target] {key}: {message}{advice}"))
                }
                _ => GraphError::Config(format!("[target] {message}{advice}")),
            }
        })?;
        parsed.into_graph_config(base_dir)
    }
}

/// The key of the `key = value` line that holds byte `pos` of `text`, prefixed by the
/// array-of-tables section it is in (`domains[1].kind`).
fn key_at(text: &str, pos: usize) -> Option<String> {
    let mut offset = 0;
    let mut section: Option<(String, usize)> = None;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim();
        if let Some(name) = trimmed
            .strip_prefix("[[")
            .and_then(|t| t.strip_suffix("]]"))
        {
            let index = match &section {
                Some((n, i)) if n == name => i + 1,
                _ => 0,
            };
            section = Some((name.to_string(), index));
        }
        if pos < offset + line.len() {
            let key = trimmed.split_once('=')?.0.trim().trim_matches('"');
            return Some(match &section {
                Some((name, i)) => format!("{name}[{i}].{key}"),
                None => key.to_string(),
            });
        }
        offset += line.len();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<GraphConfig, GraphError> {
        let file: toml::Value =
            toml::from_str(text).map_err(|e| GraphError::Config(e.to_string()))?;
        let table = file
            .get("target")
            .cloned()
            .unwrap_or(toml::Value::Integer(0));
        GraphConfig::from_toml_value(&table, Path::new("/etc/partnersync"))
    }

    fn message(text: &str) -> String {
        match parse(text) {
            Ok(c) => panic!("accepted: {c:?}"),
            Err(e) => e.to_string(),
        }
    }

    const BASE: &str = r#"
[target]
kind = "graph"
tenant_id = "contoso.onmicrosoft.com"
client_id = "00000000-0000-4000-8000-000000000001"
client_secret_env = "PARTNERSYNC_CLIENT_SECRET"
cloud = "usgov-dod"
creation = "invitation"
send_invitation_message = true
invite_redirect_url = "https://myapps.microsoft.com"
writes_per_second = 15
batch_size = 10
[[target.domains]]
name = "partners.contoso.com"
kind = "federated"
[[target.domains]]
name = "contoso.com"
kind = "managed"
"#;

    #[test]
    fn the_documented_shape_loads() {
        let c = parse(BASE).expect("loads");
        assert_eq!(c.tenant_id, "contoso.onmicrosoft.com");
        assert_eq!(
            c.credential,
            CredentialSource::Secret(SecretSource::Env("PARTNERSYNC_CLIENT_SECRET".into()))
        );
        assert_eq!(c.cloud, NationalCloud::UsGovDod);
        assert_eq!(c.creation_mode, CreationMode::Invitation);
        assert!(c.invitation.send_message && !c.invitation.convert_internal_users);
        assert_eq!(c.transport.writes_per_second, 15.0);
        assert_eq!(c.batch_size, 10);
        assert_eq!(c.verified_domains.len(), 2);
        assert_eq!(c.verified_domains[0].kind, DomainKind::Federated);
        assert!(c.endpoint.is_none());
    }

    #[test]
    fn relative_files_resolve_against_the_config_directory() {
        let text = BASE.replace(
            "client_secret_env = \"PARTNERSYNC_CLIENT_SECRET\"",
            "certificate_file = \"app.pem\"\nprivate_key_file = \"/secure/app.key\"",
        );
        let c = parse(&text).expect("loads");
        assert_eq!(
            c.credential,
            CredentialSource::Certificate {
                certificate: PathBuf::from("/etc/partnersync/app.pem"),
                private_key: Some(PathBuf::from("/secure/app.key")),
            }
        );
        let text = BASE.replace(
            "client_secret_env = \"PARTNERSYNC_CLIENT_SECRET\"",
            "client_secret_file = \"secret\"",
        );
        assert_eq!(
            parse(&text).expect("loads").credential,
            CredentialSource::Secret(SecretSource::File("/etc/partnersync/secret".into()))
        );
    }

    #[test]
    fn an_inline_secret_is_refused_without_echoing_it() {
        let text = BASE.replace(
            "client_secret_env = \"PARTNERSYNC_CLIENT_SECRET\"",
            "client_secret = \"Xy7~super-secret-value\"",
        );
        let m = message(&text);
        assert!(
            m.contains("client_secret_env") && m.contains("client_secret_file"),
            "{m}"
        );
        assert!(!m.contains("super-secret"), "{m}");
        // Also when a caller deserialises TargetConfig from the file text itself.
        let e = toml::from_str::<std::collections::BTreeMap<String, TargetConfig>>(&text)
            .expect_err("refused");
        assert!(
            e.message().contains("never written into the configuration"),
            "{}",
            e.message()
        );
        assert!(!e.message().contains("super-secret"));
    }

    #[test]
    fn each_error_names_its_key() {
        let cases: &[(&str, &str, &str)] = &[
            ("kind = \"graph\"", "kind = \"ldap\"", "[target] kind:"),
            ("batch_size = 10", "batch_size = 25", "[target] batch_size:"),
            (
                "batch_size = 10",
                "batch_size = \"ten\"",
                "[target] batch_size:",
            ),
            (
                "writes_per_second = 15",
                "writes_per_second = 0",
                "[target] writes_per_second:",
            ),
            (
                "writes_per_second = 15",
                "writes_per_second = \"fast\"",
                "[target] writes_per_second:",
            ),
            (
                "cloud = \"usgov-dod\"",
                "cloud = \"mars\"",
                "[target] cloud:",
            ),
            (
                "creation = \"invitation\"",
                "creation = \"magic\"",
                "[target] creation:",
            ),
            (
                "kind = \"federated\"",
                "kind = \"cloud\"",
                "[target] domains[0].kind:",
            ),
            (
                "name = \"contoso.com\"",
                "name = \"partners.contoso.com\"",
                "[target] domains[1].name:",
            ),
            (
                "name = \"contoso.com\"",
                "name = \"contoso\"",
                "[target] domains[1].name:",
            ),
            (
                "invite_redirect_url = \"https://myapps.microsoft.com\"",
                "invite_redirect_url = \"myapps\"",
                "[target] invite_redirect_url:",
            ),
            (
                "kind = \"graph\"",
                "kind = \"graph\"\ngraph_url = \"https://graph.microsoft.us/v1.0\"",
                "[target] token_url:",
            ),
            (
                "kind = \"graph\"",
                "kind = \"graph\"\nprivate_key_file = \"k.pem\"",
                "[target] private_key_file:",
            ),
            (
                "kind = \"graph\"",
                "kind = \"graph\"\nclient_secret_file = \"s\"",
                "alternatives",
            ),
            (
                "client_id = \"00000000-0000-4000-8000-000000000001\"",
                "client_id = \" \"",
                "[target] client_id:",
            ),
            (
                "client_secret_env = \"PARTNERSYNC_CLIENT_SECRET\"",
                "",
                "no credential",
            ),
            (
                "client_secret_env = \"PARTNERSYNC_CLIENT_SECRET\"",
                "client_secret_env = \"abc def\"",
                "[target] client_secret_env:",
            ),
        ];
        for (from, to, expected) in cases {
            assert!(BASE.contains(from), "{from}");
            let m = message(&BASE.replacen(from, to, 1));
            assert!(m.contains(expected), "{to}: {m}");
        }
        // A missing required key.
        let m = message(&BASE.replace("tenant_id = \"contoso.onmicrosoft.com\"\n", ""));
        assert!(m.contains("tenant_id"), "{m}");
        // Direct creation without domains.
        let m =
            message("[target]\ntenant_id = \"t\"\nclient_id = \"c\"\nclient_secret_env = \"S\"\n");
        assert!(m.contains("[target] domains:"), "{m}");
        // Not a table.
        assert!(message("target = 3").contains("must be a table"));
    }

    #[test]
    fn the_anchor_attribute_is_checked_at_load() {
        assert_eq!(
            parse(BASE).expect("loads").anchor_attribute,
            AnchorAttribute::immutable_id()
        );
        let with = |value: &str| {
            BASE.replace(
                "batch_size = 10",
                &format!("batch_size = 10\nanchor_attribute = {value:?}"),
            )
        };
        let name = "extension_0b9e4f3a7c214d8eb5a62f1e9c8d7b64_partnerAnchor";
        let c = parse(&with(name)).expect("loads");
        assert_eq!(c.anchor_attribute.name(), name);
        assert!(c.anchor_attribute.is_extension());
        assert_eq!(
            parse(&with("onpremisesimmutableid"))
                .expect("loads")
                .anchor_attribute,
            AnchorAttribute::immutable_id()
        );
        for bad in [
            "employeeId",
            "extension_partnerAnchor",
            "extension_0b9e4f3a-7c21-4d8e-b5a6-2f1e9c8d7b64_partnerAnchor",
            "extension_0b9e4f3a7c214d8eb5a62f1e9c8d7b64_",
            "extension_0b9e4f3a7c214d8eb5a62f1e9c8d7b64_partner-anchor",
            "",
        ] {
            let m = message(&with(bad));
            assert!(m.contains("[target] anchor_attribute:"), "{bad}: {m}");
            assert!(
                m.contains("onPremisesImmutableId") && m.contains("without hyphens"),
                "{bad}: {m}"
            );
        }
    }

    #[test]
    fn unknown_keys_are_named() {
        let m = message(&BASE.replace("batch_size = 10", "batchsize = 10"));
        assert!(m.contains("`batchsize`") && m.contains("spelling"), "{m}");
        let m = message(&BASE.replace("kind = \"managed\"", "kind = \"managed\"\nverified = true"));
        assert!(m.contains("`verified`"), "{m}");
    }

    #[test]
    fn endpoints_for_the_emulator() {
        let text = BASE.replace(
            "kind = \"graph\"",
            "kind = \"graph\"\ngraph_url = \"http://127.0.0.1:8787/v1.0\"\ntoken_url = \"http://127.0.0.1:8787/t/oauth2/v2.0/token\"",
        );
        let r = parse(&text);
        if cfg!(feature = "emulator") {
            assert_eq!(
                r.expect("loads").endpoint.map(|e| e.graph_url),
                Some("http://127.0.0.1:8787/v1.0".to_string())
            );
        } else {
            assert!(r.is_err_and(|e| e.to_string().contains("emulator")));
        }
        let m = message(&BASE.replace(
            "kind = \"graph\"",
            "kind = \"graph\"\ngraph_url = \"ftp://x\"\ntoken_url = \"https://x\"",
        ));
        assert!(m.contains("[target] graph_url:"), "{m}");
    }
}
