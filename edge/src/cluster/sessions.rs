//! Persistent sessions across edges.
//!
//! A persistent session lives in the memory of the edge its client last connected to (the
//! broker core serves it exactly as in the embedded shape), and every change the core makes to
//! it is written through to Redis (`stratus_redis_state::SessionStore`, see `applier.rs`), fenced
//! by the ownership token this edge claimed it with: once another edge claimed it, writes from
//! here are refused.
//!
//! QoS 1/2 messages reach a connected persistent session from the JetStream stream, not from the
//! core NATS subscriptions (`reader.rs`): the session's read position (the stream sequence up to
//! which every message was offered to it) is written with the queued messages, so messages
//! published while no edge held the session (it was offline, or its edge died) are read when it
//! resumes anywhere.
//!
//! Connecting to a session (claiming and loading it) is in `session_claim.rs`; this module keeps
//! what this edge knows about the sessions it holds, and their Redis record formats.

use std::collections::HashMap;
use std::future::poll_fn;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::task::Poll;

use bytes::{BufMut, Bytes, BytesMut};
use bytestring::ByteString;
use parking_lot::Mutex;
use stratus_model::TenantId;
use stratus_redis_state::{SessionStore, StoredSessionState};
use tokio::task::JoinHandle;

use crate::store::{Store, StoredMessage, StoredSession, StoredSubscription};

/// What a CONNECT asks for its session.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SessionIntent {
    /// Clean Start / Clean Session.
    pub(crate) clean_start: bool,
    /// Session Expiry Interval that will apply (after the cap), seconds.
    pub(crate) expiry_secs: u32,
}

/// Key of a held session: tenant and client id.
type Key = (TenantId, ByteString);

/// What this edge keeps for each persistent session whose state it writes to Redis.
#[derive(Debug)]
struct Held {
    /// The broker's session object.
    session: u64,
    /// The ownership token Redis holds for it (every write carries it).
    token: u64,
    /// Stream sequence up to which every QoS 1/2 message was offered to the session.
    position: Arc<AtomicU64>,
    /// Stream sequence each QoS 1/2 subscription started after (messages at or before it
    /// were published before the subscription and are not delivered through it).
    since: HashMap<Box<str>, u64>,
    /// The running reader, if the session is attached and has QoS 1/2 subscriptions.
    reader: Option<JoinHandle<()>>,
}

/// Persistent sessions this edge holds, and their Redis store.
#[derive(Debug)]
pub(crate) struct SessionSync {
    pub(super) store: SessionStore,
    held: Mutex<HashMap<Key, Held>>,
}

/// A snapshot of what a reader needs of a held session.
#[derive(Debug)]
pub(super) struct ReaderStart {
    pub(super) position: Arc<AtomicU64>,
    pub(super) since: HashMap<Box<str>, u64>,
}

impl SessionSync {
    pub(super) fn new(store: SessionStore) -> Self {
        Self {
            store,
            held: Mutex::default(),
        }
    }

    /// Starts holding a session written under `token`, read up to `position`.
    pub(super) fn register(
        &self,
        tenant: &TenantId,
        client_id: &ByteString,
        session: u64,
        token: u64,
        position: u64,
        since: HashMap<Box<str>, u64>,
    ) {
        let old = self.held.lock().insert(
            (tenant.clone(), client_id.clone()),
            Held {
                session,
                token,
                position: Arc::new(AtomicU64::new(position)),
                since,
                reader: None,
            },
        );
        if let Some(reader) = old.and_then(|h| h.reader) {
            reader.abort();
        }
    }

    /// Stops holding a session (handed over, or ended): its reader stops and its writes are
    /// no longer made.
    pub(crate) fn forget(&self, tenant: &TenantId, client_id: &ByteString, session: u64) {
        let key = (tenant.clone(), client_id.clone());
        let removed = {
            let mut held = self.held.lock();
            match held.get(&key) {
                Some(h) if h.session == session => held.remove(&key),
                _ => None,
            }
        };
        if let Some(reader) = removed.and_then(|h| h.reader) {
            reader.abort();
        }
    }

    /// Forgets whatever is held for the client id (its session was deleted).
    pub(super) fn forget_any(&self, tenant: &TenantId, client_id: &ByteString) {
        let removed = self
            .held
            .lock()
            .remove(&(tenant.clone(), client_id.clone()));
        if let Some(reader) = removed.and_then(|h| h.reader) {
            reader.abort();
        }
    }

    /// The token writes for the client id's session carry, if this edge holds it.
    pub(super) fn token(&self, tenant: &TenantId, client_id: &ByteString) -> Option<u64> {
        self.held
            .lock()
            .get(&(tenant.clone(), client_id.clone()))
            .map(|h| h.token)
    }

