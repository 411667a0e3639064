//! Loading a LiteLLM `config.yaml` unchanged: includes, `os.environ/` references, typed
//! sections, unknown keys reported once, bad deployments disabled instead of fatal.

pub mod deployment;
pub mod env;
pub mod settings;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

pub use deployment::{Deployment, Mode, ProviderKind};
pub use env::{Env, EnvSource, ProcessEnv};
pub use settings::{GeneralSettings, LitellmSettings, RagSettings, RouterSettings};

use crate::secret::Secret;

/// A config that cannot be used; the message names the key path and what was expected.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("config file {path} is not valid YAML: {reason}")]
    Yaml { path: String, reason: String },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
    #[error("{path}: environment variable {var} is not set")]
    UnsetVariable { path: String, var: String },
    #[error("{0}")]
    EnvFile(#[from] env::EnvFileError),
}

/// A deployment that was left out, and why (reported at start and by `check`).
#[derive(Debug, Clone)]
pub struct DisabledDeployment {
    pub model_name: String,
    /// The entry's position in `model_list`.
    pub index: usize,
    pub reason: String,
    /// The `os.environ/` variable whose absence disabled it: an optional deployment that
    /// comes up once the variable is set (`check` warns instead of failing).
    pub unset_variable: Option<String>,
}

/// The default of `rag_settings.max_collections`.
pub const DEFAULT_MAX_COLLECTIONS: usize = 100;

/// Where the vector store lives and which model embeds for it.
#[derive(Debug, Clone)]
pub struct RagConfig {
    pub qdrant_url: Option<Secret>,
    pub qdrant_api_key: Option<Secret>,
    pub collection: String,
    pub embedding_model: String,
    pub data_dir: PathBuf,
    /// `rag_settings.max_collections` (default 100): no upsert creates more.
    pub max_collections: usize,
}

/// The router's behaviour, merged from `router_settings` and `litellm_settings`.
#[derive(Debug, Clone)]
pub struct RoutingConfig {
    pub strategy: RoutingStrategy,
    pub num_retries: u32,
    pub timeout: Option<Duration>,
    pub stream_timeout: Option<Duration>,
    pub allowed_fails: u32,
    pub cooldown_time: Duration,
    pub retry_after: Duration,
    pub fallbacks: Vec<(String, Vec<String>)>,
    pub context_window_fallbacks: Vec<(String, Vec<String>)>,
    pub default_fallbacks: Vec<String>,
    pub drop_params: bool,
    pub enforce_model_rate_limits: bool,
    /// `general_settings.enforce_fallback_model_access`: config fallbacks are checked against
    /// the key's models like request fallbacks (off: the operator's choice, as in LiteLLM).
    pub enforce_fallback_model_access: bool,
}

/// `router_settings.routing_strategy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoutingStrategy {
    SimpleShuffle,
    LeastBusy,
    LatencyBased,
    UsageBased,
}

/// Everything the gateway runs from, after the environment has been applied.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub path: Option<PathBuf>,
    pub deployments: Vec<Arc<Deployment>>,
    pub disabled: Vec<DisabledDeployment>,
    /// Paths of keys that were read but are not used, reported once at start.
    pub ignored: Vec<String>,
    pub litellm: LitellmSettings,
    pub router: RouterSettings,
    pub general: GeneralSettings,
    pub routing: RoutingConfig,
    pub master_key: Option<Secret>,
    pub database_url: Option<Secret>,
    pub redis_url: Option<Secret>,
    pub rag: RagConfig,
    pub data_dir: PathBuf,
    pub max_request_bytes: usize,
    pub key_cache_ttl: Duration,
    /// `general_settings.stream_keepalive_seconds`: `None` when pings are off.
    pub stream_keepalive: Option<Duration>,
    /// `general_settings.responses_retention_days`.
    pub responses_retention: Duration,
    pub allow_requests_on_db_unavailable: bool,
}

const TOP_LEVEL: &[&str] = &[
    "model_list",
    "litellm_settings",
    "router_settings",
    "general_settings",
    "environment_variables",
    "include",
    "rag_settings",
];

