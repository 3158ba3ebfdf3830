//! Routing one published message: update the retained store, find every matching subscription in
//! the tenant's index, merge overlapping subscriptions of one session into one delivery (highest
//! QoS, every subscription identifier), pick one member per shared group, and enqueue.

use std::cell::RefCell;
use std::sync::Arc;

use stratus_codec::{QoS, ReasonCode};

use super::Broker;
use super::message::{Delivery, Message, SubscriptionIds};
use super::remote::GroupOffer;
use super::retained::RetainRefused;
use super::session::{ConnControl, EnqueueContext, EnqueueOutcome, SessionId};
use super::shared::SharedGroup;
use super::tenant::{IndexEntry, Subscriber, Tenant, TenantStats};
use crate::store::{StoreOp, Ticket};

thread_local! {
    /// Reused match buffer: routing allocates nothing per message in the steady state.
    static MATCHES: RefCell<Vec<(Subscriber, IndexEntry)>> = const { RefCell::new(Vec::new()) };
}

/// What routing did with a message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct RouteResult {
    /// Store ticket covering every durable effect (0 if none).
    pub(crate) ticket: Ticket,
    /// Sessions the message was queued to.
    pub(crate) matched: usize,
    /// Some subscriber's queue is congested: the publisher should pause until woken.
    pub(crate) congested: bool,
}

