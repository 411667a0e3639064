//! The RAG service and its vector stores: one set of scenarios, run against both backends
//! (the embedded Qdrant engine for real, the Qdrant server backend through a wire-level test
//! double validated against Qdrant's OpenAPI document), plus backend-specific checks
//! (persistence across reopen and the directory lock for the embedded store).

mod qdrant_double;

use std::sync::Mutex;

use futures::future::BoxFuture;
use hx_gateway::api::body::RequestBody;
use hx_gateway::error::ApiError;
use hx_gateway::rag::{Embedder, RagConfig, RagScope, RagService, from_json};
use hx_gateway::secret::Secret;
use serde_json::{Value, json};

use qdrant_double::QdrantDouble;

/// A deterministic fake embedder (embeddings are not the subject here): each word is hashed
/// into one of `dims` buckets, so texts sharing words point the same way.
struct WordHashEmbedder {
    dims: usize,
    batches: Mutex<Vec<usize>>,
}

impl WordHashEmbedder {
    fn new(dims: usize) -> Self {
        WordHashEmbedder {
            dims,
            batches: Mutex::new(Vec::new()),
        }
    }

    fn vector(&self, text: &str) -> Vec<f32> {
        let mut v = vec![0.0f32; self.dims];
        for word in text
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
        {
            // FNV-1a: stable across runs and platforms.
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            for b in word.to_lowercase().bytes() {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
            v[(h % self.dims as u64) as usize] += 1.0;
        }
        v
    }
}

impl Embedder for WordHashEmbedder {
    fn embed(&self, texts: Vec<String>) -> BoxFuture<'_, Result<Vec<Vec<f32>>, ApiError>> {
        self.batches.lock().unwrap().push(texts.len());
        let out = texts.iter().map(|t| self.vector(t)).collect();
        Box::pin(async move { Ok(out) })
    }
}

/// An embedder whose model is missing from the config, as the gateway's would answer.
struct MissingModelEmbedder;

impl Embedder for MissingModelEmbedder {
    fn embed(&self, _texts: Vec<String>) -> BoxFuture<'_, Result<Vec<Vec<f32>>, ApiError>> {
        Box::pin(async {
            Err(ApiError::invalid(
                "EMBEDDING_MODEL 'emb-premium' is not in model_list.",
                "model",
            ))
        })
    }
}

/// A service on one backend, with what keeps that backend alive.
struct Harness {
    service: RagService,
    double: Option<QdrantDouble>,
    _server: Option<wiremock::MockServer>,
    _dir: Option<tempfile::TempDir>,
}

const COLLECTION: &str = "hx_rag_default";

impl Harness {
    async fn embedded() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let service = RagService::open(RagConfig {
            qdrant_url: None,
            qdrant_api_key: None,
            collection: COLLECTION.into(),
            data_dir: dir.path().to_path_buf(),
        })
        .unwrap();
        Harness {
            service,
            double: None,
            _server: None,
            _dir: Some(dir),
        }
    }

    async fn server() -> Harness {
        let (server, double) = QdrantDouble::start(Some("qk-test-key")).await;
        let service = RagService::open(RagConfig {
            qdrant_url: Some(server.uri()),
            qdrant_api_key: Some(Secret::new("qk-test-key")),
            collection: COLLECTION.into(),
            data_dir: std::env::temp_dir(),
        })
        .unwrap();
        Harness {
            service,
            double: Some(double),
            _server: Some(server),
            _dir: None,
        }
    }

    /// For the server backend: every exchange was documented and valid.
    async fn finish(self) {
        if let Some(double) = &self.double {
            let violations = double.violations();
            assert!(
                violations.is_empty(),
                "wire violations:\n{}",
                violations.join("\n")
            );
            assert!(!double.requests().is_empty(), "the backend sent nothing");
        }
        self.service.close().await.unwrap();
    }

    /// The operations with the body as JSON, read as the service's callers read it.
    async fn search(&self, scope: &RagScope, body: Value) -> Result<Value, ApiError> {
        self.service
            .search(scope, &WordHashEmbedder::new(DIMS), from_json(body)?)
            .await
    }

    async fn upsert(&self, scope: &RagScope, body: Value) -> Result<Value, ApiError> {
        self.service
            .upsert(scope, &WordHashEmbedder::new(DIMS), from_json(body)?)
            .await
    }

    async fn delete(&self, scope: &RagScope, body: Value) -> Result<Value, ApiError> {
        self.service
            .delete(scope, &WordHashEmbedder::new(DIMS), from_json(body)?)
            .await
    }

    async fn points(&self, scope: &RagScope, body: Value) -> Result<Value, ApiError> {
        self.service.points(scope, from_json(body)?).await
    }
}

const DIMS: usize = 16;

fn all() -> RagScope {
    RagScope::unrestricted()
}

