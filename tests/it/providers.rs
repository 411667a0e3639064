//! Anthropic, Ollama and Gemini behind the OpenAI API: mock upstreams in each provider's own
//! wire format (from its public API reference); requests are checked as the upstream receives
//! them, answers as the client receives them.

use serde_json::{Value, json};
use wiremock::matchers::{body_partial_json, header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::common::*;

/// The SSE answer of the gateway: every chunk's JSON, checked to end with `[DONE]`.
async fn sse_chunks(response: reqwest::Response) -> Vec<Value> {
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let text = response.text().await.unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    text.split("\n\n")
        .filter_map(|frame| frame.strip_prefix("data: "))
        .filter(|data| *data != "[DONE]")
        .map(|data| serde_json::from_str(data).unwrap_or_else(|e| panic!("{e}: {data}")))
        .collect()
}

/// The streamed text of choice 0 and its finish reason; every chunk is a valid OpenAI chunk.
fn stream_text(chunks: &[Value]) -> (String, Option<String>) {
    let mut text = String::new();
    let mut finish = None;
    for c in chunks {
        assert_eq!(c["object"], "chat.completion.chunk", "{c}");
        assert!(c["id"].is_string() && c["created"].is_i64() && c["model"].is_string());
        for choice in c["choices"].as_array().unwrap() {
            if let Some(t) = choice["delta"]["content"].as_str() {
                text.push_str(t);
            }
            if let Some(f) = choice["finish_reason"].as_str() {
                finish = Some(f.to_string());
            }
        }
    }
    (text, finish)
}

/// The tool calls of a stream, reassembled from their deltas: (id, name, arguments).
fn stream_tool_calls(chunks: &[Value]) -> Vec<(String, String, String)> {
    let mut calls: Vec<(String, String, String)> = Vec::new();
    for c in chunks {
        let Some(deltas) = c["choices"][0]["delta"]["tool_calls"].as_array() else {
            continue;
        };
        for d in deltas {
            let index = d["index"].as_u64().unwrap() as usize;
            if index == calls.len() {
                calls.push((
                    d["id"].as_str().unwrap().to_string(),
                    d["function"]["name"].as_str().unwrap().to_string(),
                    String::new(),
                ));
            }
            calls[index]
                .2
                .push_str(d["function"]["arguments"].as_str().unwrap_or_default());
        }
    }
    calls
}

/// The JSON body the upstream received (the one request it got).
async fn received_body(upstream: &MockServer) -> Value {
    let requests: Vec<Request> = upstream.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1, "one upstream request");
    serde_json::from_slice(&requests[0].body).unwrap()
}

