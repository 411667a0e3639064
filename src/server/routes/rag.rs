//! `/v1/rag/search`, `/v1/rag/upsert`, `/v1/rag/delete`: retrieval next to the LLM routes,
//! under the same keys; a key's `metadata.rag_namespaces` scopes what it may touch.
//! `/v1/rag/points` (not in the public contract) lists stored points by filter without a
//! query vector, for `hx-gateway rag ingest`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde_json::Value;

use crate::api::body::RequestBody;
use crate::caller::Caller;
use crate::error::{ApiError, ErrorKind};
use crate::gateway::AppState;
use crate::providers::Upstream;
use crate::proxy::embedder::RouterEmbedder;
use crate::rag::{
    DeleteRequest, PointsRequest, RagOperation as Operation, RagRequest, RagScope, SearchRequest,
    UpsertRequest,
};
use crate::server::extract::Typed;

/// The namespaces a caller may use: a key's `metadata.rag_namespaces` list, else everything.
/// A key let through unverified while the database is down gets no RAG access at all: nothing
/// about its scope is known.
fn scope(caller: &Caller) -> Result<RagScope, ApiError> {
    let Some(key) = caller.key() else {
        return Ok(RagScope::unrestricted());
    };
    if key.unverified {
        return Err(ApiError::new(
            ErrorKind::Permission,
            "The key could not be verified (the key database is unavailable); RAG routes need a verified key.",
        ));
    }
    RagScope::from_key_metadata(&key.metadata)
}

/// The caller's scope and budget are checked before the body's fields.
async fn run<T: RequestBody + Into<RagRequest>>(
    state: &AppState,
    upstream: &Upstream,
    caller: &Caller,
    operation: Operation,
    body: Typed<T>,
) -> Result<Json<Value>, ApiError> {
    let scope = scope(caller)?;
    caller.check_budget()?;
    let embedder = RouterEmbedder {
        state,
        upstream,
        caller,
    };
    let request = body.read().map(Into::into);
    let result = state.rag.run(operation, &scope, &embedder, request).await;
    result.map(Json)
}

pub async fn search(
    State(state): State<Arc<AppState>>,
    State(upstream): State<Upstream>,
    caller: Caller,
    body: Typed<SearchRequest>,
) -> Result<Json<Value>, ApiError> {
    run(&state, &upstream, &caller, Operation::Search, body).await
}

pub async fn upsert(
    State(state): State<Arc<AppState>>,
    State(upstream): State<Upstream>,
    caller: Caller,
    body: Typed<UpsertRequest>,
) -> Result<Json<Value>, ApiError> {
    run(&state, &upstream, &caller, Operation::Upsert, body).await
}

pub async fn delete(
    State(state): State<Arc<AppState>>,
    State(upstream): State<Upstream>,
    caller: Caller,
    body: Typed<DeleteRequest>,
) -> Result<Json<Value>, ApiError> {
    run(&state, &upstream, &caller, Operation::Delete, body).await
}

/// `POST /v1/rag/points`: stored points by filter, a page at a time (used by `rag ingest`).
pub async fn points(
    State(state): State<Arc<AppState>>,
    State(upstream): State<Upstream>,
    caller: Caller,
    body: Typed<PointsRequest>,
) -> Result<Json<Value>, ApiError> {
    run(&state, &upstream, &caller, Operation::Points, body).await
}
