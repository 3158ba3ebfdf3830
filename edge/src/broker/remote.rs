//! Routing a message that arrived from the cluster backbone. NATS delivers one copy per
//! subscription of this edge, so a message matching several local filters arrives several
//! times: each session takes it from exactly one of them, the smallest (as a string) of its own
//! matching filters, and gets one delivery with the highest QoS and every subscription
//! identifier of its matching subscriptions, as in the embedded shape. Share groups receive
//! messages only through their own queue subscription.

use std::sync::Arc;

use bytestring::ByteString;
use stratus_codec::QoS;
use stratus_topics::{TopicFilter, TopicName};

use super::Broker;
use super::message::{Delivery, Message, SubscriptionIds};
use super::router::RouteResult;
use super::session::{EnqueueContext, Session, SessionId};
use super::tenant::{Subscriber, Tenant};

/// Which NATS subscription a message came through.
#[derive(Debug, Clone)]
pub(crate) enum Via {
    /// The subscription of this (non-shared) filter.
    Filter(ByteString),
    /// The queue subscription of this share group (`$share/<group>/<filter>`).
    Group(ByteString),
}

impl Broker {
    /// Delivers a message from the backbone to the local subscribers it is meant for.
    pub(crate) fn route_remote(
        &self,
        tenant: &Tenant,
        msg: &Arc<Message>,
        origin: Option<SessionId>,
        via: &Via,
    ) -> RouteResult {
        let mut ctx = EnqueueContext {
            limits: &self.config.limits,
            store: &self.store,
            compacted: None,
            publisher: None,
        };
        let mut result = RouteResult::default();
        match via {
            Via::Group(raw) => {
                let group = tenant.shared_groups.lock().get(&**raw).cloned();
                if let Some(group) = group {
                    self.dispatch_shared(tenant, &group, msg, None, &mut ctx, &mut result);
                }
            }
            Via::Filter(filter) => {
                let mut matches = Vec::new();
                tenant
                    .subscriptions
                    .read()
                    .for_each_match(&msg.topic, |sub, entry| {
                        if let Subscriber::Session(s) = sub {
                            matches.push((Arc::clone(s), *entry));
                        }
                    });
                matches.sort_unstable_by_key(|(s, _)| s.id);
                let mut i = 0;
                while i < matches.len() {
                    let session = Arc::clone(&matches[i].0);
                    let mut j = i;
                    let mut qos: Option<QoS> = None;
                    let mut retain_as_published = false;
                    let mut ids = SubscriptionIds::new();
                    while j < matches.len() && matches[j].0.id == session.id {
                        let entry = &matches[j].1;
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
                    let single = j - i == 1;
                    i = j;
                    let Some(granted) = qos else { continue };
                    if !takes_via(&session, &msg.topic, filter, single) {
                        continue;
                    }
                    let delivery = Delivery {
                        msg: Arc::clone(msg),
                        qos: msg.qos.min(granted),
                        retain: msg.retain && retain_as_published,
                        subscription_ids: ids,
                        group: None,
                        seq: 0,
                    };
                    let outcome = session.enqueue(delivery, &mut ctx);
                    self.count_outcome(tenant, outcome, &mut result);
                }
            }
        }
        result
    }
}

/// Whether `session` takes a message on `topic` from the copy that came through `via`: `via` is
/// the smallest of the session's own non-shared filters matching the topic.
fn takes_via(session: &Session, topic: &TopicName, via: &str, single: bool) -> bool {
    let st = session.state.lock();
    let mut smallest: Option<&str> = None;
    let mut matching = 0;
    for sub in st.subscriptions.iter() {
        let raw = &*sub.raw;
        if raw.starts_with("$share/") {
            continue;
        }
        let matches =
            raw == via || TopicFilter::new(ByteString::from(raw)).is_ok_and(|f| f.matches(topic));
        if matches {
            matching += 1;
            smallest = Some(smallest.map_or(raw, |s| s.min(raw)));
            // One matching subscription, and it is `via`: nothing else to compare.
            if single && raw == via {
                return true;
            }
        }
    }
    matching > 0 && smallest == Some(via)
}