fn weather_tool() -> Value {
    json!([{"type": "function", "function": {"name": "get_weather", "description": "Current weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}])
}

// ---------------------------------------------------------------- Anthropic

fn anthropic_yaml(base: &str, drop_params: bool) -> String {
    format!(
        r#"
model_list:
  - model_name: claude
    litellm_params:
      model: anthropic/claude-sonnet-4-5
      api_base: {base}
      api_key: sk-ant-secret-0001
    model_info: {{max_tokens: 321}}
router_settings: {{num_retries: 0}}
litellm_settings: {{drop_params: {drop_params}}}
"#
    )
}

fn anthropic_message(content: Value, stop_reason: &str) -> Value {
    json!({
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL", "type": "message", "role": "assistant",
        "model": "claude-sonnet-4-5-20250929", "content": content,
        "stop_reason": stop_reason, "stop_sequence": null,
        "usage": {"input_tokens": 21, "output_tokens": 9}
    })
}

#[tokio::test]
async fn anthropic_chat_is_translated_both_ways() {
    let upstream = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .and(header("x-api-key", "sk-ant-secret-0001"))
        .and(header("anthropic-version", "2023-06-01"))
        .respond_with(ResponseTemplate::new(200).set_body_json(anthropic_message(
            json!([{"type": "text", "text": "Hello there."}]),
            "end_turn",
        )))
        .expect(1)
        .mount(&upstream)
        .await;
    let gw = TestGateway::start(&anthropic_yaml(&upstream.uri(), false)).await;
    let r = gw
        .post(
            "/v1/chat/completions",
            json!({"model": "claude", "temperature": 0.2, "stop": ["\n\nHuman:"], "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello."},
                {"role": "user", "content": [{"type": "text", "text": "Again"},
                    {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]}
            ]}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["object"], "chat.completion");
    assert_eq!(answer["id"], "msg_01XFDUDYJgAACzvnptvVoYEL");
    assert_eq!(answer["choices"][0]["message"]["role"], "assistant");
    assert_eq!(answer["choices"][0]["message"]["content"], "Hello there.");
    assert_eq!(answer["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        answer["usage"],
        json!({"prompt_tokens": 21, "completion_tokens": 9, "total_tokens": 30})
    );
    let sent = received_body(&upstream).await;
    assert_eq!(
        sent,
        json!({
            "model": "claude-sonnet-4-5",
            "max_tokens": 321,
            "system": "You are terse.",
            "temperature": 0.2,
            "stop_sequences": ["\n\nHuman:"],
            "messages": [
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello."},
                {"role": "user", "content": [{"type": "text", "text": "Again"},
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}]}
            ]
        })
    );
}

fn anthropic_sse(events: &[Value]) -> String {
    events
        .iter()
        .map(|e| format!("event: {}\ndata: {e}\n\n", e["type"].as_str().unwrap()))
        .collect()
}

#[tokio::test]
async fn anthropic_stream_events_become_openai_chunks_with_usage() {
    let upstream = MockServer::start().await;
    let sse = anthropic_sse(&[
        json!({"type": "message_start", "message": {"id": "msg_s1", "type": "message", "role": "assistant",
            "content": [], "model": "claude-sonnet-4-5-20250929", "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 25, "output_tokens": 1}}}),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        json!({"type": "ping"}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello"}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": " world"}}),
        json!({"type": "content_block_stop", "index": 0}),
        json!({"type": "message_delta", "delta": {"stop_reason": "max_tokens", "stop_sequence": null},
            "usage": {"output_tokens": 15}}),
        json!({"type": "message_stop"}),
    ]);
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .and(body_partial_json(json!({"stream": true})))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "text/event-stream")
                .set_body_string(sse),
        )
        .expect(2)
        .mount(&upstream)
        .await;
    let gw = TestGateway::start(&anthropic_yaml(&upstream.uri(), false)).await;
    let body = json!({"model": "claude", "stream": true, "stream_options": {"include_usage": true},
                      "messages": [{"role": "user", "content": "Hi"}]});
    let chunks = sse_chunks(gw.post("/v1/chat/completions", body.clone()).await).await;
    let (text, finish) = stream_text(&chunks);
    assert_eq!(text, "Hello world");
    assert_eq!(finish.as_deref(), Some("length"));
    assert_eq!(chunks[0]["id"], "msg_s1");
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"], json!([]));
    assert_eq!(
        last["usage"],
        json!({"prompt_tokens": 25, "completion_tokens": 15, "total_tokens": 40})
    );
    // Without `include_usage` the usage chunk is not sent.
    let mut plain = body;
    plain.as_object_mut().unwrap().remove("stream_options");
    let chunks = sse_chunks(gw.post("/v1/chat/completions", plain).await).await;
    assert!(chunks.iter().all(|c| c.get("usage").is_none()));
    assert_eq!(stream_text(&chunks).0, "Hello world");
}

#[tokio::test]
async fn anthropic_tools_are_translated_in_requests_answers_and_streams() {
    let upstream = MockServer::start().await;
    let tool_use = json!([
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "get_weather", "input": {"city": "Paris"}}
    ]);
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .and(body_partial_json(json!({
            "tools": [{"name": "get_weather", "description": "Current weather",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}],
            "tool_choice": {"type": "any"},
            "messages": [
                {"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_0", "name": "get_weather", "input": {"city": "Rome"}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_0", "content": "{\"temp\":20}"}]}
            ]
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(anthropic_message(tool_use, "tool_use")))
        .expect(1)
        .mount(&upstream)
        .await;
    let sse = anthropic_sse(&[
        json!({"type": "message_start", "message": {"id": "msg_t", "type": "message", "role": "assistant",
            "content": [], "model": "claude", "usage": {"input_tokens": 30, "output_tokens": 1}}}),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use",
            "id": "toolu_s1", "name": "get_weather", "input": {}}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": ""}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": "{\"city\": \"Pa"}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": "ris\"}"}}),
        json!({"type": "content_block_stop", "index": 0}),
        json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use",
            "id": "toolu_s2", "name": "get_weather", "input": {}}}),
        json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"city\": \"Oslo\"}"}}),
        json!({"type": "content_block_stop", "index": 1}),
        json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 40}}),
        json!({"type": "message_stop"}),
    ]);
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .and(body_partial_json(
            json!({"stream": true, "tool_choice": {"type": "auto"}}),
        ))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "text/event-stream")
                .set_body_string(sse),
        )
        .expect(1)
        .mount(&upstream)
        .await;
    let gw = TestGateway::start(&anthropic_yaml(&upstream.uri(), false)).await;
    let r = gw
        .post(
            "/v1/chat/completions",
            json!({"model": "claude", "tools": weather_tool(), "tool_choice": "required", "messages": [
                {"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "toolu_0", "type": "function",
                    "function": {"name": "get_weather", "arguments": "{\"city\":\"Rome\"}"}}]},
                {"role": "tool", "tool_call_id": "toolu_0", "content": "{\"temp\":20}"}
            ]}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let answer: Value = r.json().await.unwrap();
    let choice = &answer["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], "Checking.");
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["id"], "toolu_01A09q90qw90lq917835lq9");
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"city": "Paris"}));

    let chunks = sse_chunks(
        gw.post(
            "/v1/chat/completions",
            json!({"model": "claude", "stream": true, "tools": weather_tool(), "tool_choice": "auto",
                   "messages": [{"role": "user", "content": "Weather in Paris and Oslo?"}]}),
        )
        .await,
    )
    .await;
    assert_eq!(
        stream_tool_calls(&chunks),
        vec![
            (
                "toolu_s1".into(),
                "get_weather".into(),
                r#"{"city": "Paris"}"#.into()
            ),
            (
                "toolu_s2".into(),
                "get_weather".into(),
                r#"{"city": "Oslo"}"#.into()
            ),
        ]
    );
    assert_eq!(stream_text(&chunks).1.as_deref(), Some("tool_calls"));
}

