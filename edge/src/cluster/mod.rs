//! The clustered shape's backbone: how a stateless edge meets the other edges.
//!
//! - Messages travel over NATS (`m.<pool>.<tenant>.<class>.<q>.<levels>`, built only by
//!   `stratus_topics::SubjectSpace`): QoS 0 by core publish, QoS 1/2 by a JetStream publish whose
//!   acknowledgement gates the PUBACK/PUBREC (`publisher.rs`).
//! - Each edge holds one reference-counted NATS subscription per (tenant, filter) with local
//!   subscribers, and one queue subscription per (tenant, share group); messages arriving on them
//!   are routed into the local broker core (`interest.rs`).
//! - Client-id ownership is a NATS KV record whose revision is the fencing token; connecting
//!   anywhere kicks the previous connection on whichever edge holds it (`ownership.rs`).
//! - Retained messages live in Redis (`stratus-redis-state`); each edge keeps the retained
//!   messages of its active tenants in memory, loaded from Redis and kept current by change
//!   notifications over NATS (`retained.rs`).
//!
//! Departures from the design study and what is not built yet are listed in
//! `edge/docs/mqtt-over-nats.md`.

mod admission;
mod applier;
mod delayed_wills;
mod interest;
mod liveness;
mod ownership;
mod publisher;
mod reader;
mod retained;
mod session_claim;
mod sessions;
mod shared_consumer;
mod wills;
mod wire;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use async_nats::jetstream;
use bytes::Bytes;
use stratus_codec::ReasonCode;
use stratus_model::TenantId;
use stratus_topics::{SubjectError, SubjectSpace};

use crate::broker::Broker;
use crate::store::{ExternalOps, Store};

pub(crate) use interest::Interest;
pub(crate) use ownership::Ownership;
pub(crate) use reader::ReaderSub;
pub(crate) use sessions::{SessionIntent, SessionSync};
pub(crate) use shared_consumer::StreamSettle;
pub(crate) use wills::{WillRecord, with_message_id};

/// How an edge joins the cluster (from `stratus edge` flags).
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    /// NATS servers, comma-separated `nats://host:port`.
    pub nats_urls: String,
    /// Redis, `redis://host:port`.
    pub redis_url: String,
    /// This edge's name (letters, digits, `-`, `_`), unique in the cluster.
    pub node_id: String,
    /// The pool of tenants this edge serves: names the JetStream stream, KV bucket and subjects.
    pub pool: String,
    /// JetStream replicas of the message stream and the ownership bucket (3 in production; 1 on
    /// a single NATS server).
    pub replicas: usize,
    /// How long a JetStream publish may keep failing before its publisher is disconnected
    /// (0x89) instead of acknowledged.
    pub publish_deadline: Duration,
    /// How long a connecting client waits for the edge holding its previous connection to close
    /// it.
    pub kick_timeout: Duration,
    /// How long messages stay in the JetStream stream.
    pub stream_max_age: Duration,
    /// TTL of this edge's node lease in Redis (renewed every third of it; the edge fences
    /// itself after half of it without a renewal, and other edges publish its clients' wills
    /// once it lapsed).
    pub lease_ttl: Duration,
    /// How long a share group's QoS 1/2 message may stay unacknowledged by the member holding
    /// it before JetStream gives it to another member (on any edge).
    pub shared_ack_wait: Duration,
    /// Most QoS 1/2 messages of one share group out at members at once (across edges); the
    /// rest wait in the stream.
    pub shared_max_ack_pending: usize,
}

impl ClusterSettings {
    /// Settings with the defaults for everything but the addresses and names.
    pub fn new(nats_urls: String, redis_url: String, node_id: String, pool: String) -> Self {
        Self {
            nats_urls,
            redis_url,
            node_id,
            pool,
            replicas: 3,
            publish_deadline: Duration::from_secs(10),
            kick_timeout: Duration::from_secs(2),
            stream_max_age: Duration::from_secs(3600),
            lease_ttl: Duration::from_secs(10),
            shared_ack_wait: Duration::from_secs(30),
            shared_max_ack_pending: 1000,
        }
    }
}

/// Why the edge could not join the cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// A setting is invalid.
    #[error("invalid cluster setting {name}: {problem}")]
    Setting {
        /// The flag.
        name: &'static str,
        /// What is wrong.
        problem: String,
    },
    /// NATS did not answer.
    #[error(
        "cannot reach NATS at {url}: {reason} (check --nats-url and that nats-server runs with JetStream)"
    )]
    Nats {
        /// The configured URLs.
        url: String,
        /// What failed.
        reason: String,
    },
    /// JetStream refused to create or open the stream or bucket the edge needs.
    #[error("JetStream set-up failed ({what}): {reason}")]
    JetStream {
        /// Which asset.
        what: String,
        /// What failed.
        reason: String,
    },
    /// Redis did not answer.
    #[error("cannot reach Redis at {url}: {reason} (check --redis-url)")]
    Redis {
        /// The configured URL.
        url: String,
        /// What failed.
        reason: String,
    },
}

