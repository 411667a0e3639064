//! The in-memory limiter: sliding logs per scope in a sharded map, one small mutex per scope,
//! scopes of a request locked in a fixed order so a check over several is atomic.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::{
    Held, LimitKind, LimitRejection, LimitRequest, LimitScope, LimiterOptions, Quota,
    RateLimitInfo, Reservation, Store,
};

const SHARDS: usize = 64;

/// A shard with more scopes than this drops its idle ones when it next grows, so churning
/// keys do not grow memory without bound.
const SHARD_SWEEP_THRESHOLD: usize = 1024;

/// A token use in the sliding log; `seq` is consecutive within a scope so a reservation is
/// found by index.
#[derive(Debug)]
struct TokenEntry {
    at: u64,
    seq: u64,
    amount: u64,
}

#[derive(Debug, Default)]
struct ScopeState {
    /// Admission times (ms) of the requests in the window, oldest first.
    requests: VecDeque<u64>,
    tokens: VecDeque<TokenEntry>,
    token_total: u64,
    next_token_seq: u64,
    /// (admission id, expiry ms) of the parallel slots held.
    leases: Vec<(u64, u64)>,
}

impl ScopeState {
    fn evict(&mut self, now: u64, window: u64) {
        while self.requests.front().is_some_and(|&at| at + window <= now) {
            self.requests.pop_front();
        }
        while let Some(entry) = self.tokens.front() {
            if entry.at + window > now {
                break;
            }
            self.token_total = self.token_total.saturating_sub(entry.amount);
            self.tokens.pop_front();
        }
        self.leases.retain(|&(_, expires)| expires > now);
    }

    fn is_idle(&self) -> bool {
        self.requests.is_empty() && self.tokens.is_empty() && self.leases.is_empty()
    }

    /// The first limit of `req` this scope refuses, with its retry delay in ms.
    fn check(&self, req: &LimitRequest, now: u64, window: u64) -> Option<(LimitKind, u64, u64)> {
        if let Some(rpm) = req.rpm
            && self.requests.len() as u64 >= rpm
        {
            let retry = self
                .requests
                .front()
                .map_or(window, |&at| at + window - now);
            return Some((LimitKind::Requests, rpm, retry));
        }
        if let Some(tpm) = req.tpm {
            let need = req.reserved_tokens();
            if self.token_total + need > tpm {
                // Wait until enough of the oldest uses expire; never if the need alone is over.
                let mut retry = window;
                if need <= tpm {
                    let mut freed = 0;
                    for entry in &self.tokens {
                        freed += entry.amount;
                        if self.token_total.saturating_sub(freed) + need <= tpm {
                            retry = entry.at + window - now;
                            break;
                        }
                    }
                }
                return Some((LimitKind::Tokens, tpm, retry));
            }
        }
        if let Some(max) = req.max_parallel
            && self.leases.len() as u64 >= max
        {
            return Some((LimitKind::Parallel, max, 1000));
        }
        None
    }
}

/// Milliseconds on a monotonic clock (tests drive a manual one).
#[derive(Debug)]
enum Clock {
    Monotonic(Instant),
    #[cfg(test)]
    Manual(Arc<AtomicU64>),
}

impl Clock {
    fn now_ms(&self, window: u64) -> u64 {
        match self {
            // Offset by one window so `at + window <= now` arithmetic never starts below 0.
            Clock::Monotonic(start) => start.elapsed().as_millis() as u64 + window,
            #[cfg(test)]
            Clock::Manual(ms) => ms.load(Ordering::SeqCst),
        }
    }
}

type Shard = Mutex<HashMap<LimitScope, Arc<Mutex<ScopeState>>>>;

/// Limits of one instance, in memory.
#[derive(Debug)]
pub struct MemoryLimiter {
    shards: Box<[Shard]>,
    hasher: RandomState,
    window_ms: u64,
    lease_ttl_ms: u64,
    clock: Clock,
    next_id: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock()
}

impl MemoryLimiter {
    pub fn new(options: &LimiterOptions) -> Self {
        Self::with_clock(options, Clock::Monotonic(Instant::now()))
    }

