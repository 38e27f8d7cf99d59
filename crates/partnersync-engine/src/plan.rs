use std::collections::{BTreeMap, BTreeSet, HashMap};

use partnersync_core::Anchor;
use partnersync_target::{Attributes, CreationMode, TargetUser};
use serde::{Deserialize, Serialize};

use crate::listing::{diff, Users};
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
        /// Source anchor, written where the target binds users to anchors (Graph:
        /// `onPremisesImmutableId` or the configured anchor attribute).
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

/// Computes the plan that makes the target match the desired objects.
///
/// Matching is by anchor; then, when soft-match candidates are given, by UPN or mail
/// (never adopting a user already bound to another anchor, and reporting an ambiguity
/// instead of guessing). Attributes the rules leave alone are not compared; apply-once
/// attributes only count on creation. Values Graph would reject are plan errors. Only
/// managed objects are ever disabled or deleted, and only after a complete source read.
pub fn plan_with(input: &PlanInput<'_>, options: &PlanOptions) -> SyncPlan {
    let mut planner = Planner::new(input.target, options);
    for d in input.desired {
        planner.add(
            d,
            input.soft_matches.get(&d.anchor).map(Vec::as_slice),
            input.managed.get(&d.anchor).copied(),
        );
    }
    planner.finish(|a| input.managed.get(a).copied(), false)
}

/// What planning one desired object came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Planned {
    /// Out of scope: not wanted in the target.
    OutOfScope,
    /// Bound to a target user that already matches: nothing to write.
    InSync,
    /// One or more writes.
    Acted,
    /// A plan error: nothing is written for it.
    Error,
}

/// [`plan_with`] one desired object at a time, so that a full cycle can plan a source read
/// as it streams in and keep only the objects that need a write.
pub(crate) struct Planner<'a, U: Users + ?Sized = [TargetUser]> {
    options: &'a PlanOptions,
    now: i64,
    target: &'a U,
    /// The last listed user bound to each anchor (its index in `target`).
    by_anchor: HashMap<&'a Anchor, usize, foldhash::fast::RandomState>,
    /// Anchors bound to more than one listed user: all of them, in listing order.
    shared: HashMap<&'a Anchor, Vec<usize>, foldhash::fast::RandomState>,
    /// Per listed user: whether its source object is wanted.
    wanted: Vec<bool>,
    /// The (last) listed user bound to the object [`add`](Self::add) planned last.
    added: Option<usize>,
    creates: Vec<(Anchor, Action)>,
    updates: Vec<(Anchor, Action)>,
    errors: Vec<(Anchor, PlannedError)>,
}

impl<'a, U: Users + ?Sized> Planner<'a, U> {
    /// A planner against `target`, the users the objects map to (by anchor) as they are now.
    pub(crate) fn new(target: &'a U, options: &'a PlanOptions) -> Self {
        let mut by_anchor = HashMap::with_capacity_and_hasher(target.count(), Default::default());
        let mut shared: HashMap<&Anchor, Vec<usize>, _> = HashMap::default();
        for i in 0..target.count() {
            let Some(a) = target.anchor(i) else { continue };
            if let Some(before) = by_anchor.insert(a, i) {
                shared.entry(a).or_insert_with(|| vec![before]).push(i);
            }
        }
        Planner {
            options,
            now: options.now(),
            target,
            by_anchor,
            shared,
            wanted: vec![false; target.count()],
            added: None,
            creates: Vec::new(),
            updates: Vec::new(),
            errors: Vec::new(),
        }
    }

    /// Whether a listed user is bound to `anchor`.
    pub(crate) fn is_listed(&self, anchor: &Anchor) -> bool {
        self.by_anchor.contains_key(anchor)
    }

    /// The indexes in `target` of the users bound to `anchor`, in listing order.
    pub(crate) fn users_of(&self, anchor: &Anchor) -> &[usize] {
        let Some(last) = self.by_anchor.get(anchor) else {
            return &[];
        };
        if self.shared.is_empty() {
            return std::slice::from_ref(last);
        }
        match self.shared.get(anchor) {
            Some(all) => all,
            None => std::slice::from_ref(last),
        }
    }

