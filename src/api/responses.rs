//! OpenAI's Responses API (`/v1/responses`) in the words every layer shares: its usage, and
//! the bridge both ways between a Responses exchange and an OpenAI chat completion, for the
//! deployments that do not serve the Responses API themselves (vLLM, Ollama, the translated
//! providers). Codex CLI and the Agents SDK speak only this API; the bridge is what lets them
//! use every other model behind the gateway.
//!
//! Pure translation, no I/O: [`to_chat_request`] turns the request into a chat request and a
//! [`ResponseContext`] (what the answer needs from the request: the requested model, which
//! chat functions stand for custom or namespaced tools, the fields a Response object echoes,
//! the response id); [`from_chat_answer`] and [`ChunksToEvents`] turn the chat answer or
//! stream back into a Response object or the Responses event stream. [`usage_of_response`]
//! and [`NativeUsage`] read usage where a deployment serves the API natively.
//!
//! What has no chat form: hosted tools (web search, file search, code interpreter, MCP, ...)
//! are left out, since only OpenAI runs them; `reasoning` input items are left out, since
//! their encrypted content only means something to the model that wrote it. Custom
//! (free-form) tools become functions taking one string, `input`, with their grammar in the
//! description, and come back as `custom_tool_call` items; tools grouped in a `namespace`
//! become functions named `<namespace>__<name>` and come back with their namespace. The tools
//! of an `additional_tools` input item (Codex's "Responses Lite" sends its tools that way
//! instead of in `tools`) join the chat tools like those of `tools`.

use std::collections::HashMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::chat::{AnswerMessage, ChatAnswer, Chunk, ToolDelta};
use super::messages::frame;
use super::{CachedDetails, ReasoningDetails, StreamChunk, Usage, top_level_value};
use crate::error::ApiError;

fn invalid(message: impl Into<String>, param: impl Into<String>) -> ApiError {
    ApiError::invalid(message, param)
}

/// JSON text straight into bytes (`to_vec` writes into the buffer; `Value::to_string` goes
/// through `fmt::Write` and costs several times more).
fn json_bytes(value: &impl Serialize) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

fn new_id(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}

/// A new Response id (`resp_...`).
pub fn new_response_id() -> String {
    new_id("resp_")
}

// ---- the request's side: what the answer needs ------------------------------------------

/// A chat function that stands for something else in the Responses request: a custom tool,
/// or a tool inside a `namespace`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct BridgedTool {
    /// The tool's own name (without the namespace).
    name: String,
    namespace: Option<String>,
    custom: bool,
}

/// What answering a Responses request needs from it: the response's id and creation time,
/// the model name the client asked for, the chat functions that stand for custom or
/// namespaced tools, and the request fields a Response object echoes (pre-rendered, as they
/// are written into every `response.*` event of a stream).
#[derive(Debug, Clone)]
pub struct ResponseContext {
    /// `resp_...`: the id of the Response object written for this request (the caller can
    /// store the answer under it).
    pub id: String,
    /// Unix seconds.
    pub created_at: i64,
    /// The model name the client asked for, written into the Response object.
    pub model: String,
    /// Chat function name -> what it stands for (only custom and namespaced tools).
    bridged: HashMap<String, BridgedTool>,
    /// The echoed fields as JSON members, `,"instructions":...,"user":null` (or empty).
    echo: Vec<u8>,
}

impl ResponseContext {
    /// The context of a Responses request body: a new id, now, the body's `model`, and the
    /// fields to echo with the defaults OpenAI writes for those not set. Knows no bridged
    /// tools (those come from [`to_chat_request`]).
    pub fn new(body: &Map<String, Value>) -> Self {
        let model = body
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        ResponseContext {
            id: new_response_id(),
            created_at: chrono::Utc::now().timestamp(),
            model,
            bridged: HashMap::new(),
            echo: echo_members(body),
        }
    }

    /// Whether a chat function name stands for a custom tool (its calls are answered as
    /// `custom_tool_call` items).
    pub fn is_custom_tool(&self, chat_name: &str) -> bool {
        self.bridged.get(chat_name).is_some_and(|t| t.custom)
    }

    /// The names of the custom tools, as the chat request calls them.
    pub fn custom_tools(&self) -> impl Iterator<Item = &str> {
        self.bridged
            .iter()
            .filter(|(_, t)| t.custom)
            .map(|(name, _)| name.as_str())
    }

    /// A Response object's JSON: status, output and usage from the answer, the rest from the
    /// request.
    fn response_json(&self, state: ResponseState<'_>) -> Vec<u8> {
        #[derive(Serialize)]
        struct Head<'a> {
            id: &'a str,
            object: &'static str,
            created_at: i64,
            status: &'a str,
            background: bool,
            error: Option<ErrorOut<'a>>,
            incomplete_details: Option<IncompleteOut<'a>>,
            model: &'a str,
            output: &'a [OutputItem],
            usage: Option<UsageOut>,
        }
        let head = Head {
            id: &self.id,
            object: "response",
            created_at: self.created_at,
            status: state.status,
            background: false,
            error: state.error,
            incomplete_details: state.incomplete.map(|reason| IncompleteOut { reason }),
            model: &self.model,
            output: state.output,
            usage: state.usage.map(usage_json),
        };
        let mut bytes = json_bytes(&head);
        // `{...}` of a struct always ends with its brace: the echoed members go before it.
        if bytes.last() == Some(&b'}') {
            bytes.pop();
            bytes.extend_from_slice(&self.echo);
            bytes.push(b'}');
        }
        bytes
    }

    /// One `response.*` event carrying the Response object.
    fn response_event(&self, kind: &str, sequence_number: u64, state: ResponseState<'_>) -> Bytes {
        let response = self.response_json(state);
        let mut data = Vec::with_capacity(response.len() + kind.len() + 64);
        data.extend_from_slice(b"{\"type\":\"");
        data.extend_from_slice(kind.as_bytes());
        data.extend_from_slice(b"\",\"sequence_number\":");
        data.extend_from_slice(sequence_number.to_string().as_bytes());
        data.extend_from_slice(b",\"response\":");
        data.extend_from_slice(&response);
        data.push(b'}');
        frame(kind, &data)
    }
}

/// The answer's part of a Response object.
#[derive(Clone, Copy)]
struct ResponseState<'a> {
    status: &'a str,
    output: &'a [OutputItem],
    usage: Option<&'a Usage>,
    incomplete: Option<&'a str>,
    error: Option<ErrorOut<'a>>,
}

impl<'a> ResponseState<'a> {
    fn in_progress() -> Self {
        ResponseState {
            status: "in_progress",
            output: &[],
            usage: None,
            incomplete: None,
            error: None,
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize)]
struct ErrorOut<'a> {
    code: &'a str,
    message: &'a str,
}

#[derive(Debug, Clone, Copy, Serialize)]
struct IncompleteOut<'a> {
    reason: &'a str,
}

/// The request fields a Response object echoes, as JSON members to append to an object
/// (`,"instructions":...`), with OpenAI's values for those the request left out.
fn echo_members(body: &Map<String, Value>) -> Vec<u8> {
    fn inner<'a>(outer: &'a Value, key: &str) -> Option<Echoed<'a>> {
        outer.get(key).filter(|v| !v.is_null()).map(Echoed::Given)
    }
    // Borrowed from the request, the defaults written in place, the request read in one pass
    // rather than looked up field by field: the echo of a Codex request carries its whole
    // tool list, and copying it into `Value`s cost more than the rest of the answer, the
    // lookups (hashed keys) a third of what was left (measured: 19k, then 14k, of ~200k
    // instructions per bridged request).
    let mut echo = Echo {
        instructions: Echoed::Null(None),
        max_output_tokens: Echoed::Null(None),
        max_tool_calls: Echoed::Null(None),
        metadata: Echoed::EmptyObject(EmptyObject {}),
        parallel_tool_calls: Echoed::Bool(true),
        previous_response_id: Echoed::Null(None),
        prompt_cache_key: Echoed::Null(None),
        reasoning: ReasoningEcho {
            effort: Echoed::Null(None),
            summary: Echoed::Null(None),
        },
        safety_identifier: Echoed::Null(None),
        service_tier: Echoed::Str("default"),
        store: Echoed::Bool(true),
        temperature: Echoed::Float(1.0),
        text: TextEcho {
            format: Echoed::TextFormat(TextFormat { kind: "text" }),
            verbosity: Echoed::Str("medium"),
        },
        tool_choice: Echoed::Str("auto"),
        tools: Echoed::EmptyList([]),
        top_logprobs: Echoed::Int(0),
        top_p: Echoed::Float(1.0),
        truncation: Echoed::Str("disabled"),
        user: Echoed::Null(None),
    };
    for (key, value) in body.iter().filter(|(_, v)| !v.is_null()) {
        let given = Echoed::Given(value);
        match key.as_str() {
            "instructions" => echo.instructions = given,
            "max_output_tokens" => echo.max_output_tokens = given,
            "max_tool_calls" => echo.max_tool_calls = given,
            "metadata" => echo.metadata = given,
            "parallel_tool_calls" => echo.parallel_tool_calls = given,
            "previous_response_id" => echo.previous_response_id = given,
            "prompt_cache_key" => echo.prompt_cache_key = given,
            "reasoning" => {
                if let Some(effort) = inner(value, "effort") {
                    echo.reasoning.effort = effort;
                }
                if let Some(summary) = inner(value, "summary") {
                    echo.reasoning.summary = summary;
                }
            }
            "safety_identifier" => echo.safety_identifier = given,
            "service_tier" => echo.service_tier = given,
            "store" => echo.store = given,
            "temperature" => echo.temperature = given,
            "text" => {
                if let Some(format) = inner(value, "format") {
                    echo.text.format = format;
                }
                if let Some(verbosity) = inner(value, "verbosity") {
                    echo.text.verbosity = verbosity;
                }
            }
            "tool_choice" => echo.tool_choice = given,
            "tools" => echo.tools = given,
            "top_logprobs" => echo.top_logprobs = given,
            "top_p" => echo.top_p = given,
            "truncation" => echo.truncation = given,
            "user" => echo.user = given,
            _ => {}
        }
    }
    let mut members = json_bytes(&echo);
    // `{"instructions":...}` -> `,"instructions":...`
    if members.len() > 2 {
        members[0] = b',';
        members.pop();
        members
    } else {
        Vec::new()
    }
}

/// The fields a Response object echoes from its request, in OpenAI's order.
#[derive(Serialize)]
struct Echo<'a> {
    instructions: Echoed<'a>,
    max_output_tokens: Echoed<'a>,
    max_tool_calls: Echoed<'a>,
    metadata: Echoed<'a>,
    parallel_tool_calls: Echoed<'a>,
    previous_response_id: Echoed<'a>,
    prompt_cache_key: Echoed<'a>,
    reasoning: ReasoningEcho<'a>,
    safety_identifier: Echoed<'a>,
    service_tier: Echoed<'a>,
    store: Echoed<'a>,
    temperature: Echoed<'a>,
    text: TextEcho<'a>,
    tool_choice: Echoed<'a>,
    tools: Echoed<'a>,
    top_logprobs: Echoed<'a>,
    top_p: Echoed<'a>,
    truncation: Echoed<'a>,
    user: Echoed<'a>,
}

#[derive(Serialize)]
struct ReasoningEcho<'a> {
    effort: Echoed<'a>,
    summary: Echoed<'a>,
}

#[derive(Serialize)]
struct TextEcho<'a> {
    format: Echoed<'a>,
    verbosity: Echoed<'a>,
}

