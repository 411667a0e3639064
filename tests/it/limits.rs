//! Rate limits against the machine's Redis (127.0.0.1:6379, a unique key prefix per test) and
//! against a throwaway `redis-server` that the outage test starts, kills and restarts.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use hx_gateway::error::ApiError;
use hx_gateway::limits::{LimitKind, LimitRequest, LimitScope, LimiterOptions, RateLimiter};

pub const REDIS: &str = "redis://127.0.0.1:6379";

pub fn unique_prefix(test: &str) -> String {
    format!("hxtest:{test}:{}", uuid::Uuid::new_v4().simple())
}

fn options(test: &str) -> LimiterOptions {
    LimiterOptions {
        key_prefix: unique_prefix(test),
        // The shared Redis may be slow under a parallel test suite; an outage is not the
        // subject of these tests.
        redis_timeout: Duration::from_secs(5),
        ..LimiterOptions::default()
    }
}

fn key(id: &str) -> LimitScope {
    LimitScope::Key(id.to_string())
}

async fn redis_conn(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

#[tokio::test]
async fn redis_rpm_limit_rejects_with_429_naming_the_limit() {
    let limiter = RateLimiter::redis(REDIS, options("rpm")).unwrap();
    let req = [LimitRequest::new(key("k1")).rpm(Some(3))];
    for expected_remaining in [2, 1, 0] {
        let a = limiter.acquire(&req).await.unwrap();
        let q = a.info().requests.unwrap();
        assert_eq!((q.limit, q.remaining), (3, expected_remaining));
        let names: Vec<String> = a.headers().iter().map(|(n, _)| n.to_string()).collect();
        assert!(names.contains(&"x-ratelimit-reset-requests".to_string()));
    }
    assert!(!limiter.is_degraded());
    let rejection = limiter.acquire(&req).await.unwrap_err();
    assert_eq!(rejection.kind, LimitKind::Requests);
    assert!(rejection.retry_after <= Duration::from_secs(60));
    assert!(rejection.retry_after > Duration::from_secs(50));
    let error = ApiError::from(rejection);
    assert_eq!(error.status().as_u16(), 429);
    assert_eq!(error.message, "Rate limit exceeded for key: rpm_limit 3");
    assert!((50..=60).contains(&error.retry_after.unwrap()));
    let remaining = error
        .headers
        .iter()
        .find(|(n, _)| n == "x-ratelimit-remaining-requests")
        .unwrap();
    assert_eq!(remaining.1, "0");
    // Another key is not affected.
    let _other = limiter
        .acquire(&[LimitRequest::new(key("k2")).rpm(Some(3))])
        .await
        .unwrap();
}

#[tokio::test]
async fn redis_tokens_reserve_and_settle() {
    let limiter = RateLimiter::redis(REDIS, options("tpm")).unwrap();
    let req = |est| {
        [LimitRequest::new(key("k"))
            .tpm(Some(1_000))
            .estimated_tokens(est)]
    };
    let mut first = limiter.acquire(&req(700)).await.unwrap();
    assert_eq!(first.info().tokens.unwrap().remaining, 300);
    // The reservation alone blocks a burst: 700 + 400 > 1000.
    let r = limiter.acquire(&req(400)).await.unwrap_err();
    assert_eq!(r.kind, LimitKind::Tokens);
    assert_eq!(r.to_string(), "Rate limit exceeded for key: tpm_limit 1000");
    // The real usage was smaller: settling frees the difference.
    first.settle(150).await;
    let second = limiter.acquire(&req(400)).await.unwrap();
    assert_eq!(second.info().tokens.unwrap().remaining, 450);
    // A larger real usage is counted too.
    let mut third = limiter.acquire(&req(100)).await.unwrap();
    third.settle(440).await;
    let r = limiter.acquire(&req(20)).await.unwrap_err();
    assert_eq!(r.kind, LimitKind::Tokens);
    let fourth = limiter.acquire(&req(10)).await.unwrap();
    assert_eq!(fourth.info().tokens.unwrap().remaining, 0);
}

#[tokio::test]
async fn redis_parallel_slots_release_and_expire() {
    let opts = LimiterOptions {
        lease_ttl: Duration::from_millis(1_500),
        ..options("parallel")
    };
    let limiter = RateLimiter::redis(REDIS, opts).unwrap();
    let req = [LimitRequest::new(LimitScope::Global).max_parallel(Some(2))];
    let a = limiter.acquire(&req).await.unwrap();
    let b = limiter.acquire(&req).await.unwrap();
    let r = limiter.acquire(&req).await.unwrap_err();
    assert_eq!(r.kind, LimitKind::Parallel);
    assert_eq!(
        r.to_string(),
        "Rate limit exceeded for gateway: max_parallel_requests 2"
    );
    a.release().await;
    let c = limiter.acquire(&req).await.unwrap();
    // Dropping releases too (in the background for Redis).
    drop(b);
    let mut admitted = None;
    for _ in 0..50 {
        if let Ok(d) = limiter.acquire(&req).await {
            admitted = Some(d);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let d = admitted.expect("dropping an admission frees its slot");
    // An instance that dies holding slots: leases nobody releases expire after their TTL.
    std::mem::forget(c);
    std::mem::forget(d);
    assert!(limiter.acquire(&req).await.is_err());
    tokio::time::sleep(Duration::from_millis(1_700)).await;
    let _e = limiter.acquire(&req).await.unwrap();
}

#[tokio::test]
async fn redis_window_slides_across_a_boundary() {
    let opts = LimiterOptions {
        window: Duration::from_secs(2),
        ..options("sliding")
    };
    let limiter = RateLimiter::redis(REDIS, opts).unwrap();
    let req = [LimitRequest::new(key("k")).rpm(Some(2))];
    let _a = limiter.acquire(&req).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let _b = limiter.acquire(&req).await.unwrap();
    let r = limiter.acquire(&req).await.unwrap_err();
    // The oldest use (a) frees its slot about one second from now, not the whole window.
    assert!(
        r.retry_after <= Duration::from_millis(1_050),
        "{:?}",
        r.retry_after
    );
    tokio::time::sleep(r.retry_after + Duration::from_millis(100)).await;
    // a has left the window, b has not: exactly one more fits, unlike a fixed window that
    // would have reset both.
    let _c = limiter.acquire(&req).await.unwrap();
    let r = limiter.acquire(&req).await.unwrap_err();
    assert_eq!(r.kind, LimitKind::Requests);
}

#[tokio::test]
async fn redis_checks_all_scopes_atomically() {
    let limiter = RateLimiter::redis(REDIS, options("scopes")).unwrap();
    let key_req = LimitRequest::new(key("k"))
        .rpm(Some(5))
        .max_parallel(Some(5));
    let team = LimitRequest::new(LimitScope::Team("t1".into())).rpm(Some(10));
    let dep = LimitRequest::new(LimitScope::Deployment("dep-1".into())).rpm(Some(1));
    let _a = limiter
        .acquire(&[key_req.clone(), team.clone(), dep.clone()])
        .await
        .unwrap();
    let r = limiter
        .acquire(&[key_req.clone(), team.clone(), dep])
        .await
        .unwrap_err();
    assert_eq!(
        r.to_string(),
        "Rate limit exceeded for deployment dep-1: rpm 1"
    );
    // Nothing of the refused request was counted in the other scopes.
    let b = limiter.acquire(&[key_req, team]).await.unwrap();
    assert_eq!(b.info().requests.unwrap().remaining, 3);
}

/// Two limiters (as two gateway instances) on one Redis, 3x the limit fired concurrently:
/// exactly the limit gets through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_the_limit_exactly() {
    let opts = options("exact");
    let first = RateLimiter::redis(REDIS, opts.clone()).unwrap();
    let second = RateLimiter::redis(REDIS, opts).unwrap();
    let limit = 25u64;
    let mut tasks = Vec::new();
    for i in 0..(3 * limit) {
        let limiter = if i % 2 == 0 {
            first.clone()
        } else {
            second.clone()
        };
        tasks.push(tokio::spawn(async move {
            let req = [LimitRequest::new(LimitScope::Key("shared".into()))
                .rpm(Some(limit))
                .tpm(Some(1_000_000))
                .estimated_tokens(10)];
            limiter.acquire(&req).await.map(drop).is_ok()
        }));
    }
    let mut admitted = 0;
    for t in tasks {
        if t.await.unwrap() {
            admitted += 1;
        }
    }
    assert!(!first.is_degraded() && !second.is_degraded());
    assert_eq!(admitted, limit);
}

#[tokio::test]
async fn in_memory_limiter_counts_concurrent_requests_exactly() {
    let limiter = RateLimiter::in_memory(LimiterOptions::default());
    let mut tasks = Vec::new();
    for _ in 0..60 {
        let limiter = limiter.clone();
        tasks.push(tokio::spawn(async move {
            let req = [
                LimitRequest::new(key("k")).rpm(Some(20)),
                LimitRequest::new(LimitScope::Global).max_parallel(Some(1000)),
            ];
            limiter.acquire(&req).await.map(drop).is_ok()
        }));
    }
    let mut admitted = 0;
    for t in tasks {
        admitted += usize::from(t.await.unwrap());
    }
    assert_eq!(admitted, 20);
}

/// A `redis-server` of this test's own on a free port, killed when dropped.
pub struct ThrowawayRedis {
    pub port: u16,
    child: Child,
}

impl ThrowawayRedis {
    pub async fn start(port: Option<u16>) -> Self {
        let port = port.unwrap_or_else(|| {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        });
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        let server = ThrowawayRedis { port, child };
        for _ in 0..100 {
            if let Ok(client) = redis::Client::open(server.url())
                && let Ok(mut conn) = client.get_multiplexed_async_connection().await
                && redis::cmd("PING")
                    .query_async::<String>(&mut conn)
                    .await
                    .is_ok()
            {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("throwaway redis-server on port {port} did not come up");
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ThrowawayRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn request_log_size(url: &str, prefix: &str) -> usize {
    let mut conn = redis_conn(url).await;
    redis::cmd("ZCARD")
        .arg(format!("{prefix}:key:k:req"))
        .query_async(&mut conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn redis_outage_falls_back_to_memory_and_recovers() {
    let mut server = ThrowawayRedis::start(None).await;
    let prefix = unique_prefix("outage");
    let opts = LimiterOptions {
        key_prefix: prefix.clone(),
        redis_timeout: Duration::from_millis(300),
        ..LimiterOptions::default()
    };
    let limiter = RateLimiter::redis(&server.url(), opts).unwrap();
    let req = [LimitRequest::new(key("k")).rpm(Some(1_000))];

    let _a = limiter.acquire(&req).await.unwrap();
    assert!(!limiter.is_degraded());
    assert_eq!(request_log_size(&server.url(), &prefix).await, 1);

    // Redis goes away: requests keep flowing, counted in this instance's memory.
    server.stop();
    for _ in 0..5 {
        let _ = limiter.acquire(&req).await.unwrap();
    }
    assert!(limiter.is_degraded());
    // The fallback still enforces limits, per instance.
    let tight = [LimitRequest::new(key("tight")).rpm(Some(2))];
    let _t1 = limiter.acquire(&tight).await.unwrap();
    let _t2 = limiter.acquire(&tight).await.unwrap();
    assert_eq!(
        limiter.acquire(&tight).await.unwrap_err().kind,
        LimitKind::Requests
    );

    // Redis returns on the same port (empty: no persistence): the limiter goes back to it.
    let server = ThrowawayRedis::start(Some(server.port)).await;
    let mut recovered = false;
    for _ in 0..100 {
        let _ = limiter.acquire(&req).await.unwrap();
        if !limiter.is_degraded() {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(recovered, "the limiter never went back to redis");
    let _b = limiter.acquire(&req).await.unwrap();
    assert!(!limiter.is_degraded());
    assert!(request_log_size(&server.url(), &prefix).await >= 1);
}

#[tokio::test]
async fn unreachable_redis_at_start_still_admits() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let limiter = RateLimiter::redis(
        &format!("redis://:pw@127.0.0.1:{port}"),
        options("unreachable"),
    )
    .unwrap();
    let req = [LimitRequest::new(key("k")).rpm(Some(1))];
    let _a = limiter.acquire(&req).await.unwrap();
    assert!(limiter.is_degraded());
    assert!(limiter.acquire(&req).await.is_err());
    assert!(format!("{limiter:?}").contains("***") && !format!("{limiter:?}").contains(":pw@"));
    assert!(RateLimiter::redis("not a url", LimiterOptions::default()).is_err());
}
