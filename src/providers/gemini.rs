//! Google AI Studio's Gemini API (`gemini/`): OpenAI chats become `generateContent` /
//! `streamGenerateContent?alt=sse` requests (roles, `systemInstruction`, parts,
//! `generationConfig`, function declarations), embeddings use `batchEmbedContents`; answers,
//! stream events, `usageMetadata` and errors come back in OpenAI's shape. The key travels in
//! the `x-goog-api-key` header, never in a URL.

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
use crate::tokens::rough_tokens;

const PROVIDER: &str = "gemini";
const DEFAULT_BASE: &str = "https://generativelanguage.googleapis.com";

#[derive(Debug, Clone)]
pub struct Gemini {
    /// `{api_base}/v1beta`.
    base: String,
    headers: HeaderMap,
    secret: Option<String>,
}

impl Gemini {
    /// The API's model listing (`GET {api_base}/v1beta/models`), for `check`.
    pub fn listing(&self) -> super::Listing<'_> {
        super::Listing {
            url: format!("{}/models", self.base),
            headers: &self.headers,
            secret: self.secret.as_deref(),
        }
    }

    pub fn new(d: &Deployment) -> Result<Self, ProviderUnavailable> {
        let base = d
            .api_base
            .as_deref()
            .unwrap_or(DEFAULT_BASE)
            .trim_end_matches('/');
        let base = if base.ends_with("/v1beta") || base.ends_with("/v1") {
            base.to_string()
        } else {
            format!("{base}/v1beta")
        };
        let mut headers = extra_headers(d)?;
        if let Some(key) = &d.api_key {
            let mut value = HeaderValue::from_str(key.expose()).map_err(|_| {
                ProviderUnavailable("api_key contains characters not allowed in a header".into())
            })?;
            value.set_sensitive(true);
            headers.insert(HeaderName::from_static("x-goog-api-key"), value);
        }
        Ok(Gemini {
            base,
            headers,
            secret: d.api_key.as_ref().map(|k| k.expose().to_string()),
        })
    }

    fn url(&self, model: &str, method: &str) -> String {
        let model = model.strip_prefix("models/").unwrap_or(model);
        format!("{}/models/{model}:{method}", self.base)
    }

    pub async fn call(
        &self,
        request: UpstreamRequest<'_>,
    ) -> Result<ProviderResponse, ProviderError> {
        native::call(self, request).await
    }
}

impl native::Translating for Gemini {
    type Answer = GenerateResponse;
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
        let payload = to_generate_request(body)?;
        let url = if request.stream {
            self.url(model, "streamGenerateContent?alt=sse")
        } else {
            self.url(model, "generateContent")
        };
        Ok((url, payload))
    }

    fn translator(&self, endpoint: Endpoint, model: String) -> EventTranslator {
        EventTranslator::new(endpoint, model)
    }

    fn answer(&self, answer: GenerateResponse, model: &str) -> native::Answer {
        from_generate_response(answer, model)
    }

    async fn embed(
        &self,
        mut body: Map<String, Value>,
        model: String,
        request: &UpstreamRequest<'_>,
    ) -> Result<ProviderResponse, ProviderError> {
        let inputs = native::embedding_inputs(&mut body)?;
        let estimate: u64 = inputs.iter().map(|s| rough_tokens(s)).sum();
        let name = format!("models/{}", model.strip_prefix("models/").unwrap_or(&model));
        let dimensions = body.get("dimensions").and_then(Value::as_u64);
        let task_type = body
            .remove("task_type")
            .or_else(|| body.remove("taskType"))
            .filter(Value::is_string);
        let requests: Vec<Value> = inputs
            .into_iter()
            .map(|text| {
                let mut r = json!({"model": name, "content": {"parts": [{"text": text}]}});
                if let Some(d) = dimensions {
                    r["outputDimensionality"] = json!(d);
                }
                if let Some(t) = &task_type {
                    r["taskType"] = t.clone();
                }
                r
            })
            .collect();
        let response = native::post_json(
            request.upstream.http(),
            &self.url(&model, "batchEmbedContents"),
            &self.headers,
            &json!({"requests": requests}),
            request.timeout,
            self.secret.as_deref(),
            error_body,
        )
        .await?;
        #[derive(Deserialize)]
        struct Embedding {
            #[serde(default)]
            values: Value,
        }
        #[derive(Deserialize)]
        struct Batch {
            #[serde(default)]
            embeddings: Vec<Embedding>,
        }
        let batch: Batch =
            native::read_json(response, request.timeout, self.secret.as_deref(), PROVIDER).await?;
        let vectors = batch.embeddings.into_iter().map(|e| e.values).collect();
        // The embeddings API reports no token counts: usage is estimated.
        Ok(native::embeddings_response(&model, vectors, estimate))
    }
}

