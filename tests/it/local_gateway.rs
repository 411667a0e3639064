//! Local embeddings through the whole gateway: `/v1/embeddings` on a `local/` deployment
//! against sentence-transformers' reference vectors, `dimensions`, a chat call to an
//! embedding-only model, a deployment whose model directory is missing (the gateway starts,
//! `check` fails naming the file), concurrent callers, and RAG with the local model as
//! `EMBEDDING_MODEL`, with no upstream of any kind.
//!
//! The real model comes from `HX_TEST_MODEL_DIR` with the same skip/require rules as
//! `local_embeddings` (loud `SKIPPED`, a failure under `HX_REQUIRE_MODEL=1`); the
//! missing-directory test needs no model and always runs.

use std::collections::HashMap;
use std::path::Path;

use serde_json::{Value, json};

use crate::common::{GatewayProcess, MASTER, TestGateway, expect_error};
use crate::local_embeddings::{
    assert_matches_reference, max_abs_diff, reference, reference_model_dir,
};

/// The deployment under test, named as the issue's example config names it.
const MODEL: &str = "emb-local";

fn local_model_yaml(model_path: &Path) -> String {
    format!(
        r#"model_list:
  - model_name: {MODEL}
    litellm_params:
      model: local/all-MiniLM-L6-v2
      model_path: "{}"
    model_info:
      mode: embedding
  - model_name: mock-gpt
    litellm_params:
      model: openai/mock-gpt
      mock_response: "local answer"
"#,
        model_path.display()
    )
}

/// A gateway serving the reference model as `emb-local` (and RAG embedding with it), or `None`
/// after the loud skip.
async fn gateway_with_reference_model() -> Option<TestGateway> {
    let dir = reference_model_dir()?;
    let env = HashMap::from([("EMBEDDING_MODEL".to_string(), MODEL.to_string())]);
    Some(TestGateway::start_with_env(&local_model_yaml(&dir), env).await)
}

async fn embeddings(gw: &TestGateway, body: Value) -> reqwest::Response {
    gw.post("/v1/embeddings", body).await
}

