//! `KeyStore`: the rows of LiteLLM's key, team, user and spend-log tables, in Postgres or in an
//! embedded SQLite file, behind one enum-dispatched interface.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use chrono::NaiveDateTime;
use serde_json::Value;
use sqlx::postgres::{PgPoolOptions, PgRow};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow};
use sqlx::{PgPool, Row, SqlitePool};

use super::error::KeyError;
use super::schema;
use crate::spend::SpendRecord;

/// One row of `"LiteLLM_VerificationToken"` (the columns HX reads and writes).
#[derive(Debug, Clone, PartialEq)]
pub struct KeyRecord {
    /// Lowercase hex SHA-256 of the key.
    pub token: String,
    pub key_name: Option<String>,
    pub key_alias: Option<String>,
    pub spend: f64,
    pub max_budget: Option<f64>,
    pub budget_duration: Option<String>,
    pub budget_reset_at: Option<NaiveDateTime>,
    pub expires: Option<NaiveDateTime>,
    /// Empty means every model.
    pub models: Vec<String>,
    pub rpm_limit: Option<i64>,
    pub tpm_limit: Option<i64>,
    pub max_parallel_requests: Option<i32>,
    pub metadata: Value,
    pub blocked: bool,
    pub user_id: Option<String>,
    pub team_id: Option<String>,
    pub created_at: Option<NaiveDateTime>,
    pub updated_at: Option<NaiveDateTime>,
}

/// One row of `"LiteLLM_TeamTable"` (the columns that bind a team's keys).
#[derive(Debug, Clone, PartialEq)]
pub struct TeamRecord {
    pub team_id: String,
    pub team_alias: Option<String>,
    pub models: Vec<String>,
    pub max_budget: Option<f64>,
    pub spend: f64,
    pub rpm_limit: Option<i64>,
    pub tpm_limit: Option<i64>,
    pub max_parallel_requests: Option<i32>,
    pub budget_duration: Option<String>,
    pub budget_reset_at: Option<NaiveDateTime>,
    pub blocked: bool,
    pub metadata: Value,
}

impl TeamRecord {
    /// A team with no limits, for callers that fill in only what they need.
    pub fn new(team_id: impl Into<String>) -> Self {
        TeamRecord {
            team_id: team_id.into(),
            team_alias: None,
            models: Vec::new(),
            max_budget: None,
            spend: 0.0,
            rpm_limit: None,
            tpm_limit: None,
            max_parallel_requests: None,
            budget_duration: None,
            budget_reset_at: None,
            blocked: false,
            metadata: Value::Object(Default::default()),
        }
    }
}

/// Connection settings beyond the URL.
#[derive(Debug, Clone)]
pub struct KeyStoreOptions {
    /// Most connections in the pool.
    pub max_connections: u32,
    /// How long a query waits for a connection before the store counts as unavailable. Kept
    /// short so a database outage turns into a quick 503 (or a stale cached key), not a hang.
    pub acquire_timeout: Duration,
}

impl Default for KeyStoreOptions {
    fn default() -> Self {
        KeyStoreOptions {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(3),
        }
    }
}

/// Optional LiteLLM columns, present or not depending on the LiteLLM version that made the
/// tables; looked up once at connect.
#[derive(Debug, Default)]
struct Columns {
    spend_logs_status: bool,
    key_total_spend: bool,
}

/// The Postgres backend.
#[derive(Clone, Debug)]
pub struct PostgresStore {
    pool: PgPool,
    columns: Arc<Columns>,
}

/// The embedded SQLite backend.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
}

/// The key store: Postgres when a database URL is configured, else a SQLite file.
#[derive(Clone, Debug)]
pub enum KeyStore {
    Postgres(PostgresStore),
    Sqlite(SqliteStore),
}

const KEY_COLUMNS: &str = r#"token, key_name, key_alias, spend, max_budget, budget_duration,
    budget_reset_at, expires, models, rpm_limit, tpm_limit, max_parallel_requests, metadata,
    blocked, user_id, team_id, created_at, updated_at"#;

const TEAM_COLUMNS: &str = r#"team_id, team_alias, models, max_budget, spend, rpm_limit,
    tpm_limit, max_parallel_requests, budget_duration, budget_reset_at, blocked, metadata"#;

impl KeyStore {
    /// Opens the store: Postgres for a `postgresql://` or `postgres://` URL, else the SQLite
    /// file `<data_dir>/hx.sqlite` (directory created if missing). Runs the migrations first
    /// when `migrate` is true.
    pub async fn connect(
        database_url: Option<&str>,
        data_dir: &Path,
        migrate: bool,
    ) -> Result<KeyStore, KeyError> {
        Self::connect_with(database_url, data_dir, migrate, KeyStoreOptions::default()).await
    }

    /// [`KeyStore::connect`] with explicit pool settings.
    pub async fn connect_with(
        database_url: Option<&str>,
        data_dir: &Path,
        migrate: bool,
        options: KeyStoreOptions,
    ) -> Result<KeyStore, KeyError> {
        let store = match database_url.map(str::trim).filter(|u| !u.is_empty()) {
            Some(url) => {
                if !(url.starts_with("postgresql://") || url.starts_with("postgres://")) {
                    return Err(KeyError::Config(format!(
                        "database URL must start with postgresql:// or postgres://, got {}",
                        crate::secret::redact_url(url)
                    )));
                }
                let pool = PgPoolOptions::new()
                    .max_connections(options.max_connections)
                    .acquire_timeout(options.acquire_timeout)
                    .connect(url)
                    .await
                    .map_err(|e| {
                        KeyError::Unavailable(format!(
                            "cannot connect to {}: {}",
                            crate::secret::redact_url(url),
                            crate::secret::scrub(&e.to_string(), &[url])
                        ))
                    })?;
                KeyStore::Postgres(PostgresStore {
                    pool,
                    columns: Arc::default(),
                })
            }
            None => {
                std::fs::create_dir_all(data_dir).map_err(|e| {
                    KeyError::Config(format!("cannot create {}: {e}", data_dir.display()))
                })?;
                let file = data_dir.join("hx.sqlite");
                let connect = SqliteConnectOptions::new()
                    .filename(&file)
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .busy_timeout(Duration::from_secs(10));
                let pool = SqlitePoolOptions::new()
                    .max_connections(options.max_connections.max(1))
                    .acquire_timeout(options.acquire_timeout)
                    .connect_with(connect)
                    .await
                    .map_err(|e| {
                        KeyError::Unavailable(format!("cannot open {}: {e}", file.display()))
                    })?;
                KeyStore::Sqlite(SqliteStore { pool })
            }
        };
        if migrate {
            store.migrate().await?;
        }
        store.refresh_columns().await
    }

