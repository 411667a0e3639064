//! Benchmark of the RAG layer on the embedded Qdrant engine: search latency (p50, p99) and
//! throughput at 10k and 100k points of 384 dimensions, with and without a namespace filter,
//! before and after optimisation; upsert throughput; and the gateway's overhead on
//! `POST /v1/rag/search` (HTTP through the real server) over a direct call of the same
//! `RagService` handle. Prints a markdown table.
//!
//! Run (release, on an otherwise idle machine):
//!   cargo run --profile bench-fast --no-default-features --example bench_rag -- [queries]
//! (or `--release`: same code generation with fat LTO, much slower to build). Results: bench/rag.md.

#![expect(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command-line program: its output is printed"
)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use hx_gateway::config::GatewayConfig;
use hx_gateway::error::ApiError;
use hx_gateway::gateway::AppState;
use hx_gateway::providers::Upstream;
use hx_gateway::rag::store::{
    EmbeddedStore, EmbeddedStoreOptions, Filter, Point, PointId, SearchQuery, WithPayload,
};
use hx_gateway::rag::{Embedder, RagScope, VectorStore, from_json};
use hx_gateway::server;
use serde_json::{Map, Value, json};

type BenchResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const DIMS: usize = 384;
const UPSERT_BATCH: usize = 256;
const NAMESPACES: [&str; 4] = ["docs", "support", "legal", "blog"];
const LIMIT: usize = 5;
const CONCURRENCY: usize = 4;
const MASTER: &str = "sk-bench-master-0001";

/// splitmix64: reproducible data without depending on a random crate's API.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    fn unit(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 23) as f32) - 1.0
    }

    /// A random unit vector.
    fn vector(&mut self) -> Vec<f32> {
        let mut v: Vec<f32> = (0..DIMS).map(|_| self.unit()).collect();
        let norm = v
            .iter()
            .map(|x| x * x)
            .sum::<f32>()
            .sqrt()
            .max(f32::EPSILON);
        v.iter_mut().for_each(|x| *x /= norm);
        v
    }
}

/// Latencies of a series of calls.
struct Stats {
    samples: Vec<Duration>,
    wall: Duration,
}

impl Stats {
    fn percentile(&self, p: f64) -> Duration {
        let mut s = self.samples.clone();
        s.sort();
        let rank = ((p / 100.0) * s.len() as f64).ceil() as usize;
        s[rank.clamp(1, s.len()) - 1]
    }

    fn qps(&self) -> f64 {
        self.samples.len() as f64 / self.wall.as_secs_f64()
    }
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1000.0)
}

fn query(vector: Vec<f32>, namespace: Option<&str>) -> BenchResult<SearchQuery> {
    let filter = namespace
        .map(|ns| Filter::parse(json!({"must": [{"key": "namespace", "match": {"value": ns}}]})))
        .transpose()?;
    Ok(SearchQuery {
        vector,
        filter,
        score_threshold: None,
        limit: LIMIT,
        with_payload: WithPayload::All(true),
        with_vector: false,
    })
}

/// Sequential searches: per-call latency.
async fn search_sequential(
    store: &VectorStore,
    collection: &str,
    queries: &[Vec<f32>],
    namespace: Option<&str>,
) -> BenchResult<Stats> {
    let mut samples = Vec::with_capacity(queries.len());
    let wall = Instant::now();
    for (i, v) in queries.iter().enumerate() {
        let ns = namespace.map(|_| NAMESPACES[i % NAMESPACES.len()]);
        let q = query(v.clone(), ns)?;
        let started = Instant::now();
        let hits = store.search(collection, q).await?;
        samples.push(started.elapsed());
        if hits.len() != LIMIT {
            return Err(format!("expected {LIMIT} hits, got {}", hits.len()).into());
        }
    }
    Ok(Stats {
        samples,
        wall: wall.elapsed(),
    })
}

/// `CONCURRENCY` tasks searching at once: throughput.
async fn search_concurrent(
    store: &Arc<VectorStore>,
    collection: &str,
    queries: &Arc<Vec<Vec<f32>>>,
    namespace: Option<&str>,
) -> BenchResult<Stats> {
    let wall = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..CONCURRENCY {
        let (store, queries) = (store.clone(), queries.clone());
        let collection = collection.to_string();
        let filtered = namespace.is_some();
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            for (i, v) in queries.iter().enumerate().skip(t).step_by(CONCURRENCY) {
                let ns = filtered.then(|| NAMESPACES[i % NAMESPACES.len()]);
                let q = query(v.clone(), ns)?;
                let started = Instant::now();
                store.search(&collection, q).await?;
                samples.push(started.elapsed());
            }
            BenchResult::Ok(samples)
        }));
    }
    let mut samples = Vec::new();
    for t in tasks {
        samples.extend(t.await??);
    }
    Ok(Stats {
        samples,
        wall: wall.elapsed(),
    })
}

