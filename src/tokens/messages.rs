//! The input tokens of an Anthropic Messages request, for `POST /v1/messages/count_tokens` on
//! a model Anthropic does not count: what Anthropic's count covers (the system prompt, the
//! messages, the tool definitions), each text counted by a [`Tokenizer`], framed the way
//! OpenAI's chat format frames a conversation. The rule:
//!
//! - `system` (a string or text blocks), when present, is one message of role `system`;
//! - each message costs 3 tokens of framing, plus its `role`, plus its content: a string, or
//!   its blocks' text: `text` blocks' `text`; `thinking` blocks' `thinking`; `tool_use` (and
//!   `server_tool_use`) blocks' `name` and their `input` as compact JSON; a `document` with a
//!   text source, its text; any other block's `text` and `content` (so a `tool_result`'s
//!   content, a string or blocks, counts the same way). Images, redacted thinking and other
//!   content without text count nothing (Anthropic charges an image by its pixel size, which
//!   is not decoded here);
//! - each of `tools` costs 3 tokens of framing, plus its `name`, its `description` and its
//!   `input_schema` as compact JSON;
//! - 3 more tokens prime the reply.
//!
//! The framing numbers are OpenAI's for its chat models (3 tokens around each message, the
//! role, the content, 3 for the reply); tools are framed like messages, an approximation of
//! the syntax OpenAI renders function definitions in. With [`Tokenizer::Approximate`] every
//! text, role and JSON is about four characters a token, rounded up each.

use serde_json::{Map, Value};

use super::tokenizer::Tokenizer;

/// Framing tokens around each message and each tool, and priming the reply.
const FRAMING: u64 = 3;

/// The input tokens of a Messages request body (see the module's rule).
pub fn messages_input_tokens(tokenizer: Tokenizer, body: &Map<String, Value>) -> u64 {
    let message = |role: &str, content: &Value| {
        FRAMING + tokenizer.count(role) + content_tokens(tokenizer, content)
    };
    let system = match body.get("system") {
        None | Some(Value::Null) => 0,
        Some(content) => message("system", content),
    };
    let messages: u64 = list(body, "messages")
        .map(|m| {
            let role = m.get("role").and_then(Value::as_str).unwrap_or("user");
            message(role, m.get("content").unwrap_or(&Value::Null))
        })
        .sum();
    let tools: u64 = list(body, "tools")
        .map(|tool| {
            FRAMING
                + text_of(tokenizer, tool, "name")
                + text_of(tokenizer, tool, "description")
                + tool
                    .get("input_schema")
                    .map_or(0, |schema| tokenizer.count(&schema.to_string()))
        })
        .sum();
    system + messages + tools + FRAMING
}

/// The items of the array `body[key]` (none when it is missing or not an array).
fn list<'a>(body: &'a Map<String, Value>, key: &str) -> impl Iterator<Item = &'a Value> {
    body.get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

/// The tokens of the string `value[key]` (0 when it is missing or not a string).
fn text_of(tokenizer: Tokenizer, value: &Value, key: &str) -> u64 {
    value
        .get(key)
        .and_then(Value::as_str)
        .map_or(0, |s| tokenizer.count(s))
}

/// A message's (or a tool result's) content: a string, or a list of blocks.
fn content_tokens(tokenizer: Tokenizer, content: &Value) -> u64 {
    match content {
        Value::String(text) => tokenizer.count(text),
        Value::Array(blocks) => blocks.iter().map(|b| block_tokens(tokenizer, b)).sum(),
        _ => 0,
    }
}

fn block_tokens(tokenizer: Tokenizer, block: &Value) -> u64 {
    match block.get("type").and_then(Value::as_str) {
        Some("thinking") => text_of(tokenizer, block, "thinking"),
        Some("tool_use" | "server_tool_use") => {
            text_of(tokenizer, block, "name")
                + block
                    .get("input")
                    .map_or(0, |input| tokenizer.count(&input.to_string()))
        }
        Some("document") => match block.get("source") {
            Some(source) if source.get("type").and_then(Value::as_str) == Some("text") => {
                text_of(tokenizer, source, "data")
            }
            Some(source) if source.get("type").and_then(Value::as_str) == Some("content") => {
                content_tokens(tokenizer, source.get("content").unwrap_or(&Value::Null))
            }
            _ => 0,
        },
        Some("redacted_thinking") => 0,
        _ => {
            text_of(tokenizer, block, "text")
                + block
                    .get("content")
                    .map_or(0, |c| content_tokens(tokenizer, c))
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn body(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    #[test]
    fn a_one_message_conversation_is_its_text_its_role_and_the_framing() {
        // "hello world" is 2 tokens, "user" and "system" 1 each, in both encodings:
        // (3 + 1 + 2) for the message and 3 for the reply; the system prompt adds 3 + 1 + 2.
        let plain = body(json!({"messages": [{"role": "user", "content": "hello world"}]}));
        let with_system = body(json!({
            "system": [{"type": "text", "text": "hello world", "cache_control": {"type": "ephemeral"}}],
            "messages": [{"role": "user", "content": [{"type": "text", "text": "hello world"}]}]
        }));
        for t in [Tokenizer::O200kBase, Tokenizer::Cl100kBase] {
            assert_eq!(messages_input_tokens(t, &plain), 9, "{}", t.name());
            assert_eq!(messages_input_tokens(t, &with_system), 15, "{}", t.name());
        }
    }

    #[test]
    fn tool_calls_results_and_definitions_are_counted() {
        // With the approximation (characters / 4, rounded up, per text) the sum is
        // plain arithmetic.
        let b = body(json!({
            "system": "Be brief.",                                   // 3 + "system" 2 + 3
            "messages": [
                {"role": "user", "content": "Weather in Paris?"},    // 3 + 1 + 5
                {"role": "assistant", "content": [                    // 3 + 3
                    {"type": "thinking", "thinking": "Call the tool", "signature": "c2ln"}, // 4
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather",           // 3
                     "input": {"city": "Paris"}}                                           // {"city":"Paris"}: 4
                ]},
                {"role": "user", "content": [                         // 3 + 1
                    {"type": "tool_result", "tool_use_id": "toolu_1",
                     "content": [{"type": "text", "text": "Sunny, 21 C"}]},                // 3
                    {"type": "tool_result", "tool_use_id": "toolu_2", "content": "rain"},  // 1
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}, // 0
                    {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "A memo."}} // 2
                ]}
            ],
            "tools": [{                                               // 3
                "name": "get_weather",                                // 3
                "description": "Current weather.",                    // 4
                "input_schema": {"type": "object"}                    // {"type":"object"}: 5
            }]
        }));
        let system = 3 + 2 + 3;
        let messages = (3 + 1 + 5) + (3 + 3 + 4 + 3 + 4) + (3 + 1 + 3 + 1 + 2);
        let tools = 3 + 3 + 4 + 5;
        assert_eq!(
            messages_input_tokens(Tokenizer::Approximate, &b),
            system + messages + tools + 3
        );
    }

    #[test]
    fn a_request_with_no_messages_is_the_reply_priming_alone() {
        assert_eq!(
            messages_input_tokens(Tokenizer::Approximate, &body(json!({"messages": []}))),
            3
        );
    }
}
