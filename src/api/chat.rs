//! An OpenAI chat answer as the protocol bridges read it back (`messages`, `responses`): the
//! first choice's message (text, reasoning under LiteLLM's or vLLM's name, LiteLLM's thinking
//! blocks, tool calls, refusal), its finish reason and the usage. One reading for both, so a
//! field one bridge learns to read the other can use.

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
