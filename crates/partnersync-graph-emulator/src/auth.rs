//! The OAuth 2.0 token endpoint (client credentials) and bearer-token checks.
//!
//! Tokens are JWT-shaped (`header.payload.signature`) so clients that peek into them work;
//! the signature is a keyed digest with a per-state key, so the emulator can verify tokens
//! without remembering them, and they survive a restart when state is persisted.

use std::collections::HashMap;

use serde_json::{json, Value};

use crate::config::{Permission, TenantConfig};
use crate::error::GraphError;
use crate::util::{self, b64url_decode, b64url_encode, keyed_digest};

/// The app a valid token was issued to.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AppContext {
    pub client_id: String,
    pub roles: Vec<Permission>,
}

impl AppContext {
    pub(crate) fn can_read_users(&self) -> bool {
        self.roles.iter().any(|r| {
            matches!(
                r,
                Permission::UserReadAll
                    | Permission::UserReadWriteAll
                    | Permission::DirectoryReadAll
                    | Permission::DirectoryReadWriteAll
            )
        })
    }

    pub(crate) fn can_write_users(&self) -> bool {
        self.roles.iter().any(|r| {
            matches!(
                r,
                Permission::UserReadWriteAll | Permission::DirectoryReadWriteAll
            )
        })
    }

    pub(crate) fn can_invite(&self) -> bool {
        self.can_write_users() || self.roles.contains(&Permission::UserInviteAll)
    }

    pub(crate) fn can_reset_passwords(&self) -> bool {
        self.roles
            .contains(&Permission::UserPasswordProfileReadWriteAll)
    }

    pub(crate) fn can_convert_to_internal(&self) -> bool {
        self.roles
            .contains(&Permission::UserConvertToInternalReadWriteAll)
    }

    pub(crate) fn can_manage_identities(&self) -> bool {
        self.roles.contains(&Permission::UserManageIdentitiesAll)
            || self.roles.contains(&Permission::DirectoryReadWriteAll)
    }
}

const GRAPH_AUDIENCE: &str = "https://graph.microsoft.com";

/// Mints an access token for `client_id`.
pub(crate) fn mint(
    tenant: &TenantConfig,
    key: u64,
    client_id: &str,
    lifetime_secs: u64,
) -> Option<String> {
    let app = tenant.app(client_id)?;
    let now = chrono::Utc::now().timestamp();
    let header = b64url_encode(br#"{"typ":"JWT","alg":"HS256","kid":"emulator"}"#);
    let roles: Vec<&str> = app.permissions.iter().map(|p| p.as_str()).collect();
    let payload = json!({
        "aud": GRAPH_AUDIENCE,
        "iss": format!("https://sts.windows.net/{}/", tenant.tenant_id),
        "iat": now,
        "nbf": now,
        "exp": now.saturating_add(i64::try_from(lifetime_secs).unwrap_or(i64::MAX)),
        "appid": app.client_id,
        "azp": app.client_id,
        "idtyp": "app",
        "roles": roles,
        "tid": tenant.tenant_id,
        "ver": "1.0",
    });
    let payload = b64url_encode(payload.to_string().as_bytes());
    let signed = format!("{header}.{payload}");
    let sig = keyed_digest(key, signed.as_bytes());
    Some(format!("{signed}.{sig}"))
}

fn unauthorized(message: &str) -> GraphError {
    GraphError::new(401, "InvalidAuthenticationToken", message).with_header(
        "WWW-Authenticate",
        "Bearer realm=\"\", authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\", client_id=\"00000003-0000-0000-c000-000000000000\"",
    )
}

/// Checks an `Authorization` header value.
pub(crate) fn verify(
    header: Option<&str>,
    tenant: &TenantConfig,
    key: u64,
) -> Result<AppContext, GraphError> {
    let token = header
        .and_then(|h| {
            let (scheme, rest) = h.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        })
        .unwrap_or("");
    if token.is_empty() {
        return Err(unauthorized("Access token is empty."));
    }
    let malformed = || unauthorized("CompactToken parsing failed with error code: 80049217");
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 {
        return Err(malformed());
    }
    let payload: Value = b64url_decode(parts[1])
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(malformed)?;
    let signed = format!("{}.{}", parts[0], parts[1]);
    if keyed_digest(key, signed.as_bytes()) != parts[2] {
        return Err(unauthorized("Access token validation failure."));
    }
    if payload.get("aud").and_then(Value::as_str) != Some(GRAPH_AUDIENCE)
        || payload.get("tid").and_then(Value::as_str) != Some(tenant.tenant_id.as_str())
    {
        return Err(unauthorized(
            "Access token validation failure. Invalid audience.",
        ));
    }
    let exp = payload.get("exp").and_then(Value::as_i64).unwrap_or(0);
    if exp <= chrono::Utc::now().timestamp() {
        return Err(unauthorized("Access token has expired."));
    }
    let client_id = payload
        .get("appid")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let roles = payload
        .get("roles")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .filter_map(Permission::parse)
                .collect()
        })
        .unwrap_or_default();
    Ok(AppContext { client_id, roles })
}

