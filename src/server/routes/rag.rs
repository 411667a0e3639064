//! `/v1/rag/search`, `/v1/rag/upsert`, `/v1/rag/delete`: retrieval next to the LLM routes,
//! under the same keys; a key's `metadata.rag_namespaces` scopes what it may touch.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde_json::Value;

use crate::error::ApiError;
use crate::proxy::embedder::RouterEmbedder;
use crate::rag::RagScope;
use crate::server::auth::Caller;
use crate::server::extract::JsonObject;
use crate::server::state::AppState;

/// The namespaces a caller may use: a key's `metadata.rag_namespaces` list, else everything.
fn scope(caller: &Caller) -> RagScope {
    let Some(key) = caller.key() else {
        return RagScope::unrestricted();
    };
    match key.metadata.get("rag_namespaces") {
        Some(Value::Array(items)) => {
            RagScope::only(items.iter().filter_map(Value::as_str).map(str::to_string))
        }
        _ => RagScope::unrestricted(),
    }
}

/// Records the operation's metric. A success also shows the vector store open: the start-up
/// check marks it down while another process holds the embedded store's directory, and the
/// store opens on a later request once that process is gone.
fn finish(
    state: &AppState,
    operation: &'static str,
    started: std::time::Instant,
    result: Result<Value, ApiError>,
) -> Result<Json<Value>, ApiError> {
    crate::metrics::record_rag_operation(
        operation,
        if result.is_ok() { "ok" } else { "error" },
        started.elapsed(),
    );
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
    caller.check_budget()?;
    let embedder = RouterEmbedder {
        state: &state,
        caller: &caller,
    };
    let started = std::time::Instant::now();
    let result = state
        .rag
        .search(&scope(&caller), &embedder, Value::Object(body))
        .await;
    finish(&state, "search", started, result)
}

pub async fn upsert(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    JsonObject(body): JsonObject,
) -> Result<Json<Value>, ApiError> {
    caller.check_budget()?;
    let embedder = RouterEmbedder {
        state: &state,
        caller: &caller,
    };
    let started = std::time::Instant::now();
    let result = state
        .rag
        .upsert(&scope(&caller), &embedder, Value::Object(body))
        .await;
    finish(&state, "upsert", started, result)
}

pub async fn delete(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    JsonObject(body): JsonObject,
) -> Result<Json<Value>, ApiError> {
    caller.check_budget()?;
    let embedder = RouterEmbedder {
        state: &state,
        caller: &caller,
    };
    let started = std::time::Instant::now();
    let result = state
        .rag
        .delete(&scope(&caller), &embedder, Value::Object(body))
        .await;
    finish(&state, "delete", started, result)
}
