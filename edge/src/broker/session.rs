//! A session: everything the broker keeps for one client id in one tenant across connections:
//! subscriptions, queued and in-flight messages, packet-id state and a pending will.
//!
//! The state sits behind one short-lived mutex shared by the connection attached to it (which
//! drains queues and handles acknowledgements) and by publishers (which enqueue). No lock is held
//! across an `.await`; the connection is woken through its [`ConnControl`].

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::task::Context;

use atomic_waker::AtomicWaker;

use bytestring::ByteString;
use parking_lot::Mutex;
use stratus_codec::{PacketId, QoS, ReasonCode, SubscriptionOptions};
use stratus_model::TenantId;
use stratus_topics::FilterSpec;
use tokio::time::Instant;

use super::deque::LazyDeque;
use super::message::{Delivery, Message};
use crate::access::Principal;
use crate::config::Limits;
use crate::store::{Store, StoreOp, Ticket};

/// Unique id of a session object within this process.
pub(crate) type SessionId = u64;

/// One client id's session in one tenant.
#[derive(Debug)]
pub(crate) struct Session {
    /// Process-unique id (keys in the subscription index).
    pub(crate) id: SessionId,
    /// The tenant it belongs to.
    pub(crate) tenant: TenantId,
    /// The client identifier.
    pub(crate) client_id: ByteString,
    /// Everything mutable.
    pub(crate) state: Mutex<SessionState>,
}

/// How the broker reaches the connection task attached to a session: flags and the task's
/// waker (40 bytes; a `Notify` and the future awaiting it would cost each connection several
/// times that).
#[derive(Debug, Default)]
pub(crate) struct ConnControl {
    waker: AtomicWaker,
    /// When the connection's pending alarm goes off (see `alarms.rs`), in the alarm clock's
    /// nanoseconds; 0 when none is armed. Only the connection task reads and writes it.
    alarm_at: AtomicU64,
    woken: AtomicBool,
    kick: AtomicU8,
}

impl ConnControl {
    /// Wakes the connection: there is something to send.
    pub(crate) fn wake(&self) {
        self.woken.store(true, Ordering::Release);
        self.waker.wake();
    }

    /// Asks the connection to close, telling a 5.0 client `reason` (e.g. 0x8E taken over).
    pub(crate) fn kick(&self, reason: ReasonCode) {
        // The first reason wins: a takeover is not turned into a shutdown or the reverse.
        let _ = self
            .kick
            .compare_exchange(0, reason.as_u8(), Ordering::AcqRel, Ordering::Acquire);
        self.wake();
    }

    /// Wakes the connection to look at its deadlines (an alarm went off), without the wake-up
    /// flag: nothing was queued for it.
    pub(crate) fn alarm(&self) {
        self.waker.wake();
    }

    /// When the connection's pending alarm goes off, if one is armed (alarm clock nanoseconds).
    pub(crate) fn armed_alarm(&self) -> Option<u64> {
        match self.alarm_at.load(Ordering::Relaxed) {
            0 => None,
            at => Some(at),
        }
    }

    /// Records the alarm just armed (alarm clock nanoseconds, not 0).
    pub(crate) fn set_armed_alarm(&self, at: u64) {
        self.alarm_at.store(at, Ordering::Relaxed);
    }

    /// The reason the connection was asked to close, if it was.
    pub(crate) fn kicked(&self) -> Option<ReasonCode> {
        match self.kick.load(Ordering::Acquire) {
            0 => None,
            code => ReasonCode::from_u8(code),
        }
    }

    /// Registers the connection task's waker and reports (and clears) a pending wake-up.
    pub(crate) fn poll_woken(&self, cx: &mut Context<'_>) -> bool {
        self.waker.register(cx.waker());
        self.woken.swap(false, Ordering::AcqRel)
    }
}

/// The connection currently attached to a session. Its generation is the session's
/// [`SessionState::generation`], which changes only when a connection attaches.
#[derive(Debug)]
pub(crate) struct Attachment {
    /// The connection's wake/kick handle.
    pub(crate) control: Arc<ConnControl>,
    /// Who the connection authenticated as (for revocation).
    pub(crate) principal: Arc<Principal>,
}

/// Where an outbound QoS 1/2 message is in its acknowledgement flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InflightState {
    /// QoS 1 PUBLISH sent, waiting for PUBACK.
    Qos1Sent,
    /// QoS 2 PUBLISH sent, waiting for PUBREC.
    Qos2Sent,
    /// PUBREL sent, waiting for PUBCOMP.
    Released,
}

