//! `$filter`: a parser for the OData subset Graph accepts on `/users`, an evaluator over user
//! objects, and the classifier that decides whether a filter needs advanced-query parameters.
//!
//! Grammar (precedence low → high): `or`, `and`, `not`, then primaries: parenthesised
//! expressions, `path op literal` (`eq ne gt ge lt le`), `path in (lit, …)`,
//! `startsWith(path, 'x')` / `endsWith(path, 'x')`, lambdas `path/any(v: expr)` /
//! `path/all(v: expr)`, and `path/$count op n`.

use serde_json::Value;

use crate::error::GraphError;
use crate::schema::{self, COUNT, ENDS, EQ, EQNULL, GELE, IN, NE, NOT, STARTS};

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Lit {
    Str(String),
    Bool(bool),
    Null,
    Num(f64),
    /// Unquoted date-time or GUID literal, compared as a string.
    Raw(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Func {
    StartsWith,
    EndsWith,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Cmp(Vec<String>, CmpOp, Lit),
    In(Vec<String>, Vec<Lit>),
    Func(Func, Vec<String>, Lit),
    Lambda {
        path: Vec<String>,
        all: bool,
        var: Option<String>,
        body: Option<Box<Expr>>,
    },
    Count(Vec<String>, CmpOp, f64),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Num(String),
    LParen,
    RParen,
    Comma,
    Colon,
    Slash,
}

fn syntax(message: impl AsRef<str>) -> GraphError {
    GraphError::odata(format!("Invalid filter clause: {}", message.as_ref()))
}

fn lex(input: &str) -> Result<Vec<(Tok, usize)>, GraphError> {
    let chars: Vec<char> = input.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        match c {
            ' ' | '\t' | '\r' | '\n' => i += 1,
            '(' => {
                out.push((Tok::LParen, start));
                i += 1;
            }
            ')' => {
                out.push((Tok::RParen, start));
                i += 1;
            }
            ',' => {
                out.push((Tok::Comma, start));
                i += 1;
            }
            ':' => {
                out.push((Tok::Colon, start));
                i += 1;
            }
            '/' => {
                out.push((Tok::Slash, start));
                i += 1;
            }
            '\'' => {
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => {
                            return Err(syntax(format!(
                                "There is an unterminated string literal at position {start} in '{input}'."
                            )))
                        }
                        Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                            s.push('\'');
                            i += 2;
                        }
                        Some('\'') => {
                            i += 1;
                            break;
                        }
                        Some(&ch) => {
                            s.push(ch);
                            i += 1;
                        }
                    }
                }
                out.push((Tok::Str(s), start));
            }
            c if c.is_ascii_digit() || c == '-' => {
                let mut s = String::new();
                while let Some(&ch) = chars.get(i) {
                    if ch.is_ascii_alphanumeric() || matches!(ch, '-' | '.' | ':' | '+') {
                        s.push(ch);
                        i += 1;
                    } else {
                        break;
                    }
                }
                out.push((Tok::Num(s), start));
            }
            c if c.is_alphabetic() || c == '_' || c == '$' || c == '@' => {
                let mut s = String::new();
                while let Some(&ch) = chars.get(i) {
                    if ch.is_alphanumeric() || matches!(ch, '_' | '$' | '.' | '@' | '#') {
                        s.push(ch);
                        i += 1;
                    } else {
                        break;
                    }
                }
                out.push((Tok::Ident(s), start));
            }
            other => {
                return Err(syntax(format!(
                "Syntax error: character '{other}' is not valid at position {start} in '{input}'."
            )))
            }
        }
    }
    Ok(out)
}

