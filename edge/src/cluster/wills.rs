//! Dead-hand wills: every will of a connection attached to this edge is registered in Redis
//! under this edge's incarnation, so that if the process dies a reaper on another edge can
//! publish it (`liveness.rs`).
//!
//! The broker core is synchronous, so it only records what changed in [`WillRegistry`] (under
//! the tenant's session lock, which orders the changes of one client id) and queues the Redis
//! write; one task applies the queue. It takes batches, keeps the order of the writes of one
//! client and runs the writes of different clients concurrently, retrying each one until Redis
//! takes it: a delete never overtakes the put it undoes.
//!
//! A will published by this edge and the same will published by a reaper carry one JetStream
//! message id, `will-<tenant>-<client key>-<token>`, so the stream keeps one of them.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use bytestring::ByteString;
use parking_lot::Mutex;
use stratus_model::TenantId;
use stratus_redis_state::{Lease, NodeLeases};
use tokio::sync::mpsc;

use crate::broker::{Message, PendingWill, persist};

/// Writes taken from the queue per batch.
const BATCH: usize = 256;
/// First pause before retrying a failed Redis write; doubles up to [`MAX_RETRY_PAUSE`].
const FIRST_RETRY_PAUSE: Duration = Duration::from_millis(50);
/// Longest pause between retries of a failed Redis write.
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(1);
/// Version byte leading every will record this module writes.
const RECORD_VERSION: u8 = 2;
/// The version before the session expiry and due time were recorded (still read: a record an
/// older edge registered is published at once, as that edge's reaper did).
const RECORD_VERSION_1: u8 = 1;

