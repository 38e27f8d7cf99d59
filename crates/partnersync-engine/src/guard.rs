use serde::{Deserialize, Serialize};

use crate::{Action, SyncPlan};

/// Stops a plan that would remove too much: more than `max_count` users, or more than
/// `max_percent` of the managed users (defaults 500 and 10%, as Entra Connect's
/// accidental-delete prevention), or anything at all when the source came back empty.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DeletionGuard {
    /// Most removals (disables + deletes) allowed in one run.
    pub max_count: usize,
    /// Most removals allowed, as a percentage of managed users.
    pub max_percent: f64,
}

impl Default for DeletionGuard {
    fn default() -> Self {
        DeletionGuard {
            max_count: 500,
            max_percent: 10.0,
        }
    }
}

/// Why the guard blocked a plan: nothing was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}; nothing was written. {} user(s) would have been removed: {}", would_remove.len(), preview(would_remove))]
pub struct GuardTripped {
    /// What tripped it.
    pub reason: String,
    /// Anchors (ImmutableId form) that would have been disabled or deleted.
    pub would_remove: Vec<String>,
}

fn preview(list: &[String]) -> String {
    let mut s = list.iter().take(10).cloned().collect::<Vec<_>>().join(", ");
    if list.len() > 10 {
        s.push_str(&format!(", … and {} more", list.len() - 10));
    }
    s
}

impl DeletionGuard {
    /// Checks `plan`. `source_entries` is how many entries the source read returned;
    /// `allow` lifts the count limit up to that many removals for this run only.
    pub fn check(
        &self,
        plan: &SyncPlan,
        source_entries: usize,
        allow: Option<usize>,
    ) -> Result<(), GuardTripped> {
        let removals: Vec<String> = plan
            .actions
            .iter()
            .filter(|a| matches!(a, Action::Disable { .. } | Action::Delete { .. }))
            .map(|a| a.anchor().to_string())
            .collect();
        if removals.is_empty() {
            return Ok(());
        }
        if source_entries == 0 {
            return Err(GuardTripped {
                reason: "the source returned no entries, which looks like a failed or misconfigured read".into(),
                would_remove: removals,
            });
        }
        if let Some(n) = allow {
            if removals.len() <= n {
                return Ok(());
            }
        }
        let percent = if plan.managed_in_target == 0 {
            100.0
        } else {
            removals.len() as f64 * 100.0 / plan.managed_in_target as f64
        };
        if removals.len() > self.max_count {
            return Err(GuardTripped {
                reason: format!(
                    "{} removals exceed the limit of {} per run (deletion_threshold.count)",
                    removals.len(),
                    self.max_count
                ),
                would_remove: removals,
            });
        }
        if percent > self.max_percent {
            return Err(GuardTripped {
                reason: format!(
                    "{} removals are {percent:.1}% of {} managed users, above the limit of {}% (deletion_threshold.percent)",
                    removals.len(),
                    plan.managed_in_target,
                    self.max_percent
                ),
                would_remove: removals,
            });
        }
        Ok(())
    }
}