struct Parser<'a> {
    toks: Vec<(Tok, usize)>,
    pos: usize,
    input: &'a str,
    depth: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|(t, _)| t)
    }

    fn at(&self) -> usize {
        self.toks
            .get(self.pos)
            .map(|(_, p)| *p)
            .unwrap_or(self.input.chars().count())
    }

    fn err_here(&self) -> GraphError {
        syntax(format!(
            "Syntax error at position {} in '{}'.",
            self.at(),
            self.input
        ))
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).map(|(t, _)| t.clone());
        self.pos += 1;
        t
    }

    fn expect(&mut self, want: Tok) -> Result<(), GraphError> {
        if self.peek() == Some(&want) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.err_here())
        }
    }

    fn keyword(&self, kw: &str) -> bool {
        matches!(self.peek(), Some(Tok::Ident(s)) if s.eq_ignore_ascii_case(kw))
    }

    fn expr(&mut self) -> Result<Expr, GraphError> {
        self.depth += 1;
        if self.depth > 64 {
            return Err(syntax("The filter is nested too deeply."));
        }
        let mut left = self.and_expr()?;
        while self.keyword("or") {
            self.pos += 1;
            let right = self.and_expr()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        self.depth -= 1;
        Ok(left)
    }

    fn and_expr(&mut self) -> Result<Expr, GraphError> {
        let mut left = self.unary()?;
        while self.keyword("and") {
            self.pos += 1;
            let right = self.unary()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, GraphError> {
        if self.keyword("not") {
            self.pos += 1;
            self.depth += 1;
            if self.depth > 64 {
                return Err(syntax("The filter is nested too deeply."));
            }
            let inner = self.unary()?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(inner)));
        }
        self.primary()
    }

    fn path(&mut self) -> Result<Vec<String>, GraphError> {
        let mut segs = Vec::new();
        match self.next() {
            Some(Tok::Ident(s)) => segs.push(s),
            _ => {
                self.pos -= 1;
                return Err(self.err_here());
            }
        }
        while self.peek() == Some(&Tok::Slash) {
            // A lambda or $count follows: let the caller handle it.
            match self.toks.get(self.pos + 1).map(|(t, _)| t) {
                Some(Tok::Ident(s))
                    if s.eq_ignore_ascii_case("any")
                        || s.eq_ignore_ascii_case("all")
                        || s == "$count" =>
                {
                    break
                }
                _ => {}
            }
            self.pos += 1;
            match self.next() {
                Some(Tok::Ident(s)) => segs.push(s),
                _ => {
                    self.pos -= 1;
                    return Err(self.err_here());
                }
            }
        }
        Ok(segs)
    }

    fn literal(&mut self) -> Result<Lit, GraphError> {
        match self.next() {
            Some(Tok::Str(s)) => Ok(Lit::Str(s.to_lowercase())),
            Some(Tok::Num(s)) => match s.parse::<f64>() {
                Ok(n) if !s.contains(':') => Ok(Lit::Num(n)),
                _ => Ok(Lit::Raw(s)),
            },
            Some(Tok::Ident(s)) if s.eq_ignore_ascii_case("null") => Ok(Lit::Null),
            Some(Tok::Ident(s)) if s.eq_ignore_ascii_case("true") => Ok(Lit::Bool(true)),
            Some(Tok::Ident(s)) if s.eq_ignore_ascii_case("false") => Ok(Lit::Bool(false)),
            _ => {
                self.pos -= 1;
                Err(syntax(format!(
                    "Expression expected at position {} in '{}'.",
                    self.at(),
                    self.input
                )))
            }
        }
    }

    fn cmp_op(&mut self) -> Option<CmpOp> {
        let op = match self.peek() {
            Some(Tok::Ident(s)) => match s.to_ascii_lowercase().as_str() {
                "eq" => CmpOp::Eq,
                "ne" => CmpOp::Ne,
                "gt" => CmpOp::Gt,
                "ge" => CmpOp::Ge,
                "lt" => CmpOp::Lt,
                "le" => CmpOp::Le,
                _ => return None,
            },
            _ => return None,
        };
        self.pos += 1;
        Some(op)
    }

    fn primary(&mut self) -> Result<Expr, GraphError> {
        if self.peek() == Some(&Tok::LParen) {
            self.pos += 1;
            let e = self.expr()?;
            self.expect(Tok::RParen)?;
            return Ok(e);
        }
        // Function call?
        if let (Some(Tok::Ident(name)), Some((Tok::LParen, _))) =
            (self.peek().cloned(), self.toks.get(self.pos + 1))
        {
            let func = match name.to_ascii_lowercase().as_str() {
                "startswith" => Some(Func::StartsWith),
                "endswith" => Some(Func::EndsWith),
                _ => None,
            };
            let Some(func) = func else {
                return Err(syntax(format!(
                    "Unknown function '{name}' at position {} in '{}'.",
                    self.at(),
                    self.input
                )));
            };
            self.pos += 2;
            let path = self.path()?;
            self.expect(Tok::Comma)?;
            let lit = self.literal()?;
            self.expect(Tok::RParen)?;
            // `startsWith(x,'a') eq true` is accepted by OData; tolerate it.
            if self.keyword("eq") {
                self.pos += 1;
                return match self.literal()? {
                    Lit::Bool(true) => Ok(Expr::Func(func, path, lit)),
                    Lit::Bool(false) => Ok(Expr::Not(Box::new(Expr::Func(func, path, lit)))),
                    _ => Err(self.err_here()),
                };
            }
            return Ok(Expr::Func(func, path, lit));
        }
        let path = self.path()?;
        if self.peek() == Some(&Tok::Slash) {
            self.pos += 1;
            match self.next() {
                Some(Tok::Ident(s)) if s == "$count" => {
                    let op = self.cmp_op().ok_or_else(|| self.err_here())?;
                    return match self.literal()? {
                        Lit::Num(n) => Ok(Expr::Count(path, op, n)),
                        _ => Err(self.err_here()),
                    };
                }
                Some(Tok::Ident(s)) => {
                    let all = s.eq_ignore_ascii_case("all");
                    self.expect(Tok::LParen)?;
                    if self.peek() == Some(&Tok::RParen) {
                        self.pos += 1;
                        return Ok(Expr::Lambda {
                            path,
                            all,
                            var: None,
                            body: None,
                        });
                    }
                    let var = match self.next() {
                        Some(Tok::Ident(v)) => v,
                        _ => {
                            self.pos -= 1;
                            return Err(self.err_here());
                        }
                    };
                    self.expect(Tok::Colon)?;
                    let body = self.expr()?;
                    self.expect(Tok::RParen)?;
                    return Ok(Expr::Lambda {
                        path,
                        all,
                        var: Some(var),
                        body: Some(Box::new(body)),
                    });
                }
                _ => {
                    self.pos -= 1;
                    return Err(self.err_here());
                }
            }
        }
        if self.keyword("in") {
            self.pos += 1;
            self.expect(Tok::LParen)?;
            let mut list = vec![self.literal()?];
            while self.peek() == Some(&Tok::Comma) {
                self.pos += 1;
                list.push(self.literal()?);
            }
            self.expect(Tok::RParen)?;
            return Ok(Expr::In(path, list));
        }
        let op = self.cmp_op().ok_or_else(|| self.err_here())?;
        let lit = self.literal()?;
        Ok(Expr::Cmp(path, op, lit))
    }
}

