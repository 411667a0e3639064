//! A shared, lazily connected Redis link with a per-call timeout and outage tracking, so the
//! limiter and the cache fall back instead of stalling requests when Redis goes away.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::secret::redact_url;

/// How long an outage lasts at least before the next request probes Redis again; in between,
/// requests go straight to the fallback instead of each paying the timeout.
const PROBE_INTERVAL_MS: u64 = 1_000;

/// Why a Redis call did not produce an answer.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("redis call timed out after {0:?}")]
    Timeout(Duration),
    #[error("redis error: {0}")]
    Redis(String),
    /// Redis is known to be down and the next probe is not due yet.
    #[error("redis is down")]
    Down,
}

/// A Redis connection shared by clones; cheap to clone (an `Arc`).
#[derive(Clone)]
pub struct RedisLink {
    inner: Arc<LinkInner>,
}

struct LinkInner {
    manager: ConnectionManager,
    timeout: Duration,
    /// What the link is used for, in log lines and metric labels ("ratelimit", "cache").
    purpose: &'static str,
    redacted_url: String,
    password: String,
    down: AtomicBool,
    next_probe_ms: AtomicU64,
}

impl std::fmt::Debug for RedisLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLink")
            .field("url", &self.inner.redacted_url)
            .field("purpose", &self.inner.purpose)
            .field("down", &self.inner.down.load(Ordering::Relaxed))
            .finish()
    }
}

impl RedisLink {
    /// Builds the link without connecting (the first call connects), so a gateway can start
    /// while Redis is down. Fails only on a malformed URL; the error never shows a password.
    pub fn new(url: &str, timeout: Duration, purpose: &'static str) -> Result<Self, LinkError> {
        let redacted_url = redact_url(url);
        let password = url_password(url);
        let client = redis::Client::open(url)
            .map_err(|_| LinkError::Redis(format!("invalid redis url {redacted_url}")))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500));
        let manager = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| LinkError::Redis(scrub_redis_error(&e, &password)))?;
        Ok(RedisLink {
            inner: Arc::new(LinkInner {
                manager,
                timeout,
                purpose,
                redacted_url,
                password,
                down: AtomicBool::new(false),
                next_probe_ms: AtomicU64::new(0),
            }),
        })
    }

    /// True while the link is in an outage (the last call failed).
    pub fn is_down(&self) -> bool {
        self.inner.down.load(Ordering::Relaxed)
    }

    /// Whether this request may try Redis: always when up; during an outage, only the one
    /// request that wins the due probe slot.
    fn may_try(&self) -> bool {
        if !self.is_down() {
            return true;
        }
        let now = unix_ms();
        let due = self.inner.next_probe_ms.load(Ordering::Relaxed);
        now >= due
            && self
                .inner
                .next_probe_ms
                .compare_exchange(
                    due,
                    now + PROBE_INTERVAL_MS,
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_ok()
    }

    /// Runs one Redis call with the link's timeout and records success or failure for outage
    /// tracking. During an outage, returns [`LinkError::Down`] at once unless a probe is due.
    pub async fn call<T, F, Fut>(&self, f: F) -> Result<T, LinkError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        if !self.may_try() {
            return Err(LinkError::Down);
        }
        let result = tokio::time::timeout(self.inner.timeout, f(self.inner.manager.clone())).await;
        match result {
            Ok(Ok(value)) => {
                self.mark_up();
                Ok(value)
            }
            Ok(Err(e)) => {
                let error = LinkError::Redis(scrub_redis_error(&e, &self.inner.password));
                self.mark_down(&error);
                Err(error)
            }
            Err(_) => {
                let error = LinkError::Timeout(self.inner.timeout);
                self.mark_down(&error);
                Err(error)
            }
        }
    }

    fn mark_up(&self) {
        if self.inner.down.swap(false, Ordering::AcqRel) {
            tracing::info!(
                purpose = self.inner.purpose,
                url = %self.inner.redacted_url,
                "redis is reachable again; leaving the in-memory fallback"
            );
            crate::metrics::set_redis_fallback_active(self.inner.purpose, false);
        }
    }

    fn mark_down(&self, error: &LinkError) {
        self.inner
            .next_probe_ms
            .store(unix_ms() + PROBE_INTERVAL_MS, Ordering::Release);
        // Warn once per outage, not once per request.
        if !self.inner.down.swap(true, Ordering::AcqRel) {
            tracing::warn!(
                purpose = self.inner.purpose,
                url = %self.inner.redacted_url,
                %error,
                "redis is unreachable; falling back to per-instance memory until it returns"
            );
            crate::metrics::set_redis_fallback_active(self.inner.purpose, true);
        }
    }
}

/// A Redis error's text without the URL's password (the client may echo the URL or parts of
/// it).
fn scrub_redis_error(e: &redis::RedisError, password: &str) -> String {
    crate::secret::scrub(&e.to_string(), &[password])
}

/// The password part of a URL's userinfo, or "" when there is none.
fn url_password(url: &str) -> String {
    let Some(start) = url.find("://").map(|i| i + 3) else {
        return String::new();
    };
    let authority_end = url[start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| start + i);
    let authority = &url[start..authority_end];
    match authority.rfind('@') {
        Some(at) => authority[..at]
            .split_once(':')
            .map_or(String::new(), |(_, pw)| pw.to_string()),
        None => String::new(),
    }
}

/// Wall-clock milliseconds since the Unix epoch (0 if the clock is before it).
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
