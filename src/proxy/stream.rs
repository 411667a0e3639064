//! The client side of a streamed answer: frames each upstream chunk as an SSE event the moment
//! it arrives, drops the usage-only chunk the client did not ask for, ends with `[DONE]`, or
//! with one OpenAI-shaped error event if the upstream breaks off. A Messages stream's chunks
//! are whole Anthropic events already: they pass as they are, the stream ends after
//! `message_stop` without `[DONE]`, and a failure is Anthropic's `event: error`. Dropping it (a client that
//! went away) drops the upstream stream, which closes the upstream connection.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::{BufMut, Bytes, BytesMut};
use futures::Stream;

use crate::api::Usage;
use crate::error::Protocol;
use crate::providers::ChunkStream;

/// Called once when the stream ends, however it ends, with the usage seen (if any).
pub type OnFinish = Box<dyn FnOnce(Option<Usage>) + Send>;

pub struct SseStream {
    upstream: Option<ChunkStream>,
    include_usage: bool,
    model_group: String,
    usage: Option<Usage>,
    on_finish: Option<OnFinish>,
    /// When the request started; taken at the first chunk for the time-to-first-token metric.
    first_token_from: Option<Instant>,
    protocol: Protocol,
}

impl SseStream {
    pub fn new(
        upstream: ChunkStream,
        include_usage: bool,
        model_group: String,
        on_finish: OnFinish,
    ) -> Self {
        SseStream {
            upstream: Some(upstream),
            include_usage,
            model_group,
            usage: None,
            on_finish: Some(on_finish),
            first_token_from: None,
            protocol: Protocol::OpenAi,
        }
    }

    /// Streams in `protocol`'s framing (OpenAI's unless told).
    pub fn with_protocol(mut self, protocol: Protocol) -> Self {
        self.protocol = protocol;
        self
    }

    /// Records the time from `started` to the first chunk sent (`hx_time_to_first_token_seconds`).
    pub fn with_request_start(mut self, started: Instant) -> Self {
        self.first_token_from = Some(started);
        self
    }

    fn finish(&mut self) {
        self.upstream = None;
        if let Some(f) = self.on_finish.take() {
            f(self.usage);
        }
    }
}

fn frame(data: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(data.len() + 8);
    out.put_slice(b"data: ");
    out.put_slice(data);
    out.put_slice(b"\n\n");
    out.freeze()
}

impl Stream for SseStream {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            let Some(upstream) = self.upstream.as_mut() else {
                return Poll::Ready(None);
            };
            match upstream.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => {
                    self.finish();
                    return match self.protocol {
                        Protocol::OpenAi => {
                            Poll::Ready(Some(Ok(Bytes::from_static(b"data: [DONE]\n\n"))))
                        }
                        Protocol::Anthropic => Poll::Ready(None),
                    };
                }
                Poll::Ready(Some(Err(error))) => {
                    let model = self.model_group.clone();
                    tracing::warn!(model_group = %model, error = %error, "upstream stream failed after it started");
                    self.finish();
                    let error = error.into_api_error(&model);
                    let event = match self.protocol {
                        Protocol::OpenAi => error.sse_event(),
                        Protocol::Anthropic => error.anthropic_sse_event(),
                    };
                    return Poll::Ready(Some(Ok(Bytes::from(event))));
                }
                Poll::Ready(Some(Ok(chunk))) => {
                    if let Some(usage) = chunk.usage {
                        self.usage = Some(usage);
                    }
                    if chunk.data.is_empty() || (chunk.usage_only && !self.include_usage) {
                        continue;
                    }
                    if let Some(started) = self.first_token_from.take() {
                        crate::metrics::record_time_to_first_token(
                            &self.model_group,
                            started.elapsed(),
                        );
                    }
                    return Poll::Ready(Some(Ok(match self.protocol {
                        Protocol::OpenAi => frame(&chunk.data),
                        Protocol::Anthropic => chunk.data,
                    })));
                }
            }
        }
    }
}

impl Drop for SseStream {
    fn drop(&mut self) {
        self.finish();
    }
}