#[tokio::test]
async fn anthropic_embeddings_are_a_400_naming_the_model() {
    let upstream = MockServer::start().await;
    let gw = TestGateway::start(&anthropic_yaml(&upstream.uri(), false)).await;
    let r = gw
        .post("/v1/embeddings", json!({"model": "claude", "input": "x"}))
        .await;
    let e = expect_error(r, 400, "invalid_request_error").await;
    assert!(e["message"].as_str().unwrap().contains("claude"), "{e}");
    assert!(upstream.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn anthropic_errors_become_openai_errors_with_their_status() {
    let upstream = MockServer::start().await;
    let error = |kind: &str, message: &str| json!({"type": "error", "error": {"type": kind, "message": message}});
    for (marker, status, body) in [
        (
            "auth",
            401,
            error(
                "authentication_error",
                "invalid x-api-key sk-ant-secret-0001",
            ),
        ),
        (
            "rate",
            429,
            error(
                "rate_limit_error",
                "Number of request tokens has exceeded your per-minute rate limit",
            ),
        ),
        (
            "long",
            400,
            error(
                "invalid_request_error",
                "prompt is too long: 210000 tokens > 200000 maximum",
            ),
        ),
        ("busy", 529, error("overloaded_error", "Overloaded")),
    ] {
        Mock::given(method("POST"))
            .and(path("/v1/messages"))
            .and(body_partial_json(
                json!({"messages": [{"role": "user", "content": marker}]}),
            ))
            .respond_with(ResponseTemplate::new(status).set_body_json(body))
            .mount(&upstream)
            .await;
    }
    let gw = TestGateway::start(&anthropic_yaml(&upstream.uri(), false)).await;
    let ask = |marker: &str| json!({"model": "claude", "messages": [{"role": "user", "content": marker}]});
    let e = expect_error(
        gw.post("/v1/chat/completions", ask("auth")).await,
        401,
        "authentication_error",
    )
    .await;
    let message = e["message"].as_str().unwrap();
    assert!(message.contains("invalid x-api-key"), "{e}");
    assert!(
        !message.contains("sk-ant-secret-0001"),
        "the key is scrubbed: {e}"
    );
    expect_error(
        gw.post("/v1/chat/completions", ask("rate")).await,
        429,
        "rate_limit_error",
    )
    .await;
    let e = expect_error(
        gw.post("/v1/chat/completions", ask("long")).await,
        400,
        "invalid_request_error",
    )
    .await;
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("context_length_exceeded"),
        "{e}"
    );
    let e = expect_error(
        gw.post("/v1/chat/completions", ask("busy")).await,
        529,
        "api_error",
    )
    .await;
    assert!(e["message"].as_str().unwrap().contains("Overloaded"));
}

#[tokio::test]
async fn anthropic_error_event_mid_stream_ends_with_an_error_event() {
    let upstream = MockServer::start().await;
    let sse = anthropic_sse(&[
        json!({"type": "message_start", "message": {"id": "msg_e", "model": "claude", "content": [],
            "usage": {"input_tokens": 3, "output_tokens": 1}}}),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "partial"}}),
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded (key sk-ant-secret-0001)"}}),
    ]);
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "text/event-stream")
                .set_body_string(sse),
        )
        .mount(&upstream)
        .await;
    let gw = TestGateway::start(&anthropic_yaml(&upstream.uri(), false)).await;
    let text = gw
        .post(
            "/v1/chat/completions",
            json!({"model": "claude", "stream": true, "messages": [{"role": "user", "content": "x"}]}),
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(text.contains("partial"), "{text}");
    assert!(!text.contains("[DONE]"), "{text}");
    assert!(
        !text.contains("sk-ant-secret-0001"),
        "the key is scrubbed: {text}"
    );
    let last = text.trim_end().rsplit("\n\n").next().unwrap();
    let event: Value = serde_json::from_str(last.strip_prefix("data: ").unwrap()).unwrap();
    assert!(
        event["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Overloaded"),
        "{event}"
    );
}

#[tokio::test]
async fn anthropic_unsupported_params_are_400_unless_dropped() {
    let upstream = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(ResponseTemplate::new(200).set_body_json(anthropic_message(
            json!([{"type": "text", "text": "ok"}]),
            "end_turn",
        )))
        .mount(&upstream)
        .await;
    let body = json!({"model": "claude", "logit_bias": {"50256": -100}, "temperature": 0.1,
                      "messages": [{"role": "user", "content": "hi"}]});
    let strict = TestGateway::start(&anthropic_yaml(&upstream.uri(), false)).await;
    let e = expect_error(
        strict.post("/v1/chat/completions", body.clone()).await,
        400,
        "invalid_request_error",
    )
    .await;
    assert_eq!(e["param"], "logit_bias");
    assert!(e["message"].as_str().unwrap().contains("anthropic"), "{e}");
    assert!(upstream.received_requests().await.unwrap().is_empty());

    // The request's own `drop_params: true` drops it too, and is not forwarded.
    let mut own = body.clone();
    own["drop_params"] = json!(true);
    assert_eq!(strict.post("/v1/chat/completions", own).await.status(), 200);
    let sent = received_body(&upstream).await;
    assert!(sent.get("logit_bias").is_none() && sent.get("drop_params").is_none());
    upstream.reset().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(ResponseTemplate::new(200).set_body_json(anthropic_message(
            json!([{"type": "text", "text": "ok"}]),
            "end_turn",
        )))
        .mount(&upstream)
        .await;

    let dropping = TestGateway::start(&anthropic_yaml(&upstream.uri(), true)).await;
    let r = dropping.post("/v1/chat/completions", body).await;
    assert_eq!(r.status(), 200);
    let sent = received_body(&upstream).await;
    assert!(sent.get("logit_bias").is_none(), "{sent}");
    assert_eq!(sent["temperature"], 0.1);
}

// ---------------------------------------------------------------- Ollama