/// The OpenAI parameters Gemini takes.
fn accepts(name: &str, value: &Value) -> bool {
    match name {
        "temperature"
        | "top_p"
        | "max_tokens"
        | "max_completion_tokens"
        | "stop"
        | "n"
        | "seed"
        | "presence_penalty"
        | "frequency_penalty"
        | "tools"
        | "tool_choice" => true,
        "response_format" => matches!(
            value.get("type").and_then(Value::as_str),
            Some("text" | "json_object" | "json_schema")
        ),
        "reasoning_effort" => value.as_str().and_then(thinking_budget).is_some(),
        _ => false,
    }
}

/// OpenAI's `reasoning_effort` as a Gemini `thinkingBudget` (LiteLLM's budgets: minimal 128,
/// low 1024, medium 2048, high 4096; none 0, thinking off).
fn thinking_budget(effort: &str) -> Option<u64> {
    match effort {
        "none" | "disable" => Some(0),
        "minimal" => Some(128),
        "low" => Some(1024),
        "medium" => Some(2048),
        "high" => Some(4096),
        _ => None,
    }
}

/// Translates an OpenAI chat body (already checked by [`accepts`]) into a
/// `generateContent` request.
pub fn to_generate_request(mut body: Map<String, Value>) -> Result<Value, ProviderError> {
    let Some(Value::Array(messages)) = body.remove("messages") else {
        return Err(invalid(
            "'messages' must be a list of messages.",
            "messages",
        ));
    };
    let (system, contents) = convert_messages(messages)?;
    let mut out = Map::new();
    out.insert("contents".into(), Value::Array(contents));
    if !system.is_empty() {
        out.insert("systemInstruction".into(), json!({"parts": system}));
    }
    let mut config = Map::new();
    for (from, to) in [
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("top_k", "topK"),
        ("n", "candidateCount"),
        ("seed", "seed"),
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
    ] {
        if let Some(v) = body.remove(from).filter(|v| !v.is_null()) {
            config.insert(to.into(), v);
        }
    }
    if let Some(n) = native::max_tokens(&body) {
        config.insert("maxOutputTokens".into(), json!(n));
    }
    if let Some(stop) = body.get("stop") {
        let list = native::stop_list(stop);
        if !list.is_empty() {
            config.insert("stopSequences".into(), Value::Array(list));
        }
    }
    if let Some(format) = body.get("response_format") {
        match format.get("type").and_then(Value::as_str) {
            Some("json_object") => {
                config.insert("responseMimeType".into(), json!("application/json"));
            }
            Some("json_schema") => {
                config.insert("responseMimeType".into(), json!("application/json"));
                if let Some(schema) = format.pointer("/json_schema/schema") {
                    config.insert("responseSchema".into(), clean_schema(schema.clone()));
                }
            }
            _ => {}
        }
    }
    if let Some(budget) = body
        .get("reasoning_effort")
        .and_then(Value::as_str)
        .and_then(thinking_budget)
    {
        config.insert(
            "thinkingConfig".into(),
            json!({"thinkingBudget": budget, "includeThoughts": budget > 0}),
        );
    }
    if !config.is_empty() {
        out.insert("generationConfig".into(), Value::Object(config));
    }
    if let Some(Value::Array(tools)) = body.remove("tools")
        && !tools.is_empty()
    {
        out.insert(
            "tools".into(),
            json!([{"functionDeclarations": function_declarations(tools)?}]),
        );
    }
    match body.remove("tool_choice") {
        None | Some(Value::Null) => {}
        Some(choice) => {
            out.insert(
                "toolConfig".into(),
                json!({"functionCallingConfig": tool_config(&choice)?}),
            );
        }
    }
    for key in ["safetySettings", "cachedContent"] {
        if let Some(v) = body.remove(key) {
            out.insert(key.into(), v);
        }
    }
    Ok(Value::Object(out))
}

