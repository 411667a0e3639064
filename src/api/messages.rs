//! Anthropic's Messages API (`/v1/messages`) in the words every layer shares: its usage, and
//! the translation both ways between a Messages exchange and an OpenAI chat completion, for
//! the deployments that do not speak Anthropic's wire format.
//!
//! Thinking travels on the OpenAI side in the words of [`super::thinking`]: a Messages
//! `thinking` block becomes both `reasoning_content` and a `thinking_blocks` entry on the way
//! out, and comes back from either, its signature included (in a stream as a
//! `signature_delta`), so a multi-turn tool conversation with thinking survives the round
//! trip.

use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::chat::{AnswerMessage, ChatAnswer, Chunk};
use super::thinking::{REASONING_CONTENT, THINKING_BLOCKS, ThinkingBlock};
use super::{StreamChunk, Usage};
use crate::error::ApiError;

/// `anthropic-version` sent when the client sent none.
pub const DEFAULT_VERSION: &str = "2023-06-01";

/// Anthropic's `usage`: input tokens exclude the cached ones, which are counted apart.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct MessagesUsage {
    #[serde(default)]
    pub input_tokens: u64,
    #[serde(default)]
    pub output_tokens: u64,
    #[serde(default)]
    pub cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    pub cache_read_input_tokens: Option<u64>,
}

impl From<MessagesUsage> for Usage {
    /// Prompt tokens include the cached ones, as LiteLLM counts them.
    fn from(u: MessagesUsage) -> Self {
        let read = u.cache_read_input_tokens.unwrap_or(0);
        let creation = u.cache_creation_input_tokens.unwrap_or(0);
        let mut usage = Usage::new(u.input_tokens + read + creation, u.output_tokens);
        usage.cached_read_tokens = read;
        usage.cache_creation_tokens = creation;
        usage
    }
}

/// Anthropic's `usage` object.
#[derive(Debug, Serialize)]
struct UsageOut {
    input_tokens: u64,
    output_tokens: u64,
    cache_creation_input_tokens: u64,
    cache_read_input_tokens: u64,
}

/// Anthropic's `usage` object for a gateway count.
fn usage_json(usage: &Usage) -> UsageOut {
    let cached = usage.cached_read_tokens + usage.cache_creation_tokens;
    UsageOut {
        input_tokens: usage.prompt_tokens.saturating_sub(cached),
        output_tokens: usage.completion_tokens,
        cache_creation_input_tokens: usage.cache_creation_tokens,
        cache_read_input_tokens: usage.cached_read_tokens,
    }
}

/// JSON text straight into bytes. Measured: `Value::to_string` goes through `fmt::Write` and
/// cost ~13,000 instructions for a short Messages answer; `to_vec` writes into the buffer.
fn json_bytes(value: &impl Serialize) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

/// One SSE event of a Messages stream: `event: <type>` and the JSON.
pub fn event(value: &Value) -> Bytes {
    let name = value
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("message");
    frame(name, &json_bytes(value))
}

/// One SSE event from its name and its JSON text (`event: <name>\ndata: <json>\n\n`).
pub fn frame(name: &str, data: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(data.len() + name.len() + 16);
    out.put_slice(b"event: ");
    out.put_slice(name.as_bytes());
    out.put_slice(b"\ndata: ");
    out.put_slice(data);
    out.put_slice(b"\n\n");
    out.freeze()
}

fn invalid(message: impl Into<String>, param: impl Into<String>) -> ApiError {
    ApiError::invalid(message, param)
}

// ---- request: Messages -> OpenAI chat ---------------------------------------------------

/// A Messages request as an OpenAI chat request (fields checked by the pipeline already:
/// `model`, `messages`, `max_tokens`). A block or tool that has no OpenAI form is a 400 naming
/// it; Anthropic-only settings without one (`service_tier`, `container`, ...) are left out.
pub fn to_chat_request(body: &Map<String, Value>) -> Result<Map<String, Value>, ApiError> {
    let mut out = Map::new();
    let mut messages = Vec::new();
    match body.get("system") {
        None | Some(Value::Null) => {}
        Some(Value::String(text)) => {
            if !text.is_empty() {
                messages.push(json!({"role": "system", "content": text}));
            }
        }
        Some(Value::Array(blocks)) => {
            let text = text_of_blocks(blocks, "system")?;
            if !text.is_empty() {
                messages.push(json!({"role": "system", "content": text}));
            }
        }
        Some(_) => {
            return Err(invalid(
                "'system' must be a string or a list of text blocks.",
                "system",
            ));
        }
    }
    if let Some(Value::Array(turns)) = body.get("messages") {
        for (i, turn) in turns.iter().enumerate() {
            convert_turn(turn, i, &mut messages)?;
        }
    }
    for (from, to) in [
        ("model", "model"),
        ("max_tokens", "max_tokens"),
        ("stop_sequences", "stop"),
        ("temperature", "temperature"),
        ("top_p", "top_p"),
        ("top_k", "top_k"),
        ("stream", "stream"),
    ] {
        if let Some(v) = body.get(from).filter(|v| !v.is_null()) {
            out.insert(to.into(), v.clone());
        }
    }
    out.insert("messages".into(), Value::Array(messages));
    if let Some(user) = body
        .get("metadata")
        .and_then(|m| m.get("user_id"))
        .and_then(Value::as_str)
    {
        out.insert("user".into(), Value::String(user.to_string()));
    }
    if let Some(tools) = body.get("tools").filter(|v| !v.is_null()) {
        let Value::Array(tools) = tools else {
            return Err(invalid("'tools' must be a list.", "tools"));
        };
        let converted = tools
            .iter()
            .enumerate()
            .map(|(i, t)| convert_tool(t, i))
            .collect::<Result<Vec<_>, _>>()?;
        if !converted.is_empty() {
            out.insert("tools".into(), Value::Array(converted));
        }
    }
    if let Some(choice) = body.get("tool_choice").filter(|v| !v.is_null()) {
        let (choice, parallel) = convert_tool_choice(choice)?;
        out.insert("tool_choice".into(), choice);
        if parallel == Some(false) {
            out.insert("parallel_tool_calls".into(), Value::Bool(false));
        }
    }
    // Only an explicit budget (`enabled`) asks for reasoning: `adaptive` (Claude Code's
    // default) leaves it to the model, and a `reasoning_effort` sent to a model without
    // reasoning would fail the call.
    if let Some(thinking) = body.get("thinking").filter(|v| !v.is_null())
        && thinking.get("type").and_then(Value::as_str) == Some("enabled")
    {
        let budget = thinking
            .get("budget_tokens")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        out.insert("reasoning_effort".into(), json!(reasoning_effort(budget)));
    }
    Ok(out)
}

