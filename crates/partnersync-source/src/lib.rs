//! The source side of partnersync: the [`SourceDirectory`] trait that every directory
//! reader implements, and two simple implementations — [`LdifSource`] (an RFC 2849 LDIF
//! file) and [`InMemorySource`] (entries held in memory, for tests and embedding).
//! `partnersync-ldap` implements the same trait over LDAP and Active Directory.
//!
//! Two decisions shape the trait:
//! - **Reads push entries into a sink** ([`EntrySink`]) instead of returning a `Vec`: a full
//!   read of 100,000 users from Active Directory then streams page by page and never holds
//!   the whole directory in memory, and no stream or executor crate is needed to consume it.
//! - **Delta reads are driven by an opaque [`Cookie`]** that the caller stores between runs.
//!   Each implementation picks what goes into it (a DirSync cookie, a USN watermark, a digest
//!   of the previous file), and any source may answer [`DeltaRead::FullReadRequired`] when
//!   the cookie is expired, damaged or belongs to another source: a sync never silently
//!   misses changes.
//!
//! Parsing a small LDIF document:
//!
//! ```
//! use partnersync_source::ldif;
//! use partnersync_source::AnchorPolicy;
//!
//! let text = "\
//! version: 1
//!
//! ## A partner account
//! dn: CN=Ana Lopez,OU=Partners,DC=contoso,DC=com
//! objectGUID:: qMO40h4cXUuPcBI0VniavA==
//! userPrincipalName: ana@partners.contoso.com
//! displayName:: QW5hIEzDs3Bleg==
//! proxyAddresses: SMTP:ana@partners.contoso.com
//! proxyAddresses: smtp:ana.lopez@partners.contoso.com
//! ";
//! let entries = ldif::parse_entries(text.as_bytes(), "example.ldif", &AnchorPolicy::default())?;
//! assert_eq!(entries.len(), 1);
//! let ana = &entries[0];
//! assert_eq!(ana.dn, "CN=Ana Lopez,OU=Partners,DC=contoso,DC=com");
//! assert_eq!(ana.anchor.to_guid_string().as_deref(), Some("d2b8c3a8-1c1e-4b5d-8f70-123456789abc"));
//! assert_eq!(ana.attributes.first_text("displayname"), Some("Ana López"));
//! assert_eq!(ana.attributes.get("proxyAddresses").map(|v| v.len()), Some(2));
//!
//! // Errors name the file, the line and what to do.
//! let err = ldif::parse_entries("dn: cn=x\ncn:< file:///etc/passwd\n".as_bytes(), "bad.ldif", &AnchorPolicy::default())
//!     .unwrap_err();
//! assert_eq!(
//!     err.to_string(),
//!     "bad.ldif:2: 'cn' takes its value from a URL (':<'), which partnersync does not fetch; \
//!      put the value in the file instead, base64-encoded after '::'"
//! );
//! # Ok::<(), partnersync_source::SourceError>(())
//! ```
#![deny(missing_docs)]

mod anchor_policy;
mod cookie;
mod digest;
mod error;
pub mod ldif;
mod ldif_source;
mod memory;
#[cfg(test)]
mod test_support;

use std::fmt;

use async_trait::async_trait;
use partnersync_core::{Anchor, Entry};

pub use anchor_policy::{AnchorAttribute, AnchorEncoding, AnchorPolicy};
pub use cookie::Cookie;
pub use error::{AnchorProblem, BoxError, LdifProblem, SinkError, SourceError};
pub use ldif_source::LdifSource;
pub use memory::InMemorySource;

/// A directory that partnersync reads accounts from.
///
/// Implementations stream what they read into an [`EntrySink`]. If a read returns an error,
/// the sink may already have received part of the entries; the caller must treat the read as
/// failed as a whole (in particular, never treat an object missing from a failed read as
/// deleted).
#[async_trait]
pub trait SourceDirectory: Send + Sync {
    /// What this source is: server kind, naming context(s), the delta mechanism in use.
    async fn describe(&self) -> Result<SourceDescription, SourceError>;

    /// Reads every entry in scope into `sink` (only [`EntrySink::entry`] is called).
    ///
    /// The returned summary carries the cookie for the next [`delta_read`](Self::delta_read),
    /// when the source supports delta reads.
    async fn full_read(&self, sink: &mut dyn EntrySink) -> Result<ReadSummary, SourceError>;

    /// Reads what changed since `cookie` was issued: added, modified and renamed entries go
    /// to [`EntrySink::entry`] (whole entries, with all attributes in scope), deleted or
    /// out-of-scope objects to [`EntrySink::deleted`].
    ///
    /// When the cookie cannot be used (expired, damaged, or issued by another source) the
    /// answer is [`DeltaRead::FullReadRequired`]; the caller then discards anything the sink
    /// received during this call and does a full read. The implementations in this crate
    /// decide that before passing anything to the sink.
    async fn delta_read(
        &self,
        cookie: &Cookie,
        sink: &mut dyn EntrySink,
    ) -> Result<DeltaRead, SourceError>;
}

