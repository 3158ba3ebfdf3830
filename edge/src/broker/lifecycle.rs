//! Session life cycle: attaching a connection (new session, resume, takeover), detaching it
//! (will, expiry, shared-subscription redispatch), discarding a session, and the deadlines of
//! offline sessions.
//!
//! At most one connection is attached to a session at any instant: attaching kicks the previous
//! one (5.0 DISCONNECT 0x8E) under the session lock, and every later action of the kicked
//! connection is refused because its generation is no longer current.

use std::sync::Arc;
use std::time::Duration;

use bytestring::ByteString;
use stratus_codec::ReasonCode;
use tokio::time::Instant;

use super::Broker;
use super::message::{Delivery, Message};
use super::remote::GroupOffer;
use super::router::RouteResult;
use super::session::{
    Attachment, ConnControl, EnqueueContext, InflightState, PendingWill, Session,
};
use super::tenant::Tenant;
use super::timers::{TimerEntry, TimerKind};
use crate::store::{StoreOp, StoredWill};

/// What a CONNECT asks of the session layer.
#[derive(Debug)]
pub(crate) struct AttachRequest {
    /// Client identifier (already validated or assigned).
    pub(crate) client_id: ByteString,
    /// Clean Start / Clean Session.
    pub(crate) clean_start: bool,
    /// Session Expiry Interval to apply, seconds (already capped).
    pub(crate) expiry_secs: u32,
    /// The connection's will.
    pub(crate) will: Option<PendingWill>,
    /// The connection's wake/kick handle.
    pub(crate) control: Arc<ConnControl>,
    /// Who the connection authenticated as.
    pub(crate) principal: Arc<crate::access::Principal>,
    /// The clustered shape's fencing token for this client id (0 in `stratus dev`).
    pub(crate) token: u64,
}

/// A connection attached to a session.
#[derive(Debug)]
pub(crate) struct Attached {
    /// The session.
    pub(crate) session: Arc<Session>,
    /// The attachment generation.
    pub(crate) generation: u64,
    /// Session Present for CONNACK.
    pub(crate) session_present: bool,
}

/// How a connection ended, for the will.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Departure {
    /// DISCONNECT with reason 0x00 (or 3.1.1 DISCONNECT): the will is discarded.
    Normal,
    /// Anything else, including DISCONNECT 0x04: the will is published (after its delay).
    Abnormal,
}

