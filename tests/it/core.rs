//! The gateway core end to end: routes, auth, errors, pass-through, streaming.

use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};
use wiremock::matchers::{body_partial_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::common::*;

fn chat_body(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hi"}]})
}

fn openai_completion() -> Value {
    json!({
        "id": "chatcmpl-up", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini-2024",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "from upstream"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
        "system_fingerprint": "fp_x"
    })
}

fn upstream_yaml(base: &str) -> String {
    format!(
        r#"
model_list:
  - model_name: gpt-4o-mini
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: {base}/v1
      api_key: sk-upstream-secret
    model_info: {{id: dep-1}}
  - model_name: meta-llama/Llama-3-8B
    litellm_params:
      model: hosted_vllm/meta-llama/Llama-3-8B-Instruct
      api_base: {base}/v1
  - model_name: emb
    litellm_params:
      model: openai/text-embedding-3-small
      api_base: {base}/v1
    model_info: {{mode: embedding}}
  - model_name: mock
    litellm_params:
      model: openai/mock
      mock_response: "mocked answer here"
"#
    )
}

#[tokio::test]
async fn chat_is_forwarded_with_model_rewritten_and_unknown_fields_kept() {
    let upstream = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(header("authorization", "Bearer sk-upstream-secret"))
        .and(body_partial_json(
            json!({"model": "gpt-4o-mini", "custom_field": {"x": 1}, "temperature": 0.3}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(openai_completion()))
        .expect(1)
        .mount(&upstream)
        .await;
    let gw = TestGateway::start(&upstream_yaml(&upstream.uri())).await;
    let mut body = chat_body("gpt-4o-mini");
    body["custom_field"] = json!({"x": 1});
    body["temperature"] = json!(0.3);
    let response = gw.post("/v1/chat/completions", body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-litellm-model-id"], "dep-1");
    assert!(
        response
            .headers()
            .contains_key("x-litellm-overhead-duration-ms")
    );
    assert!(response.headers().contains_key("x-request-id"));
    let json: Value = response.json().await.unwrap();
    assert_eq!(json, openai_completion());
}

#[tokio::test]
async fn every_route_also_answers_without_the_v1_prefix() {
    let upstream = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(openai_completion()))
        .mount(&upstream)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/completions"))
        .and(body_partial_json(
            json!({"model": "meta-llama/Llama-3-8B-Instruct", "prompt": "say"}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "cmpl-1", "object": "text_completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "text": "ok", "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})))
        .mount(&upstream)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/embeddings"))
        .and(body_partial_json(
            json!({"model": "text-embedding-3-small", "input": ["a", "b"]}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "object": "list", "model": "text-embedding-3-small",
            "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]},
                     {"object": "embedding", "index": 1, "embedding": [0.3, 0.4]}],
            "usage": {"prompt_tokens": 2, "total_tokens": 2}})))
        .mount(&upstream)
        .await;
    let gw = TestGateway::start(&upstream_yaml(&upstream.uri())).await;
    for prefix in ["/v1", ""] {
        let r = gw
            .post(
                &format!("{prefix}/chat/completions"),
                chat_body("gpt-4o-mini"),
            )
            .await;
        assert_eq!(r.status(), 200, "{prefix}/chat/completions");
        let r = gw
            .post(
                &format!("{prefix}/completions"),
                json!({"model": "meta-llama/Llama-3-8B", "prompt": "say"}),
            )
            .await;
        assert_eq!(r.status(), 200, "{prefix}/completions");
        assert_eq!(r.json::<Value>().await.unwrap()["choices"][0]["text"], "ok");
        let r = gw
            .post(
                &format!("{prefix}/embeddings"),
                json!({"model": "emb", "input": ["a", "b"]}),
            )
            .await;
        assert_eq!(r.status(), 200, "{prefix}/embeddings");
        assert_eq!(
            r.json::<Value>().await.unwrap()["data"][1]["embedding"],
            json!([0.3, 0.4])
        );
        let r = gw.get(&format!("{prefix}/models")).await;
        assert_eq!(r.status(), 200);
        let list: Value = r.json().await.unwrap();
        assert_eq!(list["object"], "list");
        let ids: Vec<&str> = list["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap())
            .collect();
        assert_eq!(
            ids,
            vec!["gpt-4o-mini", "meta-llama/Llama-3-8B", "emb", "mock"]
        );
        let r = gw
            .get(&format!("{prefix}/models/meta-llama/Llama-3-8B"))
            .await;
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.json::<Value>().await.unwrap()["id"],
            "meta-llama/Llama-3-8B"
        );
        let r = gw.get(&format!("{prefix}/models/nope")).await;
        expect_error(r, 404, "not_found_error").await;
    }
    for probe in [
        "/health/liveliness",
        "/health/liveness",
        "/health/readiness",
    ] {
        let r = gw.client.get(gw.url(probe)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{probe} needs no key");
    }
}

#[tokio::test]
async fn mock_response_answers_locally_streamed_or_not() {
    let gw = TestGateway::start(&upstream_yaml("http://127.0.0.1:9")).await;
    let r = gw.post("/v1/chat/completions", chat_body("mock")).await;
    assert_eq!(r.status(), 200);
    let json: Value = r.json().await.unwrap();
    assert_eq!(
        json["choices"][0]["message"]["content"],
        "mocked answer here"
    );
    assert!(json["usage"]["total_tokens"].as_u64().unwrap() > 0);

    let mut body = chat_body("mock");
    body["stream"] = json!(true);
    let r = gw.post("/v1/chat/completions", body).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let text = r.text().await.unwrap();
    let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
    assert_eq!(*events.last().unwrap(), "data: [DONE]");
    let content: String = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str::<Value>(e.strip_prefix("data: ").unwrap()).unwrap())
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    assert_eq!(content, "mocked answer here");
    assert!(
        !text.contains("\"usage\":{"),
        "usage chunk only when asked: {text}"
    );

    let mut body = chat_body("mock");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let text = gw
        .post("/v1/chat/completions", body)
        .await
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("\"usage\":{"),
        "usage chunk when asked: {text}"
    );
}

