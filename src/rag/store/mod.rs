//! The vector-store interface of the RAG layer: one [`VectorStore`] with two backends, a Qdrant
//! server over REST ([`QdrantServerStore`]) and Qdrant's engine in-process ([`EmbeddedStore`]).
//!
//! Both backends take and give the same backend-neutral types (points, filters, scored points),
//! so the service above them never knows which one it talks to, and one test suite runs
//! against both.

pub mod embedded;
pub mod qdrant_server;

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{ApiError, ErrorKind};

pub use embedded::{EmbeddedStore, EmbeddedStoreOptions};
pub use qdrant_server::QdrantServerStore;

/// What a store can fail with. Messages never contain secrets (API keys, URL passwords).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum VectorStoreError {
    /// The store cannot be reached or cannot be opened (server down, directory locked by
    /// another process, disk error).
    #[error("vector store unavailable: {0}")]
    Unavailable(String),
    /// The store did not answer in time.
    #[error("vector store timed out: {0}")]
    Timeout(String),
    #[error("collection '{0}' does not exist")]
    CollectionNotFound(String),
    #[error(
        "vector size mismatch: the collection holds vectors of size {expected}, got a vector of size {got}"
    )]
    WrongDimension { expected: usize, got: usize },
    /// The filter is not valid Qdrant filter syntax.
    #[error("invalid filter: {0}")]
    BadFilter(String),
    /// The store refused a request for another reason it considers the caller's fault.
    #[error("vector store rejected the request: {0}")]
    BadRequest(String),
    /// The store answered something we could not understand, or failed internally.
    #[error("vector store error: {0}")]
    Internal(String),
}

impl From<VectorStoreError> for ApiError {
    fn from(err: VectorStoreError) -> Self {
        let message = err.to_string();
        match err {
            VectorStoreError::Unavailable(_) => ApiError::new(ErrorKind::Unavailable, message),
            VectorStoreError::Timeout(_) => ApiError::new(ErrorKind::Timeout, message),
            VectorStoreError::CollectionNotFound(_) => {
                ApiError::not_found(message).with_param("collection")
            }
            VectorStoreError::WrongDimension { .. } => ApiError::invalid(message, "vector"),
            VectorStoreError::BadFilter(_) => ApiError::invalid(message, "filter"),
            VectorStoreError::BadRequest(_) => ApiError::new(ErrorKind::InvalidRequest, message),
            // A failing dependency, not a bug reachable by input: the store is unusable.
            VectorStoreError::Internal(_) => ApiError::new(ErrorKind::Unavailable, message),
        }
    }
}

/// A point id as Qdrant knows it: an unsigned integer or a UUID (serialized hyphenated).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PointId {
    Num(u64),
    Uuid(uuid::Uuid),
}

impl PointId {
    /// Parses an id from JSON: an unsigned integer or a UUID string. `None` for anything else.
    pub fn from_json(value: &Value) -> Option<PointId> {
        match value {
            Value::Number(n) => n.as_u64().map(PointId::Num),
            Value::String(s) => uuid::Uuid::parse_str(s).ok().map(PointId::Uuid),
            _ => None,
        }
    }

    pub fn to_json(self) -> Value {
        match self {
            PointId::Num(n) => Value::from(n),
            PointId::Uuid(u) => Value::String(u.hyphenated().to_string()),
        }
    }
}

impl fmt::Display for PointId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PointId::Num(n) => write!(f, "{n}"),
            PointId::Uuid(u) => write!(f, "{}", u.hyphenated()),
        }
    }
}

/// A filter in Qdrant's filter syntax, checked to parse as one. Kept as JSON: the server
/// backend passes it through verbatim, the embedded backend converts it to the engine's type.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter(Value);

impl Filter {
    /// Validates `value` as a Qdrant filter (the engine's own parser, so both backends accept
    /// exactly the same syntax).
    pub fn parse(value: Value) -> Result<Filter, VectorStoreError> {
        if !value.is_object() {
            return Err(VectorStoreError::BadFilter(
                "a filter must be a JSON object".to_string(),
            ));
        }
        serde_json::from_value::<qdrant_edge::Filter>(value.clone())
            .map_err(|e| VectorStoreError::BadFilter(e.to_string()))?;
        Ok(Filter(value))
    }

    /// A filter known to be valid because it was built by the service itself.
    pub(crate) fn trusted(value: Value) -> Filter {
        Filter(value)
    }

    pub fn as_json(&self) -> &Value {
        &self.0
    }

