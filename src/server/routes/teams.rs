//! `/team/*`: LiteLLM's team management routes. The extractor in each signature says who may
//! call it ([`Admin`]: proxy admins; [`Managed`]: the handler's operation scopes itself to the
//! caller's team); the operations are in [`crate::manage::teams`].

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde_json::Value;

use super::keys::keys;
use crate::error::ApiError;
use crate::gateway::AppState;
use crate::manage::teams::{
    BlockTeamRequest, DeleteTeamRequest, MemberAddRequest, MemberDeleteRequest,
    MemberUpdateRequest, NewTeamRequest, TeamInfoQuery, TeamListQuery, TeamModelsRequest, Teams,
    UpdateTeamRequest,
};
use crate::server::auth::{Admin, Managed};
use crate::server::extract::{Queried, Typed};

pub async fn create(
    State(state): State<Arc<AppState>>,
    Admin(principal): Admin,
    body: Typed<NewTeamRequest>,
) -> Result<Json<Value>, ApiError> {
    let keys = keys(&state)?;
    Teams::new(keys)
        .create(&principal, body.read()?)
        .await
        .map(Json)
}

pub async fn update(
    State(state): State<Arc<AppState>>,
    Admin(principal): Admin,
    body: Typed<UpdateTeamRequest>,
) -> Result<Json<Value>, ApiError> {
    let keys = keys(&state)?;
    Teams::new(keys)
        .update(&principal, body.read()?)
        .await
        .map(Json)
}

pub async fn delete(
    State(state): State<Arc<AppState>>,
    _: Admin,
    body: Typed<DeleteTeamRequest>,
) -> Result<Json<Value>, ApiError> {
    let keys = keys(&state)?;
    Teams::new(keys).delete(body.read()?).await.map(Json)
}

pub async fn info(
    State(state): State<Arc<AppState>>,
    Managed(principal): Managed,
    Queried(query): Queried<TeamInfoQuery>,
) -> Result<Json<Value>, ApiError> {
    let keys = keys(&state)?;
    Teams::new(keys)
        .info(&principal, query.team_id.as_deref())
        .await
        .map(Json)
}

pub async fn list(
    State(state): State<Arc<AppState>>,
    Managed(principal): Managed,
    Queried(query): Queried<TeamListQuery>,
) -> Result<Json<Value>, ApiError> {
    let keys = keys(&state)?;
    Teams::new(keys).list(&principal, &query).await.map(Json)
}

pub async fn block(
    State(state): State<Arc<AppState>>,
    _: Admin,
    body: Typed<BlockTeamRequest>,
) -> Result<Json<Value>, ApiError> {
    let keys = keys(&state)?;
    Teams::new(keys)
        .set_blocked(&body.read()?.team_id, true)
        .await
        .map(Json)
}

pub async fn unblock(
    State(state): State<Arc<AppState>>,
    _: Admin,
    body: Typed<BlockTeamRequest>,
) -> Result<Json<Value>, ApiError> {
    let keys = keys(&state)?;
    Teams::new(keys)
        .set_blocked(&body.read()?.team_id, false)
        .await
        .map(Json)
}

pub async fn add_models(
    State(state): State<Arc<AppState>>,
    Admin(principal): Admin,
    body: Typed<TeamModelsRequest>,
) -> Result<Json<Value>, ApiError> {
    let keys = keys(&state)?;
    Teams::new(keys)
        .change_models(&principal, body.read()?, true)
        .await
        .map(Json)
}

pub async fn delete_models(
    State(state): State<Arc<AppState>>,
    Admin(principal): Admin,
    body: Typed<TeamModelsRequest>,
) -> Result<Json<Value>, ApiError> {
    let keys = keys(&state)?;
    Teams::new(keys)
        .change_models(&principal, body.read()?, false)
        .await
        .map(Json)
}

/// Team admins manage their own team's members.
pub async fn member_add(
    State(state): State<Arc<AppState>>,
    Managed(principal): Managed,
    body: Typed<MemberAddRequest>,
) -> Result<Json<Value>, ApiError> {
    let keys = keys(&state)?;
    Teams::new(keys)
        .add_members(&principal, body.read()?)
        .await
        .map(Json)
}

pub async fn member_delete(
    State(state): State<Arc<AppState>>,
    Managed(principal): Managed,
    body: Typed<MemberDeleteRequest>,
) -> Result<Json<Value>, ApiError> {
    let keys = keys(&state)?;
    Teams::new(keys)
        .delete_member(&principal, body.read()?)
        .await
        .map(Json)
}

pub async fn member_update(
    State(state): State<Arc<AppState>>,
    Managed(principal): Managed,
    body: Typed<MemberUpdateRequest>,
) -> Result<Json<Value>, ApiError> {
    let keys = keys(&state)?;
    Teams::new(keys)
        .update_member(&principal, body.read()?)
        .await
        .map(Json)
}
