//! The words of OpenAI's API that every layer shares: the endpoint a request came in on, token
//! usage, one streamed chunk, and reading `usage` out of an answer. The cache, spend, router,
//! pipeline and providers all speak these, so they live below all of them; [`thinking`] says
//! how reasoning and its signatures travel on the OpenAI side. Request bodies are
//! read with the gateway's own 400s: as typed structs ([`body`]: `/key/*`, `/v1/rag/*`) or as
//! JSON maps ([`fields`]: the LLM routes).

pub mod body;
pub mod chat;
pub mod fields;
pub mod messages;
pub mod responses;
pub mod thinking;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// The endpoint a request came in on: OpenAI's chat, completions and embeddings, its
/// Responses API ([`responses`]) and Anthropic's Messages API ([`messages`]); the last two
/// reach a provider that does not speak them translated into `Chat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Chat,
    Completion,
    Embedding,
    Messages,
    Responses,
}

impl Endpoint {
    /// LiteLLM's `call_type`: the value of spend logs' `call_type` column and the name
    /// `cache_params.supported_call_types` lists.
    pub fn call_type(self) -> &'static str {
        match self {
            Endpoint::Chat => "acompletion",
            Endpoint::Completion => "atext_completion",
            Endpoint::Embedding => "aembedding",
            Endpoint::Messages => "anthropic_messages",
            Endpoint::Responses => "aresponses",
        }
    }

    /// Parses a `cache_params.supported_call_types` entry (sync and async names alike);
    /// `None` for call types this gateway does not serve (`rerank`, transcriptions and the
    /// like), which are ignored as before.
    pub fn from_call_type(name: &str) -> Option<Self> {
        if name == "anthropic_messages" {
            return Some(Endpoint::Messages);
        }
        match name.trim_start_matches('a') {
            "responses" => Some(Endpoint::Responses),
            "completion" => Some(Endpoint::Chat),
            "text_completion" => Some(Endpoint::Completion),
            "embedding" => Some(Endpoint::Embedding),
            _ => None,
        }
    }

    /// The path below an OpenAI-compatible base URL (a Messages request is sent there as a
    /// chat completion; a Responses request to a server that serves the Responses API).
    pub fn openai_path(self) -> &'static str {
        match self {
            Endpoint::Chat | Endpoint::Messages => "/chat/completions",
            Endpoint::Responses => "/responses",
            Endpoint::Completion => "/completions",
            Endpoint::Embedding => "/embeddings",
        }
    }
}

/// Token counts, OpenAI's `usage` object. The three detail counts are HX's own (not read from
/// or written to the wire here): the protocol and cost work fills them from each provider's
/// usage (OpenAI's `prompt_tokens_details.cached_tokens`, Anthropic's
/// `cache_read_input_tokens` / `cache_creation_input_tokens`, reasoning tokens) and prices
/// them; zero means not reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
    #[serde(default)]
    pub total_tokens: u64,
    /// Prompt tokens read from the provider's prompt cache (part of `prompt_tokens`).
    #[serde(skip)]
    pub cached_read_tokens: u64,
    /// Prompt tokens written to the provider's prompt cache (part of `prompt_tokens`).
    #[serde(skip)]
    pub cache_creation_tokens: u64,
    /// Completion tokens spent on reasoning (part of `completion_tokens`).
    #[serde(skip)]
    pub reasoning_tokens: u64,
}

impl Usage {
    /// Prompt and completion counts, the total their sum, no details.
    pub fn new(prompt_tokens: u64, completion_tokens: u64) -> Self {
        Usage {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens + completion_tokens,
            ..Usage::default()
        }
    }
}

impl Usage {
    /// Prompt and completion counts with the two details OpenAI reports inside them: prompt
    /// tokens read from its cache (at most the prompt) and completion tokens spent reasoning.
    pub fn detailed(
        prompt_tokens: u64,
        completion_tokens: u64,
        cached: Option<u64>,
        reasoning: Option<u64>,
    ) -> Self {
        Usage {
            cached_read_tokens: cached.unwrap_or(0).min(prompt_tokens),
            reasoning_tokens: reasoning.unwrap_or(0),
            ..Usage::new(prompt_tokens, completion_tokens)
        }
    }
}

/// An OpenAI chat answer's `usage` as the wire has it, with the details [`Usage`] keeps (the
/// bridges read it; [`usage_of`] reads the counts alone).
#[derive(Debug, Default, Deserialize)]
pub struct ChatUsage {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
    #[serde(default)]
    pub prompt_tokens_details: Option<CachedDetails>,
    #[serde(default)]
    pub completion_tokens_details: Option<ReasoningDetails>,
}

/// `prompt_tokens_details` (chat) or `input_tokens_details` (Responses).
#[derive(Debug, Default, Deserialize)]
pub struct CachedDetails {
    #[serde(default)]
    pub cached_tokens: Option<u64>,
}

/// `completion_tokens_details` (chat) or `output_tokens_details` (Responses).
#[derive(Debug, Default, Deserialize)]
pub struct ReasoningDetails {
    #[serde(default)]
    pub reasoning_tokens: Option<u64>,
}