/// LiteLLM's mapping of a thinking budget to OpenAI's `reasoning_effort`.
fn reasoning_effort(budget_tokens: u64) -> &'static str {
    match budget_tokens {
        0..2048 => "low",
        2048..8192 => "medium",
        _ => "high",
    }
}

/// The text of a list of text blocks (`system`, a tool result), joined by newlines.
fn text_of_blocks(blocks: &[Value], field: &str) -> Result<String, ApiError> {
    let mut texts = Vec::with_capacity(blocks.len());
    for (j, block) in blocks.iter().enumerate() {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => texts.push(block.get("text").and_then(Value::as_str).unwrap_or("")),
            _ => {
                return Err(invalid(
                    format!("'{field}[{j}]' must be a text block."),
                    format!("{field}[{j}]"),
                ));
            }
        }
    }
    Ok(texts.join("\n"))
}

/// One Messages turn as one or more OpenAI messages: a user turn's tool results become `tool`
/// messages (first, as OpenAI wants them right after the assistant's calls), the rest of it
/// one user message; an assistant turn one assistant message with its tool calls and thinking.
fn convert_turn(turn: &Value, i: usize, out: &mut Vec<Value>) -> Result<(), ApiError> {
    let role = turn.get("role").and_then(Value::as_str).unwrap_or("");
    if role == "system" {
        // A system message between the turns (Claude Code 2.1 sends its environment so).
        let text = match turn.get("content") {
            Some(Value::String(text)) => text.clone(),
            Some(Value::Array(blocks)) => {
                text_of_blocks(blocks, &format!("messages[{i}].content"))?
            }
            _ => {
                return Err(invalid(
                    format!("'messages[{i}].content' must be a string or a list of text blocks."),
                    format!("messages[{i}].content"),
                ));
            }
        };
        out.push(json!({"role": "system", "content": text}));
        return Ok(());
    }
    if role != "user" && role != "assistant" {
        return Err(invalid(
            format!("'messages[{i}].role' must be 'user', 'assistant' or 'system'."),
            format!("messages[{i}].role"),
        ));
    }
    let blocks = match turn.get("content") {
        Some(Value::String(text)) => {
            out.push(json!({"role": role, "content": text}));
            return Ok(());
        }
        Some(Value::Array(blocks)) => blocks,
        _ => {
            return Err(invalid(
                format!("'messages[{i}].content' must be a string or a list of content blocks."),
                format!("messages[{i}].content"),
            ));
        }
    };
    if role == "assistant" {
        out.push(assistant_message(blocks, i)?);
        return Ok(());
    }
    let mut parts = Vec::new();
    for (j, block) in blocks.iter().enumerate() {
        let at = || format!("messages[{i}].content[{j}]");
        match block.get("type").and_then(Value::as_str) {
            Some("tool_result") => {
                let id = block
                    .get("tool_use_id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        invalid(
                            format!("'{}.tool_use_id' is required.", at()),
                            format!("{}.tool_use_id", at()),
                        )
                    })?;
                let mut text = String::new();
                match block.get("content") {
                    None | Some(Value::Null) => {}
                    Some(Value::String(s)) => text.push_str(s),
                    Some(Value::Array(inner)) => {
                        for (k, b) in inner.iter().enumerate() {
                            match b.get("type").and_then(Value::as_str) {
                                Some("text") => {
                                    if !text.is_empty() {
                                        text.push('\n');
                                    }
                                    text.push_str(
                                        b.get("text").and_then(Value::as_str).unwrap_or(""),
                                    );
                                }
                                // OpenAI's tool messages carry text only: an image a tool
                                // returned goes to the user message that follows them.
                                Some("image") => {
                                    parts.push(image_part(b, &format!("{}.content[{k}]", at()))?)
                                }
                                _ => {
                                    return Err(invalid(
                                        format!(
                                            "'{}.content[{k}]' must be a text or image block.",
                                            at()
                                        ),
                                        format!("{}.content[{k}]", at()),
                                    ));
                                }
                            }
                        }
                    }
                    Some(_) => {
                        return Err(invalid(
                            format!("'{}.content' must be a string or a list of blocks.", at()),
                            format!("{}.content", at()),
                        ));
                    }
                }
                if block.get("is_error").and_then(Value::as_bool) == Some(true) {
                    text.insert_str(0, "Error: ");
                }
                out.push(json!({"role": "tool", "tool_call_id": id, "content": text}));
            }
            Some("text") => parts.push(json!({
                "type": "text",
                "text": block.get("text").and_then(Value::as_str).unwrap_or(""),
            })),
            Some("image") => parts.push(image_part(block, &at())?),
            Some("document") => parts.push(document_part(block, &at())?),
            _ => {
                return Err(invalid(
                    format!(
                        "'{}.type' must be text, image, document or tool_result in a user turn.",
                        at()
                    ),
                    format!("{}.type", at()),
                ));
            }
        }
    }
    if !parts.is_empty() {
        // A user turn of text only is sent as a plain string, which every OpenAI-compatible
        // server takes.
        let content = if parts.iter().all(|p| p["type"] == "text") {
            let texts: Vec<&str> = parts.iter().filter_map(|p| p["text"].as_str()).collect();
            Value::String(texts.join("\n"))
        } else {
            Value::Array(parts)
        };
        out.push(json!({"role": "user", "content": content}));
    }
    Ok(())
}