/// System messages become `systemInstruction` parts; the rest become `contents` with roles
/// `user` and `model`, consecutive turns of one role merged.
fn convert_messages(messages: Vec<Value>) -> Result<(Vec<Value>, Vec<Value>), ProviderError> {
    let mut system = Vec::new();
    let mut contents: Vec<(&'static str, Vec<Value>)> = Vec::new();
    let mut call_names: Vec<(String, String)> = Vec::new();
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
        let (role, parts) = match role.as_str() {
            "system" | "developer" => {
                let text = content_text(m.get("content"));
                if !text.is_empty() {
                    system.push(json!({"text": text}));
                }
                continue;
            }
            "user" => ("user", user_parts(m.remove("content"), i)?),
            "assistant" => {
                let mut parts = Vec::new();
                let text = content_text(m.get("content"));
                if !text.is_empty() {
                    parts.push(json!({"text": text}));
                }
                if let Some(Value::Array(calls)) = m.remove("tool_calls") {
                    for (j, call) in calls.iter().enumerate() {
                        let name = call
                            .pointer("/function/name")
                            .and_then(Value::as_str)
                            .unwrap_or_default();
                        if let Some(id) = call.get("id").and_then(Value::as_str) {
                            call_names.push((id.to_string(), name.to_string()));
                        }
                        let args = match call.pointer("/function/arguments") {
                            Some(Value::String(s)) if !s.trim().is_empty() => {
                                serde_json::from_str::<Value>(s).map_err(|_| {
                                    let p =
                                        format!("messages[{i}].tool_calls[{j}].function.arguments");
                                    invalid(format!("'{p}' is not valid JSON."), p)
                                })?
                            }
                            Some(Value::Object(o)) => Value::Object(o.clone()),
                            _ => json!({}),
                        };
                        parts.push(json!({"functionCall": {"name": name, "args": args}}));
                    }
                }
                ("model", parts)
            }
            "tool" | "function" => {
                let id = m.get("tool_call_id").and_then(Value::as_str);
                let name = m
                    .get("name")
                    .and_then(Value::as_str)
                    .or_else(|| {
                        call_names
                            .iter()
                            .find(|(call, _)| Some(call.as_str()) == id)
                            .map(|(_, n)| n.as_str())
                    })
                    .ok_or_else(|| {
                        invalid(
                            format!("'messages[{i}]' answers no earlier tool call (set 'tool_call_id' or 'name')."),
                            format!("messages[{i}].tool_call_id"),
                        )
                    })?
                    .to_string();
                let text = content_text(m.get("content"));
                // `response` must be an object: JSON results are sent as they are, text wrapped.
                let response = match serde_json::from_str::<Value>(&text) {
                    Ok(Value::Object(o)) => Value::Object(o),
                    _ => json!({"content": text}),
                };
                (
                    "user",
                    vec![json!({"functionResponse": {"name": name, "response": response}})],
                )
            }
            other => {
                return Err(invalid(
                    format!("'messages[{i}].role' '{other}' is not supported by provider gemini."),
                    format!("messages[{i}].role"),
                ));
            }
        };
        if parts.is_empty() {
            continue;
        }
        match contents.last_mut() {
            Some((last, last_parts)) if *last == role => last_parts.extend(parts),
            _ => contents.push((role, parts)),
        }
    }
    let contents = contents
        .into_iter()
        .map(|(role, parts)| json!({"role": role, "parts": parts}))
        .collect();
    Ok((system, contents))
}

