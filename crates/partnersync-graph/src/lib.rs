//! [`TargetDirectory`] over Microsoft Graph with `graph-rs-sdk` 3.0.1.
//!
//! [`GraphTarget`] lists the users partnersync manages (those with an anchor in the
//! configured anchor attribute — `onPremisesImmutableId` unless [`AnchorAttribute`] names a
//! directory extension property — soft-deleted ones included), finds one by anchor or (soft match)
//! by UPN or mail, reports what changed in the tenant since a cookie (Graph delta), and
//! applies creates (direct, by invitation, or by converting an internal user to B2B in
//! place), updates, disables, soft deletes, restores and permanent deletes, one result per
//! operation with Graph's own error code and message. [`GraphTarget::check`] says whether the
//! configured app can sync the tenant at all.
//!
//! Two decisions shape the crate:
//!
//! * **One transport layer.** Every request — reads, writes, paging — goes through
//!   `transport::Transport`: a write-rate token bucket (default 20 writes/s, Graph's
//!   3,000 per 150 s) that slows down on Graph's early warning
//!   (`x-ms-throttle-limit-percentage`) and on 429s and recovers after, bounded concurrency, `Retry-After` honoured to the millisecond,
//!   exponential backoff with jitter for 5xx and dropped connections, and a retry budget so a
//!   dead tenant fails fast. graph-rs-sdk's own retry layers are not used (graph.md §5.7), and
//!   its `paging()` is not used either because it drops `ConsistencyLevel` after page one
//!   (§5.6).
//! * **HTTP errors are errors.** graph-rs-sdk returns 4xx/5xx as `Ok`; this crate checks every
//!   status and parses the whole error body, `details` included, so a conflict names the
//!   property that conflicted.
//!
//! Tokens come from the client-credentials grant — with a client secret or a certificate
//! (signed client assertion) — cached and refreshed five minutes before expiry, through
//! graph-core's `ClientApplication`. The secret is read from an environment variable or a
//! file, never from argv; secrets and private keys never appear in `Debug` output or errors.
//! [`GraphConfig::from_toml_value`] reads the `[target]` table of the configuration file.
//!
//! ```no_run
//! use partnersync_graph::{DomainKind, GraphConfig, GraphTarget, SecretSource, VerifiedDomain};
//! use partnersync_target::TargetDirectory;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let mut config = GraphConfig::new(
//!     "6f1c6a2e-3b7d-4c59-9a1e-0d5b8e2f4a71",
//!     "0b9e4f3a-7c21-4d8e-b5a6-2f1e9c8d7b64",
//!     SecretSource::Env("PARTNERSYNC_CLIENT_SECRET".into()),
//! );
//! config.verified_domains.push(VerifiedDomain {
//!     name: "partners.contoso.com".into(),
//!     kind: DomainKind::Federated,
//! });
//! let target = GraphTarget::new(config)?;
//! for user in target.list_managed().await? {
//!     println!("{} enabled={}", user.id, user.enabled);
//! }
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

mod auth;
mod batch;
mod check;
mod config;
mod credential;
mod error;
mod limiter;
mod table;
mod transport;
mod users;

use std::sync::Arc;

use async_trait::async_trait;
use graph_rs_sdk::header::{HeaderName, HeaderValue, CONTENT_LENGTH};
use graph_rs_sdk::http::Url;
use graph_rs_sdk::{GraphClient, GraphClientConfiguration, ODataQuery};
use partnersync_core::Anchor;
use partnersync_target::{
    Attributes, ErrorCategory, Operation, OperationOutcome, TargetDirectory, TargetError,
    TargetUser, UserSink,
};
use serde_json::{Map, Value};

pub use check::{CheckReport, Finding, Level, TenantDomain};
pub use config::{
    AnchorAttribute, CreationMode, CredentialSource, DomainKind, EndpointOverride, GraphConfig,
    InvitationConfig, NationalCloud, Secret, SecretSource, TransportConfig, VerifiedDomain,
};
pub use credential::ClientCertificate;
pub use error::GraphError;
pub use table::{CloudName, DomainEntry, DomainKindName, RefusedSecret, TargetConfig};
pub use transport::TransportStats;

use transport::{Cost, Reply, Transport};

const PAGE_SIZE: &str = "999";

/// The Microsoft Graph implementation of [`TargetDirectory`].
#[derive(Clone)]
pub struct GraphTarget {
    inner: Arc<Inner>,
}

struct Inner {
    client: GraphClient,
    transport: Transport,
    config: GraphConfig,
    /// `users::SELECT`, plus the anchor attribute when it is an extension property.
    select: Vec<String>,
}

impl std::fmt::Debug for GraphTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphTarget")
            .field("tenant_id", &self.inner.config.tenant_id)
            .field("client_id", &self.inner.config.client_id)
            .field("endpoint", &self.inner.client.url().as_str())
            .finish_non_exhaustive()
    }
}

#[derive(serde::Deserialize)]
struct DeltaPage {
    #[serde(default)]
    value: Vec<Value>,
    #[serde(rename = "@odata.nextLink", default)]
    next_link: Option<String>,
    #[serde(rename = "@odata.deltaLink", default)]
    delta_link: Option<String>,
}

/// What [`GraphTarget::existing_for_invitation`] found.
enum ExistingUser {
    None,
    Convert(String),
    Ours(String),
}

enum DeltaEntry {
    Changed(Box<TargetUser>),
    Deleted,
    Removed,
}

