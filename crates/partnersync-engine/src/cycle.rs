//! One sync cycle over any source and target: read → evaluate → match → plan → guard →
//! apply → record.
//!
//! A cycle is a *full* cycle (read every source entry, list every managed target user)
//! on the first run, after the rules change, when a cookie expired, when an earlier
//! cycle crashed mid-way without a usable cookie, and periodically
//! ([`CycleOptions::full_every`]). Otherwise it is a *delta* cycle whose cost grows with
//! what changed: the source's delta read, the target's change feed (portal drift), the
//! objects whose last write failed, and the disabled users whose grace period ended.
//! Everything else is taken from the state store, which holds what was last written.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use partnersync_core::{Anchor, Entry};
use partnersync_rules::{EvaluationMode, RuleSet};
use partnersync_source::{
    Cookie, DeltaRead, EntryCollector, EntrySink, SinkError, SourceDirectory, SourceError,
};
use partnersync_target::{OperationOutcome, TargetDirectory, TargetError, TargetUser};

use crate::listing::{Listing, Users};
use crate::plan::{attributes_of, Planned, Planner};
use crate::{
    Action, DeletionGuard, DesiredObject, GuardTripped, JournalEntry, Managed, ObjectState,
    ObjectVisitor, PendingObject, PlanBinding, PlanInput, PlanOptions, RunRecord, StateError,
    StateStore, SyncPlan,
};

/// When to stop applying because too many writes fail.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum ErrorPolicy {
    /// Apply everything; failed objects are retried next cycle.
    #[default]
    Continue,
    /// Stop after this many failed writes.
    StopAfter(usize),
    /// Stop when more than this percentage of the writes so far failed (checked once at
    /// least one batch has been sent).
    StopAbovePercent(f64),
}

/// What to do when someone changed a managed attribute in the target (e.g. in the portal).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DriftPolicy {
    /// Put the value the rules want back.
    #[default]
    Correct,
    /// Leave it and list it in the plan ([`SyncPlan::kept`] names the object).
    Report,
}

/// How a cycle runs.
#[derive(Debug, Clone, PartialEq)]
pub struct CycleOptions {
    /// Planning choices.
    pub plan: PlanOptions,
    /// The deletion guard.
    pub guard: DeletionGuard,
    /// Lift the guard's count limit up to this many removals, for this run only.
    pub allow_deletes: Option<usize>,
    /// Compute and record the plan, but write nothing.
    pub staging: bool,
    /// Operations per target batch (Graph's `$batch` takes 20).
    pub batch_size: usize,
    /// Match users that have no anchor yet by UPN or mail, and adopt them.
    pub soft_match: bool,
    /// A full reconciliation at least this often (`None`: only when needed).
    pub full_every: Option<Duration>,
    /// Make this cycle a full one.
    pub force_full: bool,
    /// When to stop applying because writes fail.
    pub error_policy: ErrorPolicy,
    /// What to do about target drift.
    pub drift: DriftPolicy,
    /// A digest of the rules and configuration; when it differs from the last cycle's,
    /// the cycle is a full one (every object is re-evaluated).
    pub config_digest: String,
}

impl Default for CycleOptions {
    fn default() -> Self {
        CycleOptions {
            plan: PlanOptions::default(),
            guard: DeletionGuard::default(),
            allow_deletes: None,
            staging: false,
            batch_size: 20,
            soft_match: false,
            full_every: Some(Duration::from_secs(24 * 3600)),
            force_full: false,
            error_policy: ErrorPolicy::Continue,
            drift: DriftPolicy::Correct,
            config_digest: String::new(),
        }
    }
}

/// Progress of an apply, for progress bars and log lines.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// Writes finished (succeeded or failed).
    pub done: usize,
    /// Writes planned.
    pub total: usize,
    /// Writes that failed so far.
    pub failed: usize,
    /// Observed writes per second.
    pub writes_per_second: f64,
    /// Pending writes ÷ observed rate.
    pub eta: Option<Duration>,
}

/// Callbacks and controls of a running cycle.
#[derive(Clone, Default)]
pub struct CycleHooks {
    /// Set it (e.g. on SIGINT/SIGTERM) to stop after the batch in flight; state is
    /// recorded and the next cycle carries on.
    pub cancel: Arc<AtomicBool>,
    /// Called after every batch.
    pub progress: Option<ProgressCallback>,
}

/// A [`CycleHooks::progress`] callback.
pub type ProgressCallback = Arc<dyn Fn(&Progress) + Send + Sync>;

impl std::fmt::Debug for CycleHooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CycleHooks")
            .field("cancel", &self.cancel.load(Ordering::Relaxed))
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

/// Why a cycle could not run.
#[derive(Debug, thiserror::Error)]
pub enum CycleError {
    /// The source read failed: nothing was planned or written.
    #[error("reading the source failed, so nothing was planned or written: {0}")]
    Source(#[from] SourceError),
    /// Reading the target failed: nothing was written.
    #[error("reading the target failed, so nothing was written: {0}")]
    Target(#[from] TargetError),
    /// The state store failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// The deletion guard blocked the plan: nothing was written.
    #[error("the deletion guard stopped this run: {0}")]
    Guard(GuardTripped),
    /// A saved plan no longer matches what a plan computed now would do.
    #[error("the saved plan is stale, so nothing was written: {0}. Run `partnersync plan` again and review the new plan")]
    StalePlan(String),
}

/// How the source and target were read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadMode {
    /// Everything was read, for this reason.
    Full(String),
    /// Only changes were read.
    Delta,
}

impl std::fmt::Display for ReadMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadMode::Full(reason) => write!(f, "full ({reason})"),
            ReadMode::Delta => f.write_str("delta"),
        }
    }
}

/// A computed cycle, not yet applied: the plan and what recording it needs.
#[derive(Debug, Clone)]
pub struct PreparedCycle {
    /// The plan.
    pub plan: SyncPlan,
    /// Full or delta.
    pub mode: ReadMode,
    /// Entries the source returned (all of them, or the changed ones).
    pub source_entries: usize,
    /// Deleted or out-of-scope objects the source reported (delta reads).
    pub source_deleted: usize,
    /// Target changes seen since the last cycle (delta reads).
    pub target_changes: usize,
    /// Of those, users that only echoed partnersync's own last write to them and were not
    /// planned again (delta reads).
    pub target_echoes: usize,
    /// Journal entries from an earlier run that never finished (a crash); this plan
    /// looked the objects up again.
    pub recovered: Vec<JournalEntry>,
    desired: HashMap<Anchor, DesiredObject>,
    known: HashMap<Anchor, ObjectState>,
    untracked: Vec<ObjectState>,
    forget: Vec<Anchor>,
    pending_scope: PendingScope,
    next_source_cookie: Option<Cookie>,
    next_target_cookie: Option<String>,
    generation: u64,
    started: i64,
    /// Live objects in the state store, when the cycle counted them anyway (a full cycle
    /// scans every row; counting again would cost SQLite another scan).
    state_objects: Option<usize>,
}

impl PreparedCycle {
    /// How many source entries the deletion guard judges this cycle by. A full read counts
    /// them. A delta read returning nothing is normal, so a delta is not limited by it —
    /// except a delta that only removes users and takes away every one still live: that
    /// leaves the source as empty as an empty full read would, and counts as 0.
    pub fn guard_source_entries(&self, state: &dyn StateStore) -> Result<usize, StateError> {
        if let ReadMode::Full(_) = self.mode {
            return Ok(self.source_entries);
        }
        let plan = &self.plan;
        if !plan.errors.is_empty() || !plan.actions.iter().all(Action::is_removal) {
            return Ok(usize::MAX);
        }
        // Deleting users disabled earlier (their grace period ended) takes no live user.
        let disabled: HashSet<String> = state
            .disabled_before(i64::MAX)?
            .iter()
            .map(|o| o.anchor.to_immutable_id())
            .collect();
        let live = state.object_count()?.saturating_sub(disabled.len());
        let removed_live = plan
            .actions
            .iter()
            .filter(|a| !disabled.contains(a.anchor()))
            .count();
        Ok(if removed_live > 0 && removed_live >= live {
            0
        } else {
            usize::MAX
        })
    }
}

#[derive(Debug, Clone)]
enum PendingScope {
    /// A full cycle re-evaluated everything: the whole retry list is replaced.
    All,
    /// A delta cycle: only these anchors' entries are replaced.
    Anchors(Vec<String>),
}

