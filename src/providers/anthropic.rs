//! Anthropic's Messages API (`anthropic/`): OpenAI chat requests become `POST /v1/messages`
//! (system prompt pulled out, content blocks, tools, `max_tokens` always set), and answers,
//! stream events, usage and errors come back in OpenAI's shape.

use futures::StreamExt;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::http::extra_headers;
use super::native::{
    self, Answer, Choice, ChunkWriter, ImageRef, StreamTranslator, ToolCall, content_text, invalid,
    usage,
};
use super::{
    Endpoint, ProviderError, ProviderResponse, ProviderUnavailable, StreamChunk, UpstreamRequest,
    Usage,
};
use crate::config::Deployment;

const PROVIDER: &str = "anthropic";
const DEFAULT_BASE: &str = "https://api.anthropic.com";
const API_VERSION: &str = "2023-06-01";
/// `max_tokens` when neither the request nor `model_info.max_tokens` sets one.
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

#[derive(Debug, Clone)]
pub struct Anthropic {
    url: String,
    models_url: String,
    headers: HeaderMap,
    secret: Option<String>,
}

impl Anthropic {
    /// The API's model listing (`GET {api_base}/v1/models`), for `check`.
    pub fn listing(&self) -> super::Listing<'_> {
        super::Listing {
            url: self.models_url.clone(),
            headers: &self.headers,
            secret: self.secret.as_deref(),
        }
    }

    pub fn new(d: &Deployment) -> Result<Self, ProviderUnavailable> {
        let base = d.api_base.as_deref().unwrap_or(DEFAULT_BASE);
        // `api_base` may be given with or without the version segment.
        let base = base.trim_end_matches('/').trim_end_matches("/v1");
        let mut headers = extra_headers(d)?;
        headers.insert(
            HeaderName::from_static("anthropic-version"),
            HeaderValue::from_static(API_VERSION),
        );
        if let Some(key) = &d.api_key {
            let mut value = HeaderValue::from_str(key.expose()).map_err(|_| {
                ProviderUnavailable("api_key contains characters not allowed in a header".into())
            })?;
            value.set_sensitive(true);
            headers.insert(HeaderName::from_static("x-api-key"), value);
        }
        Ok(Anthropic {
            url: format!("{base}/v1/messages"),
            models_url: format!("{base}/v1/models"),
            headers,
            secret: d.api_key.as_ref().map(|k| k.expose().to_string()),
        })
    }

    pub async fn call(
        &self,
        request: UpstreamRequest<'_>,
    ) -> Result<ProviderResponse, ProviderError> {
        native::call(self, request).await
    }

    /// A Messages request in Anthropic's own wire format: the body forwarded with the model
    /// renamed (the deployment's defaults added, nothing else touched: `cache_control`,
    /// thinking blocks and signatures pass as sent), the client's `anthropic-version` and
    /// `anthropic-beta` with it; the answer and every stream event passed back as they come,
    /// usage read on the way for spend. Errors keep Anthropic's body.
    pub async fn messages(
        &self,
        request: UpstreamRequest<'_>,
    ) -> Result<ProviderResponse, ProviderError> {
        let body = native::body_with_defaults(&request);
        let response = self.post_native(&request, &self.url, body).await?;
        if request.stream {
            let mut usage = crate::api::messages::NativeUsage::default();
            let events = super::sse::response_events(response).map(move |event| {
                let (name, data) = event?;
                let seen = usage.on_event(&name, &data);
                let name = if name.is_empty() { "message" } else { &name };
                Ok(StreamChunk {
                    data: crate::api::messages::frame(name, data.as_bytes()),
                    usage: seen,
                    usage_only: false,
                })
            });
            return Ok(ProviderResponse::Stream(Box::pin(events)));
        }
        let timeout = request.timeout.unwrap_or(super::http::DEFAULT_TIMEOUT);
        let raw = super::http::read_bytes(response, timeout, self.secret.as_deref()).await?;
        let usage = crate::api::answer_usage(Endpoint::Messages, &raw);
        Ok(ProviderResponse::Complete { body: raw, usage })
    }
}