#[derive(serde::Deserialize)]
struct Page {
    #[serde(default)]
    value: Vec<Value>,
    #[serde(rename = "@odata.nextLink", default)]
    next_link: Option<String>,
}

impl GraphTarget {
    /// Builds the client: reads the secret, sets up token caching and the transport. No
    /// request is sent until the first operation.
    pub fn new(config: GraphConfig) -> Result<Self, GraphError> {
        if config.tenant_id.trim().is_empty() || config.client_id.trim().is_empty() {
            return Err(GraphError::Config(
                "tenant_id and client_id must not be empty".into(),
            ));
        }
        let credential = config.credential.load()?;
        let http = reqwest::Client::builder()
            .timeout(config.transport.request_timeout)
            .build()
            .map_err(|e| GraphError::Config(format!("cannot build the HTTP client: {e}")))?;
        let tokens = auth::TokenSource::new(
            http,
            config.token_url(),
            config.client_id.clone(),
            credential,
            config.cloud.scope(),
        );
        let graph_config = GraphClientConfiguration::new()
            .client_application(tokens.clone())
            .timeout(config.transport.request_timeout);
        let client = build_client(graph_config, &config)?;
        let transport = Transport::new(config.transport.clone(), tokens);
        let mut select: Vec<String> = users::SELECT.iter().map(|s| s.to_string()).collect();
        if config.anchor_attribute.is_extension() {
            select.push(config.anchor_attribute.name().to_string());
        }
        Ok(GraphTarget {
            inner: Arc::new(Inner {
                client,
                transport,
                config,
                select,
            }),
        })
    }

    /// The property users are bound to their source anchors through.
    pub fn anchor_attribute(&self) -> &AnchorAttribute {
        &self.inner.config.anchor_attribute
    }

    fn anchor_name(&self) -> &str {
        self.inner.config.anchor_attribute.name()
    }

    /// The `$select` of every user read.
    fn select(&self) -> Vec<&str> {
        self.inner.select.iter().map(String::as_str).collect()
    }

    /// A user as the target trait sees it, its anchor read from the anchor attribute.
    fn user_of(&self, value: Value, deleted: bool) -> TargetUser {
        target_user(value, deleted, self.anchor_name())
    }

    /// What the transport has seen so far: the current (adapted) write rate, 429s, early
    /// throttling signals and retries.
    pub fn transport_stats(&self) -> TransportStats {
        self.inner.transport.stats()
    }

    fn client(&self) -> &GraphClient {
        &self.inner.client
    }

    /// Every page of a users or deleted-users query with `filter`, following nextLinks
    /// verbatim and sending the advanced-query parameters on every page.
    async fn list(&self, deleted: bool, filter: &str) -> Result<Vec<Value>, TargetError> {
        self.list_select(deleted, filter, &self.select()).await
    }

    /// [`Self::list`] with another `$select` (which must include `id`).
    async fn list_select(
        &self,
        deleted: bool,
        filter: &str,
        select: &[&str],
    ) -> Result<Vec<Value>, TargetError> {
        let mut out = Vec::new();
        self.list_each(deleted, filter, select, &mut |v| {
            out.push(v);
            Ok(())
        })
        .await?;
        Ok(out)
    }

    /// [`Self::list_select`], handing each user to `each` as its page arrives (a page at a
    /// time in memory).
    async fn list_each(
        &self,
        deleted: bool,
        filter: &str,
        select: &[&str],
        each: &mut (dyn FnMut(Value) -> Result<(), TargetError> + Send),
    ) -> Result<(), TargetError> {
        let mut next: Option<Url> = None;
        loop {
            let link = next.clone();
            let reply = self
                .inner
                .transport
                .send(Cost::Read, || {
                    let client = self.client();
                    let req = if deleted {
                        client
                            .directory()
                            .deleted_items()
                            .get_directory_object_items_as_user_type()
                    } else {
                        client.users().list_user()
                    };
                    let mut req = req
                        .filter(&[filter])
                        .select(select)
                        .top(PAGE_SIZE)
                        .count("true")
                        .header(
                            HeaderName::from_static("consistencylevel"),
                            HeaderValue::from_static("eventual"),
                        );
                    if let Some(link) = &link {
                        *req.as_mut() = link.clone();
                    }
                    req
                })
                .await?;
            let page: Page = json_of(&reply)?;
            for v in page.value {
                each(v)?;
            }
            match page.next_link {
                Some(link) => next = Some(self.own_link(&link, "@odata.nextLink")?),
                None => return Ok(()),
            }
        }
    }

    /// A link Graph sent (nextLink, deltaLink) or a saved cookie, checked to point at our
    /// own endpoint: the bearer token goes wherever the link points.
    fn own_link(&self, link: &str, what: &str) -> Result<Url, TargetError> {
        let url = Url::parse(link).map_err(|e| {
            TargetError::new(
                ErrorCategory::Other,
                "invalid_next_link",
                format!("unusable {what}: {e}"),
            )
        })?;
        if url.origin() != self.client().url().origin() {
            return Err(TargetError::new(
                ErrorCategory::Other,
                "invalid_next_link",
                format!(
                    "{what} points to another host ({}); not followed",
                    url.origin().ascii_serialization()
                ),
            ));
        }
        Ok(url)
    }

    /// One `users/delta` request: the first (`$select`, `$deltaToken=latest`) or a saved or
    /// next link followed verbatim.
    async fn delta_page(&self, link: Option<&Url>) -> Result<DeltaPage, TargetError> {
        let reply = self
            .inner
            .transport
            .send(Cost::Read, || {
                let req = self
                    .client()
                    .users()
                    .delta()
                    .select(&self.select())
                    .delta_token("latest");
                let mut req = req.header(
                    HeaderName::from_static("prefer"),
                    HeaderValue::from_static("odata.maxpagesize=999"),
                );
                if let Some(link) = link {
                    *req.as_mut() = link.clone();
                }
                req
            })
            .await?;
        json_of(&reply)
    }

