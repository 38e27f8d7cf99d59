//! graph.md §7 conformance checklist, driven through `graph-rs-sdk` 3.0.1 — the client the
//! project ships — one test per checklist point. Where the SDK has no generated builder, the
//! test says so and uses `client.custom(...)` (still the SDK's transport).

use std::time::{Duration, Instant};

use graph_rs_sdk::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_LENGTH};
use graph_rs_sdk::http::{BodyRead, Method, ResponseExt, Url};
use graph_rs_sdk::{GraphClient, GraphClientConfiguration, ODataQuery};
use partnersync_graph_emulator::{
    AppRegistration, Emulator, EmulatorConfig, EmulatorHandle, Fault, FaultRule, Permission,
    RetryAfterMode,
};
use serde_json::{json, Value};

struct Env {
    emu: EmulatorHandle,
    client: GraphClient,
}

struct Resp {
    status: u16,
    headers: HeaderMap,
    text: String,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
}

fn config() -> EmulatorConfig {
    EmulatorConfig::default()
}

fn client_for(emu: &EmulatorHandle, token: &str, cfg: GraphClientConfiguration) -> GraphClient {
    let mut client = GraphClient::from(
        cfg.access_token(token)
            .https_only(false)
            .timeout(Duration::from_secs(10)),
    );
    client.use_test_endpoint(&Url::parse(&emu.graph_url()).expect("graph url"));
    client
}

async fn start_with(cfg: EmulatorConfig) -> Env {
    let emu = Emulator::start(cfg).await.expect("emulator starts");
    let token = emu.token().expect("token");
    let client = client_for(&emu, &token, GraphClientConfiguration::new());
    Env { emu, client }
}

async fn start() -> Env {
    start_with(config()).await
}

/// Sends an SDK request and reads the whole response.
async fn send(
    fut: impl std::future::Future<Output = graph_rs_sdk::GraphResult<reqwest::Response>>,
) -> Resp {
    let resp = fut.await.expect("SDK transport");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.expect("body");
    Resp {
        status,
        headers,
        text,
    }
}

fn eventual() -> (HeaderName, HeaderValue) {
    (
        HeaderName::from_static("consistencylevel"),
        HeaderValue::from_static("eventual"),
    )
}

/// A valid `POST /users` body in the managed domain.
fn user(alias: &str) -> Value {
    json!({
        "accountEnabled": true,
        "displayName": format!("User {alias}"),
        "mailNickname": alias,
        "userPrincipalName": format!("{alias}@contoso.com"),
        "passwordProfile": {"forceChangePasswordNextSignIn": true, "password": "Xy12345!abcD"}
    })
}

