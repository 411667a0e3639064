//! `hx-gateway check`: validates the config and the environment, probes every configured
//! dependency with the same probes as `/healthz/deps` and every deployment's upstream with a
//! cheap model listing, and reports every problem in plain words; the exit code says whether
//! the gateway can start and serve cleanly.
//!
//! A deployment disabled because an `os.environ/` variable is unset is a warning, not an
//! error: it is optional until the variable is set (the shipped example's `gpt-4o-mini`
//! waits for `OPENAI_API_BASE`), and the rest of the gateway serves. Any other reason (missing
//! model files, a bad header value) is an error.

use std::path::Path;
use std::time::Duration;

use super::ConfigSource;
use crate::config::{EnvSource, GatewayConfig};
use crate::health::{Dependency, DependencyProbes, PROBE_TIMEOUT, ProbeOutcome};
use crate::providers::{Upstream, UpstreamProbe};
use crate::router::Router;

/// The master key of the shipped example config: for trying HX out, never for a gateway others
/// can reach.
pub const DEVELOPMENT_MASTER_KEY: &str = "sk-hx-dev-1234";

/// The outcome of a check: one line per finding.
#[derive(Debug, Default)]
pub struct Report {
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
    pub ok: Vec<String>,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.errors.is_empty()
    }

    /// The report as printed: `ok:`, `warning:`, `error:` lines, then a verdict.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for line in &self.ok {
            out.push_str(&format!("ok: {line}\n"));
        }
        for line in &self.warnings {
            out.push_str(&format!("warning: {line}\n"));
        }
        for line in &self.errors {
            out.push_str(&format!("error: {line}\n"));
        }
        if self.passed() {
            out.push_str("check passed\n");
        } else {
            out.push_str(&format!("check failed: {} problem(s)\n", self.errors.len()));
        }
        out
    }
}

/// Checks the config without starting anything; returns the config and its router when the
/// config loads.
pub fn check_config(
    source: &ConfigSource,
    env: &dyn EnvSource,
) -> (Report, Option<(GatewayConfig, Router)>) {
    let mut report = Report::default();
    match &source.path {
        Some(p) => report.ok.push(format!("config file {}", p.display())),
        None => report
            .warnings
            .push("no config file given (--config or LITELLM_CONFIG): no models".into()),
    }
    let config = match source.load(env) {
        Ok(c) => c,
        Err(e) => {
            report.errors.push(format!("config: {e}"));
            return (report, None);
        }
    };
    for key in &config.ignored {
        report.warnings.push(format!(
            "config key {key} is not used by HX Gateway and is ignored"
        ));
    }
    // Building the router builds every provider, which finds what the config alone cannot
    // (a local model directory that is missing, a header value that is not valid).
    let router = Router::build(&config);
    let mut disabled: Vec<_> = config.disabled.iter().chain(&router.disabled).collect();
    disabled.sort_by_key(|d| d.index);
    for d in disabled {
        // Numbered by the entry's place in model_list, as the config file reads.
        let line = format!(
            "deployment #{} (model_list[{}], model '{}') is disabled: {}",
            d.index + 1,
            d.index,
            d.model_name,
            d.reason
        );
        match &d.unset_variable {
            Some(var) => report
                .warnings
                .push(format!("{line}; it is served once {var} is set")),
            None => report.errors.push(line),
        }
    }
    let groups = config.model_names();
    if groups.is_empty() {
        report.warnings.push(
            "no model is configured (model_list is empty): every LLM request will get 404".into(),
        );
    }
    report.ok.push(format!(
        "{} model group(s), {} deployment(s): {}",
        groups.len(),
        config.deployments.len() - router.disabled.len(),
        groups.join(", ")
    ));
    if config.master_key.is_none() {
        report.errors.push(
            "no master key: set general_settings.master_key or LITELLM_MASTER_KEY (the gateway refuses to start without one unless --allow-unauthenticated)".into(),
        );
    } else {
        report.ok.push("master key is set".into());
    }
    (report, Some((config, router)))
}

