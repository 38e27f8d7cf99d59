//! Lexer and parser for both dialects, with diagnostics that point at the text.

use std::fmt;

use crate::ast::{BinOp, Call, EnumWord, Expr, Special};
use crate::functions;
use crate::Dialect;

/// The longest expression accepted, as the provisioning service documents (10,000
/// characters); applied to both dialects so a runaway paste fails early and clearly.
pub const MAX_EXPRESSION_CHARS: usize = 10_000;

/// How deeply calls and parentheses may nest before the parser refuses (keeps the
/// recursive parser and evaluator far from the stack limit on any input).
pub const MAX_DEPTH: usize = 64;

/// A syntax or arity error, with the position and the text it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// What is wrong.
    pub message: String,
    /// 1-based line of the problem.
    pub line: usize,
    /// 1-based column (in characters) of the problem.
    pub column: usize,
    /// How many characters the caret should underline (at least 1).
    pub width: usize,
    /// The text of the offending line.
    pub source_line: String,
    /// A suggestion, such as the nearest function name.
    pub help: Option<String>,
}

impl ParseError {
    pub(crate) fn at(src: &str, start: usize, end: usize, message: impl Into<String>) -> Self {
        let start = floor_char_boundary(src, start.min(src.len()));
        let end = floor_char_boundary(src, end.clamp(start, src.len()));
        let before = &src[..start];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let line_end = src[start..].find('\n').map_or(src.len(), |i| start + i);
        let column = src[line_start..start].chars().count() + 1;
        let width = src[start..end.min(line_end).max(start)]
            .chars()
            .count()
            .max(1);
        ParseError {
            message: message.into(),
            line,
            column,
            width,
            source_line: src[line_start..line_end].trim_end_matches('\r').to_string(),
            help: None,
        }
    }