impl Broker {
    /// Attaches a new connection to the session of `req.client_id`, creating, resuming or
    /// replacing it. Refused with 0x97 when the tenant's session cap is reached.
    pub(crate) fn attach(
        &self,
        tenant: &Arc<Tenant>,
        req: AttachRequest,
    ) -> Result<Attached, ReasonCode> {
        let mut wills = Vec::new();
        let mut redispatch = Vec::new();
        // Clustered shape: the will is registered in Redis for a reaper, should this edge die.
        let will_record = self
            .cluster()
            .and(req.will.as_ref())
            .map(|w| crate::cluster::WillRecord::encode(w, req.expiry_secs, None));
        let mut replaced_will_id = None;
        let attached = {
            let mut sessions = tenant.sessions.lock();
            // Checked under the session lock, which the cluster's kick handler also takes: a
            // claim superseded by a connection on another edge never attaches.
            if let Some(link) = self.cluster()
                && !link
                    .ownership
                    .is_current(&tenant.id, &req.client_id, req.token)
            {
                return Err(ReasonCode::ServerBusy);
            }
            if self.cluster().is_some_and(|l| l.liveness.is_fenced()) {
                return Err(ReasonCode::ServerUnavailable);
            }
            let token = req.token;
            let existing = sessions.get(&req.client_id).cloned();
            let mut resumed = None;
            if let Some(old) = existing {
                let mut st = old.state.lock();
                // A session without expiry lives exactly as long as its connection: taking the
                // connection over ends it, so it is never resumed ([MQTT-3.1.2-6], 5.0 section
                // 3.1.2.11.2).
                let mut ended_with_connection = false;
                if let Some(previous) = st.attachment.take() {
                    previous.control.kick(ReasonCode::SessionTakenOver);
                    tracing::info!(
                        tenant = %tenant.id,
                        client_id = %req.client_id,
                        "session taken over by a new connection; the old connection is closed"
                    );
                    ended_with_connection = !st.is_persistent();
                    // The old connection closed without DISCONNECT: its will goes out now unless
                    // it has a delay, which this new connection cancels ([MQTT-3.1.3-9]) -- but
                    // not when its session ends here, which publishes it.
                    if let Some(w) = st.will.take()
                        && (w.delay_secs == 0 || ended_with_connection)
                    {
                        wills.push(*w);
                    }
                } else {
                    // A delayed will of an offline session is cancelled by reconnecting.
                    st.will = None;
                }
                if req.clean_start || st.ended || ended_with_connection {
                    drop(st);
                    redispatch = self.discard(tenant, &old);
                    sessions.remove(&req.client_id);
                } else {
                    drop(st);
                    resumed = Some(old);
                }
            }
            let session_present = resumed.is_some();
            let session = match resumed {
                Some(s) => s,
                None => {
                    if sessions.len() >= self.config.limits.max_sessions_per_tenant {
                        tracing::warn!(
                            tenant = %tenant.id,
                            sessions = sessions.len(),
                            "connection refused: the tenant's session cap is reached \
                             (limits.max_sessions_per_tenant)"
                        );
                        return Err(ReasonCode::QuotaExceeded);
                    }
                    let s = Arc::new(Session::new(
                        self.next_session_id(),
                        tenant.id.clone(),
                        req.client_id,
                        req.expiry_secs,
                    ));
                    sessions.insert(Arc::clone(&s));
                    s
                }
            };
            let generation = {
                let mut st = session.state.lock();
                st.generation += 1;
                st.attachment = Some(Attachment {
                    control: Arc::clone(&req.control),
                    principal: Arc::clone(&req.principal),
                });
                st.username = req.principal.username.as_deref().map(Box::from);
                st.expiry_secs = req.expiry_secs;
                st.offline_since = None;
                st.will = req.will.map(Box::new);
                if st.is_persistent() {
                    st.stored = true;
                    self.store.submit(StoreOp::UpsertSession {
                        tenant: tenant.id.clone(),
                        client_id: session.client_id.clone(),
                        expiry_secs: st.expiry_secs,
                        next_packet_id: st.last_packet_id,
                    });
                    self.store.submit(StoreOp::SetOffline {
                        tenant: tenant.id.clone(),
                        client_id: session.client_id.clone(),
                        disconnected_at_ms: None,
                        will: None,
                    });
                } else if st.stored {
                    // Resumed with a zero expiry: the session now ends with this connection and
                    // is no longer kept on disk.
                    st.stored = false;
                    self.store.submit(StoreOp::DeleteSession {
                        tenant: tenant.id.clone(),
                        client_id: session.client_id.clone(),
                    });
                }
                st.generation
            };
            if let Some(link) = self.cluster() {
                link.ownership.attached(
                    &tenant.id,
                    &session.client_id,
                    token,
                    session.id,
                    generation,
                );
                replaced_will_id = link.liveness.wills.attached(
                    &tenant.id,
                    &session.client_id,
                    token,
                    will_record,
                );
            }
            Attached {
                session,
                generation,
                session_present,
            }
        };
        for will in wills {
            self.publish_will_as(tenant, &will, replaced_will_id.clone());
        }
        self.redispatch(tenant, None, redispatch);
        // Clustered shape: a persistent session reads its QoS 1/2 messages from the stream.
        let persistent = attached.session.state.lock().is_persistent();
        if let Some(link) = self.cluster()
            && persistent
            && link
                .sessions
                .bind_new(&tenant.id, &attached.session.client_id, attached.session.id)
        {
            link.start_reader(tenant, &attached.session, attached.generation);
        }
        Ok(attached)
    }

