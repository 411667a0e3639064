//! A key's permissions on every path a request can take, tried as an attacker would: request
//! and config fallbacks past the model allow-list, cached answers of other models, and
//! budgets under concurrency. The upstreams count every call, so "never called" is checked,
//! not assumed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Json;
use axum::response::Response;
use axum::routing::post;
use serde_json::{Value, json};

use crate::common::*;

/// What a counting upstream answers.
#[derive(Clone, Copy)]
enum Behaviour {
    /// 200 with `completion_tokens` tokens of usage, after `delay`.
    Ok {
        completion_tokens: u64,
        delay_ms: u64,
    },
    /// 500 for every request.
    Fail,
    /// OpenAI's context-length 400.
    ContextTooLong,
}

/// An OpenAI-wire upstream on both chat and text completions that counts its calls.
struct Upstream {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
}

impl Upstream {
    async fn start(name: &'static str, behaviour: Behaviour) -> Self {
        let hits = Arc::new(AtomicUsize::new(0));
        let handler = |hits: Arc<AtomicUsize>, chat: bool| {
            move |Json(body): Json<Value>| {
                let hits = hits.clone();
                async move {
                    hits.fetch_add(1, Ordering::SeqCst);
                    answer(
                        name,
                        behaviour,
                        chat,
                        body["stream"].as_bool() == Some(true),
                    )
                    .await
                }
            }
        };
        let app = axum::Router::new()
            .route("/v1/chat/completions", post(handler(hits.clone(), true)))
            .route("/v1/completions", post(handler(hits.clone(), false)));
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

fn json_response(status: u16, body: Value) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

async fn answer(name: &str, behaviour: Behaviour, chat: bool, stream: bool) -> Response {
    let error = |status: u16, message: &str, kind: &str, code: &str| {
        json_response(
            status,
            json!({"error": {"message": message, "type": kind, "param": null, "code": code}}),
        )
    };
    let (completion_tokens, delay_ms) = match behaviour {
        Behaviour::Fail => return error(500, &format!("{name} failed"), "server_error", "500"),
        Behaviour::ContextTooLong => {
            return error(
                400,
                "This model's maximum context length is 8192 tokens.",
                "invalid_request_error",
                "context_length_exceeded",
            );
        }
        Behaviour::Ok {
            completion_tokens,
            delay_ms,
        } => (completion_tokens, delay_ms),
    };
    tokio::time::sleep(Duration::from_millis(delay_ms)).await;
    let usage = json!({"prompt_tokens": 1, "completion_tokens": completion_tokens,
                       "total_tokens": 1 + completion_tokens});
    let (object, choice) = if chat {
        (
            "chat.completion",
            json!({"index": 0, "message": {"role": "assistant", "content": name}, "finish_reason": "stop"}),
        )
    } else {
        (
            "text_completion",
            json!({"index": 0, "text": name, "finish_reason": "stop"}),
        )
    };
    if !stream {
        return json_response(
            200,
            json!({"id": "up-1", "object": object, "created": 1, "model": name,
                   "choices": [choice], "usage": usage}),
        );
    }
    let delta = if chat {
        json!({"index": 0, "delta": {"content": name}, "finish_reason": null})
    } else {
        json!({"index": 0, "text": name, "finish_reason": null})
    };
    let chunk = json!({"id": "up-1", "object": format!("{object}.chunk"), "created": 1,
                       "model": name, "choices": [delta]});
    let last = json!({"id": "up-1", "object": format!("{object}.chunk"), "created": 1,
                      "model": name, "choices": [], "usage": usage});
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from(format!(
            "data: {chunk}\n\ndata: {last}\n\ndata: [DONE]\n\n"
        )))
        .unwrap()
}

const OK: Behaviour = Behaviour::Ok {
    completion_tokens: 1,
    delay_ms: 0,
};

/// `model_list` entries `(group, api_base)` with no retries, so a failing group falls back at
/// once; `extra` is appended (settings).
fn config(entries: &[(&str, String)], extra: &str) -> String {
    let mut yaml = String::from("model_list:\n");
    for (group, base) in entries {
        yaml.push_str(&format!(
            "  - model_name: {group}\n    litellm_params: {{model: openai/{group}, api_base: \"{base}\", api_key: sk-up}}\n    model_info: {{id: {group}-1}}\n"
        ));
    }
    yaml.push_str("router_settings: {num_retries: 0, allowed_fails: 1000, retry_after: 0}\n");
    yaml.push_str(extra);
    yaml
}

async fn generate(gw: &TestGateway, body: Value) -> String {
    let r = gw.post("/key/generate", body).await;
    assert_eq!(r.status(), 200);
    r.json::<Value>().await.unwrap()["key"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn send(gw: &TestGateway, key: &str, path: &str, body: &Value) -> reqwest::Response {
    gw.client
        .post(gw.url(path))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .unwrap()
}

fn request(path: &str, model: &str, stream: bool) -> Value {
    if path == "/v1/chat/completions" {
        json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]})
    } else if path == "/v1/responses" {
        json!({"model": model, "stream": stream, "input": "hi"})
    } else {
        json!({"model": model, "stream": stream, "prompt": "hi"})
    }
}

