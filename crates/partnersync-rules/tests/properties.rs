//! Property tests: printing and re-parsing gives the same tree; evaluation never panics;
//! the UPN-suffix rule agrees with a plain Rust implementation.

use partnersync_core::Attributes;
use partnersync_rules::functions::{table, Func, Signature};
use partnersync_rules::{print, Context, Dialect, Expr, Expression, Outcome, Value};
use proptest::prelude::*;

fn attr_name() -> impl Strategy<Value = String> {
    "[A-Za-z][A-Za-z0-9-]{0,10}"
}

fn leaf(dialect: Dialect) -> BoxedStrategy<String> {
    let mut options: Vec<BoxedStrategy<String>> = vec![
        any::<String>()
            .prop_map(|s| print(&Expr::Str(s.into()), Dialect::AadConnect))
            .boxed(),
        (0i64..1_000_000).prop_map(|n| n.to_string()).boxed(),
        any::<i64>()
            .prop_map(|n| format!("&H{:X}", n as u64))
            .boxed(),
        prop_oneof![Just("True".to_string()), Just("False".to_string())].boxed(),
        attr_name().prop_map(|n| format!("[{n}]")).boxed(),
        prop_oneof![Just("vbTextCompare".to_string()), Just("UTF8".to_string())].boxed(),
    ];
    if dialect == Dialect::AadConnect {
        options.push(
            prop_oneof![
                Just("NULL".to_string()),
                Just("AuthoritativeNull".to_string()),
                Just("IgnoreThisFlow".to_string()),
                Just("CRLF".to_string()),
                Just("%Domain.FQDN%".to_string()),
            ]
            .boxed(),
        );
    }
    proptest::strategy::Union::new(options).boxed()
}

/// Functions whose arguments have shapes a random generator would mostly get wrong
/// (variables, quoted attribute names, literal patterns) are left to the fixtures.
fn generatable(s: &Signature) -> bool {
    !matches!(
        s.func,
        Func::Select
            | Func::Where
            | Func::With
            | Func::ImportedValue
            | Func::ValueCount
            | Func::ReplaceChars
            | Func::ReplaceProv
    )
}

/// Random expression text that is valid in `dialect`.
fn expression_text(dialect: Dialect) -> BoxedStrategy<String> {
    let sigs: Vec<Signature> = table(dialect).iter().copied().filter(generatable).collect();
    leaf(dialect)
        .prop_recursive(5, 48, 6, move |inner| {
            let sigs = sigs.clone();
            let call = (
                0..sigs.len(),
                proptest::collection::vec(inner.clone(), 0..6),
            )
                .prop_map(move |(i, pool)| {
                    let s = sigs[i];
                    let mut n = s.min.max(pool.len().min(s.max));
                    if matches!(s.func, Func::Switch | Func::SwitchProv) && n % 2 == 1 {
                        n += 1;
                    }
                    let args: Vec<String> = (0..n)
                        .map(|k| pool.get(k).cloned().unwrap_or_else(|| "1".into()))
                        .collect();
                    format!("{}({})", s.name, args.join(", "))
                });
            let ops: &'static [&'static str] = match dialect {
                Dialect::AadConnect => &[
                    "+", "-", "*", "/", "&", "=", "<>", "<", "<=", ">", ">=", "&&", "||",
                ],
                Dialect::Provisioning => &["=", "<>", "<", ">=", "&"],
            };
            let binary = (inner.clone(), 0..ops.len(), inner.clone())
                .prop_map(move |(l, o, r)| format!("({l}) {} ({r})", ops[o]));
            let neg = inner.clone().prop_map(|e| format!("-({e})"));
            if dialect == Dialect::AadConnect {
                prop_oneof![4 => call, 2 => binary, 1 => neg].boxed()
            } else {
                prop_oneof![4 => call, 1 => binary].boxed()
            }
        })
        .boxed()
}

fn attributes() -> impl Strategy<Value = Attributes> {
    proptest::collection::vec(
        (
            attr_name(),
            proptest::collection::vec(any::<String>(), 0..3),
        ),
        0..6,
    )
    .prop_map(|pairs| {
        let mut a = Attributes::new();
        for (k, vs) in pairs {
            a.set(k.as_str(), vs.into_iter().map(Into::into).collect());
        }
        a
    })
}

