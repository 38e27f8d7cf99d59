//! Whole cycles over the in-memory source and target with a SQLite state file: zero writes
//! on an unchanged source, the UserType change, guard, staging, empty-source protection,
//! delta cycles, drift, soft match, disable-then-delete, error policies, cancellation,
//! crash recovery and stale plans.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use partnersync_core::{Anchor, Entry};
use partnersync_engine::{
    apply_saved_plan, prepare_cycle, run_cycle, run_cycle_with, Action, CycleError, CycleHooks,
    CycleOptions, DriftPolicy, ErrorPolicy, ReadMode, SqliteStateStore, StateStore,
};
use partnersync_rules::RuleSet;
use partnersync_source::InMemorySource;
use partnersync_target::{
    block_on, Attributes, InMemoryTarget, Operation, TargetDirectory, TargetUser,
};

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

#[test]
fn a_delta_that_empties_the_source_trips_the_empty_source_guard() {
    let rules = RuleSet::from_toml_str(RULES).unwrap();
    let source = source_of(4);
    let target = InMemoryTarget::new();
    let (mut st, dir) = state("delta-empty");
    // Limits that let every removal through: only the empty-source rule may stop a run.
    let mut opts = CycleOptions::default();
    opts.guard.max_percent = 100.0;
    block_on(run_cycle(&source, &target, &rules, &mut st, &opts)).unwrap();
    // One user goes: disabled by a delta, as usual.
    source.delete(&anchor(1));
    let one = block_on(run_cycle(&source, &target, &rules, &mut st, &opts)).unwrap();
    assert_eq!((one.mode, one.plan.counts().disables), (ReadMode::Delta, 1));
    target.clear_log();

    // The other three go in one delta: the source is now as empty as an empty full read.
    for i in 2..=4 {
        source.delete(&anchor(i));
    }
    for allow in [None, Some(1000)] {
        let err = block_on(run_cycle(
            &source,
            &target,
            &rules,
            &mut st,
            &CycleOptions {
                allow_deletes: allow,
                ..opts.clone()
            },
        ))
        .unwrap_err();
        assert!(
            err.to_string().contains("source returned no entries"),
            "{err}"
        );
    }
    assert!(target.log().is_empty(), "{:?}", target.log());
    // Removing only some of them is not an empty source.
    source.upsert(entry(4, "u4@contoso.com"));
    let some = block_on(run_cycle(&source, &target, &rules, &mut st, &opts)).unwrap();
    assert_eq!(some.plan.counts().disables, 2, "{:?}", some.plan);
    std::fs::remove_dir_all(dir).ok();
}

fn source_of(n: u8) -> InMemorySource {
    InMemorySource::new(
        (1..=n)
            .map(|i| entry(i, &format!("u{i}@contoso.com")))
            .collect(),
    )
}

fn anchor(n: u8) -> Anchor {
    Anchor::from_bytes(vec![n; 16]).unwrap()
}

fn id_of(target: &InMemoryTarget, n: u8) -> String {
    block_on(target.find_by_anchor(&anchor(n)))
        .unwrap()
        .unwrap()
        .id
}

