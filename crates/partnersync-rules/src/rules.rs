//! Sync rules with precedence, merged into the desired target object.

use std::fmt;

use partnersync_core::UserType;

use crate::config::{parse_types, ConfigError, RuleSetConfig, TestConfig};
use crate::eval::{AttributeLookup, Context};
use crate::expression::Expression;
use crate::scope::{ScopeClause, ScopeFilter, ScopeOperator};
use crate::value::{Outcome, OwnedValue, Value};
use crate::Dialect;

/// A compiled rule set: rules sorted by precedence, every expression parsed and checked,
/// ready to evaluate entries from any number of threads.
#[derive(Debug)]
pub struct RuleSet {
    rules: Vec<Rule>,
    /// Target attributes in first-seen order, with the flows for each in precedence order
    /// as (rule index, flow index).
    targets: Vec<(String, Vec<(usize, usize)>)>,
    /// Which of `targets` is `userType`, found once for [`RuleSet::user_type`].
    user_type_target: Option<usize>,
    context: Context,
    tests: Vec<TestConfig>,
    require_user_type: bool,
    /// Every source attribute the rules read, found once (see `prepare`).
    read_attributes: Vec<String>,
}

/// One sync rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Its name.
    pub name: String,
    /// Lower wins.
    pub precedence: i64,
    /// Its dialect.
    pub dialect: Dialect,
    /// Whether it is disabled.
    pub disabled: bool,
    /// Its scoping filter.
    pub scope: ScopeFilter,
    /// Its attribute flows.
    pub flows: Vec<Flow>,
}

/// One attribute flow of a rule.
#[derive(Debug, Clone)]
pub struct Flow {
    /// The target attribute.
    pub target: String,
    /// Direct, Constant or Expression, and what it reads.
    pub source: FlowSource,
    /// Direct, Constant or Expression.
    pub kind: FlowKind,
    /// Only applied when the target object is created.
    pub apply_once: bool,
    expression: Expression,
}

/// The three flow types admins know from Connect's Synchronization Rules Editor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FlowKind {
    /// Copy a source attribute.
    Direct,
    /// A literal.
    Constant,
    /// An expression.
    Expression,
}

/// What a flow reads: the source attribute, the constant, or the expression text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowSource(pub String);

/// Whether the target object exists yet (apply-once flows run only on create).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EvaluationMode {
    /// The object is being created: every flow runs.
    #[default]
    Create,
    /// The object exists: apply-once flows are skipped.
    Update,
}

/// The winning value of one target attribute.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AttributeResult {
    /// The target attribute.
    pub target: String,
    /// The values to set; `None` clears the attribute.
    #[serde(serialize_with = "ser_values")]
    pub values: Option<Vec<OwnedValue>>,
    /// The rule whose flow decided it.
    pub rule: String,
    /// Whether the deciding flow is apply-once.
    pub apply_once: bool,
}

fn ser_values<S: serde::Serializer>(v: &Option<Vec<OwnedValue>>, s: S) -> Result<S::Ok, S::Error> {
    use serde::Serialize;
    match v {
        None => serde_json::Value::Null.serialize(s),
        Some(vs) => vs
            .iter()
            .map(|x| x.to_json(Dialect::AadConnect))
            .collect::<Vec<_>>()
            .serialize(s),
    }
}

/// A per-object error: which rule and attribute, and the message.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ObjectError {
    /// The rule concerned.
    pub rule: String,
    /// The target attribute concerned, if any.
    pub attribute: Option<String>,
    /// The message (for `Error("...")`, exactly the text given).
    pub message: String,
    /// True when the rule raised it with `Error(...)`.
    pub raised: bool,
}

impl fmt::Display for ObjectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.attribute {
            Some(a) => write!(f, "rule \"{}\", attribute {a}: {}", self.rule, self.message),
            None => write!(f, "rule \"{}\": {}", self.rule, self.message),
        }
    }
}

impl std::error::Error for ObjectError {}

/// What one flow did, for `rules explain`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FlowTrace {
    /// The rule.
    pub rule: String,
    /// The rule's precedence.
    pub precedence: i64,
    /// The target attribute.
    pub target: String,
    /// The flow type.
    pub kind: FlowKind,
    /// What the flow reads.
    pub source: String,
    /// The flow's value as JSON: a value, `{"sentinel": ...}` or `{"error": ...}`; `null`
    /// when the flow was skipped.
    pub result: serde_json::Value,
    /// Why the flow did not count, when it did not (lost to higher precedence, apply once).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Whether this flow decided the attribute.
    pub won: bool,
}