    /// Runs the pending migrations (what `hx-gateway migrate` does).
    pub async fn migrate(&self) -> Result<(), KeyError> {
        match self {
            KeyStore::Postgres(pg) => schema::migrate_postgres(&pg.pool).await,
            KeyStore::Sqlite(lite) => schema::migrate_sqlite(&lite.pool).await,
        }
    }

    /// "postgres" or "sqlite", for logs and health output.
    pub fn backend_name(&self) -> &'static str {
        match self {
            KeyStore::Postgres(_) => "postgres",
            KeyStore::Sqlite(_) => "sqlite",
        }
    }

    /// The Postgres pool, for tests and health checks.
    pub fn postgres_pool(&self) -> Option<&PgPool> {
        match self {
            KeyStore::Postgres(pg) => Some(&pg.pool),
            KeyStore::Sqlite(_) => None,
        }
    }

    /// The SQLite pool, for tests and health checks.
    pub fn sqlite_pool(&self) -> Option<&SqlitePool> {
        match self {
            KeyStore::Sqlite(lite) => Some(&lite.pool),
            KeyStore::Postgres(_) => None,
        }
    }

    /// A cheap query that tells whether the database answers.
    pub async fn ping(&self) -> Result<(), KeyError> {
        match self {
            KeyStore::Postgres(pg) => sqlx::query("SELECT 1").execute(&pg.pool).await?,
            KeyStore::Sqlite(lite) => {
                sqlx::query("SELECT 1").execute(&lite.pool).await?;
                return Ok(());
            }
        };
        Ok(())
    }

    /// Looks up which optional LiteLLM columns exist (they depend on LiteLLM's version).
    async fn refresh_columns(self) -> Result<KeyStore, KeyError> {
        match self {
            KeyStore::Postgres(pg) => {
                let rows = sqlx::query(
                    "SELECT table_name::text, column_name::text FROM information_schema.columns
                     WHERE table_schema = current_schema()
                       AND table_name IN ('LiteLLM_SpendLogs', 'LiteLLM_VerificationToken')",
                )
                .fetch_all(&pg.pool)
                .await?;
                let mut present = HashSet::new();
                for row in rows {
                    let table: String = row.try_get(0)?;
                    let column: String = row.try_get(1)?;
                    present.insert((table, column));
                }
                let has = |t: &str, c: &str| present.contains(&(t.to_string(), c.to_string()));
                let columns = Columns {
                    spend_logs_status: has("LiteLLM_SpendLogs", "status"),
                    key_total_spend: has("LiteLLM_VerificationToken", "total_spend"),
                };
                Ok(KeyStore::Postgres(PostgresStore {
                    pool: pg.pool,
                    columns: Arc::new(columns),
                }))
            }
            sqlite => Ok(sqlite),
        }
    }

    /// The key row with this token hash.
    pub async fn get_key(&self, token: &str) -> Result<Option<KeyRecord>, KeyError> {
        match self {
            KeyStore::Postgres(pg) => {
                let sql = format!(
                    r#"SELECT {KEY_COLUMNS} FROM "LiteLLM_VerificationToken" WHERE token = $1"#
                );
                let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(token)
                    .fetch_optional(&pg.pool)
                    .await?;
                row.map(|r| pg_key(&r)).transpose()
            }
            KeyStore::Sqlite(lite) => {
                let sql = format!(
                    r#"SELECT {KEY_COLUMNS} FROM "LiteLLM_VerificationToken" WHERE token = $1"#
                );
                let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(token)
                    .fetch_optional(&lite.pool)
                    .await?;
                row.map(|r| sqlite_key(&r)).transpose()
            }
        }
    }

    /// Token hashes of the keys with this alias.
    pub async fn tokens_by_alias(&self, alias: &str) -> Result<Vec<String>, KeyError> {
        let sql = r#"SELECT token FROM "LiteLLM_VerificationToken" WHERE key_alias = $1"#;
        let tokens = match self {
            KeyStore::Postgres(pg) => {
                sqlx::query_scalar(sql)
                    .bind(alias)
                    .fetch_all(&pg.pool)
                    .await?
            }
            KeyStore::Sqlite(lite) => {
                sqlx::query_scalar(sql)
                    .bind(alias)
                    .fetch_all(&lite.pool)
                    .await?
            }
        };
        Ok(tokens)
    }

    /// Inserts a new key. `Ok(false)` when a key with that token already exists.
    pub async fn insert_key(&self, key: &KeyRecord) -> Result<bool, KeyError> {
        let sql = format!(
            r#"INSERT INTO "LiteLLM_VerificationToken" ({KEY_COLUMNS})
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
                       $17, $18)
               ON CONFLICT (token) DO NOTHING"#
        );
        let inserted = match self {
            KeyStore::Postgres(pg) => sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(&key.token)
                .bind(&key.key_name)
                .bind(&key.key_alias)
                .bind(key.spend)
                .bind(key.max_budget)
                .bind(&key.budget_duration)
                .bind(key.budget_reset_at)
                .bind(key.expires)
                .bind(&key.models)
                .bind(key.rpm_limit)
                .bind(key.tpm_limit)
                .bind(key.max_parallel_requests)
                .bind(&key.metadata)
                .bind(key.blocked)
                .bind(&key.user_id)
                .bind(&key.team_id)
                .bind(key.created_at)
                .bind(key.updated_at)
                .execute(&pg.pool)
                .await?
                .rows_affected(),
            KeyStore::Sqlite(lite) => sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(&key.token)
                .bind(&key.key_name)
                .bind(&key.key_alias)
                .bind(key.spend)
                .bind(key.max_budget)
                .bind(&key.budget_duration)
                .bind(key.budget_reset_at)
                .bind(key.expires)
                .bind(json_text(&key.models))
                .bind(key.rpm_limit)
                .bind(key.tpm_limit)
                .bind(key.max_parallel_requests)
                .bind(key.metadata.to_string())
                .bind(key.blocked)
                .bind(&key.user_id)
                .bind(&key.team_id)
                .bind(key.created_at)
                .bind(key.updated_at)
                .execute(&lite.pool)
                .await?
                .rows_affected(),
        };
        Ok(inserted == 1)
    }

    /// Writes the settable columns of a key (everything but `token`, `key_name`, `spend` and
    /// `created_at`: spend only ever moves through increments and budget resets, so a
    /// concurrent spend write is never overwritten). `Ok(false)` when the key is gone.
    pub async fn update_key(&self, key: &KeyRecord) -> Result<bool, KeyError> {
        let sql = r#"UPDATE "LiteLLM_VerificationToken" SET
                key_alias = $2, max_budget = $3, budget_duration = $4, budget_reset_at = $5,
                expires = $6, models = $7, rpm_limit = $8, tpm_limit = $9,
                max_parallel_requests = $10, metadata = $11, blocked = $12, user_id = $13,
                team_id = $14, updated_at = $15
            WHERE token = $1"#;
        let updated = match self {
            KeyStore::Postgres(pg) => sqlx::query(sql)
                .bind(&key.token)
                .bind(&key.key_alias)
                .bind(key.max_budget)
                .bind(&key.budget_duration)
                .bind(key.budget_reset_at)
                .bind(key.expires)
                .bind(&key.models)
                .bind(key.rpm_limit)
                .bind(key.tpm_limit)
                .bind(key.max_parallel_requests)
                .bind(&key.metadata)
                .bind(key.blocked)
                .bind(&key.user_id)
                .bind(&key.team_id)
                .bind(key.updated_at)
                .execute(&pg.pool)
                .await?
                .rows_affected(),
            KeyStore::Sqlite(lite) => sqlx::query(sql)
                .bind(&key.token)
                .bind(&key.key_alias)
                .bind(key.max_budget)
                .bind(&key.budget_duration)
                .bind(key.budget_reset_at)
                .bind(key.expires)
                .bind(json_text(&key.models))
                .bind(key.rpm_limit)
                .bind(key.tpm_limit)
                .bind(key.max_parallel_requests)
                .bind(key.metadata.to_string())
                .bind(key.blocked)
                .bind(&key.user_id)
                .bind(&key.team_id)
                .bind(key.updated_at)
                .execute(&lite.pool)
                .await?
                .rows_affected(),
        };
        Ok(updated == 1)
    }

    /// Sets a key's spend outright (`/key/update` with `spend`).
    pub async fn set_key_spend(&self, token: &str, spend: f64) -> Result<bool, KeyError> {
        let sql = r#"UPDATE "LiteLLM_VerificationToken" SET spend = $2 WHERE token = $1"#;
        let n = match self {
            KeyStore::Postgres(pg) => {
                sqlx::query(sql)
                    .bind(token)
                    .bind(spend)
                    .execute(&pg.pool)
                    .await?
            }
            .rows_affected(),
            KeyStore::Sqlite(lite) => {
                sqlx::query(sql)
                    .bind(token)
                    .bind(spend)
                    .execute(&lite.pool)
                    .await?
            }
            .rows_affected(),
        };
        Ok(n == 1)
    }

    /// Deletes keys by token hash; returns the tokens that existed.
    pub async fn delete_keys(&self, tokens: &[String]) -> Result<Vec<String>, KeyError> {
        match self {
            KeyStore::Postgres(pg) => Ok(sqlx::query_scalar(
                r#"DELETE FROM "LiteLLM_VerificationToken" WHERE token = ANY($1) RETURNING token"#,
            )
            .bind(tokens)
            .fetch_all(&pg.pool)
            .await?),
            KeyStore::Sqlite(lite) => {
                let mut tx = lite.pool.begin().await?;
                let mut deleted = Vec::new();
                for token in tokens {
                    let n =
                        sqlx::query(r#"DELETE FROM "LiteLLM_VerificationToken" WHERE token = $1"#)
                            .bind(token)
                            .execute(&mut *tx)
                            .await?
                            .rows_affected();
                    if n > 0 {
                        deleted.push(token.clone());
                    }
                }
                tx.commit().await?;
                Ok(deleted)
            }
        }
    }

    /// Sets `blocked`; `Ok(false)` when the key does not exist.
    pub async fn set_blocked(
        &self,
        token: &str,
        blocked: bool,
        now: NaiveDateTime,
    ) -> Result<bool, KeyError> {
        let sql = r#"UPDATE "LiteLLM_VerificationToken" SET blocked = $2, updated_at = $3
                     WHERE token = $1"#;
        let n = match self {
            KeyStore::Postgres(pg) => sqlx::query(sql)
                .bind(token)
                .bind(blocked)
                .bind(now)
                .execute(&pg.pool)
                .await?
                .rows_affected(),
            KeyStore::Sqlite(lite) => sqlx::query(sql)
                .bind(token)
                .bind(blocked)
                .bind(now)
                .execute(&lite.pool)
                .await?
                .rows_affected(),
        };
        Ok(n == 1)
    }

    /// One page of keys (newest first), filtered, and the total count matching the filters.
    pub async fn list_keys(
        &self,
        user_id: Option<&str>,
        team_id: Option<&str>,
        key_alias: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<KeyRecord>, i64), KeyError> {
        let filter = "($1 IS NULL OR user_id = $1) AND ($2 IS NULL OR team_id = $2)
                      AND ($3 IS NULL OR key_alias = $3)";
        let page_sql = format!(
            r#"SELECT {KEY_COLUMNS} FROM "LiteLLM_VerificationToken" WHERE {filter}
               ORDER BY created_at DESC NULLS LAST, token LIMIT $4 OFFSET $5"#
        );
        let count_sql =
            format!(r#"SELECT COUNT(*) FROM "LiteLLM_VerificationToken" WHERE {filter}"#);
        match self {
            KeyStore::Postgres(pg) => {
                // Postgres cannot infer the type of a parameter only compared with NULL.
                let page_sql = page_sql.replace("$1 IS NULL", "$1::text IS NULL");
                let page_sql = page_sql
                    .replace("$2 IS NULL", "$2::text IS NULL")
                    .replace("$3 IS NULL", "$3::text IS NULL");
                let count_sql = count_sql
                    .replace("$1 IS NULL", "$1::text IS NULL")
                    .replace("$2 IS NULL", "$2::text IS NULL")
                    .replace("$3 IS NULL", "$3::text IS NULL");
                let rows = sqlx::query(sqlx::AssertSqlSafe(page_sql))
                    .bind(user_id)
                    .bind(team_id)
                    .bind(key_alias)
                    .bind(limit)
                    .bind(offset)
                    .fetch_all(&pg.pool)
                    .await?;
                let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(count_sql))
                    .bind(user_id)
                    .bind(team_id)
                    .bind(key_alias)
                    .fetch_one(&pg.pool)
                    .await?;
                let keys = rows.iter().map(pg_key).collect::<Result<_, _>>()?;
                Ok((keys, total))
            }
            KeyStore::Sqlite(lite) => {
                let rows = sqlx::query(sqlx::AssertSqlSafe(page_sql))
                    .bind(user_id)
                    .bind(team_id)
                    .bind(key_alias)
                    .bind(limit)
                    .bind(offset)
                    .fetch_all(&lite.pool)
                    .await?;
                let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(count_sql))
                    .bind(user_id)
                    .bind(team_id)
                    .bind(key_alias)
                    .fetch_one(&lite.pool)
                    .await?;
                let keys = rows.iter().map(sqlite_key).collect::<Result<_, _>>()?;
                Ok((keys, total))
            }
        }
    }

    /// Starts a new budget period for a key: spend to 0 (when `zero_spend`) and
    /// `budget_reset_at` to `next`, but only if `budget_reset_at` still equals `expected`, so
    /// that of several instances noticing the same due reset exactly one performs it.
    pub async fn reset_key_budget(
        &self,
        token: &str,
        expected: Option<NaiveDateTime>,
        next: NaiveDateTime,
        zero_spend: bool,
    ) -> Result<bool, KeyError> {
        self.reset_budget(
            "LiteLLM_VerificationToken",
            "token",
            token,
            expected,
            next,
            zero_spend,
        )
        .await
    }

    /// [`KeyStore::reset_key_budget`] for a team row.
    pub async fn reset_team_budget(
        &self,
        team_id: &str,
        expected: Option<NaiveDateTime>,
        next: NaiveDateTime,
        zero_spend: bool,
    ) -> Result<bool, KeyError> {
        self.reset_budget(
            "LiteLLM_TeamTable",
            "team_id",
            team_id,
            expected,
            next,
            zero_spend,
        )
        .await
    }

    async fn reset_budget(
        &self,
        table: &str,
        id_column: &str,
        id: &str,
        expected: Option<NaiveDateTime>,
        next: NaiveDateTime,
        zero_spend: bool,
    ) -> Result<bool, KeyError> {
        let spend = if zero_spend { "spend = 0, " } else { "" };
        let n = match self {
            KeyStore::Postgres(pg) => {
                let sql = format!(
                    r#"UPDATE "{table}" SET {spend}budget_reset_at = $2
                       WHERE {id_column} = $1 AND budget_reset_at IS NOT DISTINCT FROM $3"#
                );
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(id)
                    .bind(next)
                    .bind(expected)
                    .execute(&pg.pool)
                    .await?
                    .rows_affected()
            }
            KeyStore::Sqlite(lite) => {
                let sql = format!(
                    r#"UPDATE "{table}" SET {spend}budget_reset_at = $2
                       WHERE {id_column} = $1 AND budget_reset_at IS $3"#
                );
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(id)
                    .bind(next)
                    .bind(expected)
                    .execute(&lite.pool)
                    .await?
                    .rows_affected()
            }
        };
        Ok(n == 1)
    }

    /// The team row, if any.
    pub async fn get_team(&self, team_id: &str) -> Result<Option<TeamRecord>, KeyError> {
        let sql = format!(r#"SELECT {TEAM_COLUMNS} FROM "LiteLLM_TeamTable" WHERE team_id = $1"#);
        match self {
            KeyStore::Postgres(pg) => {
                let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(team_id)
                    .fetch_optional(&pg.pool)
                    .await?;
                row.map(|r| pg_team(&r)).transpose()
            }
            KeyStore::Sqlite(lite) => {
                let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(team_id)
                    .fetch_optional(&lite.pool)
                    .await?;
                row.map(|r| sqlite_team(&r)).transpose()
            }
        }
    }

    /// Inserts or replaces a team row's limits (HX has no `/team/*` routes yet; this is for
    /// tests and tooling).
    pub async fn upsert_team(&self, team: &TeamRecord) -> Result<(), KeyError> {
        let sql = format!(
            r#"INSERT INTO "LiteLLM_TeamTable" ({TEAM_COLUMNS})
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
               ON CONFLICT (team_id) DO UPDATE SET team_alias = excluded.team_alias,
                 models = excluded.models, max_budget = excluded.max_budget,
                 spend = excluded.spend, rpm_limit = excluded.rpm_limit,
                 tpm_limit = excluded.tpm_limit,
                 max_parallel_requests = excluded.max_parallel_requests,
                 budget_duration = excluded.budget_duration,
                 budget_reset_at = excluded.budget_reset_at, blocked = excluded.blocked,
                 metadata = excluded.metadata"#
        );
        match self {
            KeyStore::Postgres(pg) => {
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(&team.team_id)
                    .bind(&team.team_alias)
                    .bind(&team.models)
                    .bind(team.max_budget)
                    .bind(team.spend)
                    .bind(team.rpm_limit)
                    .bind(team.tpm_limit)
                    .bind(team.max_parallel_requests)
                    .bind(&team.budget_duration)
                    .bind(team.budget_reset_at)
                    .bind(team.blocked)
                    .bind(&team.metadata)
                    .execute(&pg.pool)
                    .await?;
            }
            KeyStore::Sqlite(lite) => {
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(&team.team_id)
                    .bind(&team.team_alias)
                    .bind(json_text(&team.models))
                    .bind(team.max_budget)
                    .bind(team.spend)
                    .bind(team.rpm_limit)
                    .bind(team.tpm_limit)
                    .bind(team.max_parallel_requests)
                    .bind(&team.budget_duration)
                    .bind(team.budget_reset_at)
                    .bind(team.blocked)
                    .bind(team.metadata.to_string())
                    .execute(&lite.pool)
                    .await?;
            }
        }
        Ok(())
    }

    /// Inserts a user row with no limits if missing (for tests and tooling: spend is added to
    /// a key's user only when the user row exists).
    pub async fn ensure_user(&self, user_id: &str) -> Result<(), KeyError> {
        let sql = r#"INSERT INTO "LiteLLM_UserTable" (user_id) VALUES ($1)
                     ON CONFLICT (user_id) DO NOTHING"#;
        match self {
            KeyStore::Postgres(pg) => sqlx::query(sql).bind(user_id).execute(&pg.pool).await?,
            KeyStore::Sqlite(lite) => {
                sqlx::query(sql).bind(user_id).execute(&lite.pool).await?;
                return Ok(());
            }
        };
        Ok(())
    }

    /// `(max_budget, spend)` of a user row, if it exists.
    pub async fn user_budget(&self, user_id: &str) -> Result<Option<(Option<f64>, f64)>, KeyError> {
        let sql = r#"SELECT max_budget, spend FROM "LiteLLM_UserTable" WHERE user_id = $1"#;
        Ok(match self {
            KeyStore::Postgres(pg) => {
                sqlx::query_as(sql)
                    .bind(user_id)
                    .fetch_optional(&pg.pool)
                    .await?
            }
            KeyStore::Sqlite(lite) => {
                sqlx::query_as(sql)
                    .bind(user_id)
                    .fetch_optional(&lite.pool)
                    .await?
            }
        })
    }

    /// Sets a user row's `max_budget`, creating the row if missing (HX has no `/user/*` routes
    /// yet; this is for tests and tooling).
    pub async fn set_user_budget(
        &self,
        user_id: &str,
        max_budget: Option<f64>,
    ) -> Result<(), KeyError> {
        let sql = r#"INSERT INTO "LiteLLM_UserTable" (user_id, max_budget) VALUES ($1, $2)
                     ON CONFLICT (user_id) DO UPDATE SET max_budget = excluded.max_budget"#;
        match self {
            KeyStore::Postgres(pg) => {
                sqlx::query(sql)
                    .bind(user_id)
                    .bind(max_budget)
                    .execute(&pg.pool)
                    .await?;
            }
            KeyStore::Sqlite(lite) => {
                sqlx::query(sql)
                    .bind(user_id)
                    .bind(max_budget)
                    .execute(&lite.pool)
                    .await?;
            }
        }
        Ok(())
    }

    /// `spend` of a user row, if it exists.
    pub async fn user_spend(&self, user_id: &str) -> Result<Option<f64>, KeyError> {
        let sql = r#"SELECT spend FROM "LiteLLM_UserTable" WHERE user_id = $1"#;
        Ok(match self {
            KeyStore::Postgres(pg) => {
                sqlx::query_scalar(sql)
                    .bind(user_id)
                    .fetch_optional(&pg.pool)
                    .await?
            }
            KeyStore::Sqlite(lite) => {
                sqlx::query_scalar(sql)
                    .bind(user_id)
                    .fetch_optional(&lite.pool)
                    .await?
            }
        })
    }

    /// Number of spend-log rows and the sum of their spend for one key hash.
    pub async fn spend_log_totals(&self, api_key: &str) -> Result<(i64, f64), KeyError> {
        let sql = r#"SELECT COUNT(*), COALESCE(SUM(spend), 0) FROM "LiteLLM_SpendLogs"
                     WHERE api_key = $1"#;
        let (count, sum): (i64, f64) = match self {
            KeyStore::Postgres(pg) => {
                sqlx::query_as(sql)
                    .bind(api_key)
                    .fetch_one(&pg.pool)
                    .await?
            }
            KeyStore::Sqlite(lite) => {
                sqlx::query_as(sql)
                    .bind(api_key)
                    .fetch_one(&lite.pool)
                    .await?
            }
        };
        Ok((count, sum))
    }

    /// Writes a batch of spend records: one spend-log row each, and their costs added to the
    /// key's, the team's and the user's `spend` when those rows exist. Atomic, and idempotent
    /// per `request_id`: a retry after an ambiguous failure (commit done, answer lost) inserts
    /// nothing twice and adds nothing twice, because the increments are computed only from
    /// the log rows this very statement inserted.
    pub async fn write_spend(&self, records: &[SpendRecord]) -> Result<u64, KeyError> {
        if records.is_empty() {
            return Ok(0);
        }
        match self {
            KeyStore::Postgres(pg) => write_spend_postgres(pg, records).await,
            KeyStore::Sqlite(lite) => write_spend_sqlite(lite, records).await,
        }
    }
}

