//! The router: picks a deployment of a model group, retries on another when one fails,
//! falls back to other groups, and cools down deployments that keep failing.

pub mod select;
pub mod stream;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use axum::http::{HeaderName, HeaderValue};
use futures::StreamExt;
use parking_lot::Mutex;
use serde_json::{Map, Value};

use crate::api::Endpoint;
use crate::config::{Deployment, DisabledDeployment, GatewayConfig, RoutingConfig};
use crate::error::{ApiError, ErrorKind};
use crate::limits::{Admission, LimitRejection, LimitRequest, LimitScope, RateLimiter};
use crate::providers::{Provider, ProviderError, ProviderResponse, Upstream, UpstreamRequest};

/// A deployment with its provider and the live numbers routing decides on.
pub struct Member {
    pub deployment: Arc<Deployment>,
    pub provider: Provider,
    pub stats: MemberStats,
}

/// Live per-deployment state, read on every pick: atomics only on that path; the mutex is
/// taken only when a failure is recorded.
#[derive(Default)]
pub struct MemberStats {
    pub in_flight: AtomicU64,
    /// Exponentially weighted latency in microseconds; 0 until measured.
    pub latency_us: AtomicU64,
    /// End of the current cooldown in microseconds after [`EPOCH`]; 0 when none was set.
    cooldown_until_us: AtomicU64,
    /// Failure times within the last minute.
    failures: Mutex<Vec<Instant>>,
}

/// The reference point for cooldown deadlines kept in an atomic.
static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

impl MemberStats {
    /// The end of this deployment's cooldown, if it is cooling down at `now`.
    pub fn cooling_until(&self, now: Instant) -> Option<Instant> {
        match self.cooldown_until_us.load(Ordering::Relaxed) {
            0 => None,
            us => Some(*EPOCH + Duration::from_micros(us)).filter(|until| *until > now),
        }
    }

    /// Counts a failure; starts a cooldown (and returns true) when there were more than
    /// `allowed_fails` within the last minute.
    fn record_failure(&self, now: Instant, allowed_fails: u32, cooldown: Duration) -> bool {
        let mut failures = self.failures.lock();
        failures.retain(|t| now.duration_since(*t) < Duration::from_secs(60));
        failures.push(now);
        if failures.len() as u32 > allowed_fails && !cooldown.is_zero() {
            let until = (now + cooldown).saturating_duration_since(*EPOCH);
            let us = u64::try_from(until.as_micros()).unwrap_or(u64::MAX).max(1);
            self.cooldown_until_us.store(us, Ordering::Relaxed);
            failures.clear();
            return true;
        }
        false
    }

    fn record_latency(&self, elapsed: Duration) {
        let sample = elapsed.as_micros().min(u64::MAX as u128) as u64;
        let old = self.latency_us.load(Ordering::Relaxed);
        let new = if old == 0 {
            sample.max(1)
        } else {
            (old * 7 + sample) / 8
        };
        self.latency_us.store(new, Ordering::Relaxed);
    }
}

/// Counts a request as in flight on a member until dropped (for `least-busy`).
pub struct InFlight(Arc<Member>);

