//! Operations end to end: `/healthz/deps`, `/metrics`, `check` and `smoke`, and the lifecycle of
//! the real binary (SIGTERM drain, SIGHUP reload, systemd notify, JSON access log).

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::common::*;

const PG_URL: &str = "postgresql://postgres@127.0.0.1:5432/test";
const REDIS_URL: &str = "redis://127.0.0.1:6379";

/// A port nothing listens on (bound, then released).
async fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

/// A TCP server that accepts every connection and never answers: a hanging dependency.
async fn hanging_listener() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    addr
}

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A mock chat model and a mock embedding model named as `EMBEDDING_MODEL` defaults.
fn mock_models(chat: &str) -> String {
    format!(
        r#"
model_list:
  - model_name: {chat}
    litellm_params: {{model: openai/mock, mock_response: "ops answer"}}
    model_info: {{id: {chat}-dep}}
  - model_name: emb-premium
    litellm_params: {{model: openai/emb, mock_response: "x"}}
    model_info: {{mode: embedding}}
"#
    )
}

// ---------------------------------------------------------------------------------------------
// /healthz/deps
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn deps_report_down_dependencies_within_the_bound_and_without_secrets() {
    let pg = hanging_listener().await;
    let qdrant = hanging_listener().await;
    let redis = hanging_listener().await;
    let env = env(&[
        (
            "DATABASE_URL",
            &format!("postgresql://gw:pg-secret-pw-77@{pg}/gw"),
        ),
        (
            "REDIS_URL",
            &format!("redis://:redis-secret-pw-77@{redis}/0"),
        ),
        ("QDRANT_URL", &format!("http://{qdrant}")),
        ("QDRANT_API_KEY", "qdrant-secret-key-77"),
        ("EMBEDDING_MODEL", "emb-ops"),
    ]);
    let gw = TestGateway::start_with_env(&mock_models("ops-deps"), env).await;
    let started = Instant::now();
    // Each probe hangs for its full 2 s bound; run one after the other they would take 6 s.
    let response = tokio::time::timeout(Duration::from_secs(15), gw.get("/healthz/deps"))
        .await
        .expect("/healthz/deps must not hang on a hanging dependency");
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(6),
        "probes run concurrently: {elapsed:?}"
    );
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    for secret in [
        "pg-secret-pw-77",
        "redis-secret-pw-77",
        "qdrant-secret-key-77",
        MASTER,
    ] {
        assert!(!text.contains(secret), "{secret} leaked in {text}");
    }
    let body: Value = serde_json::from_str(&text).unwrap();
    for dep in ["postgres", "redis", "qdrant"] {
        assert_eq!(body[dep], false, "{dep} in {body}");
        assert_eq!(body["configured"][dep], true, "{dep} in {body}");
        assert!(
            body["details"][dep]["error"]
                .as_str()
                .is_some_and(|e| !e.is_empty()),
            "{dep} error in {body}"
        );
    }
    assert_eq!(body["embedding_model"], "emb-ops");
}

#[tokio::test]
async fn deps_report_refused_connections_with_scrubbed_errors() {
    let (pg, redis, qdrant) = (
        closed_port().await,
        closed_port().await,
        closed_port().await,
    );
    let env = env(&[
        (
            "DATABASE_URL",
            &format!("postgresql://gw:pg-secret-pw-88@127.0.0.1:{pg}/gw"),
        ),
        (
            "REDIS_URL",
            &format!("redis://:redis-secret-pw-88@127.0.0.1:{redis}/0"),
        ),
        ("QDRANT_URL", &format!("http://127.0.0.1:{qdrant}")),
        ("QDRANT_API_KEY", "qdrant-secret-key-88"),
    ]);
    let gw = TestGateway::start_with_env(&mock_models("ops-deps2"), env).await;
    let response = gw.client.get(gw.url("/healthz/deps")).send().await.unwrap();
    assert_eq!(response.status(), 200, "no auth needed");
    let text = response.text().await.unwrap();
    for secret in [
        "pg-secret-pw-88",
        "redis-secret-pw-88",
        "qdrant-secret-key-88",
    ] {
        assert!(!text.contains(secret), "{secret} leaked in {text}");
    }
    let body: Value = serde_json::from_str(&text).unwrap();
    for dep in ["postgres", "redis", "qdrant"] {
        assert_eq!(body[dep], false, "{dep} in {body}");
        assert_eq!(body["configured"][dep], true);
    }
}

