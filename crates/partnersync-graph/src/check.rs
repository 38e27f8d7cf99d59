//! `GraphTarget::check`: can this app, with this configuration, sync this tenant? The
//! findings behind `partnersync target check`, in plain words with what to do.
//!
//! How permissions are judged: reading is *probed* (one `GET /users?$top=1`); writing and
//! inviting are read from the token's `roles` claim — the application permissions Entra ID
//! granted with admin consent, which is exactly what Graph authorises app-only calls
//! against. No test write is made: a probe write would spend write quota, and a "harmless"
//! write to a missing object tells nothing reliable (Graph may answer 404 before checking
//! the permission).

use graph_rs_sdk::header::{HeaderName, HeaderValue};
use graph_rs_sdk::ODataQuery;
use partnersync_target::{ErrorCategory, TargetError};
use serde::Serialize;
use serde_json::Value;

use crate::config::{Credential, CredentialSource, DomainKind, SecretSource};
use crate::transport::Cost;
use crate::{json_of, CreationMode, GraphTarget};

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Works.
    Ok,
    /// Worth a look; does not stop a sync.
    Warning,
    /// Blocks a sync: a permission or a domain is missing, or authentication fails.
    Missing,
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// How serious.
    pub level: Level,
    /// A stable identifier (`auth`, `read_users`, `anchor_attribute`, `write_users`,
    /// `invite`, `domains`, `domain:<name>`, `certificate`, …).
    pub code: String,
    /// What was found and, unless it is fine, what to do.
    pub message: String,
}

/// A domain of the tenant (`GET /domains`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TenantDomain {
    /// Domain name.
    pub name: String,
    /// Whether ownership is verified.
    pub verified: bool,
    /// `Managed` or `Federated`.
    pub authentication: String,
    /// The initial `*.onmicrosoft.com` domain.
    pub initial: bool,
}

/// What [`GraphTarget::check`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckReport {
    /// Findings, in the order checked.
    pub findings: Vec<Finding>,
    /// The application permissions in the token (`roles`).
    pub roles: Vec<String>,
    /// The tenant's domains, when they could be listed.
    pub domains: Vec<TenantDomain>,
}

impl CheckReport {
    /// Whether any finding blocks a sync.
    pub fn blocks_sync(&self) -> bool {
        self.findings.iter().any(|f| f.level == Level::Missing)
    }
}

const CONSENT: &str = "Entra admin center > Identity > Applications > App registrations > \
     (this app) > API permissions > Add a permission > Microsoft Graph > Application \
     permissions, then \"Grant admin consent\"";

fn finding(level: Level, code: impl Into<String>, message: impl Into<String>) -> Finding {
    Finding {
        level,
        code: code.into(),
        message: message.into(),
    }
}

