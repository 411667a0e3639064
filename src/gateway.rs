//! What every handler shares: the current runtime (config and router, swapped on reload) and
//! the long-lived services that survive a reload.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwap;
use futures::future::BoxFuture;
use parking_lot::Mutex;

use crate::cache::{CacheSettings, ResponseCache};
use crate::changes::ChangeBus;
use crate::config::GatewayConfig;
use crate::keys::KeyService;
use crate::limits::{LimiterOptions, RateLimiter};
use crate::providers::Upstream;
use crate::rag::{RagConfig, RagService};

/// A service the gateway could not set up at start.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StateError(pub String);
use crate::health::DependencyProbes;
use crate::router::Router;
use crate::spend::BudgetReservations;

/// The part of the gateway a config reload replaces as a whole.
pub struct Runtime {
    pub config: Arc<GatewayConfig>,
    pub router: Router,
    /// Hash of the master key: the `api_key` of spend records for master-key calls.
    pub master_key_hash: Option<String>,
}

impl Runtime {
    pub fn new(config: GatewayConfig) -> Self {
        let router = Router::build(&config);
        for d in &router.disabled {
            tracing::warn!(model_name = %d.model_name, index = d.index, reason = %d.reason, "deployment disabled");
        }
        Runtime {
            master_key_hash: config
                .master_key
                .as_ref()
                .map(|k| crate::secret::hash_key(k.expose())),
            config: Arc::new(config),
            router,
        }
    }
}

/// Shared by every request. Cheap to clone through `Arc`.
pub struct AppState {
    runtime: ArcSwap<Runtime>,
    /// The upstream clients of work done off the server threads (each server thread has its
    /// own, `server::ServerState`).
    pub upstream: Upstream,
    /// Rate limits: Redis when configured, else this instance's memory.
    pub limiter: RateLimiter,
    /// Budget holds of requests in flight (shared through Redis when configured).
    pub budgets: BudgetReservations,
    /// The response cache, when `litellm_settings.cache` is on (settings read at start).
    pub cache: Option<ResponseCache>,
    /// Retrieval over the vector store (embedded engine unless `QDRANT_URL` is set).
    pub rag: RagService,
    /// Changes announced to and by the other instances on the same Redis (`changes`).
    pub changes: ChangeBus,
    /// Virtual keys and spend; set once the key store has answered (readiness waits for it).
    keys: OnceLock<KeyService>,
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
        upstream: Upstream,
        allow_unauthenticated: bool,
    ) -> Result<Arc<Self>, StateError> {
        let redis_url = config.redis_url.as_ref().map(|u| u.expose().to_string());
        let limiter = match &redis_url {
            Some(url) => RateLimiter::redis(url, LimiterOptions::default())
                .map_err(|e| StateError(e.to_string()))?,
            None => RateLimiter::in_memory(LimiterOptions::default()),
        };
        let changes = match &redis_url {
            Some(url) => {
                let link = crate::link::RedisLink::new(
                    url,
                    LimiterOptions::default().redis_timeout,
                    "changes",
                )
                .map_err(|e| StateError(e.to_string()))?;
                ChangeBus::redis(url, link).map_err(StateError)?
            }
            None => ChangeBus::local(),
        };
        let budgets = match &redis_url {
            Some(url) => {
                let options = LimiterOptions::default();
                BudgetReservations::redis(url, options.redis_timeout, "hx").map_err(StateError)?
            }
            None => BudgetReservations::in_memory(),
        };
        let cache = if config.litellm.cache.unwrap_or(false) {
            let params = config
                .litellm
                .cache_params
                .clone()
                .unwrap_or(serde_json::Value::Null);
            let settings = CacheSettings::from_cache_params(&params)
                .map_err(|e| StateError(format!("litellm_settings.cache_params: {e}")))?;
            Some(
                ResponseCache::new(settings, redis_url.as_deref())
                    .map_err(|e| StateError(e.to_string()))?,
            )
        } else {
            None
        };
        let rag = RagService::open(RagConfig {
            qdrant_url: config
                .rag
                .qdrant_url
                .as_ref()
                .map(|u| u.expose().to_string()),
            qdrant_api_key: config.rag.qdrant_api_key.clone(),
            collection: config.rag.collection.clone(),
            data_dir: config.rag.data_dir.clone(),
        })
        .map_err(|e| StateError(format!("vector store: {e}")))?
        .with_max_collections(config.rag.max_collections);
        let runtime = Runtime::new(config);
        // The Prometheus recorder must exist before the first request records anything.
        crate::metrics::install();
        Ok(Arc::new(AppState {
            runtime: ArcSwap::from_pointee(runtime),
            upstream,
            limiter,
            budgets,
            changes,
            cache,
            keys: OnceLock::new(),
            ready: AtomicBool::new(false),
            allow_unauthenticated,
            dependencies: DependencyProbes::new(),
            rag,
            shutdown_tasks: Mutex::new(Vec::new()),
        }))
    }

    /// The runtime in force now; a request keeps the one it started with.
    pub fn runtime(&self) -> Arc<Runtime> {
        self.runtime.load_full()
    }

    /// Installs a new config; requests in flight finish on the old one.
    pub fn replace_runtime(&self, config: GatewayConfig) {
        let runtime = Runtime::new(config);
        self.runtime.store(Arc::new(runtime));
    }

    /// The key service, once the key store has answered.
    pub fn keys(&self) -> Option<&KeyService> {
        self.keys.get()
    }

    /// Installs the key service and marks the gateway ready.
    pub fn set_keys(&self, keys: KeyService) {
        keys.attach_changes(self.changes.clone());
        let _ = self.keys.set(keys);
        self.set_ready();
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