#[tokio::test]
async fn deps_are_up_with_real_postgres_redis_and_a_qdrant_server() {
    let qdrant = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/healthz"))
        .and(header("api-key", "qdrant-key-ok"))
        .respond_with(ResponseTemplate::new(200).set_body_string("healthz check passed"))
        .expect(1..)
        .mount(&qdrant)
        .await;
    let env = env(&[
        ("DATABASE_URL", PG_URL),
        ("REDIS_URL", REDIS_URL),
        ("QDRANT_URL", &qdrant.uri()),
        ("QDRANT_API_KEY", "qdrant-key-ok"),
    ]);
    let gw = TestGateway::start_with_env(&mock_models("ops-up"), env).await;
    for _ in 0..2 {
        // Twice: the second probe reuses the kept connections.
        let body: Value = gw.get("/healthz/deps").await.json().await.unwrap();
        assert_eq!(body["postgres"], true, "{body}");
        assert_eq!(body["redis"], true, "{body}");
        assert_eq!(body["qdrant"], true, "{body}");
        assert_eq!(body["embedding_model"], "emb-premium");
        assert_eq!(
            body["configured"],
            json!({"postgres": true, "redis": true, "qdrant": true})
        );
        assert!(body["details"]["postgres"]["latency_ms"].as_f64().is_some());
        assert!(body["details"]["redis"]["error"].is_null());
    }
    let metrics = gw.get("/metrics").await.text().await.unwrap();
    for dep in ["postgres", "redis", "qdrant"] {
        assert!(
            metrics.contains(&format!("hx_dependency_up{{dependency=\"{dep}\"}}")),
            "{dep} gauge in {metrics}"
        );
    }
}

#[tokio::test]
async fn unconfigured_dependencies_are_false_and_the_embedded_store_follows_its_status() {
    let gw = TestGateway::start(&mock_models("ops-embedded")).await;
    let body: Value = gw.get("/healthz/deps").await.json().await.unwrap();
    assert_eq!(body["postgres"], false);
    assert_eq!(body["redis"], false);
    assert_eq!(
        body["configured"],
        json!({"postgres": false, "redis": false, "qdrant": true})
    );
    assert_eq!(body["qdrant"], true, "embedded store open by default");
    assert_eq!(body["details"]["qdrant"]["backend"], "embedded");

    gw.state.rag.set_open(false);
    let body: Value = gw.get("/healthz/deps").await.json().await.unwrap();
    assert_eq!(body["qdrant"], false);
    assert_eq!(body["configured"]["qdrant"], true);
}

#[tokio::test]
async fn readiness_is_503_until_ready() {
    let config = hx_gateway::config::GatewayConfig::from_yaml_str(
        &format!("general_settings:\n  master_key: {MASTER}\n"),
        &HashMap::new(),
    )
    .unwrap();
    let state = hx_gateway::gateway::AppState::new(
        config,
        hx_gateway::providers::Upstream::new().unwrap(),
        false,
    )
    .unwrap();
    let app = hx_gateway::server::app(state.clone());
    let addr = serve_app(app).await;
    let url = format!("http://{addr}/health/readiness");
    assert_eq!(reqwest::get(&url).await.unwrap().status(), 503);
    state.set_ready();
    assert_eq!(reqwest::get(&url).await.unwrap().status(), 200);
}

// ---------------------------------------------------------------------------------------------
// /metrics
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn metrics_expose_requests_latencies_and_tokens_with_template_labels() {
    let gw = TestGateway::start(&mock_models("ops-metrics-model")).await;
    let chat =
        json!({"model": "ops-metrics-model", "messages": [{"role": "user", "content": "hi"}]});
    assert_eq!(
        gw.post("/v1/chat/completions", chat.clone()).await.status(),
        200
    );
    let mut streamed = chat.clone();
    streamed["stream"] = json!(true);
    let text = gw
        .post("/v1/chat/completions", streamed)
        .await
        .text()
        .await
        .unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"));
    // Client text in a path must not become a label value.
    let _ = gw.get("/v1/models/ops-free-text-in-path-5150").await;
    let _ = gw.get("/ops-unknown-route-5150").await;

    let response = gw.client.get(gw.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200, "no auth by default");
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let metrics = response.text().await.unwrap();
    let has = |needle: &str| {
        assert!(
            metrics.lines().any(|l| l.contains(needle)),
            "no line with {needle} in\n{metrics}"
        );
    };
    has("hx_requests_total{");
    has("route=\"/v1/chat/completions\"");
    has("model_group=\"ops-metrics-model\"");
    has("deployment=\"ops-metrics-model-dep\"");
    has("route=\"/v1/models/{*model}\"");
    has("route=\"unmatched\"");
    has("hx_request_duration_seconds_bucket{");
    has("hx_upstream_duration_seconds_bucket{model_group=\"ops-metrics-model\"");
    has("hx_gateway_overhead_seconds_bucket{model_group=\"ops-metrics-model\"");
    has("hx_time_to_first_token_seconds_bucket{model_group=\"ops-metrics-model\"");
    has("hx_tokens_total{model_group=\"ops-metrics-model\",kind=\"completion\"}");
    has("# TYPE hx_requests_total counter");
    for leaked in [
        "ops-free-text-in-path-5150",
        "ops-unknown-route-5150",
        MASTER,
    ] {
        assert!(!metrics.contains(leaked), "{leaked} in metrics");
    }
}

