//! Admission limits that must hold across edges: a tenant's connection count and a client id's
//! connect rate.
//!
//! Keys (tenant in the hash tag): `{ns}:adm:{<tenant>}:conns` (hash: node incarnation -> open
//! connections on it), `{ns}:adm:{<tenant>}:alive` (hash: node incarnation -> unix ms until which
//! its count is trusted; each edge rewrites its count every few seconds while it holds
//! connections, which also accounts for connections that closed, and the counts of an edge that
//! died stop counting after `ttl` without any reaper), and
//! `{ns}:adm:{<tenant>}:rate:<client key>` (connects in the current window, expiring with it).
//! A tenant's sessions are counted like its connections, in `{ns}:adm:{<tenant>}:sessions` and
//! `{ns}:adm:{<tenant>}:sessions_alive`: each edge reports the sessions it holds.
//! Failed CONNECTs (brute-force lockouts) are counted in fixed windows the same way, per client
//! id (`{ns}:adm:{<tenant>}:fail:<client key>`) and per source address
//! (`{ns}:adm:{addr:<address>}:fail`), so a client locked out on one edge is locked out on all.
//! Every check-and-change is one Lua script, so concurrent CONNECTs on different edges cannot
//! both take the last slot.

use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;
use redis::aio::ConnectionManager;
use stratus_model::TenantId;

use crate::error::RedisStateError;
use crate::keys::Namespace;

/// Adds one connection of node ARGV[1] unless the live total reaches ARGV[2]; ARGV[3] = TTL ms.
const TRY_ADD: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local alive = redis.call('HGETALL', KEYS[2])
for i = 1, #alive, 2 do
  if tonumber(alive[i + 1]) < now then
    redis.call('HDEL', KEYS[2], alive[i])
    redis.call('HDEL', KEYS[1], alive[i])
  end
end
local total = 0
local counts = redis.call('HVALS', KEYS[1])
for i = 1, #counts do total = total + tonumber(counts[i]) end
if total >= tonumber(ARGV[2]) then return {0, total} end
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('HSET', KEYS[2], ARGV[1], now + tonumber(ARGV[3]))
return {1, total + 1}
";

/// Sets node ARGV[1]'s count to ARGV[2] (removing it at 0), trusted for ARGV[3] more ms.
const REFRESH: &str = r"
if tonumber(ARGV[2]) <= 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
  return 0
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], now + tonumber(ARGV[3]))
return 1
";

/// Counts one connect in the window; ARGV[1] = window ms. Returns the count.
const COUNT_CONNECT: &str = r"
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n
";

static TRY_ADD_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(TRY_ADD));
static REFRESH_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(REFRESH));
static COUNT_CONNECT_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(COUNT_CONNECT));

/// What a per-node count counts.
#[derive(Debug, Clone, Copy)]
enum Counted {
    Connections,
    Sessions,
}

impl Counted {
    /// The count hash and the trust hash.
    fn keys(self) -> (&'static str, &'static str) {
        match self {
            Self::Connections => ("conns", "alive"),
            Self::Sessions => ("sessions", "sessions_alive"),
        }
    }

    fn operation(self) -> &'static str {
        match self {
            Self::Connections => "connection count",
            Self::Sessions => "session count",
        }
    }

    fn refresh_operation(self) -> &'static str {
        match self {
            Self::Connections => "connection count refresh",
            Self::Sessions => "session count refresh",
        }
    }
}

/// The cluster-wide admission counters.
#[derive(Debug, Clone)]
pub struct Admission {
    conn: ConnectionManager,
    namespace: Namespace,
}

/// The outcome of [`Admission::try_add_connection`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admitted {
    /// Whether the connection was counted (false: the limit is reached).
    pub admitted: bool,
    /// The tenant's connections across live edges, this one included when admitted.
    pub total: u64,
}

impl Admission {
    /// Counters under `namespace` on an existing connection.
    pub fn from_manager(conn: ConnectionManager, namespace: &str) -> Result<Self, RedisStateError> {
        Ok(Self {
            conn,
            namespace: Namespace::new(namespace)?,
        })
    }

    fn key(&self, tenant: &TenantId, what: &str) -> String {
        format!(
            "{}:adm:{{{}}}:{what}",
            self.namespace.as_str(),
            tenant.as_str()
        )
    }

    /// Counts a connection of `node` in `tenant` unless the tenant's connections on live nodes
    /// reached `limit`. `ttl` is how long the node's count is trusted without a refresh.
    pub async fn try_add_connection(
        &self,
        tenant: &TenantId,
        node: &str,
        limit: u64,
        ttl: Duration,
    ) -> Result<Admitted, RedisStateError> {
        self.try_add(Counted::Connections, tenant, node, limit, ttl)
            .await
    }

