//! Response cache (LiteLLM's `litellm_settings.cache` + `cache_params`): whole non-streaming
//! responses keyed by model group and the request fields that change the answer, kept in
//! bounded local memory (moka, weighed in bytes) or in Redis shared by every instance.
//!
//! Per request: [`ResponseCache::plan`] decides from the settings and the body's `cache`
//! controls whether to read and/or write and computes the key; [`ResponseCache::lookup`] and
//! [`ResponseCache::store`] then do the work. A hit for a streaming request is replayed with
//! [`sse_replay`].

mod key;
mod replay;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;

use crate::api::Endpoint;
use crate::error::{ApiError, ErrorKind};
use crate::link::{LinkError, RedisLink};

pub use key::{cache_key, canonical_json};
pub use replay::{SSE_DONE, sse_replay};

/// `cache_params.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CacheMode {
    /// Every supported call is cached unless it opts out.
    #[default]
    DefaultOn,
    /// Only calls with `cache: {"use-cache": true}` are cached.
    DefaultOff,
}

/// `cache_params.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CacheBackendKind {
    #[default]
    Local,
    Redis,
}

/// The cache's settings, from `cache_params`.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheSettings {
    pub backend: CacheBackendKind,
    /// Default time to live of an entry (`ttl`; 600 s when unset).
    pub ttl: Duration,
    /// Default namespace (`namespace`), prefixed to every storage key.
    pub namespace: Option<String>,
    pub supported_call_types: Vec<Endpoint>,
    pub mode: CacheMode,
    /// Memory bound of the local cache, in bytes of keys and bodies.
    pub max_bytes: u64,
    /// Prefix of Redis keys (`hx:cache`); tests use a unique one.
    pub key_prefix: String,
    /// Redis from `cache_params` (`url`, or `host`/`port`/`password`), if given there; the
    /// caller may prefer the gateway-wide Redis settings.
    pub redis_url: Option<String>,
    /// Timeout of each Redis call; past it, a lookup is a miss and a store is skipped.
    pub redis_timeout: Duration,
}

impl Default for CacheSettings {
    fn default() -> Self {
        CacheSettings {
            backend: CacheBackendKind::Local,
            ttl: Duration::from_secs(600),
            namespace: None,
            supported_call_types: vec![
                Endpoint::Chat,
                Endpoint::Completion,
                Endpoint::Embedding,
                Endpoint::Messages,
                Endpoint::Responses,
            ],
            mode: CacheMode::DefaultOn,
            max_bytes: 256 * 1024 * 1024,
            key_prefix: "hx:cache".to_string(),
            redis_url: None,
            redis_timeout: Duration::from_millis(200),
        }
    }
}

impl CacheSettings {
    /// Reads LiteLLM's `cache_params` mapping (absent or null: the defaults, local).
    pub fn from_cache_params(params: &Value) -> Result<Self, CacheError> {
        let mut s = CacheSettings::default();
        let Some(map) = params.as_object() else {
            return if params.is_null() {
                Ok(s)
            } else {
                Err(CacheError::Settings(
                    "cache_params must be a mapping".into(),
                ))
            };
        };
        if let Some(kind) = map.get("type") {
            s.backend = match kind.as_str() {
                Some("local") => CacheBackendKind::Local,
                Some("redis") => CacheBackendKind::Redis,
                _ => {
                    return Err(CacheError::Settings(format!(
                        "cache_params.type {kind} is not supported (local, redis)"
                    )));
                }
            };
        }
        if let Some(ttl) = map.get("ttl").filter(|v| !v.is_null()) {
            s.ttl = seconds(ttl)
                .ok_or_else(|| CacheError::Settings("cache_params.ttl must be seconds".into()))?;
        }
        if let Some(ns) = map.get("namespace").and_then(Value::as_str) {
            s.namespace = Some(ns.to_string());
        }
        if let Some(types) = map.get("supported_call_types").filter(|v| !v.is_null()) {
            let types = types.as_array().ok_or_else(|| {
                CacheError::Settings("cache_params.supported_call_types must be a list".into())
            })?;
            s.supported_call_types = types
                .iter()
                .filter_map(Value::as_str)
                .filter_map(Endpoint::from_call_type)
                .collect();
        }
        if let Some(mode) = map.get("mode") {
            s.mode = match mode.as_str() {
                Some("default_off") => CacheMode::DefaultOff,
                Some("default_on") => CacheMode::DefaultOn,
                _ => {
                    return Err(CacheError::Settings(format!(
                        "cache_params.mode {mode} is not supported (default_on, default_off)"
                    )));
                }
            };
        }
        if let Some(mb) = map.get("max_size_in_memory_mb").and_then(Value::as_f64)
            && mb > 0.0
        {
            s.max_bytes = (mb * 1024.0 * 1024.0) as u64;
        }
        s.redis_url = redis_url_from_params(map);
        Ok(s)
    }
}

