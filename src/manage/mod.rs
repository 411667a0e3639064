//! The people-and-money half of LiteLLM's management plane: teams and their members, users,
//! customers (end users) and budgets, over LiteLLM's tables and in the shapes LiteLLM answers.
//!
//! Each operation takes the caller's [`Principal`] and scopes itself (a team admin manages
//! its own team, an internal user reads its own user); the route lists that decide who may
//! call a route at all are in [`crate::roles`]. Every write that makes a cached key wrong is
//! announced on the change bus through [`KeyService::changed`], so every instance refuses a
//! blocked team or a deleted user at once.
//!
//! - [`teams`]: the `/team/*` routes, members and their budgets, team model aliases.
//! - [`users`]: the `/user/*` routes.
//! - [`keys`]: which keys a caller other than a proxy admin may make, change and read.
//! - [`customers`]: the `/customer/*` (`/end_user/*`) and `/budget/*` routes.

/// A management request body whose bad field is named (`'team_id' is required`,
/// `invalid value for 'team_ids': ...`), `param` the field.
macro_rules! field_errors {
    ($($request:ty),+) => {$(
        impl crate::api::body::RequestBody for $request {
            fn rejection(
                error: crate::api::body::BodyError,
                body: &serde_json::Map<String, serde_json::Value>,
            ) -> crate::error::ApiError {
                crate::manage::rejection::<Self>(error, body)
            }
        }
    )+};
}

/// See [`field_errors`]. A field of a flattened part (the budget fields) comes without its
/// path: it is the one field without which the body reads.
pub(crate) fn rejection<T: serde::de::DeserializeOwned>(
    error: crate::api::body::BodyError,
    body: &serde_json::Map<String, serde_json::Value>,
) -> ApiError {
    let message = error.message();
    // serde's "missing field `team_id`" names the field between backticks.
    if let Some(field) = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next())
    {
        return ApiError::invalid(format!("'{field}' is required"), field);
    }
    let at_fault = error.field().map(str::to_string).or_else(|| {
        body.keys()
            .find(|field| {
                let mut without = body.clone();
                without.remove(field.as_str());
                T::deserialize(&without).is_ok()
            })
            .cloned()
    });
    match at_fault {
        Some(field) => ApiError::invalid(format!("invalid value for '{field}': {message}"), field),
        None => ApiError::invalid(message, "body"),
    }
}

pub mod customers;
pub mod keys;
pub mod teams;
pub mod users;

use crate::error::{ApiError, ErrorKind};
use crate::keys::KeyService;
use crate::roles::Principal;

/// Who a write is attributed to (`created_by`, `updated_by`): the caller's user, else
/// LiteLLM's name for the proxy admin.
pub(crate) fn actor(principal: &Principal) -> String {
    principal
        .user_id()
        .map_or_else(|| "default_user_id".to_string(), str::to_string)
}

/// 404 in LiteLLM's words for an id that names nothing.
pub(crate) fn not_found(what: &str, field: &str, id: &str) -> ApiError {
    ApiError::not_found(format!("{what} not found, passed {field}={id}")).with_param(field)
}

/// The key service, or 503 while the key store is not up.
pub(crate) fn store(keys: &KeyService) -> &crate::db::KeyStore {
    keys.store()
}

/// 400 naming `field` when a number that must not be negative is.
pub(crate) fn non_negative(value: Option<f64>, field: &str) -> Result<(), ApiError> {
    match value {
        Some(v) if !(v >= 0.0 && v.is_finite()) => Err(ApiError::invalid(
            format!("'{field}' must be a non-negative number"),
            field,
        )),
        _ => Ok(()),
    }
}

/// 400 naming `field` when a limit that must not be negative is.
pub(crate) fn non_negative_int(value: Option<i64>, field: &str) -> Result<(), ApiError> {
    match value {
        Some(v) if v < 0 => Err(ApiError::invalid(
            format!("'{field}' must be a non-negative integer"),
            field,
        )),
        _ => Ok(()),
    }
}

/// 400 naming `field` when a budget period does not parse (`30s`, `10m`, `24h`, `30d`, `1mo`).
pub(crate) fn check_duration(value: Option<&str>, field: &str) -> Result<(), ApiError> {
    match value {
        Some(text) if crate::keys::parse_duration(text).is_none() => Err(ApiError::invalid(
            format!("'{field}' must be a duration such as 30s, 10m, 24h, 30d or 1mo; got '{text}'"),
            field,
        )),
        _ => Ok(()),
    }
}

/// The next reset of a budget with this period, starting now.
pub(crate) fn next_reset(
    duration: Option<&str>,
    now: chrono::NaiveDateTime,
) -> Result<Option<chrono::NaiveDateTime>, ApiError> {
    match duration.and_then(crate::keys::parse_duration) {
        Some(period) => Ok(Some(crate::keys::add_duration(now, period)?)),
        None => Ok(None),
    }
}

/// 403 for a caller outside what it asked to manage.
pub(crate) fn forbidden(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorKind::Permission, message)
}
