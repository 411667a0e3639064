//! HX Gateway: an LLM gateway that reads LiteLLM's config and serves its OpenAI-compatible API,
//! with virtual keys, limits, caching and retrieval built in.

pub mod cache;
pub mod check;
pub mod cli;
pub mod config;
pub mod embeddings;
pub mod error;
pub mod health;
pub mod keys;
pub mod lifecycle;
pub mod limits;
pub mod log_format;
pub mod log_writer;
pub mod metrics;
pub mod providers;
pub mod proxy;
pub mod rag;
pub mod router;
pub mod secret;
pub mod server;
pub mod smoke;
pub mod spend;
