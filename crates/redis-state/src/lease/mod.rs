//! [`NodeLeases`]: edge incarnations' leases, dead-node detection and exclusive reaping.
//!
//! An edge renews its lease well within the TTL (the study suggests a 10 s TTL renewed every
//! 3 s). When an incarnation stops renewing, its lease key expires but it stays listed in the
//! `nodes` set, which is how [`NodeLeases::expired`] finds it. A survivor then
//! [claims](NodeLeases::claim_reap) it (one claimant wins), [takes its wills](NodeLeases::take_wills),
//! publishes them, and [forgets](NodeLeases::forget) it. A released or reaped incarnation
//! leaves a tombstone for a day, so a partitioned edge coming back learns from
//! [`RedisStateError::LeaseLost`] that it must start over with a new incarnation.

mod delayed;
mod wills;

use std::fmt;
use std::sync::LazyLock;
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::{FromRedisValue, Script, ScriptInvocation};

use crate::connection;
use crate::error::RedisStateError;
use crate::keys::{IncarnationKeys, Namespace};

pub use delayed::ParkedWill;
pub use wills::TakenWill;

/// How long a released or reaped incarnation stays barred from renewing.
const TOMBSTONE_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// Members of the `nodes` set read per page by [`NodeLeases::expired`].
const NODES_PAGE: usize = 256;

/// Longest node id or incarnation accepted, in bytes.
const MAX_LEASE_FIELD_LEN: usize = 128;

/// `KEYS = [alive, nodes, reap, gone]`, `ARGV = [member, ttl_ms]` → 1, or 0 when the
/// incarnation was released or is being reaped. Scores the member with Redis server time.
static RENEW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('EXISTS', KEYS[3]) == 1 or redis.call('EXISTS', KEYS[4]) == 1 then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZADD', KEYS[2], now_ms, ARGV[1])
return 1
"#,
    )
});

/// `KEYS = [alive, nodes, reap, gone]`, `ARGV = [member, tombstone_ms]`: drops the lease, the
/// membership and any claim, and leaves a tombstone.
static RETIRE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
redis.call('DEL', KEYS[1], KEYS[3])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('SET', KEYS[4], '1', 'PX', ARGV[2])
return 1
"#,
    )
});

/// `KEYS = [alive, nodes, reap]`, `ARGV = [dead member, reaper member, ttl_ms]` → 1 for the one
/// caller that claims a listed incarnation whose lease has expired, else 0.
static CLAIM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
if not redis.call('ZSCORE', KEYS[2], ARGV[1]) then
  return 0
end
if redis.call('SET', KEYS[3], ARGV[2], 'NX', 'PX', ARGV[3]) then
  return 1
end
return 0
"#,
    )
});

/// One edge process's identity in the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Lease {
    /// The node (a stable name, e.g. the pod name).
    pub node_id: String,
    /// This process's incarnation (a fresh ULID at every start).
    pub incarnation: String,
}

impl Lease {
    /// A lease for `node_id` and `incarnation`, each 1 to 128 of `A-Z a-z 0-9 . _ -`.
    pub fn new(
        node_id: impl Into<String>,
        incarnation: impl Into<String>,
    ) -> Result<Self, RedisStateError> {
        let lease = Self {
            node_id: node_id.into(),
            incarnation: incarnation.into(),
        };
        lease.validate()?;
        Ok(lease)
    }

    /// Checks both parts can be part of a key; the fields are public, so every operation asks.
    fn validate(&self) -> Result<(), RedisStateError> {
        for (field, value) in [
            ("node id", &self.node_id),
            ("incarnation", &self.incarnation),
        ] {
            let reason = if value.is_empty() {
                Some("it cannot be empty")
            } else if value.len() > MAX_LEASE_FIELD_LEN {
                Some("it is longer than 128 bytes")
            } else if !value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
            {
                Some("only A-Z, a-z, 0-9, '.', '_' and '-' are allowed")
            } else {
                None
            };
            if let Some(reason) = reason {
                return Err(RedisStateError::InvalidLease {
                    field,
                    value: value.clone(),
                    reason,
                });
            }
        }
        Ok(())
    }

