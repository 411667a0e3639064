//! What happens once an answer is known: cost, spend, settling token reservations, storing the
//! answer in the cache, and the headers that report them. Also the reply for a cache hit.

use std::time::Instant;

use axum::http::{HeaderName, HeaderValue};
use bytes::Bytes;
use chrono::{DateTime, Utc};

use super::{LlmRequest, MODEL_GROUP, OVERHEAD, Reply, ReplyBody, header_value};
use crate::api::{Endpoint, Usage};
use crate::cache::{CachePlan, CachedResponse, ResponseCache};
use crate::caller::Caller;
use crate::config::Deployment;
use crate::error::ApiError;
use crate::keys::KeyService;
use crate::limits::Admission;
use crate::spend::{BudgetHold, SpendRecord};

const RESPONSE_COST: HeaderName = HeaderName::from_static("x-litellm-response-cost");
const CACHE_KEY: HeaderName = HeaderName::from_static("x-litellm-cache-key");
const KEY_SPEND: HeaderName = HeaderName::from_static("x-litellm-key-spend");
const CACHE_HIT: HeaderName = HeaderName::from_static("x-litellm-cache-hit");

/// The work left once the upstream answered.
pub struct Finish {
    pub caller: Caller,
    pub endpoint: Endpoint,
    pub admission: Admission,
    /// The deployment's own rpm/tpm reservation, when those limits are enforced.
    pub deployment_admission: Option<Admission>,
    /// Where to store the answer, when the request may be cached.
    pub cache: Option<(ResponseCache, CachePlan)>,
    /// Tokens reserved before the call; the prompt part stands in for missing usage.
    pub estimate: u64,
    /// Where spend goes (absent for unauthenticated use).
    pub spend: Option<SpendSink>,
    /// The estimated cost held against the caller's budgets; released once the real cost is
    /// in the spend (or when the request ends without an answer).
    pub budget: BudgetHold,
}

/// Who pays for a request, and where the record is written.
pub struct SpendSink {
    pub keys: KeyService,
    /// The key's token hash (the master key's hash for master-key calls).
    pub api_key: String,
    pub user_id: Option<String>,
    pub team_id: Option<String>,
    pub end_user: Option<String>,
    /// The key's and the request's `metadata.tags`.
    pub request_tags: Vec<String>,
    pub start_time: DateTime<Utc>,
}

impl SpendSink {
    /// The sink for a caller, when there is a key store.
    pub fn for_caller(
        caller: &Caller,
        keys: Option<&KeyService>,
        master_hash: Option<&str>,
        body: &serde_json::Map<String, serde_json::Value>,
    ) -> Option<Self> {
        let keys = keys?.clone();
        let (api_key, user_id, team_id) = match caller {
            Caller::Key(key) => (key.token.clone(), key.user_id.clone(), key.team_id.clone()),
            Caller::Master => (master_hash?.to_string(), None, None),
            Caller::Anonymous => return None,
        };
        let mut request_tags = Vec::new();
        if let Caller::Key(key) = caller {
            add_tags(&mut request_tags, key.metadata.get("tags"));
        }
        Some(SpendSink {
            keys,
            api_key,
            user_id,
            team_id,
            end_user: body
                .get("user")
                .and_then(|v| v.as_str())
                .map(str::to_string),
            request_tags,
            start_time: Utc::now(),
        })
    }

    /// Adds the request's own `metadata.tags` (read before the gateway's fields leave the body).
    pub fn with_request_tags(mut self, tags: Option<&serde_json::Value>) -> Self {
        add_tags(&mut self.request_tags, tags);
        self
    }

