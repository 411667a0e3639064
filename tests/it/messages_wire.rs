//! `/v1/messages` against each provider family's real wire format: the upstreams answer with
//! fixtures shaped like the providers' documented examples (`tests/fixtures/messages/`, whose
//! README names each source), streamed and not. Each test checks what reached the upstream (its
//! path and its own request format) and that the client got a correct Anthropic Message or
//! event stream. Then tool-use round trips with thinking: the client sends the assistant turn
//! back as it got it, and the thinking and its signature reach the upstream intact.

use serde_json::{Value, json};
use wiremock::matchers::{body_string_contains, header, method, path, query_param};
use wiremock::{Mock, MockBuilder, MockServer, ResponseTemplate};

use crate::common::*;
use crate::messages::{post_messages, received};

fn fixture(name: &str) -> String {
    let file = format!(
        "{}/tests/fixtures/messages/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{file}: {e}"))
}

fn fixture_json(name: &str) -> Value {
    serde_json::from_str(&fixture(name)).unwrap()
}

/// One deployment of each provider family, all at the one mock upstream.
fn yaml(base: &str) -> String {
    format!(
        r#"
model_list:
  - model_name: gpt
    litellm_params: {{model: openai/gpt-4o-mini, api_base: "{base}/v1", api_key: sk-openai-0001}}
  - model_name: azure-gpt
    litellm_params: {{model: azure/gpt-4o-prod, api_base: "{base}", api_key: azure-key-0001, api_version: "2024-10-21"}}
  - model_name: gemini
    litellm_params: {{model: gemini/gemini-2.5-flash, api_base: "{base}", api_key: AIzaSy-test-0001}}
  - model_name: llama
    litellm_params: {{model: ollama_chat/llama3.2, api_base: "{base}"}}
  - model_name: claude
    litellm_params: {{model: anthropic/claude-sonnet-4-5, api_base: "{base}", api_key: sk-ant-0001}}
  - model_name: claude-proxy
    litellm_params: {{model: openai/claude-sonnet-4-5, api_base: "{base}/v1", api_key: sk-litellm-0001}}
  - model_name: deepseek
    litellm_params: {{model: openai/deepseek-reasoner, api_base: "{base}/v1", api_key: sk-ds-0001}}
router_settings: {{num_retries: 0}}
"#
    )
}

async fn gateway() -> (MockServer, TestGateway) {
    let upstream = MockServer::start().await;
    let gw = TestGateway::start(&yaml(&upstream.uri())).await;
    (upstream, gw)
}

fn json_answer(name: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(fixture(name), "application/json")
}

fn stream_answer(name: &str, content_type: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(fixture(name), content_type)
}

fn sse_answer(name: &str) -> ResponseTemplate {
    stream_answer(name, "text/event-stream")
}

/// The tool of OpenAI's and Azure's examples, as a Messages tool.
fn weather_tool() -> Value {
    json!({
        "name": "get_current_weather",
        "description": "Get the current weather in a given location",
        "input_schema": {
            "type": "object",
            "properties": {
                "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}
            },
            "required": ["location"]
        }
    })
}

/// The same tool as OpenAI's `tools` entry.
fn weather_function() -> Value {
    let tool = weather_tool();
    json!({"type": "function", "function": {
        "name": tool["name"], "description": tool["description"], "parameters": tool["input_schema"]
    }})
}

/// A Messages request with a system prompt, the weather tool and one question.
fn ask(model: &str, question: &str, stream: bool) -> Value {
    json!({
        "model": model,
        "max_tokens": 1024,
        "stream": stream,
        "system": "You are a weather assistant.",
        "tools": [weather_tool()],
        "tool_choice": {"type": "auto"},
        "messages": [{"role": "user", "content": question}]
    })
}

async fn message(gw: &TestGateway, body: &Value) -> Value {
    let r = post_messages(gw, "/v1/messages", MASTER, body, &[]).await;
    assert_eq!(r.status(), 200);
    let message: Value = r.json().await.unwrap();
    assert_eq!(message["type"], "message", "{message}");
    assert_eq!(message["role"], "assistant");
    message
}

async fn events(gw: &TestGateway, body: &Value) -> Vec<Value> {
    typed_events(post_messages(gw, "/v1/messages", MASTER, body, &[]).await).await
}