/// One echoed value: the request's own, or OpenAI's default for it.
#[derive(Serialize)]
#[serde(untagged)]
enum Echoed<'a> {
    Given(&'a Value),
    Null(Option<()>),
    Bool(bool),
    Float(f64),
    Int(u64),
    Str(&'static str),
    EmptyObject(EmptyObject),
    EmptyList([u8; 0]),
    TextFormat(TextFormat),
}

#[derive(Serialize)]
struct EmptyObject {}

#[derive(Serialize)]
struct TextFormat {
    #[serde(rename = "type")]
    kind: &'static str,
}

// ---- request: Responses -> OpenAI chat --------------------------------------------------

/// A Responses request bridged onto chat completions: the chat request's body and what the
/// answer needs from the request.
#[derive(Debug, Clone)]
pub struct ChatBridge {
    pub body: Map<String, Value>,
    pub context: ResponseContext,
}

/// The chat function name of a tool inside a namespace.
fn namespaced_name(namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) if !ns.is_empty() => format!("{ns}__{name}"),
        _ => name.to_string(),
    }
}

/// A Responses request as an OpenAI chat request (`model` was checked by the pipeline).
/// Items, parts and settings without a chat form are a 400 naming them; hosted tools,
/// `reasoning` items and the Responses-only settings (`store`, `include`,
/// `prompt_cache_key`, `previous_response_id` — resolved by the caller beforehand —,
/// `truncation`, `service_tier`, `metadata`, `text.verbosity`) are left out. The tools of
/// `additional_tools` items follow those of `tools`.
pub fn to_chat_request(body: &Map<String, Value>) -> Result<ChatBridge, ApiError> {
    let mut context = ResponseContext::new(body);
    let mut out = Map::new();
    if let Some(model) = body.get("model") {
        out.insert("model".into(), model.clone());
    }

    let mut messages = Messages::default();
    // `additional_tools` items: (their index, their tools), converted after `tools`.
    let mut additional_tools = Vec::new();
    match body.get("instructions") {
        None | Some(Value::Null) => {}
        Some(Value::String(text)) => {
            if !text.is_empty() {
                messages.push_system(text.clone());
            }
        }
        Some(_) => {
            return Err(invalid("'instructions' must be a string.", "instructions"));
        }
    }
    match body.get("input") {
        None | Some(Value::Null) => {}
        Some(Value::String(text)) => messages.push(json!({"role": "user", "content": text})),
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                if item.get("type").and_then(Value::as_str) == Some("additional_tools") {
                    match item.get("tools") {
                        None | Some(Value::Null) => {}
                        Some(Value::Array(list)) => additional_tools.push((i, list)),
                        Some(_) => {
                            return Err(invalid(
                                format!("'input[{i}].tools' must be a list."),
                                format!("input[{i}].tools"),
                            ));
                        }
                    }
                    continue;
                }
                convert_item(item, i, &mut messages)?;
            }
        }
        Some(_) => {
            return Err(invalid(
                "'input' must be a string or a list of input items.",
                "input",
            ));
        }
    }
    let messages = messages.finish();
    if messages.is_empty() {
        return Err(invalid(
            "'input' is required: there is nothing to send to the model.",
            "input",
        ));
    }
    out.insert("messages".into(), Value::Array(messages));

    let mut tools = Vec::new();
    match body.get("tools") {
        None | Some(Value::Null) => {}
        Some(Value::Array(list)) => {
            convert_tools(list, None, "tools", &mut tools, &mut context.bridged)?;
        }
        Some(_) => return Err(invalid("'tools' must be a list.", "tools")),
    }
    for (i, list) in additional_tools {
        let at = format!("input[{i}].tools");
        convert_tools(list, None, &at, &mut tools, &mut context.bridged)?;
    }
    let has_tools = !tools.is_empty();
    if has_tools {
        out.insert("tools".into(), Value::Array(tools));
    }
    // Without tools a chat server refuses `tool_choice` (and `parallel_tool_calls` means
    // nothing): both only go along with tools.
    if has_tools {
        if let Some(choice) = body.get("tool_choice").filter(|v| !v.is_null()) {
            out.insert("tool_choice".into(), convert_tool_choice(choice)?);
        }
        if let Some(parallel) = body.get("parallel_tool_calls").filter(|v| !v.is_null()) {
            out.insert("parallel_tool_calls".into(), parallel.clone());
        }
    }

    if let Some(max) = body.get("max_output_tokens").filter(|v| !v.is_null()) {
        if max.as_u64().is_none() {
            return Err(invalid(
                "'max_output_tokens' must be a non-negative integer.",
                "max_output_tokens",
            ));
        }
        // `max_tokens`, as LiteLLM's bridge sends it: every OpenAI-compatible server and
        // every translating provider here reads it (`max_completion_tokens` is newer and
        // not everywhere).
        out.insert("max_tokens".into(), max.clone());
    }
    for key in ["temperature", "top_p", "user", "stream"] {
        if let Some(v) = body.get(key).filter(|v| !v.is_null()) {
            out.insert(key.into(), v.clone());
        }
    }
    if body.get("stream").and_then(Value::as_bool) == Some(true) {
        // The closing `response.completed` carries usage: ask for it.
        out.insert("stream_options".into(), json!({"include_usage": true}));
    }
    if let Some(reasoning) = body.get("reasoning").filter(|v| !v.is_null()) {
        match reasoning.get("effort") {
            None | Some(Value::Null) => {}
            Some(Value::String(effort)) => {
                out.insert("reasoning_effort".into(), json!(effort));
            }
            Some(_) => {
                return Err(invalid(
                    "'reasoning.effort' must be a string.",
                    "reasoning.effort",
                ));
            }
        }
    }
    if let Some(format) = body
        .get("text")
        .and_then(|t| t.get("format"))
        .filter(|f| !f.is_null())
        && let Some(response_format) = convert_text_format(format)?
    {
        out.insert("response_format".into(), response_format);
    }
    Ok(ChatBridge { body: out, context })
}

/// The chat messages being built: adjacent system texts are merged into one message (the
/// instructions and Codex's developer messages; many chat templates take one system
/// message only), and the images of tool outputs wait for the user message that follows
/// the run of tool messages (chat tool messages carry text only).
#[derive(Default)]
struct Messages {
    list: Vec<Value>,
    /// Non-text parts of tool outputs, sent as a user message after the tool messages.
    pending_parts: Vec<Value>,
}

impl Messages {
    fn flush_parts(&mut self) {
        if !self.pending_parts.is_empty() {
            let parts = std::mem::take(&mut self.pending_parts);
            self.list
                .push(json!({"role": "user", "content": Value::Array(parts)}));
        }
    }

    fn push(&mut self, message: Value) {
        self.flush_parts();
        self.list.push(message);
    }

    fn push_tool(&mut self, message: Value) {
        self.list.push(message);
    }

    fn push_system(&mut self, text: String) {
        self.flush_parts();
        if let Some(last) = self.list.last_mut()
            && last.get("role").and_then(Value::as_str) == Some("system")
            && let Some(Value::String(content)) = last.get_mut("content")
        {
            content.push_str("\n\n");
            content.push_str(&text);
            return;
        }
        self.list.push(json!({"role": "system", "content": text}));
    }

    /// Adds a tool call to the assistant message just before (the text of the same turn,
    /// or the calls before it), or to a new assistant message.
    fn push_tool_call(&mut self, call: Value) {
        self.flush_parts();
        if let Some(Value::Object(last)) = self.list.last_mut()
            && last.get("role").and_then(Value::as_str) == Some("assistant")
        {
            match last.get_mut("tool_calls") {
                Some(Value::Array(calls)) => calls.push(call),
                _ => {
                    last.insert("tool_calls".into(), Value::Array(vec![call]));
                }
            }
            return;
        }
        self.list.push(json!({
            "role": "assistant",
            "content": null,
            "tool_calls": [call],
        }));
    }

    fn finish(mut self) -> Vec<Value> {
        self.flush_parts();
        self.list
    }
}

fn required_str<'a>(item: &'a Value, key: &str, at: &str) -> Result<&'a str, ApiError> {
    item.get(key).and_then(Value::as_str).ok_or_else(|| {
        invalid(
            format!("'{at}.{key}' is required and must be a string."),
            format!("{at}.{key}"),
        )
    })
}

/// Item types that only a deployment serving the Responses API natively can continue.
const NATIVE_ONLY_ITEMS: &[&str] = &[
    "computer_call",
    "computer_call_output",
    "local_shell_call",
    "local_shell_call_output",
    "shell_call",
    "shell_call_output",
    "apply_patch_call",
    "apply_patch_call_output",
    "mcp_approval_request",
    "mcp_approval_response",
    "mcp_call",
    "compaction",
];

/// Item types that record what a hosted tool did on OpenAI's side: the chat model cannot
/// see them, and they need no answer, so they are left out like the tools themselves.
const HOSTED_ITEMS: &[&str] = &[
    "web_search_call",
    "file_search_call",
    "image_generation_call",
    "code_interpreter_call",
    "mcp_list_tools",
];

fn convert_item(item: &Value, i: usize, out: &mut Messages) -> Result<(), ApiError> {
    let at = format!("input[{i}]");
    if !item.is_object() {
        return Err(invalid(format!("'{at}' must be an object."), at));
    }
    // A message may leave out its type (`{"role": "user", "content": "..."}`).
    let kind = match item.get("type") {
        Some(Value::String(kind)) => kind.as_str(),
        None | Some(Value::Null) if item.get("role").is_some() => "message",
        _ => {
            return Err(invalid(
                format!("'{at}.type' is required."),
                format!("{at}.type"),
            ));
        }
    };
    match kind {
        "message" => convert_message(item, &at, out),
        "function_call" => {
            let call_id = required_str(item, "call_id", &at)?;
            let name = required_str(item, "name", &at)?;
            let namespace = item.get("namespace").and_then(Value::as_str);
            let arguments = match item.get("arguments") {
                Some(Value::String(a)) if !a.is_empty() => a.clone(),
                None | Some(Value::Null) | Some(Value::String(_)) => "{}".to_string(),
                Some(_) => {
                    return Err(invalid(
                        format!("'{at}.arguments' must be a string."),
                        format!("{at}.arguments"),
                    ));
                }
            };
            out.push_tool_call(json!({
                "id": call_id,
                "type": "function",
                "function": {"name": namespaced_name(namespace, name), "arguments": arguments},
            }));
            Ok(())
        }
        "custom_tool_call" => {
            let call_id = required_str(item, "call_id", &at)?;
            let name = required_str(item, "name", &at)?;
            let namespace = item.get("namespace").and_then(Value::as_str);
            let input = item.get("input").and_then(Value::as_str).unwrap_or("");
            out.push_tool_call(json!({
                "id": call_id,
                "type": "function",
                "function": {
                    "name": namespaced_name(namespace, name),
                    "arguments": json!({"input": input}).to_string(),
                },
            }));
            Ok(())
        }
        "function_call_output" | "custom_tool_call_output" => {
            let call_id = required_str(item, "call_id", &at)?;
            let text = tool_output(item.get("output"), &format!("{at}.output"), out)?;
            out.push_tool(json!({"role": "tool", "tool_call_id": call_id, "content": text}));
            Ok(())
        }
        // Encrypted reasoning means something only to the model that wrote it; its summary
        // is the model's own commentary, not part of the conversation.
        "reasoning" => Ok(()),
        kind if HOSTED_ITEMS.contains(&kind) => Ok(()),
        "item_reference" => Err(invalid(
            format!(
                "'{at}' is an item_reference: stored items cannot be referenced on this deployment; send the item itself."
            ),
            format!("{at}.type"),
        )),
        kind if NATIVE_ONLY_ITEMS.contains(&kind) => Err(invalid(
            format!(
                "'{at}' is a '{kind}' item, which only a deployment serving the Responses API natively can continue."
            ),
            format!("{at}.type"),
        )),
        kind => Err(invalid(
            format!("'{at}.type' '{kind}' is not an input item type this deployment takes."),
            format!("{at}.type"),
        )),
    }
}

