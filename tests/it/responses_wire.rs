//! `/v1/responses` with the request shapes clients really send: what Codex CLI 0.171.0 sent,
//! recorded, and OpenAI's documented examples (`tests/fixtures/responses/`, whose README names
//! each source). Through a bridged `openai/` deployment each reaches the chat upstream as the
//! chat request it means; through a deployment that serves the Responses API each is forwarded
//! as sent. Then function and custom tool round trips over the bridge, streamed and not: the
//! client gets the call as a Responses item, sends it back with its output, and the upstream
//! sees the assistant's tool call and the tool message.

use serde_json::{Map, Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::common::*;
use crate::responses::route_yaml;

fn fixture(name: &str) -> String {
    let file = format!(
        "{}/tests/fixtures/responses/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{file}: {e}"))
}

fn fixture_json(name: &str) -> Value {
    serde_json::from_str(&fixture(name)).unwrap()
}

/// A recorded or documented request, asking for `model`.
fn request(name: &str, model: &str) -> Value {
    let mut body = fixture_json(name);
    body["model"] = json!(model);
    body
}

const CODEX: [&str; 5] = [
    "codex/turn1_model_without_metadata.json",
    "codex/turn1_gpt-5.5.json",
    "codex/turn2_gpt-5.5_after_function_call.json",
    "codex/turn1_gpt-5.6-terra_responses_lite.json",
    "codex/turn2_gpt-5.6-terra_responses_lite.json",
];

const DOCUMENTED: [&str; 7] = [
    "openai/create_text_input.json",
    "openai/create_streaming.json",
    "openai/function_call_turn2.json",
    "openai/custom_tool_turn1.json",
    "openai/custom_tool_turn2.json",
    "openai/reasoning_encrypted_turn2.json",
    "openai/max_output_tokens_probe.json",
];

/// A chat upstream: the answer fixture `chat/<call>` for a first turn, `chat/final_text` once
/// the conversation carries a tool message; streamed when the request asks for it.
struct ChatUpstream {
    call: &'static str,
}

impl wiremock::Respond for ChatUpstream {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        let answered = body["messages"]
            .as_array()
            .is_some_and(|m| m.iter().any(|m| m["role"] == "tool"));
        let name = if answered { "final_text" } else { self.call };
        if body["stream"] == true {
            ResponseTemplate::new(200)
                .set_body_raw(fixture(&format!("chat/{name}.sse")), "text/event-stream")
        } else {
            ResponseTemplate::new(200)
                .set_body_raw(fixture(&format!("chat/{name}.json")), "application/json")
        }
    }
}

/// A gateway whose `bridged` deployment is a chat upstream answering with `call` first.
async fn bridged(call: &'static str) -> (MockServer, TestGateway) {
    let upstream = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ChatUpstream { call })
        .mount(&upstream)
        .await;
    let gw = TestGateway::start(&route_yaml(&upstream.uri())).await;
    (upstream, gw)
}

async fn post(gw: &TestGateway, body: &Value) -> reqwest::Response {
    gw.client
        .post(gw.url("/v1/responses"))
        .bearer_auth(MASTER)
        .json(body)
        .send()
        .await
        .unwrap()
}

/// The chat requests that reached the upstream, in order.
async fn chat_requests(upstream: &MockServer) -> Vec<Map<String, Value>> {
    upstream
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(r.url.path(), "/v1/chat/completions");
            serde_json::from_slice(&r.body).unwrap()
        })
        .collect()
}

/// What a chat completion request may carry; a Responses field beyond these reaching the
/// upstream would be refused by strict servers (vLLM, Ollama, the translated providers).
const CHAT_FIELDS: [&str; 13] = [
    "model",
    "messages",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "max_tokens",
    "temperature",
    "top_p",
    "user",
    "stream",
    "stream_options",
    "reasoning_effort",
    "response_format",
];

fn assert_only_chat_fields(sent: &Map<String, Value>) {
    for key in sent.keys() {
        assert!(
            CHAT_FIELDS.contains(&key.as_str()),
            "'{key}' reached the chat upstream"
        );
    }
    assert!(sent["messages"].is_array());
}