    async fn find(&self, anchor: &Anchor) -> Result<Option<TargetUser>, TargetError> {
        let filter = format!(
            "{} eq {}",
            self.anchor_name(),
            users::odata_string(&anchor.to_immutable_id())
        );
        for deleted in [false, true] {
            // Graph compares strings without regard to case; base64 anchors are case-sensitive,
            // so only a user whose value decodes to this anchor is this anchor's user.
            if let Some(u) = self
                .list(deleted, &filter)
                .await?
                .into_iter()
                .map(|v| self.user_of(v, deleted))
                .find(|u| u.anchor.as_ref() == Some(anchor))
            {
                return Ok(Some(u));
            }
        }
        Ok(None)
    }

    async fn apply_one(&self, op: &Operation) -> Result<OperationOutcome, TargetError> {
        match op {
            Operation::Create {
                anchor,
                mode,
                attributes,
            } => match mode {
                CreationMode::Direct => self.create_direct(anchor, attributes).await,
                CreationMode::Invitation => self.create_by_invitation(anchor, attributes).await,
            },
            Operation::Update { id, changes } => {
                let body = users::body_of(changes)?;
                self.patch(id, &body)
                    .await
                    .map(|_| OperationOutcome::Updated)
            }
            Operation::Adopt {
                id,
                anchor,
                changes,
            } => {
                let body = self.adopt_body(anchor, changes)?;
                self.patch(id, &body)
                    .await
                    .map(|_| OperationOutcome::Updated)
            }
            Operation::Disable { id } => {
                let mut body = Map::new();
                body.insert("accountEnabled".into(), Value::Bool(false));
                self.patch(id, &body)
                    .await
                    .map(|_| OperationOutcome::Disabled)
            }
            Operation::Delete { id } => {
                let reply = self
                    .inner
                    .transport
                    .send(Cost::Write, || self.client().user(id).delete_user())
                    .await?;
                gone_is_done(&reply, OperationOutcome::Deleted)
            }
            Operation::Restore { id } => {
                let reply = self
                    .inner
                    .transport
                    .send(Cost::Write, || {
                        // Content-Length: 0, or real Graph answers 411 (graph.md §5.9).
                        self.client()
                            .directory()
                            .deleted_item(id)
                            .restore()
                            .header(CONTENT_LENGTH, HeaderValue::from_static("0"))
                    })
                    .await?;
                check(&reply).map(|_| OperationOutcome::Restored)
            }
            Operation::PermanentDelete { id } => {
                let reply = self
                    .inner
                    .transport
                    .send(Cost::Write, || {
                        self.client()
                            .directory()
                            .deleted_item(id)
                            .delete_deleted_items()
                    })
                    .await?;
                gone_is_done(&reply, OperationOutcome::PermanentlyDeleted)
            }
        }
    }

    async fn patch(&self, id: &str, body: &Map<String, Value>) -> Result<(), TargetError> {
        let reply = self
            .inner
            .transport
            .send(Cost::Write, || self.client().user(id).update_user(body))
            .await?;
        check(&reply)
    }

    /// The `POST /users` body of a direct create, checked against the domain rules.
    fn create_body(
        &self,
        anchor: &Anchor,
        attributes: &Attributes,
    ) -> Result<Map<String, Value>, TargetError> {
        let upn = attributes
            .get("userPrincipalName")
            .and_then(|v| v.first())
            .cloned()
            .ok_or_else(|| {
                TargetError::new(
                    ErrorCategory::Validation,
                    "partnersync_MissingUserPrincipalName",
                    "direct creation needs a userPrincipalName",
                )
            })?;
        if self.inner.config.domain(&upn).is_none() {
            return Err(TargetError::new(
                ErrorCategory::Validation,
                "partnersync_UnverifiedDomain",
                format!(
                    "the domain of userPrincipalName {upn} is not one of the configured verified domains"
                ),
            ));
        }
        let mut body = users::body_of(attributes)?;
        body.insert(
            self.anchor_name().to_string(),
            Value::String(anchor.to_immutable_id()),
        );
        // Graph requires onPremisesImmutableId in a federated domain, and federated sign-in
        // matches on it: with an extension anchor it carries the anchor too, unless the rules
        // set it.
        if self
            .inner
            .config
            .domain(&upn)
            .is_some_and(|d| d.kind == DomainKind::Federated)
        {
            body.entry(AnchorAttribute::IMMUTABLE_ID)
                .or_insert_with(|| Value::String(anchor.to_immutable_id()));
        }
        body.entry("userType")
            .or_insert_with(|| Value::String("Guest".into()));
        body.entry("accountEnabled").or_insert(Value::Bool(true));
        if !body.get("mailNickname").is_some_and(Value::is_string) {
            body.insert(
                "mailNickname".into(),
                Value::String(users::mail_nickname(&upn)),
            );
        }
        if !body.get("displayName").is_some_and(Value::is_string) {
            body.insert("displayName".into(), Value::String(upn.clone()));
        }
        // Graph requires a passwordProfile on every direct create; in a federated domain it is
        // never used (sign-in goes to the on-premises IdP). Not logged, stored or returned.
        let mut profile = Map::new();
        profile.insert("forceChangePasswordNextSignIn".into(), Value::Bool(true));
        profile.insert("password".into(), Value::String(users::random_password()?));
        body.insert("passwordProfile".into(), Value::Object(profile));
        Ok(body)
    }

