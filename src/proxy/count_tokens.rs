//! `POST /v1/messages/count_tokens`: the input tokens of a Messages request. Asked of the
//! model group's first deployment that speaks Anthropic's wire format (Anthropic's own count);
//! for a group without one, estimated: about four characters a token over the system prompt,
//! the messages' text and the tool definitions, plus three per message
//! (`tokens::estimate_prompt_tokens`). Free, as Anthropic's is: no spend, no limits; the
//! caller must still be allowed the model.

use bytes::Bytes;
use serde_json::{Map, Value, json};

use crate::caller::Caller;
use crate::error::ApiError;
use crate::gateway::AppState;
use crate::providers::{Upstream, UpstreamRequest};

/// The count, as Anthropic answers it: `{"input_tokens": n}`.
pub async fn count(
    state: &AppState,
    upstream: &Upstream,
    caller: &Caller,
    body: Map<String, Value>,
    forward_headers: &[(axum::http::HeaderName, axum::http::HeaderValue)],
) -> Result<Bytes, ApiError> {
    let model = crate::api::fields::required_str(&body, "model")?.to_string();
    if !matches!(body.get("messages"), Some(Value::Array(_))) {
        return Err(ApiError::invalid(
            "messages: Field required (a list of messages)",
            "messages",
        ));
    }
    caller.check_model(&model)?;
    let runtime = state.runtime();
    let Some(group) = runtime.router.group(&model) else {
        let not_found =
            ApiError::not_found(format!("The model '{model}' does not exist.")).with_param("model");
        return Err(runtime.router.missing_model_error(&model, not_found));
    };
    let native = group
        .members
        .iter()
        .find_map(|m| m.provider.messages_native().map(|p| (m, p)));
    if let Some((member, provider)) = native {
        let request = UpstreamRequest {
            upstream,
            endpoint: crate::api::Endpoint::Messages,
            deployment: &member.deployment,
            body: &body,
            requested_model: &model,
            stream: false,
            forward_headers,
            timeout: member
                .deployment
                .timeout
                .or(runtime.router.routing().timeout),
            want_stream_usage: false,
            drop_params: false,
        };
        return provider
            .count_tokens(request)
            .await
            .map_err(|e| e.into_api_error(&model));
    }
    let tools = body
        .get("tools")
        .map(|t| crate::tokens::rough_tokens(&t.to_string()))
        .unwrap_or(0);
    let tokens = crate::tokens::estimate_prompt_tokens(&body) + tools;
    Ok(Bytes::from(json!({"input_tokens": tokens}).to_string()))
}
