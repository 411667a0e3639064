//! The one integration-test binary: the real server on port 0, real Postgres and Redis, the
//! real embedded vector engine; only upstream LLM providers are simulated.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cache;
mod cli;
mod common;
mod core;
mod durability;
mod gateway_keys;
mod keys;
mod limits;
#[cfg(feature = "local-embeddings")]
mod local_embeddings;
#[cfg(feature = "local-embeddings")]
mod local_gateway;
mod multi_instance;
mod ops;
mod pipeline;
mod providers;
mod rag_http;
mod rag_ingest;
mod rag_store;
mod routing;
mod security;
