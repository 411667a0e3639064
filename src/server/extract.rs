//! Request bodies read with the gateway's own errors: a 400 naming what is wrong and a 413 for
//! oversized bodies, instead of axum's plain-text 4xx.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{FromRequest, Request};
use serde_json::{Map, Value};

use super::state::AppState;
use crate::error::{ApiError, ErrorKind};

/// A JSON object body, size-limited by `general_settings.max_request_size_mb`.
pub struct JsonObject(pub Map<String, Value>);

impl FromRequest<Arc<AppState>> for JsonObject {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        let limit = state.runtime().config.max_request_bytes;
        let body: Body = req.into_body();
        let bytes = axum::body::to_bytes(body, limit).await.map_err(|e| {
            let too_large = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            if too_large {
                ApiError::new(
                    ErrorKind::PayloadTooLarge,
                    format!("Request body is larger than the limit of {limit} bytes (general_settings.max_request_size_mb)."),
                )
            } else {
                ApiError::invalid("Could not read the request body.", "body")
            }
        })?;
        parse_object(&bytes).map(JsonObject)
    }
}

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