#[tokio::test]
async fn auth_failures_are_401_in_openai_shape() {
    let gw = TestGateway::start(&upstream_yaml("http://127.0.0.1:9")).await;
    let url = gw.url("/v1/chat/completions");
    let r = gw
        .client
        .post(&url)
        .json(&chat_body("mock"))
        .send()
        .await
        .unwrap();
    expect_error(r, 401, "auth_error").await;
    let r = gw
        .client
        .post(&url)
        .bearer_auth("sk-wrong")
        .json(&chat_body("mock"))
        .send()
        .await
        .unwrap();
    expect_error(r, 401, "auth_error").await;
    let r = gw.client.get(gw.url("/v1/models")).send().await.unwrap();
    expect_error(r, 401, "auth_error").await;
    // Each accepted header form works.
    for (name, value) in [
        ("authorization", format!("Bearer {MASTER}")),
        ("x-api-key", MASTER.to_string()),
        ("api-key", MASTER.to_string()),
    ] {
        let r = gw
            .client
            .post(&url)
            .header(name, value)
            .json(&chat_body("mock"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{name}");
    }
}

#[tokio::test]
async fn bad_input_is_a_clear_400_413_or_404() {
    let gw = TestGateway::start(&format!(
        "{}\ngeneral_settings:\n  master_key: {MASTER}\n  max_request_size_mb: 0.01\n",
        upstream_yaml("http://127.0.0.1:9")
    ))
    .await;
    let url = gw.url("/v1/chat/completions");
    let send_raw = |body: &'static str| {
        gw.client
            .post(&url)
            .bearer_auth(MASTER)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let e = expect_error(
        send_raw("{not json").await.unwrap(),
        400,
        "invalid_request_error",
    )
    .await;
    assert_eq!(e["param"], "body");
    let e = expect_error(send_raw("").await.unwrap(), 400, "invalid_request_error").await;
    assert_eq!(e["param"], "body");
    let e = expect_error(
        send_raw("[1,2]").await.unwrap(),
        400,
        "invalid_request_error",
    )
    .await;
    assert_eq!(e["param"], "body");
    let e = expect_error(
        gw.post("/v1/chat/completions", json!({"messages": []}))
            .await,
        400,
        "invalid_request_error",
    )
    .await;
    assert_eq!(e["param"], "model");
    let e = expect_error(
        gw.post("/v1/chat/completions", json!({"model": 5, "messages": []}))
            .await,
        400,
        "invalid_request_error",
    )
    .await;
    assert_eq!(e["param"], "model");
    let e = expect_error(
        gw.post("/v1/chat/completions", json!({"model": "mock"}))
            .await,
        400,
        "invalid_request_error",
    )
    .await;
    assert_eq!(e["param"], "messages");
    let e = expect_error(
        gw.post(
            "/v1/chat/completions",
            json!({"model": "mock", "messages": "hi"}),
        )
        .await,
        400,
        "invalid_request_error",
    )
    .await;
    assert_eq!(e["param"], "messages");
    let e = expect_error(
        gw.post("/v1/chat/completions", json!({"model": "mock", "messages": [{"role": "user", "content": "x"}], "stream": "yes"})).await,
        400,
        "invalid_request_error",
    )
    .await;
    assert_eq!(e["param"], "stream");
    let e = expect_error(
        gw.post("/v1/embeddings", json!({"model": "emb"})).await,
        400,
        "invalid_request_error",
    )
    .await;
    assert_eq!(e["param"], "input");
    let e = expect_error(
        gw.post("/v1/completions", json!({"model": "mock"})).await,
        400,
        "invalid_request_error",
    )
    .await;
    assert_eq!(e["param"], "prompt");
    let e = expect_error(
        gw.post("/v1/chat/completions", chat_body("no-such-model"))
            .await,
        404,
        "not_found_error",
    )
    .await;
    assert!(e["message"].as_str().unwrap().contains("no-such-model"));
    let big = "x".repeat(20_000);
    let r = gw
        .post(
            "/v1/chat/completions",
            json!({"model": "mock", "messages": [{"role": "user", "content": big}]}),
        )
        .await;
    expect_error(r, 413, "invalid_request_error").await;
    let r = gw
        .client
        .get(gw.url("/v1/nothing/here"))
        .bearer_auth(MASTER)
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not_found_error").await;
    let r = gw
        .client
        .get(gw.url("/v1/chat/completions"))
        .bearer_auth(MASTER)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "405");
}

#[tokio::test]
async fn upstream_errors_keep_their_status_and_shape() {
    let upstream = MockServer::start().await;
    let openai_429 = json!({"error": {"message": "Rate limit reached", "type": "requests", "param": null, "code": "rate_limit_exceeded"}});
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(429).set_body_json(openai_429.clone()))
        .mount(&upstream)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/embeddings"))
        .respond_with(ResponseTemplate::new(500).set_body_string("internal upstream failure"))
        .mount(&upstream)
        .await;
    let gw = TestGateway::start(&upstream_yaml(&upstream.uri())).await;
    let r = gw
        .post("/v1/chat/completions", chat_body("gpt-4o-mini"))
        .await;
    assert_eq!(r.status(), 429);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        openai_429,
        "OpenAI-shaped errors pass verbatim"
    );
    let r = gw
        .post("/v1/embeddings", json!({"model": "emb", "input": "x"}))
        .await;
    let e = expect_error(r, 500, "api_error").await;
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("internal upstream failure")
    );
}

