//! Shared machinery of the providers that do not speak OpenAI's wire format (Anthropic,
//! Ollama, Gemini): parameter checks and `drop_params`, the HTTP exchange with errors turned
//! into OpenAI's shape, OpenAI-shaped answers and stream chunks built from what each provider
//! read upstream, and a stream driver for stateful event translators.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use eventsource_stream::Eventsource;
use futures::{Stream, StreamExt};
use reqwest::header::HeaderMap;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use super::openai::DEFAULT_TIMEOUT;
use super::transport::classify;
use super::{
    ChunkStream, Endpoint, ProviderError, ProviderResponse, StreamChunk, UpstreamRequest, Usage,
    parse_retry_after,
};
use crate::error::ApiError;
use crate::secret::scrub;

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

/// The text of an OpenAI message `content`: a string, or the `text` parts of a list.
pub fn content_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => {
            let mut out = String::new();
            for part in parts {
                if let Some(text) = part.get("text").and_then(Value::as_str) {
                    out.push_str(text);
                } else if let Some(text) = part.as_str() {
                    out.push_str(text);
                }
            }
            out
        }
        _ => String::new(),
    }
}

/// An image (or file) reference from an `image_url` part.
pub enum ImageRef<'a> {
    /// A `data:` URL: media type and base64 payload.
    Inline {
        media_type: &'a str,
        data: &'a str,
    },
    Url(&'a str),
}

/// Reads an OpenAI `image_url` value (`"url"` or `{"url": ...}`).
pub fn image_ref(part: &Value) -> Option<ImageRef<'_>> {
    let url = match part.get("image_url")? {
        Value::String(s) => s.as_str(),
        other => other.get("url")?.as_str()?,
    };
    Some(parse_data_url(url).unwrap_or(ImageRef::Url(url)))
}

/// `data:image/png;base64,AAAA` into its media type and payload.
pub fn parse_data_url(url: &str) -> Option<ImageRef<'_>> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let media_type = meta.strip_suffix(";base64")?;
    Some(ImageRef::Inline { media_type, data })
}

/// A 400 about the request's content, naming the field.
pub fn invalid(message: impl Into<String>, param: impl Into<String>) -> ProviderError {
    ProviderError::Rejected(ApiError::invalid(message, param))
}

/// `/v1/completions` on a chat-only provider: the prompt becomes one user message.
pub fn prompt_to_messages(body: &mut Map<String, Value>) -> Result<(), ProviderError> {
    let prompt = match body.remove("prompt") {
        Some(Value::String(s)) => s,
        Some(Value::Array(items)) if items.len() == 1 && items[0].is_string() => {
            items[0].as_str().unwrap_or_default().to_string()
        }
        _ => {
            return Err(invalid(
                "'prompt' must be one string for this provider.",
                "prompt",
            ));
        }
    };
    body.insert(
        "messages".into(),
        json!([{"role": "user", "content": prompt}]),
    );
    Ok(())
}

/// The texts of an embeddings `input` (a string or a list of strings).
pub fn embedding_inputs(body: &mut Map<String, Value>) -> Result<Vec<String>, ProviderError> {
    let bad = || {
        invalid(
            "'input' must be a string or a list of strings for this provider.",
            "input",
        )
    };
    match body.remove("input") {
        Some(Value::String(s)) => Ok(vec![s]),
        Some(Value::Array(items)) if !items.is_empty() => items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                _ => Err(bad()),
            })
            .collect(),
        _ => Err(bad()),
    }
}

/// The parameters embeddings take on every provider (`encoding_format: float` is the default).
pub fn embedding_accepts(name: &str, value: &Value, dimensions: bool) -> bool {
    match name {
        "encoding_format" => value.as_str() == Some("float"),
        "dimensions" => dimensions,
        _ => false,
    }
}