impl Anthropic {
    /// `POST /v1/messages/count_tokens` with the model renamed: Anthropic's own count of a
    /// Messages request (`{"input_tokens": n}`), passed back as it answers.
    pub async fn count_tokens(
        &self,
        request: UpstreamRequest<'_>,
    ) -> Result<bytes::Bytes, ProviderError> {
        let mut body = request.body.clone();
        // Fields count_tokens does not take.
        for field in [
            "max_tokens",
            "stream",
            "temperature",
            "top_p",
            "top_k",
            "stop_sequences",
            "metadata",
        ] {
            body.remove(field);
        }
        let url = format!("{}/count_tokens", self.url);
        let response = self.post_native(&request, &url, body).await?;
        let timeout = request.timeout.unwrap_or(super::http::DEFAULT_TIMEOUT);
        super::http::read_bytes(response, timeout, self.secret.as_deref()).await
    }

    /// One POST of a Messages-API body to `url`: the model renamed, the client's forwarded
    /// headers over the deployment's, Anthropic's error body kept for the client.
    async fn post_native(
        &self,
        request: &UpstreamRequest<'_>,
        url: &str,
        mut body: Map<String, Value>,
    ) -> Result<reqwest::Response, ProviderError> {
        let model = request.deployment.upstream_model(request.requested_model);
        body.insert("model".into(), Value::String(model));
        let mut headers = self.headers.clone();
        for (name, value) in request.forward_headers {
            headers.insert(name.clone(), value.clone());
        }
        native::post_json(
            request.upstream.http(),
            url,
            &headers,
            &body,
            request.timeout,
            self.secret.as_deref(),
            anthropic_error_body,
        )
        .await
    }
}

/// Anthropic's error body kept as it is, for the Messages route (secrets already removed).
fn anthropic_error_body(_status: u16, text: &str) -> bytes::Bytes {
    bytes::Bytes::from(text.to_string())
}

impl native::Translating for Anthropic {
    type Answer = MessagesResponse;
    type Events = EventTranslator;

    fn name(&self) -> &'static str {
        PROVIDER
    }

    fn exchange(&self) -> native::Exchange<'_> {
        native::Exchange {
            headers: &self.headers,
            secret: self.secret.as_deref(),
            errors: error_body,
        }
    }

    fn accepts(&self, name: &str, value: &Value) -> bool {
        accepts(name, value)
    }

    fn chat_request(
        &self,
        body: Map<String, Value>,
        model: &str,
        request: &UpstreamRequest<'_>,
    ) -> Result<(String, Value), ProviderError> {
        let default_max = request.deployment.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS);
        let payload = to_messages_request(body, model, default_max, request.stream)?;
        Ok((self.url.clone(), payload))
    }

    fn translator(&self, endpoint: Endpoint, model: String) -> EventTranslator {
        EventTranslator::new(endpoint, model)
    }

    fn answer(&self, answer: MessagesResponse, _model: &str) -> native::Answer {
        from_messages_response(answer)
    }

    /// The Messages API has no embeddings.
    fn supports_embeddings(&self) -> bool {
        false
    }

    async fn embed(
        &self,
        _body: Map<String, Value>,
        _model: String,
        _request: &UpstreamRequest<'_>,
    ) -> Result<ProviderResponse, ProviderError> {
        Err(ProviderError::Rejected(crate::error::ApiError::invalid(
            format!("Embeddings are not supported by provider {PROVIDER}."),
            "model",
        )))
    }
}

/// The OpenAI parameters the Messages API takes.
fn accepts(name: &str, value: &Value) -> bool {
    match name {
        "temperature"
        | "top_p"
        | "stop"
        | "max_tokens"
        | "max_completion_tokens"
        | "tools"
        | "tool_choice"
        | "parallel_tool_calls" => true,
        "n" => value.as_u64() == Some(1),
        _ => false,
    }
}

