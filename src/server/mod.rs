//! The HTTP server: routes, auth, request ids, errors as responses, and `serve` on a listener
//! the caller has bound (so tests start the real server on port 0).

pub mod auth;
pub mod extract;
pub mod response;
pub mod routes;
pub mod state;

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};

use crate::error::ApiError;
use state::AppState;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Every route the gateway serves.
pub fn app(state: Arc<AppState>) -> Router {
    let llm = Router::new()
        .route("/chat/completions", post(routes::llm::chat_completions))
        .route("/completions", post(routes::llm::completions))
        .route("/embeddings", post(routes::llm::embeddings))
        .route("/models", get(routes::models::list))
        .route("/models/{*model}", get(routes::models::retrieve));
    Router::new()
        .nest("/v1", llm.clone())
        .merge(llm)
        .route("/chat/completions/", post(routes::llm::chat_completions))
        .route("/engines/{*model}", post(routes::llm::completions))
        .route("/key/generate", post(routes::keys::generate))
        .route("/key/update", post(routes::keys::update))
        .route("/key/delete", post(routes::keys::delete))
        .route("/key/info", get(routes::keys::info))
        .route("/key/list", get(routes::keys::list))
        .route("/key/block", post(routes::keys::block))
        .route("/key/unblock", post(routes::keys::unblock))
        .route("/health/liveliness", get(routes::health::liveliness))
        .route("/health/liveness", get(routes::health::liveliness))
        .route("/health/readiness", get(routes::health::readiness))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(log_request))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(CatchPanicLayer::custom(panic_response))
        .with_state(state)
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::not_found(format!("Route {} not found.", uri.path()))
}

async fn method_not_allowed(uri: Uri) -> ApiError {
    ApiError::new(
        crate::error::ErrorKind::MethodNotAllowed,
        format!("Method not allowed on {}.", uri.path()),
    )
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    ApiError::internal("Internal error.").into_response()
}

/// One log line per request, never with the key.
async fn log_request(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let request_id = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    let model = response
        .headers()
        .get("x-litellm-model-group")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let deployment = response
        .headers()
        .get("x-litellm-model-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    tracing::info!(
        target: "hx_gateway::access",
        request_id = %request_id,
        method = %method,
        route = %route,
        model = %model,
        deployment = %deployment,
        status,
        duration_ms = elapsed.as_secs_f64() * 1000.0,
        "request"
    );
    metrics::counter!("hx_requests_total", "route" => route.clone(), "model_group" => model.to_string(),
        "deployment" => deployment.to_string(), "status" => status.to_string())
    .increment(1);
    metrics::histogram!("hx_request_duration_seconds", "route" => route)
        .record(elapsed.as_secs_f64());
    response
}

/// Serves until `shutdown` resolves, then lets in-flight requests finish.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = app(state);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
