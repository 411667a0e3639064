//! Benchmark of the in-process embedding engine: sentences per second one at a time and in
//! batches of 32, and the process's peak resident memory.
//!
//! Run (release, on an otherwise idle machine):
//!   cargo run --release --example bench_embeddings -- "$(.ci/fetch-model.sh)" [sentences]

#![allow(clippy::print_stdout, clippy::print_stderr)]

#[cfg(feature = "local-embeddings")]
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    use hx_gateway::embeddings::local::{LocalEmbedder, LocalEmbedderOptions};
    use std::time::Instant;

    let mut args = std::env::args().skip(1);
    let Some(model_dir) = args.next() else {
        eprintln!("usage: bench_embeddings MODEL_DIR [SENTENCES]");
        std::process::exit(2);
    };
    let total: usize = args.next().map(|n| n.parse()).transpose()?.unwrap_or(256);

    let started = Instant::now();
    let embedder = LocalEmbedder::load(
        std::path::Path::new(&model_dir),
        LocalEmbedderOptions::default(),
    )?;
    println!(
        "loaded in {:.2?}: {} dimensions, max {} tokens",
        started.elapsed(),
        embedder.dimension(),
        embedder.max_seq_length()
    );

    // Sentences of typical RAG-chunk-ish variety: different words and lengths.
    let sentences: Vec<String> = (0..total)
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
        .collect();
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
        "single:      {:8.1} sentences/s ({total} sentences, {tokens} tokens, {single:.2?})",
        total as f64 / single.as_secs_f64()
    );

    let started = Instant::now();
    for chunk in sentences.chunks(32) {
        embedder.embed(chunk.to_vec(), None).await?;
    }
    let batched = started.elapsed();
    println!(
        "batched(32): {:8.1} sentences/s ({batched:.2?})",
        total as f64 / batched.as_secs_f64()
    );

    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let peak = status
        .lines()
        .find(|line| line.starts_with("VmHWM:"))
        .map(|line| line.trim_start_matches("VmHWM:").trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    println!("peak RSS (VmHWM): {peak}");
    Ok(())
}

#[cfg(not(feature = "local-embeddings"))]
fn main() {
    eprintln!("bench_embeddings needs the local-embeddings feature");
}
