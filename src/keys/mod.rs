//! Virtual keys: the `/key/*` operations over LiteLLM's tables (rows in `db`), and the
//! per-request enforcement (key valid, model allowed, budget left).
//!
//! The lead's auth layer calls [`KeyService::authenticate`] and then the checks on the returned
//! [`KeyInfo`]; the `/key/*` handlers are thin wrappers around the `KeyService` operations.

mod api;
mod duration;
mod error;
mod info;
mod service;

pub use api::{
    BlockKeyRequest, DeleteKeyRequest, GenerateKeyRequest, ListKeysQuery, UpdateKeyRequest,
    nullable,
};
pub use duration::parse_duration;
pub use error::KeyError;
pub use info::{EndUserInfo, KeyInfo, MemberInfo, ModelBudget, TeamInfo, UserInfo};
pub use service::{KeyService, KeyServiceOptions, add as add_duration, now, timestamp};
