//! Everything between `accept()` and the first MQTT byte: the PROXY protocol header (when the
//! listener expects one), the TLS handshake (SNI, client certificate) and the WebSocket upgrade
//! (path, `mqtt` subprotocol, Host, Origin). All of it is bounded by the CONNECT deadline.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpStream;
use tokio::time::timeout_at;
use tracing::Instrument;

use super::ServerContext;
use super::transport::{ConnectionInfo, StreamTransport, Transport};
use crate::config::ListenerName;

/// Serves one accepted TCP connection to the end.
pub(crate) async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    listener: ListenerName,
    ctx: Arc<ServerContext>,
) {
    let span = tracing::debug_span!(
        "connection",
        peer = tracing::field::Empty,
        %listener,
        tenant = tracing::field::Empty,
        client_id = tracing::field::Empty
    );
    async move {
        let _live = ctx.live.enter();
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!("cannot set TCP_NODELAY: {e}");
        }
        // Boxed: it runs once and would otherwise enlarge every connection task.
        let Some((transport, info)) = Box::pin(establish(stream, peer, listener, &ctx)).await
        else {
            return;
        };
        super::connection::run(transport, info, &ctx).await;
    }
    .instrument(span)
    .await;
}

/// Runs the pre-MQTT layers of `listener`; `None` (logged) when any of them refused or timed out.
async fn establish(
    mut stream: TcpStream,
    peer: SocketAddr,
    listener: ListenerName,
    ctx: &ServerContext,
) -> Option<(Transport, ConnectionInfo)> {
    let timeout_secs = ctx.broker.config.limits.connect_timeout();
    let deadline = tokio::time::Instant::now() + timeout_secs;
    let work = async {
        let mut info = ConnectionInfo {
            peer,
            listener,
            sni: None,
            host: None,
            client_cert: None,
            connect_deadline: deadline,
        };
        if ctx.proxy_protocol.contains(&listener) {
            match crate::proxy::read_header(&mut stream, timeout_secs).await {
                Ok(header) => {
                    if let Some(source) = header.source {
                        info.peer = source;
                    }
                }
                Err(e) => {
                    tracing::info!(%peer, "connection refused: invalid PROXY protocol header: {e}");
                    return None;
                }
            }
        }
        tracing::Span::current().record("peer", tracing::field::display(info.peer));
        let max_packet = ctx.broker.config.limits.max_packet_size;
        let websocket = &ctx.broker.config.websocket;
        let transport = match listener {
            ListenerName::Mqtt => Transport::Tcp(stream),
            ListenerName::Ws => {
                let ws = crate::ws::accept(stream, websocket, max_packet)
                    .await
                    .map_err(|e| tracing::info!("WebSocket upgrade refused: {e}"))
                    .ok()?;
                info.host = ws.host;
                Transport::Layered(ws.transport)
            }
            ListenerName::Mqtts | ListenerName::Wss => {
                let Some(tls) = &ctx.tls else {
                    tracing::error!("TLS listener without TLS settings");
                    return None;
                };
                let accepted = tls
                    .accept(stream)
                    .await
                    .map_err(|e| tracing::info!("TLS handshake refused: {e}"))
                    .ok()?;
                info.sni = accepted.sni;
                info.client_cert = accepted.client_cert;
                if listener == ListenerName::Mqtts {
                    Transport::Layered(Box::new(StreamTransport(accepted.stream)))
                } else {
                    let ws = crate::ws::accept(accepted.stream, websocket, max_packet)
                        .await
                        .map_err(|e| tracing::info!("WebSocket upgrade refused: {e}"))
                        .ok()?;
                    info.host = ws.host;
                    Transport::Layered(ws.transport)
                }
            }
        };
        Some((transport, info))
    };
    match timeout_at(deadline, work).await {
        Ok(result) => result,
        Err(_) => {
            tracing::debug!(%peer, "closed: transport set-up did not finish within the connect deadline");
            None
        }
    }
}
