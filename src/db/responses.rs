//! Stored Responses API answers (`store: true` on a bridged deployment), in HX's own table
//! (`hx.responses` on Postgres, `hx_responses` in SQLite): each row one response, the input
//! items of its request and the whole response object, linked to the response it continued
//! (`previous_response_id`). A conversation is read back as one chain, oldest first, with a
//! recursive query. Who may read a row is decided above (the row keeps the hash of the key
//! that created it); rows older than the retention period are pruned in the background.

use sqlx::Row;

use super::{DbError, KeyStore};

/// A row as a [`StoredResponse`]; a macro so that one body decodes both backends' rows (each
/// `on_pool!` arm compiles it against its own row type).
macro_rules! stored {
    ($row:expr) => {{
        let row = $row;
        Ok::<_, sqlx::Error>(StoredResponse {
            id: row.try_get("id")?,
            api_key: row.try_get("api_key")?,
            model: row.try_get("model")?,
            previous_response_id: row.try_get("previous_response_id")?,
            created_at: row.try_get("created_at")?,
            input: row.try_get("input")?,
            response: row.try_get("response")?,
        })
    }};
}

/// One stored response.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredResponse {
    /// `resp_...`.
    pub id: String,
    /// The hash of the key that created it.
    pub api_key: String,
    /// The model name the client asked for.
    pub model: String,
    pub previous_response_id: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    /// The request's input items, a JSON array.
    pub input: String,
    /// The response object, JSON.
    pub response: String,
}

/// The longest chain a continuation reads back: far beyond any real conversation, and a bound
/// on a cycle a hand-edited table could hold.
pub const MAX_CHAIN: i64 = 10_000;

impl KeyStore {
    fn responses_table(&self) -> &'static str {
        match self {
            KeyStore::Postgres(_) => "hx.responses",
            KeyStore::Sqlite(_) => "hx_responses",
        }
    }

    /// Stores a response; an id stored already is replaced.
    pub async fn store_response(&self, r: &StoredResponse) -> Result<(), DbError> {
        let sql = format!(
            "INSERT INTO {} (id, api_key, model, previous_response_id, created_at, input, response)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (id) DO UPDATE SET api_key = excluded.api_key, model = excluded.model,
                 previous_response_id = excluded.previous_response_id,
                 created_at = excluded.created_at, input = excluded.input,
                 response = excluded.response",
            self.responses_table()
        );
        on_pool!(self, pool => {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(&r.id)
                .bind(&r.api_key)
                .bind(&r.model)
                .bind(&r.previous_response_id)
                .bind(r.created_at)
                .bind(&r.input)
                .bind(&r.response)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// The response with this id, if stored.
    pub async fn response(&self, id: &str) -> Result<Option<StoredResponse>, DbError> {
        let sql = format!(
            "SELECT id, api_key, model, previous_response_id, created_at, input, response
             FROM {} WHERE id = $1",
            self.responses_table()
        );
        let row = on_pool!(self, pool => {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(id)
                .fetch_optional(pool)
                .await?
                .map(|row| stored!(&row))
                .transpose()?
        });
        Ok(row)
    }

    /// The conversation ending at `id`: that response and every one it continued, oldest
    /// first (empty when `id` is not stored). A link to a pruned response ends the chain.
    pub async fn response_chain(&self, id: &str) -> Result<Vec<StoredResponse>, DbError> {
        let table = self.responses_table();
        let sql = format!(
            "WITH RECURSIVE chain (id, api_key, model, previous_response_id, created_at, input, response, depth) AS (
                 SELECT id, api_key, model, previous_response_id, created_at, input, response, 0
                 FROM {table} WHERE id = $1
                 UNION ALL
                 SELECT r.id, r.api_key, r.model, r.previous_response_id, r.created_at, r.input, r.response, c.depth + 1
                 FROM {table} r JOIN chain c ON r.id = c.previous_response_id
                 WHERE c.depth < $2
             )
             SELECT id, api_key, model, previous_response_id, created_at, input, response
             FROM chain ORDER BY depth DESC"
        );
        let rows = on_pool!(self, pool => {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(id)
                .bind(MAX_CHAIN)
                .fetch_all(pool)
                .await?
                .iter()
                .map(|row| stored!(row))
                .collect::<Result<Vec<_>, _>>()?
        });
        Ok(rows)
    }

    /// Deletes a stored response; whether there was one.
    pub async fn delete_response(&self, id: &str) -> Result<bool, DbError> {
        let sql = format!("DELETE FROM {} WHERE id = $1", self.responses_table());
        let deleted = on_pool!(self, pool => {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(deleted > 0)
    }

    /// Deletes the responses created before `before` (unix seconds); how many.
    pub async fn prune_responses(&self, before: i64) -> Result<u64, DbError> {
        let sql = format!(
            "DELETE FROM {} WHERE created_at < $1",
            self.responses_table()
        );
        let deleted = on_pool!(self, pool => {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(before)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(deleted)
    }
}