/// Translates an OpenAI chat body (already checked by [`accepts`]) into a Messages request.
pub fn to_messages_request(
    mut body: Map<String, Value>,
    model: &str,
    default_max_tokens: u64,
    stream: bool,
) -> Result<Value, ProviderError> {
    let mut out = Map::new();
    out.insert("model".into(), json!(model));
    let max_tokens = native::max_tokens(&body).unwrap_or(default_max_tokens);
    out.insert("max_tokens".into(), json!(max_tokens));
    let Some(Value::Array(messages)) = body.remove("messages") else {
        return Err(invalid(
            "'messages' must be a list of messages.",
            "messages",
        ));
    };
    let (system, messages) = convert_messages(messages)?;
    if !system.is_empty() {
        let system = match system.as_slice() {
            [only] if only.get("cache_control").is_none() => only["text"].clone(),
            _ => Value::Array(system),
        };
        out.insert("system".into(), system);
    }
    out.insert("messages".into(), Value::Array(messages));
    for key in ["temperature", "top_p", "top_k", "thinking"] {
        if let Some(v) = body.remove(key).filter(|v| !v.is_null()) {
            out.insert(key.into(), v);
        }
    }
    if let Some(stop) = body.get("stop") {
        let list = native::stop_list(stop);
        if !list.is_empty() {
            out.insert("stop_sequences".into(), Value::Array(list));
        }
    }
    if let Some(Value::Array(tools)) = body.remove("tools")
        && !tools.is_empty()
    {
        out.insert("tools".into(), Value::Array(convert_tools(tools)?));
    }
    let parallel = body.get("parallel_tool_calls").and_then(Value::as_bool);
    let mut tool_choice = match body.remove("tool_choice") {
        None | Some(Value::Null) => None,
        Some(choice) => Some(convert_tool_choice(&choice)?),
    };
    if parallel == Some(false) {
        let choice = tool_choice.get_or_insert_with(|| json!({"type": "auto"}));
        if choice["type"] != "none" {
            choice["disable_parallel_tool_use"] = json!(true);
        }
    }
    if let Some(choice) = tool_choice {
        out.insert("tool_choice".into(), choice);
    }
    if let Some(Value::String(user)) = body.remove("user") {
        out.insert("metadata".into(), json!({"user_id": user}));
    }
    if stream {
        out.insert("stream".into(), json!(true));
    }
    Ok(Value::Object(out))
}

/// Splits system messages off and turns the rest into Anthropic messages, merging
/// consecutive turns of the same role (tool results join the user turn they belong to).
fn convert_messages(messages: Vec<Value>) -> Result<(Vec<Value>, Vec<Value>), ProviderError> {
    let mut system: Vec<Value> = Vec::new();
    let mut out: Vec<(String, Vec<Value>)> = Vec::new();
    for (i, message) in messages.into_iter().enumerate() {
        let Value::Object(mut m) = message else {
            return Err(invalid(
                format!("'messages[{i}]' must be an object."),
                format!("messages[{i}]"),
            ));
        };
        let role = m
            .get("role")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let (role, blocks) = match role.as_str() {
            "system" | "developer" => {
                for block in content_blocks(m.remove("content"), i)? {
                    if block["type"] == "text" {
                        system.push(block);
                    }
                }
                continue;
            }
            "user" => ("user", content_blocks(m.remove("content"), i)?),
            "assistant" => {
                let mut blocks = content_blocks(m.remove("content"), i)?;
                if let Some(Value::Array(calls)) = m.remove("tool_calls") {
                    for (j, call) in calls.iter().enumerate() {
                        blocks.push(tool_use_block(call, i, j)?);
                    }
                }
                ("assistant", blocks)
            }
            "tool" | "function" => {
                let id = m
                    .get("tool_call_id")
                    .or_else(|| m.get("name"))
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        invalid(
                            format!("'messages[{i}].tool_call_id' is required for tool messages."),
                            format!("messages[{i}].tool_call_id"),
                        )
                    })?
                    .to_string();
                let content = match m.remove("content") {
                    Some(Value::Array(parts)) => {
                        Value::Array(content_blocks(Some(Value::Array(parts)), i)?)
                    }
                    other => json!(content_text(other.as_ref())),
                };
                let block = json!({"type": "tool_result", "tool_use_id": id, "content": content});
                ("user", vec![block])
            }
            other => {
                return Err(invalid(
                    format!(
                        "'messages[{i}].role' '{other}' is not supported by provider anthropic."
                    ),
                    format!("messages[{i}].role"),
                ));
            }
        };
        if blocks.is_empty() {
            continue;
        }
        match out.last_mut() {
            Some((last_role, last_blocks)) if last_role == role => last_blocks.extend(blocks),
            _ => out.push((role.to_string(), blocks)),
        }
    }
    let messages = out
        .into_iter()
        .map(|(role, blocks)| {
            // A lone text block is sent as a plain string, as clients usually write it.
            let content = match blocks.as_slice() {
                [only] if only["type"] == "text" && only.get("cache_control").is_none() => {
                    only["text"].clone()
                }
                _ => Value::Array(blocks),
            };
            json!({"role": role, "content": content})
        })
        .collect();
    Ok((system, messages))
}

