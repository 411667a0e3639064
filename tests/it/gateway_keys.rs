//! Virtual keys through the HTTP server: the key routes, enforcement on LLM requests, spend
//! headers and spend logs, rate limits per key.

use futures::StreamExt;
use serde_json::{Value, json};

use crate::common::*;

const YAML: &str = r#"
model_list:
  - model_name: mock
    litellm_params: {model: openai/mock, mock_response: "four words of answer"}
    model_info: {input_cost_per_token: 0.01, output_cost_per_token: 0.02}
  - model_name: other
    litellm_params: {model: openai/other, mock_response: "x"}
"#;

async fn generate(gw: &TestGateway, body: Value) -> String {
    let r = gw.post("/key/generate", body).await;
    assert_eq!(r.status(), 200);
    let json: Value = r.json().await.unwrap();
    let key = json["key"].as_str().unwrap().to_string();
    assert!(key.starts_with("sk-") && key.len() >= 25, "{key}");
    key
}

async fn chat(gw: &TestGateway, key: &str, model: &str) -> reqwest::Response {
    gw.client
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(key)
        .json(&json!({"model": model, "messages": [{"role": "user", "content": "hello there"}]}))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_generated_key_works_within_its_models_and_budget() {
    let gw = TestGateway::start(YAML).await;
    let key = generate(
        &gw,
        json!({"models": ["mock"], "max_budget": 1.0, "key_alias": "team-a"}),
    )
    .await;
    let r = chat(&gw, &key, "mock").await;
    assert_eq!(r.status(), 200);
    let cost: f64 = r.headers()["x-litellm-response-cost"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(cost > 0.0);
    let spend: f64 = r.headers()["x-litellm-key-spend"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((spend - cost).abs() < 1e-12, "{spend} vs {cost}");
    // Access is checked before existence: an unknown model is refused like a forbidden one.
    expect_error(
        chat(&gw, &key, "other").await,
        401,
        "key_model_access_denied",
    )
    .await;
    expect_error(
        chat(&gw, &key, "does-not-exist").await,
        401,
        "key_model_access_denied",
    )
    .await;
    // /v1/models lists only what the key may use.
    let r = gw
        .client
        .get(gw.url("/v1/models"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    let ids: Vec<String> = r.json::<Value>().await.unwrap()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, vec!["mock"]);
    // A budget that holds one request's estimated maximum cost serves it, then 400
    // budget_exceeded; one too small for a single request refuses it before the call.
    let one = generate(&gw, json!({"max_budget": cost * 1.5})).await;
    assert_eq!(chat(&gw, &one, "mock").await.status(), 200);
    expect_error(chat(&gw, &one, "mock").await, 400, "budget_exceeded").await;
    let tight = generate(&gw, json!({"max_budget": 0.0000001})).await;
    expect_error(chat(&gw, &tight, "mock").await, 400, "budget_exceeded").await;
}

#[tokio::test]
async fn unknown_blocked_and_expired_keys_are_refused() {
    let gw = TestGateway::start(YAML).await;
    expect_error(
        chat(&gw, "sk-never-issued-0000000000", "mock").await,
        401,
        "auth_error",
    )
    .await;
    let key = generate(&gw, json!({})).await;
    assert_eq!(chat(&gw, &key, "mock").await.status(), 200);
    assert_eq!(
        gw.post("/key/block", json!({"key": key})).await.status(),
        200
    );
    expect_error(chat(&gw, &key, "mock").await, 401, "auth_error").await;
    assert_eq!(
        gw.post("/key/unblock", json!({"key": key})).await.status(),
        200
    );
    assert_eq!(chat(&gw, &key, "mock").await.status(), 200);
    let short = generate(&gw, json!({"duration": "1s"})).await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    expect_error(chat(&gw, &short, "mock").await, 401, "expired_key").await;
    assert_eq!(
        gw.post("/key/delete", json!({"keys": [key]}))
            .await
            .status(),
        200
    );
    expect_error(chat(&gw, &key, "mock").await, 401, "auth_error").await;
}

#[tokio::test]
async fn a_key_without_a_user_manages_no_key_and_reads_only_its_own_info() {
    let gw = TestGateway::start(YAML).await;
    let key = generate(
        &gw,
        json!({"key_alias": "mine", "metadata": {"rag_namespaces": ["docs"]}}),
    )
    .await;
    let other = generate(&gw, json!({})).await;
    let r = gw
        .client
        .post(gw.url("/key/generate"))
        .bearer_auth(&key)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    expect_error(r, 401, "auth_error").await;
    let r = gw
        .client
        .get(gw.url("/key/list"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "permission_error").await;
    let r = gw
        .client
        .get(gw.url(&format!("/key/info?key={key}")))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let info: Value = r.json().await.unwrap();
    assert_eq!(info["info"]["key_alias"], "mine");
    assert!(
        !info.to_string().contains(&key),
        "the raw key is never returned again"
    );
    let r = gw
        .client
        .get(gw.url(&format!("/key/info?key={other}")))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    let e = expect_error(r, 403, "permission_error").await;
    assert_eq!(
        e["message"],
        "You are not allowed to access this key's info. Your role=unknown"
    );
    let r = gw.get("/key/list").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["total_count"], 2);
    let e = expect_error(
        gw.post("/key/generate", json!({"max_budget": "lots"}))
            .await,
        400,
        "invalid_request_error",
    )
    .await;
    assert_eq!(e["param"], "max_budget");
}

/// A field of the wrong type (or a missing one) is a 400 naming it, in LiteLLM's wording.
#[tokio::test]
async fn a_wrong_typed_key_field_is_a_400_naming_it() {
    let gw = TestGateway::start(YAML).await;
    for (route, body, message, param) in [
        (
            "/key/generate",
            json!({"models": "gpt-4o"}),
            "invalid value for 'models': invalid type: string \"gpt-4o\", expected a sequence",
            "models",
        ),
        (
            "/key/generate",
            json!({"rpm_limit": 1.5}),
            "invalid value for 'rpm_limit': invalid type: floating point `1.5`, expected i64",
            "rpm_limit",
        ),
        (
            "/key/update",
            json!({"models": []}),
            "'key' is required",
            "key",
        ),
        (
            "/key/generate",
            json!({"key": 5}),
            "invalid value for 'key': invalid type: integer `5`, expected a string",
            "key",
        ),
        // A required field's wrong value: the body does not read without it either.
        (
            "/key/block",
            json!({"key": 5}),
            "invalid type: integer `5`, expected a string",
            "body",
        ),
        // Two wrong fields: neither alone is at fault, so the body is named.
        (
            "/key/generate",
            json!({"models": "a", "spend": "x"}),
            "invalid type: string \"a\", expected a sequence",
            "body",
        ),
    ] {
        let e = expect_error(
            gw.post(route, body.clone()).await,
            400,
            "invalid_request_error",
        )
        .await;
        assert_eq!(e["message"], message, "{route} {body}");
        assert_eq!(e["param"], param, "{route} {body}");
    }
}

#[tokio::test]
async fn a_key_rpm_limit_answers_429_with_rate_limit_headers() {
    let gw = TestGateway::start(YAML).await;
    let key = generate(&gw, json!({"rpm_limit": 2})).await;
    let r = chat(&gw, &key, "mock").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-ratelimit-limit-requests"], "2");
    assert_eq!(r.headers()["x-ratelimit-remaining-requests"], "1");
    assert_eq!(chat(&gw, &key, "mock").await.status(), 200);
    let r = chat(&gw, &key, "mock").await;
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(r.headers()["x-ratelimit-remaining-requests"], "0");
    let e = expect_error(r, 429, "rate_limit_error").await;
    assert!(e["message"].as_str().unwrap().contains("rpm_limit"), "{e}");
}

#[tokio::test]
async fn spend_after_a_burst_of_1000_requests_equals_the_sum_of_their_costs() {
    let gw = TestGateway::start(YAML).await;
    let key = generate(&gw, json!({})).await;
    let costs = futures::stream::iter(0..1000)
        .map(|_| {
            let gw = &gw;
            let key = &key;
            async move {
                let r = chat(gw, key, "mock").await;
                assert_eq!(r.status(), 200);
                r.headers()["x-litellm-response-cost"]
                    .to_str()
                    .unwrap()
                    .parse::<f64>()
                    .unwrap()
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<f64>>()
        .await;
    let expected: f64 = costs.iter().sum();
    let keys = gw.state.keys().unwrap();
    keys.flush_spend().await.unwrap();
    let (rows, total) = keys
        .store()
        .spend_log_totals(&hx_gateway::secret::hash_key(&key))
        .await
        .unwrap();
    assert_eq!(rows, 1000, "one spend-log row per request");
    assert!(
        (total - expected).abs() <= 1e-9 * expected,
        "{total} vs {expected}"
    );
    let r = gw.get(&format!("/key/info?key={key}")).await;
    let spend = r.json::<Value>().await.unwrap()["info"]["spend"]
        .as_f64()
        .unwrap();
    assert!(
        (spend - expected).abs() <= 1e-9 * expected,
        "{spend} vs {expected}"
    );
}

async fn regenerate_contract(gw: &TestGateway) {
    let key = generate(
        gw,
        json!({"models": ["mock"], "max_budget": 5.0, "key_alias": "rotating"}),
    )
    .await;
    assert_eq!(chat(gw, &key, "mock").await.status(), 200);
    // In the path, with a field changed at the same time.
    let r = gw
        .post(
            &format!("/key/{key}/regenerate"),
            json!({"max_budget": 10.0}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let new = body["key"].as_str().unwrap().to_string();
    assert!(new.starts_with("sk-") && new != key, "{body}");
    assert_eq!(body["token_id"], hx_gateway::secret::hash_key(&new));
    assert_eq!(body["key_name"], format!("sk-...{}", &new[new.len() - 4..]));
    assert_eq!(body["max_budget"], 10.0);
    assert_eq!(body["models"], json!(["mock"]));
    assert_eq!(body["key_alias"], "rotating");
    // The old secret is refused at once, the new one works, with the key's rules.
    assert_eq!(chat(gw, &key, "mock").await.status(), 401);
    assert_eq!(chat(gw, &new, "mock").await.status(), 200);
    assert_eq!(chat(gw, &new, "other").await.status(), 401);
    // In the body, to a chosen secret, with an empty path form too.
    let r = gw
        .post(
            "/key/regenerate",
            json!({"key": new, "new_key": "sk-chosen-rotation-0001"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap()["key"],
        "sk-chosen-rotation-0001"
    );
    assert_eq!(chat(gw, &new, "mock").await.status(), 401);
    let r = gw
        .client
        .post(gw.url("/key/sk-chosen-rotation-0001/regenerate"))
        .bearer_auth(MASTER)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let last = r.json::<Value>().await.unwrap()["key"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        chat(gw, "sk-chosen-rotation-0001", "mock").await.status(),
        401
    );
    assert_eq!(chat(gw, &last, "mock").await.status(), 200);
    // Refusals: unknown key, a bad or taken new_key, a bad field (nothing changed), no key,
    // not the master key.
    let r = gw.post("/key/sk-nope/regenerate", json!({})).await;
    assert_eq!(r.status(), 404);
    for (body, param) in [
        (json!({"key": last, "new_key": "no-prefix"}), "new_key"),
        (json!({"key": last, "new_key": last}), "new_key"),
        (json!({"key": last, "max_budget": -1}), "max_budget"),
        (json!({}), "key"),
    ] {
        let r = gw.post("/key/regenerate", body.clone()).await;
        assert_eq!(r.status(), 400, "{body}");
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"]["param"], param, "{e}");
    }
    assert_eq!(
        chat(gw, &last, "mock").await.status(),
        200,
        "a refused regenerate changed the key"
    );
    let other = generate(gw, json!({})).await;
    let r = gw
        .client
        .post(gw.url("/key/regenerate"))
        .bearer_auth(&other)
        .json(&json!({"key": last}))
        .send()
        .await
        .unwrap();
    assert!(matches!(r.status().as_u16(), 401 | 403), "{}", r.status());
    assert_eq!(chat(gw, &last, "mock").await.status(), 200);
}

#[tokio::test]
async fn regenerating_a_key_refuses_the_old_secret_at_once_in_sqlite() {
    let gw = TestGateway::start(YAML).await;
    regenerate_contract(&gw).await;
}

/// On a database built by LiteLLM's own migrations, as a LiteLLM deployment's is.
#[tokio::test]
async fn regenerating_a_key_refuses_the_old_secret_at_once_in_postgres() {
    let db = ScratchDb::litellm().await;
    let gw = TestGateway::start_with_env(
        YAML,
        std::collections::HashMap::from([("DATABASE_URL".to_string(), db.url())]),
    )
    .await;
    regenerate_contract(&gw).await;
    // The row as LiteLLM reads it: the new hash and key_name, the old hash gone.
    let pool = sqlx::PgPool::connect(&db.url()).await.unwrap();
    let rows: Vec<(String, Option<String>)> = sqlx::query_as(
        r#"SELECT token, key_name FROM "LiteLLM_VerificationToken" WHERE key_alias = 'rotating'"#,
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), 1);
    assert!(rows[0].1.as_deref().unwrap().starts_with("sk-..."));
}
