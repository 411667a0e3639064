//! Roles: which caller may call which management route, by LiteLLM's rules (its
//! `LiteLLMRoutes` lists and `RouteChecks.non_proxy_admin_allowed_routes_check`), so that a
//! key keeps exactly the rights it had under LiteLLM. The table, with the source of each row,
//! is in `docs/spec/keys-and-spend.md`; the handlers narrow further what a permitted caller
//! sees (its own keys, its own user, its team).
//!
//! A caller's role is the `user_role` of its key's user (`"LiteLLM_UserTable"`); the master
//! key is a proxy admin. A key without a user, or whose user has no role, may call the LLM
//! and info routes only.

use std::sync::Arc;

use axum::http::Method;

use crate::caller::Caller;
use crate::error::{ApiError, ErrorKind};
use crate::keys::KeyInfo;

/// LiteLLM's user roles (`LitellmUserRoles`) that decide route access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `proxy_admin`: everything.
    ProxyAdmin,
    /// `proxy_admin_viewer`: reads everything, writes nothing, calls no model.
    ProxyAdminViewer,
    /// `internal_user`: its own keys and user, the LLM routes.
    InternalUser,
    /// `internal_user_viewer`: reads its own keys and user, the LLM routes.
    InternalUserViewer,
    /// `team`: a team's service account; the LLM and info routes.
    Team,
    /// `customer`: an end user; the LLM and info routes.
    Customer,
}

impl Role {
    /// Every role, in LiteLLM's order (for validation messages).
    pub const ALL: [Role; 6] = [
        Role::ProxyAdmin,
        Role::ProxyAdminViewer,
        Role::InternalUser,
        Role::InternalUserViewer,
        Role::Team,
        Role::Customer,
    ];

    /// LiteLLM's spelling, as stored in `user_role`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::ProxyAdmin => "proxy_admin",
            Role::ProxyAdminViewer => "proxy_admin_viewer",
            Role::InternalUser => "internal_user",
            Role::InternalUserViewer => "internal_user_viewer",
            Role::Team => "team",
            Role::Customer => "customer",
        }
    }

    /// A stored or requested role; `None` for anything else.
    pub fn parse(text: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == text)
    }
}

/// Routes any key may call; the handler scopes what it answers (LiteLLM's `info_routes`).
const INFO_ROUTES: &[&str] = &[
    "/key/info",
    "/key/health",
    "/team/info",
    "/team/list",
    "/v2/team/list",
    "/team/available",
    "/user/info",
    "/v2/user/info",
    "/model/info",
    "/v1/model/info",
    "/v2/model/info",
    "/v2/key/info",
    "/model_group/info",
    "/health",
    "/key/list",
    "/models",
    "/v1/models",
];

/// Key routes (LiteLLM's `key_management_routes`): internal users call them for their own keys.
const KEY_MANAGEMENT_ROUTES: &[&str] = &[
    "/key/generate",
    "/key/update",
    "/key/delete",
    "/key/info",
    "/key/regenerate",
    "/key/service-account/generate",
    "/key/{key_id}/regenerate",
    "/key/list",
    "/key/block",
    "/key/unblock",
    "/key/bulk_update",
    "/team/key/bulk_update",
    "/team/daily/activity",
    "/spend/logs",
    "/spend/logs/v2",
    "/key/{key_id}/reset_spend",
    "/key/aliases",
];

/// LiteLLM's `spend_tracking_routes`.
const SPEND_TRACKING_ROUTES: &[&str] = &[
    "/spend/keys",
    "/spend/users",
    "/spend/tags",
    "/spend/calculate",
    "/spend/logs",
    "/spend/logs/v2",
    "/spend/logs/ui",
    "/spend/logs/session/ui",
    "/cost/estimate",
];

/// Further routes of LiteLLM's `internal_user_routes` (with the key and spend routes).
const INTERNAL_USER_EXTRA_ROUTES: &[&str] = &[
    "/global/activity",
    "/global/activity/model",
    "/global/activity/cache_hits",
    "/tag/daily/activity",
    "/tag/list",
    "/v1/models/{model_id}",
    "/models/{model_id}",
];

/// Routes whose handler decides who may call them (LiteLLM's `self_managed_routes`): team
/// admins manage their team's members.
const SELF_MANAGED_ROUTES: &[&str] = &[
    "/team/member_add",
    "/team/member_delete",
    "/team/member_update",
    "/team/{team_id}/members/me",
    "/model/new",
    "/model/update",
    "/model/delete",
    "/user/daily/activity",
    "/user/available_roles",
    "/user/list",
    "/model/{model_id}/update",
];

