//! The Graph surface: routing under `/v1.0` (and `/beta`), permission checks, throttling, and
//! the handlers for users, deleted items, delta, invitations, `$batch` and a few tenant reads.

use std::time::Duration;

use serde_json::{json, Map, Value};

use crate::auth::AppContext;
use crate::config::{QueryMode, Settings};
use crate::error::GraphError;
use crate::faults::Fault;
use crate::filter::{self, Expr};
use crate::query::QueryOptions;
use crate::schema::{self, Sort};
use crate::server::{lock, Shared};
use crate::store::{self, Directory, UserRecord, WriteMode};
use crate::throttle::{format_retry_after, Charge, Verdict};
use crate::util::{b64url_decode, b64url_encode, percent_decode};

/// One request as the handlers see it (outer HTTP requests and `$batch` items alike).
pub(crate) struct ApiRequest<'a> {
    pub method: &'a str,
    /// Raw (still percent-encoded) path, starting with `/v1.0` or `/beta`.
    pub path: &'a str,
    /// Raw query string without `?`.
    pub query: &'a str,
    /// Header names in lower case.
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

impl ApiRequest<'_> {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn consistency_eventual(&self) -> bool {
        self.header("consistencylevel")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("eventual"))
    }

    fn json_body(&self) -> Result<Value, GraphError> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Err(GraphError::invalid_json());
        }
        serde_json::from_slice(self.body).map_err(|_| GraphError::invalid_json())
    }
}

/// A response body.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Body {
    Empty,
    Json(Value),
    Text(String),
}

/// A successful (or throttled-by-design) response.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ApiResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Body,
}

impl ApiResponse {
    fn json(status: u16, v: Value) -> Self {
        ApiResponse {
            status,
            headers: Vec::new(),
            body: Body::Json(v),
        }
    }

    fn empty(status: u16) -> Self {
        ApiResponse {
            status,
            headers: Vec::new(),
            body: Body::Empty,
        }
    }
}

/// The JSON content type Graph answers with.
pub(crate) const ODATA_JSON: &str =
    "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8";

#[derive(Debug, Clone, PartialEq)]
enum Route {
    Users,
    UsersCount,
    UsersDelta,
    GetByIds,
    ConvertToInternal { raw: String, key: String },
    User { raw: String, key: String },
    DeletedRoot,
    DeletedList,
    DeletedItem { raw: String, id: String },
    Restore { raw: String, id: String },
    Invitations,
    Batch,
    Organization,
    Domains,
    Me,
}

fn is_delta(seg: &str) -> bool {
    let s = seg.to_ascii_lowercase();
    matches!(
        s.as_str(),
        "delta" | "delta()" | "microsoft.graph.delta" | "microsoft.graph.delta()"
    )
}

fn is_user_cast(seg: &str) -> bool {
    seg.eq_ignore_ascii_case("graph.user") || seg.eq_ignore_ascii_case("microsoft.graph.user")
}

/// Splits the path after the version segment into (raw, decoded) segments.
fn segments(rest: &str) -> Result<Vec<(String, String)>, GraphError> {
    rest.split('/')
        .filter(|s| !s.is_empty())
        .map(|raw| {
            percent_decode(raw, false)
                .map(|d| (raw.to_string(), d))
                .ok_or_else(|| GraphError::segment_not_found(raw))
        })
        .collect()
}

/// `users('key')` key syntax: returns the key with doubled quotes undone.
fn key_syntax(seg: &str) -> Option<String> {
    let lower = seg.to_ascii_lowercase();
    let inner = lower
        .starts_with("users(")
        .then(|| &seg["users(".len()..])?
        .strip_suffix(')')?;
    let inner = inner.trim();
    let unquoted = inner.strip_prefix('\'')?.strip_suffix('\'')?;
    Some(unquoted.replace("''", "'"))
}

fn route(rest: &str) -> Result<Route, GraphError> {
    let segs = segments(rest)?;
    let names: Vec<&str> = segs.iter().map(|(_, d)| d.as_str()).collect();
    let lower: Vec<String> = names.iter().map(|s| s.to_ascii_lowercase()).collect();
    let l: Vec<&str> = lower.iter().map(String::as_str).collect();
    let unknown = |i: usize| GraphError::segment_not_found(&segs[i].0);
    match l.as_slice() {
        [] => Err(GraphError::odata("Invalid request: no resource segment.")),
        ["users"] => Ok(Route::Users),
        ["users", "$count"] => Ok(Route::UsersCount),
        ["users" | "directoryobjects", "getbyids" | "microsoft.graph.getbyids"] => {
            Ok(Route::GetByIds)
        }
        ["users", d] if is_delta(d) => Ok(Route::UsersDelta),
        ["users", _] => {
            let key = names[1].to_string();
            if key.starts_with('$') {
                return Err(unknown(1));
            }
            Ok(Route::User {
                raw: segs[1].0.clone(),
                key,
            })
        }
        [one] if one.starts_with("users(") => match key_syntax(names[0]) {
            Some(key) => Ok(Route::User {
                raw: key.clone(),
                key,
            }),
            None => Err(unknown(0)),
        },
        ["users", _, "convertexternaltointernalmemberuser"
        | "microsoft.graph.convertexternaltointernalmemberuser"] => Ok(Route::ConvertToInternal {
            raw: segs[1].0.clone(),
            key: names[1].to_string(),
        }),
        ["users", _, ..] => Err(unknown(2)),
        ["directory", "deleteditems"] => Ok(Route::DeletedRoot),
        ["directory", "deleteditems", c] if is_user_cast(c) => Ok(Route::DeletedList),
        ["directory", "deleteditems", _] => Ok(Route::DeletedItem {
            raw: segs[2].0.clone(),
            id: names[2].to_string(),
        }),
        ["directory", "deleteditems", _, c] if is_user_cast(c) => Ok(Route::DeletedItem {
            raw: segs[2].0.clone(),
            id: names[2].to_string(),
        }),
        ["directory", "deleteditems", _, "restore" | "microsoft.graph.restore"] => {
            Ok(Route::Restore {
                raw: segs[2].0.clone(),
                id: names[2].to_string(),
            })
        }
        ["directory", "deleteditems", _, ..] => Err(unknown(3)),
        ["directory", ..] if l.len() > 1 => Err(unknown(1)),
        ["invitations"] => Ok(Route::Invitations),
        ["$batch"] => Ok(Route::Batch),
        ["organization"] => Ok(Route::Organization),
        ["domains"] => Ok(Route::Domains),
        ["me", ..] => Ok(Route::Me),
        _ => Err(unknown(0)),
    }
}

enum Need {
    Read,
    Write,
    Invite,
    Convert,
}

