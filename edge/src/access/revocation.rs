//! Keeping every connection within what the control plane currently allows. A change event
//! reloads the tenant's rules (publish checks use them at once), re-checks the subscriptions of
//! its sessions (removing what is no longer allowed), and disconnects connections whose device,
//! credential or tenant was disabled, changed or deleted (5.0: DISCONNECT 0x98 Administrative
//! action). If events were missed (the channel lagged), every loaded tenant is reloaded and its
//! connections closed; after [`ChangeEvent::Resync`] (the event stream was interrupted) every
//! loaded tenant is reloaded as if its tenant, rules and JWT keys had changed.

use std::sync::Arc;

use stratus_codec::ReasonCode;
use stratus_model::ChangeEvent;
use tokio::sync::broadcast::error::RecvError;

use super::{Access, AuthMethod};
use crate::broker::{Broker, Tenant};

impl Access {
    /// Applies change events until the directory's channel closes.
    pub(crate) async fn run_revocation(self: Arc<Self>, broker: Arc<Broker>) {
        let mut changes = self.directory().changes();
        loop {
            match changes.recv().await {
                Ok(event) => self.apply(&broker, event).await,
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(
                        missed,
                        "missed control-plane change events; reloading every tenant"
                    );
                    for tenant in broker.tenants() {
                        self.refresh(&broker, &tenant, |_| true).await;
                    }
                }
                Err(RecvError::Closed) => return,
            }
        }
    }

    async fn apply(&self, broker: &Broker, event: ChangeEvent) {
        tracing::debug!(?event, "control-plane change");
        match event {
            // A tenant this edge does not hold yet loads current rules when a client first
            // arrives: nothing to refresh.
            ChangeEvent::Tenant(id) | ChangeEvent::Rules(id) => {
                let Some(tenant) = broker.existing_tenant(&id) else {
                    return;
                };
                self.refresh(broker, &tenant, |_| false).await;
            }
            ChangeEvent::Device { tenant, device_id } => {
                self.forget_device(&tenant, &device_id);
                let Some(tenant) = broker.existing_tenant(&tenant) else {
                    return;
                };
                let kicked = kick(&tenant, |p| {
                    p.device_id.as_deref() == Some(device_id.as_str())
                });
                if kicked > 0 {
                    tracing::info!(device = %device_id, connections = kicked, "device changed: its connections are closed");
                }
            }
            ChangeEvent::JwtKeys(id) => {
                let Some(tenant) = broker.existing_tenant(&id) else {
                    return;
                };
                let kicked = kick(&tenant, |p| p.method == AuthMethod::Token);
                if kicked > 0 {
                    tracing::info!(tenant = %id, connections = kicked, "JWT keys changed: token connections are closed");
                }
            }
            ChangeEvent::Resync => {
                // Tenant, rule and JWT-key events may have been missed for any tenant: apply all
                // three to every tenant this edge holds (a missed JWT-key change closes token
                // connections, as the event itself would).
                tracing::info!(
                    "control-plane change events may have been missed; reloading every tenant"
                );
                for tenant in broker.tenants() {
                    self.refresh(broker, &tenant, |p| p.method == AuthMethod::Token)
                        .await;
                }
            }
        }
    }

    /// Reloads a tenant's settings and rules, then closes connections the tenant no longer
    /// admits (suspended, deleted, anonymous no longer allowed, or `also_kick`), and re-checks
    /// every session's subscriptions against the new rules.
    async fn refresh(
        &self,
        broker: &Broker,
        tenant: &Arc<Tenant>,
        also_kick: impl Fn(&super::Principal) -> bool,
    ) {
        let access = match self.reload_tenant(tenant).await {
            Ok(access) => access,
            Err(e) => {
                // Fail closed: without current rules the tenant's connections cannot be trusted.
                tracing::error!(tenant = %tenant.id, "cannot reload access rules ({e}); closing the tenant's connections");
                tenant.access.store(super::TenantAccess::unloaded());
                kick(tenant, |_| true);
                return;
            }
        };
        let (active, anonymous) = access
            .as_ref()
            .map_or((false, false), |a| (a.active, a.allow_anonymous));
        let kicked = kick(tenant, |p| {
            !active || (p.method == AuthMethod::Anonymous && !anonymous) || also_kick(p)
        });
        if kicked > 0 {
            tracing::info!(tenant = %tenant.id, connections = kicked, "tenant settings changed: connections closed");
        }
        let removed = broker.recheck_subscriptions(tenant);
        if removed > 0 {
            tracing::info!(tenant = %tenant.id, subscriptions = removed, "access rules changed: subscriptions no longer allowed were removed");
        }
    }
}

/// Kicks every attached connection of `tenant` whose principal satisfies `which`.
fn kick(tenant: &Tenant, which: impl Fn(&super::Principal) -> bool) -> usize {
    let sessions: Vec<_> = tenant.sessions.lock().values().cloned().collect();
    let mut kicked = 0;
    for session in sessions {
        let st = session.state.lock();
        if let Some(a) = &st.attachment
            && which(&a.principal)
        {
            a.control.kick(ReasonCode::AdministrativeAction);
            kicked += 1;
        }
    }
    kicked
}