fn assistant_message(blocks: &[Value], i: usize) -> Result<Value, ApiError> {
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut thinking_blocks = Vec::new();
    let mut tool_calls = Vec::new();
    for (j, block) in blocks.iter().enumerate() {
        let at = || format!("messages[{i}].content[{j}]");
        match block.get("type").and_then(Value::as_str) {
            Some("text") => text.push_str(block.get("text").and_then(Value::as_str).unwrap_or("")),
            Some("thinking" | "redacted_thinking") => {
                // Read with its type known, so it always parses (missing fields are empty).
                if let Some(block) = ThinkingBlock::read(block) {
                    if let ThinkingBlock::Thinking { thinking, .. } = &block {
                        reasoning.push_str(thinking);
                    }
                    thinking_blocks.push(block.to_json());
                }
            }
            Some("tool_use") => {
                let id = block.get("id").and_then(Value::as_str).ok_or_else(|| {
                    invalid(
                        format!("'{}.id' is required.", at()),
                        format!("{}.id", at()),
                    )
                })?;
                let name = block.get("name").and_then(Value::as_str).ok_or_else(|| {
                    invalid(
                        format!("'{}.name' is required.", at()),
                        format!("{}.name", at()),
                    )
                })?;
                let input = block.get("input").cloned().unwrap_or_else(|| json!({}));
                tool_calls.push(json!({
                    "id": id,
                    "type": "function",
                    "function": {"name": name, "arguments": input.to_string()},
                }));
            }
            _ => {
                return Err(invalid(
                    format!(
                        "'{}.type' must be text, thinking, redacted_thinking or tool_use in an assistant turn.",
                        at()
                    ),
                    format!("{}.type", at()),
                ));
            }
        }
    }
    let mut message = Map::new();
    message.insert("role".into(), json!("assistant"));
    let content = if text.is_empty() && !tool_calls.is_empty() {
        Value::Null
    } else {
        Value::String(text)
    };
    message.insert("content".into(), content);
    if !tool_calls.is_empty() {
        message.insert("tool_calls".into(), Value::Array(tool_calls));
    }
    if !thinking_blocks.is_empty() {
        message.insert(REASONING_CONTENT.into(), Value::String(reasoning));
        message.insert(THINKING_BLOCKS.into(), Value::Array(thinking_blocks));
    }
    Ok(Value::Object(message))
}

