//! Liveness, readiness and dependency probes, and the Prometheus metrics endpoint.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};

use crate::caller::Caller;
use crate::error::{ApiError, ErrorKind};
use crate::gateway::AppState;
use crate::server::auth::authenticate;

pub async fn liveliness() -> Json<Value> {
    Json(json!("I'm alive!"))
}

/// 503 until the config is loaded and the key store has answered once.
pub async fn readiness(State(state): State<Arc<AppState>>) -> (StatusCode, Json<Value>) {
    if state.is_ready() {
        (StatusCode::OK, Json(json!({"status": "healthy"})))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "starting"})),
        )
    }
}

/// `GET /healthz/deps`: every dependency probed concurrently (each bounded to 2 s); always 200,
/// no auth, no secret in the body.
pub async fn dependencies(State(state): State<Arc<AppState>>) -> Json<Value> {
    let runtime = state.runtime();
    let report = state
        .dependencies
        .probe_all(&runtime.config, state.rag.is_open())
        .await
        .with_embedding_model_status(
            runtime
                .router
                .model_status(&runtime.config.rag.embedding_model),
        );
    Json(report.to_json())
}

/// `GET /metrics`: Prometheus text format. No auth unless
/// `general_settings.require_auth_for_metrics_endpoint` is true, then the master key.
pub async fn metrics(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let require_auth = state
        .runtime()
        .config
        .general
        .require_auth_for_metrics_endpoint
        .unwrap_or(false);
    if require_auth {
        let caller = authenticate(&state, &headers).await?;
        if !matches!(caller, Caller::Master | Caller::Anonymous) {
            return Err(ApiError::new(
                ErrorKind::Auth,
                "The master key is required for /metrics.",
            ));
        }
    }
    let body = crate::metrics::render();
    let mut response = Response::new(Body::from(body));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(response)
}