    async fn create_direct(
        &self,
        anchor: &Anchor,
        attributes: &Attributes,
    ) -> Result<OperationOutcome, TargetError> {
        let body = self.create_body(anchor, attributes)?;
        let reply = self
            .inner
            .transport
            .send(Cost::Write, || self.client().users().create_user(&body))
            .await;
        drop(body);
        let reply = reply?;
        if reply.is_success() {
            let v: Value = json_of(&reply)?;
            return match v.get("id").and_then(Value::as_str) {
                Some(id) => Ok(OperationOutcome::Created { id: id.to_string() }),
                None => Err(TargetError::new(
                    ErrorCategory::Other,
                    "missing_id",
                    "Graph created the user but returned no id",
                )),
            };
        }
        self.reconcile_create(anchor, failure(&reply), reply.ambiguous)
            .await
    }

    /// `POST /invitations` for the user's mail, then binds the invited guest to the anchor
    /// with a PATCH of the anchor attribute and the other attributes. Graph answers a
    /// repeated invitation of the same address with the same user, so a retry after a lost
    /// answer does not create a second guest.
    ///
    /// An existing *internal* user (created with `POST /users`, not invited) with the same
    /// `mail` is converted to B2B in place (`invitedUser.id`: same object id, UPN and groups)
    /// when `convert_internal_users` is on, and reported as a conflict naming that user
    /// otherwise. Users synchronised by Entra Connect and users bound to another anchor are
    /// never taken over.
    async fn create_by_invitation(
        &self,
        anchor: &Anchor,
        attributes: &Attributes,
    ) -> Result<OperationOutcome, TargetError> {
        let mail = attributes
            .get("mail")
            .and_then(|v| v.first())
            .cloned()
            .ok_or_else(|| {
                TargetError::new(
                    ErrorCategory::Validation,
                    "partnersync_MissingMail",
                    "creation by invitation needs a mail address",
                )
            })?;
        let existing = match self.existing_for_invitation(anchor, &mail).await? {
            ExistingUser::None => None,
            ExistingUser::Convert(id) => Some(id),
            // Bound by an earlier attempt whose answer was lost: bind again, no invitation.
            ExistingUser::Ours(id) => {
                let body = self.invitation_bind_body(anchor, attributes)?;
                self.patch(&id, &body).await?;
                return Ok(OperationOutcome::Created { id });
            }
        };
        let settings = &self.inner.config.invitation;
        let mut invitation = Map::new();
        invitation.insert("invitedUserEmailAddress".into(), Value::String(mail));
        invitation.insert(
            "inviteRedirectUrl".into(),
            Value::String(settings.redirect_url.clone()),
        );
        invitation.insert(
            "sendInvitationMessage".into(),
            Value::Bool(settings.send_message),
        );
        invitation.insert("invitedUserType".into(), Value::String("Guest".into()));
        if let Some(name) = attributes.get("displayName").and_then(|v| v.first()) {
            invitation.insert("invitedUserDisplayName".into(), Value::String(name.clone()));
        }
        if let Some(id) = &existing {
            let mut user = Map::new();
            user.insert("id".into(), Value::String(id.clone()));
            invitation.insert("invitedUser".into(), Value::Object(user));
        }
        let reply = self
            .inner
            .transport
            .send(Cost::Write, || {
                self.client().invitations().create_invitation(&invitation)
            })
            .await?;
        let v: Value = json_of(&reply)?;
        let id = v["invitedUser"]["id"]
            .as_str()
            .ok_or_else(|| {
                TargetError::new(
                    ErrorCategory::Other,
                    "missing_id",
                    "Graph created the invitation but returned no invitedUser.id",
                )
            })?
            .to_string();
        let body = self.invitation_bind_body(anchor, attributes)?;
        self.patch(&id, &body).await?;
        Ok(OperationOutcome::Created { id })
    }

    /// The PATCH that binds an invited (or converted) guest to its anchor. The invitation
    /// decides the UPN (`…#EXT#@tenant`, or the converted user's own) and the mail; the rest
    /// is ours. Conversion keeps `userType` (graph.md §4.3), so it is set to Guest unless the
    /// rules say otherwise.
    fn invitation_bind_body(
        &self,
        anchor: &Anchor,
        attributes: &Attributes,
    ) -> Result<Map<String, Value>, TargetError> {
        let mut rest = attributes.clone();
        rest.remove("userPrincipalName");
        rest.remove("mail");
        let mut body = self.adopt_body(anchor, &rest)?;
        body.entry("userType")
            .or_insert_with(|| Value::String("Guest".into()));
        Ok(body)
    }

    /// The PATCH that binds an existing user to `anchor` (the anchor attribute) and sets
    /// `changes`.
    fn adopt_body(
        &self,
        anchor: &Anchor,
        changes: &Attributes,
    ) -> Result<Map<String, Value>, TargetError> {
        let mut body = users::body_of(changes)?;
        body.insert(
            self.anchor_name().to_string(),
            Value::String(anchor.to_immutable_id()),
        );
        Ok(body)
    }

