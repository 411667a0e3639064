//! What happens once an answer is known: cost, spend, settling token reservations, storing the
//! answer in the cache, and the headers that report them. Also the reply for a cache hit.

use std::time::Instant;

use axum::http::{HeaderName, HeaderValue};
use bytes::Bytes;

use super::{LlmRequest, MODEL_GROUP, OVERHEAD, Reply, ReplyBody, header_value};
use crate::cache::{CachePlan, CachedResponse, ResponseCache};
use crate::config::Deployment;
use crate::error::ApiError;
use crate::limits::Admission;
use crate::providers::{Endpoint, Usage};
use crate::server::auth::Caller;

const RESPONSE_COST: HeaderName = HeaderName::from_static("x-litellm-response-cost");
const CACHE_KEY: HeaderName = HeaderName::from_static("x-litellm-cache-key");
const CACHE_HIT: HeaderName = HeaderName::from_static("x-litellm-cache-hit");

/// The work left once the upstream answered.
pub struct Finish {
    pub caller: Caller,
    pub endpoint: Endpoint,
    pub admission: Admission,
    /// Where to store the answer, when the request may be cached.
    pub cache: Option<(ResponseCache, CachePlan)>,
    /// Tokens reserved before the call; the prompt part stands in for missing usage.
    pub estimate: u64,
}

/// What the request cost, for the response headers.
pub struct Outcome {
    pub cost: f64,
}

impl Outcome {
    pub fn headers(&self) -> Vec<(HeaderName, HeaderValue)> {
        vec![(RESPONSE_COST, header_value(&self.cost.to_string()))]
    }
}

impl Finish {
    /// Settles limits, records spend and caches a complete body. Never blocks the caller:
    /// anything that talks to Redis or the database runs in a spawned task.
    pub fn complete(
        self,
        deployment: &Deployment,
        model_group: &str,
        usage: Option<Usage>,
        body: Option<&Bytes>,
    ) -> Outcome {
        let usage = usage.unwrap_or(Usage {
            prompt_tokens: self.estimate,
            completion_tokens: 0,
            total_tokens: self.estimate,
        });
        let cost = cost_of(deployment, &usage);
        crate::proxy::record_usage(model_group, Some(usage));
        metrics::counter!("hx_requests_by_endpoint_total", "endpoint" => self.endpoint.call_type())
            .increment(1);
        let Finish {
            caller: _,
            endpoint: _,
            mut admission,
            cache,
            estimate: _,
        } = self;
        let body = body.cloned();
        tokio::spawn(async move {
            admission.settle(usage.total_tokens).await;
            admission.release().await;
            if let (Some((cache, plan)), Some(body)) = (cache, body) {
                cache.store(&plan, body).await;
            }
        });
        Outcome { cost }
    }
}

/// Cost of a call: the deployment's `model_info` prices per token.
fn cost_of(deployment: &Deployment, usage: &Usage) -> f64 {
    deployment.input_cost_per_token.unwrap_or(0.0) * usage.prompt_tokens as f64
        + deployment.output_cost_per_token.unwrap_or(0.0) * usage.completion_tokens as f64
}

/// The answer to a request served from the cache: no upstream call, no spend.
pub fn cached_reply(
    _caller: &Caller,
    request: &LlmRequest,
    plan: &CachePlan,
    hit: CachedResponse,
    started: Instant,
) -> Result<Reply, ApiError> {
    metrics::counter!("hx_cache_hits_total", "model_group" => request.model.clone()).increment(1);
    let mut headers = vec![
        (CACHE_KEY, header_value(&plan.key)),
        (CACHE_HIT, HeaderValue::from_static("True")),
        (MODEL_GROUP, header_value(&request.model)),
        (RESPONSE_COST, HeaderValue::from_static("0")),
    ];
    let overhead_ms = format!("{:.3}", started.elapsed().as_secs_f64() * 1000.0);
    headers.push((OVERHEAD, header_value(&overhead_ms)));
    let body = if request.stream {
        let events = hit.sse_events(request.include_usage)?;
        let frames = events
            .into_iter()
            .map(|e| Ok::<_, std::convert::Infallible>(Bytes::from(e)));
        ReplyBody::Replay(Box::pin(futures::stream::iter(frames)))
    } else {
        ReplyBody::Json(hit.body)
    };
    Ok(Reply { headers, body })
}