/// What a cycle did.
#[derive(Debug, Clone, PartialEq)]
pub struct CycleReport {
    /// The plan it computed.
    pub plan: SyncPlan,
    /// Full or delta.
    pub mode: ReadMode,
    /// Entries the source returned.
    pub source_entries: usize,
    /// Target changes seen (delta cycles).
    pub target_changes: usize,
    /// Of those, echoes of partnersync's own writes, not planned again (delta cycles).
    pub target_echoes: usize,
    /// Writes attempted (0 in staging mode).
    pub attempted: usize,
    /// Writes that failed, with their anchor and error.
    pub failures: Vec<(String, TargetError)>,
    /// Journal entries from an earlier run that never finished (a crash); this run's plan
    /// reconciled them by looking the objects up by anchor.
    pub recovered: usize,
    /// Why the apply stopped early (error policy), if it did.
    pub stopped: Option<String>,
    /// Whether a cancel request (SIGINT/SIGTERM) stopped the apply after a batch.
    pub interrupted: bool,
    /// The run's id in the state store.
    pub run_id: i64,
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn text_setting(state: &dyn StateStore, key: &str) -> Result<Option<String>, StateError> {
    Ok(state.setting(key)?.and_then(|v| String::from_utf8(v).ok()))
}

/// The state's write generation: bumped whenever a cycle writes to the target, so a saved
/// plan can tell it is stale.
pub fn state_generation(state: &dyn StateStore) -> Result<u64, StateError> {
    Ok(text_setting(state, "generation")?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0))
}

/// Runs one cycle: prepare, guard, apply, record. A failed source read, a failed target
/// read or a tripped guard ends the cycle before anything is written; per-object write
/// errors are isolated, reported and retried by the next cycle.
pub async fn run_cycle(
    source: &dyn SourceDirectory,
    target: &dyn TargetDirectory,
    rules: &RuleSet,
    state: &mut dyn StateStore,
    options: &CycleOptions,
) -> Result<CycleReport, CycleError> {
    run_cycle_with(
        source,
        target,
        rules,
        state,
        options,
        &CycleHooks::default(),
    )
    .await
}

/// [`run_cycle`] with progress reporting and cancellation.
pub async fn run_cycle_with(
    source: &dyn SourceDirectory,
    target: &dyn TargetDirectory,
    rules: &RuleSet,
    state: &mut dyn StateStore,
    options: &CycleOptions,
    hooks: &CycleHooks,
) -> Result<CycleReport, CycleError> {
    let prepared = prepare_cycle(source, target, rules, state, options).await?;
    execute_cycle(prepared, target, state, options, hooks).await
}

/// Applies a saved plan exactly, after checking that it is not stale: the state has not
/// been written since it was computed, and a plan computed now is identical. Then it
/// records the outcome like [`run_cycle`].
pub async fn apply_saved_plan(
    saved: &SyncPlan,
    source: &dyn SourceDirectory,
    target: &dyn TargetDirectory,
    rules: &RuleSet,
    state: &mut dyn StateStore,
    options: &CycleOptions,
    hooks: &CycleHooks,
) -> Result<CycleReport, CycleError> {
    let Some(binding) = &saved.binding else {
        return Err(CycleError::StalePlan(
            "the plan file carries no binding to a state file (was it written by `partnersync plan --out`?)".into(),
        ));
    };
    if saved.version != crate::PLAN_VERSION {
        return Err(CycleError::StalePlan(format!(
            "the plan has format version {}, this partnersync writes version {}",
            saved.version,
            crate::PLAN_VERSION
        )));
    }
    let generation = state_generation(state)?;
    if binding.state_generation != generation {
        return Err(CycleError::StalePlan(format!(
            "partnersync has written to the tenant since the plan was made (state generation {} → {generation})",
            binding.state_generation
        )));
    }
    if binding.config_digest != options.config_digest {
        return Err(CycleError::StalePlan(
            "the configuration or rules changed since the plan was made".into(),
        ));
    }
    let prepared = prepare_cycle(source, target, rules, state, options).await?;
    if prepared.plan.actions != saved.actions {
        let saved_set: HashSet<String> = saved
            .actions
            .iter()
            .map(|a| serde_json::to_string(a).unwrap_or_default())
            .collect();
        let now_set: HashSet<String> = prepared
            .plan
            .actions
            .iter()
            .map(|a| serde_json::to_string(a).unwrap_or_default())
            .collect();
        let gone = saved_set.difference(&now_set).count();
        let new = now_set.difference(&saved_set).count();
        return Err(CycleError::StalePlan(format!(
            "the source or the tenant changed since the plan was made: {gone} planned write(s) are no longer right and {new} new one(s) are needed"
        )));
    }
    execute_cycle(prepared, target, state, options, hooks).await
}

fn desired_json(d: &DesiredObject) -> String {
    serde_json::json!({
        "in_scope": d.in_scope,
        "attributes": d.attributes,
        "apply_once": d.apply_once,
        "errors": d.errors,
    })
    .to_string()
}

fn desired_from_json(anchor: Anchor, dn: &str, json: &str) -> Option<DesiredObject> {
    #[derive(serde::Deserialize)]
    struct Stored {
        in_scope: bool,
        attributes: partnersync_target::Attributes,
        apply_once: BTreeSet<String>,
        errors: Vec<String>,
    }
    let s: Stored = serde_json::from_str(json).ok()?;
    Some(DesiredObject {
        anchor,
        dn: dn.to_string(),
        in_scope: s.in_scope,
        attributes: s.attributes,
        apply_once: s.apply_once,
        errors: s.errors,
    })
}

fn evaluate(rules: &RuleSet, e: Entry, known: bool) -> DesiredObject {
    let mode = if known {
        EvaluationMode::Update
    } else {
        EvaluationMode::Create
    };
    let ev = rules.evaluate_with(&e, mode, false);
    DesiredObject::from_owned_evaluation(e.anchor, e.dn, ev)
}

/// The target user as the state store last left it (what partnersync wrote).
fn user_from_state(o: &ObjectState) -> TargetUser {
    TargetUser {
        id: o.target_id.clone(),
        anchor: Some(o.anchor.clone()),
        attributes: o.exported.clone(),
        enabled: enabled_in_state(o),
        deleted: o.deleted_at.is_some(),
    }
}

/// Whether the user of `o` can sign in, as partnersync last left it.
fn enabled_in_state(o: &ObjectState) -> bool {
    o.disabled_at.is_none()
        && o.exported
            .get("accountEnabled")
            .and_then(|v| v.first())
            .is_none_or(|v| v != "false")
}

/// Whether a user the change feed reports is only the echo of partnersync's own last write
/// to it: bound to the same anchor, live, enabled or not as recorded, and every exported
/// attribute the feed reports equal to the recorded value (what the feed leaves out is
/// unchanged). Planning such a user against what was last written changes nothing — the
/// merged user and the state's user agree on everything a plan compares — so a delta cycle
/// after a large apply need not plan its own writes again. Anything else (a different value
/// of an exported attribute, the anchor, sign-in, deletion) is drift and is planned.
fn is_echo(o: &ObjectState, u: &TargetUser) -> bool {
    o.deleted_at.is_none()
        && !u.deleted
        && u.anchor.as_ref() == Some(&o.anchor)
        && u.enabled == enabled_in_state(o)
        && o.exported
            .iter()
            .all(|(k, v)| u.attributes.get(k).is_none_or(|reported| reported == v))
}

/// Target changes looked up in the state store this many at a time.
const FEED_LOOKUP_CHUNK: usize = 500;

/// Reads and plans, writing nothing (not even to the state store).
pub async fn prepare_cycle(
    source: &dyn SourceDirectory,
    target: &dyn TargetDirectory,
    rules: &RuleSet,
    state: &mut dyn StateStore,
    options: &CycleOptions,
) -> Result<PreparedCycle, CycleError> {
    let started = now();
    let recovered = state.unfinished()?;
    let generation = state_generation(state)?;
    let source_cookie = state.setting("source_cookie")?.map(Cookie::new);
    let target_cookie = text_setting(state, "target_cookie")?;
    let last_full: i64 = text_setting(state, "last_full_at")?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let digest = text_setting(state, "config_digest")?.unwrap_or_default();
    let full_reason = if options.force_full {
        Some("requested".to_string())
    } else if source_cookie.is_none() {
        Some("no source cookie yet".to_string())
    } else if target_cookie.is_none() {
        Some("no target change cookie yet".to_string())
    } else if digest != options.config_digest {
        Some("the rules or configuration changed".to_string())
    } else if options
        .full_every
        .is_some_and(|every| started - last_full >= every.as_secs() as i64)
    {
        Some("periodic full reconciliation".to_string())
    } else {
        None
    };
    let mut prepared = match (full_reason, source_cookie, target_cookie) {
        (None, Some(sc), Some(tc)) => {
            let mut collector = EntryCollector::default();
            match source.delta_read(&sc, &mut collector).await? {
                DeltaRead::FullReadRequired { reason } => {
                    full(
                        source,
                        target,
                        rules,
                        state,
                        options,
                        format!("source: {reason}"),
                    )
                    .await?
                }
                DeltaRead::Changes(summary) => match target.changes_since(&tc).await {
                    Err(e) => {
                        full(
                            source,
                            target,
                            rules,
                            state,
                            options,
                            format!("target change tracking: {}", e.message),
                        )
                        .await?
                    }
                    Ok(changes) => {
                        delta(
                            collector,
                            summary.cookie,
                            changes,
                            target,
                            rules,
                            state,
                            options,
                            &recovered,
                        )
                        .await?
                    }
                },
            }
        }
        (reason, _, _) => {
            full(
                source,
                target,
                rules,
                state,
                options,
                reason.unwrap_or_default(),
            )
            .await?
        }
    };
    prepared.recovered = recovered;
    prepared.generation = generation;
    prepared.started = started;
    if options.drift == DriftPolicy::Report {
        report_drift(&mut prepared);
    }
    let managed_total = match prepared.state_objects {
        Some(n) => n,
        None => state.object_count()?,
    };
    prepared.plan.managed_in_target = prepared.plan.managed_in_target.max(managed_total);
    prepared.plan.binding = Some(PlanBinding {
        state_generation: generation,
        mode: prepared.mode.to_string(),
        computed_at: started,
        config_digest: options.config_digest.clone(),
    });
    Ok(prepared)
}

