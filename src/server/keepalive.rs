//! `ping` events for a streamed `/v1/messages` call whose upstream is slow to start, as
//! Anthropic's own API sends them: past the keep-alive interval
//! (`general_settings.stream_keepalive_seconds`) without an answer from the pipeline, the
//! response is committed (200, `text/event-stream`) and a `ping` goes out every interval
//! until the answer's events follow, or an `event: error` in Anthropic's shape if the call
//! fails after all. A call answered within the interval (the usual case, and every refusal by
//! key, budget or limit, which come before any upstream call) is answered as it would be
//! without pings, with its status and headers. Dropping the body (a client that went away)
//! drops the pending call, which cancels the upstream request.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;

use crate::api::messages::frame;
use crate::error::ApiError;
use crate::proxy::{Reply, ReplyBody};

type Call = Pin<Box<dyn Future<Output = Result<Reply, ApiError>> + Send>>;

/// Awaits `call`, committing the response with pings every `interval` if it takes longer.
pub async fn answer(call: Call, interval: Duration) -> Result<Response, ApiError> {
    let mut call = call;
    tokio::select! {
        result = &mut call => return result.map(super::response::into_response),
        () = tokio::time::sleep(interval) => {}
    }
    let body = Body::from_stream(committed(call, interval));
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

enum State {
    Waiting(Call),
    Relaying(BoxStream<'static, Result<Bytes, Infallible>>),
    Done,
}

/// A ping first (the interval has passed already), then one per interval while the call is
/// pending; then the answer's events.
fn committed(call: Call, interval: Duration) -> BoxStream<'static, Result<Bytes, Infallible>> {
    let first = futures::stream::once(async { Ok(ping()) });
    let rest = futures::stream::unfold(State::Waiting(call), move |state| async move {
        match state {
            State::Waiting(mut call) => {
                tokio::select! {
                    result = &mut call => match result {
                        Ok(reply) => match reply.body {
                            ReplyBody::Sse(events) => {
                                let mut events: BoxStream<'static, _> = Box::pin(events);
                                let next = events.next().await?;
                                Some((next, State::Relaying(events)))
                            }
                            ReplyBody::Frames(mut events) => {
                                let next = events.next().await?;
                                Some((next, State::Relaying(events)))
                            }
                            // A streamed call always answers with events; a body would
                            // not be valid SSE.
                            ReplyBody::Json(_) => Some((
                                Ok(error_event(&ApiError::internal(
                                    "the upstream answered a streamed call without a stream",
                                ))),
                                State::Done,
                            )),
                        },
                        Err(error) => Some((Ok(error_event(&error)), State::Done)),
                    },
                    () = tokio::time::sleep(interval) => Some((Ok(ping()), State::Waiting(call))),
                }
            }
            State::Relaying(mut events) => {
                let next = events.next().await?;
                Some((next, State::Relaying(events)))
            }
            State::Done => None,
        }
    });
    Box::pin(first.chain(rest))
}

fn ping() -> Bytes {
    frame("ping", br#"{"type": "ping"}"#)
}

fn error_event(error: &ApiError) -> Bytes {
    Bytes::from(error.anthropic_sse_event())
}
