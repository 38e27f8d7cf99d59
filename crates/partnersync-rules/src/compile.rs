//! The fast path: an expression compiled once, after parsing, into a tree of nodes whose
//! functions, argument plans and attribute names are resolved ahead of time.
//!
//! The tree walk in `eval.rs` and `builtins.rs` stays the reference semantics. The compiled
//! form only removes per-evaluation overhead, and it shares the code that computes values
//! with the tree walk (`Evaluator::apply_binary`, `builtins::unary`, `builtins::lifted`):
//! - each attribute name gets a slot, read once per evaluation and then reused;
//! - IIF, both Switch dialects, Coalesce and IgnoreFlowIfNullOrEmpty are nodes of their
//!   own, and so are the common one-argument functions and InStr with a literal needle,
//!   which skip the argument vector and the lifting scan unless a value is multi-valued;
//! - everything else either evaluates its arguments as nodes and hands them to the tree
//!   walk's function code (`Node::Eager`), or runs entirely on the tree walk
//!   (`Node::Fallback`: variables, Select/Where/With, the provisioning Replace, ...);
//! - where a Boolean is needed (IIF's and Switch's conditions, `&&`, `||`), presence tests,
//!   CBool and comparisons of two numbers give a `bool` without building a value;
//! - `InStr(LCase(x), "literal")` over ASCII text searches case-insensitively in place
//!   instead of building the lower-case copy.
//!
//! `compile/tests.rs` checks that both paths agree (values, sentinels, error messages) on
//! every fixture case and on random expressions over random entries.
//!
//! Invariant: compiled nodes run only while no attribute is bound for per-value lifting.
//! [`Program::run`] reads the expression's lifted attributes first and hands the whole
//! evaluation to the tree walk when one of them is multi-valued (or cannot be read), and
//! a whole-set argument with lifted attributes does the same for that argument. So an
//! attribute read in a compiled node is always a plain read of the entry.

use std::borrow::Cow;

use memchr::memmem::Finder;
use smallvec::SmallVec;

use crate::ast::{BinOp, Call, EnumWord, Expr, Special};
use crate::builtins::{self, Args};
use crate::eval::{holds, outcome, AttributeLookup, Context, EvalError, Evaluator, Res, Stop};
use crate::functions::{ArgPosition, Func};
use crate::value::{Outcome, Value};
use crate::Dialect;

/// A compiled expression.
#[derive(Debug)]
pub(crate) struct Program {
    root: Node,
    /// Attribute names by slot (spelled as written; equal spellings share a slot).
    names: Box<[Box<str>]>,
    /// Slots of the attributes used where one value is expected (`Compiled::lifted`).
    lifted: Box<[usize]>,
}

#[derive(Debug)]
enum Node {
    Str(Box<str>),
    Num(i64),
    Bool(bool),
    Null,
    Crlf,
    AuthoritativeNull,
    IgnoreThisFlow,
    Enum(EnumWord),
    /// An attribute, by slot.
    Attr(usize),
    Neg(Box<Node>),
    /// `=`, `<>`, `<`, `<=`, `>`, `>=`.
    Compare(BinOp, Box<(Node, Node)>),
    /// `+`, `-`, `*`, `/`, `&`.
    Binary(BinOp, Box<(Node, Node)>),
    /// `&&` and `||`, which short-circuit.
    Logic(BinOp, Box<(Node, Node)>),
    Iif(Box<[Node; 3]>),
    /// Connect's Switch: condition/value pairs.
    Switch(Box<[Node]>),
    /// The provisioning Switch: source, default, then key/value pairs.
    SwitchProv(Box<[Node]>),
    /// The provisioning Switch whose keys are all literal (or empty, which is `""`).
    SwitchLit(Box<SwitchLit>),
    /// Coalesce's present arguments.
    Coalesce(Box<[Node]>),
    IgnoreFlowIfNullOrEmpty(Box<Node>),
    Unary(Box<UnaryCall>),
    InStr(Box<InStrCall>),
    Eager(Box<EagerCall>),
    Lifted(Box<LiftedArg>),
    /// Runs on the tree walk.
    Fallback(Box<Expr>),
}

/// `Switch(source, default, "key1", value1, ...)` with literal keys.
#[derive(Debug)]
struct SwitchLit {
    source: Node,
    default: Node,
    /// The keys' text, and the value each selects.
    cases: Box<[(Box<str>, Node)]>,
}