/// Writes a `proxy_admin_viewer` never makes, whatever the method (LiteLLM's
/// `_ADMIN_VIEWER_BLOCKED_WRITE_ROUTES` and `_PROXY_ADMIN_VIEW_ONLY_BLOCKED_ROUTES`).
const VIEWER_BLOCKED_ROUTES: &[&str] = &[
    "/user/new",
    "/user/delete",
    "/user/bulk_update",
    "/team/new",
    "/team/update",
    "/team/delete",
    "/team/block",
    "/team/unblock",
    "/model/new",
    "/model/update",
    "/model/delete",
    "/key/generate",
    "/key/update",
    "/key/delete",
    "/key/regenerate",
    "/key/service-account/generate",
    "/key/block",
    "/key/unblock",
    "/key/bulk_update",
    "/team/key/bulk_update",
    "/key/{key_id}/regenerate",
    "/key/{key_id}/reset_spend",
];

/// POST routes that only read, open to a `proxy_admin_viewer` (LiteLLM's
/// `admin_viewer_routes` and `global_spend_tracking_routes`).
const VIEWER_READ_ROUTES: &[&str] = &[
    "/user/list",
    "/user/available_roles",
    "/user/daily/activity",
    "/team/daily/activity",
    "/customer/list",
    "/customer/info",
    "/spend/calculate",
    "/global/spend/logs",
    "/global/spend",
    "/global/spend/keys",
    "/global/spend/teams",
    "/global/spend/end_users",
    "/global/spend/models",
    "/global/spend/report",
    "/global/spend/provider",
    "/global/spend/tags",
];

/// LiteLLM's `management_routes` (with [`KEY_MANAGEMENT_ROUTES`]): what a key of
/// `key_type: management` may call.
const MANAGEMENT_ROUTES: &[&str] = &[
    "/user/new",
    "/user/update",
    "/user/delete",
    "/user/info",
    "/team/new",
    "/team/update",
    "/team/delete",
    "/team/list",
    "/v2/team/list",
    "/team/info",
    "/team/block",
    "/team/unblock",
    "/team/available",
    "/team/permissions_list",
    "/team/permissions_update",
    "/model/new",
    "/model/update",
    "/model/delete",
    "/model/info",
];

/// The model listing routes, which LiteLLM counts among its `openai_routes`.
const MODEL_LIST_ROUTES: &[&str] = &["/models", "/v1/models", "/models/*", "/v1/models/*"];

/// Whether a key whose `allowed_routes` is `allowed` may call `route`: every route when the list
/// is empty; else a listed path or `*` pattern, or a route of a listed LiteLLM route group
/// (`RouteChecks.is_virtual_key_allowed_to_call_route`).
pub fn allowed_route(allowed: &[String], route: &str) -> bool {
    allowed.is_empty()
        || allowed.iter().any(|entry| match entry.as_str() {
            "llm_api_routes" | "openai_routes" => {
                is_llm_route(route) || in_list(route, MODEL_LIST_ROUTES)
            }
            "info_routes" => in_list(route, INFO_ROUTES),
            "management_routes" => {
                in_list(route, MANAGEMENT_ROUTES) || in_list(route, KEY_MANAGEMENT_ROUTES)
            }
            "key_management_routes" => in_list(route, KEY_MANAGEMENT_ROUTES),
            "spend_tracking_routes" => in_list(route, SPEND_TRACKING_ROUTES),
            pattern => route_matches(route, pattern),
        })
}

/// 403, LiteLLM's words, when a key's `allowed_routes` do not include the route. The master
/// key is never restricted.
pub fn check_allowed_routes(caller: &Caller, route: &str) -> Result<(), ApiError> {
    match caller {
        Caller::Key(key) if !allowed_route(&key.allowed_routes, route) => Err(ApiError::new(
            ErrorKind::Permission,
            format!(
                "Virtual key is not allowed to call this route. Only allowed to call routes: {:?}. Tried to call route: {route}",
                key.allowed_routes
            ),
        )),
        _ => Ok(()),
    }
}

/// Routes for the master key alone, not even an admin user's key (LiteLLM's
/// `master_key_only_routes`).
const MASTER_KEY_ONLY_ROUTES: &[&str] = &["/global/spend/reset"];