/// Each event's type, and its delta's type for `content_block_delta`.
fn kinds(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            let kind = e["type"].as_str().unwrap();
            match e["delta"]["type"].as_str() {
                Some(delta) if kind == "content_block_delta" => format!("{kind}:{delta}"),
                _ => kind.to_string(),
            }
        })
        .collect()
}

/// The Message a client builds from a stream, as Anthropic's SDKs accumulate it: blocks by
/// index (which must count up from 0), deltas appended, a tool's partial JSON parsed at its
/// block's stop, the stop reason and output tokens of `message_delta`.
fn accumulate(events: &[Value]) -> Value {
    assert_eq!(events[0]["type"], "message_start");
    assert_eq!(events.last().unwrap()["type"], "message_stop");
    let mut message = events[0]["message"].clone();
    let mut content: Vec<Value> = Vec::new();
    let mut partial_json: Vec<String> = Vec::new();
    let mut open: Option<usize> = None;
    for e in events {
        let index = e["index"].as_u64().map(|i| i as usize);
        match e["type"].as_str().unwrap() {
            "content_block_start" => {
                assert_eq!(open, None, "a block starts while another is open: {e}");
                assert_eq!(index, Some(content.len()), "block indexes count up: {e}");
                open = index;
                content.push(e["content_block"].clone());
                partial_json.push(String::new());
            }
            "content_block_delta" => {
                let i = index.unwrap();
                assert_eq!(open, Some(i), "a delta for the open block: {e}");
                let (block, delta) = (&mut content[i], &e["delta"]);
                let append = |block: &mut Value, key: &str, more: &Value| {
                    let text =
                        format!("{}{}", block[key].as_str().unwrap(), more.as_str().unwrap());
                    block[key] = json!(text);
                };
                match delta["type"].as_str().unwrap() {
                    "text_delta" => append(block, "text", &delta["text"]),
                    "thinking_delta" => append(block, "thinking", &delta["thinking"]),
                    "signature_delta" => block["signature"] = delta["signature"].clone(),
                    "input_json_delta" => {
                        partial_json[i].push_str(delta["partial_json"].as_str().unwrap());
                    }
                    other => panic!("unexpected delta {other}"),
                }
            }
            "content_block_stop" => {
                let i = index.unwrap();
                assert_eq!(open.take(), Some(i), "the open block stops: {e}");
                if content[i]["type"] == "tool_use" && !partial_json[i].is_empty() {
                    content[i]["input"] = serde_json::from_str(&partial_json[i]).unwrap();
                }
            }
            "message_delta" => {
                message["stop_reason"] = e["delta"]["stop_reason"].clone();
                message["usage"]["output_tokens"] = e["usage"]["output_tokens"].clone();
            }
            _ => {}
        }
    }
    assert_eq!(open, None, "every block was stopped");
    message["content"] = Value::Array(content);
    message
}

async fn upstream_bodies(upstream: &MockServer) -> Vec<Value> {
    received(upstream)
        .await
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect()
}

// ---- OpenAI --------------------------------------------------------------------------

