//! Stream helpers: a per-chunk idle timeout (`stream_timeout`) for upstream streams.

use std::time::Duration;

use futures::StreamExt;

use crate::providers::{ChunkStream, ProviderError};

/// Ends a stream with a timeout error when the next chunk takes longer than `idle`.
pub fn with_idle_timeout(stream: ChunkStream, idle: Option<Duration>) -> ChunkStream {
    let Some(idle) = idle else {
        return stream;
    };
    let state = Some(stream);
    Box::pin(futures::stream::unfold(state, move |state| async move {
        let mut stream = state?;
        match tokio::time::timeout(idle, stream.next()).await {
            Ok(Some(item)) => Some((item, Some(stream))),
            Ok(None) => None,
            Err(_) => Some((
                Err(ProviderError::Timeout(format!(
                    "no data from the upstream stream for {}s",
                    idle.as_secs_f64()
                ))),
                None,
            )),
        }
    }))
}
