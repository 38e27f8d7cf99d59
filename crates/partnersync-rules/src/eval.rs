//! The evaluator: one tree walk for both dialects, with Connect's per-value lifting of
//! multi-valued attributes and its NULL rules.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use partnersync_core::{AttributeValue, Attributes, Entry};

use crate::ast::{BinOp, Expr, Position, Special};
use crate::value::{Outcome, Value};
use crate::{datetime, AttributeType, Dialect};

/// Where expressions read attributes from. Implemented for partnersync-core's
/// [`Entry`] and [`Attributes`]; implement it to evaluate over your own record type.
pub trait AttributeLookup {
    /// The values of `name` (ASCII-case-insensitive), or `None` when absent.
    fn lookup(&self, name: &str) -> Option<&[AttributeValue]>;

    /// The DN of the object, used by `[dn]` when the record has no `dn` attribute.
    fn dn(&self) -> Option<&str> {
        None
    }
}

/// `Attributes::get`, checking the length, then the exact spelling (a plain byte
/// comparison), before the ASCII-case-insensitive comparison: rules usually spell names as
/// the directory does.
fn find_attribute<'v>(attributes: &'v Attributes, name: &str) -> Option<&'v [AttributeValue]> {
    attributes
        .iter()
        .find(|(n, _)| n.as_str().len() == name.len() && (n.as_str() == name || n.matches(name)))
        .map(|(_, v)| v)
}

impl AttributeLookup for Attributes {
    fn lookup(&self, name: &str) -> Option<&[AttributeValue]> {
        find_attribute(self, name)
    }
}

impl AttributeLookup for Entry {
    fn lookup(&self, name: &str) -> Option<&[AttributeValue]> {
        find_attribute(&self.attributes, name)
    }

    fn dn(&self) -> Option<&str> {
        Some(&self.dn)
    }
}

/// A run-time error: a value of the wrong type, an index out of range, or an
/// `Error("...")` the expression raised on purpose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalError {
    /// The message.
    pub message: String,
    /// True when the expression raised it with `Error(...)`.
    pub raised: bool,
}

impl EvalError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        EvalError {
            message: message.into(),
            raised: false,
        }
    }
}

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for EvalError {}

/// Why evaluation of a sub-expression stopped early.
#[derive(Debug)]
pub(crate) enum Stop {
    Error(Box<EvalError>),
    AuthoritativeNull,
    IgnoreThisFlow,
    IgnoreFlow,
}

impl From<EvalError> for Stop {
    fn from(e: EvalError) -> Self {
        Stop::Error(Box::new(e))
    }
}

pub(crate) type Res<'a> = Result<Value<'a>, Stop>;

pub(crate) fn fail<T>(message: impl Into<String>) -> Result<T, Stop> {
    Err(Stop::Error(Box::new(EvalError::new(message))))
}

/// Whether comparison `op` holds for operands ordered `ord`.
#[inline]
pub(crate) fn holds(op: BinOp, ord: std::cmp::Ordering) -> bool {
    use std::cmp::Ordering;
    match op {
        BinOp::Eq => ord == Ordering::Equal,
        BinOp::Ne => ord != Ordering::Equal,
        BinOp::Lt => ord == Ordering::Less,
        BinOp::Le => ord != Ordering::Greater,
        BinOp::Gt => ord == Ordering::Greater,
        _ => ord != Ordering::Less,
    }
}

/// What a whole flow expression came to, as callers see it.
pub(crate) fn outcome(r: Res<'_>) -> Result<Outcome<'_>, EvalError> {
    match r {
        Ok(v) => Ok(Outcome::Value(v)),
        Err(Stop::Error(e)) => Err(*e),
        Err(Stop::AuthoritativeNull) => Ok(Outcome::AuthoritativeNull),
        Err(Stop::IgnoreThisFlow) => Ok(Outcome::IgnoreThisFlow),
        Err(Stop::IgnoreFlow) => Ok(Outcome::IgnoreFlow),
    }
}

/// Decides whether a `SelectUniqueValue` candidate is still free in the target.
pub type UniquenessCheck = Box<dyn Fn(&str) -> bool + Send + Sync>;

/// Values known to the evaluation besides the entry: Connect's `%Parameters%`, the
/// declared attribute types, and an optional uniqueness check for `SelectUniqueValue`.
#[derive(Default)]
pub struct Context {
    /// `%Name%` parameters (e.g. `Domain.FQDN`).
    pub parameters: HashMap<String, String>,
    /// Declared attribute types (`num`, `bool`, `mvstring`, ...); undeclared attributes
    /// are text (or binary when their bytes are not UTF-8).
    pub types: HashMap<String, AttributeType>,
    /// Decides whether a `SelectUniqueValue` candidate is free in the target; without it
    /// every candidate counts as free and the first non-empty one wins.
    pub uniqueness: Option<UniquenessCheck>,
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("parameters", &self.parameters)
            .field("types", &self.types)
            .field("uniqueness", &self.uniqueness.is_some())
            .finish()
    }
}

