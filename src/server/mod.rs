//! The HTTP server: routes, auth, request ids, errors as responses, and `serve` on a listener
//! the caller has bound (so tests start the real server on port 0).

pub mod access_log;
pub mod auth;
pub mod extract;
pub mod keepalive;
pub mod response;
pub mod routes;
pub mod state;
pub mod threads;

pub use state::ServerState;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderName, Uri};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};

use crate::error::ApiError;
use crate::gateway::AppState;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Every route the gateway serves, sending upstream with the gateway's shared clients.
pub fn app(state: Arc<AppState>) -> Router {
    app_with(ServerState::shared(state))
}

/// Every route the gateway serves, on one server thread's state.
pub fn app_with(state: ServerState) -> Router {
    let mut router = Router::new();
    // Each OpenAI route with and without `/v1`, as LiteLLM serves them. Registered twice
    // rather than nested: a nested router costs every request a second route match, a path
    // rewrite and more boxed-service clones.
    for prefix in ["/v1", ""] {
        router = router
            .route(
                &format!("{prefix}/chat/completions"),
                post(routes::llm::chat_completions),
            )
            .route(
                &format!("{prefix}/completions"),
                post(routes::llm::completions),
            )
            .route(
                &format!("{prefix}/embeddings"),
                post(routes::llm::embeddings),
            )
            .route(
                &format!("{prefix}/messages"),
                post(routes::messages::create),
            )
            .route(&format!("{prefix}/responses"), post(routes::llm::responses))
            .route(
                &format!("{prefix}/responses/{{id}}"),
                get(routes::responses::get).delete(routes::responses::delete),
            )
            .route(
                &format!("{prefix}/responses/{{id}}/input_items"),
                get(routes::responses::input_items),
            )
            .route(
                &format!("{prefix}/messages/count_tokens"),
                post(routes::messages::count_tokens),
            )
            .route(&format!("{prefix}/models"), get(routes::models::list))
            .route(
                &format!("{prefix}/models/{{*model}}"),
                get(routes::models::retrieve),
            );
    }
    router = router
        .route("/chat/completions/", post(routes::llm::chat_completions))
        .route("/engines/{*model}", post(routes::llm::completions))
        .route("/v1/rag/search", post(routes::rag::search))
        .route("/v1/rag/upsert", post(routes::rag::upsert))
        .route("/v1/rag/delete", post(routes::rag::delete))
        .route("/v1/rag/points", post(routes::rag::points))
        .route("/rag/search", post(routes::rag::search))
        .route("/rag/upsert", post(routes::rag::upsert))
        .route("/rag/delete", post(routes::rag::delete))
        .route("/key/generate", post(routes::keys::generate))
        .route("/key/update", post(routes::keys::update))
        .route("/key/delete", post(routes::keys::delete))
        .route("/key/info", get(routes::keys::info))
        .route("/key/list", get(routes::keys::list))
        .route("/key/block", post(routes::keys::block))
        .route("/key/unblock", post(routes::keys::unblock))
        .route("/key/regenerate", post(routes::keys::regenerate))
        .route("/key/{key}/regenerate", post(routes::keys::regenerate_path))
        .route("/team/new", post(routes::teams::create))
        .route("/team/update", post(routes::teams::update))
        .route("/team/delete", post(routes::teams::delete))
        .route("/team/info", get(routes::teams::info))
        .route("/team/list", get(routes::teams::list))
        .route("/team/block", post(routes::teams::block))
        .route("/team/unblock", post(routes::teams::unblock))
        .route("/team/model/add", post(routes::teams::add_models))
        .route("/team/model/delete", post(routes::teams::delete_models))
        .route("/team/member_add", post(routes::teams::member_add))
        .route("/team/member_delete", post(routes::teams::member_delete))
        .route("/team/member_update", post(routes::teams::member_update))
        .route("/user/new", post(routes::users::create))
        .route("/user/update", post(routes::users::update))
        .route("/user/delete", post(routes::users::delete))
        .route("/user/info", get(routes::users::info))
        .route("/user/list", get(routes::users::list))
        .route("/budget/new", post(routes::customers::new_budget))
        .route("/budget/update", post(routes::customers::update_budget))
        .route("/budget/info", post(routes::customers::budget_info))
        .route("/budget/list", get(routes::customers::list_budgets))
        .route("/budget/delete", post(routes::customers::delete_budget));
    // LiteLLM serves its customer routes under both names.
    for prefix in ["/customer", "/end_user"] {
        router = router
            .route(&format!("{prefix}/new"), post(routes::customers::create))
            .route(&format!("{prefix}/update"), post(routes::customers::update))
            .route(&format!("{prefix}/delete"), post(routes::customers::delete))
            .route(&format!("{prefix}/block"), post(routes::customers::block))
            .route(
                &format!("{prefix}/unblock"),
                post(routes::customers::unblock),
            )
            .route(&format!("{prefix}/info"), get(routes::customers::info))
            .route(&format!("{prefix}/list"), get(routes::customers::list));
    }
    router
        .route("/health/liveliness", get(routes::health::liveliness))
        .route("/health/liveness", get(routes::health::liveliness))
        .route("/health/readiness", get(routes::health::readiness))
        .route("/healthz/deps", get(routes::health::dependencies))
        .route("/metrics", get(routes::health::metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(access_log::log_request))
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

/// Serves until `shutdown` resolves, then lets in-flight requests finish.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_on(listener, ServerState::shared(state), shutdown).await
}

/// [`serve`] on any listener (the server threads get connections handed to them).
pub(crate) async fn serve_on<L>(
    listener: L,
    state: ServerState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()>
where
    L: axum::serve::Listener<Io = tokio::net::TcpStream>,
    L::Addr: std::fmt::Debug,
{
    let app = app_with(state);
    // Small JSON answers must not wait on Nagle's algorithm for the client's delayed ACK.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set on a connection");
        }
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