#[test]
fn delta_cycles_read_only_what_changed() {
    let rules = RuleSet::from_toml_str(RULES).unwrap();
    let source = source_of(30);
    let target = InMemoryTarget::new();
    let (mut st, dir) = state("delta");
    let opts = CycleOptions::default();
    let first = block_on(run_cycle(&source, &target, &rules, &mut st, &opts)).unwrap();
    assert!(matches!(first.mode, ReadMode::Full(_)), "{:?}", first.mode);
    target.clear_log();

    let idle = block_on(run_cycle(&source, &target, &rules, &mut st, &opts)).unwrap();
    assert_eq!(idle.mode, ReadMode::Delta);
    assert_eq!(idle.source_entries, 0);
    assert!(
        idle.plan.is_empty() && target.log().is_empty(),
        "{:?}",
        idle.plan
    );

    source.modify(&anchor(3), |a| {
        a.set("userPrincipalName", vec!["u3@partners.contoso.com".into()])
    });
    source.delete(&anchor(4));
    let changed = block_on(run_cycle(&source, &target, &rules, &mut st, &opts)).unwrap();
    assert_eq!(changed.mode, ReadMode::Delta);
    assert_eq!(
        changed.source_entries, 1,
        "only the modified entry was read"
    );
    let c = changed.plan.counts();
    assert_eq!(
        (c.updates, c.user_type_changes, c.disables),
        (1, 1, 1),
        "{:?}",
        changed.plan
    );
    assert_eq!(target.log().len(), 2);

    // Our own writes come back through the target's change feed: still zero writes.
    target.clear_log();
    let after = block_on(run_cycle(&source, &target, &rules, &mut st, &opts)).unwrap();
    assert!(after.plan.is_empty(), "{:?}", after.plan);
    assert!(target.log().is_empty());

    // New rules: everything is evaluated again.
    let new_rules = CycleOptions {
        config_digest: "v2".into(),
        ..CycleOptions::default()
    };
    let full = block_on(run_cycle(&source, &target, &rules, &mut st, &new_rules)).unwrap();
    assert_eq!(
        full.mode,
        ReadMode::Full("the rules or configuration changed".into())
    );
    assert_eq!(full.source_entries, 29);
    assert!(full.plan.is_empty());
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn portal_drift_is_corrected_or_reported() {
    let rules = RuleSet::from_toml_str(RULES).unwrap();
    let source = source_of(10);
    let target = InMemoryTarget::new();
    let (mut st, dir) = state("drift");
    let opts = CycleOptions::default();
    block_on(run_cycle(&source, &target, &rules, &mut st, &opts)).unwrap();
    // The next cycle sees partnersync's own 10 creates in the change feed, once.
    let own = block_on(run_cycle(&source, &target, &rules, &mut st, &opts)).unwrap();
    assert_eq!((own.target_changes, own.plan.actions.len()), (10, 0));
    let id = id_of(&target, 2);
    assert!(target.edit(&id, "userType", vec!["Guest".into()]));
    let report = block_on(run_cycle(
        &source,
        &target,
        &rules,
        &mut st,
        &CycleOptions {
            drift: DriftPolicy::Report,
            ..CycleOptions::default()
        },
    ))
    .unwrap();
    assert_eq!(report.mode, ReadMode::Delta);
    assert_eq!(report.target_changes, 1);
    assert!(report.plan.is_empty());
    assert_eq!(report.plan.kept.len(), 1, "{:?}", report.plan.kept);
    // Reported drift is not forgotten: a full cycle in correcting mode puts it back.
    let fix = block_on(run_cycle(
        &source,
        &target,
        &rules,
        &mut st,
        &CycleOptions {
            force_full: true,
            ..opts.clone()
        },
    ))
    .unwrap();
    assert_eq!(fix.plan.actions.len(), 1, "{:?}", fix.plan);
    assert!(target.edit(&id, "userType", vec!["Guest".into()]));
    let corrected = block_on(run_cycle(&source, &target, &rules, &mut st, &opts)).unwrap();
    assert_eq!(corrected.mode, ReadMode::Delta);
    let Action::Update { changes, .. } = &corrected.plan.actions[0] else {
        panic!("{:?}", corrected.plan)
    };
    assert_eq!(changes[0].old, vec!["Guest".to_string()]);
    assert_eq!(changes[0].new, vec!["Member".to_string()]);
    let user = block_on(target.find_by_anchor(&anchor(2)))
        .unwrap()
        .unwrap();
    assert_eq!(user.attributes["userType"], vec!["Member".to_string()]);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn disabled_users_are_deleted_after_the_grace_period_and_come_back_when_the_source_does() {
    let rules = RuleSet::from_toml_str(RULES).unwrap();
    let source = source_of(30);
    let target = InMemoryTarget::new();
    let (mut st, dir) = state("grace");
    let opts = CycleOptions::default();
    block_on(run_cycle(&source, &target, &rules, &mut st, &opts)).unwrap();
    let gone = source.get(&anchor(5)).unwrap();
    source.delete(&anchor(5));
    let disabled = block_on(run_cycle(&source, &target, &rules, &mut st, &opts)).unwrap();
    assert_eq!(disabled.plan.counts().disables, 1);
    assert!(
        !block_on(target.find_by_anchor(&anchor(5)))
            .unwrap()
            .unwrap()
            .enabled
    );
    let early = block_on(run_cycle(&source, &target, &rules, &mut st, &opts)).unwrap();
    assert!(early.plan.is_empty(), "{:?}", early.plan);
    let mut later = opts.clone();
    later.plan.now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        + 31 * 86_400;
    let deleted = block_on(run_cycle(&source, &target, &rules, &mut st, &later)).unwrap();
    assert_eq!(deleted.mode, ReadMode::Delta);
    assert_eq!(deleted.plan.counts().deletes, 1, "{:?}", deleted.plan);
    assert!(
        block_on(target.find_by_anchor(&anchor(5)))
            .unwrap()
            .unwrap()
            .deleted
    );
    assert!(st.object(&anchor(5)).unwrap().unwrap().deleted_at.is_some());

    // The source object returns: restored and enabled again, as the same cloud user.
    source.upsert(gone);
    let back = block_on(run_cycle(&source, &target, &rules, &mut st, &opts)).unwrap();
    let c = back.plan.counts();
    assert_eq!((c.restores, c.updates), (1, 1), "{:?}", back.plan);
    let user = block_on(target.find_by_anchor(&anchor(5)))
        .unwrap()
        .unwrap();
    assert!(user.enabled && !user.deleted);
    assert_eq!(target.users().len(), 30);
    let again = block_on(run_cycle(&source, &target, &rules, &mut st, &opts)).unwrap();
    assert!(again.plan.is_empty(), "{:?}", again.plan);
    std::fs::remove_dir_all(dir).ok();
}

fn cloud_user(id: &str, upn: &str, mail: Option<&str>, anchor: Option<Anchor>) -> TargetUser {
    let mut attributes = Attributes::new();
    attributes.insert("userPrincipalName".into(), vec![upn.into()]);
    if let Some(m) = mail {
        attributes.insert("mail".into(), vec![m.into()]);
    }
    TargetUser {
        id: id.into(),
        anchor,
        attributes,
        enabled: true,
        deleted: false,
    }
}

#[test]
fn soft_match_adopts_one_candidate_and_reports_ambiguity_and_foreign_anchors() {
    let rules = RuleSet::from_toml_str(&format!(
        "{RULES}\n[[rule.flow]]\ntarget = \"mail\"\nsource = \"mail\"\n"
    ))
    .unwrap();
    let mut entries: Vec<Entry> = (1..=4)
        .map(|i| entry(i, &format!("u{i}@contoso.com")))
        .collect();
    entries[1]
        .attributes
        .insert_text("mail", "shared@contoso.com");
    let source = InMemorySource::new(entries);
    let target = InMemoryTarget::new();
    // u1: one cloud user with the same UPN and no anchor → adopted.
    target.seed(cloud_user("cloud-1", "U1@contoso.com", None, None));
    // u2: its UPN matches one user and its mail another → ambiguous.
    target.seed(cloud_user("cloud-2a", "u2@contoso.com", None, None));
    target.seed(cloud_user(
        "cloud-2b",
        "other@contoso.com",
        Some("shared@contoso.com"),
        None,
    ));
    // u3: matches a user bound to another source object → never adopted.
    target.seed(cloud_user(
        "cloud-3",
        "u3@contoso.com",
        None,
        Some(anchor(99)),
    ));
    let (mut st, dir) = state("soft");
    let opts = CycleOptions {
        soft_match: true,
        ..CycleOptions::default()
    };
    let r = block_on(run_cycle(&source, &target, &rules, &mut st, &opts)).unwrap();
    let c = r.plan.counts();
    assert_eq!(
        (c.adoptions, c.creates, c.errors),
        (1, 1, 2),
        "{:?}",
        r.plan
    );
    let ambiguous = r
        .plan
        .errors
        .iter()
        .find(|e| e.message.contains("ambiguous"))
        .unwrap();
    assert!(ambiguous.message.contains("cloud-2a") && ambiguous.message.contains("cloud-2b"));
    let foreign = r
        .plan
        .errors
        .iter()
        .find(|e| e.message.contains("another source object"))
        .unwrap();
    assert!(foreign.message.contains(&anchor(99).to_immutable_id()));
    let adopted = block_on(target.find_by_anchor(&anchor(1)))
        .unwrap()
        .unwrap();
    assert_eq!(adopted.id, "cloud-1");
    assert_eq!(st.object(&anchor(1)).unwrap().unwrap().target_id, "cloud-1");
    assert_eq!(
        block_on(target.find_by_anchor(&anchor(99)))
            .unwrap()
            .unwrap()
            .id,
        "cloud-3",
        "the foreign user keeps its anchor"
    );
    assert_eq!(st.pending().unwrap().len(), 2, "the two errors are retried");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn users_the_tool_does_not_manage_are_never_touched() {
    let rules = RuleSet::from_toml_str(RULES).unwrap();
    let source = source_of(10);
    let target = InMemoryTarget::new();
    // Synced by someone else (e.g. Entra Connect): anchored, but not ours.
    target.seed(cloud_user(
        "connect-1",
        "staff@contoso.com",
        None,
        Some(anchor(200)),
    ));
    let (mut st, dir) = state("unmanaged");
    let opts = CycleOptions {
        plan: partnersync_engine::PlanOptions {
            delete_mode: partnersync_engine::DeleteMode::Delete,
            ..Default::default()
        },
        ..CycleOptions::default()
    };
    let r = block_on(run_cycle(&source, &target, &rules, &mut st, &opts)).unwrap();
    assert_eq!(r.plan.counts().creates, 10);
    assert_eq!(r.plan.counts().deletes, 0, "{:?}", r.plan);
    let forced = CycleOptions {
        force_full: true,
        ..opts
    };
    let r = block_on(run_cycle(&source, &target, &rules, &mut st, &forced)).unwrap();
    assert!(r.plan.is_empty(), "{:?}", r.plan);
    assert!(target
        .log()
        .iter()
        .all(|op| !matches!(op, Operation::Delete { id } if id == "connect-1")));
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn error_policy_stops_early_and_failed_objects_are_retried_next_cycle() {
    let rules = RuleSet::from_toml_str(RULES).unwrap();
    let source = source_of(10);
    let target = InMemoryTarget::new();
    // Cloud-only users holding the UPNs of u1..u4: their creates conflict.
    for i in 1..=4 {
        target.seed(cloud_user(
            &format!("c{i}"),
            &format!("u{i}@contoso.com"),
            None,
            None,
        ));
    }
    let (mut st, dir) = state("policy");
    let stop = CycleOptions {
        batch_size: 1,
        error_policy: ErrorPolicy::StopAfter(2),
        ..CycleOptions::default()
    };
    let r = block_on(run_cycle(&source, &target, &rules, &mut st, &stop)).unwrap();
    assert_eq!(r.attempted, 3, "stopped after the third failure");
    assert_eq!(r.failures.len(), 3);
    assert!(r.failures[0].1.message.contains("userPrincipalName"));
    assert!(r.stopped.as_deref().unwrap().contains("not attempted"));
    assert_eq!(st.runs(1).unwrap()[0].outcome, "stopped-by-error-policy");

    let go_on = CycleOptions::default();
    let r = block_on(run_cycle(&source, &target, &rules, &mut st, &go_on)).unwrap();
    assert_eq!(r.failures.len(), 4);
    assert_eq!(r.plan.counts().creates, 10);
    assert_eq!(st.pending().unwrap().len(), 4);

    // The conflicts are resolved in the cloud: the next (delta) cycle retries exactly the
    // four failed objects, though the source did not change.
    for i in 1..=4 {
        block_on(target.apply(&[Operation::PermanentDelete {
            id: format!("c{i}"),
        }]));
    }
    target.clear_log();
    let r = block_on(run_cycle(&source, &target, &rules, &mut st, &go_on)).unwrap();
    assert_eq!(r.mode, ReadMode::Delta);
    assert_eq!(r.plan.counts().creates, 4, "{:?}", r.plan);
    assert!(r.failures.is_empty());
    assert!(st.pending().unwrap().is_empty());
    assert_eq!(target.users().len(), 10);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn cancelling_stops_after_the_batch_in_flight_and_the_next_cycle_finishes() {
    let rules = RuleSet::from_toml_str(RULES).unwrap();
    let source = source_of(50);
    let target = InMemoryTarget::new();
    let (mut st, dir) = state("cancel");
    let hooks = CycleHooks::default();
    let cancel = hooks.cancel.clone();
    let hooks = CycleHooks {
        progress: Some(Arc::new(move |p: &partnersync_engine::Progress| {
            assert!(p.done <= p.total);
            if p.done >= 20 {
                cancel.store(true, Ordering::SeqCst);
            }
        })),
        ..hooks
    };
    let opts = CycleOptions {
        batch_size: 10,
        ..CycleOptions::default()
    };
    let r = block_on(run_cycle_with(
        &source, &target, &rules, &mut st, &opts, &hooks,
    ))
    .unwrap();
    assert!(r.interrupted);
    assert_eq!(r.attempted, 20);
    assert_eq!(
        st.objects().unwrap().len(),
        20,
        "finished batches are recorded"
    );
    assert_eq!(st.runs(1).unwrap()[0].outcome, "interrupted");
    let r = block_on(run_cycle(&source, &target, &rules, &mut st, &opts)).unwrap();
    assert_eq!(r.plan.counts().creates, 30);
    assert_eq!(target.users().len(), 50);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn a_crash_between_write_and_record_is_reconciled_by_anchor_without_duplicates() {
    let rules = RuleSet::from_toml_str(RULES).unwrap();
    let source = source_of(40);
    let target = InMemoryTarget::new();
    let (mut st, dir) = state("crash");
    let opts = CycleOptions::default();
    // What a kill -9 mid-apply leaves: every write journaled, half of them done in the
    // target, none recorded.
    let prepared = block_on(prepare_cycle(&source, &target, &rules, &mut st, &opts)).unwrap();
    let entries: Vec<(&str, &str)> = prepared
        .plan
        .actions
        .iter()
        .map(|a| (a.anchor(), a.name()))
        .collect();
    st.journal_begin(&entries, 1).unwrap();
    let half: Vec<Action> = prepared.plan.actions[..20].to_vec();
    let half_plan = partnersync_engine::SyncPlan {
        actions: half,
        ..prepared.plan.clone()
    };
    block_on(partnersync_engine::apply(&target, &half_plan, 20));
    target.clear_log();

    let r = block_on(run_cycle(&source, &target, &rules, &mut st, &opts)).unwrap();
    assert_eq!(r.recovered, 40);
    assert_eq!(
        r.plan.counts().creates,
        20,
        "the 20 done are found by anchor"
    );
    assert_eq!(target.users().len(), 40);
    assert_eq!(
        st.objects().unwrap().len(),
        40,
        "found objects are recorded too"
    );
    assert!(st.unfinished().unwrap().is_empty());
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn a_saved_plan_is_applied_exactly_or_refused_when_stale() {
    let rules = RuleSet::from_toml_str(RULES).unwrap();
    let source = source_of(10);
    let target = InMemoryTarget::new();
    let (mut st, dir) = state("stale");
    let opts = CycleOptions::default();
    let hooks = CycleHooks::default();
    let saved = block_on(prepare_cycle(&source, &target, &rules, &mut st, &opts))
        .unwrap()
        .plan;
    let json = serde_json::to_string(&saved).unwrap();
    let saved: partnersync_engine::SyncPlan = serde_json::from_str(&json).unwrap();
    // The source changes after review: the saved plan is refused, nothing written.
    source.modify(&anchor(1), |a| {
        a.set("userPrincipalName", vec!["u1@partners.contoso.com".into()])
    });
    let err = block_on(apply_saved_plan(
        &saved, &source, &target, &rules, &mut st, &opts, &hooks,
    ))
    .unwrap_err();
    assert!(matches!(err, CycleError::StalePlan(_)), "{err}");
    assert!(
        err.to_string()
            .contains("1 planned write(s) are no longer right"),
        "{err}"
    );
    assert!(target.log().is_empty());
    // Re-planned, it applies exactly.
    let saved = block_on(prepare_cycle(&source, &target, &rules, &mut st, &opts))
        .unwrap()
        .plan;
    let r = block_on(apply_saved_plan(
        &saved, &source, &target, &rules, &mut st, &opts, &hooks,
    ))
    .unwrap();
    assert_eq!(r.plan.actions, saved.actions);
    assert_eq!(target.log().len(), 10);
    // Applying the same plan twice is refused: the state moved on.
    let err = block_on(apply_saved_plan(
        &saved, &source, &target, &rules, &mut st, &opts, &hooks,
    ))
    .unwrap_err();
    assert!(err.to_string().contains("state generation"), "{err}");
    std::fs::remove_dir_all(dir).ok();
}

/// A target that runs each call's operations in reverse order, as Graph's `$batch` may
/// run them in any order.
struct AnyOrder(InMemoryTarget);

#[async_trait::async_trait]
impl TargetDirectory for AnyOrder {
    async fn list_managed(&self) -> Result<Vec<TargetUser>, partnersync_target::TargetError> {
        self.0.list_managed().await
    }
    async fn find_by_anchor(
        &self,
        anchor: &Anchor,
    ) -> Result<Option<TargetUser>, partnersync_target::TargetError> {
        self.0.find_by_anchor(anchor).await
    }
    async fn find_by(
        &self,
        attribute: &str,
        value: &str,
    ) -> Result<Vec<TargetUser>, partnersync_target::TargetError> {
        self.0.find_by(attribute, value).await
    }
    async fn delta_cookie(&self) -> Result<String, partnersync_target::TargetError> {
        self.0.delta_cookie().await
    }
    async fn changes_since(
        &self,
        cookie: &str,
    ) -> Result<partnersync_target::TargetChanges, partnersync_target::TargetError> {
        self.0.changes_since(cookie).await
    }
    async fn apply(
        &self,
        operations: &[Operation],
    ) -> Vec<Result<partnersync_target::OperationOutcome, partnersync_target::TargetError>> {
        let reversed: Vec<Operation> = operations.iter().rev().cloned().collect();
        let mut results = self.0.apply(&reversed).await;
        results.reverse();
        results
    }
}

#[test]
fn a_restore_and_the_update_after_it_never_share_a_batch() {
    let rules = RuleSet::from_toml_str(RULES).unwrap();
    let source = source_of(10);
    let target = AnyOrder(InMemoryTarget::new());
    let (mut st, dir) = state("order");
    let delete_now = CycleOptions {
        plan: partnersync_engine::PlanOptions {
            delete_mode: partnersync_engine::DeleteMode::Delete,
            ..Default::default()
        },
        ..CycleOptions::default()
    };
    block_on(run_cycle(&source, &target, &rules, &mut st, &delete_now)).unwrap();
    source.delete(&anchor(3));
    let r = block_on(run_cycle(&source, &target, &rules, &mut st, &delete_now)).unwrap();
    assert_eq!(r.plan.counts().deletes, 1);
    // It comes back changed: a restore and an update of the same user in one plan.
    source.upsert(entry(3, "u3@partners.contoso.com"));
    let r = block_on(run_cycle(&source, &target, &rules, &mut st, &delete_now)).unwrap();
    let c = r.plan.counts();
    assert_eq!((c.restores, c.updates), (1, 1), "{:?}", r.plan);
    assert!(r.failures.is_empty(), "{:?}", r.failures);
    let u = block_on(target.find_by_anchor(&anchor(3)))
        .unwrap()
        .unwrap();
    assert!(!u.deleted);
    assert_eq!(u.attributes["userType"], vec!["Guest".to_string()]);
    std::fs::remove_dir_all(dir).ok();
}

/// A portal edit: the user of anchor `n`, an attribute, its new value.
type PortalEdit = (u8, &'static str, &'static str);

/// A target where an administrator edits users in the portal while partnersync applies: after
/// each `apply` call, the edits queued for it are made.
struct EditedDuringApply {
    inner: InMemoryTarget,
    /// Per apply call, last call first: the edits made right after it.
    edits: std::sync::Mutex<Vec<Vec<PortalEdit>>>,
}

impl EditedDuringApply {
    /// `edits[i]` is made right after the i-th `apply` call.
    fn new(edits: Vec<Vec<PortalEdit>>) -> Self {
        EditedDuringApply {
            inner: InMemoryTarget::new(),
            edits: std::sync::Mutex::new(edits.into_iter().rev().collect()),
        }
    }
}

#[async_trait::async_trait]
impl TargetDirectory for EditedDuringApply {
    async fn list_managed(&self) -> Result<Vec<TargetUser>, partnersync_target::TargetError> {
        self.inner.list_managed().await
    }
    async fn find_by_anchor(
        &self,
        anchor: &Anchor,
    ) -> Result<Option<TargetUser>, partnersync_target::TargetError> {
        self.inner.find_by_anchor(anchor).await
    }
    async fn find_by(
        &self,
        attribute: &str,
        value: &str,
    ) -> Result<Vec<TargetUser>, partnersync_target::TargetError> {
        self.inner.find_by(attribute, value).await
    }
    async fn delta_cookie(&self) -> Result<String, partnersync_target::TargetError> {
        self.inner.delta_cookie().await
    }
    async fn changes_since(
        &self,
        cookie: &str,
    ) -> Result<partnersync_target::TargetChanges, partnersync_target::TargetError> {
        self.inner.changes_since(cookie).await
    }
    async fn apply(
        &self,
        operations: &[Operation],
    ) -> Vec<Result<partnersync_target::OperationOutcome, partnersync_target::TargetError>> {
        let results = self.inner.apply(operations).await;
        let edits = self.edits.lock().unwrap().pop().unwrap_or_default();
        for (n, attribute, value) in edits {
            let id = id_of(&self.inner, n);
            assert!(self.inner.edit(&id, attribute, vec![value.into()]));
        }
        results
    }
}

/// After a large apply the change feed returns every user partnersync wrote. Those whose
/// reported values are exactly what it wrote are echoes, counted and not planned again; a
/// portal edit made *while* the apply ran — to a user it had just written, or to one it
/// did not write at all — is still seen by the next delta cycle and corrected.
#[test]
fn own_writes_are_not_planned_again_but_drift_made_during_the_apply_is() {
    let rules = RuleSet::from_toml_str(RULES).unwrap();
    let source = source_of(30);
    // Batches of 10: the edits land between partnersync's writes.
    let opts = CycleOptions {
        batch_size: 10,
        ..CycleOptions::default()
    };
    let target = EditedDuringApply::new(vec![
        // After the first batch (users 1-10 created): user 1's userType (managed) and
        // user 2's jobTitle (not managed by the rules).
        vec![(1, "userType", "Guest"), (2, "jobTitle", "Portal")],
        vec![],
        vec![],
        // The correction of user 1.
        vec![],
        // The second full cycle writes one user; meanwhile user 20, which it did not
        // write, is edited.
        vec![(20, "userType", "Guest")],
    ]);
    let (mut st, dir) = state("echoes");
    let first = block_on(run_cycle(&source, &target, &rules, &mut st, &opts)).unwrap();
    assert!(matches!(first.mode, ReadMode::Full(_)));
    assert_eq!(first.attempted, 30);

    target.inner.clear_log();
    let next = block_on(run_cycle(&source, &target, &rules, &mut st, &opts)).unwrap();
    assert_eq!(next.mode, ReadMode::Delta);
    assert_eq!(next.target_changes, 30, "every create is in the feed");
    assert_eq!(next.target_echoes, 29, "all but the drifted user 1");
    let [Action::Update {
        anchor: a, changes, ..
    }] = &next.plan.actions[..]
    else {
        panic!("one update expected: {:?}", next.plan)
    };
    assert_eq!(a, &anchor(1).to_immutable_id());
    assert_eq!(changes[0].old, vec!["Guest".to_string()]);
    assert_eq!(changes[0].new, vec!["Member".to_string()]);

    // The correction comes back as an echo; nothing more to do.
    let quiet = block_on(run_cycle(&source, &target, &rules, &mut st, &opts)).unwrap();
    assert_eq!((quiet.target_changes, quiet.target_echoes), (1, 1));
    assert!(quiet.plan.is_empty(), "{:?}", quiet.plan);

    // A full cycle that writes one user while the portal changes another.
    source.modify(&anchor(5), |a| {
        a.set("userPrincipalName", vec!["u5@partners.contoso.com".into()])
    });
    let full = block_on(run_cycle(
        &source,
        &target,
        &rules,
        &mut st,
        &CycleOptions {
            force_full: true,
            ..opts.clone()
        },
    ))
    .unwrap();
    assert_eq!(full.attempted, 1, "{:?}", full.plan);
    let after = block_on(run_cycle(&source, &target, &rules, &mut st, &opts)).unwrap();
    assert_eq!((after.target_changes, after.target_echoes), (2, 1));
    assert_eq!(after.plan.actions.len(), 1, "{:?}", after.plan);
    assert_eq!(after.plan.actions[0].anchor(), anchor(20).to_immutable_id());
    let user = block_on(target.find_by_anchor(&anchor(20)))
        .unwrap()
        .unwrap();
    assert_eq!(user.attributes["userType"], vec!["Member".to_string()]);
    std::fs::remove_dir_all(dir).ok();
}

/// What a delta cycle plans is the same whether or not it leaves out the echoes: the users
/// it skips would have been planned as no change. Checked on the feed after a full cycle,
/// with source changes, portal edits and deletions mixed in.
#[test]
fn echoes_in_the_feed_never_hide_a_change() {
    let rules = RuleSet::from_toml_str(RULES).unwrap();
    for seed in 0u8..8 {
        let source = source_of(24);
        let target = InMemoryTarget::new();
        let (mut st, dir) = state(&format!("echo-mix-{seed}"));
        let opts = CycleOptions::default();
        block_on(run_cycle(&source, &target, &rules, &mut st, &opts)).unwrap();
        // Portal edits on some users (managed and unmanaged attributes), source changes on
        // others, some of them the same users; a deletion.
        for n in 1..=24u8 {
            let pick = (n.wrapping_mul(7).wrapping_add(seed)) % 6;
            match pick {
                0 => assert!(target.edit(&id_of(&target, n), "userType", vec!["Guest".into()])),
                1 => assert!(target.edit(&id_of(&target, n), "jobTitle", vec!["x".into()])),
                2 => assert!(source.modify(&anchor(n), |a| {
                    a.set(
                        "userPrincipalName",
                        vec![format!("u{n}@partners.contoso.com").into()],
                    );
                })),
                3 if n % 2 == 0 => assert!(source.delete(&anchor(n))),
                _ => {}
            }
        }
        let delta = block_on(prepare_cycle(&source, &target, &rules, &mut st, &opts)).unwrap();
        assert_eq!(delta.mode, ReadMode::Delta);
        // The same cycle read in full: the reference for what must be planned.
        let reference = block_on(prepare_cycle(
            &source,
            &target,
            &rules,
            &mut st,
            &CycleOptions {
                force_full: true,
                ..opts.clone()
            },
        ))
        .unwrap();
        let mut got: Vec<String> = delta
            .plan
            .actions
            .iter()
            .map(|a| format!("{a:?}"))
            .collect();
        let mut want: Vec<String> = reference
            .plan
            .actions
            .iter()
            .map(|a| format!("{a:?}"))
            .collect();
        got.sort();
        want.sort();
        assert_eq!(got, want, "seed {seed}");
        std::fs::remove_dir_all(dir).ok();
    }
}
