//! `TargetDirectory` over Microsoft Graph with `graph-rs-sdk`.
//!
//! Not implemented yet: this crate is a placeholder in the workspace so that the layout of
//! `ARCHITECTURE.md` holds while the Graph target is built (issue: "Write to Entra ID").
#![deny(missing_docs)]