/// Handles one Graph request (not `$batch`, which [`batch`] handles).
pub(crate) fn handle(
    shared: &Shared,
    app: &AppContext,
    settings: &Settings,
    req: &ApiRequest<'_>,
) -> Result<ApiResponse, GraphError> {
    let (prefix, rest) = if let Some(r) = strip_prefix_ci(req.path, "/v1.0") {
        ("/v1.0", r)
    } else if let Some(r) = strip_prefix_ci(req.path, "/beta") {
        ("/beta", r)
    } else {
        return Err(GraphError::odata("Invalid version."));
    };
    if !rest.is_empty() && !rest.starts_with('/') {
        return Err(GraphError::odata("Invalid version."));
    }
    let route = route(rest)?;
    let method = req.method;
    let q = QueryOptions::parse(req.query)?;

    // Which permission and what throttling charge.
    let (need, charge) = match (&route, method) {
        (Route::Users, "GET") => (Need::Read, list_cost(&q)),
        (Route::Users, "POST") => (Need::Write, write_charge()),
        (Route::UsersCount, "GET") => (Need::Read, cost(1)),
        (Route::GetByIds, "POST") => (Need::Read, cost(3)),
        (Route::ConvertToInternal { .. }, "POST") => {
            // A beta-only action: v1.0 does not know the segment.
            if prefix != "/beta" {
                return Err(GraphError::segment_not_found(
                    "convertExternalToInternalMemberUser",
                ));
            }
            (Need::Convert, write_charge())
        }
        (Route::UsersDelta, "GET") => (Need::Read, cost(2)),
        (Route::User { .. }, "GET") => (Need::Read, cost(1)),
        (Route::User { .. }, "PATCH" | "DELETE") => (Need::Write, write_charge()),
        (Route::DeletedRoot | Route::DeletedList, "GET") => (Need::Read, list_cost(&q)),
        (Route::DeletedItem { .. }, "GET") => (Need::Read, cost(1)),
        (Route::DeletedItem { .. }, "DELETE") => (Need::Write, write_charge()),
        (Route::Restore { .. }, "POST") => (Need::Write, write_charge()),
        (Route::Invitations, "POST") => (
            Need::Invite,
            Charge {
                invitation: true,
                ..write_charge()
            },
        ),
        (Route::Organization | Route::Domains, "GET") => (Need::Read, cost(1)),
        (Route::Me, _) => {
            return Err(GraphError::bad_request(
                "/me request is only valid with delegated authentication flow.",
            ))
        }
        // The outer `$batch` is handled before routing; here it can only be nested.
        (Route::Batch, "POST") => {
            return Err(GraphError::odata(
                "Nested $batch requests are not supported.",
            ))
        }
        _ => return Err(GraphError::method_not_allowed()),
    };
    let allowed = match need {
        Need::Read => app.can_read_users(),
        Need::Write => app.can_write_users(),
        Need::Invite => app.can_invite(),
        Need::Convert => app.can_convert_to_internal(),
    };
    if !allowed {
        return Err(GraphError::forbidden());
    }

    // Throttling.
    let users = lock(&shared.dir).active_count();
    let verdict = lock(&shared.throttle).check(
        &settings.throttling,
        &app.client_id,
        &shared.tenant.tenant_id,
        users,
        charge,
    );
    let limit_percentage = match verdict {
        Verdict::Throttled {
            retry_after_secs,
            scope,
            information,
        } => {
            return Err(too_many_requests(retry_after_secs, settings)
                .with_header("x-ms-throttle-scope", scope)
                .with_header("x-ms-throttle-information", information)
                .with_header("x-ms-resource-unit", charge.resource_units.to_string()))
        }
        Verdict::Allowed { limit_percentage } => limit_percentage,
    };

    let ctx = Ctx {
        shared,
        app,
        settings,
        prefix,
        rest,
    };
    let mut resp = match route {
        Route::Users if method == "GET" => ctx.list(req, &q, false),
        Route::Users => ctx.create(req, &q),
        Route::UsersCount => ctx.count(req, &q),
        Route::GetByIds => ctx.get_by_ids(req, &q),
        Route::ConvertToInternal { raw, key } => ctx.convert_to_internal(req, &raw, &key),
        Route::UsersDelta => ctx.delta(req, &q),
        Route::User { raw, key } => match method {
            "GET" => ctx.get_user(&raw, &key, &q),
            "PATCH" => ctx.patch_user(req, &raw, &key),
            _ => ctx.delete_user(&raw, &key),
        },
        Route::DeletedRoot => Err(GraphError::bad_request(
            "The OData cast segment is required: use /directory/deletedItems/microsoft.graph.user.",
        )),
        Route::DeletedList => ctx.list(req, &q, true),
        Route::DeletedItem { raw, id } => {
            if method == "GET" {
                ctx.get_deleted(&raw, &id, &q)
            } else {
                ctx.purge(&raw, &id)
            }
        }
        Route::Restore { raw, id } => ctx.restore(req, &raw, &id),
        Route::Invitations => ctx.invite(req),
        Route::Organization => Ok(ctx.organization()),
        Route::Domains => Ok(ctx.domains()),
        Route::Me | Route::Batch => Err(GraphError::method_not_allowed()),
    }?;
    resp.headers.push((
        "x-ms-resource-unit".into(),
        charge.resource_units.to_string(),
    ));
    if let Some(p) = limit_percentage {
        resp.headers
            .push(("x-ms-throttle-limit-percentage".into(), format!("{p:.1}")));
    }
    Ok(resp)
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    // `get` instead of slicing: the input may hold multi-byte characters (batch item urls).
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| s.get(prefix.len()..))
        .flatten()
}

fn cost(ru: u32) -> Charge {
    Charge {
        resource_units: ru,
        write: false,
        invitation: false,
    }
}

fn write_charge() -> Charge {
    Charge {
        resource_units: 1,
        write: true,
        invitation: false,
    }
}

/// `GET /users` costs 2; `$select` −1, `$top` < 20 −1; never below 1.
fn list_cost(q: &QueryOptions) -> Charge {
    let mut ru: i32 = 2;
    if q.has("$select") {
        ru -= 1;
    }
    if q.has("$expand") {
        ru += 1;
    }
    if q.get("$top")
        .and_then(|t| t.trim().parse::<i64>().ok())
        .is_some_and(|t| t < 20)
    {
        ru -= 1;
    }
    cost(ru.max(1) as u32)
}

/// Graph's 429 error.
pub(crate) fn too_many_requests(retry_after_secs: f64, settings: &Settings) -> GraphError {
    let mut e = GraphError::new(429, "TooManyRequests", "Please retry again later.");
    e.inner_extra = vec![
        ("code".into(), "429".into()),
        ("message".into(), "Please retry after".into()),
        ("status".into(), "429".into()),
    ];
    e.with_header(
        "Retry-After",
        format_retry_after(retry_after_secs, settings.throttling.retry_after),
    )
}

/// The error response for an injected status fault.
pub(crate) fn fault_error(
    status: u16,
    retry_after: Option<f64>,
    settings: &Settings,
) -> GraphError {
    let mut e = match status {
        429 => return too_many_requests(retry_after.unwrap_or(1.0), settings),
        500 => GraphError::new(
            500,
            "UnknownError",
            "An internal server error occurred. Please retry later.",
        ),
        502 => GraphError::new(
            502,
            "BadGateway",
            "The server received an invalid response from upstream.",
        ),
        503 => GraphError::new(
            503,
            "serviceNotAvailable",
            "The service is temporarily unavailable. Please retry later.",
        ),
        504 => GraphError::new(504, "UnknownError", "The request timed out."),
        s => GraphError::new(s, "UnknownError", "Injected fault."),
    };
    if let Some(r) = retry_after {
        e = e.with_header(
            "Retry-After",
            format_retry_after(r, settings.throttling.retry_after),
        );
    }
    e
}

// ---------------------------------------------------------------------------------------------
// Tokens for paging and delta

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct PageToken {
    /// Last seq returned (keyset paging in creation order).
    #[serde(default)]
    l: u64,
    /// Offset (paging over a sorted result).
    #[serde(default)]
    o: usize,
    /// The query was an advanced query.
    #[serde(default)]
    a: bool,
}

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct DeltaState {
    /// Changes after this version.
    v: u64,
    /// Up to this version (the round's snapshot).
    u: u64,
    /// `$select` of the first call.
    #[serde(default)]
    s: Option<Vec<String>>,
    /// `id eq` filter of the first call.
    #[serde(default)]
    f: Option<Vec<String>>,
    /// Phase: 0 changed users, 1 removed users.
    #[serde(default)]
    p: u8,
    #[serde(default)]
    l: u64,
    #[serde(default)]
    lv: u64,
    #[serde(default)]
    li: String,
    /// Token generation (admin expiry) and issue time.
    g: u64,
    i: i64,
}

fn encode_token<T: serde::Serialize>(t: &T) -> String {
    b64url_encode(serde_json::to_string(t).unwrap_or_default().as_bytes())
}