fn image_part(block: &Value, at: &str) -> Result<Value, ApiError> {
    let source = block.get("source");
    let url = match source.and_then(|s| s.get("type")).and_then(Value::as_str) {
        Some("base64") => {
            let source = source.unwrap_or(&Value::Null);
            let media = source
                .get("media_type")
                .and_then(Value::as_str)
                .unwrap_or("image/png");
            let data = source.get("data").and_then(Value::as_str).unwrap_or("");
            format!("data:{media};base64,{data}")
        }
        Some("url") => source
            .and_then(|s| s.get("url"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        _ => {
            return Err(invalid(
                format!("'{at}.source' must be a base64 or url image source."),
                format!("{at}.source"),
            ));
        }
    };
    Ok(json!({"type": "image_url", "image_url": {"url": url}}))
}

fn document_part(block: &Value, at: &str) -> Result<Value, ApiError> {
    let source = block.get("source").unwrap_or(&Value::Null);
    match source.get("type").and_then(Value::as_str) {
        Some("text") => Ok(json!({
            "type": "text",
            "text": source.get("data").and_then(Value::as_str).unwrap_or(""),
        })),
        Some("base64") => {
            let media = source
                .get("media_type")
                .and_then(Value::as_str)
                .unwrap_or("application/pdf");
            let data = source.get("data").and_then(Value::as_str).unwrap_or("");
            let mut file = json!({"file_data": format!("data:{media};base64,{data}")});
            if let Some(title) = block.get("title").and_then(Value::as_str) {
                file["filename"] = json!(title);
            }
            Ok(json!({"type": "file", "file": file}))
        }
        _ => Err(invalid(
            format!(
                "'{at}.source' must be a text or base64 document on this model (documents by URL or content need an Anthropic deployment)."
            ),
            format!("{at}.source"),
        )),
    }
}

fn convert_tool(tool: &Value, i: usize) -> Result<Value, ApiError> {
    match tool.get("type").and_then(Value::as_str) {
        None | Some("custom") => {}
        Some(kind) => {
            return Err(invalid(
                format!(
                    "'tools[{i}]' is Anthropic's server tool '{kind}', which only Anthropic deployments run."
                ),
                format!("tools[{i}].type"),
            ));
        }
    }
    let name = tool.get("name").and_then(Value::as_str).ok_or_else(|| {
        invalid(
            format!("'tools[{i}].name' is required."),
            format!("tools[{i}].name"),
        )
    })?;
    let mut function = json!({
        "name": name,
        "parameters": tool.get("input_schema").cloned().unwrap_or_else(|| json!({"type": "object"})),
    });
    if let Some(description) = tool.get("description").filter(|d| !d.is_null()) {
        function["description"] = description.clone();
    }
    Ok(json!({"type": "function", "function": function}))
}

/// `tool_choice` and whether parallel tool calls are allowed (`disable_parallel_tool_use`).
fn convert_tool_choice(choice: &Value) -> Result<(Value, Option<bool>), ApiError> {
    let parallel = choice
        .get("disable_parallel_tool_use")
        .and_then(Value::as_bool)
        .map(|disabled| !disabled);
    let converted = match choice.get("type").and_then(Value::as_str) {
        Some("auto") => json!("auto"),
        Some("any") => json!("required"),
        Some("none") => json!("none"),
        Some("tool") => {
            let name = choice.get("name").and_then(Value::as_str).ok_or_else(|| {
                invalid(
                    "'tool_choice.name' is required when its type is 'tool'.",
                    "tool_choice.name",
                )
            })?;
            json!({"type": "function", "function": {"name": name}})
        }
        _ => {
            return Err(invalid(
                "'tool_choice.type' must be auto, any, tool or none.",
                "tool_choice.type",
            ));
        }
    };
    Ok((converted, parallel))
}

// ---- answer: OpenAI chat -> Messages ----------------------------------------------------

/// An OpenAI `finish_reason` as a Messages `stop_reason`.
pub fn stop_reason(finish_reason: Option<&str>) -> &'static str {
    match finish_reason {
        Some("length") => "max_tokens",
        Some("tool_calls" | "function_call") => "tool_use",
        Some("content_filter") => "refusal",
        _ => "end_turn",
    }
}

/// A tool call's `arguments` as the `input` object of a `tool_use` block. Arguments that are
/// not JSON cannot be represented: the answer is refused rather than the call's input lost.
fn tool_input(arguments: &str) -> Result<Value, String> {
    if arguments.trim().is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_str(arguments)
        .map_err(|e| format!("the upstream's tool call arguments are not JSON ({e})"))
}

/// A new Messages id (`msg_...`).
pub fn new_message_id() -> String {
    format!("msg_{}", uuid::Uuid::new_v4().simple())
}

/// An OpenAI chat answer as a Messages answer, with its usage. `model` is the name the client
/// asked for. `Err` names what in the answer could not be read.
pub fn from_chat_answer(answer: &[u8], model: &str) -> Result<(Bytes, Option<Usage>), String> {
    let answer: ChatAnswer = serde_json::from_slice(answer)
        .map_err(|e| format!("the upstream answer could not be read: {e}"))?;
    let usage = answer.usage.map(Usage::from);
    let choice = answer.choices.into_iter().next();
    let (message, finish) = match choice {
        Some(c) => (c.message, c.finish_reason),
        None => (AnswerMessage::default(), None),
    };
    let mut content = Vec::new();
    let blocks: Vec<ThinkingBlock> = message
        .thinking_blocks
        .iter()
        .flatten()
        .filter_map(ThinkingBlock::read)
        .collect();
    if blocks.is_empty() {
        if let Some(reasoning) = message.reasoning_content.filter(|r| !r.is_empty()) {
            content.push(json!({"type": "thinking", "thinking": reasoning, "signature": ""}));
        }
    } else {
        content.extend(blocks.iter().map(ThinkingBlock::to_json));
    }
    let text = match message.content {
        Some(Value::String(s)) => s,
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    };
    let text = if text.is_empty() {
        message.refusal.unwrap_or_default()
    } else {
        text
    };
    if !text.is_empty() {
        content.push(json!({"type": "text", "text": text}));
    }
    let mut has_tools = false;
    for call in message.tool_calls.unwrap_or_default() {
        has_tools = true;
        content.push(json!({
            "type": "tool_use",
            "id": call.id.unwrap_or_else(|| format!("toolu_{}", uuid::Uuid::new_v4().simple())),
            "name": call.function.name,
            "input": tool_input(&call.function.arguments)?,
        }));
    }
    let stop = match finish.as_deref() {
        // Some servers end a turn of tool calls with `stop`.
        Some("stop") | None if has_tools => "tool_use",
        other => stop_reason(other),
    };
    #[derive(Serialize)]
    struct MessageOut<'a> {
        id: String,
        #[serde(rename = "type")]
        kind: &'static str,
        role: &'static str,
        model: &'a str,
        content: Vec<Value>,
        stop_reason: &'static str,
        stop_sequence: Option<&'static str>,
        usage: UsageOut,
    }
    let body = MessageOut {
        id: new_message_id(),
        kind: "message",
        role: "assistant",
        model,
        content,
        stop_reason: stop,
        stop_sequence: None,
        usage: usage_json(&usage.unwrap_or_default()),
    };
    Ok((Bytes::from(json_bytes(&body)), usage))
}

// ---- stream: OpenAI chunks -> Messages events -------------------------------------------