    /// `<node id>:<incarnation>`, as listed in the `nodes` set and used in key names.
    fn member(&self) -> Result<String, RedisStateError> {
        self.validate()?;
        Ok(format!("{}:{}", self.node_id, self.incarnation))
    }

    /// The lease a `nodes` member names, if it is one this crate wrote.
    fn from_member(member: &str) -> Option<Self> {
        let (node_id, incarnation) = member.split_once(':')?;
        Self::new(node_id, incarnation).ok()
    }
}

/// Node leases and dead-hand wills under one namespace. Clone-cheap: clones share the
/// connection.
#[derive(Clone)]
pub struct NodeLeases {
    conn: ConnectionManager,
    namespace: Namespace,
}

impl fmt::Debug for NodeLeases {
    /// The namespace only: the connection's own `Debug` is long and says nothing useful here.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeLeases")
            .field("namespace", &self.namespace.as_str())
            .finish_non_exhaustive()
    }
}

impl NodeLeases {
    /// Connects to Redis at `url` (see [`connect`](crate::connect)) with keys under `namespace`.
    pub async fn connect(url: &str, namespace: &str) -> Result<Self, RedisStateError> {
        let namespace = Namespace::new(namespace)?;
        let conn = connection::connect(url).await?;
        Ok(Self { conn, namespace })
    }

    /// Leases over an existing connection, with keys under `namespace`. Fails only when the
    /// namespace cannot be part of a key.
    pub fn from_manager(conn: ConnectionManager, namespace: &str) -> Result<Self, RedisStateError> {
        Ok(Self {
            conn,
            namespace: Namespace::new(namespace)?,
        })
    }

    /// Creates or renews this incarnation's lease for `ttl` (Redis expires it by its own
    /// clock) and lists the incarnation in the `nodes` set, scored with Redis server time.
    ///
    /// Fails when Redis cannot be reached, and with [`RedisStateError::LeaseLost`] once the
    /// incarnation was released, claimed by a reaper or forgotten: the edge must then stop
    /// serving its clients and start again under a new incarnation.
    pub async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<(), RedisStateError> {
        let member = lease.member()?;
        let keys = self.namespace.incarnation(&member);
        let mut invocation = self.registry_invocation(&RENEW, &keys);
        invocation.arg(&member).arg(millis(ttl)?);
        let renewed: bool = self.run(&invocation, "lease renew").await?;
        if renewed {
            Ok(())
        } else {
            Err(RedisStateError::LeaseLost {
                node_id: lease.node_id.clone(),
                incarnation: lease.incarnation.clone(),
            })
        }
    }

    /// Graceful shutdown: deletes the lease, the membership and the incarnation's wills (the
    /// edge publishes or drops them itself when it stops), leaving nothing to reap.
    pub async fn release(&self, lease: &Lease) -> Result<(), RedisStateError> {
        self.retire(lease, "lease release").await
    }

    /// Incarnations listed in the `nodes` set whose lease has expired, longest silent first.
    /// Ones already claimed are included until they are forgotten.
    pub async fn expired(&self) -> Result<Vec<Lease>, RedisStateError> {
        let nodes = self.namespace.lease_nodes();
        let mut dead = Vec::new();
        let mut offset = 0;
        loop {
            let mut conn = self.conn.clone();
            let members: Vec<String> = redis::cmd("ZRANGE")
                .arg(&nodes)
                .arg(offset)
                .arg(offset + NODES_PAGE - 1)
                .query_async(&mut conn)
                .await
                .map_err(RedisStateError::command("lease list"))?;
            if members.is_empty() {
                break;
            }
            let mut pipe = redis::pipe();
            for member in &members {
                pipe.cmd("EXISTS")
                    .arg(self.namespace.incarnation(member).alive);
            }
            let alive: Vec<bool> = pipe
                .query_async(&mut conn)
                .await
                .map_err(RedisStateError::command("lease check"))?;
            for (member, alive) in members.iter().zip(alive) {
                if alive {
                    continue;
                }
                match Lease::from_member(member) {
                    Some(lease) => dead.push(lease),
                    None => {
                        tracing::warn!(member, "skipping a node set member that is not a lease");
                    }
                }
            }
            if members.len() < NODES_PAGE {
                break;
            }
            offset += NODES_PAGE;
        }
        Ok(dead)
    }

