//! The data model every partnersync crate shares: directory [`Entry`]s with a stable
//! [`Anchor`], case-insensitive [`AttributeName`]s, multi-valued binary-safe
//! [`AttributeValue`]s, and the [`UserType`] an Entra ID user ends up with.
//!
//! This crate does no I/O and has no async code; it only defines values and their
//! invariants, so that sources, the rule engine, targets and the engine agree on them.
//!
//! Two decisions shape it:
//! - Attribute names compare case-insensitively (ASCII), as LDAP does, but keep the spelling
//!   they were first written with, so output reads the way the directory wrote it.
//! - Values are bytes or text: AD's `objectGUID` and `objectSid` are binary and must survive
//!   untouched, while almost everything else is UTF-8 text.
//! - An [`Anchor`]'s ImmutableId is base64 of its bytes, as Entra Connect writes it, except for
//!   `entryUUID` and `nsUniqueId` anchors, which are their lowercase text: Entra ID compares
//!   ImmutableIds ignoring case, and base64 is case-sensitive.
//!
//! ```
//! use partnersync_core::{Anchor, Entry, UserType};
//!
//! let mut entry = Entry::new(
//!     Anchor::from_guid_str("d2a4f6a8-1c3e-4b5d-8f70-123456789abc").unwrap(),
//!     "CN=Ana Lopez,OU=Partners,DC=contoso,DC=com",
//! );
//! entry.attributes.insert_text("userPrincipalName", "ana@partners.contoso.com");
//! assert_eq!(entry.attributes.first_text("USERPRINCIPALNAME"), Some("ana@partners.contoso.com"));
//! assert_eq!(entry.anchor.to_guid_string().as_deref(), Some("d2a4f6a8-1c3e-4b5d-8f70-123456789abc"));
//! assert_eq!("Guest".parse::<UserType>().unwrap(), UserType::Guest);
//! ```
#![deny(missing_docs)]

mod anchor;
mod attributes;
mod entry;
mod user_type;

pub use anchor::{Anchor, AnchorError};
pub use attributes::{AttributeName, AttributeValue, Attributes};
pub use entry::Entry;
pub use user_type::{UserType, UserTypeError};
