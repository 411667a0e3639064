//! Ollama's native API: `ollama/` sends chats to `/api/generate` as one prompt (as LiteLLM
//! does), `ollama_chat/` sends them to `/api/chat` with messages and tools; embeddings use
//! `/api/embed`. Streams are NDJSON, one object a line, the last with `done: true` and usage.

use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::http::extra_headers;
use super::native::{
    self, Answer, Choice, ChunkWriter, ImageRef, StreamTranslator, ToolCall, content_text, invalid,
    usage,
};
use super::sse::EventStream;
use super::{
    Endpoint, ProviderError, ProviderResponse, ProviderUnavailable, StreamChunk, UpstreamRequest,
};
use crate::api::thinking::REASONING_CONTENT;
use crate::config::{Deployment, ProviderKind};
use crate::tokens::rough_tokens;

const DEFAULT_BASE: &str = "http://localhost:11434";

/// Native model options passed through into `options` when a request sets them.
const NATIVE_OPTIONS: &[&str] = &[
    "top_k",
    "min_p",
    "num_ctx",
    "num_gpu",
    "num_thread",
    "repeat_penalty",
    "repeat_last_n",
    "mirostat",
    "mirostat_eta",
    "mirostat_tau",
    "tfs_z",
    "typical_p",
];

#[derive(Debug, Clone)]
pub struct Ollama {
    base: String,
    /// `ollama_chat/`: `/api/chat`; `ollama/`: `/api/generate`.
    chat_api: bool,
    headers: HeaderMap,
    secret: Option<String>,
}

impl Ollama {
    /// The server's local models (`GET {api_base}/api/tags`), for `check`.
    pub fn listing(&self) -> super::Listing<'_> {
        super::Listing {
            url: format!("{}/api/tags", self.base),
            headers: &self.headers,
            secret: self.secret.as_deref(),
        }
    }

    pub fn new(d: &Deployment) -> Result<Self, ProviderUnavailable> {
        let mut headers = extra_headers(d)?;
        // Plain Ollama needs no key; one set is sent as a bearer token (Ollama behind an
        // authenticating proxy, or ollama.com).
        if let Some(key) = &d.api_key {
            let mut value =
                HeaderValue::from_str(&format!("Bearer {}", key.expose())).map_err(|_| {
                    ProviderUnavailable(
                        "api_key contains characters not allowed in a header".into(),
                    )
                })?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        Ok(Ollama {
            base: d
                .api_base
                .as_deref()
                .unwrap_or(DEFAULT_BASE)
                .trim_end_matches('/')
                .to_string(),
            chat_api: d.provider == ProviderKind::OllamaChat,
            headers,
            secret: d.api_key.as_ref().map(|k| k.expose().to_string()),
        })
    }

    fn name(&self) -> &'static str {
        if self.chat_api {
            "ollama_chat"
        } else {
            "ollama"
        }
    }

    pub async fn call(
        &self,
        request: UpstreamRequest<'_>,
    ) -> Result<ProviderResponse, ProviderError> {
        native::call(self, request).await
    }
}

impl native::Translating for Ollama {
    type Answer = OllamaAnswer;
    type Events = LineTranslator;