fn ollama_yaml(base: &str, drop_params: bool) -> String {
    format!(
        r#"
model_list:
  - model_name: llama-chat
    litellm_params: {{model: ollama_chat/llama3.2, api_base: "{base}"}}
  - model_name: llama-gen
    litellm_params: {{model: ollama/llama3.2, api_base: "{base}"}}
  - model_name: llama-emb
    litellm_params: {{model: ollama/nomic-embed-text, api_base: "{base}"}}
    model_info: {{mode: embedding}}
router_settings: {{num_retries: 0}}
litellm_settings: {{drop_params: {drop_params}}}
"#
    )
}

fn ndjson(lines: &[Value]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

#[tokio::test]
async fn ollama_chat_and_generate_are_translated_both_ways() {
    let upstream = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/chat"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "model": "llama3.2", "created_at": "2023-12-12T14:13:43.416799Z",
            "message": {"role": "assistant", "content": "Hello! How are you today?"},
            "done": true, "done_reason": "stop", "total_duration": 5191566416u64, "load_duration": 2154458,
            "prompt_eval_count": 26, "prompt_eval_duration": 383809000, "eval_count": 298, "eval_duration": 4799921000u64
        })))
        .expect(1)
        .mount(&upstream)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/generate"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "model": "llama3.2", "created_at": "2023-08-04T19:22:45.499127Z",
            "response": "The sky is blue because of Rayleigh scattering.", "done": true, "done_reason": "length",
            "context": [1, 2, 3], "total_duration": 10706818083u64, "prompt_eval_count": 26, "eval_count": 290
        })))
        .expect(1)
        .mount(&upstream)
        .await;
    let gw = TestGateway::start(&ollama_yaml(&upstream.uri(), false)).await;
    let messages =
        json!([{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Hello"}]);
    let r = gw
        .post(
            "/v1/chat/completions",
            json!({"model": "llama-chat", "messages": messages, "temperature": 0.7, "seed": 42,
                   "max_tokens": 100, "stop": ["\n\n"], "response_format": {"type": "json_object"}}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["object"], "chat.completion");
    assert_eq!(answer["model"], "llama3.2");
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        "Hello! How are you today?"
    );
    assert_eq!(answer["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        answer["usage"],
        json!({"prompt_tokens": 26, "completion_tokens": 298, "total_tokens": 324})
    );
    let chat_requests = upstream.received_requests().await.unwrap();
    let sent: Value = serde_json::from_slice(&chat_requests[0].body).unwrap();
    assert_eq!(
        sent,
        json!({"model": "llama3.2", "stream": false, "format": "json",
               "messages": [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Hello"}],
               "options": {"temperature": 0.7, "seed": 42, "num_predict": 100, "stop": ["\n\n"]}})
    );

    let r = gw
        .post(
            "/v1/chat/completions",
            json!({"model": "llama-gen", "messages": messages, "top_p": 0.5}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let answer: Value = r.json().await.unwrap();
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        "The sky is blue because of Rayleigh scattering."
    );
    assert_eq!(answer["choices"][0]["finish_reason"], "length");
    assert_eq!(answer["usage"]["total_tokens"], 316);
    let requests = upstream.received_requests().await.unwrap();
    let sent: Value = serde_json::from_slice(&requests[1].body).unwrap();
    assert_eq!(
        sent,
        json!({"model": "llama3.2", "stream": false, "options": {"top_p": 0.5},
               "prompt": "### System:\nBe kind.\n\n### User:\nHello\n\n"})
    );
}

#[tokio::test]
async fn ollama_ndjson_streams_become_openai_chunks_with_usage() {
    let upstream = MockServer::start().await;
    let chat_lines = ndjson(&[
        json!({"model": "llama3.2", "created_at": "2023-08-04T08:52:19.385406455-07:00",
               "message": {"role": "assistant", "content": "The"}, "done": false}),
        json!({"model": "llama3.2", "created_at": "2023-08-04T08:52:19.385406455-07:00",
               "message": {"role": "assistant", "content": " sky"}, "done": false}),
        json!({"model": "llama3.2", "created_at": "2023-08-04T19:22:45.499127Z",
               "message": {"role": "assistant", "content": ""}, "done": true, "done_reason": "stop",
               "total_duration": 4883583458u64, "prompt_eval_count": 26, "eval_count": 282}),
    ]);
    Mock::given(method("POST"))
        .and(path("/api/chat"))
        .and(body_partial_json(json!({"stream": true})))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "application/x-ndjson")
                .set_body_string(chat_lines),
        )
        .mount(&upstream)
        .await;
    let generate_lines = ndjson(&[
        json!({"model": "llama3.2", "created_at": "x", "response": "Blue", "done": false}),
        json!({"model": "llama3.2", "created_at": "x", "response": "", "done": true, "done_reason": "stop",
               "context": [1], "prompt_eval_count": 5, "eval_count": 1}),
    ]);
    Mock::given(method("POST"))
        .and(path("/api/generate"))
        .and(body_partial_json(json!({"stream": true})))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "application/x-ndjson")
                .set_body_string(generate_lines),
        )
        .mount(&upstream)
        .await;
    let gw = TestGateway::start(&ollama_yaml(&upstream.uri(), false)).await;
    let ask = |model: &str| {
        json!({"model": model, "stream": true, "stream_options": {"include_usage": true},
               "messages": [{"role": "user", "content": "Why is the sky blue?"}]})
    };
    let chunks = sse_chunks(gw.post("/v1/chat/completions", ask("llama-chat")).await).await;
    assert_eq!(
        stream_text(&chunks),
        ("The sky".to_string(), Some("stop".to_string()))
    );
    assert_eq!(
        chunks.last().unwrap()["usage"],
        json!({"prompt_tokens": 26, "completion_tokens": 282, "total_tokens": 308})
    );
    let chunks = sse_chunks(gw.post("/v1/chat/completions", ask("llama-gen")).await).await;
    assert_eq!(
        stream_text(&chunks),
        ("Blue".to_string(), Some("stop".to_string()))
    );
    assert_eq!(chunks.last().unwrap()["usage"]["total_tokens"], 6);
}

#[tokio::test]
async fn ollama_chat_tools_are_sent_and_tool_calls_returned() {
    let upstream = MockServer::start().await;
    let tool_call = json!({"role": "assistant", "content": "",
        "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Tokyo"}}}]});
    Mock::given(method("POST"))
        .and(path("/api/chat"))
        .and(body_partial_json(
            json!({"stream": false, "tools": weather_tool()}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "model": "llama3.2", "created_at": "x", "message": tool_call, "done": true,
            "done_reason": "stop", "prompt_eval_count": 40, "eval_count": 12})))
        .mount(&upstream)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/chat"))
        .and(body_partial_json(json!({"stream": true, "tools": weather_tool()})))
        .respond_with(ResponseTemplate::new(200).set_body_string(ndjson(&[
            json!({"model": "llama3.2", "created_at": "x", "message": tool_call, "done": false}),
            json!({"model": "llama3.2", "created_at": "x", "message": {"role": "assistant", "content": ""},
                   "done": true, "done_reason": "stop", "prompt_eval_count": 40, "eval_count": 12}),
        ])))
        .mount(&upstream)
        .await;
    let gw = TestGateway::start(&ollama_yaml(&upstream.uri(), false)).await;
    let body = json!({"model": "llama-chat", "tools": weather_tool(), "tool_choice": "auto",
                      "messages": [{"role": "user", "content": "Weather in Tokyo?"}]});
    let r = gw.post("/v1/chat/completions", body.clone()).await;
    assert_eq!(r.status(), 200);
    let answer: Value = r.json().await.unwrap();
    let choice = &answer["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert!(choice["message"]["content"].is_null());
    let call = &choice["message"]["tool_calls"][0];
    assert!(call["id"].as_str().unwrap().starts_with("call_"));
    assert_eq!(call["function"]["name"], "get_weather");
    assert_eq!(
        serde_json::from_str::<Value>(call["function"]["arguments"].as_str().unwrap()).unwrap(),
        json!({"city": "Tokyo"})
    );
    let mut streamed = body;
    streamed["stream"] = json!(true);
    let chunks = sse_chunks(gw.post("/v1/chat/completions", streamed).await).await;
    let calls = stream_tool_calls(&chunks);
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].1, "get_weather");
    assert_eq!(calls[0].2, r#"{"city":"Tokyo"}"#);
    assert_eq!(stream_text(&chunks).1.as_deref(), Some("tool_calls"));
}

