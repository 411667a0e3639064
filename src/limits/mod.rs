//! Rate limits: per key / team / deployment requests and tokens per minute and parallel
//! request slots, in memory (one instance) or in Redis (shared exactly by every instance).
//!
//! The caller describes every limit that applies to a request as a list of [`LimitRequest`]s
//! and calls [`RateLimiter::acquire`] once; all scopes are checked and committed together
//! (all or nothing). The returned [`Admission`] holds the parallel-slot leases and the token
//! reservation; [`Admission::settle`] corrects the reservation to the real usage and
//! [`Admission::release`] (or dropping it) frees the slots.
//!
//! Windows are sliding logs: a request admitted at `t` counts until `t + window`, so no
//! window-long span ever admits more than the limit, across minute boundaries too.

mod memory;
mod redis_backend;

use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderName, HeaderValue};

use crate::error::{ApiError, ErrorKind};
use crate::link::LinkError;
pub use memory::MemoryLimiter;
pub use redis_backend::RedisLimiter;

/// Whose limit a [`LimitRequest`] is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LimitScope {
    /// A virtual key, by its hash (never the raw key).
    Key(String),
    /// A team, by id.
    Team(String),
    /// An end user (a request's `user`), by id.
    EndUser(String),
    /// A deployment (`model_info.id`).
    Deployment(String),
    /// The whole gateway (`general_settings.global_max_parallel_requests`).
    Global,
}

impl LimitScope {
    fn kind(&self) -> &'static str {
        match self {
            LimitScope::Key(_) => "key",
            LimitScope::Team(_) => "team",
            LimitScope::EndUser(_) => "end_user",
            LimitScope::Deployment(_) => "deployment",
            LimitScope::Global => "global",
        }
    }

    fn id(&self) -> &str {
        match self {
            LimitScope::Key(id)
            | LimitScope::Team(id)
            | LimitScope::EndUser(id)
            | LimitScope::Deployment(id) => id,
            LimitScope::Global => "",
        }
    }

    /// The config name of a limit of this scope, as the rejection message shows it.
    fn limit_name(&self, kind: LimitKind) -> &'static str {
        match (self, kind) {
            (LimitScope::Deployment(_), LimitKind::Requests) => "rpm",
            (LimitScope::Deployment(_), LimitKind::Tokens) => "tpm",
            (_, LimitKind::Requests) => "rpm_limit",
            (_, LimitKind::Tokens) => "tpm_limit",
            (_, LimitKind::Parallel) => "max_parallel_requests",
        }
    }

    /// How the scope is named to the client: a key's hash is not shown, the others' ids are.
    fn display(&self) -> String {
        match self {
            LimitScope::Key(_) => "key".to_string(),
            LimitScope::Global => "gateway".to_string(),
            LimitScope::Team(id) => format!("team {id}"),
            LimitScope::EndUser(id) => format!("end user {id}"),
            LimitScope::Deployment(id) => format!("deployment {id}"),
        }
    }
}

/// The limits of one scope that apply to one request. `None` means no limit of that kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitRequest {
    pub scope: LimitScope,
    /// Requests per window (per minute by default).
    pub rpm: Option<u64>,
    /// Tokens per window.
    pub tpm: Option<u64>,
    /// Requests in flight at once.
    pub max_parallel: Option<u64>,
    /// Tokens reserved now against `tpm` (prompt size plus `max_tokens`); settled later.
    pub estimated_tokens: u64,
}

impl LimitRequest {
    pub fn new(scope: LimitScope) -> Self {
        LimitRequest {
            scope,
            rpm: None,
            tpm: None,
            max_parallel: None,
            estimated_tokens: 0,
        }
    }

    pub fn rpm(mut self, limit: Option<u64>) -> Self {
        self.rpm = limit;
        self
    }

    pub fn tpm(mut self, limit: Option<u64>) -> Self {
        self.tpm = limit;
        self
    }

    pub fn max_parallel(mut self, limit: Option<u64>) -> Self {
        self.max_parallel = limit;
        self
    }

    pub fn estimated_tokens(mut self, tokens: u64) -> Self {
        self.estimated_tokens = tokens;
        self
    }

    fn has_limits(&self) -> bool {
        self.rpm.is_some() || self.tpm.is_some() || self.max_parallel.is_some()
    }

    /// The tokens a request counts for against `tpm`: at least one, so a request without an
    /// estimate is still refused once the window is full.
    fn reserved_tokens(&self) -> u64 {
        self.estimated_tokens.max(1)
    }
}