/// Parses a `$filter` expression.
pub(crate) fn parse(input: &str) -> Result<Expr, GraphError> {
    if input.trim().is_empty() {
        return Err(syntax("The filter expression is empty."));
    }
    let toks = lex(input)?;
    let mut p = Parser {
        toks,
        pos: 0,
        input,
        depth: 0,
    };
    let e = p.expr()?;
    if p.pos < p.toks.len() {
        return Err(p.err_here());
    }
    Ok(e)
}

// ---------------------------------------------------------------------------------------------
// Evaluation

fn resolve<'v>(
    user: &'v serde_json::Map<String, Value>,
    scope: Option<(&str, &'v Value)>,
    path: &[String],
) -> Option<&'v Value> {
    let (mut cur, rest) = match (scope, path.first()) {
        (Some((var, v)), Some(first)) if first == var => (v, &path[1..]),
        _ => {
            let first = path.first()?;
            // Exact (canonical) name first; a case-insensitive scan only as a fallback.
            let v = match user.get(first.as_str()) {
                Some(v) => v,
                None => {
                    let key = user.keys().find(|k| k.eq_ignore_ascii_case(first))?;
                    user.get(key)?
                }
            };
            (v, &path[1..])
        }
    };
    for seg in rest {
        let obj = cur.as_object()?;
        cur = match obj.get(seg.as_str()) {
            Some(v) => v,
            None => {
                let key = obj.keys().find(|k| k.eq_ignore_ascii_case(seg))?;
                obj.get(key)?
            }
        };
    }
    Some(cur)
}

/// The literal as a lower-case string (string literals are lowered when parsed).
fn lit_str(l: &Lit) -> Option<std::borrow::Cow<'_, str>> {
    match l {
        Lit::Str(s) => Some(std::borrow::Cow::Borrowed(s.as_str())),
        Lit::Raw(s) => Some(std::borrow::Cow::Owned(s.to_lowercase())),
        Lit::Num(n) => Some(std::borrow::Cow::Owned(n.to_string())),
        _ => None,
    }
}

/// Case-insensitive comparison of `s` with an already lower-case `lower`, without allocating.
fn ci_cmp(s: &str, lower: &str) -> std::cmp::Ordering {
    s.chars().flat_map(char::to_lowercase).cmp(lower.chars())
}

fn ci_starts_with(s: &str, lower_prefix: &str) -> bool {
    let mut it = s.chars().flat_map(char::to_lowercase);
    lower_prefix.chars().all(|c| it.next() == Some(c))
}

fn normalize_time(s: &str) -> String {
    // Allow `2021-01-01T00:00:00Z` vs `2021-01-01T00:00:00.000Z` to compare sensibly.
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| {
            t.with_timezone(&chrono::Utc)
                .format("%Y-%m-%dT%H:%M:%S%.f")
                .to_string()
        })
        .unwrap_or_else(|_| s.to_lowercase())
}

