//! Messages to the client: draining the session's queues into PUBLISH packets within the
//! client's Receive Maximum and Maximum Packet Size, outbound topic aliases, resending the
//! in-flight window of a resumed session, and PUBACK/PUBREC/PUBCOMP from the client.

use stratus_codec::{
    Ack, AckProperties, Packet, PacketId, Publish, PublishProperties, QoS, ReasonCode,
};
use tokio::time::Instant;

use super::aliases::AliasUse;
use super::engine::{Close, Engine, Flow, OUTPUT_HIGH_WATER, encode};
use crate::broker::{Delivery, Inflight, InflightState};
use crate::store::{StoreOp, Ticket};

/// Output produced per drain before yielding to the socket.
const DRAIN_BUDGET: usize = 64 * 1024;

impl Engine {
    /// Moves queued messages into PUBLISH packets.
    pub(crate) fn drain(&mut self, now: Instant) -> Flow {
        let limits = &self.broker.config.limits;
        let window = usize::from(
            self.client
                .receive_maximum
                .min(limits.max_inflight_messages),
        );
        let budget_end = (self.out.pending_bytes() + DRAIN_BUDGET).min(OUTPUT_HIGH_WATER);
        let session = std::sync::Arc::clone(&self.session);
        // Every delivery is checked against the rules in force now (retained, queued while
        // offline, redispatched), unless the tenant allows everything.
        let access = self.tenant.access.load_full();
        let check = !access.policy.allows_everything() || self.principal.grants.is_some();
        let mut st = session.state.lock();
        if !st.is_attached(self.generation) {
            drop(st);
            return self.replaced();
        }
        while self.out.pending_bytes() < budget_end {
            let Some(d) = st.qos0.pop_front() else { break };
            st.queued_bytes = st.queued_bytes.saturating_sub(d.msg.weight());
            if d.seq != 0 {
                self.delete_stored(d.seq);
            }
            if d.msg.is_expired(now) || (check && !self.may_receive(&access, &d)) {
                self.stats.messages_dropped = self.stats.messages_dropped.saturating_add(1);
                continue;
            }
            self.write_publish(&d, None, false, 0, now);
        }
        while st.inflight.len() < window && self.out.pending_bytes() < budget_end {
            let Some(d) = st.pending.pop_front() else {
                break;
            };
            st.queued_bytes = st.queued_bytes.saturating_sub(d.msg.weight());
            if d.msg.is_expired(now)
                || !self.fits(&d, now)
                || (check && !self.may_receive(&access, &d))
            {
                self.stats.messages_dropped = self.stats.messages_dropped.saturating_add(1);
                if d.seq != 0 {
                    self.delete_stored(d.seq);
                }
                continue;
            }
            let packet_id = st.allocate_packet_id();
            let state = if d.qos == QoS::ExactlyOnce {
                InflightState::Qos2Sent
            } else {
                InflightState::Qos1Sent
            };
            let mut ticket = 0;
            let mut state_persisted = false;
            if d.seq != 0 && d.qos == QoS::ExactlyOnce {
                // Exactly-once needs the packet id durable before the client can see it.
                ticket = self.update_stored(d.seq, packet_id, state);
                state_persisted = true;
            }
            self.write_publish(&d, Some(packet_id), false, ticket, now);
            st.inflight.push_back(Inflight {
                packet_id,
                state,
                delivery: d,
                state_persisted,
            });
        }
        self.more_to_drain =
            !st.qos0.is_empty() || (!st.pending.is_empty() && st.inflight.len() < window);
        st.relieve_congestion(&self.broker.config.limits);
        Flow::Continue
    }

    /// Whether the rules let this client receive `d` now.
    fn may_receive(&self, access: &crate::access::TenantAccess, d: &Delivery) -> bool {
        let decision = crate::access::may_receive(
            access,
            self.principal.grants.as_deref(),
            &self.identity(),
            &d.msg.topic,
        );
        if !decision.is_allowed() {
            tracing::debug!(
                client_id = %self.session.client_id,
                topic = %d.msg.topic,
                decided_by = ?decision.decided_by,
                "delivery withheld by the access rules"
            );
        }
        decision.is_allowed()
    }

