//! Each operation of `GraphTarget` through graph-rs-sdk against the emulator.

mod common;

use common::{anchor, attrs, partner, start};
use partnersync_target::{
    CreationMode, ErrorCategory, Operation, OperationOutcome, TargetDirectory,
};
use serde_json::json;

fn created_id(r: &Result<OperationOutcome, partnersync_target::TargetError>) -> String {
    match r {
        Ok(OperationOutcome::Created { id }) => id.clone(),
        other => panic!("expected Created, got {other:?}"),
    }
}

#[tokio::test]
async fn create_update_disable_delete_restore_purge() {
    let env = common::start().await;
    let t = &env.target;
    let a = anchor(1);
    let r = t
        .apply(&[Operation::Create {
            anchor: a.clone(),
            mode: CreationMode::Direct,
            attributes: partner(1, "contoso.com"),
        }])
        .await;
    let id = created_id(&r[0]);

    let stored = env.emu.admin().user(&id).expect("stored");
    assert_eq!(stored["userType"], "Guest");
    assert_eq!(stored["onPremisesImmutableId"], a.to_immutable_id());
    assert_eq!(stored["accountEnabled"], true);
    assert_eq!(stored["mailNickname"], "partner00001");

    let found = t.find_by_anchor(&a).await.expect("find").expect("some");
    assert_eq!(found.id, id);
    assert_eq!(found.anchor.as_ref(), Some(&a));
    assert!(found.enabled && !found.deleted);
    assert_eq!(found.attributes["companyName"], vec!["Fabrikam"]);

    let mut changes = attrs(&[("jobTitle", "Consultant"), ("department", "Ops")]);
    changes.insert("companyName".into(), vec![]);
    let r = t
        .apply(&[
            Operation::Update {
                id: id.clone(),
                changes,
            },
            Operation::Disable { id: id.clone() },
        ])
        .await;
    assert_eq!(r[0], Ok(OperationOutcome::Updated));
    assert_eq!(r[1], Ok(OperationOutcome::Disabled));
    let found = t.find_by_anchor(&a).await.expect("find").expect("some");
    assert_eq!(found.attributes["jobTitle"], vec!["Consultant"]);
    assert!(found.attributes["companyName"].is_empty());
    assert!(!found.enabled);

    let r = t.apply(&[Operation::Delete { id: id.clone() }]).await;
    assert_eq!(r[0], Ok(OperationOutcome::Deleted));
    let found = t.find_by_anchor(&a).await.expect("find").expect("some");
    assert!(found.deleted);
    assert_eq!(t.list_managed().await.expect("list").len(), 1);

    let r = t.apply(&[Operation::Restore { id: id.clone() }]).await;
    assert_eq!(r[0], Ok(OperationOutcome::Restored));
    assert!(
        !t.find_by_anchor(&a)
            .await
            .expect("find")
            .expect("some")
            .deleted
    );
    // graph-rs-sdk's restore sends no body: without our Content-Length: 0 the emulator
    // answers 411 like Graph.
    let log = env.emu.admin().operations();
    assert!(log
        .iter()
        .any(|o| o.method == "POST" && o.path.ends_with("/restore") && o.status == 200));

    let r = t.apply(&[Operation::Delete { id: id.clone() }]).await;
    assert_eq!(r[0], Ok(OperationOutcome::Deleted));
    let r = t
        .apply(&[Operation::PermanentDelete { id: id.clone() }])
        .await;
    assert_eq!(r[0], Ok(OperationOutcome::PermanentlyDeleted));
    assert_eq!(t.find_by_anchor(&a).await.expect("find"), None);
    assert_eq!(env.emu.admin().count().deleted, 0);

    // Errors are errors: a missing user is NotFound with Graph's code.
    let r = t.apply(&[Operation::Disable { id: id.clone() }]).await;
    let e = r[0].as_ref().expect_err("gone");
    assert_eq!(e.category, ErrorCategory::NotFound);
    assert_eq!(e.code, "Request_ResourceNotFound");
}

