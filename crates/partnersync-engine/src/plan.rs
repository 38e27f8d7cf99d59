use std::collections::{BTreeMap, HashMap, HashSet};

use partnersync_core::Anchor;
use partnersync_target::{Attributes, CreationMode, TargetUser};
use serde::{Deserialize, Serialize};

use crate::DesiredObject;

/// The version of the plan document format.
pub const PLAN_VERSION: u32 = 1;

/// What happens to managed target users whose source object is gone or out of scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeleteMode {
    /// Disable first; delete once the user has been disabled long enough (the default:
    /// nothing anyone can still need disappears in one cycle).
    DisableThenDelete,
    /// Soft-delete at once (restorable for 30 days in Entra ID).
    Delete,
    /// Leave them alone and only report them.
    Report,
}

/// Planning choices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanOptions {
    /// How users are created.
    pub creation: CreationMode,
    /// What happens to users whose source object went away.
    pub delete_mode: DeleteMode,
    /// Whether the source read was complete. A partial or failed read never deletes.
    pub source_complete: bool,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            creation: CreationMode::Direct,
            delete_mode: DeleteMode::DisableThenDelete,
            source_complete: true,
        }
    }
}

/// One attribute change, old → new (an empty list is "no value").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttributeChange {
    /// The attribute.
    pub attribute: String,
    /// The value in the target now.
    pub old: Vec<String>,
    /// The value the rules want.
    pub new: Vec<String>,
}

/// One planned write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Action {
    /// Create a user.
    Create {
        /// Source anchor (ImmutableId form).
        anchor: String,
        /// Source DN.
        dn: String,
        /// Direct creation or B2B invitation.
        mode: CreationMode,
        /// Initial attributes.
        attributes: BTreeMap<String, Vec<String>>,
    },
    /// Change attributes of an existing user.
    Update {
        /// Source anchor.
        anchor: String,
        /// Source DN.
        dn: String,
        /// Target id.
        id: String,
        /// The changes.
        changes: Vec<AttributeChange>,
    },
    /// Restore a soft-deleted user whose source object is back.
    Restore {
        /// Source anchor.
        anchor: String,
        /// Source DN.
        dn: String,
        /// Target id.
        id: String,
    },
    /// Block sign-in of a user whose source object is gone.
    Disable {
        /// Source anchor.
        anchor: String,
        /// Target id.
        id: String,
    },
    /// Soft-delete a user whose source object is gone.
    Delete {
        /// Source anchor.
        anchor: String,
        /// Target id.
        id: String,
    },
}

impl Action {
    /// The anchor the action concerns (ImmutableId form).
    pub fn anchor(&self) -> &str {
        match self {
            Action::Create { anchor, .. }
            | Action::Update { anchor, .. }
            | Action::Restore { anchor, .. }
            | Action::Disable { anchor, .. }
            | Action::Delete { anchor, .. } => anchor,
        }
    }

    /// Whether the action changes `userType` (called out in plans: Member ↔ Guest).
    pub fn changes_user_type(&self) -> bool {
        matches!(self, Action::Update { changes, .. } if changes.iter().any(|c| c.attribute.eq_ignore_ascii_case("userType")))
    }
}

/// An object the plan cannot handle: a rule error, or an ambiguity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedError {
    /// Source anchor.
    pub anchor: String,
    /// Source DN.
    pub dn: String,
    /// What is wrong.
    pub message: String,
}

/// Counts by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanCounts {
    /// Creates.
    pub creates: usize,
    /// Updates.
    pub updates: usize,
    /// Updates that change userType.
    pub user_type_changes: usize,
    /// Restores.
    pub restores: usize,
    /// Disables.
    pub disables: usize,
    /// Deletes.
    pub deletes: usize,
    /// Objects in error.
    pub errors: usize,
}

/// A reviewable plan: every write the cycle would make, and every object it cannot
/// handle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncPlan {
    /// Format version ([`PLAN_VERSION`]).
    pub version: u32,
    /// How many managed target users the plan was computed against.
    pub managed_in_target: usize,
    /// The writes, in order: creates and restores, updates, then disables and deletes.
    pub actions: Vec<Action>,
    /// Objects in error.
    pub errors: Vec<PlannedError>,
}

