//! Times a server's start for the benchmark (`bench/run.sh`): from just before exec to the first
//! `200` on a readiness URL, repeated, reporting the median.
//!
//! A shell loop around `curl` forks a process per probe (several ms each), which is coarser than
//! the thing measured; this probes with a raw HTTP/1.1 request on a plain socket every 0.2 ms.
//! The short pause between probes keeps the prober from stealing a core from the starting
//! server on a 2-core machine.
//!
//! Usage: `ready_time --url http://127.0.0.1:4000/health/readiness [--runs 5] -- CMD [ARGS...]`
//! (the command inherits the environment and stderr; its stdout is discarded). Each run is
//! killed once ready. Prints one line per run and a `RESULT runs=N median_ms=... min_ms=...
//! max_ms=...` line.

// An example binary that reports on stdout/stderr.
#![expect(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command-line program: its output is printed"
)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

/// Gives up on a run after this long.
const GIVE_UP: Duration = Duration::from_secs(30);

/// One probe: `Some(status)` when the server answered, `None` when it is not listening yet.
fn probe(addr: &str, request: &[u8]) -> Option<u16> {
    let mut stream = TcpStream::connect(addr).ok()?;
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    stream.write_all(request).ok()?;
    let mut buf = [0u8; 64];
    let mut got = 0;
    // Only the status line matters: "HTTP/1.1 200 ..."
    while got < 12 {
        match stream.read(&mut buf[got..]) {
            Ok(0) | Err(_) => return None,
            Ok(n) => got += n,
        }
    }
    std::str::from_utf8(&buf[9..12]).ok()?.parse().ok()
}

fn run_once(addr: &str, request: &[u8], cmd: &[String]) -> Result<Duration, String> {
    let (program, args) = cmd.split_first().ok_or("no command given")?;
    let t0 = Instant::now();
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {program}: {e}"))?;
    let outcome = loop {
        if probe(addr, request) == Some(200) {
            break Ok(t0.elapsed());
        }
        if let Ok(Some(status)) = child.try_wait() {
            break Err(format!("{program} exited before it was ready ({status})"));
        }
        if t0.elapsed() > GIVE_UP {
            break Err(format!("{program} not ready after {GIVE_UP:?}"));
        }
        std::thread::sleep(Duration::from_micros(200));
    };
    let _ = child.kill();
    let _ = child.wait();
    outcome
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: ready_time --url http://HOST:PORT/PATH [--runs N] -- CMD [ARGS...]";
    let Some(split) = args.iter().position(|a| a == "--") else {
        eprintln!("{usage}");
        return ExitCode::from(2);
    };
    let (flags, cmd) = (&args[..split], &args[split + 1..]);
    let mut url = None;
    let mut runs = 5usize;
    let mut it = flags.iter();
    while let Some(flag) = it.next() {
        match (flag.as_str(), it.next()) {
            ("--url", Some(v)) => url = Some(v.clone()),
            ("--runs", Some(v)) => match v.parse() {
                Ok(n) if n > 0 => runs = n,
                _ => {
                    eprintln!("--runs: expected a positive number");
                    return ExitCode::from(2);
                }
            },
            _ => {
                eprintln!("{usage}");
                return ExitCode::from(2);
            }
        }
    }
    let Some(rest) = url.as_deref().and_then(|u| u.strip_prefix("http://")) else {
        eprintln!("{usage} (only http:// URLs)");
        return ExitCode::from(2);
    };
    let (addr, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");

    if probe(addr, request.as_bytes()).is_some() {
        eprintln!("ready_time: something already answers on {addr}; stop it first");
        return ExitCode::FAILURE;
    }
    let mut times = Vec::with_capacity(runs);
    for i in 1..=runs {
        match run_once(addr, request.as_bytes(), cmd) {
            Ok(t) => {
                println!("run {i}: ready in {:.1} ms", t.as_secs_f64() * 1e3);
                times.push(t);
            }
            Err(e) => {
                eprintln!("ready_time: run {i}: {e}");
                return ExitCode::FAILURE;
            }
        }
        // Let the killed process's socket go before the next start.
        std::thread::sleep(Duration::from_millis(200));
    }
    times.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let median = if times.len() % 2 == 1 {
        ms(times[times.len() / 2])
    } else {
        (ms(times[times.len() / 2 - 1]) + ms(times[times.len() / 2])) / 2.0
    };
    println!(
        "RESULT runs={} median_ms={median:.1} min_ms={:.1} max_ms={:.1}",
        times.len(),
        times.first().map(|d| ms(*d)).unwrap_or(f64::NAN),
        times.last().map(|d| ms(*d)).unwrap_or(f64::NAN)
    );
    ExitCode::SUCCESS
}