#[tokio::test]
async fn metric_helpers_record_under_their_names() {
    let gw = TestGateway::start(&mock_models("ops-helpers")).await;
    hx_gateway::metrics::record_spend("ops-helpers-group", 0.25);
    hx_gateway::metrics::record_spend("ops-helpers-group", 0.5);
    hx_gateway::metrics::record_rate_limit_rejection("key", "rpm");
    hx_gateway::metrics::record_cache_lookup("response", true);
    hx_gateway::metrics::record_rag_operation("search", "ok", Duration::from_millis(3));
    let metrics = gw.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("hx_spend_usd{model_group=\"ops-helpers-group\"} 0.75"),
        "{metrics}"
    );
    for needle in [
        "hx_rate_limit_rejections_total{scope=\"key\",limit=\"rpm\"}",
        "hx_cache_requests_total{cache=\"response\",result=\"hit\"}",
        "hx_rag_operations_total{operation=\"search\",outcome=\"ok\"}",
        "hx_rag_operation_duration_seconds_bucket{operation=\"search\"",
    ] {
        assert!(metrics.contains(needle), "{needle} in {metrics}");
    }
}

#[tokio::test]
async fn metrics_can_require_the_master_key() {
    let yaml = format!(
        "{}\ngeneral_settings:\n  master_key: {MASTER}\n  require_auth_for_metrics_endpoint: true\n",
        mock_models("ops-metrics-auth")
    );
    let gw = TestGateway::start(&yaml).await;
    let anonymous = gw.client.get(gw.url("/metrics")).send().await.unwrap();
    expect_error(anonymous, 401, "auth_error").await;
    let wrong = gw
        .client
        .get(gw.url("/metrics"))
        .bearer_auth("sk-wrong")
        .send()
        .await
        .unwrap();
    expect_error(wrong, 401, "auth_error").await;
    assert_eq!(gw.get("/metrics").await.status(), 200);
}

// ---------------------------------------------------------------------------------------------
// smoke
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn smoke_reports_one_line_per_step() {
    let gw = TestGateway::start(&mock_models("ops-smoke")).await;
    let report = hx_gateway::commands::smoke::run(&gw.url(""), Some(MASTER)).await;
    let names: Vec<&str> = report.steps.iter().map(|s| s.name).collect();
    assert_eq!(
        names,
        [
            "liveliness",
            "deps",
            "models",
            "rag_search_query",
            "embedding",
            "rag_search_vector"
        ]
    );
    for step in ["liveliness", "deps", "models", "embedding"] {
        let s = report.step(step).unwrap();
        assert!(s.passed, "{step}: {}", s.detail);
    }
    assert!(report.step("models").unwrap().detail.contains("ops-smoke"));
    assert!(
        report
            .step("embedding")
            .unwrap()
            .detail
            .contains("3 dimensions")
    );
    let rendered = report.render();
    let lines: Vec<&str> = rendered.lines().collect();
    assert_eq!(lines.len(), report.steps.len() + 1);
    for (line, step) in lines.iter().zip(&report.steps) {
        let word = if step.passed { "PASS" } else { "FAIL" };
        assert!(
            line.starts_with(&format!("{word} {}: ", step.name)),
            "{line}"
        );
    }
    // Whether RAG is served or not, the search steps say so: a route the gateway does not
    // serve is a failure, never a pass.
    let rag = report.step("rag_search_query").unwrap();
    if !rag.passed {
        assert!(!rag.detail.is_empty());
        assert!(!report.passed());
    }
    assert!(!rendered.contains(MASTER));
}

#[tokio::test]
async fn smoke_passes_on_a_fresh_install_where_nothing_was_ingested() {
    let gw = TestGateway::start(&mock_models("ops-smoke-fresh")).await;
    let report = hx_gateway::commands::smoke::run(&gw.url(""), Some(MASTER)).await;
    assert!(report.passed(), "{}", report.render());
    for step in ["rag_search_query", "rag_search_vector"] {
        let detail = &report.step(step).unwrap().detail;
        assert!(
            detail.starts_with("0 hit(s)") && detail.contains("does not exist yet"),
            "{step}: {detail}"
        );
    }
    // Once something is stored, the same steps search it.
    let upsert = gw
        .post(
            "/v1/rag/upsert",
            json!({"documents": [{"text": "hello world, stored"}]}),
        )
        .await;
    assert_eq!(upsert.status(), 200);
    let report = hx_gateway::commands::smoke::run(&gw.url(""), Some(MASTER)).await;
    assert!(report.passed(), "{}", report.render());
    assert_eq!(report.step("rag_search_query").unwrap().detail, "1 hit(s)");
}

