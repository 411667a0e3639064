//! `/v1/responses`: OpenAI's Responses API through the gateway. The store of responses kept
//! for `previous_response_id` (HX's own table), as a contract run on both backends.

use std::path::Path;

use hx_gateway::db::KeyStore;
use hx_gateway::db::responses::StoredResponse;

use crate::common::*;

fn row(id: &str, previous: Option<&str>, created_at: i64) -> StoredResponse {
    StoredResponse {
        id: id.into(),
        api_key: "hash-of-key".into(),
        model: "gpt".into(),
        previous_response_id: previous.map(Into::into),
        created_at,
        input: format!(r#"[{{"type":"message","role":"user","content":"{id}"}}]"#),
        response: format!(r#"{{"id":"{id}","object":"response","output":[]}}"#),
    }
}

async fn stored_responses_contract(store: KeyStore) {
    store
        .store_response(&row("resp_a", None, 100))
        .await
        .unwrap();
    store
        .store_response(&row("resp_b", Some("resp_a"), 200))
        .await
        .unwrap();
    store
        .store_response(&row("resp_c", Some("resp_b"), 300))
        .await
        .unwrap();
    assert_eq!(
        store.response("resp_b").await.unwrap(),
        Some(row("resp_b", Some("resp_a"), 200))
    );
    assert_eq!(store.response("resp_x").await.unwrap(), None);
    // A conversation reads back oldest first, from any point of it.
    let ids = |chain: Vec<StoredResponse>| chain.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.response_chain("resp_c").await.unwrap()),
        ["resp_a", "resp_b", "resp_c"]
    );
    assert_eq!(
        ids(store.response_chain("resp_b").await.unwrap()),
        ["resp_a", "resp_b"]
    );
    assert!(store.response_chain("resp_x").await.unwrap().is_empty());
    // Storing an id again replaces it.
    let mut changed = row("resp_c", Some("resp_b"), 300);
    changed.response = r#"{"id":"resp_c","status":"completed"}"#.into();
    store.store_response(&changed).await.unwrap();
    assert_eq!(store.response("resp_c").await.unwrap(), Some(changed));
    // Pruning takes what is older than the cut; a chain then ends where its past was pruned.
    assert_eq!(store.prune_responses(150).await.unwrap(), 1);
    assert_eq!(
        ids(store.response_chain("resp_c").await.unwrap()),
        ["resp_b", "resp_c"]
    );
    assert!(store.delete_response("resp_b").await.unwrap());
    assert!(!store.delete_response("resp_b").await.unwrap());
    assert_eq!(
        ids(store.response_chain("resp_c").await.unwrap()),
        ["resp_c"]
    );
}

#[tokio::test]
async fn stored_responses_chain_replace_prune_and_delete_in_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = KeyStore::connect(None, dir.path(), true).await.unwrap();
    stored_responses_contract(store).await;
}

#[tokio::test]
async fn stored_responses_chain_replace_prune_and_delete_in_postgres() {
    let db = ScratchDb::create().await;
    let store = KeyStore::connect(Some(&db.url()), Path::new("/nonexistent"), true)
        .await
        .unwrap();
    stored_responses_contract(store).await;
}

// ---- the route --------------------------------------------------------------------------

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

pub(crate) fn route_yaml(base: &str) -> String {
    format!(
        r#"
model_list:
  - model_name: bridged
    litellm_params:
      model: openai/local-model
      api_base: {base}/v1
      api_key: sk-up-bridged
  - model_name: native
    litellm_params:
      model: openai/gpt-5-mini
      api_base: {base}/v1
      api_key: sk-up-native
    model_info:
      supports_responses_api: true
  - model_name: other
    litellm_params:
      model: openai/other
      api_base: {base}/v1
router_settings: {{num_retries: 0}}
"#
    )
}

fn chat_answer(text: &str) -> Value {
    json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "local-model",
           "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
           "usage": {"prompt_tokens": 21, "completion_tokens": 4, "total_tokens": 25}})
}