/// The OpenAI-shaped LLM routes (`/v1/responses` bridged onto the upstreams' chat).
const ENDPOINTS: [&str; 3] = ["/v1/chat/completions", "/v1/completions", "/v1/responses"];

#[tokio::test]
async fn no_kind_of_request_fallback_reaches_a_model_the_key_may_not_use() {
    let failing = Upstream::start("a", Behaviour::Fail).await;
    let too_long = Upstream::start("short", Behaviour::ContextTooLong).await;
    let forbidden = Upstream::start("b", OK).await;
    let yaml = config(
        &[
            ("a", failing.base()),
            ("short", too_long.base()),
            ("b", forbidden.base()),
        ],
        "",
    )
    .replace(
        "router_settings:",
        &format!(
            "  - model_name: \"wild/*\"\n    litellm_params: {{model: \"openai/*\", api_base: \"{}\", api_key: sk-up}}\nrouter_settings:",
            forbidden.base()
        ),
    );
    let gw = TestGateway::start(&yaml).await;
    let key = generate(&gw, json!({"models": ["a", "short"]})).await;
    type Shape = fn(&mut Value);
    let shapes: [(&str, &str, Shape); 6] = [
        ("strings", "a", |b| b["fallbacks"] = json!(["b"])),
        ("objects", "a", |b| b["fallbacks"] = json!([{"model": "b"}])),
        ("group maps", "a", |b| {
            b["fallbacks"] = json!([{"a": ["b"]}])
        }),
        ("metadata", "a", |b| {
            b["metadata"] = json!({"fallbacks": ["b"]})
        }),
        ("context window", "short", |b| {
            b["context_window_fallbacks"] = json!(["b"])
        }),
        ("wildcard group", "a", |b| {
            b["fallbacks"] = json!(["wild/b"])
        }),
    ];
    for path in ENDPOINTS {
        for stream in [false, true] {
            for (what, model, shape) in &shapes {
                let mut body = request(path, model, stream);
                shape(&mut body);
                let r = send(&gw, &key, path, &body).await;
                let e = expect_error(r, 401, "key_model_access_denied").await;
                assert!(
                    e["message"]
                        .as_str()
                        .unwrap()
                        .ends_with(if *what == "wildcard group" {
                            "Tried to access wild/b"
                        } else {
                            "Tried to access b"
                        }),
                    "{what} {path} stream={stream}: {e}"
                );
            }
        }
    }
    assert_eq!(forbidden.hits(), 0, "the forbidden upstream was called");
    assert_eq!(failing.hits(), ENDPOINTS.len() * 2 * 5);
    assert_eq!(too_long.hits(), ENDPOINTS.len() * 2);
    // The master key is not limited: the same fallback answers.
    let mut body = request(ENDPOINTS[0], "a", false);
    body["fallbacks"] = json!(["b"]);
    let r = gw.post(ENDPOINTS[0], body).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-litellm-model-group"], "b");
    assert_eq!(forbidden.hits(), 1);
}