    fn name(&self) -> &'static str {
        Ollama::name(self)
    }

    fn exchange(&self) -> native::Exchange<'_> {
        native::Exchange {
            headers: &self.headers,
            secret: self.secret.as_deref(),
            errors: error_body,
        }
    }

    fn accepts(&self, name: &str, value: &Value) -> bool {
        accepts(name, value, self.chat_api)
    }

    /// Nothing before the parameter check: the prompt is reworked in
    /// [`native::Translating::chat_request`], per API (chat messages or a generate prompt).
    fn prepare(
        &self,
        _endpoint: Endpoint,
        _body: &mut Map<String, Value>,
    ) -> Result<(), ProviderError> {
        Ok(())
    }

    fn chat_request(
        &self,
        mut body: Map<String, Value>,
        model: &str,
        request: &UpstreamRequest<'_>,
    ) -> Result<(String, Value), ProviderError> {
        let (path, payload) = if self.chat_api {
            if request.endpoint == Endpoint::Completion {
                native::prompt_to_messages(&mut body)?;
            }
            ("/api/chat", to_chat_request(body, model, request.stream)?)
        } else {
            let (prompt, images) = match request.endpoint {
                Endpoint::Chat => messages_to_prompt(&mut body)?,
                _ => (prompt_text(&mut body)?, Vec::new()),
            };
            (
                "/api/generate",
                to_generate_request(body, model, prompt, images, request.stream),
            )
        };
        Ok((format!("{}{path}", self.base), payload))
    }

    /// Ollama streams NDJSON, one JSON object a line.
    fn events(&self, response: reqwest::Response) -> EventStream {
        native::ndjson_lines(response)
    }

    fn translator(&self, endpoint: Endpoint, model: String) -> LineTranslator {
        LineTranslator::new(endpoint, model)
    }

    fn answer(&self, answer: OllamaAnswer, model: &str) -> native::Answer {
        from_answer(answer, model)
    }

    async fn embed(
        &self,
        mut body: Map<String, Value>,
        model: String,
        request: &UpstreamRequest<'_>,
    ) -> Result<ProviderResponse, ProviderError> {
        let inputs = native::embedding_inputs(&mut body)?;
        let estimate: u64 = inputs.iter().map(|s| rough_tokens(s)).sum();
        let mut payload = json!({"model": model, "input": inputs});
        if let Some(d) = body.get("dimensions").filter(|d| d.is_u64()) {
            payload["dimensions"] = d.clone();
        }
        for key in ["truncate", "keep_alive", "options"] {
            if let Some(v) = body.remove(key) {
                payload[key] = v;
            }
        }
        let url = format!("{}/api/embed", self.base);
        let response = native::post_json(
            request.upstream.http(),
            &url,
            &self.headers,
            &payload,
            request.timeout,
            self.secret.as_deref(),
            error_body,
        )
        .await?;
        #[derive(Deserialize)]
        struct Embedded {
            #[serde(default)]
            embeddings: Vec<Value>,
            prompt_eval_count: Option<u64>,
        }
        let answer: Embedded = native::read_json(
            response,
            request.timeout,
            self.secret.as_deref(),
            self.name(),
        )
        .await?;
        let tokens = answer.prompt_eval_count.unwrap_or(estimate);
        Ok(native::embeddings_response(
            &model,
            answer.embeddings,
            tokens,
        ))
    }
}

/// The OpenAI parameters Ollama takes (tools only through `/api/chat`).
fn accepts(name: &str, value: &Value, chat_api: bool) -> bool {
    match name {
        "temperature"
        | "top_p"
        | "seed"
        | "stop"
        | "max_tokens"
        | "max_completion_tokens"
        | "frequency_penalty"
        | "presence_penalty" => true,
        "response_format" => matches!(
            value.get("type").and_then(Value::as_str),
            Some("text" | "json_object" | "json_schema")
        ),
        "n" => value.as_u64() == Some(1),
        "reasoning_effort" => value.is_string(),
        "tools" => chat_api,
        "tool_choice" => chat_api && value.as_str() == Some("auto"),
        _ => false,
    }
}

/// Sampling parameters as Ollama `options`, `response_format` as `format`, native extras.
fn common_fields(body: &mut Map<String, Value>, out: &mut Map<String, Value>) {
    let mut options = match body.remove("options") {
        Some(Value::Object(o)) => o,
        _ => Map::new(),
    };
    for (from, to) in [
        ("temperature", "temperature"),
        ("top_p", "top_p"),
        ("seed", "seed"),
        ("frequency_penalty", "frequency_penalty"),
        ("presence_penalty", "presence_penalty"),
    ] {
        if let Some(v) = body.remove(from).filter(|v| !v.is_null()) {
            options.insert(to.into(), v);
        }
    }
    for key in NATIVE_OPTIONS {
        if let Some(v) = body.remove(*key).filter(|v| !v.is_null()) {
            options.insert((*key).into(), v);
        }
    }
    if let Some(n) = native::max_tokens(body) {
        options.insert("num_predict".into(), json!(n));
    }
    if let Some(stop) = body.get("stop") {
        let list = native::stop_list(stop);
        if !list.is_empty() {
            options.insert("stop".into(), Value::Array(list));
        }
    }
    if !options.is_empty() {
        out.insert("options".into(), Value::Object(options));
    }
    if let Some(format) = body.get("response_format").and_then(response_format) {
        out.insert("format".into(), format);
    }
    // OpenAI's `reasoning_effort` as Ollama's `think` (on for any effort but none), unless
    // the request sets `think` itself.
    if let Some(effort) = body.remove("reasoning_effort")
        && let Some(effort) = effort.as_str()
    {
        out.insert("think".into(), json!(!matches!(effort, "none" | "disable")));
    }
    for key in ["keep_alive", "think"] {
        if let Some(v) = body.remove(key) {
            out.insert(key.into(), v);
        }
    }
}