    /// What already exists with this mail: nothing (or an unbound B2B guest, which the
    /// invitation returns), an internal user to convert in place, or our own user bound by an
    /// earlier attempt. Errors for users that must not be taken over.
    async fn existing_for_invitation(
        &self,
        anchor: &Anchor,
        mail: &str,
    ) -> Result<ExistingUser, TargetError> {
        let mut select = self.select();
        select.extend(["creationType", "externalUserState", "onPremisesSyncEnabled"]);
        let filter = format!("mail eq {}", users::odata_string(mail));
        let found = self.list_select(false, &filter, &select).await?;
        let conflict = |message: String| {
            Err(TargetError::new(
                ErrorCategory::Conflict,
                "partnersync_ExistingUser",
                format!("{message} [conflicting property: mail]"),
            ))
        };
        let attribute = self.anchor_name();
        // Compared as anchors, not strings: a UUID-text anchor another tool wrote in upper
        // case is still ours.
        if let Some(id) = found
            .iter()
            .find(|u| {
                u.get(attribute)
                    .and_then(Value::as_str)
                    .and_then(|id| Anchor::from_immutable_id(id).ok())
                    .as_ref()
                    == Some(anchor)
            })
            .and_then(|u| u.get("id").and_then(Value::as_str))
        {
            return Ok(ExistingUser::Ours(id.to_string()));
        }
        let candidates: Vec<&Value> = found.iter().collect();
        let describe = |u: &Value| {
            format!(
                "{} ({})",
                u.get("userPrincipalName")
                    .and_then(Value::as_str)
                    .unwrap_or("?"),
                u.get("id").and_then(Value::as_str).unwrap_or("?")
            )
        };
        match candidates.as_slice() {
            [] => Ok(ExistingUser::None),
            [user] => {
                let b2b = user.get("creationType").and_then(Value::as_str) == Some("Invitation")
                    || user.get("externalUserState").is_some_and(|v| !v.is_null());
                let bound = user.get(self.anchor_name()).is_some_and(|v| !v.is_null());
                if bound {
                    return conflict(format!(
                        "user {} already has mail {mail} and is bound to another source anchor",
                        describe(user)
                    ));
                }
                if b2b {
                    // Re-inviting returns that guest; the PATCH binds it.
                    return Ok(ExistingUser::None);
                }
                if user.get("onPremisesSyncEnabled") == Some(&Value::Bool(true)) {
                    return conflict(format!(
                        "internal user {} already has mail {mail} and is synchronised from \
                         on-premises AD by Entra Connect; Graph cannot convert it to B2B",
                        describe(user)
                    ));
                }
                if !self.inner.config.invitation.convert_internal_users {
                    return conflict(format!(
                        "internal user {} already has mail {mail}; set convert_internal_users \
                         = true in [target] to convert it to a B2B guest in place (same \
                         object id, UPN and groups; its Entra password stops being used), or \
                         remove that user",
                        describe(user)
                    ));
                }
                match user.get("id").and_then(Value::as_str) {
                    Some(id) => Ok(ExistingUser::Convert(id.to_string())),
                    None => Ok(ExistingUser::None),
                }
            }
            several => conflict(format!(
                "{} users already have mail {mail}: {}",
                several.len(),
                several
                    .iter()
                    .map(|u| describe(u))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }

    /// An earlier attempt that lost its connection (or got a 5xx) may have created the user:
    /// if the anchor now conflicts, the user bound to it is ours. Graph keeps extension
    /// properties non-unique, so with an extension anchor the retry conflicts on the UPN
    /// instead; any conflict then means "look the anchor up".
    async fn reconcile_create(
        &self,
        anchor: &Anchor,
        err: TargetError,
        ambiguous: bool,
    ) -> Result<OperationOutcome, TargetError> {
        if ambiguous
            && err.category == ErrorCategory::Conflict
            && (self.anchor_attribute().is_extension()
                || error::conflicting_property(&err)
                    .is_some_and(|p| p.contains(AnchorAttribute::IMMUTABLE_ID)))
        {
            if let Some(user) = self.find(anchor).await? {
                return Ok(OperationOutcome::Created { id: user.id });
            }
        }
        Err(err)
    }

    /// An operation as a `$batch` item.
    fn prepare(&self, op: &Operation) -> Result<batch::Item, TargetError> {
        let item = |method, url: String, body: Option<Value>, outcome| batch::Item {
            method,
            url,
            body,
            outcome,
        };
        Ok(match op {
            Operation::Create {
                anchor,
                mode,
                attributes,
            } => match mode {
                CreationMode::Direct => item(
                    "POST",
                    "/users".into(),
                    Some(Value::Object(self.create_body(anchor, attributes)?)),
                    OperationOutcome::Created { id: String::new() },
                ),
                CreationMode::Invitation => {
                    return Err(TargetError::new(
                        ErrorCategory::Other,
                        "partnersync_NotBatchable",
                        "creation by invitation takes two requests and is not batched",
                    ))
                }
            },
            Operation::Update { id, changes } => item(
                "PATCH",
                format!("/users/{}", batch::segment(id)),
                Some(Value::Object(users::body_of(changes)?)),
                OperationOutcome::Updated,
            ),
            Operation::Adopt {
                id,
                anchor,
                changes,
            } => item(
                "PATCH",
                format!("/users/{}", batch::segment(id)),
                Some(Value::Object(self.adopt_body(anchor, changes)?)),
                OperationOutcome::Updated,
            ),
            Operation::Disable { id } => item(
                "PATCH",
                format!("/users/{}", batch::segment(id)),
                Some(serde_json::json!({"accountEnabled": false})),
                OperationOutcome::Disabled,
            ),
            Operation::Delete { id } => item(
                "DELETE",
                format!("/users/{}", batch::segment(id)),
                None,
                OperationOutcome::Deleted,
            ),
            Operation::Restore { id } => item(
                "POST",
                format!("/directory/deletedItems/{}/restore", batch::segment(id)),
                None,
                OperationOutcome::Restored,
            ),
            Operation::PermanentDelete { id } => item(
                "DELETE",
                format!("/directory/deletedItems/{}", batch::segment(id)),
                None,
                OperationOutcome::PermanentlyDeleted,
            ),
        })
    }

    /// Applies operations in `$batch` requests of up to `batch_size`, batches in parallel
    /// (bounded by the transport), items retried per item.
    async fn apply_batched(
        &self,
        operations: &[Operation],
        batch_size: usize,
    ) -> Vec<Result<OperationOutcome, TargetError>> {
        let mut results: Vec<Option<Result<OperationOutcome, TargetError>>> =
            (0..operations.len()).map(|_| None).collect();
        let mut items = Vec::new();
        let mut standalone = Vec::new();
        for (index, op) in operations.iter().enumerate() {
            if matches!(
                op,
                Operation::Create {
                    mode: CreationMode::Invitation,
                    ..
                }
            ) {
                // Two dependent requests (invite, then bind): not a batch item.
                standalone.push((index, op));
                continue;
            }
            match self.prepare(op) {
                Ok(item) => items.push((index, op, item)),
                Err(e) => results[index] = Some(Err(e)),
            }
        }
        let batched =
            futures::future::join_all(items.chunks(batch_size).map(|chunk| self.run_batch(chunk)));
        let single = futures::future::join_all(
            standalone
                .iter()
                .map(|(index, op)| async move { (*index, self.apply_one(op).await) }),
        );
        let (done, single) = futures::future::join(batched, single).await;
        for (index, result) in done.into_iter().flatten().chain(single) {
            if let Some(slot) = results.get_mut(index) {
                *slot = Some(result);
            }
        }
        results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(TargetError::new(
                        ErrorCategory::Other,
                        "partnersync_NoResult",
                        "the batch returned no result for this operation",
                    ))
                })
            })
            .collect()
    }

    async fn run_batch(
        &self,
        chunk: &[(usize, &Operation, batch::Item)],
    ) -> Vec<(usize, Result<OperationOutcome, TargetError>)> {
        let transport = &self.inner.transport;
        let mut out = Vec::with_capacity(chunk.len());
        let mut pending: Vec<usize> = (0..chunk.len()).collect();
        // Items whose earlier attempt may have been carried out.
        let mut ambiguous = vec![false; chunk.len()];
        let mut round: u32 = 0;
        while !pending.is_empty() {
            round += 1;
            let sent: Vec<(usize, &batch::Item)> =
                pending.iter().map(|&p| (p, &chunk[p].2)).collect();
            let body = batch::request_body(&sent);
            let reply = transport
                .send(Cost::Writes(sent.len()), || self.client().batch(&body))
                .await;
            drop(body);
            let reply = match reply {
                Ok(r) if r.is_success() => r,
                Ok(r) => {
                    let err = failure(&r);
                    out.extend(pending.iter().map(|&p| (chunk[p].0, Err(err.clone()))));
                    break;
                }
                Err(err) => {
                    out.extend(pending.iter().map(|&p| (chunk[p].0, Err(err.clone()))));
                    break;
                }
            };
            if reply.ambiguous {
                pending.iter().for_each(|&p| ambiguous[p] = true);
            }
            // Items carry Graph's early warning in their own headers.
            if let Some(p) = batch::limit_percentage(&reply.body) {
                transport.pressure(p);
            }
            let mut retry = Vec::new();
            let mut wait: Option<std::time::Duration> = None;
            for (p, result) in batch::parse_response(&reply.body, &pending) {
                let (index, op, item) = &chunk[p];
                match result {
                    batch::ItemResult::Done { status, body } => {
                        let r = batch::outcome_of(item, status, &body);
                        out.push((*index, self.settle(op, r, ambiguous[p]).await));
                    }
                    batch::ItemResult::Retry {
                        after,
                        status,
                        body,
                    } => {
                        let gave_up = if round >= transport.max_attempts() {
                            Some(format!("gave up after {round} attempts"))
                        } else if !transport.spend_retry() {
                            Some("retry budget exhausted: Graph keeps failing, giving up without further attempts".to_string())
                        } else {
                            None
                        };
                        if let Some(why) = gave_up {
                            let r = batch::outcome_of(item, status, &body).map_err(|mut e| {
                                e.message.push_str(&format!(" ({why})"));
                                e
                            });
                            out.push((*index, r));
                            continue;
                        }
                        if status != 429 {
                            ambiguous[p] = true;
                        }
                        let delay = after.unwrap_or_else(|| transport.backoff(round - 1));
                        if status == 429 {
                            transport.throttled(delay);
                        }
                        wait = Some(wait.map_or(delay, |w| w.max(delay)));
                        transport.note_retry();
                        retry.push(p);
                    }
                }
            }
            pending = retry;
            if let Some(delay) = wait {
                tokio::time::sleep(delay).await;
            }
        }
        out
    }

    /// Turns an item's result into the operation's, resolving what a lost earlier attempt
    /// may have done.
    async fn settle(
        &self,
        op: &Operation,
        result: Result<OperationOutcome, TargetError>,
        ambiguous: bool,
    ) -> Result<OperationOutcome, TargetError> {
        match (op, result) {
            (Operation::Create { anchor, .. }, Err(e)) => {
                self.reconcile_create(anchor, e, ambiguous).await
            }
            (Operation::Delete { .. }, Err(e))
                if ambiguous && e.category == ErrorCategory::NotFound =>
            {
                Ok(OperationOutcome::Deleted)
            }
            (Operation::PermanentDelete { .. }, Err(e))
                if ambiguous && e.category == ErrorCategory::NotFound =>
            {
                Ok(OperationOutcome::PermanentlyDeleted)
            }
            (_, r) => r,
        }
    }
}

