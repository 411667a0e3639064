//! `/v1/rag/*` end to end over HTTP: the real server, the real embedded Qdrant engine under a
//! temporary `HX_DATA_DIR`, virtual keys in the SQLite key store, and an embedding upstream
//! simulated by wiremock in OpenAI's `/v1/embeddings` wire format with deterministic vectors.
//! Restart, persistence and the directory lock run the real binary.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::common::*;

/// Dimensions of the simulated embedding model.
const DIMS: usize = 64;
const NEITHER: &str = "Provide either 'vector' or 'query'.";

/// An OpenAI-compatible embeddings upstream: each word of an input is hashed (FNV-1a) into one
/// of [`DIMS`] buckets and the vector normalised, so texts sharing words point the same way.
struct WordHashEmbeddings {
    calls: Arc<AtomicUsize>,
}

fn word_vector(text: &str) -> Vec<f32> {
    let mut v = vec![0.0f32; DIMS];
    for word in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in word.to_lowercase().bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        v[(h % DIMS as u64) as usize] += 1.0;
    }
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    } else {
        v[0] = 1.0;
    }
    v
}

impl Respond for WordHashEmbeddings {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        let inputs: Vec<String> = match &body["input"] {
            Value::String(s) => vec![s.clone()],
            Value::Array(items) => items
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect(),
            other => panic!("unexpected input {other}"),
        };
        let tokens: usize = inputs.iter().map(|t| t.split_whitespace().count()).sum();
        let data: Vec<Value> = inputs
            .iter()
            .enumerate()
            .map(|(i, t)| json!({"object": "embedding", "index": i, "embedding": word_vector(t)}))
            .collect();
        ResponseTemplate::new(200).set_body_json(json!({
            "object": "list", "model": body["model"], "data": data,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}
        }))
    }
}

/// The simulated embedding upstream and a counter of the calls it answered.
async fn embedding_upstream() -> (MockServer, Arc<AtomicUsize>) {
    let server = MockServer::start().await;
    let calls = Arc::new(AtomicUsize::new(0));
    Mock::given(method("POST"))
        .and(path("/v1/embeddings"))
        .respond_with(WordHashEmbeddings {
            calls: calls.clone(),
        })
        .mount(&server)
        .await;
    (server, calls)
}

/// A config whose `emb-premium` (the default `EMBEDDING_MODEL`) is the upstream at `base`.
fn yaml(base: &str) -> String {
    format!(
        r#"
model_list:
  - model_name: emb-premium
    litellm_params:
      model: openai/text-embedding-3-small
      api_base: {base}/v1
      api_key: sk-upstream-secret
    model_info: {{mode: embedding, input_cost_per_token: 0.001}}
  - model_name: mock
    litellm_params: {{model: openai/mock, mock_response: "ok"}}
"#
    )
}

async fn gateway(base: &str) -> TestGateway {
    TestGateway::start(&yaml(base)).await
}

