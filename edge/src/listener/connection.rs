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
use super::live::LiveGuard;
use super::transport::{ConnectionInfo, Transport};
use crate::access::Credentials;
use crate::protocol::{self, Close, Engine, Flow};

/// How long a connection the server closes keeps draining the client's input.
const LINGER: std::time::Duration = std::time::Duration::from_secs(1);
/// How long a connection the server closes waits for output held back by the store (QoS 1/2
/// acknowledgements awaiting JetStream in the clustered shape) before its DISCONNECT.
const HELD_OUTPUT_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// A connection's task: waits for `setup` (transport layers, CONNECT, CONNACK), then runs the
/// connected phase and the close.
///
/// This future lives as long as the connection, so everything in it costs every idle
/// connection: the set-up arrives boxed and is freed once it finished, the connected client is
/// one [`Connected`] value (not several locals that would each keep a slot), deadlines are
/// alarms in the broker's shared heap rather than a timer here, and the close is boxed because
/// it runs once. A test below keeps it within tokio's 384-byte task size.
pub(super) async fn serve<F>(setup: Pin<Box<F>>)
where
    F: Future<Output = Option<Connected>>,
{
    let Some(mut conn) = setup.await else {
        return;
    };
    let close = std::future::poll_fn(|cx| conn.poll(cx)).await;
    Box::pin(conn.close(close)).await;
}

/// A client whose CONNECT was accepted: what its connection task keeps while it is connected.
pub(super) struct Connected {
    transport: Transport,
    engine: Engine,
    decoder: Decoder,
    /// Bytes read and not yet decoded; no allocation while empty.
    rbuf: BytesMut,
    /// Written bytes a layered transport may still buffer.
    unflushed: bool,
    _count: ConnectionCount,
    /// Counts the task for shutdown until the connection is closed.
    _live: LiveGuard,
}