/// The vectors of an OpenAI embeddings answer, checking its shape: `data` in index order, each
/// an `embedding` object of unit length.
fn vectors_of(body: &Value, count: usize, dims: usize) -> Vec<Vec<f32>> {
    assert_eq!(body["object"], "list", "{body}");
    assert_eq!(body["model"], MODEL, "{body}");
    let data = body["data"].as_array().expect("data array");
    assert_eq!(data.len(), count, "number of vectors");
    data.iter()
        .enumerate()
        .map(|(i, item)| {
            assert_eq!(item["object"], "embedding");
            assert_eq!(item["index"], i, "data in index order");
            let v: Vec<f32> = item["embedding"]
                .as_array()
                .expect("embedding array")
                .iter()
                .map(|x| x.as_f64().expect("number") as f32)
                .collect();
            assert_eq!(v.len(), dims, "dimensions of vector {i}");
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-4, "vector {i} norm {norm}");
            v
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embeddings_route_matches_the_reference_vectors() {
    let Some(gw) = gateway_with_reference_model().await else {
        return;
    };
    let reference = reference();
    let texts: Vec<&str> = reference.cases.iter().map(|c| c.text.as_str()).collect();

    // All texts in one request (one batch).
    let response = embeddings(&gw, json!({"model": MODEL, "input": texts})).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let vectors = vectors_of(&body, texts.len(), 384);
    for (got, case) in vectors.iter().zip(&reference.cases) {
        assert_matches_reference(got, &case.embedding, &case.text);
    }
    let tokens: u64 = reference
        .cases
        .iter()
        .map(|c| c.token_count.min(reference.max_seq_length) as u64)
        .sum();
    assert!(tokens > 0);
    assert_eq!(body["usage"]["prompt_tokens"], tokens, "{}", body["usage"]);
    assert_eq!(body["usage"]["total_tokens"], tokens, "{}", body["usage"]);

    // Each text alone, as a plain string input.
    for case in &reference.cases {
        let response = embeddings(&gw, json!({"model": MODEL, "input": case.text})).await;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        let vectors = vectors_of(&body, 1, 384);
        assert_matches_reference(&vectors[0], &case.embedding, &case.text);
        assert_eq!(
            body["usage"]["prompt_tokens"],
            case.token_count.min(reference.max_seq_length) as u64
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dimensions_are_accepted_only_at_the_native_size() {
    let Some(gw) = gateway_with_reference_model().await else {
        return;
    };
    let response = embeddings(
        &gw,
        json!({"model": MODEL, "input": ["hello world"], "dimensions": 384}),
    )
    .await;
    assert_eq!(response.status(), 200);
    vectors_of(&response.json().await.unwrap(), 1, 384);

    let response = embeddings(
        &gw,
        json!({"model": MODEL, "input": ["hello world"], "dimensions": 128}),
    )
    .await;
    let error = expect_error(response, 400, "invalid_request_error").await;
    assert_eq!(error["param"], "dimensions", "{error}");
    assert!(
        error["message"].as_str().unwrap().contains("dimensions"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_to_a_local_embedding_model_is_a_400() {
    let Some(gw) = gateway_with_reference_model().await else {
        return;
    };
    let response = gw
        .post(
            "/v1/chat/completions",
            json!({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    let error = expect_error(response, 400, "invalid_request_error").await;
    assert_eq!(error["param"], "model", "{error}");
    // The other model of the same gateway still answers chat.
    let response = gw
        .post(
            "/v1/chat/completions",
            json!({"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(response.status(), 200);
}

/// Many requests at once (merged into shared batches by the engine) get exactly what each
/// text gets alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_get_the_vectors_of_single_requests() {
    let Some(gw) = gateway_with_reference_model().await else {
        return;
    };
    let reference = reference();
    let texts: Vec<String> = reference.cases.iter().map(|c| c.text.clone()).collect();
    let mut alone = Vec::new();
    for text in &texts {
        let response = embeddings(&gw, json!({"model": MODEL, "input": [text]})).await;
        assert_eq!(response.status(), 200);
        alone.push(vectors_of(&response.json().await.unwrap(), 1, 384).remove(0));
    }

    let gw = std::sync::Arc::new(gw);
    let mut tasks = Vec::new();
    for round in 0..3 {
        for i in 0..texts.len() {
            // Mix one-text and two-text requests so batches hold texts of different lengths.
            let indexes = if (i + round) % 2 == 0 {
                vec![i]
            } else {
                vec![i, (i + round) % texts.len()]
            };
            let input: Vec<String> = indexes.iter().map(|&j| texts[j].clone()).collect();
            let gw = gw.clone();
            tasks.push(tokio::spawn(async move {
                let response = embeddings(&gw, json!({"model": MODEL, "input": input})).await;
                let status = response.status().as_u16();
                let body: Value = response.json().await.unwrap();
                (indexes, status, body)
            }));
        }
    }
    for task in tasks {
        let (indexes, status, body) = task.await.unwrap();
        assert_eq!(status, 200, "{body}");
        let vectors = vectors_of(&body, indexes.len(), 384);
        for (vector, i) in vectors.iter().zip(indexes) {
            let diff = max_abs_diff(vector, &alone[i]);
            // Only the padding of the shared batch differs, which the attention mask cancels.
            assert!(diff <= 1e-6, "text {i}: batched differs by {diff}");
            assert_matches_reference(vector, &reference.cases[i].embedding, &texts[i]);
        }
    }
}

/// The whole retrieval job on one machine: documents embedded by the local model into the
/// embedded vector store, then found by a query in words.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rag_upsert_and_search_by_query_with_the_local_model() {
    let Some(gw) = gateway_with_reference_model().await else {
        return;
    };
    let documents = [
        "The cat curled up on the windowsill and purred in the afternoon sun.",
        "Quarterly revenue rose 12 percent, driven by strong sales of cloud subscriptions.",
        "To reset your password, open Settings, choose Security and click Reset password.",
    ];
    let response = gw
        .post(
            "/v1/rag/upsert",
            json!({"namespace": "docs", "documents": documents.iter().map(|t| json!({"text": t})).collect::<Vec<_>>()}),
        )
        .await;
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["upserted"], documents.len(), "{body}");

    let queries = [
        ("How did the company's earnings do last quarter?", 1),
        ("my kitten sleeps by the window", 0),
        ("I forgot my login credentials", 2),
    ];
    for (query, want) in queries {
        let response = gw
            .post(
                "/v1/rag/search",
                json!({"namespace": "docs", "query": query, "limit": 3, "with_vector": true}),
            )
            .await;
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert_eq!(status, 200, "{body}");
        let hits = body["result"]["result"].as_array().expect("hits");
        assert_eq!(hits.len(), documents.len(), "{body}");
        assert_eq!(
            hits[0]["payload"]["text"], documents[want],
            "query {query:?}: {body}"
        );
        let first = hits[0]["score"].as_f64().unwrap();
        let second = hits[1]["score"].as_f64().unwrap();
        assert!(first > second, "query {query:?}: scores {first} {second}");
        // Stored vectors are the local model's (384 dimensions).
        assert_eq!(hits[0]["vector"].as_array().map(Vec::len), Some(384));
    }
}

/// A local deployment whose directory is missing: the real binary still starts and serves the
/// other models, the local model is unknown, and `check` fails naming the missing file. Needs
/// no model files, so it always runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_model_directory_disables_only_that_deployment() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-model");
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "{}general_settings:\n  master_key: {MASTER}\n",
            local_model_yaml(&missing)
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let env = [
        ("HX_DATA_DIR", data.display().to_string()),
        ("EMBEDDING_MODEL", MODEL.to_string()),
    ];
    let gateway = GatewayProcess::spawn(&config, &env, &[]).await;
    let client = reqwest::Client::new();

    let response = client
        .post(gateway.url("/v1/chat/completions"))
        .bearer_auth(MASTER)
        .json(&json!({"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "local answer");

    let response = client
        .post(gateway.url("/v1/embeddings"))
        .bearer_auth(MASTER)
        .json(&json!({"model": MODEL, "input": ["hello"]}))
        .send()
        .await
        .unwrap();
    // Configured but disabled (#27): a 503 naming the cause, not "does not exist".
    let error = expect_error(response, 503, "service_unavailable").await;
    assert_eq!(error["param"], "model", "{error}");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("is disabled") && message.contains("config.json"),
        "{message}"
    );

    let models: Value = client
        .get(gateway.url("/v1/models"))
        .bearer_auth(MASTER)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert!(ids.contains(&"mock-gpt"), "{models}");
    assert!(!ids.contains(&MODEL), "{models}");
    drop(gateway);

    let output = std::process::Command::new(env!("CARGO_BIN_EXE_hx-gateway"))
        .arg("check")
        .arg("--config")
        .arg(&config)
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_URL")
        .env_remove("QDRANT_URL")
        .env_remove("LITELLM_MASTER_KEY")
        .env("HX_DATA_DIR", &data)
        .env("EMBEDDING_MODEL", MODEL)
        .output()
        .unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!output.status.success(), "check passed: {report}");
    let line = report
        .lines()
        .find(|l| l.starts_with("error:") && l.contains(MODEL))
        .unwrap_or_else(|| panic!("no error line about {MODEL}: {report}"));
    assert!(line.contains("config.json"), "{line}");
    assert!(line.contains("missing"), "{line}");
    assert!(line.contains("no-such-model"), "{line}");
}

/// `examples/config.yaml` run from a directory without `models/`: the binary starts, chat and
/// the other routes work, `emb-local` alone is disabled (and `check` says which file is missing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_example_starts_without_the_model_files() {
    let cwd = tempfile::tempdir().unwrap();
    let gateway =
        GatewayProcess::spawn_in(Some(cwd.path()), &shipped_example(), &example_env(), &[]).await;
    let client = reqwest::Client::new();
    let response = client
        .post(gateway.url("/v1/chat/completions"))
        .bearer_auth(EXAMPLE_KEY)
        .json(&json!({"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let response = client
        .post(gateway.url("/v1/embeddings"))
        .bearer_auth(EXAMPLE_KEY)
        .json(&json!({"model": "emb-local", "input": "hello"}))
        .send()
        .await
        .unwrap();
    // Configured but disabled: a 503 that says why, not "does not exist".
    let error = expect_error(response, 503, "service_unavailable").await;
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("'emb-local' is disabled") && message.contains("config.json"),
        "{message}"
    );
    // RAG search by query names the same cause.
    let response = client
        .post(gateway.url("/v1/rag/search"))
        .bearer_auth(EXAMPLE_KEY)
        .json(&json!({"query": "hello"}))
        .send()
        .await
        .unwrap();
    let error = expect_error(response, 503, "service_unavailable").await;
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("'emb-local'")
            && message.contains("is disabled")
            && message.contains("config.json"),
        "{message}"
    );
    // So does /healthz/deps.
    let deps: Value = client
        .get(gateway.url("/healthz/deps"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(deps["embedding_model"], "emb-local");
    assert_eq!(deps["details"]["embedding_model"]["ready"], false, "{deps}");
    let why = deps["details"]["embedding_model"]["error"]
        .as_str()
        .unwrap();
    assert!(
        why.contains("disabled") && why.contains("config.json"),
        "{why}"
    );
    drop(gateway);

    let output = std::process::Command::new(env!("CARGO_BIN_EXE_hx-gateway"))
        .current_dir(cwd.path())
        .arg("check")
        .arg("--config")
        .arg(shipped_example())
        .envs(example_env())
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_URL")
        .env_remove("QDRANT_URL")
        .env_remove("OPENAI_API_BASE")
        .env_remove("OPENAI_API_KEY")
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(!output.status.success(), "{report}");
    let line = report
        .lines()
        .find(|l| l.starts_with("error:") && l.contains("'emb-local'"))
        .unwrap_or_else(|| panic!("no error line about emb-local: {report}"));
    assert!(line.contains("config.json"), "{line}");
}

/// The README's offline steps with `examples/config.yaml` unchanged: the model files in
/// `./models/all-MiniLM-L6-v2`, the real binary, documents upserted and found by a query with
/// the default key, and nothing but loopback traffic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_example_does_retrieval_offline_with_the_model_files() {
    let Some(model) = reference_model_dir() else {
        return;
    };
    let cwd = tempfile::tempdir().unwrap();
    std::fs::create_dir(cwd.path().join("models")).unwrap();
    std::os::unix::fs::symlink(&model, cwd.path().join("models/all-MiniLM-L6-v2")).unwrap();
    let gateway =
        GatewayProcess::spawn_in(Some(cwd.path()), &shipped_example(), &example_env(), &[]).await;
    let client = reqwest::Client::new();
    let post = |path: &str, body: Value| {
        client
            .post(gateway.url(path))
            .bearer_auth(EXAMPLE_KEY)
            .json(&body)
            .send()
    };
    let response = post(
        "/v1/rag/upsert",
        json!({"namespace": "docs", "documents": [
            {"text": "HX Gateway reads LiteLLM's config.yaml and serves OpenAI-compatible routes."},
            {"text": "Bread dough needs to rise for an hour in a warm place before baking."},
        ]}),
    )
    .await
    .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    let response = post(
        "/v1/rag/search",
        json!({"namespace": "docs", "query": "which configuration file format does the proxy use?", "limit": 2}),
    )
    .await
    .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    let hits = body["result"]["result"].as_array().unwrap();
    assert_eq!(hits.len(), 2, "{body}");
    assert!(
        hits[0]["payload"]["text"]
            .as_str()
            .unwrap()
            .starts_with("HX Gateway"),
        "{body}"
    );
}

const EXAMPLE_KEY: &str = "sk-hx-dev-1234";

fn shipped_example() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/config.yaml")
}

/// The environment of a fresh machine: the example's own key and embedding model, data in the
/// working directory's `data/`.
fn example_env() -> Vec<(&'static str, String)> {
    vec![
        ("LITELLM_MASTER_KEY", EXAMPLE_KEY.to_string()),
        ("HX_DATA_DIR", "data".to_string()),
    ]
}