/// Whether `route` matches a LiteLLM route pattern: exactly, by a `*` suffix, or with `{name}`
/// standing for one path segment.
pub fn route_matches(route: &str, pattern: &str) -> bool {
    if let Some(prefix) = pattern.strip_suffix('*') {
        return route.starts_with(prefix);
    }
    if !pattern.contains('{') {
        return route == pattern;
    }
    let mut route_parts = route.split('/');
    let mut pattern_parts = pattern.split('/');
    loop {
        match (route_parts.next(), pattern_parts.next()) {
            (None, None) => return true,
            (Some(r), Some(p)) if p.starts_with('{') && p.ends_with('}') => {
                if r.is_empty() {
                    return false;
                }
            }
            (Some(r), Some(p)) if r == p => {}
            _ => return false,
        }
    }
}

fn in_list(route: &str, list: &[&str]) -> bool {
    list.iter().any(|pattern| route_matches(route, pattern))
}

/// Whether the route is one of the LLM (data-plane) routes.
pub fn is_llm_route(route: &str) -> bool {
    let route = route.strip_prefix("/v1").unwrap_or(route);
    matches!(
        route,
        "/chat/completions"
            | "/chat/completions/"
            | "/completions"
            | "/embeddings"
            | "/messages"
            | "/messages/count_tokens"
            | "/responses"
            | "/rag/search"
            | "/rag/upsert"
            | "/rag/delete"
            | "/rag/points"
    ) || route.starts_with("/responses/")
        || route.starts_with("/engines/")
        || route.starts_with("/openai/deployments/")
}

/// LiteLLM's masking of a user id in errors: the first six and last two characters.
fn mask_user_id(user_id: &str) -> String {
    let chars: Vec<char> = user_id.chars().collect();
    if chars.len() <= 4 {
        return "***".to_string();
    }
    if chars.len() <= 8 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..6].iter().collect();
    let tail: String = chars[chars.len() - 2..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 8))
}

/// An authenticated caller of a management route, with its role.
#[derive(Debug, Clone)]
pub struct Principal {
    pub caller: Caller,
    /// The role of the key's user; the master key (and unauthenticated use, when allowed) is
    /// `ProxyAdmin`; `None` for a key without a user or role.
    pub role: Option<Role>,
}

impl Principal {
    pub fn new(caller: Caller) -> Self {
        let role = match &caller {
            Caller::Master | Caller::Anonymous => Some(Role::ProxyAdmin),
            Caller::Key(key) => key
                .user
                .as_ref()
                .and_then(|u| u.user_role.as_deref())
                .and_then(Role::parse),
        };
        Principal { caller, role }
    }

    /// The master key, or a key of a `proxy_admin` user.
    pub fn is_proxy_admin(&self) -> bool {
        self.role == Some(Role::ProxyAdmin)
    }

    /// May read everything: a proxy admin or a `proxy_admin_viewer`.
    pub fn reads_everything(&self) -> bool {
        matches!(self.role, Some(Role::ProxyAdmin | Role::ProxyAdminViewer))
    }

    /// The calling key, unless the caller is the master key.
    pub fn key(&self) -> Option<&Arc<KeyInfo>> {
        self.caller.key()
    }

    /// The user id of the calling key.
    pub fn user_id(&self) -> Option<&str> {
        self.key().and_then(|k| k.user_id.as_deref())
    }

    /// The team id of the calling key.
    pub fn team_id(&self) -> Option<&str> {
        self.key().and_then(|k| k.team_id.as_deref())
    }