/// OpenAI message content (string or parts) as Anthropic content blocks.
fn content_blocks(content: Option<Value>, i: usize) -> Result<Vec<Value>, ProviderError> {
    match content {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) if s.is_empty() => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![json!({"type": "text", "text": s})]),
        Some(Value::Array(parts)) => {
            let mut blocks = Vec::with_capacity(parts.len());
            for (j, part) in parts.into_iter().enumerate() {
                let kind = part.get("type").and_then(Value::as_str).unwrap_or("text");
                let mut block = match kind {
                    "text" => {
                        let text = part.get("text").and_then(Value::as_str).unwrap_or_default();
                        if text.is_empty() {
                            continue;
                        }
                        json!({"type": "text", "text": text})
                    }
                    "image_url" => match native::image_ref(&part) {
                        Some(ImageRef::Inline { media_type, data }) => json!({"type": "image",
                            "source": {"type": "base64", "media_type": media_type, "data": data}}),
                        Some(ImageRef::Url(url)) => {
                            json!({"type": "image", "source": {"type": "url", "url": url}})
                        }
                        None => return Err(bad_part(i, j)),
                    },
                    "file" => {
                        let data = part
                            .pointer("/file/file_data")
                            .and_then(Value::as_str)
                            .and_then(native::parse_data_url);
                        match data {
                            Some(ImageRef::Inline { media_type, data }) => {
                                json!({"type": "document",
                                "source": {"type": "base64", "media_type": media_type, "data": data}})
                            }
                            _ => return Err(bad_part(i, j)),
                        }
                    }
                    _ => return Err(bad_part(i, j)),
                };
                if let Some(cache) = part.get("cache_control") {
                    block["cache_control"] = cache.clone();
                }
                blocks.push(block);
            }
            Ok(blocks)
        }
        Some(_) => Err(invalid(
            format!("'messages[{i}].content' must be a string or a list of parts."),
            format!("messages[{i}].content"),
        )),
    }
}

fn bad_part(i: usize, j: usize) -> ProviderError {
    invalid(
        format!("'messages[{i}].content[{j}]' is a content part provider anthropic does not take."),
        format!("messages[{i}].content[{j}]"),
    )
}

/// An OpenAI assistant `tool_calls` entry as a `tool_use` block (arguments parsed).
fn tool_use_block(call: &Value, i: usize, j: usize) -> Result<Value, ProviderError> {
    let param = format!("messages[{i}].tool_calls[{j}]");
    let id = call.get("id").and_then(Value::as_str);
    let function = call.get("function");
    let name = function.and_then(|f| f.get("name")).and_then(Value::as_str);
    let (Some(id), Some(name)) = (id, name) else {
        return Err(invalid(
            format!("'{param}' needs an id and a function name."),
            param,
        ));
    };
    let input = match function.and_then(|f| f.get("arguments")) {
        Some(Value::String(s)) if s.trim().is_empty() => json!({}),
        Some(Value::String(s)) => serde_json::from_str::<Value>(s).map_err(|_| {
            invalid(
                format!("'{param}.function.arguments' is not valid JSON."),
                format!("{param}.function.arguments"),
            )
        })?,
        Some(Value::Object(o)) => Value::Object(o.clone()),
        _ => json!({}),
    };
    Ok(json!({"type": "tool_use", "id": id, "name": name, "input": input}))
}