/// The edge's connection to the cluster, shared by the broker core and the listeners.
#[derive(Debug)]
pub(crate) struct ClusterLink {
    pub(crate) settings: ClusterSettings,
    /// This process's incarnation (node id and start time): message ids and ownership records.
    pub(crate) incarnation: String,
    pub(crate) nats: async_nats::Client,
    pub(crate) ownership: Ownership,
    pub(crate) interest: Interest,
    pub(crate) retained: retained::RetainedSync,
    /// Connection cap and connect rate across edges (Redis).
    admission: stratus_redis_state::Admission,
    /// Tenants with a connection counted in Redis since the last count refresh.
    admitted_tenants: parking_lot::Mutex<std::collections::HashSet<TenantId>>,
    /// The node lease, self-fencing and the dead-hand will registry.
    pub(crate) liveness: liveness::Liveness,
    /// Persistent sessions held by this edge, written through to Redis.
    pub(crate) sessions: SessionSync,
    outbound: publisher::Outbound,
    /// Acknowledgements of share group messages, sent to JetStream by one task.
    pub(crate) verdicts: tokio::sync::mpsc::UnboundedSender<shared_consumer::Verdict>,
    verdicts_rx:
        parking_lot::Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<shared_consumer::Verdict>>>,
    next_message: AtomicU64,
    broker: OnceLock<Weak<Broker>>,
}

/// How long start-up retries a JetStream set-up request that timed out: right after a NATS
/// cluster formed, its JetStream API can take seconds to answer while the meta leader settles.
const JETSTREAM_SETUP_PATIENCE: Duration = Duration::from_secs(20);

