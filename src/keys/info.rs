//! `KeyInfo`: what the auth layer knows about an authenticated virtual key, and the checks it
//! runs on every request (model allowed, budget left).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::NaiveDateTime;
use serde_json::Value;

use super::duration::parse_duration;
use super::error::KeyError;
use crate::db::{KeyRecord, TeamRecord};
use crate::spend::{BudgetClaim, SpendCell};

/// LiteLLM's values in `models` that allow every model of the proxy.
const ALL_MODELS: &[&str] = &["*", "all-proxy-models"];
/// LiteLLM's value meaning "whatever the key's team allows".
const ALL_TEAM_MODELS: &str = "all-team-models";

/// The team a key belongs to, with the limits that bind the key too.
#[derive(Debug)]
pub struct TeamInfo {
    pub team_id: String,
    pub team_alias: Option<String>,
    /// Empty means every model.
    pub models: Vec<String>,
    pub max_budget: Option<f64>,
    /// For the rate limiter.
    pub rpm_limit: Option<i64>,
    pub tpm_limit: Option<i64>,
    pub max_parallel_requests: Option<i32>,
    pub blocked: bool,
    pub budget_duration: Option<String>,
    pub budget_reset_at: Option<NaiveDateTime>,
    /// The team's `model_aliases`: a requested name → the model group it means.
    pub model_aliases: HashMap<String, String>,
    spend_base: f64,
    cell: Arc<SpendCell>,
}

impl TeamInfo {
    pub(crate) fn new(record: TeamRecord, cell: Arc<SpendCell>, flushed_at_load: f64) -> Self {
        TeamInfo {
            team_id: record.team_id,
            team_alias: record.team_alias,
            models: record.models,
            max_budget: record.max_budget,
            rpm_limit: record.rpm_limit,
            tpm_limit: record.tpm_limit,
            max_parallel_requests: record.max_parallel_requests,
            blocked: record.blocked,
            budget_duration: record.budget_duration,
            budget_reset_at: record.budget_reset_at,
            model_aliases: string_map(&record.model_aliases),
            spend_base: record.spend - flushed_at_load,
            cell,
        }
    }

    /// The team's spend: the database's value at load plus what this process added since.
    pub fn spend(&self) -> f64 {
        (self.spend_base + self.cell.recorded()).max(0.0)
    }
}

/// The key's user (`"LiteLLM_UserTable"`), when the row exists: its role decides which
/// management routes the key may call, and its `max_budget` binds every key of the user
/// together.
#[derive(Debug)]
pub struct UserInfo {
    pub user_id: String,
    /// LiteLLM's `user_role` (`proxy_admin`, `internal_user`, ...), as stored.
    pub user_role: Option<String>,
    pub max_budget: Option<f64>,
    /// The user's `models`, which bind the user's personal keys; empty means every model.
    pub models: Vec<String>,
    pub budget_duration: Option<String>,
    pub budget_reset_at: Option<NaiveDateTime>,
    spend_base: f64,
    cell: Arc<SpendCell>,
}

impl UserInfo {
    pub(crate) fn new(
        record: crate::db::UserRow,
        cell: Arc<SpendCell>,
        flushed_at_load: f64,
    ) -> Self {
        UserInfo {
            user_id: record.user_id,
            user_role: record.user_role,
            max_budget: record.max_budget,
            models: record.models,
            budget_duration: record.budget_duration,
            budget_reset_at: record.budget_reset_at,
            spend_base: record.spend - flushed_at_load,
            cell,
        }
    }

    /// The user's spend: the database's value at load plus what this process added since.
    pub fn spend(&self) -> f64 {
        (self.spend_base + self.cell.recorded()).max(0.0)
    }
}

/// The key's user as a member of the key's team (`"LiteLLM_TeamMembership"`), when the row
/// exists: its budget (`max_budget_in_team`) binds the user's keys of that team.
#[derive(Debug)]
pub struct MemberInfo {
    pub max_budget: Option<f64>,
    spend_base: f64,
    cell: Arc<SpendCell>,
}

impl MemberInfo {
    pub(crate) fn new(
        spend: f64,
        max_budget: Option<f64>,
        cell: Arc<SpendCell>,
        flushed_at_load: f64,
    ) -> Self {
        MemberInfo {
            max_budget,
            spend_base: spend - flushed_at_load,
            cell,
        }
    }

