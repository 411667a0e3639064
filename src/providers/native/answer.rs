//! Assembling OpenAI's answers from what a provider read: complete chat, completion and
//! embeddings documents, and the chunks of a streamed answer.

use bytes::Bytes;
use serde_json::{Map, Value, json};

use crate::api::thinking::REASONING_CONTENT;
use crate::api::{Endpoint, StreamChunk, Usage};
use crate::providers::ProviderResponse;

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
                    message.insert(REASONING_CONTENT.into(), json!(reasoning));
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
        delta.insert(REASONING_CONTENT.into(), json!(text));
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