/// Reads, authenticates and accepts the CONNECT; `None` when the connection was refused or lost.
pub(super) async fn handshake(
    mut transport: Transport,
    info: &ConnectionInfo,
    ctx: &Arc<ServerContext>,
    live: LiveGuard,
) -> Option<Connected> {
    let limits = &ctx.broker.config.limits;
    let mut decoder = Decoder::server(limits.max_packet_size);
    let mut rbuf = BytesMut::new();
    // Boxed, like the authentication below: each phase of the set-up is its own allocation, so
    // a connection being set up holds only the phase it is in.
    let first = read_first(&mut transport, &mut decoder, &mut rbuf, info, ctx);
    let connect = Box::pin(first).await?;
    let version = connect.protocol;
    let span = tracing::Span::current();
    span.record("client_id", tracing::field::display(&connect.client_id));

    // Tenant and credentials.
    let (claim, username) = crate::tenancy::resolve(
        info,
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
    // Boxed, like the CONNECT (kept boxed from the decoder): the set-up future of every
    // connection being set up is smaller while it waits for the client.
    let (principal, tenant) = match Box::pin(ctx.access.authenticate(&ctx.broker, creds)).await {
        Ok(found) => found,
        Err(e) => {
            tracing::info!(username = ?connect.username, "connection refused: {e}");
            let connack = Box::new(refusal_connack(e.reason_code(), version, &e.to_string()));
            Box::pin(send_connack(&mut transport, connack, version)).await;
            return None;
        }
    };
    span.record("tenant", tracing::field::display(&principal.tenant));
    let principal = tenant.share_principal(principal);

    // Connect rate per client id, and the tenant's connection cap: across the cluster (Redis) on
    // a clustered edge, in this process otherwise.
    let cluster = ctx.broker.cluster();
    let admitted = match cluster {
        Some(link) => Box::pin(link.admit(&tenant.id, &connect.client_id, limits)).await,
        None if !connect.client_id.is_empty()
            && !ctx.broker.connect_rate.admit(
                &tenant.id,
                &connect.client_id,
                limits.max_connects_per_client_id_per_second,
                Instant::now(),
            ) =>
        {
            Err((
                ReasonCode::ConnectionRateExceeded,
                format!(
                    "more than {} CONNECTs of this client id in one second \
                     (limits.max_connects_per_client_id_per_second)",
                    limits.max_connects_per_client_id_per_second
                ),
            ))
        }
        None => Ok(()),
    };
    if let Err((reason, why)) = admitted {
        tracing::warn!("connection refused: {why}");
        let connack = Box::new(refusal_connack(reason, version, &why));
        Box::pin(send_connack(&mut transport, connack, version)).await;
        return None;
    }
    let previous = tenant.connections.fetch_add(1, Ordering::AcqRel);
    let count = ConnectionCount(Arc::clone(&tenant));
    if cluster.is_none() && previous >= limits.max_connections_per_tenant {
        let why = "the tenant's connection cap is reached (limits.max_connections_per_tenant)";
        tracing::warn!("connection refused: {why}");
        let connack = Box::new(refusal_connack(ReasonCode::QuotaExceeded, version, why));
        Box::pin(send_connack(&mut transport, connack, version)).await;
        return None;
    }

    // The clustered shape: claim the client id across the cluster (closing its connection on
    // another edge) and make sure the tenant's retained messages are here.
    let mut token = 0;
    let mut assigned = None;
    if let Some(link) = ctx.broker.cluster() {
        let intent = protocol::session_intent(&connect, limits);
        assigned = protocol::client_id_to_assign(&ctx.broker, &connect, &intent);
        let claimed_id = assigned.as_deref().unwrap_or(&*connect.client_id);
        match Box::pin(link.prepare_connect(&tenant, claimed_id, intent, limits)).await {
            Ok(t) => token = t,
            Err((reason, why)) => {
                tracing::warn!("connection refused: {why}");
                let connack = Box::new(refusal_connack(reason, version, &why));
                Box::pin(send_connack(&mut transport, connack, version)).await;
                return None;
            }
        }
    }
    let now = Instant::now();
    let client_id = assigned
        .clone()
        .unwrap_or_else(|| connect.client_id.clone());
    let accepted = protocol::accept(
        &ctx.broker,
        &tenant,
        *connect,
        Arc::clone(&principal),
        token,
        assigned,
        now,
    );
    let (mut engine, connack) = match accepted {
        Ok(accepted) => accepted,
        Err(refusal) => {
            if let Some(link) = ctx.broker.cluster() {
                link.ownership.abandon(&tenant.id, &client_id, token);
            }
            tracing::info!("connection refused: {}", refusal.why);
            if let Some(connack) = refusal_of(*refusal, version) {
                Box::pin(send_connack(&mut transport, connack, version)).await;
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
        Box::pin(finish(&mut transport, engine, c)).await;
        return None;
    }
    let mut conn = Connected {
        transport,
        engine,
        decoder,
        rbuf,
        unflushed: false,
        _count: count,
        _live: live,
    };
    // Bytes that arrived together with CONNECT.
    if let Some(close) = conn.process_input() {
        Box::pin(conn.close(close)).await;
        return None;
    }
    Some(conn)
}

/// Sends a refusal CONNACK. Callers box it and the CONNACK: it runs at most once, on a path most
/// connections never take, and inline it would enlarge every connection's set-up future.
async fn send_connack(transport: &mut Transport, connack: Box<ConnAck>, version: ProtocolVersion) {
    write_all(transport, &connack_bytes(&connack, version)).await;
}

/// The CONNACK of a refused CONNECT, if one is sent, with the reason string for 5.0 clients.
fn refusal_of(refusal: protocol::Refusal, version: ProtocolVersion) -> Option<Box<ConnAck>> {
    let mut connack = Box::new(refusal.connack?);
    if version.is_v5() {
        connack.properties.reason_string = Some(refusal.why.into());
    }
    Some(connack)
}

/// A failure CONNACK, with a reason string for 5.0 clients.
fn refusal_connack(reason: ReasonCode, version: ProtocolVersion, why: &str) -> ConnAck {
    let mut connack = protocol::failure(reason);
    if version.is_v5() {
        connack.properties.reason_string = Some(why.into());
    }
    connack
}

impl Connected {
    /// The connected phase, one step: makes all the progress possible now; `Pending` once
    /// nothing can move without a wake-up, with no output buffer left allocated if nothing is
    /// pending. `Ready` says how the connection ended.
    ///
    /// One `poll` function over transport readiness, the session's wake-up flag, the store's
    /// commit position and the connection's deadlines, rather than a `select!` over futures:
    /// nothing but `self` is kept between polls, which keeps an idle connection small.
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Close> {
        let mut traffic = Traffic::default();
        let result = self.progress(cx, &mut traffic);
        self.engine.flush_stats(traffic.bytes_in, traffic.bytes_out);
        if result.is_pending() {
            self.engine.release_idle_buffers();
        }
        result
    }

    fn progress(&mut self, cx: &mut Context<'_>, traffic: &mut Traffic) -> Poll<Close> {
        let engine = &mut self.engine;
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
                        traffic.bytes_out += n as u64;
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
                        traffic.bytes_in += n as u64;
                        // Deliveries queued while this task was between the wake-up check above
                        // and the read go out before the input is answered: a client that sends
                        // a PINGREQ after another client's PUBLISH reached the broker gets that
                        // message before the PINGRESP.
                        if engine.control().poll_woken(cx)
                            && let Flow::Close(c) = engine.on_wake(Instant::now())
                        {
                            return Poll::Ready(c);
                        }
                        if let Some(c) = process_input(engine, &mut self.decoder, &mut self.rbuf) {
                            return Poll::Ready(c);
                        }
                        progressed = true;
                    }
                }
            }
            // Deadlines: keep-alive, credential expiry, the end of a publisher pause. The
            // broker's alarms wake this task when the next one is due (the waker is registered
            // by `poll_woken` above).
            if let Some(deadline) = engine.deadline() {
                let now = Instant::now();
                if now < deadline {
                    engine.arm_alarm(deadline, now);
                } else {
                    match engine.on_deadline(now) {
                        Flow::Close(c) => return Poll::Ready(c),
                        // A pause ended: read again, and arm the next deadline.
                        Flow::Continue => {
                            progressed |= engine.deadline().is_none_or(|d| d > now);
                        }
                    }
                }
            }
            if !progressed {
                return Poll::Pending;
            }
        }
    }

    /// Handles what is already in the read buffer.
    fn process_input(&mut self) -> Option<Close> {
        if self.rbuf.is_empty() {
            return None;
        }
        process_input(&mut self.engine, &mut self.decoder, &mut self.rbuf)
    }

    /// Sends the final DISCONNECT (5.0), detaches the session, releases the connection's slot
    /// in the tenant's count, and closes the transport.
    async fn close(self, close: Close) {
        let Self {
            mut transport,
            engine,
            _count: count,
            _live,
            ..
        } = self;
        let server_closed = close.send.is_some();
        let cluster = engine.broker().cluster().cloned();
        finish(&mut transport, engine, close).await;
        let tenant = Arc::clone(&count.0);
        drop(count);
        if let Some(link) = cluster {
            // Before the socket closes: a client that reconnects once it saw the close finds
            // its slot free on every edge, not only after the next periodic refresh.
            link.connection_closed(&tenant).await;
        }
        if server_closed {
            linger(&mut transport).await;
        }
    }
}