impl InflightState {
    /// The state number kept in the store.
    pub(crate) fn stored(self) -> u8 {
        match self {
            Self::Qos1Sent => 1,
            Self::Qos2Sent => 2,
            Self::Released => 3,
        }
    }
}

/// An outbound message sent and not yet fully acknowledged.
#[derive(Debug)]
pub(crate) struct Inflight {
    /// Packet identifier it was sent with.
    pub(crate) packet_id: PacketId,
    /// Acknowledgement state.
    pub(crate) state: InflightState,
    /// The delivery.
    pub(crate) delivery: Delivery,
    /// Whether the store holds this packet id and state.
    pub(crate) state_persisted: bool,
}

/// One subscription of a session. Only the validated filter string is kept (24 bytes per
/// subscription plus the string); its parsed form is rebuilt when needed, which is rare
/// (subscribe, unsubscribe, session end).
#[derive(Debug, Clone)]
pub(crate) struct SessionSubscription {
    /// The filter exactly as subscribed (with any `$share/group/` prefix): the session's key for it.
    /// Validated by [`FilterSpec::parse`] before it got here. A `Box<str>` (16 bytes, a buffer of
    /// its own), not a `ByteString` (32 bytes, whose clones share the buffer through a further
    /// 24-byte allocation that stays as long as the string).
    pub(crate) raw: Box<str>,
    /// Options granted.
    pub(crate) options: SubscriptionOptions,
    /// Subscription identifier.
    pub(crate) id: Option<NonZeroU32>,
}

impl SessionSubscription {
    /// The filter as a `ByteString` (a copy), for the store and share-group keys.
    pub(crate) fn filter(&self) -> ByteString {
        ByteString::from(&*self.raw)
    }

    /// The parsed filter and share group.
    pub(crate) fn spec(&self) -> Option<FilterSpec> {
        match FilterSpec::parse(self.filter()) {
            Ok(spec) => Some(spec),
            Err(e) => {
                // Unreachable: `raw` was validated when the subscription was made.
                tracing::error!(filter = %self.raw, "stored subscription no longer parses: {e}");
                None
            }
        }
    }
}

/// A will waiting to be published.
#[derive(Debug, Clone)]
pub(crate) struct PendingWill {
    /// The will as a message (without an expiry deadline: see `expiry_secs`).
    pub(crate) msg: Arc<Message>,
    /// Will Delay Interval, seconds.
    pub(crate) delay_secs: u32,
    /// The will's Message Expiry Interval, which starts when the will is published
    /// (MQTT 5.0 section 3.1.3.2.4), not when it was sent in CONNECT.
    pub(crate) expiry_secs: Option<u32>,
    /// Client id of the connection that set it (access rules are checked at publication).
    pub(crate) client_id: ByteString,
    /// User name of that connection.
    pub(crate) username: Option<ByteString>,
}

impl PendingWill {
    /// The message to publish at `now`, with its expiry deadline counted from now.
    pub(crate) fn message_at(&self, now: Instant) -> Arc<Message> {
        match self.expiry_secs {
            None => Arc::clone(&self.msg),
            Some(secs) => Arc::new(Message {
                topic: self.msg.topic.clone(),
                payload: self.msg.payload.clone(),
                qos: self.msg.qos,
                retain: self.msg.retain,
                properties: self.msg.properties.clone(),
                expires_at: Some(now + std::time::Duration::from_secs(u64::from(secs))),
            }),
        }
    }
}

