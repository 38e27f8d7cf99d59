//! Run-time values of both dialects.

use std::borrow::Cow;
use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chrono::{DateTime, Utc};

use crate::datetime;
use crate::Dialect;

/// A value produced while evaluating an expression.
///
/// Text and bytes borrow from the entry or the compiled expression whenever they can, so
/// that evaluating a rule over an entry allocates only when a function builds new text.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    /// No value: an absent attribute, `NULL`, or a function that found nothing.
    Null,
    /// Text.
    Str(Cow<'a, str>),
    /// A 64-bit integer (Connect's `num`).
    Num(i64),
    /// A Boolean.
    Bool(bool),
    /// A point in time, always UTC (Connect's `dt`).
    Date(DateTime<Utc>),
    /// Bytes (Connect's `bin`).
    Bin(Cow<'a, [u8]>),
    /// A reference: the DN of another object (Connect's `ref`).
    Ref(Cow<'a, str>),
    /// Several values (Connect's `mvstr`, `mvbin`, `mvref`).
    Multi(Vec<Value<'a>>),
}

/// A [`Value`] that owns its data, as returned to callers.
pub type OwnedValue = Value<'static>;

impl<'a> Value<'a> {
    /// A text value that borrows `s`.
    pub fn str(s: &'a str) -> Self {
        Value::Str(Cow::Borrowed(s))
    }

    /// A text value that owns `s`.
    pub fn string(s: String) -> Self {
        Value::Str(Cow::Owned(s))
    }

    /// Copies any borrowed data so the value no longer borrows from the entry.
    pub fn into_owned(self) -> OwnedValue {
        match self {
            Value::Null => Value::Null,
            Value::Str(s) => Value::Str(Cow::Owned(s.into_owned())),
            Value::Num(n) => Value::Num(n),
            Value::Bool(b) => Value::Bool(b),
            Value::Date(d) => Value::Date(d),
            Value::Bin(b) => Value::Bin(Cow::Owned(b.into_owned())),
            Value::Ref(r) => Value::Ref(Cow::Owned(r.into_owned())),
            Value::Multi(v) => Value::Multi(v.into_iter().map(Value::into_owned).collect()),
        }
    }

    /// Whether this is `Null`.
    #[inline]
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// Whether the value is absent or empty text (Connect's `IsNullOrEmpty`).
    #[inline]
    pub fn is_null_or_empty(&self) -> bool {
        match self {
            Value::Null => true,
            Value::Str(s) | Value::Ref(s) => s.is_empty(),
            Value::Bin(b) => b.is_empty(),
            Value::Multi(v) => v.is_empty(),
            _ => false,
        }
    }

    /// The name of the value's type, as used in error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "NULL",
            Value::Str(_) => "string",
            Value::Num(_) => "number",
            Value::Bool(_) => "Boolean",
            Value::Date(_) => "date",
            Value::Bin(_) => "binary",
            Value::Ref(_) => "reference",
            Value::Multi(_) => "multi-valued",
        }
    }

    /// The value as text, the way the dialect prints it: numbers in decimal, Booleans as
    /// `True`/`False`, dates as ISO 8601 (`aadconnect`) or `M/d/yyyy h:mm:ss tt`
    /// (`provisioning`), bytes as base64. `None` for `Null` and multi-valued values.
    pub fn to_text(&self, dialect: Dialect) -> Option<Cow<'_, str>> {
        Some(match self {
            Value::Null | Value::Multi(_) => return None,
            Value::Str(s) | Value::Ref(s) => Cow::Borrowed(s.as_ref()),
            Value::Num(n) => Cow::Owned(n.to_string()),
            Value::Bool(true) => Cow::Borrowed("True"),
            Value::Bool(false) => Cow::Borrowed("False"),
            Value::Date(d) => Cow::Owned(match dialect {
                Dialect::AadConnect => datetime::format_iso(*d),
                Dialect::Provisioning => datetime::format_provisioning(*d),
            }),
            Value::Bin(b) => Cow::Owned(STANDARD.encode(b)),
        })
    }

    /// The value as JSON, as `partnersync eval` prints it.
    pub fn to_json(&self, dialect: Dialect) -> serde_json::Value {
        match self {
            Value::Null => serde_json::Value::Null,
            Value::Num(n) => serde_json::Value::from(*n),
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Multi(v) => {
                serde_json::Value::Array(v.iter().map(|x| x.to_json(dialect)).collect())
            }
            other => serde_json::Value::String(
                other
                    .to_text(dialect)
                    .map(Cow::into_owned)
                    .unwrap_or_default(),
            ),
        }
    }
}

impl fmt::Display for Value<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("NULL"),
            Value::Multi(v) => {
                f.write_str("[")?;
                for (i, x) in v.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{x}")?;
                }
                f.write_str("]")
            }
            Value::Str(s) | Value::Ref(s) => write!(f, "{s:?}"),
            other => match other.to_text(Dialect::AadConnect) {
                Some(t) => f.write_str(&t),
                None => Ok(()),
            },
        }
    }
}

/// What a flow's expression came to: a value, or one of the flow sentinels.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome<'a> {
    /// A value (possibly `Null`: this rule contributes nothing).
    Value(Value<'a>),
    /// Connect's `AuthoritativeNull`: the attribute is cleared and no lower-precedence rule
    /// may contribute.
    AuthoritativeNull,
    /// Connect's `IgnoreThisFlow`: as if the flow did not exist.
    IgnoreThisFlow,
    /// The provisioning dialect's `IgnoreFlowIfNullOrEmpty` fired: the attribute is left
    /// out of the operation.
    IgnoreFlow,
}

impl Outcome<'_> {
    /// Copies borrowed data.
    pub fn into_owned(self) -> Outcome<'static> {
        match self {
            Outcome::Value(v) => Outcome::Value(v.into_owned()),
            Outcome::AuthoritativeNull => Outcome::AuthoritativeNull,
            Outcome::IgnoreThisFlow => Outcome::IgnoreThisFlow,
            Outcome::IgnoreFlow => Outcome::IgnoreFlow,
        }
    }

    /// The JSON `partnersync eval` prints for this outcome.
    pub fn to_json(&self, dialect: Dialect) -> serde_json::Value {
        let sentinel = |name: &str| serde_json::json!({ "sentinel": name });
        match self {
            Outcome::Value(v) => v.to_json(dialect),
            Outcome::AuthoritativeNull => sentinel("AuthoritativeNull"),
            Outcome::IgnoreThisFlow => sentinel("IgnoreThisFlow"),
            Outcome::IgnoreFlow => sentinel("IgnoreFlow"),
        }
    }
}
