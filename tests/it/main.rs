//! The integration tests of HX Gateway, one binary (`cargo test --test it`).

#[cfg(feature = "local-embeddings")]
mod local_embeddings;
