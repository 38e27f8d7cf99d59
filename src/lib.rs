//! partnersync: sync locally-managed partner accounts from Active Directory or LDAP into
//! Microsoft Entra ID as B2B guests (`userType = Guest`), deciding who is a partner with a
//! rule engine that speaks both Microsoft expression dialects.
//!
//! This facade re-exports the workspace's library crates under short names, so an
//! application can depend on `partnersync` alone:
//!
//! | module | crate | what it is |
//! |---|---|---|
//! | [`core`] | `partnersync-core` | entries, anchors, attribute names, `UserType` |
//! | [`rules`] | `partnersync-rules` | expressions, scoping, sync rules, rule tests |
//! | [`source`] | `partnersync-source` | the `SourceDirectory` trait, LDIF and in-memory sources |
//! | [`target`] | `partnersync-target` | the `TargetDirectory` trait |
//! | [`engine`] | `partnersync-engine` | the sync cycle |
//!
//! ```
//! use partnersync::core::{Anchor, Entry, UserType};
//! use partnersync::rules::RuleSet;
//!
//! let rules = RuleSet::from_toml_str(r#"
//!     [[rule]]
//!     name = "UserType from extensionAttribute1"
//!     precedence = 40
//!     dialect = "provisioning"
//!     [[rule.flow]]
//!     target = "userType"
//!     expression = 'Switch([extensionAttribute1], "Member", "Partner", "Guest")'
//! "#).unwrap();
//! let mut entry = Entry::new(Anchor::from_bytes(vec![9; 16]).unwrap(), "CN=Ana,DC=contoso,DC=com");
//! entry.attributes.insert_text("extensionAttribute1", "Partner");
//! assert_eq!(rules.user_type(&entry).unwrap(), Some(UserType::Guest));
//! ```
#![deny(missing_docs)]

pub use partnersync_core as core;
pub use partnersync_engine as engine;
pub use partnersync_rules as rules;
pub use partnersync_source as source;
pub use partnersync_target as target;
