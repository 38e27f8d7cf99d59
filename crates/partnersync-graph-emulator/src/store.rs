//! The directory: users, deleted users, tombstones for delta, and the rules Graph enforces
//! when they are written. Everything here is synchronous and runs under one lock.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::config::{DomainKind, TenantConfig};
use crate::error::GraphError;
use crate::schema::{self, Kind, Write};
use crate::util::{self, SplitMix64};

/// Soft-deletion bookkeeping.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct DeletedInfo {
    pub version: u64,
    pub at_ms: i64,
    pub original_upn: String,
}

/// A stored user: the full property bag plus change tracking for delta.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct UserRecord {
    pub seq: u64,
    pub props: Map<String, Value>,
    /// Per property, the directory version of its last change (drives `$select`-scoped delta).
    pub prop_versions: BTreeMap<String, u64>,
    pub version: u64,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub deleted: Option<DeletedInfo>,
    /// Creation time (ms since the epoch), for simulated replication lag.
    #[serde(default)]
    pub created_ms: i64,
}

impl UserRecord {
    pub(crate) fn id(&self) -> &str {
        self.props.get("id").and_then(Value::as_str).unwrap_or("")
    }

    pub(crate) fn str_prop(&self, name: &str) -> Option<&str> {
        self.props.get(name).and_then(Value::as_str)
    }
}

/// A permanently deleted user, remembered so delta can report `@removed: deleted`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Tombstone {
    pub id: String,
    pub version: u64,
}

/// What kind of write is being validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriteMode {
    Create,
    Patch,
    /// Admin seeding: read-only properties may be set, nothing is required but the UPN.
    Seed,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Directory {
    pub users: BTreeMap<u64, UserRecord>,
    pub deleted: BTreeMap<u64, UserRecord>,
    pub tombstones: Vec<Tombstone>,
    pub next_seq: u64,
    pub version: u64,
    /// Key for signing access tokens and delta/page tokens.
    pub token_key: u64,
    /// Delta tokens of an older generation have expired.
    pub delta_generation: u64,
    #[serde(skip)]
    idx_id: HashMap<String, u64>,
    #[serde(skip)]
    idx_upn: HashMap<String, u64>,
    #[serde(skip)]
    idx_immutable: HashMap<String, u64>,
    #[serde(skip)]
    idx_proxy: HashMap<String, u64>,
    #[serde(skip)]
    idx_deleted: HashMap<String, u64>,
    #[serde(skip, default = "SplitMix64::from_time")]
    rng: SplitMix64,
}

fn lower(s: &str) -> String {
    s.to_lowercase()
}

fn proxy_key(p: &str) -> String {
    // "SMTP:x@y" and "smtp:x@y" collide with each other and with a bare mail "x@y".
    let addr = match p.split_once(':') {
        Some((prefix, rest)) if prefix.eq_ignore_ascii_case("smtp") => rest,
        _ => p,
    };
    lower(addr)
}

impl Directory {
    pub(crate) fn new(seed: u64) -> Self {
        let mut rng = SplitMix64::from_time();
        let token_key = rng.next_u64() ^ seed;
        Directory {
            users: BTreeMap::new(),
            deleted: BTreeMap::new(),
            tombstones: Vec::new(),
            next_seq: 1,
            version: 1,
            token_key,
            delta_generation: 0,
            idx_id: HashMap::new(),
            idx_upn: HashMap::new(),
            idx_immutable: HashMap::new(),
            idx_proxy: HashMap::new(),
            idx_deleted: HashMap::new(),
            rng,
        }
    }

    /// Rebuilds the lookup indexes (after loading from a file).
    pub(crate) fn reindex(&mut self) {
        self.idx_id.clear();
        self.idx_upn.clear();
        self.idx_immutable.clear();
        self.idx_proxy.clear();
        self.idx_deleted.clear();
        let seqs: Vec<u64> = self.users.keys().copied().collect();
        for seq in seqs {
            self.index(seq);
        }
        for (seq, rec) in &self.deleted {
            self.idx_deleted.insert(lower(rec.id()), *seq);
        }
    }

    fn index(&mut self, seq: u64) {
        let Some(rec) = self.users.get(&seq) else {
            return;
        };
        self.idx_id.insert(lower(rec.id()), seq);
        if let Some(upn) = rec.str_prop("userPrincipalName") {
            self.idx_upn.insert(lower(upn), seq);
        }
        if let Some(imm) = rec.str_prop("onPremisesImmutableId") {
            self.idx_immutable.insert(lower(imm), seq);
        }
        if let Some(Value::Array(addrs)) = rec.props.get("proxyAddresses") {
            for a in addrs.iter().filter_map(Value::as_str) {
                self.idx_proxy.insert(proxy_key(a), seq);
            }
        }
    }

    fn unindex(&mut self, seq: u64) {
        let Some(rec) = self.users.get(&seq) else {
            return;
        };
        let keys_id = lower(rec.id());
        let upn = rec.str_prop("userPrincipalName").map(lower);
        let imm = rec.str_prop("onPremisesImmutableId").map(lower);
        let proxies: Vec<String> = match rec.props.get("proxyAddresses") {
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(proxy_key).collect(),
            _ => Vec::new(),
        };
        self.idx_id.remove(&keys_id);
        if let Some(u) = upn {
            self.idx_upn.remove(&u);
        }
        if let Some(i) = imm {
            self.idx_immutable.remove(&i);
        }
        for p in proxies {
            if self.idx_proxy.get(&p) == Some(&seq) {
                self.idx_proxy.remove(&p);
            }
        }
    }

    pub(crate) fn guid(&mut self) -> String {
        self.rng.guid()
    }

    pub(crate) fn active_count(&self) -> usize {
        self.users.len()
    }

    /// Finds an active user by object id or UPN (case-insensitive).
    pub(crate) fn find(&self, key: &str) -> Option<u64> {
        let k = lower(key);
        self.idx_id
            .get(&k)
            .or_else(|| self.idx_upn.get(&k))
            .copied()
    }