impl From<ChatUsage> for Usage {
    fn from(u: ChatUsage) -> Self {
        Usage::detailed(
            u.prompt_tokens,
            u.completion_tokens,
            u.prompt_tokens_details.and_then(|d| d.cached_tokens),
            u.completion_tokens_details.and_then(|d| d.reasoning_tokens),
        )
    }
}

/// One event of a streamed answer: the JSON of one `chat.completion.chunk` (or completion
/// chunk) in OpenAI's shape.
#[derive(Debug, Clone)]
pub struct StreamChunk {
    pub data: Bytes,
    /// Set on the chunk that carries usage (usually the last).
    pub usage: Option<Usage>,
    /// A chunk that carries only usage (no choices): dropped when the client did not ask.
    pub usage_only: bool,
}

/// Reads the top-level `usage` out of an answer of `endpoint` (OpenAI's shape, or Anthropic's
/// for Messages): only that value is parsed.
pub fn answer_usage(endpoint: Endpoint, body: &[u8]) -> Option<Usage> {
    match endpoint {
        Endpoint::Messages => {
            let value = top_level_value(body, b"usage")?;
            let mut parser = serde_json::Deserializer::from_slice(value);
            Option::<messages::MessagesUsage>::deserialize(&mut parser)
                .ok()
                .flatten()
                .map(Usage::from)
        }
        Endpoint::Responses => responses::usage_of_response(body),
        _ => usage_of(body),
    }
}

/// Reads the top-level `usage` out of an OpenAI-shaped JSON answer: only that value is parsed.
pub fn usage_of(body: &[u8]) -> Option<Usage> {
    let value = top_level_value(body, b"usage")?;
    let mut parser = serde_json::Deserializer::from_slice(value);
    Option::<Usage>::deserialize(&mut parser).ok().flatten()
}

/// The bytes of a JSON object from where the value of one of its top-level keys starts.
///
/// Written here because serde_json can only skip the other members by parsing them, which
/// validates every byte of the generated text: ~8,000 instructions for the benchmark's short
/// answer, growing with the answer's length. This scan jumps through strings (`memchr` to the
/// next quote or backslash) and follows nesting, so a `"usage"` inside a string or a nested
/// object never matches; in valid JSON a string followed by `:` at depth 1 is a key of the
/// top-level object. The value itself is then parsed by serde.
fn top_level_value<'a>(json: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let mut depth = 0usize;
    let mut i = 0;
    while let Some(&byte) = json.get(i) {
        match byte {
            b'"' => {
                let start = i + 1;
                let mut end = start;
                // Inside a string only a quote or a backslash matters: jump to the next one.
                loop {
                    end += memchr::memchr2(b'"', b'\\', json.get(end..)?)?;
                    match json[end] {
                        b'\\' => end += 2,
                        _ => break,
                    }
                }
                let rest = json.get(end + 1..)?;
                if depth == 1 && json.get(start..end) == Some(key) {
                    let next = rest.iter().position(|b| !b.is_ascii_whitespace())?;
                    if rest[next] == b':' {
                        return rest.get(next + 1..);
                    }
                }
                i = end + 1;
            }
            b'{' | b'[' => {
                depth += 1;
                i += 1;
            }
            b'}' | b']' => {
                depth = depth.checked_sub(1)?;
                i += 1;
            }
            _ => i += 1,
        }
    }
    None
}

#[cfg(test)]
mod usage_tests {
    use super::*;

    fn usage(prompt: u64, completion: u64) -> Option<Usage> {
        Some(Usage::new(prompt, completion))
    }

    #[test]
    fn the_top_level_usage_is_read() {
        let body = br#"{"id":"c1","choices":[{"message":{"content":"hi"}}],"usage":{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8},"system_fingerprint":"fp"}"#;
        assert_eq!(usage_of(body), usage(5, 3));
        let spaced = b"{ \"usage\" :\n {\"prompt_tokens\": 2, \"completion_tokens\": 1, \"total_tokens\": 3} }";
        assert_eq!(usage_of(spaced), usage(2, 1));
    }

    #[test]
    fn usage_inside_strings_or_nested_objects_is_not_the_answers() {
        // The generated text mentions the key, escaped quotes included; a nested object has a
        // `usage` of its own before the real one.
        let body = br#"{"choices":[{"message":{"content":"say \"usage\": {\"prompt_tokens\": 99} \\"}}],"meta":{"usage":{"prompt_tokens":50,"completion_tokens":50,"total_tokens":100}},"model":"usage","usage":{"prompt_tokens":7,"completion_tokens":1,"total_tokens":8}}"#;
        assert_eq!(usage_of(body), usage(7, 1));
        let nested_only = br#"{"choices":[{"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}]}"#;
        assert_eq!(usage_of(nested_only), None);
    }

    #[test]
    fn missing_null_or_broken_usage_is_none() {
        assert_eq!(usage_of(br#"{"choices":[]}"#), None);
        assert_eq!(usage_of(br#"{"usage":null}"#), None);
        assert_eq!(usage_of(br#"{"usage":{"prompt_tokens":"many"}}"#), None);
        assert_eq!(usage_of(br#"{"usage""#), None);
        assert_eq!(usage_of(b"not json"), None);
        assert_eq!(usage_of(br#"{"content":"unterminated"#), None);
    }
}