impl Context {
    pub(crate) fn type_of(&self, name: &str) -> Option<AttributeType> {
        if self.types.is_empty() {
            return None;
        }
        self.types
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, t)| *t)
    }
}

pub(crate) struct Evaluator<'a> {
    pub(crate) dialect: Dialect,
    input: &'a dyn AttributeLookup,
    pub(crate) ctx: &'a Context,
    /// While lifting: the multi-valued attribute and the one value bound to it.
    bound: Option<(&'a str, Value<'a>)>,
    /// Select/Where/With variables (a `Vec`: creating and dropping an empty one is free,
    /// which matters for the many evaluations that define none).
    vars: Vec<(&'a str, Value<'a>)>,
}

impl<'a> Evaluator<'a> {
    pub(crate) fn new(dialect: Dialect, input: &'a dyn AttributeLookup, ctx: &'a Context) -> Self {
        Evaluator {
            dialect,
            input,
            ctx,
            bound: None,
            vars: Vec::new(),
        }
    }

    /// Evaluates a whole flow expression, lifting it over a multi-valued attribute used
    /// where one value is expected.
    pub(crate) fn run(
        &mut self,
        expr: &'a Expr,
        lifted: &'a [Box<str>],
    ) -> Result<Outcome<'a>, EvalError> {
        outcome(self.eval_lifted(expr, lifted))
    }

    /// Evaluates `expr`, once per value when one of `lifted` is multi-valued.
    pub(crate) fn eval_lifted(&mut self, expr: &'a Expr, lifted: &'a [Box<str>]) -> Res<'a> {
        if lifted.is_empty() {
            return self.eval(expr);
        }
        match self.lift_target(lifted)? {
            None => self.eval(expr),
            Some((name, values)) => self.eval_per_value(expr, name, values),
        }
    }

    fn lift_target(
        &self,
        lifted: &'a [Box<str>],
    ) -> Result<Option<(&'a str, Vec<Value<'a>>)>, Stop> {
        let mut found: Option<(&'a str, Vec<Value<'a>>)> = None;
        for name in lifted {
            if let Value::Multi(values) = self.attribute(name)? {
                if let Some((first, _)) = &found {
                    return fail(format!(
                        "the expression uses two multi-valued attributes, [{first}] and [{name}], where single values are expected; pick values with Item(...) or Select(...)"
                    ));
                }
                found = Some((name, values));
            }
        }
        Ok(found)
    }

    fn eval_per_value(&mut self, expr: &'a Expr, name: &'a str, values: Vec<Value<'a>>) -> Res<'a> {
        let mut out = Vec::with_capacity(values.len());
        let outer = self.bound.take();
        for v in values {
            self.bound = Some((name, v));
            let r = self.eval(expr);
            self.bound = None;
            let r = match r {
                Ok(v) => v,
                Err(e) => {
                    self.bound = outer;
                    return Err(e);
                }
            };
            match r {
                Value::Null => {}
                Value::Multi(vs) => out.extend(vs),
                v => out.push(v),
            }
        }
        self.bound = outer;
        Ok(if out.is_empty() {
            Value::Null
        } else {
            Value::Multi(out)
        })
    }

    /// Reads an attribute, applying its declared type.
    #[inline]
    pub(crate) fn attribute(&self, name: &str) -> Res<'a> {
        let ty = self.ctx.type_of(name);
        let Some(values) = self.input.lookup(name) else {
            if name.eq_ignore_ascii_case("dn") {
                if let Some(dn) = self.input.dn() {
                    return Ok(Value::Ref(Cow::Borrowed(dn)));
                }
            }
            return Ok(match ty {
                Some(t) if t.is_multi() => Value::Null,
                _ => Value::Null,
            });
        };
        let multi = ty.is_some_and(AttributeType::is_multi) || values.len() > 1;
        if !multi {
            return match (values.first(), ty) {
                // What `convert` does for an undeclared attribute, without the call.
                (Some(AttributeValue::Text(s)), None) => Ok(Value::Str(Cow::Borrowed(s))),
                (Some(v), _) => convert(name, v, ty),
                (None, _) => Ok(Value::Null),
            };
        }
        let mut out = Vec::with_capacity(values.len());
        for v in values {
            out.push(convert(name, v, ty)?);
        }
        Ok(Value::Multi(out))
    }

    pub(crate) fn eval(&mut self, expr: &'a Expr) -> Res<'a> {
        match expr {
            Expr::Str(s) => Ok(Value::Str(Cow::Borrowed(s))),
            Expr::Num(n) => Ok(Value::Num(*n)),
            Expr::Bool(b) => Ok(Value::Bool(*b)),
            Expr::Special(Special::Null) => Ok(Value::Null),
            Expr::Special(Special::Crlf) => Ok(Value::str("\r\n")),
            Expr::Special(Special::AuthoritativeNull) => Err(Stop::AuthoritativeNull),
            Expr::Special(Special::IgnoreThisFlow) => Err(Stop::IgnoreThisFlow),
            Expr::Enum(w) => Ok(Value::str(w.word())),
            Expr::Attr(a) => {
                if a.position != Position::Whole {
                    if let Some((name, v)) = &self.bound {
                        if name.eq_ignore_ascii_case(&a.name) {
                            return Ok(v.clone());
                        }
                    }
                }
                self.attribute(&a.name)
            }
            Expr::Param(p) => match self.ctx.parameters.get(p.as_ref()) {
                Some(v) => Ok(Value::str(v)),
                None => fail(format!(
                    "parameter %{p}% has no value; define it under [parameters] in the rule configuration"
                )),
            },
            Expr::Var(v) => match self.vars.iter().rev().find(|(n, _)| *n == v.as_ref()) {
                Some((_, value)) => Ok(value.clone()),
                None => fail(format!("variable ${v} is used outside the Select, Where or With that defines it")),
            },
            Expr::Neg(e) => {
                let v = self.eval(e)?;
                self.negate(v)
            }
            Expr::Binary(op, l, r) => self.binary(*op, l, r),
            Expr::Call(call) => crate::builtins::call(self, call),
        }
    }

    /// Unary minus.
    pub(crate) fn negate(&self, v: Value<'a>) -> Res<'a> {
        match v {
            Value::Null => Ok(Value::Null),
            v => match self.num(&v, "unary '-'")?.checked_neg() {
                Some(n) => Ok(Value::Num(n)),
                None => fail("number out of range in unary '-'"),
            },
        }
    }

    pub(crate) fn with_var<T>(
        &mut self,
        name: &'a str,
        value: Value<'a>,
        f: impl FnOnce(&mut Self) -> T,
    ) -> T {
        self.vars.push((name, value));
        let r = f(self);
        self.vars.pop();
        r
    }

    fn binary(&mut self, op: BinOp, l: &'a Expr, r: &'a Expr) -> Res<'a> {
        match op {
            BinOp::And | BinOp::Or => {
                // Short-circuit, with NULL counting as False (VBA-like; expressions.md §1.5).
                let left = self.eval(l)?;
                let lb = self.truth(&left, op.symbol())?;
                if (op == BinOp::And && !lb) || (op == BinOp::Or && lb) {
                    return Ok(Value::Bool(lb));
                }
                let right = self.eval(r)?;
                Ok(Value::Bool(self.truth(&right, op.symbol())?))
            }
            _ => {
                let left = self.eval(l)?;
                let right = self.eval(r)?;
                self.apply_binary(op, left, right)
            }
        }
    }

    pub(crate) fn apply_binary(&mut self, op: BinOp, left: Value<'a>, right: Value<'a>) -> Res<'a> {
        // Multi-valued operands (from functions such as Split) apply per value.
        if let Value::Multi(vs) = left {
            let mut out = Vec::with_capacity(vs.len());
            for v in vs {
                let x = self.apply_binary(op, v, right.clone())?;
                if !x.is_null() {
                    out.push(x);
                }
            }
            return Ok(Value::Multi(out));
        }
        if let Value::Multi(vs) = right {
            let mut out = Vec::with_capacity(vs.len());
            for v in vs {
                let x = self.apply_binary(op, left.clone(), v)?;
                if !x.is_null() {
                    out.push(x);
                }
            }
            return Ok(Value::Multi(out));
        }
        match op {
            BinOp::Concat => {
                // VBA: NULL & "x" is "x"; NULL & NULL is NULL.
                match (left, right) {
                    (Value::Null, Value::Null) => Ok(Value::Null),
                    (Value::Null, v) | (v, Value::Null) => {
                        Ok(Value::string(self.text(&v, "&")?.into_owned()))
                    }
                    (a, b) => {
                        let a = self.text(&a, "&")?;
                        let b = self.text(&b, "&")?;
                        let mut s = String::with_capacity(a.len() + b.len());
                        s.push_str(&a);
                        s.push_str(&b);
                        Ok(Value::string(s))
                    }
                }
            }
            BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div => {
                if left.is_null() || right.is_null() {
                    return Ok(Value::Null);
                }
                let a = self.num(&left, op.symbol())?;
                let b = self.num(&right, op.symbol())?;
                let r = match op {
                    BinOp::Add => a.checked_add(b),
                    BinOp::Sub => a.checked_sub(b),
                    BinOp::Mul => a.checked_mul(b),
                    _ => {
                        if b == 0 {
                            return fail("division by zero");
                        }
                        a.checked_div(b)
                    }
                };
                match r {
                    Some(n) => Ok(Value::Num(n)),
                    None => fail(format!("number out of range in '{}'", op.symbol())),
                }
            }
            _ => {
                // A comparison involving NULL is NULL, which counts as False where a
                // Boolean is needed (expressions.md §1.5).
                if left.is_null() || right.is_null() {
                    return Ok(Value::Null);
                }
                let ord = self.compare(&left, &right)?;
                Ok(Value::Bool(holds(op, ord)))
            }
        }
    }

    /// Orders two non-null values: numbers numerically (text that reads as a number
    /// counts), Booleans against `True`/`False` text case-insensitively, dates in time,
    /// everything else as case-sensitive ordinal text.
    pub(crate) fn compare(&self, a: &Value<'a>, b: &Value<'a>) -> Result<std::cmp::Ordering, Stop> {
        use Value::*;
        Ok(match (a, b) {
            (Num(x), Num(y)) => x.cmp(y),
            (Num(x), Str(s)) | (Num(x), Ref(s)) => match s.trim().parse::<i64>() {
                Ok(y) => x.cmp(&y),
                Err(_) => x.to_string().as_str().cmp(s.as_ref()),
            },
            (Str(_), Num(_)) | (Ref(_), Num(_)) => self.compare(b, a)?.reverse(),
            (Bool(x), Bool(y)) => x.cmp(y),
            (Bool(x), Str(s)) | (Bool(x), Ref(s)) => {
                let t = if *x { "true" } else { "false" };
                t.cmp(s.to_ascii_lowercase().as_str())
            }
            (Str(_), Bool(_)) | (Ref(_), Bool(_)) => self.compare(b, a)?.reverse(),
            (Date(x), Date(y)) => x.cmp(y),
            (Date(x), Str(s)) => x.cmp(
                &datetime::parse_date(s).map_err(|e| Stop::Error(Box::new(EvalError::new(e))))?,
            ),
            (Str(_), Date(_)) => self.compare(b, a)?.reverse(),
            (Bin(x), Bin(y)) => x.cmp(y),
            _ => {
                let x = self.text(a, "comparison")?;
                let y = self.text(b, "comparison")?;
                x.as_ref().cmp(y.as_ref())
            }
        })
    }

    /// A value where a Boolean is needed. NULL is False.
    pub(crate) fn truth(&self, v: &Value<'a>, what: &str) -> Result<bool, Stop> {
        match v {
            Value::Null => Ok(false),
            Value::Bool(b) => Ok(*b),
            Value::Num(n) => Ok(*n != 0),
            Value::Str(s) => {
                let t = s.trim();
                if t.eq_ignore_ascii_case("true") {
                    Ok(true)
                } else if t.eq_ignore_ascii_case("false") || t.is_empty() {
                    Ok(false)
                } else if let Ok(n) = t.parse::<i64>() {
                    Ok(n != 0)
                } else {
                    fail(format!("{what} needs a Boolean, got the string {s:?}"))
                }
            }
            other => fail(format!(
                "{what} needs a Boolean, got a {} value",
                other.type_name()
            )),
        }
    }

    /// A value where a number is needed; text that reads as an integer counts.
    pub(crate) fn num(&self, v: &Value<'a>, what: &str) -> Result<i64, Stop> {
        match v {
            Value::Num(n) => Ok(*n),
            Value::Str(s) => match parse_int(s) {
                Some(n) => Ok(n),
                None => fail(format!("{what} needs a number, got the string {s:?}")),
            },
            Value::Bool(_) => fail(format!(
                "{what} needs a number, got a Boolean; use IIF(..., 1, 0)"
            )),
            other => fail(format!(
                "{what} needs a number, got a {} value",
                other.type_name()
            )),
        }
    }

    /// A value where text is needed. Numbers, Booleans, dates and references convert;
    /// bytes do not (use ConvertToBase64 or StringFromGuid).
    pub(crate) fn text<'v>(&self, v: &'v Value<'a>, what: &str) -> Result<Cow<'v, str>, Stop> {
        match v {
            Value::Bin(_) => fail(format!(
                "{what} needs text, got a binary value; convert it first (StringFromGuid, StringFromSid, ConvertToBase64)"
            )),
            Value::Multi(_) => fail(format!("{what} needs a single value, got several")),
            other => match other.to_text(self.dialect) {
                Some(t) => Ok(t),
                None => Ok(Cow::Borrowed("")),
            },
        }
    }
}

