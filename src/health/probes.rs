//! One probe per external dependency: Postgres (`SELECT 1`), Redis (`PING`), Qdrant
//! (`GET /healthz`). Each keeps its connection between calls, rebuilt only when the URL changes
//! or the connection broke, so the periodic probe does not open a connection every time.

use std::time::Duration;

use parking_lot::Mutex;

use crate::secret::Secret;

/// Why a probe failed, in words fit for an operator (secrets are removed by the caller).
pub type ProbeError = String;

/// Postgres: one kept connection, reopened when the URL changed or the connection broke. Not a
/// pool: a pool retries a refused connection until its timeout, hiding why it failed.
#[derive(Default)]
pub struct PostgresProbe {
    connection: tokio::sync::Mutex<Option<(String, sqlx::PgConnection)>>,
}

impl PostgresProbe {
    /// `SELECT 1` on the database. Concurrent probes take turns on the one connection (each
    /// caller bounds its wait).
    pub async fn probe(&self, url: &Secret) -> Result<(), ProbeError> {
        use sqlx::Connection;
        let url = url.expose();
        let mut slot = self.connection.lock().await;
        if slot.as_ref().is_some_and(|(u, _)| u != url) {
            *slot = None;
        }
        // Out of the slot while in use: a probe cancelled mid-query (its time ran out) drops
        // the connection instead of leaving a half-answered one for the next probe.
        let mut connection = match slot.take() {
            Some((_, c)) => c,
            None => sqlx::PgConnection::connect(url)
                .await
                .map_err(|e| describe_sqlx(&e))?,
        };
        sqlx::query_scalar::<_, i32>("SELECT 1")
            .fetch_one(&mut connection)
            .await
            .map_err(|e| describe_sqlx(&e))?;
        *slot = Some((url.to_string(), connection));
        Ok(())
    }
}

fn describe_sqlx(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Configuration(c) => format!("invalid database URL: {c}"),
        other => other.to_string(),
    }
}

/// Redis: one multiplexed connection, dropped when a `PING` fails so the next probe reconnects.
#[derive(Default)]
pub struct RedisProbe {
    connection: Mutex<Option<(String, redis::aio::MultiplexedConnection)>>,
}

impl RedisProbe {
    /// `PING` on the server.
    pub async fn probe(&self, url: &Secret, timeout: Duration) -> Result<(), ProbeError> {
        let url = url.expose();
        let cached = self
            .connection
            .lock()
            .as_ref()
            .filter(|(u, _)| u == url)
            .map(|(_, c)| c.clone());
        let mut connection = match cached {
            Some(c) => c,
            None => {
                let client =
                    redis::Client::open(url).map_err(|e| format!("invalid Redis URL: {e}"))?;
                let config = redis::AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(Some(timeout));
                let c = client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await
                    .map_err(|e| e.to_string())?;
                *self.connection.lock() = Some((url.to_string(), c.clone()));
                c
            }
        };
        match redis::cmd("PING")
            .query_async::<String>(&mut connection)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                *self.connection.lock() = None;
                Err(e.to_string())
            }
        }
    }
}

/// Qdrant server: `GET /healthz` (older servers: `GET /`) with the `api-key` header.
pub struct QdrantProbe {
    http: Option<reqwest::Client>,
}

impl Default for QdrantProbe {
    fn default() -> Self {
        // No client means every probe reports the build failure; it cannot fail in practice.
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .pool_max_idle_per_host(1)
            .build()
            .ok();
        QdrantProbe { http }
    }
}

impl QdrantProbe {
    pub async fn probe(
        &self,
        url: &Secret,
        api_key: Option<&Secret>,
        timeout: Duration,
    ) -> Result<(), ProbeError> {
        let Some(http) = &self.http else {
            return Err("HTTP client unavailable".into());
        };
        let base = url.expose().trim_end_matches('/');
        let get = |path: &str| {
            let mut request = http.get(format!("{base}{path}")).timeout(timeout);
            if let Some(key) = api_key {
                request = request.header("api-key", key.expose());
            }
            request.send()
        };
        let mut response = get("/healthz").await.map_err(|e| describe_reqwest(&e))?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            response = get("/").await.map_err(|e| describe_reqwest(&e))?;
        }
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!(
                "HTTP {}{}",
                status.as_u16(),
                match status.as_u16() {
                    401 | 403 => " (QDRANT_API_KEY missing or wrong)",
                    _ => "",
                }
            ))
        }
    }
}

/// reqwest's `Display` hides the cause (`error sending request for url ...`); the chain says
/// what happened (connection refused, timed out).
fn describe_reqwest(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "no answer in time".to_string();
    }
    // The top-level text repeats the URL; the operator knows it, and it may carry a secret.
    let mut text = if e.is_connect() {
        "cannot connect".to_string()
    } else {
        "request failed".to_string()
    };
    crate::error::append_causes(&mut text, e);
    text
}