    fn with_clock(options: &LimiterOptions, clock: Clock) -> Self {
        MemoryLimiter {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
            window_ms: duration_ms(options.window).max(1),
            lease_ttl_ms: duration_ms(options.lease_ttl).max(1),
            clock,
            next_id: AtomicU64::new(1),
        }
    }

    fn scope_state(&self, scope: &LimitScope) -> Arc<Mutex<ScopeState>> {
        let shard = &self.shards[(self.hasher.hash_one(scope) as usize) % SHARDS];
        let mut map = lock(shard);
        if let Some(state) = map.get(scope) {
            return state.clone();
        }
        // Sweep every 256 inserts past the threshold: amortized cost stays small even when a
        // shard holds many active scopes.
        if map.len() >= SHARD_SWEEP_THRESHOLD && map.len().is_multiple_of(256) {
            let (now, window) = (self.clock.now_ms(self.window_ms), self.window_ms);
            // Only states nobody else holds (the shard lock stops new clones) and with nothing
            // left in their windows are dropped; a later request recreates them empty.
            map.retain(|_, state| {
                Arc::strong_count(state) > 1
                    || state.try_lock().is_none_or(|mut s| {
                        s.evict(now, window);
                        !s.is_idle()
                    })
            });
        }
        let state = Arc::new(Mutex::new(ScopeState::default()));
        map.insert(scope.clone(), state.clone());
        state
    }

    pub(super) fn acquire(
        &self,
        requests: &[LimitRequest],
    ) -> Result<(RateLimitInfo, Held), LimitRejection> {
        // Fixed lock order (by scope) prevents deadlocks between requests sharing scopes; a
        // scope listed twice is checked once, with its first limits.
        let mut order: Vec<&LimitRequest> = requests.iter().filter(|r| r.has_limits()).collect();
        order.sort_by(|a, b| a.scope.cmp(&b.scope));
        order.dedup_by(|a, b| a.scope == b.scope);
        let states: Vec<Arc<Mutex<ScopeState>>> =
            order.iter().map(|r| self.scope_state(&r.scope)).collect();
        let mut guards: Vec<MutexGuard<'_, ScopeState>> = states.iter().map(|s| lock(s)).collect();

        let window = self.window_ms;
        let now = self.clock.now_ms(window);
        for (req, state) in order.iter().zip(guards.iter_mut()) {
            state.evict(now, window);
            if let Some((kind, limit, retry_ms)) = state.check(req, now, window) {
                return Err(LimitRejection::new(
                    req.scope.clone(),
                    kind,
                    limit,
                    Duration::from_millis(retry_ms),
                ));
            }
        }

        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut info = RateLimitInfo::default();
        let mut held = Held {
            store: Store::Memory,
            id,
            leases: Vec::new(),
            reservations: Vec::new(),
        };
        for (req, state) in order.iter().zip(guards.iter_mut()) {
            if let Some(rpm) = req.rpm {
                state.requests.push_back(now);
                let oldest = state.requests.front().copied().unwrap_or(now);
                info.merge(
                    LimitKind::Requests,
                    Quota {
                        limit: rpm,
                        remaining: rpm.saturating_sub(state.requests.len() as u64),
                        reset: Duration::from_millis(oldest + window - now),
                    },
                );
            }
            if let Some(tpm) = req.tpm {
                let amount = req.reserved_tokens();
                let seq = state.next_token_seq;
                state.next_token_seq += 1;
                state.tokens.push_back(TokenEntry {
                    at: now,
                    seq,
                    amount,
                });
                state.token_total += amount;
                let oldest = state.tokens.front().map_or(now, |e| e.at);
                info.merge(
                    LimitKind::Tokens,
                    Quota {
                        limit: tpm,
                        remaining: tpm.saturating_sub(state.token_total),
                        reset: Duration::from_millis(oldest + window - now),
                    },
                );
                held.reservations.push(Reservation {
                    scope: req.scope.clone(),
                    seq,
                    amount,
                });
            }
            if req.max_parallel.is_some() {
                state.leases.push((id, now + self.lease_ttl_ms));
                held.leases.push(req.scope.clone());
            }
        }
        Ok((info, held))
    }