/// Tuning of a [`RateLimiter`].
#[derive(Debug, Clone)]
pub struct LimiterOptions {
    /// Length of the sliding window of `rpm`/`tpm` (60 s; shorter in tests).
    pub window: Duration,
    /// How long a parallel slot lives if its holder never releases it (a crashed instance).
    /// Must exceed the longest request (the request timeout).
    pub lease_ttl: Duration,
    /// Prefix of every Redis key (`hx:rl`); tests use a unique one each.
    pub key_prefix: String,
    /// Timeout of each Redis call; past it the request falls back to memory.
    pub redis_timeout: Duration,
}

impl Default for LimiterOptions {
    fn default() -> Self {
        LimiterOptions {
            window: Duration::from_secs(60),
            lease_ttl: Duration::from_secs(660),
            key_prefix: "hx:rl".to_string(),
            redis_timeout: Duration::from_millis(200),
        }
    }
}

/// Which limit a rejection is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    Requests,
    Tokens,
    Parallel,
}

/// One limit's state for the `x-ratelimit-*` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub limit: u64,
    pub remaining: u64,
    /// Time until the oldest use in the window expires (capacity grows again).
    pub reset: Duration,
}

/// What the `x-ratelimit-*` headers say: the tightest request and token quota of a request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateLimitInfo {
    pub requests: Option<Quota>,
    pub tokens: Option<Quota>,
}

impl RateLimitInfo {
    /// Keeps, per kind, the quota with the least remaining.
    fn merge(&mut self, kind: LimitKind, quota: Quota) {
        let slot = match kind {
            LimitKind::Requests => &mut self.requests,
            LimitKind::Tokens => &mut self.tokens,
            LimitKind::Parallel => return,
        };
        match slot {
            Some(current) if current.remaining <= quota.remaining => {}
            _ => *slot = Some(quota),
        }
    }

    /// `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` for whichever quotas apply.
    pub fn headers(&self) -> Vec<(HeaderName, HeaderValue)> {
        let mut out = Vec::with_capacity(6);
        for (suffix, quota) in [("requests", self.requests), ("tokens", self.tokens)] {
            let Some(q) = quota else { continue };
            let names = if suffix == "requests" {
                [
                    "x-ratelimit-limit-requests",
                    "x-ratelimit-remaining-requests",
                    "x-ratelimit-reset-requests",
                ]
            } else {
                [
                    "x-ratelimit-limit-tokens",
                    "x-ratelimit-remaining-tokens",
                    "x-ratelimit-reset-tokens",
                ]
            };
            out.push((
                HeaderName::from_static(names[0]),
                HeaderValue::from(q.limit),
            ));
            out.push((
                HeaderName::from_static(names[1]),
                HeaderValue::from(q.remaining),
            ));
            if let Ok(v) = HeaderValue::from_str(&format_reset(q.reset)) {
                out.push((HeaderName::from_static(names[2]), v));
            }
        }
        out
    }
}

/// A reset duration as OpenAI writes it: `250ms`, `12s`, `1m5s`.
fn format_reset(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else {
        let secs = ms.div_ceil(1000);
        if secs < 60 {
            format!("{secs}s")
        } else {
            format!("{}m{}s", secs / 60, secs % 60)
        }
    }
}

/// A request refused by a limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Rate limit exceeded for {}: {} {}", .scope.display(), .scope.limit_name(*.kind), .limit)]
pub struct LimitRejection {
    pub scope: LimitScope,
    pub kind: LimitKind,
    pub limit: u64,
    /// When a retry may succeed (at least one second in `retry-after`).
    pub retry_after: Duration,
}

impl LimitRejection {
    fn new(scope: LimitScope, kind: LimitKind, limit: u64, retry_after: Duration) -> Self {
        LimitRejection {
            scope,
            kind,
            limit,
            retry_after,
        }
    }

    /// The refused quota (remaining 0) for the `x-ratelimit-*` headers.
    pub fn info(&self) -> RateLimitInfo {
        let mut info = RateLimitInfo::default();
        info.merge(
            self.kind,
            Quota {
                limit: self.limit,
                remaining: 0,
                reset: self.retry_after,
            },
        );
        info
    }

    /// `retry-after` in whole seconds, rounded up, at least 1.
    pub fn retry_after_secs(&self) -> u64 {
        self.retry_after.as_millis().div_ceil(1000).max(1) as u64
    }
}