#[tokio::test]
async fn ollama_embeddings_use_api_embed() {
    let upstream = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/embed"))
        .and(body_partial_json(json!({"model": "nomic-embed-text", "input": ["Why is the sky blue?", "Why is the grass green?"]})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "model": "nomic-embed-text",
            "embeddings": [[0.010071029, -0.0017594862, 0.05007221], [-0.0098027075, 0.06042469, 0.025855543]],
            "total_duration": 14143917, "load_duration": 1019500, "prompt_eval_count": 8
        })))
        .expect(1)
        .mount(&upstream)
        .await;
    let gw = TestGateway::start(&ollama_yaml(&upstream.uri(), false)).await;
    let r = gw
        .post(
            "/v1/embeddings",
            json!({"model": "llama-emb", "input": ["Why is the sky blue?", "Why is the grass green?"],
                   "encoding_format": "float"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["object"], "list");
    assert_eq!(answer["data"][1]["index"], 1);
    assert_eq!(answer["data"][1]["object"], "embedding");
    assert_eq!(
        answer["data"][1]["embedding"],
        json!([-0.0098027075, 0.06042469, 0.025855543])
    );
    assert_eq!(
        answer["usage"],
        json!({"prompt_tokens": 8, "completion_tokens": 0, "total_tokens": 8})
    );
}

#[tokio::test]
async fn ollama_errors_become_openai_errors_with_their_status() {
    let upstream = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/chat"))
        .respond_with(
            ResponseTemplate::new(404).set_body_json(
                json!({"error": "model \"llama3.2\" not found, try pulling it first"}),
            ),
        )
        .mount(&upstream)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/generate"))
        .respond_with(
            ResponseTemplate::new(500).set_body_json(
                json!({"error": "llama runner process has terminated: signal: killed"}),
            ),
        )
        .mount(&upstream)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/embed"))
        .respond_with(
            ResponseTemplate::new(400)
                .set_body_json(json!({"error": "input length exceeds the context length"})),
        )
        .mount(&upstream)
        .await;
    let gw = TestGateway::start(&ollama_yaml(&upstream.uri(), false)).await;
    let ask = |model: &str| json!({"model": model, "messages": [{"role": "user", "content": "x"}]});
    let e = expect_error(
        gw.post("/v1/chat/completions", ask("llama-chat")).await,
        404,
        "not_found_error",
    )
    .await;
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("try pulling it first"),
        "{e}"
    );
    let e = expect_error(
        gw.post("/v1/chat/completions", ask("llama-gen")).await,
        500,
        "api_error",
    )
    .await;
    assert!(
        e["message"].as_str().unwrap().contains("llama runner"),
        "{e}"
    );
    let e = expect_error(
        gw.post(
            "/v1/embeddings",
            json!({"model": "llama-emb", "input": "long"}),
        )
        .await,
        400,
        "invalid_request_error",
    )
    .await;
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("context_length_exceeded"),
        "{e}"
    );
}

