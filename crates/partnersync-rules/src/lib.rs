//! rules (wip)
#![deny(missing_docs)]
