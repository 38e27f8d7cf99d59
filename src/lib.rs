//! partnersync (wip facade)
pub use partnersync_core as core;