/// The client's 429, counted in `hx_rate_limit_rejections_total` by scope and limit: every
/// rejection a client sees goes through here, so none is missed or counted twice.
impl From<LimitRejection> for ApiError {
    fn from(rejection: LimitRejection) -> Self {
        let scope = match rejection.scope {
            LimitScope::Key(_) => "key",
            LimitScope::Team(_) => "team",
            LimitScope::EndUser(_) => "end_user",
            LimitScope::Deployment(_) => "deployment",
            LimitScope::Global => "global",
        };
        let limit = match rejection.kind {
            LimitKind::Requests => "rpm",
            LimitKind::Tokens => "tpm",
            LimitKind::Parallel => "max_parallel_requests",
        };
        crate::metrics::record_rate_limit_rejection(scope, limit);
        let mut error = ApiError::new(ErrorKind::RateLimit, rejection.to_string())
            .with_retry_after(rejection.retry_after_secs());
        for (name, value) in rejection.info().headers() {
            error = error.with_header(name, value);
        }
        error
    }
}

/// Errors building a limiter (the check itself never fails: Redis trouble falls back).
#[derive(Debug, thiserror::Error)]
pub enum LimitError {
    #[error("rate limiter: {0}")]
    Link(#[from] LinkError),
}

impl From<LimitError> for ApiError {
    fn from(e: LimitError) -> Self {
        ApiError::new(ErrorKind::Unavailable, e.to_string())
    }
}

/// The limiter: in memory or in Redis (with in-memory fallback). Cheap to clone.
#[derive(Clone, Debug)]
pub enum RateLimiter {
    Memory(Arc<MemoryLimiter>),
    Redis(Arc<RedisLimiter>),
}

impl RateLimiter {
    /// A single-instance limiter.
    pub fn in_memory(options: LimiterOptions) -> Self {
        RateLimiter::Memory(Arc::new(MemoryLimiter::new(&options)))
    }

    /// A limiter shared through Redis at `url` (`redis://[:password@]host:port[/db]`).
    /// Connects lazily: a Redis that is down at start only means memory fallback until it
    /// comes up. Fails only on a malformed URL.
    pub fn redis(url: &str, options: LimiterOptions) -> Result<Self, LimitError> {
        Ok(RateLimiter::Redis(Arc::new(RedisLimiter::new(
            url, options,
        )?)))
    }

    /// Checks and commits every limit of `requests` at once: either all admit the request
    /// (it is counted in each) or none does and the first refusing limit is returned.
    /// Requests without any limit set are ignored; with none at all, no work is done.
    pub async fn acquire(&self, requests: &[LimitRequest]) -> Result<Admission, LimitRejection> {
        if !requests.iter().any(LimitRequest::has_limits) {
            return Ok(Admission::empty());
        }
        let (info, held) = match self {
            RateLimiter::Memory(m) => m.acquire(requests)?,
            RateLimiter::Redis(r) => r.acquire(requests).await?,
        };
        Ok(Admission {
            limiter: Some(self.clone()),
            info,
            held,
        })
    }

    /// Whether this limiter currently runs on its in-memory fallback (Redis unreachable).
    pub fn is_degraded(&self) -> bool {
        match self {
            RateLimiter::Memory(_) => false,
            RateLimiter::Redis(r) => r.is_degraded(),
        }
    }

    fn memory(&self) -> &MemoryLimiter {
        match self {
            RateLimiter::Memory(m) => m,
            RateLimiter::Redis(r) => r.fallback(),
        }
    }
}

/// Where an admission's counters live, so settlement and release go to the same place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Store {
    Memory,
    Redis,
}

/// A token reservation in one scope.
#[derive(Debug, Clone)]
struct Reservation {
    scope: LimitScope,
    /// Position in the memory token log (unused in Redis).
    seq: u64,
    amount: u64,
}

/// What an admission holds until it is settled and released.
#[derive(Debug)]
struct Held {
    store: Store,
    /// Unique per admission; the lease / log member.
    id: u64,
    leases: Vec<LimitScope>,
    reservations: Vec<Reservation>,
}

/// An admitted request. Holds its parallel slots until [`Admission::release`] or drop.
#[derive(Debug)]
#[must_use = "dropping an admission releases its parallel slots at once"]
pub struct Admission {
    limiter: Option<RateLimiter>,
    info: RateLimitInfo,
    held: Held,
}

impl Admission {
    fn empty() -> Self {
        Admission {
            limiter: None,
            info: RateLimitInfo::default(),
            held: Held {
                store: Store::Memory,
                id: 0,
                leases: Vec::new(),
                reservations: Vec::new(),
            },
        }
    }

    /// The quotas for the `x-ratelimit-*` headers.
    pub fn info(&self) -> RateLimitInfo {
        self.info
    }

    /// The `x-ratelimit-*` headers to put on the response.
    pub fn headers(&self) -> Vec<(HeaderName, HeaderValue)> {
        self.info.headers()
    }

    /// Nothing to settle or release: no limit applied to the request.
    pub fn holds_nothing(&self) -> bool {
        self.limiter.is_none() || (self.held.leases.is_empty() && self.held.reservations.is_empty())
    }

