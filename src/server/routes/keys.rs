//! `/key/*`: LiteLLM's key management routes (and `/key/regenerate`). Master key only, except a key reading its own
//! `/key/info`. Bodies are read as the typed requests of [`crate::keys`], after the key store
//! is known to be up.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::Value;

use crate::caller::Caller;
use crate::error::{ApiError, ErrorKind};
use crate::gateway::AppState;
use crate::keys::{
    BlockKeyRequest, DeleteKeyRequest, GenerateKeyRequest, KeyService, ListKeysQuery,
    UpdateKeyRequest,
};
use crate::secret::{constant_time_eq, hash_key};
use crate::server::auth::Admin;
use crate::server::extract::{JsonObject, Queried, Typed};

fn keys(state: &AppState) -> Result<&KeyService, ApiError> {
    state.keys().ok_or_else(|| {
        ApiError::new(
            ErrorKind::Unavailable,
            "The key store is not available yet; try again shortly.",
        )
    })
}

pub async fn generate(
    State(state): State<Arc<AppState>>,
    _: Admin,
    body: Typed<GenerateKeyRequest>,
) -> Result<Json<Value>, ApiError> {
    let keys = keys(&state)?;
    Ok(Json(keys.generate_key(body.read()?).await?))
}

pub async fn update(
    State(state): State<Arc<AppState>>,
    _: Admin,
    body: Typed<UpdateKeyRequest>,
) -> Result<Json<Value>, ApiError> {
    let keys = keys(&state)?;
    Ok(Json(keys.update_key(body.read()?).await?))
}

/// `POST /key/regenerate` (the key in the body).
pub async fn regenerate(
    State(state): State<Arc<AppState>>,
    _: Admin,
    JsonObject(body): JsonObject,
) -> Result<Json<Value>, ApiError> {
    let keys = keys(&state)?;
    Ok(Json(keys.regenerate(None, body).await?))
}

/// `POST /key/{key}/regenerate` (the key in the path, unless the body names one). The body
/// may be empty.
pub async fn regenerate_path(
    State(state): State<Arc<AppState>>,
    _: Admin,
    Path(key): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let keys = keys(&state)?;
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        serde_json::Map::new()
    } else {
        match serde_json::from_slice(&body) {
            Ok(Value::Object(map)) => map,
            _ => {
                return Err(ApiError::invalid("the body must be a JSON object", "body"));
            }
        }
    };
    Ok(Json(keys.regenerate(Some(&key), body).await?))
}

pub async fn delete(
    State(state): State<Arc<AppState>>,
    _: Admin,
    body: Typed<DeleteKeyRequest>,
) -> Result<Json<Value>, ApiError> {
    let keys = keys(&state)?;
    Ok(Json(keys.delete_keys(body.read()?).await?))
}

pub async fn block(
    State(state): State<Arc<AppState>>,
    _: Admin,
    body: Typed<BlockKeyRequest>,
) -> Result<Json<Value>, ApiError> {
    let keys = keys(&state)?;
    Ok(Json(keys.set_blocked(&body.read()?.key, true).await?))
}

pub async fn unblock(
    State(state): State<Arc<AppState>>,
    _: Admin,
    body: Typed<BlockKeyRequest>,
) -> Result<Json<Value>, ApiError> {
    let keys = keys(&state)?;
    Ok(Json(keys.set_blocked(&body.read()?.key, false).await?))
}

pub async fn list(
    State(state): State<Arc<AppState>>,
    _: Admin,
    Queried(query): Queried<ListKeysQuery>,
) -> Result<Json<Value>, ApiError> {
    keys(&state)?.list(&query).await.map(Json)
}

#[derive(Debug, Deserialize)]
pub struct InfoQuery {
    key: Option<String>,
}

/// The master key may read any key; a virtual key only itself (its own when `key` is absent).
pub async fn info(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Queried(query): Queried<InfoQuery>,
) -> Result<Json<Value>, ApiError> {
    let asked = match (&caller, query.key) {
        (Caller::Key(own), None) => own.token.clone(),
        (_, Some(key)) => key,
        (_, None) => {
            return Err(ApiError::invalid(
                "'key' is a required query parameter.",
                "key",
            ));
        }
    };
    if let Caller::Key(own) = &caller {
        if own.unverified {
            return Err(ApiError::new(
                ErrorKind::Permission,
                "The key could not be verified (the key database is unavailable); management routes need a verified key.",
            ));
        }
        let asked_hash = if asked.starts_with("sk-") {
            hash_key(&asked)
        } else {
            asked.clone()
        };
        if !constant_time_eq(asked_hash.as_bytes(), own.token.as_bytes()) {
            return Err(ApiError::new(
                ErrorKind::Auth,
                "A key may only read its own info; this needs the master key.",
            ));
        }
    }
    keys(&state)?.info(&asked).await.map(Json)
}