/// Runs a JetStream set-up step, retrying it while it times out, for up to
/// [`JETSTREAM_SETUP_PATIENCE`]; any other failure (JetStream disabled, a conflicting stream)
/// is returned at once.
async fn patiently<T, F, Fut>(mut step: F) -> Result<T, ClusterError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ClusterError>>,
{
    let deadline = tokio::time::Instant::now() + JETSTREAM_SETUP_PATIENCE;
    loop {
        match step().await {
            Err(ClusterError::JetStream { what, reason })
                if reason.contains("timed out") && tokio::time::Instant::now() < deadline =>
            {
                tracing::warn!("JetStream set-up ({what}) timed out, retrying: {reason}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            other => return other,
        }
    }
}

impl ClusterLink {
    /// Connects to NATS and Redis, creates (or opens) the JetStream stream and ownership
    /// bucket, and returns the link with the store the broker must use (changes to retained
    /// messages go to Redis through it).
    pub(crate) async fn connect(
        settings: ClusterSettings,
    ) -> Result<(Arc<Self>, Store, ExternalOps), ClusterError> {
        validate_name("--node-id", &settings.node_id)?;
        validate_name("--pool", &settings.pool)?;
        if settings.lease_ttl < liveness::MIN_LEASE_TTL {
            return Err(ClusterError::Setting {
                name: "--lease-ttl-secs",
                problem: format!(
                    "{:?} is shorter than the minimum of 1 s",
                    settings.lease_ttl
                ),
            });
        }
        if settings.shared_ack_wait < Duration::from_secs(1) {
            return Err(ClusterError::Setting {
                name: "--shared-ack-wait-secs",
                problem: format!(
                    "{:?} is shorter than the minimum of 1 s",
                    settings.shared_ack_wait
                ),
            });
        }
        if settings.shared_max_ack_pending == 0 {
            return Err(ClusterError::Setting {
                name: "--shared-max-ack-pending",
                problem: "0 would stop every share group; give at least 1".into(),
            });
        }
        let nats_err = |reason: String| ClusterError::Nats {
            url: settings.nats_urls.clone(),
            reason,
        };
        let urls: Vec<async_nats::ServerAddr> = settings
            .nats_urls
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(|u| u.parse().map_err(|e| nats_err(format!("bad URL {u}: {e}"))))
            .collect::<Result<_, _>>()?;
        if urls.is_empty() {
            return Err(nats_err("no URL given".into()));
        }
        let nats = async_nats::ConnectOptions::new()
            .name(format!("stratus-edge-{}", settings.node_id))
            .connection_timeout(Duration::from_secs(5))
            .event_callback(|event| async move {
                tracing::warn!(%event, "NATS connection event");
            })
            .connect(urls)
            .await
            .map_err(|e| nats_err(e.to_string()))?;
        let js = jetstream::new(nats.clone());
        patiently(|| publisher::ensure_stream(&js, &settings)).await?;
        let ownership = patiently(|| Ownership::open(&js, &settings)).await?;
        let admission = admission::open(&settings.redis_url, &redis_namespace(&settings))
            .await
            .map_err(|reason| ClusterError::Redis {
                url: settings.redis_url.clone(),
                reason,
            })?;
        let retained_store = stratus_redis_state::RetainedStore::connect(
            &settings.redis_url,
            &redis_namespace(&settings),
        )
        .await
        .map_err(|e| ClusterError::Redis {
            url: settings.redis_url.clone(),
            reason: e.to_string(),
        })?;
        let session_store = stratus_redis_state::SessionStore::connect(
            &settings.redis_url,
            &redis_namespace(&settings),
        )
        .await
        .map_err(|e| ClusterError::Redis {
            url: settings.redis_url.clone(),
            reason: e.to_string(),
        })?;
        let (store, ops) = Store::external();
        let incarnation = format!("{}-{:x}", settings.node_id, crate::broker::unix_ms_now());
        let liveness = liveness::Liveness::connect(&settings, &incarnation).await?;
        let outbound = publisher::Outbound::start(
            nats.clone(),
            js.clone(),
            store.clone(),
            settings.publish_deadline,
        );
        let (verdicts, verdicts_rx) = tokio::sync::mpsc::unbounded_channel();
        let link = Arc::new(Self {
            verdicts,
            verdicts_rx: parking_lot::Mutex::new(Some(verdicts_rx)),
            incarnation,
            nats,
            ownership,
            interest: Interest::default(),
            retained: retained::RetainedSync::new(retained_store),
            admission,
            admitted_tenants: parking_lot::Mutex::default(),
            liveness,
            sessions: SessionSync::new(session_store),
            outbound,
            next_message: AtomicU64::new(1),
            broker: OnceLock::new(),
            settings,
        });
        Ok((link, store, ops))
    }

    /// Connects the link to the broker it feeds and starts its background tasks: the kick
    /// handler, the applier of store changes (retained messages and sessions) to Redis, the node lease and the will reaper.
    pub(crate) fn start(
        self: &Arc<Self>,
        broker: &Arc<Broker>,
        ops: ExternalOps,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let _ = self.broker.set(Arc::downgrade(broker));
        let mut tasks = Vec::new();
        if let Some(verdicts) = self.verdicts_rx.lock().take() {
            tasks.push(tokio::spawn(shared_consumer::send_verdicts(
                self.nats.clone(),
                verdicts,
            )));
        }
        tasks.extend([
            tokio::spawn(ownership::serve_kicks(Arc::clone(self))),
            tokio::spawn(applier::apply_changes(Arc::clone(self), ops)),
            tokio::spawn(admission::refresh_counts(Arc::clone(self))),
            tokio::spawn(liveness::run_lease(Arc::clone(self))),
            tokio::spawn(liveness::run_reaper(Arc::clone(self))),
        ]);
        tasks
    }

    /// The broker this link feeds (gone only while the process shuts down).
    pub(crate) fn broker(&self) -> Option<Arc<Broker>> {
        self.broker.get().and_then(Weak::upgrade)
    }

    /// The subject space of `tenant` in this edge's pool.
    pub(crate) fn space(&self, tenant: &TenantId) -> Result<SubjectSpace, SubjectError> {
        SubjectSpace::new(&self.settings.pool, tenant.as_str())
    }

    /// The cluster-wide admission counters in Redis.
    pub(crate) fn admission(&self) -> &stratus_redis_state::Admission {
        &self.admission
    }

    /// Everything a CONNECT needs from the cluster before it attaches: the tenant's retained
    /// messages on this edge, the client id's ownership (its previous connection closed
    /// wherever it is), and its session (loaded from Redis when it resumes one). Returns the
    /// fencing token (0 for an empty client id left unclaimed: an assigned id is unique and its
    /// session ends with its connection; see `protocol::client_id_to_assign`).
    /// `Err` carries the CONNACK reason and why the CONNECT is refused.
    pub(crate) async fn prepare_connect(
        self: &Arc<Self>,
        tenant: &Arc<crate::broker::Tenant>,
        client_id: &str,
        intent: SessionIntent,
        limits: &crate::config::Limits,
    ) -> Result<u64, (ReasonCode, String)> {
        if let Some(why) = self.liveness.refusal() {
            return Err((ReasonCode::ServerUnavailable, why));
        }
        self.retained
            .ensure_loaded(self, tenant)
            .await
            .map_err(|why| (ReasonCode::ServerUnavailable, why))?;
        if client_id.is_empty() {
            self.admit_session(&tenant.id, limits).await?;
            return Ok(0);
        }
        self.prepare_session(tenant, client_id, intent).await
    }

    /// Sends a message routed by a local publisher (or a will) to NATS. QoS 1/2 returns the
    /// ticket that completes when JetStream acknowledged it.
    pub(crate) fn publish(
        &self,
        store: &Store,
        tenant: &TenantId,
        msg: &crate::broker::Message,
        origin: Option<u64>,
        publisher: Option<&Arc<crate::broker::ConnControl>>,
    ) -> Result<crate::store::Ticket, stratus_codec::ReasonCode> {
        let space = self.space(tenant).map_err(|e| {
            tracing::error!(tenant = %tenant, "no subject space for the tenant: {e}");
            stratus_codec::ReasonCode::ImplementationSpecificError
        })?;
        let durable = msg.qos != stratus_codec::QoS::AtMostOnce;
        let class = if durable {
            stratus_topics::QosClass::Durable
        } else {
            stratus_topics::QosClass::AtMostOnce
        };
        let subject = space.publish_subject(&msg.topic, class);
        let (headers, payload) = wire::encode(msg, &self.incarnation, origin);
        if !durable {
            self.outbound.send(publisher::Item::Core {
                subject,
                headers,
                payload,
            });
            return Ok(0);
        }
        let ticket = store.reserve();
        self.outbound.send(publisher::Item::Durable {
            subject,
            headers,
            payload,
            message_id: self.message_id(),
            ticket,
            publisher: publisher.cloned(),
        });
        Ok(ticket)
    }

    /// Returns once the NATS server has processed every command this edge sent before (its
    /// subscriptions are in place). `Client::flush` only empties the socket buffer; this makes a
    /// round trip: a message to a fresh inbox of our own comes back only after everything
    /// before it on the connection.
    pub(crate) async fn barrier(&self) -> Result<(), String> {
        let inbox = self.nats.new_inbox();
        let mut echo = self
            .nats
            .subscribe(inbox.clone())
            .await
            .map_err(|e| e.to_string())?;
        self.nats
            .publish(inbox, Bytes::new())
            .await
            .map_err(|e| e.to_string())?;
        match tokio::time::timeout(
            Duration::from_secs(5),
            futures_util::StreamExt::next(&mut echo),
        )
        .await
        {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err("NATS connection closed".into()),
            Err(_) => Err("NATS did not answer within 5 s".into()),
        }
    }

    /// Whether `publisher` should pause because messages wait for NATS (it is woken when they
    /// drained).
    pub(crate) fn congested(&self, publisher: Option<&Arc<crate::broker::ConnControl>>) -> bool {
        self.outbound.congested(publisher)
    }

    /// A cluster-unique message id (JetStream de-duplication of retried publishes); a will
    /// carries its own (`wills::with_message_id`), shared with any reaper publishing it.
    fn message_id(&self) -> String {
        if let Some(will) = wills::take_message_id() {
            return will;
        }
        let n = self.next_message.fetch_add(1, Ordering::Relaxed);
        format!("{}-{n:x}", self.incarnation)
    }

    /// The most retained messages of one tenant an edge loads.
    pub(super) fn retained_limit(&self) -> usize {
        self.broker()
            .map_or(usize::MAX, |b| b.config.limits.max_retained_messages)
    }

    /// The subject kicks for `node` arrive on; `None` for a node name that is not a plain
    /// token (never built from it, so it cannot widen the subject).
    fn kick_subject(&self, node: &str) -> Option<String> {
        stratus_topics::node_subject(&self.settings.pool, node, "kick").ok()
    }

    /// The subject carrying changes to `tenant`'s retained messages.
    fn retained_subject(&self, tenant: &TenantId) -> Result<String, SubjectError> {
        Ok(self.space(tenant)?.retained_changes().to_owned())
    }
}

/// Redis keys of this pool start with this.
fn redis_namespace(settings: &ClusterSettings) -> String {
    format!("stratus:{}", settings.pool)
}

/// Node ids and pool names become NATS tokens: letters, digits, `-` and `_` only.
fn validate_name(name: &'static str, value: &str) -> Result<(), ClusterError> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(ClusterError::Setting {
            name,
            problem: format!(
                "{value:?} must be 1 to 64 letters, digits, '-' or '_' (it becomes part of NATS subjects)"
            ),
        })
    }
}