/// OpenAI `response_format` as Ollama `format`: `"json"`, or a JSON schema.
fn response_format(value: &Value) -> Option<Value> {
    match value.get("type").and_then(Value::as_str)? {
        "json_object" => Some(json!("json")),
        "json_schema" => Some(
            value
                .pointer("/json_schema/schema")
                .cloned()
                .unwrap_or_else(|| json!("json")),
        ),
        _ => None,
    }
}

/// A `/api/chat` request from an OpenAI chat body.
pub fn to_chat_request(
    mut body: Map<String, Value>,
    model: &str,
    stream: bool,
) -> Result<Value, ProviderError> {
    let Some(Value::Array(messages)) = body.remove("messages") else {
        return Err(invalid(
            "'messages' must be a list of messages.",
            "messages",
        ));
    };
    let mut out = Map::new();
    out.insert("model".into(), json!(model));
    out.insert("messages".into(), Value::Array(chat_messages(messages)?));
    out.insert("stream".into(), json!(stream));
    if let Some(Value::Array(tools)) = body.remove("tools")
        && !tools.is_empty()
    {
        // Ollama takes OpenAI's tool shape as it is.
        out.insert("tools".into(), Value::Array(tools));
    }
    common_fields(&mut body, &mut out);
    Ok(Value::Object(out))
}

/// OpenAI messages as Ollama chat messages: text content, base64 `images`, an assistant's
/// `reasoning_content` as its `thinking`, tool calls with arguments as objects, tool results
/// with the tool's name.
fn chat_messages(messages: Vec<Value>) -> Result<Vec<Value>, ProviderError> {
    let mut out = Vec::with_capacity(messages.len());
    // Tool call ids of earlier assistant turns, to name the tool of each result.
    let mut call_names: Vec<(String, String)> = Vec::new();
    for (i, message) in messages.into_iter().enumerate() {
        let Value::Object(mut m) = message else {
            return Err(invalid(
                format!("'messages[{i}]' must be an object."),
                format!("messages[{i}]"),
            ));
        };
        let role = match m.get("role").and_then(Value::as_str) {
            Some("developer") => "system".to_string(),
            Some(r) => r.to_string(),
            None => String::new(),
        };
        let content = m.remove("content");
        let images = images_of(content.as_ref(), i)?;
        let mut msg = Map::new();
        msg.insert("role".into(), json!(role));
        msg.insert("content".into(), json!(content_text(content.as_ref())));
        if !images.is_empty() {
            msg.insert("images".into(), Value::Array(images));
        }
        if let Some(Value::String(thinking)) = m.remove(REASONING_CONTENT)
            && !thinking.is_empty()
        {
            msg.insert("thinking".into(), Value::String(thinking));
        }
        if let Some(Value::Array(calls)) = m.remove("tool_calls") {
            let mut converted = Vec::with_capacity(calls.len());
            for (j, call) in calls.iter().enumerate() {
                let name = call
                    .pointer("/function/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if let Some(id) = call.get("id").and_then(Value::as_str) {
                    call_names.push((id.to_string(), name.to_string()));
                }
                let arguments = match call.pointer("/function/arguments") {
                    Some(Value::String(s)) if !s.trim().is_empty() => {
                        serde_json::from_str::<Value>(s).map_err(|_| {
                            let param = format!("messages[{i}].tool_calls[{j}].function.arguments");
                            invalid(format!("'{param}' is not valid JSON."), param)
                        })?
                    }
                    Some(Value::Object(o)) => Value::Object(o.clone()),
                    _ => json!({}),
                };
                converted.push(json!({"function": {"name": name, "arguments": arguments}}));
            }
            msg.insert("tool_calls".into(), Value::Array(converted));
        }
        if role == "tool" {
            let id = m.get("tool_call_id").and_then(Value::as_str);
            let name = m.get("name").and_then(Value::as_str).or_else(|| {
                call_names
                    .iter()
                    .find(|(call, _)| Some(call.as_str()) == id)
                    .map(|(_, n)| n.as_str())
            });
            if let Some(name) = name {
                msg.insert("tool_name".into(), json!(name));
            }
        }
        out.push(Value::Object(msg));
    }
    Ok(out)
}

