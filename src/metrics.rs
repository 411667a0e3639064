//! The gateway's Prometheus metrics: the recorder (installed once per process), the `/metrics`
//! rendering, and one named helper per metric so every layer records the same names and labels.
//!
//! Label values come from a closed vocabulary (`&'static str`) or from the config (model group,
//! deployment id, matched route template); never from a key, a URI or any other client text.

// The one module allowed to call the `metrics` macros (clippy.toml `disallowed-macros`).
#![expect(
    clippy::disallowed_macros,
    reason = "metrics.rs is where every metric is recorded"
)]

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use ::metrics::{counter, gauge, histogram};

/// Buckets for request-scale latencies (seconds): 5 ms to 5 min, LLM answers are slow.
const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];
/// Buckets for the gateway's own overhead (seconds): it should stay in the low milliseconds.
const OVERHEAD_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the Prometheus recorder on first call and returns its handle on every call. Many
/// gateways in one process (tests) share it. If another recorder was installed first, the
/// handle renders an empty (but valid) exposition rather than failing the gateway.
pub fn install() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let handle = match builder().install_recorder() {
            Ok(handle) => handle,
            Err(e) => {
                tracing::warn!(error = %e, "metrics recorder not installed; /metrics will be empty");
                builder().build_recorder().handle()
            }
        };
        describe();
        // Histograms are buffered until drained; a scrape drains them too, but an instance
        // nobody scrapes must not grow without bound.
        let upkeep = handle.clone();
        let _ = std::thread::Builder::new()
            .name("hx-metrics-upkeep".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(Duration::from_secs(5));
                    upkeep.run_upkeep();
                }
            });
        handle
    })
}

fn builder() -> PrometheusBuilder {
    let with_buckets = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("hx_gateway_overhead_seconds".into()),
            OVERHEAD_BUCKETS,
        )
        .and_then(|b| {
            b.set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
        });
    // The bucket lists are constant and non-empty, so this cannot fail; keep the default
    // (summaries) rather than panic if it ever does.
    with_buckets.unwrap_or_else(|_| PrometheusBuilder::new())
}

/// The text exposition served at `/metrics`.
pub fn render() -> String {
    install().render()
}

fn describe() {
    use ::metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "hx_requests_total",
        "HTTP requests by route template, model group, deployment and status"
    );
    describe_histogram!(
        "hx_request_duration_seconds",
        Unit::Seconds,
        "Total request duration, to the last byte of a stream"
    );
    describe_histogram!(
        "hx_upstream_duration_seconds",
        Unit::Seconds,
        "Time spent waiting on upstream providers (all attempts), to the response headers"
    );
    describe_histogram!(
        "hx_gateway_overhead_seconds",
        Unit::Seconds,
        "Time the gateway itself added to a request (total minus upstream)"
    );
    describe_histogram!(
        "hx_time_to_first_token_seconds",
        Unit::Seconds,
        "Time from request start to the first streamed chunk sent to the client"
    );
    describe_counter!("hx_tokens_total", "Tokens by model group and kind");
    describe_gauge!(
        "hx_spend_usd",
        "USD spent since the process started, by model group (only increases)"
    );
    describe_counter!("hx_retries_total", "Upstream retries by model group");
    describe_counter!("hx_fallbacks_total", "Fallbacks taken by model group");
    describe_counter!("hx_cooldowns_total", "Deployments put in cooldown");
    describe_counter!(
        "hx_soft_budget_crossings_total",
        "Keys whose spend crossed their soft budget (each crossing counted once)"
    );
    describe_counter!(
        "hx_rate_limit_rejections_total",
        "Requests refused by the gateway's own rate limits, by scope and limit"
    );
    describe_counter!(
        "hx_cache_requests_total",
        "Cache lookups by cache and result (hit, miss)"
    );
    describe_counter!(
        "hx_rag_operations_total",
        "RAG operations by operation and outcome"
    );
    describe_histogram!(
        "hx_rag_operation_duration_seconds",
        Unit::Seconds,
        "RAG operation duration"
    );
    describe_gauge!(
        "hx_dependency_up",
        "1 when the dependency answered its last probe, 0 when it did not or is not configured"
    );
}

/// One finished HTTP request (called by the access log).
pub fn record_request(
    route: &str,
    model_group: &str,
    deployment: &str,
    status: u16,
    total: Duration,
) {
    // `StatusCode::as_str` is static text: no allocation per request.
    let code = axum::http::StatusCode::from_u16(status);
    let code = code.as_ref().map_or("invalid", |c| c.as_str());
    handles::counter(
        "hx_requests_total",
        &[
            ("route", route),
            ("model_group", model_group),
            ("deployment", deployment),
            ("status", code),
        ],
    )
    .increment(1);
    handles::histogram("hx_request_duration_seconds", &[("route", route)])
        .record(total.as_secs_f64());
}

/// Time on upstreams for one routed request.
pub fn record_upstream_duration(model_group: &str, deployment: &str, upstream: Duration) {
    handles::histogram(
        "hx_upstream_duration_seconds",
        &[("model_group", model_group), ("deployment", deployment)],
    )
    .record(upstream.as_secs_f64());
}

