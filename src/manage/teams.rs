//! `/team/*`: teams, their members (with per-member budgets in `"LiteLLM_TeamMembership"`),
//! their models and model aliases, as LiteLLM's team endpoints read and write them.
//!
//! A team binds every key of the team: its `models`, budget (reset every `budget_duration`),
//! limits and `blocked` are enforced through [`crate::keys::KeyInfo`], which reads the team
//! row with the key; its `model_aliases` rename requested models for its keys. A member's
//! `max_budget_in_team` binds that user's keys of the team.

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{
    actor, check_duration, forbidden, next_reset, non_negative, non_negative_int, not_found, store,
};
use crate::changes::Change;
use crate::db::{BudgetRow, MembershipRow, TeamRecord, UserRecord};
use crate::error::ApiError;
use crate::keys::{KeyService, now, nullable, timestamp};
use crate::roles::{Principal, Role};

/// A team member as LiteLLM's requests and `members_with_roles` spell it.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq)]
pub struct Member {
    pub role: MemberRole,
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub user_email: Option<String>,
}

/// A member's role in a team.
#[derive(Debug, Clone, Copy, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MemberRole {
    Admin,
    User,
}

/// `POST /team/new`.
#[derive(Debug, Default, Deserialize)]
pub struct NewTeamRequest {
    pub team_id: Option<String>,
    pub team_alias: Option<String>,
    pub organization_id: Option<String>,
    pub members_with_roles: Option<Vec<Member>>,
    pub metadata: Option<Map<String, Value>>,
    pub tpm_limit: Option<i64>,
    pub rpm_limit: Option<i64>,
    pub max_parallel_requests: Option<i32>,
    pub max_budget: Option<f64>,
    pub budget_duration: Option<String>,
    pub models: Option<Vec<String>>,
    pub blocked: Option<bool>,
    pub model_aliases: Option<Map<String, Value>>,
    pub model_max_budget: Option<Map<String, Value>>,
    /// Stored in `metadata.tags` and `metadata.guardrails`, as LiteLLM does.
    pub tags: Option<Vec<String>>,
    pub guardrails: Option<Vec<String>>,
    /// A budget every member gets (a budget row named in `metadata.team_member_budget_id`).
    pub team_member_budget: Option<f64>,
}

field_errors!(NewTeamRequest);

/// `POST /team/update`: only the fields present change; `null` clears.
#[derive(Debug, Default, Deserialize)]
pub struct UpdateTeamRequest {
    pub team_id: String,
    #[serde(default, deserialize_with = "nullable")]
    pub team_alias: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub organization_id: Option<Option<String>>,
    pub metadata: Option<Map<String, Value>>,
    #[serde(default, deserialize_with = "nullable")]
    pub tpm_limit: Option<Option<i64>>,
    #[serde(default, deserialize_with = "nullable")]
    pub rpm_limit: Option<Option<i64>>,
    #[serde(default, deserialize_with = "nullable")]
    pub max_parallel_requests: Option<Option<i32>>,
    #[serde(default, deserialize_with = "nullable")]
    pub max_budget: Option<Option<f64>>,
    #[serde(default, deserialize_with = "nullable")]
    pub budget_duration: Option<Option<String>>,
    pub models: Option<Vec<String>>,
    pub blocked: Option<bool>,
    pub model_aliases: Option<Map<String, Value>>,
    pub model_max_budget: Option<Map<String, Value>>,
    pub tags: Option<Vec<String>>,
    pub guardrails: Option<Vec<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub team_member_budget: Option<Option<f64>>,
}

field_errors!(UpdateTeamRequest);

/// `POST /team/delete`.
#[derive(Debug, Deserialize)]
pub struct DeleteTeamRequest {
    pub team_ids: Vec<String>,
}

field_errors!(DeleteTeamRequest);

/// `POST /team/block` and `/team/unblock`.
#[derive(Debug, Deserialize)]
pub struct BlockTeamRequest {
    pub team_id: String,
}

field_errors!(BlockTeamRequest);

/// `POST /team/model/add` and `/team/model/delete`.
#[derive(Debug, Deserialize)]
pub struct TeamModelsRequest {
    pub team_id: String,
    pub models: Vec<String>,
}

field_errors!(TeamModelsRequest);

/// One member or several, as `/team/member_add` accepts them.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Members {
    Many(Vec<Member>),
    One(Member),
}

