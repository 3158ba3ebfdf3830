//! One client connection after its transport is established (see `establish.rs`): reads the
//! CONNECT within the deadline, authenticates, hands the session to the protocol [`Engine`], then
//! moves bytes between the transport and the engine until either side closes.
//!
//! Memory per idle connection is kept small on purpose: no read buffer is held between packets
//! on TCP (readiness is awaited first, a buffer is taken only when bytes arrive and dropped once
//! they are consumed), no write buffer when nothing is pending, no channel and no extra task.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use bytes::BytesMut;
use stratus_codec::{
    ConnAck, Connect, DecodeError, Decoder, Packet, ProtocolVersion, ReasonCode,
    peek_protocol_version,
};
use tokio::time::{Instant, timeout, timeout_at};

use super::ServerContext;
use super::transport::{ConnectionInfo, Transport};
use crate::access::Credentials;
use crate::protocol::{self, Close, Engine, Flow};

/// How long a connection the server closes keeps draining the client's input.
const LINGER: std::time::Duration = std::time::Duration::from_secs(1);

/// Runs the MQTT part of a connection to the end.
pub(crate) async fn run(mut transport: Transport, info: ConnectionInfo, ctx: &Arc<ServerContext>) {
    // The handshake and the close are boxed: they run once, and inlined they would make every
    // connection task (which lives as long as the connection) larger for its whole life. The
    // connection info moves into the handshake, so the task does not carry it afterwards.
    let Some(accepted) = Box::pin(handshake(&mut transport, info, ctx)).await else {
        return;
    };
    let Accepted {
        mut engine,
        decoder,
        rbuf,
        _count,
    } = accepted;
    let close = drive(&mut transport, &mut engine, decoder, rbuf).await;
    Box::pin(close_connection(transport, engine, close)).await;
}

/// A client whose CONNECT was accepted.
struct Accepted {
    engine: Engine,
    decoder: Decoder,
    rbuf: BytesMut,
    _count: ConnectionCount,
}

/// Reads, authenticates and accepts the CONNECT; `None` when the connection was refused or lost.
async fn handshake(
    transport: &mut Transport,
    info: ConnectionInfo,
    ctx: &Arc<ServerContext>,
) -> Option<Accepted> {
    let limits = &ctx.broker.config.limits;
    let mut decoder = Decoder::server(limits.max_packet_size);
    let mut rbuf = BytesMut::new();
    let mut shutdown = ctx.shutdown.clone();
    let first = tokio::select! {
        r = timeout_at(info.connect_deadline, read_connect(transport, &mut decoder, &mut rbuf)) => r,
        _ = shutdown.wait_for(|stop| *stop) => return None,
    };
    let connect = match first {
        Err(_) => {
            tracing::debug!(
                "closed: no CONNECT within {}s (limits.connect_timeout_secs)",
                limits.connect_timeout_secs
            );
            return None;
        }
        Ok(Err(ReadError::Io(e))) => {
            tracing::debug!("closed before CONNECT: {e}");
            return None;
        }
        Ok(Err(ReadError::Decode(e, version))) => {
            refuse_malformed_connect(transport, version, &e).await;
            return None;
        }
        Ok(Ok(c)) => c,
    };
    let version = connect.protocol;
    let span = tracing::Span::current();
    span.record("client_id", tracing::field::display(&connect.client_id));

    // Tenant and credentials.
    let (claim, username) = crate::tenancy::resolve(
        &info,
        ctx.broker.config.tenant_domain.as_deref(),
        connect.username.as_ref(),
    );
    let creds = Credentials {
        claim,
        username,
        password: connect.password.clone(),
        certificate: info.client_cert.clone(),
        client_id: connect.client_id.clone(),
        peer: info.peer.ip(),
    };
    let (principal, tenant) = match ctx.access.authenticate(&ctx.broker, creds).await {
        Ok(found) => found,
        Err(e) => {
            tracing::info!(username = ?connect.username, "connection refused: {e}");
            let connack = refusal_connack(e.reason_code(), version, &e.to_string());
            write_all(transport, &connack_bytes(&connack, version)).await;
            return None;
        }
    };
    span.record("tenant", tracing::field::display(&principal.tenant));
    let principal = Arc::new(principal);

    // Tenant connection cap.
    let previous = tenant.connections.fetch_add(1, Ordering::AcqRel);
    let count = ConnectionCount(Arc::clone(&tenant));
    if previous >= limits.max_connections_per_tenant {
        let why = "the tenant's connection cap is reached (limits.max_connections_per_tenant)";
        tracing::warn!("connection refused: {why}");
        let connack = refusal_connack(ReasonCode::QuotaExceeded, version, why);
        write_all(transport, &connack_bytes(&connack, version)).await;
        return None;
    }

    let now = Instant::now();
    let (mut engine, connack) =
        match protocol::accept(&ctx.broker, &tenant, connect, Arc::clone(&principal), now) {
            Ok(accepted) => accepted,
            Err(refusal) => {
                tracing::info!("connection refused: {}", refusal.why);
                if let Some(mut connack) = refusal.connack {
                    if version.is_v5() {
                        connack.properties.reason_string = Some(refusal.why.into());
                    }
                    write_all(transport, &connack_bytes(&connack, version)).await;
                }
                return None;
            }
        };
    tracing::debug!(
        protocol = %version,
        transport = %info.listener,
        username = ?principal.username,
        auth = ?principal.method,
        session_present = connack.session_present,
        "client connected"
    );
    // CONNACK, a resumed session's in-flight messages, and whatever is queued.
    if let Flow::Close(c) = engine.start(&connack, Instant::now()) {
        Box::pin(finish(transport, engine, c)).await;
        return None;
    }
    Some(Accepted {
        engine,
        decoder,
        rbuf,
        _count: count,
    })
}