/// `url`, or `host`/`port`/`password` (LiteLLM's Redis cache params), as one URL.
fn redis_url_from_params(map: &serde_json::Map<String, Value>) -> Option<String> {
    if let Some(url) = map.get("url").and_then(Value::as_str) {
        return Some(url.to_string());
    }
    let host = map.get("host").and_then(Value::as_str)?;
    let port = match map.get("port") {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(p)) => p.clone(),
        _ => "6379".to_string(),
    };
    Some(match map.get("password").and_then(Value::as_str) {
        Some(pw) if !pw.is_empty() => format!("redis://:{pw}@{host}:{port}"),
        _ => format!("redis://{host}:{port}"),
    })
}

/// A duration in seconds given as a non-negative number or numeric string.
fn seconds(v: &Value) -> Option<Duration> {
    let secs = match v {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s.trim().parse::<f64>().ok()?,
        _ => return None,
    };
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

/// The request body's `cache` object.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CacheControls {
    /// `no-cache`: do not read a cached answer (still store the fresh one).
    pub no_cache: bool,
    /// `no-store`: do not store this answer.
    pub no_store: bool,
    /// `ttl`: how long to keep this answer.
    pub ttl: Option<Duration>,
    /// `s-maxage`: accept only a cached answer at most this old.
    pub s_maxage: Option<Duration>,
    /// `namespace`: overrides the configured namespace.
    pub namespace: Option<String>,
    /// `use-cache`: opt in (needed with `mode: default_off`) or out.
    pub use_cache: Option<bool>,
}

impl CacheControls {
    /// Reads `body.cache`; a malformed control is a 400 naming `cache`.
    pub fn from_body(body: &Value) -> Result<Self, CacheError> {
        let mut c = CacheControls::default();
        let Some(cache) = body.get("cache").filter(|v| !v.is_null()) else {
            return Ok(c);
        };
        let map = cache
            .as_object()
            .ok_or_else(|| CacheError::InvalidControl("'cache' must be an object".into()))?;
        let flag = |name: &str| -> Result<Option<bool>, CacheError> {
            match map.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Bool(b)) => Ok(Some(*b)),
                Some(_) => Err(CacheError::InvalidControl(format!(
                    "cache.{name} must be a boolean"
                ))),
            }
        };
        let secs = |name: &str| -> Result<Option<Duration>, CacheError> {
            match map.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => seconds(v).map(Some).ok_or_else(|| {
                    CacheError::InvalidControl(format!("cache.{name} must be seconds"))
                }),
            }
        };
        c.no_cache = flag("no-cache")?.unwrap_or(false);
        c.no_store = flag("no-store")?.unwrap_or(false);
        c.use_cache = flag("use-cache")?;
        c.ttl = secs("ttl")?;
        c.s_maxage = secs("s-maxage")?;
        c.namespace = match map.get("namespace") {
            None | Some(Value::Null) => None,
            Some(Value::String(ns)) => Some(ns.clone()),
            Some(_) => {
                return Err(CacheError::InvalidControl(
                    "cache.namespace must be a string".into(),
                ));
            }
        };
        Ok(c)
    }
}

