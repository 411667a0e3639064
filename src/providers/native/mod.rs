//! Shared machinery of the providers that do not speak OpenAI's wire format (Anthropic,
//! Ollama, Gemini), split by job: [`params`] (parameter policy, `drop_params`), [`content`]
//! (reading OpenAI content), [`answer`] (OpenAI answers and chunks), [`stream`] (stream
//! translation), [`errors`] (OpenAI-shaped error bodies). The HTTP exchange itself is in
//! `providers::http`.
//!
//! Each translating provider implements [`Translating`] (a plain trait, no `dyn`: the
//! `Provider` enum still dispatches), and [`call`] is the one request skeleton they share:
//! defaults, parameter checks, the POST, then a stream translator or the answer document. The
//! compiler checks that every provider supplies each step.

pub mod answer;
pub mod content;
pub mod errors;
pub mod params;
pub mod stream;

pub use answer::*;
pub use content::*;
pub use errors::*;
pub use params::*;
pub use stream::*;

pub use super::http::{post_json, read_json};

use std::future::Future;

use reqwest::header::HeaderMap;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::sse::{self, EventStream};
use super::{ProviderError, ProviderResponse, UpstreamRequest};
use crate::api::Endpoint;
use crate::error::ApiError;

/// What every call of a provider sends with: its headers (key included), the key to scrub
/// from error texts, and how its error bodies become OpenAI's.
pub struct Exchange<'a> {
    pub headers: &'a HeaderMap,
    pub secret: Option<&'a str>,
    pub errors: ErrorTranslator,
}

/// A provider that speaks its own protocol: the steps [`call`] needs from it.
pub trait Translating: Sync {
    /// The answer document of a chat or completion that is not streamed.
    type Answer: DeserializeOwned + Send;
    /// The state machine that turns the provider's stream into OpenAI chunks.
    type Events: StreamTranslator;

    /// The provider's name in messages (`anthropic`, `gemini`, `ollama_chat`, ...).
    fn name(&self) -> &'static str;

    fn exchange(&self) -> Exchange<'_>;

    /// Whether the provider takes this OpenAI parameter of a chat or completion (else it is
    /// dropped under `drop_params` or a 400 naming it, see [`check_params`]).
    fn accepts(&self, name: &str, value: &Value) -> bool;

    /// Reworks the body before its parameters are checked. By default a `/v1/completions`
    /// prompt becomes one user message, for the chat-only protocols.
    fn prepare(
        &self,
        endpoint: Endpoint,
        body: &mut Map<String, Value>,
    ) -> Result<(), ProviderError> {
        if endpoint == Endpoint::Completion {
            prompt_to_messages(body)?;
        }
        Ok(())
    }

    /// The URL and the request document of a chat or completion (parameters checked).
    fn chat_request(
        &self,
        body: Map<String, Value>,
        model: &str,
        request: &UpstreamRequest<'_>,
    ) -> Result<(String, Value), ProviderError>;

    /// The provider's stream as events (default: SSE).
    fn events(&self, response: reqwest::Response) -> EventStream {
        sse::response_events(response)
    }

    fn translator(&self, endpoint: Endpoint, model: String) -> Self::Events;

    /// The answer in the shape [`Answer::into_response`] turns into OpenAI's.
    fn answer(&self, answer: Self::Answer, model: &str) -> Answer;

    /// Whether the provider has an embeddings API; without one, embeddings requests are
    /// refused before anything else is looked at.
    fn supports_embeddings(&self) -> bool {
        true
    }

    /// An embeddings request (parameters checked).
    fn embed(
        &self,
        body: Map<String, Value>,
        model: String,
        request: &UpstreamRequest<'_>,
    ) -> impl Future<Output = Result<ProviderResponse, ProviderError>> + Send;
}

