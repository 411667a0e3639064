//! Dependency health: probes of Postgres, Redis and the vector store, run concurrently and each
//! bounded, for `/healthz/deps`, the `hx_dependency_up` gauges (refreshed in the background) and
//! `hx-gateway check`. Error texts never carry a secret.

pub mod probes;

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::config::GatewayConfig;
use crate::secret::{Secret, redact_url, scrub};
use probes::{PostgresProbe, QdrantProbe, RedisProbe};

/// Every probe answers within this, whatever the dependency does.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// How often the background task refreshes the dependency gauges.
pub const BACKGROUND_PROBE_INTERVAL: Duration = Duration::from_secs(30);

/// An external dependency the gateway may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dependency {
    Postgres,
    Redis,
    Qdrant,
}

impl Dependency {
    pub const ALL: [Dependency; 3] = [Dependency::Postgres, Dependency::Redis, Dependency::Qdrant];

    /// The key in `/healthz/deps` and the `dependency` label of `hx_dependency_up`.
    pub fn name(self) -> &'static str {
        match self {
            Dependency::Postgres => "postgres",
            Dependency::Redis => "redis",
            Dependency::Qdrant => "qdrant",
        }
    }
}

/// What one probe found.
#[derive(Debug, Clone)]
pub struct ProbeOutcome {
    pub dependency: Dependency,
    /// The operator configured it (a URL is set; the embedded vector store counts as configured).
    pub configured: bool,
    /// It answered within [`PROBE_TIMEOUT`].
    pub up: bool,
    /// `postgres`, `sqlite`, `redis`, `none`, `qdrant` or `embedded`.
    pub backend: &'static str,
    /// The URL probed, password redacted (for `check`; not served over HTTP).
    pub target: Option<String>,
    pub latency_ms: Option<f64>,
    /// Why it is down, secrets removed.
    pub error: Option<String>,
}

impl ProbeOutcome {
    fn not_configured(dependency: Dependency, backend: &'static str) -> Self {
        ProbeOutcome {
            dependency,
            configured: false,
            up: false,
            backend,
            target: None,
            latency_ms: None,
            error: None,
        }
    }

    /// Configured and not answering: what `smoke` and `check` fail on.
    pub fn is_failing(&self) -> bool {
        self.configured && !self.up
    }
}

/// The outcome of probing every dependency.
#[derive(Debug, Clone)]
pub struct DependencyReport {
    pub postgres: ProbeOutcome,
    pub redis: ProbeOutcome,
    pub qdrant: ProbeOutcome,
    pub embedding_model: String,
    /// Whether the embedding model can serve, and why not (set by the caller, which knows the
    /// router: see [`DependencyReport::with_embedding_model_status`]).
    pub embedding_model_status: Option<Result<(), String>>,
}

impl DependencyReport {
    pub fn outcomes(&self) -> [&ProbeOutcome; 3] {
        [&self.postgres, &self.redis, &self.qdrant]
    }

    /// Records whether the embedding model serves (`Err` says why not: disabled and why, or not
    /// in `model_list`); shown as `details.embedding_model`.
    pub fn with_embedding_model_status(mut self, status: Result<(), String>) -> Self {
        self.embedding_model_status = Some(status);
        self
    }

    /// The `/healthz/deps` body: the four keys of the contract first, then `configured` and
    /// `details` (backend, latency, error).
    pub fn to_json(&self) -> Value {
        let detail = |o: &ProbeOutcome| {
            json!({
                "backend": o.backend,
                "latency_ms": o.latency_ms,
                "error": o.error,
            })
        };
        let embedding = match &self.embedding_model_status {
            None => Value::Null,
            Some(Ok(())) => json!({"ready": true, "error": null}),
            Some(Err(why)) => json!({"ready": false, "error": why}),
        };
        json!({
            "postgres": self.postgres.up,
            "redis": self.redis.up,
            "qdrant": self.qdrant.up,
            "embedding_model": self.embedding_model,
            "configured": {
                "postgres": self.postgres.configured,
                "redis": self.redis.configured,
                "qdrant": self.qdrant.configured,
            },
            "details": {
                "postgres": detail(&self.postgres),
                "redis": detail(&self.redis),
                "qdrant": detail(&self.qdrant),
                "embedding_model": embedding,
            },
        })
    }
}

/// The probes with their kept connections; one per process, in `AppState`.
#[derive(Default)]
pub struct DependencyProbes {
    postgres: PostgresProbe,
    redis: RedisProbe,
    qdrant: QdrantProbe,
}

impl DependencyProbes {
    pub fn new() -> Self {
        Self::default()
    }

    /// Probes every dependency concurrently, each bounded by [`PROBE_TIMEOUT`], and updates
    /// the `hx_dependency_up` gauges. The embedded vector store is no service to probe: the
    /// caller says whether it is open (the RAG service knows).
    pub async fn probe_all(
        &self,
        config: &GatewayConfig,
        embedded_store_open: bool,
    ) -> DependencyReport {
        let (postgres, redis, qdrant) = tokio::join!(
            self.probe(Dependency::Postgres, config, embedded_store_open),
            self.probe(Dependency::Redis, config, embedded_store_open),
            self.probe(Dependency::Qdrant, config, embedded_store_open),
        );
        let report = DependencyReport {
            postgres,
            redis,
            qdrant,
            embedding_model: config.rag.embedding_model.clone(),
            embedding_model_status: None,
        };
        for o in report.outcomes() {
            crate::metrics::set_dependency_up(o.dependency.name(), o.up);
        }
        report
    }

