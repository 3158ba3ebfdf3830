//! One client connection over TCP: reads the CONNECT within the deadline, authenticates, hands
//! the session to the protocol [`Engine`], then moves bytes between the socket and the engine
//! until either side closes.
//!
//! Memory per idle connection is kept small on purpose: no read buffer is held between packets
//! (readiness is awaited first, a buffer is taken only when bytes arrive and dropped once they are
//! consumed), no write buffer when nothing is pending, no channel and no extra task.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use bytes::BytesMut;
use stratus_codec::{
    ConnAck, Connect, DecodeError, Decoder, Packet, ProtocolVersion, ReasonCode,
    peek_protocol_version,
};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};
use tracing::Instrument;

use super::ServerContext;
use crate::protocol::{self, Close, Engine, Flow};

/// Bytes requested from the socket per read.
const READ_CHUNK: usize = 8 * 1024;

/// Serves one accepted TCP connection to the end.
pub(crate) async fn serve(stream: TcpStream, peer: SocketAddr, ctx: Arc<ServerContext>) {
    let span = tracing::debug_span!("connection", %peer, tenant = tracing::field::Empty, client_id = tracing::field::Empty);
    async move {
        let _live = ctx.live.enter();
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!("cannot set TCP_NODELAY: {e}");
        }
        run(stream, &ctx).await;
    }
    .instrument(span)
    .await;
}

async fn run(stream: TcpStream, ctx: &Arc<ServerContext>) {
    // The handshake and the close are boxed: they run once, and inlined they would make every
    // connection task (which lives as long as the connection) larger for its whole life.
    let Some(accepted) = Box::pin(handshake(&stream, ctx)).await else {
        return;
    };
    let Accepted {
        mut engine,
        decoder,
        rbuf,
        _count,
    } = accepted;
    let close = drive(&stream, &mut engine, decoder, rbuf).await;
    Box::pin(close_connection(stream, engine, close)).await;
}

/// A client whose CONNECT was accepted.
struct Accepted {
    engine: Engine,
    decoder: Decoder,
    rbuf: BytesMut,
    _count: ConnectionCount,
}

/// Reads, authenticates and accepts the CONNECT; `None` when the connection was refused or lost.
async fn handshake(stream: &TcpStream, ctx: &Arc<ServerContext>) -> Option<Accepted> {
    let limits = &ctx.broker.config.limits;
    let mut decoder = Decoder::server(limits.max_packet_size);
    let mut rbuf = BytesMut::new();
    let mut shutdown = ctx.shutdown.clone();
    let first = tokio::select! {
        r = timeout(limits.connect_timeout(), read_connect(stream, &mut decoder, &mut rbuf)) => r,
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
            refuse_malformed_connect(stream, version, &e).await;
            return None;
        }
        Ok(Ok(c)) => c,
    };
    let version = connect.protocol;
    let span = tracing::Span::current();
    span.record("client_id", tracing::field::display(&connect.client_id));

    // Authentication: argon2 verification is slow by design, so it runs off the async threads.
    let auth = ctx.auth.clone();
    let principal = if auth.needs_verification(connect.username.as_ref()) {
        let (user, pass) = (connect.username.clone(), connect.password.clone());
        match tokio::task::spawn_blocking(move || auth.authenticate(user.as_ref(), pass.as_ref()))
            .await
        {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("authentication task failed: {e}");
                return None;
            }
        }
    } else {
        auth.authenticate(connect.username.as_ref(), connect.password.as_ref())
    };
    let principal = match principal {
        Ok(p) => p,
        Err(e) => {
            tracing::info!(username = ?connect.username, "connection refused: {e}");
            write_all(
                stream,
                &connack_bytes(&protocol::failure(e.reason_code()), version),
            )
            .await;
            return None;
        }
    };
    span.record("tenant", tracing::field::display(&principal.tenant));
    let tenant = ctx.broker.tenant(&principal.tenant);

    // Tenant connection cap.
    let previous = tenant.connections.fetch_add(1, Ordering::AcqRel);
    let count = ConnectionCount(Arc::clone(&tenant));
    if previous >= limits.max_connections_per_tenant {
        tracing::warn!(
            "connection refused: the tenant's connection cap is reached (limits.max_connections_per_tenant)"
        );
        write_all(
            stream,
            &connack_bytes(&protocol::failure(ReasonCode::QuotaExceeded), version),
        )
        .await;
        return None;
    }

    let now = Instant::now();
    let (mut engine, connack) = match protocol::accept(&ctx.broker, &tenant, connect, now) {
        Ok(accepted) => accepted,
        Err(refusal) => {
            tracing::info!("connection refused: {}", refusal.why);
            if let Some(mut connack) = refusal.connack {
                if version.is_v5() {
                    connack.properties.reason_string = Some(refusal.why.into());
                }
                write_all(stream, &connack_bytes(&connack, version)).await;
            }
            return None;
        }
    };
    tracing::debug!(
        protocol = %version,
        username = ?principal.username,
        session_present = connack.session_present,
        "client connected"
    );
    // CONNACK, a resumed session's in-flight messages, and whatever is queued.
    if let Flow::Close(c) = engine.start(&connack, Instant::now()) {
        Box::pin(close_connection_ref(stream, engine, c)).await;
        return None;
    }
    Some(Accepted {
        engine,
        decoder,
        rbuf,
        _count: count,
    })
}