fn decode_token<T: serde::de::DeserializeOwned>(s: &str) -> Option<T> {
    b64url_decode(s.trim()).and_then(|b| serde_json::from_slice(&b).ok())
}

fn expired_page_token() -> GraphError {
    GraphError::bad_request(
        "The specified page token value has expired and can no longer be included in your request.",
    )
    .with_code("Directory_ExpiredPageToken")
}

impl GraphError {
    fn with_code(mut self, code: &'static str) -> Self {
        self.code = code;
        self
    }
}

// ---------------------------------------------------------------------------------------------
// Handlers

struct Ctx<'a> {
    shared: &'a Shared,
    app: &'a AppContext,
    settings: &'a Settings,
    prefix: &'static str,
    rest: &'a str,
}

/// Parses `$select`: canonical names, unknown names rejected, collection-forbidden → 501.
fn parse_select(q: &QueryOptions, collection: bool) -> Result<Option<Vec<String>>, GraphError> {
    let Some(raw) = q.get("$select") else {
        return Ok(None);
    };
    let mut out: Vec<String> = Vec::new();
    for name in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let canonical = if name == "*" {
            for p in schema::stored_props() {
                if !out.iter().any(|o| o == p.name) {
                    out.push(p.name.to_string());
                }
            }
            continue;
        } else if let Some(p) = schema::prop(name) {
            p.name.to_string()
        } else if schema::is_extension_property(name) {
            name.to_string()
        } else {
            return Err(GraphError::odata(format!(
                "Parsing OData Select and Expand failed: Could not find a property named '{name}' on type 'microsoft.graph.user'."
            )));
        };
        if collection && schema::collection_forbidden(&canonical) {
            return Err(GraphError::not_implemented());
        }
        if !out.contains(&canonical) {
            out.push(canonical);
        }
    }
    if out.is_empty() {
        return Ok(None);
    }
    Ok(Some(out))
}

fn reject_expand(q: &QueryOptions) -> Result<(), GraphError> {
    if let Some(e) = q.get("$expand") {
        let nav = [
            "manager",
            "directreports",
            "memberof",
            "transitivememberof",
            "ownedobjects",
            "registereddevices",
            "owneddevices",
            "createdobjects",
            "sponsors",
            "extensions",
        ];
        let first = e
            .split([',', '('])
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if nav.contains(&first.as_str()) {
            return Err(GraphError::not_implemented());
        }
        return Err(GraphError::odata(format!(
            "Parsing OData Select and Expand failed: Could not find a property named '{first}' on type 'microsoft.graph.user'."
        )));
    }
    Ok(())
}

/// `$search="prop:term" AND "prop:term"` with word-prefix matching.
#[derive(Debug)]
enum Search {
    Term(String, String),
    And(Box<Search>, Box<Search>),
    Or(Box<Search>, Box<Search>),
}

fn parse_search(s: &str) -> Result<Search, GraphError> {
    let bad = || GraphError::unsupported_query(format!("Invalid $search query: {s}"));
    let mut terms: Vec<Search> = Vec::new();
    let mut ops: Vec<bool> = Vec::new(); // true = AND
    let mut rest = s.trim();
    while !rest.is_empty() {
        let body = rest.strip_prefix('"').ok_or_else(bad)?;
        let end = body.find('"').ok_or_else(bad)?;
        let term = &body[..end];
        let (prop, value) = term.split_once(':').ok_or_else(bad)?;
        let p = schema::prop(prop.trim()).ok_or_else(bad)?;
        terms.push(Search::Term(
            p.name.to_string(),
            value.trim().to_lowercase(),
        ));
        rest = body[end + 1..].trim_start();
        if rest.is_empty() {
            break;
        }
        let (op, after) = rest.split_once(' ').ok_or_else(bad)?;
        match op {
            "AND" => ops.push(true),
            "OR" => ops.push(false),
            _ => return Err(bad()),
        }
        rest = after.trim_start();
    }
    let mut it = terms.into_iter();
    let mut acc = it.next().ok_or_else(bad)?;
    for (t, and) in it.zip(ops) {
        acc = if and {
            Search::And(Box::new(acc), Box::new(t))
        } else {
            Search::Or(Box::new(acc), Box::new(t))
        };
    }
    Ok(acc)
}

fn search_matches(s: &Search, rec: &UserRecord) -> bool {
    match s {
        Search::And(a, b) => search_matches(a, rec) && search_matches(b, rec),
        Search::Or(a, b) => search_matches(a, rec) || search_matches(b, rec),
        Search::Term(prop, term) => {
            let values: Vec<String> = match rec.props.get(prop) {
                Some(Value::String(v)) => vec![v.to_lowercase()],
                Some(Value::Array(a)) => a
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_lowercase)
                    .collect(),
                _ => Vec::new(),
            };
            values.iter().any(|v| {
                v.starts_with(term.as_str())
                    || v.split(|c: char| !c.is_alphanumeric())
                        .any(|w| w.starts_with(term.as_str()))
            })
        }
    }
}

struct ListPlan {
    select: Option<Vec<String>>,
    filter: Option<Expr>,
    search: Option<Search>,
    order: Option<(String, bool)>,
    top: usize,
    count: bool,
    advanced: bool,
}

impl<'a> Ctx<'a> {
    fn base(&self) -> String {
        format!("{}{}", self.shared.base_url, self.prefix)
    }

    fn strict(&self) -> bool {
        self.settings.query_mode == QueryMode::Strict
    }

    fn context(&self, what: &str) -> String {
        format!("{}/$metadata#{what}", self.base())
    }

    fn select_context(
        &self,
        entity_set: &str,
        select: &Option<Vec<String>>,
        entity: bool,
    ) -> String {
        let mut s = entity_set.to_string();
        if let Some(sel) = select {
            s = format!("{entity_set}({})", sel.join(","));
        }
        if entity {
            s.push_str("/$entity");
        }
        self.context(&s)
    }

    fn plan(
        &self,
        req: &ApiRequest<'_>,
        q: &QueryOptions,
        deleted: bool,
    ) -> Result<ListPlan, GraphError> {
        if q.has("$skip") {
            return Err(GraphError::bad_request(
                "'$skip' is not supported by the service.",
            ));
        }
        q.allow_only(&[
            "$select",
            "$filter",
            "$top",
            "$count",
            "$orderby",
            "$search",
            "$skiptoken",
            "$expand",
            "$format",
        ])?;
        reject_expand(q)?;
        let consistency = req.consistency_eventual();
        let count = q.count()?;
        let advanced = consistency && count;
        let select = parse_select(q, true)?;
        let top = q.top()?.unwrap_or(100);
        let filter = match q.get("$filter") {
            Some(f) => {
                let e = filter::parse(f)?;
                let needs = filter::classify(&e, self.strict())?;
                if let Some(message) = needs.advanced {
                    if !advanced {
                        return Err(GraphError::unsupported_query(message));
                    }
                }
                Some(e)
            }
            None => None,
        };
        let search = match q.get("$search") {
            Some(s) => {
                if !consistency {
                    return Err(GraphError::unsupported_query(
                        "Request with $search query parameter only works through MSGraph with a special request header: 'ConsistencyLevel: eventual'",
                    ));
                }
                Some(parse_search(s)?)
            }
            None => None,
        };
        let order = match q.get("$orderby") {
            Some(o) => {
                let mut parts = o.split_whitespace();
                let name = parts.next().unwrap_or("");
                let desc = match parts.next() {
                    None => false,
                    Some(d) if d.eq_ignore_ascii_case("asc") => false,
                    Some(d) if d.eq_ignore_ascii_case("desc") => true,
                    Some(_) => {
                        return Err(GraphError::odata(format!("Invalid $orderby clause '{o}'.")))
                    }
                };
                if o.contains(',') {
                    return Err(GraphError::unsupported_query(
                        "Sorting not supported for current query.",
                    ));
                }
                let prop = schema::prop(name).ok_or_else(|| {
                    GraphError::odata(format!(
                        "Could not find a property named '{name}' on type 'microsoft.graph.user'."
                    ))
                })?;
                let sort = if deleted && prop.name == "deletedDateTime" {
                    Sort::Advanced
                } else {
                    prop.sort
                };
                match sort {
                    Sort::No => {
                        return Err(GraphError::unsupported_query(
                            "Sorting not supported for current query.",
                        ))
                    }
                    Sort::Advanced if !advanced => {
                        return Err(GraphError::unsupported_query(
                            "Sorting not supported for current query.",
                        ))
                    }
                    _ => {}
                }
                if filter.is_some() && !advanced {
                    return Err(GraphError::unsupported_query(
                        "Sorting not supported for current query.",
                    ));
                }
                Some((prop.name.to_string(), desc))
            }
            None => None,
        };
        Ok(ListPlan {
            select,
            filter,
            search,
            order,
            top,
            count: advanced,
            advanced,
        })
    }

