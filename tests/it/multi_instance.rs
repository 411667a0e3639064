//! Several gateway processes sharing one Postgres and one Redis share keys and limits exactly.

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
