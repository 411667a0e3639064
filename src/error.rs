//! The errors a client sees: one type, one table mapping each kind to status, type and code.
//!
//! Every layer (config, keys, limits, providers, RAG) has its own error type; each converts into
//! [`ApiError`] and is turned into a response in exactly one place, [`ApiError::into_response`].

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// What went wrong, as the client is told. The variant decides status and `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// 400 `invalid_request_error`: bad JSON, missing or mistyped field, bad parameter.
    InvalidRequest,
    /// 413 `invalid_request_error`: body over the configured limit.
    PayloadTooLarge,
    /// 405 `invalid_request_error`: a served route asked with the wrong method.
    MethodNotAllowed,
    /// 401 `auth_error`: no key, unknown key, blocked key.
    Auth,
    /// 401 `expired_key`.
    ExpiredKey,
    /// 401 `key_model_access_denied`: model outside the key's allow-list.
    ModelAccessDenied,
    /// 400 `budget_exceeded`.
    BudgetExceeded,
    /// 403 `permission_error`: e.g. a RAG namespace outside the key's scope.
    Permission,
    /// 404 `not_found_error`: unknown model, route, collection.
    NotFound,
    /// 409 `invalid_request_error`: a management write that would duplicate an existing row
    /// (LiteLLM's 409 for a user id that exists).
    Conflict,
    /// 429 `rate_limit_error`: the gateway's own limits or every deployment cooling down.
    RateLimit,
    /// 502 `api_connection_error`: upstream unreachable.
    UpstreamConnection,
    /// 504 `timeout_error`: upstream or dependency timeout.
    Timeout,
    /// 503 `service_unavailable`: key store or vector store unavailable.
    Unavailable,
    /// An upstream's own error status, passed on (type chosen from the status).
    Upstream(u16),
    /// 500 `internal_server_error`: a bug of ours. Never reached by client input.
    Internal,
}

impl ErrorKind {
    /// The single table: kind to (status, OpenAI error `type`).
    pub fn status_and_type(&self) -> (StatusCode, &'static str) {
        match self {
            ErrorKind::InvalidRequest => (StatusCode::BAD_REQUEST, "invalid_request_error"),
            ErrorKind::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "invalid_request_error"),
            ErrorKind::MethodNotAllowed => {
                (StatusCode::METHOD_NOT_ALLOWED, "invalid_request_error")
            }
            ErrorKind::Auth => (StatusCode::UNAUTHORIZED, "auth_error"),
            ErrorKind::ExpiredKey => (StatusCode::UNAUTHORIZED, "expired_key"),
            ErrorKind::ModelAccessDenied => (StatusCode::UNAUTHORIZED, "key_model_access_denied"),
            ErrorKind::BudgetExceeded => (StatusCode::BAD_REQUEST, "budget_exceeded"),
            ErrorKind::Permission => (StatusCode::FORBIDDEN, "permission_error"),
            ErrorKind::NotFound => (StatusCode::NOT_FOUND, "not_found_error"),
            ErrorKind::Conflict => (StatusCode::CONFLICT, "invalid_request_error"),
            ErrorKind::RateLimit => (StatusCode::TOO_MANY_REQUESTS, "rate_limit_error"),
            ErrorKind::UpstreamConnection => (StatusCode::BAD_GATEWAY, "api_connection_error"),
            ErrorKind::Timeout => (StatusCode::GATEWAY_TIMEOUT, "timeout_error"),
            ErrorKind::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "service_unavailable"),
            ErrorKind::Upstream(code) => {
                let status = StatusCode::from_u16(*code).unwrap_or(StatusCode::BAD_GATEWAY);
                (status, upstream_type(status))
            }
            ErrorKind::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal_server_error"),
        }
    }
}

impl ErrorKind {
    /// The same table's Anthropic column: the error `type` of Anthropic's error shape
    /// (`/v1/messages`), with the same status. Anthropic has no types of its own for the
    /// gateway's auth and budget conditions; they take the type of their status.
    pub fn anthropic_type(&self) -> &'static str {
        match self {
            ErrorKind::InvalidRequest
            | ErrorKind::MethodNotAllowed
            | ErrorKind::BudgetExceeded
            | ErrorKind::Conflict => "invalid_request_error",
            ErrorKind::PayloadTooLarge => "request_too_large",
            ErrorKind::Auth | ErrorKind::ExpiredKey | ErrorKind::ModelAccessDenied => {
                "authentication_error"
            }
            ErrorKind::Permission => "permission_error",
            ErrorKind::NotFound => "not_found_error",
            ErrorKind::RateLimit => "rate_limit_error",
            ErrorKind::UpstreamConnection | ErrorKind::Internal => "api_error",
            ErrorKind::Timeout => "timeout_error",
            ErrorKind::Unavailable => "overloaded_error",
            ErrorKind::Upstream(code) => match code {
                400 | 422 => "invalid_request_error",
                401 => "authentication_error",
                403 => "permission_error",
                404 => "not_found_error",
                413 => "request_too_large",
                429 => "rate_limit_error",
                408 | 504 => "timeout_error",
                503 | 529 => "overloaded_error",
                _ => "api_error",
            },
        }
    }
}

/// The protocol whose error shape a route answers in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `{"error": {"message", "type", "param", "code"}}`.
    OpenAi,
    /// `{"type": "error", "error": {"type", "message"}}` (`/v1/messages`).
    Anthropic,
}