/// OpenAI's embeddings answer.
pub fn embeddings_response(
    model: &str,
    vectors: Vec<Value>,
    prompt_tokens: u64,
) -> ProviderResponse {
    let data: Vec<Value> = vectors
        .into_iter()
        .enumerate()
        .map(|(index, embedding)| json!({"object": "embedding", "index": index, "embedding": embedding}))
        .collect();
    let usage = Usage::new(prompt_tokens, 0);
    let body = json!({"object": "list", "data": data, "model": model, "usage": usage});
    ProviderResponse::Complete {
        body: Bytes::from(body.to_string()),
        usage: Some(usage),
    }
}

/// A tool call of an answer, arguments as the JSON text OpenAI sends.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

/// One choice of an answer, read from a provider.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Choice {
    pub text: String,
    pub reasoning: Option<String>,
    pub tool_calls: Vec<ToolCall>,
    pub finish_reason: Option<&'static str>,
}

/// A complete answer read from a provider, turned into OpenAI's JSON by [`Answer::into_response`].
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub id: String,
    pub model: String,
    pub choices: Vec<Choice>,
    pub usage: Usage,
}

impl Answer {
    /// OpenAI's `chat.completion` (or `text_completion` for `/v1/completions`).
    pub fn to_json(&self, endpoint: Endpoint) -> Value {
        let created = chrono::Utc::now().timestamp();
        let chat = endpoint == Endpoint::Chat;
        let choices: Vec<Value> = self
            .choices
            .iter()
            .enumerate()
            .map(|(index, c)| {
                if !chat {
                    return json!({"index": index, "text": c.text, "logprobs": null,
                                  "finish_reason": c.finish_reason});
                }
                let mut message = Map::new();
                message.insert("role".into(), json!("assistant"));
                let content = if c.text.is_empty() && !c.tool_calls.is_empty() {
                    Value::Null
                } else {
                    Value::String(c.text.clone())
                };
                message.insert("content".into(), content);
                if let Some(reasoning) = &c.reasoning {
                    message.insert("reasoning_content".into(), json!(reasoning));
                }
                if !c.tool_calls.is_empty() {
                    let calls: Vec<Value> = c
                        .tool_calls
                        .iter()
                        .map(|t| {
                            json!({"id": t.id, "type": "function",
                                        "function": {"name": t.name, "arguments": t.arguments}})
                        })
                        .collect();
                    message.insert("tool_calls".into(), Value::Array(calls));
                }
                json!({"index": index, "message": message, "finish_reason": c.finish_reason})
            })
            .collect();
        json!({
            "id": self.id,
            "object": if chat { "chat.completion" } else { "text_completion" },
            "created": created,
            "model": self.model,
            "choices": choices,
            "usage": self.usage,
        })
    }

    pub fn into_response(self, endpoint: Endpoint) -> ProviderResponse {
        ProviderResponse::Complete {
            body: Bytes::from(self.to_json(endpoint).to_string()),
            usage: Some(self.usage),
        }
    }
}

/// Usage from prompt and completion counts.
pub fn usage(prompt_tokens: u64, completion_tokens: u64) -> Usage {
    Usage::new(prompt_tokens, completion_tokens)
}

/// A fresh OpenAI-style id (`chatcmpl-...`, `call_...`).
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}

/// Builds OpenAI stream chunks (`chat.completion.chunk`, or `text_completion` for
/// `/v1/completions`) for one streamed answer.
pub struct ChunkWriter {
    pub id: String,
    pub model: String,
    created: i64,
    chat: bool,
    /// Choice indexes whose first delta (which carries the role) has been sent.
    role_sent: Vec<u32>,
}

impl ChunkWriter {
    pub fn new(endpoint: Endpoint, model: String) -> Self {
        ChunkWriter {
            id: new_id("chatcmpl-"),
            model,
            created: chrono::Utc::now().timestamp(),
            chat: endpoint == Endpoint::Chat,
            role_sent: Vec::new(),
        }
    }