fn compare(v: Option<&Value>, op: CmpOp, lit: &Lit) -> bool {
    use std::cmp::Ordering;
    let v = v.unwrap_or(&Value::Null);
    let ord: Option<Ordering> = match (v, lit) {
        (Value::Null, Lit::Null) => Some(Ordering::Equal),
        (Value::Null, _) | (_, Lit::Null) => None,
        (Value::Bool(b), Lit::Bool(l)) => Some(b.cmp(l)),
        (Value::Number(n), Lit::Num(l)) => n.as_f64().and_then(|x| x.partial_cmp(l)),
        (Value::String(s), Lit::Raw(r)) if chrono::DateTime::parse_from_rfc3339(r).is_ok() => {
            Some(normalize_time(s).cmp(&normalize_time(r)))
        }
        (Value::String(s), l) => lit_str(l).map(|l| ci_cmp(s, &l)),
        _ => None,
    };
    match op {
        CmpOp::Eq => ord == Some(Ordering::Equal),
        CmpOp::Ne => ord != Some(Ordering::Equal),
        CmpOp::Gt => ord == Some(Ordering::Greater),
        CmpOp::Ge => matches!(ord, Some(Ordering::Greater | Ordering::Equal)),
        CmpOp::Lt => ord == Some(Ordering::Less),
        CmpOp::Le => matches!(ord, Some(Ordering::Less | Ordering::Equal)),
    }
}

fn eval_in(e: &Expr, user: &serde_json::Map<String, Value>, scope: Option<(&str, &Value)>) -> bool {
    match e {
        Expr::And(a, b) => eval_in(a, user, scope) && eval_in(b, user, scope),
        Expr::Or(a, b) => eval_in(a, user, scope) || eval_in(b, user, scope),
        Expr::Not(a) => !eval_in(a, user, scope),
        Expr::Cmp(path, op, lit) => compare(resolve(user, scope, path), *op, lit),
        Expr::In(path, list) => {
            let v = resolve(user, scope, path);
            list.iter().any(|l| compare(v, CmpOp::Eq, l))
        }
        Expr::Func(f, path, lit) => {
            let (Some(Value::String(s)), Some(l)) = (resolve(user, scope, path), lit_str(lit))
            else {
                return false;
            };
            match f {
                Func::StartsWith => ci_starts_with(s, &l),
                Func::EndsWith => s.to_lowercase().ends_with(l.as_ref()),
            }
        }
        Expr::Lambda {
            path,
            all,
            var,
            body,
        } => {
            let items = match resolve(user, scope, path) {
                Some(Value::Array(items)) => items.as_slice(),
                _ => &[],
            };
            match (var, body) {
                (Some(var), Some(body)) => {
                    let test = |item: &Value| eval_in(body, user, Some((var.as_str(), item)));
                    if *all {
                        items.iter().all(test)
                    } else {
                        items.iter().any(test)
                    }
                }
                _ => !items.is_empty(),
            }
        }
        Expr::Count(path, op, n) => {
            let len = match resolve(user, scope, path) {
                Some(Value::Array(items)) => items.len(),
                _ => 0,
            };
            compare(Some(&Value::from(len as f64)), *op, &Lit::Num(*n))
        }
    }
}

/// Whether `user` (the full stored object) matches the filter.
pub(crate) fn matches(e: &Expr, user: &serde_json::Map<String, Value>) -> bool {
    eval_in(e, user, None)
}

// ---------------------------------------------------------------------------------------------
// Classification against the property table

/// What a filter needs.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Requirements {
    /// Advanced-query parameters needed; the error to answer if they are missing.
    pub advanced: Option<String>,
}

fn op_name(flag: u16) -> &'static str {
    match flag {
        NE => "ne",
        NOT => "not",
        ENDS => "endsWith",
        COUNT => "$count",
        STARTS => "startsWith",
        IN => "in",
        GELE => "ge",
        _ => "eq",
    }
}

fn advanced_message(flag: u16, prop: &str) -> String {
    match flag {
        NE | NOT | ENDS | COUNT => format!(
            "Operator '{}' is not supported because the required parameters might be missing. Try adding $count=true query parameter and ConsistencyLevel:eventual header. Refer to https://aka.ms/graph-docs/advanced-queries for more information",
            op_name(flag)
        ),
        _ => unsupported_property(prop),
    }
}

fn unsupported_property(prop: &str) -> String {
    format!("Unsupported or invalid query filter clause specified for property '{prop}' of resource 'User'.")
}

struct Classifier {
    strict: bool,
    req: Requirements,
}

/// The property a filter term names: its table entry and its name as errors spell it (an
/// extension property's own name, which the table's shared entry does not carry).
#[derive(Clone, Copy)]
struct Leaf<'a> {
    prop: &'static schema::Prop,
    name: &'a str,
}

impl Leaf<'_> {
    fn is_extension(&self) -> bool {
        std::ptr::eq(self.prop, &schema::EXTENSION_PROPERTY)
    }
}