    fn record(
        self,
        call_type: &str,
        model_group: &str,
        deployment: Option<&Deployment>,
        usage: &Usage,
        cost: f64,
        cache_hit: bool,
    ) {
        let mut record = SpendRecord::new(self.api_key, model_group, cost);
        record.call_type = call_type.to_string();
        record.prompt_tokens = usage.prompt_tokens;
        record.completion_tokens = usage.completion_tokens;
        record.start_time = self.start_time;
        record.end_time = Utc::now();
        if let Some(d) = deployment {
            record.model = d.model.clone();
            record.custom_llm_provider = d.provider.name().to_string();
            record.api_base = d.api_base_redacted.clone();
        }
        record.user_id = self.user_id;
        record.team_id = self.team_id;
        record.end_user = self.end_user;
        record.request_tags = self.request_tags;
        record.cache_hit = cache_hit;
        record.status = "success".to_string();
        self.keys.record_spend(record);
    }
}

/// The strings of a `tags` list, each once.
fn add_tags(out: &mut Vec<String>, tags: Option<&serde_json::Value>) {
    if let Some(serde_json::Value::Array(tags)) = tags {
        for tag in tags.iter().filter_map(serde_json::Value::as_str) {
            if !out.iter().any(|t| t == tag) {
                out.push(tag.to_string());
            }
        }
    }
}

/// What the request cost, for the response headers.
pub struct Outcome {
    pub cost: f64,
    /// The key's spend including this request.
    pub key_spend: Option<f64>,
}

impl Outcome {
    pub fn headers(&self) -> Vec<(HeaderName, HeaderValue)> {
        let mut out = vec![(RESPONSE_COST, header_value(&self.cost.to_string()))];
        if let Some(spend) = self.key_spend {
            out.push((KEY_SPEND, header_value(&spend.to_string())));
        }
        out
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
        let usage = usage.unwrap_or(Usage::new(self.estimate, 0));
        let cost = crate::prices::cost_at(
            &deployment.prices,
            usage.prompt_tokens,
            usage.completion_tokens,
        );
        crate::proxy::record_usage(model_group, Some(usage));
        crate::metrics::record_spend(model_group, cost);
        let Finish {
            caller,
            endpoint,
            mut admission,
            deployment_admission,
            cache,
            estimate: _,
            spend,
            budget,
        } = self;
        let keys = spend.as_ref().map(|sink| sink.keys.clone());
        if let Some(sink) = spend {
            sink.record(
                endpoint.call_type(),
                model_group,
                Some(deployment),
                &usage,
                cost,
                false,
            );
        }
        // Only now that the cost is in the spend: in between, neither would count.
        drop(budget);
        if let (Some(keys), Some(key)) = (keys, caller.key()) {
            keys.report_soft_budget(key);
        }
        let key_spend = caller.key().map(|k| k.spend());
        let cache = cache.filter(|_| body.is_some());
        // Most requests run under no limit and no cache: no task to spawn for them.
        if admission.holds_nothing()
            && deployment_admission
                .as_ref()
                .is_none_or(Admission::holds_nothing)
            && cache.is_none()
        {
            return Outcome { cost, key_spend };
        }
        let body = body.cloned();
        tokio::spawn(async move {
            admission.settle(usage.total_tokens).await;
            admission.release().await;
            if let Some(mut deployment) = deployment_admission {
                deployment.settle(usage.total_tokens).await;
                deployment.release().await;
            }
            if let (Some((cache, plan)), Some(body)) = (cache, body) {
                cache.store(&plan, body).await;
            }
        });
        Outcome { cost, key_spend }
    }
}

/// The answer to a request served from the cache: no upstream call, no spend.
pub fn cached_reply(
    request: &LlmRequest,
    plan: &CachePlan,
    hit: CachedResponse,
    started: Instant,
    spend: Option<SpendSink>,
) -> Result<Reply, ApiError> {
    crate::metrics::record_cache_hit(&request.model);
    if let Some(sink) = spend {
        let usage = crate::api::answer_usage(request.endpoint, &hit.body).unwrap_or_default();
        sink.record(
            request.endpoint.call_type(),
            &request.model,
            None,
            &usage,
            0.0,
            true,
        );
    }
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
        ReplyBody::Frames(Box::pin(futures::stream::iter(frames)))
    } else {
        ReplyBody::Json(hit.body)
    };
    Ok(Reply { headers, body })
}