/// OpenAI's error type for an upstream status that came without an OpenAI-shaped body.
fn upstream_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 | 404 | 413 | 422 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        408 | 504 => "timeout_error",
        429 => "rate_limit_error",
        _ => "api_error",
    }
}

/// An error on its way to the client, in OpenAI's shape. Boxed so that `Result<T, ApiError>`
/// stays one pointer wide on the hot path.
#[derive(Debug, Clone)]
pub struct ApiError(Box<ErrorDetails>);

/// The fields of an [`ApiError`], reachable through `Deref`.
#[derive(Debug, Clone)]
pub struct ErrorDetails {
    pub kind: ErrorKind,
    pub message: String,
    pub param: Option<String>,
    /// Seconds, sent as `retry-after` (429, 503).
    pub retry_after: Option<u64>,
    /// An upstream body that is already OpenAI-shaped is passed through verbatim.
    pub raw_body: Option<bytes::Bytes>,
    /// Extra response headers (rate-limit headers and the like).
    pub headers: Vec<(header::HeaderName, HeaderValue)>,
}

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ApiError(Box::new(ErrorDetails {
            kind,
            message: message.into(),
            param: None,
            retry_after: None,
            raw_body: None,
            headers: Vec::new(),
        }))
    }

    pub fn invalid(message: impl Into<String>, param: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidRequest, message).with_param(param)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    pub fn auth(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Auth, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    pub fn with_header(mut self, name: header::HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    pub fn status(&self) -> StatusCode {
        self.kind.status_and_type().0
    }

    /// The OpenAI-shaped JSON body: `{"error": {"message", "type", "param", "code"}}`.
    pub fn body_json(&self) -> serde_json::Value {
        let (status, kind) = self.kind.status_and_type();
        json!({"error": {
            "message": self.message,
            "type": kind,
            "param": self.param,
            "code": status.as_u16().to_string(),
        }})
    }

    /// The `data: {...}` SSE event that ends a stream which failed after it started.
    pub fn sse_event(&self) -> String {
        format!("data: {}\n\n", self.body_json())
    }

    /// Anthropic's error body: `{"type": "error", "error": {"type", "message"}}`.
    pub fn anthropic_json(&self) -> serde_json::Value {
        json!({"type": "error", "error": {
            "type": self.kind.anthropic_type(),
            "message": self.message,
        }})
    }

    /// The `event: error` SSE event that ends a Messages stream which failed after it started.
    pub fn anthropic_sse_event(&self) -> String {
        format!("event: error\ndata: {}\n\n", self.anthropic_json())
    }

    /// The body in a protocol's shape. An upstream's own body passes through verbatim when it
    /// already has that shape (an OpenAI upstream's error on an OpenAI route, an Anthropic
    /// upstream's on `/v1/messages`).
    fn body_for(&self, protocol: Protocol) -> bytes::Bytes {
        match (protocol, &self.raw_body) {
            (Protocol::OpenAi, Some(raw)) if !is_anthropic_error(raw) => raw.clone(),
            (Protocol::OpenAi, _) => bytes::Bytes::from(self.body_json().to_string()),
            (Protocol::Anthropic, Some(raw)) if is_anthropic_error(raw) => raw.clone(),
            (Protocol::Anthropic, _) => bytes::Bytes::from(self.anthropic_json().to_string()),
        }
    }

    /// The response: status, the body in `protocol`'s shape, `retry-after` and the extra
    /// headers. The one place an error becomes a response.
    pub fn into_response_as(self, protocol: Protocol) -> Response {
        let status = self.status();
        let body = self.body_for(protocol);
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        for (name, value) in self.0.headers {
            headers.insert(name, value);
        }
        response
    }
}

/// Whether a body is Anthropic's error shape (`"type": "error"` at the top).
fn is_anthropic_error(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .is_some_and(|v| v.get("type").and_then(|t| t.as_str()) == Some("error"))
}

/// An error answered in Anthropic's shape (the Messages routes' handlers return it).
#[derive(Debug)]
pub struct AnthropicError(pub ApiError);

impl From<ApiError> for AnthropicError {
    fn from(error: ApiError) -> Self {
        AnthropicError(error)
    }
}

impl IntoResponse for AnthropicError {
    fn into_response(self) -> Response {
        self.0.into_response_as(Protocol::Anthropic)
    }
}

impl std::ops::Deref for ApiError {
    type Target = ErrorDetails;

    fn deref(&self) -> &ErrorDetails {
        &self.0
    }
}

impl std::ops::DerefMut for ApiError {
    fn deref_mut(&mut self) -> &mut ErrorDetails {
        &mut self.0
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({:?})", self.message, self.kind)
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.into_response_as(Protocol::OpenAi)
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// Appends the causes of an error to a text (`text: cause: its cause ...`): the top-level
/// messages of client libraries (reqwest, hyper) hide what actually went wrong.
pub fn append_causes(text: &mut String, error: &dyn std::error::Error) {
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_is_the_status_as_a_string() {
        let e = ApiError::invalid("'model' is required", "model");
        let body = e.body_json();
        assert_eq!(body["error"]["code"], "400");
        assert_eq!(body["error"]["param"], "model");
        assert_eq!(body["error"]["type"], "invalid_request_error");
    }

    #[test]
    fn upstream_status_is_kept() {
        let e = ApiError::new(ErrorKind::Upstream(429), "slow down");
        assert_eq!(e.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(e.body_json()["error"]["type"], "rate_limit_error");
    }
}
