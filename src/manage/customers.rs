//! `/customer/*` (and the `/end_user/*` aliases) and `/budget/*`: end users, the `user` a
//! request names, with their budgets in `"LiteLLM_BudgetTable"`, as LiteLLM's customer and
//! budget endpoints write them. A request naming an end user is refused while it is blocked
//! or over its budget, is held to its budget's `tpm_limit`/`rpm_limit`, and gets its
//! `default_model` when it names none (enforced through [`crate::keys::EndUserInfo`]).

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::teams::budget_json;
use super::{actor, check_duration, next_reset, non_negative, non_negative_int, store};
use crate::changes::Change;
use crate::db::{BudgetRow, EndUserRecord};
use crate::error::ApiError;
use crate::keys::{KeyService, now, nullable};
use crate::roles::{Principal, Role};

/// The budget fields LiteLLM's customer and budget requests share (`BudgetNewRequest`).
#[derive(Debug, Default, Deserialize)]
pub struct BudgetFields {
    pub max_budget: Option<f64>,
    pub soft_budget: Option<f64>,
    pub max_parallel_requests: Option<i32>,
    pub tpm_limit: Option<i64>,
    pub rpm_limit: Option<i64>,
    pub budget_duration: Option<String>,
    pub model_max_budget: Option<Map<String, Value>>,
}

impl BudgetFields {
    fn any(&self) -> bool {
        self.max_budget.is_some()
            || self.soft_budget.is_some()
            || self.max_parallel_requests.is_some()
            || self.tpm_limit.is_some()
            || self.rpm_limit.is_some()
            || self.budget_duration.is_some()
            || self.model_max_budget.is_some()
    }

    fn check(&self) -> Result<(), ApiError> {
        for (value, field) in [
            (self.max_budget, "max_budget"),
            (self.soft_budget, "soft_budget"),
        ] {
            if let Some(v) = value
                && !(v >= 0.0 && v.is_finite())
            {
                return Err(ApiError::invalid(
                    format!("{field} must be a non-negative finite number. Received: {v}"),
                    field,
                ));
            }
        }
        non_negative_int(self.tpm_limit, "tpm_limit")?;
        non_negative_int(self.rpm_limit, "rpm_limit")?;
        non_negative_int(
            self.max_parallel_requests.map(i64::from),
            "max_parallel_requests",
        )?;
        check_duration(self.budget_duration.as_deref(), "budget_duration")
    }

    /// A new budget row from these fields.
    fn row(self, budget_id: String, by: &str) -> Result<BudgetRow, ApiError> {
        let now = now();
        Ok(BudgetRow {
            budget_id,
            max_budget: self.max_budget,
            soft_budget: self.soft_budget,
            max_parallel_requests: self.max_parallel_requests,
            tpm_limit: self.tpm_limit,
            rpm_limit: self.rpm_limit,
            model_max_budget: self.model_max_budget.map(Value::Object),
            budget_reset_at: next_reset(self.budget_duration.as_deref(), now)?,
            budget_duration: self.budget_duration,
            created_at: Some(now),
            created_by: by.to_string(),
            updated_at: Some(now),
            updated_by: by.to_string(),
        })
    }
}

/// `POST /customer/new`.
#[derive(Debug, Deserialize)]
pub struct NewCustomerRequest {
    pub user_id: String,
    pub alias: Option<String>,
    pub blocked: Option<bool>,
    pub budget_id: Option<String>,
    pub allowed_model_region: Option<String>,
    pub default_model: Option<String>,
    #[serde(flatten)]
    pub budget: BudgetFields,
}

/// `POST /customer/update`: only the fields present change.
#[derive(Debug, Deserialize)]
pub struct UpdateCustomerRequest {
    pub user_id: String,
    #[serde(default, deserialize_with = "nullable")]
    pub alias: Option<Option<String>>,
    pub blocked: Option<bool>,
    #[serde(default, deserialize_with = "nullable")]
    pub budget_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub allowed_model_region: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub default_model: Option<Option<String>>,
    #[serde(flatten)]
    pub budget: BudgetFields,
}

/// `POST /customer/delete`, `/customer/block`, `/customer/unblock`.
#[derive(Debug, Deserialize)]
pub struct CustomerIdsRequest {
    pub user_ids: Vec<String>,
}

/// `GET /customer/info`.
#[derive(Debug, Deserialize)]
pub struct CustomerInfoQuery {
    pub end_user_id: Option<String>,
}

/// `POST /budget/new` and `/budget/update`.
#[derive(Debug, Deserialize)]
pub struct BudgetRequest {
    pub budget_id: Option<String>,
    #[serde(flatten)]
    pub fields: BudgetFields,
}

