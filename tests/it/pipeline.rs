//! The request pipeline with the cache and limits in place: hits skip the upstream and cost
//! nothing, cached answers replay as SSE, limits answer 429 with rate-limit headers.

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::common::*;

fn completion() -> Value {
    json!({
        "id": "chatcmpl-up", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "cached words here"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
    })
}

async fn gateway(upstream: &MockServer, extra: &str) -> TestGateway {
    TestGateway::start(&format!(
        r#"
model_list:
  - model_name: m
    litellm_params: {{model: openai/m, api_base: "{}/v1"}}
    model_info: {{input_cost_per_token: 0.001, output_cost_per_token: 0.002}}
  - model_name: emb
    litellm_params: {{model: openai/e, api_base: "{}/v1"}}
{extra}
"#,
        upstream.uri(),
        upstream.uri()
    ))
    .await
}

/// The sum of every `hx_cache_hits_total` series in a `/metrics` page.
fn cache_hits(metrics: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("hx_cache_hits_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn each_cached_answer_counts_once_in_the_cache_hit_total() {
    let upstream = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(completion()))
        .expect(1)
        .mount(&upstream)
        .await;
    let gw = gateway(
        &upstream,
        "litellm_settings:\n  cache: true\n  cache_params: {type: local, namespace: hits}\n",
    )
    .await;
    // Read as a delta: under `cargo test` other tests of this process record hits too.
    let before = cache_hits(&gw.get("/metrics").await.text().await.unwrap());
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "count me once"}]});
    assert_eq!(
        gw.post("/v1/chat/completions", body.clone()).await.status(),
        200
    );
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    for _ in 0..2 {
        let hit = gw.post("/v1/chat/completions", body.clone()).await;
        assert!(hit.headers().contains_key("x-litellm-cache-key"), "a hit");
    }
    let metrics = gw.get("/metrics").await.text().await.unwrap();
    assert_eq!(
        cache_hits(&metrics) - before,
        2.0,
        "two hits, each once:\n{metrics}"
    );
    assert!(
        metrics.contains("hx_cache_hits_total{model_group=\"m\"}"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_cached_chat_answer_skips_the_upstream_and_replays_as_sse() {
    let upstream = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(completion()))
        .expect(2)
        .mount(&upstream)
        .await;
    let gw = gateway(
        &upstream,
        "litellm_settings:\n  cache: true\n  cache_params: {type: local, namespace: t1}\n",
    )
    .await;
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "same question"}]});
    let first = gw.post("/v1/chat/completions", body.clone()).await;
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["x-litellm-response-cost"], "0.011");
    assert_eq!(first.json::<Value>().await.unwrap(), completion());
    // The store happens off the request path, right after the answer.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let r = gw.post("/v1/chat/completions", body.clone()).await;
    let hit = r.headers().contains_key("x-litellm-cache-key").then_some(r);
    let hit = hit.expect("second identical request is a cache hit");
    assert_eq!(hit.headers()["x-litellm-response-cost"], "0");
    assert_eq!(hit.json::<Value>().await.unwrap(), completion());
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let r = gw.post("/v1/chat/completions", streamed).await;
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let text = r.text().await.unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    let content: String = text
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str::<Value>(d).unwrap())
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    assert_eq!(content, "cached words here");
    // `no-cache` skips the lookup: this one reaches the upstream.
    let other = json!({"model": "m", "messages": [{"role": "user", "content": "same question"}], "cache": {"no-cache": true}});
    let _ = gw.post("/v1/chat/completions", other).await;
    assert_eq!(upstream.received_requests().await.unwrap().len(), 2);
}

#[tokio::test]
async fn global_parallel_limit_answers_429_with_headers() {
    let upstream = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(completion())
                .set_delay(std::time::Duration::from_millis(500)),
        )
        .mount(&upstream)
        .await;
    let gw = gateway(
        &upstream,
        &format!("general_settings:\n  master_key: {MASTER}\n  global_max_parallel_requests: 1\n"),
    )
    .await;
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "x"}]});
    let (a, b) = tokio::join!(gw.post("/v1/chat/completions", body.clone()), async {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        gw.post("/v1/chat/completions", body.clone()).await
    });
    assert_eq!(a.status(), 200);
    assert!(b.headers().contains_key("retry-after"));
    let e = expect_error(b, 429, "rate_limit_error").await;
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("max_parallel_requests"),
        "{e}"
    );
}

#[tokio::test]
async fn deployment_rpm_is_a_hard_limit_only_when_enforced() {
    let group = |enforce: bool| {
        format!(
            "model_list:\n  - model_name: m\n    litellm_params: {{model: openai/m, mock_response: a, rpm: 2}}\n    model_info: {{id: dep-a-{enforce}-{}}}\n  - model_name: m\n    litellm_params: {{model: openai/m, mock_response: b, rpm: 1}}\n    model_info: {{id: dep-b-{enforce}-{}}}\n{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple(),
            if enforce {
                "router_settings:\n  optional_pre_call_checks: [enforce_model_rate_limits]\n"
            } else {
                ""
            }
        )
    };
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "x"}]});
    let gw = TestGateway::start(&group(true)).await;
    let mut served = Vec::new();
    for _ in 0..3 {
        let r = gw.post("/v1/chat/completions", body.clone()).await;
        assert_eq!(r.status(), 200);
        served.push(
            r.headers()["x-litellm-model-id"]
                .to_str()
                .unwrap()
                .to_string(),
        );
    }
    let a = served.iter().filter(|id| id.starts_with("dep-a")).count();
    assert_eq!(a, 2, "each deployment serves exactly its rpm: {served:?}");
    let r = gw.post("/v1/chat/completions", body.clone()).await;
    let e = expect_error(r, 429, "rate_limit_error").await;
    assert!(e["message"].as_str().unwrap().contains("deployment"), "{e}");

    let gw = TestGateway::start(&group(false)).await;
    for _ in 0..5 {
        assert_eq!(
            gw.post("/v1/chat/completions", body.clone()).await.status(),
            200,
            "rpm only steers routing"
        );
    }
}