#[tokio::test]
async fn smoke_fails_with_a_wrong_key_or_no_gateway() {
    let gw = TestGateway::start(&mock_models("ops-smoke-key")).await;
    let report = hx_gateway::commands::smoke::run(&gw.url(""), Some("sk-not-the-key-4242")).await;
    assert!(report.step("liveliness").unwrap().passed);
    let models = report.step("models").unwrap();
    assert!(!models.passed);
    assert!(models.detail.contains("401"), "{}", models.detail);
    assert!(!report.passed());
    assert!(!report.render().contains("sk-not-the-key-4242"));

    let port = closed_port().await;
    let report =
        hx_gateway::commands::smoke::run(&format!("http://127.0.0.1:{port}"), Some(MASTER)).await;
    let live = report.step("liveliness").unwrap();
    assert!(!live.passed);
    assert!(live.detail.contains("cannot connect"), "{}", live.detail);
    assert!(!report.passed());
}

#[tokio::test]
async fn smoke_fails_only_on_a_configured_dependency_that_is_down() {
    let redis = closed_port().await;
    let env = env(&[(
        "REDIS_URL",
        &format!("redis://:smoke-redis-pw-99@127.0.0.1:{redis}"),
    )]);
    let gw = TestGateway::start_with_env(&mock_models("ops-smoke-down"), env).await;
    let report = hx_gateway::commands::smoke::run(&gw.url(""), Some(MASTER)).await;
    let deps = report.step("deps").unwrap();
    assert!(!deps.passed);
    assert!(deps.detail.contains("redis"), "{}", deps.detail);
    assert!(
        !deps.detail.contains("postgres"),
        "postgres is not configured, so not a failure: {}",
        deps.detail
    );
    assert!(report.step("models").unwrap().passed);
    assert!(!report.passed());
    assert!(!report.render().contains("smoke-redis-pw-99"));

    // The binary: same verdict, non-zero exit.
    // tokio's Command: the in-process gateway must keep serving while the binary runs.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_hx-gateway"))
        .args(["smoke", "--url", &gw.url(""), "--key", MASTER])
        .env_clear()
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(stdout.contains("PASS liveliness: "), "{stdout}");
    assert!(stdout.contains("FAIL deps: "), "{stdout}");
    assert!(stdout.contains("PASS models: "), "{stdout}");
    assert!(!stdout.contains("smoke-redis-pw-99"));
}

// ---------------------------------------------------------------------------------------------
// check
// ---------------------------------------------------------------------------------------------

async fn run_check(dir: &Path, config: &str, vars: &[(&str, &str)]) -> (bool, String) {
    let file = dir.join("config.yaml");
    std::fs::write(&file, config).unwrap();
    // tokio's Command: in-process test servers keep running while the binary runs.
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_hx-gateway"));
    cmd.arg("check")
        .arg("--config")
        .arg(&file)
        .env_clear()
        .env("HX_DATA_DIR", dir.join("data"));
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let out = cmd.output().await.unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test]
async fn check_passes_a_good_config_with_reachable_dependencies() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, text) = run_check(
        dir.path(),
        &mock_models("ops-check"),
        &[
            ("LITELLM_MASTER_KEY", MASTER),
            ("DATABASE_URL", PG_URL),
            ("REDIS_URL", REDIS_URL),
        ],
    )
    .await;
    assert!(ok, "{text}");
    assert!(text.contains("check passed"), "{text}");
    assert!(text.contains("ok: Postgres at "), "{text}");
    assert!(text.contains("ok: Redis at "), "{text}");
    assert!(text.contains("ok: vector store: embedded"), "{text}");
    assert!(!text.contains(MASTER));
}

#[tokio::test]
async fn check_fails_on_unreachable_dependencies_without_printing_passwords() {
    let dir = tempfile::tempdir().unwrap();
    let (pg, redis) = (closed_port().await, closed_port().await);
    let hang = hanging_listener().await;
    let (ok, text) = run_check(
        dir.path(),
        &mock_models("ops-check-down"),
        &[
            ("LITELLM_MASTER_KEY", MASTER),
            (
                "DATABASE_URL",
                &format!("postgresql://gw:check-pg-pw-31@127.0.0.1:{pg}/gw"),
            ),
            (
                "REDIS_URL",
                &format!("redis://:check-redis-pw-31@127.0.0.1:{redis}/0"),
            ),
            ("QDRANT_URL", &format!("http://{hang}")),
            ("QDRANT_API_KEY", "check-qdrant-key-31"),
        ],
    )
    .await;
    assert!(!ok, "{text}");
    assert!(
        text.contains("error: Postgres at postgresql://gw:***@127.0.0.1:"),
        "{text}"
    );
    assert!(
        text.contains("error: Redis at redis://:***@127.0.0.1:"),
        "{text}"
    );
    assert!(text.contains("error: Qdrant at "), "{text}");
    assert!(text.contains("not reachable"), "{text}");
    assert!(text.contains("check failed: 3 problem(s)"), "{text}");
    for secret in [
        "check-pg-pw-31",
        "check-redis-pw-31",
        "check-qdrant-key-31",
        MASTER,
    ] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
}