/// A user message's content as parts: text, `inlineData` for data URLs, `fileData` for URLs.
fn user_parts(content: Option<Value>, i: usize) -> Result<Vec<Value>, ProviderError> {
    match content {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) if s.is_empty() => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![json!({"text": s})]),
        Some(Value::Array(parts)) => {
            let mut out = Vec::with_capacity(parts.len());
            for (j, part) in parts.iter().enumerate() {
                let bad = || {
                    invalid(
                        format!(
                            "'messages[{i}].content[{j}]' is a content part provider gemini does not take."
                        ),
                        format!("messages[{i}].content[{j}]"),
                    )
                };
                let file = match part.get("type").and_then(Value::as_str).unwrap_or("text") {
                    "text" => {
                        let text = part.get("text").and_then(Value::as_str).unwrap_or_default();
                        if !text.is_empty() {
                            out.push(json!({"text": text}));
                        }
                        continue;
                    }
                    "image_url" => native::image_ref(part).ok_or_else(bad)?,
                    "file" => part
                        .pointer("/file/file_data")
                        .and_then(Value::as_str)
                        .and_then(native::parse_data_url)
                        .ok_or_else(bad)?,
                    _ => return Err(bad()),
                };
                out.push(match file {
                    ImageRef::Inline { media_type, data } => {
                        json!({"inlineData": {"mimeType": media_type, "data": data}})
                    }
                    ImageRef::Url(url) => {
                        json!({"fileData": {"mimeType": mime_of(url), "fileUri": url}})
                    }
                });
            }
            Ok(out)
        }
        Some(_) => Err(invalid(
            format!("'messages[{i}].content' must be a string or a list of parts."),
            format!("messages[{i}].content"),
        )),
    }
}

/// A media type guessed from a URL's extension (`fileData` requires one).
fn mime_of(url: &str) -> &'static str {
    let path = url
        .split(['?', '#'])
        .next()
        .unwrap_or(url)
        .to_ascii_lowercase();
    match path.rsplit('.').next().unwrap_or_default() {
        "png" => "image/png",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "pdf" => "application/pdf",
        "mp3" => "audio/mp3",
        "wav" => "audio/wav",
        "mp4" => "video/mp4",
        _ => "image/jpeg",
    }
}

/// OpenAI function tools as Gemini function declarations.
fn function_declarations(tools: Vec<Value>) -> Result<Vec<Value>, ProviderError> {
    tools
        .into_iter()
        .enumerate()
        .map(|(i, tool)| {
            let Some(Value::Object(mut function)) = tool.get("function").cloned() else {
                return Err(invalid(
                    format!("'tools[{i}]' must be a function tool."),
                    format!("tools[{i}]"),
                ));
            };
            if !function.get("name").is_some_and(Value::is_string) {
                return Err(invalid(
                    format!("'tools[{i}].function.name' is required."),
                    format!("tools[{i}].function.name"),
                ));
            }
            function.remove("strict");
            match function.remove("parameters") {
                // Gemini refuses an object schema with no properties: a function without
                // arguments is declared without parameters.
                Some(p)
                    if p.get("properties")
                        .is_some_and(|props| props.as_object().is_some_and(|o| !o.is_empty())) =>
                {
                    function.insert("parameters".into(), clean_schema(p));
                }
                _ => {}
            }
            Ok(Value::Object(function))
        })
        .collect()
}

