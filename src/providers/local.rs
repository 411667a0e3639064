//! `local/`: sentence embeddings computed inside the gateway (candle BERT), answered in
//! OpenAI's embeddings shape. Only `/v1/embeddings` (and so RAG) can use it.

use serde_json::Value;

use super::{ProviderError, ProviderResponse, ProviderUnavailable, UpstreamRequest};
use crate::api::Endpoint;
use crate::config::Deployment;
use crate::error::ApiError;

#[cfg(feature = "local-embeddings")]
use crate::embeddings::local::{LocalEmbedder, LocalEmbedderOptions};

#[derive(Clone)]
pub struct Local {
    #[cfg(feature = "local-embeddings")]
    embedder: LocalEmbedder,
    model: String,
}

impl std::fmt::Debug for Local {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Local").field("model", &self.model).finish()
    }
}

impl Local {
    /// Loads the model files of `model_path`; a missing or malformed file disables the
    /// deployment with a reason naming the file.
    #[cfg(feature = "local-embeddings")]
    pub fn new(d: &Deployment) -> Result<Self, ProviderUnavailable> {
        let path = d.model_path.as_ref().ok_or_else(|| {
            ProviderUnavailable("local/ deployments need litellm_params.model_path".into())
        })?;
        let embedder = LocalEmbedder::load(path, LocalEmbedderOptions::default())
            .map_err(|e| ProviderUnavailable(e.to_string()))?;
        Ok(Local {
            embedder,
            model: d.model.clone(),
        })
    }

    #[cfg(not(feature = "local-embeddings"))]
    pub fn new(_d: &Deployment) -> Result<Self, ProviderUnavailable> {
        Err(ProviderUnavailable(
            "this build has no local embeddings (cargo feature local-embeddings is off)".into(),
        ))
    }

    pub async fn call(
        &self,
        request: UpstreamRequest<'_>,
    ) -> Result<ProviderResponse, ProviderError> {
        if request.endpoint != Endpoint::Embedding {
            return Err(ProviderError::Rejected(ApiError::invalid(
                format!(
                    "The local model '{}' only serves /v1/embeddings.",
                    request.requested_model
                ),
                "model",
            )));
        }
        let texts = inputs(request.body.get("input"))?;
        let dimensions = match request.body.get("dimensions") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.as_u64()
                    .and_then(|n| usize::try_from(n).ok())
                    .ok_or_else(|| {
                        ProviderError::Rejected(ApiError::invalid(
                            "'dimensions' must be a positive integer.",
                            "dimensions",
                        ))
                    })?,
            ),
        };
        self.embed(texts, dimensions, request.requested_model).await
    }

    #[cfg(feature = "local-embeddings")]
    async fn embed(
        &self,
        texts: Vec<String>,
        dimensions: Option<usize>,
        requested: &str,
    ) -> Result<ProviderResponse, ProviderError> {
        let result = self
            .embedder
            .embed(texts, dimensions)
            .await
            .map_err(|e| ProviderError::Rejected(ApiError::from(e)))?;
        let data: Vec<Value> = result
            .vectors
            .iter()
            .enumerate()
            .map(|(index, v)| serde_json::json!({"object": "embedding", "index": index, "embedding": v}))
            .collect();
        let tokens = result.prompt_tokens as u64;
        let usage = crate::api::Usage::new(tokens, 0);
        let body = serde_json::json!({"object": "list", "data": data, "model": requested, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}});
        Ok(ProviderResponse::Complete {
            body: bytes::Bytes::from(body.to_string()),
            usage: Some(usage),
        })
    }

    #[cfg(not(feature = "local-embeddings"))]
    async fn embed(
        &self,
        _texts: Vec<String>,
        _dimensions: Option<usize>,
        _requested: &str,
    ) -> Result<ProviderResponse, ProviderError> {
        Err(ProviderError::Connect(
            "local embeddings are not built in".into(),
        ))
    }
}

/// `input` as texts: a string or a list of strings (token arrays need the model's own
/// tokenizer ids, which clients of a local model do not have).
fn inputs(input: Option<&Value>) -> Result<Vec<String>, ProviderError> {
    let reject = |m: &str| ProviderError::Rejected(ApiError::invalid(m.to_string(), "input"));
    match input {
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .map(|v| {
                v.as_str().map(str::to_string).ok_or_else(|| {
                    reject("'input' must be a string or a list of strings for a local model.")
                })
            })
            .collect(),
        Some(Value::Array(_)) => Err(reject("'input' must not be empty.")),
        _ => Err(reject("'input' must be a string or a list of strings.")),
    }
}
