//! [`WsTransport`]: a WebSocket connection as a [`ByteTransport`]. Binary message payloads are
//! the MQTT byte stream; the connection's decoder finds the packet boundaries.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::error::{Error as TungError, ProtocolError};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use super::WsError;
use crate::listener::ByteTransport;

/// The largest binary message one `poll_write` sends; a longer write is split (MQTT packets may
/// span messages, [MQTT-6.0.0-2] on the receiving side). Bounds the copies held per connection.
pub(super) const MAX_OUT_MESSAGE: usize = 32 * 1024;

/// A server-side WebSocket carrying MQTT.
pub(super) struct WsTransport<S> {
    ws: WebSocketStream<S>,
    /// The close frame `poll_shutdown` sends (with a reason when the peer broke the rules).
    close: Option<CloseFrame>,
    /// `poll_shutdown` has queued the close frame.
    close_queued: bool,
}

impl<S> std::fmt::Debug for WsTransport<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsTransport")
            .field("close", &self.close)
            .field("close_queued", &self.close_queued)
            .finish_non_exhaustive()
    }
}

impl<S> WsTransport<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    pub(super) fn new(ws: WebSocketStream<S>) -> Self {
        Self {
            ws,
            close: None,
            close_queued: false,
        }
    }

    /// Maps a tungstenite error to an I/O error and remembers the close code to send.
    fn fail(&mut self, e: TungError) -> io::Error {
        let (code, reason, error) = match e {
            TungError::Io(e) => return e,
            TungError::ConnectionClosed
            | TungError::AlreadyClosed
            | TungError::Protocol(ProtocolError::SendAfterClosing) => {
                return io::Error::new(io::ErrorKind::BrokenPipe, e);
            }
            TungError::Capacity(_) => (
                CloseCode::Size,
                "message larger than the maximum packet size",
                WsError::TooLarge(e),
            ),
            e => (
                CloseCode::Protocol,
                "WebSocket protocol violation",
                WsError::Protocol(e),
            ),
        };
        self.close_with(code, reason);
        io::Error::new(io::ErrorKind::InvalidData, error)
    }

    fn close_with(&mut self, code: CloseCode, reason: &'static str) {
        self.close = Some(CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        });
    }
}

impl<S> ByteTransport for WsTransport<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    /// Appends the payload of the next non-empty binary message. Pings are answered by
    /// tungstenite: the pong is queued when the ping is read and written (and flushed) at the
    /// start of the next read, which this loop performs at once. A close frame is the end of the
    /// stream; a text message is an error ([MQTT-6.0.0-1]).
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut BytesMut) -> Poll<io::Result<usize>> {
        loop {
            let message = match ready!(Pin::new(&mut self.ws).poll_next(cx)) {
                None => return Poll::Ready(Ok(0)),
                Some(Ok(message)) => message,
                Some(Err(e)) => return Poll::Ready(Err(self.fail(e))),
            };
            match message {
                Message::Binary(data) if !data.is_empty() => {
                    buf.extend_from_slice(&data);
                    return Poll::Ready(Ok(data.len()));
                }
                Message::Text(_) => {
                    self.close_with(CloseCode::Unsupported, "MQTT needs binary messages");
                    let e = io::Error::new(io::ErrorKind::InvalidData, WsError::TextMessage);
                    return Poll::Ready(Err(e));
                }
                Message::Close(_) => return Poll::Ready(Ok(0)),
                Message::Binary(_) | Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
            }
        }
    }

    /// Sends up to [`MAX_OUT_MESSAGE`] bytes of `data` as one binary message.
    fn poll_write(&mut self, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        // Waits until the previous message has left tungstenite's buffer.
        if let Err(e) = ready!(Pin::new(&mut self.ws).poll_ready(cx)) {
            return Poll::Ready(Err(self.fail(e)));
        }
        let n = data.len().min(MAX_OUT_MESSAGE);
        let message = Message::Binary(Bytes::copy_from_slice(&data[..n]));
        match Pin::new(&mut self.ws).start_send(message) {
            Ok(()) => Poll::Ready(Ok(n)),
            Err(e) => Poll::Ready(Err(self.fail(e))),
        }
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match ready!(Pin::new(&mut self.ws).poll_flush(cx)) {
            Ok(()) => Poll::Ready(Ok(())),
            Err(e) => Poll::Ready(Err(self.fail(e))),
        }
    }

    /// Sends a close frame (1003 after a text message, 1009 after an oversized message, 1002
    /// after a protocol violation, no code otherwise), flushes it, then closes the sending side
    /// of the underlying stream. The peer's close reply is read as the end of the stream.
    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.close_queued {
            if let Err(e) = ready!(Pin::new(&mut self.ws).poll_ready(cx)) {
                return Poll::Ready(Err(self.fail(e)));
            }
            self.close_queued = true;
            let frame = self.close.take();
            match Pin::new(&mut self.ws).start_send(Message::Close(frame)) {
                // Closed already (the peer's close was answered): nothing left to send.
                Ok(())
                | Err(TungError::ConnectionClosed | TungError::AlreadyClosed)
                | Err(TungError::Protocol(ProtocolError::SendAfterClosing)) => {}
                Err(e) => return Poll::Ready(Err(self.fail(e))),
            }
        }
        match ready!(Pin::new(&mut self.ws).poll_close(cx)) {
            Ok(()) | Err(TungError::ConnectionClosed | TungError::AlreadyClosed) => {}
            Err(e) => return Poll::Ready(Err(self.fail(e))),
        }
        Pin::new(self.ws.get_mut()).poll_shutdown(cx)
    }
}
