//! The compiled form must compute exactly what the tree walk computes: values, sentinels
//! and error messages, over every fixture case and over random expressions and entries.

use std::collections::HashMap;

use partnersync_core::{Anchor, AttributeValue, Attributes, Entry};
use proptest::prelude::*;

use super::{find_in_lowered, is_ascii, lower_word, lowered_eq, word};
use crate::functions::{table, Func, Signature};
use crate::{attributes_from_json, AttributeType, Context, Dialect, Expr, Expression};

fn volatile(expr: &Expr) -> bool {
    let mut found = false;
    expr.walk(&mut |e| {
        if let Expr::Call(c) = e {
            found |= c.func.is_volatile();
        }
    });
    found
}

/// Both paths over `input`; `None` when the expression has a volatile function.
fn agree(
    expr: &Expression,
    input: &dyn crate::AttributeLookup,
    ctx: &Context,
) -> Result<(), String> {
    if volatile(expr.ast()) {
        return Ok(());
    }
    let fast = expr.evaluate(input, ctx);
    let reference = expr.evaluate_reference(input, ctx);
    if fast == reference {
        Ok(())
    } else {
        Err(format!(
            "{}\n  compiled:  {fast:?}\n  tree walk: {reference:?}",
            expr.source()
        ))
    }
}

fn fixture_cases(text: &str, default: Dialect) -> Vec<String> {
    let file: toml::Value = toml::from_str(text).expect("fixture TOML");
    let mut failures = Vec::new();
    let cases = file["case"].as_array().expect("cases");
    for case in cases {
        let get = |k: &str| case.get(k).and_then(|v| v.as_str());
        let dialect: Dialect = get("dialect").map_or(default, |d| d.parse().expect("dialect"));
        let mut ctx = Context::default();
        if let Some(t) = get("types") {
            let raw: HashMap<String, String> = serde_json::from_str(t).expect("types JSON");
            for (k, v) in raw {
                ctx.types
                    .insert(k, v.parse::<AttributeType>().expect("type"));
            }
        }
        if let Some(p) = get("parameters") {
            ctx.parameters = serde_json::from_str(p).expect("parameters JSON");
        }
        let attrs = match get("attributes") {
            Some(a) => {
                match attributes_from_json(&serde_json::from_str(a).expect("JSON"), &ctx.types) {
                    Ok(a) => a,
                    Err(_) => continue,
                }
            }
            None => Attributes::new(),
        };
        let Ok(expr) = Expression::parse(get("expr").expect("expr"), dialect) else {
            continue;
        };
        if let Err(e) = agree(&expr, &attrs, &ctx) {
            failures.push(e);
        }
        // And once more as an entry with a DN, which `[dn]` reads.
        let mut entry = Entry::new(
            Anchor::from_bytes(vec![7; 16]).expect("anchor"),
            "CN=Ana,DC=contoso,DC=com",
        );
        entry.attributes = attrs;
        if let Err(e) = agree(&expr, &entry, &ctx) {
            failures.push(e);
        }
    }
    failures
}