    /// Finds an active user by `onPremisesImmutableId` (case-insensitive, like the filter).
    pub(crate) fn find_by_immutable_id(&self, immutable_id: &str) -> Option<u64> {
        self.idx_immutable.get(&lower(immutable_id)).copied()
    }

    pub(crate) fn find_deleted(&self, id: &str) -> Option<u64> {
        self.idx_deleted.get(&lower(id)).copied()
    }

    fn bump(&mut self) -> u64 {
        self.version += 1;
        self.version
    }

    // -----------------------------------------------------------------------------------------
    // Validation

    /// Validates a POST/PATCH body and returns canonical assignments plus the new password.
    fn validate(
        &self,
        tenant: &TenantConfig,
        body: &Value,
        mode: WriteMode,
    ) -> Result<(Map<String, Value>, Option<Value>), GraphError> {
        let obj = body.as_object().ok_or_else(GraphError::invalid_json)?;
        let mut out = Map::new();
        let mut password = None;
        for (key, value) in obj {
            if key.starts_with('@') {
                if key.eq_ignore_ascii_case("@odata.type") {
                    let t = value.as_str().unwrap_or("");
                    let t = t.trim_start_matches('#');
                    if !t.eq_ignore_ascii_case("microsoft.graph.user") {
                        return Err(GraphError::odata(format!(
                            "The type '{t}' specified in the @odata.type annotation is not compatible with the expected type 'microsoft.graph.user'."
                        )));
                    }
                }
                continue;
            }
            if schema::is_extension_property(key) {
                if !(value.is_string()
                    || value.is_boolean()
                    || value.is_number()
                    || value.is_null()
                    || value.is_array())
                {
                    return Err(GraphError::bad_request(format!(
                        "Invalid value specified for property '{key}' of resource 'User'."
                    )));
                }
                out.insert(key.clone(), value.clone());
                continue;
            }
            let Some(prop) = schema::prop(key) else {
                return Err(GraphError::bad_request(format!(
                    "Property '{key}' does not exist as a declared property or extension property."
                )));
            };
            let name = prop.name;
            match prop.write {
                Write::ReadOnly if mode != WriteMode::Seed => {
                    return Err(GraphError::bad_request(format!(
                        "Property '{name}' is read-only and cannot be set."
                    )))
                }
                Write::PersonalSite => return Err(GraphError::forbidden()),
                _ => {}
            }
            if value.is_null() {
                if mode == WriteMode::Patch && !prop.clearable || prop.kind == Kind::PasswordProfile
                {
                    return Err(GraphError::invalid_value(name));
                }
                let cleared = match prop.kind {
                    Kind::StrList | Kind::Identities => json!([]),
                    Kind::ExtAttrs => empty_ext_attrs(),
                    _ => Value::Null,
                };
                out.insert(name.to_string(), cleared);
                continue;
            }
            let v = check_kind(prop, value)?;
            if prop.kind == Kind::PasswordProfile {
                password = Some(v);
            } else {
                out.insert(name.to_string(), v);
            }
        }
        // Property-specific rules.
        if let Some(upn) = out.get("userPrincipalName").and_then(Value::as_str) {
            check_upn_syntax(upn)?;
            let domain = upn.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
            if tenant.domain_kind(domain).is_none() && mode != WriteMode::Seed {
                return Err(domain_error());
            }
        }
        if let Some(n) = out.get("mailNickname").and_then(Value::as_str) {
            let bad = n.is_empty()
                || n.chars()
                    .any(|c| !c.is_ascii() || c.is_whitespace() || "@()\\[]\";:<>,".contains(c))
                || n.starts_with('.')
                || n.ends_with('.');
            if bad {
                return Err(GraphError::invalid_value("mailNickname"));
            }
        }
        if let Some(t) = out.get("userType").and_then(Value::as_str) {
            let canon = ["Member", "Guest"]
                .into_iter()
                .find(|c| c.eq_ignore_ascii_case(t));
            match canon {
                Some(c) => {
                    out.insert("userType".into(), json!(c));
                }
                None => return Err(GraphError::invalid_value("userType")),
            }
        }
        if let Some(u) = out.get("usageLocation").and_then(Value::as_str) {
            if u.len() != 2 || !u.chars().all(|c| c.is_ascii_alphabetic()) {
                return Err(GraphError::invalid_value("usageLocation"));
            }
        }
        if let Some(Value::Array(p)) = out.get("businessPhones") {
            if p.len() > 1 {
                return Err(GraphError::invalid_value("businessPhones"));
            }
        }
        if let Some(m) = out.get("mail").and_then(Value::as_str) {
            if !is_plain_address(m) {
                return Err(GraphError::invalid_value("mail"));
            }
        }
        if let Some(Value::Array(m)) = out.get("otherMails") {
            if m.iter()
                .filter_map(Value::as_str)
                .any(|a| !is_plain_address(a))
            {
                return Err(GraphError::invalid_value("otherMails"));
            }
        }
        if let Some(i) = out.get("onPremisesImmutableId").and_then(Value::as_str) {
            if i.is_empty() || i.contains('$') || i.contains('_') || i.len() > 256 {
                return Err(GraphError::invalid_value("onPremisesImmutableId"));
            }
        }
        if let Some(pp) = out.get("passwordPolicies").and_then(Value::as_str) {
            let ok = pp.split(',').map(str::trim).all(|p| {
                ["DisablePasswordExpiration", "DisableStrongPassword", "None"]
                    .iter()
                    .any(|k| k.eq_ignore_ascii_case(p))
            });
            if !ok {
                return Err(GraphError::invalid_value("passwordPolicies"));
            }
        }
        Ok((out, password))
    }