/// Receives what a read produces, one object at a time.
///
/// Returning an error stops the read; the source then fails with [`SourceError::Sink`].
///
/// A sink that counts partners as they stream past, without keeping the entries:
///
/// ```
/// use partnersync_core::{Anchor, Entry};
/// use partnersync_source::{EntrySink, SinkError};
///
/// #[derive(Default)]
/// struct PartnerCounter {
///     partners: usize,
///     deleted: usize,
/// }
///
/// impl EntrySink for PartnerCounter {
///     fn entry(&mut self, entry: Entry) -> Result<(), SinkError> {
///         if entry.attributes.first_text("extensionAttribute1") == Some("Partner") {
///             self.partners += 1;
///         }
///         Ok(())
///     }
///
///     fn deleted(&mut self, _anchor: Anchor) -> Result<(), SinkError> {
///         self.deleted += 1;
///         Ok(())
///     }
/// }
///
/// let mut counter = PartnerCounter::default();
/// let mut ana = Entry::new(Anchor::from_bytes(vec![1; 16])?, "CN=Ana,DC=contoso,DC=com");
/// ana.attributes.insert_text("extensionAttribute1", "Partner");
/// counter.entry(ana)?;
/// assert_eq!(counter.partners, 1);
/// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
/// ```
pub trait EntrySink: Send {
    /// An entry in scope (full read), or an added, modified or renamed entry (delta read).
    fn entry(&mut self, entry: Entry) -> Result<(), SinkError>;

    /// An object that was deleted, or left the scope, since the cookie (delta reads only).
    fn deleted(&mut self, anchor: Anchor) -> Result<(), SinkError>;
}

/// An [`EntrySink`] that keeps everything it receives, in order. Handy for tests and small
/// sources; a sync of a large directory should process entries as they arrive instead.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EntryCollector {
    /// The entries received, in order.
    pub entries: Vec<Entry>,
    /// The anchors of deleted objects received, in order.
    pub deleted: Vec<Anchor>,
}

impl EntryCollector {
    /// An empty collector.
    pub fn new() -> Self {
        Self::default()
    }
}

impl EntrySink for EntryCollector {
    fn entry(&mut self, entry: Entry) -> Result<(), SinkError> {
        self.entries.push(entry);
        Ok(())
    }

    fn deleted(&mut self, anchor: Anchor) -> Result<(), SinkError> {
        self.deleted.push(anchor);
        Ok(())
    }
}

/// The outcome of a successful [`SourceDirectory::full_read`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadSummary {
    /// How many entries were passed to the sink.
    pub entries: u64,
    /// The cookie for the next delta read, or `None` when the source has no delta mechanism
    /// (the caller then diffs full reads itself).
    pub cookie: Option<Cookie>,
}

/// The outcome of a successful [`SourceDirectory::delta_read`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeltaRead {
    /// The changes were passed to the sink.
    Changes(DeltaSummary),
    /// The cookie cannot be used; do a full read instead.
    FullReadRequired {
        /// Why, in words an administrator understands (for logs and the run summary).
        reason: String,
    },
}

/// What a delta read passed to the sink, and where the next one starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeltaSummary {
    /// Added, modified or renamed entries passed to [`EntrySink::entry`].
    pub changed: u64,
    /// Anchors passed to [`EntrySink::deleted`].
    pub deleted: u64,
    /// The cookie for the next delta read.
    pub cookie: Cookie,
}

/// What a source is, for `partnersync source check` and the run log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceDescription {
    /// The kind of directory.
    pub kind: ServerKind,
    /// Where it is: a URL, a file path, or `memory`.
    pub location: String,
    /// The naming context(s) read. For a file or an in-memory source: the longest DN suffix
    /// that all entries share (empty when there are no entries or they share none).
    pub naming_contexts: Vec<String>,
    /// How delta reads find changes.
    pub delta: DeltaMechanism,
}

impl fmt::Display for SourceDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at {}", self.kind, self.location)?;
        if !self.naming_contexts.is_empty() {
            write!(f, ", naming context {}", self.naming_contexts.join("; "))?;
        }
        write!(f, ", delta: {}", self.delta)
    }
}

/// The kind of directory a source reads.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerKind {
    /// Microsoft Active Directory (or Samba AD).
    ActiveDirectory,
    /// OpenLDAP `slapd`.
    OpenLdap,
    /// 389 Directory Server (and Red Hat Directory Server).
    Ds389,
    /// Another LDAP server, with the vendor name it reports (or `unknown`).
    OtherLdap(String),
    /// An LDIF file.
    LdifFile,
    /// Entries held in memory.
    InMemory,
}