/// The content block being streamed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Text,
    Thinking,
    Redacted,
    /// A tool call, by its OpenAI index.
    Tool(u64),
}

/// Turns the chunks of an OpenAI chat stream into the events of a Messages stream:
/// `message_start`, then each content block (`content_block_start`, its deltas,
/// `content_block_stop`), then `message_delta` (stop reason, usage) and `message_stop`.
#[derive(Debug)]
pub struct ChunksToEvents {
    model: String,
    started: bool,
    open: Option<Open>,
    /// Index of the open block (the next block's when none is open).
    index: u64,
    finish: Option<String>,
    saw_tool: bool,
    usage: Option<Usage>,
}

impl ChunksToEvents {
    /// `model` is the name the client asked for.
    pub fn new(model: String) -> Self {
        ChunksToEvents {
            model,
            started: false,
            open: None,
            index: 0,
            finish: None,
            saw_tool: false,
            usage: None,
        }
    }

    fn start(&mut self, out: &mut Vec<StreamChunk>) {
        if self.started {
            return;
        }
        self.started = true;
        push(
            out,
            json!({"type": "message_start", "message": {
                "id": new_message_id(),
                "type": "message",
                "role": "assistant",
                "model": self.model,
                "content": [],
                "stop_reason": null,
                "stop_sequence": null,
                "usage": {"input_tokens": 0, "output_tokens": 0},
            }}),
        );
    }

    /// Closes the open block unless it is `want`; opens `want` with `block` if it was not
    /// open. Returns the index of `want`'s block.
    fn switch(&mut self, want: Open, block: impl FnOnce() -> Value, out: &mut Vec<StreamChunk>) {
        if self.open == Some(want) {
            return;
        }
        self.close(out);
        self.open = Some(want);
        push(
            out,
            json!({"type": "content_block_start", "index": self.index, "content_block": block()}),
        );
    }

    fn close(&mut self, out: &mut Vec<StreamChunk>) {
        if self.open.take().is_some() {
            push(
                out,
                json!({"type": "content_block_stop", "index": self.index}),
            );
            self.index += 1;
        }
    }

    fn delta(&self, delta: Value, out: &mut Vec<StreamChunk>) {
        push(
            out,
            json!({"type": "content_block_delta", "index": self.index, "delta": delta}),
        );
    }

    /// The events for one chunk's JSON. A chunk that is not JSON fails the stream.
    pub fn on_chunk(&mut self, data: &[u8]) -> Result<Vec<StreamChunk>, String> {
        let mut out = Vec::new();
        if data.is_empty() {
            return Ok(out);
        }
        let chunk: Chunk = serde_json::from_slice(data)
            .map_err(|e| format!("the upstream sent a chunk that is not JSON: {e}"))?;
        if let Some(usage) = chunk.usage {
            self.usage = Some(Usage::from(usage));
        }
        let Some(choice) = chunk.choices.into_iter().next() else {
            return Ok(out);
        };
        self.start(&mut out);
        let delta = choice.delta;
        let blocks: Vec<ThinkingBlock> = delta
            .thinking_blocks
            .iter()
            .flatten()
            .filter_map(ThinkingBlock::read)
            .collect();
        // The text comes as `reasoning_content` (LiteLLM repeats it in the blocks); a server
        // that sends it only in the blocks is read there.
        let thought = delta
            .reasoning_content
            .filter(|t| !t.is_empty())
            .or_else(|| {
                let text: String = blocks
                    .iter()
                    .filter_map(|b| match b {
                        ThinkingBlock::Thinking { thinking, .. } => Some(thinking.as_str()),
                        ThinkingBlock::RedactedThinking { .. } => None,
                    })
                    .collect();
                (!text.is_empty()).then_some(text)
            });
        if let Some(thought) = thought {
            self.switch(Open::Thinking, empty_thinking, &mut out);
            self.delta(
                json!({"type": "thinking_delta", "thinking": thought}),
                &mut out,
            );
        }
        for block in blocks {
            match block {
                // The signature ends its block (Anthropic sends it just before
                // `content_block_stop`): thinking after it is a block of its own.
                ThinkingBlock::Thinking { signature, .. } if !signature.is_empty() => {
                    self.switch(Open::Thinking, empty_thinking, &mut out);
                    self.delta(
                        json!({"type": "signature_delta", "signature": signature}),
                        &mut out,
                    );
                    self.close(&mut out);
                }
                // Whole in one entry, as Anthropic streams it: started and stopped at once.
                ThinkingBlock::RedactedThinking { data } => {
                    self.close(&mut out);
                    self.switch(
                        Open::Redacted,
                        || json!({"type": "redacted_thinking", "data": data}),
                        &mut out,
                    );
                    self.close(&mut out);
                }
                ThinkingBlock::Thinking { .. } => {}
            }
        }
        if let Some(text) = delta.content.filter(|t| !t.is_empty()) {
            self.switch(Open::Text, || json!({"type": "text", "text": ""}), &mut out);
            self.delta(json!({"type": "text_delta", "text": text}), &mut out);
        }
        for call in delta.tool_calls.unwrap_or_default() {
            self.saw_tool = true;
            let position = call.index.unwrap_or(0);
            let (name, arguments) = match call.function {
                Some(f) => (f.name, f.arguments),
                None => (None, None),
            };
            let id = call.id;
            self.switch(
                Open::Tool(position),
                || {
                    json!({
                        "type": "tool_use",
                        "id": id.unwrap_or_else(|| format!("toolu_{}", uuid::Uuid::new_v4().simple())),
                        "name": name.unwrap_or_default(),
                        "input": {},
                    })
                },
                &mut out,
            );
            if let Some(arguments) = arguments.filter(|a| !a.is_empty()) {
                self.delta(
                    json!({"type": "input_json_delta", "partial_json": arguments}),
                    &mut out,
                );
            }
        }
        if let Some(reason) = choice.finish_reason {
            self.finish = Some(reason);
        }
        Ok(out)
    }

