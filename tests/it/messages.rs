//! `/v1/messages`: Anthropic's Messages API through the gateway, natively to an Anthropic-wire
//! upstream and translated to an OpenAI-compatible one (mock upstreams in each wire format,
//! from the providers' API references); errors in Anthropic's shape; spend as
//! `anthropic_messages`.

use serde_json::{Value, json};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::common::*;

fn yaml(anthropic_base: &str, openai_base: &str) -> String {
    format!(
        r#"
model_list:
  - model_name: claude
    litellm_params:
      model: anthropic/claude-sonnet-4-5
      api_base: {anthropic_base}
      api_key: sk-ant-secret-0001
  - model_name: gpt
    litellm_params:
      model: openai/gpt-4o
      api_base: {openai_base}/v1
      api_key: sk-openai-secret-0002
  - model_name: canned
    litellm_params:
      model: openai/canned
      mock_response: "canned words"
router_settings: {{num_retries: 0}}
"#
    )
}

fn message_body(model: &str, stream: bool) -> Value {
    json!({
        "model": model,
        "max_tokens": 64,
        "stream": stream,
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        "metadata": {"user_id": "user-7"},
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hello", "cache_control": {"type": "ephemeral"}}]}]
    })
}

pub(crate) async fn post_messages(
    gw: &TestGateway,
    path: &str,
    key: &str,
    body: &Value,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut request = gw
        .client
        .post(gw.url(path))
        .header("x-api-key", key)
        .json(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

pub(crate) async fn received(upstream: &MockServer) -> Vec<Request> {
    upstream.received_requests().await.unwrap()
}

/// Asserts Anthropic's error shape with the given status and type; returns the message.
async fn anthropic_error(response: reqwest::Response, status: u16, kind: &str) -> String {
    assert_eq!(response.status().as_u16(), status);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["type"], "error", "{body}");
    assert_eq!(body["error"]["type"], kind, "{body}");
    body["error"]["message"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_messages_call_to_an_anthropic_deployment_is_forwarded_as_sent_with_the_model_renamed() {
    let anthropic = MockServer::start().await;
    let answer = json!({
        "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5-20250929",
        "content": [{"type": "thinking", "thinking": "hm", "signature": "sig-abc"}, {"type": "text", "text": "Hi!"}],
        "stop_reason": "end_turn", "stop_sequence": null,
        "usage": {"input_tokens": 7, "output_tokens": 3, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 20}
    });
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .and(header("x-api-key", "sk-ant-secret-0001"))
        .and(header("anthropic-version", "2023-06-01"))
        .and(header("anthropic-beta", "interleaved-thinking-2025-05-14"))
        .respond_with(ResponseTemplate::new(200).set_body_json(&answer))
        .mount(&anthropic)
        .await;
    let gw = TestGateway::start(&yaml(&anthropic.uri(), "http://127.0.0.1:9")).await;
    let body = message_body("claude", false);
    let r = post_messages(
        &gw,
        "/v1/messages?beta=true",
        MASTER,
        &body,
        &[
            ("anthropic-version", "2023-06-01"),
            ("anthropic-beta", "interleaved-thinking-2025-05-14"),
        ],
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-litellm-model-group"], "claude");
    let got: Value = r.json().await.unwrap();
    assert_eq!(got, answer, "the answer passes through untouched");
    let sent: Value = serde_json::from_slice(&received(&anthropic).await[0].body).unwrap();
    let mut expected = body.clone();
    expected["model"] = json!("claude-sonnet-4-5");
    assert_eq!(
        sent, expected,
        "cache_control and metadata.user_id reach Anthropic"
    );
}

#[tokio::test]
async fn a_native_stream_is_relayed_event_by_event_and_its_usage_is_spend() {
    let anthropic = MockServer::start().await;
    let events = [
        json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5", "content": [], "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 10, "cache_read_input_tokens": 50, "output_tokens": 1}}}),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        json!({"type": "ping"}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}}),
        json!({"type": "content_block_stop", "index": 0}),
        json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": 12}}),
        json!({"type": "message_stop"}),
    ];
    let sse: String = events
        .iter()
        .map(|e| format!("event: {}\ndata: {e}\n\n", e["type"].as_str().unwrap()))
        .collect();
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "text/event-stream")
                .set_body_string(sse),
        )
        .mount(&anthropic)
        .await;
    let gw = TestGateway::start(&yaml(&anthropic.uri(), "http://127.0.0.1:9")).await;
    let key = virtual_key(&gw).await;
    let r = post_messages(
        &gw,
        "/v1/messages",
        &key,
        &message_body("claude", true),
        &[],
    )
    .await;
    let got = typed_events(r).await;
    assert_eq!(got, events, "every event relayed as the upstream sent it");
    let row = spend_row(&gw, &key).await;
    assert_eq!(row["call_type"], "anthropic_messages");
    assert_eq!(row["prompt_tokens"], 60, "input plus cache reads");
    assert_eq!(row["completion_tokens"], 12);
}

