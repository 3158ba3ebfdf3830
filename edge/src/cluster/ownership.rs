//! Client-id ownership across edges. The owner of (tenant, client id) is a record in the NATS KV
//! bucket `OWN_<pool>`; the revision a compare-and-set returns is the connection's fencing token.
//! A connecting client claims the record (the later writer wins, as [MQTT-3.1.4-2] asks), asks
//! the edge named in the previous record to close its connection (5.0 DISCONNECT 0x8E), and waits
//! for the answer (bounded by `kick_timeout`) before its CONNACK, so two connections of one
//! client id are never both live.
//!
//! Each edge remembers the claims it made: a kick carrying a newer token closes a local
//! connection with an older one, and a claim that lost the race before its connection attached
//! is refused (checked under the tenant's session lock, which the kick handler also takes).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use bytestring::ByteString;
use futures_util::StreamExt;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use stratus_codec::ReasonCode;
use stratus_model::TenantId;
use tokio::time::Instant;

use super::{ClusterError, ClusterLink, ClusterSettings};

/// How long a "superseded" mark for a claim this edge never made is remembered.
const SUPERSEDED_MEMORY: Duration = Duration::from_secs(30);
/// Compare-and-set attempts before a CONNECT gives up (each conflict is a concurrent CONNECT).
const CAS_ATTEMPTS: usize = 8;

/// The KV record of an owner.
#[derive(Debug, Serialize, Deserialize)]
struct OwnerRecord {
    /// Node id of the edge holding the connection.
    node: String,
    /// Its incarnation.
    incarnation: String,
}

/// A kick request between edges.
#[derive(Debug, Serialize, Deserialize)]
struct KickRequest {
    tenant: String,
    client_id: String,
    token: u64,
}

/// What this edge knows about one client id it claimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OwnerState {
    /// Claimed; the connection has not attached yet.
    Claimed(u64),
    /// A connection with this token is attached to session `session` at `generation`.
    Attached {
        token: u64,
        session: u64,
        generation: u64,
    },
    /// The connection with this token left a persistent session held here offline: the KV
    /// record still names this edge, so a later claim anywhere asks it to let the session go.
    Offline { token: u64, session: u64 },
    /// Another edge claimed it with this (newer) token.
    Superseded(u64),
}

impl OwnerState {
    fn token(self) -> u64 {
        match self {
            Self::Claimed(t) | Self::Superseded(t) => t,
            Self::Attached { token, .. } | Self::Offline { token, .. } => token,
        }
    }
}

type Key = (TenantId, ByteString);

/// A successful claim.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Claim {
    /// The fencing token.
    pub(crate) token: u64,
}

/// The ownership bucket and this edge's claims.
#[derive(Debug)]
pub(crate) struct Ownership {
    kv: kv::Store,
    claims: Mutex<Claims>,
}

#[derive(Debug, Default)]
struct Claims {
    states: HashMap<Key, OwnerState>,
    /// Superseded marks in the order they were made, for forgetting them.
    superseded: VecDeque<(Instant, Key, u64)>,
}

impl Ownership {
    /// Opens (creating when missing) the pool's ownership bucket.
    pub(super) async fn open(
        js: &jetstream::Context,
        settings: &ClusterSettings,
    ) -> Result<Self, ClusterError> {
        let bucket = format!("OWN_{}", settings.pool);
        let kv = match js.get_key_value(&bucket).await {
            Ok(kv) => kv,
            Err(_) => js
                .create_key_value(kv::Config {
                    bucket: bucket.clone(),
                    history: 1,
                    num_replicas: settings.replicas,
                    ..Default::default()
                })
                .await
                .map_err(|e| ClusterError::JetStream {
                    what: format!("key-value bucket {bucket}"),
                    reason: e.to_string(),
                })?,
        };
        Ok(Self {
            kv,
            claims: Mutex::default(),
        })
    }