#[tokio::test]
async fn ollama_unsupported_params_are_400_unless_dropped() {
    let upstream = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/generate"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "model": "llama3.2", "response": "ok", "done": true, "prompt_eval_count": 1, "eval_count": 1})))
        .mount(&upstream)
        .await;
    // `ollama/` (the generate API) takes no tools; `logprobs` no Ollama API takes.
    let body = json!({"model": "llama-gen", "tools": weather_tool(), "temperature": 0,
                      "messages": [{"role": "user", "content": "hi"}]});
    let strict = TestGateway::start(&ollama_yaml(&upstream.uri(), false)).await;
    let e = expect_error(
        strict.post("/v1/chat/completions", body.clone()).await,
        400,
        "invalid_request_error",
    )
    .await;
    assert_eq!(e["param"], "tools");
    assert!(e["message"].as_str().unwrap().contains("ollama"), "{e}");
    let chat = json!({"model": "llama-chat", "logprobs": true, "messages": [{"role": "user", "content": "hi"}]});
    let e = expect_error(
        strict.post("/v1/chat/completions", chat.clone()).await,
        400,
        "invalid_request_error",
    )
    .await;
    assert_eq!(e["param"], "logprobs");
    assert!(upstream.received_requests().await.unwrap().is_empty());

    let dropping = TestGateway::start(&ollama_yaml(&upstream.uri(), true)).await;
    assert_eq!(
        dropping.post("/v1/chat/completions", body).await.status(),
        200
    );
    let sent = received_body(&upstream).await;
    assert!(sent.get("tools").is_none(), "{sent}");
    assert_eq!(sent["options"]["temperature"], 0);
}

// ---------------------------------------------------------------- Gemini

const GEMINI_KEY: &str = "AIzaSy-test-key-0001";

fn gemini_yaml(base: &str, drop_params: bool) -> String {
    format!(
        r#"
model_list:
  - model_name: gemini
    litellm_params: {{model: gemini/gemini-2.0-flash, api_base: "{base}", api_key: {GEMINI_KEY}}}
  - model_name: gemini-emb
    litellm_params: {{model: gemini/text-embedding-004, api_base: "{base}", api_key: {GEMINI_KEY}}}
    model_info: {{mode: embedding}}
router_settings: {{num_retries: 0}}
litellm_settings: {{drop_params: {drop_params}}}
"#
    )
}

const GEMINI_CHAT: &str = "/v1beta/models/gemini-2.0-flash:generateContent";
const GEMINI_STREAM: &str = "/v1beta/models/gemini-2.0-flash:streamGenerateContent";

fn gemini_answer(parts: Value, finish: &str) -> Value {
    json!({
        "candidates": [{"content": {"parts": parts, "role": "model"}, "finishReason": finish, "index": 0,
            "safetyRatings": [{"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"}]}],
        "usageMetadata": {"promptTokenCount": 8, "candidatesTokenCount": 12, "totalTokenCount": 20},
        "modelVersion": "gemini-2.0-flash", "responseId": "resp-gem-1"
    })
}

fn gemini_sse(events: &[Value]) -> String {
    events
        .iter()
        .map(|e| format!("data: {e}\r\n\r\n"))
        .collect()
}

#[tokio::test]
async fn gemini_chat_is_translated_and_the_key_stays_out_of_the_url() {
    let upstream = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(GEMINI_CHAT))
        .and(header("x-goog-api-key", GEMINI_KEY))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(gemini_answer(json!([{"text": "Bonjour!"}]), "STOP")),
        )
        .expect(1)
        .mount(&upstream)
        .await;
    let gw = TestGateway::start(&gemini_yaml(&upstream.uri(), false)).await;
    let r = gw
        .post(
            "/v1/chat/completions",
            json!({"model": "gemini", "temperature": 0.4, "max_completion_tokens": 200, "stop": "END",
                   "response_format": {"type": "json_object"}, "messages": [
                {"role": "system", "content": "Answer in French."},
                {"role": "user", "content": "Hello"},
                {"role": "assistant", "content": "Salut"},
                {"role": "user", "content": "Again"}
            ]}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["id"], "resp-gem-1");
    assert_eq!(answer["object"], "chat.completion");
    assert_eq!(answer["model"], "gemini-2.0-flash");
    assert_eq!(answer["choices"][0]["message"]["content"], "Bonjour!");
    assert_eq!(answer["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        answer["usage"],
        json!({"prompt_tokens": 8, "completion_tokens": 12, "total_tokens": 20})
    );
    let requests = upstream.received_requests().await.unwrap();
    assert!(requests[0].url.query().is_none(), "no key in the URL");
    let sent: Value = serde_json::from_slice(&requests[0].body).unwrap();
    assert_eq!(
        sent,
        json!({
            "systemInstruction": {"parts": [{"text": "Answer in French."}]},
            "contents": [
                {"role": "user", "parts": [{"text": "Hello"}]},
                {"role": "model", "parts": [{"text": "Salut"}]},
                {"role": "user", "parts": [{"text": "Again"}]}
            ],
            "generationConfig": {"temperature": 0.4, "maxOutputTokens": 200, "stopSequences": ["END"],
                                 "responseMimeType": "application/json"}
        })
    );
}

#[tokio::test]
async fn gemini_sse_stream_becomes_openai_chunks_with_usage() {
    let upstream = MockServer::start().await;
    let sse = gemini_sse(&[
        json!({"candidates": [{"content": {"parts": [{"text": "The sky"}], "role": "model"}, "index": 0}],
               "usageMetadata": {"promptTokenCount": 6, "totalTokenCount": 6}, "modelVersion": "gemini-2.0-flash",
               "responseId": "resp-s"}),
        json!({"candidates": [{"content": {"parts": [{"text": " is blue."}], "role": "model"}, "finishReason": "STOP", "index": 0}],
               "usageMetadata": {"promptTokenCount": 6, "candidatesTokenCount": 5, "totalTokenCount": 11},
               "modelVersion": "gemini-2.0-flash", "responseId": "resp-s"}),
    ]);
    Mock::given(method("POST"))
        .and(path(GEMINI_STREAM))
        .and(wiremock::matchers::query_param("alt", "sse"))
        .and(header("x-goog-api-key", GEMINI_KEY))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "text/event-stream")
                .set_body_string(sse),
        )
        .expect(1)
        .mount(&upstream)
        .await;
    let gw = TestGateway::start(&gemini_yaml(&upstream.uri(), false)).await;
    let chunks = sse_chunks(
        gw.post(
            "/v1/chat/completions",
            json!({"model": "gemini", "stream": true, "stream_options": {"include_usage": true},
                   "messages": [{"role": "user", "content": "Why is the sky blue?"}]}),
        )
        .await,
    )
    .await;
    assert_eq!(
        stream_text(&chunks),
        ("The sky is blue.".to_string(), Some("stop".to_string()))
    );
    assert_eq!(chunks[0]["id"], "resp-s");
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"], json!([]));
    assert_eq!(
        last["usage"],
        json!({"prompt_tokens": 6, "completion_tokens": 5, "total_tokens": 11})
    );
}

