//! `/v1/rag/search`, `/v1/rag/upsert`, `/v1/rag/delete`: retrieval next to the LLM routes,
//! under the same keys; a key's `metadata.rag_namespaces` scopes what it may touch.
//! `/v1/rag/points` (not in the public contract) lists stored points by filter without a
//! query vector, for `hx-gateway rag ingest`.

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
    crate::metrics::record_rag_operation(
        "search",
        if result.is_ok() { "ok" } else { "error" },
        started.elapsed(),
    );
    result.map(Json)
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
    crate::metrics::record_rag_operation(
        "upsert",
        if result.is_ok() { "ok" } else { "error" },
        started.elapsed(),
    );
    result.map(Json)
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
    crate::metrics::record_rag_operation(
        "delete",
        if result.is_ok() { "ok" } else { "error" },
        started.elapsed(),
    );
    result.map(Json)
}

/// `POST /v1/rag/points`: stored points by filter, a page at a time (used by `rag ingest`).
pub async fn points(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    JsonObject(body): JsonObject,
) -> Result<Json<Value>, ApiError> {
    caller.check_budget()?;
    let started = std::time::Instant::now();
    let result = state.rag.points(&scope(&caller), Value::Object(body)).await;
    crate::metrics::record_rag_operation(
        "points",
        if result.is_ok() { "ok" } else { "error" },
        started.elapsed(),
    );
    result.map(Json)
}