    fn chunk(&self, choices: Value, usage: Option<Usage>) -> StreamChunk {
        let object = if self.chat {
            "chat.completion.chunk"
        } else {
            "text_completion"
        };
        let mut data = json!({"id": self.id, "object": object, "created": self.created,
                              "model": self.model, "choices": choices});
        if let Some(u) = usage {
            data["usage"] = json!(u);
        }
        StreamChunk {
            data: Bytes::from(data.to_string()),
            usage,
            usage_only: usage.is_some(),
        }
    }

    /// A chat delta for a choice; the first one of each choice names the role.
    fn delta(&mut self, index: u32, mut delta: Map<String, Value>) -> StreamChunk {
        if !self.role_sent.contains(&index) {
            self.role_sent.push(index);
            delta.insert("role".into(), json!("assistant"));
        }
        self.chunk(
            json!([{"index": index, "delta": delta, "finish_reason": null}]),
            None,
        )
    }

    pub fn text(&mut self, index: u32, text: &str) -> StreamChunk {
        if !self.chat {
            return self.chunk(
                json!([{"index": index, "text": text, "logprobs": null, "finish_reason": null}]),
                None,
            );
        }
        let mut delta = Map::new();
        delta.insert("content".into(), json!(text));
        self.delta(index, delta)
    }

    /// Reasoning text (`reasoning_content`, as LiteLLM streams it); none for completions.
    pub fn reasoning(&mut self, index: u32, text: &str) -> Option<StreamChunk> {
        if !self.chat {
            return None;
        }
        let mut delta = Map::new();
        delta.insert("reasoning_content".into(), json!(text));
        Some(self.delta(index, delta))
    }

    /// A tool call delta: the first for a call carries id and name, later ones argument text.
    pub fn tool_call(
        &mut self,
        index: u32,
        call_index: u32,
        id_and_name: Option<(&str, &str)>,
        arguments: &str,
    ) -> StreamChunk {
        let mut call = Map::new();
        call.insert("index".into(), json!(call_index));
        let mut function = Map::new();
        if let Some((id, name)) = id_and_name {
            call.insert("id".into(), json!(id));
            call.insert("type".into(), json!("function"));
            function.insert("name".into(), json!(name));
        }
        function.insert("arguments".into(), json!(arguments));
        call.insert("function".into(), Value::Object(function));
        let mut delta = Map::new();
        delta.insert("content".into(), Value::Null);
        delta.insert("tool_calls".into(), json!([call]));
        self.delta(index, delta)
    }

    pub fn finish(&mut self, index: u32, reason: &str) -> StreamChunk {
        let choice = if self.chat {
            json!({"index": index, "delta": {}, "finish_reason": reason})
        } else {
            json!({"index": index, "text": "", "logprobs": null, "finish_reason": reason})
        };
        self.chunk(json!([choice]), None)
    }

    /// The final usage-only chunk (no choices), dropped unless the client asked for it.
    pub fn usage(&self, usage: Usage) -> StreamChunk {
        self.chunk(json!([]), Some(usage))
    }
}

/// A provider's stream protocol, as a state machine fed one upstream event at a time.
pub trait StreamTranslator: Send + 'static {
    /// One upstream event (`kind` is the SSE event name, empty for NDJSON lines). Returns
    /// `true` when the answer is complete.
    fn on_event(
        &mut self,
        kind: &str,
        data: &str,
        out: &mut Vec<StreamChunk>,
    ) -> Result<bool, ProviderError>;

    /// The upstream closed its stream before the event that completes the answer.
    fn on_close(&mut self, out: &mut Vec<StreamChunk>) -> Result<(), ProviderError>;
}

type EventStream =
    std::pin::Pin<Box<dyn Stream<Item = Result<(String, String), ProviderError>> + Send>>;

/// SSE events of a response as `(event name, data)`.
pub fn sse_events(response: reqwest::Response) -> EventStream {
    Box::pin(
        response
            .bytes_stream()
            .eventsource()
            .map(|event| match event {
                Ok(e) => Ok((e.event, e.data)),
                Err(e) => Err(ProviderError::Stream(e.to_string())),
            }),
    )
}