/// What the cache does for one request.
#[derive(Debug, Clone, PartialEq)]
pub struct CachePlan {
    /// Hex SHA-256 of the request; the `x-litellm-cache-key` header value.
    pub key: String,
    /// Where it is stored (prefix, namespace, key).
    pub storage_key: String,
    /// Look for a cached answer.
    pub read: bool,
    /// Store the fresh answer.
    pub write: bool,
    /// Time to live of the stored answer.
    pub ttl: Duration,
    /// The oldest acceptable cached answer (`s-maxage`).
    pub max_age: Option<Duration>,
}

/// A cached answer.
#[derive(Debug, Clone, PartialEq)]
pub struct CachedResponse {
    /// The full JSON response body as the upstream answered it.
    pub body: Bytes,
    /// How long ago it was stored.
    pub age: Duration,
}

impl CachedResponse {
    pub fn json(&self) -> Result<Value, CacheError> {
        serde_json::from_slice(&self.body)
            .map_err(|e| CacheError::NotReplayable(format!("cached body is not JSON: {e}")))
    }

    /// The SSE events replaying this answer for a streaming request.
    pub fn sse_events(&self, include_usage: bool) -> Result<Vec<String>, CacheError> {
        sse_replay(&self.json()?, include_usage)
    }
}

/// Errors of the cache layer.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// A malformed `cache` control in a request (400).
    #[error("{0}")]
    InvalidControl(String),
    /// A malformed `cache_params` (a config error at startup).
    #[error("invalid cache settings: {0}")]
    Settings(String),
    /// A cached body that cannot be replayed as a stream.
    #[error("cached response cannot be replayed: {0}")]
    NotReplayable(String),
    #[error("response cache: {0}")]
    Link(#[from] LinkError),
}

impl From<CacheError> for ApiError {
    fn from(e: CacheError) -> Self {
        match e {
            CacheError::InvalidControl(msg) => ApiError::invalid(msg, "cache"),
            CacheError::Link(_) => ApiError::new(ErrorKind::Unavailable, e.to_string()),
            CacheError::Settings(_) | CacheError::NotReplayable(_) => {
                ApiError::internal(e.to_string())
            }
        }
    }
}

/// An entry of the local cache.
#[derive(Debug)]
struct LocalEntry {
    body: Bytes,
    stored_at_ms: u64,
    ttl: Duration,
}

/// Expires each local entry after its own TTL.
struct EntryTtl;

impl moka::Expiry<String, Arc<LocalEntry>> for EntryTtl {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &Arc<LocalEntry>,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(value.ttl)
    }

    fn expire_after_update(
        &self,
        _key: &String,
        value: &Arc<LocalEntry>,
        _updated_at: std::time::Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// Where entries live.
#[derive(Clone)]
enum Backend {
    Local(moka::future::Cache<String, Arc<LocalEntry>>),
    Redis(RedisLink),
}

/// The response cache. Cheap to clone.
#[derive(Clone)]
pub struct ResponseCache {
    settings: Arc<CacheSettings>,
    backend: Backend,
}

impl std::fmt::Debug for ResponseCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let backend = match &self.backend {
            Backend::Local(_) => "local".to_string(),
            Backend::Redis(link) => format!("{link:?}"),
        };
        f.debug_struct("ResponseCache")
            .field("backend", &backend)
            .field("settings", &self.settings)
            .finish()
    }
}

