//! `/v1/messages` on any deployment: natively where the provider speaks Anthropic's wire
//! format (a capability of the provider, [`Provider::messages_native`]), else translated into
//! a chat completion for the provider and its answer or stream translated back
//! (`api::messages`). An OpenAI-compatible upstream gets the assistant turns' `thinking_blocks`
//! only when it serves Claude (`api::thinking`); every other provider reads no more than their
//! `reasoning_content`.

use std::collections::VecDeque;

use futures::StreamExt;

use super::native::openai_error_body;
use super::{ChunkStream, Provider, ProviderError, ProviderResponse, UpstreamRequest};
use crate::api::Endpoint;
use crate::api::messages::{ChunksToEvents, from_chat_answer, to_chat_request};
use crate::api::thinking::{drop_thinking_blocks, takes_thinking_blocks};

/// One Messages call to one deployment.
pub async fn call(
    provider: &Provider,
    request: UpstreamRequest<'_>,
) -> Result<ProviderResponse, ProviderError> {
    if let Some(native) = provider.messages_native() {
        return native.messages(request).await;
    }
    let mut body = to_chat_request(request.body).map_err(ProviderError::Rejected)?;
    let upstream_model = request.deployment.upstream_model(request.requested_model);
    if !(provider.speaks_openai() && takes_thinking_blocks(&upstream_model)) {
        drop_thinking_blocks(&mut body);
    }
    let model = request.requested_model.to_string();
    let chat = UpstreamRequest {
        endpoint: Endpoint::Chat,
        body: &body,
        ..request
    };
    match provider.call_openai(chat).await? {
        ProviderResponse::Complete { body, .. } => match from_chat_answer(&body, &model) {
            Ok((body, usage)) => Ok(ProviderResponse::Complete { body, usage }),
            Err(message) => Err(ProviderError::Status {
                status: 502,
                body: openai_error_body("gateway", 502, None, &message),
                retry_after: None,
            }),
        },
        ProviderResponse::Stream(chunks) => Ok(ProviderResponse::Stream(events(chunks, model))),
    }
}

/// An OpenAI chunk stream as a Messages event stream.
fn events(chunks: ChunkStream, model: String) -> ChunkStream {
    struct State {
        upstream: Option<ChunkStream>,
        translator: ChunksToEvents,
        pending: VecDeque<crate::api::StreamChunk>,
    }
    let state = State {
        upstream: Some(chunks),
        translator: ChunksToEvents::new(model),
        pending: VecDeque::new(),
    };
    Box::pin(futures::stream::unfold(state, |mut s| async move {
        loop {
            if let Some(event) = s.pending.pop_front() {
                return Some((Ok(event), s));
            }
            let upstream = s.upstream.as_mut()?;
            match upstream.next().await {
                Some(Ok(chunk)) => match s.translator.on_chunk(&chunk.data) {
                    Ok(events) => s.pending.extend(events),
                    Err(e) => {
                        s.upstream = None;
                        return Some((Err(ProviderError::Stream(e)), s));
                    }
                },
                Some(Err(e)) => {
                    s.upstream = None;
                    return Some((Err(e), s));
                }
                None => {
                    s.upstream = None;
                    let closing = s.translator.finish();
                    s.pending.extend(closing);
                }
            }
        }
    }))
}
