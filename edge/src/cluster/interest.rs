//! This edge's NATS subscriptions: one per (tenant, filter) that has local subscribers (two
//! subjects for a filter ending in `#`, which also matches its parent), and per (tenant, share
//! group) a queue subscription to its QoS 0 subjects plus a puller of its durable consumer for
//! QoS 1/2 (`shared_consumer.rs`), shared by every local member so each message goes to one edge
//! and then to one of its members. Reference-counted by the subscription index: the
//! first local subscriber subscribes, the last one leaving unsubscribes.
//!
//! Subscribing takes a store ticket that completes once NATS has the subscription (after a
//! flush), so the SUBACK waiting behind it is sent only when messages can arrive.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytestring::ByteString;
use futures_util::StreamExt;
use parking_lot::Mutex;
use stratus_model::TenantId;
use stratus_topics::{FilterSpec, QosClass};
use tokio::task::JoinHandle;

use super::{ClusterLink, wire};
use crate::broker::Via;
use crate::store::Ticket;

/// One subscription of this edge.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    tenant: TenantId,
    /// The filter as subscribed, with its `$share/<group>/` prefix when shared.
    raw: ByteString,
}

#[derive(Debug)]
struct Subscription {
    /// Local subscribers (sessions, or 1 for a share group's index entry).
    refs: usize,
    /// Completes once NATS has the subscription.
    ready: Ticket,
    /// A share group's puller stops when this is set.
    stop_pulling: Option<Arc<AtomicBool>>,
    task: JoinHandle<()>,
}

/// Every NATS subscription of this edge.
#[derive(Debug, Default)]
pub(crate) struct Interest {
    subs: Mutex<HashMap<Key, Subscription>>,
}

impl Interest {
    /// A local subscriber of `spec` (subscribed as `raw`) appeared; returns the ticket its
    /// SUBACK waits for.
    pub(crate) fn add(
        &self,
        link: &Arc<ClusterLink>,
        tenant: &TenantId,
        raw: &str,
        spec: &FilterSpec,
    ) -> Ticket {
        let key = Key {
            tenant: tenant.clone(),
            raw: ByteString::from(raw),
        };
        let mut subs = self.subs.lock();
        match subs.entry(key) {
            Entry::Occupied(mut e) => {
                e.get_mut().refs += 1;
                e.get().ready
            }
            Entry::Vacant(v) => {
                let Some(broker) = link.broker() else {
                    return 0;
                };
                let ready = broker.store.reserve();
                let stop_pulling = spec
                    .share
                    .as_ref()
                    .map(|_| Arc::new(AtomicBool::new(false)));
                let task = tokio::spawn(serve(
                    Arc::clone(link),
                    v.key().clone(),
                    spec.clone(),
                    ready,
                    stop_pulling.clone(),
                ));
                v.insert(Subscription {
                    refs: 1,
                    ready,
                    stop_pulling,
                    task,
                });
                ready
            }
        }
    }

    /// A local subscriber of `raw` left; the last one unsubscribes from NATS. A subscription
    /// stopped before NATS confirmed it still completes its ticket: the commit position must
    /// never wait for a subscription that no longer exists.
    pub(crate) fn remove(&self, store: &crate::store::Store, tenant: &TenantId, raw: &str) {
        let key = Key {
            tenant: tenant.clone(),
            raw: ByteString::from(raw),
        };
        let mut subs = self.subs.lock();
        if let Entry::Occupied(mut e) = subs.entry(key) {
            e.get_mut().refs -= 1;
            if e.get().refs == 0 {
                let sub = e.remove();
                if let Some(stop) = &sub.stop_pulling {
                    stop.store(true, Ordering::Release);
                }
                sub.task.abort();
                store.complete(sub.ready);
            }
        }
    }
}

/// Subscribes, reports readiness through `ready`, then routes every message into the broker.
async fn serve(
    link: Arc<ClusterLink>,
    key: Key,
    spec: FilterSpec,
    ready: Ticket,
    stop_pulling: Option<Arc<AtomicBool>>,
) {
    let Some(broker) = link.broker() else { return };
    let space = match link.space(&key.tenant) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(tenant = %key.tenant, "no subject space for the tenant: {e}");
            broker.store.complete(ready);
            return;
        }
    };
    let shared = spec.share.is_some();
    // A share group's QoS 1/2 messages come from its durable consumer, not from core NATS.
    let subjects = space.filter_subjects(&spec.filter, shared.then_some(QosClass::AtMostOnce));
    let queue = spec.share.as_ref().map(|_| {
        format!(
            "sg-{}",
            stratus_topics::client_key(key.tenant.as_str(), &key.raw)
        )
    });
    let mut streams = Vec::with_capacity(subjects.len());
    for subject in subjects {
        let subscribed = loop {
            let attempt = match &queue {
                Some(q) => link.nats.queue_subscribe(subject.clone(), q.clone()).await,
                None => link.nats.subscribe(subject.clone()).await,
            };
            match attempt {
                Ok(s) => break s,
                Err(e) => {
                    tracing::warn!(subject, "NATS subscription failed, retrying: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        };
        streams.push(subscribed);
    }
    while let Err(e) = link.barrier().await {
        tracing::warn!("NATS did not confirm the subscription, retrying: {e}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let consumer = if shared {
        loop {
            match link.group_consumer(&key.tenant, &key.raw, &spec).await {
                Ok(c) => break Some(c),
                Err(e) => {
                    tracing::warn!(tenant = %key.tenant, group = %key.raw, "share group consumer cannot be created, retrying: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    } else {
        None
    };
    broker.store.complete(ready);
    drop(broker);

    let tenant_id = key.tenant.clone();
    let via = match spec.share {
        Some(_) => Via::Group(key.raw.clone()),
        None => Via::Filter(key.raw.clone()),
    };
    // The puller is a task of its own: told to stop, it hands back what its last pull brought
    // instead of being cut off with messages JetStream would hold until `shared_ack_wait`.
    if let (Some(c), Some(stop)) = (consumer, stop_pulling) {
        tokio::spawn(super::shared_consumer::pull_group(
            Arc::clone(&link),
            key.tenant.clone(),
            key.raw.clone(),
            c,
            stop,
        ));
    }
    let mut merged = futures_util::stream::select_all(streams);
    while let Some(m) = merged.next().await {
        let Some(received) = wire::decode(&m.payload, m.headers.as_ref(), &link.incarnation) else {
            tracing::warn!(subject = %m.subject, "undecodable message from NATS skipped");
            continue;
        };
        let Some(broker) = link.broker() else { return };
        let tenant = broker.tenant(&tenant_id);
        broker.route_remote(&tenant, &received.msg, received.origin, &via);
    }
}
