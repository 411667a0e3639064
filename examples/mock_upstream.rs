//! A fast mock OpenAI-compatible upstream for the benchmark (`bench/run.sh`): answers every
//! POST with one fixed `chat.completion` (with `usage`) and every GET with `{"status":"ok"}`.
//! A POST whose body asks for `"stream": true` gets the same answer streamed instead, in
//! OpenAI's `chat.completion.chunk` format: a first chunk with the role, the text in eight
//! chunks, one with the `finish_reason`, a last one with `usage` when the body asks for
//! `"include_usage": true` (every chunk then carries `"usage": null`, as OpenAI's do), and
//! `data: [DONE]`.
//!
//! It has to be much faster than anything put in front of it, so that the benchmark measures
//! the proxy and not the mock: plain hyper HTTP/1.1 with keep-alive, no routing, no JSON
//! parsing (the two flags are found by a byte search), bodies built once. The request body is
//! still read to the end so keep-alive works.
//!
//! Usage: `mock_upstream PORT [PORT...]` — listens on 127.0.0.1 on each port (one process can
//! stand in for several deployments). Worker threads: `MOCK_THREADS` (default: all cores).
//! `MOCK_STREAM_GAP_US`: the pause between a stream's chunks, in microseconds (default 0: all
//! at once; the first chunk always goes out with the headers), as a model spaces its tokens.

// An example binary that talks to the operator on stdout/stderr.
#![expect(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command-line program: its output is printed"
)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Either, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// The one answer every chat request gets: the shape of a real OpenAI `chat.completion`.
const CHAT_COMPLETION: &str = r#"{"id":"chatcmpl-bench0000000000000000000000000","object":"chat.completion","created":1700000000,"model":"bench-gpt","system_fingerprint":"fp_bench","choices":[{"index":0,"message":{"role":"assistant","content":"Hello! This is a fixed answer from the benchmark's mock upstream.","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":14,"total_tokens":23,"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}}}"#;

const HEALTH: &str = r#"{"status":"ok"}"#;

/// The text of [`CHAT_COMPLETION`], as a stream sends it: one chunk each.
const STREAM_TEXT: [&str; 8] = [
    "Hello!",
    " This",
    " is",
    " a fixed",
    " answer",
    " from the benchmark's",
    " mock",
    " upstream.",
];

/// A streamed answer's SSE events, each one frame: without a usage chunk, and with.
struct StreamAnswers {
    plain: Arc<[Bytes]>,
    with_usage: Arc<[Bytes]>,
}

static STREAM: LazyLock<StreamAnswers> = LazyLock::new(|| StreamAnswers {
    plain: stream_events(false).into(),
    with_usage: stream_events(true).into(),
});

fn stream_events(include_usage: bool) -> Vec<Bytes> {
    let usage_null = if include_usage {
        r#","usage":null"#
    } else {
        ""
    };
    let chunk = |choices: &str, usage: &str| {
        Bytes::from(format!(
            "data: {{\"id\":\"chatcmpl-bench0000000000000000000000000\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"bench-gpt\",\"system_fingerprint\":\"fp_bench\",\"choices\":[{choices}]{usage}}}\n\n"
        ))
    };
    let delta = |delta: &str, finish: &str| {
        format!(r#"{{"index":0,"delta":{delta},"logprobs":null,"finish_reason":{finish}}}"#)
    };
    let mut events = vec![chunk(
        &delta(
            r#"{"role":"assistant","content":"","refusal":null}"#,
            "null",
        ),
        usage_null,
    )];
    for text in STREAM_TEXT {
        events.push(chunk(
            &delta(&format!(r#"{{"content":"{text}"}}"#), "null"),
            usage_null,
        ));
    }
    events.push(chunk(&delta("{}", r#""stop""#), usage_null));
    if include_usage {
        events.push(chunk(
            "",
            r#","usage":{"prompt_tokens":9,"completion_tokens":14,"total_tokens":23,"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}}"#,
        ));
    }
    events.push(Bytes::from_static(b"data: [DONE]\n\n"));
    events
}

/// Whether the JSON body sets `"key": true` (compact or with spaces; no parsing).
fn flag(body: &[u8], key: &str) -> bool {
    let quoted = format!("\"{key}\"");
    memchr::memmem::find_iter(body, quoted.as_bytes()).any(|at| {
        let rest = &body[at + quoted.len()..];
        let rest = rest.trim_ascii_start();
        rest.strip_prefix(b":")
            .is_some_and(|v| v.trim_ascii_start().starts_with(b"true"))
    })
}

type Body = Either<Full<Bytes>, UnsyncBoxBody<Bytes, Infallible>>;

fn with_type(body: Body, content_type: &'static str) -> Response<Body> {
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::OK;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    response
}

async fn answer(req: Request<Incoming>, gap: Duration) -> Result<Response<Body>, Infallible> {
    let method = req.method().clone();
    // Read the body to the end, so the connection can be reused; only two flags matter.
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    if method != Method::POST {
        let health = Full::new(Bytes::from_static(HEALTH.as_bytes()));
        return Ok(with_type(Either::Left(health), "application/json"));
    }
    if !flag(&body, "stream") {
        let answer = Full::new(Bytes::from_static(CHAT_COMPLETION.as_bytes()));
        return Ok(with_type(Either::Left(answer), "application/json"));
    }
    let events = if flag(&body, "include_usage") {
        STREAM.with_usage.clone()
    } else {
        STREAM.plain.clone()
    };
    let frames = futures::stream::iter(0..events.len()).then(move |i| {
        let event = events[i].clone();
        async move {
            if i > 0 && !gap.is_zero() {
                tokio::time::sleep(gap).await;
            }
            Ok::<_, Infallible>(Frame::data(event))
        }
    });
    let stream = StreamBody::new(frames).boxed_unsync();
    Ok(with_type(Either::Right(stream), "text/event-stream"))
}

async fn serve(port: u16, gap: Duration) -> std::io::Result<()> {
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await?;
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(conn) => conn,
            // Out of file descriptors and the like: keep serving the connections we have.
            Err(e) => {
                eprintln!("mock_upstream: accept on {port}: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let _ = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service_fn(|req| answer(req, gap)))
                .await;
        });
    }
}

fn main() -> std::process::ExitCode {
    let ports: Vec<u16> = match std::env::args().skip(1).map(|a| a.parse()).collect() {
        Ok(ports) => ports,
        Err(e) => {
            eprintln!("usage: mock_upstream PORT [PORT...] ({e})");
            return std::process::ExitCode::from(2);
        }
    };
    if ports.is_empty() {
        eprintln!("usage: mock_upstream PORT [PORT...]");
        return std::process::ExitCode::from(2);
    }
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if let Some(n) = std::env::var("MOCK_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n > 0)
    {
        builder.worker_threads(n);
    }
    let gap = Duration::from_micros(
        std::env::var("MOCK_STREAM_GAP_US")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
    );
    let runtime = match builder.build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mock_upstream: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let mut servers = tokio::task::JoinSet::new();
        for port in ports {
            servers.spawn(serve(port, gap));
        }
        println!("mock_upstream: listening");
        match servers.join_next().await {
            Some(Ok(Err(e))) => Err(e.to_string()),
            Some(Err(e)) => Err(e.to_string()),
            _ => Ok(()),
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mock_upstream: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
