//! Rule tests: entries kept beside the rules with the outcome the rules must produce.

use std::fmt;

use partnersync_core::{Anchor, Entry};

use crate::config::TestConfig;
use crate::rules::{Evaluation, RuleSet};
use crate::value::Value;
use crate::Dialect;

/// The result of one rule test.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TestOutcome {
    /// The test's name.
    pub name: String,
    /// Every mismatch; empty when the test passed.
    pub failures: Vec<TestFailure>,
}

impl TestOutcome {
    /// Whether the test passed.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// One difference between what a test expected and what the rules did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TestFailure {
    /// What was checked (`userType`, `error`, `in scope`).
    pub what: String,
    /// What the test expected.
    pub expected: String,
    /// What the rules produced, and which rule decided it.
    pub actual: String,
}

impl fmt::Display for TestFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: expected {}, got {}",
            self.what, self.expected, self.actual
        )
    }
}

/// The results of all rule tests.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct TestReport {
    /// One outcome per test, in file order.
    pub outcomes: Vec<TestOutcome>,
}

impl TestReport {
    /// How many tests passed.
    pub fn passed(&self) -> usize {
        self.outcomes.iter().filter(|o| o.passed()).count()
    }

    /// How many tests failed.
    pub fn failed(&self) -> usize {
        self.outcomes.len() - self.passed()
    }
}

fn describe(values: &Option<Vec<Value<'static>>>) -> String {
    match values {
        None => "cleared".into(),
        Some(v) if v.len() == 1 => v[0].to_json(Dialect::AadConnect).to_string(),
        Some(v) => {
            serde_json::Value::Array(v.iter().map(|x| x.to_json(Dialect::AadConnect)).collect())
                .to_string()
        }
    }
}

fn texts(values: &[Value<'static>]) -> Vec<String> {
    values
        .iter()
        .map(|v| {
            v.to_text(Dialect::AadConnect)
                .map(|t| t.into_owned())
                .unwrap_or_default()
        })
        .collect()
}

impl RuleSet {
    /// Builds the entry a test describes.
    pub fn test_entry(test: &TestConfig) -> Entry {
        let anchor = Anchor::from_bytes(test.name.as_bytes().to_vec()).unwrap_or_else(|_| {
            Anchor::from_bytes(vec![0]).unwrap_or_else(|_| unreachable_anchor())
        });
        let mut entry = Entry::new(anchor, test.dn.clone().unwrap_or_else(|| "CN=test".into()));
        for (name, values) in &test.attributes {
            for v in values.values() {
                entry.attributes.insert(name.as_str(), v);
            }
        }
        entry
    }

    /// Runs one test.
    pub fn run_test(&self, test: &TestConfig) -> (TestOutcome, Evaluation) {
        let entry = RuleSet::test_entry(test);
        let ev = self.evaluate_with(&entry, crate::EvaluationMode::Create, true);
        let mut failures = Vec::new();
        let errors: Vec<String> = ev.errors.iter().map(|e| e.to_string()).collect();
        match &test.expect_error {
            Some(needle) => {
                if !ev
                    .errors
                    .iter()
                    .any(|e| e.message.contains(needle.as_str()))
                {
                    failures.push(TestFailure {
                        what: "error".into(),
                        expected: format!("an error containing {needle:?}"),
                        actual: if errors.is_empty() {
                            "no error".into()
                        } else {
                            errors.join("; ")
                        },
                    });
                }
            }
            None => {
                if !errors.is_empty() {
                    failures.push(TestFailure {
                        what: "error".into(),
                        expected: "no error".into(),
                        actual: errors.join("; "),
                    });
                }
            }
        }
        if let Some(want) = test.expect_in_scope {
            if ev.in_scope != want {
                failures.push(TestFailure {
                    what: "in scope".into(),
                    expected: want.to_string(),
                    actual: if ev.in_scope {
                        format!("true (rules: {})", ev.rules_in_scope.join(", "))
                    } else {
                        "false (no rule applies)".into()
                    },
                });
            }
        }
        for (attr, want) in &test.expect {
            let want_values = want.values();
            let got = ev.attribute(attr);
            let ok = matches!(got, Some(a) if a.values.as_deref().map(texts) == Some(want_values.clone()));
            if !ok {
                failures.push(TestFailure {
                    what: attr.clone(),
                    expected: want.to_string(),
                    actual: match got {
                        Some(a) => format!("{} (rule \"{}\")", describe(&a.values), a.rule),
                        None if ev.errors.iter().any(|e| {
                            e.attribute
                                .as_deref()
                                .is_some_and(|x| x.eq_ignore_ascii_case(attr))
                        }) =>
                        {
                            "an error (see above)".into()
                        }
                        None => "nothing (no rule in scope sets it)".into(),
                    },
                });
            }
        }
        for attr in &test.expect_cleared {
            let got = ev.attribute(attr);
            if !matches!(got, Some(a) if a.values.is_none()) {
                failures.push(TestFailure {
                    what: attr.clone(),
                    expected: "cleared".into(),
                    actual: match got {
                        Some(a) => format!("{} (rule \"{}\")", describe(&a.values), a.rule),
                        None => "left alone".into(),
                    },
                });
            }
        }
        for attr in &test.expect_untouched {
            if let Some(a) = ev.attribute(attr) {
                failures.push(TestFailure {
                    what: attr.clone(),
                    expected: "left alone".into(),
                    actual: format!("{} (rule \"{}\")", describe(&a.values), a.rule),
                });
            }
        }
        (
            TestOutcome {
                name: test.name.clone(),
                failures,
            },
            ev,
        )
    }

    /// Runs every test of the rule set.
    pub fn run_tests(&self) -> TestReport {
        TestReport {
            outcomes: self.tests().iter().map(|t| self.run_test(t).0).collect(),
        }
    }
}

fn unreachable_anchor() -> Anchor {
    // Anchor::from_bytes only fails on empty input; a one-byte anchor is never empty.
    match Anchor::from_bytes(vec![0x74]) {
        Ok(a) => a,
        Err(_) => unreachable!("a non-empty anchor is always valid"),
    }
}
