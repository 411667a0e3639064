//! Embeddings for RAG computed in-process through the router, with the caller's identity: the
//! caller's key must be allowed the embedding model, limits apply, and the cost is its spend.

use std::time::Instant;

use futures::future::BoxFuture;
use serde_json::{Map, Value, json};

use super::accounting::{Finish, SpendSink};
use crate::api::Endpoint;
use crate::caller::Caller;
use crate::error::{ApiError, ErrorKind};
use crate::gateway::AppState;
use crate::providers::{ProviderResponse, Upstream};
use crate::rag::Embedder;
use crate::router::{RouteFailure, RouteRequest};

/// Embeds with `EMBEDDING_MODEL` on behalf of one caller.
pub struct RouterEmbedder<'a> {
    pub state: &'a AppState,
    pub upstream: &'a Upstream,
    pub caller: &'a Caller,
}

impl RouterEmbedder<'_> {
    async fn embed_texts(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, ApiError> {
        let runtime = self.state.runtime();
        let model = runtime.config.rag.embedding_model.clone();
        self.caller
            .check_model(&model, runtime.router.access_groups(&model))?;
        if runtime.router.group(&model).is_none() {
            // Configured but disabled (missing model files, an unset variable): say why, as
            // a 503, since the request itself is fine.
            if let Some(reason) = runtime.router.disabled_reason(&model) {
                return Err(ApiError::new(
                    ErrorKind::Unavailable,
                    format!(
                        "The embedding model '{model}' (EMBEDDING_MODEL) is disabled: {reason}; search by 'vector' works without it."
                    ),
                )
                .with_param("query"));
            }
            return Err(ApiError::invalid(
                format!(
                    "The embedding model '{model}' (EMBEDDING_MODEL) is not in the config's model_list; search by 'vector' works without it."
                ),
                "query",
            ));
        }
        let count = texts.len();
        let mut body = Map::new();
        body.insert("model".into(), Value::String(model.clone()));
        body.insert("input".into(), json!(texts));
        let estimate = crate::tokens::estimate_prompt_tokens(&body);
        let spend = SpendSink::for_caller(
            self.caller,
            self.state.keys(),
            runtime.master_key_hash.as_deref(),
            &body,
        );
        let budget = super::budget::hold(
            self.state,
            self.caller,
            &runtime.router,
            Endpoint::Embedding,
            std::iter::once(model.as_str()),
            &body,
        )
        .await?;
        let admission = self
            .state
            .limiter
            .acquire(&self.caller.limit_requests(&runtime.config, estimate))
            .await
            .map_err(ApiError::from)?;
        let started = Instant::now();
        let routed = runtime
            .router
            .execute(RouteRequest {
                upstream: self.upstream,
                endpoint: Endpoint::Embedding,
                model: &model,
                body,
                stream: false,
                want_stream_usage: false,
                forward_headers: &[],
                fallbacks: Vec::new(),
                context_window_fallbacks: Vec::new(),
                access: &|model: &str| {
                    self.caller
                        .check_model(model, runtime.router.access_groups(model))
                },
                deployment_limits: runtime
                    .router
                    .routing()
                    .enforce_model_rate_limits
                    .then_some((&self.state.limiter, estimate)),
            })
            .await
            .map_err(|RouteFailure { error, .. }| error)?;
        let ProviderResponse::Complete { body, usage } = routed.response else {
            return Err(ApiError::new(
                ErrorKind::UpstreamConnection,
                "The embedding model answered with a stream.",
            ));
        };
        let finish = Finish {
            caller: self.caller.clone(),
            endpoint: Endpoint::Embedding,
            admission,
            deployment_admission: routed.deployment_admission,
            cache: None,
            estimate,
            spend,
            budget,
        };
        finish.complete(&routed.member.deployment, &routed.model_group, usage, None);
        crate::metrics::record_rag_embedding(started.elapsed());
        parse_embeddings(&body, count)
    }
}

impl Embedder for RouterEmbedder<'_> {
    fn embed(&self, texts: Vec<String>) -> BoxFuture<'_, Result<Vec<Vec<f32>>, ApiError>> {
        Box::pin(self.embed_texts(texts))
    }
}

/// Vectors of an OpenAI embeddings answer, in input order.
fn parse_embeddings(body: &[u8], expected: usize) -> Result<Vec<Vec<f32>>, ApiError> {
    #[derive(serde::Deserialize)]
    struct Item {
        #[serde(default)]
        index: usize,
        embedding: Vec<f32>,
    }
    #[derive(serde::Deserialize)]
    struct Answer {
        data: Vec<Item>,
    }
    let bad = |why: &str| {
        ApiError::new(
            ErrorKind::UpstreamConnection,
            format!("The embedding model's answer is not usable: {why}"),
        )
    };
    let mut answer: Answer = serde_json::from_slice(body).map_err(|e| bad(&e.to_string()))?;
    if answer.data.len() != expected {
        return Err(bad(&format!(
            "{} vectors for {expected} texts",
            answer.data.len()
        )));
    }
    answer.data.sort_by_key(|item| item.index);
    Ok(answer.data.into_iter().map(|item| item.embedding).collect())
}