/// The text of a Responses message item: its text parts, joined as the bridge joins them.
fn item_text(item: &Value) -> String {
    match &item["content"] {
        Value::String(text) => text.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// The message items of a role (an `additional_tools` item has a role too).
fn items_of_role<'a>(input: &'a [Value], role: &str) -> Vec<&'a Value> {
    input
        .iter()
        .filter(|i| i["role"] == role && matches!(i["type"].as_str(), None | Some("message")))
        .collect()
}

/// Asserts two long texts are equal, showing where they part (not the whole prompt).
fn assert_same_text(got: &str, expected: &str, what: &str) {
    if got != expected {
        let at = got
            .char_indices()
            .zip(expected.chars())
            .find(|((_, a), b)| a != b)
            .map_or(got.len().min(expected.len()), |((i, _), _)| i);
        let near = |s: &str| {
            s.get(at.saturating_sub(40)..(at + 40).min(s.len()))
                .unwrap_or("")
                .to_string()
        };
        panic!(
            "{what} differs at byte {at} (lengths {} and {}): got {:?}, expected {:?}",
            got.len(),
            expected.len(),
            near(got),
            near(expected)
        );
    }
}

/// The chat functions a Responses tool list stands for, by name: functions and custom tools
/// by theirs, the tools of a namespace as `<namespace>__<name>`, hosted tools none.
fn chat_function_names(tools: &[Value], namespace: Option<&str>) -> Vec<String> {
    let mut names = Vec::new();
    for tool in tools {
        let name = tool["name"].as_str().unwrap_or_default();
        match tool["type"].as_str() {
            Some("function" | "custom") => names.push(match namespace {
                Some(ns) => format!("{ns}__{name}"),
                None => name.to_string(),
            }),
            Some("namespace") => names.extend(chat_function_names(
                tool["tools"].as_array().unwrap(),
                Some(name),
            )),
            _ => {}
        }
    }
    names
}

/// The chat tool named `name`.
fn chat_tool<'a>(sent: &'a Map<String, Value>, name: &str) -> &'a Value {
    sent["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["function"]["name"] == name)
        .unwrap_or_else(|| panic!("no chat tool {name}"))
}