async fn create(env: &Env, body: &Value) -> String {
    let r = send(env.client.users().create_user(body).send()).await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.json()["id"].as_str().expect("id").to_string()
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

/// Checks a Graph error response field by field (graph.md §2.7, §7 item 14).
fn assert_error(r: &Resp, status: u16, code: &str, message: &str) {
    assert_eq!(r.status, status, "status; body: {}", r.text);
    let ct = r.header("content-type").unwrap_or_default();
    assert!(ct.starts_with("application/json"), "content-type {ct}");
    let v = r.json();
    let e = &v["error"];
    assert_eq!(e["code"], code, "code; body: {}", r.text);
    assert_eq!(e["message"], message, "message; body: {}", r.text);
    let inner = &e["innerError"];
    let date = inner["date"].as_str().expect("innerError.date");
    assert!(
        date.len() == 19 && &date[4..5] == "-" && &date[10..11] == "T",
        "date {date}"
    );
    let rid = inner["request-id"].as_str().expect("innerError.request-id");
    assert_eq!(r.header("request-id").as_deref(), Some(rid));
    let crid = inner["client-request-id"]
        .as_str()
        .expect("innerError.client-request-id");
    assert_eq!(r.header("client-request-id").as_deref(), Some(crid));
}

/// Seeds a small, varied directory through the SDK.
async fn seeded() -> Env {
    let env = start().await;
    let mut pat = user("pat");
    pat["userType"] = json!("Guest");
    pat["displayName"] = json!("Pat O'Brien");
    pat["companyName"] = json!("Fabrikam");
    pat["mail"] = json!("pat@fabrikam.com");
    pat["otherMails"] = json!(["pat.alt@fabrikam.com"]);
    pat["onPremisesExtensionAttributes"] = json!({"extensionAttribute1": "partner-sync"});
    pat["identities"] = json!([{"signInType": "userPrincipalName",
        "issuer": "contoso.onmicrosoft.com", "issuerAssignedId": "pat@contoso.com"}]);
    create(&env, &pat).await;
    let mut ann = user("ann");
    ann["userType"] = json!("Guest");
    ann["displayName"] = json!("Ann Lee");
    ann["companyName"] = json!("Northwind");
    ann["mail"] = json!("ann@northwind.com");
    create(&env, &ann).await;
    let mut bob = user("bob");
    bob["displayName"] = json!("Bob Member");
    create(&env, &bob).await;
    env
}

// ---------------------------------------------------------------------------------------------
// Routing and parsing

#[tokio::test]
async fn item01_routing_sdk_paths_and_aliases() {
    let env = start().await;
    let id = create(&env, &user("route")).await;
    // The SDK's generated paths: users/delta(), directory/deletedItems/graph.user, …/restore.
    let d = send(env.client.users().delta().select(&["id"]).send()).await;
    assert_eq!(d.status, 200, "{}", d.text);
    assert!(d.json()["value"].is_array());
    // Aliases the SDK does not generate: custom() with extend_path.
    for seg in ["delta", "microsoft.graph.delta()"] {
        let r = send(
            env.client
                .custom(Method::GET, None)
                .extend_path(&["users", seg])
                .send(),
        )
        .await;
        assert_eq!(r.status, 200, "users/{seg}: {}", r.text);
    }
    assert_eq!(
        send(env.client.user(&id).delete_user().send()).await.status,
        204
    );
    let listed = send(
        env.client
            .directory()
            .deleted_items()
            .get_directory_object_items_as_user_type()
            .send(),
    )
    .await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    assert_eq!(listed.json()["value"][0]["id"], id.as_str());
    let alias = send(
        env.client
            .custom(Method::GET, None)
            .extend_path(&["directory", "deletedItems", "microsoft.graph.user"])
            .send(),
    )
    .await;
    assert_eq!(alias.status, 200, "{}", alias.text);
    assert_eq!(alias.json()["value"][0]["id"], id.as_str());
    // microsoft.graph.restore alias. An empty custom() body still goes out without
    // Content-Length (the SDK drops empty bodies), so the header is added explicitly.
    let r = send(
        env.client
            .custom(Method::POST, None)
            .extend_path(&["directory", "deletedItems", &id, "microsoft.graph.restore"])
            .header(CONTENT_LENGTH, HeaderValue::from_static("0"))
            .send(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["id"], id.as_str());

    // Key syntax for UPNs starting with '$': the SDK's user("$…") builds /users/$… → 400.
    env.emu
        .admin()
        .seed_user(json!({"userPrincipalName": "$dollar@contoso.com", "displayName": "Dollar"}))
        .expect("seed");
    let plain = send(env.client.user("$dollar@contoso.com").get_user().send()).await;
    assert_eq!(plain.status, 400, "{}", plain.text);
    let keyed = send(
        env.client
            .custom(Method::GET, None)
            .extend_path(&["users('$dollar@contoso.com')"])
            .send(),
    )
    .await;
    assert_eq!(keyed.status, 200, "{}", keyed.text);
    assert_eq!(keyed.json()["userPrincipalName"], "$dollar@contoso.com");

    // /beta is served too (a second client aimed at …/beta, graph.md §5.2).
    let token = env.emu.token().expect("token");
    let mut beta = GraphClient::from(
        GraphClientConfiguration::new()
            .access_token(token)
            .https_only(false),
    );
    let beta_url = env.emu.graph_url().replace("/v1.0", "/beta");
    beta.use_test_endpoint(&Url::parse(&beta_url).expect("beta url"));
    let r = send(beta.user(&id).get_user().send()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    // Unknown segments are Graph errors, not axum 404 pages.
    let r = send(
        env.client
            .custom(Method::GET, None)
            .extend_path(&["groups"])
            .send(),
    )
    .await;
    assert_error(
        &r,
        400,
        "BadRequest",
        "Resource not found for the segment 'groups'.",
    );
}

#[tokio::test]
async fn item02_percent_decoded_paths_and_case_insensitive_upns() {
    let env = start().await;
    let inv = send(
        env.client
            .invitations()
            .create_invitation(&json!({
                "invitedUserEmailAddress": "Adele.V@adatum.com",
                "inviteRedirectUrl": "https://myapps.microsoft.com"
            }))
            .send(),
    )
    .await;
    assert_eq!(inv.status, 201, "{}", inv.text);
    let uid = inv.json()["invitedUser"]["id"]
        .as_str()
        .expect("invitedUser.id")
        .to_string();
    // The SDK encodes '#' as %23; the emulator decodes it and matches case-insensitively.
    for key in [
        "Adele.V_adatum.com#EXT#@contoso.onmicrosoft.com",
        "ADELE.V_ADATUM.COM#ext#@CONTOSO.ONMICROSOFT.COM",
    ] {
        let r = send(env.client.user(key).get_user().send()).await;
        assert_eq!(r.status, 200, "{key}: {}", r.text);
        assert_eq!(r.json()["id"], uid.as_str());
    }
    let id = create(&env, &user("CaseUser")).await;
    let r = send(env.client.user("caseuser@CONTOSO.com").get_user().send()).await;
    assert_eq!(r.json()["id"], id.as_str());
    // A missing object: 404 echoing the key as sent (the SDK leaves '@' unencoded).
    let r = send(env.client.user("nobody@contoso.com").get_user().send()).await;
    assert_error(&r, 404, "Request_ResourceNotFound",
        "Resource 'nobody@contoso.com' does not exist or one of its queried reference-property objects are not present.");
}

#[tokio::test]
async fn item03_query_string_decoding_and_option_names() {
    let env = seeded().await;
    // The SDK form-encodes: %24filter, '+' for spaces, %27 for quotes, %28/%29, %2C.
    let r = send(
        env.client
            .users()
            .list_user()
            .filter(&["startswith(displayName,'Ann L') or displayName eq 'Bob Member'"])
            .select(&["id", "userPrincipalName"])
            .send(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(upns(&r.json()), vec!["ann@contoso.com", "bob@contoso.com"]);
    // Option names are case-insensitive.
    let r = send(
        env.client
            .users()
            .list_user()
            .append_query_pair("$FILTER", "userPrincipalName eq 'bob@contoso.com'")
            .append_query_pair("$Select", "userPrincipalName")
            .send(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(upns(&r.json()), vec!["bob@contoso.com"]);
    // '$'-less names are rejected on v1.0; duplicates too.
    let r = send(
        env.client
            .users()
            .list_user()
            .append_query_pair("filter", "userType eq 'Guest'")
            .send(),
    )
    .await;
    assert_error(
        &r,
        400,
        "BadRequest",
        "Query option 'filter' is not supported without the '$' prefix on v1.0; use '$filter'.",
    );
    let r = send(
        env.client
            .users()
            .list_user()
            .top("1")
            .append_query_pair("$top", "2")
            .send(),
    )
    .await;
    assert_error(
        &r,
        400,
        "BadRequest",
        "Query option '$top' was specified more than once, but it must be specified at most once.",
    );
    // Its own nextLinks (literal $skiptoken) are accepted when followed verbatim.
    let first = send(
        env.client
            .users()
            .list_user()
            .top("1")
            .select(&["id"])
            .send(),
    )
    .await;
    let next = first.json()["@odata.nextLink"]
        .as_str()
        .expect("nextLink")
        .to_string();
    assert!(next.contains("$skiptoken="), "{next}");
    let mut rh = env.client.users().list_user();
    *rh.as_mut() = Url::parse(&next).expect("nextLink url");
    let r = send(rh.send()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["value"].as_array().map(Vec::len), Some(1));
    // Garbage page tokens.
    let r = send(env.client.users().list_user().skip_token("garbage!").send()).await;
    assert_error(
        &r,
        400,
        "Directory_ExpiredPageToken",
        "The specified page token value has expired and can no longer be included in your request.",
    );
}

#[tokio::test]
async fn item04_filter_grammar() {
    let env = seeded().await;
    let query = |filter: &str, advanced: bool| {
        let mut rh = env
            .client
            .users()
            .list_user()
            .filter(&[filter])
            .select(&["id", "userPrincipalName"]);
        if advanced {
            let (k, v) = eventual();
            rh = rh.count("true").header(k, v);
        }
        rh
    };
    let cases: Vec<(&str, bool, Vec<&str>)> = vec![
        ("userType eq 'Guest'", false, vec!["ann@contoso.com", "pat@contoso.com"]),
        ("displayName eq 'pat o''brien'", false, vec!["pat@contoso.com"]),
        ("startswith(displayName,'ANN')", false, vec!["ann@contoso.com"]),
        (
            "userPrincipalName in ('bob@contoso.com', 'ann@contoso.com')",
            false,
            vec!["ann@contoso.com", "bob@contoso.com"],
        ),
        (
            "userType eq 'Guest' and startswith(displayName,'P')",
            false,
            vec!["pat@contoso.com"],
        ),
        (
            "identities/any(c:c/issuerAssignedId eq 'pat@contoso.com' and c/issuer eq 'contoso.onmicrosoft.com')",
            false,
            vec!["pat@contoso.com"],
        ),
        (
            "otherMails/any(x:x eq 'PAT.ALT@fabrikam.com')",
            false,
            vec!["pat@contoso.com"],
        ),
        ("accountEnabled eq true and userType eq 'Member'", false, vec!["bob@contoso.com"]),
        (
            "onPremisesExtensionAttributes/extensionAttribute1 eq 'partner-sync'",
            true,
            vec!["pat@contoso.com"],
        ),
        ("endswith(mail,'@northwind.com')", true, vec!["ann@contoso.com"]),
        ("not(userType eq 'Guest')", true, vec!["bob@contoso.com"]),
        ("userType ne 'Guest'", true, vec!["bob@contoso.com"]),
        ("companyName eq null", true, vec!["bob@contoso.com"]),
        ("companyName eq 'fabrikam' or companyName eq 'NORTHWIND'", true, vec![
            "ann@contoso.com",
            "pat@contoso.com",
        ]),
    ];
    for (filter, advanced, want) in cases {
        let r = send(query(filter, advanced).send()).await;
        assert_eq!(r.status, 200, "{filter}: {}", r.text);
        assert_eq!(upns(&r.json()), want, "{filter}");
    }
    // Syntax and unknown-property errors.
    assert_error(
        &send(query("displayName eq", false).send()).await,
        400,
        "BadRequest",
        "Invalid filter clause: Expression expected at position 14 in 'displayName eq'.",
    );
    assert_error(
        &send(query("favourite eq 'x'", false).send()).await,
        400,
        "BadRequest",
        "Could not find a property named 'favourite' on type 'microsoft.graph.user'.",
    );
}

#[tokio::test]
async fn item05_advanced_query_rules() {
    let env = seeded().await;
    let op_msg = |op: &str| {
        format!("Operator '{op}' is not supported because the required parameters might be missing. Try adding $count=true query parameter and ConsistencyLevel:eventual header. Refer to https://aka.ms/graph-docs/advanced-queries for more information")
    };
    let list = || {
        env.client
            .users()
            .list_user()
            .select(&["id", "userPrincipalName"])
    };
    let (k, v) = eventual();
    assert_error(
        &send(list().filter(&["endsWith(mail,'@fabrikam.com')"]).send()).await,
        400,
        "Request_UnsupportedQuery",
        &op_msg("endsWith"),
    );
    // Header alone, or $count=true alone, is not enough.
    assert_error(
        &send(
            list()
                .filter(&["userType ne 'Guest'"])
                .header(k.clone(), v.clone())
                .send(),
        )
        .await,
        400,
        "Request_UnsupportedQuery",
        &op_msg("ne"),
    );
    assert_error(
        &send(list().filter(&["userType ne 'Guest'"]).count("true").send()).await,
        400,
        "Request_UnsupportedQuery",
        &op_msg("ne"),
    );
    assert_error(
        &send(list().filter(&["companyName eq 'Fabrikam'"]).send()).await,
        400,
        "Request_UnsupportedQuery",
        "Unsupported or invalid query filter clause specified for property 'companyName' of resource 'User'.",
    );
    // With both: 200 and @odata.count.
    let r = send(
        list()
            .filter(&["endsWith(mail,'@fabrikam.com')"])
            .count("true")
            .header(k.clone(), v.clone())
            .send(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["@odata.count"], 1);
    // $count=true without the header is silently ignored.
    let r = send(list().count("true").send()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.json().get("@odata.count").is_none());
    // $search.
    assert_error(
        &send(list().search("\"displayName:pat\"").send()).await,
        400,
        "Request_UnsupportedQuery",
        "Request with $search query parameter only works through MSGraph with a special request header: 'ConsistencyLevel: eventual'",
    );
    let r = send(
        list()
            .search("\"displayName:brien\"")
            .header(k.clone(), v.clone())
            .send(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(upns(&r.json()), vec!["pat@contoso.com"]);
    // /users/$count through the SDK's get_users_count().
    assert_error(
        &send(env.client.users().get_users_count().send()).await,
        400,
        "Request_BadRequest",
        "$count is not currently supported.",
    );
    let c = send(
        env.client
            .users()
            .get_users_count()
            .filter(&["userType eq 'Guest'"])
            .header(k.clone(), v.clone())
            .send(),
    )
    .await;
    assert_eq!(c.status, 200, "{}", c.text);
    assert_eq!(c.text, "2");
    assert!(c
        .header("content-type")
        .unwrap_or_default()
        .starts_with("text/plain"));
    // $filter + $orderby.
    assert_error(
        &send(
            list()
                .filter(&["userType eq 'Guest'"])
                .order_by(&["displayName"])
                .send(),
        )
        .await,
        400,
        "Request_UnsupportedQuery",
        "Sorting not supported for current query.",
    );
    // Next pages of an advanced query need the header again (the SDK's paging() drops it).
    let first = send(
        list()
            .filter(&["endsWith(userPrincipalName,'@contoso.com')"])
            .count("true")
            .top("1")
            .header(k.clone(), v.clone())
            .send(),
    )
    .await;
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(first.json()["@odata.count"], 3);
    let next = first.json()["@odata.nextLink"]
        .as_str()
        .expect("nextLink")
        .to_string();
    let mut bare = env.client.users().list_user();
    *bare.as_mut() = Url::parse(&next).expect("url");
    assert_error(
        &send(bare.send()).await,
        400,
        "Request_UnsupportedQuery",
        "Unsupported Query.",
    );
    let mut with = env.client.users().list_user().header(k, v);
    *with.as_mut() = Url::parse(&next).expect("url");
    assert_eq!(send(with.send()).await.status, 200);
}

#[tokio::test]
async fn item06_top_skip_select_and_projection() {
    let env = seeded().await;
    assert_error(
        &send(env.client.users().list_user().top("1000").send()).await,
        400,
        "Request_UnsupportedQuery",
        "Invalid page size specified: '1000'. Must be between 1 and 999 inclusive.",
    );
    assert_error(
        &send(env.client.users().list_user().top("0").send()).await,
        400,
        "Request_UnsupportedQuery",
        "Invalid page size specified: '0'. Must be between 1 and 999 inclusive.",
    );
    assert_error(
        &send(env.client.users().list_user().skip("1").send()).await,
        400,
        "Request_BadRequest",
        "'$skip' is not supported by the service.",
    );
    assert_error(
        &send(env.client.users().list_user().select(&["aboutMe"]).send()).await,
        501,
        "NotImplemented",
        "This operation target is not yet supported.",
    );
    // Exact $select projection (no id unless selected).
    let r = send(
        env.client
            .users()
            .list_user()
            .select(&["userType", "companyName"])
            .send(),
    )
    .await
    .json();
    assert_eq!(
        r["@odata.context"],
        format!(
            "{}/$metadata#users(userType,companyName)",
            env.emu.graph_url()
        )
    );
    for u in r["value"].as_array().expect("value") {
        let mut keys: Vec<&String> = u.as_object().expect("object").keys().collect();
        keys.sort();
        assert_eq!(keys, vec!["companyName", "userType"]);
    }
    // Default 11-property projection.
    let r = send(env.client.user("pat@contoso.com").get_user().send())
        .await
        .json();
    let mut keys: Vec<&str> = r
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .filter(|k| !k.starts_with("@odata"))
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        vec![
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
            "userPrincipalName"
        ]
    );
    // Single-user $select with the complex onPremisesExtensionAttributes (all 15 keys).
    let r = send(
        env.client
            .user("pat@contoso.com")
            .get_user()
            .select(&["id", "onPremisesExtensionAttributes"])
            .send(),
    )
    .await
    .json();
    let ext = r["onPremisesExtensionAttributes"]
        .as_object()
        .expect("object");
    assert_eq!(ext.len(), 15);
    assert_eq!(ext["extensionAttribute1"], "partner-sync");
    assert_eq!(ext["extensionAttribute2"], Value::Null);
    // $top limits the page size.
    let r = send(
        env.client
            .users()
            .list_user()
            .top("2")
            .select(&["id"])
            .send(),
    )
    .await
    .json();
    assert_eq!(r["value"].as_array().map(Vec::len), Some(2));
}

// ---------------------------------------------------------------------------------------------
// Semantics

#[tokio::test]
async fn item07_create_user_validation_and_defaults() {
    let env = start().await;
    let r = send(env.client.users().create_user(&user("newbie")).send()).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let created = r.json();
    assert_eq!(
        created["@odata.context"],
        format!("{}/$metadata#users/$entity", env.emu.graph_url())
    );
    let id = created["id"].as_str().expect("id").to_string();
    assert_eq!(id.len(), 36);
    assert_eq!(id.matches('-').count(), 4);
    let got = send(
        env.client
            .user(&id)
            .get_user()
            .select(&["userType", "createdDateTime", "creationType"])
            .send(),
    )
    .await
    .json();
    assert_eq!(got["userType"], "Member", "default userType");
    assert!(got["createdDateTime"]
        .as_str()
        .is_some_and(|d| d.ends_with('Z')));
    assert_eq!(got["creationType"], Value::Null);

    // Duplicate UPN (case-insensitive) → 400 + details[ObjectConflict].
    let mut dup = user("other");
    dup["userPrincipalName"] = json!("NEWBIE@contoso.com");
    let r = send(env.client.users().create_user(&dup).send()).await;
    let msg = "Another object with the same value for property userPrincipalName already exists.";
    assert_error(&r, 400, "Request_BadRequest", msg);
    let details = r.json()["error"]["details"].clone();
    assert_eq!(details[0]["code"], "ObjectConflict");
    assert_eq!(details[0]["target"], "userPrincipalName");
    assert_eq!(details[0]["message"], msg);
    // Missing required fields.
    let mut missing = user("nopw");
    missing
        .as_object_mut()
        .expect("object")
        .remove("passwordProfile");
    assert_eq!(
        send(env.client.users().create_user(&missing).send())
            .await
            .status,
        400
    );
    // Unverified domain, bad characters, bad mailNickname, weak password.
    let domain_msg = "The domain portion of the userPrincipalName property is invalid. You must use one of the verified domain names in your organization.";
    let mut b = user("foreign");
    b["userPrincipalName"] = json!("foreign@fabrikam.com");
    assert_error(
        &send(env.client.users().create_user(&b).send()).await,
        400,
        "Request_BadRequest",
        domain_msg,
    );
    let mut b = user("badchars");
    b["userPrincipalName"] = json!("bad chars@contoso.com");
    assert_error(
        &send(env.client.users().create_user(&b).send()).await,
        400,
        "Request_BadRequest",
        "Property userPrincipalName is invalid.",
    );
    let mut b = user("nick");
    b["mailNickname"] = json!("has space");
    assert_error(
        &send(env.client.users().create_user(&b).send()).await,
        400,
        "Request_BadRequest",
        "Invalid value specified for property 'mailNickname' of resource 'User'.",
    );
    let mut b = user("weak");
    b["passwordProfile"]["password"] = json!("password");
    assert_error(&send(env.client.users().create_user(&b).send()).await, 400, "Request_BadRequest",
        "The specified password does not comply with password complexity requirements. Please provide a different password.");
    // Federated domain: onPremisesImmutableId is required, and unique.
    let mut fed = user("fed");
    fed["userPrincipalName"] = json!("fed@partners.contoso.com");
    assert_eq!(
        send(env.client.users().create_user(&fed).send())
            .await
            .status,
        400,
        "federated without immutable id"
    );
    fed["onPremisesImmutableId"] = json!("3ZgK1iXyTE2tNqm0n8yzqg==");
    assert_eq!(
        send(env.client.users().create_user(&fed).send())
            .await
            .status,
        201
    );
    let mut fed2 = user("fed2");
    fed2["userPrincipalName"] = json!("fed2@partners.contoso.com");
    fed2["onPremisesImmutableId"] = json!("3ZgK1iXyTE2tNqm0n8yzqg==");
    let r = send(env.client.users().create_user(&fed2).send()).await;
    assert_error(
        &r,
        400,
        "Request_BadRequest",
        "Another object with the same value for property onPremisesImmutableId already exists.",
    );
    assert_eq!(r.json()["error"]["details"][0]["code"], "ObjectConflict");
    assert_eq!(
        r.json()["error"]["details"][0]["target"],
        "onPremisesImmutableId"
    );
    // Proxy-address uniqueness through mail.
    let mut m1 = user("mail1");
    m1["mail"] = json!("shared@fabrikam.com");
    create(&env, &m1).await;
    let mut m2 = user("mail2");
    m2["mail"] = json!("shared@fabrikam.com");
    assert_error(
        &send(env.client.users().create_user(&m2).send()).await,
        400,
        "Request_BadRequest",
        "Another object with the same value for property proxyAddresses already exists.",
    );
}

#[tokio::test]
async fn item08_update_user_merge_null_and_read_only() {
    let env = start().await;
    let mut b = user("m");
    b["companyName"] = json!("Fabrikam");
    b["employeeId"] = json!("F-1");
    b["jobTitle"] = json!("Engineer");
    let id = create(&env, &b).await;
    let r = send(
        env.client
            .user(&id)
            .update_user(&json!({"companyName": "Northwind", "employeeId": null}))
            .send(),
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert!(r.text.is_empty(), "204 has an empty body");
    let got = send(
        env.client
            .user(&id)
            .get_user()
            .select(&["companyName", "employeeId", "jobTitle", "displayName"])
            .send(),
    )
    .await
    .json();
    assert_eq!(got["companyName"], "Northwind");
    assert_eq!(got["employeeId"], Value::Null, "null clears");
    assert_eq!(got["jobTitle"], "Engineer", "omitted properties kept");
    assert_eq!(got["displayName"], "User m");
    // Read-only / invalid properties are rejected.
    assert_error(
        &send(env.client.user(&id).update_user(&json!({"id": "x"})).send()).await,
        400,
        "Request_BadRequest",
        "Property 'id' is read-only and cannot be set.",
    );
    assert_error(
        &send(
            env.client
                .user(&id)
                .update_user(&json!({"createdDateTime": "2020-01-01T00:00:00Z"}))
                .send(),
        )
        .await,
        400,
        "Request_BadRequest",
        "Property 'createdDateTime' is read-only and cannot be set.",
    );
    assert_error(
        &send(
            env.client
                .user(&id)
                .update_user(&json!({"proxyAddresses": ["SMTP:a@b.com"]}))
                .send(),
        )
        .await,
        400,
        "Request_BadRequest",
        "Property 'proxyAddresses' is read-only and cannot be set.",
    );
    assert_error(
        &send(
            env.client
                .user(&id)
                .update_user(&json!({"displayName": null}))
                .send(),
        )
        .await,
        400,
        "Request_BadRequest",
        "Invalid value specified for property 'displayName' of resource 'User'.",
    );
    // PATCH of a missing user → 404.
    let r = send(
        env.client
            .user("nobody@contoso.com")
            .update_user(&json!({"jobTitle": "x"}))
            .send(),
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.text);
}

#[tokio::test]
async fn item09_delete_soft_delete_restore_and_purge() {
    let env = start().await;
    let id = create(&env, &user("gone")).await;
    let r = send(env.client.user(&id).delete_user().send()).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert!(r.text.is_empty());
    let r = send(env.client.user(&id).get_user().send()).await;
    assert_eq!(r.status, 404, "{}", r.text);
    assert_eq!(r.json()["error"]["code"], "Request_ResourceNotFound");
    // Listed in deleted items with deletedDateTime.
    let listed = send(
        env.client
            .directory()
            .deleted_items()
            .get_directory_object_items_as_user_type()
            .select(&["id", "userPrincipalName", "deletedDateTime"])
            .send(),
    )
    .await
    .json();
    let item = listed["value"]
        .as_array()
        .and_then(|a| a.iter().find(|u| u["id"] == id.as_str()).cloned())
        .expect("listed as deleted");
    assert!(item["deletedDateTime"]
        .as_str()
        .is_some_and(|d| !d.is_empty()));
    let one = send(
        env.client
            .directory()
            .deleted_item(&id)
            .get_deleted_items()
            .send(),
    )
    .await;
    assert_eq!(one.status, 200, "{}", one.text);
    assert_eq!(one.json()["@odata.type"], "#microsoft.graph.user");
    // The SDK's restore() sends no body and no Content-Length → 411, like real Graph.
    let r = send(env.client.directory().deleted_item(&id).restore().send()).await;
    assert_eq!(r.status, 411, "{}", r.text);
    // With Content-Length: 0 it succeeds: 200 with the restored object.
    let r = send(
        env.client
            .directory()
            .deleted_item(&id)
            .restore()
            .header(CONTENT_LENGTH, HeaderValue::from_static("0"))
            .send(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let restored = r.json();
    assert_eq!(restored["id"], id.as_str());
    assert_eq!(restored["@odata.type"], "#microsoft.graph.user");
    assert_eq!(
        restored["@odata.context"],
        format!("{}/$metadata#directoryObjects/$entity", env.emu.graph_url())
    );
    assert_eq!(
        send(env.client.user(&id).get_user().send()).await.status,
        200
    );
    // Delete again; the UPN is reusable while soft-deleted; then purge permanently.
    assert_eq!(
        send(env.client.user(&id).delete_user().send()).await.status,
        204
    );
    let reuse = create(&env, &user("gone")).await;
    assert_ne!(reuse, id);
    let r = send(
        env.client
            .directory()
            .deleted_item(&id)
            .delete_deleted_items()
            .send(),
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let r = send(
        env.client
            .directory()
            .deleted_item(&id)
            .get_deleted_items()
            .send(),
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.text);
    let counts = env.emu.admin().count();
    assert_eq!((counts.active, counts.deleted), (1, 0));
}

#[tokio::test]
async fn item10_delta_rounds_removals_latest_and_expiry() {
    let env = start().await;
    env.emu
        .admin()
        .generate_users(150, "d", "contoso.com")
        .expect("seed");
    // Drains a delta round starting from `rh`, following links verbatim.
    async fn drain(env: &Env, first: Resp) -> (Vec<Value>, String, usize) {
        let mut items = Vec::new();
        let mut pages = 0;
        let mut r = first;
        loop {
            assert_eq!(r.status, 200, "{}", r.text);
            let v = r.json();
            pages += 1;
            items.extend(v["value"].as_array().cloned().unwrap_or_default());
            if let Some(next) = v["@odata.nextLink"].as_str() {
                assert!(next.starts_with(&env.emu.graph_url()), "{next}");
                assert!(next.contains("$skiptoken="), "{next}");
                let mut rh = env.client.users().delta();
                *rh.as_mut() = Url::parse(next).expect("nextLink");
                r = send(rh.send()).await;
                continue;
            }
            let delta = v["@odata.deltaLink"].as_str().expect("deltaLink");
            assert!(
                delta.starts_with(&format!("{}/users/delta?$deltatoken=", env.emu.graph_url())),
                "{delta}"
            );
            return (items, delta.to_string(), pages);
        }
    }
    let at = |env: &Env, link: &str| {
        let mut rh = env.client.users().delta();
        *rh.as_mut() = Url::parse(link).expect("link");
        rh
    };
    let (items, delta, pages) = drain(
        &env,
        send(
            env.client
                .users()
                .delta()
                .select(&["id", "userPrincipalName", "companyName"])
                .send(),
        )
        .await,
    )
    .await;
    assert_eq!(items.len(), 150);
    assert_eq!(pages, 2, "100 per page by default");
    assert!(items
        .iter()
        .all(|i| i.as_object().is_some_and(|m| m.len() == 3)));
    // Changes: a create, an update, an unselected update, a soft and a hard delete.
    let created = create(&env, &user("newbie")).await;
    let id_of = |upn: &str| {
        env.emu.admin().user(upn).expect("user")["id"]
            .as_str()
            .expect("id")
            .to_string()
    };
    let (updated, unselected, soft, hard) = (
        id_of("d00001@contoso.com"),
        id_of("d00002@contoso.com"),
        id_of("d00003@contoso.com"),
        id_of("d00004@contoso.com"),
    );
    let upd = |id: &str, body: Value| {
        let id = id.to_string();
        let client = &env.client;
        async move {
            send(client.user(&id).update_user(&body).send())
                .await
                .status
        }
    };
    assert_eq!(upd(&updated, json!({"companyName": "Fabrikam"})).await, 204);
    assert_eq!(upd(&unselected, json!({"jobTitle": "x"})).await, 204);
    assert_eq!(
        send(env.client.user(&soft).delete_user().send())
            .await
            .status,
        204
    );
    assert_eq!(
        send(env.client.user(&hard).delete_user().send())
            .await
            .status,
        204
    );
    assert_eq!(
        send(
            env.client
                .directory()
                .deleted_item(&hard)
                .delete_deleted_items()
                .send()
        )
        .await
        .status,
        204
    );
    let (changes, _, _) = drain(&env, send(at(&env, &delta).send()).await).await;
    let ids = |pred: &dyn Fn(&Value) -> bool| {
        let mut v: Vec<String> = changes
            .iter()
            .filter(|i| pred(i))
            .filter_map(|i| i["id"].as_str().map(str::to_string))
            .collect();
        v.sort();
        v
    };
    let mut want = vec![created.clone(), updated.clone()];
    want.sort();
    assert_eq!(ids(&|i| i.get("@removed").is_none()), want);
    assert_eq!(ids(&|i| i["@removed"]["reason"] == "changed"), vec![soft]);
    assert_eq!(ids(&|i| i["@removed"]["reason"] == "deleted"), vec![hard]);
    let u = changes
        .iter()
        .find(|i| i["id"] == updated.as_str())
        .expect("updated");
    assert_eq!(u["companyName"], "Fabrikam");

    // $deltaToken=latest through the SDK's delta_token(): only a deltaLink, no data.
    let r = send(env.client.users().delta().delta_token("latest").send()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    assert_eq!(v["value"].as_array().map(Vec::len), Some(0));
    let latest = v["@odata.deltaLink"]
        .as_str()
        .expect("deltaLink")
        .to_string();
    assert_eq!(upd(&updated, json!({"displayName": "Renamed"})).await, 204);
    let (items, _, _) = drain(&env, send(at(&env, &latest).send()).await).await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], updated.as_str());
    // id eq filter on the first call.
    let (only, _, _) = drain(
        &env,
        send(
            env.client
                .users()
                .delta()
                .filter(&[&format!("id eq '{created}'")])
                .send(),
        )
        .await,
    )
    .await;
    assert_eq!(only.len(), 1);
    assert_eq!(only[0]["id"], created.as_str());
    // Expired tokens: 410 Gone with a Location to restart from.
    let (_, delta, _) = drain(
        &env,
        send(env.client.users().delta().select(&["id"]).send()).await,
    )
    .await;
    env.emu.admin().expire_delta_tokens();
    let r = send(at(&env, &delta).send()).await;
    assert_eq!(r.status, 410, "{}", r.text);
    assert_eq!(r.json()["error"]["code"], "syncStateNotFound");
    assert_eq!(
        r.header("location"),
        Some(format!("{}/users/delta?$select=id", env.emu.graph_url()))
    );
}

#[tokio::test]
async fn item11_batch_through_client_batch() {
    let mut cfg = config();
    cfg.settings.shuffle_batch_responses = true;
    let env = start_with(cfg).await;
    let existing = create(&env, &user("b0")).await;
    let batch = json!({"requests": [
        {"id": "1", "method": "POST", "url": "/users",
         "headers": {"Content-Type": "application/json"}, "body": user("b1")},
        {"id": "2", "method": "PATCH", "url": format!("/users/{existing}"), "dependsOn": ["1"],
         "headers": {"Content-Type": "application/json"}, "body": {"companyName": "Fabrikam"}},
        {"id": "3", "method": "GET",
         "url": "users?$select=id,userPrincipalName&$filter=endsWith(userPrincipalName,'@contoso.com')&$count=true",
         "headers": {"ConsistencyLevel": "eventual"}, "dependsOn": ["2"]},
        {"id": "4", "method": "POST", "url": "/users",
         "headers": {"Content-Type": "application/json"}, "body": user("b0")},
        {"id": "5", "method": "DELETE", "url": format!("/users/{existing}"), "dependsOn": ["4"]},
        {"id": "6", "method": "GET", "url": format!("users/{existing}")}
    ]});
    let r = send(env.client.batch(&batch).send()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r
        .header("content-type")
        .unwrap_or_default()
        .starts_with("application/json"));
    let v = r.json();
    let responses = v["responses"].as_array().cloned().expect("responses");
    assert_eq!(responses.len(), 6);
    let by_id = |id: &str| {
        responses
            .iter()
            .find(|x| x["id"] == id)
            .cloned()
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
    assert_eq!(by_id("6")["status"], 200, "relative url without leading /");
    assert_eq!(
        send(env.client.user(&existing).get_user().send())
            .await
            .status,
        200
    );

    // Limits and malformed batches.
    let many: Vec<Value> = (0..21)
        .map(|i| json!({"id": i.to_string(), "method": "GET", "url": "/users"}))
        .collect();
    assert_error(
        &send(env.client.batch(&json!({"requests": many})).send()).await,
        400,
        "BadRequest",
        "The number of requests in the batch exceeds the maximum of 20.",
    );
    let dup = json!({"requests": [{"id": "a", "method": "GET", "url": "/users"},
                                  {"id": "A", "method": "GET", "url": "/users"}]});
    assert_error(
        &send(env.client.batch(&dup).send()).await,
        400,
        "BadRequest",
        "Batch request contains duplicate request id 'A'.",
    );
    // A malformed body cannot be expressed with batch(&impl Serialize): use custom().
    let r = send(
        env.client
            .custom(
                Method::POST,
                Some(BodyRead::new("{\"requests\": [".to_string())),
            )
            .extend_path(&["$batch"])
            .header(
                HeaderName::from_static("content-type"),
                HeaderValue::from_static("application/json"),
            )
            .send(),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.json()["error"]["code"].is_string());

    // Per-item 429 with Retry-After, outer 200; out-of-order responses.
    env.emu.admin().update_settings(|s| {
        s.throttling.app_write_limit = 4;
        s.throttling.retry_after = RetryAfterMode::Fractional;
    });
    let reqs: Vec<Value> = (0..6)
        .map(|i| {
            json!({"id": format!("{i}"), "method": "POST", "url": "/users",
                   "headers": {"Content-Type": "application/json"}, "body": user(&format!("s{i}"))})
        })
        .collect();
    let r = send(env.client.batch(&json!({"requests": reqs})).send()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let resp = r.json()["responses"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let order: Vec<&str> = resp.iter().filter_map(|x| x["id"].as_str()).collect();
    assert_eq!(order.len(), 6);
    assert_ne!(
        order,
        vec!["0", "1", "2", "3", "4", "5"],
        "shuffled (seeded)"
    );
    let throttled: Vec<&Value> = resp.iter().filter(|x| x["status"] == 429).collect();
    assert!(!throttled.is_empty(), "some items throttled: {resp:?}");
    for t in throttled {
        let ra = t["headers"]["Retry-After"].as_str().expect("Retry-After");
        assert!(ra.parse::<f64>().is_ok_and(|s| s > 0.0), "{ra}");
        assert_eq!(t["body"]["error"]["code"], "TooManyRequests");
    }
}

#[tokio::test]
async fn item12_invitations() {
    let env = start().await;
    let r = send(
        env.client
            .invitations()
            .create_invitation(&json!({
                "invitedUserEmailAddress": "pat@fabrikam.com",
                "inviteRedirectUrl": "https://myapps.microsoft.com",
                "sendInvitationMessage": false,
                "invitedUserType": "Guest"
            }))
            .send(),
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
    assert_eq!(inv["invitedUserEmailAddress"], "pat@fabrikam.com");
    assert_eq!(inv["sendInvitationMessage"], false);
    assert_eq!(inv["inviteRedirectUrl"], "https://myapps.microsoft.com");
    assert!(inv["id"].is_string());
    assert!(inv["inviteRedeemUrl"]
        .as_str()
        .is_some_and(|u| u.starts_with("https://login.microsoftonline.com/redeem?")));
    let uid = inv["invitedUser"]["id"]
        .as_str()
        .expect("invitedUser.id")
        .to_string();
    let sel = [
        "userPrincipalName",
        "userType",
        "creationType",
        "externalUserState",
        "mail",
        "identities",
    ];
    let u = send(env.client.user(&uid).get_user().select(&sel).send())
        .await
        .json();
    assert_eq!(
        u["userPrincipalName"],
        "pat_fabrikam.com#EXT#@contoso.onmicrosoft.com"
    );
    assert_eq!(u["userType"], "Guest");
    assert_eq!(u["creationType"], "Invitation");
    assert_eq!(u["externalUserState"], "PendingAcceptance");
    assert_eq!(u["mail"], "pat@fabrikam.com");
    // Admin hook: redemption.
    env.emu
        .admin()
        .redeem_invitation(&uid, "ExternalAzureAD")
        .expect("redeem");
    let u = send(env.client.user(&uid).get_user().select(&sel).send())
        .await
        .json();
    assert_eq!(u["externalUserState"], "Accepted");
    assert!(u["identities"]
        .as_array()
        .is_some_and(|i| i.iter().any(|x| x["issuer"] == "ExternalAzureAD")));
    // invitedUser.id: convert an existing internal guest in place.
    let mut internal = user("ext1");
    internal["userType"] = json!("Guest");
    internal["mail"] = json!("ext1@fabrikam.com");
    let iid = create(&env, &internal).await;
    let r = send(
        env.client
            .invitations()
            .create_invitation(&json!({
                "invitedUserEmailAddress": "ext1@fabrikam.com",
                "inviteRedirectUrl": "https://myapps.microsoft.com",
                "invitedUser": {"id": iid}
            }))
            .send(),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json()["invitedUser"]["id"], iid.as_str());
    let u = send(env.client.user(&iid).get_user().select(&sel).send())
        .await
        .json();
    assert_eq!(u["userPrincipalName"], "ext1@contoso.com", "UPN kept");
    assert_eq!(u["externalUserState"], "PendingAcceptance");
    // Validation.
    let r = send(
        env.client
            .invitations()
            .create_invitation(&json!({"inviteRedirectUrl": "https://x.example"}))
            .send(),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.json()["error"]["code"], "BadRequest");
}

#[tokio::test]
async fn item13_throttling_and_fault_injection() {
    let mut cfg = config();
    cfg.settings.throttling.app_write_limit = 2;
    cfg.settings.throttling.retry_after = RetryAfterMode::Fractional;
    let env = start_with(cfg).await;
    // Reads report their resource-unit cost.
    let r = send(env.client.users().list_user().send()).await;
    assert_eq!(r.header("x-ms-resource-unit").as_deref(), Some("2"));
    let r = send(
        env.client
            .users()
            .list_user()
            .select(&["id"])
            .top("5")
            .send(),
    )
    .await;
    assert_eq!(r.header("x-ms-resource-unit").as_deref(), Some("1"));
    // The write quota: the third create is throttled with the documented body.
    create(&env, &user("t0")).await;
    create(&env, &user("t1")).await;
    let r = send(env.client.users().create_user(&user("t2")).send()).await;
    assert_error(&r, 429, "TooManyRequests", "Please retry again later.");
    let v = r.json();
    assert_eq!(v["error"]["innerError"]["code"], "429");
    assert_eq!(v["error"]["innerError"]["status"], "429");
    let ra = r.header("retry-after").expect("Retry-After");
    assert!(ra.parse::<f64>().is_ok_and(|s| s > 0.0), "{ra}");
    assert_eq!(
        r.header("x-ms-throttle-information").as_deref(),
        Some("WriteLimitExceeded")
    );
    // The SDK surfaces the 429 as a typed error message too.
    let resp = env
        .client
        .users()
        .create_user(&user("t3"))
        .send()
        .await
        .expect("transport");
    assert_eq!(resp.status().as_u16(), 429);
    let msg = resp.into_graph_error_message().await.expect("error JSON");
    assert_eq!(msg.code_property().as_deref(), Some("TooManyRequests"));

    // Fault injection per route: a scripted 503 then success; the SDK's retry layer recovers.
    env.emu.admin().set_faults(vec![FaultRule::script(
        "/v1.0/users*",
        vec![Some(Fault::Status {
            status: 503,
            retry_after: None,
        })],
    )]);
    let r = send(env.client.users().list_user().select(&["id"]).send()).await;
    assert_eq!(r.status, 503, "{}", r.text);
    assert!(r.json()["error"]["code"].is_string());
    env.emu.admin().set_faults(vec![FaultRule::script(
        "/v1.0/users*",
        vec![Some(Fault::Status {
            status: 503,
            retry_after: None,
        })],
    )]);
    let token = env.emu.token().expect("token");
    let retrying = client_for(
        &env.emu,
        &token,
        GraphClientConfiguration::new().retry(Some(2)),
    );
    let r = send(retrying.users().list_user().select(&["id"]).send()).await;
    assert_eq!(r.status, 200, "retried after 503: {}", r.text);
    // Integer Retry-After: the SDK's wait_for_retry_after_headers(true) honours it.
    env.emu.admin().set_faults(vec![FaultRule::script(
        "/v1.0/users*",
        vec![Some(Fault::Status {
            status: 429,
            retry_after: Some(1.0),
        })],
    )]);
    env.emu
        .admin()
        .update_settings(|s| s.throttling.retry_after = RetryAfterMode::Integer);
    let waiting = client_for(
        &env.emu,
        &token,
        GraphClientConfiguration::new().wait_for_retry_after_headers(true),
    );
    let t0 = Instant::now();
    let r = send(waiting.users().list_user().select(&["id"]).send()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        t0.elapsed() >= Duration::from_millis(900),
        "waited Retry-After"
    );
}

#[tokio::test]
async fn item14_error_bodies_and_request_ids() {
    let env = start().await;
    let r = send(
        env.client
            .user("nobody@contoso.com")
            .get_user()
            .header(
                HeaderName::from_static("client-request-id"),
                HeaderValue::from_static("my-own-id-123"),
            )
            .send(),
    )
    .await;
    assert_error(&r, 404, "Request_ResourceNotFound",
        "Resource 'nobody@contoso.com' does not exist or one of its queried reference-property objects are not present.");
    assert_eq!(
        r.header("client-request-id").as_deref(),
        Some("my-own-id-123")
    );
    assert_eq!(
        r.json()["error"]["innerError"]["client-request-id"],
        "my-own-id-123"
    );
    // Without a client-request-id the emulator generates one and still fills innerError.
    let r = send(env.client.user("nobody@contoso.com").get_user().send()).await;
    assert_eq!(r.status, 404);
    assert!(r.header("client-request-id").is_some());
    // The SDK's own error parser reads code, message, request-id and date.
    let resp = env
        .client
        .user("nobody@contoso.com")
        .get_user()
        .send()
        .await
        .expect("transport");
    let rid = resp
        .headers()
        .get("request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let msg = resp.into_graph_error_message().await.expect("error JSON");
    assert_eq!(
        msg.code_property().as_deref(),
        Some("Request_ResourceNotFound")
    );
    assert!(msg
        .message()
        .is_some_and(|m| m.starts_with("Resource 'nobody@contoso.com'")));
    assert_eq!(msg.request_id(), rid);
    assert!(msg.date().is_some());
    // Conflict errors carry details (which the SDK's ErrorMessage drops — read them as JSON).
    create(&env, &user("dup")).await;
    let r = send(env.client.users().create_user(&user("dup")).send()).await;
    assert_error(
        &r,
        400,
        "Request_BadRequest",
        "Another object with the same value for property userPrincipalName already exists.",
    );
    let d = r.json()["error"]["details"].clone();
    assert_eq!(d[0]["code"], "ObjectConflict");
    assert_eq!(d[0]["target"], "userPrincipalName");
    // Successful responses carry the ids and the OData content type.
    let ok = send(env.client.users().list_user().send()).await;
    assert!(ok.header("request-id").is_some());
    assert!(ok.header("client-request-id").is_some());
    assert!(ok.header("x-ms-ags-diagnostic").is_some());
    assert_eq!(ok.header("content-type").as_deref(),
        Some("application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"));
}

#[tokio::test]
async fn item15_authentication_and_permissions() {
    let mut cfg = config();
    cfg.tenant.apps.push(AppRegistration {
        client_id: "11111111-2222-4333-8444-555555555555".into(),
        client_secret: Some("reader-secret".into()),
        certificates: vec![],
        permissions: vec![Permission::UserReadAll],
        display_name: Some("reader".into()),
    });
    let env = start_with(cfg).await;
    let bad = client_for(&env.emu, "not-a-jwt", GraphClientConfiguration::new());
    let r = send(bad.users().list_user().send()).await;
    assert_error(
        &r,
        401,
        "InvalidAuthenticationToken",
        "CompactToken parsing failed with error code: 80049217",
    );
    assert!(r
        .header("www-authenticate")
        .is_some_and(|w| w.starts_with("Bearer")));
    let mut forged = env.emu.token().expect("token");
    forged.push('x');
    let r = send(
        client_for(&env.emu, &forged, GraphClientConfiguration::new())
            .users()
            .list_user()
            .send(),
    )
    .await;
    assert_error(
        &r,
        401,
        "InvalidAuthenticationToken",
        "Access token validation failure.",
    );
    // An empty bearer token: the SDK always sends its own Authorization header, so the
    // header is overridden with an empty value (the closest the SDK gets to "no token").
    let r = send(
        env.client
            .users()
            .list_user()
            .header(
                HeaderName::from_static("authorization"),
                HeaderValue::from_static(""),
            )
            .send(),
    )
    .await;
    assert_error(
        &r,
        401,
        "InvalidAuthenticationToken",
        "Access token is empty.",
    );
    // Read-only app: reads work, writes are 403.
    let reader_token = env
        .emu
        .admin()
        .issue_token("11111111-2222-4333-8444-555555555555")
        .expect("reader token");
    let reader = client_for(&env.emu, &reader_token, GraphClientConfiguration::new());
    assert_eq!(send(reader.users().list_user().send()).await.status, 200);
    let denied = [
        send(reader.users().create_user(&user("x")).send()).await,
        send(
            reader
                .invitations()
                .create_invitation(&json!({
                    "invitedUserEmailAddress": "a@b.com", "inviteRedirectUrl": "https://x"
                }))
                .send(),
        )
        .await,
        send(reader.user("x@contoso.com").delete_user().send()).await,
    ];
    for r in &denied {
        assert_error(
            r,
            403,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation.",
        );
    }
    // Expired token.
    env.emu
        .admin()
        .update_settings(|s| s.token_lifetime_secs = 0);
    let stale = env.emu.token().expect("token");
    let r = send(
        client_for(&env.emu, &stale, GraphClientConfiguration::new())
            .users()
            .list_user()
            .send(),
    )
    .await;
    assert_error(
        &r,
        401,
        "InvalidAuthenticationToken",
        "Access token has expired.",
    );
}

#[tokio::test]
async fn item16_absolute_next_and_delta_links_followed_by_sdk_paging() {
    let env = start().await;
    env.emu
        .admin()
        .generate_users(25, "p", "contoso.com")
        .expect("seed");
    let first = send(
        env.client
            .users()
            .list_user()
            .select(&["id"])
            .top("10")
            .send(),
    )
    .await;
    let next = first.json()["@odata.nextLink"]
        .as_str()
        .expect("nextLink")
        .to_string();
    assert!(
        next.starts_with(&format!("{}/users?", env.emu.graph_url())),
        "absolute link to the emulator's own host/port: {next}"
    );
    // The SDK's paging() follows the absolute nextLinks by itself.
    #[derive(serde::Deserialize)]
    struct Page {
        value: Vec<Value>,
        #[serde(rename = "@odata.nextLink")]
        next_link: Option<String>,
        #[serde(rename = "@odata.deltaLink")]
        delta_link: Option<String>,
    }
    let pages = env
        .client
        .users()
        .list_user()
        .select(&["id"])
        .top("10")
        .paging()
        .json::<Page>()
        .await
        .expect("paging");
    assert_eq!(pages.len(), 3);
    let mut seen = 0;
    for p in &pages {
        assert_eq!(p.status().as_u16(), 200);
        let page = p.body().as_ref().expect("page");
        seen += page.value.len();
        if let Some(l) = &page.next_link {
            assert!(l.starts_with(&env.emu.graph_url()), "{l}");
        }
    }
    assert_eq!(seen, 25);
    // Delta: paging() follows nextLinks and returns the absolute deltaLink on the last page.
    let pages = env
        .client
        .users()
        .delta()
        .select(&["id"])
        .paging()
        .json::<Page>()
        .await
        .expect("delta paging");
    let last = pages.back().expect("a page");
    let delta = last
        .body()
        .as_ref()
        .expect("page")
        .delta_link
        .clone()
        .expect("deltaLink");
    assert!(
        delta.starts_with(&format!("{}/users/delta?$deltatoken=", env.emu.graph_url())),
        "{delta}"
    );
    let total: usize = pages
        .iter()
        .map(|p| p.body().as_ref().map(|b| b.value.len()).unwrap_or(0))
        .sum();
    assert_eq!(total, 25);
}
