//! `hx-gateway migrate` and the key store's opening at start: LiteLLM's switches that turn
//! migrations off, and the connection `serve` retries until the database answers.

use super::{ConfigSource, StartError};
use crate::config::{EnvSource, GatewayConfig};
use crate::db::KeyStore;
use crate::keys::{KeyError, KeyService, KeyServiceOptions};

/// Migrations run at start unless `--no-migrate`, `USE_PRISMA_MIGRATE=0` or
/// `DISABLE_SCHEMA_UPDATE=true` (LiteLLM's switches).
pub fn migrations_enabled(no_migrate: bool, env: &dyn EnvSource) -> bool {
    let off = |name: &str, values: &[&str]| {
        env.var(name)
            .is_some_and(|v| values.contains(&v.trim().to_ascii_lowercase().as_str()))
    };
    !(no_migrate
        || off("USE_PRISMA_MIGRATE", &["0", "false", "no"])
        || off("DISABLE_SCHEMA_UPDATE", &["1", "true", "yes"]))
}

/// Opens the key store the config names (Postgres, else SQLite under `HX_DATA_DIR`).
pub async fn connect_keys(config: &GatewayConfig, migrate: bool) -> Result<KeyService, KeyError> {
    let url = config.database_url.as_ref().map(|u| u.expose().to_string());
    let store = KeyStore::connect(url.as_deref(), &config.data_dir, migrate).await?;
    let options = KeyServiceOptions {
        cache_ttl: config.key_cache_ttl,
        allow_requests_on_db_unavailable: config.allow_requests_on_db_unavailable,
        ..KeyServiceOptions::default()
    };
    Ok(KeyService::new(store, options))
}

/// `hx-gateway migrate`: applies the migrations and reports.
pub async fn migrate_only(
    source: &ConfigSource,
    env: &dyn EnvSource,
) -> Result<String, StartError> {
    let config = source.load(env)?;
    let url = config.database_url.as_ref().map(|u| u.expose().to_string());
    let store = KeyStore::connect(url.as_deref(), &config.data_dir, false)
        .await
        .map_err(|e| StartError::Other(e.to_string()))?;
    store
        .migrate()
        .await
        .map_err(|e| StartError::Other(e.to_string()))?;
    Ok(format!("migrations applied ({})", store.backend_name()))
}