#[test]
fn compiled_form_agrees_with_the_tree_walk_on_every_fixture() {
    let mut failures = Vec::new();
    failures.extend(fixture_cases(
        include_str!("../../tests/fixtures/aadconnect.toml"),
        Dialect::AadConnect,
    ));
    failures.extend(fixture_cases(
        include_str!("../../tests/fixtures/provisioning.toml"),
        Dialect::Provisioning,
    ));
    failures.extend(fixture_cases(
        include_str!("../../tests/fixtures/documented.toml"),
        Dialect::AadConnect,
    ));
    assert!(
        failures.is_empty(),
        "{} disagreements:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn compiled_form_agrees_on_the_upn_rule_with_lifting_and_types() {
    let upn = r#"IIF(IsPresent([userPrincipalName]),IIF(CBool(InStr(LCase([userPrincipalName]),"@partners.contoso.com")=0),"Member","Guest"),Error("UserPrincipalName is not present to determine UserType"))"#;
    let exprs = [
        upn.to_string(),
        upn.replace("LCase", "UCase"),
        r#"InStr(LCase([u]), "@Partners")"#.to_string(),
        r#"InStr(LCase([u]), "")"#.to_string(),
        r#"InStr([u], "b")"#.to_string(),
        r#"InStr(LCase([u]), "ab") & "|" & Trim([u]) & "|" & Len([u])"#.to_string(),
        r#"Switch(IsPresent([u]), [u], IsNullOrEmpty([u]), "empty")"#.to_string(),
        r#"IIF([u] = "x" && CBool([u]), 1, 2)"#.to_string(),
        r#"CBool(InStr(LCase([u]), "k") = 1) || IsNull([u])"#.to_string(),
    ];
    let values: &[&[&str]] = &[
        &[],
        &[""],
        &["ana@Partners.Contoso.COM"],
        &["ana@contoso.com"],
        &["\u{212A}@partners"],
        &["İAB"],
        &["ab", "AB", "x"],
        &["true"],
        &["12345678901234567890@partners.contoso.com"],
    ];
    let typings: &[Option<AttributeType>] = &[
        None,
        Some(AttributeType::MvString),
        Some(AttributeType::Bool),
        Some(AttributeType::Num),
    ];
    for source in &exprs {
        let expr = Expression::parse(source, Dialect::AadConnect).expect("parses");
        for vs in values {
            for ty in typings {
                let mut ctx = Context::default();
                if let Some(t) = ty {
                    ctx.types.insert("u".into(), *t);
                    ctx.types.insert("userPrincipalName".into(), *t);
                }
                let mut attrs = Attributes::new();
                let list: Vec<AttributeValue> = vs.iter().map(|v| (*v).into()).collect();
                attrs.set("u", list.clone());
                attrs.set("userPrincipalName", list);
                if let Err(e) = agree(&expr, &attrs, &ctx) {
                    panic!("{e}");
                }
            }
        }
    }
}

#[test]
fn compiled_form_agrees_on_provisioning_switches() {
    let exprs = [
        r#"Switch([u], "Member", "Partner", "Guest")"#,
        r#"Switch([u], , "Partner", "Guest", , "none")"#,
        r#"Switch([u], "d", "", "empty", "ab", , "x", [u])"#,
        r#"Switch(Trim([u]), [u], [u], "same")"#,
        r#"Switch(IgnoreFlowIfNullOrEmpty([u]), "d", "ab", Coalesce([v], "c"))"#,
    ];
    let values: &[&[&str]] = &[&[], &[""], &["Partner"], &["ab"], &[" ab "], &["ab", "x"]];
    for source in exprs {
        let expr = Expression::parse(source, Dialect::Provisioning).expect("parses");
        for vs in values {
            let mut attrs = Attributes::new();
            attrs.set("u", vs.iter().map(|v| (*v).into()).collect());
            for ctx in [Context::default(), {
                let mut c = Context::default();
                c.types.insert("u".into(), AttributeType::MvString);
                c
            }] {
                if let Err(e) = agree(&expr, &attrs, &ctx) {
                    panic!("{e}");
                }
            }
        }
    }
}

fn naive_find_lowered(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let lowered = hay.to_ascii_lowercase();
    if needle.is_empty() {
        return Some(0);
    }
    lowered.windows(needle.len()).position(|w| w == needle)
}

#[test]
fn word_helpers() {
    for b in 0u8..0x80 {
        let w = u64::from_le_bytes([b, b'A', b'Z', b'a', b'@', b'[', b'`', b'z']);
        let want: Vec<u8> = w.to_le_bytes().iter().map(u8::to_ascii_lowercase).collect();
        assert_eq!(lower_word(w).to_le_bytes().to_vec(), want, "byte {b:#x}");
    }
    assert_eq!(word(b"abcdefgh"), u64::from_le_bytes(*b"abcdefgh"));
    assert!(is_ascii(b""));
    assert!(is_ascii(b"0123456789abcdefg"));
    assert!(!is_ascii("0123456789abcdefé".as_bytes()));
    assert!(!is_ascii("é0123456789abcdef".as_bytes()));
    assert!(!is_ascii("é".as_bytes()));
    assert_eq!(find_in_lowered(b"", b""), Some(0));
    assert_eq!(find_in_lowered(b"Ab@PARTNERS.x", b"@partners"), Some(2));
    assert_eq!(find_in_lowered(b"@Partners", b"@partners.contoso"), None);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn lowered_search_matches_lowering_then_searching(
        hay in "[a-cA-C@.]{0,40}",
        needle in "[a-c@.]{0,12}",
    ) {
        prop_assert_eq!(find_in_lowered(hay.as_bytes(), needle.as_bytes()), naive_find_lowered(hay.as_bytes(), needle.as_bytes()));
        if hay.len() == needle.len() {
            prop_assert_eq!(lowered_eq(hay.as_bytes(), needle.as_bytes()), hay.to_ascii_lowercase() == needle);
        }
    }

    #[test]
    fn lowered_eq_matches_lowering(text in "[ -~]{0,30}") {
        let lower = text.to_ascii_lowercase();
        prop_assert!(lowered_eq(text.as_bytes(), lower.as_bytes()));
        prop_assert!(is_ascii(text.as_bytes()));
    }
}

// ---- random expressions over random entries

const NAMES: &[&str] = &["a", "b", "A", "m", "dn"];

fn leaf(dialect: Dialect) -> BoxedStrategy<String> {
    let mut options = vec![
        prop_oneof![
            Just("\"\"".to_string()),
            Just("\"x\"".to_string()),
            Just("\"X\"".to_string()),
            Just("\"ab\"".to_string()),
            Just("\"@p.com\"".to_string()),
            Just("\"True\"".to_string()),
            Just("\" 12 \"".to_string()),
            Just("\"é\"".to_string()),
            Just("\"vbTextCompare\"".to_string()),
        ]
        .boxed(),
        (0i64..4).prop_map(|n| n.to_string()).boxed(),
        prop_oneof![Just("True".to_string()), Just("False".to_string())].boxed(),
        proptest::sample::select(NAMES)
            .prop_map(|n| format!("[{n}]"))
            .boxed(),
        proptest::sample::select(NAMES)
            .prop_map(|n| format!("[{n}]"))
            .boxed(),
    ];
    if dialect == Dialect::AadConnect {
        options.push(
            prop_oneof![
                Just("NULL".to_string()),
                Just("AuthoritativeNull".to_string()),
                Just("IgnoreThisFlow".to_string()),
                Just("CRLF".to_string()),
                Just("%P%".to_string()),
            ]
            .boxed(),
        );
    }
    proptest::strategy::Union::new(options).boxed()
}

fn generatable(s: &Signature) -> bool {
    !s.func.is_volatile()
        && !matches!(
            s.func,
            Func::Select | Func::Where | Func::With | Func::ImportedValue | Func::ValueCount
        )
}

/// The functions the compiled form treats specially, drawn more often.
fn hot(s: &Signature) -> bool {
    matches!(
        s.func,
        Func::Iif
            | Func::Switch
            | Func::SwitchProv
            | Func::Coalesce
            | Func::IgnoreFlowIfNullOrEmpty
            | Func::IsPresent
            | Func::IsNullOrEmpty
            | Func::IsNull
            | Func::IsEmpty
            | Func::CBool
            | Func::CStr
            | Func::LCase
            | Func::ToLower
            | Func::UCase
            | Func::Trim
            | Func::Len
            | Func::Not
            | Func::InStr
            | Func::Left
            | Func::Mid
            | Func::Split
            | Func::Join
            | Func::Count
            | Func::Item
    )
}

fn expression_text(dialect: Dialect) -> BoxedStrategy<String> {
    let all: Vec<Signature> = table(dialect).iter().copied().filter(generatable).collect();
    let hot: Vec<Signature> = all.iter().copied().filter(hot).collect();
    leaf(dialect)
        .prop_recursive(4, 40, 5, move |inner| {
            let pick = |sigs: Vec<Signature>, inner: BoxedStrategy<String>| {
                (0..sigs.len(), proptest::collection::vec(inner, 0..5)).prop_map(
                    move |(i, pool)| {
                        let s = sigs[i];
                        let mut n = s.min.max(pool.len().min(s.max));
                        if matches!(s.func, Func::Switch | Func::SwitchProv) && n % 2 == 1 {
                            n += 1;
                        }
                        let args: Vec<String> = (0..n)
                            .map(|k| {
                                // A literal needle now and then, for InStr's precomputed search.
                                if s.func == Func::InStr && k == 1 && n == 2 && pool.len() % 2 == 0
                                {
                                    "\"b\"".to_string()
                                } else {
                                    pool.get(k).cloned().unwrap_or_else(|| "\"1\"".into())
                                }
                            })
                            .collect();
                        format!("{}({})", s.name, args.join(", "))
                    },
                )
            };
            let ops: &'static [&'static str] = match dialect {
                Dialect::AadConnect => &["+", "-", "&", "=", "<>", "<", ">=", "&&", "||"],
                Dialect::Provisioning => &["=", "<>", "<", ">=", "&"],
            };
            let binary = (inner.clone(), 0..ops.len(), inner.clone())
                .prop_map(move |(l, o, r)| format!("({l}) {} ({r})", ops[o]));
            prop_oneof![
                4 => pick(hot.clone(), inner.clone().boxed()),
                2 => pick(all.clone(), inner.clone().boxed()),
                2 => binary,
                1 => inner.clone().prop_map(|e| format!("-({e})")),
            ]
            .boxed()
        })
        .boxed()
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("ab".to_string()),
        Just("AB".to_string()),
        Just("x@P.com".to_string()),
        Just("True".to_string()),
        Just("12".to_string()),
        Just("İK\u{212A}".to_string()),
        "[a-zA-Z@. ]{0,12}",
    ]
}

