//! A `model_list` entry resolved into what the router needs: provider, upstream model, limits.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::settings::{ModelInfo, RawDeployment};
use crate::secret::Secret;

/// The upstream protocols HX speaks. The prefix of `litellm_params.model` selects one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProviderKind {
    OpenAi,
    HostedVllm,
    Azure,
    Anthropic,
    Ollama,
    OllamaChat,
    Gemini,
    Local,
}

impl ProviderKind {
    pub fn from_prefix(prefix: &str) -> Option<Self> {
        Some(match prefix {
            "openai" | "text-completion-openai" | "openai_like" | "custom_openai" => {
                ProviderKind::OpenAi
            }
            "hosted_vllm" | "vllm" => ProviderKind::HostedVllm,
            "azure" | "azure_text" => ProviderKind::Azure,
            "anthropic" => ProviderKind::Anthropic,
            "ollama" => ProviderKind::Ollama,
            "ollama_chat" => ProviderKind::OllamaChat,
            "gemini" => ProviderKind::Gemini,
            "local" => ProviderKind::Local,
            _ => return None,
        })
    }

    /// LiteLLM's name, as written in `custom_llm_provider` of spend logs.
    pub fn name(self) -> &'static str {
        match self {
            ProviderKind::OpenAi => "openai",
            ProviderKind::HostedVllm => "hosted_vllm",
            ProviderKind::Azure => "azure",
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::Ollama => "ollama",
            ProviderKind::OllamaChat => "ollama_chat",
            ProviderKind::Gemini => "gemini",
            ProviderKind::Local => "local",
        }
    }
}

/// What a deployment is for (`model_info.mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Chat,
    Completion,
    Embedding,
}

/// OpenAI request parameters that `litellm_params` may set as defaults for every request.
const DEFAULT_REQUEST_PARAMS: &[&str] = &[
    "temperature",
    "top_p",
    "max_tokens",
    "max_completion_tokens",
    "n",
    "stop",
    "presence_penalty",
    "frequency_penalty",
    "seed",
    "response_format",
    "logit_bias",
    "user",
    "tools",
    "tool_choice",
    "reasoning_effort",
    "dimensions",
    "encoding_format",
];

/// `litellm_params` LiteLLM knows that HX reads elsewhere or needs not: not reported as ignored.
const SILENT_PARAMS: &[&str] = &[
    "custom_llm_provider",
    "input_cost_per_token",
    "output_cost_per_token",
];

/// One upstream deployment, ready for the router.
#[derive(Debug, Clone)]
pub struct Deployment {
    /// `model_info.id`, else a stable hash of the entry (LiteLLM's `x-litellm-model-id`).
    pub id: String,
    /// The entry's position in `model_list` (for messages: "deployment #2").
    pub index: usize,
    /// The group name clients ask for.
    pub model_name: String,
    pub provider: ProviderKind,
    /// The model name sent upstream (the part after the provider prefix).
    pub model: String,
    pub api_base: Option<String>,
    /// `api_base` with any password removed (empty without one), for spend logs: computed
    /// once here rather than for every request's spend record.
    pub api_base_redacted: String,
    pub api_key: Option<Secret>,
    pub api_version: Option<String>,
    pub organization: Option<String>,
    pub extra_headers: Vec<(String, String)>,
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    pub weight: Option<f64>,
    pub order: Option<u32>,
    pub timeout: Option<Duration>,
    pub stream_timeout: Option<Duration>,
    pub max_retries: Option<u32>,
    pub mock_response: Option<String>,
    pub model_path: Option<PathBuf>,
    /// Request parameters applied when the client did not set them.
    pub default_params: Map<String, Value>,
    pub mode: Option<Mode>,
    pub base_model: Option<String>,
    /// What requests are charged at: the configured `input_cost_per_token` /
    /// `output_cost_per_token`, else the built-in table's for `base_model` (else `model`).
    /// Resolved here once, not per request.
    pub prices: crate::prices::ModelPrices,
    pub max_tokens: Option<u64>,
    pub max_input_tokens: Option<u64>,
    /// `model_info.supports_responses_api`.
    pub supports_responses_api: bool,
    /// `model_info.access_groups`: names a key's `models` may list to reach this deployment.
    pub access_groups: Vec<String>,
}

impl Deployment {
    /// A wildcard deployment (`model: openai/*`) passes the requested name through.
    pub fn is_wildcard(&self) -> bool {
        self.model.contains('*')
    }

    /// The model sent upstream for a requested name.
    pub fn upstream_model(&self, requested: &str) -> String {
        if !self.is_wildcard() {
            return self.model.clone();
        }
        let requested = requested
            .split_once('/')
            .filter(|(prefix, _)| ProviderKind::from_prefix(prefix) == Some(self.provider))
            .map_or(requested, |(_, rest)| rest);
        self.model.replace('*', requested)
    }
}

/// Why a deployment could not be built from its entry.
pub enum DeploymentProblem {
    /// Not usable now: disabled with a warning, the rest of the gateway runs.
    Disabled(String),
    /// A wrong type or impossible value: the config is refused, naming the path.
    Invalid { path: String, message: String },
}

