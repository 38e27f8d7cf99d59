//! Throughput of UserType derivation over 1,000,000 prepared directory entries
//! (issue 2, "Proof"): partnersync's own evaluator, through `Expression::evaluate` and
//! through `RuleSet::user_type`, side by side with the same decisions written for the
//! embeddable engines a Rust developer would otherwise pick — `rhai`, `cel-interpreter`
//! and `evalexpr`.
//!
//! Two decisions, from Microsoft's "sync local partner accounts as B2B users" recipes:
//! - `upn_suffix`: Guest when the UPN contains `@partners.contoso.com` (any case), Member
//!   otherwise, and an error naming the problem when the UPN is missing or empty;
//! - `ext1_switch`: Guest when `extensionAttribute1` is `Partner`, Member otherwise.
//!
//! Every engine compiles its expression once, before timing. Each evaluation reads the
//! attribute from the same `partnersync_core::Entry` (the host's lookup is part of the
//! work for everyone), binds it into the engine's scope/context the fastest documented way
//! (reusing the scope/context object), evaluates, and maps the result to a decision.
//! Before timing, each engine's decisions and error messages are checked entry by entry
//! against a plain-Rust reference; during timing, the Guest/Member/error tally over the
//! 1M entries is asserted after every iteration, so every engine provably does the same
//! work.
//!
//! One criterion iteration = 1,000,000 evaluations (`Throughput::Elements`), so
//! criterion's "thrpt" line is evaluations per second on one core. Groups:
//! - `upn_suffix`, `ext1_switch`: 1,000,000 distinct entries (the process peaks at about
//!   2.5 GB resident: a cold walk through memory, as a full sync does);
//! - `upn_suffix_hot`, `ext1_switch_hot`: 500 entries × 2,000 rounds (cache-resident: the
//!   engines' own cost).
//!
//! Each group also has `native_rust`, the decision written as plain Rust over the same
//! entries: the floor set by reading the attribute from the entry.
//!
//! Criterion times with the wall clock; `RULES_BENCH_CLOCK=cpu` times with the bench
//! thread's CPU time instead (Linux), which other jobs on a shared machine do not inflate.
//! Run it with `scripts/bench-rules.sh` (CPU time by default) for a comparison table.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::measurement::Measurement;
use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use partnersync_core::{Anchor, Entry, UserType};
use partnersync_rules::{
    AttributeLookup, Context, Dialect, Expression, Outcome, PreparedEntry, RuleSet, Value,
};

const ENTRIES: usize = 1_000_000;
/// The `_hot` groups evaluate the first `HOT` entries `ENTRIES / HOT` times: the same
/// 1,000,000 evaluations, over a working set that stays in the core's L2 cache, to show
/// the evaluators' own cost apart from the memory latency of walking 1M entries.
const HOT: usize = 500;
/// How many leading entries are checked one by one (with their error messages) before
/// timing; the tally over all entries is checked during timing.
const CHECKED: usize = 20_000;

const UPN: &str = "userPrincipalName";
const EXT1: &str = "extensionAttribute1";
const PARTNER_SUFFIX: &str = "@partners.contoso.com";
const MISSING_UPN: &str = "UserPrincipalName is not present to determine UserType";

// ---------------------------------------------------------------- the decisions

/// Microsoft's UPN-suffix recipe, Entra Connect Sync dialect.
const UPN_AADCONNECT: &str = r#"IIF(IsPresent([userPrincipalName]),IIF(CBool(InStr(LCase([userPrincipalName]),"@partners.contoso.com")=0),"Member","Guest"),Error("UserPrincipalName is not present to determine UserType"))"#;

/// Microsoft's extensionAttribute1 recipe, provisioning dialect.
const SWITCH_PROVISIONING: &str = r#"Switch([extensionAttribute1], "Member", "Partner", "Guest")"#;

const UPN_TOML: &str = r#"
[[rule]]
name = "In from AD - User UserType"
precedence = 50
[[rule.flow]]
target = "userType"
expression = '''IIF(IsPresent([userPrincipalName]),IIF(CBool(InStr(LCase([userPrincipalName]),"@partners.contoso.com")=0),"Member","Guest"),Error("UserPrincipalName is not present to determine UserType"))'''
"#;

