//! What every handler shares: the current runtime (config and router, swapped on reload) and
//! the long-lived services that survive a reload.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::ArcSwap;
use futures::future::BoxFuture;
use parking_lot::Mutex;

use crate::config::GatewayConfig;
use crate::health::DependencyProbes;
use crate::router::Router;

/// The part of the gateway a config reload replaces as a whole.
pub struct Runtime {
    pub config: Arc<GatewayConfig>,
    pub router: Router,
}

impl Runtime {
    pub fn new(config: GatewayConfig, http: &reqwest::Client) -> Self {
        let router = Router::build(&config, http);
        for d in &router.disabled {
            tracing::warn!(model_name = %d.model_name, index = d.index, reason = %d.reason, "deployment disabled");
        }
        Runtime {
            config: Arc::new(config),
            router,
        }
    }
}

/// Shared by every request. Cheap to clone through `Arc`.
pub struct AppState {
    runtime: ArcSwap<Runtime>,
    pub http: reqwest::Client,
    ready: AtomicBool,
    pub allow_unauthenticated: bool,
    /// Probes of Postgres, Redis and the vector store, with their kept connections.
    pub dependencies: DependencyProbes,
    /// Work to finish after the server drained (flushing pending spend), see [`AppState::on_shutdown`].
    shutdown_tasks: Mutex<Vec<BoxFuture<'static, ()>>>,
}

impl AppState {
    pub fn new(
        config: GatewayConfig,
        http: reqwest::Client,
        allow_unauthenticated: bool,
    ) -> Arc<Self> {
        let runtime = Runtime::new(config, &http);
        // The Prometheus recorder must exist before the first request records anything.
        crate::metrics::install();
        Arc::new(AppState {
            runtime: ArcSwap::from_pointee(runtime),
            http,
            ready: AtomicBool::new(false),
            allow_unauthenticated,
            dependencies: DependencyProbes::new(),
            shutdown_tasks: Mutex::new(Vec::new()),
        })
    }

    /// The runtime in force now; a request keeps the one it started with.
    pub fn runtime(&self) -> Arc<Runtime> {
        self.runtime.load_full()
    }

    /// Installs a new config; requests in flight finish on the old one.
    pub fn replace_runtime(&self, config: GatewayConfig) {
        let runtime = Runtime::new(config, &self.http);
        self.runtime.store(Arc::new(runtime));
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Release);
    }

    /// Registers work to run once at shutdown, after in-flight requests drained (or the grace
    /// period ended): e.g. flushing the spend records still buffered. Futures are lazy, so
    /// `state.on_shutdown(async move { writer.flush().await })` runs the flush only then.
    pub fn on_shutdown(&self, task: impl Future<Output = ()> + Send + 'static) {
        self.shutdown_tasks.lock().push(Box::pin(task));
    }

    /// Runs the registered shutdown tasks concurrently; called once by the lifecycle.
    pub async fn run_shutdown_tasks(&self) {
        let tasks = std::mem::take(&mut *self.shutdown_tasks.lock());
        futures::future::join_all(tasks).await;
    }
}

/// The pooled HTTP client every upstream call goes through.
pub fn upstream_client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .pool_idle_timeout(std::time::Duration::from_secs(90))
        .tcp_nodelay(true)
        .connect_timeout(std::time::Duration::from_secs(10))
        .build()
}
