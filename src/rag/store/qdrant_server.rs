//! The server backend: a small typed client of Qdrant's REST API (port 6333).
//!
//! Qdrant's official Rust client speaks gRPC only, while deployments configure the REST URL,
//! so this backend sends the REST requests itself, shaped exactly as Qdrant's OpenAPI document
//! (v1.19) describes them; the wire-level tests validate every body against that document.
//! The API key goes in the `api-key` header. Neither it nor a password in the URL ever
//! appears in an error.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{
    CollectionInfo, DeleteSelector, Point, PointId, ScoredPoint, ScrollPage, ScrollQuery,
    SearchQuery, StoredRecord, VectorStoreError, valid_collection_name,
};
use crate::secret::{Secret, redact_url, scrub};

/// How long a request to Qdrant may take before it counts as a timeout.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A Qdrant server reached over REST.
pub struct QdrantServerStore {
    http: reqwest::Client,
    /// Base URL without a trailing slash (may contain a password: never shown as is).
    base_url: Secret,
    api_key: Option<Secret>,
    /// The URL's password, if any, removed from every message.
    url_password: Option<Secret>,
}

/// Qdrant's response envelope: `{"result": ..., "status": "ok" | {"error": "..."}, "time": s}`.
#[derive(Deserialize)]
struct Envelope<T> {
    result: Option<T>,
}

#[derive(Deserialize)]
struct ErrorEnvelope {
    status: Option<ErrorStatus>,
}

#[derive(Deserialize)]
struct ErrorStatus {
    error: Option<String>,
}

/// The parts of `CollectionInfo` the service needs.
#[derive(Deserialize)]
struct CollectionInfoBody {
    points_count: Option<u64>,
    config: CollectionConfigBody,
}

#[derive(Deserialize)]
struct CollectionConfigBody {
    params: CollectionParamsBody,
}

#[derive(Deserialize)]
struct CollectionParamsBody {
    vectors: Option<Value>,
}

#[derive(Deserialize)]
struct CountBody {
    count: u64,
}

#[derive(Deserialize)]
struct QueryResponseBody {
    points: Vec<ScoredPointBody>,
}

#[derive(Deserialize)]
struct ScrollResponseBody {
    points: Vec<RecordBody>,
    next_page_offset: Option<PointId>,
}

#[derive(Deserialize)]
struct RecordBody {
    id: PointId,
    payload: Option<Map<String, Value>>,
}

#[derive(Deserialize)]
struct ScoredPointBody {
    id: PointId,
    version: u64,
    score: f32,
    payload: Option<Map<String, Value>>,
    vector: Option<Value>,
}

