//! Schema migrations of the key store, for Postgres and SQLite.
//!
//! LiteLLM's tables are created only when missing, with the definitions of LiteLLM's own
//! baseline migration (so LiteLLM's later migrations apply cleanly on top after a rollback),
//! and never altered when they exist. HX's own bookkeeping lives in the Postgres schema `hx`
//! (table `hx.schema_migrations`), which LiteLLM's Prisma tooling never looks at. A
//! transaction-scoped advisory lock serialises instances that start together.

use sqlx::{PgPool, Row, SqlitePool};

use super::DbError;

/// The versions of every migration, in the order they apply.
pub fn versions() -> Vec<i64> {
    MIGRATIONS.iter().map(|m| m.version).collect()
}

/// The `pg_advisory_xact_lock` id held while migrating ("HXKY" in ASCII).
pub const MIGRATIONS_LOCK_ID: i64 = 0x4858_4B59;

/// One migration: a version, a name, and its SQL for each backend.
struct Migration {
    version: i64,
    name: &'static str,
    postgres: &'static str,
    sqlite: &'static str,
}

/// Every migration, in order. Append only; never edit an applied one.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "litellm_tables",
        postgres: PG_LITELLM_TABLES,
        sqlite: SQLITE_LITELLM_TABLES,
    },
    Migration {
        version: 2,
        name: "stored_responses",
        postgres: PG_RESPONSES,
        sqlite: SQLITE_RESPONSES,
    },
    Migration {
        version: 3,
        name: "user_role",
        // LiteLLM's baseline has the column on Postgres.
        postgres: "SELECT 1;",
        sqlite: SQLITE_USER_ROLE,
    },
    Migration {
        version: 4,
        name: "management_tables",
        postgres: PG_MANAGEMENT_TABLES,
        sqlite: SQLITE_MANAGEMENT_TABLES,
    },
    Migration {
        version: 8,
        name: "key_allowed_routes",
        // LiteLLM's own 20250416185146 adds the column the same way, so either order works.
        postgres: r#"ALTER TABLE "LiteLLM_VerificationToken" ADD COLUMN IF NOT EXISTS "allowed_routes" TEXT[] DEFAULT ARRAY[]::TEXT[];"#,
        sqlite: r#"ALTER TABLE "LiteLLM_VerificationToken" ADD COLUMN "allowed_routes" TEXT NOT NULL DEFAULT '[]';"#,
    },
    Migration {
        version: 9,
        name: "spend_logs_request_tags",
        // In LiteLLM's baseline on Postgres (and in the first migration's copy of it).
        postgres: "SELECT 1;",
        sqlite: r#"ALTER TABLE "LiteLLM_SpendLogs" ADD COLUMN "request_tags" TEXT DEFAULT '[]';"#,
    },
];

