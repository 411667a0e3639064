//! `KeyService`: the cached key lookup behind every request, and the `/key/*` operations.
//!
//! Lookups go through an in-memory cache with a TTL (LiteLLM's `user_api_key_cache_ttl`), so
//! a cached key costs no database round trip. A second, TTL-less copy of every key seen keeps
//! cached keys working through a database outage.

use std::sync::Arc;
use std::time::Duration;

use chrono::{NaiveDateTime, SubsecRound, Utc};
use moka::future::Cache;
use serde_json::{Map, Value, json};
use tokio::sync::broadcast;

use super::api::{
    BlockKeyRequest, DeleteKeyRequest, GenerateKeyRequest, ListKeysQuery, UpdateKeyRequest,
    from_json,
};
use super::duration::parse_duration;
use super::error::KeyError;
use super::info::{EndUserInfo, KeyInfo, MemberInfo, ModelBudget, TeamInfo, UserInfo};
use crate::changes::{Change, ChangeBus};
use crate::db::{KeyRecord, KeyStore};
use crate::error::ApiError;
use crate::secret::hash_key;
use crate::spend::{SpendLedger, SpendRecord, SpendWriter, SpendWriterOptions};

/// Settings of the key service (from `general_settings`).
#[derive(Debug, Clone)]
pub struct KeyServiceOptions {
    /// How long a key lookup is trusted without asking the database
    /// (`user_api_key_cache_ttl`, default 60 s).
    pub cache_ttl: Duration,
    /// Most keys kept in memory.
    pub cache_capacity: u64,
    /// Let requests with keys not in the cache through while the database is down
    /// (`allow_requests_on_db_unavailable`); otherwise they get 503.
    pub allow_requests_on_db_unavailable: bool,
    /// Batching of spend writes.
    pub spend: SpendWriterOptions,
}

impl Default for KeyServiceOptions {
    fn default() -> Self {
        KeyServiceOptions {
            cache_ttl: Duration::from_secs(60),
            cache_capacity: 100_000,
            allow_requests_on_db_unavailable: false,
            spend: SpendWriterOptions::default(),
        }
    }
}

/// Why a cache fill failed; shared between the callers waiting on the same fill.
#[derive(Debug)]
enum LoadError {
    NotFound,
    Store(KeyError),
}

/// Keys: lookup with caching and enforcement, the `/key/*` operations, and spend recording.
/// Cheap to clone (all clones share one cache and one spend writer).
#[derive(Clone, Debug)]
pub struct KeyService {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: KeyStore,
    options: KeyServiceOptions,
    fresh: Cache<String, Arc<KeyInfo>>,
    stale: Cache<String, Arc<KeyInfo>>,
    /// End users by id (`None`: not in the table), with the key cache's TTL.
    end_users: Cache<String, Option<Arc<EndUserInfo>>>,
    ledger: Arc<SpendLedger>,
    writer: SpendWriter,
    /// Where key changes are announced to the other instances, once attached.
    changes: std::sync::OnceLock<ChangeBus>,
}

impl Inner {
    /// Drops the cached keys a change makes stale.
    async fn apply(&self, change: &Change) {
        let drop_if = |matches: Box<dyn Fn(&KeyInfo) -> bool + Send + Sync>| {
            let matches: Arc<dyn Fn(&KeyInfo) -> bool + Send + Sync> = Arc::from(matches);
            for cache in [&self.fresh, &self.stale] {
                let matches = matches.clone();
                // Fails only without `support_invalidation_closures`, which both caches set.
                if cache
                    .invalidate_entries_if(move |_, info| matches(info))
                    .is_err()
                {
                    cache.invalidate_all();
                }
            }
        };
        match change {
            Change::Key(token) => {
                self.fresh.invalidate(token).await;
                self.stale.invalidate(token).await;
            }
            Change::Team(id) => {
                let id = id.clone();
                drop_if(Box::new(move |info| info.team_id.as_deref() == Some(&id)));
            }
            Change::User(id) => {
                let id = id.clone();
                drop_if(Box::new(move |info| info.user_id.as_deref() == Some(&id)));
            }
            // A budget row may be a team member's or an end user's budget; budget writes are
            // rare, so every key and end user is read afresh (the outage copies stay).
            Change::Budget(_) => {
                self.fresh.invalidate_all();
                self.end_users.invalidate_all();
            }
            Change::Customer(id) => self.end_users.invalidate(id).await,
            Change::Everything => {
                self.fresh.invalidate_all();
                self.stale.invalidate_all();
                self.end_users.invalidate_all();
            }
        }
    }
}

/// Now, at the millisecond precision of `timestamp(3)`, so that values kept in memory equal
/// the ones read back.
pub fn now() -> NaiveDateTime {
    Utc::now().naive_utc().trunc_subsecs(3)
}

/// A timestamp as LiteLLM's JSON answers write it (`null` when absent).
pub fn timestamp(t: Option<NaiveDateTime>) -> Value {
    t.map_or(Value::Null, |t| {
        Value::String(t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
    })
}

/// `now` plus a budget period or lifetime; a 400 when it is too far out to represent.
pub fn add(now: NaiveDateTime, duration: Duration) -> Result<NaiveDateTime, KeyError> {
    chrono::Duration::from_std(duration)
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .ok_or_else(|| KeyError::invalid("duration too long", "duration"))
}

/// A key as given by a caller (`sk-...` or the token hash) to its token hash.
fn token_of(key: &str) -> String {
    let key = key.trim();
    if key.starts_with("sk-") {
        hash_key(key)
    } else {
        key.to_ascii_lowercase()
    }
}

/// LiteLLM's `key_name`: `sk-...` and the last four characters.
fn abbreviate(key: &str) -> String {
    let tail: String = key
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("sk-...{tail}")
}

/// `sk-` and 32 URL-safe characters (192 bits) from the operating system's CSPRNG.
fn generate_key() -> Result<String, KeyError> {
    use rand::TryRng;
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut bytes = [0u8; 32];
    rand::rngs::SysRng
        .try_fill_bytes(&mut bytes)
        .map_err(|e| KeyError::Unavailable(format!("operating system RNG failed: {e}")))?;
    // 256 is a multiple of 64, so `b % 64` is uniform.
    let body: String = bytes
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(b % 64)]))
        .collect();
    Ok(format!("sk-{body}"))
}

