//! Keys, budgets and spend against a real Postgres (127.0.0.1:5432, scratch databases), a
//! throwaway Postgres server for outages, LiteLLM's real schema, and SQLite in temp dirs.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use hx_gateway::db::{KeyStore, KeyStoreOptions, TeamRecord};
use hx_gateway::error::ErrorKind;
use hx_gateway::keys::{KeyError, KeyInfo, KeyService, KeyServiceOptions, ListKeysQuery};
use hx_gateway::prices::cost;
use hx_gateway::secret::hash_key;
use hx_gateway::spend::{SpendRecord, SpendWriterOptions};
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection, PgPool};

const PG_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/test";

fn unique(prefix: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}_{}_{}", std::process::id(), &id[..12])
}

// ----- scratch databases -------------------------------------------------------------------

/// A database of its own on the shared server, dropped when the test ends (even on panic).
struct ScratchDb {
    name: String,
    url: String,
}

impl ScratchDb {
    async fn new() -> ScratchDb {
        let name = unique("hx_keys");
        let mut admin = PgConnection::connect(PG_ADMIN)
            .await
            .expect("shared Postgres");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .unwrap();
        let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
        ScratchDb { name, url }
    }

    async fn pool(&self) -> PgPool {
        PgPool::connect(&self.url).await.unwrap()
    }
}

impl Drop for ScratchDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop is synchronous; a thread with its own runtime can still run async sqlx.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                if let Ok(mut admin) = PgConnection::connect(PG_ADMIN).await {
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut admin)
                    .await;
                }
            });
        })
        .join();
    }
}

/// Every column, index and constraint of the public schema, to prove nothing was altered.
async fn public_schema_snapshot(pool: &PgPool) -> Vec<String> {
    let mut out = Vec::new();
    for sql in [
        "SELECT table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable
                || ' ' || COALESCE(column_default, '') || ' ' || ordinal_position
         FROM information_schema.columns WHERE table_schema = 'public'",
        "SELECT indexname || ' ' || indexdef FROM pg_indexes WHERE schemaname = 'public'",
        "SELECT conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint
         WHERE connamespace = 'public'::regnamespace",
        "SELECT 'table ' || tablename FROM pg_tables WHERE schemaname = 'public'",
    ] {
        let rows: Vec<String> = sqlx::query_scalar(sql).fetch_all(pool).await.unwrap();
        out.extend(rows);
    }
    out.sort();
    out
}

// ----- services ----------------------------------------------------------------------------

fn fast_options() -> KeyServiceOptions {
    KeyServiceOptions {
        spend: SpendWriterOptions {
            flush_interval: Duration::from_millis(50),
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(500),
            ..SpendWriterOptions::default()
        },
        ..KeyServiceOptions::default()
    }
}

fn store_options() -> KeyStoreOptions {
    KeyStoreOptions {
        max_connections: 4,
        acquire_timeout: Duration::from_secs(2),
    }
}

async fn pg_store(db: &ScratchDb) -> KeyStore {
    KeyStore::connect_with(
        Some(&db.url),
        Path::new("/nonexistent"),
        true,
        store_options(),
    )
    .await
    .unwrap()
}

async fn sqlite_store(dir: &tempfile::TempDir) -> KeyStore {
    KeyStore::connect_with(None, dir.path(), true, store_options())
        .await
        .unwrap()
}

fn kind(result: Result<impl std::fmt::Debug, hx_gateway::error::ApiError>) -> ErrorKind {
    result.expect_err("expected an error").kind
}

fn key_kind(result: Result<impl std::fmt::Debug, KeyError>) -> ErrorKind {
    hx_gateway::error::ApiError::from(result.expect_err("expected an error")).kind
}

async fn generate(service: &KeyService, body: Value) -> (String, String) {
    let response = service.generate(body).await.unwrap();
    let raw = response["key"].as_str().unwrap().to_string();
    let token = response["token"].as_str().unwrap().to_string();
    (raw, token)
}

// ----- LiteLLM's real schema ---------------------------------------------------------------

