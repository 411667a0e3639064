//! `/customer/*` (also served as `/end_user/*`) and `/budget/*`: LiteLLM's end user and budget
//! routes, for proxy admins (the list routes also for viewers). The operations are in
//! [`crate::manage::customers`].

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde_json::Value;

use super::keys::keys;
use crate::error::ApiError;
use crate::gateway::AppState;
use crate::manage::customers::{
    BudgetDeleteRequest, BudgetInfoRequest, BudgetRequest, CustomerIdsRequest, CustomerInfoQuery,
    Customers, NewCustomerRequest, UpdateCustomerRequest,
};
use crate::server::auth::{Admin, Managed};
use crate::server::extract::{Queried, Typed};

fn customers(state: &AppState) -> Result<Customers<'_>, ApiError> {
    let models = state
        .runtime()
        .router
        .group_names()
        .map(str::to_string)
        .collect();
    Ok(Customers::new(keys(state)?, models))
}

pub async fn create(
    State(state): State<Arc<AppState>>,
    Admin(principal): Admin,
    body: Typed<NewCustomerRequest>,
) -> Result<Json<Value>, ApiError> {
    customers(&state)?
        .create(&principal, body.read()?)
        .await
        .map(Json)
}

pub async fn update(
    State(state): State<Arc<AppState>>,
    Admin(principal): Admin,
    body: Typed<UpdateCustomerRequest>,
) -> Result<Json<Value>, ApiError> {
    customers(&state)?
        .update(&principal, body.read()?)
        .await
        .map(Json)
}

pub async fn delete(
    State(state): State<Arc<AppState>>,
    _: Admin,
    body: Typed<CustomerIdsRequest>,
) -> Result<Json<Value>, ApiError> {
    customers(&state)?.delete(body.read()?).await.map(Json)
}

pub async fn block(
    State(state): State<Arc<AppState>>,
    _: Admin,
    body: Typed<CustomerIdsRequest>,
) -> Result<Json<Value>, ApiError> {
    customers(&state)?
        .set_blocked(body.read()?, true)
        .await
        .map(Json)
}

pub async fn unblock(
    State(state): State<Arc<AppState>>,
    _: Admin,
    body: Typed<CustomerIdsRequest>,
) -> Result<Json<Value>, ApiError> {
    customers(&state)?
        .set_blocked(body.read()?, false)
        .await
        .map(Json)
}

/// Viewers read customers too (LiteLLM's `admin_viewer_routes`).
pub async fn info(
    State(state): State<Arc<AppState>>,
    _: Managed,
    Queried(query): Queried<CustomerInfoQuery>,
) -> Result<Json<Value>, ApiError> {
    customers(&state)?
        .info(query.end_user_id.as_deref())
        .await
        .map(Json)
}

pub async fn list(
    State(state): State<Arc<AppState>>,
    Managed(principal): Managed,
) -> Result<Json<Value>, ApiError> {
    customers(&state)?.list(&principal).await.map(Json)
}

pub async fn new_budget(
    State(state): State<Arc<AppState>>,
    Admin(principal): Admin,
    body: Typed<BudgetRequest>,
) -> Result<Json<Value>, ApiError> {
    customers(&state)?
        .new_budget(&principal, body.read()?)
        .await
        .map(Json)
}

pub async fn update_budget(
    State(state): State<Arc<AppState>>,
    Admin(principal): Admin,
    body: Typed<BudgetRequest>,
) -> Result<Json<Value>, ApiError> {
    customers(&state)?
        .update_budget(&principal, body.read()?)
        .await
        .map(Json)
}

pub async fn budget_info(
    State(state): State<Arc<AppState>>,
    _: Admin,
    body: Typed<BudgetInfoRequest>,
) -> Result<Json<Value>, ApiError> {
    customers(&state)?.budget_info(body.read()?).await.map(Json)
}

pub async fn list_budgets(
    State(state): State<Arc<AppState>>,
    Managed(principal): Managed,
) -> Result<Json<Value>, ApiError> {
    customers(&state)?.list_budgets(&principal).await.map(Json)
}

pub async fn delete_budget(
    State(state): State<Arc<AppState>>,
    _: Admin,
    body: Typed<BudgetDeleteRequest>,
) -> Result<Json<Value>, ApiError> {
    customers(&state)?
        .delete_budget(body.read()?)
        .await
        .map(Json)
}
