//! MQTT over WebSocket (MQTT 5.0 section 6, identical in 3.1.1): the HTTP upgrade on the
//! configured path with the `mqtt` subprotocol, then binary messages carrying the MQTT byte
//! stream (a packet may span messages, a message may hold several packets).
//!
//! [`accept`] runs the server handshake (path, Origin allow-list, subprotocol) and returns a
//! [`ByteTransport`] for the connection driver plus the `Host` header for tenant resolution. The
//! caller bounds the handshake in time (dropping the future closes the connection); the request
//! head is capped at 64 KiB by tungstenite, messages and frames by the maximum packet size.

mod handshake;
mod transport;

#[cfg(test)]
mod tests;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig as ProtocolConfig;

use crate::config::WebSocketConfig;
use crate::listener::ByteTransport;
pub(crate) use handshake::Refusal;
use handshake::{Admission, Gate};
use transport::{MAX_OUT_MESSAGE, WsTransport};

/// Bytes a WebSocket message or frame may carry beyond the maximum packet size: a client may put
/// the end of one packet and the start of the next in the same message.
const MESSAGE_SLACK: usize = 4 * 1024;

/// tungstenite's read buffer, allocated for the life of the connection.
const READ_BUFFER: usize = 4 * 1024;

/// A WebSocket connection ready to carry MQTT.
pub(crate) struct WsAccepted {
    /// The MQTT byte stream.
    pub(crate) transport: Box<dyn ByteTransport>,
    /// The `Host` header without port, lowercase (`None` if absent or not a host name).
    pub(crate) host: Option<String>,
    /// The `Origin` header, if any (browsers send it; devices usually do not).
    pub(crate) origin: Option<String>,
}

impl std::fmt::Debug for WsAccepted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsAccepted")
            .field("host", &self.host)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

/// Why a WebSocket connection failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WsError {
    /// We answered the upgrade request with an HTTP error.
    #[error("WebSocket upgrade refused with HTTP {status}: {0}", status = .0.status().as_u16())]
    Refused(Refusal),
    /// The upgrade request was not a valid WebSocket handshake, or the socket failed.
    #[error("WebSocket handshake failed: {0}")]
    Handshake(#[source] tungstenite::Error),
    /// A text message arrived; MQTT travels in binary messages only.
    #[error("text WebSocket message received: MQTT uses binary messages only [MQTT-6.0.0-1]")]
    TextMessage,
    /// The peer broke the WebSocket protocol (unmasked or reserved frames, bad fragmentation...).
    #[error("WebSocket protocol violation: {0}")]
    Protocol(#[source] tungstenite::Error),
    /// A message or frame larger than the maximum packet size (plus slack).
    #[error("WebSocket message too large: {0}")]
    TooLarge(#[source] tungstenite::Error),
}

/// Upgrades `stream` (TCP or TLS) to a WebSocket carrying MQTT.
///
/// Refuses (with an HTTP error and a one-line body) a request for another path (404), from an
/// Origin outside a non-empty allow-list (403), or without `mqtt` among the offered subprotocols
/// (400, [MQTT-6.0.0-3]); on success the response selects exactly `mqtt` ([MQTT-6.0.0-4]).
pub(crate) async fn accept<S>(
    stream: S,
    settings: &WebSocketConfig,
    max_packet_size: u32,
) -> Result<WsAccepted, WsError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut admission = Admission::default();
    let gate = Gate {
        admission: &mut admission,
        settings,
    };
    let config = protocol_config(max_packet_size);
    let upgraded =
        tokio_tungstenite::accept_hdr_async_with_config(stream, gate, Some(config)).await;
    match upgraded {
        Ok(ws) => Ok(WsAccepted {
            transport: Box::new(WsTransport::new(ws)),
            host: admission.host,
            origin: admission.origin,
        }),
        Err(e) => Err(match admission.refusal {
            Some(refusal) => WsError::Refused(refusal),
            None => WsError::Handshake(e),
        }),
    }
}

/// Limits for tungstenite: nothing larger than a packet is buffered on input, and output is
/// written frame by frame (at most one outgoing message waits in tungstenite's buffer).
fn protocol_config(max_packet_size: u32) -> ProtocolConfig {
    let max_message = usize::try_from(max_packet_size)
        .unwrap_or(usize::MAX)
        .saturating_add(MESSAGE_SLACK);
    ProtocolConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .max_write_buffer_size(2 * MAX_OUT_MESSAGE + 1024)
        .max_message_size(Some(max_message))
        .max_frame_size(Some(max_message))
}