/// `POST /budget/info`.
#[derive(Debug, Deserialize)]
pub struct BudgetInfoRequest {
    pub budgets: Vec<String>,
}

/// `POST /budget/delete`.
#[derive(Debug, Deserialize)]
pub struct BudgetDeleteRequest {
    pub id: String,
}

field_errors!(
    NewCustomerRequest,
    UpdateCustomerRequest,
    CustomerIdsRequest,
    BudgetRequest,
    BudgetInfoRequest,
    BudgetDeleteRequest
);

/// An end user as LiteLLM answers it, with its budget row.
fn customer_json(end_user: &EndUserRecord) -> Value {
    json!({
        "user_id": end_user.user_id,
        "alias": end_user.alias,
        "spend": end_user.spend,
        "allowed_model_region": end_user.allowed_model_region,
        "default_model": end_user.default_model,
        "budget_id": end_user.budget_id,
        "blocked": end_user.blocked,
        "litellm_budget_table": end_user.budget.as_ref().map(budget_json),
    })
}

fn customer_not_found(id: &str, param: &str) -> ApiError {
    ApiError::not_found(format!("End User Id={id} does not exist in db")).with_param(param)
}

/// The customers and budgets service.
pub struct Customers<'a> {
    keys: &'a KeyService,
    /// The model names the proxy serves (a `default_model` must be one).
    models: Vec<String>,
}

impl<'a> Customers<'a> {
    pub fn new(keys: &'a KeyService, models: Vec<String>) -> Self {
        Customers { keys, models }
    }

    async fn end_user(&self, id: &str, param: &str) -> Result<EndUserRecord, ApiError> {
        store(self.keys)
            .get_end_user(id)
            .await?
            .ok_or_else(|| customer_not_found(id, param))
    }

    fn check_default_model(&self, model: Option<&str>) -> Result<(), ApiError> {
        match model {
            Some(m) if !self.models.iter().any(|name| name == m) => Err(ApiError::invalid(
                format!(
                    "Default Model not on proxy. Configure via `/model/new` or config.yaml. Default_model={m}, proxy_model_names={:?}",
                    self.models
                ),
                "default_model",
            )),
            _ => Ok(()),
        }
    }

    /// `POST /customer/new`: the end user, and a budget row for its budget fields.
    pub async fn create(
        &self,
        principal: &Principal,
        request: NewCustomerRequest,
    ) -> Result<Value, ApiError> {
        let store = store(self.keys);
        if request.user_id.trim().is_empty() {
            return Err(ApiError::invalid("'user_id' must not be empty", "user_id"));
        }
        request.budget.check()?;
        if request.budget.max_budget.is_some() && request.budget_id.is_some() {
            return Err(ApiError::invalid(
                "Set either 'max_budget' or 'budget_id', not both.",
                "budget_id",
            ));
        }
        self.check_default_model(request.default_model.as_deref())?;
        if store.get_end_user(&request.user_id).await?.is_some() {
            return Err(self.duplicate(&request.user_id));
        }
        let budget_id = if request.budget.any() {
            let row = request
                .budget
                .row(uuid::Uuid::new_v4().to_string(), &actor(principal))?;
            store.insert_budget(&row).await?;
            Some(row.budget_id)
        } else {
            match request.budget_id {
                Some(id) => {
                    if store.get_budget(&id).await?.is_none() {
                        return Err(ApiError::not_found(format!(
                            "Budget not found, passed budget_id={id}"
                        ))
                        .with_param("budget_id"));
                    }
                    Some(id)
                }
                None => None,
            }
        };
        let end_user = EndUserRecord {
            user_id: request.user_id.clone(),
            alias: request.alias,
            spend: 0.0,
            allowed_model_region: request.allowed_model_region,
            default_model: request.default_model,
            budget_id,
            blocked: request.blocked.unwrap_or(false),
            budget: None,
        };
        if !store.insert_end_user(&end_user).await? {
            return Err(self.duplicate(&request.user_id));
        }
        self.keys
            .changed(Change::Customer(request.user_id.clone()))
            .await;
        Ok(customer_json(
            &self.end_user(&request.user_id, "user_id").await?,
        ))
    }

    fn duplicate(&self, id: &str) -> ApiError {
        ApiError::invalid(
            format!("Customer already exists, passed user_id={id}. Please pass a new user_id."),
            "user_id",
        )
    }