/// An Entra ID (AADSTS) error from the token endpoint.
pub(crate) struct TokenError {
    pub status: u16,
    pub body: Value,
}

fn aad_error(status: u16, error: &str, code: u32, description: &str) -> TokenError {
    let trace = format!("{:016x}{:016x}", util::now_millis(), code);
    let now = chrono::Utc::now();
    TokenError {
        status,
        body: json!({
            "error": error,
            "error_description": format!(
                "AADSTS{code}: {description} Trace ID: {trace} Correlation ID: {trace} Timestamp: {}",
                now.format("%Y-%m-%d %H:%M:%SZ")
            ),
            "error_codes": [code],
            "timestamp": now.format("%Y-%m-%d %H:%M:%SZ").to_string(),
            "trace_id": trace,
            "correlation_id": trace,
            "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
        }),
    }
}

/// Whether `segment` names this tenant (its id or one of its domains).
pub(crate) fn tenant_matches(tenant: &TenantConfig, segment: &str) -> bool {
    segment.eq_ignore_ascii_case(&tenant.tenant_id) || tenant.domain_kind(segment).is_some()
}

fn parse_form(body: &[u8]) -> HashMap<String, String> {
    let text = String::from_utf8_lossy(body);
    text.split('&')
        .filter(|p| !p.is_empty())
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            Some((
                util::percent_decode(k, true)?,
                util::percent_decode(v, true)?,
            ))
        })
        .collect()
}