/// The tables and columns of LiteLLM's management plane (teams, members, users, end users,
/// budgets, team model aliases) that the first migration left out. On Postgres the four tables
/// are LiteLLM's baseline definitions, created only when missing (as LiteLLM's own baseline
/// does, with `IF NOT EXISTS`; its later migrations then apply on top); the columns of the
/// existing tables are already in the first migration's copies of LiteLLM's baseline.
const PG_MANAGEMENT_TABLES: &str = r#"
CREATE TABLE IF NOT EXISTS "LiteLLM_BudgetTable" (
    "budget_id" TEXT NOT NULL,
    "max_budget" DOUBLE PRECISION,
    "soft_budget" DOUBLE PRECISION,
    "max_parallel_requests" INTEGER,
    "tpm_limit" BIGINT,
    "rpm_limit" BIGINT,
    "model_max_budget" JSONB,
    "budget_duration" TEXT,
    "budget_reset_at" TIMESTAMP(3),
    "created_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "created_by" TEXT NOT NULL,
    "updated_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_by" TEXT NOT NULL,
    CONSTRAINT "LiteLLM_BudgetTable_pkey" PRIMARY KEY ("budget_id")
);
CREATE TABLE IF NOT EXISTS "LiteLLM_ModelTable" (
    "id" SERIAL NOT NULL,
    "aliases" JSONB,
    "created_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "created_by" TEXT NOT NULL,
    "updated_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_by" TEXT NOT NULL,
    CONSTRAINT "LiteLLM_ModelTable_pkey" PRIMARY KEY ("id")
);
CREATE TABLE IF NOT EXISTS "LiteLLM_EndUserTable" (
    "user_id" TEXT NOT NULL,
    "alias" TEXT,
    "spend" DOUBLE PRECISION NOT NULL DEFAULT 0.0,
    "allowed_model_region" TEXT,
    "default_model" TEXT,
    "budget_id" TEXT,
    "blocked" BOOLEAN NOT NULL DEFAULT false,
    CONSTRAINT "LiteLLM_EndUserTable_pkey" PRIMARY KEY ("user_id")
);
CREATE TABLE IF NOT EXISTS "LiteLLM_TeamMembership" (
    "user_id" TEXT NOT NULL,
    "team_id" TEXT NOT NULL,
    "spend" DOUBLE PRECISION NOT NULL DEFAULT 0.0,
    "budget_id" TEXT,
    CONSTRAINT "LiteLLM_TeamMembership_pkey" PRIMARY KEY ("user_id","team_id")
);
"#;

/// The same in the embedded database: the columns of LiteLLM's baseline that the first
/// migration's smaller SQLite tables lacked, and the four tables (arrays and JSON as JSON
/// text, timestamps as text, booleans as integers, as in the first migration).
const SQLITE_MANAGEMENT_TABLES: &str = r#"
ALTER TABLE "LiteLLM_TeamTable" ADD COLUMN "organization_id" TEXT;
ALTER TABLE "LiteLLM_TeamTable" ADD COLUMN "admins" TEXT NOT NULL DEFAULT '[]';
ALTER TABLE "LiteLLM_TeamTable" ADD COLUMN "members" TEXT NOT NULL DEFAULT '[]';
ALTER TABLE "LiteLLM_TeamTable" ADD COLUMN "members_with_roles" TEXT NOT NULL DEFAULT '[]';
ALTER TABLE "LiteLLM_TeamTable" ADD COLUMN "model_spend" TEXT NOT NULL DEFAULT '{}';
ALTER TABLE "LiteLLM_TeamTable" ADD COLUMN "model_max_budget" TEXT NOT NULL DEFAULT '{}';
ALTER TABLE "LiteLLM_TeamTable" ADD COLUMN "model_id" INTEGER;

ALTER TABLE "LiteLLM_UserTable" ADD COLUMN "sso_user_id" TEXT;
ALTER TABLE "LiteLLM_UserTable" ADD COLUMN "organization_id" TEXT;
ALTER TABLE "LiteLLM_UserTable" ADD COLUMN "password" TEXT;
ALTER TABLE "LiteLLM_UserTable" ADD COLUMN "teams" TEXT NOT NULL DEFAULT '[]';
ALTER TABLE "LiteLLM_UserTable" ADD COLUMN "max_parallel_requests" INTEGER;
ALTER TABLE "LiteLLM_UserTable" ADD COLUMN "tpm_limit" INTEGER;
ALTER TABLE "LiteLLM_UserTable" ADD COLUMN "rpm_limit" INTEGER;
ALTER TABLE "LiteLLM_UserTable" ADD COLUMN "budget_duration" TEXT;
ALTER TABLE "LiteLLM_UserTable" ADD COLUMN "budget_reset_at" TEXT;
ALTER TABLE "LiteLLM_UserTable" ADD COLUMN "allowed_cache_controls" TEXT NOT NULL DEFAULT '[]';
ALTER TABLE "LiteLLM_UserTable" ADD COLUMN "model_spend" TEXT NOT NULL DEFAULT '{}';
ALTER TABLE "LiteLLM_UserTable" ADD COLUMN "model_max_budget" TEXT NOT NULL DEFAULT '{}';