fn names_of(sent: &Map<String, Value>) -> Vec<String> {
    sent["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap().to_string())
        .collect()
}

/// A recorded Codex request through the bridge: the client's events (checked to end in a
/// completed Response carrying the upstream's text) and the chat request the upstream got.
async fn codex_through_the_bridge(name: &str) -> (Value, Map<String, Value>) {
    let (upstream, gw) = bridged("final_text").await;
    let body = request(name, "bridged");
    assert_eq!(body["stream"], true, "Codex streams");
    let events = typed_events(post(&gw, &body).await).await;
    let done = events.last().unwrap();
    assert_eq!(done["type"], "response.completed", "{events:?}");
    assert_eq!(
        done["response"]["output"][0]["content"][0]["text"],
        "The command printed hi."
    );
    let mut sent = chat_requests(&upstream).await;
    assert_eq!(sent.len(), 1);
    let sent = sent.remove(0);
    assert_only_chat_fields(&sent);
    assert_eq!(sent["model"], "local-model");
    assert_eq!(sent["stream"], true);
    assert_eq!(sent["stream_options"], json!({"include_usage": true}));
    (body, sent)
}

/// The system message and the user turns of a Codex request, as the chat upstream must get
/// them: its developer messages (which lead its input) merged into one system message, each
/// user message as one text turn.
fn assert_codex_turns(body: &Value, sent: &Map<String, Value>) {
    let input = body["input"].as_array().unwrap();
    let developer: Vec<String> = items_of_role(input, "developer")
        .into_iter()
        .map(item_text)
        .collect();
    assert!(
        developer.len() >= 2,
        "Codex sends several developer messages"
    );
    let messages = sent["messages"].as_array().unwrap();
    assert_eq!(messages[0]["role"], "system");
    assert_same_text(
        messages[0]["content"].as_str().unwrap(),
        &developer.join("\n\n"),
        "the system message",
    );
    assert_eq!(messages.iter().filter(|m| m["role"] == "system").count(), 1);
    let users: Vec<Value> = items_of_role(input, "user")
        .into_iter()
        .map(|i| json!({"role": "user", "content": item_text(i)}))
        .collect();
    let sent_users: Vec<Value> = messages
        .iter()
        .filter(|m| m["role"] == "user")
        .cloned()
        .collect();
    assert_eq!(sent_users, users);
    assert_eq!(&messages[1..=users.len()], &users[..]);
}

/// Every function tool of `tools` reached the upstream with its description and parameters.
fn assert_functions_as_sent(tools: &[Value], sent: &Map<String, Value>) {
    for tool in tools.iter().filter(|t| t["type"] == "function") {
        let name = tool["name"].as_str().unwrap();
        let chat = chat_tool(sent, name);
        assert_eq!(chat["type"], "function");
        assert_eq!(chat["function"]["description"], tool["description"]);
        assert_eq!(chat["function"]["parameters"], tool["parameters"]);
    }
}

#[tokio::test]
async fn codex_turn_one_reaches_a_chat_deployment_as_one_system_message_the_user_turns_and_its_functions()
 {
    let (body, sent) = codex_through_the_bridge("codex/turn1_model_without_metadata.json").await;
    assert_codex_turns(&body, &sent);
    assert_eq!(sent["messages"].as_array().unwrap().len(), 3);
    let tools = body["tools"].as_array().unwrap();
    assert_eq!(names_of(&sent), chat_function_names(tools, None));
    assert_functions_as_sent(tools, &sent);
    // The namespace's tools are functions named after it; web_search is OpenAI's to run.
    assert_eq!(
        chat_tool(&sent, "multi_agent_v1__spawn_agent")["function"]["parameters"],
        tools.iter().find(|t| t["type"] == "namespace").unwrap()["tools"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == "spawn_agent")
            .unwrap()["parameters"]
    );
    assert!(tools.iter().any(|t| t["type"] == "web_search"));
    assert!(!names_of(&sent).iter().any(|n| n.contains("web_search")));
    assert_eq!(sent["tool_choice"], "auto");
    assert_eq!(sent["parallel_tool_calls"], true);
    // `reasoning: {summary: auto}` sets no effort.
    assert!(!sent.contains_key("reasoning_effort"));
}

#[tokio::test]
async fn codex_turn_one_for_a_known_model_sends_apply_patch_as_a_one_string_function_and_no_hosted_tools()
 {
    let (body, sent) = codex_through_the_bridge("codex/turn1_gpt-5.5.json").await;
    assert_codex_turns(&body, &sent);
    let tools = body["tools"].as_array().unwrap();
    let kinds: Vec<&str> = tools.iter().map(|t| t["type"].as_str().unwrap()).collect();
    for kind in ["function", "custom", "tool_search", "web_search"] {
        assert!(
            kinds.contains(&kind),
            "Codex sent no {kind} tool: {kinds:?}"
        );
    }
    assert_eq!(names_of(&sent), chat_function_names(tools, None));
    assert_functions_as_sent(tools, &sent);
    let recorded = tools.iter().find(|t| t["name"] == "apply_patch").unwrap();
    let patch = &chat_tool(&sent, "apply_patch")["function"];
    assert_eq!(
        patch["parameters"],
        json!({"type": "object", "properties": {"input": {"type": "string"}}, "required": ["input"]})
    );
    let description = patch["description"].as_str().unwrap();
    assert!(description.starts_with(recorded["description"].as_str().unwrap()));
    assert!(
        description.contains(recorded["format"]["definition"].as_str().unwrap()),
        "the lark grammar is in the description"
    );
    assert!(!names_of(&sent).iter().any(|n| n == "tool_search"));
    assert_eq!(sent["reasoning_effort"], "medium");
}

#[tokio::test]
async fn codex_turn_two_folds_the_call_and_its_output_into_chat_turns_and_leaves_the_reasoning_out()
{
    let (body, sent) =
        codex_through_the_bridge("codex/turn2_gpt-5.5_after_function_call.json").await;
    assert_codex_turns(&body, &sent);
    let input = body["input"].as_array().unwrap();
    let kinds: Vec<&str> = input.iter().map(|i| i["type"].as_str().unwrap()).collect();
    assert_eq!(
        &kinds[kinds.len() - 3..],
        ["reasoning", "function_call", "function_call_output"]
    );
    let reasoning = &input[input.len() - 3];
    let call = &input[input.len() - 2];
    let output = &input[input.len() - 1];
    let messages = sent["messages"].as_array().unwrap();
    assert_eq!(
        &messages[messages.len() - 2..],
        [
            json!({"role": "assistant", "content": null, "tool_calls": [{
                "id": "call_echo_1", "type": "function",
                "function": {"name": "exec_command", "arguments": "{\"cmd\":\"echo hi\"}"}
            }]}),
            json!({"role": "tool", "tool_call_id": "call_echo_1", "content": output["output"]}),
        ]
    );
    assert_eq!(call["call_id"], "call_echo_1");
    assert!(
        output["output"]
            .as_str()
            .unwrap()
            .ends_with("Output:\nhi\n")
    );
    // The reasoning is the upstream model's own: neither its blob nor its summary goes on.
    let text = serde_json::to_string(&sent).unwrap();
    assert!(!text.contains(reasoning["encrypted_content"].as_str().unwrap()));
    assert!(!text.contains(reasoning["summary"][0]["text"].as_str().unwrap()));
}

#[tokio::test]
async fn codex_responses_lite_tools_in_an_additional_tools_item_reach_a_chat_deployment_as_functions()
 {
    for name in [
        "codex/turn1_gpt-5.6-terra_responses_lite.json",
        "codex/turn2_gpt-5.6-terra_responses_lite.json",
    ] {
        let (body, sent) = codex_through_the_bridge(name).await;
        assert!(body.get("tools").is_none(), "Responses Lite sends no tools");
        let input = body["input"].as_array().unwrap();
        assert_eq!(input[0]["type"], "additional_tools");
        assert_codex_turns(&body, &sent);
        let tools = input[0]["tools"].as_array().unwrap();
        let names = names_of(&sent);
        assert_eq!(names, chat_function_names(tools, None));
        for expected in [
            "functions__exec",
            "functions__wait",
            "collaboration__spawn_agent",
        ] {
            assert!(names.iter().any(|n| n == expected), "{expected}: {names:?}");
        }
        // `exec` is a custom tool with a lark grammar: one string, the grammar described.
        let exec = &chat_tool(&sent, "functions__exec")["function"];
        assert_eq!(
            exec["parameters"],
            json!({"type": "object", "properties": {"input": {"type": "string"}}, "required": ["input"]})
        );
        assert!(exec["description"].as_str().unwrap().contains("lark"));
        assert_eq!(sent["tool_choice"], "auto");
        assert_eq!(sent["parallel_tool_calls"], false);
        assert_eq!(sent["reasoning_effort"], "medium");
        if name.contains("turn2") {
            let messages = sent["messages"].as_array().unwrap();
            assert_eq!(messages[messages.len() - 2]["role"], "assistant");
            assert_eq!(
                messages[messages.len() - 2]["tool_calls"][0]["id"],
                "call_echo_1"
            );
            assert_eq!(messages[messages.len() - 1]["role"], "tool");
            assert_eq!(messages[messages.len() - 1]["tool_call_id"], "call_echo_1");
        }
    }
}

#[tokio::test]
async fn openais_documented_requests_reach_a_chat_deployment_as_exactly_the_chat_request_they_mean()
{
    let weather = json!({"type": "function", "function": {
        "name": "get_weather",
        "description": "Get current temperature for a given location.",
        "parameters": {"type": "object", "properties": {"location": {"type": "string", "description": "City and country e.g. Bogotá, Colombia"}},
                       "required": ["location"], "additionalProperties": false}
    }});
    let mut strict_weather = weather.clone();
    strict_weather["function"]["strict"] = json!(true);
    let code_exec = json!({"type": "function", "function": {
        "name": "code_exec",
        "description": "Executes arbitrary Python code.",
        "parameters": {"type": "object", "properties": {"input": {"type": "string"}}, "required": ["input"]}
    }});
    let paris = json!({"role": "user", "content": "What is the weather like in Paris today?"});
    let cases = [
        (
            "openai/create_text_input.json",
            json!({"model": "local-model", "messages": [
                {"role": "user", "content": "Tell me a three sentence bedtime story about a unicorn."}
            ]}),
        ),
        (
            "openai/create_streaming.json",
            json!({"model": "local-model", "messages": [
                {"role": "user", "content": "Say 'double bubble bath' ten times fast."}
            ], "stream": true, "stream_options": {"include_usage": true}}),
        ),
        (
            "openai/function_call_turn2.json",
            json!({"model": "local-model", "messages": [
                paris,
                {"role": "assistant", "content": null, "tool_calls": [{"id": "call_12345xyz", "type": "function",
                    "function": {"name": "get_weather", "arguments": "{\"location\":\"Paris, France\"}"}}]},
                {"role": "tool", "tool_call_id": "call_12345xyz", "content": "14"}
            ], "tools": [weather]}),
        ),
        (
            "openai/custom_tool_turn1.json",
            json!({"model": "local-model", "messages": [
                {"role": "user", "content": "Use the code_exec tool to print hello world to the console."}
            ], "tools": [code_exec]}),
        ),
        (
            "openai/custom_tool_turn2.json",
            json!({"model": "local-model", "messages": [
                {"role": "user", "content": "Use the code_exec tool to print hello world to the console."},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "call_aGiFQkRWSWAIsMQ19fKqxUgb", "type": "function",
                    "function": {"name": "code_exec", "arguments": "{\"input\":\"print(\\\"hello world\\\")\"}"}}]},
                {"role": "tool", "tool_call_id": "call_aGiFQkRWSWAIsMQ19fKqxUgb", "content": "hello world"}
            ], "tools": [code_exec]}),
        ),
        (
            "openai/reasoning_encrypted_turn2.json",
            json!({"model": "local-model", "messages": [
                paris,
                {"role": "assistant", "content": null, "tool_calls": [{"id": "call_2R9mgJkUmHGMCTGL8c1jlB8z", "type": "function",
                    "function": {"name": "get_weather", "arguments": "{\"location\":\"Paris, France\"}"}}]},
                {"role": "tool", "tool_call_id": "call_2R9mgJkUmHGMCTGL8c1jlB8z", "content": "20°C"}
            ], "tools": [strict_weather], "reasoning_effort": "medium"}),
        ),
        (
            "openai/max_output_tokens_probe.json",
            json!({"model": "local-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 10}),
        ),
    ];
    assert_eq!(cases.len(), DOCUMENTED.len());
    for (name, expected) in cases {
        let (upstream, gw) = bridged("final_text").await;
        let body = request(name, "bridged");
        let r = post(&gw, &body).await;
        assert_eq!(r.status(), 200, "{name}");
        if body["stream"] == true {
            typed_events(r).await;
        } else {
            let response: Value = r.json().await.unwrap();
            assert_eq!(response["object"], "response", "{name}");
        }
        let sent = chat_requests(&upstream).await;
        assert_eq!(sent.len(), 1, "{name}");
        assert_eq!(Value::Object(sent[0].clone()), expected, "{name}");
    }
}