/// `POST /team/member_add`.
#[derive(Debug, Deserialize)]
pub struct MemberAddRequest {
    pub team_id: String,
    pub member: Members,
    pub max_budget_in_team: Option<f64>,
}

field_errors!(MemberAddRequest);

/// `POST /team/member_delete` (by `user_id` or `user_email`).
#[derive(Debug, Deserialize)]
pub struct MemberDeleteRequest {
    pub team_id: String,
    pub user_id: Option<String>,
    pub user_email: Option<String>,
}

field_errors!(MemberDeleteRequest);

/// `POST /team/member_update`.
#[derive(Debug, Deserialize)]
pub struct MemberUpdateRequest {
    pub team_id: String,
    pub user_id: Option<String>,
    pub user_email: Option<String>,
    pub role: Option<MemberRole>,
    #[serde(default, deserialize_with = "nullable")]
    pub max_budget_in_team: Option<Option<f64>>,
}

field_errors!(MemberUpdateRequest);

/// `GET /team/info`.
#[derive(Debug, Deserialize)]
pub struct TeamInfoQuery {
    pub team_id: Option<String>,
}

/// `GET /team/list`.
#[derive(Debug, Deserialize)]
pub struct TeamListQuery {
    pub user_id: Option<String>,
    pub organization_id: Option<String>,
}

/// A team row as LiteLLM answers it.
pub fn team_json(team: &TeamRecord) -> Map<String, Value> {
    let value = json!({
        "team_id": team.team_id,
        "team_alias": team.team_alias,
        "organization_id": team.organization_id,
        "admins": team.admins,
        "members": team.members,
        "members_with_roles": team.members_with_roles,
        "metadata": team.metadata,
        "max_budget": team.max_budget,
        "spend": team.spend,
        "models": team.models,
        "max_parallel_requests": team.max_parallel_requests,
        "tpm_limit": team.tpm_limit,
        "rpm_limit": team.rpm_limit,
        "budget_duration": team.budget_duration,
        "budget_reset_at": timestamp(team.budget_reset_at),
        "blocked": team.blocked,
        "created_at": timestamp(team.created_at),
        "updated_at": timestamp(team.updated_at),
        "model_max_budget": team.model_max_budget,
        "model_id": team.model_id,
        "model_aliases": team.model_aliases,
    });
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// A budget row as LiteLLM answers it (`litellm_budget_table`).
pub fn budget_json(budget: &BudgetRow) -> Value {
    json!({
        "budget_id": budget.budget_id,
        "max_budget": budget.max_budget,
        "soft_budget": budget.soft_budget,
        "max_parallel_requests": budget.max_parallel_requests,
        "tpm_limit": budget.tpm_limit,
        "rpm_limit": budget.rpm_limit,
        "model_max_budget": budget.model_max_budget,
        "budget_duration": budget.budget_duration,
        "budget_reset_at": timestamp(budget.budget_reset_at),
        "created_at": timestamp(budget.created_at),
        "created_by": budget.created_by,
        "updated_at": timestamp(budget.updated_at),
        "updated_by": budget.updated_by,
    })
}

fn membership_json(m: &MembershipRow) -> Value {
    json!({
        "user_id": m.user_id,
        "team_id": m.team_id,
        "spend": m.spend,
        "budget_id": m.budget_id,
        "litellm_budget_table": m.budget.as_ref().map(budget_json),
    })
}

/// The members of a team, read from `members_with_roles`.
fn members_of(team: &TeamRecord) -> Vec<Member> {
    serde_json::from_value(team.members_with_roles.clone()).unwrap_or_default()
}

fn set_members(team: &mut TeamRecord, members: &[Member]) {
    team.members_with_roles = serde_json::to_value(members).unwrap_or(Value::Array(Vec::new()));
}

/// Whether the caller is an admin member of the team.
fn is_team_admin(principal: &Principal, team: &TeamRecord) -> bool {
    let Some(user_id) = principal.user_id() else {
        return false;
    };
    members_of(team)
        .iter()
        .any(|m| m.role == MemberRole::Admin && m.user_id.as_deref() == Some(user_id))
}

/// Whether the caller is an admin member of the team with this id (false when there is none).
pub(crate) async fn is_team_admin_of(
    keys: &KeyService,
    principal: &Principal,
    team_id: &str,
) -> Result<bool, ApiError> {
    Ok(match store(keys).get_team(team_id).await? {
        Some(team) => is_team_admin(principal, &team),
        None => false,
    })
}

/// Whether the caller may read the team: an admin or viewer, the team's own key, a member.
fn may_read(principal: &Principal, team: &TeamRecord) -> bool {
    if principal.reads_everything() || principal.team_id() == Some(team.team_id.as_str()) {
        return true;
    }
    let Some(user_id) = principal.user_id() else {
        return false;
    };
    members_of(team)
        .iter()
        .any(|m| m.user_id.as_deref() == Some(user_id))
}

fn check_member(member: &Member) -> Result<(), ApiError> {
    let blank = |v: &Option<String>| v.as_deref().is_none_or(|s| s.trim().is_empty());
    if blank(&member.user_id) && blank(&member.user_email) {
        return Err(ApiError::invalid(
            "Either user_id or user_email must be provided",
            "member",
        ));
    }
    Ok(())
}

/// Tags and guardrails go into the team's metadata, as LiteLLM stores them.
fn merge_metadata(
    metadata: &mut Value,
    tags: Option<Vec<String>>,
    guardrails: Option<Vec<String>>,
) {
    if !metadata.is_object() {
        *metadata = Value::Object(Map::new());
    }
    if let Value::Object(map) = metadata {
        if let Some(tags) = tags {
            map.insert("tags".into(), json!(tags));
        }
        if let Some(guardrails) = guardrails {
            map.insert("guardrails".into(), json!(guardrails));
        }
    }
}

fn check_aliases(aliases: &Map<String, Value>) -> Result<(), ApiError> {
    if aliases.values().any(|v| !v.is_string()) {
        return Err(ApiError::invalid(
            "'model_aliases' maps a model name to the model it means; every value must be a string",
            "model_aliases",
        ));
    }
    Ok(())
}

/// The teams service: the `/team/*` operations over the key service's store.
pub struct Teams<'a> {
    keys: &'a KeyService,
}

