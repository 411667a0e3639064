//! The key layer's errors and how each one reaches the client.

use crate::db::DbError;
use crate::error::{ApiError, ErrorKind};
use crate::spend::BudgetDenied;

/// What can go wrong in the key store, the key operations and the enforcement checks.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// No key, unknown key, blocked key (401 `auth_error`).
    #[error("{0}")]
    Auth(String),
    /// The key's `expires` is in the past (401 `expired_key`).
    #[error("{0}")]
    Expired(String),
    /// The model is outside the key's (or its team's) `models` (401 `key_model_access_denied`).
    #[error("{0}")]
    ModelDenied(String),
    /// Spend at or over `max_budget` (400 `budget_exceeded`).
    #[error("{0}")]
    BudgetExceeded(String),
    /// A bad field in a `/key/*` request (400, `param` names the field).
    #[error("{message}")]
    Invalid { message: String, field: String },
    /// The key (or alias) asked for does not exist (404).
    #[error("{0}")]
    NotFound(String),
    /// The database cannot be reached or failed (503 `service_unavailable`). The text is
    /// already free of secrets.
    #[error("key store unavailable: {0}")]
    Unavailable(String),
    /// A database URL or data directory that cannot be used.
    #[error("key store configuration: {0}")]
    Config(String),
    /// A migration failed.
    #[error("key store migration failed: {0}")]
    Migration(String),
}

impl KeyError {
    pub fn invalid(message: impl Into<String>, field: impl Into<String>) -> Self {
        KeyError::Invalid {
            message: message.into(),
            field: field.into(),
        }
    }

    /// True when the database, not the request, is the problem.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, KeyError::Unavailable(_))
    }
}

/// A budget hold that did not fit: the client's 400 `budget_exceeded`, naming the spend, the
/// budget, what requests in flight hold and this request's estimate.
impl From<BudgetDenied> for KeyError {
    fn from(d: BudgetDenied) -> Self {
        KeyError::BudgetExceeded(format!(
            "Budget has been exceeded! {}Current cost: {}, Max budget: {}, held by requests in \
             flight: {}, this request's estimated maximum cost: {}",
            d.claim.label, d.claim.spend, d.claim.max_budget, d.held, d.estimate
        ))
    }
}

/// The database's own errors keep their texts; they are the key store's 503s and start errors.
impl From<DbError> for KeyError {
    fn from(error: DbError) -> Self {
        match error {
            DbError::Unavailable(m) => KeyError::Unavailable(m),
            DbError::Config(m) => KeyError::Config(m),
            DbError::Migration(m) => KeyError::Migration(m),
        }
    }
}

/// A database error reaching a client directly: as the key store's error would.
impl From<DbError> for ApiError {
    fn from(error: DbError) -> Self {
        ApiError::from(KeyError::from(error))
    }
}

impl From<sqlx::Error> for KeyError {
    fn from(error: sqlx::Error) -> Self {
        // sqlx messages may quote the connection URL; never let a password through.
        KeyError::Unavailable(crate::secret::scrub(&error.to_string(), &[]))
    }
}

impl From<KeyError> for ApiError {
    fn from(error: KeyError) -> Self {
        match error {
            KeyError::Auth(m) => ApiError::new(ErrorKind::Auth, m),
            KeyError::Expired(m) => ApiError::new(ErrorKind::ExpiredKey, m),
            KeyError::ModelDenied(m) => ApiError::new(ErrorKind::ModelAccessDenied, m),
            KeyError::BudgetExceeded(m) => ApiError::new(ErrorKind::BudgetExceeded, m),
            KeyError::Invalid { message, field } => ApiError::invalid(message, field),
            KeyError::NotFound(m) => ApiError::not_found(m),
            e @ KeyError::Unavailable(_) => {
                ApiError::new(ErrorKind::Unavailable, e.to_string()).with_retry_after(1)
            }
            e @ (KeyError::Config(_) | KeyError::Migration(_)) => {
                ApiError::new(ErrorKind::Unavailable, e.to_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    #[test]
    fn kinds_map_to_the_error_table() {
        let cases = [
            (KeyError::Auth("x".into()), 401, "auth_error"),
            (KeyError::Expired("x".into()), 401, "expired_key"),
            (
                KeyError::ModelDenied("x".into()),
                401,
                "key_model_access_denied",
            ),
            (KeyError::BudgetExceeded("x".into()), 400, "budget_exceeded"),
            (
                KeyError::invalid("x", "models"),
                400,
                "invalid_request_error",
            ),
            (KeyError::NotFound("x".into()), 404, "not_found_error"),
            (
                KeyError::Unavailable("x".into()),
                503,
                "service_unavailable",
            ),
        ];
        for (error, status, kind) in cases {
            let api: ApiError = error.into();
            assert_eq!(api.status(), StatusCode::from_u16(status).unwrap());
            assert_eq!(api.body_json()["error"]["type"], kind);
        }
        let api: ApiError = KeyError::invalid("bad", "duration").into();
        assert_eq!(api.param.as_deref(), Some("duration"));
    }
}