/// A request known to be valid, from JSON.
fn request<T: RequestBody>(body: Value) -> T {
    from_json(body).unwrap()
}

/// The hits of a search response, after checking the response's exact shape.
fn hits(response: &Value) -> Vec<Value> {
    assert_eq!(response["status"], "ok", "{response}");
    let inner = &response["result"];
    assert_eq!(inner["status"], "ok", "{response}");
    assert!(inner["time"].is_f64(), "{response}");
    assert_eq!(response.as_object().unwrap().len(), 2, "{response}");
    assert_eq!(inner.as_object().unwrap().len(), 3, "{response}");
    let list = inner["result"]
        .as_array()
        .expect("result.result is a list")
        .clone();
    for hit in &list {
        assert!(hit["id"].is_u64() || hit["id"].is_string(), "{hit}");
        assert!(hit["version"].is_u64(), "{hit}");
        assert!(hit["score"].is_number(), "{hit}");
        assert!(hit.get("payload").is_some(), "{hit}");
    }
    list
}

fn texts(response: &Value) -> Vec<String> {
    hits(response)
        .iter()
        .map(|h| {
            h["payload"]["text"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

fn ids(response: &Value) -> Vec<Value> {
    let mut ids: Vec<Value> = hits(response).iter().map(|h| h["id"].clone()).collect();
    ids.sort_by_key(|v| v.to_string());
    ids
}

fn assert_error(result: Result<Value, ApiError>, status: u16, param: Option<&str>) -> ApiError {
    let err = result.expect_err("expected an error");
    assert_eq!(err.status().as_u16(), status, "{err}");
    if let Some(param) = param {
        assert_eq!(err.param.as_deref(), Some(param), "{err}");
    }
    err
}

/// Points in a 3-dim collection `filters`: id i has lang, n and namespace.
async fn seed_points(h: &Harness, collection: &str) {
    let points: Vec<Value> = (1..=6u64)
        .map(|i| {
            json!({
                "id": i,
                "vector": [1.0, i as f64 * 0.1, 0.0],
                "payload": {
                    "lang": if i % 2 == 0 { "de" } else { "en" },
                    "n": i,
                    "namespace": if i <= 3 { "a" } else { "b" },
                    "text": format!("point {i}")
                }
            })
        })
        .collect();
    let r = h
        .upsert(&all(), json!({"collection": collection, "points": points}))
        .await
        .unwrap();
    assert_eq!(r["result"]["upserted"], 6);
}

mod scenarios {
    use super::*;

    pub async fn upsert_then_search_finds_the_text_first(h: &Harness) {
        let docs = json!({"namespace": "docs", "documents": [
            {"text": "the quick brown fox jumps"},
            {"text": "hello world from the gateway", "metadata": {"source": "a.md"}},
            {"text": "lorem ipsum dolor sit amet"}
        ]});
        let r = h.upsert(&all(), docs.clone()).await.unwrap();
        assert_eq!(r["status"], "ok");
        assert_eq!(r["result"]["upserted"], 3);
        let expected =
            hx_gateway::rag::service::document_id("docs", "hello world from the gateway");
        assert_eq!(r["result"]["ids"][1], expected.to_json());

        let found = h
            .search(&all(), json!({"query": "hello world", "limit": 3}))
            .await
            .unwrap();
        let list = hits(&found);
        assert_eq!(list[0]["payload"]["text"], "hello world from the gateway");
        assert_eq!(list[0]["payload"]["source"], "a.md");
        assert_eq!(list[0]["payload"]["namespace"], "docs");
        assert!(list[0].get("vector").is_none(), "{found}");

        // Re-upserting the same text replaces instead of duplicating.
        h.upsert(&all(), docs).await.unwrap();
        let info = h
            .service
            .store()
            .collection_info(COLLECTION)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(info.points_count, 3);
        assert_eq!(info.vector_size, DIMS);
    }

    pub async fn documents_are_embedded_in_batches(h: &Harness) {
        let embedder = WordHashEmbedder::new(DIMS);
        let documents: Vec<Value> = (0..150)
            .map(|i| json!({"text": format!("document number {i}")}))
            .collect();
        let r = h
            .service
            .upsert(
                &all(),
                &embedder,
                request(json!({"namespace": "n", "documents": documents})),
            )
            .await
            .unwrap();
        assert_eq!(r["result"]["upserted"], 150);
        assert_eq!(r["result"]["ids"].as_array().unwrap().len(), 150);
        let batch = hx_gateway::rag::service::DEFAULT_EMBED_BATCH;
        let batches = embedder.batches.lock().unwrap().clone();
        assert_eq!(batches, [batch, batch, 150 - 2 * batch]);
        let info = h
            .service
            .store()
            .collection_info(COLLECTION)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(info.points_count, 150);
    }

    pub async fn smoke_requests(h: &Harness) {
        // The seed's two smoke requests, verbatim, on a 5-dimensional default collection.
        let five = WordHashEmbedder::new(5);
        h.service
            .upsert(
                &all(),
                &five,
                request(json!({"documents": [{"text": "hello world"}, {"text": "goodbye moon"}]})),
            )
            .await
            .unwrap();
        let r = h
            .service
            .search(
                &all(),
                &five,
                request(json!({"query":"hello world","limit":3})),
            )
            .await
            .unwrap();
        assert_eq!(texts(&r)[0], "hello world");
        let r = h
            .service
            .search(
                &all(),
                &five,
                request(json!({"vector":[0.01,0,0.02,0.03,0],"limit":3,"score_threshold":0})),
            )
            .await
            .unwrap();
        // Threshold 0 applies no threshold: both points come back.
        assert_eq!(hits(&r).len(), 2, "{r}");
    }

    pub async fn filters_match_range_and_must_not(h: &Harness) {
        seed_points(h, "filters").await;
        let search = |filter: Value| json!({"collection": "filters", "vector": [1.0, 0.3, 0.0], "limit": 10, "filter": filter});
        let r = h
            .search(
                &all(),
                search(json!({"must": [{"key": "lang", "match": {"value": "en"}}]})),
            )
            .await
            .unwrap();
        assert_eq!(ids(&r), [json!(1), json!(3), json!(5)]);
        let r = h
            .search(
                &all(),
                search(json!({"must": [{"key": "n", "range": {"gte": 2, "lt": 5}}]})),
            )
            .await
            .unwrap();
        assert_eq!(ids(&r), [json!(2), json!(3), json!(4)]);
        let r = h
            .search(
                &all(),
                search(
                    json!({"must_not": [{"key": "lang", "match": {"value": "en"}}],
                               "must": [{"key": "n", "range": {"gt": 2}}]}),
                ),
            )
            .await
            .unwrap();
        assert_eq!(ids(&r), [json!(4), json!(6)]);
        let r = h
            .search(
                &all(),
                search(
                    json!({"should": [{"key": "n", "match": {"any": [1, 6]}}, {"has_id": [2]}]}),
                ),
            )
            .await
            .unwrap();
        assert_eq!(ids(&r), [json!(1), json!(2), json!(6)]);
        // Namespace is an ordinary filter condition too, and `namespace` adds one to must.
        let r = h
            .search(
                &all(),
                json!({"collection": "filters", "vector": [1.0, 0.3, 0.0], "limit": 10,
                       "namespace": "b", "filter": {"must": {"key": "lang", "match": {"value": "de"}}}}),
            )
            .await
            .unwrap();
        assert_eq!(ids(&r), [json!(4), json!(6)]);
        assert_error(
            h.search(&all(), search(json!({"must": [{"bogus": 1}]})))
                .await,
            400,
            Some("filter"),
        );
    }

    pub async fn thresholds_limits_and_payload_options(h: &Harness) {
        seed_points(h, "thresholds").await;
        // Orthogonal-ish query: point 6 ([1, 0.6, 0]) scores highest against [0.5, 1, 0].
        let base = json!({"collection": "thresholds", "vector": [0.5, 1.0, 0.0]});
        let with = |extra: Value| {
            let mut b = base.clone();
            b.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            b
        };
        let r = h.search(&all(), with(json!({}))).await.unwrap();
        assert_eq!(hits(&r).len(), 5, "default limit is 5");
        let all_hits = hits(&h.search(&all(), with(json!({"limit": 10}))).await.unwrap());
        assert_eq!(all_hits.len(), 6);
        assert_eq!(all_hits[0]["id"], 6);
        let scores: Vec<f64> = all_hits
            .iter()
            .map(|h| h["score"].as_f64().unwrap())
            .collect();
        assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
        // A threshold between the 3rd and 4th scores keeps exactly the first three.
        let cut = (scores[2] + scores[3]) / 2.0;
        let r = h
            .search(&all(), with(json!({"limit": 10, "score_threshold": cut})))
            .await
            .unwrap();
        assert_eq!(hits(&r).len(), 3);
        let r = h.search(&all(), with(json!({"limit": 2}))).await.unwrap();
        assert_eq!(hits(&r).len(), 2);
        let r = h
            .search(
                &all(),
                with(json!({"limit": 1, "with_vector": true, "with_payload": false})),
            )
            .await
            .unwrap();
        let hit = &hits(&r)[0];
        assert!(hit["payload"].is_null(), "{hit}");
        assert_eq!(hit["vector"].as_array().unwrap().len(), 3, "{hit}");
        let r = h
            .search(&all(), with(json!({"limit": 1, "with_payload": ["lang"]})))
            .await
            .unwrap();
        assert_eq!(hits(&r)[0]["payload"], json!({"lang": "de"}));

        assert_error(
            h.search(&all(), with(json!({"limit": 0}))).await,
            400,
            Some("limit"),
        );
        assert_error(
            h.search(&all(), with(json!({"limit": 1001}))).await,
            400,
            Some("limit"),
        );
        assert_error(
            h.search(&all(), with(json!({"limit": -3}))).await,
            400,
            Some("limit"),
        );
        assert_error(
            h.search(&all(), with(json!({"limit": "5"}))).await,
            400,
            Some("limit"),
        );
        assert_error(
            h.search(&all(), with(json!({"score_threshold": -0.1})))
                .await,
            400,
            Some("score_threshold"),
        );
        assert!(h.search(&all(), with(json!({"limit": 1000}))).await.is_ok());
    }

    pub async fn validation_errors(h: &Harness) {
        let err = assert_error(
            h.search(&all(), json!({"limit": 3})).await,
            400,
            Some("query"),
        );
        assert_eq!(err.message, "Provide either 'vector' or 'query'.");
        assert_eq!(err.body_json()["error"]["type"], "invalid_request_error");
        // Missing collection on search: 404, for a vector and for a query.
        assert_error(
            h.search(&all(), json!({"vector": [1.0, 2.0]})).await,
            404,
            None,
        );
        assert_error(
            h.search(&all(), json!({"query": "x", "collection": "nope"}))
                .await,
            404,
            None,
        );
        assert_error(h.search(&all(), json!([1, 2])).await, 400, None);
        assert_error(
            h.search(&all(), json!({"query": 5})).await,
            400,
            Some("query"),
        );
        assert_error(
            h.search(&all(), json!({"vector": ["a"]})).await,
            400,
            Some("vector"),
        );
        assert_error(
            h.search(&all(), json!({"vector": [1], "with_vector": "yes"}))
                .await,
            400,
            Some("with_vector"),
        );
        assert_error(
            h.search(&all(), json!({"vector": [1], "namespace": 3}))
                .await,
            400,
            Some("namespace"),
        );
        assert_error(
            h.search(&all(), json!({"vector": [1], "collection": "../x"}))
                .await,
            400,
            Some("collection"),
        );
        assert_error(h.upsert(&all(), json!({})).await, 400, Some("documents"));
        assert_error(
            h.upsert(&all(), json!({"documents": [{"id": 1}]})).await,
            400,
            Some("documents[0].text"),
        );
        assert_error(
            h.upsert(&all(), json!({"documents": [{"text": 1}]})).await,
            400,
            Some("documents[0].text"),
        );
        assert_error(
            h.upsert(
                &all(),
                json!({"documents": [{"text": "x", "id": "not-a-uuid"}]}),
            )
            .await,
            400,
            Some("documents[0].id"),
        );
        assert_error(
            h.upsert(&all(), json!({"points": [{"id": 1}]})).await,
            400,
            Some("points[0].vector"),
        );
        assert_error(
            h.upsert(&all(), json!({"points": [{"vector": [1.0]}]}))
                .await,
            400,
            Some("points[0].id"),
        );

        // Wrong vector size: 400 naming both sizes, on search and on upsert.
        h.upsert(
            &all(),
            json!({"collection": "five", "points": [{"id": 1, "vector": [1, 0, 0, 0, 0]}]}),
        )
        .await
        .unwrap();
        let err = assert_error(
            h.search(
                &all(),
                json!({"collection": "five", "vector": [1.0, 2.0, 3.0]}),
            )
            .await,
            400,
            None,
        );
        assert!(
            err.message.contains('5') && err.message.contains('3'),
            "{}",
            err.message
        );
        let err = assert_error(
            h.upsert(
                &all(),
                json!({"collection": "five", "points": [{"id": 2, "vector": [1, 0]}]}),
            )
            .await,
            400,
            None,
        );
        assert!(
            err.message.contains('5') && err.message.contains('2'),
            "{}",
            err.message
        );
        let err = assert_error(
            h.upsert(
                &all(),
                json!({"collection": "five", "points": [
                {"id": 3, "vector": [1, 0, 0, 0, 0]}, {"id": 4, "vector": [1, 0, 0]}]}),
            )
            .await,
            400,
            None,
        );
        assert!(
            err.message.contains('5') && err.message.contains('3'),
            "{}",
            err.message
        );
        // Nothing of a refused upsert was stored.
        let info = h
            .service
            .store()
            .collection_info("five")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(info.points_count, 1);
    }

    pub async fn missing_embedding_model(h: &Harness) {
        h.upsert(
            &all(),
            json!({"points": [{"id": 1, "vector": vec![0.5; DIMS]}]}),
        )
        .await
        .unwrap();
        let err = h
            .service
            .search(
                &all(),
                &MissingModelEmbedder,
                request(json!({"query": "hi"})),
            )
            .await
            .unwrap_err();
        assert_eq!(err.status().as_u16(), 400);
        assert!(err.message.contains("emb-premium"), "{}", err.message);
        let r = h
            .service
            .search(
                &all(),
                &MissingModelEmbedder,
                request(json!({"vector": vec![0.5; DIMS]})),
            )
            .await
            .unwrap();
        assert_eq!(hits(&r).len(), 1);
        // A document upsert with the model missing stores nothing.
        assert!(
            h.service
                .upsert(
                    &all(),
                    &MissingModelEmbedder,
                    request(json!({"documents": [{"text": "x"}]}))
                )
                .await
                .is_err()
        );
        let info = h
            .service
            .store()
            .collection_info(COLLECTION)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(info.points_count, 1);
    }

    pub async fn namespace_isolation(h: &Harness) {
        for ns in ["red", "blue"] {
            h.upsert(
                &all(),
                json!({"namespace": ns, "documents": [
                    {"text": format!("shared words about {ns}")},
                    {"text": "shared words everywhere"}
                ]}),
            )
            .await
            .unwrap();
        }
        for ns in ["red", "blue"] {
            let r = h
                .search(
                    &all(),
                    json!({"query": "shared words", "namespace": ns, "limit": 10}),
                )
                .await
                .unwrap();
            let list = hits(&r);
            assert_eq!(list.len(), 2, "{r}");
            assert!(list.iter().all(|h| h["payload"]["namespace"] == ns), "{r}");
        }
        let r = h
            .search(&all(), json!({"query": "shared words", "limit": 10}))
            .await
            .unwrap();
        assert_eq!(
            hits(&r).len(),
            4,
            "same text in two namespaces is two points"
        );
    }

    pub async fn points_are_listed_by_filter_a_page_at_a_time(h: &Harness) {
        let missing = h.points(&all(), json!({"collection": "nowhere"})).await;
        assert_error(missing, 404, Some("collection"));
        seed_points(h, COLLECTION).await;
        let listed_ids = |r: &Value| -> Vec<Value> {
            assert_eq!(r["status"], "ok", "{r}");
            r["result"]["points"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["id"].clone())
                .collect()
        };
        let en = json!({"must": [{"key": "lang", "match": {"value": "en"}}]});
        let page = h
            .points(&all(), json!({"filter": en, "limit": 2}))
            .await
            .unwrap();
        assert_eq!(listed_ids(&page), [json!(1), json!(3)]);
        assert_eq!(page["result"]["next_page_offset"], 5, "{page}");
        assert_eq!(page["result"]["points"][0]["payload"]["text"], "point 1");
        let page = h
            .points(&all(), json!({"filter": en, "limit": 2, "offset": 5}))
            .await
            .unwrap();
        assert_eq!(listed_ids(&page), [json!(5)]);
        assert!(page["result"]["next_page_offset"].is_null(), "{page}");

        // `namespace` narrows, `with_payload` selects fields.
        let page = h
            .points(
                &all(),
                json!({"namespace": "b", "with_payload": ["n"], "limit": 1000}),
            )
            .await
            .unwrap();
        assert_eq!(listed_ids(&page), [json!(4), json!(5), json!(6)]);
        assert_eq!(page["result"]["points"][0]["payload"], json!({"n": 4}));

        // A scoped key sees only its namespaces and may not name another.
        let only_a = RagScope::only(["a"]);
        let page = h.points(&only_a, json!({})).await.unwrap();
        assert_eq!(listed_ids(&page), [json!(1), json!(2), json!(3)]);
        assert_error(
            h.points(&only_a, json!({"namespace": "b"})).await,
            403,
            Some("namespace"),
        );
        let foreign = json!({"must": [{"key": "namespace", "match": {"value": "b"}}]});
        assert_error(
            h.points(&only_a, json!({"filter": foreign})).await,
            403,
            Some("filter"),
        );

        assert_error(
            h.points(&all(), json!({"limit": 0})).await,
            400,
            Some("limit"),
        );
        assert_error(
            h.points(&all(), json!({"offset": "nope"})).await,
            400,
            Some("offset"),
        );
    }

    pub async fn delete_by_ids_namespace_and_filter(h: &Harness) {
        seed_points(h, "del").await;
        let count = || async {
            h.service
                .store()
                .collection_info("del")
                .await
                .unwrap()
                .unwrap()
                .points_count
        };
        // Refused deletes never wipe.
        for body in [
            json!({"collection": "del"}),
            json!({"collection": "del", "ids": []}),
            json!({"collection": "del", "filter": {}}),
            json!({"collection": "del", "filter": {"must": []}}),
        ] {
            assert_error(h.delete(&all(), body).await, 400, Some("ids"));
        }
        assert_eq!(count().await, 6);
        let r = h
            .delete(&all(), json!({"collection": "del", "ids": [1]}))
            .await
            .unwrap();
        assert_eq!(
            r,
            json!({"status": "ok", "result": {"status": "completed"}})
        );
        assert_eq!(count().await, 5);
        // ids AND namespace: id 5 is in b, so asking for it in a deletes nothing.
        h.delete(
            &all(),
            json!({"collection": "del", "ids": [5], "namespace": "a"}),
        )
        .await
        .unwrap();
        assert_eq!(count().await, 5);
        h.delete(&all(), json!({"collection": "del", "filter": {"must": [{"key": "lang", "match": {"value": "de"}}]}}))
            .await
            .unwrap();
        assert_eq!(count().await, 2); // 3 (en, a) and 5 (en, b) remain
        h.delete(&all(), json!({"collection": "del", "namespace": "b"}))
            .await
            .unwrap();
        let r = h
            .search(
                &all(),
                json!({"collection": "del", "vector": [1, 0, 0], "limit": 10}),
            )
            .await
            .unwrap();
        assert_eq!(ids(&r), [json!(3)]);
        assert_error(
            h.delete(&all(), json!({"collection": "nope", "ids": [1]}))
                .await,
            404,
            None,
        );
    }

    pub async fn concurrent_upserts_and_searches(h: &Harness) {
        h.upsert(&all(), json!({"documents": [{"text": "seed"}]}))
            .await
            .unwrap();
        let service = &h.service;
        let tasks = (0..6).map(|t| async move {
            let embedder = WordHashEmbedder::new(DIMS);
            for i in 0..8 {
                service
                    .upsert(
                        &all(),
                        &embedder,
                        request(json!({"namespace": format!("t{t}"), "documents": [{"text": format!("task {t} item {i}")}]})))
                    .await
                    .unwrap();
                let r = service
                    .search(&all(), &embedder, request(json!({"query": format!("task {t} item {i}"), "namespace": format!("t{t}")})))
                    .await
                    .unwrap();
                assert_eq!(r["result"]["result"][0]["payload"]["text"], format!("task {t} item {i}"));
            }
        });
        futures::future::join_all(tasks).await;
        let info = h
            .service
            .store()
            .collection_info(COLLECTION)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(info.points_count, 1 + 6 * 8);
    }

    pub async fn scoped_keys_stay_in_their_namespaces(h: &Harness) {
        seed_points(h, COLLECTION_3D).await;
        let a = RagScope::only(["a"]);
        let v = json!([1.0, 0.3, 0.0]);
        // Search: unnamed → limited to a; foreign anywhere → 403.
        let r = h
            .search(&a, json!({"vector": v, "limit": 10}))
            .await
            .unwrap();
        assert_eq!(ids(&r), [json!(1), json!(2), json!(3)]);
        let r = h
            .search(&a, json!({"vector": v, "limit": 10, "filter": {"should": [{"key": "lang", "match": {"value": "de"}}]}}))
            .await
            .unwrap();
        assert_eq!(ids(&r), [json!(2)]);
        for filter in [
            json!({"must": [{"key": "namespace", "match": {"value": "b"}}]}),
            json!({"should": [{"key": "namespace", "match": {"any": ["a", "b"]}}]}),
            json!({"must_not": [{"key": "namespace", "match": {"value": "b"}}]}),
            json!({"must": [{"should": [{"key": "namespace", "match": {"value": "b"}}]}]}),
            json!({"must": [{"key": "namespace", "match": {"except": ["b"]}}]}),
        ] {
            assert_error(
                h.search(&a, json!({"vector": v, "filter": filter})).await,
                403,
                Some("filter"),
            );
        }
        let err = assert_error(
            h.search(&a, json!({"vector": v, "namespace": "b"})).await,
            403,
            Some("namespace"),
        );
        assert_eq!(err.body_json()["error"]["type"], "permission_error");
        assert_error(
            h.search(&a, json!({"vector": v, "collection": "other"}))
                .await,
            403,
            None,
        );

        // Upsert: namespace required, foreign payloads refused, request namespace wins.
        let point = |id: u64, payload: Value| json!({"id": id, "vector": [0.0, 0.0, 1.0], "payload": payload});
        assert_error(
            h.upsert(&a, json!({"points": [point(10, json!({}))]}))
                .await,
            400,
            Some("namespace"),
        );
        assert_error(
            h.upsert(
                &a,
                json!({"namespace": "b", "points": [point(10, json!({}))]}),
            )
            .await,
            403,
            None,
        );
        assert_error(
            h.upsert(
                &a,
                json!({"namespace": "a", "points": [point(10, json!({"namespace": "b"}))]}),
            )
            .await,
            403,
            None,
        );
        assert_error(
            h.upsert(&a, json!({"namespace": "a", "documents": [{"text": "x", "metadata": {"namespace": "b"}}]})).await,
            403,
            None,
        );
        // A point of b cannot be overwritten by id from a's scope; a new id lands in a.
        assert_error(
            h.upsert(
                &a,
                json!({"namespace": "a", "points": [point(4, json!({}))]}),
            )
            .await,
            403,
            Some("ids"),
        );
        h.upsert(
            &a,
            json!({"namespace": "a", "points": [point(10, json!({"text": "mine"}))]}),
        )
        .await
        .unwrap();
        let r = h
            .search(&all(), json!({"vector": [0.0, 0.0, 1.0], "limit": 1}))
            .await
            .unwrap();
        assert_eq!(hits(&r)[0]["id"], 10);
        assert_eq!(hits(&r)[0]["payload"]["namespace"], "a");
        let r = h
            .search(&all(), json!({"vector": v, "limit": 10, "namespace": "b"}))
            .await
            .unwrap();
        assert_eq!(ids(&r), [json!(4), json!(5), json!(6)]);

        // Delete: namespace required, foreign refused, ids outside a untouched.
        assert_error(
            h.delete(&a, json!({"ids": [4]})).await,
            400,
            Some("namespace"),
        );
        assert_error(
            h.delete(&a, json!({"namespace": "b"})).await,
            403,
            Some("namespace"),
        );
        assert_error(
            h.delete(&a, json!({"namespace": "a", "filter": {"must": [{"key": "namespace", "match": {"value": "b"}}]}})).await,
            403,
            Some("filter"),
        );
        h.delete(&a, json!({"namespace": "a", "ids": [4, 5, 6, 1]}))
            .await
            .unwrap();
        let r = h
            .search(&all(), json!({"vector": v, "limit": 10}))
            .await
            .unwrap();
        assert_eq!(
            ids(&r),
            [json!(10), json!(2), json!(3), json!(4), json!(5), json!(6)]
        );

        // An empty list denies everything.
        let none = RagScope::only(Vec::<String>::new());
        assert_error(h.search(&none, json!({"vector": v})).await, 403, None);
        assert_error(
            h.upsert(
                &none,
                json!({"namespace": "a", "points": [point(11, json!({}))]}),
            )
            .await,
            403,
            None,
        );
        assert_error(h.delete(&none, json!({"namespace": "a"})).await, 403, None);
    }
}

/// The scoped-key scenario runs in the default collection (a scoped key may use no other).
const COLLECTION_3D: &str = COLLECTION;

/// Runs each scenario against both backends.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod embedded_backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let h = super::Harness::embedded().await;
                    super::scenarios::$name(&h).await;
                    h.finish().await;
                }
            )*
        }
        mod server_backend_via_wire_double {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let h = super::Harness::server().await;
                    super::scenarios::$name(&h).await;
                    h.finish().await;
                }
            )*
        }
    };
}

