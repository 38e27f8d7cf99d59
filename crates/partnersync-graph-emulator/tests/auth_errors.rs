//! Checklist §7 items 14 (error bodies, request ids) and 15 (authentication, permissions),
//! plus the token endpoint and robustness against malformed requests.

mod common;

use common::*;
use partnersync_graph_emulator::{AppRegistration, Permission};
use serde_json::{json, Value};

#[tokio::test]
async fn item14_error_bodies_and_request_ids() {
    let env = start().await;
    let r = env
        .send(
            "GET",
            "/users/nobody@contoso.com",
            None,
            &[("client-request-id", "my-own-id-123")],
        )
        .await;
    assert_error(&r, 404, "Request_ResourceNotFound",
        "Resource 'nobody@contoso.com' does not exist or one of its queried reference-property objects are not present.");
    assert_eq!(
        r.header("client-request-id").as_deref(),
        Some("my-own-id-123"),
        "echoed"
    );
    assert_eq!(
        r.json()["error"]["innerError"]["client-request-id"],
        "my-own-id-123"
    );
    assert!(r.header("x-ms-ags-diagnostic").is_some());
    // Successful responses carry the ids and the OData content type too.
    let ok = env.get("/users").await;
    assert!(ok.header("request-id").is_some());
    assert!(ok.header("x-ms-resource-unit").is_some());
    assert_eq!(ok.header("content-type").as_deref(),
        Some("application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"));
}

#[tokio::test]
async fn item15_bearer_tokens_are_required_and_checked() {
    let env = start().await;
    let url = env.url("/users");
    let r = env.send_raw("GET", &url, None, &[], None).await;
    assert_error(
        &r,
        401,
        "InvalidAuthenticationToken",
        "Access token is empty.",
    );
    assert!(r
        .header("www-authenticate")
        .is_some_and(|w| w.starts_with("Bearer")));
    let r = env
        .send_raw("GET", &url, None, &[], Some("not-a-jwt"))
        .await;
    assert_error(
        &r,
        401,
        "InvalidAuthenticationToken",
        "CompactToken parsing failed with error code: 80049217",
    );
    let mut forged = env.token.clone();
    forged.push('x');
    let r = env.send_raw("GET", &url, None, &[], Some(&forged)).await;
    assert_error(
        &r,
        401,
        "InvalidAuthenticationToken",
        "Access token validation failure.",
    );
    // Expired token.
    env.emu
        .admin()
        .update_settings(|s| s.token_lifetime_secs = 0);
    let stale = env.emu.token().expect("token");
    let r = env.send_raw("GET", &url, None, &[], Some(&stale)).await;
    assert_error(
        &r,
        401,
        "InvalidAuthenticationToken",
        "Access token has expired.",
    );
}

#[tokio::test]
async fn item15_read_only_app_is_denied_writes() {
    let mut cfg = config();
    cfg.tenant.apps.push(AppRegistration {
        client_id: "11111111-2222-4333-8444-555555555555".into(),
        client_secret: Some("reader-secret".into()),
        certificates: vec![],
        permissions: vec![Permission::UserReadAll],
        display_name: Some("reader".into()),
    });
    let env = start_with(cfg).await;
    let reader = fetch_token(
        &env.http,
        &env.emu.token_url(),
        "11111111-2222-4333-8444-555555555555",
        "reader-secret",
    )
    .await;
    let r = env
        .send_raw("GET", &env.url("/users"), None, &[], Some(&reader))
        .await;
    assert_eq!(r.status, 200);
    for (method, path, body) in [
        ("POST", "/users", Some(user("x"))),
        (
            "POST",
            "/invitations",
            Some(json!({"invitedUserEmailAddress": "a@b.com", "inviteRedirectUrl": "https://x"})),
        ),
        ("DELETE", "/users/x@contoso.com", None),
    ] {
        let r = env
            .send_raw(method, &env.url(path), body.as_ref(), &[], Some(&reader))
            .await;
        assert_error(
            &r,
            403,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation.",
        );
    }
    // identities needs User.ManageIdentities.All; the default app has it.
    let mut b = user("ident");
    b["identities"] = json!([{"signInType": "userPrincipalName", "issuer": "contoso.onmicrosoft.com", "issuerAssignedId": "ident@contoso.com"}]);
    assert_eq!(env.post("/users", &b).await.status, 201);
}