/// Asserts that `got` has every member `documented` has, through nested objects (and the
/// first element of arrays): a client written against OpenAI's example finds each field.
fn assert_has_fields(got: &Value, documented: &Value, at: &str) {
    match (got, documented) {
        (Value::Object(got), Value::Object(documented)) => {
            for (key, value) in documented {
                let member = got
                    .get(key)
                    .unwrap_or_else(|| panic!("{at}.{key} is missing"));
                assert_has_fields(member, value, &format!("{at}.{key}"));
            }
        }
        (Value::Array(got), Value::Array(documented)) => {
            if let (Some(g), Some(d)) = (got.first(), documented.first()) {
                assert_has_fields(g, d, &format!("{at}[0]"));
            }
        }
        _ => {}
    }
}

#[tokio::test]
async fn a_bridged_answer_has_every_field_of_openais_documented_response_object() {
    let (_upstream, gw) = bridged("final_text").await;
    let r = post(&gw, &request("openai/create_text_input.json", "bridged")).await;
    assert_eq!(r.status(), 200);
    let response: Value = r.json().await.unwrap();
    let documented = fixture_json("openai/response_text.json");
    assert_has_fields(&response, &documented, "response");
    assert_eq!(response["status"], "completed");
    assert_eq!(response["model"], "bridged");
    assert_eq!(response["output"][0]["type"], "message");
    assert_eq!(
        response["output"][0]["content"][0],
        json!({"type": "output_text", "text": "The command printed hi.", "annotations": []})
    );
    assert_eq!(
        response["usage"],
        json!({"input_tokens": 8290, "input_tokens_details": {"cached_tokens": 8192},
               "output_tokens": 7, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 8297})
    );
}