impl<'a> Teams<'a> {
    pub fn new(keys: &'a KeyService) -> Self {
        Teams { keys }
    }

    async fn team(&self, team_id: &str) -> Result<TeamRecord, ApiError> {
        store(self.keys)
            .get_team(team_id)
            .await?
            .ok_or_else(|| not_found("Team", "team_id", team_id))
    }

    /// 403 unless the caller is a proxy admin or an admin of the team.
    fn check_manages(
        &self,
        principal: &Principal,
        team: &TeamRecord,
        route: &str,
    ) -> Result<(), ApiError> {
        if principal.is_proxy_admin() || is_team_admin(principal, team) {
            return Ok(());
        }
        Err(forbidden(format!(
            "Call not allowed. User not proxy admin OR team admin. route={route}, team_id={}",
            team.team_id
        )))
    }

    /// `POST /team/new`.
    pub async fn create(
        &self,
        principal: &Principal,
        request: NewTeamRequest,
    ) -> Result<Value, ApiError> {
        let store = store(self.keys);
        non_negative(request.max_budget, "max_budget")?;
        non_negative(request.team_member_budget, "team_member_budget")?;
        non_negative_int(request.tpm_limit, "tpm_limit")?;
        non_negative_int(request.rpm_limit, "rpm_limit")?;
        check_duration(request.budget_duration.as_deref(), "budget_duration")?;
        let members = request.members_with_roles.unwrap_or_default();
        for member in &members {
            check_member(member)?;
        }
        if let Some(aliases) = &request.model_aliases {
            check_aliases(aliases)?;
        }
        let team_id = match request.team_id {
            Some(id) if id.trim().is_empty() => {
                return Err(ApiError::invalid("'team_id' must not be empty", "team_id"));
            }
            Some(id) => id,
            None => uuid::Uuid::new_v4().to_string(),
        };
        if store.get_team(&team_id).await?.is_some() {
            return Err(ApiError::invalid(
                format!("Team id = {team_id} already exists. Please use a different team id."),
                "team_id",
            ));
        }
        let now = now();
        let by = actor(principal);
        let mut team = TeamRecord::new(team_id.clone());
        team.team_alias = request.team_alias;
        team.organization_id = request.organization_id;
        team.models = request.models.unwrap_or_default();
        team.max_budget = request.max_budget;
        team.rpm_limit = request.rpm_limit;
        team.tpm_limit = request.tpm_limit;
        team.max_parallel_requests = request.max_parallel_requests;
        team.budget_reset_at = next_reset(request.budget_duration.as_deref(), now)?;
        team.budget_duration = request.budget_duration;
        team.blocked = request.blocked.unwrap_or(false);
        team.metadata = Value::Object(request.metadata.unwrap_or_default());
        merge_metadata(&mut team.metadata, request.tags, request.guardrails);
        team.model_max_budget = Value::Object(request.model_max_budget.unwrap_or_default());
        team.created_at = Some(now);
        team.updated_at = Some(now);
        if let Some(budget) = request.team_member_budget {
            let budget_id = self.new_member_budget(Some(budget), &by).await?;
            if let Value::Object(map) = &mut team.metadata {
                map.insert("team_member_budget_id".into(), json!(budget_id));
            }
        }
        if let Some(aliases) = request.model_aliases {
            let aliases = Value::Object(aliases);
            team.model_id = Some(store.insert_model_aliases(&aliases, &by).await?);
            team.model_aliases = aliases;
        }
        // A caller that is not a proxy admin becomes the team's admin, as in LiteLLM.
        let mut members = members;
        if !principal.is_proxy_admin()
            && let Some(user_id) = principal.user_id()
            && !members
                .iter()
                .any(|m| m.user_id.as_deref() == Some(user_id))
        {
            members.push(Member {
                role: MemberRole::Admin,
                user_id: Some(user_id.to_string()),
                user_email: None,
            });
        }
        let mut stored = Vec::with_capacity(members.len());
        for member in members {
            let user = self.member_user(&member).await?;
            stored.push(Member {
                role: member.role,
                user_id: Some(user.user_id.clone()),
                user_email: user.user_email.clone().or(member.user_email),
            });
        }
        set_members(&mut team, &stored);
        if !store.insert_team(&team).await? {
            return Err(ApiError::invalid(
                format!("Team id = {team_id} already exists. Please use a different team id."),
                "team_id",
            ));
        }
        for member in &stored {
            if let Some(user_id) = &member.user_id {
                store.add_user_team(user_id, &team_id).await?;
                self.member_budget_row(&team, user_id, None).await?;
                self.keys.changed(Change::User(user_id.clone())).await;
            }
        }
        let team = self.team(&team_id).await?;
        Ok(Value::Object(team_json(&team)))
    }

