//! `/customer/*` (and `/end_user/*`) and `/budget/*` on both databases: the end user a
//! request names (its `user`) is written where LiteLLM writes it, blocked or over its budget
//! is refused, is held to its budget's limits, and lends its default model.

use serde_json::{Value, json};

use crate::common::*;
use crate::teams::{Db, json_of, on_both, post_as, settle, setup};

on_both!(
    a_new_customer_is_written_with_its_budget_row_and_read_back,
    a_blocked_end_user_is_refused_until_unblocked,
    an_end_user_over_its_budget_is_refused_and_its_spend_is_on_its_row,
    an_end_user_s_rpm_limit_applies_across_keys,
    an_end_user_s_default_model_serves_requests_that_name_none,
    budgets_are_created_read_updated_listed_and_deleted,
    customer_routes_refuse_bad_input_unknown_ids_and_non_admins,
);

async fn chat_as(
    gw: &TestGateway,
    key: &str,
    user: &str,
    model: Option<&str>,
) -> reqwest::Response {
    let mut body = json!({"user": user, "max_tokens": 10,
                          "messages": [{"role": "user", "content": "hello there"}]});
    if let Some(model) = model {
        body["model"] = json!(model);
    }
    post_as(gw, key, "/v1/chat/completions", body).await
}

async fn any_key(gw: &TestGateway) -> String {
    json_of(gw.post("/key/generate", json!({})).await).await["key"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn a_new_customer_is_written_with_its_budget_row_and_read_back(db: Db) {
    let s = setup(db).await;
    let gw = &s.gw;
    let created = json_of(
        gw.post(
            "/customer/new",
            json!({"user_id": "acme", "alias": "Acme Corp", "max_budget": 5.0,
                   "tpm_limit": 1000, "rpm_limit": 60, "budget_duration": "30d",
                   "default_model": "mock-a", "allowed_model_region": "eu"}),
        )
        .await,
    )
    .await;
    assert_eq!(created["user_id"], "acme");
    assert_eq!(created["alias"], "Acme Corp");
    assert_eq!(created["blocked"], false);
    assert_eq!(created["spend"], json!(0.0));
    assert_eq!(created["default_model"], "mock-a");
    let budget = &created["litellm_budget_table"];
    assert_eq!(budget["max_budget"], json!(5.0));
    assert_eq!(budget["tpm_limit"], 1000);
    assert_eq!(budget["rpm_limit"], 60);
    assert!(budget["budget_reset_at"].is_string(), "{created}");
    assert_eq!(created["budget_id"], budget["budget_id"]);
    // Both names of the route read it.
    for path in [
        "/customer/info?end_user_id=acme",
        "/end_user/info?end_user_id=acme",
    ] {
        let info = json_of(gw.get(path).await).await;
        assert_eq!(info, created, "{path}");
    }
    let list = json_of(gw.get("/customer/list").await).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    if let Some(pg) = &s.pg {
        let (alias, max, rpm): (Option<String>, Option<f64>, Option<i64>) = sqlx::query_as(
            r#"SELECT e.alias, b.max_budget, b.rpm_limit FROM "LiteLLM_EndUserTable" e
               JOIN "LiteLLM_BudgetTable" b ON b.budget_id = e.budget_id
               WHERE e.user_id = 'acme'"#,
        )
        .fetch_one(pg)
        .await
        .unwrap();
        assert_eq!(alias.as_deref(), Some("Acme Corp"));
        assert_eq!(max, Some(5.0));
        assert_eq!(rpm, Some(60));
    }
    let e = expect_error(
        gw.post("/customer/new", json!({"user_id": "acme"})).await,
        400,
        "invalid_request_error",
    )
    .await;
    assert_eq!(
        e["message"],
        "Customer already exists, passed user_id=acme. Please pass a new user_id."
    );
}

async fn a_blocked_end_user_is_refused_until_unblocked(db: Db) {
    let s = setup(db).await;
    let gw = &s.gw;
    let key = any_key(gw).await;
    assert_eq!(chat_as(gw, &key, "eve", Some("mock-a")).await.status(), 200);
    // Blocking creates the row of an end user never seen before, as LiteLLM does.
    let blocked = json_of(
        gw.post("/end_user/block", json!({"user_ids": ["eve", "newcomer"]}))
            .await,
    )
    .await;
    assert_eq!(blocked["blocked_users"].as_array().unwrap().len(), 2);
    for user in ["eve", "newcomer"] {
        let e = expect_error(
            chat_as(gw, &key, user, Some("mock-a")).await,
            400,
            "invalid_request_error",
        )
        .await;
        assert_eq!(
            e["message"],
            format!("User blocked from making LLM API Calls. User={user}")
        );
    }
    // The master key is refused for a blocked end user too; other end users are served.
    expect_error(
        chat_as(gw, MASTER, "eve", Some("mock-a")).await,
        400,
        "invalid_request_error",
    )
    .await;
    assert_eq!(
        chat_as(gw, &key, "frank", Some("mock-a")).await.status(),
        200
    );
    json_of(
        gw.post("/customer/unblock", json!({"user_ids": ["eve"]}))
            .await,
    )
    .await;
    assert_eq!(chat_as(gw, &key, "eve", Some("mock-a")).await.status(), 200);
    let info = json_of(gw.get("/customer/info?end_user_id=eve").await).await;
    assert_eq!(info["blocked"], false);
}

async fn an_end_user_over_its_budget_is_refused_and_its_spend_is_on_its_row(db: Db) {
    let s = setup(db).await;
    let gw = &s.gw;
    json_of(
        gw.post(
            "/customer/new",
            json!({"user_id": "thrifty", "max_budget": 0.1}),
        )
        .await,
    )
    .await;
    let key = any_key(gw).await;
    let mut served = 0;
    let refusal = loop {
        let r = chat_as(gw, &key, "thrifty", Some("mock-a")).await;
        if r.status() != 200 {
            break expect_error(r, 400, "budget_exceeded").await;
        }
        served += 1;
        assert!(served < 20, "the end user's budget never refused");
        settle(gw).await;
    };
    assert!(served >= 1);
    assert!(
        refusal["message"]
            .as_str()
            .unwrap()
            .starts_with("ExceededBudget: End User=thrifty over budget. Spend="),
        "{refusal}"
    );
    // Another end user of the same key is served.
    assert_eq!(
        chat_as(gw, &key, "other", Some("mock-a")).await.status(),
        200
    );
    settle(gw).await;
    let info = json_of(gw.get("/customer/info?end_user_id=thrifty").await).await;
    assert!(info["spend"].as_f64().unwrap() > 0.1, "{info}");
    // An end user seen for the first time gets a row with its spend, as in LiteLLM.
    let other = json_of(gw.get("/customer/info?end_user_id=other").await).await;
    assert!(other["spend"].as_f64().unwrap() > 0.0, "{other}");
    // A bigger budget serves it again, at once.
    json_of(
        gw.post(
            "/customer/update",
            json!({"user_id": "thrifty", "max_budget": 100.0}),
        )
        .await,
    )
    .await;
    assert_eq!(
        chat_as(gw, &key, "thrifty", Some("mock-a")).await.status(),
        200
    );
}

async fn an_end_user_s_rpm_limit_applies_across_keys(db: Db) {
    let s = setup(db).await;
    let gw = &s.gw;
    json_of(
        gw.post(
            "/customer/new",
            json!({"user_id": "chatty", "rpm_limit": 2}),
        )
        .await,
    )
    .await;
    let keys = [any_key(gw).await, any_key(gw).await];
    assert_eq!(
        chat_as(gw, &keys[0], "chatty", Some("mock-a"))
            .await
            .status(),
        200
    );
    assert_eq!(
        chat_as(gw, &keys[1], "chatty", Some("mock-a"))
            .await
            .status(),
        200
    );
    let e = expect_error(
        chat_as(gw, &keys[0], "chatty", Some("mock-a")).await,
        429,
        "rate_limit_error",
    )
    .await;
    assert!(e["message"].as_str().unwrap().contains("chatty"), "{e}");
    assert_eq!(
        chat_as(gw, &keys[0], "quiet", Some("mock-a"))
            .await
            .status(),
        200
    );
}

async fn an_end_user_s_default_model_serves_requests_that_name_none(db: Db) {
    let s = setup(db).await;
    let gw = &s.gw;
    json_of(
        gw.post(
            "/customer/new",
            json!({"user_id": "lazy", "default_model": "mock-b"}),
        )
        .await,
    )
    .await;
    let key = any_key(gw).await;
    let answer = json_of(chat_as(gw, &key, "lazy", None).await).await;
    assert_eq!(answer["choices"][0]["message"]["content"], "answer from b");
    // A named model wins.
    let answer = json_of(chat_as(gw, &key, "lazy", Some("mock-a")).await).await;
    assert_eq!(answer["choices"][0]["message"]["content"], "answer from a");
    // Without a default model, the model is required as always.
    let e = expect_error(
        chat_as(gw, &key, "nobody-special", None).await,
        400,
        "invalid_request_error",
    )
    .await;
    assert_eq!(e["param"], "model");
    // A default model the proxy does not serve is refused when set.
    let e = expect_error(
        gw.post(
            "/customer/new",
            json!({"user_id": "x", "default_model": "gpt-nope"}),
        )
        .await,
        400,
        "invalid_request_error",
    )
    .await;
    assert_eq!(e["param"], "default_model");
}

async fn budgets_are_created_read_updated_listed_and_deleted(db: Db) {
    let s = setup(db).await;
    let gw = &s.gw;
    let created = json_of(
        gw.post(
            "/budget/new",
            json!({"budget_id": "small", "max_budget": 0.1, "rpm_limit": 100}),
        )
        .await,
    )
    .await;
    assert_eq!(created["budget_id"], "small");
    assert_eq!(created["max_budget"], json!(0.1));
    assert_eq!(created["created_by"], "default_user_id");
    let e = expect_error(
        gw.post("/budget/new", json!({"budget_id": "small"})).await,
        400,
        "invalid_request_error",
    )
    .await;
    assert_eq!(e["message"], "Budget with id 'small' already exists.");
    // A customer on a shared budget is bound by it.
    json_of(
        gw.post(
            "/customer/new",
            json!({"user_id": "shared", "budget_id": "small"}),
        )
        .await,
    )
    .await;
    let key = any_key(gw).await;
    let mut served = 0;
    while chat_as(gw, &key, "shared", Some("mock-a")).await.status() == 200 {
        served += 1;
        assert!(served < 20, "the shared budget never refused");
        settle(gw).await;
    }
    let updated = json_of(
        gw.post(
            "/budget/update",
            json!({"budget_id": "small", "max_budget": 100.0}),
        )
        .await,
    )
    .await;
    assert_eq!(updated["max_budget"], json!(100.0));
    assert_eq!(updated["rpm_limit"], 100);
    assert_eq!(
        chat_as(gw, &key, "shared", Some("mock-a")).await.status(),
        200
    );
    let info = json_of(
        gw.post("/budget/info", json!({"budgets": ["small", "unknown"]}))
            .await,
    )
    .await;
    assert_eq!(info.as_array().unwrap().len(), 1);
    let list = json_of(gw.get("/budget/list").await).await;
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .any(|b| b["budget_id"] == "small")
    );
    let deleted = json_of(gw.post("/budget/delete", json!({"id": "small"})).await).await;
    assert_eq!(deleted["budget_id"], "small");
    expect_error(
        gw.post("/budget/delete", json!({"id": "small"})).await,
        404,
        "not_found_error",
    )
    .await;
    expect_error(
        gw.post(
            "/budget/update",
            json!({"budget_id": "small", "max_budget": 1}),
        )
        .await,
        404,
        "not_found_error",
    )
    .await;
}

async fn customer_routes_refuse_bad_input_unknown_ids_and_non_admins(db: Db) {
    let s = setup(db).await;
    let gw = &s.gw;
    json_of(gw.post("/customer/new", json!({"user_id": "real"})).await).await;
    for (path, body, param) in [
        ("/customer/new", json!({}), "user_id"),
        (
            "/customer/new",
            json!({"user_id": "a", "max_budget": -1}),
            "max_budget",
        ),
        (
            "/customer/new",
            json!({"user_id": "a", "max_budget": 1, "budget_id": "b"}),
            "budget_id",
        ),
        (
            "/customer/new",
            json!({"user_id": "a", "rpm_limit": "many"}),
            "rpm_limit",
        ),
        (
            "/customer/new",
            json!({"user_id": "a", "budget_duration": "forever"}),
            "budget_duration",
        ),
        ("/customer/delete", json!({"user_ids": "real"}), "user_ids"),
        ("/customer/block", json!({"user_ids": []}), "user_ids"),
        ("/budget/new", json!({"max_budget": "lots"}), "max_budget"),
        ("/budget/update", json!({"max_budget": 1}), "budget_id"),
        ("/budget/info", json!({"budgets": []}), "budgets"),
    ] {
        let e = expect_error(
            gw.post(path, body.clone()).await,
            400,
            "invalid_request_error",
        )
        .await;
        assert_eq!(e["param"], param, "{path} {body}: {e}");
    }
    let e = expect_error(
        gw.post("/customer/delete", json!({"user_ids": ["real", "ghost"]}))
            .await,
        404,
        "not_found_error",
    )
    .await;
    assert_eq!(e["message"], "End User Id(s)=ghost do not exist in db");
    json_of(gw.get("/customer/info?end_user_id=real").await).await;
    let e = expect_error(
        gw.get("/customer/info?end_user_id=ghost").await,
        404,
        "not_found_error",
    )
    .await;
    assert_eq!(e["message"], "End User Id=ghost does not exist in db");
    expect_error(
        gw.post(
            "/customer/update",
            json!({"user_id": "ghost", "alias": "x"}),
        )
        .await,
        404,
        "not_found_error",
    )
    .await;
    let deleted = json_of(
        gw.post("/customer/delete", json!({"user_ids": ["real"]}))
            .await,
    )
    .await;
    assert_eq!(deleted["deleted_customers"], 1);
    // Only admins manage customers and budgets; viewers read them.
    let user = json_of(
        gw.post(
            "/user/new",
            json!({"user_id": "worker", "user_role": "internal_user"}),
        )
        .await,
    )
    .await["key"]
        .as_str()
        .unwrap()
        .to_string();
    let viewer = json_of(
        gw.post(
            "/user/new",
            json!({"user_id": "auditor", "user_role": "proxy_admin_viewer"}),
        )
        .await,
    )
    .await["key"]
        .as_str()
        .unwrap()
        .to_string();
    for (path, body) in [
        ("/customer/new", json!({"user_id": "sneaky"})),
        ("/customer/block", json!({"user_ids": ["real"]})),
        ("/budget/new", json!({"budget_id": "mine"})),
    ] {
        expect_error(
            post_as(gw, &user, path, body.clone()).await,
            401,
            "auth_error",
        )
        .await;
        expect_error(
            post_as(gw, &viewer, path, body).await,
            403,
            "permission_error",
        )
        .await;
    }
    let r = gw
        .client
        .get(gw.url("/customer/list"))
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(r).await, Value::Array(Vec::new()));
}
