//! HX Gateway: an LLM gateway that reads LiteLLM's config and serves its OpenAI-compatible API,
//! with virtual keys, limits, caching and retrieval built in.
//!
//! The modules form layers, listed here from the bottom up. A module imports only from its
//! own layer or the ones below (checked by the `imports_run_one_way` test in
//! [`layers`]); the few exceptions are named there, each with its reason.
//!
//! | layer | modules | what they are |
//! |---|---|---|
//! | 0 | [`error`], [`secret`], [`api`], [`tokens`], [`prices`], [`link`], [`metrics`], [`log`] | the error table (OpenAI's and Anthropic's shapes), secrets and redaction, the API's shared words (endpoints, usage, chunks, body fields; Anthropic's Messages API and its translation to OpenAI chat, OpenAI's Responses API and its bridge onto chat, how thinking and its signatures travel on the OpenAI side), token estimates and tokenizers, model prices, the Redis link and clock, the metrics registry, log formatting |
//! | 1 | [`config`] | LiteLLM's `config.yaml`, the environment, deployments |
//! | 2 | [`db`], [`providers`], [`limits`], [`cache`], [`changes`], [`embeddings`] | LiteLLM's tables in Postgres or SQLite, upstream protocols, rate limits, the response cache, change notifications between instances, in-process embedding models |
//! | 3 | [`keys`], [`spend`], [`router`], [`rag`], [`health`] | virtual keys in LiteLLM's tables, spend and budget holds, deployment selection with retries and fallbacks, retrieval, dependency probes |
//! | 4 | [`gateway`], [`caller`], [`roles`] | what every request shares (config runtime and services), who is calling, and which management routes their role opens |
//! | 5 | [`proxy`], [`manage`] | the LLM request pipeline: check, limit, route, account; the management plane's teams, users, customers and budgets, scoped by the caller's role |
//! | 6 | [`server`] | HTTP: routes, extractors, the access log, serving threads (each with its own upstream clients) |
//! | 7 | [`commands`] | `serve`, `check`, `smoke`, `migrate`, `rag ingest` and their flags |

// Layer 0
pub mod api;
pub mod error;
pub mod link;
pub mod log;
pub mod metrics;
pub mod prices;
pub mod secret;
pub mod tokens;
// Layer 1
pub mod config;
// Layer 2
pub mod cache;
pub mod changes;
pub mod db;
pub mod embeddings;
pub mod limits;
pub mod providers;
// Layer 3
pub mod health;
pub mod keys;
pub mod rag;
pub mod router;
pub mod spend;
// Layer 4
pub mod caller;
pub mod gateway;
pub mod roles;
// Layer 5
pub mod manage;
pub mod proxy;
// Layer 6
pub mod server;
// Layer 7
pub mod commands;

#[cfg(test)]
mod layers;
