//! Failed-connect lockouts across edges (the clustered shape): the failures each edge counts in
//! its own table ([`super::limiter`]) are also counted in Redis
//! (`stratus_redis_state::Admission`), and a CONNECT is refused when its client id or its
//! source address reached the limit on any edge, so moving from edge to edge does not buy a
//! password guesser more attempts.
//!
//! Redis answers these checks on every CONNECT, each call bounded by [`REDIS_WAIT`]. When it
//! cannot, the edge's own table still applies (logged): the connection-limit check that follows
//! refuses the CONNECT anyway while Redis is unreachable.

use std::future::Future;
use std::net::IpAddr;
use std::time::Duration;

use stratus_model::TenantId;
use stratus_redis_state::Admission;

use super::FailureLimits;

/// The longest a CONNECT waits for one of these Redis calls.
const REDIS_WAIT: Duration = Duration::from_millis(500);

/// `call` bounded by [`REDIS_WAIT`]; a timeout reads as an error.
async fn bounded<T>(
    call: impl Future<Output = Result<T, stratus_redis_state::RedisStateError>>,
) -> Result<T, String> {
    match tokio::time::timeout(REDIS_WAIT, call).await {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(_) => Err(format!("Redis did not answer within {REDIS_WAIT:?}")),
    }
}

/// The cluster's failed-connect counters.
#[derive(Debug)]
pub(crate) struct SharedFailures {
    admission: Admission,
    limits: FailureLimits,
}

/// What the cluster's counters say about a CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct SharedVerdict {
    /// The client id or the address reached its limit.
    pub(crate) blocked: bool,
    /// The client id has failures in its window (forgiven when it authenticates).
    pub(crate) client_failed: bool,
}

impl SharedFailures {
    pub(crate) fn new(admission: Admission, limits: FailureLimits) -> Self {
        Self { admission, limits }
    }

    /// Checks the client id and the address against the cluster's counts.
    pub(crate) async fn check(
        &self,
        tenant: &TenantId,
        client_id: &str,
        address: IpAddr,
    ) -> SharedVerdict {
        let key = stratus_topics::client_key(tenant.as_str(), client_id);
        match bounded(self.admission.failures(tenant, &key, &address.to_string())).await {
            Ok((client, addr)) => SharedVerdict {
                blocked: client >= u64::from(self.limits.per_client_id)
                    || addr >= u64::from(self.limits.per_address),
                client_failed: client > 0,
            },
            Err(e) => {
                tracing::warn!(
                    tenant = %tenant,
                    "cannot read the cluster's failed-connect counts ({e}); this edge's own apply"
                );
                SharedVerdict::default()
            }
        }
    }

    /// Counts a failed CONNECT of the client id and the address.
    pub(crate) async fn record_failure(&self, tenant: &TenantId, client_id: &str, address: IpAddr) {
        let key = stratus_topics::client_key(tenant.as_str(), client_id);
        let address = address.to_string();
        let record = self
            .admission
            .record_failure(tenant, &key, &address, self.limits.window);
        if let Err(e) = bounded(record).await {
            tracing::warn!(
                tenant = %tenant,
                "a failed CONNECT was not counted in the cluster ({e}); this edge counted it"
            );
        }
    }

    /// Forgets the client id's failures after it authenticated.
    pub(crate) async fn forgive(&self, tenant: &TenantId, client_id: &str) {
        let key = stratus_topics::client_key(tenant.as_str(), client_id);
        if let Err(e) = bounded(self.admission.forgive(tenant, &key)).await {
            tracing::warn!(tenant = %tenant, "the cluster's failed-connect count of a client id was not reset ({e})");
        }
    }
}