#[tokio::test]
async fn federated_create_and_unverified_domain() {
    let env = start().await;
    let a = anchor(2);
    let r = env
        .target
        .apply(&[
            Operation::Create {
                anchor: a.clone(),
                mode: CreationMode::Direct,
                attributes: partner(2, "partners.contoso.com"),
            },
            Operation::Create {
                anchor: anchor(3),
                mode: CreationMode::Direct,
                attributes: partner(3, "fabrikam.com"),
            },
        ])
        .await;
    let id = created_id(&r[0]);
    let stored = env.emu.admin().user(&id).expect("stored");
    assert_eq!(stored["onPremisesImmutableId"], a.to_immutable_id());
    let e = r[1].as_ref().expect_err("unverified");
    assert_eq!(e.category, ErrorCategory::Validation);
    assert_eq!(e.code, "partnersync_UnverifiedDomain");
    // Refused before any request.
    let posts = env
        .emu
        .admin()
        .operations()
        .iter()
        .filter(|o| o.method == "POST" && o.path == "/v1.0/users")
        .count();
    assert_eq!(posts, 1);
}

#[tokio::test]
async fn upn_conflict_names_the_property() {
    let env = start().await;
    let first = env
        .target
        .apply(&[Operation::Create {
            anchor: anchor(10),
            mode: CreationMode::Direct,
            attributes: partner(10, "contoso.com"),
        }])
        .await;
    created_id(&first[0]);
    let second = env
        .target
        .apply(&[Operation::Create {
            anchor: anchor(11),
            mode: CreationMode::Direct,
            attributes: partner(10, "contoso.com"),
        }])
        .await;
    let e = second[0].as_ref().expect_err("conflict");
    assert_eq!(e.category, ErrorCategory::Conflict);
    assert_eq!(e.code, "Request_BadRequest");
    assert!(
        e.message
            .contains("[conflicting property: userPrincipalName]"),
        "{}",
        e.message
    );
}

#[tokio::test]
async fn paging_over_more_than_999_users_keeps_consistency_level() {
    let env = start().await;
    let users = (0..1_205u32).map(|n| {
        json!({
            "accountEnabled": n % 2 == 0,
            "displayName": format!("Seeded {n}"),
            "mailNickname": format!("seeded{n}"),
            "userPrincipalName": format!("seeded{n}@contoso.com"),
            "onPremisesImmutableId": anchor(100_000 + n).to_immutable_id(),
        })
    });
    env.emu.admin().seed_users(users).expect("seed");
    // Unmanaged users (no anchor) are not listed.
    env.emu
        .admin()
        .generate_users(30, "member", "contoso.com")
        .expect("generate");
    let listed = env.target.list_managed().await.expect("list");
    assert_eq!(listed.len(), 1_205);
    assert!(listed
        .iter()
        .all(|u| u.anchor.is_some() && !u.id.is_empty()));
    assert_eq!(listed.iter().filter(|u| u.enabled).count(), 603);
    // Two pages of /users (strict mode re-checks ConsistencyLevel on the second), then deleted items.
    let gets: Vec<_> = env
        .emu
        .admin()
        .operations()
        .into_iter()
        .filter(|o| o.method == "GET" && o.path == "/v1.0/users")
        .collect();
    assert_eq!(gets.len(), 2);
    assert!(gets.iter().all(|o| o.status == 200));

    // Streamed a page at a time: the same users, in the same order.
    let mut streamed = Vec::new();
    let count = env
        .target
        .list_managed_each(&mut |u| {
            streamed.push(u);
            Ok(())
        })
        .await
        .expect("stream");
    assert_eq!(count, 1_205);
    assert_eq!(streamed, listed);

    // An error from the receiver stops the listing at once and is what the call returns.
    let before = env.emu.admin().operations().len();
    let mut seen = 0;
    let e = env
        .target
        .list_managed_each(&mut |_| {
            seen += 1;
            if seen == 10 {
                return Err(partnersync_target::TargetError::new(
                    ErrorCategory::Validation,
                    "test_Stop",
                    "stop here",
                ));
            }
            Ok(())
        })
        .await
        .expect_err("stopped");
    assert_eq!(e.code, "test_Stop");
    assert_eq!(seen, 10);
    let pages_read = env.emu.admin().operations().len() - before;
    assert_eq!(pages_read, 1, "the second page is never asked for");
}

