//! `/user/*`: internal users as LiteLLM's user endpoints read and write them. A user's
//! `models`, `max_budget` and `budget_duration` bind the user's personal keys (enforced
//! through [`crate::keys::KeyInfo`]); its `user_role` decides which management routes its
//! keys may call ([`crate::roles`]).

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::teams::{Member, MemberAddRequest, MemberRole, Members, Teams};
use super::{check_duration, forbidden, next_reset, non_negative, non_negative_int, store};
use crate::changes::Change;
use crate::db::UserRecord;
use crate::error::{ApiError, ErrorKind};
use crate::keys::{GenerateKeyRequest, KeyService, now, nullable, timestamp};
use crate::roles::{Principal, Role};

/// `POST /user/new`.
#[derive(Debug, Default, Deserialize)]
pub struct NewUserRequest {
    pub user_id: Option<String>,
    pub user_email: Option<String>,
    pub user_alias: Option<String>,
    pub user_role: Option<String>,
    /// Teams the user joins (as a member with role `user`).
    pub teams: Option<Vec<String>>,
    pub max_budget: Option<f64>,
    pub budget_duration: Option<String>,
    pub models: Option<Vec<String>>,
    pub tpm_limit: Option<i64>,
    pub rpm_limit: Option<i64>,
    pub max_parallel_requests: Option<i32>,
    pub metadata: Option<Map<String, Value>>,
    /// Create a key for the user (LiteLLM's default: yes).
    pub auto_create_key: Option<bool>,
    /// Fields of that key.
    pub key_alias: Option<String>,
    pub duration: Option<String>,
    pub aliases: Option<Map<String, Value>>,
    pub config: Option<Map<String, Value>>,
    pub team_id: Option<String>,
    /// Accepted and ignored (LiteLLM's invitation e-mails).
    pub send_invite_email: Option<bool>,
}

field_errors!(NewUserRequest);

/// `POST /user/update`: only the fields present change; `null` clears.
#[derive(Debug, Default, Deserialize)]
pub struct UpdateUserRequest {
    pub user_id: Option<String>,
    pub user_email: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub user_alias: Option<Option<String>>,
    pub user_role: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub max_budget: Option<Option<f64>>,
    #[serde(default, deserialize_with = "nullable")]
    pub budget_duration: Option<Option<String>>,
    pub models: Option<Vec<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub tpm_limit: Option<Option<i64>>,
    #[serde(default, deserialize_with = "nullable")]
    pub rpm_limit: Option<Option<i64>>,
    #[serde(default, deserialize_with = "nullable")]
    pub max_parallel_requests: Option<Option<i32>>,
    pub metadata: Option<Map<String, Value>>,
    pub spend: Option<f64>,
    /// Accepted and ignored: HX has no UI login.
    pub password: Option<String>,
}

field_errors!(UpdateUserRequest);

/// `POST /user/delete`.
#[derive(Debug, Deserialize)]
pub struct DeleteUserRequest {
    pub user_ids: Vec<String>,
}

field_errors!(DeleteUserRequest);

/// `GET /user/info`.
#[derive(Debug, Deserialize)]
pub struct UserInfoQuery {
    pub user_id: Option<String>,
}

/// `GET /user/list`.
#[derive(Debug, Deserialize)]
pub struct UserListQuery {
    pub role: Option<String>,
    /// Comma-separated user ids.
    pub user_ids: Option<String>,
    pub user_email: Option<String>,
    pub team: Option<String>,
    pub page: Option<i64>,
    pub page_size: Option<i64>,
    pub sort_by: Option<String>,
    pub sort_order: Option<String>,
}

/// A user row as LiteLLM answers it.
pub fn user_json(user: &UserRecord) -> Value {
    json!({
        "user_id": user.user_id,
        "user_alias": user.user_alias,
        "team_id": user.team_id,
        "teams": user.teams,
        "user_role": user.user_role,
        "max_budget": user.max_budget,
        "spend": user.spend,
        "user_email": user.user_email,
        "models": user.models,
        "metadata": user.metadata,
        "max_parallel_requests": user.max_parallel_requests,
        "tpm_limit": user.tpm_limit,
        "rpm_limit": user.rpm_limit,
        "budget_duration": user.budget_duration,
        "budget_reset_at": timestamp(user.budget_reset_at),
        "model_max_budget": user.model_max_budget,
        "created_at": timestamp(user.created_at),
        "updated_at": timestamp(user.updated_at),
    })
}

