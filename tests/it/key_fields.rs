//! The `/key/generate` fields beyond the basics, stored in LiteLLM's form and enforced:
//! `aliases`, `allowed_routes` and `key_type`, model access groups, `soft_budget`, and the
//! fields LiteLLM keeps in `metadata`.

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::common::*;

const YAML: &str = r#"
model_list:
  - model_name: mock-a
    litellm_params: {model: openai/a, mock_response: "answer from a"}
    model_info: {input_cost_per_token: 0.01, output_cost_per_token: 0.02}
  - model_name: mock-b
    litellm_params: {model: openai/b, mock_response: "answer from b"}
    model_info: {access_groups: ["beta-models"]}
"#;

async fn generate(gw: &TestGateway, body: Value) -> String {
    let r = gw.post("/key/generate", body).await;
    assert_eq!(r.status(), 200);
    let json: Value = r.json().await.unwrap();
    json["key"].as_str().unwrap().to_string()
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

async fn get_as(gw: &TestGateway, key: &str, path: &str) -> reqwest::Response {
    gw.client
        .get(gw.url(path))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
}

async fn answer_text(r: reqwest::Response) -> String {
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    body["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn a_key_alias_sends_the_requested_name_to_the_aliased_model_group() {
    let gw = TestGateway::start(YAML).await;
    let key = generate(
        &gw,
        json!({"models": ["mock-a"], "aliases": {"fast": "mock-a", "sneaky": "mock-b"}}),
    )
    .await;
    assert_eq!(
        answer_text(chat(&gw, &key, "fast").await).await,
        "answer from a"
    );
    // The alias target is what the key's models are checked against.
    expect_error(
        chat(&gw, &key, "sneaky").await,
        401,
        "key_model_access_denied",
    )
    .await;
    // Without the alias the name is unknown to this key.
    expect_error(
        chat(&gw, &key, "slow").await,
        401,
        "key_model_access_denied",
    )
    .await;
}

#[tokio::test]
async fn allowed_routes_and_key_type_confine_a_key_to_its_routes() {
    let gw = TestGateway::start(YAML).await;
    let llm = generate(&gw, json!({"key_type": "llm_api"})).await;
    assert_eq!(
        answer_text(chat(&gw, &llm, "mock-a").await).await,
        "answer from a"
    );
    assert_eq!(get_as(&gw, &llm, "/v1/models").await.status(), 200);
    let refused = expect_error(
        get_as(&gw, &llm, "/key/info").await,
        403,
        "permission_error",
    )
    .await;
    let message = refused["message"].as_str().unwrap();
    assert!(
        message.contains("Virtual key is not allowed to call this route")
            && message.contains("llm_api_routes")
            && message.contains("/key/info"),
        "{message}"
    );

    let read_only = generate(&gw, json!({"key_type": "read_only"})).await;
    assert_eq!(get_as(&gw, &read_only, "/key/info").await.status(), 200);
    expect_error(
        chat(&gw, &read_only, "mock-a").await,
        403,
        "permission_error",
    )
    .await;

    let chat_only = generate(&gw, json!({"allowed_routes": ["/v1/chat/*"]})).await;
    assert_eq!(
        answer_text(chat(&gw, &chat_only, "mock-a").await).await,
        "answer from a"
    );
    expect_error(
        get_as(&gw, &chat_only, "/v1/models").await,
        403,
        "permission_error",
    )
    .await;

    // Stored as LiteLLM stores them: the type is expanded into its route group.
    let info: Value = gw
        .get(&format!("/key/info?key={llm}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(info["info"]["allowed_routes"], json!(["llm_api_routes"]));
    // The master key is never confined.
    assert_eq!(gw.get("/key/list").await.status(), 200);
}

#[tokio::test]
async fn a_model_access_group_opens_its_models_to_keys_that_list_the_group() {
    let gw = TestGateway::start(YAML).await;
    let key = generate(&gw, json!({"models": ["beta-models"]})).await;
    assert_eq!(
        answer_text(chat(&gw, &key, "mock-b").await).await,
        "answer from b"
    );
    expect_error(
        chat(&gw, &key, "mock-a").await,
        401,
        "key_model_access_denied",
    )
    .await;

    let ids = |body: Value| -> Vec<String> {
        body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_string())
            .collect()
    };
    let listed = get_as(&gw, &key, "/v1/models").await.json().await.unwrap();
    assert_eq!(ids(listed), vec!["mock-b"]);
    let groups = get_as(&gw, &key, "/v1/models?only_model_access_groups=True")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ids(groups), vec!["beta-models"]);
    let other = generate(&gw, json!({"models": ["mock-a"]})).await;
    let none = get_as(&gw, &other, "/models?only_model_access_groups=True")
        .await
        .json()
        .await
        .unwrap();
    assert!(ids(none).is_empty());
}

#[tokio::test]
async fn crossing_a_soft_budget_is_reported_once_and_never_refused() {
    let db = ScratchDb::litellm().await;
    let gw = TestGateway::start_with_env(
        YAML,
        HashMap::from([("DATABASE_URL".to_string(), db.url())]),
    )
    .await;
    let r = gw
        .post(
            "/key/generate",
            json!({"soft_budget": 0.05, "key_alias": "soft"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let generated: Value = r.json().await.unwrap();
    let key = generated["key"].as_str().unwrap().to_string();
    let token = generated["token_id"].as_str().unwrap().to_string();
    assert_eq!(generated["soft_budget"], json!(0.05));
    // Each request costs more than the soft budget: the first crosses it.
    for _ in 0..3 {
        assert_eq!(chat(&gw, &key, "mock-a").await.status(), 200);
    }
    let metrics = gw.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("hx_soft_budget_crossings_total") && l.ends_with(" 1")),
        "{metrics}"
    );
    // LiteLLM's form: the soft budget in a budget row linked by budget_id, the crossing
    // marked on the key so no instance reports it again.
    let pool = sqlx::PgPool::connect(&db.url()).await.unwrap();
    let mut cooled = false;
    for _ in 0..50 {
        let (soft, cooldown): (Option<f64>, bool) = sqlx::query_as(
            r#"SELECT b.soft_budget, t.soft_budget_cooldown FROM "LiteLLM_VerificationToken" t
               JOIN "LiteLLM_BudgetTable" b ON b.budget_id = t.budget_id WHERE t.token = $1"#,
        )
        .bind(&token)
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(soft, Some(0.05));
        if cooldown {
            cooled = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(cooled, "soft_budget_cooldown was never set");
}

/// Every documented field lands in the column LiteLLM writes it to.
async fn generate_fields_contract(gw: &TestGateway) -> (String, Value) {
    let r = gw
        .post(
            "/key/generate",
            json!({
                "aliases": {"fast": "mock-a"},
                "allowed_routes": ["/v1/chat/completions"],
                "model_max_budget": {"mock-a": {"budget_limit": 0.5, "time_period": "1d"}},
                "tags": ["prod", "team-x"],
                "guardrails": ["pii"],
                "model_rpm_limit": {"mock-a": 5},
                "model_tpm_limit": {"mock-a": 500},
                "enforced_params": ["user"],
                "config": {"a": 1},
                "permissions": {"get_spend_routes": true},
                "allowed_cache_controls": ["no-cache"],
                "metadata": {"owner": "ops"},
                "send_invite_email": false,
            }),
        )
        .await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let token = body["token_id"].as_str().unwrap().to_string();
    let info: Value = gw
        .get(&format!("/key/info?key={token}"))
        .await
        .json()
        .await
        .unwrap();
    let info = info["info"].clone();
    assert_eq!(info["aliases"], json!({"fast": "mock-a"}));
    assert_eq!(info["allowed_routes"], json!(["/v1/chat/completions"]));
    assert_eq!(
        info["model_max_budget"]["mock-a"]["budget_limit"],
        json!(0.5)
    );
    assert_eq!(info["metadata"]["tags"], json!(["prod", "team-x"]));
    assert_eq!(info["metadata"]["guardrails"], json!(["pii"]));
    assert_eq!(info["metadata"]["model_rpm_limit"], json!({"mock-a": 5}));
    assert_eq!(info["metadata"]["owner"], json!("ops"));
    assert_eq!(info["permissions"], json!({"get_spend_routes": true}));
    // An update replaces one field and leaves the rest; `null` removes a metadata field.
    let r = gw
        .post(
            "/key/update",
            json!({"key": token, "tags": null, "aliases": {"quick": "mock-a"}}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let info: Value = gw
        .get(&format!("/key/info?key={token}"))
        .await
        .json()
        .await
        .unwrap();
    let info = info["info"].clone();
    assert_eq!(info["aliases"], json!({"quick": "mock-a"}));
    assert!(info["metadata"].get("tags").is_none(), "{info}");
    assert_eq!(info["metadata"]["guardrails"], json!(["pii"]));
    assert_eq!(info["allowed_routes"], json!(["/v1/chat/completions"]));
    (token, info)
}

#[tokio::test]
async fn every_generate_field_is_stored_in_sqlite() {
    let gw = TestGateway::start(YAML).await;
    generate_fields_contract(&gw).await;
}

#[tokio::test]
async fn every_generate_field_is_stored_in_litellm_form_in_postgres() {
    let db = ScratchDb::litellm().await;
    let gw = TestGateway::start_with_env(
        YAML,
        HashMap::from([("DATABASE_URL".to_string(), db.url())]),
    )
    .await;
    let (token, _) = generate_fields_contract(&gw).await;
    let pool = sqlx::PgPool::connect(&db.url()).await.unwrap();
    let (aliases, routes, budgets, metadata, controls): (
        Value,
        Vec<String>,
        Value,
        Value,
        Vec<String>,
    ) = sqlx::query_as(
        r#"SELECT aliases, allowed_routes, model_max_budget, metadata, allowed_cache_controls
           FROM "LiteLLM_VerificationToken" WHERE token = $1"#,
    )
    .bind(&token)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(aliases, json!({"quick": "mock-a"}));
    assert_eq!(routes, vec!["/v1/chat/completions"]);
    assert_eq!(budgets["mock-a"]["time_period"], json!("1d"));
    assert_eq!(metadata["enforced_params"], json!(["user"]));
    assert_eq!(controls, vec!["no-cache"]);
}

#[tokio::test]
async fn a_bad_key_field_is_a_400_naming_it() {
    let gw = TestGateway::start(YAML).await;
    for (body, param) in [
        (json!({"key_type": "superuser"}), "key_type"),
        (json!({"aliases": {"fast": 3}}), "aliases"),
        (json!({"aliases": "fast"}), "aliases"),
        (
            json!({"model_max_budget": {"mock-a": {"budget_limit": -1}}}),
            "model_max_budget",
        ),
        (
            json!({"model_max_budget": {"mock-a": {"budget_limit": 1, "time_period": "soon"}}}),
            "model_max_budget",
        ),
        (json!({"soft_budget": -2}), "soft_budget"),
        (json!({"allowed_routes": [""]}), "allowed_routes"),
        (json!({"tags": "prod"}), "tags"),
    ] {
        let error = expect_error(
            gw.post("/key/generate", body.clone()).await,
            400,
            "invalid_request_error",
        )
        .await;
        assert_eq!(error["param"], param, "{body}: {error}");
    }
}

#[tokio::test]
async fn a_bad_query_parameter_is_a_400_naming_it_and_python_booleans_are_read() {
    let gw = TestGateway::start(YAML).await;
    let error = expect_error(
        gw.get("/key/list?page=abc").await,
        400,
        "invalid_request_error",
    )
    .await;
    assert_eq!(error["param"], "page", "{error}");
    let error = expect_error(
        gw.get("/key/list?return_full_object=maybe").await,
        400,
        "invalid_request_error",
    )
    .await;
    assert_eq!(error["param"], "return_full_object", "{error}");
    generate(&gw, json!({"key_alias": "listed"})).await;
    let r = gw.get("/key/list?return_full_object=True").await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["keys"][0]["key_alias"], "listed", "{body}");
}
