//! Mapping between Graph user JSON and partnersync's [`Attributes`], and the random
//! passwords of directly created users.

use partnersync_target::{Attributes, ErrorCategory, TargetError};
use serde_json::{Map, Value};

/// Properties read for every managed user (`id` always first).
pub(crate) const SELECT: &[&str] = &[
    "id",
    "userPrincipalName",
    "displayName",
    "givenName",
    "surname",
    "mail",
    "otherMails",
    "mailNickname",
    "companyName",
    "department",
    "jobTitle",
    "employeeId",
    "userType",
    "accountEnabled",
    "onPremisesImmutableId",
    "onPremisesExtensionAttributes",
];

/// Properties Graph holds as string collections.
const COLLECTIONS: &[&str] = &[
    "otherMails",
    "businessPhones",
    "proxyAddresses",
    "imAddresses",
];
/// Properties Graph holds as Booleans.
const BOOLEANS: &[&str] = &["accountEnabled", "showInAddressList"];
/// Properties never written from attributes.
const READ_ONLY: &[&str] = &["id", "@odata.type", "deletedDateTime", "createdDateTime"];

/// Flattens a user object: scalars become one-element lists, `null` an empty list,
/// collections their elements, nested objects `parent/child` keys.
pub(crate) fn attributes_of(user: &Map<String, Value>) -> Attributes {
    let mut out = Attributes::new();
    for (key, value) in user {
        if key.starts_with('@') || key == "id" {
            continue;
        }
        flatten(key, value, &mut out);
    }
    out
}

fn flatten(key: &str, value: &Value, out: &mut Attributes) {
    match value {
        Value::Null => {
            out.insert(key.to_string(), Vec::new());
        }
        Value::String(s) => {
            out.insert(key.to_string(), vec![s.clone()]);
        }
        Value::Bool(b) => {
            out.insert(key.to_string(), vec![b.to_string()]);
        }
        Value::Number(n) => {
            out.insert(key.to_string(), vec![n.to_string()]);
        }
        Value::Array(items) => {
            let values = items
                .iter()
                .filter_map(|v| match v {
                    Value::String(s) => Some(s.clone()),
                    Value::Null => None,
                    other => Some(other.to_string()),
                })
                .collect();
            out.insert(key.to_string(), values);
        }
        Value::Object(map) => {
            for (child, v) in map {
                flatten(&format!("{key}/{child}"), v, out);
            }
        }
    }
}

/// Builds a PATCH/POST body from attributes: an empty list clears (`null`, or `[]` for a
/// collection), `parent/child` keys nest.
pub(crate) fn body_of(attributes: &Attributes) -> Result<Map<String, Value>, TargetError> {
    let mut body = Map::new();
    for (key, values) in attributes {
        if READ_ONLY.contains(&key.as_str()) {
            continue;
        }
        let leaf = key.rsplit('/').next().unwrap_or(key);
        let value = if COLLECTIONS.contains(&leaf) {
            Value::Array(values.iter().cloned().map(Value::String).collect())
        } else {
            match values.as_slice() {
                [] => Value::Null,
                [one] if BOOLEANS.contains(&leaf) => match one.to_ascii_lowercase().as_str() {
                    "true" => Value::Bool(true),
                    "false" => Value::Bool(false),
                    _ => {
                        return Err(invalid(key, "expects \"true\" or \"false\""));
                    }
                },
                [one] => Value::String(one.clone()),
                _ => return Err(invalid(key, "is single-valued but got several values")),
            }
        };
        insert_path(&mut body, key, value)?;
    }
    Ok(body)
}

