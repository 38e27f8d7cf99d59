//! The admin surface, in Rust ([`Admin`]) and over HTTP (`/_emulator/...`): seed, list,
//! count and reset users, read the operation log, set faults and settings, simulate
//! invitation redemption, expire delta tokens, mint tokens.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::config::Settings;
use crate::error::{Error, GraphError};
use crate::faults::FaultRule;
use crate::server::{lock, Shared};
use crate::store::WriteMode;

/// One request the emulator answered (admin calls excluded). `$batch` items are logged
/// individually, after their batch, with `batch_item` set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operation {
    /// Order of completion, from 1.
    pub seq: u64,
    /// HTTP method.
    pub method: String,
    /// Request path as sent (percent-encoded); batch items as `/v1.0/…`.
    pub path: String,
    /// Raw query string (without `?`).
    pub query: String,
    /// Response status; 0 for a connection dropped by fault injection.
    pub status: u16,
    /// The app whose token authenticated the request.
    pub client_id: Option<String>,
    /// The `$batch` item id, for requests that were part of a batch.
    pub batch_item: Option<String>,
    /// Completion time (ISO 8601).
    pub at: String,
}

/// Number of users.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserCounts {
    /// Users in `/users`.
    pub active: usize,
    /// Soft-deleted users in `/directory/deletedItems`.
    pub deleted: usize,
}

/// Administrative access to a running emulator. Cheap to clone.
#[derive(Clone)]
pub struct Admin {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin")
            .field("base_url", &self.shared.base_url)
            .finish()
    }
}

fn full_user(rec: &crate::store::UserRecord) -> Value {
    crate::store::full_object(rec)
}

impl Admin {
    /// Creates a user directly. The body is a Graph user object; read-only properties
    /// (`id`, `creationType`, `onPremisesSyncEnabled`, …) may be set, a password is optional,
    /// the UPN domain need not be verified. Uniqueness rules still apply. Returns the full
    /// stored user.
    pub fn seed_user(&self, user: Value) -> Result<Value, Error> {
        let mut dir = lock(&self.shared.dir);
        let seq = dir.create(&self.shared.tenant, &user, WriteMode::Seed)?;
        self.shared.mark_dirty();
        Ok(dir.users.get(&seq).map(full_user).unwrap_or(Value::Null))
    }

    /// Seeds several users; stops at the first rejected one. Returns their ids.
    pub fn seed_users(&self, users: impl IntoIterator<Item = Value>) -> Result<Vec<String>, Error> {
        let mut ids = Vec::new();
        let mut dir = lock(&self.shared.dir);
        for u in users {
            let seq = dir.create(&self.shared.tenant, &u, WriteMode::Seed)?;
            ids.push(
                dir.users
                    .get(&seq)
                    .map(|r| r.id().to_string())
                    .unwrap_or_default(),
            );
        }
        self.shared.mark_dirty();
        Ok(ids)
    }

    /// Seeds `count` synthetic members `{prefix}{n}@{domain}` (n from 1, zero-padded to 5).
    pub fn generate_users(
        &self,
        count: usize,
        prefix: &str,
        domain: &str,
    ) -> Result<Vec<String>, Error> {
        let users = (1..=count).map(|n| {
            json!({
                "accountEnabled": true,
                "displayName": format!("{prefix} {n:05}"),
                "mailNickname": format!("{prefix}{n:05}"),
                "userPrincipalName": format!("{prefix}{n:05}@{domain}"),
                "givenName": prefix,
                "surname": format!("{n:05}"),
            })
        });
        self.seed_users(users)
    }

    /// All active users, full objects, in creation order.
    pub fn users(&self) -> Vec<Value> {
        lock(&self.shared.dir)
            .users
            .values()
            .map(full_user)
            .collect()
    }

    /// All soft-deleted users, full objects.
    pub fn deleted_users(&self) -> Vec<Value> {
        lock(&self.shared.dir)
            .deleted
            .values()
            .map(full_user)
            .collect()
    }

    /// One active user by id or UPN (case-insensitive).
    pub fn user(&self, key: &str) -> Option<Value> {
        let dir = lock(&self.shared.dir);
        dir.find(key).and_then(|s| dir.users.get(&s)).map(full_user)
    }

    /// Counts of active and deleted users.
    pub fn count(&self) -> UserCounts {
        let dir = lock(&self.shared.dir);
        UserCounts {
            active: dir.users.len(),
            deleted: dir.deleted.len(),
        }
    }

    /// Removes all users (active, deleted, tombstones) and expires delta tokens.
    pub fn reset_users(&self) {
        lock(&self.shared.dir).reset();
        self.shared.mark_dirty();
    }

    /// Resets everything: users, operation log, throttling buckets and fault rules.
    pub fn reset(&self) {
        self.reset_users();
        self.clear_operations();
        lock(&self.shared.throttle).reset();
        lock(&self.shared.faults).set(Vec::new());
    }