/// A one-argument function of [`builtins::unary`].
#[derive(Debug)]
struct UnaryCall {
    func: Func,
    /// Whether a multi-valued argument runs the function once per value.
    lifts: bool,
    /// IsNull, IsNullOrEmpty, IsPresent or IsEmpty (`builtins::presence`).
    presence: bool,
    arg: Node,
    /// The call itself, for the per-value path.
    call: Call,
}

/// `InStr(string, "literal")`.
#[derive(Debug)]
struct InStrCall {
    hay: Node,
    /// `hay` is `LCase(x)`/`ToLower(x)`: ASCII text is searched without lowering it.
    lowered: bool,
    /// The needle has ASCII upper-case letters (so lowered text never contains it).
    needle_has_upper: bool,
    needle: Box<str>,
    finder: Finder<'static>,
    call: Call,
}

/// Any other function that takes evaluated arguments.
#[derive(Debug)]
struct EagerCall {
    args: Box<[Node]>,
    call: Call,
}

/// A whole-set argument that runs once per value of a multi-valued attribute it uses where
/// one value is expected (`Call::lifts`).
#[derive(Debug)]
struct LiftedArg {
    slots: Box<[usize]>,
    names: Box<[Box<str>]>,
    node: Node,
    expr: Expr,
}

/// Compiles `expr`, whose top-level lifted attributes are `lifted`.
pub(crate) fn compile(expr: &Expr, lifted: &[Box<str>]) -> Program {
    let mut c = Compiler { names: Vec::new() };
    let root = c.node(expr);
    let lifted = lifted.iter().map(|n| c.slot(n)).collect();
    Program {
        root,
        names: c.names.into_boxed_slice(),
        lifted,
    }
}

struct Compiler {
    names: Vec<Box<str>>,
}

impl Compiler {
    fn slot(&mut self, name: &str) -> usize {
        // Exact spelling: an `AttributeLookup` need not fold case the way we would.
        match self.names.iter().position(|n| n.as_ref() == name) {
            Some(i) => i,
            None => {
                self.names.push(name.into());
                self.names.len() - 1
            }
        }
    }

    fn node(&mut self, e: &Expr) -> Node {
        match e {
            Expr::Str(s) => Node::Str(s.clone()),
            Expr::Num(n) => Node::Num(*n),
            Expr::Bool(b) => Node::Bool(*b),
            Expr::Special(Special::Null) => Node::Null,
            Expr::Special(Special::Crlf) => Node::Crlf,
            Expr::Special(Special::AuthoritativeNull) => Node::AuthoritativeNull,
            Expr::Special(Special::IgnoreThisFlow) => Node::IgnoreThisFlow,
            Expr::Enum(w) => Node::Enum(*w),
            Expr::Attr(a) => Node::Attr(self.slot(&a.name)),
            Expr::Param(_) | Expr::Var(_) => Node::Fallback(Box::new(e.clone())),
            Expr::Neg(x) => Node::Neg(Box::new(self.node(x))),
            Expr::Binary(op, l, r) => {
                let pair = Box::new((self.node(l), self.node(r)));
                match op.tier() {
                    1 => Node::Logic(*op, pair),
                    2 => Node::Compare(*op, pair),
                    _ => Node::Binary(*op, pair),
                }
            }
            Expr::Call(call) => self.call(e, call),
        }
    }

    /// Argument `i` as `builtins::eval_arg` evaluates it.
    fn arg(&mut self, call: &Call, i: usize) -> Node {
        let Some(Some(e)) = call.args.get(i) else {
            return Node::Null;
        };
        let node = self.node(e);
        match call.lifts.iter().find(|(at, _)| *at == i) {
            Some((_, names)) => Node::Lifted(Box::new(LiftedArg {
                slots: names.iter().map(|n| self.slot(n)).collect(),
                names: names.clone(),
                node,
                expr: e.clone(),
            })),
            None => node,
        }
    }

    fn args(&mut self, call: &Call) -> Box<[Node]> {
        (0..call.args.len()).map(|i| self.arg(call, i)).collect()
    }

