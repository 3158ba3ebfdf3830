//! Messages from the client: PUBLISH (topic aliases, validation, routing, QoS 1/2
//! acknowledgements held until durable) and PUBREL. Exactly-once for inbound QoS 2 uses the
//! packet identifier kept in the session until PUBREL (MQTT 5.0 section 4.3.3, method B).

use std::sync::Arc;

use stratus_codec::{Ack, AckProperties, Packet, PacketId, Publish, QoS, ReasonCode};
use tokio::time::Instant;

use super::engine::{Close, Engine, Flow, encode};
use super::publish::build_message;
use crate::store::{StoreOp, Ticket};

impl Engine {
    pub(super) fn on_publish(&mut self, p: Publish, now: Instant) -> Flow {
        let v5 = self.version.is_v5();
        self.stats.messages_received = self.stats.messages_received.saturating_add(1);
        let packet_id = p.packet_id;
        if v5
            && p.qos != QoS::AtMostOnce
            && self.inbound_in_flight() >= usize::from(self.broker.config.limits.receive_maximum)
        {
            return Flow::Close(Close::violation(
                ReasonCode::ReceiveMaximumExceeded,
                "more unacknowledged QoS 1/2 PUBLISH packets than our Receive Maximum [MQTT-3.3.4-9]",
            ));
        }
        // Topic alias (5.0).
        let mut topic = p.topic;
        if let Some(alias) = p.properties.topic_alias {
            if alias.get() > self.broker.config.limits.topic_alias_maximum {
                return Flow::Close(Close::violation(
                    ReasonCode::TopicAliasInvalid,
                    "topic alias above our Topic Alias Maximum [MQTT-3.3.2-9]",
                ));
            }
            if topic.is_empty() {
                match self.inbound_alias(alias.get()) {
                    Some(t) => topic = t.clone().into_inner(),
                    None => {
                        return Flow::Close(Close::violation(
                            ReasonCode::ProtocolError,
                            "empty topic with a topic alias that was never set [MQTT-3.3.2-8]",
                        ));
                    }
                }
            } else {
                match stratus_topics::TopicName::new(topic.clone()) {
                    Ok(t) => self.extras().inbound_aliases.set(alias.get(), t),
                    Err(e) => {
                        return Flow::Close(Close::violation(
                            ReasonCode::TopicNameInvalid,
                            e.to_string(),
                        ));
                    }
                }
            }
        } else if topic.is_empty() {
            return Flow::Close(Close::violation(
                if v5 {
                    ReasonCode::ProtocolError
                } else {
                    ReasonCode::TopicNameInvalid
                },
                "PUBLISH with an empty topic and no topic alias [MQTT-4.7.3-1]",
            ));
        }

        // Inbound QoS 2 resend: acknowledge again, never route twice.
        if p.qos == QoS::ExactlyOnce
            && let Some(pid) = packet_id
            && self
                .session
                .state
                .lock()
                .incoming_qos2
                .binary_search(&pid.get())
                .is_ok()
        {
            self.send_ack(Packet::PubRec(Ack::success(pid)), 0, false);
            return Flow::Continue;
        }

        let msg = match build_message(
            topic,
            p.payload,
            p.qos,
            p.retain,
            p.properties,
            &self.broker.config.limits,
            now,
        ) {
            Ok(m) => Arc::new(m),
            Err(e) => {
                // Malformed topics and protocol violations close the connection; a refused but
                // well-formed message gets a negative acknowledgement (5.0) or is dropped and
                // logged (3.1.1, which has no way to say no).
                let fatal = matches!(
                    e.reason,
                    ReasonCode::TopicNameInvalid | ReasonCode::ProtocolError
                );
                if fatal
                    || (v5 && p.qos == QoS::AtMostOnce && e.reason != ReasonCode::NotAuthorized)
                {
                    return Flow::Close(Close::violation(e.reason, e.why));
                }
                tracing::info!(
                    tenant = %self.tenant.id,
                    client_id = %self.session.client_id,
                    reason = ?e.reason,
                    "PUBLISH refused: {}",
                    e.why
                );
                let props = self.problem(e.why);
                return self.ack_publish(p.qos, packet_id, e.reason, props, 0);
            }
        };

        let access = self.tenant.access.load();
        let decision = crate::access::may_publish(
            &access,
            self.principal.grants.as_deref(),
            &self.identity(),
            &msg.topic,
        );
        if !decision.is_allowed() {
            // 5.0 hears "not authorized"; 3.1.1 has no way to say no: acknowledged, dropped, logged.
            tracing::info!(
                tenant = %self.tenant.id,
                client_id = %self.session.client_id,
                topic = %msg.topic,
                decided_by = ?decision.decided_by,
                "PUBLISH denied by the access rules"
            );
            let props = self.problem(format!("publishing to {} is not allowed", msg.topic));
            return self.ack_publish(p.qos, packet_id, ReasonCode::NotAuthorized, props, 0);
        }

        match self.broker.publish(
            &self.tenant,
            &msg,
            Some(self.session.id),
            Some(&self.control),
        ) {
            Ok(routed) => {
                if routed.congested && self.paused_since().is_none() {
                    // A subscriber's queue is filling up: stop reading until it drains (it
                    // wakes us) or the pause limit passes.
                    self.pause_reading(now);
                }
                let reason = if v5 && routed.matched == 0 {
                    ReasonCode::NoMatchingSubscribers
                } else {
                    ReasonCode::Success
                };
                self.ack_publish(
                    p.qos,
                    packet_id,
                    reason,
                    AckProperties::default(),
                    routed.ticket,
                )
            }
            Err(reason) => {
                let props = self.problem("the tenant's retained-message quota is used up");
                self.ack_publish(p.qos, packet_id, reason, props, 0)
            }
        }
    }