on_both_backends!(
    upsert_then_search_finds_the_text_first,
    documents_are_embedded_in_batches,
    smoke_requests,
    filters_match_range_and_must_not,
    thresholds_limits_and_payload_options,
    validation_errors,
    missing_embedding_model,
    namespace_isolation,
    delete_by_ids_namespace_and_filter,
    points_are_listed_by_filter_a_page_at_a_time,
    concurrent_upserts_and_searches,
    scoped_keys_stay_in_their_namespaces,
);

#[tokio::test]
async fn embedded_data_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = || RagConfig {
        qdrant_url: None,
        qdrant_api_key: None,
        collection: COLLECTION.into(),
        data_dir: dir.path().to_path_buf(),
    };
    let embedder = WordHashEmbedder::new(DIMS);
    {
        let service = RagService::open(config()).unwrap();
        service
            .upsert(&all(), &embedder, request(json!({"namespace": "p", "documents": [{"text": "persisted words"}, {"text": "other"}]})))
            .await
            .unwrap();
        service.close().await.unwrap();
    }
    let service = RagService::open(config()).unwrap();
    let r = service
        .search(
            &all(),
            &embedder,
            request(json!({"query": "persisted words", "namespace": "p"})),
        )
        .await
        .unwrap();
    assert_eq!(texts(&r)[0], "persisted words");
    let info = service
        .store()
        .collection_info(COLLECTION)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((info.vector_size, info.points_count), (DIMS, 2));
    // The keyword index on namespace and the metadata came back with it: a new write of the
    // wrong size is still refused.
    let err = service
        .upsert(
            &all(),
            &embedder,
            request(json!({"points": [{"id": 1, "vector": [1.0]}]})),
        )
        .await
        .unwrap_err();
    assert!(err.message.contains(&DIMS.to_string()), "{}", err.message);
}