/// The events of a documented SSE fixture.
fn documented_events(name: &str) -> Vec<Value> {
    fixture(name)
        .split("\n\n")
        .filter(|frame| !frame.trim().is_empty())
        .map(|frame| {
            let (_, data) = frame.split_once("\ndata: ").unwrap();
            serde_json::from_str(data).unwrap()
        })
        .collect()
}

/// Event types with each run of one type counted once (the number of deltas is the model's).
fn kinds(events: &[Value]) -> Vec<String> {
    let mut kinds: Vec<String> = events
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_string())
        .collect();
    kinds.dedup();
    kinds
}

#[tokio::test]
async fn a_bridged_stream_has_the_events_and_fields_of_openais_documented_stream() {
    let (_upstream, gw) = bridged("final_text").await;
    let events =
        typed_events(post(&gw, &request("openai/create_streaming.json", "bridged")).await).await;
    let documented = documented_events("openai/stream_text.sse");
    assert_eq!(kinds(&events), kinds(&documented));
    for event in &events {
        let like = documented
            .iter()
            .find(|d| d["type"] == event["type"])
            .unwrap();
        assert_has_fields(event, like, event["type"].as_str().unwrap());
    }
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e["sequence_number"], i as u64);
    }
    let text: String = events
        .iter()
        .filter(|e| e["type"] == "response.output_text.delta")
        .map(|e| e["delta"].as_str().unwrap())
        .collect();
    assert_eq!(text, "The command printed hi.");
    let done = events.last().unwrap();
    assert_eq!(done["response"]["output"][0]["content"][0]["text"], text);
    assert_eq!(done["response"]["usage"]["input_tokens"], 8290);
}

