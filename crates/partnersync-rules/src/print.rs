//! Prints a syntax tree back as text that parses to the same tree.

use std::fmt::Write as _;

use crate::ast::{Expr, Special};
use crate::functions::name_of;
use crate::Dialect;

/// Renders `expr` in `dialect`'s syntax. Parsing the result gives back an equal tree
/// (the property tests check this), so a normalised expression can be stored or diffed.
pub fn print(expr: &Expr, dialect: Dialect) -> String {
    let mut out = String::new();
    write_expr(&mut out, expr, dialect);
    out
}

fn write_expr(out: &mut String, expr: &Expr, dialect: Dialect) {
    match expr {
        Expr::Str(s) => {
            out.push('"');
            for c in s.chars() {
                match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    c => out.push(c),
                }
            }
            out.push('"');
        }
        Expr::Num(n) if *n < 0 => {
            let _ = write!(out, "&H{:X}", *n as u64);
        }
        Expr::Num(n) => {
            let _ = write!(out, "{n}");
        }
        Expr::Bool(true) => out.push_str("True"),
        Expr::Bool(false) => out.push_str("False"),
        Expr::Special(s) => out.push_str(Special::keyword(*s)),
        Expr::Enum(w) => out.push_str(w.word()),
        Expr::Attr(a) => {
            out.push('[');
            out.push_str(&a.name);
            out.push(']');
        }
        Expr::Param(p) => {
            out.push('%');
            out.push_str(p);
            out.push('%');
        }
        Expr::Var(v) => {
            out.push('$');
            out.push_str(v);
        }
        Expr::Call(call) => {
            out.push_str(name_of(dialect, call.func));
            out.push('(');
            for (i, arg) in call.args.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                if let Some(a) = arg {
                    write_expr(out, a, dialect);
                }
            }
            out.push(')');
        }
        Expr::Neg(e) => {
            out.push('-');
            let paren = matches!(**e, Expr::Binary(..));
            if paren {
                out.push('(');
            }
            write_expr(out, e, dialect);
            if paren {
                out.push(')');
            }
        }
        Expr::Binary(op, l, r) => {
            let tier = op.tier();
            let needs = |child: &Expr, right: bool| match child {
                Expr::Binary(c, ..) => {
                    c.tier() < tier || (right && c.tier() == tier) || (tier == 2 && c.tier() == 2)
                }
                _ => false,
            };
            let side = |out: &mut String, e: &Expr, paren: bool| {
                if paren {
                    out.push('(');
                }
                write_expr(out, e, dialect);
                if paren {
                    out.push(')');
                }
            };
            side(out, l, needs(l, false));
            out.push(' ');
            out.push_str(op.symbol());
            out.push(' ');
            side(out, r, needs(r, true));
        }
    }
}
