//! OData system query options: decoded as `application/x-www-form-urlencoded`, names matched
//! case-insensitively, `$`-less names rejected, duplicates rejected.

use crate::error::GraphError;
use crate::util::{encode_query_value, percent_decode};

const KNOWN: &[&str] = &[
    "$select",
    "$filter",
    "$top",
    "$count",
    "$orderby",
    "$search",
    "$expand",
    "$skip",
    "$skiptoken",
    "$deltatoken",
    "$format",
];

/// Parsed query options. Values are decoded; names are canonical lower case (`$filter`).
#[derive(Debug, Default, Clone)]
pub(crate) struct QueryOptions {
    pub pairs: Vec<(String, String)>,
}

impl QueryOptions {
    pub(crate) fn parse(raw: &str) -> Result<Self, GraphError> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        for part in raw.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            let key = percent_decode(k, true)
                .ok_or_else(|| GraphError::odata("The query string is not valid."))?;
            let value = percent_decode(v, true)
                .ok_or_else(|| GraphError::odata("The query string is not valid."))?;
            let lower = key.trim().to_ascii_lowercase();
            if let Some(name) = lower.strip_prefix('$') {
                if !KNOWN.contains(&lower.as_str()) {
                    return Err(GraphError::odata(format!(
                        "The query parameter '${name}' is not supported."
                    )));
                }
                if pairs.iter().any(|(k, _)| *k == lower) {
                    return Err(GraphError::odata(format!(
                        "Query option '{key}' was specified more than once, but it must be specified at most once."
                    )));
                }
                pairs.push((lower, value));
            } else if KNOWN.contains(&format!("${lower}").as_str()) {
                return Err(GraphError::odata(format!(
                    "Query option '{key}' is not supported without the '$' prefix on v1.0; use '${lower}'."
                )));
            }
            // Other names (e.g. cache busters) are ignored, as Graph does.
        }
        Ok(QueryOptions { pairs })
    }

    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Rejects options this endpoint does not accept.
    pub(crate) fn allow_only(&self, allowed: &[&str]) -> Result<(), GraphError> {
        for (k, _) in &self.pairs {
            if !allowed.contains(&k.as_str()) {
                return Err(GraphError::odata(format!(
                    "Query option '{k}' is not allowed for this request."
                )));
            }
        }
        Ok(())
    }

    /// Rebuilds a query string (Graph writes `$` literally) without the given options.
    pub(crate) fn encode_without(&self, drop: &[&str]) -> String {
        self.pairs
            .iter()
            .filter(|(k, _)| !drop.contains(&k.as_str()))
            .map(|(k, v)| format!("{k}={}", encode_query_value(v)))
            .collect::<Vec<_>>()
            .join("&")
    }

    /// `$count=true|false`.
    pub(crate) fn count(&self) -> Result<bool, GraphError> {
        match self.get("$count") {
            None => Ok(false),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
            Some(v) => Err(GraphError::odata(format!(
                "'{v}' is not a valid count option."
            ))),
        }
    }

    /// `$top`, validated for the users collection (1–999, default 100).
    pub(crate) fn top(&self) -> Result<Option<usize>, GraphError> {
        let Some(v) = self.get("$top") else {
            return Ok(None);
        };
        let n: i64 = v.trim().parse().map_err(|_| {
            GraphError::odata(format!(
                "Invalid value '{v}' for $top query option found. The $top query option requires a non-negative integer value."
            ))
        })?;
        if !(1..=999).contains(&n) {
            return Err(GraphError::unsupported_query(format!(
                "Invalid page size specified: '{n}'. Must be between 1 and 999 inclusive."
            )));
        }
        Ok(Some(n as usize))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_and_normalises() {
        let q = QueryOptions::parse("%24filter=userType+eq+%27Guest%27&$Select=id,mail&x=1")
            .unwrap_or_default();
        assert_eq!(q.get("$filter"), Some("userType eq 'Guest'"));
        assert_eq!(q.get("$select"), Some("id,mail"));
        assert!(QueryOptions::parse("filter=x").is_err());
        assert!(QueryOptions::parse("$top=1&$TOP=2").is_err());
        assert!(QueryOptions::parse("$bogus=1").is_err());
    }
}