    pub fn into_json(self) -> Value {
        self.0
    }
}

/// A point to store.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub id: PointId,
    pub vector: Vec<f32>,
    pub payload: Map<String, Value>,
}

/// Which payload to return with results: all, none, or the named top-level fields.
#[derive(Debug, Clone, PartialEq)]
pub enum WithPayload {
    All(bool),
    Fields(Vec<String>),
}

impl WithPayload {
    pub fn to_json(&self) -> Value {
        match self {
            WithPayload::All(b) => Value::Bool(*b),
            WithPayload::Fields(fields) => {
                Value::Array(fields.iter().cloned().map(Value::String).collect())
            }
        }
    }
}

/// A nearest-neighbour query.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchQuery {
    pub vector: Vec<f32>,
    pub filter: Option<Filter>,
    /// Only points scoring at least this much; `None` for no threshold.
    pub score_threshold: Option<f32>,
    pub limit: usize,
    pub with_payload: WithPayload,
    pub with_vector: bool,
}

/// A search hit, as Qdrant reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoredPoint {
    pub id: PointId,
    pub version: u64,
    pub score: f32,
    pub payload: Option<Map<String, Value>>,
    pub vector: Option<Vec<f32>>,
}

/// A page of stored points matching a filter, in id order (Qdrant's scroll): for listing
/// what is stored without a query vector.
#[derive(Debug, Clone, PartialEq)]
pub struct ScrollQuery {
    pub filter: Option<Filter>,
    /// Page size (at least 1).
    pub limit: usize,
    /// Start from this id (inclusive): the previous page's `next_offset`.
    pub offset: Option<PointId>,
    pub with_payload: WithPayload,
}

/// A stored point as a scroll returns it (no vector, no score).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRecord {
    pub id: PointId,
    pub payload: Option<Map<String, Value>>,
}

/// One page of a scroll; `next_offset` is `None` on the last page.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ScrollPage {
    pub points: Vec<StoredRecord>,
    pub next_offset: Option<PointId>,
}

/// What to delete.
#[derive(Debug, Clone, PartialEq)]
pub enum DeleteSelector {
    Ids(Vec<PointId>),
    Filter(Filter),
}

/// What the service needs to know about a collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CollectionInfo {
    pub vector_size: usize,
    pub points_count: u64,
}

/// The vector store: one of two real backends, same operations, same answers.
pub enum VectorStore {
    Server(QdrantServerStore),
    Embedded(EmbeddedStore),
}

impl VectorStore {
    /// Short name of the backend, for logs and health output.
    pub fn kind(&self) -> &'static str {
        match self {
            VectorStore::Server(_) => "qdrant",
            VectorStore::Embedded(_) => "embedded",
        }
    }

    /// The collection's vector size and point count, or `None` when it does not exist.
    pub async fn collection_info(
        &self,
        collection: &str,
    ) -> Result<Option<CollectionInfo>, VectorStoreError> {
        match self {
            VectorStore::Server(s) => s.collection_info(collection).await,
            VectorStore::Embedded(s) => s.collection_info(collection).await,
        }
    }

    /// Creates a collection of `vector_size` with cosine distance and a keyword payload index
    /// on `namespace`. Creating one that already exists is not an error.
    pub async fn create_collection(
        &self,
        collection: &str,
        vector_size: usize,
    ) -> Result<(), VectorStoreError> {
        match self {
            VectorStore::Server(s) => s.create_collection(collection, vector_size).await,
            VectorStore::Embedded(s) => s.create_collection(collection, vector_size).await,
        }
    }

    /// Inserts or replaces points. When it returns Ok, the points are stored and searchable.
    pub async fn upsert(
        &self,
        collection: &str,
        points: Vec<Point>,
    ) -> Result<(), VectorStoreError> {
        match self {
            VectorStore::Server(s) => s.upsert(collection, points).await,
            VectorStore::Embedded(s) => s.upsert(collection, points).await,
        }
    }

    /// Nearest neighbours by cosine similarity, best first.
    pub async fn search(
        &self,
        collection: &str,
        query: SearchQuery,
    ) -> Result<Vec<ScoredPoint>, VectorStoreError> {
        match self {
            VectorStore::Server(s) => s.search(collection, query).await,
            VectorStore::Embedded(s) => s.search(collection, query).await,
        }
    }

    /// Deletes points by ids or by filter. When it returns Ok, they are gone from searches.
    pub async fn delete(
        &self,
        collection: &str,
        selector: DeleteSelector,
    ) -> Result<(), VectorStoreError> {
        match self {
            VectorStore::Server(s) => s.delete(collection, selector).await,
            VectorStore::Embedded(s) => s.delete(collection, selector).await,
        }
    }

    /// One page of the points matching `query.filter`, in id order.
    pub async fn scroll(
        &self,
        collection: &str,
        query: ScrollQuery,
    ) -> Result<ScrollPage, VectorStoreError> {
        match self {
            VectorStore::Server(s) => s.scroll(collection, query).await,
            VectorStore::Embedded(s) => s.scroll(collection, query).await,
        }
    }

    /// The exact number of points matching `filter` (all points when `None`).
    pub async fn count(
        &self,
        collection: &str,
        filter: Option<Filter>,
    ) -> Result<u64, VectorStoreError> {
        match self {
            VectorStore::Server(s) => s.count(collection, filter).await,
            VectorStore::Embedded(s) => s.count(collection, filter).await,
        }
    }

    /// How many collections the store holds (every collection, not only the gateway's).
    pub async fn collection_count(&self) -> Result<usize, VectorStoreError> {
        match self {
            VectorStore::Server(s) => s.collection_count().await,
            VectorStore::Embedded(s) => s.collection_count().await,
        }
    }

    /// Whether the store can serve requests now.
    pub async fn health(&self) -> Result<(), VectorStoreError> {
        match self {
            VectorStore::Server(s) => s.health().await,
            VectorStore::Embedded(s) => s.health().await,
        }
    }

    /// Flushes everything to disk and stops background work (embedded); nothing to do for the
    /// server. Call once at shutdown.
    pub async fn close(&self) -> Result<(), VectorStoreError> {
        match self {
            VectorStore::Server(_) => Ok(()),
            VectorStore::Embedded(s) => s.close().await,
        }
    }
}

