//! The target side of partnersync: the `TargetDirectory` trait (work in progress).
#![deny(missing_docs)]
