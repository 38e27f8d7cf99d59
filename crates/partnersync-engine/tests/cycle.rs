//! Whole cycles over the in-memory source and target with a SQLite state file: zero writes
//! on an unchanged source, the UserType change, guard, staging, empty-source protection,
//! and state that `sqlite3` can read.

use partnersync_core::{Anchor, Entry};
use partnersync_engine::{run_cycle, CycleError, CycleOptions, SqliteStateStore};
use partnersync_rules::RuleSet;
use partnersync_source::InMemorySource;
use partnersync_target::{block_on, InMemoryTarget};

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
"#;

fn entry(n: u8, upn: &str) -> Entry {
    let mut e = Entry::new(
        Anchor::from_bytes(vec![n; 16]).unwrap(),
        format!("CN=u{n},DC=contoso,DC=com"),
    );
    e.attributes.insert_text("userPrincipalName", upn);
    e
}

fn state(name: &str) -> (SqliteStateStore, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("partnersync-cycle-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    (SqliteStateStore::open(&dir.join("state.db")).unwrap(), dir)
}

#[test]
fn cycles_converge_and_record_what_they_did() {
    let rules = RuleSet::from_toml_str(RULES).unwrap();
    let source = InMemorySource::new(
        (1..=30)
            .map(|i| entry(i, &format!("u{i}@contoso.com")))
            .collect(),
    );
    let target = InMemoryTarget::new();
    let (mut st, dir) = state("converge");
    let opts = CycleOptions::default();

    let first = block_on(run_cycle(&source, &target, &rules, &mut st, &opts)).unwrap();
    assert_eq!(first.plan.counts().creates, 30);
    assert!(first.failures.is_empty());
    assert_eq!(st.objects().unwrap().len(), 30);

    target.clear_log();
    let second = block_on(run_cycle(&source, &target, &rules, &mut st, &opts)).unwrap();
    assert!(second.plan.is_empty());
    assert!(target.log().is_empty(), "no source change, zero writes");

    let anchor = Anchor::from_bytes(vec![7; 16]).unwrap();
    source.modify(&anchor, |a| {
        a.set("userPrincipalName", vec!["u7@partners.contoso.com".into()])
    });
    let third = block_on(run_cycle(&source, &target, &rules, &mut st, &opts)).unwrap();
    assert_eq!(third.plan.actions.len(), 1);
    assert_eq!(third.plan.counts().user_type_changes, 1);

    let runs = st.runs(10).unwrap();
    assert_eq!(runs.len(), 3);
    assert_eq!(runs[0].summary["user_type_changes"], 1);
    assert_eq!(runs[2].summary["creates"], 30);
    assert!(
        st.unfinished().unwrap().is_empty(),
        "every journaled write was closed"
    );
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn guard_staging_and_empty_source_write_nothing() {
    let rules = RuleSet::from_toml_str(RULES).unwrap();
    let source = InMemorySource::new(
        (1..=20)
            .map(|i| entry(i, &format!("u{i}@contoso.com")))
            .collect(),
    );
    let target = InMemoryTarget::new();
    let (mut st, dir) = state("guard");
    block_on(run_cycle(
        &source,
        &target,
        &rules,
        &mut st,
        &CycleOptions::default(),
    ))
    .unwrap();
    target.clear_log();

    for i in 1..=5u8 {
        source.delete(&Anchor::from_bytes(vec![i; 16]).unwrap());
    }
    let err = block_on(run_cycle(
        &source,
        &target,
        &rules,
        &mut st,
        &CycleOptions::default(),
    ))
    .unwrap_err();
    let CycleError::Guard(tripped) = &err else {
        panic!("{err}")
    };
    assert_eq!(tripped.would_remove.len(), 5);
    assert!(err.to_string().contains("nothing was written"), "{err}");
    assert!(target.log().is_empty());
    assert_eq!(st.runs(1).unwrap()[0].outcome, "guard-tripped");

    let staged = block_on(run_cycle(
        &source,
        &target,
        &rules,
        &mut st,
        &CycleOptions {
            staging: true,
            allow_deletes: Some(5),
            ..CycleOptions::default()
        },
    ))
    .unwrap();
    assert_eq!(staged.plan.counts().disables, 5);
    assert_eq!(staged.attempted, 0);
    assert!(target.log().is_empty(), "staging never writes");

    let allowed = block_on(run_cycle(
        &source,
        &target,
        &rules,
        &mut st,
        &CycleOptions {
            allow_deletes: Some(5),
            ..CycleOptions::default()
        },
    ))
    .unwrap();
    assert_eq!(allowed.attempted, 5);

    let empty = InMemorySource::new(Vec::new());
    let err = block_on(run_cycle(
        &empty,
        &target,
        &rules,
        &mut st,
        &CycleOptions {
            allow_deletes: Some(1000),
            ..CycleOptions::default()
        },
    ))
    .unwrap_err();
    assert!(
        err.to_string().contains("source returned no entries"),
        "{err}"
    );
    std::fs::remove_dir_all(dir).ok();
}