    /// Resends the in-flight window of a resumed session with the original packet ids
    /// ([MQTT-4.4.0-1]): PUBLISH with DUP for unacknowledged messages, PUBREL after PUBREC.
    pub(super) fn resend_inflight(&mut self, now: Instant) {
        let session = std::sync::Arc::clone(&self.session);
        let access = self.tenant.access.load_full();
        let check = !access.policy.allows_everything() || self.principal.grants.is_some();
        let mut st = session.state.lock();
        if check {
            // A message the rules no longer let this client receive is not resent (a released
            // QoS 2 message is already with the client: its PUBREL still goes out).
            let before = st.inflight.len();
            let mut withheld = Vec::new();
            st.inflight.retain(|i| {
                let keep =
                    i.state == InflightState::Released || self.may_receive(&access, &i.delivery);
                if !keep && i.delivery.seq != 0 {
                    withheld.push(i.delivery.seq);
                }
                keep
            });
            for seq in withheld {
                self.delete_stored(seq);
            }
            let withdrawn = u32::try_from(before - st.inflight.len()).unwrap_or(u32::MAX);
            self.stats.messages_dropped = self.stats.messages_dropped.saturating_add(withdrawn);
        }
        for i in &st.inflight {
            match i.state {
                InflightState::Qos1Sent | InflightState::Qos2Sent => {
                    self.write_publish(&i.delivery, Some(i.packet_id), true, 0, now);
                }
                InflightState::Released => {
                    let version = self.version;
                    let packet = Packet::PubRel(Ack::success(i.packet_id));
                    self.out
                        .push(0, self.committed, |buf| encode(&packet, version, buf));
                }
            }
        }
    }

    /// Whether a delivery fits the client's Maximum Packet Size (checked with the full topic, so
    /// an alias can only make it smaller). Oversized messages are dropped ([MQTT-3.1.2-25]).
    fn fits(&self, d: &Delivery, now: Instant) -> bool {
        if self.client.maximum_packet_size >= stratus_codec::MAX_PACKET_SIZE {
            return true;
        }
        let packet_id = (d.qos != QoS::AtMostOnce).then_some(PacketId::MIN);
        let packet = Packet::Publish(self.publish_for(d, packet_id, false, AliasUse::None, now));
        packet
            .encoded_len(self.version)
            .is_ok_and(|len| len <= self.client.maximum_packet_size as usize)
    }

    fn publish_for(
        &self,
        d: &Delivery,
        packet_id: Option<PacketId>,
        dup: bool,
        alias: AliasUse,
        now: Instant,
    ) -> Publish {
        let msg = &d.msg;
        let mut properties = PublishProperties::default();
        let mut topic = msg.topic.clone().into_inner();
        if self.version.is_v5() {
            if let Some(p) = &msg.properties {
                properties = (**p).clone();
            }
            properties.subscription_identifiers = d.subscription_ids.to_vec();
            properties.message_expiry_interval = msg.remaining_expiry(now);
            match alias {
                AliasUse::None => {}
                AliasUse::Establish(a) => properties.topic_alias = std::num::NonZeroU16::new(a),
                AliasUse::Reuse(a) => {
                    properties.topic_alias = std::num::NonZeroU16::new(a);
                    topic = bytestring::ByteString::new();
                }
            }
        }
        Publish {
            dup,
            qos: d.qos,
            retain: d.retain,
            topic,
            packet_id,
            properties,
            payload: msg.payload.clone(),
        }
    }

    /// Encodes one PUBLISH (dropping it when it exceeds the client's maximum packet size).
    fn write_publish(
        &mut self,
        d: &Delivery,
        packet_id: Option<PacketId>,
        dup: bool,
        ticket: Ticket,
        now: Instant,
    ) {
        if packet_id.is_none() && !self.fits(d, now) {
            self.stats.messages_dropped = self.stats.messages_dropped.saturating_add(1);
            return;
        }
        let alias = if self.version.is_v5() {
            let maximum = self
                .client
                .topic_alias_maximum
                .min(self.broker.config.limits.outbound_topic_aliases);
            if maximum == 0 {
                AliasUse::None
            } else {
                self.extras()
                    .outbound_aliases
                    .resolve(&d.msg.topic, maximum)
            }
        } else {
            AliasUse::None
        };
        let packet = Packet::Publish(self.publish_for(d, packet_id, dup, alias, now));
        let version = self.version;
        self.out
            .push(ticket, self.committed, |buf| encode(&packet, version, buf));
        self.stats.messages_sent = self.stats.messages_sent.saturating_add(1);
    }

