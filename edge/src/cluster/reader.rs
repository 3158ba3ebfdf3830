//! The JetStream reader of one attached persistent session: an ordered consumer (ephemeral,
//! one replica, in memory, no acknowledgements; async-nats recreates it on a sequence gap) on
//! the pool's message stream, filtered to the session's QoS 1/2 subscriptions and starting after
//! the session's read position. Each message is offered to the session alone
//! (`Broker::offer_from_stream`), which queues (and persists, moving the position in Redis) one
//! delivery with the highest granted QoS and every subscription identifier.
//!
//! A reader runs only while the session is attached: messages published while it is offline
//! wait in the stream and are read when it resumes, on whichever edge. The reader pauses while
//! the session's queue is above half its limit (it is woken when the queue drains), so a slow
//! client holds messages back in the stream rather than losing them. A subscription change
//! restarts the reader from its position; a new subscription's messages start after the stream
//! sequence it was made at.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream::consumer::{DeliverPolicy, pull::OrderedConfig};
use futures_util::StreamExt;
use stratus_codec::{QoS, SubscriptionOptions};
use stratus_topics::{QosClass, TopicFilter};

use stratus_model::TenantId;

use super::sessions::ReaderStart;
use super::{ClusterLink, wire};
use crate::broker::{ConnControl, Offer, Session, Tenant};

/// How long a catch-up waits for the next backlog message before leaving the rest to the reader.
const CATCH_UP_IDLE: Duration = Duration::from_secs(2);

/// Most filter subjects one consumer gets; more, and it reads the tenant's whole QoS 1/2 stream.
const MAX_FILTER_SUBJECTS: usize = 64;

/// One non-shared subscription of the session, as the reader matches it.
#[derive(Debug)]
pub(crate) struct ReaderSub {
    /// The filter.
    pub(crate) filter: TopicFilter,
    /// Options granted.
    pub(crate) options: SubscriptionOptions,
    /// Subscription identifier.
    pub(crate) id: Option<NonZeroU32>,
    /// Messages at or below this stream sequence predate the subscription.
    pub(crate) since: u64,
}

impl ClusterLink {
    /// Starts (or restarts, or stops when it has no QoS 1/2 subscription) the reader of an
    /// attached persistent session this edge holds.
    pub(crate) fn start_reader(
        self: &Arc<Self>,
        tenant: &Arc<Tenant>,
        session: &Arc<Session>,
        generation: u64,
    ) {
        let Some(start) = self
            .sessions
            .reader_start(&tenant.id, &session.client_id, session.id)
        else {
            return;
        };
        let subs = {
            let st = session.state.lock();
            if !st.is_attached(generation) {
                return;
            }
            reader_subs(&st, &start)
        };
        if !subs.iter().any(|s| s.options.qos != QoS::AtMostOnce) {
            self.sessions
                .stop_reader(&tenant.id, &session.client_id, session.id);
            return;
        }
        let Some(subjects) = self.reader_subjects(&tenant.id, &subs) else {
            return;
        };
        let task = tokio::spawn(run(
            Arc::clone(self),
            Arc::clone(tenant),
            Arc::clone(session),
            generation,
            subs,
            subjects,
            start.position,
        ));
        self.sessions
            .set_reader(&tenant.id, &session.client_id, session.id, task);
    }
}

