//! A local, stateful Microsoft Graph (work in progress).
#![deny(missing_docs)]
