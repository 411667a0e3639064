//! `POST /v1/messages/count_tokens`: the input tokens of a Messages request. Asked of the
//! model group's first deployment that speaks Anthropic's wire format (Anthropic's own count);
//! for a group without one, counted here over the system prompt, the messages and the tool
//! definitions (`tokens::messages`) with the tokenizer of the group's first deployment's
//! model (`model_info.base_model`, else the upstream model): tiktoken's encoding for OpenAI's
//! families, else about four characters a token (`tokens::tokenizer`). Free, as Anthropic's
//! is: no spend, no limits; the caller must still be allowed the model.

use bytes::Bytes;
use serde_json::{Map, Value, json};

use crate::caller::Caller;
use crate::error::ApiError;
use crate::gateway::AppState;
use crate::providers::{Upstream, UpstreamRequest};
use crate::tokens::Tokenizer;
use crate::tokens::messages::messages_input_tokens;

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
    let runtime = state.runtime();
    caller.check_model(&model, runtime.router.access_groups(&model))?;
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
    let tokenizer = group.members.first().map_or(Tokenizer::Approximate, |m| {
        let deployment = &m.deployment;
        match &deployment.base_model {
            Some(base) => Tokenizer::for_model(base),
            None => Tokenizer::for_model(&deployment.upstream_model(&model)),
        }
    });
    let tokens = if tokenizer.is_exact() {
        // Off the event loop: the encoding's first use loads its table, and a long prompt
        // takes a while to encode.
        tokio::task::spawn_blocking(move || messages_input_tokens(tokenizer, &body))
            .await
            .map_err(|e| ApiError::internal(format!("counting tokens failed: {e}")))?
    } else {
        messages_input_tokens(tokenizer, &body)
    };
    Ok(Bytes::from(json!({"input_tokens": tokens}).to_string()))
}
