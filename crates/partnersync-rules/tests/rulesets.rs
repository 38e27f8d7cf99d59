//! Sync rules: precedence, NULL / AuthoritativeNull / IgnoreThisFlow across rules, scoping,
//! UserType validation, apply-once, configuration errors and rule tests.

use partnersync_core::{Anchor, Entry, UserType};
use partnersync_rules::{EvaluationMode, RuleSet, ScopeClause, ScopeOperator};

fn entry(attrs: &[(&str, &str)]) -> Entry {
    let mut e = Entry::new(
        Anchor::from_bytes(vec![7; 16]).unwrap(),
        "CN=Test,OU=Users,DC=contoso,DC=com",
    );
    for (k, v) in attrs {
        e.attributes.insert(*k, *v);
    }
    e
}

fn two_rules(high: &str, low: &str) -> RuleSet {
    RuleSet::from_toml_str(&format!(
        r#"
        [[rule]]
        name = "high"
        precedence = 10
        [[rule.flow]]
        target = "department"
        expression = '{high}'

        [[rule]]
        name = "low"
        precedence = 20
        [[rule.flow]]
        target = "department"
        expression = '{low}'
        "#
    ))
    .unwrap()
}

#[test]
fn lower_precedence_number_wins() {
    let rules = two_rules(r#""from high""#, r#""from low""#);
    let ev = rules.evaluate(&entry(&[]));
    let a = ev.attribute("department").unwrap();
    assert_eq!(a.rule, "high");
    assert_eq!(a.values.as_ref().unwrap()[0].to_string(), "\"from high\"");
}

#[test]
fn rules_are_ordered_by_precedence_not_by_file_order() {
    let rules = RuleSet::from_toml_str(
        r#"
        [[rule]]
        name = "declared first"
        precedence = 90
        [[rule.flow]]
        target = "title"
        constant = "ninety"
        [[rule]]
        name = "declared second"
        precedence = 5
        [[rule.flow]]
        target = "title"
        constant = "five"
        "#,
    )
    .unwrap();
    assert_eq!(
        rules.evaluate(&entry(&[])).attribute("title").unwrap().rule,
        "declared second"
    );
}

#[test]
fn null_lets_a_lower_rule_contribute() {
    let rules = two_rules("NULL", r#""from low""#);
    let a = rules
        .evaluate(&entry(&[]))
        .attribute("department")
        .cloned()
        .unwrap();
    assert_eq!(a.rule, "low");
}

#[test]
fn null_from_everyone_clears_the_attribute() {
    let rules = two_rules("NULL", "NULL");
    let a = rules
        .evaluate(&entry(&[]))
        .attribute("department")
        .cloned()
        .unwrap();
    assert_eq!(a.values, None);
    assert_eq!(a.rule, "high");
}

#[test]
fn authoritative_null_clears_and_beats_lower_rules() {
    let rules = two_rules("AuthoritativeNull", r#""from low""#);
    let a = rules
        .evaluate(&entry(&[]))
        .attribute("department")
        .cloned()
        .unwrap();
    assert_eq!(a.values, None);
    assert_eq!(a.rule, "high");
}

#[test]
fn ignore_this_flow_is_as_if_the_flow_did_not_exist() {
    let rules = two_rules("IgnoreThisFlow", r#""from low""#);
    assert_eq!(
        rules
            .evaluate(&entry(&[]))
            .attribute("department")
            .unwrap()
            .rule,
        "low"
    );
    let rules = two_rules("IgnoreThisFlow", "IgnoreThisFlow");
    let ev = rules.evaluate(&entry(&[]));
    assert!(
        ev.attribute("department").is_none(),
        "all flows ignored: leave the target alone"
    );
    assert!(ev.errors.is_empty());
}

#[test]
fn error_is_a_per_object_error_never_a_silent_default() {
    let rules = two_rules(r#"Error("no department for " & [cn])"#, r#""fallback""#);
    let ev = rules.evaluate(&entry(&[("cn", "Ana")]));
    assert!(ev.attribute("department").is_none());
    assert_eq!(ev.errors.len(), 1);
    let e = &ev.errors[0];
    assert_eq!(e.rule, "high");
    assert_eq!(e.attribute.as_deref(), Some("department"));
    assert_eq!(e.message, "no department for Ana");
    assert!(e.raised);
}

#[test]
fn run_time_errors_name_rule_and_attribute() {
    let rules = two_rules(r#"CNum("abc")"#, "NULL");
    let ev = rules.evaluate(&entry(&[]));
    assert_eq!(ev.errors[0].rule, "high");
    assert!(!ev.errors[0].raised);
    assert!(ev.errors[0]
        .to_string()
        .contains("rule \"high\", attribute department"));
}

fn user_type_rule(expr: &str) -> RuleSet {
    RuleSet::from_toml_str(&format!(
        "[[rule]]\nname = \"ut\"\nprecedence = 1\n[[rule.flow]]\ntarget = \"userType\"\nexpression = '{expr}'\n"
    ))
    .unwrap()
}

#[test]
fn user_type_must_be_exactly_member_or_guest() {
    for bad in [r#""guest""#, r#""GUEST""#, r#""Partner""#, "1"] {
        let rules = user_type_rule(bad);
        let ev = rules.evaluate(&entry(&[]));
        assert!(ev.attribute("userType").is_none(), "{bad}");
        assert_eq!(ev.errors.len(), 1, "{bad}");
        assert_eq!(ev.errors[0].rule, "ut");
        assert!(
            ev.errors[0]
                .message
                .contains("exactly \"Member\" or \"Guest\""),
            "{}",
            ev.errors[0].message
        );
        let err = rules.user_type(&entry(&[])).unwrap_err();
        assert_eq!(err.rule, "ut");
    }
    let rules = user_type_rule(r#""Guest""#);
    assert_eq!(
        rules.evaluate(&entry(&[])).user_type(),
        Some(UserType::Guest)
    );
    assert_eq!(rules.user_type(&entry(&[])).unwrap(), Some(UserType::Guest));
}

#[test]
fn user_type_multi_valued_is_an_error() {
    let rules = user_type_rule(r#"Split("Guest,Member", ",")"#);
    let ev = rules.evaluate(&entry(&[]));
    assert!(ev.errors[0].message.contains("single value"));
}

#[test]
fn require_user_type_turns_a_missing_value_into_an_error() {
    let rules = RuleSet::from_toml_str(
        "require_user_type = true\n[[rule]]\nname = \"ut\"\nprecedence = 1\n[[rule.flow]]\ntarget = \"userType\"\nexpression = 'IIF(IsPresent([x]), \"Guest\", NULL)'\n",
    )
    .unwrap();
    assert_eq!(rules.evaluate(&entry(&[])).errors.len(), 1);
    assert!(rules.user_type(&entry(&[])).is_err());
    assert!(rules.evaluate(&entry(&[("x", "1")])).errors.is_empty());
}

#[test]
fn apply_once_flows_run_only_on_create() {
    let rules = RuleSet::from_toml_str(
        r#"
        [[rule]]
        name = "initial"
        precedence = 1
        [[rule.flow]]
        target = "department"
        constant = "Onboarding"
        apply_once = true
        [[rule]]
        name = "normal"
        precedence = 2
        [[rule.flow]]
        target = "department"
        source = "department"
        "#,
    )
    .unwrap();
    let e = entry(&[("department", "Sales")]);
    let create = rules.evaluate_with(&e, EvaluationMode::Create, false);
    assert_eq!(create.attribute("department").unwrap().rule, "initial");
    assert!(create.attribute("department").unwrap().apply_once);
    let update = rules.evaluate_with(&e, EvaluationMode::Update, true);
    assert_eq!(update.attribute("department").unwrap().rule, "normal");
    assert!(update
        .trace
        .iter()
        .any(|t| t.note.as_deref().is_some_and(|s| s.contains("apply once"))));
}

#[test]
fn scoping_groups_are_ored_and_clauses_anded() {
    let rules = RuleSet::from_toml_str(
        r#"
        [[rule]]
        name = "it or us sales"
        precedence = 1
        scope = [
          [{ attribute = "department", operator = "EQUAL", value = "IT" }],
          [{ attribute = "department", operator = "EQUAL", value = "Sales" }, { attribute = "c", operator = "EQUAL", value = "US" }],
        ]
        [[rule.flow]]
        target = "title"
        constant = "x"
        "#,
    )
    .unwrap();
    let in_scope = |attrs: &[(&str, &str)]| rules.evaluate(&entry(attrs)).in_scope;
    assert!(in_scope(&[("department", "IT")]));
    assert!(in_scope(&[("department", "Sales"), ("c", "US")]));
    assert!(!in_scope(&[("department", "Sales"), ("c", "FR")]));
    assert!(!in_scope(&[]));
}

fn clause(attr: &str, op: &str, value: &str) -> ScopeClause {
    ScopeClause::new(attr, op.parse::<ScopeOperator>().unwrap(), value).unwrap()
}

#[test]
fn connect_operators() {
    let e = entry(&[
        ("mail", "Ana@Contoso.com"),
        ("userAccountControl", "514"),
        ("memberOf", "CN=Partners, OU=Groups,DC=contoso,DC=com"),
        ("proxyAddresses", "SMTP:a@contoso.com"),
        ("proxyAddresses", "smtp:b@contoso.com"),
    ]);
    let cases: &[(&str, &str, &str, bool)] = &[
        ("mail", "EQUAL", "ana@contoso.com", true),
        ("mail", "NOTEQUAL", "ana@contoso.com", false),
        ("mail", "ENDSWITH", "@contoso.com", true),
        ("mail", "NOTENDSWITH", "@contoso.com", false),
        ("mail", "STARTSWITH", "ana", true),
        ("mail", "NOTSTARTSWITH", "bob", true),
        ("mail", "NOTSTARTWITH", "ana", false),
        ("mail", "CONTAINS", "@CONTOSO", true),
        ("mail", "NOTCONTAINS", "fabrikam", true),
        ("mail", "ISNOTNULL", "", true),
        ("mail", "ISNULL", "", false),
        ("missing", "ISNULL", "", true),
        ("missing", "ISNOTNULL", "", false),
        ("missing", "EQUAL", "x", false),
        ("missing", "NOTEQUAL", "x", true),
        ("missing", "NOTSTARTSWITH", "User_", true),
        ("missing", "STARTSWITH", "User_", false),
        ("proxyAddresses", "ISIN", "smtp:b@contoso.com", true),
        ("proxyAddresses", "ISNOTIN", "smtp:c@contoso.com", true),
        ("userAccountControl", "ISBITSET", "2", true),
        ("userAccountControl", "ISBITNOTSET", "2", false),
        ("userAccountControl", "ISNOTBITSET", "8", true),
        ("userAccountControl", "GREATERTHAN", "100", true),
        ("userAccountControl", "LESSTHAN_OR_EQUAL", "514", true),
        (
            "memberOf",
            "ISMEMBEROF",
            "cn=partners,ou=groups,dc=contoso,dc=com",
            true,
        ),
        (
            "memberOf",
            "ISNOTMEMBEROF",
            "CN=Staff,DC=contoso,DC=com",
            true,
        ),
        (
            "memberOf",
            "ISMEMBEROF",
            "CN=Staff,DC=contoso,DC=com",
            false,
        ),
    ];
    for (attr, op, value, want) in cases {
        let c = if *attr == "memberOf" {
            clause("x", op, value)
        } else {
            clause(attr, op, value)
        };
        assert_eq!(c.matches(&e).unwrap(), *want, "{attr} {op} {value}");
    }
}

#[test]
fn provisioning_operators_are_false_on_missing_values() {
    let e = entry(&[
        ("mail", "ana@contoso.com"),
        ("employeeId", "1234567"),
        ("accountEnabled", "True"),
        ("empty", ""),
    ]);
    let cases: &[(&str, &str, &str, bool)] = &[
        ("mail", "EQUALS", "ana@contoso.com", true),
        ("mail", "EQUALS", "ANA@contoso.com", false),
        ("mail", "NOT EQUALS", "x", true),
        ("mail", "REGEX MATCH", r".*\@contoso.com", true),
        ("mail", "NOT REGEX MATCH", r".*\@contoso.com", false),
        ("missing", "NOT REGEX MATCH", "x", false),
        ("missing", "NOT EQUALS", "x", false),
        ("empty", "NOT EQUALS", "x", false),
        ("missing", "IS NULL", "", true),
        ("empty", "IS NULL", "", true),
        ("mail", "IS NOT NULL", "", true),
        ("accountEnabled", "IS TRUE", "", true),
        ("accountEnabled", "IS FALSE", "", false),
        ("employeeId", "Greater_Than", "1000000", true),
        ("employeeId", "Less_Than", "1000000", false),
        ("employeeId", "Greater_Than_OR_EQUALS", "1234567", true),
        ("mail", "Includes", "@contoso", true),
        ("mail", "ENDS_WITH", "@contoso.com", true),
        ("employeeId", "&", "1", true),
        ("employeeId", "!&", "1", false),
    ];
    for (attr, op, value, want) in cases {
        assert_eq!(
            clause(attr, op, value).matches(&e).unwrap(),
            *want,
            "{attr} {op} {value}"
        );
    }
    // An integer operator on a non-integer value is an error naming the clause, not a guess.
    let err = clause("mail", "Greater_Than", "5").matches(&e).unwrap_err();
    assert!(
        err.contains("mail") && err.contains("not a whole number"),
        "{err}"
    );
}

#[test]
fn bad_scoping_clauses_are_rejected_at_load() {
    assert!("EQAUL"
        .parse::<ScopeOperator>()
        .unwrap_err()
        .contains("did you mean EQUAL"));
    assert!(ScopeClause::new("uac", ScopeOperator::IsBitSet, "two")
        .unwrap_err()
        .contains("whole number"));
    assert!(ScopeClause::new("x", ScopeOperator::ProvRegexMatch, "(?<=a)").is_err());
}

#[test]
fn disabled_rules_never_apply() {
    let rules = RuleSet::from_toml_str(
        "[[rule]]\nname = \"off\"\nprecedence = 1\ndisabled = true\n[[rule.flow]]\ntarget = \"t\"\nconstant = \"x\"\n",
    )
    .unwrap();
    let ev = rules.evaluate(&entry(&[]));
    assert!(!ev.in_scope);
    assert!(ev.attributes.is_empty());
}

#[test]
fn configuration_errors_say_where_and_why() {
    let dup = RuleSet::from_toml_str(
        "[[rule]]\nname = \"a\"\nprecedence = 1\n[[rule]]\nname = \"b\"\nprecedence = 1\n",
    )
    .unwrap_err();
    assert!(
        dup.to_string()
            .contains("precedence 1 is already used by rule \"a\""),
        "{dup}"
    );

    let typo = RuleSet::from_toml_str(
        "[[rule]]\nname = \"a\"\nprecedence = 1\n[[rule.flow]]\ntarget = \"t\"\nexpresion = 'x'\n",
    )
    .unwrap_err();
    assert_eq!(typo.line, Some(6), "{typo}");
    assert!(typo.to_string().contains("expresion"), "{typo}");

    let text = "[[rule]]\nname = \"ut\"\nprecedence = 1\n\n[[rule.flow]]\ntarget = \"userType\"\nexpression = 'IIF(Lcase([upn]) = \"x\", \"Guest\", \"Member\")'\n";
    let bad = RuleSet::from_toml_str(text).unwrap_err();
    assert_eq!(bad.line, Some(7));
    let shown = bad.to_string();
    assert!(shown.contains("rule \"ut\", flow userType"), "{shown}");
    assert!(shown.contains("did you mean 'LCase'"), "{shown}");
    assert!(shown.contains("^^^^^"), "{shown}");

    let two = RuleSet::from_toml_str("[[rule]]\nname = \"a\"\nprecedence = 1\n[[rule.flow]]\ntarget = \"t\"\nsource = \"x\"\nconstant = \"y\"\n")
        .unwrap_err();
    assert!(two.to_string().contains("exactly one of"), "{two}");

    let op = RuleSet::from_toml_str("[[rule]]\nname = \"a\"\nprecedence = 1\nscope = [[{ attribute = \"x\", operator = \"STARTWITH\", value = \"y\" }]]\n")
        .unwrap_err();
    assert!(op.to_string().contains("did you mean STARTSWITH"), "{op}");
}

#[test]
fn parameters_and_types_come_from_the_configuration() {
    let rules = RuleSet::from_toml_str(
        r#"
        [parameters]
        "Domain.FQDN" = "contoso.com"
        [attribute_types]
        userAccountControl = "num"
        [[rule]]
        name = "upn"
        precedence = 1
        [[rule.flow]]
        target = "userPrincipalName"
        expression = '[sAMAccountName] & "@" & %Domain.FQDN%'
        [[rule.flow]]
        target = "accountEnabled"
        expression = 'IIF(BitAnd([userAccountControl], 2) = 0, "true", "false")'
        "#,
    )
    .unwrap();
    let ev = rules.evaluate(&entry(&[
        ("sAMAccountName", "ana"),
        ("userAccountControl", "514"),
    ]));
    assert!(ev.errors.is_empty(), "{:?}", ev.errors);
    assert_eq!(
        ev.attribute("userPrincipalName")
            .unwrap()
            .values
            .as_ref()
            .unwrap()[0]
            .to_string(),
        "\"ana@contoso.com\""
    );
    assert_eq!(
        ev.attribute("accountEnabled")
            .unwrap()
            .values
            .as_ref()
            .unwrap()[0]
            .to_string(),
        "\"false\""
    );
    let mut attrs = rules.source_attributes();
    attrs.sort();
    assert_eq!(attrs, vec!["sAMAccountName", "userAccountControl"]);
}

#[test]
fn rule_tests_report_expected_and_actual() {
    let rules = RuleSet::from_toml_str(
        r#"
        [[rule]]
        name = "ut"
        precedence = 1
        [[rule.flow]]
        target = "userType"
        expression = 'IIF(InStr(LCase([upn]), "@partners.") > 0, "Guest", "Member")'
        [[test]]
        name = "passes"
        attributes = { upn = "a@partners.contoso.com" }
        expect = { userType = "Guest" }
        [[test]]
        name = "fails"
        attributes = { upn = "a@contoso.com" }
        expect = { userType = "Guest" }
        [[test]]
        name = "expects an error that does not come"
        attributes = { upn = "a@contoso.com" }
        expect_error = "boom"
        "#,
    )
    .unwrap();
    let report = rules.run_tests();
    assert_eq!((report.passed(), report.failed()), (1, 2));
    let f = &report.outcomes[1].failures[0];
    assert_eq!(f.what, "userType");
    assert_eq!(f.expected, "\"Guest\"");
    assert!(
        f.actual.contains("\"Member\"") && f.actual.contains("rule \"ut\""),
        "{}",
        f.actual
    );
    assert_eq!(report.outcomes[2].failures[0].actual, "no error");
}

#[test]
fn the_shipped_recipes_pass_their_own_tests() {
    for file in [
        "usertype-upn-suffix.toml",
        "usertype-extensionattribute1.toml",
    ] {
        let path = format!("{}/../../examples/rules/{file}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap();
        let rules = RuleSet::from_toml_str(&text).unwrap();
        let report = rules.run_tests();
        assert!(report.outcomes.len() >= 5, "{file}");
        assert_eq!(report.failed(), 0, "{file}: {report:?}");
    }
}

#[test]
fn a_rule_set_is_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<RuleSet>();
    assert_send_sync::<partnersync_rules::Expression>();
    let rules = std::sync::Arc::new(user_type_rule(
        r#"IIF(InStr(LCase([upn]), "@partners.contoso.com") > 0, "Guest", "Member")"#,
    ));
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let rules = rules.clone();
            std::thread::spawn(move || {
                let upn = if i % 2 == 0 {
                    "x@partners.contoso.com"
                } else {
                    "x@contoso.com"
                };
                let mut last = None;
                for _ in 0..1000 {
                    last = Some(rules.user_type(&entry(&[("upn", upn)])).unwrap());
                }
                last
            })
        })
        .collect();
    let got: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(
        got,
        vec![
            Some(Some(UserType::Guest)),
            Some(Some(UserType::Member)),
            Some(Some(UserType::Guest)),
            Some(Some(UserType::Member))
        ]
    );
}

#[test]
fn prepared_entries_evaluate_exactly_like_the_entry() {
    let text = std::fs::read_to_string(format!(
        "{}/../../examples/partnersync.toml",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let rules = RuleSet::from_toml_str(&text).unwrap();
    let cases: Vec<Vec<(&str, &str)>> = vec![
        vec![
            ("userPrincipalName", "a@partners.contoso.com"),
            ("description", "ignored"),
            ("displayName", "A"),
        ],
        vec![
            ("extensionAttribute1", "Member"),
            ("userAccountControl", "514"),
            ("sAMAccountName", "m"),
        ],
        vec![
            ("adminDescription", "User_1"),
            ("userPrincipalName", "w@contoso.com"),
        ],
        vec![("sn", "NoUpn")],
    ];
    for attrs in cases {
        let e = entry(&attrs);
        let prepared = rules.prepare(&e);
        assert!(prepared.len() <= attrs.len());
        assert_eq!(rules.evaluate(&prepared), rules.evaluate(&e), "{attrs:?}");
        assert_eq!(rules.user_type(&prepared), rules.user_type(&e), "{attrs:?}");
    }
    let e = entry(&[("description", "x"), ("userPrincipalName", "u@contoso.com")]);
    assert_eq!(
        rules.prepare(&e).len(),
        1,
        "attributes no rule reads are dropped"
    );
}