/// The request skeleton of every translating provider.
pub async fn call<P: Translating>(
    provider: &P,
    request: UpstreamRequest<'_>,
) -> Result<ProviderResponse, ProviderError> {
    let model = request.deployment.upstream_model(request.requested_model);
    let name = provider.name();
    if request.endpoint == Endpoint::Embedding && !provider.supports_embeddings() {
        return Err(ProviderError::Rejected(ApiError::invalid(
            format!(
                "Embeddings are not supported by provider {name} (model '{}').",
                request.deployment.model_name
            ),
            "model",
        )));
    }
    let mut body = body_with_defaults(&request);
    if request.endpoint == Endpoint::Embedding {
        check_params(&mut body, request.drop_params, name, &model, |n, v| {
            embedding_accepts(n, v, true)
        })?;
        return provider.embed(body, model, &request).await;
    }
    provider.prepare(request.endpoint, &mut body)?;
    check_params(&mut body, request.drop_params, name, &model, |n, v| {
        provider.accepts(n, v)
    })?;
    let (url, payload) = provider.chat_request(body, &model, &request)?;
    let exchange = provider.exchange();
    let response = post_json(
        request.upstream.http(),
        &url,
        exchange.headers,
        &payload,
        request.timeout,
        exchange.secret,
        exchange.errors,
    )
    .await?;
    if request.stream {
        let translator = provider.translator(request.endpoint, model);
        return Ok(ProviderResponse::Stream(translate_stream(
            provider.events(response),
            translator,
            exchange.secret,
        )));
    }
    let answer: P::Answer = read_json(response, request.timeout, exchange.secret, name).await?;
    Ok(provider
        .answer(answer, &model)
        .into_response(request.endpoint))
}

#[cfg(test)]
mod tests {
    use serde_json::{Map, Value, json};

    use super::*;
    use crate::api::Endpoint;
    use crate::providers::ProviderError;

    #[test]
    fn unsupported_params_are_rejected_or_dropped() {
        let mut body = Map::new();
        body.insert("logit_bias".into(), json!({"1": 2}));
        body.insert("temperature".into(), json!(0.2));
        body.insert("custom".into(), json!(1));
        let accepts = |name: &str, _: &Value| name == "temperature";
        let err = check_params(&mut body.clone(), false, "anthropic", "m", accepts).unwrap_err();
        let ProviderError::Rejected(api) = err else {
            panic!("not rejected")
        };
        assert_eq!(api.param.as_deref(), Some("logit_bias"));
        assert!(api.message.contains("'logit_bias'") && api.message.contains("anthropic"));
        check_params(&mut body, true, "anthropic", "m", accepts).unwrap();
        assert!(!body.contains_key("logit_bias"));
        assert!(body.contains_key("temperature") && body.contains_key("custom"));
    }

    #[test]
    fn request_drop_params_is_honoured_and_not_forwarded() {
        let mut body = Map::new();
        body.insert("logit_bias".into(), json!({"1": 2}));
        body.insert("drop_params".into(), json!(true));
        check_params(&mut body, false, "gemini", "m", |_, _| false).unwrap();
        assert!(body.is_empty());
    }

    #[test]
    fn error_bodies_are_openai_shaped() {
        let body: Value = serde_json::from_slice(&openai_error_body(
            "anthropic",
            400,
            None,
            "prompt is too long: 300000 tokens > 200000 maximum",
        ))
        .unwrap();
        assert_eq!(body["error"]["type"], "invalid_request_error");
        assert_eq!(body["error"]["code"], "400");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("context_length_exceeded")
        );
        let body: Value =
            serde_json::from_slice(&openai_error_body("gemini", 429, None, "quota")).unwrap();
        assert_eq!(body["error"]["type"], "rate_limit_error");
        assert_eq!(body["error"]["code"], "429");
    }

    #[test]
    fn data_urls_are_split() {
        match parse_data_url("data:image/png;base64,AAAA") {
            Some(ImageRef::Inline { media_type, data }) => {
                assert_eq!((media_type, data), ("image/png", "AAAA"));
            }
            _ => panic!("not parsed"),
        }
        assert!(parse_data_url("https://x/y.png").is_none());
    }

    #[test]
    fn chunk_writer_names_the_role_once_and_marks_usage() {
        let mut w = ChunkWriter::new(Endpoint::Chat, "m".into());
        let first: Value = serde_json::from_slice(&w.text(0, "a").data).unwrap();
        let second: Value = serde_json::from_slice(&w.text(0, "b").data).unwrap();
        assert_eq!(first["choices"][0]["delta"]["role"], "assistant");
        assert!(second["choices"][0]["delta"].get("role").is_none());
        let u = w.usage(usage(3, 4));
        assert!(u.usage_only);
        assert_eq!(u.usage.unwrap().total_tokens, 7);
    }
}