/// A failure CONNACK, with a reason string for 5.0 clients.
fn refusal_connack(reason: ReasonCode, version: ProtocolVersion, why: &str) -> ConnAck {
    let mut connack = protocol::failure(reason);
    if version.is_v5() {
        connack.properties.reason_string = Some(why.into());
    }
    connack
}

/// Sends the final DISCONNECT (5.0), detaches the session, and closes the transport.
async fn close_connection(mut transport: Transport, engine: Engine, close: Close) {
    let server_closed = close.send.is_some();
    finish(&mut transport, engine, close).await;
    if server_closed {
        linger(&mut transport).await;
    }
}

/// Writes the final DISCONNECT (5.0) and what is ready, then detaches the session.
async fn finish(transport: &mut Transport, mut engine: Engine, close: Close) {
    if let Some(reason) = close.send {
        engine.write_disconnect(reason, &close.why);
    }
    // Best effort: deliver what is ready (e.g. the DISCONNECT) without waiting on a slow peer.
    let ready = engine.ready_output().to_vec();
    let _ = timeout(LINGER, transport.write_all(&ready)).await;
    tracing::debug!(reason = %close.why, "connection closed");
    engine.finish(&close, Instant::now());
}

/// Closes our side and discards what the client still sends for a moment. Closing a socket with
/// unread input makes the kernel send RST, and a RST makes the client's kernel throw away our
/// DISCONNECT before the client reads it; a half-close followed by draining avoids that.
async fn linger(transport: &mut Transport) {
    let drain = async {
        if transport.shutdown().await.is_err() {
            return;
        }
        let mut scratch = BytesMut::new();
        loop {
            scratch.clear();
            match transport.read(&mut scratch).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    let _ = timeout(LINGER, drain).await;
}

/// The connected phase: returns how the connection ended.
///
/// Written as one `poll` function over transport readiness, the session's wake-up flag, the
/// store's commit position and the keep-alive timer, rather than a `select!` over futures: only
/// the timer needs state in the task, which keeps an idle connection small.
async fn drive(
    transport: &mut Transport,
    engine: &mut Engine,
    mut decoder: Decoder,
    mut rbuf: BytesMut,
) -> Close {
    // Bytes that arrived together with CONNECT.
    if !rbuf.is_empty()
        && let Some(c) = process_input(engine, &mut decoder, &mut rbuf)
    {
        return c;
    }
    let far_future = Instant::now() + std::time::Duration::from_secs(86_400 * 365);
    let sleep = tokio::time::sleep_until(engine.deadline().unwrap_or(far_future));
    tokio::pin!(sleep);
    let mut io = Io {
        transport,
        decoder,
        rbuf,
        bytes_in: 0,
        bytes_out: 0,
        unflushed: false,
    };
    std::future::poll_fn(|cx| io.poll(cx, engine, sleep.as_mut())).await
}

/// The transport side of a connected client.
struct Io<'a> {
    transport: &'a mut Transport,
    decoder: Decoder,
    rbuf: BytesMut,
    bytes_in: u64,
    bytes_out: u64,
    /// Written bytes a layered transport may still buffer.
    unflushed: bool,
}

impl Io<'_> {
    /// Makes all the progress possible now; `Pending` once nothing can move without a wake-up.
    fn poll(
        &mut self,
        cx: &mut Context<'_>,
        engine: &mut Engine,
        sleep: Pin<&mut tokio::time::Sleep>,
    ) -> Poll<Close> {
        let result = self.progress(cx, engine, sleep);
        engine.flush_stats(
            std::mem::take(&mut self.bytes_in),
            std::mem::take(&mut self.bytes_out),
        );
        result
    }

    fn progress(
        &mut self,
        cx: &mut Context<'_>,
        engine: &mut Engine,
        mut sleep: Pin<&mut tokio::time::Sleep>,
    ) -> Poll<Close> {
        loop {
            let mut progressed = false;
            if engine.control().poll_woken(cx) {
                if let Flow::Close(c) = engine.on_wake(Instant::now()) {
                    return Poll::Ready(c);
                }
                progressed = true;
            }
            progressed |= engine.poll_store(cx);
            // Write what is ready.
            while !engine.ready_output().is_empty() {
                match self.transport.poll_write(cx, engine.ready_output()) {
                    Poll::Pending => break,
                    Poll::Ready(Err(e)) => {
                        return Poll::Ready(Close::lost(format!("write failed: {e}")));
                    }
                    Poll::Ready(Ok(0)) => {
                        return Poll::Ready(Close::lost("write failed: connection closed"));
                    }
                    Poll::Ready(Ok(n)) => {
                        self.bytes_out += n as u64;
                        self.unflushed = true;
                        engine.consumed(n);
                    }
                }
            }
            if self.unflushed && engine.ready_output().is_empty() {
                match self.transport.poll_flush(cx) {
                    Poll::Pending => {}
                    Poll::Ready(Ok(())) => self.unflushed = false,
                    Poll::Ready(Err(e)) => {
                        return Poll::Ready(Close::lost(format!("write failed: {e}")));
                    }
                }
            }
            // Send more of the session's queue once the output has room.
            if engine.wants_drain() {
                if let Flow::Close(c) = engine.drain(Instant::now()) {
                    return Poll::Ready(c);
                }
                if !engine.ready_output().is_empty() {
                    progressed = true;
                }
            }
            // Read when the engine can take more input.
            if engine.wants_input() {
                match self.transport.poll_read(cx, &mut self.rbuf) {
                    Poll::Pending => {}
                    Poll::Ready(Err(e)) => {
                        return Poll::Ready(Close::lost(format!("read failed: {e}")));
                    }
                    Poll::Ready(Ok(0)) => {
                        return Poll::Ready(Close::lost(
                            "connection closed by the client without DISCONNECT",
                        ));
                    }
                    Poll::Ready(Ok(n)) => {
                        self.bytes_in += n as u64;
                        if let Some(c) = process_input(engine, &mut self.decoder, &mut self.rbuf) {
                            return Poll::Ready(c);
                        }
                        progressed = true;
                    }
                }
            }
            // Keep-alive.
            if let Some(deadline) = engine.deadline() {
                if deadline != sleep.deadline() {
                    sleep.as_mut().reset(deadline);
                }
                if sleep.as_mut().poll(cx).is_ready()
                    && let Flow::Close(c) = engine.on_deadline(Instant::now())
                {
                    return Poll::Ready(c);
                }
            }
            if !progressed {
                return Poll::Pending;
            }
        }
    }
}