thread_local! {
    /// The message id the will being published on this thread must carry (see
    /// [`with_message_id`]).
    static MESSAGE_ID: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Runs `publish` (synchronous) so that the JetStream publish it makes carries `id` instead of
/// a fresh message id.
pub(crate) fn with_message_id<R>(id: Option<String>, publish: impl FnOnce() -> R) -> R {
    MESSAGE_ID.with(|cell| *cell.borrow_mut() = id);
    let result = publish();
    MESSAGE_ID.with(|cell| cell.borrow_mut().take());
    result
}

/// The message id set by [`with_message_id`] for the publish in progress, if any.
pub(super) fn take_message_id() -> Option<String> {
    MESSAGE_ID.with(|cell| cell.borrow_mut().take())
}

/// The JetStream message id of a will: the same whoever publishes it.
pub(crate) fn will_message_id(tenant: &TenantId, client_key: &str, token: u64) -> String {
    format!("will-{}-{client_key}-{token}", tenant.as_str())
}

/// A will as stored in Redis: what the reaper needs to publish it and check the access rules.
#[derive(Debug)]
pub(crate) struct WillRecord {
    /// The will message (QoS, RETAIN, properties, payload).
    pub(crate) msg: Arc<Message>,
    /// Will Delay Interval, seconds.
    pub(crate) delay_secs: u32,
    /// Session Expiry Interval of the connection's session, seconds: a delayed will is due when
    /// its session ends, if that comes first.
    pub(crate) session_expiry_secs: u32,
    /// When the will is due (unix ms), once its connection ended; `None` while it is connected.
    pub(crate) due_at_ms: Option<u64>,
    /// Message Expiry Interval, counted from publication.
    pub(crate) expiry_secs: Option<u32>,
    /// Client id of the connection.
    pub(crate) client_id: ByteString,
    /// Its user name.
    pub(crate) username: Option<ByteString>,
}

impl WillRecord {
    /// The stored form: version, delay, session expiry, due time, message expiry, client id,
    /// user name, then the will encoded as an MQTT 5.0 PUBLISH (`persist::encode_message`).
    pub(crate) fn encode(
        will: &PendingWill,
        session_expiry_secs: u32,
        due_at_ms: Option<u64>,
    ) -> Bytes {
        let record = Self {
            msg: Arc::clone(&will.msg),
            delay_secs: will.delay_secs,
            session_expiry_secs,
            due_at_ms,
            expiry_secs: will.expiry_secs,
            client_id: will.client_id.clone(),
            username: will.username.clone(),
        };
        record.to_bytes()
    }

    /// The stored form of this record (see [`WillRecord::encode`]).
    pub(crate) fn to_bytes(&self) -> Bytes {
        let publish = persist::encode_message(
            &self.msg,
            self.msg.qos,
            self.msg.retain,
            &Default::default(),
        );
        let username = self.username.as_deref().unwrap_or_default();
        let mut out =
            BytesMut::with_capacity(32 + self.client_id.len() + username.len() + publish.len());
        out.put_u8(RECORD_VERSION);
        out.put_u32(self.delay_secs);
        out.put_u32(self.session_expiry_secs);
        out.put_u8(u8::from(self.due_at_ms.is_some()));
        out.put_u64(self.due_at_ms.unwrap_or(0));
        match self.expiry_secs {
            Some(secs) => {
                out.put_u8(1);
                out.put_u32(secs);
            }
            None => {
                out.put_u8(0);
                out.put_u32(0);
            }
        }
        put_str(&mut out, &self.client_id);
        out.put_u8(u8::from(self.username.is_some()));
        put_str(&mut out, username);
        out.extend_from_slice(&publish);
        out.freeze()
    }

    /// Whether a new connection of the client can still cancel the will: it has a delay and
    /// its session outlives the connection (otherwise it is due when the connection ends).
    pub(crate) fn is_delayed(&self) -> bool {
        self.delay_secs > 0 && self.session_expiry_secs > 0
    }

    /// When a delayed will is due (unix ms), seen by a reaper at `now_ms`: the time its edge
    /// recorded when the connection ended or, when the edge died with the connection, the
    /// smaller of the will delay and the session expiry from now (never early: the edge died
    /// at most one lease TTL before).
    pub(crate) fn due_ms(&self, now_ms: u64) -> u64 {
        self.due_at_ms.unwrap_or_else(|| {
            let delay = u64::from(self.delay_secs.min(self.session_expiry_secs));
            now_ms.saturating_add(delay.saturating_mul(1_000))
        })
    }

    /// Reads a record back; `None` when it is not one [`WillRecord::encode`] wrote.
    pub(crate) fn decode(record: &[u8]) -> Option<Self> {
        let mut buf = record;
        if buf.remaining() < 10 {
            return None;
        }
        let version = buf.get_u8();
        let delay_secs = buf.get_u32();
        let (session_expiry_secs, due_at_ms) = match version {
            RECORD_VERSION if buf.remaining() >= 13 + 5 => {
                let session_expiry = buf.get_u32();
                let has_due = buf.get_u8() == 1;
                let due = buf.get_u64();
                (session_expiry, has_due.then_some(due))
            }
            RECORD_VERSION_1 => (0, None),
            _ => return None,
        };
        let has_expiry = buf.get_u8() == 1;
        let expiry = buf.get_u32();
        let client_id = take_str(&mut buf)?;
        let has_username = *buf.first()? == 1;
        buf.advance(1);
        let username = take_str(&mut buf)?;
        let decoded = persist::decode_message(&Bytes::copy_from_slice(buf), None)?;
        Some(Self {
            msg: decoded.msg,
            delay_secs,
            session_expiry_secs,
            due_at_ms,
            expiry_secs: has_expiry.then_some(expiry),
            client_id: ByteString::from(client_id),
            username: has_username.then(|| ByteString::from(username)),
        })
    }

    /// The will as the broker publishes it.
    pub(crate) fn into_pending(self) -> PendingWill {
        PendingWill {
            msg: self.msg,
            delay_secs: self.delay_secs,
            expiry_secs: self.expiry_secs,
            client_id: self.client_id,
            username: self.username,
        }
    }
}

/// Appends a string with a 16-bit length (client ids and user names are MQTT strings).
fn put_str(out: &mut BytesMut, s: &str) {
    let len = u16::try_from(s.len()).unwrap_or(u16::MAX);
    out.put_u16(len);
    out.extend_from_slice(&s.as_bytes()[..usize::from(len)]);
}

/// Reads a string written by [`put_str`].
fn take_str(buf: &mut &[u8]) -> Option<String> {
    if buf.remaining() < 2 {
        return None;
    }
    let len = usize::from(buf.get_u16());
    let bytes = buf.get(..len)?;
    let s = std::str::from_utf8(bytes).ok()?.to_owned();
    buf.advance(len);
    Some(s)
}

/// One write to the Redis will registry.
#[derive(Debug)]
enum WillWrite {
    Put {
        tenant: TenantId,
        client_key: String,
        record: Bytes,
        token: u64,
    },
    Delete {
        tenant: TenantId,
        client_key: String,
    },
}

impl WillWrite {
    fn key(&self) -> (&TenantId, &str) {
        match self {
            Self::Put {
                tenant, client_key, ..
            }
            | Self::Delete { tenant, client_key } => (tenant, client_key),
        }
    }
}

/// This edge's registered wills (client id → fencing token of the connection that set it) and
/// the queue of their Redis writes.
#[derive(Debug)]
pub(crate) struct WillRegistry {
    tokens: Mutex<HashMap<(TenantId, ByteString), u64>>,
    tx: mpsc::UnboundedSender<WillWrite>,
    /// Writes queued and not yet applied.
    queued: Arc<AtomicUsize>,
}

impl WillRegistry {
    /// The registry and the task applying its writes to `leases` under `owner`.
    pub(crate) fn start(leases: NodeLeases, owner: Lease) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        tokio::spawn(apply_writes(leases, owner, rx, Arc::clone(&queued)));
        Self {
            tokens: Mutex::default(),
            tx,
            queued,
        }
    }

    /// A connection with fencing token `token` attached to `client_id`, with `will` (its
    /// record) or none. Returns the message id of the previous connection's will, whose
    /// registration this replaces. Call under the tenant's session lock.
    pub(crate) fn attached(
        &self,
        tenant: &TenantId,
        client_id: &ByteString,
        token: u64,
        will: Option<Bytes>,
    ) -> Option<String> {
        let key = (tenant.clone(), client_id.clone());
        let client_key = stratus_topics::client_key(tenant.as_str(), client_id);
        let mut tokens = self.tokens.lock();
        let previous = match will {
            Some(record) => {
                self.send(WillWrite::Put {
                    tenant: tenant.clone(),
                    client_key: client_key.clone(),
                    record,
                    token,
                });
                tokens.insert(key, token)
            }
            None => {
                let previous = tokens.remove(&key);
                if previous.is_some() {
                    self.send(WillWrite::Delete {
                        tenant: tenant.clone(),
                        client_key: client_key.clone(),
                    });
                }
                previous
            }
        };
        previous.map(|t| will_message_id(tenant, &client_key, t))
    }

    /// The connection of `client_id` ended (its will is published or discarded): drops the
    /// registration and returns the message id its will is published with. Call under the
    /// tenant's session lock.
    pub(crate) fn detached(&self, tenant: &TenantId, client_id: &ByteString) -> Option<String> {
        let token = self
            .tokens
            .lock()
            .remove(&(tenant.clone(), client_id.clone()))?;
        let client_key = stratus_topics::client_key(tenant.as_str(), client_id);
        let id = will_message_id(tenant, &client_key, token);
        self.send(WillWrite::Delete {
            tenant: tenant.clone(),
            client_key,
        });
        Some(id)
    }

    /// The connection of `client_id` ended abnormally and its session stays, so its will waits
    /// out its delay here: replaces the registration's record with `record`, which says when
    /// the will is due (a reaper that finds it after this edge died keeps that time). Nothing
    /// happens when no will is registered. Call under the tenant's session lock.
    pub(crate) fn delay_started(&self, tenant: &TenantId, client_id: &ByteString, record: Bytes) {
        let Some(token) = self
            .tokens
            .lock()
            .get(&(tenant.clone(), client_id.clone()))
            .copied()
        else {
            return;
        };
        self.send(WillWrite::Put {
            tenant: tenant.clone(),
            client_key: stratus_topics::client_key(tenant.as_str(), client_id),
            record,
            token,
        });
    }

    /// Writes queued and not yet applied to Redis.
    pub(crate) fn pending(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    fn send(&self, write: WillWrite) {
        self.queued.fetch_add(1, Ordering::AcqRel);
        if self.tx.send(write).is_err() {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            tracing::error!(
                "the will registry task has stopped; a will registration was not written"
            );
        }
    }
}

/// Applies queued writes until the registry is dropped.
async fn apply_writes(
    leases: NodeLeases,
    owner: Lease,
    mut rx: mpsc::UnboundedReceiver<WillWrite>,
    queued: Arc<AtomicUsize>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let taken = batch.len();
        // Per-client chains in arrival order; chains of different clients run concurrently.
        let mut chains: Vec<Vec<WillWrite>> = Vec::new();
        let mut index: HashMap<(TenantId, String), usize> = HashMap::new();
        for write in batch.drain(..) {
            let (tenant, client_key) = write.key();
            let key = (tenant.clone(), client_key.to_owned());
            match index.get(&key) {
                Some(&i) => chains[i].push(write),
                None => {
                    index.insert(key, chains.len());
                    chains.push(vec![write]);
                }
            }
        }
        let runs = chains
            .into_iter()
            .map(|chain| apply_chain(&leases, &owner, chain));
        futures_util::future::join_all(runs).await;
        queued.fetch_sub(taken, Ordering::AcqRel);
    }
}