    /// `POST /customer/update`.
    pub async fn update(
        &self,
        principal: &Principal,
        request: UpdateCustomerRequest,
    ) -> Result<Value, ApiError> {
        let store = store(self.keys);
        request.budget.check()?;
        let mut end_user = self.end_user(&request.user_id, "user_id").await?;
        if let Some(alias) = request.alias {
            end_user.alias = alias;
        }
        if let Some(blocked) = request.blocked {
            end_user.blocked = blocked;
        }
        if let Some(region) = request.allowed_model_region {
            end_user.allowed_model_region = region;
        }
        if let Some(model) = request.default_model {
            self.check_default_model(model.as_deref())?;
            end_user.default_model = model;
        }
        if let Some(budget_id) = request.budget_id {
            if let Some(id) = &budget_id
                && store.get_budget(id).await?.is_none()
            {
                return Err(ApiError::not_found(format!(
                    "Budget not found, passed budget_id={id}"
                ))
                .with_param("budget_id"));
            }
            end_user.budget_id = budget_id;
        }
        if request.budget.any() {
            let by = actor(principal);
            match end_user.budget.take() {
                // The end user's budget row changes in place, as in LiteLLM.
                Some(mut row) if end_user.budget_id.as_deref() == Some(row.budget_id.as_str()) => {
                    apply_fields(&mut row, request.budget, &by)?;
                    store.update_budget(&row).await?;
                    self.keys
                        .changed(Change::Budget(row.budget_id.clone()))
                        .await;
                }
                _ => {
                    let row = request.budget.row(uuid::Uuid::new_v4().to_string(), &by)?;
                    store.insert_budget(&row).await?;
                    end_user.budget_id = Some(row.budget_id);
                }
            }
        }
        store.update_end_user(&end_user).await?;
        self.keys
            .changed(Change::Customer(end_user.user_id.clone()))
            .await;
        Ok(customer_json(
            &self.end_user(&end_user.user_id, "user_id").await?,
        ))
    }

    /// `GET /customer/info?end_user_id=`.
    pub async fn info(&self, id: Option<&str>) -> Result<Value, ApiError> {
        let Some(id) = id.filter(|s| !s.trim().is_empty()) else {
            return Err(ApiError::invalid(
                "'end_user_id' is a required query parameter.",
                "end_user_id",
            ));
        };
        Ok(customer_json(&self.end_user(id, "end_user_id").await?))
    }

    /// `GET /customer/list`: every end user (admins and viewers).
    pub async fn list(&self, principal: &Principal) -> Result<Value, ApiError> {
        if !principal.reads_everything() {
            return Err(ApiError::auth(format!(
                "Admin-only endpoint. Your user role={}",
                principal.role.map_or("unknown", Role::as_str)
            )));
        }
        let store = store(self.keys);
        let mut out = Vec::new();
        for id in store.end_user_ids().await? {
            if let Some(end_user) = store.get_end_user(&id).await? {
                out.push(customer_json(&end_user));
            }
        }
        Ok(Value::Array(out))
    }

    /// `POST /customer/delete`: all or nothing; 404 naming the ids that do not exist.
    pub async fn delete(&self, request: CustomerIdsRequest) -> Result<Value, ApiError> {
        let store = store(self.keys);
        if request.user_ids.is_empty() {
            return Err(ApiError::invalid(
                "'user_ids' must be a non-empty list",
                "user_ids",
            ));
        }
        let mut missing = Vec::new();
        for id in &request.user_ids {
            if store.get_end_user(id).await?.is_none() {
                missing.push(id.as_str());
            }
        }
        if !missing.is_empty() {
            return Err(ApiError::not_found(format!(
                "End User Id(s)={} do not exist in db",
                missing.join(", ")
            ))
            .with_param("user_ids"));
        }
        let n = store.delete_end_users(&request.user_ids).await?;
        for id in &request.user_ids {
            self.keys.changed(Change::Customer(id.clone())).await;
        }
        Ok(json!({
            "deleted_customers": n,
            "message": format!("Successfully deleted customers with ids: {:?}", request.user_ids),
        }))
    }

    /// `POST /customer/block` and `/customer/unblock`: missing end users are created blocked
    /// (as LiteLLM's block does); unblocking clears the flag in the table.
    pub async fn set_blocked(
        &self,
        request: CustomerIdsRequest,
        blocked: bool,
    ) -> Result<Value, ApiError> {
        let store = store(self.keys);
        if request.user_ids.is_empty() {
            return Err(ApiError::invalid(
                "'user_ids' must be a non-empty list",
                "user_ids",
            ));
        }
        store
            .set_end_users_blocked(&request.user_ids, blocked)
            .await?;
        let mut rows = Vec::new();
        for id in &request.user_ids {
            self.keys.changed(Change::Customer(id.clone())).await;
            if let Some(end_user) = store.get_end_user(id).await? {
                rows.push(customer_json(&end_user));
            }
        }
        Ok(json!({ "blocked_users": rows }))
    }

    // ----- /budget/* ---------------------------------------------------------------------

