//! Who is calling: the master key, a virtual key, or nobody (only when the operator allowed
//! unauthenticated use). Handlers state the permission they need in their signature:
//! [`Caller`] for any valid key, [`MasterKey`] for admin routes.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;

use super::state::AppState;
use crate::config::GatewayConfig;
use crate::error::{ApiError, ErrorKind};
use crate::keys::KeyInfo;
use crate::limits::{LimitRequest, LimitScope};

/// An authenticated caller of the LLM and RAG routes.
#[derive(Debug, Clone)]
pub enum Caller {
    /// The master key: every model, every namespace.
    Master,
    /// No master key configured and `--allow-unauthenticated` given.
    Anonymous,
    /// A virtual key from the key store.
    Key(Arc<KeyInfo>),
}

impl Caller {
    /// Whether the caller may use a model group. Checked before the model's existence, so a
    /// key cannot probe which names exist.
    pub fn check_model(&self, model: &str) -> Result<(), ApiError> {
        match self {
            Caller::Master | Caller::Anonymous => Ok(()),
            Caller::Key(key) if key.unverified => Ok(()),
            Caller::Key(key) => key.check_model(model).map_err(ApiError::from),
        }
    }

    /// Spend at or over the key's budget: 400 `budget_exceeded`.
    pub fn check_budget(&self) -> Result<(), ApiError> {
        match self {
            Caller::Master | Caller::Anonymous => Ok(()),
            Caller::Key(key) => key.check_budget().map_err(ApiError::from),
        }
    }

    /// The limits this caller's request counts against (key, team, gateway-wide).
    pub fn limit_requests(
        &self,
        config: &GatewayConfig,
        estimated_tokens: u64,
    ) -> Vec<LimitRequest> {
        let mut out = Vec::new();
        if let Caller::Key(key) = self
            && !key.unverified
        {
            let limit = |v: Option<i64>| v.and_then(|n| u64::try_from(n).ok());
            out.push(
                LimitRequest::new(LimitScope::Key(key.token.clone()))
                    .rpm(limit(key.rpm_limit))
                    .tpm(limit(key.tpm_limit))
                    .max_parallel(limit(key.max_parallel_requests.map(i64::from)))
                    .estimated_tokens(estimated_tokens),
            );
            if let (Some(team_id), Some(team)) = (&key.team_id, &key.team) {
                out.push(
                    LimitRequest::new(LimitScope::Team(team_id.clone()))
                        .rpm(limit(team.rpm_limit))
                        .tpm(limit(team.tpm_limit))
                        .max_parallel(limit(team.max_parallel_requests.map(i64::from)))
                        .estimated_tokens(estimated_tokens),
                );
            }
        }
        if let Some(max) = config.general.global_max_parallel_requests {
            out.push(
                LimitRequest::new(LimitScope::Global)
                    .max_parallel(Some(u64::from(max)))
                    .estimated_tokens(estimated_tokens),
            );
        }
        out
    }

    /// A label for logs: never the key itself.
    pub fn label(&self) -> &str {
        match self {
            Caller::Master => "master",
            Caller::Anonymous => "anonymous",
            Caller::Key(key) => key
                .key_alias
                .as_deref()
                .or(key.key_name.as_deref())
                .unwrap_or("key"),
        }
    }

    /// What the access log says about the caller (alias, team, user; never the key).
    pub fn log_info(&self) -> crate::server::access_log::RequestLogInfo {
        let mut info = crate::server::access_log::RequestLogInfo {
            key_alias: Some(self.label().to_string()),
            ..Default::default()
        };
        if let Caller::Key(key) = self {
            info.team_id = key.team_id.clone();
            info.user_id = key.user_id.clone();
        }
        info
    }

    /// The virtual key, when the caller is one.
    pub fn key(&self) -> Option<&Arc<KeyInfo>> {
        match self {
            Caller::Key(key) => Some(key),
            _ => None,
        }
    }
}

/// The key presented by a client: `Authorization: Bearer`, `x-api-key` or `api-key`.
pub fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(value) = headers.get("authorization").and_then(|v| v.to_str().ok()) {
        let value = value.trim();
        let key = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .unwrap_or(value)
            .trim();
        if !key.is_empty() {
            return Some(key);
        }
    }
    ["x-api-key", "api-key"]
        .iter()
        .filter_map(|name| headers.get(*name).and_then(|v| v.to_str().ok()))
        .map(str::trim)
        .find(|k| !k.is_empty())
}

/// Resolves the caller of a request.
pub async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<Caller, ApiError> {
    let runtime = state.runtime();
    let master = runtime.config.master_key.as_ref();
    let Some(key) = presented_key(headers) else {
        if master.is_none() && state.allow_unauthenticated {
            return Ok(Caller::Anonymous);
        }
        return Err(ApiError::auth(
            "No API key provided. Pass it as 'Authorization: Bearer <key>'.",
        ));
    };
    if let Some(master) = master
        && master.matches(key)
    {
        return Ok(Caller::Master);
    }
    if master.is_none() && state.allow_unauthenticated {
        return Ok(Caller::Anonymous);
    }
    match state.keys() {
        Some(keys) => keys.authenticate(key).await.map(Caller::Key),
        None => Err(ApiError::new(
            ErrorKind::Unavailable,
            "The key store is not available yet; try again shortly.",
        )),
    }
}

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        authenticate(state, &parts.headers).await
    }
}

/// The master key, required by admin routes (`/key/*`).
#[derive(Debug, Clone, Copy)]
pub struct MasterKey;

impl FromRequestParts<Arc<AppState>> for MasterKey {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        match authenticate(state, &parts.headers).await? {
            Caller::Master | Caller::Anonymous => Ok(MasterKey),
            Caller::Key(_) => Err(ApiError::auth("This route needs the master key.")),
        }
    }
}
