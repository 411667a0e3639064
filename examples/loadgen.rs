//! An open-loop, fixed-rate HTTP load generator for the benchmark (`bench/run.sh`).
//!
//! Why not wrk: wrk is closed-loop (each connection sends its next request as soon as the last
//! answer arrives), so it can only measure at saturation, and a slow answer delays the requests
//! behind it without counting that delay ("coordinated omission"). wrk2, which paces requests,
//! is not packaged in Debian, and `oha` is a heavy build on this machine. This tool sends at a
//! fixed rate on a schedule fixed in advance, like wrk2:
//!
//! - `C` keep-alive HTTP/1.1 connections; connection `i` owns the send times
//!   `t0 + (i + k*C) / rate`, so together they send exactly `rate` requests per second.
//! - A request's latency runs from its *scheduled* time when the connection was still busy
//!   with the previous answer at that time (the server made it late, so the wait counts),
//!   and from the moment it was actually sent when the connection was idle and had to sleep
//!   (tokio's timer wakes up to ~1 ms late; that lateness is the load generator's own, not the
//!   server's, and would otherwise swamp sub-millisecond overheads).
//!
//! Usage: `loadgen --url http://127.0.0.1:4000/v1/chat/completions --rate 2000 --duration 10
//!         --warmup 2 --connections 16 --body '{...}' --header 'authorization: Bearer sk-...'`
//! (`--body @file` reads the body from a file; `--method GET` sends no body.)
//! `--first-event` times each request to the first SSE event of its answer (the first line
//! that starts with `data:`) instead of to the end of the body, and also reports the whole
//! answer's time (`total_*`); the body is still read to its end. `--expect TEXT` counts a 2xx
//! answer whose body does not contain TEXT (a stream cut short) as `unexpected`.
//! Prints a human line and one `RESULT key=value ...` line for scripts (latencies in ms).

// An example binary that reports on stdout/stderr.
#![expect(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command-line program: its output is printed"
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full, combinators::BoxBody};
use hyper::client::conn::http1;
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

struct Options {
    uri: Uri,
    addr: String,
    method: Method,
    rate: f64,
    duration: f64,
    warmup: f64,
    connections: usize,
    threads: usize,
    body: Bytes,
    headers: Vec<(String, String)>,
    first_event: bool,
    expect: Option<Vec<u8>>,
}

fn usage() -> String {
    "usage: loadgen --url http://HOST:PORT/PATH --rate N [--duration S] [--warmup S] \
     [--connections C] [--threads T] [--method POST|GET] [--body JSON|@FILE] [--header 'K: V']... \
     [--first-event] [--expect TEXT]"
        .to_string()
}

fn parse_args() -> Result<Options, String> {
    let mut url = None;
    let mut method = Method::POST;
    let mut rate = None;
    let mut duration = 10.0;
    let mut warmup = 2.0;
    let mut connections = 16;
    let mut threads = 1;
    let mut body = Bytes::new();
    let mut headers = Vec::new();
    let mut first_event = false;
    let mut expect = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--url" => url = Some(value()?),
            "--method" => {
                method = value()?
                    .to_ascii_uppercase()
                    .parse()
                    .map_err(|e| format!("--method: {e}"))?
            }
            "--rate" => {
                rate = Some(
                    value()?
                        .parse::<f64>()
                        .map_err(|e| format!("--rate: {e}"))?,
                )
            }
            "--duration" => duration = value()?.parse().map_err(|e| format!("--duration: {e}"))?,
            "--warmup" => warmup = value()?.parse().map_err(|e| format!("--warmup: {e}"))?,
            "--connections" | "-c" => {
                connections = value()?
                    .parse()
                    .map_err(|e| format!("--connections: {e}"))?
            }
            "--threads" | "-t" => {
                threads = value()?.parse().map_err(|e| format!("--threads: {e}"))?
            }
            "--body" => {
                let v = value()?;
                body = match v.strip_prefix('@') {
                    Some(path) => std::fs::read(path)
                        .map_err(|e| format!("--body {path}: {e}"))?
                        .into(),
                    None => v.into_bytes().into(),
                };
            }
            "--header" | "-H" => {
                let v = value()?;
                let (k, val) = v
                    .split_once(':')
                    .ok_or_else(|| format!("--header {v:?}: expected 'Name: value'"))?;
                headers.push((k.trim().to_string(), val.trim().to_string()));
            }
            "--first-event" => first_event = true,
            "--expect" => expect = Some(value()?.into_bytes()),
            "--help" | "-h" => return Err(usage()),
            other => return Err(format!("unknown argument {other}\n{}", usage())),
        }
    }
    let url = url.ok_or_else(usage)?;
    let uri: Uri = url.parse().map_err(|e| format!("--url {url}: {e}"))?;
    if uri.scheme_str() != Some("http") {
        return Err("--url: only http:// is supported".into());
    }
    let host = uri.host().ok_or("--url: no host")?;
    let addr = format!("{host}:{}", uri.port_u16().unwrap_or(80));
    let rate = rate.ok_or_else(usage)?;
    if !(rate > 0.0 && duration > 0.0 && warmup >= 0.0 && connections > 0 && threads > 0) {
        return Err("--rate, --duration, --connections, --threads must be positive".into());
    }
    Ok(Options {
        uri,
        addr,
        method,
        rate,
        duration,
        warmup,
        connections,
        threads,
        body,
        headers,
        first_event,
        expect,
    })
}