#[tokio::test]
async fn a_messages_call_to_an_openai_deployment_is_translated_both_ways() {
    let openai = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(header("authorization", "Bearer sk-openai-secret-0002"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": null,
                "tool_calls": [{"id": "call_9", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]}}],
            "usage": {"prompt_tokens": 25, "completion_tokens": 8, "total_tokens": 33}
        })))
        .mount(&openai)
        .await;
    let gw = TestGateway::start(&yaml("http://127.0.0.1:9", &openai.uri())).await;
    let body = json!({
        "model": "gpt", "max_tokens": 100,
        "tools": [{"name": "get_weather", "description": "Weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}],
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_0", "name": "get_weather", "input": {"city": "Rome"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_0", "content": "21C"}, {"type": "text", "text": "And Paris?"}]}
        ]
    });
    let r = post_messages(&gw, "/messages", MASTER, &body, &[]).await;
    assert_eq!(r.status(), 200);
    let got: Value = r.json().await.unwrap();
    assert_eq!(got["type"], "message");
    assert_eq!(got["model"], "gpt");
    assert_eq!(got["stop_reason"], "tool_use");
    assert_eq!(
        got["content"],
        json!([{"type": "tool_use", "id": "call_9", "name": "get_weather", "input": {"city": "Paris"}}])
    );
    assert_eq!(got["usage"]["input_tokens"], 25);
    assert_eq!(got["usage"]["output_tokens"], 8);
    let sent: Value = serde_json::from_slice(&received(&openai).await[0].body).unwrap();
    assert_eq!(sent["model"], "gpt-4o");
    assert_eq!(
        sent["messages"],
        json!([
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "toolu_0", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Rome\"}"}}]},
            {"role": "tool", "tool_call_id": "toolu_0", "content": "21C"},
            {"role": "user", "content": "And Paris?"}
        ])
    );
    assert_eq!(sent["tools"][0]["function"]["name"], "get_weather");
}