    /// The operation log.
    pub fn operations(&self) -> Vec<Operation> {
        lock(&self.shared.log).clone()
    }

    /// Clears the operation log.
    pub fn clear_operations(&self) {
        lock(&self.shared.log).clear();
    }

    /// Replaces the fault rules (and restarts the seeded random sequence).
    pub fn set_faults(&self, rules: Vec<FaultRule>) {
        lock(&self.shared.faults).set(rules);
    }

    /// Adds one fault rule.
    pub fn add_fault(&self, rule: FaultRule) {
        lock(&self.shared.faults).add(rule);
    }

    /// Removes all fault rules.
    pub fn clear_faults(&self) {
        lock(&self.shared.faults).set(Vec::new());
    }

    /// The current fault rules.
    pub fn faults(&self) -> Vec<FaultRule> {
        lock(&self.shared.faults).rules()
    }

    /// Re-seeds fault injection and batch shuffling.
    pub fn reseed(&self, seed: u64) {
        lock(&self.shared.faults).reseed(seed);
        *lock(&self.shared.rng) = crate::util::SplitMix64::new(seed);
    }

    /// The current settings.
    pub fn settings(&self) -> Settings {
        self.shared.settings()
    }

    /// Changes settings; throttling buckets restart when throttling settings change.
    pub fn update_settings(&self, change: impl FnOnce(&mut Settings)) {
        let mut s = lock(&self.shared.settings);
        let before = s.throttling.clone();
        change(&mut s);
        if s.throttling != before {
            lock(&self.shared.throttle).reset();
        }
    }

    /// Simulates the guest redeeming its invitation through `issuer` (`ExternalAzureAD`,
    /// `MicrosoftAccount`, `mail`, `google.com`, …): `externalUserState` becomes `Accepted`
    /// and a federated identity is added.
    pub fn redeem_invitation(&self, user: &str, issuer: &str) -> Result<(), Error> {
        lock(&self.shared.dir).redeem(user, issuer)?;
        self.shared.mark_dirty();
        Ok(())
    }

    /// Makes every delta token issued so far expire (next use answers `410 Gone`).
    pub fn expire_delta_tokens(&self) {
        lock(&self.shared.dir).delta_generation += 1;
        self.shared.mark_dirty();
    }

    /// Mints an access token for an app of the tenant, as the token endpoint would.
    pub fn issue_token(&self, client_id: &str) -> Result<String, Error> {
        let key = lock(&self.shared.dir).token_key;
        let lifetime = self.settings().token_lifetime_secs;
        crate::auth::mint(&self.shared.tenant, key, client_id, lifetime).ok_or_else(|| {
            Error::Rejected {
                status: 400,
                code: "unauthorized_client".into(),
                message: format!("no app registration with client id {client_id}"),
            }
        })
    }

    /// Writes the state file now (no-op without one).
    pub fn save(&self) -> Result<(), Error> {
        self.shared.save()
    }
}

fn admin_error(status: u16, code: &str, message: impl Into<String>) -> (u16, Value) {
    (
        status,
        json!({"error": {"code": code, "message": message.into()}}),
    )
}

fn from_error(e: Error) -> (u16, Value) {
    match e {
        Error::Rejected {
            status,
            code,
            message,
        } => admin_error(status, &code, message),
        other => admin_error(500, "AdminError", other.to_string()),
    }
}

fn from_graph(e: GraphError) -> (u16, Value) {
    admin_error(e.status, e.code, e.message)
}

/// Merges `patch` into `target` recursively (objects merge, everything else replaces).
fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                merge(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (t, p) => *t = p.clone(),
    }
}