/// A requested `user_role`, or 400 naming LiteLLM's roles.
fn parse_role(text: &str) -> Result<Role, ApiError> {
    Role::parse(text).ok_or_else(|| {
        let roles: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
        ApiError::invalid(
            format!("Invalid user_role '{text}'. Must be one of {roles:?}"),
            "user_role",
        )
    })
}

/// Only a proxy admin may create a user with an admin role (LiteLLM's words).
fn check_grant(principal: &Principal, role: Role) -> Result<(), ApiError> {
    if matches!(role, Role::ProxyAdmin | Role::ProxyAdminViewer) && !principal.is_proxy_admin() {
        return Err(forbidden(format!(
            "Only proxy admins can create administrative users (proxy_admin, proxy_admin_viewer). Attempted to create user with role: {}. Your role: {}",
            role.as_str(),
            principal.role.map_or("unknown", Role::as_str)
        )));
    }
    Ok(())
}

/// The users service: the `/user/*` operations over the key service's store.
pub struct Users<'a> {
    keys: &'a KeyService,
}

impl<'a> Users<'a> {
    pub fn new(keys: &'a KeyService) -> Self {
        Users { keys }
    }

    /// `POST /user/new`: the user row, and (unless `auto_create_key` is false) a key for the
    /// user; the answer is the key's fields with the user's.
    pub async fn create(
        &self,
        principal: &Principal,
        request: NewUserRequest,
    ) -> Result<Value, ApiError> {
        let store = store(self.keys);
        non_negative(request.max_budget, "max_budget")?;
        non_negative_int(request.tpm_limit, "tpm_limit")?;
        non_negative_int(request.rpm_limit, "rpm_limit")?;
        check_duration(request.budget_duration.as_deref(), "budget_duration")?;
        let role = match request.user_role.as_deref() {
            Some(text) => {
                let role = parse_role(text)?;
                check_grant(principal, role)?;
                Some(role)
            }
            None => None,
        };
        let user_id = match request.user_id {
            Some(id) if id.trim().is_empty() => {
                return Err(ApiError::invalid("'user_id' must not be empty", "user_id"));
            }
            Some(id) => id,
            None => uuid::Uuid::new_v4().to_string(),
        };
        let duplicate = || {
            ApiError::new(
                ErrorKind::Conflict,
                format!("User with id {user_id} already exists"),
            )
            .with_param("user_id")
        };
        if store.get_user(&user_id).await?.is_some() {
            return Err(duplicate());
        }
        // LiteLLM refuses a second user with the same email, compared without case.
        if let Some(email) = request.user_email.as_deref().map(str::trim)
            && let Some(existing) = store.list_users().await?.into_iter().find_map(|u| {
                u.user_email
                    .filter(|have| have.trim().eq_ignore_ascii_case(email))
            })
        {
            return Err(ApiError::new(
                ErrorKind::Conflict,
                format!("User with email {existing} already exists"),
            )
            .with_param("user_email"));
        }
        let teams = request.teams.unwrap_or_default();
        for team_id in &teams {
            if store.get_team(team_id).await?.is_none() {
                return Err(super::not_found("Team", "team_id", team_id));
            }
        }
        let now = now();
        let user = UserRecord {
            user_id: user_id.clone(),
            user_alias: request.user_alias,
            team_id: request.team_id.clone(),
            teams: Vec::new(),
            user_role: role.map(|r| r.as_str().to_string()),
            max_budget: request.max_budget,
            spend: 0.0,
            user_email: request.user_email,
            models: request.models.clone().unwrap_or_default(),
            metadata: Value::Object(request.metadata.unwrap_or_default()),
            max_parallel_requests: request.max_parallel_requests,
            tpm_limit: request.tpm_limit,
            rpm_limit: request.rpm_limit,
            budget_reset_at: next_reset(request.budget_duration.as_deref(), now)?,
            budget_duration: request.budget_duration,
            model_max_budget: Value::Object(Map::new()),
            created_at: Some(now),
            updated_at: Some(now),
        };
        if !store.insert_user(&user).await? {
            return Err(duplicate());
        }
        let teams_service = Teams::new(self.keys);
        for team_id in &teams {
            teams_service
                .add_members(
                    principal,
                    MemberAddRequest {
                        team_id: team_id.clone(),
                        member: Members::One(Member {
                            role: MemberRole::User,
                            user_id: Some(user_id.clone()),
                            user_email: None,
                        }),
                        max_budget_in_team: None,
                    },
                )
                .await?;
        }
        let user = store.get_user(&user_id).await?.unwrap_or(user);
        let mut out = match user_json(&user) {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        if request.auto_create_key.unwrap_or(true) {
            // The key carries the user's models and limits, not its budget (which binds all
            // the user's keys through the user row), as LiteLLM makes it.
            let key = self
                .keys
                .generate_key(GenerateKeyRequest {
                    user_id: Some(user_id.clone()),
                    team_id: request.team_id,
                    models: request.models,
                    tpm_limit: request.tpm_limit,
                    rpm_limit: request.rpm_limit,
                    max_parallel_requests: request.max_parallel_requests,
                    key_alias: request.key_alias,
                    duration: request.duration,
                    aliases: request.aliases,
                    config: request.config,
                    ..GenerateKeyRequest::default()
                })
                .await?;
            if let Value::Object(mut key) = key {
                key.remove("token");
                key.remove("token_id");
                for (field, value) in key {
                    // The user's own fields win where both have one (budget, spend, models).
                    out.entry(field).or_insert(value);
                }
            }
        } else {
            out.insert("key".into(), Value::String(String::new()));
        }
        Ok(Value::Object(out))
    }

    /// The user an update names: by `user_id`, else by `user_email`.
    async fn named(
        &self,
        user_id: Option<&str>,
        email: Option<&str>,
    ) -> Result<UserRecord, ApiError> {
        let store = store(self.keys);
        match (user_id, email) {
            (Some(id), _) => store.get_user(id).await?.ok_or_else(|| {
                ApiError::not_found(format!("User not found, passed user_id={id}"))
                    .with_param("user_id")
            }),
            (None, Some(email)) => store
                .users_by_email(email)
                .await?
                .into_iter()
                .next()
                .ok_or_else(|| {
                    ApiError::not_found(format!("User not found, passed user_email={email}"))
                        .with_param("user_email")
                }),
            (None, None) => Err(ApiError::invalid(
                "Either user_id or user_email must be provided",
                "user_id",
            )),
        }
    }

    /// `POST /user/update`: `{"user_id", "data": the updated user}`. A user other than a
    /// proxy admin updates only itself, and a viewer only its email.
    pub async fn update(
        &self,
        principal: &Principal,
        request: UpdateUserRequest,
    ) -> Result<Value, ApiError> {
        let store = store(self.keys);
        let mut user = self
            .named(request.user_id.as_deref(), request.user_email.as_deref())
            .await?;
        if !principal.is_proxy_admin() {
            if request.user_role.is_some() {
                return Err(forbidden("Only proxy admins can modify user roles."));
            }
            if principal.user_id() != Some(user.user_id.as_str()) {
                return Err(forbidden(
                    "User does not have permission to update this user. Only PROXY_ADMIN can update other users.",
                ));
            }
            let limits_touched = request.max_budget.is_some()
                || request.budget_duration.is_some()
                || request.models.is_some()
                || request.tpm_limit.is_some()
                || request.rpm_limit.is_some()
                || request.max_parallel_requests.is_some()
                || request.spend.is_some();
            if limits_touched {
                return Err(forbidden(
                    "Only a proxy admin may change a user's role, budget, limits or models",
                ));
            }
            if principal.role == Some(Role::ProxyAdminViewer)
                && (request.user_alias.is_some() || request.metadata.is_some())
            {
                return Err(forbidden(
                    "A proxy_admin_viewer may only change its user_email and password",
                ));
            }
        }
        let now = now();
        if let (Some(_), Some(email)) = (&request.user_id, request.user_email) {
            user.user_email = Some(email);
        }
        if let Some(alias) = request.user_alias {
            user.user_alias = alias;
        }
        if let Some(text) = request.user_role.as_deref() {
            let role = parse_role(text)?;
            check_grant(principal, role)?;
            user.user_role = Some(role.as_str().to_string());
        }
        if let Some(v) = request.max_budget {
            non_negative(v, "max_budget")?;
            user.max_budget = v;
        }
        if let Some(duration) = request.budget_duration {
            check_duration(duration.as_deref(), "budget_duration")?;
            user.budget_reset_at = next_reset(duration.as_deref(), now)?;
            user.budget_duration = duration;
        }
        if let Some(models) = request.models {
            user.models = models;
        }
        if let Some(v) = request.tpm_limit {
            non_negative_int(v, "tpm_limit")?;
            user.tpm_limit = v;
        }
        if let Some(v) = request.rpm_limit {
            non_negative_int(v, "rpm_limit")?;
            user.rpm_limit = v;
        }
        if let Some(v) = request.max_parallel_requests {
            user.max_parallel_requests = v;
        }
        if let Some(metadata) = request.metadata {
            user.metadata = Value::Object(metadata);
        }
        non_negative(request.spend, "spend")?;
        user.updated_at = Some(now);
        if !store.update_user(&user).await? {
            return Err(super::not_found("User", "user_id", &user.user_id));
        }
        if let Some(spend) = request.spend {
            store.set_user_spend(&user.user_id, spend).await?;
        }
        self.keys.changed(Change::User(user.user_id.clone())).await;
        let user = store.get_user(&user.user_id).await?.unwrap_or(user);
        Ok(json!({ "user_id": user.user_id, "data": user_json(&user) }))
    }

    /// `POST /user/delete`: all or nothing; 404 when any user named does not exist. The users'
    /// keys and team memberships go with them, as in LiteLLM.
    pub async fn delete(&self, request: DeleteUserRequest) -> Result<Value, ApiError> {
        let store = store(self.keys);
        if request.user_ids.is_empty() {
            return Err(ApiError::invalid(
                "'user_ids' must be a non-empty list",
                "user_ids",
            ));
        }
        for user_id in &request.user_ids {
            if store.get_user(user_id).await?.is_none() {
                return Err(ApiError::not_found(format!(
                    "User not found, passed user_id={user_id}"
                ))
                .with_param("user_ids"));
            }
        }
        let mut deleted = Vec::new();
        for user_id in &request.user_ids {
            let teams = store.user_teams(user_id).await?.unwrap_or_default();
            if let Some(tokens) = store.delete_user(user_id).await? {
                self.keys.invalidate_all_of(&tokens).await;
                for team_id in teams {
                    self.leave_team(user_id, &team_id).await?;
                }
                self.keys.changed(Change::User(user_id.clone())).await;
                deleted.push(user_id.clone());
            }
        }
        // LiteLLM answers with the number of users deleted.
        Ok(json!(deleted.len()))
    }

    /// Removes a deleted user from a team's `members_with_roles`.
    async fn leave_team(&self, user_id: &str, team_id: &str) -> Result<(), ApiError> {
        let store = store(self.keys);
        if let Some(mut team) = store.get_team(team_id).await?
            && let Value::Array(members) = &mut team.members_with_roles
        {
            let before = members.len();
            members.retain(|m| m.get("user_id").and_then(Value::as_str) != Some(user_id));
            if members.len() != before {
                team.updated_at = Some(now());
                store.update_team(&team).await?;
                self.keys.changed(Change::Team(team_id.to_string())).await;
            }
        }
        Ok(())
    }

    /// `GET /user/info?user_id=`: `{user_id, user_info, keys, teams}`. A caller other than an
    /// admin or viewer reads only its own user (its own when `user_id` is absent).
    pub async fn info(
        &self,
        principal: &Principal,
        user_id: Option<&str>,
    ) -> Result<Value, ApiError> {
        let store = store(self.keys);
        let user_id = match user_id.filter(|s| !s.trim().is_empty()) {
            Some(id) => id.to_string(),
            None => match principal.user_id() {
                Some(own) => own.to_string(),
                None => {
                    return Err(ApiError::invalid(
                        "'user_id' is a required query parameter.",
                        "user_id",
                    ));
                }
            },
        };
        if !principal.reads_everything() && principal.user_id() != Some(user_id.as_str()) {
            return Err(forbidden(format!(
                "User={} is not allowed to read user_id={user_id}",
                principal.user_id().unwrap_or("unknown")
            )));
        }
        let user = store.get_user(&user_id).await?.ok_or_else(|| {
            ApiError::not_found(format!("User {user_id} not found")).with_param("user_id")
        })?;
        let (keys, _) = store
            .list_keys(Some(&user_id), None, None, i64::MAX, 0)
            .await?;
        let keys: Vec<Value> = keys.iter().map(|k| self.keys.key_json(k)).collect();
        let mut teams = Vec::new();
        for team_id in &user.teams {
            if let Some(team) = store.get_team(team_id).await? {
                teams.push(Value::Object(super::teams::team_json(&team)));
            }
        }
        Ok(json!({
            "user_id": user_id,
            "user_info": user_json(&user),
            "keys": keys,
            "teams": teams,
        }))
    }

    /// `GET /user/list`: a page of users with their `key_count`.
    pub async fn list(
        &self,
        principal: &Principal,
        query: &UserListQuery,
    ) -> Result<Value, ApiError> {
        if !principal.reads_everything() {
            return Err(forbidden(
                "Only proxy admins and organization admins can list users.",
            ));
        }
        let page = query.page.unwrap_or(1);
        if page < 1 {
            return Err(ApiError::invalid("'page' starts at 1", "page"));
        }
        let page_size = query.page_size.unwrap_or(25);
        if !(1..=100).contains(&page_size) {
            return Err(ApiError::invalid(
                "'page_size' must be between 1 and 100",
                "page_size",
            ));
        }
        if let Some(role) = query.role.as_deref() {
            parse_role(role)?;
        }
        let descending = match query.sort_order.as_deref() {
            None | Some("asc") => false,
            Some("desc") => true,
            Some(_) => {
                return Err(ApiError::invalid(
                    "Invalid sort order. Must be 'asc' or 'desc'",
                    "sort_order",
                ));
            }
        };
        let store = store(self.keys);
        let ids: Option<Vec<&str>> = query.user_ids.as_deref().map(|s| {
            s.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect()
        });
        let mut users: Vec<UserRecord> = store
            .list_users()
            .await?
            .into_iter()
            .filter(|u| {
                query
                    .role
                    .as_deref()
                    .is_none_or(|r| u.user_role.as_deref() == Some(r))
            })
            .filter(|u| {
                ids.as_ref()
                    .is_none_or(|ids| ids.contains(&u.user_id.as_str()))
            })
            .filter(|u| {
                query.user_email.as_deref().is_none_or(|e| {
                    u.user_email
                        .as_deref()
                        .is_some_and(|have| have.to_lowercase().contains(&e.to_lowercase()))
                })
            })
            .filter(|u| {
                query
                    .team
                    .as_deref()
                    .is_none_or(|t| u.teams.iter().any(|x| x == t))
            })
            .collect();
        // LiteLLM's default order: newest first.
        let (sort_by, descending) = match query.sort_by.as_deref() {
            None => ("created_at", query.sort_order.is_none() || descending),
            Some(column) => (column, descending),
        };
        match sort_by {
            "user_id" => users.sort_by(|a, b| a.user_id.cmp(&b.user_id)),
            "user_email" => users.sort_by(|a, b| a.user_email.cmp(&b.user_email)),
            "created_at" => users.sort_by_key(|u| u.created_at),
            "spend" => users.sort_by(|a, b| a.spend.total_cmp(&b.spend)),
            "user_alias" => users.sort_by(|a, b| a.user_alias.cmp(&b.user_alias)),
            "user_role" => users.sort_by(|a, b| a.user_role.cmp(&b.user_role)),
            _ => {
                return Err(ApiError::invalid(
                    "Invalid sort column. Must be one of: user_id, user_email, created_at, spend, user_alias, user_role",
                    "sort_by",
                ));
            }
        }
        if descending {
            users.reverse();
        }
        let counts: std::collections::HashMap<String, i64> =
            store.key_counts_by_user().await?.into_iter().collect();
        let total = users.len() as i64;
        let start = ((page - 1) * page_size).min(total) as usize;
        let end = (start + page_size as usize).min(users.len());
        let rows: Vec<Value> = users[start..end]
            .iter()
            .map(|u| {
                let mut row = user_json(u);
                if let Value::Object(map) = &mut row {
                    map.insert(
                        "key_count".into(),
                        json!(counts.get(&u.user_id).copied().unwrap_or(0)),
                    );
                }
                row
            })
            .collect();
        let total_pages = (total + page_size - 1) / page_size;
        Ok(json!({
            "users": rows,
            "total": total,
            "page": page,
            "page_size": page_size,
            "total_pages": total_pages,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_outside_litellm_s_list_are_refused_naming_the_field() {
        let err = parse_role("superuser").unwrap_err();
        assert_eq!(err.param.as_deref(), Some("user_role"));
        assert!(err.message.contains("proxy_admin"), "{}", err.message);
        assert_eq!(parse_role("internal_user").unwrap(), Role::InternalUser);
    }
}