    fn conflicts(&self, props: &Map<String, Value>, own: Option<u64>) -> Result<(), GraphError> {
        let other = |idx: &HashMap<String, u64>, k: String| -> Option<String> {
            idx.get(&k)
                .filter(|s| Some(**s) != own)
                .and_then(|s| self.users.get(s))
                .map(|r| r.id().to_string())
        };
        if let Some(upn) = props.get("userPrincipalName").and_then(Value::as_str) {
            if let Some(id) = other(&self.idx_upn, lower(upn)) {
                return Err(GraphError::conflict("userPrincipalName", &id));
            }
        }
        if let Some(imm) = props.get("onPremisesImmutableId").and_then(Value::as_str) {
            if let Some(id) = other(&self.idx_immutable, lower(imm)) {
                return Err(GraphError::conflict("onPremisesImmutableId", &id));
            }
        }
        if let Some(Value::Array(addrs)) = props.get("proxyAddresses") {
            for a in addrs.iter().filter_map(Value::as_str) {
                if let Some(id) = other(&self.idx_proxy, proxy_key(a)) {
                    return Err(GraphError::conflict("proxyAddresses", &id));
                }
            }
        }
        Ok(())
    }

    // -----------------------------------------------------------------------------------------
    // Writes

    /// `POST /users` (or admin seeding with `WriteMode::Seed`). Returns the new user's seq.
    pub(crate) fn create(
        &mut self,
        tenant: &TenantConfig,
        body: &Value,
        mode: WriteMode,
    ) -> Result<u64, GraphError> {
        let (mut props, password) = self.validate(tenant, body, mode)?;
        if mode == WriteMode::Create {
            for required in [
                "accountEnabled",
                "displayName",
                "mailNickname",
                "userPrincipalName",
            ] {
                if props.get(required).map_or(true, Value::is_null) {
                    return Err(GraphError::invalid_value(required));
                }
            }
        } else if props.get("userPrincipalName").map_or(true, Value::is_null) {
            return Err(GraphError::invalid_value("userPrincipalName"));
        }
        let upn = props
            .get("userPrincipalName")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let domain = upn.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
        let federated = tenant.domain_kind(domain) == Some(DomainKind::Federated);
        if mode == WriteMode::Create {
            if federated
                && props
                    .get("onPremisesImmutableId")
                    .map_or(true, Value::is_null)
            {
                return Err(domain_error());
            }
            match &password {
                Some(pp) => check_password(pp, &props)?,
                None if !federated => return Err(GraphError::invalid_value("passwordProfile")),
                None => {}
            }
        }
        if let Some(pp) = &password {
            if mode == WriteMode::Seed {
                check_password(pp, &props)?;
            }
        }
        // Fill in the rest of the object.
        let id = match props.get("id").and_then(Value::as_str) {
            Some(id) if mode == WriteMode::Seed && util::is_guid(id) => lower(id),
            _ => self.guid(),
        };
        // Stored sparsely: properties at their default (null, [], all-null extension
        // attributes) are absent, which keeps records small and lookups fast.
        let mut full = Map::new();
        full.insert("id".into(), json!(id));
        full.insert(
            "createdDateTime".into(),
            json!(util::iso_z(chrono::Utc::now())),
        );
        full.insert("userType".into(), json!("Member"));
        full.insert(
            "identities".into(),
            json!([{
                "signInType": "userPrincipalName",
                "issuer": tenant.initial_domain,
                "issuerAssignedId": upn,
            }]),
        );
        let ext = props.remove("onPremisesExtensionAttributes");
        for (k, v) in props {
            if k == "id" {
                continue;
            }
            full.insert(k, v);
        }
        if let Some(ext) = ext {
            merge_ext_attrs(&mut full, &ext);
        }
        let has_proxies =
            matches!(full.get("proxyAddresses"), Some(Value::Array(a)) if !a.is_empty());
        if !has_proxies {
            if let Some(mail) = full.get("mail").and_then(Value::as_str) {
                let addr = format!("SMTP:{mail}");
                full.insert("proxyAddresses".into(), json!([addr]));
            }
        }
        drop_defaults(&mut full);
        self.conflicts(&full, None)?;
        if self.idx_id.contains_key(&id) || self.idx_deleted.contains_key(&id) {
            return Err(GraphError::conflict("id", &id));
        }
        let version = self.bump();
        let seq = self.next_seq;
        self.next_seq += 1;
        let prop_versions = full.keys().map(|k| (k.clone(), version)).collect();
        let rec = UserRecord {
            seq,
            props: full,
            prop_versions,
            version,
            password: password
                .as_ref()
                .and_then(|p| p.get("password"))
                .and_then(Value::as_str)
                .map(str::to_string),
            deleted: None,
            created_ms: util::now_millis(),
        };
        self.users.insert(seq, rec);
        self.index(seq);
        Ok(seq)
    }

    /// `PATCH /users/{id}`: merge, `null` clears, read-only properties rejected.
    pub(crate) fn patch(
        &mut self,
        tenant: &TenantConfig,
        seq: u64,
        body: &Value,
    ) -> Result<(), GraphError> {
        let (props, password) = self.validate(tenant, body, WriteMode::Patch)?;
        let Some(current) = self.users.get(&seq) else {
            return Err(GraphError::not_found(""));
        };
        let synced = current.props.get("onPremisesSyncEnabled") == Some(&json!(true));
        if synced && props.contains_key("onPremisesExtensionAttributes") {
            return Err(GraphError::bad_request(
                "Unable to update the specified properties for on-premises mastered Directory Sync objects or objects currently undergoing migration.",
            ));
        }
        if let Some(pp) = &password {
            check_password(pp, &current.props)?;
        }
        let mut next = current.props.clone();
        let ext = props.get("onPremisesExtensionAttributes").cloned();
        for (k, v) in &props {
            if k == "onPremisesExtensionAttributes" {
                continue;
            }
            next.insert(k.clone(), v.clone());
        }
        if let Some(ext) = ext {
            merge_ext_attrs(&mut next, &ext);
        }
        if props.contains_key("mail") {
            let proxies = match next.get("mail").and_then(Value::as_str) {
                Some(m) => json!([format!("SMTP:{m}")]),
                None => json!([]),
            };
            next.insert("proxyAddresses".into(), proxies);
        }
        if let Some(upn) = props.get("userPrincipalName").and_then(Value::as_str) {
            if let Some(Value::Array(ids)) = next.get_mut("identities") {
                for i in ids.iter_mut() {
                    if i.get("signInType").and_then(Value::as_str) == Some("userPrincipalName") {
                        i["issuerAssignedId"] = json!(upn);
                    }
                }
            }
        }
        let mut check = Map::new();
        for k in [
            "userPrincipalName",
            "onPremisesImmutableId",
            "proxyAddresses",
        ] {
            if props.contains_key(k) || (k == "proxyAddresses" && props.contains_key("mail")) {
                if let Some(v) = next.get(k) {
                    check.insert(k.to_string(), v.clone());
                }
            }
        }
        self.conflicts(&check, Some(seq))?;
        self.replace_props(seq, next, password.as_ref());
        Ok(())
    }

