//! Node liveness: this edge's lease in Redis, self-fencing when it cannot be renewed, and the
//! reaper that publishes the wills of edges whose lease lapsed.
//!
//! - The lease of this incarnation is renewed every `lease_ttl / 3` with TTL `lease_ttl`, on a
//!   Redis connection of its own and in a task of its own, so client load never delays it.
//! - When no renewal succeeded for `lease_ttl / 2` (Redis unreachable or slow), or Redis says
//!   the lease was lost (released or reaped), the edge fences itself: it disconnects every
//!   client (5.0: DISCONNECT 0x89 Server busy; 0x88 is a CONNACK-only code) and refuses
//!   CONNECTs with CONNACK 0x88 Server unavailable until a renewal succeeds.
//!   The attempt that last succeeded started before Redis set the key, and an attempt gives up
//!   after `lease_ttl / 3`, so the edge stops serving at most `2 * lease_ttl / 3` after Redis
//!   last extended its lease: before any reaper can see it expired. A lost lease never comes
//!   back: the edge stays fenced and says it must be restarted.
//! - Every edge runs a reaper every [`REAP_PERIOD`]: for each expired incarnation (not its
//!   own) it claims the right to reap it (one claimant wins), takes its wills, publishes each
//!   through the broker's will path (access rules checked; JetStream message id
//!   `will-<tenant>-<client key>-<token>`, the id the dead edge would have used, so a will it
//!   published before dying is not published twice), waits until JetStream acknowledged them,
//!   and forgets the incarnation.
//!
//! Will delay: a will whose delay outlives its edge is parked in Redis until it is due, and is
//! then published unless the client connected again first (`delayed_wills.rs`). A graceful
//! shutdown parks the delayed wills of its offline sessions the same way before releasing the
//! lease.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::Mutex;
use stratus_codec::ReasonCode;
use stratus_redis_state::{Lease, NodeLeases, RedisStateError};
use tokio::time::{Instant, MissedTickBehavior};

use super::delayed_wills::{self, Settled};
use super::wills::{WillRecord, WillRegistry};
use super::{ClusterError, ClusterLink, ClusterSettings};
use crate::access::Access;
use crate::broker::persist::unix_ms_now;
use crate::store::Store;

/// How often every edge looks for dead incarnations.
pub(crate) const REAP_PERIOD: Duration = Duration::from_secs(2);
/// How long a reaper's claim on a dead incarnation lasts (another reaper may take over after).
const REAP_CLAIM: Duration = Duration::from_secs(60);
/// How long a reaper waits for JetStream to acknowledge the wills it published.
pub(super) const REAP_PUBLISH_WAIT: Duration = Duration::from_secs(30);
/// How long a graceful shutdown waits for wills to be acknowledged and registrations written.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(5);
/// The shortest lease TTL accepted.
pub(crate) const MIN_LEASE_TTL: Duration = Duration::from_secs(1);

/// This edge's lease, its fencing state and its will registry.
#[derive(Debug)]
pub(crate) struct Liveness {
    lease: Lease,
    ttl: Duration,
    /// Renewals only (a connection of its own).
    renewals: NodeLeases,
    /// The reaper's connection.
    pub(super) reaping: NodeLeases,
    /// The wills of connections attached here.
    pub(crate) wills: WillRegistry,
    fenced: AtomicBool,
    fence_reason: Mutex<Option<String>>,
    stopping: AtomicBool,
    /// The tenants' access rules (set once the server built them): checked before a reaped will
    /// goes out.
    pub(super) access: OnceLock<Arc<Access>>,
}

impl Liveness {
    /// Connects to Redis and takes this incarnation's first lease.
    pub(super) async fn connect(
        settings: &ClusterSettings,
        incarnation: &str,
    ) -> Result<Self, ClusterError> {
        let redis_err = |e: RedisStateError| ClusterError::Redis {
            url: settings.redis_url.clone(),
            reason: e.to_string(),
        };
        let namespace = super::redis_namespace(settings);
        let lease = Lease::new(settings.node_id.clone(), incarnation).map_err(redis_err)?;
        let renewals = NodeLeases::connect(&settings.redis_url, &namespace)
            .await
            .map_err(redis_err)?;
        let reaping = NodeLeases::connect(&settings.redis_url, &namespace)
            .await
            .map_err(redis_err)?;
        let registrations = NodeLeases::connect(&settings.redis_url, &namespace)
            .await
            .map_err(redis_err)?;
        renewals
            .renew(&lease, settings.lease_ttl)
            .await
            .map_err(redis_err)?;
        tracing::info!(
            node = %lease.node_id,
            incarnation = %lease.incarnation,
            ttl = ?settings.lease_ttl,
            "node lease taken"
        );
        Ok(Self {
            wills: WillRegistry::start(registrations, lease.clone()),
            lease,
            ttl: settings.lease_ttl,
            renewals,
            reaping,
            fenced: AtomicBool::new(false),
            fence_reason: Mutex::new(None),
            stopping: AtomicBool::new(false),
            access: OnceLock::new(),
        })
    }

