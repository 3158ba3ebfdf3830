//! The NATS form of a routed message: the payload is the message encoded as an MQTT 5.0 PUBLISH
//! (the same form the embedded store keeps, read back through the same hardened decoder), and
//! headers carry what the PUBLISH cannot: the expiry deadline and the publishing session (for
//! No Local).

use std::sync::Arc;

use async_nats::HeaderMap;
use bytes::Bytes;

use crate::broker::{Message, persist};

/// Header: unix milliseconds at which the message expires.
pub(super) const EXPIRES: &str = "Stratus-Expires";
/// Header: `<incarnation>/<session id>` of the publishing session.
pub(super) const ORIGIN: &str = "Stratus-Origin";

/// Payload and headers of `msg` published by session `origin` of this edge.
pub(super) fn encode(msg: &Message, incarnation: &str, origin: Option<u64>) -> (HeaderMap, Bytes) {
    let mut headers = HeaderMap::new();
    if let Some(at) = msg.expires_at {
        headers.insert(
            EXPIRES,
            persist::instant_to_unix_ms(at).to_string().as_str(),
        );
    }
    if let Some(session) = origin {
        headers.insert(ORIGIN, format!("{incarnation}/{session}").as_str());
    }
    let payload = persist::encode_message(msg, msg.qos, msg.retain, &Default::default());
    (headers, payload)
}

/// A message received from NATS, and the session of this edge that published it (if any).
pub(super) struct Received {
    pub(super) msg: Arc<Message>,
    pub(super) origin: Option<u64>,
}

/// Decodes a message received from NATS; `None` (logged) when it is not one of ours.
pub(super) fn decode(
    payload: &Bytes,
    headers: Option<&HeaderMap>,
    incarnation: &str,
) -> Option<Received> {
    let expires_at_ms = headers
        .and_then(|h| h.get(EXPIRES))
        .and_then(|v| v.as_str().parse::<u64>().ok());
    let decoded = persist::decode_message(payload, expires_at_ms)?;
    let origin = headers.and_then(|h| h.get(ORIGIN)).and_then(|v| {
        let (inc, session) = v.as_str().rsplit_once('/')?;
        (inc == incarnation).then(|| session.parse::<u64>().ok())?
    });
    Some(Received {
        msg: decoded.msg,
        origin,
    })
}
