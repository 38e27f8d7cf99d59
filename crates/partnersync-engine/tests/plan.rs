//! Planning, guarding and applying against the in-memory target: zero writes when nothing
//! changed, exact Member → Guest updates, deletion safety, and (property test) convergence
//! without touching unmanaged users.

use std::collections::BTreeSet;

use partnersync_core::{Anchor, Entry};
use partnersync_engine::{
    apply, plan, Action, DeleteMode, DeletionGuard, DesiredObject, PlanOptions,
};
use partnersync_rules::RuleSet;
use partnersync_target::{block_on, Attributes, InMemoryTarget, TargetDirectory, TargetUser};
use proptest::prelude::*;

const RULES: &str = r#"
[[rule]]
name = "ut"
precedence = 1
[[rule.flow]]
target = "userType"
expression = 'IIF(IsPresent([userPrincipalName]), IIF(InStr(LCase([userPrincipalName]), "@partners.contoso.com") > 0, "Guest", "Member"), Error("no UPN"))'
[[rule.flow]]
target = "userPrincipalName"
source = "userPrincipalName"
[[rule.flow]]
target = "displayName"
source = "displayName"
"#;

fn entry(n: u8, upn: Option<&str>, name: &str) -> Entry {
    let mut e = Entry::new(
        Anchor::from_bytes(vec![n; 16]).unwrap(),
        format!("CN={name},DC=contoso,DC=com"),
    );
    if let Some(u) = upn {
        e.attributes.insert_text("userPrincipalName", u);
    }
    e.attributes.insert_text("displayName", name);
    e
}

fn desired(rules: &RuleSet, entries: &[Entry]) -> Vec<DesiredObject> {
    entries
        .iter()
        .map(|e| DesiredObject::from_evaluation(e, &rules.evaluate(e)))
        .collect()
}

fn cycle(
    rules: &RuleSet,
    entries: &[Entry],
    target: &InMemoryTarget,
    options: &PlanOptions,
) -> partnersync_engine::SyncPlan {
    let managed = block_on(target.list_managed()).unwrap();
    plan(&desired(rules, entries), &managed, options)
}

#[test]
fn second_cycle_without_changes_writes_nothing() {
    let rules = RuleSet::from_toml_str(RULES).unwrap();
    let entries = vec![
        entry(1, Some("ana@partners.contoso.com"), "Ana"),
        entry(2, Some("dana@contoso.com"), "Dana"),
    ];
    let target = InMemoryTarget::new();
    let first = cycle(&rules, &entries, &target, &PlanOptions::default());
    assert_eq!(first.counts().creates, 2);
    let report = block_on(apply(&target, &first, 20));
    assert_eq!(report.failed(), 0);
    target.clear_log();
    let second = cycle(&rules, &entries, &target, &PlanOptions::default());
    assert!(second.is_empty(), "{second:?}");
    assert!(target.log().is_empty());
}

#[test]
fn moving_a_user_to_the_partner_domain_is_exactly_one_user_type_change() {
    let rules = RuleSet::from_toml_str(RULES).unwrap();
    let mut entries = vec![
        entry(1, Some("ana@contoso.com"), "Ana"),
        entry(2, Some("dana@contoso.com"), "Dana"),
    ];
    let target = InMemoryTarget::new();
    block_on(apply(
        &target,
        &cycle(&rules, &entries, &target, &PlanOptions::default()),
        20,
    ));
    entries[0] = entry(1, Some("ana@partners.contoso.com"), "Ana");
    let p = cycle(&rules, &entries, &target, &PlanOptions::default());
    assert_eq!(p.actions.len(), 1);
    assert_eq!(p.counts().user_type_changes, 1);
    let Action::Update { changes, .. } = &p.actions[0] else {
        panic!("{p:?}")
    };
    let ut = changes.iter().find(|c| c.attribute == "userType").unwrap();
    assert_eq!(
        (ut.old.clone(), ut.new.clone()),
        (vec!["Member".to_string()], vec!["Guest".to_string()])
    );
}

#[test]
fn rule_errors_are_reported_and_never_written() {
    let rules = RuleSet::from_toml_str(RULES).unwrap();
    let entries = vec![entry(1, None, "Nameless")];
    let target = InMemoryTarget::new();
    let p = cycle(&rules, &entries, &target, &PlanOptions::default());
    assert!(p.is_empty());
    assert_eq!(p.errors.len(), 1);
    assert!(p.errors[0].message.contains("no UPN"), "{:?}", p.errors);
}