    /// The closing events, once the upstream stream ended.
    pub fn finish(&mut self) -> Vec<StreamChunk> {
        let mut out = Vec::new();
        self.start(&mut out);
        self.close(&mut out);
        let stop = match self.finish.as_deref() {
            Some("stop") | None if self.saw_tool => "tool_use",
            other => stop_reason(other),
        };
        let usage = self.usage.unwrap_or_default();
        out.push(StreamChunk {
            data: event(&json!({
                "type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": null},
                "usage": usage_json(&usage),
            })),
            usage: self.usage,
            usage_only: false,
        });
        push(&mut out, json!({"type": "message_stop"}));
        out
    }
}

fn empty_thinking() -> Value {
    json!({"type": "thinking", "thinking": "", "signature": ""})
}

fn push(out: &mut Vec<StreamChunk>, value: Value) {
    out.push(StreamChunk {
        data: event(&value),
        usage: None,
        usage_only: false,
    });
}

// ---- native streams: usage out of Anthropic's own events --------------------------------

/// Reads the usage of a native Messages stream as its events pass: `message_start` carries
/// the input counts, each `message_delta` the output count so far.
#[derive(Debug, Default)]
pub struct NativeUsage {
    usage: MessagesUsage,
    seen: bool,
}

impl NativeUsage {
    /// The usage so far after this event (`Some` on the events that carry usage).
    pub fn on_event(&mut self, name: &str, data: &str) -> Option<Usage> {
        #[derive(Deserialize)]
        struct Start {
            message: StartMessage,
        }
        #[derive(Deserialize)]
        struct StartMessage {
            #[serde(default)]
            usage: Option<MessagesUsage>,
        }
        #[derive(Deserialize)]
        struct DeltaEvent {
            #[serde(default)]
            usage: Option<DeltaUsage>,
        }
        #[derive(Deserialize)]
        struct DeltaUsage {
            #[serde(default)]
            output_tokens: Option<u64>,
            #[serde(default)]
            input_tokens: Option<u64>,
            #[serde(default)]
            cache_creation_input_tokens: Option<u64>,
            #[serde(default)]
            cache_read_input_tokens: Option<u64>,
        }
        match name {
            "message_start" => {
                let start: Start = serde_json::from_str(data).ok()?;
                self.usage = start.message.usage?;
                self.seen = true;
            }
            "message_delta" => {
                let delta: DeltaEvent = serde_json::from_str(data).ok()?;
                let u = delta.usage?;
                if let Some(n) = u.output_tokens {
                    self.usage.output_tokens = n;
                }
                if let Some(n) = u.input_tokens {
                    self.usage.input_tokens = n;
                }
                if u.cache_creation_input_tokens.is_some() {
                    self.usage.cache_creation_input_tokens = u.cache_creation_input_tokens;
                }
                if u.cache_read_input_tokens.is_some() {
                    self.usage.cache_read_input_tokens = u.cache_read_input_tokens;
                }
                self.seen = true;
            }
            _ => return None,
        }
        self.seen.then(|| Usage::from(self.usage))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn events_of(chunks: &[StreamChunk]) -> Vec<Value> {
        chunks
            .iter()
            .map(|c| {
                let text = std::str::from_utf8(&c.data).unwrap();
                let (head, data) = text.split_once("\ndata: ").unwrap();
                let value: Value = serde_json::from_str(data.trim_end()).unwrap();
                assert_eq!(head, format!("event: {}", value["type"].as_str().unwrap()));
                value
            })
            .collect()
    }

    #[test]
    fn a_messages_request_becomes_a_chat_request_with_tools_results_and_thinking() {
        let body = obj(json!({
            "model": "claude-x",
            "max_tokens": 256,
            "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
            "stop_sequences": ["END"],
            "temperature": 0.5,
            "top_k": 5,
            "metadata": {"user_id": "u-1"},
            "stream": true,
            "thinking": {"type": "enabled", "budget_tokens": 4000},
            "tools": [{"name": "get_weather", "description": "Weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}],
            "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
            "messages": [
                {"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "Use the tool.", "signature": "sig-1"},
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "18C"}]},
                    {"type": "text", "text": "Thanks"}
                ]}
            ]
        }));
        let chat = Value::Object(to_chat_request(&body).unwrap());
        assert_eq!(
            chat,
            json!({
                "model": "claude-x",
                "max_tokens": 256,
                "stop": ["END"],
                "temperature": 0.5,
                "top_k": 5,
                "stream": true,
                "user": "u-1",
                "reasoning_effort": "medium",
                "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
                "tool_choice": "required",
                "parallel_tool_calls": false,
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "Weather in Paris?"},
                    {"role": "assistant", "content": "Checking.",
                     "tool_calls": [{"id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}],
                     "reasoning_content": "Use the tool.",
                     "thinking_blocks": [{"type": "thinking", "thinking": "Use the tool.", "signature": "sig-1"}]},
                    {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"},
                    {"role": "user", "content": "Thanks"}
                ]
            })
        );
    }