    /// Stops the session's reader (its connection detached).
    pub(crate) fn stop_reader(&self, tenant: &TenantId, client_id: &ByteString, session: u64) {
        let reader = {
            let mut held = self.held.lock();
            held.get_mut(&(tenant.clone(), client_id.clone()))
                .filter(|h| h.session == session)
                .and_then(|h| h.reader.take())
        };
        if let Some(reader) = reader {
            reader.abort();
        }
    }

    /// The start position and subscription starts of a held session, for a new reader.
    pub(super) fn reader_start(
        &self,
        tenant: &TenantId,
        client_id: &ByteString,
        session: u64,
    ) -> Option<ReaderStart> {
        let held = self.held.lock();
        let h = held
            .get(&(tenant.clone(), client_id.clone()))
            .filter(|h| h.session == session)?;
        Some(ReaderStart {
            position: Arc::clone(&h.position),
            since: h.since.clone(),
        })
    }

    /// Installs a started reader, stopping the one it replaces. `false` (and the reader is
    /// stopped) when the session is no longer held.
    pub(super) fn set_reader(
        &self,
        tenant: &TenantId,
        client_id: &ByteString,
        session: u64,
        reader: JoinHandle<()>,
    ) -> bool {
        let old = {
            let mut held = self.held.lock();
            match held
                .get_mut(&(tenant.clone(), client_id.clone()))
                .filter(|h| h.session == session)
            {
                Some(h) => Ok(h.reader.replace(reader)),
                None => Err(reader),
            }
        };
        match old {
            Ok(previous) => {
                if let Some(previous) = previous {
                    previous.abort();
                }
                true
            }
            Err(reader) => {
                reader.abort();
                false
            }
        }
    }

    /// The stream sequence subscription `filter` of the client id's session started after.
    pub(super) fn since(
        &self,
        tenant: &TenantId,
        client_id: &ByteString,
        filter: &str,
    ) -> Option<u64> {
        self.held
            .lock()
            .get(&(tenant.clone(), client_id.clone()))
            .and_then(|h| h.since.get(filter).copied())
    }

    /// Records where a new subscription starts.
    pub(super) fn set_since(
        &self,
        tenant: &TenantId,
        client_id: &ByteString,
        filter: &str,
        seq: u64,
    ) {
        if let Some(h) = self
            .held
            .lock()
            .get_mut(&(tenant.clone(), client_id.clone()))
        {
            h.since.insert(Box::from(filter), seq);
        }
    }

    /// Forgets where a removed subscription started.
    pub(super) fn clear_since(&self, tenant: &TenantId, client_id: &ByteString, filter: &str) {
        if let Some(h) = self
            .held
            .lock()
            .get_mut(&(tenant.clone(), client_id.clone()))
        {
            h.since.remove(filter);
        }
    }
}

impl SessionSync {
    /// Points a registration made before the broker created the session at its object.
    pub(super) fn rebind(&self, tenant: &TenantId, client_id: &ByteString, session: u64) {
        if let Some(h) = self
            .held
            .lock()
            .get_mut(&(tenant.clone(), client_id.clone()))
        {
            h.session = session;
        }
    }

    /// A brand-new persistent session attached: points the registration made by
    /// `prepare_session` at it. `false` when nothing was registered (no token: the session
    /// stays on this edge only).
    pub(crate) fn bind_new(&self, tenant: &TenantId, client_id: &ByteString, session: u64) -> bool {
        match self
            .held
            .lock()
            .get_mut(&(tenant.clone(), client_id.clone()))
        {
            Some(h) if h.session == 0 || h.session == session => {
                h.session = session;
                true
            }
            _ => false,
        }
    }
}

