//! End users (LiteLLM's customers, the `user` of a request): `"LiteLLM_EndUserTable"`, with
//! their budget rows in `"LiteLLM_BudgetTable"`, in the form LiteLLM writes them.

use sqlx::Row;

use super::{BudgetRow, DbError, KeyStore};

/// One row of `"LiteLLM_EndUserTable"`, with its budget row when it has one.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EndUserRecord {
    pub user_id: String,
    pub alias: Option<String>,
    pub spend: f64,
    pub allowed_model_region: Option<String>,
    pub default_model: Option<String>,
    pub budget_id: Option<String>,
    pub blocked: bool,
    /// Read with the row; written through the budget functions.
    pub budget: Option<BudgetRow>,
}

const END_USER_COLUMNS: &str =
    "user_id, alias, spend, allowed_model_region, default_model, budget_id, blocked";

impl KeyStore {
    /// The end user, with its budget row.
    pub async fn get_end_user(&self, user_id: &str) -> Result<Option<EndUserRecord>, DbError> {
        let sql =
            format!(r#"SELECT {END_USER_COLUMNS} FROM "LiteLLM_EndUserTable" WHERE user_id = $1"#);
        let row: Option<EndUserRecord> = on_pool!(self, pool => {
            match sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(user_id)
                .fetch_optional(pool)
                .await?
            {
                Some(row) => Some(EndUserRecord {
                    user_id: row.try_get("user_id")?,
                    alias: row.try_get("alias")?,
                    spend: row.try_get("spend")?,
                    allowed_model_region: row.try_get("allowed_model_region")?,
                    default_model: row.try_get("default_model")?,
                    budget_id: row.try_get("budget_id")?,
                    blocked: row.try_get::<Option<bool>, _>("blocked")?.unwrap_or(false),
                    budget: None,
                }),
                None => None,
            }
        });
        let Some(mut record) = row else {
            return Ok(None);
        };
        if let Some(id) = &record.budget_id {
            record.budget = self.get_budget(id).await?;
        }
        Ok(Some(record))
    }

    /// Every end user id, in order (`/customer/list` reads each).
    pub async fn end_user_ids(&self) -> Result<Vec<String>, DbError> {
        let sql = r#"SELECT user_id FROM "LiteLLM_EndUserTable" ORDER BY user_id"#;
        Ok(on_pool!(self, pool => {
            sqlx::query_scalar(sql).fetch_all(pool).await?
        }))
    }

    /// Inserts an end user. `Ok(false)` when the id is taken.
    pub async fn insert_end_user(&self, end_user: &EndUserRecord) -> Result<bool, DbError> {
        let sql = format!(
            r#"INSERT INTO "LiteLLM_EndUserTable" ({END_USER_COLUMNS})
               VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (user_id) DO NOTHING"#
        );
        let n = on_pool!(self, pool => {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(&end_user.user_id)
                .bind(&end_user.alias)
                .bind(end_user.spend)
                .bind(&end_user.allowed_model_region)
                .bind(&end_user.default_model)
                .bind(&end_user.budget_id)
                .bind(end_user.blocked)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(n == 1)
    }

    /// Writes an end user's settable columns (all but `user_id` and `spend`).
    pub async fn update_end_user(&self, end_user: &EndUserRecord) -> Result<bool, DbError> {
        let sql = r#"UPDATE "LiteLLM_EndUserTable" SET alias = $2, allowed_model_region = $3,
                default_model = $4, budget_id = $5, blocked = $6
            WHERE user_id = $1"#;
        let n = on_pool!(self, pool => {
            sqlx::query(sql)
                .bind(&end_user.user_id)
                .bind(&end_user.alias)
                .bind(&end_user.allowed_model_region)
                .bind(&end_user.default_model)
                .bind(&end_user.budget_id)
                .bind(end_user.blocked)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(n == 1)
    }

    /// Sets `blocked` on end users, creating the rows that are missing (LiteLLM's
    /// `/customer/block` upserts).
    pub async fn set_end_users_blocked(
        &self,
        ids: &[String],
        blocked: bool,
    ) -> Result<(), DbError> {
        let sql = r#"INSERT INTO "LiteLLM_EndUserTable" (user_id, spend, blocked) VALUES ($1, 0, $2)
            ON CONFLICT (user_id) DO UPDATE SET blocked = excluded.blocked"#;
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            for id in ids {
                sqlx::query(sql).bind(id).bind(blocked).execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Deletes end users (their budget rows stay, as in LiteLLM); how many were deleted.
    pub async fn delete_end_users(&self, ids: &[String]) -> Result<u64, DbError> {
        let sql = r#"DELETE FROM "LiteLLM_EndUserTable" WHERE user_id = $1"#;
        Ok(on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let mut n = 0;
            for id in ids {
                n += sqlx::query(sql).bind(id).execute(&mut *tx).await?.rows_affected();
            }
            tx.commit().await?;
            n
        }))
    }

    /// Zeroes the spend of the end users on a budget (its period ended).
    pub async fn reset_end_user_spend(&self, budget_id: &str) -> Result<(), DbError> {
        let sql = r#"UPDATE "LiteLLM_EndUserTable" SET spend = 0 WHERE budget_id = $1"#;
        on_pool!(self, pool => {
            sqlx::query(sql).bind(budget_id).execute(pool).await?;
        });
        Ok(())
    }
}