    fn role_text(&self) -> &'static str {
        self.role.map_or("unknown", Role::as_str)
    }

    /// 401, LiteLLM's words for a route that needs a proxy admin.
    pub fn admin_only(&self, route: &str) -> ApiError {
        let user_id = self.user_id().map_or("unknown".to_string(), mask_user_id);
        ApiError::auth(format!(
            "Only proxy admin can be used to generate, delete, update info for new keys/users/teams. Route={route}. Your role={}. Your user_id={user_id}",
            self.role_text()
        ))
    }

    /// 403, LiteLLM's words for a write by a viewer.
    fn viewer_refused(&self, route: &str) -> ApiError {
        ApiError::new(
            ErrorKind::Permission,
            format!(
                "user not allowed to access this route, role= {}. Trying to access: {route}",
                self.role_text()
            ),
        )
    }

    /// Whether the caller may call `route` (the path as requested) with `method`, before the
    /// handler's own scoping. The key's `allowed_routes` is checked where every route is, by
    /// the caller's extraction.
    pub fn check_route(&self, route: &str, method: &Method) -> Result<(), ApiError> {
        if let Caller::Key(key) = &self.caller
            && key.unverified
        {
            return Err(ApiError::new(
                ErrorKind::Permission,
                "The key could not be verified (the key database is unavailable); management routes need a verified key.",
            ));
        }
        if in_list(route, MASTER_KEY_ONLY_ROUTES) {
            return match self.caller {
                Caller::Master | Caller::Anonymous => Ok(()),
                Caller::Key(_) => Err(ApiError::new(
                    ErrorKind::Permission,
                    format!("Only the master key may call {route}."),
                )),
            };
        }
        if self.is_proxy_admin() || in_list(route, INFO_ROUTES) {
            return Ok(());
        }
        match self.role {
            Some(Role::ProxyAdminViewer) => {
                if in_list(route, VIEWER_BLOCKED_ROUTES) {
                    return Err(self.viewer_refused(route));
                }
                let reads = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
                // `/user/update` is allowed at the door; its handler lets a viewer change only
                // `user_email` and `password`, as LiteLLM does.
                if reads || route == "/user/update" || in_list(route, VIEWER_READ_ROUTES) {
                    return Ok(());
                }
                return Err(self.viewer_refused(route));
            }
            Some(Role::InternalUser)
                if in_list(route, KEY_MANAGEMENT_ROUTES)
                    || in_list(route, SPEND_TRACKING_ROUTES)
                    || in_list(route, INTERNAL_USER_EXTRA_ROUTES) =>
            {
                return Ok(());
            }
            Some(Role::InternalUserViewer) if in_list(route, SPEND_TRACKING_ROUTES) => {
                return Ok(());
            }
            _ => {}
        }
        if in_list(route, SELF_MANAGED_ROUTES) {
            return Ok(());
        }
        Err(self.admin_only(route))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{KeyRecord, UserRow};
    use crate::keys::UserInfo;

    /// A key whose user has `role` (`None`: a key without a user).
    fn key_of(role: Option<&str>) -> Principal {
        let record = KeyRecord {
            token: "t".into(),
            key_name: None,
            key_alias: None,
            spend: 0.0,
            max_budget: None,
            budget_duration: None,
            budget_reset_at: None,
            expires: None,
            models: Vec::new(),
            rpm_limit: None,
            tpm_limit: None,
            max_parallel_requests: None,
            metadata: serde_json::json!({}),
            blocked: false,
            user_id: role.map(|_| "user-12345678".to_string()),
            team_id: None,
            created_at: None,
            updated_at: None,
            ..KeyRecord::default()
        };
        let user = role.map(|r| {
            UserInfo::new(
                UserRow {
                    user_id: "user-12345678".into(),
                    user_role: Some(r.to_string()),
                    ..UserRow::default()
                },
                Arc::default(),
                0.0,
            )
        });
        let info = KeyInfo::new(record, None, Arc::default(), 0.0).with_user(user);
        Principal::new(Caller::Key(Arc::new(info)))
    }

    fn status(p: &Principal, method: Method, route: &str) -> u16 {
        match p.check_route(route, &method) {
            Ok(()) => 200,
            Err(e) => e.status().as_u16(),
        }
    }

    const WRITES: &[&str] = &[
        "/team/new",
        "/team/update",
        "/team/delete",
        "/team/block",
        "/team/model/add",
        "/user/new",
        "/user/delete",
        "/customer/new",
        "/customer/block",
        "/end_user/new",
        "/budget/new",
        "/budget/delete",
    ];

    #[test]
    fn the_master_key_and_proxy_admins_call_every_management_route() {
        for p in [Principal::new(Caller::Master), key_of(Some("proxy_admin"))] {
            for route in WRITES
                .iter()
                .chain(&["/key/generate", "/key/abc/regenerate"])
            {
                assert_eq!(status(&p, Method::POST, route), 200, "{route}");
            }
        }
    }

    #[test]
    fn only_the_master_key_resets_global_spend() {
        assert_eq!(
            status(
                &Principal::new(Caller::Master),
                Method::POST,
                "/global/spend/reset"
            ),
            200
        );
        assert_eq!(
            status(
                &key_of(Some("proxy_admin")),
                Method::POST,
                "/global/spend/reset"
            ),
            403
        );
    }

    #[test]
    fn a_viewer_reads_everything_and_writes_nothing() {
        let viewer = key_of(Some("proxy_admin_viewer"));
        assert!(viewer.reads_everything() && !viewer.is_proxy_admin());
        for route in [
            "/team/list",
            "/user/list",
            "/customer/list",
            "/budget/list",
            "/key/list",
        ] {
            assert_eq!(status(&viewer, Method::GET, route), 200, "{route}");
        }
        for route in ["/customer/info", "/customer/list", "/spend/calculate"] {
            assert_eq!(status(&viewer, Method::POST, route), 200, "{route}");
        }
        for route in WRITES
            .iter()
            .chain(&["/key/generate", "/key/delete", "/key/abc/regenerate"])
        {
            assert_eq!(status(&viewer, Method::POST, route), 403, "{route}");
        }
        // A write not on LiteLLM's lists is refused too: the role never writes.
        assert_eq!(status(&viewer, Method::POST, "/budget/info"), 403);
        // `/user/update` passes the door; its handler allows only email and password.
        assert_eq!(status(&viewer, Method::POST, "/user/update"), 200);
    }

    #[test]
    fn an_internal_user_calls_the_key_and_spend_routes_and_no_admin_route() {
        let user = key_of(Some("internal_user"));
        for route in [
            "/key/generate",
            "/key/update",
            "/key/delete",
            "/key/block",
            "/key/abc/regenerate",
            "/spend/logs",
        ] {
            assert_eq!(status(&user, Method::POST, route), 200, "{route}");
        }
        for route in WRITES.iter().chain(&["/user/update", "/customer/list"]) {
            assert_eq!(status(&user, Method::POST, route), 401, "{route}");
        }
        let e = user.check_route("/team/new", &Method::POST).unwrap_err();
        let body = e.body_json();
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("Only proxy admin"), "{message}");
        assert!(message.contains("Your role=internal_user"), "{message}");
        assert!(
            !message.contains("user-12345678"),
            "the user id is masked: {message}"
        );
    }

    #[test]
    fn an_internal_viewer_reads_spend_and_manages_no_key() {
        let viewer = key_of(Some("internal_user_viewer"));
        assert_eq!(status(&viewer, Method::GET, "/spend/logs"), 200);
        for route in WRITES.iter().chain(&["/key/generate", "/key/delete"]) {
            assert_eq!(status(&viewer, Method::POST, route), 401, "{route}");
        }
    }

    #[test]
    fn any_key_calls_the_info_and_self_managed_routes_which_scope_themselves() {
        for p in [key_of(None), key_of(Some("team")), key_of(Some("customer"))] {
            for route in [
                "/key/info",
                "/team/info",
                "/team/list",
                "/user/info",
                "/key/list",
            ] {
                assert_eq!(status(&p, Method::GET, route), 200, "{route}");
            }
            for route in [
                "/team/member_add",
                "/team/member_update",
                "/team/member_delete",
            ] {
                assert_eq!(status(&p, Method::POST, route), 200, "{route}");
            }
            for route in WRITES.iter().chain(&["/key/generate", "/key/delete"]) {
                assert_eq!(status(&p, Method::POST, route), 401, "{route}");
            }
        }
    }

    #[test]
    fn a_key_let_through_without_the_database_manages_nothing() {
        let info = KeyInfo::unverified("t".into(), Arc::default());
        let p = Principal::new(Caller::Key(Arc::new(info)));
        assert_eq!(status(&p, Method::GET, "/key/info"), 403);
    }

    #[test]
    fn patterns_match_one_segment_per_placeholder_and_a_prefix_per_star() {
        assert!(route_matches(
            "/key/abc/regenerate",
            "/key/{key_id}/regenerate"
        ));
        assert!(!route_matches(
            "/key/regenerate",
            "/key/{key_id}/regenerate"
        ));
        assert!(!route_matches(
            "/key/a/b/regenerate",
            "/key/{key_id}/regenerate"
        ));
        assert!(route_matches("/scim/v2/Users", "/scim/v2/*"));
        assert!(route_matches("/team/new", "/team/new"));
        assert!(!route_matches("/team/newer", "/team/new"));
    }

    #[test]
    fn roles_read_as_litellm_spells_them() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("admin"), None);
    }

    #[test]
    fn user_ids_in_errors_are_masked() {
        assert_eq!(mask_user_id("abc"), "***");
        assert_eq!(mask_user_id("user-12345678"), "user-1*****78");
    }
}
