use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::dn;
use crate::error::LdapSourceError;

/// The largest page size: Active Directory's MaxPageSize (larger requests are silently capped).
pub const MAX_PAGE_SIZE: u32 = 1000;
/// The default page size.
pub const DEFAULT_PAGE_SIZE: u32 = 500;

/// Which delta mechanism to use (`delta = "…"` in the configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeltaChoice {
    /// DirSync on Active Directory, syncrepl where the server offers it, otherwise none.
    #[default]
    Auto,
    /// Active Directory's DirSync control.
    DirSync,
    /// Active Directory uSNChanged polling.
    UsnChanged,
    /// RFC 4533 syncrepl, refreshOnly (OpenLDAP syncprov, 389-ds content sync).
    SyncRepl,
    /// No delta reads: every read is a full read.
    None,
}

impl DeltaChoice {
    /// The configuration spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            DeltaChoice::Auto => "auto",
            DeltaChoice::DirSync => "dirsync",
            DeltaChoice::UsnChanged => "usnchanged",
            DeltaChoice::SyncRepl => "syncrepl",
            DeltaChoice::None => "none",
        }
    }
}

/// How to reach and read an LDAP directory: the `[source]` table (with `kind = "ldap"`) of a
/// partnersync configuration. Load it with [`LdapConfig::from_toml_str`] or deserialize it
/// and call [`LdapConfig::validate`]: URL, base DNs, filter, page size and OU lists are
/// checked at load time, not at the first read.
///
/// The password is never part of the configuration: `password_env` names an environment
/// variable, `password_file` a file, holding it.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LdapConfig {
    /// `ldap://host[:port]` (StartTLS by default) or `ldaps://host[:port]`.
    pub url: String,
    /// Where to search (subtree). Empty: the server's default naming context.
    #[serde(default, alias = "base_dn")]
    pub base_dns: Vec<String>,
    /// The LDAP filter (RFC 4515) entries must match.
    #[serde(default = "default_filter")]
    pub filter: String,
    /// Entries per page of the paged-results control, 1..=1000.
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// Only entries under one of these DNs are read (empty: everything under the bases).
    #[serde(default)]
    pub include_ous: Vec<String>,
    /// Entries under one of these DNs are skipped.
    #[serde(default)]
    pub exclude_ous: Vec<String>,
    /// The attributes to read (the ones the rules need). Empty: all user attributes.
    #[serde(default)]
    pub attributes: Vec<String>,
    /// The anchor attributes, first present wins. Default: `ms-DS-ConsistencyGuid`, then
    /// `objectGUID` on Active Directory; `entryUUID`, then `nsUniqueId` elsewhere.
    #[serde(default)]
    pub anchor: Vec<String>,
    /// The DN (or, on AD, `user@domain`) to bind as. None: anonymous.
    #[serde(default)]
    pub bind_dn: Option<String>,
    /// The environment variable holding the bind password.
    #[serde(default)]
    pub password_env: Option<String>,
    /// A file holding the bind password (trailing newline ignored).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// A PEM file with the CA certificate(s) to trust, in addition to the system's.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Use StartTLS on `ldap://` URLs (default true).
    #[serde(default = "default_true")]
    pub starttls: bool,
    /// Allow a simple bind over an unencrypted connection.
    #[serde(default)]
    pub allow_plaintext_bind: bool,
    /// Do not check the server certificate. Dangerous: anyone on the path can read the
    /// password. Logged loudly on every connection.
    #[serde(default)]
    pub insecure_skip_verify: bool,
    /// Seconds to wait for the TCP and TLS connection.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_secs: u64,
    /// Seconds to wait for each operation (each page of a search).
    #[serde(default = "default_operation_timeout")]
    pub operation_timeout_secs: u64,
    /// The delta mechanism.
    #[serde(default)]
    pub delta: DeltaChoice,
    /// The filter DirSync and uSNChanged deletion checks use to find candidate objects
    /// (must match tombstones, so not `objectCategory`).
    #[serde(default = "default_change_filter")]
    pub change_filter: String,
}

fn default_filter() -> String {
    "(|(objectClass=user)(objectClass=inetOrgPerson))".into()
}
fn default_change_filter() -> String {
    "(|(objectClass=user)(objectClass=group)(objectClass=contact)(objectClass=inetOrgPerson))"
        .into()
}
fn default_page_size() -> u32 {
    DEFAULT_PAGE_SIZE
}
fn default_true() -> bool {
    true
}
fn default_connect_timeout() -> u64 {
    10
}
fn default_operation_timeout() -> u64 {
    120
}