/// What the rules make of one entry.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Evaluation {
    /// Whether any rule applies.
    pub in_scope: bool,
    /// The names of the rules in scope, by precedence.
    pub rules_in_scope: Vec<String>,
    /// The target attributes the rules decide (set or cleared), in first-flow order.
    /// Attributes whose flows all said `IgnoreThisFlow` are absent: leave them alone.
    pub attributes: Vec<AttributeResult>,
    /// Per-object errors. An object with errors must not be exported.
    pub errors: Vec<ObjectError>,
    /// Every flow's result (only when asked for).
    pub trace: Vec<FlowTrace>,
}

impl Evaluation {
    /// The result for `target` (case-insensitive).
    pub fn attribute(&self, target: &str) -> Option<&AttributeResult> {
        self.attributes
            .iter()
            .find(|a| a.target.eq_ignore_ascii_case(target))
    }

    /// The derived UserType, when the rules set one.
    pub fn user_type(&self) -> Option<UserType> {
        let a = self.attribute("userType")?;
        match a.values.as_deref() {
            Some([Value::Str(s)]) => s.parse().ok(),
            _ => None,
        }
    }
}

impl RuleSet {
    /// Loads a rule set from TOML text.
    pub fn from_toml_str(text: &str) -> Result<RuleSet, ConfigError> {
        let cfg: RuleSetConfig = toml::from_str(text).map_err(|e| ConfigError {
            line: e.span().map(|s| line_of(text, s.start)),
            context: String::new(),
            message: e.message().trim().to_string(),
        })?;
        RuleSet::from_config(&cfg, Some(text))
    }

