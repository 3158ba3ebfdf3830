//! The protocol state machine of one connected client, after CONNACK. No sockets and no awaits:
//! the transport feeds it packets, wake-ups and the time, and writes what it puts in [`Output`].
//! Each packet kind is handled in its own module (`inbound`, `outbound`, `subscriptions`).

use std::borrow::Cow;
use std::sync::Arc;
use std::task::Context;
use std::time::Duration;

use bytes::BytesMut;
use bytestring::ByteString;
use stratus_codec::{
    AckProperties, ConnAck, DecodeError, Disconnect, Packet, ProtocolVersion, ReasonCode,
};
use tokio::time::Instant;

use super::aliases::{InboundAliases, OutboundAliases};
use super::output::Output;
use crate::access::Principal;
use crate::broker::{Attached, Broker, ConnControl, Departure, Session, Tenant, TenantStats};
use crate::store::Ticket;

/// What the client told us about itself in CONNECT (5.0 properties, or defaults).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientLimits {
    /// Receive Maximum: QoS 1/2 messages it accepts in flight.
    pub(crate) receive_maximum: u16,
    /// Maximum Packet Size it accepts.
    pub(crate) maximum_packet_size: u32,
    /// Topic Alias Maximum it accepts.
    pub(crate) topic_alias_maximum: u16,
    /// Whether reason strings and user properties may be sent on acks.
    pub(crate) request_problem_information: bool,
}

/// How a connection ends.
#[derive(Debug, Clone)]
pub(crate) struct Close {
    /// 5.0 DISCONNECT reason to send first (ignored for 3.1.1).
    pub(crate) send: Option<ReasonCode>,
    /// Whether the will is published.
    pub(crate) departure: Departure,
    /// Session Expiry Interval from the client's DISCONNECT.
    pub(crate) expiry: Option<u32>,
    /// Why, for the log.
    pub(crate) why: Cow<'static, str>,
}

impl Close {
    /// A close caused by the client breaking a rule: DISCONNECT `reason`, will published.
    pub(crate) fn violation(reason: ReasonCode, why: impl Into<Cow<'static, str>>) -> Self {
        Self {
            send: Some(reason),
            departure: Departure::Abnormal,
            expiry: None,
            why: why.into(),
        }
    }

    /// The network connection went away without DISCONNECT.
    pub(crate) fn lost(why: impl Into<Cow<'static, str>>) -> Self {
        Self {
            send: None,
            departure: Departure::Abnormal,
            expiry: None,
            why: why.into(),
        }
    }
}

/// Continue, or close the connection.
#[derive(Debug)]
pub(crate) enum Flow {
    /// Keep going.
    Continue,
    /// Close as described.
    Close(Close),
}

/// Counters batched per I/O cycle before they reach the tenant's shared counters (flushed after
/// every poll, so 32 bits are plenty).
#[derive(Debug, Default)]
pub(super) struct LocalStats {
    pub(super) messages_received: u32,
    pub(super) messages_sent: u32,
    pub(super) messages_dropped: u32,
}

/// Most output buffered before the engine stops producing more (reading and draining resume once
/// the socket took it).
pub(crate) const OUTPUT_HIGH_WATER: usize = 256 * 1024;

/// State most connections never use, allocated on first use: inline it would take 48 bytes of
/// every idle connection.
#[derive(Debug, Default)]
pub(super) struct Extras {
    /// When the client's credential expires (a JWT's `exp`): the connection is closed then.
    credential_expires: Option<Instant>,
    /// Reading is paused since then because a subscriber is congested (see
    /// `broker/congestion.rs`).
    paused_since: Option<Instant>,
    pub(super) inbound_aliases: InboundAliases,
    pub(super) outbound_aliases: OutboundAliases,
}