impl QdrantServerStore {
    /// A client of the Qdrant server at `url` (e.g. `http://127.0.0.1:6333`).
    pub fn new(url: &str, api_key: Option<Secret>) -> Result<Self, VectorStoreError> {
        let trimmed = url.trim().trim_end_matches('/');
        let parsed = reqwest::Url::parse(trimmed).map_err(|e| {
            VectorStoreError::Unavailable(format!(
                "QDRANT_URL {} is not a valid URL: {e}",
                redact_url(trimmed)
            ))
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(VectorStoreError::Unavailable(format!(
                "QDRANT_URL {} must be an http or https URL",
                redact_url(trimmed)
            )));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| VectorStoreError::Internal(format!("cannot build HTTP client: {e}")))?;
        Ok(QdrantServerStore {
            http,
            base_url: Secret::new(trimmed),
            api_key: api_key.filter(|k| !k.expose().is_empty()),
            url_password: parsed.password().map(Secret::new),
        })
    }

    /// The URL for logs and health output, password redacted.
    pub fn display_url(&self) -> String {
        redact_url(self.base_url.expose())
    }

    fn scrub(&self, text: &str) -> String {
        let mut secrets: Vec<&str> = Vec::new();
        if let Some(k) = &self.api_key {
            secrets.push(k.expose());
        }
        if let Some(password) = &self.url_password {
            secrets.push(password.expose());
        }
        let text = text.replace(self.base_url.expose(), &self.display_url());
        scrub(&text, &secrets)
    }

    /// Sends one request; returns the status and the body parsed as JSON (Null if not JSON).
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value), VectorStoreError> {
        let url = format!("{}{}", self.base_url.expose(), path);
        let mut request = self.http.request(method, &url);
        if let Some(key) = &self.api_key {
            request = request.header("api-key", key.expose());
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| self.transport_error(e))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| self.transport_error(e))?;
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok((status, json))
    }

    fn transport_error(&self, e: reqwest::Error) -> VectorStoreError {
        let timeout = e.is_timeout();
        let detail = self.scrub(&e.without_url().to_string());
        if timeout {
            VectorStoreError::Timeout(format!(
                "Qdrant at {} did not answer in time",
                self.display_url()
            ))
        } else {
            VectorStoreError::Unavailable(format!(
                "cannot reach Qdrant at {}: {detail}",
                self.display_url()
            ))
        }
    }

    /// Turns a non-success answer into the store's error.
    fn status_error(&self, collection: &str, status: StatusCode, body: &Value) -> VectorStoreError {
        let message = serde_json::from_value::<ErrorEnvelope>(body.clone())
            .ok()
            .and_then(|e| e.status)
            .and_then(|s| s.error)
            .unwrap_or_else(|| format!("HTTP {status}"));
        let message = self.scrub(&message);
        match status {
            StatusCode::NOT_FOUND => VectorStoreError::CollectionNotFound(collection.to_string()),
            StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => {
                match parse_dimension_error(&message) {
                    Some((expected, got)) => VectorStoreError::WrongDimension { expected, got },
                    None => VectorStoreError::BadRequest(message),
                }
            }
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                VectorStoreError::Unavailable(format!(
                    "Qdrant at {} refused the API key (QDRANT_API_KEY)",
                    self.display_url()
                ))
            }
            StatusCode::REQUEST_TIMEOUT | StatusCode::GATEWAY_TIMEOUT => {
                VectorStoreError::Timeout(message)
            }
            _ => VectorStoreError::Unavailable(format!("Qdrant answered {status}: {message}")),
        }
    }

    /// Sends a request whose 200 answer carries `result` of type `T`.
    async fn call<T: for<'de> Deserialize<'de>>(
        &self,
        collection: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<T, VectorStoreError> {
        let (status, json) = self.send(method, path, body).await?;
        if !status.is_success() {
            return Err(self.status_error(collection, status, &json));
        }
        serde_json::from_value::<Envelope<T>>(json)
            .ok()
            .and_then(|e| e.result)
            .ok_or_else(|| {
                VectorStoreError::Internal(format!("unexpected answer from Qdrant to {path}"))
            })
    }

    fn collection_path(collection: &str) -> Result<String, VectorStoreError> {
        if !valid_collection_name(collection) {
            return Err(VectorStoreError::BadRequest(format!(
                "invalid collection name '{collection}'"
            )));
        }
        Ok(format!("/collections/{collection}"))
    }

    /// `GET /collections/{c}`.
    pub async fn collection_info(
        &self,
        collection: &str,
    ) -> Result<Option<CollectionInfo>, VectorStoreError> {
        if !valid_collection_name(collection) {
            return Ok(None);
        }
        let path = Self::collection_path(collection)?;
        let info = match self
            .call::<CollectionInfoBody>(collection, Method::GET, &path, None)
            .await
        {
            Ok(info) => info,
            Err(VectorStoreError::CollectionNotFound(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        let vector_size = info
            .config
            .params
            .vectors
            .as_ref()
            .and_then(default_vector_size)
            .ok_or_else(|| {
                VectorStoreError::BadRequest(format!(
                    "collection '{collection}' has no single unnamed dense vector; the gateway needs one"
                ))
            })?;
        Ok(Some(CollectionInfo {
            vector_size,
            points_count: info.points_count.unwrap_or(0),
        }))
    }

    /// `PUT /collections/{c}` then `PUT /collections/{c}/index` for `namespace`.
    pub async fn create_collection(
        &self,
        collection: &str,
        vector_size: usize,
    ) -> Result<(), VectorStoreError> {
        let path = Self::collection_path(collection)?;
        let body = json!({"vectors": {"size": vector_size, "distance": "Cosine"}});
        let (status, answer) = self.send(Method::PUT, &path, Some(&body)).await?;
        if !status.is_success() {
            let err = self.status_error(collection, status, &answer);
            // Another gateway (or request) created it first: that is what we wanted.
            let exists = status == StatusCode::CONFLICT
                || matches!(&err, VectorStoreError::BadRequest(m) if m.contains("already exists"));
            if !exists {
                return Err(err);
            }
        }
        let index = json!({"field_name": "namespace", "field_schema": "keyword"});
        self.call::<Value>(
            collection,
            Method::PUT,
            &format!("{path}/index?wait=true"),
            Some(&index),
        )
        .await?;
        Ok(())
    }

    /// `PUT /collections/{c}/points?wait=true`.
    pub async fn upsert(
        &self,
        collection: &str,
        points: Vec<Point>,
    ) -> Result<(), VectorStoreError> {
        if points.is_empty() {
            return Ok(());
        }
        let path = Self::collection_path(collection)?;
        let points: Vec<Value> = points
            .into_iter()
            .map(|p| json!({"id": p.id.to_json(), "vector": p.vector, "payload": p.payload}))
            .collect();
        let body = json!({"points": points});
        self.call::<Value>(
            collection,
            Method::PUT,
            &format!("{path}/points?wait=true"),
            Some(&body),
        )
        .await?;
        Ok(())
    }

    /// `POST /collections/{c}/points/query`.
    pub async fn search(
        &self,
        collection: &str,
        query: SearchQuery,
    ) -> Result<Vec<ScoredPoint>, VectorStoreError> {
        let path = Self::collection_path(collection)?;
        let mut body = Map::new();
        body.insert("query".into(), json!(query.vector));
        if let Some(filter) = query.filter {
            body.insert("filter".into(), filter.into_json());
        }
        if let Some(threshold) = query.score_threshold {
            body.insert("score_threshold".into(), json!(threshold));
        }
        body.insert("limit".into(), json!(query.limit));
        body.insert("with_payload".into(), query.with_payload.to_json());
        body.insert("with_vector".into(), json!(query.with_vector));
        let found: QueryResponseBody = self
            .call(
                collection,
                Method::POST,
                &format!("{path}/points/query"),
                Some(&Value::Object(body)),
            )
            .await?;
        Ok(found
            .points
            .into_iter()
            .map(|p| ScoredPoint {
                id: p.id,
                version: p.version,
                score: p.score,
                payload: p.payload,
                vector: p.vector.and_then(dense_vector),
            })
            .collect())
    }

    /// `POST /collections/{c}/points/delete?wait=true`.
    pub async fn delete(
        &self,
        collection: &str,
        selector: DeleteSelector,
    ) -> Result<(), VectorStoreError> {
        let path = Self::collection_path(collection)?;
        let body = match selector {
            DeleteSelector::Ids(ids) => {
                json!({"points": ids.into_iter().map(PointId::to_json).collect::<Vec<_>>()})
            }
            DeleteSelector::Filter(filter) => json!({"filter": filter.into_json()}),
        };
        self.call::<Value>(
            collection,
            Method::POST,
            &format!("{path}/points/delete?wait=true"),
            Some(&body),
        )
        .await?;
        Ok(())
    }

    /// `POST /collections/{c}/points/scroll`.
    pub async fn scroll(
        &self,
        collection: &str,
        query: ScrollQuery,
    ) -> Result<ScrollPage, VectorStoreError> {
        let path = Self::collection_path(collection)?;
        let mut body = Map::new();
        if let Some(offset) = query.offset {
            body.insert("offset".into(), offset.to_json());
        }
        body.insert("limit".into(), json!(query.limit.max(1)));
        if let Some(filter) = query.filter {
            body.insert("filter".into(), filter.into_json());
        }
        body.insert("with_payload".into(), query.with_payload.to_json());
        body.insert("with_vector".into(), Value::Bool(false));
        let page: ScrollResponseBody = self
            .call(
                collection,
                Method::POST,
                &format!("{path}/points/scroll"),
                Some(&Value::Object(body)),
            )
            .await?;
        Ok(ScrollPage {
            points: page
                .points
                .into_iter()
                .map(|p| StoredRecord {
                    id: p.id,
                    payload: p.payload,
                })
                .collect(),
            next_offset: page.next_page_offset,
        })
    }

    /// `POST /collections/{c}/points/count` (exact).
    pub async fn count(
        &self,
        collection: &str,
        filter: Option<super::Filter>,
    ) -> Result<u64, VectorStoreError> {
        let path = Self::collection_path(collection)?;
        let mut body = Map::new();
        if let Some(filter) = filter {
            body.insert("filter".into(), filter.into_json());
        }
        body.insert("exact".into(), Value::Bool(true));
        let counted: CountBody = self
            .call(
                collection,
                Method::POST,
                &format!("{path}/points/count"),
                Some(&Value::Object(body)),
            )
            .await?;
        Ok(counted.count)
    }

    /// `GET /healthz`.
    /// `GET /collections`: the number of collections listed.
    pub async fn collection_count(&self) -> Result<usize, VectorStoreError> {
        #[derive(Deserialize)]
        struct Listed {
            collections: Vec<Value>,
        }
        let listed = self
            .call::<Listed>("", Method::GET, "/collections", None)
            .await?;
        Ok(listed.collections.len())
    }

    pub async fn health(&self) -> Result<(), VectorStoreError> {
        let (status, _) = self.send(Method::GET, "/healthz", None).await?;
        if status.is_success() {
            Ok(())
        } else {
            Err(VectorStoreError::Unavailable(format!(
                "Qdrant at {} answered {status} to /healthz",
                self.display_url()
            )))
        }
    }
}

/// The size of the unnamed dense vector from `config.params.vectors` (`{"size": N, ...}`; a
/// map of named vectors counts only if it has the unnamed one, `""`).
fn default_vector_size(vectors: &Value) -> Option<usize> {
    let single = vectors.get("size").and_then(Value::as_u64).or_else(|| {
        vectors
            .get("")
            .and_then(|v| v.get("size"))
            .and_then(Value::as_u64)
    })?;
    usize::try_from(single).ok()
}

/// A returned vector: a plain array, or the unnamed vector of a named map.
fn dense_vector(v: Value) -> Option<Vec<f32>> {
    let v = match v {
        Value::Object(mut named) => named.remove("")?,
        other => other,
    };
    serde_json::from_value(v).ok()
}

/// Qdrant words a wrong size as "Vector dimension error: expected dim: 5, got 3".
fn parse_dimension_error(message: &str) -> Option<(usize, usize)> {
    let rest = &message[message.find("expected dim:")? + "expected dim:".len()..];
    let (expected, rest) = rest.split_once(',')?;
    let got = rest.trim_start().strip_prefix("got")?.trim_start();
    let got: String = got.chars().take_while(char::is_ascii_digit).collect();
    Some((expected.trim().parse().ok()?, got.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dimension_errors_are_recognised() {
        assert_eq!(
            parse_dimension_error("Wrong input: Vector dimension error: expected dim: 5, got 3"),
            Some((5, 3))
        );
        assert_eq!(parse_dimension_error("Wrong input: something else"), None);
    }

    #[test]
    fn vector_size_from_both_config_shapes() {
        assert_eq!(
            default_vector_size(&json!({"size": 5, "distance": "Cosine"})),
            Some(5)
        );
        assert_eq!(
            default_vector_size(&json!({"": {"size": 7, "distance": "Cosine"}})),
            Some(7)
        );
        assert_eq!(
            default_vector_size(&json!({"text": {"size": 7, "distance": "Cosine"}})),
            None
        );
    }

    #[tokio::test]
    async fn unreachable_server_is_503_without_secrets() {
        // Port 9 on loopback: nothing listens there.
        let store = QdrantServerStore::new(
            "http://admin:hunter22@127.0.0.1:9",
            Some(Secret::new("qk-secret-key")),
        )
        .unwrap();
        let err = store.collection_info("c").await.unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, VectorStoreError::Unavailable(_)), "{text}");
        assert!(
            !text.contains("hunter22") && !text.contains("qk-secret-key"),
            "{text}"
        );
        let api: crate::error::ApiError = err.into();
        assert_eq!(api.status().as_u16(), 503);
    }
}
