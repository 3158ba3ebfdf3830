//! Rebuilding broker state from the store at start-up: persistent sessions with their
//! subscriptions, queues, in-flight messages, inbound QoS 2 state and delayed wills, and retained
//! messages. Records that fail validation are skipped and logged, never trusted.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use bytestring::ByteString;
use stratus_codec::{PacketId, QoS, RetainHandling, SubscriptionOptions};
use stratus_model::TenantId;
use stratus_topics::FilterSpec;
use tokio::time::Instant;

use super::Broker;
use super::message::Delivery;
use super::persist::{decode_message, unix_ms_now};
use super::session::{Inflight, InflightState, PendingWill, Session, SessionSubscription};
use super::timers::{TimerEntry, TimerKind};
use crate::store::{Snapshot, StoreOp, StoredSession};

/// What was restored.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RestoreSummary {
    /// Persistent sessions restored.
    pub sessions: usize,
    /// Sessions that had expired while the broker was down.
    pub expired_sessions: usize,
    /// Queued and in-flight messages restored.
    pub messages: usize,
    /// Retained messages restored.
    pub retained: usize,
    /// Records skipped because they failed validation.
    pub skipped: usize,
}

impl Broker {
    /// Loads a snapshot into an empty broker.
    pub(crate) fn restore(&self, snapshot: Snapshot) -> RestoreSummary {
        let mut summary = RestoreSummary::default();
        let now = Instant::now();
        let wall = unix_ms_now();
        for stored in snapshot.sessions {
            self.restore_session(stored, now, wall, &mut summary);
        }
        for r in snapshot.retained {
            let Ok(tenant_id) = TenantId::new(&r.tenant) else {
                summary.skipped += 1;
                continue;
            };
            let Some(decoded) = decode_message(&r.publish, r.expires_at_ms) else {
                summary.skipped += 1;
                continue;
            };
            if decoded.msg.is_expired(now) {
                self.store.submit(StoreOp::DeleteRetained {
                    tenant: tenant_id,
                    topic: decoded.msg.topic.clone().into_inner(),
                });
                continue;
            }
            let tenant = self.tenant(&tenant_id);
            let limits = &self.config.limits;
            if tenant
                .retained
                .write()
                .set(
                    &decoded.msg,
                    limits.max_retained_messages,
                    limits.max_retained_bytes,
                )
                .is_ok()
            {
                summary.retained += 1;
            }
        }
        summary
    }