#[tokio::test]
async fn unreachable_upstream_is_502_and_slow_one_504() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let slow = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(openai_completion())
                .set_delay(Duration::from_secs(5)),
        )
        .mount(&slow)
        .await;
    let yaml = format!(
        r#"
model_list:
  - model_name: down
    litellm_params: {{model: openai/x, api_base: "http://{closed}/v1", api_key: sk-upstream-secret}}
  - model_name: slow
    litellm_params: {{model: openai/x, api_base: "{}/v1", timeout: 0.3}}
"#,
        slow.uri()
    );
    let gw = TestGateway::start(&yaml).await;
    let r = gw.post("/v1/chat/completions", chat_body("down")).await;
    let e = expect_error(r, 502, "api_connection_error").await;
    assert!(
        !e["message"]
            .as_str()
            .unwrap()
            .contains("sk-upstream-secret")
    );
    let r = gw.post("/v1/chat/completions", chat_body("slow")).await;
    let e = expect_error(r, 504, "timeout_error").await;
    assert!(
        e["message"].as_str().unwrap().contains("slow"),
        "names the model: {e}"
    );
}

#[tokio::test]
async fn streaming_forwards_each_chunk_without_buffering() {
    let upstream = held_stream_upstream(false).await;
    let gw = TestGateway::start(&format!(
        "model_list:\n  - model_name: s\n    litellm_params: {{model: openai/s, api_base: 'http://{}/v1'}}\n",
        upstream.addr
    ))
    .await;
    let mut body = chat_body("s");
    body["stream"] = json!(true);
    let response = gw.post("/v1/chat/completions", body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut stream = response.bytes_stream();
    // The upstream holds back everything after its first chunk until released, so the first
    // chunk can only arrive here if the gateway forwarded it without waiting for more.
    let first = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("first chunk arrives while the upstream holds the rest")
        .unwrap()
        .unwrap();
    let first = String::from_utf8(first.to_vec()).unwrap();
    assert!(
        first.starts_with("data: ") && first.contains("first"),
        "{first}"
    );
    assert!(!first.contains("second"));
    upstream.release.notify_one();
    let mut rest = String::new();
    while let Some(chunk) = stream.next().await {
        rest.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
    }
    assert!(rest.contains("second"), "{rest}");
    assert!(rest.ends_with("data: [DONE]\n\n"), "{rest}");
}

#[tokio::test]
async fn a_client_that_disconnects_cancels_the_upstream_request() {
    let upstream = held_stream_upstream(true).await;
    let gw = TestGateway::start(&format!(
        "model_list:\n  - model_name: s\n    litellm_params: {{model: openai/s, api_base: 'http://{}/v1'}}\n",
        upstream.addr
    ))
    .await;
    let mut body = chat_body("s");
    body["stream"] = json!(true);
    let response = gw.post("/v1/chat/completions", body).await;
    let mut stream = response.bytes_stream();
    let _ = stream.next().await.unwrap().unwrap();
    assert!(!upstream.closed.load(Ordering::SeqCst));
    drop(stream);
    let mut waited = 0;
    while !upstream.closed.load(Ordering::SeqCst) && waited < 100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += 1;
    }
    assert!(
        upstream.closed.load(Ordering::SeqCst),
        "upstream connection closed after the client left"
    );
}

