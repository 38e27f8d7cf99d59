use partnersync_core::Anchor;
use partnersync_target::{Operation, OperationOutcome, TargetDirectory, TargetError};

use crate::plan::attributes_of;
use crate::{Action, SyncPlan};

/// What happened to one planned action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionResult {
    /// The action's index in the plan.
    pub index: usize,
    /// The outcome or the categorised error.
    pub result: Result<OperationOutcome, TargetError>,
}

/// What an apply did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// One result per attempted action.
    pub results: Vec<ActionResult>,
}

impl ApplyReport {
    /// How many actions succeeded.
    pub fn succeeded(&self) -> usize {
        self.results.iter().filter(|r| r.result.is_ok()).count()
    }

    /// How many failed.
    pub fn failed(&self) -> usize {
        self.results.len() - self.succeeded()
    }
}

fn parse_anchor(anchor: &str) -> Result<Anchor, TargetError> {
    Anchor::from_immutable_id(anchor).map_err(|e| {
        TargetError::new(
            partnersync_target::ErrorCategory::Validation,
            "BadAnchor",
            e.to_string(),
        )
    })
}

/// The target operation that carries out `action`.
pub(crate) fn operation(action: &Action) -> Result<Operation, TargetError> {
    Ok(match action {
        Action::Create {
            anchor,
            mode,
            attributes,
            ..
        } => Operation::Create {
            anchor: parse_anchor(anchor)?,
            mode: *mode,
            attributes: attributes.clone(),
        },
        Action::Update { id, changes, .. } => Operation::Update {
            id: id.clone(),
            changes: attributes_of(changes),
        },
        Action::Adopt {
            id,
            changes,
            anchor,
            ..
        } => Operation::Adopt {
            id: id.clone(),
            anchor: parse_anchor(anchor)?,
            changes: attributes_of(changes),
        },
        Action::Restore { id, .. } => Operation::Restore { id: id.clone() },
        Action::Disable { id, .. } => Operation::Disable { id: id.clone() },
        Action::Delete { id, .. } => Operation::Delete { id: id.clone() },
    })
}

/// Applies `plan` through `target` in batches of `batch_size`, isolating per-object
/// errors: one failing action never stops the others. Restores run before the updates of
/// the same object because the plan orders them first.
pub async fn apply(
    target: &dyn TargetDirectory,
    plan: &SyncPlan,
    batch_size: usize,
) -> ApplyReport {
    let mut report = ApplyReport::default();
    let batch_size = batch_size.max(1);
    let indexed: Vec<(usize, &Action)> = plan.actions.iter().enumerate().collect();
    for chunk in indexed.chunks(batch_size) {
        let mut ops = Vec::with_capacity(chunk.len());
        let mut idx = Vec::with_capacity(chunk.len());
        for (i, action) in chunk {
            match operation(action) {
                Ok(op) => {
                    ops.push(op);
                    idx.push(*i);
                }
                Err(e) => report.results.push(ActionResult {
                    index: *i,
                    result: Err(e),
                }),
            }
        }
        let results = target.apply(&ops).await;
        for (i, result) in idx.into_iter().zip(results) {
            report.results.push(ActionResult { index: i, result });
        }
    }
    report.results.sort_by_key(|r| r.index);
    report
}
