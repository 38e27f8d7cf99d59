//! The partnersync rule engine: both Microsoft sync expression dialects, scoping filters,
//! sync rules with precedence, UserType derivation and rule tests — pure, synchronous and
//! embeddable.
//!
//! Administrators can paste what they already have:
//! - [`Dialect::AadConnect`]: Entra Connect Sync's declarative provisioning expressions
//!   (`IIF(IsPresent([userPrincipalName]), …, Error("…"))`, `&`, `&&`, `NULL`,
//!   `AuthoritativeNull`, `IgnoreThisFlow`, `%Domain.FQDN%`, `Select($item, …)`);
//! - [`Dialect::Provisioning`]: the Entra provisioning / Cloud Sync mapping expressions
//!   (`Switch([extensionAttribute1], "Member", "Partner", "Guest")`, `Replace` with its seven
//!   arguments, empty arguments).
//!
//! Both parse into one syntax tree ([`Expr`]) run by one evaluator. Parsing checks every
//! function name and arity, so a rule set that loads cannot fail later for a typo; the
//! compiled form is immutable, `Send + Sync`, and evaluating it borrows from the entry
//! instead of copying, so one [`RuleSet`] serves many threads.
//!
//! ```
//! use partnersync_core::{Anchor, Entry, UserType};
//! use partnersync_rules::RuleSet;
//!
//! let rules = RuleSet::from_toml_str(r#"
//!     [[rule]]
//!     name = "In from AD - User UserType"
//!     precedence = 50
//!     [[rule.flow]]
//!     target = "userType"
//!     expression = '''IIF(IsPresent([userPrincipalName]),
//!         IIF(CBool(InStr(LCase([userPrincipalName]), "@partners.contoso.com") = 0), "Member", "Guest"),
//!         Error("UserPrincipalName is not present to determine UserType"))'''
//! "#).unwrap();
//!
//! let mut entry = Entry::new(Anchor::from_bytes(vec![1; 16]).unwrap(), "CN=Ana,DC=contoso,DC=com");
//! entry.attributes.insert_text("userPrincipalName", "ana@partners.contoso.com");
//! assert_eq!(rules.user_type(&entry).unwrap(), Some(UserType::Guest));
//! ```
#![deny(missing_docs)]

mod ast;
mod builtins;
mod cert;
mod compile;
mod config;
pub(crate) mod datetime;
mod eval;
mod expression;
pub mod functions;
mod parse;
mod prepared;
mod print;
mod rules;
mod scope;
mod testing;
pub(crate) mod text;
mod value;

use std::fmt;
use std::str::FromStr;

pub use ast::{AttrRef, BinOp, Call, EnumWord, Expr, Position, Special};
pub use config::{
    ConfigError, FlowConfig, RuleConfig, RuleSetConfig, ScopeClauseConfig, TestConfig,
};
pub use eval::{AttributeLookup, Context, EvalError, UniquenessCheck};
pub use expression::Expression;
pub use parse::{parse, ParseError, MAX_DEPTH, MAX_EXPRESSION_CHARS};
pub use prepared::PreparedEntry;
pub use print::print;
pub use rules::{
    AttributeResult, Evaluation, EvaluationMode, FlowKind, FlowSource, FlowTrace, ObjectError,
    Rule, RuleSet,
};
pub use scope::{ScopeClause, ScopeFilter, ScopeOperator};
pub use testing::{TestFailure, TestOutcome, TestReport};
pub use value::{Outcome, OwnedValue, Value};

/// Which Microsoft expression language a text is written in.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
pub enum Dialect {
    /// Entra Connect Sync declarative provisioning expressions.
    #[default]
    #[serde(rename = "aadconnect")]
    AadConnect,
    /// Entra provisioning service / Cloud Sync attribute-mapping expressions.
    #[serde(rename = "provisioning")]
    Provisioning,
}

impl Dialect {
    /// The name used in configuration and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::AadConnect => "aadconnect",
            Dialect::Provisioning => "provisioning",
        }
    }

    /// The other dialect.
    pub fn other(self) -> Dialect {
        match self {
            Dialect::AadConnect => Dialect::Provisioning,
            Dialect::Provisioning => Dialect::AadConnect,
        }
    }
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Dialect {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "aadconnect" => Ok(Dialect::AadConnect),
            "provisioning" => Ok(Dialect::Provisioning),
            other => Err(format!(
                "unknown dialect {other:?}: use aadconnect or provisioning"
            )),
        }
    }
}