/// Token counts are `integer` in LiteLLM's schema.
fn clamp_i32(n: u64) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

async fn write_spend_postgres(
    pg: &PostgresStore,
    records: &[SpendRecord],
) -> Result<u64, KeyError> {
    let status_col = if pg.columns.spend_logs_status {
        r#", "status""#
    } else {
        ""
    };
    let status_val = if pg.columns.spend_logs_status {
        ", s.status"
    } else {
        ""
    };
    let total_spend = if pg.columns.key_total_spend {
        ", total_spend = v.total_spend + s.amount"
    } else {
        ""
    };
    let sql = format!(
        r#"WITH s AS (
            SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::float8[], $5::int4[],
                $6::int4[], $7::int4[], $8::timestamp[], $9::timestamp[], $10::text[],
                $11::text[], $12::text[], $13::text[], $14::text[], $15::text[], $16::text[],
                $17::text[], $18::text[], $19::text[])
            AS s(request_id, call_type, api_key, spend, total_tokens, prompt_tokens,
                 completion_tokens, start_time, end_time, model, model_group,
                 custom_llm_provider, api_base, user_id, metadata, cache_hit, team_id,
                 end_user, status)
        ), ins AS (
            INSERT INTO "LiteLLM_SpendLogs" (request_id, call_type, api_key, spend,
                total_tokens, prompt_tokens, completion_tokens, "startTime", "endTime", model,
                model_group, custom_llm_provider, api_base, "user", metadata, cache_hit,
                team_id, end_user{status_col})
            SELECT s.request_id, s.call_type, s.api_key, s.spend, s.total_tokens,
                s.prompt_tokens, s.completion_tokens, s.start_time, s.end_time, s.model,
                s.model_group, s.custom_llm_provider, s.api_base, s.user_id,
                s.metadata::jsonb, s.cache_hit, s.team_id, s.end_user{status_val}
            FROM s
            ON CONFLICT (request_id) DO NOTHING
            RETURNING api_key, spend, team_id, "user"
        ), k AS (
            UPDATE "LiteLLM_VerificationToken" v SET spend = v.spend + s.amount{total_spend}
            FROM (SELECT api_key, SUM(spend) AS amount FROM ins GROUP BY api_key) s
            WHERE v.token = s.api_key
            RETURNING 1
        ), t AS (
            UPDATE "LiteLLM_TeamTable" tt SET spend = tt.spend + s.amount
            FROM (SELECT team_id, SUM(spend) AS amount FROM ins
                  WHERE team_id IS NOT NULL GROUP BY team_id) s
            WHERE tt.team_id = s.team_id
            RETURNING 1
        ), u AS (
            UPDATE "LiteLLM_UserTable" ut SET spend = ut.spend + s.amount
            FROM (SELECT "user", SUM(spend) AS amount FROM ins
                  WHERE "user" IS NOT NULL AND "user" <> '' GROUP BY "user") s
            WHERE ut.user_id = s."user"
            RETURNING 1
        )
        SELECT COUNT(*) FROM ins"#
    );
    let col = |f: &dyn Fn(&SpendRecord) -> Option<String>| -> Vec<Option<String>> {
        records.iter().map(f).collect()
    };
    let inserted: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(col(&|r| Some(r.request_id.clone())))
        .bind(col(&|r| Some(r.call_type.clone())))
        .bind(col(&|r| Some(r.api_key.clone())))
        .bind(records.iter().map(|r| r.spend).collect::<Vec<f64>>())
        .bind(
            records
                .iter()
                .map(|r| clamp_i32(r.prompt_tokens.saturating_add(r.completion_tokens)))
                .collect::<Vec<i32>>(),
        )
        .bind(
            records
                .iter()
                .map(|r| clamp_i32(r.prompt_tokens))
                .collect::<Vec<i32>>(),
        )
        .bind(
            records
                .iter()
                .map(|r| clamp_i32(r.completion_tokens))
                .collect::<Vec<i32>>(),
        )
        .bind(
            records
                .iter()
                .map(|r| r.start_time.naive_utc())
                .collect::<Vec<_>>(),
        )
        .bind(
            records
                .iter()
                .map(|r| r.end_time.naive_utc())
                .collect::<Vec<_>>(),
        )
        .bind(col(&|r| Some(r.model.clone())))
        .bind(col(&|r| Some(r.model_group.clone())))
        .bind(col(&|r| Some(r.custom_llm_provider.clone())))
        .bind(col(&|r| Some(r.api_base.clone())))
        .bind(col(&|r| Some(r.user_id.clone().unwrap_or_default())))
        .bind(col(&|r| Some(r.metadata.to_string())))
        .bind(col(&|r| Some(cache_hit_text(r.cache_hit).to_string())))
        .bind(col(&|r| r.team_id.clone()))
        .bind(col(&|r| r.end_user.clone()))
        .bind(col(&|r| Some(r.status.clone())))
        .fetch_one(&pg.pool)
        .await?;
    Ok(u64::try_from(inserted).unwrap_or(0))
}