/// Handles `POST /{tenant}/oauth2/v2.0/token`. Returns the token response body.
pub(crate) fn token_endpoint(
    tenant: &TenantConfig,
    base_url: &str,
    key: u64,
    lifetime_secs: u64,
    tenant_segment: &str,
    authorization: Option<&str>,
    body: &[u8],
) -> Result<Value, TokenError> {
    if !tenant_matches(tenant, tenant_segment) {
        return Err(aad_error(
            400,
            "invalid_request",
            90002,
            &format!("Tenant '{tenant_segment}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."),
        ));
    }
    let mut form = parse_form(body);
    // client_secret_basic
    if let Some((id, secret)) = authorization
        .and_then(|h| {
            h.strip_prefix("Basic ")
                .or_else(|| h.strip_prefix("basic "))
        })
        .and_then(|b| {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| {
            s.split_once(':').map(|(a, b)| {
                (
                    util::percent_decode(a, true).unwrap_or_default(),
                    util::percent_decode(b, true).unwrap_or_default(),
                )
            })
        })
    {
        form.entry("client_id".into()).or_insert(id);
        form.entry("client_secret".into()).or_insert(secret);
    }
    match form.get("grant_type").map(String::as_str) {
        Some("client_credentials") => {}
        Some(other) => {
            return Err(aad_error(
                400,
                "unsupported_grant_type",
                70003,
                &format!("The app requested an unsupported grant type '{other}'."),
            ))
        }
        None => {
            return Err(aad_error(
                400,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'grant_type'.",
            ))
        }
    }
    let Some(client_id) = form.get("client_id").cloned() else {
        return Err(aad_error(
            400,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'client_id'.",
        ));
    };
    let Some(app) = tenant.app(&client_id) else {
        return Err(aad_error(
            400,
            "unauthorized_client",
            700016,
            &format!("Application with identifier '{client_id}' was not found in the directory '{}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant.", tenant.display_name),
        ));
    };
    match form.get("scope").map(String::as_str) {
        None => {
            return Err(aad_error(
                400,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'scope'.",
            ))
        }
        Some(scope) => {
            let ok = scope.split(' ').any(|s| {
                s.eq_ignore_ascii_case("https://graph.microsoft.com/.default")
                    || s.eq_ignore_ascii_case("00000003-0000-0000-c000-000000000000/.default")
            });
            if !ok {
                return Err(aad_error(
                    400,
                    "invalid_scope",
                    1002012,
                    &format!("The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."),
                ));
            }
        }
    }
    if let Some(secret) = form.get("client_secret") {
        if app.client_secret.as_deref() != Some(secret.as_str()) {
            return Err(aad_error(
                401,
                "invalid_client",
                7000215,
                &format!("Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{}'.", app.client_id),
            ));
        }
    } else if let Some(assertion) = form.get("client_assertion") {
        if form.get("client_assertion_type").map(String::as_str)
            != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
        {
            return Err(aad_error(
                400,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'client_assertion_type' with the value 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'.",
            ));
        }
        check_assertion(tenant, app, base_url, assertion)?;
    } else {
        return Err(aad_error(
            401,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        ));
    }
    let token = mint(tenant, key, &app.client_id, lifetime_secs).unwrap_or_default();
    Ok(json!({
        "token_type": "Bearer",
        "expires_in": lifetime_secs,
        "ext_expires_in": lifetime_secs,
        "access_token": token,
    }))
}

/// A registered certificate's public key and thumbprints.
pub(crate) struct RegisteredKey {
    /// base64url SHA-1 of the DER certificate (`x5t`).
    pub x5t: String,
    /// base64url SHA-256 of the DER certificate (`x5t#S256`).
    pub x5t_s256: String,
    /// PKCS#1 RSAPublicKey DER.
    pub rsa_public_key: Vec<u8>,
}

/// Parses every `CERTIFICATE` section of a PEM text (other sections, such as a private key,
/// are ignored).
pub(crate) fn registered_keys(pem: &str) -> Result<Vec<RegisteredKey>, String> {
    use rustls_pki_types::pem::{PemObject, SectionKind};
    let mut out = Vec::new();
    for section in <(SectionKind, Vec<u8>)>::pem_slice_iter(pem.as_bytes()) {
        let (kind, der) = section.map_err(|e| format!("not a readable PEM text ({e})"))?;
        if kind != SectionKind::Certificate {
            continue;
        }
        let (_, cert) = x509_parser::parse_x509_certificate(&der)
            .map_err(|e| format!("not a valid X.509 certificate ({e})"))?;
        let sha1 = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &der);
        let sha256 = ring::digest::digest(&ring::digest::SHA256, &der);
        out.push(RegisteredKey {
            x5t: b64url_encode(sha1.as_ref()),
            x5t_s256: b64url_encode(sha256.as_ref()),
            rsa_public_key: cert
                .tbs_certificate
                .subject_pki
                .subject_public_key
                .data
                .to_vec(),
        });
    }
    if out.is_empty() {
        return Err("no -----BEGIN CERTIFICATE----- section".to_string());
    }
    Ok(out)
}

