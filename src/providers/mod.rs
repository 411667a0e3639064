//! Upstream providers behind one interface: each module translates the OpenAI-shaped request
//! into its provider's protocol and the answer (JSON, stream events, usage, errors) back.
//!
//! Dispatch is an enum rather than `dyn Trait`: the set is closed, calls stay static, and
//! `async fn` in traits is not object-safe.

pub mod anthropic;
pub mod azure;
pub mod gemini;
pub mod local;
pub mod mock;
pub mod native;
pub mod ollama;
pub mod openai;
pub mod sse;
pub mod transport;

use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::{Deployment, ProviderKind};
use crate::error::{ApiError, ErrorKind};

/// The OpenAI endpoint a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Chat,
    Completion,
    Embedding,
}

impl Endpoint {
    /// LiteLLM's `call_type` for spend logs.
    pub fn call_type(self) -> &'static str {
        match self {
            Endpoint::Chat => "acompletion",
            Endpoint::Completion => "atext_completion",
            Endpoint::Embedding => "aembedding",
        }
    }

    /// The path below an OpenAI-compatible base URL.
    pub fn openai_path(self) -> &'static str {
        match self {
            Endpoint::Chat => "/chat/completions",
            Endpoint::Completion => "/completions",
            Endpoint::Embedding => "/embeddings",
        }
    }
}

/// Token counts, OpenAI's `usage` object.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
    #[serde(default)]
    pub total_tokens: u64,
}

/// One request to one deployment.
#[derive(Debug)]
pub struct UpstreamRequest<'a> {
    pub endpoint: Endpoint,
    pub deployment: &'a Deployment,
    /// The client's body, shared by every attempt; the provider rewrites `model` and
    /// translates the rest into a document of its own.
    pub body: &'a Map<String, Value>,
    /// The name the client asked for (wildcard deployments pass it through).
    pub requested_model: &'a str,
    pub stream: bool,
    /// Bound on the whole exchange (non-streaming) or on the response headers (streaming).
    pub timeout: Option<Duration>,
    /// Ask the upstream for a final usage chunk (OpenAI `stream_options.include_usage`).
    pub want_stream_usage: bool,
    pub drop_params: bool,
}

/// One event of a streamed answer: the JSON of one `chat.completion.chunk` (or completion
/// chunk) in OpenAI's shape.
#[derive(Debug, Clone)]
pub struct StreamChunk {
    pub data: Bytes,
    /// Set on the chunk that carries usage (usually the last).
    pub usage: Option<Usage>,
    /// A chunk that carries only usage (no choices): dropped when the client did not ask.
    pub usage_only: bool,
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
    pub fn for_deployment(
        d: &Deployment,
        http: &reqwest::Client,
    ) -> Result<Self, ProviderUnavailable> {
        if let Some(text) = &d.mock_response {
            return Ok(Provider::Mock(mock::Mock::new(text.clone())));
        }
        match d.provider {
            ProviderKind::OpenAi | ProviderKind::HostedVllm => Ok(Provider::OpenAi(
                openai::OpenAiCompatible::new(d, http.clone())?,
            )),
            ProviderKind::Azure => Ok(Provider::Azure(azure::Azure::new(d, http.clone())?)),
            ProviderKind::Anthropic => Ok(Provider::Anthropic(anthropic::Anthropic::new(
                d,
                http.clone(),
            )?)),
            ProviderKind::Ollama | ProviderKind::OllamaChat => {
                Ok(Provider::Ollama(ollama::Ollama::new(d, http.clone())?))
            }
            ProviderKind::Gemini => Ok(Provider::Gemini(gemini::Gemini::new(d, http.clone())?)),
            ProviderKind::Local => Ok(Provider::Local(local::Local::new(d)?)),
        }
    }