    /// The member's spend in the team, with this process's spend not yet written.
    pub fn spend(&self) -> f64 {
        (self.spend_base + self.cell.recorded()).max(0.0)
    }
}

/// An end user (the request's `user`, LiteLLM's customer) with its budget: blocked, over
/// budget, its limits and its default model apply to every request naming it.
#[derive(Debug)]
pub struct EndUserInfo {
    pub user_id: String,
    pub blocked: bool,
    pub default_model: Option<String>,
    pub max_budget: Option<f64>,
    pub tpm_limit: Option<i64>,
    pub rpm_limit: Option<i64>,
    pub max_parallel_requests: Option<i32>,
    spend_base: f64,
    cell: Arc<SpendCell>,
}

impl EndUserInfo {
    pub(crate) fn new(
        record: crate::db::EndUserRecord,
        cell: Arc<SpendCell>,
        flushed_at_load: f64,
    ) -> Self {
        let budget = record.budget.unwrap_or_default();
        EndUserInfo {
            user_id: record.user_id,
            blocked: record.blocked,
            default_model: record.default_model,
            max_budget: budget.max_budget,
            tpm_limit: budget.tpm_limit,
            rpm_limit: budget.rpm_limit,
            max_parallel_requests: budget.max_parallel_requests,
            spend_base: record.spend - flushed_at_load,
            cell,
        }
    }

    /// The end user's spend, with this process's spend not yet written.
    pub fn spend(&self) -> f64 {
        (self.spend_base + self.cell.recorded()).max(0.0)
    }

    /// The end user's limits for the rate limiter (from its budget row).
    pub fn limit_request(&self, estimated_tokens: u64) -> crate::limits::LimitRequest {
        let limit = |v: Option<i64>| v.and_then(|n| u64::try_from(n).ok());
        crate::limits::LimitRequest::new(crate::limits::LimitScope::EndUser(self.user_id.clone()))
            .rpm(limit(self.rpm_limit))
            .tpm(limit(self.tpm_limit))
            .max_parallel(limit(self.max_parallel_requests.map(i64::from)))
            .estimated_tokens(estimated_tokens)
    }

    /// A blocked end user is refused (400, LiteLLM's words); one whose spend is over its
    /// budget gets 400 `budget_exceeded`.
    pub fn check(&self) -> Result<(), KeyError> {
        if self.blocked {
            return Err(KeyError::invalid(
                format!(
                    "User blocked from making LLM API Calls. User={}",
                    self.user_id
                ),
                "user",
            ));
        }
        if let Some(max) = self.max_budget {
            let spend = self.spend();
            // LiteLLM refuses an end user only once its spend is over the budget.
            if spend > max {
                return Err(KeyError::BudgetExceeded(format!(
                    "ExceededBudget: End User={} over budget. Spend={spend}, Budget={max}",
                    self.user_id
                )));
            }
        }
        Ok(())
    }
}

/// One model's budget of a key (`model_max_budget`): the key's spend on that model group
/// within the current period (fixed windows of `time_period`, counted from the Unix epoch;
/// all time when there is none) against `budget_limit`.
#[derive(Debug)]
pub struct ModelBudget {
    pub model: String,
    pub limit: f64,
    /// When the current period ends (a reload starts the next).
    pub window_end: Option<NaiveDateTime>,
    spend_base: f64,
    cell: Arc<SpendCell>,
}

impl ModelBudget {
    pub(crate) fn new(
        model: String,
        limit: f64,
        window_end: Option<NaiveDateTime>,
        spend_in_window: f64,
        cell: Arc<SpendCell>,
        flushed_at_load: f64,
    ) -> Self {
        ModelBudget {
            model,
            limit,
            window_end,
            spend_base: spend_in_window - flushed_at_load,
            cell,
        }
    }

    /// The key's spend on the model in this period, with this process's unwritten spend.
    pub fn spend(&self) -> f64 {
        (self.spend_base + self.cell.recorded()).max(0.0)
    }
}

/// A JSON object's string values (aliases).
fn string_map(value: &Value) -> HashMap<String, String> {
    match value {
        Value::Object(map) => map
            .iter()
            .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
            .collect(),
        _ => HashMap::new(),
    }
}

