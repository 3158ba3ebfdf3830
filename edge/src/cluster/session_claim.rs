//! Connecting to a persistent session in the clustered shape: a local copy of the session is
//! let go (its connection closed, its changes flushed to Redis), the client id is claimed in the
//! ownership bucket (the edge holding it elsewhere lets it go the same way before it answers),
//! then the session is claimed in Redis with the new token, counted against the tenant's session
//! cap when it is new, loaded, and installed into the broker, which resumes it on attach.

use std::collections::HashMap;
use std::sync::Arc;

use bytestring::ByteString;
use stratus_codec::ReasonCode;
use stratus_model::TenantId;
use stratus_redis_state::{Claim, ClaimMode, SessionLoadLimits};

use super::ClusterLink;
use super::sessions::{SessionIntent, flush, stored_session};
use crate::broker::{Session, Tenant};

impl ClusterLink {
    /// Prepares the session a CONNECT with `token` attaches to: lets go of any local copy,
    /// claims the client id (handing it over from another edge), then claims and loads the
    /// session from Redis and installs it; a session it creates counts against the tenant's
    /// session cap. `Err` carries the CONNACK reason and why the CONNECT is refused.
    pub(crate) async fn prepare_session(
        self: &Arc<Self>,
        tenant: &Arc<Tenant>,
        client_id: &str,
        intent: SessionIntent,
    ) -> Result<u64, (ReasonCode, String)> {
        let unavailable = |why: String| (ReasonCode::ServerUnavailable, why);
        let Some(broker) = self.broker() else {
            return Err(unavailable("the edge is shutting down".into()));
        };
        // A local copy first: its connection closes and its changes reach Redis under the
        // token they were made with.
        if let Some((local_tenant, session)) = broker.local_session(&tenant.id, client_id) {
            self.let_go_locally(&broker, &local_tenant, &session).await;
        }
        let token = self
            .ownership
            .claim(self, &tenant.id, client_id)
            .await
            .map(|c| c.token)
            .map_err(unavailable)?;
        let client_key = stratus_topics::client_key(tenant.id.as_str(), client_id);
        let mode = if intent.clean_start {
            ClaimMode::Fresh {
                persistent: intent.expiry_secs > 0,
            }
        } else {
            ClaimMode::Resume
        };
        let limits = &broker.config.limits;
        let load_limits = SessionLoadLimits {
            max_subscriptions: limits.max_subscriptions_per_session,
            max_messages: limits
                .max_queued_messages
                .saturating_add(usize::from(limits.max_inflight_messages))
                .saturating_add(usize::from(limits.receive_maximum)),
            max_incoming_qos2: usize::from(u16::MAX),
        };
        let claimed = super::admission::with_retries(|| {
            self.sessions
                .store
                .claim(&tenant.id, &client_key, client_id, token, mode, load_limits)
        })
        .await
        .map_err(|e| {
            self.ownership.abandon(&tenant.id, client_id, token);
            unavailable(format!("session state unavailable in Redis: {e}"))
        })?;
        if matches!(claimed, Claim::Fresh | Claim::Resumed(None))
            && let Err(refused) = self.admit_session(&tenant.id, &broker.config.limits).await
        {
            self.ownership.abandon(&tenant.id, client_id, token);
            return Err(refused);
        }
        let client_id_bytes = ByteString::from(client_id);
        match claimed {
            Claim::Fenced { current } => {
                self.ownership.abandon(&tenant.id, client_id, token);
                Err(unavailable(format!(
                    "a newer connection of this client id (token {current}) owns its session"
                )))
            }
            Claim::Fresh => {
                if intent.expiry_secs > 0 {
                    self.register_new(&tenant.id, &client_id_bytes, token).await;
                }
                Ok(token)
            }
            Claim::Resumed(None) => {
                if intent.expiry_secs == 0 {
                    // Nothing stored and nothing to store: leave no key behind.
                    if let Err(e) = self
                        .sessions
                        .store
                        .delete(&tenant.id, &client_key, token)
                        .await
                    {
                        tracing::warn!(tenant = %tenant.id, "empty session record not removed from Redis: {e}");
                    }
                } else {
                    self.register_new(&tenant.id, &client_id_bytes, token).await;
                }
                Ok(token)
            }
            Claim::Resumed(Some(state)) => {
                let cursor = state.cursor;
                let (stored, since) = stored_session(&tenant.id, &client_id_bytes, state);
                // Registered before installing: installing submits changes (an expired session
                // is deleted), and they are written under this token.
                self.sessions
                    .register(&tenant.id, &client_id_bytes, 0, token, cursor, since);
                match broker.install_session(tenant, stored) {
                    Some(session) => {
                        self.sessions
                            .rebind(&tenant.id, &client_id_bytes, session.id);
                        // What was published while it was offline is queued before the CONNACK.
                        if let Err(e) = self.catch_up(tenant, &session).await {
                            tracing::warn!(tenant = %tenant.id, client_id = %client_id, "offline messages not read before the CONNACK (the reader delivers them after): {e}");
                        }
                    }
                    None => self.sessions.forget_any(&tenant.id, &client_id_bytes),
                }
                Ok(token)
            }
        }
    }