#[tokio::test]
async fn gemini_tools_become_function_declarations_and_calls_tool_calls() {
    let upstream = MockServer::start().await;
    let call = json!([{"functionCall": {"name": "get_weather", "args": {"city": "Lyon"}}}]);
    Mock::given(method("POST"))
        .and(path(GEMINI_CHAT))
        .and(body_partial_json(json!({
            "tools": [{"functionDeclarations": [{"name": "get_weather", "description": "Current weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]}],
            "toolConfig": {"functionCallingConfig": {"mode": "ANY"}},
            "contents": [
                {"role": "user", "parts": [{"text": "Weather?"}]},
                {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Nice"}}}]},
                {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"content": "sunny"}}}]}
            ]
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(gemini_answer(call.clone(), "STOP")))
        .expect(1)
        .mount(&upstream)
        .await;
    Mock::given(method("POST"))
        .and(path(GEMINI_STREAM))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "text/event-stream")
                .set_body_string(gemini_sse(&[json!({
                    "candidates": [{"content": {"parts": call, "role": "model"}, "finishReason": "STOP", "index": 0}],
                    "usageMetadata": {"promptTokenCount": 30, "candidatesTokenCount": 5, "totalTokenCount": 35}})])),
        )
        .expect(1)
        .mount(&upstream)
        .await;
    let gw = TestGateway::start(&gemini_yaml(&upstream.uri(), false)).await;
    let body = json!({"model": "gemini", "tools": weather_tool(), "tool_choice": "required", "messages": [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "call_a", "type": "function",
            "function": {"name": "get_weather", "arguments": "{\"city\":\"Nice\"}"}}]},
        {"role": "tool", "tool_call_id": "call_a", "content": "sunny"}
    ]});
    let r = gw.post("/v1/chat/completions", body.clone()).await;
    assert_eq!(r.status(), 200);
    let answer: Value = r.json().await.unwrap();
    let choice = &answer["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert!(choice["message"]["content"].is_null());
    let tc = &choice["message"]["tool_calls"][0];
    assert!(tc["id"].as_str().unwrap().starts_with("call_"));
    assert_eq!(tc["function"]["name"], "get_weather");
    assert_eq!(
        serde_json::from_str::<Value>(tc["function"]["arguments"].as_str().unwrap()).unwrap(),
        json!({"city": "Lyon"})
    );
    let mut streamed = body;
    streamed["stream"] = json!(true);
    let chunks = sse_chunks(gw.post("/v1/chat/completions", streamed).await).await;
    let calls = stream_tool_calls(&chunks);
    assert_eq!(calls.len(), 1);
    assert_eq!(
        (calls[0].1.as_str(), calls[0].2.as_str()),
        ("get_weather", r#"{"city":"Lyon"}"#)
    );
    assert_eq!(stream_text(&chunks).1.as_deref(), Some("tool_calls"));
}

#[tokio::test]
async fn gemini_embeddings_use_batch_embed_contents() {
    let upstream = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1beta/models/text-embedding-004:batchEmbedContents"))
        .and(header("x-goog-api-key", GEMINI_KEY))
        .and(body_partial_json(json!({"requests": [
            {"model": "models/text-embedding-004", "content": {"parts": [{"text": "first"}]}, "outputDimensionality": 3},
            {"model": "models/text-embedding-004", "content": {"parts": [{"text": "second"}]}, "outputDimensionality": 3}
        ]})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "embeddings": [{"values": [0.1, 0.2, 0.3]}, {"values": [0.4, 0.5, 0.6]}]
        })))
        .expect(1)
        .mount(&upstream)
        .await;
    let gw = TestGateway::start(&gemini_yaml(&upstream.uri(), false)).await;
    let r = gw
        .post(
            "/v1/embeddings",
            json!({"model": "gemini-emb", "input": ["first", "second"], "dimensions": 3}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["data"][0]["embedding"], json!([0.1, 0.2, 0.3]));
    assert_eq!(answer["data"][1]["embedding"], json!([0.4, 0.5, 0.6]));
    assert_eq!(answer["data"][1]["index"], 1);
    assert!(answer["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn gemini_errors_become_openai_errors_with_their_status() {
    let upstream = MockServer::start().await;
    let error = |code: u16, status: &str, message: &str| json!({"error": {"code": code, "message": message, "status": status}});
    for (marker, code, body) in [
        (
            "key",
            400,
            error(
                400,
                "INVALID_ARGUMENT",
                &format!("API key not valid: {GEMINI_KEY}. Please pass a valid API key."),
            ),
        ),
        (
            "quota",
            429,
            error(
                429,
                "RESOURCE_EXHAUSTED",
                "Resource has been exhausted (e.g. check quota).",
            ),
        ),
        (
            "busy",
            503,
            error(
                503,
                "UNAVAILABLE",
                "The model is overloaded. Please try again later.",
            ),
        ),
        (
            "long",
            400,
            error(
                400,
                "INVALID_ARGUMENT",
                "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).",
            ),
        ),
    ] {
        Mock::given(method("POST"))
            .and(path(GEMINI_CHAT))
            .and(body_partial_json(
                json!({"contents": [{"parts": [{"text": marker}]}]}),
            ))
            .respond_with(ResponseTemplate::new(code).set_body_json(body))
            .mount(&upstream)
            .await;
    }
    let gw = TestGateway::start(&gemini_yaml(&upstream.uri(), false)).await;
    let ask = |marker: &str| json!({"model": "gemini", "messages": [{"role": "user", "content": marker}]});
    let e = expect_error(
        gw.post("/v1/chat/completions", ask("key")).await,
        400,
        "invalid_request_error",
    )
    .await;
    let message = e["message"].as_str().unwrap();
    assert!(
        message.contains("API key not valid") && !message.contains(GEMINI_KEY),
        "{e}"
    );
    expect_error(
        gw.post("/v1/chat/completions", ask("quota")).await,
        429,
        "rate_limit_error",
    )
    .await;
    let e = expect_error(
        gw.post("/v1/chat/completions", ask("busy")).await,
        503,
        "api_error",
    )
    .await;
    assert!(e["message"].as_str().unwrap().contains("overloaded"), "{e}");
    let e = expect_error(
        gw.post("/v1/chat/completions", ask("long")).await,
        400,
        "invalid_request_error",
    )
    .await;
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("context_length_exceeded"),
        "{e}"
    );
}

#[tokio::test]
async fn gemini_unsupported_params_are_400_unless_dropped() {
    let upstream = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(GEMINI_CHAT))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(gemini_answer(json!([{"text": "ok"}]), "STOP")),
        )
        .mount(&upstream)
        .await;
    let body = json!({"model": "gemini", "logprobs": true, "top_logprobs": 2, "seed": 3,
                      "messages": [{"role": "user", "content": "hi"}]});
    let strict = TestGateway::start(&gemini_yaml(&upstream.uri(), false)).await;
    let e = expect_error(
        strict.post("/v1/chat/completions", body.clone()).await,
        400,
        "invalid_request_error",
    )
    .await;
    assert_eq!(e["param"], "logprobs");
    assert!(e["message"].as_str().unwrap().contains("gemini"), "{e}");
    assert!(upstream.received_requests().await.unwrap().is_empty());
    let dropping = TestGateway::start(&gemini_yaml(&upstream.uri(), true)).await;
    assert_eq!(
        dropping.post("/v1/chat/completions", body).await.status(),
        200
    );
    let sent = received_body(&upstream).await;
    assert_eq!(sent["generationConfig"], json!({"seed": 3}), "{sent}");
    assert!(sent.get("logprobs").is_none());
}