/// Builds a deployment from an entry whose `os.environ/` references are already resolved.
/// `index` is the entry's position, for key paths in messages; `ignored` collects the paths
/// of unknown keys.
pub fn build(
    index: usize,
    value: &Value,
    ignored: &mut Vec<String>,
) -> Result<Deployment, DeploymentProblem> {
    let base = format!("model_list[{index}]");
    let raw: RawDeployment = super::typed(value, &base, ignored)
        .map_err(|(path, message)| DeploymentProblem::Invalid { path, message })?;
    let params = raw.litellm_params;
    let invalid = |field: &str, message: &str| DeploymentProblem::Invalid {
        path: format!("{base}.litellm_params.{field}"),
        message: message.to_string(),
    };

    let custom_provider = params
        .extra
        .get("custom_llm_provider")
        .and_then(Value::as_str)
        .map(str::to_string);
    let (provider, model) = match (custom_provider, params.model.split_once('/')) {
        (Some(custom), _) => (
            ProviderKind::from_prefix(&custom).ok_or_else(|| {
                DeploymentProblem::Disabled(format!("provider '{custom}' is not supported"))
            })?,
            params.model.clone(),
        ),
        (None, None) => (ProviderKind::OpenAi, params.model.clone()),
        (None, Some((prefix, rest))) => match ProviderKind::from_prefix(prefix) {
            Some(kind) => (kind, rest.to_string()),
            None => {
                return Err(DeploymentProblem::Disabled(format!(
                    "provider '{prefix}' (from model '{}') is not supported",
                    params.model
                )));
            }
        },
    };
    if model.is_empty() {
        return Err(invalid(
            "model",
            "expected provider/model, got an empty model name",
        ));
    }
    let seconds = |field: &str, v: Option<f64>| -> Result<Option<Duration>, DeploymentProblem> {
        match v {
            None => Ok(None),
            Some(s) if s.is_finite() && s > 0.0 => Ok(Some(Duration::from_secs_f64(s))),
            Some(s) => Err(invalid(
                field,
                &format!("expected a positive number of seconds, got {s}"),
            )),
        }
    };
    let timeout = seconds("timeout", params.timeout)?;
    let stream_timeout = seconds("stream_timeout", params.stream_timeout)?;
    if let Some(w) = params.weight
        && !(w.is_finite() && w >= 0.0)
    {
        return Err(invalid(
            "weight",
            &format!("expected a non-negative number, got {w}"),
        ));
    }

    let mut default_params = Map::new();
    for (key, v) in &params.extra {
        if DEFAULT_REQUEST_PARAMS.contains(&key.as_str()) {
            default_params.insert(key.clone(), v.clone());
        } else if !SILENT_PARAMS.contains(&key.as_str()) {
            ignored.push(format!("{base}.litellm_params.{key}"));
        }
    }
    let info: ModelInfo = raw.model_info;
    let access_groups = match info.extra.get("access_groups") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        Some(_) => {
            return Err(DeploymentProblem::Invalid {
                path: format!("{base}.model_info.access_groups"),
                message: "expected a list of group names".to_string(),
            });
        }
    };
    for key in info.extra.keys() {
        if !KNOWN_MODEL_INFO.contains(&key.as_str()) {
            ignored.push(format!("{base}.model_info.{key}"));
        }
    }
    let mode = match info.mode.as_deref() {
        None => None,
        Some("chat") | Some("responses") => Some(Mode::Chat),
        Some("completion") => Some(Mode::Completion),
        Some("embedding") => Some(Mode::Embedding),
        Some(other) => {
            ignored.push(format!("{base}.model_info.mode ({other})"));
            None
        }
    };
    let input_cost = info.input_cost_per_token.or_else(|| {
        params
            .extra
            .get("input_cost_per_token")
            .and_then(Value::as_f64)
    });
    let output_cost = info.output_cost_per_token.or_else(|| {
        params
            .extra
            .get("output_cost_per_token")
            .and_then(Value::as_f64)
    });

    let id = info
        .id
        .clone()
        .unwrap_or_else(|| stable_id(&raw.model_name, value));
    let api_base = params.api_base.map(|b| b.trim_end_matches('/').to_string());
    let prices = crate::prices::prices_for(
        info.base_model.as_deref().unwrap_or(&model),
        Some(&crate::prices::ModelPrices {
            input_cost_per_token: input_cost,
            output_cost_per_token: output_cost,
        }),
    );
    Ok(Deployment {
        id,
        index,
        model_name: raw.model_name,
        provider,
        model,
        api_base_redacted: api_base
            .as_deref()
            .map(crate::secret::redact_url)
            .unwrap_or_default(),
        api_base,
        api_key: params.api_key.map(Secret::new),
        api_version: params.api_version,
        organization: params.organization,
        extra_headers: params
            .extra_headers
            .unwrap_or_default()
            .into_iter()
            .collect::<BTreeMap<_, _>>()
            .into_iter()
            .collect(),
        rpm: params.rpm,
        tpm: params.tpm,
        weight: params.weight,
        order: params.order,
        timeout,
        stream_timeout,
        max_retries: params.max_retries,
        mock_response: params.mock_response,
        model_path: params.model_path.map(PathBuf::from),
        default_params,
        mode,
        base_model: info.base_model,
        prices,
        max_tokens: info.max_tokens,
        max_input_tokens: info.max_input_tokens,
        supports_responses_api: info.supports_responses_api.unwrap_or(false),
        access_groups,
    })
}

/// `model_info` keys LiteLLM documents that HX does not use: not worth a warning.
const KNOWN_MODEL_INFO: &[&str] = &[
    "max_output_tokens",
    "supports_function_calling",
    "supports_vision",
    "supports_parallel_function_calling",
    "supports_response_schema",
    "supports_tool_choice",
    "supports_system_messages",
    "litellm_provider",
    "db_model",
    "team_id",
    "access_groups",
    "description",
    "tier",
];

/// LiteLLM derives a deployment id from its parameters when none is given; a hash of the
/// entry keeps ids stable across restarts and reloads.
fn stable_id(model_name: &str, entry: &Value) -> String {
    let mut hasher = Sha256::new();
    hasher.update(model_name.as_bytes());
    hasher.update(entry.to_string().as_bytes());
    hex::encode(&hasher.finalize()[..8])
}