    /// Registers a new persistent session claimed with `token`: it reads the stream from its
    /// current head.
    async fn register_new(&self, tenant: &TenantId, client_id: &ByteString, token: u64) {
        let position = self.stream_head().await.unwrap_or(0);
        self.sessions
            .register(tenant, client_id, 0, token, position, HashMap::new());
    }

    /// Closes a local connection of the session (waiting until it detached), drops the session
    /// from memory and waits until its changes reached Redis.
    async fn let_go_locally(
        &self,
        broker: &Arc<crate::broker::Broker>,
        tenant: &Arc<Tenant>,
        session: &Arc<Session>,
    ) {
        let generation = {
            let st = session.state.lock();
            st.attachment.as_ref().map(|a| {
                a.control.kick(stratus_codec::ReasonCode::SessionTakenOver);
                st.generation
            })
        };
        self.hand_over_kicked(broker, tenant, session, generation)
            .await;
    }

    /// After a local connection of `session` (attached at `generation`, if any) was kicked:
    /// waits (bounded by `kick_timeout`) until it detached, drops the session from memory, and
    /// waits until every change this edge made to it reached Redis, so the new owner loads all
    /// of it.
    pub(super) async fn hand_over_kicked(
        &self,
        broker: &Arc<crate::broker::Broker>,
        tenant: &Arc<Tenant>,
        session: &Arc<Session>,
        generation: Option<u64>,
    ) {
        let deadline = tokio::time::Instant::now() + self.settings.kick_timeout;
        if let Some(generation) = generation {
            while session.state.lock().is_attached(generation)
                && tokio::time::Instant::now() < deadline
            {
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
        }
        broker.hand_over(tenant, session);
        if tokio::time::timeout_at(deadline, flush(&broker.store))
            .await
            .is_err()
        {
            tracing::warn!(
                tenant = %tenant.id,
                client_id = %session.client_id,
                "session changes not all in Redis within kick_timeout; the new owner's fencing \
                 token makes the rest no-ops"
            );
        }
        self.sessions
            .forget(&tenant.id, &session.client_id, session.id);
    }

    /// The stream's last sequence: where a new session or subscription starts reading.
    pub(super) async fn stream_head(&self) -> Result<u64, String> {
        // One round trip: looking the stream up returns its current state.
        let js = async_nats::jetstream::new(self.nats.clone());
        let stream = js
            .get_stream(super::publisher::stream_name(&self.settings.pool))
            .await
            .map_err(|e| e.to_string())?;
        Ok(stream.cached_info().state.last_sequence)
    }
}
