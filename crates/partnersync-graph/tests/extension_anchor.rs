//! `anchor_attribute` set to a directory extension property: GraphTarget writes the anchor
//! into it, lists and finds users by it and reads the anchor back from it, in every path
//! (direct and batched creates, federated domains, invitation and conversion, adoption,
//! delta, the ambiguous-create reconciliation, `check`), against the emulator.

mod common;

use common::{anchor, attrs, partner, start_tweaked};
use partnersync_core::Anchor;
use partnersync_graph::{AnchorAttribute, GraphConfig, Level};
use partnersync_graph_emulator::{EmulatorConfig, Fault, FaultRule, DEFAULT_CLIENT_ID};
use partnersync_target::{CreationMode, Operation, OperationOutcome, TargetDirectory, TargetError};
use serde_json::{json, Value};

/// An extension property of the emulator's default app (the emulator keeps every
/// well-formed `extension_<appId>_<name>` as registered).
fn extension() -> String {
    format!(
        "extension_{}_partnerAnchor",
        DEFAULT_CLIENT_ID.replace('-', "")
    )
}

/// An emulator and a target whose anchor attribute is [`extension`], tweaked further.
async fn start(tweak: &dyn Fn(&mut GraphConfig)) -> (common::Env, String) {
    let name = extension();
    let env = start_tweaked(EmulatorConfig::default(), &|c| {
        c.anchor_attribute = AnchorAttribute::new(&name).expect("well-formed");
        tweak(c);
    })
    .await;
    (env, name)
}

fn created_id(r: &Result<OperationOutcome, TargetError>) -> String {
    match r {
        Ok(OperationOutcome::Created { id }) => id.clone(),
        other => panic!("expected Created, got {other:?}"),
    }
}

fn filters(env: &common::Env) -> Vec<String> {
    env.emu
        .admin()
        .operations()
        .iter()
        .filter(|o| o.method == "GET")
        .map(|o| o.query.clone())
        .collect()
}

#[tokio::test]
async fn extension_anchor_create_list_find_update_delete() {
    let (env, ext) = start(&|_| {}).await;
    let t = &env.target;
    let admin = env.emu.admin();
    assert_eq!(t.anchor_attribute().name(), ext);
    // Bound by onPremisesImmutableId only: not partnersync's with this configuration.
    admin
        .seed_user(
            json!({"userPrincipalName": "legacy@contoso.com", "displayName": "Legacy",
            "mailNickname": "legacy", "accountEnabled": true,
            "onPremisesImmutableId": anchor(900).to_immutable_id()}),
        )
        .expect("seed");

    let r = t
        .apply(&[
            Operation::Create {
                anchor: anchor(1),
                mode: CreationMode::Direct,
                attributes: partner(1, "contoso.com"),
            },
            Operation::Create {
                anchor: anchor(2),
                mode: CreationMode::Direct,
                attributes: partner(2, "partners.contoso.com"),
            },
        ])
        .await;
    let (managed_id, federated_id) = (created_id(&r[0]), created_id(&r[1]));

    // Managed domain: the anchor goes to the extension property only.
    let stored = admin.user(&managed_id).expect("stored");
    assert_eq!(stored[&ext], anchor(1).to_immutable_id());
    assert!(stored
        .get("onPremisesImmutableId")
        .is_none_or(Value::is_null));
    // Federated domain: Graph requires onPremisesImmutableId, and sign-in matches on it.
    let stored = admin.user(&federated_id).expect("stored");
    assert_eq!(stored[&ext], anchor(2).to_immutable_id());
    assert_eq!(stored["onPremisesImmutableId"], anchor(2).to_immutable_id());

    let managed = t.list_managed().await.expect("list");
    let mut anchors: Vec<Anchor> = managed.iter().filter_map(|u| u.anchor.clone()).collect();
    anchors.sort();
    assert_eq!(anchors, vec![anchor(1), anchor(2)]);
    let queries = filters(&env);
    assert!(
        queries
            .iter()
            .any(|q| q.contains(&format!("%24filter={ext}+ne+null"))),
        "{queries:?}"
    );

    let found = t.find_by_anchor(&anchor(1)).await.expect("find");
    assert_eq!(found.map(|u| u.id), Some(managed_id.clone()));
    assert!(t
        .find_by_anchor(&anchor(900))
        .await
        .expect("find")
        .is_none());

    let r = t
        .apply(&[Operation::Update {
            id: managed_id.clone(),
            changes: attrs(&[("jobTitle", "Consultant")]),
        }])
        .await;
    assert_eq!(r[0], Ok(OperationOutcome::Updated));
    let r = t
        .apply(&[Operation::Delete {
            id: managed_id.clone(),
        }])
        .await;
    assert_eq!(r[0], Ok(OperationOutcome::Deleted));
    let found = t
        .find_by_anchor(&anchor(1))
        .await
        .expect("find")
        .expect("soft-deleted, still found");
    assert!(found.deleted);
    assert_eq!(found.attributes["jobTitle"], vec!["Consultant"]);
    let managed = t.list_managed().await.expect("list");
    assert_eq!(managed.len(), 2);
    assert!(managed.iter().any(|u| u.deleted && u.id == managed_id));
}

