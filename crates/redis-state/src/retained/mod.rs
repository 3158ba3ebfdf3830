//! [`RetainedStore`]: one tenant's retained messages in Redis, their quota and expiry.
//!
//! Writes are single Lua scripts ([`scripts`]); reads page through the topic index
//! ([`read`]) over the ranges a filter can match ([`plan`]).

mod plan;
mod read;
mod scripts;

use std::fmt;

use bytes::Bytes;
use redis::aio::ConnectionManager;
use redis::{FromRedisValue, Script, ScriptInvocation};
use stratus_model::TenantId;
use stratus_topics::TopicName;

use crate::connection;
use crate::error::RedisStateError;
use crate::keys::{Namespace, RetainedKeys};

/// Expired entries one script removes at most; callers loop while a batch comes back full.
const PURGE_BATCH: u64 = 256;

/// Expiry times are kept as sorted-set scores (doubles); later ones are stored as this, the
/// largest integer a double holds exactly (about 285,000 years from 1970).
const MAX_EXPIRY_MS: u64 = (1 << 53) - 1;

/// A tenant's retained-message limits, enforced inside Redis at every put.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetainedQuota {
    /// Most retained topics.
    pub max_messages: usize,
    /// Most bytes, counted as topic length plus record length over all entries.
    pub max_bytes: usize,
}

/// What a put or delete did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetainedOutcome {
    /// A new topic was stored.
    Stored,
    /// An existing topic's record was replaced.
    Replaced,
    /// The topic was deleted.
    Deleted,
    /// Delete of a topic that had no retained message: nothing changed.
    Absent,
    /// The put would exceed the quota: nothing changed.
    QuotaExceeded,
}

impl RetainedOutcome {
    /// The code the scripts return.
    fn from_code(code: i64) -> Option<Self> {
        Some(match code {
            0 => Self::Stored,
            1 => Self::Replaced,
            2 => Self::Deleted,
            3 => Self::Absent,
            4 => Self::QuotaExceeded,
            _ => return None,
        })
    }
}

/// The outcome of a put or delete and the tenant's version after it. The version increases
/// with every change (expiry purges included) and stays put when nothing changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetainedChange {
    /// The tenant's version after the operation.
    pub version: u64,
    /// What happened.
    pub outcome: RetainedOutcome,
}

/// One retained message.
#[derive(Clone, PartialEq, Eq)]
pub struct RetainedEntry {
    /// Its topic.
    pub topic: TopicName,
    /// The record as the caller stored it (this crate does not look inside).
    pub record: Bytes,
    /// When it expires, unix ms; `None` never.
    pub expires_at_ms: Option<u64>,
}

impl fmt::Debug for RetainedEntry {
    /// The record is a message payload: only its length is shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetainedEntry")
            .field("topic", &self.topic)
            .field("record_len", &self.record.len())
            .field("expires_at_ms", &self.expires_at_ms)
            .finish()
    }
}

/// A tenant's live retained messages, in topic byte order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetainedSnapshot {
    /// The tenant's version when the snapshot was taken. If writers kept changing the tenant
    /// during every attempt, the entries may already include changes after this version
    /// (re-applying those changes is harmless: puts and deletes are last-writer-wins per topic).
    pub version: u64,
    /// The entries, at most the limit asked for.
    pub entries: Vec<RetainedEntry>,
    /// Whether more live entries exist than the limit allowed.
    pub truncated: bool,
}

/// A tenant's retained counters, as the quota sees them. Entries that expired are counted
/// until something purges them (a put, load, matching or
/// [`purge_expired`](RetainedStore::purge_expired)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetainedUsage {
    /// Retained topics.
    pub messages: u64,
    /// Sum of topic length plus record length.
    pub bytes: u64,
    /// The tenant's version.
    pub version: u64,
}

/// Retained messages of every tenant, in Redis under one namespace. Clone-cheap: clones share
/// the connection.
#[derive(Clone)]
pub struct RetainedStore {
    conn: ConnectionManager,
    namespace: Namespace,
}

impl fmt::Debug for RetainedStore {
    /// The namespace only: the connection's own `Debug` is long and says nothing useful here.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetainedStore")
            .field("namespace", &self.namespace.as_str())
            .finish_non_exhaustive()
    }
}

impl RetainedStore {
    /// Connects to Redis at `url` (see [`connect`](crate::connect)) with keys under `namespace`.
    pub async fn connect(url: &str, namespace: &str) -> Result<Self, RedisStateError> {
        let namespace = Namespace::new(namespace)?;
        let conn = connection::connect(url).await?;
        Ok(Self { conn, namespace })
    }

    /// A store over an existing connection, with keys under `namespace`. Fails only when the
    /// namespace cannot be part of a key.
    pub fn from_manager(conn: ConnectionManager, namespace: &str) -> Result<Self, RedisStateError> {
        Ok(Self {
            conn,
            namespace: Namespace::new(namespace)?,
        })
    }

    /// The key namespace.
    pub fn namespace(&self) -> &str {
        self.namespace.as_str()
    }