/// OpenAI `tools` (functions) as Anthropic tools with `input_schema`.
fn convert_tools(tools: Vec<Value>) -> Result<Vec<Value>, ProviderError> {
    tools
        .into_iter()
        .enumerate()
        .map(|(i, tool)| {
            let function = tool.get("function").ok_or_else(|| {
                invalid(
                    format!("'tools[{i}]' must be a function tool."),
                    format!("tools[{i}]"),
                )
            })?;
            let name = function
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    invalid(
                        format!("'tools[{i}].function.name' is required."),
                        format!("tools[{i}].function.name"),
                    )
                })?;
            let mut out = json!({
                "name": name,
                "input_schema": function
                    .get("parameters")
                    .filter(|p| p.is_object())
                    .cloned()
                    .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
            });
            if let Some(description) = function.get("description").filter(|d| d.is_string()) {
                out["description"] = description.clone();
            }
            if let Some(cache) = tool.get("cache_control") {
                out["cache_control"] = cache.clone();
            }
            Ok(out)
        })
        .collect()
}

/// OpenAI `tool_choice` as Anthropic's: auto, any (required), none, or one named tool.
pub fn convert_tool_choice(choice: &Value) -> Result<Value, ProviderError> {
    match choice {
        Value::String(s) => match s.as_str() {
            "auto" => Ok(json!({"type": "auto"})),
            "required" | "any" => Ok(json!({"type": "any"})),
            "none" => Ok(json!({"type": "none"})),
            _ => Err(invalid(
                format!("'tool_choice' '{s}' is not one of auto, required, none."),
                "tool_choice",
            )),
        },
        Value::Object(o) => match o
            .get("function")
            .and_then(|f| f.get("name"))
            .and_then(Value::as_str)
        {
            Some(name) => Ok(json!({"type": "tool", "name": name})),
            None => Err(invalid(
                "'tool_choice' must name a function.",
                "tool_choice",
            )),
        },
        _ => Err(invalid("'tool_choice' is not valid.", "tool_choice")),
    }
}

/// Anthropic `stop_reason` as OpenAI `finish_reason`.
pub fn finish_reason(stop_reason: &str) -> &'static str {
    match stop_reason {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        _ => "stop",
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct AnthropicUsage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
}

impl AnthropicUsage {
    /// Prompt tokens include cached ones, as LiteLLM counts them.
    fn prompt_tokens(&self) -> u64 {
        self.input_tokens
            + self.cache_creation_input_tokens.unwrap_or(0)
            + self.cache_read_input_tokens.unwrap_or(0)
    }
}

#[derive(Debug, Deserialize)]
pub struct MessagesResponse {
    #[serde(default)]
    id: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    content: Vec<Value>,
    stop_reason: Option<String>,
    #[serde(default)]
    usage: AnthropicUsage,
}

/// A Messages answer as an OpenAI answer: text blocks joined, `tool_use` blocks as tool calls.
pub fn from_messages_response(message: MessagesResponse) -> Answer {
    let mut choice = Choice::default();
    for block in &message.content {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => {
                choice.text.push_str(
                    block
                        .get("text")
                        .and_then(Value::as_str)
                        .unwrap_or_default(),
                );
            }
            Some("thinking") => {
                let text = block
                    .get("thinking")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                choice
                    .reasoning
                    .get_or_insert_with(String::new)
                    .push_str(text);
            }
            Some("tool_use") => choice.tool_calls.push(ToolCall {
                id: block
                    .get("id")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                name: block
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                arguments: block
                    .get("input")
                    .map_or_else(|| "{}".to_string(), Value::to_string),
            }),
            _ => {}
        }
    }
    choice.finish_reason = Some(finish_reason(
        message.stop_reason.as_deref().unwrap_or("end_turn"),
    ));
    Answer {
        id: message.id,
        model: message.model,
        choices: vec![choice],
        usage: usage(message.usage.prompt_tokens(), message.usage.output_tokens),
    }
}