ALTER TABLE "LiteLLM_VerificationToken" ADD COLUMN "soft_budget_cooldown" INTEGER NOT NULL DEFAULT 0;
ALTER TABLE "LiteLLM_VerificationToken" ADD COLUMN "aliases" TEXT NOT NULL DEFAULT '{}';
ALTER TABLE "LiteLLM_VerificationToken" ADD COLUMN "config" TEXT NOT NULL DEFAULT '{}';
ALTER TABLE "LiteLLM_VerificationToken" ADD COLUMN "permissions" TEXT NOT NULL DEFAULT '{}';
ALTER TABLE "LiteLLM_VerificationToken" ADD COLUMN "allowed_cache_controls" TEXT NOT NULL DEFAULT '[]';
ALTER TABLE "LiteLLM_VerificationToken" ADD COLUMN "model_spend" TEXT NOT NULL DEFAULT '{}';
ALTER TABLE "LiteLLM_VerificationToken" ADD COLUMN "model_max_budget" TEXT NOT NULL DEFAULT '{}';
ALTER TABLE "LiteLLM_VerificationToken" ADD COLUMN "budget_id" TEXT;
ALTER TABLE "LiteLLM_VerificationToken" ADD COLUMN "organization_id" TEXT;
ALTER TABLE "LiteLLM_VerificationToken" ADD COLUMN "created_by" TEXT;
ALTER TABLE "LiteLLM_VerificationToken" ADD COLUMN "updated_by" TEXT;

