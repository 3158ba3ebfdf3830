//! Admission limits across edges: a tenant's connection cap (`limits.max_connections_per_tenant`),
//! its session cap (`limits.max_sessions_per_tenant`) and a client id's connect rate
//! (`limits.max_connects_per_client_id_per_second`), counted in Redis
//! (`stratus_redis_state::Admission`). Each edge rewrites its own per-tenant connection and
//! session counts every `REFRESH` (so ended sessions are accounted for within that period, and
//! the counts of a dead edge stop counting after `COUNT_TTL`), and its connection count also
//! when a connection closes, before the socket does. Counts are absolute writes of what the
//! edge holds, so a write that races a CONNECT on the same edge can undercount by one until the
//! next write (the CONNECT's slot is taken in Redis before it is counted locally). A session
//! counts on the edge holding it: one moving to another edge is counted by the new edge at its
//! next refresh (not at the CONNECT, which a tenant at its cap must still be able to make), and
//! the offline sessions of a dead edge count again once a client resumes them. If Redis cannot answer, the CONNECT is
//! refused (0x88 / 3): a limit that cannot be checked is not assumed to hold.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use stratus_codec::ReasonCode;
use stratus_model::TenantId;
use stratus_redis_state::Admission;

use super::ClusterLink;
use crate::config::Limits;

/// How often an edge rewrites its connection counts.
const REFRESH: Duration = Duration::from_secs(2);
/// How long a closing connection waits for its count to be written before its socket closes.
const CLOSE_WRITE_WAIT: Duration = Duration::from_millis(250);
/// How long a count stays trusted without a rewrite.
const COUNT_TTL: Duration = Duration::from_secs(10);

impl ClusterLink {
    /// Counts a CONNECT of `client_id` against the tenant's limits across the cluster. `Err`
    /// carries the CONNACK reason and why.
    pub(crate) async fn admit(
        &self,
        tenant: &TenantId,
        client_id: &str,
        limits: &Limits,
    ) -> Result<(), (ReasonCode, String)> {
        let unavailable = |e: stratus_redis_state::RedisStateError| {
            (
                ReasonCode::ServerUnavailable,
                format!("cannot check the cluster's connection limits in Redis: {e}"),
            )
        };
        if !client_id.is_empty() {
            let key = stratus_topics::client_key(tenant.as_str(), client_id);
            let n = with_retries(|| {
                self.admission
                    .count_connect(tenant, &key, Duration::from_secs(1))
            })
            .await
            .map_err(unavailable)?;
            if n > u64::from(limits.max_connects_per_client_id_per_second) {
                return Err((
                    ReasonCode::ConnectionRateExceeded,
                    format!(
                        "more than {} CONNECTs of this client id in one second across the cluster \
                         (limits.max_connects_per_client_id_per_second)",
                        limits.max_connects_per_client_id_per_second
                    ),
                ));
            }
        }
        let limit = u64::try_from(limits.max_connections_per_tenant).unwrap_or(u64::MAX);
        let added = with_retries(|| {
            self.admission
                .try_add_connection(tenant, &self.incarnation, limit, COUNT_TTL)
        })
        .await
        .map_err(unavailable)?;
        // Counted in Redis: this edge rewrites the tenant's count at its next refresh, even if
        // the connection is gone by then.
        self.admitted_tenants.lock().insert(tenant.clone());
        if !added.admitted {
            return Err((
                ReasonCode::QuotaExceeded,
                format!(
                    "the tenant's connection cap ({limit}) is reached across the cluster \
                     (limits.max_connections_per_tenant)"
                ),
            ));
        }
        Ok(())
    }