/// Mutable state of a session.
#[derive(Debug)]
pub(crate) struct SessionState {
    /// The connection attached, if online.
    pub(crate) attachment: Option<Attachment>,
    /// Last generation handed out: increments with every attach, and a connection only acts on
    /// the session while it is attached and this is its generation.
    pub(crate) generation: u64,
    /// The session was discarded; nothing may be queued to it any more.
    pub(crate) ended: bool,
    /// User name of the last connection (access rules may name it). A boxed copy: 16 bytes
    /// instead of a `ByteString`'s 32 in every session.
    pub(crate) username: Option<Box<str>>,
    /// The store holds this session (it was persistent at some point and not deleted since).
    pub(crate) stored: bool,
    /// Session Expiry Interval in force, seconds (0: ends with the connection).
    pub(crate) expiry_secs: u32,
    /// Subscriptions, in an exactly sized slice (sessions hold few, and change them rarely;
    /// 16 bytes instead of a `Vec`'s 24).
    pub(crate) subscriptions: Box<[SessionSubscription]>,
    /// QoS 0 messages waiting to be written.
    pub(crate) qos0: LazyDeque<Delivery>,
    /// QoS 1/2 messages not yet sent.
    pub(crate) pending: LazyDeque<Delivery>,
    /// QoS 1/2 messages sent and not yet acknowledged, in send order.
    pub(crate) inflight: LazyDeque<Inflight>,
    /// Bytes held by `qos0` and `pending`.
    pub(crate) queued_bytes: usize,
    /// Last outbound packet identifier allocated (0 before the first).
    pub(crate) last_packet_id: u16,
    /// Inbound QoS 2 packet identifiers received and not yet released, sorted.
    pub(crate) incoming_qos2: LazyDeque<u16>,
    /// The will of the attached connection, or one waiting for its delay (boxed: most sessions
    /// have none, and inline it would take 88 bytes of every session).
    pub(crate) will: Option<Box<PendingWill>>,
    /// When the session went offline (for expiry and will delay).
    pub(crate) offline_since: Option<Instant>,
    /// Next store sequence number for a queued message.
    pub(crate) next_seq: u64,
    /// Messages dropped because a queue limit was reached.
    pub(crate) dropped: u64,
    /// Publishers waiting for this session's queue to drain.
    pub(crate) congestion: Option<Box<super::congestion::Congestion>>,
}

impl SessionState {
    /// An empty, offline session.
    pub(crate) fn new(expiry_secs: u32) -> Self {
        Self {
            attachment: None,
            generation: 0,
            ended: false,
            username: None,
            stored: false,
            expiry_secs,
            subscriptions: Box::default(),
            qos0: LazyDeque::default(),
            pending: LazyDeque::default(),
            inflight: LazyDeque::default(),
            queued_bytes: 0,
            last_packet_id: 0,
            incoming_qos2: LazyDeque::default(),
            will: None,
            offline_since: None,
            next_seq: 1,
            dropped: 0,
            congestion: None,
        }
    }

    /// True when the session outlives its connection.
    pub(crate) fn is_persistent(&self) -> bool {
        self.expiry_secs > 0
    }

    /// True when `generation` is the connection attached now.
    pub(crate) fn is_attached(&self, generation: u64) -> bool {
        self.attachment.is_some() && self.generation == generation
    }

    /// Adds a subscription (the caller checked that its filter is new to the session).
    pub(crate) fn add_subscription(&mut self, sub: SessionSubscription) {
        let mut subs = std::mem::take(&mut self.subscriptions).into_vec();
        subs.reserve_exact(1);
        subs.push(sub);
        self.subscriptions = subs.into_boxed_slice();
    }

    /// Removes and returns the subscription at `index`.
    pub(crate) fn remove_subscription_at(&mut self, index: usize) -> SessionSubscription {
        let mut subs = std::mem::take(&mut self.subscriptions).into_vec();
        let sub = subs.remove(index);
        self.subscriptions = subs.into_boxed_slice();
        sub
    }

    /// Messages waiting to be sent (not in flight).
    pub(crate) fn queued_len(&self) -> usize {
        self.qos0.len() + self.pending.len()
    }

    /// Allocates the next outbound packet identifier. The in-flight window holds identifiers
    /// allocated in order, so the next one is free unless the window spans every identifier,
    /// which a window capped below 65,535 rules out.
    pub(crate) fn allocate_packet_id(&mut self) -> PacketId {
        self.last_packet_id = if self.last_packet_id == u16::MAX {
            1
        } else {
            self.last_packet_id + 1
        };
        PacketId::new(self.last_packet_id).unwrap_or(PacketId::MIN)
    }

    /// Position of the in-flight entry with `packet_id` (acks usually arrive in order).
    pub(crate) fn inflight_position(&self, packet_id: PacketId) -> Option<usize> {
        match self.inflight.front() {
            Some(first) if first.packet_id == packet_id => Some(0),
            _ => self.inflight.iter().position(|i| i.packet_id == packet_id),
        }
    }

    /// Records an inbound QoS 2 packet id; false if it was already there (a resend).
    pub(crate) fn add_incoming_qos2(&mut self, packet_id: u16) -> bool {
        match self.incoming_qos2.binary_search(&packet_id) {
            Ok(_) => false,
            Err(pos) => {
                self.incoming_qos2.insert(pos, packet_id);
                true
            }
        }
    }