#[tokio::test]
async fn extension_anchor_adopt_binds_through_the_extension() {
    let (env, ext) = start(&|_| {}).await;
    let admin = env.emu.admin();
    let cloud = admin
        .seed_user(
            json!({"userPrincipalName": "cloud@contoso.com", "displayName": "Cloud",
            "mailNickname": "cloud", "accountEnabled": true}),
        )
        .expect("seed");
    let id = cloud["id"].as_str().unwrap_or_default().to_string();
    let r = env
        .target
        .apply(&[
            Operation::Adopt {
                id: id.clone(),
                anchor: anchor(7),
                changes: attrs(&[("companyName", "Fabrikam")]),
            },
            // A second op, so the adopt goes through $batch.
            Operation::Disable {
                id: "missing".into(),
            },
        ])
        .await;
    assert_eq!(r[0], Ok(OperationOutcome::Updated));
    let stored = admin.user(&id).expect("stored");
    assert_eq!(stored[&ext], anchor(7).to_immutable_id());
    assert_eq!(stored["companyName"], "Fabrikam");
    assert!(stored
        .get("onPremisesImmutableId")
        .is_none_or(Value::is_null));
    let found = env.target.find_by_anchor(&anchor(7)).await.expect("find");
    assert_eq!(found.map(|u| u.id), Some(id));
}

#[tokio::test]
async fn extension_anchor_delta_reads_the_anchor_from_the_extension() {
    let (env, ext) = start(&|_| {}).await;
    let t = &env.target;
    let cookie = t.delta_cookie().await.expect("cookie");
    let r = t
        .apply(&[Operation::Create {
            anchor: anchor(3),
            mode: CreationMode::Direct,
            attributes: partner(3, "contoso.com"),
        }])
        .await;
    let id = created_id(&r[0]);
    let changes = t.changes_since(&cookie).await.expect("changes");
    let user = changes
        .changed
        .iter()
        .find(|u| u.id == id)
        .expect("the new user");
    assert_eq!(user.anchor.as_ref(), Some(&anchor(3)));
    assert_eq!(user.attributes[&ext], vec![anchor(3).to_immutable_id()]);
    // The change feed selects the extension property.
    assert!(env
        .emu
        .admin()
        .operations()
        .iter()
        .any(|o| o.path.contains("delta") && o.query.contains(&ext)));

    // A change of the anchor attribute itself is seen as a change of anchor.
    let cookie = changes.cookie;
    let r = t
        .apply(&[Operation::Update {
            id: id.clone(),
            changes: attrs(&[(ext.as_str(), &anchor(4).to_immutable_id())]),
        }])
        .await;
    assert_eq!(r[0], Ok(OperationOutcome::Updated));
    let changes = t.changes_since(&cookie).await.expect("changes");
    assert_eq!(changes.changed.len(), 1);
    assert_eq!(changes.changed[0].anchor.as_ref(), Some(&anchor(4)));
}

