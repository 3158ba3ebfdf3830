//! A tenant's access settings as the data path uses them: status, anonymous access and the
//! evaluated rule set, swapped atomically when the control plane changes them.

use std::sync::Arc;

use stratus_model::{AclRuleRecord, TenantRecord, TenantStatus};
use stratus_policy::{AclRule, Effect, PolicySet, TopicTemplate};

/// Access settings of one tenant.
#[derive(Debug, Clone)]
pub(crate) struct TenantAccess {
    /// Whether the tenant serves; a suspended (or unknown) tenant refuses every client.
    pub(crate) active: bool,
    /// Whether clients without credentials may connect.
    pub(crate) allow_anonymous: bool,
    /// Access rules and the default effect.
    pub(crate) policy: PolicySet,
}

impl TenantAccess {
    /// What a tenant holds before its settings were loaded: nothing is allowed (fail closed).
    pub(crate) fn unloaded() -> Arc<Self> {
        Arc::new(Self {
            active: false,
            allow_anonymous: false,
            policy: PolicySet::new(Vec::new(), Effect::Deny),
        })
    }

    /// Builds from the control plane's records; rules whose filter no longer parses are skipped
    /// and logged (they could only ever have allowed or denied nothing).
    pub(crate) fn from_records(tenant: &TenantRecord, rules: Vec<AclRuleRecord>) -> Self {
        let rules = rules
            .into_iter()
            .filter_map(|r| match TopicTemplate::parse(&r.filter) {
                Ok(filter) => Some(AclRule {
                    id: r.id,
                    effect: r.effect,
                    action: r.action,
                    filter,
                    username: r.username,
                    client_id: r.client_id,
                    priority: r.priority,
                }),
                Err(e) => {
                    tracing::error!(tenant = %tenant.id, rule = %r.id, "skipping an access rule with an invalid filter: {e}");
                    None
                }
            })
            .collect();
        Self {
            active: tenant.status == TenantStatus::Active,
            allow_anonymous: tenant.allow_anonymous,
            policy: PolicySet::new(rules, tenant.default_effect),
        }
    }
}