/// An authenticated virtual key, shared from the cache (`Arc<KeyInfo>`).
#[derive(Debug)]
pub struct KeyInfo {
    /// Lowercase hex SHA-256 of the key (the `token` column; `api_key` in spend logs).
    pub token: String,
    pub key_name: Option<String>,
    pub key_alias: Option<String>,
    /// Empty means every model (or the team's models when the key has a team).
    pub models: Vec<String>,
    pub max_budget: Option<f64>,
    pub budget_duration: Option<String>,
    pub budget_reset_at: Option<NaiveDateTime>,
    pub expires: Option<NaiveDateTime>,
    pub rpm_limit: Option<i64>,
    pub tpm_limit: Option<i64>,
    pub max_parallel_requests: Option<i32>,
    /// The key's metadata object (`metadata.rag_namespaces` and the like).
    pub metadata: Value,
    pub blocked: bool,
    pub user_id: Option<String>,
    pub team_id: Option<String>,
    /// The key's team row, when `team_id` is set and the row exists.
    pub team: Option<TeamInfo>,
    /// The key's user, when `user_id` is set and the user row exists.
    pub user: Option<UserInfo>,
    /// The key's user in the key's team, when both are set and the membership row exists.
    pub member: Option<MemberInfo>,
    /// The key's per-model budgets (`model_max_budget`).
    pub model_budgets: Vec<ModelBudget>,
    /// True when the database was unreachable and `allow_requests_on_db_unavailable` let an
    /// unknown key through: nothing about it is known and no limit applies.
    pub unverified: bool,
    /// The key's model aliases (`aliases`): a requested name → the model group it means.
    pub aliases: HashMap<String, String>,
    /// The routes the key may call (`allowed_routes`); empty: every route its role allows.
    pub allowed_routes: Vec<String>,
    /// The key's soft budget (from its budget row): crossing it is reported once.
    pub soft_budget: Option<f64>,
    /// Whether the crossing of the soft budget was already reported (the row's
    /// `soft_budget_cooldown`, then this process's own report).
    soft_budget_reported: AtomicBool,
    spend_base: f64,
    cell: Arc<SpendCell>,
}

impl KeyInfo {
    pub(crate) fn new(
        record: KeyRecord,
        team: Option<TeamInfo>,
        cell: Arc<SpendCell>,
        flushed_at_load: f64,
    ) -> Self {
        let aliases = string_map(&record.aliases);
        KeyInfo {
            aliases,
            allowed_routes: record.allowed_routes,
            soft_budget: record.soft_budget,
            soft_budget_reported: AtomicBool::new(record.soft_budget_cooldown),
            token: record.token,
            key_name: record.key_name,
            key_alias: record.key_alias,
            models: record.models,
            max_budget: record.max_budget,
            budget_duration: record.budget_duration,
            budget_reset_at: record.budget_reset_at,
            expires: record.expires,
            rpm_limit: record.rpm_limit,
            tpm_limit: record.tpm_limit,
            max_parallel_requests: record.max_parallel_requests,
            metadata: record.metadata,
            blocked: record.blocked,
            user_id: record.user_id,
            team_id: record.team_id,
            team,
            user: None,
            member: None,
            model_budgets: Vec::new(),
            unverified: false,
            spend_base: record.spend - flushed_at_load,
            cell,
        }
    }

    /// The key with its user attached.
    pub(crate) fn with_user(mut self, user: Option<UserInfo>) -> Self {
        self.user = user;
        self
    }

    /// The key with its per-model budgets attached.
    pub(crate) fn with_model_budgets(mut self, budgets: Vec<ModelBudget>) -> Self {
        self.model_budgets = budgets;
        self
    }

    /// 400 `budget_exceeded` when the key's spend on this model group in the current period
    /// reached its `model_max_budget` (LiteLLM's words).
    pub fn check_model_budget(&self, model_group: &str) -> Result<(), KeyError> {
        if let Some(budget) = self.model_budgets.iter().find(|b| b.model == model_group) {
            let spend = budget.spend();
            if spend >= budget.limit {
                return Err(KeyError::BudgetExceeded(format!(
                    "LiteLLM Virtual Key: {}, key_alias: {}, exceeded budget for model={model_group}. Spend={spend}, Budget={}",
                    self.key_name.as_deref().unwrap_or(""),
                    self.key_alias.as_deref().unwrap_or(""),
                    budget.limit
                )));
            }
        }
        Ok(())
    }