/// One connected client. It lives inside the connection task for as long as the client is
/// connected, so its size is part of every idle connection's memory (see the size test in
/// `listener/connection.rs`): keep rarely used state behind a pointer ([`Extras`], output
/// buffers).
#[derive(Debug)]
pub(crate) struct Engine {
    pub(super) broker: Arc<Broker>,
    pub(super) tenant: Arc<Tenant>,
    pub(super) session: Arc<Session>,
    pub(super) generation: u64,
    pub(super) control: Arc<ConnControl>,
    pub(super) version: ProtocolVersion,
    /// Keep-alive in seconds (0: none).
    pub(super) keep_alive: u16,
    pub(super) last_received: Instant,
    pub(super) client: ClientLimits,
    /// Credential expiry, publisher pause, topic aliases; `None` until one is needed.
    extras: Option<Box<Extras>>,
    /// Output, with the inbound QoS 1/2 acknowledgements the store holds back.
    pub(super) out: Output,
    pub(super) committed: Ticket,
    /// The ticket this task asked the store to be woken for.
    pub(super) awaited_ticket: Ticket,
    pub(super) connect_expiry: u32,
    /// Who the client authenticated as.
    pub(super) principal: Arc<Principal>,
    pub(super) stats: LocalStats,
    /// More queued messages could be sent once output drains.
    pub(super) more_to_drain: bool,
    resend_on_start: bool,
}