struct Row {
    label: String,
    stats: Stats,
    concurrent: Option<f64>,
}

/// Never called: the benchmark searches by vector only.
struct NoEmbedder;

impl Embedder for NoEmbedder {
    fn embed(&self, _texts: Vec<String>) -> BoxFuture<'_, Result<Vec<Vec<f32>>, ApiError>> {
        Box::pin(async { Err(ApiError::invalid("no embedder in the benchmark", "query")) })
    }
}

#[tokio::main]
async fn main() -> BenchResult<()> {
    let queries_n: usize = std::env::args()
        .nth(1)
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(2000);
    let dir = tempfile::tempdir()?;
    let data_dir = dir.path().to_path_buf();
    let mut rng = Rng(0x5EED);
    let queries: Arc<Vec<Vec<f32>>> = Arc::new((0..queries_n).map(|_| rng.vector()).collect());

    // Automatic optimisation off during the load, so that upsert throughput is the engine's
    // write path alone; the index is then built by an explicit, timed optimize.
    let store = Arc::new(VectorStore::Embedded(EmbeddedStore::new(
        data_dir.join("qdrant"),
        EmbeddedStoreOptions {
            optimize_when_idle: Duration::from_secs(3600),
            optimize_after_points: usize::MAX,
        },
    )));
    let VectorStore::Embedded(embedded) = store.as_ref() else {
        return Err("not embedded".into());
    };

    let mut rows: Vec<Row> = Vec::new();
    let mut upserts: Vec<(usize, f64, Duration)> = Vec::new();
    for n in [10_000usize, 100_000] {
        let collection = format!("bench_{n}");
        store.create_collection(&collection, DIMS).await?;
        let mut written = 0usize;
        let started = Instant::now();
        while written < n {
            let batch: Vec<Point> = (written..(written + UPSERT_BATCH).min(n))
                .map(|i| {
                    let mut payload = Map::new();
                    payload.insert(
                        "namespace".into(),
                        Value::from(NAMESPACES[i % NAMESPACES.len()]),
                    );
                    payload.insert(
                        "text".into(),
                        Value::from(format!("document {i} of the benchmark corpus")),
                    );
                    Point {
                        id: PointId::Num(i as u64),
                        vector: rng.vector(),
                        payload,
                    }
                })
                .collect();
            written += batch.len();
            store.upsert(&collection, batch).await?;
        }
        let upsert_secs = started.elapsed().as_secs_f64();
        eprintln!("{n}: upserted in {upsert_secs:.1} s");

        // Before optimisation: a plain scan of the appendable segments (fewer queries).
        let few = &queries[..queries.len().min(200)];
        let stats = search_sequential(&store, &collection, few, None).await?;
        rows.push(Row {
            label: format!("{n} points, not optimised, no filter"),
            stats,
            concurrent: None,
        });

        let started = Instant::now();
        embedded.optimize(&collection).await?;
        let optimize = started.elapsed();
        eprintln!("{n}: optimised in {:.1} s", optimize.as_secs_f64());
        upserts.push((n, n as f64 / upsert_secs, optimize));

        for (label, ns) in [
            ("no filter", None),
            ("namespace filter (1 of 4)", Some("x")),
        ] {
            // Warm-up, then measure.
            search_sequential(&store, &collection, &queries[..queries.len().min(100)], ns).await?;
            let stats = search_sequential(&store, &collection, &queries, ns).await?;
            let concurrent = search_concurrent(&store, &collection, &queries, ns).await?;
            rows.push(Row {
                label: format!("{n} points, optimised, {label}"),
                stats,
                concurrent: Some(concurrent.qps()),
            });
        }
    }
    store.close().await?;
    drop(store);

    // The gateway over the same data directory (one handle per directory: the benchmark's
    // own store is closed and dropped first).
    let overhead = gateway_overhead(&data_dir, &queries).await?;

    println!(
        "\nMachine: {} CPUs ({}), {DIMS} dimensions, cosine, limit {LIMIT}, with payload; {} queries per row; concurrency {CONCURRENCY}.\n",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model(),
        queries.len()
    );
    println!("| search | p50 ms | p99 ms | seq. queries/s | concurrent queries/s |");
    println!("|---|---:|---:|---:|---:|");
    for row in &rows {
        println!(
            "| {} | {} | {} | {:.0} | {} |",
            row.label,
            ms(row.stats.percentile(50.0)),
            ms(row.stats.percentile(99.0)),
            row.stats.qps(),
            row.concurrent
                .map_or("-".to_string(), |q| format!("{q:.0}"))
        );
    }
    println!("\n| points | upsert points/s (batches of {UPSERT_BATCH}) | optimize s |");
    println!("|---:|---:|---:|");
    for (n, rate, optimize) in &upserts {
        println!("| {n} | {rate:.0} | {:.1} |", optimize.as_secs_f64());
    }
    println!("\n{overhead}");
    Ok(())
}

