//! A compiled expression: parsed once, checked, annotated for multi-valued lifting, and
//! then evaluated any number of times from any thread.

use std::sync::Arc;

use crate::ast::{Expr, Position};
use crate::compile::{compile, Program};
use crate::eval::{AttributeLookup, Context, EvalError};
use crate::functions::Func;
use crate::parse::{parse, ParseError};
use crate::value::Outcome;
use crate::Dialect;

/// A parsed, checked expression, ready to evaluate.
///
/// Cloning is cheap (the tree is shared).
#[derive(Debug, Clone)]
pub struct Expression {
    inner: Arc<Compiled>,
}

#[derive(Debug)]
struct Compiled {
    source: String,
    dialect: Dialect,
    expr: Expr,
    /// Attributes used where one value is expected: a multi-valued one makes the whole
    /// expression run once per value.
    lifted: Vec<Box<str>>,
    /// The same expression compiled for the fast path (`compile.rs`).
    program: Program,
}

impl Expression {
    /// Parses and checks `source` in `dialect`.
    pub fn parse(source: &str, dialect: Dialect) -> Result<Expression, ParseError> {
        let mut expr = parse(source, dialect)?;
        annotate(&mut expr, Position::Passthrough);
        if let Some(var) = unbound_variable(&expr, &mut Vec::new()) {
            let at = source.find(&format!("${var}")).unwrap_or(0);
            return Err(ParseError::at(
                source,
                at,
                at + var.len() + 1,
                format!("variable ${var} is not defined here"),
            )
            .help("variables are defined by the first argument of Select, Where or With"));
        }
        let mut lifted: Vec<Box<str>> = Vec::new();
        scalar_attributes(&expr, &mut lifted);
        plan_lifts(&mut expr);
        let program = compile(&expr, &lifted);
        Ok(Expression {
            inner: Arc::new(Compiled {
                source: source.to_string(),
                dialect,
                expr,
                lifted,
                program,
            }),
        })
    }

    /// The text the expression was parsed from.
    pub fn source(&self) -> &str {
        &self.inner.source
    }

    /// The dialect it was written in.
    pub fn dialect(&self) -> Dialect {
        self.inner.dialect
    }

    /// The syntax tree.
    pub fn ast(&self) -> &Expr {
        &self.inner.expr
    }

    /// The attributes the expression reads.
    pub fn attributes(&self) -> Vec<&str> {
        self.inner.expr.attributes()
    }

    /// Evaluates the expression over `input`. The result may borrow from both.
    pub fn evaluate<'a>(
        &'a self,
        input: &'a dyn AttributeLookup,
        ctx: &'a Context,
    ) -> Result<Outcome<'a>, EvalError> {
        let c = &self.inner;
        c.program.run(c.dialect, &c.expr, &c.lifted, input, ctx)
    }

    /// Evaluates on the tree walk alone: the reference the compiled form is tested against.
    #[cfg(test)]
    pub(crate) fn evaluate_reference<'a>(
        &'a self,
        input: &'a dyn AttributeLookup,
        ctx: &'a Context,
    ) -> Result<Outcome<'a>, EvalError> {
        let c = &self.inner;
        crate::eval::Evaluator::new(c.dialect, input, ctx).run(&c.expr, &c.lifted)
    }
}

/// Records where each attribute reference sits (see [`Position`]).
fn annotate(expr: &mut Expr, pos: Position) {
    match expr {
        Expr::Attr(a) => a.position = pos,
        Expr::Binary(_, l, r) => {
            annotate(l, Position::Scalar);
            annotate(r, Position::Scalar);
        }
        Expr::Neg(e) => annotate(e, Position::Scalar),
        Expr::Call(call) => {
            let func: Func = call.func;
            for (i, arg) in call.args.iter_mut().enumerate() {
                if let Some(a) = arg {
                    annotate(a, func.position(i).within(pos));
                }
            }
        }
        _ => {}
    }
}

/// The attributes `expr` uses where one value is expected, not counting those inside
/// arguments that take a whole set (those lift on their own).
fn scalar_attributes(expr: &Expr, out: &mut Vec<Box<str>>) {
    match expr {
        Expr::Attr(a)
            if a.position == Position::Scalar
                && !out.iter().any(|n| n.eq_ignore_ascii_case(&a.name)) =>
        {
            out.push(a.name.clone());
        }
        Expr::Binary(_, l, r) => {
            scalar_attributes(l, out);
            scalar_attributes(r, out);
        }
        Expr::Neg(e) => scalar_attributes(e, out),
        Expr::Call(call) => {
            for (i, arg) in call.args.iter().enumerate() {
                if let Some(a) = arg {
                    if call.func.position(i) != crate::functions::ArgPosition::Whole {
                        scalar_attributes(a, out);
                    }
                }
            }
        }
        _ => {}
    }
}

/// Records, on every call, which whole-set arguments must run per value.
fn plan_lifts(expr: &mut Expr) {
    match expr {
        Expr::Binary(_, l, r) => {
            plan_lifts(l);
            plan_lifts(r);
        }
        Expr::Neg(e) => plan_lifts(e),
        Expr::Call(call) => {
            let mut lifts = Vec::new();
            for (i, arg) in call.args.iter_mut().enumerate() {
                if let Some(a) = arg {
                    plan_lifts(a);
                    if call.func.position(i) == crate::functions::ArgPosition::Whole {
                        let mut names = Vec::new();
                        scalar_attributes(a, &mut names);
                        if !names.is_empty() {
                            lifts.push((i, names.into_boxed_slice()));
                        }
                    }
                }
            }
            call.lifts = lifts;
        }
        _ => {}
    }
}

fn unbound_variable<'e>(expr: &'e Expr, scope: &mut Vec<&'e str>) -> Option<&'e str> {
    match expr {
        Expr::Var(v) => (!scope.contains(&v.as_ref())).then_some(v),
        Expr::Binary(_, l, r) => unbound_variable(l, scope).or_else(|| unbound_variable(r, scope)),
        Expr::Neg(e) => unbound_variable(e, scope),
        Expr::Call(call) if matches!(call.func, Func::Select | Func::Where | Func::With) => {
            let var = match call.args.first() {
                Some(Some(Expr::Var(v))) => v.as_ref(),
                _ => return None,
            };
            if let Some(Some(source)) = call.args.get(1) {
                if let Some(u) = unbound_variable(source, scope) {
                    return Some(u);
                }
            }
            scope.push(var);
            let r = call
                .args
                .get(2)
                .and_then(|a| a.as_ref())
                .and_then(|b| unbound_variable(b, scope));
            scope.pop();
            r
        }
        Expr::Call(call) => call
            .args
            .iter()
            .flatten()
            .find_map(|a| unbound_variable(a, scope)),
        _ => None,
    }
}

impl EvalError {
    /// Whether the expression raised the error itself with `Error("...")`.
    pub fn is_raised(&self) -> bool {
        self.raised
    }
}