impl SyncPlan {
    /// Whether the plan writes nothing.
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }

    /// Counts by kind.
    pub fn counts(&self) -> PlanCounts {
        let mut c = PlanCounts {
            errors: self.errors.len(),
            ..PlanCounts::default()
        };
        for a in &self.actions {
            match a {
                Action::Create { .. } => c.creates += 1,
                Action::Update { .. } => {
                    c.updates += 1;
                    if a.changes_user_type() {
                        c.user_type_changes += 1;
                    }
                }
                Action::Restore { .. } => c.restores += 1,
                Action::Disable { .. } => c.disables += 1,
                Action::Delete { .. } => c.deletes += 1,
            }
        }
        c
    }
}

fn same(a: &[String], b: &[String]) -> bool {
    a == b
}

/// Computes the plan that makes the target match the desired objects.
///
/// Only users bound to an anchor are considered (`target` should come from
/// `TargetDirectory::list_managed`); anything else is never touched. Matching is by anchor.
/// Attributes the rules leave alone are not compared; apply-once attributes only count on
/// creation.
pub fn plan(desired: &[DesiredObject], target: &[TargetUser], options: &PlanOptions) -> SyncPlan {
    let by_anchor: HashMap<&Anchor, &TargetUser> = target
        .iter()
        .filter_map(|u| u.anchor.as_ref().map(|a| (a, u)))
        .collect();
    let mut creates = Vec::new();
    let mut updates = Vec::new();
    let mut removals = Vec::new();
    let mut errors = Vec::new();
    let mut wanted: HashSet<&Anchor> = HashSet::new();
    for d in desired {
        if !d.in_scope {
            continue;
        }
        wanted.insert(&d.anchor);
        let anchor = d.anchor.to_immutable_id();
        if !d.errors.is_empty() {
            errors.push(PlannedError {
                anchor,
                dn: d.dn.clone(),
                message: d.errors.join("; "),
            });
            continue;
        }
        match by_anchor.get(&d.anchor) {
            None => {
                let attributes = d
                    .attributes
                    .iter()
                    .filter(|(_, v)| !v.is_empty())
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                creates.push(Action::Create {
                    anchor,
                    dn: d.dn.clone(),
                    mode: options.creation,
                    attributes,
                });
            }
            Some(user) => {
                if user.deleted {
                    creates.push(Action::Restore {
                        anchor: anchor.clone(),
                        dn: d.dn.clone(),
                        id: user.id.clone(),
                    });
                }
                let mut changes = Vec::new();
                for (name, new) in &d.attributes {
                    if d.apply_once.contains(name) {
                        continue;
                    }
                    let old = user.attributes.get(name).cloned().unwrap_or_default();
                    if !same(&old, new) {
                        changes.push(AttributeChange {
                            attribute: name.clone(),
                            old,
                            new: new.clone(),
                        });
                    }
                }
                if !changes.is_empty() {
                    updates.push(Action::Update {
                        anchor,
                        dn: d.dn.clone(),
                        id: user.id.clone(),
                        changes,
                    });
                }
            }
        }
    }
    if options.source_complete && options.delete_mode != DeleteMode::Report {
        for user in target {
            let Some(anchor) = &user.anchor else { continue };
            if user.deleted || wanted.contains(anchor) {
                continue;
            }
            let a = anchor.to_immutable_id();
            match options.delete_mode {
                DeleteMode::DisableThenDelete if user.enabled => removals.push(Action::Disable {
                    anchor: a,
                    id: user.id.clone(),
                }),
                DeleteMode::DisableThenDelete => {}
                DeleteMode::Delete => removals.push(Action::Delete {
                    anchor: a,
                    id: user.id.clone(),
                }),
                DeleteMode::Report => {}
            }
        }
    }
    let mut actions = creates;
    actions.extend(updates);
    actions.extend(removals);
    SyncPlan {
        version: PLAN_VERSION,
        managed_in_target: target
            .iter()
            .filter(|u| u.anchor.is_some() && !u.deleted)
            .count(),
        actions,
        errors,
    }
}

pub(crate) fn attributes_of(changes: &[AttributeChange]) -> Attributes {
    changes
        .iter()
        .map(|c| (c.attribute.clone(), c.new.clone()))
        .collect()
}