#[tokio::test]
async fn stream_usage_is_requested_upstream_and_removed_unless_asked() {
    let upstream = MockServer::start().await;
    let sse = format!(
        "{}data: {}\n\ndata: [DONE]\n\n",
        sse_chunk("hello"),
        json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [],
               "usage": {"prompt_tokens": 4, "completion_tokens": 1, "total_tokens": 5}})
    );
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(body_partial_json(
            json!({"stream": true, "stream_options": {"include_usage": true}}),
        ))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "text/event-stream")
                .set_body_string(sse),
        )
        .expect(2)
        .mount(&upstream)
        .await;
    let gw = TestGateway::start(&upstream_yaml(&upstream.uri())).await;
    let mut body = chat_body("gpt-4o-mini");
    body["stream"] = json!(true);
    let text = gw
        .post("/v1/chat/completions", body.clone())
        .await
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("hello") && !text.contains("\"usage\""),
        "{text}"
    );
    body["stream_options"] = json!({"include_usage": true});
    let text = gw
        .post("/v1/chat/completions", body)
        .await
        .text()
        .await
        .unwrap();
    assert!(text.contains("\"total_tokens\":5"), "{text}");
    assert!(text.ends_with("data: [DONE]\n\n"));
}

#[tokio::test]
async fn request_ids_are_echoed_or_generated() {
    let gw = TestGateway::start(&upstream_yaml("http://127.0.0.1:9")).await;
    let r = gw
        .client
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(MASTER)
        .header("x-request-id", "req-abc")
        .json(&chat_body("mock"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "req-abc");
    let r = gw.post("/v1/chat/completions", chat_body("mock")).await;
    assert!(!r.headers()["x-request-id"].is_empty());
}

/// The server threads (`--num_workers` > 1): connections are dealt to every thread, each
/// serves its keep-alive clients through its own upstream pool, and at shutdown the listener
/// closes at once while the threads finish.
#[tokio::test]
async fn server_threads_serve_many_keep_alive_clients_and_stop_on_shutdown() {
    let upstream = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(openai_completion()))
        .mount(&upstream)
        .await;
    let yaml = format!(
        "{}\ngeneral_settings:\n  master_key: {MASTER}\n",
        upstream_yaml(&upstream.uri())
    );
    let config = hx_gateway::config::GatewayConfig::from_yaml_str(
        &yaml,
        &std::collections::HashMap::<String, String>::new(),
    )
    .expect("config loads");
    let http = hx_gateway::providers::Upstream::new().expect("http client");
    let state = hx_gateway::gateway::AppState::new(config, http, false).expect("state");
    state.set_ready();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let server =
        hx_gateway::server::threads::serve_on_threads(listener, state, &stopped, 3).unwrap();

    // Nine clients, one keep-alive connection each, five requests apiece, all at once.
    let clients = (0..9).map(|i| async move {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(1)
            .build()
            .unwrap();
        for j in 0..5 {
            let model = if (i + j) % 2 == 0 {
                "gpt-4o-mini"
            } else {
                "mock"
            };
            let response = client
                .post(format!("http://{addr}/v1/chat/completions"))
                .bearer_auth(MASTER)
                .json(&json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            let body: Value = response.json().await.unwrap();
            let text = body["choices"][0]["message"]["content"].as_str().unwrap();
            let expected = if model == "mock" {
                "mocked answer here"
            } else {
                "from upstream"
            };
            assert_eq!(text, expected);
        }
    });
    futures::future::join_all(clients).await;
    let forwarded = upstream.received_requests().await.unwrap().len();
    assert_eq!(
        forwarded, 23,
        "every upstream-bound request reached the upstream once"
    );

    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("the server threads finish after shutdown")
        .unwrap()
        .unwrap();
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "no connection is accepted after shutdown"
    );
}