/// Decodes and handles every complete packet in `rbuf`; releases the buffer when it is empty.
fn process_input(engine: &mut Engine, decoder: &mut Decoder, rbuf: &mut BytesMut) -> Option<Close> {
    let now = Instant::now();
    let result = loop {
        if engine.control().kicked().is_some() {
            match engine.on_wake(now) {
                Flow::Close(c) => break Some(c),
                Flow::Continue => {}
            }
        }
        match decoder.decode(rbuf) {
            Ok(Some(packet)) => {
                if let Flow::Close(c) = engine.handle(packet, now) {
                    break Some(c);
                }
            }
            Ok(None) => break None,
            Err(e) => break Some(engine.decode_error(&e)),
        }
    };
    if rbuf.is_empty() {
        *rbuf = BytesMut::new();
    }
    result
}

enum ReadError {
    Io(io::Error),
    /// The CONNECT did not decode; the version is what its first bytes said, if readable.
    Decode(DecodeError, Option<ProtocolVersion>),
}

/// Reads until one packet (necessarily CONNECT) is decoded.
async fn read_connect(
    transport: &mut Transport,
    decoder: &mut Decoder,
    rbuf: &mut BytesMut,
) -> Result<Connect, ReadError> {
    loop {
        // Read before decoding: a failed decode has already taken the packet out of the buffer.
        let version = peek_protocol_version(rbuf);
        match decoder.decode(rbuf) {
            Ok(Some(Packet::Connect(c))) => return Ok(*c),
            Ok(Some(_)) => {
                let e = DecodeError::FirstPacketNotConnect { first_byte: 0 };
                return Err(ReadError::Decode(e, version));
            }
            Ok(None) => {}
            Err(e) => return Err(ReadError::Decode(e, version)),
        }
        match transport.read(rbuf).await {
            Ok(0) => return Err(ReadError::Io(io::ErrorKind::UnexpectedEof.into())),
            Ok(_) => {}
            Err(e) => return Err(ReadError::Io(e)),
        }
    }
}