async fn post_as(gw: &TestGateway, key: &str, route: &str, body: Value) -> reqwest::Response {
    gw.client
        .post(gw.url(route))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn ok_json(response: reqwest::Response) -> Value {
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    body
}

async fn generate_key(gw: &TestGateway, body: Value) -> String {
    let body = ok_json(gw.post("/key/generate", body).await).await;
    body["key"].as_str().unwrap().to_string()
}

/// The hits of a search response, after checking the spec's nested shape.
fn hits(body: &Value) -> Vec<Value> {
    assert_eq!(body["status"], "ok", "{body}");
    assert_eq!(body["result"]["status"], "ok", "{body}");
    assert!(body["result"]["time"].is_number(), "{body}");
    body["result"]["result"].as_array().unwrap().clone()
}

fn texts(hits: &[Value]) -> Vec<String> {
    hits.iter()
        .map(|h| {
            h["payload"]["text"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

/// Every point of a namespace in the default collection, seen with the master key.
async fn namespace_texts(gw: &TestGateway, ns: &str) -> Vec<String> {
    let mut v = vec![0.0f32; DIMS];
    v[0] = 1.0;
    let body = ok_json(
        gw.post(
            "/v1/rag/search",
            json!({"vector": v, "namespace": ns, "limit": 1000}),
        )
        .await,
    )
    .await;
    let mut t = texts(&hits(&body));
    t.sort();
    t
}

const DOCS: [&str; 4] = [
    "the cat sat on the warm mat",
    "quantum physics explains black holes and gravity",
    "a recipe for fresh tomato soup with basil",
    "hello world program written in rust",
];

#[tokio::test]
async fn upserted_documents_are_found_by_query_first() {
    let (upstream, calls) = embedding_upstream().await;
    let gw = gateway(&upstream.uri()).await;
    let docs: Vec<Value> = DOCS
        .iter()
        .map(|t| json!({"text": t, "metadata": {"source": "docs.md"}}))
        .collect();
    let body = ok_json(
        gw.post(
            "/v1/rag/upsert",
            json!({"namespace": "docs", "documents": docs}),
        )
        .await,
    )
    .await;
    assert_eq!(body["status"], "ok");
    assert_eq!(body["result"]["upserted"], 4);
    // Ids are the spec's UUIDv5 of the length-prefixed namespace and text.
    let expected: Vec<Value> = DOCS
        .iter()
        .map(|t| {
            let name = format!("hx2:4:docs{t}");
            json!(uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, name.as_bytes()).to_string())
        })
        .collect();
    assert_eq!(body["result"]["ids"], json!(expected));
    // One batch for the four documents.
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    for (query, want) in [
        ("black holes gravity", DOCS[1]),
        ("tomato soup", DOCS[2]),
        ("where the cat sat", DOCS[0]),
    ] {
        let body = ok_json(
            gw.post("/v1/rag/search", json!({"query": query, "limit": 3}))
                .await,
        )
        .await;
        let found = hits(&body);
        assert_eq!(found[0]["payload"]["text"], want, "{query}: {body}");
        assert_eq!(found[0]["payload"]["namespace"], "docs");
        assert_eq!(found[0]["payload"]["source"], "docs.md");
        assert!(found[0]["id"].is_string() && found[0]["version"].is_u64());
        let scores: Vec<f64> = found.iter().map(|h| h["score"].as_f64().unwrap()).collect();
        assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
        assert!(found.len() <= 3);
    }

    // Re-upserting the same text replaces it instead of duplicating.
    ok_json(
        gw.post(
            "/v1/rag/upsert",
            json!({"namespace": "docs", "documents": [{"text": DOCS[1], "metadata": {"source": "again.md"}}]}),
        )
        .await,
    )
    .await;
    let all = namespace_texts(&gw, "docs").await;
    assert_eq!(all.len(), 4, "{all:?}");
    let body = ok_json(
        gw.post(
            "/v1/rag/search",
            json!({"query": "black holes", "limit": 1}),
        )
        .await,
    )
    .await;
    assert_eq!(hits(&body)[0]["payload"]["source"], "again.md");
}

#[tokio::test]
async fn the_seed_smoke_requests_work_verbatim() {
    let (upstream, _) = embedding_upstream().await;
    let gw = gateway(&upstream.uri()).await;
    ok_json(
        gw.post(
            "/v1/rag/upsert",
            json!({"documents": [{"text": "hello world"}, {"text": "goodbye moon"}]}),
        )
        .await,
    )
    .await;
    let r = gw
        .client
        .post(gw.url("/v1/rag/search"))
        .bearer_auth(MASTER)
        .header("content-type", "application/json")
        .body(r#"{"query":"hello world","limit":3}"#)
        .send()
        .await
        .unwrap();
    let body = ok_json(r).await;
    let found = hits(&body);
    assert_eq!(found[0]["payload"]["text"], "hello world", "{body}");
    assert!((found[0]["score"].as_f64().unwrap() - 1.0).abs() < 1e-4);

    // A 5-dimensional collection, searched by name.
    let points: Vec<Value> = (1..=4u64)
        .map(|i| {
            json!({"id": i, "vector": [0.01 * i as f64, 0.0, 0.02, 0.03, 0.001], "payload": {"text": format!("p{i}")}})
        })
        .collect();
    ok_json(
        gw.post(
            "/v1/rag/upsert",
            json!({"collection": "smoke5", "points": points}),
        )
        .await,
    )
    .await;
    let r = gw
        .client
        .post(gw.url("/v1/rag/search"))
        .bearer_auth(MASTER)
        .header("content-type", "application/json")
        .body(r#"{"vector":[0.01,0,0.02,0.03,0],"limit":3,"score_threshold":0,"collection":"smoke5"}"#)
        .send()
        .await
        .unwrap();
    let found = hits(&ok_json(r).await);
    assert_eq!(found.len(), 3);

    // And the request exactly as the seed sends it, against a gateway whose default
    // collection is 5-dimensional.
    let env = HashMap::from([("QDRANT_COLLECTION".to_string(), "five".to_string())]);
    let gw5 = TestGateway::start_with_env(&yaml(&upstream.uri()), env).await;
    ok_json(gw5.post("/v1/rag/upsert", json!({"points": points})).await).await;
    let r = gw5
        .client
        .post(gw5.url("/v1/rag/search"))
        .bearer_auth(MASTER)
        .header("content-type", "application/json")
        .body(r#"{"vector":[0.01,0,0.02,0.03,0],"limit":3,"score_threshold":0}"#)
        .send()
        .await
        .unwrap();
    let found = hits(&ok_json(r).await);
    assert_eq!(found.len(), 3);
    assert!(found.iter().all(|h| h["payload"]["text"].is_string()));
}

#[tokio::test]
async fn validation_errors_have_the_spec_status_message_and_param() {
    let (upstream, calls) = embedding_upstream().await;
    let gw = gateway(&upstream.uri()).await;
    ok_json(
        gw.post(
            "/v1/rag/upsert",
            json!({"namespace": "n", "documents": [{"text": "one two"}, {"text": "three four"}]}),
        )
        .await,
    )
    .await;
    let before = namespace_texts(&gw, "n").await;
    assert_eq!(before.len(), 2);
    let calls_before = calls.load(Ordering::SeqCst);

    for body in [
        json!({}),
        json!({"limit": 3}),
        json!({"query": "", "limit": 3}),
        json!({"query": null, "vector": null}),
    ] {
        let e = expect_error(
            gw.post("/v1/rag/search", body.clone()).await,
            400,
            "invalid_request_error",
        )
        .await;
        assert_eq!(e["message"], NEITHER, "{body}");
        assert_eq!(e["param"], "query");
    }
    for limit in [json!(0), json!(1001), json!(-1)] {
        let e = expect_error(
            gw.post("/v1/rag/search", json!({"query": "one", "limit": limit}))
                .await,
            400,
            "invalid_request_error",
        )
        .await;
        assert_eq!(e["param"], "limit", "{limit}");
        assert!(e["message"].as_str().unwrap().contains("1000"), "{e}");
    }
    // Invalid requests are refused before anything is embedded.
    assert_eq!(calls.load(Ordering::SeqCst), calls_before);
    // The bounds themselves are fine.
    for limit in [1, 1000] {
        ok_json(
            gw.post("/v1/rag/search", json!({"query": "one", "limit": limit}))
                .await,
        )
        .await;
    }
    let e = expect_error(
        gw.post(
            "/v1/rag/search",
            json!({"query": "one", "score_threshold": -0.1}),
        )
        .await,
        400,
        "invalid_request_error",
    )
    .await;
    assert_eq!(e["param"], "score_threshold");

    // Wrong vector size, on search and upsert: both sizes named.
    let e = expect_error(
        gw.post("/v1/rag/search", json!({"vector": [0.1, 0.2, 0.3]}))
            .await,
        400,
        "invalid_request_error",
    )
    .await;
    let message = e["message"].as_str().unwrap();
    assert!(
        message.contains(&DIMS.to_string()) && message.contains('3'),
        "{message}"
    );
    assert_eq!(e["param"], "vector");
    let e = expect_error(
        gw.post(
            "/v1/rag/upsert",
            json!({"points": [{"id": 9, "vector": [0.1, 0.2, 0.3]}]}),
        )
        .await,
        400,
        "invalid_request_error",
    )
    .await;
    let message = e["message"].as_str().unwrap();
    assert!(
        message.contains(&DIMS.to_string()) && message.contains('3'),
        "{message}"
    );

    // An empty delete is refused and deletes nothing, in every spelling of "nothing".
    for body in [
        json!({}),
        json!({"ids": []}),
        json!({"filter": {}}),
        json!({"filter": {"must": []}}),
        json!({"ids": null, "namespace": null, "filter": null}),
    ] {
        let e = expect_error(
            gw.post("/v1/rag/delete", body.clone()).await,
            400,
            "invalid_request_error",
        )
        .await;
        assert!(!e["message"].as_str().unwrap().is_empty(), "{body}");
    }
    assert_eq!(namespace_texts(&gw, "n").await, before);

    // A collection that does not exist.
    let e = expect_error(
        gw.post(
            "/v1/rag/search",
            json!({"vector": [0.1, 0.2], "collection": "nowhere"}),
        )
        .await,
        404,
        "not_found_error",
    )
    .await;
    assert!(e["message"].as_str().unwrap().contains("nowhere"), "{e}");
    assert_eq!(e["param"], "collection");

    // An empty collection is 200 with no hits, not 404.
    ok_json(
        gw.post(
            "/v1/rag/upsert",
            json!({"collection": "emptied", "points": [{"id": 1, "vector": [1.0, 0.0]}]}),
        )
        .await,
    )
    .await;
    ok_json(
        gw.post(
            "/v1/rag/delete",
            json!({"collection": "emptied", "ids": [1]}),
        )
        .await,
    )
    .await;
    let body = ok_json(
        gw.post(
            "/v1/rag/search",
            json!({"collection": "emptied", "vector": [1.0, 0.0]}),
        )
        .await,
    )
    .await;
    assert!(hits(&body).is_empty());
}

/// A field of the wrong type is a 400 naming it, on every route: the field's own message and
/// its path as `param` (an element of a list names the list).
#[tokio::test]
async fn a_wrong_typed_field_is_a_400_naming_it() {
    let (upstream, calls) = embedding_upstream().await;
    let gw = gateway(&upstream.uri()).await;
    for (route, body, message, param) in [
        (
            "/v1/rag/search",
            json!({"query": "one", "limit": "5"}),
            "'limit' must be an integer.",
            "limit",
        ),
        (
            "/v1/rag/search",
            json!({"query": "one", "with_payload": ["text", 1]}),
            "'with_payload' must be a boolean or an array of field names.",
            "with_payload",
        ),
        (
            "/v1/rag/upsert",
            json!({"documents": [{"text": "one"}, {"text": 5}]}),
            "'documents[1].text' must be a string.",
            "documents[1].text",
        ),
        (
            "/v1/rag/upsert",
            json!({"points": [{"id": 1, "vector": [1.0], "payload": []}]}),
            "'points[0].payload' must be an object.",
            "points[0].payload",
        ),
        (
            "/v1/rag/upsert",
            json!({"documents": [{"text": "one"}, "two"]}),
            "'documents[1]' must be an object.",
            "documents",
        ),
        (
            "/v1/rag/delete",
            json!({"ids": [1, "x"]}),
            "'ids[1]' must be an unsigned integer or a UUID.",
            "ids",
        ),
        (
            "/v1/rag/points",
            json!({"offset": true}),
            "'offset' must be an unsigned integer or a UUID.",
            "offset",
        ),
        // Several wrong fields: always the first in the spec's order, whatever the body's.
        (
            "/v1/rag/search",
            json!({"query": 5, "limit": 0, "namespace": ""}),
            "'namespace' must be a non-empty string.",
            "namespace",
        ),
    ] {
        let e = expect_error(
            gw.post(route, body.clone()).await,
            400,
            "invalid_request_error",
        )
        .await;
        assert_eq!(e["message"], message, "{route} {body}");
        assert_eq!(e["param"], param, "{route} {body}");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0, "nothing was embedded");
}

#[tokio::test]
async fn an_unreachable_qdrant_server_is_503() {
    let (upstream, _) = embedding_upstream().await;
    let env = HashMap::from([(
        "QDRANT_URL".to_string(),
        format!("http://127.0.0.1:{}", free_port()),
    )]);
    let gw = TestGateway::start_with_env(&yaml(&upstream.uri()), env).await;
    for (route, body) in [
        ("/v1/rag/search", json!({"vector": [0.1, 0.2]})),
        ("/v1/rag/search", json!({"query": "hello"})),
        (
            "/v1/rag/upsert",
            json!({"points": [{"id": 1, "vector": [0.1, 0.2]}]}),
        ),
        ("/v1/rag/upsert", json!({"documents": [{"text": "hello"}]})),
        ("/v1/rag/delete", json!({"ids": [1]})),
    ] {
        let e = expect_error(
            gw.post(route, body.clone()).await,
            503,
            "service_unavailable",
        )
        .await;
        assert!(
            !e["message"]
                .as_str()
                .unwrap()
                .contains("sk-upstream-secret"),
            "{e}"
        );
    }
}

#[tokio::test]
async fn embedding_upstream_failures_map_as_for_v1_embeddings() {
    let failing = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/embeddings"))
        .respond_with(ResponseTemplate::new(500).set_body_string("embedding backend exploded"))
        .mount(&failing)
        .await;
    // Failures must not put the deployment in cooldown (a 429) between the requests compared.
    let no_cooldown =
        |base: &str| format!("{}router_settings:\n  allowed_fails: 1000\n", yaml(base));
    let gw = TestGateway::start(&no_cooldown(&failing.uri())).await;
    // The collection exists (points need no embedding), so only the embedding can fail.
    let mut v = vec![0.0f32; DIMS];
    v[1] = 1.0;
    ok_json(
        gw.post(
            "/v1/rag/upsert",
            json!({"points": [{"id": 1, "vector": v, "payload": {"text": "kept"}}]}),
        )
        .await,
    )
    .await;
    let direct = gw
        .post(
            "/v1/embeddings",
            json!({"model": "emb-premium", "input": ["hello"]}),
        )
        .await;
    let direct_status = direct.status();
    let direct: Value = direct.json().await.unwrap();
    assert_eq!(direct_status, 500, "{direct}");
    for (route, body) in [
        ("/v1/rag/search", json!({"query": "hello"})),
        (
            "/v1/rag/upsert",
            json!({"documents": [{"text": "hello"}, {"text": "world"}]}),
        ),
    ] {
        let e = expect_error(gw.post(route, body).await, 500, "api_error").await;
        assert_eq!(e["type"], direct["error"]["type"]);
        assert!(
            e["message"]
                .as_str()
                .unwrap()
                .contains("embedding backend exploded"),
            "{e}"
        );
    }
    // Nothing of the failed upsert is stored.
    let body = ok_json(
        gw.post("/v1/rag/search", json!({"vector": v, "limit": 100}))
            .await,
    )
    .await;
    assert_eq!(texts(&hits(&body)), ["kept"]);

    // An upstream that cannot be reached: 502, as for /v1/embeddings.
    let closed = format!("http://127.0.0.1:{}", free_port());
    let gw = TestGateway::start(&no_cooldown(&closed)).await;
    expect_error(
        gw.post(
            "/v1/embeddings",
            json!({"model": "emb-premium", "input": "x"}),
        )
        .await,
        502,
        "api_connection_error",
    )
    .await;
    expect_error(
        gw.post("/v1/rag/search", json!({"query": "hello"})).await,
        502,
        "api_connection_error",
    )
    .await;
    expect_error(
        gw.post("/v1/rag/upsert", json!({"documents": [{"text": "hello"}]}))
            .await,
        502,
        "api_connection_error",
    )
    .await;
}

#[tokio::test]
async fn a_missing_embedding_model_only_breaks_query_search() {
    let (upstream, _) = embedding_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, yaml(&upstream.uri())).unwrap();
    // The real binary starts (and gets ready) with a model that is not in model_list.
    let gw = GatewayProcess::spawn(
        &config,
        &[
            ("LITELLM_MASTER_KEY", MASTER.to_string()),
            ("HX_DATA_DIR", dir.path().join("data").display().to_string()),
            ("EMBEDDING_MODEL", "emb-nowhere".to_string()),
        ],
        &[],
    )
    .await;
    let client = reqwest::Client::new();
    let post = |route: &str, body: Value| {
        client
            .post(gw.url(route))
            .bearer_auth(MASTER)
            .json(&body)
            .send()
    };
    let e = expect_error(
        post("/v1/rag/search", json!({"query": "hello"}))
            .await
            .unwrap(),
        400,
        "invalid_request_error",
    )
    .await;
    assert!(
        e["message"].as_str().unwrap().contains("emb-nowhere"),
        "{e}"
    );
    let e = expect_error(
        post("/v1/rag/upsert", json!({"documents": [{"text": "hello"}]}))
            .await
            .unwrap(),
        400,
        "invalid_request_error",
    )
    .await;
    assert!(
        e["message"].as_str().unwrap().contains("emb-nowhere"),
        "{e}"
    );
    let r = post(
        "/v1/rag/upsert",
        json!({"points": [{"id": 1, "vector": [1.0, 0.0, 0.0], "payload": {"text": "by vector"}}]}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let r = post("/v1/rag/search", json!({"vector": [0.9, 0.1, 0.0]}))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(texts(&hits(&body)), ["by vector"]);
}

#[tokio::test]
async fn a_key_not_allowed_the_embedding_model_cannot_search_by_query() {
    let (upstream, calls) = embedding_upstream().await;
    let gw = gateway(&upstream.uri()).await;
    let mut v = vec![0.0f32; DIMS];
    v[2] = 1.0;
    ok_json(
        gw.post(
            "/v1/rag/upsert",
            json!({"points": [{"id": 1, "vector": v, "payload": {"text": "x"}}]}),
        )
        .await,
    )
    .await;
    let key = generate_key(&gw, json!({"models": ["mock"]})).await;
    let before = calls.load(Ordering::SeqCst);
    let e = expect_error(
        post_as(&gw, &key, "/v1/rag/search", json!({"query": "hello"})).await,
        401,
        "key_model_access_denied",
    )
    .await;
    assert!(
        e["message"].as_str().unwrap().contains("emb-premium"),
        "{e}"
    );
    expect_error(
        post_as(
            &gw,
            &key,
            "/v1/rag/upsert",
            json!({"documents": [{"text": "hello"}]}),
        )
        .await,
        401,
        "key_model_access_denied",
    )
    .await;
    assert_eq!(calls.load(Ordering::SeqCst), before, "nothing was embedded");
    // Search by vector needs no model.
    let body = ok_json(post_as(&gw, &key, "/v1/rag/search", json!({"vector": v})).await).await;
    assert_eq!(texts(&hits(&body)), ["x"]);
    // No key at all.
    let r = gw
        .client
        .post(gw.url("/v1/rag/search"))
        .json(&json!({"vector": v}))
        .send()
        .await
        .unwrap();
    expect_error(r, 401, "auth_error").await;
}

#[tokio::test]
async fn the_embedding_cost_is_the_callers_spend() {
    let (upstream, _) = embedding_upstream().await;
    let gw = gateway(&upstream.uri()).await;
    ok_json(
        gw.post(
            "/v1/rag/upsert",
            json!({"documents": [{"text": "spend some tokens here"}]}),
        )
        .await,
    )
    .await;
    let key = generate_key(&gw, json!({"models": ["emb-premium", "mock"]})).await;
    let other = generate_key(&gw, json!({"models": ["emb-premium", "mock"]})).await;
    let body = ok_json(
        post_as(
            &gw,
            &key,
            "/v1/rag/search",
            json!({"query": "spend some tokens"}),
        )
        .await,
    )
    .await;
    assert_eq!(hits(&body)[0]["payload"]["text"], "spend some tokens here");
    ok_json(
        post_as(
            &gw,
            &key,
            "/v1/rag/upsert",
            json!({"documents": [{"text": "more tokens to pay for"}]}),
        )
        .await,
    )
    .await;
    gw.state.keys().unwrap().flush_spend().await.unwrap();
    let spend = |k: String| {
        let gw = &gw;
        async move {
            let info: Value = gw
                .get(&format!("/key/info?key={k}"))
                .await
                .json()
                .await
                .unwrap();
            info["info"]["spend"].as_f64().unwrap()
        }
    };
    // 3 + 5 prompt tokens at 0.001 each.
    let s = spend(key.clone()).await;
    assert!((s - 0.008).abs() < 1e-9, "spend {s}");
    assert_eq!(spend(other).await, 0.0);
}

#[tokio::test]
async fn namespace_scoping_holds_on_every_route() {
    let (upstream, _) = embedding_upstream().await;
    let gw = gateway(&upstream.uri()).await;
    let docs = |prefix: &str| -> Vec<Value> {
        DOCS.iter()
            .map(|t| json!({"text": format!("{prefix} {t}")}))
            .collect()
    };
    let b_upsert = ok_json(
        gw.post(
            "/v1/rag/upsert",
            json!({"namespace": "b", "documents": docs("bee")}),
        )
        .await,
    )
    .await;
    let b_ids = b_upsert["result"]["ids"].as_array().unwrap().clone();
    ok_json(
        gw.post(
            "/v1/rag/upsert",
            json!({"namespace": "a", "documents": docs("ant")}),
        )
        .await,
    )
    .await;
    let b_before = namespace_texts(&gw, "b").await;
    assert_eq!(b_before.len(), 4);

    let scoped = generate_key(&gw, json!({"metadata": {"rag_namespaces": ["a"]}})).await;
    let denied = |r: reqwest::Response, param: Option<&'static str>| async move {
        let e = expect_error(r, 403, "permission_error").await;
        if let Some(param) = param {
            assert_eq!(e["param"], param, "{e}");
        }
        e
    };

    // Reads: limited to "a" when naming nothing; "b" anywhere is refused.
    let body = ok_json(
        post_as(
            &gw,
            &scoped,
            "/v1/rag/search",
            json!({"query": "bee black holes", "limit": 100}),
        )
        .await,
    )
    .await;
    let found = hits(&body);
    assert_eq!(found.len(), 4);
    assert!(
        found.iter().all(|h| h["payload"]["namespace"] == "a"),
        "{body}"
    );
    for body in [
        json!({"query": "x", "namespace": "b"}),
        json!({"query": "x", "filter": {"must": [{"key": "namespace", "match": {"value": "b"}}]}}),
        json!({"query": "x", "namespace": "a", "filter": {"should": [{"key": "namespace", "match": {"value": "b"}}]}}),
        json!({"query": "x", "filter": {"must": [{"key": "namespace", "match": {"any": ["a", "b"]}}]}}),
        json!({"query": "x", "filter": {"must_not": [{"key": "namespace", "match": {"except": ["b"]}}]}}),
        json!({"query": "x", "filter": {"must": [{"should": [{"key": "namespace", "match": {"value": "b"}}]}]}}),
    ] {
        let param = if body.get("filter").is_some() {
            "filter"
        } else {
            "namespace"
        };
        denied(
            post_as(&gw, &scoped, "/v1/rag/search", body.clone()).await,
            Some(param),
        )
        .await;
    }
    // A filter that does not name a namespace cannot widen the scope either.
    let body = ok_json(
        post_as(
            &gw,
            &scoped,
            "/v1/rag/search",
            json!({"query": "black holes", "limit": 100,
                   "filter": {"should": [{"has_id": b_ids}, {"key": "source", "match": {"value": "none"}}],
                              "must_not": [{"key": "namespace", "match": {"value": "a"}}]}}),
        )
        .await,
    )
    .await;
    assert!(hits(&body).is_empty(), "{body}");

    // Writes: "b" in namespace, metadata or payload is refused; naming none is a 400.
    for body in [
        json!({"namespace": "b", "documents": [{"text": "intruder"}]}),
        json!({"namespace": "a", "documents": [{"text": "intruder", "metadata": {"namespace": "b"}}]}),
        json!({"namespace": "a", "points": [{"id": 77, "vector": vec![0.5f32; DIMS], "payload": {"namespace": "b"}}]}),
        // Overwriting a point of "b" by its id.
        json!({"namespace": "a", "points": [{"id": b_ids[0], "vector": vec![0.5f32; DIMS], "payload": {"text": "hijacked"}}]}),
        json!({"namespace": "a", "documents": [{"id": b_ids[1], "text": "hijacked"}]}),
    ] {
        denied(
            post_as(&gw, &scoped, "/v1/rag/upsert", body.clone()).await,
            None,
        )
        .await;
    }
    let e = expect_error(
        post_as(
            &gw,
            &scoped,
            "/v1/rag/upsert",
            json!({"documents": [{"text": "no namespace"}]}),
        )
        .await,
        400,
        "invalid_request_error",
    )
    .await;
    assert_eq!(e["param"], "namespace");
    // Its own namespace works, and the request's namespace is what gets stored.
    ok_json(
        post_as(
            &gw,
            &scoped,
            "/v1/rag/upsert",
            json!({"namespace": "a", "documents": [{"text": "ant fresh note", "metadata": {"namespace": "a"}}]}),
        )
        .await,
    )
    .await;
    assert!(
        namespace_texts(&gw, "a")
            .await
            .contains(&"ant fresh note".to_string())
    );

    // Deletes: "b" anywhere is refused; ids of "b" under namespace "a" delete nothing of "b".
    for body in [
        json!({"namespace": "b"}),
        json!({"filter": {"must": [{"key": "namespace", "match": {"value": "b"}}]}}),
        json!({"namespace": "a", "filter": {"should": [{"key": "namespace", "match": {"any": ["b"]}}]}}),
    ] {
        denied(
            post_as(&gw, &scoped, "/v1/rag/delete", body.clone()).await,
            None,
        )
        .await;
    }
    let e = expect_error(
        post_as(&gw, &scoped, "/v1/rag/delete", json!({"ids": b_ids})).await,
        400,
        "invalid_request_error",
    )
    .await;
    assert_eq!(e["param"], "namespace");
    ok_json(
        post_as(
            &gw,
            &scoped,
            "/v1/rag/delete",
            json!({"namespace": "a", "ids": b_ids}),
        )
        .await,
    )
    .await;
    ok_json(
        post_as(
            &gw,
            &scoped,
            "/v1/rag/delete",
            json!({"namespace": "a", "filter": {"must_not": [{"key": "text", "match": {"value": "nothing"}}]}}),
        )
        .await,
    )
    .await;
    assert_eq!(
        namespace_texts(&gw, "b").await,
        b_before,
        "namespace b untouched"
    );
    assert!(
        namespace_texts(&gw, "a").await.is_empty(),
        "the scoped key emptied a"
    );

    // Only the default collection.
    for (route, body) in [
        (
            "/v1/rag/search",
            json!({"query": "x", "namespace": "a", "collection": "other"}),
        ),
        (
            "/v1/rag/upsert",
            json!({"namespace": "a", "collection": "other", "documents": [{"text": "x"}]}),
        ),
        (
            "/v1/rag/delete",
            json!({"namespace": "a", "collection": "other"}),
        ),
    ] {
        denied(post_as(&gw, &scoped, route, body).await, Some("collection")).await;
    }

    // An empty list denies everything.
    let nothing = generate_key(&gw, json!({"metadata": {"rag_namespaces": []}})).await;
    for (route, body) in [
        ("/v1/rag/search", json!({"query": "bee"})),
        ("/v1/rag/search", json!({"vector": vec![0.5f32; DIMS]})),
        (
            "/v1/rag/upsert",
            json!({"namespace": "b", "documents": [{"text": "x"}]}),
        ),
        ("/v1/rag/delete", json!({"namespace": "b"})),
        ("/v1/rag/delete", json!({"ids": b_ids})),
    ] {
        denied(post_as(&gw, &nothing, route, body).await, None).await;
    }
    assert_eq!(namespace_texts(&gw, "b").await, b_before);

    // A key without rag_namespaces, like the master key, is unrestricted.
    let free = generate_key(&gw, json!({"metadata": {"team": "x"}})).await;
    let body = ok_json(
        post_as(
            &gw,
            &free,
            "/v1/rag/search",
            json!({"query": "bee", "namespace": "b"}),
        )
        .await,
    )
    .await;
    assert!(!hits(&body).is_empty());
    ok_json(gw.post("/v1/rag/delete", json!({"namespace": "b"})).await).await;
    assert!(namespace_texts(&gw, "b").await.is_empty());
}

#[tokio::test]
async fn concurrent_upserts_and_searches_succeed() {
    let (upstream, _) = embedding_upstream().await;
    let gw = Arc::new(gateway(&upstream.uri()).await);
    ok_json(
        gw.post("/v1/rag/upsert", json!({"documents": [{"text": "seed"}]}))
            .await,
    )
    .await;
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let gw = gw.clone();
            tokio::spawn(async move {
                for i in 0..10 {
                    let text = format!("writer {t} note {i} about topic{t}x{i}");
                    let r = gw
                        .post(
                            "/v1/rag/upsert",
                            json!({"namespace": format!("t{t}"), "documents": [{"text": text}]}),
                        )
                        .await;
                    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
                    let r = gw
                        .post(
                            "/v1/rag/search",
                            json!({"query": text, "namespace": format!("t{t}"), "limit": 3}),
                        )
                        .await;
                    let body: Value = r.json().await.unwrap();
                    // Upserts are visible on return: the identical text scores 1.
                    let top = hits(&body)[0]["score"].as_f64().unwrap();
                    assert!((top - 1.0).abs() < 1e-4, "{body}");
                    assert!(texts(&hits(&body)).contains(&text), "{body}");
                    let r = gw
                        .post("/v1/rag/search", json!({"vector": word_vector("seed")}))
                        .await;
                    assert_eq!(r.status(), 200);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    for t in 0..8 {
        assert_eq!(namespace_texts(&gw, &format!("t{t}")).await.len(), 10);
    }
}

/// A config file and a data directory for the real binary.
struct ProcessSetup {
    dir: tempfile::TempDir,
    config: std::path::PathBuf,
}

impl ProcessSetup {
    fn new(base: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.yaml");
        std::fs::write(&config, yaml(base)).unwrap();
        ProcessSetup { dir, config }
    }

    async fn spawn(&self) -> GatewayProcess {
        GatewayProcess::spawn(
            &self.config,
            &[
                ("LITELLM_MASTER_KEY", MASTER.to_string()),
                (
                    "HX_DATA_DIR",
                    self.dir.path().join("data").display().to_string(),
                ),
            ],
            &[],
        )
        .await
    }
}

async fn process_post(gw: &GatewayProcess, route: &str, body: Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(gw.url(route))
        .bearer_auth(MASTER)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

/// `/healthz/deps` of a gateway process.
async fn process_deps(gw: &GatewayProcess) -> Value {
    let r = reqwest::Client::new()
        .get(gw.url("/healthz/deps"))
        .bearer_auth(MASTER)
        .send()
        .await
        .unwrap();
    r.json().await.unwrap()
}

/// SIGTERM (a graceful stop), then waits for the exit.
fn terminate(mut gw: GatewayProcess) {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &gw.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = gw.child.wait().unwrap();
    assert!(exit.success(), "graceful stop: {exit:?}");
}

async fn process_texts(gw: &GatewayProcess, query: &str) -> Vec<String> {
    let (status, body) =
        process_post(gw, "/v1/rag/search", json!({"query": query, "limit": 100})).await;
    assert_eq!(status, 200, "{body}");
    texts(&hits(&body))
}

#[tokio::test]
async fn data_survives_a_restart_and_a_crash_of_the_gateway() {
    let (upstream, _) = embedding_upstream().await;
    let setup = ProcessSetup::new(&upstream.uri());
    let first = setup.spawn().await;
    let (status, body) = process_post(
        &first,
        "/v1/rag/upsert",
        json!({"namespace": "p", "documents": DOCS.iter().map(|t| json!({"text": t})).collect::<Vec<_>>()}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    terminate(first);

    let second = setup.spawn().await;
    let found = process_texts(&second, "black holes gravity").await;
    assert_eq!(found.len(), 4);
    assert_eq!(found[0], DOCS[1]);
    let (status, body) = process_post(
        &second,
        "/v1/rag/upsert",
        json!({"namespace": "p", "documents": [{"text": "written just before a crash"}]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // SIGKILL: no flush, no shutdown; what was acknowledged must still be there.
    drop(second);

    let third = setup.spawn().await;
    let found = process_texts(&third, "written before a crash").await;
    assert_eq!(found.len(), 5, "{found:?}");
    assert_eq!(found[0], "written just before a crash");
}

#[tokio::test]
async fn a_second_process_on_the_same_data_dir_is_refused_cleanly() {
    let (upstream, _) = embedding_upstream().await;
    let setup = ProcessSetup::new(&upstream.uri());
    let first = setup.spawn().await;
    let (status, body) = process_post(
        &first,
        "/v1/rag/upsert",
        json!({"namespace": "x", "documents": [{"text": "owned by the first"}]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // The second gateway starts (LLM routes and keys work) but refuses RAG with a clear 503.
    let second = setup.spawn().await;
    for (route, body) in [
        ("/v1/rag/search", json!({"query": "owned"})),
        (
            "/v1/rag/upsert",
            json!({"documents": [{"text": "from the second"}]}),
        ),
        ("/v1/rag/delete", json!({"namespace": "x"})),
    ] {
        let (status, body) = process_post(&second, route, body).await;
        assert_eq!(status, 503, "{route}: {body}");
        assert_eq!(body["error"]["type"], "service_unavailable");
        assert_eq!(body["error"]["code"], "503");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("already in use") && message.contains(".lock"),
            "{message}"
        );
    }
    let (status, _) = process_post(
        &second,
        "/v1/chat/completions",
        json!({"model": "mock", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(status, 200);

    assert_eq!(process_deps(&second).await["qdrant"], false);

    // The first is unaffected, and keeps writing.
    assert_eq!(process_texts(&first, "owned").await, ["owned by the first"]);
    let (status, _) = process_post(
        &first,
        "/v1/rag/upsert",
        json!({"namespace": "x", "documents": [{"text": "second note of the first"}]}),
    )
    .await;
    assert_eq!(status, 200);
    terminate(first);

    // Once the owner is gone the second takes over, and sees exactly the first's data.
    let mut found = process_texts(&second, "first").await;
    found.sort();
    assert_eq!(found, ["owned by the first", "second note of the first"]);
    assert_eq!(process_deps(&second).await["qdrant"], true);
    terminate(second);
    let third = setup.spawn().await;
    assert_eq!(process_texts(&third, "first").await.len(), 2);
}

#[tokio::test]
async fn a_rag_namespaces_value_that_is_not_a_list_of_strings_fails_closed() {
    let (upstream, _) = embedding_upstream().await;
    let gw = gateway(&upstream.uri()).await;
    ok_json(
        gw.post(
            "/v1/rag/upsert",
            json!({"namespace": "b", "documents": [{"text": "bee secret"}]}),
        )
        .await,
    )
    .await;
    // The key routes refuse to store one.
    for bad in [
        json!("a"),
        json!([1]),
        json!({"a": true}),
        json!(["a", null]),
    ] {
        let e = expect_error(
            gw.post(
                "/key/generate",
                json!({"metadata": {"rag_namespaces": bad}}),
            )
            .await,
            400,
            "invalid_request_error",
        )
        .await;
        assert!(
            e["message"].as_str().unwrap().contains("rag_namespaces"),
            "{e}"
        );
    }
    let key = generate_key(&gw, json!({"metadata": {"rag_namespaces": ["a"]}})).await;
    expect_error(
        gw.post(
            "/key/update",
            json!({"key": key, "metadata": {"rag_namespaces": "a"}}),
        )
        .await,
        400,
        "invalid_request_error",
    )
    .await;
    // A row another writer (LiteLLM itself) stored with a string is denied on every route.
    let keys = gw.state.keys().unwrap();
    let token = hx_gateway::secret::hash_key(&key);
    let mut record = keys.store().get_key(&token).await.unwrap().unwrap();
    record.metadata = json!({"rag_namespaces": "b"});
    assert!(keys.store().update_key(&record).await.unwrap());
    keys.invalidate(&token).await;
    for (route, body) in [
        ("/v1/rag/search", json!({"query": "bee", "namespace": "b"})),
        ("/v1/rag/search", json!({"vector": vec![0.5f32; DIMS]})),
        (
            "/v1/rag/upsert",
            json!({"namespace": "b", "documents": [{"text": "x"}]}),
        ),
        ("/v1/rag/delete", json!({"namespace": "b"})),
    ] {
        let e = expect_error(
            post_as(&gw, &key, route, body).await,
            403,
            "permission_error",
        )
        .await;
        assert!(
            e["message"].as_str().unwrap().contains("rag_namespaces"),
            "{e}"
        );
    }
    assert_eq!(namespace_texts(&gw, "b").await, vec!["bee secret"]);
}

#[tokio::test]
async fn a_derived_id_never_lands_on_a_point_of_another_namespace() {
    let (upstream, _) = embedding_upstream().await;
    let gw = gateway(&upstream.uri()).await;
    let foreign = ok_json(
        gw.post(
            "/v1/rag/upsert",
            json!({"namespace": "a\nsecret", "documents": [{"text": "data"}]}),
        )
        .await,
    )
    .await;
    let foreign_id = foreign["result"]["ids"][0].clone();
    let scoped = generate_key(&gw, json!({"metadata": {"rag_namespaces": ["a"]}})).await;
    // Joined by a newline, both would be "a\nsecret\ndata": the length prefix keeps them apart.
    let own = ok_json(
        post_as(
            &gw,
            &scoped,
            "/v1/rag/upsert",
            json!({"namespace": "a", "documents": [{"text": "secret\ndata"}]}),
        )
        .await,
    )
    .await;
    assert_ne!(own["result"]["ids"][0], foreign_id);
    assert_eq!(namespace_texts(&gw, "a\nsecret").await, vec!["data"]);
    assert_eq!(namespace_texts(&gw, "a").await, vec!["secret\ndata"]);
    // Given explicitly, the foreign id is refused and nothing changes.
    expect_error(
        post_as(
            &gw,
            &scoped,
            "/v1/rag/upsert",
            json!({"namespace": "a", "documents": [{"id": foreign_id, "text": "overwritten"}]}),
        )
        .await,
        403,
        "permission_error",
    )
    .await;
    assert_eq!(namespace_texts(&gw, "a\nsecret").await, vec!["data"]);
    assert_eq!(namespace_texts(&gw, "a").await, vec!["secret\ndata"]);
}

#[tokio::test]
async fn only_permitted_keys_create_collections_and_never_past_the_cap() {
    let (upstream, _) = embedding_upstream().await;
    let gw = TestGateway::start(&format!(
        "{}rag_settings: {{max_collections: 2}}\n",
        yaml(&upstream.uri())
    ))
    .await;
    let upsert = |collection: &str| json!({"namespace": "n", "collection": collection, "documents": [{"text": "x"}]});
    let plain = generate_key(&gw, json!({})).await;
    let creator = generate_key(&gw, json!({"metadata": {"rag_create_collections": true}})).await;
    // The default collection is created by anyone allowed to write.
    ok_json(
        post_as(
            &gw,
            &plain,
            "/v1/rag/upsert",
            json!({"namespace": "n", "documents": [{"text": "x"}]}),
        )
        .await,
    )
    .await;
    let e = expect_error(
        post_as(&gw, &plain, "/v1/rag/upsert", upsert("mine")).await,
        403,
        "permission_error",
    )
    .await;
    assert_eq!(e["param"], "collection");
    ok_json(post_as(&gw, &creator, "/v1/rag/upsert", upsert("second")).await).await;
    // Two exist now: the cap answers 400, for the master key too.
    for key in [creator.as_str(), MASTER] {
        let e = expect_error(
            post_as(&gw, key, "/v1/rag/upsert", upsert("third")).await,
            400,
            "invalid_request_error",
        )
        .await;
        assert_eq!(e["param"], "collection");
        assert!(
            e["message"].as_str().unwrap().contains("max_collections"),
            "{e}"
        );
    }
    // Writing to collections that exist still works.
    ok_json(
        post_as(
            &gw,
            &plain,
            "/v1/rag/upsert",
            json!({"namespace": "n", "documents": [{"text": "y"}]}),
        )
        .await,
    )
    .await;
    ok_json(post_as(&gw, &creator, "/v1/rag/upsert", upsert("second")).await).await;
}

#[tokio::test]
async fn an_unverified_key_during_a_database_outage_gets_no_rag_and_no_management() {
    let (upstream, _) = embedding_upstream().await;
    let db = crate::keys::ThrowawayPostgres::start();
    let gw = TestGateway::start_with_env(
        &format!(
            "{}general_settings: {{master_key: {MASTER}, allow_requests_on_db_unavailable: true}}\n",
            yaml(&upstream.uri())
        ),
        HashMap::from([("DATABASE_URL".to_string(), db.url())]),
    )
    .await;
    ok_json(
        gw.post(
            "/v1/rag/upsert",
            json!({"namespace": "b", "documents": [{"text": "bee secret"}]}),
        )
        .await,
    )
    .await;
    db.down();
    // LLM routes let it through, as LiteLLM documents the setting.
    let r = post_as(
        &gw,
        "hello",
        "/v1/chat/completions",
        json!({"model": "mock", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(r.status(), 200);
    for (route, body) in [
        ("/v1/rag/search", json!({"query": "bee", "namespace": "b"})),
        (
            "/v1/rag/search",
            json!({"vector": vec![0.5f32; DIMS], "namespace": "b"}),
        ),
        (
            "/v1/rag/upsert",
            json!({"namespace": "b", "documents": [{"text": "x"}]}),
        ),
        ("/v1/rag/delete", json!({"namespace": "b"})),
        // The scope is checked before the fields.
        ("/v1/rag/search", json!({"query": "bee", "limit": "x"})),
    ] {
        expect_error(
            post_as(&gw, "hello", route, body).await,
            403,
            "permission_error",
        )
        .await;
    }
    let r = post_as(&gw, "hello", "/key/generate", json!({})).await;
    assert!(matches!(r.status().as_u16(), 401 | 403), "{}", r.status());
    let r = gw
        .client
        .get(gw.url("/key/info"))
        .bearer_auth("hello")
        .send()
        .await
        .unwrap();
    assert!(matches!(r.status().as_u16(), 401 | 403), "{}", r.status());
    assert_eq!(namespace_texts(&gw, "b").await, vec!["bee secret"]);
}

#[tokio::test]
async fn a_point_stored_under_its_legacy_id_stays_addressable_and_a_reupsert_replaces_it() {
    let (upstream, _) = embedding_upstream().await;
    let gw = gateway(&upstream.uri()).await;
    // What an earlier version wrote for ("docs", "old text"): id UUIDv5("hx:docs\nold text").
    let legacy = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, b"hx:docs\nold text").to_string();
    ok_json(
        gw.post(
            "/v1/rag/upsert",
            json!({"namespace": "docs", "points": [{"id": legacy, "vector": word_vector("old text"),
                   "payload": {"text": "old text"}}]}),
        )
        .await,
    )
    .await;
    let found = ok_json(
        gw.post(
            "/v1/rag/search",
            json!({"vector": word_vector("old text"), "namespace": "docs",
                   "filter": {"must": [{"has_id": [legacy]}]}}),
        )
        .await,
    )
    .await;
    assert_eq!(texts(&hits(&found)), vec!["old text"]);
    let new = ok_json(
        gw.post(
            "/v1/rag/upsert",
            json!({"namespace": "docs", "documents": [{"text": "old text"}]}),
        )
        .await,
    )
    .await;
    assert_ne!(new["result"]["ids"][0], json!(legacy));
    assert_eq!(
        namespace_texts(&gw, "docs").await,
        vec!["old text"],
        "duplicated"
    );
}