/// Direct `RagService::search` on the gateway's own handle vs `POST /v1/rag/search` to the
/// in-process server (keep-alive, sequential), interleaved so both see the same load.
async fn gateway_overhead(data_dir: &std::path::Path, queries: &[Vec<f32>]) -> BenchResult<String> {
    let yaml = format!(
        "model_list:\n  - model_name: mock\n    litellm_params: {{model: openai/mock, mock_response: ok}}\ngeneral_settings:\n  master_key: {MASTER}\n"
    );
    let env = HashMap::from([("HX_DATA_DIR".to_string(), data_dir.display().to_string())]);
    let config = GatewayConfig::from_yaml_str(&yaml, &env)?;
    let keys = hx_gateway::commands::migrate::connect_keys(&config, true).await;
    let http = Upstream::new()?;
    let state = AppState::new(config, http, false)?;
    match keys {
        Ok(keys) => state.set_keys(keys),
        Err(_) => state.set_ready(),
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server::serve(listener, state.clone(), async move {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/v1/rag/search");
    let scope = RagScope::unrestricted();

    let mut results = Vec::new();
    for n in [10_000usize, 100_000] {
        let bodies: Vec<Value> = queries
            .iter()
            .map(|v| json!({"vector": v, "limit": LIMIT, "collection": format!("bench_{n}")}))
            .collect();
        let mut direct = Vec::with_capacity(bodies.len());
        let mut via_http = Vec::with_capacity(bodies.len());
        let warmup = bodies.len().min(100);
        for (i, body) in bodies.iter().enumerate() {
            // The same query both ways; which goes first alternates, so that neither side
            // always finds the other's pages of the index warm in the CPU caches.
            let (d, h) = if i % 2 == 0 {
                let d = direct_search(&state, &scope, body).await?;
                (d, http_search(&client, &url, body).await?)
            } else {
                let h = http_search(&client, &url, body).await?;
                (direct_search(&state, &scope, body).await?, h)
            };
            if i >= warmup {
                direct.push(d);
                via_http.push(h);
            }
        }
        let direct = Stats {
            wall: direct.iter().sum(),
            samples: direct,
        };
        let via_http = Stats {
            wall: via_http.iter().sum(),
            samples: via_http,
        };
        results.push((n, direct, via_http));
    }
    let _ = stop.send(());
    let _ = serving.await;
    state.rag.close().await?;

    let mut out = String::from(
        "| gateway overhead (optimised, by vector) | direct p50 ms | HTTP p50 ms | overhead p50 ms | direct p99 ms | HTTP p99 ms | overhead p99 ms |\n|---|---:|---:|---:|---:|---:|---:|\n",
    );
    for (n, direct, via_http) in results {
        let diff = |a: Duration, b: Duration| (b.as_secs_f64() - a.as_secs_f64()) * 1000.0;
        let (d50, h50) = (direct.percentile(50.0), via_http.percentile(50.0));
        let (d99, h99) = (direct.percentile(99.0), via_http.percentile(99.0));
        out.push_str(&format!(
            "| {n} points, {} requests each | {} | {} | {:.3} | {} | {} | {:.3} |\n",
            direct.samples.len(),
            ms(d50),
            ms(h50),
            diff(d50, h50),
            ms(d99),
            ms(h99),
            diff(d99, h99)
        ));
    }
    Ok(out)
}

/// One direct call of the gateway's `RagService`, timed.
async fn direct_search(state: &AppState, scope: &RagScope, body: &Value) -> BenchResult<Duration> {
    let started = Instant::now();
    // Reading the body is part of the call, as in the route.
    let request = from_json(body.clone())?;
    let answer = state.rag.search(scope, &NoEmbedder, request).await?;
    let elapsed = started.elapsed();
    if answer["result"]["result"].as_array().map(Vec::len) != Some(LIMIT) {
        return Err(format!("direct search answered {answer}").into());
    }
    Ok(elapsed)
}

/// One `POST /v1/rag/search` (keep-alive), timed up to the whole response body.
async fn http_search(client: &reqwest::Client, url: &str, body: &Value) -> BenchResult<Duration> {
    // Serialised up front, as any client would have it ready.
    let payload = serde_json::to_vec(body)?;
    let started = Instant::now();
    let response = client
        .post(url)
        .bearer_auth(MASTER)
        .header("content-type", "application/json")
        .body(payload)
        .send()
        .await?;
    let status = response.status();
    let bytes = response.bytes().await?;
    let elapsed = started.elapsed();
    if status != 200 {
        return Err(format!("HTTP search answered {status}").into());
    }
    let answer: Value = serde_json::from_slice(&bytes)?;
    if answer["result"]["result"].as_array().map(Vec::len) != Some(LIMIT) {
        return Err(format!("HTTP search answered {answer}").into());
    }
    Ok(elapsed)
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".to_string())
}
