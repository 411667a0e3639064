//! Serving on one event loop per core: an acceptor hands each new connection, in turn, to one
//! of N server threads, each running a single-threaded runtime, as nginx's workers do.
//!
//! A proxied request is a chain of small wake-ups (client socket, handler, upstream
//! connection, back). On tokio's work-stealing runtime those hop between worker threads, and
//! at full load the futex wake-ups and context switches cost more than the work itself: two
//! workers served no more requests per second than one (bench/). Here a connection, the tasks
//! its requests spawn and the upstream connections they use (each server thread has its own
//! upstream clients, `server::ServerState`) stay on one thread. Connections are
//! dealt round-robin rather than accepted by whichever thread wakes first, which gave one
//! thread every connection of a client opening them all at once.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::serve::Listener;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};

use super::ServerState;
use crate::gateway::AppState;
use crate::providers::Upstream;

/// Connections accepted by the acceptor, handed to one server thread.
struct HandedOff {
    connections: mpsc::UnboundedReceiver<(std::net::TcpStream, SocketAddr)>,
    local: SocketAddr,
}

impl Listener for HandedOff {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.connections.recv().await {
                Some((stream, peer)) => match TcpStream::from_std(stream) {
                    Ok(stream) => return (stream, peer),
                    Err(e) => tracing::debug!(error = %e, "handed-off connection dropped"),
                },
                // The acceptor stopped (shutdown): no more connections; the server ends
                // through its shutdown signal.
                None => std::future::pending::<()>().await,
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}

/// Serves until `shutdown` turns true on `threads` server threads; the returned task ends
/// when every thread has drained its connections.
pub fn serve_on_threads(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: &watch::Receiver<bool>,
    threads: usize,
) -> std::io::Result<tokio::task::JoinHandle<std::io::Result<()>>> {
    let local = listener.local_addr()?;
    let mut handoffs = Vec::with_capacity(threads);
    let mut finished = Vec::with_capacity(threads);
    for index in 0..threads {
        let (handoff, connections) = mpsc::unbounded_channel();
        let listener = HandedOff { connections, local };
        let state = state.clone();
        let mut stop = shutdown.clone();
        let (done, wait) = oneshot::channel();
        std::thread::Builder::new()
            .name(format!("hx-server-{index}"))
            .spawn(move || {
                let upstream = match Upstream::new() {
                    Ok(upstream) => upstream,
                    Err(e) => {
                        tracing::warn!(error = %e, "server thread uses the shared upstream client");
                        state.upstream.clone()
                    }
                };
                let state = ServerState {
                    gateway: state,
                    upstream,
                };
                let result = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .and_then(|runtime| {
                        runtime.block_on(super::serve_on(listener, state, async move {
                            let _ = stop.wait_for(|s| *s).await;
                        }))
                    });
                let _ = done.send(result);
            })?;
        handoffs.push(handoff);
        finished.push(wait);
    }
    let acceptor = tokio::spawn(accept_loop(listener, handoffs, shutdown.clone()));
    Ok(tokio::spawn(async move {
        // The listener is closed first: no connection is taken while the threads drain.
        let _ = acceptor.await;
        for wait in finished {
            match wait.await {
                Ok(result) => result?,
                Err(_) => return Err(std::io::Error::other("a server thread stopped")),
            }
        }
        Ok(())
    }))
}

type Handoff = mpsc::UnboundedSender<(std::net::TcpStream, SocketAddr)>;

/// Accepts until shutdown and deals the connections out in turn.
async fn accept_loop(
    listener: TcpListener,
    handoffs: Vec<Handoff>,
    mut stop: watch::Receiver<bool>,
) {
    let mut next = 0usize;
    loop {
        let accepted = tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                let Ok(stream) = stream.into_std() else {
                    continue;
                };
                if let Some(handoff) = handoffs.get(next % handoffs.len()) {
                    let _ = handoff.send((stream, peer));
                }
                next = next.wrapping_add(1);
            }
            // A connection that failed before it was accepted concerns only that client.
            Err(e) if is_connection_error(&e) => {}
            // Out of file descriptors and the like: wait rather than spin (as axum does).
            Err(e) => {
                tracing::error!(error = %e, "accept failed; retrying in 1s");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        }
    }
}

fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    )
}
