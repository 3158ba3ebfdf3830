//! Network listeners: one accept loop per enabled listener (MQTT over TCP, TLS, WebSocket,
//! WebSocket over TLS), each handing connections to their own task.

mod connection;
mod establish;
mod live;
mod transport;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::access::Access;
use crate::broker::Broker;
use crate::config::ListenerName;
use crate::tls::TlsService;
pub(crate) use live::LiveConnections;
pub(crate) use transport::{ByteTransport, ClientCertificate, ConnectionInfo};

/// What every connection task needs.
#[derive(Debug)]
pub(crate) struct ServerContext {
    /// The broker.
    pub(crate) broker: Arc<Broker>,
    /// Authentication and access rules.
    pub(crate) access: Arc<Access>,
    /// TLS, when a TLS listener is enabled.
    pub(crate) tls: Option<Arc<TlsService>>,
    /// Listeners that expect a PROXY protocol header.
    pub(crate) proxy_protocol: Vec<ListenerName>,
    /// Becomes true when the server shuts down.
    pub(crate) shutdown: watch::Receiver<bool>,
    /// Live connection tasks.
    pub(crate) live: LiveConnections,
}

/// Accepts connections on `listener` until shutdown.
pub(crate) async fn run(listener: TcpListener, name: ListenerName, ctx: Arc<ServerContext>) {
    let mut shutdown = ctx.shutdown.clone();
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        match accepted {
            Ok((stream, peer)) => establish::spawn(stream, peer, name, &ctx),
            Err(e) => {
                // Typically EMFILE: out of file descriptors. Back off instead of spinning.
                tracing::warn!(listener = %name, "accept failed: {e}; is the open-file limit (ulimit -n) too low?");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

/// The local address of a bound listener.
pub(crate) fn local_addr(listener: &TcpListener, configured: SocketAddr) -> SocketAddr {
    listener.local_addr().unwrap_or(configured)
}