impl InFlight {
    fn new(member: Arc<Member>) -> Self {
        member.stats.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(member)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.stats.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Every deployment sharing a `model_name`.
pub struct Group {
    pub name: String,
    pub members: Vec<Arc<Member>>,
    /// The `model_info.access_groups` of its deployments, for the key's model check.
    pub access_groups: Vec<String>,
}

/// One request for the router.
pub struct RouteRequest<'a> {
    /// The clients the upstream calls go through (the serving thread's own).
    pub upstream: &'a Upstream,
    pub endpoint: Endpoint,
    pub model: &'a str,
    pub body: Map<String, Value>,
    pub stream: bool,
    pub want_stream_usage: bool,
    /// Client headers forwarded to deployments that speak the request's protocol natively.
    pub forward_headers: &'a [(HeaderName, HeaderValue)],
    /// The request body's own `fallbacks` list (with `metadata.fallbacks`).
    pub fallbacks: Vec<String>,
    /// The request body's own `context_window_fallbacks` targets.
    pub context_window_fallbacks: Vec<String>,
    /// Whether the caller may use a model group: every request fallback (and every config
    /// fallback under `enforce_fallback_model_access`) is checked before it is called.
    pub access: &'a (dyn Fn(&str) -> Result<(), ApiError> + Sync),
    /// Deployment `rpm`/`tpm` as hard limits (`enforce_model_rate_limits`): the limiter, and
    /// the tokens to reserve.
    pub deployment_limits: Option<(&'a RateLimiter, u64)>,
}

/// Who named a fallback: the client (always checked against its key) or the operator's config
/// (checked only under `enforce_fallback_model_access`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FallbackOrigin {
    Request,
    Config,
}

/// A successful answer, with how it was obtained.
pub struct Routed {
    pub member: Arc<Member>,
    pub model_group: String,
    pub response: ProviderResponse,
    pub attempted_retries: u32,
    pub attempted_fallbacks: u32,
    /// Time spent waiting on upstreams (all attempts), for the overhead header.
    pub upstream_time: Duration,
    pub in_flight: InFlight,
    /// The deployment's own rpm/tpm reservation, settled with the real usage.
    pub deployment_admission: Option<Admission>,
}

/// A failed routing, with the attempt counts for the response headers.
pub struct RouteFailure {
    pub error: ApiError,
    pub attempted_retries: u32,
    pub attempted_fallbacks: u32,
}

pub struct Router {
    /// Looked up twice per request: foldhash, not SipHash (names come from the config, so
    /// SipHash's flooding resistance buys nothing here).
    groups: foldhash::HashMap<String, Arc<Group>>,
    /// Groups whose name has a `*`, matched in config order.
    wildcards: Vec<Arc<Group>>,
    routing: RoutingConfig,
    /// Deployments whose provider could not be built.
    pub disabled: Vec<DisabledDeployment>,
    /// Model names with no enabled deployment, and why (see [`Router::disabled_reason`]).
    disabled_names: HashMap<String, String>,
}

impl Router {
    pub fn build(config: &GatewayConfig) -> Self {
        // Fixed before any deadline is measured from it.
        LazyLock::force(&EPOCH);
        let mut groups: HashMap<String, Vec<Arc<Member>>> = HashMap::new();
        let mut order: Vec<String> = Vec::new();
        let mut disabled = Vec::new();
        for d in &config.deployments {
            match Provider::for_deployment(d) {
                Ok(provider) => {
                    if !groups.contains_key(&d.model_name) {
                        order.push(d.model_name.clone());
                    }
                    groups
                        .entry(d.model_name.clone())
                        .or_default()
                        .push(Arc::new(Member {
                            deployment: d.clone(),
                            provider,
                            stats: MemberStats::default(),
                        }));
                }
                Err(reason) => disabled.push(DisabledDeployment {
                    model_name: d.model_name.clone(),
                    index: d.index,
                    reason: reason.0,
                    unset_variable: None,
                }),
            }
        }
        let mut by_name = foldhash::HashMap::default();
        let mut wildcards = Vec::new();
        for name in order {
            let members: Vec<Arc<Member>> = groups.remove(&name).unwrap_or_default();
            let mut access_groups: Vec<String> = members
                .iter()
                .flat_map(|m| m.deployment.access_groups.iter().cloned())
                .collect();
            access_groups.sort();
            access_groups.dedup();
            let group = Arc::new(Group {
                name: name.clone(),
                members,
                access_groups,
            });
            if name.contains('*') {
                wildcards.push(group.clone());
            }
            by_name.insert(name, group);
        }
        // A name none of whose deployments could be enabled: requests for it are told why.
        let mut disabled_names: HashMap<String, String> = HashMap::new();
        for d in config.disabled.iter().chain(&disabled) {
            if by_name.contains_key(&d.model_name) {
                continue;
            }
            let why = format!(
                "deployment #{} (model_list[{}]) is disabled: {}",
                d.index + 1,
                d.index,
                d.reason
            );
            disabled_names
                .entry(d.model_name.clone())
                .and_modify(|all| {
                    all.push_str("; ");
                    all.push_str(&why);
                })
                .or_insert(why);
        }
        Router {
            groups: by_name,
            wildcards,
            routing: config.routing.clone(),
            disabled,
            disabled_names,
        }
    }

