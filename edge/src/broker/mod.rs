//! The broker core: tenants, sessions, subscriptions, routing, retained messages, wills and
//! session expiry. Synchronous, in memory, no I/O: connections call into it, and it wakes them.
//! Durable effects are submitted to the [`Store`] and acknowledged by ticket.

mod alarms;
mod congestion;
mod connect_rate;
mod deque;
mod handover;
mod lifecycle;
mod message;
pub(crate) mod persist;
mod remote;
mod restore;
mod retained;
mod router;
mod session;
mod shared;
mod subscriptions;
mod sys;
mod tenant;
mod timers;
mod will_publish;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::RwLock;
use stratus_codec::ReasonCode;
use stratus_model::TenantId;
use tokio::time::Instant;

pub(crate) use lifecycle::{AttachRequest, Attached, Departure};
pub(crate) use message::{Delivery, Message};
pub(crate) use persist::unix_ms_now;
pub(crate) use remote::{GroupOffer, Offer, Via};
pub use restore::RestoreSummary;
pub(crate) use session::{
    ConnControl, Inflight, InflightState, PendingWill, Session, SessionState, SessionSubscription,
};
pub(crate) use tenant::{Tenant, TenantStats};

use crate::config::BrokerConfig;
use crate::store::Store;
use alarms::Alarms;
use timers::Timers;

/// The broker: every tenant's state and the services shared by all of them.
#[derive(Debug)]
pub(crate) struct Broker {
    pub(crate) config: Arc<BrokerConfig>,
    pub(crate) store: Store,
    tenants: RwLock<HashMap<TenantId, Arc<Tenant>>>,
    next_session_id: AtomicU64,
    pub(crate) timers: Timers,
    /// Deadlines of connected clients.
    pub(crate) alarms: Alarms,
    started: Instant,
    started_unix_ms: u64,
    /// Wills of sessions that expired while the broker was down, published at start-up once
    /// access rules are loaded.
    deferred_wills: parking_lot::Mutex<Vec<(TenantId, PendingWill)>>,
    /// The clustered shape's backbone (unset in `stratus dev`).
    cluster: std::sync::OnceLock<Arc<crate::cluster::ClusterLink>>,
    /// CONNECTs per client id (embedded shape; the cluster counts them in Redis).
    pub(crate) connect_rate: connect_rate::ConnectRate,
}

impl Broker {
    /// A broker with no state, persisting through `store`.
    pub(crate) fn new(config: Arc<BrokerConfig>, store: Store) -> Self {
        Self {
            config,
            store,
            tenants: RwLock::new(HashMap::new()),
            next_session_id: AtomicU64::new(1),
            timers: Timers::default(),
            alarms: Alarms::default(),
            started: Instant::now(),
            started_unix_ms: unix_ms_now(),
            deferred_wills: parking_lot::Mutex::new(Vec::new()),
            cluster: std::sync::OnceLock::new(),
            connect_rate: connect_rate::ConnectRate::default(),
        }
    }

    /// Joins the broker to the cluster backbone (once, at start-up).
    pub(crate) fn set_cluster(&self, link: Arc<crate::cluster::ClusterLink>) {
        let _ = self.cluster.set(link);
    }

    /// The cluster backbone, in the clustered shape.
    pub(crate) fn cluster(&self) -> Option<&Arc<crate::cluster::ClusterLink>> {
        self.cluster.get()
    }

    /// The state of `id`, created on first use.
    pub(crate) fn tenant(&self, id: &TenantId) -> Arc<Tenant> {
        if let Some(t) = self.tenants.read().get(id) {
            return Arc::clone(t);
        }
        let mut tenants = self.tenants.write();
        Arc::clone(
            tenants
                .entry(id.clone())
                .or_insert_with(|| Arc::new(Tenant::new(id.clone()))),
        )
    }

    /// The tenant if the broker holds it already.
    pub(crate) fn existing_tenant(&self, id: &TenantId) -> Option<Arc<Tenant>> {
        self.tenants.read().get(id).cloned()
    }

    /// Every tenant known.
    pub(crate) fn tenants(&self) -> Vec<Arc<Tenant>> {
        self.tenants.read().values().cloned().collect()
    }

    fn next_session_id(&self) -> u64 {
        self.next_session_id.fetch_add(1, Ordering::Relaxed)
    }

    /// When the broker started.
    pub(crate) fn started(&self) -> Instant {
        self.started
    }

    /// When the broker started, in unix milliseconds (distinguishes assigned client ids across
    /// restarts).
    pub(crate) fn started_unix_ms(&self) -> u64 {
        self.started_unix_ms
    }

    /// Publishes the wills deferred at start-up.
    pub(crate) fn publish_deferred_wills(&self) {
        let wills = std::mem::take(&mut *self.deferred_wills.lock());
        for (tenant, will) in wills {
            let tenant = self.tenant(&tenant);
            self.publish_wills(&tenant, vec![will]);
        }
    }

    /// Asks every attached connection to close with `reason` (5.0 DISCONNECT).
    pub(crate) fn kick_all(&self, reason: ReasonCode) -> usize {
        let mut kicked = 0;
        for tenant in self.tenants() {
            let sessions: Vec<_> = tenant.sessions.lock().values().cloned().collect();
            for session in sessions {
                if let Some(a) = &session.state.lock().attachment {
                    a.control.kick(reason);
                    kicked += 1;
                }
            }
        }
        kicked
    }

    /// Serves the alarms of connected clients until the task is dropped.
    pub(crate) async fn run_alarms(self: Arc<Self>) {
        self.alarms.run().await;
    }

    /// Serves the deadlines of offline sessions until the task is dropped.
    pub(crate) async fn run_timers(self: Arc<Self>) {
        loop {
            let now = Instant::now();
            self.fire_timers(now);
            match self.timers.next_due() {
                Some(due) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(due) => {}
                        () = self.timers.changed() => {}
                    }
                }
                None => self.timers.changed().await,
            }
        }
    }
}