#[test]
fn gone_users_are_disabled_first_and_restored_when_back() {
    let rules = RuleSet::from_toml_str(RULES).unwrap();
    let entries = vec![
        entry(1, Some("a@contoso.com"), "A"),
        entry(2, Some("b@contoso.com"), "B"),
    ];
    let target = InMemoryTarget::new();
    block_on(apply(
        &target,
        &cycle(&rules, &entries, &target, &PlanOptions::default()),
        20,
    ));
    let p = cycle(&rules, &entries[..1], &target, &PlanOptions::default());
    assert_eq!(p.counts().disables, 1);
    block_on(apply(&target, &p, 20));
    assert!(
        cycle(&rules, &entries[..1], &target, &PlanOptions::default()).is_empty(),
        "disabling is not repeated"
    );

    let delete = PlanOptions {
        delete_mode: DeleteMode::Delete,
        ..PlanOptions::default()
    };
    let p = cycle(&rules, &entries[..1], &target, &delete);
    assert_eq!(p.counts().deletes, 1);
    block_on(apply(&target, &p, 20));
    let p = cycle(&rules, &entries, &target, &PlanOptions::default());
    assert_eq!(p.counts().restores, 1, "{p:?}");
    block_on(apply(&target, &p, 20));
    assert!(cycle(&rules, &entries, &target, &PlanOptions::default()).is_empty());
}

#[test]
fn partial_reads_never_remove_anything() {
    let rules = RuleSet::from_toml_str(RULES).unwrap();
    let entries = vec![entry(1, Some("a@contoso.com"), "A")];
    let target = InMemoryTarget::new();
    block_on(apply(
        &target,
        &cycle(&rules, &entries, &target, &PlanOptions::default()),
        20,
    ));
    let partial = PlanOptions {
        source_complete: false,
        ..PlanOptions::default()
    };
    assert!(cycle(&rules, &[], &target, &partial).is_empty());
}

#[test]
fn guard_blocks_mass_removals_and_empty_sources() {
    let rules = RuleSet::from_toml_str(RULES).unwrap();
    let entries: Vec<Entry> = (1..=20)
        .map(|i| entry(i, Some(&format!("u{i}@contoso.com")), &format!("U{i}")))
        .collect();
    let target = InMemoryTarget::new();
    block_on(apply(
        &target,
        &cycle(&rules, &entries, &target, &PlanOptions::default()),
        20,
    ));
    let guard = DeletionGuard::default();

    let empty = cycle(&rules, &[], &target, &PlanOptions::default());
    let e = guard.check(&empty, 0, None).unwrap_err();
    assert!(e.to_string().contains("source returned no entries"), "{e}");
    assert!(e.to_string().contains("nothing was written"), "{e}");
    assert_eq!(e.would_remove.len(), 20);

    let three_gone = cycle(&rules, &entries[3..], &target, &PlanOptions::default());
    let e = guard.check(&three_gone, 17, None).unwrap_err();
    assert!(e.reason.contains("15.0% of 20 managed users"), "{e}");
    assert!(
        guard.check(&three_gone, 17, Some(3)).is_ok(),
        "--allow-deletes 3 lifts it for one run"
    );
    assert!(guard.check(&three_gone, 17, Some(2)).is_err());
    let strict = DeletionGuard {
        max_count: 2,
        max_percent: 100.0,
    };
    assert!(strict
        .check(&three_gone, 17, None)
        .unwrap_err()
        .reason
        .contains("exceed the limit of 2"));
    let one_gone = cycle(&rules, &entries[1..], &target, &PlanOptions::default());
    assert!(guard.check(&one_gone, 19, None).is_ok());
}

#[test]
fn plans_serialise_as_versioned_json() {
    let rules = RuleSet::from_toml_str(RULES).unwrap();
    let target = InMemoryTarget::new();
    let p = cycle(
        &rules,
        &[entry(1, Some("a@partners.contoso.com"), "A")],
        &target,
        &PlanOptions::default(),
    );
    let json = serde_json::to_value(&p).unwrap();
    assert_eq!(json["version"], 1);
    assert_eq!(json["actions"][0]["action"], "create");
    assert_eq!(json["actions"][0]["attributes"]["userType"][0], "Guest");
    assert_eq!(json["actions"][0]["mode"], "direct");
    let back: partnersync_engine::SyncPlan = serde_json::from_value(json).unwrap();
    assert_eq!(back, p);
}

// ---- convergence property

#[derive(Debug, Clone)]
struct Source {
    n: u8,
    partner: bool,
    name: String,
}

fn sources() -> impl Strategy<Value = Vec<Source>> {
    proptest::collection::btree_map(1u8..60, (any::<bool>(), "[A-Z][a-z]{0,6}"), 0..25).prop_map(
        |m| {
            m.into_iter()
                .map(|(n, (partner, name))| Source { n, partner, name })
                .collect()
        },
    )
}

#[derive(Debug, Clone)]
enum Seed {
    Managed {
        n: u8,
        name: String,
        enabled: bool,
        deleted: bool,
        user_type: Option<String>,
    },
    Unmanaged {
        name: String,
    },
}

