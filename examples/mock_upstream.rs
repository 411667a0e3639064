//! A fast mock OpenAI-compatible upstream for the benchmark (`bench/run.sh`): answers every
//! POST with one fixed `chat.completion` (with `usage`) and every GET with `{"status":"ok"}`.
//!
//! It has to be much faster than anything put in front of it, so that the benchmark measures
//! the proxy and not the mock: plain hyper HTTP/1.1 with keep-alive, no routing, no JSON
//! parsing, a body built once. The request body is still read to the end so keep-alive works.
//!
//! Usage: `mock_upstream PORT [PORT...]` — listens on 127.0.0.1 on each port (one process can
//! stand in for several deployments). Worker threads: `MOCK_THREADS` (default: all cores).

// An example binary that talks to the operator on stdout/stderr.
#![expect(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command-line program: its output is printed"
)]

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// The one answer every chat request gets: the shape of a real OpenAI `chat.completion`.
const CHAT_COMPLETION: &str = r#"{"id":"chatcmpl-bench0000000000000000000000000","object":"chat.completion","created":1700000000,"model":"bench-gpt","system_fingerprint":"fp_bench","choices":[{"index":0,"message":{"role":"assistant","content":"Hello! This is a fixed answer from the benchmark's mock upstream.","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":14,"total_tokens":23,"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}}}"#;

const HEALTH: &str = r#"{"status":"ok"}"#;

async fn answer(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let method = req.method().clone();
    // Drain the body so the connection can be reused; its content does not matter.
    let _ = req.into_body().collect().await;
    let body = if method == Method::POST {
        CHAT_COMPLETION
    } else {
        HEALTH
    };
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = StatusCode::OK;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

async fn serve(port: u16) -> std::io::Result<()> {
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
                .serve_connection(TokioIo::new(stream), service_fn(answer))
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
            servers.spawn(serve(port));
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
