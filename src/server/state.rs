//! What a server thread's handlers share: the gateway, and the thread's own upstream clients,
//! so that the connections a thread's requests use upstream are driven by that thread (see
//! `server::threads`). Handlers take the part they need (`State<Arc<AppState>>`,
//! `State<Upstream>`) through `FromRef`.

use std::sync::Arc;

use axum::extract::FromRef;

use crate::gateway::AppState;
use crate::providers::Upstream;

/// The axum state of one server thread.
#[derive(Clone)]
pub struct ServerState {
    pub gateway: Arc<AppState>,
    pub upstream: Upstream,
}

impl ServerState {
    /// The state of a server that sends upstream with the gateway's shared clients.
    pub fn shared(gateway: Arc<AppState>) -> Self {
        let upstream = gateway.upstream.clone();
        ServerState { gateway, upstream }
    }
}

impl FromRef<ServerState> for Arc<AppState> {
    fn from_ref(state: &ServerState) -> Self {
        state.gateway.clone()
    }
}

impl FromRef<ServerState> for Upstream {
    fn from_ref(state: &ServerState) -> Self {
        state.upstream.clone()
    }
}