fn entry() -> impl Strategy<Value = (Entry, Context)> {
    (
        proptest::collection::vec(
            (
                proptest::sample::select(NAMES),
                proptest::collection::vec(value(), 0..3),
            ),
            0..5,
        ),
        proptest::collection::vec(
            (
                proptest::sample::select(NAMES),
                proptest::sample::select(vec![
                    AttributeType::String,
                    AttributeType::MvString,
                    AttributeType::Num,
                    AttributeType::Bool,
                    AttributeType::Ref,
                    AttributeType::Bin,
                ]),
            ),
            0..2,
        ),
    )
        .prop_map(|(pairs, types)| {
            let mut e = Entry::new(
                Anchor::from_bytes(vec![3; 16]).expect("anchor"),
                "CN=X,DC=y",
            );
            for (k, vs) in pairs {
                e.attributes
                    .set(k, vs.into_iter().map(Into::into).collect());
            }
            let mut ctx = Context::default();
            ctx.parameters.insert("P".into(), "p".into());
            for (k, t) in types {
                ctx.types.insert(k.to_string(), t);
            }
            (e, ctx)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1500))]

    #[test]
    fn compiled_form_agrees_on_random_expressions_aadconnect(
        text in expression_text(Dialect::AadConnect),
        (entry, ctx) in entry(),
    ) {
        if let Ok(expr) = Expression::parse(&text, Dialect::AadConnect) {
            if let Err(e) = agree(&expr, &entry, &ctx) {
                prop_assert!(false, "{}", e);
            }
        }
    }

    #[test]
    fn compiled_form_agrees_on_random_expressions_provisioning(
        text in expression_text(Dialect::Provisioning),
        (entry, ctx) in entry(),
    ) {
        if let Ok(expr) = Expression::parse(&text, Dialect::Provisioning) {
            if let Err(e) = agree(&expr, &entry, &ctx) {
                prop_assert!(false, "{}", e);
            }
        }
    }
}