    /// Compiles a deserialised configuration. `text` (the TOML it came from) lets errors
    /// name lines.
    pub fn from_config(cfg: &RuleSetConfig, text: Option<&str>) -> Result<RuleSet, ConfigError> {
        let context = Context {
            parameters: cfg
                .parameters
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            types: parse_types(cfg)?.into_iter().collect(),
            uniqueness: None,
        };
        let mut rules = Vec::with_capacity(cfg.rules.len());
        for rc in &cfg.rules {
            let ctx = |what: &str| format!("rule \"{}\"{what}", rc.name);
            let err = |line: Option<usize>, context: String, message: String| ConfigError {
                line,
                context,
                message,
            };
            if rc.name.trim().is_empty() {
                return Err(err(None, String::new(), "a rule needs a name".into()));
            }
            if let Some(other) = rules.iter().find(|r: &&Rule| r.precedence == rc.precedence) {
                return Err(err(None, ctx(""), format!(
                    "precedence {} is already used by rule \"{}\"; each rule needs its own precedence (lower wins)",
                    rc.precedence, other.name
                )));
            }
            if rules.iter().any(|r: &Rule| r.name == rc.name) {
                return Err(err(None, ctx(""), "two rules have this name".into()));
            }
            let dialect = rc.dialect.unwrap_or(cfg.dialect);
            let mut scope = ScopeFilter::default();
            for (g, group) in rc.scope.iter().enumerate() {
                let mut clauses = Vec::with_capacity(group.len());
                for c in group {
                    let op: ScopeOperator = c
                        .operator
                        .parse()
                        .map_err(|e| err(None, ctx(&format!(", scope group {}", g + 1)), e))?;
                    let value = c.value.clone().unwrap_or_default();
                    let clause = ScopeClause::new(&c.attribute, op, &value)
                        .map_err(|e| err(None, ctx(&format!(", scope group {}", g + 1)), e))?;
                    clauses.push(clause);
                }
                scope.groups.push(clauses);
            }
            let mut flows = Vec::with_capacity(rc.flows.len());
            for fc in &rc.flows {
                let fctx = ctx(&format!(", flow {}", fc.target));
                let kinds = [
                    fc.source.is_some(),
                    fc.constant.is_some(),
                    fc.expression.is_some(),
                ];
                if kinds.iter().filter(|k| **k).count() != 1 {
                    return Err(err(
                        None,
                        fctx,
                        "a flow needs exactly one of source (Direct), constant or expression"
                            .into(),
                    ));
                }
                let (kind, source, expression) = if let Some(attr) = &fc.source {
                    let text = format!("[{}]", attr.trim_matches(['[', ']']));
                    let e = Expression::parse(&text, dialect)
                        .map_err(|e| err(None, fctx.clone(), e.message))?;
                    (FlowKind::Direct, attr.clone(), e)
                } else if let Some(c) = &fc.constant {
                    let e = Expression::parse(
                        &crate::print::print(&crate::ast::Expr::Str(c.as_str().into()), dialect),
                        dialect,
                    )
                    .map_err(|e| err(None, fctx.clone(), e.message))?;
                    (FlowKind::Constant, c.clone(), e)
                } else {
                    let spanned = fc
                        .expression
                        .as_ref()
                        .ok_or_else(|| err(None, fctx.clone(), "missing expression".into()))?;
                    let src = spanned.get_ref();
                    let line = text.map(|t| line_of(t, spanned.span().start));
                    let e = Expression::parse(src, dialect)
                        .map_err(|pe| err(line, fctx.clone(), format!("{pe}")))?;
                    (FlowKind::Expression, src.clone(), e)
                };
                flows.push(Flow {
                    target: fc.target.clone(),
                    source: FlowSource(source),
                    kind,
                    apply_once: fc.apply_once,
                    expression,
                });
            }
            rules.push(Rule {
                name: rc.name.clone(),
                precedence: rc.precedence,
                dialect,
                disabled: rc.disabled,
                scope,
                flows,
            });
        }
        rules.sort_by_key(|r| r.precedence);
        let mut targets: Vec<(String, Vec<(usize, usize)>)> = Vec::new();
        for (ri, rule) in rules.iter().enumerate() {
            for (fi, flow) in rule.flows.iter().enumerate() {
                match targets
                    .iter_mut()
                    .find(|(t, _)| t.eq_ignore_ascii_case(&flow.target))
                {
                    Some((_, list)) => list.push((ri, fi)),
                    None => targets.push((flow.target.clone(), vec![(ri, fi)])),
                }
            }
        }
        let user_type_target = targets
            .iter()
            .position(|(t, _)| t.eq_ignore_ascii_case("userType"));
        let mut set = RuleSet {
            rules,
            targets,
            user_type_target,
            context,
            tests: cfg.tests.clone(),
            require_user_type: cfg.require_user_type,
            read_attributes: Vec::new(),
        };
        set.read_attributes = set.source_attributes();
        Ok(set)
    }

    /// The source attributes the rules read, computed when the rule set was built.
    pub(crate) fn read_attributes(&self) -> &[String] {
        &self.read_attributes
    }

    /// The rules, by precedence.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The rule tests that came with the configuration.
    pub fn tests(&self) -> &[TestConfig] {
        &self.tests
    }

    /// The evaluation context (parameters and declared types). Set a uniqueness check for
    /// `SelectUniqueValue` here.
    pub fn context_mut(&mut self) -> &mut Context {
        &mut self.context
    }

    /// The evaluation context.
    pub fn context(&self) -> &Context {
        &self.context
    }

    /// The source attributes any rule reads (scoping and flows), for asking a directory
    /// for only what is needed.
    pub fn source_attributes(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut add = |n: &str| {
            if !out.iter().any(|o| o.eq_ignore_ascii_case(n)) {
                out.push(n.to_string());
            }
        };
        for rule in &self.rules {
            for g in &rule.scope.groups {
                for c in g {
                    add(&c.attribute);
                    if matches!(
                        c.operator,
                        ScopeOperator::IsMemberOf | ScopeOperator::IsNotMemberOf
                    ) {
                        add("memberOf");
                    }
                }
            }
            for f in &rule.flows {
                for a in f.expression.attributes() {
                    add(a);
                }
            }
        }
        out
    }

    /// Evaluates every rule for `entry` as for a new object.
    pub fn evaluate(&self, entry: &dyn AttributeLookup) -> Evaluation {
        self.evaluate_with(entry, EvaluationMode::Create, false)
    }