/// Drops updates that only undo a change made in the target (drift), listing the
/// objects in [`SyncPlan::kept`] instead.
fn report_drift(p: &mut PreparedCycle) {
    let known = &p.known;
    let mut kept = Vec::new();
    p.plan.actions.retain_mut(|a| {
        let Action::Update {
            anchor, changes, ..
        } = a
        else {
            return true;
        };
        let Some(o) = Anchor::from_immutable_id(anchor)
            .ok()
            .and_then(|x| known.get(&x))
        else {
            return true;
        };
        let before = changes.len();
        changes.retain(|c| o.exported.get(&c.attribute) != Some(&c.new));
        if changes.len() < before {
            kept.push(format!("{anchor} (changed in the target; not corrected)"));
        }
        !changes.is_empty()
    });
    p.plan.kept.extend(kept);
}

#[allow(clippy::too_many_arguments)]
fn finish_prepare(
    desired: HashMap<Anchor, DesiredObject>,
    target_users: Vec<TargetUser>,
    known: HashMap<Anchor, ObjectState>,
    soft_matches: HashMap<Anchor, Vec<(String, TargetUser)>>,
    forget: Vec<Anchor>,
    options: &CycleOptions,
    mode: ReadMode,
    pending_scope: PendingScope,
    next_source_cookie: Option<Cookie>,
    next_target_cookie: Option<String>,
    counts: (usize, usize, usize),
) -> PreparedCycle {
    let managed: HashMap<Anchor, Managed> = known
        .iter()
        .map(|(a, o)| {
            (
                a.clone(),
                Managed {
                    disabled_at: o.disabled_at,
                },
            )
        })
        .collect();
    let mut list: Vec<DesiredObject> = desired.values().cloned().collect();
    list.sort_by(|a, b| a.anchor.cmp(&b.anchor));
    let plan = crate::plan_with(
        &PlanInput {
            desired: &list,
            target: &target_users,
            managed: &managed,
            soft_matches: &soft_matches,
        },
        &options.plan,
    );
    // Objects in sync whose state row is missing or out of date (a hard match on an
    // existing user, a crash between a write and its record): recorded on apply.
    let acted: HashSet<&str> = plan.actions.iter().map(Action::anchor).collect();
    let errored: HashSet<&str> = plan.errors.iter().map(|e| e.anchor.as_str()).collect();
    let mut untracked = Vec::new();
    for u in &target_users {
        let Some(a) = &u.anchor else { continue };
        let Some(d) = desired.get(a) else { continue };
        let id = a.to_immutable_id();
        if !d.in_scope || acted.contains(id.as_str()) || errored.contains(id.as_str()) {
            continue;
        }
        let row = exported_row(a, &u.id, d, known.get(a));
        if known.get(a) != Some(&row) {
            untracked.push(row);
        }
    }
    PreparedCycle {
        plan,
        mode,
        source_entries: counts.0,
        source_deleted: counts.1,
        target_changes: counts.2,
        target_echoes: 0,
        recovered: Vec::new(),
        desired,
        known,
        untracked,
        forget,
        pending_scope,
        next_source_cookie,
        next_target_cookie,
        generation: 0,
        started: 0,
        state_objects: None,
    }
}

/// The state row of an object that matches `d` in the target.
fn exported_row(
    anchor: &Anchor,
    id: &str,
    d: &DesiredObject,
    old: Option<&ObjectState>,
) -> ObjectState {
    let exported = d
        .attributes
        .iter()
        .filter(|(k, _)| !d.apply_once.contains(*k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    ObjectState {
        anchor: anchor.clone(),
        target_id: id.to_string(),
        dn: d.dn.clone(),
        exported,
        disabled_at: old.and_then(|o| o.disabled_at),
        deleted_at: old.and_then(|o| o.deleted_at),
    }
}

async fn soft_match_candidates<'d>(
    target: &dyn TargetDirectory,
    candidates: impl IntoIterator<Item = &'d DesiredObject>,
) -> Result<HashMap<Anchor, Vec<(String, TargetUser)>>, TargetError> {
    let mut out = HashMap::new();
    for d in candidates {
        let mut found: Vec<(String, TargetUser)> = Vec::new();
        for attribute in ["userPrincipalName", "mail"] {
            let Some(value) = d.attributes.get(attribute).and_then(|v| v.first()) else {
                continue;
            };
            for u in target.find_by(attribute, value).await? {
                if !found.iter().any(|(_, f)| f.id == u.id) {
                    found.push((format!("{attribute} {value}"), u));
                }
            }
        }
        if !found.is_empty() {
            out.insert(d.anchor.clone(), found);
        }
    }
    Ok(out)
}

/// Whether a wanted object with no user bound to its anchor is looked for by UPN or mail.
fn soft_match_candidate(d: &DesiredObject) -> bool {
    d.in_scope && d.errors.is_empty()
}

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// A 128-bit digest of a state row's target id, DN and exported attributes (as stored), so
/// a full cycle can tell an up-to-date row without holding a million rows in memory. The
/// hashers are seeded at random per cycle.
#[derive(Clone)]
struct RowDigest(
    foldhash::quality::RandomState,
    foldhash::quality::RandomState,
);

impl RowDigest {
    fn new() -> Self {
        RowDigest(Default::default(), Default::default())
    }

    fn of(&self, target_id: &str, dn: &str, exported_json: &[u8]) -> u128 {
        use std::hash::{BuildHasher, Hasher};
        let one = |state: &foldhash::quality::RandomState| {
            let mut h = state.build_hasher();
            for part in [target_id.as_bytes(), dn.as_bytes(), exported_json] {
                h.write_usize(part.len());
                h.write(part);
            }
            h.finish()
        };
        (u128::from(one(&self.0)) << 64) | u128::from(one(&self.1))
    }
}

/// Writes the attributes [`exported_row`] records for `d` into `out` exactly as the state
/// store stores them (`serde_json` of the map: keys in order, no spaces, `serde_json`'s
/// escapes), without building the map; checked against `serde_json` in the tests.
fn write_exported_json(d: &DesiredObject, out: &mut Vec<u8>) {
    fn string(s: &str, out: &mut Vec<u8>) {
        out.push(b'"');
        let bytes = s.as_bytes();
        // Almost no value needs an escape: check them all at once (no early exit, so the
        // compiler can vectorise it), then copy.
        let plain = !bytes.iter().fold(false, |any, &b| {
            any | (b < 0x20) | (b == b'"') | (b == b'\\')
        });
        if plain {
            out.extend_from_slice(bytes);
            out.push(b'"');
            return;
        }
        let mut start = 0;
        for (i, &b) in bytes.iter().enumerate() {
            let escape: &[u8] = match b {
                b'"' => b"\\\"",
                b'\\' => b"\\\\",
                b'\n' => b"\\n",
                b'\r' => b"\\r",
                b'\t' => b"\\t",
                0x08 => b"\\b",
                0x0c => b"\\f",
                0x00..=0x1f => b"",
                _ => continue,
            };
            out.extend_from_slice(&bytes[start..i]);
            if escape.is_empty() {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
            } else {
                out.extend_from_slice(escape);
            }
            start = i + 1;
        }
        out.extend_from_slice(&bytes[start..]);
        out.push(b'"');
    }
    out.push(b'{');
    let mut first = true;
    for (name, values) in &d.attributes {
        if d.apply_once.contains(name) {
            continue;
        }
        if !std::mem::take(&mut first) {
            out.push(b',');
        }
        string(name, out);
        out.extend_from_slice(b":[");
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            string(v, out);
        }
        out.push(b']');
    }
    out.push(b'}');
}