fn convert_message(item: &Value, at: &str, out: &mut Messages) -> Result<(), ApiError> {
    let role = item.get("role").and_then(Value::as_str).unwrap_or("");
    let content_at = format!("{at}.content");
    let parts: &[Value] = match item.get("content") {
        Some(Value::String(text)) => {
            return match role {
                "system" | "developer" => {
                    out.push_system(text.clone());
                    Ok(())
                }
                "user" | "assistant" => {
                    out.push(json!({"role": role, "content": text}));
                    Ok(())
                }
                _ => Err(bad_role(at)),
            };
        }
        Some(Value::Array(parts)) => parts,
        _ => {
            return Err(invalid(
                format!("'{content_at}' must be a string or a list of content parts."),
                content_at,
            ));
        }
    };
    match role {
        "system" | "developer" => {
            let mut texts = Vec::with_capacity(parts.len());
            for (j, part) in parts.iter().enumerate() {
                match part_text(part) {
                    Some(text) => texts.push(text),
                    None => {
                        return Err(invalid(
                            format!("'{content_at}[{j}]' must be a text part in a {role} message."),
                            format!("{content_at}[{j}].type"),
                        ));
                    }
                }
            }
            out.push_system(texts.join("\n"));
            Ok(())
        }
        "assistant" => {
            let mut text = String::new();
            for (j, part) in parts.iter().enumerate() {
                match part_text(part) {
                    Some(t) => text.push_str(t),
                    None => {
                        return Err(invalid(
                            format!(
                                "'{content_at}[{j}]' must be an output_text or refusal part in an assistant message."
                            ),
                            format!("{content_at}[{j}].type"),
                        ));
                    }
                }
            }
            out.push(json!({"role": "assistant", "content": text}));
            Ok(())
        }
        "user" => {
            let mut converted = Vec::with_capacity(parts.len());
            for (j, part) in parts.iter().enumerate() {
                converted.push(content_part(part, &format!("{content_at}[{j}]"))?);
            }
            out.push(json!({"role": "user", "content": user_content(converted)}));
            Ok(())
        }
        _ => Err(bad_role(at)),
    }
}

fn bad_role(at: &str) -> ApiError {
    invalid(
        format!("'{at}.role' must be 'user', 'assistant', 'system' or 'developer'."),
        format!("{at}.role"),
    )
}

/// The text of a text part (`input_text`, `output_text`, `text`, `refusal`).
fn part_text(part: &Value) -> Option<&str> {
    match part.get("type").and_then(Value::as_str) {
        Some("input_text" | "output_text" | "text") => {
            Some(part.get("text").and_then(Value::as_str).unwrap_or(""))
        }
        Some("refusal") => Some(part.get("refusal").and_then(Value::as_str).unwrap_or("")),
        _ => None,
    }
}

/// Chat content from converted parts: a plain string when all are text (every
/// OpenAI-compatible server takes that), the parts otherwise.
fn user_content(parts: Vec<Value>) -> Value {
    if parts.iter().all(|p| p["type"] == "text") {
        let texts: Vec<&str> = parts.iter().filter_map(|p| p["text"].as_str()).collect();
        Value::String(texts.join("\n"))
    } else {
        Value::Array(parts)
    }
}

/// One Responses content part as a chat content part.
fn content_part(part: &Value, at: &str) -> Result<Value, ApiError> {
    if let Some(text) = part_text(part) {
        return Ok(json!({"type": "text", "text": text}));
    }
    match part.get("type").and_then(Value::as_str) {
        Some("input_image") => {
            if let Some(url) = part.get("image_url").and_then(Value::as_str) {
                let mut image = json!({"url": url});
                if let Some(detail) = part.get("detail").and_then(Value::as_str) {
                    image["detail"] = json!(detail);
                }
                return Ok(json!({"type": "image_url", "image_url": image}));
            }
            if part.get("file_id").is_some_and(|f| !f.is_null()) {
                return Err(invalid(
                    format!(
                        "'{at}.file_id' names a file stored with OpenAI, which this deployment cannot read: send the image as 'image_url' (a URL or a data URL)."
                    ),
                    format!("{at}.file_id"),
                ));
            }
            Err(invalid(
                format!("'{at}.image_url' is required."),
                format!("{at}.image_url"),
            ))
        }
        Some("input_file") => {
            if let Some(data) = part.get("file_data").and_then(Value::as_str) {
                let mut file = json!({"file_data": data});
                if let Some(name) = part.get("filename").and_then(Value::as_str) {
                    file["filename"] = json!(name);
                }
                return Ok(json!({"type": "file", "file": file}));
            }
            for key in ["file_id", "file_url"] {
                if part.get(key).is_some_and(|f| !f.is_null()) {
                    return Err(invalid(
                        format!(
                            "'{at}.{key}' cannot be read on this deployment: send the file's content as 'file_data'."
                        ),
                        format!("{at}.{key}"),
                    ));
                }
            }
            Err(invalid(
                format!("'{at}.file_data' is required."),
                format!("{at}.file_data"),
            ))
        }
        Some(kind) => Err(invalid(
            format!("'{at}.type' '{kind}' is not a content part this deployment takes."),
            format!("{at}.type"),
        )),
        None => Err(invalid(
            format!("'{at}.type' is required."),
            format!("{at}.type"),
        )),
    }
}

/// A tool output (a string, or a list of content parts) as the text of a chat tool message;
/// its images and files wait for the user message after the tool messages.
fn tool_output(output: Option<&Value>, at: &str, out: &mut Messages) -> Result<String, ApiError> {
    match output {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(text)) => Ok(text.clone()),
        Some(Value::Array(parts)) => {
            let mut texts = Vec::new();
            for (k, part) in parts.iter().enumerate() {
                match part_text(part) {
                    Some(text) => texts.push(text),
                    None => out
                        .pending_parts
                        .push(content_part(part, &format!("{at}[{k}]"))?),
                }
            }
            Ok(texts.join("\n"))
        }
        Some(_) => Err(invalid(
            format!("'{at}' must be a string or a list of content parts."),
            at.to_string(),
        )),
    }
}

/// The parameters of the function a custom tool becomes.
fn custom_parameters() -> Value {
    json!({
        "type": "object",
        "properties": {"input": {"type": "string"}},
        "required": ["input"],
    })
}

/// A custom tool's description, with its grammar (if any) for the model to follow.
fn custom_description(tool: &Value) -> String {
    let mut description = tool
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let format = tool.get("format");
    if format.and_then(|f| f.get("type")).and_then(Value::as_str) == Some("grammar")
        && let Some(definition) = format
            .and_then(|f| f.get("definition"))
            .and_then(Value::as_str)
            .filter(|d| !d.is_empty())
    {
        let syntax = format
            .and_then(|f| f.get("syntax"))
            .and_then(Value::as_str)
            .unwrap_or("");
        if !description.is_empty() {
            description.push_str("\n\n");
        }
        description.push_str(&format!(
            "Pass the tool's raw input as the string argument 'input'. It must follow this {syntax} grammar:\n```{syntax}\n{definition}\n```"
        ));
    }
    description
}

fn convert_tools(
    tools: &[Value],
    namespace: Option<&str>,
    at: &str,
    out: &mut Vec<Value>,
    bridged: &mut HashMap<String, BridgedTool>,
) -> Result<(), ApiError> {
    for (i, tool) in tools.iter().enumerate() {
        let at = format!("{at}[{i}]");
        let kind = tool
            .get("type")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(format!("'{at}.type' is required."), format!("{at}.type")))?;
        match kind {
            "function" => {
                let name = required_str(tool, "name", &at)?;
                let chat_name = namespaced_name(namespace, name);
                let mut function = Map::new();
                function.insert("name".into(), json!(chat_name));
                if let Some(d) = tool.get("description").filter(|d| !d.is_null()) {
                    function.insert("description".into(), d.clone());
                }
                function.insert(
                    "parameters".into(),
                    tool.get("parameters")
                        .filter(|p| !p.is_null())
                        .cloned()
                        .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
                );
                if tool.get("strict").and_then(Value::as_bool) == Some(true) {
                    function.insert("strict".into(), json!(true));
                }
                if let Some(ns) = namespace {
                    bridged.insert(
                        chat_name,
                        BridgedTool {
                            name: name.to_string(),
                            namespace: Some(ns.to_string()),
                            custom: false,
                        },
                    );
                }
                out.push(json!({"type": "function", "function": function}));
            }
            "custom" => {
                let name = required_str(tool, "name", &at)?;
                let chat_name = namespaced_name(namespace, name);
                let description = custom_description(tool);
                let mut function = Map::new();
                function.insert("name".into(), json!(chat_name));
                if !description.is_empty() {
                    function.insert("description".into(), json!(description));
                }
                function.insert("parameters".into(), custom_parameters());
                bridged.insert(
                    chat_name,
                    BridgedTool {
                        name: name.to_string(),
                        namespace: namespace.map(str::to_string),
                        custom: true,
                    },
                );
                out.push(json!({"type": "function", "function": function}));
            }
            "namespace" if namespace.is_none() => {
                let name = required_str(tool, "name", &at)?;
                if let Some(Value::Array(inner)) = tool.get("tools") {
                    convert_tools(inner, Some(name), &format!("{at}.tools"), out, bridged)?;
                }
            }
            // Hosted tools (`web_search`, `web_search_preview`, `file_search`,
            // `code_interpreter`, `image_generation`, `mcp`, `computer_use_preview`) and
            // the ones naming a client runtime of OpenAI's own (`local_shell`, `shell`,
            // `apply_patch`): a chat model cannot call them. A type unknown here is left
            // out as well: the request loses a tool rather than failing altogether.
            _ => {}
        }
    }
    Ok(())
}

fn convert_tool_choice(choice: &Value) -> Result<Value, ApiError> {
    let kind = match choice {
        Value::String(mode) => {
            return match mode.as_str() {
                "auto" | "none" | "required" => Ok(choice.clone()),
                _ => Err(invalid(
                    "'tool_choice' must be 'auto', 'none', 'required' or a tool.",
                    "tool_choice",
                )),
            };
        }
        Value::Object(o) => o.get("type").and_then(Value::as_str).unwrap_or(""),
        _ => {
            return Err(invalid(
                "'tool_choice' must be 'auto', 'none', 'required' or a tool.",
                "tool_choice",
            ));
        }
    };
    match kind {
        "function" | "custom" => {
            let name = required_str(choice, "name", "tool_choice")?;
            let namespace = choice.get("namespace").and_then(Value::as_str);
            Ok(json!({"type": "function", "function": {"name": namespaced_name(namespace, name)}}))
        }
        "allowed_tools" => match choice.get("mode").and_then(Value::as_str) {
            Some("required") => Ok(json!("required")),
            _ => Ok(json!("auto")),
        },
        "auto" | "none" | "required" => Ok(json!(kind)),
        kind => Err(invalid(
            format!(
                "'tool_choice' forces the hosted tool '{kind}', which this deployment does not run."
            ),
            "tool_choice.type",
        )),
    }
}

/// `text.format` as a chat `response_format` (`None` for plain text).
fn convert_text_format(format: &Value) -> Result<Option<Value>, ApiError> {
    match format.get("type").and_then(Value::as_str) {
        Some("text") => Ok(None),
        Some("json_object") => Ok(Some(json!({"type": "json_object"}))),
        Some("json_schema") => {
            let name = required_str(format, "name", "text.format")?;
            let schema = format
                .get("schema")
                .filter(|s| s.is_object())
                .ok_or_else(|| {
                    invalid(
                        "'text.format.schema' is required and must be an object.",
                        "text.format.schema",
                    )
                })?;
            let mut json_schema = Map::new();
            json_schema.insert("name".into(), json!(name));
            if let Some(d) = format.get("description").filter(|d| !d.is_null()) {
                json_schema.insert("description".into(), d.clone());
            }
            json_schema.insert("schema".into(), schema.clone());
            if let Some(strict) = format.get("strict").filter(|s| !s.is_null()) {
                json_schema.insert("strict".into(), strict.clone());
            }
            Ok(Some(
                json!({"type": "json_schema", "json_schema": json_schema}),
            ))
        }
        _ => Err(invalid(
            "'text.format.type' must be 'text', 'json_schema' or 'json_object'.",
            "text.format.type",
        )),
    }
}