#[tokio::test]
async fn a_tiny_max_output_tokens_probe_is_bridged_as_max_tokens_and_answered_as_incomplete() {
    // Channel tests and key checks send a handful of tokens (OpenAI itself refuses fewer than
    // 16); a chat upstream takes any number and stops at it.
    let upstream = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "local-model",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello! How can I"}, "finish_reason": "length"}],
            "usage": {"prompt_tokens": 8, "completion_tokens": 10, "total_tokens": 18}
        })))
        .mount(&upstream)
        .await;
    let gw = TestGateway::start(&route_yaml(&upstream.uri())).await;
    let r = post(
        &gw,
        &request("openai/max_output_tokens_probe.json", "bridged"),
    )
    .await;
    assert_eq!(r.status(), 200);
    let response: Value = r.json().await.unwrap();
    assert_eq!(response["status"], "incomplete");
    assert_eq!(
        response["incomplete_details"],
        json!({"reason": "max_output_tokens"})
    );
    assert_eq!(response["max_output_tokens"], 10);
    assert_eq!(response["output"][0]["status"], "incomplete");
    assert_eq!(
        response["output"][0]["content"][0]["text"],
        "Hello! How can I"
    );
    assert_eq!(chat_requests(&upstream).await[0]["max_tokens"], 10);
}

#[tokio::test]
async fn every_recorded_and_documented_request_is_forwarded_as_sent_to_a_deployment_serving_the_responses_api()
 {
    let upstream = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/responses"))
        .respond_with(|request: &Request| {
            let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
            if body["stream"] == true {
                ResponseTemplate::new(200)
                    .set_body_raw(fixture("openai/stream_text.sse"), "text/event-stream")
            } else {
                ResponseTemplate::new(200)
                    .set_body_raw(fixture("openai/response_text.json"), "application/json")
            }
        })
        .mount(&upstream)
        .await;
    let gw = TestGateway::start(&route_yaml(&upstream.uri())).await;
    for (n, name) in CODEX.iter().chain(DOCUMENTED.iter()).enumerate() {
        let body = request(name, "native");
        let r = post(&gw, &body).await;
        assert_eq!(r.status(), 200, "{name}");
        if body["stream"] == true {
            assert_eq!(
                typed_events(r).await,
                documented_events("openai/stream_text.sse"),
                "{name}: the events are relayed as they came"
            );
        } else {
            assert_eq!(
                r.json::<Value>().await.unwrap(),
                fixture_json("openai/response_text.json"),
                "{name}"
            );
        }
        let received = upstream.received_requests().await.unwrap();
        assert_eq!(received.len(), n + 1);
        let forwarded = &received[n];
        assert_eq!(forwarded.headers["authorization"], "Bearer sk-up-native");
        let sent: Value = serde_json::from_slice(&forwarded.body).unwrap();
        assert_eq!(
            sent,
            request(name, "gpt-5-mini"),
            "{name}: forwarded as sent with the model renamed"
        );
    }
}

