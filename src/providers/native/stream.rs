//! Stream translation: a provider's stream protocol as a state machine fed one upstream event
//! at a time (SSE events or NDJSON lines), driven into OpenAI chunks without buffering.

use std::collections::VecDeque;

use bytes::BytesMut;
use futures::StreamExt;

use crate::api::StreamChunk;
use crate::providers::sse::EventStream;
use crate::providers::{ChunkStream, ProviderError};
use crate::secret::scrub;

/// A provider's stream protocol, as a state machine fed one upstream event at a time.
pub trait StreamTranslator: Send + 'static {
    /// One upstream event (`kind` is the SSE event name, empty for NDJSON lines). Returns
    /// `true` when the answer is complete.
    fn on_event(
        &mut self,
        kind: &str,
        data: &str,
        out: &mut Vec<StreamChunk>,
    ) -> Result<bool, ProviderError>;

    /// The upstream closed its stream before the event that completes the answer.
    fn on_close(&mut self, out: &mut Vec<StreamChunk>) -> Result<(), ProviderError>;
}

/// NDJSON lines of a response (one JSON object a line), each as `("", line)`.
pub fn ndjson_lines(response: reqwest::Response) -> EventStream {
    let state = (Box::pin(response.bytes_stream()), BytesMut::new(), false);
    let lines = futures::stream::unfold(state, |(mut bytes, mut buffer, ended)| async move {
        if ended {
            return None;
        }
        loop {
            if let Some(pos) = buffer.iter().position(|b| *b == b'\n') {
                let line = buffer.split_to(pos + 1);
                let text = String::from_utf8_lossy(&line).trim().to_string();
                if text.is_empty() {
                    continue;
                }
                return Some((Ok((String::new(), text)), (bytes, buffer, false)));
            }
            match bytes.next().await {
                Some(Ok(chunk)) => buffer.extend_from_slice(&chunk),
                Some(Err(e)) => {
                    let err = ProviderError::Stream(e.to_string());
                    return Some((Err(err), (bytes, buffer, true)));
                }
                None => {
                    let text = String::from_utf8_lossy(&buffer).trim().to_string();
                    buffer.clear();
                    if text.is_empty() {
                        return None;
                    }
                    return Some((Ok((String::new(), text)), (bytes, buffer, true)));
                }
            }
        }
    });
    Box::pin(lines)
}

struct Driver<T> {
    events: EventStream,
    translator: T,
    /// The upstream key, scrubbed from error texts (upstreams may echo what they were sent).
    secret: Option<String>,
    pending: VecDeque<StreamChunk>,
    finished: bool,
}

/// Runs a translator over upstream events. Events that produce nothing (pings, block
/// boundaries) are consumed without yielding, so the first item is real content: the router
/// can still retry a stream that fails before it.
pub fn translate_stream<T: StreamTranslator>(
    events: EventStream,
    translator: T,
    secret: Option<&str>,
) -> ChunkStream {
    let driver = Driver {
        events,
        translator,
        secret: secret.map(str::to_string),
        pending: VecDeque::new(),
        finished: false,
    };
    Box::pin(futures::stream::unfold(driver, |mut d| async move {
        loop {
            if let Some(chunk) = d.pending.pop_front() {
                return Some((Ok(chunk), d));
            }
            if d.finished {
                return None;
            }
            let mut out = Vec::new();
            let step = match d.events.next().await {
                Some(Ok((kind, data))) => d.translator.on_event(&kind, &data, &mut out),
                Some(Err(e)) => Err(e),
                None => d.translator.on_close(&mut out).map(|()| true),
            };
            match step {
                Ok(done) => {
                    d.finished = done;
                    d.pending.extend(out);
                }
                Err(ProviderError::Stream(text)) => {
                    d.finished = true;
                    let text = scrub(&text, &d.secret.as_deref().into_iter().collect::<Vec<_>>());
                    return Some((Err(ProviderError::Stream(text)), d));
                }
                Err(e) => {
                    d.finished = true;
                    return Some((Err(e), d));
                }
            }
        }
    }))
}