#[tokio::test]
async fn check_fails_on_a_broken_config_and_a_missing_master_key() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, text) = run_check(dir.path(), "model_list: [unclosed", &[]).await;
    assert!(!ok);
    assert!(text.contains("error: config: "), "{text}");
    let (ok, text) = run_check(dir.path(), &mock_models("ops-check-nokey"), &[]).await;
    assert!(!ok);
    assert!(text.contains("error: no master key"), "{text}");
}

#[tokio::test]
async fn check_probes_each_upstream_and_names_deployments_by_their_place_in_model_list() {
    let listing = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/models"))
        .and(header("authorization", "Bearer sk-upstream-good-77"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": []})))
        .mount(&listing)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/models"))
        .respond_with(
            ResponseTemplate::new(401).set_body_json(json!({"error": {"message": "bad key"}})),
        )
        .mount(&listing)
        .await;
    let closed = closed_port().await;
    let config = format!(
        r#"
model_list:
  - model_name: needs-var
    litellm_params: {{model: openai/a, api_base: os.environ/HX_CHECK_UNSET_BASE_1}}
  - model_name: good
    litellm_params: {{model: openai/b, api_base: "{base}/v1", api_key: sk-upstream-good-77}}
  - model_name: needs-var-too
    litellm_params: {{model: openai/c, api_base: os.environ/HX_CHECK_UNSET_BASE_2}}
  - model_name: wrong-key
    litellm_params: {{model: openai/d, api_base: "{base}/v1", api_key: sk-upstream-bad-77}}
  - model_name: gone
    litellm_params: {{model: openai/e, api_base: "http://127.0.0.1:{closed}/v1"}}
  - model_name: local
    litellm_params: {{model: openai/f, mock_response: "hi"}}
"#,
        base = listing.uri()
    );
    let dir = tempfile::tempdir().unwrap();
    let (ok, text) = run_check(dir.path(), &config, &[("LITELLM_MASTER_KEY", MASTER)]).await;
    assert!(!ok, "{text}");
    // Disabled for an unset variable: a warning naming the variable, numbered by its entry.
    assert!(
        text.contains("warning: deployment #1 (model_list[0], model 'needs-var') is disabled: environment variable HX_CHECK_UNSET_BASE_1 is not set"),
        "{text}"
    );
    assert!(
        text.contains("warning: deployment #3 (model_list[2], model 'needs-var-too') is disabled"),
        "{text}"
    );
    assert!(
        text.contains("ok: deployment #2 (model_list[1], model 'good'): upstream reachable"),
        "{text}"
    );
    assert!(
        text.contains("error: deployment #4 (model_list[3], model 'wrong-key'): the upstream at")
            && text.contains("refused the deployment's key (HTTP 401)"),
        "{text}"
    );
    assert!(
        text.contains(
            "error: deployment #5 (model_list[4], model 'gone'): upstream http://127.0.0.1:"
        ) && text.contains("is not reachable"),
        "{text}"
    );
    assert!(
        !text.contains("model 'local'"),
        "in-process models are not probed: {text}"
    );
    assert!(text.contains("check failed: 2 problem(s)"), "{text}");
    for secret in ["sk-upstream-good-77", "sk-upstream-bad-77", MASTER] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
}

#[tokio::test]
async fn check_warns_about_the_development_key_on_a_reachable_address() {
    let dir = tempfile::tempdir().unwrap();
    let dev = "sk-hx-dev-1234";
    let (ok, text) = run_check(
        dir.path(),
        &mock_models("ops-check-dev"),
        &[("LITELLM_MASTER_KEY", dev)],
    )
    .await;
    assert!(ok, "a warning, not a failure: {text}");
    assert!(
        text.contains("warning: the master key is the development key")
            && text.contains("listens on 0.0.0.0"),
        "{text}"
    );
    let (ok, text) = run_check(
        dir.path(),
        &mock_models("ops-check-dev"),
        &[("LITELLM_MASTER_KEY", dev), ("HOST", "127.0.0.1")],
    )
    .await;
    assert!(ok, "{text}");
    assert!(
        !text.contains("warning: the master key is the development key"),
        "{text}"
    );
    let (_, text) = run_check(
        dir.path(),
        &mock_models("ops-check-dev"),
        &[("LITELLM_MASTER_KEY", MASTER)],
    )
    .await;
    assert!(!text.contains("development key"), "{text}");
}

#[tokio::test]
async fn a_disabled_model_answers_503_saying_why() {
    let config = format!(
        "{}  - model_name: ops-needs-var\n    litellm_params: {{model: openai/x, api_base: os.environ/HX_OPS_UNSET_BASE_9}}\n",
        mock_models("ops-disabled")
    );
    let gw = TestGateway::start(&config).await;
    let chat = json!({"model": "ops-needs-var", "messages": [{"role": "user", "content": "hi"}]});
    let error = expect_error(
        gw.post("/v1/chat/completions", chat).await,
        503,
        "service_unavailable",
    )
    .await;
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("The model 'ops-needs-var' is disabled")
            && message.contains("deployment #3 (model_list[2]) is disabled")
            && message.contains("HX_OPS_UNSET_BASE_9 is not set"),
        "{message}"
    );
    assert_eq!(error["param"], "model");
    let error = expect_error(
        gw.get("/v1/models/ops-needs-var").await,
        503,
        "service_unavailable",
    )
    .await;
    assert!(error["message"].as_str().unwrap().contains("is disabled"));
    // A name that is not configured at all stays a 404.
    let chat =
        json!({"model": "ops-never-configured", "messages": [{"role": "user", "content": "hi"}]});
    expect_error(
        gw.post("/v1/chat/completions", chat).await,
        404,
        "not_found_error",
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// The binary's lifecycle
// ---------------------------------------------------------------------------------------------

/// The real binary serving on a free port, its stderr in a file; killed when dropped.
struct GatewayProcess {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
    config: PathBuf,
    log: PathBuf,
}

impl GatewayProcess {
    async fn spawn(config: &str, extra_env: &[(&str, &str)]) -> Self {
        Self::spawn_with_args(config, extra_env, &[]).await
    }

    async fn spawn_with_args(config: &str, extra_env: &[(&str, &str)], args: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("config.yaml");
        std::fs::write(&config_path, config).unwrap();
        let log = dir.path().join("stderr.log");
        let port = closed_port().await;
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hx-gateway"));
        // Two server threads whatever the machine's cores: the threaded server is the one
        // under test (drain, reload), as in production on a multi-core host.
        let workers: &[&str] = if args.iter().any(|a| a.starts_with("--num_workers")) {
            &[]
        } else {
            &["--num_workers", "2"]
        };
        cmd.args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .arg("--config")
            .arg(&config_path)
            .args(args)
            .args(workers)
            .env_clear()
            .env("LITELLM_MASTER_KEY", MASTER)
            .env("HX_DATA_DIR", dir.path().join("data"))
            .env("JSON_LOGS", "true")
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(&log).unwrap()));
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().unwrap();
        let process = GatewayProcess {
            child,
            port,
            dir,
            config: config_path,
            log,
        };
        process.wait_ready().await;
        process
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = reqwest::Client::new();
        while Instant::now() < deadline {
            if let Ok(r) = client.get(self.url("/health/readiness")).send().await
                && r.status() == 200
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("gateway not ready; log:\n{}", self.log_text());
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn wait_log(&self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.log_text().contains(needle) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no '{needle}' in the log:\n{}", self.log_text());
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn write_config(&self, text: &str) {
        // Written whole then renamed, as an operator's editor or deploy tool would.
        let tmp = self.dir.path().join("config.yaml.new");
        let mut f = std::fs::File::create(&tmp).unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f.sync_all().unwrap();
        std::fs::rename(&tmp, &self.config).unwrap();
    }

    async fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("gateway did not exit; log:\n{}", self.log_text());
    }

    async fn model_ids(&self) -> Vec<String> {
        let body: Value = reqwest::Client::new()
            .get(self.url("/v1/models"))
            .bearer_auth(MASTER)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_string())
            .collect()
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn sigterm_lets_a_stream_in_flight_finish_refuses_new_connections_and_exits_0() {
    let upstream = held_stream_upstream(false).await;
    let config = format!(
        r#"
model_list:
  - model_name: ops-held
    litellm_params: {{model: openai/held, api_base: "http://{}/v1", api_key: sk-up}}
"#,
        upstream.addr
    );
    let mut gw = GatewayProcess::spawn(&config, &[]).await;
    let client = reqwest::Client::new();
    let response = client
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(MASTER)
        .json(&json!({"model": "ops-held", "stream": true,
            "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut stream = response.bytes_stream();
    let first = stream.next().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("first"));

    gw.signal("TERM");
    // The listener closes while the stream is still open.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let refused = tokio::net::TcpStream::connect(("127.0.0.1", gw.port))
            .await
            .is_err();
        if refused {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still accepting after SIGTERM; log:\n{}",
            gw.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        gw.child.try_wait().unwrap().is_none(),
        "the process waits for the stream"
    );

    upstream.release.notify_one();
    let mut rest = String::new();
    while let Some(chunk) = stream.next().await {
        rest.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
    }
    assert!(rest.contains("second"), "{rest}");
    assert!(rest.ends_with("data: [DONE]\n\n"), "{rest}");
    let status = gw.wait_exit(Duration::from_secs(20)).await;
    assert_eq!(status.code(), Some(0), "log:\n{}", gw.log_text());

    // The JSON access log has the stream's line, with its durations, and never the key.
    let log = gw.log_text();
    let line: Value = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["message"] == "request" && v["route"] == "/v1/chat/completions")
        .unwrap_or_else(|| panic!("no access line in\n{log}"));
    assert_eq!(line["streamed"], true, "{line}");
    assert_eq!(line["status"], 200);
    assert_eq!(line["model"], "ops-held");
    assert!(line["duration_ms"].as_f64().unwrap() >= line["ttfb_ms"].as_f64().unwrap());
    assert!(line["request_id"].as_str().is_some_and(|id| !id.is_empty()));
    assert!(!log.contains(MASTER));
    assert!(!log.contains("sk-up"));
}

#[tokio::test]
async fn sighup_reloads_the_model_list_while_requests_keep_succeeding() {
    let config_a = format!("{}\n", mock_models("ops-reload-a"));
    let gw = GatewayProcess::spawn(&config_a, &[]).await;
    assert!(gw.model_ids().await.contains(&"ops-reload-a".to_string()));

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut workers = Vec::new();
    for _ in 0..4 {
        let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
        let url = gw.url("/v1/chat/completions");
        workers.push(tokio::spawn(async move {
            // One keep-alive client per worker: a reload must not drop its connection.
            let client = reqwest::Client::new();
            while !stop.load(Ordering::SeqCst) {
                let r = client
                    .post(&url)
                    .bearer_auth(MASTER)
                    .json(&json!({"model": "ops-reload-a",
                        "messages": [{"role": "user", "content": "hi"}]}))
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == 200 => {
                        ok.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(r) => failed
                        .lock()
                        .unwrap()
                        .push(format!("status {}", r.status())),
                    Err(e) => failed.lock().unwrap().push(e.to_string()),
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let config_b = format!(
        "{}  - model_name: ops-reload-b\n    litellm_params: {{model: openai/mock, mock_response: b}}\n",
        mock_models("ops-reload-a")
    );
    gw.write_config(&config_b);
    gw.signal("HUP");
    gw.wait_log("config reloaded").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !gw.model_ids().await.contains(&"ops-reload-b".to_string()) {
        assert!(Instant::now() < deadline, "ops-reload-b never appeared");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // More reloads under load.
    for _ in 0..3 {
        gw.signal("HUP");
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.await.unwrap();
    }
    let failures = failed.lock().unwrap().clone();
    assert!(
        failures.is_empty(),
        "requests failed during reload: {failures:?}"
    );
    assert!(ok.load(Ordering::SeqCst) > 0);
    let ids = gw.model_ids().await;
    assert!(ids.contains(&"ops-reload-a".to_string()) && ids.contains(&"ops-reload-b".to_string()));
}

#[tokio::test]
async fn a_broken_config_on_reload_changes_nothing() {
    let gw = GatewayProcess::spawn(&mock_models("ops-keep"), &[]).await;
    gw.write_config("model_list: [unclosed\n  - model_name: ops-new");
    gw.signal("HUP");
    gw.wait_log("config reload refused").await;
    let ids = gw.model_ids().await;
    assert!(ids.contains(&"ops-keep".to_string()), "{ids:?}");
    assert!(!ids.iter().any(|m| m == "ops-new"));
    let r = reqwest::Client::new()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(MASTER)
        .json(&json!({"model": "ops-keep", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // A config that parses but is invalid (bad routing strategy) is refused too, with its path.
    gw.write_config(&format!(
        "{}router_settings:\n  routing_strategy: fastest-please\n",
        mock_models("ops-new")
    ));
    gw.signal("HUP");
    gw.wait_log("router_settings.routing_strategy").await;
    let ids = gw.model_ids().await;
    assert!(ids.contains(&"ops-keep".to_string()), "{ids:?}");
    assert!(!ids.iter().any(|m| m == "ops-new"), "{ids:?}");
}

#[tokio::test]
async fn systemd_notify_reports_ready_reloading_and_stopping() {
    let sock_dir = tempfile::tempdir().unwrap();
    let sock_path = sock_dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&sock_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut gw = GatewayProcess::spawn(
        &mock_models("ops-notify"),
        &[("NOTIFY_SOCKET", sock_path.to_str().unwrap())],
    )
    .await;
    let recv = |socket: &UnixDatagram| {
        let mut buf = [0u8; 512];
        let n = socket.recv(&mut buf).expect("a notify message");
        String::from_utf8_lossy(&buf[..n]).to_string()
    };
    assert!(recv(&socket).contains("READY=1"));
    gw.signal("HUP");
    assert!(recv(&socket).contains("RELOADING=1"));
    assert!(recv(&socket).contains("READY=1"));
    gw.signal("TERM");
    assert!(recv(&socket).contains("STOPPING=1"));
    let status = gw.wait_exit(Duration::from_secs(20)).await;
    assert_eq!(status.code(), Some(0));
}

#[tokio::test]
async fn shutdown_tasks_run_once() {
    let gw = TestGateway::start(&mock_models("ops-shutdown")).await;
    let runs = Arc::new(AtomicUsize::new(0));
    for _ in 0..2 {
        let runs = runs.clone();
        gw.state.on_shutdown(async move {
            runs.fetch_add(1, Ordering::SeqCst);
        });
    }
    gw.state.run_shutdown_tasks().await;
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    gw.state.run_shutdown_tasks().await;
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn sigterm_cuts_a_stream_longer_than_the_grace_period_and_still_exits_0() {
    let upstream = held_stream_upstream(true).await;
    let config = format!(
        r#"
model_list:
  - model_name: ops-endless
    litellm_params: {{model: openai/held, api_base: "http://{}/v1", api_key: sk-up}}
"#,
        upstream.addr
    );
    let mut gw = GatewayProcess::spawn_with_args(&config, &[], &["--graceful-timeout", "1"]).await;
    let response = reqwest::Client::new()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(MASTER)
        .json(&json!({"model": "ops-endless", "stream": true,
            "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    let mut stream = response.bytes_stream();
    assert!(stream.next().await.is_some());
    gw.signal("TERM");
    let status = gw.wait_exit(Duration::from_secs(20)).await;
    assert_eq!(status.code(), Some(0), "log:\n{}", gw.log_text());
    assert!(gw.log_text().contains("grace period over"));
}

/// Every way a database URL carries a password, each with its own marker.
fn database_url_forms(pg: u16) -> Vec<(String, &'static str)> {
    vec![
        (
            format!("postgresql://gw:userinfo-pw-41@127.0.0.1:{pg}/gw"),
            "userinfo-pw-41",
        ),
        (
            format!("postgresql://gw@127.0.0.1:{pg}/gw?sslmode=disable&password=query-pw-42"),
            "query-pw-42",
        ),
        (
            format!("host=127.0.0.1 port={pg} user=gw password=dsn-pw-43 dbname=gw"),
            "dsn-pw-43",
        ),
        (
            format!("host=127.0.0.1 port={pg} password = 'dsn quoted pw-44' dbname=gw"),
            "pw-44",
        ),
    ]
}

#[tokio::test]
async fn no_form_of_database_password_reaches_check_or_the_logs() {
    let pg = closed_port().await;
    for (url, secret) in database_url_forms(pg) {
        let dir = tempfile::tempdir().unwrap();
        let (ok, text) = run_check(
            dir.path(),
            &mock_models("ops-redact"),
            &[("LITELLM_MASTER_KEY", MASTER), ("DATABASE_URL", &url)],
        )
        .await;
        assert!(!ok, "{text}");
        assert!(text.contains("***"), "the URL is not shown at all: {text}");
        assert!(!text.contains(secret), "{secret} in check: {text}");

        // The gateway itself: whatever it logs while it cannot reach (or parse) the URL.
        let config = dir.path().join("config.yaml");
        let port = free_port();
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_hx-gateway"))
            .arg("--config")
            .arg(&config)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .env_clear()
            .env("HX_DATA_DIR", dir.path().join("data"))
            .env("LITELLM_MASTER_KEY", MASTER)
            .env("DATABASE_URL", &url)
            .env("RUST_LOG", "debug")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut child = child;
        let text = Arc::new(std::sync::Mutex::new(String::new()));
        let mut readers = Vec::new();
        let pipes: [Box<dyn tokio::io::AsyncRead + Unpin + Send>; 2] = [
            Box::new(child.stdout.take().unwrap()),
            Box::new(child.stderr.take().unwrap()),
        ];
        for pipe in pipes {
            let text = text.clone();
            readers.push(tokio::spawn(async move {
                use tokio::io::AsyncBufReadExt;
                let mut lines = tokio::io::BufReader::new(pipe).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let mut t = text.lock().unwrap();
                    t.push_str(&line);
                    t.push('\n');
                }
            }));
        }
        // Until the key store's connection failure is reported (or the process exits on a
        // URL it cannot use).
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if text.lock().unwrap().contains("key store") || child.try_wait().unwrap().is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = child.start_kill();
        let _ = child.wait().await;
        for reader in readers {
            let _ = reader.await;
        }
        let text = text.lock().unwrap().clone();
        assert!(text.contains("***"), "the URL is never logged: {text}");
        assert!(!text.contains(secret), "{secret} in the logs: {text}");
    }
}