/// What one connection measured (after the warm-up).
#[derive(Default)]
struct Tally {
    /// To the end of the answer, or with `--first-event` to its first SSE event.
    latencies_ns: Vec<u64>,
    /// With `--first-event`: to the end of the answer.
    totals_ns: Vec<u64>,
    ok: u64,
    bad_status: u64,
    unexpected: u64,
    errors: u64,
}

/// One answer, read to its end.
struct Answer {
    success: bool,
    /// When the first line starting with `data:` arrived (with `--first-event`).
    first_event: Option<Instant>,
    /// The body contained `--expect`'s text (true without it).
    expected: bool,
}

/// Whether `body` has a line that starts with `data:`.
fn has_event(body: &[u8]) -> bool {
    body.starts_with(b"data:") || memchr::memmem::find(body, b"\ndata:").is_some()
}

/// Reads the answer to its end, noting when its first SSE event arrived; keeps the body only
/// as far as needed (to find the first event, or all of it with `--expect`).
async fn read_answer(
    resp: hyper::Response<hyper::body::Incoming>,
    opts: &Options,
) -> Result<Answer, String> {
    let success = resp.status().is_success();
    let mut body = resp.into_body();
    let mut seen = Vec::new();
    let mut first_event = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("body: {e}"))?;
        let Some(data) = frame.data_ref() else {
            continue;
        };
        let looking = opts.first_event && first_event.is_none();
        if looking || opts.expect.is_some() {
            seen.extend_from_slice(data);
        }
        if looking && has_event(&seen) {
            first_event = Some(Instant::now());
        }
    }
    let expected = opts
        .expect
        .as_ref()
        .is_none_or(|text| memchr::memmem::find(&seen, text).is_some());
    Ok(Answer {
        success,
        first_event,
        expected,
    })
}

type Sender = http1::SendRequest<BoxBody<Bytes, std::convert::Infallible>>;

async fn connect(addr: &str) -> Result<Sender, String> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let _ = stream.set_nodelay(true);
    let (sender, conn) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake {addr}: {e}"))?;
    tokio::spawn(conn);
    Ok(sender)
}

fn build_request(
    opts: &Options,
) -> Result<Request<BoxBody<Bytes, std::convert::Infallible>>, String> {
    let path = opts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let mut builder = Request::builder()
        .method(opts.method.clone())
        .uri(path)
        .header(hyper::header::HOST, opts.addr.as_str());
    let body = if opts.body.is_empty() && opts.method == Method::GET {
        Empty::new().boxed()
    } else {
        builder = builder.header(hyper::header::CONTENT_TYPE, "application/json");
        Full::new(opts.body.clone()).boxed()
    };
    for (k, v) in &opts.headers {
        builder = builder.header(k.as_str(), v.as_str());
    }
    builder.body(body).map_err(|e| format!("request: {e}"))
}