/// Passwords stay out of `Debug` output: the config shows where the password comes from only.
impl fmt::Debug for LdapConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LdapConfig")
            .field("url", &self.url)
            .field("base_dns", &self.base_dns)
            .field("filter", &self.filter)
            .field("page_size", &self.page_size)
            .field("include_ous", &self.include_ous)
            .field("exclude_ous", &self.exclude_ous)
            .field("attributes", &self.attributes)
            .field("anchor", &self.anchor)
            .field("bind_dn", &self.bind_dn)
            .field("password_env", &self.password_env)
            .field("password_file", &self.password_file)
            .field("ca_file", &self.ca_file)
            .field("starttls", &self.starttls)
            .field("allow_plaintext_bind", &self.allow_plaintext_bind)
            .field("insecure_skip_verify", &self.insecure_skip_verify)
            .field("delta", &self.delta)
            .finish_non_exhaustive()
    }
}

impl LdapConfig {
    /// A configuration with defaults for everything but the URL (for building one in code).
    pub fn new(url: impl Into<String>) -> Self {
        LdapConfig {
            url: url.into(),
            base_dns: Vec::new(),
            filter: default_filter(),
            page_size: DEFAULT_PAGE_SIZE,
            include_ous: Vec::new(),
            exclude_ous: Vec::new(),
            attributes: Vec::new(),
            anchor: Vec::new(),
            bind_dn: None,
            password_env: None,
            password_file: None,
            ca_file: None,
            starttls: true,
            allow_plaintext_bind: false,
            insecure_skip_verify: false,
            connect_timeout_secs: default_connect_timeout(),
            operation_timeout_secs: default_operation_timeout(),
            delta: DeltaChoice::Auto,
            change_filter: default_change_filter(),
        }
    }