/// Sends the final DISCONNECT (5.0), detaches the session, and closes the socket.
async fn close_connection(stream: TcpStream, engine: Engine, close: Close) {
    let server_closed = close.send.is_some();
    close_connection_ref(&stream, engine, close).await;
    if server_closed {
        linger(stream).await;
    }
}

/// [`close_connection`] without the lingering half-close (the socket stays with the caller).
async fn close_connection_ref(stream: &TcpStream, mut engine: Engine, close: Close) {
    if let Some(reason) = close.send {
        engine.write_disconnect(reason, &close.why);
    }
    // Best effort: deliver what is ready (e.g. the DISCONNECT) without waiting on a slow peer.
    let _ = timeout(LINGER, flush_all(stream, &mut engine)).await;
    tracing::debug!(reason = %close.why, "connection closed");
    engine.finish(&close, Instant::now());
}

/// How long a connection the server closes keeps draining the client's input.
const LINGER: std::time::Duration = std::time::Duration::from_secs(1);

/// Closes our side and discards what the client still sends for a moment. Closing a socket with
/// unread input makes the kernel send RST, and a RST makes the client's kernel throw away our
/// DISCONNECT before the client reads it; a half-close followed by draining avoids that.
async fn linger(mut stream: TcpStream) {
    use tokio::io::AsyncWriteExt;
    if stream.shutdown().await.is_err() {
        return;
    }
    let drain = async {
        // On the heap: an array here would enlarge every connection task, lingering or not.
        let mut scratch = vec![0u8; 4096];
        loop {
            if stream.readable().await.is_err() {
                return;
            }
            match stream.try_read(&mut scratch) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => return,
            }
        }
    };
    let _ = timeout(LINGER, drain).await;
}

/// The connected phase: returns how the connection ended.
///
/// Written as one `poll` function over socket readiness, the session's wake-up flag, the store's
/// commit position and the keep-alive timer, rather than a `select!` over futures: only the timer
/// needs state in the task, which keeps an idle connection small.
async fn drive(
    stream: &TcpStream,
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
        stream,
        decoder,
        rbuf,
        bytes_in: 0,
        bytes_out: 0,
    };
    std::future::poll_fn(|cx| io.poll(cx, engine, sleep.as_mut())).await
}

/// The socket side of a connected client.
struct Io<'a> {
    stream: &'a TcpStream,
    decoder: Decoder,
    rbuf: BytesMut,
    bytes_in: u64,
    bytes_out: u64,
}

