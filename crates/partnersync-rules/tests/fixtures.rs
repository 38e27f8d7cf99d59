//! Runs the expression cases in `tests/fixtures/*.toml`: every documented example and
//! disputed case, per dialect. A failure lists every mismatching case at once.

use std::collections::HashMap;

use partnersync_rules::{attributes_from_json, AttributeType, Context, Dialect, Expression};

#[derive(serde::Deserialize)]
struct File {
    case: Vec<Case>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    expr: String,
    attributes: Option<String>,
    types: Option<String>,
    parameters: Option<String>,
    expect: Option<String>,
    error: Option<String>,
    parse_error: Option<String>,
    #[allow(dead_code)]
    note: Option<String>,
    #[serde(default)]
    skip: bool,
    /// Per-case dialect (documented.toml); the file's dialect otherwise.
    dialect: Option<String>,
    /// A documented behaviour partnersync does not match yet.
    #[serde(default)]
    known_failure: bool,
}

fn run_case(dialect: Dialect, case: &Case) -> Result<(), String> {
    let mut ctx = Context::default();
    if let Some(t) = &case.types {
        let raw: HashMap<String, String> =
            serde_json::from_str(t).map_err(|e| format!("bad types JSON: {e}"))?;
        for (k, v) in raw {
            ctx.types.insert(k, v.parse::<AttributeType>()?);
        }
    }
    if let Some(p) = &case.parameters {
        ctx.parameters =
            serde_json::from_str(p).map_err(|e| format!("bad parameters JSON: {e}"))?;
    }
    let attrs = match &case.attributes {
        Some(a) => attributes_from_json(
            &serde_json::from_str(a).map_err(|e| format!("bad attributes JSON: {e}"))?,
            &ctx.types,
        )?,
        None => partnersync_core::Attributes::new(),
    };
    let expr = match Expression::parse(&case.expr, dialect) {
        Ok(e) => e,
        Err(e) => {
            let shown = e.to_string();
            return match &case.parse_error {
                Some(want) if shown.contains(want.as_str()) => Ok(()),
                Some(want) => Err(format!(
                    "parse error should contain {want:?}, got:\n{shown}"
                )),
                None => Err(format!("unexpected parse error:\n{shown}")),
            };
        }
    };
    if let Some(want) = &case.parse_error {
        return Err(format!(
            "expected a parse error containing {want:?}, but it parsed"
        ));
    }
    match expr.evaluate(&attrs, &ctx) {
        Ok(outcome) => {
            let got = outcome.to_json(dialect);
            match (&case.expect, &case.error) {
                (Some(want), _) => {
                    let want: serde_json::Value =
                        serde_json::from_str(want).map_err(|e| format!("bad expect JSON: {e}"))?;
                    if got == want {
                        Ok(())
                    } else {
                        Err(format!("expected {want}, got {got}"))
                    }
                }
                (None, Some(want)) => {
                    Err(format!("expected an error containing {want:?}, got {got}"))
                }
                (None, None) => Err("case has no expectation".into()),
            }
        }
        Err(e) => match &case.error {
            Some(want) if e.message.contains(want.as_str()) => Ok(()),
            _ => Err(format!("unexpected run-time error: {}", e.message)),
        },
    }
}

fn run_file(dialect: Dialect, text: &str) {
    let file: File = toml::from_str(text).expect("fixture file is valid TOML");
    let mut failures = Vec::new();
    let mut ran = 0;
    for case in file.case.iter().filter(|c| !c.skip) {
        ran += 1;
        if let Err(e) = run_case(dialect, case) {
            failures.push(format!("{}\n    {}", case.expr, e.replace('\n', "\n    ")));
        }
    }
    assert!(ran > 50, "expected a substantial fixture, ran {ran}");
    assert!(
        failures.is_empty(),
        "{} of {ran} {dialect} cases failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// Every example from Microsoft's pages, both dialects (written by a review against the
/// documentation). Cases marked `known_failure` must still fail, so that fixing one forces
/// removing its marker.
#[test]
fn documented_cases() {
    let file: File = toml::from_str(include_str!("fixtures/documented.toml")).expect("valid TOML");
    let mut failures = Vec::new();
    let mut fixed = Vec::new();
    let mut ran = 0;
    for case in &file.case {
        let dialect: Dialect = case
            .dialect
            .as_deref()
            .unwrap_or("aadconnect")
            .parse()
            .expect("dialect");
        ran += 1;
        match (run_case(dialect, case), case.known_failure) {
            (Ok(()), true) => fixed.push(case.expr.clone()),
            (Err(e), false) => failures.push(format!(
                "[{dialect}] {}\n    {}",
                case.expr,
                e.replace('\n', "\n    ")
            )),
            _ => {}
        }
    }
    assert!(ran > 300, "ran {ran}");
    assert!(
        failures.is_empty(),
        "{} of {ran} documented cases failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    assert!(
        fixed.is_empty(),
        "these known failures pass now; remove their known_failure marker:\n{}",
        fixed.join("\n")
    );
}

#[test]
fn aadconnect_cases() {
    run_file(
        Dialect::AadConnect,
        include_str!("fixtures/aadconnect.toml"),
    );
}

#[test]
fn provisioning_cases() {
    run_file(
        Dialect::Provisioning,
        include_str!("fixtures/provisioning.toml"),
    );
}