impl Engine {
    /// A new engine for an attached session.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        broker: Arc<Broker>,
        tenant: Arc<Tenant>,
        attached: Attached,
        control: Arc<ConnControl>,
        version: ProtocolVersion,
        keep_alive: u16,
        client: ClientLimits,
        connect_expiry: u32,
        principal: Arc<Principal>,
        now: Instant,
    ) -> Self {
        let committed = broker.store.committed();
        // The credential's expiry as a deadline on the connection's clock.
        let credential_expires = principal.expires_at.map(|at| {
            let left = at
                .duration_since(std::time::SystemTime::now())
                .unwrap_or(Duration::ZERO);
            now + left
        });
        let extras = credential_expires.map(|at| {
            Box::new(Extras {
                credential_expires: Some(at),
                ..Extras::default()
            })
        });
        Self {
            broker,
            tenant,
            session: attached.session,
            generation: attached.generation,
            control,
            version,
            keep_alive,
            last_received: now,
            client,
            extras,
            out: Output::default(),
            committed,
            awaited_ticket: 0,
            connect_expiry,
            principal,
            stats: LocalStats::default(),
            more_to_drain: true,
            resend_on_start: attached.session_present,
        }
    }

    /// The connection's wake/kick handle.
    pub(crate) fn broker(&self) -> &Arc<Broker> {
        &self.broker
    }

    pub(crate) fn control(&self) -> &Arc<ConnControl> {
        &self.control
    }

    /// Makes sure the connection is woken when `deadline` (from [`Engine::deadline`]) is due.
    pub(crate) fn arm_alarm(&self, deadline: Instant, now: Instant) {
        self.broker.alarms.arm(&self.control, deadline, now);
    }

    /// The rarely used state, allocated now if it was not yet.
    pub(super) fn extras(&mut self) -> &mut Extras {
        self.extras.get_or_insert_with(Box::default)
    }

    /// Since when reading is paused for a congested subscriber, if it is.
    pub(super) fn paused_since(&self) -> Option<Instant> {
        self.extras.as_ref().and_then(|e| e.paused_since)
    }

    /// Pauses reading (see `broker/congestion.rs`) from `now`.
    pub(super) fn pause_reading(&mut self, now: Instant) {
        self.extras().paused_since = Some(now);
    }

    /// Ends a pause of reading, if any.
    fn resume_reading(&mut self) {
        if let Some(e) = &mut self.extras {
            e.paused_since = None;
        }
    }

    /// The topic the client mapped `alias` to, if it did.
    pub(super) fn inbound_alias(&self, alias: u16) -> Option<&stratus_topics::TopicName> {
        self.extras.as_ref()?.inbound_aliases.get(alias)
    }

    /// When the client's credential expires, if it does.
    fn credential_expires(&self) -> Option<Instant> {
        self.extras.as_ref().and_then(|e| e.credential_expires)
    }

    /// Writes CONNACK, resends what a resumed session had in flight, and sends what is queued.
    pub(crate) fn start(&mut self, connack: &ConnAck, now: Instant) -> Flow {
        let version = self.version;
        self.out.push(0, self.committed, |buf| {
            encode(&Packet::ConnAck(connack.clone()), version, buf)
        });
        if std::mem::take(&mut self.resend_on_start) {
            // A resumed session's subscriptions are checked against the rules of now.
            self.broker.recheck_session(&self.tenant, &self.session);
            self.resend_inflight(now);
        }
        self.drain(now)
    }

    /// Handles one packet from the client.
    pub(crate) fn handle(&mut self, packet: Packet, now: Instant) -> Flow {
        self.last_received = now;
        tracing::trace!(packet = ?packet.packet_type(), "received");
        match packet {
            Packet::Publish(p) => self.on_publish(p, now),
            Packet::PubAck(ack) => self.on_puback(ack, now),
            Packet::PubRec(ack) => self.on_pubrec(ack, now),
            Packet::PubRel(ack) => self.on_pubrel(ack),
            Packet::PubComp(ack) => self.on_pubcomp(ack, now),
            Packet::Subscribe(s) => self.on_subscribe(s, now),
            Packet::Unsubscribe(u) => self.on_unsubscribe(u),
            Packet::PingReq => {
                let version = self.version;
                self.out.push(0, self.committed, |buf| {
                    encode(&Packet::PingResp, version, buf)
                });
                Flow::Continue
            }
            Packet::Disconnect(d) => self.on_disconnect(d),
            Packet::Connect(_) => Flow::Close(Close::violation(
                ReasonCode::ProtocolError,
                "second CONNECT on a connection [MQTT-3.1.0-2]",
            )),
            Packet::Auth(_) => Flow::Close(Close::violation(
                ReasonCode::ProtocolError,
                "AUTH without an authentication method in CONNECT [MQTT-4.12.0-1]",
            )),
            Packet::ConnAck(_) | Packet::SubAck(_) | Packet::UnsubAck(_) | Packet::PingResp => {
                Flow::Close(Close::violation(
                    ReasonCode::ProtocolError,
                    "a server-to-client packet sent by a client",
                ))
            }
        }
    }

    /// The close for a packet that could not be decoded.
    pub(crate) fn decode_error(&self, err: &DecodeError) -> Close {
        Close::violation(err.reason_code(), err.to_string())
    }

    fn on_disconnect(&mut self, d: Disconnect) -> Flow {
        let departure = if d.reason == ReasonCode::DisconnectWithWill {
            Departure::Abnormal
        } else {
            Departure::Normal
        };
        let mut expiry = None;
        if let Some(requested) = d.properties.session_expiry_interval {
            if self.connect_expiry == 0 && requested != 0 {
                return Flow::Close(Close::violation(
                    ReasonCode::ProtocolError,
                    "DISCONNECT set a session expiry after CONNECT set none [MQTT-3.14.2-2]",
                ));
            }
            expiry = Some(requested.min(self.broker.config.limits.max_session_expiry));
        }
        Flow::Close(Close {
            send: None,
            departure,
            expiry,
            why: "client sent DISCONNECT".into(),
        })
    }

    /// Called when woken: closes if kicked, otherwise sends what was queued (and resumes reading
    /// if a congested subscriber drained).
    pub(crate) fn on_wake(&mut self, now: Instant) -> Flow {
        self.resume_reading();
        if let Some(reason) = self.control.kicked() {
            return Flow::Close(Close {
                send: Some(reason),
                departure: Departure::Abnormal,
                expiry: None,
                why: match reason {
                    ReasonCode::SessionTakenOver => {
                        "session taken over by another connection".into()
                    }
                    ReasonCode::ServerShuttingDown => "server shutting down".into(),
                    _ => "closed by the server".into(),
                },
            });
        }
        self.drain(now)
    }

    /// The next deadline: 1.5 times the keep-alive after the last packet received, or the
    /// credential's expiry, whichever is first.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        let keep_alive = self.keep_alive_deadline();
        let pause_ends = self.paused_since().map(|at| at + self.max_pause());
        [keep_alive, self.credential_expires(), pause_ends]
            .into_iter()
            .flatten()
            .min()
    }

    /// 1.5 times the keep-alive after the last packet received ([MQTT-3.1.2-22]).
    fn keep_alive_deadline(&self) -> Option<Instant> {
        (self.keep_alive > 0).then(|| {
            let ka = Duration::from_secs(u64::from(self.keep_alive));
            self.last_received + ka + ka / 2
        })
    }

    fn max_pause(&self) -> Duration {
        Duration::from_millis(self.broker.config.limits.max_publisher_pause_ms)
    }

    /// Called when the deadline passed.
    pub(crate) fn on_deadline(&mut self, now: Instant) -> Flow {
        if self
            .paused_since()
            .is_some_and(|at| now >= at + self.max_pause())
        {
            self.resume_reading();
        }
        if self.credential_expires().is_some_and(|at| now >= at) {
            return Flow::Close(Close::violation(
                ReasonCode::NotAuthorized,
                "the client's token expired",
            ));
        }
        match self.keep_alive_deadline() {
            Some(deadline) if now >= deadline => Flow::Close(Close::violation(
                ReasonCode::KeepAliveTimeout,
                "no packet within 1.5 times the keep-alive [MQTT-3.1.2-22]",
            )),
            _ => Flow::Continue,
        }
    }

    /// The identity access rules are evaluated for.
    pub(super) fn identity(&self) -> stratus_policy::Identity<'_> {
        stratus_policy::Identity {
            tenant: self.tenant.id.as_str(),
            client_id: &self.session.client_id,
            username: self.principal.username.as_deref(),
        }
    }

    /// Catches up with the store: releases output whose ticket is committed, and otherwise makes
    /// sure the task is woken when it is. Returns true when output was released.
    pub(crate) fn poll_store(&mut self, cx: &mut Context<'_>) -> bool {
        // A kicked connection never releases held output: in the clustered shape a publish that
        // JetStream refused completes its ticket only after kicking the publisher.
        if self.control.kicked().is_some() {
            return false;
        }
        let store = &self.broker.store;
        let committed = store.committed();
        let Some(waiting) = self.out.waiting_for() else {
            self.committed = committed;
            return false;
        };
        if committed >= waiting {
            self.on_committed(committed);
            return true;
        }
        if self.awaited_ticket != waiting {
            self.awaited_ticket = waiting;
            if store.wake_when_committed(waiting, cx.waker()) {
                self.on_committed(store.committed());
                return true;
            }
        }
        self.committed = committed;
        false
    }

    /// Whether output is held back until the store commits.
    pub(crate) fn holds_output(&self) -> bool {
        self.out.waiting_for().is_some()
    }

    /// The store committed up to `ticket`: release held output.
    fn on_committed(&mut self, ticket: Ticket) {
        self.committed = ticket;
        self.out.release(ticket);
    }

    /// Bytes ready to be written.
    pub(crate) fn ready_output(&self) -> &[u8] {
        self.out.ready()
    }

    /// Marks `n` bytes as written.
    pub(crate) fn consumed(&mut self, n: usize) {
        self.out.consume(n);
    }

    /// Whether the engine wants to read more input now (false while output is backed up or too
    /// many acknowledgements are held back by the store).
    pub(crate) fn wants_input(&self) -> bool {
        self.out.pending_bytes() < OUTPUT_HIGH_WATER
            && self.out.held_acks() < usize::from(self.broker.config.limits.receive_maximum)
            && self.paused_since().is_none()
    }

    /// Frees the output buffers when nothing is pending (the connection is going idle).
    pub(crate) fn release_idle_buffers(&mut self) {
        self.out.release_if_idle();
    }

    /// Whether draining should run again once output was written.
    pub(crate) fn wants_drain(&self) -> bool {
        self.more_to_drain && self.out.pending_bytes() < OUTPUT_HIGH_WATER
    }

    /// Moves batched counters to the tenant.
    pub(crate) fn flush_stats(&mut self, bytes_received: u64, bytes_sent: u64) {
        let s = &self.tenant.stats;
        TenantStats::add(&s.bytes_received, bytes_received);
        TenantStats::add(&s.bytes_sent, bytes_sent);
        let local = std::mem::take(&mut self.stats);
        TenantStats::add(&s.messages_received, u64::from(local.messages_received));
        TenantStats::add(&s.messages_sent, u64::from(local.messages_sent));
        TenantStats::add(&s.messages_dropped, u64::from(local.messages_dropped));
    }

    /// Encodes the final DISCONNECT (5.0) after the ready output, dropping held output. The
    /// reason string says why ([MQTT-3.1.2-29] allows it on DISCONNECT whatever the client asked).
    pub(crate) fn write_disconnect(&mut self, reason: ReasonCode, why: &str) {
        if !self.version.is_v5() {
            return;
        }
        let mut disconnect = Disconnect::new(reason);
        disconnect.properties.reason_string = Some(ByteString::from(why));
        let packet = self.within_client_limit(Packet::Disconnect(disconnect));
        let version = self.version;
        self.out.push_final(|buf| encode(&packet, version, buf));
    }

    /// Properties for a negative acknowledgement: a reason string when the client asked for
    /// problem information (the default), nothing otherwise ([MQTT-3.1.2-29]).
    pub(super) fn problem(&self, why: impl Into<String>) -> AckProperties {
        let mut props = AckProperties::default();
        if self.version.is_v5() && self.client.request_problem_information {
            props.reason_string = Some(ByteString::from(why.into()));
        }
        props
    }

    /// Strips optional properties from a non-PUBLISH packet that would exceed the client's
    /// Maximum Packet Size ([MQTT-3.1.2-25]).
    pub(super) fn within_client_limit(&self, packet: Packet) -> Packet {
        let limit = self.client.maximum_packet_size as usize;
        if packet
            .encoded_len(self.version)
            .is_ok_and(|len| len <= limit)
        {
            return packet;
        }
        match packet {
            Packet::PubAck(mut a) => {
                a.properties = AckProperties::default();
                Packet::PubAck(a)
            }
            Packet::PubRec(mut a) => {
                a.properties = AckProperties::default();
                Packet::PubRec(a)
            }
            Packet::PubRel(mut a) => {
                a.properties = AckProperties::default();
                Packet::PubRel(a)
            }
            Packet::PubComp(mut a) => {
                a.properties = AckProperties::default();
                Packet::PubComp(a)
            }
            Packet::SubAck(mut a) => {
                a.properties = AckProperties::default();
                Packet::SubAck(a)
            }
            Packet::UnsubAck(mut a) => {
                a.properties = AckProperties::default();
                Packet::UnsubAck(a)
            }
            Packet::Disconnect(mut d) => {
                d.properties = Default::default();
                Packet::Disconnect(d)
            }
            other => other,
        }
    }

    /// Detaches from the session (will, expiry) and frees buffers.
    pub(crate) fn finish(mut self, close: &Close, now: Instant) {
        self.broker.detach(
            &self.tenant,
            &self.session,
            self.generation,
            close.departure,
            close.expiry,
            now,
        );
        self.out.release_memory();
    }
}

/// Encodes a packet the server built; an encode failure is a bug, logged and skipped.
pub(super) fn encode(packet: &Packet, version: ProtocolVersion, buf: &mut BytesMut) {
    if let Err(e) = packet.encode(version, buf) {
        tracing::error!(error = %e, packet = ?packet.packet_type(), "cannot encode an outgoing packet");
    }
}