impl GatewayConfig {
    /// Reads and resolves a config file. `env` is the layered environment (process, env file);
    /// the file's `environment_variables` are added below them.
    pub fn load(
        path: &Path,
        process: &dyn EnvSource,
        env_file: HashMap<String, String>,
    ) -> Result<Self, ConfigError> {
        let root = read_with_includes(path)?;
        Self::from_value(root, Some(path.to_path_buf()), process, env_file)
    }

    /// A config with no file: no models, settings from the environment only.
    pub fn empty(
        process: &dyn EnvSource,
        env_file: HashMap<String, String>,
    ) -> Result<Self, ConfigError> {
        Self::from_value(Value::Object(Map::new()), None, process, env_file)
    }

    pub fn from_yaml_str(text: &str, process: &dyn EnvSource) -> Result<Self, ConfigError> {
        let root = parse_yaml(text, "<inline>")?;
        Self::from_value(root, None, process, HashMap::new())
    }

    fn from_value(
        root: Value,
        path: Option<PathBuf>,
        process: &dyn EnvSource,
        env_file: HashMap<String, String>,
    ) -> Result<Self, ConfigError> {
        let Value::Object(mut root) = root else {
            return Err(ConfigError::Invalid {
                path: "(top level)".into(),
                message: "expected a mapping of sections (model_list, litellm_settings, ...)"
                    .into(),
            });
        };
        let mut ignored: Vec<String> = root
            .keys()
            .filter(|k| !TOP_LEVEL.contains(&k.as_str()))
            .cloned()
            .collect();

        let mut env = Env::new(process, env_file);
        let vars = match root.remove("environment_variables") {
            None | Some(Value::Null) => HashMap::new(),
            Some(Value::Object(map)) => map
                .into_iter()
                .map(|(k, v)| {
                    let text = match v {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    (k, text)
                })
                .collect(),
            Some(_) => {
                return Err(ConfigError::Invalid {
                    path: "environment_variables".into(),
                    message: "expected a mapping of NAME: value".into(),
                });
            }
        };
        env.set_config_vars(vars);

        let litellm: LitellmSettings = section(&mut root, "litellm_settings", &env, &mut ignored)?;
        let router: RouterSettings = section(&mut root, "router_settings", &env, &mut ignored)?;
        let general: GeneralSettings = section(&mut root, "general_settings", &env, &mut ignored)?;
        let rag_settings: RagSettings = section(&mut root, "rag_settings", &env, &mut ignored)?;

        let (deployments, disabled) =
            build_deployments(root.remove("model_list"), &env, &mut ignored)?;

        let mut routing = routing_config(&litellm, &router)?;
        routing.enforce_fallback_model_access =
            general.enforce_fallback_model_access.unwrap_or(false);
        let secret = |v: Option<String>| v.filter(|s| !s.is_empty()).map(Secret::new);
        let master_key = secret(env.var("LITELLM_MASTER_KEY").or(general.master_key.clone()));
        let database_url = secret(env.var("DATABASE_URL").or(general.database_url.clone()));
        let redis_url = secret(redis_url(&env, &router));
        let data_dir = PathBuf::from(
            env.var("HX_DATA_DIR")
                .or(rag_settings.data_dir.clone())
                .unwrap_or_else(|| "./data".into()),
        );
        let rag = RagConfig {
            qdrant_url: secret(env.var("QDRANT_URL").or(rag_settings.qdrant_url.clone())),
            qdrant_api_key: secret(
                env.var("QDRANT_API_KEY")
                    .or(rag_settings.qdrant_api_key.clone()),
            ),
            collection: env
                .var("QDRANT_COLLECTION")
                .or(rag_settings.collection.clone())
                .unwrap_or_else(|| "hx_rag_default".into()),
            embedding_model: env
                .var("EMBEDDING_MODEL")
                .or(rag_settings.embedding_model.clone())
                .unwrap_or_else(|| "emb-premium".into()),
            data_dir: data_dir.clone(),
            max_collections: rag_settings
                .max_collections
                .map_or(DEFAULT_MAX_COLLECTIONS, |n| n as usize),
        };
        let max_mb = general.max_request_size_mb.unwrap_or(16.0);
        if !(max_mb.is_finite() && max_mb > 0.0) {
            return Err(ConfigError::Invalid {
                path: "general_settings.max_request_size_mb".into(),
                message: format!("expected a positive number, got {max_mb}"),
            });
        }
        let ttl = general.user_api_key_cache_ttl.unwrap_or(60.0);
        if !(ttl.is_finite() && ttl >= 0.0) {
            return Err(ConfigError::Invalid {
                path: "general_settings.user_api_key_cache_ttl".into(),
                message: format!("expected a non-negative number of seconds, got {ttl}"),
            });
        }
        let keepalive = general.stream_keepalive_seconds.unwrap_or(5.0);
        if !(keepalive.is_finite() && keepalive >= 0.0) {
            return Err(ConfigError::Invalid {
                path: "general_settings.stream_keepalive_seconds".into(),
                message: format!("expected a non-negative number of seconds, got {keepalive}"),
            });
        }
        let retention_days = general.responses_retention_days.unwrap_or(30.0);
        if !(retention_days.is_finite() && retention_days > 0.0 && retention_days < 1e6) {
            return Err(ConfigError::Invalid {
                path: "general_settings.responses_retention_days".into(),
                message: format!("expected a positive number of days, got {retention_days}"),
            });
        }
        let allow_on_db_down = general.allow_requests_on_db_unavailable.unwrap_or(false)
            || env
                .flag("ALLOW_REQUESTS_ON_DB_UNAVAILABLE")
                .unwrap_or(false);
        Ok(GatewayConfig {
            path,
            deployments,
            disabled,
            ignored,
            max_request_bytes: (max_mb * 1024.0 * 1024.0) as usize,
            key_cache_ttl: Duration::from_secs_f64(ttl),
            stream_keepalive: (keepalive > 0.0).then(|| Duration::from_secs_f64(keepalive)),
            responses_retention: Duration::from_secs_f64(retention_days * 86_400.0),
            allow_requests_on_db_unavailable: allow_on_db_down,
            litellm,
            router,
            general,
            routing,
            master_key,
            database_url,
            redis_url,
            rag,
            data_dir,
        })
    }

    /// Group names in config order, without duplicates.
    pub fn model_names(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for d in &self.deployments {
            if !names.contains(&d.model_name) {
                names.push(d.model_name.clone());
            }
        }
        names
    }
}

fn redis_url(env: &Env<'_>, router: &RouterSettings) -> Option<String> {
    if let Some(url) = env.var("REDIS_URL").or(router.redis_url.clone()) {
        return Some(url);
    }
    let host = env.var("REDIS_HOST").or(router.redis_host.clone())?;
    let port = env
        .var("REDIS_PORT")
        .or(router.redis_port.map(|p| p.to_string()))
        .unwrap_or_else(|| "6379".into());
    let password = env.var("REDIS_PASSWORD").or(router.redis_password.clone());
    Some(match password {
        Some(pw) => format!("redis://:{pw}@{host}:{port}"),
        None => format!("redis://{host}:{port}"),
    })
}

fn routing_config(
    litellm: &LitellmSettings,
    router: &RouterSettings,
) -> Result<RoutingConfig, ConfigError> {
    let strategy = match router.routing_strategy.as_deref() {
        None | Some("simple-shuffle") => RoutingStrategy::SimpleShuffle,
        Some("least-busy") => RoutingStrategy::LeastBusy,
        Some("latency-based-routing") => RoutingStrategy::LatencyBased,
        Some("usage-based-routing") | Some("usage-based-routing-v2") => RoutingStrategy::UsageBased,
        Some(other) => {
            return Err(ConfigError::Invalid {
                path: "router_settings.routing_strategy".into(),
                message: format!(
                    "expected one of simple-shuffle, least-busy, latency-based-routing, usage-based-routing-v2; got \"{other}\""
                ),
            });
        }
    };
    let positive = |path: &str, v: Option<f64>| -> Result<Option<Duration>, ConfigError> {
        match v {
            None => Ok(None),
            Some(s) if s.is_finite() && s > 0.0 => Ok(Some(Duration::from_secs_f64(s))),
            Some(s) => Err(ConfigError::Invalid {
                path: path.into(),
                message: format!("expected a positive number of seconds, got {s}"),
            }),
        }
    };
    let timeout = match positive("router_settings.timeout", router.timeout)? {
        Some(t) => Some(t),
        None => positive("litellm_settings.request_timeout", litellm.request_timeout)?,
    };
    let stream_timeout = positive("router_settings.stream_timeout", router.stream_timeout)?;
    let cooldown = router.cooldown_time.unwrap_or(5.0);
    if !(cooldown.is_finite() && cooldown >= 0.0) {
        return Err(ConfigError::Invalid {
            path: "router_settings.cooldown_time".into(),
            message: format!("expected a non-negative number of seconds, got {cooldown}"),
        });
    }
    let retry_after = router.retry_after.unwrap_or(0.0).max(0.0);
    let pairs = |list: &Option<Vec<std::collections::BTreeMap<String, Vec<String>>>>| {
        list.iter()
            .flatten()
            .flat_map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())))
            .collect::<Vec<_>>()
    };
    let fallbacks = if router.fallbacks.is_some() {
        pairs(&router.fallbacks)
    } else {
        pairs(&litellm.fallbacks)
    };
    let context_window_fallbacks = if router.context_window_fallbacks.is_some() {
        pairs(&router.context_window_fallbacks)
    } else {
        pairs(&litellm.context_window_fallbacks)
    };
    Ok(RoutingConfig {
        strategy,
        // LiteLLM's Router retries twice unless told otherwise (openai.DEFAULT_MAX_RETRIES).
        num_retries: router.num_retries.or(litellm.num_retries).unwrap_or(2),
        timeout,
        stream_timeout,
        allowed_fails: router.allowed_fails.unwrap_or(3),
        cooldown_time: Duration::from_secs_f64(cooldown),
        retry_after: Duration::from_secs_f64(retry_after),
        fallbacks,
        context_window_fallbacks,
        default_fallbacks: router
            .default_fallbacks
            .clone()
            .or(litellm.default_fallbacks.clone())
            .unwrap_or_default(),
        drop_params: litellm.drop_params.unwrap_or(false),
        enforce_model_rate_limits: router
            .optional_pre_call_checks
            .iter()
            .flatten()
            .any(|c| c == "enforce_model_rate_limits"),
        enforce_fallback_model_access: false,
    })
}