    fn list(
        &self,
        req: &ApiRequest<'_>,
        q: &QueryOptions,
        deleted: bool,
    ) -> Result<ApiResponse, GraphError> {
        // Next pages of advanced queries need the header again (checked before the query).
        let token: Option<PageToken> = match q.get("$skiptoken") {
            Some(t) => Some(decode_token(t).ok_or_else(expired_page_token)?),
            None => None,
        };
        if let Some(t) = &token {
            if t.a && self.strict() && !req.consistency_eventual() {
                return Err(GraphError::unsupported_query("Unsupported Query."));
            }
        }
        let plan = self.plan(req, q, deleted)?;
        let mut dir = lock(&self.shared.dir);
        if deleted {
            dir.purge_expired(self.settings.deleted_retention_secs);
        }
        let source = if deleted { &dir.deleted } else { &dir.users };
        let lag = i64::try_from(self.settings.replication_lag_ms).unwrap_or(i64::MAX);
        let visible_before = crate::util::now_millis().saturating_sub(lag);
        let keep = |r: &&UserRecord| {
            (lag == 0 || deleted || r.created_ms <= visible_before)
                && plan
                    .filter
                    .as_ref()
                    .map_or(true, |f| filter::matches(f, &r.props))
                && plan.search.as_ref().map_or(true, |s| search_matches(s, r))
        };
        let (page, more, total, start): (Vec<&UserRecord>, bool, usize, usize) =
            if let Some(candidates) = (!deleted)
                .then(|| plan.filter.as_ref().and_then(filter::index_keys))
                .flatten()
            {
                // Equality on id / UPN: answer from the indexes instead of scanning.
                let mut seqs: Vec<u64> = candidates
                    .iter()
                    .filter_map(|k| match k {
                        filter::IndexKey::Id(v) | filter::IndexKey::Upn(v) => dir.find(v),
                        filter::IndexKey::ImmutableId(v) => dir.find_by_immutable_id(v),
                    })
                    .collect();
                seqs.sort_unstable();
                seqs.dedup();
                let mut matching: Vec<&UserRecord> = seqs
                    .iter()
                    .filter_map(|s| source.get(s))
                    .filter(keep)
                    .collect();
                if let Some((prop, desc)) = &plan.order {
                    sort_records(&mut matching, prop, *desc);
                }
                let start = match &token {
                    None => 0,
                    Some(t) if plan.order.is_some() => t.o,
                    Some(t) => matching.partition_point(|r| r.seq <= t.l),
                };
                let page: Vec<&UserRecord> = matching
                    .iter()
                    .skip(start)
                    .take(plan.top)
                    .copied()
                    .collect();
                let more = start.saturating_add(page.len()) < matching.len();
                (page, more, matching.len(), start)
            } else if plan.order.is_none() && !plan.count {
                // Keyset paging in creation order: only this page (and one look-ahead) is read.
                let after = token.as_ref().map_or(0, |t| t.l);
                let mut it = source
                    .range(after.saturating_add(1)..)
                    .map(|(_, r)| r)
                    .filter(keep);
                let page: Vec<&UserRecord> = it.by_ref().take(plan.top).collect();
                let more = page.len() == plan.top && it.next().is_some();
                (page, more, 0, 0)
            } else {
                let mut matching: Vec<&UserRecord> = source.values().filter(keep).collect();
                if let Some((prop, desc)) = &plan.order {
                    sort_records(&mut matching, prop, *desc);
                }
                let start = match (&token, &plan.order) {
                    (None, _) => 0,
                    (Some(t), Some(_)) => t.o,
                    (Some(t), None) => matching.partition_point(|r| r.seq <= t.l),
                };
                let page: Vec<&UserRecord> = matching
                    .iter()
                    .skip(start)
                    .take(plan.top)
                    .copied()
                    .collect();
                let more = start.saturating_add(page.len()) < matching.len();
                (page, more, matching.len(), start)
            };
        let values: Vec<Value> = page
            .iter()
            .map(|r| {
                let mut m = store::project(r, plan.select.as_deref());
                if deleted && plan.select.is_none() {
                    m.insert(
                        "deletedDateTime".into(),
                        r.props
                            .get("deletedDateTime")
                            .cloned()
                            .unwrap_or(Value::Null),
                    );
                }
                Value::Object(m)
            })
            .collect();
        let mut body = Map::new();
        let set = if deleted {
            "directoryObjects/microsoft.graph.user"
        } else {
            "users"
        };
        body.insert(
            "@odata.context".into(),
            json!(self.select_context(set, &plan.select, false)),
        );
        if plan.count {
            body.insert("@odata.count".into(), json!(total));
        }
        if more {
            let next = PageToken {
                l: page.last().map(|r| r.seq).unwrap_or(0),
                o: start.saturating_add(page.len()),
                a: plan.advanced,
            };
            let kept = q.encode_without(&["$skiptoken"]);
            let sep = if kept.is_empty() { "" } else { "&" };
            body.insert(
                "@odata.nextLink".into(),
                json!(format!(
                    "{}{}?{kept}{sep}$skiptoken={}",
                    self.base(),
                    self.rest,
                    encode_token(&next)
                )),
            );
        }
        body.insert("value".into(), Value::Array(values));
        Ok(ApiResponse::json(200, Value::Object(body)))
    }

    fn count(&self, req: &ApiRequest<'_>, q: &QueryOptions) -> Result<ApiResponse, GraphError> {
        if !req.consistency_eventual() {
            return Err(GraphError::bad_request(
                "$count is not currently supported.",
            ));
        }
        q.allow_only(&["$filter", "$search"])?;
        let filter = match q.get("$filter") {
            Some(f) => {
                let e = filter::parse(f)?;
                filter::classify(&e, self.strict())?;
                Some(e)
            }
            None => None,
        };
        let search = q.get("$search").map(parse_search).transpose()?;
        let lag = i64::try_from(self.settings.replication_lag_ms).unwrap_or(i64::MAX);
        let visible_before = crate::util::now_millis().saturating_sub(lag);
        let dir = lock(&self.shared.dir);
        let n = dir
            .users
            .values()
            .filter(|r| lag == 0 || r.created_ms <= visible_before)
            .filter(|r| {
                filter
                    .as_ref()
                    .map_or(true, |f| filter::matches(f, &r.props))
            })
            .filter(|r| search.as_ref().map_or(true, |s| search_matches(s, r)))
            .count();
        Ok(ApiResponse {
            status: 200,
            headers: vec![("Content-Type".into(), "text/plain".into())],
            body: Body::Text(n.to_string()),
        })
    }

