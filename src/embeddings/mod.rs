//! Embedding engines that run inside the gateway (as opposed to upstream embedding providers).

#[cfg(feature = "local-embeddings")]
pub mod local;