    pub(super) fn restore_session(
        &self,
        stored: StoredSession,
        now: Instant,
        wall: u64,
        summary: &mut RestoreSummary,
    ) {
        let Ok(tenant_id) = TenantId::new(&stored.tenant) else {
            summary.skipped += 1;
            return;
        };
        let expiry = Duration::from_secs(u64::from(stored.expiry_secs));
        let offline_for = stored.disconnected_at_ms.map_or(Duration::ZERO, |at| {
            Duration::from_millis(wall.saturating_sub(at))
        });
        if stored.expiry_secs == 0 || offline_for >= expiry {
            summary.expired_sessions += 1;
            self.store.submit(StoreOp::DeleteSession {
                tenant: tenant_id.clone(),
                client_id: stored.client_id.clone(),
            });
            // A will still pending when the session ended is published now.
            if let Some(w) = stored.will
                && let Some(decoded) = decode_message(&w.publish, None)
            {
                let tenant = self.tenant(&tenant_id);
                let will = PendingWill {
                    msg: decoded.msg,
                    delay_secs: 0,
                    expiry_secs: w.expiry_secs,
                    client_id: stored.client_id,
                    username: None,
                };
                // Published once the tenant's access rules are loaded.
                self.deferred_wills.lock().push((tenant.id.clone(), will));
            }
            return;
        }
        let tenant = self.tenant(&tenant_id);
        let session = Arc::new(Session::new(
            self.next_session_id(),
            tenant_id.clone(),
            stored.client_id.clone(),
            stored.expiry_secs,
        ));
        let mut subscriptions = Vec::new();
        {
            let mut st = session.state.lock();
            st.stored = true;
            st.last_packet_id = stored.next_packet_id;
            st.offline_since = Some(now);
            st.generation = 1;
            for sub in stored.subscriptions {
                match restore_subscription(sub.filter, sub.options, sub.subscription_id) {
                    Some(s) => subscriptions.push(s),
                    None => summary.skipped += 1,
                }
            }
            st.subscriptions = subscriptions.clone().into_boxed_slice();
            for m in stored.messages {
                let Some(decoded) = decode_message(&m.publish, m.expires_at_ms) else {
                    summary.skipped += 1;
                    continue;
                };
                let delivery = Delivery {
                    msg: decoded.msg,
                    qos: decoded.qos,
                    retain: decoded.retain,
                    subscription_ids: decoded.subscription_ids,
                    group: None,
                    settle: None,
                    seq: m.seq,
                };
                st.next_seq = st.next_seq.max(m.seq + 1);
                summary.messages += 1;
                let state = match m.state {
                    1 => Some(InflightState::Qos1Sent),
                    2 => Some(InflightState::Qos2Sent),
                    3 => Some(InflightState::Released),
                    _ => None,
                };
                match (state, m.packet_id.and_then(PacketId::new)) {
                    (Some(state), Some(packet_id)) if delivery.qos != QoS::AtMostOnce => {
                        st.inflight.push_back(Inflight {
                            packet_id,
                            state,
                            delivery,
                            state_persisted: true,
                        });
                    }
                    _ => {
                        st.queued_bytes += delivery.msg.weight();
                        if delivery.qos == QoS::AtMostOnce {
                            st.qos0.push_back(delivery);
                        } else {
                            st.pending.push_back(delivery);
                        }
                    }
                }
            }
            // The packet-id counter is written at CONNECT and DISCONNECT only, so after a crash
            // it can be behind the identifiers in flight. Identifiers are allocated in delivery
            // order, so the newest in-flight message holds the last one allocated: continuing
            // from it never hands out an identifier the client still holds.
            if let Some(newest) = st.inflight.iter().max_by_key(|i| i.delivery.seq) {
                st.last_packet_id = newest.packet_id.get();
            }
            for id in stored.incoming_qos2 {
                st.add_incoming_qos2(id);
            }
            let remaining = expiry - offline_for;
            if let Some(w) = stored.will
                && let Some(decoded) = decode_message(&w.publish, None)
            {
                let due = if w.due_at_ms > wall {
                    now + Duration::from_millis(w.due_at_ms - wall)
                } else {
                    now
                };
                st.will = Some(Box::new(PendingWill {
                    msg: decoded.msg,
                    delay_secs: 1,
                    expiry_secs: w.expiry_secs,
                    client_id: stored.client_id.clone(),
                    username: None,
                }));
                self.timers.schedule(TimerEntry {
                    due: due.min(now + remaining),
                    kind: TimerKind::Will,
                    tenant: Arc::clone(&tenant),
                    session: Arc::clone(&session),
                    generation: 1,
                });
            }
            self.timers.schedule(TimerEntry {
                due: now + remaining,
                kind: TimerKind::Expiry,
                tenant: Arc::clone(&tenant),
                session: Arc::clone(&session),
                generation: 1,
            });
        }
        for sub in &subscriptions {
            self.index_subscription(&tenant, &session, sub);
        }
        tenant.sessions.lock().insert(session);
        summary.sessions += 1;
    }
}

/// Rebuilds a subscription from its stored form; `None` when the record is invalid.
pub(crate) fn restore_subscription(
    raw: ByteString,
    options: u8,
    id: Option<u32>,
) -> Option<SessionSubscription> {
    let qos = QoS::from_bits(options & 0b11)?;
    let retain_handling = match (options >> 4) & 0b11 {
        0 => RetainHandling::SendAtSubscribe,
        1 => RetainHandling::SendIfNew,
        2 => RetainHandling::DoNotSend,
        _ => return None,
    };
    FilterSpec::parse(raw.clone()).ok()?;
    Some(SessionSubscription {
        raw: Box::from(&*raw),
        options: SubscriptionOptions {
            qos,
            no_local: options & 0b100 != 0,
            retain_as_published: options & 0b1000 != 0,
            retain_handling,
        },
        id: id.and_then(NonZeroU32::new),
    })
}
