//! Wills whose delay outlives their edge.
//!
//! A will with a Will Delay Interval is due when the delay has passed or its session ended,
//! whichever comes first, and a new connection of the client before then cancels it (MQTT 5.0
//! section 3.1.3.2.2). Its edge keeps that timer in memory; should the edge die, the reaper that
//! takes its wills decides here:
//!
//! - a will without delay, or whose session ended with the connection (Session Expiry 0), is
//!   published at once;
//! - a delayed will not yet due is parked in Redis (`NodeLeases::park_will`) until it is due.
//!   Its due time is the one the edge recorded when the connection ended or, when the edge
//!   died with the connection, counted from the reap (late by at most one lease TTL, never
//!   early);
//! - a delayed will that is due is published unless the client connected again before it was
//!   due: the ownership record in NATS KV then holds a newer token written before the due
//!   time ([`Ownership::followed_before`](super::ownership::Ownership::followed_before)).
//!
//! Every edge's reaper claims the parked wills that came due, decides and drops them. A will
//! carries the JetStream message id its edge would have used, so a claimant that dies after
//! publishing and before dropping cannot store it twice while the stream's duplicate window
//! lasts (the claim, [`CLAIM`], is shorter).

use std::time::Duration;

use stratus_redis_state::{RedisStateError, TakenWill};

use super::ClusterLink;
use super::liveness::{REAP_PUBLISH_WAIT, wait_committed};
use super::wills::{WillRecord, will_message_id};
use crate::broker::Broker;
use crate::broker::persist::unix_ms_now;

/// Parked wills claimed per round trip.
const CLAIM_PAGE: usize = 256;
/// How long a claim on due wills lasts before another edge may take them again.
const CLAIM: Duration = Duration::from_secs(60);

/// What became of a will a reaper took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Settled {
    /// Published (JetStream acknowledges it later).
    Published,
    /// Parked until its delay ends.
    Parked,
    /// Cancelled: the client connected again before it was due.
    Cancelled,
    /// Not published: the access rules deny it, or the publish path refused it.
    Refused,
}

/// Decides about one will taken from a dead incarnation's registry at `now_ms`.
pub(super) async fn settle(
    link: &ClusterLink,
    broker: &Broker,
    will: &TakenWill,
    record: WillRecord,
    now_ms: u64,
) -> Result<Settled, RedisStateError> {
    if !record.is_delayed() {
        return Ok(publish(link, broker, will, record).await);
    }
    let due = record.due_ms(now_ms);
    if due > now_ms {
        park(link, will, record, due).await?;
        return Ok(Settled::Parked);
    }
    match decide_due(link, broker, will, record, due).await {
        Ok(settled) => Ok(settled),
        Err((record, e)) => {
            // Decided again by the next round of whichever reaper claims it.
            tracing::warn!(tenant = %will.tenant, "a due will waits: {e}");
            park(link, will, record, due).await?;
            Ok(Settled::Parked)
        }
    }
}

/// Claims the parked wills that came due, decides each and drops it. Returns how many were
/// decided.
pub(super) async fn publish_due(link: &ClusterLink) -> Result<usize, RedisStateError> {
    let Some(broker) = link.broker() else {
        return Ok(0);
    };
    let leases = &link.liveness.reaping;
    let mut decided = Vec::new();
    loop {
        let now = unix_ms_now();
        let claimed = leases.claim_due_wills(now, CLAIM_PAGE, CLAIM).await?;
        let full_page = claimed.len() == CLAIM_PAGE;
        for parked in claimed {
            let Some(record) = WillRecord::decode(&parked.will.record) else {
                tracing::warn!(tenant = %parked.will.tenant, "dropping a parked will that does not decode");
                decided.push(parked.id);
                continue;
            };
            let due = record.due_ms(now);
            match decide_due(link, &broker, &parked.will, record, due).await {
                Ok(_) => decided.push(parked.id),
                Err((_, e)) => tracing::warn!(
                    tenant = %parked.will.tenant,
                    "a due will waits until its claim runs out ({CLAIM:?}): {e}"
                ),
            }
        }
        if !full_page {
            break;
        }
    }
    if decided.is_empty() {
        return Ok(0);
    }
    if !wait_committed(&broker.store, REAP_PUBLISH_WAIT).await {
        tracing::warn!(
            "JetStream did not acknowledge every due will within {REAP_PUBLISH_WAIT:?}; the \
             publisher keeps retrying until its publish deadline"
        );
    }
    for id in &decided {
        leases.drop_parked_will(id).await?;
    }
    Ok(decided.len())
}

/// Parks `record` until `due`.
async fn park(
    link: &ClusterLink,
    will: &TakenWill,
    record: WillRecord,
    due: u64,
) -> Result<(), RedisStateError> {
    let client_id = record.client_id.clone();
    let parked = TakenWill {
        record: WillRecord {
            due_at_ms: Some(due),
            ..record
        }
        .to_bytes(),
        ..will.clone()
    };
    link.liveness.reaping.park_will(&parked, due).await?;
    tracing::info!(
        tenant = %will.tenant,
        client_id = %client_id,
        in_ms = due.saturating_sub(unix_ms_now()),
        "will of a dead edge's client parked until its delay ends"
    );
    Ok(())
}

/// A delayed will that is due: published unless the client connected again before `due`.
/// `Err` (with the record back) when the ownership record cannot be read.
async fn decide_due(
    link: &ClusterLink,
    broker: &Broker,
    will: &TakenWill,
    record: WillRecord,
    due: u64,
) -> Result<Settled, (WillRecord, String)> {
    let followed = link
        .ownership
        .followed_before(&will.tenant, &record.client_id, will.token, due)
        .await;
    match followed {
        Err(e) => Err((record, e)),
        Ok(true) => {
            tracing::info!(
                tenant = %will.tenant,
                client_id = %record.client_id,
                "delayed will of a dead edge's client cancelled: the client connected again \
                 before it was due"
            );
            Ok(Settled::Cancelled)
        }
        Ok(false) => Ok(publish(link, broker, will, record).await),
    }
}

/// Publishes a will with the JetStream message id its edge would have used.
async fn publish(
    link: &ClusterLink,
    broker: &Broker,
    will: &TakenWill,
    record: WillRecord,
) -> Settled {
    let tenant = broker.tenant(&will.tenant);
    if let Some(access) = link.liveness.access.get()
        && let Err(e) = access.load_tenant(&tenant).await
    {
        tracing::warn!(tenant = %will.tenant, "cannot load access rules for a reaped will ({e})");
    }
    let id = will_message_id(&will.tenant, &will.client_key, will.token);
    if broker.publish_will_as(&tenant, &record.into_pending(), Some(id)) {
        Settled::Published
    } else {
        Settled::Refused
    }
}
