//! `mock_response`: answers locally with a fixed text, streamed or not, as LiteLLM does;
//! used for smoke tests and benchmarks with no upstream at all.

use bytes::Bytes;
use futures::stream;
use serde_json::{Value, json};

use super::{ProviderError, ProviderResponse, UpstreamRequest};
use crate::api::{Endpoint, StreamChunk, Usage};
use crate::tokens::{estimate_prompt_tokens, rough_tokens};

#[derive(Debug, Clone)]
pub struct Mock {
    text: String,
}

impl Mock {
    pub fn new(text: String) -> Self {
        Mock { text }
    }

    pub async fn call(
        &self,
        request: UpstreamRequest<'_>,
    ) -> Result<ProviderResponse, ProviderError> {
        let model = request.deployment.upstream_model(request.requested_model);
        let prompt_tokens = estimate_prompt_tokens(request.body);
        let completion_tokens = rough_tokens(&self.text);
        let usage = Usage::new(prompt_tokens, completion_tokens);
        let id = format!("chatcmpl-{}", uuid::Uuid::new_v4().simple());
        let created = chrono::Utc::now().timestamp();
        match request.endpoint {
            Endpoint::Embedding => {
                let inputs = match request.body.get("input") {
                    Some(Value::Array(items)) => items.len().max(1),
                    _ => 1,
                };
                let data: Vec<Value> = (0..inputs)
                    .map(|i| json!({"object": "embedding", "index": i, "embedding": [0.0, 0.0, 0.0]}))
                    .collect();
                let usage = Usage {
                    completion_tokens: 0,
                    total_tokens: prompt_tokens,
                    ..usage
                };
                let body = json!({"object": "list", "data": data, "model": model, "usage": usage});
                Ok(complete(body, usage))
            }
            Endpoint::Completion if !request.stream => {
                let body = json!({
                    "id": id, "object": "text_completion", "created": created, "model": model,
                    "choices": [{"index": 0, "text": self.text, "logprobs": null, "finish_reason": "stop"}],
                    "usage": usage,
                });
                Ok(complete(body, usage))
            }
            Endpoint::Chat if !request.stream => {
                let body = json!({
                    "id": id, "object": "chat.completion", "created": created, "model": model,
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": self.text},
                                 "finish_reason": "stop"}],
                    "usage": usage,
                });
                Ok(complete(body, usage))
            }
            endpoint => {
                let chunks = stream_chunks(endpoint, &id, created, &model, &self.text, usage);
                Ok(ProviderResponse::Stream(Box::pin(stream::iter(
                    chunks.into_iter().map(Ok),
                ))))
            }
        }
    }
}

fn complete(body: Value, usage: Usage) -> ProviderResponse {
    ProviderResponse::Complete {
        body: Bytes::from(body.to_string()),
        usage: Some(usage),
    }
}

fn stream_chunks(
    endpoint: Endpoint,
    id: &str,
    created: i64,
    model: &str,
    text: &str,
    usage: Usage,
) -> Vec<StreamChunk> {
    let chat = endpoint == Endpoint::Chat;
    let object = if chat {
        "chat.completion.chunk"
    } else {
        "text_completion"
    };
    let choice = |piece: Option<&str>, finish: Option<&str>| {
        if chat {
            let delta = match piece {
                Some(p) => json!({"role": "assistant", "content": p}),
                None => json!({}),
            };
            json!({"index": 0, "delta": delta, "finish_reason": finish})
        } else {
            json!({"index": 0, "text": piece.unwrap_or(""), "finish_reason": finish})
        }
    };
    let chunk = |choices: Vec<Value>, usage: Option<Usage>| {
        let data = json!({"id": id, "object": object, "created": created, "model": model,
                          "choices": choices, "usage": usage});
        StreamChunk {
            data: Bytes::from(data.to_string()),
            usage_only: usage.is_some(),
            usage,
        }
    };
    let mut out: Vec<StreamChunk> = text
        .split_inclusive(' ')
        .map(|piece| chunk(vec![choice(Some(piece), None)], None))
        .collect();
    out.push(chunk(vec![choice(None, Some("stop"))], None));
    out.push(chunk(vec![], Some(usage)));
    out
}