    /// Hands the reaper the tenants' access rules.
    pub(crate) fn set_access(&self, access: Arc<Access>) {
        let _ = self.access.set(access);
    }

    /// Whether the edge is fenced (serves no client).
    pub(crate) fn is_fenced(&self) -> bool {
        self.fenced.load(Ordering::Acquire)
    }

    /// Why a CONNECT is refused now, if it is.
    pub(crate) fn refusal(&self) -> Option<String> {
        if !self.is_fenced() {
            return None;
        }
        let reason = self.fence_reason.lock().clone().unwrap_or_default();
        Some(format!(
            "this edge is fenced off from the cluster ({reason}); connect to another edge"
        ))
    }

    /// Graceful shutdown, after every client was disconnected: waits (bounded) until the wills
    /// they left are acknowledged and the registry is written, parks the wills still waiting
    /// out their delay, then releases the lease, which deletes this incarnation's registered
    /// wills so no reaper publishes them again.
    pub(crate) async fn shutdown(&self, link: &ClusterLink, store: &Store) {
        self.stopping.store(true, Ordering::Release);
        if !wait_committed(store, SHUTDOWN_WAIT).await {
            tracing::warn!("wills of disconnected clients not all acknowledged before shutdown");
        }
        let deadline = Instant::now() + SHUTDOWN_WAIT;
        let mut pause = Duration::from_millis(5);
        while self.wills.pending() > 0 && Instant::now() < deadline {
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(100));
        }
        park_own_delayed_wills(link, &self.lease).await;
        match self.renewals.release(&self.lease).await {
            Ok(()) => tracing::info!(incarnation = %self.lease.incarnation, "node lease released"),
            Err(e) => tracing::warn!(
                "node lease not released ({e}); a reaper publishes this edge's remaining wills \
                 (de-duplicated) once it expires"
            ),
        }
    }

    /// Stops serving: records why, disconnects every client.
    fn fence(&self, link: &ClusterLink, reason: String) {
        *self.fence_reason.lock() = Some(reason.clone());
        if self.fenced.swap(true, Ordering::AcqRel) {
            return;
        }
        let kicked = link
            .broker()
            .map_or(0, |b| b.kick_all(ReasonCode::ServerBusy));
        tracing::error!(
            node = %self.lease.node_id,
            incarnation = %self.lease.incarnation,
            clients = kicked,
            "SELF-FENCED: {reason}; every client is disconnected and CONNECTs are refused (0x88) \
             until the lease is renewed"
        );
    }
}

/// Renews this edge's lease until the process stops, fencing the edge while it cannot.
pub(super) async fn run_lease(link: Arc<ClusterLink>) {
    let live = &link.liveness;
    let period = live.ttl / 3;
    let fence_after = live.ttl / 2;
    // The first lease was taken in `connect`, just before.
    let mut last_renewed = Instant::now();
    let mut lost = false;
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        if live.stopping.load(Ordering::Acquire) {
            return;
        }
        let started = Instant::now();
        let outcome =
            tokio::time::timeout(period, live.renewals.renew(&live.lease, live.ttl)).await;
        match outcome {
            Ok(Ok(())) => {
                last_renewed = started;
                if live.fenced.swap(false, Ordering::AcqRel) {
                    *live.fence_reason.lock() = None;
                    tracing::warn!(
                        incarnation = %live.lease.incarnation,
                        "node lease renewed again: the edge accepts connections again"
                    );
                }
            }
            Ok(Err(RedisStateError::LeaseLost { .. })) => {
                if !lost {
                    lost = true;
                    live.fence(
                        &link,
                        "the node lease was released or reaped by another edge; restart this \
                         edge to join again with a new incarnation"
                            .into(),
                    );
                }
            }
            Ok(Err(e)) => {
                tracing::warn!(since_renewed = ?last_renewed.elapsed(), "node lease renewal failed: {e}");
                if last_renewed.elapsed() >= fence_after {
                    live.fence(
                        &link,
                        format!(
                            "node lease not renewed for {:?}: {e}",
                            last_renewed.elapsed()
                        ),
                    );
                }
            }
            Err(_) => {
                tracing::warn!(since_renewed = ?last_renewed.elapsed(), "node lease renewal timed out");
                if last_renewed.elapsed() >= fence_after {
                    live.fence(
                        &link,
                        format!(
                            "node lease not renewed for {:?}: Redis does not answer",
                            last_renewed.elapsed()
                        ),
                    );
                }
            }
        }
    }
}

