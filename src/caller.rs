//! Who is calling: the master key, a virtual key, or nobody (only when the operator allowed
//! unauthenticated use), and what that caller may do (models, budget, the limits it counts
//! against). Below the HTTP layer so the pipeline and RAG routes check the same things; the
//! axum extractors that produce a [`Caller`] are in `server::auth`.

use std::sync::Arc;

use crate::config::GatewayConfig;
use crate::error::{ApiError, ErrorKind};
use crate::keys::KeyInfo;
use crate::limits::{LimitRequest, LimitScope};

/// LiteLLM's read-only admin role (`roles::Role::ProxyAdminViewer`; spelled here because
/// `roles` sits above this module).
const VIEWER: &str = "proxy_admin_viewer";

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
    /// Whether the caller may call a model group. Checked before the model's existence, so a
    /// key cannot probe which names exist. A `proxy_admin_viewer`'s key calls no model at all
    /// (403): the role reads, it never spends (LiteLLM's `_check_proxy_admin_viewer_access`).
    /// `access_groups` are the model's `model_info.access_groups` (a key listing one of them may
    /// use it).
    pub fn check_model(&self, model: &str, access_groups: &[String]) -> Result<(), ApiError> {
        if let Caller::Key(key) = self
            && key.user.as_ref().and_then(|u| u.user_role.as_deref()) == Some(VIEWER)
        {
            return Err(ApiError::new(
                ErrorKind::Permission,
                format!("user not allowed to access this OpenAI routes, role= {VIEWER}"),
            ));
        }
        self.may_see_model(model, access_groups)
    }

    /// Whether a model group is within the caller's model lists (what `/v1/models` shows;
    /// no role check).
    pub fn may_see_model(&self, model: &str, access_groups: &[String]) -> Result<(), ApiError> {
        match self {
            Caller::Master | Caller::Anonymous => Ok(()),
            Caller::Key(key) if key.unverified => Ok(()),
            Caller::Key(key) => key
                .check_model_in(model, access_groups)
                .map_err(ApiError::from),
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

    /// The virtual key, when the caller is one.
    pub fn key(&self) -> Option<&Arc<KeyInfo>> {
        match self {
            Caller::Key(key) => Some(key),
            _ => None,
        }
    }
}
