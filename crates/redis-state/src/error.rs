//! [`RedisStateError`]: what failed talking to Redis, and what to do about it.

use std::time::Duration;

/// Why a Redis state operation failed. Each message says what failed and how to fix it; the
/// underlying Redis error, when there is one, is the [`source`](std::error::Error::source).
#[derive(Debug, thiserror::Error)]
pub enum RedisStateError {
    /// The URL does not parse as a Redis URL.
    #[error(
        "invalid Redis URL {url}: expected redis://[user:password@]host:port[/db] or rediss://..."
    )]
    InvalidUrl {
        /// The URL, password redacted.
        url: String,
        /// What the parser said.
        #[source]
        source: redis::RedisError,
    },
    /// Redis refused or dropped the first connection.
    #[error(
        "cannot connect to Redis at {url}: check that Redis is running there, reachable from \
         this host, and that the credentials in the URL are right"
    )]
    Connect {
        /// The URL, password redacted.
        url: String,
        /// The connection error.
        #[source]
        source: redis::RedisError,
    },
    /// Nothing answered within the connect timeout.
    #[error(
        "Redis at {url} did not answer within {timeout:?}: check that Redis is running there \
         and that the host and port are right (a firewall that drops packets looks like this)"
    )]
    ConnectTimeout {
        /// The URL, password redacted.
        url: String,
        /// How long we waited.
        timeout: Duration,
    },
    /// A command or script failed: connection lost, timeout, or an error from the server.
    #[error(
        "Redis {operation} failed: check that Redis (version 7 or newer) is reachable; the \
         connection is re-established in the background, so retrying may succeed"
    )]
    Command {
        /// What we were doing (`retained put`, `lease renew`, ...).
        operation: &'static str,
        /// The Redis error.
        #[source]
        source: redis::RedisError,
    },
    /// Redis answered with something this crate did not write.
    #[error(
        "unexpected reply from Redis for {operation} ({detail}): the keys under this namespace \
         were written by another program or version; give this deployment a namespace of its own"
    )]
    UnexpectedReply {
        /// What we were doing.
        operation: &'static str,
        /// What was wrong with the reply.
        detail: String,
    },
    /// The key namespace cannot be used.
    #[error("invalid Redis key namespace {namespace:?}: {reason}")]
    InvalidNamespace {
        /// The rejected namespace.
        namespace: String,
        /// Why, and what is allowed.
        reason: &'static str,
    },
    /// A lease's node id or incarnation cannot be part of a key.
    #[error("invalid lease {field} {value:?}: {reason}")]
    InvalidLease {
        /// `node id` or `incarnation`.
        field: &'static str,
        /// The rejected value.
        value: String,
        /// Why, and what is allowed.
        reason: &'static str,
    },
    /// A lease or claim duration of less than a millisecond.
    #[error("invalid lease duration {0:?}: a lease or reap claim must last at least 1 ms")]
    InvalidDuration(Duration),
    /// This incarnation was released or reaped; it may not renew.
    #[error(
        "the lease of node {node_id} incarnation {incarnation} was released or reaped by another \
         node: drop this incarnation's clients and start again with a new incarnation"
    )]
    LeaseLost {
        /// The node.
        node_id: String,
        /// The incarnation that was lost.
        incarnation: String,
    },
    /// A session's client key cannot be part of a key name.
    #[error("invalid session client key {client_key:?}: {reason}")]
    InvalidClientKey {
        /// The rejected client key.
        client_key: String,
        /// Why, and what is allowed.
        reason: &'static str,
    },
    /// A session write batch was refused before reaching Redis; nothing was written.
    #[error("invalid session write batch: {0}")]
    InvalidSessionWrite(String),
    /// A resumed session holds more than the caller's load limits; nothing was changed.
    #[error(
        "the stored session of client key {client_key} in tenant {tenant} holds {count} \
         {what}, more than the load limit of {limit}: nothing was changed; start the client \
         with a fresh session or raise the limit"
    )]
    SessionTooLarge {
        /// The tenant.
        tenant: String,
        /// The session's client key.
        client_key: String,
        /// What there is too much of (`subscriptions`, `messages`, ...).
        what: &'static str,
        /// How many are stored.
        count: u64,
        /// The limit the caller gave.
        limit: usize,
    },
    /// The session stored under a client key belongs to another client id; nothing was
    /// changed.
    #[error(
        "the session stored under client key {client_key} in tenant {tenant} belongs to client \
         id {stored:?}, not {requested:?}: two client ids map to one key, or the keys under this \
         namespace were written by another program; nothing was changed"
    )]
    SessionClientMismatch {
        /// The tenant.
        tenant: String,
        /// The session's client key.
        client_key: String,
        /// The client id stored with the session.
        stored: String,
        /// The client id of the claim.
        requested: String,
    },
    /// A stored session field does not have the shape this crate writes.
    #[error(
        "corrupt session data in Redis key {key}, field {field:?}: {reason}; the keys under this \
         namespace were written by another program or version: claim the session fresh (or \
         delete its keys) to start over"
    )]
    CorruptSession {
        /// The Redis key.
        key: String,
        /// The hash field or set member (lossy UTF-8).
        field: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

impl RedisStateError {
    /// Wraps a command error with what we were doing.
    pub(crate) fn command(operation: &'static str) -> impl FnOnce(redis::RedisError) -> Self {
        move |source| Self::Command { operation, source }
    }

    /// A reply that does not have the shape the script returns.
    pub(crate) fn unexpected(operation: &'static str, detail: impl Into<String>) -> Self {
        Self::UnexpectedReply {
            operation,
            detail: detail.into(),
        }
    }
}
