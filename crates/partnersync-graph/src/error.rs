//! Graph error bodies → [`TargetError`], and this crate's own error type.

use partnersync_target::{ErrorCategory, TargetError};
use serde::Deserialize;

/// Errors setting up a [`crate::GraphTarget`].
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    /// The configuration is unusable.
    #[error("graph target configuration: {0}")]
    Config(String),
}

#[derive(Debug, Deserialize, Default)]
struct Envelope {
    #[serde(default)]
    error: Option<Body>,
}

#[derive(Debug, Deserialize, Default)]
struct Body {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    details: Vec<Detail>,
    #[serde(default, rename = "innerError")]
    inner_error: Option<Inner>,
}

#[derive(Debug, Deserialize, Default)]
struct Detail {
    #[serde(default)]
    code: String,
    #[serde(default)]
    target: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
struct Inner {
    #[serde(default, rename = "request-id")]
    request_id: Option<String>,
}

/// Categorises a non-success Graph response from its status and full error body,
/// `details` included: a conflict names the property that conflicted.
pub(crate) fn from_response(status: u16, body: &[u8]) -> TargetError {
    let envelope: Envelope = serde_json::from_slice(body).unwrap_or_default();
    let Some(err) = envelope.error else {
        let text = String::from_utf8_lossy(body);
        let snippet: String = text.chars().take(200).collect();
        return TargetError::new(
            category_of(status, "", &[]),
            format!("HTTP{status}"),
            format!("HTTP {status} without a Graph error body: {snippet}"),
        );
    };
    let category = category_of(status, &err.code, &err.details);
    let mut message = err.message.clone();
    let targets: Vec<String> = err
        .details
        .iter()
        .filter(|d| d.code == "ObjectConflict")
        .filter_map(|d| d.target.clone())
        .collect();
    if !targets.is_empty() {
        message.push_str(&format!(" [conflicting property: {}]", targets.join(", ")));
    }
    let other: Vec<String> = err
        .details
        .iter()
        .filter(|d| d.code != "ObjectConflict")
        .map(|d| match &d.target {
            Some(t) => format!("{} ({t})", d.code),
            None => d.code.clone(),
        })
        .collect();
    if !other.is_empty() {
        message.push_str(&format!(" [details: {}]", other.join(", ")));
    }
    if let Some(id) = err.inner_error.and_then(|i| i.request_id) {
        message.push_str(&format!(" [request-id {id}]"));
    }
    let code = if err.code.is_empty() {
        format!("HTTP{status}")
    } else {
        err.code
    };
    TargetError::new(category, code, message)
}

/// The property a conflict error names, if any.
pub(crate) fn conflicting_property(err: &TargetError) -> Option<&str> {
    let rest = err.message.split("[conflicting property: ").nth(1)?;
    rest.split(']').next()
}

fn category_of(status: u16, code: &str, details: &[Detail]) -> ErrorCategory {
    let conflict = details
        .iter()
        .any(|d| d.code == "ObjectConflict" || d.code == "ConflictingObjects");
    match status {
        409 => ErrorCategory::Conflict,
        400 if conflict => ErrorCategory::Conflict,
        400 | 422 => ErrorCategory::Validation,
        401 | 403 => ErrorCategory::Permission,
        404 | 410 => ErrorCategory::NotFound,
        429 => ErrorCategory::Throttled,
        408 | 500 | 502 | 503 | 504 => ErrorCategory::Transient,
        _ if code.eq_ignore_ascii_case("TooManyRequests") => ErrorCategory::Throttled,
        _ => ErrorCategory::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflict_names_the_property() {
        let body = br#"{"error":{"code":"Request_BadRequest","message":"Another object with the same value for property userPrincipalName already exists.","details":[{"code":"ObjectConflict","message":"x","target":"userPrincipalName"},{"code":"ConflictingObjects","message":"y","target":"User_1"}],"innerError":{"request-id":"r1"}}}"#;
        let e = from_response(400, body);
        assert_eq!(e.category, ErrorCategory::Conflict);
        assert_eq!(e.code, "Request_BadRequest");
        assert_eq!(conflicting_property(&e), Some("userPrincipalName"));
        assert!(e.message.contains("ConflictingObjects (User_1)"));
    }

    #[test]
    fn non_json_bodies_and_statuses() {
        let e = from_response(411, b"<html>411</html>");
        assert_eq!(e.category, ErrorCategory::Other);
        assert_eq!(from_response(503, b"").category, ErrorCategory::Transient);
        assert_eq!(
            from_response(403, b"{}").category,
            ErrorCategory::Permission
        );
        assert_eq!(from_response(404, b"{}").category, ErrorCategory::NotFound);
        assert_eq!(from_response(429, b"{}").category, ErrorCategory::Throttled);
        assert_eq!(
            from_response(400, b"{}").category,
            ErrorCategory::Validation
        );
    }
}