#[tokio::test]
async fn a_translated_stream_has_anthropics_events_with_text_tool_input_and_usage() {
    let openai = MockServer::start().await;
    let chunks = [
        json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o", "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Let me "}}]}),
        json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o", "choices": [{"index": 0, "delta": {"content": "check."}}]}),
        json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o", "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\""}}]}}]}),
        json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o", "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": ":\"Paris\"}"}}]}}]}),
        json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o", "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}),
        json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o", "choices": [], "usage": {"prompt_tokens": 14, "completion_tokens": 6, "total_tokens": 20}}),
    ];
    let sse = openai_sse(&chunks);
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "text/event-stream")
                .set_body_string(sse),
        )
        .mount(&openai)
        .await;
    let gw = TestGateway::start(&yaml("http://127.0.0.1:9", &openai.uri())).await;
    let key = virtual_key(&gw).await;
    let r = post_messages(&gw, "/v1/messages", &key, &message_body("gpt", true), &[]).await;
    let events = typed_events(r).await;
    assert_eq!(events[0]["type"], "message_start");
    assert_eq!(events[0]["message"]["model"], "gpt");
    let text: String = events
        .iter()
        .filter(|e| e["delta"]["type"] == "text_delta")
        .map(|e| e["delta"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(text, "Let me check.");
    let tool_start = events
        .iter()
        .find(|e| e["content_block"]["type"] == "tool_use")
        .unwrap();
    assert_eq!(tool_start["content_block"]["id"], "call_1");
    assert_eq!(tool_start["content_block"]["name"], "get_weather");
    let json: String = events
        .iter()
        .filter(|e| e["delta"]["type"] == "input_json_delta")
        .map(|e| e["delta"]["partial_json"].as_str().unwrap())
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&json).unwrap(),
        json!({"city": "Paris"})
    );
    let delta = &events[events.len() - 2];
    assert_eq!(delta["type"], "message_delta");
    assert_eq!(delta["delta"]["stop_reason"], "tool_use");
    assert_eq!(delta["usage"]["output_tokens"], 6);
    assert_eq!(events[events.len() - 1]["type"], "message_stop");
    let sent: Value = serde_json::from_slice(&received(&openai).await[0].body).unwrap();
    assert_eq!(sent["stream_options"], json!({"include_usage": true}));
    assert_eq!(
        sent["messages"][0],
        json!({"role": "system", "content": "Be brief."})
    );
    assert_eq!(sent["user"], "user-7");
    let row = spend_row(&gw, &key).await;
    assert_eq!(row["call_type"], "anthropic_messages");
    assert_eq!(row["prompt_tokens"], 14);
    assert_eq!(row["completion_tokens"], 6);
}