impl Classifier {
    fn check(&mut self, leaf: Leaf<'_>, flag: u16) -> Result<(), GraphError> {
        let support = leaf.prop.filter;
        let default = if self.strict {
            support.default
        } else {
            support.default | support.uncertain
        };
        let advanced = support.advanced | support.uncertain;
        if default & flag != 0 {
            return Ok(());
        }
        if advanced & flag != 0 {
            if self.req.advanced.is_none() {
                self.req.advanced = Some(advanced_message(flag, leaf.name));
            }
            return Ok(());
        }
        Err(GraphError::unsupported_query(unsupported_property(
            leaf.name,
        )))
    }

    fn lookup(path: &[String]) -> Result<Leaf<'_>, GraphError> {
        let first = path.first().map(String::as_str).unwrap_or("");
        if schema::is_extension_property(first) {
            if let Some(child) = path.get(1) {
                return Err(GraphError::odata(format!(
                    "Could not find a property named '{child}' on type 'Edm.String'."
                )));
            }
            return Ok(Leaf {
                prop: &schema::EXTENSION_PROPERTY,
                name: first,
            });
        }
        let prop = schema::prop(first).ok_or_else(|| {
            GraphError::odata(format!(
                "Could not find a property named '{first}' on type 'microsoft.graph.user'."
            ))
        })?;
        if path.len() > 1 {
            let ok = match prop.kind {
                schema::Kind::ExtAttrs => {
                    path.len() == 2 && {
                        let s = path[1].to_ascii_lowercase();
                        s.strip_prefix("extensionattribute")
                            .and_then(|n| n.parse::<usize>().ok())
                            .is_some_and(|n| (1..=schema::EXTENSION_ATTRIBUTE_COUNT).contains(&n))
                    }
                }
                _ => false,
            };
            if !ok {
                return Err(GraphError::odata(format!(
                    "Could not find a property named '{}' on type '{}'.",
                    path[1],
                    if prop.kind == schema::Kind::ExtAttrs {
                        "microsoft.graph.onPremisesExtensionAttributes"
                    } else {
                        "microsoft.graph.user"
                    }
                )));
            }
        }
        Ok(Leaf {
            prop,
            name: prop.name,
        })
    }

    fn type_check(leaf: Leaf<'_>, lit: &Lit, op: &str) -> Result<(), GraphError> {
        if leaf.is_extension() {
            return Ok(());
        }
        let (expected, found) = match (leaf.prop.kind, lit) {
            (_, Lit::Null) => return Ok(()),
            (schema::Kind::Bool, Lit::Bool(_)) => return Ok(()),
            (schema::Kind::Bool, Lit::Str(_)) => ("Edm.Boolean", "Edm.String"),
            (schema::Kind::Bool, _) => ("Edm.Boolean", "Edm.Int32"),
            (schema::Kind::DateTime, Lit::Raw(_) | Lit::Num(_)) => return Ok(()),
            (schema::Kind::DateTime, Lit::Str(_)) => ("Edm.DateTimeOffset", "Edm.String"),
            (_, Lit::Bool(_)) => ("Edm.String", "Edm.Boolean"),
            _ => return Ok(()),
        };
        Err(GraphError::odata(format!(
            "A binary operator with incompatible types was detected. Found operand types '{expected}' and '{found}' for operator kind '{op}'."
        )))
    }

    fn walk<'e>(
        &mut self,
        e: &'e Expr,
        negated: bool,
        lambda: Option<(&str, Leaf<'e>)>,
    ) -> Result<(), GraphError> {
        let leaf_prop = |path: &'e [String]| -> Result<Leaf<'e>, GraphError> {
            match lambda {
                Some((var, coll)) if path.first().map(String::as_str) == Some(var) => Ok(coll),
                _ => Self::lookup(path),
            }
        };
        match e {
            Expr::And(a, b) | Expr::Or(a, b) => {
                self.walk(a, negated, lambda)?;
                self.walk(b, negated, lambda)
            }
            Expr::Not(a) => self.walk(a, true, lambda),
            Expr::Cmp(path, op, lit) => {
                let prop = leaf_prop(path)?;
                let kind_name = match op {
                    CmpOp::Eq => "Equal",
                    CmpOp::Ne => "NotEqual",
                    CmpOp::Gt => "GreaterThan",
                    CmpOp::Ge => "GreaterThanOrEqual",
                    CmpOp::Lt => "LessThan",
                    CmpOp::Le => "LessThanOrEqual",
                };
                Self::type_check(prop, lit, kind_name)?;
                let flag = match (op, lit) {
                    (CmpOp::Eq, Lit::Null) => EQNULL,
                    (CmpOp::Eq, _) => EQ,
                    (CmpOp::Ne, _) => NE,
                    (CmpOp::Ge | CmpOp::Le, _) => GELE,
                    (CmpOp::Gt | CmpOp::Lt, _) => {
                        return Err(GraphError::unsupported_query(unsupported_property(
                            prop.name,
                        )))
                    }
                };
                if lambda.is_none()
                    && matches!(
                        prop.prop.kind,
                        schema::Kind::StrList | schema::Kind::Identities
                    )
                {
                    return Err(GraphError::unsupported_query(unsupported_property(
                        prop.name,
                    )));
                }
                self.check(prop, flag)?;
                if negated {
                    self.check(prop, NOT)?;
                }
                Ok(())
            }
            Expr::In(path, list) => {
                let prop = leaf_prop(path)?;
                for l in list {
                    Self::type_check(prop, l, "In")?;
                }
                self.check(prop, IN)?;
                if list.len() > 15 && self.req.advanced.is_none() {
                    self.req.advanced = Some(unsupported_property(prop.name));
                }
                if negated {
                    self.check(prop, NOT)?;
                }
                Ok(())
            }
            Expr::Func(f, path, lit) => {
                let prop = leaf_prop(path)?;
                if !matches!(lit, Lit::Str(_)) {
                    return Err(GraphError::odata(format!(
                        "Invalid filter clause: the second argument of {} must be a string literal.",
                        if *f == Func::StartsWith { "startsWith" } else { "endsWith" }
                    )));
                }
                if matches!(prop.prop.kind, schema::Kind::Bool | schema::Kind::DateTime) {
                    return Err(GraphError::unsupported_query(unsupported_property(
                        prop.name,
                    )));
                }
                self.check(prop, if *f == Func::StartsWith { STARTS } else { ENDS })?;
                if negated {
                    self.check(prop, NOT)?;
                }
                Ok(())
            }
            Expr::Lambda {
                path, var, body, ..
            } => {
                let prop = Self::lookup(path)?;
                if !matches!(
                    prop.prop.kind,
                    schema::Kind::StrList | schema::Kind::Identities
                ) {
                    return Err(GraphError::odata(format!(
                        "Invalid filter clause: '{}' is not a collection.",
                        prop.name
                    )));
                }
                if negated {
                    self.check(prop, NOT)?;
                }
                match (var, body) {
                    (Some(var), Some(body)) => {
                        if prop.prop.kind == schema::Kind::Identities {
                            // Only `c/issuerAssignedId`, `c/issuer`, `c/signInType` comparisons.
                            self.walk_identities(body, var)?;
                            return Ok(());
                        }
                        self.walk(body, false, Some((var.as_str(), prop)))
                    }
                    _ => self.check(prop, COUNT),
                }
            }
            Expr::Count(path, _, _) => {
                let prop = Self::lookup(path)?;
                self.check(prop, COUNT)
            }
        }
    }

    fn walk_identities(&mut self, e: &Expr, var: &str) -> Result<(), GraphError> {
        match e {
            Expr::And(a, b) => {
                self.walk_identities(a, var)?;
                self.walk_identities(b, var)
            }
            Expr::Cmp(path, CmpOp::Eq, Lit::Str(_))
                if path.len() == 2
                    && path[0] == var
                    && ["issuerAssignedId", "issuer", "signInType"]
                        .iter()
                        .any(|k| k.eq_ignore_ascii_case(&path[1])) =>
            {
                Ok(())
            }
            _ => Err(GraphError::unsupported_query(unsupported_property(
                "identities",
            ))),
        }
    }
}