/// LiteLLM writes Python's `str(bool)` into `cache_hit`.
fn cache_hit_text(hit: bool) -> &'static str {
    if hit { "True" } else { "False" }
}

/// A spend row's time as SQLite text, exactly as sqlx writes a `NaiveDateTime` (chrono's
/// `%F %T%.f`, UTC). Written out here because chrono's formatter interprets its format
/// string on every call: the two timestamps of each spend row were ~3% of the gateway's
/// instructions per request. Years outside 0..=9999 (never produced by a clock) go through
/// chrono.
fn sqlite_timestamp(time: &chrono::DateTime<chrono::Utc>) -> String {
    use chrono::{Datelike, Timelike};
    let t = time.naive_utc();
    let Ok(year) = u32::try_from(t.year()) else {
        return t.format("%F %T%.f").to_string();
    };
    if year > 9999 {
        return t.format("%F %T%.f").to_string();
    }
    fn digits(out: &mut String, value: u32, width: u32) {
        for place in (0..width).rev() {
            let digit = (value / 10u32.pow(place) % 10) as u8;
            out.push(char::from(b'0' + digit));
        }
    }
    // A leap second is second 59 with a nanosecond count past one second; chrono prints 60.
    let second = t.second() + t.nanosecond() / 1_000_000_000;
    let nano = t.nanosecond() % 1_000_000_000;
    let mut out = String::with_capacity(29);
    digits(&mut out, year, 4);
    out.push('-');
    digits(&mut out, t.month(), 2);
    out.push('-');
    digits(&mut out, t.day(), 2);
    out.push(' ');
    digits(&mut out, t.hour(), 2);
    out.push(':');
    digits(&mut out, t.minute(), 2);
    out.push(':');
    digits(&mut out, second, 2);
    // `%.f`: nothing for whole seconds, else 3, 6 or 9 digits, the fewest that are exact.
    if nano != 0 {
        out.push('.');
        if nano.is_multiple_of(1_000_000) {
            digits(&mut out, nano / 1_000_000, 3);
        } else if nano.is_multiple_of(1_000) {
            digits(&mut out, nano / 1_000, 6);
        } else {
            digits(&mut out, nano, 9);
        }
    }
    out
}

