//! Error bodies: an upstream failure of a translating provider in OpenAI's error shape, with
//! context-window and content-policy errors recognised whatever the provider calls them.

use bytes::Bytes;
use serde_json::json;

/// Maps a provider's error body to OpenAI's shape: `(status, body) -> OpenAI error JSON`.
pub type ErrorTranslator = fn(u16, &str) -> Bytes;

/// The upstream's own message, else its raw text, else a generic word.
pub fn message_or_text<'a>(message: Option<&'a str>, text: &'a str) -> &'a str {
    message.unwrap_or(if text.is_empty() {
        "upstream error"
    } else {
        text
    })
}

/// An OpenAI-shaped error body for an upstream failure. Context-window and content-policy
/// errors are recognised from the message, whatever the provider calls them.
pub fn openai_error_body(
    provider: &str,
    status: u16,
    upstream_type: Option<&str>,
    message: &str,
) -> Bytes {
    let lower = message.to_ascii_lowercase();
    let context_window = matches!(status, 400 | 413)
        && (lower.contains("prompt is too long")
            || lower.contains("context length")
            || lower.contains("context window")
            || lower.contains("too many tokens")
            || (lower.contains("input token count") && lower.contains("exceeds")));
    let content_policy = !context_window
        && (lower.contains("content policy")
            || lower.contains("content_policy")
            || lower.contains("content filter"));
    let (kind, message) = if context_window {
        (
            "invalid_request_error",
            format!("{provider}: context window exceeded (context_length_exceeded): {message}"),
        )
    } else if content_policy && status == 400 {
        (
            "invalid_request_error",
            format!("{provider}: content policy violation: {message}"),
        )
    } else {
        let kind = match (upstream_type, status) {
            (_, 401) => "authentication_error",
            (_, 403) => "permission_error",
            (_, 404) => "not_found_error",
            (_, 429) => "rate_limit_error",
            (_, 408 | 504) => "timeout_error",
            (Some("UNAUTHENTICATED"), _) => "authentication_error",
            (Some("PERMISSION_DENIED"), _) => "permission_error",
            (_, 400 | 413 | 422) => "invalid_request_error",
            _ => "api_error",
        };
        (kind, format!("{provider}: {message}"))
    };
    let body = json!({"error": {"message": message, "type": kind, "param": null,
                                "code": status.to_string()}});
    Bytes::from(body.to_string())
}