#[tokio::test]
async fn embedded_directory_has_one_owner() {
    let dir = tempfile::tempdir().unwrap();
    let config = RagConfig {
        qdrant_url: None,
        qdrant_api_key: None,
        collection: COLLECTION.into(),
        data_dir: dir.path().to_path_buf(),
    };
    let first = RagService::open(config.clone()).unwrap();
    let second = RagService::open(config).unwrap();
    first.health().await.unwrap();
    let err: ApiError = second
        .search(
            &all(),
            &WordHashEmbedder::new(DIMS),
            request(json!({"vector": [1.0]})),
        )
        .await
        .unwrap_err();
    assert_eq!(err.status().as_u16(), 503, "{err}");
    assert!(err.message.contains("already in use"), "{}", err.message);
}

#[tokio::test]
async fn unreachable_qdrant_is_503() {
    let service = RagService::open(RagConfig {
        qdrant_url: Some("http://user:pw-secret@127.0.0.1:9".into()),
        qdrant_api_key: Some(Secret::new("qk-very-secret")),
        collection: COLLECTION.into(),
        data_dir: std::env::temp_dir(),
    })
    .unwrap();
    let embedder = WordHashEmbedder::new(DIMS);
    for result in [
        service
            .search(&all(), &embedder, request(json!({"vector": [1.0]})))
            .await,
        service
            .upsert(
                &all(),
                &embedder,
                request(json!({"points": [{"id": 1, "vector": [1.0]}]})),
            )
            .await,
        service
            .delete(&all(), &embedder, request(json!({"ids": [1]})))
            .await,
    ] {
        let err = result.unwrap_err();
        assert_eq!(err.status().as_u16(), 503, "{err}");
        assert!(
            !err.message.contains("pw-secret") && !err.message.contains("qk-very-secret"),
            "{}",
            err.message
        );
    }
}

