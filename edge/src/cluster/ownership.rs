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
    /// Another edge claimed it with this (newer) token.
    Superseded(u64),
}

impl OwnerState {
    fn token(self) -> u64 {
        match self {
            Self::Claimed(t) | Self::Superseded(t) => t,
            Self::Attached { token, .. } => token,
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
        let key = format!(
            "{}.{}",
            tenant.as_str(),
            stratus_topics::client_key(tenant.as_str(), client_id)
        );
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

    /// The connection attached to `session` at `generation` ended: forgets the claim and
    /// returns its token when it was still the current one (the caller deletes the KV record).
    pub(crate) fn released(
        &self,
        tenant: &TenantId,
        client_id: &ByteString,
        session: u64,
        generation: u64,
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
                claims.states.remove(&k);
                let key = format!(
                    "{}.{}",
                    tenant.as_str(),
                    stratus_topics::client_key(tenant.as_str(), client_id)
                );
                Some((key, token))
            }
            _ => None,
        }
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

    /// Another edge claimed the client id with `token`: returns the local attachment to close,
    /// if an older one is attached. Called with the tenant's session lock held.
    fn supersede(&self, key: Key, token: u64) -> Option<(u64, u64)> {
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
            }) => Some((session, generation)),
            _ => None,
        }
    }
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

/// Closes the local connection a kick names (if it is older than the kick) and waits until it
/// is detached, bounded by `kick_timeout`.
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
        let target = link
            .ownership
            .supersede((tenant_id.clone(), client_id.clone()), req.token);
        target.and_then(|(session_id, generation)| {
            let session = sessions.get(&client_id).filter(|s| s.id == session_id)?;
            let st = session.state.lock();
            if !st.is_attached(generation) {
                return None;
            }
            st.attachment
                .as_ref()?
                .control
                .kick(ReasonCode::SessionTakenOver);
            Some((Arc::clone(session), generation))
        })
    };
    let Some((session, generation)) = target else {
        return "none";
    };
    tracing::info!(
        tenant = %tenant_id,
        client_id = %client_id,
        "session taken over by a connection on another edge; the local connection is closed"
    );
    let deadline = Instant::now() + link.settings.kick_timeout;
    while session.state.lock().is_attached(generation) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    "kicked"
}
