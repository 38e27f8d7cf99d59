use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

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
    /// In [`DeleteMode::DisableThenDelete`], how long a user stays disabled before it is
    /// deleted.
    pub delete_after_days: u32,
    /// Whether the source read was complete. A partial or failed read never deletes.
    pub source_complete: bool,
    /// The tenant's verified domains (lower case). When not empty, a direct creation or a
    /// UPN change outside them is a plan error instead of a write Graph would reject.
    pub verified_domains: Vec<String>,
    /// "Now" in Unix seconds (for delete-after-N-days); 0 means the system clock.
    pub now: i64,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            creation: CreationMode::Direct,
            delete_mode: DeleteMode::DisableThenDelete,
            delete_after_days: 30,
            source_complete: true,
            verified_domains: Vec::new(),
            now: 0,
        }
    }
}

impl PlanOptions {
    pub(crate) fn now(&self) -> i64 {
        if self.now != 0 {
            self.now
        } else {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0)
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
        /// Attributes among them set only on creation.
        #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
        apply_once: BTreeSet<String>,
    },
    /// Bind an existing cloud user that has no anchor to this source object (soft match on
    /// UPN or mail, when enabled), and bring its attributes in line.
    Adopt {
        /// Source anchor, written to the user's `onPremisesImmutableId`.
        anchor: String,
        /// Source DN.
        dn: String,
        /// Target id of the adopted user.
        id: String,
        /// What matched (`userPrincipalName` or `mail`) and its value.
        matched_on: String,
        /// The attribute changes, besides the anchor.
        changes: Vec<AttributeChange>,
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
            | Action::Adopt { anchor, .. }
            | Action::Update { anchor, .. }
            | Action::Restore { anchor, .. }
            | Action::Disable { anchor, .. }
            | Action::Delete { anchor, .. } => anchor,
        }
    }

    /// Whether the action changes `userType` (called out in plans: Member ↔ Guest).
    pub fn changes_user_type(&self) -> bool {
        matches!(self, Action::Update { changes, .. } | Action::Adopt { changes, .. } if changes.iter().any(|c| c.attribute.eq_ignore_ascii_case("userType")))
    }

    /// A short name: `create`, `adopt`, `update`, `restore`, `disable`, `delete`.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Create { .. } => "create",
            Action::Adopt { .. } => "adopt",
            Action::Update { .. } => "update",
            Action::Restore { .. } => "restore",
            Action::Disable { .. } => "disable",
            Action::Delete { .. } => "delete",
        }
    }

    /// Whether the action removes access (disable or delete): what the guard counts.
    pub fn is_removal(&self) -> bool {
        matches!(self, Action::Disable { .. } | Action::Delete { .. })
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
    /// Soft-match adoptions.
    #[serde(default)]
    pub adoptions: usize,
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
    /// Managed users whose source object is gone but that the delete mode keeps
    /// ([`DeleteMode::Report`]), or that stay disabled until their grace period ends.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kept: Vec<String>,
    /// What the plan was computed from; `apply` of a saved plan refuses it when the
    /// state, source or target moved on since.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binding: Option<PlanBinding>,
}

/// Binds a plan to the state it was computed from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanBinding {
    /// The state file's write generation when the plan was computed.
    pub state_generation: u64,
    /// Full read or delta.
    pub mode: String,
    /// When it was computed (Unix seconds).
    pub computed_at: i64,
    /// A digest of the configuration and rules in force.
    pub config_digest: String,
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
                Action::Adopt { .. } => c.adoptions += 1,
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

/// A managed object as the state store knows it, for planning.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Managed {
    /// When partnersync disabled it because its source went away (Unix seconds).
    pub disabled_at: Option<i64>,
}

/// Everything a plan is computed from.
#[derive(Debug, Clone, Copy)]
pub struct PlanInput<'a> {
    /// What the rules want, for the objects this plan covers.
    pub desired: &'a [DesiredObject],
    /// The target users those objects map to (by anchor), as they are now.
    pub target: &'a [TargetUser],
    /// The objects partnersync manages (from the state store). Only these are ever
    /// disabled or deleted; a target user anchored to a wanted source object is taken
    /// over (hard match) and becomes managed.
    pub managed: &'a HashMap<Anchor, Managed>,
    /// Soft-match candidates: for a wanted object with no user bound to its anchor, the
    /// live users whose UPN or mail equals its own (with what matched). Empty when soft
    /// match is off.
    pub soft_matches: &'a HashMap<Anchor, Vec<(String, TargetUser)>>,
}

/// Computes the plan that makes the target match the desired objects, treating every
/// anchored target user as managed (no state store). See [`plan_with`].
pub fn plan(desired: &[DesiredObject], target: &[TargetUser], options: &PlanOptions) -> SyncPlan {
    let managed: HashMap<Anchor, Managed> = target
        .iter()
        .filter_map(|u| u.anchor.clone().map(|a| (a, Managed { disabled_at: None })))
        .collect();
    plan_with(
        &PlanInput {
            desired,
            target,
            managed: &managed,
            soft_matches: &HashMap::new(),
        },
        options,
    )
}

fn diff(d: &DesiredObject, current: &Attributes, skip_apply_once: bool) -> Vec<AttributeChange> {
    let mut changes = Vec::new();
    for (name, new) in &d.attributes {
        if skip_apply_once && d.apply_once.contains(name) {
            continue;
        }
        let old = current.get(name).cloned().unwrap_or_default();
        if old != *new {
            changes.push(AttributeChange {
                attribute: name.clone(),
                old,
                new: new.clone(),
            });
        }
    }
    changes
}