const SWITCH_TOML: &str = r#"
dialect = "provisioning"
[[rule]]
name = "UserType from extensionAttribute1"
precedence = 50
[[rule.flow]]
target = "userType"
expression = '''Switch([extensionAttribute1], "Member", "Partner", "Guest")'''
"#;

/// rhai: `()` is rhai's "no value"; `throw` raises a run-time error carrying the message.
const UPN_RHAI: &str = r#"
if upn == () || upn == "" {
    throw "UserPrincipalName is not present to determine UserType";
} else if upn.to_lower().contains("@partners.contoso.com") {
    "Guest"
} else {
    "Member"
}
"#;

const SWITCH_RHAI: &str = r#"switch ext1 { "Partner" => "Guest", _ => "Member" }"#;

/// CEL: the ternary is lazy. cel-interpreter has no lower-casing function and no way to
/// raise an error, so the host registers `lower()` (Unicode, like LCase and rhai's
/// `to_lower`) and `error(message)`.
const UPN_CEL: &str = r#"(upn == null || upn == "")
    ? error("UserPrincipalName is not present to determine UserType")
    : (upn.lower().contains("@partners.contoso.com") ? "Guest" : "Member")"#;

const SWITCH_CEL: &str = r#"ext1 == "Partner" ? "Guest" : "Member""#;

/// evalexpr evaluates every argument eagerly (its `if` is a plain function) and has no
/// substring test, so the host registers `str_contains(haystack, needle)` and
/// `require_text(value, message)`, which passes non-empty text through and fails with
/// `message` otherwise.
const UPN_EVALEXPR: &str = r#"if(str_contains(str::to_lowercase(require_text(upn, "UserPrincipalName is not present to determine UserType")), "@partners.contoso.com"), "Guest", "Member")"#;

const SWITCH_EVALEXPR: &str = r#"if(ext1 == "Partner", "Guest", "Member")"#;

// ---------------------------------------------------------------- outcomes

/// A decision: `Ok(Member | Guest)`, or the error message.
type Decision = Result<UserType, String>;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Tally {
    member: u32,
    guest: u32,
    error: u32,
}

impl Tally {
    #[inline(always)]
    fn add(&mut self, d: &Decision) {
        match d {
            Ok(UserType::Member) => self.member += 1,
            Ok(UserType::Guest) => self.guest += 1,
            Err(_) => self.error += 1,
        }
    }
}

#[inline(always)]
fn user_type_of(s: &str) -> Decision {
    match s {
        "Guest" => Ok(UserType::Guest),
        "Member" => Ok(UserType::Member),
        other => Err(format!("not a userType: {other:?}")),
    }
}

/// The plain-Rust statement of each decision, for checking the engines.
fn reference_upn(e: &Entry) -> Decision {
    match e.attributes.first_text(UPN) {
        None | Some("") => Err(MISSING_UPN.to_string()),
        Some(upn) if upn.to_lowercase().contains(PARTNER_SUFFIX) => Ok(UserType::Guest),
        Some(_) => Ok(UserType::Member),
    }
}

