//! User rows as the `/user/*` and `/team/member_*` routes write them: `"LiteLLM_UserTable"`,
//! in the form LiteLLM writes it.

use chrono::NaiveDateTime;
use serde_json::Value;
use sqlx::Row;

use super::keys::{Decoders, Encoders};
use super::{DbError, KeyStore};

/// One row of `"LiteLLM_UserTable"` (the columns HX reads and writes).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct UserRecord {
    pub user_id: String,
    pub user_alias: Option<String>,
    pub team_id: Option<String>,
    pub teams: Vec<String>,
    pub user_role: Option<String>,
    pub max_budget: Option<f64>,
    pub spend: f64,
    pub user_email: Option<String>,
    /// Empty means every model.
    pub models: Vec<String>,
    pub metadata: Value,
    pub max_parallel_requests: Option<i32>,
    pub tpm_limit: Option<i64>,
    pub rpm_limit: Option<i64>,
    pub budget_duration: Option<String>,
    pub budget_reset_at: Option<NaiveDateTime>,
    pub model_max_budget: Value,
    pub created_at: Option<NaiveDateTime>,
    pub updated_at: Option<NaiveDateTime>,
}

const USER_COLUMNS: &str = r#"user_id, user_alias, team_id, teams, user_role, max_budget, spend,
    user_email, models, metadata, max_parallel_requests, tpm_limit, rpm_limit, budget_duration,
    budget_reset_at, model_max_budget, created_at, updated_at"#;