    /// Parses a TOML table holding only the LDAP settings, then validates it.
    pub fn from_toml_str(text: &str) -> Result<Self, LdapSourceError> {
        let config: LdapConfig = toml::from_str(text).map_err(|e| LdapSourceError::Config {
            field: "source",
            reason: e.message().to_string(),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks everything that can be checked without a server.
    pub fn validate(&self) -> Result<(), LdapSourceError> {
        let bad =
            |field: &'static str, reason: String| Err(LdapSourceError::Config { field, reason });
        let url = self.url.trim();
        let rest = match url.split_once("://") {
            Some(("ldap" | "ldaps", rest)) => rest,
            _ => {
                return bad(
                    "url",
                    format!("'{}' is not an ldap:// or ldaps:// URL", self.url),
                )
            }
        };
        let hostport = rest.split('/').next().unwrap_or("");
        if hostport.is_empty() {
            return bad("url", format!("'{}' has no host", self.url));
        }
        if let Some((_, port)) = hostport.rsplit_once(':') {
            if !hostport.ends_with(']') && port.parse::<u16>().is_err() {
                return bad(
                    "url",
                    format!("'{}' has an invalid port '{port}'", self.url),
                );
            }
        }
        if self.page_size == 0 || self.page_size > MAX_PAGE_SIZE {
            return bad(
                "page_size",
                format!(
                    "is {}; it must be between 1 and {MAX_PAGE_SIZE} (Active Directory caps pages at 1000)",
                    self.page_size
                ),
            );
        }
        validate_filter("filter", &self.filter)?;
        validate_filter("change_filter", &self.change_filter)?;
        for (field, dns) in [
            ("base_dns", &self.base_dns),
            ("include_ous", &self.include_ous),
            ("exclude_ous", &self.exclude_ous),
        ] {
            for d in dns {
                if let Err(reason) = dn::validate(d) {
                    return bad(field, format!("'{d}' is not a valid DN: {reason}"));
                }
            }
        }
        for a in self.attributes.iter().chain(&self.anchor) {
            let ok = !a.is_empty()
                && (a == "*"
                    || a == "+"
                    || a.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-.;=*".contains(c)));
            if !ok {
                return bad("attributes", format!("'{a}' is not an attribute name"));
            }
        }
        if self.password_env.is_some() && self.password_file.is_some() {
            return bad(
                "password_env",
                "and password_file are both set; use one".to_string(),
            );
        }
        if self.bind_dn.is_some() && self.password_env.is_none() && self.password_file.is_none() {
            return bad(
                "bind_dn",
                "is set but neither password_env nor password_file says where the password is"
                    .to_string(),
            );
        }
        if self.connect_timeout_secs == 0 || self.operation_timeout_secs == 0 {
            return bad(
                "connect_timeout_secs",
                "and operation_timeout_secs must be at least 1".to_string(),
            );
        }
        Ok(())
    }

    /// Whether the URL is `ldaps://`.
    pub fn is_ldaps(&self) -> bool {
        self.url.trim().starts_with("ldaps://")
    }

    /// Whether the connection will be encrypted (LDAPS or StartTLS).
    pub fn is_encrypted(&self) -> bool {
        self.is_ldaps() || self.starttls
    }

    pub(crate) fn connect_timeout(&self) -> Duration {
        Duration::from_secs(self.connect_timeout_secs)
    }

    pub(crate) fn operation_timeout(&self) -> Duration {
        Duration::from_secs(self.operation_timeout_secs)
    }

    /// Reads the bind password from the environment variable or file. Never logged.
    pub(crate) fn password(&self) -> Result<Option<Password>, LdapSourceError> {
        if let Some(var) = &self.password_env {
            return match std::env::var(var) {
                Ok(p) => Ok(Some(Password(p))),
                Err(std::env::VarError::NotPresent) => Err(LdapSourceError::Password {
                    reason: format!("the environment variable {var} (password_env) is not set"),
                }),
                Err(std::env::VarError::NotUnicode(_)) => Err(LdapSourceError::Password {
                    reason: format!("the environment variable {var} is not valid UTF-8"),
                }),
            };
        }
        if let Some(path) = &self.password_file {
            let text = std::fs::read_to_string(path).map_err(|e| LdapSourceError::Password {
                reason: format!("cannot read password_file '{}': {e}", path.display()),
            })?;
            let text = text.strip_suffix('\n').unwrap_or(&text);
            let text = text.strip_suffix('\r').unwrap_or(text);
            return Ok(Some(Password(text.to_string())));
        }
        Ok(None)
    }
}

/// A bind password; `Debug` does not show it.
pub(crate) struct Password(pub(crate) String);

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(…)")
    }
}

fn validate_filter(field: &'static str, filter: &str) -> Result<(), LdapSourceError> {
    let f = filter.trim();
    if !f.starts_with('(') || !f.ends_with(')') || ldap3::parse_filter(f).is_err() {
        return Err(LdapSourceError::Config {
            field,
            reason: format!(
                "'{filter}' is not a valid LDAP filter (RFC 4515), e.g. \
                 (&(objectClass=user)(extensionAttribute1=Partner)); escape special characters \
                 in values as \\2a \\28 \\29 \\5c"
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> String {
        "url = \"ldaps://dc1.contoso.com\"\nbase_dns = [\"OU=Partners,DC=contoso,DC=com\"]\n"
            .to_string()
    }

    #[test]
    fn defaults_and_a_valid_config() {
        let c = LdapConfig::from_toml_str(&base()).unwrap();
        assert_eq!(c.page_size, 500);
        assert_eq!(c.delta, DeltaChoice::Auto);
        assert!(c.starttls && c.is_ldaps() && c.is_encrypted());
        let c = LdapConfig::from_toml_str(&format!(
            "{}delta = \"usnchanged\"\npage_size = 1000\nbind_dn = \"x\"\npassword_env = \"P\"\n",
            base()
        ))
        .unwrap();
        assert_eq!(c.delta, DeltaChoice::UsnChanged);
    }

    #[test]
    fn bad_settings_are_refused_at_load() {
        let cases = [
            ("page_size = 1001\n", "page_size"),
            ("page_size = 0\n", "page_size"),
            (
                "filter = \"(objectClass=user\"\n",
                "not a valid LDAP filter",
            ),
            ("filter = \"objectClass=user\"\n", "not a valid LDAP filter"),
            ("exclude_ous = [\"not a dn\"]\n", "not a valid DN"),
            ("bind_dn = \"cn=x\"\n", "neither password_env"),
            ("delta = \"sometimes\"\n", "unknown variant"),
            ("typo_key = 1\n", "unknown field"),
            ("attributes = [\"cn)(x\"]\n", "not an attribute name"),
        ];
        for (extra, expected) in cases {
            let err = LdapConfig::from_toml_str(&format!("{}{extra}", base())).unwrap_err();
            assert!(err.to_string().contains(expected), "{extra}: {err}");
        }
        let err = LdapConfig::from_toml_str("url = \"http://x\"").unwrap_err();
        assert!(err.to_string().contains("not an ldap://"), "{err}");
        let err = LdapConfig::from_toml_str("url = \"ldap://x:99999\"").unwrap_err();
        assert!(err.to_string().contains("invalid port"), "{err}");
    }

    #[test]
    fn passwords_come_from_env_or_file_and_are_not_printed() {
        let mut c = LdapConfig::new("ldap://127.0.0.1");
        c.password_env = Some("PARTNERSYNC_TEST_UNSET_VARIABLE_X".into());
        let err = c.password().unwrap_err();
        assert!(err.to_string().contains("is not set"), "{err}");
        let dir = std::env::temp_dir().join(format!("ps-ldap-pw-{}", std::process::id()));
        std::fs::write(&dir, "s3cret\n").unwrap();
        c.password_env = None;
        c.password_file = Some(dir.clone());
        let pw = c.password().unwrap().unwrap();
        assert_eq!(pw.0, "s3cret");
        assert_eq!(format!("{pw:?}"), "Password(…)");
        assert!(!format!("{c:?}").contains("s3cret"));
        let _ = std::fs::remove_file(dir);
    }
}
