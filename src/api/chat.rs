//! An OpenAI chat answer, and one chunk of a chat stream, as the protocol bridges read them
//! back (`messages`, `responses`): the first choice's message or delta (text, reasoning under
//! LiteLLM's or vLLM's name, LiteLLM's thinking blocks, tool calls, refusal), its finish
//! reason and the usage. One reading for both, so a field one bridge learns to read the other
//! can use.

use serde::Deserialize;
use serde_json::Value;

use super::ChatUsage;

#[derive(Debug, Deserialize)]
pub(crate) struct ChatAnswer {
    #[serde(default)]
    pub choices: Vec<AnswerChoice>,
    #[serde(default)]
    pub usage: Option<ChatUsage>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct AnswerChoice {
    #[serde(default)]
    pub message: AnswerMessage,
    #[serde(default)]
    pub finish_reason: Option<String>,
}

/// `reasoning_content` and `thinking_blocks` are LiteLLM's (`thinking`'s
/// `REASONING_CONTENT`, `THINKING_BLOCKS`); `reasoning` is vLLM's newer name for the former
/// (also OpenRouter's).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct AnswerMessage {
    #[serde(default)]
    pub content: Option<Value>,
    #[serde(default)]
    pub reasoning_content: Option<String>,
    #[serde(default)]
    pub reasoning: Option<Value>,
    #[serde(default)]
    pub thinking_blocks: Option<Vec<Value>>,
    #[serde(default)]
    pub tool_calls: Option<Vec<AnswerToolCall>>,
    #[serde(default)]
    pub refusal: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct AnswerToolCall {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub function: AnswerFunction,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct AnswerFunction {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub arguments: String,
}

/// One `chat.completion.chunk`.
#[derive(Debug, Deserialize)]
pub(crate) struct Chunk {
    #[serde(default)]
    pub choices: Vec<ChunkChoice>,
    #[serde(default)]
    pub usage: Option<ChatUsage>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ChunkChoice {
    #[serde(default)]
    pub delta: Delta,
    #[serde(default)]
    pub finish_reason: Option<String>,
}

/// A choice's delta, with the fields of [`AnswerMessage`] as they stream.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Delta {
    #[serde(default)]
    pub content: Option<String>,
    #[serde(default)]
    pub reasoning_content: Option<String>,
    #[serde(default)]
    pub reasoning: Option<Value>,
    #[serde(default)]
    pub thinking_blocks: Option<Vec<Value>>,
    #[serde(default)]
    pub refusal: Option<String>,
    #[serde(default)]
    pub tool_calls: Option<Vec<ToolDelta>>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ToolDelta {
    #[serde(default)]
    pub index: Option<u64>,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub function: Option<FunctionDelta>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct FunctionDelta {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub arguments: Option<String>,
}
