//! Key, team and user rows: `"LiteLLM_VerificationToken"`, `"LiteLLM_TeamTable"`,
//! `"LiteLLM_UserTable"`. Each query is written once for both dialects; the columns stored
//! differently (`models` a `text[]` or JSON text, `metadata` `jsonb` or text, SQLite's text
//! timestamps) go through the per-dialect [`Encoders`] and [`Decoders`].

use std::str::FromStr;

use chrono::NaiveDateTime;
use serde_json::Value;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{PgPool, Row, SqlitePool};

use super::{DbError, KeyStore};

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
    /// The key's own model aliases (`aliases`: a requested name → the model group it means).
    pub aliases: Value,
    /// The routes the key may call (`allowed_routes`: paths, `*` patterns or LiteLLM's route
    /// group names); empty means every route its role allows.
    pub allowed_routes: Vec<String>,
    /// Per-model budgets (`model_max_budget`: model → `{"budget_limit", "time_period"}`).
    pub model_max_budget: Value,
    /// Stored as given (`config`, `permissions`, `allowed_cache_controls`).
    pub config: Value,
    pub permissions: Value,
    pub allowed_cache_controls: Vec<String>,
    /// The key's row in `"LiteLLM_BudgetTable"`, which holds its `soft_budget`.
    pub budget_id: Option<String>,
    /// The `soft_budget` of the key's budget row (read with the key; written through
    /// [`KeyStore::insert_key_budget`]).
    pub soft_budget: Option<f64>,
    /// Set once the key's spend crossed its soft budget (the crossing is reported once).
    pub soft_budget_cooldown: bool,
}

impl Default for KeyRecord {
    fn default() -> Self {
        KeyRecord {
            token: String::new(),
            key_name: None,
            key_alias: None,
            spend: 0.0,
            max_budget: None,
            budget_duration: None,
            budget_reset_at: None,
            expires: None,
            models: Vec::new(),
            rpm_limit: None,
            tpm_limit: None,
            max_parallel_requests: None,
            metadata: Value::Object(Default::default()),
            blocked: false,
            user_id: None,
            team_id: None,
            created_at: None,
            updated_at: None,
            aliases: Value::Object(Default::default()),
            allowed_routes: Vec::new(),
            model_max_budget: Value::Object(Default::default()),
            config: Value::Object(Default::default()),
            permissions: Value::Object(Default::default()),
            allowed_cache_controls: Vec::new(),
            budget_id: None,
            soft_budget: None,
            soft_budget_cooldown: false,
        }
    }
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
    pub organization_id: Option<String>,
    /// LiteLLM's older member lists, kept as read (LiteLLM now writes `members_with_roles`).
    pub admins: Vec<String>,
    pub members: Vec<String>,
    /// `[{"role": "admin" | "user", "user_id", "user_email"}]`, as LiteLLM writes it.
    pub members_with_roles: Value,
    pub model_max_budget: Value,
    /// The team's row in `"LiteLLM_ModelTable"`, which holds its `model_aliases`.
    pub model_id: Option<i32>,
    /// The `aliases` of that row (read with the team; written through
    /// [`KeyStore::insert_model_aliases`]).
    pub model_aliases: Value,
    pub created_at: Option<NaiveDateTime>,
    pub updated_at: Option<NaiveDateTime>,
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
            organization_id: None,
            admins: Vec::new(),
            members: Vec::new(),
            members_with_roles: Value::Array(Vec::new()),
            model_max_budget: Value::Object(Default::default()),
            model_id: None,
            model_aliases: Value::Object(Default::default()),
            created_at: None,
            updated_at: None,
        }
    }
}

/// The columns of a `"LiteLLM_UserTable"` row that bind the user's keys.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct UserRow {
    pub user_id: String,
    pub user_role: Option<String>,
    pub max_budget: Option<f64>,
    pub spend: f64,
    /// Empty means every model.
    pub models: Vec<String>,
    pub budget_duration: Option<String>,
    pub budget_reset_at: Option<NaiveDateTime>,
}

const KEY_COLUMNS: &str = r#"token, key_name, key_alias, spend, max_budget, budget_duration,
    budget_reset_at, expires, models, rpm_limit, tpm_limit, max_parallel_requests, metadata,
    blocked, user_id, team_id, created_at, updated_at, aliases, allowed_routes, model_max_budget,
    config, permissions, allowed_cache_controls, budget_id, soft_budget_cooldown"#;

