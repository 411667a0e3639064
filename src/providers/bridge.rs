//! The stream half of a protocol bridge: an OpenAI chat chunk stream fed through a
//! translator (Messages' or Responses' events, `api::messages` / `api::responses`), its
//! closing events when the upstream ends, and the translator's say on an upstream failure
//! (a Responses stream ends with its own `response.failed`; a Messages stream passes the
//! error on for the pipeline to frame).

use std::collections::VecDeque;

use bytes::Bytes;
use futures::StreamExt;
use serde_json::{Map, Value};

use super::native::openai_error_body;
use super::{ChunkStream, Provider, ProviderError, ProviderResponse, UpstreamRequest};
use crate::api::{Endpoint, StreamChunk, Usage};

/// The protocol's side of a bridged call: what turns a chat answer back into the protocol's
/// answer, and the translator of a chat stream.
pub trait Bridged {
    type Translator: Translator;
    /// The protocol's answer for a chat answer; `Err` when it cannot be read.
    fn answer(&self, chat_answer: &[u8]) -> Result<(Bytes, Option<Usage>), String>;
    fn translator(self) -> Self::Translator;
}

/// One bridged call: `chat` (the request as a chat body) sent to the provider as a chat
/// completion; its answer turned back by `bridged` (one that cannot be is a 502, retried
/// elsewhere like any bad answer), its stream by `bridged`'s translator.
pub async fn call<B: Bridged>(
    provider: &Provider,
    request: UpstreamRequest<'_>,
    chat: &Map<String, Value>,
    bridged: B,
) -> Result<ProviderResponse, ProviderError> {
    let request = UpstreamRequest {
        endpoint: Endpoint::Chat,
        body: chat,
        ..request
    };
    match provider.call_openai(request).await? {
        ProviderResponse::Complete { body, .. } => match bridged.answer(&body) {
            Ok((body, usage)) => Ok(ProviderResponse::Complete { body, usage }),
            Err(message) => Err(ProviderError::Status {
                status: 502,
                body: openai_error_body("gateway", 502, None, &message),
                retry_after: None,
            }),
        },
        ProviderResponse::Stream(chunks) => Ok(ProviderResponse::Stream(translate(
            chunks,
            bridged.translator(),
        ))),
    }
}

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
fn translate<T: Translator>(chunks: ChunkStream, translator: T) -> ChunkStream {
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