/// Verifies a client assertion (certificate credential) the way Entra ID does: the key is
/// looked up by `x5t`/`x5t#S256` among the app's registered certificates, the RS256
/// signature must verify, `aud` must be this token endpoint, `iss` = `sub` = the client id,
/// and `nbf`/`exp` must hold now (5 minutes of clock skew allowed).
fn check_assertion(
    tenant: &TenantConfig,
    app: &crate::config::AppRegistration,
    base_url: &str,
    assertion: &str,
) -> Result<(), TokenError> {
    let invalid = |code: u32, text: &str| aad_error(401, "invalid_client", code, text);
    let parts: Vec<&str> = assertion.split('.').collect();
    let decode = |p: &str| -> Option<Value> {
        b64url_decode(p).and_then(|b| serde_json::from_slice(&b).ok())
    };
    let (Some(header), Some(claims), true) = (
        parts.first().and_then(|p| decode(p)),
        parts.get(1).and_then(|p| decode(p)),
        parts.len() == 3,
    ) else {
        return Err(aad_error(
            400,
            "invalid_request",
            50027,
            "JWT token is invalid or malformed.",
        ));
    };
    if header.get("alg").and_then(Value::as_str) != Some("RS256") {
        return Err(invalid(
            700027,
            "Client assertion failed signature validation. [Reason - The signing algorithm must be RS256.]",
        ));
    }
    let keys: Vec<RegisteredKey> = app
        .certificates
        .iter()
        .filter_map(|pem| registered_keys(pem).ok())
        .flatten()
        .collect();
    let x5t = header.get("x5t").and_then(Value::as_str);
    let x5t_s256 = header.get("x5t#S256").and_then(Value::as_str);
    let candidates: Vec<&RegisteredKey> = keys
        .iter()
        .filter(|k| match (x5t_s256, x5t) {
            (Some(s), _) => k.x5t_s256 == s,
            (None, Some(t)) => k.x5t == t,
            (None, None) => true,
        })
        .collect();
    if candidates.is_empty() {
        let used = x5t
            .and_then(b64url_decode)
            .map(|b| b.iter().map(|x| format!("{x:02X}")).collect::<String>())
            .unwrap_or_else(|| x5t_s256.unwrap_or("none").to_string());
        return Err(invalid(
            700027,
            &format!(
                "The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '{used}', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '{}'.]",
                app.client_id
            ),
        ));
    }
    let signed = format!("{}.{}", parts[0], parts[1]);
    let signature = b64url_decode(parts[2]).unwrap_or_default();
    let verified = candidates.iter().any(|k| {
        ring::signature::UnparsedPublicKey::new(
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            &k.rsa_public_key,
        )
        .verify(signed.as_bytes(), &signature)
        .is_ok()
    });
    if !verified {
        return Err(invalid(
            700027,
            "Client assertion failed signature validation.",
        ));
    }
    let aud = claims.get("aud").and_then(Value::as_str).unwrap_or("");
    let aud_ok = aud
        .strip_prefix(base_url)
        .and_then(|rest| rest.strip_prefix('/'))
        .and_then(|rest| {
            rest.strip_suffix("/oauth2/v2.0/token")
                .or_else(|| rest.strip_suffix("/oauth2/token"))
        })
        .is_some_and(|segment| tenant_matches(tenant, segment));
    if !aud_ok {
        return Err(invalid(
            700023,
            &format!("Client assertion audience claim does not match Realm issuer. [Reason - The audience '{aud}' is not this tenant's token endpoint.]"),
        ));
    }
    let id_ok = |k: &str| {
        claims
            .get(k)
            .and_then(Value::as_str)
            .is_some_and(|v| v.eq_ignore_ascii_case(&app.client_id))
    };
    if !id_ok("iss") || !id_ok("sub") {
        return Err(invalid(
            700021,
            "Client assertion application identifier doesn't match 'client_id' parameter.",
        ));
    }
    let now = chrono::Utc::now().timestamp();
    const SKEW: i64 = 300;
    let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
    let nbf = claims
        .get("nbf")
        .and_then(Value::as_i64)
        .unwrap_or(i64::MIN);
    if exp.saturating_add(SKEW) <= now || nbf.saturating_sub(SKEW) > now {
        return Err(invalid(
            700024,
            "Client assertion is not within its valid time range.",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_verify_and_tampering_fails() {
        let t = TenantConfig::default();
        let tok = mint(&t, 9, crate::config::DEFAULT_CLIENT_ID, 60).unwrap_or_default();
        let ctx = verify(Some(&format!("Bearer {tok}")), &t, 9);
        assert!(ctx.as_ref().is_ok_and(|c| c.can_write_users()), "{ctx:?}");
        assert_eq!(
            verify(Some(&format!("Bearer {tok}")), &t, 10).map_err(|e| e.status),
            Err(401)
        );
        assert_eq!(
            verify(None, &t, 9).map_err(|e| e.message),
            Err("Access token is empty.".to_string())
        );
    }
}
