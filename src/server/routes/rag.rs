//! `/v1/rag/search`, `/v1/rag/upsert`, `/v1/rag/delete`: retrieval next to the LLM routes,
//! under the same keys; a key's `metadata.rag_namespaces` scopes what it may touch.
//! `/v1/rag/points` (not in the public contract) lists stored points by filter without a
//! query vector, for `hx-gateway rag ingest`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde_json::Value;

use crate::error::{ApiError, ErrorKind};
use crate::proxy::embedder::RouterEmbedder;
use crate::rag::RagScope;
use crate::server::auth::Caller;
use crate::server::extract::JsonObject;
use crate::server::state::AppState;

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

/// Which RAG operation a request runs.
#[derive(Clone, Copy)]
enum Operation {
    Search,
    Upsert,
    Delete,
    Points,
}

impl Operation {
    fn name(self) -> &'static str {
        match self {
            Operation::Search => "search",
            Operation::Upsert => "upsert",
            Operation::Delete => "delete",
            Operation::Points => "points",
        }
    }
}

async fn run(
    state: &AppState,
    caller: &Caller,
    operation: Operation,
    body: Value,
) -> Result<Json<Value>, ApiError> {
    let scope = scope(caller)?;
    caller.check_budget()?;
    let embedder = RouterEmbedder { state, caller };
    let started = std::time::Instant::now();
    let result = match operation {
        Operation::Search => state.rag.search(&scope, &embedder, body).await,
        Operation::Upsert => state.rag.upsert(&scope, &embedder, body).await,
        Operation::Delete => state.rag.delete(&scope, &embedder, body).await,
        Operation::Points => state.rag.points(&scope, body).await,
    };
    let outcome = if result.is_ok() { "ok" } else { "error" };
    crate::metrics::record_rag_operation(operation.name(), outcome, started.elapsed());
    // A success shows the vector store open: the start-up check marks it down while another
    // process holds the embedded store's directory, and it opens on a later request once
    // that process is gone.
    if result.is_ok() {
        state
            .vector_store_ok
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }
    result.map(Json)
}

pub async fn search(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    JsonObject(body): JsonObject,
) -> Result<Json<Value>, ApiError> {
    run(&state, &caller, Operation::Search, Value::Object(body)).await
}

pub async fn upsert(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    JsonObject(body): JsonObject,
) -> Result<Json<Value>, ApiError> {
    run(&state, &caller, Operation::Upsert, Value::Object(body)).await
}

pub async fn delete(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    JsonObject(body): JsonObject,
) -> Result<Json<Value>, ApiError> {
    run(&state, &caller, Operation::Delete, Value::Object(body)).await
}

/// `POST /v1/rag/points`: stored points by filter, a page at a time (used by `rag ingest`).
pub async fn points(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    JsonObject(body): JsonObject,
) -> Result<Json<Value>, ApiError> {
    run(&state, &caller, Operation::Points, Value::Object(body)).await
}
