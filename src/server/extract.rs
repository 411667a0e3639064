//! Request bodies read with the gateway's own errors: a 400 naming what is wrong and a 413 for
//! oversized bodies, instead of axum's plain-text 4xx. [`JsonObject`] reads a JSON object (the
//! LLM routes keep it as a map); [`Typed`] reads one as a typed request (`/key/*`,
//! `/v1/rag/*`).

use std::marker::PhantomData;

use axum::body::Body;
use axum::extract::{FromRequest, Request};
use serde_json::{Map, Value};

use crate::api::body::{RequestBody, read};
use crate::api::fields::parse_object;
use crate::error::{ApiError, ErrorKind};
use crate::server::ServerState;

/// A JSON object body, size-limited by `general_settings.max_request_size_mb`.
pub struct JsonObject(pub Map<String, Value>);

impl FromRequest<ServerState> for JsonObject {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &ServerState) -> Result<Self, Self::Rejection> {
        let limit = state.gateway.runtime().config.max_request_bytes;
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

/// A JSON object body (read as [`JsonObject`]: size limit, empty, not JSON, not an object) to
/// be read as the typed request `T` ([`crate::api::body::read`]: a field that does not fit is a
/// 400 naming it). The handler calls [`Typed::read`] after its own checks (the key store is up,
/// the caller may use RAG), so that those answer first whatever the fields hold.
pub struct Typed<T> {
    body: Map<String, Value>,
    request: PhantomData<fn() -> T>,
}

impl<T: RequestBody> Typed<T> {
    /// The body as `T`, or the 400 naming the field at fault.
    pub fn read(self) -> Result<T, ApiError> {
        read(self.body)
    }
}

impl<T> FromRequest<ServerState> for Typed<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &ServerState) -> Result<Self, Self::Rejection> {
        let JsonObject(body) = JsonObject::from_request(req, state).await?;
        Ok(Typed {
            body,
            request: PhantomData,
        })
    }
}

/// A query string read as `T`, with a 400 in the API's shape naming the parameter at fault
/// (axum's own `Query` answers plain text). Python clients write booleans as `True`: fields
/// that take them should read strings (see `routes::models`).
pub struct Queried<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> axum::extract::FromRequestParts<S>
    for Queried<T>
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::try_from_uri(&parts.uri) {
            Ok(axum::extract::Query(value)) => Ok(Queried(value)),
            Err(rejection) => {
                let text = rejection.body_text();
                let detail = text
                    .strip_prefix("Failed to deserialize query string: ")
                    .unwrap_or(&text)
                    .to_string();
                // axum names the parameter first ("page: invalid digit found in string").
                let param = detail
                    .split_once(": ")
                    .map(|(name, _)| name)
                    .filter(|name| !name.is_empty() && !name.contains(' '))
                    .unwrap_or("query")
                    .to_string();
                Err(ApiError::invalid(
                    format!("invalid query string: {detail}"),
                    param,
                ))
            }
        }
    }
}