    /// Why a model name in `model_list` serves nothing: each of its deployments is disabled
    /// (an unset environment variable, missing model files, ...). `None` for a name that has
    /// an enabled deployment or is not in the config at all.
    pub fn disabled_reason(&self, model: &str) -> Option<&str> {
        self.disabled_names.get(model).map(String::as_str)
    }

    /// Whether a model name serves: `Err` says why not (its deployments are disabled and why,
    /// or the name is not in `model_list`).
    pub fn model_status(&self, model: &str) -> Result<(), String> {
        if self.group(model).is_some() {
            return Ok(());
        }
        match self.disabled_reason(model) {
            Some(reason) => Err(format!("'{model}' is disabled: {reason}")),
            None if model.is_empty() => Err("no model name is configured".to_string()),
            None => Err(format!("'{model}' is not in the config's model_list")),
        }
    }

    /// The client's error for a model the router cannot serve: a 503 that says why when the
    /// name is configured but disabled, else `not_found` (the model does not exist).
    pub fn missing_model_error(&self, model: &str, not_found: ApiError) -> ApiError {
        match self.disabled_reason(model) {
            Some(reason) => ApiError::new(
                ErrorKind::Unavailable,
                format!("The model '{model}' is disabled: {reason}. Fix the config or its environment and reload (SIGHUP)."),
            )
            .with_param("model"),
            None => not_found,
        }
    }

    /// The group serving a requested model name: an exact name first, then wildcards.
    pub fn group(&self, model: &str) -> Option<&Arc<Group>> {
        self.groups.get(model).or_else(|| {
            self.wildcards
                .iter()
                .find(|g| wildcard_match(&g.name, model))
        })
    }

    /// The access groups of a model group (none when it has none or does not exist).
    pub fn access_groups(&self, model: &str) -> &[String] {
        self.group(model)
            .map_or(&[], |g| g.access_groups.as_slice())
    }

    /// Every access group of the config, sorted.
    pub fn all_access_groups(&self) -> Vec<&str> {
        let mut all: Vec<&str> = self
            .groups
            .values()
            .flat_map(|g| g.access_groups.iter().map(String::as_str))
            .collect();
        all.sort_unstable();
        all.dedup();
        all
    }

    /// Every enabled deployment with its provider, in no particular order.
    pub fn members(&self) -> impl Iterator<Item = &Arc<Member>> {
        self.groups.values().flat_map(|g| g.members.iter())
    }

    /// Names of every group, for `/v1/models`.
    pub fn group_names(&self) -> impl Iterator<Item = &str> {
        self.groups.keys().map(String::as_str)
    }

    pub fn routing(&self) -> &RoutingConfig {
        &self.routing
    }

    /// Sends a request: retries within the group, then tries fallbacks in order.
    pub async fn execute(&self, request: RouteRequest<'_>) -> Result<Routed, RouteFailure> {
        let mut retries = 0u32;
        let mut fallbacks_tried = 0u32;
        let mut upstream_time = Duration::ZERO;
        let first = self
            .attempt_group(&request, request.model, &mut retries, &mut upstream_time)
            .await;
        let original = match first {
            Ok(mut routed) => {
                routed.attempted_retries = retries;
                routed.upstream_time = upstream_time;
                return Ok(routed);
            }
            Err(e) => e,
        };
        // A forbidden fallback is skipped, never called; when every fallback was forbidden,
        // the client is told it may not use them rather than shown the upstream's failure.
        let mut denied: Option<ApiError> = None;
        for (fallback, origin) in self.fallbacks_for(&request, &original) {
            let checked =
                origin == FallbackOrigin::Request || self.routing.enforce_fallback_model_access;
            if checked && let Err(error) = (request.access)(&fallback) {
                tracing::debug!(fallback = %fallback, "fallback skipped: the key may not use it");
                denied.get_or_insert(error);
                continue;
            }
            if self.group(&fallback).is_none() {
                continue;
            }
            fallbacks_tried += 1;
            match self
                .attempt_group(&request, &fallback, &mut retries, &mut upstream_time)
                .await
            {
                Ok(mut routed) => {
                    routed.attempted_retries = retries;
                    routed.attempted_fallbacks = fallbacks_tried;
                    routed.upstream_time = upstream_time;
                    crate::metrics::record_fallback(request.model);
                    return Ok(routed);
                }
                // The client is told about its own model's failure, as LiteLLM does.
                Err(e) => {
                    tracing::debug!(fallback = %fallback, error = %e.describe(), "fallback failed");
                }
            }
        }
        let error = match denied {
            Some(denied) if fallbacks_tried == 0 => denied,
            _ => original.into_api_error(),
        };
        Err(RouteFailure {
            error,
            attempted_retries: retries,
            attempted_fallbacks: fallbacks_tried,
        })
    }

