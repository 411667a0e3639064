//! Routing under fault injection: deployments that refuse connections, fail a few times,
//! hang, or break off mid-stream. Each test asserts which deployment served
//! (`x-litellm-model-id`), how many attempts each upstream saw, and the attempt headers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Body;
use axum::response::Response;
use axum::routing::post;
use serde_json::{Value, json};

use crate::common::*;

/// What a scripted upstream does with one request.
#[derive(Clone, Debug)]
enum Step {
    /// 200: a chat completion, or an SSE stream when the request asked for one.
    Ok,
    /// An OpenAI-shaped error with this status.
    Status(u16),
    /// 429 with `retry-after: <seconds>`.
    RateLimited(u64),
    /// 400 with OpenAI's context-length error.
    ContextTooLong,
    /// Never answers.
    Hang,
    /// Stream headers and one chunk, then the connection breaks.
    StreamThenBreak,
    /// Stream headers and one chunk, then silence.
    StreamThenStall,
    /// Stream headers, then silence before any chunk.
    HeadersThenStall,
}

/// A scripted OpenAI-compatible upstream that counts the requests it saw.
struct Upstream {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
}

impl Upstream {
    /// Serves `script` in order, then `then` for every later request. Answers carry `name`
    /// as their content so a test can tell who answered.
    async fn start(name: &'static str, script: &[Step], then: Step) -> Self {
        let hits = Arc::new(AtomicUsize::new(0));
        let script: Arc<Vec<Step>> = Arc::new(script.to_vec());
        let counter = hits.clone();
        let app = axum::Router::new().route(
            "/v1/chat/completions",
            post(move |Json(body): Json<Value>| {
                let n = counter.fetch_add(1, Ordering::SeqCst);
                let step = script.get(n).cloned().unwrap_or_else(|| then.clone());
                let stream = body["stream"].as_bool().unwrap_or(false);
                answer(name, step, stream)
            }),
        );
        Upstream {
            addr: serve_app(app).await,
            hits,
        }
    }

    fn base(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// An `api_base` where nothing listens: connections are refused.
fn refused_base() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}/v1")
}

fn error_body(message: &str, kind: &str, code: &str) -> String {
    json!({"error": {"message": message, "type": kind, "param": null, "code": code}}).to_string()
}

fn json_response(status: u16, body: String) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap()
}

fn sse_response(body: Body) -> Response {
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(body)
        .unwrap()
}

async fn answer(name: &'static str, step: Step, stream: bool) -> Response {
    match step {
        Step::Ok if stream => {
            let text = format!("{}data: [DONE]\n\n", sse_chunk(name));
            sse_response(Body::from(text))
        }
        Step::Ok => json_response(
            200,
            json!({
                "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "up",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": name}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
            })
            .to_string(),
        ),
        Step::Status(status) => json_response(
            status,
            error_body(&format!("{name} failed"), "server_error", &status.to_string()),
        ),
        Step::RateLimited(seconds) => {
            let mut r = json_response(
                429,
                error_body("slow down", "requests", "rate_limit_exceeded"),
            );
            r.headers_mut()
                .insert("retry-after", seconds.to_string().parse().unwrap());
            r
        }
        Step::ContextTooLong => json_response(
            400,
            error_body(
                "This model's maximum context length is 8192 tokens.",
                "invalid_request_error",
                "context_length_exceeded",
            ),
        ),
        Step::Hang => {
            futures::future::pending::<()>().await;
            unreachable!()
        }
        Step::StreamThenBreak => {
            // The break comes a little later so the first chunk is surely on the wire.
            let items: Vec<Result<String, std::io::Error>> = vec![
                Ok(sse_chunk(name)),
                Err(std::io::Error::other("upstream died")),
            ];
            let paced = futures::StreamExt::then(futures::stream::iter(items), |item| async {
                if item.is_err() {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                item
            });
            sse_response(Body::from_stream(paced))
        }
        Step::StreamThenStall => {
            let first = futures::stream::iter([Ok::<_, std::io::Error>(sse_chunk(name))]);
            sse_response(Body::from_stream(
                futures::StreamExt::chain(first, futures::stream::pending()),
            ))
        }
        Step::HeadersThenStall => sse_response(Body::from_stream(futures::stream::pending::<
            Result<String, std::io::Error>,
        >())),
    }
}