#[tokio::test]
async fn extension_anchor_invitation_binds_rebinds_and_converts() {
    let (env, ext) = start(&|c| {
        c.creation_mode = CreationMode::Invitation;
        c.invitation.convert_internal_users = true;
    })
    .await;
    let t = &env.target;
    let admin = env.emu.admin();
    let invite = |n: u32, mail: &str| Operation::Create {
        anchor: anchor(n),
        mode: CreationMode::Invitation,
        attributes: attrs(&[("mail", mail), ("displayName", "Guest")]),
    };
    let r = t.apply(&[invite(10, "ana@fabrikam.example")]).await;
    let id = created_id(&r[0]);
    let stored = admin.user(&id).expect("stored");
    assert_eq!(stored[&ext], anchor(10).to_immutable_id());
    assert_eq!(stored["creationType"], "Invitation");
    assert!(stored
        .get("onPremisesImmutableId")
        .is_none_or(Value::is_null));

    // The same create again (its answer was lost): found through the extension, bound
    // again, no second invitation.
    let invitations = |env: &common::Env| {
        env.emu
            .admin()
            .operations()
            .iter()
            .filter(|o| o.method == "POST" && o.path.ends_with("/invitations"))
            .count()
    };
    let before = invitations(&env);
    let r = t.apply(&[invite(10, "ana@fabrikam.example")]).await;
    assert_eq!(created_id(&r[0]), id);
    assert_eq!(invitations(&env), before);

    // Someone else's anchor in the extension: a conflict, nothing changed.
    let r = t.apply(&[invite(11, "ana@fabrikam.example")]).await;
    let err = r[0].as_ref().expect_err("bound to another anchor");
    assert!(
        err.message.contains("bound to another source anchor"),
        "{err}"
    );

    // An internal user with the mail: converted in place and bound through the extension.
    let internal = admin
        .seed_user(
            json!({"userPrincipalName": "bo@contoso.com", "displayName": "Bo",
            "mailNickname": "bo", "accountEnabled": true, "mail": "bo@fabrikam.example"}),
        )
        .expect("seed");
    let internal_id = internal["id"].as_str().unwrap_or_default().to_string();
    let r = t.apply(&[invite(12, "bo@fabrikam.example")]).await;
    assert_eq!(created_id(&r[0]), internal_id);
    let stored = admin.user(&internal_id).expect("stored");
    assert_eq!(stored[&ext], anchor(12).to_immutable_id());
    assert_eq!(stored["userType"], "Guest");
}

/// Graph keeps extension values non-unique, so a create retried after its first attempt
/// went through conflicts on the UPN, not the anchor: it is still resolved by looking the
/// anchor up, and ends with the one user.
#[tokio::test]
async fn extension_anchor_ambiguous_create_is_reconciled_by_anchor() {
    let (env, ext) = start(&|c| c.batch_size = 1).await;
    let admin = env.emu.admin();
    let attributes = partner(5, "contoso.com");
    let upn = attributes["userPrincipalName"][0].clone();
    // What the lost first attempt created.
    let earlier = admin
        .seed_user(json!({"userPrincipalName": upn, "displayName": "Earlier",
            "mailNickname": "earlier", "accountEnabled": true,
            ext.clone(): anchor(5).to_immutable_id()}))
        .expect("seed");
    admin.set_faults(vec![FaultRule::script(
        "/v1.0/users",
        vec![Some(Fault::Drop)],
    )
    .with_method("POST")]);
    let r = env
        .target
        .apply(&[Operation::Create {
            anchor: anchor(5),
            mode: CreationMode::Direct,
            attributes,
        }])
        .await;
    assert_eq!(
        created_id(&r[0]),
        earlier["id"].as_str().unwrap_or_default()
    );
    assert_eq!(admin.count().active, 1);
}

/// Graph compares strings without regard to case, base64 anchors do not: a user whose
/// anchor differs only in letter case is not this anchor's user.
#[tokio::test]
async fn extension_anchor_lookups_tell_anchors_apart_by_case() {
    let (env, ext) = start(&|_| {}).await;
    let admin = env.emu.admin();
    let ours = Anchor::from_bytes(b"case-sensitive!!".to_vec()).expect("16 bytes");
    let text = ours.to_immutable_id();
    let flipped: String = {
        let mut done = false;
        text.chars()
            .map(|c| {
                if !done && c.is_ascii_alphabetic() {
                    done = true;
                    if c.is_ascii_uppercase() {
                        c.to_ascii_lowercase()
                    } else {
                        c.to_ascii_uppercase()
                    }
                } else {
                    c
                }
            })
            .collect()
    };
    let other = Anchor::from_immutable_id(&flipped).expect("still base64");
    assert_ne!(other, ours);
    admin
        .seed_user(
            json!({"userPrincipalName": "other@contoso.com", "displayName": "Other",
            "mailNickname": "other", "accountEnabled": true, ext.clone(): flipped}),
        )
        .expect("seed");
    assert!(env
        .target
        .find_by_anchor(&ours)
        .await
        .expect("find")
        .is_none());
    let found = env.target.find_by_anchor(&other).await.expect("find");
    assert!(found.is_some_and(|u| u.anchor == Some(other)));
}

#[tokio::test]
async fn check_probes_the_extension_anchor_query() {
    let (env, ext) = start(&|_| {}).await;
    let report = env.target.check().await;
    let finding = report
        .findings
        .iter()
        .find(|f| f.code == "anchor_attribute")
        .expect("an anchor_attribute finding");
    assert_eq!(finding.level, Level::Ok, "{}", finding.message);
    assert!(finding.message.contains(&ext), "{}", finding.message);
}
