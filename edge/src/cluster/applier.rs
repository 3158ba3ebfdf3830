//! The clustered store's applier: every change the broker core submits goes to Redis here, and
//! its ticket completes once Redis has it (acknowledgements held behind it are released then).
//!
//! - Retained-message changes go to the tenant's retained store (`retained.rs`).
//! - Session changes are grouped per session and written in one fenced script call per session
//!   and round (`stratus_redis_state::SessionStore::apply`), in submission order, under the token
//!   this edge holds the session with (`sessions.rs`). A session this edge does not hold (no
//!   token: an assigned client id, or already handed over) is not written.
//! - An inbound QoS 2 packet id is recorded only once the message's own publication is durable
//!   (its `after` ticket committed); later changes of the same session wait behind it, other
//!   sessions' changes do not. Otherwise a PUBLISH resent to another edge after this one died
//!   could be taken for a message already stored when JetStream never had it.
//!
//! A Redis error is retried with backoff; nothing is dropped while Redis is away.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::poll_fn;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytestring::ByteString;
use stratus_model::TenantId;
use stratus_redis_state::{Applied, SessionWrite};

use super::ClusterLink;
use super::retained::{apply_retained, retry_redis};
use super::sessions::{encode_message, encode_message_state, encode_subscription};
use crate::broker::Broker;
use crate::store::{ExternalOps, StoreOp, Ticket};

/// Most changes taken into one round.
const MAX_ROUND: usize = 4096;
/// Most writes in one script call.
const MAX_BATCH: usize = 256;
/// How long a session's Redis keys outlive its expiry (clock skew between edges and Redis).
const EXPIRY_GRACE_MS: u64 = 60_000;

type Key = (TenantId, ByteString);

/// What one session change becomes.
enum Action {
    Write(SessionWrite),
    /// A queued message, with its delivery state when it was stored already sent.
    PutMessage(SessionWrite, Option<SessionWrite>),
    /// A new or replaced subscription (its start sequence is looked up or taken when applied).
    Subscribe(crate::store::StoredSubscription),
    Unsubscribe(ByteString),
    Delete,
    Ignore,
}

/// Applies changes until the broker is gone.
pub(super) async fn apply_changes(link: Arc<ClusterLink>, mut ops: ExternalOps) {
    let mut queue: VecDeque<(Ticket, StoreOp)> = VecDeque::new();
    loop {
        if queue.is_empty() {
            match ops.recv().await {
                Some(op) => queue.push_back(op),
                None => return,
            }
        }
        while queue.len() < MAX_ROUND {
            match ops.try_recv() {
                Ok(op) => queue.push_back(op),
                Err(_) => break,
            }
        }
        let Some(broker) = link.broker() else { return };
        let waiting_for = apply_round(&link, &broker, &mut queue).await;
        if let Some(after) = waiting_for {
            // Everything left waits for a publication: wait for it, or for new changes.
            tokio::select! {
                op = ops.recv() => match op {
                    Some(op) => queue.push_back(op),
                    None => return,
                },
                () = committed(&broker, after) => {}
            }
        }
    }
}