// ---- usage --------------------------------------------------------------------------------

/// A Response's `usage`: input tokens include the cached ones, output tokens the reasoning
/// ones.
#[derive(Debug, Default, Deserialize)]
struct ResponsesUsage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
    #[serde(default)]
    input_tokens_details: Option<CachedDetails>,
    #[serde(default)]
    output_tokens_details: Option<ReasoningDetails>,
}

impl From<ResponsesUsage> for Usage {
    fn from(u: ResponsesUsage) -> Self {
        Usage::detailed(
            u.input_tokens,
            u.output_tokens,
            u.input_tokens_details.and_then(|d| d.cached_tokens),
            u.output_tokens_details.and_then(|d| d.reasoning_tokens),
        )
    }
}

#[derive(Debug, Serialize)]
struct UsageOut {
    input_tokens: u64,
    input_tokens_details: CachedOut,
    output_tokens: u64,
    output_tokens_details: ReasoningOut,
    total_tokens: u64,
}

#[derive(Debug, Serialize)]
struct CachedOut {
    cached_tokens: u64,
}

#[derive(Debug, Serialize)]
struct ReasoningOut {
    reasoning_tokens: u64,
}

fn usage_json(usage: &Usage) -> UsageOut {
    UsageOut {
        input_tokens: usage.prompt_tokens,
        input_tokens_details: CachedOut {
            cached_tokens: usage.cached_read_tokens,
        },
        output_tokens: usage.completion_tokens,
        output_tokens_details: ReasoningOut {
            reasoning_tokens: usage.reasoning_tokens,
        },
        total_tokens: usage.prompt_tokens + usage.completion_tokens,
    }
}

fn read_usage(value: &[u8]) -> Option<Usage> {
    let mut parser = serde_json::Deserializer::from_slice(value);
    Option::<ResponsesUsage>::deserialize(&mut parser)
        .ok()
        .flatten()
        .map(Usage::from)
}

/// Reads the top-level `usage` of a Response object (a native, non-streamed answer): only
/// that value is parsed.
pub fn usage_of_response(body: &[u8]) -> Option<Usage> {
    read_usage(top_level_value(body, b"usage")?)
}

/// Reads a native Responses stream as its events pass: the usage of the closing
/// `response.completed` / `response.incomplete` / `response.failed` (its `response.usage`),
/// the response's id (from `response.created`) and the last sequence number, so that a
/// stream broken off upstream can be closed with [`failed_event`] in the same numbering.
#[derive(Debug, Default)]
pub struct NativeUsage {
    response_id: Option<String>,
    last_sequence_number: Option<u64>,
}

impl NativeUsage {
    /// The usage after this event: `Some` on the closing events that carry it. `name` is the
    /// SSE event name; empty when the stream sent none (the JSON's `type` is read then).
    pub fn on_event(&mut self, name: &str, data: &str) -> Option<Usage> {
        let bytes = data.as_bytes();
        if let Some(n) = top_level_value(bytes, b"sequence_number").and_then(|v| {
            let mut parser = serde_json::Deserializer::from_slice(v);
            u64::deserialize(&mut parser).ok()
        }) {
            self.last_sequence_number = Some(n);
        }
        let owned;
        let name = if name.is_empty() {
            let value = top_level_value(bytes, b"type")?;
            let mut parser = serde_json::Deserializer::from_slice(value);
            owned = String::deserialize(&mut parser).ok()?;
            owned.as_str()
        } else {
            name
        };
        match name {
            "response.created" => {
                let response = top_level_value(bytes, b"response")?;
                let id = top_level_value(response, b"id")?;
                let mut parser = serde_json::Deserializer::from_slice(id);
                self.response_id = String::deserialize(&mut parser).ok();
                None
            }
            "response.completed" | "response.incomplete" | "response.failed" => {
                let response = top_level_value(bytes, b"response")?;
                read_usage(top_level_value(response, b"usage")?)
            }
            _ => None,
        }
    }

    /// The native response's id, once `response.created` passed.
    pub fn response_id(&self) -> Option<&str> {
        self.response_id.as_deref()
    }

    /// The sequence number for an event appended after those seen.
    pub fn next_sequence_number(&self) -> u64 {
        self.last_sequence_number.map_or(0, |n| n + 1)
    }
}

// ---- answer: OpenAI chat -> Response ------------------------------------------------------

/// One item of a Response's `output`.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum OutputItem {
    Reasoning {
        id: String,
        summary: Vec<SummaryText>,
    },
    Message {
        id: String,
        status: &'static str,
        role: &'static str,
        content: Vec<OutputText>,
    },
    FunctionCall {
        id: String,
        status: &'static str,
        call_id: String,
        name: String,
        arguments: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        namespace: Option<String>,
    },
    CustomToolCall {
        id: String,
        status: &'static str,
        call_id: String,
        name: String,
        input: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        namespace: Option<String>,
    },
}

#[derive(Debug, Clone, Serialize)]
struct SummaryText {
    #[serde(rename = "type")]
    kind: &'static str,
    text: String,
}

impl SummaryText {
    fn new(text: String) -> Self {
        SummaryText {
            kind: "summary_text",
            text,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
struct OutputText {
    #[serde(rename = "type")]
    kind: &'static str,
    text: String,
    annotations: [(); 0],
}

impl OutputText {
    fn new(text: String) -> Self {
        OutputText {
            kind: "output_text",
            text,
            annotations: [],
        }
    }
}

/// A custom tool's input out of the arguments of the function it became: the `input`
/// string (or the one string argument the model named otherwise); the arguments as they
/// are when they are not such an object.
fn custom_input(arguments: &str) -> String {
    if let Ok(Value::Object(mut args)) = serde_json::from_str::<Value>(arguments) {
        if let Some(Value::String(input)) = args.remove("input") {
            return input;
        }
        if args.len() == 1
            && let Some((_, Value::String(input))) = args.into_iter().next()
        {
            return input;
        }
    }
    arguments.to_string()
}

/// The output item of one tool call: a `function_call`, or a `custom_tool_call` when the
/// function stands for a custom tool.
fn tool_item(
    context: &ResponseContext,
    chat_name: String,
    call_id: String,
    arguments: String,
    status: &'static str,
) -> OutputItem {
    let (name, namespace, custom) = match context.bridged.get(&chat_name) {
        Some(t) => (t.name.clone(), t.namespace.clone(), t.custom),
        None => (chat_name, None, false),
    };
    if custom {
        OutputItem::CustomToolCall {
            id: new_id("ctc_"),
            status,
            call_id,
            name,
            input: custom_input(&arguments),
            namespace,
        }
    } else {
        OutputItem::FunctionCall {
            id: new_id("fc_"),
            status,
            call_id,
            name,
            arguments: if arguments.trim().is_empty() {
                "{}".to_string()
            } else {
                arguments
            },
            namespace,
        }
    }
}

/// A Response's status and `incomplete_details.reason` for a chat `finish_reason`.
fn status_of(finish_reason: Option<&str>) -> (&'static str, Option<&'static str>) {
    match finish_reason {
        Some("length") => ("incomplete", Some("max_output_tokens")),
        Some("content_filter") => ("incomplete", Some("content_filter")),
        _ => ("completed", None),
    }
}

/// The reasoning text of a message or delta, under either name.
fn reasoning_text(content: Option<String>, other: Option<Value>) -> Option<String> {
    if let Some(text) = content.filter(|r| !r.is_empty()) {
        return Some(text);
    }
    match other {
        Some(Value::String(r)) if !r.is_empty() => Some(r),
        _ => None,
    }
}

/// An OpenAI chat answer as a Response object, with its usage. `Err` says what in the
/// answer could not be read.
pub fn from_chat_answer(
    answer: &[u8],
    context: &ResponseContext,
) -> Result<(Bytes, Option<Usage>), String> {
    let answer: ChatAnswer = serde_json::from_slice(answer)
        .map_err(|e| format!("the upstream answer could not be read: {e}"))?;
    let usage = answer.usage.map(Usage::from);
    let (message, finish) = match answer.choices.into_iter().next() {
        Some(c) => (c.message, c.finish_reason),
        None => (AnswerMessage::default(), None),
    };
    let (status, incomplete) = status_of(finish.as_deref());
    let item_status = if incomplete.is_some() {
        "incomplete"
    } else {
        "completed"
    };
    let mut output = Vec::new();
    if let Some(reasoning) = reasoning_text(message.reasoning_content, message.reasoning) {
        output.push(OutputItem::Reasoning {
            id: new_id("rs_"),
            summary: vec![SummaryText::new(reasoning)],
        });
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
        output.push(OutputItem::Message {
            id: new_id("msg_"),
            status: item_status,
            role: "assistant",
            content: vec![OutputText::new(text)],
        });
    }
    for call in message.tool_calls.unwrap_or_default() {
        let call_id = call.id.unwrap_or_else(|| new_id("call_"));
        output.push(tool_item(
            context,
            call.function.name,
            call_id,
            call.function.arguments,
            item_status,
        ));
    }
    let body = context.response_json(ResponseState {
        status,
        output: &output,
        usage: usage.as_ref(),
        incomplete,
        error: None,
    });
    Ok((Bytes::from(body), usage))
}

// ---- stream: OpenAI chunks -> Responses events -------------------------------------------

/// One event of the Responses stream other than the `response.*` ones: the fields each
/// kind has (the others left out).
#[derive(Debug, Default, Serialize)]
struct Event<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    sequence_number: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    output_index: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    item_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_index: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    summary_index: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    item: Option<&'a OutputItem>,
    #[serde(skip_serializing_if = "Option::is_none")]
    part: Option<Part<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    delta: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    arguments: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    input: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    logprobs: Option<[(); 0]>,
}

/// A content part (`output_text`) or summary part (`summary_text`) in its events.
#[derive(Debug, Serialize)]
struct Part<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    text: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    annotations: Option<[(); 0]>,
}

impl<'a> Part<'a> {
    fn output_text(text: &'a str) -> Self {
        Part {
            kind: "output_text",
            text,
            annotations: Some([]),
        }
    }

    fn summary_text(text: &'a str) -> Self {
        Part {
            kind: "summary_text",
            text,
            annotations: None,
        }
    }
}

/// The reasoning or message item being streamed.
#[derive(Debug)]
struct OpenText {
    reasoning: bool,
    id: String,
    output_index: usize,
    text: String,
}

/// A tool call being streamed.
#[derive(Debug)]
struct OpenCall {
    /// Its index among the chat tool calls.
    chat_index: u64,
    call_id: Option<String>,
    chat_name: String,
    arguments: String,
    /// Set once announced (`response.output_item.added`, when its name is known): its
    /// output index and the item as added.
    announced: Option<(usize, OutputItem)>,
}

/// Turns the chunks of an OpenAI chat stream into the events of a Responses stream:
/// `response.created` and `response.in_progress`; per output item (reasoning, message, tool
/// call) `response.output_item.added`, its parts and deltas, `response.output_item.done`;
/// then `response.completed` (or `response.incomplete`) with the whole Response, output and
/// usage. Every event carries an increasing `sequence_number` from 0.
///
/// Tool calls stay open until the stream ends or text follows them, so calls whose deltas
/// interleave are still told apart; a custom tool's input is sent in one delta when its call
/// closes (its deltas are fragments of the JSON around the input).
#[derive(Debug)]
pub struct ChunksToEvents {
    context: ResponseContext,
    sequence: u64,
    started: bool,
    ended: bool,
    /// Closed items, in output order.
    done: Vec<OutputItem>,
    text: Option<OpenText>,
    calls: Vec<OpenCall>,
    /// The output index of the next item.
    next_index: usize,
    finish: Option<String>,
    usage: Option<Usage>,
}

impl ChunksToEvents {
    pub fn new(context: ResponseContext) -> Self {
        ChunksToEvents {
            context,
            sequence: 0,
            started: false,
            ended: false,
            done: Vec::new(),
            text: None,
            calls: Vec::new(),
            next_index: 0,
            finish: None,
            usage: None,
        }
    }

