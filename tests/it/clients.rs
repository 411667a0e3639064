//! Real clients through the gateway: Claude Code (the pinned CLI from npm, installed by
//! `.ci/fetch-clients.sh`) run headless against `/v1/messages`, the gateway's upstream a mock
//! that first asks for a tool call and then answers with what the tool returned: an
//! OpenAI-compatible one (the translated path) and an Anthropic one (the native path). As
//! root, each test runs again inside a network namespace of its own (`unshare -n`, loopback
//! only), gateway, mock and CLI together, so nothing outside is reached. Without the CLI these
//! tests skip loudly, unless `HX_REQUIRE_CLIENTS=1` (CI), where they fail.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::common::*;

/// A client CLI: `$env` when set, else the cache's pinned install (`.ci/fetch-clients.sh`).
/// Missing, it skips loudly, or fails under `HX_REQUIRE_CLIENTS=1`.
fn client_binary(env: &str, cached: &str, name: &str) -> Option<PathBuf> {
    let path = match std::env::var_os(env) {
        Some(p) => PathBuf::from(p),
        None => dirs_cache().join(cached),
    };
    if path.exists() {
        return Some(path);
    }
    assert!(
        std::env::var("HX_REQUIRE_CLIENTS").as_deref() != Ok("1"),
        "{name} is required (HX_REQUIRE_CLIENTS=1) but {} is missing: run .ci/fetch-clients.sh",
        path.display()
    );
    // The real stderr, as local_embeddings does: the harness hides `eprintln!` of passing tests.
    let message = format!(
        "\n**********\nSKIPPED: {name} not installed at {} (run .ci/fetch-clients.sh); the client test did NOT run\n**********\n",
        path.display()
    );
    let _ = std::io::Write::write_all(&mut std::io::stderr(), message.as_bytes());
    None
}

fn claude_binary() -> Option<PathBuf> {
    client_binary(
        "HX_TEST_CLAUDE",
        "clients/claude-code-2.1.332/node_modules/.bin/claude",
        "Claude Code",
    )
}

fn codex_binary() -> Option<PathBuf> {
    client_binary(
        "HX_TEST_CODEX",
        "clients/codex-0.171.0/node_modules/.bin/codex",
        "Codex CLI",
    )
}

fn dirs_cache() -> PathBuf {
    match std::env::var_os("HX_CACHE_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/hx-gateway")
        }
    }
}

/// As root and not isolated yet: runs the test `name` again inside a network namespace of its
/// own, with only loopback up, and asserts that it passed there. Returns whether it did (the
/// caller is done); `false` means this process runs the test itself.
async fn ran_isolated(name: &str) -> bool {
    if std::env::var_os("HX_IN_NETNS").is_some() || !is_root() {
        return false;
    }
    let exe = std::env::current_exe().unwrap();
    let mut command = tokio::process::Command::new("unshare");
    command
        .args([
            "-n",
            "--",
            "sh",
            "-c",
            r#"ip link set lo up && exec "$0" "$@""#,
        ])
        .arg(&exe)
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env("HX_IN_NETNS", "1")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(240), command.output())
        .await
        .expect("the isolated test finishes")
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "{name} inside unshare -n: {}\n{stdout}\n{stderr}",
        output.status
    );
    true
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1))
            == Some("0")
    })
}

/// An OpenAI-compatible upstream: a request whose conversation holds a tool result is
/// answered with a text quoting it; any other request that offers the tool `tool` gets a
/// call of it with `arguments`; the rest a plain text. Streamed when asked.
struct Upstream {
    tool: &'static str,
    arguments: Value,
}