    /// The user a member names: by `user_id` (created when missing, as LiteLLM upserts it),
    /// else the first user with the email, else a new user with that email.
    async fn member_user(&self, member: &Member) -> Result<UserRecord, ApiError> {
        let store = store(self.keys);
        if let Some(user_id) = member.user_id.as_deref().filter(|s| !s.trim().is_empty()) {
            if let Some(user) = store.get_user(user_id).await? {
                return Ok(user);
            }
            return self
                .create_member_user(user_id.to_string(), member.user_email.clone())
                .await;
        }
        if let Some(email) = member.user_email.as_deref() {
            if let Some(user) = store.users_by_email(email).await?.into_iter().next() {
                return Ok(user);
            }
            return self
                .create_member_user(uuid::Uuid::new_v4().to_string(), Some(email.to_string()))
                .await;
        }
        Err(ApiError::invalid(
            "Either user_id or user_email must be provided",
            "member",
        ))
    }

    async fn create_member_user(
        &self,
        user_id: String,
        user_email: Option<String>,
    ) -> Result<UserRecord, ApiError> {
        let now = now();
        let user = UserRecord {
            user_id,
            user_email,
            user_role: Some(Role::InternalUser.as_str().to_string()),
            metadata: Value::Object(Map::new()),
            model_max_budget: Value::Object(Map::new()),
            created_at: Some(now),
            updated_at: Some(now),
            ..UserRecord::default()
        };
        let store = store(self.keys);
        store.insert_user(&user).await?;
        Ok(store.get_user(&user.user_id).await?.unwrap_or(user))
    }

    /// A new budget row for team members; its id.
    async fn new_member_budget(
        &self,
        max_budget: Option<f64>,
        by: &str,
    ) -> Result<String, ApiError> {
        let budget = BudgetRow {
            budget_id: uuid::Uuid::new_v4().to_string(),
            max_budget,
            created_by: by.to_string(),
            updated_by: by.to_string(),
            ..BudgetRow::default()
        };
        store(self.keys).insert_budget(&budget).await?;
        Ok(budget.budget_id)
    }