    /// The request's context (the response id, for storing the answer).
    pub fn context(&self) -> &ResponseContext {
        &self.context
    }

    fn next_sequence(&mut self) -> u64 {
        let n = self.sequence;
        self.sequence += 1;
        n
    }

    fn emit(&mut self, out: &mut Vec<StreamChunk>, mut event: Event<'_>) {
        event.sequence_number = self.next_sequence();
        out.push(StreamChunk {
            data: frame(event.kind, &json_bytes(&event)),
            usage: None,
            usage_only: false,
        });
    }

    fn emit_response(
        &mut self,
        out: &mut Vec<StreamChunk>,
        kind: &str,
        state: ResponseState<'_>,
        usage: Option<Usage>,
    ) {
        let n = self.next_sequence();
        out.push(StreamChunk {
            data: self.context.response_event(kind, n, state),
            usage,
            usage_only: false,
        });
    }

    fn start(&mut self, out: &mut Vec<StreamChunk>) {
        if self.started {
            return;
        }
        self.started = true;
        self.emit_response(out, "response.created", ResponseState::in_progress(), None);
        self.emit_response(
            out,
            "response.in_progress",
            ResponseState::in_progress(),
            None,
        );
    }

    /// Opens a reasoning or message item unless that kind is open; closes what else is.
    fn open_text(&mut self, reasoning: bool, out: &mut Vec<StreamChunk>) {
        if self.text.as_ref().is_some_and(|t| t.reasoning == reasoning) {
            return;
        }
        self.close_all("completed", out);
        let output_index = self.next_index;
        self.next_index += 1;
        let open = OpenText {
            reasoning,
            id: new_id(if reasoning { "rs_" } else { "msg_" }),
            output_index,
            text: String::new(),
        };
        let item = if reasoning {
            OutputItem::Reasoning {
                id: open.id.clone(),
                summary: Vec::new(),
            }
        } else {
            OutputItem::Message {
                id: open.id.clone(),
                status: "in_progress",
                role: "assistant",
                content: Vec::new(),
            }
        };
        self.emit(
            out,
            Event {
                kind: "response.output_item.added",
                output_index: Some(output_index),
                item: Some(&item),
                ..Event::default()
            },
        );
        let (kind, part, content_index, summary_index) = if reasoning {
            (
                "response.reasoning_summary_part.added",
                Part::summary_text(""),
                None,
                Some(0),
            )
        } else {
            (
                "response.content_part.added",
                Part::output_text(""),
                Some(0),
                None,
            )
        };
        self.emit(
            out,
            Event {
                kind,
                output_index: Some(output_index),
                item_id: Some(&open.id),
                content_index,
                summary_index,
                part: Some(part),
                ..Event::default()
            },
        );
        self.text = Some(open);
    }

    fn text_delta(&mut self, delta: &str, out: &mut Vec<StreamChunk>) {
        let Some(open) = self.text.take() else {
            return;
        };
        let event = if open.reasoning {
            Event {
                kind: "response.reasoning_summary_text.delta",
                output_index: Some(open.output_index),
                item_id: Some(&open.id),
                summary_index: Some(0),
                delta: Some(delta),
                ..Event::default()
            }
        } else {
            Event {
                kind: "response.output_text.delta",
                output_index: Some(open.output_index),
                item_id: Some(&open.id),
                content_index: Some(0),
                delta: Some(delta),
                logprobs: Some([]),
                ..Event::default()
            }
        };
        self.emit(out, event);
        let mut open = open;
        open.text.push_str(delta);
        self.text = Some(open);
    }

    fn close_text(&mut self, status: &'static str, out: &mut Vec<StreamChunk>) {
        let Some(open) = self.text.take() else {
            return;
        };
        let index = Some(open.output_index);
        let id = Some(open.id.as_str());
        let text = open.text.as_str();
        if open.reasoning {
            self.emit(
                out,
                Event {
                    kind: "response.reasoning_summary_text.done",
                    output_index: index,
                    item_id: id,
                    summary_index: Some(0),
                    text: Some(text),
                    ..Event::default()
                },
            );
            self.emit(
                out,
                Event {
                    kind: "response.reasoning_summary_part.done",
                    output_index: index,
                    item_id: id,
                    summary_index: Some(0),
                    part: Some(Part::summary_text(text)),
                    ..Event::default()
                },
            );
        } else {
            self.emit(
                out,
                Event {
                    kind: "response.output_text.done",
                    output_index: index,
                    item_id: id,
                    content_index: Some(0),
                    text: Some(text),
                    logprobs: Some([]),
                    ..Event::default()
                },
            );
            self.emit(
                out,
                Event {
                    kind: "response.content_part.done",
                    output_index: index,
                    item_id: id,
                    content_index: Some(0),
                    part: Some(Part::output_text(text)),
                    ..Event::default()
                },
            );
        }
        let item = if open.reasoning {
            OutputItem::Reasoning {
                id: open.id,
                summary: vec![SummaryText::new(open.text)],
            }
        } else {
            OutputItem::Message {
                id: open.id,
                status,
                role: "assistant",
                content: vec![OutputText::new(open.text)],
            }
        };
        self.emit(
            out,
            Event {
                kind: "response.output_item.done",
                output_index: index,
                item: Some(&item),
                ..Event::default()
            },
        );
        self.done.push(item);
    }

    /// Announces a tool call (`response.output_item.added`, and the arguments so far).
    fn announce(&mut self, position: usize, out: &mut Vec<StreamChunk>) {
        let Some(call) = self.calls.get_mut(position) else {
            return;
        };
        if call.announced.is_some() {
            return;
        }
        let call_id = call.call_id.get_or_insert_with(|| new_id("call_")).clone();
        let item = tool_item(
            &self.context,
            call.chat_name.clone(),
            call_id,
            String::new(),
            "in_progress",
        );
        // `tool_item` writes `{}` for empty arguments; an item being added has none yet.
        let item = match item {
            OutputItem::FunctionCall {
                id,
                status,
                call_id,
                name,
                namespace,
                ..
            } => OutputItem::FunctionCall {
                id,
                status,
                call_id,
                name,
                arguments: String::new(),
                namespace,
            },
            other => other,
        };
        let output_index = self.next_index;
        self.next_index += 1;
        self.emit(
            out,
            Event {
                kind: "response.output_item.added",
                output_index: Some(output_index),
                item: Some(&item),
                ..Event::default()
            },
        );
        let pending = match (&item, self.calls.get(position)) {
            (OutputItem::FunctionCall { id, .. }, Some(call)) if !call.arguments.is_empty() => {
                Some((id.clone(), call.arguments.clone()))
            }
            _ => None,
        };
        if let Some((id, arguments)) = pending {
            self.emit(
                out,
                Event {
                    kind: "response.function_call_arguments.delta",
                    output_index: Some(output_index),
                    item_id: Some(&id),
                    delta: Some(&arguments),
                    ..Event::default()
                },
            );
        }
        if let Some(call) = self.calls.get_mut(position) {
            call.announced = Some((output_index, item));
        }
    }

    fn tool_delta(&mut self, delta: ToolDelta, out: &mut Vec<StreamChunk>) {
        let chat_index = delta.index.unwrap_or(0);
        let position = match self.calls.iter().position(|c| c.chat_index == chat_index) {
            Some(p) => p,
            None => {
                self.close_text("completed", out);
                self.calls.push(OpenCall {
                    chat_index,
                    call_id: None,
                    chat_name: String::new(),
                    arguments: String::new(),
                    announced: None,
                });
                self.calls.len() - 1
            }
        };
        let (name, arguments) = match delta.function {
            Some(f) => (f.name, f.arguments),
            None => (None, None),
        };
        let Some(call) = self.calls.get_mut(position) else {
            return;
        };
        if let Some(id) = delta.id.filter(|id| !id.is_empty())
            && call.call_id.is_none()
        {
            call.call_id = Some(id);
        }
        if call.announced.is_none()
            && let Some(name) = name.filter(|n| !n.is_empty())
        {
            call.chat_name.push_str(&name);
        }
        let arguments = arguments.filter(|a| !a.is_empty());
        if let Some(a) = &arguments {
            call.arguments.push_str(a);
        }
        if call.announced.is_none() {
            if !call.chat_name.is_empty() {
                // The arguments so far go out with the announcement.
                self.announce(position, out);
            }
            return;
        }
        if let (Some(arguments), Some(call)) = (arguments, self.calls.get(position))
            && let Some((index, OutputItem::FunctionCall { id, .. })) = &call.announced
        {
            let (index, id) = (*index, id.clone());
            self.emit(
                out,
                Event {
                    kind: "response.function_call_arguments.delta",
                    output_index: Some(index),
                    item_id: Some(&id),
                    delta: Some(&arguments),
                    ..Event::default()
                },
            );
        }
    }

    fn close_calls(&mut self, status: &'static str, out: &mut Vec<StreamChunk>) {
        // Announced calls first (in output order), then any whose name never came.
        for position in 0..self.calls.len() {
            if self.calls[position].announced.is_none() {
                self.announce(position, out);
            }
        }
        let calls = std::mem::take(&mut self.calls);
        let mut calls: Vec<(usize, OutputItem, String)> = calls
            .into_iter()
            .filter_map(|c| c.announced.map(|(i, item)| (i, item, c.arguments)))
            .collect();
        calls.sort_by_key(|(i, _, _)| *i);
        for (index, item, arguments) in calls {
            let item = match item {
                OutputItem::FunctionCall {
                    id,
                    call_id,
                    name,
                    namespace,
                    ..
                } => {
                    let arguments = if arguments.trim().is_empty() {
                        "{}".to_string()
                    } else {
                        arguments
                    };
                    self.emit(
                        out,
                        Event {
                            kind: "response.function_call_arguments.done",
                            output_index: Some(index),
                            item_id: Some(&id),
                            name: Some(&name),
                            arguments: Some(&arguments),
                            ..Event::default()
                        },
                    );
                    OutputItem::FunctionCall {
                        id,
                        status,
                        call_id,
                        name,
                        arguments,
                        namespace,
                    }
                }
                OutputItem::CustomToolCall {
                    id,
                    call_id,
                    name,
                    namespace,
                    ..
                } => {
                    let input = custom_input(&arguments);
                    if !input.is_empty() {
                        self.emit(
                            out,
                            Event {
                                kind: "response.custom_tool_call_input.delta",
                                output_index: Some(index),
                                item_id: Some(&id),
                                delta: Some(&input),
                                ..Event::default()
                            },
                        );
                    }
                    self.emit(
                        out,
                        Event {
                            kind: "response.custom_tool_call_input.done",
                            output_index: Some(index),
                            item_id: Some(&id),
                            input: Some(&input),
                            ..Event::default()
                        },
                    );
                    OutputItem::CustomToolCall {
                        id,
                        status,
                        call_id,
                        name,
                        input,
                        namespace,
                    }
                }
                other => other,
            };
            self.emit(
                out,
                Event {
                    kind: "response.output_item.done",
                    output_index: Some(index),
                    item: Some(&item),
                    ..Event::default()
                },
            );
            self.done.push(item);
        }
    }

    fn close_all(&mut self, status: &'static str, out: &mut Vec<StreamChunk>) {
        self.close_text(status, out);
        self.close_calls(status, out);
    }

