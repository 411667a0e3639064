//! The LLM request pipeline: validate, check the caller, route, and shape the answer (JSON
//! or an unbuffered SSE stream) with LiteLLM's response headers.

pub mod accounting;
pub mod budget;
pub mod count_tokens;
pub mod embedder;
pub mod responses;
pub mod stream;

use std::time::Instant;

use axum::http::{HeaderName, HeaderValue};
use bytes::Bytes;
use serde_json::{Map, Value};

use crate::api::fields::{optional_bool, required_str};
use crate::api::{Endpoint, Usage};
use crate::caller::Caller;
use crate::error::ApiError;
use crate::gateway::AppState;
use crate::providers::{ProviderResponse, Upstream};
use crate::router::{RouteFailure, RouteRequest, Routed};

/// Body fields that steer the gateway and are not sent upstream.
const GATEWAY_FIELDS: &[&str] = &[
    "fallbacks",
    "cache",
    "metadata",
    "num_retries",
    "context_window_fallbacks",
];

/// A validated OpenAI request.
pub struct LlmRequest {
    pub endpoint: Endpoint,
    pub model: String,
    pub body: Map<String, Value>,
    pub stream: bool,
    /// The client asked for the final usage chunk.
    pub include_usage: bool,
    pub fallbacks: Vec<String>,
    /// The request's own `context_window_fallbacks` targets.
    pub context_window_fallbacks: Vec<String>,
    /// Client headers forwarded to deployments that speak the protocol natively.
    pub forward_headers: Vec<(HeaderName, HeaderValue)>,
}

impl LlmRequest {
    /// Checks the fields each endpoint requires; names the first one that is wrong.
    pub fn parse(endpoint: Endpoint, body: Map<String, Value>) -> Result<Self, ApiError> {
        // A request naming an end user may leave the model to the end user's `default_model`
        // (`handle` fills it in, or answers that the model is required).
        let names_end_user = body
            .get("user")
            .is_some_and(|u| u.as_str().is_some_and(|u| !u.is_empty()));
        let model = match body.get("model") {
            None | Some(Value::Null) if names_end_user => String::new(),
            _ => required_str(&body, "model")?.to_string(),
        };
        let (field, what) = match endpoint {
            Endpoint::Chat | Endpoint::Messages => ("messages", "a list of messages"),
            Endpoint::Completion => ("prompt", "a string or a list"),
            Endpoint::Embedding | Endpoint::Responses => ("input", "a string or a list"),
        };
        match (endpoint, body.get(field)) {
            (_, None | Some(Value::Null)) => {
                return Err(ApiError::invalid(
                    format!("'{field}' is a required field."),
                    field,
                ));
            }
            (Endpoint::Chat | Endpoint::Messages, Some(Value::Array(messages))) => {
                if messages.is_empty() {
                    return Err(ApiError::invalid(
                        "'messages' must not be empty.",
                        "messages",
                    ));
                }
                if let Some(i) = messages
                    .iter()
                    .position(|m| !m.get("role").is_some_and(Value::is_string))
                {
                    return Err(ApiError::invalid(
                        format!("'messages[{i}]' must be an object with a 'role'."),
                        format!("messages[{i}]"),
                    ));
                }
            }
            (
                Endpoint::Completion | Endpoint::Embedding | Endpoint::Responses,
                Some(Value::String(_) | Value::Array(_)),
            ) => {}
            (_, Some(_)) => {
                return Err(ApiError::invalid(
                    format!("'{field}' must be {what}."),
                    field,
                ));
            }
        }
        if endpoint == Endpoint::Messages {
            // Anthropic's API requires `max_tokens`; its answer names the field the same way.
            match body.get("max_tokens") {
                Some(Value::Number(n)) if n.as_u64().is_some_and(|n| n >= 1) => {}
                None | Some(Value::Null) => {
                    return Err(ApiError::invalid(
                        "max_tokens: Field required",
                        "max_tokens",
                    ));
                }
                Some(_) => {
                    return Err(ApiError::invalid(
                        "max_tokens: Input should be a positive integer",
                        "max_tokens",
                    ));
                }
            }
        }
        let stream =
            optional_bool(&body, "stream")?.unwrap_or(false) && endpoint != Endpoint::Embedding;
        let include_usage = match body.get("stream_options") {
            None | Some(Value::Null) => false,
            Some(Value::Object(o)) => match o.get("include_usage") {
                None | Some(Value::Null) => false,
                Some(Value::Bool(b)) => *b,
                Some(_) => {
                    return Err(ApiError::invalid(
                        "'stream_options.include_usage' must be a boolean.",
                        "stream_options.include_usage",
                    ));
                }
            },
            Some(_) => {
                return Err(ApiError::invalid(
                    "'stream_options' must be an object.",
                    "stream_options",
                ));
            }
        };
        let mut fallbacks = model_names(body.get("fallbacks"), "fallbacks")?;
        if let Some(Value::Object(metadata)) = body.get("metadata") {
            fallbacks.extend(model_names(
                metadata.get("fallbacks"),
                "metadata.fallbacks",
            )?);
        }
        let context_window_fallbacks = model_names(
            body.get("context_window_fallbacks"),
            "context_window_fallbacks",
        )?;
        Ok(LlmRequest {
            endpoint,
            model,
            body,
            stream,
            include_usage,
            fallbacks,
            context_window_fallbacks,
            forward_headers: Vec::new(),
        })
    }
}

