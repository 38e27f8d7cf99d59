//! Property test over whole cycles (state file, full and delta reads): for arbitrary
//! source histories and target contents, a cycle followed by another cycle with no change
//! plans nothing, the target then holds exactly what the rules want for every source
//! object, and users partnersync does not manage — anchorless ones, and ones bound to
//! other anchors (e.g. synced by Entra Connect) — are never touched.

use partnersync_core::{Anchor, Entry};
use partnersync_engine::{run_cycle, CycleOptions, DeleteMode, PlanOptions, SqliteStateStore};
use partnersync_rules::RuleSet;
use partnersync_source::InMemorySource;
use partnersync_target::{block_on, Attributes, InMemoryTarget, TargetDirectory, TargetUser};
use proptest::prelude::*;

const RULES: &str = r#"
[[rule]]
name = "ut"
precedence = 1
[[rule.flow]]
target = "userType"
expression = 'IIF(InStr(LCase([userPrincipalName]), "@partners.contoso.com") > 0, "Guest", "Member")'
[[rule.flow]]
target = "userPrincipalName"
source = "userPrincipalName"
[[rule.flow]]
target = "displayName"
source = "displayName"
"#;

fn upn(n: u8, partner: bool) -> String {
    if partner {
        format!("u{n}@partners.contoso.com")
    } else {
        format!("u{n}@contoso.com")
    }
}

fn entry(n: u8, partner: bool, name: &str) -> Entry {
    let mut e = Entry::new(
        Anchor::from_bytes(vec![n; 16]).unwrap(),
        format!("CN=u{n},DC=contoso,DC=com"),
    );
    e.attributes
        .insert_text("userPrincipalName", &upn(n, partner));
    e.attributes.insert_text("displayName", name);
    e
}

#[derive(Debug, Clone)]
enum Step {
    Upsert { n: u8, partner: bool, name: String },
    Delete { n: u8 },
    PortalEdit { n: u8, name: String },
}

fn steps() -> impl Strategy<Value = Vec<Vec<Step>>> {
    let step =
        prop_oneof![
            (1u8..40, any::<bool>(), "[A-Z][a-z]{0,5}")
                .prop_map(|(n, partner, name)| Step::Upsert { n, partner, name }),
            (1u8..40).prop_map(|n| Step::Delete { n }),
            (1u8..40, "[A-Z][a-z]{0,5}").prop_map(|(n, name)| Step::PortalEdit { n, name }),
        ];
    proptest::collection::vec(proptest::collection::vec(step, 0..12), 1..4)
}

fn foreign(i: u8, anchored: bool) -> TargetUser {
    let mut attributes = Attributes::new();
    attributes.insert(
        "userPrincipalName".into(),
        vec![format!("staff{i}@contoso.com")],
    );
    attributes.insert("displayName".into(), vec![format!("Staff {i}")]);
    TargetUser {
        id: format!("foreign-{i}"),
        anchor: anchored.then(|| Anchor::from_bytes(vec![200 + i; 16]).unwrap()),
        attributes,
        enabled: true,
        deleted: false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn cycles_converge_and_never_touch_unmanaged_users(
        initial in proptest::collection::btree_map(1u8..40, (any::<bool>(), "[A-Z][a-z]{0,5}"), 0..20),
        history in steps(),
        foreigners in proptest::collection::vec(any::<bool>(), 0..5),
        delete_now in any::<bool>(),
        case in any::<u64>(),
    ) {
        let rules = RuleSet::from_toml_str(RULES).unwrap();
        let source = InMemorySource::new(
            initial.iter().map(|(n, (p, name))| entry(*n, *p, name)).collect(),
        );
        let target = InMemoryTarget::new();
        for (i, anchored) in foreigners.iter().enumerate() {
            target.seed(foreign(i as u8, *anchored));
        }
        let others = |t: &InMemoryTarget| -> Vec<TargetUser> {
            t.users().into_iter().filter(|u| u.id.starts_with("foreign-")).collect()
        };
        let before = others(&target);
        let dir = std::env::temp_dir().join(format!("ps-converge-{}-{case}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut st = SqliteStateStore::open(&dir.join("state.db")).unwrap();
        let options = CycleOptions {
            allow_deletes: Some(usize::MAX),
            plan: PlanOptions {
                delete_mode: if delete_now { DeleteMode::Delete } else { DeleteMode::DisableThenDelete },
                ..PlanOptions::default()
            },
            ..CycleOptions::default()
        };
        let mut rounds = vec![Vec::new()];
        rounds.extend(history);
        for round in rounds {
            for step in round {
                match step {
                    Step::Upsert { n, partner, name } => source.upsert(entry(n, partner, &name)),
                    Step::Delete { n } => { source.delete(&Anchor::from_bytes(vec![n; 16]).unwrap()); }
                    Step::PortalEdit { n, name } => {
                        if let Some(u) = block_on(target.find_by_anchor(&Anchor::from_bytes(vec![n; 16]).unwrap())).unwrap() {
                            target.edit(&u.id, "displayName", vec![name]);
                        }
                    }
                }
            }
            let report = block_on(run_cycle(&source, &target, &rules, &mut st, &options));
            let report = match report {
                Ok(r) => r,
                // An empty source never removes anything: nothing to converge on.
                Err(e) if source.is_empty() => { prop_assert!(e.to_string().contains("no entries")); continue; }
                Err(e) => return Err(TestCaseError::fail(e.to_string())),
            };
            prop_assert!(report.failures.is_empty(), "{:?}", report.failures);
            let again = block_on(run_cycle(&source, &target, &rules, &mut st, &options)).unwrap();
            prop_assert!(again.plan.is_empty(), "not converged: {:?} after {:?}", again.plan, report.plan);
            prop_assert_eq!(&others(&target), &before, "unmanaged users changed");
            for e in source.entries() {
                let u = block_on(target.find_by_anchor(&e.anchor)).unwrap().unwrap();
                prop_assert!(u.enabled && !u.deleted);
                let partner = e.attributes.first_text("userPrincipalName").unwrap_or("").contains("@partners.");
                let want = if partner { "Guest" } else { "Member" };
                prop_assert_eq!(&u.attributes["userType"], &vec![want.to_string()]);
                prop_assert_eq!(
                    u.attributes["displayName"].first().map(String::as_str),
                    e.attributes.first_text("displayName")
                );
            }
        }
        std::fs::remove_dir_all(&dir).ok();
    }
}