    /// Detaches connection `generation` from `session` when it closes. Does nothing if that
    /// connection was already replaced. `expiry_override` is a 5.0 DISCONNECT's Session Expiry.
    pub(crate) fn detach(
        &self,
        tenant: &Arc<Tenant>,
        session: &Arc<Session>,
        generation: u64,
        departure: Departure,
        expiry_override: Option<u32>,
        now: Instant,
    ) {
        let mut wills = Vec::new();
        let mut will_id = None;
        let redispatch;
        {
            let mut sessions = tenant.sessions.lock();
            let mut st = session.state.lock();
            if !st.is_attached(generation) {
                return;
            }
            st.attachment = None;
            // Nothing drains an offline session: publishers must not wait for it.
            st.release_publishers();
            st.offline_since = Some(now);
            if let Some(expiry) = expiry_override {
                st.expiry_secs = expiry;
            }
            let will = st.will.take().filter(|_| departure == Departure::Abnormal);
            if !st.is_persistent() {
                if let Some(link) = self.cluster() {
                    will_id = link.liveness.wills.detached(&tenant.id, &session.client_id);
                }
                if let Some(w) = will {
                    wills.push(*w);
                }
                drop(st);
                redispatch = self.discard(tenant, session);
                if sessions
                    .get(&session.client_id)
                    .is_some_and(|s| Arc::ptr_eq(s, session))
                {
                    sessions.remove(&session.client_id);
                }
                if let Some(link) = self.cluster()
                    && let Some((key, token)) = link.ownership.released(
                        &tenant.id,
                        &session.client_id,
                        session.id,
                        generation,
                        false,
                    )
                {
                    let link = Arc::clone(link);
                    tokio::spawn(async move { link.ownership.delete_record(key, token).await });
                }
            } else {
                drop(sessions);
                if let Some(link) = self.cluster() {
                    // Held here offline: a connection on another edge asks for it first.
                    link.ownership.released(
                        &tenant.id,
                        &session.client_id,
                        session.id,
                        generation,
                        true,
                    );
                    link.sessions
                        .stop_reader(&tenant.id, &session.client_id, session.id);
                }
                let expiry = Duration::from_secs(u64::from(st.expiry_secs));
                let mut stored_will = None;
                if let Some(w) = will {
                    if w.delay_secs == 0 {
                        will_id = self.forget_will_registration(&tenant.id, &session.client_id);
                        wills.push(*w);
                    } else {
                        let delay = Duration::from_secs(u64::from(w.delay_secs)).min(expiry);
                        let due_at_ms = super::persist::instant_to_unix_ms(now + delay);
                        if let Some(link) = self.cluster() {
                            // Should this edge die before it is due, a reaper keeps the time.
                            link.liveness.wills.delay_started(
                                &tenant.id,
                                &session.client_id,
                                crate::cluster::WillRecord::encode(
                                    &w,
                                    st.expiry_secs,
                                    Some(due_at_ms),
                                ),
                            );
                        }
                        stored_will = Some(StoredWill {
                            publish: super::persist::encode_message(
                                &w.msg,
                                w.msg.qos,
                                w.msg.retain,
                                &Default::default(),
                            ),
                            due_at_ms,
                            expiry_secs: w.expiry_secs,
                        });
                        st.will = Some(w);
                        self.timers.schedule(TimerEntry {
                            due: now + delay,
                            kind: TimerKind::Will,
                            tenant: Arc::clone(tenant),
                            session: Arc::clone(session),
                            generation,
                        });
                    }
                } else {
                    // A clean DISCONNECT, or no will: nothing for a reaper to publish.
                    self.forget_will_registration(&tenant.id, &session.client_id);
                }
                self.timers.schedule(TimerEntry {
                    due: now + expiry,
                    kind: TimerKind::Expiry,
                    tenant: Arc::clone(tenant),
                    session: Arc::clone(session),
                    generation,
                });
                self.persist_offline(tenant, session, &mut st, stored_will);
                redispatch = take_shared(&mut st);
                for d in redispatch.iter().filter(|d| d.seq != 0) {
                    self.store.submit(StoreOp::DeleteMessage {
                        tenant: tenant.id.clone(),
                        client_id: session.client_id.clone(),
                        seq: d.seq,
                    });
                }
            }
        }
        for will in wills {
            self.publish_will_as(tenant, &will, will_id.clone());
        }
        self.redispatch(tenant, Some(session), redispatch);
    }