    pub(crate) fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

impl fmt::Display for ParseError {
    /// Renders like a compiler diagnostic:
    ///
    /// ```text
    /// unknown function 'Lcase' at line 1, column 5
    ///   |
    /// 1 | IIF(Lcase([upn]) = "x", "Guest", "Member")
    ///   |     ^^^^^
    ///   = help: function names are case-sensitive: did you mean 'LCase'?
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let num = self.line.to_string();
        let pad = " ".repeat(num.len());
        writeln!(
            f,
            "{} at line {}, column {}",
            self.message, self.line, self.column
        )?;
        writeln!(f, "{pad} |")?;
        writeln!(f, "{num} | {}", self.source_line.replace('\t', " "))?;
        write!(
            f,
            "{pad} | {}{}",
            " ".repeat(self.column.saturating_sub(1)),
            "^".repeat(self.width)
        )?;
        if let Some(help) = &self.help {
            write!(f, "\n{pad} = help: {help}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ParseError {}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Attr(String),
    Str(String),
    Num(i64),
    Ident(String),
    Param(String),
    Var(String),
    LParen,
    RParen,
    Comma,
    Op(BinOp),
    Eof,
}

struct Lexer<'s> {
    src: &'s str,
    pos: usize,
}

impl<'s> Lexer<'s> {
    fn peek_char(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    fn err(&self, start: usize, end: usize, msg: impl Into<String>) -> ParseError {
        ParseError::at(self.src, start, end, msg)
    }

    /// Returns the next token and its byte span.
    fn next(&mut self) -> Result<(Tok, usize, usize), ParseError> {
        while let Some(c) = self.peek_char() {
            if c.is_whitespace() {
                self.pos += c.len_utf8();
            } else {
                break;
            }
        }
        let start = self.pos;
        let Some(c) = self.peek_char() else {
            return Ok((Tok::Eof, start, start));
        };
        let rest = &self.src[self.pos..];
        let simple = |tok: Tok, len: usize, me: &mut Self| {
            me.pos += len;
            Ok((tok, start, start + len))
        };
        match c {
            '(' => simple(Tok::LParen, 1, self),
            ')' => simple(Tok::RParen, 1, self),
            ',' => simple(Tok::Comma, 1, self),
            '+' => simple(Tok::Op(BinOp::Add), 1, self),
            '-' => simple(Tok::Op(BinOp::Sub), 1, self),
            '*' => simple(Tok::Op(BinOp::Mul), 1, self),
            '/' => simple(Tok::Op(BinOp::Div), 1, self),
            '=' => {
                if rest.starts_with("==") {
                    Err(self.err(start, start + 2, "'==' is not an operator").help(
                        "comparison is a single '=' in both dialects: [a] = \"x\"",
                    ))
                } else {
                    simple(Tok::Op(BinOp::Eq), 1, self)
                }
            }
            '<' => {
                if rest.starts_with("<>") {
                    simple(Tok::Op(BinOp::Ne), 2, self)
                } else if rest.starts_with("<=") {
                    simple(Tok::Op(BinOp::Le), 2, self)
                } else {
                    simple(Tok::Op(BinOp::Lt), 1, self)
                }
            }
            '>' => {
                if rest.starts_with(">=") {
                    simple(Tok::Op(BinOp::Ge), 2, self)
                } else {
                    simple(Tok::Op(BinOp::Gt), 1, self)
                }
            }
            '|' => {
                if rest.starts_with("||") {
                    simple(Tok::Op(BinOp::Or), 2, self)
                } else {
                    Err(self.err(start, start + 1, "a single '|' is not an operator")
                        .help("logical or is written '||'"))
                }
            }
            '!' => Err(self.err(start, start + 1, "'!' is not an operator").help(
                "write '<>' for 'not equal', or compare with False: IsPresent([x]) = False",
            )),
            '&' => {
                if rest.starts_with("&&") {
                    return simple(Tok::Op(BinOp::And), 2, self);
                }
                if let Some(hex) = rest.strip_prefix("&H").or_else(|| rest.strip_prefix("&h")) {
                    let digits = hex.chars().take_while(|c| c.is_ascii_hexdigit()).count();
                    let after = hex[digits..].chars().next();
                    if digits > 0 && !after.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                        let end = start + 2 + digits;
                        let value = u64::from_str_radix(&hex[..digits], 16).map_err(|_| {
                            self.err(start, end, "hexadecimal number too large for 64 bits")
                        })?;
                        self.pos = end;
                        // &HFFFFFFFFFFFFFFFF is -1, as in VB.
                        return Ok((Tok::Num(value as i64), start, end));
                    }
                }
                simple(Tok::Op(BinOp::Concat), 1, self)
            }
            '[' => {
                let Some(close) = rest.find(']') else {
                    return Err(self.err(start, self.src.len(), "attribute reference has no closing ']'"));
                };
                let name = rest[1..close].trim();
                if name.is_empty() {
                    return Err(self.err(start, start + close + 1, "empty attribute name '[]'"));
                }
                if let Some(bad) = name.find(['[', '\n', '"']) {
                    return Err(self.err(start + 1 + bad, start + 2 + bad,
                        "unexpected character in an attribute name").help("attribute references look like [userPrincipalName]"));
                }
                let name = name.to_string();
                simple(Tok::Attr(name), close + 1, self)
            }
            '%' => {
                let body = &rest[1..];
                match body.find('%') {
                    Some(close)
                        if close > 0
                            && body[..close]
                                .chars()
                                .all(|c| c.is_alphanumeric() || c == '.' || c == '_' || c == '-') =>
                    {
                        let name = body[..close].to_string();
                        simple(Tok::Param(name), close + 2, self)
                    }
                    _ => Err(self.err(start, start + 1, "a parameter must look like %Domain.FQDN%")),
                }
            }
            '$' => {
                let len = rest[1..]
                    .char_indices()
                    .find(|(_, c)| !(c.is_alphanumeric() || *c == '_'))
                    .map_or(rest.len() - 1, |(i, _)| i);
                if len == 0 {
                    return Err(self.err(start, start + 1, "a variable needs a name, such as $item"));
                }
                let name = rest[1..1 + len].to_string();
                simple(Tok::Var(name), len + 1, self)
            }
            '"' => self.string(start),
            '\'' => Err(self.err(start, start + 1, "strings are written in double quotes")
                .help("replace the single quotes with straight double quotes: \"text\"")),
            '\u{201C}' | '\u{201D}' | '\u{2018}' | '\u{2019}' | '\u{201E}' => Err(self
                .err(start, start + c.len_utf8(), "typographic (smart) quote")
                .help("replace it with a straight double quote \" (editors and web pages often turn quotes into smart quotes)")),
            c if c.is_ascii_digit() => {
                let len = rest.chars().take_while(|c| c.is_ascii_digit()).count();
                let after = rest[len..].chars().next();
                if after.is_some_and(|c| c.is_alphabetic() || c == '_' || c == '.') {
                    let bad = start + len;
                    return Err(self.err(start, bad + 1, "malformed number").help(
                        "numbers are whole decimal numbers like 42 or hexadecimal like &H2A",
                    ));
                }
                let value = rest[..len].parse::<i64>().map_err(|_| {
                    self.err(start, start + len, "number too large for 64 bits")
                })?;
                simple(Tok::Num(value), len, self)
            }
            c if c.is_alphabetic() || c == '_' => {
                let len = rest
                    .char_indices()
                    .find(|(_, c)| !(c.is_alphanumeric() || *c == '_'))
                    .map_or(rest.len(), |(i, _)| i);
                let word = rest[..len].to_string();
                simple(Tok::Ident(word), len, self)
            }
            other => Err(self.err(start, start + other.len_utf8(), format!("unexpected character '{other}'"))),
        }
    }