    /// [`users_of`](Self::users_of) the object [`add`](Self::add) planned last (`anchor`),
    /// without looking it up again.
    pub(crate) fn users_of_added(&self, anchor: &Anchor) -> &[usize] {
        match &self.added {
            Some(last) if self.shared.is_empty() => std::slice::from_ref(last),
            Some(_) => self.users_of(anchor),
            None => &[],
        }
    }

    /// The index in `target` of the (last) listed user bound to `anchor`.
    pub(crate) fn user_index(&self, anchor: &Anchor) -> Option<usize> {
        self.by_anchor.get(anchor).copied()
    }

    fn set_wanted(&mut self, anchor: &Anchor, wanted: bool) {
        if let Some(&last) = self.by_anchor.get(anchor) {
            self.set_wanted_at(anchor, last, wanted);
        }
    }

    /// [`set_wanted`](Self::set_wanted) when the last user bound to `anchor` is known.
    fn set_wanted_at(&mut self, anchor: &Anchor, last: usize, wanted: bool) {
        if self.shared.is_empty() {
            self.wanted[last] = wanted;
            return;
        }
        match self.shared.get(anchor) {
            Some(all) => {
                for &i in all {
                    self.wanted[i] = wanted;
                }
            }
            None => self.wanted[last] = wanted,
        }
    }

    /// Plans `d`: `soft` holds its soft-match candidates, `managed` what the state store
    /// knows of it.
    pub(crate) fn add(
        &mut self,
        d: &DesiredObject,
        soft: Option<&[(String, TargetUser)]>,
        managed: Option<Managed>,
    ) -> Planned {
        self.added = None;
        if !d.in_scope {
            return Planned::OutOfScope;
        }
        let options = self.options;
        let target = self.target;
        let user = self.by_anchor.get(&d.anchor).copied();
        self.added = user;
        if let Some(last) = user {
            self.set_wanted_at(&d.anchor, last, true);
        }
        let problems = if d.errors.is_empty() {
            crate::validate::check(d, user.is_none(), options)
        } else {
            d.errors.clone()
        };
        let key = || d.anchor.clone();
        if !problems.is_empty() {
            self.errors.push((
                key(),
                PlannedError {
                    anchor: d.anchor.to_immutable_id(),
                    dn: d.dn.clone(),
                    message: problems.join("; "),
                },
            ));
            return Planned::Error;
        }
        match user {
            None => match soft {
                None | Some([]) => {
                    let attributes = d
                        .attributes
                        .iter()
                        .filter(|(_, v)| !v.is_empty())
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    self.creates.push((
                        key(),
                        Action::Create {
                            anchor: d.anchor.to_immutable_id(),
                            dn: d.dn.clone(),
                            mode: options.creation,
                            attributes,
                            apply_once: d.apply_once.clone(),
                        },
                    ));
                    Planned::Acted
                }
                Some([(matched_on, candidate)]) => match &candidate.anchor {
                    Some(other) => {
                        self.errors.push((key(), PlannedError {
                            anchor: d.anchor.to_immutable_id(),
                            dn: d.dn.clone(),
                            message: format!(
                                "soft match on {matched_on} found cloud user {} but it is already bound to another source object (anchor {}); it was not adopted. Give one of them a different UPN/mail, or clear that user's anchor attribute (onPremisesImmutableId unless [target] anchor_attribute says otherwise) if it is wrong",
                                candidate.id,
                                other.to_immutable_id()
                            ),
                        }));
                        Planned::Error
                    }
                    None => {
                        self.updates.push((
                            key(),
                            Action::Adopt {
                                anchor: d.anchor.to_immutable_id(),
                                dn: d.dn.clone(),
                                id: candidate.id.clone(),
                                matched_on: matched_on.clone(),
                                changes: diff(d, &candidate.attributes, true),
                            },
                        ));
                        Planned::Acted
                    }
                },
                Some(many) => {
                    let mut ids: Vec<String> = many
                        .iter()
                        .map(|(on, u)| format!("{} ({on})", u.id))
                        .collect();
                    ids.sort();
                    ids.dedup();
                    self.errors.push((key(), PlannedError {
                        anchor: d.anchor.to_immutable_id(),
                        dn: d.dn.clone(),
                        message: format!(
                            "ambiguous soft match: {} cloud users match this object's UPN/mail: {}; none was adopted. Make the UPN/mail unique in the tenant",
                            ids.len(),
                            ids.join(", ")
                        ),
                    }));
                    Planned::Error
                }
            },
            Some(user) => {
                let mut planned = Planned::InSync;
                if target.deleted(user) {
                    self.creates.push((
                        key(),
                        Action::Restore {
                            anchor: d.anchor.to_immutable_id(),
                            dn: d.dn.clone(),
                            id: target.id(user).to_owned(),
                        },
                    ));
                    planned = Planned::Acted;
                }
                let mut changes = target.diff(user, d, true);
                let disabled_by_us = managed.is_some_and(|m| m.disabled_at.is_some());
                if !target.enabled(user)
                    && disabled_by_us
                    && !d.attributes.contains_key("accountEnabled")
                {
                    // The source object is back: undo our own disable.
                    changes.push(AttributeChange {
                        attribute: "accountEnabled".into(),
                        old: vec!["false".into()],
                        new: vec!["true".into()],
                    });
                }
                if !changes.is_empty() {
                    self.updates.push((
                        key(),
                        Action::Update {
                            anchor: d.anchor.to_immutable_id(),
                            dn: d.dn.clone(),
                            id: target.id(user).to_owned(),
                            changes,
                        },
                    ));
                    planned = Planned::Acted;
                }
                planned
            }
        }
    }