impl GraphTarget {
    /// Authenticates, probes read permission and the query that lists managed users by the
    /// anchor attribute, reads write and invite permissions from the token, lists the
    /// tenant's domains and compares them with the configured ones. Never writes. Authentication failures are findings, not errors.
    pub async fn check(&self) -> CheckReport {
        let mut report = CheckReport {
            findings: Vec::new(),
            roles: Vec::new(),
            domains: Vec::new(),
        };
        let config = &self.inner.config;
        let credential = match &config.credential {
            CredentialSource::Secret(SecretSource::Env(v)) => {
                format!("client secret from environment variable {v}")
            }
            CredentialSource::Secret(SecretSource::File(p)) => {
                format!("client secret from {}", p.display())
            }
            CredentialSource::Certificate { certificate, .. } => {
                format!("certificate {}", certificate.display())
            }
        };
        if let Credential::Certificate(cert) = self.inner.transport.tokens().credential() {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0);
            let days = (cert.not_after() - now) / 86_400;
            let (level, text) = if cert.not_after() <= now {
                (
                    Level::Missing,
                    "has EXPIRED; create a new one and upload it under Certificates & secrets"
                        .to_string(),
                )
            } else if days < 30 {
                (
                    Level::Warning,
                    format!("expires in {days} days; renew it and upload the new one under Certificates & secrets"),
                )
            } else {
                (Level::Ok, format!("valid for {days} more days"))
            };
            report.findings.push(finding(
                level,
                "certificate",
                format!(
                    "certificate {} (thumbprint {}) {text}",
                    cert.subject(),
                    cert.thumbprint()
                ),
            ));
        }
        // Authentication.
        match self.inner.transport.tokens().roles().await {
            Ok(roles) => {
                report.findings.push(finding(
                    Level::Ok,
                    "auth",
                    format!(
                        "authenticated to tenant {} as app {} with {credential}",
                        config.tenant_id, config.client_id
                    ),
                ));
                report.roles = roles;
            }
            Err(e) => {
                report.findings.push(finding(
                    Level::Missing,
                    "auth",
                    format!(
                        "cannot authenticate with {credential}: {}. {}",
                        e.message,
                        auth_advice(&e)
                    ),
                ));
                return report;
            }
        }
        let has = |names: &[&str]| {
            report
                .roles
                .iter()
                .find(|r| names.iter().any(|n| r.eq_ignore_ascii_case(n)))
                .cloned()
        };
        // Read: probed.
        let read = self.probe_read().await;
        let can_read = read.is_ok();
        match read {
            Ok(()) => {
                let via = has(&[
                    "User.Read.All",
                    "User.ReadWrite.All",
                    "Directory.Read.All",
                    "Directory.ReadWrite.All",
                ]);
                report.findings.push(finding(
                    Level::Ok,
                    "read_users",
                    match via {
                        Some(r) => format!("can read users ({r})"),
                        None => "can read users".to_string(),
                    },
                ));
            }
            Err(e) if e.category == ErrorCategory::Permission => {
                report.findings.push(finding(
                    Level::Missing,
                    "read_users",
                    format!(
                        "cannot read users ({}: {}). Grant the User.ReadWrite.All application \
                         permission (it includes reading): {CONSENT}",
                        e.code, e.message
                    ),
                ));
            }
            Err(e) => {
                report.findings.push(finding(
                    Level::Missing,
                    "read_users",
                    format!("reading users failed: {e}"),
                ));
            }
        }
        // The anchor attribute: the query that lists managed users, probed.
        if can_read {
            report.findings.push(self.check_anchor_attribute().await);
        }
        // Write and invite: from the token's roles.
        let write = has(&["User.ReadWrite.All", "Directory.ReadWrite.All"]);
        report.findings.push(match &write {
            Some(r) => finding(
                Level::Ok,
                "write_users",
                format!("can create, update, disable, delete and restore users ({r} granted)"),
            ),
            None => finding(
                Level::Missing,
                "write_users",
                format!(
                    "User.ReadWrite.All application permission is not granted, so partnersync \
                     cannot create, update, disable or delete users. Add it: {CONSENT}"
                ),
            ),
        });
        if config.creation_mode == CreationMode::Invitation {
            let invite = has(&[
                "User.Invite.All",
                "User.ReadWrite.All",
                "Directory.ReadWrite.All",
            ]);
            report.findings.push(match invite {
                Some(r) => finding(
                    Level::Ok,
                    "invite",
                    format!("can invite B2B guests ({r} granted)"),
                ),
                None => finding(
                    Level::Missing,
                    "invite",
                    format!(
                        "creation = \"invitation\" needs the User.Invite.All application \
                         permission. Add it: {CONSENT}"
                    ),
                ),
            });
        }
        // Domains.
        match self.tenant_domains().await {
            Ok(domains) => {
                report.findings.push(finding(
                    Level::Ok,
                    "domains",
                    format!("listed {} domains of the tenant", domains.len()),
                ));
                for wanted in &config.verified_domains {
                    let found = domains
                        .iter()
                        .find(|d| d.name.eq_ignore_ascii_case(&wanted.name));
                    let want_kind = match wanted.kind {
                        DomainKind::Managed => "managed",
                        DomainKind::Federated => "federated",
                    };
                    let code = format!("domain:{}", wanted.name);
                    report.findings.push(match found {
                        None => finding(
                            Level::Missing,
                            code,
                            format!(
                                "[[target.domains]] {} is not a domain of this tenant; add and \
                                 verify it (Entra admin center > Settings > Domain names) or \
                                 remove it from the configuration",
                                wanted.name
                            ),
                        ),
                        Some(d) if !d.verified => finding(
                            Level::Missing,
                            code,
                            format!(
                                "{} is added to the tenant but not verified; users cannot be \
                                 created in it until its DNS record is verified",
                                d.name
                            ),
                        ),
                        Some(d) if !d.authentication.eq_ignore_ascii_case(want_kind) => finding(
                            Level::Warning,
                            code,
                            format!(
                                "{} is {} in the tenant but configured as {want_kind}; set \
                                 kind = \"{}\" in its [[target.domains]] entry",
                                d.name,
                                d.authentication.to_ascii_lowercase(),
                                d.authentication.to_ascii_lowercase()
                            ),
                        ),
                        Some(d) => finding(
                            Level::Ok,
                            code,
                            format!("{} is verified and {want_kind}", d.name),
                        ),
                    });
                }
                report.domains = domains;
            }
            Err(e) => {
                report.findings.push(finding(
                    Level::Warning,
                    "domains",
                    format!(
                        "cannot list the tenant's domains ({}: {}), so [[target.domains]] is \
                         not checked; grant Domain.Read.All to let this check verify it",
                        e.code, e.message
                    ),
                ));
            }
        }
        report
    }

    /// Runs the managed-user query (`<anchor attribute> ne null`) for one user: it fails
    /// when the attribute is not a property Graph knows for users, e.g. an extension
    /// property that is not registered or misspelt.
    async fn check_anchor_attribute(&self) -> Finding {
        let attribute = self.anchor_attribute();
        let name = attribute.name();
        let filter = format!("{name} ne null");
        let reply = self
            .inner
            .transport
            .send(Cost::Read, || {
                self.client()
                    .users()
                    .list_user()
                    .filter(&[&filter])
                    .select(&["id", name])
                    .top("1")
                    .count("true")
                    .header(
                        HeaderName::from_static("consistencylevel"),
                        HeaderValue::from_static("eventual"),
                    )
            })
            .await;
        match reply.and_then(|r| json_of::<Value>(&r)) {
            Ok(_) if attribute.is_extension() => finding(
                Level::Ok,
                "anchor_attribute",
                format!(
                    "users are bound to their source objects through the extension property                      {name} (anchor_attribute), and Graph lists users by it"
                ),
            ),
            Ok(_) => finding(
                Level::Ok,
                "anchor_attribute",
                format!("users are bound to their source objects through {name}"),
            ),
            Err(e) if attribute.is_extension() => finding(
                Level::Missing,
                "anchor_attribute",
                format!(
                    "Graph cannot list users by the extension property {name} ({}: {}). \
                     Register it on an app of this tenant for users (POST \
                     /applications/{{object id}}/extensionProperties with targetObjects \
                     [\"User\"] and dataType String), write its full name exactly as Graph \
                     reports it in anchor_attribute, or remove anchor_attribute to use \
                     onPremisesImmutableId",
                    e.code, e.message
                ),
            ),
            Err(e) => finding(
                Level::Missing,
                "anchor_attribute",
                format!("Graph cannot list users by {name} ({}: {})", e.code, e.message),
            ),
        }
    }

    async fn probe_read(&self) -> Result<(), TargetError> {
        let reply = self
            .inner
            .transport
            .send(Cost::Read, || {
                self.client().users().list_user().select(&["id"]).top("1")
            })
            .await?;
        json_of::<Value>(&reply).map(|_| ())
    }

    async fn tenant_domains(&self) -> Result<Vec<TenantDomain>, TargetError> {
        let reply = self
            .inner
            .transport
            .send(Cost::Read, || self.client().domains().list_domain())
            .await?;
        let v: Value = json_of(&reply)?;
        Ok(v["value"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|d| {
                        Some(TenantDomain {
                            name: d["id"].as_str()?.to_string(),
                            verified: d["isVerified"].as_bool().unwrap_or(false),
                            authentication: d["authenticationType"]
                                .as_str()
                                .unwrap_or("Managed")
                                .to_string(),
                            initial: d["isInitial"].as_bool().unwrap_or(false),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default())
    }
}

/// What to do about a token endpoint refusal, by its AADSTS code.
fn auth_advice(e: &TargetError) -> &'static str {
    let m = &e.message;
    if m.contains("AADSTS7000215") || m.contains("AADSTS7000222") {
        "The client secret is wrong or expired: create a new one under App registrations > \
         (this app) > Certificates & secrets and store its Value (not its ID)"
    } else if m.contains("AADSTS700027") {
        "Entra ID does not know this certificate: upload its public part (.cer/.pem) under \
         App registrations > (this app) > Certificates & secrets"
    } else if m.contains("AADSTS700016") {
        "The client_id is not an app of this tenant: copy the Application (client) ID from \
         App registrations > (this app) > Overview, and check tenant_id"
    } else if m.contains("AADSTS90002") {
        "The tenant was not found: check tenant_id (the Directory (tenant) ID or a verified \
         domain) and the cloud setting"
    } else if e.category == ErrorCategory::Transient {
        "The token endpoint could not be reached: check the network path and proxy to the \
         login host"
    } else {
        "Check tenant_id, client_id and the credential"
    }
}