/// The base64 payloads of a message's `image_url` parts (Ollama takes only inline images).
fn images_of(content: Option<&Value>, i: usize) -> Result<Vec<Value>, ProviderError> {
    let Some(Value::Array(parts)) = content else {
        return Ok(Vec::new());
    };
    let mut images = Vec::new();
    for (j, part) in parts.iter().enumerate() {
        if part.get("type").and_then(Value::as_str) != Some("image_url") {
            continue;
        }
        match native::image_ref(part) {
            Some(ImageRef::Inline { data, .. }) => images.push(json!(data)),
            _ => {
                return Err(invalid(
                    format!(
                        "'messages[{i}].content[{j}]': Ollama takes images only as base64 data URLs."
                    ),
                    format!("messages[{i}].content[{j}]"),
                ));
            }
        }
    }
    Ok(images)
}

/// LiteLLM's prompt for `ollama/` chats: each turn under a `### Role:` heading; images of
/// every turn go in `images`.
pub fn messages_to_prompt(
    body: &mut Map<String, Value>,
) -> Result<(String, Vec<Value>), ProviderError> {
    let Some(Value::Array(messages)) = body.remove("messages") else {
        return Err(invalid(
            "'messages' must be a list of messages.",
            "messages",
        ));
    };
    let mut prompt = String::new();
    let mut images = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let heading = match m.get("role").and_then(Value::as_str) {
            Some("system" | "developer") => "System",
            Some("assistant") => "Assistant",
            Some("tool") => "Tool",
            _ => "User",
        };
        images.extend(images_of(m.get("content"), i)?);
        prompt.push_str("### ");
        prompt.push_str(heading);
        prompt.push_str(":\n");
        prompt.push_str(&content_text(m.get("content")));
        prompt.push_str("\n\n");
    }
    Ok((prompt, images))
}