    /// Stores `next` as the user's properties, tracking per-property changes for delta.
    fn replace_props(&mut self, seq: u64, mut next: Map<String, Value>, password: Option<&Value>) {
        let version = self.bump();
        self.unindex(seq);
        drop_defaults(&mut next);
        if let Some(rec) = self.users.get_mut(&seq) {
            let mut changed = false;
            let keys: std::collections::BTreeSet<&String> =
                next.keys().chain(rec.props.keys()).collect();
            for k in keys {
                if rec.props.get(k) != next.get(k) {
                    rec.prop_versions.insert(k.clone(), version);
                    changed = true;
                }
            }
            if let Some(pp) = password
                .and_then(|p| p.get("password"))
                .and_then(Value::as_str)
            {
                rec.password = Some(pp.to_string());
            }
            rec.props = next;
            if changed {
                rec.version = version;
            }
        }
        self.index(seq);
    }

    /// Beta `convertExternalToInternalMemberUser`: an external (B2B) user becomes an internal
    /// member with a UPN in a verified domain and a password. Returns `conversionUserDetails`.
    pub(crate) fn convert_to_internal(
        &mut self,
        tenant: &TenantConfig,
        seq: u64,
        body: &Value,
    ) -> Result<Value, GraphError> {
        let obj = body.as_object().ok_or_else(GraphError::invalid_json)?;
        for k in obj.keys() {
            let known = ["userPrincipalName", "passwordProfile", "mail"]
                .iter()
                .any(|n| n.eq_ignore_ascii_case(k));
            if !known && !k.starts_with('@') {
                return Err(GraphError::odata(format!(
                    "The parameter '{k}' in the request payload is not a valid parameter for the operation 'convertExternalToInternalMemberUser'."
                )));
            }
        }
        let get = |k: &str| {
            obj.iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(k))
                .map(|(_, v)| v)
        };
        let rec = self
            .users
            .get(&seq)
            .ok_or_else(|| GraphError::not_found(""))?;
        let external = rec.str_prop("externalUserState").is_some()
            || rec
                .str_prop("userPrincipalName")
                .is_some_and(|u| u.to_ascii_uppercase().contains("#EXT#"));
        if !external {
            return Err(GraphError::bad_request("The user is not an external user."));
        }
        let upn = get("userPrincipalName")
            .and_then(Value::as_str)
            .ok_or_else(|| GraphError::invalid_value("userPrincipalName"))?
            .to_string();
        check_upn_syntax(&upn)?;
        let domain = upn.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
        if tenant.domain_kind(domain) != Some(DomainKind::Managed) {
            return Err(domain_error());
        }
        let password = get("passwordProfile")
            .cloned()
            .ok_or_else(|| GraphError::invalid_value("passwordProfile"))?;
        let password = check_kind(
            schema::prop("passwordProfile")
                .ok_or_else(|| GraphError::invalid_value("passwordProfile"))?,
            &password,
        )?;
        check_password(&password, &rec.props)?;
        let mut next = rec.props.clone();
        if let Some(mail) = get("mail") {
            let m = mail
                .as_str()
                .filter(|m| is_plain_address(m))
                .ok_or_else(|| GraphError::invalid_value("mail"))?;
            next.insert("mail".into(), json!(m));
            next.insert("proxyAddresses".into(), json!([format!("SMTP:{m}")]));
        }
        next.insert("userPrincipalName".into(), json!(upn));
        next.insert("userType".into(), json!("Member"));
        next.remove("externalUserState");
        next.remove("externalUserStateChangeDateTime");
        next.remove("creationType");
        next.insert(
            "identities".into(),
            json!([{"signInType": "userPrincipalName", "issuer": tenant.initial_domain, "issuerAssignedId": upn}]),
        );
        let mut check = Map::new();
        for k in ["userPrincipalName", "proxyAddresses"] {
            if let Some(v) = next.get(k) {
                check.insert(k.to_string(), v.clone());
            }
        }
        self.conflicts(&check, Some(seq))?;
        let details = json!({
            "convertedToInternalUserDateTime": util::iso_z(chrono::Utc::now()),
            "displayName": next.get("displayName").cloned().unwrap_or(Value::Null),
            "mail": next.get("mail").cloned().unwrap_or(Value::Null),
            "userPrincipalName": upn,
        });
        self.replace_props(seq, next, Some(&password));
        Ok(details)
    }

    /// Soft delete: into deleted items, UPN prefixed with the id (without hyphens).
    pub(crate) fn soft_delete(&mut self, seq: u64) -> Option<()> {
        self.unindex(seq);
        let mut rec = self.users.remove(&seq)?;
        let version = self.bump();
        let now = chrono::Utc::now();
        let original_upn = rec.str_prop("userPrincipalName").unwrap_or("").to_string();
        let mangled = format!("{}{}", rec.id().replace('-', ""), original_upn);
        rec.props.insert("userPrincipalName".into(), json!(mangled));
        rec.props
            .insert("deletedDateTime".into(), json!(util::iso_z(now)));
        rec.version = version;
        rec.deleted = Some(DeletedInfo {
            version,
            at_ms: now.timestamp_millis(),
            original_upn,
        });
        self.idx_deleted.insert(lower(rec.id()), seq);
        self.deleted.insert(seq, rec);
        Some(())
    }

    /// Restore from deleted items. Fails if the UPN, immutable id or (unless reconciled) a proxy
    /// address was taken meanwhile.
    pub(crate) fn restore(
        &mut self,
        seq: u64,
        auto_reconcile_proxy: bool,
    ) -> Result<(), GraphError> {
        let Some(rec) = self.deleted.get(&seq) else {
            return Err(GraphError::not_found(""));
        };
        let mut props = rec.props.clone();
        let original = rec
            .deleted
            .as_ref()
            .map(|d| d.original_upn.clone())
            .unwrap_or_default();
        props.insert("userPrincipalName".into(), json!(original));
        props.remove("deletedDateTime");
        if auto_reconcile_proxy {
            if let Some(Value::Array(addrs)) = props.get("proxyAddresses").cloned() {
                let kept: Vec<Value> = addrs
                    .into_iter()
                    .filter(|a| {
                        a.as_str()
                            .map_or(true, |s| !self.idx_proxy.contains_key(&proxy_key(s)))
                    })
                    .collect();
                props.insert("proxyAddresses".into(), Value::Array(kept));
            }
        }
        self.conflicts(&props, None)?;
        let version = self.bump();
        let Some(mut rec) = self.deleted.remove(&seq) else {
            return Err(GraphError::not_found(""));
        };
        self.idx_deleted.remove(&lower(rec.id()));
        rec.props = props;
        rec.deleted = None;
        rec.version = version;
        // A restored user reappears in delta as a whole.
        for v in rec.prop_versions.values_mut() {
            *v = version;
        }
        self.users.insert(seq, rec);
        self.index(seq);
        Ok(())
    }

    /// Permanent delete from deleted items.
    pub(crate) fn purge(&mut self, seq: u64) -> Option<()> {
        let rec = self.deleted.remove(&seq)?;
        self.idx_deleted.remove(&lower(rec.id()));
        let version = self.bump();
        self.tombstones.push(Tombstone {
            id: rec.id().to_string(),
            version,
        });
        Some(())
    }

    /// Purges deleted users older than the retention period.
    pub(crate) fn purge_expired(&mut self, retention_secs: u64) {
        let retention_ms = i64::try_from(retention_secs)
            .unwrap_or(i64::MAX)
            .saturating_mul(1000);
        let cutoff = util::now_millis().saturating_sub(retention_ms);
        let expired: Vec<u64> = self
            .deleted
            .iter()
            .filter(|(_, r)| r.deleted.as_ref().is_some_and(|d| d.at_ms < cutoff))
            .map(|(s, _)| *s)
            .collect();
        for seq in expired {
            self.purge(seq);
        }
    }

    /// Drops all users, deleted users and tombstones (admin reset). Versions keep counting so
    /// that old delta tokens stay comparable.
    pub(crate) fn reset(&mut self) {
        self.users.clear();
        self.deleted.clear();
        self.tombstones.clear();
        self.delta_generation += 1;
        self.reindex();
        self.bump();
    }

    // -----------------------------------------------------------------------------------------
    // Invitations

    /// `POST /invitations`. Returns the invitation resource (without `@odata.context`).
    pub(crate) fn invite(
        &mut self,
        tenant: &TenantConfig,
        body: &Value,
    ) -> Result<Value, GraphError> {
        let obj = body.as_object().ok_or_else(GraphError::invalid_json)?;
        let get = |k: &str| {
            obj.iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(k))
                .map(|(_, v)| v)
        };
        let known = [
            "invitedUserEmailAddress",
            "inviteRedirectUrl",
            "invitedUserDisplayName",
            "invitedUserType",
            "sendInvitationMessage",
            "invitedUserMessageInfo",
            "invitedUser",
            "resetRedemption",
            "invitedUserSponsors",
        ];
        for key in obj.keys() {
            if !key.starts_with('@') && !known.iter().any(|k| k.eq_ignore_ascii_case(key)) {
                return Err(GraphError::bad_request(format!(
                    "Property '{key}' does not exist as a declared property or extension property."
                )));
            }
        }
        let email = match get("invitedUserEmailAddress") {
            Some(Value::String(s)) if is_invitable_address(s) => s.clone(),
            Some(Value::String(_)) => {
                return Err(GraphError::odata(
                    "The specified invitedUserEmailAddress is invalid.",
                ))
            }
            _ => {
                return Err(GraphError::odata(
                    "The invitedUserEmailAddress property is required.",
                ))
            }
        };
        let redirect = match get("inviteRedirectUrl") {
            Some(Value::String(s)) if s.starts_with("https://") || s.starts_with("http://") => {
                s.clone()
            }
            Some(_) => {
                return Err(GraphError::odata(
                    "The specified inviteRedirectUrl is invalid.",
                ))
            }
            None => {
                return Err(GraphError::odata(
                    "The inviteRedirectUrl property is required.",
                ))
            }
        };
        let display = match get("invitedUserDisplayName") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                return Err(GraphError::odata(
                    "The specified invitedUserDisplayName is invalid.",
                ))
            }
        };
        let user_type = match get("invitedUserType") {
            None | Some(Value::Null) => "Guest".to_string(),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("guest") => "Guest".into(),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("member") => "Member".into(),
            Some(_) => {
                return Err(GraphError::odata(
                    "The specified invitedUserType is invalid.",
                ))
            }
        };
        let send = get("sendInvitationMessage")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let reset = get("resetRedemption")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let message_info = get("invitedUserMessageInfo").cloned().unwrap_or_else(|| {
            json!({"messageLanguage": null, "customizedMessageBody": null,
                   "ccRecipients": [{"emailAddress": {"name": null, "address": null}}]})
        });
        let existing_id = get("invitedUser")
            .and_then(|u| u.get("id"))
            .and_then(Value::as_str)
            .map(str::to_string);
        let now = util::iso_z(chrono::Utc::now());

        let (seq, status) = if let Some(id) = existing_id {
            // In-place conversion of an existing (internal) user, or redemption reset.
            let seq = self.find(&id).ok_or_else(|| GraphError::not_found(&id))?;
            let rec = self
                .users
                .get(&seq)
                .ok_or_else(|| GraphError::not_found(&id))?;
            if rec.props.get("onPremisesSyncEnabled") == Some(&json!(true))
                && rec
                    .props
                    .get("onPremisesUserPrincipalName")
                    .is_some_and(|v| !v.is_null())
            {
                return Err(GraphError::bad_request(
                    "Unable to invite a user that is synchronized from on-premises Active Directory.",
                ));
            }
            let mail_matches = rec
                .str_prop("mail")
                .is_some_and(|m| m.eq_ignore_ascii_case(&email));
            if !mail_matches {
                return Err(GraphError::bad_request(
                    "The invited user's email address must match the mail property of the existing user.",
                ));
            }
            let already = rec.str_prop("externalUserState").is_some();
            if already && !reset && rec.str_prop("externalUserState") == Some("Accepted") {
                return Err(GraphError::bad_request(
                    "The user has already redeemed an invitation. Set resetRedemption to true to reset it.",
                ));
            }
            let version = self.bump();
            if let Some(rec) = self.users.get_mut(&seq) {
                let mut set = |k: &str, v: Value| {
                    if rec.props.get(k) != Some(&v) {
                        rec.prop_versions.insert(k.to_string(), version);
                        rec.props.insert(k.to_string(), v);
                    }
                };
                set("externalUserState", json!("PendingAcceptance"));
                set("externalUserStateChangeDateTime", json!(now));
                if reset {
                    let upn = rec.str_prop("userPrincipalName").unwrap_or("").to_string();
                    let ids = json!([{"signInType": "userPrincipalName", "issuer": tenant.initial_domain, "issuerAssignedId": upn}]);
                    rec.props.insert("identities".into(), ids);
                    rec.prop_versions.insert("identities".into(), version);
                }
                rec.password = None;
                rec.version = version;
            }
            (seq, "PendingAcceptance")
        } else {
            let upn = format!("{}#EXT#@{}", email.replace('@', "_"), tenant.initial_domain);
            if let Some(seq) = self.idx_upn.get(&lower(&upn)).copied() {
                // Re-inviting the same address returns the existing guest.
                let accepted = self
                    .users
                    .get(&seq)
                    .and_then(|r| r.str_prop("externalUserState"))
                    == Some("Accepted");
                (
                    seq,
                    if accepted {
                        "Completed"
                    } else {
                        "PendingAcceptance"
                    },
                )
            } else {
                let local = email.split('@').next().unwrap_or(&email).to_string();
                let nickname = format!("{}#EXT#", email.replace('@', "_"));
                let seed = json!({
                    "accountEnabled": true,
                    "displayName": display.clone().unwrap_or(local),
                    "mailNickname": nickname,
                    "userPrincipalName": upn,
                    "mail": email,
                    "otherMails": [email],
                    "userType": user_type,
                    "creationType": "Invitation",
                    "externalUserState": "PendingAcceptance",
                    "externalUserStateChangeDateTime": now,
                });
                let seq = self.create(tenant, &seed, WriteMode::Seed)?;
                (seq, "PendingAcceptance")
            }
        };
        let user_id = self
            .users
            .get(&seq)
            .map(|r| r.id().to_string())
            .unwrap_or_default();
        let invitation_id = self.guid();
        let ticket = self.guid().replace('-', "");
        Ok(json!({
            "id": invitation_id,
            "inviteRedeemUrl": format!(
                "https://login.microsoftonline.com/redeem?rd=https%3a%2f%2finvitations.microsoft.com%2fredeem%2f%3ftenant%3d{}%26user%3d{}%26ticket%3d{}%26ver%3d2.0",
                tenant.tenant_id, user_id, ticket
            ),
            "invitedUserDisplayName": display,
            "invitedUserType": user_type,
            "invitedUserEmailAddress": email,
            "sendInvitationMessage": send,
            "resetRedemption": reset,
            "inviteRedirectUrl": redirect,
            "status": status,
            "invitedUserMessageInfo": message_info,
            "invitedUser": {"id": user_id},
        }))
    }

    /// Simulates the guest redeeming the invitation with an identity provider.
    pub(crate) fn redeem(&mut self, key: &str, issuer: &str) -> Result<(), GraphError> {
        let seq = self.find(key).ok_or_else(|| GraphError::not_found(key))?;
        let version = self.bump();
        let now = util::iso_z(chrono::Utc::now());
        let Some(rec) = self.users.get_mut(&seq) else {
            return Err(GraphError::not_found(key));
        };
        if rec.str_prop("externalUserState").is_none() {
            return Err(GraphError::bad_request(
                "The user has no pending invitation.",
            ));
        }
        let mail = rec.str_prop("mail").map(str::to_string);
        let mut identities = match rec.props.get("identities") {
            Some(Value::Array(a)) => a.clone(),
            _ => Vec::new(),
        };
        identities.retain(|i| i.get("signInType").and_then(Value::as_str) != Some("federated"));
        let assigned = if issuer.eq_ignore_ascii_case("ExternalAzureAD") {
            Value::Null
        } else {
            json!(mail)
        };
        identities.push(
            json!({"signInType": "federated", "issuer": issuer, "issuerAssignedId": assigned}),
        );
        for (k, v) in [
            ("externalUserState", json!("Accepted")),
            ("externalUserStateChangeDateTime", json!(now)),
            ("identities", Value::Array(identities)),
        ] {
            rec.props.insert(k.to_string(), v);
            rec.prop_versions.insert(k.to_string(), version);
        }
        rec.version = version;
        Ok(())
    }
}