/// The whole check: config, environment, then every configured dependency and every
/// deployment's upstream (concurrently, each bounded to 2 s). `host` is the address `serve`
/// would listen on (`--host` / `HOST`).
pub async fn check(source: &ConfigSource, env: &dyn EnvSource, host: &str) -> Report {
    let (mut report, loaded) = check_config(source, env);
    let Some((config, router)) = loaded else {
        return report;
    };
    check_environment(&config, &router, &mut report);
    check_exposure(&config, host, &mut report);
    let probes = DependencyProbes::new();
    let (deps, upstreams) = tokio::join!(
        probes.probe_all(&config, true),
        probe_upstreams(&router, PROBE_TIMEOUT)
    );
    for outcome in deps.outcomes() {
        describe_dependency(outcome, &config, &mut report);
    }
    for line in upstreams {
        match line {
            Ok(ok) => report.ok.push(ok),
            Err(error) => report.errors.push(error),
        }
    }
    report
}

/// The development key on an address other machines can reach: anyone who read the README
/// holds the master key.
fn check_exposure(config: &GatewayConfig, host: &str, report: &mut Report) {
    let Some(key) = &config.master_key else {
        return;
    };
    if key.expose() != DEVELOPMENT_MASTER_KEY {
        return;
    }
    let loopback = matches!(host, "localhost" | "::1")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if loopback {
        report.ok.push(format!(
            "the development master key is in use, on the loopback address {host} only"
        ));
    } else {
        report.warnings.push(format!(
            "the master key is the development key {DEVELOPMENT_MASTER_KEY} and the gateway listens on {host}, reachable from other machines: set LITELLM_MASTER_KEY (it wins over the config) or pass --host 127.0.0.1"
        ));
    }
}

/// One line per enabled deployment with an upstream: reachable (`Ok`) or not (`Err`). An
/// upstream that answers 401/403 refused the deployment's key: an error too, since every
/// request would fail the same way.
async fn probe_upstreams(router: &Router, timeout: Duration) -> Vec<Result<String, String>> {
    let upstream = match Upstream::new() {
        Ok(upstream) => upstream,
        Err(e) => return vec![Err(format!("no HTTP client for the upstream probes: {e}"))],
    };
    let upstream = &upstream;
    let mut members: Vec<_> = router.members().collect();
    members.sort_by_key(|m| m.deployment.index);
    let probes = members.iter().map(|m| async move {
        let d = &m.deployment;
        let name = format!(
            "deployment #{} (model_list[{}], model '{}')",
            d.index + 1,
            d.index,
            d.model_name
        );
        match m.provider.probe_upstream(upstream, timeout).await {
            UpstreamProbe::InProcess => None,
            UpstreamProbe::Answered { url, status } if status == 401 || status == 403 => {
                Some(Err(format!(
                    "{name}: the upstream at {url} refused the deployment's key (HTTP {status})"
                )))
            }
            UpstreamProbe::Answered { url, status } => Some(Ok(format!(
                "{name}: upstream reachable ({url} answered HTTP {status})"
            ))),
            UpstreamProbe::Unreachable { url, error } => Some(Err(format!(
                "{name}: upstream {url} is not reachable: {error}"
            ))),
        }
    });
    futures::future::join_all(probes)
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// What the environment must provide besides the config: a usable data directory, sane URLs,
/// an embedding model the RAG routes can use.
fn check_environment(config: &GatewayConfig, router: &Router, report: &mut Report) {
    check_data_dir(&config.data_dir, report);
    if let Some(key) = &config.master_key
        && !key.expose().starts_with("sk-")
    {
        report.warnings.push(
            "the master key does not start with 'sk-' (LiteLLM requires it; some clients check it)"
                .into(),
        );
    }
    if let Some(url) = &config.database_url {
        let url = url.expose();
        if !(url.starts_with("postgres://")
            || url.starts_with("postgresql://")
            || url.starts_with("sqlite:"))
        {
            report.errors.push(format!(
                "DATABASE_URL {} is not a postgresql:// URL",
                crate::secret::redact_url(url)
            ));
        }
    }
    if let Some(url) = &config.redis_url {
        let url = url.expose();
        if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
            report.errors.push(format!(
                "REDIS_URL {} is not a redis:// URL",
                crate::secret::redact_url(url)
            ));
        }
    }
    if config.rag.qdrant_url.is_none() && config.rag.qdrant_api_key.is_some() {
        report.warnings.push(
            "QDRANT_API_KEY is set but QDRANT_URL is not: the embedded vector store is used and the key is ignored"
                .into(),
        );
    }
    let model = &config.rag.embedding_model;
    match router.model_status(model) {
        Ok(()) => report
            .ok
            .push(format!("embedding model '{model}' is in the model list")),
        Err(_) if router.disabled_reason(model).is_some() => report.warnings.push(format!(
            "embedding model '{model}' (EMBEDDING_MODEL) is disabled (see above): RAG search by query and document upserts will fail until it is served"
        )),
        Err(_) => report.warnings.push(format!(
            "embedding model '{model}' (EMBEDDING_MODEL) is not a model_name of model_list: RAG search by query and document upserts will fail"
        )),
    }
}