/// NDJSON lines of a response (one JSON object a line), each as `("", line)`.
pub fn ndjson_lines(response: reqwest::Response) -> EventStream {
    let state = (Box::pin(response.bytes_stream()), BytesMut::new(), false);
    let lines = futures::stream::unfold(state, |(mut bytes, mut buffer, ended)| async move {
        if ended {
            return None;
        }
        loop {
            if let Some(pos) = buffer.iter().position(|b| *b == b'\n') {
                let line = buffer.split_to(pos + 1);
                let text = String::from_utf8_lossy(&line).trim().to_string();
                if text.is_empty() {
                    continue;
                }
                return Some((Ok((String::new(), text)), (bytes, buffer, false)));
            }
            match bytes.next().await {
                Some(Ok(chunk)) => buffer.extend_from_slice(&chunk),
                Some(Err(e)) => {
                    let err = ProviderError::Stream(e.to_string());
                    return Some((Err(err), (bytes, buffer, true)));
                }
                None => {
                    let text = String::from_utf8_lossy(&buffer).trim().to_string();
                    buffer.clear();
                    if text.is_empty() {
                        return None;
                    }
                    return Some((Ok((String::new(), text)), (bytes, buffer, true)));
                }
            }
        }
    });
    Box::pin(lines)
}

struct Driver<T> {
    events: EventStream,
    translator: T,
    /// The upstream key, scrubbed from error texts (upstreams may echo what they were sent).
    secret: Option<String>,
    pending: VecDeque<StreamChunk>,
    finished: bool,
}

/// Runs a translator over upstream events. Events that produce nothing (pings, block
/// boundaries) are consumed without yielding, so the first item is real content: the router
/// can still retry a stream that fails before it.
pub fn translate_stream<T: StreamTranslator>(
    events: EventStream,
    translator: T,
    secret: Option<&str>,
) -> ChunkStream {
    let driver = Driver {
        events,
        translator,
        secret: secret.map(str::to_string),
        pending: VecDeque::new(),
        finished: false,
    };
    Box::pin(futures::stream::unfold(driver, |mut d| async move {
        loop {
            if let Some(chunk) = d.pending.pop_front() {
                return Some((Ok(chunk), d));
            }
            if d.finished {
                return None;
            }
            let mut out = Vec::new();
            let step = match d.events.next().await {
                Some(Ok((kind, data))) => d.translator.on_event(&kind, &data, &mut out),
                Some(Err(e)) => Err(e),
                None => d.translator.on_close(&mut out).map(|()| true),
            };
            match step {
                Ok(done) => {
                    d.finished = done;
                    d.pending.extend(out);
                }
                Err(ProviderError::Stream(text)) => {
                    d.finished = true;
                    let text = scrub(&text, &d.secret.as_deref().into_iter().collect::<Vec<_>>());
                    return Some((Err(ProviderError::Stream(text)), d));
                }
                Err(e) => {
                    d.finished = true;
                    return Some((Err(e), d));
                }
            }
        }
    }))
}

/// Maps a provider's error body to OpenAI's shape: `(status, body) -> OpenAI error JSON`.
pub type ErrorTranslator = fn(u16, &str) -> Bytes;

/// An OpenAI-shaped error body for an upstream failure. Context-window and content-policy
/// errors are recognised from the message, whatever the provider calls them.
/// The upstream's own message, else its raw text, else a generic word.
pub fn message_or_text<'a>(message: Option<&'a str>, text: &'a str) -> &'a str {
    message.unwrap_or(if text.is_empty() {
        "upstream error"
    } else {
        text
    })
}