/// The model names of a request's fallback list: strings, `{"model": ...}` objects, or
/// LiteLLM's `{"group": ["target", ...]}` maps (whose targets are taken).
fn model_names(value: Option<&Value>, field: &str) -> Result<Vec<String>, ApiError> {
    let entries_error =
        || ApiError::invalid(format!("'{field}' entries must be model names."), field);
    let items = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(_) => {
            return Err(ApiError::invalid(
                format!("'{field}' must be a list of model names."),
                field,
            ));
        }
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Value::String(s) => out.push(s.clone()),
            Value::Object(o) => match o.get("model") {
                Some(Value::String(s)) => out.push(s.clone()),
                Some(_) => return Err(entries_error()),
                None if !o.is_empty() => {
                    for targets in o.values() {
                        let Value::Array(targets) = targets else {
                            return Err(entries_error());
                        };
                        for t in targets {
                            out.push(t.as_str().ok_or_else(entries_error)?.to_string());
                        }
                    }
                }
                None => return Err(entries_error()),
            },
            _ => return Err(entries_error()),
        }
    }
    Ok(out)
}

/// The answer's body: a JSON document or an SSE stream of frames.
pub enum ReplyBody {
    Json(Bytes),
    Sse(stream::SseStream),
    /// SSE frames the pipeline made or watches (a cached answer replayed, a Responses
    /// stream whose end is stored).
    Frames(futures::stream::BoxStream<'static, Result<Bytes, std::convert::Infallible>>),
}

/// A successful answer with its headers.
pub struct Reply {
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: ReplyBody,
}

/// Runs one LLM request end to end; the upstream calls go through `upstream`.
pub async fn handle(
    state: &AppState,
    upstream: &Upstream,
    caller: &Caller,
    mut request: LlmRequest,
    started: Instant,
) -> Result<Reply, ApiError> {
    let runtime = state.runtime();
    // The end user the request names (LiteLLM's customer): blocked or over budget is refused,
    // its default model stands in for a missing one, its limits apply below.
    let end_user = match (
        state.keys(),
        request.body.get("user").and_then(Value::as_str),
    ) {
        (Some(keys), Some(id)) if !id.is_empty() => keys.end_user(id).await?,
        _ => None,
    };
    if let Some(end_user) = &end_user {
        end_user.check()?;
    }
    if request.model.is_empty() {
        match end_user.as_ref().and_then(|e| e.default_model.clone()) {
            Some(model) => {
                request
                    .body
                    .insert("model".into(), Value::String(model.clone()));
                request.model = model;
            }
            None => return Err(ApiError::invalid("'model' is a required field.", "model")),
        }
    }
    // A key's own aliases name model groups: the group is what is checked and called.
    if let Some(key) = caller.key() {
        let target = key.resolve_alias(&request.model);
        if target != request.model {
            request.model = target.to_string();
        }
    }
    caller.check_model(&request.model, runtime.router.access_groups(&request.model))?;
    caller.check_budget()?;
    if let Some(key) = caller.key() {
        key.check_model_budget(&request.model)?;
    }
    if runtime.router.group(&request.model).is_none() {
        let not_found =
            ApiError::not_found(format!("The model '{}' does not exist.", request.model))
                .with_param("model");
        return Err(runtime
            .router
            .missing_model_error(&request.model, not_found));
    }

    // A cached answer is replayed as OpenAI chunks when streamed: a streamed Messages or
    // Responses call is not cached.
    let cacheable =
        !(matches!(request.endpoint, Endpoint::Messages | Endpoint::Responses) && request.stream);
    let cache_plan = match &state.cache {
        Some(cache) if cacheable => {
            let body = Value::Object(std::mem::take(&mut request.body));
            let plan = cache.plan(request.endpoint, &request.model, &body);
            if let Value::Object(map) = body {
                request.body = map;
            }
            plan?
        }
        _ => None,
    };
    let protocol_metadata = match request.endpoint {
        Endpoint::Messages => anthropic_metadata(&request.body),
        Endpoint::Responses => responses_metadata(&request.body),
        _ => None,
    };
    let request_tags = request
        .body
        .get("metadata")
        .and_then(|m| m.get("tags"))
        .cloned();
    for field in GATEWAY_FIELDS {
        request.body.remove(*field);
    }
    if let Some(metadata) = protocol_metadata {
        request.body.insert("metadata".into(), metadata);
    }
    let spend = accounting::SpendSink::for_caller(
        caller,
        state.keys(),
        runtime.master_key_hash.as_deref(),
        &request.body,
    )
    .map(|sink| sink.with_request_tags(request_tags.as_ref()));
    if let Some(sink) = &spend {
        // Every request makes a spend record: while the database lags far behind, wait.
        sink.keys.spend_writer().wait_for_room().await;
    }
    if let (Some(cache), Some(plan)) = (&state.cache, &cache_plan)
        && plan.read
        && let Some(hit) = cache.lookup(plan).await
    {
        return accounting::cached_reply(&request, plan, hit, started, spend);
    }

    let reachable = std::iter::once(request.model.as_str())
        .chain(request.fallbacks.iter().map(String::as_str))
        .chain(request.context_window_fallbacks.iter().map(String::as_str))
        .filter(|model| {
            caller
                .check_model(model, runtime.router.access_groups(model))
                .is_ok()
        });
    let budget = budget::hold(
        state,
        caller,
        &runtime.router,
        request.endpoint,
        reachable,
        &request.body,
    )
    .await?;
    let estimate = estimate_tokens(&request.body);
    let admission = state
        .limiter
        .acquire(&{
            let mut limits = caller.limit_requests(&runtime.config, estimate);
            if let Some(end_user) = &end_user {
                limits.push(end_user.limit_request(estimate));
            }
            limits
        })
        .await
        .map_err(ApiError::from)?;
    let route = RouteRequest {
        upstream,
        endpoint: request.endpoint,
        model: &request.model,
        body: request.body,
        stream: request.stream,
        want_stream_usage: true,
        forward_headers: &request.forward_headers,
        fallbacks: request.fallbacks,
        context_window_fallbacks: request.context_window_fallbacks,
        access: &|model: &str| caller.check_model(model, runtime.router.access_groups(model)),
        deployment_limits: runtime
            .router
            .routing()
            .enforce_model_rate_limits
            .then_some((&state.limiter, estimate)),
    };
    let routed = match runtime.router.execute(route).await {
        Ok(routed) => routed,
        Err(RouteFailure {
            error,
            attempted_retries,
            attempted_fallbacks,
        }) => {
            let mut error = error
                .with_header(ATTEMPTED_RETRIES, HeaderValue::from(attempted_retries))
                .with_header(ATTEMPTED_FALLBACKS, HeaderValue::from(attempted_fallbacks));
            for (name, value) in admission.headers() {
                error = error.with_header(name, value);
            }
            return Err(error);
        }
    };
    let finish = accounting::Finish {
        caller: caller.clone(),
        endpoint: request.endpoint,
        admission,
        deployment_admission: None,
        cache: state.cache.clone().zip(cache_plan.filter(|p| p.write)),
        estimate,
        spend,
        budget,
    };
    Ok(reply(
        routed,
        &request.model,
        request.include_usage,
        started,
        finish,
    ))
}

/// The part of a Messages request's `metadata` that is Anthropic's (`user_id`), kept for the
/// upstream when the gateway's own keys (LiteLLM's `metadata`) are taken out.
fn anthropic_metadata(body: &Map<String, Value>) -> Option<Value> {
    let user = body.get("metadata")?.get("user_id")?;
    Some(serde_json::json!({ "user_id": user }))
}

/// The part of a Responses request's `metadata` that is OpenAI's (string values, stored with
/// the response), kept when the gateway's own keys (LiteLLM's `tags`, `fallbacks`, ...,
/// none of them strings) are taken out.
fn responses_metadata(body: &Map<String, Value>) -> Option<Value> {
    let Value::Object(metadata) = body.get("metadata")? else {
        return None;
    };
    let kept: Map<String, Value> = metadata
        .iter()
        .filter(|(_, v)| v.is_string())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    (!kept.is_empty()).then_some(Value::Object(kept))
}

/// Tokens reserved against tpm limits before the call: the prompt's rough size plus the
/// completion budget the client asked for.
fn estimate_tokens(body: &Map<String, Value>) -> u64 {
    let budget = ["max_tokens", "max_completion_tokens", "max_output_tokens"]
        .iter()
        .find_map(|k| body.get(*k).and_then(Value::as_u64))
        .unwrap_or(0);
    crate::tokens::estimate_prompt_tokens(body) + budget
}

pub(crate) const MODEL_ID: HeaderName = HeaderName::from_static("x-litellm-model-id");
pub(crate) const OVERHEAD: HeaderName = HeaderName::from_static("x-litellm-overhead-duration-ms");
pub(crate) const ATTEMPTED_RETRIES: HeaderName =
    HeaderName::from_static("x-litellm-attempted-retries");
pub(crate) const ATTEMPTED_FALLBACKS: HeaderName =
    HeaderName::from_static("x-litellm-attempted-fallbacks");
pub(crate) const MODEL_GROUP: HeaderName = HeaderName::from_static("x-litellm-model-group");

fn reply(
    routed: Routed,
    requested_model: &str,
    include_usage: bool,
    started: Instant,
    finish: accounting::Finish,
) -> Reply {
    let Routed {
        member,
        model_group,
        response,
        attempted_retries,
        attempted_fallbacks,
        upstream_time,
        in_flight,
        deployment_admission,
    } = routed;
    let mut finish = finish;
    finish.deployment_admission = deployment_admission;
    // The cache entry is keyed by the requested model, which the caller was checked for: an
    // answer a fallback gave is not stored there, so no later caller of the requested model
    // is served what a model it may not use answered.
    if model_group != requested_model {
        finish.cache = None;
    }
    let overhead = started.elapsed().saturating_sub(upstream_time);
    crate::metrics::record_upstream_duration(&model_group, &member.deployment.id, upstream_time);
    crate::metrics::record_overhead(&model_group, overhead);
    let mut headers = vec![
        (MODEL_ID, header_value(&member.deployment.id)),
        (MODEL_GROUP, header_value(&model_group)),
        (ATTEMPTED_RETRIES, HeaderValue::from(attempted_retries)),
        (ATTEMPTED_FALLBACKS, HeaderValue::from(attempted_fallbacks)),
    ];
    headers.extend(finish.admission.headers());
    let overhead_ms = format!("{:.3}", overhead.as_secs_f64() * 1000.0);
    headers.push((OVERHEAD, header_value(&overhead_ms)));
    let deployment = member.deployment.clone();
    let body = match response {
        ProviderResponse::Complete { body, usage } => {
            drop(in_flight);
            let outcome = finish.complete(&deployment, &model_group, usage, Some(&body));
            headers.extend(outcome.headers());
            ReplyBody::Json(body)
        }
        ProviderResponse::Stream(chunks) => {
            let group = model_group.clone();
            let framing = stream::Framing::of(finish.endpoint);
            ReplyBody::Sse(
                stream::SseStream::new(
                    chunks,
                    include_usage,
                    model_group,
                    Box::new(move |usage: Option<Usage>| {
                        drop(in_flight);
                        finish.complete(&deployment, &group, usage, None);
                    }),
                )
                .with_request_start(started)
                .with_framing(framing),
            )
        }
    };
    Reply { headers, body }
}

pub(crate) fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

pub(crate) fn record_usage(model_group: &str, usage: Option<Usage>) {
    if let Some(usage) = usage {
        crate::metrics::record_tokens(model_group, usage.prompt_tokens, usage.completion_tokens);
    }
}