    /// The events for one chunk's JSON. A chunk that is not JSON fails the stream.
    pub fn on_chunk(&mut self, data: &[u8]) -> Result<Vec<StreamChunk>, String> {
        let mut out = Vec::new();
        if data.is_empty() || self.ended {
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
        if let Some(thought) = reasoning_text(delta.reasoning_content, delta.reasoning) {
            self.open_text(true, &mut out);
            self.text_delta(&thought, &mut out);
        }
        for text in [delta.content, delta.refusal].into_iter().flatten() {
            if !text.is_empty() {
                self.open_text(false, &mut out);
                self.text_delta(&text, &mut out);
            }
        }
        for call in delta.tool_calls.unwrap_or_default() {
            self.tool_delta(call, &mut out);
        }
        if let Some(reason) = choice.finish_reason {
            self.finish = Some(reason);
        }
        Ok(out)
    }

    /// The closing events, once the upstream stream ended: the open items closed, then
    /// `response.completed` (`response.incomplete` when the answer was cut at its token limit
    /// or filtered) carrying the whole Response; that last chunk carries the usage.
    pub fn finish(&mut self) -> Vec<StreamChunk> {
        let mut out = Vec::new();
        if self.ended {
            return out;
        }
        self.start(&mut out);
        let (status, incomplete) = status_of(self.finish.as_deref());
        let item_status = if incomplete.is_some() {
            "incomplete"
        } else {
            "completed"
        };
        self.close_all(item_status, &mut out);
        self.ended = true;
        let kind = if incomplete.is_some() {
            "response.incomplete"
        } else {
            "response.completed"
        };
        let usage = self.usage;
        let n = self.next_sequence();
        out.push(StreamChunk {
            data: self.context.response_event(
                kind,
                n,
                ResponseState {
                    status,
                    output: &self.done,
                    usage: usage.as_ref(),
                    incomplete,
                    error: None,
                },
            ),
            usage,
            usage_only: false,
        });
        out
    }

    /// The closing event of a stream that broke off (the upstream failed or sent something
    /// unreadable): `response.failed` with `error: {code, message}` and the items finished so
    /// far (and `response.created` / `response.in_progress` first if nothing was sent yet).
    /// `code` is one of OpenAI's error codes, see [`error_code`]. Nothing follows it.
    pub fn fail(&mut self, code: &str, message: &str) -> Vec<StreamChunk> {
        let mut out = Vec::new();
        if self.ended {
            return out;
        }
        self.start(&mut out);
        self.ended = true;
        let usage = self.usage;
        let n = self.next_sequence();
        out.push(StreamChunk {
            data: self.context.response_event(
                "response.failed",
                n,
                ResponseState {
                    status: "failed",
                    output: &self.done,
                    usage: usage.as_ref(),
                    incomplete: None,
                    error: Some(ErrorOut { code, message }),
                },
            ),
            usage,
            usage_only: false,
        });
        out
    }
}

/// A `response.failed` event for a stream the gateway did not translate (a native one that
/// broke off): the Response of `context` (its `id` replaced by the native one when known)
/// with `status: "failed"`, no output and `error: {code, message}`, numbered
/// `sequence_number` (see [`NativeUsage::next_sequence_number`]).
pub fn failed_event(
    context: &ResponseContext,
    response_id: Option<&str>,
    sequence_number: u64,
    code: &str,
    message: &str,
) -> Bytes {
    let mut context = context.clone();
    if let Some(id) = response_id {
        context.id = id.to_string();
    }
    context.response_event(
        "response.failed",
        sequence_number,
        ResponseState {
            status: "failed",
            output: &[],
            usage: None,
            incomplete: None,
            error: Some(ErrorOut { code, message }),
        },
    )
}

/// The `error.code` of a failed Response for a gateway error: OpenAI's codes that clients
/// act on (Codex retries `rate_limit_exceeded` and `server_error`, and reports
/// `invalid_prompt`).
pub fn error_code(error: &ApiError) -> &'static str {
    match error.status().as_u16() {
        429 => "rate_limit_exceeded",
        400 | 404 | 413 | 422 => "invalid_prompt",
        _ => "server_error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn bridge(v: Value) -> ChatBridge {
        to_chat_request(&obj(v)).unwrap()
    }

    fn refused(v: Value) -> ApiError {
        to_chat_request(&obj(v)).unwrap_err()
    }

    fn events_of(chunks: &[StreamChunk]) -> Vec<Value> {
        chunks
            .iter()
            .map(|c| {
                let text = std::str::from_utf8(&c.data).unwrap();
                let (head, data) = text.split_once("\ndata: ").unwrap();
                assert!(text.ends_with("\n\n"));
                let value: Value = serde_json::from_str(data.trim_end()).unwrap();
                assert_eq!(head, format!("event: {}", value["type"].as_str().unwrap()));
                value
            })
            .collect()
    }

    fn codex_tools() -> Value {
        json!([
            {"type": "function", "name": "shell", "description": "Runs a command.",
             "parameters": {"type": "object", "properties": {"command": {"type": "array", "items": {"type": "string"}}}, "required": ["command"]},
             "strict": false},
            {"type": "custom", "name": "apply_patch", "description": "Edits files.",
             "format": {"type": "grammar", "syntax": "lark", "definition": "start: begin_patch hunk+ end_patch"}},
            {"type": "web_search"},
            {"type": "local_shell"},
            {"type": "namespace", "name": "crm", "description": "CRM tools",
             "tools": [{"type": "function", "name": "lookup", "parameters": {"type": "object"}}]}
        ])
    }