impl fmt::Display for ServerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerKind::ActiveDirectory => f.write_str("Active Directory"),
            ServerKind::OpenLdap => f.write_str("OpenLDAP"),
            ServerKind::Ds389 => f.write_str("389 Directory Server"),
            ServerKind::OtherLdap(vendor) => write!(f, "LDAP server ({vendor})"),
            ServerKind::LdifFile => f.write_str("LDIF file"),
            ServerKind::InMemory => f.write_str("in-memory directory"),
        }
    }
}

/// How a source finds what changed since a cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeltaMechanism {
    /// Active Directory's DirSync control (1.2.840.113556.1.4.841).
    DirSync,
    /// Active Directory `uSNChanged` polling, bound to one DC's `invocationId`.
    UsnChanged,
    /// RFC 4533 content synchronisation (syncrepl), refreshOnly.
    SyncRepl,
    /// A digest of the previous read, compared entry by entry (the LDIF source).
    ContentDigest,
    /// A change counter kept by the source itself (the in-memory source).
    ChangeCounter,
    /// None: every read is a full read, and the caller diffs it against the previous one.
    FullReadOnly,
}

impl fmt::Display for DeltaMechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DeltaMechanism::DirSync => "DirSync control",
            DeltaMechanism::UsnChanged => "uSNChanged polling",
            DeltaMechanism::SyncRepl => "RFC 4533 syncrepl (refreshOnly)",
            DeltaMechanism::ContentDigest => "digest of the previous read",
            DeltaMechanism::ChangeCounter => "change counter",
            DeltaMechanism::FullReadOnly => "none (full reads, diffed by the caller)",
        })
    }
}

/// The longest DN suffix (in whole RDNs, compared ignoring ASCII case) shared by all `dns`,
/// as it is spelled in the first DN. Empty when there are no DNs or they share no suffix.
pub(crate) fn common_dn_suffix<'a>(dns: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let mut common: Option<Vec<String>> = None;
    for dn in dns {
        let rdns = split_rdns(dn);
        match &mut common {
            None => common = Some(rdns.iter().map(|r| r.to_string()).collect()),
            Some(suffix) => {
                let shared = suffix
                    .iter()
                    .rev()
                    .zip(rdns.iter().rev())
                    .take_while(|(a, b)| a.eq_ignore_ascii_case(b))
                    .count();
                suffix.drain(..suffix.len() - shared);
            }
        }
        if common.as_ref().is_some_and(|c| c.is_empty()) {
            return None;
        }
    }
    common.filter(|c| !c.is_empty()).map(|c| c.join(","))
}

/// Splits a DN into trimmed RDNs at commas that are not escaped with a backslash.
fn split_rdns(dn: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in dn.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            ',' => {
                parts.push(dn[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(dn[start..].trim());
    parts.retain(|p| !p.is_empty());
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_suffix_is_computed_in_whole_rdns_ignoring_case() {
        let dns = [
            "CN=Ana,OU=Partners,DC=contoso,DC=com",
            "cn=Bo\\, Jr,ou=Members,dc=Contoso,dc=com",
            "CN=Cy,OU=Partners,DC=contoso,DC=com",
        ];
        assert_eq!(common_dn_suffix(dns).as_deref(), Some("DC=contoso,DC=com"));
        assert_eq!(common_dn_suffix(["cn=a,dc=x", "cn=b,dc=y"]), None);
        assert_eq!(common_dn_suffix(Vec::<&str>::new()), None);
        assert_eq!(
            common_dn_suffix(["cn=a,dc=x"]).as_deref(),
            Some("cn=a,dc=x")
        );
        assert_eq!(split_rdns("cn=a\\,b , dc=x"), vec!["cn=a\\,b", "dc=x"]);
    }

    #[test]
    fn descriptions_read_well() {
        let d = SourceDescription {
            kind: ServerKind::LdifFile,
            location: "partners.ldif".into(),
            naming_contexts: vec!["dc=contoso,dc=com".into()],
            delta: DeltaMechanism::ContentDigest,
        };
        assert_eq!(
            d.to_string(),
            "LDIF file at partners.ldif, naming context dc=contoso,dc=com, delta: digest of the previous read"
        );
        assert_eq!(
            ServerKind::OtherLdap("ApacheDS".into()).to_string(),
            "LDAP server (ApacheDS)"
        );
    }

    #[test]
    fn the_collector_keeps_order() {
        let mut c = EntryCollector::new();
        let a = Anchor::from_bytes(vec![1]).unwrap();
        c.entry(Entry::new(a.clone(), "cn=a")).unwrap();
        c.deleted(a.clone()).unwrap();
        assert_eq!(c.entries.len(), 1);
        assert_eq!(c.deleted, vec![a]);
    }
}