#[tokio::test]
async fn a_mock_response_deployment_answers_a_messages_call_in_anthropics_shape() {
    let gw = TestGateway::start(&yaml("http://127.0.0.1:9", "http://127.0.0.1:9")).await;
    let r = post_messages(
        &gw,
        "/v1/messages",
        MASTER,
        &message_body("canned", false),
        &[],
    )
    .await;
    assert_eq!(r.status(), 200);
    let got: Value = r.json().await.unwrap();
    assert_eq!(
        got["content"],
        json!([{"type": "text", "text": "canned words"}])
    );
    assert_eq!(got["stop_reason"], "end_turn");
    let r = post_messages(
        &gw,
        "/v1/messages",
        MASTER,
        &message_body("canned", true),
        &[],
    )
    .await;
    let events = typed_events(r).await;
    let text: String = events
        .iter()
        .filter(|e| e["delta"]["type"] == "text_delta")
        .map(|e| e["delta"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(text, "canned words");
}

#[tokio::test]
async fn errors_on_the_messages_route_are_in_anthropics_shape() {
    let anthropic = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(ResponseTemplate::new(529).set_body_json(json!({
            "type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}
        })))
        .mount(&anthropic)
        .await;
    let gw = TestGateway::start(&yaml(&anthropic.uri(), "http://127.0.0.1:9")).await;
    // No key, an unknown key.
    let r = gw
        .client
        .post(gw.url("/v1/messages"))
        .json(&message_body("claude", false))
        .send()
        .await
        .unwrap();
    anthropic_error(r, 401, "authentication_error").await;
    let r = post_messages(
        &gw,
        "/v1/messages",
        "sk-unknown",
        &message_body("claude", false),
        &[],
    )
    .await;
    anthropic_error(r, 401, "authentication_error").await;
    // A missing max_tokens names the field, as Anthropic does.
    let mut body = message_body("claude", false);
    body.as_object_mut().unwrap().remove("max_tokens");
    let r = post_messages(&gw, "/v1/messages", MASTER, &body, &[]).await;
    let message = anthropic_error(r, 400, "invalid_request_error").await;
    assert!(message.contains("max_tokens"), "{message}");
    // Not JSON.
    let r = gw
        .client
        .post(gw.url("/v1/messages"))
        .header("x-api-key", MASTER)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    anthropic_error(r, 400, "invalid_request_error").await;
    // An unknown model.
    let r = post_messages(
        &gw,
        "/v1/messages",
        MASTER,
        &message_body("nope", false),
        &[],
    )
    .await;
    anthropic_error(r, 404, "not_found_error").await;
    // A model outside the key's allow-list, the key given as LiteLLM's header.
    let key = generate_key(&gw, json!({"models": ["gpt"]})).await;
    let r = gw
        .client
        .post(gw.url("/v1/messages"))
        .header("x-litellm-api-key", format!("Bearer {key}"))
        .header("authorization", "Bearer something-else")
        .json(&message_body("claude", false))
        .send()
        .await
        .unwrap();
    anthropic_error(r, 401, "authentication_error").await;
    // A server tool on a translated deployment.
    let mut body = message_body("gpt", false);
    body["tools"] = json!([{"type": "web_search_20250305", "name": "web_search"}]);
    let r = post_messages(&gw, "/v1/messages", MASTER, &body, &[]).await;
    let message = anthropic_error(r, 400, "invalid_request_error").await;
    assert!(message.contains("tools[0]"), "{message}");
    // The upstream's own Anthropic error passes through with its status.
    let r = post_messages(
        &gw,
        "/v1/messages",
        MASTER,
        &message_body("claude", false),
        &[],
    )
    .await;
    let message = anthropic_error(r, 529, "overloaded_error").await;
    assert_eq!(message, "Overloaded");
    // An unreachable OpenAI upstream: 502 as Anthropic's api_error, no secret in it.
    let r = post_messages(
        &gw,
        "/v1/messages",
        MASTER,
        &message_body("gpt", false),
        &[],
    )
    .await;
    let message = anthropic_error(r, 502, "api_error").await;
    assert!(!message.contains("sk-openai-secret"), "{message}");
}

#[tokio::test]
async fn a_budget_exceeded_key_is_refused_in_anthropics_shape() {
    let gw = TestGateway::start(&yaml("http://127.0.0.1:9", "http://127.0.0.1:9")).await;
    let key = generate_key(&gw, json!({"max_budget": 0.0})).await;
    let r = post_messages(
        &gw,
        "/v1/messages",
        &key,
        &message_body("canned", false),
        &[],
    )
    .await;
    anthropic_error(r, 400, "invalid_request_error").await;
}

async fn generate_key(gw: &TestGateway, body: Value) -> String {
    let r = gw.post("/key/generate", body).await;
    assert_eq!(r.status(), 200);
    r.json::<Value>().await.unwrap()["key"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn virtual_key(gw: &TestGateway) -> String {
    generate_key(gw, json!({})).await
}

/// The one spend-log row of a key, as JSON.
async fn spend_row(gw: &TestGateway, key: &str) -> Value {
    let keys = gw.state.keys().unwrap();
    keys.flush_spend().await.unwrap();
    let pool = keys.store().sqlite_pool().unwrap();
    let rows: Vec<(String, i64, i64)> = sqlx::query_as(
        r#"SELECT call_type, prompt_tokens, completion_tokens FROM "LiteLLM_SpendLogs" WHERE api_key = ?"#,
    )
    .bind(hx_gateway::secret::hash_key(key))
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), 1, "one spend row");
    let (call_type, prompt, completion) = rows.into_iter().next().unwrap();
    json!({"call_type": call_type, "prompt_tokens": prompt, "completion_tokens": completion})
}

#[tokio::test]
async fn count_tokens_asks_anthropic_or_counts_with_the_models_tokenizer_and_checks_the_key() {
    let anthropic = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages/count_tokens"))
        .and(header("x-api-key", "sk-ant-secret-0001"))
        .and(header("anthropic-beta", "token-counting-2024-11-01"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"input_tokens": 42})))
        .mount(&anthropic)
        .await;
    // Besides `gpt` (openai/gpt-4o): a model with no tiktoken encoding, and one whose
    // upstream name says nothing but whose base_model is an OpenAI model.
    let config = yaml(&anthropic.uri(), "http://127.0.0.1:9").replace(
        "router_settings:",
        "  - model_name: llama
    litellm_params: {model: ollama/llama3, api_base: \"http://127.0.0.1:9\"}
  - model_name: house
    litellm_params: {model: openai/house-model, api_base: \"http://127.0.0.1:9/v1\", api_key: sk-x}
    model_info: {base_model: gpt-4o-mini}
router_settings:",
    );
    let gw = TestGateway::start(&config).await;
    let mut body = message_body("claude", false);
    body.as_object_mut().unwrap().remove("max_tokens");
    let r = post_messages(
        &gw,
        "/v1/messages/count_tokens",
        MASTER,
        &body,
        &[("anthropic-beta", "token-counting-2024-11-01")],
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"input_tokens": 42})
    );
    let sent: Value = serde_json::from_slice(&received(&anthropic).await[0].body).unwrap();
    assert_eq!(sent["model"], "claude-sonnet-4-5");
    assert!(sent.get("stream").is_none() && sent.get("metadata").is_none());

    // Groups without an Anthropic deployment are counted here. In o200k_base (gpt-4o's
    // encoding) "hello world" is 2 tokens and each further " world" one more; "user" is 1.
    // With the framing (3 per message, 3 for the reply) that is 2 + 7 and 400 + 7. The
    // approximation (four characters a token, rounded up per text) makes them
    // 11 chars: 3 + 3 + 1 + 3, and 2399 chars: 600 + 7.
    let count = |model: &'static str, text: String| {
        let gw = &gw;
        async move {
            let b = json!({"model": model, "messages": [{"role": "user", "content": text}]});
            let r = post_messages(gw, "/messages/count_tokens", MASTER, &b, &[]).await;
            assert_eq!(r.status(), 200, "{model}");
            r.json::<Value>().await.unwrap()["input_tokens"]
                .as_u64()
                .unwrap()
        }
    };
    let short = || "hello world".to_string();
    let long = || format!("hello{}", " world".repeat(399));
    assert_eq!(count("gpt", short()).await, 9);
    assert_eq!(count("gpt", long()).await, 407);
    assert_eq!(count("house", short()).await, 9);
    assert_eq!(count("llama", short()).await, 10);
    assert_eq!(count("llama", long()).await, 607);

    // A key not allowed the model is refused, in Anthropic's shape.
    let key = generate_key(&gw, json!({"models": ["gpt"]})).await;
    let r = post_messages(&gw, "/v1/messages/count_tokens", &key, &body, &[]).await;
    anthropic_error(r, 401, "authentication_error").await;
    assert_eq!(
        received(&anthropic).await.len(),
        1,
        "nothing sent for the refused key"
    );
}

