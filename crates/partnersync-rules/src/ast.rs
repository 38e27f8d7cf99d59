//! The one syntax tree both dialects parse into.

use std::fmt;
use std::sync::Arc;

use crate::functions::Func;

/// An expression of either dialect.
///
/// Both parsers produce this tree and one evaluator runs it; the dialect only changes how
/// text is read and printed and which functions exist. Equality ignores precompiled caches.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A string literal.
    Str(Box<str>),
    /// An integer literal (decimal or Connect's `&H` hexadecimal).
    Num(i64),
    /// `True` or `False`.
    Bool(bool),
    /// `NULL`, `AuthoritativeNull`, `IgnoreThisFlow` or `CRLF`.
    Special(Special),
    /// A bare enumeration word such as `vbTextCompare` or `UTF8`.
    Enum(EnumWord),
    /// `[attributeName]`.
    Attr(AttrRef),
    /// `%Parameter.Name%` (Connect).
    Param(Box<str>),
    /// `$name` (Connect's `Select`, `Where`, `With`).
    Var(Box<str>),
    /// A function call. `None` arguments are the provisioning dialect's empty arguments.
    Call(Call),
    /// A binary operator.
    Binary(BinOp, Box<Expr>, Box<Expr>),
    /// Unary minus.
    Neg(Box<Expr>),
}

/// A reference to an attribute of the entry being evaluated.
#[derive(Debug, Clone)]
pub struct AttrRef {
    /// The name as written between the brackets.
    pub name: Box<str>,
    /// Where the reference sits, which decides how a multi-valued attribute behaves
    /// (Connect's per-value lifting, expressions.md §1.6). Set by the compiler.
    pub position: Position,
}

/// Where an attribute reference sits in an expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// Where one value is expected (`Trim([x])`, `[x] = "a"`): a multi-valued attribute
    /// here makes the whole expression run once per value.
    Scalar,
    /// Where a value passes through unchanged (the top level, `IIF`'s branches): sees one
    /// value while the expression runs per value, the whole set otherwise.
    Passthrough,
    /// Where the whole set is expected (`Count`, `Join`, `Item`, `IsPresent`).
    Whole,
}

impl PartialEq for AttrRef {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

/// A function call.
#[derive(Debug, Clone)]
pub struct Call {
    /// The function.
    pub func: Func,
    /// Its name as the dialect's table spells it (kept so messages need no lookup).
    pub name: &'static str,
    /// The arguments; `None` is an empty (omitted) argument.
    pub args: Vec<Option<Expr>>,
    /// Work done once at compile time (a regex, a ReplaceChars table).
    pub(crate) cache: Option<Arc<Precomputed>>,
    /// For arguments that take a whole set of values: the attributes used inside them
    /// where one value is expected, so the argument runs once per value of such an
    /// attribute (`RemoveDuplicates(Trim([proxyAddresses]))`).
    pub(crate) lifts: Vec<(usize, Box<[Box<str>]>)>,
}

impl PartialEq for Call {
    fn eq(&self, other: &Self) -> bool {
        self.func == other.func && self.args == other.args
    }
}

/// Constant work hoisted out of evaluation.
#[derive(Debug)]
pub(crate) enum Precomputed {
    /// A literal InStr needle, ready for a fast search.
    Finder(Box<memchr::memmem::Finder<'static>>),
    Regex(regex::Regex),
    CharTable(Vec<(char, String)>),
}

/// Connect's special literals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Special {
    /// `NULL`: contributes nothing.
    Null,
    /// `AuthoritativeNull`: clears the attribute and beats lower-precedence rules.
    AuthoritativeNull,
    /// `IgnoreThisFlow`: as if the flow did not exist.
    IgnoreThisFlow,
    /// `CRLF`: carriage return + line feed.
    Crlf,
}

impl Special {
    /// The keyword as written.
    pub fn keyword(self) -> &'static str {
        match self {
            Special::Null => "NULL",
            Special::AuthoritativeNull => "AuthoritativeNull",
            Special::IgnoreThisFlow => "IgnoreThisFlow",
            Special::Crlf => "CRLF",
        }
    }
}

