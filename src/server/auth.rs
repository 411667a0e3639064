//! Who is calling, as axum extractors: handlers state the permission they need in their
//! signature: [`Caller`] for any valid key (the LLM routes), [`Managed`] for a management
//! route the caller's role may call (the handler scopes what it does), [`Admin`] for one only
//! a proxy admin may call. The rules are in [`crate::roles`].

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;

use crate::caller::Caller;
use crate::error::{ApiError, ErrorKind};
use crate::gateway::AppState;
use crate::roles::{Principal, check_allowed_routes};
use crate::server::ServerState;

/// The key presented by a client: LiteLLM's `x-litellm-api-key` (which wins, as in LiteLLM:
/// it lets `Authorization` carry something else), `Authorization: Bearer`, `x-api-key`
/// (Anthropic's clients) or `api-key` (Azure's).
pub fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(key) = headers
        .get("x-litellm-api-key")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim())
        .map(|v| v.strip_prefix("Bearer ").unwrap_or(v).trim())
        .filter(|k| !k.is_empty())
    {
        return Some(key);
    }
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

impl FromRequestParts<ServerState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ServerState,
    ) -> Result<Self, Self::Rejection> {
        let caller = authenticate(&state.gateway, &parts.headers).await?;
        check_allowed_routes(&caller, parts.uri.path())?;
        Ok(caller)
    }
}

/// A caller whose role may call this management route (by path and method); the handler
/// narrows what it may do there.
#[derive(Debug, Clone)]
pub struct Managed(pub Principal);

impl FromRequestParts<ServerState> for Managed {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ServerState,
    ) -> Result<Self, Self::Rejection> {
        let caller = authenticate(&state.gateway, &parts.headers).await?;
        check_allowed_routes(&caller, parts.uri.path())?;
        let principal = Principal::new(caller);
        principal.check_route(parts.uri.path(), &parts.method)?;
        Ok(Managed(principal))
    }
}

/// A proxy admin: the master key or a key of a `proxy_admin` user.
#[derive(Debug, Clone)]
pub struct Admin(pub Principal);

impl FromRequestParts<ServerState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ServerState,
    ) -> Result<Self, Self::Rejection> {
        let Managed(principal) = Managed::from_request_parts(parts, state).await?;
        if !principal.is_proxy_admin() {
            return Err(principal.admin_only(parts.uri.path()));
        }
        Ok(Admin(principal))
    }
}
