//! Network listeners: accept loops that hand each connection to its own task.

mod connection;
mod live;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::auth::Authenticator;
use crate::broker::Broker;
pub(crate) use live::LiveConnections;

/// What every connection task needs.
#[derive(Debug)]
pub(crate) struct ServerContext {
    /// The broker.
    pub(crate) broker: Arc<Broker>,
    /// Credential checks.
    pub(crate) auth: Authenticator,
    /// Becomes true when the server shuts down.
    pub(crate) shutdown: watch::Receiver<bool>,
    /// Live connection tasks.
    pub(crate) live: LiveConnections,
}

/// Accepts MQTT-over-TCP connections until shutdown.
pub(crate) async fn run_tcp(listener: TcpListener, ctx: Arc<ServerContext>) {
    let mut shutdown = ctx.shutdown.clone();
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                tokio::spawn(connection::serve(stream, peer, Arc::clone(&ctx)));
            }
            Err(e) => {
                // Typically EMFILE: out of file descriptors. Back off instead of spinning.
                tracing::warn!("accept failed: {e}; is the open-file limit (ulimit -n) too low?");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

/// The local address of a bound listener, for logs.
pub(crate) fn local_addr(listener: &TcpListener) -> Option<SocketAddr> {
    listener.local_addr().ok()
}
