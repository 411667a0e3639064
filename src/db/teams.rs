//! Team rows as the `/team/*` routes write them: `"LiteLLM_TeamTable"`, the team's model
//! aliases in `"LiteLLM_ModelTable"`, its members' rows in `"LiteLLM_TeamMembership"` with
//! their budgets in `"LiteLLM_BudgetTable"`, and the `teams` list of each member's user row,
//! all in the form LiteLLM writes them.

use chrono::NaiveDateTime;
use serde_json::Value;
use sqlx::Row;

use super::keys::{Decoders, Encoders, TEAM_READ_COLUMNS};
use super::{DbError, KeyStore, TeamRecord};

/// One row of `"LiteLLM_BudgetTable"`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BudgetRow {
    pub budget_id: String,
    pub max_budget: Option<f64>,
    pub soft_budget: Option<f64>,
    pub max_parallel_requests: Option<i32>,
    pub tpm_limit: Option<i64>,
    pub rpm_limit: Option<i64>,
    pub model_max_budget: Option<Value>,
    pub budget_duration: Option<String>,
    pub budget_reset_at: Option<NaiveDateTime>,
    pub created_at: Option<NaiveDateTime>,
    pub created_by: String,
    pub updated_at: Option<NaiveDateTime>,
    pub updated_by: String,
}

/// One row of `"LiteLLM_TeamMembership"`, with its budget row when it has one.
#[derive(Debug, Clone, PartialEq)]
pub struct MembershipRow {
    pub user_id: String,
    pub team_id: String,
    pub spend: f64,
    pub budget_id: Option<String>,
    pub budget: Option<BudgetRow>,
}

const BUDGET_COLUMNS: &str = r#"budget_id, max_budget, soft_budget, max_parallel_requests,
    tpm_limit, rpm_limit, model_max_budget, budget_duration, budget_reset_at, created_at,
    created_by, updated_at, updated_by"#;