/// What a full cycle knows of the state's rows before the source streams in: a
/// [`KnownRow`] per row, and how many rows are live (not soft-deleted).
fn known_rows(
    digest: &RowDigest,
    hint: usize,
    scan: impl FnOnce(&mut ObjectVisitor<'_>) -> Result<(), StateError>,
) -> Result<(FastMap<Anchor, KnownRow>, usize), StateError> {
    let mut known: FastMap<Anchor, KnownRow> =
        FastMap::with_capacity_and_hasher(hint, Default::default());
    let mut live = 0;
    scan(&mut |o| {
        live += usize::from(o.deleted_at.is_none());
        let anchor = Anchor::from_immutable_id(o.anchor).map_err(|e| StateError::Corrupt {
            what: "anchor",
            message: format!("{}: {e}", o.anchor),
        })?;
        let row = KnownRow {
            digest: digest.of(o.target_id, o.dn, o.exported_json.as_bytes()),
            disabled_at: o.disabled_at,
            in_scope: false,
            verified: false,
            seen: false,
        };
        known.insert(anchor, row);
        Ok(())
    })?;
    Ok((known, live))
}

/// What a full cycle keeps of each managed object while the source streams in.
struct KnownRow {
    /// [`RowDigest`] of the stored row.
    digest: u128,
    disabled_at: Option<i64>,
    /// The source returned the object, in scope.
    in_scope: bool,
    /// The stored row is known to decode: it matched the row the cycle would write, or was
    /// read back whole. Rows never verified are read back at the end, so a corrupt row
    /// fails the cycle as it always did.
    verified: bool,
    /// The source returned the object (in scope or not).
    seen: bool,
}

/// The sink of a full cycle's source read: evaluates and plans each entry as it arrives and
/// keeps only what needs a write, an error or a state update, so memory does not grow with
/// the directory beyond the target listing and a few bytes per managed object.
struct FullPlanSink<'a> {
    rules: &'a RuleSet,
    soft_match: bool,
    listing: &'a Listing,
    digest: &'a RowDigest,
    known: FastMap<Anchor, KnownRow>,
    planner: Planner<'a, Listing>,
    entries: usize,
    /// Objects the source returned that the state does not know: per listed user bound to
    /// them, and the others (with [`KnownRow::seen`], so that a source that returns an
    /// object twice is planned by its later entry).
    seen_listed: Vec<bool>,
    seen_new: HashSet<Anchor, foldhash::fast::RandomState>,
    /// Objects with a write or an error (what `execute_cycle` records), and out-of-scope
    /// managed objects (they may be removed).
    desired: HashMap<Anchor, DesiredObject>,
    /// Wanted objects no listed user is bound to: looked up by UPN and mail after the read.
    deferred: Vec<DesiredObject>,
    /// State rows to record: (listing index, row).
    untracked: Vec<(usize, ObjectState)>,
    /// Rows whose digest differs from the stored one: compared with the stored row after
    /// the read (it may only be spelled differently).
    unsure: Vec<(usize, ObjectState)>,
    json: Vec<u8>,
}

/// [`RowDigest`] of the row [`exported_row`] gives for `d` bound to target id `id`, with
/// `json` as scratch space.
fn row_digest(digest: &RowDigest, id: &str, d: &DesiredObject, json: &mut Vec<u8>) -> u128 {
    json.clear();
    write_exported_json(d, json);
    digest.of(id, &d.dn, json)
}

impl FullPlanSink<'_> {
    fn retract(&mut self, anchor: &Anchor) {
        self.planner.retract(anchor);
        if let Some(k) = self.known.get_mut(anchor) {
            k.in_scope = false;
        }
        self.desired.remove(anchor);
        self.deferred.retain(|d| &d.anchor != anchor);
        self.untracked.retain(|(_, r)| &r.anchor != anchor);
        self.unsure.retain(|(_, r)| &r.anchor != anchor);
    }
}

impl EntrySink for FullPlanSink<'_> {
    /// Plans `e` and keeps what needs a write, an error or a state update. At a million
    /// entries the map lookups are much of the cost, so the state's row is looked up once
    /// and the listed user once.
    fn entry(&mut self, e: Entry) -> Result<(), SinkError> {
        self.entries += 1;
        let mut row = self.known.get_mut(&e.anchor);
        // Whether the source returned the object before (remembering that it has now).
        let again = match row.as_deref_mut() {
            Some(k) => std::mem::replace(&mut k.seen, true),
            None => match self.planner.user_index(&e.anchor) {
                Some(i) => std::mem::replace(&mut self.seen_listed[i], true),
                None => !self.seen_new.insert(e.anchor.clone()),
            },
        };
        if again {
            // Returned twice: the later entry wins.
            self.retract(&e.anchor);
            row = self.known.get_mut(&e.anchor);
        }
        let d = evaluate(self.rules, e, row.is_some());
        if !d.in_scope {
            if row.is_some() {
                self.desired.insert(d.anchor.clone(), d);
            }
            return Ok(());
        }
        let managed = row.as_deref_mut().map(|k| {
            k.in_scope = true;
            Managed {
                disabled_at: k.disabled_at,
            }
        });
        if self.soft_match && soft_match_candidate(&d) && !self.planner.is_listed(&d.anchor) {
            self.deferred.push(d);
            return Ok(());
        }
        match self.planner.add(&d, None, managed) {
            Planned::InSync => {
                // Queue the state row when it is missing or may be out of date.
                for &i in self.planner.users_of_added(&d.anchor) {
                    let id = self.listing.id(i);
                    match row.as_deref_mut() {
                        None => self
                            .untracked
                            .push((i, exported_row(&d.anchor, id, &d, None))),
                        Some(k) => {
                            if row_digest(self.digest, id, &d, &mut self.json) == k.digest {
                                k.verified = true;
                            } else {
                                self.unsure.push((i, exported_row(&d.anchor, id, &d, None)));
                            }
                        }
                    }
                }
            }
            Planned::Acted | Planned::Error => {
                self.desired.insert(d.anchor.clone(), d);
            }
            Planned::OutOfScope => {}
        }
        Ok(())
    }

    fn deleted(&mut self, _: Anchor) -> Result<(), SinkError> {
        // Not part of a full read.
        Ok(())
    }
}

/// A full cycle: list the target, read the whole source and plan each entry as it arrives
/// (see [`FullPlanSink`]). The result equals planning every entry at once against the
/// listing (`full_reference` in the tests checks it).
async fn full(
    source: &dyn SourceDirectory,
    target: &dyn TargetDirectory,
    rules: &RuleSet,
    state: &mut dyn StateStore,
    options: &CycleOptions,
    reason: String,
) -> Result<PreparedCycle, CycleError> {
    // The change cookie is taken before listing, so changes made during the listing are
    // seen by the next delta cycle. No cookie (a target without change tracking) only
    // means the next cycle is a full one again.
    let next_target_cookie = target.delta_cookie().await.ok();
    let digest = RowDigest::new();
    // Sized by a hint: counting the rows first would cost SQLite a scan of its own. A
    // hint far above the count (rows forgotten since) is capped: the map still grows.
    let hint = state.object_count_hint().min(1 << 22);
    // The state is scanned on another thread while the target is listed, when the store
    // can scan detached (SQLite: a second, read-only connection).
    let scanning = state.detached_scan().and_then(|scan| {
        let digest = digest.clone();
        std::thread::Builder::new()
            .name("partnersync-state-scan".into())
            .spawn(move || known_rows(&digest, hint, scan))
            .ok()
    });
    // Listed first, so the source can be planned as it streams in: the listing is the one
    // side held whole.
    let mut listing = Listing::default();
    target
        .list_managed_each(&mut |user| {
            listing.push(user);
            Ok(())
        })
        .await?;
    let (known, state_objects) = match scanning {
        Some(thread) => thread.join().map_err(|_| StateError::Corrupt {
            what: "objects",
            message: "the state scan stopped unexpectedly".into(),
        })??,
        None => known_rows(&digest, hint, |visit| state.scan_objects(visit))?,
    };
    let mut sink = FullPlanSink {
        rules,
        soft_match: options.soft_match,
        listing: &listing,
        digest: &digest,
        known,
        planner: Planner::new(&listing, &options.plan),
        entries: 0,
        seen_listed: vec![false; listing.count()],
        seen_new: HashSet::default(),
        desired: HashMap::new(),
        deferred: Vec::new(),
        untracked: Vec::new(),
        unsure: Vec::new(),
        json: Vec::new(),
    };
    let summary = source.full_read(&mut sink).await?;
    let FullPlanSink {
        mut known,
        mut planner,
        entries: source_entries,
        mut desired,
        deferred,
        mut untracked,
        unsure,
        ..
    } = sink;
    if !deferred.is_empty() {
        let soft_matches = soft_match_candidates(target, &deferred).await?;
        for d in deferred {
            let soft = soft_matches.get(&d.anchor).map(Vec::as_slice);
            let managed = known.get(&d.anchor).map(|k| Managed {
                disabled_at: k.disabled_at,
            });
            if planner.add(&d, soft, managed) != Planned::InSync {
                desired.insert(d.anchor.clone(), d);
            }
        }
    }
    let read_back = |a: &Anchor, known: &mut FastMap<Anchor, KnownRow>| {
        if let Some(k) = known.get_mut(a) {
            k.verified = true;
        }
        state.object(a)
    };
    for (i, mut row) in unsure {
        let stored = read_back(&row.anchor, &mut known)?;
        row.disabled_at = stored.as_ref().and_then(|o| o.disabled_at);
        row.deleted_at = stored.as_ref().and_then(|o| o.deleted_at);
        if stored.as_ref() != Some(&row) {
            untracked.push((i, row));
        }
    }
    untracked.sort_by_key(|(i, _)| *i);
    let forget: Vec<Anchor> = known
        .iter()
        .filter(|(a, k)| !k.in_scope && !planner.is_listed(a))
        .map(|(a, _)| a.clone())
        .collect();
    let plan = planner.finish(
        |a| {
            known.get(a).map(|k| Managed {
                disabled_at: k.disabled_at,
            })
        },
        true,
    );
    // What `execute_cycle` needs: the objects it writes or records an error for, with
    // their stored rows.
    let mut involved: HashSet<Anchor> = HashSet::new();
    let mut rows: HashMap<Anchor, ObjectState> = HashMap::new();
    let anchors = plan.actions.iter().map(Action::anchor);
    for id in anchors.chain(plan.errors.iter().map(|e| e.anchor.as_str())) {
        let Ok(a) = Anchor::from_immutable_id(id) else {
            continue;
        };
        if known.contains_key(&a) && !rows.contains_key(&a) {
            if let Some(o) = read_back(&a, &mut known)? {
                rows.insert(a.clone(), o);
            }
        }
        involved.insert(a);
    }
    let unverified: Vec<Anchor> = known
        .iter()
        .filter(|(_, k)| !k.verified)
        .map(|(a, _)| a.clone())
        .collect();
    for a in &unverified {
        read_back(a, &mut known)?;
    }
    desired.retain(|a, _| involved.contains(a));
    // Freeing the listing and the rows (two million small allocations at a million users)
    // takes a noticeable part of a second; on another thread, the plan is ready sooner.
    let garbage = (known, listing);
    let _ = std::thread::Builder::new()
        .name("partnersync-free".into())
        .spawn(move || drop(garbage));
    Ok(PreparedCycle {
        plan,
        mode: ReadMode::Full(reason),
        source_entries,
        source_deleted: 0,
        target_changes: 0,
        target_echoes: 0,
        recovered: Vec::new(),
        desired,
        known: rows,
        untracked: untracked.into_iter().map(|(_, r)| r).collect(),
        forget,
        pending_scope: PendingScope::All,
        next_source_cookie: summary.cookie,
        next_target_cookie,
        generation: 0,
        started: 0,
        state_objects: Some(state_objects),
    })
}