#[tokio::test]
async fn litellm_key_in_litellm_schema_is_honoured() {
    let db = ScratchDb::new().await;
    let pool = db.pool().await;
    crate::common::apply_litellm_migrations(&pool).await;

    // A key stored the way LiteLLM stores it.
    let raw = format!("sk-{}", unique("litellm"));
    let expired_raw = format!("sk-{}", unique("expired"));
    for (key, expires) in [(&raw, "1 day"), (&expired_raw, "-1 hour")] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            r#"INSERT INTO "LiteLLM_VerificationToken"
                 (token, key_name, key_alias, models, max_budget, expires, rpm_limit, spend,
                  metadata, user_id)
               VALUES ($1, $2, $3, ARRAY['gpt-4o'], 10.0,
                       (now() AT TIME ZONE 'UTC') + interval '{expires}', 100, 1.5,
                       '{{"rag_namespaces": ["docs"]}}'::jsonb, 'user-1')"#
        )))
        .bind(hash_key(key))
        .bind(format!("sk-...{}", &key[key.len() - 4..]))
        .bind(unique("alias"))
        .execute(&pool)
        .await
        .unwrap();
    }

    let before = public_schema_snapshot(&pool).await;
    let store = pg_store(&db).await;
    store.migrate().await.unwrap(); // a second run is a no-op too
    let after = public_schema_snapshot(&pool).await;
    assert_eq!(before, after, "HX's migrations altered LiteLLM's schema");
    let hx_tables: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM information_schema.tables
         WHERE table_schema = 'hx' AND table_name = 'schema_migrations'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(hx_tables, 1);

    let service = KeyService::new(store, fast_options());
    let info = service.authenticate(&raw).await.unwrap();
    assert_eq!(info.token, hash_key(&raw));
    assert_eq!(info.models, vec!["gpt-4o".to_string()]);
    assert_eq!(info.rpm_limit, Some(100));
    assert_eq!(info.max_budget, Some(10.0));
    assert_eq!(info.user_id.as_deref(), Some("user-1"));
    assert_eq!(info.metadata["rag_namespaces"], json!(["docs"]));
    assert!((info.spend() - 1.5).abs() < 1e-12);
    info.check_model("gpt-4o").unwrap();
    info.check_budget().unwrap();
    assert_eq!(
        key_kind(info.check_model("gpt-4o-mini")),
        ErrorKind::ModelAccessDenied
    );
    assert_eq!(
        kind(service.authenticate(&expired_raw).await),
        ErrorKind::ExpiredKey
    );
    assert_eq!(
        kind(service.authenticate("sk-not-a-key").await),
        ErrorKind::Auth
    );
    // A stored hash presented as a key is not a key.
    assert_eq!(
        kind(service.authenticate(&hash_key(&raw)).await),
        ErrorKind::Auth
    );
    service.flush_spend().await.unwrap();
}