    /// Gives a member its budget: its own (`max_budget_in_team`) when given, else the team's
    /// member budget when it has one; no membership row otherwise, as in LiteLLM.
    async fn member_budget_row(
        &self,
        team: &TeamRecord,
        user_id: &str,
        own_budget: Option<f64>,
    ) -> Result<Option<MembershipRow>, ApiError> {
        let store = store(self.keys);
        let budget_id = match own_budget {
            Some(max) => Some(self.new_member_budget(Some(max), "default_user_id").await?),
            None => team
                .metadata
                .get("team_member_budget_id")
                .and_then(Value::as_str)
                .map(str::to_string),
        };
        let Some(budget_id) = budget_id else {
            return Ok(None);
        };
        store
            .upsert_membership(user_id, &team.team_id, Some(&budget_id))
            .await?;
        Ok(store.get_membership(user_id, &team.team_id).await?)
    }

    /// `POST /team/update`: `{"team_id", "data": the updated team}`.
    pub async fn update(
        &self,
        principal: &Principal,
        request: UpdateTeamRequest,
    ) -> Result<Value, ApiError> {
        let store = store(self.keys);
        let mut team = self.team(&request.team_id).await?;
        self.check_manages(principal, &team, "/team/update")?;
        let now = now();
        let by = actor(principal);
        if let Some(alias) = request.team_alias {
            team.team_alias = alias;
        }
        if let Some(org) = request.organization_id {
            team.organization_id = org;
        }
        if let Some(metadata) = request.metadata {
            team.metadata = Value::Object(metadata);
        }
        merge_metadata(&mut team.metadata, request.tags, request.guardrails);
        if let Some(v) = request.tpm_limit {
            non_negative_int(v, "tpm_limit")?;
            team.tpm_limit = v;
        }
        if let Some(v) = request.rpm_limit {
            non_negative_int(v, "rpm_limit")?;
            team.rpm_limit = v;
        }
        if let Some(v) = request.max_parallel_requests {
            team.max_parallel_requests = v;
        }
        if let Some(v) = request.max_budget {
            non_negative(v, "max_budget")?;
            team.max_budget = v;
        }
        if let Some(duration) = request.budget_duration {
            check_duration(duration.as_deref(), "budget_duration")?;
            team.budget_reset_at = next_reset(duration.as_deref(), now)?;
            team.budget_duration = duration;
        }
        if let Some(models) = request.models {
            team.models = models;
        }
        if let Some(blocked) = request.blocked {
            team.blocked = blocked;
        }
        if let Some(budgets) = request.model_max_budget {
            team.model_max_budget = Value::Object(budgets);
        }
        if let Some(aliases) = request.model_aliases {
            check_aliases(&aliases)?;
            let aliases = Value::Object(aliases);
            match team.model_id {
                Some(id) => store.update_model_aliases(id, &aliases, &by).await?,
                None => team.model_id = Some(store.insert_model_aliases(&aliases, &by).await?),
            }
        }
        if let Some(member_budget) = request.team_member_budget {
            non_negative(member_budget, "team_member_budget")?;
            self.set_team_member_budget(&mut team, member_budget, &by)
                .await?;
        }
        team.updated_at = Some(now);
        if !store.update_team(&team).await? {
            return Err(not_found("Team", "team_id", &team.team_id));
        }
        self.keys.changed(Change::Team(team.team_id.clone())).await;
        let team = self.team(&team.team_id).await?;
        Ok(json!({ "team_id": team.team_id, "data": team_json(&team) }))
    }

    /// Changes (or sets up) the budget every member of the team gets.
    async fn set_team_member_budget(
        &self,
        team: &mut TeamRecord,
        max_budget: Option<f64>,
        by: &str,
    ) -> Result<(), ApiError> {
        let store = store(self.keys);
        let existing = team
            .metadata
            .get("team_member_budget_id")
            .and_then(Value::as_str)
            .map(str::to_string);
        match existing {
            Some(id) => {
                if let Some(mut budget) = store.get_budget(&id).await? {
                    budget.max_budget = max_budget;
                    budget.updated_by = by.to_string();
                    store.update_budget(&budget).await?;
                }
                self.keys.changed(Change::Budget(id)).await;
            }
            None => {
                let id = self.new_member_budget(max_budget, by).await?;
                if let Value::Object(map) = &mut team.metadata {
                    map.insert("team_member_budget_id".into(), json!(id));
                }
                for member in members_of(team) {
                    if let Some(user_id) = member.user_id
                        && store
                            .get_membership(&user_id, &team.team_id)
                            .await?
                            .is_none()
                    {
                        store
                            .upsert_membership(&user_id, &team.team_id, Some(&id))
                            .await?;
                    }
                }
            }
        }
        Ok(())
    }