/// Computes the plan that makes the target match the desired objects.
///
/// Matching is by anchor; then, when soft-match candidates are given, by UPN or mail
/// (never adopting a user already bound to another anchor, and reporting an ambiguity
/// instead of guessing). Attributes the rules leave alone are not compared; apply-once
/// attributes only count on creation. Values Graph would reject are plan errors. Only
/// managed objects are ever disabled or deleted, and only after a complete source read.
pub fn plan_with(input: &PlanInput<'_>, options: &PlanOptions) -> SyncPlan {
    let by_anchor: HashMap<&Anchor, &TargetUser> = input
        .target
        .iter()
        .filter_map(|u| u.anchor.as_ref().map(|a| (a, u)))
        .collect();
    let now = options.now();
    let mut creates = Vec::new();
    let mut updates = Vec::new();
    let mut removals = Vec::new();
    let mut errors = Vec::new();
    let mut kept = Vec::new();
    let mut wanted: HashSet<&Anchor> = HashSet::new();
    for d in input.desired {
        if !d.in_scope {
            continue;
        }
        wanted.insert(&d.anchor);
        let anchor = d.anchor.to_immutable_id();
        let mut problems = d.errors.clone();
        let user = by_anchor.get(&d.anchor).copied();
        if problems.is_empty() {
            problems.extend(crate::validate::check(d, user.is_none(), options));
        }
        if !problems.is_empty() {
            errors.push(PlannedError {
                anchor,
                dn: d.dn.clone(),
                message: problems.join("; "),
            });
            continue;
        }
        match user {
            None => match input.soft_matches.get(&d.anchor).map(Vec::as_slice) {
                None | Some([]) => {
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
                        apply_once: d.apply_once.clone(),
                    });
                }
                Some([(matched_on, candidate)]) => match &candidate.anchor {
                    Some(other) => errors.push(PlannedError {
                        anchor,
                        dn: d.dn.clone(),
                        message: format!(
                            "soft match on {matched_on} found cloud user {} but it is already bound to another source object (onPremisesImmutableId {}); it was not adopted. Give one of them a different UPN/mail, or clear that user's onPremisesImmutableId if it is wrong",
                            candidate.id,
                            other.to_immutable_id()
                        ),
                    }),
                    None => updates.push(Action::Adopt {
                        anchor,
                        dn: d.dn.clone(),
                        id: candidate.id.clone(),
                        matched_on: matched_on.clone(),
                        changes: diff(d, &candidate.attributes, true),
                    }),
                },
                Some(many) => {
                    let mut ids: Vec<String> = many
                        .iter()
                        .map(|(on, u)| format!("{} ({on})", u.id))
                        .collect();
                    ids.sort();
                    ids.dedup();
                    errors.push(PlannedError {
                        anchor,
                        dn: d.dn.clone(),
                        message: format!(
                            "ambiguous soft match: {} cloud users match this object's UPN/mail: {}; none was adopted. Make the UPN/mail unique in the tenant",
                            ids.len(),
                            ids.join(", ")
                        ),
                    });
                }
            },
            Some(user) => {
                if user.deleted {
                    creates.push(Action::Restore {
                        anchor: anchor.clone(),
                        dn: d.dn.clone(),
                        id: user.id.clone(),
                    });
                }
                let mut changes = diff(d, &user.attributes, true);
                let disabled_by_us = input
                    .managed
                    .get(&d.anchor)
                    .is_some_and(|m| m.disabled_at.is_some());
                if !user.enabled && disabled_by_us && !d.attributes.contains_key("accountEnabled")
                {
                    // The source object is back: undo our own disable.
                    changes.push(AttributeChange {
                        attribute: "accountEnabled".into(),
                        old: vec!["false".into()],
                        new: vec!["true".into()],
                    });
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
    if options.source_complete {
        let mut gone: Vec<(&Anchor, &TargetUser, &Managed)> = input
            .target
            .iter()
            .filter_map(|u| {
                let a = u.anchor.as_ref()?;
                let m = input.managed.get(a)?;
                (!u.deleted && !wanted.contains(a)).then_some((a, u, m))
            })
            .collect();
        gone.sort_by(|x, y| x.0.cmp(y.0));
        for (anchor, user, m) in gone {
            let a = anchor.to_immutable_id();
            let id = user.id.clone();
            match options.delete_mode {
                DeleteMode::DisableThenDelete if user.enabled => {
                    removals.push(Action::Disable { anchor: a, id })
                }
                DeleteMode::DisableThenDelete => {
                    let due = m
                        .disabled_at
                        .is_some_and(|t| t + i64::from(options.delete_after_days) * 86_400 <= now);
                    if due {
                        removals.push(Action::Delete { anchor: a, id });
                    } else {
                        kept.push(a);
                    }
                }
                DeleteMode::Delete => removals.push(Action::Delete { anchor: a, id }),
                DeleteMode::Report => kept.push(a),
            }
        }
    }
    let mut actions = creates;
    actions.extend(updates);
    actions.extend(removals);
    SyncPlan {
        version: PLAN_VERSION,
        managed_in_target: input
            .target
            .iter()
            .filter(|u| {
                u.anchor
                    .as_ref()
                    .is_some_and(|a| input.managed.contains_key(a))
                    && !u.deleted
            })
            .count(),
        actions,
        errors,
        kept,
        binding: None,
    }
}

pub(crate) fn attributes_of(changes: &[AttributeChange]) -> Attributes {
    changes
        .iter()
        .map(|c| (c.attribute.clone(), c.new.clone()))
        .collect()
}
