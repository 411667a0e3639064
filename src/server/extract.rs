//! Request bodies read with the gateway's own errors: a 400 naming what is wrong and a 413 for
//! oversized bodies, instead of axum's plain-text 4xx.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{FromRequest, Request};
use serde_json::{Map, Value};

use crate::api::fields::parse_object;
use crate::error::{ApiError, ErrorKind};
use crate::gateway::AppState;

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