impl Broker {
    /// A context for enqueueing deliveries outside a publishing connection.
    pub(crate) fn enqueue_context(&self) -> EnqueueContext<'_> {
        EnqueueContext {
            limits: &self.config.limits,
            store: &self.store,
            compacted: None,
            publisher: None,
            stream_seq: None,
        }
    }

    /// Publishes `msg` in `tenant`: retained store first (refused with 0x97 when over quota), then
    /// every matching subscriber. `origin` is the publishing session (for No Local).
    pub(crate) fn publish(
        &self,
        tenant: &Tenant,
        msg: &Arc<Message>,
        origin: Option<SessionId>,
        publisher: Option<&Arc<ConnControl>>,
    ) -> Result<RouteResult, ReasonCode> {
        if let Some(link) = self.cluster() {
            return self.publish_cluster(link, tenant, msg, origin, publisher);
        }
        let mut ticket = 0;
        if msg.retain {
            ticket = self
                .retain(tenant, msg)
                .map_err(|RetainRefused::QuotaExceeded| {
                    tracing::warn!(
                        tenant = %tenant.id,
                        topic = %msg.topic,
                        "retained message refused: the tenant's retained quota is used up \
                         (limits.max_retained_messages / max_retained_bytes)"
                    );
                    ReasonCode::QuotaExceeded
                })?;
        }
        let routed = self.route(tenant, msg, origin, publisher);
        Ok(RouteResult {
            ticket: ticket.max(routed.ticket),
            ..routed
        })
    }

    /// The clustered shape: the retained store (local copy and Redis) as in the embedded shape,
    /// then the message goes to NATS; every edge (this one included) routes it to its own
    /// subscribers when it comes back. The ticket completes when JetStream acknowledged a QoS
    /// 1/2 message. Whether anyone subscribes is not known here, so 5.0 publishers always hear
    /// Success, never 0x10.
    fn publish_cluster(
        &self,
        link: &Arc<crate::cluster::ClusterLink>,
        tenant: &Tenant,
        msg: &Arc<Message>,
        origin: Option<SessionId>,
        publisher: Option<&Arc<ConnControl>>,
    ) -> Result<RouteResult, ReasonCode> {
        let mut ticket = 0;
        if msg.retain {
            ticket = self
                .retain(tenant, msg)
                .map_err(|RetainRefused::QuotaExceeded| ReasonCode::QuotaExceeded)?;
        }
        ticket = ticket.max(link.publish(&self.store, &tenant.id, msg, origin, publisher)?);
        Ok(RouteResult {
            ticket,
            matched: 1,
            congested: link.congested(publisher),
        })
    }

    /// Updates the retained store for a message with RETAIN set.
    fn retain(&self, tenant: &Tenant, msg: &Arc<Message>) -> Result<Ticket, RetainRefused> {
        let limits = &self.config.limits;
        let stored = if msg.payload.is_empty() {
            Arc::clone(msg)
        } else {
            msg.compacted()
        };
        let changed = tenant.retained.write().set(
            &stored,
            limits.max_retained_messages,
            limits.max_retained_bytes,
        )?;
        // $SYS values are regenerated at start-up; do not churn the store with them.
        if !changed || msg.topic.is_system() {
            return Ok(0);
        }
        let op = if msg.payload.is_empty() {
            StoreOp::DeleteRetained {
                tenant: tenant.id.clone(),
                topic: msg.topic.clone().into_inner(),
            }
        } else {
            StoreOp::PutRetained {
                tenant: tenant.id.clone(),
                topic: msg.topic.clone().into_inner(),
                publish: super::persist::encode_message(
                    &stored,
                    stored.qos,
                    true,
                    &SubscriptionIds::new(),
                ),
                expires_at_ms: stored.expires_at.map(super::persist::instant_to_unix_ms),
            }
        };
        Ok(self.store.submit(op))
    }

    /// Delivers `msg` to every matching subscriber of `tenant`.
    pub(crate) fn route(
        &self,
        tenant: &Tenant,
        msg: &Arc<Message>,
        origin: Option<SessionId>,
        publisher: Option<&Arc<ConnControl>>,
    ) -> RouteResult {
        let mut matches = MATCHES.with(|m| std::mem::take(&mut *m.borrow_mut()));
        tenant
            .subscriptions
            .read()
            .for_each_match(&msg.topic, |sub, entry| matches.push((sub.clone(), *entry)));
        if matches.len() > 1 {
            matches.sort_unstable_by_key(|(sub, _)| subscriber_order(sub));
        }
        let mut ctx = EnqueueContext {
            publisher,
            ..self.enqueue_context()
        };
        let mut result = RouteResult::default();
        let mut i = 0;
        while i < matches.len() {
            match &matches[i].0 {
                Subscriber::Group(group) => {
                    self.dispatch_shared(tenant, group, msg, None, None, &mut ctx, &mut result);
                    i += 1;
                }
                Subscriber::Session(session) => {
                    // Merge every subscription of this session that matched.
                    let mut qos: Option<QoS> = None;
                    let mut retain_as_published = false;
                    let mut ids = SubscriptionIds::new();
                    let mut j = i;
                    while j < matches.len() {
                        let (Subscriber::Session(s), entry) = &matches[j] else {
                            break;
                        };
                        if s.id != session.id {
                            break;
                        }
                        j += 1;
                        if entry.options.no_local && origin == Some(session.id) {
                            continue;
                        }
                        qos = Some(qos.map_or(entry.options.qos, |q| q.max(entry.options.qos)));
                        retain_as_published |= entry.options.retain_as_published;
                        if let Some(id) = entry.id {
                            ids.push(id);
                        }
                    }
                    if let Some(granted) = qos {
                        let delivery = Delivery {
                            msg: Arc::clone(msg),
                            qos: msg.qos.min(granted),
                            retain: msg.retain && retain_as_published,
                            subscription_ids: ids,
                            group: None,
                            settle: None,
                            seq: 0,
                        };
                        self.count_outcome(
                            tenant,
                            session.enqueue(delivery, &mut ctx),
                            &mut result,
                        );
                    }
                    i = j;
                }
            }
        }
        matches.clear();
        MATCHES.with(|m| *m.borrow_mut() = matches);
        result
    }

    /// Gives a message to one member of a shared group; `exclude` skips a member that is leaving.
    /// `settle` (a message of the group's durable consumer, clustered shape) goes with the
    /// delivery to a member whose session ends with its connection, at QoS 1/2.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn dispatch_shared(
        &self,
        tenant: &Tenant,
        group: &Arc<SharedGroup>,
        msg: &Arc<Message>,
        exclude: Option<SessionId>,
        settle: Option<&Arc<crate::cluster::StreamSettle>>,
        ctx: &mut EnqueueContext<'_>,
        result: &mut RouteResult,
    ) -> GroupOffer {
        for member in group.candidates(exclude) {
            let qos = msg.qos.min(member.options.qos);
            let settle = settle
                .filter(|_| qos != QoS::AtMostOnce && !member.session.state.lock().is_persistent());
            let delivery = Delivery {
                msg: Arc::clone(msg),
                qos,
                retain: msg.retain && member.options.retain_as_published,
                subscription_ids: member.id.into_iter().collect(),
                group: Some(Arc::clone(group)),
                settle: settle.cloned(),
                seq: 0,
            };
            let outcome = member.session.enqueue(delivery, ctx);
            self.count_outcome(tenant, outcome, result);
            match outcome {
                EnqueueOutcome::Skipped => {}
                EnqueueOutcome::Dropped => return GroupOffer::Unplaced,
                EnqueueOutcome::Queued { ticket, .. } => {
                    return if settle.is_some() {
                        GroupOffer::Held
                    } else {
                        GroupOffer::Stored(ticket)
                    };
                }
            }
        }
        GroupOffer::Unplaced
    }

    pub(super) fn count_outcome(
        &self,
        tenant: &Tenant,
        outcome: EnqueueOutcome,
        result: &mut RouteResult,
    ) {
        match outcome {
            EnqueueOutcome::Queued { ticket, congested } => {
                result.matched += 1;
                result.ticket = result.ticket.max(ticket);
                result.congested |= congested;
            }
            EnqueueOutcome::Dropped => TenantStats::add(&tenant.stats.messages_dropped, 1),
            EnqueueOutcome::Skipped => {}
        }
    }
}

/// Sort key that keeps one session's matches adjacent.
fn subscriber_order(sub: &Subscriber) -> (u8, u64) {
    match sub {
        Subscriber::Session(s) => (0, s.id),
        Subscriber::Group(g) => (1, Arc::as_ptr(g) as u64),
    }
}