#[tokio::test]
async fn server_backend_sends_the_api_key_and_ids_as_documented() {
    let h = Harness::server().await;
    let uuid = "5f0c3a4e-8a43-4f7b-9b0e-8d0e2c4d2f10";
    h.upsert(&all(), json!({"points": [{"id": uuid, "vector": vec![1.0; DIMS]}, {"id": 7, "vector": vec![0.5; DIMS]}]}))
        .await
        .unwrap();
    let r = h
        .search(&all(), json!({"vector": vec![1.0; DIMS], "limit": 2}))
        .await
        .unwrap();
    let found: Vec<Value> = hits(&r).iter().map(|h| h["id"].clone()).collect();
    assert!(
        found.contains(&json!(uuid)) && found.contains(&json!(7)),
        "{r}"
    );
    h.service.health().await.unwrap();
    let requests = h.double.as_ref().unwrap().requests();
    assert!(
        requests
            .iter()
            .any(|r| r == "put /collections/hx_rag_default"),
        "{requests:?}"
    );
    assert!(
        requests
            .iter()
            .any(|r| r == "put /collections/hx_rag_default/index"),
        "{requests:?}"
    );
    assert!(
        requests
            .iter()
            .any(|r| r == "post /collections/hx_rag_default/points/query"),
        "{requests:?}"
    );
    h.finish().await;
}