    /// `POST /directoryObjects/getByIds` (and `/users/getByIds`): users among `ids`, unknown
    /// ids silently left out, at most 1,000 ids.
    fn get_by_ids(
        &self,
        req: &ApiRequest<'_>,
        q: &QueryOptions,
    ) -> Result<ApiResponse, GraphError> {
        q.allow_only(&["$select"])?;
        let select = parse_select(q, true)?;
        let body = req.json_body()?;
        let ids: Vec<String> = match body.get("ids").and_then(Value::as_array) {
            Some(a) => a
                .iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<_>>()
                .ok_or_else(|| {
                    GraphError::bad_request("Invalid value specified for property 'ids'.")
                })?,
            None => return Err(GraphError::bad_request("The 'ids' parameter is required.")),
        };
        if ids.len() > 1_000 {
            return Err(GraphError::bad_request(
                "The number of ids exceeds the maximum of 1000.",
            ));
        }
        let wants_users = match body.get("types").and_then(Value::as_array) {
            None => true,
            Some(types) => types.iter().filter_map(Value::as_str).any(|t| {
                let t = t.trim_start_matches("microsoft.graph.");
                t.eq_ignore_ascii_case("user") || t.eq_ignore_ascii_case("directoryObject")
            }),
        };
        let dir = lock(&self.shared.dir);
        let mut value = Vec::new();
        if wants_users {
            for id in &ids {
                let Some(rec) = dir
                    .find(id)
                    .filter(|_| crate::util::is_guid(id))
                    .and_then(|s| dir.users.get(&s))
                else {
                    continue;
                };
                let mut m = store::project(rec, select.as_deref());
                m.insert("@odata.type".into(), json!("#microsoft.graph.user"));
                m.insert("id".into(), json!(rec.id()));
                value.push(Value::Object(m));
            }
        }
        Ok(ApiResponse::json(
            200,
            json!({"@odata.context": self.context("directoryObjects"), "value": value}),
        ))
    }

    fn convert_to_internal(
        &self,
        req: &ApiRequest<'_>,
        raw: &str,
        key: &str,
    ) -> Result<ApiResponse, GraphError> {
        let body = req.json_body()?;
        let mut dir = lock(&self.shared.dir);
        let seq = dir.find(key).ok_or_else(|| GraphError::not_found(raw))?;
        let mut details = dir.convert_to_internal(&self.shared.tenant, seq, &body)?;
        self.shared.mark_dirty();
        if let Value::Object(m) = &mut details {
            m.insert(
                "@odata.context".into(),
                json!(self.context("microsoft.graph.conversionUserDetails")),
            );
        }
        Ok(ApiResponse::json(200, details))
    }

    fn create(&self, req: &ApiRequest<'_>, q: &QueryOptions) -> Result<ApiResponse, GraphError> {
        q.allow_only(&[])?;
        let body = req.json_body()?;
        if writes_identities(&body) && !self.app.can_manage_identities() {
            return Err(GraphError::forbidden());
        }
        let mut dir = lock(&self.shared.dir);
        let seq = dir.create(&self.shared.tenant, &body, WriteMode::Create)?;
        self.shared.mark_dirty();
        let rec = dir
            .users
            .get(&seq)
            .ok_or_else(|| GraphError::not_found(""))?;
        let mut m = store::project(rec, None);
        m.insert(
            "@odata.context".into(),
            json!(self.context("users/$entity")),
        );
        let mut resp = ApiResponse::json(201, Value::Object(m));
        resp.headers.push((
            "Location".into(),
            format!("{}/users/{}", self.base(), rec.id()),
        ));
        Ok(resp)
    }

    fn get_user(&self, raw: &str, key: &str, q: &QueryOptions) -> Result<ApiResponse, GraphError> {
        q.allow_only(&["$select", "$expand", "$format"])?;
        reject_expand(q)?;
        let select = parse_select(q, false)?;
        let dir = lock(&self.shared.dir);
        let seq = dir.find(key).ok_or_else(|| GraphError::not_found(raw))?;
        let rec = dir
            .users
            .get(&seq)
            .ok_or_else(|| GraphError::not_found(raw))?;
        let mut m = store::project(rec, select.as_deref());
        m.insert(
            "@odata.context".into(),
            json!(self.select_context("users", &select, true)),
        );
        Ok(ApiResponse::json(200, Value::Object(m)))
    }

    fn patch_user(
        &self,
        req: &ApiRequest<'_>,
        raw: &str,
        key: &str,
    ) -> Result<ApiResponse, GraphError> {
        let body = req.json_body()?;
        if writes_identities(&body) && !self.app.can_manage_identities() {
            return Err(GraphError::forbidden());
        }
        // Resetting another user's password needs more than User.ReadWrite.All.
        if writes_property(&body, "passwordProfile") && !self.app.can_reset_passwords() {
            return Err(GraphError::forbidden());
        }
        let mut dir = lock(&self.shared.dir);
        let seq = dir.find(key).ok_or_else(|| GraphError::not_found(raw))?;
        dir.patch(&self.shared.tenant, seq, &body)?;
        self.shared.mark_dirty();
        Ok(ApiResponse::empty(204))
    }

    fn delete_user(&self, raw: &str, key: &str) -> Result<ApiResponse, GraphError> {
        let mut dir = lock(&self.shared.dir);
        let seq = dir.find(key).ok_or_else(|| GraphError::not_found(raw))?;
        dir.soft_delete(seq)
            .ok_or_else(|| GraphError::not_found(raw))?;
        self.shared.mark_dirty();
        Ok(ApiResponse::empty(204))
    }

    fn deleted_entity(&self, rec: &UserRecord, select: Option<&[String]>) -> Value {
        let mut m = store::project(rec, select);
        if select.is_none() {
            m.insert(
                "deletedDateTime".into(),
                rec.props
                    .get("deletedDateTime")
                    .cloned()
                    .unwrap_or(Value::Null),
            );
        }
        m.insert("@odata.type".into(), json!("#microsoft.graph.user"));
        m.insert(
            "@odata.context".into(),
            json!(self.context("directoryObjects/$entity")),
        );
        Value::Object(m)
    }

    fn get_deleted(
        &self,
        raw: &str,
        id: &str,
        q: &QueryOptions,
    ) -> Result<ApiResponse, GraphError> {
        q.allow_only(&["$select", "$format"])?;
        let select = parse_select(q, false)?;
        let mut dir = lock(&self.shared.dir);
        dir.purge_expired(self.settings.deleted_retention_secs);
        let seq = dir
            .find_deleted(id)
            .ok_or_else(|| GraphError::not_found(raw))?;
        let rec = dir
            .deleted
            .get(&seq)
            .ok_or_else(|| GraphError::not_found(raw))?;
        Ok(ApiResponse::json(
            200,
            self.deleted_entity(rec, select.as_deref()),
        ))
    }

    fn purge(&self, raw: &str, id: &str) -> Result<ApiResponse, GraphError> {
        let mut dir = lock(&self.shared.dir);
        dir.purge_expired(self.settings.deleted_retention_secs);
        let seq = dir
            .find_deleted(id)
            .ok_or_else(|| GraphError::not_found(raw))?;
        dir.purge(seq).ok_or_else(|| GraphError::not_found(raw))?;
        self.shared.mark_dirty();
        Ok(ApiResponse::empty(204))
    }

