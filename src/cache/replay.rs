//! Replays a cached (non-streaming) completion as the SSE stream a streaming request expects:
//! `chat.completion.chunk` (or `text_completion`) events, a usage event when asked, `[DONE]`.

use serde_json::{Map, Value, json};

use super::CacheError;

/// The event that ends a successful stream.
pub const SSE_DONE: &str = "data: [DONE]\n\n";

/// The SSE events (each `data: {...}\n\n`, the last `data: [DONE]\n\n`) replaying a cached
/// `chat.completion` or `text_completion` response. `include_usage` mirrors the request's
/// `stream_options.include_usage`.
pub fn sse_replay(response: &Value, include_usage: bool) -> Result<Vec<String>, CacheError> {
    let object = response.get("object").and_then(Value::as_str).unwrap_or("");
    let chat = match object {
        "chat.completion" => true,
        "text_completion" => false,
        other => {
            return Err(CacheError::NotReplayable(format!(
                "object {other:?} cannot be streamed"
            )));
        }
    };
    let choices = response
        .get("choices")
        .and_then(Value::as_array)
        .ok_or_else(|| CacheError::NotReplayable("no choices".to_string()))?;

    // Fields every chunk repeats, as OpenAI sends them.
    let mut envelope = Map::new();
    for field in [
        "id",
        "created",
        "model",
        "system_fingerprint",
        "service_tier",
    ] {
        if let Some(v) = response.get(field) {
            envelope.insert(field.to_string(), v.clone());
        }
    }
    envelope.insert(
        "object".to_string(),
        Value::from(if chat {
            "chat.completion.chunk"
        } else {
            "text_completion"
        }),
    );
    let chunk = |choices: Value, usage: Option<&Value>| {
        let mut c = envelope.clone();
        c.insert("choices".to_string(), choices);
        if include_usage {
            c.insert("usage".to_string(), usage.cloned().unwrap_or(Value::Null));
        }
        format!("data: {}\n\n", Value::Object(c))
    };

    let mut events = Vec::with_capacity(choices.len() * 2 + 2);
    for (position, choice) in choices.iter().enumerate() {
        let index = choice
            .get("index")
            .cloned()
            .unwrap_or(Value::from(position));
        let content = if chat {
            json!({"index": index, "delta": delta_of(choice.get("message")),
                   "logprobs": choice.get("logprobs").cloned().unwrap_or(Value::Null),
                   "finish_reason": null})
        } else {
            json!({"index": index, "text": choice.get("text").cloned().unwrap_or(Value::from("")),
                   "logprobs": choice.get("logprobs").cloned().unwrap_or(Value::Null),
                   "finish_reason": null})
        };
        events.push(chunk(Value::Array(vec![content]), None));
    }
    for (position, choice) in choices.iter().enumerate() {
        let index = choice
            .get("index")
            .cloned()
            .unwrap_or(Value::from(position));
        let finish = choice
            .get("finish_reason")
            .cloned()
            .unwrap_or(Value::from("stop"));
        let done = if chat {
            json!({"index": index, "delta": {}, "logprobs": null, "finish_reason": finish})
        } else {
            json!({"index": index, "text": "", "logprobs": null, "finish_reason": finish})
        };
        events.push(chunk(Value::Array(vec![done]), None));
    }
    if include_usage && let Some(usage) = response.get("usage") {
        events.push(chunk(Value::Array(Vec::new()), Some(usage)));
    }
    events.push(SSE_DONE.to_string());
    Ok(events)
}

/// The delta carrying a whole assistant message: role, content, refusal, reasoning and tool
/// calls (each given its `index`, which chunks require).
fn delta_of(message: Option<&Value>) -> Value {
    let mut delta = Map::new();
    delta.insert("role".to_string(), Value::from("assistant"));
    let Some(Value::Object(message)) = message else {
        delta.insert("content".to_string(), Value::from(""));
        return Value::Object(delta);
    };
    for (field, value) in message {
        match field.as_str() {
            "role" => {}
            "tool_calls" => {
                let calls = value.as_array().map(|calls| {
                    calls
                        .iter()
                        .enumerate()
                        .map(|(i, call)| {
                            let mut call = call.as_object().cloned().unwrap_or_default();
                            call.entry("index").or_insert(Value::from(i));
                            Value::Object(call)
                        })
                        .collect::<Vec<_>>()
                });
                if let Some(calls) = calls {
                    delta.insert(field.clone(), Value::Array(calls));
                }
            }
            _ => {
                delta.insert(field.clone(), value.clone());
            }
        }
    }
    Value::Object(delta)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(events: &[String]) -> Vec<Value> {
        let (last, data) = events.split_last().unwrap();
        assert_eq!(last, SSE_DONE);
        data.iter()
            .map(|e| {
                let body = e
                    .strip_prefix("data: ")
                    .unwrap()
                    .strip_suffix("\n\n")
                    .unwrap();
                serde_json::from_str(body).unwrap()
            })
            .collect()
    }

    #[test]
    fn chat_replay_reassembles_to_the_cached_answer() {
        let response = json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello there",
                         "tool_calls": [{"id": "c1", "type": "function",
                                         "function": {"name": "f", "arguments": "{}"}}]},
                         "finish_reason": "tool_calls"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
        });
        let chunks = parse(&sse_replay(&response, true).unwrap());
        assert!(
            chunks
                .iter()
                .all(|c| c["object"] == "chat.completion.chunk")
        );
        assert!(chunks.iter().all(|c| c["id"] == "chatcmpl-1"));
        let content: String = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert_eq!(content, "Hello there");
        assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
        assert_eq!(
            chunks[0]["choices"][0]["delta"]["tool_calls"][0]["index"],
            0
        );
        assert_eq!(chunks[1]["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(chunks.last().unwrap()["usage"]["total_tokens"], 5);
        assert_eq!(chunks.last().unwrap()["choices"], json!([]));

        let without = parse(&sse_replay(&response, false).unwrap());
        assert_eq!(without.len(), 2);
        assert!(without.iter().all(|c| c.get("usage").is_none()));
    }

    #[test]
    fn text_completion_and_refusals() {
        let response = json!({"id": "c", "object": "text_completion", "created": 1, "model": "m",
                              "choices": [{"index": 0, "text": "abc", "finish_reason": "length"}]});
        let chunks = parse(&sse_replay(&response, false).unwrap());
        assert_eq!(chunks[0]["choices"][0]["text"], "abc");
        assert_eq!(chunks[1]["choices"][0]["finish_reason"], "length");
        let embedding = json!({"object": "list", "data": []});
        assert!(sse_replay(&embedding, false).is_err());
    }
}