#[tokio::test]
async fn item15_user_writer_without_password_permission_cannot_reset_passwords() {
    let mut cfg = config();
    cfg.tenant.apps.push(AppRegistration {
        client_id: "22222222-2222-4333-8444-555555555555".into(),
        client_secret: Some("writer-secret".into()),
        certificates: vec![],
        permissions: vec![Permission::UserReadWriteAll],
        display_name: Some("writer".into()),
    });
    let env = start_with(cfg).await;
    let writer = fetch_token(
        &env.http,
        &env.emu.token_url(),
        "22222222-2222-4333-8444-555555555555",
        "writer-secret",
    )
    .await;
    let create = env
        .send_raw(
            "POST",
            &env.url("/users"),
            Some(&user("pw")),
            &[],
            Some(&writer),
        )
        .await;
    assert_eq!(
        create.status, 201,
        "initial password on create is fine: {}",
        create.text
    );
    let id = create.json()["id"].as_str().unwrap_or_default().to_string();
    let reset = json!({"passwordProfile": {"password": "Other123!Pass", "forceChangePasswordNextSignIn": true}});
    let r = env
        .send_raw(
            "PATCH",
            &env.url(&format!("/users/{id}")),
            Some(&reset),
            &[],
            Some(&writer),
        )
        .await;
    assert_error(
        &r,
        403,
        "Authorization_RequestDenied",
        "Insufficient privileges to complete the operation.",
    );
    let ok = env
        .send_raw(
            "PATCH",
            &env.url(&format!("/users/{id}")),
            Some(&json!({"jobTitle": "x"})),
            &[],
            Some(&writer),
        )
        .await;
    assert_eq!(ok.status, 204);
    // The default app holds User-PasswordProfile.ReadWrite.All.
    assert_eq!(env.patch(&format!("/users/{id}"), &reset).await.status, 204);
}