    fn restore(
        &self,
        req: &ApiRequest<'_>,
        raw: &str,
        id: &str,
    ) -> Result<ApiResponse, GraphError> {
        let auto = if req.body.iter().all(u8::is_ascii_whitespace) {
            false
        } else {
            let b = req.json_body()?;
            let obj = b.as_object().ok_or_else(GraphError::invalid_json)?;
            for k in obj.keys() {
                if !k.eq_ignore_ascii_case("autoReconcileProxyConflict") && !k.starts_with('@') {
                    return Err(GraphError::odata(format!(
                        "The parameter '{k}' in the request payload is not a valid parameter for the operation 'restore'."
                    )));
                }
            }
            obj.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("autoReconcileProxyConflict"))
                .and_then(|(_, v)| v.as_bool())
                .unwrap_or(false)
        };
        let mut dir = lock(&self.shared.dir);
        dir.purge_expired(self.settings.deleted_retention_secs);
        let seq = dir
            .find_deleted(id)
            .ok_or_else(|| GraphError::not_found(raw))?;
        dir.restore(seq, auto)?;
        self.shared.mark_dirty();
        let rec = dir
            .users
            .get(&seq)
            .ok_or_else(|| GraphError::not_found(raw))?;
        Ok(ApiResponse::json(200, self.deleted_entity(rec, None)))
    }

    fn invite(&self, req: &ApiRequest<'_>) -> Result<ApiResponse, GraphError> {
        let body = req.json_body()?;
        let mut dir = lock(&self.shared.dir);
        let mut inv = dir.invite(&self.shared.tenant, &body)?;
        self.shared.mark_dirty();
        if let Value::Object(m) = &mut inv {
            m.insert(
                "@odata.context".into(),
                json!(self.context("invitations/$entity")),
            );
        }
        Ok(ApiResponse::json(201, inv))
    }

    fn organization(&self) -> ApiResponse {
        let t = &self.shared.tenant;
        let mut domains = vec![json!({
            "capabilities": "Email, OfficeCommunicationsOnline",
            "isDefault": t.verified_domains.is_empty(),
            "isInitial": true,
            "name": t.initial_domain,
            "type": "Managed",
        })];
        for (i, d) in t.verified_domains.iter().enumerate() {
            domains.push(json!({
                "capabilities": "Email",
                "isDefault": i == 0,
                "isInitial": false,
                "name": d.name,
                "type": format!("{:?}", d.kind),
            }));
        }
        ApiResponse::json(
            200,
            json!({
                "@odata.context": self.context("organization"),
                "value": [{
                    "id": t.tenant_id,
                    "displayName": t.display_name,
                    "tenantType": "AAD",
                    "verifiedDomains": domains,
                }]
            }),
        )
    }

    fn domains(&self) -> ApiResponse {
        let t = &self.shared.tenant;
        let mut value = vec![json!({
            "id": t.initial_domain, "authenticationType": "Managed", "isDefault": t.verified_domains.is_empty(),
            "isInitial": true, "isRoot": true, "isVerified": true, "supportedServices": ["Email"],
        })];
        for (i, d) in t.verified_domains.iter().enumerate() {
            value.push(json!({
                "id": d.name, "authenticationType": format!("{:?}", d.kind), "isDefault": i == 0,
                "isInitial": false, "isRoot": true, "isVerified": true, "supportedServices": ["Email"],
            }));
        }
        ApiResponse::json(
            200,
            json!({"@odata.context": self.context("domains"), "value": value}),
        )
    }

    // -----------------------------------------------------------------------------------------
    // Delta

    fn delta(&self, req: &ApiRequest<'_>, q: &QueryOptions) -> Result<ApiResponse, GraphError> {
        for unsupported in ["$top", "$orderby", "$expand", "$search", "$count", "$skip"] {
            if q.has(unsupported) {
                return Err(GraphError::unsupported_query(format!(
                    "The query option '{unsupported}' is not supported with delta queries on users."
                )));
            }
        }
        let dir = lock(&self.shared.dir);
        let now = crate::util::now_millis();
        let minimal = req
            .header("prefer")
            .is_some_and(|p| p.to_ascii_lowercase().contains("return=minimal"));
        let page_size = req
            .header("prefer")
            .and_then(|p| {
                p.split(',').find_map(|part| {
                    part.trim()
                        .strip_prefix("odata.maxpagesize=")
                        .and_then(|n| n.trim().parse::<usize>().ok())
                })
            })
            .filter(|n| (1..=999).contains(n))
            .unwrap_or(self.settings.delta_page_size.clamp(1, 999));

        let state = if let Some(tok) = q.get("$skiptoken") {
            let s: DeltaState = decode_token(tok).ok_or_else(invalid_delta_token)?;
            self.check_delta_state(&dir, &s, now)?;
            s
        } else if let Some(tok) = q.get("$deltatoken") {
            if tok.eq_ignore_ascii_case("latest") {
                let select = parse_select(q, true)?;
                let ids = self.delta_filter(q)?;
                let s = DeltaState {
                    v: dir.version,
                    u: dir.version,
                    s: select,
                    f: ids,
                    g: dir.delta_generation,
                    i: now,
                    ..DeltaState::default()
                };
                let body = json!({
                    "@odata.context": self.select_context("users", &s.s, false),
                    "@odata.deltaLink": format!("{}/users/delta?$deltatoken={}", self.base(), encode_token(&s)),
                    "value": [],
                });
                return Ok(ApiResponse::json(200, body));
            }
            let s: DeltaState = decode_token(tok).ok_or_else(invalid_delta_token)?;
            self.check_delta_state(&dir, &s, now)?;
            DeltaState {
                v: s.v,
                u: dir.version,
                s: s.s,
                f: s.f,
                g: s.g,
                i: s.i,
                ..DeltaState::default()
            }
        } else {
            let select = parse_select(q, true)?;
            let ids = self.delta_filter(q)?;
            DeltaState {
                v: 0,
                u: dir.version,
                s: select,
                f: ids,
                g: dir.delta_generation,
                i: now,
                ..DeltaState::default()
            }
        };
        let (value, next) = delta_page(&dir, &state, page_size, minimal);
        let mut body = Map::new();
        body.insert(
            "@odata.context".into(),
            json!(self.select_context("users", &state.s, false)),
        );
        match next {
            Some(next_state) => {
                body.insert(
                    "@odata.nextLink".into(),
                    json!(format!(
                        "{}/users/delta?$skiptoken={}",
                        self.base(),
                        encode_token(&next_state)
                    )),
                );
            }
            None => {
                let done = DeltaState {
                    v: state.u,
                    u: state.u,
                    s: state.s.clone(),
                    f: state.f.clone(),
                    g: dir.delta_generation,
                    i: now,
                    ..DeltaState::default()
                };
                body.insert(
                    "@odata.deltaLink".into(),
                    json!(format!(
                        "{}/users/delta?$deltatoken={}",
                        self.base(),
                        encode_token(&done)
                    )),
                );
            }
        }
        body.insert("value".into(), Value::Array(value));
        let mut resp = ApiResponse::json(200, Value::Object(body));
        if minimal {
            resp.headers
                .push(("Preference-Applied".into(), "return=minimal".into()));
        }
        Ok(resp)
    }

    fn delta_filter(&self, q: &QueryOptions) -> Result<Option<Vec<String>>, GraphError> {
        match q.get("$filter") {
            None => Ok(None),
            Some(f) => {
                let e = filter::parse(f)?;
                match filter::delta_ids(&e) {
                    Some(ids) if ids.len() <= 50 => Ok(Some(ids)),
                    _ => Err(GraphError::unsupported_query(
                        "Delta queries on users support $filter only as 'id eq' terms combined with 'or' (at most 50).",
                    )),
                }
            }
        }
    }

    fn check_delta_state(
        &self,
        dir: &Directory,
        s: &DeltaState,
        now: i64,
    ) -> Result<(), GraphError> {
        let ttl_ms = i64::try_from(self.settings.delta_token_lifetime_secs)
            .unwrap_or(i64::MAX)
            .saturating_mul(1000);
        if s.g != dir.delta_generation || now.saturating_sub(s.i) > ttl_ms || s.u > dir.version {
            let mut location = format!("{}/users/delta", self.base());
            if let Some(sel) = &s.s {
                location.push_str(&format!("?$select={}", sel.join(",")));
            }
            return Err(GraphError::new(
                410,
                "syncStateNotFound",
                "The delta token has expired or is no longer valid. Restart with a full synchronization from the Location header.",
            )
            .with_header("Location", location));
        }
        Ok(())
    }
}