/// Parses an integer the way CNum does: optional sign, decimal digits, surrounding
/// spaces; `&H` hexadecimal too.
pub(crate) fn parse_int(s: &str) -> Option<i64> {
    let t = s.trim();
    if let Some(h) = t.strip_prefix("&H").or_else(|| t.strip_prefix("&h")) {
        return u64::from_str_radix(h, 16).ok().map(|v| v as i64);
    }
    t.parse::<i64>().ok()
}

fn convert<'a>(name: &str, v: &'a AttributeValue, ty: Option<AttributeType>) -> Res<'a> {
    let text = || match v {
        AttributeValue::Text(s) => Ok(s.as_str()),
        AttributeValue::Binary(_) => fail(format!(
            "attribute [{name}] is declared {} but holds binary data",
            ty.map_or("text", AttributeType::name)
        )),
    };
    let Some(ty) = ty else {
        return Ok(match v {
            AttributeValue::Text(s) => Value::Str(Cow::Borrowed(s)),
            AttributeValue::Binary(b) => Value::Bin(Cow::Borrowed(b)),
        });
    };
    Ok(match ty {
        AttributeType::String | AttributeType::MvString => match v {
            AttributeValue::Text(s) => Value::Str(Cow::Borrowed(s)),
            AttributeValue::Binary(b) => Value::Bin(Cow::Borrowed(b)),
        },
        AttributeType::Ref | AttributeType::MvRef => Value::Ref(Cow::Borrowed(text()?)),
        AttributeType::Bin | AttributeType::MvBin => Value::Bin(Cow::Borrowed(v.as_bytes())),
        AttributeType::Num => {
            let s = text()?;
            match parse_int(s) {
                Some(n) => Value::Num(n),
                None => {
                    return fail(format!(
                        "attribute [{name}] is declared num but has the value {s:?}"
                    ))
                }
            }
        }
        AttributeType::Bool => {
            let s = text()?.trim();
            if s.eq_ignore_ascii_case("true") || s == "1" {
                Value::Bool(true)
            } else if s.eq_ignore_ascii_case("false") || s == "0" {
                Value::Bool(false)
            } else {
                return fail(format!(
                    "attribute [{name}] is declared bool but has the value {s:?}"
                ));
            }
        }
        AttributeType::Dt => {
            let s = text()?;
            match datetime::parse_date(s) {
                Ok(d) => Value::Date(d),
                Err(e) => return fail(format!("attribute [{name}] is declared dt: {e}")),
            }
        }
    })
}