#[tokio::test]
async fn a_key_over_its_rpm_is_refused_with_retry_after_in_anthropics_shape() {
    let gw = TestGateway::start(&yaml("http://127.0.0.1:9", "http://127.0.0.1:9")).await;
    let key = generate_key(&gw, json!({"rpm_limit": 1})).await;
    let body = message_body("canned", false);
    let r = post_messages(&gw, "/v1/messages", &key, &body, &[]).await;
    assert_eq!(r.status(), 200);
    let r = post_messages(&gw, "/v1/messages", &key, &body, &[]).await;
    let after: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&after), "{after}");
    anthropic_error(r, 429, "rate_limit_error").await;
}

#[tokio::test]
async fn an_upstream_that_does_not_answer_in_time_is_a_504_timeout_error() {
    let openai = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_delay(std::time::Duration::from_secs(5)))
        .mount(&openai)
        .await;
    let config = yaml("http://127.0.0.1:9", &openai.uri()).replace(
        "api_key: sk-openai-secret-0002",
        "api_key: sk-openai-secret-0002\n      timeout: 0.3",
    );
    let gw = TestGateway::start(&config).await;
    let r = post_messages(
        &gw,
        "/v1/messages",
        MASTER,
        &message_body("gpt", false),
        &[],
    )
    .await;
    anthropic_error(r, 504, "timeout_error").await;
}

