//! Turns a pipeline [`Reply`] into an HTTP response: JSON as is, streams as unbuffered SSE.

use axum::body::Body;
use axum::http::{HeaderValue, header};
use axum::response::Response;

use crate::proxy::{Reply, ReplyBody};

pub fn into_response(reply: Reply) -> Response {
    let (content_type, body) = match reply.body {
        ReplyBody::Json(bytes) => ("application/json", Body::from(bytes)),
        ReplyBody::Sse(stream) => ("text/event-stream", Body::from_stream(stream)),
        ReplyBody::Frames(stream) => ("text/event-stream", Body::from_stream(stream)),
    };
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if content_type == "text/event-stream" {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        // Tells nginx-style proxies in front of the gateway not to buffer the stream.
        headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    }
    for (name, value) in reply.headers {
        headers.insert(name, value);
    }
    response
}
