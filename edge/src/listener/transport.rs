//! The byte stream under an MQTT connection: plain TCP, or a layered stream (TLS, WebSocket).
//!
//! Plain TCP is served by readiness (`poll_read_ready`, then a non-blocking read), so an idle
//! connection holds no read buffer, and a read goes through a stack buffer so that the heap buffer
//! is exactly as large as what arrived: that is all a connection holds while it handles a packet
//! (and all a message sliced from it pins), instead of a fixed 8 KiB for a 20-byte SUBSCRIBE.
//! Layered transports implement [`ByteTransport`]; they keep their own buffers (TLS records,
//! WebSocket frames), so they cost more per connection.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::config::ListenerName;

/// Bytes requested from a TCP socket per read.
const READ_CHUNK: usize = 8 * 1024;

/// Spare capacity in the read buffer (left from a partial packet) worth reading into directly.
const MIN_SPARE: usize = 512;

/// A layered transport: reads append to the caller's buffer, writes take what they can.
pub(crate) trait ByteTransport: Send + 'static {
    /// Appends the bytes available to `buf`; `Ready(Ok(0))` is the end of the stream.
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut BytesMut) -> Poll<io::Result<usize>>;
    /// Writes a prefix of `data`, returning its length.
    fn poll_write(&mut self, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>>;
    /// Pushes anything buffered to the network.
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    /// Starts an orderly close of the sending side (TLS close_notify, WebSocket close frame).
    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
}

/// Any `AsyncRead + AsyncWrite` stream (e.g. a TLS stream) as a [`ByteTransport`].
#[derive(Debug)]
pub(crate) struct StreamTransport<S>(pub(crate) S);

impl<S> ByteTransport for StreamTransport<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut BytesMut) -> Poll<io::Result<usize>> {
        // Read through a stack buffer so nothing is held while the stream is idle.
        let mut chunk = [0u8; 8 * 1024];
        let mut rb = ReadBuf::new(&mut chunk);
        ready!(Pin::new(&mut self.0).poll_read(cx, &mut rb))?;
        buf.extend_from_slice(rb.filled());
        Poll::Ready(Ok(rb.filled().len()))
    }

    fn poll_write(&mut self, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, data)
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// The transport of one connection.
pub(crate) enum Transport {
    /// MQTT directly over TCP (the common case; kept unboxed and buffer-free while idle).
    Tcp(TcpStream),
    /// MQTT over a layered transport.
    Layered(Box<dyn ByteTransport>),
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Tcp(s) => f.debug_tuple("Tcp").field(s).finish(),
            Self::Layered(_) => f.write_str("Layered"),
        }
    }
}

impl Transport {
    /// Appends the bytes available to `buf`; `Ready(Ok(0))` is the end of the stream.
    pub(crate) fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut BytesMut,
    ) -> Poll<io::Result<usize>> {
        match self {
            Self::Tcp(stream) => loop {
                ready!(stream.poll_read_ready(cx))?;
                let read = if buf.capacity() - buf.len() >= MIN_SPARE {
                    stream.try_read_buf(buf)
                } else {
                    let mut chunk = [0u8; READ_CHUNK];
                    stream.try_read(&mut chunk).inspect(|&n| {
                        buf.extend_from_slice(&chunk[..n]);
                    })
                };
                match read {
                    Ok(n) => return Poll::Ready(Ok(n)),
                    // Readiness was stale (now cleared): poll again to register for the next
                    // event, and do not keep an empty buffer for an idle connection.
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        if buf.is_empty() {
                            *buf = BytesMut::new();
                        }
                    }
                    Err(e) => return Poll::Ready(Err(e)),
                }
            },
            Self::Layered(t) => t.poll_read(cx, buf),
        }
    }

    /// Writes a prefix of `data`, returning its length.
    pub(crate) fn poll_write(
        &mut self,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self {
            Self::Tcp(stream) => loop {
                ready!(stream.poll_write_ready(cx))?;
                match stream.try_write(data) {
                    Ok(n) => return Poll::Ready(Ok(n)),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Poll::Ready(Err(e)),
                }
            },
            Self::Layered(t) => t.poll_write(cx, data),
        }
    }

    /// Pushes buffered output (a no-op for TCP).
    pub(crate) fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Self::Tcp(_) => Poll::Ready(Ok(())),
            Self::Layered(t) => t.poll_flush(cx),
        }
    }

    /// Closes the sending side.
    pub(crate) fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Self::Tcp(stream) => Pin::new(stream).poll_shutdown(cx),
            Self::Layered(t) => t.poll_shutdown(cx),
        }
    }

    /// Writes all of `data` (and flushes).
    pub(crate) async fn write_all(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let n = std::future::poll_fn(|cx| self.poll_write(cx, data)).await?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            data = &data[n..];
        }
        std::future::poll_fn(|cx| self.poll_flush(cx)).await
    }

    /// Reads once into `buf`.
    pub(crate) async fn read(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        std::future::poll_fn(|cx| self.poll_read(cx, buf)).await
    }

    /// Closes the sending side.
    pub(crate) async fn shutdown(&mut self) -> io::Result<()> {
        std::future::poll_fn(|cx| self.poll_shutdown(cx)).await
    }
}

/// What is known about a connection before MQTT starts.
#[derive(Debug, Clone)]
pub(crate) struct ConnectionInfo {
    /// The client's address (from the PROXY protocol header when the listener expects one).
    pub(crate) peer: SocketAddr,
    /// The listener it arrived on.
    pub(crate) listener: ListenerName,
    /// TLS SNI server name, if any.
    pub(crate) sni: Option<String>,
    /// WebSocket `Host` header (without port), if any.
    pub(crate) host: Option<String>,
    /// Verified client certificate, if any.
    pub(crate) client_cert: Option<ClientCertificate>,
    /// When the CONNECT must have arrived (one deadline for PROXY, TLS, WebSocket and CONNECT).
    pub(crate) connect_deadline: tokio::time::Instant,
}

/// A client certificate that chained to a trusted CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClientCertificate {
    /// Subject distinguished name, RFC 4514 string form.
    pub(crate) subject: String,
    /// Subject common name, if present.
    pub(crate) common_name: Option<String>,
    /// SHA-256 of the DER certificate, lowercase hex.
    pub(crate) fingerprint_sha256: String,
    /// The tenant whose CA issued it, or `None` for the listener-wide CA.
    pub(crate) tenant: Option<stratus_model::TenantId>,
}
