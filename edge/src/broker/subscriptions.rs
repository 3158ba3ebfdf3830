//! Adding and removing subscriptions: the session's own list, the tenant's index, shared groups,
//! the store, and retained-message delivery for a new subscription (Retain Handling 0/1/2).

use std::sync::Arc;

use bytestring::ByteString;
use stratus_codec::{ReasonCode, RetainHandling};
use stratus_policy::Identity;
use stratus_topics::TopicName;
use tokio::time::Instant;

use super::Broker;
use super::message::Delivery;
use super::session::{Session, SessionSubscription};
use super::shared::{GroupMember, SharedGroup};
use super::tenant::{IndexEntry, Subscriber, Tenant};
use crate::store::{StoreOp, StoredSubscription, Ticket};

/// The outcome of adding one subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Subscribed {
    /// A subscription with the same filter already existed (it was replaced).
    pub(crate) existed: bool,
    /// Store ticket of the change (0 if not persisted).
    pub(crate) ticket: Ticket,
}

impl Broker {
    /// Adds (or replaces) one subscription of `session`. Refused with 0x97 when the session holds
    /// its maximum number of subscriptions.
    pub(crate) fn subscribe(
        &self,
        tenant: &Tenant,
        session: &Arc<Session>,
        generation: u64,
        sub: SessionSubscription,
    ) -> Result<Subscribed, ReasonCode> {
        let persistent;
        let existed;
        {
            let mut st = session.state.lock();
            if !st.is_attached(generation) {
                return Err(ReasonCode::SessionTakenOver);
            }
            persistent = st.stored;
            match st.subscriptions.iter_mut().find(|s| s.raw == sub.raw) {
                Some(slot) => {
                    *slot = sub.clone();
                    existed = true;
                }
                None => {
                    if st.subscriptions.len() >= self.config.limits.max_subscriptions_per_session {
                        return Err(ReasonCode::QuotaExceeded);
                    }
                    st.add_subscription(sub.clone());
                    existed = false;
                }
            }
        }
        let ready = self.index_subscription(tenant, session, &sub);
        let ticket = if persistent {
            self.store.submit(StoreOp::PutSubscription {
                tenant: tenant.id.clone(),
                client_id: session.client_id.clone(),
                subscription: stored_subscription(&sub),
            })
        } else {
            0
        };
        Ok(Subscribed {
            existed,
            ticket: ticket.max(ready),
        })
    }

    /// Puts a session's subscription into the tenant index (or its shared group). In the
    /// clustered shape, the first local subscriber of a filter (or group) subscribes on NATS:
    /// the returned ticket completes once it has.
    pub(crate) fn index_subscription(
        &self,
        tenant: &Tenant,
        session: &Arc<Session>,
        sub: &SessionSubscription,
    ) -> Ticket {
        let Some(spec) = sub.spec() else { return 0 };
        let entry = IndexEntry {
            options: sub.options,
            id: sub.id,
        };
        let mut ready = 0;
        match &spec.share {
            None => {
                let new = tenant
                    .subscriptions
                    .write()
                    .insert(
                        &spec.filter,
                        Subscriber::Session(Arc::clone(session)),
                        entry,
                    )
                    .is_none();
                if new && let Some(link) = self.cluster() {
                    ready = link.interest.add(link, &tenant.id, &sub.raw, &spec);
                }
            }
            Some(_) => {
                let mut groups = tenant.shared_groups.lock();
                let group = groups
                    .entry(sub.filter())
                    .or_insert_with(|| {
                        let group = Arc::new(SharedGroup::new());
                        tenant.subscriptions.write().insert(
                            &spec.filter,
                            Subscriber::Group(Arc::clone(&group)),
                            entry,
                        );
                        if let Some(link) = self.cluster() {
                            ready = link.interest.add(link, &tenant.id, &sub.raw, &spec);
                        }
                        group
                    })
                    .clone();
                group.upsert(GroupMember {
                    session: Arc::clone(session),
                    options: sub.options,
                    id: sub.id,
                });
            }
        }
        ready
    }

    /// Removes one subscription; returns whether it existed and the store ticket.
    pub(crate) fn unsubscribe(
        &self,
        tenant: &Tenant,
        session: &Arc<Session>,
        generation: u64,
        raw: &str,
    ) -> (bool, Ticket) {
        if !session.state.lock().is_attached(generation) {
            return (false, 0);
        }
        self.remove_subscription(tenant, session, raw)
    }

    /// Removes one subscription whoever asks (the client, or a rule change).
    pub(crate) fn remove_subscription(
        &self,
        tenant: &Tenant,
        session: &Arc<Session>,
        raw: &str,
    ) -> (bool, Ticket) {
        let removed = {
            let mut st = session.state.lock();
            let pos = st.subscriptions.iter().position(|s| &*s.raw == raw);
            pos.map(|p| (st.remove_subscription_at(p), st.stored))
        };
        let Some((sub, persistent)) = removed else {
            return (false, 0);
        };
        self.unindex_subscription(tenant, session, &sub);
        let ticket = if persistent {
            self.store.submit(StoreOp::DeleteSubscription {
                tenant: tenant.id.clone(),
                client_id: session.client_id.clone(),
                filter: sub.filter(),
            })
        } else {
            0
        };
        (true, ticket)
    }

