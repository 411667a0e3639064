//! Logging: the line format of the access and event logs, and the batched writer that puts
//! them on stderr off the request path.

pub mod format;
pub mod writer;
