//! Parameter policy of the translating providers: which OpenAI parameters exist, the
//! deployment's defaults filled in, and `drop_params` (an OpenAI parameter a provider does not
//! take is removed, or is a 400 naming it).

use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::providers::{ProviderError, UpstreamRequest};

/// OpenAI request parameters. A translating provider that does not take one of these rejects
/// it (400 naming it), or drops it under `drop_params`. Fields outside this list are not
/// OpenAI's and are ignored unless the provider reads them natively.
const OPENAI_PARAMS: &[&str] = &[
    "temperature",
    "top_p",
    "n",
    "stop",
    "max_tokens",
    "max_completion_tokens",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "seed",
    "response_format",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "functions",
    "function_call",
    "reasoning_effort",
    "modalities",
    "audio",
    "prediction",
    "store",
    "service_tier",
    "web_search_options",
    "dimensions",
    "encoding_format",
    "suffix",
    "echo",
    "best_of",
];

/// A copy of the client's body with the deployment's default parameters filled in, for a
/// translating provider to rework.
pub fn body_with_defaults(request: &UpstreamRequest<'_>) -> Map<String, Value> {
    let mut body = request.body.clone();
    for (k, v) in &request.deployment.default_params {
        if !body.contains_key(k) {
            body.insert(k.clone(), v.clone());
        }
    }
    body
}

/// Applies `drop_params` (the router setting or the request's own `drop_params: true`): an
/// OpenAI parameter the provider does not take is removed, or is a 400 naming it.
pub fn check_params(
    body: &mut Map<String, Value>,
    drop_params: bool,
    provider: &str,
    model: &str,
    accepts: impl Fn(&str, &Value) -> bool,
) -> Result<(), ProviderError> {
    let drop = drop_params || matches!(body.remove("drop_params"), Some(Value::Bool(true)));
    // `user` is an end-user tag for abuse tracking, never behaviour: providers that have no
    // such field simply do not get it.
    let mut rejected: Option<&str> = None;
    for name in OPENAI_PARAMS {
        let Some(value) = body.get(*name) else {
            continue;
        };
        if value.is_null() || accepts(name, value) {
            continue;
        }
        if drop {
            body.remove(*name);
        } else {
            rejected = Some(name);
            break;
        }
    }
    match rejected {
        None => Ok(()),
        Some(name) => Err(ProviderError::Rejected(ApiError::invalid(
            format!(
                "The parameter '{name}' is not supported by provider {provider} (model '{model}'). \
                 Remove it, or set drop_params: true to have it dropped."
            ),
            name,
        ))),
    }
}

/// The request's `max_tokens` (or `max_completion_tokens`), if it set one.
pub fn max_tokens(body: &Map<String, Value>) -> Option<u64> {
    body.get("max_completion_tokens")
        .and_then(Value::as_u64)
        .or_else(|| body.get("max_tokens").and_then(Value::as_u64))
}

/// `stop` as a list (OpenAI accepts a string or a list of strings).
pub fn stop_list(value: &Value) -> Vec<Value> {
    match value {
        Value::String(s) => vec![Value::String(s.clone())],
        Value::Array(items) => items.iter().filter(|v| v.is_string()).cloned().collect(),
        _ => Vec::new(),
    }
}