    /// Claims `client_id` in `tenant` for a connection on this edge and closes its previous
    /// connection wherever it is. `Err` says why the CONNECT must be refused.
    pub(crate) async fn claim(
        &self,
        link: &ClusterLink,
        tenant: &TenantId,
        client_id: &str,
    ) -> Result<Claim, String> {
        let key = record_key(tenant, client_id);
        let record = serde_json::to_vec(&OwnerRecord {
            node: link.settings.node_id.clone(),
            incarnation: link.incarnation.clone(),
        })
        .map_err(|e| e.to_string())?;
        let mut last_error = String::new();
        for _ in 0..CAS_ATTEMPTS {
            let current = match self.kv.entry(&key).await {
                Ok(e) => e,
                Err(e) => {
                    last_error = format!("ownership record unreadable: {e}");
                    continue;
                }
            };
            let live = current
                .as_ref()
                .filter(|e| e.operation == kv::Operation::Put);
            let previous: Option<OwnerRecord> =
                live.and_then(|e| serde_json::from_slice(&e.value).ok());
            let written = match &current {
                Some(e) => self
                    .kv
                    .update(&key, record.clone().into(), e.revision)
                    .await
                    .map_err(|e| e.to_string()),
                None => self
                    .kv
                    .create(&key, record.clone().into())
                    .await
                    .map_err(|e| e.to_string()),
            };
            let token = match written {
                Ok(revision) => revision,
                Err(e) => {
                    last_error = format!("ownership compare-and-set conflicted: {e}");
                    continue;
                }
            };
            {
                let mut claims = self.claims.lock();
                let k = (tenant.clone(), ByteString::from(client_id));
                if let Some(OwnerState::Superseded(t)) = claims.states.get(&k)
                    && *t > token
                {
                    return Err("taken over by a newer connection while connecting".into());
                }
                claims.states.insert(k, OwnerState::Claimed(token));
            }
            if let Some(prev) = previous
                && prev.incarnation != link.incarnation
            {
                kick_remote(link, &prev.node, tenant, client_id, token).await;
            }
            return Ok(Claim { token });
        }
        Err(format!(
            "cannot claim the client id in the cluster's ownership store ({last_error})"
        ))
    }

    /// Whether `token` is still this edge's claim on the client id (called under the tenant's
    /// session lock before attaching).
    pub(crate) fn is_current(&self, tenant: &TenantId, client_id: &str, token: u64) -> bool {
        let claims = self.claims.lock();
        let k = (tenant.clone(), ByteString::from(client_id));
        claims.states.get(&k).is_none_or(|s| s.token() <= token)
    }

    /// Records that the connection with `token` attached (under the tenant's session lock).
    pub(crate) fn attached(
        &self,
        tenant: &TenantId,
        client_id: &ByteString,
        token: u64,
        session: u64,
        generation: u64,
    ) {
        if token == 0 {
            // Assigned client ids are unique: never claimed.
            return;
        }
        self.claims.lock().states.insert(
            (tenant.clone(), client_id.clone()),
            OwnerState::Attached {
                token,
                session,
                generation,
            },
        );
    }

    /// Forgets a claim whose connection was refused before attaching.
    pub(crate) fn abandon(&self, tenant: &TenantId, client_id: &str, token: u64) {
        let k = (tenant.clone(), ByteString::from(client_id));
        let mut claims = self.claims.lock();
        if claims.states.get(&k) == Some(&OwnerState::Claimed(token)) {
            claims.states.remove(&k);
        }
    }

    /// The connection attached to `session` at `generation` ended. A persistent session stays
    /// held here (the claim becomes `Offline` and the KV record keeps naming this edge);
    /// otherwise the claim is forgotten and its key and token returned when it was still the
    /// current one (the caller deletes the KV record).
    pub(crate) fn released(
        &self,
        tenant: &TenantId,
        client_id: &ByteString,
        session: u64,
        generation: u64,
        persistent: bool,
    ) -> Option<(String, u64)> {
        let k = (tenant.clone(), client_id.clone());
        let mut claims = self.claims.lock();
        match claims.states.get(&k) {
            Some(OwnerState::Attached {
                token,
                session: s,
                generation: g,
            }) if *s == session && *g == generation => {
                let token = *token;
                if persistent {
                    claims
                        .states
                        .insert(k, OwnerState::Offline { token, session });
                    return None;
                }
                claims.states.remove(&k);
                Some((record_key(tenant, client_id), token))
            }
            _ => None,
        }
    }