// ---- tool round trips over the bridge -----------------------------------------------------

const PATCH: &str = "*** Begin Patch\n*** Add File: hello.txt\n+hi\n*** End Patch\n";

/// A round trip's tool: the chat answer that calls it, and what the client gets and returns.
struct Tool {
    answer: &'static str,
    call_id: &'static str,
    chat_name: &'static str,
    /// `function_call` or `custom_tool_call`.
    item: &'static str,
    output: &'static str,
}

const EXEC_COMMAND: Tool = Tool {
    answer: "exec_command_call",
    call_id: "call_FthC9qRpsL5kBpwwyw6c7j4k",
    chat_name: "exec_command",
    item: "function_call",
    output: "Chunk ID: 3f2a1c\nWall time: 0.0000 seconds\nProcess exited with code 0\nOutput:\nhi\n",
};

const APPLY_PATCH: Tool = Tool {
    answer: "apply_patch_call",
    call_id: "call_Qm3Zk8vY1bWn2T0aRrL5dE7u",
    chat_name: "apply_patch",
    item: "custom_tool_call",
    output: "Success. Updated the following files:\nA hello.txt\n",
};

/// The output item of the first turn, checked against what the tool's call must look like.
fn assert_call_item(tool: &Tool, item: &Value) {
    assert_eq!(item["type"], tool.item, "{item}");
    assert_eq!(item["call_id"], tool.call_id);
    assert_eq!(item["name"], tool.chat_name);
    assert_eq!(item["status"], "completed");
    if tool.item == "custom_tool_call" {
        assert!(item["id"].as_str().unwrap().starts_with("ctc_"));
        assert_eq!(item["input"], PATCH);
        assert!(item.get("arguments").is_none());
    } else {
        assert!(item["id"].as_str().unwrap().starts_with("fc_"));
        assert_eq!(item["arguments"], "{\"cmd\":\"echo hi\"}");
    }
}

/// The call item out of a first turn's stream: the events of its kind in order, its deltas
/// adding up to what the closing events and the completed Response carry.
fn streamed_call_item(tool: &Tool, events: &[Value]) -> Value {
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e["sequence_number"], i as u64);
    }
    let added = events
        .iter()
        .find(|e| e["type"] == "response.output_item.added")
        .unwrap();
    assert_eq!(added["item"]["type"], tool.item);
    assert_eq!(added["item"]["call_id"], tool.call_id);
    assert_eq!(added["item"]["status"], "in_progress");
    let id = added["item"]["id"].as_str().unwrap();
    let of_item = |kind: &str| -> Vec<&Value> {
        events
            .iter()
            .filter(|e| e["type"] == kind && e["item_id"] == id)
            .collect()
    };
    let (delta, done, field, whole) = if tool.item == "custom_tool_call" {
        assert!(
            of_item("response.function_call_arguments.delta").is_empty(),
            "a custom tool's input is no function's arguments"
        );
        (
            "response.custom_tool_call_input.delta",
            "response.custom_tool_call_input.done",
            "input",
            PATCH,
        )
    } else {
        (
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "arguments",
            "{\"cmd\":\"echo hi\"}",
        )
    };
    assert_eq!(added["item"][field], "");
    let deltas: String = of_item(delta)
        .iter()
        .map(|e| e["delta"].as_str().unwrap())
        .collect();
    assert_eq!(deltas, whole);
    let done = of_item(done);
    assert_eq!(done.len(), 1);
    assert_eq!(done[0][field], whole);
    let item_done = events
        .iter()
        .find(|e| e["type"] == "response.output_item.done")
        .unwrap();
    assert_eq!(item_done["output_index"], added["output_index"]);
    let item = item_done["item"].clone();
    assert_eq!(item["id"], id);
    let completed = events.last().unwrap();
    assert_eq!(completed["type"], "response.completed");
    assert_eq!(completed["response"]["output"], json!([item]));
    item
}