/// Bare enumeration words some functions take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnumWord {
    /// `vbTextCompare`: case-insensitive comparison.
    VbTextCompare,
    /// `vbBinaryCompare`: case-sensitive comparison.
    VbBinaryCompare,
    /// `CaseSensitive` (Contains).
    CaseSensitive,
    /// `CaseInsensitive` (Contains).
    CaseInsensitive,
    /// `UTF8` (ConvertFromBase64).
    Utf8,
    /// `ASCII` (ConvertFromBase64).
    Ascii,
    /// `Unicode` (ConvertFromBase64): UTF-16LE.
    Unicode,
    /// `DC` (DNComponentRev's option, also accepted unquoted).
    Dc,
}

impl EnumWord {
    /// Every enumeration word.
    pub const ALL: [EnumWord; 8] = [
        EnumWord::VbTextCompare,
        EnumWord::VbBinaryCompare,
        EnumWord::CaseSensitive,
        EnumWord::CaseInsensitive,
        EnumWord::Utf8,
        EnumWord::Ascii,
        EnumWord::Unicode,
        EnumWord::Dc,
    ];

    /// The word as written.
    pub fn word(self) -> &'static str {
        match self {
            EnumWord::VbTextCompare => "vbTextCompare",
            EnumWord::VbBinaryCompare => "vbBinaryCompare",
            EnumWord::CaseSensitive => "CaseSensitive",
            EnumWord::CaseInsensitive => "CaseInsensitive",
            EnumWord::Utf8 => "UTF8",
            EnumWord::Ascii => "ASCII",
            EnumWord::Unicode => "Unicode",
            EnumWord::Dc => "DC",
        }
    }

    /// The word for `text` (exact spelling).
    pub fn from_word(text: &str) -> Option<Self> {
        EnumWord::ALL.into_iter().find(|w| w.word() == text)
    }
}

/// Binary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `&` (string concatenation)
    Concat,
    /// `=`
    Eq,
    /// `<>`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `&&`
    And,
    /// `||`
    Or,
}

impl BinOp {
    /// The operator as written.
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Concat => "&",
            BinOp::Eq => "=",
            BinOp::Ne => "<>",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::And => "&&",
            BinOp::Or => "||",
        }
    }

    /// Binding tier: higher binds tighter. Within a tier operators run left to right, as
    /// the Connect documentation states (`10-2*3` is 24).
    pub fn tier(self) -> u8 {
        match self {
            BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div => 4,
            BinOp::Concat => 3,
            BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => 2,
            BinOp::And | BinOp::Or => 1,
        }
    }
}

impl fmt::Display for BinOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.symbol())
    }
}

impl Expr {
    /// Visits this expression and every sub-expression, parents first.
    pub fn walk<'s>(&'s self, visit: &mut dyn FnMut(&'s Expr)) {
        visit(self);
        match self {
            Expr::Call(call) => call.args.iter().flatten().for_each(|a| a.walk(visit)),
            Expr::Binary(_, l, r) => {
                l.walk(visit);
                r.walk(visit);
            }
            Expr::Neg(e) => e.walk(visit),
            _ => {}
        }
    }

    /// The names of the attributes the expression reads, in order of first use.
    pub fn attributes(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        self.walk(&mut |e| {
            let name: &str = match e {
                Expr::Attr(a) => &a.name,
                Expr::Call(c) if c.func.takes_attribute_name() => match c.args.first() {
                    Some(Some(Expr::Str(s))) => s,
                    _ => return,
                },
                _ => return,
            };
            if !out.iter().any(|n| n.eq_ignore_ascii_case(name)) {
                out.push(name);
            }
        });
        out
    }
}
