//! HX Gateway: an LLM gateway that reads LiteLLM's config and serves its OpenAI-compatible API,
//! with virtual keys, limits, caching and retrieval built in.

pub mod embeddings;
pub mod error;
pub mod secret;
