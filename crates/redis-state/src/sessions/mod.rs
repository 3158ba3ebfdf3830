//! [`SessionStore`]: persistent MQTT sessions in Redis, every write fenced by an owner token.
//!
//! In the clustered shape an edge holds a persistent session in memory while it owns it and
//! writes every change here too, so that the edge a client reconnects to (or a survivor, when
//! the edge died) can load it. Ownership is a token, strictly increasing per client id (a NATS
//! KV revision): a [claim](SessionStore::claim) stores the claimant's token unless a larger one
//! is stored, and [`apply`](SessionStore::apply) and [`delete`](SessionStore::delete) act only
//! while the stored token is the caller's. An edge that lost the session can therefore never
//! overwrite its new owner's state.
//!
//! Each operation is one Lua script ([`scripts`]) over the session's five keys, which share a
//! hash slot; batches are encoded by [`write`] and claims decoded by [`load`].

mod load;
mod scripts;
mod write;

use std::fmt;

use redis::aio::ConnectionManager;
use redis::{FromRedisValue, Script, ScriptInvocation, Value};
use stratus_model::TenantId;

use crate::connection;
use crate::error::RedisStateError;
use crate::keys::{Namespace, SessionKeys};

pub use load::{StoredSessionMessage, StoredSessionState};
pub use write::{MAX_SESSION_BATCH, MAX_SESSION_FILTER_LEN, MAX_SESSION_RECORD_LEN, SessionWrite};

/// Longest client key accepted, in bytes.
const MAX_CLIENT_KEY_LEN: usize = 128;

/// How a claim treats the stored session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimMode {
    /// Continue the stored session, if any (MQTT clean start 0 / clean session 0).
    Resume,
    /// Discard the stored session (clean start 1 / clean session 1).
    Fresh {
        /// Whether the new session is persistent: its meta is written at once, so later
        /// writes are fenced. `false` leaves no key at all.
        persistent: bool,
    },
}

/// The most a resumed session may hold; a larger one is refused rather than loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLoadLimits {
    /// Most subscriptions.
    pub max_subscriptions: usize,
    /// Most queued and in-flight messages (and message states).
    pub max_messages: usize,
    /// Most incoming QoS 2 packet ids awaiting PUBREL.
    pub max_incoming_qos2: usize,
}

/// The outcome of a [claim](SessionStore::claim).
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// A larger token is stored: another edge owns the session. Nothing changed.
    Fenced {
        /// The stored token.
        current: u64,
    },
    /// The caller owns the session; the stored one, or `None` when none was stored.
    Resumed(Option<StoredSessionState>),
    /// The caller owns a new, empty session.
    Fresh,
}

/// The outcome of a fenced write.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Done.
    Done,
    /// The stored token is not the caller's, or the session is gone: nothing changed, and the
    /// caller no longer owns the session.
    Fenced,
}

/// Persistent sessions of every tenant, in Redis under one namespace. Clone-cheap: clones
/// share the connection.
#[derive(Clone)]
pub struct SessionStore {
    conn: ConnectionManager,
    namespace: Namespace,
}

impl fmt::Debug for SessionStore {
    /// The namespace only: the connection's own `Debug` is long and says nothing useful here.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionStore")
            .field("namespace", &self.namespace.as_str())
            .finish_non_exhaustive()
    }
}

impl SessionStore {
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

    /// Takes ownership of the session of `client_key` (the key derived from `client_id`) for
    /// `token`. Refused (`Ok(Claim::Fenced { current })`, nothing changed) when the stored
    /// token is larger; otherwise stores the token and:
    ///
    /// - [`ClaimMode::Resume`]: returns the stored session (`Claim::Resumed(Some(..))`), or
    ///   `Claim::Resumed(None)` when none is stored: no meta, or a meta without `expiry`
    ///   (then every key is deleted and meta = {token, client_id}, no TTL).
    ///   Removes the session's TTL and `offline_at` (the session is online); the returned
    ///   state still carries the `offline_at_ms` that was stored.
    /// - [`ClaimMode::Fresh`]: deletes every key of the session; if `persistent`, writes
    ///   meta = {token, client_id} (no TTL). Returns `Claim::Fresh`.
    ///
    /// Errors, with nothing changed: [`RedisStateError::SessionTooLarge`] when the stored
    /// session holds more than `limits` (checked in Redis before anything is read back),
    /// [`RedisStateError::SessionClientMismatch`] when it belongs to another client id,
    /// [`RedisStateError::CorruptSession`] when a meta field does not parse. A subscription,
    /// message or packet id that does not parse is also `CorruptSession`, found after the
    /// token was stored: the caller then owns a session it cannot load, and may claim it
    /// again with the same token and `ClaimMode::Fresh`.
    pub async fn claim(
        &self,
        tenant: &TenantId,
        client_key: &str,
        client_id: &str,
        token: u64,
        mode: ClaimMode,
        limits: SessionLoadLimits,
    ) -> Result<Claim, RedisStateError> {
        let keys = self.keys(tenant, client_key)?;
        let mode_code = match mode {
            ClaimMode::Resume => "resume",
            ClaimMode::Fresh { persistent: false } => "fresh",
            ClaimMode::Fresh { persistent: true } => "fresh_persistent",
        };
        let mut invocation = invocation(&scripts::CLAIM, &keys);
        invocation
            .arg(token)
            .arg(client_id)
            .arg(mode_code)
            .arg(limits.max_subscriptions)
            .arg(limits.max_messages)
            .arg(limits.max_incoming_qos2);
        let reply: Value = self.run(&invocation, "session claim").await?;
        let context = load::ClaimContext {
            tenant,
            client_key,
            client_id,
            keys: &keys,
            limits,
        };
        load::decode_claim(reply, &context)
    }