#[tokio::test]
async fn batched_operations_report_per_item_results_out_of_order() {
    let env = start().await;
    env.emu
        .admin()
        .update_settings(|s| s.shuffle_batch_responses = true);
    let t = &env.target;
    // 25 creates: two $batch requests (20 + 5).
    let ops: Vec<_> = (0..25u32)
        .map(|n| Operation::Create {
            anchor: anchor(500 + n),
            mode: CreationMode::Direct,
            attributes: partner(500 + n, "contoso.com"),
        })
        .collect();
    let r = t.apply(&ops).await;
    let ids: Vec<String> = r.iter().map(created_id).collect();
    for (n, id) in ids.iter().enumerate() {
        let stored = env.emu.admin().user(id).expect("stored");
        assert_eq!(
            stored["userPrincipalName"],
            format!("partner{:05}@contoso.com", 500 + n)
        );
    }
    let batches = env
        .emu
        .admin()
        .operations()
        .iter()
        .filter(|o| o.path == "/v1.0/$batch")
        .count();
    assert_eq!(batches, 2);

    let r = t
        .apply(&[
            Operation::Update {
                id: ids[0].clone(),
                changes: attrs(&[("jobTitle", "Lead")]),
            },
            Operation::Disable { id: ids[1].clone() },
            Operation::Delete { id: ids[2].clone() },
            Operation::Disable {
                id: "00000000-0000-4000-8000-000000000000".into(),
            },
            Operation::Create {
                anchor: anchor(999),
                mode: CreationMode::Direct,
                attributes: partner(503, "contoso.com"),
            },
        ])
        .await;
    assert_eq!(r[0], Ok(OperationOutcome::Updated));
    assert_eq!(r[1], Ok(OperationOutcome::Disabled));
    assert_eq!(r[2], Ok(OperationOutcome::Deleted));
    assert_eq!(
        r[3].as_ref().map_err(|e| e.category),
        Err(ErrorCategory::NotFound)
    );
    let e = r[4].as_ref().expect_err("conflict");
    assert_eq!(e.category, ErrorCategory::Conflict);
    assert!(e.message.contains("userPrincipalName"), "{}", e.message);

    let r = t
        .apply(&[
            Operation::Restore { id: ids[2].clone() },
            Operation::Delete { id: ids[3].clone() },
        ])
        .await;
    assert_eq!(r[0], Ok(OperationOutcome::Restored));
    assert_eq!(r[1], Ok(OperationOutcome::Deleted));
    let r = t
        .apply(&[
            Operation::PermanentDelete { id: ids[3].clone() },
            Operation::Disable { id: ids[4].clone() },
        ])
        .await;
    assert_eq!(r[0], Ok(OperationOutcome::PermanentlyDeleted));
    assert_eq!(r[1], Ok(OperationOutcome::Disabled));
    assert_eq!(env.emu.admin().count().active, 24);
    assert_eq!(env.emu.admin().count().deleted, 0);
}

#[tokio::test]
async fn invitation_creates_a_b2b_guest_bound_to_the_anchor() {
    let env = start().await;
    let a = anchor(77);
    let mut attributes = attrs(&[
        ("mail", "pat.obrien@fabrikam.com"),
        ("displayName", "Pat O'Brien"),
        ("companyName", "Fabrikam"),
    ]);
    attributes.insert(
        "userPrincipalName".into(),
        vec!["ignored@contoso.com".into()],
    );
    let ops = [
        Operation::Create {
            anchor: a.clone(),
            mode: CreationMode::Invitation,
            attributes: attributes.clone(),
        },
        Operation::Create {
            anchor: anchor(78),
            mode: CreationMode::Direct,
            attributes: partner(78, "contoso.com"),
        },
    ];
    let r = env.target.apply(&ops).await;
    let id = created_id(&r[0]);
    created_id(&r[1]);
    let stored = env.emu.admin().user(&id).expect("stored");
    assert_eq!(stored["userType"], "Guest");
    assert_eq!(stored["creationType"], "Invitation");
    assert!(stored["userPrincipalName"]
        .as_str()
        .is_some_and(|u| u.contains("#EXT#")));
    assert_eq!(stored["companyName"], "Fabrikam");
    let found = env
        .target
        .find_by_anchor(&a)
        .await
        .expect("find")
        .expect("some");
    assert_eq!(found.id, id);
    // Inviting the same address again yields the same user, bound again: no duplicate.
    let again = env.target.apply(&ops[..1]).await;
    assert_eq!(created_id(&again[0]), id);
    assert_eq!(env.emu.admin().count().active, 2);
}