fn build_deployments(
    list: Option<Value>,
    env: &Env<'_>,
    ignored: &mut Vec<String>,
) -> Result<(Vec<Arc<Deployment>>, Vec<DisabledDeployment>), ConfigError> {
    let entries = match list {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(entries)) => entries,
        Some(_) => {
            return Err(ConfigError::Invalid {
                path: "model_list".into(),
                message: "expected a list of deployments".into(),
            });
        }
    };
    let mut deployments = Vec::new();
    let mut disabled = Vec::new();
    for (index, mut entry) in entries.into_iter().enumerate() {
        let model_name = entry
            .get("model_name")
            .and_then(Value::as_str)
            .unwrap_or("(unnamed)")
            .to_string();
        let path = format!("model_list[{index}]");
        if let Err(unset) = resolve_env(&mut entry, env, &path) {
            let ConfigError::UnsetVariable { path, var } = unset else {
                return Err(unset);
            };
            disabled.push(DisabledDeployment {
                model_name,
                index,
                reason: format!("environment variable {var} is not set ({path})"),
                unset_variable: Some(var),
            });
            continue;
        }
        match deployment::build(index, &entry, ignored) {
            Ok(d) => deployments.push(Arc::new(d)),
            Err(deployment::DeploymentProblem::Disabled(reason)) => {
                disabled.push(DisabledDeployment {
                    model_name,
                    index,
                    reason,
                    unset_variable: None,
                })
            }
            Err(deployment::DeploymentProblem::Invalid { path, message }) => {
                return Err(ConfigError::Invalid { path, message });
            }
        }
    }
    Ok((deployments, disabled))
}

