//! `/v1/chat/completions`, `/v1/completions`, `/v1/embeddings` (and their unprefixed twins).

use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::providers::Endpoint;
use crate::proxy::{self, LlmRequest};
use crate::server::auth::Caller;
use crate::server::extract::JsonObject;
use crate::server::state::AppState;

pub async fn chat_completions(
    state: State<Arc<AppState>>,
    caller: Caller,
    body: JsonObject,
) -> Result<Response, ApiError> {
    Ok(run_logged(state, caller, Endpoint::Chat, body).await)
}

pub async fn completions(
    state: State<Arc<AppState>>,
    caller: Caller,
    body: JsonObject,
) -> Result<Response, ApiError> {
    Ok(run_logged(state, caller, Endpoint::Completion, body).await)
}

pub async fn embeddings(
    state: State<Arc<AppState>>,
    caller: Caller,
    body: JsonObject,
) -> Result<Response, ApiError> {
    Ok(run_logged(state, caller, Endpoint::Embedding, body).await)
}

async fn run_logged(
    state: State<Arc<AppState>>,
    caller: Caller,
    endpoint: Endpoint,
    body: JsonObject,
) -> Response {
    let info = caller.log_info();
    let mut response = match run(state, caller, endpoint, body).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    };
    response.extensions_mut().insert(info);
    response
}

async fn run(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    endpoint: Endpoint,
    JsonObject(body): JsonObject,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let request = LlmRequest::parse(endpoint, body)?;
    let reply = proxy::handle(&state, &caller, request, started).await?;
    Ok(crate::server::response::into_response(reply))
}
