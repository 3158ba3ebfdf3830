//! Key names (the layout is documented in the crate root): the validated [`Namespace`] and the
//! keys it derives for a tenant's retained messages, a client's persistent session and a node
//! incarnation.

use std::sync::Arc;

use stratus_model::TenantId;

use crate::error::RedisStateError;

/// Longest namespace accepted, in bytes.
const MAX_NAMESPACE_LEN: usize = 128;

/// The prefix of every key: non-empty, printable, without the `{`/`}` that would move the hash
/// tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Namespace(Arc<str>);

impl Namespace {
    pub(crate) fn new(namespace: &str) -> Result<Self, RedisStateError> {
        let reject = |reason| RedisStateError::InvalidNamespace {
            namespace: namespace.to_owned(),
            reason,
        };
        if namespace.is_empty() {
            return Err(reject("it cannot be empty (use e.g. \"stratus:p0\")"));
        }
        if namespace.len() > MAX_NAMESPACE_LEN {
            return Err(reject("it is longer than 128 bytes"));
        }
        if namespace
            .chars()
            .any(|c| c == '{' || c == '}' || c.is_whitespace() || c.is_control())
        {
            return Err(reject(
                "it may not contain '{', '}' (they delimit Redis Cluster hash tags), spaces or \
                 control characters",
            ));
        }
        Ok(Self(Arc::from(namespace)))
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    /// The keys of one tenant's retained messages, all in the tenant's hash slot.
    pub(crate) fn retained(&self, tenant: &TenantId) -> RetainedKeys {
        let base = format!("{}:ret:{{{}}}", self.0, tenant.as_str());
        RetainedKeys {
            msgs: format!("{base}:msgs"),
            idx: format!("{base}:idx"),
            exp: format!("{base}:exp"),
            meta: format!("{base}:meta"),
        }
    }

    /// The keys of one client's persistent session, all in the slot of the hash tag
    /// `{<tenant>:<client key>}`. The caller has checked that `client_key` holds no `{`/`}`.
    pub(crate) fn session(&self, tenant: &TenantId, client_key: &str) -> SessionKeys {
        let base = format!("{}:sess:{{{}:{client_key}}}", self.0, tenant.as_str());
        SessionKeys {
            meta: format!("{base}:meta"),
            subs: format!("{base}:subs"),
            msgs: format!("{base}:msgs"),
            mstate: format!("{base}:mstate"),
            q2in: format!("{base}:q2in"),
        }
    }

    /// The sorted set of known incarnations.
    pub(crate) fn lease_nodes(&self) -> String {
        format!("{}:lease:{{registry}}:nodes", self.0)
    }

    /// The keys of one incarnation; `member` is its `<node id>:<incarnation>`.
    pub(crate) fn incarnation(&self, member: &str) -> IncarnationKeys {
        let registry = format!("{}:lease:{{registry}}", self.0);
        IncarnationKeys {
            alive: format!("{registry}:alive:{member}"),
            reap: format!("{registry}:reap:{member}"),
            gone: format!("{registry}:gone:{member}"),
            wills: format!("{}:wills:{{{member}}}", self.0),
        }
    }

    /// The keys of the delayed wills of dead incarnations (pool-wide).
    pub(crate) fn delayed_wills(&self) -> DelayedWillKeys {
        let base = format!("{}:willq:{{delayed}}", self.0);
        DelayedWillKeys {
            due: format!("{base}:due"),
            records: format!("{base}:records"),
        }
    }
}

/// The keys of wills waiting out their delay after their edge died (one hash slot).
#[derive(Debug)]
pub(crate) struct DelayedWillKeys {
    /// Sorted set: will id → when it is due or its claim runs out (unix ms).
    pub(crate) due: String,
    /// Hash: will id → token and record.
    pub(crate) records: String,
}

/// One tenant's retained-message keys.
#[derive(Debug)]
pub(crate) struct RetainedKeys {
    /// Hash: topic → record.
    pub(crate) msgs: String,
    /// Sorted set, all scores 0: topics in byte order.
    pub(crate) idx: String,
    /// Sorted set: topic → expiry (unix ms).
    pub(crate) exp: String,
    /// Hash: `count`, `bytes`, `version`.
    pub(crate) meta: String,
}

/// One client's persistent-session keys.
#[derive(Debug)]
pub(crate) struct SessionKeys {
    /// Hash: `token`, `client_id`, `expiry`, `next_pid`, `cursor`, `offline_at`.
    pub(crate) meta: String,
    /// Hash: subscription filter → record.
    pub(crate) subs: String,
    /// Hash: decimal sequence → queued or in-flight message record.
    pub(crate) msgs: String,
    /// Hash: decimal sequence → the message's delivery state.
    pub(crate) mstate: String,
    /// Set: decimal packet ids of incoming QoS 2 messages awaiting PUBREL.
    pub(crate) q2in: String,
}

impl SessionKeys {
    /// Every key, in the order the session scripts take them as `KEYS`.
    pub(crate) fn all(&self) -> [&str; 5] {
        [&self.meta, &self.subs, &self.msgs, &self.mstate, &self.q2in]
    }
}

/// One incarnation's keys.
#[derive(Debug)]
pub(crate) struct IncarnationKeys {
    /// The lease, with a TTL.
    pub(crate) alive: String,
    /// A reaper's exclusive claim.
    pub(crate) reap: String,
    /// Tombstone: released or reaped.
    pub(crate) gone: String,
    /// Hash of wills registered by this incarnation (its own hash slot).
    pub(crate) wills: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The slot-deciding part of a key: the first `{...}` with something inside.
    fn hash_tag(key: &str) -> &str {
        let open = key.find('{').unwrap();
        let close = open + key[open..].find('}').unwrap();
        &key[open + 1..close]
    }

    #[test]
    fn a_tenants_keys_share_its_hash_tag() {
        let ns = Namespace::new("stratus:p0").unwrap();
        let keys = ns.retained(&TenantId::new("acme").unwrap());
        assert_eq!(keys.msgs, "stratus:p0:ret:{acme}:msgs");
        for key in [&keys.msgs, &keys.idx, &keys.exp, &keys.meta] {
            assert_eq!(hash_tag(key), "acme");
        }
    }

    #[test]
    fn a_sessions_keys_share_its_tenant_and_client_key_tag() {
        let ns = Namespace::new("stratus:p0").unwrap();
        let keys = ns.session(&TenantId::new("acme").unwrap(), "k7q2");
        assert_eq!(keys.meta, "stratus:p0:sess:{acme:k7q2}:meta");
        for key in keys.all() {
            assert_eq!(hash_tag(key), "acme:k7q2");
        }
    }

    #[test]
    fn lease_keys_share_the_registry_slot_and_wills_the_incarnation_slot() {
        let ns = Namespace::new("s").unwrap();
        let keys = ns.incarnation("edge-1:01J");
        for key in [&ns.lease_nodes(), &keys.alive, &keys.reap, &keys.gone] {
            assert_eq!(hash_tag(key), "registry");
        }
        assert_eq!(hash_tag(&keys.wills), "edge-1:01J");
    }

    #[test]
    fn namespaces_that_would_move_the_hash_tag_are_rejected() {
        for bad in ["", "a{b", "a}b", "a b", "a\nb", &"x".repeat(129)] {
            assert!(Namespace::new(bad).is_err(), "{bad:?}");
        }
        assert!(Namespace::new("stratus:p0").is_ok());
    }
}