/// Answers a CONNECT that could not be decoded: a 5.0 client gets a CONNACK with the reason
/// ([MQTT-4.13.1-1] allows it), an unknown protocol level gets "unsupported protocol version",
/// everything else is closed silently.
async fn refuse_malformed_connect(
    transport: &mut Transport,
    peeked: Option<ProtocolVersion>,
    e: &DecodeError,
) {
    tracing::debug!("closed: invalid CONNECT: {e}");
    let version = match e {
        DecodeError::FirstPacketNotConnect { .. } => return,
        DecodeError::UnsupportedProtocolVersion { level } if *level > 5 => ProtocolVersion::V5,
        DecodeError::UnsupportedProtocolVersion { .. } => ProtocolVersion::V3_1_1,
        _ => match peeked {
            Some(ProtocolVersion::V5) => ProtocolVersion::V5,
            _ => return,
        },
    };
    write_all(
        transport,
        &connack_bytes(&protocol::failure(e.reason_code()), version),
    )
    .await;
}

fn connack_bytes(connack: &ConnAck, version: ProtocolVersion) -> BytesMut {
    let mut buf = BytesMut::new();
    if let Err(e) = Packet::ConnAck(connack.clone()).encode(version, &mut buf) {
        tracing::error!("cannot encode CONNACK: {e}");
    }
    buf
}

/// Writes `bytes`, giving up after a second (the connection is closing anyway).
async fn write_all(transport: &mut Transport, bytes: &[u8]) {
    let _ = timeout(LINGER, transport.write_all(bytes)).await;
}

/// Decrements the tenant's connection count when the connection ends.
struct ConnectionCount(Arc<crate::broker::Tenant>);

impl Drop for ConnectionCount {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::AcqRel);
    }
}