    /// The key with its user's team membership attached.
    pub(crate) fn with_member(mut self, member: Option<MemberInfo>) -> Self {
        self.member = member;
        self
    }

    /// A key let through without a database (see [`KeyInfo::unverified`]).
    pub(crate) fn unverified(token: String, cell: Arc<SpendCell>) -> Self {
        let base = -cell.recorded();
        KeyInfo {
            token,
            key_name: None,
            key_alias: None,
            models: Vec::new(),
            max_budget: None,
            budget_duration: None,
            budget_reset_at: None,
            expires: None,
            rpm_limit: None,
            tpm_limit: None,
            max_parallel_requests: None,
            metadata: Value::Object(Default::default()),
            blocked: false,
            user_id: None,
            team_id: None,
            team: None,
            user: None,
            member: None,
            model_budgets: Vec::new(),
            unverified: true,
            aliases: HashMap::new(),
            allowed_routes: Vec::new(),
            soft_budget: None,
            soft_budget_reported: AtomicBool::new(true),
            spend_base: base,
            cell,
        }
    }

    /// The key's spend, including this process's spend not yet written to the database
    /// (the `x-litellm-key-spend` header).
    pub fn spend(&self) -> f64 {
        (self.spend_base + self.cell.recorded()).max(0.0)
    }

    /// The model group a requested name means for this key: the key's alias target, else its
    /// team's (`model_aliases`), else the name.
    pub fn resolve_alias<'a>(&'a self, model: &'a str) -> &'a str {
        if let Some(target) = self.aliases.get(model) {
            return target;
        }
        self.team
            .as_ref()
            .and_then(|t| t.model_aliases.get(model))
            .map_or(model, String::as_str)
    }

    /// True once, for the first caller that sees the key's spend at or over its soft budget
    /// (which reports the crossing); false before and after.
    pub fn soft_budget_crossed(&self) -> bool {
        match self.soft_budget {
            Some(soft) if self.spend() >= soft => {
                !self.soft_budget_reported.swap(true, Ordering::AcqRel)
            }
            _ => false,
        }
    }

    /// The key's user, when the key is a personal one (no team): whose budget and models bind
    /// it.
    pub fn personal_user(&self) -> Option<&UserInfo> {
        self.user.as_ref().filter(|_| self.team_id.is_none())
    }

    /// The key's own `rpm_limit`, else its team's.
    pub fn effective_rpm_limit(&self) -> Option<i64> {
        self.rpm_limit
            .or_else(|| self.team.as_ref().and_then(|t| t.rpm_limit))
    }

    /// The key's own `tpm_limit`, else its team's.
    pub fn effective_tpm_limit(&self) -> Option<i64> {
        self.tpm_limit
            .or_else(|| self.team.as_ref().and_then(|t| t.tpm_limit))
    }

    /// Unknown-to-the-request state: blocked (key or team) is 401 `auth_error`, past
    /// `expires` is 401 `expired_key`.
    pub fn check_active(&self, now: NaiveDateTime) -> Result<(), KeyError> {
        if self.blocked {
            return Err(KeyError::Auth(
                "Authentication Error - key is blocked".to_string(),
            ));
        }
        if self.team.as_ref().is_some_and(|t| t.blocked) {
            return Err(KeyError::Auth(
                "Authentication Error - the key's team is blocked".to_string(),
            ));
        }
        if let Some(expires) = self.expires
            && expires <= now
        {
            return Err(KeyError::Expired(format!(
                "Authentication Error - key expired. Key expired at {}",
                expires.format("%Y-%m-%dT%H:%M:%S%.3fZ")
            )));
        }
        Ok(())
    }

    /// Whether the key may use a model group (the public model name). An empty `models`
    /// allows every model, `*` and `all-proxy-models` too, `prefix/*` allows a family;
    /// `all-team-models` (or an empty list on a key with a team) defers to the team's list,
    /// which binds the key as well. 401 `key_model_access_denied` otherwise.
    pub fn check_model(&self, model_group: &str) -> Result<(), KeyError> {
        self.check_model_in(model_group, &[])
    }