    /// Counts a new session held by `node` in `tenant` unless the tenant's sessions on live
    /// nodes reached `limit` (see [`Admission::try_add_connection`]).
    pub async fn try_add_session(
        &self,
        tenant: &TenantId,
        node: &str,
        limit: u64,
        ttl: Duration,
    ) -> Result<Admitted, RedisStateError> {
        self.try_add(Counted::Sessions, tenant, node, limit, ttl)
            .await
    }

    /// Sets `node`'s session count in `tenant` (see [`Admission::refresh`]).
    pub async fn refresh_sessions(
        &self,
        tenant: &TenantId,
        node: &str,
        count: u64,
        ttl: Duration,
    ) -> Result<(), RedisStateError> {
        self.refresh_counted(Counted::Sessions, tenant, node, count, ttl)
            .await
    }

    async fn try_add(
        &self,
        counted: Counted,
        tenant: &TenantId,
        node: &str,
        limit: u64,
        ttl: Duration,
    ) -> Result<Admitted, RedisStateError> {
        let (counts, alive) = counted.keys();
        let (ok, total): (i64, u64) = TRY_ADD_SCRIPT
            .key(self.key(tenant, counts))
            .key(self.key(tenant, alive))
            .arg(node)
            .arg(limit)
            .arg(millis(ttl))
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(RedisStateError::command(counted.operation()))?;
        Ok(Admitted {
            admitted: ok == 1,
            total,
        })
    }

    /// Sets `node`'s connection count in `tenant` to `count` (what the node holds now), trusted
    /// for another `ttl`. Edges call it periodically: it corrects the count for connections that
    /// closed, and keeps a live node's count from expiring.
    pub async fn refresh(
        &self,
        tenant: &TenantId,
        node: &str,
        count: u64,
        ttl: Duration,
    ) -> Result<(), RedisStateError> {
        self.refresh_counted(Counted::Connections, tenant, node, count, ttl)
            .await
    }

    async fn refresh_counted(
        &self,
        counted: Counted,
        tenant: &TenantId,
        node: &str,
        count: u64,
        ttl: Duration,
    ) -> Result<(), RedisStateError> {
        let (counts, alive) = counted.keys();
        let _found: i64 = REFRESH_SCRIPT
            .key(self.key(tenant, counts))
            .key(self.key(tenant, alive))
            .arg(node)
            .arg(count)
            .arg(millis(ttl))
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(RedisStateError::command(counted.refresh_operation()))?;
        Ok(())
    }

    /// Counts a connect of the client id whose key is `client_key` in the current `window`
    /// (fixed windows starting at the first connect); returns the count including this one.
    pub async fn count_connect(
        &self,
        tenant: &TenantId,
        client_key: &str,
        window: Duration,
    ) -> Result<u64, RedisStateError> {
        COUNT_CONNECT_SCRIPT
            .key(self.key(tenant, &format!("rate:{client_key}")))
            .arg(millis(window))
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(RedisStateError::command("connect rate"))
    }
}

impl Admission {
    fn address_key(&self, address: &str) -> String {
        format!("{}:adm:{{addr:{address}}}:fail", self.namespace.as_str())
    }

    /// Failed connects in the current window: of the client id whose key is `client_key` in
    /// `tenant`, and of the source `address`.
    pub async fn failures(
        &self,
        tenant: &TenantId,
        client_key: &str,
        address: &str,
    ) -> Result<(u64, u64), RedisStateError> {
        let (client, addr): (Option<u64>, Option<u64>) = redis::pipe()
            .get(self.key(tenant, &format!("fail:{client_key}")))
            .get(self.address_key(address))
            .query_async(&mut self.conn.clone())
            .await
            .map_err(RedisStateError::command("failed-connect count"))?;
        Ok((client.unwrap_or(0), addr.unwrap_or(0)))
    }

    /// Counts a failed connect of the client id and of the address, each in its current
    /// `window` (fixed, starting at the first failure).
    pub async fn record_failure(
        &self,
        tenant: &TenantId,
        client_key: &str,
        address: &str,
        window: Duration,
    ) -> Result<(), RedisStateError> {
        for key in [
            self.key(tenant, &format!("fail:{client_key}")),
            self.address_key(address),
        ] {
            let _count: u64 = COUNT_CONNECT_SCRIPT
                .key(key)
                .arg(millis(window))
                .invoke_async(&mut self.conn.clone())
                .await
                .map_err(RedisStateError::command("failed-connect record"))?;
        }
        Ok(())
    }

    /// Forgets the failed connects of a client id (it authenticated); the address's count
    /// stays for its window.
    pub async fn forgive(
        &self,
        tenant: &TenantId,
        client_key: &str,
    ) -> Result<(), RedisStateError> {
        let _removed: u64 = redis::cmd("DEL")
            .arg(self.key(tenant, &format!("fail:{client_key}")))
            .query_async(&mut self.conn.clone())
            .await
            .map_err(RedisStateError::command("failed-connect forgive"))?;
        Ok(())
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}