    /// A double-quoted string. `\\` and `\"` are escapes in both dialects; any other
    /// backslash is kept as written, so `"\d+"` and `"\r\n"` reach Replace and regexes
    /// unchanged.
    fn string(&mut self, start: usize) -> Result<(Tok, usize, usize), ParseError> {
        let mut out = String::new();
        let mut chars = self.src[start + 1..].char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    let end = start + 1 + i + 1;
                    self.pos = end;
                    return Ok((Tok::Str(out), start, end));
                }
                '\\' => match chars.next() {
                    Some((_, '"')) => out.push('"'),
                    Some((_, '\\')) => out.push('\\'),
                    Some((_, other)) => {
                        out.push('\\');
                        out.push(other);
                    }
                    None => break,
                },
                c => out.push(c),
            }
        }
        Err(self
            .err(start, self.src.len(), "string is not closed")
            .help("add the closing double quote \""))
    }
}

/// Parses `src` in `dialect` into an expression, checking every function name and arity.
pub fn parse(src: &str, dialect: Dialect) -> Result<Expr, ParseError> {
    if src.chars().count() > MAX_EXPRESSION_CHARS {
        return Err(ParseError::at(
            src,
            0,
            0,
            format!("expression is longer than {MAX_EXPRESSION_CHARS} characters"),
        ));
    }
    let mut p = Parser {
        lex: Lexer { src, pos: 0 },
        dialect,
        tok: Tok::Eof,
        start: 0,
        end: 0,
        depth: 0,
    };
    p.advance()?;
    if p.tok == Tok::Eof {
        return Err(ParseError::at(src, 0, 0, "the expression is empty"));
    }
    let e = p.expr()?;
    if p.tok != Tok::Eof {
        let msg = match p.tok {
            Tok::RParen => "unbalanced ')': there is no '(' to close".to_string(),
            _ => format!(
                "unexpected {} after the end of the expression",
                p.describe()
            ),
        };
        let help = if p.dialect == Dialect::Provisioning
            && matches!(p.tok, Tok::Ident(ref w) if w.eq_ignore_ascii_case("and") || w.eq_ignore_ascii_case("or"))
        {
            Some("the provisioning dialect has no AND/OR: nest IIF calls instead (AND down the true branch, OR down the false branch)")
        } else {
            None
        };
        let err = p.error(msg);
        return Err(match help {
            Some(h) => err.help(h),
            None => err,
        });
    }
    Ok(e)
}

struct Parser<'s> {
    lex: Lexer<'s>,
    dialect: Dialect,
    tok: Tok,
    start: usize,
    end: usize,
    depth: usize,
}