fn seeds() -> impl Strategy<Value = Vec<Seed>> {
    proptest::collection::vec(
        prop_oneof![
            (
                1u8..60,
                "[A-Z][a-z]{0,6}",
                any::<bool>(),
                any::<bool>(),
                proptest::option::of(prop_oneof![
                    Just("Member".to_string()),
                    Just("Guest".to_string())
                ])
            )
                .prop_map(|(n, name, enabled, deleted, user_type)| Seed::Managed {
                    n,
                    name,
                    enabled,
                    deleted,
                    user_type
                }),
            "[A-Z][a-z]{0,6}".prop_map(|name| Seed::Unmanaged { name }),
        ],
        0..20,
    )
}

fn upn(n: u8, partner: bool) -> String {
    if partner {
        format!("u{n}@partners.contoso.com")
    } else {
        format!("u{n}@contoso.com")
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn applying_a_plan_then_planning_again_is_empty(src in sources(), seed in seeds(), delete in any::<bool>()) {
        let rules = RuleSet::from_toml_str(RULES).unwrap();
        let target = InMemoryTarget::new();
        let mut seen = BTreeSet::new();
        for (i, s) in seed.iter().enumerate() {
            match s {
                Seed::Managed { n, name, enabled, deleted, user_type } => {
                    if !seen.insert(*n) { continue; }
                    let mut attributes = Attributes::new();
                    attributes.insert("displayName".into(), vec![name.clone()]);
                    attributes.insert("userPrincipalName".into(), vec![upn(*n, i % 2 == 0)]);
                    if let Some(t) = user_type { attributes.insert("userType".into(), vec![t.clone()]); }
                    target.seed(TargetUser { id: format!("m{n}"), anchor: Some(Anchor::from_bytes(vec![*n; 16]).unwrap()), attributes, enabled: *enabled, deleted: *deleted });
                }
                Seed::Unmanaged { name } => {
                    let mut attributes = Attributes::new();
                    attributes.insert("displayName".into(), vec![name.clone()]);
                    target.seed(TargetUser { id: format!("cloud{i}"), anchor: None, attributes, enabled: true, deleted: false });
                }
            }
        }
        let unmanaged_before: Vec<TargetUser> = target.users().into_iter().filter(|u| u.anchor.is_none()).collect();
        let entries: Vec<Entry> = src.iter().map(|s| entry(s.n, Some(&upn(s.n, s.partner)), &s.name)).collect();
        let options = PlanOptions { delete_mode: if delete { DeleteMode::Delete } else { DeleteMode::DisableThenDelete }, ..PlanOptions::default() };
        let first = cycle(&rules, &entries, &target, &options);
        let report = block_on(apply(&target, &first, 20));
        prop_assert_eq!(report.failed(), 0, "{:?}", report);
        let second = cycle(&rules, &entries, &target, &options);
        prop_assert!(second.is_empty(), "second plan not empty: {:?}", second);
        let unmanaged_after: Vec<TargetUser> = target.users().into_iter().filter(|u| u.anchor.is_none()).collect();
        prop_assert_eq!(unmanaged_before, unmanaged_after, "unmanaged users must never change");
        for s in &src {
            let u = block_on(target.find_by_anchor(&Anchor::from_bytes(vec![s.n; 16]).unwrap())).unwrap().unwrap();
            prop_assert!(!u.deleted);
            let want = if s.partner { "Guest" } else { "Member" };
            prop_assert_eq!(&u.attributes["userType"], &vec![want.to_string()]);
        }
    }
}

#[test]
fn creation_mode_travels_from_the_options_to_the_target() {
    let options = PlanOptions {
        creation: partnersync_target::CreationMode::Invitation,
        ..PlanOptions::default()
    };
    let rules = RuleSet::from_toml_str(RULES).unwrap();
    let target = InMemoryTarget::new();
    let e = entry(1, Some("a@partners.contoso.com"), "A");
    // An invitation goes to a mail address: without one the plan says so.
    let p = cycle(&rules, std::slice::from_ref(&e), &target, &options);
    assert!(p.actions.is_empty());
    assert!(p.errors[0].message.contains("no mail"), "{:?}", p.errors);
    let rules = RuleSet::from_toml_str(&format!(
        "{RULES}\n[[rule.flow]]\ntarget = \"mail\"\nsource = \"userPrincipalName\"\n"
    ))
    .unwrap();
    let p = cycle(&rules, &[e], &target, &options);
    block_on(apply(&target, &p, 20));
    assert!(matches!(
        target.log().first(),
        Some(partnersync_target::Operation::Create {
            mode: partnersync_target::CreationMode::Invitation,
            ..
        })
    ));
}
