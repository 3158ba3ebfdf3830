//! Everything between `accept()` and the first MQTT byte: the PROXY protocol header (when the
//! listener expects one), the TLS handshake (SNI, client certificate) and the WebSocket upgrade
//! (path, `mqtt` subprotocol, Host, Origin). All of it is bounded by the CONNECT deadline.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpStream;
use tokio::time::timeout_at;
use tracing::Instrument;

use super::ServerContext;
use super::connection::Connected;
use super::live::LiveGuard;
use super::transport::{ConnectionInfo, StreamTransport, Transport};
use crate::config::ListenerName;

/// Spawns the task serving one accepted TCP connection to the end.
///
/// The task's future lives as long as the connection, so it is kept small: the set-up (transport
/// layers, CONNECT, CONNACK) is one boxed future that is freed once the client is connected, and
/// the span is attached only when it is enabled (a disabled span would still take 40 bytes).
pub(crate) fn spawn(
    stream: TcpStream,
    peer: SocketAddr,
    listener: ListenerName,
    ctx: &Arc<ServerContext>,
) {
    let span = tracing::debug_span!(
        "connection",
        peer = tracing::field::Empty,
        %listener,
        tenant = tracing::field::Empty,
        client_id = tracing::field::Empty
    );
    let live = ctx.live.enter();
    let setup = Box::pin(setup(stream, peer, listener, Arc::clone(ctx), live));
    let task = super::connection::serve(setup);
    if span.is_disabled() {
        tokio::spawn(task);
    } else {
        tokio::spawn(task.instrument(span));
    }
}

/// Sets the connection up to the point where its client is connected; `None` (logged) when it
/// was refused, timed out or lost on the way. `live` counts the task until the connection ends.
async fn setup(
    stream: TcpStream,
    peer: SocketAddr,
    listener: ListenerName,
    ctx: Arc<ServerContext>,
    live: LiveGuard,
) -> Option<Connected> {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!("cannot set TCP_NODELAY: {e}");
    }
    let (transport, info) = establish(stream, peer, listener, &ctx).await?;
    super::connection::handshake(transport, &info, &ctx, live).await
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
            // Boxed: only PROXY listeners need this large future.
            match Box::pin(crate::proxy::read_header(&mut stream, timeout_secs)).await {
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
        let transport = match listener {
            ListenerName::Mqtt => Transport::Tcp(stream),
            // Boxed: TLS and WebSocket set-up are large futures that plain TCP should not carry.
            ListenerName::Ws | ListenerName::Mqtts | ListenerName::Wss => {
                Box::pin(layered(stream, &mut info, ctx)).await?
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

/// TLS and/or WebSocket over `stream`, as `info.listener` asks; records SNI, client certificate
/// and Host in `info`.
async fn layered(
    stream: TcpStream,
    info: &mut ConnectionInfo,
    ctx: &ServerContext,
) -> Option<Transport> {
    let max_packet = ctx.broker.config.limits.max_packet_size;
    let websocket = &ctx.broker.config.websocket;
    if info.listener == ListenerName::Ws {
        let ws = crate::ws::accept(stream, websocket, max_packet)
            .await
            .map_err(|e| tracing::info!("WebSocket upgrade refused: {e}"))
            .ok()?;
        info.host = ws.host;
        return Some(Transport::Layered(ws.transport));
    }
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
    if info.listener == ListenerName::Mqtts {
        return Some(Transport::Layered(Box::new(StreamTransport(
            accepted.stream,
        ))));
    }
    let ws = crate::ws::accept(accepted.stream, websocket, max_packet)
        .await
        .map_err(|e| tracing::info!("WebSocket upgrade refused: {e}"))
        .ok()?;
    info.host = ws.host;
    Some(Transport::Layered(ws.transport))
}