    pub(super) fn on_puback(&mut self, ack: Ack, now: Instant) -> Flow {
        self.complete(ack.packet_id, InflightState::Qos1Sent);
        self.drain(now)
    }

    pub(super) fn on_pubcomp(&mut self, ack: Ack, now: Instant) -> Flow {
        self.complete(ack.packet_id, InflightState::Released);
        self.drain(now)
    }

    /// Removes an in-flight entry in `expected` state; acks for unknown ids are ignored.
    fn complete(&mut self, packet_id: PacketId, expected: InflightState) {
        let session = std::sync::Arc::clone(&self.session);
        let mut st = session.state.lock();
        if !st.is_attached(self.generation) {
            return;
        }
        match st.inflight_position(packet_id) {
            Some(pos) if st.inflight[pos].state == expected => {
                if let Some(done) = st.inflight.remove(pos) {
                    if let Some(settle) = &done.delivery.settle {
                        settle.ack();
                    }
                    if done.delivery.seq != 0 {
                        self.delete_stored(done.delivery.seq);
                    }
                }
            }
            _ => tracing::debug!(
                client_id = %self.session.client_id,
                packet_id = packet_id.get(),
                "acknowledgement for a packet id not in flight; ignored"
            ),
        }
    }

    pub(super) fn on_pubrec(&mut self, ack: Ack, now: Instant) -> Flow {
        let pid = ack.packet_id;
        let session = std::sync::Arc::clone(&self.session);
        let mut st = session.state.lock();
        if !st.is_attached(self.generation) {
            return Flow::Continue;
        }
        let mut ticket = 0;
        let reason = match st.inflight_position(pid) {
            Some(pos)
                if ack.reason.is_error() && st.inflight[pos].state == InflightState::Qos2Sent =>
            {
                // The client refused the message: the exchange ends here.
                if let Some(done) = st.inflight.remove(pos) {
                    if let Some(settle) = &done.delivery.settle {
                        settle.ack();
                    }
                    if done.delivery.seq != 0 {
                        self.delete_stored(done.delivery.seq);
                    }
                }
                None
            }
            Some(pos) => {
                let entry = &mut st.inflight[pos];
                if entry.state == InflightState::Qos1Sent {
                    drop(st);
                    return Flow::Close(Close::violation(
                        ReasonCode::ProtocolError,
                        "PUBREC for a QoS 1 message",
                    ));
                }
                entry.state = InflightState::Released;
                // The member has a share group's message once it answered PUBREC.
                if let Some(settle) = entry.delivery.settle.take() {
                    settle.ack();
                }
                let seq = entry.delivery.seq;
                if seq != 0 {
                    entry.state_persisted = true;
                    ticket = self.update_stored(seq, pid, InflightState::Released);
                }
                Some(ReasonCode::Success)
            }
            None => Some(if self.version.is_v5() {
                ReasonCode::PacketIdentifierNotFound
            } else {
                ReasonCode::Success
            }),
        };
        drop(st);
        if let Some(reason) = reason {
            let version = self.version;
            let packet = Packet::PubRel(Ack {
                packet_id: pid,
                reason,
                properties: AckProperties::default(),
            });
            self.out
                .push(ticket, self.committed, |buf| encode(&packet, version, buf));
        }
        self.drain(now)
    }

    fn delete_stored(&self, seq: u64) {
        self.broker.store.submit(StoreOp::DeleteMessage {
            tenant: self.tenant.id.clone(),
            client_id: self.session.client_id.clone(),
            seq,
        });
    }

    fn update_stored(&self, seq: u64, packet_id: PacketId, state: InflightState) -> Ticket {
        self.broker.store.submit(StoreOp::UpdateMessage {
            tenant: self.tenant.id.clone(),
            client_id: self.session.client_id.clone(),
            seq,
            packet_id: packet_id.get(),
            state: state.stored(),
        })
    }

    /// The session is attached to a newer connection (or was discarded): close.
    pub(super) fn replaced(&self) -> Flow {
        let reason = self
            .control
            .kicked()
            .unwrap_or(ReasonCode::SessionTakenOver);
        Flow::Close(Close::violation(
            reason,
            "session is attached to another connection",
        ))
    }
}
