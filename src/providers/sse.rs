//! The one Server-Sent Events reader of every upstream: a byte stream into `(event, data)`
//! pairs without buffering (each event is handed on as soon as its bytes arrive), and
//! OpenAI-style SSE into OpenAI chunks on top of it. The translating providers feed the same
//! pairs to their stream translators.

use bytes::Bytes;
use eventsource_stream::Eventsource;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use serde::Deserialize;
use serde::de::IgnoredAny;

use super::{ChunkStream, ProviderError};
use crate::api::{StreamChunk, Usage};

/// Upstream events as `(event name, data)`: SSE events, or NDJSON lines (name empty).
pub type EventStream =
    std::pin::Pin<Box<dyn Stream<Item = Result<(String, String), ProviderError>> + Send>>;

/// The SSE events of a byte stream as `(event name, data)`; a broken stream ends with
/// [`ProviderError::Stream`].
pub fn events<S, E>(bytes: S) -> EventStream
where
    S: Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    Box::pin(bytes.eventsource().map(|event| match event {
        Ok(e) => Ok((e.event, e.data)),
        Err(e) => Err(ProviderError::Stream(e.to_string())),
    }))
}

/// The SSE events of an upstream response (see [`events`]).
pub fn response_events(response: reqwest::Response) -> EventStream {
    events(response.bytes_stream())
}

/// Turns an OpenAI-style SSE response (`data: {...}` events, ending with `data: [DONE]`) into
/// a stream of chunks. An `{"error": ...}` event, or a broken connection, ends it with an error.
pub fn openai_chunks(bytes: BoxStream<'static, Result<Bytes, String>>) -> ChunkStream {
    let stream = events(bytes)
        .map(|event| match event {
            Ok((_, data)) => parse_event(data),
            Err(e) => Some(Err(e)),
        })
        .take_while(|item| std::future::ready(item.is_some()))
        .filter_map(std::future::ready);
    Box::pin(stream)
}

/// `None` ends the stream (`[DONE]`).
fn parse_event(data: String) -> Option<Result<StreamChunk, ProviderError>> {
    let trimmed = data.trim();
    if trimmed == "[DONE]" {
        return None;
    }
    if trimmed.is_empty() {
        // Keep-alive or comment-only events carry nothing to forward.
        return Some(Ok(StreamChunk {
            data: Bytes::new(),
            usage: None,
            usage_only: false,
        }));
    }
    if trimmed.starts_with("{\"error\"") {
        let message = serde_json::from_str::<serde_json::Value>(trimmed)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
            .unwrap_or_else(|| "upstream sent an error event".to_string());
        return Some(Err(ProviderError::Stream(message)));
    }
    let (usage, usage_only) = chunk_usage(trimmed);
    Some(Ok(StreamChunk {
        data: Bytes::from(data),
        usage,
        usage_only,
    }))
}

/// Usage of a chunk, and whether the chunk carries nothing else (no choices). Only chunks that
/// mention `usage` are parsed, so ordinary content chunks cost a substring search.
pub fn chunk_usage(data: &str) -> (Option<Usage>, bool) {
    if !data.contains("\"usage\"") {
        return (None, false);
    }
    #[derive(Deserialize)]
    struct Chunk {
        usage: Option<Usage>,
        #[serde(default)]
        choices: Vec<IgnoredAny>,
    }
    match serde_json::from_str::<Chunk>(data) {
        Ok(chunk) => {
            let usage_only = chunk.usage.is_some() && chunk.choices.is_empty();
            (chunk.usage, usage_only)
        }
        Err(_) => (None, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_only_chunks_are_recognised() {
        let (u, only) = chunk_usage(
            r#"{"id":"x","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}"#,
        );
        assert_eq!(u.map(|u| u.total_tokens), Some(5));
        assert!(only);
        let (u, only) =
            chunk_usage(r#"{"id":"x","choices":[{"delta":{"content":"hi"}}],"usage":null}"#);
        assert!(u.is_none());
        assert!(!only);
    }

    #[test]
    fn done_ends_and_error_fails() {
        assert!(parse_event("[DONE]".into()).is_none());
        assert!(matches!(
            parse_event(r#"{"error":{"message":"boom"}}"#.into()),
            Some(Err(ProviderError::Stream(m))) if m == "boom"
        ));
    }
}