fn check_data_dir(dir: &Path, report: &mut Report) {
    let shown = dir.display();
    if dir.is_dir() {
        // Writable is what matters (the embedded database and vector store live there); only
        // trying to write says so reliably (read-only mounts, systemd ProtectSystem).
        let probe = dir.join(format!(".hx-check-{}", std::process::id()));
        match std::fs::write(&probe, b"") {
            Ok(()) => {
                let _ = std::fs::remove_file(&probe);
                report
                    .ok
                    .push(format!("data directory {shown} is writable"));
            }
            Err(e) => report.errors.push(format!(
                "data directory {shown} (HX_DATA_DIR) is not writable: {e}"
            )),
        }
    } else if dir.exists() {
        report.errors.push(format!(
            "data directory {shown} (HX_DATA_DIR) exists but is not a directory"
        ));
    } else {
        let parent = dir
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if parent.is_dir() {
            report.ok.push(format!(
                "data directory {shown} does not exist yet; it will be created"
            ));
        } else {
            report.errors.push(format!(
                "data directory {shown} (HX_DATA_DIR) does not exist and neither does its parent {}",
                parent.display()
            ));
        }
    }
}

fn describe_dependency(o: &ProbeOutcome, config: &GatewayConfig, report: &mut Report) {
    let name = match o.dependency {
        Dependency::Postgres => "Postgres",
        Dependency::Redis => "Redis",
        Dependency::Qdrant => "Qdrant",
    };
    let target = o.target.as_deref().unwrap_or("");
    match (o.configured, o.up, o.backend) {
        (false, _, _) => report.ok.push(match o.dependency {
            Dependency::Postgres => format!(
                "Postgres is not configured (DATABASE_URL unset): keys and spend are kept in the embedded SQLite database in {}",
                config.data_dir.display()
            ),
            Dependency::Redis => {
                "Redis is not configured (REDIS_URL unset): limits and cache are kept per instance"
                    .to_string()
            }
            Dependency::Qdrant => "no vector store configured".to_string(),
        }),
        (true, true, "embedded") => report.ok.push(format!(
            "vector store: embedded (QDRANT_URL unset), in {target}"
        )),
        (true, true, _) => report.ok.push(format!(
            "{name} at {target} answered in {:.0} ms",
            o.latency_ms.unwrap_or(0.0)
        )),
        (true, false, _) => report.errors.push(format!(
            "{name} at {target} is not reachable: {}",
            o.error.as_deref().unwrap_or("no answer")
        )),
    }
}
