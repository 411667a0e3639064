//! Benchmark of local embeddings: the engine's sentences per second one at a time and in
//! batches of 32, the latency (p50/p99) of `POST /v1/embeddings` through the gateway (served
//! in-process on a loopback port, one sentence per request, sequential and 8 concurrent
//! clients), and the memory the model takes (resident size and peak before and after load).
//!
//! Run (release, on an otherwise idle machine):
//!   cargo run --release --example bench_embeddings -- "$(.ci/fetch-model.sh)" [SENTENCES] [REQUESTS]

#![cfg_attr(
    feature = "local-embeddings",
    expect(
        clippy::print_stdout,
        reason = "a command-line program: its results are printed"
    )
)]
#![expect(
    clippy::print_stderr,
    reason = "a command-line program: its errors are printed"
)]

#[cfg(feature = "local-embeddings")]
type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[cfg(feature = "local-embeddings")]
#[tokio::main]
async fn main() -> Result<(), BoxError> {
    use hx_gateway::embeddings::local::{LocalEmbedder, LocalEmbedderOptions};
    use std::time::Instant;

    let mut args = std::env::args().skip(1);
    let Some(model_dir) = args.next() else {
        eprintln!("usage: bench_embeddings MODEL_DIR [SENTENCES] [REQUESTS]");
        std::process::exit(2);
    };
    let total: usize = args.next().map(|n| n.parse()).transpose()?.unwrap_or(256);
    let requests: usize = args.next().map(|n| n.parse()).transpose()?.unwrap_or(400);

    println!(
        "machine: {}, {} CPU(s) available",
        cpu_model(),
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    let before = Memory::now();
    println!("before load:  {before}");
    let started = Instant::now();
    let embedder = LocalEmbedder::load(
        std::path::Path::new(&model_dir),
        LocalEmbedderOptions::default(),
    )?;
    let loaded = Memory::now();
    println!(
        "loaded in {:.2?}: {} dimensions, max {} tokens",
        started.elapsed(),
        embedder.dimension(),
        embedder.max_seq_length()
    );
    println!(
        "after load:   {loaded}  (model resident: +{} MiB)",
        loaded.rss_kib.saturating_sub(before.rss_kib) / 1024
    );

    let sentences = sentences(total);
    // Warm up allocations and code paths.
    embedder
        .embed(sentences[..4.min(total)].to_vec(), None)
        .await?;

    let started = Instant::now();
    let mut tokens = 0;
    for sentence in &sentences {
        tokens += embedder
            .embed(vec![sentence.clone()], None)
            .await?
            .prompt_tokens;
    }
    let single = started.elapsed();
    println!(
        "engine single:      {:8.1} sentences/s ({total} sentences, {tokens} tokens, {single:.2?})",
        total as f64 / single.as_secs_f64()
    );

    let started = Instant::now();
    for chunk in sentences.chunks(32) {
        embedder.embed(chunk.to_vec(), None).await?;
    }
    let batched = started.elapsed();
    println!(
        "engine batched(32): {:8.1} sentences/s ({batched:.2?})",
        total as f64 / batched.as_secs_f64()
    );
    let inferred = Memory::now();
    println!(
        "after engine: {inferred}  (peak over baseline: +{} MiB)",
        inferred.hwm_kib.saturating_sub(before.rss_kib) / 1024
    );
    drop(embedder);

    gateway_latency(&model_dir, &sentences, requests).await?;
    println!("at the end:   {}", Memory::now());
    Ok(())
}

/// Requests of one sentence each to `/v1/embeddings` of a gateway served in this process.
#[cfg(feature = "local-embeddings")]
async fn gateway_latency(
    model_dir: &str,
    sentences: &[String],
    requests: usize,
) -> Result<(), BoxError> {
    use hx_gateway::config::GatewayConfig;
    use hx_gateway::gateway::AppState;
    use hx_gateway::providers::Upstream;
    use hx_gateway::server;
    use std::collections::HashMap;
    use std::time::{Duration, Instant};

    const KEY: &str = "sk-bench-0001";
    const CLIENTS: usize = 8;

    let data = tempfile::tempdir()?;
    let yaml = format!(
        "model_list:\n  - model_name: emb-local\n    litellm_params:\n      model: local/all-MiniLM-L6-v2\n      model_path: {}\n    model_info:\n      mode: embedding\ngeneral_settings:\n  master_key: {KEY}\n",
        serde_json::to_string(model_dir)?
    );
    let env = HashMap::from([("HX_DATA_DIR".to_string(), data.path().display().to_string())]);
    let config = GatewayConfig::from_yaml_str(&yaml, &env)?;
    let keys = hx_gateway::commands::migrate::connect_keys(&config, true).await?;
    let state = AppState::new(config, Upstream::new()?, false).map_err(|e| e.to_string())?;
    if let Some(d) = state.runtime().router.disabled.first() {
        return Err(format!("the local deployment is disabled: {}", d.reason).into());
    }
    state.set_keys(keys);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/v1/embeddings", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server::serve(listener, state, async move {
        let _ = stopped.await;
    }));

    let client = reqwest::Client::new();
    let call = |client: reqwest::Client, url: String, text: String| async move {
        let started = Instant::now();
        let response = client
            .post(&url)
            .bearer_auth(KEY)
            .json(&serde_json::json!({"model": "emb-local", "input": text}))
            .send()
            .await?;
        let status = response.status();
        let body = response.bytes().await?;
        if status != 200 {
            return Err(format!("{status}: {}", String::from_utf8_lossy(&body)).into());
        }
        Ok::<Duration, BoxError>(started.elapsed())
    };
    for text in sentences.iter().take(8) {
        call(client.clone(), url.clone(), text.clone()).await?;
    }

    let text = |i: usize| sentences[i % sentences.len()].clone();
    let started = Instant::now();
    let mut sequential = Vec::with_capacity(requests);
    for i in 0..requests {
        sequential.push(call(client.clone(), url.clone(), text(i)).await?);
    }
    report("gateway sequential  ", &mut sequential, started.elapsed());

    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let (client, url) = (client.clone(), url.clone());
        let texts: Vec<String> = (c..requests).step_by(CLIENTS).map(text).collect();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(texts.len());
            for t in texts {
                latencies.push(call(client.clone(), url.clone(), t).await?);
            }
            Ok::<_, BoxError>(latencies)
        }));
    }
    let mut concurrent = Vec::with_capacity(requests);
    for task in tasks {
        concurrent.extend(task.await?.map_err(|e| e.to_string())?);
    }
    report("gateway 8 concurrent", &mut concurrent, started.elapsed());

    let _ = stop.send(());
    let _ = serving.await;
    Ok(())
}