#[allow(clippy::too_many_arguments)]
async fn delta(
    collector: EntryCollector,
    next_source_cookie: Cookie,
    changes: partnersync_target::TargetChanges,
    target: &dyn TargetDirectory,
    rules: &RuleSet,
    state: &mut dyn StateStore,
    options: &CycleOptions,
    recovered: &[JournalEntry],
) -> Result<PreparedCycle, CycleError> {
    let now = options.plan.now();
    let mut universe: BTreeSet<Anchor> = BTreeSet::new();
    let mut known: HashMap<Anchor, ObjectState> = HashMap::new();
    let mut desired: HashMap<Anchor, DesiredObject> = HashMap::new();
    let mut users: HashMap<Anchor, TargetUser> = HashMap::new();
    let mut gone_for_good: HashSet<Anchor> = HashSet::new();
    let mut foreign: HashMap<Anchor, TargetUser> = HashMap::new();
    let source_entries = collector.entries.len();
    let source_deleted: HashSet<Anchor> = collector.deleted.iter().cloned().collect();
    for e in collector.entries {
        let anchor = e.anchor.clone();
        let row = state.object(&anchor)?;
        desired.insert(anchor.clone(), evaluate(rules, e, row.is_some()));
        if let Some(o) = row {
            known.insert(anchor.clone(), o);
        }
        universe.insert(anchor);
    }
    universe.extend(source_deleted.iter().cloned());
    let pending = state.pending()?;
    let retried: HashSet<Anchor> = pending
        .iter()
        .filter_map(|p| Anchor::from_immutable_id(&p.anchor).ok())
        .collect();
    // Objects planned from something besides the feed (the source delta, the retry list):
    // their reported state is always kept, echo or not.
    let planned_anyway =
        |a: &Anchor| desired.contains_key(a) || source_deleted.contains(a) || retried.contains(a);
    let target_changes = changes.changed.len() + changes.deleted.len() + changes.removed.len();
    // After a large apply the feed reports every user written: look them up in chunks, and
    // leave out the echoes of partnersync's own writes (`is_echo`).
    let mut echoes = 0;
    let mut changed = changes.changed.into_iter().peekable();
    while changed.peek().is_some() {
        let chunk: Vec<TargetUser> = changed.by_ref().take(FEED_LOOKUP_CHUNK).collect();
        let ids: Vec<&str> = chunk.iter().map(|u| u.id.as_str()).collect();
        let mut rows: HashMap<String, ObjectState> = state
            .objects_by_target_ids(&ids)?
            .into_iter()
            .map(|o| (o.target_id.clone(), o))
            .collect();
        for u in chunk {
            match rows.remove(&u.id) {
                Some(o) if is_echo(&o, &u) && !planned_anyway(&o.anchor) => echoes += 1,
                Some(o) => {
                    let mut merged = user_from_state(&o);
                    merged.attributes.extend(u.attributes);
                    merged.enabled = u.enabled;
                    merged.deleted = false;
                    universe.insert(o.anchor.clone());
                    users.insert(o.anchor.clone(), merged);
                    known.insert(o.anchor.clone(), o);
                }
                None => {
                    if let Some(a) = u.anchor.clone() {
                        foreign.insert(a, u);
                    }
                }
            }
        }
    }
    for ids in changes.deleted.chunks(FEED_LOOKUP_CHUNK) {
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        for o in state.objects_by_target_ids(&ids)? {
            // Soft-deleted by partnersync itself: its own delete, echoed.
            if o.deleted_at.is_some() && !planned_anyway(&o.anchor) {
                echoes += 1;
                continue;
            }
            let mut u = user_from_state(&o);
            u.deleted = true;
            universe.insert(o.anchor.clone());
            users.insert(o.anchor.clone(), u);
            known.insert(o.anchor.clone(), o);
        }
    }
    for id in &changes.removed {
        if let Some(o) = state.object_by_target_id(id)? {
            universe.insert(o.anchor.clone());
            users.remove(&o.anchor);
            gone_for_good.insert(o.anchor.clone());
            known.insert(o.anchor.clone(), o);
        }
    }
    let mut pending_scope: Vec<String> = Vec::new();
    for p in &pending {
        let Ok(a) = Anchor::from_immutable_id(&p.anchor) else {
            continue;
        };
        pending_scope.push(p.anchor.clone());
        if !desired.contains_key(&a) && !source_deleted.contains(&a) {
            if let Some(d) = desired_from_json(a.clone(), &p.dn, &p.desired) {
                desired.insert(a.clone(), d);
            }
        }
        universe.insert(a);
    }
    for j in recovered {
        if let Ok(a) = Anchor::from_immutable_id(&j.anchor) {
            universe.insert(a);
        }
    }
    let due_before = now - i64::from(options.plan.delete_after_days) * 86_400;
    for o in state.disabled_before(due_before)? {
        universe.insert(o.anchor.clone());
        known.entry(o.anchor.clone()).or_insert(o);
    }
    for a in &universe {
        if !known.contains_key(a) {
            if let Some(o) = state.object(a)? {
                known.insert(a.clone(), o);
            }
        }
    }
    // Objects that changed only in the target, or are retried, keep wanting what was
    // last written — unless their source object is gone (disabled or deleted by us, or
    // reported deleted now).
    for a in &universe {
        if desired.contains_key(a) || source_deleted.contains(a) {
            continue;
        }
        if let Some(o) = known.get(a) {
            if o.disabled_at.is_none() && o.deleted_at.is_none() {
                desired.insert(
                    a.clone(),
                    DesiredObject {
                        anchor: a.clone(),
                        dn: o.dn.clone(),
                        in_scope: true,
                        attributes: o.exported.clone(),
                        apply_once: BTreeSet::new(),
                        errors: Vec::new(),
                    },
                );
            }
        }
    }
    // The target side of every object in the universe: what changed, else what we last
    // wrote; a wanted object the state does not know is looked up by anchor first, so
    // nothing is created twice.
    for a in &universe {
        if users.contains_key(a) || gone_for_good.contains(a) {
            continue;
        }
        if let Some(o) = known.get(a) {
            users.insert(a.clone(), user_from_state(o));
        } else if let Some(u) = foreign.remove(a) {
            users.insert(a.clone(), u);
        } else if desired.get(a).is_some_and(|d| d.in_scope) {
            if let Some(u) = target.find_by_anchor(a).await? {
                users.insert(a.clone(), u);
            }
        }
    }
    let forget: Vec<Anchor> = gone_for_good
        .iter()
        .filter(|a| desired.get(*a).is_none_or(|d| !d.in_scope))
        .cloned()
        .collect();
    let matched: HashSet<Anchor> = users.keys().cloned().collect();
    let soft_matches = if options.soft_match {
        let candidates = desired
            .values()
            .filter(|d| soft_match_candidate(d) && !matched.contains(&d.anchor));
        soft_match_candidates(target, candidates).await?
    } else {
        HashMap::new()
    };
    pending_scope.extend(universe.iter().map(Anchor::to_immutable_id));
    let mut prepared = finish_prepare(
        desired,
        users.into_values().collect(),
        known,
        soft_matches,
        forget,
        options,
        ReadMode::Delta,
        PendingScope::Anchors(pending_scope),
        Some(next_source_cookie),
        Some(changes.cookie),
        (source_entries, source_deleted.len(), target_changes),
    );
    prepared.target_echoes = echoes;
    Ok(prepared)
}

