use std::collections::BTreeSet;

use partnersync_core::{Anchor, Entry};
use partnersync_rules::{Dialect, Evaluation};
use partnersync_target::Attributes;

/// What the rules want one source object to be in the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredObject {
    /// The source anchor.
    pub anchor: Anchor,
    /// The source DN (for messages).
    pub dn: String,
    /// Whether any rule applies; objects out of scope are not wanted in the target.
    pub in_scope: bool,
    /// Target attributes the rules decide; an empty list clears one. Attributes the rules
    /// leave alone are absent.
    pub attributes: Attributes,
    /// Attributes set only when the object is created.
    pub apply_once: BTreeSet<String>,
    /// Per-object errors; an object with errors is neither created nor changed.
    pub errors: Vec<String>,
}

impl DesiredObject {
    /// Builds the desired object from a rule evaluation. Values are written as the
    /// target spells them: text as is, Booleans `true`/`false`, numbers in decimal, dates
    /// in ISO 8601.
    pub fn from_evaluation(entry: &Entry, ev: &Evaluation) -> Self {
        let mut attributes = Attributes::new();
        let mut apply_once = BTreeSet::new();
        for a in &ev.attributes {
            let values = match &a.values {
                None => Vec::new(),
                Some(vs) => vs
                    .iter()
                    .filter_map(|v| match v {
                        partnersync_rules::Value::Bool(b) => Some(b.to_string()),
                        other => other.to_text(Dialect::AadConnect).map(|t| t.into_owned()),
                    })
                    .collect(),
            };
            if a.apply_once {
                apply_once.insert(a.target.clone());
            }
            attributes.insert(a.target.clone(), values);
        }
        DesiredObject {
            anchor: entry.anchor.clone(),
            dn: entry.dn.clone(),
            in_scope: ev.in_scope,
            attributes,
            apply_once,
            errors: ev.errors.iter().map(|e| e.to_string()).collect(),
        }
    }

    /// [`from_evaluation`](Self::from_evaluation), moving the evaluation's texts instead of
    /// copying them (a full cycle builds one per source entry). The same values: text as
    /// is, Booleans `true`/`false`, anything else as `Value::to_text` spells it.
    pub(crate) fn from_owned_evaluation(anchor: Anchor, dn: String, ev: Evaluation) -> Self {
        let mut attributes = Attributes::new();
        let mut apply_once = BTreeSet::new();
        for a in ev.attributes {
            let values = match a.values {
                None => Vec::new(),
                Some(vs) => vs.into_iter().filter_map(target_text).collect(),
            };
            if a.apply_once {
                apply_once.insert(a.target.clone());
            }
            attributes.insert(a.target, values);
        }
        DesiredObject {
            anchor,
            dn,
            in_scope: ev.in_scope,
            attributes,
            apply_once,
            errors: ev.errors.iter().map(|e| e.to_string()).collect(),
        }
    }
}

/// A value as the target spells it.
fn target_text(v: partnersync_rules::OwnedValue) -> Option<String> {
    match v {
        partnersync_rules::Value::Bool(b) => Some(b.to_string()),
        partnersync_rules::Value::Str(s) | partnersync_rules::Value::Ref(s) => Some(s.into_owned()),
        other => other.to_text(Dialect::AadConnect).map(|t| t.into_owned()),
    }
}
