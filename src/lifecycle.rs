//! Running the gateway as a service: start (config, listener, readiness, systemd notify),
//! SIGHUP reloads, SIGTERM drains in-flight requests within a grace period, then exits.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::cli::ServeArgs;
use crate::config::{ConfigError, EnvSource, GatewayConfig};
use crate::keys::{KeyError, KeyService, KeyServiceOptions, KeyStore};
use crate::server::{self, state::AppState};

/// Why the gateway could not start; printed in plain words by `main`.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error(
        "no master key is configured (general_settings.master_key or LITELLM_MASTER_KEY); \
         set one, or pass --allow-unauthenticated (or HX_ALLOW_UNAUTHENTICATED=1) to serve without auth"
    )]
    NoMasterKey,
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("TLS: {0}")]
    Tls(String),
    #[error("{0}")]
    Other(String),
}

/// Where the config comes from, kept for reloads.
#[derive(Clone)]
pub struct ConfigSource {
    pub path: Option<PathBuf>,
    pub env_file: HashMap<String, String>,
}

impl ConfigSource {
    pub fn load(&self, env: &dyn EnvSource) -> Result<GatewayConfig, ConfigError> {
        match &self.path {
            Some(path) => GatewayConfig::load(path, env, self.env_file.clone()),
            None => GatewayConfig::empty(env, self.env_file.clone()),
        }
    }
}

/// Logs, once, what the config carried that HX does not use, and what it disabled.
pub fn report_config(config: &GatewayConfig) {
    if !config.ignored.is_empty() {
        tracing::warn!(keys = %config.ignored.join(", "), "config keys ignored (not used by HX Gateway)");
    }
    for d in &config.disabled {
        tracing::warn!(model_name = %d.model_name, index = d.index, reason = %d.reason, "deployment disabled");
    }
}

/// Serves until SIGTERM/SIGINT, reloading on SIGHUP.
pub async fn serve(
    args: &ServeArgs,
    source: ConfigSource,
    env: &dyn EnvSource,
) -> Result<(), StartError> {
    let config = source.load(env)?;
    report_config(&config);
    let allow_unauthenticated = args.allow_unauthenticated
        || env
            .var("HX_ALLOW_UNAUTHENTICATED")
            .is_some_and(|v| matches!(v.as_str(), "1" | "true" | "yes"));
    if config.master_key.is_none() && !allow_unauthenticated {
        return Err(StartError::NoMasterKey);
    }
    if config.master_key.is_none() {
        tracing::warn!("serving WITHOUT authentication (--allow-unauthenticated)");
    }
    let http = server::state::upstream_client().map_err(|e| StartError::Other(e.to_string()))?;
    let state = AppState::new(config, http, allow_unauthenticated)
        .map_err(|e| StartError::Other(e.to_string()))?;
    crate::health::spawn_background_probe(&state);
    // Opening the vector store (and taking its directory lock) happens off the start path; a
    // second process on the same data directory is told so here, in plain words.
    let rag_state = state.clone();
    tokio::spawn(async move {
        if let Err(e) = rag_state.rag.health().await {
            rag_state
                .vector_store_ok
                .store(false, std::sync::atomic::Ordering::Relaxed);
            tracing::error!(error = %e, "vector store unavailable: RAG routes answer 503 until it is");
        }
    });

    let addr = format!("{}:{}", args.host, args.port);
    let listener = TcpListener::bind(&addr)
        .await
        .map_err(|source| StartError::Bind {
            addr: addr.clone(),
            source,
        })?;
    let local = listener
        .local_addr()
        .map_err(|e| StartError::Other(e.to_string()))?;

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    spawn_signal_handlers(state.clone(), source, shutdown_tx)?;

    let migrate = migrations_enabled(args.no_migrate, env);
    let config = state.runtime().config.clone();
    // Readiness waits for the key store; the process itself serves (liveliness) meanwhile.
    let ready_state = state.clone();
    tokio::spawn(async move {
        let mut delay = Duration::from_millis(500);
        loop {
            match connect_keys(&config, migrate).await {
                Ok(keys) => {
                    tracing::info!(backend = keys.store().backend_name(), "key store ready");
                    ready_state.set_keys(keys);
                    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in_s = delay.as_secs_f64(), "key store not available yet");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(10));
                }
            }
        }
    });
    tracing::info!(address = %local, tls = args.ssl_certfile_path.is_some(), "HX Gateway listening");

    // `inf` or a huge value would overflow a Duration: such a grace period means "wait".
    let grace = Duration::try_from_secs_f64(args.graceful_timeout.max(0.0))
        .unwrap_or(Duration::from_secs(u32::MAX.into()));
    let served = match (&args.ssl_certfile_path, &args.ssl_keyfile_path) {
        (Some(cert), Some(key)) => {
            serve_tls(
                local,
                listener,
                state.clone(),
                cert,
                key,
                shutdown_rx,
                grace,
            )
            .await
        }
        (None, None) => serve_plain(listener, state.clone(), shutdown_rx, grace).await,
        _ => Err(StartError::Tls(
            "--ssl_keyfile_path and --ssl_certfile_path must be given together".into(),
        )),
    };
    // Even when serving failed, what is pending (spend) is flushed before the process exits.
    finish_shutdown(&state).await;
    served?;
    tracing::info!("HX Gateway stopped");
    Ok(())
}

