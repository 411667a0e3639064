//! The HTTP routes, grouped by area. Handlers extract, validate and call; nothing more.

pub mod customers;
pub mod health;
pub mod keys;
pub mod llm;
pub mod messages;
pub mod models;
pub mod rag;
pub mod responses;
pub mod teams;
pub mod users;