    #[test]
    fn a_codex_request_becomes_a_chat_request_with_one_system_message_and_the_turns() {
        let chat = bridge(json!({
            "model": "local-coder",
            "instructions": "You are Codex.",
            "stream": true,
            "store": false,
            "include": ["reasoning.encrypted_content"],
            "prompt_cache_key": "conv-1",
            "metadata": {"a": "b"},
            "service_tier": "auto",
            "truncation": "auto",
            "previous_response_id": "resp_old",
            "input": [
                {"type": "message", "role": "developer", "id": "msg_d", "content": [{"type": "input_text", "text": "<permissions>"}]},
                {"type": "message", "role": "user", "id": "msg_u", "content": [
                    {"type": "input_text", "text": "<environment_context>"},
                    {"type": "input_text", "text": "fix the bug"}
                ]},
                {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "Looking"}], "encrypted_content": "gAAAA..."},
                {"type": "message", "role": "assistant", "id": "msg_a", "content": [{"type": "output_text", "text": "On it."}]}
            ]
        }));
        assert_eq!(
            Value::Object(chat.body),
            json!({
                "model": "local-coder",
                "messages": [
                    {"role": "system", "content": "You are Codex.\n\n<permissions>"},
                    {"role": "user", "content": "<environment_context>\nfix the bug"},
                    {"role": "assistant", "content": "On it."}
                ],
                "stream": true,
                "stream_options": {"include_usage": true}
            })
        );
        assert_eq!(chat.context.model, "local-coder");
        assert!(chat.context.id.starts_with("resp_"));
    }

    #[test]
    fn a_string_input_is_one_user_message_and_settings_carry_over() {
        let chat = bridge(json!({
            "model": "m", "input": "hi", "max_output_tokens": 1,
            "temperature": 0.2, "top_p": 0.9, "user": "u-1",
            "reasoning": {"effort": "high", "summary": "auto"},
            "text": {"verbosity": "low", "format": {"type": "json_schema", "name": "answer",
                "schema": {"type": "object", "properties": {"x": {"type": "integer"}}}, "strict": true}}
        }));
        assert_eq!(
            Value::Object(chat.body),
            json!({
                "model": "m",
                "messages": [{"role": "user", "content": "hi"}],
                "max_tokens": 1,
                "temperature": 0.2,
                "top_p": 0.9,
                "user": "u-1",
                "reasoning_effort": "high",
                "response_format": {"type": "json_schema", "json_schema": {"name": "answer",
                    "schema": {"type": "object", "properties": {"x": {"type": "integer"}}}, "strict": true}}
            })
        );
        let json_object = bridge(
            json!({"model": "m", "input": "hi", "text": {"format": {"type": "json_object"}}}),
        );
        assert_eq!(
            json_object.body["response_format"],
            json!({"type": "json_object"})
        );
        let plain =
            bridge(json!({"model": "m", "input": "hi", "text": {"format": {"type": "text"}}}));
        assert!(!plain.body.contains_key("response_format"));
    }

    #[test]
    fn function_calls_fold_into_the_assistant_turn_and_their_outputs_become_tool_messages() {
        let chat = bridge(json!({
            "model": "m",
            "input": [
                {"role": "user", "content": "list files"},
                {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Listing."}]},
                {"type": "function_call", "call_id": "call_1", "name": "shell", "arguments": "{\"command\":[\"ls\"]}"},
                {"type": "function_call", "call_id": "call_2", "name": "shell", "arguments": ""},
                {"type": "function_call_output", "call_id": "call_1", "output": "a.txt"},
                {"type": "function_call_output", "call_id": "call_2", "output": [
                    {"type": "input_text", "text": "line 1"},
                    {"type": "input_text", "text": "line 2"},
                    {"type": "input_image", "image_url": "data:image/png;base64,AAAA"}
                ]},
                {"type": "function_call", "call_id": "call_3", "name": "crm__lookup", "arguments": "{}"}
            ]
        }));
        assert_eq!(
            chat.body["messages"],
            json!([
                {"role": "user", "content": "list files"},
                {"role": "assistant", "content": "Listing.", "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "shell", "arguments": "{\"command\":[\"ls\"]}"}},
                    {"id": "call_2", "type": "function", "function": {"name": "shell", "arguments": "{}"}}
                ]},
                {"role": "tool", "tool_call_id": "call_1", "content": "a.txt"},
                {"role": "tool", "tool_call_id": "call_2", "content": "line 1\nline 2"},
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_3", "type": "function", "function": {"name": "crm__lookup", "arguments": "{}"}}
                ]}
            ])
        );
    }

    #[test]
    fn custom_tools_become_string_functions_and_hosted_tools_are_left_out() {
        let chat = bridge(json!({
            "model": "m", "tools": codex_tools(),
            "tool_choice": "auto", "parallel_tool_calls": false,
            "input": [
                {"role": "user", "content": "patch it"},
                {"type": "custom_tool_call", "call_id": "call_p", "name": "apply_patch", "input": "*** Begin Patch\n*** End Patch"},
                {"type": "custom_tool_call_output", "call_id": "call_p", "output": "Done!"},
                {"type": "web_search_call", "id": "ws_1", "status": "completed"}
            ]
        }));
        let tools = chat.body["tools"].as_array().unwrap();
        assert_eq!(tools.len(), 3);
        assert_eq!(
            tools[0],
            json!({"type": "function", "function": {"name": "shell", "description": "Runs a command.",
                "parameters": {"type": "object", "properties": {"command": {"type": "array", "items": {"type": "string"}}}, "required": ["command"]}}})
        );
        let patch = &tools[1]["function"];
        assert_eq!(patch["name"], "apply_patch");
        assert_eq!(
            patch["parameters"],
            json!({"type": "object", "properties": {"input": {"type": "string"}}, "required": ["input"]})
        );
        let description = patch["description"].as_str().unwrap();
        assert!(description.starts_with("Edits files.\n\n"));
        assert!(description.contains("lark grammar"));
        assert!(description.contains("start: begin_patch hunk+ end_patch"));
        assert_eq!(tools[2]["function"]["name"], "crm__lookup");
        assert_eq!(chat.body["tool_choice"], "auto");
        assert_eq!(chat.body["parallel_tool_calls"], false);
        assert_eq!(
            chat.body["messages"],
            json!([
                {"role": "user", "content": "patch it"},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "call_p", "type": "function",
                    "function": {"name": "apply_patch", "arguments": "{\"input\":\"*** Begin Patch\\n*** End Patch\"}"}}]},
                {"role": "tool", "tool_call_id": "call_p", "content": "Done!"}
            ])
        );
        assert!(chat.context.is_custom_tool("apply_patch"));
        assert!(!chat.context.is_custom_tool("shell"));
        assert_eq!(
            chat.context.custom_tools().collect::<Vec<_>>(),
            ["apply_patch"]
        );
    }

    #[test]
    fn the_tools_of_an_additional_tools_item_become_chat_tools_and_their_calls_come_back() {
        // Codex's "Responses Lite" (gpt-5.6-* and later): no `tools`, the tools in the first
        // input item, grouped in namespaces.
        let chat = bridge(json!({
            "model": "m", "tool_choice": "auto", "parallel_tool_calls": false,
            "input": [
                {"type": "additional_tools", "id": "at_1", "role": "developer", "tools": [
                    {"type": "namespace", "name": "functions", "description": "", "tools": [
                        {"type": "custom", "name": "exec", "description": "Run JavaScript.",
                         "format": {"type": "grammar", "syntax": "lark", "definition": "start: SOURCE"}},
                        {"type": "function", "name": "wait", "parameters": {"type": "object", "properties": {}}, "strict": false}
                    ]},
                    {"type": "web_search"}
                ]},
                {"type": "message", "role": "developer", "id": "msg_d", "content": [{"type": "input_text", "text": "You are Codex."}]},
                {"type": "message", "role": "user", "id": "msg_u", "content": [{"type": "input_text", "text": "run it"}]}
            ]
        }));
        assert_eq!(
            chat.body["messages"],
            json!([
                {"role": "system", "content": "You are Codex."},
                {"role": "user", "content": "run it"}
            ])
        );
        let names: Vec<&str> = chat.body["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["function"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["functions__exec", "functions__wait"]);
        assert_eq!(
            chat.body["tools"][0]["function"]["parameters"],
            custom_parameters()
        );
        assert_eq!(chat.body["tool_choice"], "auto");
        assert_eq!(chat.body["parallel_tool_calls"], false);
        // The calls of those tools come back as the client named them.
        let answer = json!({"choices": [{"message": {"role": "assistant", "content": null, "tool_calls": [
            {"id": "call_x", "type": "function", "function": {"name": "functions__exec", "arguments": "{\"input\":\"1+1\"}"}},
            {"id": "call_w", "type": "function", "function": {"name": "functions__wait", "arguments": "{}"}}
        ]}, "finish_reason": "tool_calls"}]});
        let (body, _) = from_chat_answer(answer.to_string().as_bytes(), &chat.context).unwrap();
        let response: Value = serde_json::from_slice(&body).unwrap();
        let output = response["output"].as_array().unwrap();
        assert_eq!(output[0]["type"], "custom_tool_call");
        assert_eq!(output[0]["name"], "exec");
        assert_eq!(output[0]["namespace"], "functions");
        assert_eq!(output[0]["input"], "1+1");
        assert_eq!(output[1]["type"], "function_call");
        assert_eq!(output[1]["name"], "wait");
        assert_eq!(output[1]["namespace"], "functions");
        let bad = refused(json!({"model": "m", "input": [
            {"type": "additional_tools", "role": "developer", "tools": {"type": "function"}},
            {"role": "user", "content": "hi"}
        ]}));
        assert_eq!(bad.param.as_deref(), Some("input[0].tools"));
    }

    #[test]
    fn only_hosted_tools_leave_no_tools_and_no_tool_choice() {
        let chat = bridge(json!({"model": "m", "input": "hi",
            "tools": [{"type": "web_search"}, {"type": "file_search", "vector_store_ids": ["vs"]}],
            "tool_choice": "required", "parallel_tool_calls": true}));
        assert!(!chat.body.contains_key("tools"));
        assert!(!chat.body.contains_key("tool_choice"));
        assert!(!chat.body.contains_key("parallel_tool_calls"));
    }

    #[test]
    fn tool_choices_map_to_chat_choices() {
        let with = |choice: Value| {
            bridge(
                json!({"model": "m", "input": "hi", "tools": codex_tools(), "tool_choice": choice}),
            )
            .body["tool_choice"]
                .clone()
        };
        assert_eq!(with(json!("required")), json!("required"));
        assert_eq!(with(json!("none")), json!("none"));
        assert_eq!(
            with(json!({"type": "function", "name": "shell"})),
            json!({"type": "function", "function": {"name": "shell"}})
        );
        assert_eq!(
            with(json!({"type": "custom", "name": "apply_patch"})),
            json!({"type": "function", "function": {"name": "apply_patch"}})
        );
        let e = refused(json!({"model": "m", "input": "hi", "tools": codex_tools(),
            "tool_choice": {"type": "web_search_preview"}}));
        assert_eq!(e.param.as_deref(), Some("tool_choice.type"));
    }

    #[test]
    fn what_has_no_chat_form_is_refused_naming_the_field() {
        let param = |v: Value| refused(v).param.clone().unwrap();
        assert_eq!(
            param(
                json!({"model": "m", "input": [{"role": "user", "content": "a"}, {"type": "item_reference", "id": "msg_1"}]})
            ),
            "input[1].type"
        );
        assert_eq!(
            param(json!({"model": "m", "input": [{"type": "hologram"}]})),
            "input[0].type"
        );
        assert_eq!(
            param(json!({"model": "m", "input": [{"type": "local_shell_call", "call_id": "c"}]})),
            "input[0].type"
        );
        assert_eq!(
            param(
                json!({"model": "m", "input": [{"role": "user", "content": [{"type": "input_image", "file_id": "file-1"}]}]})
            ),
            "input[0].content[0].file_id"
        );
        assert_eq!(
            param(
                json!({"model": "m", "input": [{"role": "user", "content": [{"type": "input_file", "file_url": "https://x/a.pdf"}]}]})
            ),
            "input[0].content[0].file_url"
        );
        assert_eq!(
            param(
                json!({"model": "m", "input": [{"type": "function_call", "name": "f", "arguments": "{}"}]})
            ),
            "input[0].call_id"
        );
        assert_eq!(
            param(json!({"model": "m", "input": [{"role": "tool", "content": "x"}]})),
            "input[0].role"
        );
        assert_eq!(param(json!({"model": "m", "input": 5})), "input");
        assert_eq!(param(json!({"model": "m"})), "input");
        assert_eq!(
            param(json!({"model": "m", "input": "hi", "max_output_tokens": "many"})),
            "max_output_tokens"
        );
        assert_eq!(
            param(json!({"model": "m", "input": "hi", "text": {"format": {"type": "yaml"}}})),
            "text.format.type"
        );
        assert_eq!(
            param(json!({"model": "m", "input": "hi", "tools": [{"type": "function"}]})),
            "tools[0].name"
        );
    }

    #[test]
    fn images_and_files_become_chat_parts() {
        let chat = bridge(json!({"model": "m", "input": [{"role": "user", "content": [
            {"type": "input_text", "text": "what is this?"},
            {"type": "input_image", "image_url": "https://example.com/a.png", "detail": "high"},
            {"type": "input_file", "filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBE"}
        ]}]}));
        assert_eq!(
            chat.body["messages"][0]["content"],
            json!([
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.png", "detail": "high"}},
                {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBE", "filename": "a.pdf"}}
            ])
        );
    }

    fn context_of(v: Value) -> ResponseContext {
        bridge(v).context
    }

    #[test]
    fn a_chat_answer_becomes_a_response_with_reasoning_text_and_calls() {
        let ctx = context_of(
            json!({"model": "coder", "input": "hi", "tools": codex_tools(),
            "instructions": "Be brief.", "store": false, "max_output_tokens": 500}),
        );
        let answer = json!({
            "id": "chatcmpl-1", "object": "chat.completion",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                "role": "assistant", "content": "Patching.", "reasoning_content": "Need a patch.",
                "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "shell", "arguments": "{\"command\":[\"ls\"]}"}},
                    {"id": "call_2", "type": "function", "function": {"name": "apply_patch", "arguments": "{\"input\":\"*** Begin Patch\\n*** End Patch\"}"}},
                    {"id": "call_3", "type": "function", "function": {"name": "crm__lookup", "arguments": ""}}
                ]
            }}],
            "usage": {"prompt_tokens": 30, "completion_tokens": 12, "total_tokens": 42,
                "prompt_tokens_details": {"cached_tokens": 10}, "completion_tokens_details": {"reasoning_tokens": 4}}
        });
        let (body, usage) = from_chat_answer(answer.to_string().as_bytes(), &ctx).unwrap();
        let response: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(response["id"], json!(ctx.id));
        assert_eq!(response["object"], "response");
        assert_eq!(response["status"], "completed");
        assert_eq!(response["model"], "coder");
        assert_eq!(response["incomplete_details"], Value::Null);
        assert_eq!(response["error"], Value::Null);
        assert_eq!(response["instructions"], "Be brief.");
        assert_eq!(response["store"], false);
        assert_eq!(response["max_output_tokens"], 500);
        assert_eq!(response["tool_choice"], "auto");
        assert_eq!(response["parallel_tool_calls"], true);
        assert_eq!(response["tools"], codex_tools());
        assert_eq!(
            response["text"],
            json!({"format": {"type": "text"}, "verbosity": "medium"})
        );
        assert_eq!(
            response["reasoning"],
            json!({"effort": null, "summary": null})
        );
        assert_eq!(response["metadata"], json!({}));
        let output = response["output"].as_array().unwrap();
        assert_eq!(output.len(), 5);
        assert_eq!(output[0]["type"], "reasoning");
        assert!(output[0]["id"].as_str().unwrap().starts_with("rs_"));
        assert_eq!(
            output[0]["summary"],
            json!([{"type": "summary_text", "text": "Need a patch."}])
        );
        assert_eq!(output[1]["type"], "message");
        assert_eq!(output[1]["role"], "assistant");
        assert_eq!(output[1]["status"], "completed");
        assert_eq!(
            output[1]["content"],
            json!([{"type": "output_text", "text": "Patching.", "annotations": []}])
        );
        assert_eq!(output[2]["type"], "function_call");
        assert!(output[2]["id"].as_str().unwrap().starts_with("fc_"));
        assert_eq!(output[2]["call_id"], "call_1");
        assert_eq!(output[2]["name"], "shell");
        assert_eq!(output[2]["arguments"], "{\"command\":[\"ls\"]}");
        assert_eq!(output[2]["status"], "completed");
        assert_eq!(output[3]["type"], "custom_tool_call");
        assert_eq!(output[3]["call_id"], "call_2");
        assert_eq!(output[3]["name"], "apply_patch");
        assert_eq!(output[3]["input"], "*** Begin Patch\n*** End Patch");
        assert_eq!(output[4]["name"], "lookup");
        assert_eq!(output[4]["namespace"], "crm");
        assert_eq!(output[4]["arguments"], "{}");
        assert_eq!(
            response["usage"],
            json!({"input_tokens": 30, "input_tokens_details": {"cached_tokens": 10},
                "output_tokens": 12, "output_tokens_details": {"reasoning_tokens": 4}, "total_tokens": 42})
        );
        let usage = usage.unwrap();
        assert_eq!((usage.prompt_tokens, usage.completion_tokens), (30, 12));
        assert_eq!((usage.cached_read_tokens, usage.reasoning_tokens), (10, 4));
    }

    #[test]
    fn an_answer_cut_at_its_token_limit_is_an_incomplete_response() {
        let ctx = context_of(json!({"model": "m", "input": "hi", "max_output_tokens": 1}));
        let answer = json!({"choices": [{"finish_reason": "length", "message": {"content": "He"}}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}});
        let (body, _) = from_chat_answer(answer.to_string().as_bytes(), &ctx).unwrap();
        let response: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(response["status"], "incomplete");
        assert_eq!(
            response["incomplete_details"],
            json!({"reason": "max_output_tokens"})
        );
        assert_eq!(response["output"][0]["status"], "incomplete");
        assert_eq!(response["max_output_tokens"], 1);
        let filtered =
            json!({"choices": [{"finish_reason": "content_filter", "message": {"content": null}}]});
        let (body, usage) = from_chat_answer(filtered.to_string().as_bytes(), &ctx).unwrap();
        let response: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            response["incomplete_details"],
            json!({"reason": "content_filter"})
        );
        assert_eq!(response["output"], json!([]));
        assert_eq!(response["usage"], Value::Null);
        assert!(usage.is_none());
        assert!(from_chat_answer(b"not json", &ctx).is_err());
    }

    #[test]
    fn custom_tool_arguments_that_are_not_the_wrapper_pass_as_they_are() {
        assert_eq!(custom_input("{\"input\":\"x\"}"), "x");
        assert_eq!(custom_input("{\"patch\":\"y\"}"), "y");
        assert_eq!(custom_input("*** Begin Patch"), "*** Begin Patch");
        assert_eq!(custom_input("{\"a\":1,\"b\":2}"), "{\"a\":1,\"b\":2}");
    }

    fn kinds(events: &[Value]) -> Vec<&str> {
        events.iter().map(|e| e["type"].as_str().unwrap()).collect()
    }

    fn run(t: &mut ChunksToEvents, chunks: &[Value]) -> Vec<StreamChunk> {
        let mut out = Vec::new();
        for c in chunks {
            out.extend(t.on_chunk(c.to_string().as_bytes()).unwrap());
        }
        out.extend(t.finish());
        out
    }

    #[test]
    fn a_chat_stream_becomes_responses_events_item_by_item() {
        let ctx = context_of(
            json!({"model": "coder", "input": "hi", "stream": true, "tools": codex_tools()}),
        );
        let id = ctx.id.clone();
        let mut t = ChunksToEvents::new(ctx);
        let out = run(
            &mut t,
            &[
                json!({"choices": [{"index": 0, "delta": {"role": "assistant", "reasoning_content": "Hmm"}}]}),
                json!({"choices": [{"index": 0, "delta": {"content": "Hel"}}]}),
                json!({"choices": [{"index": 0, "delta": {"content": "lo"}}]}),
                json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "shell", "arguments": ""}}]}}]}),
                json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{\"command\":"}}]}}]}),
                json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "[\"ls\"]}"}}]}}]}),
                json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 1, "id": "call_2", "function": {"name": "apply_patch", "arguments": "{\"input\":\"*** Begin"}}]}}]}),
                json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 1, "function": {"arguments": " Patch\"}"}}]}}]}),
                json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}),
                json!({"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13}}),
            ],
        );
        let events = events_of(&out);
        assert_eq!(
            kinds(&events),
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.reasoning_summary_part.added",
                "response.reasoning_summary_text.delta",
                "response.reasoning_summary_text.done",
                "response.reasoning_summary_part.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.delta",
                "response.output_item.added",
                "response.function_call_arguments.done",
                "response.output_item.done",
                "response.custom_tool_call_input.delta",
                "response.custom_tool_call_input.done",
                "response.output_item.done",
                "response.completed",
            ]
        );
        for (n, e) in events.iter().enumerate() {
            assert_eq!(e["sequence_number"], json!(n));
        }
        assert_eq!(events[0]["response"]["status"], "in_progress");
        assert_eq!(events[0]["response"]["id"], json!(id));
        assert_eq!(events[0]["response"]["output"], json!([]));
        assert_eq!(events[1]["response"]["status"], "in_progress");
        let message_id = events[8]["item"]["id"].as_str().unwrap();
        assert_eq!(events[8]["output_index"], 1);
        assert_eq!(
            events[9]["part"],
            json!({"type": "output_text", "text": "", "annotations": []})
        );
        assert_eq!(events[10]["item_id"], message_id);
        assert_eq!(events[10]["output_index"], 1);
        assert_eq!(events[10]["content_index"], 0);
        assert_eq!(events[10]["delta"], "Hel");
        assert_eq!(events[12]["text"], "Hello");
        assert_eq!(events[15]["item"]["type"], "function_call");
        assert_eq!(events[15]["item"]["status"], "in_progress");
        assert_eq!(events[15]["item"]["arguments"], "");
        assert_eq!(events[15]["output_index"], 2);
        assert_eq!(events[16]["delta"], "{\"command\":");
        assert_eq!(events[18]["item"]["type"], "custom_tool_call");
        assert_eq!(events[18]["output_index"], 3);
        assert_eq!(events[19]["arguments"], "{\"command\":[\"ls\"]}");
        assert_eq!(events[21]["delta"], "*** Begin Patch");
        assert_eq!(events[22]["input"], "*** Begin Patch");
        assert_eq!(events[23]["item"]["input"], "*** Begin Patch");
        assert_eq!(events[23]["item"]["status"], "completed");
        let completed = &events[24]["response"];
        assert_eq!(completed["status"], "completed");
        assert_eq!(completed["id"], json!(id));
        let output = completed["output"].as_array().unwrap();
        assert_eq!(
            output
                .iter()
                .map(|i| i["type"].as_str().unwrap())
                .collect::<Vec<_>>(),
            ["reasoning", "message", "function_call", "custom_tool_call"]
        );
        assert_eq!(output[0]["summary"][0]["text"], "Hmm");
        assert_eq!(output[1]["content"][0]["text"], "Hello");
        assert_eq!(output[2]["call_id"], "call_1");
        assert_eq!(output[2]["arguments"], "{\"command\":[\"ls\"]}");
        assert_eq!(output[3]["call_id"], "call_2");
        assert_eq!(completed["usage"]["input_tokens"], 9);
        assert_eq!(completed["usage"]["output_tokens"], 4);
        assert_eq!(completed["usage"]["total_tokens"], 13);
        let usage = out.last().unwrap().usage.unwrap();
        assert_eq!((usage.prompt_tokens, usage.completion_tokens), (9, 4));
        assert!(out[..out.len() - 1].iter().all(|c| c.usage.is_none()));
    }

    #[test]
    fn a_stream_cut_at_its_token_limit_ends_incomplete() {
        let mut t = ChunksToEvents::new(context_of(
            json!({"model": "m", "input": "hi", "max_output_tokens": 1}),
        ));
        let out = run(
            &mut t,
            &[
                json!({"choices": [{"index": 0, "delta": {"content": "He"}, "finish_reason": "length"}],
                    "usage": {"prompt_tokens": 2, "completion_tokens": 1, "total_tokens": 3}}),
            ],
        );
        let events = events_of(&out);
        let last = events.last().unwrap();
        assert_eq!(last["type"], "response.incomplete");
        assert_eq!(last["response"]["status"], "incomplete");
        assert_eq!(
            last["response"]["incomplete_details"]["reason"],
            "max_output_tokens"
        );
        assert_eq!(last["response"]["output"][0]["status"], "incomplete");
        assert_eq!(events[events.len() - 2]["item"]["status"], "incomplete");
        assert!(t.finish().is_empty());
    }

    #[test]
    fn interleaved_tool_calls_and_late_names_are_kept_apart() {
        let mut t = ChunksToEvents::new(context_of(json!({"model": "m", "input": "hi"})));
        let out = run(
            &mut t,
            &[
                json!({"choices": [{"delta": {"tool_calls": [{"index": 0, "id": "a", "function": {"arguments": "{\"x\":"}}]}}]}),
                json!({"choices": [{"delta": {"tool_calls": [{"index": 1, "id": "b", "function": {"name": "g", "arguments": "{}"}}]}}]}),
                json!({"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"name": "f", "arguments": "1}"}}]}}]}),
                json!({"choices": [{"delta": {}, "finish_reason": "tool_calls"}]}),
            ],
        );
        let events = events_of(&out);
        let done: Vec<&Value> = events
            .iter()
            .filter(|e| e["type"] == "response.output_item.done")
            .map(|e| &e["item"])
            .collect();
        assert_eq!(done.len(), 2);
        assert_eq!(
            (done[0]["name"].as_str(), done[0]["arguments"].as_str()),
            (Some("g"), Some("{}"))
        );
        assert_eq!(
            (done[1]["name"].as_str(), done[1]["arguments"].as_str()),
            (Some("f"), Some("{\"x\":1}"))
        );
        let output = &events.last().unwrap()["response"]["output"];
        assert_eq!(output[0]["call_id"], "b");
        assert_eq!(output[1]["call_id"], "a");
    }

    #[test]
    fn a_broken_stream_ends_with_response_failed() {
        let mut t = ChunksToEvents::new(context_of(json!({"model": "m", "input": "hi"})));
        let mut out = t
            .on_chunk(
                json!({"choices": [{"delta": {"content": "Hi"}}]})
                    .to_string()
                    .as_bytes(),
            )
            .unwrap();
        assert!(t.on_chunk(b"{broken").is_err());
        out.extend(t.fail("server_error", "the upstream broke off"));
        let events = events_of(&out);
        let last = events.last().unwrap();
        assert_eq!(last["type"], "response.failed");
        assert_eq!(last["sequence_number"], json!(events.len() - 1));
        assert_eq!(last["response"]["status"], "failed");
        assert_eq!(
            last["response"]["error"],
            json!({"code": "server_error", "message": "the upstream broke off"})
        );
        assert!(t.finish().is_empty());

        let ctx = context_of(json!({"model": "m", "input": "hi"}));
        let event = failed_event(
            &ctx,
            Some("resp_native"),
            7,
            "rate_limit_exceeded",
            "slow down",
        );
        let events = events_of(&[StreamChunk {
            data: event,
            usage: None,
            usage_only: false,
        }]);
        assert_eq!(events[0]["sequence_number"], 7);
        assert_eq!(events[0]["response"]["id"], "resp_native");
        assert_eq!(
            events[0]["response"]["error"]["code"],
            "rate_limit_exceeded"
        );
        assert_eq!(
            error_code(&ApiError::new(crate::error::ErrorKind::RateLimit, "x")),
            "rate_limit_exceeded"
        );
        assert_eq!(
            error_code(&ApiError::invalid("x", "input")),
            "invalid_prompt"
        );
        assert_eq!(error_code(&ApiError::internal("x")), "server_error");
    }

    #[test]
    fn native_usage_is_read_from_the_response_object_and_the_closing_events() {
        let body = br#"{"id":"resp_1","object":"response","output":[{"type":"message","content":[{"type":"output_text","text":"\"usage\": 1"}]}],"usage":{"input_tokens":20,"input_tokens_details":{"cached_tokens":5},"output_tokens":7,"output_tokens_details":{"reasoning_tokens":3},"total_tokens":27}}"#;
        let usage = usage_of_response(body).unwrap();
        assert_eq!(
            (
                usage.prompt_tokens,
                usage.completion_tokens,
                usage.total_tokens
            ),
            (20, 7, 27)
        );
        assert_eq!((usage.cached_read_tokens, usage.reasoning_tokens), (5, 3));
        assert_eq!(usage_of_response(br#"{"usage":null}"#), None);

        let mut native = NativeUsage::default();
        let created = r#"{"type":"response.created","sequence_number":0,"response":{"id":"resp_9","status":"in_progress","usage":null}}"#;
        assert_eq!(native.on_event("response.created", created), None);
        assert_eq!(native.response_id(), Some("resp_9"));
        let delta = r#"{"type":"response.output_text.delta","sequence_number":5,"delta":"usage"}"#;
        assert_eq!(native.on_event("response.output_text.delta", delta), None);
        assert_eq!(native.next_sequence_number(), 6);
        let completed = r#"{"type":"response.completed","sequence_number":6,"response":{"id":"resp_9","output":[],"usage":{"input_tokens":4,"output_tokens":2,"total_tokens":6}}}"#;
        let usage = native.on_event("", completed).unwrap();
        assert_eq!((usage.prompt_tokens, usage.completion_tokens), (4, 2));
        assert_eq!(native.next_sequence_number(), 7);
    }
}