/// Bytes moved in one poll, added to the tenant's counters after it.
#[derive(Default)]
struct Traffic {
    bytes_in: u64,
    bytes_out: u64,
}

/// Writes the final DISCONNECT (5.0) and what is ready, then detaches the session.
async fn finish(transport: &mut Transport, mut engine: Engine, close: Close) {
    if close.send.is_some() && engine.control().kicked().is_none() {
        // The messages these acknowledge were accepted: the client hears so before the
        // DISCONNECT, as it would where nothing is held back.
        let released = std::future::poll_fn(|cx| {
            loop {
                if !engine.holds_output() {
                    return std::task::Poll::Ready(());
                }
                if !engine.poll_store(cx) {
                    return std::task::Poll::Pending;
                }
            }
        });
        if timeout(HELD_OUTPUT_WAIT, released).await.is_err() {
            tracing::debug!("acknowledgements still held for the store are dropped at close");
        }
    }
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

/// Reads the CONNECT within the connect deadline; `None` (logged, a malformed CONNECT
/// answered) when it did not come, did not decode, or the server is shutting down.
async fn read_first(
    transport: &mut Transport,
    decoder: &mut Decoder,
    rbuf: &mut BytesMut,
    info: &ConnectionInfo,
    ctx: &ServerContext,
) -> Option<Box<Connect>> {
    let mut shutdown = ctx.shutdown.clone();
    let first = tokio::select! {
        r = timeout_at(info.connect_deadline, read_connect(transport, decoder, rbuf)) => r,
        _ = shutdown.wait_for(|stop| *stop) => return None,
    };
    match first {
        Err(_) => {
            tracing::debug!(
                "closed: no CONNECT within {}s (limits.connect_timeout_secs)",
                ctx.broker.config.limits.connect_timeout_secs
            );
            None
        }
        Ok(Err(ReadError::Io(e))) => {
            tracing::debug!("closed before CONNECT: {e}");
            None
        }
        Ok(Err(ReadError::Decode(e, version))) => {
            refuse_malformed_connect(transport, version, &e).await;
            None
        }
        Ok(Ok(c)) => Some(c),
    }
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
) -> Result<Box<Connect>, ReadError> {
    loop {
        // Read before decoding: a failed decode has already taken the packet out of the buffer.
        let version = peek_protocol_version(rbuf);
        match decoder.decode(rbuf) {
            Ok(Some(Packet::Connect(c))) => return Ok(c),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Most of an idle connection's memory is its task. tokio adds about 112 bytes to the future
    /// (header, scheduler handle, id, trailer) and rounds the task up to a multiple of 128
    /// bytes: a future of at most 272 bytes makes a 384-byte task, 273 makes a 512-byte one.
    #[test]
    fn an_idle_connection_task_fits_a_384_byte_tokio_task() {
        let task = serve(Box::pin(std::future::pending::<Option<Connected>>()));
        let size = std::mem::size_of_val(&task);
        assert!(size <= 272, "the connection task future is {size} bytes");
    }
}