fn keepalive_config(openai: &MockServer) -> String {
    yaml("http://127.0.0.1:9", &openai.uri())
        + &format!("general_settings: {{master_key: {MASTER}, stream_keepalive_seconds: 0.2}}\n")
}

fn stream_body(text: &str) -> String {
    let chunks = [
        json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o", "choices": [{"index": 0, "delta": {"role": "assistant", "content": text}}]}),
        json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
    ];
    openai_sse(&chunks)
}

#[tokio::test]
async fn a_stream_whose_upstream_is_slow_to_start_gets_pings_and_then_the_answer() {
    let openai = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "text/event-stream")
                .set_body_string(stream_body("Finally."))
                .set_delay(std::time::Duration::from_millis(900)),
        )
        .mount(&openai)
        .await;
    let gw = TestGateway::start(&keepalive_config(&openai)).await;
    let key = virtual_key(&gw).await;
    let r = post_messages(&gw, "/v1/messages", &key, &message_body("gpt", true), &[]).await;
    let events = typed_events(r).await;
    let pings = events.iter().take_while(|e| e["type"] == "ping").count();
    assert!(pings >= 2, "expected pings while waiting: {events:?}");
    let rest: Vec<&str> = events[pings..]
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        rest,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    assert_eq!(events[pings + 2]["delta"]["text"], "Finally.");
    assert_eq!(
        spend_row(&gw, &key).await["call_type"],
        "anthropic_messages"
    );
}

#[tokio::test]
async fn a_stream_that_fails_after_its_pings_ends_with_an_anthropic_error_event() {
    let openai = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(
            ResponseTemplate::new(503)
                .set_body_json(json!({"error": {"message": "overloaded, try later", "type": "server_error", "param": null, "code": null}}))
                .set_delay(std::time::Duration::from_millis(600)),
        )
        .mount(&openai)
        .await;
    let gw = TestGateway::start(&keepalive_config(&openai)).await;
    let r = post_messages(&gw, "/v1/messages", MASTER, &message_body("gpt", true), &[]).await;
    let events = typed_events(r).await;
    assert_eq!(events[0]["type"], "ping");
    let last = events.last().unwrap();
    assert_eq!(last["type"], "error", "{events:?}");
    assert!(
        last["error"]["type"].as_str().unwrap().ends_with("_error"),
        "{last}"
    );
    assert!(
        last["error"]["message"]
            .as_str()
            .unwrap()
            .contains("overloaded"),
        "{last}"
    );
    assert_eq!(events.iter().filter(|e| e["type"] != "ping").count(), 1);
}

#[tokio::test]
async fn a_stream_answered_within_the_keepalive_interval_has_no_pings_and_keeps_its_headers() {
    let openai = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "text/event-stream")
                .set_body_string(stream_body("Quick.")),
        )
        .mount(&openai)
        .await;
    let config = keepalive_config(&openai).replace("0.2", "30");
    let gw = TestGateway::start(&config).await;
    let r = post_messages(&gw, "/v1/messages", MASTER, &message_body("gpt", true), &[]).await;
    assert!(r.headers().contains_key("x-litellm-model-id"));
    let events = typed_events(r).await;
    assert!(events.iter().all(|e| e["type"] != "ping"), "{events:?}");
    assert_eq!(events[0]["type"], "message_start");
}