#[tokio::test]
async fn rows_hx_writes_read_back_with_every_litellm_column() {
    let db = ScratchDb::new().await;
    let pool = db.pool().await;
    crate::common::apply_litellm_migrations(&pool).await;
    let service = KeyService::new(pg_store(&db).await, fast_options());
    let alias = unique("alias");
    let (raw, token) = generate(
        &service,
        json!({"models": ["gpt-4o"], "key_alias": alias, "max_budget": 5.0, "duration": "30d",
               "budget_duration": "24h", "rpm_limit": 7, "tpm_limit": 700,
               "max_parallel_requests": 2, "metadata": {"team": "x"}, "user_id": "u1"}),
    )
    .await;
    let info = service.authenticate(&raw).await.unwrap();
    let mut record = SpendRecord::new(&token, "gpt-4o", 0.25);
    record.request_id = unique("req");
    record.prompt_tokens = 10;
    record.completion_tokens = 5;
    record.user_id = info.user_id.clone();
    record.api_base = "https://api.openai.com/v1".into();
    record.custom_llm_provider = "openai".into();
    record.metadata = json!({"user_api_key_alias": alias});
    service.record_spend(record.clone());
    service.flush_spend().await.unwrap();

    // `SELECT *` decodes, and LiteLLM's own columns hold their defaults.
    let key_row: Value = sqlx::query_scalar(
        r#"SELECT row_to_json(t) FROM (SELECT * FROM "LiteLLM_VerificationToken"
           WHERE token = $1) t"#,
    )
    .bind(&token)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(key_row["token"], json!(token));
    assert_eq!(
        key_row["key_name"],
        json!(format!("sk-...{}", &raw[raw.len() - 4..]))
    );
    assert_eq!(key_row["key_alias"], json!(alias));
    assert_eq!(key_row["models"], json!(["gpt-4o"]));
    assert_eq!(key_row["max_budget"].as_f64(), Some(5.0));
    assert_eq!(key_row["rpm_limit"], json!(7));
    assert_eq!(key_row["tpm_limit"], json!(700));
    assert_eq!(key_row["max_parallel_requests"], json!(2));
    assert_eq!(key_row["metadata"], json!({"team": "x"}));
    assert_eq!(key_row["budget_duration"], json!("24h"));
    assert_eq!(key_row["user_id"], json!("u1"));
    assert_eq!(key_row["blocked"], json!(false));
    assert_eq!(key_row["spend"].as_f64(), Some(0.25));
    assert_eq!(key_row["total_spend"].as_f64(), Some(0.25));
    assert_eq!(key_row["aliases"], json!({}));
    assert_eq!(key_row["soft_budget_cooldown"], json!(false));
    assert!(key_row["expires"].is_string());
    assert!(key_row["budget_reset_at"].is_string());
    assert!(key_row["created_at"].is_string());
    // Every NOT NULL column of LiteLLM's table has a value.
    let not_null: Vec<String> = sqlx::query_scalar(
        "SELECT column_name::text FROM information_schema.columns
         WHERE table_name = 'LiteLLM_VerificationToken' AND is_nullable = 'NO'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(not_null.len() > 5);
    for column in &not_null {
        assert!(!key_row[column].is_null(), "{column} is null");
    }

    let log: Value = sqlx::query_scalar(
        r#"SELECT row_to_json(t) FROM (SELECT * FROM "LiteLLM_SpendLogs"
           WHERE request_id = $1) t"#,
    )
    .bind(&record.request_id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(log["api_key"], json!(token));
    assert_eq!(log["spend"].as_f64(), Some(0.25));
    assert_eq!(log["prompt_tokens"], json!(10));
    assert_eq!(log["completion_tokens"], json!(5));
    assert_eq!(log["total_tokens"], json!(15));
    assert_eq!(log["model"], json!("gpt-4o"));
    assert_eq!(log["model_group"], json!("gpt-4o"));
    assert_eq!(log["call_type"], json!("acompletion"));
    assert_eq!(log["custom_llm_provider"], json!("openai"));
    assert_eq!(log["user"], json!("u1"));
    assert_eq!(log["status"], json!("success"));
    assert_eq!(log["cache_hit"], json!("False"));
    assert_eq!(log["metadata"], json!({"user_api_key_alias": alias}));
    assert!(log["startTime"].is_string() && log["endTime"].is_string());
    assert_eq!(log["request_tags"], json!([]));
    let not_null: Vec<String> = sqlx::query_scalar(
        "SELECT column_name::text FROM information_schema.columns
         WHERE table_name = 'LiteLLM_SpendLogs' AND is_nullable = 'NO'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    for column in &not_null {
        assert!(!log[column].is_null(), "{column} is null");
    }
}

#[tokio::test]
async fn litellm_migrates_on_top_of_tables_hx_created() {
    // The rollback path: HX made the tables on an empty database; LiteLLM's full migration
    // history must still apply, and LiteLLM's schema must then hold HX's rows.
    let db = ScratchDb::new().await;
    let service = KeyService::new(pg_store(&db).await, fast_options());
    let (raw, token) = generate(&service, json!({"models": ["gpt-4o"]})).await;
    let pool = db.pool().await;
    crate::common::apply_litellm_migrations(&pool).await;
    let spend_col: Option<String> = sqlx::query_scalar(
        "SELECT column_name::text FROM information_schema.columns
         WHERE table_name = 'LiteLLM_VerificationToken' AND column_name = 'total_spend'",
    )
    .fetch_optional(&pool)
    .await
    .unwrap();
    assert!(
        spend_col.is_some(),
        "LiteLLM's later columns were added on top"
    );
    let found: String =
        sqlx::query_scalar(r#"SELECT token FROM "LiteLLM_VerificationToken" WHERE token = $1"#)
            .bind(&token)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(found, hash_key(&raw));
}

#[tokio::test]
async fn migrations_are_idempotent_and_safe_in_parallel() {
    let db = ScratchDb::new().await;
    let url = db.url.clone();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            KeyStore::connect_with(Some(&url), Path::new("/nonexistent"), true, store_options())
                .await
                .map(|_| ())
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let pool = db.pool().await;
    let versions: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM hx.schema_migrations ORDER BY applied_at, version")
            .fetch_all(&pool)
            .await
            .unwrap();
    let expected = hx_gateway::db::migrations::versions();
    assert!(versions.len() >= 3, "{versions:?}");
    assert_eq!(versions, expected, "each migration applied once, in order");
    let sqlx_table: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM information_schema.tables WHERE table_name = '_sqlx_migrations'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(sqlx_table, 0);
    for table in [
        "LiteLLM_VerificationToken",
        "LiteLLM_SpendLogs",
        "LiteLLM_TeamTable",
        "LiteLLM_UserTable",
    ] {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM information_schema.tables
             WHERE table_schema = 'public' AND table_name = $1",
        )
        .bind(table)
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(n, 1, "{table}");
    }
    // Types as Prisma makes them.
    let types: Vec<(String, String)> = sqlx::query_as(
        "SELECT column_name::text, udt_name::text FROM information_schema.columns
         WHERE table_name = 'LiteLLM_VerificationToken'
           AND column_name IN ('spend', 'rpm_limit', 'max_parallel_requests', 'models',
                               'metadata', 'expires', 'blocked')
         ORDER BY column_name",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let expected = [
        ("blocked", "bool"),
        ("expires", "timestamp"),
        ("max_parallel_requests", "int4"),
        ("metadata", "jsonb"),
        ("models", "_text"),
        ("rpm_limit", "int8"),
        ("spend", "float8"),
    ];
    let types: Vec<(&str, &str)> = types
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    assert_eq!(types, expected);

    // Without migrations, an empty database has no tables and a lookup is a 503, not a panic.
    let empty = ScratchDb::new().await;
    let store = KeyStore::connect_with(Some(&empty.url), Path::new("/x"), false, store_options())
        .await
        .unwrap();
    let service = KeyService::new(store, fast_options());
    assert_eq!(
        kind(service.authenticate("sk-anything").await),
        ErrorKind::Unavailable
    );

    // SQLite: twice on the same file.
    let dir = tempfile::tempdir().unwrap();
    sqlite_store(&dir).await;
    let store = sqlite_store(&dir).await;
    assert!(dir.path().join("hx.sqlite").is_file());
    let (n, distinct): (i64, i64) =
        sqlx::query_as("SELECT COUNT(*), COUNT(DISTINCT version) FROM hx_schema_migrations")
            .fetch_one(store.sqlite_pool().unwrap())
            .await
            .unwrap();
    assert!(n >= 3);
    assert_eq!(n, distinct, "each migration applied once");
    assert!(
        KeyStore::connect(Some("mysql://x"), dir.path(), true)
            .await
            .is_err()
    );
}

// ----- key operations, both backends -------------------------------------------------------

async fn key_operations(service: &KeyService) {
    let alias = unique("alias");
    let user = unique("user");
    let response = service
        .generate(json!({
            "models": ["gpt-4o", "gpt-4o-mini"], "duration": "30d", "key_alias": alias,
            "max_budget": 10.0, "budget_duration": "30d", "rpm_limit": 60, "tpm_limit": 6000,
            "max_parallel_requests": 3, "metadata": {"rag_namespaces": ["docs"]},
            "user_id": user, "team_id": null
        }))
        .await
        .unwrap();
    let raw = response["key"].as_str().unwrap().to_string();
    let token = response["token"].as_str().unwrap().to_string();
    assert!(raw.starts_with("sk-") && raw.len() >= 25);
    assert_eq!(token, hash_key(&raw));
    assert_eq!(response["token_id"], json!(token));
    assert_eq!(
        response["key_name"],
        json!(format!("sk-...{}", &raw[raw.len() - 4..]))
    );
    assert_eq!(response["models"], json!(["gpt-4o", "gpt-4o-mini"]));
    assert_eq!(response["key_alias"], json!(alias));
    assert_eq!(response["max_budget"], json!(10.0));
    assert_eq!(response["rpm_limit"], json!(60));
    assert_eq!(response["tpm_limit"], json!(6000));
    assert_eq!(response["max_parallel_requests"], json!(3));
    assert_eq!(response["user_id"], json!(user));
    assert_eq!(response["spend"], json!(0.0));
    let expires =
        chrono::DateTime::parse_from_rfc3339(response["expires"].as_str().unwrap()).unwrap();
    let days = (expires.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_hours();
    assert!((29 * 24..=30 * 24).contains(&days), "{days}");
    assert!(response["budget_reset_at"].is_string());

    // Validation: 400 with the field named.
    for (body, field) in [
        (json!({"models": "gpt-4o"}), "models"),
        (json!({"duration": "soon"}), "duration"),
        (json!({"budget_duration": "1y"}), "budget_duration"),
        (json!({"max_budget": -1.0}), "max_budget"),
        (json!({"rpm_limit": -5}), "rpm_limit"),
        (json!({"rpm_limit": "many"}), "rpm_limit"),
        (json!({"key": "no-prefix"}), "key"),
        (json!({"key_alias": alias}), "key_alias"),
        (json!({"key": raw}), "key"),
        (json!({"metadata": [1]}), "metadata"),
        (json!("not an object"), "body"),
    ] {
        let error = service
            .generate(body.clone())
            .await
            .expect_err(&body.to_string());
        assert_eq!(error.kind, ErrorKind::InvalidRequest, "{body}");
        assert_eq!(error.param.as_deref(), Some(field), "{body}");
    }

    // Caller-chosen key.
    let chosen = format!("sk-{}", unique("chosen"));
    let (raw2, token2) = generate(service, json!({"key": chosen, "user_id": user})).await;
    assert_eq!(raw2, chosen);
    service.authenticate(&chosen).await.unwrap();

    // Authenticate and the enforcement data.
    let info = service.authenticate(&raw).await.unwrap();
    assert_eq!(info.key_alias.as_deref(), Some(alias.as_str()));
    assert_eq!(info.metadata["rag_namespaces"], json!(["docs"]));
    assert_eq!(info.tpm_limit, Some(6000));
    assert_eq!(info.max_parallel_requests, Some(3));
    info.check_model("gpt-4o-mini").unwrap();
    assert_eq!(
        key_kind(info.check_model("claude-3-haiku")),
        ErrorKind::ModelAccessDenied
    );

    // Info by key and by hash; the raw key never comes back.
    for key in [raw.as_str(), token.as_str()] {
        let info = service.info(key).await.unwrap();
        assert_eq!(info["key"], json!(token));
        assert_eq!(info["info"]["key_alias"], json!(alias));
        assert!(info["info"].get("token").is_none());
        assert!(!info.to_string().contains(&raw));
    }
    assert_eq!(kind(service.info("sk-unknown").await), ErrorKind::NotFound);

    // Update: set, clear, validate.
    let updated = service
        .update(
            json!({"key": raw, "models": ["claude-3-haiku"], "max_budget": null,
                       "rpm_limit": 5, "metadata": {"a": 1}}),
        )
        .await
        .unwrap();
    assert_eq!(updated["key"], json!(token));
    assert_eq!(updated["models"], json!(["claude-3-haiku"]));
    assert_eq!(updated["max_budget"], Value::Null);
    assert_eq!(updated["rpm_limit"], json!(5));
    assert_eq!(
        updated["tpm_limit"],
        json!(6000),
        "absent fields are left alone"
    );
    let info = service.authenticate(&raw).await.unwrap();
    info.check_model("claude-3-haiku").unwrap();
    assert_eq!(
        key_kind(info.check_model("gpt-4o")),
        ErrorKind::ModelAccessDenied
    );
    assert_eq!(info.metadata, json!({"a": 1}));
    let error = service
        .update(json!({"key": raw, "duration": "x"}))
        .await
        .unwrap_err();
    assert_eq!(error.param.as_deref(), Some("duration"));
    let error = service.update(json!({"models": []})).await.unwrap_err();
    assert_eq!(error.param.as_deref(), Some("key"));
    assert_eq!(
        kind(
            service
                .update(json!({"key": "sk-unknown", "rpm_limit": 1}))
                .await
        ),
        ErrorKind::NotFound
    );
    let updated = service
        .update(json!({"key": token, "duration": null}))
        .await
        .unwrap();
    assert_eq!(updated["expires"], Value::Null);

    // List with pagination and filters.
    let listed = service
        .list(&ListKeysQuery {
            user_id: Some(user.clone()),
            size: Some(1),
            ..ListKeysQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(listed["total_count"], json!(2));
    assert_eq!(listed["total_pages"], json!(2));
    assert_eq!(listed["current_page"], json!(1));
    assert_eq!(listed["keys"].as_array().unwrap().len(), 1);
    let page2 = service
        .list(&ListKeysQuery {
            user_id: Some(user.clone()),
            size: Some(1),
            page: Some(2),
            ..ListKeysQuery::default()
        })
        .await
        .unwrap();
    let mut all = vec![listed["keys"][0].clone(), page2["keys"][0].clone()];
    all.sort_by_key(|v| v.to_string());
    let mut expected = vec![json!(token), json!(token2)];
    expected.sort_by_key(|v| v.to_string());
    assert_eq!(all, expected);
    let full = service
        .list(&ListKeysQuery {
            key_alias: Some(alias.clone()),
            return_full_object: Some(true),
            ..ListKeysQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(full["keys"][0]["token"], json!(token));
    assert_eq!(
        kind(
            service
                .list(&ListKeysQuery {
                    size: Some(0),
                    ..Default::default()
                })
                .await
        ),
        ErrorKind::InvalidRequest
    );

    // Block and unblock take effect at once on this instance.
    let blocked = service.block(json!({"key": raw})).await.unwrap();
    assert_eq!(blocked["blocked"], json!(true));
    assert_eq!(kind(service.authenticate(&raw).await), ErrorKind::Auth);
    service.unblock(json!({"key": token})).await.unwrap();
    service.authenticate(&raw).await.unwrap();
    assert_eq!(
        kind(service.block(json!({"key": "sk-nope"})).await),
        ErrorKind::NotFound
    );

    // Delete: unknown is 404 and deletes nothing; by key; by alias.
    assert_eq!(
        kind(
            service
                .delete(json!({"keys": [raw2.clone(), "sk-nope"]}))
                .await
        ),
        ErrorKind::NotFound
    );
    service.authenticate(&raw2).await.unwrap();
    assert_eq!(
        kind(service.delete(json!({})).await),
        ErrorKind::InvalidRequest
    );
    let deleted = service.delete(json!({"keys": [raw2]})).await.unwrap();
    assert_eq!(deleted["deleted_keys"], json!([raw2]));
    assert_eq!(kind(service.authenticate(&raw2).await), ErrorKind::Auth);
    let deleted = service
        .delete(json!({"key_aliases": [alias]}))
        .await
        .unwrap();
    assert_eq!(deleted["deleted_keys"], json!([alias]));
    assert_eq!(kind(service.authenticate(&raw).await), ErrorKind::Auth);
    assert_eq!(kind(service.info(&token).await), ErrorKind::NotFound);
}

#[tokio::test]
async fn key_operations_postgres() {
    let db = ScratchDb::new().await;
    key_operations(&KeyService::new(pg_store(&db).await, fast_options())).await;
}

#[tokio::test]
async fn key_operations_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    key_operations(&KeyService::new(sqlite_store(&dir).await, fast_options())).await;
}

// ----- enforcement ---------------------------------------------------------------------------

async fn enforcement(service: &KeyService) {
    // Budget: spend recorded is seen by the next check at once, before any flush.
    let (raw, token) = generate(service, json!({"max_budget": 0.01})).await;
    let info = service.authenticate(&raw).await.unwrap();
    info.check_budget().unwrap();
    service.record_spend(SpendRecord::new(&token, "gpt-4o", 0.006));
    info.check_budget().unwrap();
    service.record_spend(SpendRecord::new(&token, "gpt-4o", 0.006));
    let error = hx_gateway::error::ApiError::from(info.check_budget().unwrap_err());
    assert_eq!(error.kind, ErrorKind::BudgetExceeded);
    assert_eq!(error.status().as_u16(), 400);
    service.flush_spend().await.unwrap();
    // And after a reload from the database, too (exactly at the budget counts as spent).
    service.invalidate(&token).await;
    let info = service.authenticate(&raw).await.unwrap();
    assert!((info.spend() - 0.012).abs() < 1e-12, "{}", info.spend());
    assert_eq!(key_kind(info.check_budget()), ErrorKind::BudgetExceeded);
    let (raw_exact, token_exact) = generate(service, json!({"max_budget": 0.5})).await;
    service.record_spend(SpendRecord::new(&token_exact, "m", 0.5));
    let info = service.authenticate(&raw_exact).await.unwrap();
    assert_eq!(key_kind(info.check_budget()), ErrorKind::BudgetExceeded);

    // Expiry.
    let (raw, _) = generate(service, json!({"duration": "3s"})).await;
    service.authenticate(&raw).await.unwrap();
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let error = service.authenticate(&raw).await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::ExpiredKey);
    assert_eq!(error.body_json()["error"]["type"], "expired_key");

    // Team limits: models when the key has none, budget against team spend, limits, block.
    let team_id = unique("team");
    let mut team = TeamRecord::new(&team_id);
    team.models = vec!["team-model".into()];
    team.max_budget = Some(1.0);
    team.rpm_limit = Some(11);
    team.tpm_limit = Some(1100);
    service.store().upsert_team(&team).await.unwrap();
    let (raw_a, token_a) = generate(service, json!({"team_id": team_id})).await;
    let (raw_b, _) = generate(service, json!({"team_id": team_id, "rpm_limit": 3})).await;
    let a = service.authenticate(&raw_a).await.unwrap();
    a.check_model("team-model").unwrap();
    assert_eq!(
        key_kind(a.check_model("other")),
        ErrorKind::ModelAccessDenied
    );
    assert_eq!(a.team.as_ref().unwrap().rpm_limit, Some(11));
    assert_eq!(a.effective_rpm_limit(), Some(11));
    assert_eq!(a.effective_tpm_limit(), Some(1100));
    let b = service.authenticate(&raw_b).await.unwrap();
    assert_eq!(b.effective_rpm_limit(), Some(3));
    // Spend of key A counts against the team, so key B is refused too.
    let mut spend = SpendRecord::new(&token_a, "team-model", 1.0);
    spend.team_id = Some(team_id.clone());
    service.record_spend(spend);
    assert_eq!(key_kind(b.check_budget()), ErrorKind::BudgetExceeded);
    service.flush_spend().await.unwrap();
    assert!(
        (service
            .store()
            .get_team(&team_id)
            .await
            .unwrap()
            .unwrap()
            .spend
            - 1.0)
            .abs()
            < 1e-12
    );
    team.blocked = true;
    team.spend = 1.0;
    service.store().upsert_team(&team).await.unwrap();
    service.invalidate(&hash_key(&raw_b)).await;
    assert_eq!(kind(service.authenticate(&raw_b).await), ErrorKind::Auth);
}

#[tokio::test]
async fn enforcement_postgres() {
    let db = ScratchDb::new().await;
    enforcement(&KeyService::new(pg_store(&db).await, fast_options())).await;
}

#[tokio::test]
async fn enforcement_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    enforcement(&KeyService::new(sqlite_store(&dir).await, fast_options())).await;
}

async fn budget_reset(service: &KeyService) {
    let (raw, token) = generate(service, json!({"max_budget": 1.0, "budget_duration": "3s"})).await;
    let first_reset = service.info(&token).await.unwrap()["info"]["budget_reset_at"].clone();
    service.record_spend(SpendRecord::new(&token, "m", 1.5));
    service.flush_spend().await.unwrap();
    let info = service.authenticate(&raw).await.unwrap();
    assert_eq!(key_kind(info.check_budget()), ErrorKind::BudgetExceeded);
    tokio::time::sleep(Duration::from_millis(3100)).await;
    // The cached copy knows its period ended: the lookup reloads and resets.
    let info = service.authenticate(&raw).await.unwrap();
    info.check_budget().unwrap();
    assert_eq!(info.spend(), 0.0);
    let stored = service.store().get_key(&token).await.unwrap().unwrap();
    assert_eq!(stored.spend, 0.0);
    let next_reset = service.info(&token).await.unwrap()["info"]["budget_reset_at"].clone();
    assert!(next_reset.as_str().unwrap() > first_reset.as_str().unwrap());
    // The spend log keeps the history.
    assert_eq!(service.store().spend_log_totals(&token).await.unwrap().0, 1);

    // A team's budget period resets as well.
    let team_id = unique("team");
    let mut team = TeamRecord::new(&team_id);
    team.max_budget = Some(1.0);
    team.spend = 5.0;
    team.budget_duration = Some("1s".into());
    team.budget_reset_at = Some(chrono::Utc::now().naive_utc() - chrono::Duration::seconds(1));
    service.store().upsert_team(&team).await.unwrap();
    let (raw, _) = generate(service, json!({"team_id": team_id})).await;
    let info = service.authenticate(&raw).await.unwrap();
    info.check_budget().unwrap();
    assert_eq!(
        service
            .store()
            .get_team(&team_id)
            .await
            .unwrap()
            .unwrap()
            .spend,
        0.0
    );
}

#[tokio::test]
async fn budget_reset_postgres() {
    let db = ScratchDb::new().await;
    budget_reset(&KeyService::new(pg_store(&db).await, fast_options())).await;
}

#[tokio::test]
async fn budget_reset_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    budget_reset(&KeyService::new(sqlite_store(&dir).await, fast_options())).await;
}

async fn cache_ttl(store: KeyStore) {
    let options = KeyServiceOptions {
        cache_ttl: Duration::from_secs(2),
        ..fast_options()
    };
    let a = KeyService::new(store.clone(), options.clone());
    let b = KeyService::new(store.clone(), options); // another instance on the same database
    let (raw, _) = generate(&a, json!({})).await;
    a.authenticate(&raw).await.unwrap();
    b.block(json!({"key": raw})).await.unwrap();
    // Instance A trusts its cache until the TTL ends, then sees the block.
    a.authenticate(&raw).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(kind(a.authenticate(&raw).await), ErrorKind::Auth);
    b.unblock(json!({"key": raw})).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    a.authenticate(&raw).await.unwrap();
    b.delete(json!({"keys": [raw]})).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(kind(a.authenticate(&raw).await), ErrorKind::Auth);

    // A cached key costs no database round trip: it works with the pool closed.
    let (raw, _) = generate(&a, json!({})).await;
    a.authenticate(&raw).await.unwrap();
    match &store {
        KeyStore::Postgres(_) => store.postgres_pool().unwrap().close().await,
        KeyStore::Sqlite(_) => store.sqlite_pool().unwrap().close().await,
    }
    a.authenticate(&raw).await.unwrap();
    assert_eq!(
        kind(a.authenticate("sk-uncached").await),
        ErrorKind::Unavailable
    );
}

#[tokio::test]
async fn cache_ttl_postgres() {
    let db = ScratchDb::new().await;
    cache_ttl(pg_store(&db).await).await;
}

#[tokio::test]
async fn cache_ttl_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    cache_ttl(sqlite_store(&dir).await).await;
}

// ----- spend -------------------------------------------------------------------------------

async fn spend_burst(service: &KeyService) {
    let user = unique("user");
    let team_id = unique("team");
    service.store().ensure_user(&user).await.unwrap();
    service
        .store()
        .upsert_team(&TeamRecord::new(&team_id))
        .await
        .unwrap();
    let (raw, token) = generate(
        service,
        json!({"user_id": user, "team_id": team_id, "max_budget": 1e9}),
    )
    .await;
    let info: Arc<KeyInfo> = service.authenticate(&raw).await.unwrap();
    let mut expected = 0.0;
    for i in 0..1000u64 {
        let (prompt, completion) = (100 + i * 7, 20 + (i * 13) % 500);
        let amount = cost("gpt-4o-mini", None, prompt, completion);
        assert!(amount > 0.0);
        expected += amount;
        let mut record = SpendRecord::new(&token, "gpt-4o-mini", amount);
        record.prompt_tokens = prompt;
        record.completion_tokens = completion;
        record.user_id = info.user_id.clone();
        record.team_id = info.team_id.clone();
        service.record_spend(record);
    }
    let close = |a: f64| ((a - expected) / expected).abs() <= 1e-9;
    assert!(close(info.spend()), "live {} vs {expected}", info.spend());
    service.flush_spend().await.unwrap();
    let store = service.store();
    let (rows, logged) = store.spend_log_totals(&token).await.unwrap();
    assert_eq!(rows, 1000);
    assert!(close(logged), "logs {logged} vs {expected}");
    let key_spend = store.get_key(&token).await.unwrap().unwrap().spend;
    assert!(close(key_spend), "key {key_spend} vs {expected}");
    let team_spend = store.get_team(&team_id).await.unwrap().unwrap().spend;
    assert!(close(team_spend), "team {team_spend} vs {expected}");
    let user_spend = store.user_spend(&user).await.unwrap().unwrap();
    assert!(close(user_spend), "user {user_spend} vs {expected}");
    // A reload agrees with the live figure (nothing counted twice).
    service.invalidate(&token).await;
    let reloaded = service.authenticate(&raw).await.unwrap();
    assert!(
        close(reloaded.spend()),
        "reloaded {} vs {expected}",
        reloaded.spend()
    );
    // Writing the same request again (a retry after an ambiguous failure) adds nothing.
    let mut again = SpendRecord::new(&token, "gpt-4o-mini", 1.0);
    again.request_id = unique("dup");
    store
        .write_spend(std::slice::from_ref(&again))
        .await
        .unwrap();
    store
        .write_spend(std::slice::from_ref(&again))
        .await
        .unwrap();
    let key_spend = store.get_key(&token).await.unwrap().unwrap().spend;
    assert!(((key_spend - expected - 1.0) / expected).abs() <= 1e-9);
    // A retried batch mixing a written record with a new one counts only the new one.
    let mut fresh = SpendRecord::new(&token, "gpt-4o-mini", 2.0);
    fresh.request_id = unique("fresh");
    let inserted = store.write_spend(&[again, fresh]).await.unwrap();
    assert_eq!(inserted, 1, "only the new record is inserted");
    let key_spend = store.get_key(&token).await.unwrap().unwrap().spend;
    assert!(((key_spend - expected - 3.0) / expected).abs() <= 1e-9);
    let (rows, _) = store.spend_log_totals(&token).await.unwrap();
    assert_eq!(rows, 1002);
}

#[tokio::test]
async fn spend_burst_postgres() {
    let db = ScratchDb::new().await;
    spend_burst(&KeyService::new(pg_store(&db).await, fast_options())).await;
}

#[tokio::test]
async fn spend_burst_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    spend_burst(&KeyService::new(sqlite_store(&dir).await, fast_options())).await;
}