    /// Applies `writes` in order, atomically (one script call), only if the stored token is
    /// `token`: `Ok(Applied::Fenced)` otherwise, and also when the session has no meta (it
    /// was deleted, expired or never claimed). See [`SessionWrite::Offline`] for the TTL of
    /// an offline session.
    ///
    /// A batch over [`MAX_SESSION_BATCH`] writes, an empty or oversized filter or a record
    /// over [`MAX_SESSION_RECORD_LEN`] is refused before anything is sent
    /// ([`RedisStateError::InvalidSessionWrite`]); a stored `cursor` or `expiry` that does not
    /// parse is [`RedisStateError::CorruptSession`], with nothing changed.
    pub async fn apply(
        &self,
        tenant: &TenantId,
        client_key: &str,
        token: u64,
        writes: &[SessionWrite],
    ) -> Result<Applied, RedisStateError> {
        let keys = self.keys(tenant, client_key)?;
        let mut invocation = invocation(&scripts::APPLY, &keys);
        invocation.arg(token);
        write::encode_batch(writes, &mut invocation)?;
        let reply: Vec<Vec<u8>> = self.run(&invocation, "session apply").await?;
        match reply.first().map(Vec::as_slice) {
            Some(b"done") => Ok(Applied::Done),
            Some(b"fenced") => Ok(Applied::Fenced),
            Some(b"corrupt") => {
                let field = reply.get(1).map(Vec::as_slice).unwrap_or_default();
                Err(RedisStateError::CorruptSession {
                    key: keys.meta.clone(),
                    field: String::from_utf8_lossy(field).into_owned(),
                    reason: "not a decimal u64",
                })
            }
            _ => Err(RedisStateError::unexpected(
                "session apply",
                format!("reply {reply:?}"),
            )),
        }
    }

    /// Deletes every key of the session if the stored token is `token` (the session ended:
    /// it expired, or the client started clean); `Ok(Applied::Fenced)` with nothing changed
    /// otherwise.
    pub async fn delete(
        &self,
        tenant: &TenantId,
        client_key: &str,
        token: u64,
    ) -> Result<Applied, RedisStateError> {
        let keys = self.keys(tenant, client_key)?;
        let mut invocation = invocation(&scripts::DELETE, &keys);
        invocation.arg(token);
        let deleted: bool = self.run(&invocation, "session delete").await?;
        Ok(if deleted {
            Applied::Done
        } else {
            Applied::Fenced
        })
    }

    /// The stored token (`None` when the session has no meta): for tests and diagnostics.
    pub async fn token(
        &self,
        tenant: &TenantId,
        client_key: &str,
    ) -> Result<Option<u64>, RedisStateError> {
        let keys = self.keys(tenant, client_key)?;
        let mut conn = self.conn.clone();
        let token: Option<Vec<u8>> = redis::cmd("HGET")
            .arg(&keys.meta)
            .arg("token")
            .query_async(&mut conn)
            .await
            .map_err(RedisStateError::command("session token"))?;
        token
            .map(|raw| {
                std::str::from_utf8(&raw)
                    .ok()
                    .filter(|text| text.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|text| text.parse().ok())
                    .ok_or_else(|| RedisStateError::CorruptSession {
                        key: keys.meta.clone(),
                        field: "token".to_owned(),
                        reason: "not a decimal u64",
                    })
            })
            .transpose()
    }

    /// The session's keys, once `client_key` is known to fit in a key name.
    fn keys(&self, tenant: &TenantId, client_key: &str) -> Result<SessionKeys, RedisStateError> {
        check_client_key(client_key)?;
        Ok(self.namespace.session(tenant, client_key))
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

/// A client key is 1 to 128 of `A-Z a-z 0-9 . _ -` (the edge uses a lowercase base32 hash of
/// tenant and client id): nothing that could move the hash tag.
fn check_client_key(client_key: &str) -> Result<(), RedisStateError> {
    let reason = if client_key.is_empty() {
        "it cannot be empty"
    } else if client_key.len() > MAX_CLIENT_KEY_LEN {
        "it is longer than 128 bytes"
    } else if !client_key
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        "only A-Z, a-z, 0-9, '.', '_' and '-' are allowed"
    } else {
        return Ok(());
    };
    Err(RedisStateError::InvalidClientKey {
        client_key: client_key.to_owned(),
        reason,
    })
}

/// An invocation of `script` over the session's five keys, in the order the scripts expect.
fn invocation<'a>(script: &'a Script, keys: &SessionKeys) -> ScriptInvocation<'a> {
    let mut invocation = script.prepare_invoke();
    for key in keys.all() {
        invocation.key(key);
    }
    invocation
}