pub fn openai_error_body(
    provider: &str,
    status: u16,
    upstream_type: Option<&str>,
    message: &str,
) -> Bytes {
    let lower = message.to_ascii_lowercase();
    let context_window = matches!(status, 400 | 413)
        && (lower.contains("prompt is too long")
            || lower.contains("context length")
            || lower.contains("context window")
            || lower.contains("too many tokens")
            || (lower.contains("input token count") && lower.contains("exceeds")));
    let content_policy = !context_window
        && (lower.contains("content policy")
            || lower.contains("content_policy")
            || lower.contains("content filter"));
    let (kind, message) = if context_window {
        (
            "invalid_request_error",
            format!("{provider}: context window exceeded (context_length_exceeded): {message}"),
        )
    } else if content_policy && status == 400 {
        (
            "invalid_request_error",
            format!("{provider}: content policy violation: {message}"),
        )
    } else {
        let kind = match (upstream_type, status) {
            (_, 401) => "authentication_error",
            (_, 403) => "permission_error",
            (_, 404) => "not_found_error",
            (_, 429) => "rate_limit_error",
            (_, 408 | 504) => "timeout_error",
            (Some("UNAUTHENTICATED"), _) => "authentication_error",
            (Some("PERMISSION_DENIED"), _) => "permission_error",
            (_, 400 | 413 | 422) => "invalid_request_error",
            _ => "api_error",
        };
        (kind, format!("{provider}: {message}"))
    };
    let body = json!({"error": {"message": message, "type": kind, "param": null,
                                "code": status.to_string()}});
    Bytes::from(body.to_string())
}

/// One POST to a provider. A non-success status becomes [`ProviderError::Status`] with the
/// body in OpenAI's shape (secrets removed); the router decides on retries from the status.
pub async fn post_json(
    http: &reqwest::Client,
    url: &str,
    headers: &HeaderMap,
    body: &impl Serialize,
    timeout: Option<Duration>,
    secret: Option<&str>,
    errors: ErrorTranslator,
) -> Result<reqwest::Response, ProviderError> {
    let payload = serde_json::to_vec(body)
        .map_err(|e| ProviderError::Rejected(ApiError::internal(e.to_string())))?;
    let timeout = timeout.unwrap_or(DEFAULT_TIMEOUT);
    let pending = http.post(url).headers(headers.clone()).body(payload).send();
    let response = match tokio::time::timeout(timeout, pending).await {
        Err(_) => {
            return Err(ProviderError::Timeout(format!(
                "no answer within {}s",
                timeout.as_secs_f64()
            )));
        }
        Ok(Err(e)) => return Err(classify(&e, secret)),
        Ok(Ok(r)) => r,
    };
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let retry_after = parse_retry_after(response.headers());
    let raw = read_bytes(response, timeout, secret)
        .await
        .unwrap_or_default();
    let text = scrub(
        &String::from_utf8_lossy(&raw),
        &secret.into_iter().collect::<Vec<_>>(),
    );
    Err(ProviderError::Status {
        status: status.as_u16(),
        body: errors(status.as_u16(), text.trim()),
        retry_after,
    })
}

async fn read_bytes(
    response: reqwest::Response,
    timeout: Duration,
    secret: Option<&str>,
) -> Result<Bytes, ProviderError> {
    match tokio::time::timeout(timeout, response.bytes()).await {
        Err(_) => Err(ProviderError::Timeout(
            "the answer did not complete in time".into(),
        )),
        Ok(Err(e)) => Err(classify(&e, secret)),
        Ok(Ok(b)) => Ok(b),
    }
}

/// Reads a successful answer as JSON. An unreadable answer is a 502 (retryable: another
/// deployment may do better).
pub async fn read_json<T: DeserializeOwned>(
    response: reqwest::Response,
    timeout: Option<Duration>,
    secret: Option<&str>,
    provider: &str,
) -> Result<T, ProviderError> {
    let raw = read_bytes(response, timeout.unwrap_or(DEFAULT_TIMEOUT), secret).await?;
    serde_json::from_slice(&raw).map_err(|e| ProviderError::Status {
        status: 502,
        body: openai_error_body(
            provider,
            502,
            None,
            &format!("the upstream answer could not be read: {e}"),
        ),
        retry_after: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