/// Resolves once `ticket` is committed.
async fn committed(broker: &Broker, ticket: Ticket) {
    poll_fn(|cx| {
        if broker.store.wake_when_committed(ticket, cx.waker()) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
}

/// Applies every queued change that is not waiting; returns the smallest ticket a waiting
/// change needs when nothing could be applied.
async fn apply_round(
    link: &Arc<ClusterLink>,
    broker: &Arc<Broker>,
    queue: &mut VecDeque<(Ticket, StoreOp)>,
) -> Option<Ticket> {
    let committed_now = broker.store.committed();
    let mut blocked: HashSet<Key> = HashSet::new();
    let mut smallest_gate: Option<Ticket> = None;
    let mut kept = VecDeque::new();
    let mut order: Vec<Key> = Vec::new();
    let mut per_session: HashMap<Key, Vec<(Ticket, Action)>> = HashMap::new();
    let mut applied_any = false;
    while let Some((ticket, op)) = queue.pop_front() {
        let Some(key) = session_of(&op) else {
            apply_retained(link, broker, op).await;
            broker.store.complete(ticket);
            applied_any = true;
            continue;
        };
        if blocked.contains(&key) {
            kept.push_back((ticket, op));
            continue;
        }
        if let StoreOp::AddIncomingQos2 { after, .. } = &op
            && *after > committed_now
        {
            smallest_gate = Some(smallest_gate.map_or(*after, |g| g.min(*after)));
            blocked.insert(key);
            kept.push_back((ticket, op));
            continue;
        }
        if !per_session.contains_key(&key) {
            order.push(key.clone());
        }
        per_session
            .entry(key)
            .or_default()
            .push((ticket, action_of(op)));
    }
    *queue = kept;
    for key in order {
        if let Some(changes) = per_session.remove(&key) {
            apply_session(link, broker, &key, changes).await;
            applied_any = true;
        }
    }
    if applied_any { None } else { smallest_gate }
}

/// The session a change belongs to; `None` for retained-message changes.
fn session_of(op: &StoreOp) -> Option<Key> {
    match op {
        StoreOp::UpsertSession {
            tenant, client_id, ..
        }
        | StoreOp::SetOffline {
            tenant, client_id, ..
        }
        | StoreOp::DeleteSession { tenant, client_id }
        | StoreOp::PutSubscription {
            tenant, client_id, ..
        }
        | StoreOp::DeleteSubscription {
            tenant, client_id, ..
        }
        | StoreOp::PutMessage {
            tenant, client_id, ..
        }
        | StoreOp::UpdateMessage {
            tenant, client_id, ..
        }
        | StoreOp::DeleteMessage {
            tenant, client_id, ..
        }
        | StoreOp::AddIncomingQos2 {
            tenant, client_id, ..
        }
        | StoreOp::RemoveIncomingQos2 {
            tenant, client_id, ..
        } => Some((tenant.clone(), client_id.clone())),
        StoreOp::PutRetained { .. } | StoreOp::DeleteRetained { .. } => None,
    }
}

/// What a session change becomes in Redis.
fn action_of(op: StoreOp) -> Action {
    match op {
        StoreOp::UpsertSession {
            expiry_secs,
            next_packet_id,
            ..
        } => Action::Write(SessionWrite::Meta {
            expiry_secs,
            next_packet_id,
        }),
        StoreOp::SetOffline {
            disconnected_at_ms, ..
        } => Action::Write(SessionWrite::Offline {
            at_ms: disconnected_at_ms,
            grace_ms: EXPIRY_GRACE_MS,
        }),
        StoreOp::DeleteSession { .. } => Action::Delete,
        StoreOp::PutSubscription { subscription, .. } => Action::Subscribe(subscription),
        StoreOp::DeleteSubscription { filter, .. } => Action::Unsubscribe(filter),
        StoreOp::PutMessage {
            message,
            stream_seq,
            ..
        } => {
            let state = message
                .packet_id
                .map(|pid| encode_message_state(pid, message.state));
            Action::PutMessage(
                SessionWrite::PutMessage {
                    seq: message.seq,
                    record: encode_message(&message),
                    stream_seq,
                },
                state.map(|state| SessionWrite::UpdateMessage {
                    seq: message.seq,
                    state,
                }),
            )
        }
        StoreOp::UpdateMessage {
            seq,
            packet_id,
            state,
            ..
        } => Action::Write(SessionWrite::UpdateMessage {
            seq,
            state: encode_message_state(packet_id, state),
        }),
        StoreOp::DeleteMessage { seq, .. } => Action::Write(SessionWrite::DeleteMessage { seq }),
        StoreOp::AddIncomingQos2 { packet_id, .. } => {
            Action::Write(SessionWrite::AddIncomingQos2 { packet_id })
        }
        StoreOp::RemoveIncomingQos2 { packet_id, .. } => {
            Action::Write(SessionWrite::RemoveIncomingQos2 { packet_id })
        }
        StoreOp::PutRetained { .. } | StoreOp::DeleteRetained { .. } => Action::Ignore,
    }
}

/// Writes one session's changes under the token this edge holds it with, then completes their
/// tickets.
async fn apply_session(
    link: &Arc<ClusterLink>,
    broker: &Arc<Broker>,
    key: &Key,
    changes: Vec<(Ticket, Action)>,
) {
    let (tenant, client_id) = key;
    let tickets: Vec<Ticket> = changes.iter().map(|(t, _)| *t).collect();
    let Some(token) = link.sessions.token(tenant, client_id) else {
        tracing::debug!(tenant = %tenant, client_id = %client_id, "session not held with a token on this edge: its changes stay local");
        for t in tickets {
            broker.store.complete(t);
        }
        return;
    };
    let client_key = stratus_topics::client_key(tenant.as_str(), client_id);
    let mut writes: Vec<SessionWrite> = Vec::new();
    let mut subscriptions_changed = false;
    let mut fenced = false;
    let mut deleted = false;
    for (_, action) in changes {
        match action {
            Action::Write(w) => writes.push(w),
            Action::PutMessage(put, state) => {
                writes.push(put);
                writes.extend(state);
            }
            Action::Subscribe(sub) => {
                subscriptions_changed = true;
                let since = subscription_start(link, tenant, client_id, &sub).await;
                writes.push(SessionWrite::PutSubscription {
                    filter: sub.filter.to_string(),
                    record: encode_subscription(&sub, since),
                });
            }
            Action::Unsubscribe(filter) => {
                subscriptions_changed = true;
                link.sessions.clear_since(tenant, client_id, &filter);
                writes.push(SessionWrite::DeleteSubscription {
                    filter: filter.to_string(),
                });
            }
            Action::Delete => {
                fenced |= write_batches(link, tenant, &client_key, token, &mut writes).await;
                let outcome =
                    retry_redis(|| link.sessions.store.delete(tenant, &client_key, token)).await;
                fenced |= outcome == Applied::Fenced;
                deleted = true;
            }
            Action::Ignore => {}
        }
    }
    fenced |= write_batches(link, tenant, &client_key, token, &mut writes).await;
    if deleted {
        link.sessions.forget_any(tenant, client_id);
    }
    if fenced {
        tracing::warn!(
            tenant = %tenant,
            client_id = %client_id,
            "session changes refused by Redis: another edge owns the session now; the local \
             connection is closed"
        );
        if let Some((_, session)) = broker.local_session(tenant, client_id)
            && let Some(a) = &session.state.lock().attachment
        {
            a.control.kick(stratus_codec::ReasonCode::SessionTakenOver);
        }
    } else if subscriptions_changed
        && !deleted
        && let Some((tenant_arc, session)) = broker.local_session(tenant, client_id)
    {
        let generation = {
            let st = session.state.lock();
            st.attachment.is_some().then_some(st.generation)
        };
        if let Some(generation) = generation {
            link.start_reader(&tenant_arc, &session, generation);
        }
    }
    for t in tickets {
        broker.store.complete(t);
    }
}

/// Sends `writes` (emptying it) in batches; true when Redis refused them as fenced.
async fn write_batches(
    link: &ClusterLink,
    tenant: &TenantId,
    client_key: &str,
    token: u64,
    writes: &mut Vec<SessionWrite>,
) -> bool {
    let mut fenced = false;
    for batch in writes.chunks(MAX_BATCH) {
        let outcome =
            retry_redis(|| link.sessions.store.apply(tenant, client_key, token, batch)).await;
        fenced |= outcome == Applied::Fenced;
    }
    writes.clear();
    fenced
}

/// The stream sequence a subscription starts after: kept for a replaced one, the stream's head
/// for a new QoS 1/2 one, 0 for QoS 0 and shared ones (no reader serves them).
async fn subscription_start(
    link: &ClusterLink,
    tenant: &TenantId,
    client_id: &ByteString,
    sub: &crate::store::StoredSubscription,
) -> u64 {
    let durable = sub.options & 0b11 != 0 && !sub.filter.starts_with("$share/");
    if !durable {
        return 0;
    }
    if let Some(since) = link.sessions.since(tenant, client_id, &sub.filter) {
        return since;
    }
    let mut backoff = Duration::from_millis(50);
    let since = loop {
        match link.stream_head().await {
            Ok(seq) => break seq,
            Err(e) => {
                tracing::warn!("stream position for a new subscription unavailable, retrying: {e}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    };
    link.sessions
        .set_since(tenant, client_id, &sub.filter, since);
    since
}