/// The value a property has when it is not stored.
pub(crate) fn default_value(name: &str) -> Value {
    match schema::prop(name).map(|p| p.kind) {
        Some(Kind::StrList | Kind::Identities) => json!([]),
        Some(Kind::ExtAttrs) => empty_ext_attrs(),
        _ => Value::Null,
    }
}

/// Removes properties that are at their default value (see [`default_value`]).
fn drop_defaults(props: &mut Map<String, Value>) {
    props.retain(|k, v| match v {
        Value::Null => false,
        Value::Array(a) if a.is_empty() => false,
        Value::Object(o) if k == "onPremisesExtensionAttributes" => {
            o.values().any(|x| !x.is_null())
        }
        _ => true,
    });
}

/// The full object with defaults filled in (admin views).
pub(crate) fn full_object(rec: &UserRecord) -> Value {
    let mut m = rec.props.clone();
    for p in schema::stored_props() {
        if !m.contains_key(p.name) {
            m.insert(p.name.to_string(), default_value(p.name));
        }
    }
    Value::Object(m)
}

fn empty_ext_attrs() -> Value {
    let mut m = Map::new();
    for i in 1..=schema::EXTENSION_ATTRIBUTE_COUNT {
        m.insert(format!("extensionAttribute{i}"), Value::Null);
    }
    Value::Object(m)
}

