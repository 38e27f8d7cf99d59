use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;
use partnersync_rules::{RuleSet, TestReport};

#[derive(Subcommand)]
pub enum RulesCommand {
    /// Run every rule test in the configuration; exit 1 if any fails.
    Test {
        /// The configuration file (TOML) holding [[rule]] and [[test]] tables.
        #[arg(long)]
        config: PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show, for each entry, the rules in scope, every flow's value, which rule won each
    /// attribute, and the final object (like Connect's Preview).
    Explain {
        /// The configuration file (TOML).
        #[arg(long)]
        config: PathBuf,
        /// Entries to explain, from an LDIF file.
        #[arg(
            long,
            conflicts_with = "attributes",
            required_unless_present = "attributes"
        )]
        ldif: Option<PathBuf>,
        /// One entry's attributes as JSON: {"name": "value" | ["v1", "v2"]}.
        #[arg(long)]
        attributes: Option<String>,
        /// Print JSON (one object per entry).
        #[arg(long)]
        json: bool,
    },
}

pub fn run(cmd: RulesCommand) -> ExitCode {
    match cmd {
        RulesCommand::Test { config, json } => test(&config, json),
        RulesCommand::Explain {
            config,
            ldif,
            attributes,
            json,
        } => crate::rules::explain(&config, ldif.as_deref(), attributes.as_deref(), json),
    }
}

pub(crate) fn load(path: &Path) -> Result<RuleSet, ExitCode> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        eprintln!("error: cannot read {}: {e}", path.display());
        ExitCode::from(2)
    })?;
    RuleSet::from_toml_str(&text).map_err(|e| {
        eprintln!("error: {}: {e}", path.display());
        ExitCode::from(2)
    })
}

fn test(path: &Path, json: bool) -> ExitCode {
    let rules = match load(path) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let report: TestReport = rules.run_tests();
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        for o in &report.outcomes {
            if o.passed() {
                println!("pass  {}", o.name);
            } else {
                println!("FAIL  {}", o.name);
                for f in &o.failures {
                    println!("        {}:", f.what);
                    println!("          - expected: {}", f.expected);
                    println!("          + actual:   {}", f.actual);
                }
            }
        }
        if report.outcomes.is_empty() {
            println!("no rule tests in {} (add [[test]] tables)", path.display());
        }
        println!("{} passed, {} failed", report.passed(), report.failed());
    }
    if report.failed() > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

pub(crate) fn explain(
    config: &Path,
    ldif: Option<&Path>,
    attributes: Option<&str>,
    json: bool,
) -> ExitCode {
    let rules = match load(config) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let entries = match crate::rules::entries(ldif, attributes, &rules) {
        Ok(e) => e,
        Err(msg) => {
            eprintln!("error: {msg}");
            return ExitCode::from(2);
        }
    };
    let mut any_error = false;
    for entry in &entries {
        let ev = rules.evaluate_with(entry, partnersync_rules::EvaluationMode::Create, true);
        any_error |= !ev.errors.is_empty();
        if json {
            let out = serde_json::json!({ "dn": entry.dn, "evaluation": ev });
            println!("{out}");
            continue;
        }
        print_explanation(&rules, entry, &ev);
        println!();
    }
    if any_error {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    }
}

fn r_dialect(rules: &RuleSet, name: &str) -> partnersync_rules::Dialect {
    rules
        .rules()
        .iter()
        .find(|r| r.name == name)
        .map(|r| r.dialect)
        .unwrap_or_default()
}

pub(crate) fn entries(
    ldif: Option<&Path>,
    attributes: Option<&str>,
    rules: &RuleSet,
) -> Result<Vec<partnersync_core::Entry>, String> {
    if let Some(a) = attributes {
        let json: serde_json::Value =
            serde_json::from_str(a).map_err(|e| format!("--attributes is not valid JSON: {e}"))?;
        let attrs = partnersync_rules::attributes_from_json(&json, &rules.context().types)?;
        let dn = attrs
            .first_text("distinguishedName")
            .unwrap_or("(from --attributes)")
            .to_string();
        let anchor =
            partnersync_core::Anchor::from_bytes(vec![0u8; 16]).map_err(|e| e.to_string())?;
        let mut entry = partnersync_core::Entry::new(anchor, dn);
        entry.attributes = attrs;
        return Ok(vec![entry]);
    }
    match ldif {
        Some(path) => read_ldif(path),
        None => Err("give --ldif FILE or --attributes JSON".into()),
    }
}

fn read_ldif(path: &Path) -> Result<Vec<partnersync_core::Entry>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    partnersync_source::ldif::parse_entries(
        &bytes,
        path,
        &partnersync_source::AnchorPolicy::default(),
    )
    .map_err(|e| e.to_string())
}

/// Prints, for a person, how the rules treat one entry: rules in and out of scope, every
/// flow with the one that decided each attribute, the result and any error.
pub(crate) fn print_explanation(
    rules: &RuleSet,
    entry: &partnersync_core::Entry,
    ev: &partnersync_rules::Evaluation,
) {
    println!("{}", entry.dn);
    if ev.rules_in_scope.is_empty() {
        println!("  no rule in scope: partnersync leaves this object alone");
    } else {
        println!("  rules in scope: {}", ev.rules_in_scope.join(", "));
    }
    for r in rules.rules() {
        if !ev.rules_in_scope.contains(&r.name) {
            println!("  not in scope: {} (scope: {})", r.name, r.scope);
        }
    }
    if !ev.trace.is_empty() {
        println!("  flows (* = decided the attribute):");
    }
    for t in &ev.trace {
        let mark = if t.won { "*" } else { " " };
        let note = t
            .note
            .as_deref()
            .map(|n| format!("   ({n})"))
            .unwrap_or_default();
        println!(
            "  {mark} {:<20} {:>5}  {:<32} {:<10} -> {}{note}",
            t.target,
            t.precedence,
            t.rule,
            format!("{:?}", t.kind),
            t.result
        );
    }
    println!("  result:");
    for a in &ev.attributes {
        let v = match &a.values {
            None => "(cleared)".to_string(),
            Some(vs) if vs.len() == 1 => vs[0].to_json(r_dialect(rules, &a.rule)).to_string(),
            Some(vs) => serde_json::Value::Array(
                vs.iter()
                    .map(|x| x.to_json(r_dialect(rules, &a.rule)))
                    .collect(),
            )
            .to_string(),
        };
        let once = if a.apply_once { " (apply once)" } else { "" };
        println!("    {} = {v}   <- {}{once}", a.target, a.rule);
    }
    for e in &ev.errors {
        println!("  ERROR {e}");
    }
}