/// Rows per `INSERT` statement: 19 bound values each, far below SQLite's variable limit, and
/// one statement per 64 rows instead of one round trip to sqlx's SQLite thread per row.
const SQLITE_SPEND_ROWS_PER_STATEMENT: usize = 64;

/// Splits a batch into statements of [`SQLITE_SPEND_ROWS_PER_STATEMENT`] rows, then the rest
/// in powers of two (45 = 32 + 8 + 4 + 1). sqlx caches prepared statements by their text; a
/// batch's last chunk would otherwise have a new size almost every time, and preparing a
/// statement of a thousand parameters cost more than inserting its rows. This way at most
/// seven statements are ever prepared.
fn statement_chunks<T>(mut rows: &[T]) -> impl Iterator<Item = &[T]> {
    std::iter::from_fn(move || {
        if rows.is_empty() {
            return None;
        }
        let size = if rows.len() >= SQLITE_SPEND_ROWS_PER_STATEMENT {
            SQLITE_SPEND_ROWS_PER_STATEMENT
        } else {
            1 << rows.len().ilog2()
        };
        let (chunk, rest) = rows.split_at(size);
        rows = rest;
        Some(chunk)
    })
}

/// The text of the spend `INSERT` for `rows` rows (a size [`statement_chunks`] makes), with
/// `RETURNING request_id` when asked. Built once per size: formatting a thousand placeholders
/// for every statement cost ~2% of the gateway's instructions per request.
fn sqlite_spend_sql(rows: usize, returning: bool) -> &'static str {
    static SQL: LazyLock<Vec<[String; 2]>> = LazyLock::new(|| {
        let row = format!("({})", vec!["?"; 19].join(", "));
        (0..=SQLITE_SPEND_ROWS_PER_STATEMENT.ilog2())
            .map(|power| {
                let plain = format!(
                    r#"INSERT OR IGNORE INTO "LiteLLM_SpendLogs" (request_id, call_type,
                    api_key, spend, total_tokens, prompt_tokens, completion_tokens,
                    "startTime", "endTime", model, model_group, custom_llm_provider,
                    api_base, "user", metadata, cache_hit, team_id, end_user, status) VALUES {}"#,
                    vec![row.as_str(); 1 << power].join(", ")
                );
                let returning = format!("{plain} RETURNING request_id");
                [plain, returning]
            })
            .collect()
    });
    // Sizes are powers of two up to the maximum (`statement_chunks`).
    &SQL[rows.ilog2() as usize][usize::from(returning)]
}