    /// Evaluates every rule for `entry`; `trace` records each flow's result.
    pub fn evaluate_with(
        &self,
        entry: &dyn AttributeLookup,
        mode: EvaluationMode,
        trace: bool,
    ) -> Evaluation {
        let mut ev = Evaluation::default();
        let in_scope = self.scope(entry, &mut ev.errors);
        for (i, rule) in self.rules.iter().enumerate() {
            if in_scope[i] {
                ev.rules_in_scope.push(rule.name.clone());
            }
        }
        ev.in_scope = !ev.rules_in_scope.is_empty();
        for (target, flows) in &self.targets {
            let mut null_from: Option<(usize, usize)> = None;
            let mut decided = false;
            for &(ri, fi) in flows {
                if !in_scope[ri] {
                    continue;
                }
                let rule = &self.rules[ri];
                let flow = &rule.flows[fi];
                // The result is shown only in a trace: built only then.
                let record = |result: &dyn Fn() -> serde_json::Value,
                              note: Option<&str>,
                              won: bool,
                              ev: &mut Evaluation| {
                    if trace {
                        ev.trace.push(FlowTrace {
                            rule: rule.name.clone(),
                            precedence: rule.precedence,
                            target: flow.target.clone(),
                            kind: flow.kind,
                            source: flow.source.0.clone(),
                            result: result(),
                            note: note.map(str::to_string),
                            won,
                        });
                    }
                };
                if flow.apply_once && mode == EvaluationMode::Update {
                    record(
                        &|| serde_json::Value::Null,
                        Some("skipped: apply once, and the object exists"),
                        false,
                        &mut ev,
                    );
                    continue;
                }
                if decided {
                    if trace {
                        let shown = match flow.expression.evaluate(entry, &self.context) {
                            Ok(o) => o.to_json(rule.dialect),
                            Err(e) => serde_json::json!({ "error": e.message }),
                        };
                        record(
                            &|| shown.clone(),
                            Some("not used: a higher-precedence rule decided"),
                            false,
                            &mut ev,
                        );
                    }
                    continue;
                }
                match flow.expression.evaluate(entry, &self.context) {
                    Ok(Outcome::Value(Value::Null)) => {
                        record(&|| serde_json::Value::Null, None, false, &mut ev);
                        null_from.get_or_insert((ri, fi));
                    }
                    Ok(Outcome::Value(v)) => {
                        record(&|| v.to_json(rule.dialect), None, true, &mut ev);
                        let values = match v {
                            Value::Multi(vs) => vs.into_iter().map(Value::into_owned).collect(),
                            one => vec![one.into_owned()],
                        };
                        ev.attributes.push(AttributeResult {
                            target: target.clone(),
                            values: Some(values),
                            rule: rule.name.clone(),
                            apply_once: flow.apply_once,
                        });
                        decided = true;
                    }
                    Ok(Outcome::AuthoritativeNull) => {
                        record(
                            &|| Outcome::AuthoritativeNull.to_json(rule.dialect),
                            None,
                            true,
                            &mut ev,
                        );
                        ev.attributes.push(AttributeResult {
                            target: target.clone(),
                            values: None,
                            rule: rule.name.clone(),
                            apply_once: flow.apply_once,
                        });
                        decided = true;
                    }
                    Ok(o @ (Outcome::IgnoreThisFlow | Outcome::IgnoreFlow)) => {
                        record(&|| o.to_json(rule.dialect), None, false, &mut ev);
                    }
                    Err(e) => {
                        record(
                            &|| serde_json::json!({ "error": e.message }),
                            None,
                            true,
                            &mut ev,
                        );
                        ev.errors.push(ObjectError {
                            rule: rule.name.clone(),
                            attribute: Some(target.clone()),
                            message: e.message,
                            raised: e.raised,
                        });
                        decided = true;
                    }
                }
            }
            if !decided {
                if let Some((ri, fi)) = null_from {
                    let rule = &self.rules[ri];
                    ev.attributes.push(AttributeResult {
                        target: target.clone(),
                        values: None,
                        rule: rule.name.clone(),
                        apply_once: rule.flows[fi].apply_once,
                    });
                }
            }
        }
        self.check_user_type(&mut ev);
        ev
    }

