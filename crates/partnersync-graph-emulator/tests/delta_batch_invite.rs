//! Checklist §7 items 10 (delta), 11 ($batch) and 12 (invitations).

mod common;

use common::*;
use serde_json::{json, Value};

/// Follows nextLinks from `url` to the deltaLink; returns (items, deltaLink, pages).
async fn drain(env: &Env, url: &str, headers: &[(&str, &str)]) -> (Vec<Value>, String, usize) {
    let mut url = url.to_string();
    let mut items = Vec::new();
    let mut pages = 0;
    loop {
        let r = env
            .send_raw("GET", &url, None, headers, Some(&env.token))
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let v = r.json();
        pages += 1;
        items.extend(v["value"].as_array().cloned().unwrap_or_default());
        if let Some(next) = v["@odata.nextLink"].as_str() {
            assert!(next.starts_with(&env.emu.graph_url()));
            assert!(
                !v["value"].as_array().is_some_and(Vec::is_empty),
                "no empty page with a nextLink"
            );
            url = next.to_string();
            continue;
        }
        let delta = v["@odata.deltaLink"]
            .as_str()
            .expect("deltaLink")
            .to_string();
        assert!(delta.starts_with(&format!("{}/users/delta?$deltatoken=", env.emu.graph_url())));
        return (items, delta, pages);
    }
}