    fn call(&mut self, whole: &Expr, call: &Call) -> Node {
        let n = call.args.len();
        // The special forms below evaluate their arguments without per-value lifting, which
        // is right because none of their arguments takes a whole set; should one ever get
        // a lifting plan, the tree walk runs it.
        let plain = call.lifts.is_empty();
        match call.func {
            Func::Iif if plain => Node::Iif(Box::new([
                self.arg(call, 0),
                self.arg(call, 1),
                self.arg(call, 2),
            ])),
            Func::Switch if plain && n % 2 == 0 => Node::Switch(self.args(call)),
            Func::SwitchProv if plain && n >= 2 && n % 2 == 0 => {
                let literal_keys = call.args[2..]
                    .iter()
                    .step_by(2)
                    .all(|k| matches!(k, None | Some(Expr::Str(_))));
                if literal_keys {
                    let cases = (2..n)
                        .step_by(2)
                        .map(|i| {
                            let key = match &call.args[i] {
                                Some(Expr::Str(k)) => k.clone(),
                                _ => "".into(),
                            };
                            (key, self.arg(call, i + 1))
                        })
                        .collect();
                    Node::SwitchLit(Box::new(SwitchLit {
                        source: self.arg(call, 0),
                        default: self.arg(call, 1),
                        cases,
                    }))
                } else {
                    Node::SwitchProv(self.args(call))
                }
            }
            Func::Coalesce if plain => {
                Node::Coalesce(call.args.iter().flatten().map(|e| self.node(e)).collect())
            }
            Func::IgnoreFlowIfNullOrEmpty if plain => {
                Node::IgnoreFlowIfNullOrEmpty(Box::new(self.arg(call, 0)))
            }
            Func::Iif
            | Func::Switch
            | Func::SwitchProv
            | Func::Coalesce
            | Func::IgnoreFlowIfNullOrEmpty
            | Func::Select
            | Func::Where
            | Func::With
            | Func::SelectUniqueValue
            | Func::ImportedValue
            | Func::ValueCount
            | Func::ReplaceProv => Node::Fallback(Box::new(whole.clone())),
            Func::InStr if n == 2 && finder_cached(call) => match call.args.get(1) {
                Some(Some(Expr::Str(needle))) => {
                    let hay = self.arg(call, 0);
                    let lowered = matches!(&hay, Node::Unary(u) if matches!(u.func, Func::LCase | Func::ToLower));
                    Node::InStr(Box::new(InStrCall {
                        hay,
                        lowered,
                        needle_has_upper: needle.bytes().any(|b| b.is_ascii_uppercase()),
                        needle: needle.clone(),
                        finder: Finder::new(needle.as_bytes()).into_owned(),
                        call: call.clone(),
                    }))
                }
                _ => self.eager(call),
            },
            f if n == 1 && builtins::is_unary(f) => Node::Unary(Box::new(UnaryCall {
                func: f,
                lifts: f.position(0) == ArgPosition::Scalar,
                presence: builtins::is_presence(f),
                arg: self.arg(call, 0),
                call: call.clone(),
            })),
            _ => self.eager(call),
        }
    }

    fn eager(&mut self, call: &Call) -> Node {
        Node::Eager(Box::new(EagerCall {
            args: self.args(call),
            call: call.clone(),
        }))
    }
}

/// Whether the tree walk takes its literal-needle InStr path for this call.
fn finder_cached(call: &Call) -> bool {
    matches!(
        call.cache.as_deref(),
        Some(crate::ast::Precomputed::Finder(_))
    )
}

impl Program {
    /// Evaluates the program over `input`; `expr` and `lifted` are the tree it was compiled
    /// from and its lifted attributes, for the tree walk.
    #[inline]
    pub(crate) fn run<'a>(
        &'a self,
        dialect: Dialect,
        expr: &'a Expr,
        lifted: &'a [Box<str>],
        input: &'a dyn AttributeLookup,
        ctx: &'a Context,
    ) -> Result<Outcome<'a>, EvalError> {
        let mut m = Machine {
            ev: Evaluator::new(dialect, input, ctx),
            names: &self.names,
            slots: [Slot::Unread; SLOTS],
        };
        for &slot in self.lifted.iter() {
            match m.attr(slot) {
                Ok(Value::Multi(_)) | Err(_) => {
                    // Per-value lifting (or an error the tree walk reports the same way).
                    return Evaluator::new(dialect, input, ctx).run(expr, lifted);
                }
                Ok(v) => discard(v),
            }
        }
        outcome(m.eval(&self.root))
    }
}