/// Every answer of the RAG operations to the bodies of `tests/fixtures/rag-request-answers.jsonl`
/// is the one recorded there: the validation messages, their `param`, and which error a body
/// with several wrong fields gets (the fields are checked in a fixed order, whatever order the
/// body names them in). The file was recorded from the hand-written readers the typed requests
/// replaced; the cases run in order on one store, as recorded (some upserts succeed).
#[tokio::test]
async fn request_bodies_answer_as_recorded() {
    let h = Harness::embedded().await;
    let cases = include_str!("../fixtures/rag-request-answers.jsonl");
    let mut wrong = Vec::new();
    for line in cases.lines() {
        let case: Value = serde_json::from_str(line).unwrap();
        let scope = match case["scope"].as_array() {
            None => all(),
            Some(list) => RagScope::only(list.iter().map(|v| v.as_str().unwrap().to_string())),
        };
        let body = case["body"].clone();
        let result = match case["operation"].as_str().unwrap() {
            "search" => h.search(&scope, body).await,
            "upsert" => h.upsert(&scope, body).await,
            "delete" => h.delete(&scope, body).await,
            "points" => h.points(&scope, body).await,
            other => panic!("unknown operation {other}"),
        };
        let answer = match result {
            Ok(_) => json!("ok"),
            Err(e) => e.body_json()["error"].clone(),
        };
        if answer != case["answer"] {
            wrong.push(format!("{line}\n  answered {answer}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} cases differ:\n{}",
        wrong.len(),
        cases.lines().count(),
        wrong.join("\n")
    );
    h.finish().await;
}
