//! `/team/*` and `/user/*` on both databases (the embedded SQLite default, and Postgres built
//! by LiteLLM's own migrations, read back with SQL): what each route writes, what it answers,
//! who may call it, and how a team's and a user's limits bind their keys.

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
"#;

/// The database a case runs on.
#[derive(Clone, Copy, Debug)]
pub enum Db {
    Sqlite,
    Postgres,
}

pub struct Setup {
    pub gw: TestGateway,
    /// Set on Postgres, to read rows back.
    pub pg: Option<sqlx::PgPool>,
    _db: Option<ScratchDb>,
}

pub async fn setup(db: Db) -> Setup {
    match db {
        Db::Sqlite => Setup {
            gw: TestGateway::start(YAML).await,
            pg: None,
            _db: None,
        },
        Db::Postgres => {
            let scratch = ScratchDb::litellm().await;
            let gw = TestGateway::start_with_env(
                YAML,
                HashMap::from([("DATABASE_URL".to_string(), scratch.url())]),
            )
            .await;
            let pg = sqlx::PgPool::connect(&scratch.url()).await.unwrap();
            Setup {
                gw,
                pg: Some(pg),
                _db: Some(scratch),
            }
        }
    }
}

/// Runs a case on both databases, as two tests.
macro_rules! on_both {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(#[tokio::test]
            async fn $name() {
                super::$name(crate::teams::Db::Sqlite).await;
            })+
        }
        mod postgres {
            $(#[tokio::test]
            async fn $name() {
                super::$name(crate::teams::Db::Postgres).await;
            })+
        }
    };
}
pub(crate) use on_both;

on_both!(
    a_new_team_is_written_as_litellm_writes_it_and_read_back_by_team_info,
    a_duplicate_team_id_is_refused_and_unknown_teams_are_404,
    blocking_a_team_refuses_every_key_of_the_team_until_unblocked,
    a_team_s_models_bind_its_keys_and_change_with_team_model_add_and_delete,
    a_team_s_model_aliases_send_its_keys_requests_to_the_aliased_model,
    a_team_budget_refuses_its_keys_once_spent,
    a_member_s_budget_in_the_team_refuses_that_member_s_team_keys_only,
    members_are_added_by_email_updated_and_removed_with_their_team_keys,
    a_team_admin_manages_its_own_team_s_members_and_no_other_team,
    team_list_shows_an_internal_user_only_its_own_teams,
    deleting_a_team_deletes_its_keys,
    bad_team_bodies_are_400s_naming_the_field,
    a_new_user_gets_a_key_unless_told_otherwise_and_duplicates_are_409,
    a_user_s_models_and_budget_bind_its_personal_keys,
    a_user_updates_only_itself_and_reads_only_its_own_info,
    user_list_pages_filters_and_is_for_admins_only,
    deleting_a_user_deletes_its_keys_and_team_memberships,
    an_internal_user_manages_its_own_keys_and_a_team_admin_its_team_s,
    a_key_s_and_a_request_s_tags_are_the_spend_log_s_request_tags,
    a_key_s_model_max_budget_refuses_that_model_only_and_survives_a_reload,
);

pub async fn json_of(r: reqwest::Response) -> Value {
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    body
}