CREATE TABLE IF NOT EXISTS "LiteLLM_BudgetTable" (
    "budget_id" TEXT NOT NULL PRIMARY KEY,
    "max_budget" REAL,
    "soft_budget" REAL,
    "max_parallel_requests" INTEGER,
    "tpm_limit" INTEGER,
    "rpm_limit" INTEGER,
    "model_max_budget" TEXT,
    "budget_duration" TEXT,
    "budget_reset_at" TEXT,
    "created_at" TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')),
    "created_by" TEXT NOT NULL,
    "updated_at" TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')),
    "updated_by" TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS "LiteLLM_ModelTable" (
    "id" INTEGER PRIMARY KEY AUTOINCREMENT,
    "aliases" TEXT,
    "created_at" TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')),
    "created_by" TEXT NOT NULL,
    "updated_at" TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')),
    "updated_by" TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS "LiteLLM_EndUserTable" (
    "user_id" TEXT NOT NULL PRIMARY KEY,
    "alias" TEXT,
    "spend" REAL NOT NULL DEFAULT 0.0,
    "allowed_model_region" TEXT,
    "default_model" TEXT,
    "budget_id" TEXT,
    "blocked" INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS "LiteLLM_TeamMembership" (
    "user_id" TEXT NOT NULL,
    "team_id" TEXT NOT NULL,
    "spend" REAL NOT NULL DEFAULT 0.0,
    "budget_id" TEXT,
    PRIMARY KEY ("user_id", "team_id")
);
"#;

/// The user's role (`roles`), in the embedded database, where only HX writes.
const SQLITE_USER_ROLE: &str = r#"
ALTER TABLE "LiteLLM_UserTable" ADD COLUMN "user_role" TEXT;
"#;

/// HX's own table of stored Responses API answers (`db::responses`): in the `hx` schema on
/// Postgres, where LiteLLM never looks. The JSON columns are text in both backends: they are
/// written and read whole, never queried into.
const PG_RESPONSES: &str = r#"
CREATE TABLE IF NOT EXISTS hx.responses (
    id TEXT PRIMARY KEY,
    api_key TEXT NOT NULL,
    model TEXT NOT NULL,
    previous_response_id TEXT,
    created_at BIGINT NOT NULL,
    input TEXT NOT NULL,
    response TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS responses_created_at_idx ON hx.responses (created_at);
"#;

const SQLITE_RESPONSES: &str = r#"
CREATE TABLE IF NOT EXISTS hx_responses (
    id TEXT PRIMARY KEY,
    api_key TEXT NOT NULL,
    model TEXT NOT NULL,
    previous_response_id TEXT,
    created_at INTEGER NOT NULL,
    input TEXT NOT NULL,
    response TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS hx_responses_created_at_idx ON hx_responses (created_at);
"#;

/// LiteLLM's baseline definitions (litellm-proxy-extras, migration 20250326162113_baseline),
/// minus foreign keys to tables HX does not create, plus `LiteLLM_SpendLogs.status` (added by
/// LiteLLM's 20250508072103 with `ADD COLUMN IF NOT EXISTS`, so LiteLLM migrates on top).
/// Each table and its indexes are created only when the table is missing: an existing LiteLLM
/// table is left exactly as it is.
const PG_LITELLM_TABLES: &str = r#"
DO $hx$
BEGIN
IF to_regclass('"LiteLLM_VerificationToken"') IS NULL THEN
    CREATE TABLE "LiteLLM_VerificationToken" (
        "token" TEXT NOT NULL,
        "key_name" TEXT,
        "key_alias" TEXT,
        "soft_budget_cooldown" BOOLEAN NOT NULL DEFAULT false,
        "spend" DOUBLE PRECISION NOT NULL DEFAULT 0.0,
        "expires" TIMESTAMP(3),
        "models" TEXT[],
        "aliases" JSONB NOT NULL DEFAULT '{}',
        "config" JSONB NOT NULL DEFAULT '{}',
        "user_id" TEXT,
        "team_id" TEXT,
        "permissions" JSONB NOT NULL DEFAULT '{}',
        "max_parallel_requests" INTEGER,
        "metadata" JSONB NOT NULL DEFAULT '{}',
        "blocked" BOOLEAN,
        "tpm_limit" BIGINT,
        "rpm_limit" BIGINT,
        "max_budget" DOUBLE PRECISION,
        "budget_duration" TEXT,
        "budget_reset_at" TIMESTAMP(3),
        "allowed_cache_controls" TEXT[] DEFAULT ARRAY[]::TEXT[],
        "model_spend" JSONB NOT NULL DEFAULT '{}',
        "model_max_budget" JSONB NOT NULL DEFAULT '{}',
        "budget_id" TEXT,
        "organization_id" TEXT,
        "created_at" TIMESTAMP(3) DEFAULT CURRENT_TIMESTAMP,
        "created_by" TEXT,
        "updated_at" TIMESTAMP(3) DEFAULT CURRENT_TIMESTAMP,
        "updated_by" TEXT,
        CONSTRAINT "LiteLLM_VerificationToken_pkey" PRIMARY KEY ("token")
    );
END IF;

IF to_regclass('"LiteLLM_TeamTable"') IS NULL THEN
    CREATE TABLE "LiteLLM_TeamTable" (
        "team_id" TEXT NOT NULL,
        "team_alias" TEXT,
        "organization_id" TEXT,
        "admins" TEXT[],
        "members" TEXT[],
        "members_with_roles" JSONB NOT NULL DEFAULT '{}',
        "metadata" JSONB NOT NULL DEFAULT '{}',
        "max_budget" DOUBLE PRECISION,
        "spend" DOUBLE PRECISION NOT NULL DEFAULT 0.0,
        "models" TEXT[],
        "max_parallel_requests" INTEGER,
        "tpm_limit" BIGINT,
        "rpm_limit" BIGINT,
        "budget_duration" TEXT,
        "budget_reset_at" TIMESTAMP(3),
        "blocked" BOOLEAN NOT NULL DEFAULT false,
        "created_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
        "updated_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
        "model_spend" JSONB NOT NULL DEFAULT '{}',
        "model_max_budget" JSONB NOT NULL DEFAULT '{}',
        "model_id" INTEGER,
        CONSTRAINT "LiteLLM_TeamTable_pkey" PRIMARY KEY ("team_id")
    );
    CREATE UNIQUE INDEX IF NOT EXISTS "LiteLLM_TeamTable_model_id_key"
        ON "LiteLLM_TeamTable"("model_id");
END IF;

IF to_regclass('"LiteLLM_UserTable"') IS NULL THEN
    CREATE TABLE "LiteLLM_UserTable" (
        "user_id" TEXT NOT NULL,
        "user_alias" TEXT,
        "team_id" TEXT,
        "sso_user_id" TEXT,
        "organization_id" TEXT,
        "password" TEXT,
        "teams" TEXT[] DEFAULT ARRAY[]::TEXT[],
        "user_role" TEXT,
        "max_budget" DOUBLE PRECISION,
        "spend" DOUBLE PRECISION NOT NULL DEFAULT 0.0,
        "user_email" TEXT,
        "models" TEXT[],
        "metadata" JSONB NOT NULL DEFAULT '{}',
        "max_parallel_requests" INTEGER,
        "tpm_limit" BIGINT,
        "rpm_limit" BIGINT,
        "budget_duration" TEXT,
        "budget_reset_at" TIMESTAMP(3),
        "allowed_cache_controls" TEXT[] DEFAULT ARRAY[]::TEXT[],
        "model_spend" JSONB NOT NULL DEFAULT '{}',
        "model_max_budget" JSONB NOT NULL DEFAULT '{}',
        "created_at" TIMESTAMP(3) DEFAULT CURRENT_TIMESTAMP,
        "updated_at" TIMESTAMP(3) DEFAULT CURRENT_TIMESTAMP,
        CONSTRAINT "LiteLLM_UserTable_pkey" PRIMARY KEY ("user_id")
    );
    CREATE UNIQUE INDEX IF NOT EXISTS "LiteLLM_UserTable_sso_user_id_key"
        ON "LiteLLM_UserTable"("sso_user_id");
END IF;

IF to_regclass('"LiteLLM_SpendLogs"') IS NULL THEN
    CREATE TABLE "LiteLLM_SpendLogs" (
        "request_id" TEXT NOT NULL,
        "call_type" TEXT NOT NULL,
        "api_key" TEXT NOT NULL DEFAULT '',
        "spend" DOUBLE PRECISION NOT NULL DEFAULT 0.0,
        "total_tokens" INTEGER NOT NULL DEFAULT 0,
        "prompt_tokens" INTEGER NOT NULL DEFAULT 0,
        "completion_tokens" INTEGER NOT NULL DEFAULT 0,
        "startTime" TIMESTAMP(3) NOT NULL,
        "endTime" TIMESTAMP(3) NOT NULL,
        "completionStartTime" TIMESTAMP(3),
        "model" TEXT NOT NULL DEFAULT '',
        "model_id" TEXT DEFAULT '',
        "model_group" TEXT DEFAULT '',
        "custom_llm_provider" TEXT DEFAULT '',
        "api_base" TEXT DEFAULT '',
        "user" TEXT DEFAULT '',
        "metadata" JSONB DEFAULT '{}',
        "cache_hit" TEXT DEFAULT '',
        "cache_key" TEXT DEFAULT '',
        "request_tags" JSONB DEFAULT '[]',
        "team_id" TEXT,
        "end_user" TEXT,
        "requester_ip_address" TEXT,
        "messages" JSONB DEFAULT '{}',
        "response" JSONB DEFAULT '{}',
        "status" TEXT,
        CONSTRAINT "LiteLLM_SpendLogs_pkey" PRIMARY KEY ("request_id")
    );
    CREATE INDEX IF NOT EXISTS "LiteLLM_SpendLogs_startTime_idx"
        ON "LiteLLM_SpendLogs"("startTime");
    CREATE INDEX IF NOT EXISTS "LiteLLM_SpendLogs_end_user_idx"
        ON "LiteLLM_SpendLogs"("end_user");
END IF;
END
$hx$;
"#;

/// The same tables in SQLite: text arrays and JSON as JSON text, timestamps as sqlx's text
/// form (`YYYY-MM-DD HH:MM:SS.fff`, UTC), booleans as integers.
const SQLITE_LITELLM_TABLES: &str = r#"
CREATE TABLE IF NOT EXISTS "LiteLLM_VerificationToken" (
    "token" TEXT NOT NULL PRIMARY KEY,
    "key_name" TEXT,
    "key_alias" TEXT,
    "spend" REAL NOT NULL DEFAULT 0.0,
    "expires" TEXT,
    "models" TEXT NOT NULL DEFAULT '[]',
    "user_id" TEXT,
    "team_id" TEXT,
    "max_parallel_requests" INTEGER,
    "metadata" TEXT NOT NULL DEFAULT '{}',
    "blocked" INTEGER,
    "tpm_limit" INTEGER,
    "rpm_limit" INTEGER,
    "max_budget" REAL,
    "budget_duration" TEXT,
    "budget_reset_at" TEXT,
    "created_at" TEXT DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')),
    "updated_at" TEXT DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now'))
);
CREATE INDEX IF NOT EXISTS "LiteLLM_VerificationToken_key_alias_idx"
    ON "LiteLLM_VerificationToken"("key_alias");

CREATE TABLE IF NOT EXISTS "LiteLLM_TeamTable" (
    "team_id" TEXT NOT NULL PRIMARY KEY,
    "team_alias" TEXT,
    "metadata" TEXT NOT NULL DEFAULT '{}',
    "max_budget" REAL,
    "spend" REAL NOT NULL DEFAULT 0.0,
    "models" TEXT NOT NULL DEFAULT '[]',
    "max_parallel_requests" INTEGER,
    "tpm_limit" INTEGER,
    "rpm_limit" INTEGER,
    "budget_duration" TEXT,
    "budget_reset_at" TEXT,
    "blocked" INTEGER NOT NULL DEFAULT 0,
    "created_at" TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')),
    "updated_at" TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now'))
);

CREATE TABLE IF NOT EXISTS "LiteLLM_UserTable" (
    "user_id" TEXT NOT NULL PRIMARY KEY,
    "user_alias" TEXT,
    "team_id" TEXT,
    "max_budget" REAL,
    "spend" REAL NOT NULL DEFAULT 0.0,
    "user_email" TEXT,
    "models" TEXT NOT NULL DEFAULT '[]',
    "metadata" TEXT NOT NULL DEFAULT '{}',
    "created_at" TEXT DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')),
    "updated_at" TEXT DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now'))
);

CREATE TABLE IF NOT EXISTS "LiteLLM_SpendLogs" (
    "request_id" TEXT NOT NULL PRIMARY KEY,
    "call_type" TEXT NOT NULL,
    "api_key" TEXT NOT NULL DEFAULT '',
    "spend" REAL NOT NULL DEFAULT 0.0,
    "total_tokens" INTEGER NOT NULL DEFAULT 0,
    "prompt_tokens" INTEGER NOT NULL DEFAULT 0,
    "completion_tokens" INTEGER NOT NULL DEFAULT 0,
    "startTime" TEXT NOT NULL,
    "endTime" TEXT NOT NULL,
    "model" TEXT NOT NULL DEFAULT '',
    "model_group" TEXT DEFAULT '',
    "custom_llm_provider" TEXT DEFAULT '',
    "api_base" TEXT DEFAULT '',
    "user" TEXT DEFAULT '',
    "metadata" TEXT DEFAULT '{}',
    "cache_hit" TEXT DEFAULT '',
    "team_id" TEXT,
    "end_user" TEXT,
    "status" TEXT
);
CREATE INDEX IF NOT EXISTS "LiteLLM_SpendLogs_startTime_idx" ON "LiteLLM_SpendLogs"("startTime");
"#;

/// Applies every pending migration to a Postgres database, under an advisory lock so that
/// instances starting together apply each migration exactly once.
pub(crate) async fn migrate_postgres(pool: &PgPool) -> Result<(), DbError> {
    let fail = |e: sqlx::Error| DbError::Migration(crate::secret::scrub(&e.to_string(), &[]));
    let mut tx = pool.begin().await.map_err(fail)?;
    // Taken before anything else: the `CREATE SCHEMA IF NOT EXISTS` below can itself race.
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(MIGRATIONS_LOCK_ID)
        .execute(&mut *tx)
        .await
        .map_err(fail)?;
    sqlx::raw_sql(
        "CREATE SCHEMA IF NOT EXISTS hx;
         CREATE TABLE IF NOT EXISTS hx.schema_migrations (
             version BIGINT PRIMARY KEY,
             name TEXT NOT NULL,
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
         );",
    )
    .execute(&mut *tx)
    .await
    .map_err(fail)?;
    let applied: Vec<i64> = sqlx::query("SELECT version FROM hx.schema_migrations")
        .fetch_all(&mut *tx)
        .await
        .map_err(fail)?
        .iter()
        .map(|row| row.try_get::<i64, _>(0))
        .collect::<Result<_, _>>()
        .map_err(fail)?;
    for migration in MIGRATIONS.iter().filter(|m| !applied.contains(&m.version)) {
        sqlx::raw_sql(migration.postgres)
            .execute(&mut *tx)
            .await
            .map_err(|e| {
                DbError::Migration(format!(
                    "{} ({}): {}",
                    migration.version,
                    migration.name,
                    crate::secret::scrub(&e.to_string(), &[])
                ))
            })?;
        sqlx::query("INSERT INTO hx.schema_migrations (version, name) VALUES ($1, $2)")
            .bind(migration.version)
            .bind(migration.name)
            .execute(&mut *tx)
            .await
            .map_err(fail)?;
        tracing::info!(
            version = migration.version,
            name = migration.name,
            "applied migration"
        );
    }
    tx.commit().await.map_err(fail)?;
    Ok(())
}

/// Applies every pending migration to the SQLite file. `BEGIN IMMEDIATE` takes the write lock
/// up front, which serialises processes sharing the file.
pub(crate) async fn migrate_sqlite(pool: &SqlitePool) -> Result<(), DbError> {
    let fail = |e: sqlx::Error| DbError::Migration(e.to_string());
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(fail)?;
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS hx_schema_migrations (
             version INTEGER PRIMARY KEY,
             name TEXT NOT NULL,
             applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now'))
         );",
    )
    .execute(&mut *tx)
    .await
    .map_err(fail)?;
    let applied: Vec<i64> = sqlx::query("SELECT version FROM hx_schema_migrations")
        .fetch_all(&mut *tx)
        .await
        .map_err(fail)?
        .iter()
        .map(|row| row.try_get::<i64, _>(0))
        .collect::<Result<_, _>>()
        .map_err(fail)?;
    for migration in MIGRATIONS.iter().filter(|m| !applied.contains(&m.version)) {
        sqlx::raw_sql(migration.sqlite)
            .execute(&mut *tx)
            .await
            .map_err(|e| {
                DbError::Migration(format!("{} ({}): {e}", migration.version, migration.name))
            })?;
        sqlx::query("INSERT INTO hx_schema_migrations (version, name) VALUES ($1, $2)")
            .bind(migration.version)
            .bind(migration.name)
            .execute(&mut *tx)
            .await
            .map_err(fail)?;
    }
    tx.commit().await.map_err(fail)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_increase() {
        let versions: Vec<i64> = MIGRATIONS.iter().map(|m| m.version).collect();
        let mut sorted = versions.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(versions, sorted);
    }
}
