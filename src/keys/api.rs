//! Request bodies of the `/key/*` routes, with LiteLLM's field names, and the JSON parsing
//! that names the offending field in a 400.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

use super::error::KeyError;

/// `POST /key/generate`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct GenerateKeyRequest {
    /// A caller-chosen key (must start with `sk-`); generated when absent.
    pub key: Option<String>,
    pub models: Option<Vec<String>>,
    /// Lifetime: "30s", "10m", "24h", "30d"; absent or null means no expiry.
    pub duration: Option<String>,
    pub key_alias: Option<String>,
    pub max_budget: Option<f64>,
    pub budget_duration: Option<String>,
    pub rpm_limit: Option<i64>,
    pub tpm_limit: Option<i64>,
    pub max_parallel_requests: Option<i32>,
    pub metadata: Option<Map<String, Value>>,
    pub user_id: Option<String>,
    pub team_id: Option<String>,
    pub spend: Option<f64>,
    pub blocked: Option<bool>,
}

/// `POST /key/update`. A field absent is left alone; a field set to `null` is cleared.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct UpdateKeyRequest {
    /// The key (`sk-...`) or its token hash.
    pub key: String,
    #[serde(default, deserialize_with = "nullable")]
    pub models: Option<Option<Vec<String>>>,
    /// A new lifetime counted from now; `null` or "-1" removes the expiry.
    #[serde(default, deserialize_with = "nullable")]
    pub duration: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub key_alias: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub max_budget: Option<Option<f64>>,
    #[serde(default, deserialize_with = "nullable")]
    pub budget_duration: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub rpm_limit: Option<Option<i64>>,
    #[serde(default, deserialize_with = "nullable")]
    pub tpm_limit: Option<Option<i64>>,
    #[serde(default, deserialize_with = "nullable")]
    pub max_parallel_requests: Option<Option<i32>>,
    #[serde(default, deserialize_with = "nullable")]
    pub metadata: Option<Option<Map<String, Value>>>,
    #[serde(default, deserialize_with = "nullable")]
    pub user_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub team_id: Option<Option<String>>,
    pub spend: Option<f64>,
    pub blocked: Option<bool>,
}

/// `POST /key/delete`: `{"keys": [...]}` (keys or hashes) or `{"key_aliases": [...]}`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct DeleteKeyRequest {
    pub keys: Option<Vec<String>>,
    pub key_aliases: Option<Vec<String>>,
}

/// `POST /key/block` and `POST /key/unblock`: `{"key": "sk-..." or hash}`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct BlockKeyRequest {
    pub key: String,
}

/// `GET /key/list` query parameters.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ListKeysQuery {
    /// 1-based page number (default 1).
    pub page: Option<u32>,
    /// Keys per page (default 10, at most 100).
    pub size: Option<u32>,
    pub user_id: Option<String>,
    pub team_id: Option<String>,
    pub key_alias: Option<String>,
    /// Full key objects instead of token hashes.
    pub return_full_object: Option<bool>,
}

/// Distinguishes a field set to `null` (`Some(None)`) from an absent one (`None`).
fn nullable<'de, T, D>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// Parses a request body, naming the field at fault in the error: the first field whose
/// removal makes the body parse, or the missing required field.
pub(crate) fn parse_body<T: DeserializeOwned>(body: Value) -> Result<T, KeyError> {
    let Value::Object(map) = body else {
        return Err(KeyError::invalid(
            "request body must be a JSON object",
            "body",
        ));
    };
    match serde_json::from_value::<T>(Value::Object(map.clone())) {
        Ok(parsed) => Ok(parsed),
        Err(error) => {
            let message = error.to_string();
            if let Some(field) = missing_field(&message) {
                return Err(KeyError::invalid(format!("'{field}' is required"), field));
            }
            for field in map.keys() {
                let mut without = map.clone();
                without.remove(field);
                if serde_json::from_value::<T>(Value::Object(without)).is_ok() {
                    return Err(KeyError::invalid(
                        format!("invalid value for '{field}': {message}"),
                        field.clone(),
                    ));
                }
            }
            Err(KeyError::invalid(message, "body"))
        }
    }
}

/// serde's "missing field `key`" names the field between backticks.
fn missing_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("missing field `")?;
    Some(rest.split('`').next()?.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_bad_field_is_named() {
        let err = parse_body::<GenerateKeyRequest>(json!({"models": "gpt-4o", "key_alias": "a"}))
            .unwrap_err();
        assert!(
            matches!(err, KeyError::Invalid { ref field, .. } if field == "models"),
            "{err:?}"
        );
        let err = parse_body::<UpdateKeyRequest>(json!({"models": []})).unwrap_err();
        assert!(
            matches!(err, KeyError::Invalid { ref field, .. } if field == "key"),
            "{err:?}"
        );
        let err = parse_body::<GenerateKeyRequest>(json!([1])).unwrap_err();
        assert!(matches!(err, KeyError::Invalid { .. }));
    }

    /// Every answer to the bodies of `tests/fixtures/key-request-answers.jsonl` is the one
    /// recorded there (message and `param`), including bodies with several wrong fields. The
    /// file was recorded from the reading the typed requests replaced.
    #[test]
    fn request_bodies_answer_as_recorded() {
        let cases = include_str!("../../tests/fixtures/key-request-answers.jsonl");
        let mut wrong = Vec::new();
        for line in cases.lines() {
            let case: Value = serde_json::from_str(line).unwrap();
            let body = case["body"].clone();
            let result = match case["request"].as_str().unwrap() {
                "generate" => parse_body::<GenerateKeyRequest>(body).map(drop),
                "update" => parse_body::<UpdateKeyRequest>(body).map(drop),
                "delete" => parse_body::<DeleteKeyRequest>(body).map(drop),
                "block" => parse_body::<BlockKeyRequest>(body).map(drop),
                other => panic!("unknown request {other}"),
            };
            let answer = match result {
                Ok(()) => json!("ok"),
                Err(e) => crate::error::ApiError::from(e).body_json()["error"].clone(),
            };
            if answer != case["answer"] {
                wrong.push(format!("{line}\n  answered {answer}"));
            }
        }
        assert!(
            wrong.is_empty(),
            "{} cases differ:\n{}",
            wrong.len(),
            wrong.join("\n")
        );
    }

    #[test]
    fn null_and_absent_differ_on_update() {
        let u: UpdateKeyRequest =
            parse_body(json!({"key": "sk-1", "max_budget": null, "models": ["a"]})).unwrap();
        assert_eq!(u.max_budget, Some(None));
        assert_eq!(u.models, Some(Some(vec!["a".to_string()])));
        assert_eq!(u.rpm_limit, None);
    }
}