/// What a content block of the stream is, by its index.
enum Block {
    Text,
    Thinking,
    /// A tool call, with its position among the answer's tool calls.
    Tool(u32),
    Other,
}

/// Anthropic stream events to OpenAI chunks.
pub struct EventTranslator {
    writer: ChunkWriter,
    blocks: Vec<(u64, Block)>,
    tool_calls: u32,
    stop_reason: Option<String>,
    usage: Usage,
}

impl EventTranslator {
    pub fn new(endpoint: Endpoint, model: String) -> Self {
        EventTranslator {
            writer: ChunkWriter::new(endpoint, model),
            blocks: Vec::new(),
            tool_calls: 0,
            stop_reason: None,
            usage: Usage::default(),
        }
    }

    fn block(&self, index: u64) -> Option<&Block> {
        self.blocks
            .iter()
            .find(|(i, _)| *i == index)
            .map(|(_, b)| b)
    }
}

#[derive(Deserialize)]
struct Event {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    index: u64,
    message: Option<MessagesResponse>,
    content_block: Option<Value>,
    delta: Option<Value>,
    usage: Option<AnthropicUsage>,
    error: Option<Value>,
}

impl StreamTranslator for EventTranslator {
    fn on_event(
        &mut self,
        _kind: &str,
        data: &str,
        out: &mut Vec<StreamChunk>,
    ) -> Result<bool, ProviderError> {
        if data.trim().is_empty() {
            return Ok(false);
        }
        let event: Event = serde_json::from_str(data).map_err(|e| {
            ProviderError::Stream(format!("anthropic sent an unreadable event: {e}"))
        })?;
        match event.kind.as_str() {
            "message_start" => {
                if let Some(m) = event.message {
                    if !m.id.is_empty() {
                        self.writer.id = m.id;
                    }
                    if !m.model.is_empty() {
                        self.writer.model = m.model;
                    }
                    self.usage.prompt_tokens = m.usage.prompt_tokens();
                    self.usage.completion_tokens = m.usage.output_tokens;
                }
            }
            "content_block_start" => {
                let block = event.content_block.unwrap_or_default();
                let kind = match block.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        let text = block
                            .get("text")
                            .and_then(Value::as_str)
                            .unwrap_or_default();
                        if !text.is_empty() {
                            out.push(self.writer.text(0, text));
                        }
                        Block::Text
                    }
                    Some("thinking") => Block::Thinking,
                    Some("tool_use") => {
                        let call = self.tool_calls;
                        self.tool_calls += 1;
                        let id = block.get("id").and_then(Value::as_str).unwrap_or_default();
                        let name = block
                            .get("name")
                            .and_then(Value::as_str)
                            .unwrap_or_default();
                        out.push(self.writer.tool_call(0, call, Some((id, name)), ""));
                        Block::Tool(call)
                    }
                    _ => Block::Other,
                };
                self.blocks.push((event.index, kind));
            }
            "content_block_delta" => {
                let delta = event.delta.unwrap_or_default();
                let text = |key: &str| delta.get(key).and_then(Value::as_str).unwrap_or_default();
                match (
                    delta.get("type").and_then(Value::as_str),
                    self.block(event.index),
                ) {
                    (Some("text_delta"), _) if !text("text").is_empty() => {
                        out.push(self.writer.text(0, text("text")));
                    }
                    (Some("thinking_delta"), _) if !text("thinking").is_empty() => {
                        out.extend(self.writer.reasoning(0, text("thinking")));
                    }
                    (Some("input_json_delta"), Some(Block::Tool(call)))
                        if !text("partial_json").is_empty() =>
                    {
                        let call = *call;
                        out.push(self.writer.tool_call(0, call, None, text("partial_json")));
                    }
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(reason) = event
                    .delta
                    .as_ref()
                    .and_then(|d| d.get("stop_reason"))
                    .and_then(Value::as_str)
                {
                    self.stop_reason = Some(reason.to_string());
                }
                if let Some(u) = event.usage {
                    // `output_tokens` here is the running total, not an increment.
                    self.usage.completion_tokens = u.output_tokens;
                    if u.input_tokens > 0 {
                        self.usage.prompt_tokens = u.prompt_tokens();
                    }
                }
            }
            "message_stop" => {
                let reason = finish_reason(self.stop_reason.as_deref().unwrap_or("end_turn"));
                out.push(self.writer.finish(0, reason));
                self.usage.total_tokens = self.usage.prompt_tokens + self.usage.completion_tokens;
                out.push(self.writer.usage(self.usage));
                return Ok(true);
            }
            "error" => {
                let error = event.error.unwrap_or_default();
                let kind = error.get("type").and_then(Value::as_str).unwrap_or("error");
                let message = error
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("stream error");
                return Err(ProviderError::Stream(format!(
                    "anthropic {kind}: {message}"
                )));
            }
            // `ping`, `content_block_stop`, and event types added later carry nothing to forward.
            _ => {}
        }
        Ok(false)
    }

    fn on_close(&mut self, _out: &mut Vec<StreamChunk>) -> Result<(), ProviderError> {
        Err(ProviderError::Stream(
            "anthropic closed the stream before message_stop".into(),
        ))
    }
}

