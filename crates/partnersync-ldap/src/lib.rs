//! `SourceDirectory` over LDAP and Active Directory with the `ldap3` crate.
//!
//! Not implemented yet: this crate is a placeholder in the workspace so that the layout of
//! `ARCHITECTURE.md` holds while the LDAP source is built (issue: "Read the on-premises
//! directory").
#![deny(missing_docs)]