    /// Stores `record` as the retained message of `topic`, replacing any previous one, unless
    /// that would exceed `quota`.
    ///
    /// An entry counts `topic.len() + record.len()` bytes; a replacement frees the old entry's
    /// bytes first, and one that does not grow the total is accepted even over quota (after the
    /// quota was lowered). Expired entries (`expires_at_ms <= now_ms`) are purged first so they
    /// do not count. `QuotaExceeded` leaves the tenant unchanged.
    pub async fn put(
        &self,
        tenant: &TenantId,
        topic: &TopicName,
        record: &[u8],
        expires_at_ms: Option<u64>,
        quota: RetainedQuota,
        now_ms: u64,
    ) -> Result<RetainedChange, RedisStateError> {
        let keys = self.namespace.retained(tenant);
        let expiry = expires_at_ms
            .map(|at| at.min(MAX_EXPIRY_MS).to_string())
            .unwrap_or_default();
        let mut purged_everything = false;
        loop {
            let mut invocation = invocation(&scripts::PUT, &keys);
            invocation
                .arg(topic.as_str())
                .arg(record)
                .arg(&expiry)
                .arg(quota.max_messages)
                .arg(quota.max_bytes)
                .arg(now_ms)
                .arg(PURGE_BATCH);
            let (code, version, purged): (i64, u64, u64) =
                self.run(&invocation, "retained put").await?;
            let outcome = outcome(code, "retained put")?;
            // A full purge batch means more expired entries may still hold quota: purge them
            // all and try once more.
            if outcome == RetainedOutcome::QuotaExceeded
                && purged >= PURGE_BATCH
                && !purged_everything
            {
                self.purge_expired(tenant, now_ms).await?;
                purged_everything = true;
                continue;
            }
            return Ok(RetainedChange { version, outcome });
        }
    }

    /// Deletes the retained message of `topic`: `Deleted`, or `Absent` with nothing changed.
    pub async fn delete(
        &self,
        tenant: &TenantId,
        topic: &TopicName,
    ) -> Result<RetainedChange, RedisStateError> {
        let keys = self.namespace.retained(tenant);
        let mut invocation = invocation(&scripts::DELETE, &keys);
        invocation.arg(topic.as_str());
        let (code, version): (i64, u64) = self.run(&invocation, "retained delete").await?;
        Ok(RetainedChange {
            version,
            outcome: outcome(code, "retained delete")?,
        })
    }

    /// Removes every entry that expired at or before `now_ms`, fixing the counters, and
    /// returns how many were removed. Each batch is atomic.
    pub async fn purge_expired(
        &self,
        tenant: &TenantId,
        now_ms: u64,
    ) -> Result<u64, RedisStateError> {
        let keys = self.namespace.retained(tenant);
        let (removed, _version) = self.purge_all(&keys, now_ms).await?;
        Ok(removed)
    }

    /// The tenant's counters.
    pub async fn usage(&self, tenant: &TenantId) -> Result<RetainedUsage, RedisStateError> {
        let keys = self.namespace.retained(tenant);
        let mut conn = self.conn.clone();
        let (messages, bytes, version): (Option<u64>, Option<u64>, Option<u64>) =
            redis::cmd("HMGET")
                .arg(&keys.meta)
                .arg("count")
                .arg("bytes")
                .arg("version")
                .query_async(&mut conn)
                .await
                .map_err(RedisStateError::command("retained usage"))?;
        Ok(RetainedUsage {
            messages: messages.unwrap_or(0),
            bytes: bytes.unwrap_or(0),
            version: version.unwrap_or(0),
        })
    }

    /// Deletes every retained message of the tenant and zeroes its counters, atomically. The
    /// version keeps increasing, so a cache of the tenant sees the clear as one more change.
    pub async fn clear_tenant(&self, tenant: &TenantId) -> Result<(), RedisStateError> {
        let keys = self.namespace.retained(tenant);
        let _version: u64 = self
            .run(&invocation(&scripts::CLEAR, &keys), "retained clear")
            .await?;
        Ok(())
    }

    /// Runs purge batches until one comes back short; returns the entries removed and the
    /// version after the last batch.
    async fn purge_all(
        &self,
        keys: &RetainedKeys,
        now_ms: u64,
    ) -> Result<(u64, u64), RedisStateError> {
        let mut removed = 0;
        loop {
            let mut invocation = invocation(&scripts::PURGE, keys);
            invocation.arg(now_ms).arg(PURGE_BATCH);
            let (processed, version): (u64, u64) = self.run(&invocation, "retained purge").await?;
            removed += processed;
            if processed < PURGE_BATCH {
                return Ok((removed, version));
            }
        }
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

/// An invocation of `script` over the tenant's four keys, in the order the scripts expect.
fn invocation<'a>(script: &'a Script, keys: &RetainedKeys) -> ScriptInvocation<'a> {
    let mut invocation = script.prepare_invoke();
    invocation
        .key(&keys.msgs)
        .key(&keys.idx)
        .key(&keys.exp)
        .key(&keys.meta);
    invocation
}

/// The outcome a script reported.
fn outcome(code: i64, operation: &'static str) -> Result<RetainedOutcome, RedisStateError> {
    RetainedOutcome::from_code(code)
        .ok_or_else(|| RedisStateError::unexpected(operation, format!("outcome code {code}")))
}