/// Anthropic's error body (`{"type":"error","error":{"type","message"}}`) in OpenAI's shape.
pub fn error_body(status: u16, text: &str) -> bytes::Bytes {
    let parsed = serde_json::from_str::<Value>(text).ok();
    let error = parsed.as_ref().and_then(|v| v.get("error"));
    let kind = error.and_then(|e| e.get("type")).and_then(Value::as_str);
    let message = native::message_or_text(
        error.and_then(|e| e.get("message")).and_then(Value::as_str),
        text,
    );
    native::openai_error_body(PROVIDER, status, kind, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn system_tools_and_tool_results_are_translated() {
        let req = body(json!({
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": "weather?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,QUJD"}}]},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "toolu_1", "type": "function",
                    "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
                {"role": "tool", "tool_call_id": "toolu_1", "content": "sunny"},
                {"role": "user", "content": "thanks"}
            ],
            "tools": [{"type": "function", "function": {"name": "get_weather", "description": "w",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
            "tool_choice": "required",
            "stop": "END",
            "max_completion_tokens": 50,
            "temperature": 0.5
        }));
        let out = to_messages_request(req, "claude-x", 4096, false).unwrap();
        assert_eq!(out["system"], "be brief");
        assert_eq!(out["max_tokens"], 50);
        assert_eq!(out["stop_sequences"], json!(["END"]));
        assert_eq!(out["tool_choice"], json!({"type": "any"}));
        assert_eq!(
            out["tools"][0]["input_schema"]["properties"]["city"]["type"],
            "string"
        );
        let m = out["messages"].as_array().unwrap();
        assert_eq!(m.len(), 3, "{out}");
        assert_eq!(
            m[0]["content"][1]["source"],
            json!({"type": "base64", "media_type": "image/png", "data": "QUJD"})
        );
        assert_eq!(
            m[1]["content"][0],
            json!({"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}})
        );
        // The tool result and the next user text share one user turn.
        assert_eq!(m[2]["role"], "user");
        assert_eq!(m[2]["content"][0]["type"], "tool_result");
        assert_eq!(
            m[2]["content"][1],
            json!({"type": "text", "text": "thanks"})
        );
        assert!(out.get("stream").is_none());
    }

    #[test]
    fn max_tokens_defaults_and_parallel_calls_flag() {
        let req = body(
            json!({"messages": [{"role": "user", "content": "hi"}], "parallel_tool_calls": false,
            "tool_choice": {"type": "function", "function": {"name": "f"}}}),
        );
        let out = to_messages_request(req, "m", 1234, true).unwrap();
        assert_eq!(out["max_tokens"], 1234);
        assert_eq!(out["stream"], true);
        assert_eq!(
            out["tool_choice"],
            json!({"type": "tool", "name": "f", "disable_parallel_tool_use": true})
        );
    }

    #[test]
    fn answers_become_openai_choices() {
        let message: MessagesResponse = serde_json::from_value(json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
            "content": [{"type": "text", "text": "Let me check."},
                        {"type": "tool_use", "id": "toolu_9", "name": "get_weather", "input": {"city": "Oslo"}}],
            "stop_reason": "tool_use", "stop_sequence": null,
            "usage": {"input_tokens": 12, "output_tokens": 7}
        }))
        .unwrap();
        let answer = from_messages_response(message);
        assert_eq!(answer.usage, usage(12, 7));
        let c = &answer.choices[0];
        assert_eq!(c.finish_reason, Some("tool_calls"));
        assert_eq!(c.text, "Let me check.");
        assert_eq!(c.tool_calls[0].arguments, r#"{"city":"Oslo"}"#);
        assert_eq!(finish_reason("end_turn"), "stop");
        assert_eq!(finish_reason("max_tokens"), "length");
        assert_eq!(finish_reason("stop_sequence"), "stop");
    }

    #[test]
    fn stream_events_become_chunks() {
        let mut t = EventTranslator::new(Endpoint::Chat, "m".into());
        let mut out = Vec::new();
        let events = [
            r#"{"type":"message_start","message":{"id":"msg_1","model":"claude-x","content":[],"usage":{"input_tokens":9,"output_tokens":1}}}"#,
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
            r#"{"type":"ping"}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}"#,
            r#"{"type":"content_block_stop","index":0}"#,
            r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_1","name":"f","input":{}}}"#,
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"a\":"}}"#,
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"1}"}}"#,
            r#"{"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":15}}"#,
        ];
        for e in events {
            assert!(!t.on_event("", e, &mut out).unwrap());
        }
        assert!(
            t.on_event("", r#"{"type":"message_stop"}"#, &mut out)
                .unwrap()
        );
        let chunks: Vec<Value> = out
            .iter()
            .map(|c| serde_json::from_slice(&c.data).unwrap())
            .collect();
        assert_eq!(chunks.len(), 6);
        assert_eq!(chunks[0]["id"], "msg_1");
        assert_eq!(
            chunks[0]["choices"][0]["delta"],
            json!({"role": "assistant", "content": "Hi"})
        );
        let tc = &chunks[1]["choices"][0]["delta"]["tool_calls"][0];
        assert_eq!(
            (
                tc["index"].clone(),
                tc["id"].clone(),
                tc["function"]["name"].clone()
            ),
            (json!(0), json!("toolu_1"), json!("f"))
        );
        assert_eq!(
            chunks[3]["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"],
            "1}"
        );
        assert_eq!(chunks[4]["choices"][0]["finish_reason"], "tool_calls");
        assert!(out[5].usage_only);
        assert_eq!(out[5].usage, Some(usage(9, 15)));
        assert!(t.on_close(&mut out).is_err());
    }

    #[test]
    fn stream_error_events_fail_the_stream() {
        let mut t = EventTranslator::new(Endpoint::Chat, "m".into());
        let err = t
            .on_event(
                "error",
                r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
                &mut Vec::new(),
            )
            .unwrap_err();
        assert!(matches!(err, ProviderError::Stream(m) if m.contains("Overloaded")));
    }

    #[test]
    fn errors_keep_type_and_status() {
        let body: Value = serde_json::from_slice(&error_body(
            401,
            r#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"#,
        ))
        .unwrap();
        assert_eq!(body["error"]["type"], "authentication_error");
        assert_eq!(body["error"]["code"], "401");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("invalid x-api-key")
        );
    }
}