/// Checks the guard, applies the prepared plan (unless staging) and records everything.
pub async fn execute_cycle(
    prepared: PreparedCycle,
    target: &dyn TargetDirectory,
    state: &mut dyn StateStore,
    options: &CycleOptions,
    hooks: &CycleHooks,
) -> Result<CycleReport, CycleError> {
    let guard_base = prepared.guard_source_entries(state)?;
    if let Err(tripped) = options
        .guard
        .check(&prepared.plan, guard_base, options.allow_deletes)
    {
        record(state, &prepared, "guard-tripped", &[], None)?;
        return Err(CycleError::Guard(tripped));
    }
    if options.staging {
        let run_id = record(state, &prepared, "staged", &[], None)?;
        return Ok(report(prepared, 0, Vec::new(), None, false, run_id));
    }
    let recovered_ids: Vec<i64> = prepared.recovered.iter().map(|j| j.id).collect();
    state.commit(&prepared.untracked, &prepared.forget, &recovered_ids)?;

    let actions = &prepared.plan.actions;
    let total = actions.len();
    let batch_size = options.batch_size.max(1);
    let started = Instant::now();
    let mut rows: HashMap<Anchor, ObjectState> = HashMap::new();
    let mut failures: Vec<(String, TargetError)> = Vec::new();
    let mut failed_anchors: HashSet<String> = HashSet::new();
    let mut attempted = 0usize;
    let mut stopped = None;
    let mut interrupted = false;
    let indexed: Vec<(usize, &Action)> = actions.iter().enumerate().collect();
    for chunk in batches(&indexed, batch_size) {
        if hooks.cancel.load(Ordering::SeqCst) {
            interrupted = true;
            break;
        }
        let entries: Vec<(&str, &str)> =
            chunk.iter().map(|(_, a)| (a.anchor(), a.name())).collect();
        let journal = state.journal_begin(&entries, now())?;
        let mut ops = Vec::with_capacity(chunk.len());
        let mut sent = Vec::with_capacity(chunk.len());
        for (i, a) in chunk {
            match crate::apply::operation(a) {
                Ok(op) => {
                    ops.push(op);
                    sent.push(*i);
                }
                Err(e) => {
                    failed_anchors.insert(a.anchor().to_string());
                    failures.push((a.anchor().to_string(), e));
                }
            }
        }
        let results = target.apply(&ops).await;
        attempted += chunk.len();
        let mut put = Vec::new();
        for (i, result) in sent.into_iter().zip(results) {
            let action = &actions[i];
            match result {
                Ok(outcome) => {
                    if let Some(row) = remember(&prepared, &mut rows, action, &outcome) {
                        put.push(row);
                    }
                }
                Err(e) => {
                    failed_anchors.insert(action.anchor().to_string());
                    failures.push((action.anchor().to_string(), e));
                }
            }
        }
        // A row is only final when every action of its object succeeded.
        put.retain(|r| !failed_anchors.contains(&r.anchor.to_immutable_id()));
        state.commit(&put, &[], &journal)?;
        let elapsed = started.elapsed().as_secs_f64().max(1e-6);
        let rate = attempted as f64 / elapsed;
        if let Some(cb) = &hooks.progress {
            let left = total.saturating_sub(attempted);
            cb(&crate::Progress {
                done: attempted,
                total,
                failed: failures.len(),
                writes_per_second: rate,
                eta: (rate > 0.0).then(|| Duration::from_secs_f64(left as f64 / rate)),
            });
        }
        match options.error_policy {
            ErrorPolicy::StopAfter(n) if failures.len() > n => {
                stopped = Some(format!(
                    "{} writes failed, more than the error policy allows ({n}); the remaining {} were not attempted",
                    failures.len(),
                    total - attempted
                ));
            }
            ErrorPolicy::StopAbovePercent(p)
                if attempted > 0 && failures.len() as f64 * 100.0 / attempted as f64 > p =>
            {
                stopped = Some(format!(
                    "{} of {attempted} writes failed, above the error policy's {p}%; the remaining {} were not attempted",
                    failures.len(),
                    total - attempted
                ));
            }
            _ => {}
        }
        if stopped.is_some() {
            break;
        }
    }
    // Retry list: failed writes and objects in error, with what the rules wanted.
    let when = now();
    let old_pending: HashMap<String, PendingObject> = state
        .pending()?
        .into_iter()
        .map(|p| (p.anchor.clone(), p))
        .collect();
    let mut next_pending = Vec::new();
    let mut add_pending = |anchor: &str, dn: &str, error: String| {
        let Ok(a) = Anchor::from_immutable_id(anchor) else {
            return;
        };
        let Some(d) = prepared.desired.get(&a) else {
            return;
        };
        next_pending.push(PendingObject {
            anchor: anchor.to_string(),
            dn: dn.to_string(),
            error,
            attempts: old_pending.get(anchor).map_or(0, |p| p.attempts) + 1,
            last_at: when,
            desired: desired_json(d),
        });
    };
    for e in &prepared.plan.errors {
        add_pending(&e.anchor, &e.dn, e.message.clone());
    }
    for (anchor, e) in &failures {
        let dn = Anchor::from_immutable_id(anchor)
            .ok()
            .and_then(|a| prepared.desired.get(&a))
            .map(|d| d.dn.clone())
            .unwrap_or_default();
        add_pending(anchor, &dn, e.to_string());
    }
    let scope: Vec<String> = match &prepared.pending_scope {
        PendingScope::All => old_pending.keys().cloned().collect(),
        PendingScope::Anchors(a) => a.clone(),
    };
    state.set_pending(&scope, &next_pending)?;

    let complete = !interrupted && stopped.is_none();
    if complete {
        if let Some(c) = &prepared.next_source_cookie {
            state.set_setting("source_cookie", Some(c.as_bytes()))?;
        }
        match &prepared.next_target_cookie {
            Some(c) => state.set_setting("target_cookie", Some(c.as_bytes()))?,
            None => state.set_setting("target_cookie", None)?,
        }
        state.set_setting("config_digest", Some(options.config_digest.as_bytes()))?;
        if matches!(prepared.mode, ReadMode::Full(_)) {
            state.set_setting(
                "last_full_at",
                Some(prepared.started.to_string().as_bytes()),
            )?;
        }
    }
    if attempted > 0 {
        let g = prepared.generation + 1;
        state.set_setting("generation", Some(g.to_string().as_bytes()))?;
    }
    let outcome = if interrupted {
        "interrupted"
    } else if stopped.is_some() {
        "stopped-by-error-policy"
    } else if failures.is_empty() {
        "applied"
    } else {
        "applied-with-errors"
    };
    let run_id = record(state, &prepared, outcome, &failures, stopped.as_deref())?;
    Ok(report(
        prepared,
        attempted,
        failures,
        stopped,
        interrupted,
        run_id,
    ))
}

/// Splits the actions into target batches of at most `size`, never putting two actions on
/// the same object in one batch: a target may run a batch's operations in any order (Graph's
/// `$batch` runs them in parallel), and a restore must land before the update that follows.
fn batches<'a, 'b>(
    actions: &'b [(usize, &'a Action)],
    size: usize,
) -> Vec<&'b [(usize, &'a Action)]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut seen: HashSet<&str> = HashSet::new();
    for (i, (_, a)) in actions.iter().enumerate() {
        if i - start == size || seen.contains(a.anchor()) {
            out.push(&actions[start..i]);
            start = i;
            seen.clear();
        }
        seen.insert(a.anchor());
    }
    if start < actions.len() {
        out.push(&actions[start..]);
    }
    out
}

fn report(
    p: PreparedCycle,
    attempted: usize,
    failures: Vec<(String, TargetError)>,
    stopped: Option<String>,
    interrupted: bool,
    run_id: i64,
) -> CycleReport {
    CycleReport {
        recovered: p.recovered.len(),
        plan: p.plan,
        mode: p.mode,
        source_entries: p.source_entries,
        target_changes: p.target_changes,
        target_echoes: p.target_echoes,
        attempted,
        failures,
        stopped,
        interrupted,
        run_id,
    }
}