/// Reads one settings section: env references resolved (an unset one is an error), typed,
/// unknown keys recorded.
fn section<T: DeserializeOwned + Default>(
    root: &mut Map<String, Value>,
    name: &str,
    env: &Env<'_>,
    ignored: &mut Vec<String>,
) -> Result<T, ConfigError> {
    match root.remove(name) {
        None | Some(Value::Null) => Ok(T::default()),
        Some(mut value) => {
            resolve_env(&mut value, env, name)?;
            typed(&value, name, ignored)
                .map_err(|(path, message)| ConfigError::Invalid { path, message })
        }
    }
}

/// Deserializes `value`, naming the key path of a type error and collecting the paths of
/// keys the type does not know.
pub(crate) fn typed<T: DeserializeOwned>(
    value: &Value,
    base: &str,
    ignored: &mut Vec<String>,
) -> Result<T, (String, String)> {
    let mut track = serde_path_to_error::Track::new();
    let de = serde_path_to_error::Deserializer::new(value, &mut track);
    let result = serde_ignored::deserialize(de, |path| {
        ignored.push(join_path(base, &path.to_string()));
    });
    result.map_err(|e| {
        let path = join_path(base, &track.path().to_string());
        let message = e.to_string();
        // serde_json's messages end with " at line L column C", meaningless for a Value.
        let message = message
            .split(" at line ")
            .next()
            .unwrap_or(&message)
            .to_string();
        (path, message)
    })
}