    #[test]
    fn claude_codes_system_turns_and_adaptive_thinking_translate() {
        // As Claude Code 2.1 sends them: a system message among the turns, adaptive thinking,
        // tools with `defer_loading`, Anthropic-only settings.
        let body = obj(json!({
            "model": "m", "max_tokens": 32000, "stream": true,
            "thinking": {"type": "adaptive", "display": "omitted"},
            "output_config": {"effort": "high"},
            "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
            "tools": [{"name": "Agent", "description": "d", "input_schema": {"type": "object"}, "defer_loading": true}],
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
                {"role": "system", "content": [{"type": "text", "text": "# Environment"}]}
            ]
        }));
        let chat = to_chat_request(&body).unwrap();
        assert_eq!(
            chat["messages"],
            json!([
                {"role": "user", "content": "a\nb"},
                {"role": "system", "content": "# Environment"}
            ])
        );
        assert!(!chat.contains_key("reasoning_effort"));
        assert!(!chat.contains_key("output_config") && !chat.contains_key("context_management"));
        assert_eq!(
            chat["tools"],
            json!([{"type": "function", "function": {"name": "Agent", "description": "d", "parameters": {"type": "object"}}}])
        );
    }

    #[test]
    fn images_documents_errors_and_tool_choices_translate() {
        let body = obj(json!({
            "model": "m", "max_tokens": 10,
            "tool_choice": {"type": "tool", "name": "f"},
            "messages": [{"role": "user", "content": [
                {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "AAAA"}},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
                {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"}, "title": "a.pdf"},
                {"type": "tool_result", "tool_use_id": "t1", "content": "boom", "is_error": true}
            ]}]
        }));
        let chat = to_chat_request(&body).unwrap();
        assert_eq!(
            chat["tool_choice"],
            json!({"type": "function", "function": {"name": "f"}})
        );
        assert_eq!(
            chat["messages"],
            json!([
                {"role": "tool", "tool_call_id": "t1", "content": "Error: boom"},
                {"role": "user", "content": [
                    {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,AAAA"}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
                    {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBE", "filename": "a.pdf"}}
                ]}
            ])
        );
    }

    #[test]
    fn blocks_without_an_openai_form_are_refused_naming_them() {
        let server_tool = obj(json!({"model": "m", "max_tokens": 1,
            "messages": [{"role": "user", "content": "hi"}],
            "tools": [{"type": "web_search_20250305", "name": "web_search"}]}));
        let e = to_chat_request(&server_tool).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("tools[0].type"));
        let bad_block = obj(json!({"model": "m", "max_tokens": 1,
            "messages": [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "video"}]}]}));
        let e = to_chat_request(&bad_block).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("messages[0].content[1].type"));
        let bad_role = obj(json!({"model": "m", "max_tokens": 1,
            "messages": [{"role": "tool", "content": "a"}]}));
        let e = to_chat_request(&bad_role).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("messages[0].role"));
    }

    #[test]
    fn a_chat_answer_becomes_a_message_with_parsed_tool_input_and_thinking() {
        let answer = json!({
            "id": "chatcmpl-1", "object": "chat.completion",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                "role": "assistant", "content": "Let me check.",
                "reasoning_content": "thinking...",
                "thinking_blocks": [{"type": "thinking", "thinking": "thinking...", "signature": "sig-9"}],
                "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]
            }}],
            "usage": {"prompt_tokens": 30, "completion_tokens": 12, "total_tokens": 42, "prompt_tokens_details": {"cached_tokens": 10}}
        });
        let (body, usage) =
            from_chat_answer(answer.to_string().as_bytes(), "claude-sonnet").unwrap();
        let message: Value = serde_json::from_slice(&body).unwrap();
        assert!(message["id"].as_str().unwrap().starts_with("msg_"));
        assert_eq!(message["type"], "message");
        assert_eq!(message["model"], "claude-sonnet");
        assert_eq!(message["stop_reason"], "tool_use");
        assert_eq!(
            message["content"],
            json!([
                {"type": "thinking", "thinking": "thinking...", "signature": "sig-9"},
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}}
            ])
        );
        assert_eq!(
            message["usage"],
            json!({"input_tokens": 20, "output_tokens": 12, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 10})
        );
        let usage = usage.unwrap();
        assert_eq!((usage.prompt_tokens, usage.completion_tokens), (30, 12));
        assert_eq!(usage.cached_read_tokens, 10);
    }

    #[test]
    fn finish_reasons_map_and_unparsable_tool_arguments_are_refused() {
        assert_eq!(stop_reason(Some("stop")), "end_turn");
        assert_eq!(stop_reason(Some("length")), "max_tokens");
        assert_eq!(stop_reason(Some("tool_calls")), "tool_use");
        let broken = json!({"choices": [{"finish_reason": "tool_calls", "message": {"content": null,
            "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{not json"}}]}}]});
        assert!(from_chat_answer(broken.to_string().as_bytes(), "m").is_err());
    }

    #[test]
    fn a_chat_stream_becomes_messages_events_block_by_block() {
        let chunks = [
            json!({"choices": [{"index": 0, "delta": {"role": "assistant", "reasoning_content": "Hmm"}}]}),
            json!({"choices": [{"index": 0, "delta": {"thinking_blocks": [{"type": "thinking", "signature": "sig-2"}]}}]}),
            json!({"choices": [{"index": 0, "delta": {"content": "Hel"}}]}),
            json!({"choices": [{"index": 0, "delta": {"content": "lo"}}]}),
            json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": ""}}]}}]}),
            json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{\"a\":"}}]}}]}),
            json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}}]}),
            json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}),
            json!({"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13}}),
        ];
        let mut t = ChunksToEvents::new("claude-x".into());
        let mut out = Vec::new();
        for c in &chunks {
            out.extend(t.on_chunk(c.to_string().as_bytes()).unwrap());
        }
        out.extend(t.finish());
        let usage = out.iter().find_map(|c| c.usage).unwrap();
        assert_eq!((usage.prompt_tokens, usage.completion_tokens), (9, 4));
        let events = events_of(&out);
        let kinds: Vec<String> = events
            .iter()
            .map(|e| {
                let t = e["type"].as_str().unwrap();
                match e.get("delta").and_then(|d| d.get("type")) {
                    Some(d) => format!("{t}:{}", d.as_str().unwrap()),
                    None => t.to_string(),
                }
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "message_start",
                "content_block_start",
                "content_block_delta:thinking_delta",
                "content_block_delta:signature_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta:text_delta",
                "content_block_delta:text_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta:input_json_delta",
                "content_block_delta:input_json_delta",
                "content_block_stop",
                "message_delta",
                "message_stop",
            ]
        );
        assert_eq!(events[1]["content_block"]["type"], "thinking");
        assert_eq!(events[5]["index"], 1);
        assert_eq!(
            events[9]["content_block"],
            json!({"type": "tool_use", "id": "call_1", "name": "f", "input": {}})
        );
        assert_eq!(events[12]["index"], 2);
        assert_eq!(events[13]["delta"]["stop_reason"], "tool_use");
        assert_eq!(events[13]["usage"]["output_tokens"], 4);
    }

    #[test]
    fn a_signature_ends_its_thinking_block_and_redacted_thinking_is_a_block_of_its_own() {
        // LiteLLM's deltas: the text in `reasoning_content` and again in the blocks with a null
        // signature, the signature in an entry of its own; then a second thinking block whose
        // text comes only in the blocks, a redacted block, and text.
        let chunks = [
            json!({"choices": [{"index": 0, "delta": {"reasoning_content": "First.", "thinking_blocks": [{"type": "thinking", "thinking": "First.", "signature": null}]}}]}),
            json!({"choices": [{"index": 0, "delta": {"reasoning_content": "", "thinking_blocks": [{"type": "thinking", "thinking": "", "signature": "sig-a"}]}}]}),
            json!({"choices": [{"index": 0, "delta": {"thinking_blocks": [{"type": "thinking", "thinking": "Second."}]}}]}),
            json!({"choices": [{"index": 0, "delta": {"thinking_blocks": [{"type": "thinking", "signature": "sig-b"}]}}]}),
            json!({"choices": [{"index": 0, "delta": {"thinking_blocks": [{"type": "redacted_thinking", "data": "EmwKAhgB"}]}}]}),
            json!({"choices": [{"index": 0, "delta": {"content": "Done."}, "finish_reason": "stop"}]}),
        ];
        let mut t = ChunksToEvents::new("m".into());
        let mut out = Vec::new();
        for c in &chunks {
            out.extend(t.on_chunk(c.to_string().as_bytes()).unwrap());
        }
        out.extend(t.finish());
        let events = events_of(&out);
        let blocks: Vec<Value> = events
            .iter()
            .filter(|e| e["type"] == "content_block_start")
            .map(|e| json!([e["index"], e["content_block"]]))
            .collect();
        assert_eq!(
            blocks,
            [
                json!([0, {"type": "thinking", "thinking": "", "signature": ""}]),
                json!([1, {"type": "thinking", "thinking": "", "signature": ""}]),
                json!([2, {"type": "redacted_thinking", "data": "EmwKAhgB"}]),
                json!([3, {"type": "text", "text": ""}]),
            ]
        );
        let deltas: Vec<Value> = events
            .iter()
            .filter(|e| e["type"] == "content_block_delta")
            .map(|e| json!([e["index"], e["delta"]]))
            .collect();
        assert_eq!(
            deltas,
            [
                json!([0, {"type": "thinking_delta", "thinking": "First."}]),
                json!([0, {"type": "signature_delta", "signature": "sig-a"}]),
                json!([1, {"type": "thinking_delta", "thinking": "Second."}]),
                json!([1, {"type": "signature_delta", "signature": "sig-b"}]),
                json!([3, {"type": "text_delta", "text": "Done."}]),
            ]
        );
        let stops = events
            .iter()
            .filter(|e| e["type"] == "content_block_stop")
            .count();
        assert_eq!(stops, 4, "every block started is stopped");
    }

    #[test]
    fn native_usage_adds_the_cached_counts_of_message_start_to_the_final_output() {
        let mut u = NativeUsage::default();
        let start = r#"{"type":"message_start","message":{"id":"msg_1","usage":{"input_tokens":5,"cache_read_input_tokens":100,"cache_creation_input_tokens":20,"output_tokens":1}}}"#;
        let first = u.on_event("message_start", start).unwrap();
        assert_eq!(first.prompt_tokens, 125);
        assert_eq!(u.on_event("content_block_delta", "{}"), None);
        let end = u
            .on_event(
                "message_delta",
                r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":42}}"#,
            )
            .unwrap();
        assert_eq!(
            (
                end.prompt_tokens,
                end.completion_tokens,
                end.cached_read_tokens,
                end.cache_creation_tokens
            ),
            (125, 42, 100, 20)
        );
    }
}
