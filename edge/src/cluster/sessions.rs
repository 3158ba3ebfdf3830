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
//! Connecting (`prepare`): a local copy of the session is let go (its connection closed, its
//! changes flushed to Redis), the client id is claimed in the ownership bucket (the edge holding
//! it elsewhere lets it go the same way before it answers), then the session is claimed in Redis
//! with the new token and loaded, and installed into the broker, which resumes it on attach.

use std::collections::HashMap;
use std::future::poll_fn;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::task::Poll;

use bytes::{BufMut, Bytes, BytesMut};
use bytestring::ByteString;
use parking_lot::Mutex;
use stratus_codec::ReasonCode;
use stratus_model::TenantId;
use stratus_redis_state::{Claim, ClaimMode, SessionLoadLimits, SessionStore, StoredSessionState};
use tokio::task::JoinHandle;

use super::ClusterLink;
use crate::broker::{Session, Tenant};
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
    fn register(
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

impl ClusterLink {
    /// Prepares the session a CONNECT with `token` attaches to: lets go of any local copy,
    /// claims the client id (handing it over from another edge), then claims and loads the
    /// session from Redis and installs it; a session it creates counts against the tenant's
    /// session cap. `Err` carries the CONNACK reason and why the CONNECT is refused.
    pub(crate) async fn prepare_session(
        self: &Arc<Self>,
        tenant: &Arc<Tenant>,
        client_id: &str,
        intent: SessionIntent,
    ) -> Result<u64, (ReasonCode, String)> {
        let unavailable = |why: String| (ReasonCode::ServerUnavailable, why);
        let Some(broker) = self.broker() else {
            return Err(unavailable("the edge is shutting down".into()));
        };
        // A local copy first: its connection closes and its changes reach Redis under the
        // token they were made with.
        if let Some((local_tenant, session)) = broker.local_session(&tenant.id, client_id) {
            self.let_go_locally(&broker, &local_tenant, &session).await;
        }
        let token = self
            .ownership
            .claim(self, &tenant.id, client_id)
            .await
            .map(|c| c.token)
            .map_err(unavailable)?;
        let client_key = stratus_topics::client_key(tenant.id.as_str(), client_id);
        let mode = if intent.clean_start {
            ClaimMode::Fresh {
                persistent: intent.expiry_secs > 0,
            }
        } else {
            ClaimMode::Resume
        };
        let limits = &broker.config.limits;
        let load_limits = SessionLoadLimits {
            max_subscriptions: limits.max_subscriptions_per_session,
            max_messages: limits
                .max_queued_messages
                .saturating_add(usize::from(limits.max_inflight_messages))
                .saturating_add(usize::from(limits.receive_maximum)),
            max_incoming_qos2: usize::from(u16::MAX),
        };
        let claimed = super::admission::with_retries(|| {
            self.sessions
                .store
                .claim(&tenant.id, &client_key, client_id, token, mode, load_limits)
        })
        .await
        .map_err(|e| {
            self.ownership.abandon(&tenant.id, client_id, token);
            unavailable(format!("session state unavailable in Redis: {e}"))
        })?;
        if matches!(claimed, Claim::Fresh | Claim::Resumed(None))
            && let Err(refused) = self.admit_session(&tenant.id, &broker.config.limits).await
        {
            self.ownership.abandon(&tenant.id, client_id, token);
            return Err(refused);
        }
        let client_id_bytes = ByteString::from(client_id);
        match claimed {
            Claim::Fenced { current } => {
                self.ownership.abandon(&tenant.id, client_id, token);
                Err(unavailable(format!(
                    "a newer connection of this client id (token {current}) owns its session"
                )))
            }
            Claim::Fresh => {
                if intent.expiry_secs > 0 {
                    let position = self.stream_head().await.unwrap_or(0);
                    self.sessions.register(
                        &tenant.id,
                        &client_id_bytes,
                        0,
                        token,
                        position,
                        HashMap::new(),
                    );
                }
                Ok(token)
            }
            Claim::Resumed(None) => {
                if intent.expiry_secs == 0 {
                    // Nothing stored and nothing to store: leave no key behind.
                    if let Err(e) = self
                        .sessions
                        .store
                        .delete(&tenant.id, &client_key, token)
                        .await
                    {
                        tracing::warn!(tenant = %tenant.id, "empty session record not removed from Redis: {e}");
                    }
                } else {
                    let position = self.stream_head().await.unwrap_or(0);
                    self.sessions.register(
                        &tenant.id,
                        &client_id_bytes,
                        0,
                        token,
                        position,
                        HashMap::new(),
                    );
                }
                Ok(token)
            }
            Claim::Resumed(Some(state)) => {
                let cursor = state.cursor;
                let (stored, since) = stored_session(&tenant.id, &client_id_bytes, state);
                // Registered before installing: installing submits changes (an expired session
                // is deleted), and they are written under this token.
                self.sessions
                    .register(&tenant.id, &client_id_bytes, 0, token, cursor, since);
                match broker.install_session(tenant, stored) {
                    Some(session) => {
                        self.sessions
                            .rebind(&tenant.id, &client_id_bytes, session.id);
                        // What was published while it was offline is queued before the CONNACK.
                        if let Err(e) = self.catch_up(tenant, &session).await {
                            tracing::warn!(tenant = %tenant.id, client_id = %client_id, "offline messages not read before the CONNACK (the reader delivers them after): {e}");
                        }
                    }
                    None => self.sessions.forget_any(&tenant.id, &client_id_bytes),
                }
                Ok(token)
            }
        }
    }

    /// Closes a local connection of the session (waiting until it detached), drops the session
    /// from memory and waits until its changes reached Redis.
    async fn let_go_locally(
        &self,
        broker: &Arc<crate::broker::Broker>,
        tenant: &Arc<Tenant>,
        session: &Arc<Session>,
    ) {
        let generation = {
            let st = session.state.lock();
            st.attachment.as_ref().map(|a| {
                a.control.kick(stratus_codec::ReasonCode::SessionTakenOver);
                st.generation
            })
        };
        let deadline = tokio::time::Instant::now() + self.settings.kick_timeout;
        if let Some(generation) = generation {
            while session.state.lock().is_attached(generation)
                && tokio::time::Instant::now() < deadline
            {
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
        }
        broker.hand_over(tenant, session);
        if tokio::time::timeout_at(deadline, flush(&broker.store))
            .await
            .is_err()
        {
            tracing::warn!(tenant = %tenant.id, client_id = %session.client_id, "session changes not all in Redis within kick_timeout");
        }
        self.sessions
            .forget(&tenant.id, &session.client_id, session.id);
    }

    /// The stream's last sequence: where a new session or subscription starts reading.
    pub(super) async fn stream_head(&self) -> Result<u64, String> {
        let js = async_nats::jetstream::new(self.nats.clone());
        let mut stream = js
            .get_stream(super::publisher::stream_name(&self.settings.pool))
            .await
            .map_err(|e| e.to_string())?;
        let info = stream.info().await.map_err(|e| e.to_string())?;
        Ok(info.state.last_sequence)
    }
}

impl SessionSync {
    /// Points a registration made before the broker created the session at its object.
    fn rebind(&self, tenant: &TenantId, client_id: &ByteString, session: u64) {
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
fn stored_session(
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
