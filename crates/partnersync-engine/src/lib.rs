//! The sync engine: read → evaluate → match → plan → guard → apply → record.
//!
//! This first part of the engine is the pure core every cycle runs through: turning rule
//! evaluations into [`DesiredObject`]s, matching them to target users by anchor,
//! computing a [`SyncPlan`] of attribute-level changes (no-op updates never appear, so an
//! unchanged directory plans zero writes), checking it with a [`DeletionGuard`], and
//! applying it through any [`partnersync_target::TargetDirectory`]. The state store,
//! delta bookkeeping and scheduling build on it.
//!
//! ```
//! use partnersync_core::{Anchor, Entry};
//! use partnersync_engine::{apply, plan, DesiredObject, PlanOptions};
//! use partnersync_rules::RuleSet;
//! use partnersync_target::{block_on, InMemoryTarget, TargetDirectory};
//!
//! let rules = RuleSet::from_toml_str(r#"
//!     [[rule]]
//!     name = "ut"
//!     precedence = 1
//!     [[rule.flow]]
//!     target = "userType"
//!     expression = 'IIF(InStr(LCase([userPrincipalName]), "@partners.") > 0, "Guest", "Member")'
//!     [[rule.flow]]
//!     target = "userPrincipalName"
//!     source = "userPrincipalName"
//! "#).unwrap();
//! let mut entry = Entry::new(Anchor::from_bytes(vec![1; 16]).unwrap(), "CN=Ana,DC=contoso,DC=com");
//! entry.attributes.insert_text("userPrincipalName", "ana@partners.contoso.com");
//! let desired = vec![DesiredObject::from_evaluation(&entry, &rules.evaluate(&entry))];
//!
//! let target = InMemoryTarget::new();
//! let first = plan(&desired, &block_on(target.list_managed()).unwrap(), &PlanOptions::default());
//! assert_eq!(first.counts().creates, 1);
//! block_on(apply(&target, &first, 20));
//! let second = plan(&desired, &block_on(target.list_managed()).unwrap(), &PlanOptions::default());
//! assert!(second.is_empty(), "a cycle with no change plans zero writes");
//! ```
#![deny(missing_docs)]

mod apply;
mod cycle;
mod desired;
mod guard;
mod listing;
mod plan;
mod state;
mod validate;

pub use apply::{apply, ActionResult, ApplyReport};
pub use cycle::{
    apply_saved_plan, execute_cycle, prepare_cycle, run_cycle, run_cycle_with, state_generation,
    CycleError, CycleHooks, CycleOptions, CycleReport, DriftPolicy, ErrorPolicy, PreparedCycle,
    Progress, ProgressCallback, ReadMode,
};
pub use desired::DesiredObject;
pub use guard::{DeletionGuard, GuardTripped};
pub use plan::{
    plan, plan_with, Action, AttributeChange, DeleteMode, Managed, PlanBinding, PlanCounts,
    PlanInput, PlanOptions, PlannedError, SyncPlan, PLAN_VERSION,
};
pub use state::{
    DetachedScan, JournalEntry, ObjectState, ObjectVisitor, PendingObject, RunRecord,
    SqliteStateStore, StateError, StateStore, StoredObject, SCHEMA_VERSION,
};
