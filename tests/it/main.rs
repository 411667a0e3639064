//! The one integration-test binary: the real server on port 0, real Postgres and Redis, the
//! real embedded vector engine; only upstream LLM providers are simulated.

// clippy.toml allows these in `#[test]` functions; the helpers of this binary (servers,
// doubles, fixtures) are test code too, and fail the test the same way.
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail the test by panicking"
)]

mod cache;
mod cli;
mod clients;
mod common;
mod core;
mod customers;
mod durability;
mod gateway_keys;
mod key_fields;
mod keys;
mod limits;
#[cfg(feature = "local-embeddings")]
mod local_embeddings;
#[cfg(feature = "local-embeddings")]
mod local_gateway;
mod messages;
mod messages_wire;
mod multi_instance;
mod ops;
mod pipeline;
mod providers;
mod rag_http;
mod rag_ingest;
mod rag_store;
#[cfg(feature = "local-embeddings")]
mod readme;
mod responses;
mod responses_wire;
mod routing;
mod security;
mod teams;
