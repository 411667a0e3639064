//! A wire-level TEST DOUBLE of a Qdrant server's REST API (it is not Qdrant).
//!
//! It serves the handful of operations the server backend uses, keeping points in memory and
//! answering queries by brute-force cosine similarity with a small filter evaluator, so the
//! shared scenarios can run against the server backend. What makes it a faithful wire check:
//!
//! - every request body the backend sends is validated against the request schema of that
//!   operation in Qdrant's own OpenAPI document (`tests/fixtures/qdrant-openapi-1.19.json`),
//!   and every request must be one of the documented operations, with `wait=true` on writes
//!   and the `api-key` header when one is configured;
//! - every response it gives is built in the shape of that operation's documented response
//!   schema (envelope values taken from the document's examples) and validated against it.
//!
//! Violations are recorded, and each scenario asserts there are none.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value, json};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate, matchers::any};

/// Qdrant's published OpenAPI document (v1.19), kept in the repository.
const OPENAPI_CANDIDATES: [&str; 1] = [concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/qdrant-openapi-1.19.json"
)];

/// Qdrant's OpenAPI document, with OpenAPI 3.0's `nullable` turned into JSON Schema so that
/// the validator understands it.
pub struct OpenApi {
    doc: Value,
    components: Value,
}

impl OpenApi {
    pub fn load() -> OpenApi {
        let text = OPENAPI_CANDIDATES
            .iter()
            .find_map(|path| std::fs::read_to_string(path).ok())
            .unwrap_or_else(|| {
                panic!("cannot read Qdrant's OpenAPI document at {OPENAPI_CANDIDATES:?}")
            });
        let mut doc: Value = serde_json::from_str(&text).unwrap();
        normalize_nullable(&mut doc);
        let components = doc["components"].clone();
        OpenApi { doc, components }
    }

    fn operation(&self, path: &str, method: &str) -> &Value {
        let op = &self.doc["paths"][path][method];
        assert!(
            op.is_object(),
            "{method} {path} is not in the OpenAPI document"
        );
        op
    }

    /// Validates `instance` against `schema` (which may `$ref` into `#/components`).
    fn check(&self, schema: &Value, instance: &Value) -> Result<(), String> {
        let mut root = match schema {
            Value::Object(o) => o.clone(),
            _ => Map::new(),
        };
        root.insert("components".into(), self.components.clone());
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .build(&Value::Object(root))
            .map_err(|e| format!("schema does not compile: {e}"))?;
        let errors: Vec<String> = validator
            .iter_errors(instance)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }

    /// Validates a request body against the operation's documented request schema.
    pub fn check_request(&self, path: &str, method: &str, body: &Value) -> Result<(), String> {
        let schema =
            &self.operation(path, method)["requestBody"]["content"]["application/json"]["schema"];
        assert!(schema.is_object(), "{method} {path} documents no JSON body");
        self.check(schema, body)
            .map_err(|e| format!("{method} {path} request: {e}\n{body}"))
    }

    /// Validates a response against the operation's documented response for `status`.
    pub fn check_response(
        &self,
        path: &str,
        method: &str,
        status: u16,
        body: &Value,
    ) -> Result<(), String> {
        let responses = &self.operation(path, method)["responses"];
        let response = [status.to_string(), "4XX".to_string(), "default".to_string()]
            .iter()
            .map(|k| &responses[k.as_str()])
            .find(|r| r.is_object())
            .unwrap_or_else(|| panic!("{method} {path} documents no response {status}"));
        let schema = &response["content"]["application/json"]["schema"];
        self.check(schema, body)
            .map_err(|e| format!("{method} {path} response {status}: {e}\n{body}"))
    }

    /// The documented example of a top-level property of the 200 response (`time`, `status`).
    fn example(&self, path: &str, method: &str, property: &str) -> Value {
        self.operation(path, method)["responses"]["200"]["content"]["application/json"]["schema"]
            ["properties"][property]["example"]
            .clone()
    }
}