/// How many attributes per expression have their reads cached.
const SLOTS: usize = 8;

/// What an evaluation knows about one attribute.
#[derive(Clone, Copy)]
enum Slot<'a> {
    Unread,
    /// Absent (reads as NULL).
    Absent,
    /// One untyped text value.
    Text(&'a str),
    /// Anything else (several values, a declared type, bytes, an error): read every time.
    Uncached,
}

/// The state of one evaluation.
struct Machine<'a> {
    ev: Evaluator<'a>,
    names: &'a [Box<str>],
    slots: [Slot<'a>; SLOTS],
}

/// Drops a value, without a call for the kinds that own nothing.
#[inline(always)]
fn discard(v: Value<'_>) {
    match &v {
        Value::Null
        | Value::Num(_)
        | Value::Bool(_)
        | Value::Date(_)
        | Value::Str(Cow::Borrowed(_))
        | Value::Ref(Cow::Borrowed(_))
        | Value::Bin(Cow::Borrowed(_)) => std::mem::forget(v),
        _ => drop(v),
    }
}

impl<'a> Machine<'a> {
    /// The value of the attribute in `slot`, as `Evaluator::attribute` reads it; plain
    /// text and absence are remembered for the rest of the evaluation.
    #[inline(always)]
    fn attr(&mut self, slot: usize) -> Res<'a> {
        match self.slots.get(slot) {
            Some(Slot::Text(s)) => Ok(Value::Str(Cow::Borrowed(s))),
            Some(Slot::Absent) => Ok(Value::Null),
            _ => self.read(slot),
        }
    }

    /// The first read of a slot, or a read of an uncached one.
    #[inline(never)]
    fn read(&mut self, slot: usize) -> Res<'a> {
        let v = self.ev.attribute(&self.names[slot]);
        if let Some(cell @ Slot::Unread) = self.slots.get_mut(slot) {
            *cell = match &v {
                Ok(Value::Null) => Slot::Absent,
                Ok(Value::Str(Cow::Borrowed(s))) => Slot::Text(s),
                _ => Slot::Uncached,
            };
        }
        v
    }

    /// `Evaluator::truth`, with the common kinds decided here.
    #[inline(always)]
    fn truth(&self, v: &Value<'a>, what: &str) -> Result<bool, Stop> {
        match v {
            Value::Bool(b) => Ok(*b),
            Value::Null => Ok(false),
            Value::Num(n) => Ok(*n != 0),
            _ => self.ev.truth(v, what),
        }
    }

    /// Evaluates a child: leaves here, anything else through [`Machine::eval`].
    #[inline(always)]
    fn operand(&mut self, node: &'a Node) -> Res<'a> {
        match node {
            Node::Attr(slot) => self.attr(*slot),
            Node::Str(s) => Ok(Value::Str(Cow::Borrowed(s))),
            Node::Num(n) => Ok(Value::Num(*n)),
            Node::Bool(b) => Ok(Value::Bool(*b)),
            Node::Null => Ok(Value::Null),
            _ => self.eval(node),
        }
    }

    /// `truth(eval(node), what)`: a node where a Boolean is needed, without building the
    /// Boolean value where the node's kind allows.
    #[inline(always)]
    fn test(&mut self, node: &'a Node, what: &str) -> Result<bool, Stop> {
        let v = match node {
            // IsPresent and friends take the whole set, so they never run per value.
            Node::Unary(u) if u.presence => {
                if let Node::Attr(slot) = u.arg {
                    // A remembered attribute is tested where it lies.
                    match self.slots.get(slot) {
                        Some(Slot::Text(s)) => {
                            let v = Value::Str(Cow::Borrowed(s));
                            let b = builtins::presence(u.func, &v) == Some(true);
                            discard(v);
                            return Ok(b);
                        }
                        Some(Slot::Absent) => {
                            return Ok(builtins::presence(u.func, &Value::Null) == Some(true));
                        }
                        _ => {}
                    }
                }
                let v = self.operand(&u.arg)?;
                let b = builtins::presence(u.func, &v) == Some(true);
                discard(v);
                return Ok(b);
            }
            Node::Unary(u) if u.func == Func::CBool => {
                let v = match &u.arg {
                    Node::Compare(op, lr) => self.compare(*op, lr)?,
                    arg => self.operand(arg)?,
                };
                if !matches!(v, Value::Multi(_)) {
                    // CBool gives truth(v) as a Boolean, whose truth is itself.
                    let b = self.truth(&v, u.call.name)?;
                    discard(v);
                    return Ok(b);
                }
                self.unary(u, v)?
            }
            Node::Compare(op, lr) => self.compare(*op, lr)?,
            _ => self.operand(node)?,
        };
        let b = self.truth(&v, what)?;
        discard(v);
        Ok(b)
    }

    /// A comparison.
    #[inline(always)]
    fn compare(&mut self, op: BinOp, lr: &'a (Node, Node)) -> Res<'a> {
        let left = self.operand(&lr.0)?;
        let right = self.operand(&lr.1)?;
        if let (Value::Num(a), Value::Num(b)) = (&left, &right) {
            // What `apply_binary` computes for two numbers.
            let r = holds(op, a.cmp(b));
            discard(left);
            discard(right);
            return Ok(Value::Bool(r));
        }
        self.ev.apply_binary(op, left, right)
    }

    fn eval(&mut self, node: &'a Node) -> Res<'a> {
        match node {
            Node::Str(s) => Ok(Value::Str(Cow::Borrowed(s))),
            Node::Num(n) => Ok(Value::Num(*n)),
            Node::Bool(b) => Ok(Value::Bool(*b)),
            Node::Null => Ok(Value::Null),
            Node::Crlf => Ok(Value::str("\r\n")),
            Node::AuthoritativeNull => Err(Stop::AuthoritativeNull),
            Node::IgnoreThisFlow => Err(Stop::IgnoreThisFlow),
            Node::Enum(w) => Ok(Value::str(w.word())),
            Node::Attr(slot) => self.attr(*slot),
            Node::Neg(e) => {
                let v = self.eval(e)?;
                self.ev.negate(v)
            }
            Node::Compare(op, lr) => self.compare(*op, lr),
            Node::Binary(op, lr) => self.binary(*op, lr),
            Node::Logic(op, lr) => self.logic(*op, lr),
            Node::Iif(args) => {
                let yes = self.test(&args[0], "IIF's condition")?;
                self.operand(&args[if yes { 1 } else { 2 }])
            }
            Node::Switch(args) => self.switch(args),
            Node::SwitchProv(args) => self.switch_prov(args),
            Node::SwitchLit(sw) => self.switch_lit(sw),
            Node::Coalesce(args) => self.coalesce(args),
            Node::IgnoreFlowIfNullOrEmpty(arg) => {
                let v = self.eval(arg)?;
                if v.is_null_or_empty() {
                    discard(v);
                    Err(Stop::IgnoreFlow)
                } else {
                    Ok(v)
                }
            }
            Node::Unary(u) => {
                let v = self.operand(&u.arg)?;
                self.unary(u, v)
            }
            Node::InStr(c) => self.instr(c),
            Node::Eager(c) => self.eager(c),
            Node::Lifted(l) => self.lifted(l),
            Node::Fallback(e) => self.ev.eval(e),
        }
    }

    #[inline(never)]
    fn binary(&mut self, op: BinOp, lr: &'a (Node, Node)) -> Res<'a> {
        let left = self.operand(&lr.0)?;
        let right = self.operand(&lr.1)?;
        self.ev.apply_binary(op, left, right)
    }

    #[inline(never)]
    fn logic(&mut self, op: BinOp, lr: &'a (Node, Node)) -> Res<'a> {
        let lb = self.test(&lr.0, op.symbol())?;
        if (op == BinOp::And && !lb) || (op == BinOp::Or && lb) {
            return Ok(Value::Bool(lb));
        }
        Ok(Value::Bool(self.test(&lr.1, op.symbol())?))
    }

    /// Connect's Switch. As the tree walk: every condition is evaluated, only the chosen
    /// value.
    #[inline(never)]
    fn switch(&mut self, args: &'a [Node]) -> Res<'a> {
        let mut chosen: Option<&'a Node> = None;
        for pair in args.chunks(2) {
            if self.test(&pair[0], "a Switch condition")? && chosen.is_none() {
                chosen = pair.get(1);
            }
        }
        match chosen {
            Some(e) => self.eval(e),
            None => Ok(Value::Null),
        }
    }

    /// The provisioning Switch: source, default, key/value pairs.
    #[inline(never)]
    fn switch_prov(&mut self, args: &'a [Node]) -> Res<'a> {
        let source = self.operand(&args[0])?;
        // The value of the first key equal to the source; the default when none is.
        let mut chosen = args.get(1);
        {
            let source_text = match &source {
                Value::Null => Cow::Borrowed(""),
                v => self.text(v, "Switch's source")?,
            };
            for pair in args.get(2..).unwrap_or_default().chunks(2) {
                let key = self.operand(&pair[0])?;
                let hit = match &key {
                    Value::Null => source_text.is_empty(),
                    v => self.text(v, "a Switch key")? == source_text,
                };
                discard(key);
                if hit {
                    chosen = pair.get(1);
                    break;
                }
            }
        }
        discard(source);
        match chosen {
            Some(e) => self.operand(e),
            None => Ok(Value::Null),
        }
    }

    /// The provisioning Switch with literal keys: as [`Machine::switch_prov`], where a
    /// literal key's text is the literal and an empty key's is `""`.
    #[inline(never)]
    fn switch_lit(&mut self, sw: &'a SwitchLit) -> Res<'a> {
        let source = self.operand(&sw.source)?;
        let chosen = {
            let source_text = match &source {
                Value::Null => Cow::Borrowed(""),
                v => self.text(v, "Switch's source")?,
            };
            sw.cases
                .iter()
                .find(|(key, _)| key.as_ref() == source_text.as_ref())
                .map_or(&sw.default, |(_, value)| value)
        };
        discard(source);
        self.operand(chosen)
    }

    /// `Evaluator::text`, borrowing text values here.
    #[inline(always)]
    fn text<'v>(&self, v: &'v Value<'a>, what: &str) -> Result<Cow<'v, str>, Stop> {
        match v {
            Value::Str(s) | Value::Ref(s) => Ok(Cow::Borrowed(s)),
            _ => self.ev.text(v, what),
        }
    }

    #[inline(never)]
    fn coalesce(&mut self, args: &'a [Node]) -> Res<'a> {
        for arg in args {
            let v = self.eval(arg)?;
            if !v.is_null() {
                return Ok(v);
            }
        }
        Ok(Value::Null)
    }

    #[inline(never)]
    fn eager(&mut self, c: &'a EagerCall) -> Res<'a> {
        let mut args: Args<'a> = SmallVec::with_capacity(c.args.len());
        for arg in c.args.iter() {
            args.push(self.eval(arg)?);
        }
        builtins::lifted(&mut self.ev, &c.call, c.call.name, &mut args)
    }

    #[inline(never)]
    fn lifted(&mut self, l: &'a LiftedArg) -> Res<'a> {
        for &slot in l.slots.iter() {
            match self.attr(slot) {
                Ok(Value::Multi(_)) | Err(_) => return self.ev.eval_lifted(&l.expr, &l.names),
                Ok(v) => discard(v),
            }
        }
        self.eval(&l.node)
    }

    #[inline]
    fn unary(&mut self, u: &'a UnaryCall, v: Value<'a>) -> Res<'a> {
        if u.lifts && matches!(v, Value::Multi(_)) {
            let mut args: Args<'a> = SmallVec::new();
            args.push(v);
            return builtins::lifted(&mut self.ev, &u.call, u.call.name, &mut args);
        }
        // IsPresent and friends take the whole set, so they never run per value.
        if let Some(b) = builtins::presence(u.func, &v) {
            discard(v);
            return Ok(Value::Bool(b));
        }
        if u.func == Func::CBool {
            let b = self.truth(&v, u.call.name)?;
            discard(v);
            return Ok(Value::Bool(b));
        }
        builtins::unary(&self.ev, u.func, u.call.name, v)
    }

    #[inline(never)]
    fn instr(&mut self, c: &'a InStrCall) -> Res<'a> {
        let hay = match &c.hay {
            Node::Unary(u) if c.lowered => {
                let x = self.operand(&u.arg)?;
                if let Value::Str(s) | Value::Ref(s) = &x {
                    if let Some(n) = find_lowered(c, s) {
                        discard(x);
                        return Ok(Value::Num(n));
                    }
                }
                self.unary(u, x)?
            }
            hay => self.operand(hay)?,
        };
        match hay {
            Value::Null => Ok(Value::Num(0)),
            Value::Multi(_) => {
                let mut args: Args<'a> = SmallVec::new();
                args.push(hay);
                args.push(Value::Str(Cow::Borrowed(&c.needle)));
                builtins::lifted(&mut self.ev, &c.call, c.call.name, &mut args)
            }
            v => {
                let n = {
                    let s = self.ev.text(&v, c.call.name)?;
                    if c.needle.is_empty() {
                        1
                    } else {
                        builtins::find_position(&c.finder, &s)
                    }
                };
                discard(v);
                Ok(Value::Num(n))
            }
        }
    }
}

/// `InStr(LCase(s), needle)` for ASCII `s`, without building the lower-case string;
/// `None` for other text.
#[inline(always)]
fn find_lowered(c: &InStrCall, s: &str) -> Option<i64> {
    if !is_ascii(s.as_bytes()) {
        return None;
    }
    if c.needle.is_empty() {
        return Some(1);
    }
    if c.needle_has_upper {
        return Some(0);
    }
    // ASCII: byte offsets are character offsets.
    Some(find_in_lowered(s.as_bytes(), c.needle.as_bytes()).map_or(0, |b| b as i64 + 1))
}

/// The byte offset of the first occurrence of `needle` (no ASCII upper-case letters) in
/// ASCII `hay` lowered to lower case, without building the lowered copy: eight candidate
/// positions at a time look for the needle's first byte, and each hit is compared whole.
fn find_in_lowered(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let Some(&first) = needle.first() else {
        return Some(0);
    };
    let n = needle.len();
    let last = hay.len().checked_sub(n)?;
    let pattern = ONES * u64::from(first);
    let mut i = 0;
    while i <= last {
        let hit = if i + 8 <= hay.len() {
            // Bytes equal to `first` become zero; the lowest zero byte is found exactly
            // (every byte is below 0x80, so no borrow starts elsewhere).
            let x = lower_word(word(&hay[i..i + 8])) ^ pattern;
            let zeros = x.wrapping_sub(ONES) & !x & HIGH;
            if zeros == 0 {
                i += 8;
                continue;
            }
            i + (zeros.trailing_zeros() / 8) as usize
        } else if hay[i].to_ascii_lowercase() == first {
            i
        } else {
            i += 1;
            continue;
        };
        if hit > last {
            return None;
        }
        if lowered_eq(&hay[hit..hit + n], needle) {
            return Some(hit);
        }
        i = hit + 1;
    }
    None
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// Whether ASCII `text` lowered to lower case equals `lower` (as long as `text`, no
/// ASCII upper-case letters), eight bytes at a time.
fn lowered_eq(text: &[u8], lower: &[u8]) -> bool {
    let n = text.len();
    if n < 8 {
        return text
            .iter()
            .zip(lower)
            .all(|(x, y)| x.to_ascii_lowercase() == *y);
    }
    let mut i = 0;
    while i + 8 < n {
        if lower_word(word(&text[i..i + 8])) != word(&lower[i..i + 8]) {
            return false;
        }
        i += 8;
    }
    // The last eight bytes (overlapping the previous word when `n` is not a multiple).
    lower_word(word(&text[n - 8..])) == word(&lower[n - 8..])
}

/// Eight bytes as a word (the first byte lowest).
#[inline(always)]
fn word(bytes: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(bytes);
    u64::from_le_bytes(w)
}

/// `to_ascii_lowercase` of eight ASCII bytes at once: a byte gets 0x20 added when it is
/// in `A..=Z`. With every byte below 0x80 the additions below never carry across bytes.
#[inline(always)]
fn lower_word(x: u64) -> u64 {
    let at_least_a = x + ONES * u64::from(0x80 - b'A');
    let above_z = x + ONES * u64::from(0x7f - b'Z');
    let upper = at_least_a & !above_z & HIGH;
    x | (upper >> 2)
}

/// `<[u8]>::is_ascii`, eight bytes at a time.
#[inline]
fn is_ascii(bytes: &[u8]) -> bool {
    let n = bytes.len();
    if n < 8 {
        return bytes.iter().all(|b| *b < 0x80);
    }
    let mut acc = word(&bytes[n - 8..]);
    let mut i = 0;
    while i + 8 < n {
        acc |= word(&bytes[i..i + 8]);
        i += 8;
    }
    acc & HIGH == 0
}

#[cfg(test)]
mod tests;