/// Whether a user body sets `identities` (property names are matched case-insensitively).
fn writes_identities(body: &Value) -> bool {
    writes_property(body, "identities")
}

fn writes_property(body: &Value, name: &str) -> bool {
    body.as_object()
        .is_some_and(|m| m.keys().any(|k| k.eq_ignore_ascii_case(name)))
}

/// Sorts case-insensitively by one property, nulls last, creation order as tie-break.
fn sort_records(records: &mut [&UserRecord], prop: &str, desc: bool) {
    let key = |r: &UserRecord| match r.props.get(prop) {
        Some(Value::String(s)) => Some(s.to_lowercase()),
        Some(Value::Null) | None => None,
        Some(v) => Some(v.to_string()),
    };
    records.sort_by(|a, b| {
        let ord = match (key(a), key(b)) {
            (Some(x), Some(y)) => x.cmp(&y),
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, None) => std::cmp::Ordering::Equal,
        };
        let ord = if desc { ord.reverse() } else { ord };
        ord.then(a.seq.cmp(&b.seq))
    });
}

fn invalid_delta_token() -> GraphError {
    GraphError::bad_request("The specified delta token is invalid.")
}

/// One page of a delta round: changed users (phase 0) then removed users (phase 1).
fn delta_page(
    dir: &Directory,
    s: &DeltaState,
    page_size: usize,
    minimal: bool,
) -> (Vec<Value>, Option<DeltaState>) {
    let in_range = |v: u64| v > s.v && v <= s.u;
    let id_ok = |id: &str| {
        s.f.as_ref()
            .map_or(true, |ids| ids.iter().any(|i| i.eq_ignore_ascii_case(id)))
    };
    let relevant = |r: &UserRecord| -> bool {
        let created = r.prop_versions.get("id").copied().unwrap_or(0);
        if created > s.u {
            return false;
        }
        if s.v == 0 || in_range(created) {
            // Initial round, or created (or restored) since the last round.
            return true;
        }
        match &s.s {
            Some(sel) => sel
                .iter()
                .any(|p| r.prop_versions.get(p).is_some_and(|v| in_range(*v))),
            None => r.prop_versions.values().any(|v| in_range(*v)),
        }
    };
    let mut out = Vec::new();
    let mut state = s.clone();
    if state.p == 0 {
        let mut iter = dir
            .users
            .range(state.l.saturating_add(1)..)
            .map(|(_, r)| r)
            .filter(|r| id_ok(r.id()) && relevant(r));
        for r in iter.by_ref() {
            let mut m = if minimal && s.v > 0 {
                // Only changed properties; cleared ones (no longer stored) come back as null.
                let mut m = Map::new();
                for (k, pv) in &r.prop_versions {
                    let selected = s.s.as_ref().map_or(true, |sel| sel.contains(k));
                    if in_range(*pv) && selected {
                        let v = r.props.get(k).cloned();
                        m.insert(k.clone(), v.unwrap_or_else(|| store::default_value(k)));
                    }
                }
                m
            } else {
                store::project(r, s.s.as_deref())
            };
            m.insert("id".into(), json!(r.id()));
            out.push(Value::Object(m));
            state.l = r.seq;
            if out.len() == page_size {
                break;
            }
        }
        if out.len() == page_size {
            if iter.next().is_some() || (s.v > 0 && !removed(dir, s, &id_ok).is_empty()) {
                return (out, Some(state));
            }
            if s.v == 0 {
                return (out, None);
            }
        }
        state.p = 1;
        state.lv = 0;
        state.li = String::new();
    }
    if s.v == 0 {
        return (out, None);
    }
    let mut rest = removed(dir, &state, &id_ok).into_iter().peekable();
    while out.len() < page_size {
        let Some((version, id, reason)) = rest.next() else {
            return (out, None);
        };
        out.push(json!({"id": id, "@removed": {"reason": reason}}));
        state.lv = version;
        state.li = id;
    }
    if rest.peek().is_some() {
        (out, Some(state))
    } else {
        (out, None)
    }
}

/// Removed users in (v, u], ordered by (version, id), after the cursor of `s`.
fn removed(
    dir: &Directory,
    s: &DeltaState,
    id_ok: &dyn Fn(&str) -> bool,
) -> Vec<(u64, String, &'static str)> {
    let (v, u, lv, li) = (s.v, s.u, s.lv, s.li.clone());
    let mut all: Vec<(u64, String, &'static str)> = dir
        .deleted
        .values()
        .filter_map(|r| {
            r.deleted
                .as_ref()
                .map(|d| (d.version, r.id().to_string(), "changed"))
        })
        .chain(
            dir.tombstones
                .iter()
                .map(|t| (t.version, t.id.clone(), "deleted")),
        )
        .filter(|(ver, id, _)| *ver > v && *ver <= u && id_ok(id))
        .filter(|(ver, id, _)| (*ver, id.as_str()) > (lv, li.as_str()))
        .collect();
    all.sort();
    all
}

// ---------------------------------------------------------------------------------------------
// $batch

/// Result of a batch: the response plus added latency from injected faults on items.
pub(crate) struct BatchOutcome {
    pub response: ApiResponse,
    pub latency: Duration,
}

struct BatchItem {
    id: String,
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: Option<Value>,
    depends_on: Vec<String>,
}

fn bad_batch(message: impl Into<String>) -> GraphError {
    GraphError::odata(message)
}

fn parse_batch(body: &[u8]) -> Result<Vec<BatchItem>, GraphError> {
    let v: Value = serde_json::from_slice(body).map_err(|_| GraphError::invalid_json())?;
    let requests = v
        .get("requests")
        .and_then(Value::as_array)
        .ok_or_else(|| bad_batch("Invalid batch payload format."))?;
    if requests.is_empty() {
        return Err(bad_batch(
            "The batch request must contain at least one request.",
        ));
    }
    if requests.len() > 20 {
        return Err(bad_batch(
            "The number of requests in the batch exceeds the maximum of 20.",
        ));
    }
    let mut items = Vec::new();
    for r in requests {
        let o = r
            .as_object()
            .ok_or_else(|| bad_batch("Invalid batch payload format."))?;
        let field = |k: &str| {
            o.iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(k))
                .map(|(_, v)| v)
        };
        let id = match field("id") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            _ => {
                return Err(bad_batch(
                    "Invalid batch payload format: every request needs a string 'id'.",
                ))
            }
        };
        let method = field("method")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                bad_batch(format!(
                    "Invalid batch payload format: request '{id}' has no 'method'."
                ))
            })?
            .to_ascii_uppercase();
        let url = field("url")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                bad_batch(format!(
                    "Invalid batch payload format: request '{id}' has no 'url'."
                ))
            })?
            .to_string();
        let headers: Vec<(String, String)> = match field("headers") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Object(h)) => h
                .iter()
                .map(|(k, v)| {
                    let v = match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (k.to_ascii_lowercase(), v)
                })
                .collect(),
            Some(_) => {
                return Err(bad_batch(
                    "Invalid batch payload format: 'headers' must be an object.",
                ))
            }
        };
        let body = field("body").filter(|b| !b.is_null()).cloned();
        if body.is_some() && !headers.iter().any(|(k, _)| k == "content-type") {
            return Err(bad_batch(format!(
                "Invalid batch payload format: request '{id}' has a body but no Content-Type header."
            )));
        }
        let depends_on = match field("dependsOn") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a
                .iter()
                .map(|d| d.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    bad_batch("Invalid batch payload format: 'dependsOn' must list ids.")
                })?,
            Some(_) => {
                return Err(bad_batch(
                    "Invalid batch payload format: 'dependsOn' must be an array.",
                ))
            }
        };
        if items
            .iter()
            .any(|i: &BatchItem| i.id.eq_ignore_ascii_case(&id))
        {
            return Err(bad_batch(format!(
                "Batch request contains duplicate request id '{id}'."
            )));
        }
        items.push(BatchItem {
            id,
            method,
            url,
            headers,
            body,
            depends_on,
        });
    }
    for i in &items {
        for d in &i.depends_on {
            if !items.iter().any(|o| o.id.eq_ignore_ascii_case(d)) || d.eq_ignore_ascii_case(&i.id)
            {
                return Err(bad_batch(format!(
                    "Request '{}' depends on unknown request '{d}'.",
                    i.id
                )));
            }
        }
    }
    Ok(items)
}