    /// `POST /budget/new`.
    pub async fn new_budget(
        &self,
        principal: &Principal,
        request: BudgetRequest,
    ) -> Result<Value, ApiError> {
        let store = store(self.keys);
        request.fields.check()?;
        let id = match request.budget_id {
            Some(id) if id.trim().is_empty() => {
                return Err(ApiError::invalid(
                    "'budget_id' must not be empty",
                    "budget_id",
                ));
            }
            Some(id) => id,
            None => uuid::Uuid::new_v4().to_string(),
        };
        let row = request.fields.row(id.clone(), &actor(principal))?;
        if !store.insert_budget(&row).await? {
            return Err(ApiError::invalid(
                format!("Budget with id '{id}' already exists."),
                "budget_id",
            ));
        }
        let row = store.get_budget(&id).await?.unwrap_or(row);
        Ok(budget_json(&row))
    }

    /// `POST /budget/update`: only the fields present change.
    pub async fn update_budget(
        &self,
        principal: &Principal,
        request: BudgetRequest,
    ) -> Result<Value, ApiError> {
        let store = store(self.keys);
        request.fields.check()?;
        let Some(id) = request.budget_id else {
            return Err(ApiError::invalid("budget_id is required", "budget_id"));
        };
        let mut row = store.get_budget(&id).await?.ok_or_else(|| {
            ApiError::not_found(format!("Budget not found, passed budget_id={id}"))
                .with_param("budget_id")
        })?;
        apply_fields(&mut row, request.fields, &actor(principal))?;
        store.update_budget(&row).await?;
        self.keys.changed(Change::Budget(id.clone())).await;
        let row = store.get_budget(&id).await?.unwrap_or(row);
        Ok(budget_json(&row))
    }

    /// `POST /budget/info`: the budget rows named (unknown ids left out, as in LiteLLM).
    pub async fn budget_info(&self, request: BudgetInfoRequest) -> Result<Value, ApiError> {
        if request.budgets.is_empty() {
            return Err(ApiError::invalid(
                "Specify list of budget id's to query. Passed in=[]",
                "budgets",
            ));
        }
        let store = store(self.keys);
        let mut out = Vec::new();
        for id in &request.budgets {
            if let Some(row) = store.get_budget(id).await? {
                out.push(budget_json(&row));
            }
        }
        Ok(Value::Array(out))
    }

    /// `GET /budget/list` (admins and viewers).
    pub async fn list_budgets(&self, principal: &Principal) -> Result<Value, ApiError> {
        if !principal.reads_everything() {
            return Err(ApiError::auth(format!(
                "Admin-only endpoint. Not allowed to access this., your role={}",
                principal.role.map_or("unknown", Role::as_str)
            )));
        }
        let rows = store(self.keys).list_budgets().await?;
        Ok(Value::Array(rows.iter().map(budget_json).collect()))
    }

    /// `POST /budget/delete`: the deleted row.
    pub async fn delete_budget(&self, request: BudgetDeleteRequest) -> Result<Value, ApiError> {
        let store = store(self.keys);
        let row = store.get_budget(&request.id).await?.ok_or_else(|| {
            ApiError::not_found(format!("Budget not found, passed budget_id={}", request.id))
                .with_param("id")
        })?;
        store.delete_budget(&request.id).await?;
        self.keys.changed(Change::Budget(request.id.clone())).await;
        Ok(budget_json(&row))
    }
}

/// Changes a budget row's fields that the request sets; a new period when its duration
/// changes.
fn apply_fields(row: &mut BudgetRow, fields: BudgetFields, by: &str) -> Result<(), ApiError> {
    non_negative(fields.max_budget, "max_budget")?;
    if let Some(v) = fields.max_budget {
        row.max_budget = Some(v);
    }
    if let Some(v) = fields.soft_budget {
        row.soft_budget = Some(v);
    }
    if let Some(v) = fields.max_parallel_requests {
        row.max_parallel_requests = Some(v);
    }
    if let Some(v) = fields.tpm_limit {
        row.tpm_limit = Some(v);
    }
    if let Some(v) = fields.rpm_limit {
        row.rpm_limit = Some(v);
    }
    if let Some(v) = fields.model_max_budget {
        row.model_max_budget = Some(Value::Object(v));
    }
    if let Some(duration) = fields.budget_duration {
        row.budget_reset_at = next_reset(Some(&duration), now())?;
        row.budget_duration = Some(duration);
    }
    row.updated_by = by.to_string();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::body::read;

    #[test]
    fn a_bad_budget_field_is_named_though_it_is_flattened() {
        let body = json!({"user_id": "a", "rpm_limit": "many"});
        let Value::Object(body) = body else {
            unreachable!()
        };
        let err = read::<NewCustomerRequest>(body).unwrap_err();
        assert_eq!(err.param.as_deref(), Some("rpm_limit"), "{err:?}");
    }
}