    /// Records an offline session in the store: its offline time, its pending will, and the
    /// packet ids of in-flight messages (so a resumed session resends with the original ids).
    fn persist_offline(
        &self,
        tenant: &Tenant,
        session: &Session,
        st: &mut super::session::SessionState,
        will: Option<StoredWill>,
    ) {
        self.store.submit(StoreOp::UpsertSession {
            tenant: tenant.id.clone(),
            client_id: session.client_id.clone(),
            expiry_secs: st.expiry_secs,
            next_packet_id: st.last_packet_id,
        });
        for inflight in st
            .inflight
            .iter_mut()
            .filter(|i| !i.state_persisted && i.delivery.seq != 0)
        {
            inflight.state_persisted = true;
            self.store.submit(StoreOp::UpdateMessage {
                tenant: tenant.id.clone(),
                client_id: session.client_id.clone(),
                seq: inflight.delivery.seq,
                packet_id: inflight.packet_id.get(),
                state: inflight.state.stored(),
            });
        }
        self.store.submit(StoreOp::SetOffline {
            tenant: tenant.id.clone(),
            client_id: session.client_id.clone(),
            disconnected_at_ms: Some(super::persist::unix_ms_now()),
            will,
        });
    }

    /// Ends a session: marks it ended, removes its subscriptions, deletes its stored state, and
    /// returns the shared-subscription deliveries that should go to another member. The caller
    /// removes it from the tenant's session map.
    pub(crate) fn discard(&self, tenant: &Tenant, session: &Arc<Session>) -> Vec<Delivery> {
        let (subscriptions, leftovers, stored) = {
            let mut st = session.state.lock();
            st.ended = true;
            st.release_publishers();
            st.will = None;
            let subs = std::mem::take(&mut st.subscriptions);
            let leftovers = take_shared(&mut st);
            st.pending.clear();
            st.inflight.clear();
            st.qos0.clear();
            st.queued_bytes = 0;
            st.incoming_qos2.clear();
            (subs, leftovers, std::mem::take(&mut st.stored))
        };
        for sub in &subscriptions {
            self.unindex_subscription(tenant, session, sub);
        }
        if stored {
            self.store.submit(StoreOp::DeleteSession {
                tenant: tenant.id.clone(),
                client_id: session.client_id.clone(),
            });
        }
        if let Some(link) = self.cluster() {
            link.sessions
                .stop_reader(&tenant.id, &session.client_id, session.id);
            if let Some((key, token)) =
                link.ownership
                    .ended(&tenant.id, &session.client_id, session.id)
            {
                let link = Arc::clone(link);
                tokio::spawn(async move { link.ownership.delete_record(key, token).await });
            }
        }
        leftovers
    }

    /// Sends shared-subscription deliveries taken from a departing member to other members. Any
    /// that no other attached member takes go back to `origin` (if it still exists).
    fn redispatch(
        &self,
        tenant: &Tenant,
        origin: Option<&Arc<Session>>,
        deliveries: Vec<Delivery>,
    ) {
        if deliveries.is_empty() {
            return;
        }
        let mut ctx = self.enqueue_context();
        let mut result = RouteResult::default();
        let mut unplaced = Vec::new();
        for d in deliveries {
            // A share group's message held for JetStream goes back to it (dropping `d` hands
            // it back), to be redelivered to a member on any edge.
            if d.settle.is_some() {
                continue;
            }
            let Some(group) = d.group.clone() else {
                continue;
            };
            ctx.compacted = None;
            let placed = self.dispatch_shared_online(
                tenant,
                &group,
                &d.msg,
                origin.map(|s| s.id),
                &mut ctx,
                &mut result,
            );
            if !placed {
                unplaced.push(d);
            }
        }
        if let Some(session) = origin {
            let mut st = session.state.lock();
            for mut d in unplaced.into_iter().rev() {
                if st.ended {
                    break;
                }
                if d.seq != 0 {
                    // Its store record was deleted when it was taken out; write it again.
                    d.seq = st.next_seq;
                    st.next_seq += 1;
                    self.store.submit(StoreOp::PutMessage {
                        tenant: tenant.id.clone(),
                        client_id: session.client_id.clone(),
                        message: super::persist::stored_message(&d, None, 0),
                        stream_seq: None,
                    });
                }
                st.queued_bytes += d.msg.weight();
                st.pending.push_front(d);
            }
        }
    }