    /// The fallback groups to try after the requested model failed with `failure`, in order,
    /// as LiteLLM chooses them: a context-length error goes to the request's
    /// `context_window_fallbacks`, else the group's configured ones (the generic list only when
    /// neither has any); otherwise the request's own `fallbacks` replace the configured ones,
    /// and the configured entry for the group wins over a `*` entry and over
    /// `default_fallbacks`. Each comes with where it was named, for the access check.
    fn fallbacks_for(
        &self,
        request: &RouteRequest<'_>,
        failure: &GroupFailure,
    ) -> Vec<(String, FallbackOrigin)> {
        if !failure.falls_back() {
            return Vec::new();
        }
        let model = request.model;
        let configured = |list: &[(String, Vec<String>)], key: &str| {
            list.iter()
                .filter(|(group, _)| group == key)
                .flat_map(|(_, targets)| targets.iter().cloned())
                .map(|m| (m, FallbackOrigin::Config))
                .collect::<Vec<_>>()
        };
        let from_request = |list: &[String]| {
            list.iter()
                .map(|m| (m.clone(), FallbackOrigin::Request))
                .collect::<Vec<_>>()
        };
        let mut out = Vec::new();
        if failure.context_window {
            out = from_request(&request.context_window_fallbacks);
            if out.is_empty() {
                out = configured(&self.routing.context_window_fallbacks, model);
            }
        }
        if out.is_empty() {
            out = from_request(&request.fallbacks);
        }
        if out.is_empty() {
            out = configured(&self.routing.fallbacks, model);
        }
        if out.is_empty() {
            out = configured(&self.routing.fallbacks, "*");
        }
        if out.is_empty() {
            out = self
                .routing
                .default_fallbacks
                .iter()
                .map(|m| (m.clone(), FallbackOrigin::Config))
                .collect();
        }
        let mut seen: Vec<String> = Vec::with_capacity(out.len());
        out.retain(|(m, _)| {
            m != model && !seen.contains(m) && {
                seen.push(m.clone());
                true
            }
        });
        out
    }