#[tokio::test]
async fn token_endpoint_follows_entra_errors() {
    let env = start().await;
    let post = |form: String| {
        let http = env.http.clone();
        let url = env.emu.token_url();
        async move {
            let r = http
                .post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form)
                .send()
                .await
                .expect("send");
            (r.status().as_u16(), r.json::<Value>().await.expect("json"))
        }
    };
    let cid = env.emu.client_id();
    let scope = "scope=https%3A%2F%2Fgraph.microsoft.com%2F.default";
    let (s, v) = post(format!(
        "grant_type=client_credentials&client_id={cid}&client_secret=wrong&{scope}"
    ))
    .await;
    assert_eq!((s, v["error"].as_str()), (401, Some("invalid_client")));
    assert_eq!(v["error_codes"][0], 7000215);
    let (s, v) = post(format!("grant_type=client_credentials&client_id=00000000-0000-4000-8000-000000000000&client_secret=x&{scope}")).await;
    assert_eq!((s, v["error"].as_str()), (400, Some("unauthorized_client")));
    let (s, v) = post(format!(
        "grant_type=client_credentials&client_id={cid}&client_secret=x&scope=User.Read"
    ))
    .await;
    assert_eq!((s, v["error"].as_str()), (400, Some("invalid_scope")));
    let (s, v) = post(format!("grant_type=password&client_id={cid}&{scope}")).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (400, Some("unsupported_grant_type"))
    );
    // Client assertion (certificate credential): key by x5t, RS256 signature, aud, iss/sub,
    // exp are checked.
    let form = |assertion: &str| {
        format!("grant_type=client_credentials&client_id={cid}&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion={assertion}&{scope}")
    };
    let now = chrono::Utc::now().timestamp();
    let claims = |aud: &str, iss: &str, exp: i64| json!({"aud": aud, "iss": iss, "sub": iss, "jti": "j1", "nbf": now - 5, "exp": exp});
    let good = claims(&env.emu.token_url(), &cid, now + 600);
    let (s, v) = post(form(&sign_assertion(&good, true))).await;
    assert_eq!(s, 200, "{v}");
    let tok = v["access_token"].as_str().unwrap_or("").to_string();
    assert_eq!(
        env.send_raw("GET", &env.url("/users"), None, &[], Some(&tok))
            .await
            .status,
        200
    );
    // Without x5t the emulator tries every registered key.
    assert_eq!(post(form(&sign_assertion(&good, false))).await.0, 200);
    // Tampered claims (signature no longer matches).
    let signed = sign_assertion(&good, true);
    let parts: Vec<&str> = signed.split('.').collect();
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        b64url(
            claims(&env.emu.token_url(), &cid, now + 86_400)
                .to_string()
                .as_bytes()
        ),
        parts[2]
    );
    let (s, v) = post(form(&forged)).await;
    assert_eq!(
        (s, v["error_codes"][0].as_u64()),
        (401, Some(700027)),
        "{v}"
    );
    // Wrong audience, issuer, expired.
    let other_aud = claims(
        "https://login.microsoftonline.com/x/oauth2/v2.0/token",
        &cid,
        now + 600,
    );
    let (s, v) = post(form(&sign_assertion(&other_aud, true))).await;
    assert_eq!(
        (s, v["error_codes"][0].as_u64()),
        (401, Some(700023)),
        "{v}"
    );
    let other_iss = claims(&env.emu.token_url(), "someone-else", now + 600);
    let (s, v) = post(form(&sign_assertion(&other_iss, true))).await;
    assert_eq!(
        (s, v["error_codes"][0].as_u64()),
        (401, Some(700021)),
        "{v}"
    );
    let expired = claims(&env.emu.token_url(), &cid, now - 3_600);
    let (s, v) = post(form(&sign_assertion(&expired, true))).await;
    assert_eq!(
        (s, v["error_codes"][0].as_u64()),
        (401, Some(700024)),
        "{v}"
    );
    // Malformed.
    let (s, v) = post(form("a.b")).await;
    assert_eq!((s, v["error"].as_str()), (400, Some("invalid_request")));
    // The tenant can be named by a domain; an unknown tenant is rejected.
    let by_domain = format!(
        "{}/contoso.onmicrosoft.com/oauth2/v2.0/token",
        env.emu.base_url()
    );
    assert!(
        !fetch_token(&env.http, &by_domain, &cid, &env.emu.client_secret())
            .await
            .is_empty()
    );
    let other = env
        .http
        .post(format!(
            "{}/fabrikam.com/oauth2/v2.0/token",
            env.emu.base_url()
        ))
        .body(format!(
            "grant_type=client_credentials&client_id={cid}&client_secret=x&{scope}"
        ))
        .send()
        .await
        .expect("send");
    assert_eq!(other.status().as_u16(), 400);
}

