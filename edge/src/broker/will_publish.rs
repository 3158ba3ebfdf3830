//! Publishing wills: checked against the tenant's access rules when published (they may have
//! changed since CONNECT), then sent through the normal publish path; in the clustered shape a
//! QoS 1/2 will can carry the JetStream message id a reaper would use for it, so it is stored once
//! whichever edge publishes it.

use bytestring::ByteString;
use stratus_model::TenantId;
use tokio::time::Instant;

use super::Broker;
use super::session::PendingWill;
use super::tenant::Tenant;

impl Broker {
    /// Clustered shape: drops the Redis registration of `client_id`'s will (its connection
    /// ended and the will was published, cancelled or never due, or the session left this
    /// edge), so that no reaper publishes it should this edge die later. Returns the message id
    /// the will is published with. Call under the session's state lock: a connection attaching
    /// meanwhile registers its own will only after.
    pub(crate) fn forget_will_registration(
        &self,
        tenant: &TenantId,
        client_id: &ByteString,
    ) -> Option<String> {
        self.cluster()?.liveness.wills.detached(tenant, client_id)
    }

    /// Publishes wills (each through the normal publish path).
    pub(crate) fn publish_wills(&self, tenant: &Tenant, wills: Vec<PendingWill>) {
        for pending in wills {
            self.publish_will_as(tenant, &pending, None);
        }
    }

    /// Publishes one will if the tenant's access rules allow it; in the clustered shape a QoS
    /// 1/2 will carries JetStream message id `message_id` when given (the id a reaper would
    /// use too). True when it was published.
    pub(crate) fn publish_will_as(
        &self,
        tenant: &Tenant,
        pending: &PendingWill,
        message_id: Option<String>,
    ) -> bool {
        let access = tenant.access.load();
        let will = pending.message_at(Instant::now());
        // Checked now, not only at CONNECT: the rules may have changed since.
        let who = stratus_policy::Identity {
            tenant: tenant.id.as_str(),
            client_id: &pending.client_id,
            username: pending.username.as_deref(),
        };
        let decision = access.policy.check_publish(&who, &will.topic);
        if !decision.is_allowed() {
            tracing::info!(
                tenant = %tenant.id,
                client_id = %pending.client_id,
                topic = %will.topic,
                decided_by = ?decision.decided_by,
                "will message not published: the access rules deny it"
            );
            return false;
        }
        tracing::debug!(tenant = %tenant.id, topic = %will.topic, "publishing will message");
        let published =
            crate::cluster::with_message_id(message_id, || self.publish(tenant, &will, None, None));
        if let Err(reason) = published {
            tracing::warn!(tenant = %tenant.id, topic = %will.topic, ?reason, "will message refused");
            return false;
        }
        true
    }
}