fn record(
    state: &mut dyn StateStore,
    p: &PreparedCycle,
    outcome: &str,
    failures: &[(String, TargetError)],
    stopped: Option<&str>,
) -> Result<i64, StateError> {
    let counts = p.plan.counts();
    let mut errors: Vec<(String, String)> = p
        .plan
        .errors
        .iter()
        .map(|e| (e.anchor.clone(), e.message.clone()))
        .collect();
    errors.extend(failures.iter().map(|(a, e)| (a.clone(), e.to_string())));
    state.record_run(&RunRecord {
        id: 0,
        started_at: p.started,
        finished_at: now(),
        outcome: outcome.into(),
        summary: serde_json::json!({
            "mode": p.mode.to_string(),
            "source_entries": p.source_entries,
            "source_deleted": p.source_deleted,
            "target_changes": p.target_changes,
            "target_echoes": p.target_echoes,
            "creates": counts.creates, "adoptions": counts.adoptions, "updates": counts.updates,
            "user_type_changes": counts.user_type_changes,
            "restores": counts.restores, "disables": counts.disables, "deletes": counts.deletes,
            "object_errors": counts.errors, "write_failures": failures.len(),
            "kept": p.plan.kept.len(),
            "recovered": p.recovered.len(),
            "stopped": stopped,
        }),
        errors,
    })
}

/// Updates the state row of `action`'s object after it succeeded; returns the row.
fn remember(
    p: &PreparedCycle,
    rows: &mut HashMap<Anchor, ObjectState>,
    action: &Action,
    outcome: &OperationOutcome,
) -> Option<ObjectState> {
    let anchor = Anchor::from_immutable_id(action.anchor()).ok()?;
    let desired = p.desired.get(&anchor);
    let row = rows
        .entry(anchor.clone())
        .or_insert_with(|| match p.known.get(&anchor) {
            Some(o) => o.clone(),
            None => ObjectState {
                anchor: anchor.clone(),
                target_id: String::new(),
                dn: desired.map(|d| d.dn.clone()).unwrap_or_default(),
                exported: Default::default(),
                disabled_at: None,
                deleted_at: None,
            },
        });
    let from_desired = |row: &mut ObjectState, id: &str| {
        if let Some(d) = desired {
            let fresh = exported_row(&anchor, id, d, None);
            row.exported = fresh.exported;
            row.dn = fresh.dn;
        }
        row.target_id = id.to_string();
    };
    match (action, outcome) {
        (Action::Create { .. }, OperationOutcome::Created { id }) => {
            from_desired(row, id);
            row.disabled_at = None;
            row.deleted_at = None;
        }
        (Action::Adopt { id, .. }, _) => from_desired(row, id),
        (Action::Update { id, changes, .. }, _) => {
            if desired.is_some() {
                from_desired(row, id);
            } else {
                row.exported.extend(attributes_of(changes));
                row.target_id = id.clone();
            }
            if changes
                .iter()
                .any(|c| c.attribute == "accountEnabled" && c.new == ["true"])
            {
                row.disabled_at = None;
            }
        }
        (Action::Restore { id, .. }, _) => {
            row.target_id = id.clone();
            row.deleted_at = None;
        }
        (Action::Disable { .. }, _) => row.disabled_at = Some(now()),
        (Action::Delete { .. }, _) => row.deleted_at = Some(now()),
        _ => return None,
    }
    Some(row.clone())
}

#[cfg(test)]
mod streaming_full_cycle {
    //! The full cycle plans the source as it streams in; this checks it against the
    //! straightforward version it replaced (read everything, then plan at once), on random
    //! sources, targets and state files.

    use super::*;
    use crate::{DeleteMode, SqliteStateStore};
    use partnersync_source::{
        DeltaMechanism, ReadSummary, ServerKind, SourceDescription, SourceError,
    };
    use partnersync_target::{block_on, InMemoryTarget};
    use proptest::prelude::*;

    /// The full cycle as first written: collect the read, load every state row, plan.
    async fn full_reference(
        source: &dyn SourceDirectory,
        target: &dyn TargetDirectory,
        rules: &RuleSet,
        state: &mut dyn StateStore,
        options: &CycleOptions,
        reason: String,
    ) -> Result<PreparedCycle, CycleError> {
        let next_target_cookie = target.delta_cookie().await.ok();
        let mut collector = EntryCollector::default();
        let summary = source.full_read(&mut collector).await?;
        let known: HashMap<Anchor, ObjectState> = state
            .objects()?
            .into_iter()
            .map(|o| (o.anchor.clone(), o))
            .collect();
        let source_entries = collector.entries.len();
        let mut desired = HashMap::with_capacity(source_entries);
        for e in collector.entries {
            let anchor = e.anchor.clone();
            let known = known.contains_key(&anchor);
            desired.insert(anchor, evaluate(rules, e, known));
        }
        let listing = target.list_managed().await?;
        let listed: HashSet<Anchor> = listing.iter().filter_map(|u| u.anchor.clone()).collect();
        let forget = known
            .keys()
            .filter(|a| !listed.contains(*a) && desired.get(*a).is_none_or(|d| !d.in_scope))
            .cloned()
            .collect();
        let soft_matches = if options.soft_match {
            let candidates = desired
                .values()
                .filter(|d| soft_match_candidate(d) && !listed.contains(&d.anchor));
            soft_match_candidates(target, candidates).await?
        } else {
            HashMap::new()
        };
        let target_users: Vec<TargetUser> = listing
            .into_iter()
            .filter(|u| {
                u.anchor
                    .as_ref()
                    .is_some_and(|a| known.contains_key(a) || desired.contains_key(a))
            })
            .collect();
        Ok(finish_prepare(
            desired,
            target_users,
            known,
            soft_matches,
            forget,
            options,
            ReadMode::Full(reason),
            PendingScope::All,
            summary.cookie,
            next_target_cookie,
            (source_entries, 0, 0),
        ))
    }

    /// A source that returns its entries exactly as given, duplicates included.
    struct ListSource(Vec<Entry>);

    #[async_trait::async_trait]
    impl SourceDirectory for ListSource {
        async fn describe(&self) -> Result<SourceDescription, SourceError> {
            Ok(SourceDescription {
                kind: ServerKind::InMemory,
                location: "list".into(),
                naming_contexts: Vec::new(),
                delta: DeltaMechanism::FullReadOnly,
            })
        }

        async fn full_read(&self, sink: &mut dyn EntrySink) -> Result<ReadSummary, SourceError> {
            for e in &self.0 {
                sink.entry(e.clone()).map_err(SourceError::Sink)?;
            }
            Ok(ReadSummary {
                entries: self.0.len() as u64,
                cookie: Some(Cookie::new(b"list".to_vec())),
            })
        }

        async fn delta_read(
            &self,
            _: &Cookie,
            _: &mut dyn EntrySink,
        ) -> Result<DeltaRead, SourceError> {
            Ok(DeltaRead::FullReadRequired {
                reason: "full reads only".into(),
            })
        }
    }

    const RULES: &str = r#"
        [[rule]]
        name = "people"
        precedence = 10
        scope = [[{ attribute = "adminDescription", operator = "NOTSTARTSWITH", value = "User_" }]]
        [[rule.flow]]
        target = "userType"
        expression = 'IIF(IsPresent([userPrincipalName]), IIF(InStr(LCase([userPrincipalName]), "@partners.contoso.com") > 0, "Guest", "Member"), Error("no UPN"))'
        [[rule.flow]]
        target = "userPrincipalName"
        source = "userPrincipalName"
        [[rule.flow]]
        target = "displayName"
        source = "displayName"
        [[rule.flow]]
        target = "mail"
        source = "mail"
        apply_once = true
    "#;

    fn anchor(n: u8) -> Anchor {
        Anchor::from_bytes(vec![n; 16]).unwrap()
    }

    /// Object `n` as the source has it: `variant` 0 to 4 as last synced (a member, a
    /// partner or a rule error, by `n % 3`), 5 out of scope, 6 no UPN (a rule error), 7
    /// renamed, 8 moved to the partner domain, 9 without mail.
    fn entry((n, variant): (u8, u8)) -> Entry {
        let kind = if variant <= 4 { n % 3 } else { variant };
        let mut e = Entry::new(anchor(n), format!("CN=u{n},DC=contoso,DC=com"));
        let a = &mut e.attributes;
        let domain = if kind == 1 || kind == 8 {
            "partners.contoso.com"
        } else {
            "contoso.com"
        };
        if kind != 2 && kind != 6 {
            a.insert_text("userPrincipalName", &format!("u{n}@{domain}"));
        }
        if kind == 5 {
            a.insert_text("adminDescription", "User_written_back");
        }
        let name = if kind == 7 { "renamed" } else { "synced" };
        a.insert_text("displayName", &format!("User {n} {name}"));
        if kind != 9 {
            a.insert_text("mail", &format!("u{n}@mail.example"));
        }
        e
    }

