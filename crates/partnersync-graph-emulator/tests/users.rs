//! Checklist §7 items 7–9 (create, update, delete/restore) and 2 (addressing users).

mod common;

use common::*;
use serde_json::{json, Value};

#[tokio::test]
async fn item7_create_returns_201_default_projection_and_defaults() {
    let env = start().await;
    let mut body = user("pat");
    body["@odata.type"] = json!("#microsoft.graph.user");
    let r = env.post("/users", &body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let v = r.json();
    assert_eq!(
        v["@odata.context"],
        format!("{}/$metadata#users/$entity", env.emu.graph_url())
    );
    let id = v["id"].as_str().expect("id");
    assert_eq!(id.len(), 36);
    let keys: Vec<&str> = v
        .as_object()
        .map(|m| m.keys().map(String::as_str).collect())
        .unwrap_or_default();
    for k in [
        "businessPhones",
        "displayName",
        "givenName",
        "id",
        "jobTitle",
        "mail",
        "mobilePhone",
        "officeLocation",
        "preferredLanguage",
        "surname",
        "userPrincipalName",
    ] {
        assert!(keys.contains(&k), "missing {k}");
    }
    assert_eq!(keys.len(), 12, "11 properties + @odata.context: {keys:?}");
    assert!(r
        .header("content-type")
        .unwrap_or_default()
        .starts_with("application/json;odata.metadata=minimal"));
    let got = env
        .get(&format!(
            "/users/{id}?$select=userType,createdDateTime,creationType,passwordProfile"
        ))
        .await
        .json();
    assert_eq!(got["userType"], "Member");
    assert!(got["createdDateTime"]
        .as_str()
        .is_some_and(|d| d.ends_with('Z')));
    assert_eq!(got["creationType"], Value::Null);
    assert_eq!(
        got["passwordProfile"],
        Value::Null,
        "password is never returned"
    );
}

#[tokio::test]
async fn item7_required_fields_domains_upn_and_nickname_rules() {
    let env = start().await;
    let mut missing = user("a");
    missing.as_object_mut().map(|m| m.remove("mailNickname"));
    assert_error(
        &env.post("/users", &missing).await,
        400,
        "Request_BadRequest",
        "Invalid value specified for property 'mailNickname' of resource 'User'.",
    );

    let mut foreign = user("a");
    foreign["userPrincipalName"] = json!("a@fabrikam.com");
    let domain_msg = "The domain portion of the userPrincipalName property is invalid. You must use one of the verified domain names in your organization.";
    assert_error(
        &env.post("/users", &foreign).await,
        400,
        "Request_BadRequest",
        domain_msg,
    );

    // Federated domain: onPremisesImmutableId is required (and a password is not).
    let mut fed = user("f");
    fed["userPrincipalName"] = json!("f@partners.contoso.com");
    assert_error(
        &env.post("/users", &fed).await,
        400,
        "Request_BadRequest",
        domain_msg,
    );
    fed["onPremisesImmutableId"] = json!("3ZgK1iXyTE2tNqm0n8yzqg==");
    fed.as_object_mut().map(|m| m.remove("passwordProfile"));
    assert_eq!(env.post("/users", &fed).await.status, 201);

    for bad in [
        "jörg@contoso.com",
        "a b@contoso.com",
        "no-at-sign",
        ".dot@contoso.com",
    ] {
        let mut b = user("x");
        b["userPrincipalName"] = json!(bad);
        assert_error(
            &env.post("/users", &b).await,
            400,
            "Request_BadRequest",
            "Property userPrincipalName is invalid.",
        );
    }
    let mut nick = user("n");
    nick["mailNickname"] = json!("has space");
    assert_error(
        &env.post("/users", &nick).await,
        400,
        "Request_BadRequest",
        "Invalid value specified for property 'mailNickname' of resource 'User'.",
    );
}

#[tokio::test]
async fn item7_password_complexity() {
    let env = start().await;
    let mut b = user("p");
    b["passwordProfile"]["password"] = json!("password");
    assert_error(&env.post("/users", &b).await, 400, "Request_BadRequest",
        "The specified password does not comply with password complexity requirements. Please provide a different password.");
    b["passwordPolicies"] = json!("DisableStrongPassword");
    assert_eq!(env.post("/users", &b).await.status, 201);
}

#[tokio::test]
async fn item7_uniqueness_conflicts_carry_object_conflict_details() {
    let env = start().await;
    let mut first = user("dup");
    first["onPremisesImmutableId"] = json!("AAAAAAAAAAAAAAAAAAAAAA==");
    first["mail"] = json!("dup@fabrikam.com");
    let first_id = env.create(&first).await;

    let mut same_upn = user("other");
    same_upn["userPrincipalName"] = json!("DUP@contoso.com");
    let r = env.post("/users", &same_upn).await;
    let msg = "Another object with the same value for property userPrincipalName already exists.";
    assert_error(&r, 400, "Request_BadRequest", msg);
    let details = r.json()["error"]["details"].clone();
    assert_eq!(details[0]["code"], "ObjectConflict");
    assert_eq!(details[0]["target"], "userPrincipalName");
    assert_eq!(details[0]["message"], msg);
    assert_eq!(details[1]["code"], "ConflictingObjects");
    assert_eq!(details[1]["target"], format!("User_{first_id}"));

    let mut same_imm = user("imm");
    same_imm["onPremisesImmutableId"] = json!("aaaaaaaaaaaaaaaaaaaaaa==");
    let r = env.post("/users", &same_imm).await;
    assert_error(
        &r,
        400,
        "Request_BadRequest",
        "Another object with the same value for property onPremisesImmutableId already exists.",
    );
    assert_eq!(
        r.json()["error"]["details"][0]["target"],
        "onPremisesImmutableId"
    );

    let mut same_mail = user("mail2");
    same_mail["mail"] = json!("Dup@Fabrikam.com");
    let r = env.post("/users", &same_mail).await;
    assert_error(
        &r,
        400,
        "Request_BadRequest",
        "Another object with the same value for property proxyAddresses already exists.",
    );
    assert_eq!(r.json()["error"]["details"][0]["target"], "proxyAddresses");
}

/// Entra ID compares `onPremisesImmutableId` without regard to case, for uniqueness and in
/// `$filter`: two base64 anchors that differ only in letter case are one ImmutableId to it
/// (which is why partnersync writes entryUUID anchors as their lowercase text).
#[tokio::test]
async fn item7_immutable_ids_differing_only_in_case_conflict_and_match() {
    let env = start().await;
    // Two UUIDs whose base64 differs only in the case of the first letter.
    let (lower, upper) = ("OC6bWhtuED+KBXc9Lh9kLA==", "oC6bWhtuED+KBXc9Lh9kLA==");
    let mut first = user("casefirst");
    first["onPremisesImmutableId"] = json!(lower);
    let first_id = env.create(&first).await;
    let mut second = user("casesecond");
    second["onPremisesImmutableId"] = json!(upper);
    let r = env.post("/users", &second).await;
    assert_error(
        &r,
        400,
        "Request_BadRequest",
        "Another object with the same value for property onPremisesImmutableId already exists.",
    );
    assert_eq!(
        r.json()["error"]["details"][1]["target"],
        format!("User_{first_id}")
    );
    // Setting it on an existing user conflicts as well.
    second["onPremisesImmutableId"] = json!("3b5c9e50-2f1a-103f-8e61-6b2b4d3c7041");
    let second_id = env.create(&second).await;
    let r = env
        .patch(
            &format!("/users/{second_id}"),
            &json!({"onPremisesImmutableId": upper}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    // A lookup finds the user whatever the case; a UUID in text form is an ordinary string.
    for (filter, want) in [
        (upper, first_id.as_str()),
        ("3B5C9E50-2F1A-103F-8E61-6B2B4D3C7041", second_id.as_str()),
    ] {
        let r = env
            .get_adv(&format!(
                "/users?$filter=onPremisesImmutableId%20eq%20'{}'&$count=true&$select=id",
                filter.replace('+', "%2B").replace('=', "%3D")
            ))
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let v = r.json();
        let ids: Vec<&str> = v["value"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|u| u["id"].as_str())
            .collect();
        assert_eq!(ids, [want], "{filter}");
    }
}

#[tokio::test]
async fn item7_unknown_and_read_only_properties_are_rejected() {
    let env = start().await;
    let mut b = user("u");
    b["favouriteColour"] = json!("blue");
    assert_error(
        &env.post("/users", &b).await,
        400,
        "Request_BadRequest",
        "Property 'favouriteColour' does not exist as a declared property or extension property.",
    );
    let mut b = user("u");
    b["id"] = json!("00000000-0000-0000-0000-000000000001");
    assert_error(
        &env.post("/users", &b).await,
        400,
        "Request_BadRequest",
        "Property 'id' is read-only and cannot be set.",
    );
    let mut b = user("u");
    b["accountEnabled"] = json!("yes");
    assert_error(
        &env.post("/users", &b).await,
        400,
        "Request_BadRequest",
        "Invalid value specified for property 'accountEnabled' of resource 'User'.",
    );
    // Registered extension properties are accepted and selectable.
    let mut b = user("ext");
    b["extension_0b9e4f3a7c214d8eb5a62f1e9c8d7b64_costCenter"] = json!("CC-1");
    let id = env.create(&b).await;
    let got = env
        .get(&format!(
            "/users/{id}?$select=extension_0b9e4f3a7c214d8eb5a62f1e9c8d7b64_costCenter"
        ))
        .await
        .json();
    assert_eq!(
        got["extension_0b9e4f3a7c214d8eb5a62f1e9c8d7b64_costCenter"],
        "CC-1"
    );
}

#[tokio::test]
async fn item2_get_by_id_or_upn_percent_decoded_case_insensitive() {
    let env = start().await;
    let mut b = user("wmoran");
    b["userPrincipalName"] = json!("WMoran@Contoso.com");
    let id = env.create(&b).await;
    for key in [
        "wmoran@contoso.com",
        "WMORAN%40CONTOSO.COM",
        &id.to_uppercase(),
    ] {
        let r = env.get(&format!("/users/{key}")).await;
        assert_eq!(r.status, 200, "{key}: {}", r.text);
        assert_eq!(r.json()["id"], id.as_str());
    }
    // Key syntax for UPNs starting with '$'.
    let mut d = user("dollar");
    d["userPrincipalName"] = json!("$dollar@contoso.com");
    let did = env.create(&d).await;
    assert_eq!(
        env.get("/users('$dollar@contoso.com')").await.json()["id"],
        did.as_str()
    );
    assert_eq!(env.get("/users/$dollar@contoso.com").await.status, 400);
    // 404 echoes the key as sent.
    let r = env.get("/users/nobody%40contoso.com").await;
    assert_error(&r, 404, "Request_ResourceNotFound",
        "Resource 'nobody%40contoso.com' does not exist or one of its queried reference-property objects are not present.");
}

#[tokio::test]
async fn item8_patch_merges_null_clears_and_read_only_rejected() {
    let env = start().await;
    let mut b = user("m");
    b["companyName"] = json!("Fabrikam");
    b["employeeId"] = json!("F-1");
    b["onPremisesExtensionAttributes"] =
        json!({"extensionAttribute1": "a", "extensionAttribute2": "b"});
    let id = env.create(&b).await;
    let r = env
        .patch(
            &format!("/users/{id}"),
            &json!({
                "jobTitle": "Engineer", "employeeId": null,
                "onPremisesExtensionAttributes": {"extensionAttribute2": "B"}
            }),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert!(r.text.is_empty());
    let got = env
        .get(&format!(
            "/users/{id}?$select=companyName,employeeId,jobTitle,onPremisesExtensionAttributes"
        ))
        .await
        .json();
    assert_eq!(got["companyName"], "Fabrikam", "omitted property kept");
    assert_eq!(got["employeeId"], Value::Null, "null clears");
    assert_eq!(got["jobTitle"], "Engineer");
    let ext = &got["onPremisesExtensionAttributes"];
    assert_eq!(ext["extensionAttribute1"], "a", "partial object merges");
    assert_eq!(ext["extensionAttribute2"], "B");
    assert_eq!(ext.as_object().map(|m| m.len()), Some(15));

    assert_error(
        &env.patch(
            &format!("/users/{id}"),
            &json!({"proxyAddresses": ["SMTP:x@y.com"]}),
        )
        .await,
        400,
        "Request_BadRequest",
        "Property 'proxyAddresses' is read-only and cannot be set.",
    );
    assert_error(
        &env.patch(&format!("/users/{id}"), &json!({"displayName": null}))
            .await,
        400,
        "Request_BadRequest",
        "Invalid value specified for property 'displayName' of resource 'User'.",
    );
    assert_error(
        &env.patch(
            &format!("/users/{id}"),
            &json!({"createdDateTime": "2020-01-01T00:00:00Z"}),
        )
        .await,
        400,
        "Request_BadRequest",
        "Property 'createdDateTime' is read-only and cannot be set.",
    );
    // UPN change keeps the user addressable by its new UPN.
    assert_eq!(
        env.patch(
            &format!("/users/{id}"),
            &json!({"userPrincipalName": "renamed@contoso.com"})
        )
        .await
        .status,
        204
    );
    assert_eq!(
        env.get("/users/renamed@contoso.com").await.json()["id"],
        id.as_str()
    );
}

#[tokio::test]
async fn item9_soft_delete_restore_and_permanent_delete() {
    let env = start().await;
    let id = env.create(&user("gone")).await;
    let r = env.delete(&format!("/users/{id}")).await;
    assert_eq!(r.status, 204);
    assert_eq!(env.get(&format!("/users/{id}")).await.status, 404);

    let list = env
        .get("/directory/deletedItems/microsoft.graph.user")
        .await
        .json();
    let entry = &list["value"][0];
    assert_eq!(entry["id"], id.as_str());
    assert!(entry["deletedDateTime"].as_str().is_some());
    let one = env
        .get(&format!("/directory/deletedItems/{id}"))
        .await
        .json();
    assert_eq!(one["@odata.type"], "#microsoft.graph.user");
    assert_eq!(
        env.get("/directory/deletedItems/graph.user").await.status,
        200
    );

    // The UPN can be reused while the old object is in deleted items; restore then conflicts.
    let reuse = env.create(&user("gone")).await;
    let r = env
        .send(
            "POST",
            &format!("/directory/deletedItems/{id}/restore"),
            None,
            &[("content-length", "0")],
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(
        r.json()["error"]["details"][0]["target"],
        "userPrincipalName"
    );
    assert_eq!(env.delete(&format!("/users/{reuse}")).await.status, 204);
    assert_eq!(
        env.delete(&format!("/directory/deletedItems/{reuse}"))
            .await
            .status,
        204
    );

    // Restore: 200 with the user, the original UPN back.
    let r = env
        .send(
            "POST",
            &format!("/directory/deletedItems/{id}/microsoft.graph.restore"),
            None,
            &[("content-length", "0")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    assert_eq!(v["@odata.type"], "#microsoft.graph.user");
    assert_eq!(v["userPrincipalName"], "gone@contoso.com");
    assert!(v["@odata.context"]
        .as_str()
        .is_some_and(|c| c.ends_with("$metadata#directoryObjects/$entity")));
    assert_eq!(env.get(&format!("/users/{id}")).await.status, 200);

    // Permanent delete.
    env.delete(&format!("/users/{id}")).await;
    assert_eq!(
        env.delete(&format!("/directory/deletedItems/{id}"))
            .await
            .status,
        204
    );
    assert_eq!(
        env.get(&format!("/directory/deletedItems/{id}"))
            .await
            .status,
        404
    );
    assert_eq!(env.emu.admin().count().deleted, 0);
}

#[tokio::test]
async fn item9_restore_without_content_length_gets_411() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let env = start().await;
    let id = env.create(&user("r411")).await;
    env.delete(&format!("/users/{id}")).await;
    // Raw socket: a POST with neither a body nor Content-Length, as graph-rs-sdk sends it.
    let mut s = tokio::net::TcpStream::connect(env.emu.addr())
        .await
        .expect("connect");
    let req = format!(
        "POST /v1.0/directory/deletedItems/{id}/restore HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
        env.emu.addr(), env.token
    );
    s.write_all(req.as_bytes()).await.expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("read");
    assert!(out.starts_with("HTTP/1.1 411"), "{out}");
    assert!(out.contains("HTTP Error 411. The request must be chunked or have a content length."));
    assert!(out.to_ascii_lowercase().contains("content-type: text/html"));
    // Still deleted.
    assert_eq!(env.get(&format!("/users/{id}")).await.status, 404);
}

#[tokio::test]
async fn get_by_ids_returns_known_users_only() {
    let env = start().await;
    let a = env.create(&user("ida")).await;
    let b = env.create(&user("idb")).await;
    let body = json!({"ids": [a, "00000000-0000-4000-8000-000000000000", b], "types": ["user"]});
    for path in ["/directoryObjects/getByIds", "/users/getByIds"] {
        let r = env.post(path, &body).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text);
        let v = r.json();
        let ids: Vec<&str> = v["value"]
            .as_array()
            .map(|a| a.iter().filter_map(|u| u["id"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(ids, vec![a.as_str(), b.as_str()]);
        assert_eq!(v["value"][0]["@odata.type"], "#microsoft.graph.user");
    }
    let groups_only = env
        .post(
            "/directoryObjects/getByIds",
            &json!({"ids": [a], "types": ["group"]}),
        )
        .await
        .json();
    assert_eq!(groups_only["value"].as_array().map(Vec::len), Some(0));
    let too_many: Vec<String> = (0..1_001)
        .map(|i| format!("00000000-0000-4000-8000-{i:012}"))
        .collect();
    assert_error(
        &env.post("/directoryObjects/getByIds", &json!({"ids": too_many}))
            .await,
        400,
        "Request_BadRequest",
        "The number of ids exceeds the maximum of 1000.",
    );
}
