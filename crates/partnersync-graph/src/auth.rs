//! Client-credentials tokens for Graph, cached and refreshed before they expire, with a
//! client secret or a certificate (signed client assertion, `credential.rs`).
//!
//! graph-rs-sdk's OAuth types only talk to Microsoft's login hosts, so this crate brings its
//! own token source and plugs it in through graph-core's `ClientApplication` (graph.md §5.2).

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use graph_core::identity::{ClientApplication, ForceTokenRefresh};
use graph_rs_sdk::error::{AuthExecutionError, AuthExecutionResult};
use partnersync_target::{ErrorCategory, TargetError};
use tokio::sync::Mutex;

use crate::config::Credential;

const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Refresh this long before the token's stated expiry.
const REFRESH_MARGIN: Duration = Duration::from_secs(300);

struct Cached {
    token: String,
    refresh_at: Instant,
}

struct Inner {
    http: reqwest::Client,
    token_url: String,
    client_id: String,
    credential: Credential,
    scope: String,
    cached: Mutex<Option<Cached>>,
    /// The last token, readable without awaiting (for the synchronous trait method).
    last: std::sync::Mutex<Option<String>>,
}

/// Fetches and caches app-only tokens. Cheap to clone; clones share the cache.
#[derive(Clone)]
pub(crate) struct TokenSource {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource")
            .field("token_url", &self.inner.token_url)
            .field("client_id", &self.inner.client_id)
            .finish_non_exhaustive()
    }
}

#[derive(serde::Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

impl TokenSource {
    pub(crate) fn new(
        http: reqwest::Client,
        token_url: String,
        client_id: String,
        credential: Credential,
        scope: String,
    ) -> Self {
        TokenSource {
            inner: Arc::new(Inner {
                http,
                token_url,
                client_id,
                credential,
                scope,
                cached: Mutex::new(None),
                last: std::sync::Mutex::new(None),
            }),
        }
    }

    /// A valid token, from the cache unless it is due for refresh.
    pub(crate) async fn token(&self) -> Result<String, TargetError> {
        let mut cached = self.inner.cached.lock().await;
        if let Some(c) = cached.as_ref() {
            if Instant::now() < c.refresh_at {
                return Ok(c.token.clone());
            }
        }
        let fresh = self.fetch().await?;
        let token = fresh.token.clone();
        *cached = Some(fresh);
        if let Ok(mut last) = self.inner.last.lock() {
            *last = Some(token.clone());
        }
        Ok(token)
    }

    /// The credential tokens are fetched with.
    pub(crate) fn credential(&self) -> &Credential {
        &self.inner.credential
    }

    /// The application permissions (`roles` claim) of the current token. Entra ID tokens are
    /// JWTs; a token that is not (or has no `roles`) gives an empty list.
    pub(crate) async fn roles(&self) -> Result<Vec<String>, TargetError> {
        use base64::Engine as _;
        let token = self.token().await?;
        let claims: serde_json::Value = token
            .split('.')
            .nth(1)
            .and_then(|p| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(p)
                    .ok()
            })
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Ok(claims["roles"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|r| r.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Drops the cached token (after a 401), so the next call fetches a new one.
    pub(crate) async fn invalidate(&self) {
        *self.inner.cached.lock().await = None;
    }

    async fn fetch(&self) -> Result<Cached, TargetError> {
        let assertion;
        let mut form = vec![
            ("grant_type", "client_credentials"),
            ("client_id", self.inner.client_id.as_str()),
            ("scope", self.inner.scope.as_str()),
        ];
        match &self.inner.credential {
            Credential::Secret(secret) => form.push(("client_secret", secret.expose())),
            Credential::Certificate(cert) => {
                // The audience of the assertion is the token endpoint itself.
                assertion = cert.assertion(&self.inner.client_id, &self.inner.token_url)?;
                form.push(("client_assertion_type", CLIENT_ASSERTION_TYPE));
                form.push(("client_assertion", assertion.as_str()));
            }
        }
        let resp = self
            .inner
            .http
            .post(&self.inner.token_url)
            .form(&form)
            .send()
            .await
            .map_err(|e| {
                TargetError::new(
                    ErrorCategory::Transient,
                    "token_endpoint_unreachable",
                    format!(
                        "cannot reach the token endpoint {}: {}",
                        self.inner.token_url,
                        e.without_url()
                    ),
                )
            })?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        if !status.is_success() {
            // Entra's error bodies (`error`, `error_description` with an AADSTS code) never
            // echo the secret or the assertion.
            let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            let code = v["error"].as_str().unwrap_or("token_error").to_string();
            let description = v["error_description"]
                .as_str()
                .unwrap_or("no error description");
            let category = if status.is_server_error() || status.as_u16() == 429 {
                ErrorCategory::Transient
            } else {
                ErrorCategory::Permission
            };
            let with = match &self.inner.credential {
                Credential::Secret(_) => "its client secret".to_string(),
                Credential::Certificate(c) => format!("certificate {}", c.thumbprint()),
            };
            return Err(TargetError::new(
                category,
                code,
                format!(
                    "the token endpoint refused client {} with {with} ({status}): {description}",
                    self.inner.client_id
                ),
            ));
        }
        let parsed: TokenResponse = serde_json::from_str(&text).map_err(|e| {
            TargetError::new(
                ErrorCategory::Other,
                "token_response_invalid",
                format!("the token endpoint answered without an access_token: {e}"),
            )
        })?;
        let lifetime = Duration::from_secs(parsed.expires_in.unwrap_or(3_599));
        // Refresh at the margin, or at half the lifetime for short-lived tokens.
        let early = REFRESH_MARGIN.min(lifetime / 2);
        Ok(Cached {
            token: parsed.access_token,
            refresh_at: Instant::now() + lifetime.saturating_sub(early),
        })
    }
}

#[derive(Debug)]
struct NoTokenYet;

impl std::fmt::Display for NoTokenYet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("no access token has been fetched yet")
    }
}

impl std::error::Error for NoTokenYet {}

#[async_trait]
impl ClientApplication for TokenSource {
    fn get_token_silent(&mut self) -> AuthExecutionResult<String> {
        self.inner
            .last
            .lock()
            .ok()
            .and_then(|l| l.clone())
            .ok_or_else(|| AuthExecutionError::Other(Box::new(NoTokenYet)))
    }

    async fn get_token_silent_async(&mut self) -> AuthExecutionResult<String> {
        self.token()
            .await
            .map_err(|e| AuthExecutionError::Other(Box::new(e)))
    }

    fn with_force_token_refresh(&mut self, _force: ForceTokenRefresh) {}
}