    /// Removes a session's subscription from the tenant index (or its shared group).
    pub(crate) fn unindex_subscription(
        &self,
        tenant: &Tenant,
        session: &Arc<Session>,
        sub: &SessionSubscription,
    ) {
        let Some(spec) = sub.spec() else { return };
        match &spec.share {
            None => {
                let removed = tenant
                    .subscriptions
                    .write()
                    .remove(&spec.filter, &Subscriber::Session(Arc::clone(session)))
                    .is_some();
                if removed && let Some(link) = self.cluster() {
                    link.interest.remove(&self.store, &tenant.id, &sub.raw);
                }
            }
            Some(_) => {
                let mut groups = tenant.shared_groups.lock();
                if let Some(group) = groups.get(&*sub.raw).cloned()
                    && group.remove(session.id)
                {
                    groups.remove(&*sub.raw);
                    tenant
                        .subscriptions
                        .write()
                        .remove(&spec.filter, &Subscriber::Group(group));
                    if let Some(link) = self.cluster() {
                        link.interest.remove(&self.store, &tenant.id, &sub.raw);
                    }
                }
            }
        }
    }

    /// Queues the retained messages matching a new subscription, as its Retain Handling asks.
    /// Shared subscriptions never receive retained messages ([MQTT-4.8.2-?], section 4.8.2).
    pub(crate) fn deliver_retained(
        &self,
        tenant: &Tenant,
        session: &Session,
        sub: &SessionSubscription,
        existed: bool,
        now: Instant,
    ) {
        let Some(spec) = sub.spec() else { return };
        if spec.share.is_some() {
            return;
        }
        match sub.options.retain_handling {
            RetainHandling::DoNotSend => return,
            RetainHandling::SendIfNew if existed => return,
            _ => {}
        }
        let mut found = Vec::new();
        let mut expired: Vec<TopicName> = Vec::new();
        tenant
            .retained
            .read()
            .matching(&spec.filter, now, &mut found, &mut expired);
        if !expired.is_empty() {
            let mut retained = tenant.retained.write();
            for topic in &expired {
                retained.clear(topic);
            }
            drop(retained);
            for topic in expired {
                self.store.submit(StoreOp::DeleteRetained {
                    tenant: tenant.id.clone(),
                    topic: topic.into_inner(),
                });
            }
        }
        let mut ctx = self.enqueue_context();
        for msg in found {
            let delivery = Delivery {
                qos: msg.qos.min(sub.options.qos),
                retain: true,
                subscription_ids: sub.id.into_iter().collect(),
                group: None,
                settle: None,
                seq: 0,
                msg,
            };
            // The message is already compact (the retained store keeps compact copies).
            ctx.compacted = Some(Arc::clone(&delivery.msg));
            session.enqueue(delivery, &mut ctx);
        }
    }
}

impl Broker {
    /// Re-checks every subscription of every session of `tenant` against its current access
    /// rules and removes those no longer allowed. Returns how many were removed.
    pub(crate) fn recheck_subscriptions(&self, tenant: &Tenant) -> usize {
        let sessions: Vec<Arc<Session>> = tenant.sessions.lock().values().cloned().collect();
        sessions
            .iter()
            .map(|s| self.recheck_session(tenant, s))
            .sum()
    }

    /// Re-checks one session's subscriptions (also when a persistent session resumes: its
    /// stored subscriptions are checked against the rules of now).
    pub(crate) fn recheck_session(&self, tenant: &Tenant, session: &Arc<Session>) -> usize {
        let access = tenant.access.load_full();
        let mut removed = 0;
        {
            let denied: Vec<ByteString> = {
                let st = session.state.lock();
                let grants = st
                    .attachment
                    .as_ref()
                    .and_then(|a| a.principal.grants.clone());
                let who = Identity {
                    tenant: tenant.id.as_str(),
                    client_id: &session.client_id,
                    username: st.username.as_deref(),
                };
                st.subscriptions
                    .iter()
                    .filter(|sub| {
                        sub.spec().is_none_or(|spec| {
                            !crate::access::may_subscribe(
                                &access,
                                grants.as_deref(),
                                &who,
                                &spec.filter,
                            )
                            .is_allowed()
                        })
                    })
                    .map(|sub| sub.filter())
                    .collect()
            };
            for raw in denied {
                if self.remove_subscription(tenant, session, &raw).0 {
                    tracing::info!(
                        tenant = %tenant.id,
                        client_id = %session.client_id,
                        filter = %raw,
                        "subscription removed: the access rules no longer allow it"
                    );
                    removed += 1;
                }
            }
        }
        removed
    }
}

/// The store form of a subscription.
pub(crate) fn stored_subscription(sub: &SessionSubscription) -> StoredSubscription {
    let o = sub.options;
    let options = o.qos.as_u8()
        | (u8::from(o.no_local) << 2)
        | (u8::from(o.retain_as_published) << 3)
        | ((o.retain_handling as u8) << 4);
    StoredSubscription {
        filter: sub.filter(),
        options,
        subscription_id: sub.id.map(|i| i.get()),
    }
}