    /// User `i` bound to object `n` (`bound` 0), to a foreign anchor (1) or to none (2):
    /// `drift` 0 or 1 as a first sync creates it, 2 another display name, 3 no attributes.
    fn user((n, i, bound, drift, enabled, deleted): (u8, u8, u8, u8, bool, bool)) -> TargetUser {
        let rules = RuleSet::from_toml_str(RULES).unwrap();
        let d = evaluate(&rules, entry((n, 0)), false);
        let mut attributes: partnersync_target::Attributes = d
            .attributes
            .into_iter()
            .filter(|(_, v)| !v.is_empty())
            .collect();
        match drift {
            2 => {
                attributes.insert("displayName".into(), vec!["changed in the portal".into()]);
            }
            3 => attributes.clear(),
            _ => {}
        }
        TargetUser {
            id: format!("id-{n}-{i}"),
            anchor: match bound {
                0 => Some(anchor(n)),
                1 => Some(anchor(n + 100)),
                _ => None,
            },
            attributes,
            enabled,
            deleted,
        }
    }

    /// The state row of object `n`: bound to user `id-n-0` (`id` 0) or to one that is gone
    /// (1); `stale` 0 or 1 what a sync records, 2 other values, 3 nothing; `respell`: the
    /// JSON spelled differently from how this build writes it.
    fn row(
        (n, id, stale, disabled, deleted, respell): (u8, u8, u8, bool, bool, bool),
    ) -> (ObjectState, bool) {
        let rules = RuleSet::from_toml_str(RULES).unwrap();
        let d = evaluate(&rules, entry((n, 0)), true);
        let mut o = exported_row(&anchor(n), &format!("id-{n}-0"), &d, None);
        if id == 1 {
            o.target_id = format!("gone-{n}");
        }
        match stale {
            2 => {
                o.exported
                    .insert("displayName".into(), vec!["an older name".into()]);
            }
            3 => o.exported.clear(),
            _ => {}
        }
        o.disabled_at = disabled.then_some(1_000);
        o.deleted_at = deleted.then_some(2_000);
        (o, respell)
    }

    type Scenario = (
        Vec<(u8, u8)>,
        Vec<(u8, u8, u8, u8, bool, bool)>,
        Vec<(u8, u8, u8, bool, bool, bool)>,
        (bool, u8, bool),
    );

    fn scenario() -> impl Strategy<Value = Scenario> {
        let users = (
            1u8..12,
            0u8..2,
            prop_oneof![4 => Just(0u8), 1 => Just(1), 1 => Just(2)],
            0u8..4,
            prop::bool::weighted(0.8),
            prop::bool::weighted(0.15),
        );
        let rows = (
            1u8..12,
            prop_oneof![4 => Just(0u8), 1 => Just(1)],
            0u8..4,
            prop::bool::weighted(0.3),
            prop::bool::weighted(0.2),
            prop::bool::weighted(0.4),
        );
        (
            proptest::collection::vec((1u8..12, 0u8..10), 0..16),
            proptest::collection::vec(users, 0..14),
            proptest::collection::vec(rows, 0..12),
            (any::<bool>(), 0u8..3, prop::bool::weighted(0.8)),
        )
    }

    proptest! {
        #[test]
        fn exported_json_is_spelled_as_serde_json_spells_it(
            attributes in proptest::collection::btree_map(
                "[a-zA-Z\"\\\\\\x00-\\x1f\\x7fé€😀 ]{0,6}",
                proptest::collection::vec("[a-z\"\\\\\\x00-\\x1f\\x7fé€😀 ]{0,6}", 0..3),
                0..5,
            ),
            once in proptest::collection::btree_set("[a-zA-Z]{0,2}", 0..3),
        ) {
            let d = DesiredObject {
                anchor: anchor(1),
                dn: String::new(),
                in_scope: true,
                attributes,
                apply_once: once,
                errors: Vec::new(),
            };
            let mut ours = Vec::new();
            write_exported_json(&d, &mut ours);
            let row = exported_row(&d.anchor, "id", &d, None);
            prop_assert_eq!(String::from_utf8(ours).unwrap(), serde_json::to_string(&row.exported).unwrap());
        }
    }

    fn sorted<T: Ord + Clone>(v: &[T]) -> Vec<T> {
        let mut v = v.to_vec();
        v.sort();
        v
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

        #[test]
        fn streaming_plans_what_collecting_planned(
            (entries, users, rows, (soft_match, delete_mode, complete)) in scenario()
        ) {
            let rules = RuleSet::from_toml_str(RULES).unwrap();
            let source = ListSource(entries.into_iter().map(entry).collect());
            let target = InMemoryTarget::new();
            for u in users {
                target.seed(user(u));
            }
            let dir = std::env::temp_dir().join(format!(
                "partnersync-streaming-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            let mut state = SqliteStateStore::open(&dir.join("state.db")).unwrap();
            for r in rows {
                let (o, respell) = row(r);
                state.put_object(&o).unwrap();
                if respell {
                    let spaced = serde_json::to_string_pretty(&o.exported).unwrap();
                    state.set_exported_json(&o.anchor, &spaced);
                }
            }
            let options = CycleOptions {
                soft_match,
                plan: PlanOptions {
                    delete_mode: [DeleteMode::DisableThenDelete, DeleteMode::Delete, DeleteMode::Report]
                        [usize::from(delete_mode)],
                    source_complete: complete,
                    now: 100_000_000,
                    ..PlanOptions::default()
                },
                ..CycleOptions::default()
            };
            let want = block_on(full_reference(&source, &target, &rules, &mut state, &options, "r".into())).unwrap();
            let got = block_on(full(&source, &target, &rules, &mut state, &options, "r".into())).unwrap();
            prop_assert_eq!(&got.plan, &want.plan);
            prop_assert_eq!(got.mode, want.mode);
            prop_assert_eq!(got.source_entries, want.source_entries);
            prop_assert_eq!(&got.untracked, &want.untracked);
            prop_assert_eq!(sorted(&got.forget), sorted(&want.forget));
            prop_assert_eq!(&got.next_source_cookie, &want.next_source_cookie);
            prop_assert_eq!(&got.next_target_cookie, &want.next_target_cookie);
            // What execute_cycle reads: the desired objects and stored rows of every object
            // with a write or an error.
            let mut involved: Vec<Anchor> = got
                .plan
                .actions
                .iter()
                .map(Action::anchor)
                .chain(got.plan.errors.iter().map(|e| e.anchor.as_str()))
                .map(|a| Anchor::from_immutable_id(a).unwrap())
                .collect();
            involved.sort();
            involved.dedup();
            for a in &involved {
                prop_assert_eq!(got.desired.get(a), want.desired.get(a));
                prop_assert_eq!(got.known.get(a), want.known.get(a));
            }
            prop_assert!(got.desired.keys().all(|a| involved.contains(a)));
            std::fs::remove_dir_all(&dir).ok();
        }
    }
}

#[cfg(test)]
mod corrupt_state {
    use super::*;
    use crate::SqliteStateStore;
    use partnersync_source::InMemorySource;
    use partnersync_target::{block_on, InMemoryTarget};

    const RULES: &str = r#"
        [[rule]]
        name = "ut"
        precedence = 1
        [[rule.flow]]
        target = "userPrincipalName"
        source = "userPrincipalName"
    "#;

    /// A full cycle reads only a digest of each state row, yet a row that does not decode
    /// still fails it, whether its object is in the source or not.
    #[test]
    fn a_corrupt_row_fails_a_full_cycle() {
        let rules = RuleSet::from_toml_str(RULES).unwrap();
        for in_source in [true, false] {
            let dir = std::env::temp_dir().join(format!(
                "partnersync-corrupt-{}-{in_source}",
                std::process::id()
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            let mut state = SqliteStateStore::open(&dir.join("state.db")).unwrap();
            let mut entries = Vec::new();
            for n in 1..=3u8 {
                let mut e =
                    Entry::new(Anchor::from_bytes(vec![n; 16]).unwrap(), format!("CN=u{n}"));
                e.attributes
                    .insert_text("userPrincipalName", &format!("u{n}@contoso.com"));
                entries.push(e);
            }
            let source = InMemorySource::new(entries);
            let target = InMemoryTarget::new();
            let options = CycleOptions::default();
            block_on(run_cycle(&source, &target, &rules, &mut state, &options)).unwrap();
            let broken = Anchor::from_bytes(vec![2; 16]).unwrap();
            if !in_source {
                source.delete(&broken);
            }
            state.set_exported_json(&broken, r#"{"userPrincipalName": "not a list"}"#);
            let forced = CycleOptions {
                force_full: true,
                ..CycleOptions::default()
            };
            let err =
                block_on(prepare_cycle(&source, &target, &rules, &mut state, &forced)).unwrap_err();
            assert!(
                matches!(
                    err,
                    CycleError::State(StateError::Corrupt {
                        what: "exported attributes",
                        ..
                    })
                ),
                "{err}"
            );
            std::fs::remove_dir_all(&dir).ok();
        }
    }
}
