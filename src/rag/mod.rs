//! Retrieval (RAG): the `/v1/rag/*` logic over a vector store, independent of HTTP.
//!
//! - [`store`]: the [`store::VectorStore`] interface and its two backends (Qdrant server over
//!   REST, Qdrant's engine embedded).
//! - [`request`]: the typed requests of the operations, each field read with the spec's
//!   message for a wrong value.
//! - [`service`]: the checks that span fields, namespace scoping, embedding of documents and
//!   queries, and the exact response shapes of `docs/spec/rag-api.md`.
//!
//! The HTTP layer reads the body as the operation's request and calls [`RagService::run`] with
//! the caller's [`RagScope`] and an [`Embedder`] bound to the caller's identity; other callers
//! use [`RagService::search`], [`RagService::upsert`], [`RagService::delete`] and
//! [`RagService::points`] with a request made by [`request::from_json`].

pub mod request;
pub mod service;
pub mod store;

use std::path::PathBuf;

use futures::future::BoxFuture;

use crate::error::ApiError;
use crate::secret::{Secret, redact_url};

pub use request::{
    DeleteRequest, Document, PointsRequest, RagRequest, SearchRequest, UpsertRequest, from_json,
};
pub use service::{RagOperation, RagService};
pub use store::{VectorStore, VectorStoreError};

/// Computes embeddings for texts, in order, one vector per text. The gateway implements it
/// over its router with the caller's identity (model access, spend); tests use a fake.
pub trait Embedder: Send + Sync {
    fn embed(&self, texts: Vec<String>) -> BoxFuture<'_, Result<Vec<Vec<f32>>, ApiError>>;
}

/// The namespaces a caller may touch. `namespaces: None` is unrestricted (master key, or a
/// virtual key without `metadata.rag_namespaces`); `Some(list)` restricts every route to
/// `list` (an empty list denies everything) and to the default collection.
/// `create_collections` says whether the caller may create collections other than the default
/// (the master key, or a key whose `metadata.rag_create_collections` is true): each embedded
/// collection costs a writer thread, so an ordinary key cannot multiply them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RagScope {
    pub namespaces: Option<Vec<String>>,
    pub create_collections: bool,
}

impl RagScope {
    /// No restriction.
    pub fn unrestricted() -> Self {
        RagScope {
            namespaces: None,
            create_collections: true,
        }
    }

    /// Restricted to these namespaces.
    pub fn only<I: IntoIterator<Item = S>, S: Into<String>>(namespaces: I) -> Self {
        RagScope {
            namespaces: Some(namespaces.into_iter().map(Into::into).collect()),
            create_collections: false,
        }
    }

    /// A key's scope from its metadata: `rag_namespaces` absent is every namespace; a list of
    /// strings is those; anything else is a misconfiguration and fails closed (403).
    pub fn from_key_metadata(metadata: &serde_json::Value) -> Result<Self, ApiError> {
        let create_collections = metadata
            .get("rag_create_collections")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false);
        let namespaces = match metadata.get("rag_namespaces") {
            None => None,
            Some(value) => Some(namespace_list(value).ok_or_else(|| {
                ApiError::new(
                    crate::error::ErrorKind::Permission,
                    "This key's metadata.rag_namespaces is not a list of strings, so every RAG \
                     route is denied for it; an administrator must fix the key.",
                )
            })?),
        };
        Ok(RagScope {
            create_collections: create_collections && namespaces.is_none(),
            namespaces,
        })
    }
}

/// `metadata.rag_namespaces` as a list of namespace names, or `None` when it is anything but a
/// list of strings (what `/key/generate` and `/key/update` refuse to store).
pub fn namespace_list(value: &serde_json::Value) -> Option<Vec<String>> {
    value
        .as_array()?
        .iter()
        .map(|v| v.as_str().map(str::to_string))
        .collect()
}

/// Where vectors live, from the environment or the config's `rag_settings`.
#[derive(Clone)]
pub struct RagConfig {
    /// REST URL of a Qdrant server; `None` (or empty) selects the embedded store.
    pub qdrant_url: Option<String>,
    pub qdrant_api_key: Option<Secret>,
    /// The default collection (`QDRANT_COLLECTION`, default `hx_rag_default`).
    pub collection: String,
    /// `HX_DATA_DIR`: the embedded store lives in `<data_dir>/qdrant`.
    pub data_dir: PathBuf,
}

impl std::fmt::Debug for RagConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RagConfig")
            .field("qdrant_url", &self.qdrant_url.as_deref().map(redact_url))
            .field("qdrant_api_key", &self.qdrant_api_key)
            .field("collection", &self.collection)
            .field("data_dir", &self.data_dir)
            .finish()
    }
}

pub use crate::config::DEFAULT_MAX_COLLECTIONS;

/// The default collection name of the spec.
pub const DEFAULT_COLLECTION: &str = "hx_rag_default";