    pub(super) fn settle(&self, reservations: &[Reservation], actual_tokens: u64) {
        for r in reservations {
            let state = self.scope_state(&r.scope);
            let mut state = lock(&state);
            let Some(first) = state.tokens.front().map(|e| e.seq) else {
                continue;
            };
            // Seqs are consecutive from the front; an evicted reservation is simply gone.
            let Some(index) = r.seq.checked_sub(first) else {
                continue;
            };
            let Some(entry) = state.tokens.get_mut(index as usize) else {
                continue;
            };
            if entry.seq != r.seq {
                continue;
            }
            let old = entry.amount;
            entry.amount = actual_tokens;
            state.token_total = state.token_total.saturating_sub(old) + actual_tokens;
        }
    }

    pub(super) fn release(&self, id: u64, scopes: &[LimitScope]) {
        for scope in scopes {
            let state = self.scope_state(scope);
            let mut state = lock(&state);
            state.leases.retain(|&(lease, _)| lease != id);
        }
    }
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX / 4)
}

#[cfg(test)]
mod tests {
    use super::super::{Admission, RateLimiter};
    use super::*;

    fn manual(window_ms: u64, ttl_ms: u64) -> (RateLimiter, Arc<AtomicU64>) {
        let clock = Arc::new(AtomicU64::new(1_000_000));
        let options = LimiterOptions {
            window: Duration::from_millis(window_ms),
            lease_ttl: Duration::from_millis(ttl_ms),
            ..LimiterOptions::default()
        };
        let limiter = MemoryLimiter::with_clock(&options, Clock::Manual(clock.clone()));
        (RateLimiter::Memory(Arc::new(limiter)), clock)
    }

    fn key_rpm(n: u64) -> LimitRequest {
        LimitRequest::new(LimitScope::Key("k".into())).rpm(Some(n))
    }

    /// The defining property of a sliding window, checked on a manual clock: whatever the
    /// arrival pattern, no window-long span contains more than the limit of admissions.
    #[tokio::test]
    async fn no_window_span_admits_more_than_the_limit() {
        let (limiter, clock) = manual(60_000, 1_000);
        let mut admitted = Vec::new();
        let start = clock.load(Ordering::SeqCst);
        // A burst at the end of one "minute", another at the start of the next, then a trickle.
        let mut times: Vec<u64> = (0..30).map(|i| start + 59_000 + i).collect();
        times.extend((0..30).map(|i| start + 60_001 + i));
        times.extend((0..200).map(|i| start + 60_100 + i * 701));
        for t in times {
            clock.store(t, Ordering::SeqCst);
            if let Ok(a) = limiter.acquire(&[key_rpm(10)]).await {
                admitted.push(t);
                drop(a);
            }
        }
        assert!(
            admitted.len() > 20,
            "the trickle must get through as the window slides"
        );
        for (i, &t) in admitted.iter().enumerate() {
            let in_span = admitted[i..]
                .iter()
                .take_while(|&&u| u < t + 60_000)
                .count();
            assert!(in_span <= 10, "{in_span} admissions in the minute from {t}");
        }
    }

    #[tokio::test]
    async fn rejection_retry_points_at_the_oldest_expiry() {
        let (limiter, clock) = manual(10_000, 1_000);
        let t0 = clock.load(Ordering::SeqCst);
        let _ = limiter.acquire(&[key_rpm(2)]).await.unwrap();
        clock.store(t0 + 3_000, Ordering::SeqCst);
        let _ = limiter.acquire(&[key_rpm(2)]).await.unwrap();
        clock.store(t0 + 4_000, Ordering::SeqCst);
        let r = limiter.acquire(&[key_rpm(2)]).await.unwrap_err();
        assert_eq!(r.kind, LimitKind::Requests);
        assert_eq!(r.retry_after, Duration::from_millis(6_000));
        clock.store(t0 + 10_000, Ordering::SeqCst);
        let a = limiter.acquire(&[key_rpm(2)]).await.unwrap();
        assert_eq!(a.info().requests.unwrap().remaining, 0);
    }

