//! `GET` and `DELETE /v1/responses/{id}`, `GET /v1/responses/{id}/input_items` (and without
//! `/v1`): the stored responses of bridged deployments, each readable only by the key that
//! created it or the master key (`proxy::responses`). `POST /v1/responses` is an LLM route
//! (`llm::responses`).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};

use crate::caller::Caller;
use crate::error::ApiError;
use crate::gateway::AppState;
use crate::proxy::responses::{self, ItemsQuery};

fn json(body: bytes::Bytes) -> Response {
    ([(CONTENT_TYPE, "application/json")], body).into_response()
}

pub async fn get(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    responses::get(&state, &caller, &id).await.map(json)
}

pub async fn delete(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    responses::delete(&state, &caller, &id).await.map(json)
}

pub async fn input_items(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    query: Result<Query<ItemsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::invalid(e.body_text(), "query"))?;
    responses::input_items_page(&state, &caller, &id, &query)
        .await
        .map(json)
}