/// OpenAPI 3.0 `nullable: true` → JSON Schema: `type: [T, "null"]`, or an `anyOf` with null.
fn normalize_nullable(v: &mut Value) {
    match v {
        Value::Object(obj) => {
            for child in obj.values_mut() {
                normalize_nullable(child);
            }
            if obj.remove("nullable") == Some(Value::Bool(true)) {
                if let Some(Value::String(t)) = obj.get("type").cloned() {
                    obj.insert("type".into(), json!([t, "null"]));
                } else if obj.is_empty() {
                    obj.insert("type".into(), json!("null"));
                } else {
                    let inner = Value::Object(std::mem::take(obj));
                    obj.insert("anyOf".into(), json!([inner, {"type": "null"}]));
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(normalize_nullable),
        _ => {}
    }
}

struct StoredPoint {
    id: Value,
    vector: Vec<f32>,
    payload: Map<String, Value>,
    version: u64,
}

struct DoubleCollection {
    size: usize,
    points: BTreeMap<String, StoredPoint>,
    indexes: Vec<String>,
}

#[derive(Default)]
struct State {
    collections: HashMap<String, DoubleCollection>,
    operation: u64,
}

struct Inner {
    api: OpenApi,
    api_key: Option<String>,
    state: Mutex<State>,
    violations: Mutex<Vec<String>>,
    requests: Mutex<Vec<String>>,
}

/// The double, shared between the mock server and the test.
#[derive(Clone)]
pub struct QdrantDouble(Arc<Inner>);

impl QdrantDouble {
    /// Starts a mock server answering as the double.
    pub async fn start(api_key: Option<&str>) -> (MockServer, QdrantDouble) {
        let double = QdrantDouble(Arc::new(Inner {
            api: OpenApi::load(),
            api_key: api_key.map(str::to_string),
            state: Mutex::new(State::default()),
            violations: Mutex::new(Vec::new()),
            requests: Mutex::new(Vec::new()),
        }));
        let server = MockServer::start().await;
        Mock::given(any())
            .respond_with(double.clone())
            .mount(&server)
            .await;
        (server, double)
    }

    pub fn violations(&self) -> Vec<String> {
        self.0.violations.lock().unwrap().clone()
    }

    pub fn requests(&self) -> Vec<String> {
        self.0.requests.lock().unwrap().clone()
    }

    fn violation(&self, v: String) {
        self.0.violations.lock().unwrap().push(v);
    }

    /// A documented envelope: `{"result": ..., "status": "ok", "time": <example>}`.
    fn ok(&self, path: &str, method: &str, result: Value) -> (u16, Value) {
        let api = &self.0.api;
        (
            200,
            json!({
                "result": result,
                "status": api.example(path, method, "status"),
                "time": api.example(path, method, "time"),
            }),
        )
    }

    /// A documented `ErrorResponse`.
    fn error(status: u16, message: String) -> (u16, Value) {
        (
            status,
            json!({"status": {"error": message}, "time": 0.0001, "result": null}),
        )
    }

    fn handle(&self, req: &Request) -> (String, String, u16, Value) {
        let method = req.method.as_str().to_ascii_lowercase();
        let segments: Vec<&str> = req.url.path().trim_start_matches('/').split('/').collect();
        let wait = req
            .url
            .query_pairs()
            .any(|(k, v)| k == "wait" && v == "true");
        let (template, collection) = match segments.as_slice() {
            ["healthz"] => ("/healthz", None),
            ["collections"] => ("/collections", None),
            ["collections", c] => ("/collections/{collection_name}", Some(*c)),
            ["collections", c, "index"] => ("/collections/{collection_name}/index", Some(*c)),
            ["collections", c, "points"] => ("/collections/{collection_name}/points", Some(*c)),
            ["collections", c, "points", "query"] => {
                ("/collections/{collection_name}/points/query", Some(*c))
            }
            ["collections", c, "points", "scroll"] => {
                ("/collections/{collection_name}/points/scroll", Some(*c))
            }
            ["collections", c, "points", "count"] => {
                ("/collections/{collection_name}/points/count", Some(*c))
            }
            ["collections", c, "points", "delete"] => {
                ("/collections/{collection_name}/points/delete", Some(*c))
            }
            _ => {
                self.violation(format!("undocumented request {method} {}", req.url.path()));
                return (String::new(), method, 404, json!({}));
            }
        };
        let template = template.to_string();
        if template == "/healthz" {
            return (template, method, 200, Value::Null);
        }
        if let Some(key) = &self.0.api_key {
            let sent = req.headers.get("api-key").and_then(|v| v.to_str().ok());
            if sent != Some(key.as_str()) {
                self.violation(format!("{method} {template} without the api-key header"));
                let (s, b) = Self::error(403, "Invalid api-key".into());
                return (template, method, s, b);
            }
        }
        let body: Value = if req.body.is_empty() {
            Value::Null
        } else {
            match serde_json::from_slice(&req.body) {
                Ok(v) => v,
                Err(e) => {
                    self.violation(format!("{method} {template}: body is not JSON: {e}"));
                    Value::Null
                }
            }
        };
        if method != "get"
            && let Err(e) = self.0.api.check_request(&template, &method, &body)
        {
            self.violation(e);
        }
        let is_write = matches!(
            (template.as_str(), method.as_str()),
            ("/collections/{collection_name}/index", "put")
                | ("/collections/{collection_name}/points", "put")
                | ("/collections/{collection_name}/points/delete", "post")
        );
        if is_write && !wait {
            self.violation(format!("{method} {template} without wait=true"));
        }
        let c = collection.unwrap_or_default().to_string();
        let (status, response) = self.operate(&template, &method, &c, &body);
        (template, method, status, response)
    }

    fn operate(&self, template: &str, method: &str, c: &str, body: &Value) -> (u16, Value) {
        let mut state = self.0.state.lock().unwrap();
        state.operation += 1;
        let op = state.operation;
        let not_found = || Self::error(404, format!("Not found: Collection `{c}` doesn't exist!"));
        match (template, method) {
            ("/collections", "get") => {
                let collections: Vec<Value> = state
                    .collections
                    .keys()
                    .map(|name| json!({"name": name}))
                    .collect();
                self.ok(template, method, json!({"collections": collections}))
            }
            ("/collections/{collection_name}", "get") => {
                let Some(col) = state.collections.get(c) else {
                    return not_found();
                };
                let n = col.points.len();
                let payload_schema: Map<String, Value> = col
                    .indexes
                    .iter()
                    .map(|f| (f.clone(), json!({"data_type": "keyword", "points": n})))
                    .collect();
                self.ok(
                    template,
                    method,
                    json!({
                        "status": "green",
                        "optimizer_status": "ok",
                        "indexed_vectors_count": 0,
                        "points_count": n,
                        "segments_count": 1,
                        "config": {
                            "params": {
                                "vectors": {"size": col.size, "distance": "Cosine"},
                                "shard_number": 1,
                                "replication_factor": 1,
                                "write_consistency_factor": 1,
                                "on_disk_payload": true
                            },
                            "hnsw_config": {"m": 16, "ef_construct": 100, "full_scan_threshold": 10000},
                            "optimizer_config": {"default_segment_number": 0, "flush_interval_sec": 5},
                            "wal_config": {"wal_capacity_mb": 32, "wal_segments_ahead": 0}
                        },
                        "payload_schema": payload_schema
                    }),
                )
            }
            ("/collections/{collection_name}", "put") => {
                if state.collections.contains_key(c) {
                    return Self::error(
                        409,
                        format!("Wrong input: Collection `{c}` already exists!"),
                    );
                }
                let size = body["vectors"]["size"].as_u64().unwrap_or(0) as usize;
                if body["vectors"]["distance"] != "Cosine" {
                    self.violation(format!("collection {c} not created with Cosine: {body}"));
                }
                state.collections.insert(
                    c.to_string(),
                    DoubleCollection {
                        size,
                        points: BTreeMap::new(),
                        indexes: Vec::new(),
                    },
                );
                self.ok(template, method, json!(true))
            }
            ("/collections/{collection_name}/index", "put") => {
                let Some(col) = state.collections.get_mut(c) else {
                    return not_found();
                };
                col.indexes
                    .push(body["field_name"].as_str().unwrap_or("").to_string());
                self.ok(
                    template,
                    method,
                    json!({"operation_id": op, "status": "completed"}),
                )
            }
            ("/collections/{collection_name}/points", "put") => {
                let Some(col) = state.collections.get_mut(c) else {
                    return not_found();
                };
                let points = body["points"].as_array().cloned().unwrap_or_default();
                for p in &points {
                    let v: Vec<f32> =
                        serde_json::from_value(p["vector"].clone()).unwrap_or_default();
                    if v.len() != col.size {
                        return Self::error(
                            400,
                            format!(
                                "Wrong input: Vector dimension error: expected dim: {}, got {}",
                                col.size,
                                v.len()
                            ),
                        );
                    }
                }
                for p in points {
                    let v: Vec<f32> = serde_json::from_value(p["vector"].clone()).unwrap();
                    col.points.insert(
                        id_key(&p["id"]),
                        StoredPoint {
                            id: p["id"].clone(),
                            vector: normalized(&v),
                            payload: p["payload"].as_object().cloned().unwrap_or_default(),
                            version: op,
                        },
                    );
                }
                self.ok(
                    template,
                    method,
                    json!({"operation_id": op, "status": "completed"}),
                )
            }
            ("/collections/{collection_name}/points/query", "post") => {
                let Some(col) = state.collections.get(c) else {
                    return not_found();
                };
                let q: Vec<f32> = serde_json::from_value(body["query"].clone()).unwrap_or_default();
                if q.len() != col.size {
                    return Self::error(
                        400,
                        format!(
                            "Wrong input: Vector dimension error: expected dim: {}, got {}",
                            col.size,
                            q.len()
                        ),
                    );
                }
                let q = normalized(&q);
                let threshold = body["score_threshold"].as_f64();
                let limit = body["limit"].as_u64().unwrap_or(10) as usize;
                let mut hits: Vec<(f32, &StoredPoint)> = col
                    .points
                    .values()
                    .filter(|p| {
                        body.get("filter")
                            .filter(|f| !f.is_null())
                            .is_none_or(|f| self.matches(f, p))
                    })
                    .map(|p| (dot(&q, &p.vector), p))
                    .filter(|(s, _)| threshold.is_none_or(|t| f64::from(*s) >= t))
                    .collect();
                hits.sort_by(|a, b| b.0.total_cmp(&a.0));
                hits.truncate(limit);
                let points: Vec<Value> = hits
                    .into_iter()
                    .map(|(score, p)| {
                        let payload = match &body["with_payload"] {
                            Value::Bool(false) => Value::Null,
                            Value::Array(fields) => Value::Object(
                                p.payload
                                    .iter()
                                    .filter(|(k, _)| fields.iter().any(|f| f == *k))
                                    .map(|(k, v)| (k.clone(), v.clone()))
                                    .collect(),
                            ),
                            _ => Value::Object(p.payload.clone()),
                        };
                        let vector = if body["with_vector"] == true {
                            json!(p.vector)
                        } else {
                            Value::Null
                        };
                        json!({"id": p.id, "version": p.version, "score": score,
                               "payload": payload, "vector": vector})
                    })
                    .collect();
                self.ok(template, method, json!({"points": points}))
            }
            ("/collections/{collection_name}/points/scroll", "post") => {
                let Some(col) = state.collections.get(c) else {
                    return not_found();
                };
                // Qdrant's id order: integers first, then UUIDs; `offset` is inclusive.
                let mut matching: Vec<&StoredPoint> = col
                    .points
                    .values()
                    .filter(|p| {
                        body.get("filter")
                            .filter(|f| !f.is_null())
                            .is_none_or(|f| self.matches(f, p))
                    })
                    .collect();
                matching.sort_by_key(|p| id_order(&p.id));
                if let Some(offset) = body.get("offset").filter(|o| !o.is_null()) {
                    let from = id_order(offset);
                    matching.retain(|p| id_order(&p.id) >= from);
                }
                let limit = body["limit"].as_u64().unwrap_or(10) as usize;
                let next = matching.get(limit).map(|p| p.id.clone());
                matching.truncate(limit);
                let points: Vec<Value> = matching
                    .into_iter()
                    .map(|p| {
                        let payload = match &body["with_payload"] {
                            Value::Bool(false) => Value::Null,
                            Value::Array(fields) => Value::Object(
                                p.payload
                                    .iter()
                                    .filter(|(k, _)| fields.iter().any(|f| f == *k))
                                    .map(|(k, v)| (k.clone(), v.clone()))
                                    .collect(),
                            ),
                            _ => Value::Object(p.payload.clone()),
                        };
                        json!({"id": p.id, "payload": payload})
                    })
                    .collect();
                self.ok(
                    template,
                    method,
                    json!({"points": points, "next_page_offset": next}),
                )
            }
            ("/collections/{collection_name}/points/count", "post") => {
                let Some(col) = state.collections.get(c) else {
                    return not_found();
                };
                let count = col
                    .points
                    .values()
                    .filter(|p| {
                        body.get("filter")
                            .filter(|f| !f.is_null())
                            .is_none_or(|f| self.matches(f, p))
                    })
                    .count();
                self.ok(template, method, json!({"count": count}))
            }
            ("/collections/{collection_name}/points/delete", "post") => {
                if !state.collections.contains_key(c) {
                    return not_found();
                }
                let doomed: Vec<String> = {
                    let col = &state.collections[c];
                    if let Some(ids) = body["points"].as_array() {
                        ids.iter().map(id_key).collect()
                    } else {
                        col.points
                            .iter()
                            .filter(|(_, p)| self.matches(&body["filter"], p))
                            .map(|(k, _)| k.clone())
                            .collect()
                    }
                };
                let col = state.collections.get_mut(c).unwrap();
                for k in doomed {
                    col.points.remove(&k);
                }
                self.ok(
                    template,
                    method,
                    json!({"operation_id": op, "status": "completed"}),
                )
            }
            _ => {
                self.violation(format!("undocumented request {method} {template}"));
                (404, json!({}))
            }
        }
    }

    /// Qdrant's filter semantics for the subset the gateway uses.
    fn matches(&self, filter: &Value, p: &StoredPoint) -> bool {
        let list = |name: &str| -> Vec<Value> {
            match filter.get(name) {
                Some(Value::Array(a)) => a.clone(),
                Some(Value::Null) | None => Vec::new(),
                Some(single) => vec![single.clone()],
            }
        };
        let must = list("must");
        let should = list("should");
        let must_not = list("must_not");
        must.iter().all(|c| self.condition(c, p))
            && (should.is_empty() || should.iter().any(|c| self.condition(c, p)))
            && !must_not.iter().any(|c| self.condition(c, p))
    }

    fn condition(&self, c: &Value, p: &StoredPoint) -> bool {
        if let Some(ids) = c.get("has_id").and_then(Value::as_array) {
            return ids.iter().any(|id| id_key(id) == id_key(&p.id));
        }
        let Some(key) = c.get("key").and_then(Value::as_str) else {
            return self.matches(c, p);
        };
        let values: Vec<&Value> = match p.payload.get(key) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a.iter().collect(),
            Some(v) => vec![v],
        };
        if let Some(m) = c.get("match") {
            if let Some(v) = m.get("value") {
                return values.contains(&v);
            }
            if let Some(any) = m.get("any").and_then(Value::as_array) {
                return values.iter().any(|v| any.contains(v));
            }
            if let Some(except) = m.get("except").and_then(Value::as_array) {
                return !values.is_empty() && values.iter().all(|v| !except.contains(v));
            }
        }
        if let Some(r) = c.get("range") {
            return values.iter().filter_map(|v| v.as_f64()).any(|x| {
                r.get("gt").and_then(Value::as_f64).is_none_or(|b| x > b)
                    && r.get("gte").and_then(Value::as_f64).is_none_or(|b| x >= b)
                    && r.get("lt").and_then(Value::as_f64).is_none_or(|b| x < b)
                    && r.get("lte").and_then(Value::as_f64).is_none_or(|b| x <= b)
            });
        }
        self.violation(format!("the test double does not implement condition {c}"));
        false
    }
}

impl Respond for QdrantDouble {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let (template, method, status, body) = self.handle(request);
        self.0
            .requests
            .lock()
            .unwrap()
            .push(format!("{method} {}", request.url.path()));
        if template == "/healthz" {
            return ResponseTemplate::new(200).set_body_string("healthz check passed");
        }
        if !template.is_empty()
            && let Err(e) = self.0.api.check_response(&template, &method, status, &body)
        {
            self.violation(e);
        }
        ResponseTemplate::new(status).set_body_json(body)
    }
}

/// Sort key of a point id in Qdrant's scroll order: integers first, then UUIDs.
fn id_order(id: &Value) -> (u8, u64, String) {
    match id {
        Value::Number(n) => (0, n.as_u64().unwrap_or(0), String::new()),
        other => (1, 0, id_key(other)),
    }
}

fn id_key(id: &Value) -> String {
    match id {
        Value::String(s) => s.to_ascii_lowercase(),
        other => other.to_string(),
    }
}

fn normalized(v: &[f32]) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm == 0.0 {
        v.to_vec()
    } else {
        v.iter().map(|x| x / norm).collect()
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The schema checks reject what Qdrant would reject, so a passing wire test means something.
#[test]
fn openapi_checks_catch_malformed_exchanges() {
    let api = OpenApi::load();
    let query = "/collections/{collection_name}/points/query";
    assert!(
        api.check_request(
            query,
            "post",
            &json!({"query": [0.1, 0.2], "limit": 3, "with_payload": true})
        )
        .is_ok()
    );
    assert!(
        api.check_request(query, "post", &json!({"query": [0.1], "limit": "3"}))
            .is_err()
    );
    assert!(
        api.check_request(query, "post", &json!({"query": [0.1], "limit": 0}))
            .is_err()
    );
    assert!(
        api.check_request(
            query,
            "post",
            &json!({"query": [0.1], "filter": {"must": [{"key": "a", "match": {"value": {"x": 1}}}]}})
        )
        .is_err()
    );
    let upsert = "/collections/{collection_name}/points";
    assert!(
        api.check_request(
            upsert,
            "put",
            &json!({"points": [{"id": 1, "vector": [1.0]}]})
        )
        .is_ok()
    );
    assert!(
        api.check_request(
            upsert,
            "put",
            &json!({"points": [{"id": -1, "vector": [1.0]}]})
        )
        .is_err()
    );
    assert!(
        api.check_request(upsert, "put", &json!({"points": [{"vector": [1.0]}]}))
            .is_err()
    );
    let create = "/collections/{collection_name}";
    assert!(
        api.check_request(
            create,
            "put",
            &json!({"vectors": {"size": 5, "distance": "Cosine"}})
        )
        .is_ok()
    );
    assert!(
        api.check_request(
            create,
            "put",
            &json!({"vectors": {"size": 5, "distance": "cosine"}})
        )
        .is_err()
    );
    let ok = json!({"result": {"points": [{"id": 1, "version": 0, "score": 0.5, "payload": null}]},
                    "status": "ok", "time": 0.001});
    assert!(api.check_response(query, "post", 200, &ok).is_ok());
    let missing_version =
        json!({"result": {"points": [{"id": 1, "score": 0.5}]}, "status": "ok", "time": 0.001});
    assert!(
        api.check_response(query, "post", 200, &missing_version)
            .is_err()
    );
}