    /// [`KeyInfo::check_model`] when the model belongs to access groups
    /// (`model_info.access_groups`); a key listing one of the groups may use the model.
    pub fn check_model_in(
        &self,
        model_group: &str,
        access_groups: &[String],
    ) -> Result<(), KeyError> {
        let key_defers = self.models.is_empty() || self.models.iter().any(|m| m == ALL_TEAM_MODELS);
        if !key_defers && !list_allows(&self.models, model_group, access_groups) {
            return Err(denied(model_group, &self.models));
        }
        if let Some(team) = &self.team
            && !team.models.is_empty()
            && !list_allows(&team.models, model_group, access_groups)
        {
            return Err(denied(model_group, &team.models));
        }
        if let Some(user) = self.personal_user()
            && !user.models.is_empty()
            && !list_allows(&user.models, model_group, access_groups)
        {
            return Err(denied(model_group, &user.models));
        }
        Ok(())
    }

    /// 400 `budget_exceeded` when the key's spend (or its team's, or its user's) is at or over
    /// its `max_budget`.
    pub fn check_budget(&self) -> Result<(), KeyError> {
        if let Some(max) = self.max_budget {
            let spend = self.spend();
            if spend >= max {
                return Err(KeyError::BudgetExceeded(format!(
                    "Budget has been exceeded! Current cost: {spend}, Max budget: {max}"
                )));
            }
        }
        if let Some(team) = &self.team
            && let Some(max) = team.max_budget
        {
            let spend = team.spend();
            if spend >= max {
                return Err(KeyError::BudgetExceeded(format!(
                    "Budget has been exceeded! Team={} Current cost: {spend}, Max budget: {max}",
                    team.team_id
                )));
            }
        }
        // A user's budget binds the user's personal keys; a team key spends the team's
        // budget (LiteLLM checks the user's budget only for keys without a team).
        if let Some(user) = self.personal_user()
            && let Some(max) = user.max_budget
        {
            let spend = user.spend();
            if spend >= max {
                return Err(KeyError::BudgetExceeded(format!(
                    "ExceededBudget: User={} over budget. Spend={spend}, Budget={max}",
                    user.user_id
                )));
            }
        }
        if let (Some(member), Some(user_id), Some(team_id)) =
            (&self.member, &self.user_id, &self.team_id)
            && let Some(max) = member.max_budget
        {
            let spend = member.spend();
            if spend >= max {
                return Err(KeyError::BudgetExceeded(format!(
                    "Budget has been exceeded! User={user_id} in Team={team_id} Current cost: {spend}, Max budget: {max}"
                )));
            }
        }
        Ok(())
    }

    /// The budgets a request of this key counts against (its own, its team's, its user's), for the
    /// reservation made before the upstream call. Unverified keys have none.
    pub fn budget_claims(&self) -> Vec<BudgetClaim> {
        let mut out = Vec::new();
        if let Some(max) = self.max_budget {
            out.push(BudgetClaim {
                scope: format!("key:{}", self.token),
                label: String::new(),
                spend: self.spend(),
                max_budget: max,
            });
        }
        if let Some(team) = &self.team
            && let Some(max) = team.max_budget
        {
            out.push(BudgetClaim {
                scope: format!("team:{}", team.team_id),
                label: format!("Team={} ", team.team_id),
                spend: team.spend(),
                max_budget: max,
            });
        }
        if let Some(user) = self.personal_user()
            && let Some(max) = user.max_budget
        {
            out.push(BudgetClaim {
                scope: format!("user:{}", user.user_id),
                label: format!("User={} ", user.user_id),
                spend: user.spend(),
                max_budget: max,
            });
        }
        if let (Some(member), Some(user_id), Some(team_id)) =
            (&self.member, &self.user_id, &self.team_id)
            && let Some(max) = member.max_budget
        {
            out.push(BudgetClaim {
                scope: format!("member:{team_id}:{user_id}"),
                label: format!("User={user_id} in Team={team_id} "),
                spend: member.spend(),
                max_budget: max,
            });
        }
        out
    }

    /// True when a budget period of the key or its team has ended, so the cached copy must be
    /// reloaded (which resets the spend).
    pub(crate) fn budget_reset_due(&self, now: NaiveDateTime) -> bool {
        // Only a parseable duration can be reset; anything else would reload on every request.
        let due = |duration: &Option<String>, at: Option<NaiveDateTime>| {
            duration.as_deref().and_then(parse_duration).is_some() && at.is_some_and(|at| at <= now)
        };
        let key_due = due(&self.budget_duration, self.budget_reset_at);
        let team_due = self
            .team
            .as_ref()
            .is_some_and(|t| due(&t.budget_duration, t.budget_reset_at));
        let user_due = self
            .user
            .as_ref()
            .is_some_and(|u| due(&u.budget_duration, u.budget_reset_at));
        let model_due = self
            .model_budgets
            .iter()
            .any(|b| b.window_end.is_some_and(|end| end <= now));
        key_due || team_due || user_due || model_due
    }
}