#[cfg(feature = "emulator")]
fn build_client(
    graph_config: GraphClientConfiguration,
    config: &GraphConfig,
) -> Result<GraphClient, GraphError> {
    match &config.endpoint {
        Some(endpoint) => {
            let url = parse_endpoint(&endpoint.graph_url)?;
            let mut client = GraphClient::from(graph_config.https_only(url.scheme() == "https"));
            client.use_test_endpoint(&url);
            Ok(client)
        }
        None => cloud_client(graph_config, config),
    }
}

#[cfg(not(feature = "emulator"))]
fn build_client(
    graph_config: GraphClientConfiguration,
    config: &GraphConfig,
) -> Result<GraphClient, GraphError> {
    match &config.endpoint {
        Some(endpoint) => {
            let url = parse_endpoint(&endpoint.graph_url)?;
            let known = [
                NationalCloud::Global,
                NationalCloud::UsGov,
                NationalCloud::UsGovDod,
                NationalCloud::China,
            ]
            .iter()
            .any(|c| {
                Url::parse(c.graph_url())
                    .ok()
                    .and_then(|u| u.host_str().map(str::to_owned))
                    == url.host_str().map(str::to_owned)
            });
            if url.scheme() != "https" || !known {
                return Err(GraphError::Config(format!(
                    "endpoint {url} is not a Microsoft Graph host; other endpoints (the emulator) \
                     need partnersync-graph's `emulator` feature"
                )));
            }
            let mut client = GraphClient::from(graph_config);
            client.use_endpoint(&url);
            Ok(client)
        }
        None => cloud_client(graph_config, config),
    }
}