fn chunk(delta: Value, finish: Option<&str>) -> Value {
    json!({"id": "chatcmpl-cc", "object": "chat.completion.chunk", "created": 1, "model": "mock",
           "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
}

impl Respond for Upstream {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        let messages = body["messages"].as_array().cloned().unwrap_or_default();
        let tool_result = messages
            .iter()
            .find(|m| m["role"] == "tool")
            .and_then(|m| m["content"].as_str().map(str::to_string));
        let offers_tool = body["tools"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t["function"]["name"] == self.tool));
        let usage = json!({"id": "chatcmpl-cc", "object": "chat.completion.chunk", "created": 1, "model": "mock",
            "choices": [], "usage": {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110}});
        let chunks = if let Some(result) = tool_result {
            let secret = if result.contains("zebra-42") {
                "zebra-42"
            } else {
                "nothing"
            };
            vec![
                chunk(
                    json!({"role": "assistant", "content": format!("The note says {secret}.")}),
                    None,
                ),
                chunk(json!({}), Some("stop")),
                usage,
            ]
        } else if offers_tool {
            let arguments = self.arguments.to_string();
            vec![
                chunk(
                    json!({"role": "assistant", "tool_calls": [{"index": 0, "id": "call_read_1", "type": "function",
                    "function": {"name": self.tool, "arguments": ""}}]}),
                    None,
                ),
                chunk(
                    json!({"tool_calls": [{"index": 0, "function": {"arguments": arguments}}]}),
                    None,
                ),
                chunk(json!({}), Some("tool_calls")),
                usage,
            ]
        } else {
            vec![
                chunk(
                    json!({"role": "assistant", "content": "Hello from the mock."}),
                    None,
                ),
                chunk(json!({}), Some("stop")),
                usage,
            ]
        };
        if body["stream"] == true {
            ResponseTemplate::new(200)
                .insert_header("content-type", "text/event-stream")
                .set_body_string(openai_sse(&chunks))
        } else {
            let text = chunks
                .iter()
                .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
                .collect::<String>();
            ResponseTemplate::new(200).set_body_json(json!({
                "id": "chatcmpl-cc", "object": "chat.completion", "created": 1, "model": "mock",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110}
            }))
        }
    }
}

/// An Anthropic upstream, as the OpenAI one above: a conversation holding a `tool_result` is
/// answered with a text quoting it, one offering `Read` with a `tool_use` of it, any other
/// with a plain text; an SSE stream of Anthropic's events when asked. It checks what
/// Anthropic checks: the deployment's key in `x-api-key` and an `anthropic-version`.
struct AnthropicUpstream {
    file: String,
}

fn anthropic_events(blocks: &[Value], stop_reason: &str) -> String {
    let mut events = vec![json!({"type": "message_start", "message": {
        "id": "msg_cc", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
        "content": [], "stop_reason": null, "stop_sequence": null,
        "usage": {"input_tokens": 100, "cache_read_input_tokens": 40, "cache_creation_input_tokens": 0, "output_tokens": 1}}})];
    events.push(json!({"type": "ping"}));
    for (index, block) in blocks.iter().enumerate() {
        let (start, delta) = if block["type"] == "tool_use" {
            (
                json!({"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}),
                json!({"type": "input_json_delta", "partial_json": block["input"].to_string()}),
            )
        } else {
            (
                json!({"type": "text", "text": ""}),
                json!({"type": "text_delta", "text": block["text"]}),
            )
        };
        events.push(json!({"type": "content_block_start", "index": index, "content_block": start}));
        events.push(json!({"type": "content_block_delta", "index": index, "delta": delta}));
        events.push(json!({"type": "content_block_stop", "index": index}));
    }
    events.push(json!({"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": null}, "usage": {"output_tokens": 10}}));
    events.push(json!({"type": "message_stop"}));
    events
        .iter()
        .map(|e| format!("event: {}\ndata: {e}\n\n", e["type"].as_str().unwrap()))
        .collect()
}

impl Respond for AnthropicUpstream {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let authorised = request
            .headers
            .get("x-api-key")
            .is_some_and(|k| k == "sk-ant-upstream-key")
            && request.headers.contains_key("anthropic-version");
        if !authorised {
            return ResponseTemplate::new(401).set_body_json(json!({"type": "error",
                "error": {"type": "authentication_error", "message": "invalid x-api-key"}}));
        }
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        let messages = body["messages"].as_array().cloned().unwrap_or_default();
        let tool_result = messages
            .iter()
            .filter_map(|m| m["content"].as_array())
            .flatten()
            .find(|b| b["type"] == "tool_result")
            .map(|b| b["content"].to_string());
        let offers_read = body["tools"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t["name"] == "Read"));
        let (blocks, stop) = if let Some(result) = tool_result {
            let secret = if result.contains("zebra-42") {
                "zebra-42"
            } else {
                "nothing"
            };
            (
                vec![json!({"type": "text", "text": format!("The note says {secret}.")})],
                "end_turn",
            )
        } else if offers_read {
            (
                vec![
                    json!({"type": "tool_use", "id": "toolu_read_1", "name": "Read",
                            "input": {"file_path": self.file}}),
                ],
                "tool_use",
            )
        } else {
            (
                vec![json!({"type": "text", "text": "Hello from the mock."})],
                "end_turn",
            )
        };
        if body["stream"] == true {
            ResponseTemplate::new(200)
                .insert_header("content-type", "text/event-stream")
                .set_body_string(anthropic_events(&blocks, stop))
        } else {
            ResponseTemplate::new(200).set_body_json(json!({
                "id": "msg_cc", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
                "content": blocks, "stop_reason": stop, "stop_sequence": null,
                "usage": {"input_tokens": 100, "cache_read_input_tokens": 40, "output_tokens": 10}
            }))
        }
    }
}