#[cfg(feature = "local-embeddings")]
fn report(what: &str, latencies: &mut [std::time::Duration], wall: std::time::Duration) {
    latencies.sort();
    let n = latencies.len();
    // Nearest-rank percentiles.
    let rank = |p: usize| latencies[((n * p).div_ceil(100)).clamp(1, n) - 1];
    println!(
        "{what}: p50 {:6.2} ms  p99 {:6.2} ms  max {:6.2} ms  ({n} requests, {:.1} requests/s)",
        rank(50).as_secs_f64() * 1e3,
        rank(99).as_secs_f64() * 1e3,
        latencies[n - 1].as_secs_f64() * 1e3,
        n as f64 / wall.as_secs_f64()
    );
}

/// Sentences of typical RAG-chunk-ish variety: different words and lengths.
#[cfg(feature = "local-embeddings")]
fn sentences(total: usize) -> Vec<String> {
    (0..total)
        .map(|i| {
            let words = 8 + (i * 7) % 40;
            (0..words)
                .map(|w| {
                    [
                        "gateway",
                        "embedding",
                        "retrieval",
                        "vector",
                        "token",
                        "model",
                        "query",
                        "document",
                    ][(i + w) % 8]
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

/// This process's resident size and its peak so far (`VmRSS`, `VmHWM`).
#[cfg(feature = "local-embeddings")]
struct Memory {
    rss_kib: u64,
    hwm_kib: u64,
}

#[cfg(feature = "local-embeddings")]
impl Memory {
    fn now() -> Memory {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap_or(0)
        };
        Memory {
            rss_kib: field("VmRSS:"),
            hwm_kib: field("VmHWM:"),
        }
    }
}

#[cfg(feature = "local-embeddings")]
impl std::fmt::Display for Memory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "RSS {} MiB, peak RSS (VmHWM) {} MiB",
            self.rss_kib / 1024,
            self.hwm_kib / 1024
        )
    }
}

#[cfg(feature = "local-embeddings")]
fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("model name"))
        .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| "unknown CPU".into())
}

#[cfg(not(feature = "local-embeddings"))]
fn main() {
    eprintln!("bench_embeddings needs the local-embeddings feature");
}
