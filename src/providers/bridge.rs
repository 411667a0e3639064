//! The stream half of a protocol bridge: an OpenAI chat chunk stream fed through a
//! translator (Messages' or Responses' events, `api::messages` / `api::responses`), its
//! closing events when the upstream ends, and the translator's say on an upstream failure
//! (a Responses stream ends with its own `response.failed`; a Messages stream passes the
//! error on for the pipeline to frame).

use std::collections::VecDeque;

use futures::StreamExt;

use super::{ChunkStream, ProviderError};
use crate::api::StreamChunk;

/// Chat chunks in, protocol events out.
pub trait Translator: Send + 'static {
    /// The events for one chunk's JSON; `Err` when the chunk cannot be read.
    fn on_chunk(&mut self, data: &[u8]) -> Result<Vec<StreamChunk>, String>;
    /// The closing events once the upstream stream ended.
    fn finish(&mut self) -> Vec<StreamChunk>;
    /// The events that end a failed stream, or the error back to pass it on.
    fn fail(&mut self, error: ProviderError) -> Result<Vec<StreamChunk>, ProviderError>;
}

/// `chunks` translated by `translator`, event by event as the chunks arrive.
pub fn translate<T: Translator>(chunks: ChunkStream, translator: T) -> ChunkStream {
    struct State<T> {
        upstream: Option<ChunkStream>,
        translator: T,
        pending: VecDeque<StreamChunk>,
    }
    let state = State {
        upstream: Some(chunks),
        translator,
        pending: VecDeque::new(),
    };
    Box::pin(futures::stream::unfold(state, |mut s| async move {
        loop {
            if let Some(event) = s.pending.pop_front() {
                return Some((Ok(event), s));
            }
            let upstream = s.upstream.as_mut()?;
            let failure = match upstream.next().await {
                Some(Ok(chunk)) => match s.translator.on_chunk(&chunk.data) {
                    Ok(events) => {
                        s.pending.extend(events);
                        continue;
                    }
                    Err(e) => ProviderError::Stream(e),
                },
                Some(Err(e)) => e,
                None => {
                    s.upstream = None;
                    let closing = s.translator.finish();
                    s.pending.extend(closing);
                    continue;
                }
            };
            s.upstream = None;
            match s.translator.fail(failure) {
                Ok(events) => s.pending.extend(events),
                Err(e) => return Some((Err(e), s)),
            }
        }
    }))
}