/// Runs `claude -p` headless in `work` against the gateway with the virtual key `key`; asserts
/// it succeeded and printed the note's secret.
async fn run_claude(claude: &std::path::Path, gw: &TestGateway, key: &str, work: &std::path::Path) {
    let home = tempfile::tempdir().unwrap();
    let mut command = tokio::process::Command::new(claude);
    command
        .args([
            "-p",
            "Read note.txt and tell me what it says.",
            "--allowedTools",
            "Read",
        ])
        .current_dir(work)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", home.path())
        .env("ANTHROPIC_BASE_URL", gw.url(""))
        .env("ANTHROPIC_AUTH_TOKEN", key)
        .env("ANTHROPIC_API_KEY", "")
        .env("ANTHROPIC_MODEL", "claude")
        .env("ANTHROPIC_DEFAULT_HAIKU_MODEL", "claude")
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        .env("DISABLE_AUTOUPDATER", "1")
        .env("DISABLE_TELEMETRY", "1")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(120), command.output())
        .await
        .expect("claude -p finishes")
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "claude failed: {stdout}\n{stderr}");
    assert!(
        stdout.contains("The note says zebra-42."),
        "Claude Code printed: {stdout}\n{stderr}"
    );
}

/// Whether an upstream chat request carries the tool call's result holding the note's secret.
fn carries_the_tool_result(request: &Request) -> bool {
    let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
    body["messages"].as_array().is_some_and(|m| {
        m.iter().any(|m| {
            m["role"] == "tool"
                && m["tool_call_id"] == "call_read_1"
                && m["content"]
                    .as_str()
                    .is_some_and(|c| c.contains("zebra-42"))
        })
    })
}

/// A note holding a secret in a fresh working directory.
fn work_dir() -> (tempfile::TempDir, String) {
    let work = tempfile::tempdir().unwrap();
    let note = work.path().join("note.txt");
    std::fs::write(&note, "the password is zebra-42\n").unwrap();
    (work, note.display().to_string())
}

