//! One sync cycle over any source and target: read → evaluate → match → plan → guard →
//! apply → record.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use partnersync_rules::{EvaluationMode, RuleSet};
use partnersync_source::{EntryCollector, SourceDirectory, SourceError};
use partnersync_target::{OperationOutcome, TargetDirectory, TargetError};

use crate::{
    apply, plan, Action, DeletionGuard, DesiredObject, GuardTripped, ObjectState, PlanOptions,
    RunRecord, SqliteStateStore, StateError, SyncPlan,
};

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
}

impl Default for CycleOptions {
    fn default() -> Self {
        CycleOptions {
            plan: PlanOptions::default(),
            guard: DeletionGuard::default(),
            allow_deletes: None,
            staging: false,
            batch_size: 20,
        }
    }
}

/// Why a cycle could not run.
#[derive(Debug, thiserror::Error)]
pub enum CycleError {
    /// The source read failed: nothing was planned or written.
    #[error("reading the source failed, so nothing was planned or written: {0}")]
    Source(#[from] SourceError),
    /// Listing the target failed: nothing was written.
    #[error("reading the target failed, so nothing was written: {0}")]
    Target(#[from] TargetError),
    /// The state store failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// The deletion guard blocked the plan: nothing was written.
    #[error("the deletion guard stopped this run: {0}")]
    Guard(GuardTripped),
}

/// What a cycle did.
#[derive(Debug, Clone, PartialEq)]
pub struct CycleReport {
    /// The plan it computed.
    pub plan: SyncPlan,
    /// Entries the source returned.
    pub source_entries: usize,
    /// Writes attempted (0 in staging mode).
    pub attempted: usize,
    /// Writes that failed, with their anchor and error.
    pub failures: Vec<(String, TargetError)>,
    /// Journal entries from an earlier run that never finished (a crash); this run's plan
    /// reconciled them by looking the objects up by anchor.
    pub recovered: usize,
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Runs one full cycle. A failed source read, a failed target listing or a tripped guard
/// ends the cycle before anything is written; per-object write errors are isolated,
/// reported and retried by the next cycle (the plan is recomputed from what exists).
pub async fn run_cycle(
    source: &dyn SourceDirectory,
    target: &dyn TargetDirectory,
    rules: &RuleSet,
    state: &mut SqliteStateStore,
    options: &CycleOptions,
) -> Result<CycleReport, CycleError> {
    let started = now();
    let recovered = state.unfinished()?;
    let mut collector = EntryCollector::default();
    let summary = source.full_read(&mut collector).await?;
    let known: HashMap<String, ObjectState> = state
        .objects()?
        .into_iter()
        .map(|o| (o.anchor.to_immutable_id(), o))
        .collect();
    let desired: Vec<DesiredObject> = collector
        .entries
        .iter()
        .map(|e| {
            let mode = if known.contains_key(&e.anchor.to_immutable_id()) {
                EvaluationMode::Update
            } else {
                EvaluationMode::Create
            };
            DesiredObject::from_evaluation(e, &rules.evaluate_with(e, mode, false))
        })
        .collect();
    let managed = target.list_managed().await?;
    let the_plan = plan(&desired, &managed, &options.plan);
    let record = |state: &mut SqliteStateStore,
                  outcome: &str,
                  plan: &SyncPlan,
                  failures: &[(String, TargetError)]|
     -> Result<(), StateError> {
        let counts = plan.counts();
        let mut errors: Vec<(String, String)> = plan
            .errors
            .iter()
            .map(|e| (e.anchor.clone(), e.message.clone()))
            .collect();
        errors.extend(failures.iter().map(|(a, e)| (a.clone(), e.to_string())));
        state.record_run(&RunRecord {
            id: 0,
            started_at: started,
            finished_at: now(),
            outcome: outcome.into(),
            summary: serde_json::json!({
                "source_entries": collector.entries.len(),
                "creates": counts.creates, "updates": counts.updates, "user_type_changes": counts.user_type_changes,
                "restores": counts.restores, "disables": counts.disables, "deletes": counts.deletes,
                "object_errors": counts.errors, "write_failures": failures.len(),
            }),
            errors,
        })?;
        Ok(())
    };
    if let Err(tripped) =
        options
            .guard
            .check(&the_plan, collector.entries.len(), options.allow_deletes)
    {
        record(state, "guard-tripped", &the_plan, &[])?;
        return Err(CycleError::Guard(tripped));
    }
    if options.staging {
        record(state, "staged", &the_plan, &[])?;
        return Ok(CycleReport {
            plan: the_plan,
            source_entries: collector.entries.len(),
            attempted: 0,
            failures: Vec::new(),
            recovered: recovered.len(),
        });
    }
    for j in &recovered {
        state.journal_end(j.id)?;
    }
    let mut journal = Vec::with_capacity(the_plan.actions.len());
    for a in &the_plan.actions {
        journal.push(state.journal_begin(a.anchor(), action_name(a), now())?);
    }
    let report = apply(target, &the_plan, options.batch_size).await;
    let by_anchor: HashMap<String, &DesiredObject> = desired
        .iter()
        .map(|d| (d.anchor.to_immutable_id(), d))
        .collect();
    let mut failures = Vec::new();
    for r in &report.results {
        let action = &the_plan.actions[r.index];
        match &r.result {
            Ok(outcome) => remember(state, action, outcome, &by_anchor, &known)?,
            Err(e) => failures.push((action.anchor().to_string(), e.clone())),
        }
        if let Some(id) = journal.get(r.index) {
            state.journal_end(*id)?;
        }
    }
    if let Some(cookie) = &summary.cookie {
        state.set_setting("source_cookie", Some(cookie.as_bytes()))?;
    }
    record(
        state,
        if failures.is_empty() {
            "applied"
        } else {
            "applied-with-errors"
        },
        &the_plan,
        &failures,
    )?;
    Ok(CycleReport {
        plan: the_plan,
        source_entries: collector.entries.len(),
        attempted: report.results.len(),
        failures,
        recovered: recovered.len(),
    })
}

fn action_name(a: &Action) -> &'static str {
    match a {
        Action::Create { .. } => "create",
        Action::Update { .. } => "update",
        Action::Restore { .. } => "restore",
        Action::Disable { .. } => "disable",
        Action::Delete { .. } => "delete",
    }
}

fn remember(
    state: &mut SqliteStateStore,
    action: &Action,
    outcome: &OperationOutcome,
    desired: &HashMap<String, &DesiredObject>,
    known: &HashMap<String, ObjectState>,
) -> Result<(), StateError> {
    let anchor = action.anchor();
    let Some(anchor_value) = partnersync_core::Anchor::from_immutable_id(anchor).ok() else {
        return Ok(());
    };
    match (action, outcome) {
        (Action::Create { dn, attributes, .. }, OperationOutcome::Created { id }) => state
            .put_object(&ObjectState {
                anchor: anchor_value,
                target_id: id.clone(),
                dn: dn.clone(),
                exported: attributes.clone(),
                disabled_at: None,
            }),
        (
            Action::Update {
                dn, id, changes, ..
            },
            _,
        ) => {
            let mut exported = known
                .get(anchor)
                .map(|o| o.exported.clone())
                .unwrap_or_default();
            for c in changes {
                exported.insert(c.attribute.clone(), c.new.clone());
            }
            state.put_object(&ObjectState {
                anchor: anchor_value,
                target_id: id.clone(),
                dn: dn.clone(),
                exported,
                disabled_at: None,
            })
        }
        (Action::Restore { dn, id, .. }, _) => {
            let exported = desired
                .get(anchor)
                .map(|d| d.attributes.clone())
                .unwrap_or_default();
            state.put_object(&ObjectState {
                anchor: anchor_value,
                target_id: id.clone(),
                dn: dn.clone(),
                exported,
                disabled_at: None,
            })
        }
        (Action::Disable { id, .. }, _) => {
            let mut o = known.get(anchor).cloned().unwrap_or(ObjectState {
                anchor: anchor_value,
                target_id: id.clone(),
                dn: String::new(),
                exported: Default::default(),
                disabled_at: None,
            });
            o.disabled_at = Some(now());
            state.put_object(&o)
        }
        (Action::Delete { .. }, _) => state.remove_object(&anchor_value),
        _ => Ok(()),
    }
}