fn ids_with(items: &[Value], pred: impl Fn(&Value) -> bool) -> Vec<String> {
    let mut v: Vec<String> = items
        .iter()
        .filter(|i| pred(i))
        .filter_map(|i| i["id"].as_str().map(str::to_string))
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn item10_delta_sees_creates_updates_soft_and_hard_deletes() {
    let env = start().await;
    env.emu
        .admin()
        .generate_users(250, "d", "contoso.com")
        .expect("seed");
    let (items, delta, pages) = drain(
        &env,
        &env.url("/users/delta()?$select=id,userPrincipalName,companyName"),
        &[],
    )
    .await;
    assert_eq!(items.len(), 250);
    assert_eq!(pages, 3, "snapshot is paged (100 per page by default)");
    assert!(
        items
            .iter()
            .all(|i| i.as_object().is_some_and(|m| m.len() == 3)),
        "$select scoping"
    );

    // Nothing changed → empty round with a new deltaLink.
    let (none, delta, _) = drain(&env, &delta, &[]).await;
    assert!(none.is_empty());

    let created = env.create(&user("newbie")).await;
    let updated = env.emu.admin().user("d00001@contoso.com").expect("user")["id"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert_eq!(
        env.patch(
            &format!("/users/{updated}"),
            &json!({"companyName": "Fabrikam"})
        )
        .await
        .status,
        204
    );
    // A change to an unselected property does not make a user reappear.
    let unselected = env.emu.admin().user("d00002@contoso.com").expect("user")["id"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert_eq!(
        env.patch(&format!("/users/{unselected}"), &json!({"jobTitle": "x"}))
            .await
            .status,
        204
    );
    let soft = env.emu.admin().user("d00003@contoso.com").expect("user")["id"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let hard = env.emu.admin().user("d00004@contoso.com").expect("user")["id"]
        .as_str()
        .unwrap_or("")
        .to_string();
    env.delete(&format!("/users/{soft}")).await;
    env.delete(&format!("/users/{hard}")).await;
    env.delete(&format!("/directory/deletedItems/{hard}")).await;

    let (changes, delta2, _) = drain(&env, &delta, &[]).await;
    let mut plain = ids_with(&changes, |i| i.get("@removed").is_none());
    plain.sort();
    let mut want = vec![created.clone(), updated.clone()];
    want.sort();
    assert_eq!(plain, want);
    let upd = changes
        .iter()
        .find(|i| i["id"] == updated.as_str())
        .cloned()
        .unwrap_or_default();
    assert_eq!(upd["companyName"], "Fabrikam");
    assert_eq!(
        ids_with(&changes, |i| i["@removed"]["reason"] == "changed"),
        vec![soft.clone()]
    );
    assert_eq!(
        ids_with(&changes, |i| i["@removed"]["reason"] == "deleted"),
        vec![hard.clone()]
    );

    // Restore makes the user reappear without annotation.
    env.send(
        "POST",
        &format!("/directory/deletedItems/{soft}/restore"),
        None,
        &[("content-length", "0")],
    )
    .await;
    let (again, _, _) = drain(&env, &delta2, &[]).await;
    assert_eq!(
        ids_with(&again, |i| i.get("@removed").is_none()),
        vec![soft]
    );
}

#[tokio::test]
async fn item10_delta_token_latest_minimal_filter_and_expiry() {
    let env = start().await;
    env.emu
        .admin()
        .generate_users(5, "l", "contoso.com")
        .expect("seed");
    let r = env
        .get("/users/delta?$deltaToken=latest&$select=displayName")
        .await
        .json();
    assert_eq!(r["value"].as_array().map(Vec::len), Some(0));
    let latest = r["@odata.deltaLink"]
        .as_str()
        .expect("deltaLink")
        .to_string();
    let id = env.emu.admin().user("l00001@contoso.com").expect("u")["id"]
        .as_str()
        .unwrap_or("")
        .to_string();
    env.patch(&format!("/users/{id}"), &json!({"displayName": "Renamed"}))
        .await;
    let (items, _, _) = drain(&env, &latest, &[("Prefer", "return=minimal")]).await;
    assert_eq!(items.len(), 1);
    assert_eq!(
        items[0],
        json!({"id": id, "displayName": "Renamed"}),
        "minimal: id + changed properties"
    );
    // With $select, new users appear, changes to unselected properties do not.
    let latest = env
        .get("/users/delta?$deltaToken=latest&$select=displayName")
        .await
        .json()["@odata.deltaLink"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let fresh = env.create(&user("fresh")).await;
    env.patch(&format!("/users/{id}"), &json!({"jobTitle": "t"}))
        .await;
    let (items, _, _) = drain(&env, &latest, &[]).await;
    assert_eq!(ids_with(&items, |_| true), vec![fresh]);
    // Minimal responses carry cleared properties as null.
    let latest = env.get("/users/delta?$deltaToken=latest").await.json()["@odata.deltaLink"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    env.patch(&format!("/users/{id}"), &json!({"jobTitle": null}))
        .await;
    let (items, _, _) = drain(&env, &latest, &[("Prefer", "return=minimal")]).await;
    assert_eq!(items, vec![json!({"id": id, "jobTitle": null})]);

    // id eq filter on the first call.
    let other = env.emu.admin().user("l00002@contoso.com").expect("u")["id"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let (only, _, _) = drain(
        &env,
        &env.url(&format!("/users/delta?$filter=id%20eq%20'{other}'")),
        &[],
    )
    .await;
    assert_eq!(ids_with(&only, |_| true), vec![other]);
    assert_eq!(
        env.get("/users/delta?$filter=displayName%20eq%20'x'")
            .await
            .status,
        400
    );
    assert_eq!(env.get("/users/delta?$top=5").await.status, 400);

    // Expired tokens: 410 Gone with a Location to restart from.
    let (_, delta, _) = drain(&env, &env.url("/users/delta?$select=id"), &[]).await;
    env.emu.admin().expire_delta_tokens();
    let r = env
        .send_raw("GET", &delta, None, &[], Some(&env.token))
        .await;
    assert_eq!(r.status, 410, "{}", r.text);
    assert_eq!(r.json()["error"]["code"], "syncStateNotFound");
    assert_eq!(
        r.header("location"),
        Some(format!("{}/users/delta?$select=id", env.emu.graph_url()))
    );
}

#[tokio::test]
async fn item11_batch_dependson_424_and_per_item_results() {
    let env = start().await;
    let existing = env.create(&user("b0")).await;
    let body = json!({"requests": [
        {"id": "1", "method": "POST", "url": "/users", "headers": {"Content-Type": "application/json"}, "body": user("b1")},
        {"id": "2", "method": "PATCH", "url": format!("/users/{existing}"), "dependsOn": ["1"],
         "headers": {"Content-Type": "application/json"}, "body": {"companyName": "Fabrikam"}},
        {"id": "3", "method": "GET", "url": "users?$select=id,userPrincipalName&$filter=endsWith(userPrincipalName,'@contoso.com')&$count=true",
         "headers": {"ConsistencyLevel": "eventual"}, "dependsOn": ["2"]},
        {"id": "4", "method": "POST", "url": "/users", "headers": {"Content-Type": "application/json"}, "body": user("b0")},
        {"id": "5", "method": "DELETE", "url": format!("/users/{existing}"), "dependsOn": ["4"]},
        {"id": "6", "method": "GET", "url": format!("{}/users/{existing}", env.emu.graph_url())},
        {"id": "7", "method": "GET", "url": "/users/$count"}
    ]});
    let r = env.post("/$batch", &body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r
        .header("content-type")
        .unwrap_or_default()
        .starts_with("application/json"));
    let v = r.json();
    let by_id = |id: &str| {
        v["responses"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["id"] == id).cloned())
            .unwrap_or(Value::Null)
    };
    assert_eq!(by_id("1")["status"], 201);
    assert!(by_id("1")["headers"]["Content-Type"]
        .as_str()
        .is_some_and(|c| c.starts_with("application/json")));
    assert_eq!(by_id("2")["status"], 204);
    assert!(by_id("2").get("body").is_none());
    assert_eq!(by_id("3")["status"], 200);
    assert_eq!(by_id("3")["body"]["@odata.count"], 2);
    assert_eq!(by_id("4")["status"], 400);
    assert_eq!(
        by_id("4")["body"]["error"]["details"][0]["code"],
        "ObjectConflict"
    );
    assert_eq!(by_id("5")["status"], 424, "dependency failed");
    assert_eq!(by_id("6")["status"], 200, "absolute item url accepted");
    assert_eq!(by_id("7")["status"], 400);
    assert_eq!(
        by_id("7")["body"]["error"]["message"],
        "$count is not currently supported."
    );
    assert_eq!(
        env.get(&format!("/users/{existing}")).await.status,
        200,
        "5 did not run"
    );
    // Items are in the operation log.
    let ops = env.emu.admin().operations();
    assert_eq!(ops.iter().filter(|o| o.batch_item.is_some()).count(), 7);

    // Limits and malformed batches.
    let many: Vec<Value> = (0..21)
        .map(|i| json!({"id": i.to_string(), "method": "GET", "url": "/users"}))
        .collect();
    assert_error(
        &env.post("/$batch", &json!({"requests": many})).await,
        400,
        "BadRequest",
        "The number of requests in the batch exceeds the maximum of 20.",
    );
    let dup = json!({"requests": [{"id": "a", "method": "GET", "url": "/users"}, {"id": "A", "method": "GET", "url": "/users"}]});
    assert_error(
        &env.post("/$batch", &dup).await,
        400,
        "BadRequest",
        "Batch request contains duplicate request id 'A'.",
    );
    let raw = env
        .http
        .post(env.url("/$batch"))
        .bearer_auth(&env.token)
        .header("content-type", "application/json")
        .body("{\"requests\": [")
        .send()
        .await
        .expect("send");
    assert_eq!(raw.status().as_u16(), 400);
}

#[tokio::test]
async fn item11_batch_shuffle_and_per_item_429() {
    let mut cfg = config();
    cfg.settings.shuffle_batch_responses = true;
    cfg.settings.throttling.app_write_limit = 3;
    cfg.settings.throttling.retry_after = partnersync_graph_emulator::RetryAfterMode::Fractional;
    let env = start_with(cfg).await;
    let reqs: Vec<Value> = (0..6)
        .map(|i| {
            json!({"id": format!("{i}"), "method": "POST", "url": "/users",
        "headers": {"Content-Type": "application/json"}, "body": user(&format!("s{i}"))})
        })
        .collect();
    let v = env.post("/$batch", &json!({"requests": reqs})).await.json();
    let resp = v["responses"].as_array().cloned().unwrap_or_default();
    let order: Vec<&str> = resp.iter().filter_map(|r| r["id"].as_str()).collect();
    assert_eq!(order.len(), 6);
    assert_ne!(
        order,
        vec!["0", "1", "2", "3", "4", "5"],
        "shuffled (seeded)"
    );
    let throttled: Vec<&Value> = resp.iter().filter(|r| r["status"] == 429).collect();
    assert_eq!(throttled.len(), 3);
    for t in throttled {
        let ra = t["headers"]["Retry-After"].as_str().expect("Retry-After");
        assert!(ra.contains('.'), "fractional: {ra}");
        assert_eq!(t["body"]["error"]["code"], "TooManyRequests");
        assert_eq!(
            t["headers"]["x-ms-throttle-information"],
            "WriteLimitExceeded"
        );
    }
}

#[tokio::test]
async fn item12_invitations_create_b2b_guests_convert_and_redeem() {
    let env = start().await;
    let r = env
        .post(
            "/invitations",
            &json!({
                "invitedUserEmailAddress": "Adele.V@adatum.com",
                "inviteRedirectUrl": "https://myapps.microsoft.com",
                "sendInvitationMessage": false
            }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let inv = r.json();
    assert_eq!(
        inv["@odata.context"],
        format!("{}/$metadata#invitations/$entity", env.emu.graph_url())
    );
    assert_eq!(inv["status"], "PendingAcceptance");
    assert_eq!(inv["invitedUserType"], "Guest");
    assert!(inv["inviteRedeemUrl"]
        .as_str()
        .is_some_and(|u| u.starts_with("https://login.microsoftonline.com/redeem?")));
    let uid = inv["invitedUser"]["id"]
        .as_str()
        .expect("invitedUser.id")
        .to_string();
    let u = env
        .get(&format!(
            "/users/{uid}?$select=userPrincipalName,userType,creationType,externalUserState,mail"
        ))
        .await
        .json();
    assert_eq!(
        u["userPrincipalName"],
        "Adele.V_adatum.com#EXT#@contoso.onmicrosoft.com"
    );
    assert_eq!(u["userType"], "Guest");
    assert_eq!(u["creationType"], "Invitation");
    assert_eq!(u["externalUserState"], "PendingAcceptance");
    assert_eq!(u["mail"], "Adele.V@adatum.com");
    // Addressable with %23-encoded #EXT#.
    assert_eq!(
        env.get("/users/adele.v_adatum.com%23EXT%23@contoso.onmicrosoft.com")
            .await
            .json()["id"],
        uid.as_str()
    );
    // Re-inviting returns the same user.
    let again = env.post("/invitations", &json!({"invitedUserEmailAddress": "adele.v@adatum.com", "inviteRedirectUrl": "https://x.example"})).await.json();
    assert_eq!(again["invitedUser"]["id"], uid.as_str());

    // Admin redemption.
    env.emu
        .admin()
        .redeem_invitation(&uid, "ExternalAzureAD")
        .expect("redeem");
    let u = env
        .get(&format!(
            "/users/{uid}?$select=externalUserState,identities"
        ))
        .await
        .json();
    assert_eq!(u["externalUserState"], "Accepted");
    assert!(u["identities"]
        .as_array()
        .is_some_and(|i| i.iter().any(|x| x["issuer"] == "ExternalAzureAD")));

    // In-place conversion of an internal guest.
    let mut internal = user("ext1");
    internal["userType"] = json!("Guest");
    internal["mail"] = json!("ext1@fabrikam.com");
    let iid = env.create(&internal).await;
    let r = env
        .post(
            "/invitations",
            &json!({"invitedUserEmailAddress": "ext1@fabrikam.com",
        "inviteRedirectUrl": "https://myapps.microsoft.com", "invitedUser": {"id": iid}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json()["invitedUser"]["id"], iid.as_str());
    let u = env
        .get(&format!(
            "/users/{iid}?$select=userPrincipalName,externalUserState,userType"
        ))
        .await
        .json();
    assert_eq!(u["userPrincipalName"], "ext1@contoso.com", "UPN kept");
    assert_eq!(u["externalUserState"], "PendingAcceptance");
    assert_eq!(u["userType"], "Guest");
    // Validation.
    assert_eq!(
        env.post(
            "/invitations",
            &json!({"inviteRedirectUrl": "https://x.example"})
        )
        .await
        .status,
        400
    );
    assert_eq!(env.post("/invitations", &json!({"invitedUserEmailAddress": "bad(addr@x.com", "inviteRedirectUrl": "https://x.example"})).await.status, 400);
}

#[tokio::test]
async fn item10_delta_pages_across_changes_and_removals_without_gaps() {
    let env = start().await;
    env.emu
        .admin()
        .generate_users(6, "p", "contoso.com")
        .expect("seed");
    let small = [("Prefer", "odata.maxpagesize=2")];
    let (first, delta, pages) = drain(&env, &env.url("/users/delta"), &small).await;
    assert_eq!(
        (first.len(), pages),
        (6, 3),
        "exactly full pages, no trailing empty page needed"
    );
    assert!(
        first
            .iter()
            .all(|u| u.as_object().is_some_and(|m| m.len() == 11)),
        "default projection"
    );
    let ids: Vec<String> = env
        .emu
        .admin()
        .users()
        .iter()
        .filter_map(|u| u["id"].as_str().map(str::to_string))
        .collect();
    // Two updates, two soft deletes, one hard delete: five entries over three pages.
    env.patch(&format!("/users/{}", ids[0]), &json!({"jobTitle": "a"}))
        .await;
    env.patch(&format!("/users/{}", ids[1]), &json!({"jobTitle": "b"}))
        .await;
    for id in &ids[2..5] {
        env.delete(&format!("/users/{id}")).await;
    }
    env.delete(&format!("/directory/deletedItems/{}", ids[4]))
        .await;
    let (changes, _, pages) = drain(&env, &delta, &small).await;
    assert_eq!(pages, 3);
    let mut seen: Vec<String> = changes
        .iter()
        .filter_map(|c| c["id"].as_str().map(str::to_string))
        .collect();
    seen.sort();
    let mut want = ids[..5].to_vec();
    want.sort();
    assert_eq!(seen, want, "every change exactly once");
    assert_eq!(
        ids_with(&changes, |i| i["@removed"]["reason"] == "deleted"),
        vec![ids[4].clone()]
    );
}

#[tokio::test]
async fn beta_convert_external_to_internal_member() {
    let env = start().await;
    let inv = env.post("/invitations", &json!({"invitedUserEmailAddress": "kim@fabrikam.com", "inviteRedirectUrl": "https://x.example"})).await.json();
    let id = inv["invitedUser"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let beta = format!(
        "{}/beta/users/{id}/convertExternalToInternalMemberUser",
        env.emu.base_url()
    );
    let body = json!({"userPrincipalName": "kim@contoso.com", "passwordProfile": {"password": "Xy12345!abcD", "forceChangePasswordNextSignIn": true}});
    // v1.0 does not have the action.
    assert_error(
        &env.post(
            &format!("/users/{id}/convertExternalToInternalMemberUser"),
            &body,
        )
        .await,
        400,
        "BadRequest",
        "Resource not found for the segment 'convertExternalToInternalMemberUser'.",
    );
    let mut fed = body.clone();
    fed["userPrincipalName"] = json!("kim@partners.contoso.com");
    assert_eq!(
        env.send_raw("POST", &beta, Some(&fed), &[], Some(&env.token))
            .await
            .status,
        400
    );
    let r = env
        .send_raw("POST", &beta, Some(&body), &[], Some(&env.token))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let d = r.json();
    assert_eq!(d["userPrincipalName"], "kim@contoso.com");
    assert!(d["convertedToInternalUserDateTime"].as_str().is_some());
    let u = env
        .get(&format!(
            "/users/{id}?$select=userPrincipalName,userType,externalUserState,creationType"
        ))
        .await
        .json();
    assert_eq!(u["userPrincipalName"], "kim@contoso.com");
    assert_eq!(u["userType"], "Member");
    assert_eq!(u["externalUserState"], Value::Null);
    assert_eq!(u["creationType"], Value::Null);
    // Converting again: no longer external.
    let again = env
        .send_raw("POST", &beta, Some(&body), &[], Some(&env.token))
        .await;
    assert_error(
        &again,
        400,
        "Request_BadRequest",
        "The user is not an external user.",
    );
}