impl KeyStore {
    /// The user row, if any.
    pub async fn get_user(&self, user_id: &str) -> Result<Option<UserRecord>, DbError> {
        let sql = format!(r#"SELECT {USER_COLUMNS} FROM "LiteLLM_UserTable" WHERE user_id = $1"#);
        Ok(on_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(user_id)
                .fetch_optional(pool)
                .await?
        }))
    }

    /// The users with this email (LiteLLM matches emails exactly).
    pub async fn users_by_email(&self, email: &str) -> Result<Vec<UserRecord>, DbError> {
        let sql = format!(
            r#"SELECT {USER_COLUMNS} FROM "LiteLLM_UserTable" WHERE user_email = $1
               ORDER BY user_id"#
        );
        Ok(on_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(email)
                .fetch_all(pool)
                .await?
        }))
    }

    /// Inserts a user row. `Ok(false)` when the user id is taken.
    pub async fn insert_user(&self, user: &UserRecord) -> Result<bool, DbError> {
        let sql = format!(
            r#"INSERT INTO "LiteLLM_UserTable" ({USER_COLUMNS})
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
                       $17, $17)
               ON CONFLICT (user_id) DO NOTHING"#
        );
        let n = on_pool!(self, pool => {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(&user.user_id)
                .bind(&user.user_alias)
                .bind(&user.team_id)
                .bind(pool.encode_list(&user.teams))
                .bind(&user.user_role)
                .bind(user.max_budget)
                .bind(user.spend)
                .bind(&user.user_email)
                .bind(pool.encode_list(&user.models))
                .bind(pool.encode_json(&user.metadata))
                .bind(user.max_parallel_requests)
                .bind(user.tpm_limit)
                .bind(user.rpm_limit)
                .bind(&user.budget_duration)
                .bind(user.budget_reset_at)
                .bind(pool.encode_json(&user.model_max_budget))
                .bind(user.created_at)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(n == 1)
    }

    /// Writes a user's settable columns (all but `user_id`, `teams`, `spend` and
    /// `created_at`). `Ok(false)` when the user is gone.
    pub async fn update_user(&self, user: &UserRecord) -> Result<bool, DbError> {
        let sql = r#"UPDATE "LiteLLM_UserTable" SET user_alias = $2, team_id = $3,
                user_role = $4, max_budget = $5, user_email = $6, models = $7, metadata = $8,
                max_parallel_requests = $9, tpm_limit = $10, rpm_limit = $11,
                budget_duration = $12, budget_reset_at = $13, model_max_budget = $14,
                updated_at = $15
            WHERE user_id = $1"#;
        let n = on_pool!(self, pool => {
            sqlx::query(sql)
                .bind(&user.user_id)
                .bind(&user.user_alias)
                .bind(&user.team_id)
                .bind(&user.user_role)
                .bind(user.max_budget)
                .bind(&user.user_email)
                .bind(pool.encode_list(&user.models))
                .bind(pool.encode_json(&user.metadata))
                .bind(user.max_parallel_requests)
                .bind(user.tpm_limit)
                .bind(user.rpm_limit)
                .bind(&user.budget_duration)
                .bind(user.budget_reset_at)
                .bind(pool.encode_json(&user.model_max_budget))
                .bind(user.updated_at)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(n == 1)
    }

    /// Sets a user's spend outright (`/user/update` with `spend`).
    pub async fn set_user_spend(&self, user_id: &str, spend: f64) -> Result<(), DbError> {
        let sql = r#"UPDATE "LiteLLM_UserTable" SET spend = $2 WHERE user_id = $1"#;
        on_pool!(self, pool => {
            sqlx::query(sql).bind(user_id).bind(spend).execute(pool).await?;
        });
        Ok(())
    }

    /// Deletes a user as LiteLLM does: the user's keys, its team memberships and the row, in
    /// one transaction. Returns the token hashes of the deleted keys, `None` when there was
    /// no such user.
    pub async fn delete_user(&self, user_id: &str) -> Result<Option<Vec<String>>, DbError> {
        Ok(on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let n = sqlx::query(r#"DELETE FROM "LiteLLM_UserTable" WHERE user_id = $1"#)
                .bind(user_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n == 0 {
                return Ok(None);
            }
            let tokens: Vec<String> = sqlx::query_scalar(
                r#"DELETE FROM "LiteLLM_VerificationToken" WHERE user_id = $1 RETURNING token"#,
            )
            .bind(user_id)
            .fetch_all(&mut *tx)
            .await?;
            sqlx::query(r#"DELETE FROM "LiteLLM_TeamMembership" WHERE user_id = $1"#)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Some(tokens)
        }))
    }

    /// Every user row, by id (the `/user/list` route filters, sorts and pages).
    pub async fn list_users(&self) -> Result<Vec<UserRecord>, DbError> {
        let sql = format!(r#"SELECT {USER_COLUMNS} FROM "LiteLLM_UserTable" ORDER BY user_id"#);
        Ok(on_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_all(pool).await?
        }))
    }

    /// How many keys each user has (for `/user/list`'s `key_count`).
    pub async fn key_counts_by_user(&self) -> Result<Vec<(String, i64)>, DbError> {
        let sql = r#"SELECT user_id, COUNT(*) FROM "LiteLLM_VerificationToken"
            WHERE user_id IS NOT NULL GROUP BY user_id"#;
        Ok(on_pool!(self, pool => {
            sqlx::query_as(sql).fetch_all(pool).await?
        }))
    }

    /// [`KeyStore::reset_key_budget`] for a user row.
    pub async fn reset_user_budget(
        &self,
        user_id: &str,
        expected: Option<NaiveDateTime>,
        next: NaiveDateTime,
        zero_spend: bool,
    ) -> Result<bool, DbError> {
        let spend = if zero_spend { "spend = 0, " } else { "" };
        let sql = format!(
            r#"UPDATE "LiteLLM_UserTable" SET {spend}budget_reset_at = $2
               WHERE user_id = $1 AND budget_reset_at IS NOT DISTINCT FROM $3"#
        );
        let n = on_pool!(self, pool => {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(user_id)
                .bind(next)
                .bind(expected)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(n == 1)
    }
}

/// [`UserRecord`] from a row of either dialect (one body per row type, as for the key rows).
macro_rules! users_from_rows {
    ($($row:ty),+) => {$(
        impl<'r> sqlx::FromRow<'r, $row> for UserRecord {
            fn from_row(row: &'r $row) -> Result<Self, sqlx::Error> {
                Ok(UserRecord {
                    user_id: row.try_get("user_id")?,
                    user_alias: row.try_get("user_alias")?,
                    team_id: row.try_get("team_id")?,
                    teams: row.list("teams")?,
                    user_role: row.try_get("user_role")?,
                    max_budget: row.try_get("max_budget")?,
                    spend: row.try_get("spend")?,
                    user_email: row.try_get("user_email")?,
                    models: row.list("models")?,
                    metadata: row.object("metadata")?,
                    max_parallel_requests: row.try_get("max_parallel_requests")?,
                    tpm_limit: row.try_get("tpm_limit")?,
                    rpm_limit: row.try_get("rpm_limit")?,
                    budget_duration: row.try_get("budget_duration")?,
                    budget_reset_at: row.time("budget_reset_at")?,
                    model_max_budget: row.object("model_max_budget")?,
                    created_at: row.time("created_at")?,
                    updated_at: row.time("updated_at")?,
                })
            }
        }
    )+};
}

users_from_rows!(sqlx::postgres::PgRow, sqlx::sqlite::SqliteRow);