fn cloud_client(
    graph_config: GraphClientConfiguration,
    config: &GraphConfig,
) -> Result<GraphClient, GraphError> {
    let url = parse_endpoint(config.cloud.graph_url())?;
    let mut client = GraphClient::from(graph_config);
    client.use_endpoint(&url);
    Ok(client)
}

fn parse_endpoint(text: &str) -> Result<Url, GraphError> {
    // A trailing slash would make graph-rs-sdk send `…/v1.0//users` (graph.md §5.2).
    let url = Url::parse(text.trim_end_matches('/'))
        .map_err(|e| GraphError::Config(format!("invalid Graph endpoint {text:?}: {e}")))?;
    if url.query().is_some() || !matches!(url.scheme(), "http" | "https") {
        return Err(GraphError::Config(format!(
            "invalid Graph endpoint {text:?}: expected scheme://host[:port]/v1.0"
        )));
    }
    Ok(url)
}

fn check(reply: &Reply) -> Result<(), TargetError> {
    if reply.is_success() {
        Ok(())
    } else {
        Err(failure(reply))
    }
}

fn failure(reply: &Reply) -> TargetError {
    let mut err = error::from_response(reply.status, &reply.body);
    if let Some(why) = &reply.gave_up {
        err.message.push_str(&format!(" ({why})"));
    }
    err
}

/// A delete whose earlier attempt may have gone through counts as done on 404.
fn gone_is_done(reply: &Reply, outcome: OperationOutcome) -> Result<OperationOutcome, TargetError> {
    if reply.status == 404 && reply.ambiguous {
        return Ok(outcome);
    }
    check(reply).map(|_| outcome)
}

fn json_of<T: serde::de::DeserializeOwned>(reply: &Reply) -> Result<T, TargetError> {
    check(reply)?;
    serde_json::from_slice(&reply.body).map_err(|e| {
        TargetError::new(
            ErrorCategory::Other,
            "invalid_response",
            format!("Graph answered {} with unexpected JSON: {e}", reply.status),
        )
    })
}

/// A user from Graph JSON, its anchor read from `anchor_attribute`.
fn target_user(value: Value, deleted: bool, anchor_attribute: &str) -> TargetUser {
    let Value::Object(map) = value else {
        return TargetUser {
            id: String::new(),
            anchor: None,
            attributes: Attributes::new(),
            enabled: false,
            deleted,
        };
    };
    let id = map
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let anchor = map
        .get(anchor_attribute)
        .and_then(Value::as_str)
        .and_then(|s| Anchor::from_immutable_id(s).ok());
    let enabled = map
        .get("accountEnabled")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    TargetUser {
        id,
        anchor,
        attributes: users::attributes_of(&map),
        enabled,
        deleted,
    }
}

#[async_trait]
impl TargetDirectory for GraphTarget {
    async fn list_managed(&self) -> Result<Vec<TargetUser>, TargetError> {
        let mut out = Vec::new();
        self.list_managed_each(&mut |u| {
            out.push(u);
            Ok(())
        })
        .await?;
        Ok(out)
    }

    async fn list_managed_each(&self, each: &mut UserSink<'_>) -> Result<usize, TargetError> {
        let filter = format!("{} ne null", self.anchor_name());
        let select = self.select();
        let mut count = 0;
        for deleted in [false, true] {
            self.list_each(deleted, &filter, &select, &mut |v| {
                let u = self.user_of(v, deleted);
                if u.anchor.is_none() || u.id.is_empty() {
                    return Ok(());
                }
                count += 1;
                each(u)
            })
            .await?;
        }
        Ok(count)
    }