    fn scope(&self, entry: &dyn AttributeLookup, errors: &mut Vec<ObjectError>) -> Vec<bool> {
        self.rules
            .iter()
            .map(|rule| {
                if rule.disabled {
                    return false;
                }
                match rule.scope.matches(entry) {
                    Ok(b) => b,
                    Err(message) => {
                        errors.push(ObjectError {
                            rule: rule.name.clone(),
                            attribute: None,
                            message,
                            raised: false,
                        });
                        false
                    }
                }
            })
            .collect()
    }

    /// `userType` must come out exactly `Member` or `Guest`.
    fn check_user_type(&self, ev: &mut Evaluation) {
        let pos = ev
            .attributes
            .iter()
            .position(|a| a.target.eq_ignore_ascii_case("userType"));
        match pos {
            Some(i) => {
                let a = &ev.attributes[i];
                let problem = match a.values.as_deref() {
                    Some([Value::Str(s)]) if s.parse::<UserType>().is_ok() => None,
                    Some([one]) => Some(format!("userType must be exactly \"Member\" or \"Guest\", but the rule produced {one}")),
                    Some(many) => Some(format!("userType must be a single value, but the rule produced {} values", many.len())),
                    None if self.require_user_type => Some("the rule cleared userType, and require_user_type is set".to_string()),
                    None => None,
                };
                if let Some(message) = problem {
                    let rule = a.rule.clone();
                    ev.attributes.remove(i);
                    ev.errors.push(ObjectError {
                        rule,
                        attribute: Some("userType".into()),
                        message,
                        raised: false,
                    });
                }
            }
            None if self.require_user_type
                && ev.in_scope
                && !ev.errors.iter().any(|e| {
                    e.attribute
                        .as_deref()
                        .is_some_and(|a| a.eq_ignore_ascii_case("userType"))
                }) =>
            {
                ev.errors.push(ObjectError {
                    rule: String::from("(rule set)"),
                    attribute: Some("userType".into()),
                    message: "no rule in scope sets userType, and require_user_type is set".into(),
                    raised: false,
                });
            }
            None => {}
        }
    }

    /// Derives only the UserType of `entry`, without building the whole object: the fast
    /// path for deciding partner versus member. `Ok(None)` means no rule sets it (Entra's
    /// default, Member, applies).
    pub fn user_type(&self, entry: &dyn AttributeLookup) -> Result<Option<UserType>, ObjectError> {
        let Some((_, flows)) = self.user_type_target.and_then(|i| self.targets.get(i)) else {
            return Ok(None);
        };
        for &(ri, fi) in flows {
            let rule = &self.rules[ri];
            if rule.disabled {
                continue;
            }
            match rule.scope.matches(entry) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(message) => {
                    return Err(ObjectError {
                        rule: rule.name.clone(),
                        attribute: None,
                        message,
                        raised: false,
                    })
                }
            }
            let flow = &rule.flows[fi];
            let err = |message: String, raised: bool| ObjectError {
                rule: rule.name.clone(),
                attribute: Some("userType".into()),
                message,
                raised,
            };
            match flow.expression.evaluate(entry, &self.context) {
                Ok(Outcome::Value(Value::Null)) | Ok(Outcome::IgnoreThisFlow) | Ok(Outcome::IgnoreFlow) => continue,
                Ok(Outcome::AuthoritativeNull) => return Ok(None),
                Ok(Outcome::Value(Value::Str(s))) => {
                    // The two spellings `UserType::from_str` accepts, without the call.
                    match s.as_ref() {
                        "Member" => return Ok(Some(UserType::Member)),
                        "Guest" => return Ok(Some(UserType::Guest)),
                        _ => {}
                    }
                    return s.parse::<UserType>().map(Some).map_err(|_| {
                        err(format!("userType must be exactly \"Member\" or \"Guest\", but the rule produced {:?}", s.as_ref()), false)
                    })
                }
                Ok(Outcome::Value(v)) => return Err(err(format!("userType must be exactly \"Member\" or \"Guest\", but the rule produced {v}"), false)),
                Err(e) => return Err(err(e.message, e.raised)),
            }
        }
        if self.require_user_type {
            return Err(ObjectError {
                rule: "(rule set)".into(),
                attribute: Some("userType".into()),
                message: "no rule in scope sets userType, and require_user_type is set".into(),
                raised: false,
            });
        }
        Ok(None)
    }
}

pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset.min(text.len()))
        .map_or(1, |t| t.matches('\n').count() + 1)
}
