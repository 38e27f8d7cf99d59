//! Target drift through Graph delta (`delta_cookie`, `changes_since`) and the soft-match
//! lookup (`find_by`), through graph-rs-sdk against the emulator.

mod common;

use common::{anchor, attrs, partner, start};
use partnersync_graph_emulator::{Fault, FaultRule};
use partnersync_target::{
    CreationMode, ErrorCategory, Operation, OperationOutcome, TargetDirectory,
};
use serde_json::json;

fn created(r: &Result<OperationOutcome, partnersync_target::TargetError>) -> String {
    match r {
        Ok(OperationOutcome::Created { id }) => id.clone(),
        other => panic!("expected Created, got {other:?}"),
    }
}

#[tokio::test]
async fn changes_since_reports_edits_soft_and_hard_deletes_with_a_new_cookie() {
    let env = start().await;
    let t = &env.target;
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
                attributes: partner(2, "contoso.com"),
            },
            Operation::Create {
                anchor: anchor(3),
                mode: CreationMode::Direct,
                attributes: partner(3, "contoso.com"),
            },
        ])
        .await;
    let (a, b, c) = (created(&r[0]), created(&r[1]), created(&r[2]));
    env.emu.admin().clear_operations();
    let cookie = t.delta_cookie().await.expect("cookie");
    // No user was read to make the cookie.
    let log = env.emu.admin().operations();
    assert_eq!(log.len(), 1, "{log:?}");
    assert!(log[0].path.contains("/users/delta"), "{:?}", log[0]);
    assert!(log[0]
        .query
        .to_ascii_lowercase()
        .contains("deltatoken=latest"));
    let none = t.changes_since(&cookie).await.expect("no changes");
    assert!(none.changed.is_empty() && none.deleted.is_empty() && none.removed.is_empty());

    // A portal-style edit (someone else's PATCH), a soft delete, a permanent delete, and a
    // user partnersync does not manage.
    let r = t
        .apply(&[
            Operation::Update {
                id: a.clone(),
                changes: attrs(&[("jobTitle", "Edited in the portal")]),
            },
            Operation::Delete { id: b.clone() },
            Operation::Delete { id: c.clone() },
        ])
        .await;
    assert!(r.iter().all(Result::is_ok), "{r:?}");
    let r = t
        .apply(&[Operation::PermanentDelete { id: c.clone() }])
        .await;
    assert!(r[0].is_ok(), "{r:?}");
    let outsider = env
        .emu
        .admin()
        .seed_user(json!({"userPrincipalName": "outsider@contoso.com", "displayName": "Outsider"}))
        .expect("seed");
    let outsider_id = outsider["id"].as_str().unwrap_or_default().to_string();

    let changes = t.changes_since(&cookie).await.expect("changes");
    let edited = changes
        .changed
        .iter()
        .find(|u| u.id == a)
        .expect("edited user reported");
    assert_eq!(edited.anchor.as_ref(), Some(&anchor(1)));
    assert_eq!(edited.attributes["jobTitle"], vec!["Edited in the portal"]);
    assert_eq!(edited.attributes["companyName"], vec!["Fabrikam"]);
    assert!(edited.enabled && !edited.deleted);
    let other = changes
        .changed
        .iter()
        .find(|u| u.id == outsider_id)
        .expect("outsider reported");
    assert_eq!(other.anchor, None);
    assert_eq!(changes.deleted, vec![b.clone()]);
    assert_eq!(changes.removed, vec![c.clone()]);
    assert_ne!(changes.cookie, cookie);
    // The attributes are the ones list_managed reads.
    let listed = t.list_managed().await.expect("list");
    let same = listed.iter().find(|u| u.id == a).expect("listed");
    assert_eq!(same.attributes, edited.attributes);

    // The new cookie sees only what came after it.
    let r = t.apply(&[Operation::Restore { id: b.clone() }]).await;
    assert!(r[0].is_ok(), "{r:?}");
    let next = t.changes_since(&changes.cookie).await.expect("next");
    assert_eq!(
        next.changed
            .iter()
            .map(|u| u.id.clone())
            .collect::<Vec<_>>(),
        vec![b]
    );
    assert!(next.deleted.is_empty() && next.removed.is_empty());
}