/// An upstream behind `HTTP_PROXY` is reached through the proxy (as reqwest and LiteLLM do),
/// answers and streams included; `NO_PROXY` hosts and plain-HTTP upstreams without a proxy go
/// straight to the upstream (every other test here).
#[tokio::test]
async fn upstreams_are_reached_through_the_environments_http_proxy() {
    let proxy = MockServer::start().await;
    let stream_body = concat!(
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"via proxy\"},\"finish_reason\":null}]}\n\n",
        "data: [DONE]\n\n"
    );
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(header("authorization", "Bearer sk-upstream-secret"))
        .and(body_partial_json(json!({"stream": true})))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "text/event-stream")
                .set_body_string(stream_body),
        )
        .mount(&proxy)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(header("authorization", "Bearer sk-upstream-secret"))
        .respond_with(ResponseTemplate::new(200).set_body_json(openai_completion()))
        .mount(&proxy)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    // `.invalid` never resolves: only the proxy can deliver these requests.
    std::fs::write(&config, upstream_yaml("http://upstream.invalid")).unwrap();
    let gw = GatewayProcess::spawn(
        &config,
        &[
            ("HX_DATA_DIR", dir.path().display().to_string()),
            ("LITELLM_MASTER_KEY", MASTER.to_string()),
            ("HTTP_PROXY", proxy.uri()),
            ("NO_PROXY", String::new()),
        ],
        &[],
    )
    .await;
    let client = reqwest::Client::new();
    let r = client
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(MASTER)
        .json(&chat_body("gpt-4o-mini"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "from upstream");

    let mut streamed = chat_body("gpt-4o-mini");
    streamed["stream"] = json!(true);
    let r = client
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(MASTER)
        .json(&streamed)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(
        text.contains("via proxy") && text.ends_with("data: [DONE]\n\n"),
        "{text}"
    );

    let received = proxy.received_requests().await.unwrap();
    assert_eq!(received.len(), 2);
    assert!(
        received
            .iter()
            .all(|r| r.headers["host"] == "upstream.invalid")
    );
}