    /// Claims the right to reap `dead` for `ttl` (long enough to publish its wills). True for
    /// exactly one caller while the claim lasts, and only while `dead` is listed and its lease
    /// has expired: a node that renewed in time cannot be reaped.
    pub async fn claim_reap(
        &self,
        dead: &Lease,
        reaper: &Lease,
        ttl: Duration,
    ) -> Result<bool, RedisStateError> {
        let member = dead.member()?;
        let keys = self.namespace.incarnation(&member);
        let mut invocation = CLAIM.prepare_invoke();
        invocation
            .key(&keys.alive)
            .key(self.namespace.lease_nodes())
            .key(&keys.reap)
            .arg(&member)
            .arg(reaper.member()?)
            .arg(millis(ttl)?);
        self.run(&invocation, "lease claim").await
    }

    /// After reaping: forgets the incarnation (membership and claim) and drops any wills still
    /// registered under it. It may not renew afterwards.
    pub async fn forget(&self, dead: &Lease) -> Result<(), RedisStateError> {
        self.retire(dead, "lease forget").await
    }

    /// Removes the lease, membership and claim, leaves a tombstone, then deletes the wills
    /// (another hash slot, hence another command).
    async fn retire(&self, lease: &Lease, operation: &'static str) -> Result<(), RedisStateError> {
        let member = lease.member()?;
        let keys = self.namespace.incarnation(&member);
        let mut invocation = self.registry_invocation(&RETIRE, &keys);
        invocation.arg(&member).arg(millis(TOMBSTONE_TTL)?);
        let _: i64 = self.run(&invocation, operation).await?;
        let mut conn = self.conn.clone();
        let _: i64 = redis::cmd("DEL")
            .arg(&keys.wills)
            .query_async(&mut conn)
            .await
            .map_err(RedisStateError::command(operation))?;
        Ok(())
    }

    /// An invocation over `[alive, nodes, reap, gone]`.
    fn registry_invocation<'a>(
        &self,
        script: &'a Script,
        keys: &IncarnationKeys,
    ) -> ScriptInvocation<'a> {
        let mut invocation = script.prepare_invoke();
        invocation
            .key(&keys.alive)
            .key(self.namespace.lease_nodes())
            .key(&keys.reap)
            .key(&keys.gone);
        invocation
    }

    /// Runs a prepared script invocation.
    async fn run<T: FromRedisValue>(
        &self,
        invocation: &ScriptInvocation<'_>,
        operation: &'static str,
    ) -> Result<T, RedisStateError> {
        let mut conn = self.conn.clone();
        invocation
            .invoke_async(&mut conn)
            .await
            .map_err(RedisStateError::command(operation))
    }
}

/// A lease duration in whole milliseconds, at least one.
fn millis(duration: Duration) -> Result<u64, RedisStateError> {
    match u64::try_from(duration.as_millis()) {
        Ok(ms) if ms >= 1 => Ok(ms),
        _ => Err(RedisStateError::InvalidDuration(duration)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_parts_must_be_key_safe() {
        assert!(Lease::new("edge-1", "01JABCDEF").is_ok());
        for (node, incarnation) in [("", "x"), ("a:b", "x"), ("a", "x}"), ("a", "x y")] {
            assert!(
                Lease::new(node, incarnation).is_err(),
                "{node:?} {incarnation:?}"
            );
        }
        let mut lease = Lease::new("a", "b").unwrap();
        lease.node_id = "a:b".into();
        assert!(lease.member().is_err());
    }

    #[test]
    fn members_round_trip() {
        let lease = Lease::new("edge.1", "01J").unwrap();
        assert_eq!(Lease::from_member(&lease.member().unwrap()), Some(lease));
        assert_eq!(Lease::from_member("no-colon"), None);
    }

    #[test]
    fn durations_are_whole_milliseconds() {
        assert_eq!(millis(Duration::from_millis(300)).unwrap(), 300);
        assert!(millis(Duration::from_micros(999)).is_err());
    }
}