    /// Forgets what [`add`](Self::add) planned for `anchor` (a source that returned the same
    /// object twice: the later entry wins).
    pub(crate) fn retract(&mut self, anchor: &Anchor) {
        self.set_wanted(anchor, false);
        self.creates.retain(|(a, _)| a != anchor);
        self.updates.retain(|(a, _)| a != anchor);
        self.errors.retain(|(a, _)| a != anchor);
    }

    /// The plan: what was added, then the removals of managed users whose source object is
    /// not wanted (`managed` says which users the state store manages). `sort` orders the
    /// creates, updates and errors by anchor, as if the objects had been added in that order.
    pub(crate) fn finish(
        self,
        managed: impl Fn(&Anchor) -> Option<Managed>,
        sort: bool,
    ) -> SyncPlan {
        let Planner {
            options,
            now,
            target,
            wanted,
            mut creates,
            mut updates,
            mut errors,
            ..
        } = self;
        if sort {
            creates.sort_by(|x, y| x.0.cmp(&y.0));
            updates.sort_by(|x, y| x.0.cmp(&y.0));
            errors.sort_by(|x, y| x.0.cmp(&y.0));
        }
        let mut removals = Vec::new();
        let mut kept = Vec::new();
        if options.source_complete {
            let mut gone: Vec<(&Anchor, usize, Managed)> = wanted
                .iter()
                .enumerate()
                .filter_map(|(i, &wanted)| {
                    let a = target.anchor(i)?;
                    let m = managed(a)?;
                    (!target.deleted(i) && !wanted).then_some((a, i, m))
                })
                .collect();
            gone.sort_by(|x, y| x.0.cmp(y.0));
            for (anchor, user, m) in gone {
                let a = anchor.to_immutable_id();
                let id = target.id(user).to_owned();
                match options.delete_mode {
                    DeleteMode::DisableThenDelete if target.enabled(user) => {
                        removals.push(Action::Disable { anchor: a, id })
                    }
                    DeleteMode::DisableThenDelete => {
                        let due = m.disabled_at.is_some_and(|t| {
                            t + i64::from(options.delete_after_days) * 86_400 <= now
                        });
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
        let mut actions: Vec<Action> = creates.into_iter().map(|(_, a)| a).collect();
        actions.extend(updates.into_iter().map(|(_, a)| a));
        actions.extend(removals);
        SyncPlan {
            version: PLAN_VERSION,
            managed_in_target: (0..target.count())
                .filter(|&i| {
                    target.anchor(i).is_some_and(|a| managed(a).is_some()) && !target.deleted(i)
                })
                .count(),
            actions,
            errors: errors.into_iter().map(|(_, e)| e).collect(),
            kept,
            binding: None,
        }
    }
}

pub(crate) fn attributes_of(changes: &[AttributeChange]) -> Attributes {
    changes
        .iter()
        .map(|c| (c.attribute.clone(), c.new.clone()))
        .collect()
}