    /// Like `dispatch_shared`, but only to members whose connection is attached.
    fn dispatch_shared_online(
        &self,
        tenant: &Tenant,
        group: &Arc<super::shared::SharedGroup>,
        msg: &Arc<Message>,
        exclude: Option<u64>,
        ctx: &mut EnqueueContext<'_>,
        result: &mut RouteResult,
    ) -> bool {
        let any_online = group
            .candidates(exclude)
            .first()
            .is_some_and(|m| m.session.state.lock().attachment.is_some());
        any_online
            && !matches!(
                self.dispatch_shared(tenant, group, msg, exclude, None, ctx, result),
                GroupOffer::Unplaced
            )
    }

    /// Acts on the deadlines that are due.
    pub(crate) fn fire_timers(&self, now: Instant) {
        for entry in self.timers.take_due(now) {
            let TimerEntry {
                kind,
                tenant,
                session,
                generation,
                ..
            } = entry;
            match kind {
                TimerKind::Will => {
                    let (will, will_id) = {
                        let mut st = session.state.lock();
                        if st.attachment.is_some() || st.generation != generation || st.ended {
                            continue;
                        }
                        let will = st.will.take();
                        let id = will.as_ref().and_then(|_| {
                            self.forget_will_registration(&tenant.id, &session.client_id)
                        });
                        (will, id)
                    };
                    if let Some(w) = will {
                        self.store.submit(StoreOp::SetOffline {
                            tenant: tenant.id.clone(),
                            client_id: session.client_id.clone(),
                            disconnected_at_ms: Some(super::persist::unix_ms_now()),
                            will: None,
                        });
                        self.publish_will_as(&tenant, &w, will_id);
                    }
                }
                TimerKind::Expiry => {
                    let (will, will_id, redispatch) = {
                        let mut sessions = tenant.sessions.lock();
                        let (will, will_id) = {
                            let mut st = session.state.lock();
                            if st.attachment.is_some() || st.generation != generation || st.ended {
                                continue;
                            }
                            let id = self.forget_will_registration(&tenant.id, &session.client_id);
                            (st.will.take(), id)
                        };
                        tracing::debug!(tenant = %tenant.id, client_id = %session.client_id, "session expired");
                        let redispatch = self.discard(&tenant, &session);
                        if sessions
                            .get(&session.client_id)
                            .is_some_and(|s| Arc::ptr_eq(s, &session))
                        {
                            sessions.remove(&session.client_id);
                        }
                        (will, will_id, redispatch)
                    };
                    // The session ended: a will still waiting for its delay goes out now.
                    if let Some(w) = will {
                        self.publish_will_as(&tenant, &w, will_id);
                    }
                    self.redispatch(&tenant, None, redispatch);
                }
            }
        }
    }
}

/// Takes the shared-subscription deliveries a departing member has not completed: queued ones,
/// and QoS 1 ones in flight. A QoS 2 message already sent stays with its session
/// ([MQTT-4.8.2-4], [MQTT-4.8.2-5]).
fn take_shared(st: &mut super::session::SessionState) -> Vec<Delivery> {
    let mut out = Vec::new();
    if st.pending.iter().any(|d| d.group.is_some()) {
        let mut keep = std::collections::VecDeque::with_capacity(st.pending.len());
        for d in st.pending.take() {
            if d.group.is_some() {
                st.queued_bytes = st.queued_bytes.saturating_sub(d.msg.weight());
                out.push(d);
            } else {
                keep.push_back(d);
            }
        }
        st.pending = keep.into();
    }
    let redispatchable = |i: &super::session::Inflight| {
        i.delivery.group.is_some() && i.state == InflightState::Qos1Sent
    };
    if st.inflight.iter().any(redispatchable) {
        let mut keep = std::collections::VecDeque::with_capacity(st.inflight.len());
        for i in st.inflight.take() {
            if redispatchable(&i) {
                out.push(i.delivery);
            } else {
                keep.push_back(i);
            }
        }
        st.inflight = keep.into();
    }
    out
}