/// Looks for dead incarnations every [`REAP_PERIOD`] and publishes their wills.
pub(super) async fn run_reaper(link: Arc<ClusterLink>) {
    let live = &link.liveness;
    let mut ticker = tokio::time::interval(REAP_PERIOD);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if live.stopping.load(Ordering::Acquire) {
            return;
        }
        if live.is_fenced() {
            continue;
        }
        let dead = match live.reaping.expired().await {
            Ok(dead) => dead,
            Err(e) => {
                tracing::warn!("reaper cannot list node leases: {e}");
                continue;
            }
        };
        for lease in dead.iter().filter(|l| **l != live.lease) {
            if let Err(e) = reap(&link, lease).await {
                tracing::warn!(node = %lease.node_id, incarnation = %lease.incarnation, "reaping failed: {e}");
            }
        }
        match delayed_wills::publish_due(&link).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(wills = n, "delayed wills of dead edges' clients decided"),
            Err(e) => tracing::warn!("reaper cannot read the delayed wills: {e}"),
        }
    }
}

/// Graceful shutdown: the wills left in this incarnation's registry belong to offline sessions
/// whose will delay has not ended (every other will was published or dropped when its
/// connection ended); they are parked for the other edges' reapers.
async fn park_own_delayed_wills(link: &ClusterLink, own: &Lease) {
    let Some(broker) = link.broker() else {
        return;
    };
    let taken = match link.liveness.reaping.take_wills(own).await {
        Ok(taken) => taken,
        Err(e) => {
            tracing::warn!("delayed wills not handed to the other edges at shutdown ({e})");
            return;
        }
    };
    let now = unix_ms_now();
    let mut parked = 0;
    for will in &taken {
        let Some(record) = WillRecord::decode(&will.record) else {
            continue;
        };
        match delayed_wills::settle(link, &broker, will, record, now).await {
            Ok(Settled::Parked) => parked += 1,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(tenant = %will.tenant, "a delayed will was not parked at shutdown ({e})")
            }
        }
    }
    if !wait_committed(&broker.store, SHUTDOWN_WAIT).await {
        tracing::warn!("wills published at shutdown not all acknowledged");
    }
    if parked > 0 {
        tracing::info!(
            wills = parked,
            "delayed wills handed to the other edges' reapers"
        );
    }
}

/// Reaps one dead incarnation if this edge wins the claim.
async fn reap(link: &ClusterLink, dead: &Lease) -> Result<(), RedisStateError> {
    let live = &link.liveness;
    if !live
        .reaping
        .claim_reap(dead, &live.lease, REAP_CLAIM)
        .await?
    {
        return Ok(());
    }
    let Some(broker) = link.broker() else {
        return Ok(());
    };
    tracing::warn!(
        node = %dead.node_id,
        incarnation = %dead.incarnation,
        "node declared dead: its lease expired; publishing its clients' wills"
    );
    let taken = live.reaping.take_wills(dead).await?;
    let total = taken.len();
    let (mut published, mut parked) = (0, 0);
    let now = unix_ms_now();
    for will in taken {
        let Some(record) = WillRecord::decode(&will.record) else {
            tracing::warn!(tenant = %will.tenant, "dropping a registered will that does not decode");
            continue;
        };
        match delayed_wills::settle(link, &broker, &will, record, now).await {
            Ok(Settled::Published) => published += 1,
            Ok(Settled::Parked) => parked += 1,
            Ok(Settled::Cancelled | Settled::Refused) => {}
            Err(e) => tracing::error!(
                tenant = %will.tenant,
                client_key = %will.client_key,
                "a reaped will waiting out its delay could not be parked and is lost ({e})"
            ),
        }
    }
    if !wait_committed(&broker.store, REAP_PUBLISH_WAIT).await {
        tracing::warn!(
            node = %dead.node_id,
            "JetStream did not acknowledge every reaped will within {REAP_PUBLISH_WAIT:?}; \
             the publisher keeps retrying until its publish deadline"
        );
    }
    live.reaping.forget(dead).await?;
    tracing::warn!(
        node = %dead.node_id,
        incarnation = %dead.incarnation,
        wills = total,
        published,
        parked,
        "dead node reaped"
    );
    Ok(())
}

/// Waits until everything submitted to `store` before the call completed (JetStream
/// acknowledgements, Redis writes), at most `limit`. False on timeout.
pub(super) async fn wait_committed(store: &Store, limit: Duration) -> bool {
    let fence = store.reserve();
    store.complete(fence);
    let done = std::future::poll_fn(|cx| {
        if store.wake_when_committed(fence, cx.waker()) {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    });
    tokio::time::timeout(limit, done).await.is_ok()
}