/// Partial `onPremisesExtensionAttributes` objects merge into the 15 stored values.
fn merge_ext_attrs(target: &mut Map<String, Value>, ext: &Value) {
    let mut current = match target.get("onPremisesExtensionAttributes") {
        Some(Value::Object(m)) => m.clone(),
        _ => match empty_ext_attrs() {
            Value::Object(m) => m,
            _ => Map::new(),
        },
    };
    if let Value::Object(m) = ext {
        for (k, v) in m {
            current.insert(k.clone(), v.clone());
        }
    }
    target.insert(
        "onPremisesExtensionAttributes".into(),
        Value::Object(current),
    );
}

fn domain_error() -> GraphError {
    GraphError::bad_request("The domain portion of the userPrincipalName property is invalid. You must use one of the verified domain names in your organization.")
}

/// UPN syntax: `alias@domain`, alias from `A-Z a-z 0-9 ' . - _ ! # ^ ~` (and `$`, which
/// needs key syntax in URLs), ≤ 64 + total ≤ 113.
fn check_upn_syntax(upn: &str) -> Result<(), GraphError> {
    let invalid = || GraphError::bad_request("Property userPrincipalName is invalid.");
    let (local, domain) = upn.rsplit_once('@').ok_or_else(invalid)?;
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && upn.len() <= 113
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "'.-_!#^~$".contains(c));
    let domain_ok = !domain.is_empty()
        && domain.contains('.')
        && domain
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
    if local_ok && domain_ok {
        Ok(())
    } else {
        Err(invalid())
    }
}