async fn virtual_key(gw: &TestGateway) -> String {
    let r = gw
        .post("/key/generate", json!({"key_alias": "claude-code"}))
        .await;
    r.json::<Value>().await.unwrap()["key"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn claude_code_reads_a_file_through_a_tool_call_and_answers_through_the_gateway() {
    let Some(claude) = claude_binary() else {
        return;
    };
    if ran_isolated(
        "clients::claude_code_reads_a_file_through_a_tool_call_and_answers_through_the_gateway",
    )
    .await
    {
        return;
    }
    let (work, note) = work_dir();
    let upstream = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(Upstream {
            tool: "Read",
            arguments: json!({"file_path": note}),
        })
        .mount(&upstream)
        .await;
    let gw = TestGateway::start(&format!(
        "model_list:\n  - model_name: claude\n    litellm_params:\n      model: openai/mock\n      api_base: {}/v1\n      api_key: sk-up\nrouter_settings: {{num_retries: 0}}\n",
        upstream.uri()
    ))
    .await;
    let key = virtual_key(&gw).await;
    run_claude(&claude, &gw, &key, work.path()).await;
    // The tool result reached the upstream as a tool message answering the call.
    let requests = upstream.received_requests().await.unwrap();
    let answered = requests.iter().any(carries_the_tool_result);
    assert!(answered, "no upstream request carried the tool result");
    // Every call was charged to the key, as anthropic_messages.
    let rows = spend_rows(&gw, &key).await;
    assert!(
        rows.len() >= 2,
        "at least the tool call and the answer: {rows:?}"
    );
    assert!(
        rows.iter()
            .all(|(call, tokens)| call == "anthropic_messages" && *tokens == 100),
        "{rows:?}"
    );
}

#[tokio::test]
async fn claude_code_works_natively_through_an_anthropic_deployment() {
    let Some(claude) = claude_binary() else {
        return;
    };
    if ran_isolated("clients::claude_code_works_natively_through_an_anthropic_deployment").await {
        return;
    }
    let (work, note) = work_dir();
    let upstream = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(AnthropicUpstream { file: note })
        .mount(&upstream)
        .await;
    let gw = TestGateway::start(&format!(
        "model_list:\n  - model_name: claude\n    litellm_params:\n      model: anthropic/claude-sonnet-4-5\n      api_base: {}\n      api_key: sk-ant-upstream-key\nrouter_settings: {{num_retries: 0}}\n",
        upstream.uri()
    ))
    .await;
    let key = virtual_key(&gw).await;
    run_claude(&claude, &gw, &key, work.path()).await;
    let requests = upstream.received_requests().await.unwrap();
    // The body went as Claude Code sent it, the model renamed and its beta flags forwarded;
    // the virtual key never left the gateway.
    let tool_turn = requests
        .iter()
        .find(|r| {
            let body: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
            body["messages"].as_array().is_some_and(|m| {
                m.iter().any(|m| {
                    m["content"].as_array().is_some_and(|c| {
                        c.iter().any(|b| {
                            b["type"] == "tool_result" && b["tool_use_id"] == "toolu_read_1"
                        })
                    })
                })
            })
        })
        .expect("an upstream request carried the tool result");
    let body: Value = serde_json::from_slice(&tool_turn.body).unwrap();
    assert_eq!(body["model"], "claude-sonnet-4-5");
    assert!(tool_turn.headers.contains_key("anthropic-beta"));
    for r in &requests {
        let headers = format!("{:?}", r.headers);
        assert!(
            !headers.contains(&key),
            "the virtual key reached the upstream"
        );
    }
    // Spend from the native events: the input, cache reads included, per call.
    let rows = spend_rows(&gw, &key).await;
    assert!(rows.len() >= 2, "{rows:?}");
    assert!(
        rows.iter()
            .all(|(call, tokens)| call == "anthropic_messages" && *tokens >= 100),
        "{rows:?}"
    );
}

#[tokio::test]
async fn codex_cli_runs_a_command_through_a_tool_call_and_answers_through_the_gateway() {
    let Some(codex) = codex_binary() else {
        return;
    };
    if ran_isolated(
        "clients::codex_cli_runs_a_command_through_a_tool_call_and_answers_through_the_gateway",
    )
    .await
    {
        return;
    }
    let (work, _note) = work_dir();
    let upstream = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(Upstream {
            tool: "exec_command",
            arguments: json!({"cmd": "cat note.txt"}),
        })
        .mount(&upstream)
        .await;
    let gw = TestGateway::start(&format!(
        "model_list:\n  - model_name: coder\n    litellm_params:\n      model: openai/mock\n      api_base: {}/v1\n      api_key: sk-up\nrouter_settings: {{num_retries: 0}}\n",
        upstream.uri()
    ))
    .await;
    let key = virtual_key(&gw).await;
    let home = tempfile::tempdir().unwrap();
    let codex_home = home.path().join(".codex");
    std::fs::create_dir_all(&codex_home).unwrap();
    std::fs::write(
        codex_home.join("config.toml"),
        format!(
            "model = \"coder\"\nmodel_provider = \"hx\"\ncheck_for_update_on_startup = false\n\n\
             [model_providers.hx]\nname = \"HX Gateway\"\nbase_url = \"{}\"\nenv_key = \"HX_API_KEY\"\nwire_api = \"responses\"\n",
            gw.url("/v1")
        ),
    )
    .unwrap();
    let mut command = tokio::process::Command::new(&codex);
    command
        .args([
            "exec",
            "--skip-git-repo-check",
            "Run cat note.txt and tell me what the note says.",
        ])
        .current_dir(work.path())
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", home.path())
        .env("CODEX_HOME", &codex_home)
        .env("HX_API_KEY", &key)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(120), command.output())
        .await
        .expect("codex exec finishes")
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "codex failed: {stdout}\n{stderr}");
    assert!(
        stdout.contains("The note says zebra-42."),
        "Codex printed: {stdout}\n{stderr}"
    );
    // The command's output reached the upstream as the tool call's result.
    let requests = upstream.received_requests().await.unwrap();
    let answered = requests.iter().any(carries_the_tool_result);
    assert!(answered, "no upstream request carried the command's output");
    let rows = spend_rows(&gw, &key).await;
    assert!(rows.len() >= 2, "{rows:?}");
    assert!(
        rows.iter().all(|(call, _)| call == "aresponses"),
        "{rows:?}"
    );
}