fn join_path(base: &str, inner: &str) -> String {
    if inner.is_empty() || inner == "." {
        base.to_string()
    } else if inner.starts_with('[') {
        format!("{base}{inner}")
    } else {
        format!("{base}.{inner}")
    }
}

/// Replaces every `os.environ/NAME` string in a tree with the variable's value.
fn resolve_env(value: &mut Value, env: &Env<'_>, path: &str) -> Result<(), ConfigError> {
    match value {
        Value::String(s) => {
            if let Some(name) = s.strip_prefix("os.environ/") {
                let name = name.trim();
                match env.var(name) {
                    Some(v) => *s = v,
                    None => {
                        return Err(ConfigError::UnsetVariable {
                            path: path.to_string(),
                            var: name.to_string(),
                        });
                    }
                }
            }
            Ok(())
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                resolve_env(item, env, &format!("{path}[{i}]"))?;
            }
            Ok(())
        }
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                resolve_env(v, env, &format!("{path}.{k}"))?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn parse_yaml(text: &str, path: &str) -> Result<Value, ConfigError> {
    if text.trim().is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    let value: Value = serde_norway::from_str(text).map_err(|e| ConfigError::Yaml {
        path: path.to_string(),
        reason: e.to_string(),
    })?;
    Ok(match value {
        Value::Null => Value::Object(Map::new()),
        other => other,
    })
}

fn read_yaml(path: &Path) -> Result<Value, ConfigError> {
    let display = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
        path: display.clone(),
        reason: e.to_string(),
    })?;
    parse_yaml(&text, &display)
}

/// Reads a config and merges its `include:` files: their `model_list`s are appended, and
/// sections the main file lacks are taken from them (LiteLLM's behaviour).
fn read_with_includes(path: &Path) -> Result<Value, ConfigError> {
    let mut root = read_yaml(path)?;
    let Some(Value::Object(map)) = Some(&mut root) else {
        return Ok(root);
    };
    let includes = match map.remove("include") {
        None | Some(Value::Null) => return Ok(root),
        Some(Value::Array(items)) => items,
        Some(Value::String(one)) => vec![Value::String(one)],
        Some(_) => {
            return Err(ConfigError::Invalid {
                path: "include".into(),
                message: "expected a list of file paths".into(),
            });
        }
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    for (i, inc) in includes.into_iter().enumerate() {
        let Value::String(file) = inc else {
            return Err(ConfigError::Invalid {
                path: format!("include[{i}]"),
                message: "expected a file path".into(),
            });
        };
        let included = read_yaml(&dir.join(&file))?;
        let Value::Object(inc_map) = included else {
            continue;
        };
        for (key, value) in inc_map {
            match (key.as_str(), map.get_mut(&key)) {
                ("model_list", Some(Value::Array(existing))) => {
                    if let Value::Array(more) = value {
                        existing.extend(more);
                    }
                }
                (_, Some(_)) => {}
                (_, None) => {
                    map.insert(key, value);
                }
            }
        }
    }
    Ok(root)
}

#[cfg(test)]
mod tests;