#[tokio::test]
async fn an_allowed_fallback_answers_and_forbidden_ones_before_it_are_skipped() {
    let failing = Upstream::start("a", Behaviour::Fail).await;
    let forbidden = Upstream::start("b", OK).await;
    let allowed = Upstream::start("c", OK).await;
    let yaml = config(
        &[
            ("a", failing.base()),
            ("b", forbidden.base()),
            ("c", allowed.base()),
        ],
        "",
    );
    let gw = TestGateway::start(&yaml).await;
    let key = generate(&gw, json!({"models": ["a", "c"]})).await;
    for path in ENDPOINTS {
        for stream in [false, true] {
            let mut body = request(path, "a", stream);
            body["fallbacks"] = json!(["b", {"model": "c"}]);
            let r = send(&gw, &key, path, &body).await;
            assert_eq!(r.status(), 200, "{path} stream={stream}");
            assert_eq!(r.headers()["x-litellm-model-group"], "c");
            assert!(r.text().await.unwrap().contains('c'));
        }
    }
    assert_eq!((forbidden.hits(), allowed.hits()), (0, ENDPOINTS.len() * 2));
}

#[tokio::test]
async fn config_fallbacks_are_the_operators_choice_unless_enforced() {
    let failing = Upstream::start("a", Behaviour::Fail).await;
    let backup = Upstream::start("b", OK).await;
    let entries = [("a", failing.base()), ("b", backup.base())];
    let fallbacks = "litellm_settings: {fallbacks: [{a: [b]}]}\n";

    let gw = TestGateway::start(&config(&entries, fallbacks)).await;
    let key = generate(&gw, json!({"models": ["a"]})).await;
    for stream in [false, true] {
        let r = send(&gw, &key, ENDPOINTS[0], &request(ENDPOINTS[0], "a", stream)).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-litellm-model-group"], "b");
    }
    assert_eq!(backup.hits(), 2);

    let enforced = format!(
        "{fallbacks}general_settings: {{master_key: {MASTER}, enforce_fallback_model_access: true}}\n"
    );
    let gw = TestGateway::start(&config(&entries, &enforced)).await;
    let key = generate(&gw, json!({"models": ["a"]})).await;
    for path in ENDPOINTS {
        for stream in [false, true] {
            let r = send(&gw, &key, path, &request(path, "a", stream)).await;
            expect_error(r, 401, "key_model_access_denied").await;
        }
    }
    assert_eq!(backup.hits(), 2, "an enforced config fallback was called");
    // A key allowed both still gets the fallback.
    let both = generate(&gw, json!({"models": ["a", "b"]})).await;
    let r = send(&gw, &both, ENDPOINTS[0], &request(ENDPOINTS[0], "a", false)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(backup.hits(), 3);
}

#[tokio::test]
async fn a_cached_answer_is_never_served_to_a_key_without_its_model() {
    let failing = Upstream::start("a", Behaviour::Fail).await;
    let other = Upstream::start("b", OK).await;
    let yaml = config(
        &[("a", failing.base()), ("b", other.base())],
        "litellm_settings:\n  cache: true\n  cache_params: {type: local}\n",
    );
    let gw = TestGateway::start(&yaml).await;
    let key = generate(&gw, json!({"models": ["a"]})).await;
    let cached = |r: &reqwest::Response| r.headers().get("x-litellm-cache-hit").is_some();

    // The master key's answers of b (asked directly, and as a's fallback) are cached...
    let direct = request(ENDPOINTS[0], "b", false);
    let mut via_fallback = request(ENDPOINTS[0], "a", false);
    via_fallback["fallbacks"] = json!(["b"]);
    for body in [&direct, &via_fallback] {
        let r = gw.post(ENDPOINTS[0], body.clone()).await;
        assert_eq!(r.status(), 200);
    }
    // (stored off the request path)
    let mut hit = false;
    for _ in 0..50 {
        let r = gw.post(ENDPOINTS[0], direct.clone()).await;
        if cached(&r) {
            hit = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(hit, "the master key's answer was not cached");
    let served_by_b = other.hits();

    // ... but the key may not read b's entry, and a's entry never holds b's answer.
    for stream in [false, true] {
        let r = send(&gw, &key, ENDPOINTS[0], &request(ENDPOINTS[0], "b", stream)).await;
        assert!(!cached(&r));
        expect_error(r, 401, "key_model_access_denied").await;
        let mut body = request(ENDPOINTS[0], "a", stream);
        body["fallbacks"] = json!(["b"]);
        let r = send(&gw, &key, ENDPOINTS[0], &body).await;
        assert!(!cached(&r));
        expect_error(r, 401, "key_model_access_denied").await;
        let r = send(&gw, &key, ENDPOINTS[0], &request(ENDPOINTS[0], "a", stream)).await;
        assert!(!cached(&r));
        assert_eq!(r.status(), 500);
    }
    assert_eq!(other.hits(), served_by_b);
}

/// Key spend as `/key/info` reports it.
async fn key_spend(gw: &TestGateway, key: &str) -> f64 {
    let r = gw
        .client
        .get(gw.url("/key/info"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    body["info"]["spend"].as_f64().unwrap()
}

#[tokio::test]
async fn fifty_concurrent_calls_cannot_spend_past_a_small_budget() {
    // Each call costs exactly 1e-5 (10 output tokens at 1e-6, input free); it asks for at
    // most 10 tokens, so its estimate is exact and the stated bound is the budget itself.
    let slow = Upstream::start(
        "slow",
        Behaviour::Ok {
            completion_tokens: 10,
            delay_ms: 300,
        },
    )
    .await;
    let yaml = format!(
        "model_list:\n  - model_name: slow\n    litellm_params: {{model: openai/slow, api_base: \"{}\", api_key: sk-up}}\n    model_info: {{input_cost_per_token: 0.0, output_cost_per_token: 0.000001}}\n",
        slow.base()
    );
    let gw = TestGateway::start(&yaml).await;
    let budget = 3e-5;
    let key = generate(&gw, json!({"max_budget": budget})).await;
    let body = json!({"model": "slow", "max_tokens": 10,
                      "messages": [{"role": "user", "content": "hi"}]});
    let statuses = futures::future::join_all((0..50).map(|i| {
        let (gw, key, body) = (&gw, &key, &body);
        let mut body = body.clone();
        body["stream"] = json!(i % 2 == 0);
        async move {
            let r = send(gw, key, "/v1/chat/completions", &body).await;
            let status = r.status().as_u16();
            if status == 400 {
                expect_error(r, 400, "budget_exceeded").await;
            } else {
                r.bytes().await.unwrap();
            }
            status
        }
    }))
    .await;
    let served = statuses.iter().filter(|s| **s == 200).count();
    assert_eq!(served + statuses.iter().filter(|s| **s == 400).count(), 50);
    assert_eq!(served, 3, "{statuses:?}");
    assert_eq!(slow.hits(), 3);
    let spend = key_spend(&gw, &key).await;
    assert!(
        spend <= budget * (1.0 + 1e-9),
        "spend {spend} over {budget}"
    );
    // Settled: the spent budget now refuses at once, and the holds are gone.
    let r = send(&gw, &key, "/v1/chat/completions", &body).await;
    expect_error(r, 400, "budget_exceeded").await;

    // The master key has no budget: all of its concurrent calls are served.
    let served = futures::future::join_all(
        (0..10).map(|_| async { gw.post("/v1/chat/completions", body.clone()).await.status() }),
    )
    .await;
    assert!(served.iter().all(|s| *s == 200), "{served:?}");
}

#[tokio::test]
async fn a_team_budget_binds_its_keys_together_under_concurrency() {
    let slow = Upstream::start(
        "slow",
        Behaviour::Ok {
            completion_tokens: 10,
            delay_ms: 300,
        },
    )
    .await;
    let yaml = format!(
        "model_list:\n  - model_name: slow\n    litellm_params: {{model: openai/slow, api_base: \"{}\", api_key: sk-up}}\n    model_info: {{input_cost_per_token: 0.0, output_cost_per_token: 0.000001}}\n",
        slow.base()
    );
    let gw = TestGateway::start(&yaml).await;
    let team_id = format!("team-{}", uuid::Uuid::new_v4().simple());
    let mut team = hx_gateway::db::TeamRecord::new(&team_id);
    team.max_budget = Some(2e-5);
    let keys_service = gw.state.keys().unwrap();
    keys_service.store().upsert_team(&team).await.unwrap();
    let keys = [
        generate(&gw, json!({"team_id": team_id})).await,
        generate(&gw, json!({"team_id": team_id})).await,
    ];
    let body = json!({"model": "slow", "max_tokens": 10,
                      "messages": [{"role": "user", "content": "hi"}]});
    let statuses = futures::future::join_all((0..20).map(|i| {
        let key = &keys[i % 2];
        let body = &body;
        let gw = &gw;
        async move { send(gw, key, "/v1/chat/completions", body).await.status() }
    }))
    .await;
    let served = statuses.iter().filter(|s| s.as_u16() == 200).count();
    assert_eq!(served, 2, "{statuses:?}");
    assert_eq!(slow.hits(), 2);
}

#[tokio::test]
async fn two_instances_on_one_redis_share_the_budget_holds() {
    let slow = Upstream::start(
        "slow",
        Behaviour::Ok {
            completion_tokens: 10,
            delay_ms: 500,
        },
    )
    .await;
    let db = ScratchDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "model_list:\n  - model_name: slow\n    litellm_params: {{model: openai/slow, api_base: \"{}\", api_key: sk-up}}\n    model_info: {{input_cost_per_token: 0.0, output_cost_per_token: 0.000001}}\n",
            slow.base()
        ),
    )
    .unwrap();
    let env = |sub: &str| {
        vec![
            ("LITELLM_MASTER_KEY", MASTER.to_string()),
            ("DATABASE_URL", db.url()),
            ("REDIS_URL", "redis://127.0.0.1:6379".to_string()),
            ("HX_DATA_DIR", dir.path().join(sub).display().to_string()),
        ]
    };
    let a = GatewayProcess::spawn(&config, &env("a"), &[]).await;
    let b = GatewayProcess::spawn(&config, &env("b"), &[]).await;
    let client = reqwest::Client::new();
    let generated: Value = client
        .post(a.url("/key/generate"))
        .bearer_auth(MASTER)
        .json(&json!({"max_budget": 3e-5}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = generated["key"].as_str().unwrap().to_string();
    let body = json!({"model": "slow", "max_tokens": 10,
                      "messages": [{"role": "user", "content": "hi"}]});
    let statuses = futures::future::join_all((0..40).map(|i| {
        let url = if i % 2 == 0 { a.url("") } else { b.url("") };
        let (client, key, body) = (client.clone(), key.clone(), body.clone());
        async move {
            client
                .post(format!("{url}/v1/chat/completions"))
                .bearer_auth(key)
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    }))
    .await;
    let served = statuses.iter().filter(|s| **s == 200).count();
    assert_eq!(served, 3, "across both instances: {statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 400).count(), 37);
    assert_eq!(slow.hits(), 3);
}

#[tokio::test]
async fn a_user_budget_binds_every_key_of_the_user() {
    let slow = Upstream::start(
        "slow",
        Behaviour::Ok {
            completion_tokens: 10,
            delay_ms: 300,
        },
    )
    .await;
    let yaml = format!(
        "model_list:\n  - model_name: slow\n    litellm_params: {{model: openai/slow, api_base: \"{}\", api_key: sk-up}}\n    model_info: {{input_cost_per_token: 0.0, output_cost_per_token: 0.000001}}\n",
        slow.base()
    );
    let gw = TestGateway::start(&yaml).await;
    let user_id = format!("user-{}", uuid::Uuid::new_v4().simple());
    let keys_service = gw.state.keys().unwrap();
    keys_service
        .store()
        .set_user_budget(&user_id, Some(2e-5))
        .await
        .unwrap();
    let keys = [
        generate(&gw, json!({"user_id": user_id})).await,
        generate(&gw, json!({"user_id": user_id})).await,
    ];
    let body = json!({"model": "slow", "max_tokens": 10,
                      "messages": [{"role": "user", "content": "hi"}]});
    let statuses = futures::future::join_all((0..20).map(|i| {
        let (gw, key, body) = (&gw, &keys[i % 2], &body);
        async move { send(gw, key, "/v1/chat/completions", body).await.status() }
    }))
    .await;
    let served = statuses.iter().filter(|s| s.as_u16() == 200).count();
    assert_eq!(served, 2, "{statuses:?}");
    // Spent: either key is refused, naming the user's budget.
    for key in &keys {
        let e = expect_error(
            send(&gw, key, "/v1/chat/completions", &body).await,
            400,
            "budget_exceeded",
        )
        .await;
        assert!(e["message"].as_str().unwrap().contains(&user_id), "{e}");
    }
    assert_eq!(slow.hits(), 2);
}
