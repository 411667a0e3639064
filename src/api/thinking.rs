//! How thinking and its signature travel on the OpenAI side, defined once: as LiteLLM carries
//! them (docs.litellm.ai/docs/reasoning_content). An assistant message, and a stream chunk's
//! delta, have `reasoning_content` (the reasoning text, what every reasoning provider returns)
//! and `thinking_blocks` (Anthropic's blocks with their signatures: `{"type": "thinking",
//! "thinking", "signature"}` and `{"type": "redacted_thinking", "data"}`). In a stream the
//! signature arrives in a `thinking_blocks` entry of its own. The Messages translation both
//! ways, and the providers that write reasoning into OpenAI answers, use these words.
//!
//! `thinking_blocks` is not in OpenAI's chat schema: servers that validate strictly answer an
//! assistant message carrying it with a 400 ("Extra inputs are not permitted", LiteLLM issue
//! #32188), while `reasoning_content` is taken (and required back by DeepSeek's thinking mode
//! on tool-call turns). So the blocks go only where Claude answers behind an OpenAI-compatible
//! API ([`takes_thinking_blocks`]), the rule LiteLLM's Messages adapter applies to the other
//! Anthropic-only field it translates, `cache_control`.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// The reasoning text of an assistant message or a stream delta.
pub const REASONING_CONTENT: &str = "reasoning_content";

/// The thinking blocks (signatures included) of an assistant message or a stream delta.
pub const THINKING_BLOCKS: &str = "thinking_blocks";

/// One entry of `thinking_blocks`. Its JSON is that of Anthropic's own `thinking` and
/// `redacted_thinking` content blocks, so the one type reads and writes both sides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ThinkingBlock {
    Thinking {
        #[serde(default, deserialize_with = "text_or_null")]
        thinking: String,
        #[serde(default, deserialize_with = "text_or_null")]
        signature: String,
    },
    RedactedThinking {
        #[serde(default, deserialize_with = "text_or_null")]
        data: String,
    },
}

impl ThinkingBlock {
    /// A block of either side's JSON; `None` for any other type (a block type added later).
    pub fn read(value: &Value) -> Option<Self> {
        Self::deserialize(value).ok()
    }

    /// The block as JSON (both sides' shape).
    pub fn to_json(&self) -> Value {
        serde_json::json!(self)
    }
}

/// LiteLLM streams a thinking block's text with `"signature": null` until the signature comes.
fn text_or_null<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

/// Whether an OpenAI-compatible upstream serving `model` (its upstream name) takes
/// `thinking_blocks`: a Claude model (the name mentions `claude` or `anthropic`), typically a
/// LiteLLM proxy in front of Anthropic, which needs the signatures back on a tool turn.
pub fn takes_thinking_blocks(model: &str) -> bool {
    let model = model.to_ascii_lowercase();
    model.contains("claude") || model.contains("anthropic")
}

/// Removes `thinking_blocks` from the assistant messages of a chat body (`reasoning_content`
/// stays), for an upstream that does not take them.
pub fn drop_thinking_blocks(body: &mut Map<String, Value>) {
    if let Some(Value::Array(messages)) = body.get_mut("messages") {
        for message in messages {
            if let Value::Object(message) = message {
                message.remove(THINKING_BLOCKS);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn both_sides_blocks_read_and_write_the_same_json() {
        let signed =
            json!({"type": "thinking", "thinking": "Let me check.", "signature": "EqQBCgIYAhIM"});
        let redacted = json!({"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix"});
        for block in [&signed, &redacted] {
            assert_eq!(&ThinkingBlock::read(block).unwrap().to_json(), block);
        }
        // LiteLLM's stream entries: a null signature, or a signature without its text.
        assert_eq!(
            ThinkingBlock::read(&json!({"type": "thinking", "thinking": "Hm", "signature": null})),
            Some(ThinkingBlock::Thinking {
                thinking: "Hm".into(),
                signature: String::new()
            })
        );
        assert_eq!(
            ThinkingBlock::read(&json!({"type": "thinking", "signature": "sig"})),
            Some(ThinkingBlock::Thinking {
                thinking: String::new(),
                signature: "sig".into()
            })
        );
        assert_eq!(ThinkingBlock::read(&json!({"type": "summary"})), None);
    }

    #[test]
    fn only_claude_upstreams_keep_the_thinking_blocks() {
        for model in [
            "claude-sonnet-4-5",
            "anthropic/claude-opus-4-1",
            "us.anthropic.x",
        ] {
            assert!(takes_thinking_blocks(model), "{model}");
        }
        for model in ["gpt-4o", "deepseek-reasoner", "Qwen/Qwen3-32B"] {
            assert!(!takes_thinking_blocks(model), "{model}");
        }
        let mut body = json!({"model": "gpt-4o", "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "a", "reasoning_content": "r",
             "thinking_blocks": [{"type": "thinking", "thinking": "r", "signature": "s"}]}
        ]})
        .as_object()
        .unwrap()
        .clone();
        drop_thinking_blocks(&mut body);
        assert_eq!(
            body["messages"][1],
            json!({"role": "assistant", "content": "a", "reasoning_content": "r"})
        );
    }
}
