//! The typed sections of a LiteLLM `config.yaml`: what HX reads from each, with LiteLLM's names.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// `litellm_settings`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct LitellmSettings {
    #[serde(default, deserialize_with = "flex::opt_u32")]
    pub num_retries: Option<u32>,
    #[serde(default, deserialize_with = "flex::opt_f64")]
    pub request_timeout: Option<f64>,
    #[serde(default)]
    pub fallbacks: Option<Vec<BTreeMap<String, Vec<String>>>>,
    #[serde(default)]
    pub context_window_fallbacks: Option<Vec<BTreeMap<String, Vec<String>>>>,
    #[serde(default)]
    pub default_fallbacks: Option<Vec<String>>,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    pub drop_params: Option<bool>,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    pub cache: Option<bool>,
    #[serde(default)]
    pub cache_params: Option<Value>,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    pub json_logs: Option<bool>,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    pub set_verbose: Option<bool>,
}

/// `router_settings`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RouterSettings {
    #[serde(default)]
    pub routing_strategy: Option<String>,
    #[serde(default, deserialize_with = "flex::opt_u32")]
    pub num_retries: Option<u32>,
    #[serde(default, deserialize_with = "flex::opt_f64")]
    pub timeout: Option<f64>,
    #[serde(default, deserialize_with = "flex::opt_f64")]
    pub stream_timeout: Option<f64>,
    #[serde(default, deserialize_with = "flex::opt_u32")]
    pub allowed_fails: Option<u32>,
    #[serde(default, deserialize_with = "flex::opt_f64")]
    pub cooldown_time: Option<f64>,
    #[serde(default, deserialize_with = "flex::opt_f64")]
    pub retry_after: Option<f64>,
    #[serde(default)]
    pub fallbacks: Option<Vec<BTreeMap<String, Vec<String>>>>,
    #[serde(default)]
    pub context_window_fallbacks: Option<Vec<BTreeMap<String, Vec<String>>>>,
    #[serde(default)]
    pub default_fallbacks: Option<Vec<String>>,
    #[serde(default)]
    pub redis_host: Option<String>,
    #[serde(default, deserialize_with = "flex::opt_u32")]
    pub redis_port: Option<u32>,
    #[serde(default)]
    pub redis_password: Option<String>,
    #[serde(default)]
    pub redis_url: Option<String>,
    #[serde(default)]
    pub optional_pre_call_checks: Option<Vec<String>>,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    pub enable_pre_call_checks: Option<bool>,
    #[serde(default)]
    pub model_group_alias: Option<BTreeMap<String, Value>>,
}

/// `general_settings`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct GeneralSettings {
    #[serde(default)]
    pub master_key: Option<String>,
    #[serde(default)]
    pub database_url: Option<String>,
    #[serde(default, deserialize_with = "flex::opt_f64")]
    pub max_request_size_mb: Option<f64>,
    #[serde(default, deserialize_with = "flex::opt_f64")]
    pub user_api_key_cache_ttl: Option<f64>,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    pub allow_requests_on_db_unavailable: Option<bool>,
    #[serde(default, deserialize_with = "flex::opt_u32")]
    pub global_max_parallel_requests: Option<u32>,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    pub disable_spend_logs: Option<bool>,
    #[serde(default, deserialize_with = "flex::opt_u32")]
    pub database_connection_pool_limit: Option<u32>,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    pub require_auth_for_metrics_endpoint: Option<bool>,
    /// Check config-defined fallbacks against the key's models too (LiteLLM's
    /// `enforce_fallback_model_access`); request fallbacks are always checked.
    #[serde(default, deserialize_with = "flex::opt_bool")]
    pub enforce_fallback_model_access: Option<bool>,
    /// HX's own: seconds a streamed `/v1/messages` call may wait for its upstream before the
    /// gateway commits the response and sends `ping` events, and between pings (default 5;
    /// 0 turns pings off).
    #[serde(default, deserialize_with = "flex::opt_f64")]
    pub stream_keepalive_seconds: Option<f64>,
    /// HX's own: days a stored Responses API answer (`store: true` on a bridged deployment)
    /// is kept for `previous_response_id` and `GET /v1/responses/{id}` (default 30).
    #[serde(default, deserialize_with = "flex::opt_f64")]
    pub responses_retention_days: Option<f64>,
}