/// The gateway's own share of one routed request.
pub fn record_overhead(model_group: &str, overhead: Duration) {
    handles::histogram(
        "hx_gateway_overhead_seconds",
        &[("model_group", model_group)],
    )
    .record(overhead.as_secs_f64());
}

/// Request start to the first chunk of a stream.
pub fn record_time_to_first_token(model_group: &str, elapsed: Duration) {
    histogram!("hx_time_to_first_token_seconds", "model_group" => model_group.to_string())
        .record(elapsed.as_secs_f64());
}

/// Prompt and completion tokens of one answer.
pub fn record_tokens(model_group: &str, prompt: u64, completion: u64) {
    handles::counter(
        "hx_tokens_total",
        &[("model_group", model_group), ("kind", "prompt")],
    )
    .increment(prompt);
    handles::counter(
        "hx_tokens_total",
        &[("model_group", model_group), ("kind", "completion")],
    )
    .increment(completion);
}

/// Spend of one request in USD. A gauge that only increases: Prometheus counters of this
/// exporter are integers, and per-request costs are fractions of a cent.
pub fn record_spend(model_group: &str, usd: f64) {
    if usd.is_finite() && usd > 0.0 {
        handles::gauge("hx_spend_usd", &[("model_group", model_group)]).increment(usd);
    }
}

/// One retry of an upstream call.
/// A key's spend crossed its soft budget.
pub fn record_soft_budget_crossing() {
    counter!("hx_soft_budget_crossings_total").increment(1);
}

pub fn record_retry(model_group: &str) {
    counter!("hx_retries_total", "model_group" => model_group.to_string()).increment(1);
}

/// One fallback to another model group.
pub fn record_fallback(model_group: &str) {
    counter!("hx_fallbacks_total", "model_group" => model_group.to_string()).increment(1);
}

/// One deployment put in cooldown.
pub fn record_cooldown(model_group: &str, deployment: &str) {
    counter!("hx_cooldowns_total", "model_group" => model_group.to_string(),
        "deployment" => deployment.to_string())
    .increment(1);
}

/// A request refused by the gateway's own limits. `scope`: `key`, `user`, `team`, `model`,
/// `global`; `limit`: `rpm`, `tpm`, `parallel`, `budget`.
pub fn record_rate_limit_rejection(scope: &'static str, limit: &'static str) {
    counter!("hx_rate_limit_rejections_total", "scope" => scope, "limit" => limit).increment(1);
}

/// A request answered from the response cache, once per hit (the lookup itself counts
/// nothing, so `sum(hx_cache_hits_total)` is the number of cached answers).
pub fn record_cache_hit(model_group: &str) {
    counter!("hx_cache_hits_total", "model_group" => model_group.to_string()).increment(1);
}

/// A cache entry found but older than the request's `max-age`: served as a miss.
pub fn record_cache_too_old() {
    counter!("hx_cache_misses_total", "reason" => "too_old").increment(1);
}

/// A rate-limit check that fell back to this instance's memory because Redis failed.
pub fn record_ratelimit_redis_fallback() {
    counter!("hx_ratelimit_redis_fallback_total").increment(1);
}

/// Whether a Redis user (`purpose`: `ratelimit`, `cache`, ...) runs on its in-memory fallback.
pub fn set_redis_fallback_active(purpose: &'static str, active: bool) {
    gauge!("hx_redis_fallback_active", "purpose" => purpose).set(if active { 1.0 } else { 0.0 });
}

/// The time one RAG embedding call took, through the pipeline.
pub fn record_rag_embedding(elapsed: Duration) {
    histogram!("hx_rag_embedding_seconds").record(elapsed.as_secs_f64());
}

/// A cache lookup. `cache`: `response`, `key`, `embedding`, ...
pub fn record_cache_lookup(cache: &'static str, hit: bool) {
    let result = if hit { "hit" } else { "miss" };
    counter!("hx_cache_requests_total", "cache" => cache, "result" => result).increment(1);
}

/// One RAG operation. `operation`: `search`, `upsert`, `delete`, `embed`; `outcome`: `ok`,
/// `error`, `denied`.
pub fn record_rag_operation(operation: &'static str, outcome: &'static str, elapsed: Duration) {
    counter!("hx_rag_operations_total", "operation" => operation, "outcome" => outcome)
        .increment(1);
    histogram!("hx_rag_operation_duration_seconds", "operation" => operation)
        .record(elapsed.as_secs_f64());
}

/// The last probe result of a dependency (`postgres`, `redis`, `qdrant`).
pub fn set_dependency_up(dependency: &'static str, up: bool) {
    gauge!("hx_dependency_up", "dependency" => dependency).set(if up { 1.0 } else { 0.0 });
}

/// Handles of the per-request metrics, kept per thread by metric and label values.
///
/// Going through the `metrics` macros on every request allocates each label value, hashes
/// the key and takes the registry's lock, for every metric (seven per request): that showed
/// in the profile. Here a handle already seen costs one hash of borrowed strings.
mod handles {
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::hash::{BuildHasher, Hash, Hasher};
    use std::thread::LocalKey;