// ----- a throwaway Postgres server for outages ----------------------------------------------

/// A Postgres server of this test alone, on a free port, run as the `postgres` user (initdb
/// and postgres refuse root). Stopped and deleted on drop; the shared server is never touched.
pub(crate) struct ThrowawayPostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
}

impl ThrowawayPostgres {
    pub(crate) fn start() -> ThrowawayPostgres {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("/usr/lib/postgresql")
            .map(|e| e.unwrap().path().join("bin"))
            .find(|p| p.join("initdb").is_file())
            .expect("initdb");
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(status.success());
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let server = ThrowawayPostgres { dir, bin, port };
        server.run(
            "initdb",
            &[
                "-D",
                &server.data(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        );
        server.up();
        server
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn run(&self, program: &str, args: &[&str]) {
        let output = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join(program))
            .args(args)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{program} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    pub(crate) fn up(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("log").display().to_string();
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-o",
                &options,
                "-l",
                &log,
                "-w",
                "start",
            ],
        );
    }

    pub(crate) fn down(&self) {
        self.run("pg_ctl", &["-D", &self.data(), "-m", "fast", "-w", "stop"]);
    }

    pub(crate) fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for ThrowawayPostgres {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["-D", &self.data(), "-m", "immediate", "-w", "stop"])
            .output();
    }
}

