//! `/user/*`: LiteLLM's user management routes. [`Admin`] routes are for proxy admins;
//! [`Managed`] ones scope themselves to the caller's own user (or let an admin or viewer read
//! any); the operations are in [`crate::manage::users`].

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde_json::Value;

use super::keys::keys;
use crate::error::ApiError;
use crate::gateway::AppState;
use crate::manage::users::{
    DeleteUserRequest, NewUserRequest, UpdateUserRequest, UserInfoQuery, UserListQuery, Users,
};
use crate::server::auth::{Admin, Managed};
use crate::server::extract::{Queried, Typed};

pub async fn create(
    State(state): State<Arc<AppState>>,
    Admin(principal): Admin,
    body: Typed<NewUserRequest>,
) -> Result<Json<Value>, ApiError> {
    let keys = keys(&state)?;
    Users::new(keys)
        .create(&principal, body.read()?)
        .await
        .map(Json)
}

pub async fn update(
    State(state): State<Arc<AppState>>,
    Managed(principal): Managed,
    body: Typed<UpdateUserRequest>,
) -> Result<Json<Value>, ApiError> {
    let keys = keys(&state)?;
    Users::new(keys)
        .update(&principal, body.read()?)
        .await
        .map(Json)
}

pub async fn delete(
    State(state): State<Arc<AppState>>,
    _: Admin,
    body: Typed<DeleteUserRequest>,
) -> Result<Json<Value>, ApiError> {
    let keys = keys(&state)?;
    Users::new(keys).delete(body.read()?).await.map(Json)
}

pub async fn info(
    State(state): State<Arc<AppState>>,
    Managed(principal): Managed,
    Queried(query): Queried<UserInfoQuery>,
) -> Result<Json<Value>, ApiError> {
    let keys = keys(&state)?;
    Users::new(keys)
        .info(&principal, query.user_id.as_deref())
        .await
        .map(Json)
}

pub async fn list(
    State(state): State<Arc<AppState>>,
    Managed(principal): Managed,
    Queried(query): Queried<UserListQuery>,
) -> Result<Json<Value>, ApiError> {
    let keys = keys(&state)?;
    Users::new(keys).list(&principal, &query).await.map(Json)
}