/// Reads the stream for one session until it detaches (or the task is stopped).
#[allow(clippy::too_many_arguments)]
async fn run(
    link: Arc<ClusterLink>,
    tenant: Arc<Tenant>,
    session: Arc<Session>,
    generation: u64,
    subs: Vec<ReaderSub>,
    subjects: Vec<String>,
    position: Arc<AtomicU64>,
) {
    let waiter = Arc::new(ConnControl::default());
    let js = async_nats::jetstream::new(link.nats.clone());
    let stream_name = super::publisher::stream_name(&link.settings.pool);
    let mut backoff = Duration::from_millis(100);
    loop {
        let start = position.load(Ordering::Acquire).saturating_add(1);
        let config = ordered_config(start, &subjects);
        let messages = async {
            let stream = js
                .get_stream(&stream_name)
                .await
                .map_err(|e| e.to_string())?;
            let consumer = stream
                .create_consumer(config)
                .await
                .map_err(|e| e.to_string())?;
            consumer.messages().await.map_err(|e| e.to_string())
        }
        .await;
        let mut messages = match messages {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(tenant = %tenant.id, client_id = %session.client_id, "session reader cannot start, retrying: {e}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        backoff = Duration::from_millis(100);
        while let Some(item) = messages.next().await {
            let m = match item {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(tenant = %tenant.id, client_id = %session.client_id, "session reader interrupted, restarting from its position: {e}");
                    break;
                }
            };
            let Ok(seq) = m.info().map(|i| i.stream_sequence) else {
                continue;
            };
            if seq <= position.load(Ordering::Acquire) {
                continue;
            }
            let Some(received) = wire::decode(&m.payload, m.headers.as_ref(), &link.incarnation)
            else {
                tracing::warn!(subject = %m.subject, "undecodable message in the stream skipped");
                position.store(seq, Ordering::Release);
                continue;
            };
            let Some(broker) = link.broker() else { return };
            loop {
                match broker.offer_from_stream(
                    &tenant,
                    &session,
                    Some(generation),
                    &received.msg,
                    received.origin,
                    seq,
                    &subs,
                    &waiter,
                ) {
                    Offer::Queued | Offer::NotForSession => {
                        position.store(seq, Ordering::Release);
                        break;
                    }
                    Offer::Full => {
                        std::future::poll_fn(|cx| {
                            if waiter.poll_woken(cx) {
                                std::task::Poll::Ready(())
                            } else {
                                std::task::Poll::Pending
                            }
                        })
                        .await;
                    }
                    Offer::Detached => return,
                }
            }
        }
        tokio::time::sleep(backoff).await;
    }
}

/// The session's non-shared subscriptions as a reader matches them.
fn reader_subs(st: &crate::broker::SessionState, start: &ReaderStart) -> Vec<ReaderSub> {
    st.subscriptions
        .iter()
        .filter(|s| !s.raw.starts_with("$share/"))
        .filter_map(|s| {
            let filter = TopicFilter::new(s.filter()).ok()?;
            Some(ReaderSub {
                since: start.since.get(&*s.raw).copied().unwrap_or(0),
                filter,
                options: s.options,
                id: s.id,
            })
        })
        .collect()
}

impl ClusterLink {
    /// The consumer filter subjects for a session's QoS 1/2 subscriptions.
    fn reader_subjects(&self, tenant: &TenantId, subs: &[ReaderSub]) -> Option<Vec<String>> {
        match self.space(tenant) {
            Ok(space) => Some(covering_subjects(
                subs.iter()
                    .filter(|s| s.options.qos != QoS::AtMostOnce)
                    .flat_map(|s| space.filter_subjects(&s.filter, Some(QosClass::Durable))),
                space.durable_wildcard(),
            )),
            Err(e) => {
                tracing::error!(tenant = %tenant, "no subject space for the tenant: {e}");
                None
            }
        }
    }

    /// Reads what a session resumed from Redis missed while offline (after its read position,
    /// up to the stream's head now) into its queue before its CONNACK, as the embedded shape
    /// holds an offline queue: the client gets its backlog before anything live. At most what
    /// fits `limits.max_queued_messages` is kept; the rest is dropped and counted, as an offline
    /// queue drops what does not fit. The reader then starts at the head.
    pub(crate) async fn catch_up(
        self: &Arc<Self>,
        tenant: &Arc<Tenant>,
        session: &Arc<Session>,
    ) -> Result<(), String> {
        let Some(broker) = self.broker() else {
            return Ok(());
        };
        let Some(start) = self
            .sessions
            .reader_start(&tenant.id, &session.client_id, session.id)
        else {
            return Ok(());
        };
        let head = self.stream_head().await?;
        let from = start.position.load(Ordering::Acquire).saturating_add(1);
        let (subs, mut budget) = {
            let st = session.state.lock();
            (
                reader_subs(&st, &start),
                broker
                    .config
                    .limits
                    .max_queued_messages
                    .saturating_sub(st.queued_len()),
            )
        };
        if from > head || !subs.iter().any(|s| s.options.qos != QoS::AtMostOnce) {
            start.position.fetch_max(head, Ordering::AcqRel);
            return Ok(());
        }
        let Some(subjects) = self.reader_subjects(&tenant.id, &subs) else {
            return Ok(());
        };
        let config = ordered_config(from, &subjects);
        let js = async_nats::jetstream::new(self.nats.clone());
        let stream = js
            .get_stream(super::publisher::stream_name(&self.settings.pool))
            .await
            .map_err(|e| e.to_string())?;
        let consumer = stream
            .create_consumer(config)
            .await
            .map_err(|e| e.to_string())?;
        // The position moves to the head only once the backlog was seen to end (a message
        // with nothing pending after it, or one past the head); otherwise the reader reads on
        // from where this stopped, so nothing is skipped.
        if consumer.cached_info().num_pending == 0 {
            return Ok(());
        }
        let mut messages = consumer.messages().await.map_err(|e| e.to_string())?;
        let waiter = Arc::new(ConnControl::default());
        loop {
            let next = tokio::time::timeout(CATCH_UP_IDLE, messages.next()).await;
            let Ok(Some(item)) = next else {
                return Ok(());
            };
            let m = item.map_err(|e| e.to_string())?;
            let Ok(info) = m.info() else { continue };
            let (seq, pending) = (info.stream_sequence, info.pending);
            if seq > head {
                break;
            }
            if let Some(received) = wire::decode(&m.payload, m.headers.as_ref(), &self.incarnation)
            {
                let matches = subs.iter().any(|s| {
                    s.options.qos != QoS::AtMostOnce
                        && s.since < seq
                        && s.filter.matches(&received.msg.topic)
                });
                if matches && budget == 0 {
                    broker.drop_from_backlog(tenant, session);
                } else if broker.offer_from_stream(
                    tenant,
                    session,
                    None,
                    &received.msg,
                    received.origin,
                    seq,
                    &subs,
                    &waiter,
                ) == Offer::Queued
                {
                    budget = budget.saturating_sub(1);
                }
            }
            start.position.fetch_max(seq, Ordering::AcqRel);
            if pending == 0 || seq == head {
                break;
            }
        }
        start.position.fetch_max(head, Ordering::AcqRel);
        Ok(())
    }
}

/// The filter subjects a consumer needs for `subjects`: without duplicates and without
/// subjects another one covers; the tenant-wide `wildcard` when some still overlap (the server
/// refuses overlapping filters) or there are too many.
pub(crate) fn covering_subjects(
    subjects: impl Iterator<Item = String>,
    wildcard: String,
) -> Vec<String> {
    let mut all: Vec<String> = subjects.collect();
    all.sort_unstable();
    all.dedup();
    let kept: Vec<String> = all
        .iter()
        .filter(|s| !all.iter().any(|o| o != *s && covers(o, s)))
        .cloned()
        .collect();
    let overlapping = kept
        .iter()
        .enumerate()
        .any(|(i, a)| kept[i + 1..].iter().any(|b| overlap(a, b)));
    if overlapping || kept.len() > MAX_FILTER_SUBJECTS || kept.is_empty() {
        vec![wildcard]
    } else {
        kept
    }
}

/// Whether NATS subject filter `a` matches every subject `b` matches.
fn covers(a: &str, b: &str) -> bool {
    let mut at = a.split('.');
    let mut bt = b.split('.');
    loop {
        match (at.next(), bt.next()) {
            (Some(">"), Some(_)) => return true,
            (Some("*"), Some(y)) if y != ">" => {}
            (Some(x), Some(y)) if x == y && x != "*" && x != ">" => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Whether some subject matches both NATS subject filters.
fn overlap(a: &str, b: &str) -> bool {
    let mut at = a.split('.');
    let mut bt = b.split('.');
    loop {
        match (at.next(), bt.next()) {
            (Some(">"), Some(_)) | (Some(_), Some(">")) => return true,
            (Some(x), Some(y)) if x == "*" || y == "*" || x == y => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// An ordered consumer reading `subjects` of the stream from sequence `start`.
fn ordered_config(start: u64, subjects: &[String]) -> OrderedConfig {
    let mut config = OrderedConfig {
        deliver_policy: DeliverPolicy::ByStartSequence {
            start_sequence: start,
        },
        ..Default::default()
    };
    if let [one] = subjects {
        config.filter_subject.clone_from(one);
    } else {
        config.filter_subjects = subjects.to_vec();
    }
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cover(subjects: &[&str]) -> Vec<String> {
        covering_subjects(subjects.iter().map(|s| (*s).to_owned()), "ALL".into())
    }

    #[test]
    fn covered_and_duplicate_subjects_are_dropped() {
        assert_eq!(cover(&["m.a.b", "m.a.b"]), vec!["m.a.b"]);
        assert_eq!(cover(&["m.a.>", "m.a.b", "m.a.*"]), vec!["m.a.>"]);
        assert_eq!(cover(&["m.*.b", "m.a.b"]), vec!["m.*.b"]);
        assert_eq!(cover(&["m.a", "m.a.>"]), vec!["m.a", "m.a.>"]);
        assert_eq!(cover(&["m.a.b", "m.a.c"]), vec!["m.a.b", "m.a.c"]);
    }

    #[test]
    fn overlapping_subjects_fall_back_to_the_wildcard() {
        assert_eq!(cover(&["m.a.*", "m.*.b"]), vec!["ALL"]);
        assert_eq!(cover(&[]), vec!["ALL"]);
        let many: Vec<String> = (0..=MAX_FILTER_SUBJECTS)
            .map(|i| format!("m.t{i}"))
            .collect();
        let refs: Vec<&str> = many.iter().map(String::as_str).collect();
        assert_eq!(cover(&refs), vec!["ALL"]);
    }

    #[test]
    fn covers_and_overlap_follow_nats_wildcards() {
        assert!(covers("a.>", "a.b.c"));
        assert!(covers("a.>", "a.*"));
        assert!(!covers("a.>", "a"));
        assert!(!covers("a.*", "a.>"));
        assert!(covers("a.*", "a.*"));
        assert!(!covers("a.b", "a.*"));
        assert!(overlap("a.*", "*.b"));
        assert!(overlap("a.>", "a.b.c"));
        assert!(!overlap("a", "a.>"));
        assert!(!overlap("a.b", "a.c"));
        assert!(!overlap("a.b", "a.b.c"));
    }
}
