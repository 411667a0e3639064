//! The `hx-gateway` commands, each a client of the library below: [`serve`] (the gateway as a
//! service), [`check`] (validate a config and probe its dependencies), [`smoke`] (exercise a
//! running gateway), [`migrate`] (the key store's schema) and [`ingest`] (`rag ingest`, a client
//! of a running gateway). [`cli`] holds the flags they share; the config source and start
//! errors live here because `serve`, `check` and `migrate` all load the config the same way.

pub mod check;
pub mod cli;
pub mod ingest;
pub mod migrate;
pub mod serve;
pub mod smoke;

use std::collections::HashMap;
use std::path::PathBuf;

use crate::config::{ConfigError, EnvSource, GatewayConfig};

/// Why the gateway could not start; printed in plain words by `main`.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error(
        "no master key is configured (general_settings.master_key or LITELLM_MASTER_KEY); \
         set one, or pass --allow-unauthenticated (or HX_ALLOW_UNAUTHENTICATED=1) to serve without auth"
    )]
    NoMasterKey,
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("TLS: {0}")]
    Tls(String),
    #[error("{0}")]
    Other(String),
}

/// Where the config comes from, kept for reloads.
#[derive(Clone)]
pub struct ConfigSource {
    pub path: Option<PathBuf>,
    pub env_file: HashMap<String, String>,
}

impl ConfigSource {
    pub fn load(&self, env: &dyn EnvSource) -> Result<GatewayConfig, ConfigError> {
        match &self.path {
            Some(path) => GatewayConfig::load(path, env, self.env_file.clone()),
            None => GatewayConfig::empty(env, self.env_file.clone()),
        }
    }
}

/// Logs, once, what the config carried that HX does not use, and what it disabled.
pub fn report_config(config: &GatewayConfig) {
    if !config.ignored.is_empty() {
        tracing::warn!(keys = %config.ignored.join(", "), "config keys ignored (not used by HX Gateway)");
    }
    for d in &config.disabled {
        tracing::warn!(model_name = %d.model_name, index = d.index, reason = %d.reason, "deployment disabled");
    }
}