    pub async fn call(
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

/// Parses `retry-after` (seconds or an HTTP date; only seconds are honoured).
pub fn parse_retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    value
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

thread_local! {
    /// The upstream client of a server thread (`lifecycle::serve_on_threads`): a connection
    /// pool of its own, so an upstream connection is driven by the thread whose requests use
    /// it instead of waking another thread for every request.
    static THREAD_CLIENT: std::cell::RefCell<Option<reqwest::Client>> =
        const { std::cell::RefCell::new(None) };
}

/// Gives the calling thread its own upstream client (see [`client_for_thread`]).
pub fn use_thread_client(client: reqwest::Client) {
    THREAD_CLIENT.with(|c| *c.borrow_mut() = Some(client));
}

/// The client for an upstream call: the thread's own when it has one, else the shared one.
pub(crate) fn client_for_thread(shared: &reqwest::Client) -> reqwest::Client {
    THREAD_CLIENT
        .with(|c| c.borrow().clone())
        .unwrap_or_else(|| shared.clone())
}

/// Reads the top-level `usage` out of an OpenAI-shaped JSON answer: only that value is parsed.
pub fn usage_of(body: &[u8]) -> Option<Usage> {
    let value = top_level_value(body, b"usage")?;
    let mut parser = serde_json::Deserializer::from_slice(value);
    Option::<Usage>::deserialize(&mut parser).ok().flatten()
}

/// The bytes of a JSON object from where the value of one of its top-level keys starts.
///
/// Written here because serde_json can only skip the other members by parsing them, which
/// validates every byte of the generated text: ~8,000 instructions for the benchmark's short
/// answer, growing with the answer's length. This scan jumps through strings (`memchr` to the
/// next quote or backslash) and follows nesting, so a `"usage"` inside a string or a nested
/// object never matches; in valid JSON a string followed by `:` at depth 1 is a key of the
/// top-level object. The value itself is then parsed by serde.
fn top_level_value<'a>(json: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let mut depth = 0usize;
    let mut i = 0;
    while let Some(&byte) = json.get(i) {
        match byte {
            b'"' => {
                let start = i + 1;
                let mut end = start;
                // Inside a string only a quote or a backslash matters: jump to the next one.
                loop {
                    end += memchr::memchr2(b'"', b'\\', json.get(end..)?)?;
                    match json[end] {
                        b'\\' => end += 2,
                        _ => break,
                    }
                }
                let rest = json.get(end + 1..)?;
                if depth == 1 && json.get(start..end) == Some(key) {
                    let next = rest.iter().position(|b| !b.is_ascii_whitespace())?;
                    if rest[next] == b':' {
                        return rest.get(next + 1..);
                    }
                }
                i = end + 1;
            }
            b'{' | b'[' => {
                depth += 1;
                i += 1;
            }
            b'}' | b']' => {
                depth = depth.checked_sub(1)?;
                i += 1;
            }
            _ => i += 1,
        }
    }
    None
}

#[cfg(test)]
mod usage_tests {
    use super::*;

    fn usage(prompt: u64, completion: u64) -> Option<Usage> {
        Some(Usage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: prompt + completion,
        })
    }

    #[test]
    fn the_top_level_usage_is_read() {
        let body = br#"{"id":"c1","choices":[{"message":{"content":"hi"}}],"usage":{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8},"system_fingerprint":"fp"}"#;
        assert_eq!(usage_of(body), usage(5, 3));
        let spaced = b"{ \"usage\" :\n {\"prompt_tokens\": 2, \"completion_tokens\": 1, \"total_tokens\": 3} }";
        assert_eq!(usage_of(spaced), usage(2, 1));
    }

    #[test]
    fn usage_inside_strings_or_nested_objects_is_not_the_answers() {
        // The generated text mentions the key, escaped quotes included; a nested object has a
        // `usage` of its own before the real one.
        let body = br#"{"choices":[{"message":{"content":"say \"usage\": {\"prompt_tokens\": 99} \\"}}],"meta":{"usage":{"prompt_tokens":50,"completion_tokens":50,"total_tokens":100}},"model":"usage","usage":{"prompt_tokens":7,"completion_tokens":1,"total_tokens":8}}"#;
        assert_eq!(usage_of(body), usage(7, 1));
        let nested_only = br#"{"choices":[{"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}]}"#;
        assert_eq!(usage_of(nested_only), None);
    }

    #[test]
    fn missing_null_or_broken_usage_is_none() {
        assert_eq!(usage_of(br#"{"choices":[]}"#), None);
        assert_eq!(usage_of(br#"{"usage":null}"#), None);
        assert_eq!(usage_of(br#"{"usage":{"prompt_tokens":"many"}}"#), None);
        assert_eq!(usage_of(br#"{"usage""#), None);
        assert_eq!(usage_of(b"not json"), None);
        assert_eq!(usage_of(br#"{"content":"unterminated"#), None);
    }
}
