//! `hx-gateway` (serve): running the gateway as a service: start (config, listener, readiness, systemd notify),
//! SIGHUP reloads, SIGTERM drains in-flight requests within a grace period, then exits.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use super::cli::ServeArgs;
use super::migrate::{connect_keys, migrations_enabled};
use super::{ConfigSource, StartError, report_config};
use crate::config::{ConfigError, EnvSource};
use crate::gateway::AppState;
use crate::providers::Upstream;
use crate::server;

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
    let upstream = Upstream::new().map_err(|e| StartError::Other(e.to_string()))?;
    let state = AppState::new(config, upstream, allow_unauthenticated)
        .map_err(|e| StartError::Other(e.to_string()))?;
    spawn_background_probe(&state);
    spawn_response_pruning(&state);
    // Opening the vector store (and taking its directory lock) happens off the start path; a
    // second process on the same data directory is told so here, in plain words.
    let rag_state = state.clone();
    tokio::spawn(async move {
        if let Err(e) = rag_state.rag.health().await {
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

/// How often stored responses past their retention are deleted.
const RESPONSE_PRUNING_INTERVAL: Duration = Duration::from_secs(3600);

/// Deletes stored responses past `general_settings.responses_retention_days`, hourly (the
/// first run a minute after start, once the key store is up) while the state lives.
fn spawn_response_pruning(state: &Arc<AppState>) {
    let weak: Weak<AppState> = Arc::downgrade(state);
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(60)).await;
        let mut tick = tokio::time::interval(RESPONSE_PRUNING_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(state) = weak.upgrade() else {
                break;
            };
            match crate::proxy::responses::prune(&state).await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(deleted = n, "pruned stored responses past their retention")
                }
                Err(e) => tracing::warn!(error = %e.message, "could not prune stored responses"),
            }
        }
    });
}

/// Refreshes the dependency gauges every [`crate::health::BACKGROUND_PROBE_INTERVAL`] while the state lives.
fn spawn_background_probe(state: &Arc<AppState>) {
    let weak: Weak<AppState> = Arc::downgrade(state);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(crate::health::BACKGROUND_PROBE_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(state) = weak.upgrade() else {
                break;
            };
            let config = state.runtime().config.clone();
            let report = state
                .dependencies
                .probe_all(&config, state.rag.is_open())
                .await;
            for o in report.outcomes().into_iter().filter(|o| o.is_failing()) {
                tracing::warn!(
                    dependency = o.dependency.name(),
                    error = o.error.as_deref().unwrap_or(""),
                    "dependency is down"
                );
            }
        }
    });
}