/// Removes the JSON Schema keywords Gemini's schema subset rejects.
fn clean_schema(mut schema: Value) -> Value {
    fn walk(v: &mut Value) {
        match v {
            Value::Object(o) => {
                o.remove("$schema");
                o.remove("additionalProperties");
                o.remove("strict");
                o.values_mut().for_each(walk);
            }
            Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut schema);
    schema
}

/// OpenAI `tool_choice` as Gemini's `functionCallingConfig`.
pub fn tool_config(choice: &Value) -> Result<Value, ProviderError> {
    match choice {
        Value::String(s) => match s.as_str() {
            "auto" => Ok(json!({"mode": "AUTO"})),
            "required" => Ok(json!({"mode": "ANY"})),
            "none" => Ok(json!({"mode": "NONE"})),
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
            Some(name) => Ok(json!({"mode": "ANY", "allowedFunctionNames": [name]})),
            None => Err(invalid(
                "'tool_choice' must name a function.",
                "tool_choice",
            )),
        },
        _ => Err(invalid("'tool_choice' is not valid.", "tool_choice")),
    }
}

/// Gemini `finishReason` as OpenAI `finish_reason`.
pub fn finish_reason(reason: &str, called_tools: bool) -> &'static str {
    match reason {
        "MAX_TOKENS" => "length",
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY" => {
            "content_filter"
        }
        _ if called_tools => "tool_calls",
        _ => "stop",
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageMetadata {
    #[serde(default)]
    prompt_token_count: u64,
    #[serde(default)]
    candidates_token_count: u64,
    #[serde(default)]
    thoughts_token_count: u64,
}

impl UsageMetadata {
    /// Thinking tokens are billed as output, so they count as completion tokens.
    fn usage(&self) -> Usage {
        usage(
            self.prompt_token_count,
            self.candidates_token_count + self.thoughts_token_count,
        )
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Candidate {
    content: Option<CandidateContent>,
    finish_reason: Option<String>,
    index: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
pub struct CandidateContent {
    #[serde(default)]
    parts: Vec<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerateResponse {
    #[serde(default)]
    candidates: Vec<Candidate>,
    usage_metadata: Option<UsageMetadata>,
    model_version: Option<String>,
    response_id: Option<String>,
    prompt_feedback: Option<Value>,
    error: Option<Value>,
}

/// What one part of a candidate holds.
enum Part<'a> {
    Text(&'a str),
    Thought(&'a str),
    Call(ToolCall),
}

fn read_part(part: &Value) -> Option<Part<'_>> {
    if let Some(call) = part.get("functionCall") {
        return Some(Part::Call(ToolCall {
            id: call
                .get("id")
                .and_then(Value::as_str)
                .map_or_else(|| native::new_id("call_"), str::to_string),
            name: call
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            arguments: call
                .get("args")
                .map_or_else(|| "{}".to_string(), Value::to_string),
        }));
    }
    let text = part.get("text").and_then(Value::as_str)?;
    if part.get("thought").and_then(Value::as_bool) == Some(true) {
        Some(Part::Thought(text))
    } else {
        Some(Part::Text(text))
    }
}

/// A `generateContent` answer as an OpenAI answer, one choice per candidate.
pub fn from_generate_response(answer: GenerateResponse, model: &str) -> Answer {
    let mut choices: Vec<Choice> = answer
        .candidates
        .iter()
        .map(|candidate| {
            let mut choice = Choice::default();
            for part in candidate.content.iter().flat_map(|c| &c.parts) {
                match read_part(part) {
                    Some(Part::Text(t)) => choice.text.push_str(t),
                    Some(Part::Thought(t)) => {
                        choice.reasoning.get_or_insert_with(String::new).push_str(t);
                    }
                    Some(Part::Call(call)) => choice.tool_calls.push(call),
                    None => {}
                }
            }
            let reason = candidate.finish_reason.as_deref().unwrap_or("STOP");
            choice.finish_reason = Some(finish_reason(reason, !choice.tool_calls.is_empty()));
            choice
        })
        .collect();
    if choices.is_empty() {
        // A prompt blocked by safety filters comes back with no candidates at all.
        let blocked = answer
            .prompt_feedback
            .as_ref()
            .is_some_and(|f| f.get("blockReason").is_some());
        choices.push(Choice {
            finish_reason: Some(if blocked { "content_filter" } else { "stop" }),
            ..Choice::default()
        });
    }
    Answer {
        id: answer
            .response_id
            .unwrap_or_else(|| native::new_id("chatcmpl-")),
        model: answer.model_version.unwrap_or_else(|| model.to_string()),
        choices,
        usage: answer.usage_metadata.unwrap_or_default().usage(),
    }
}

/// Gemini SSE events (each a partial `GenerateContentResponse`) to OpenAI chunks.
pub struct EventTranslator {
    writer: ChunkWriter,
    /// Per candidate: tool calls streamed so far.
    tool_calls: Vec<(u32, u32)>,
    finished: bool,
    usage: Usage,
    id_set: bool,
}

impl EventTranslator {
    pub fn new(endpoint: Endpoint, model: String) -> Self {
        EventTranslator {
            writer: ChunkWriter::new(endpoint, model),
            tool_calls: Vec::new(),
            finished: false,
            usage: Usage::default(),
            id_set: false,
        }
    }

    fn next_call(&mut self, candidate: u32) -> u32 {
        match self.tool_calls.iter_mut().find(|(c, _)| *c == candidate) {
            Some((_, n)) => {
                *n += 1;
                *n - 1
            }
            None => {
                self.tool_calls.push((candidate, 1));
                0
            }
        }
    }

    fn called_tools(&self, candidate: u32) -> bool {
        self.tool_calls
            .iter()
            .any(|(c, n)| *c == candidate && *n > 0)
    }
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
        let event: GenerateResponse = serde_json::from_str(data)
            .map_err(|e| ProviderError::Stream(format!("gemini sent an unreadable event: {e}")))?;
        if let Some(error) = event.error {
            let message = error
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("stream error");
            return Err(ProviderError::Stream(format!("gemini: {message}")));
        }
        if !self.id_set {
            self.id_set = true;
            if let Some(id) = event.response_id {
                self.writer.id = id;
            }
            if let Some(model) = event.model_version {
                self.writer.model = model;
            }
        }
        if let Some(u) = &event.usage_metadata {
            self.usage = u.usage();
        }
        for (position, candidate) in event.candidates.iter().enumerate() {
            let index = candidate.index.unwrap_or(position as u32);
            for part in candidate.content.iter().flat_map(|c| &c.parts) {
                match read_part(part) {
                    Some(Part::Text(t)) if !t.is_empty() => out.push(self.writer.text(index, t)),
                    Some(Part::Thought(t)) if !t.is_empty() => {
                        out.extend(self.writer.reasoning(index, t));
                    }
                    Some(Part::Call(call)) => {
                        let n = self.next_call(index);
                        let id_and_name = Some((call.id.as_str(), call.name.as_str()));
                        out.push(
                            self.writer
                                .tool_call(index, n, id_and_name, &call.arguments),
                        );
                    }
                    _ => {}
                }
            }
            if let Some(reason) = &candidate.finish_reason {
                self.finished = true;
                let reason = finish_reason(reason, self.called_tools(index));
                out.push(self.writer.finish(index, reason));
            }
        }
        if event.candidates.is_empty()
            && event
                .prompt_feedback
                .as_ref()
                .is_some_and(|f| f.get("blockReason").is_some())
        {
            self.finished = true;
            out.push(self.writer.finish(0, "content_filter"));
        }
        // Gemini ends a stream by closing it; usage is sent once it has.
        Ok(false)
    }

    fn on_close(&mut self, out: &mut Vec<StreamChunk>) -> Result<(), ProviderError> {
        if !self.finished {
            return Err(ProviderError::Stream(
                "gemini closed the stream before a finish reason".into(),
            ));
        }
        out.push(self.writer.usage(self.usage));
        Ok(())
    }
}

/// Gemini's error body (`{"error":{"code","message","status"}}`, sometimes inside a list) in
/// OpenAI's shape.
pub fn error_body(status: u16, text: &str) -> bytes::Bytes {
    let parsed = serde_json::from_str::<Value>(text).ok();
    let error = parsed.as_ref().and_then(|v| match v {
        Value::Array(items) => items.first().and_then(|i| i.get("error")),
        other => other.get("error"),
    });
    let kind = error.and_then(|e| e.get("status")).and_then(Value::as_str);
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
    fn reasoning_effort_becomes_a_thinking_budget_and_an_unknown_one_is_not_taken() {
        let out = to_generate_request(body(json!({
            "messages": [{"role": "user", "content": "think"}],
            "reasoning_effort": "high"
        })))
        .unwrap();
        assert_eq!(
            out["generationConfig"]["thinkingConfig"],
            json!({"thinkingBudget": 4096, "includeThoughts": true})
        );
        let out = to_generate_request(body(json!({
            "messages": [{"role": "user", "content": "quick"}],
            "reasoning_effort": "none"
        })))
        .unwrap();
        assert_eq!(
            out["generationConfig"]["thinkingConfig"],
            json!({"thinkingBudget": 0, "includeThoughts": false})
        );
        assert!(accepts("reasoning_effort", &json!("low")));
        assert!(!accepts("reasoning_effort", &json!("extreme")));
    }

    #[test]
    fn roles_system_config_and_tools_are_translated() {
        let req = body(json!({
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": "look"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,QUJD"}}]},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function",
                    "function": {"name": "get_weather", "arguments": "{\"city\":\"Rome\"}"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "{\"temp\":20}"},
                {"role": "tool", "tool_call_id": "c1", "content": "plain"}
            ],
            "temperature": 0.1, "top_p": 0.8, "max_tokens": 99, "stop": ["x"], "n": 2,
            "response_format": {"type": "json_object"},
            "tools": [{"type": "function", "function": {"name": "get_weather", "strict": true,
                "parameters": {"type": "object", "additionalProperties": false,
                               "properties": {"city": {"type": "string"}}}}},
                      {"type": "function", "function": {"name": "now", "parameters": {"type": "object", "properties": {}}}}],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}}
        }));
        let out = to_generate_request(req).unwrap();
        assert_eq!(
            out["systemInstruction"],
            json!({"parts": [{"text": "be brief"}]})
        );
        assert_eq!(
            out["generationConfig"],
            json!({"temperature": 0.1, "topP": 0.8, "candidateCount": 2,
            "maxOutputTokens": 99, "stopSequences": ["x"], "responseMimeType": "application/json"})
        );
        let c = out["contents"].as_array().unwrap();
        assert_eq!(c.len(), 3);
        assert_eq!(
            c[0]["parts"][1],
            json!({"inlineData": {"mimeType": "image/png", "data": "QUJD"}})
        );
        assert_eq!(
            c[1],
            json!({"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}}]})
        );
        assert_eq!(
            c[2]["parts"][0],
            json!({"functionResponse": {"name": "get_weather", "response": {"temp": 20}}})
        );
        assert_eq!(
            c[2]["parts"][1]["functionResponse"]["response"],
            json!({"content": "plain"})
        );
        let decls = &out["tools"][0]["functionDeclarations"];
        assert_eq!(
            decls[0],
            json!({"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}})
        );
        assert_eq!(decls[1], json!({"name": "now"}));
        assert_eq!(
            out["toolConfig"],
            json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}})
        );
    }

    #[test]
    fn answers_map_finish_reasons_and_usage() {
        let answer: GenerateResponse = serde_json::from_value(json!({
            "candidates": [{"content": {"role": "model", "parts": [{"text": "Hi"}]}, "finishReason": "MAX_TOKENS", "index": 0},
                           {"content": {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {"a": 1}}}]}, "finishReason": "STOP", "index": 1}],
            "usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": 6, "totalTokenCount": 10},
            "modelVersion": "gemini-2.0-flash", "responseId": "r1"
        }))
        .unwrap();
        let a = from_generate_response(answer, "m");
        assert_eq!(a.id, "r1");
        assert_eq!(a.usage, usage(4, 6));
        assert_eq!(a.choices[0].finish_reason, Some("length"));
        assert_eq!(a.choices[1].finish_reason, Some("tool_calls"));
        assert_eq!(a.choices[1].tool_calls[0].arguments, r#"{"a":1}"#);
        assert_eq!(finish_reason("SAFETY", false), "content_filter");
        let blocked: GenerateResponse =
            serde_json::from_value(json!({"promptFeedback": {"blockReason": "SAFETY"}})).unwrap();
        assert_eq!(
            from_generate_response(blocked, "m").choices[0].finish_reason,
            Some("content_filter")
        );
    }

    #[test]
    fn streams_end_with_usage_only_after_a_finish_reason() {
        let mut t = EventTranslator::new(Endpoint::Chat, "m".into());
        let mut out = Vec::new();
        t.on_event("", r#"{"candidates":[{"content":{"parts":[{"text":"Hel"}],"role":"model"},"index":0}],"usageMetadata":{"promptTokenCount":3}}"#, &mut out).unwrap();
        assert!(t.on_close(&mut Vec::new()).is_err());
        t.on_event("", r#"{"candidates":[{"content":{"parts":[{"text":"lo"}],"role":"model"},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":3,"candidatesTokenCount":2,"totalTokenCount":5}}"#, &mut out).unwrap();
        t.on_close(&mut out).unwrap();
        assert_eq!(out.len(), 4);
        assert_eq!(out[3].usage, Some(usage(3, 2)));
        let finish: Value = serde_json::from_slice(&out[2].data).unwrap();
        assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    }

    #[test]
    fn errors_are_openai_shaped() {
        let b: Value = serde_json::from_slice(&error_body(429, r#"{"error":{"code":429,"message":"Resource has been exhausted","status":"RESOURCE_EXHAUSTED"}}"#)).unwrap();
        assert_eq!(b["error"]["type"], "rate_limit_error");
        assert_eq!(b["error"]["code"], "429");
        let b: Value = serde_json::from_slice(&error_body(400, r#"[{"error":{"code":400,"message":"The input token count (2000000) exceeds the maximum number of tokens allowed (1048576).","status":"INVALID_ARGUMENT"}}]"#)).unwrap();
        assert!(
            b["error"]["message"]
                .as_str()
                .unwrap()
                .contains("context_length_exceeded")
        );
    }
}
