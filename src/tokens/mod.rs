//! Token counts. Here, estimates where no tokenizer runs: about four characters a token, used
//! for the answers of providers that report no usage, and for what a request is expected to
//! cost before it is sent (rate-limit token reservations, budget holds, embedding batches).
//! [`tokenizer`] picks a real tokenizer for a model family where one exists (tiktoken's
//! encodings for OpenAI's models) and [`messages`] counts a Messages request with it, for
//! `count_tokens`; the request path does not tokenize.

pub mod messages;
pub mod tokenizer;

pub use tokenizer::Tokenizer;

use serde_json::{Map, Value};

/// A rough token count (about four characters a token), for providers that report none.
pub fn rough_tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
}

/// A rough prompt size: the text of `messages`, `prompt` or `input` (and Anthropic's
/// top-level `system`).
pub fn estimate_prompt_tokens(body: &Map<String, Value>) -> u64 {
    fn text_len(v: &Value) -> u64 {
        match v {
            Value::String(s) => rough_tokens(s),
            Value::Array(items) => items.iter().map(text_len).sum(),
            Value::Object(map) => {
                map.iter()
                    .filter(|(k, _)| matches!(k.as_str(), "content" | "text"))
                    .map(|(_, v)| text_len(v))
                    .sum::<u64>()
                    + 3
            }
            _ => 0,
        }
    }
    ["messages", "prompt", "input", "system"]
        .iter()
        .filter_map(|k| body.get(*k))
        .map(text_len)
        .sum()
}