/// The type of a source attribute, in Connect's terms. Undeclared attributes are text
/// (binary when their bytes are not UTF-8), multi-valued when they have several values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttributeType {
    /// Single-valued text.
    String,
    /// A 64-bit integer.
    Num,
    /// A Boolean (`TRUE`/`FALSE`, `1`/`0`).
    Bool,
    /// A DN referencing another object.
    Ref,
    /// Bytes.
    Bin,
    /// A date/time.
    Dt,
    /// Multi-valued text: always a list, even with one value.
    #[serde(rename = "mvstring")]
    MvString,
    /// Multi-valued references.
    #[serde(rename = "mvref")]
    MvRef,
    /// Multi-valued bytes.
    #[serde(rename = "mvbin")]
    MvBin,
}

impl AttributeType {
    /// The name used in configuration and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            AttributeType::String => "string",
            AttributeType::Num => "num",
            AttributeType::Bool => "bool",
            AttributeType::Ref => "ref",
            AttributeType::Bin => "bin",
            AttributeType::Dt => "dt",
            AttributeType::MvString => "mvstring",
            AttributeType::MvRef => "mvref",
            AttributeType::MvBin => "mvbin",
        }
    }

    /// Whether values of this type are always a list.
    pub fn is_multi(self) -> bool {
        matches!(
            self,
            AttributeType::MvString | AttributeType::MvRef | AttributeType::MvBin
        )
    }
}

impl FromStr for AttributeType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "string" | "str" => AttributeType::String,
            "num" => AttributeType::Num,
            "bool" => AttributeType::Bool,
            "ref" => AttributeType::Ref,
            "bin" => AttributeType::Bin,
            "dt" => AttributeType::Dt,
            "mvstring" | "mvstr" => AttributeType::MvString,
            "mvref" => AttributeType::MvRef,
            "mvbin" => AttributeType::MvBin,
            other => {
                return Err(format!(
                    "unknown attribute type {other:?}: use string, num, bool, ref, bin, dt, mvstring, mvref or mvbin"
                ))
            }
        })
    }
}

/// Builds attributes from JSON as `partnersync eval --attributes` takes them: an object
/// mapping each name to a string, an array of strings, or null (absent). Attributes
/// declared `bin`/`mvbin` in `types` are base64-decoded.
pub fn attributes_from_json(
    json: &serde_json::Value,
    types: &std::collections::HashMap<String, AttributeType>,
) -> Result<partnersync_core::Attributes, String> {
    use base64::Engine as _;
    let obj = json.as_object().ok_or_else(|| {
        "attributes must be a JSON object, e.g. {\"userPrincipalName\": \"ana@partners.contoso.com\"}".to_string()
    })?;
    let mut attrs = partnersync_core::Attributes::new();
    for (name, value) in obj {
        let binary = types.iter().any(|(k, t)| {
            k.eq_ignore_ascii_case(name) && matches!(t, AttributeType::Bin | AttributeType::MvBin)
        });
        let one =
            |v: &serde_json::Value| -> Result<Option<partnersync_core::AttributeValue>, String> {
                let text = match v {
                    serde_json::Value::Null => return Ok(None),
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Number(n) => n.to_string(),
                    serde_json::Value::Bool(b) => {
                        if *b {
                            "True".into()
                        } else {
                            "False".into()
                        }
                    }
                    _ => {
                        return Err(format!(
                            "attribute {name:?}: values must be strings (or arrays of strings)"
                        ))
                    }
                };
                if binary {
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(text.trim())
                        .map_err(|_| {
                            format!("attribute {name:?} is declared bin: give its value in base64")
                        })?;
                    return Ok(Some(partnersync_core::AttributeValue::Binary(bytes)));
                }
                Ok(Some(partnersync_core::AttributeValue::Text(text)))
            };
        let values: Vec<partnersync_core::AttributeValue> = match value {
            serde_json::Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    if item.is_array() || item.is_object() {
                        return Err(format!("attribute {name:?}: array items must be strings"));
                    }
                    out.extend(one(item)?);
                }
                out
            }
            other => one(other)?.into_iter().collect(),
        };
        attrs.set(name.as_str(), values);
    }
    Ok(attrs)
}