    /// Forgets an inbound QoS 2 packet id; false if it was unknown.
    pub(crate) fn remove_incoming_qos2(&mut self, packet_id: u16) -> bool {
        match self.incoming_qos2.binary_search(&packet_id) {
            Ok(pos) => {
                self.incoming_qos2.remove(pos);
                true
            }
            Err(_) => false,
        }
    }

    /// Wakes the attached connection, if any.
    pub(crate) fn wake(&self) {
        if let Some(a) = &self.attachment {
            a.control.wake();
        }
    }
}

/// What happened to a message offered to a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EnqueueOutcome {
    /// Queued (and persisted under `ticket` when the session is persistent).
    Queued {
        /// Store ticket of the queue entry (0 when not persisted).
        ticket: Ticket,
        /// The session's queue is congested: the publisher should pause until woken.
        congested: bool,
    },
    /// QoS 0 to an offline session, or the session has ended: nothing to do.
    Skipped,
    /// A queue limit was reached; the message was dropped and counted.
    Dropped,
}

/// What [`Session::enqueue`] needs from the broker.
#[derive(Debug)]
pub(crate) struct EnqueueContext<'a> {
    /// Limits in force.
    pub(crate) limits: &'a Limits,
    /// The durable store.
    pub(crate) store: &'a Store,
    /// A compact copy of the message, made once per routed message when first needed.
    pub(crate) compacted: Option<Arc<Message>>,
    /// The publishing connection, which pauses when a subscriber is congested.
    pub(crate) publisher: Option<&'a Arc<ConnControl>>,
    /// Clustered shape: the JetStream sequence of a message read for one persistent session.
    pub(crate) stream_seq: Option<u64>,
}

impl Session {
    /// Creates an offline session object.
    pub(crate) fn new(
        id: SessionId,
        tenant: TenantId,
        client_id: ByteString,
        expiry_secs: u32,
    ) -> Self {
        Self {
            id,
            tenant,
            client_id,
            state: Mutex::new(SessionState::new(expiry_secs)),
        }
    }

    /// Offers a delivery to this session: queue it within the limits, persist it if the session
    /// is persistent, and wake the connection.
    pub(crate) fn enqueue(
        &self,
        mut delivery: Delivery,
        ctx: &mut EnqueueContext<'_>,
    ) -> EnqueueOutcome {
        let mut st = self.state.lock();
        if st.ended {
            return EnqueueOutcome::Skipped;
        }
        let online = st.attachment.is_some();
        if delivery.qos == QoS::AtMostOnce
            && !online
            && !(st.is_persistent() && ctx.limits.queue_qos0_messages)
        {
            return EnqueueOutcome::Skipped;
        }
        let weight = delivery.msg.weight();
        if st.queued_len() >= ctx.limits.max_queued_messages
            || st.queued_bytes + weight > ctx.limits.max_queued_bytes
        {
            st.dropped += 1;
            if st.dropped.is_power_of_two() {
                tracing::warn!(
                    tenant = %self.tenant,
                    client_id = %self.client_id,
                    dropped = st.dropped,
                    queued = st.queued_len(),
                    "session queue full: message dropped; the client reads too slowly or is \
                     offline (raise limits.max_queued_messages/max_queued_bytes if expected)"
                );
            }
            return EnqueueOutcome::Dropped;
        }
        if !online {
            // Kept for a while: do not pin the publisher's read buffer.
            let compacted = ctx
                .compacted
                .get_or_insert_with(|| delivery.msg.compacted());
            delivery.msg = Arc::clone(compacted);
        }
        let mut ticket = 0;
        if st.is_persistent() && (delivery.qos != QoS::AtMostOnce || !online) {
            delivery.seq = st.next_seq;
            st.next_seq += 1;
            ticket = ctx.store.submit(StoreOp::PutMessage {
                tenant: self.tenant.clone(),
                client_id: self.client_id.clone(),
                message: super::persist::stored_message(&delivery, None, 0),
                stream_seq: ctx.stream_seq,
            });
        }
        st.queued_bytes += weight;
        if delivery.qos == QoS::AtMostOnce {
            st.qos0.push_back(delivery);
        } else {
            st.pending.push_back(delivery);
        }
        st.wake();
        let congested = ctx
            .publisher
            .is_some_and(|p| st.note_congestion(ctx.limits, p, tokio::time::Instant::now()));
        EnqueueOutcome::Queued { ticket, congested }
    }
}
