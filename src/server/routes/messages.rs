//! `POST /v1/messages` (and `/messages`, and their `/count_tokens`): Anthropic's Messages API under the same keys,
//! limits, budgets and routing as chat completions (`proxy::handle`), answered natively or
//! translated per deployment (`providers::messages`). Every error on it, the key's and the
//! body's included, is in Anthropic's shape: the extractors' rejections are taken as values
//! here rather than answered in OpenAI's shape by axum.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderName};
use axum::response::{IntoResponse, Response};

use crate::api::Endpoint;
use crate::caller::Caller;
use crate::error::{AnthropicError, ApiError};
use crate::gateway::AppState;
use crate::providers::Upstream;
use crate::proxy::{self, LlmRequest};
use crate::server::access_log::RequestLogInfo;
use crate::server::extract::JsonObject;
use crate::server::keepalive;

/// The client headers a native Anthropic deployment receives.
const FORWARDED: [HeaderName; 2] = [
    HeaderName::from_static("anthropic-version"),
    HeaderName::from_static("anthropic-beta"),
];

/// `POST /v1/messages/count_tokens` (see `proxy::count_tokens`).
pub async fn count_tokens(
    State(state): State<Arc<AppState>>,
    State(upstream): State<Upstream>,
    caller: Result<Caller, ApiError>,
    headers: HeaderMap,
    body: Result<JsonObject, ApiError>,
) -> Response {
    let info = caller.as_ref().ok().map(RequestLogInfo::of);
    let result = async {
        let caller = caller?;
        let JsonObject(body) = body?;
        let forward = forwarded(&headers);
        proxy::count_tokens::count(&state, &upstream, &caller, body, &forward).await
    }
    .await
    .map(|body| {
        (
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response()
    });
    answer(info, result)
}

/// The response, an error in Anthropic's shape, with the caller's access-log fields.
fn answer(info: Option<RequestLogInfo>, result: Result<Response, ApiError>) -> Response {
    let mut response = result.unwrap_or_else(|error| AnthropicError(error).into_response());
    if let Some(info) = info {
        response.extensions_mut().insert(info);
    }
    response
}

fn forwarded(headers: &HeaderMap) -> Vec<(HeaderName, axum::http::HeaderValue)> {
    FORWARDED
        .iter()
        .filter_map(|name| Some((name.clone(), headers.get(name)?.clone())))
        .collect()
}

pub async fn create(
    State(state): State<Arc<AppState>>,
    State(upstream): State<Upstream>,
    caller: Result<Caller, ApiError>,
    headers: HeaderMap,
    body: Result<JsonObject, ApiError>,
) -> Response {
    let info = caller.as_ref().ok().map(RequestLogInfo::of);
    let started = Instant::now();
    let result = async {
        let caller = caller?;
        let JsonObject(body) = body?;
        let mut request = LlmRequest::parse(Endpoint::Messages, body)?;
        request.forward_headers = forwarded(&headers);
        let keepalive = request
            .stream
            .then(|| state.runtime().config.stream_keepalive)
            .flatten();
        match keepalive {
            Some(interval) => {
                let call = Box::pin(async move {
                    proxy::handle(&state, &upstream, &caller, request, started).await
                });
                keepalive::answer(call, interval).await
            }
            None => proxy::handle(&state, &upstream, &caller, request, started)
                .await
                .map(crate::server::response::into_response),
        }
    }
    .await;
    answer(info, result)
}