fn round_trip(dialect: Dialect, text: &str) -> Result<(), TestCaseError> {
    let first = match Expression::parse(text, dialect) {
        Ok(e) => e,
        // A generated text can still be invalid (e.g. nesting beyond the limit); the
        // property is about texts that parse.
        Err(_) => return Ok(()),
    };
    let printed = print(first.ast(), dialect);
    let second = Expression::parse(&printed, dialect).map_err(|e| {
        TestCaseError::fail(format!("printed form does not parse:\n{printed}\n{e}"))
    })?;
    prop_assert_eq!(first.ast(), second.ast(), "printed: {}", printed);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn print_then_parse_gives_the_same_tree_aadconnect(text in expression_text(Dialect::AadConnect)) {
        round_trip(Dialect::AadConnect, &text)?;
    }

    #[test]
    fn print_then_parse_gives_the_same_tree_provisioning(text in expression_text(Dialect::Provisioning)) {
        round_trip(Dialect::Provisioning, &text)?;
    }

    #[test]
    fn evaluation_never_panics(text in expression_text(Dialect::AadConnect), attrs in attributes()) {
        if let Ok(e) = Expression::parse(&text, Dialect::AadConnect) {
            let mut ctx = Context::default();
            ctx.parameters.insert("Domain.FQDN".into(), "contoso.com".into());
            let _ = e.evaluate(&attrs, &ctx);
        }
    }

    #[test]
    fn evaluation_never_panics_provisioning(text in expression_text(Dialect::Provisioning), attrs in attributes()) {
        if let Ok(e) = Expression::parse(&text, Dialect::Provisioning) {
            let _ = e.evaluate(&attrs, &Context::default());
        }
    }

    #[test]
    fn parsing_arbitrary_text_never_panics(text in any::<String>()) {
        let _ = Expression::parse(&text, Dialect::AadConnect);
        let _ = Expression::parse(&text, Dialect::Provisioning);
    }

    #[test]
    fn parsing_token_soup_never_panics(parts in proptest::collection::vec(prop_oneof![
        Just("IIF("), Just(")"), Just(","), Just("["), Just("]"), Just("\""), Just("&H"), Just("&"),
        Just("&&"), Just("||"), Just("%"), Just("$"), Just("-"), Just("="), Just("<>"), Just("\\"),
        Just("Switch("), Just("Mid("), Just("[upn]"), Just("NULL"), Just("1"), Just(" "), Just("\n"),
        Just("é"), Just("“"),
    ], 0..40)) {
        let text: String = parts.concat();
        for d in [Dialect::AadConnect, Dialect::Provisioning] {
            if let Ok(e) = Expression::parse(&text, d) {
                let _ = e.evaluate(&Attributes::new(), &Context::default());
            }
        }
    }
}

const UPN_RULE: &str = r#"IIF(IsPresent([userPrincipalName]),IIF(CBool(InStr(LCase([userPrincipalName]),"@partners.contoso.com")=0),"Member","Guest"),Error("UserPrincipalName is not present to determine UserType"))"#;

/// The same decision in plain Rust.
fn plain(upn: Option<&str>) -> Result<&'static str, ()> {
    match upn {
        None | Some("") => Err(()),
        Some(u) if u.to_lowercase().contains("@partners.contoso.com") => Ok("Guest"),
        Some(_) => Ok("Member"),
    }
}

fn upn() -> impl Strategy<Value = Option<String>> {
    let local = "[a-zA-Z0-9._%+-]{0,12}|\\PC{0,8}";
    let domain = prop_oneof![
        Just("partners.contoso.com".to_string()),
        Just("PARTNERS.Contoso.COM".to_string()),
        Just("contoso.com".to_string()),
        Just("partners.contoso.com.evil.example".to_string()),
        Just("xpartners.contoso.com".to_string()),
        "\\PC{0,20}",
    ];
    prop_oneof![
        1 => Just(None),
        1 => Just(Some(String::new())),
        8 => (local, domain).prop_map(|(l, d)| Some(format!("{l}@{d}"))),
        2 => any::<String>().prop_map(Some),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn upn_suffix_rule_agrees_with_plain_rust(upn in upn()) {
        let rule = Expression::parse(UPN_RULE, Dialect::AadConnect).unwrap();
        let mut attrs = Attributes::new();
        if let Some(u) = &upn {
            attrs.insert("userPrincipalName", u.as_str());
        }
        let ctx = Context::default();
        let got = rule.evaluate(&attrs, &ctx);
        match plain(upn.as_deref()) {
            Ok(want) => prop_assert_eq!(got, Ok(Outcome::Value(Value::str(want)))),
            Err(()) => {
                let e = got.unwrap_err();
                prop_assert!(e.is_raised());
                prop_assert_eq!(e.message, "UserPrincipalName is not present to determine UserType");
            }
        }
    }
}

/// Guards the generators themselves: if most generated texts failed to parse, the
/// round-trip and no-panic properties would be testing almost nothing.
#[test]
fn generated_expressions_mostly_parse() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    for dialect in [Dialect::AadConnect, Dialect::Provisioning] {
        let mut runner = TestRunner::deterministic();
        let strategy = expression_text(dialect);
        let mut ok = 0;
        for _ in 0..300 {
            let text = strategy.new_tree(&mut runner).unwrap().current();
            if Expression::parse(&text, dialect).is_ok() {
                ok += 1;
            }
        }
        assert!(
            ok >= 270,
            "{dialect}: only {ok} of 300 generated expressions parse"
        );
    }
}