    async fn find_by_anchor(&self, anchor: &Anchor) -> Result<Option<TargetUser>, TargetError> {
        self.find(anchor).await
    }

    async fn find_by(&self, attribute: &str, value: &str) -> Result<Vec<TargetUser>, TargetError> {
        let property = if attribute.eq_ignore_ascii_case("userPrincipalName") {
            "userPrincipalName"
        } else if attribute.eq_ignore_ascii_case("mail") {
            "mail"
        } else {
            return Err(TargetError::new(
                ErrorCategory::Validation,
                "partnersync_UnsupportedMatchAttribute",
                format!(
                    "soft match by {attribute} is not supported; use userPrincipalName or mail"
                ),
            ));
        };
        // Graph compares strings case-insensitively; the literal is OData-escaped (O''Brien).
        let filter = format!("{property} eq {}", users::odata_string(value));
        Ok(self
            .list(false, &filter)
            .await?
            .into_iter()
            .map(|v| self.user_of(v, false))
            .filter(|u| !u.id.is_empty())
            .collect())
    }

    async fn delta_cookie(&self) -> Result<String, TargetError> {
        let page = self.delta_page(None).await?;
        page.delta_link.ok_or_else(|| {
            TargetError::new(
                ErrorCategory::Other,
                "invalid_response",
                "users/delta?$deltaToken=latest answered without an @odata.deltaLink",
            )
        })
    }

    async fn changes_since(
        &self,
        cookie: &str,
    ) -> Result<partnersync_target::TargetChanges, TargetError> {
        let mut link = self
            .own_link(cookie, "the saved delta cookie")
            .map_err(|e| {
                TargetError::new(ErrorCategory::Validation, "syncStateNotFound", e.message)
            })?;
        // The latest state per id, in first-seen order: a user may appear several times.
        let mut order: Vec<String> = Vec::new();
        let mut latest: std::collections::HashMap<String, DeltaEntry> =
            std::collections::HashMap::new();
        loop {
            let page = self.delta_page(Some(&link)).await?;
            for v in page.value {
                let Some(id) = v.get("id").and_then(Value::as_str).map(str::to_string) else {
                    continue;
                };
                let entry = match v.get("@removed").and_then(|r| r.get("reason")) {
                    // "changed": soft-deleted (restorable); "deleted": gone for good.
                    Some(reason) if reason.as_str() == Some("deleted") => DeltaEntry::Removed,
                    Some(_) => DeltaEntry::Deleted,
                    None => DeltaEntry::Changed(Box::new(self.user_of(v, false))),
                };
                if latest.insert(id.clone(), entry).is_none() {
                    order.push(id);
                }
            }
            match (page.next_link, page.delta_link) {
                (Some(next), _) => link = self.own_link(&next, "@odata.nextLink")?,
                (None, Some(delta)) => {
                    self.own_link(&delta, "@odata.deltaLink")?;
                    let mut changes = partnersync_target::TargetChanges {
                        cookie: delta,
                        ..Default::default()
                    };
                    for id in order {
                        match latest.remove(&id) {
                            Some(DeltaEntry::Changed(user)) => changes.changed.push(*user),
                            Some(DeltaEntry::Deleted) => changes.deleted.push(id),
                            Some(DeltaEntry::Removed) => changes.removed.push(id),
                            None => {}
                        }
                    }
                    return Ok(changes);
                }
                (None, None) => {
                    return Err(TargetError::new(
                        ErrorCategory::Other,
                        "invalid_response",
                        "a users/delta page had neither @odata.nextLink nor @odata.deltaLink",
                    ))
                }
            }
        }
    }

    async fn apply(&self, operations: &[Operation]) -> Vec<Result<OperationOutcome, TargetError>> {
        let batch_size = self.inner.config.batch_size.clamp(1, batch::MAX_BATCH);
        if batch_size == 1 || operations.len() == 1 {
            futures::future::join_all(operations.iter().map(|op| self.apply_one(op))).await
        } else {
            self.apply_batched(operations, batch_size).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_national_cloud_builds_and_debug_hides_the_secret() {
        let path = std::env::temp_dir().join(format!("ps-graph-unit-{}", std::process::id()));
        assert!(std::fs::write(&path, "top-secret~value\n").is_ok());
        for cloud in [
            NationalCloud::Global,
            NationalCloud::UsGov,
            NationalCloud::UsGovDod,
            NationalCloud::China,
        ] {
            let mut config = GraphConfig::new("tenant", "client", SecretSource::File(path.clone()));
            config.cloud = cloud;
            let target = GraphTarget::new(config);
            assert!(target.is_ok(), "{cloud:?}");
            let text = format!("{target:?}");
            assert!(!text.contains("top-secret"));
            assert!(text.contains(cloud.graph_url()));
        }
        let _ = std::fs::remove_file(&path);
        let missing = SecretSource::Env("PARTNERSYNC_TEST_UNSET_SECRET_VAR".into()).load();
        assert!(matches!(missing, Err(GraphError::Config(_))));
    }

    #[test]
    fn bad_endpoints_are_config_errors() {
        assert!(parse_endpoint("ftp://x/v1.0").is_err());
        assert!(parse_endpoint("https://graph.microsoft.com/v1.0?x=1").is_err());
        assert!(parse_endpoint("not a url").is_err());
        assert_eq!(
            parse_endpoint("http://127.0.0.1:1/v1.0/")
                .map(|u| u.to_string())
                .ok(),
            Some("http://127.0.0.1:1/v1.0".to_string())
        );
    }
}