impl ResponseCache {
    /// A cache as `settings` says: local, or Redis at `redis_url` (the gateway's Redis) or
    /// else `settings.redis_url`. Redis connects lazily; an unreachable Redis means misses.
    pub fn new(settings: CacheSettings, redis_url: Option<&str>) -> Result<Self, CacheError> {
        let backend = match settings.backend {
            CacheBackendKind::Local => Backend::Local(
                moka::future::Cache::builder()
                    .max_capacity(settings.max_bytes)
                    .weigher(|k: &String, v: &Arc<LocalEntry>| {
                        u32::try_from(k.len() + v.body.len() + 64).unwrap_or(u32::MAX)
                    })
                    .expire_after(EntryTtl)
                    .build(),
            ),
            CacheBackendKind::Redis => {
                let url = redis_url
                    .map(str::to_string)
                    .or_else(|| settings.redis_url.clone())
                    .ok_or_else(|| {
                        CacheError::Settings("cache type redis needs a Redis URL".into())
                    })?;
                Backend::Redis(RedisLink::new(&url, settings.redis_timeout, "cache")?)
            }
        };
        Ok(ResponseCache {
            settings: Arc::new(settings),
            backend,
        })
    }

    pub fn settings(&self) -> &CacheSettings {
        &self.settings
    }

    /// What to do for a request: `None` when the cache stays out of it (call type not
    /// supported, `mode: default_off` without `use-cache: true`, `use-cache: false`, or both
    /// `no-cache` and `no-store`). `model_group` is the model name the client asked for.
    /// Errors only on malformed `cache` controls (a 400).
    pub fn plan(
        &self,
        call: Endpoint,
        model_group: &str,
        body: &Value,
    ) -> Result<Option<CachePlan>, CacheError> {
        if !self.settings.supported_call_types.contains(&call) {
            return Ok(None);
        }
        let controls = CacheControls::from_body(body)?;
        let wanted = match (self.settings.mode, controls.use_cache) {
            (_, Some(explicit)) => explicit,
            (CacheMode::DefaultOn, None) => true,
            (CacheMode::DefaultOff, None) => false,
        };
        if !wanted || (controls.no_cache && controls.no_store) {
            return Ok(None);
        }
        let key = cache_key(call, model_group, body);
        let namespace = controls
            .namespace
            .as_ref()
            .or(self.settings.namespace.as_ref());
        let storage_key = match namespace {
            Some(ns) => format!("{}:{ns}:{key}", self.settings.key_prefix),
            None => format!("{}:{key}", self.settings.key_prefix),
        };
        Ok(Some(CachePlan {
            key,
            storage_key,
            read: !controls.no_cache,
            write: !controls.no_store,
            ttl: controls.ttl.unwrap_or(self.settings.ttl),
            max_age: controls.s_maxage,
        }))
    }

    /// The cached answer for a plan, if any, fresh enough and readable. Redis trouble is a
    /// miss (with a warning once per outage).
    pub async fn lookup(&self, plan: &CachePlan) -> Option<CachedResponse> {
        if !plan.read {
            return None;
        }
        let (body, stored_at_ms) = match &self.backend {
            Backend::Local(cache) => {
                let entry = cache.get(&plan.storage_key).await?;
                (entry.body.clone(), entry.stored_at_ms)
            }
            Backend::Redis(link) => {
                let key = plan.storage_key.clone();
                let raw: Option<Vec<u8>> = link
                    .call(|mut conn| async move {
                        redis::cmd("GET").arg(key).query_async(&mut conn).await
                    })
                    .await
                    .ok()
                    .flatten();
                decode_stored(raw?)?
            }
        };
        let age = Duration::from_millis(crate::link::unix_ms().saturating_sub(stored_at_ms));
        if plan.max_age.is_some_and(|max| age > max) {
            crate::metrics::record_cache_too_old();
            return None;
        }
        Some(CachedResponse { body, age })
    }

    /// Bytes held by the local cache after pending evictions ran (`None` for Redis); for
    /// health output and tests of the memory bound.
    pub async fn local_weighted_size(&self) -> Option<u64> {
        match &self.backend {
            Backend::Local(cache) => {
                cache.run_pending_tasks().await;
                Some(cache.weighted_size())
            }
            Backend::Redis(_) => None,
        }
    }