    /// Replaces the token reservation with the real usage (call once the usage is known;
    /// later calls do nothing). Without it, the estimate stays counted.
    pub async fn settle(&mut self, actual_tokens: u64) {
        let Some(limiter) = &self.limiter else { return };
        let reservations = std::mem::take(&mut self.held.reservations);
        if reservations.is_empty() {
            return;
        }
        match (self.held.store, limiter) {
            (Store::Redis, RateLimiter::Redis(r)) => {
                r.settle(self.held.id, &reservations, actual_tokens).await;
            }
            _ => limiter.memory().settle(&reservations, actual_tokens),
        }
    }

    /// Frees the parallel slots now (also done on drop, in the background for Redis).
    pub async fn release(mut self) {
        let Some(limiter) = self.limiter.take() else {
            return;
        };
        let leases = std::mem::take(&mut self.held.leases);
        if leases.is_empty() {
            return;
        }
        match (self.held.store, &limiter) {
            (Store::Redis, RateLimiter::Redis(r)) => r.release(self.held.id, &leases).await,
            _ => limiter.memory().release(self.held.id, &leases),
        }
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        let Some(limiter) = self.limiter.take() else {
            return;
        };
        let leases = std::mem::take(&mut self.held.leases);
        if leases.is_empty() {
            return;
        }
        let id = self.held.id;
        match (self.held.store, limiter) {
            (Store::Redis, RateLimiter::Redis(r)) => {
                // Drop cannot await; a runtime is always present on the request path. Without
                // one, the lease TTL frees the slot.
                if let Ok(handle) = tokio::runtime::Handle::try_current() {
                    handle.spawn(async move { r.release(id, &leases).await });
                }
            }
            (_, limiter) => limiter.memory().release(id, &leases),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejection_names_the_limit_and_sets_headers() {
        let r = LimitRejection::new(
            LimitScope::Key("abc".into()),
            LimitKind::Requests,
            10,
            Duration::from_millis(1500),
        );
        assert_eq!(r.to_string(), "Rate limit exceeded for key: rpm_limit 10");
        let e = ApiError::from(r);
        assert_eq!(e.status().as_u16(), 429);
        assert_eq!(e.retry_after, Some(2));
        assert_eq!(e.body_json()["error"]["type"], "rate_limit_error");
        let names: Vec<_> = e.headers.iter().map(|(n, _)| n.as_str()).collect();
        assert!(names.contains(&"x-ratelimit-remaining-requests"));
        let d = LimitRejection::new(
            LimitScope::Deployment("gpt4o-eu-1".into()),
            LimitKind::Tokens,
            600,
            Duration::ZERO,
        );
        assert_eq!(
            d.to_string(),
            "Rate limit exceeded for deployment gpt4o-eu-1: tpm 600"
        );
        assert_eq!(d.retry_after_secs(), 1);
    }

    /// The request path holds these across awaits in axum handlers and stream bodies.
    #[test]
    fn types_and_futures_are_send() {
        fn send<T: Send + Sync + 'static>() {}
        fn send_future<F: std::future::Future + Send>(_: F) {}
        send::<RateLimiter>();
        send::<Admission>();
        send::<LimitRejection>();
        send::<crate::cache::ResponseCache>();
        let limiter = RateLimiter::in_memory(LimiterOptions::default());
        send_future(async move {
            let mut a = limiter.acquire(&[]).await.unwrap();
            a.settle(1).await;
            a.release().await;
        });
        let cache = crate::cache::ResponseCache::new(Default::default(), None).unwrap();
        send_future(async move {
            if let Ok(Some(plan)) =
                cache.plan(crate::api::Endpoint::Chat, "m", &serde_json::Value::Null)
            {
                let _ = cache.lookup(&plan).await;
                cache.store(&plan, bytes::Bytes::new()).await;
            }
        });
    }

    #[test]
    fn reset_format() {
        assert_eq!(format_reset(Duration::from_millis(250)), "250ms");
        assert_eq!(format_reset(Duration::from_millis(11_200)), "12s");
        assert_eq!(format_reset(Duration::from_secs(65)), "1m5s");
    }

    #[test]
    fn merge_keeps_the_tightest() {
        let mut info = RateLimitInfo::default();
        let q = |remaining| Quota {
            limit: 10,
            remaining,
            reset: Duration::ZERO,
        };
        info.merge(LimitKind::Requests, q(5));
        info.merge(LimitKind::Requests, q(2));
        info.merge(LimitKind::Requests, q(7));
        assert_eq!(info.requests.unwrap().remaining, 2);
        assert!(info.tokens.is_none());
    }
}