    // foldhash rather than std's SipHash: hashing the labels of the seven per-request metrics
    // with SipHash was ~3% of the gateway's instructions per request. foldhash is seeded at
    // random per process (hashbrown's default hasher), and the cache is bounded by
    // `MAX_ENTRIES` whatever label values clients cause.
    use foldhash::fast::RandomState;

    use metrics::{Counter, Gauge, Histogram, Label, Level, Metadata, Recorder};

    /// Distinct label sets one thread keeps per kind of handle before starting over: label
    /// values such as a model name a client typed must not grow the cache without bound.
    const MAX_ENTRIES: usize = 4096;

    struct Entry<H> {
        name: &'static str,
        labels: Box<[(&'static str, Box<str>)]>,
        handle: H,
    }

    impl<H> Entry<H> {
        fn is(&self, name: &str, labels: &[(&'static str, &str)]) -> bool {
            self.name == name
                && self.labels.len() == labels.len()
                && self
                    .labels
                    .iter()
                    .zip(labels)
                    .all(|((k, v), (k2, v2))| k == k2 && **v == **v2)
        }
    }

    /// Entries by the hash of their name and labels (a bucket holds the rare collisions).
    struct Cache<H> {
        hasher: RandomState,
        entries: HashMap<u64, Vec<Entry<H>>, RandomState>,
    }

    impl<H> Default for Cache<H> {
        fn default() -> Self {
            Cache {
                hasher: RandomState::default(),
                entries: HashMap::default(),
            }
        }
    }

    thread_local! {
        static COUNTERS: RefCell<Cache<Counter>> = RefCell::new(Cache::default());
        static GAUGES: RefCell<Cache<Gauge>> = RefCell::new(Cache::default());
        static HISTOGRAMS: RefCell<Cache<Histogram>> = RefCell::new(Cache::default());
    }

    const METADATA: Metadata<'static> = Metadata::new(module_path!(), Level::INFO, None);

    fn lookup<H: Clone + 'static>(
        cache: &'static LocalKey<RefCell<Cache<H>>>,
        name: &'static str,
        labels: &[(&'static str, &str)],
        register: impl FnOnce(&dyn Recorder, &metrics::Key) -> H,
    ) -> H {
        cache.with(|cache| {
            let mut cache = cache.borrow_mut();
            let mut hasher = cache.hasher.build_hasher();
            name.hash(&mut hasher);
            labels.hash(&mut hasher);
            let hash = hasher.finish();
            if let Some(entry) = cache
                .entries
                .get(&hash)
                .and_then(|bucket| bucket.iter().find(|e| e.is(name, labels)))
            {
                return entry.handle.clone();
            }
            let key = metrics::Key::from_parts(
                name,
                labels
                    .iter()
                    .map(|(k, v)| Label::new(*k, v.to_string()))
                    .collect::<Vec<_>>(),
            );
            let handle = metrics::with_recorder(|r| register(r, &key));
            if cache.entries.len() >= MAX_ENTRIES {
                cache.entries.clear();
            }
            cache.entries.entry(hash).or_default().push(Entry {
                name,
                labels: labels.iter().map(|(k, v)| (*k, Box::from(*v))).collect(),
                handle: handle.clone(),
            });
            handle
        })
    }

    pub(super) fn counter(name: &'static str, labels: &[(&'static str, &str)]) -> Counter {
        lookup(&COUNTERS, name, labels, |r, key| {
            r.register_counter(key, &METADATA)
        })
    }

    pub(super) fn gauge(name: &'static str, labels: &[(&'static str, &str)]) -> Gauge {
        lookup(&GAUGES, name, labels, |r, key| {
            r.register_gauge(key, &METADATA)
        })
    }

    pub(super) fn histogram(name: &'static str, labels: &[(&'static str, &str)]) -> Histogram {
        lookup(&HISTOGRAMS, name, labels, |r, key| {
            r.register_histogram(key, &METADATA)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Handles kept per thread still count per label set, also after the cache starts over.
    #[test]
    fn cached_handles_count_per_label_set() {
        let recorder = PrometheusBuilder::new().build_recorder();
        let rendered = recorder.handle();
        ::metrics::with_local_recorder(&recorder, || {
            record_tokens("group-a", 1, 2);
            record_tokens("group-a", 10, 20);
            record_tokens("group-b", 5, 0);
            for i in 0..5000 {
                record_spend(&format!("g{i}"), 1.0);
            }
            record_spend("g0", 1.5);
        });
        let text = rendered.render();
        for line in [
            r#"hx_tokens_total{model_group="group-a",kind="prompt"} 11"#,
            r#"hx_tokens_total{model_group="group-a",kind="completion"} 22"#,
            r#"hx_tokens_total{model_group="group-b",kind="prompt"} 5"#,
            r#"hx_spend_usd{model_group="g0"} 2.5"#,
            r#"hx_spend_usd{model_group="g4999"} 1"#,
        ] {
            assert!(text.lines().any(|l| l == line), "no {line} in\n{text}");
        }
    }
}