    async fn attempt_group(
        &self,
        request: &RouteRequest<'_>,
        model: &str,
        retries: &mut u32,
        upstream_time: &mut Duration,
    ) -> Result<Routed, GroupFailure> {
        let Some(group) = self.group(model) else {
            return Err(GroupFailure::not_found(model));
        };
        let mut tried: Vec<usize> = Vec::new();
        let mut limited: Vec<usize> = Vec::new();
        let mut attempt = 0u32;
        let mut last: Option<ProviderError> = None;
        loop {
            let now = Instant::now();
            let Some(index) = select::pick(self.routing.strategy, &group.members, &tried, now)
            else {
                // Everything is cooling down.
                let wait = group
                    .members
                    .iter()
                    .filter_map(|m| m.stats.cooling_until(now))
                    .min()
                    .map_or(1, |until| {
                        (until.duration_since(now).as_secs_f64().ceil() as u64).max(1)
                    });
                if let Some(error) = last {
                    return Err(GroupFailure::provider(model, error));
                }
                return Err(GroupFailure::cooling(model, wait));
            };
            let member = group.members[index].clone();
            // A deployment at its own rpm/tpm is skipped like a busy one; when all are, the
            // group answers 429.
            let admission = match self.deployment_admission(request, &member).await {
                Ok(admission) => admission,
                Err(rejection) => {
                    if limited.contains(&index) {
                        return Err(GroupFailure::limited(model, ApiError::from(rejection)));
                    }
                    limited.push(index);
                    if !tried.contains(&index) {
                        tried.push(index);
                    }
                    if tried.len() >= group.members.len() && limited.len() >= group.members.len() {
                        return Err(GroupFailure::limited(model, ApiError::from(rejection)));
                    }
                    continue;
                }
            };
            let max_retries = member
                .deployment
                .max_retries
                .unwrap_or(self.routing.num_retries);
            let in_flight = InFlight::new(member.clone());
            let started = Instant::now();
            let result = self.call_member(request, model, &member).await;
            let elapsed = started.elapsed();
            *upstream_time += elapsed;
            match result {
                Ok(response) => {
                    member.stats.record_latency(elapsed);
                    return Ok(Routed {
                        member,
                        model_group: group.name.clone(),
                        response,
                        attempted_retries: 0,
                        attempted_fallbacks: 0,
                        upstream_time: Duration::ZERO,
                        in_flight,
                        deployment_admission: admission,
                    });
                }
                Err(error) => {
                    drop(in_flight);
                    let retryable = error.is_retryable();
                    if retryable
                        && member.stats.record_failure(
                            Instant::now(),
                            self.routing.allowed_fails,
                            self.routing.cooldown_time,
                        )
                    {
                        tracing::warn!(deployment = %member.deployment.id, model_group = %group.name,
                            cooldown_s = self.routing.cooldown_time.as_secs_f64(), "deployment cooling down");
                        crate::metrics::record_cooldown(&group.name, &member.deployment.id);
                    }
                    if !retryable || attempt >= max_retries {
                        return Err(GroupFailure::provider(model, error));
                    }
                    attempt += 1;
                    *retries += 1;
                    crate::metrics::record_retry(&group.name);
                    if !tried.contains(&index) {
                        tried.push(index);
                    }
                    let others_left = group.members.len() > tried.len();
                    if !others_left {
                        tokio::time::sleep(self.backoff(attempt, error.retry_after())).await;
                        tried.clear();
                    }
                    last = Some(error);
                }
            }
        }
    }

    /// Reserves a deployment's own rpm/tpm when they are enforced.
    async fn deployment_admission(
        &self,
        request: &RouteRequest<'_>,
        member: &Member,
    ) -> Result<Option<Admission>, LimitRejection> {
        let Some((limiter, tokens)) = request.deployment_limits else {
            return Ok(None);
        };
        let d = &member.deployment;
        if d.rpm.is_none() && d.tpm.is_none() {
            return Ok(None);
        }
        let limit = LimitRequest::new(LimitScope::Deployment(d.id.clone()))
            .rpm(d.rpm)
            .tpm(d.tpm)
            .estimated_tokens(tokens);
        limiter.acquire(&[limit]).await.map(Some)
    }

    /// Sleep before retrying the same deployment: the upstream's `retry-after` when it gave
    /// one (capped), else exponential from the configured `retry_after` floor.
    fn backoff(&self, attempt: u32, upstream: Option<Duration>) -> Duration {
        if let Some(after) = upstream {
            return after.min(Duration::from_secs(60));
        }
        let base = Duration::from_millis(250).max(self.routing.retry_after);
        base.saturating_mul(1 << attempt.min(5))
            .min(Duration::from_secs(8))
    }

    async fn call_member(
        &self,
        request: &RouteRequest<'_>,
        model: &str,
        member: &Arc<Member>,
    ) -> Result<ProviderResponse, ProviderError> {
        let d = &member.deployment;
        // A stream is bounded by `stream_timeout` when set (LiteLLM's choice), else by the
        // ordinary timeout; for a stream the bound also applies to every wait for a chunk.
        let plain = d.timeout.or(self.routing.timeout);
        let timeout = if request.stream {
            d.stream_timeout.or(self.routing.stream_timeout).or(plain)
        } else {
            plain
        };
        let upstream = UpstreamRequest {
            upstream: request.upstream,
            endpoint: request.endpoint,
            deployment: d,
            body: &request.body,
            requested_model: model,
            stream: request.stream,
            forward_headers: request.forward_headers,
            timeout,
            want_stream_usage: request.want_stream_usage,
            drop_params: self.routing.drop_params,
        };
        let response = member.provider.call(upstream).await?;
        match response {
            ProviderResponse::Complete { .. } => Ok(response),
            ProviderResponse::Stream(chunks) => {
                // The first chunk is awaited here so that a stream failing before its first
                // byte reached the client can still be retried.
                let mut chunks = stream::with_idle_timeout(chunks, timeout);
                match chunks.next().await {
                    None => Ok(ProviderResponse::Stream(Box::pin(futures::stream::empty()))),
                    Some(Err(e)) => Err(e),
                    Some(Ok(first)) => Ok(ProviderResponse::Stream(Box::pin(
                        futures::stream::once(async move { Ok(first) }).chain(chunks),
                    ))),
                }
            }
        }
    }
}

/// Why a whole group failed.
struct GroupFailure {
    model: String,
    kind: GroupFailureKind,
    context_window: bool,
}

enum GroupFailureKind {
    NotFound,
    Cooling(u64),
    /// Every deployment is at its own rpm/tpm limit.
    Limited(ApiError),
    Provider(ProviderError),
}

impl GroupFailure {
    fn not_found(model: &str) -> Self {
        GroupFailure {
            model: model.into(),
            kind: GroupFailureKind::NotFound,
            context_window: false,
        }
    }

