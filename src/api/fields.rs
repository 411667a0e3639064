//! Reading fields of a JSON request body with the gateway's own errors: a 400 whose message
//! and `param` name the field that is wrong. LLM bodies stay JSON maps (unknown fields pass
//! through to the provider), so these readers check the few fields the gateway itself needs.

use serde_json::{Map, Value};

use crate::error::ApiError;

/// Parses a body that must be a JSON object.
pub fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::invalid(
            "Request body is empty; expected a JSON object.",
            "body",
        ));
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::invalid(
            "Request body must be a JSON object.",
            "body",
        )),
        Err(e) => Err(ApiError::invalid(
            format!("Request body is not valid JSON: {e}"),
            "body",
        )),
    }
}

/// A required string field.
pub fn required_str<'a>(body: &'a Map<String, Value>, field: &str) -> Result<&'a str, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Err(ApiError::invalid(
            format!("'{field}' is a required field."),
            field,
        )),
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(Value::String(_)) => Err(ApiError::invalid(
            format!("'{field}' must not be empty."),
            field,
        )),
        Some(_) => Err(ApiError::invalid(
            format!("'{field}' must be a string."),
            field,
        )),
    }
}

/// An optional boolean field.
pub fn optional_bool(body: &Map<String, Value>, field: &str) -> Result<Option<bool>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(ApiError::invalid(
            format!("'{field}' must be a boolean."),
            field,
        )),
    }
}
