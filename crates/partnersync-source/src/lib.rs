//! The source side of partnersync: the `SourceDirectory` trait (work in progress).
#![deny(missing_docs)]
