//! SUBSCRIBE and UNSUBSCRIBE from the client: each filter is validated on its own (a bad filter
//! fails its own SUBACK entry in 5.0; 3.1.1 closes the connection for a malformed filter), the
//! SUBACK is written, and then retained messages for the new subscriptions are queued after it.

use stratus_codec::{
    AckProperties, Packet, QoS, ReasonCode, SubAck, Subscribe, UnsubAck, Unsubscribe,
};
use stratus_topics::{FilterSpec, TopicLimits};
use tokio::time::Instant;

use super::engine::{Close, Engine, Flow, encode};
use crate::broker::SessionSubscription;

impl Engine {
    pub(super) fn on_subscribe(&mut self, s: Subscribe, now: Instant) -> Flow {
        let v5 = self.version.is_v5();
        let limits = &self.broker.config.limits;
        let topic_limits = TopicLimits {
            max_topic_length: limits.max_topic_length,
            max_levels: limits.max_topic_levels,
        };
        let mut reasons = Vec::with_capacity(s.filters.len());
        let mut added = Vec::new();
        let mut denied = Vec::new();
        let mut ticket = 0;
        for request in s.filters {
            // The parsed filter is only looked at here (a slice of the read buffer); what the
            // session keeps is the copy below, which does not pin the buffer.
            let spec = match FilterSpec::parse(request.filter.clone()) {
                Ok(spec) => spec,
                Err(e) => {
                    if !v5 {
                        return Flow::Close(Close::violation(
                            ReasonCode::TopicFilterInvalid,
                            e.to_string(),
                        ));
                    }
                    tracing::debug!(client_id = %self.session.client_id, filter = %request.filter, "invalid filter: {e}");
                    reasons.push(ReasonCode::TopicFilterInvalid);
                    continue;
                }
            };
            if spec.share.is_some() && request.options.no_local {
                return Flow::Close(Close::violation(
                    ReasonCode::ProtocolError,
                    "No Local on a shared subscription [MQTT-3.8.3-4]",
                ));
            }
            if let Err(e) = topic_limits.check_filter(&spec.filter) {
                tracing::info!(client_id = %self.session.client_id, filter = %request.filter, "filter refused: {e}");
                reasons.push(ReasonCode::TopicFilterInvalid);
                continue;
            }
            let access = self.tenant.access.load();
            let decision = crate::access::may_subscribe(
                &access,
                self.principal.grants.as_deref(),
                &self.identity(),
                &spec.filter,
            );
            if !decision.is_allowed() {
                tracing::info!(
                    tenant = %self.tenant.id,
                    client_id = %self.session.client_id,
                    filter = %request.filter,
                    decided_by = ?decision.decided_by,
                    "SUBSCRIBE denied by the access rules"
                );
                reasons.push(self.broker.config.access.subscribe_denied.reason_code());
                denied.push(request.filter.to_string());
                continue;
            }
            let sub = SessionSubscription {
                raw: Box::from(&*request.filter),
                options: request.options,
                id: s.properties.subscription_identifier,
            };
            match self
                .broker
                .subscribe(&self.tenant, &self.session, self.generation, sub.clone())
            {
                Ok(done) => {
                    reasons.push(granted(sub.options.qos));
                    added.push((sub, done.existed));
                    ticket = ticket.max(done.ticket);
                }
                Err(reason) => reasons.push(reason),
            }
        }
        let version = self.version;
        let properties = if denied.is_empty() {
            AckProperties::default()
        } else {
            let mut why = format!("not authorized: {}", denied.join(", "));
            if why.len() > MAX_REASON_STRING {
                let mut end = MAX_REASON_STRING;
                while !why.is_char_boundary(end) {
                    end -= 1;
                }
                why.truncate(end);
            }
            self.problem(why)
        };
        let packet = Packet::SubAck(SubAck {
            packet_id: s.packet_id,
            properties,
            reasons,
        });
        let packet = self.within_client_limit(packet);
        // The SUBACK waits until the subscription is durable (persistent sessions) and, in the
        // clustered shape, until NATS has this edge's subscription: messages published after
        // the SUBACK arrive.
        self.out
            .push(ticket, self.committed, |buf| encode(&packet, version, buf));
        for (sub, existed) in added {
            self.broker
                .deliver_retained(&self.tenant, &self.session, &sub, existed, now);
        }
        self.drain(now)
    }

    pub(super) fn on_unsubscribe(&mut self, u: Unsubscribe) -> Flow {
        let mut reasons = Vec::with_capacity(u.filters.len());
        for filter in &u.filters {
            let reason = if FilterSpec::parse(filter.clone()).is_err() {
                ReasonCode::TopicFilterInvalid
            } else if self
                .broker
                .unsubscribe(&self.tenant, &self.session, self.generation, filter)
                .0
            {
                ReasonCode::Success
            } else {
                ReasonCode::NoSubscriptionExisted
            };
            reasons.push(reason);
        }
        let version = self.version;
        let packet = Packet::UnsubAck(UnsubAck {
            packet_id: u.packet_id,
            properties: AckProperties::default(),
            reasons,
        });
        self.out
            .push(0, self.committed, |buf| encode(&packet, version, buf));
        Flow::Continue
    }
}

/// Longest reason string a SUBACK carries (the denied filters are listed up to this length).
const MAX_REASON_STRING: usize = 256;

fn granted(qos: QoS) -> ReasonCode {
    match qos {
        QoS::AtMostOnce => ReasonCode::Success,
        QoS::AtLeastOnce => ReasonCode::GrantedQoS1,
        QoS::ExactlyOnce => ReasonCode::GrantedQoS2,
    }
}