fn check_non_negative_f64(value: Option<f64>, field: &str) -> Result<(), KeyError> {
    match value {
        Some(v) if !v.is_finite() || v < 0.0 => Err(KeyError::invalid(
            format!("'{field}' must be a non-negative number"),
            field,
        )),
        _ => Ok(()),
    }
}

fn check_non_negative_i64(value: Option<i64>, field: &str) -> Result<(), KeyError> {
    match value {
        Some(v) if v < 0 => Err(KeyError::invalid(
            format!("'{field}' must be a non-negative integer"),
            field,
        )),
        _ => Ok(()),
    }
}

/// Metadata the gateway reads itself must have its shape: `rag_namespaces` a list of
/// strings (anything else would deny the key every RAG route), `rag_create_collections` a
/// boolean.
fn check_metadata(metadata: &Map<String, Value>) -> Result<(), KeyError> {
    if let Some(value) = metadata.get("rag_namespaces")
        && !value
            .as_array()
            .is_some_and(|items| items.iter().all(Value::is_string))
    {
        return Err(KeyError::invalid(
            "'metadata.rag_namespaces' must be a list of strings",
            "metadata.rag_namespaces",
        ));
    }
    if let Some(value) = metadata.get("rag_create_collections")
        && !value.is_boolean()
    {
        return Err(KeyError::invalid(
            "'metadata.rag_create_collections' must be a boolean",
            "metadata.rag_create_collections",
        ));
    }
    Ok(())
}

fn check_models(models: &[String]) -> Result<(), KeyError> {
    if models.iter().any(|m| m.trim().is_empty()) {
        return Err(KeyError::invalid(
            "'models' entries must be non-empty strings",
            "models",
        ));
    }
    Ok(())
}

/// Each alias must name a model group (a non-empty string).
fn check_aliases(aliases: &Map<String, Value>) -> Result<(), KeyError> {
    for (name, target) in aliases {
        if name.trim().is_empty() || target.as_str().is_none_or(|t| t.trim().is_empty()) {
            return Err(KeyError::invalid(
                "'aliases' must map model names to model names (non-empty strings)",
                "aliases",
            ));
        }
    }
    Ok(())
}

/// Each entry is `{"budget_limit": dollars >= 0, "time_period": a duration}`, as LiteLLM takes.
fn check_model_max_budget(budgets: &Map<String, Value>) -> Result<(), KeyError> {
    for (model, budget) in budgets {
        let limit = budget.get("budget_limit").and_then(Value::as_f64);
        let period_ok = match budget.get("time_period") {
            None | Some(Value::Null) => true,
            Some(Value::String(p)) => parse_duration(p).is_some(),
            Some(_) => false,
        };
        if model.trim().is_empty() || !limit.is_some_and(|l| l >= 0.0) || !period_ok {
            return Err(KeyError::invalid(
                format!(
                    "'model_max_budget.{model}' must be {{\"budget_limit\": a non-negative number, \"time_period\": a duration like \"1d\"}}"
                ),
                "model_max_budget",
            ));
        }
    }
    Ok(())
}

fn check_strings(list: &[String], field: &str) -> Result<(), KeyError> {
    if list.iter().any(|m| m.trim().is_empty()) {
        return Err(KeyError::invalid(
            format!("'{field}' entries must be non-empty strings"),
            field,
        ));
    }
    Ok(())
}

/// The `/key/generate` and `/key/update` fields LiteLLM keeps in the key's `metadata`
/// (`tags`, `guardrails`, per-model limits, `enforced_params`): set when given, removed when
/// `null`.
fn metadata_fields(
    metadata: &mut Value,
    fields: [(&str, Option<Option<Value>>); 5],
) -> Result<(), KeyError> {
    let Value::Object(map) = metadata else {
        return Err(KeyError::invalid(
            "'metadata' must be an object",
            "metadata",
        ));
    };
    for (name, value) in fields {
        match value {
            None => {}
            Some(None) => {
                map.remove(name);
            }
            Some(Some(value)) => {
                map.insert(name.to_string(), value);
            }
        }
    }
    Ok(())
}

/// Who LiteLLM names as the creator of rows the proxy admin writes.
const PROXY_ADMIN_NAME: &str = "default_user_id";

fn parse_field_duration(text: &str, field: &str) -> Result<Duration, KeyError> {
    parse_duration(text).ok_or_else(|| {
        KeyError::invalid(
            format!("'{field}' must be a duration like \"30s\", \"10m\", \"24h\" or \"30d\""),
            field,
        )
    })
}

