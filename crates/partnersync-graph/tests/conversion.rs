//! In-place conversion of an existing internal guest to B2B (`POST /invitations` with
//! `invitedUser.id`, graph.md §4.3) in invitation mode, against the emulator.

mod common;

use common::{anchor, attrs, start_tweaked};
use partnersync_graph_emulator::EmulatorConfig;
use partnersync_target::{
    CreationMode, ErrorCategory, Operation, OperationOutcome, TargetDirectory,
};
use serde_json::json;

fn invite(n: u32, mail: &str) -> Operation {
    Operation::Create {
        anchor: anchor(n),
        mode: CreationMode::Invitation,
        attributes: attrs(&[
            ("mail", mail),
            ("displayName", "Pat Partner"),
            ("companyName", "Fabrikam"),
        ]),
    }
}

fn internal_guest(
    emu: &partnersync_graph_emulator::EmulatorHandle,
    extra: serde_json::Value,
) -> String {
    let mut user = json!({
        "userPrincipalName": "pat.partner@contoso.com",
        "displayName": "Pat (internal guest)",
        "mail": "pat@fabrikam.com",
        "userType": "Guest",
        "accountEnabled": true,
    });
    if let (Some(u), Some(e)) = (user.as_object_mut(), extra.as_object()) {
        u.extend(e.clone());
    }
    let seeded = emu.admin().seed_user(user).expect("seed");
    seeded["id"].as_str().unwrap_or_default().to_string()
}

fn invitations(emu: &partnersync_graph_emulator::EmulatorHandle) -> usize {
    emu.admin()
        .operations()
        .iter()
        .filter(|o| o.method == "POST" && o.path.ends_with("/invitations"))
        .count()
}

#[tokio::test]
async fn an_internal_guest_is_converted_in_place_when_allowed() {
    let env = start_tweaked(EmulatorConfig::default(), &|c| {
        c.invitation.convert_internal_users = true
    })
    .await;
    let id = internal_guest(&env.emu, json!({}));
    let r = env.target.apply(&[invite(5, "PAT@fabrikam.com")]).await;
    assert_eq!(r[0], Ok(OperationOutcome::Created { id: id.clone() }));
    let stored = env.emu.admin().user(&id).expect("same object");
    // Same object id and UPN, now a B2B guest awaiting redemption, bound to the anchor.
    assert_eq!(stored["userPrincipalName"], "pat.partner@contoso.com");
    assert_eq!(stored["externalUserState"], "PendingAcceptance");
    assert_eq!(stored["userType"], "Guest");
    assert_eq!(stored["onPremisesImmutableId"], anchor(5).to_immutable_id());
    assert_eq!(stored["companyName"], "Fabrikam");
    assert_eq!(env.emu.admin().count().active, 1, "no second user");
    assert_eq!(invitations(&env.emu), 1);
    let found = env
        .target
        .find_by_anchor(&anchor(5))
        .await
        .expect("find")
        .expect("bound");
    assert_eq!(found.id, id);
    // Applying the same create again (a retry) finds the user bound to the anchor and
    // re-invites it: still one user.
    let again = env.target.apply(&[invite(5, "pat@fabrikam.com")]).await;
    assert_eq!(again[0], Ok(OperationOutcome::Created { id }));
    assert_eq!(env.emu.admin().count().active, 1);
}

#[tokio::test]
async fn without_the_option_an_internal_user_is_a_conflict_naming_it() {
    let env = start_tweaked(EmulatorConfig::default(), &|_| {}).await;
    let id = internal_guest(&env.emu, json!({}));
    let r = env.target.apply(&[invite(6, "pat@fabrikam.com")]).await;
    let e = r[0].as_ref().expect_err("conflict");
    assert_eq!(e.category, ErrorCategory::Conflict);
    assert!(e.message.contains(&id), "{}", e.message);
    assert!(
        e.message.contains("convert_internal_users"),
        "{}",
        e.message
    );
    assert_eq!(invitations(&env.emu), 0, "nothing was invited");
    let stored = env.emu.admin().user(&id).expect("untouched");
    assert!(stored.get("externalUserState").is_none_or(|v| v.is_null()));
}

#[tokio::test]
async fn synced_users_and_users_of_other_anchors_are_never_taken_over() {
    let env = start_tweaked(EmulatorConfig::default(), &|c| {
        c.invitation.convert_internal_users = true
    })
    .await;
    internal_guest(
        &env.emu,
        json!({"onPremisesSyncEnabled": true, "onPremisesUserPrincipalName": "pat@corp.local"}),
    );
    let r = env.target.apply(&[invite(7, "pat@fabrikam.com")]).await;
    let e = r[0].as_ref().expect_err("synced");
    assert_eq!(e.category, ErrorCategory::Conflict);
    assert!(e.message.contains("Entra Connect"), "{}", e.message);

    env.emu.admin().reset_users();
    internal_guest(
        &env.emu,
        json!({"onPremisesImmutableId": anchor(99).to_immutable_id()}),
    );
    let r = env.target.apply(&[invite(8, "pat@fabrikam.com")]).await;
    let e = r[0].as_ref().expect_err("other anchor");
    assert!(e.message.contains("another source anchor"), "{}", e.message);
    assert_eq!(invitations(&env.emu), 0);
}

#[tokio::test]
async fn an_existing_b2b_guest_is_reinvited_and_bound_not_converted() {
    let env = start_tweaked(EmulatorConfig::default(), &|_| {}).await;
    // A guest invited earlier by hand (not bound to any anchor).
    let first = env.target.apply(&[invite(9, "sam@fabrikam.com")]).await;
    let id = match &first[0] {
        Ok(OperationOutcome::Created { id }) => id.clone(),
        other => panic!("{other:?}"),
    };
    let r = env
        .target
        .apply(&[Operation::Update {
            id: id.clone(),
            changes: [("onPremisesImmutableId".to_string(), vec![])].into(),
        }])
        .await;
    assert!(r[0].is_ok(), "{r:?}");
    let r = env.target.apply(&[invite(10, "sam@fabrikam.com")]).await;
    assert_eq!(r[0], Ok(OperationOutcome::Created { id: id.clone() }));
    let stored = env.emu.admin().user(&id).expect("stored");
    assert_eq!(
        stored["onPremisesImmutableId"],
        anchor(10).to_immutable_id()
    );
    assert_eq!(env.emu.admin().count().active, 1);
}

#[tokio::test]
async fn a_user_bound_to_our_uuid_anchor_in_upper_case_is_ours() {
    // Another tool wrote our entryUUID anchor in upper case; Graph compares ImmutableIds
    // ignoring case, and so must the "is this user already ours?" check.
    let env = start_tweaked(EmulatorConfig::default(), &|c| {
        c.invitation.convert_internal_users = true
    })
    .await;
    let ours = partnersync_core::Anchor::from_uuid_str("3b5c1f0e-7d2a-4c61-9e8f-0a1b2c3d4e5f")
        .expect("uuid");
    let id = internal_guest(
        &env.emu,
        json!({"onPremisesImmutableId": ours.to_immutable_id().to_uppercase()}),
    );
    let r = env
        .target
        .apply(&[Operation::Create {
            anchor: ours.clone(),
            mode: CreationMode::Invitation,
            attributes: attrs(&[("mail", "pat@fabrikam.com"), ("displayName", "Pat Partner")]),
        }])
        .await;
    assert_eq!(
        r[0],
        Ok(OperationOutcome::Created { id }),
        "bound, not a conflict"
    );
    assert_eq!(invitations(&env.emu), 0, "nobody was invited");
}