fn is_plain_address(a: &str) -> bool {
    a.is_ascii()
        && a.split_once('@')
            .is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !a.contains(' '))
}

fn is_invitable_address(a: &str) -> bool {
    let Some((local, domain)) = a.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && !local.starts_with(['.', '-'])
        && !local.ends_with(['.', '-'])
        && !local
            .chars()
            .any(|c| "~!#$%^&*()+=[]{}\\/|;:'<>?, ".contains(c))
        && domain.contains('.')
        && !domain.starts_with('.')
        && domain
            .chars()
            .all(|c| c.is_alphanumeric() || c == '.' || c == '-')
}

/// Complexity rule of Entra ID: 8–256 characters and three of four character classes,
/// unless `passwordPolicies` contains `DisableStrongPassword`.
fn check_password(profile: &Value, props: &Map<String, Value>) -> Result<(), GraphError> {
    let weak = || {
        GraphError::bad_request("The specified password does not comply with password complexity requirements. Please provide a different password.")
    };
    let Some(pw) = profile.get("password").and_then(Value::as_str) else {
        return Err(GraphError::invalid_value("passwordProfile"));
    };
    let relaxed = props
        .get("passwordPolicies")
        .and_then(Value::as_str)
        .is_some_and(|p| p.to_ascii_lowercase().contains("disablestrongpassword"));
    if pw.chars().count() > 256 || pw.is_empty() {
        return Err(weak());
    }
    if relaxed {
        return Ok(());
    }
    let classes = [
        pw.chars().any(|c| c.is_uppercase()),
        pw.chars().any(|c| c.is_lowercase()),
        pw.chars().any(|c| c.is_ascii_digit()),
        pw.chars().any(|c| !c.is_alphanumeric()),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if pw.chars().count() < 8 || classes < 3 {
        return Err(weak());
    }
    Ok(())
}

fn check_kind(prop: &schema::Prop, value: &Value) -> Result<Value, GraphError> {
    let invalid = || GraphError::invalid_value(prop.name);
    let within = |s: &str| prop.max_len.map_or(true, |m| s.chars().count() <= m);
    match prop.kind {
        Kind::Str => match value {
            Value::String(s) if within(s) => Ok(value.clone()),
            _ => Err(invalid()),
        },
        Kind::Bool => value.as_bool().map(Value::Bool).ok_or_else(invalid),
        Kind::DateTime => match value {
            Value::String(s) if chrono::DateTime::parse_from_rfc3339(s).is_ok() => {
                Ok(value.clone())
            }
            _ => Err(invalid()),
        },
        Kind::StrList => match value {
            Value::Array(a) if a.iter().all(|v| v.as_str().is_some_and(within)) => {
                Ok(value.clone())
            }
            _ => Err(invalid()),
        },
        Kind::ExtAttrs => {
            let m = value.as_object().ok_or_else(invalid)?;
            let mut out = Map::new();
            for (k, v) in m {
                let n = k
                    .to_ascii_lowercase()
                    .strip_prefix("extensionattribute")
                    .and_then(|n| n.parse::<usize>().ok())
                    .filter(|n| (1..=schema::EXTENSION_ATTRIBUTE_COUNT).contains(n));
                let Some(n) = n else {
                    return Err(GraphError::bad_request(format!(
                        "Property '{k}' does not exist as a declared property or extension property."
                    )));
                };
                match v {
                    Value::Null => {}
                    Value::String(s) if s.chars().count() <= 1024 => {}
                    _ => return Err(invalid()),
                }
                out.insert(format!("extensionAttribute{n}"), v.clone());
            }
            Ok(Value::Object(out))
        }
        Kind::PasswordProfile => {
            let m = value.as_object().ok_or_else(invalid)?;
            for (k, v) in m {
                let ok = match k.as_str() {
                    "password" => v.is_string(),
                    "forceChangePasswordNextSignIn" | "forceChangePasswordNextSignInWithMfa" => {
                        v.is_boolean()
                    }
                    _ => k.starts_with('@'),
                };
                if !ok {
                    return Err(invalid());
                }
            }
            Ok(value.clone())
        }
        Kind::Identities => {
            let a = value.as_array().ok_or_else(invalid)?;
            for i in a {
                let o = i.as_object().ok_or_else(invalid)?;
                let ok = o.iter().all(|(k, v)| {
                    ["signInType", "issuer", "issuerAssignedId"].contains(&k.as_str())
                        && (v.is_string() || v.is_null())
                }) && o.get("signInType").is_some_and(Value::is_string);
                if !ok {
                    return Err(invalid());
                }
            }
            Ok(value.clone())
        }
    }
}

/// Projects a stored user: the default projection without `$select`, else exactly the
/// selected properties (canonical names, in the order given).
pub(crate) fn project(rec: &UserRecord, select: Option<&[String]>) -> Map<String, Value> {
    let mut out = Map::new();
    match select {
        None => {
            for name in schema::default_projection() {
                let v = rec.props.get(name).cloned();
                out.insert(name.to_string(), v.unwrap_or_else(|| default_value(name)));
            }
        }
        Some(names) => {
            for name in names {
                let v = rec.props.get(name.as_str()).cloned();
                out.insert(name.clone(), v.unwrap_or_else(|| default_value(name)));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(upn: &str) -> Value {
        json!({
            "accountEnabled": true, "displayName": "A", "mailNickname": "a",
            "userPrincipalName": upn,
            "passwordProfile": {"password": "Xy12345!abc"}
        })
    }

    #[test]
    fn create_and_conflict() {
        let t = TenantConfig::default();
        let mut d = Directory::new(1);
        let seq = d.create(&t, &user("a@contoso.com"), WriteMode::Create);
        assert!(seq.is_ok());
        let e = d
            .create(&t, &user("A@Contoso.com"), WriteMode::Create)
            .err();
        assert_eq!(
            e.map(|e| e.details[0].target.clone()).as_deref(),
            Some("userPrincipalName")
        );
    }

    #[test]
    fn state_round_trips_through_json() {
        let t = TenantConfig::default();
        let mut d = Directory::new(1);
        let keep = d
            .create(&t, &user("keep@contoso.com"), WriteMode::Create)
            .unwrap_or(0);
        let gone = d
            .create(&t, &user("gone@contoso.com"), WriteMode::Create)
            .unwrap_or(0);
        let purged = d
            .create(&t, &user("purged@contoso.com"), WriteMode::Create)
            .unwrap_or(0);
        assert!(d.soft_delete(gone).is_some() && d.soft_delete(purged).is_some());
        assert!(d.purge(purged).is_some());
        let gone_id = d
            .deleted
            .get(&gone)
            .map(|r| r.id().to_string())
            .unwrap_or_default();
        assert!(d
            .deleted
            .get(&gone)
            .and_then(|r| r.str_prop("userPrincipalName"))
            .is_some_and(|u| u == format!("{}gone@contoso.com", gone_id.replace('-', ""))));

        let text = serde_json::to_string(&d).unwrap_or_default();
        let mut back: Directory = match serde_json::from_str(&text) {
            Ok(b) => b,
            Err(e) => panic!("{e}"),
        };
        back.reindex();
        assert_eq!(back.find("KEEP@contoso.com"), Some(keep));
        assert_eq!(back.find_deleted(&gone_id), Some(gone));
        assert_eq!(back.tombstones.len(), 1);
        assert_eq!((back.version, back.token_key), (d.version, d.token_key));
        assert!(back.restore(gone, false).is_ok());
        assert_eq!(back.find("gone@contoso.com"), Some(gone));
        // Uniqueness survives the round trip.
        assert!(back
            .create(&t, &user("keep@contoso.com"), WriteMode::Create)
            .is_err());
    }

    #[test]
    fn upn_rules() {
        assert!(check_upn_syntax("a.b@contoso.com").is_ok());
        assert!(check_upn_syntax("jörg@contoso.com").is_err());
        assert!(check_upn_syntax("a b@contoso.com").is_err());
        assert!(check_upn_syntax("no-at-sign").is_err());
    }

    #[test]
    fn password_rules() {
        let none = Map::new();
        assert!(check_password(&json!({"password": "Xy12345!abc"}), &none).is_ok());
        assert!(check_password(&json!({"password": "short1A"}), &none).is_err());
        assert!(check_password(&json!({"password": "alllowercase"}), &none).is_err());
        let mut relaxed = Map::new();
        relaxed.insert("passwordPolicies".into(), json!("DisableStrongPassword"));
        assert!(check_password(&json!({"password": "alllowercase"}), &relaxed).is_ok());
    }
}