    /// The held session `session` ended (expired, or discarded): forgets the claim and returns
    /// the KV key and token to delete when it was still the current one.
    pub(crate) fn ended(
        &self,
        tenant: &TenantId,
        client_id: &ByteString,
        session: u64,
    ) -> Option<(String, u64)> {
        let k = (tenant.clone(), client_id.clone());
        let mut claims = self.claims.lock();
        match claims.states.get(&k) {
            Some(OwnerState::Offline { token, session: s }) if *s == session => {
                let token = *token;
                claims.states.remove(&k);
                Some((record_key(tenant, client_id), token))
            }
            _ => None,
        }
    }

    /// Whether the connection of `client_id` that held `token` was followed by another
    /// connection of the client (claimed on any edge) before `before_unix_ms`: the record has
    /// moved past `token` and its current entry was written before that time. A client that
    /// connected twice since, once before and once after, reads as not followed (only the
    /// newest entry is kept). `Err` when the record cannot be read.
    pub(crate) async fn followed_before(
        &self,
        tenant: &TenantId,
        client_id: &str,
        token: u64,
        before_unix_ms: u64,
    ) -> Result<bool, String> {
        let key = record_key(tenant, client_id);
        let entry = self
            .kv
            .entry(&key)
            .await
            .map_err(|e| format!("ownership record unreadable: {e}"))?;
        Ok(entry.is_some_and(|e| {
            let written_ms = e.created.unix_timestamp_nanos() / 1_000_000;
            e.revision != token && written_ms < i128::from(before_unix_ms)
        }))
    }

    /// Deletes the KV record of a released claim unless someone claimed it since.
    pub(crate) async fn delete_record(&self, key: String, token: u64) {
        if let Err(e) = self.kv.delete_expect_revision(&key, Some(token)).await {
            tracing::debug!(
                key,
                "ownership record not deleted (claimed again since?): {e}"
            );
        }
    }

    /// Another edge claimed the client id with `token`: returns what this edge must let go of,
    /// if it holds an older claim. Called with the tenant's session lock held.
    fn supersede(&self, key: Key, token: u64) -> Option<Held> {
        let now = Instant::now();
        let mut claims = self.claims.lock();
        while let Some((at, k, t)) = claims.superseded.front().cloned() {
            if now.duration_since(at) < SUPERSEDED_MEMORY {
                break;
            }
            claims.superseded.pop_front();
            if claims.states.get(&k) == Some(&OwnerState::Superseded(t)) {
                claims.states.remove(&k);
            }
        }
        let current = claims.states.get(&key).copied();
        if current.is_some_and(|s| s.token() >= token) {
            return None;
        }
        claims
            .states
            .insert(key.clone(), OwnerState::Superseded(token));
        claims.superseded.push_back((now, key, token));
        match current {
            Some(OwnerState::Attached {
                session,
                generation,
                ..
            }) => Some(Held::Attached {
                session,
                generation,
            }),
            Some(OwnerState::Offline { session, .. }) => Some(Held::Offline { session }),
            _ => None,
        }
    }
}

/// What a kick finds held on this edge.
#[derive(Debug, Clone, Copy)]
enum Held {
    /// A connection attached to session `session` at `generation`.
    Attached { session: u64, generation: u64 },
    /// A persistent session held offline.
    Offline { session: u64 },
}

/// The KV key of a client id's ownership record.
fn record_key(tenant: &TenantId, client_id: &str) -> String {
    format!(
        "{}.{}",
        tenant.as_str(),
        stratus_topics::client_key(tenant.as_str(), client_id)
    )
}