    /// `POST /team/delete`: all or nothing; 404 when any team named does not exist. The teams'
    /// keys go with them, as in LiteLLM.
    pub async fn delete(&self, request: DeleteTeamRequest) -> Result<Value, ApiError> {
        let store = store(self.keys);
        if request.team_ids.is_empty() {
            return Err(ApiError::invalid(
                "'team_ids' must be a non-empty list",
                "team_ids",
            ));
        }
        for team_id in &request.team_ids {
            self.team(team_id).await?;
        }
        let mut deleted = Vec::new();
        for team_id in &request.team_ids {
            if let Some(tokens) = store.delete_team(team_id).await? {
                self.keys.invalidate_all_of(&tokens).await;
                self.keys.changed(Change::Team(team_id.clone())).await;
                deleted.push(team_id.clone());
            }
        }
        Ok(json!({ "deleted_teams": deleted }))
    }

    /// `GET /team/info?team_id=`: the team, its keys and its members' rows.
    pub async fn info(
        &self,
        principal: &Principal,
        team_id: Option<&str>,
    ) -> Result<Value, ApiError> {
        let team_id = match team_id.or(principal.team_id()) {
            Some(id) if !id.trim().is_empty() => id.to_string(),
            _ => {
                return Err(ApiError::invalid(
                    "'team_id' is a required query parameter.",
                    "team_id",
                ));
            }
        };
        let team = self.team(&team_id).await?;
        if !may_read(principal, &team) {
            return Err(forbidden(format!(
                "User={} not authorized to access this team={team_id}",
                principal.user_id().unwrap_or("unknown")
            )));
        }
        self.info_json(&team).await
    }

    async fn info_json(&self, team: &TeamRecord) -> Result<Value, ApiError> {
        let store = store(self.keys);
        let (keys, _) = store
            .list_keys(None, Some(&team.team_id), None, i64::MAX, 0)
            .await?;
        let keys: Vec<Value> = keys.iter().map(|k| self.keys.key_json(k)).collect();
        let memberships: Vec<Value> = store
            .team_memberships(&team.team_id)
            .await?
            .iter()
            .map(membership_json)
            .collect();
        Ok(json!({
            "team_id": team.team_id,
            "team_info": team_json(team),
            "keys": keys,
            "team_memberships": memberships,
        }))
    }

    /// `GET /team/list`: every team for an admin or viewer; otherwise the caller's own teams
    /// (`user_id` must be the caller's, as in LiteLLM).
    pub async fn list(
        &self,
        principal: &Principal,
        query: &TeamListQuery,
    ) -> Result<Value, ApiError> {
        let user_id = match (&query.user_id, principal.reads_everything()) {
            (user_id, true) => user_id.clone(),
            (Some(asked), false) if Some(asked.as_str()) == principal.user_id() => {
                Some(asked.clone())
            }
            _ => {
                return Err(ApiError::auth(format!(
                    "Only admin users can query all teams/other teams. Your user role={}",
                    principal.role.map_or("unknown", Role::as_str)
                )));
            }
        };
        let store = store(self.keys);
        let mut out: Vec<(Option<String>, String, Value)> = Vec::new();
        for team in store.list_teams().await? {
            if let Some(org) = &query.organization_id
                && team.organization_id.as_ref() != Some(org)
            {
                continue;
            }
            if let Some(user_id) = &user_id
                && !members_of(&team)
                    .iter()
                    .any(|m| m.user_id.as_deref() == Some(user_id.as_str()))
            {
                continue;
            }
            let (keys, _) = store
                .list_keys(None, Some(&team.team_id), None, i64::MAX, 0)
                .await?;
            let memberships: Vec<Value> = store
                .team_memberships(&team.team_id)
                .await?
                .iter()
                .map(membership_json)
                .collect();
            let mut row = team_json(&team);
            row.insert(
                "keys".into(),
                Value::Array(keys.iter().map(|k| self.keys.key_json(k)).collect()),
            );
            row.insert("team_memberships".into(), Value::Array(memberships));
            out.push((
                team.team_alias.clone(),
                team.team_id.clone(),
                Value::Object(row),
            ));
        }
        // LiteLLM's order: by alias (teams without one last), then id.
        out.sort_by(|a, b| (a.0.is_none(), &a.0, &a.1).cmp(&(b.0.is_none(), &b.0, &b.1)));
        Ok(Value::Array(
            out.into_iter().map(|(_, _, row)| row).collect(),
        ))
    }

