use std::path::PathBuf;

use partnersync_source::{AnchorProblem, SourceError};

/// Everything that can go wrong talking to an LDAP server, sorted by what an administrator
/// does about it. Each message names the server, DN or file concerned and, where there is
/// one, the fix. No message ever contains a password.
///
/// Reads return these wrapped in [`SourceError::Backend`]; downcast to get them back:
///
/// ```
/// use partnersync_ldap::LdapSourceError;
/// use partnersync_source::SourceError;
///
/// let err = SourceError::from(LdapSourceError::BadCredentials { bind_dn: "cn=reader".into() });
/// let SourceError::Backend(inner) = &err else { unreachable!() };
/// assert!(matches!(
///     inner.downcast_ref::<LdapSourceError>(),
///     Some(LdapSourceError::BadCredentials { .. })
/// ));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LdapSourceError {
    /// The configuration is invalid.
    #[error("source configuration: '{field}' {reason}")]
    Config {
        /// The offending setting.
        field: &'static str,
        /// What is wrong and what is expected.
        reason: String,
    },
    /// The bind password could not be obtained.
    #[error("bind password: {reason}")]
    Password {
        /// Why (never the password itself).
        reason: String,
    },
    /// The server could not be reached.
    #[error(
        "cannot reach {url}: {reason}; check the host name, the port and that the server is \
         running and reachable from here"
    )]
    Unreachable {
        /// The server URL.
        url: String,
        /// What the network stack said.
        reason: String,
    },
    /// An operation did not finish in time.
    #[error(
        "{operation} on {url} timed out after {seconds} s; raise the timeout or check the server"
    )]
    Timeout {
        /// The server URL.
        url: String,
        /// What was being done.
        operation: String,
        /// The timeout that expired.
        seconds: u64,
    },
    /// The server's certificate is not trusted.
    #[error(
        "the TLS certificate of {url} is not trusted: {reason}{}; give the CA that issued it with \
         ca_file (--ca-file)",
        certificate.as_deref().map(|c| format!(" (certificate: {c})")).unwrap_or_default()
    )]
    UntrustedCertificate {
        /// The server URL.
        url: String,
        /// Subject and issuer of the certificate the server presented, when they could be read.
        certificate: Option<String>,
        /// Why it was rejected (what the TLS library said).
        reason: String,
    },
    /// TLS failed for another reason.
    #[error("TLS with {url} failed: {reason}")]
    Tls {
        /// The server URL.
        url: String,
        /// What the TLS library said.
        reason: String,
    },
    /// A simple bind would send the password in clear text.
    #[error(
        "refusing to send the bind password for {bind_dn} in clear text to {url}: use ldaps:// or \
         StartTLS (starttls = true), or set allow_plaintext_bind = true if the network is trusted"
    )]
    PlaintextBindRefused {
        /// The server URL.
        url: String,
        /// The bind DN.
        bind_dn: String,
    },
    /// The bind DN or password is wrong.
    #[error(
        "the server rejected the credentials of {bind_dn} (invalid credentials); check the bind \
         DN and the password (and that the account is enabled and not locked)"
    )]
    BadCredentials {
        /// The bind DN.
        bind_dn: String,
    },
    /// The server demands transport encryption before a simple bind.
    #[error(
        "{url} requires a protected connection before a simple bind ({text}); use ldaps:// or \
         StartTLS"
    )]
    StrongAuthRequired {
        /// The server URL.
        url: String,
        /// The server's diagnostic text.
        text: String,
    },
    /// The server stopped a search at its size limit.
    #[error(
        "the server's size limit stopped the search under {base} after {entries} entries; raise \
         the limit for the bind account (OpenLDAP: `limits dn.exact=\"<bind DN>\" size=unlimited`; \
         AD: MaxPageSize/MaxResultSetSize) or use paging"
    )]
    SizeLimitExceeded {
        /// The search base.
        base: String,
        /// Entries received before the limit hit.
        entries: u64,
    },
    /// The server stopped a search at its time limit.
    #[error(
        "the server's time limit stopped the search under {base}; raise it for the bind account"
    )]
    TimeLimitExceeded {
        /// The search base.
        base: String,
    },
    /// The base DN does not exist (or is invisible to the bind account).
    #[error("the base DN {base} does not exist on the server (or the bind account cannot see it)")]
    NoSuchBase {
        /// The base DN.
        base: String,
    },
    /// The account lacks "Replicating Directory Changes" for DirSync.
    #[error(
        "{bind_dn} may not use DirSync on {naming_context} ({text}); grant it \"Replicating \
         Directory Changes\" on the domain head (and list/read on CN=Deleted Objects to see \
         deletions), or set delta = \"usnchanged\""
    )]
    DirSyncPrivilegeMissing {
        /// The bind DN.
        bind_dn: String,
        /// The naming context DirSync was used on.
        naming_context: String,
        /// The server's diagnostic text.
        text: String,
    },
    /// The server does not offer a control that the configured delta mechanism needs.
    #[error(
        "delta = \"{mechanism}\" needs the {control_name} control ({oid}), which {url} does not \
         support; choose another delta mechanism or \"auto\""
    )]
    ControlNotSupported {
        /// The server URL.
        url: String,
        /// The configured mechanism.
        mechanism: &'static str,
        /// The control's name.
        control_name: &'static str,
        /// The control's OID.
        oid: &'static str,
    },
    /// syncrepl was refused because the database has no syncprov overlay.
    #[error(
        "the server refused syncrepl on {base} ({text}): the syncprov overlay is not enabled on \
         that database; add `overlay syncprov` to it, or set delta = \"none\""
    )]
    SyncprovMissing {
        /// The search base.
        base: String,
        /// The server's diagnostic text.
        text: String,
    },
    /// Any other failed LDAP operation.
    #[error("{operation} failed: {text} (LDAP result {rc}{})", if matched.is_empty() { String::new() } else { format!(", matched DN {matched}") })]
    Operation {
        /// What was being done (including the base DN).
        operation: String,
        /// The LDAP result code.
        rc: u32,
        /// The server's diagnostic text, or the result code's name.
        text: String,
        /// The matched DN the server reported.
        matched: String,
    },
    /// The connection ended unexpectedly, including a crash of ldap3's connection task on a
    /// reply it could not handle.
    #[error("the connection to {url} was lost: {reason}")]
    ConnectionLost {
        /// The server URL.
        url: String,
        /// What happened.
        reason: String,
    },
    /// The server sent something that could not be understood.
    #[error("unexpected reply from {url}: {reason}")]
    Protocol {
        /// The server URL.
        url: String,
        /// What was wrong.
        reason: String,
    },
    /// An entry has no usable anchor.
    #[error("entry '{dn}' {problem}")]
    Anchor {
        /// The entry's DN.
        dn: String,
        /// What is wrong.
        problem: AnchorProblem,
    },
    /// A configuration or password file could not be read.
    #[error("cannot read '{}': {reason}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        reason: String,
    },
}

impl From<LdapSourceError> for SourceError {
    fn from(e: LdapSourceError) -> Self {
        SourceError::Backend(Box::new(e))
    }
}

/// The name of an LDAP result code (RFC 4511 appendix A), for messages.
pub(crate) fn result_code_name(rc: u32) -> &'static str {
    match rc {
        0 => "success",
        1 => "operationsError",
        2 => "protocolError",
        3 => "timeLimitExceeded",
        4 => "sizeLimitExceeded",
        7 => "authMethodNotSupported",
        8 => "strongerAuthRequired",
        10 => "referral",
        11 => "adminLimitExceeded",
        12 => "unavailableCriticalExtension",
        13 => "confidentialityRequired",
        32 => "noSuchObject",
        34 => "invalidDNSyntax",
        48 => "inappropriateAuthentication",
        49 => "invalidCredentials",
        50 => "insufficientAccessRights",
        51 => "busy",
        52 => "unavailable",
        53 => "unwillingToPerform",
        80 => "other",
        _ => "unknown result code",
    }
}