fn reference_switch(e: &Entry) -> Decision {
    match e.attributes.first_text(EXT1) {
        Some("Partner") => Ok(UserType::Guest),
        _ => Ok(UserType::Member),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Rule {
    UpnSuffix,
    Ext1Switch,
}

impl Rule {
    fn group(self) -> &'static str {
        match self {
            Rule::UpnSuffix => "upn_suffix",
            Rule::Ext1Switch => "ext1_switch",
        }
    }

    fn reference(self, e: &Entry) -> Decision {
        match self {
            Rule::UpnSuffix => reference_upn(e),
            Rule::Ext1Switch => reference_switch(e),
        }
    }
}

// ---------------------------------------------------------------- engines

/// The decision as plain Rust: no engine at all.
struct Native(Rule);

impl Engine for Native {
    #[inline]
    fn decide(&mut self, e: &Entry) -> Decision {
        self.0.reference(e)
    }
}

/// One way of deciding a rule for an entry: an expression compiled once, plus whatever
/// per-evaluation state the engine lets us reuse.
trait Engine {
    fn decide(&mut self, e: &Entry) -> Decision;
}

/// partnersync, raw `Expression::evaluate`.
struct PsExpression {
    expr: Expression,
    ctx: Context,
}

impl PsExpression {
    fn new(source: &str, dialect: Dialect) -> Self {
        PsExpression {
            expr: Expression::parse(source, dialect).expect("partnersync parses"),
            ctx: Context::default(),
        }
    }
}

impl Engine for PsExpression {
    #[inline]
    fn decide(&mut self, e: &Entry) -> Decision {
        match self.expr.evaluate(e, &self.ctx) {
            Ok(Outcome::Value(Value::Str(s))) => user_type_of(&s),
            Ok(other) => Err(format!("unexpected outcome {other:?}")),
            Err(err) => Err(err.message),
        }
    }
}

/// partnersync, `RuleSet::user_type` over a rule set loaded from TOML.
struct PsRuleSet {
    rules: RuleSet,
}

impl Engine for PsRuleSet {
    #[inline]
    fn decide(&mut self, e: &Entry) -> Decision {
        match self.rules.user_type(e) {
            Ok(Some(t)) => Ok(t),
            Ok(None) => Err("no rule set userType".to_string()),
            Err(err) => Err(err.message),
        }
    }
}

/// rhai: one `Engine`, one precompiled `AST`, one `Scope` reused across evaluations.
struct Rhai {
    engine: rhai::Engine,
    ast: rhai::AST,
    scope: rhai::Scope<'static>,
    attribute: &'static str,
    var: &'static str,
}

impl Rhai {
    fn new(script: &str, attribute: &'static str, var: &'static str) -> Self {
        let engine = rhai::Engine::new();
        let ast = engine.compile(script).expect("rhai compiles");
        Rhai {
            engine,
            ast,
            scope: rhai::Scope::new(),
            attribute,
            var,
        }
    }
}

impl Engine for Rhai {
    #[inline]
    fn decide(&mut self, e: &Entry) -> Decision {
        let value = match e.attributes.first_text(self.attribute) {
            Some(s) => rhai::Dynamic::from(rhai::ImmutableString::from(s)),
            None => rhai::Dynamic::UNIT,
        };
        self.scope.set_value(self.var, value);
        match self
            .engine
            .eval_ast_with_scope::<rhai::ImmutableString>(&mut self.scope, &self.ast)
        {
            Ok(s) => user_type_of(&s),
            Err(err) => match *err {
                rhai::EvalAltResult::ErrorRuntime(v, _) => Err(v.to_string()),
                other => Err(other.to_string()),
            },
        }
    }
}

/// cel-interpreter: one precompiled `Program`, one root `Context` (functions registered
/// once) whose variable is overwritten per evaluation.
struct Cel {
    program: cel_interpreter::Program,
    ctx: cel_interpreter::Context<'static>,
    attribute: &'static str,
    var: &'static str,
}

impl Cel {
    fn new(source: &str, attribute: &'static str, var: &'static str) -> Self {
        use cel_interpreter::extractors::This;
        use cel_interpreter::{ExecutionError, FunctionContext};
        let program = cel_interpreter::Program::compile(source).expect("CEL compiles");
        let mut ctx = cel_interpreter::Context::default();
        ctx.add_function("lower", |This(s): This<Arc<String>>| -> String {
            s.to_lowercase()
        });
        ctx.add_function(
            "error",
            |ftx: &FunctionContext,
             message: Arc<String>|
             -> Result<cel_interpreter::Value, ExecutionError> {
                Err(ftx.error(message.as_str()))
            },
        );
        Cel {
            program,
            ctx,
            attribute,
            var,
        }
    }
}

impl Engine for Cel {
    #[inline]
    fn decide(&mut self, e: &Entry) -> Decision {
        use cel_interpreter::{ExecutionError, Value as CelValue};
        let value = match e.attributes.first_text(self.attribute) {
            Some(s) => CelValue::String(Arc::new(s.to_owned())),
            None => CelValue::Null,
        };
        self.ctx.add_variable_from_value(self.var, value);
        match self.program.execute(&self.ctx) {
            Ok(CelValue::String(s)) => user_type_of(&s),
            Ok(other) => Err(format!("unexpected value {other:?}")),
            Err(ExecutionError::FunctionError { message, .. }) => Err(message),
            Err(other) => Err(other.to_string()),
        }
    }
}

/// evalexpr: one precompiled operator tree, one `HashMapContext` (functions registered
/// once) whose variables are cleared and set per evaluation (its documented way to reuse
/// a context; `set_value` alone refuses to change a variable's type, e.g. text → empty).
struct Evalexpr {
    tree: evalexpr::Node,
    ctx: evalexpr::HashMapContext,
    attribute: &'static str,
    var: &'static str,
}

impl Evalexpr {
    fn new(source: &str, attribute: &'static str, var: &'static str) -> Self {
        use evalexpr::{ContextWithMutableFunctions, EvalexprError, Function, Value as EValue};
        let tree = evalexpr::build_operator_tree(source).expect("evalexpr parses");
        let mut ctx = evalexpr::HashMapContext::new();
        ctx.set_function(
            "str_contains".into(),
            Function::new(|arg| match arg {
                EValue::Tuple(t) => match t.as_slice() {
                    [EValue::String(h), EValue::String(n)] => {
                        Ok(EValue::Boolean(h.contains(n.as_str())))
                    }
                    _ => Err(EvalexprError::CustomMessage(
                        "str_contains takes two strings".into(),
                    )),
                },
                _ => Err(EvalexprError::CustomMessage(
                    "str_contains takes two strings".into(),
                )),
            }),
        )
        .expect("register str_contains");
        ctx.set_function(
            "require_text".into(),
            Function::new(|arg| match arg {
                EValue::Tuple(t) => match t.as_slice() {
                    [v @ EValue::String(s), _] if !s.is_empty() => Ok(v.clone()),
                    [_, EValue::String(message)] => {
                        Err(EvalexprError::CustomMessage(message.clone()))
                    }
                    _ => Err(EvalexprError::CustomMessage(
                        "require_text takes a value and a message".into(),
                    )),
                },
                _ => Err(EvalexprError::CustomMessage(
                    "require_text takes a value and a message".into(),
                )),
            }),
        )
        .expect("register require_text");
        Evalexpr {
            tree,
            ctx,
            attribute,
            var,
        }
    }
}

impl Engine for Evalexpr {
    #[inline]
    fn decide(&mut self, e: &Entry) -> Decision {
        use evalexpr::{ContextWithMutableVariables, EvalexprError, Value as EValue};
        let value = match e.attributes.first_text(self.attribute) {
            Some(s) => EValue::String(s.to_owned()),
            None => EValue::Empty,
        };
        self.ctx.clear_variables();
        self.ctx
            .set_value(self.var.into(), value)
            .expect("bind variable");
        match self.tree.eval_with_context(&self.ctx) {
            Ok(EValue::String(s)) => user_type_of(&s),
            Ok(other) => Err(format!("unexpected value {other:?}")),
            Err(EvalexprError::CustomMessage(message)) => Err(message),
            Err(other) => Err(other.to_string()),
        }
    }
}

fn engines(rule: Rule) -> Vec<(&'static str, Box<dyn Engine>)> {
    let (source, dialect, toml) = match rule {
        Rule::UpnSuffix => (UPN_AADCONNECT, Dialect::AadConnect, UPN_TOML),
        Rule::Ext1Switch => (SWITCH_PROVISIONING, Dialect::Provisioning, SWITCH_TOML),
    };
    let rules = RuleSet::from_toml_str(toml).expect("rule set loads");
    let ps_expr: Box<dyn Engine> = Box::new(PsExpression::new(source, dialect));
    let ps_rules: Box<dyn Engine> = Box::new(PsRuleSet { rules });
    let others: [(&'static str, Box<dyn Engine>); 3] = match rule {
        Rule::UpnSuffix => [
            ("rhai", Box::new(Rhai::new(UPN_RHAI, UPN, "upn"))),
            ("cel_interpreter", Box::new(Cel::new(UPN_CEL, UPN, "upn"))),
            (
                "evalexpr",
                Box::new(Evalexpr::new(UPN_EVALEXPR, UPN, "upn")),
            ),
        ],
        Rule::Ext1Switch => [
            ("rhai", Box::new(Rhai::new(SWITCH_RHAI, EXT1, "ext1"))),
            (
                "cel_interpreter",
                Box::new(Cel::new(SWITCH_CEL, EXT1, "ext1")),
            ),
            (
                "evalexpr",
                Box::new(Evalexpr::new(SWITCH_EVALEXPR, EXT1, "ext1")),
            ),
        ],
    };
    let mut all: Vec<(&'static str, Box<dyn Engine>)> = vec![
        ("native_rust", Box::new(Native(rule))),
        ("partnersync_expression", ps_expr),
        ("partnersync_ruleset", ps_rules),
    ];
    all.extend(others);
    all
}

// ---------------------------------------------------------------- the entries

/// splitmix64: a fixed seed gives the same 1M entries on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// True with probability `percent`/100.
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

const GIVEN: &[&str] = &[
    "ana", "ben", "carla", "david", "emma", "farid", "grace", "hiro", "ines", "jamal", "kate",
    "liam", "maria", "noah", "olga", "pedro", "quinn", "rosa", "sam", "tariq", "uma", "victor",
    "wendy", "yusuf",
];
const FAMILY: &[&str] = &[
    "lopez", "okafor", "smith", "nguyen", "kowalski", "schmidt", "tanaka", "silva", "haddad",
    "jensen", "murphy", "rossi", "novak", "dubois", "kim", "ivanova",
];
/// Non-ASCII local parts (about 10% of UPNs): accents, ß, Turkish dotted İ, Greek, Cyrillic,
/// CJK — in several cases.
const UNICODE_LOCAL: &[&str] = &[
    "jürgen.müller",
    "Zoë.Brontë",
    "josé.álvarez",
    "ŁUKASZ.ŻÓŁĆ",
    "søren.ørsted",
    "ÅSA.ÖBERG",
    "İlkay.Gündoğan",
    "Σοφία.Παπαδοπούλου",
    "ДМИТРИЙ.ИВАНОВ",
    "李雷",
    "Émilie.Côté",
    "straße.weiß",
];

fn mixed_case(s: &str, rng: &mut Rng) -> String {
    match rng.next() % 10 {
        0..=5 => s.to_string(),
        6..=8 => s
            .split('.')
            .map(|p| {
                let mut c = p.chars();
                c.next()
                    .map(|f| f.to_uppercase().chain(c).collect::<String>())
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join("."),
        _ => s.to_uppercase(),
    }
}

/// One entry shaped like the LDIF an AD export gives (examples/data/partners.ldif): about
/// 13 attributes, the UPN and extensionAttribute1 among them (not first), so every engine
/// pays the same case-insensitive attribute lookup.
fn make_entry(i: usize, rng: &mut Rng) -> Entry {
    let partner = rng.chance(30);
    let given = rng.pick(GIVEN);
    let family = rng.pick(FAMILY);
    let local = if rng.chance(10) {
        rng.pick(UNICODE_LOCAL).to_string()
    } else {
        mixed_case(&format!("{given}.{family}{}", i % 1000), rng)
    };
    let domain = if partner {
        match rng.next() % 10 {
            0..=6 => "@partners.contoso.com",
            7 | 8 => "@Partners.Contoso.com",
            _ => "@PARTNERS.CONTOSO.COM",
        }
    } else {
        match rng.next() % 50 {
            0..=39 => "@contoso.com",
            40..=44 => "@Contoso.com",
            45..=48 => "@eu.contoso.com",
            // A near miss: still a member.
            _ => "@partners.contoso.co",
        }
    };
    let ext1 = match (partner, rng.next() % 100) {
        (true, 0..=84) => Some("Partner"),
        (true, _) => None,
        (false, 0..=1) => Some("Partner"),
        (false, 2..=56) => Some("Member"),
        (false, _) => None,
    };
    let without_upn = rng.chance(1);

    let mut guid = [0u8; 16];
    guid[..8].copy_from_slice(&(i as u64).to_le_bytes());
    guid[8..].copy_from_slice(&rng.next().to_le_bytes());
    let ou = if partner { "Partners" } else { "Staff" };
    let cn = format!("{given} {family} {i}");
    let mut e = Entry::new(
        Anchor::from_bytes(guid.to_vec()).expect("16-byte anchor"),
        format!("CN={cn},OU={ou},DC=contoso,DC=com"),
    );
    let a = &mut e.attributes;
    for class in ["top", "person", "organizationalPerson", "user"] {
        a.insert("objectClass", class);
    }
    a.insert_text("cn", &cn);
    a.insert("objectGUID", guid.to_vec());
    a.insert_text("sAMAccountName", &format!("{}{family}{i}", &given[..1]));
    a.insert_text("givenName", given);
    a.insert_text("sn", family);
    a.insert_text("displayName", &cn);
    if !without_upn {
        a.insert_text(UPN, &format!("{local}{domain}"));
    }
    a.insert_text("mail", &format!("{local}{domain}").to_lowercase());
    a.insert("proxyAddresses", format!("SMTP:{local}{domain}"));
    if let Some(v) = ext1 {
        a.insert_text(EXT1, v);
    }
    a.insert_text("company", if partner { "Fabrikam" } else { "Contoso" });
    a.insert_text("userAccountControl", "512");
    e
}

fn make_entries() -> Vec<Entry> {
    let mut rng = Rng(0x5EED_0FFA_7E20_2026);
    (0..ENTRIES).map(|i| make_entry(i, &mut rng)).collect()
}

// ---------------------------------------------------------------- the benchmark

#[inline(never)]
fn run(engine: &mut dyn Engine, entries: &[Entry], rounds: usize) -> Tally {
    let mut tally = Tally::default();
    for _ in 0..rounds {
        for e in entries {
            tally.add(&engine.decide(black_box(e)));
        }
    }
    tally
}

fn check(rule: Rule, name: &str, engine: &mut dyn Engine, entries: &[Entry]) {
    let mut errors = 0;
    for (i, e) in entries.iter().take(CHECKED).enumerate() {
        let want = rule.reference(e);
        let got = engine.decide(e);
        assert_eq!(
            got,
            want,
            "{}/{name} disagrees with the reference on entry {i}: {:?}",
            rule.group(),
            e.attributes
        );
        errors += usize::from(got.is_err());
    }
    if rule == Rule::UpnSuffix {
        assert!(errors > 0, "the checked entries include some without a UPN");
    }
}

fn bench_rules<M: Measurement<Value = Duration>>(c: &mut Criterion<M>) {
    let entries = make_entries();
    for rule in [Rule::UpnSuffix, Rule::Ext1Switch] {
        let mut engines = engines(rule);
        for (name, engine) in &mut engines {
            check(rule, name, engine.as_mut(), &entries);
        }
        let views: [(String, &[Entry], usize); 2] = [
            (rule.group().to_string(), &entries, 1),
            (
                format!("{}_hot", rule.group()),
                &entries[..HOT],
                ENTRIES / HOT,
            ),
        ];
        for (group_name, set, rounds) in views {
            let mut expected = Tally::default();
            for e in set {
                expected.add(&rule.reference(e));
            }
            expected = Tally {
                member: expected.member * rounds as u32,
                guest: expected.guest * rounds as u32,
                error: expected.error * rounds as u32,
            };
            eprintln!(
                "{group_name}: {} entries x {rounds} -> {} Member, {} Guest, {} error",
                set.len(),
                expected.member,
                expected.guest,
                expected.error
            );
            let mut group = c.benchmark_group(&group_name);
            group.throughput(Throughput::Elements((set.len() * rounds) as u64));
            group.sampling_mode(SamplingMode::Flat);
            for (name, engine) in &mut engines {
                group.bench_function(BenchmarkId::from_parameter(*name), |b| {
                    b.iter(|| {
                        let tally = run(engine.as_mut(), set, rounds);
                        assert_eq!(tally, expected, "{group_name}/{name}: wrong tally");
                        black_box(tally)
                    })
                });
            }
            // The same decisions over entries prepared once with `RuleSet::prepare` (only
            // the attributes the rules read, laid out compactly), against plain Rust reading
            // the same prepared entries: what the rule engine costs when the entry layout is
            // not the bottleneck.
            let toml = match rule {
                Rule::UpnSuffix => UPN_TOML,
                Rule::Ext1Switch => SWITCH_TOML,
            };
            let rules = RuleSet::from_toml_str(toml).expect("rule set loads");
            let prepared: Vec<PreparedEntry> = set.iter().map(|e| rules.prepare(e)).collect();
            for (p, e) in prepared.iter().zip(set).take(CHECKED) {
                assert_eq!(
                    prepared_decision(&rules, p),
                    rule.reference(e),
                    "prepared entry disagrees"
                );
            }
            group.bench_function(
                BenchmarkId::from_parameter("partnersync_ruleset_prepared"),
                |b| {
                    b.iter(|| {
                        let mut tally = Tally::default();
                        for _ in 0..rounds {
                            for p in &prepared {
                                tally.add(&prepared_decision(&rules, black_box(p)));
                            }
                        }
                        assert_eq!(tally, expected, "{group_name}/prepared: wrong tally");
                        black_box(tally)
                    })
                },
            );
            group.bench_function(BenchmarkId::from_parameter("native_rust_prepared"), |b| {
                b.iter(|| {
                    let mut tally = Tally::default();
                    for _ in 0..rounds {
                        for p in &prepared {
                            tally.add(&native_prepared(rule, black_box(p)));
                        }
                    }
                    assert_eq!(tally, expected, "{group_name}/native prepared: wrong tally");
                    black_box(tally)
                })
            });
            group.finish();
        }
    }
}

#[inline(never)]
fn prepared_decision(rules: &RuleSet, p: &PreparedEntry) -> Decision {
    match rules.user_type(p) {
        Ok(Some(t)) => Ok(t),
        Ok(None) => Err("no rule set userType".to_string()),
        Err(err) => Err(err.message),
    }
}

#[inline(never)]
fn native_prepared(rule: Rule, p: &PreparedEntry) -> Decision {
    let first = |name: &str| {
        p.lookup(name)
            .and_then(|v| v.first())
            .and_then(|v| v.as_text())
    };
    match rule {
        Rule::UpnSuffix => match first(UPN) {
            None | Some("") => Err(MISSING_UPN.to_string()),
            Some(upn) if upn.to_lowercase().contains(PARTNER_SUFFIX) => Ok(UserType::Guest),
            Some(_) => Ok(UserType::Member),
        },
        Rule::Ext1Switch => match first(EXT1) {
            Some("Partner") => Ok(UserType::Guest),
            _ => Ok(UserType::Member),
        },
    }
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(6))
}

/// Which clock criterion reads: wall time (criterion's default), or with
/// `RULES_BENCH_CLOCK=cpu` the bench thread's own CPU time. On a machine shared with other
/// jobs, wall time also counts the time the thread spent waiting for a core; CPU time is
/// the per-core cost (cache and memory-bandwidth contention still show).
fn main() {
    match std::env::var("RULES_BENCH_CLOCK").as_deref() {
        Ok("cpu") => run_all(config().with_measurement(cpu_time::ThreadCpuTime)),
        Ok("wall") | Err(_) => run_all(config()),
        Ok(other) => panic!("RULES_BENCH_CLOCK={other}: use cpu or wall"),
    }
}

fn run_all<M: Measurement<Value = Duration>>(c: Criterion<M>) {
    let mut c = c.configure_from_args();
    bench_rules(&mut c);
    c.final_summary();
}

/// Per-thread CPU time as a criterion measurement, in the same unit as wall time.
mod cpu_time {
    use std::time::Duration;

    use criterion::measurement::{Measurement, ValueFormatter, WallTime};

    static WALL: WallTime = WallTime;

    pub struct ThreadCpuTime;

    #[cfg(all(target_os = "linux", target_pointer_width = "64"))]
    fn now() -> Duration {
        #[repr(C)]
        struct Timespec {
            tv_sec: i64,
            tv_nsec: i64,
        }
        extern "C" {
            fn clock_gettime(clock: i32, tp: *mut Timespec) -> i32;
        }
        const CLOCK_THREAD_CPUTIME_ID: i32 = 3;
        let mut ts = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec (64-bit Linux layout) for the call.
        let rc = unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
        Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
    }

    #[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
    fn now() -> Duration {
        panic!("RULES_BENCH_CLOCK=cpu needs 64-bit Linux; use the default wall clock")
    }

    impl Measurement for ThreadCpuTime {
        type Intermediate = Duration;
        type Value = Duration;

        fn start(&self) -> Duration {
            now()
        }

        fn end(&self, start: Duration) -> Duration {
            now().saturating_sub(start)
        }

        fn add(&self, a: &Duration, b: &Duration) -> Duration {
            *a + *b
        }

        fn zero(&self) -> Duration {
            Duration::ZERO
        }

        fn to_f64(&self, value: &Duration) -> f64 {
            value.as_nanos() as f64
        }

        fn formatter(&self) -> &dyn ValueFormatter {
            WALL.formatter()
        }
    }
}