/// Waits until every change submitted to `store` so far is durable.
pub(crate) async fn flush(store: &Store) {
    let ticket = store.reserve();
    store.complete(ticket);
    poll_fn(|cx| {
        if store.wake_when_committed(ticket, cx.waker()) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
}

/// The store form of a session loaded from Redis, and where its subscriptions started.
pub(super) fn stored_session(
    tenant: &TenantId,
    client_id: &ByteString,
    state: StoredSessionState,
) -> (StoredSession, HashMap<Box<str>, u64>) {
    let mut since = HashMap::new();
    let mut subscriptions = Vec::with_capacity(state.subscriptions.len());
    for (filter, record) in state.subscriptions {
        match decode_subscription(&record) {
            Some((options, started, id)) => {
                since.insert(Box::from(filter.as_str()), started);
                subscriptions.push(StoredSubscription {
                    filter: ByteString::from(filter),
                    options,
                    subscription_id: id,
                });
            }
            None => {
                tracing::warn!(tenant = %tenant, client_id = %client_id, "corrupt subscription record in Redis skipped")
            }
        }
    }
    let mut messages = Vec::with_capacity(state.messages.len());
    for m in state.messages {
        let Some((expires_at_ms, publish)) = decode_message(&m.record) else {
            tracing::warn!(tenant = %tenant, client_id = %client_id, seq = m.seq, "corrupt message record in Redis skipped");
            continue;
        };
        let (packet_id, delivery_state) = m
            .state
            .as_deref()
            .and_then(decode_message_state)
            .map_or((None, 0), |(p, s)| (Some(p), s));
        messages.push(StoredMessage {
            seq: m.seq,
            packet_id,
            state: delivery_state,
            publish,
            expires_at_ms,
        });
    }
    let stored = StoredSession {
        tenant: tenant.as_str().to_owned(),
        client_id: client_id.clone(),
        expiry_secs: state.expiry_secs,
        disconnected_at_ms: state.offline_at_ms,
        next_packet_id: state.next_packet_id,
        will: None,
        subscriptions,
        messages,
        incoming_qos2: state.incoming_qos2,
    };
    (stored, since)
}

/// Subscription record: options byte, start sequence (8 bytes), optional identifier (4 bytes).
pub(super) fn encode_subscription(sub: &StoredSubscription, since: u64) -> Bytes {
    let mut b = BytesMut::with_capacity(13);
    b.put_u8(sub.options);
    b.put_u64(since);
    if let Some(id) = sub.subscription_id {
        b.put_u32(id);
    }
    b.freeze()
}

fn decode_subscription(record: &[u8]) -> Option<(u8, u64, Option<u32>)> {
    let (&options, rest) = record.split_first()?;
    let since = u64::from_be_bytes(rest.get(..8)?.try_into().ok()?);
    let id = match rest.get(8..) {
        Some([]) | None => None,
        Some(id) => Some(u32::from_be_bytes(id.try_into().ok()?)),
    };
    Some((options, since, id))
}

/// Message record: a flags byte (bit 0: an expiry follows), the expiry (unix ms, 8 bytes), then
/// the delivery as an MQTT 5.0 PUBLISH.
pub(super) fn encode_message(m: &StoredMessage) -> Bytes {
    let mut b = BytesMut::with_capacity(9 + m.publish.len());
    match m.expires_at_ms {
        Some(at) => {
            b.put_u8(1);
            b.put_u64(at);
        }
        None => b.put_u8(0),
    }
    b.put_slice(&m.publish);
    b.freeze()
}

fn decode_message(record: &Bytes) -> Option<(Option<u64>, Bytes)> {
    match record.first()? {
        0 => Some((None, record.slice(1..))),
        1 => {
            let at = u64::from_be_bytes(record.get(1..9)?.try_into().ok()?);
            Some((Some(at), record.slice(9..)))
        }
        _ => None,
    }
}

/// Delivery state record: packet id (2 bytes) and state (see `StoredMessage::state`).
pub(super) fn encode_message_state(packet_id: u16, state: u8) -> Bytes {
    let mut b = BytesMut::with_capacity(3);
    b.put_u16(packet_id);
    b.put_u8(state);
    b.freeze()
}

fn decode_message_state(record: &[u8]) -> Option<(u16, u8)> {
    match record {
        [hi, lo, state] if *state <= 3 => Some((u16::from_be_bytes([*hi, *lo]), *state)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let sub = StoredSubscription {
            filter: ByteString::from("a/#"),
            options: 0b10_1001,
            subscription_id: Some(77),
        };
        let r = encode_subscription(&sub, u64::MAX - 3);
        assert_eq!(
            decode_subscription(&r),
            Some((0b10_1001, u64::MAX - 3, Some(77)))
        );
        let sub = StoredSubscription {
            subscription_id: None,
            ..sub
        };
        let r = encode_subscription(&sub, 5);
        assert_eq!(decode_subscription(&r), Some((0b10_1001, 5, None)));
        assert_eq!(decode_subscription(&r[..5]), None);
        assert_eq!(
            decode_subscription(&[1, 0, 0, 0, 0, 0, 0, 0, 9, 1, 2]),
            None
        );

        let m = StoredMessage {
            seq: 9,
            packet_id: None,
            state: 0,
            publish: Bytes::from_static(b"packet"),
            expires_at_ms: Some(1234),
        };
        let r = encode_message(&m);
        assert_eq!(
            decode_message(&r),
            Some((Some(1234), Bytes::from_static(b"packet")))
        );
        let r = encode_message(&StoredMessage {
            expires_at_ms: None,
            ..m
        });
        assert_eq!(
            decode_message(&r),
            Some((None, Bytes::from_static(b"packet")))
        );
        assert_eq!(decode_message(&Bytes::from_static(&[7, 1])), None);
        assert_eq!(decode_message(&Bytes::from_static(&[1, 0, 0])), None);

        assert_eq!(
            decode_message_state(&encode_message_state(65535, 3)),
            Some((65535, 3))
        );
        assert_eq!(decode_message_state(&[0, 1, 4]), None);
        assert_eq!(decode_message_state(&[0, 1]), None);
    }
}