    /// Sends PUBACK/PUBREC for a QoS 1/2 message once `ticket` is durable; for an accepted QoS 2
    /// message the packet id is first recorded in the session.
    fn ack_publish(
        &mut self,
        qos: QoS,
        packet_id: Option<PacketId>,
        reason: ReasonCode,
        properties: AckProperties,
        mut ticket: Ticket,
    ) -> Flow {
        let Some(pid) = packet_id else {
            return Flow::Continue;
        };
        let ack = Ack {
            packet_id: pid,
            reason,
            properties,
        };
        match qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => self.send_ack(Packet::PubAck(ack), ticket, true),
            QoS::ExactlyOnce => {
                if !reason.is_error() {
                    let mut st = self.session.state.lock();
                    if !st.is_attached(self.generation) {
                        return Flow::Continue;
                    }
                    st.add_incoming_qos2(pid.get());
                    if st.stored {
                        ticket = ticket.max(self.broker.store.submit(StoreOp::AddIncomingQos2 {
                            tenant: self.tenant.id.clone(),
                            client_id: self.session.client_id.clone(),
                            packet_id: pid.get(),
                            after: ticket,
                        }));
                    }
                }
                // Counted for the Receive Maximum through `incoming_qos2` until its PUBREL.
                self.send_ack(Packet::PubRec(ack), ticket, false);
            }
        }
        Flow::Continue
    }

    pub(super) fn on_pubrel(&mut self, ack: Ack) -> Flow {
        let pid = ack.packet_id;
        let mut ticket = 0;
        let known = {
            let mut st = self.session.state.lock();
            if !st.is_attached(self.generation) {
                return Flow::Continue;
            }
            let known = st.remove_incoming_qos2(pid.get());
            if known && st.stored {
                ticket = self.broker.store.submit(StoreOp::RemoveIncomingQos2 {
                    tenant: self.tenant.id.clone(),
                    client_id: self.session.client_id.clone(),
                    packet_id: pid.get(),
                });
            }
            known
        };
        let reason = if known || !self.version.is_v5() {
            ReasonCode::Success
        } else {
            ReasonCode::PacketIdentifierNotFound
        };
        // PUBCOMP waits until the packet id is forgotten durably: otherwise a crash could make a
        // later message reusing this id look like a resend, and it would be lost.
        self.send_ack(
            Packet::PubComp(Ack {
                packet_id: pid,
                reason,
                properties: AckProperties::default(),
            }),
            ticket,
            false,
        );
        Flow::Continue
    }

    /// Queues an acknowledgement behind `ticket`; `counts` marks it as an inbound QoS 1/2 ack
    /// for receive-maximum accounting.
    pub(super) fn send_ack(&mut self, packet: Packet, ticket: Ticket, counts: bool) {
        let version = self.version;
        if counts && (ticket > self.committed || self.out.waiting_for().is_some()) {
            let held_until = ticket.max(self.out.waiting_for().unwrap_or(0));
            self.out.hold_ack(held_until);
        }
        let packet = self.within_client_limit(packet);
        self.out
            .push(ticket, self.committed, |buf| encode(&packet, version, buf));
    }

    /// QoS 1/2 messages from the client not yet fully acknowledged by us.
    fn inbound_in_flight(&self) -> usize {
        self.out.held_acks() + self.session.state.lock().incoming_qos2.len()
    }
}