    /// Probes one dependency.
    pub async fn probe(
        &self,
        dependency: Dependency,
        config: &GatewayConfig,
        embedded_store_open: bool,
    ) -> ProbeOutcome {
        match dependency {
            Dependency::Postgres => match &config.database_url {
                Some(url) if !is_sqlite(url) => {
                    timed(dependency, "postgres", url, config, async {
                        self.postgres.probe(url).await
                    })
                    .await
                }
                // No URL: the key store is the embedded SQLite database, which is no service
                // to be down; Postgres is simply not in use.
                _ => ProbeOutcome::not_configured(dependency, "sqlite"),
            },
            Dependency::Redis => match &config.redis_url {
                Some(url) => {
                    timed(dependency, "redis", url, config, async {
                        self.redis.probe(url, PROBE_TIMEOUT).await
                    })
                    .await
                }
                None => ProbeOutcome::not_configured(dependency, "none"),
            },
            Dependency::Qdrant => match &config.rag.qdrant_url {
                Some(url) => {
                    let key = config.rag.qdrant_api_key.as_ref();
                    timed(dependency, "qdrant", url, config, async {
                        self.qdrant.probe(url, key, PROBE_TIMEOUT).await
                    })
                    .await
                }
                None => {
                    let up = embedded_store_open;
                    ProbeOutcome {
                        dependency,
                        configured: true,
                        up,
                        backend: "embedded",
                        target: Some(config.rag.data_dir.display().to_string()),
                        latency_ms: None,
                        error: (!up).then(|| "the embedded vector store is not open".to_string()),
                    }
                }
            },
        }
    }
}

fn is_sqlite(url: &Secret) -> bool {
    url.expose().starts_with("sqlite:")
}

/// Runs a probe with the time bound, measuring it and scrubbing its error.
async fn timed(
    dependency: Dependency,
    backend: &'static str,
    url: &Secret,
    config: &GatewayConfig,
    probe: impl Future<Output = Result<(), String>>,
) -> ProbeOutcome {
    let started = Instant::now();
    let result = match tokio::time::timeout(PROBE_TIMEOUT, probe).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "no answer within {} s",
            PROBE_TIMEOUT.as_secs_f64()
        )),
    };
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    let error = result.err().map(|e| scrub_error(&e, config));
    ProbeOutcome {
        dependency,
        configured: true,
        up: error.is_none(),
        backend,
        target: Some(redact_url(url.expose())),
        latency_ms: Some((latency_ms * 1000.0).round() / 1000.0),
        error,
    }
}

/// Every secret the config holds, in the forms an error text could echo them.
pub fn config_secrets(config: &GatewayConfig) -> Vec<String> {
    let mut out = Vec::new();
    let urls = [
        config.database_url.as_ref(),
        config.redis_url.as_ref(),
        config.rag.qdrant_url.as_ref(),
    ];
    for url in urls.into_iter().flatten() {
        let url = url.expose();
        out.push(url.to_string());
        if let Ok(parsed) = reqwest::Url::parse(url)
            && let Some(password) = parsed.password()
        {
            out.push(password.to_string());
            out.push(percent_decode(password));
        }
    }
    for key in [
        config.rag.qdrant_api_key.as_ref(),
        config.master_key.as_ref(),
    ]
    .into_iter()
    .flatten()
    {
        out.push(key.expose().to_string());
    }
    // Longest first, so a URL is replaced whole before its password is.
    out.sort_by_key(|s| std::cmp::Reverse(s.len()));
    out.dedup();
    out
}

/// A text with every secret of the config and every URL password replaced by `***`.
pub fn scrub_error(text: &str, config: &GatewayConfig) -> String {
    let secrets = config_secrets(config);
    let refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
    scrub(text, &refs)
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(hex) = std::str::from_utf8(&bytes[i + 1..i + 3])
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_of_the_config_are_scrubbed() {
        let env = std::collections::HashMap::from([
            (
                "DATABASE_URL".to_string(),
                "postgresql://gw:p%40ss-word@db:5432/gw".to_string(),
            ),
            (
                "REDIS_URL".to_string(),
                "redis://:redis-pw-1@cache:6379/0".to_string(),
            ),
            ("QDRANT_API_KEY".to_string(), "qdrant-key-123".to_string()),
        ]);
        let config = GatewayConfig::from_yaml_str("", &env).unwrap();
        let text = "failed for p@ss-word p%40ss-word redis-pw-1 key qdrant-key-123 at redis://:redis-pw-1@cache:6379/0";
        let clean = scrub_error(text, &config);
        for secret in ["p@ss-word", "p%40ss-word", "redis-pw-1", "qdrant-key-123"] {
            assert!(!clean.contains(secret), "{secret} in {clean}");
        }
        assert!(clean.contains("failed for"));
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%40b%2"), "a@b%2");
        assert_eq!(percent_decode("plain"), "plain");
        assert_eq!(percent_decode("%é"), "%é");
    }
}
