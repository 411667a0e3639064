//! The floor for a Rust proxy on this stack, for the benchmark (`bench/run.sh`, target
//! `floor`): a bare hyper HTTP/1.1 reverse proxy that forwards every request to one upstream
//! and its answer back, with nothing else (no auth, no JSON, no routing, no logs, no spend).
//!
//! It is built the way HX Gateway serves (one single-threaded runtime per core, each with its
//! own upstream connection pool), so the gap between it and nginx is what the tokio/hyper
//! stack itself costs here, and the gap between HX Gateway and it is what the gateway's own
//! work costs.
//!
//! Usage: `floor_proxy LISTEN_PORT UPSTREAM_PORT` (threads: `FLOOR_THREADS`, default all cores).

// An example binary that talks to the operator on stderr.
#![expect(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command-line program: its output is printed"
)]

use std::net::SocketAddr;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpSocket;

type Upstream = Client<HttpConnector, Incoming>;

async fn forward(
    client: Upstream,
    upstream: SocketAddr,
    mut req: Request<Incoming>,
) -> Result<Response<Incoming>, hyper_util::client::legacy::Error> {
    let path = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    if let Ok(uri) = format!("http://{upstream}{path}").parse::<Uri>() {
        *req.uri_mut() = uri;
    }
    client.request(req).await
}

fn serve_thread(port: u16, upstream: SocketAddr) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        // SO_REUSEPORT: every thread has its own listener; the kernel spreads connections.
        let socket = TcpSocket::new_v4()?;
        socket.set_reuseport(true)?;
        socket.set_reuseaddr(true)?;
        socket.bind(SocketAddr::from(([127, 0, 0, 1], port)))?;
        let listener = socket.listen(1024)?;
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client: Upstream = Client::builder(TokioExecutor::new()).build(connector);
        loop {
            let (stream, _) = listener.accept().await?;
            let _ = stream.set_nodelay(true);
            let client = client.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| forward(client.clone(), upstream, req));
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}

fn main() -> std::process::ExitCode {
    let args: Vec<u16> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let [port, upstream_port] = args[..] else {
        eprintln!("usage: floor_proxy LISTEN_PORT UPSTREAM_PORT");
        return std::process::ExitCode::from(2);
    };
    let upstream = SocketAddr::from(([127, 0, 0, 1], upstream_port));
    let threads = std::env::var("FLOOR_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let handles: Vec<_> = (0..threads)
        .map(|_| std::thread::spawn(move || serve_thread(port, upstream)))
        .collect();
    println!("floor_proxy: listening on {port}");
    for handle in handles {
        match handle.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                eprintln!("floor_proxy: {e}");
                return std::process::ExitCode::FAILURE;
            }
            Err(_) => return std::process::ExitCode::FAILURE,
        }
    }
    std::process::ExitCode::SUCCESS
}