/// `INSERT OR IGNORE` of spend rows into `"LiteLLM_SpendLogs"` (`chunk` from
/// [`statement_chunks`]), with `RETURNING request_id` when asked.
fn sqlite_spend_insert(
    chunk: &[SpendRecord],
    returning: bool,
) -> sqlx::query::Query<'_, sqlx::Sqlite, sqlx::sqlite::SqliteArguments> {
    let mut insert = sqlx::query(sqlite_spend_sql(chunk.len(), returning));
    for r in chunk {
        insert = insert
            .bind(&r.request_id)
            .bind(&r.call_type)
            .bind(&r.api_key)
            .bind(r.spend)
            .bind(clamp_i32(
                r.prompt_tokens.saturating_add(r.completion_tokens),
            ))
            .bind(clamp_i32(r.prompt_tokens))
            .bind(clamp_i32(r.completion_tokens))
            .bind(sqlite_timestamp(&r.start_time))
            .bind(sqlite_timestamp(&r.end_time))
            .bind(&r.model)
            .bind(&r.model_group)
            .bind(&r.custom_llm_provider)
            .bind(&r.api_base)
            .bind(r.user_id.as_deref().unwrap_or_default())
            .bind(r.metadata.to_string())
            .bind(cache_hit_text(r.cache_hit))
            .bind(&r.team_id)
            .bind(&r.end_user)
            .bind(&r.status);
    }
    insert
}

