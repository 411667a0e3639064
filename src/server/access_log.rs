//! The access log and request metrics: one line per request (request id, route template, model
//! group, deployment, status, durations, key alias; never the key), written when the response
//! is complete: at once for JSON, at the stream's last byte for SSE.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderMap, HeaderName, Method};
use axum::middleware::Next;
use axum::response::Response;
use futures::StreamExt;

use super::REQUEST_ID;
use crate::caller::Caller;
use crate::proxy::{MODEL_GROUP, MODEL_ID, OVERHEAD};

/// Who made a request, for the access log. Handlers that know the caller put it in the
/// response's extensions (`response.extensions_mut().insert(RequestLogInfo { .. })`); the key
/// itself never goes in.
#[derive(Debug, Clone, Default)]
pub struct RequestLogInfo {
    /// The virtual key's `key_alias` (`master` for the master key).
    pub key_alias: Option<String>,
    pub team_id: Option<String>,
    pub user_id: Option<String>,
    /// The answer came from the response cache.
    pub cache_hit: Option<bool>,
}

impl RequestLogInfo {
    /// What the access log says about the caller (alias, team, user; never the key).
    pub fn of(caller: &Caller) -> Self {
        let mut info = RequestLogInfo {
            key_alias: Some(caller.label().to_string()),
            ..Default::default()
        };
        if let Caller::Key(key) = caller {
            info.team_id = key.team_id.clone();
            info.user_id = key.user_id.clone();
        }
        info
    }
}

/// Everything of one request the line and the metrics need, collected before the body is sent.
struct AccessLine {
    started: Instant,
    request_id: String,
    method: Method,
    route: String,
    model: String,
    deployment: String,
    status: u16,
    /// Time to the response headers.
    headers_time: Duration,
    overhead_ms: Option<f64>,
    streamed: bool,
    info: RequestLogInfo,
}

impl AccessLine {
    fn emit(self) {
        let total = self.started.elapsed();
        let ms = |d: Duration| (d.as_secs_f64() * 1_000_000.0).round() / 1000.0;
        // The proxy reports its own overhead; until the headers everything else was upstream.
        let upstream_ms = self
            .overhead_ms
            .map(|o| (ms(self.headers_time) - o).max(0.0));
        tracing::info!(
            target: "hx_gateway::access",
            request_id = %self.request_id,
            method = %self.method,
            route = %self.route,
            model = %self.model,
            deployment = %self.deployment,
            status = self.status,
            duration_ms = ms(total),
            ttfb_ms = ms(self.headers_time),
            upstream_ms,
            overhead_ms = self.overhead_ms,
            streamed = self.streamed,
            key_alias = self.info.key_alias.as_deref(),
            team_id = self.info.team_id.as_deref(),
            user_id = self.info.user_id.as_deref(),
            cache_hit = self.info.cache_hit,
            "request"
        );
        crate::metrics::record_request(
            &self.route,
            &self.model,
            &self.deployment,
            self.status,
            total,
        );
    }
}

/// Emits the line when dropped: the body of a stream is dropped after its last byte was
/// written, or when the client went away.
struct EmitOnDrop(Option<AccessLine>);

impl Drop for EmitOnDrop {
    fn drop(&mut self) {
        if let Some(line) = self.0.take() {
            line.emit();
        }
    }
}

// By `HeaderName`, not by text: a lookup by `&str` parses and validates the name first.
fn header_text(headers: &HeaderMap, name: &HeaderName) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

/// The middleware: one log line and the request metrics per request.
pub async fn log_request(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    // The route template (`/v1/models/{*model}`), never the raw URI: bounded label values and
    // no client text in logs' route field.
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let request_id = header_text(request.headers(), &REQUEST_ID);
    let response = next.run(request).await;
    let headers = response.headers();
    let streamed = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("text/event-stream"));
    let line = AccessLine {
        started,
        request_id,
        method,
        route,
        model: header_text(headers, &MODEL_GROUP),
        deployment: header_text(headers, &MODEL_ID),
        status: response.status().as_u16(),
        headers_time: started.elapsed(),
        overhead_ms: header_text(headers, &OVERHEAD).parse::<f64>().ok(),
        streamed,
        info: response
            .extensions()
            .get::<RequestLogInfo>()
            .cloned()
            .unwrap_or_default(),
    };
    if !streamed {
        line.emit();
        return response;
    }
    let (parts, body) = response.into_parts();
    let guard = EmitOnDrop(Some(line));
    let body = body.into_data_stream().map(move |chunk| {
        // The closure owns the guard, so the line is written when the stream is dropped.
        let _ = &guard;
        chunk
    });
    Response::from_parts(parts, Body::from_stream(body))
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;
    use crate::log::format::capture::Captured;

    #[tokio::test]
    async fn the_line_carries_the_key_alias_and_durations_but_never_the_key() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_writer(move || writer.clone())
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);

        let app = Router::new()
            .route(
                "/items/{id}",
                get(|| async {
                    let mut response = Response::new(Body::from("ok"));
                    response.extensions_mut().insert(RequestLogInfo {
                        key_alias: Some("team-a-key".into()),
                        ..Default::default()
                    });
                    response
                        .headers_mut()
                        .insert("x-litellm-overhead-duration-ms", "1.5".parse().unwrap());
                    response
                }),
            )
            .layer(axum::middleware::from_fn(log_request));
        let request = Request::builder()
            .uri("/items/secret-looking-id?token=abc")
            .header("authorization", "Bearer sk-never-logged-1234")
            .header("x-request-id", "req-77")
            .body(Body::empty())
            .unwrap();
        let response = app.oneshot(request).await.unwrap();
        assert_eq!(response.status(), 200);

        let text = String::from_utf8(captured.0.lock().clone()).unwrap();
        let line: serde_json::Value = text
            .lines()
            .find_map(|l| serde_json::from_str(l).ok())
            .expect("one JSON line");
        assert_eq!(line["message"], "request");
        assert_eq!(line["route"], "/items/{id}");
        assert_eq!(line["request_id"], "req-77");
        assert_eq!(line["key_alias"], "team-a-key");
        assert_eq!(line["status"], 200);
        assert_eq!(line["overhead_ms"], 1.5);
        assert!(line["duration_ms"].as_f64().is_some());
        assert!(!text.contains("sk-never-logged-1234"));
        assert!(!text.contains("secret-looking-id"));
    }
}
