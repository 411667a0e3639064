//! `"LiteLLM_SpendLogs"` rows, written in batches with the spend they add to the key, team,
//! user, team member and end user rows, idempotent per `request_id`.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::Row;

use super::{DbError, KeyStore, PostgresStore, SqliteStore};

/// One request's spend, as written to `"LiteLLM_SpendLogs"`.
#[derive(Debug, Clone, PartialEq)]
pub struct SpendRecord {
    /// Unique per request (the primary key of the log). Left empty, a UUID is generated.
    pub request_id: String,
    /// LiteLLM's call type: "acompletion", "aembedding", ...
    pub call_type: String,
    /// The key's token hash (`KeyInfo::token`), or the master key's hash.
    pub api_key: String,
    /// Cost in USD (see `prices::cost`).
    pub spend: f64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub start_time: DateTime<Utc>,
    pub end_time: DateTime<Utc>,
    /// The deployment's model ("gpt-4o-2024-08-06").
    pub model: String,
    /// The public model name the client asked for.
    pub model_group: String,
    pub custom_llm_provider: String,
    pub api_base: String,
    /// The key's `user_id` (LiteLLM's `"user"` column); its user row's spend is increased.
    pub user_id: Option<String>,
    /// The key's `team_id`; its team row's spend is increased.
    pub team_id: Option<String>,
    /// The client's `user` field (LiteLLM's `end_user`).
    pub end_user: Option<String>,
    pub metadata: Value,
    /// The key's `metadata.tags` and the request's `metadata.tags` (LiteLLM's
    /// `request_tags`, by which its spend reports group).
    pub request_tags: Vec<String>,
    pub cache_hit: bool,
    /// "success" or "failure".
    pub status: String,
}

impl SpendRecord {
    /// A record with the required fields and empty optional ones, timed now.
    pub fn new(api_key: impl Into<String>, model_group: impl Into<String>, spend: f64) -> Self {
        let now = Utc::now();
        let model_group = model_group.into();
        SpendRecord {
            request_id: String::new(),
            call_type: "acompletion".to_string(),
            api_key: api_key.into(),
            spend,
            prompt_tokens: 0,
            completion_tokens: 0,
            start_time: now,
            end_time: now,
            model: model_group.clone(),
            model_group,
            custom_llm_provider: String::new(),
            api_base: String::new(),
            user_id: None,
            team_id: None,
            end_user: None,
            metadata: Value::Object(Default::default()),
            request_tags: Vec::new(),
            cache_hit: false,
            status: "success".to_string(),
        }
    }
}

impl KeyStore {
    /// Number of spend-log rows and the sum of their spend for one key hash.
    pub async fn spend_log_totals(&self, api_key: &str) -> Result<(i64, f64), DbError> {
        let sql = r#"SELECT COUNT(*), COALESCE(SUM(spend), 0) FROM "LiteLLM_SpendLogs"
                     WHERE api_key = $1"#;
        let (count, sum): (i64, f64) = on_pool!(self, pool => {
            sqlx::query_as(sql).bind(api_key).fetch_one(pool).await?
        });
        Ok((count, sum))
    }

    /// A key's spend per model group since `since` (or ever), from its spend log rows: the
    /// spend a `model_max_budget` counts.
    pub async fn key_model_spend(
        &self,
        api_key: &str,
        since: Option<chrono::NaiveDateTime>,
    ) -> Result<Vec<(String, f64)>, DbError> {
        let sql = r#"SELECT COALESCE(model_group, ''), COALESCE(SUM(spend), 0)
            FROM "LiteLLM_SpendLogs" WHERE api_key = $1 AND "startTime" >= $2
            GROUP BY model_group"#;
        let since = since.unwrap_or_default();
        // Different on purpose: SQLite keeps the times as text, compared as text.
        Ok(match self {
            KeyStore::Postgres(pg) => {
                sqlx::query_as(sql)
                    .bind(api_key)
                    .bind(since)
                    .fetch_all(&pg.pool)
                    .await?
            }
            KeyStore::Sqlite(lite) => {
                sqlx::query_as(sql)
                    .bind(api_key)
                    .bind(sqlite_timestamp(&since.and_utc()))
                    .fetch_all(&lite.pool)
                    .await?
            }
        })
    }