impl KeyStore {
    /// Inserts a new team row (spend 0). `Ok(false)` when the team id is taken.
    pub async fn insert_team(&self, team: &TeamRecord) -> Result<bool, DbError> {
        let sql = r#"INSERT INTO "LiteLLM_TeamTable" (team_id, team_alias, models, max_budget,
                rpm_limit, tpm_limit, max_parallel_requests, budget_duration, budget_reset_at,
                blocked, metadata, organization_id, admins, members, members_with_roles,
                model_max_budget, model_id, created_at, updated_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,
                $18, $18)
            ON CONFLICT (team_id) DO NOTHING"#;
        let n = on_pool!(self, pool => {
            sqlx::query(sql)
                .bind(&team.team_id)
                .bind(&team.team_alias)
                .bind(pool.encode_list(&team.models))
                .bind(team.max_budget)
                .bind(team.rpm_limit)
                .bind(team.tpm_limit)
                .bind(team.max_parallel_requests)
                .bind(&team.budget_duration)
                .bind(team.budget_reset_at)
                .bind(team.blocked)
                .bind(pool.encode_json(&team.metadata))
                .bind(&team.organization_id)
                .bind(pool.encode_list(&team.admins))
                .bind(pool.encode_list(&team.members))
                .bind(pool.encode_json(&team.members_with_roles))
                .bind(pool.encode_json(&team.model_max_budget))
                .bind(team.model_id)
                .bind(team.created_at)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(n == 1)
    }

    /// Writes a team's settable columns (all but `team_id`, `spend` and `created_at`: spend
    /// moves only through increments and resets). `Ok(false)` when the team is gone.
    pub async fn update_team(&self, team: &TeamRecord) -> Result<bool, DbError> {
        let sql = r#"UPDATE "LiteLLM_TeamTable" SET team_alias = $2, models = $3,
                max_budget = $4, rpm_limit = $5, tpm_limit = $6, max_parallel_requests = $7,
                budget_duration = $8, budget_reset_at = $9, blocked = $10, metadata = $11,
                organization_id = $12, members_with_roles = $13, model_max_budget = $14,
                model_id = $15, updated_at = $16
            WHERE team_id = $1"#;
        let n = on_pool!(self, pool => {
            sqlx::query(sql)
                .bind(&team.team_id)
                .bind(&team.team_alias)
                .bind(pool.encode_list(&team.models))
                .bind(team.max_budget)
                .bind(team.rpm_limit)
                .bind(team.tpm_limit)
                .bind(team.max_parallel_requests)
                .bind(&team.budget_duration)
                .bind(team.budget_reset_at)
                .bind(team.blocked)
                .bind(pool.encode_json(&team.metadata))
                .bind(&team.organization_id)
                .bind(pool.encode_json(&team.members_with_roles))
                .bind(pool.encode_json(&team.model_max_budget))
                .bind(team.model_id)
                .bind(team.updated_at)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(n == 1)
    }

    /// Every team, by id (the `/team/list` routes filter and page what they show).
    pub async fn list_teams(&self) -> Result<Vec<TeamRecord>, DbError> {
        let sql =
            format!(r#"SELECT {TEAM_READ_COLUMNS} FROM "LiteLLM_TeamTable" ORDER BY team_id"#);
        Ok(on_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_all(pool).await?
        }))
    }

    /// Deletes a team as LiteLLM does: its keys, its membership rows, the team in its
    /// members' `teams` lists, and the row itself, in one transaction. Returns the token
    /// hashes of the deleted keys, or `None` when there was no such team.
    pub async fn delete_team(&self, team_id: &str) -> Result<Option<Vec<String>>, DbError> {
        let members = self.team_user_ids(team_id).await?;
        let tokens: Vec<String> = on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let exists: Option<String> = sqlx::query_scalar(
                r#"SELECT team_id FROM "LiteLLM_TeamTable" WHERE team_id = $1"#,
            )
            .bind(team_id)
            .fetch_optional(&mut *tx)
            .await?;
            if exists.is_none() {
                return Ok(None);
            }
            let tokens: Vec<String> = sqlx::query_scalar(
                r#"DELETE FROM "LiteLLM_VerificationToken" WHERE team_id = $1 RETURNING token"#,
            )
            .bind(team_id)
            .fetch_all(&mut *tx)
            .await?;
            sqlx::query(r#"DELETE FROM "LiteLLM_TeamMembership" WHERE team_id = $1"#)
                .bind(team_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query(r#"DELETE FROM "LiteLLM_TeamTable" WHERE team_id = $1"#)
                .bind(team_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            tokens
        });
        for user_id in members {
            self.remove_user_team(&user_id, team_id).await?;
        }
        Ok(Some(tokens))
    }

    /// Deletes a user's keys of a team (the user left it); their token hashes.
    pub async fn delete_member_keys(
        &self,
        team_id: &str,
        user_id: &str,
    ) -> Result<Vec<String>, DbError> {
        let sql = r#"DELETE FROM "LiteLLM_VerificationToken" WHERE team_id = $1 AND user_id = $2
            RETURNING token"#;
        Ok(on_pool!(self, pool => {
            sqlx::query_scalar(sql).bind(team_id).bind(user_id).fetch_all(pool).await?
        }))
    }

    /// The users whose `teams` list names the team.
    async fn team_user_ids(&self, team_id: &str) -> Result<Vec<String>, DbError> {
        let sql = r#"SELECT user_id, teams FROM "LiteLLM_UserTable""#;
        let rows: Vec<(String, Vec<String>)> = on_pool!(self, pool => {
            let rows = sqlx::query(sql).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                out.push((row.try_get("user_id")?, row.list("teams")?));
            }
            out
        });
        Ok(rows
            .into_iter()
            .filter(|(_, teams)| teams.iter().any(|t| t == team_id))
            .map(|(user_id, _)| user_id)
            .collect())
    }

    /// A user's `teams` list, `None` when there is no such user.
    pub async fn user_teams(&self, user_id: &str) -> Result<Option<Vec<String>>, DbError> {
        let sql = r#"SELECT teams FROM "LiteLLM_UserTable" WHERE user_id = $1"#;
        Ok(on_pool!(self, pool => {
            match sqlx::query(sql).bind(user_id).fetch_optional(pool).await? {
                Some(row) => Some(row.list("teams")?),
                None => None,
            }
        }))
    }

    async fn set_user_teams(&self, user_id: &str, teams: &[String]) -> Result<(), DbError> {
        let sql = r#"UPDATE "LiteLLM_UserTable" SET teams = $2, updated_at = CURRENT_TIMESTAMP
            WHERE user_id = $1"#;
        on_pool!(self, pool => {
            sqlx::query(sql)
                .bind(user_id)
                .bind(pool.encode_list(teams))
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Adds a team to a user's `teams` list (once).
    pub async fn add_user_team(&self, user_id: &str, team_id: &str) -> Result<(), DbError> {
        if let Some(mut teams) = self.user_teams(user_id).await?
            && !teams.iter().any(|t| t == team_id)
        {
            teams.push(team_id.to_string());
            self.set_user_teams(user_id, &teams).await?;
        }
        Ok(())
    }

    /// Removes a team from a user's `teams` list.
    pub async fn remove_user_team(&self, user_id: &str, team_id: &str) -> Result<(), DbError> {
        if let Some(teams) = self.user_teams(user_id).await?
            && teams.iter().any(|t| t == team_id)
        {
            let kept: Vec<String> = teams.into_iter().filter(|t| t != team_id).collect();
            self.set_user_teams(user_id, &kept).await?;
        }
        Ok(())
    }

    /// Creates the `"LiteLLM_ModelTable"` row holding a team's `model_aliases`; its id.
    pub async fn insert_model_aliases(&self, aliases: &Value, by: &str) -> Result<i32, DbError> {
        let sql = r#"INSERT INTO "LiteLLM_ModelTable" (aliases, created_by, updated_by)
            VALUES ($1, $2, $2) RETURNING id"#;
        Ok(on_pool!(self, pool => {
            sqlx::query_scalar(sql)
                .bind(pool.encode_json(aliases))
                .bind(by)
                .fetch_one(pool)
                .await?
        }))
    }

    /// Replaces the aliases of a `"LiteLLM_ModelTable"` row.
    pub async fn update_model_aliases(
        &self,
        id: i32,
        aliases: &Value,
        by: &str,
    ) -> Result<(), DbError> {
        let sql = r#"UPDATE "LiteLLM_ModelTable" SET aliases = $2, updated_by = $3,
            updated_at = CURRENT_TIMESTAMP WHERE id = $1"#;
        on_pool!(self, pool => {
            sqlx::query(sql)
                .bind(id)
                .bind(pool.encode_json(aliases))
                .bind(by)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    // ----- budgets ---------------------------------------------------------------------------

    /// Inserts a budget row. `Ok(false)` when the id is taken.
    pub async fn insert_budget(&self, budget: &BudgetRow) -> Result<bool, DbError> {
        let sql = r#"INSERT INTO "LiteLLM_BudgetTable" (budget_id, max_budget, soft_budget,
                max_parallel_requests, tpm_limit, rpm_limit, model_max_budget, budget_duration,
                budget_reset_at, created_by, updated_by)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
            ON CONFLICT (budget_id) DO NOTHING"#;
        let n = on_pool!(self, pool => {
            sqlx::query(sql)
                .bind(&budget.budget_id)
                .bind(budget.max_budget)
                .bind(budget.soft_budget)
                .bind(budget.max_parallel_requests)
                .bind(budget.tpm_limit)
                .bind(budget.rpm_limit)
                .bind(budget.model_max_budget.as_ref().map(|v| pool.encode_json(v)))
                .bind(&budget.budget_duration)
                .bind(budget.budget_reset_at)
                .bind(&budget.created_by)
                .bind(&budget.updated_by)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(n == 1)
    }

    /// Writes a budget row's settable columns. `Ok(false)` when it is gone.
    pub async fn update_budget(&self, budget: &BudgetRow) -> Result<bool, DbError> {
        let sql = r#"UPDATE "LiteLLM_BudgetTable" SET max_budget = $2, soft_budget = $3,
                max_parallel_requests = $4, tpm_limit = $5, rpm_limit = $6,
                model_max_budget = $7, budget_duration = $8, budget_reset_at = $9,
                updated_by = $10, updated_at = CURRENT_TIMESTAMP
            WHERE budget_id = $1"#;
        let n = on_pool!(self, pool => {
            sqlx::query(sql)
                .bind(&budget.budget_id)
                .bind(budget.max_budget)
                .bind(budget.soft_budget)
                .bind(budget.max_parallel_requests)
                .bind(budget.tpm_limit)
                .bind(budget.rpm_limit)
                .bind(budget.model_max_budget.as_ref().map(|v| pool.encode_json(v)))
                .bind(&budget.budget_duration)
                .bind(budget.budget_reset_at)
                .bind(&budget.updated_by)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(n == 1)
    }

    /// The budget row, if any.
    pub async fn get_budget(&self, budget_id: &str) -> Result<Option<BudgetRow>, DbError> {
        let sql =
            format!(r#"SELECT {BUDGET_COLUMNS} FROM "LiteLLM_BudgetTable" WHERE budget_id = $1"#);
        Ok(on_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(budget_id)
                .fetch_optional(pool)
                .await?
        }))
    }

    /// Every budget row, by id.
    pub async fn list_budgets(&self) -> Result<Vec<BudgetRow>, DbError> {
        let sql =
            format!(r#"SELECT {BUDGET_COLUMNS} FROM "LiteLLM_BudgetTable" ORDER BY budget_id"#);
        Ok(on_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_all(pool).await?
        }))
    }

    /// Deletes a budget row. `Ok(false)` when there was none.
    pub async fn delete_budget(&self, budget_id: &str) -> Result<bool, DbError> {
        let sql = r#"DELETE FROM "LiteLLM_BudgetTable" WHERE budget_id = $1"#;
        let n = on_pool!(self, pool => {
            sqlx::query(sql).bind(budget_id).execute(pool).await?.rows_affected()
        });
        Ok(n == 1)
    }

    /// Starts a new period of a budget row ([`KeyStore::reset_key_budget`]'s rule: only if
    /// `budget_reset_at` still equals `expected`). Spend lives on the rows using the budget.
    pub async fn reset_budget_row(
        &self,
        budget_id: &str,
        expected: Option<NaiveDateTime>,
        next: NaiveDateTime,
    ) -> Result<bool, DbError> {
        let sql = r#"UPDATE "LiteLLM_BudgetTable" SET budget_reset_at = $2
            WHERE budget_id = $1 AND budget_reset_at IS NOT DISTINCT FROM $3"#;
        let n = on_pool!(self, pool => {
            sqlx::query(sql)
                .bind(budget_id)
                .bind(next)
                .bind(expected)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(n == 1)
    }

    // ----- memberships -----------------------------------------------------------------------

    /// The membership rows of a team, with their budgets.
    pub async fn team_memberships(&self, team_id: &str) -> Result<Vec<MembershipRow>, DbError> {
        let sql = r#"SELECT user_id, team_id, spend, budget_id FROM "LiteLLM_TeamMembership"
            WHERE team_id = $1 ORDER BY user_id"#;
        let rows: Vec<(String, String, f64, Option<String>)> = on_pool!(self, pool => {
            sqlx::query_as(sql).bind(team_id).fetch_all(pool).await?
        });
        let mut out = Vec::with_capacity(rows.len());
        for (user_id, team_id, spend, budget_id) in rows {
            let budget = match &budget_id {
                Some(id) => self.get_budget(id).await?,
                None => None,
            };
            out.push(MembershipRow {
                user_id,
                team_id,
                spend,
                budget_id,
                budget,
            });
        }
        Ok(out)
    }

    /// One member's row in a team, with its budget.
    pub async fn get_membership(
        &self,
        user_id: &str,
        team_id: &str,
    ) -> Result<Option<MembershipRow>, DbError> {
        let sql = r#"SELECT spend, budget_id FROM "LiteLLM_TeamMembership"
            WHERE user_id = $1 AND team_id = $2"#;
        let row: Option<(f64, Option<String>)> = on_pool!(self, pool => {
            sqlx::query_as(sql)
                .bind(user_id)
                .bind(team_id)
                .fetch_optional(pool)
                .await?
        });
        let Some((spend, budget_id)) = row else {
            return Ok(None);
        };
        let budget = match &budget_id {
            Some(id) => self.get_budget(id).await?,
            None => None,
        };
        Ok(Some(MembershipRow {
            user_id: user_id.to_string(),
            team_id: team_id.to_string(),
            spend,
            budget_id,
            budget,
        }))
    }

    /// Creates a member's row, or points an existing one at `budget_id`.
    pub async fn upsert_membership(
        &self,
        user_id: &str,
        team_id: &str,
        budget_id: Option<&str>,
    ) -> Result<(), DbError> {
        let sql = r#"INSERT INTO "LiteLLM_TeamMembership" (user_id, team_id, budget_id)
            VALUES ($1, $2, $3)
            ON CONFLICT (user_id, team_id) DO UPDATE SET budget_id = excluded.budget_id"#;
        on_pool!(self, pool => {
            sqlx::query(sql)
                .bind(user_id)
                .bind(team_id)
                .bind(budget_id)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Deletes a member's row.
    pub async fn delete_membership(&self, user_id: &str, team_id: &str) -> Result<(), DbError> {
        let sql = r#"DELETE FROM "LiteLLM_TeamMembership" WHERE user_id = $1 AND team_id = $2"#;
        on_pool!(self, pool => {
            sqlx::query(sql).bind(user_id).bind(team_id).execute(pool).await?;
        });
        Ok(())
    }

    /// Zeroes a member's spend (its budget period ended).
    pub async fn reset_membership_spend(
        &self,
        user_id: &str,
        team_id: &str,
    ) -> Result<(), DbError> {
        let sql = r#"UPDATE "LiteLLM_TeamMembership" SET spend = 0
            WHERE user_id = $1 AND team_id = $2"#;
        on_pool!(self, pool => {
            sqlx::query(sql).bind(user_id).bind(team_id).execute(pool).await?;
        });
        Ok(())
    }
}

/// [`BudgetRow`] from a row of either dialect (one body per row type, as for the key rows).
macro_rules! budget_from_rows {
    ($($row:ty),+) => {$(
        impl<'r> sqlx::FromRow<'r, $row> for BudgetRow {
            fn from_row(row: &'r $row) -> Result<Self, sqlx::Error> {
                let model_max_budget = row.object("model_max_budget")?;
                Ok(BudgetRow {
                    budget_id: row.try_get("budget_id")?,
                    max_budget: row.try_get("max_budget")?,
                    soft_budget: row.try_get("soft_budget")?,
                    max_parallel_requests: row.try_get("max_parallel_requests")?,
                    tpm_limit: row.try_get("tpm_limit")?,
                    rpm_limit: row.try_get("rpm_limit")?,
                    model_max_budget: match model_max_budget {
                        Value::Object(ref map) if map.is_empty() => None,
                        other => Some(other),
                    },
                    budget_duration: row.try_get("budget_duration")?,
                    budget_reset_at: row.time("budget_reset_at")?,
                    created_at: row.time("created_at")?,
                    created_by: row.try_get("created_by")?,
                    updated_at: row.time("updated_at")?,
                    updated_by: row.try_get("updated_by")?,
                })
            }
        }
    )+};
}

budget_from_rows!(sqlx::postgres::PgRow, sqlx::sqlite::SqliteRow);