/// The LiteLLM-shaped JSON of a key row (without the raw key, which is never stored).
fn record_json(record: &KeyRecord, spend: f64) -> Map<String, Value> {
    let value = json!({
        "token": record.token,
        "key_name": record.key_name,
        "key_alias": record.key_alias,
        "spend": spend,
        "max_budget": record.max_budget,
        "budget_duration": record.budget_duration,
        "budget_reset_at": timestamp(record.budget_reset_at),
        "expires": timestamp(record.expires),
        "models": record.models,
        "rpm_limit": record.rpm_limit,
        "tpm_limit": record.tpm_limit,
        "max_parallel_requests": record.max_parallel_requests,
        "metadata": record.metadata,
        "blocked": record.blocked,
        "user_id": record.user_id,
        "team_id": record.team_id,
        "created_at": timestamp(record.created_at),
        "updated_at": timestamp(record.updated_at),
        "aliases": record.aliases,
        "allowed_routes": record.allowed_routes,
        "model_max_budget": record.model_max_budget,
        "config": record.config,
        "permissions": record.permissions,
        "allowed_cache_controls": record.allowed_cache_controls,
        "budget_id": record.budget_id,
        "soft_budget": record.soft_budget,
        "tags": record.metadata.get("tags"),
    });
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

impl KeyService {
    /// Builds the service and starts its spend writer (needs a tokio runtime).
    pub fn new(store: KeyStore, options: KeyServiceOptions) -> Self {
        let ledger = Arc::new(SpendLedger::default());
        let writer = SpendWriter::start(store.clone(), ledger.clone(), options.spend.clone());
        // Invalidation closures: a team or user change drops every key of that team or user.
        let fresh = Cache::builder()
            .max_capacity(options.cache_capacity)
            .time_to_live(options.cache_ttl)
            .support_invalidation_closures()
            .build();
        let stale = Cache::builder()
            .max_capacity(options.cache_capacity)
            .support_invalidation_closures()
            .build();
        let end_users = Cache::builder()
            .max_capacity(options.cache_capacity)
            .time_to_live(options.cache_ttl)
            .build();
        KeyService {
            inner: Arc::new(Inner {
                store,
                options,
                fresh,
                stale,
                end_users,
                ledger,
                writer,
                changes: std::sync::OnceLock::new(),
            }),
        }
    }

    /// Follows `bus` from now on: a key another instance changed is dropped from this
    /// instance's caches at once, and this instance's changes are announced there. Once.
    pub fn attach_changes(&self, bus: ChangeBus) {
        let mut changes = bus.subscribe();
        if self.inner.changes.set(bus).is_err() {
            return;
        }
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            loop {
                let change = match changes.recv().await {
                    Ok(change) => change,
                    Err(broadcast::error::RecvError::Lagged(_)) => Change::Everything,
                    Err(broadcast::error::RecvError::Closed) => break,
                };
                let Some(inner) = weak.upgrade() else {
                    break;
                };
                inner.apply(&change).await;
            }
        });
    }

    /// Applies a change to this instance's caches and announces it to every instance on the
    /// change bus (the others follow within their TTL when there is none). The management
    /// routes call this after each write that makes cached keys wrong.
    pub async fn changed(&self, change: Change) {
        self.inner.apply(&change).await;
        if let Some(bus) = self.inner.changes.get() {
            bus.publish(change).await;
        }
    }

    /// The change bus this service follows, once attached (for the other caches of the
    /// management plane, which listen on the same bus).
    pub fn change_bus(&self) -> Option<&ChangeBus> {
        self.inner.changes.get()
    }

    pub fn store(&self) -> &KeyStore {
        &self.inner.store
    }

    pub fn options(&self) -> &KeyServiceOptions {
        &self.inner.options
    }

    // ----- enforcement -------------------------------------------------------------------

    /// Authenticates a virtual key as presented by a client (`sk-...`): 401 `auth_error` when
    /// unknown or blocked (key or team), 401 `expired_key` when expired, 503 when the
    /// database is down and the key is not cached (unless `allow_requests_on_db_unavailable`).
    /// The caller then runs [`KeyInfo::check_model`] and [`KeyInfo::check_budget`].
    pub async fn authenticate(&self, raw_key: &str) -> Result<Arc<KeyInfo>, ApiError> {
        let raw_key = raw_key.trim();
        if raw_key.is_empty() {
            return Err(
                KeyError::Auth("Authentication Error - no API key passed in".into()).into(),
            );
        }
        // Always hash what the client sent: a stored hash presented as a key must not match.
        let info = self.lookup_token(&hash_key(raw_key)).await?;
        if !info.unverified {
            info.check_active(now())?;
        }
        Ok(info)
    }

    /// The key with this token hash, from the cache or the database (with budget resets
    /// applied). Does not check blocked/expired; [`KeyService::authenticate`] does.
    pub async fn lookup_token(&self, token: &str) -> Result<Arc<KeyInfo>, KeyError> {
        let inner = &self.inner;
        let now = now();
        if let Some(info) = inner.fresh.get(token).await {
            if !info.budget_reset_due(now) {
                return Ok(info);
            }
            inner.fresh.invalidate(token).await;
        }
        let loaded = inner
            .fresh
            .try_get_with(token.to_string(), async {
                match self.load(token, now).await {
                    Ok(Some(info)) => Ok(Arc::new(info)),
                    Ok(None) => Err(LoadError::NotFound),
                    Err(e) => Err(LoadError::Store(e)),
                }
            })
            .await;
        match loaded {
            Ok(info) => {
                inner.stale.insert(token.to_string(), info.clone()).await;
                Ok(info)
            }
            Err(error) => match &*error {
                LoadError::NotFound => {
                    inner.stale.invalidate(token).await;
                    Err(KeyError::Auth(
                        "Authentication Error - invalid API key".to_string(),
                    ))
                }
                LoadError::Store(e) => {
                    if let Some(info) = inner.stale.get(token).await {
                        // Serve the last known copy, and trust it for another TTL so the
                        // outage does not cost every request a connection timeout.
                        tracing::warn!(error = %e, "key store unavailable; using cached key");
                        inner.fresh.insert(token.to_string(), info.clone()).await;
                        return Ok(info);
                    }
                    if inner.options.allow_requests_on_db_unavailable {
                        tracing::warn!(error = %e, "key store unavailable; letting key through");
                        return Ok(Arc::new(KeyInfo::unverified(
                            token.to_string(),
                            inner.ledger.key_cell(token),
                        )));
                    }
                    Err(KeyError::Unavailable(e.to_string()))
                }
            },
        }
    }

    /// The end user a request names (its `user`), when the table has it: cached like keys
    /// (an unknown end user too, so that requests naming one cost no database round trip),
    /// dropped at once when a customer or budget route changes it on any instance. A budget
    /// period that ended starts a new one (spend to 0) when the end user is read.
    pub async fn end_user(&self, user_id: &str) -> Result<Option<Arc<EndUserInfo>>, KeyError> {
        let inner = &self.inner;
        if let Some(found) = inner.end_users.get(user_id).await {
            return Ok(found);
        }
        let store = &inner.store;
        let cell = inner.ledger.end_user_cell(user_id);
        let mut flushed = cell.flushed();
        let Some(mut record) = store.get_end_user(user_id).await? else {
            inner.end_users.insert(user_id.to_string(), None).await;
            return Ok(None);
        };
        if let Some(budget) = &record.budget
            && let Some(period) = budget.budget_duration.as_deref().and_then(parse_duration)
        {
            let now = now();
            if budget.budget_reset_at.is_none_or(|at| at <= now) {
                let next = add(now, period)?;
                let first = budget.budget_reset_at.is_none();
                if store
                    .reset_budget_row(&budget.budget_id, budget.budget_reset_at, next)
                    .await?
                    && !first
                {
                    store.reset_end_user_spend(&budget.budget_id).await?;
                }
                flushed = cell.flushed();
                match store.get_end_user(user_id).await? {
                    Some(again) => record = again,
                    None => return Ok(None),
                }
            }
        }
        let info = Some(Arc::new(EndUserInfo::new(record, cell, flushed)));
        inner
            .end_users
            .insert(user_id.to_string(), info.clone())
            .await;
        Ok(info)
    }

    /// Drops a key from the cache of this instance, and of every instance on the same change
    /// bus (`changes`); the others follow within their TTL.
    pub async fn invalidate(&self, token: &str) {
        self.changed(Change::Key(token.to_string())).await;
    }

    /// Reads a key and its team, starting a new budget period where one is due.
    async fn load(&self, token: &str, now: NaiveDateTime) -> Result<Option<KeyInfo>, KeyError> {
        let store = &self.inner.store;
        let cell = self.inner.ledger.key_cell(token);
        // Read `flushed` before the row: see `SpendCell` for why this order never undercounts.
        let mut flushed = cell.flushed();
        let Some(mut record) = store.get_key(token).await? else {
            return Ok(None);
        };
        if let Some(period) = record.budget_duration.as_deref().and_then(parse_duration) {
            let due = record.budget_reset_at.is_none_or(|at| at <= now);
            if due {
                let next = add(now, period)?;
                // No reset time yet (a key made by another tool): start the period now,
                // without touching spend.
                let zero_spend = record.budget_reset_at.is_some();
                store
                    .reset_key_budget(token, record.budget_reset_at, next, zero_spend)
                    .await?;
                flushed = cell.flushed();
                match store.get_key(token).await? {
                    Some(again) => record = again,
                    None => return Ok(None),
                }
            }
        }
        let team = match record.team_id.as_deref() {
            Some(team_id) => self.load_team(team_id, now).await?,
            None => None,
        };
        let user = match record.user_id.clone() {
            Some(user_id) => self.load_user(user_id).await?,
            None => None,
        };
        let member = match (&record.team_id, &record.user_id) {
            (Some(team_id), Some(user_id)) if team.is_some() => {
                self.load_member(team_id, user_id).await?
            }
            _ => None,
        };
        let model_budgets = self.load_model_budgets(&record, now).await?;
        Ok(Some(
            KeyInfo::new(record, team, cell, flushed)
                .with_user(user)
                .with_member(member)
                .with_model_budgets(model_budgets),
        ))
    }

    /// The key's `model_max_budget` entries with the key's spend on each model in the current
    /// period, from its spend logs (so every instance and every restart counts the same).
    async fn load_model_budgets(
        &self,
        record: &KeyRecord,
        now: NaiveDateTime,
    ) -> Result<Vec<ModelBudget>, KeyError> {
        let Value::Object(budgets) = &record.model_max_budget else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for (model, budget) in budgets {
            let Some(limit) = budget.get("budget_limit").and_then(Value::as_f64) else {
                continue;
            };
            let period = budget
                .get("time_period")
                .and_then(Value::as_str)
                .and_then(parse_duration);
            let (start, end) = match period {
                Some(period) => {
                    let length = i64::try_from(period.as_secs()).unwrap_or(i64::MAX).max(1);
                    let now_secs = now.and_utc().timestamp();
                    let start_secs = now_secs - now_secs.rem_euclid(length);
                    let start =
                        chrono::DateTime::from_timestamp(start_secs, 0).map(|t| t.naive_utc());
                    let end =
                        chrono::DateTime::from_timestamp(start_secs.saturating_add(length), 0)
                            .map(|t| t.naive_utc());
                    (start, end)
                }
                None => (None, None),
            };
            let cell = self.inner.ledger.key_model_cell(&record.token, model);
            let flushed = cell.flushed();
            let spent: f64 = self
                .inner
                .store
                .key_model_spend(&record.token, start)
                .await?
                .into_iter()
                .filter(|(group, _)| group == model)
                .map(|(_, spend)| spend)
                .sum();
            out.push(ModelBudget::new(
                model.clone(),
                limit,
                end,
                spent,
                cell,
                flushed,
            ));
        }
        Ok(out)
    }

    /// The key's user's membership of the key's team, when the row exists.
    async fn load_member(
        &self,
        team_id: &str,
        user_id: &str,
    ) -> Result<Option<MemberInfo>, KeyError> {
        let cell = self.inner.ledger.member_cell(team_id, user_id);
        let flushed = cell.flushed();
        Ok(self
            .inner
            .store
            .get_membership(user_id, team_id)
            .await?
            .map(|m| {
                let max = m.budget.and_then(|b| b.max_budget);
                MemberInfo::new(m.spend, max, cell, flushed)
            }))
    }

    /// The key's user, when the user row exists, starting a new budget period where one is
    /// due.
    async fn load_user(&self, user_id: String) -> Result<Option<UserInfo>, KeyError> {
        let store = &self.inner.store;
        let cell = self.inner.ledger.user_cell(&user_id);
        let mut flushed = cell.flushed();
        let Some(mut row) = store.get_user_row(&user_id).await? else {
            return Ok(None);
        };
        let now = now();
        if let Some(period) = row.budget_duration.as_deref().and_then(parse_duration)
            && row.budget_reset_at.is_none_or(|at| at <= now)
        {
            let next = add(now, period)?;
            let zero_spend = row.budget_reset_at.is_some();
            store
                .reset_user_budget(&user_id, row.budget_reset_at, next, zero_spend)
                .await?;
            flushed = cell.flushed();
            match store.get_user_row(&user_id).await? {
                Some(again) => row = again,
                None => return Ok(None),
            }
        }
        Ok(Some(UserInfo::new(row, cell, flushed)))
    }

    async fn load_team(
        &self,
        team_id: &str,
        now: NaiveDateTime,
    ) -> Result<Option<TeamInfo>, KeyError> {
        let store = &self.inner.store;
        let cell = self.inner.ledger.team_cell(team_id);
        let mut flushed = cell.flushed();
        let Some(mut team) = store.get_team(team_id).await? else {
            return Ok(None);
        };
        if let Some(period) = team.budget_duration.as_deref().and_then(parse_duration)
            && team.budget_reset_at.is_none_or(|at| at <= now)
        {
            let next = add(now, period)?;
            let zero_spend = team.budget_reset_at.is_some();
            store
                .reset_team_budget(team_id, team.budget_reset_at, next, zero_spend)
                .await?;
            flushed = cell.flushed();
            match store.get_team(team_id).await? {
                Some(again) => team = again,
                None => return Ok(None),
            }
        }
        Ok(Some(TeamInfo::new(team, cell, flushed)))
    }

    // ----- spend ---------------------------------------------------------------------------

    /// Records a request's spend (non-blocking); cached keys see it at once.
    /// Reports, once, that a key's spend crossed its soft budget: a warning in the log, the
    /// `hx_soft_budget_crossings_total` counter, and the row's `soft_budget_cooldown` set so
    /// that no other instance, and no restart, reports it again. Never blocks the request.
    pub fn report_soft_budget(&self, key: &KeyInfo) {
        if !key.soft_budget_crossed() {
            return;
        }
        tracing::warn!(
            key_alias = key.key_alias.as_deref().unwrap_or(""),
            key_name = key.key_name.as_deref().unwrap_or(""),
            spend = key.spend(),
            soft_budget = key.soft_budget.unwrap_or_default(),
            "key crossed its soft budget"
        );
        crate::metrics::record_soft_budget_crossing();
        let store = self.inner.store.clone();
        let token = key.token.clone();
        tokio::spawn(async move {
            if let Err(e) = store.set_soft_budget_cooldown(&token, true).await {
                tracing::warn!(error = %e, "could not mark the soft budget crossing");
            }
        });
    }

    pub fn record_spend(&self, record: SpendRecord) {
        self.inner.writer.record(record);
    }

    pub fn spend_writer(&self) -> &SpendWriter {
        &self.inner.writer
    }

    /// Waits until all spend recorded so far is in the database (graceful shutdown; wrap in
    /// a timeout, since during an outage it waits for the database).
    pub async fn flush_spend(&self) -> Result<(), KeyError> {
        Ok(self.inner.writer.flush().await?)
    }

    /// A key's spend including what this process has not written yet.
    fn live_spend(&self, record: &KeyRecord) -> f64 {
        let cell = self.inner.ledger.key_cell(&record.token);
        record.spend + (cell.recorded() - cell.flushed()).max(0.0)
    }

    // ----- /key/* operations ---------------------------------------------------------------

    /// `POST /key/generate` with the body as a JSON value (the route reads it as a typed request
    /// and calls [`KeyService::generate_key`]).
    pub async fn generate(&self, body: Value) -> Result<Value, ApiError> {
        let request: GenerateKeyRequest = from_json(body)?;
        Ok(self.generate_key(request).await?)
    }

    /// [`KeyService::generate`] with a parsed body.
    pub async fn generate_key(&self, request: GenerateKeyRequest) -> Result<Value, KeyError> {
        let now = now();
        let raw_key = match request.key {
            Some(key) => {
                let key = key.trim().to_string();
                if !key.starts_with("sk-") || key.len() < 4 || key.chars().any(char::is_whitespace)
                {
                    return Err(KeyError::invalid(
                        "'key' must start with 'sk-' and contain no whitespace",
                        "key",
                    ));
                }
                key
            }
            None => generate_key()?,
        };
        let models = request.models.unwrap_or_default();
        check_models(&models)?;
        check_non_negative_f64(request.max_budget, "max_budget")?;
        check_non_negative_f64(request.spend, "spend")?;
        check_non_negative_i64(request.rpm_limit, "rpm_limit")?;
        check_non_negative_i64(request.tpm_limit, "tpm_limit")?;
        check_non_negative_i64(
            request.max_parallel_requests.map(i64::from),
            "max_parallel_requests",
        )?;
        let expires = match request.duration.as_deref() {
            None | Some("-1") => None,
            Some(text) => Some(add(now, parse_field_duration(text, "duration")?)?),
        };
        let budget_reset_at = match request.budget_duration.as_deref() {
            None => None,
            Some(text) => Some(add(now, parse_field_duration(text, "budget_duration")?)?),
        };
        if let Some(metadata) = &request.metadata {
            check_metadata(metadata)?;
        }
        if let Some(alias) = &request.key_alias {
            self.check_alias_free(alias, None).await?;
        }
        if let Some(aliases) = &request.aliases {
            check_aliases(aliases)?;
        }
        if let Some(budgets) = &request.model_max_budget {
            check_model_max_budget(budgets)?;
        }
        check_non_negative_f64(request.soft_budget, "soft_budget")?;
        let mut allowed_routes = request.allowed_routes.unwrap_or_default();
        check_strings(&allowed_routes, "allowed_routes")?;
        if let Some(preset) = request.key_type.and_then(|t| t.allowed_routes()) {
            allowed_routes = preset;
        }
        let allowed_cache_controls = request.allowed_cache_controls.unwrap_or_default();
        check_strings(&allowed_cache_controls, "allowed_cache_controls")?;
        let mut metadata = Value::Object(request.metadata.unwrap_or_default());
        let list = |v: Option<Vec<String>>| v.map(|l| Some(Value::from(l)));
        let object = |v: Option<Map<String, Value>>| v.map(|m| Some(Value::Object(m)));
        metadata_fields(
            &mut metadata,
            [
                ("tags", list(request.tags)),
                ("guardrails", list(request.guardrails)),
                ("model_rpm_limit", object(request.model_rpm_limit)),
                ("model_tpm_limit", object(request.model_tpm_limit)),
                ("enforced_params", list(request.enforced_params)),
            ],
        )?;
        let budget_id = match request.soft_budget {
            Some(soft_budget) => {
                let id = uuid::Uuid::new_v4().to_string();
                self.inner
                    .store
                    .insert_key_budget(&id, soft_budget, PROXY_ADMIN_NAME)
                    .await?;
                Some(id)
            }
            None => None,
        };
        let record = KeyRecord {
            token: hash_key(&raw_key),
            key_name: Some(abbreviate(&raw_key)),
            key_alias: request.key_alias,
            spend: request.spend.unwrap_or(0.0),
            max_budget: request.max_budget,
            budget_duration: request.budget_duration,
            budget_reset_at,
            expires,
            models,
            rpm_limit: request.rpm_limit,
            tpm_limit: request.tpm_limit,
            max_parallel_requests: request.max_parallel_requests,
            metadata,
            blocked: request.blocked.unwrap_or(false),
            user_id: request.user_id,
            team_id: request.team_id,
            created_at: Some(now),
            updated_at: Some(now),
            aliases: Value::Object(request.aliases.unwrap_or_default()),
            allowed_routes,
            model_max_budget: Value::Object(request.model_max_budget.unwrap_or_default()),
            config: Value::Object(request.config.unwrap_or_default()),
            permissions: Value::Object(request.permissions.unwrap_or_default()),
            allowed_cache_controls,
            budget_id,
            soft_budget: request.soft_budget,
            soft_budget_cooldown: false,
        };
        if !self.inner.store.insert_key(&record).await? {
            return Err(KeyError::invalid("this key already exists", "key"));
        }
        // A lookup of this token may have failed just before (negative results are not
        // cached, but a stale copy of an older key with the same token could be).
        self.invalidate(&record.token).await;
        let mut response = record_json(&record, record.spend);
        response.insert("key".into(), Value::String(raw_key));
        response.insert("token_id".into(), Value::String(record.token.clone()));
        Ok(Value::Object(response))
    }

    async fn check_alias_free(&self, alias: &str, own_token: Option<&str>) -> Result<(), KeyError> {
        let holders = self.inner.store.tokens_by_alias(alias).await?;
        if holders.iter().any(|t| Some(t.as_str()) != own_token) {
            return Err(KeyError::invalid(
                format!("a key with key_alias '{alias}' already exists"),
                "key_alias",
            ));
        }
        Ok(())
    }

    /// `POST /key/update` with the body as a JSON value (the route reads it as a typed request
    /// and calls [`KeyService::update_key`]).
    pub async fn update(&self, body: Value) -> Result<Value, ApiError> {
        let request: UpdateKeyRequest = from_json(body)?;
        Ok(self.update_key(request).await?)
    }

    /// [`KeyService::update`] with a parsed body.
    pub async fn update_key(&self, request: UpdateKeyRequest) -> Result<Value, KeyError> {
        let now = now();
        let token = token_of(&request.key);
        let mut record = self
            .inner
            .store
            .get_key(&token)
            .await?
            .ok_or_else(|| KeyError::NotFound("key not found".to_string()))?;
        if let Some(models) = request.models {
            let models = models.unwrap_or_default();
            check_models(&models)?;
            record.models = models;
        }
        if let Some(duration) = request.duration {
            record.expires = match duration.as_deref() {
                None | Some("-1") => None,
                Some(text) => Some(add(now, parse_field_duration(text, "duration")?)?),
            };
        }
        if let Some(alias) = request.key_alias {
            if let Some(alias) = &alias {
                self.check_alias_free(alias, Some(&token)).await?;
            }
            record.key_alias = alias;
        }
        if let Some(max_budget) = request.max_budget {
            check_non_negative_f64(max_budget, "max_budget")?;
            record.max_budget = max_budget;
        }
        if let Some(budget_duration) = request.budget_duration {
            record.budget_reset_at = match budget_duration.as_deref() {
                None => None,
                Some(text) => Some(add(now, parse_field_duration(text, "budget_duration")?)?),
            };
            record.budget_duration = budget_duration;
        }
        if let Some(rpm) = request.rpm_limit {
            check_non_negative_i64(rpm, "rpm_limit")?;
            record.rpm_limit = rpm;
        }
        if let Some(tpm) = request.tpm_limit {
            check_non_negative_i64(tpm, "tpm_limit")?;
            record.tpm_limit = tpm;
        }
        if let Some(parallel) = request.max_parallel_requests {
            check_non_negative_i64(parallel.map(i64::from), "max_parallel_requests")?;
            record.max_parallel_requests = parallel;
        }
        if let Some(metadata) = request.metadata {
            if let Some(metadata) = &metadata {
                check_metadata(metadata)?;
            }
            record.metadata = Value::Object(metadata.unwrap_or_default());
        }
        if let Some(user_id) = request.user_id {
            record.user_id = user_id;
        }
        if let Some(team_id) = request.team_id {
            record.team_id = team_id;
        }
        if let Some(blocked) = request.blocked {
            record.blocked = blocked;
        }
        if let Some(aliases) = request.aliases {
            let aliases = aliases.unwrap_or_default();
            check_aliases(&aliases)?;
            record.aliases = Value::Object(aliases);
        }
        if let Some(budgets) = request.model_max_budget {
            let budgets = budgets.unwrap_or_default();
            check_model_max_budget(&budgets)?;
            record.model_max_budget = Value::Object(budgets);
        }
        if let Some(routes) = request.allowed_routes {
            let routes = routes.unwrap_or_default();
            check_strings(&routes, "allowed_routes")?;
            record.allowed_routes = routes;
        }
        if let Some(controls) = request.allowed_cache_controls {
            let controls = controls.unwrap_or_default();
            check_strings(&controls, "allowed_cache_controls")?;
            record.allowed_cache_controls = controls;
        }
        if let Some(config) = request.config {
            record.config = Value::Object(config.unwrap_or_default());
        }
        if let Some(permissions) = request.permissions {
            record.permissions = Value::Object(permissions.unwrap_or_default());
        }
        let list = |v: Option<Option<Vec<String>>>| v.map(|l| l.map(Value::from));
        let object = |v: Option<Option<Map<String, Value>>>| v.map(|m| m.map(Value::Object));
        metadata_fields(
            &mut record.metadata,
            [
                ("tags", list(request.tags)),
                ("guardrails", list(request.guardrails)),
                ("model_rpm_limit", object(request.model_rpm_limit)),
                ("model_tpm_limit", object(request.model_tpm_limit)),
                ("enforced_params", list(request.enforced_params)),
            ],
        )?;
        check_non_negative_f64(request.spend, "spend")?;
        if let Some(soft_budget) = request.soft_budget {
            check_non_negative_f64(soft_budget, "soft_budget")?;
            match (&record.budget_id, soft_budget) {
                (Some(id), _) => self.inner.store.set_soft_budget(id, soft_budget).await?,
                (None, Some(soft_budget)) => {
                    let id = uuid::Uuid::new_v4().to_string();
                    self.inner
                        .store
                        .insert_key_budget(&id, soft_budget, PROXY_ADMIN_NAME)
                        .await?;
                    record.budget_id = Some(id);
                }
                (None, None) => {}
            }
            // A new soft budget is reported again when crossed.
            record.soft_budget_cooldown = false;
        }
        record.updated_at = Some(now);
        if !self.inner.store.update_key(&record).await? {
            return Err(KeyError::NotFound("key not found".to_string()));
        }
        if let Some(spend) = request.spend {
            self.inner.store.set_key_spend(&token, spend).await?;
        }
        self.invalidate(&token).await;
        let record = self
            .inner
            .store
            .get_key(&token)
            .await?
            .ok_or_else(|| KeyError::NotFound("key not found".to_string()))?;
        let mut response = record_json(&record, self.live_spend(&record));
        response.insert("key".into(), Value::String(token));
        Ok(Value::Object(response))
    }

    /// `POST /key/regenerate` and `/key/{key}/regenerate`: the key (the body's `key`, else
    /// the path's) gets a new secret (`new_key`, else a generated one) and the old one is
    /// refused at once, on every instance on the change bus; any `/key/update` field in the
    /// body is applied first (so a bad one changes nothing). Spend pending for the key is
    /// written before the switch. Answers the key's row with the new `key` and `token_id`.
    pub async fn regenerate(
        &self,
        path_key: Option<&str>,
        mut body: Map<String, Value>,
    ) -> Result<Value, ApiError> {
        let key = match body.remove("key") {
            Some(Value::String(key)) => key,
            None | Some(Value::Null) => match path_key {
                Some(key) => key.to_string(),
                None => return Err(KeyError::invalid("No key passed in.", "key").into()),
            },
            Some(_) => return Err(KeyError::invalid("'key' must be a string", "key").into()),
        };
        if body.contains_key("new_master_key") {
            return Err(KeyError::invalid(
                "regenerating the master key is not supported here: set a new LITELLM_MASTER_KEY and restart",
                "new_master_key",
            )
            .into());
        }
        let new_key = match body.remove("new_key") {
            None | Some(Value::Null) => generate_key()?,
            Some(Value::String(key))
                if key.starts_with("sk-")
                    && key.len() > 3
                    && !key.chars().any(char::is_whitespace) =>
            {
                key
            }
            Some(_) => {
                return Err(KeyError::invalid(
                    "'new_key' must start with 'sk-' and contain no whitespace",
                    "new_key",
                )
                .into());
            }
        };
        let store = &self.inner.store;
        let token = token_of(&key);
        let not_found = || KeyError::NotFound(format!("Key {} not found.", abbreviate(&key)));
        if store.get_key(&token).await?.is_none() {
            return Err(not_found().into());
        }
        let new_token = hash_key(&new_key);
        if store.get_key(&new_token).await?.is_some() {
            return Err(KeyError::invalid("'new_key' is already a key", "new_key").into());
        }
        if !body.is_empty() {
            body.insert("key".into(), Value::String(token.clone()));
            self.update_key(from_json(Value::Object(body))?).await?;
        }
        self.flush_spend().await?;
        if !store
            .rename_key(&token, &new_token, &abbreviate(&new_key), now())
            .await?
        {
            return Err(not_found().into());
        }
        self.invalidate(&token).await;
        let record = store.get_key(&new_token).await?.ok_or_else(not_found)?;
        let mut response = record_json(&record, self.live_spend(&record));
        response.remove("token");
        response.insert("token_id".into(), Value::String(new_token));
        response.insert("key".into(), Value::String(new_key));
        Ok(Value::Object(response))
    }

    /// `POST /key/delete` with the body as a JSON value (the route reads it as a typed request
    /// and calls [`KeyService::delete_keys`]).
    pub async fn delete(&self, body: Value) -> Result<Value, ApiError> {
        let request: DeleteKeyRequest = from_json(body)?;
        Ok(self.delete_keys(request).await?)
    }

    /// [`KeyService::delete`] with a parsed body. All or nothing: 404 when any key or alias
    /// named does not exist.
    pub async fn delete_keys(&self, request: DeleteKeyRequest) -> Result<Value, KeyError> {
        let store = &self.inner.store;
        let (named, tokens) = match (request.keys, request.key_aliases) {
            (Some(keys), _) if !keys.is_empty() => {
                let tokens: Vec<String> = keys.iter().map(|k| token_of(k)).collect();
                for token in &tokens {
                    if store.get_key(token).await?.is_none() {
                        return Err(KeyError::NotFound(
                            "key not found (nothing was deleted)".to_string(),
                        ));
                    }
                }
                (keys, tokens)
            }
            (_, Some(aliases)) if !aliases.is_empty() => {
                let mut tokens = Vec::new();
                for alias in &aliases {
                    let found = store.tokens_by_alias(alias).await?;
                    if found.is_empty() {
                        return Err(KeyError::NotFound(format!(
                            "no key with key_alias '{alias}' (nothing was deleted)"
                        )));
                    }
                    tokens.extend(found);
                }
                (aliases, tokens)
            }
            _ => {
                return Err(KeyError::invalid(
                    "'keys' or 'key_aliases' must be a non-empty list",
                    "keys",
                ));
            }
        };
        store.delete_keys(&tokens).await?;
        for token in &tokens {
            self.invalidate(token).await;
        }
        Ok(json!({ "deleted_keys": named }))
    }

    /// A key row as the management routes show it (`/team/info`, `/user/info`): LiteLLM's
    /// fields, spend including this process's unwritten spend.
    pub fn key_json(&self, record: &KeyRecord) -> Value {
        Value::Object(record_json(record, self.live_spend(record)))
    }

    /// Drops every cached key of these token hashes, here and on every instance.
    pub async fn invalidate_all_of(&self, tokens: &[String]) {
        for token in tokens {
            self.invalidate(token).await;
        }
    }

    /// `GET /key/info?key=...` (`key` as `sk-...` or its hash).
    pub async fn info(&self, key: &str) -> Result<Value, ApiError> {
        if key.trim().is_empty() {
            return Err(KeyError::invalid("'key' is required", "key").into());
        }
        let token = token_of(key);
        let record = self
            .inner
            .store
            .get_key(&token)
            .await?
            .ok_or_else(|| KeyError::NotFound("key not found".to_string()))?;
        let mut info = record_json(&record, self.live_spend(&record));
        info.remove("token");
        Ok(json!({ "key": token, "info": info }))
    }

    /// `GET /key/list`.
    pub async fn list(&self, query: &ListKeysQuery) -> Result<Value, ApiError> {
        let page = query.page.unwrap_or(1);
        if page == 0 {
            return Err(KeyError::invalid("'page' starts at 1", "page").into());
        }
        let size = query.size.unwrap_or(10);
        if size == 0 || size > 100 {
            return Err(KeyError::invalid("'size' must be between 1 and 100", "size").into());
        }
        let (records, total) = self
            .inner
            .store
            .list_keys(
                query.user_id.as_deref(),
                query.team_id.as_deref(),
                query.key_alias.as_deref(),
                i64::from(size),
                i64::from(page - 1) * i64::from(size),
            )
            .await?;
        let keys: Vec<Value> = if query.return_full_object.unwrap_or(false) {
            records
                .iter()
                .map(|r| Value::Object(record_json(r, self.live_spend(r))))
                .collect()
        } else {
            records
                .into_iter()
                .map(|r| Value::String(r.token))
                .collect()
        };
        let size = i64::from(size);
        Ok(json!({
            "keys": keys,
            "total_count": total,
            "current_page": page,
            "total_pages": (total + size - 1) / size,
        }))
    }

    /// `POST /key/block` with the body as a JSON value (the route reads it as a typed request
    /// and calls [`KeyService::set_blocked`]).
    pub async fn block(&self, body: Value) -> Result<Value, ApiError> {
        let request: BlockKeyRequest = from_json(body)?;
        Ok(self.set_blocked(&request.key, true).await?)
    }

    /// `POST /key/unblock` with the body as a JSON value (the route reads it as a typed request
    /// and calls [`KeyService::set_blocked`]).
    pub async fn unblock(&self, body: Value) -> Result<Value, ApiError> {
        let request: BlockKeyRequest = from_json(body)?;
        Ok(self.set_blocked(&request.key, false).await?)
    }

    /// Blocks or unblocks a key (`sk-...` or hash); returns the key row.
    pub async fn set_blocked(&self, key: &str, blocked: bool) -> Result<Value, KeyError> {
        let token = token_of(key);
        let store = &self.inner.store;
        if !store.set_blocked(&token, blocked, now()).await? {
            return Err(KeyError::NotFound("key not found".to_string()));
        }
        self.invalidate(&token).await;
        let record = store
            .get_key(&token)
            .await?
            .ok_or_else(|| KeyError::NotFound("key not found".to_string()))?;
        Ok(Value::Object(record_json(
            &record,
            self.live_spend(&record),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_long_urlsafe_and_distinct() {
        let a = generate_key().unwrap();
        let b = generate_key().unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with("sk-"));
        assert!(a.len() >= 3 + 22);
        assert!(
            a[3..]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
    }

    #[test]
    fn key_names_and_tokens() {
        assert_eq!(abbreviate("sk-1234567890abcd"), "sk-...abcd");
        assert_eq!(token_of("sk-1234"), hash_key("sk-1234"));
        assert_eq!(token_of("ABCDEF"), "abcdef");
    }
}