fn codex_like_body(model: &str, stream: bool) -> Value {
    json!({
        "model": model,
        "instructions": "You are a coding agent.",
        "input": [
            {"type": "message", "role": "developer", "id": "msg_dev", "content": [{"type": "input_text", "text": "Sandbox: read-only."}]},
            {"type": "message", "role": "user", "id": "msg_user", "content": [{"type": "input_text", "text": "Say hi"}]}
        ],
        "tools": [{"type": "function", "name": "shell", "description": "Runs a command", "parameters": {"type": "object", "properties": {"command": {"type": "array", "items": {"type": "string"}}}, "required": ["command"]}, "strict": false},
                  {"type": "web_search"}],
        "tool_choice": "auto",
        "parallel_tool_calls": false,
        "reasoning": {"effort": "medium", "summary": "auto"},
        "store": false,
        "include": ["reasoning.encrypted_content"],
        "stream": stream
    })
}

async fn generate_key(gw: &TestGateway, body: Value) -> String {
    let r = gw.post("/key/generate", body).await;
    assert_eq!(r.status(), 200);
    r.json::<Value>().await.unwrap()["key"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn a_responses_call_to_a_chat_only_deployment_is_bridged_both_ways_and_charged_as_aresponses()
{
    let upstream = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(chat_answer("Hi there.")))
        .mount(&upstream)
        .await;
    let gw = TestGateway::start(&route_yaml(&upstream.uri())).await;
    let key = generate_key(&gw, json!({"models": ["bridged"]})).await;
    let r = gw
        .client
        .post(gw.url("/v1/responses"))
        .bearer_auth(&key)
        .json(&codex_like_body("bridged", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key("x-litellm-model-id"));
    let response: Value = r.json().await.unwrap();
    assert_eq!(response["object"], "response");
    assert!(response["id"].as_str().unwrap().starts_with("resp_"));
    assert_eq!(response["status"], "completed");
    assert_eq!(response["model"], "bridged");
    let message = response["output"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["type"] == "message")
        .unwrap();
    assert_eq!(message["content"][0]["type"], "output_text");
    assert_eq!(message["content"][0]["text"], "Hi there.");
    assert_eq!(response["usage"]["input_tokens"], 21);
    assert_eq!(response["usage"]["output_tokens"], 4);
    // What reached the chat upstream: the instructions and developer turn as system, the
    // function tool, no hosted tool, the effort.
    let sent: Value =
        serde_json::from_slice(&upstream.received_requests().await.unwrap()[0].body).unwrap();
    assert_eq!(sent["model"], "local-model");
    assert_eq!(sent["messages"][0]["role"], "system");
    assert!(
        sent["messages"][0]["content"]
            .as_str()
            .unwrap()
            .contains("You are a coding agent.")
    );
    assert_eq!(
        sent["messages"].as_array().unwrap().last().unwrap()["content"],
        "Say hi"
    );
    let tools = sent["tools"].as_array().unwrap();
    assert_eq!(tools.len(), 1, "{tools:?}");
    assert_eq!(tools[0]["function"]["name"], "shell");
    assert_eq!(sent["reasoning_effort"], "medium");
    assert_eq!(
        spend_rows(&gw, &key).await,
        [("aresponses".to_string(), 21)]
    );
}

#[tokio::test]
async fn a_bridged_stream_has_the_responses_events_in_order_with_sequence_numbers() {
    let upstream = MockServer::start().await;
    let chunks = [
        json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hel"}}]}),
        json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [{"index": 0, "delta": {"content": "lo"}}]}),
        json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "call_9", "type": "function", "function": {"name": "shell", "arguments": "{\"command\":"}}]}}]}),
        json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "[\"ls\"]}"}}]}}]}),
        json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}),
        json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [], "usage": {"prompt_tokens": 30, "completion_tokens": 9, "total_tokens": 39}}),
    ];
    let sse = openai_sse(&chunks);
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "text/event-stream")
                .set_body_string(sse),
        )
        .mount(&upstream)
        .await;
    let gw = TestGateway::start(&route_yaml(&upstream.uri())).await;
    let key = generate_key(&gw, json!({})).await;
    let r = gw
        .client
        .post(gw.url("/responses"))
        .bearer_auth(&key)
        .json(&codex_like_body("bridged", true))
        .send()
        .await
        .unwrap();
    let events = typed_events(r).await;
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e["sequence_number"], i as u64, "{e}");
    }
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types[0], "response.created");
    assert_eq!(types[1], "response.in_progress");
    assert_eq!(*types.last().unwrap(), "response.completed");
    for expected in [
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
    ] {
        assert!(types.contains(&expected), "{expected} missing: {types:?}");
    }
    let text: String = events
        .iter()
        .filter(|e| e["type"] == "response.output_text.delta")
        .map(|e| e["delta"].as_str().unwrap())
        .collect();
    assert_eq!(text, "Hello");
    let done = events.last().unwrap();
    let output = done["response"]["output"].as_array().unwrap();
    let call = output
        .iter()
        .find(|i| i["type"] == "function_call")
        .unwrap();
    assert_eq!(call["call_id"], "call_9");
    assert_eq!(call["name"], "shell");
    assert_eq!(
        serde_json::from_str::<Value>(call["arguments"].as_str().unwrap()).unwrap(),
        json!({"command": ["ls"]})
    );
    assert_eq!(done["response"]["usage"]["input_tokens"], 30);
    assert_eq!(events[0]["response"]["id"], done["response"]["id"]);
    assert_eq!(
        spend_rows(&gw, &key).await,
        [("aresponses".to_string(), 30)]
    );
}