    /// Stores a successful answer (the caller stores only 2xx, complete responses).
    pub async fn store(&self, plan: &CachePlan, body: Bytes) {
        if !plan.write || plan.ttl.is_zero() {
            return;
        }
        let now = crate::link::unix_ms();
        match &self.backend {
            Backend::Local(cache) => {
                let entry = Arc::new(LocalEntry {
                    body,
                    stored_at_ms: now,
                    ttl: plan.ttl,
                });
                cache.insert(plan.storage_key.clone(), entry).await;
            }
            Backend::Redis(link) => {
                let mut payload = Vec::with_capacity(8 + body.len());
                payload.extend_from_slice(&now.to_be_bytes());
                payload.extend_from_slice(&body);
                let key = plan.storage_key.clone();
                let ttl_ms = u64::try_from(plan.ttl.as_millis())
                    .unwrap_or(u64::MAX)
                    .max(1);
                let result: Result<(), LinkError> = link
                    .call(|mut conn| async move {
                        redis::cmd("SET")
                            .arg(key)
                            .arg(payload)
                            .arg("PX")
                            .arg(ttl_ms)
                            .query_async(&mut conn)
                            .await
                    })
                    .await;
                if let Err(e) = result {
                    tracing::debug!(error = %e, "response not stored in the redis cache");
                }
            }
        }
    }
}

/// A Redis value: 8 bytes of storage time (ms, big-endian), then the body.
fn decode_stored(raw: Vec<u8>) -> Option<(Bytes, u64)> {
    if raw.len() < 8 {
        return None;
    }
    let mut at = [0u8; 8];
    at.copy_from_slice(&raw[..8]);
    let mut body = Bytes::from(raw);
    Some((body.split_off(8), u64::from_be_bytes(at)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn settings_from_litellm_params() {
        let s = CacheSettings::from_cache_params(&json!({
            "type": "redis", "ttl": 30, "namespace": "ns", "host": "h", "port": 6380,
            "password": "pw", "mode": "default_off",
            "supported_call_types": ["acompletion", "aembedding", "atranscription"]
        }))
        .unwrap();
        assert_eq!(s.backend, CacheBackendKind::Redis);
        assert_eq!(s.ttl, Duration::from_secs(30));
        assert_eq!(s.namespace.as_deref(), Some("ns"));
        assert_eq!(s.mode, CacheMode::DefaultOff);
        assert_eq!(
            s.supported_call_types,
            vec![Endpoint::Chat, Endpoint::Embedding]
        );
        assert_eq!(s.redis_url.as_deref(), Some("redis://:pw@h:6380"));
        assert!(CacheSettings::from_cache_params(&json!({"type": "s3"})).is_err());
        assert_eq!(
            CacheSettings::from_cache_params(&Value::Null).unwrap(),
            CacheSettings::default()
        );
    }

    #[test]
    fn controls_parse_and_reject_bad_values() {
        let c = CacheControls::from_body(&json!({"cache": {"no-cache": true, "ttl": "5",
            "s-maxage": 2.5, "namespace": "x", "use-cache": true}}))
        .unwrap();
        assert!(c.no_cache && !c.no_store);
        assert_eq!(c.ttl, Some(Duration::from_secs(5)));
        assert_eq!(c.s_maxage, Some(Duration::from_millis(2500)));
        assert_eq!(c.namespace.as_deref(), Some("x"));
        assert_eq!(c.use_cache, Some(true));
        for bad in [
            json!({"cache": 1}),
            json!({"cache": {"ttl": -1}}),
            json!({"cache": {"no-store": "yes"}}),
        ] {
            let e = ApiError::from(CacheControls::from_body(&bad).unwrap_err());
            assert_eq!(e.status().as_u16(), 400);
            assert_eq!(e.param.as_deref(), Some("cache"));
        }
    }
}