/// The key's soft budget, from its budget row (LiteLLM reads it the same way, through the
/// key's `budget_id`).
const SOFT_BUDGET: &str = r#"(SELECT b.soft_budget FROM "LiteLLM_BudgetTable" b
    WHERE b.budget_id = "LiteLLM_VerificationToken".budget_id) AS soft_budget"#;

pub(super) const TEAM_COLUMNS: &str = r#"team_id, team_alias, models, max_budget, spend, rpm_limit,
    tpm_limit, max_parallel_requests, budget_duration, budget_reset_at, blocked, metadata"#;

/// Every team column HX reads, with the team's model aliases from its model row.
pub(super) const TEAM_READ_COLUMNS: &str = r#"team_id, team_alias, models, max_budget, spend,
    rpm_limit, tpm_limit, max_parallel_requests, budget_duration, budget_reset_at, blocked,
    metadata, organization_id, admins, members, members_with_roles, model_max_budget, model_id,
    created_at, updated_at, (SELECT m.aliases FROM "LiteLLM_ModelTable" m
    WHERE m.id = "LiteLLM_TeamTable".model_id) AS model_aliases"#;

impl KeyStore {
    /// The key row with this token hash.
    pub async fn get_key(&self, token: &str) -> Result<Option<KeyRecord>, DbError> {
        let sql = format!(
            r#"SELECT {KEY_COLUMNS}, {SOFT_BUDGET} FROM "LiteLLM_VerificationToken" WHERE token = $1"#
        );
        Ok(on_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(token)
                .fetch_optional(pool)
                .await?
        }))
    }

    /// Token hashes of the keys with this alias.
    pub async fn tokens_by_alias(&self, alias: &str) -> Result<Vec<String>, DbError> {
        let sql = r#"SELECT token FROM "LiteLLM_VerificationToken" WHERE key_alias = $1"#;
        Ok(on_pool!(self, pool => {
            sqlx::query_scalar(sql).bind(alias).fetch_all(pool).await?
        }))
    }

    /// Inserts a new key. `Ok(false)` when a key with that token already exists.
    pub async fn insert_key(&self, key: &KeyRecord) -> Result<bool, DbError> {
        let sql = format!(
            r#"INSERT INTO "LiteLLM_VerificationToken" ({KEY_COLUMNS})
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
                       $17, $18, $19, $20, $21, $22, $23, $24, $25, $26)
               ON CONFLICT (token) DO NOTHING"#
        );
        let inserted = on_pool!(self, pool => {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(&key.token)
                .bind(&key.key_name)
                .bind(&key.key_alias)
                .bind(key.spend)
                .bind(key.max_budget)
                .bind(&key.budget_duration)
                .bind(key.budget_reset_at)
                .bind(key.expires)
                .bind(pool.encode_list(&key.models))
                .bind(key.rpm_limit)
                .bind(key.tpm_limit)
                .bind(key.max_parallel_requests)
                .bind(pool.encode_json(&key.metadata))
                .bind(key.blocked)
                .bind(&key.user_id)
                .bind(&key.team_id)
                .bind(key.created_at)
                .bind(key.updated_at)
                .bind(pool.encode_json(&key.aliases))
                .bind(pool.encode_list(&key.allowed_routes))
                .bind(pool.encode_json(&key.model_max_budget))
                .bind(pool.encode_json(&key.config))
                .bind(pool.encode_json(&key.permissions))
                .bind(pool.encode_list(&key.allowed_cache_controls))
                .bind(&key.budget_id)
                .bind(key.soft_budget_cooldown)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(inserted == 1)
    }

    /// Writes the settable columns of a key (everything but `token`, `key_name`, `spend` and
    /// `created_at`: spend only ever moves through increments and budget resets, so a
    /// concurrent spend write is never overwritten). `Ok(false)` when the key is gone.
    pub async fn update_key(&self, key: &KeyRecord) -> Result<bool, DbError> {
        let sql = r#"UPDATE "LiteLLM_VerificationToken" SET
                key_alias = $2, max_budget = $3, budget_duration = $4, budget_reset_at = $5,
                expires = $6, models = $7, rpm_limit = $8, tpm_limit = $9,
                max_parallel_requests = $10, metadata = $11, blocked = $12, user_id = $13,
                team_id = $14, updated_at = $15, aliases = $16, allowed_routes = $17,
                model_max_budget = $18, config = $19, permissions = $20,
                allowed_cache_controls = $21, budget_id = $22, soft_budget_cooldown = $23
            WHERE token = $1"#;
        let updated = on_pool!(self, pool => {
            sqlx::query(sql)
                .bind(&key.token)
                .bind(&key.key_alias)
                .bind(key.max_budget)
                .bind(&key.budget_duration)
                .bind(key.budget_reset_at)
                .bind(key.expires)
                .bind(pool.encode_list(&key.models))
                .bind(key.rpm_limit)
                .bind(key.tpm_limit)
                .bind(key.max_parallel_requests)
                .bind(pool.encode_json(&key.metadata))
                .bind(key.blocked)
                .bind(&key.user_id)
                .bind(&key.team_id)
                .bind(key.updated_at)
                .bind(pool.encode_json(&key.aliases))
                .bind(pool.encode_list(&key.allowed_routes))
                .bind(pool.encode_json(&key.model_max_budget))
                .bind(pool.encode_json(&key.config))
                .bind(pool.encode_json(&key.permissions))
                .bind(pool.encode_list(&key.allowed_cache_controls))
                .bind(&key.budget_id)
                .bind(key.soft_budget_cooldown)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(updated == 1)
    }

    /// Creates the budget row that holds a key's `soft_budget` (LiteLLM keeps a key's soft
    /// budget in `"LiteLLM_BudgetTable"`, linked by the key's `budget_id`).
    pub async fn insert_key_budget(
        &self,
        budget_id: &str,
        soft_budget: f64,
        created_by: &str,
    ) -> Result<(), DbError> {
        let sql = r#"INSERT INTO "LiteLLM_BudgetTable" (budget_id, soft_budget, created_by,
                updated_by) VALUES ($1, $2, $3, $3)"#;
        on_pool!(self, pool => {
            sqlx::query(sql)
                .bind(budget_id)
                .bind(soft_budget)
                .bind(created_by)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(())
    }

    /// Changes the `soft_budget` of a budget row.
    pub async fn set_soft_budget(
        &self,
        budget_id: &str,
        soft_budget: Option<f64>,
    ) -> Result<(), DbError> {
        let sql = r#"UPDATE "LiteLLM_BudgetTable" SET soft_budget = $2, updated_at = CURRENT_TIMESTAMP
            WHERE budget_id = $1"#;
        on_pool!(self, pool => {
            sqlx::query(sql)
                .bind(budget_id)
                .bind(soft_budget)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(())
    }

    /// Marks that a key's spend crossed its soft budget, so the crossing is reported once.
    pub async fn set_soft_budget_cooldown(&self, token: &str, on: bool) -> Result<(), DbError> {
        let sql = r#"UPDATE "LiteLLM_VerificationToken" SET soft_budget_cooldown = $2
            WHERE token = $1"#;
        on_pool!(self, pool => {
            sqlx::query(sql).bind(token).bind(on).execute(pool).await?.rows_affected()
        });
        Ok(())
    }

    /// Sets a key's spend outright (`/key/update` with `spend`).
    pub async fn set_key_spend(&self, token: &str, spend: f64) -> Result<bool, DbError> {
        let sql = r#"UPDATE "LiteLLM_VerificationToken" SET spend = $2 WHERE token = $1"#;
        let n = on_pool!(self, pool => {
            sqlx::query(sql)
                .bind(token)
                .bind(spend)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(n == 1)
    }

    /// Deletes keys by token hash; returns the tokens that existed.
    pub async fn delete_keys(&self, tokens: &[String]) -> Result<Vec<String>, DbError> {
        // Different on purpose: one statement over a Postgres array; SQLite has no arrays, so
        // one delete per token in a transaction.
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
    ) -> Result<bool, DbError> {
        let sql = r#"UPDATE "LiteLLM_VerificationToken" SET blocked = $2, updated_at = $3
                     WHERE token = $1"#;
        let n = on_pool!(self, pool => {
            sqlx::query(sql)
                .bind(token)
                .bind(blocked)
                .bind(now)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(n == 1)
    }

    /// Gives the key `token` a new token hash and `key_name` (`/key/regenerate`), everything
    /// else kept; `Ok(false)` when there is no such key.
    pub async fn rename_key(
        &self,
        token: &str,
        new_token: &str,
        key_name: &str,
        now: NaiveDateTime,
    ) -> Result<bool, DbError> {
        let sql = r#"UPDATE "LiteLLM_VerificationToken" SET token = $2, key_name = $3, updated_at = $4
                     WHERE token = $1"#;
        let n = on_pool!(self, pool => {
            sqlx::query(sql)
                .bind(token)
                .bind(new_token)
                .bind(key_name)
                .bind(now)
                .execute(pool)
                .await?
                .rows_affected()
        });
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
    ) -> Result<(Vec<KeyRecord>, i64), DbError> {
        // The casts: Postgres cannot infer the type of a parameter only compared with NULL.
        let filter = "(CAST($1 AS TEXT) IS NULL OR user_id = $1)
                      AND (CAST($2 AS TEXT) IS NULL OR team_id = $2)
                      AND (CAST($3 AS TEXT) IS NULL OR key_alias = $3)";
        let page_sql = format!(
            r#"SELECT {KEY_COLUMNS} FROM "LiteLLM_VerificationToken" WHERE {filter}
               ORDER BY created_at DESC NULLS LAST, token LIMIT $4 OFFSET $5"#
        );
        let count_sql =
            format!(r#"SELECT COUNT(*) FROM "LiteLLM_VerificationToken" WHERE {filter}"#);
        Ok(on_pool!(self, pool => {
            let keys = sqlx::query_as(sqlx::AssertSqlSafe(page_sql))
                .bind(user_id)
                .bind(team_id)
                .bind(key_alias)
                .bind(limit)
                .bind(offset)
                .fetch_all(pool)
                .await?;
            let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(count_sql))
                .bind(user_id)
                .bind(team_id)
                .bind(key_alias)
                .fetch_one(pool)
                .await?;
            (keys, total)
        }))
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
    ) -> Result<bool, DbError> {
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
    ) -> Result<bool, DbError> {
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
    ) -> Result<bool, DbError> {
        let spend = if zero_spend { "spend = 0, " } else { "" };
        // `IS NOT DISTINCT FROM`: equal, or both NULL (SQLite's `IS`, spelled the way both
        // dialects accept; SQLite has it since 3.39, and sqlx bundles a newer one).
        let sql = format!(
            r#"UPDATE "{table}" SET {spend}budget_reset_at = $2
               WHERE {id_column} = $1 AND budget_reset_at IS NOT DISTINCT FROM $3"#
        );
        let n = on_pool!(self, pool => {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(id)
                .bind(next)
                .bind(expected)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(n == 1)
    }

    /// The team row, if any.
    pub async fn get_team(&self, team_id: &str) -> Result<Option<TeamRecord>, DbError> {
        let sql =
            format!(r#"SELECT {TEAM_READ_COLUMNS} FROM "LiteLLM_TeamTable" WHERE team_id = $1"#);
        Ok(on_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(team_id)
                .fetch_optional(pool)
                .await?
        }))
    }

    /// Inserts or replaces a team row's limits and spend (for tests and tooling; the
    /// `/team/*` routes use [`KeyStore::insert_team`] and [`KeyStore::update_team`]).
    pub async fn upsert_team(&self, team: &TeamRecord) -> Result<(), DbError> {
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
        on_pool!(self, pool => {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(&team.team_id)
                .bind(&team.team_alias)
                .bind(pool.encode_list(&team.models))
                .bind(team.max_budget)
                .bind(team.spend)
                .bind(team.rpm_limit)
                .bind(team.tpm_limit)
                .bind(team.max_parallel_requests)
                .bind(&team.budget_duration)
                .bind(team.budget_reset_at)
                .bind(team.blocked)
                .bind(pool.encode_json(&team.metadata))
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Inserts a user row with no limits if missing (for tests and tooling: spend is added to
    /// a key's user only when the user row exists).
    pub async fn ensure_user(&self, user_id: &str) -> Result<(), DbError> {
        let sql = r#"INSERT INTO "LiteLLM_UserTable" (user_id) VALUES ($1)
                     ON CONFLICT (user_id) DO NOTHING"#;
        on_pool!(self, pool => {
            sqlx::query(sql).bind(user_id).execute(pool).await?;
        });
        Ok(())
    }

    /// What a key needs of its user row, if it exists.
    pub async fn get_user_row(&self, user_id: &str) -> Result<Option<UserRow>, DbError> {
        Ok(self.get_user(user_id).await?.map(|u| UserRow {
            user_id: u.user_id,
            user_role: u.user_role,
            max_budget: u.max_budget,
            spend: u.spend,
            models: u.models,
            budget_duration: u.budget_duration,
            budget_reset_at: u.budget_reset_at,
        }))
    }

    /// Sets a user row's `max_budget`, creating the row if missing (HX has no `/user/*` routes
    /// yet; this is for tests and tooling).
    pub async fn set_user_budget(
        &self,
        user_id: &str,
        max_budget: Option<f64>,
    ) -> Result<(), DbError> {
        let sql = r#"INSERT INTO "LiteLLM_UserTable" (user_id, max_budget) VALUES ($1, $2)
                     ON CONFLICT (user_id) DO UPDATE SET max_budget = excluded.max_budget"#;
        on_pool!(self, pool => {
            sqlx::query(sql)
                .bind(user_id)
                .bind(max_budget)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// `spend` of a user row, if it exists.
    pub async fn user_spend(&self, user_id: &str) -> Result<Option<f64>, DbError> {
        let sql = r#"SELECT spend FROM "LiteLLM_UserTable" WHERE user_id = $1"#;
        Ok(on_pool!(self, pool => {
            sqlx::query_scalar(sql).bind(user_id).fetch_optional(pool).await?
        }))
    }
}

/// How values of LiteLLM's array and JSON columns are bound: Postgres `text[]` and `jsonb`,
/// SQLite JSON text (timestamps bind alike: sqlx writes SQLite's as text). Implemented on the
/// two pool types, so that an `on_pool!` body picks its dialect's encoding by the type of
/// `pool`.
pub(super) trait Encoders {
    type List<'a>;
    type Json<'a>;
    /// A `models` list.
    fn encode_list<'a>(&self, list: &'a [String]) -> Self::List<'a>;
    /// A `metadata` object.
    fn encode_json<'a>(&self, value: &'a Value) -> Self::Json<'a>;
}

impl Encoders for PgPool {
    type List<'a> = &'a [String];
    type Json<'a> = &'a Value;

    fn encode_list<'a>(&self, list: &'a [String]) -> &'a [String] {
        list
    }

    fn encode_json<'a>(&self, value: &'a Value) -> &'a Value {
        value
    }
}

impl Encoders for SqlitePool {
    type List<'a> = String;
    type Json<'a> = String;

    fn encode_list(&self, list: &[String]) -> String {
        serde_json::to_string(list).unwrap_or_else(|_| "[]".to_string())
    }

    fn encode_json(&self, value: &Value) -> String {
        value.to_string()
    }
}

/// How the columns stored differently in the two dialects are read back (the list and JSON
/// columns, and timestamps, which SQLite keeps as text).
pub(super) trait Decoders {
    /// A `models` list; NULL reads as empty.
    fn list(&self, column: &str) -> Result<Vec<String>, sqlx::Error>;
    /// A `metadata` object; NULL reads as `{}`.
    fn object(&self, column: &str) -> Result<Value, sqlx::Error>;
    /// A timestamp column.
    fn time(&self, column: &str) -> Result<Option<NaiveDateTime>, sqlx::Error>;
}

impl Decoders for PgRow {
    fn list(&self, column: &str) -> Result<Vec<String>, sqlx::Error> {
        Ok(self
            .try_get::<Option<Vec<String>>, _>(column)?
            .unwrap_or_default())
    }

    fn object(&self, column: &str) -> Result<Value, sqlx::Error> {
        Ok(self
            .try_get::<Option<Value>, _>(column)?
            .unwrap_or_else(|| Value::Object(Default::default())))
    }

    fn time(&self, column: &str) -> Result<Option<NaiveDateTime>, sqlx::Error> {
        self.try_get(column)
    }
}

impl Decoders for SqliteRow {
    fn list(&self, column: &str) -> Result<Vec<String>, sqlx::Error> {
        sqlite_json(self, column)
    }

    fn object(&self, column: &str) -> Result<Value, sqlx::Error> {
        let value: Value = sqlite_json(self, column)?;
        Ok(if value.is_null() {
            Value::Object(Default::default())
        } else {
            value
        })
    }

    fn time(&self, column: &str) -> Result<Option<NaiveDateTime>, sqlx::Error> {
        let text: Option<String> = self.try_get(column)?;
        Ok(text.and_then(|t| parse_sqlite_time(&t)))
    }
}

/// A JSON text column of SQLite; a malformed value reads as the default rather than failing
/// every request of that key.
fn sqlite_json<T: serde::de::DeserializeOwned + Default>(
    row: &SqliteRow,
    column: &str,
) -> Result<T, sqlx::Error> {
    let text: Option<String> = row.try_get(column)?;
    Ok(text
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default())
}

/// Timestamps written by sqlx (`%F %T%.f`) or by SQLite's `strftime` defaults.
fn parse_sqlite_time(text: &str) -> Option<NaiveDateTime> {
    NaiveDateTime::from_str(&text.replace(' ', "T")).ok()
}

/// [`KeyRecord`] and [`TeamRecord`] from a row of either dialect (for `query_as`): one body,
/// expanded per row type, because `Row::try_get` decodes through the concrete database and a
/// generic impl would need a `Decode + Type` bound per column type. The columns stored
/// differently go through [`Decoders`].
macro_rules! records_from_rows {
    ($($row:ty),+) => {$(
        impl<'r> sqlx::FromRow<'r, $row> for KeyRecord {
            fn from_row(row: &'r $row) -> Result<Self, sqlx::Error> {
                Ok(KeyRecord {
                    token: row.try_get("token")?,
                    key_name: row.try_get("key_name")?,
                    key_alias: row.try_get("key_alias")?,
                    spend: row.try_get("spend")?,
                    max_budget: row.try_get("max_budget")?,
                    budget_duration: row.try_get("budget_duration")?,
                    budget_reset_at: row.time("budget_reset_at")?,
                    expires: row.time("expires")?,
                    models: row.list("models")?,
                    rpm_limit: row.try_get("rpm_limit")?,
                    tpm_limit: row.try_get("tpm_limit")?,
                    max_parallel_requests: row.try_get("max_parallel_requests")?,
                    metadata: row.object("metadata")?,
                    blocked: row.try_get::<Option<bool>, _>("blocked")?.unwrap_or(false),
                    user_id: row.try_get("user_id")?,
                    team_id: row.try_get("team_id")?,
                    created_at: row.time("created_at")?,
                    updated_at: row.time("updated_at")?,
                    aliases: row.object("aliases")?,
                    allowed_routes: row.list("allowed_routes")?,
                    model_max_budget: row.object("model_max_budget")?,
                    config: row.object("config")?,
                    permissions: row.object("permissions")?,
                    allowed_cache_controls: row.list("allowed_cache_controls")?,
                    budget_id: row.try_get("budget_id")?,
                    // Only the single-key read joins the budget row.
                    soft_budget: row.try_get("soft_budget").ok().flatten(),
                    soft_budget_cooldown: row
                        .try_get::<Option<bool>, _>("soft_budget_cooldown")?
                        .unwrap_or(false),
                })
            }
        }

        impl<'r> sqlx::FromRow<'r, $row> for TeamRecord {
            fn from_row(row: &'r $row) -> Result<Self, sqlx::Error> {
                Ok(TeamRecord {
                    team_id: row.try_get("team_id")?,
                    team_alias: row.try_get("team_alias")?,
                    models: row.list("models")?,
                    max_budget: row.try_get("max_budget")?,
                    spend: row.try_get("spend")?,
                    rpm_limit: row.try_get("rpm_limit")?,
                    tpm_limit: row.try_get("tpm_limit")?,
                    max_parallel_requests: row.try_get("max_parallel_requests")?,
                    budget_duration: row.try_get("budget_duration")?,
                    budget_reset_at: row.time("budget_reset_at")?,
                    blocked: row.try_get::<Option<bool>, _>("blocked")?.unwrap_or(false),
                    metadata: row.object("metadata")?,
                    // The columns below are read only by the full team read
                    // (`TEAM_READ_COLUMNS`); a narrower select leaves them empty.
                    organization_id: row.try_get("organization_id").ok().flatten(),
                    admins: row.list("admins").unwrap_or_default(),
                    members: row.list("members").unwrap_or_default(),
                    members_with_roles: members_list(row.object("members_with_roles").ok()),
                    model_max_budget: row
                        .object("model_max_budget")
                        .unwrap_or_else(|_| Value::Object(Default::default())),
                    model_id: row.try_get("model_id").ok().flatten(),
                    model_aliases: row
                        .object("model_aliases")
                        .unwrap_or_else(|_| Value::Object(Default::default())),
                    created_at: row.time("created_at").ok().flatten(),
                    updated_at: row.time("updated_at").ok().flatten(),
                })
            }
        }
    )+};
}

records_from_rows!(PgRow, SqliteRow);

/// `members_with_roles` as a list: LiteLLM's Postgres default is `{}` (an empty object), which
/// means no members.
fn members_list(value: Option<Value>) -> Value {
    match value {
        Some(Value::Array(list)) => Value::Array(list),
        _ => Value::Array(Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_timestamps_parse_in_both_forms() {
        assert!(parse_sqlite_time("2025-01-02 03:04:05.678").is_some());
        assert!(parse_sqlite_time("2025-01-02 03:04:05").is_some());
        assert!(parse_sqlite_time("garbage").is_none());
    }
}