/// Checks a parsed filter against the property table: unknown properties and unsupported
/// operators are errors; the result says whether advanced-query parameters are needed.
pub(crate) fn classify(e: &Expr, strict: bool) -> Result<Requirements, GraphError> {
    let mut c = Classifier {
        strict,
        req: Requirements::default(),
    };
    c.walk(e, false, None)?;
    Ok(c.req)
}

/// A lookup key an index can answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum IndexKey {
    Id(String),
    Upn(String),
    ImmutableId(String),
}

/// If every match must satisfy an `id`/`userPrincipalName`/`onPremisesImmutableId` `eq`/`in` term, the keys that
/// bound the result (the full filter is still evaluated on the candidates).
pub(crate) fn index_keys(e: &Expr) -> Option<Vec<IndexKey>> {
    let key = |path: &[String], lit: &Lit| -> Option<IndexKey> {
        let Lit::Str(v) = lit else { return None };
        match path {
            [p] if p.eq_ignore_ascii_case("id") => Some(IndexKey::Id(v.clone())),
            [p] if p.eq_ignore_ascii_case("userPrincipalName") => Some(IndexKey::Upn(v.clone())),
            [p] if p.eq_ignore_ascii_case("onPremisesImmutableId") => {
                Some(IndexKey::ImmutableId(v.clone()))
            }
            _ => None,
        }
    };
    match e {
        Expr::Cmp(path, CmpOp::Eq, lit) => key(path, lit).map(|k| vec![k]),
        Expr::In(path, list) => list.iter().map(|l| key(path, l)).collect(),
        Expr::And(a, b) => index_keys(a).or_else(|| index_keys(b)),
        Expr::Or(a, b) => {
            let mut keys = index_keys(a)?;
            keys.extend(index_keys(b)?);
            Some(keys)
        }
        _ => None,
    }
}