/// `rag_settings` (HX's own section; the environment wins over it).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RagSettings {
    #[serde(default)]
    pub qdrant_url: Option<String>,
    #[serde(default)]
    pub qdrant_api_key: Option<String>,
    #[serde(default)]
    pub collection: Option<String>,
    #[serde(default)]
    pub embedding_model: Option<String>,
    #[serde(default)]
    pub data_dir: Option<String>,
    /// The most collections upserts may create (HX's own; default 100).
    #[serde(default, deserialize_with = "flex::opt_u32")]
    pub max_collections: Option<u32>,
}

/// One `model_list` entry as written.
#[derive(Debug, Clone, Deserialize)]
pub struct RawDeployment {
    pub model_name: String,
    pub litellm_params: LitellmParams,
    #[serde(default)]
    pub model_info: ModelInfo,
}

/// `litellm_params` of a deployment. Unknown entries are kept: OpenAI request parameters
/// (`temperature`, `max_tokens`, ...) become defaults of every request to the deployment.
#[derive(Debug, Clone, Deserialize)]
pub struct LitellmParams {
    pub model: String,
    #[serde(default)]
    pub api_base: Option<String>,
    #[serde(default)]
    pub api_key: Option<String>,
    #[serde(default)]
    pub api_version: Option<String>,
    #[serde(default)]
    pub organization: Option<String>,
    #[serde(default)]
    pub extra_headers: Option<BTreeMap<String, String>>,
    #[serde(default, deserialize_with = "flex::opt_u64")]
    pub rpm: Option<u64>,
    #[serde(default, deserialize_with = "flex::opt_u64")]
    pub tpm: Option<u64>,
    #[serde(default, deserialize_with = "flex::opt_f64")]
    pub weight: Option<f64>,
    #[serde(default, deserialize_with = "flex::opt_u32")]
    pub order: Option<u32>,
    #[serde(default, deserialize_with = "flex::opt_f64")]
    pub timeout: Option<f64>,
    #[serde(default, deserialize_with = "flex::opt_f64")]
    pub stream_timeout: Option<f64>,
    #[serde(default, deserialize_with = "flex::opt_u32")]
    pub max_retries: Option<u32>,
    #[serde(default)]
    pub mock_response: Option<String>,
    #[serde(default)]
    pub model_path: Option<String>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// `model_info` of a deployment.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ModelInfo {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub mode: Option<String>,
    #[serde(default)]
    pub base_model: Option<String>,
    #[serde(default, deserialize_with = "flex::opt_f64")]
    pub input_cost_per_token: Option<f64>,
    #[serde(default, deserialize_with = "flex::opt_f64")]
    pub output_cost_per_token: Option<f64>,
    #[serde(default, deserialize_with = "flex::opt_u64")]
    pub max_tokens: Option<u64>,
    #[serde(default, deserialize_with = "flex::opt_u64")]
    pub max_input_tokens: Option<u64>,
    /// The deployment's server serves OpenAI's Responses API itself (LiteLLM's flag).
    #[serde(default, deserialize_with = "flex::opt_bool")]
    pub supports_responses_api: Option<bool>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// Numbers and booleans that may arrive as strings: `os.environ/NAME` always yields a string,
/// and LiteLLM accepts `rpm: "600"`.
pub mod flex {
    use super::*;
    use serde::de::Error;

    fn opt_parse<'de, D, T>(d: D, expected: &'static str) -> Result<Option<T>, D::Error>
    where
        D: Deserializer<'de>,
        T: std::str::FromStr + serde::de::DeserializeOwned,
    {
        match Option::<Value>::deserialize(d)? {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => s
                .trim()
                .parse::<T>()
                .map(Some)
                .map_err(|_| D::Error::custom(format!("expected {expected}, got \"{s}\""))),
            Some(other) => serde_json::from_value::<T>(other.clone())
                .map(Some)
                .map_err(|_| D::Error::custom(format!("expected {expected}, got {other}"))),
        }
    }

    pub fn opt_u32<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
        opt_parse(d, "a non-negative integer")
    }

    pub fn opt_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        opt_parse(d, "a non-negative integer")
    }

    pub fn opt_f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        opt_parse(d, "a number")
    }

    pub fn opt_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
        match Option::<Value>::deserialize(d)? {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(b)),
            Some(Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => Ok(Some(true)),
                "false" | "0" | "no" | "off" => Ok(Some(false)),
                _ => Err(D::Error::custom(format!(
                    "expected true or false, got \"{s}\""
                ))),
            },
            Some(other) => Err(D::Error::custom(format!(
                "expected true or false, got {other}"
            ))),
        }
    }
}