    /// `POST /team/block` and `/team/unblock`: every key of the team is refused (or served
    /// again) on every instance at once.
    pub async fn set_blocked(&self, team_id: &str, blocked: bool) -> Result<Value, ApiError> {
        let mut team = self.team(team_id).await?;
        team.blocked = blocked;
        team.updated_at = Some(now());
        if !store(self.keys).update_team(&team).await? {
            return Err(not_found("Team", "team_id", team_id));
        }
        self.keys.changed(Change::Team(team_id.to_string())).await;
        Ok(Value::Object(team_json(&self.team(team_id).await?)))
    }

    /// `POST /team/model/add` (`add`) and `/team/model/delete`.
    pub async fn change_models(
        &self,
        principal: &Principal,
        request: TeamModelsRequest,
        add: bool,
    ) -> Result<Value, ApiError> {
        let mut team = self.team(&request.team_id).await?;
        let route = if add {
            "/team/model/add"
        } else {
            "/team/model/delete"
        };
        self.check_manages(principal, &team, route)?;
        if add {
            for model in request.models {
                if !team.models.contains(&model) {
                    team.models.push(model);
                }
            }
        } else {
            team.models.retain(|m| !request.models.contains(m));
        }
        team.updated_at = Some(now());
        store(self.keys).update_team(&team).await?;
        self.keys.changed(Change::Team(team.team_id.clone())).await;
        Ok(Value::Object(team_json(&self.team(&team.team_id).await?)))
    }

    /// `POST /team/member_add`: the team with `updated_users` and `updated_team_memberships`.
    pub async fn add_members(
        &self,
        principal: &Principal,
        request: MemberAddRequest,
    ) -> Result<Value, ApiError> {
        let store = store(self.keys);
        non_negative(request.max_budget_in_team, "max_budget_in_team")?;
        let mut team = self.team(&request.team_id).await?;
        self.check_manages(principal, &team, "/team/member_add")?;
        let new = match request.member {
            Members::Many(list) => list,
            Members::One(member) => vec![member],
        };
        if new.is_empty() {
            return Err(ApiError::invalid(
                "'member' must name at least one member",
                "member",
            ));
        }
        for member in &new {
            check_member(member)?;
        }
        let mut members = members_of(&team);
        let mut users = Vec::new();
        for member in &new {
            let user = self.member_user(member).await?;
            if members
                .iter()
                .any(|m| m.user_id.as_deref() == Some(user.user_id.as_str()))
            {
                return Err(ApiError::invalid(
                    format!(
                        "User already in team. Member: user_id={}, user_email={}. Existing members={}",
                        user.user_id,
                        user.user_email.as_deref().unwrap_or("None"),
                        serde_json::to_string(&members).unwrap_or_default()
                    ),
                    "member",
                ));
            }
            members.push(Member {
                role: member.role,
                user_id: Some(user.user_id.clone()),
                user_email: user.user_email.clone().or(member.user_email.clone()),
            });
            users.push(user);
        }
        set_members(&mut team, &members);
        team.updated_at = Some(now());
        store.update_team(&team).await?;
        let mut memberships = Vec::new();
        let mut updated_users = Vec::new();
        for user in &users {
            store.add_user_team(&user.user_id, &team.team_id).await?;
            if let Some(m) = self
                .member_budget_row(&team, &user.user_id, request.max_budget_in_team)
                .await?
            {
                memberships.push(membership_json(&m));
            }
            self.keys.changed(Change::User(user.user_id.clone())).await;
            if let Some(user) = store.get_user(&user.user_id).await? {
                updated_users.push(super::users::user_json(&user));
            }
        }
        self.keys.changed(Change::Team(team.team_id.clone())).await;
        let mut out = team_json(&self.team(&team.team_id).await?);
        out.insert("updated_users".into(), Value::Array(updated_users));
        out.insert("updated_team_memberships".into(), Value::Array(memberships));
        Ok(Value::Object(out))
    }