impl Parser<'_> {
    fn advance(&mut self) -> Result<(), ParseError> {
        let (tok, start, end) = self.lex.next()?;
        self.tok = tok;
        self.start = start;
        self.end = end;
        Ok(())
    }

    fn error(&self, msg: impl Into<String>) -> ParseError {
        ParseError::at(self.lex.src, self.start, self.end.max(self.start + 1), msg)
    }

    fn describe(&self) -> String {
        match &self.tok {
            Tok::Attr(a) => format!("attribute [{a}]"),
            Tok::Str(_) => "string".into(),
            Tok::Num(n) => format!("number {n}"),
            Tok::Ident(w) => format!("'{w}'"),
            Tok::Param(p) => format!("parameter %{p}%"),
            Tok::Var(v) => format!("variable ${v}"),
            Tok::LParen => "'('".into(),
            Tok::RParen => "')'".into(),
            Tok::Comma => "','".into(),
            Tok::Op(op) => format!("operator '{op}'"),
            Tok::Eof => "end of expression".into(),
        }
    }

    fn expr(&mut self) -> Result<Expr, ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error(format!(
                "expression nests more than {MAX_DEPTH} levels deep"
            )));
        }
        let e = self.binary(1);
        self.depth -= 1;
        e
    }

    /// Precedence climbing over the tiers of [`BinOp::tier`]; left-associative within a
    /// tier. Comparisons do not chain (`a = b = c` is an error).
    fn binary(&mut self, min_tier: u8) -> Result<Expr, ParseError> {
        let mut lhs = self.unary()?;
        while let Tok::Op(op) = self.tok {
            if op.tier() < min_tier {
                break;
            }
            self.check_operator(op)?;
            let (op_start, op_end) = (self.start, self.end);
            self.advance()?;
            let rhs = self.binary(op.tier() + 1)?;
            if op.tier() == 2 {
                if let Tok::Op(next) = self.tok {
                    if next.tier() == 2 {
                        return Err(ParseError::at(
                            self.lex.src,
                            self.start,
                            self.end,
                            "comparisons cannot be chained",
                        )
                        .help("combine comparisons with && or ||, each in parentheses"));
                    }
                }
            }
            let _ = (op_start, op_end);
            lhs = Expr::Binary(op, Box::new(lhs), Box::new(rhs));
        }
        Ok(lhs)
    }

    fn check_operator(&self, op: BinOp) -> Result<(), ParseError> {
        if self.dialect == Dialect::AadConnect {
            return Ok(());
        }
        match op {
            BinOp::And | BinOp::Or => Err(self.error(format!("'{op}' is not supported in the provisioning dialect"))
                .help("nest IIF calls instead: AND down the true branch, OR down the false branch")),
            BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div => Err(self.error(format!("arithmetic ('{op}') is not part of the provisioning dialect"))
                .help("the provisioning dialect only has comparisons inside IIF; use the aadconnect dialect for arithmetic")),
            _ => Ok(()),
        }
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        if self.tok == Tok::Op(BinOp::Sub) {
            self.advance()?;
            self.depth += 1;
            if self.depth > MAX_DEPTH {
                return Err(self.error(format!(
                    "expression nests more than {MAX_DEPTH} levels deep"
                )));
            }
            let inner = self.unary()?;
            self.depth -= 1;
            return Ok(Expr::Neg(Box::new(inner)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr, ParseError> {
        let tok = std::mem::replace(&mut self.tok, Tok::Eof);
        let (start, end) = (self.start, self.end);
        match tok {
            Tok::Attr(name) => {
                self.advance()?;
                Ok(Expr::Attr(crate::ast::AttrRef {
                    name: name.into(),
                    position: crate::ast::Position::Passthrough,
                }))
            }
            Tok::Str(s) => {
                self.advance()?;
                Ok(Expr::Str(s.into()))
            }
            Tok::Num(n) => {
                self.advance()?;
                Ok(Expr::Num(n))
            }
            Tok::Param(p) => {
                if self.dialect == Dialect::Provisioning {
                    self.tok = Tok::Param(p);
                    return Err(
                        self.error("parameters (%Name%) are part of the aadconnect dialect only")
                    );
                }
                self.advance()?;
                Ok(Expr::Param(p.into()))
            }
            Tok::Var(v) => {
                if self.dialect == Dialect::Provisioning {
                    self.tok = Tok::Var(v);
                    return Err(self.error("variables ($name) are part of the aadconnect dialect only (Select, Where, With)"));
                }
                self.advance()?;
                Ok(Expr::Var(v.into()))
            }
            Tok::LParen => {
                self.advance()?;
                let e = self.expr()?;
                if self.tok != Tok::RParen {
                    return Err(self.error(format!(
                        "expected ')' to close the '(' at column {}, found {}",
                        ParseError::at(self.lex.src, start, end, "").column,
                        self.describe()
                    )));
                }
                self.advance()?;
                Ok(e)
            }
            Tok::Ident(word) => {
                self.advance()?;
                if self.tok == Tok::LParen {
                    return self.call(word, start, end);
                }
                self.word(word, start, end)
            }
            other => {
                self.tok = other;
                let what = self.describe();
                let err = self.error(format!("expected a value, found {what}"));
                Err(match self.tok {
                    Tok::Eof => {
                        err.help("the expression ends too early: is an argument or ')' missing?")
                    }
                    Tok::Comma if self.dialect == Dialect::AadConnect => {
                        err.help("empty arguments exist only in the provisioning dialect")
                    }
                    _ => err,
                })
            }
        }
    }

    /// A bare word: a constant, an enumeration word, or a mistake worth explaining.
    fn word(&mut self, word: String, start: usize, end: usize) -> Result<Expr, ParseError> {
        let connect = self.dialect == Dialect::AadConnect;
        let special = match word.as_str() {
            "True" => return Ok(Expr::Bool(true)),
            "False" => return Ok(Expr::Bool(false)),
            "NULL" if connect => Some(Special::Null),
            "AuthoritativeNull" if connect => Some(Special::AuthoritativeNull),
            "IgnoreThisFlow" if connect => Some(Special::IgnoreThisFlow),
            "CRLF" if connect => Some(Special::Crlf),
            _ => None,
        };
        if let Some(s) = special {
            return Ok(Expr::Special(s));
        }
        if let Some(e) = EnumWord::from_word(&word) {
            return Ok(Expr::Enum(e));
        }
        let err = ParseError::at(self.lex.src, start, end, format!("unknown name '{word}'"));
        let known = [
            "True",
            "False",
            "NULL",
            "AuthoritativeNull",
            "IgnoreThisFlow",
            "CRLF",
        ];
        if let Some(k) = known.iter().find(|k| k.eq_ignore_ascii_case(&word)) {
            if connect || *k == "True" || *k == "False" {
                return Err(err.help(format!("names are case-sensitive: did you mean '{k}'?")));
            }
            return Err(err.help(format!("'{k}' exists only in the aadconnect dialect")));
        }
        if ["and", "or", "not", "mod"].contains(&word.to_ascii_lowercase().as_str()) {
            return Err(err.help("use && and || for and/or, and '= False' or '<>' for negation"));
        }
        if functions::lookup(self.dialect, &word).is_some() {
            return Err(err.help(format!(
                "'{word}' is a function: call it with parentheses, {word}(...)"
            )));
        }
        Err(err.help(format!(
            "attribute references need brackets: [{word}]; strings need double quotes: \"{word}\""
        )))
    }

    fn call(&mut self, name: String, start: usize, end: usize) -> Result<Expr, ParseError> {
        let Some(sig) = functions::lookup(self.dialect, &name) else {
            let err = ParseError::at(
                self.lex.src,
                start,
                end,
                format!("unknown function '{name}' in the {} dialect", self.dialect),
            );
            return Err(match functions::suggest(self.dialect, &name) {
                Some(help) => err.help(help),
                None => err,
            });
        };
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error(format!(
                "expression nests more than {MAX_DEPTH} levels deep"
            )));
        }
        self.advance()?; // '('
        let mut args: Vec<Option<Expr>> = Vec::new();
        if self.tok == Tok::RParen {
            self.advance()?;
        } else {
            loop {
                if matches!(self.tok, Tok::Comma | Tok::RParen) {
                    if self.dialect == Dialect::AadConnect {
                        return Err(self
                            .error(format!("missing argument to {name}"))
                            .help("empty arguments exist only in the provisioning dialect"));
                    }
                    args.push(None);
                } else {
                    args.push(Some(self.expr()?));
                }
                match self.tok {
                    Tok::Comma => self.advance()?,
                    Tok::RParen => {
                        self.advance()?;
                        break;
                    }
                    _ => {
                        return Err(self.error(format!(
                            "expected ',' or ')' in the arguments of {name}, found {}",
                            self.describe()
                        )));
                    }
                }
            }
        }
        self.depth -= 1;
        let call_end = self.lex.pos.min(self.start);
        let call = Call {
            func: sig.func,
            name: sig.name,
            args,
            cache: None,
            lifts: Vec::new(),
        };
        functions::check_call(self.dialect, sig, &call).map_err(|(msg, help)| {
            let e = ParseError::at(self.lex.src, start, end.max(call_end.min(end)), msg);
            match help {
                Some(h) => e.help(h),
                None => e,
            }
        })?;
        let call = functions::precompute(self.dialect, call)
            .map_err(|msg| ParseError::at(self.lex.src, start, end, msg))?;
        Ok(Expr::Call(call))
    }
}

/// Levenshtein distance between two short strings (for "did you mean").
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(!ca.eq_ignore_ascii_case(cb));
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}