/// Asks `node` to close its connection of `client_id` and waits for its answer (bounded).
async fn kick_remote(
    link: &ClusterLink,
    node: &str,
    tenant: &TenantId,
    client_id: &str,
    token: u64,
) {
    let request = KickRequest {
        tenant: tenant.as_str().to_owned(),
        client_id: client_id.to_owned(),
        token,
    };
    let Ok(body) = serde_json::to_vec(&request) else {
        return;
    };
    let Some(subject) = link.kick_subject(node) else {
        tracing::warn!(
            node,
            "ownership record names a node that is not a plain token; no takeover request sent"
        );
        return;
    };
    match tokio::time::timeout(
        link.settings.kick_timeout,
        link.nats.request(subject, body.into()),
    )
    .await
    {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::info!(
            node,
            "previous owner did not answer the takeover request ({e}); its lease or fencing covers it"
        ),
        Err(_) => tracing::warn!(
            node,
            "previous owner did not answer the takeover request within kick_timeout; proceeding"
        ),
    }
}

/// Serves kick requests addressed to this edge until the task is dropped.
pub(super) async fn serve_kicks(link: Arc<ClusterLink>) {
    // The node id was checked at start-up (`validate_name`): always a plain token.
    let Some(subject) = link.kick_subject(&link.settings.node_id) else {
        tracing::error!("node id is not a plain token; takeover requests cannot reach this edge");
        return;
    };
    let mut sub = loop {
        match link.nats.subscribe(subject.clone()).await {
            Ok(s) => break s,
            Err(e) => {
                tracing::error!(
                    subject,
                    "cannot subscribe to takeover requests, retrying: {e}"
                );
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    while let Some(msg) = sub.next().await {
        let link = Arc::clone(&link);
        tokio::spawn(async move {
            let answer = match serde_json::from_slice::<KickRequest>(&msg.payload) {
                Ok(req) => handle_kick(&link, req).await,
                Err(e) => {
                    tracing::warn!("malformed takeover request ignored: {e}");
                    "malformed"
                }
            };
            if let Some(reply) = msg.reply
                && let Err(e) = link.nats.publish(reply, answer.into()).await
            {
                tracing::debug!("takeover answer not sent: {e}");
            }
        });
    }
}

/// Lets go of what a kick names, if it is older than the kick: closes the local connection
/// (waiting until it detached, bounded by `kick_timeout`), drops a persistent session held here
/// from memory, and waits until every change this edge made to its state reached Redis, so the
/// new owner loads all of it.
async fn handle_kick(link: &ClusterLink, req: KickRequest) -> &'static str {
    let Ok(tenant_id) = TenantId::new(&req.tenant) else {
        return "malformed";
    };
    let Some(broker) = link.broker() else {
        return "stopping";
    };
    let tenant = broker.tenant(&tenant_id);
    let client_id = ByteString::from(req.client_id.as_str());
    let target = {
        let sessions = tenant.sessions.lock();
        let held = link
            .ownership
            .supersede((tenant_id.clone(), client_id.clone()), req.token);
        held.and_then(|held| {
            let (session_id, generation) = match held {
                Held::Attached {
                    session,
                    generation,
                } => (session, Some(generation)),
                Held::Offline { session } => (session, None),
            };
            let session = sessions.get(&client_id).filter(|s| s.id == session_id)?;
            if let Some(generation) = generation {
                let st = session.state.lock();
                if st.is_attached(generation)
                    && let Some(attachment) = &st.attachment
                {
                    attachment.control.kick(ReasonCode::SessionTakenOver);
                }
            }
            Some((Arc::clone(session), generation))
        })
    };
    let Some((session, generation)) = target else {
        return "none";
    };
    tracing::info!(
        tenant = %tenant_id,
        client_id = %client_id,
        "session taken over by a connection on another edge; the local connection is closed \
         and the session handed over"
    );
    link.hand_over_kicked(&broker, &tenant, &session, generation)
        .await;
    "kicked"
}
