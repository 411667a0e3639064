//! Who may manage which key, for callers other than a proxy admin (LiteLLM's key endpoints'
//! checks): an internal user makes keys for itself, within its own models and budget, and
//! manages its own keys; an admin member of a team also manages that team's keys; a viewer
//! reads. The `/key/*` operations themselves are in [`crate::keys`].

use serde_json::Value;

use super::teams::is_team_admin_of;
use super::{forbidden, store};
use crate::db::KeyRecord;
use crate::error::ApiError;
use crate::keys::{GenerateKeyRequest, KeyService, ListKeysQuery};
use crate::roles::{Principal, Role};
use crate::secret::hash_key;

/// A key as a request names it (`sk-...`) or its token hash.
fn token_of(key: &str) -> String {
    if key.starts_with("sk-") {
        hash_key(key)
    } else {
        key.to_string()
    }
}

fn role_text(principal: &Principal) -> &'static str {
    principal.role.map_or("unknown", Role::as_str)
}

/// The key scoping of one caller.
pub struct KeyAccess<'a> {
    keys: &'a KeyService,
    principal: &'a Principal,
}

impl<'a> KeyAccess<'a> {
    pub fn new(keys: &'a KeyService, principal: &'a Principal) -> Self {
        KeyAccess { keys, principal }
    }

    /// Whether the caller may manage this key: its own, or its team's as the team's admin.
    async fn manages(&self, key: &KeyRecord) -> Result<bool, ApiError> {
        if self.principal.is_proxy_admin() {
            return Ok(true);
        }
        let Some(own) = self.principal.user_id() else {
            return Ok(false);
        };
        if key.user_id.as_deref() == Some(own) {
            return Ok(true);
        }
        match &key.team_id {
            Some(team_id) => is_team_admin_of(self.keys, self.principal, team_id).await,
            None => Ok(false),
        }
    }

    /// `/key/generate` by a caller that is not a proxy admin: a key for itself (its
    /// `user_id` filled in), in a team only as a member, within its user's models and budget;
    /// a team admin may make keys for the team's members.
    pub async fn check_generate(&self, request: &mut GenerateKeyRequest) -> Result<(), ApiError> {
        if self.principal.is_proxy_admin() {
            return Ok(());
        }
        let Some(own) = self.principal.user_id().map(str::to_string) else {
            return Err(forbidden(
                "A key without a user can only generate keys with the master key or a proxy admin's key",
            ));
        };
        let team_admin = match &request.team_id {
            Some(team_id) => is_team_admin_of(self.keys, self.principal, team_id).await?,
            None => false,
        };
        match request.user_id.as_deref() {
            None => request.user_id = Some(own.clone()),
            Some(asked) if asked == own || team_admin => {}
            Some(asked) => {
                return Err(forbidden(format!(
                    "User can only create keys for themselves. Got user_id={asked}, Your ID={own}"
                )));
            }
        }
        if let Some(team_id) = &request.team_id
            && !team_admin
        {
            let teams = store(self.keys).user_teams(&own).await?.unwrap_or_default();
            if !teams.iter().any(|t| t == team_id) {
                return Err(forbidden(format!(
                    "User={own} is not a member of team_id={team_id}, so cannot create keys for it"
                )));
            }
        }
        // Within the user's own limits.
        if let Some(user) = store(self.keys).get_user(&own).await? {
            if !user.models.is_empty()
                && let Some(models) = &request.models
                && let Some(outside) = models.iter().find(|m| !user.models.contains(m))
            {
                return Err(forbidden(format!(
                    "Key model {outside} is not in the user's models {:?}",
                    user.models
                )));
            }
            if let (Some(user_max), Some(key_max)) = (user.max_budget, request.max_budget)
                && key_max > user_max
            {
                return Err(forbidden(format!(
                    "Key max_budget {key_max} is above the user's max_budget {user_max}"
                )));
            }
        }
        Ok(())
    }

    /// A key the caller names for a write (`/key/update|delete|block|unblock|regenerate`):
    /// 404 when unknown, 403 when not the caller's to manage.
    pub async fn check_write(&self, key: &str) -> Result<(), ApiError> {
        if self.principal.is_proxy_admin() {
            return Ok(());
        }
        let record = store(self.keys)
            .get_key(&token_of(key))
            .await?
            .ok_or_else(|| ApiError::not_found("Key not found in database").with_param("key"))?;
        if self.manages(&record).await? {
            return Ok(());
        }
        Err(forbidden(format!(
            "You are not allowed to manage this key. Your role={}",
            role_text(self.principal)
        )))
    }

    /// `/key/delete` by name or alias: every key it names must be the caller's to manage.
    pub async fn check_delete(
        &self,
        keys: Option<&[String]>,
        aliases: Option<&[String]>,
    ) -> Result<(), ApiError> {
        if self.principal.is_proxy_admin() {
            return Ok(());
        }
        for key in keys.unwrap_or_default() {
            self.check_write(key).await?;
        }
        for alias in aliases.unwrap_or_default() {
            for token in store(self.keys).tokens_by_alias(alias).await? {
                self.check_write(&token).await?;
            }
        }
        Ok(())
    }

    /// `/key/info` about another key: an admin or viewer reads any; anyone else its own keys
    /// and (as a team admin) its team's, else LiteLLM's 403; 404 when the key is unknown.
    pub async fn check_read(&self, key: &str) -> Result<(), ApiError> {
        if self.principal.reads_everything() {
            return Ok(());
        }
        let record = store(self.keys)
            .get_key(&token_of(key))
            .await?
            .ok_or_else(|| ApiError::not_found("Key not found in database").with_param("key"))?;
        let own_key = self.principal.key().is_some_and(|k| {
            crate::secret::constant_time_eq(k.token.as_bytes(), record.token.as_bytes())
        });
        if own_key || self.manages(&record).await? {
            return Ok(());
        }
        Err(forbidden(format!(
            "You are not allowed to access this key's info. Your role={}",
            role_text(self.principal)
        )))
    }

    /// `/key/list` by a caller that is not an admin or viewer: its own keys, or its team's as
    /// the team's admin.
    pub async fn scope_list(&self, query: &mut ListKeysQuery) -> Result<(), ApiError> {
        if self.principal.reads_everything() {
            return Ok(());
        }
        if let Some(team_id) = &query.team_id
            && is_team_admin_of(self.keys, self.principal, team_id).await?
        {
            return Ok(());
        }
        let Some(own) = self.principal.user_id().map(str::to_string) else {
            return Err(forbidden(
                "Only a proxy admin, or a key with a user, may list keys",
            ));
        };
        match query.user_id.as_deref() {
            None => query.user_id = Some(own),
            Some(asked) if asked == own => {}
            Some(asked) => {
                return Err(forbidden(format!(
                    "User={own} may only list its own keys, not user_id={asked}"
                )));
            }
        }
        Ok(())
    }
}

/// The key a `/key/regenerate` body names, if any (the path names it otherwise).
pub fn regenerate_target(body: &serde_json::Map<String, Value>) -> Option<&str> {
    body.get("key").and_then(Value::as_str)
}
