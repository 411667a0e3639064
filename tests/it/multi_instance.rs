//! Several gateway processes sharing one Postgres and one Redis share keys and limits exactly,
//! and a key changed on one is followed by the others at once (change notifications).

use serde_json::{Value, json};

use crate::common::*;

#[tokio::test]
async fn two_processes_on_one_redis_admit_exactly_the_rpm_limit() {
    let db = ScratchDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        "model_list:\n  - model_name: mock\n    litellm_params: {model: openai/mock, mock_response: ok}\n",
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
    let limit = 10;
    let generated: Value = client
        .post(a.url("/key/generate"))
        .bearer_auth(MASTER)
        .json(&json!({"rpm_limit": limit}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = generated["key"].as_str().unwrap().to_string();
    let requests = (0..3 * limit).map(|i| {
        let url = if i % 2 == 0 {
            a.url("/v1/chat/completions")
        } else {
            b.url("/v1/chat/completions")
        };
        let client = client.clone();
        let key = key.clone();
        async move {
            client
                .post(url)
                .bearer_auth(key)
                .json(&json!({"model": "mock", "messages": [{"role": "user", "content": "hi"}]}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    });
    let statuses = futures::future::join_all(requests).await;
    let ok = statuses.iter().filter(|s| **s == 200).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(
        ok, limit,
        "exactly the limit passes across both instances: {statuses:?}"
    );
    assert_eq!(limited, 2 * limit);
}

/// A chat call with `key` on `gateway`; its status.
async fn chat_status(client: &reqwest::Client, gateway: &GatewayProcess, key: &str) -> u16 {
    client
        .post(gateway.url("/v1/chat/completions"))
        .bearer_auth(key)
        .json(&json!({"model": "mock", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Polls for up to `within` until `gateway` refuses `key` with a 401; how long it took.
async fn refused_within(
    client: &reqwest::Client,
    gateway: &GatewayProcess,
    key: &str,
    within: std::time::Duration,
) -> Option<std::time::Duration> {
    let started = std::time::Instant::now();
    while started.elapsed() < within {
        if chat_status(client, gateway, key).await == 401 {
            return Some(started.elapsed());
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    None
}

#[tokio::test]
async fn a_key_blocked_or_deleted_on_one_instance_is_refused_on_the_other_at_once() {
    let db = ScratchDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    // A 600 s key cache: only the change notification can explain a refusal within seconds.
    std::fs::write(
        &config,
        "model_list:\n  - model_name: mock\n    litellm_params: {model: openai/mock, mock_response: ok}\ngeneral_settings: {user_api_key_cache_ttl: 600}\n",
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
    let generate = || async {
        let generated: Value = client
            .post(a.url("/key/generate"))
            .bearer_auth(MASTER)
            .json(&json!({}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        generated["key"].as_str().unwrap().to_string()
    };
    let manage = |route: &'static str, key: String| {
        let client = client.clone();
        let url = a.url(route);
        async move {
            let body = if route == "/key/delete" {
                json!({"keys": [key]})
            } else {
                json!({"key": key})
            };
            let r = client
                .post(url)
                .bearer_auth(MASTER)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{route}");
        }
    };
    let second = std::time::Duration::from_secs(1);
    for route in ["/key/block", "/key/delete"] {
        let key = generate().await;
        // Both instances have the key cached.
        assert_eq!(chat_status(&client, &a, &key).await, 200);
        assert_eq!(chat_status(&client, &b, &key).await, 200);
        manage(route, key.clone()).await;
        let took = refused_within(&client, &b, &key, second).await;
        assert!(
            took.is_some(),
            "{route} on one instance: the other still served the key after 1 s"
        );
        assert_eq!(chat_status(&client, &a, &key).await, 401);
    }
    // Unblocking reaches the other instance too.
    let key = generate().await;
    assert_eq!(chat_status(&client, &b, &key).await, 200);
    manage("/key/block", key.clone()).await;
    assert!(refused_within(&client, &b, &key, second).await.is_some());
    manage("/key/unblock", key.clone()).await;
    let started = std::time::Instant::now();
    while chat_status(&client, &b, &key).await != 200 {
        assert!(
            started.elapsed() < second,
            "unblocked, still refused after 1 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// A chat call with `key` on `gateway` naming the end user `user`; its status.
async fn chat_as_end_user(
    client: &reqwest::Client,
    gateway: &GatewayProcess,
    key: &str,
    user: &str,
) -> u16 {
    client
        .post(gateway.url("/v1/chat/completions"))
        .bearer_auth(key)
        .json(&json!({"model": "mock", "user": user,
                      "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_team_user_or_end_user_changed_on_one_instance_binds_the_other_at_once() {
    let db = ScratchDb::litellm().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    // A 600 s key cache: only the change notification can explain a refusal within seconds.
    std::fs::write(
        &config,
        "model_list:\n  - model_name: mock\n    litellm_params: {model: openai/mock, mock_response: ok}\ngeneral_settings: {user_api_key_cache_ttl: 600}\n",
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
    let post = |route: &str, body: Value| {
        let request = client.post(a.url(route)).bearer_auth(MASTER).json(&body);
        async move {
            let r = request.send().await.unwrap();
            let status = r.status();
            let body: Value = r.json().await.unwrap();
            assert_eq!(status, 200, "{body}");
            body
        }
    };
    let second = std::time::Duration::from_secs(1);
    let key_of = |body: Value| body["key"].as_str().unwrap().to_string();

    // A blocked team: its key, cached on the other instance, is refused there at once.
    post("/team/new", json!({"team_id": "t-block"})).await;
    let key = key_of(post("/key/generate", json!({"team_id": "t-block"})).await);
    assert_eq!(chat_status(&client, &b, &key).await, 200);
    post("/team/block", json!({"team_id": "t-block"})).await;
    assert!(
        refused_within(&client, &b, &key, second).await.is_some(),
        "/team/block on one instance: the other still served the team's key after 1 s"
    );

    // A deleted user: its key goes with it, everywhere.
    let key = key_of(post("/user/new", json!({"user_id": "u-gone"})).await);
    assert_eq!(chat_status(&client, &b, &key).await, 200);
    post("/user/delete", json!({"user_ids": ["u-gone"]})).await;
    assert!(
        refused_within(&client, &b, &key, second).await.is_some(),
        "/user/delete on one instance: the other still served the user's key after 1 s"
    );

    // A blocked end user, cached on the other instance as unknown, is refused there at once.
    let key = key_of(post("/key/generate", json!({})).await);
    assert_eq!(chat_as_end_user(&client, &b, &key, "e-block").await, 200);
    post("/customer/block", json!({"user_ids": ["e-block"]})).await;
    let started = std::time::Instant::now();
    while chat_as_end_user(&client, &b, &key, "e-block").await != 400 {
        assert!(
            started.elapsed() < second,
            "/customer/block on one instance: the other still served the end user after 1 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