    /// A connection of `tenant` closed (its local count already dropped): writes this edge's
    /// count to Redis now instead of at the next refresh. A failure is logged; the refresh
    /// corrects it.
    /// Bounded by [`CLOSE_WRITE_WAIT`], and skipped while the edge is fenced off (Redis not
    /// answering): a closing socket never waits on Redis for long.
    pub(crate) async fn connection_closed(&self, tenant: &crate::broker::Tenant) {
        if self.liveness.is_fenced() {
            return;
        }
        let n = tenant.connections.load(Ordering::Acquire) as u64;
        let write = self
            .admission
            .refresh(&tenant.id, &self.incarnation, n, COUNT_TTL);
        match tokio::time::timeout(CLOSE_WRITE_WAIT, write).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::debug!(tenant = %tenant.id, "connection count not written at close ({e}); the next refresh writes it")
            }
            Err(_) => {
                tracing::debug!(tenant = %tenant.id, "connection count not written at close within {CLOSE_WRITE_WAIT:?}; the next refresh writes it")
            }
        }
    }

    /// Counts a session this edge creates for a CONNECT against the tenant's session cap
    /// across the cluster. `Err` carries the CONNACK reason and why.
    pub(crate) async fn admit_session(
        &self,
        tenant: &TenantId,
        limits: &Limits,
    ) -> Result<(), (ReasonCode, String)> {
        let limit = u64::try_from(limits.max_sessions_per_tenant).unwrap_or(u64::MAX);
        let added = with_retries(|| {
            self.admission
                .try_add_session(tenant, &self.incarnation, limit, COUNT_TTL)
        })
        .await
        .map_err(|e| {
            (
                ReasonCode::ServerUnavailable,
                format!("cannot check the cluster's session cap in Redis: {e}"),
            )
        })?;
        self.admitted_tenants.lock().insert(tenant.clone());
        if !added.admitted {
            return Err((
                ReasonCode::QuotaExceeded,
                format!(
                    "the tenant's session cap ({limit}) is reached across the cluster \
                     (limits.max_sessions_per_tenant)"
                ),
            ));
        }
        Ok(())
    }
}

/// Opens the admission counters on Redis.
pub(super) async fn open(redis_url: &str, namespace: &str) -> Result<Admission, String> {
    let conn = stratus_redis_state::connect(redis_url)
        .await
        .map_err(|e| e.to_string())?;
    Admission::from_manager(conn, namespace).map_err(|e| e.to_string())
}

/// Rewrites this edge's connection counts every `REFRESH` until the task is dropped.
pub(super) async fn refresh_counts(link: Arc<ClusterLink>) {
    let mut tick = tokio::time::interval(REFRESH);
    // Tenants whose count was non-zero at the last refresh (their zero must be written once);
    // tenants admitted since are in `ClusterLink::admitted_tenants`.
    let mut nonzero: Vec<TenantId> = Vec::new();
    loop {
        tick.tick().await;
        let Some(broker) = link.broker() else { return };
        let mut now_nonzero = Vec::new();
        let mut counts = Vec::new();
        let admitted = std::mem::take(&mut *link.admitted_tenants.lock());
        for tenant in broker.tenants() {
            let n = tenant.connections.load(Ordering::Acquire) as u64;
            let sessions = tenant.sessions.lock().len() as u64;
            let active = n > 0 || sessions > 0;
            if active || nonzero.contains(&tenant.id) || admitted.contains(&tenant.id) {
                counts.push((tenant.id.clone(), n, sessions));
            }
            if active {
                now_nonzero.push(tenant.id.clone());
            }
        }
        drop(broker);
        for (tenant, n, sessions) in counts {
            if let Err(e) = link
                .admission
                .refresh(&tenant, &link.incarnation, n, COUNT_TTL)
                .await
            {
                tracing::warn!(tenant = %tenant, "connection count not refreshed in Redis: {e}");
            }
            if let Err(e) = link
                .admission
                .refresh_sessions(&tenant, &link.incarnation, sessions, COUNT_TTL)
                .await
            {
                tracing::warn!(tenant = %tenant, "session count not refreshed in Redis: {e}");
            }
        }
        nonzero = now_nonzero;
    }
}

/// Runs a Redis call, and again (up to 3 attempts, 100 ms apart) when it fails: the first call
/// after Redis restarted fails while the connection is re-established in the background, and a
/// CONNECT should not be refused for that.
pub(super) async fn with_retries<T, F, Fut>(
    mut call: F,
) -> Result<T, stratus_redis_state::RedisStateError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, stratus_redis_state::RedisStateError>>,
{
    let mut attempt = 1;
    loop {
        match call().await {
            Ok(v) => return Ok(v),
            Err(e) if attempt >= 3 => return Err(e),
            Err(e) => {
                tracing::debug!(attempt, "Redis admission check failed, retrying: {e}");
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}
