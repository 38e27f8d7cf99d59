//! Checklist §7 items 1, 3–6 and 16: routing variants, query decoding, `$filter`, advanced
//! queries, `$top`/`$select`/`$count`, absolute nextLinks; and paging over 2,500 users.

mod common;

use common::*;
use serde_json::{json, Value};

async fn seeded() -> Env {
    let env = start().await;
    let admin = env.emu.admin();
    let users = vec![
        json!({"userPrincipalName": "pat@contoso.com", "displayName": "Pat O'Brien", "mailNickname": "pat",
               "accountEnabled": true, "userType": "Guest", "mail": "pat@fabrikam.com",
               "otherMails": ["pat@fabrikam.com", "p@home.example"], "companyName": "Fabrikam",
               "employeeId": "F-1", "onPremisesImmutableId": "ImmPat==", "onPremisesExtensionAttributes": {"extensionAttribute1": "partner-sync"}}),
        json!({"userPrincipalName": "alex@contoso.com", "displayName": "Alex Wilber", "mailNickname": "alex",
               "accountEnabled": false, "userType": "Member", "mail": "alex@contoso.com",
               "identities": [{"signInType": "federated", "issuer": "mail", "issuerAssignedId": "alex@x.example"}]}),
        json!({"userPrincipalName": "megan@partners.contoso.com", "displayName": "Megan Bowen", "mailNickname": "megan",
               "accountEnabled": true, "userType": "Guest", "companyName": "Adatum", "mail": "megan@adatum.example"}),
    ];
    admin.seed_users(users).expect("seed");
    env
}

