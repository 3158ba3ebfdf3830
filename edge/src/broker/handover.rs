//! The clustered shape's session hand-over: a persistent session lives in the memory of the edge
//! its client last connected to, with its state written through to Redis. When the client
//! connects to another edge, this edge lets the session go ([`Broker::hand_over`]: no store
//! deletion, its Redis state stays for the new owner), and the new edge installs the state it
//! loaded from Redis ([`Broker::install_session`]) before attaching the connection to it, so the
//! attach resumes it exactly as in the embedded shape.

use std::sync::Arc;

use bytestring::ByteString;
use stratus_model::TenantId;
use tokio::time::Instant;

use super::Broker;
use super::persist::unix_ms_now;
use super::restore::RestoreSummary;
use super::session::Session;
use super::tenant::Tenant;
use crate::store::StoredSession;

impl Broker {
    /// Drops `session` from this edge's memory without ending it: another edge took its client
    /// over and loads it from Redis. Its subscriptions leave the index, its reader stops, a
    /// will still waiting for its delay is dropped (the new connection resumes the session,
    /// which cancels it), and no store change is made. Does nothing if `session` is no longer the
    /// tenant's session for its client id, or is attached again.
    pub(crate) fn hand_over(&self, tenant: &Tenant, session: &Arc<Session>) {
        let subscriptions = {
            let mut sessions = tenant.sessions.lock();
            if !sessions
                .get(&session.client_id)
                .is_some_and(|s| Arc::ptr_eq(s, session))
            {
                return;
            }
            let mut st = session.state.lock();
            if st.attachment.is_some() {
                return;
            }
            sessions.remove(&session.client_id);
            st.ended = true;
            st.release_publishers();
            st.will = None;
            // The new owner registers its connection's will; this one's is cancelled.
            self.forget_will_registration(&tenant.id, &session.client_id);
            st.pending.clear();
            st.inflight.clear();
            st.qos0.clear();
            st.queued_bytes = 0;
            st.incoming_qos2.clear();
            std::mem::take(&mut st.subscriptions)
        };
        for sub in &subscriptions {
            self.unindex_subscription(tenant, session, sub);
        }
        if let Some(link) = self.cluster() {
            link.sessions
                .stop_reader(&tenant.id, &session.client_id, session.id);
        }
        tracing::debug!(tenant = %tenant.id, client_id = %session.client_id, "session handed over to another edge");
    }

    /// Puts a persistent session loaded from Redis into `tenant` as an offline session (the
    /// connection that asked for it attaches next). Returns it, or `None` when the stored state
    /// was unusable or had expired (then it was deleted).
    pub(crate) fn install_session(
        &self,
        tenant: &Arc<Tenant>,
        stored: StoredSession,
    ) -> Option<Arc<Session>> {
        let client_id: ByteString = stored.client_id.clone();
        let mut summary = RestoreSummary::default();
        self.restore_session(stored, Instant::now(), unix_ms_now(), &mut summary);
        if summary.skipped > 0 {
            tracing::warn!(
                tenant = %tenant.id,
                client_id = %client_id,
                skipped = summary.skipped,
                "records of a session loaded from Redis failed validation and were skipped"
            );
        }
        if summary.sessions == 0 {
            return None;
        }
        tenant.sessions.lock().get(&client_id).cloned()
    }

    /// The tenant's session of `client_id` on this edge, if it holds one.
    pub(crate) fn local_session(
        &self,
        tenant: &TenantId,
        client_id: &str,
    ) -> Option<(Arc<Tenant>, Arc<Session>)> {
        let tenant = self.tenant(tenant);
        let session = tenant.sessions.lock().get(client_id).cloned()?;
        Some((tenant, session))
    }
}