fn list_allows(list: &[String], model: &str, access_groups: &[String]) -> bool {
    list.iter().any(|entry| {
        entry == model
            || ALL_MODELS.contains(&entry.as_str())
            || access_groups.contains(entry)
            || entry
                .strip_suffix('*')
                .is_some_and(|prefix| !prefix.is_empty() && model.starts_with(prefix))
    })
}

fn denied(model: &str, allowed: &[String]) -> KeyError {
    KeyError::ModelDenied(format!(
        "key not allowed to access model. This key can only access models={allowed:?}. Tried to access {model}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(models: &[&str]) -> KeyRecord {
        KeyRecord {
            token: "t".into(),
            key_name: None,
            key_alias: None,
            spend: 0.0,
            max_budget: None,
            budget_duration: None,
            budget_reset_at: None,
            expires: None,
            models: models.iter().map(|s| s.to_string()).collect(),
            rpm_limit: None,
            tpm_limit: None,
            max_parallel_requests: None,
            metadata: Value::Null,
            blocked: false,
            user_id: None,
            team_id: None,
            created_at: None,
            updated_at: None,
            ..KeyRecord::default()
        }
    }

    fn info(models: &[&str], team_models: Option<&[&str]>) -> KeyInfo {
        let team = team_models.map(|m| {
            let mut t = TeamRecord::new("team");
            t.models = m.iter().map(|s| s.to_string()).collect();
            TeamInfo::new(t, Arc::default(), 0.0)
        });
        KeyInfo::new(record(models), team, Arc::default(), 0.0)
    }

    #[test]
    fn model_lists() {
        assert!(info(&[], None).check_model("anything").is_ok());
        assert!(info(&["gpt-4o"], None).check_model("gpt-4o").is_ok());
        assert!(matches!(
            info(&["gpt-4o"], None).check_model("gpt-4o-mini"),
            Err(KeyError::ModelDenied(_))
        ));
        assert!(info(&["all-proxy-models"], None).check_model("x").is_ok());
        assert!(
            info(&["openai/*"], None)
                .check_model("openai/gpt-4o")
                .is_ok()
        );
        assert!(
            info(&["openai/*"], None)
                .check_model("anthropic/claude")
                .is_err()
        );
        assert!(
            info(&["no-default-models"], None)
                .check_model("gpt-4o")
                .is_err()
        );
        assert!(
            info(&["grp"], None)
                .check_model_in("m", &["grp".to_string()])
                .is_ok()
        );
    }

    #[test]
    fn team_models_apply_when_key_list_is_empty_and_bind_always() {
        assert!(info(&[], Some(&["a"])).check_model("a").is_ok());
        assert!(info(&[], Some(&["a"])).check_model("b").is_err());
        assert!(
            info(&["all-team-models"], Some(&["a"]))
                .check_model("b")
                .is_err()
        );
        assert!(info(&["b"], Some(&["a"])).check_model("b").is_err());
        assert!(info(&[], Some(&[])).check_model("b").is_ok());
    }

    #[test]
    fn budget_counts_live_spend() {
        let cell: Arc<SpendCell> = Arc::default();
        let mut r = record(&[]);
        r.max_budget = Some(1.0);
        r.spend = 0.5;
        let key = KeyInfo::new(r, None, cell, 0.0);
        assert!(key.check_budget().is_ok());
        assert_eq!(key.spend(), 0.5);
    }

    #[test]
    fn expiry_and_block() {
        let now = chrono::Utc::now().naive_utc();
        let mut r = record(&[]);
        r.expires = Some(now - chrono::Duration::seconds(1));
        let key = KeyInfo::new(r.clone(), None, Arc::default(), 0.0);
        assert!(matches!(key.check_active(now), Err(KeyError::Expired(_))));
        r.expires = None;
        r.blocked = true;
        let key = KeyInfo::new(r, None, Arc::default(), 0.0);
        assert!(matches!(key.check_active(now), Err(KeyError::Auth(_))));
    }
}
