//! The client side of a streamed answer: frames each upstream chunk as an SSE event the moment
//! it arrives, drops the usage-only chunk the client did not ask for, ends with `[DONE]`, or
//! with one OpenAI-shaped error event if the upstream breaks off. A Messages or Responses
//! stream's chunks are whole events already: they pass as they are and the stream ends without
//! `[DONE]`; a failure is Anthropic's `event: error`, or a `response.failed` numbered after
//! the events sent (a bridged stream's translator writes its own before this sees one).
//! Dropping it (a client that went away) drops the upstream stream, which closes the upstream
//! connection.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::{BufMut, Bytes, BytesMut};
use futures::Stream;

use crate::api::{Endpoint, Usage, responses};
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
    framing: Framing,
    /// Events sent so far (a Responses stream's next `sequence_number`).
    sent: u64,
    /// A Responses stream's id, from its first event.
    response_id: Option<String>,
}

/// How chunks become the client's events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// OpenAI chunks, framed `data: ...`, ending with `[DONE]`.
    OpenAiChunks,
    /// Anthropic's Messages events, already framed.
    AnthropicEvents,
    /// OpenAI's Responses events, already framed.
    ResponsesEvents,
}

impl Framing {
    pub fn of(endpoint: Endpoint) -> Self {
        match endpoint {
            Endpoint::Messages => Framing::AnthropicEvents,
            Endpoint::Responses => Framing::ResponsesEvents,
            _ => Framing::OpenAiChunks,
        }
    }
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
            framing: Framing::OpenAiChunks,
            sent: 0,
            response_id: None,
        }
    }

    /// Streams in this framing (OpenAI chunks unless told).
    pub fn with_framing(mut self, framing: Framing) -> Self {
        self.framing = framing;
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
                    return match self.framing {
                        Framing::OpenAiChunks => {
                            Poll::Ready(Some(Ok(Bytes::from_static(b"data: [DONE]\n\n"))))
                        }
                        Framing::AnthropicEvents | Framing::ResponsesEvents => Poll::Ready(None),
                    };
                }
                Poll::Ready(Some(Err(error))) => {
                    let model = self.model_group.clone();
                    tracing::warn!(model_group = %model, error = %error, "upstream stream failed after it started");
                    self.finish();
                    let error = error.into_api_error(&model);
                    let event = match self.framing {
                        Framing::OpenAiChunks => Bytes::from(error.sse_event()),
                        Framing::AnthropicEvents => Bytes::from(error.anthropic_sse_event()),
                        Framing::ResponsesEvents => responses::failed_event(
                            &responses::ResponseContext::new(&serde_json::Map::new()),
                            self.response_id.as_deref(),
                            self.sent,
                            responses::error_code(&error),
                            &error.message,
                        ),
                    };
                    return Poll::Ready(Some(Ok(event)));
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
                    if self.framing == Framing::ResponsesEvents {
                        if self.sent == 0 {
                            self.response_id = response_id_of(&chunk.data);
                        }
                        self.sent += 1;
                    }
                    return Poll::Ready(Some(Ok(match self.framing {
                        Framing::OpenAiChunks => frame(&chunk.data),
                        Framing::AnthropicEvents | Framing::ResponsesEvents => chunk.data,
                    })));
                }
            }
        }
    }
}

/// The Response id in a framed Responses event (`response.created` carries it).
fn response_id_of(event: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Event {
        response: Option<Response>,
    }
    #[derive(serde::Deserialize)]
    struct Response {
        id: String,
    }
    let text = std::str::from_utf8(event).ok()?;
    let data = text.split_once("data: ")?.1.trim_end();
    serde_json::from_str::<Event>(data)
        .ok()?
        .response
        .map(|r| r.id)
}

impl Drop for SseStream {
    fn drop(&mut self) {
        self.finish();
    }
}
