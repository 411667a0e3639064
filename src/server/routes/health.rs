//! Liveness and readiness probes (no auth).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::server::state::AppState;

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
