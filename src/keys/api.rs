//! Request bodies of the `/key/*` routes, with LiteLLM's field names, read as typed requests
//! ([`crate::api::body`]) with this API's own wording of a field that does not fit: `'key' is
//! required`, `invalid value for 'models': ...` (serde's message), or serde's message alone, as
//! `param` `body`, when no single field is at fault.

use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

use super::error::KeyError;
use crate::api::body::{BodyError, RequestBody, read};
use crate::error::ApiError;

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
    /// The key's model aliases: a requested model name → the model group it means.
    pub aliases: Option<Map<String, Value>>,
    /// Paths, `*` patterns or LiteLLM's route group names (`llm_api_routes`, `info_routes`,
    /// `management_routes`, ...) the key may call.
    pub allowed_routes: Option<Vec<String>>,
    /// `llm_api`, `management`, `read_only` or `default`: a preset of `allowed_routes`.
    pub key_type: Option<KeyType>,
    /// Model → `{"budget_limit": dollars, "time_period": "1d"}`.
    pub model_max_budget: Option<Map<String, Value>>,
    /// Spend at which the crossing is reported (logged and counted once), not refused.
    pub soft_budget: Option<f64>,
    /// Stored in `metadata.tags`, as LiteLLM does; every request of the key carries them.
    pub tags: Option<Vec<String>>,
    pub config: Option<Map<String, Value>>,
    pub permissions: Option<Map<String, Value>>,
    pub allowed_cache_controls: Option<Vec<String>>,
    /// Stored in `metadata` under their names, as LiteLLM does.
    pub guardrails: Option<Vec<String>>,
    pub model_rpm_limit: Option<Map<String, Value>>,
    pub model_tpm_limit: Option<Map<String, Value>>,
    pub enforced_params: Option<Vec<String>>,
    /// Accepted and ignored (LiteLLM's invitation e-mails).
    pub send_invite_email: Option<bool>,
}

/// LiteLLM's `key_type`: which preset of `allowed_routes` a new key gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyType {
    LlmApi,
    Management,
    ReadOnly,
    Default,
}

impl KeyType {
    /// The `allowed_routes` LiteLLM writes for the type (`handle_key_type`); `None` leaves
    /// them as given.
    pub fn allowed_routes(self) -> Option<Vec<String>> {
        let group = match self {
            KeyType::LlmApi => "llm_api_routes",
            KeyType::Management => "management_routes",
            KeyType::ReadOnly => "info_routes",
            KeyType::Default => return None,
        };
        Some(vec![group.to_string()])
    }
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
    #[serde(default, deserialize_with = "nullable")]
    pub aliases: Option<Option<Map<String, Value>>>,
    #[serde(default, deserialize_with = "nullable")]
    pub allowed_routes: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "nullable")]
    pub model_max_budget: Option<Option<Map<String, Value>>>,
    #[serde(default, deserialize_with = "nullable")]
    pub soft_budget: Option<Option<f64>>,
    #[serde(default, deserialize_with = "nullable")]
    pub tags: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "nullable")]
    pub config: Option<Option<Map<String, Value>>>,
    #[serde(default, deserialize_with = "nullable")]
    pub permissions: Option<Option<Map<String, Value>>>,
    #[serde(default, deserialize_with = "nullable")]
    pub allowed_cache_controls: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "nullable")]
    pub guardrails: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "nullable")]
    pub model_rpm_limit: Option<Option<Map<String, Value>>>,
    #[serde(default, deserialize_with = "nullable")]
    pub model_tpm_limit: Option<Option<Map<String, Value>>>,
    #[serde(default, deserialize_with = "nullable")]
    pub enforced_params: Option<Option<Vec<String>>>,
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
    #[serde(default, deserialize_with = "crate::api::body::query_bool")]
    pub return_full_object: Option<bool>,
}

/// Distinguishes a field set to `null` (`Some(None)`) from an absent one (`None`).
pub fn nullable<'de, T, D>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

impl RequestBody for GenerateKeyRequest {
    fn rejection(error: BodyError, body: &Map<String, Value>) -> ApiError {
        rejection::<Self>(error, body)
    }
}

impl RequestBody for UpdateKeyRequest {
    fn rejection(error: BodyError, body: &Map<String, Value>) -> ApiError {
        rejection::<Self>(error, body)
    }
}

impl RequestBody for DeleteKeyRequest {
    fn rejection(error: BodyError, body: &Map<String, Value>) -> ApiError {
        rejection::<Self>(error, body)
    }
}

impl RequestBody for BlockKeyRequest {
    fn rejection(error: BodyError, body: &Map<String, Value>) -> ApiError {
        rejection::<Self>(error, body)
    }
}

/// A missing field is `'key' is required`; a field at fault `invalid value for 'models': ...`
/// with serde's message. A field is at fault when the body reads without it; when it does not
/// (a second field is wrong, or the field is a required one), the 400 is serde's message alone
/// and names the body.
fn rejection<T: RequestBody>(error: BodyError, body: &Map<String, Value>) -> ApiError {
    let message = error.message();
    if let Some(field) = missing_field(message) {
        return KeyError::invalid(format!("'{field}' is required"), field).into();
    }
    if let Some(field) = error.field() {
        let mut without = body.clone();
        without.remove(field);
        if T::deserialize(&without).is_ok() {
            return KeyError::invalid(format!("invalid value for '{field}': {message}"), field)
                .into();
        }
    }
    KeyError::invalid(message, "body").into()
}

/// serde's "missing field `key`" names the field between backticks.
fn missing_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("missing field `")?;
    Some(rest.split('`').next()?.to_string())
}

/// A request from a JSON value (for callers without HTTP: tests, tools): an object is read
/// like a request body; anything else is a 400.
pub(crate) fn from_json<T: RequestBody>(body: Value) -> Result<T, ApiError> {
    match body {
        Value::Object(body) => read(body),
        _ => Err(KeyError::invalid("request body must be a JSON object", "body").into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use serde_json::json;

    #[test]
    fn the_bad_field_is_named() {
        let err = from_json::<GenerateKeyRequest>(json!({"models": "gpt-4o", "key_alias": "a"}))
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidRequest, "{err:?}");
        assert_eq!(err.param.as_deref(), Some("models"), "{err:?}");
        let err = from_json::<UpdateKeyRequest>(json!({"models": []})).unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidRequest, "{err:?}");
        assert_eq!(err.param.as_deref(), Some("key"), "{err:?}");
        let err = from_json::<GenerateKeyRequest>(json!([1])).unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidRequest, "{err:?}");
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
                "generate" => from_json::<GenerateKeyRequest>(body).map(drop),
                "update" => from_json::<UpdateKeyRequest>(body).map(drop),
                "delete" => from_json::<DeleteKeyRequest>(body).map(drop),
                "block" => from_json::<BlockKeyRequest>(body).map(drop),
                other => panic!("unknown request {other}"),
            };
            let answer = match result {
                Ok(()) => json!("ok"),
                Err(e) => e.body_json()["error"].clone(),
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
            from_json(json!({"key": "sk-1", "max_budget": null, "models": ["a"]})).unwrap();
        assert_eq!(u.max_budget, Some(None));
        assert_eq!(u.models, Some(Some(vec!["a".to_string()])));
        assert_eq!(u.rpm_limit, None);
    }
}
