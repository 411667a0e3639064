//! The client side of a streamed answer: frames each upstream chunk as an SSE event the moment
//! it arrives, drops the usage-only chunk the client did not ask for, ends with `[DONE]`, or
//! with one OpenAI-shaped error event if the upstream breaks off. Dropping it (a client that
//! went away) drops the upstream stream, which closes the upstream connection.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{BufMut, Bytes, BytesMut};
use futures::Stream;

use crate::providers::{ChunkStream, Usage};

/// Called once when the stream ends, however it ends, with the usage seen (if any).
pub type OnFinish = Box<dyn FnOnce(Option<Usage>) + Send>;

pub struct SseStream {
    upstream: Option<ChunkStream>,
    include_usage: bool,
    model_group: String,
    usage: Option<Usage>,
    on_finish: Option<OnFinish>,
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
        }
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
                    return Poll::Ready(Some(Ok(Bytes::from_static(b"data: [DONE]\n\n"))));
                }
                Poll::Ready(Some(Err(error))) => {
                    let model = self.model_group.clone();
                    tracing::warn!(model_group = %model, error = %error, "upstream stream failed after it started");
                    self.finish();
                    let event = error.into_api_error(&model).sse_event();
                    return Poll::Ready(Some(Ok(Bytes::from(event))));
                }
                Poll::Ready(Some(Ok(chunk))) => {
                    if let Some(usage) = chunk.usage {
                        self.usage = Some(usage);
                    }
                    if chunk.data.is_empty() || (chunk.usage_only && !self.include_usage) {
                        continue;
                    }
                    return Poll::Ready(Some(Ok(frame(&chunk.data))));
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
