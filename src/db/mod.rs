//! The storage layer: LiteLLM's tables (keys, teams, users, spend logs) in Postgres or in an
//! embedded SQLite file, behind one enum-dispatched [`KeyStore`]. `keys` and `spend` both sit
//! on it, so neither imports the other for its rows.
//!
//! - [`migrations`]: LiteLLM's schema, built from the migrations LiteLLM ships.
//! - [`keys`]: key, team and user rows.
//! - [`teams`]: team rows as the `/team/*` routes write them, members, budgets.
//! - [`users`]: user rows as the `/user/*` routes write them.
//! - [`customers`]: end users (LiteLLM's customers) and their budget rows.
//! - [`spend_logs`]: `"LiteLLM_SpendLogs"` rows and the spend they add to keys, teams, users.
//! - [`responses`]: HX's own table of stored Responses API answers.
//!
//! Why not sqlx's `Any` driver, which would let one query body serve both pools: it has no
//! chrono, JSON or array types, and LiteLLM's tables use all three (`models text[]`,
//! `metadata jsonb`, timestamps). So each query runs against the two typed pools, written once
//! through `on_pool!` wherever its SQL is valid in both dialects (the array and JSON columns
//! through per-dialect encoders and row decoders, in [`keys`]). Where the dialects differ on
//! purpose (migrations, `ANY` over an array, the tuned spend inserts: Postgres `UNNEST`,
//! SQLite chunked `INSERT OR IGNORE`), the two bodies sit side by side in one function.

/// Runs `body` against the store's pool, bound to `pool`: `on_pool!(self, pool => body)`
/// expands to the `match` over [`KeyStore`] with the same body in both arms, so one query
/// text serves both dialects while each arm compiles against its own typed pool. A macro
/// rather than a generic function over `sqlx::Database`: that would need `Encode + Type`
/// bounds for every bound value's type and `Decode` bounds for every column read.
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match $store {
            $crate::db::KeyStore::Postgres(pg) => {
                let $pool = &pg.pool;
                $body
            }
            $crate::db::KeyStore::Sqlite(lite) => {
                let $pool = &lite.pool;
                $body
            }
        }
    };
}

pub mod customers;
pub mod keys;
pub mod migrations;
pub mod responses;
pub mod spend_logs;
pub mod teams;
pub mod users;

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{PgPool, Row, SqlitePool};

pub use customers::EndUserRecord;
pub use keys::{KeyRecord, TeamRecord, UserRow};
pub use migrations::MIGRATIONS_LOCK_ID;
pub use spend_logs::SpendRecord;
pub use teams::{BudgetRow, MembershipRow};
pub use users::UserRecord;

/// What can go wrong in the database itself (the callers map it into their own errors).
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The database cannot be reached or failed. The text is already free of secrets.
    #[error("key store unavailable: {0}")]
    Unavailable(String),
    /// A database URL or data directory that cannot be used.
    #[error("key store configuration: {0}")]
    Config(String),
    /// A migration failed.
    #[error("key store migration failed: {0}")]
    Migration(String),
}

impl From<sqlx::Error> for DbError {
    fn from(error: sqlx::Error) -> Self {
        // sqlx messages may quote the connection URL; never let a password through.
        DbError::Unavailable(crate::secret::scrub(&error.to_string(), &[]))
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
pub(crate) struct Columns {
    pub(crate) spend_logs_status: bool,
    pub(crate) key_total_spend: bool,
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

impl KeyStore {
    /// Opens the store: Postgres for a `postgresql://` or `postgres://` URL, else the SQLite
    /// file `<data_dir>/hx.sqlite` (directory created if missing). Runs the migrations first
    /// when `migrate` is true.
    pub async fn connect(
        database_url: Option<&str>,
        data_dir: &Path,
        migrate: bool,
    ) -> Result<KeyStore, DbError> {
        Self::connect_with(database_url, data_dir, migrate, KeyStoreOptions::default()).await
    }

    /// [`KeyStore::connect`] with explicit pool settings.
    pub async fn connect_with(
        database_url: Option<&str>,
        data_dir: &Path,
        migrate: bool,
        options: KeyStoreOptions,
    ) -> Result<KeyStore, DbError> {
        let store = match database_url.map(str::trim).filter(|u| !u.is_empty()) {
            Some(url) => {
                if !(url.starts_with("postgresql://") || url.starts_with("postgres://")) {
                    return Err(DbError::Config(format!(
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
                        DbError::Unavailable(format!(
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
                    DbError::Config(format!("cannot create {}: {e}", data_dir.display()))
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
                        DbError::Unavailable(format!("cannot open {}: {e}", file.display()))
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
    pub async fn migrate(&self) -> Result<(), DbError> {
        // Different on purpose: Postgres serialises instances with an advisory lock, SQLite
        // with `BEGIN IMMEDIATE`, and each dialect has its own schema text.
        match self {
            KeyStore::Postgres(pg) => migrations::migrate_postgres(&pg.pool).await,
            KeyStore::Sqlite(lite) => migrations::migrate_sqlite(&lite.pool).await,
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
    pub async fn ping(&self) -> Result<(), DbError> {
        on_pool!(self, pool => {
            sqlx::query("SELECT 1").execute(pool).await?;
        });
        Ok(())
    }

    /// Looks up which optional LiteLLM columns exist (they depend on LiteLLM's version). Postgres
    /// only: the SQLite file is HX's own, its columns fixed by HX's migrations.
    async fn refresh_columns(self) -> Result<KeyStore, DbError> {
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
}