async fn write_spend_sqlite(lite: &SqliteStore, records: &[SpendRecord]) -> Result<u64, KeyError> {
    let mut tx = lite.pool.begin().await?;
    let mut by_key: HashMap<&str, f64> = HashMap::new();
    let mut by_team: HashMap<&str, f64> = HashMap::new();
    let mut by_user: HashMap<&str, f64> = HashMap::new();
    let mut inserted = 0u64;
    for chunk in statement_chunks(records) {
        // A record already written (a retried batch whose commit did go through) is ignored
        // and must not count twice: only the rows this statement inserted add to the key,
        // team and user spend. Almost always every row is new, which a plain insert shows by
        // its row count; only otherwise is the chunk inserted again, telling which rows are
        // new (`RETURNING` streams one row per record back from sqlx's SQLite thread).
        let mut savepoint = sqlx::Connection::begin(&mut *tx).await?;
        let plain = sqlite_spend_insert(chunk, false)
            .execute(&mut *savepoint)
            .await?;
        let fresh: Vec<&SpendRecord> = if plain.rows_affected() == chunk.len() as u64 {
            savepoint.commit().await?;
            chunk.iter().collect()
        } else {
            savepoint.rollback().await?;
            let rows = sqlite_spend_insert(chunk, true).fetch_all(&mut *tx).await?;
            let mut returned: HashSet<String> = rows
                .iter()
                .map(|row| row.try_get::<String, _>(0))
                .collect::<Result<_, _>>()?;
            // `remove`: a request id twice in one batch was inserted once and counts once.
            chunk
                .iter()
                .filter(|r| returned.remove(&r.request_id))
                .collect()
        };
        for r in fresh {
            inserted += 1;
            *by_key.entry(&r.api_key).or_default() += r.spend;
            if let Some(team) = r.team_id.as_deref() {
                *by_team.entry(team).or_default() += r.spend;
            }
            if let Some(user) = r.user_id.as_deref().filter(|u| !u.is_empty()) {
                *by_user.entry(user).or_default() += r.spend;
            }
        }
    }
    let increments = [
        (
            r#"UPDATE "LiteLLM_VerificationToken" SET spend = spend + $2 WHERE token = $1"#,
            by_key,
        ),
        (
            r#"UPDATE "LiteLLM_TeamTable" SET spend = spend + $2 WHERE team_id = $1"#,
            by_team,
        ),
        (
            r#"UPDATE "LiteLLM_UserTable" SET spend = spend + $2 WHERE user_id = $1"#,
            by_user,
        ),
    ];
    for (sql, amounts) in increments {
        for (id, amount) in amounts {
            sqlx::query(sql)
                .bind(id)
                .bind(amount)
                .execute(&mut *tx)
                .await?;
        }
    }
    tx.commit().await?;
    Ok(inserted)
}

fn json_text(list: &[String]) -> String {
    serde_json::to_string(list).unwrap_or_else(|_| "[]".to_string())
}