impl Io<'_> {
    /// Makes all the progress possible now; `Pending` once nothing can move without a wake-up.
    fn poll(
        &mut self,
        cx: &mut Context<'_>,
        engine: &mut Engine,
        mut sleep: Pin<&mut tokio::time::Sleep>,
    ) -> Poll<Close> {
        let result = self.progress(cx, engine, sleep.as_mut());
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
                match self.stream.poll_write_ready(cx) {
                    Poll::Pending => break,
                    Poll::Ready(Err(e)) => {
                        return Poll::Ready(Close::lost(format!("socket error: {e}")));
                    }
                    Poll::Ready(Ok(())) => match self.stream.try_write(engine.ready_output()) {
                        Ok(0) => {
                            return Poll::Ready(Close::lost("write failed: connection closed"));
                        }
                        Ok(n) => {
                            self.bytes_out += n as u64;
                            engine.consumed(n);
                        }
                        // Readiness was stale and is now cleared: poll again to register.
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(e) => return Poll::Ready(Close::lost(format!("write failed: {e}"))),
                    },
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
                match self.stream.poll_read_ready(cx) {
                    Poll::Pending => {}
                    Poll::Ready(Err(e)) => {
                        return Poll::Ready(Close::lost(format!("socket error: {e}")));
                    }
                    Poll::Ready(Ok(())) => {
                        match read_some(self.stream, &mut self.rbuf, &mut self.bytes_in) {
                            Ok(ReadOutcome::Data) => {
                                if let Some(c) =
                                    process_input(engine, &mut self.decoder, &mut self.rbuf)
                                {
                                    return Poll::Ready(c);
                                }
                                progressed = true;
                            }
                            // Readiness cleared: loop so the next poll registers for the next event.
                            Ok(ReadOutcome::WouldBlock) => progressed = true,
                            Ok(ReadOutcome::Eof) => {
                                return Poll::Ready(Close::lost(
                                    "connection closed by the client without DISCONNECT",
                                ));
                            }
                            Err(e) => return Poll::Ready(Close::lost(format!("read failed: {e}"))),
                        }
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

enum ReadOutcome {
    Data,
    WouldBlock,
    Eof,
}

fn read_some(
    stream: &TcpStream,
    rbuf: &mut BytesMut,
    bytes_in: &mut u64,
) -> io::Result<ReadOutcome> {
    if rbuf.capacity() - rbuf.len() < 512 {
        rbuf.reserve(READ_CHUNK);
    }
    match stream.try_read_buf(rbuf) {
        Ok(0) => Ok(ReadOutcome::Eof),
        Ok(n) => {
            *bytes_in += n as u64;
            Ok(ReadOutcome::Data)
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            // Readiness was stale: do not keep an empty buffer for an idle connection.
            if rbuf.is_empty() {
                *rbuf = BytesMut::new();
            }
            Ok(ReadOutcome::WouldBlock)
        }
        Err(e) => Err(e),
    }
}

/// Writes as much ready output as the socket takes without blocking.
fn write_ready(stream: &TcpStream, engine: &mut Engine, bytes_out: &mut u64) -> io::Result<()> {
    while !engine.ready_output().is_empty() {
        match stream.try_write(engine.ready_output()) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                *bytes_out += n as u64;
                engine.consumed(n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

async fn flush_all(stream: &TcpStream, engine: &mut Engine) {
    let mut n = 0;
    while !engine.ready_output().is_empty() {
        if write_ready(stream, engine, &mut n).is_err() || stream.writable().await.is_err() {
            return;
        }
    }
}

enum ReadError {
    Io(io::Error),
    /// The CONNECT did not decode; the version is what its first bytes said, if readable.
    Decode(DecodeError, Option<ProtocolVersion>),
}

/// Reads until one packet (necessarily CONNECT) is decoded.
async fn read_connect(
    stream: &TcpStream,
    decoder: &mut Decoder,
    rbuf: &mut BytesMut,
) -> Result<Connect, ReadError> {
    loop {
        stream.readable().await.map_err(ReadError::Io)?;
        let mut n = 0;
        match read_some(stream, rbuf, &mut n).map_err(ReadError::Io)? {
            ReadOutcome::Eof => return Err(ReadError::Io(io::ErrorKind::UnexpectedEof.into())),
            ReadOutcome::WouldBlock => continue,
            ReadOutcome::Data => {}
        }
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
    }
}

/// Answers a CONNECT that could not be decoded: a 5.0 client gets a CONNACK with the reason
/// ([MQTT-4.13.1-1] allows it), an unknown protocol level gets "unsupported protocol version",
/// everything else is closed silently.
async fn refuse_malformed_connect(
    stream: &TcpStream,
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
        stream,
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

async fn write_all(stream: &TcpStream, mut bytes: &[u8]) {
    let write = async {
        while !bytes.is_empty() {
            if stream.writable().await.is_err() {
                return;
            }
            match stream.try_write(bytes) {
                Ok(n) => bytes = &bytes[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => return,
            }
        }
    };
    let _ = timeout(std::time::Duration::from_secs(1), write).await;
}

/// Decrements the tenant's connection count when the connection ends.
struct ConnectionCount(Arc<crate::broker::Tenant>);

impl Drop for ConnectionCount {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::AcqRel);
    }
}
