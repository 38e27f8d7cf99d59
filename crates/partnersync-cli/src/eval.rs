use std::collections::HashMap;
use std::process::ExitCode;

use clap::Args;
use partnersync_rules::{attributes_from_json, AttributeType, Context, Dialect, Expression};

#[derive(Args)]
pub struct EvalArgs {
    /// Expression dialect: aadconnect (Entra Connect Sync) or provisioning (Entra
    /// provisioning / Cloud Sync).
    #[arg(long, default_value = "aadconnect")]
    dialect: Dialect,
    /// The object's attributes as JSON: {"name": "value" | ["v1", "v2"] | null}.
    #[arg(long)]
    attributes: Option<String>,
    /// Attribute types as JSON: {"name": "string|num|bool|ref|bin|dt|mvstring|mvref"}.
    #[arg(long)]
    types: Option<String>,
    /// Parameters for %Name% references as JSON: {"Domain.FQDN": "contoso.com"}.
    #[arg(long)]
    parameters: Option<String>,
    /// The expression (it may start with '-', e.g. `-5 + 2`).
    #[arg(allow_hyphen_values = true)]
    expression: String,
}

fn usage_error(msg: String) -> ExitCode {
    eprintln!("partnersync eval: {msg}");
    ExitCode::from(2)
}

pub fn run(args: EvalArgs) -> ExitCode {
    let mut ctx = Context::default();
    if let Some(t) = &args.types {
        let parsed: HashMap<String, String> = match serde_json::from_str(t) {
            Ok(v) => v,
            Err(e) => return usage_error(format!("--types is not a JSON object of strings: {e}")),
        };
        for (name, ty) in parsed {
            match ty.parse::<AttributeType>() {
                Ok(t) => {
                    ctx.types.insert(name, t);
                }
                Err(e) => return usage_error(format!("--types: attribute {name:?}: {e}")),
            }
        }
    }
    if let Some(p) = &args.parameters {
        match serde_json::from_str::<HashMap<String, String>>(p) {
            Ok(v) => ctx.parameters = v,
            Err(e) => {
                return usage_error(format!("--parameters is not a JSON object of strings: {e}"))
            }
        }
    }
    let attributes = match &args.attributes {
        None => partnersync_core::Attributes::new(),
        Some(a) => {
            let json: serde_json::Value = match serde_json::from_str(a) {
                Ok(v) => v,
                Err(e) => return usage_error(format!("--attributes is not valid JSON: {e}")),
            };
            match attributes_from_json(&json, &ctx.types) {
                Ok(a) => a,
                Err(e) => return usage_error(format!("--attributes: {e}")),
            }
        }
    };
    let expr = match Expression::parse(&args.expression, args.dialect) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match expr.evaluate(&attributes, &ctx) {
        Ok(outcome) => {
            println!("{}", outcome.to_json(args.dialect));
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("{}", serde_json::json!({ "error": e.message }));
            ExitCode::from(3)
        }
    }
}