/// One `model_list` entry: `(group, id, api_base, extra litellm_params)`.
fn deployments(entries: &[(&str, &str, &str, &str)]) -> String {
    let mut yaml = String::from("model_list:\n");
    for (group, id, base, extra) in entries {
        let extra = if extra.is_empty() {
            String::new()
        } else {
            format!(", {extra}")
        };
        yaml.push_str(&format!(
            "  - model_name: {group}\n    litellm_params: {{model: openai/m, api_base: \"{base}\"{extra}}}\n    model_info: {{id: {id}}}\n"
        ));
    }
    yaml
}

fn chat(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hi"}]})
}

fn header(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .unwrap_or_else(|| panic!("missing header {name}"))
        .to_str()
        .unwrap()
        .to_string()
}

fn served_by(r: &reqwest::Response) -> String {
    header(r, "x-litellm-model-id")
}

fn retries(r: &reqwest::Response) -> u32 {
    header(r, "x-litellm-attempted-retries").parse().unwrap()
}

fn fallbacks(r: &reqwest::Response) -> u32 {
    header(r, "x-litellm-attempted-fallbacks").parse().unwrap()
}

async fn content(r: reqwest::Response) -> String {
    let body: Value = r.json().await.unwrap();
    body["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn a_group_with_a_dead_deployment_answers_every_request() {
    let healthy = Upstream::start("healthy", &[], Step::Ok).await;
    let yaml = format!(
        "{}router_settings: {{num_retries: 2, cooldown_time: 60}}\n",
        deployments(&[
            ("g", "dead", &refused_base(), ""),
            ("g", "healthy", &healthy.base(), ""),
        ])
    );
    let gw = TestGateway::start(&yaml).await;
    let mut total_retries = 0;
    for _ in 0..50 {
        let r = gw.post("/v1/chat/completions", chat("g")).await;
        assert_eq!(r.status(), 200);
        assert_eq!(served_by(&r), "healthy");
        assert_eq!(fallbacks(&r), 0);
        let n = retries(&r);
        assert!(n <= 1, "a retry goes straight to the healthy deployment");
        total_retries += n;
        assert_eq!(content(r).await, "healthy");
    }
    assert_eq!(healthy.hits(), 50);
    // The dead deployment is tried until it fails more than `allowed_fails` (default 3)
    // times, then skipped for the rest of the test (cooldown 60 s).
    assert_eq!(total_retries, 4);
}

#[tokio::test]
async fn five_hundred_twice_then_ok_is_retried_up_to_num_retries() {
    let flaky = Upstream::start("flaky", &[Step::Status(500), Step::Status(500)], Step::Ok).await;
    let yaml = format!(
        "{}router_settings: {{num_retries: 2}}\n",
        deployments(&[("g", "flaky", &flaky.base(), "")])
    );
    let gw = TestGateway::start(&yaml).await;
    let r = gw.post("/v1/chat/completions", chat("g")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(served_by(&r), "flaky");
    assert_eq!(retries(&r), 2);
    assert_eq!(flaky.hits(), 3);

    // `litellm_settings.num_retries: 1` allows one retry only: the second 500 is the answer.
    let flaky = Upstream::start("flaky", &[Step::Status(500), Step::Status(500)], Step::Ok).await;
    let yaml = format!(
        "{}litellm_settings: {{num_retries: 1}}\n",
        deployments(&[("g", "flaky", &flaky.base(), "")])
    );
    let gw = TestGateway::start(&yaml).await;
    let r = gw.post("/v1/chat/completions", chat("g")).await;
    assert_eq!(retries(&r), 1);
    assert_eq!(fallbacks(&r), 0);
    expect_error(r, 500, "server_error").await;
    assert_eq!(flaky.hits(), 2);

    // A deployment's own `max_retries` wins over the router's `num_retries`.
    let flaky = Upstream::start("flaky", &[Step::Status(500), Step::Status(500)], Step::Ok).await;
    let yaml = format!(
        "{}router_settings: {{num_retries: 2}}\n",
        deployments(&[("g", "flaky", &flaky.base(), "max_retries: 0")])
    );
    let gw = TestGateway::start(&yaml).await;
    let r = gw.post("/v1/chat/completions", chat("g")).await;
    assert_eq!(r.status(), 500);
    assert_eq!(retries(&r), 0);
    assert_eq!(flaky.hits(), 1);
}

#[tokio::test]
async fn a_retry_goes_to_the_other_deployment() {
    let failing = Upstream::start("failing", &[], Step::Status(503)).await;
    let healthy = Upstream::start("healthy", &[], Step::Ok).await;
    let yaml = format!(
        "{}router_settings: {{num_retries: 1, allowed_fails: 1000}}\n",
        deployments(&[
            ("g", "failing", &failing.base(), ""),
            ("g", "healthy", &healthy.base(), ""),
        ])
    );
    let gw = TestGateway::start(&yaml).await;
    let mut total_retries = 0;
    for _ in 0..30 {
        let r = gw.post("/v1/chat/completions", chat("g")).await;
        assert_eq!(r.status(), 200);
        assert_eq!(served_by(&r), "healthy");
        total_retries += retries(&r) as usize;
    }
    // Every failure was followed by exactly one attempt on the other deployment.
    assert_eq!(failing.hits(), total_retries);
    assert_eq!(healthy.hits(), 30);
    assert!(
        total_retries > 0,
        "simple-shuffle picked the failing one sometimes"
    );
}

#[tokio::test]
async fn only_connection_errors_timeouts_408_429_and_5xx_are_retried() {
    let mut cases = Vec::new();
    for (status, retried) in [
        (400, false),
        (401, false),
        (403, false),
        (404, false),
        (422, false),
        (408, true),
        (429, true),
        (500, true),
        (502, true),
        (503, true),
    ] {
        let a = Upstream::start("a", &[], Step::Status(status)).await;
        let b = Upstream::start("b", &[], Step::Status(status)).await;
        cases.push((status, retried, a, b));
    }
    let mut entries = Vec::new();
    let names: Vec<(String, String, String)> = cases
        .iter()
        .map(|(s, _, a, b)| (format!("s{s}"), a.base(), b.base()))
        .collect();
    for (group, a, b) in &names {
        entries.push((group.as_str(), "a", a.as_str(), ""));
        entries.push((group.as_str(), "b", b.as_str(), ""));
    }
    let yaml = format!(
        "{}router_settings: {{num_retries: 1}}\n",
        deployments(&entries)
    );
    let gw = TestGateway::start(&yaml).await;
    for (status, retried, a, b) in &cases {
        let r = gw
            .post("/v1/chat/completions", chat(&format!("s{status}")))
            .await;
        assert_eq!(r.status().as_u16(), *status);
        assert_eq!(retries(&r), u32::from(*retried), "status {status}");
        let expected = if *retried { (1, 1) } else { (1, 0) };
        let mut seen = [a.hits(), b.hits()];
        seen.sort_unstable_by(|x, y| y.cmp(x));
        assert_eq!((seen[0], seen[1]), expected, "status {status}");
    }
}

#[tokio::test]
async fn an_upstream_retry_after_is_honoured_before_retrying_the_same_deployment() {
    let limited = Upstream::start("limited", &[Step::RateLimited(1)], Step::Ok).await;
    let yaml = format!(
        "{}router_settings: {{num_retries: 1}}\n",
        deployments(&[("g", "limited", &limited.base(), "")])
    );
    let gw = TestGateway::start(&yaml).await;
    let started = Instant::now();
    let r = gw.post("/v1/chat/completions", chat("g")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(retries(&r), 1);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited {:?}",
        started.elapsed()
    );
    assert_eq!(limited.hits(), 2);
}

#[tokio::test]
async fn a_hanging_deployment_times_out_and_the_retry_goes_elsewhere() {
    let hang = Upstream::start("hang", &[], Step::Hang).await;
    let healthy = Upstream::start("healthy", &[], Step::Ok).await;
    let yaml = format!(
        "{}router_settings: {{num_retries: 1, allowed_fails: 1000}}\nlitellm_settings: {{request_timeout: 0.3}}\n",
        deployments(&[
            // Per-deployment `timeout`.
            ("g", "hang", &hang.base(), "timeout: 0.3, order: 1"),
            ("g", "healthy", &healthy.base(), "order: 2"),
            // `request_timeout` from litellm_settings.
            ("alone", "hang-alone", &hang.base(), ""),
        ])
    );
    let gw = TestGateway::start(&yaml).await;
    let r = gw.post("/v1/chat/completions", chat("g")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(served_by(&r), "healthy");
    assert_eq!(retries(&r), 1);
    assert_eq!((hang.hits(), healthy.hits()), (1, 1));

    let r = gw.post("/v1/chat/completions", chat("alone")).await;
    assert_eq!(retries(&r), 1);
    let e = expect_error(r, 504, "timeout_error").await;
    assert!(
        e["message"].as_str().unwrap().contains("'alone'"),
        "names the model: {e}"
    );
    assert_eq!(hang.hits(), 3);
}

#[tokio::test]
async fn router_timeout_bounds_each_attempt() {
    let hang = Upstream::start("hang", &[], Step::Hang).await;
    let yaml = format!(
        "{}router_settings: {{num_retries: 0, timeout: 0.3}}\n",
        deployments(&[("g", "hang", &hang.base(), "")])
    );
    let gw = TestGateway::start(&yaml).await;
    let r = gw.post("/v1/chat/completions", chat("g")).await;
    assert_eq!(retries(&r), 0);
    expect_error(r, 504, "timeout_error").await;
    assert_eq!(hang.hits(), 1);
}

fn stream_chat(model: &str) -> Value {
    let mut body = chat(model);
    body["stream"] = json!(true);
    body
}

#[tokio::test]
async fn a_stream_failing_before_its_first_byte_is_retried() {
    let broken = Upstream::start("broken", &[], Step::Status(500)).await;
    let silent = Upstream::start("silent", &[], Step::HeadersThenStall).await;
    let healthy = Upstream::start("healthy", &[], Step::Ok).await;
    let yaml = format!(
        "{}router_settings: {{num_retries: 2, allowed_fails: 1000, stream_timeout: 0.3}}\n",
        deployments(&[
            ("g", "broken", &broken.base(), "order: 1"),
            ("g", "silent", &silent.base(), "order: 2"),
            ("g", "healthy", &healthy.base(), "order: 3"),
        ])
    );
    let gw = TestGateway::start(&yaml).await;
    let r = gw.post("/v1/chat/completions", stream_chat("g")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(served_by(&r), "healthy");
    assert_eq!(retries(&r), 2);
    let text = r.text().await.unwrap();
    assert!(text.contains("\"healthy\""), "{text}");
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    assert_eq!((broken.hits(), silent.hits(), healthy.hits()), (1, 1, 1));
}

/// The SSE events of a body, without the `data: ` prefix.
fn events(text: &str) -> Vec<&str> {
    text.split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| e.strip_prefix("data: ").unwrap_or(e))
        .collect()
}

#[tokio::test]
async fn a_stream_failing_after_its_first_byte_ends_with_an_error_event() {
    let dying = Upstream::start("dying", &[], Step::StreamThenBreak).await;
    let healthy = Upstream::start("healthy", &[], Step::Ok).await;
    let yaml = format!(
        "{}router_settings: {{num_retries: 2, allowed_fails: 1000}}\n",
        deployments(&[
            ("g", "dying", &dying.base(), "order: 1"),
            ("g", "healthy", &healthy.base(), "order: 2"),
        ])
    );
    let gw = TestGateway::start(&yaml).await;
    let r = gw.post("/v1/chat/completions", stream_chat("g")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(served_by(&r), "dying");
    assert_eq!(retries(&r), 0);
    let text = r.text().await.unwrap();
    let events = events(&text);
    assert_eq!(events.len(), 2, "{text}");
    let first: Value = serde_json::from_str(events[0]).unwrap();
    assert_eq!(first["choices"][0]["delta"]["content"], "dying");
    let error: Value = serde_json::from_str(events[1]).unwrap();
    assert!(error["error"]["message"].as_str().is_some(), "{text}");
    assert!(error["error"]["type"].as_str().is_some(), "{text}");
    assert!(!text.contains("[DONE]"), "{text}");
    // Nothing is retried once the client has bytes.
    assert_eq!((dying.hits(), healthy.hits()), (1, 0));
}

#[tokio::test]
async fn stream_timeout_bounds_the_wait_between_chunks() {
    let stalling = Upstream::start("stalling", &[], Step::StreamThenStall).await;
    let yaml = deployments(&[("g", "stalling", &stalling.base(), "stream_timeout: 0.3")]);
    let gw = TestGateway::start(&yaml).await;
    let r = gw.post("/v1/chat/completions", stream_chat("g")).await;
    assert_eq!(r.status(), 200);
    let text = tokio::time::timeout(Duration::from_secs(10), r.text())
        .await
        .expect("the stream ends by itself")
        .unwrap();
    let events = events(&text);
    assert_eq!(events.len(), 2, "{text}");
    let error: Value = serde_json::from_str(events[1]).unwrap();
    assert_eq!(error["error"]["type"], "timeout_error", "{text}");
    assert!(!text.contains("[DONE]"), "{text}");
    assert_eq!(stalling.hits(), 1);
}

#[tokio::test]
async fn fallbacks_are_tried_in_order_once_retries_are_spent() {
    let primary = Upstream::start("primary", &[], Step::Status(500)).await;
    let broken = Upstream::start("broken", &[], Step::Status(502)).await;
    let backup = Upstream::start("backup", &[], Step::Ok).await;
    let yaml = format!(
        "{}router_settings: {{num_retries: 1, allowed_fails: 1000, retry_after: 0}}\nlitellm_settings: {{fallbacks: [{{primary: [missing, broken, backup]}}]}}\n",
        deployments(&[
            ("primary", "primary-1", &primary.base(), ""),
            ("broken", "broken-1", &broken.base(), ""),
            ("backup", "backup-1", &backup.base(), ""),
        ])
    );
    let gw = TestGateway::start(&yaml).await;
    let r = gw.post("/v1/chat/completions", chat("primary")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(served_by(&r), "backup-1");
    assert_eq!(header(&r, "x-litellm-model-group"), "backup");
    // `missing` is not a group: skipped, not counted.
    assert_eq!(fallbacks(&r), 2);
    assert_eq!(retries(&r), 2);
    assert_eq!(content(r).await, "backup");
    assert_eq!((primary.hits(), broken.hits(), backup.hits()), (2, 2, 1));
}

#[tokio::test]
async fn context_length_errors_go_to_context_window_fallbacks_only() {
    let small = Upstream::start("small", &[], Step::ContextTooLong).await;
    let bad = Upstream::start("bad", &[], Step::Status(400)).await;
    let big = Upstream::start("big", &[], Step::Ok).await;
    let backup = Upstream::start("backup", &[], Step::Ok).await;
    let yaml = format!(
        "{}router_settings:\n  num_retries: 2\n  fallbacks: [{{small: [backup]}}, {{bad: [backup]}}]\n  context_window_fallbacks: [{{small: [big]}}]\n",
        deployments(&[
            ("small", "small-1", &small.base(), ""),
            ("bad", "bad-1", &bad.base(), ""),
            ("big", "big-1", &big.base(), ""),
            ("backup", "backup-1", &backup.base(), ""),
        ])
    );
    let gw = TestGateway::start(&yaml).await;
    let r = gw.post("/v1/chat/completions", chat("small")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(served_by(&r), "big-1");
    assert_eq!((retries(&r), fallbacks(&r)), (0, 1));
    assert_eq!((small.hits(), big.hits(), backup.hits()), (1, 1, 0));

    // Any other 400 is the client's mistake: no retry, no fallback.
    let r = gw.post("/v1/chat/completions", chat("bad")).await;
    assert_eq!((retries(&r), fallbacks(&r)), (0, 0));
    expect_error(r, 400, "server_error").await;
    assert_eq!((bad.hits(), backup.hits()), (1, 0));
}

#[tokio::test]
async fn default_and_request_fallbacks() {
    let down = Upstream::start("down", &[], Step::Status(503)).await;
    let spare = Upstream::start("spare", &[], Step::Ok).await;
    let chosen = Upstream::start("chosen", &[], Step::Ok).await;
    let yaml = format!(
        "{}router_settings: {{num_retries: 0, allowed_fails: 1000, default_fallbacks: [spare]}}\n",
        deployments(&[
            ("down", "down-1", &down.base(), ""),
            ("spare", "spare-1", &spare.base(), ""),
            ("chosen", "chosen-1", &chosen.base(), ""),
        ])
    );
    let gw = TestGateway::start(&yaml).await;
    let r = gw.post("/v1/chat/completions", chat("down")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(served_by(&r), "spare-1");
    assert_eq!((retries(&r), fallbacks(&r)), (0, 1));

    // The request's own list replaces the configured ones.
    let mut body = chat("down");
    body["fallbacks"] = json!(["chosen"]);
    let r = gw.post("/v1/chat/completions", body).await;
    assert_eq!(r.status(), 200);
    assert_eq!(served_by(&r), "chosen-1");
    assert_eq!(fallbacks(&r), 1);
    assert_eq!((down.hits(), spare.hits(), chosen.hits()), (2, 1, 1));
}

#[tokio::test]
async fn when_every_fallback_fails_the_client_sees_its_own_model_error() {
    let down = Upstream::start("down", &[], Step::Status(503)).await;
    let broken = Upstream::start("broken", &[], Step::Status(500)).await;
    let yaml = format!(
        "{}router_settings: {{num_retries: 0, fallbacks: [{{down: [broken]}}]}}\n",
        deployments(&[
            ("down", "down-1", &down.base(), ""),
            ("broken", "broken-1", &broken.base(), ""),
        ])
    );
    let gw = TestGateway::start(&yaml).await;
    let r = gw.post("/v1/chat/completions", chat("down")).await;
    assert_eq!((retries(&r), fallbacks(&r)), (0, 1));
    let e = expect_error(r, 503, "server_error").await;
    assert_eq!(e["message"], "down failed");
    assert_eq!((down.hits(), broken.hits()), (1, 1));
}

#[tokio::test]
async fn a_failing_deployment_cools_down_then_is_tried_again() {
    let flaky = Upstream::start("flaky", &[Step::Status(500), Step::Status(500)], Step::Ok).await;
    let healthy = Upstream::start("healthy", &[], Step::Ok).await;
    let yaml = format!(
        "{}router_settings: {{num_retries: 1, allowed_fails: 1, cooldown_time: 2}}\n",
        deployments(&[
            ("g", "flaky", &flaky.base(), "order: 1"),
            ("g", "healthy", &healthy.base(), "order: 2"),
        ])
    );
    let gw = TestGateway::start(&yaml).await;
    // Two failures (more than allowed_fails: 1) put the flaky one in cooldown.
    for _ in 0..2 {
        let r = gw.post("/v1/chat/completions", chat("g")).await;
        assert_eq!(served_by(&r), "healthy");
        assert_eq!(retries(&r), 1);
    }
    // While cooling it is skipped: no attempt, no retry.
    for _ in 0..3 {
        let r = gw.post("/v1/chat/completions", chat("g")).await;
        assert_eq!(served_by(&r), "healthy");
        assert_eq!(retries(&r), 0);
    }
    assert_eq!(flaky.hits(), 2);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    // After `cooldown_time` it is the order-1 choice again, and now it answers.
    let r = gw.post("/v1/chat/completions", chat("g")).await;
    assert_eq!(served_by(&r), "flaky");
    assert_eq!(retries(&r), 0);
    assert_eq!((flaky.hits(), healthy.hits()), (3, 5));
}

#[tokio::test]
async fn a_group_whose_deployments_all_cool_down_answers_429_with_retry_after() {
    let a = Upstream::start("a", &[], Step::Status(500)).await;
    let b = Upstream::start("b", &[], Step::Status(500)).await;
    let yaml = format!(
        "{}router_settings: {{num_retries: 1, allowed_fails: 0, cooldown_time: 30}}\n",
        deployments(&[("pool", "a", &a.base(), ""), ("pool", "b", &b.base(), ""),])
    );
    let gw = TestGateway::start(&yaml).await;
    let r = gw.post("/v1/chat/completions", chat("pool")).await;
    assert_eq!(r.status(), 500);
    assert_eq!(retries(&r), 1);
    assert_eq!((a.hits(), b.hits()), (1, 1));
    let r = gw.post("/v1/chat/completions", chat("pool")).await;
    let retry_after: u64 = header(&r, "retry-after").parse().unwrap();
    assert!((1..=30).contains(&retry_after), "retry-after {retry_after}");
    let e = expect_error(r, 429, "rate_limit_error").await;
    assert!(
        e["message"].as_str().unwrap().contains("'pool'"),
        "names the group: {e}"
    );
    assert_eq!(
        (a.hits(), b.hits()),
        (1, 1),
        "no upstream call while cooling"
    );
}

#[tokio::test]
async fn concurrent_requests_to_a_group_with_a_dead_deployment_all_succeed() {
    let healthy = Upstream::start("healthy", &[], Step::Ok).await;
    let yaml = deployments(&[
        ("g", "dead", &refused_base(), ""),
        ("g", "healthy", &healthy.base(), ""),
    ]);
    let gw = TestGateway::start(&yaml).await;
    let requests = (0..50).map(|i| {
        let body = if i % 2 == 0 {
            chat("g")
        } else {
            stream_chat("g")
        };
        gw.post("/v1/chat/completions", body)
    });
    for r in futures::future::join_all(requests).await {
        assert_eq!(r.status(), 200);
        assert_eq!(served_by(&r), "healthy");
        let text = r.text().await.unwrap();
        assert!(
            text.contains("healthy") && !text.contains("\"error\""),
            "{text}"
        );
    }
    assert_eq!(healthy.hits(), 50);
}

#[tokio::test]
async fn stream_timeout_bounds_the_wait_for_the_response_headers() {
    let hang = Upstream::start("hang", &[], Step::Hang).await;
    let yaml = format!(
        "{}router_settings: {{num_retries: 0, stream_timeout: 0.3}}\n",
        deployments(&[("g", "hang", &hang.base(), "")])
    );
    let gw = TestGateway::start(&yaml).await;
    let r = tokio::time::timeout(
        Duration::from_secs(10),
        gw.post("/v1/chat/completions", stream_chat("g")),
    )
    .await
    .expect("stream_timeout applies, not the 600 s request timeout");
    let e = expect_error(r, 504, "timeout_error").await;
    assert!(e["message"].as_str().unwrap().contains("'g'"), "{e}");
    assert_eq!(hang.hits(), 1);
}

#[tokio::test]
async fn least_busy_sends_requests_away_from_a_deployment_with_an_open_stream() {
    let held = held_stream_upstream(false).await;
    let free = Upstream::start("free", &[], Step::Ok).await;
    let yaml = format!(
        "{}router_settings: {{routing_strategy: least-busy}}\n",
        deployments(&[
            ("g", "held", &format!("http://{}/v1", held.addr), ""),
            ("g", "free", &free.base(), ""),
        ])
    );
    let gw = TestGateway::start(&yaml).await;
    // Ties are split at random: stream until one stays open on the held deployment.
    let mut open = None;
    for _ in 0..64 {
        let r = gw.post("/v1/chat/completions", stream_chat("g")).await;
        assert_eq!(r.status(), 200);
        if served_by(&r) == "held" {
            open = Some(r);
            break;
        }
        r.text().await.unwrap();
    }
    let open = open.expect("the held deployment was picked at least once in 64 ties");
    for _ in 0..20 {
        let r = gw.post("/v1/chat/completions", chat("g")).await;
        assert_eq!(served_by(&r), "free", "one request is in flight on 'held'");
    }
    assert_eq!(held.requests.load(Ordering::SeqCst), 1);
    held.release.notify_one();
    let text = open.text().await.unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
}
