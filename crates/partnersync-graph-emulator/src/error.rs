//! The crate's error type and Graph's error responses.

use serde_json::{json, Value};

/// Errors of the emulator's own operation (start-up, configuration, persistence, admin calls).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file concerned.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A configuration file is invalid.
    #[error("invalid configuration {path}: {message}")]
    Config {
        /// The file concerned.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The listen address is not usable.
    #[error("cannot listen on {addr}: {message}")]
    Listen {
        /// The requested address.
        addr: String,
        /// What went wrong.
        message: String,
    },
    /// A saved state file could not be parsed.
    #[error("invalid state file {path}: {message}")]
    State {
        /// The file concerned.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// Command-line usage error.
    #[error("{0}")]
    Usage(String),
    /// An admin operation was refused (e.g. seeding a user whose UPN exists).
    #[error("{status} {code}: {message}")]
    Rejected {
        /// HTTP status Graph would have answered.
        status: u16,
        /// Graph error code.
        code: String,
        /// Graph error message.
        message: String,
    },
}

/// One entry of `error.details`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ErrorDetail {
    pub code: String,
    pub message: String,
    pub target: String,
}

/// A Graph error response: status, `error.code`, `error.message`, optional `details`, extra
/// `innerError` fields and extra headers.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct GraphError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    pub details: Vec<ErrorDetail>,
    pub inner_extra: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
}

impl GraphError {
    pub(crate) fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        GraphError {
            status,
            code,
            message: message.into(),
            details: Vec::new(),
            inner_extra: Vec::new(),
            headers: Vec::new(),
        }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "Request_BadRequest", message)
    }

    /// OData-layer errors (syntax, unknown segments/options) use the plain `BadRequest` code.
    pub(crate) fn odata(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    pub(crate) fn unsupported_query(message: impl Into<String>) -> Self {
        Self::new(400, "Request_UnsupportedQuery", message)
    }

    pub(crate) fn invalid_value(property: &str) -> Self {
        Self::bad_request(format!(
            "Invalid value specified for property '{property}' of resource 'User'."
        ))
    }

    pub(crate) fn not_found(key_as_sent: &str) -> Self {
        Self::new(
            404,
            "Request_ResourceNotFound",
            format!(
                "Resource '{key_as_sent}' does not exist or one of its queried reference-property objects are not present."
            ),
        )
    }

    pub(crate) fn forbidden() -> Self {
        Self::new(
            403,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation.",
        )
    }

    pub(crate) fn method_not_allowed() -> Self {
        Self::new(
            405,
            "Request_BadRequest",
            "Specified HTTP method is not allowed for the request target.",
        )
    }

    pub(crate) fn segment_not_found(segment: &str) -> Self {
        Self::odata(format!("Resource not found for the segment '{segment}'."))
    }

    pub(crate) fn invalid_json() -> Self {
        Self::odata("Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.")
    }

    pub(crate) fn not_implemented() -> Self {
        Self::new(
            501,
            "NotImplemented",
            "This operation target is not yet supported.",
        )
    }

    /// `400` with an `ObjectConflict` detail, as Graph answers uniqueness violations.
    pub(crate) fn conflict(property: &str, other_id: &str) -> Self {
        let message =
            format!("Another object with the same value for property {property} already exists.");
        let mut e = Self::bad_request(message.clone());
        e.details = vec![
            ErrorDetail {
                code: "ObjectConflict".to_string(),
                message,
                target: property.to_string(),
            },
            ErrorDetail {
                code: "ConflictingObjects".to_string(),
                message: format!("Conflicting object: User_{other_id}"),
                target: format!("User_{other_id}"),
            },
        ];
        e
    }

    pub(crate) fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    /// The JSON body, with `innerError` carrying the given ids.
    pub(crate) fn body(&self, request_id: &str, client_request_id: &str) -> Value {
        let mut inner = serde_json::Map::new();
        for (k, v) in &self.inner_extra {
            inner.insert(k.clone(), Value::String(v.clone()));
        }
        inner.insert("date".into(), json!(crate::util::inner_error_date()));
        inner.insert("request-id".into(), json!(request_id));
        inner.insert("client-request-id".into(), json!(client_request_id));
        let mut error = serde_json::Map::new();
        error.insert("code".into(), json!(self.code));
        error.insert("message".into(), json!(self.message));
        if !self.details.is_empty() {
            error.insert(
                "details".into(),
                Value::Array(
                    self.details
                        .iter()
                        .map(|d| json!({"code": d.code, "message": d.message, "target": d.target}))
                        .collect(),
                ),
            );
        }
        error.insert("innerError".into(), Value::Object(inner));
        json!({ "error": Value::Object(error) })
    }
}

impl From<GraphError> for Error {
    fn from(e: GraphError) -> Self {
        Error::Rejected {
            status: e.status,
            code: e.code.to_string(),
            message: e.message,
        }
    }
}
