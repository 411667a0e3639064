//! Nothing accepted is lost: spend pending at SIGTERM reaches the database before exit.

use serde_json::{Value, json};
use sqlx::Connection;

use crate::common::*;

#[tokio::test]
async fn sigterm_with_spend_pending_loses_none() {
    let db = ScratchDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        "model_list:\n  - model_name: mock\n    litellm_params: {model: openai/mock, mock_response: some answer words}\n    model_info: {input_cost_per_token: 0.001, output_cost_per_token: 0.002}\n",
    )
    .unwrap();
    let env = vec![
        ("LITELLM_MASTER_KEY", MASTER.to_string()),
        ("DATABASE_URL", db.url()),
        ("HX_DATA_DIR", dir.path().display().to_string()),
    ];
    let mut gw = GatewayProcess::spawn(&config, &env, &[]).await;
    let client = reqwest::Client::new();
    let generated: Value = client
        .post(gw.url("/key/generate"))
        .bearer_auth(MASTER)
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = generated["key"].as_str().unwrap().to_string();
    let mut expected = 0.0;
    let n = 40;
    for _ in 0..n {
        let r = client
            .post(gw.url("/v1/chat/completions"))
            .bearer_auth(&key)
            .json(&json!({"model": "mock", "messages": [{"role": "user", "content": "hello"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        expected += r.headers()["x-litellm-response-cost"]
            .to_str()
            .unwrap()
            .parse::<f64>()
            .unwrap();
    }
    // Straight away, while the last batch is still waiting for its flush interval.
    let pid = gw.child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = tokio::task::spawn_blocking(move || gw.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "exits 0 after SIGTERM: {status:?}");

    let mut conn = sqlx::PgConnection::connect(&db.url()).await.unwrap();
    let hash = hx_gateway::secret::hash_key(&key);
    let (rows, total): (i64, f64) = sqlx::query_as(
        r#"SELECT COUNT(*), COALESCE(SUM(spend), 0) FROM "LiteLLM_SpendLogs" WHERE api_key = $1"#,
    )
    .bind(&hash)
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(rows, n, "every request has its spend-log row");
    assert!(
        (total - expected).abs() <= 1e-9 * expected,
        "{total} vs {expected}"
    );
    let (key_spend,): (f64,) =
        sqlx::query_as(r#"SELECT spend FROM "LiteLLM_VerificationToken" WHERE token = $1"#)
            .bind(&hash)
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert!(
        (key_spend - expected).abs() <= 1e-9 * expected,
        "{key_spend} vs {expected}"
    );
}