#[tokio::test]
async fn delta_pages_follow_next_links_and_a_429_page_is_retried() {
    let env = start().await;
    let t = &env.target;
    let cookie = t.delta_cookie().await.expect("cookie");
    env.emu
        .admin()
        .generate_users(1_205, "bulk", "contoso.com")
        .expect("seed");
    // The second page is throttled once: it must be retried, not taken as the end.
    env.emu.admin().set_faults(vec![FaultRule::script(
        "/v1.0/users/delta*",
        vec![
            None,
            Some(Fault::Status {
                status: 429,
                retry_after: Some(0.05),
            }),
            None,
        ],
    )]);
    env.emu.admin().clear_operations();
    let changes = t.changes_since(&cookie).await.expect("changes");
    assert_eq!(changes.changed.len(), 1_205);
    let log = env.emu.admin().operations();
    let statuses: Vec<u16> = log
        .iter()
        .filter(|o| o.path.contains("/users/delta"))
        .map(|o| o.status)
        .collect();
    assert_eq!(statuses, vec![200, 429, 200], "{log:?}");
    // $select (always with id) rides in the token; every page carries it.
    let ids: std::collections::HashSet<&str> =
        changes.changed.iter().map(|u| u.id.as_str()).collect();
    assert_eq!(ids.len(), 1_205);
}

#[tokio::test]
async fn an_expired_or_foreign_cookie_is_an_error_so_the_engine_lists_everything() {
    let env = start().await;
    let t = &env.target;
    let cookie = t.delta_cookie().await.expect("cookie");
    env.emu.admin().expire_delta_tokens();
    let e = t.changes_since(&cookie).await.expect_err("expired");
    assert_eq!(e.code, "syncStateNotFound");
    assert_eq!(e.category, ErrorCategory::NotFound);
    // The fallback still works.
    assert!(t.list_managed().await.is_ok());
    // A cookie for another host is never followed (the bearer token would go with it).
    let e = t
        .changes_since("https://evil.example/v1.0/users/delta?$deltatoken=x")
        .await
        .expect_err("foreign");
    assert_eq!(e.code, "syncStateNotFound");
    assert!(e.message.contains("another host"), "{}", e.message);
    let e = t.changes_since("not a url").await.expect_err("garbage");
    assert_eq!(e.category, ErrorCategory::Validation);
    // A cookie from before expiry is refused, a fresh one works.
    let fresh = t.delta_cookie().await.expect("fresh cookie");
    assert!(t.changes_since(&fresh).await.is_ok());
}

#[tokio::test]
async fn find_by_matches_upn_or_mail_case_insensitively_and_escapes_quotes() {
    let env = start().await;
    let admin = env.emu.admin();
    let pat = admin
        .seed_user(json!({
            "userPrincipalName": "pat.o'brien@contoso.com",
            "displayName": "Pat O'Brien",
            "mail": "Pat.O'Brien@fabrikam.com",
        }))
        .expect("seed");
    let pat_id = pat["id"].as_str().unwrap_or_default().to_string();
    let t = &env.target;
    let by_mail = t
        .find_by("mail", "PAT.O'BRIEN@FABRIKAM.COM")
        .await
        .expect("mail");
    assert_eq!(by_mail.len(), 1);
    assert_eq!(by_mail[0].id, pat_id);
    assert_eq!(by_mail[0].anchor, None);
    let by_upn = t
        .find_by("userPrincipalName", "Pat.O'Brien@Contoso.com")
        .await
        .expect("upn");
    assert_eq!(by_upn.len(), 1);
    assert!(t
        .find_by("mail", "nobody@fabrikam.com")
        .await
        .expect("none")
        .is_empty());
    // The quote reached Graph doubled, inside one literal.
    let log = admin.operations();
    assert!(log
        .iter()
        .any(|o| o.status == 200 && o.query.contains("O%27%27Brien")));
    // Soft-deleted users are not candidates.
    let r = t.apply(&[Operation::Delete { id: pat_id.clone() }]).await;
    assert!(r[0].is_ok());
    assert!(t
        .find_by("mail", "pat.o'brien@fabrikam.com")
        .await
        .expect("after delete")
        .is_empty());
    let e = t
        .find_by("employeeId", "1")
        .await
        .expect_err("unsupported attribute");
    assert_eq!(e.category, ErrorCategory::Validation);
}