/// `/v1/completions`' prompt (a string, or a list of one).
fn prompt_text(body: &mut Map<String, Value>) -> Result<String, ProviderError> {
    native::prompt_to_messages(body)?;
    let prompt = body
        .remove("messages")
        .and_then(|m| {
            m.pointer("/0/content")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .unwrap_or_default();
    Ok(prompt)
}

/// A `/api/generate` request.
pub fn to_generate_request(
    mut body: Map<String, Value>,
    model: &str,
    prompt: String,
    images: Vec<Value>,
    stream: bool,
) -> Value {
    let mut out = Map::new();
    out.insert("model".into(), json!(model));
    out.insert("prompt".into(), json!(prompt));
    if !images.is_empty() {
        out.insert("images".into(), Value::Array(images));
    }
    out.insert("stream".into(), json!(stream));
    common_fields(&mut body, &mut out);
    Value::Object(out)
}

/// An `/api/generate` or `/api/chat` answer, or one line of their streams.
#[derive(Debug, Default, Deserialize)]
pub struct OllamaAnswer {
    #[serde(default)]
    model: String,
    /// `/api/generate`'s text.
    #[serde(default)]
    response: Option<String>,
    #[serde(default)]
    thinking: Option<String>,
    /// `/api/chat`'s message.
    #[serde(default)]
    message: Option<OllamaMessage>,
    #[serde(default)]
    done: bool,
    #[serde(default)]
    done_reason: Option<String>,
    #[serde(default)]
    prompt_eval_count: Option<u64>,
    #[serde(default)]
    eval_count: Option<u64>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct OllamaMessage {
    #[serde(default)]
    content: String,
    #[serde(default)]
    thinking: Option<String>,
    #[serde(default)]
    tool_calls: Vec<OllamaToolCall>,
}

#[derive(Debug, Deserialize)]
pub struct OllamaToolCall {
    function: OllamaFunction,
}

#[derive(Debug, Deserialize)]
pub struct OllamaFunction {
    name: String,
    #[serde(default)]
    arguments: Value,
}

impl OllamaAnswer {
    fn text(&self) -> &str {
        self.message
            .as_ref()
            .map(|m| m.content.as_str())
            .or(self.response.as_deref())
            .unwrap_or_default()
    }

    fn thinking(&self) -> Option<&str> {
        self.message
            .as_ref()
            .and_then(|m| m.thinking.as_deref())
            .or(self.thinking.as_deref())
            .filter(|t| !t.is_empty())
    }

    fn tool_calls(&self) -> impl Iterator<Item = ToolCall> + '_ {
        self.message
            .iter()
            .flat_map(|m| &m.tool_calls)
            .map(|c| ToolCall {
                // Ollama gives tool calls no ids; OpenAI clients need one to answer them.
                id: native::new_id("call_"),
                name: c.function.name.clone(),
                arguments: match &c.function.arguments {
                    Value::String(s) => s.clone(),
                    Value::Null => "{}".to_string(),
                    other => other.to_string(),
                },
            })
    }

    fn finish_reason(&self, has_tool_calls: bool) -> &'static str {
        if has_tool_calls {
            return "tool_calls";
        }
        match self.done_reason.as_deref() {
            Some("length") => "length",
            _ => "stop",
        }
    }
}

/// A complete Ollama answer as an OpenAI answer.
pub fn from_answer(answer: OllamaAnswer, model: &str) -> Answer {
    let tool_calls: Vec<ToolCall> = answer.tool_calls().collect();
    let choice = Choice {
        text: answer.text().to_string(),
        reasoning: answer.thinking().map(str::to_string),
        finish_reason: Some(answer.finish_reason(!tool_calls.is_empty())),
        tool_calls,
    };
    let model = if answer.model.is_empty() {
        model.to_string()
    } else {
        answer.model
    };
    Answer {
        id: native::new_id("chatcmpl-"),
        model,
        choices: vec![choice],
        usage: usage(
            answer.prompt_eval_count.unwrap_or(0),
            answer.eval_count.unwrap_or(0),
        ),
    }
}

/// Ollama NDJSON stream lines to OpenAI chunks.
pub struct LineTranslator {
    writer: ChunkWriter,
    tool_calls: u32,
}

impl LineTranslator {
    pub fn new(endpoint: Endpoint, model: String) -> Self {
        LineTranslator {
            writer: ChunkWriter::new(endpoint, model),
            tool_calls: 0,
        }
    }
}

impl StreamTranslator for LineTranslator {
    fn on_event(
        &mut self,
        _kind: &str,
        data: &str,
        out: &mut Vec<StreamChunk>,
    ) -> Result<bool, ProviderError> {
        let line: OllamaAnswer = serde_json::from_str(data).map_err(|e| {
            ProviderError::Stream(format!("ollama sent an unreadable stream line: {e}"))
        })?;
        if let Some(error) = line.error {
            return Err(ProviderError::Stream(format!("ollama: {error}")));
        }
        if let Some(thinking) = line.thinking() {
            out.extend(self.writer.reasoning(0, thinking));
        }
        if !line.text().is_empty() {
            out.push(self.writer.text(0, line.text()));
        }
        for call in line.tool_calls() {
            let index = self.tool_calls;
            self.tool_calls += 1;
            out.push(self.writer.tool_call(
                0,
                index,
                Some((&call.id, &call.name)),
                &call.arguments,
            ));
        }
        if !line.done {
            return Ok(false);
        }
        out.push(
            self.writer
                .finish(0, line.finish_reason(self.tool_calls > 0)),
        );
        out.push(self.writer.usage(usage(
            line.prompt_eval_count.unwrap_or(0),
            line.eval_count.unwrap_or(0),
        )));
        Ok(true)
    }

    fn on_close(&mut self, _out: &mut Vec<StreamChunk>) -> Result<(), ProviderError> {
        Err(ProviderError::Stream(
            "ollama closed the stream before its final (done) line".into(),
        ))
    }
}

/// Ollama's error body (`{"error": "..."}`) in OpenAI's shape.
pub fn error_body(status: u16, text: &str) -> bytes::Bytes {
    let parsed = serde_json::from_str::<Value>(text).ok();
    let message = native::message_or_text(
        parsed.as_ref().and_then(|v| v.get("error")).and_then(|e| {
            e.as_str()
                .or_else(|| e.get("message").and_then(Value::as_str))
        }),
        text,
    );
    native::openai_error_body("ollama", status, None, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn reasoning_effort_turns_thinking_on_or_off() {
        let ask = |effort: &str| {
            let req = body(
                json!({"messages": [{"role": "user", "content": "hi"}], "reasoning_effort": effort}),
            );
            to_chat_request(req, "qwen3", false).unwrap()["think"].clone()
        };
        assert_eq!(ask("medium"), json!(true));
        assert_eq!(ask("none"), json!(false));
        let req = body(json!({"messages": [{"role": "user", "content": "hi"}],
                              "reasoning_effort": "high", "think": false}));
        assert_eq!(
            to_chat_request(req, "qwen3", false).unwrap()["think"],
            json!(false),
            "the request's own think wins"
        );
    }

    #[test]
    fn chat_requests_carry_options_format_images_and_tools() {
        let req = body(json!({
            "messages": [
                {"role": "system", "content": "terse"},
                {"role": "user", "content": [{"type": "text", "text": "what is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/AA"}}]},
                {"role": "assistant", "content": "", "reasoning_content": "Look it up.", "tool_calls": [{"id": "call_1", "type": "function",
                    "function": {"name": "lookup", "arguments": "{\"q\":\"cat\"}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "a cat"}
            ],
            "temperature": 0.3, "top_p": 0.9, "seed": 7, "stop": "###", "max_tokens": 64,
            "response_format": {"type": "json_object"},
            "tools": [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}],
            "num_ctx": 8192
        }));
        let out = to_chat_request(req, "llama3.2", false).unwrap();
        assert_eq!(
            out["options"],
            json!({"temperature": 0.3, "top_p": 0.9, "seed": 7,
            "num_predict": 64, "stop": ["###"], "num_ctx": 8192})
        );
        assert_eq!(out["format"], "json");
        assert_eq!(out["stream"], false);
        assert_eq!(out["tools"][0]["function"]["name"], "lookup");
        let m = &out["messages"];
        assert_eq!(
            m[1],
            json!({"role": "user", "content": "what is this?", "images": ["/9j/AA"]})
        );
        assert_eq!(
            m[2]["tool_calls"][0],
            json!({"function": {"name": "lookup", "arguments": {"q": "cat"}}})
        );
        assert_eq!(m[2]["thinking"], "Look it up.", "the thinking goes back");
        assert_eq!(
            m[3],
            json!({"role": "tool", "content": "a cat", "tool_name": "lookup"})
        );
    }

    #[test]
    fn generate_prompts_follow_litellm() {
        let mut req = body(json!({"messages": [
            {"role": "system", "content": "S"}, {"role": "user", "content": "U"}, {"role": "assistant", "content": "A"}
        ]}));
        let (prompt, images) = messages_to_prompt(&mut req).unwrap();
        assert_eq!(
            prompt,
            "### System:\nS\n\n### User:\nU\n\n### Assistant:\nA\n\n"
        );
        assert!(images.is_empty());
    }

    #[test]
    fn answers_and_stream_lines_become_openai() {
        let answer: OllamaAnswer = serde_json::from_value(json!({
            "model": "llama3.2", "created_at": "2024-01-01T00:00:00Z",
            "message": {"role": "assistant", "content": "", "tool_calls": [
                {"function": {"name": "lookup", "arguments": {"q": "x"}}}]},
            "done": true, "done_reason": "stop", "prompt_eval_count": 11, "eval_count": 4
        }))
        .unwrap();
        let a = from_answer(answer, "m");
        assert_eq!(a.usage, usage(11, 4));
        assert_eq!(a.choices[0].finish_reason, Some("tool_calls"));
        assert_eq!(a.choices[0].tool_calls[0].arguments, r#"{"q":"x"}"#);
        assert!(a.choices[0].tool_calls[0].id.starts_with("call_"));

        let mut t = LineTranslator::new(Endpoint::Chat, "m".into());
        let mut out = Vec::new();
        assert!(
            !t.on_event(
                "",
                r#"{"model":"m","response":"Hi","done":false}"#,
                &mut out
            )
            .unwrap()
        );
        assert!(t
            .on_event("", r#"{"model":"m","response":"","done":true,"done_reason":"length","prompt_eval_count":3,"eval_count":2}"#, &mut out)
            .unwrap());
        assert_eq!(out.len(), 3);
        let finish: Value = serde_json::from_slice(&out[1].data).unwrap();
        assert_eq!(finish["choices"][0]["finish_reason"], "length");
        assert_eq!(out[2].usage, Some(usage(3, 2)));
        assert!(matches!(
            t.on_event("", r#"{"error":"model crashed"}"#, &mut out),
            Err(ProviderError::Stream(m)) if m.contains("model crashed")
        ));
    }

    #[test]
    fn errors_are_openai_shaped() {
        let b: Value = serde_json::from_slice(&error_body(
            404,
            r#"{"error":"model \"nope\" not found, try pulling it first"}"#,
        ))
        .unwrap();
        assert_eq!(b["error"]["type"], "not_found_error");
        assert_eq!(b["error"]["code"], "404");
        assert!(
            b["error"]["message"]
                .as_str()
                .unwrap()
                .contains("try pulling it first")
        );
    }
}
