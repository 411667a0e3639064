//! `/key/*`: LiteLLM's key management routes (and `/key/regenerate`). A proxy admin manages
//! every key; another caller its own (and its team's as the team's admin), as
//! [`crate::manage::keys`] decides. Bodies are read as the typed requests of [`crate::keys`],
//! after the key store is known to be up.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::Value;

use crate::error::{ApiError, ErrorKind};
use crate::gateway::AppState;
use crate::keys::{
    BlockKeyRequest, DeleteKeyRequest, GenerateKeyRequest, KeyService, ListKeysQuery,
    UpdateKeyRequest,
};
use crate::manage::keys::{KeyAccess, regenerate_target};
use crate::server::auth::Managed;
use crate::server::extract::{JsonObject, Queried, Typed};

/// The key service, or 503 while the key store is not up.
pub(crate) fn keys(state: &AppState) -> Result<&KeyService, ApiError> {
    state.keys().ok_or_else(|| {
        ApiError::new(
            ErrorKind::Unavailable,
            "The key store is not available yet; try again shortly.",
        )
    })
}

pub async fn generate(
    State(state): State<Arc<AppState>>,
    Managed(principal): Managed,
    body: Typed<GenerateKeyRequest>,
) -> Result<Json<Value>, ApiError> {
    let keys = keys(&state)?;
    let mut request = body.read()?;
    KeyAccess::new(keys, &principal)
        .check_generate(&mut request)
        .await?;
    Ok(Json(keys.generate_key(request).await?))
}

pub async fn update(
    State(state): State<Arc<AppState>>,
    Managed(principal): Managed,
    body: Typed<UpdateKeyRequest>,
) -> Result<Json<Value>, ApiError> {
    let keys = keys(&state)?;
    let request = body.read()?;
    let access = KeyAccess::new(keys, &principal);
    access.check_write(&request.key).await?;
    // Only a proxy admin moves a key to another user or team, or changes its spend.
    if !principal.is_proxy_admin()
        && (request.user_id.is_some() || request.team_id.is_some() || request.spend.is_some())
    {
        return Err(ApiError::new(
            ErrorKind::Permission,
            "Only a proxy admin may change a key's user_id, team_id or spend",
        ));
    }
    Ok(Json(keys.update_key(request).await?))
}

/// `POST /key/regenerate` (the key in the body).
pub async fn regenerate(
    State(state): State<Arc<AppState>>,
    Managed(principal): Managed,
    JsonObject(body): JsonObject,
) -> Result<Json<Value>, ApiError> {
    let keys = keys(&state)?;
    if let Some(key) = regenerate_target(&body) {
        KeyAccess::new(keys, &principal).check_write(key).await?;
    } else if !principal.is_proxy_admin() {
        return Err(ApiError::invalid("No key passed in.", "key"));
    }
    Ok(Json(keys.regenerate(None, body).await?))
}

/// `POST /key/{key}/regenerate` (the key in the path, unless the body names one). The body
/// may be empty.
pub async fn regenerate_path(
    State(state): State<Arc<AppState>>,
    Managed(principal): Managed,
    Path(key): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let keys = keys(&state)?;
    KeyAccess::new(keys, &principal).check_write(&key).await?;
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
    if let Some(named) = regenerate_target(&body) {
        KeyAccess::new(keys, &principal).check_write(named).await?;
    }
    Ok(Json(keys.regenerate(Some(&key), body).await?))
}

pub async fn delete(
    State(state): State<Arc<AppState>>,
    Managed(principal): Managed,
    body: Typed<DeleteKeyRequest>,
) -> Result<Json<Value>, ApiError> {
    let keys = keys(&state)?;
    let request = body.read()?;
    KeyAccess::new(keys, &principal)
        .check_delete(request.keys.as_deref(), request.key_aliases.as_deref())
        .await?;
    Ok(Json(keys.delete_keys(request).await?))
}

pub async fn block(
    State(state): State<Arc<AppState>>,
    Managed(principal): Managed,
    body: Typed<BlockKeyRequest>,
) -> Result<Json<Value>, ApiError> {
    let keys = keys(&state)?;
    let key = body.read()?.key;
    KeyAccess::new(keys, &principal).check_write(&key).await?;
    Ok(Json(keys.set_blocked(&key, true).await?))
}

pub async fn unblock(
    State(state): State<Arc<AppState>>,
    Managed(principal): Managed,
    body: Typed<BlockKeyRequest>,
) -> Result<Json<Value>, ApiError> {
    let keys = keys(&state)?;
    let key = body.read()?.key;
    KeyAccess::new(keys, &principal).check_write(&key).await?;
    Ok(Json(keys.set_blocked(&key, false).await?))
}

/// A proxy admin or viewer lists every key; another caller its own (or its team's).
pub async fn list(
    State(state): State<Arc<AppState>>,
    Managed(principal): Managed,
    Queried(mut query): Queried<ListKeysQuery>,
) -> Result<Json<Value>, ApiError> {
    let keys = keys(&state)?;
    KeyAccess::new(keys, &principal)
        .scope_list(&mut query)
        .await?;
    keys.list(&query).await.map(Json)
}

#[derive(Debug, Deserialize)]
pub struct InfoQuery {
    key: Option<String>,
}

/// Any key reads itself (its own when `key` is absent); another key as
/// [`KeyAccess::check_read`] allows (LiteLLM's 403, or 404 when the key is unknown).
pub async fn info(
    State(state): State<Arc<AppState>>,
    Managed(principal): Managed,
    Queried(query): Queried<InfoQuery>,
) -> Result<Json<Value>, ApiError> {
    let keys = keys(&state)?;
    let asked = match (principal.key(), query.key) {
        (Some(own), None) => own.token.clone(),
        (_, Some(key)) => key,
        (None, None) => {
            return Err(ApiError::invalid(
                "'key' is a required query parameter.",
                "key",
            ));
        }
    };
    KeyAccess::new(keys, &principal).check_read(&asked).await?;
    keys.info(&asked).await.map(Json)
}