pub async fn post_as(gw: &TestGateway, key: &str, path: &str, body: Value) -> reqwest::Response {
    gw.client
        .post(gw.url(path))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

pub async fn get_as(gw: &TestGateway, key: &str, path: &str) -> reqwest::Response {
    gw.client
        .get(gw.url(path))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
}

pub async fn chat(gw: &TestGateway, key: &str, model: &str) -> reqwest::Response {
    post_as(
        gw,
        key,
        "/v1/chat/completions",
        // A bounded answer, so that a request's budget hold (its largest possible cost) fits
        // the small budgets of these tests.
        json!({"model": model, "max_tokens": 10,
               "messages": [{"role": "user", "content": "hello there"}]}),
    )
    .await
}

pub async fn answer(r: reqwest::Response) -> String {
    let body = json_of(r).await;
    body["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn new_team(gw: &TestGateway, body: Value) -> Value {
    json_of(gw.post("/team/new", body).await).await
}

async fn team_key(gw: &TestGateway, team_id: &str, extra: Value) -> String {
    let mut body = json!({"team_id": team_id});
    if let (Value::Object(b), Value::Object(e)) = (&mut body, extra) {
        b.extend(e);
    }
    let key = json_of(gw.post("/key/generate", body).await).await;
    key["key"].as_str().unwrap().to_string()
}

/// A user with a role, and a key of theirs (made by `/user/new`).
async fn user_with_key(gw: &TestGateway, user_id: &str, role: &str) -> String {
    let user = json_of(
        gw.post(
            "/user/new",
            json!({"user_id": user_id, "user_role": role, "user_email": format!("{user_id}@example.com")}),
        )
        .await,
    )
    .await;
    user["key"].as_str().unwrap().to_string()
}

/// Sends requests with `key` until one is refused for its budget (each written before the
/// next); how many were served. Fails if the budget never binds.
pub async fn spend_until_refused(gw: &TestGateway, key: &str) -> usize {
    for served in 0..20 {
        let r = chat(gw, key, "mock-a").await;
        if r.status() == 400 {
            let e = expect_error(r, 400, "budget_exceeded").await;
            assert!(served > 0, "refused before any spend: {e}");
            return served;
        }
        assert_eq!(r.status(), 200);
        settle(gw).await;
    }
    panic!("the budget never refused a request");
}

/// Waits for the spend writer, so budgets see the requests made so far.
pub async fn settle(gw: &TestGateway) {
    gw.state.keys().unwrap().flush_spend().await.unwrap();
}

async fn a_new_team_is_written_as_litellm_writes_it_and_read_back_by_team_info(db: Db) {
    let s = setup(db).await;
    let gw = &s.gw;
    let team = new_team(
        gw,
        json!({
            "team_id": "team-red", "team_alias": "Red", "models": ["mock-a"],
            "max_budget": 10.0, "budget_duration": "30d", "tpm_limit": 1000, "rpm_limit": 10,
            "metadata": {"owner": "ops"}, "tags": ["prod"], "model_aliases": {"fast": "mock-a"},
            "members_with_roles": [{"role": "admin", "user_id": "alice"},
                                   {"role": "user", "user_email": "bob@example.com"}],
            "team_member_budget": 2.5,
        }),
    )
    .await;
    assert_eq!(team["team_id"], "team-red");
    assert_eq!(team["team_alias"], "Red");
    assert_eq!(team["models"], json!(["mock-a"]));
    assert_eq!(team["max_budget"], json!(10.0));
    assert_eq!(team["metadata"]["owner"], "ops");
    assert_eq!(team["metadata"]["tags"], json!(["prod"]));
    assert!(team["budget_reset_at"].is_string(), "{team}");
    assert_eq!(team["model_aliases"], json!({"fast": "mock-a"}));
    let members = team["members_with_roles"].as_array().unwrap();
    assert_eq!(members.len(), 2, "{team}");
    assert_eq!(
        members[0],
        json!({"role": "admin", "user_id": "alice", "user_email": null})
    );
    assert_eq!(members[1]["role"], "user");
    assert_eq!(members[1]["user_email"], "bob@example.com");
    let bob_id = members[1]["user_id"].as_str().unwrap().to_string();
    assert!(!bob_id.is_empty());

    let key = team_key(gw, "team-red", json!({})).await;
    let info = json_of(gw.get("/team/info?team_id=team-red").await).await;
    assert_eq!(info["team_id"], "team-red");
    assert_eq!(info["team_info"]["team_alias"], "Red");
    assert_eq!(info["keys"].as_array().unwrap().len(), 1, "{info}");
    let memberships = info["team_memberships"].as_array().unwrap();
    assert_eq!(memberships.len(), 2, "{info}");
    assert!(
        memberships
            .iter()
            .all(|m| m["litellm_budget_table"]["max_budget"] == json!(2.5)),
        "{info}"
    );
    // The members' user rows name the team.
    let alice = json_of(gw.get("/user/info?user_id=alice").await).await;
    assert_eq!(alice["user_info"]["teams"], json!(["team-red"]));
    assert_eq!(alice["teams"][0]["team_id"], "team-red");
    // The key answers through the team's alias.
    assert_eq!(answer(chat(gw, &key, "fast").await).await, "answer from a");

    if let Some(pg) = &s.pg {
        // LiteLLM's form: members_with_roles a JSON list, aliases in the model table linked
        // by model_id, the member budget a budget row linked from each membership.
        let (members, aliases, tags, models): (Value, Value, Value, Vec<String>) = sqlx::query_as(
            r#"SELECT t.members_with_roles, m.aliases, t.metadata->'tags', t.models
               FROM "LiteLLM_TeamTable" t JOIN "LiteLLM_ModelTable" m ON m.id = t.model_id
               WHERE t.team_id = 'team-red'"#,
        )
        .fetch_one(pg)
        .await
        .unwrap();
        assert_eq!(members[0]["user_id"], "alice");
        assert_eq!(members[0]["role"], "admin");
        assert_eq!(aliases, json!({"fast": "mock-a"}));
        assert_eq!(tags, json!(["prod"]));
        assert_eq!(models, ["mock-a"]);
        let teams: Vec<String> =
            sqlx::query_scalar(r#"SELECT teams FROM "LiteLLM_UserTable" WHERE user_id = $1"#)
                .bind(&bob_id)
                .fetch_one(pg)
                .await
                .map(|t: Vec<String>| t)
                .unwrap();
        assert_eq!(teams, ["team-red"]);
        let budgets: Vec<f64> = sqlx::query_scalar(
            r#"SELECT b.max_budget FROM "LiteLLM_TeamMembership" tm
               JOIN "LiteLLM_BudgetTable" b ON b.budget_id = tm.budget_id
               WHERE tm.team_id = 'team-red'"#,
        )
        .fetch_all(pg)
        .await
        .unwrap();
        assert_eq!(budgets, [2.5, 2.5]);
    }
}

async fn a_duplicate_team_id_is_refused_and_unknown_teams_are_404(db: Db) {
    let s = setup(db).await;
    let gw = &s.gw;
    new_team(gw, json!({"team_id": "dup"})).await;
    let e = expect_error(
        gw.post("/team/new", json!({"team_id": "dup"})).await,
        400,
        "invalid_request_error",
    )
    .await;
    assert_eq!(
        e["message"],
        "Team id = dup already exists. Please use a different team id."
    );
    // A generated id when none is given.
    let team = new_team(gw, json!({"team_alias": "no id"})).await;
    assert_eq!(team["team_id"].as_str().unwrap().len(), 36, "{team}");
    for r in [
        gw.get("/team/info?team_id=nope").await,
        gw.post("/team/update", json!({"team_id": "nope", "max_budget": 1}))
            .await,
        gw.post("/team/block", json!({"team_id": "nope"})).await,
        gw.post("/team/delete", json!({"team_ids": ["dup", "nope"]}))
            .await,
        gw.post(
            "/team/member_add",
            json!({"team_id": "nope", "member": {"role": "user", "user_id": "u"}}),
        )
        .await,
        gw.post(
            "/team/model/add",
            json!({"team_id": "nope", "models": ["m"]}),
        )
        .await,
    ] {
        let e = expect_error(r, 404, "not_found_error").await;
        assert!(e["message"].as_str().unwrap().contains("nope"), "{e}");
    }
    // The delete was all or nothing.
    json_of(gw.get("/team/info?team_id=dup").await).await;
}

async fn blocking_a_team_refuses_every_key_of_the_team_until_unblocked(db: Db) {
    let s = setup(db).await;
    let gw = &s.gw;
    new_team(gw, json!({"team_id": "blocky"})).await;
    let keys = [
        team_key(gw, "blocky", json!({})).await,
        team_key(gw, "blocky", json!({})).await,
    ];
    let outsider = json_of(gw.post("/key/generate", json!({})).await).await["key"]
        .as_str()
        .unwrap()
        .to_string();
    for key in &keys {
        assert_eq!(chat(gw, key, "mock-a").await.status(), 200);
    }
    let blocked = json_of(gw.post("/team/block", json!({"team_id": "blocky"})).await).await;
    assert_eq!(blocked["blocked"], true);
    for key in &keys {
        expect_error(chat(gw, key, "mock-a").await, 401, "auth_error").await;
    }
    assert_eq!(chat(gw, &outsider, "mock-a").await.status(), 200);
    let unblocked = json_of(gw.post("/team/unblock", json!({"team_id": "blocky"})).await).await;
    assert_eq!(unblocked["blocked"], false);
    for key in &keys {
        assert_eq!(chat(gw, key, "mock-a").await.status(), 200);
    }
    if let Some(pg) = &s.pg {
        let blocked: bool = sqlx::query_scalar(
            r#"SELECT blocked FROM "LiteLLM_TeamTable" WHERE team_id = 'blocky'"#,
        )
        .fetch_one(pg)
        .await
        .unwrap();
        assert!(!blocked);
    }
}

async fn a_team_s_models_bind_its_keys_and_change_with_team_model_add_and_delete(db: Db) {
    let s = setup(db).await;
    let gw = &s.gw;
    new_team(gw, json!({"team_id": "models", "models": ["mock-a"]})).await;
    let key = team_key(gw, "models", json!({})).await;
    assert_eq!(chat(gw, &key, "mock-a").await.status(), 200);
    expect_error(
        chat(gw, &key, "mock-b").await,
        401,
        "key_model_access_denied",
    )
    .await;
    let team = json_of(
        gw.post(
            "/team/model/add",
            json!({"team_id": "models", "models": ["mock-b"]}),
        )
        .await,
    )
    .await;
    assert_eq!(team["models"], json!(["mock-a", "mock-b"]));
    assert_eq!(chat(gw, &key, "mock-b").await.status(), 200);
    let team = json_of(
        gw.post(
            "/team/model/delete",
            json!({"team_id": "models", "models": ["mock-a"]}),
        )
        .await,
    )
    .await;
    assert_eq!(team["models"], json!(["mock-b"]));
    expect_error(
        chat(gw, &key, "mock-a").await,
        401,
        "key_model_access_denied",
    )
    .await;
    // /team/update replaces the list.
    json_of(
        gw.post(
            "/team/update",
            json!({"team_id": "models", "models": ["mock-a"]}),
        )
        .await,
    )
    .await;
    assert_eq!(chat(gw, &key, "mock-a").await.status(), 200);
    expect_error(
        chat(gw, &key, "mock-b").await,
        401,
        "key_model_access_denied",
    )
    .await;
}

async fn a_team_s_model_aliases_send_its_keys_requests_to_the_aliased_model(db: Db) {
    let s = setup(db).await;
    let gw = &s.gw;
    new_team(
        gw,
        json!({"team_id": "alias", "model_aliases": {"smart": "mock-b"}}),
    )
    .await;
    let key = team_key(gw, "alias", json!({})).await;
    assert_eq!(answer(chat(gw, &key, "smart").await).await, "answer from b");
    // A key outside the team knows no such model.
    let other = json_of(gw.post("/key/generate", json!({})).await).await["key"]
        .as_str()
        .unwrap()
        .to_string();
    expect_error(chat(gw, &other, "smart").await, 404, "not_found_error").await;
    // Changing the aliases reaches the cached key at once.
    json_of(
        gw.post(
            "/team/update",
            json!({"team_id": "alias", "model_aliases": {"smart": "mock-a"}}),
        )
        .await,
    )
    .await;
    assert_eq!(answer(chat(gw, &key, "smart").await).await, "answer from a");
}

async fn a_team_budget_refuses_its_keys_once_spent(db: Db) {
    let s = setup(db).await;
    let gw = &s.gw;
    new_team(gw, json!({"team_id": "budget", "max_budget": 0.3})).await;
    let keys = [
        team_key(gw, "budget", json!({})).await,
        team_key(gw, "budget", json!({})).await,
    ];
    // Requests are served until the team's spend leaves too little for another; then every
    // key of the team is refused, naming the team.
    spend_until_refused(gw, &keys[0]).await;
    for key in &keys {
        let e = expect_error(chat(gw, key, "mock-a").await, 400, "budget_exceeded").await;
        assert!(
            e["message"].as_str().unwrap().contains("Team=budget"),
            "{e}"
        );
    }
    // Raising the budget serves them again.
    json_of(
        gw.post(
            "/team/update",
            json!({"team_id": "budget", "max_budget": 1000.0}),
        )
        .await,
    )
    .await;
    assert_eq!(chat(gw, &keys[1], "mock-a").await.status(), 200);
    let info = json_of(gw.get("/team/info?team_id=budget").await).await;
    assert!(info["team_info"]["spend"].as_f64().unwrap() > 0.0, "{info}");
}

async fn a_member_s_budget_in_the_team_refuses_that_member_s_team_keys_only(db: Db) {
    let s = setup(db).await;
    let gw = &s.gw;
    new_team(gw, json!({"team_id": "members"})).await;
    let added = json_of(
        gw.post(
            "/team/member_add",
            json!({"team_id": "members", "max_budget_in_team": 0.3,
                   "member": [{"role": "user", "user_id": "carol"}]}),
        )
        .await,
    )
    .await;
    assert_eq!(added["updated_users"][0]["user_id"], "carol");
    assert_eq!(
        added["updated_team_memberships"][0]["litellm_budget_table"]["max_budget"],
        json!(0.3)
    );
    json_of(
        gw.post(
            "/team/member_add",
            json!({"team_id": "members", "member": {"role": "user", "user_id": "dave"}}),
        )
        .await,
    )
    .await;
    let carol = team_key(gw, "members", json!({"user_id": "carol"})).await;
    let dave = team_key(gw, "members", json!({"user_id": "dave"})).await;
    spend_until_refused(gw, &carol).await;
    let e = expect_error(chat(gw, &carol, "mock-a").await, 400, "budget_exceeded").await;
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("User=carol in Team=members"),
        "{e}"
    );
    assert_eq!(chat(gw, &dave, "mock-a").await.status(), 200);
    // The member's spend is on its membership row.
    let info = json_of(gw.get("/team/info?team_id=members").await).await;
    let row = info["team_memberships"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["user_id"] == "carol")
        .cloned()
        .unwrap();
    assert!(row["spend"].as_f64().unwrap() > 0.0, "{info}");
    // A bigger budget in the team serves the member again.
    let updated = json_of(
        gw.post(
            "/team/member_update",
            json!({"team_id": "members", "user_id": "carol", "max_budget_in_team": 100.0}),
        )
        .await,
    )
    .await;
    assert_eq!(updated["max_budget_in_team"], json!(100.0));
    json_of(chat(gw, &carol, "mock-a").await).await;
}

async fn members_are_added_by_email_updated_and_removed_with_their_team_keys(db: Db) {
    let s = setup(db).await;
    let gw = &s.gw;
    new_team(gw, json!({"team_id": "crew"})).await;
    let added = json_of(
        gw.post(
            "/team/member_add",
            json!({"team_id": "crew", "member": {"role": "user", "user_email": "erin@example.com"}}),
        )
        .await,
    )
    .await;
    let erin = added["updated_users"][0]["user_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(added["updated_users"][0]["user_email"], "erin@example.com");
    assert_eq!(added["updated_users"][0]["user_role"], "internal_user");
    // Twice is refused.
    let e = expect_error(
        gw.post(
            "/team/member_add",
            json!({"team_id": "crew", "member": {"role": "user", "user_id": erin}}),
        )
        .await,
        400,
        "invalid_request_error",
    )
    .await;
    assert!(
        e["message"].as_str().unwrap().contains("already in team"),
        "{e}"
    );
    let updated = json_of(
        gw.post(
            "/team/member_update",
            json!({"team_id": "crew", "user_email": "erin@example.com", "role": "admin"}),
        )
        .await,
    )
    .await;
    assert_eq!(updated["role"], "admin");
    let team = json_of(gw.get("/team/info?team_id=crew").await).await;
    assert_eq!(team["team_info"]["members_with_roles"][0]["role"], "admin");
    let key = team_key(gw, "crew", json!({"user_id": erin})).await;
    assert_eq!(chat(gw, &key, "mock-a").await.status(), 200);
    json_of(
        gw.post(
            "/team/member_delete",
            json!({"team_id": "crew", "user_email": "erin@example.com"}),
        )
        .await,
    )
    .await;
    expect_error(chat(gw, &key, "mock-a").await, 401, "auth_error").await;
    let team = json_of(gw.get("/team/info?team_id=crew").await).await;
    assert_eq!(team["team_info"]["members_with_roles"], json!([]));
    let user = json_of(gw.get(&format!("/user/info?user_id={erin}")).await).await;
    assert_eq!(user["user_info"]["teams"], json!([]));
    // Removing someone who is not a member: 404 naming them.
    let e = expect_error(
        gw.post(
            "/team/member_delete",
            json!({"team_id": "crew", "user_id": "stranger"}),
        )
        .await,
        404,
        "not_found_error",
    )
    .await;
    assert!(e["message"].as_str().unwrap().contains("stranger"), "{e}");
}

async fn a_team_admin_manages_its_own_team_s_members_and_no_other_team(db: Db) {
    let s = setup(db).await;
    let gw = &s.gw;
    let admin_key = user_with_key(gw, "frank", "internal_user").await;
    let member_key = user_with_key(gw, "gina", "internal_user").await;
    new_team(
        gw,
        json!({"team_id": "mine", "members_with_roles": [
            {"role": "admin", "user_id": "frank"}, {"role": "user", "user_id": "gina"}]}),
    )
    .await;
    new_team(gw, json!({"team_id": "theirs"})).await;
    let add = |team: &str, user: &str| json!({"team_id": team, "member": {"role": "user", "user_id": user}});
    // The team's admin adds and removes members of its team.
    let r = post_as(gw, &admin_key, "/team/member_add", add("mine", "hank")).await;
    json_of(r).await;
    let r = post_as(
        gw,
        &admin_key,
        "/team/member_delete",
        json!({"team_id": "mine", "user_id": "hank"}),
    )
    .await;
    json_of(r).await;
    // Not another team's, and a plain member not its own.
    let e = expect_error(
        post_as(gw, &admin_key, "/team/member_add", add("theirs", "hank")).await,
        403,
        "permission_error",
    )
    .await;
    assert!(e["message"].as_str().unwrap().contains("team admin"), "{e}");
    expect_error(
        post_as(gw, &member_key, "/team/member_add", add("mine", "hank")).await,
        403,
        "permission_error",
    )
    .await;
    // Neither creates, blocks or deletes teams.
    for (path, body) in [
        ("/team/new", json!({"team_id": "new"})),
        ("/team/block", json!({"team_id": "mine"})),
        ("/team/delete", json!({"team_ids": ["mine"]})),
    ] {
        expect_error(post_as(gw, &admin_key, path, body).await, 401, "auth_error").await;
    }
    // Members read their team; outsiders do not.
    json_of(get_as(gw, &member_key, "/team/info?team_id=mine").await).await;
    expect_error(
        get_as(gw, &member_key, "/team/info?team_id=theirs").await,
        403,
        "permission_error",
    )
    .await;
}

async fn team_list_shows_an_internal_user_only_its_own_teams(db: Db) {
    let s = setup(db).await;
    let gw = &s.gw;
    let key = user_with_key(gw, "ivy", "internal_user").await;
    new_team(
        gw,
        json!({"team_id": "ivy-team", "members_with_roles": [{"role": "user", "user_id": "ivy"}]}),
    )
    .await;
    new_team(gw, json!({"team_id": "other-team"})).await;
    let all = json_of(gw.get("/team/list").await).await;
    let ids: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["team_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["ivy-team", "other-team"]);
    let own = json_of(get_as(gw, &key, "/team/list?user_id=ivy").await).await;
    assert_eq!(own.as_array().unwrap().len(), 1, "{own}");
    assert_eq!(own[0]["team_id"], "ivy-team");
    for path in ["/team/list", "/team/list?user_id=someone-else"] {
        let e = expect_error(get_as(gw, &key, path).await, 401, "auth_error").await;
        assert!(
            e["message"]
                .as_str()
                .unwrap()
                .contains("Only admin users can query all teams"),
            "{e}"
        );
    }
}

async fn deleting_a_team_deletes_its_keys(db: Db) {
    let s = setup(db).await;
    let gw = &s.gw;
    new_team(
        gw,
        json!({"team_id": "doomed", "members_with_roles": [{"role": "user", "user_id": "jack"}]}),
    )
    .await;
    let key = team_key(gw, "doomed", json!({})).await;
    assert_eq!(chat(gw, &key, "mock-a").await.status(), 200);
    let deleted = json_of(
        gw.post("/team/delete", json!({"team_ids": ["doomed"]}))
            .await,
    )
    .await;
    assert_eq!(deleted["deleted_teams"], json!(["doomed"]));
    expect_error(chat(gw, &key, "mock-a").await, 401, "auth_error").await;
    expect_error(
        gw.get("/team/info?team_id=doomed").await,
        404,
        "not_found_error",
    )
    .await;
    let jack = json_of(gw.get("/user/info?user_id=jack").await).await;
    assert_eq!(jack["user_info"]["teams"], json!([]));
}

async fn bad_team_bodies_are_400s_naming_the_field(db: Db) {
    let s = setup(db).await;
    let gw = &s.gw;
    new_team(gw, json!({"team_id": "t"})).await;
    for (path, body, param) in [
        ("/team/new", json!({"models": "mock-a"}), "models"),
        ("/team/new", json!({"max_budget": -1}), "max_budget"),
        (
            "/team/new",
            json!({"budget_duration": "soon"}),
            "budget_duration",
        ),
        (
            "/team/new",
            json!({"members_with_roles": [{"role": "owner", "user_id": "x"}]}),
            "members_with_roles",
        ),
        (
            "/team/new",
            json!({"members_with_roles": [{"role": "user"}]}),
            "member",
        ),
        (
            "/team/new",
            json!({"model_aliases": {"a": 1}}),
            "model_aliases",
        ),
        ("/team/update", json!({"max_budget": 1}), "team_id"),
        ("/team/delete", json!({"team_ids": "t"}), "team_ids"),
        ("/team/delete", json!({"team_ids": []}), "team_ids"),
        (
            "/team/member_add",
            json!({"team_id": "t", "member": {"role": "user"}}),
            "member",
        ),
        ("/team/member_delete", json!({"team_id": "t"}), "user_id"),
        ("/team/model/add", json!({"team_id": "t"}), "models"),
    ] {
        let e = expect_error(
            gw.post(path, body.clone()).await,
            400,
            "invalid_request_error",
        )
        .await;
        assert_eq!(e["param"], param, "{path} {body}: {e}");
    }
    let e = expect_error(gw.get("/team/info").await, 400, "invalid_request_error").await;
    assert_eq!(e["param"], "team_id");
}

async fn a_new_user_gets_a_key_unless_told_otherwise_and_duplicates_are_409(db: Db) {
    let s = setup(db).await;
    let gw = &s.gw;
    let user = json_of(
        gw.post(
            "/user/new",
            json!({"user_id": "kim", "user_email": "Kim@Example.com", "models": ["mock-a"],
                   "max_budget": 5.0, "user_role": "internal_user"}),
        )
        .await,
    )
    .await;
    assert_eq!(user["user_id"], "kim");
    assert_eq!(user["user_role"], "internal_user");
    assert_eq!(user["max_budget"], json!(5.0));
    assert!(user.get("token").is_none(), "{user}");
    let key = user["key"].as_str().unwrap().to_string();
    assert!(key.starts_with("sk-"), "{user}");
    let info = json_of(gw.get(&format!("/key/info?key={key}")).await).await;
    assert_eq!(info["info"]["user_id"], "kim");
    assert_eq!(info["info"]["models"], json!(["mock-a"]));
    // The key has no budget of its own: the user's binds it.
    assert_eq!(info["info"]["max_budget"], Value::Null);
    let bare = json_of(
        gw.post(
            "/user/new",
            json!({"user_id": "lee", "auto_create_key": false}),
        )
        .await,
    )
    .await;
    assert_eq!(bare["key"], "");
    let lee = json_of(gw.get("/user/info?user_id=lee").await).await;
    assert_eq!(lee["keys"], json!([]));
    // A generated id when none is given.
    let anon = json_of(gw.post("/user/new", json!({})).await).await;
    assert_eq!(anon["user_id"].as_str().unwrap().len(), 36, "{anon}");
    let e = expect_error(
        gw.post("/user/new", json!({"user_id": "kim"})).await,
        409,
        "invalid_request_error",
    )
    .await;
    assert_eq!(e["message"], "User with id kim already exists");
    let e = expect_error(
        gw.post("/user/new", json!({"user_email": "kim@example.COM"}))
            .await,
        409,
        "invalid_request_error",
    )
    .await;
    assert!(
        e["message"].as_str().unwrap().contains("already exists"),
        "{e}"
    );
    // Only an admin creates users.
    expect_error(
        post_as(gw, &key, "/user/new", json!({"user_id": "mallory"})).await,
        401,
        "auth_error",
    )
    .await;
    let e = expect_error(
        gw.post("/user/new", json!({"user_role": "root"})).await,
        400,
        "invalid_request_error",
    )
    .await;
    assert_eq!(e["param"], "user_role");
    if let Some(pg) = &s.pg {
        let (role, budget, email): (Option<String>, Option<f64>, Option<String>) = sqlx::query_as(
            r#"SELECT user_role, max_budget, user_email FROM "LiteLLM_UserTable"
                   WHERE user_id = 'kim'"#,
        )
        .fetch_one(pg)
        .await
        .unwrap();
        assert_eq!(role.as_deref(), Some("internal_user"));
        assert_eq!(budget, Some(5.0));
        assert_eq!(email.as_deref(), Some("Kim@Example.com"));
    }
}

async fn a_user_s_models_and_budget_bind_its_personal_keys(db: Db) {
    let s = setup(db).await;
    let gw = &s.gw;
    json_of(
        gw.post(
            "/user/new",
            json!({"user_id": "max", "models": ["mock-a"], "max_budget": 1.0,
                   "auto_create_key": false}),
        )
        .await,
    )
    .await;
    // A key of the user with no models of its own: the user's bind it.
    let key = json_of(gw.post("/key/generate", json!({"user_id": "max"})).await).await["key"]
        .as_str()
        .unwrap()
        .to_string();
    expect_error(
        chat(gw, &key, "mock-b").await,
        401,
        "key_model_access_denied",
    )
    .await;
    assert_eq!(chat(gw, &key, "mock-a").await.status(), 200);
    settle(gw).await;
    // The user's spend reaches its budget: every personal key of the user is refused.
    json_of(
        gw.post("/user/update", json!({"user_id": "max", "spend": 1.0}))
            .await,
    )
    .await;
    let e = expect_error(chat(gw, &key, "mock-a").await, 400, "budget_exceeded").await;
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .starts_with("ExceededBudget: User=max over budget."),
        "{e}"
    );
    // A team key of the same user spends the team's budget, and the team's models apply.
    new_team(gw, json!({"team_id": "max-team"})).await;
    let team_key = team_key(gw, "max-team", json!({"user_id": "max"})).await;
    assert_eq!(chat(gw, &team_key, "mock-b").await.status(), 200);
    // Raising the user's budget reaches the cached key at once.
    json_of(
        gw.post(
            "/user/update",
            json!({"user_id": "max", "max_budget": 100.0}),
        )
        .await,
    )
    .await;
    assert_eq!(chat(gw, &key, "mock-a").await.status(), 200);
    let info = json_of(gw.get("/user/info?user_id=max").await).await;
    assert!(
        info["user_info"]["spend"].as_f64().unwrap() >= 1.0,
        "{info}"
    );
}

async fn a_user_updates_only_itself_and_reads_only_its_own_info(db: Db) {
    let s = setup(db).await;
    let gw = &s.gw;
    let nia = user_with_key(gw, "nia", "internal_user").await;
    user_with_key(gw, "oz", "internal_user").await;
    let viewer = user_with_key(gw, "pat", "proxy_admin_viewer").await;
    // An internal user's key does not manage users (LiteLLM's route lists), not even its own.
    expect_error(
        post_as(
            gw,
            &nia,
            "/user/update",
            json!({"user_id": "nia", "user_alias": "Nia"}),
        )
        .await,
        401,
        "auth_error",
    )
    .await;
    // A viewer passes the door for its own email only.
    let updated = json_of(
        post_as(
            gw,
            &viewer,
            "/user/update",
            json!({"user_id": "pat", "user_email": "pat@new.example.com"}),
        )
        .await,
    )
    .await;
    assert_eq!(updated["user_id"], "pat");
    assert_eq!(updated["data"]["user_email"], "pat@new.example.com");
    let e = expect_error(
        post_as(
            gw,
            &viewer,
            "/user/update",
            json!({"user_id": "oz", "user_email": "x@y.z"}),
        )
        .await,
        403,
        "permission_error",
    )
    .await;
    assert!(
        e["message"].as_str().unwrap().contains("Only PROXY_ADMIN"),
        "{e}"
    );
    let e = expect_error(
        post_as(
            gw,
            &viewer,
            "/user/update",
            json!({"user_id": "pat", "user_role": "proxy_admin"}),
        )
        .await,
        403,
        "permission_error",
    )
    .await;
    assert_eq!(e["message"], "Only proxy admins can modify user roles.");
    for body in [
        json!({"user_id": "pat", "max_budget": 1000}),
        json!({"user_id": "pat", "user_alias": "boss"}),
    ] {
        expect_error(
            post_as(gw, &viewer, "/user/update", body).await,
            403,
            "permission_error",
        )
        .await;
    }
    // Own info without naming it; another's is refused; a viewer reads any.
    let own = json_of(get_as(gw, &nia, "/user/info").await).await;
    assert_eq!(own["user_id"], "nia");
    assert_eq!(own["keys"].as_array().unwrap().len(), 1);
    expect_error(
        get_as(gw, &nia, "/user/info?user_id=oz").await,
        403,
        "permission_error",
    )
    .await;
    json_of(get_as(gw, &viewer, "/user/info?user_id=oz").await).await;
    expect_error(
        gw.get("/user/info?user_id=nobody").await,
        404,
        "not_found_error",
    )
    .await;
    expect_error(
        gw.post(
            "/user/update",
            json!({"user_id": "nobody", "user_alias": "x"}),
        )
        .await,
        404,
        "not_found_error",
    )
    .await;
    let e = expect_error(
        gw.post("/user/update", json!({"user_alias": "x"})).await,
        400,
        "invalid_request_error",
    )
    .await;
    assert_eq!(e["param"], "user_id");
}

async fn user_list_pages_filters_and_is_for_admins_only(db: Db) {
    let s = setup(db).await;
    let gw = &s.gw;
    let key = user_with_key(gw, "u1", "internal_user").await;
    user_with_key(gw, "u2", "internal_user").await;
    user_with_key(gw, "u3", "proxy_admin_viewer").await;
    let page = json_of(gw.get("/user/list?page_size=2&sort_by=user_id").await).await;
    assert_eq!(page["total"], 3);
    assert_eq!(page["page"], 1);
    assert_eq!(page["page_size"], 2);
    assert_eq!(page["total_pages"], 2);
    let ids: Vec<&str> = page["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["user_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["u1", "u2"]);
    assert_eq!(page["users"][0]["key_count"], 1);
    let second = json_of(
        gw.get("/user/list?page_size=2&page=2&sort_by=user_id")
            .await,
    )
    .await;
    assert_eq!(second["users"][0]["user_id"], "u3");
    let viewers = json_of(gw.get("/user/list?role=proxy_admin_viewer").await).await;
    assert_eq!(viewers["total"], 1);
    let picked = json_of(gw.get("/user/list?user_ids=u1,u3").await).await;
    assert_eq!(picked["total"], 2);
    for (path, param) in [
        ("/user/list?page=0", "page"),
        ("/user/list?page_size=101", "page_size"),
        ("/user/list?sort_by=password", "sort_by"),
        ("/user/list?sort_order=sideways", "sort_order"),
        ("/user/list?page=one", "page"),
    ] {
        let e = expect_error(gw.get(path).await, 400, "invalid_request_error").await;
        assert_eq!(e["param"], param, "{path}: {e}");
    }
    expect_error(
        get_as(gw, &key, "/user/list").await,
        403,
        "permission_error",
    )
    .await;
}

async fn deleting_a_user_deletes_its_keys_and_team_memberships(db: Db) {
    let s = setup(db).await;
    let gw = &s.gw;
    let key = user_with_key(gw, "quinn", "internal_user").await;
    new_team(
        gw,
        json!({"team_id": "q-team", "members_with_roles": [{"role": "user", "user_id": "quinn"}]}),
    )
    .await;
    assert_eq!(chat(gw, &key, "mock-a").await.status(), 200);
    let e = expect_error(
        gw.post("/user/delete", json!({"user_ids": ["quinn", "nobody"]}))
            .await,
        404,
        "not_found_error",
    )
    .await;
    assert_eq!(e["message"], "User not found, passed user_id=nobody");
    assert_eq!(chat(gw, &key, "mock-a").await.status(), 200);
    let deleted = json_of(
        gw.post("/user/delete", json!({"user_ids": ["quinn"]}))
            .await,
    )
    .await;
    assert_eq!(deleted, json!(1));
    expect_error(chat(gw, &key, "mock-a").await, 401, "auth_error").await;
    let team = json_of(gw.get("/team/info?team_id=q-team").await).await;
    assert_eq!(team["team_info"]["members_with_roles"], json!([]));
    expect_error(
        gw.get("/user/info?user_id=quinn").await,
        404,
        "not_found_error",
    )
    .await;
}

async fn an_internal_user_manages_its_own_keys_and_a_team_admin_its_team_s(db: Db) {
    let s = setup(db).await;
    let gw = &s.gw;
    json_of(
        gw.post(
            "/user/new",
            json!({"user_id": "rita", "user_role": "internal_user", "models": ["mock-a"],
                   "max_budget": 10.0, "auto_create_key": false}),
        )
        .await,
    )
    .await;
    let rita = json_of(gw.post("/key/generate", json!({"user_id": "rita"})).await).await["key"]
        .as_str()
        .unwrap()
        .to_string();
    let sam = user_with_key(gw, "sam", "internal_user").await;
    let lead = user_with_key(gw, "tess", "internal_user").await;
    new_team(
        gw,
        json!({"team_id": "squad", "members_with_roles": [
            {"role": "admin", "user_id": "tess"}, {"role": "user", "user_id": "sam"}]}),
    )
    .await;
    // A key for itself: its user id is filled in.
    let own =
        json_of(post_as(gw, &rita, "/key/generate", json!({"key_alias": "rita-2"})).await).await;
    assert_eq!(own["user_id"], "rita");
    let own_key = own["key"].as_str().unwrap().to_string();
    // Not for someone else, not outside its models or budget, not in a team it is not in.
    for (body, says) in [
        (json!({"user_id": "sam"}), "only create keys for themselves"),
        (json!({"models": ["mock-b"]}), "not in the user's models"),
        (json!({"max_budget": 50.0}), "above the user's max_budget"),
        (json!({"team_id": "squad"}), "not a member of team_id=squad"),
    ] {
        let e = expect_error(
            post_as(gw, &rita, "/key/generate", body.clone()).await,
            403,
            "permission_error",
        )
        .await;
        assert!(e["message"].as_str().unwrap().contains(says), "{body}: {e}");
    }
    // Its own keys it updates, blocks, regenerates and deletes; not another's.
    json_of(
        post_as(
            gw,
            &rita,
            "/key/update",
            json!({"key": own_key, "key_alias": "renamed"}),
        )
        .await,
    )
    .await;
    json_of(post_as(gw, &rita, "/key/block", json!({"key": own_key})).await).await;
    json_of(post_as(gw, &rita, "/key/unblock", json!({"key": own_key})).await).await;
    let regenerated =
        json_of(post_as(gw, &rita, &format!("/key/{own_key}/regenerate"), json!({})).await).await;
    let own_key = regenerated["key"].as_str().unwrap().to_string();
    for (path, body) in [
        ("/key/update", json!({"key": sam, "key_alias": "mine now"})),
        ("/key/block", json!({"key": sam})),
        ("/key/delete", json!({"keys": [sam]})),
        ("/key/regenerate", json!({"key": sam})),
    ] {
        expect_error(
            post_as(gw, &rita, path, body).await,
            403,
            "permission_error",
        )
        .await;
    }
    assert_eq!(chat(gw, &sam, "mock-a").await.status(), 200);
    // A key of its own cannot be handed to another user by its owner.
    expect_error(
        post_as(
            gw,
            &rita,
            "/key/update",
            json!({"key": own_key, "user_id": "sam"}),
        )
        .await,
        403,
        "permission_error",
    )
    .await;
    // /key/info: its own keys; another's is LiteLLM's 403; an unknown key 404.
    json_of(get_as(gw, &rita, &format!("/key/info?key={own_key}")).await).await;
    let e = expect_error(
        get_as(gw, &rita, &format!("/key/info?key={sam}")).await,
        403,
        "permission_error",
    )
    .await;
    assert_eq!(
        e["message"],
        "You are not allowed to access this key's info. Your role=internal_user"
    );
    let e = expect_error(
        get_as(gw, &rita, "/key/info?key=sk-never-issued").await,
        404,
        "not_found_error",
    )
    .await;
    assert_eq!(e["message"], "Key not found in database");
    // /key/list: its own keys only.
    let listed = json_of(get_as(gw, &rita, "/key/list").await).await;
    assert_eq!(listed["total_count"], 2, "{listed}");
    expect_error(
        get_as(gw, &rita, "/key/list?user_id=sam").await,
        403,
        "permission_error",
    )
    .await;
    // A team admin makes and manages keys of its team's members.
    let team_key = json_of(
        post_as(
            gw,
            &lead,
            "/key/generate",
            json!({"team_id": "squad", "user_id": "sam"}),
        )
        .await,
    )
    .await["key"]
        .as_str()
        .unwrap()
        .to_string();
    json_of(post_as(gw, &lead, "/key/block", json!({"key": team_key})).await).await;
    json_of(get_as(gw, &lead, &format!("/key/info?key={team_key}")).await).await;
    let team_keys = json_of(get_as(gw, &lead, "/key/list?team_id=squad").await).await;
    assert_eq!(team_keys["total_count"], 1, "{team_keys}");
    // A member of the team makes keys in it for itself.
    let member_key =
        json_of(post_as(gw, &sam, "/key/generate", json!({"team_id": "squad"})).await).await;
    assert_eq!(member_key["team_id"], "squad");
    assert_eq!(member_key["user_id"], "sam");
}

async fn a_key_s_and_a_request_s_tags_are_the_spend_log_s_request_tags(db: Db) {
    let s = setup(db).await;
    let gw = &s.gw;
    let generated = json_of(
        gw.post("/key/generate", json!({"tags": ["team-x", "prod"]}))
            .await,
    )
    .await;
    let key = generated["key"].as_str().unwrap().to_string();
    let token = generated["token_id"].as_str().unwrap().to_string();
    let r = post_as(
        gw,
        &key,
        "/v1/chat/completions",
        json!({"model": "mock-a", "max_tokens": 10, "metadata": {"tags": ["batch", "prod"]},
               "messages": [{"role": "user", "content": "hello there"}]}),
    )
    .await;
    json_of(r).await;
    settle(gw).await;
    let store = gw.state.keys().unwrap().store();
    let sql = r#"SELECT CAST(request_tags AS TEXT) FROM "LiteLLM_SpendLogs" WHERE api_key = $1"#;
    let tags: String = match (store.postgres_pool(), store.sqlite_pool()) {
        (Some(pg), _) => sqlx::query_scalar(sql)
            .bind(&token)
            .fetch_one(pg)
            .await
            .unwrap(),
        (_, Some(lite)) => sqlx::query_scalar(sql)
            .bind(&token)
            .fetch_one(lite)
            .await
            .unwrap(),
        _ => unreachable!(),
    };
    let tags: Value = serde_json::from_str(&tags).unwrap();
    assert_eq!(tags, json!(["team-x", "prod", "batch"]));
}

async fn a_key_s_model_max_budget_refuses_that_model_only_and_survives_a_reload(db: Db) {
    let s = setup(db).await;
    let gw = &s.gw;
    let key = json_of(
        gw.post(
            "/key/generate",
            json!({"key_alias": "per-model",
                   "model_max_budget": {"mock-a": {"budget_limit": 0.0001, "time_period": "1d"}}}),
        )
        .await,
    )
    .await["key"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(chat(gw, &key, "mock-a").await.status(), 200);
    settle(gw).await;
    let e = expect_error(chat(gw, &key, "mock-a").await, 400, "budget_exceeded").await;
    let message = e["message"].as_str().unwrap();
    assert!(message.contains("exceeded budget for model=mock-a"), "{e}");
    assert!(message.contains("key_alias: per-model"), "{e}");
    // Another model of the key is not bound by it.
    assert_eq!(chat(gw, &key, "mock-b").await.status(), 200);
    // The count comes from the spend logs: a key read afresh is still refused.
    json_of(
        gw.post("/key/update", json!({"key": key, "metadata": {"x": 1}}))
            .await,
    )
    .await;
    expect_error(chat(gw, &key, "mock-a").await, 400, "budget_exceeded").await;
    // A bigger budget for the model serves it again.
    json_of(
        gw.post(
            "/key/update",
            json!({"key": key,
                   "model_max_budget": {"mock-a": {"budget_limit": 100.0, "time_period": "1d"}}}),
        )
        .await,
    )
    .await;
    assert_eq!(chat(gw, &key, "mock-a").await.status(), 200);
}