#[tokio::test]
async fn spend_and_cached_keys_survive_a_postgres_outage() {
    let server = ThrowawayPostgres::start();
    let store = KeyStore::connect_with(
        Some(&server.url()),
        Path::new("/x"),
        true,
        KeyStoreOptions {
            max_connections: 4,
            acquire_timeout: Duration::from_millis(500),
        },
    )
    .await
    .unwrap();
    let options = KeyServiceOptions {
        cache_ttl: Duration::from_millis(300),
        ..fast_options()
    };
    let service = KeyService::new(store.clone(), options.clone());
    let lenient = KeyService::new(
        store.clone(),
        KeyServiceOptions {
            allow_requests_on_db_unavailable: true,
            ..options
        },
    );
    let (raw, token) = generate(&service, json!({"max_budget": 1e6})).await;
    let (raw_uncached, _) = generate(&service, json!({})).await;
    service.authenticate(&raw).await.unwrap();

    let mut expected = 0.0;
    let mut sent = 0;
    let mut send = |service: &KeyService, n: usize| {
        for i in 0..n {
            let amount = cost("claude-3-5-sonnet", None, 1000 + i as u64, 200);
            expected += amount;
            sent += 1;
            service.record_spend(SpendRecord::new(&token, "claude-3-5-sonnet", amount));
        }
    };
    send(&service, 300);
    service.flush_spend().await.unwrap();

    server.down();
    // During the outage: more traffic; the cached key keeps working past its TTL.
    for _ in 0..4 {
        let info = service.authenticate(&raw).await.unwrap();
        info.check_budget().unwrap();
        send(&service, 100);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let error = service.authenticate(&raw_uncached).await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::Unavailable);
    assert_eq!(error.status().as_u16(), 503);
    let through = lenient.authenticate(&raw_uncached).await.unwrap();
    assert!(through.unverified);
    // The flush cannot finish while the database is down.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), service.flush_spend())
            .await
            .is_err()
    );

    server.up();
    send(&service, 300);
    tokio::time::timeout(Duration::from_secs(30), service.flush_spend())
        .await
        .expect("flush after the outage")
        .unwrap();
    let (rows, logged) = store.spend_log_totals(&token).await.unwrap();
    assert_eq!(rows, sent);
    let close = |a: f64| ((a - expected) / expected).abs() <= 1e-9;
    assert!(close(logged), "{logged} vs {expected}");
    let key_spend = store.get_key(&token).await.unwrap().unwrap().spend;
    assert!(close(key_spend), "{key_spend} vs {expected}");
}