/// Checks every vector of a batch against the collection's size.
pub(crate) fn check_dimensions<'a>(
    expected: usize,
    vectors: impl IntoIterator<Item = &'a [f32]>,
) -> Result<(), VectorStoreError> {
    for v in vectors {
        if v.len() != expected {
            return Err(VectorStoreError::WrongDimension {
                expected,
                got: v.len(),
            });
        }
    }
    Ok(())
}

/// Collection names become directory names (embedded) and URL path segments (server): only a
/// safe character set is accepted, so no name can escape the data directory or the URL path.
pub fn valid_collection_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn filters_are_checked_with_qdrants_own_parser() {
        assert!(
            Filter::parse(json!({"must": [{"key": "lang", "match": {"value": "en"}}]})).is_ok()
        );
        assert!(
            Filter::parse(json!({"must": [{"key": "n", "range": {"gte": 1, "lt": 3}}]})).is_ok()
        );
        assert!(Filter::parse(json!({"must_not": [{"has_id": [1, 2]}]})).is_ok());
        assert!(matches!(
            Filter::parse(json!({"mustt": []})),
            Err(VectorStoreError::BadFilter(_))
        ));
        assert!(matches!(
            Filter::parse(json!([1])),
            Err(VectorStoreError::BadFilter(_))
        ));
    }

    #[test]
    fn errors_map_to_the_spec_statuses() {
        let e: ApiError = VectorStoreError::Unavailable("down".into()).into();
        assert_eq!(e.status().as_u16(), 503);
        let e: ApiError = VectorStoreError::CollectionNotFound("c".into()).into();
        assert_eq!(e.status().as_u16(), 404);
        let e: ApiError = VectorStoreError::WrongDimension {
            expected: 5,
            got: 3,
        }
        .into();
        assert_eq!(e.status().as_u16(), 400);
        assert!(
            e.message.contains('5') && e.message.contains('3'),
            "{}",
            e.message
        );
    }

    #[test]
    fn point_ids_round_trip() {
        let u = "5f0c3a4e-8a43-4f7b-9b0e-8d0e2c4d2f10";
        assert_eq!(PointId::from_json(&json!(7)), Some(PointId::Num(7)));
        assert_eq!(PointId::from_json(&json!(u)).unwrap().to_json(), json!(u));
        assert_eq!(PointId::from_json(&json!(-1)), None);
        assert_eq!(PointId::from_json(&json!("nope")), None);
    }

    #[test]
    fn collection_names_cannot_escape() {
        assert!(valid_collection_name("hx_rag_default"));
        assert!(!valid_collection_name("../etc"));
        assert!(!valid_collection_name("a/b"));
        assert!(!valid_collection_name(""));
    }
}