    fn cooling(model: &str, wait: u64) -> Self {
        GroupFailure {
            model: model.into(),
            kind: GroupFailureKind::Cooling(wait),
            context_window: false,
        }
    }

    fn limited(model: &str, error: ApiError) -> Self {
        GroupFailure {
            model: model.into(),
            kind: GroupFailureKind::Limited(error),
            context_window: false,
        }
    }

    fn provider(model: &str, error: ProviderError) -> Self {
        let context_window = error.is_context_window();
        GroupFailure {
            model: model.into(),
            kind: GroupFailureKind::Provider(error),
            context_window,
        }
    }

    /// Fallbacks are tried after any upstream failure except a malformed request (a 400
    /// that is not a context-length error) and a request this gateway itself rejected:
    /// another group cannot fix those. An upstream 401 or 404 can be one provider's problem,
    /// so those do fall back, as in LiteLLM.
    fn falls_back(&self) -> bool {
        match &self.kind {
            GroupFailureKind::NotFound => false,
            GroupFailureKind::Cooling(_) | GroupFailureKind::Limited(_) => true,
            GroupFailureKind::Provider(ProviderError::Rejected(_)) => false,
            GroupFailureKind::Provider(ProviderError::Status { status: 400, .. }) => {
                self.context_window
            }
            GroupFailureKind::Provider(_) => true,
        }
    }

    /// A short text for logs.
    fn describe(&self) -> String {
        match &self.kind {
            GroupFailureKind::NotFound => format!("model group '{}' not found", self.model),
            GroupFailureKind::Cooling(_) => {
                format!("model group '{}' is cooling down", self.model)
            }
            GroupFailureKind::Limited(_) => {
                format!(
                    "model group '{}' is at its deployments' rate limits",
                    self.model
                )
            }
            GroupFailureKind::Provider(e) => e.to_string(),
        }
    }

    fn into_api_error(self) -> ApiError {
        match self.kind {
            GroupFailureKind::NotFound => {
                ApiError::not_found(format!("The model '{}' does not exist", self.model)).with_param("model")
            }
            GroupFailureKind::Cooling(wait) => ApiError::new(
                ErrorKind::RateLimit,
                format!(
                    "No deployments available for model group '{}': every deployment is cooling down after failures",
                    self.model
                ),
            )
            .with_retry_after(wait),
            GroupFailureKind::Limited(error) => error,
            GroupFailureKind::Provider(e) => e.into_api_error(&self.model),
        }
    }
}

/// `*` matches any run of characters (LiteLLM's wildcard model names).
pub fn wildcard_match(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((prefix, suffix)) => {
            name.len() >= prefix.len() + suffix.len() && name.starts_with(prefix) && {
                let rest = &name[prefix.len()..];
                if suffix.contains('*') {
                    (0..=rest.len())
                        .any(|i| rest.is_char_boundary(i) && wildcard_match(suffix, &rest[i..]))
                } else {
                    rest.ends_with(suffix)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_like_litellm() {
        assert!(wildcard_match("*", "gpt-4o"));
        assert!(wildcard_match("openai/*", "openai/gpt-4o"));
        assert!(!wildcard_match("openai/*", "anthropic/claude"));
        assert!(wildcard_match("a*b*c", "axxbyyc"));
        assert!(!wildcard_match("a*b*c", "axxbyy"));
    }
}