/// Connection `index` of `opts.connections`: sends on its share of the schedule until `end`.
async fn run_connection(
    opts: Arc<Options>,
    index: usize,
    t0: Instant,
    measure_from: Instant,
    end: Instant,
) -> Tally {
    let mut tally = Tally::default();
    let mut sender = match connect(&opts.addr).await {
        Ok(s) => Some(s),
        Err(e) => {
            eprintln!("loadgen: {e}");
            None
        }
    };
    let mut k: u64 = 0;
    loop {
        let slot = index as f64 + (k as f64) * opts.connections as f64;
        let scheduled = t0 + Duration::from_secs_f64(slot / opts.rate);
        k += 1;
        if scheduled >= end {
            break;
        }
        // Late already (the previous answer took past our slot): the wait is the server's.
        // Early: sleep to the slot, and start the clock when we actually send.
        let start = if Instant::now() >= scheduled {
            scheduled
        } else {
            tokio::time::sleep_until(scheduled.into()).await;
            Instant::now()
        };
        let measured = scheduled >= measure_from;
        let outcome = match sender.as_mut() {
            // `ready` first: HTTP/1.1 refuses a request until the last answer is done with.
            Some(s) => match (s.ready().await, build_request(&opts)) {
                (Err(e), _) => Err(format!("connection: {e}")),
                (Ok(()), Ok(req)) => match s.send_request(req).await {
                    Ok(resp) => read_answer(resp, &opts).await,
                    Err(e) => Err(format!("send: {e}")),
                },
                (Ok(()), Err(e)) => Err(e),
            },
            None => Err("not connected".to_string()),
        };
        let done = Instant::now();
        let ns = |at: Instant| u64::try_from((at - start).as_nanos()).unwrap_or(u64::MAX);
        match outcome {
            Ok(answer) => {
                if measured {
                    if opts.first_event {
                        // An answer without any event counts as its end.
                        tally
                            .latencies_ns
                            .push(ns(answer.first_event.unwrap_or(done)));
                        tally.totals_ns.push(ns(done));
                    } else {
                        tally.latencies_ns.push(ns(done));
                    }
                    if !answer.success {
                        tally.bad_status += 1;
                    } else if !answer.expected || (opts.first_event && answer.first_event.is_none())
                    {
                        tally.unexpected += 1;
                    } else {
                        tally.ok += 1;
                    }
                }
            }
            Err(e) => {
                if measured {
                    tally.errors += 1;
                }
                if tally.errors <= 3 {
                    eprintln!("loadgen: connection {index}: {e}");
                }
                // The connection is unusable after an error: open a new one.
                sender = connect(&opts.addr).await.ok();
            }
        }
    }
    tally
}

fn percentile_ms(sorted_ns: &[u64], p: f64) -> f64 {
    if sorted_ns.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted_ns.len() as f64).ceil() as usize;
    let idx = rank.clamp(1, sorted_ns.len()) - 1;
    sorted_ns[idx] as f64 / 1e6
}

async fn run(opts: Options) -> Tally {
    let opts = Arc::new(opts);
    // Give every connection time to connect before the first slot.
    let t0 = Instant::now() + Duration::from_millis(200);
    let measure_from = t0 + Duration::from_secs_f64(opts.warmup);
    let end = measure_from + Duration::from_secs_f64(opts.duration);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..opts.connections {
        tasks.spawn(run_connection(opts.clone(), i, t0, measure_from, end));
    }
    let mut total = Tally::default();
    while let Some(result) = tasks.join_next().await {
        if let Ok(t) = result {
            total.latencies_ns.extend(t.latencies_ns);
            total.totals_ns.extend(t.totals_ns);
            total.ok += t.ok;
            total.bad_status += t.bad_status;
            total.unexpected += t.unexpected;
            total.errors += t.errors;
        }
    }
    total
}

fn main() -> std::process::ExitCode {
    let opts = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return std::process::ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(opts.threads)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("loadgen: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let (rate, duration, connections) = (opts.rate, opts.duration, opts.connections);
    let first_event = opts.first_event;
    let mut tally = runtime.block_on(run(opts));
    tally.latencies_ns.sort_unstable();
    tally.totals_ns.sort_unstable();
    let n = tally.latencies_ns.len();
    let achieved = n as f64 / duration;
    let p = |q| percentile_ms(&tally.latencies_ns, q);
    let total = |q| percentile_ms(&tally.totals_ns, q);
    let (what, totals_human, totals_result) = if first_event {
        (
            "to the first event ",
            format!(
                "; whole answer ms p50 {:.3} p99 {:.3}",
                total(50.0),
                total(99.0)
            ),
            format!(
                " total_p50_ms={:.3} total_p99_ms={:.3} total_max_ms={:.3}",
                total(50.0),
                total(99.0),
                total(100.0)
            ),
        )
    } else {
        ("", String::new(), String::new())
    };
    println!(
        "target {rate:.0} req/s on {connections} connections for {duration}s: sent {n} \
         ({achieved:.0} req/s), ok {}, non-2xx {}, unexpected {}, errors {}; latency {what}ms \
         p50 {:.3} p90 {:.3} p99 {:.3} p99.9 {:.3} max {:.3}{totals_human}",
        tally.ok,
        tally.bad_status,
        tally.unexpected,
        tally.errors,
        p(50.0),
        p(90.0),
        p(99.0),
        p(99.9),
        p(100.0)
    );
    println!(
        "RESULT rate={rate:.0} achieved={achieved:.1} requests={n} ok={} non2xx={} \
         unexpected={} errors={} p50_ms={:.3} p90_ms={:.3} p99_ms={:.3} p999_ms={:.3} \
         max_ms={:.3}{totals_result}",
        tally.ok,
        tally.bad_status,
        tally.unexpected,
        tally.errors,
        p(50.0),
        p(90.0),
        p(99.0),
        p(99.9),
        p(100.0)
    );
    if tally.ok == 0 || tally.errors > 0 || tally.bad_status > 0 || tally.unexpected > 0 {
        std::process::ExitCode::FAILURE
    } else {
        std::process::ExitCode::SUCCESS
    }
}