    /// Writes a batch of spend records: one spend-log row each, and their costs added to the
    /// key's, the team's and the user's `spend` when those rows exist. Atomic, and idempotent
    /// per `request_id`: a retry after an ambiguous failure (commit done, answer lost) inserts
    /// nothing twice and adds nothing twice, because the increments are computed only from
    /// the log rows this very statement inserted.
    pub async fn write_spend(&self, records: &[SpendRecord]) -> Result<u64, DbError> {
        if records.is_empty() {
            return Ok(0);
        }
        // Different on purpose, each tuned: Postgres one `UNNEST` statement with the increments
        // in CTEs, SQLite chunked `INSERT OR IGNORE` and the increments summed here.
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

async fn write_spend_postgres(pg: &PostgresStore, records: &[SpendRecord]) -> Result<u64, DbError> {
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
                $17::text[], $18::text[], $19::text[], $20::text[])
            AS s(request_id, call_type, api_key, spend, total_tokens, prompt_tokens,
                 completion_tokens, start_time, end_time, model, model_group,
                 custom_llm_provider, api_base, user_id, metadata, cache_hit, team_id,
                 end_user, status, request_tags)
        ), ins AS (
            INSERT INTO "LiteLLM_SpendLogs" (request_id, call_type, api_key, spend,
                total_tokens, prompt_tokens, completion_tokens, "startTime", "endTime", model,
                model_group, custom_llm_provider, api_base, "user", metadata, cache_hit,
                team_id, end_user, request_tags{status_col})
            SELECT s.request_id, s.call_type, s.api_key, s.spend, s.total_tokens,
                s.prompt_tokens, s.completion_tokens, s.start_time, s.end_time, s.model,
                s.model_group, s.custom_llm_provider, s.api_base, s.user_id,
                s.metadata::jsonb, s.cache_hit, s.team_id, s.end_user,
                s.request_tags::jsonb{status_val}
            FROM s
            ON CONFLICT (request_id) DO NOTHING
            RETURNING api_key, spend, team_id, "user", end_user
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
        ), m AS (
            UPDATE "LiteLLM_TeamMembership" tm SET spend = tm.spend + s.amount
            FROM (SELECT team_id, "user", SUM(spend) AS amount FROM ins
                  WHERE team_id IS NOT NULL AND "user" IS NOT NULL AND "user" <> ''
                  GROUP BY team_id, "user") s
            WHERE tm.team_id = s.team_id AND tm.user_id = s."user"
            RETURNING 1
        ), e AS (
            INSERT INTO "LiteLLM_EndUserTable" (user_id, spend, blocked)
            SELECT end_user, SUM(spend), false FROM ins
            WHERE end_user IS NOT NULL AND end_user <> '' GROUP BY end_user
            ON CONFLICT (user_id)
                DO UPDATE SET spend = "LiteLLM_EndUserTable".spend + excluded.spend
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
        .bind(col(&|r| Some(tags_json(&r.request_tags))))
        .fetch_one(&pg.pool)
        .await?;
    Ok(u64::try_from(inserted).unwrap_or(0))
}

/// `request_tags` as the JSON list LiteLLM stores.
fn tags_json(tags: &[String]) -> String {
    serde_json::to_string(tags).unwrap_or_else(|_| "[]".to_string())
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

/// Rows per `INSERT` statement: 20 bound values each, far below SQLite's variable limit, and
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
        let row = format!("({})", vec!["?"; 20].join(", "));
        (0..=SQLITE_SPEND_ROWS_PER_STATEMENT.ilog2())
            .map(|power| {
                let plain = format!(
                    r#"INSERT OR IGNORE INTO "LiteLLM_SpendLogs" (request_id, call_type,
                    api_key, spend, total_tokens, prompt_tokens, completion_tokens,
                    "startTime", "endTime", model, model_group, custom_llm_provider,
                    api_base, "user", metadata, cache_hit, team_id, end_user, status,
                    request_tags) VALUES {}"#,
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
            .bind(&r.status)
            .bind(tags_json(&r.request_tags));
    }
    insert
}

async fn write_spend_sqlite(lite: &SqliteStore, records: &[SpendRecord]) -> Result<u64, DbError> {
    let mut tx = lite.pool.begin().await?;
    let mut by_key: HashMap<&str, f64> = HashMap::new();
    let mut by_team: HashMap<&str, f64> = HashMap::new();
    let mut by_user: HashMap<&str, f64> = HashMap::new();
    let mut by_member: HashMap<(&str, &str), f64> = HashMap::new();
    let mut by_end_user: HashMap<&str, f64> = HashMap::new();
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
                if let Some(team) = r.team_id.as_deref() {
                    *by_member.entry((team, user)).or_default() += r.spend;
                }
            }
            if let Some(end_user) = r.end_user.as_deref().filter(|u| !u.is_empty()) {
                *by_end_user.entry(end_user).or_default() += r.spend;
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
    for ((team, user), amount) in by_member {
        sqlx::query(
            r#"UPDATE "LiteLLM_TeamMembership" SET spend = spend + $3
               WHERE team_id = $1 AND user_id = $2"#,
        )
        .bind(team)
        .bind(user)
        .bind(amount)
        .execute(&mut *tx)
        .await?;
    }
    // LiteLLM creates an end user's row with its first spend.
    for (end_user, amount) in by_end_user {
        sqlx::query(
            r#"INSERT INTO "LiteLLM_EndUserTable" (user_id, spend, blocked) VALUES ($1, $2, 0)
               ON CONFLICT (user_id) DO UPDATE SET spend = spend + excluded.spend"#,
        )
        .bind(end_user)
        .bind(amount)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(inserted)
}

#[cfg(test)]
mod tests {
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
                assert_eq!(sql.matches('?').count(), rows * 20, "{rows} rows");
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
}