#[tokio::test]
async fn an_openai_tool_call_answer_reaches_the_client_as_a_tool_use_message() {
    let (upstream, gw) = gateway().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(header("authorization", "Bearer sk-openai-0001"))
        .respond_with(json_answer("openai/chat_tool_call.json"))
        .expect(1)
        .mount(&upstream)
        .await;
    let mut body = ask("gpt", "What's the weather like in Boston today?", false);
    body["tool_choice"] = json!({"type": "any"});
    let got = message(&gw, &body).await;
    assert!(got["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(got["model"], "gpt", "the name the client asked for");
    assert_eq!(
        got["content"],
        json!([{"type": "tool_use", "id": "call_abc123", "name": "get_current_weather",
                "input": {"location": "Boston, MA"}}]),
        "the JSON-string arguments arrive parsed"
    );
    assert_eq!(got["stop_reason"], "tool_use");
    assert_eq!(got["stop_sequence"], Value::Null);
    assert_eq!(
        got["usage"],
        json!({"input_tokens": 82, "output_tokens": 17, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0})
    );
    let sent = &upstream_bodies(&upstream).await[0];
    assert_eq!(sent["model"], "gpt-4o-mini");
    assert_eq!(sent["max_tokens"], 1024);
    assert_eq!(
        sent["messages"],
        json!([
            {"role": "system", "content": "You are a weather assistant."},
            {"role": "user", "content": "What's the weather like in Boston today?"}
        ])
    );
    assert_eq!(sent["tools"], json!([weather_function()]));
    assert_eq!(
        sent["tool_choice"], "required",
        "Anthropic's any is OpenAI's required"
    );
}

#[tokio::test]
async fn an_openai_tool_call_stream_reaches_the_client_as_input_json_deltas_in_order() {
    let (upstream, gw) = gateway().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(sse_answer("openai/chat_tool_call.sse"))
        .expect(1)
        .mount(&upstream)
        .await;
    let got = events(
        &gw,
        &ask("gpt", "What's the weather like in Paris today?", true),
    )
    .await;
    let mut expected = vec!["message_start", "content_block_start"];
    expected.extend(["content_block_delta:input_json_delta"; 7]);
    expected.extend(["content_block_stop", "message_delta", "message_stop"]);
    assert_eq!(kinds(&got), expected);
    assert_eq!(got[0]["message"]["model"], "gpt");
    let message = accumulate(&got);
    assert_eq!(
        message["content"],
        json!([{"type": "tool_use", "id": "call_DdmO9pD3xa9XTPNJ32zg2hcA", "name": "get_weather",
                "input": {"location": "Paris, France"}}])
    );
    assert_eq!(message["stop_reason"], "tool_use");
    let delta = &got[got.len() - 2];
    assert_eq!(delta["usage"]["input_tokens"], 66);
    assert_eq!(delta["usage"]["output_tokens"], 17);
    let sent = &upstream_bodies(&upstream).await[0];
    assert_eq!(sent["stream"], true);
    assert_eq!(sent["stream_options"], json!({"include_usage": true}));
    assert_eq!(sent["tools"], json!([weather_function()]));
    assert_eq!(sent["tool_choice"], "auto");
}

// ---- Azure OpenAI --------------------------------------------------------------------

const AZURE_CHAT: &str = "/openai/deployments/gpt-4o-prod/chat/completions";

#[tokio::test]
async fn an_azure_answer_with_content_filter_results_reaches_the_client_as_a_tool_use_message() {
    let (upstream, gw) = gateway().await;
    Mock::given(method("POST"))
        .and(path(AZURE_CHAT))
        .and(query_param("api-version", "2024-10-21"))
        .and(header("api-key", "azure-key-0001"))
        .respond_with(json_answer("azure/chat_tool_call.json"))
        .expect(1)
        .mount(&upstream)
        .await;
    let got = message(
        &gw,
        &ask("azure-gpt", "What's the weather in San Francisco?", false),
    )
    .await;
    assert_eq!(
        got["content"],
        json!([{"type": "tool_use", "id": "call_BnnMSmNmBvUaLdkdP4CPz4Dx", "name": "get_current_weather",
                "input": {"location": "San Francisco, CA", "unit": "celsius"}}])
    );
    assert_eq!(got["stop_reason"], "tool_use");
    assert_eq!(got["usage"]["input_tokens"], 88);
    assert_eq!(got["usage"]["output_tokens"], 21);
    let sent = &upstream_bodies(&upstream).await[0];
    assert_eq!(
        sent["messages"][1]["content"],
        "What's the weather in San Francisco?"
    );
    assert_eq!(sent["tools"], json!([weather_function()]));
}

#[tokio::test]
async fn an_azure_stream_with_its_prompt_filter_preamble_reaches_the_client_as_text_events() {
    let (upstream, gw) = gateway().await;
    Mock::given(method("POST"))
        .and(path(AZURE_CHAT))
        .and(query_param("api-version", "2024-10-21"))
        .respond_with(sse_answer("azure/chat_stream.sse"))
        .expect(1)
        .mount(&upstream)
        .await;
    let got = events(
        &gw,
        &ask(
            "azure-gpt",
            "Does Azure OpenAI support customer managed keys?",
            true,
        ),
    )
    .await;
    assert_eq!(
        kinds(&got),
        [
            "message_start",
            "content_block_start",
            "content_block_delta:text_delta",
            "content_block_delta:text_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ],
        "the choice-less filter frames add nothing"
    );
    let message = accumulate(&got);
    assert_eq!(
        message["content"],
        json!([{"type": "text", "text": "Yes, customer managed keys are supported by Azure OpenAI."}])
    );
    assert_eq!(message["stop_reason"], "end_turn");
    assert_eq!(got[got.len() - 2]["usage"]["output_tokens"], 12);
    assert_eq!(upstream_bodies(&upstream).await[0]["stream"], true);
}

// ---- Gemini --------------------------------------------------------------------------

/// The request Gemini gets for [`ask`] with `question`.
fn gemini_request(question: &str) -> Value {
    let tool = weather_tool();
    json!({
        "contents": [{"role": "user", "parts": [{"text": question}]}],
        "systemInstruction": {"parts": [{"text": "You are a weather assistant."}]},
        "generationConfig": {"maxOutputTokens": 1024},
        "tools": [{"functionDeclarations": [{"name": tool["name"], "description": tool["description"],
                                             "parameters": tool["input_schema"]}]}],
        "toolConfig": {"functionCallingConfig": {"mode": "AUTO"}}
    })
}

#[tokio::test]
async fn a_gemini_answer_with_a_thought_and_a_function_call_reaches_the_client_as_thinking_and_tool_use()
 {
    let (upstream, gw) = gateway().await;
    Mock::given(method("POST"))
        .and(path("/v1beta/models/gemini-2.5-flash:generateContent"))
        .and(header("x-goog-api-key", "AIzaSy-test-0001"))
        .respond_with(json_answer("gemini/generate_content_tool_call.json"))
        .expect(1)
        .mount(&upstream)
        .await;
    let got = message(
        &gw,
        &ask("gemini", "What's the temperature in London?", false),
    )
    .await;
    let content = got["content"].as_array().unwrap();
    assert_eq!(content.len(), 2, "{got}");
    assert_eq!(content[0]["type"], "thinking");
    assert!(
        content[0]["thinking"]
            .as_str()
            .unwrap()
            .starts_with("**Checking the temperature**")
    );
    assert_eq!(
        content[0]["signature"], "",
        "Gemini's thoughts carry no Anthropic signature"
    );
    assert_eq!(content[1]["type"], "tool_use");
    assert!(content[1]["id"].as_str().unwrap().starts_with("call_"));
    assert_eq!(content[1]["name"], "get_current_temperature");
    assert_eq!(content[1]["input"], json!({"location": "London"}));
    assert_eq!(got["stop_reason"], "tool_use");
    assert_eq!(got["usage"]["input_tokens"], 61);
    assert_eq!(
        got["usage"]["output_tokens"],
        17 + 64,
        "thoughts are output"
    );
    let sent = &upstream_bodies(&upstream).await[0];
    assert_eq!(sent, &gemini_request("What's the temperature in London?"));
}

#[tokio::test]
async fn a_gemini_sse_stream_reaches_the_client_as_thinking_text_and_tool_use_events() {
    let (upstream, gw) = gateway().await;
    Mock::given(method("POST"))
        .and(path(
            "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
        ))
        .and(query_param("alt", "sse"))
        .and(header("x-goog-api-key", "AIzaSy-test-0001"))
        .respond_with(sse_answer("gemini/stream_generate_content.sse"))
        .expect(1)
        .mount(&upstream)
        .await;
    let got = events(
        &gw,
        &ask("gemini", "What's the temperature in London?", true),
    )
    .await;
    assert_eq!(
        kinds(&got),
        [
            "message_start",
            "content_block_start",
            "content_block_delta:thinking_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta:text_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta:input_json_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    let message = accumulate(&got);
    let content = message["content"].as_array().unwrap();
    assert_eq!(content[0]["type"], "thinking");
    assert_eq!(
        content[1],
        json!({"type": "text", "text": "Let me look that up."})
    );
    assert_eq!(content[2]["name"], "get_current_temperature");
    assert_eq!(content[2]["input"], json!({"location": "London"}));
    assert_eq!(message["stop_reason"], "tool_use");
    assert_eq!(got[got.len() - 2]["usage"]["input_tokens"], 61);
    assert_eq!(got[got.len() - 2]["usage"]["output_tokens"], 23 + 64);
    let sent = &upstream_bodies(&upstream).await[0];
    assert_eq!(sent, &gemini_request("What's the temperature in London?"));
}

// ---- Ollama --------------------------------------------------------------------------

/// The `/api/chat` request Ollama gets for [`ask`] with `question`.
fn ollama_request(question: &str, stream: bool) -> Value {
    json!({
        "model": "llama3.2",
        "messages": [
            {"role": "system", "content": "You are a weather assistant."},
            {"role": "user", "content": question}
        ],
        "stream": stream,
        "tools": [weather_function()],
        "options": {"num_predict": 1024}
    })
}

#[tokio::test]
async fn an_ollama_chat_answer_reaches_the_client_as_a_tool_use_message() {
    let (upstream, gw) = gateway().await;
    Mock::given(method("POST"))
        .and(path("/api/chat"))
        .respond_with(json_answer("ollama/chat_tool_call.json"))
        .expect(1)
        .mount(&upstream)
        .await;
    let got = message(
        &gw,
        &ask("llama", "What is the weather today in Paris?", false),
    )
    .await;
    let content = got["content"].as_array().unwrap();
    assert_eq!(content.len(), 1, "{got}");
    assert_eq!(content[0]["type"], "tool_use");
    assert!(
        content[0]["id"].as_str().unwrap().starts_with("call_"),
        "Ollama gives no id; the client gets one to answer"
    );
    assert_eq!(content[0]["name"], "get_current_weather");
    assert_eq!(
        content[0]["input"],
        json!({"format": "celsius", "location": "Paris, FR"})
    );
    assert_eq!(got["stop_reason"], "tool_use");
    assert_eq!(got["usage"]["input_tokens"], 122);
    assert_eq!(got["usage"]["output_tokens"], 33);
    let sent = &upstream_bodies(&upstream).await[0];
    assert_eq!(
        sent,
        &ollama_request("What is the weather today in Paris?", false)
    );
}

#[tokio::test]
async fn an_ollama_ndjson_stream_reaches_the_client_as_thinking_text_and_tool_use_events() {
    let (upstream, gw) = gateway().await;
    Mock::given(method("POST"))
        .and(path("/api/chat"))
        .respond_with(stream_answer(
            "ollama/chat_stream.ndjson",
            "application/x-ndjson",
        ))
        .expect(1)
        .mount(&upstream)
        .await;
    let got = events(&gw, &ask("llama", "What is the weather in Toronto?", true)).await;
    assert_eq!(
        kinds(&got),
        [
            "message_start",
            "content_block_start",
            "content_block_delta:thinking_delta",
            "content_block_delta:thinking_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta:text_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta:input_json_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    let message = accumulate(&got);
    let content = message["content"].as_array().unwrap();
    assert_eq!(
        content[0]["thinking"],
        "The user wants the weather in Toronto in celsius; I can call get_current_weather."
    );
    assert_eq!(content[1]["text"], "Checking the weather.");
    assert_eq!(content[2]["name"], "get_current_weather");
    assert_eq!(
        content[2]["input"],
        json!({"format": "celsius", "location": "Toronto"})
    );
    assert_eq!(message["stop_reason"], "tool_use");
    assert_eq!(got[got.len() - 2]["usage"]["input_tokens"], 166);
    assert_eq!(got[got.len() - 2]["usage"]["output_tokens"], 96);
    let sent = &upstream_bodies(&upstream).await[0];
    assert_eq!(
        sent,
        &ollama_request("What is the weather in Toronto?", true)
    );
}

// ---- Anthropic (native) --------------------------------------------------------------

/// The extended-thinking docs' first request: thinking on, the weather tool, one question.
fn paris_question(model: &str, stream: bool) -> Value {
    json!({
        "model": model,
        "max_tokens": 16000,
        "stream": stream,
        "thinking": {"type": "enabled", "budget_tokens": 10000},
        "tools": [{
            "name": "get_weather",
            "description": "Get current weather for a location",
            "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}
        }],
        "messages": [{"role": "user", "content": "What's the weather in Paris?"}]
    })
}

/// The follow-up: the assistant turn echoed as the client got it, then the tool's result.
fn paris_follow_up(first: &Value, assistant_content: &Value) -> Value {
    let tool_use = assistant_content
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["type"] == "tool_use")
        .unwrap();
    let mut body = first.clone();
    let messages = body["messages"].as_array_mut().unwrap();
    messages.push(json!({"role": "assistant", "content": assistant_content}));
    messages.push(json!({"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": tool_use["id"], "content": "Current temperature: 88°F"}
    ]}));
    body
}

fn anthropic_mock() -> MockBuilder {
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .and(header("x-api-key", "sk-ant-0001"))
        .and(header("anthropic-version", "2023-06-01"))
}

#[tokio::test]
async fn an_anthropic_answer_with_thinking_and_tool_use_passes_through_as_anthropic_sent_it() {
    let (upstream, gw) = gateway().await;
    anthropic_mock()
        .respond_with(json_answer("anthropic/message_thinking_tool_use.json"))
        .expect(1)
        .mount(&upstream)
        .await;
    let body = paris_question("claude", false);
    let r = post_messages(&gw, "/v1/messages", MASTER, &body, &[]).await;
    assert_eq!(r.status(), 200);
    let got: Value = r.json().await.unwrap();
    assert_eq!(
        got,
        fixture_json("anthropic/message_thinking_tool_use.json")
    );
    let mut expected = body.clone();
    expected["model"] = json!("claude-sonnet-4-5");
    assert_eq!(upstream_bodies(&upstream).await[0], expected);
}

#[tokio::test]
async fn an_anthropic_stream_with_thinking_signature_and_tool_use_is_relayed_event_by_event() {
    let (upstream, gw) = gateway().await;
    anthropic_mock()
        .respond_with(sse_answer("anthropic/stream_thinking_tool_use.sse"))
        .expect(1)
        .mount(&upstream)
        .await;
    let got = events(&gw, &paris_question("claude", true)).await;
    let sent: Vec<Value> = fixture("anthropic/stream_thinking_tool_use.sse")
        .split("\n\n")
        .filter_map(|frame| frame.split_once("data: "))
        .map(|(_, data)| serde_json::from_str(data).unwrap())
        .collect();
    assert_eq!(
        got, sent,
        "every event relayed, ping and signature included"
    );
    let message = accumulate(&got);
    assert_eq!(
        message["content"][0]["signature"],
        "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds..."
    );
    assert_eq!(message["content"][2]["input"], json!({"location": "Paris"}));
}

// ---- Tool-use round trips with thinking ----------------------------------------------

/// The thinking text and signature of an assistant turn's first block.
fn thinking_of(content: &Value) -> (String, String) {
    let block = &content[0];
    assert_eq!(block["type"], "thinking", "{content}");
    (
        block["thinking"].as_str().unwrap().to_string(),
        block["signature"].as_str().unwrap().to_string(),
    )
}

/// What an OpenAI-compatible upstream must get back for the assistant turn `content` (thinking,
/// text, `tool_use`) and its tool result.
fn echoed_chat_turns(content: &Value, with_blocks: bool) -> Value {
    let (thinking, signature) = thinking_of(content);
    let text = content[1]["text"].as_str().unwrap();
    let tool = &content[2];
    let mut assistant = json!({
        "role": "assistant",
        "content": text,
        "tool_calls": [{"id": tool["id"], "type": "function",
                        "function": {"name": "get_weather", "arguments": "{\"location\":\"Paris\"}"}}],
        "reasoning_content": thinking,
    });
    if with_blocks {
        assistant["thinking_blocks"] =
            json!([{"type": "thinking", "thinking": thinking, "signature": signature}]);
    }
    json!([
        {"role": "user", "content": "What's the weather in Paris?"},
        assistant,
        {"role": "tool", "tool_call_id": tool["id"], "content": "Current temperature: 88°F"}
    ])
}

/// The chat upstream's two turns: the final answer once a tool result is in the request.
async fn mount_chat_turns(
    upstream: &MockServer,
    first: ResponseTemplate,
    second: ResponseTemplate,
) {
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(body_string_contains(r#""role":"tool""#))
        .respond_with(second)
        .expect(1)
        .mount(upstream)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(first)
        .expect(1)
        .mount(upstream)
        .await;
}

const FINAL_TEXT: &str = "Currently in Paris, the temperature is 88°F (31°C)";

#[tokio::test]
async fn a_tool_round_trip_through_an_openai_compatible_claude_keeps_thinking_and_signature() {
    let (upstream, gw) = gateway().await;
    mount_chat_turns(
        &upstream,
        json_answer("litellm/turn1_thinking_tool_call.json"),
        json_answer("litellm/turn2_final_text.json"),
    )
    .await;
    let first = paris_question("claude-proxy", false);
    let turn1 = message(&gw, &first).await;
    let expected_first =
        fixture_json("anthropic/message_thinking_tool_use.json")["content"].clone();
    assert_eq!(
        turn1["content"], expected_first,
        "LiteLLM's reasoning_content and thinking_blocks come back as Anthropic's blocks"
    );
    assert_eq!(turn1["stop_reason"], "tool_use");
    let turn2 = message(&gw, &paris_follow_up(&first, &turn1["content"])).await;
    assert_eq!(
        turn2["content"],
        json!([{"type": "text", "text": FINAL_TEXT}])
    );
    assert_eq!(turn2["stop_reason"], "end_turn");
    let sent = upstream_bodies(&upstream).await;
    assert_eq!(sent[0]["reasoning_effort"], "high", "a 10000-token budget");
    assert_eq!(
        sent[1]["messages"],
        echoed_chat_turns(&turn1["content"], true),
        "the thinking and its signature reach the upstream intact, the result as a tool message"
    );
}

#[tokio::test]
async fn a_streamed_tool_round_trip_through_an_openai_compatible_claude_keeps_the_streamed_signature()
 {
    let (upstream, gw) = gateway().await;
    mount_chat_turns(
        &upstream,
        sse_answer("litellm/turn1_thinking_tool_call.sse"),
        sse_answer("litellm/turn2_final_text.sse"),
    )
    .await;
    let first = paris_question("claude-proxy", true);
    let got = events(&gw, &first).await;
    assert_eq!(
        kinds(&got),
        [
            "message_start",
            "content_block_start",
            "content_block_delta:thinking_delta",
            "content_block_delta:thinking_delta",
            "content_block_delta:signature_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta:text_delta",
            "content_block_delta:text_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta:input_json_delta",
            "content_block_delta:input_json_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    let turn1 = accumulate(&got);
    let expected_first =
        fixture_json("anthropic/message_thinking_tool_use.json")["content"].clone();
    let (thinking, signature) = thinking_of(&turn1["content"]);
    assert_eq!(thinking, thinking_of(&expected_first).0);
    assert_eq!(
        signature,
        "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds..."
    );
    assert_eq!(turn1["content"][1], expected_first[1]);
    assert_eq!(turn1["content"][2], expected_first[2]);
    assert_eq!(turn1["stop_reason"], "tool_use");
    let turn2 = accumulate(&events(&gw, &paris_follow_up(&first, &turn1["content"])).await);
    assert_eq!(
        turn2["content"],
        json!([{"type": "text", "text": FINAL_TEXT}])
    );
    assert_eq!(turn2["stop_reason"], "end_turn");
    let sent = upstream_bodies(&upstream).await;
    assert_eq!(
        sent[1]["messages"],
        echoed_chat_turns(&turn1["content"], true)
    );
}

#[tokio::test]
async fn a_tool_round_trip_with_anthropic_sends_the_assistant_turn_back_as_the_client_echoed_it() {
    let (upstream, gw) = gateway().await;
    anthropic_mock()
        .and(body_string_contains("tool_result"))
        .respond_with(json_answer("anthropic/message_final_text.json"))
        .expect(1)
        .mount(&upstream)
        .await;
    anthropic_mock()
        .respond_with(json_answer("anthropic/message_thinking_tool_use.json"))
        .expect(1)
        .mount(&upstream)
        .await;
    let first = paris_question("claude", false);
    let turn1 = message(&gw, &first).await;
    let follow_up = paris_follow_up(&first, &turn1["content"]);
    let turn2 = message(&gw, &follow_up).await;
    assert_eq!(
        turn2["content"],
        json!([{"type": "text", "text": FINAL_TEXT}])
    );
    let sent = upstream_bodies(&upstream).await;
    assert_eq!(
        sent[1]["messages"], follow_up["messages"],
        "thinking, signature and tool_use go back unchanged"
    );
}

#[tokio::test]
async fn a_streamed_tool_round_trip_with_anthropic_sends_the_accumulated_turn_back_with_its_signature()
 {
    let (upstream, gw) = gateway().await;
    anthropic_mock()
        .and(body_string_contains("tool_result"))
        .respond_with(sse_answer("anthropic/stream_final_text.sse"))
        .expect(1)
        .mount(&upstream)
        .await;
    anthropic_mock()
        .respond_with(sse_answer("anthropic/stream_thinking_tool_use.sse"))
        .expect(1)
        .mount(&upstream)
        .await;
    let first = paris_question("claude", true);
    let turn1 = accumulate(&events(&gw, &first).await);
    let follow_up = paris_follow_up(&first, &turn1["content"]);
    let turn2 = accumulate(&events(&gw, &follow_up).await);
    assert_eq!(
        turn2["content"],
        json!([{"type": "text", "text": FINAL_TEXT}])
    );
    let sent = upstream_bodies(&upstream).await;
    assert_eq!(sent[1]["messages"], follow_up["messages"]);
    assert_eq!(
        sent[1]["messages"][1]["content"][0]["signature"],
        "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds..."
    );
}

/// The second turn of the Paris conversation with a Claude answer in its history, without
/// `thinking` (the upstreams below are not asked to think).
fn paris_history(model: &str) -> Value {
    let content = fixture_json("anthropic/message_thinking_tool_use.json")["content"].clone();
    let mut body = paris_follow_up(&paris_question(model, false), &content);
    body.as_object_mut().unwrap().remove("thinking");
    body
}

#[tokio::test]
async fn a_plain_openai_compatible_server_gets_the_reasoning_but_not_the_thinking_blocks() {
    let (upstream, gw) = gateway().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(json_answer("litellm/turn2_final_text.json"))
        .expect(1)
        .mount(&upstream)
        .await;
    let body = paris_history("deepseek");
    let got = message(&gw, &body).await;
    assert_eq!(got["content"][0]["text"], FINAL_TEXT);
    let sent = &upstream_bodies(&upstream).await[0];
    assert_eq!(sent["model"], "deepseek-reasoner");
    assert_eq!(
        sent["messages"],
        echoed_chat_turns(&body["messages"][1]["content"], false),
        "reasoning_content goes back (DeepSeek requires it on tool turns); thinking_blocks, \
         outside OpenAI's schema, do not"
    );
}

#[tokio::test]
async fn gemini_and_ollama_take_a_tool_turn_with_thinking_in_their_own_formats() {
    let (upstream, gw) = gateway().await;
    Mock::given(method("POST"))
        .and(path("/v1beta/models/gemini-2.5-flash:generateContent"))
        .respond_with(json_answer("gemini/generate_content_tool_call.json"))
        .expect(1)
        .mount(&upstream)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/chat"))
        .respond_with(json_answer("ollama/chat_tool_call.json"))
        .expect(1)
        .mount(&upstream)
        .await;
    message(&gw, &paris_history("gemini")).await;
    message(&gw, &paris_history("llama")).await;
    let sent = upstream_bodies(&upstream).await;
    let text =
        "I can help you get the current weather information for Paris. Let me check that for you";
    assert_eq!(
        sent[0]["contents"],
        json!([
            {"role": "user", "parts": [{"text": "What's the weather in Paris?"}]},
            {"role": "model", "parts": [{"text": text},
                {"functionCall": {"name": "get_weather", "args": {"location": "Paris"}}}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "get_weather",
                "response": {"content": "Current temperature: 88°F"}}}]}
        ]),
        "Gemini gets the call and its result; Anthropic's thinking has no Gemini form"
    );
    assert_eq!(
        sent[1]["messages"],
        json!([
            {"role": "user", "content": "What's the weather in Paris?"},
            {"role": "assistant", "content": text,
             "thinking": "The user wants to know the current weather in Paris. I have access to a function `get_weather`...",
             "tool_calls": [{"function": {"name": "get_weather", "arguments": {"location": "Paris"}}}]},
            {"role": "tool", "content": "Current temperature: 88°F", "tool_name": "get_weather"}
        ]),
        "Ollama gets the thinking back in its own field"
    );
}