/// How long the shutdown tasks (spend flush) get after the server drained.
const SHUTDOWN_TASKS_TIMEOUT: Duration = Duration::from_secs(10);

/// After the drain: runs the registered shutdown tasks (flushing pending spend), bounded so a
/// dead database cannot keep the process from exiting.
async fn finish_shutdown(state: &AppState) {
    if tokio::time::timeout(SHUTDOWN_TASKS_TIMEOUT, state.run_shutdown_tasks())
        .await
        .is_err()
    {
        tracing::warn!(
            timeout_s = SHUTDOWN_TASKS_TIMEOUT.as_secs(),
            "shutdown tasks did not finish in time; exiting anyway"
        );
    }
    if let Err(e) = state.rag.close().await {
        tracing::warn!(error = %e, "vector store did not close cleanly");
    }
    if let Some(keys) = state.keys() {
        match tokio::time::timeout(SHUTDOWN_TASKS_TIMEOUT, keys.flush_spend()).await {
            Ok(Ok(())) => tracing::info!("pending spend written"),
            Ok(Err(e)) => tracing::error!(error = %e, "pending spend could not be written"),
            Err(_) => tracing::error!("pending spend not written within the flush timeout"),
        }
    }
}

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

async fn serve_plain(
    listener: TcpListener,
    state: Arc<AppState>,
    mut shutdown: watch::Receiver<bool>,
    grace: Duration,
) -> Result<(), StartError> {
    // One server thread per worker of the runtime (`--num_workers`, else one per core).
    let threads = tokio::runtime::Handle::current().metrics().num_workers();
    let server = if threads > 1 {
        server::threads::serve_on_threads(listener, state, &shutdown, threads)
            .map_err(|e| StartError::Other(e.to_string()))?
    } else {
        let mut stop = shutdown.clone();
        let signal = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        tokio::spawn(server::serve(listener, state, signal))
    };
    let _ = shutdown.wait_for(|s| *s).await;
    drain(server, grace).await
}

/// Waits for in-flight requests up to the grace period.
async fn drain(
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    grace: Duration,
) -> Result<(), StartError> {
    match tokio::time::timeout(grace, server).await {
        Ok(Ok(Ok(()))) => Ok(()),
        Ok(Ok(Err(e))) => Err(StartError::Other(e.to_string())),
        Ok(Err(e)) => Err(StartError::Other(e.to_string())),
        Err(_) => {
            tracing::warn!(
                grace_s = grace.as_secs_f64(),
                "grace period over; closing remaining connections"
            );
            Ok(())
        }
    }
}

async fn serve_tls(
    addr: SocketAddr,
    listener: TcpListener,
    state: Arc<AppState>,
    cert: &Path,
    key: &Path,
    mut shutdown: watch::Receiver<bool>,
    grace: Duration,
) -> Result<(), StartError> {
    let tls = axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
        .await
        .map_err(|e| StartError::Tls(format!("cannot load certificate or key: {e}")))?;
    let std_listener = listener
        .into_std()
        .map_err(|e| StartError::Other(e.to_string()))?;
    let handle = axum_server::Handle::new();
    let app = server::app(state);
    let server = axum_server::from_tcp_rustls(std_listener, tls)
        .map_err(|e| StartError::Tls(e.to_string()))?
        .handle(handle.clone())
        .serve(app.into_make_service());
    let task = tokio::spawn(server);
    let _ = shutdown.wait_for(|s| *s).await;
    handle.graceful_shutdown(Some(grace));
    tracing::debug!(%addr, "TLS listener draining");
    match task.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(StartError::Other(e.to_string())),
        Err(e) => Err(StartError::Other(e.to_string())),
    }
}

fn spawn_signal_handlers(
    state: Arc<AppState>,
    source: ConfigSource,
    shutdown: watch::Sender<bool>,
) -> Result<(), StartError> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).map_err(|e| StartError::Other(e.to_string()))?;
    let mut hup = signal(SignalKind::hangup()).map_err(|e| StartError::Other(e.to_string()))?;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = tokio::signal::ctrl_c() => break,
                _ = hup.recv() => reload(&state, &source),
            }
        }
        tracing::info!("shutdown requested: no new connections, finishing in-flight requests");
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
        let _ = shutdown.send(true);
    });
    Ok(())
}

/// Loads the config file again; a config that fails validation changes nothing.
pub fn reload(state: &AppState, source: &ConfigSource) {
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Reloading]);
    let loaded = source.load(&crate::config::ProcessEnv).and_then(|config| {
        // A config without a master key would lock every client out (or open the gateway):
        // refused like an invalid one.
        if config.master_key.is_none() && !state.allow_unauthenticated {
            Err(ConfigError::Invalid {
                path: "general_settings.master_key".into(),
                message: "no master key in the new config (nor LITELLM_MASTER_KEY)".into(),
            })
        } else {
            Ok(config)
        }
    });
    match loaded {
        Ok(config) => {
            report_config(&config);
            let models = config.deployments.len();
            state.replace_runtime(config);
            tracing::info!(deployments = models, "config reloaded");
        }
        Err(e) => {
            tracing::error!(error = %e, "config reload refused; the running config stays");
        }
    }
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
}