#[tokio::test]
async fn text_completions_work_on_translating_providers() {
    let upstream = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/generate"))
        .and(body_partial_json(json!({"model": "llama3.2", "prompt": "Once upon a time", "stream": false})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "model": "llama3.2", "response": " there was a gateway.", "done": true, "done_reason": "stop",
            "prompt_eval_count": 4, "eval_count": 5})))
        .expect(1)
        .mount(&upstream)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .and(body_partial_json(
            json!({"messages": [{"role": "user", "content": "Say hi"}]}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(anthropic_message(
            json!([{"type": "text", "text": "hi"}]),
            "end_turn",
        )))
        .expect(1)
        .mount(&upstream)
        .await;
    let base = upstream.uri();
    let yaml = format!(
        r#"
model_list:
  - model_name: llama-gen
    litellm_params: {{model: ollama/llama3.2, api_base: "{base}"}}
  - model_name: claude
    litellm_params: {{model: anthropic/claude-x, api_base: "{base}", api_key: k}}
"#
    );
    let gw = TestGateway::start(&yaml).await;
    let r = gw
        .post(
            "/v1/completions",
            json!({"model": "llama-gen", "prompt": "Once upon a time"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["object"], "text_completion");
    assert_eq!(answer["choices"][0]["text"], " there was a gateway.");
    assert_eq!(answer["usage"]["total_tokens"], 9);
    let r = gw
        .post(
            "/v1/completions",
            json!({"model": "claude", "prompt": "Say hi"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["object"], "text_completion");
    assert_eq!(answer["choices"][0]["text"], "hi");
    assert_eq!(answer["choices"][0]["finish_reason"], "stop");
}
