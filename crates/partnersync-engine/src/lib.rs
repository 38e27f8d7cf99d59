//! The sync engine: read → evaluate → match → plan → guard → apply → record (work in
//! progress).
#![deny(missing_docs)]