    #[tokio::test]
    async fn tokens_reserve_then_settle() {
        let (limiter, clock) = manual(60_000, 1_000);
        let req = |est| {
            LimitRequest::new(LimitScope::Team("t".into()))
                .tpm(Some(1_000))
                .estimated_tokens(est)
        };
        let mut a = limiter.acquire(&[req(800)]).await.unwrap();
        assert_eq!(a.info().tokens.unwrap().remaining, 200);
        // The reservation blocks a second large request...
        let r = limiter.acquire(&[req(300)]).await.unwrap_err();
        assert_eq!(r.kind, LimitKind::Tokens);
        // ...until it is settled to the real, smaller usage.
        a.settle(100).await;
        let b = limiter.acquire(&[req(300)]).await.unwrap();
        assert_eq!(b.info().tokens.unwrap().remaining, 600);
        // A request needing more than the whole limit is refused with a full-window retry.
        let r = limiter.acquire(&[req(5_000)]).await.unwrap_err();
        assert_eq!(r.retry_after, Duration::from_millis(60_000));
        // Settling twice does nothing the second time.
        a.settle(900).await;
        clock.fetch_add(60_000, Ordering::SeqCst);
        let c = limiter.acquire(&[req(1_000)]).await.unwrap();
        assert_eq!(c.info().tokens.unwrap().remaining, 0);
    }

    #[tokio::test]
    async fn parallel_slots_are_released_and_expire() {
        let (limiter, clock) = manual(60_000, 5_000);
        let req = || LimitRequest::new(LimitScope::Global).max_parallel(Some(2));
        let a = limiter.acquire(&[req()]).await.unwrap();
        let b = limiter.acquire(&[req()]).await.unwrap();
        assert_eq!(
            limiter.acquire(&[req()]).await.unwrap_err().kind,
            LimitKind::Parallel
        );
        a.release().await;
        let c = limiter.acquire(&[req()]).await.unwrap();
        drop(b);
        let d = limiter.acquire(&[req()]).await.unwrap();
        assert!(limiter.acquire(&[req()]).await.is_err());
        // Leaked leases (a crashed holder) free themselves after the TTL.
        std::mem::forget(c);
        std::mem::forget(d);
        clock.fetch_add(5_000, Ordering::SeqCst);
        let _e = limiter.acquire(&[req()]).await.unwrap();
    }

    #[tokio::test]
    async fn idle_scopes_are_swept() {
        let (limiter, clock) = manual(1_000, 60_000);
        let RateLimiter::Memory(memory) = &limiter else {
            unreachable!()
        };
        let count = || memory.shards.iter().map(|s| lock(s).len()).sum::<usize>();
        let busy = LimitRequest::new(LimitScope::Key("busy".into())).max_parallel(Some(1));
        let held = limiter.acquire(std::slice::from_ref(&busy)).await.unwrap();
        for i in 0..(SHARDS * SHARD_SWEEP_THRESHOLD) {
            let req = LimitRequest::new(LimitScope::Key(format!("k{i}"))).rpm(Some(1));
            let _ = limiter.acquire(&[req]).await.unwrap();
        }
        let before = count();
        clock.fetch_add(2_000, Ordering::SeqCst);
        for i in 0..(SHARDS * 300) {
            let req = LimitRequest::new(LimitScope::Key(format!("new{i}"))).rpm(Some(1));
            let _ = limiter.acquire(&[req]).await.unwrap();
        }
        assert!(count() < before / 2, "{} scopes left of {before}", count());
        // A scope still holding a lease survived the sweep.
        assert_eq!(
            limiter.acquire(&[busy]).await.unwrap_err().kind,
            LimitKind::Parallel
        );
        drop(held);
    }

    #[tokio::test]
    async fn all_scopes_or_none() {
        let (limiter, _clock) = manual(60_000, 1_000);
        let key = LimitRequest::new(LimitScope::Key("k".into())).rpm(Some(5));
        let dep = LimitRequest::new(LimitScope::Deployment("d".into())).rpm(Some(1));
        let _a = limiter.acquire(&[key.clone(), dep.clone()]).await.unwrap();
        let r = limiter.acquire(&[key.clone(), dep]).await.unwrap_err();
        assert_eq!(r.to_string(), "Rate limit exceeded for deployment d: rpm 1");
        // The refused request was not counted against the key.
        let a: Admission = limiter.acquire(&[key]).await.unwrap();
        assert_eq!(a.info().requests.unwrap().remaining, 3);
        // No limits at all: admitted without touching any state.
        let none = limiter
            .acquire(&[LimitRequest::new(LimitScope::Global)])
            .await
            .unwrap();
        assert!(none.headers().is_empty());
    }
}