/// The text of the last turn's answer, streamed or not.
async fn final_text(response: reqwest::Response, stream: bool) -> String {
    if stream {
        let events = typed_events(response).await;
        let text: String = events
            .iter()
            .filter(|e| e["type"] == "response.output_text.delta")
            .map(|e| e["delta"].as_str().unwrap())
            .collect();
        let done = events.last().unwrap();
        assert_eq!(done["type"], "response.completed");
        assert_eq!(done["response"]["output"][0]["content"][0]["text"], text);
        text
    } else {
        assert_eq!(response.status(), 200);
        let response: Value = response.json().await.unwrap();
        assert_eq!(response["status"], "completed");
        response["output"][0]["content"][0]["text"]
            .as_str()
            .unwrap()
            .to_string()
    }
}

/// Codex's turn (gpt-5.5, with `exec_command` and `apply_patch`) through the bridge: the
/// upstream calls `tool`; the client gets the call, sends it back with its output as Codex
/// does (the input so far, the item as received, the output item), and gets the answer; the
/// upstream saw the call and its output as an assistant tool call and a tool message.
async fn round_trip(tool: Tool, stream: bool) {
    let (upstream, gw) = bridged(tool.answer).await;
    let mut body = request("codex/turn1_gpt-5.5.json", "bridged");
    body["stream"] = json!(stream);
    let r = post(&gw, &body).await;
    let item = if stream {
        streamed_call_item(&tool, &typed_events(r).await)
    } else {
        assert_eq!(r.status(), 200);
        let response: Value = r.json().await.unwrap();
        assert_eq!(response["status"], "completed");
        let output = response["output"].as_array().unwrap();
        assert_eq!(output.len(), 1, "{output:?}");
        output[0].clone()
    };
    assert_call_item(&tool, &item);

    let output_kind = format!("{}_output", tool.item);
    let input = body["input"].as_array_mut().unwrap();
    input.push(item);
    input.push(json!({"type": output_kind, "call_id": tool.call_id, "output": tool.output}));
    let answer = final_text(post(&gw, &body).await, stream).await;
    assert_eq!(answer, "The command printed hi.");

    let sent = chat_requests(&upstream).await;
    assert_eq!(sent.len(), 2);
    let messages = sent[1]["messages"].as_array().unwrap();
    let (call, result) = (&messages[messages.len() - 2], &messages[messages.len() - 1]);
    assert_eq!(call["role"], "assistant");
    assert_eq!(call["content"], Value::Null);
    let calls = call["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["id"], tool.call_id);
    assert_eq!(calls[0]["type"], "function");
    assert_eq!(calls[0]["function"]["name"], tool.chat_name);
    let arguments: Value =
        serde_json::from_str(calls[0]["function"]["arguments"].as_str().unwrap()).unwrap();
    let expected = if tool.item == "custom_tool_call" {
        json!({"input": PATCH})
    } else {
        json!({"cmd": "echo hi"})
    };
    assert_eq!(arguments, expected);
    assert_eq!(
        *result,
        json!({"role": "tool", "tool_call_id": tool.call_id, "content": tool.output})
    );
    // The turn before the call is the first turn's, unchanged.
    let first = sent[0]["messages"].as_array().unwrap();
    assert_eq!(&messages[..messages.len() - 2], &first[..]);
}

#[tokio::test]
async fn a_function_call_round_trip_over_the_bridge_reaches_the_upstream_as_a_tool_call_and_tool_message()
 {
    round_trip(EXEC_COMMAND, false).await;
}

#[tokio::test]
async fn a_streamed_function_call_round_trip_over_the_bridge_reaches_the_upstream_as_a_tool_call_and_tool_message()
 {
    round_trip(EXEC_COMMAND, true).await;
}

#[tokio::test]
async fn an_apply_patch_round_trip_over_the_bridge_gives_a_custom_tool_call_and_sends_its_output_back()
 {
    round_trip(APPLY_PATCH, false).await;
}

#[tokio::test]
async fn a_streamed_apply_patch_round_trip_gives_custom_tool_call_input_events_and_sends_its_output_back()
 {
    round_trip(APPLY_PATCH, true).await;
}