#[tokio::test]
async fn a_deployment_that_serves_the_responses_api_gets_the_request_as_sent_and_its_events_relayed()
 {
    let upstream = MockServer::start().await;
    let completed = json!({"type": "response.completed", "sequence_number": 2, "response": {
        "id": "resp_upstream", "object": "response", "status": "completed", "model": "gpt-5-mini",
        "output": [{"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
                    "content": [{"type": "output_text", "text": "native", "annotations": []}]}],
        "usage": {"input_tokens": 12, "input_tokens_details": {"cached_tokens": 2},
                  "output_tokens": 3, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 15}}});
    let events = [
        json!({"type": "response.created", "sequence_number": 0, "response": {"id": "resp_upstream", "object": "response", "status": "in_progress", "output": []}}),
        json!({"type": "response.output_text.delta", "sequence_number": 1, "item_id": "msg_1", "output_index": 0, "content_index": 0, "delta": "native"}),
        completed,
    ];
    let sse: String = events
        .iter()
        .map(|e| format!("event: {}\ndata: {e}\n\n", e["type"].as_str().unwrap()))
        .collect();
    Mock::given(method("POST"))
        .and(path("/v1/responses"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "text/event-stream")
                .set_body_string(sse),
        )
        .mount(&upstream)
        .await;
    let gw = TestGateway::start(&route_yaml(&upstream.uri())).await;
    let key = generate_key(&gw, json!({})).await;
    let mut body = codex_like_body("native", true);
    body["previous_response_id"] = json!("resp_earlier_at_openai");
    let r = gw
        .client
        .post(gw.url("/v1/responses"))
        .bearer_auth(&key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let got = typed_events(r).await;
    assert_eq!(got.len(), 3);
    assert_eq!(got[2], events[2]);
    let request = &upstream.received_requests().await.unwrap()[0];
    assert_eq!(request.headers["authorization"], "Bearer sk-up-native");
    let sent: Value = serde_json::from_slice(&request.body).unwrap();
    let mut expected = body.clone();
    expected["model"] = json!("gpt-5-mini");
    assert_eq!(sent, expected, "passed through with the model renamed");
    assert_eq!(
        spend_rows(&gw, &key).await,
        [("aresponses".to_string(), 12)]
    );
}

#[tokio::test]
async fn a_responses_call_for_a_model_the_key_may_not_use_is_refused_in_openais_shape() {
    let upstream = MockServer::start().await;
    let gw = TestGateway::start(&route_yaml(&upstream.uri())).await;
    let key = generate_key(&gw, json!({"models": ["bridged"]})).await;
    let mut body = codex_like_body("other", false);
    body["fallbacks"] = json!(["native"]);
    let r = gw
        .client
        .post(gw.url("/v1/responses"))
        .bearer_auth(&key)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let error: Value = r.json().await.unwrap();
    assert!(error["error"]["message"].is_string(), "{error}");
    assert!(error["error"]["type"].is_string(), "{error}");
    let r = gw
        .client
        .post(gw.url("/v1/responses"))
        .bearer_auth(&key)
        .json(&json!({"model": "bridged"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let error: Value = r.json().await.unwrap();
    assert_eq!(error["error"]["param"], "input", "{error}");
    assert!(upstream.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_bridged_stream_whose_upstream_breaks_off_ends_with_response_failed() {
    let upstream = MockServer::start().await;
    let sse = format!(
        "data: {}\n\ndata: {{not json\n\n",
        json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [{"index": 0, "delta": {"role": "assistant", "content": "partial"}}]})
    );
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "text/event-stream")
                .set_body_string(sse),
        )
        .mount(&upstream)
        .await;
    let gw = TestGateway::start(&route_yaml(&upstream.uri())).await;
    let r = gw
        .client
        .post(gw.url("/v1/responses"))
        .bearer_auth(MASTER)
        .json(&codex_like_body("bridged", true))
        .send()
        .await
        .unwrap();
    let events = typed_events(r).await;
    let last = events.last().unwrap();
    assert_eq!(last["type"], "response.failed", "{events:?}");
    assert_eq!(last["response"]["status"], "failed");
    assert!(last["response"]["error"]["message"].is_string(), "{last}");
    assert_eq!(last["sequence_number"], (events.len() - 1) as u64);
}

// ---- stored responses -------------------------------------------------------------------

/// An upstream that answers each chat with how many messages it got and the last one's text.
struct Echo;

impl wiremock::Respond for Echo {
    fn respond(&self, request: &wiremock::Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        let messages = body["messages"].as_array().cloned().unwrap_or_default();
        let last = messages
            .last()
            .and_then(|m| m["content"].as_str())
            .unwrap_or("")
            .to_string();
        ResponseTemplate::new(200).set_body_json(chat_answer(&format!(
            "{} messages, last: {last}",
            messages.len()
        )))
    }
}

async fn post_response(gw: &TestGateway, key: &str, body: &Value) -> reqwest::Response {
    gw.client
        .post(gw.url("/v1/responses"))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn get_as(gw: &TestGateway, key: &str, path: &str) -> reqwest::Response {
    gw.client
        .get(gw.url(path))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
}

fn turn(text: &str) -> Value {
    json!({"model": "bridged", "input": text})
}

fn output_text(response: &Value) -> String {
    response["output"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["type"] == "message")
        .flat_map(|i| i["content"].as_array().unwrap().iter())
        .map(|p| p["text"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn a_stored_response_continues_a_conversation_across_a_restart_and_only_for_its_key() {
    let upstream = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(Echo)
        .mount(&upstream)
        .await;
    let data = tempfile::tempdir().unwrap();
    let env = || {
        std::collections::HashMap::from([(
            "HX_DATA_DIR".to_string(),
            data.path().display().to_string(),
        )])
    };
    let (key, other, first_id) = {
        let gw = TestGateway::start_with_env(&route_yaml(&upstream.uri()), env()).await;
        let key = generate_key(&gw, json!({})).await;
        let other = generate_key(&gw, json!({})).await;
        let r = post_response(&gw, &key, &turn("My name is Ada.")).await;
        assert_eq!(r.status(), 200);
        let first: Value = r.json().await.unwrap();
        assert_eq!(output_text(&first), "1 messages, last: My name is Ada.");
        (key, other, first["id"].as_str().unwrap().to_string())
    };
    // A new gateway on the same data directory.
    let gw = TestGateway::start_with_env(&route_yaml(&upstream.uri()), env()).await;
    let mut second = turn("What is my name?");
    second["previous_response_id"] = json!(first_id);
    let r = post_response(&gw, &key, &second).await;
    assert_eq!(r.status(), 200);
    let answer: Value = r.json().await.unwrap();
    assert_eq!(output_text(&answer), "3 messages, last: What is my name?");
    let sent: Value = serde_json::from_slice(
        &upstream
            .received_requests()
            .await
            .unwrap()
            .last()
            .unwrap()
            .body,
    )
    .unwrap();
    assert_eq!(sent["messages"][0]["content"], "My name is Ada.");
    assert_eq!(sent["messages"][1]["role"], "assistant");
    assert_eq!(
        sent["messages"][1]["content"],
        "1 messages, last: My name is Ada."
    );
    // The stored response is the key's: another key is told it does not exist.
    let r = post_response(&gw, &other, &second).await;
    assert_eq!(r.status(), 404);
    let error: Value = r.json().await.unwrap();
    assert_eq!(error["error"]["param"], "previous_response_id", "{error}");
    let path = format!("/v1/responses/{first_id}");
    assert_eq!(get_as(&gw, &other, &path).await.status(), 404);
    let r = gw
        .client
        .delete(gw.url(&path))
        .bearer_auth(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // The owner and the master key read it.
    let r = get_as(&gw, &key, &path).await;
    assert_eq!(r.status(), 200);
    let stored: Value = r.json().await.unwrap();
    assert_eq!(stored["id"], first_id.as_str());
    assert_eq!(output_text(&stored), "1 messages, last: My name is Ada.");
    assert_eq!(get_as(&gw, MASTER, &path).await.status(), 200);
    let r = get_as(&gw, &key, &format!("{path}/input_items")).await;
    assert_eq!(r.status(), 200);
    let items: Value = r.json().await.unwrap();
    assert_eq!(items["object"], "list");
    assert_eq!(items["data"][0]["type"], "message");
    assert_eq!(items["data"][0]["role"], "user");
    assert_eq!(items["data"][0]["content"][0]["text"], "My name is Ada.");
    assert!(items["data"][0]["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(items["has_more"], false);
    // Deleted by its owner, it is gone for everyone.
    let r = gw
        .client
        .delete(gw.url(&path))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["deleted"], true);
    assert_eq!(get_as(&gw, MASTER, &path).await.status(), 404);
}

#[tokio::test]
async fn a_streamed_answer_is_stored_and_store_false_keeps_nothing() {
    let upstream = MockServer::start().await;
    let chunks = [
        json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [{"index": 0, "delta": {"role": "assistant", "content": "streamed words"}}]}),
        json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
    ];
    let sse = openai_sse(&chunks);
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "text/event-stream")
                .set_body_string(sse),
        )
        .mount(&upstream)
        .await;
    let gw = TestGateway::start(&route_yaml(&upstream.uri())).await;
    let key = generate_key(&gw, json!({})).await;
    let mut body = turn("Stream it");
    body["stream"] = json!(true);
    let events = typed_events(post_response(&gw, &key, &body).await).await;
    let id = events.last().unwrap()["response"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = get_as(&gw, &key, &format!("/v1/responses/{id}")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(output_text(&r.json().await.unwrap()), "streamed words");
    // store: false keeps nothing, streamed or not.
    body["store"] = json!(false);
    let events = typed_events(post_response(&gw, &key, &body).await).await;
    let id = events.last().unwrap()["response"]["id"].as_str().unwrap();
    assert_eq!(
        get_as(&gw, &key, &format!("/v1/responses/{id}"))
            .await
            .status(),
        404
    );
}

#[tokio::test]
async fn stored_responses_past_their_retention_are_pruned() {
    let gw = TestGateway::start(&format!(
        "model_list: []\ngeneral_settings: {{master_key: {MASTER}, responses_retention_days: 1}}\n"
    ))
    .await;
    let store = gw.state.keys().unwrap().store().clone();
    let now = chrono::Utc::now().timestamp();
    store
        .store_response(&row("resp_old", None, now - 2 * 86_400))
        .await
        .unwrap();
    store
        .store_response(&row("resp_new", None, now - 3_600))
        .await
        .unwrap();
    assert_eq!(
        hx_gateway::proxy::responses::prune(&gw.state)
            .await
            .unwrap(),
        1
    );
    assert_eq!(store.response("resp_old").await.unwrap(), None);
    assert!(store.response("resp_new").await.unwrap().is_some());
}

#[tokio::test]
async fn an_azure_deployment_gets_the_responses_api_of_its_resource_with_its_key() {
    let upstream = MockServer::start().await;
    let answer = json!({"id": "resp_azure", "object": "response", "status": "completed", "model": "my-gpt5",
        "output": [{"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
                    "content": [{"type": "output_text", "text": "from azure", "annotations": []}]}],
        "usage": {"input_tokens": 7, "output_tokens": 2, "total_tokens": 9}});
    Mock::given(method("POST"))
        .and(path("/openai/responses"))
        .and(wiremock::matchers::query_param(
            "api-version",
            "2025-04-01-preview",
        ))
        .and(wiremock::matchers::header("api-key", "azure-secret-1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(&answer))
        .mount(&upstream)
        .await;
    let gw = TestGateway::start(&format!(
        "model_list:\n  - model_name: az\n    litellm_params:\n      model: azure/my-gpt5\n      api_base: {}\n      api_key: azure-secret-1\n      api_version: \"2024-10-21\"\nrouter_settings: {{num_retries: 0}}\n",
        upstream.uri()
    ))
    .await;
    let key = generate_key(&gw, json!({})).await;
    let r = post_response(&gw, &key, &json!({"model": "az", "input": "hi"})).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap(), answer);
    let sent: Value =
        serde_json::from_slice(&upstream.received_requests().await.unwrap()[0].body).unwrap();
    assert_eq!(sent, json!({"model": "my-gpt5", "input": "hi"}));
    assert_eq!(spend_rows(&gw, &key).await, [("aresponses".to_string(), 7)]);
}

#[tokio::test]
async fn a_repeated_responses_call_is_answered_from_the_cache_unless_streamed() {
    let upstream = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(chat_answer("Cached words.")))
        .mount(&upstream)
        .await;
    let yaml = route_yaml(&upstream.uri())
        + "litellm_settings: {cache: true, cache_params: {type: local}}\n";
    let gw = TestGateway::start(&yaml).await;
    let key = generate_key(&gw, json!({})).await;
    let body = json!({"model": "bridged", "input": "same question", "store": false});
    let first = post_response(&gw, &key, &body).await;
    assert_eq!(first.status(), 200);
    let first: Value = first.json().await.unwrap();
    let second = post_response(&gw, &key, &body).await;
    assert_eq!(second.status(), 200);
    assert!(second.headers().contains_key("x-litellm-cache-key"));
    let second: Value = second.json().await.unwrap();
    assert_eq!(output_text(&second), "Cached words.");
    assert_eq!(second, first);
    assert_eq!(upstream.received_requests().await.unwrap().len(), 1);
    // A stream is not served from the cache.
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let _ = post_response(&gw, &key, &streamed).await.text().await;
    assert_eq!(upstream.received_requests().await.unwrap().len(), 2);
}
