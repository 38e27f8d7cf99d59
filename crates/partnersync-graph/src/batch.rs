//! `$batch`: up to 20 writes per request, per-item results, and per-item retry of throttled
//! or transient items in a later batch after the largest `Retry-After` (graph.md §3).
//!
//! Items are independent (no `dependsOn`): the engine's operations on different users do not
//! depend on each other, and Microsoft advises batches that are entirely parallel or entirely
//! sequential.

use std::time::Duration;

use partnersync_target::{ErrorCategory, OperationOutcome, TargetError};
use serde_json::{json, Map, Value};

/// Graph's limit of requests per batch.
pub(crate) const MAX_BATCH: usize = 20;

/// One write, ready to be a batch item or a standalone request.
#[derive(Clone)]
pub(crate) struct Item {
    pub method: &'static str,
    /// Relative to the version root, e.g. `/users/{id}`.
    pub url: String,
    pub body: Option<Value>,
    pub outcome: OperationOutcome,
}

/// What became of one item of one batch round.
pub(crate) enum ItemResult {
    Done {
        status: u16,
        body: Value,
    },
    Retry {
        after: Option<Duration>,
        status: u16,
        body: Value,
    },
}

/// The JSON of a batch request for `items`, ids are their indexes.
pub(crate) fn request_body(items: &[(usize, &Item)]) -> Value {
    let requests: Vec<Value> = items
        .iter()
        .map(|(index, item)| {
            let mut r = Map::new();
            r.insert("id".into(), Value::String(index.to_string()));
            r.insert("method".into(), Value::String(item.method.to_string()));
            r.insert("url".into(), Value::String(item.url.clone()));
            if let Some(body) = &item.body {
                r.insert(
                    "headers".into(),
                    json!({"Content-Type": "application/json"}),
                );
                r.insert("body".into(), body.clone());
            }
            Value::Object(r)
        })
        .collect();
    json!({ "requests": requests })
}

/// Splits a batch response into per-item results keyed by item index. Items missing from
/// the response come back as transient retries.
pub(crate) fn parse_response(body: &[u8], sent: &[usize]) -> Vec<(usize, ItemResult)> {
    let parsed: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let mut out = Vec::with_capacity(sent.len());
    let responses = parsed["responses"].as_array().cloned().unwrap_or_default();
    for &index in sent {
        let key = index.to_string();
        let found = responses.iter().find(|r| match &r["id"] {
            Value::String(s) => *s == key,
            Value::Number(n) => n.to_string() == key,
            _ => false,
        });
        let Some(r) = found else {
            out.push((
                index,
                ItemResult::Retry {
                    after: None,
                    status: 503,
                    body: Value::Null,
                },
            ));
            continue;
        };
        let status = r["status"]
            .as_u64()
            .and_then(|s| u16::try_from(s).ok())
            .unwrap_or(500);
        let body = r["body"].clone();
        if matches!(status, 429 | 500 | 502 | 503 | 504) {
            let after =
                header(r, "Retry-After").and_then(|v| crate::transport::parse_retry_after(&v));
            out.push((
                index,
                ItemResult::Retry {
                    after,
                    status,
                    body,
                },
            ));
        } else {
            out.push((index, ItemResult::Done { status, body }));
        }
    }
    out
}

/// The highest `x-ms-throttle-limit-percentage` among a batch response's items.
pub(crate) fn limit_percentage(body: &[u8]) -> Option<f64> {
    let parsed: Value = serde_json::from_slice(body).ok()?;
    parsed["responses"]
        .as_array()?
        .iter()
        .filter_map(|r| header(r, "x-ms-throttle-limit-percentage"))
        .filter_map(|v| crate::transport::parse_limit_percentage(&v))
        .reduce(f64::max)
}

fn header(item: &Value, name: &str) -> Option<String> {
    let headers = item["headers"].as_object()?;
    headers.iter().find_map(|(k, v)| {
        if k.eq_ignore_ascii_case(name) {
            match v {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            }
        } else {
            None
        }
    })
}

/// The outcome of a finished item.
pub(crate) fn outcome_of(
    item: &Item,
    status: u16,
    body: &Value,
) -> Result<OperationOutcome, TargetError> {
    if (200..300).contains(&status) {
        return match &item.outcome {
            OperationOutcome::Created { .. } => match body.get("id").and_then(Value::as_str) {
                Some(id) => Ok(OperationOutcome::Created { id: id.to_string() }),
                None => Err(TargetError::new(
                    ErrorCategory::Other,
                    "missing_id",
                    "Graph created the user but returned no id",
                )),
            },
            other => Ok(other.clone()),
        };
    }
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    Err(crate::error::from_response(status, &bytes))
}

/// A path segment with everything but unreserved characters percent-encoded.
pub(crate) fn segment(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_out_of_order_items_and_fractional_retry_after() {
        let body = br#"{"responses":[
            {"id":"3","status":429,"headers":{"Retry-After":"0.249"},"body":{"error":{"code":"TooManyRequests","message":"m"}}},
            {"id":"1","status":201,"headers":{},"body":{"id":"u1"}}]}"#;
        let r = parse_response(body, &[1, 3, 7]);
        assert!(matches!(r[0], (1, ItemResult::Done { status: 201, .. })));
        assert!(matches!(
            r[1],
            (3, ItemResult::Retry { after: Some(d), status: 429, .. }) if d == Duration::from_millis(249)
        ));
        assert!(matches!(r[2], (7, ItemResult::Retry { after: None, .. })));
    }

    #[test]
    fn the_highest_item_limit_percentage_counts() {
        let body = br#"{"responses":[
            {"id":"1","status":201,"headers":{"x-ms-throttle-limit-percentage":"0.8"},"body":{}},
            {"id":"2","status":201,"headers":{"X-MS-Throttle-Limit-Percentage":"0.9"},"body":{}},
            {"id":"3","status":201,"headers":{},"body":{}}]}"#;
        assert_eq!(limit_percentage(body), Some(0.9));
        assert_eq!(limit_percentage(br#"{"responses":[]}"#), None);
        assert_eq!(limit_percentage(b"garbage"), None);
    }

    #[test]
    fn segments_are_encoded() {
        assert_eq!(segment("a b#c"), "a%20b%23c");
        assert_eq!(segment("87d3-ab"), "87d3-ab");
    }
}
