//! `SourceDirectory` over LDAP and Active Directory, with the `ldap3` crate: partnersync's
//! reader for AD, Samba AD, OpenLDAP and 389-ds.
//!
//! [`LdapSource`] connects (`ldaps://`, or `ldap://` with StartTLS; a custom CA; certificate
//! checks on unless turned off loudly), binds with a password taken from an environment
//! variable or a file (never from the configuration or the command line), reads the rootDSE
//! to learn what the server is and which controls it supports, and then:
//! - **full read**: a paged search (page ≤ 1000) of every base DN, OU include/exclude applied,
//!   only the configured attributes, `member;range=…` resolved, each entry anchored by
//!   `ms-DS-ConsistencyGuid`/`objectGUID` (AD) or `entryUUID`/`nsUniqueId` (others, as
//!   their lowercase text: see [`partnersync_core::Anchor`]);
//! - **delta read** from the [`Cookie`](partnersync_source::Cookie) the previous read
//!   returned, with the mechanism the server supports: AD **DirSync**, AD **uSNChanged**
//!   polling, or RFC 4533 **syncrepl** refreshOnly (OpenLDAP syncprov, 389-ds).
//!
//! Two decisions shape the crate:
//! - **Controls are sent only when the rootDSE lists them**, and every read runs in its own
//!   tokio task. `ldap3` panics on some replies it does not expect (Samba answers an
//!   unsupported critical control with an ExtendedResponse that crashes ldap3's connection
//!   task); checking first avoids that, and the task boundary turns any remaining panic into
//!   [`LdapSourceError::ConnectionLost`] rather than a crash of the tool.
//! - **The cookie is self-describing and remembers the anchors in scope.** It names its
//!   format version, mechanism, server (the DC's NTDS settings DN for AD) and a fingerprint
//!   of the scope, so a foreign, stale or mismatched cookie yields
//!   [`DeltaRead::FullReadRequired`](partnersync_source::DeltaRead::FullReadRequired) before
//!   anything reaches the sink. Knowing the anchors in scope makes deletions exact: objects
//!   deleted, moved out of the OUs or no longer matching the filter are reported once, and
//!   objects that never were in scope are not reported at all.
//!
//! ```no_run
//! use partnersync_ldap::{LdapConfig, LdapSource};
//! use partnersync_source::{DeltaRead, EntryCollector, SourceDirectory};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let config = LdapConfig::from_toml_str(r#"
//!     url = "ldaps://dc1.contoso.com"
//!     base_dns = ["OU=Partners,DC=contoso,DC=com"]
//!     filter = "(&(objectClass=user)(extensionAttribute1=Partner))"
//!     attributes = ["userPrincipalName", "displayName", "mail", "extensionAttribute1"]
//!     bind_dn = "syncsvc@contoso.com"
//!     password_env = "PARTNERSYNC_LDAP_PASSWORD"
//!     ca_file = "/etc/partnersync/contoso-ca.pem"
//! "#)?;
//! let source = LdapSource::new(config)?;
//! println!("{}", source.describe().await?);
//!
//! let mut all = EntryCollector::new();
//! let summary = source.full_read(&mut all).await?;
//! for e in &all.entries {
//!     println!("{} {}", e.anchor.to_immutable_id(), e.dn);
//! }
//!
//! // Later: only what changed.
//! if let Some(cookie) = summary.cookie {
//!     let mut changes = EntryCollector::new();
//!     match source.delta_read(&cookie, &mut changes).await? {
//!         DeltaRead::Changes(d) => println!("{} changed, {} deleted", d.changed, d.deleted),
//!         DeltaRead::FullReadRequired { reason } => println!("full read needed: {reason}"),
//!     }
//! }
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

mod config;
mod cookie;
mod dirsync;
mod dn;
mod error;
mod filter;
mod read;
mod session;
mod source;
mod syncrepl;
mod usn;

pub use config::{DeltaChoice, LdapConfig, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
pub use error::LdapSourceError;
pub use filter::escape_filter_value;
pub use source::{LdapSource, SourceCheck};