/// Splits a batch item url into (path under the version, query).
fn item_target(url: &str) -> (String, String) {
    let mut u = url.trim();
    // Absolute urls (an SDK bug) are accepted: keep the path after the version segment.
    let owned;
    if let Some(after_scheme) = u
        .strip_prefix("https://")
        .or_else(|| u.strip_prefix("http://"))
    {
        let path = after_scheme
            .find('/')
            .map(|i| &after_scheme[i..])
            .unwrap_or("/");
        let path = strip_prefix_ci(path, "/v1.0")
            .or_else(|| strip_prefix_ci(path, "/beta"))
            .unwrap_or(path);
        owned = path.to_string();
        u = &owned;
    }
    let (p, q) = u.split_once('?').unwrap_or((u, ""));
    let p = if p.starts_with('/') {
        p.to_string()
    } else {
        format!("/{p}")
    };
    (p, q.to_string())
}

/// `POST /$batch`.
pub(crate) fn batch(
    shared: &Shared,
    app: &AppContext,
    settings: &Settings,
    body: &[u8],
    prefix: &str,
    client_request_id: &str,
) -> Result<BatchOutcome, GraphError> {
    let items = parse_batch(body)?;
    let mut results: Vec<Option<Value>> = vec![None; items.len()];
    let mut statuses: Vec<Option<u16>> = vec![None; items.len()];
    let mut latency = Duration::ZERO;
    let mut progressed = true;
    while progressed {
        progressed = false;
        for (i, item) in items.iter().enumerate() {
            if statuses[i].is_some() {
                continue;
            }
            let deps: Vec<usize> = item
                .depends_on
                .iter()
                .filter_map(|d| items.iter().position(|o| o.id.eq_ignore_ascii_case(d)))
                .collect();
            if deps.iter().any(|d| statuses[*d].is_none()) {
                continue;
            }
            progressed = true;
            let request_id = shared.new_id();
            let (path, query) = item_target(&item.url);
            let full_path = format!("{prefix}{path}");
            let failed_dep = deps.iter().any(|d| statuses[*d].is_some_and(|s| s >= 400));
            let outcome: Result<ApiResponse, GraphError> = if failed_dep {
                Err(GraphError::new(
                    424,
                    "FailedDependency",
                    "Failed dependency.",
                ))
            } else {
                let faults = lock(&shared.faults).decide(&item.method, &full_path);
                let mut terminal = None;
                for f in faults {
                    match f {
                        Fault::Latency { ms } => {
                            latency = latency.saturating_add(Duration::from_millis(ms))
                        }
                        Fault::Status {
                            status,
                            retry_after,
                        } => terminal = Some(fault_error(status, retry_after, settings)),
                        Fault::Drop => terminal = Some(fault_error(504, None, settings)),
                    }
                }
                match terminal {
                    Some(e) => Err(e),
                    None => {
                        let body_bytes = item
                            .body
                            .as_ref()
                            .map(|b| serde_json::to_vec(b).unwrap_or_default())
                            .unwrap_or_default();
                        let req = ApiRequest {
                            method: &item.method,
                            path: &full_path,
                            query: &query,
                            headers: &item.headers,
                            body: &body_bytes,
                        };
                        match item.method.as_str() {
                            "GET" | "POST" | "PATCH" | "PUT" | "DELETE" => {
                                handle(shared, app, settings, &req)
                            }
                            _ => Err(GraphError::method_not_allowed()),
                        }
                    }
                }
            };
            let (status, headers, body) = match outcome {
                Ok(r) => (r.status, r.headers, r.body),
                Err(e) => (
                    e.status,
                    e.headers.clone(),
                    Body::Json(e.body(&request_id, client_request_id)),
                ),
            };
            let mut h = Map::new();
            h.insert("Cache-Control".into(), json!("no-cache"));
            match &body {
                Body::Json(_) => {
                    h.insert("Content-Type".into(), json!(ODATA_JSON));
                }
                Body::Text(_) => {
                    h.insert("Content-Type".into(), json!("text/plain"));
                }
                Body::Empty => {}
            }
            for (k, v) in headers {
                h.insert(k, json!(v));
            }
            let mut entry = Map::new();
            entry.insert("id".into(), json!(item.id));
            entry.insert("status".into(), json!(status));
            entry.insert("headers".into(), Value::Object(h));
            match body {
                Body::Json(v) => {
                    entry.insert("body".into(), v);
                }
                Body::Text(t) => {
                    entry.insert("body".into(), json!(t));
                }
                Body::Empty => {}
            }
            shared.record(
                &item.method,
                &full_path,
                &query,
                status,
                Some(&app.client_id),
                Some(&item.id),
            );
            results[i] = Some(Value::Object(entry));
            statuses[i] = Some(status);
        }
    }
    if statuses.iter().any(Option::is_none) {
        return Err(bad_batch(
            "The dependsOn references of the batch form a cycle.",
        ));
    }
    let mut responses: Vec<Value> = results.into_iter().flatten().collect();
    if settings.shuffle_batch_responses {
        let mut rng = lock(&shared.rng);
        for i in (1..responses.len()).rev() {
            let j = (rng.next_u64() % (i as u64 + 1)) as usize;
            responses.swap(i, j);
        }
    }
    Ok(BatchOutcome {
        response: ApiResponse::json(200, json!({ "responses": responses })),
        latency,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(route("/users"), Ok(Route::Users));
        assert_eq!(route("/users/delta()"), Ok(Route::UsersDelta));
        assert_eq!(
            route("/Users/microsoft.graph.delta()"),
            Ok(Route::UsersDelta)
        );
        assert_eq!(
            route("/users('$ab@contoso.com')"),
            Ok(Route::User {
                raw: "$ab@contoso.com".into(),
                key: "$ab@contoso.com".into()
            })
        );
        assert_eq!(
            route("/users/a_b.com%23EXT%23@contoso.onmicrosoft.com"),
            Ok(Route::User {
                raw: "a_b.com%23EXT%23@contoso.onmicrosoft.com".into(),
                key: "a_b.com#EXT#@contoso.onmicrosoft.com".into()
            })
        );
        assert_eq!(
            route("/directory/deletedItems/graph.user"),
            Ok(Route::DeletedList)
        );
        assert_eq!(
            route("/directory/deletedItems/x/microsoft.graph.restore"),
            Ok(Route::Restore {
                raw: "x".into(),
                id: "x".into()
            })
        );
        assert!(route("/users/$x@y.com").is_err());
        assert!(route("/groups").is_err());
    }

    proptest::proptest! {
        #[test]
        fn routing_and_query_parsing_never_panic(path in "\\PC{0,60}", query in "\\PC{0,60}") {
            let _ = route(&path);
            let _ = QueryOptions::parse(&query).map(|q| (parse_select(&q, true), q.top(), q.count()));
            let _ = item_target(&path);
            let _ = parse_search(&query);
        }
    }

    #[test]
    fn batch_urls() {
        assert_eq!(
            item_target("/users?$top=1"),
            ("/users".into(), "$top=1".into())
        );
        assert_eq!(item_target("users/x"), ("/users/x".into(), String::new()));
        assert_eq!(
            item_target("https://graph.microsoft.com/v1.0/users/x"),
            ("/users/x".into(), String::new())
        );
    }
}
