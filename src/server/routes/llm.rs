//! `/v1/chat/completions`, `/v1/completions`, `/v1/embeddings`, `/v1/responses` (and their
//! unprefixed twins).

use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::response::{IntoResponse, Response};

use crate::api::Endpoint;
use crate::caller::Caller;
use crate::error::ApiError;
use crate::gateway::AppState;
use crate::providers::Upstream;
use crate::proxy::{self, LlmRequest};
use crate::server::access_log::RequestLogInfo;
use crate::server::extract::JsonObject;

pub async fn chat_completions(
    state: State<Arc<AppState>>,
    upstream: State<Upstream>,
    caller: Caller,
    body: JsonObject,
) -> Result<Response, ApiError> {
    Ok(run_logged(state, upstream, caller, Endpoint::Chat, body).await)
}

pub async fn completions(
    state: State<Arc<AppState>>,
    upstream: State<Upstream>,
    caller: Caller,
    body: JsonObject,
) -> Result<Response, ApiError> {
    Ok(run_logged(state, upstream, caller, Endpoint::Completion, body).await)
}

pub async fn embeddings(
    state: State<Arc<AppState>>,
    upstream: State<Upstream>,
    caller: Caller,
    body: JsonObject,
) -> Result<Response, ApiError> {
    Ok(run_logged(state, upstream, caller, Endpoint::Embedding, body).await)
}

/// OpenAI's Responses API: natively or bridged per deployment (`providers::responses`), the
/// bridged answers stored for `previous_response_id` (`proxy::responses`).
pub async fn responses(
    state: State<Arc<AppState>>,
    upstream: State<Upstream>,
    caller: Caller,
    body: JsonObject,
) -> Result<Response, ApiError> {
    Ok(run_logged(state, upstream, caller, Endpoint::Responses, body).await)
}

async fn run_logged(
    state: State<Arc<AppState>>,
    upstream: State<Upstream>,
    caller: Caller,
    endpoint: Endpoint,
    body: JsonObject,
) -> Response {
    let info = RequestLogInfo::of(&caller);
    let mut response = match run(state, upstream, caller, endpoint, body).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    };
    response.extensions_mut().insert(info);
    response
}

async fn run(
    State(state): State<Arc<AppState>>,
    State(upstream): State<Upstream>,
    caller: Caller,
    endpoint: Endpoint,
    JsonObject(body): JsonObject,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let request = LlmRequest::parse(endpoint, body)?;
    let reply = match endpoint {
        Endpoint::Responses => {
            proxy::responses::handle(&state, &upstream, &caller, request, started).await?
        }
        _ => proxy::handle(&state, &upstream, &caller, request, started).await?,
    };
    Ok(crate::server::response::into_response(reply))
}