/// For delta: the filter must be `id eq '…'` terms joined by `or` (≤ 50). Returns the ids.
pub(crate) fn delta_ids(e: &Expr) -> Option<Vec<String>> {
    match e {
        Expr::Or(a, b) => {
            let mut ids = delta_ids(a)?;
            ids.extend(delta_ids(b)?);
            Some(ids)
        }
        Expr::Cmp(path, CmpOp::Eq, Lit::Str(id) | Lit::Raw(id))
            if path.len() == 1 && path[0].eq_ignore_ascii_case("id") =>
        {
            Some(vec![id.to_lowercase()])
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user() -> serde_json::Map<String, Value> {
        json!({
            "displayName": "O'Brien, Pat",
            "userType": "Guest",
            "accountEnabled": true,
            "mail": "pat@Fabrikam.com",
            "companyName": null,
            "otherMails": ["a@x.com", "pat@fabrikam.com"],
            "identities": [{"signInType": "userPrincipalName", "issuer": "contoso.com", "issuerAssignedId": "p@contoso.com"}],
            "onPremisesExtensionAttributes": {"extensionAttribute1": "partner-sync"},
            "createdDateTime": "2024-05-01T10:00:00Z"
        })
        .as_object()
        .cloned()
        .unwrap_or_default()
    }

    fn eval(f: &str) -> bool {
        let e = parse(f).unwrap_or_else(|e| panic!("{f}: {e:?}"));
        matches(&e, &user())
    }

    #[test]
    fn evaluates_the_needed_grammar() {
        assert!(eval("userType eq 'guest'"));
        assert!(eval("displayName eq 'O''Brien, Pat'"));
        assert!(eval("startsWith(displayName,'o''b')"));
        assert!(eval("endswith(mail,'@fabrikam.com')"));
        assert!(eval("accountEnabled eq true and not(userType eq 'Member')"));
        assert!(eval("userType in ('Member', 'Guest')"));
        assert!(eval("companyName eq null"));
        assert!(!eval("companyName ne null"));
        assert!(eval(
            "onPremisesExtensionAttributes/extensionAttribute1 eq 'PARTNER-SYNC'"
        ));
        assert!(eval("otherMails/any(x:x eq 'pat@fabrikam.com')"));
        assert!(eval(
            "identities/any(c:c/issuerAssignedId eq 'p@contoso.com' and c/issuer eq 'contoso.com')"
        ));
        assert!(eval("otherMails/$count eq 2"));
        assert!(eval("createdDateTime ge 2024-01-01T00:00:00Z"));
        assert!(eval(
            "(userType eq 'Member' or userType eq 'Guest') and accountEnabled eq true"
        ));
    }

    #[test]
    fn rejects_bad_syntax() {
        for f in [
            "displayName eq",
            "startswith(displayName",
            "userType eq 'x",
            "a eq 'b' and",
            "((a eq 'b')",
            "x ~ 1",
        ] {
            let e = parse(f).err().unwrap_or_else(|| panic!("{f} parsed"));
            assert_eq!(e.code, "BadRequest", "{f}");
        }
        // Deep nesting of any kind is an error, not a stack overflow.
        let nots = format!("{}userType eq 'x'", "not ".repeat(50_000));
        assert!(parse(&nots).is_err());
        let parens = format!(
            "{}userType eq 'x'{}",
            "(".repeat(50_000),
            ")".repeat(50_000)
        );
        assert!(parse(&parens).is_err());
        let lambdas = format!(
            "{}x eq 'a'{}",
            "otherMails/any(x:".repeat(50_000),
            ")".repeat(50_000)
        );
        assert!(parse(&lambdas).is_err());
    }

    proptest::proptest! {
        /// Arbitrary input never panics the parser, the classifier or the evaluator.
        #[test]
        fn never_panics(input in "\\PC{0,80}") {
            if let Ok(e) = parse(&input) {
                let _ = classify(&e, true);
                let _ = matches(&e, &user());
                let _ = index_keys(&e);
                let _ = delta_ids(&e);
            }
        }

        /// Inputs built from the grammar's own tokens reach deeper paths.
        #[test]
        fn never_panics_on_token_soup(tokens in proptest::collection::vec(proptest::sample::select(vec![
            "displayName", "userType", "otherMails", "identities", "c", "x", "/", "any(", "all(", "c:", "x:",
            "(", ")", ",", " eq ", " ne ", " ge ", " in ", " and ", " or ", "not ", "startswith(", "endsWith(",
            "'a'", "''", "null", "true", "42", "2024-01-01T00:00:00Z", "$count", "c/issuer", "onPremisesExtensionAttributes/extensionAttribute1",
        ]), 0..24)) {
            let input: String = tokens.concat();
            if let Ok(e) = parse(&input) {
                let _ = classify(&e, false);
                let _ = matches(&e, &user());
            }
        }
    }

    #[test]
    fn classifies_advanced_queries() {
        let need = |f: &str| classify(&parse(f).unwrap_or_else(|e| panic!("{e:?}")), true);
        assert_eq!(
            need("userType eq 'Guest'").map(|r| r.advanced.is_some()),
            Ok(false)
        );
        assert!(need("endsWith(mail,'@x.com')").is_ok_and(|r| r
            .advanced
            .is_some_and(|m| m.starts_with("Operator 'endsWith'"))));
        assert!(need("userType ne 'Guest'").is_ok_and(|r| r.advanced.is_some()));
        assert!(need("companyName eq 'Fabrikam'").is_ok_and(|r| r.advanced.is_some()));
        assert!(
            need("onPremisesExtensionAttributes/extensionAttribute1 eq 'a'")
                .is_ok_and(|r| r.advanced.is_some())
        );
        assert!(need("endsWith(displayName,'x')").is_err());
        assert!(need("nosuch eq 'x'").is_err_and(|e| e.code == "BadRequest"));
        assert!(need("accountEnabled eq 'true'")
            .is_err_and(|e| e.message.contains("incompatible types")));
        let lenient = classify(
            &parse("onPremisesImmutableId eq 'x'").unwrap_or_else(|e| panic!("{e:?}")),
            false,
        );
        assert_eq!(lenient.map(|r| r.advanced.is_some()), Ok(false));
    }

    #[test]
    fn classifies_extension_properties() {
        const EXT: &str = "extension_0b9e4f3a7c214d8eb5a62f1e9c8d7b64_partnerAnchor";
        let need = |f: &str, strict: bool| {
            classify(&parse(f).unwrap_or_else(|e| panic!("{e:?}")), strict)
                .map(|r| r.advanced.is_some())
        };
        assert_eq!(need(&format!("{EXT} eq 'a'"), true), Ok(false));
        assert_eq!(need(&format!("{EXT} in ('a', 'b')"), true), Ok(false));
        assert_eq!(need(&format!("{EXT} ne null"), true), Ok(true));
        assert_eq!(need(&format!("{EXT} eq null"), true), Ok(true));
        assert_eq!(need(&format!("not({EXT} eq 'a')"), true), Ok(true));
        assert_eq!(need(&format!("startsWith({EXT}, 'a')"), true), Ok(true));
        assert_eq!(need(&format!("startsWith({EXT}, 'a')"), false), Ok(false));
        // Its data type is unknown here, so Boolean and number literals pass.
        assert_eq!(need(&format!("{EXT} eq true"), true), Ok(false));
        assert!(need(&format!("{EXT} gt 'a'"), true).is_err());
        assert!(need(&format!("endsWith({EXT}, 'a')"), true).is_err());
        assert!(need(&format!("{EXT}/x eq 'a'"), true).is_err());
        // The error names the property itself.
        let e = classify(
            &parse(&format!("{EXT} gt 'a'")).unwrap_or_else(|e| panic!("{e:?}")),
            true,
        );
        assert!(e.is_err_and(|e| e.message.contains(EXT)));
    }

    #[test]
    fn evaluates_extension_properties() {
        const EXT: &str = "extension_0b9e4f3a7c214d8eb5a62f1e9c8d7b64_partnerAnchor";
        let mut bound = user();
        bound.insert(EXT.into(), json!("QW5hQW5jaG9y"));
        let test = |f: &str, u: &serde_json::Map<String, Value>| {
            matches(&parse(f).unwrap_or_else(|e| panic!("{e:?}")), u)
        };
        assert!(test(&format!("{EXT} ne null"), &bound));
        assert!(!test(&format!("{EXT} ne null"), &user()));
        assert!(test(&format!("{EXT} eq null"), &user()));
        assert!(test(&format!("{EXT} eq 'qw5hqw5jag9y'"), &bound));
        // Property names match without regard to case, as Graph's do.
        assert!(test(&format!("{} ne null", EXT.to_lowercase()), &bound));
    }
}
