//! Upstream providers behind one interface: each module translates the OpenAI-shaped request
//! into its provider's protocol and the answer (JSON, stream events, usage, errors) back.
//!
//! Dispatch is an enum rather than `dyn Trait`: the set is closed, calls stay static, and
//! `async fn` in traits is not object-safe.

pub mod anthropic;
pub mod azure;
pub mod bridge;
pub mod gemini;
pub mod http;
pub mod local;
pub mod messages;
pub mod mock;
pub mod native;
pub mod ollama;
pub mod openai;
pub mod responses;
pub mod sse;
pub mod transport;

pub use transport::Upstream;

use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use reqwest::header::{HeaderName, HeaderValue};
use serde_json::{Map, Value};

use crate::api::{Endpoint, StreamChunk, Usage};
use crate::config::{Deployment, ProviderKind};
use crate::error::{ApiError, ErrorKind};

/// One request to one deployment.
#[derive(Debug)]
pub struct UpstreamRequest<'a> {
    /// The clients to send with (the serving thread's own).
    pub upstream: &'a Upstream,
    pub endpoint: Endpoint,
    pub deployment: &'a Deployment,
    /// The client's body, shared by every attempt; the provider rewrites `model` and
    /// translates the rest into a document of its own.
    pub body: &'a Map<String, Value>,
    /// The name the client asked for (wildcard deployments pass it through).
    pub requested_model: &'a str,
    pub stream: bool,
    /// Client headers the protocol forwards to a deployment that speaks it natively
    /// (`anthropic-version`, `anthropic-beta` on `/v1/messages`).
    pub forward_headers: &'a [(HeaderName, HeaderValue)],
    /// Bound on the whole exchange (non-streaming) or on the response headers (streaming).
    pub timeout: Option<Duration>,
    /// Ask the upstream for a final usage chunk (OpenAI `stream_options.include_usage`).
    pub want_stream_usage: bool,
    pub drop_params: bool,
}

pub type ChunkStream = Pin<Box<dyn Stream<Item = Result<StreamChunk, ProviderError>> + Send>>;

/// A provider's answer, already in OpenAI's shape.
pub enum ProviderResponse {
    Complete { body: Bytes, usage: Option<Usage> },
    Stream(ChunkStream),
}

/// Why an upstream call failed. The router decides from it whether to retry; the client sees
/// it through `From<ProviderError> for ApiError`.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProviderError {
    #[error("upstream unreachable: {0}")]
    Connect(String),
    #[error("upstream timed out: {0}")]
    Timeout(String),
    #[error("upstream returned {status}")]
    Status {
        status: u16,
        body: Bytes,
        retry_after: Option<Duration>,
    },
    /// The request cannot be sent to this provider (unsupported parameter and the like).
    #[error("{0}")]
    Rejected(ApiError),
    /// The upstream broke off a stream after it started.
    #[error("stream interrupted: {0}")]
    Stream(String),
}

impl ProviderError {
    /// Retried: connection errors, timeouts, 408, 429 and 5xx; never other 4xx.
    pub fn is_retryable(&self) -> bool {
        match self {
            ProviderError::Connect(_) | ProviderError::Timeout(_) | ProviderError::Stream(_) => {
                true
            }
            ProviderError::Status { status, .. } => {
                *status == 408 || *status == 429 || *status >= 500
            }
            ProviderError::Rejected(_) => false,
        }
    }

