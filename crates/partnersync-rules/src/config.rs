//! The TOML form of a rule set: rules, flows, scoping clauses, parameters, attribute
//! types and rule tests.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;

use crate::{AttributeType, Dialect};

/// A rule set as written in TOML. Unknown top-level keys are ignored so the rule set can
/// live inside a larger partnersync configuration; unknown keys inside rules, flows and
/// tests are errors, because there a typo would silently change behaviour.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RuleSetConfig {
    /// The dialect of expressions that do not name one (default `aadconnect`).
    #[serde(default)]
    pub dialect: Dialect,
    /// Make a missing `userType` a per-object error instead of leaving Entra's default
    /// (`Member`).
    #[serde(default)]
    pub require_user_type: bool,
    /// Values of `%Name%` parameters.
    #[serde(default)]
    pub parameters: BTreeMap<String, String>,
    /// Declared source attribute types (`num`, `bool`, `dt`, `mvstring`, ...).
    #[serde(default)]
    pub attribute_types: BTreeMap<String, String>,
    /// The sync rules.
    #[serde(default, rename = "rule")]
    pub rules: Vec<RuleConfig>,
    /// The rule tests.
    #[serde(default, rename = "test")]
    pub tests: Vec<TestConfig>,
}

/// One sync rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// A unique name, shown in explanations and errors.
    pub name: String,
    /// Lower wins. Unique within a rule set.
    pub precedence: i64,
    /// What the rule is for.
    #[serde(default)]
    pub description: Option<String>,
    /// The dialect of this rule's expressions (defaults to the rule set's).
    #[serde(default)]
    pub dialect: Option<Dialect>,
    /// A disabled rule is loaded and checked but never applies.
    #[serde(default)]
    pub disabled: bool,
    /// Scoping filter: a list of groups (OR-ed), each a list of clauses (AND-ed).
    #[serde(default)]
    pub scope: Vec<Vec<ScopeClauseConfig>>,
    /// Attribute flows.
    #[serde(default, rename = "flow")]
    pub flows: Vec<FlowConfig>,
}

/// One scoping clause.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopeClauseConfig {
    /// The source attribute.
    pub attribute: String,
    /// The operator token (`EQUAL`, `NOTSTARTSWITH`, `REGEX MATCH`, ...).
    pub operator: String,
    /// The value (omit for `ISNULL`, `ISNOTNULL`, `IS TRUE`, ...).
    #[serde(default)]
    pub value: Option<String>,
}

/// One attribute flow: exactly one of `source` (Direct), `constant` or `expression`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowConfig {
    /// The target attribute (e.g. `userType`).
    pub target: String,
    /// Direct flow: copy this source attribute.
    #[serde(default)]
    pub source: Option<String>,
    /// Constant flow: this literal text.
    #[serde(default)]
    pub constant: Option<String>,
    /// Expression flow.
    #[serde(default)]
    pub expression: Option<toml::Spanned<String>>,
    /// Only set the attribute when the target object is created.
    #[serde(default)]
    pub apply_once: bool,
}

/// A rule test: an entry and what the rules must make of it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestConfig {
    /// A name for reports.
    pub name: String,
    /// The DN of the test entry (default `CN=test`).
    #[serde(default)]
    pub dn: Option<String>,
    /// Attributes: a string or a list of strings each.
    #[serde(default)]
    pub attributes: BTreeMap<String, StringOrList>,
    /// Expected target attributes.
    #[serde(default)]
    pub expect: BTreeMap<String, StringOrList>,
    /// Attributes the rules must clear.
    #[serde(default)]
    pub expect_cleared: Vec<String>,
    /// Attributes the rules must leave alone.
    #[serde(default)]
    pub expect_untouched: Vec<String>,
    /// Text an error must contain (the test expects the object to fail).
    #[serde(default)]
    pub expect_error: Option<String>,
    /// Whether any rule must (or must not) apply.
    #[serde(default)]
    pub expect_in_scope: Option<bool>,
}

/// A TOML value that is one string or a list of strings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum StringOrList {
    /// One value.
    One(String),
    /// Several values.
    Many(Vec<String>),
}

impl StringOrList {
    /// The values as a list.
    pub fn values(&self) -> Vec<String> {
        match self {
            StringOrList::One(s) => vec![s.clone()],
            StringOrList::Many(v) => v.clone(),
        }
    }
}

impl fmt::Display for StringOrList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StringOrList::One(s) => write!(f, "{s:?}"),
            StringOrList::Many(v) => write!(f, "{v:?}"),
        }
    }
}

/// A rule set that does not load: where, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The line in the configuration text (1-based), when known.
    pub line: Option<usize>,
    /// The rule, flow or test concerned, e.g. `rule "In from AD", flow userType`.
    pub context: String,
    /// What is wrong (may span several lines, e.g. an expression diagnostic).
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.context.is_empty()) {
            (Some(l), false) => write!(f, "line {l}: {}: {}", self.context, self.message),
            (Some(l), true) => write!(f, "line {l}: {}", self.message),
            (None, false) => write!(f, "{}: {}", self.context, self.message),
            (None, true) => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

pub(crate) fn parse_types(
    cfg: &RuleSetConfig,
) -> Result<Vec<(String, AttributeType)>, ConfigError> {
    cfg.attribute_types
        .iter()
        .map(|(k, v)| {
            v.parse::<AttributeType>()
                .map(|t| (k.clone(), t))
                .map_err(|e| ConfigError {
                    line: None,
                    context: format!("attribute_types.{k}"),
                    message: e,
                })
        })
        .collect()
}