fn upns(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v["value"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|u| u["userPrincipalName"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

#[tokio::test]
async fn item1_routing_variants() {
    let env = seeded().await;
    for p in [
        "/users/delta",
        "/users/delta()",
        "/users/microsoft.graph.delta()",
    ] {
        assert_eq!(env.get(p).await.status, 200, "{p}");
    }
    assert_eq!(
        env.send_raw(
            "GET",
            &format!("{}/beta/users", env.emu.base_url()),
            None,
            &[],
            Some(&env.token)
        )
        .await
        .status,
        200
    );
    assert_error(
        &env.get("/groups").await,
        400,
        "BadRequest",
        "Resource not found for the segment 'groups'.",
    );
    assert_error(
        &env.send("PUT", "/users", Some(&json!({})), &[]).await,
        405,
        "Request_BadRequest",
        "Specified HTTP method is not allowed for the request target.",
    );
    assert_error(
        &env.get("/me").await,
        400,
        "Request_BadRequest",
        "/me request is only valid with delegated authentication flow.",
    );
    let org = env.get("/organization").await.json();
    assert_eq!(org["value"][0]["id"], env.emu.tenant_id());
    let domains = env.get("/domains").await.json();
    assert!(domains["value"].as_array().is_some_and(|d| d
        .iter()
        .any(|x| x["id"] == "partners.contoso.com" && x["authenticationType"] == "Federated")));
}

#[tokio::test]
async fn item3_query_strings_are_form_decoded_and_case_insensitive() {
    let env = seeded().await;
    // As graph-rs-sdk encodes it: %24 names, + for space, %27 quotes, %28/%29/%2C.
    let r = env.get("/users?%24filter=userType+eq+%27Guest%27+and+startswith%28displayName%2C%27Pat%27%29&%24select=id%2CuserPrincipalName").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(upns(&r.json()), vec!["pat@contoso.com"]);
    let r = env.get("/users?$SELECT=id&$Top=1").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["value"].as_array().map(Vec::len), Some(1));
    assert_error(
        &env.get("/users?filter=userType%20eq%20'Guest'").await,
        400,
        "BadRequest",
        "Query option 'filter' is not supported without the '$' prefix on v1.0; use '$filter'.",
    );
    assert_error(
        &env.get("/users?$top=1&$top=2").await,
        400,
        "BadRequest",
        "Query option '$top' was specified more than once, but it must be specified at most once.",
    );
}

#[tokio::test]
async fn item4_filter_grammar_and_evaluation() {
    let env = seeded().await;
    let cases: &[(&str, &[&str])] = &[
        (
            "userType eq 'guest'",
            &["megan@partners.contoso.com", "pat@contoso.com"],
        ),
        ("displayName eq 'Pat O''Brien'", &["pat@contoso.com"]),
        (
            "startswith(displayName,'meg')",
            &["megan@partners.contoso.com"],
        ),
        ("userType in ('Member','Nobody')", &["alex@contoso.com"]),
        (
            "accountEnabled eq false or userPrincipalName eq 'PAT@CONTOSO.COM'",
            &["alex@contoso.com", "pat@contoso.com"],
        ),
        (
            "otherMails/any(x:x eq 'p@home.example')",
            &["pat@contoso.com"],
        ),
        (
            "identities/any(c:c/issuerAssignedId eq 'alex@x.example' and c/issuer eq 'mail')",
            &["alex@contoso.com"],
        ),
        (
            "(userType eq 'Guest') and (accountEnabled eq true)",
            &["megan@partners.contoso.com", "pat@contoso.com"],
        ),
        // Answered from the id/UPN indexes, then the rest of the filter applies.
        ("userPrincipalName eq 'MEGAN@partners.contoso.com'", &["megan@partners.contoso.com"]),
        ("userPrincipalName in ('pat@contoso.com','ALEX@contoso.com') and accountEnabled eq true", &["pat@contoso.com"]),
        ("userPrincipalName eq 'nobody@contoso.com' or userPrincipalName eq 'alex@contoso.com'", &["alex@contoso.com"]),
    ];
    for (f, want) in cases {
        let r = env
            .get(&format!(
                "/users?$filter={}&$select=userPrincipalName",
                urlencode(f)
            ))
            .await;
        assert_eq!(r.status, 200, "{f}: {}", r.text);
        assert_eq!(upns(&r.json()), *want, "{f}");
    }
    // Advanced-only constructs, with the advanced parameters.
    let adv: &[(&str, &[&str])] = &[
        ("endsWith(mail,'@fabrikam.com')", &["pat@contoso.com"]),
        ("userType ne 'Guest'", &["alex@contoso.com"]),
        ("not(userType eq 'Guest')", &["alex@contoso.com"]),
        ("companyName eq null", &["alex@contoso.com"]),
        ("companyName eq 'adatum'", &["megan@partners.contoso.com"]),
        (
            "onPremisesExtensionAttributes/extensionAttribute1 eq 'partner-sync'",
            &["pat@contoso.com"],
        ),
        // Strict mode: advanced; answered from the immutable-id index.
        ("onPremisesImmutableId eq 'immpat=='", &["pat@contoso.com"]),
        (
            "otherMails/$count eq 0",
            &["alex@contoso.com", "megan@partners.contoso.com"],
        ),
    ];
    for (f, want) in adv {
        let r = env
            .get_adv(&format!(
                "/users?$filter={}&$count=true&$select=userPrincipalName",
                urlencode(f)
            ))
            .await;
        assert_eq!(r.status, 200, "{f}: {}", r.text);
        assert_eq!(upns(&r.json()), *want, "{f}");
        assert_eq!(r.json()["@odata.count"], want.len(), "{f}");
    }
    assert_error(
        &env.get("/users?$filter=displayName%20eq").await,
        400,
        "BadRequest",
        "Invalid filter clause: Expression expected at position 14 in 'displayName eq'.",
    );
    assert_error(
        &env.get("/users?$filter=favourite%20eq%20'x'").await,
        400,
        "BadRequest",
        "Could not find a property named 'favourite' on type 'microsoft.graph.user'.",
    );
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn item5_advanced_query_rules() {
    let env = seeded().await;
    let op_msg = |op: &str| {
        format!("Operator '{op}' is not supported because the required parameters might be missing. Try adding $count=true query parameter and ConsistencyLevel:eventual header. Refer to https://aka.ms/graph-docs/advanced-queries for more information")
    };
    assert_error(
        &env.get("/users?$filter=endsWith(mail,'@fabrikam.com')")
            .await,
        400,
        "Request_UnsupportedQuery",
        &op_msg("endsWith"),
    );
    // Header without $count=true is not enough; $count=true without header neither.
    assert_error(
        &env.get_adv("/users?$filter=userType%20ne%20'Guest'").await,
        400,
        "Request_UnsupportedQuery",
        &op_msg("ne"),
    );
    assert_error(
        &env.get("/users?$filter=userType%20ne%20'Guest'&$count=true")
            .await,
        400,
        "Request_UnsupportedQuery",
        &op_msg("ne"),
    );
    assert_error(&env.get("/users?$filter=companyName%20eq%20'Fabrikam'").await, 400, "Request_UnsupportedQuery",
        "Unsupported or invalid query filter clause specified for property 'companyName' of resource 'User'.");
    assert_error(&env.get_adv("/users?$filter=endsWith(displayName,'x')&$count=true").await, 400, "Request_UnsupportedQuery",
        "Unsupported or invalid query filter clause specified for property 'displayName' of resource 'User'.");
    assert_error(&env.get("/users?$search=%22displayName:pat%22").await, 400, "Request_UnsupportedQuery",
        "Request with $search query parameter only works through MSGraph with a special request header: 'ConsistencyLevel: eventual'");
    let s = env.get_adv("/users?$search=%22displayName:bowen%22").await;
    assert_eq!(upns(&s.json()), vec!["megan@partners.contoso.com"]);
    assert_error(
        &env.get("/users/$count").await,
        400,
        "Request_BadRequest",
        "$count is not currently supported.",
    );
    let c = env
        .get_adv("/users/$count?$filter=userType%20eq%20'Guest'")
        .await;
    assert_eq!(c.status, 200);
    assert_eq!(c.text, "2");
    assert!(c
        .header("content-type")
        .unwrap_or_default()
        .starts_with("text/plain"));
    // $count=true without the header is silently ignored.
    let r = env.get("/users?$count=true").await;
    assert_eq!(r.status, 200);
    assert!(r.json().get("@odata.count").is_none());
    // $filter + $orderby needs advanced parameters.
    assert_error(
        &env.get("/users?$filter=userType%20eq%20'Guest'&$orderby=displayName")
            .await,
        400,
        "Request_UnsupportedQuery",
        "Sorting not supported for current query.",
    );
    let r = env
        .get_adv("/users?$filter=userType%20eq%20'Guest'&$orderby=displayName%20desc&$count=true")
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["value"][0]["userPrincipalName"], "pat@contoso.com");
    // Lenient mode treats uncertain entries as default.
    assert_eq!(
        env.get("/users?$filter=onPremisesImmutableId%20eq%20'x'")
            .await
            .status,
        400
    );
    env.emu
        .admin()
        .update_settings(|s| s.query_mode = partnersync_graph_emulator::QueryMode::Lenient);
    assert_eq!(
        env.get("/users?$filter=onPremisesImmutableId%20eq%20'x'")
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn item6_top_select_and_projection() {
    let env = seeded().await;
    assert_error(
        &env.get("/users?$top=1000").await,
        400,
        "Request_UnsupportedQuery",
        "Invalid page size specified: '1000'. Must be between 1 and 999 inclusive.",
    );
    assert_error(
        &env.get("/users?$top=0").await,
        400,
        "Request_UnsupportedQuery",
        "Invalid page size specified: '0'. Must be between 1 and 999 inclusive.",
    );
    assert_error(
        &env.get("/users?$skip=1").await,
        400,
        "Request_BadRequest",
        "'$skip' is not supported by the service.",
    );
    assert_error(
        &env.get("/users?$select=aboutMe").await,
        501,
        "NotImplemented",
        "This operation target is not yet supported.",
    );
    assert_error(&env.get("/users?$select=nonsense").await, 400, "BadRequest",
        "Parsing OData Select and Expand failed: Could not find a property named 'nonsense' on type 'microsoft.graph.user'.");
    let r = env.get("/users?$select=userType,companyName").await.json();
    assert_eq!(
        r["@odata.context"],
        format!(
            "{}/$metadata#users(userType,companyName)",
            env.emu.graph_url()
        )
    );
    let first = r["value"][0].as_object().cloned().unwrap_or_default();
    let mut keys: Vec<&String> = first.keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        vec!["companyName", "userType"],
        "exactly the selected set"
    );
    let d = env.get("/users").await.json();
    assert_eq!(d["value"][0].as_object().map(|m| m.len()), Some(11));
    let one = env
        .get("/users/pat@contoso.com?$select=id,onPremisesExtensionAttributes")
        .await
        .json();
    assert_eq!(
        one["@odata.context"],
        format!(
            "{}/$metadata#users(id,onPremisesExtensionAttributes)/$entity",
            env.emu.graph_url()
        )
    );
    assert_eq!(
        one["onPremisesExtensionAttributes"]
            .as_object()
            .map(|m| m.len()),
        Some(15)
    );
    assert_eq!(
        one["onPremisesExtensionAttributes"]["extensionAttribute15"],
        Value::Null
    );
}

#[tokio::test]
async fn item16_paging_2500_users_with_absolute_next_links() {
    let env = start().await;
    env.emu
        .admin()
        .generate_users(2_500, "bulk", "contoso.com")
        .expect("generate");
    let mut url = env.url("/users?$select=id,userPrincipalName&$top=999");
    let mut seen = std::collections::HashSet::new();
    let mut pages = 0;
    loop {
        let r = env.send_raw("GET", &url, None, &[], Some(&env.token)).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let v = r.json();
        let page = v["value"].as_array().cloned().unwrap_or_default();
        assert!(!page.is_empty(), "never an empty page with a nextLink");
        for u in &page {
            assert!(
                seen.insert(u["id"].as_str().unwrap_or("").to_string()),
                "duplicate"
            );
        }
        pages += 1;
        match v["@odata.nextLink"].as_str() {
            Some(next) => {
                assert!(
                    next.starts_with(&env.emu.graph_url()),
                    "absolute link on our host: {next}"
                );
                assert!(next.contains("$skiptoken="));
                assert!(next.contains("$select=id,userPrincipalName"));
                url = next.to_string();
            }
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 2_500);
    // Default page size is 100.
    let v = env.get("/users").await.json();
    assert_eq!(v["value"].as_array().map(Vec::len), Some(100));
    // Advanced queries need the header again on next pages (strict mode).
    let first = env
        .get_adv("/users?$filter=endsWith(userPrincipalName,'@contoso.com')&$count=true&$top=999")
        .await
        .json();
    assert_eq!(first["@odata.count"], 2_500);
    let next = first["@odata.nextLink"].as_str().unwrap_or("").to_string();
    assert_error(
        &env.send_raw("GET", &next, None, &[], Some(&env.token))
            .await,
        400,
        "Request_UnsupportedQuery",
        "Unsupported Query.",
    );
    assert_eq!(
        env.send_raw(
            "GET",
            &next,
            None,
            &[("ConsistencyLevel", "eventual")],
            Some(&env.token)
        )
        .await
        .status,
        200
    );
    assert_error(
        &env.get("/users?$skiptoken=garbage!").await,
        400,
        "Directory_ExpiredPageToken",
        "The specified page token value has expired and can no longer be included in your request.",
    );
}

#[tokio::test]
async fn simulated_replication_lag_hides_new_users_from_lists_only() {
    let env = start().await;
    env.emu
        .admin()
        .update_settings(|s| s.replication_lag_ms = 1_000);
    let id = env.create(&user("lagging")).await;
    let list = env
        .get("/users?$filter=userPrincipalName%20eq%20'lagging@contoso.com'")
        .await
        .json();
    assert_eq!(
        list["value"].as_array().map(Vec::len),
        Some(0),
        "not yet replicated"
    );
    assert_eq!(env.get_adv("/users/$count").await.text, "0");
    assert_eq!(
        env.get(&format!("/users/{id}")).await.status,
        200,
        "GET by id sees it at once"
    );
    tokio::time::sleep(std::time::Duration::from_millis(1_050)).await;
    let list = env
        .get("/users?$filter=userPrincipalName%20eq%20'lagging@contoso.com'")
        .await
        .json();
    assert_eq!(list["value"][0]["id"], id.as_str());
}

/// Registered extension properties (`extension_<appId>_<name>`) filter like other directory
/// properties: `eq` by default (Microsoft's own samples send it plainly), `ne`, `not` and
/// `null` comparisons only with advanced-query parameters; `$select` returns them.
#[tokio::test]
async fn extension_properties_filter_eq_by_default_and_ne_null_in_advanced_queries() {
    const EXT: &str = "extension_0b9e4f3a7c214d8eb5a62f1e9c8d7b64_partnerAnchor";
    let env = seeded().await;
    let admin = env.emu.admin();
    admin
        .seed_users(vec![
            json!({"userPrincipalName": "ana@partners.contoso.com", "displayName": "Ana",
                   "mailNickname": "ana", "accountEnabled": true, EXT: "QW5hQW5jaG9y"}),
            json!({"userPrincipalName": "bo@partners.contoso.com", "displayName": "Bo",
                   "mailNickname": "bo", "accountEnabled": true, EXT: "Qm9BbmNob3I="}),
        ])
        .expect("seed");
    let filter = |f: &str| format!("/users?$filter={}", urlencode(f));

    // eq: default, case-insensitive like every string comparison.
    let r = env.get(&filter(&format!("{EXT} eq 'qw5hqw5jag9y'"))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(upns(&r.json()), vec!["ana@partners.contoso.com"]);

    // ne null: advanced only; then exactly the users that carry a value.
    assert_error(
        &env.get(&filter(&format!("{EXT} ne null"))).await,
        400,
        "Request_UnsupportedQuery",
        "Operator 'ne' is not supported because the required parameters might be missing. Try adding $count=true query parameter and ConsistencyLevel:eventual header. Refer to https://aka.ms/graph-docs/advanced-queries for more information",
    );
    let r = env
        .get_adv(&format!(
            "{}&$count=true&$select=id,userPrincipalName,{EXT}",
            filter(&format!("{EXT} ne null"))
        ))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    assert_eq!(
        upns(&v),
        vec!["ana@partners.contoso.com", "bo@partners.contoso.com"]
    );
    assert_eq!(v["@odata.count"], 2);
    assert!(v["value"]
        .as_array()
        .is_some_and(|a| a.iter().all(|u| u[EXT].is_string())));

    // eq null: advanced; the three seeded users without the property.
    assert_eq!(
        env.get(&filter(&format!("{EXT} eq null"))).await.status,
        400
    );
    let r = env
        .get_adv(&format!(
            "{}&$count=true",
            filter(&format!("{EXT} eq null"))
        ))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["value"].as_array().map(Vec::len), Some(3));

    // Deleted users are filtered the same way.
    let bo = admin.user("bo@partners.contoso.com").expect("bo");
    let id = bo["id"].as_str().unwrap_or_default().to_string();
    assert_eq!(env.delete(&format!("/users/{id}")).await.status, 204);
    let r = env
        .get_adv(&format!(
            "/directory/deletedItems/microsoft.graph.user?$filter={}&$count=true&$select=id,{EXT}",
            urlencode(&format!("{EXT} ne null"))
        ))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["value"][0]["id"], id.as_str());

    // A malformed extension name is no property at all; a path below one is refused.
    assert_eq!(
        env.get(&filter("extension_123_partnerAnchor eq 'x'"))
            .await
            .status,
        400
    );
    assert_eq!(
        env.get(&filter(&format!("{EXT}/x eq 'x'"))).await.status,
        400
    );
}