#[tokio::test]
async fn robustness_malformed_inputs_get_graph_errors_not_500s() {
    let env = start().await;
    let send_text = |method: &str, path: &str, body: &'static str| {
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("m");
        env.http
            .request(m, env.url(path))
            .bearer_auth(&env.token)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let invalid = "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.";
    // An empty body with an explicit Content-Length: 0 is a JSON error (without the header: 411).
    let r = env
        .send("POST", "/users", None, &[("content-length", "0")])
        .await;
    assert_error(&r, 400, "BadRequest", invalid);
    for body in ["{", " ", "[1,2]", "\"str\"", "{\"displayName\": }"] {
        let r = send_text("POST", "/users", body).await.expect("send");
        let status = r.status().as_u16();
        let v: Value = r.json().await.expect("json");
        assert_eq!(status, 400, "{body}");
        assert_eq!(v["error"]["code"], "BadRequest", "{body}");
        assert_eq!(v["error"]["message"], invalid);
    }
    // Oversized body → 413.
    let big = "x".repeat(5 * 1024 * 1024);
    let r = env
        .http
        .post(env.url("/users"))
        .bearer_auth(&env.token)
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status().as_u16(), 413);
    // Unicode UPNs are rejected as invalid, not crashed on; unicode in paths is fine.
    let mut b = user("u");
    b["userPrincipalName"] = json!("zoë@contoso.com");
    assert_error(
        &env.post("/users", &b).await,
        400,
        "Request_BadRequest",
        "Property userPrincipalName is invalid.",
    );
    assert_eq!(env.get("/users/zo%C3%AB@contoso.com").await.status, 404);
    assert_eq!(env.get("/users/%FF%FE").await.status, 400);
    // Bad filters of all kinds.
    for f in [
        "(((",
        "displayName eq 'x' and",
        "startswith(displayName)",
        "x/any(",
        "displayName eq 'unterminated",
        "accountEnabled eq 'true'",
        "displayName gt 'a'",
        "'a' eq displayName",
        "not",
        "otherMails eq 'a'",
    ] {
        let r = env
            .get(&format!(
                "/users?$filter={}",
                f.replace(' ', "%20")
                    .replace('\'', "%27")
                    .replace('(', "%28")
                    .replace(')', "%29")
            ))
            .await;
        assert_eq!(r.status, 400, "{f}: {}", r.text);
        assert!(r.json()["error"]["code"].is_string());
    }
    // Deeply nested filter does not overflow the stack.
    let deep = format!(
        "{}displayName%20eq%20'x'{}",
        "(".repeat(500),
        ")".repeat(500)
    );
    assert_eq!(env.get(&format!("/users?$filter={deep}")).await.status, 400);
    // Unknown version, unknown root.
    assert_eq!(
        env.send_raw(
            "GET",
            &format!("{}/v2.0/users", env.emu.base_url()),
            None,
            &[],
            Some(&env.token)
        )
        .await
        .status,
        400
    );
    // Batch garbage.
    for body in [
        json!({}),
        json!({"requests": "x"}),
        json!({"requests": [1]}),
        json!({"requests": [{"id": "1", "method": "GET"}]}),
        json!({"requests": [{"id": "1", "method": "GET", "url": "/users", "dependsOn": ["9"]}]}),
        json!({"requests": [{"id": "1", "method": "POST", "url": "/users", "body": {}}]}),
    ] {
        let r = env.post("/$batch", &body).await;
        assert_eq!(r.status, 400, "{body}: {}", r.text);
    }
}

fn b64url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// An RS256 client assertion signed with the default app's published test key.
fn sign_assertion(claims: &Value, with_x5t: bool) -> String {
    use rustls_pki_types::pem::{PemObject, SectionKind};
    let pem = partnersync_graph_emulator::DEFAULT_CLIENT_CERTIFICATE.as_bytes();
    let mut cert = Vec::new();
    let mut key = Vec::new();
    for (kind, der) in <(SectionKind, Vec<u8>)>::pem_slice_iter(pem).flatten() {
        match kind {
            SectionKind::Certificate => cert = der,
            SectionKind::PrivateKey => key = der,
            _ => {}
        }
    }
    let pair = ring::signature::RsaKeyPair::from_pkcs8(&key).expect("test key");
    let mut header = json!({"alg": "RS256", "typ": "JWT"});
    if with_x5t {
        let sha1 = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &cert);
        header["x5t"] = json!(b64url(sha1.as_ref()));
    }
    let input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let mut sig = vec![0; pair.public().modulus_len()];
    pair.sign(
        &ring::signature::RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        input.as_bytes(),
        &mut sig,
    )
    .expect("signs");
    format!("{input}.{}", b64url(&sig))
}