    /// The member a delete or update names, by `user_id` or `user_email`: its index.
    fn find_member(
        members: &[Member],
        team_id: &str,
        user_id: Option<&str>,
        user_email: Option<&str>,
    ) -> Result<usize, ApiError> {
        if user_id.is_none() && user_email.is_none() {
            return Err(ApiError::invalid(
                "Either user_id or user_email needs to be passed in",
                "user_id",
            ));
        }
        members
            .iter()
            .position(|m| match (user_id, user_email) {
                (Some(id), _) => m.user_id.as_deref() == Some(id),
                (None, Some(email)) => m.user_email.as_deref() == Some(email),
                (None, None) => false,
            })
            .ok_or_else(|| {
                ApiError::not_found(format!(
                    "User={} not found in team={team_id}",
                    user_id.or(user_email).unwrap_or_default()
                ))
                .with_param(if user_id.is_some() {
                    "user_id"
                } else {
                    "user_email"
                })
            })
    }

    /// `POST /team/member_delete`: the member leaves; the user's keys of the team are deleted,
    /// as in LiteLLM.
    pub async fn delete_member(
        &self,
        principal: &Principal,
        request: MemberDeleteRequest,
    ) -> Result<Value, ApiError> {
        let store = store(self.keys);
        let mut team = self.team(&request.team_id).await?;
        self.check_manages(principal, &team, "/team/member_delete")?;
        let mut members = members_of(&team);
        let at = Self::find_member(
            &members,
            &team.team_id,
            request.user_id.as_deref(),
            request.user_email.as_deref(),
        )?;
        let removed = members.remove(at);
        set_members(&mut team, &members);
        team.updated_at = Some(now());
        store.update_team(&team).await?;
        if let Some(user_id) = &removed.user_id {
            store.remove_user_team(user_id, &team.team_id).await?;
            store.delete_membership(user_id, &team.team_id).await?;
            let tokens = store.delete_member_keys(&team.team_id, user_id).await?;
            self.keys.invalidate_all_of(&tokens).await;
            self.keys.changed(Change::User(user_id.clone())).await;
        }
        self.keys.changed(Change::Team(team.team_id.clone())).await;
        Ok(Value::Object(team_json(&self.team(&team.team_id).await?)))
    }

    /// `POST /team/member_update`: a member's role or budget in the team.
    pub async fn update_member(
        &self,
        principal: &Principal,
        request: MemberUpdateRequest,
    ) -> Result<Value, ApiError> {
        let store = store(self.keys);
        let mut team = self.team(&request.team_id).await?;
        self.check_manages(principal, &team, "/team/member_update")?;
        let mut members = members_of(&team);
        let at = Self::find_member(
            &members,
            &team.team_id,
            request.user_id.as_deref(),
            request.user_email.as_deref(),
        )?;
        if let Some(role) = request.role {
            members[at].role = role;
            set_members(&mut team, &members);
            team.updated_at = Some(now());
            store.update_team(&team).await?;
        }
        let member = members[at].clone();
        let user_id = member.user_id.clone().unwrap_or_default();
        let mut max_budget_in_team = None;
        if let Some(budget) = request.max_budget_in_team {
            non_negative(budget, "max_budget_in_team")?;
            let existing = store.get_membership(&user_id, &team.team_id).await?;
            let shared = team
                .metadata
                .get("team_member_budget_id")
                .and_then(Value::as_str);
            match existing.and_then(|m| m.budget) {
                // The member's own budget row: change it in place.
                Some(mut row) if Some(row.budget_id.as_str()) != shared => {
                    row.max_budget = budget;
                    row.updated_by = actor(principal);
                    store.update_budget(&row).await?;
                }
                _ => {
                    let id = self.new_member_budget(budget, &actor(principal)).await?;
                    store
                        .upsert_membership(&user_id, &team.team_id, Some(&id))
                        .await?;
                }
            }
            max_budget_in_team = budget;
        } else if let Some(m) = store.get_membership(&user_id, &team.team_id).await? {
            max_budget_in_team = m.budget.and_then(|b| b.max_budget);
        }
        self.keys.changed(Change::User(user_id.clone())).await;
        self.keys.changed(Change::Team(team.team_id.clone())).await;
        Ok(json!({
            "team_id": team.team_id,
            "user_id": user_id,
            "user_email": member.user_email,
            "role": member.role,
            "max_budget_in_team": max_budget_in_team,
        }))
    }
}
