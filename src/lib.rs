//! HX Gateway: an LLM gateway that reads LiteLLM's config and serves its OpenAI-compatible API,
//! with virtual keys, limits, caching and retrieval built in.

pub mod check;
pub mod cli;
pub mod config;
pub mod error;
pub mod health;
pub mod lifecycle;
pub mod metrics;
pub mod providers;
pub mod proxy;
pub mod router;
pub mod secret;
pub mod server;
pub mod smoke;