fn insert_path(body: &mut Map<String, Value>, key: &str, value: Value) -> Result<(), TargetError> {
    match key.split_once('/') {
        None => {
            body.insert(key.to_string(), value);
            Ok(())
        }
        Some((parent, rest)) => {
            let entry = body
                .entry(parent.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            match entry {
                Value::Object(map) => insert_path(map, rest, value),
                _ => Err(invalid(key, "mixes a value and nested properties")),
            }
        }
    }
}

fn invalid(key: &str, why: &str) -> TargetError {
    TargetError::new(
        ErrorCategory::Validation,
        "partnersync_InvalidAttribute",
        format!("attribute {key} {why}"),
    )
}

/// A mailNickname from a UPN's local part: Graph allows ASCII letters, digits and a few
/// punctuation characters.
pub(crate) fn mail_nickname(upn: &str) -> String {
    let local = upn.split('@').next().unwrap_or(upn);
    let nick: String = local
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        .take(64)
        .collect();
    let nick = nick.trim_matches('.').to_string();
    if nick.is_empty() {
        "partner".to_string()
    } else {
        nick
    }
}

/// A 24-character password with all four character classes, from the OS random source.
/// Only ever placed in the create request body.
pub(crate) fn random_password() -> Result<String, TargetError> {
    const CLASSES: [&[u8]; 4] = [
        b"ABCDEFGHJKLMNPQRSTUVWXYZ",
        b"abcdefghijkmnopqrstuvwxyz",
        b"23456789",
        b"!#%+-.:=?@^_~",
    ];
    let mut bytes = [0u8; 48];
    getrandom::getrandom(&mut bytes).map_err(|e| {
        TargetError::new(
            ErrorCategory::Other,
            "partnersync_NoRandomness",
            format!("the OS random source failed: {e}"),
        )
    })?;
    let mut chars: Vec<u8> = Vec::with_capacity(24);
    for (i, b) in bytes[..24].iter().enumerate() {
        // The first four positions cover every class; the rest draw from all of them.
        let class = if i < 4 {
            CLASSES[i]
        } else {
            CLASSES[usize::from(*b) % 4]
        };
        chars.push(class[usize::from(bytes[24 + i]) % class.len()]);
    }
    // Shuffle so the class order is not predictable.
    for i in (1..chars.len()).rev() {
        let j = usize::from(bytes[i]) % (i + 1);
        chars.swap(i, j);
    }
    Ok(chars.into_iter().map(char::from).collect())
}

/// An OData string literal: single quotes doubled (`O'Brien` → `'O''Brien'`).
pub(crate) fn odata_string(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn flatten_and_build_round_trip() {
        let user = json!({"id": "x", "displayName": "Pat", "otherMails": ["a@b.c"],
            "accountEnabled": true, "jobTitle": null,
            "onPremisesExtensionAttributes": {"extensionAttribute1": "ps", "extensionAttribute2": null}});
        let Value::Object(map) = user else { return };
        let attrs = attributes_of(&map);
        assert!(!attrs.contains_key("id"));
        assert_eq!(attrs["accountEnabled"], vec!["true"]);
        assert!(attrs["jobTitle"].is_empty());
        assert_eq!(
            attrs["onPremisesExtensionAttributes/extensionAttribute1"],
            vec!["ps"]
        );
        let body = body_of(&attrs).unwrap_or_default();
        assert_eq!(body["accountEnabled"], json!(true));
        assert_eq!(body["jobTitle"], Value::Null);
        assert_eq!(body["otherMails"], json!(["a@b.c"]));
        assert_eq!(
            body["onPremisesExtensionAttributes"]["extensionAttribute2"],
            Value::Null
        );
    }

    #[test]
    fn bad_attribute_values() {
        let mut a = Attributes::new();
        a.insert("accountEnabled".into(), vec!["yes".into()]);
        assert!(body_of(&a).is_err());
        let mut a = Attributes::new();
        a.insert("displayName".into(), vec!["a".into(), "b".into()]);
        assert!(body_of(&a).is_err());
    }

    #[test]
    fn passwords_have_every_class() {
        for _ in 0..50 {
            let p = random_password().unwrap_or_default();
            assert_eq!(p.len(), 24);
            assert!(p.chars().any(|c| c.is_ascii_uppercase()));
            assert!(p.chars().any(|c| c.is_ascii_lowercase()));
            assert!(p.chars().any(|c| c.is_ascii_digit()));
            assert!(p.chars().any(|c| !c.is_ascii_alphanumeric()));
        }
    }

    #[test]
    fn quoting_and_nicknames() {
        assert_eq!(odata_string("O'Brien"), "'O''Brien'");
        assert_eq!(mail_nickname("pat.o'brien@x.com"), "pat.obrien");
        assert_eq!(mail_nickname("@x"), "partner");
    }
}