/// Handles `/_emulator/...`.
pub(crate) fn handle_http(
    shared: &Arc<Shared>,
    method: &str,
    path: &str,
    _query: &str,
    body: &[u8],
) -> (u16, Value) {
    let admin = Admin {
        shared: shared.clone(),
    };
    let body_json = || -> Result<Value, (u16, Value)> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(body)
            .map_err(|e| admin_error(400, "BadRequest", format!("invalid JSON: {e}")))
    };
    let segs: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .skip(1)
        .map(|s| crate::util::percent_decode(s, false).unwrap_or_else(|| s.to_string()))
        .collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let result: Result<(u16, Value), (u16, Value)> = (|| match (method, segs.as_slice()) {
        ("GET", []) => Ok((
            200,
            json!({
                "graph_url": format!("{}/v1.0", shared.base_url),
                "token_url": format!("{}/{}/oauth2/v2.0/token", shared.base_url, shared.tenant.tenant_id),
                "tenant_id": shared.tenant.tenant_id,
                "tenant": serde_json::to_value(&shared.tenant).unwrap_or(Value::Null),
            }),
        )),
        ("GET", ["users"]) => Ok((200, json!({"value": admin.users()}))),
        ("GET", ["users", "deleted"]) => Ok((200, json!({"value": admin.deleted_users()}))),
        ("GET", ["users", "count"]) => Ok((
            200,
            serde_json::to_value(admin.count()).unwrap_or(Value::Null),
        )),
        ("POST", ["users"]) => {
            let b = body_json()?;
            let list = match b {
                Value::Array(a) => a,
                Value::Object(_) => vec![b],
                _ => {
                    return Err(admin_error(
                        400,
                        "BadRequest",
                        "expected a user object or an array of them",
                    ))
                }
            };
            let ids = admin.seed_users(list).map_err(from_error)?;
            Ok((201, json!({"value": ids})))
        }
        ("POST", ["users", "generate"]) => {
            let b = body_json()?;
            let count = b.get("count").and_then(Value::as_u64).unwrap_or(0);
            if count > 1_000_000 {
                return Err(admin_error(
                    400,
                    "BadRequest",
                    "count must be at most 1,000,000",
                ));
            }
            let count = count as usize;
            let prefix = b.get("prefix").and_then(Value::as_str).unwrap_or("user");
            let domain = b
                .get("domain")
                .and_then(Value::as_str)
                .unwrap_or(&shared.tenant.initial_domain)
                .to_string();
            let ids = admin
                .generate_users(count, prefix, &domain)
                .map_err(from_error)?;
            Ok((201, json!({"created": ids.len()})))
        }
        ("DELETE", ["users"]) => {
            admin.reset_users();
            Ok((200, json!({"status": "reset"})))
        }
        ("GET", ["users", key]) => admin.user(key).map(|u| (200, u)).ok_or_else(|| {
            admin_error(404, "Request_ResourceNotFound", format!("no user '{key}'"))
        }),
        ("POST", ["users", key, "redeem"]) => {
            let b = body_json()?;
            let issuer = b
                .get("issuer")
                .and_then(Value::as_str)
                .unwrap_or("ExternalAzureAD");
            lock(&shared.dir).redeem(key, issuer).map_err(from_graph)?;
            shared.mark_dirty();
            Ok((200, admin.user(key).unwrap_or(Value::Null)))
        }
        ("GET", ["log"]) => Ok((200, json!({"value": admin.operations()}))),
        ("DELETE", ["log"]) => {
            admin.clear_operations();
            Ok((200, json!({"status": "cleared"})))
        }
        ("GET", ["faults"]) => Ok((200, json!({"value": admin.faults()}))),
        ("PUT" | "POST", ["faults"]) => {
            let b = body_json()?;
            let list = match b.get("value").cloned().unwrap_or(b) {
                Value::Array(a) => a,
                other => vec![other],
            };
            let rules: Vec<FaultRule> = list
                .into_iter()
                .map(serde_json::from_value)
                .collect::<Result<_, _>>()
                .map_err(|e| admin_error(400, "BadRequest", format!("invalid fault rule: {e}")))?;
            if method == "PUT" {
                admin.set_faults(rules);
            } else {
                for r in rules {
                    admin.add_fault(r);
                }
            }
            Ok((200, json!({"value": admin.faults()})))
        }
        ("DELETE", ["faults"]) => {
            admin.clear_faults();
            Ok((200, json!({"value": []})))
        }
        ("GET", ["settings"]) => Ok((
            200,
            serde_json::to_value(admin.settings()).unwrap_or(Value::Null),
        )),
        ("PATCH" | "PUT", ["settings"]) => {
            let b = body_json()?;
            let mut current = serde_json::to_value(admin.settings()).unwrap_or(Value::Null);
            merge(&mut current, &b);
            let next: Settings = serde_json::from_value(current)
                .map_err(|e| admin_error(400, "BadRequest", format!("invalid settings: {e}")))?;
            admin.update_settings(|s| *s = next);
            Ok((
                200,
                serde_json::to_value(admin.settings()).unwrap_or(Value::Null),
            ))
        }
        ("POST", ["reset"]) => {
            admin.reset();
            Ok((200, json!({"status": "reset"})))
        }
        ("POST", ["delta", "expire"]) => {
            admin.expire_delta_tokens();
            Ok((200, json!({"status": "expired"})))
        }
        ("POST", ["token"]) => {
            let b = body_json()?;
            let client_id = b
                .get("client_id")
                .and_then(Value::as_str)
                .map(str::to_string)
                .or_else(|| shared.tenant.apps.first().map(|a| a.client_id.clone()))
                .unwrap_or_default();
            let token = admin.issue_token(&client_id).map_err(from_error)?;
            Ok((200, json!({"access_token": token, "token_type": "Bearer"})))
        }
        ("POST", ["save"]) => {
            admin.save().map_err(from_error)?;
            Ok((200, json!({"status": "saved"})))
        }
        _ => Err(admin_error(
            404,
            "NotFound",
            format!("no admin route {method} {path}"),
        )),
    })();
    match result {
        Ok(r) | Err(r) => r,
    }
}