    /// An upstream context-length error (drives `context_window_fallbacks`).
    pub fn is_context_window(&self) -> bool {
        match self {
            ProviderError::Status { status, body, .. } if *status == 400 => {
                let text = String::from_utf8_lossy(body).to_ascii_lowercase();
                text.contains("context_length_exceeded")
                    || text.contains("maximum context length")
                    || text.contains("context window")
                    || text.contains("too many tokens")
                    || text.contains("prompt is too long")
            }
            _ => false,
        }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ProviderError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Converts for the client, naming the model group where it helps.
    pub fn into_api_error(self, model: &str) -> ApiError {
        match self {
            ProviderError::Connect(reason) => ApiError::new(
                ErrorKind::UpstreamConnection,
                format!("Could not reach the upstream for model '{model}': {reason}"),
            ),
            ProviderError::Timeout(reason) => ApiError::new(
                ErrorKind::Timeout,
                format!("Request to model '{model}' timed out: {reason}"),
            ),
            ProviderError::Status {
                status,
                body,
                retry_after,
            } => {
                let mut err = upstream_error(status, &body);
                if let Some(after) = retry_after {
                    err = err.with_retry_after(after.as_secs().max(1));
                }
                err
            }
            ProviderError::Rejected(err) => err,
            ProviderError::Stream(reason) => ApiError::new(
                ErrorKind::UpstreamConnection,
                format!("The upstream stream for model '{model}' failed: {reason}"),
            ),
        }
    }
}

/// An upstream error status: an OpenAI-shaped body passes through verbatim, anything else is
/// wrapped with its text as the message.
pub fn upstream_error(status: u16, body: &[u8]) -> ApiError {
    let kind = ErrorKind::Upstream(status);
    if let Ok(value) = serde_json::from_slice::<Value>(body)
        && let Some(error) = value.get("error").filter(|e| e.is_object())
    {
        let message = error
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("upstream error")
            .to_string();
        let mut err = ApiError::new(kind, message);
        err.raw_body = Some(Bytes::copy_from_slice(body));
        return err;
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    let message = if text.is_empty() {
        format!("upstream returned status {status}")
    } else {
        let mut t: String = text.chars().take(2000).collect();
        if t.len() < text.len() {
            t.push('…');
        }
        t
    };
    ApiError::new(kind, message)
}

/// A ready-to-call provider for one deployment.
#[derive(Debug, Clone)]
pub enum Provider {
    OpenAi(openai::OpenAiCompatible),
    Azure(azure::Azure),
    Anthropic(anthropic::Anthropic),
    Ollama(ollama::Ollama),
    Gemini(gemini::Gemini),
    Mock(mock::Mock),
    Local(local::Local),
}

/// A deployment whose provider could not be set up (disabled with this reason).
#[derive(Debug, Clone)]
pub struct ProviderUnavailable(pub String);

impl Provider {
    /// Builds the provider of a deployment. `mock_response` wins over the provider prefix,
    /// as in LiteLLM.
    pub fn for_deployment(d: &Deployment) -> Result<Self, ProviderUnavailable> {
        if let Some(text) = &d.mock_response {
            return Ok(Provider::Mock(mock::Mock::new(text.clone())));
        }
        match d.provider {
            ProviderKind::OpenAi | ProviderKind::HostedVllm => {
                Ok(Provider::OpenAi(openai::OpenAiCompatible::new(d)?))
            }
            ProviderKind::Azure => Ok(Provider::Azure(azure::Azure::new(d)?)),
            ProviderKind::Anthropic => Ok(Provider::Anthropic(anthropic::Anthropic::new(d)?)),
            ProviderKind::Ollama | ProviderKind::OllamaChat => {
                Ok(Provider::Ollama(ollama::Ollama::new(d)?))
            }
            ProviderKind::Gemini => Ok(Provider::Gemini(gemini::Gemini::new(d)?)),
            ProviderKind::Local => Ok(Provider::Local(local::Local::new(d)?)),
        }
    }

    /// One call; a Messages request goes natively or translated ([`messages`]).
    pub async fn call(
        &self,
        request: UpstreamRequest<'_>,
    ) -> Result<ProviderResponse, ProviderError> {
        match request.endpoint {
            Endpoint::Messages => messages::call(self, request).await,
            Endpoint::Responses => responses::call(self, request).await,
            _ => self.call_openai(request).await,
        }
    }

    /// Whether the provider serves OpenAI's Responses API itself (else `/v1/responses` is
    /// bridged onto chat completions, [`responses`]).
    pub fn serves_responses(&self) -> bool {
        match self {
            Provider::OpenAi(p) => p.serves_responses(),
            Provider::Azure(_) => true,
            _ => false,
        }
    }

    /// The provider when it speaks Anthropic's Messages wire format itself.
    pub fn messages_native(&self) -> Option<&anthropic::Anthropic> {
        match self {
            Provider::Anthropic(p) => Some(p),
            _ => None,
        }
    }

    /// The provider sends OpenAI's wire format as it is (unknown fields included).
    pub fn speaks_openai(&self) -> bool {
        matches!(self, Provider::OpenAi(_) | Provider::Azure(_))
    }

    /// One call of an OpenAI endpoint.
    async fn call_openai(
        &self,
        request: UpstreamRequest<'_>,
    ) -> Result<ProviderResponse, ProviderError> {
        match self {
            Provider::OpenAi(p) => p.call(request).await,
            Provider::Azure(p) => p.call(request).await,
            Provider::Anthropic(p) => p.call(request).await,
            Provider::Ollama(p) => p.call(request).await,
            Provider::Gemini(p) => p.call(request).await,
            Provider::Mock(p) => p.call(request).await,
            Provider::Local(p) => p.call(request).await,
        }
    }
}

/// A cheap request that shows whether a deployment's upstream answers: its model listing,
/// with the deployment's own headers (key included).
pub struct Listing<'a> {
    pub url: String,
    headers: &'a reqwest::header::HeaderMap,
    /// The upstream key, scrubbed from any error text.
    secret: Option<&'a str>,
}

/// What probing an upstream found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamProbe {
    /// Answers in-process (`mock_response`, local embeddings): nothing to reach.
    InProcess,
    /// Answered with this HTTP status.
    Answered { url: String, status: u16 },
    /// No answer: connection refused, DNS, TLS or the timeout; the text is free of secrets.
    Unreachable { url: String, error: String },
}

impl Provider {
    /// Asks the deployment's upstream for its model listing, bounded by `timeout` (for
    /// `hx-gateway check`). Any HTTP answer shows the upstream reachable; the status tells
    /// whether it took the key.
    pub async fn probe_upstream(&self, upstream: &Upstream, timeout: Duration) -> UpstreamProbe {
        let listing = match self {
            Provider::OpenAi(p) => p.listing(),
            Provider::Azure(p) => p.listing(),
            Provider::Anthropic(p) => p.listing(),
            Provider::Ollama(p) => p.listing(),
            Provider::Gemini(p) => p.listing(),
            Provider::Mock(_) | Provider::Local(_) => return UpstreamProbe::InProcess,
        };
        let shown = crate::secret::redact_url(&listing.url);
        let sent = upstream
            .http()
            .get(&listing.url)
            .headers(listing.headers.clone())
            .timeout(timeout)
            .send()
            .await;
        match sent {
            Ok(response) => UpstreamProbe::Answered {
                url: shown,
                status: response.status().as_u16(),
            },
            Err(e) => {
                let what = if e.is_timeout() {
                    format!("no answer within {} s", timeout.as_secs())
                } else {
                    let mut text = String::from("cannot connect");
                    crate::error::append_causes(&mut text, &e);
                    text
                };
                let secrets: Vec<&str> = listing.secret.into_iter().collect();
                UpstreamProbe::Unreachable {
                    url: shown,
                    error: crate::secret::scrub(&what, &secrets),
                }
            }
        }
    }
}