fn backlog_options(max_pending: usize) -> KeyServiceOptions {
    KeyServiceOptions {
        spend: SpendWriterOptions {
            flush_interval: Duration::from_millis(300),
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(200),
            max_pending,
            ..SpendWriterOptions::default()
        },
        ..KeyServiceOptions::default()
    }
}

/// Records produced faster than the database takes them: requests wait for the writer once
/// `max_pending` records are pending, and go on as soon as they are written.
#[tokio::test]
async fn a_full_spend_backlog_makes_requests_wait_for_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let service = KeyService::new(sqlite_store(&dir).await, backlog_options(100));
    let writer = service.spend_writer().clone();
    writer.wait_for_room().await; // empty: at once
    for _ in 0..300 {
        service.record_spend(SpendRecord::new("backlog-key", "gpt-4o-mini", 0.001));
    }
    assert_eq!(writer.pending(), 300);
    // The batch waits for its interval (300 ms), so the backlog is still full here.
    let waited = tokio::time::timeout(Duration::from_millis(50), writer.wait_for_room()).await;
    assert!(
        waited.is_err(),
        "a request must wait while 300 > 100 records are pending"
    );
    tokio::time::timeout(Duration::from_secs(10), writer.wait_for_room())
        .await
        .expect("room once the writer wrote the batch");
    assert!(writer.pending() < 100, "pending {}", writer.pending());
    service.flush_spend().await.unwrap();
    let (rows, _) = service
        .store()
        .spend_log_totals("backlog-key")
        .await
        .unwrap();
    assert_eq!(rows, 300, "every record written");
}

/// While the database refuses the writes, waiting for it would stop the gateway: requests go
/// on and the records stay pending.
#[tokio::test]
async fn a_failing_database_never_makes_requests_wait() {
    let db = ScratchDb::new().await;
    let service = KeyService::new(pg_store(&db).await, backlog_options(100));
    sqlx::raw_sql(r#"DROP TABLE "LiteLLM_SpendLogs""#)
        .execute(&db.pool().await)
        .await
        .unwrap();
    let writer = service.spend_writer().clone();
    for _ in 0..300 {
        service.record_spend(SpendRecord::new("outage-key", "gpt-4o-mini", 0.001));
    }
    tokio::time::timeout(Duration::from_secs(5), writer.wait_for_room())
        .await
        .expect("no waiting once the writes fail");
    assert_eq!(writer.pending(), 300, "the records are kept, not dropped");
}