/// Applies the writes of one client in order, each retried until Redis takes it.
async fn apply_chain(leases: &NodeLeases, owner: &Lease, chain: Vec<WillWrite>) {
    for write in chain {
        let mut pause = FIRST_RETRY_PAUSE;
        let mut warned = false;
        loop {
            let result = match &write {
                WillWrite::Put {
                    tenant,
                    client_key,
                    record,
                    token,
                } => {
                    leases
                        .put_will(owner, tenant, client_key, record, *token)
                        .await
                }
                WillWrite::Delete { tenant, client_key } => {
                    leases.delete_will(owner, tenant, client_key).await
                }
            };
            match result {
                Ok(()) => break,
                Err(stratus_redis_state::RedisStateError::InvalidLease { .. }) => {
                    tracing::error!("will registration dropped: the lease name is invalid");
                    break;
                }
                Err(e) => {
                    if !warned {
                        tracing::warn!(tenant = %write.key().0, "will registry write failed, retrying: {e}");
                        warned = true;
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(MAX_RETRY_PAUSE);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stratus_codec::QoS;
    use stratus_topics::TopicName;

    fn will(username: Option<&str>, expiry: Option<u32>) -> PendingWill {
        PendingWill {
            msg: Arc::new(Message {
                topic: TopicName::new(ByteString::from("wills/dev-1")).unwrap(),
                payload: Bytes::from_static(b"gone"),
                qos: QoS::AtLeastOnce,
                retain: true,
                properties: None,
                expires_at: None,
            }),
            delay_secs: 7,
            expiry_secs: expiry,
            client_id: ByteString::from("dev-1"),
            username: username.map(ByteString::from),
        }
    }

    #[test]
    fn will_records_round_trip() {
        for (username, expiry) in [(Some("alice"), Some(30)), (None, None), (Some(""), Some(0))] {
            let original = will(username, expiry);
            let record =
                WillRecord::decode(&WillRecord::encode(&original, 300, Some(1_234))).unwrap();
            assert_eq!(record.client_id, original.client_id);
            assert_eq!(record.username, original.username);
            assert_eq!(record.delay_secs, 7);
            assert_eq!(record.session_expiry_secs, 300);
            assert_eq!(record.due_at_ms, Some(1_234));
            assert_eq!(record.expiry_secs, expiry);
            assert_eq!(record.msg.topic, original.msg.topic);
            assert_eq!(record.msg.payload, original.msg.payload);
            assert_eq!(record.msg.qos, QoS::AtLeastOnce);
            assert!(record.msg.retain);
        }
    }

    #[test]
    fn a_will_is_delayed_only_with_a_delay_and_a_session_that_outlives_its_connection() {
        let decoded = |expiry, due| {
            WillRecord::decode(&WillRecord::encode(&will(None, None), expiry, due)).unwrap()
        };
        // The helper's will has a 7 s delay.
        assert!(decoded(300, None).is_delayed());
        assert!(
            !decoded(0, None).is_delayed(),
            "the session ends with the connection"
        );
        let mut no_delay = will(None, None);
        no_delay.delay_secs = 0;
        let no_delay = WillRecord::decode(&WillRecord::encode(&no_delay, 300, None)).unwrap();
        assert!(!no_delay.is_delayed());
    }

    #[test]
    fn a_will_is_due_when_its_edge_said_or_after_the_smaller_of_delay_and_session_expiry() {
        let decoded = |expiry, due| {
            WillRecord::decode(&WillRecord::encode(&will(None, None), expiry, due)).unwrap()
        };
        assert_eq!(decoded(300, Some(5_000)).due_ms(1_000_000), 5_000);
        assert_eq!(
            decoded(300, None).due_ms(1_000_000),
            1_007_000,
            "the will delay"
        );
        assert_eq!(
            decoded(3, None).due_ms(1_000_000),
            1_003_000,
            "the session expiry"
        );
    }

    #[test]
    fn a_connected_clients_record_has_no_due_time() {
        let record = WillRecord::encode(&will(None, None), 0, None);
        let record = WillRecord::decode(&record).unwrap();
        assert_eq!((record.session_expiry_secs, record.due_at_ms), (0, None));
    }

    #[test]
    fn a_record_of_the_first_version_reads_as_due_at_once() {
        // Version 1 had no session expiry and due time (bytes 5..18 of version 2).
        let v2 = WillRecord::encode(&will(Some("alice"), Some(30)), 300, Some(9));
        let mut v1 = vec![RECORD_VERSION_1];
        v1.extend_from_slice(&v2[1..5]);
        v1.extend_from_slice(&v2[18..]);
        let record = WillRecord::decode(&v1).unwrap();
        assert_eq!(record.delay_secs, 7);
        assert_eq!((record.session_expiry_secs, record.due_at_ms), (0, None));
        assert_eq!(record.expiry_secs, Some(30));
        assert_eq!(record.username.as_deref(), Some("alice"));
    }

    #[test]
    fn foreign_or_truncated_records_are_refused() {
        let record = WillRecord::encode(&will(Some("alice"), None), 60, Some(5));
        assert!(WillRecord::decode(b"").is_none());
        assert!(WillRecord::decode(&[9; 40]).is_none());
        for cut in [1, 10, 14, 17, 20, 27, 30] {
            assert!(WillRecord::decode(&record[..cut]).is_none(), "cut at {cut}");
        }
    }

    #[test]
    fn message_ids_name_tenant_client_and_token() {
        let tenant = TenantId::new("acme").unwrap();
        assert_eq!(will_message_id(&tenant, "abc", 42), "will-acme-abc-42");
    }
}