fn pg_key(row: &PgRow) -> Result<KeyRecord, KeyError> {
    Ok(KeyRecord {
        token: row.try_get("token")?,
        key_name: row.try_get("key_name")?,
        key_alias: row.try_get("key_alias")?,
        spend: row.try_get("spend")?,
        max_budget: row.try_get("max_budget")?,
        budget_duration: row.try_get("budget_duration")?,
        budget_reset_at: row.try_get("budget_reset_at")?,
        expires: row.try_get("expires")?,
        models: row
            .try_get::<Option<Vec<String>>, _>("models")?
            .unwrap_or_default(),
        rpm_limit: row.try_get("rpm_limit")?,
        tpm_limit: row.try_get("tpm_limit")?,
        max_parallel_requests: row.try_get("max_parallel_requests")?,
        metadata: row
            .try_get::<Option<Value>, _>("metadata")?
            .unwrap_or_else(|| Value::Object(Default::default())),
        blocked: row.try_get::<Option<bool>, _>("blocked")?.unwrap_or(false),
        user_id: row.try_get("user_id")?,
        team_id: row.try_get("team_id")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn pg_team(row: &PgRow) -> Result<TeamRecord, KeyError> {
    Ok(TeamRecord {
        team_id: row.try_get("team_id")?,
        team_alias: row.try_get("team_alias")?,
        models: row
            .try_get::<Option<Vec<String>>, _>("models")?
            .unwrap_or_default(),
        max_budget: row.try_get("max_budget")?,
        spend: row.try_get("spend")?,
        rpm_limit: row.try_get("rpm_limit")?,
        tpm_limit: row.try_get("tpm_limit")?,
        max_parallel_requests: row.try_get("max_parallel_requests")?,
        budget_duration: row.try_get("budget_duration")?,
        budget_reset_at: row.try_get("budget_reset_at")?,
        blocked: row.try_get::<Option<bool>, _>("blocked")?.unwrap_or(false),
        metadata: row
            .try_get::<Option<Value>, _>("metadata")?
            .unwrap_or_else(|| Value::Object(Default::default())),
    })
}

/// A JSON text column of SQLite; a malformed value reads as the default rather than failing
/// every request of that key.
fn sqlite_json<T: serde::de::DeserializeOwned + Default>(
    row: &SqliteRow,
    column: &str,
) -> Result<T, KeyError> {
    let text: Option<String> = row.try_get(column)?;
    Ok(text
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default())
}

fn sqlite_object(row: &SqliteRow, column: &str) -> Result<Value, KeyError> {
    let value: Value = sqlite_json(row, column)?;
    Ok(if value.is_null() {
        Value::Object(Default::default())
    } else {
        value
    })
}

fn sqlite_time(row: &SqliteRow, column: &str) -> Result<Option<NaiveDateTime>, KeyError> {
    let text: Option<String> = row.try_get(column)?;
    Ok(text.and_then(|t| parse_sqlite_time(&t)))
}

/// Timestamps written by sqlx (`%F %T%.f`) or by SQLite's `strftime` defaults.
fn parse_sqlite_time(text: &str) -> Option<NaiveDateTime> {
    NaiveDateTime::from_str(&text.replace(' ', "T")).ok()
}

fn sqlite_key(row: &SqliteRow) -> Result<KeyRecord, KeyError> {
    Ok(KeyRecord {
        token: row.try_get("token")?,
        key_name: row.try_get("key_name")?,
        key_alias: row.try_get("key_alias")?,
        spend: row.try_get("spend")?,
        max_budget: row.try_get("max_budget")?,
        budget_duration: row.try_get("budget_duration")?,
        budget_reset_at: sqlite_time(row, "budget_reset_at")?,
        expires: sqlite_time(row, "expires")?,
        models: sqlite_json(row, "models")?,
        rpm_limit: row.try_get("rpm_limit")?,
        tpm_limit: row.try_get("tpm_limit")?,
        max_parallel_requests: row.try_get("max_parallel_requests")?,
        metadata: sqlite_object(row, "metadata")?,
        blocked: row.try_get::<Option<bool>, _>("blocked")?.unwrap_or(false),
        user_id: row.try_get("user_id")?,
        team_id: row.try_get("team_id")?,
        created_at: sqlite_time(row, "created_at")?,
        updated_at: sqlite_time(row, "updated_at")?,
    })
}

fn sqlite_team(row: &SqliteRow) -> Result<TeamRecord, KeyError> {
    Ok(TeamRecord {
        team_id: row.try_get("team_id")?,
        team_alias: row.try_get("team_alias")?,
        models: sqlite_json(row, "models")?,
        max_budget: row.try_get("max_budget")?,
        spend: row.try_get("spend")?,
        rpm_limit: row.try_get("rpm_limit")?,
        tpm_limit: row.try_get("tpm_limit")?,
        max_parallel_requests: row.try_get("max_parallel_requests")?,
        budget_duration: row.try_get("budget_duration")?,
        budget_reset_at: sqlite_time(row, "budget_reset_at")?,
        blocked: row.try_get::<Option<bool>, _>("blocked")?.unwrap_or(false),
        metadata: sqlite_object(row, "metadata")?,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_batch_is_inserted_in_chunks_of_few_distinct_sizes_in_order() {
        let sizes = |n: usize| {
            let rows: Vec<usize> = (0..n).collect();
            let chunks: Vec<&[usize]> = statement_chunks(&rows).collect();
            // Every row once, in order.
            assert_eq!(chunks.concat(), rows);
            chunks.iter().map(|c| c.len()).collect::<Vec<_>>()
        };
        assert_eq!(sizes(0), Vec::<usize>::new());
        assert_eq!(sizes(1), [1]);
        assert_eq!(sizes(45), [32, 8, 4, 1]);
        assert_eq!(sizes(64), [64]);
        assert_eq!(sizes(130), [64, 64, 2]);
        let mut distinct = std::collections::BTreeSet::new();
        for n in 0..=500 {
            distinct.extend(sizes(n));
        }
        assert_eq!(
            distinct.into_iter().collect::<Vec<_>>(),
            [1, 2, 4, 8, 16, 32, 64]
        );
    }

    #[test]
    fn each_insert_text_has_a_placeholder_per_bound_value() {
        for rows in [1, 2, 4, 8, 16, 32, 64] {
            for returning in [false, true] {
                let sql = sqlite_spend_sql(rows, returning);
                assert_eq!(sql.matches('?').count(), rows * 19, "{rows} rows");
                assert_eq!(sql.ends_with(" RETURNING request_id"), returning);
            }
        }
    }

    #[test]
    fn sqlite_timestamps_are_written_as_sqlx_writes_them() {
        use chrono::{NaiveDate, TimeZone, Utc};
        let day = NaiveDate::from_ymd_opt(2026, 3, 7).unwrap();
        for nano in [
            0,
            5_000_000,
            123_456_000,
            123_456_789,
            999_999_999,
            1_250_000_000,
        ] {
            let naive = day.and_hms_nano_opt(9, 4, 59, nano).unwrap();
            let time = Utc.from_utc_datetime(&naive);
            assert_eq!(
                sqlite_timestamp(&time),
                naive.format("%F %T%.f").to_string()
            );
        }
        let early = NaiveDate::from_ymd_opt(7, 1, 2)
            .unwrap()
            .and_hms_opt(0, 0, 1)
            .unwrap();
        assert_eq!(
            sqlite_timestamp(&Utc.from_utc_datetime(&early)),
            "0007-01-02 00:00:01"
        );
    }

    #[test]
    fn sqlite_timestamps_parse_in_both_forms() {
        assert!(parse_sqlite_time("2025-01-02 03:04:05.678").is_some());
        assert!(parse_sqlite_time("2025-01-02 03:04:05").is_some());
        assert!(parse_sqlite_time("garbage").is_none());
    }
}
