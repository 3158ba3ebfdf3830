//! `stratus-redis-state`: the clustered shape's shared state in Redis.
//!
//! - [`RetainedStore`]: retained messages per tenant, with a lexicographic index that serves
//!   wildcard filters without scanning other prefixes, quotas enforced inside Redis, and
//!   message expiry.
//! - [`NodeLeases`]: every edge incarnation keeps a lease; surviving edges list the
//!   incarnations whose lease lapsed, claim one exclusively, take its registered wills and
//!   forget it.
//! - [`SessionStore`]: persistent MQTT sessions, loaded by the edge a client reconnects to;
//!   every write is fenced by the owner's token, so a stale edge cannot overwrite them.
//!
//! All are clone-cheap handles over one [`redis::aio::ConnectionManager`] (which reconnects on
//! its own); [`connect`] builds one with bounded timeouts, so a caller can share it between
//! them with `from_manager`.
//!
//! # Key layout
//!
//! Every key starts with a caller-given namespace `{ns}` (`stratus:p0`; tests use a unique one).
//! The part between `{` and `}` is a Redis Cluster hash tag: keys that one script touches share
//! it, so they live in one slot.
//!
//! | key | type | content |
//! |---|---|---|
//! | `{ns}:ret:{<tenant>}:msgs` | hash | topic → retained record (opaque bytes) |
//! | `{ns}:ret:{<tenant>}:idx` | sorted set | topics, all scored 0, for `ZRANGEBYLEX` prefix scans |
//! | `{ns}:ret:{<tenant>}:exp` | sorted set | topic → expiry, unix ms (topics that expire only) |
//! | `{ns}:ret:{<tenant>}:meta` | hash | `count`, `bytes` (sum of topic + record lengths), `version` |
//! | `{ns}:lease:{registry}:nodes` | sorted set | `<node id>:<incarnation>` → last renewal, Redis server ms |
//! | `{ns}:lease:{registry}:alive:<node id>:<incarnation>` | string, `PX` TTL | the lease itself |
//! | `{ns}:lease:{registry}:reap:<node id>:<incarnation>` | string, `PX` TTL | the reaper's claim |
//! | `{ns}:lease:{registry}:gone:<node id>:<incarnation>` | string, 24 h TTL | released or reaped: may not renew |
//! | `{ns}:wills:{<node id>:<incarnation>}` | hash | `<tenant>/<client key>` → 8-byte big-endian token, then the will record |
//! | `{ns}:willq:{delayed}:due` | sorted set | `<token hex>/<tenant>/<client key>` → when the will is due (or its claim ends), unix ms |
//! | `{ns}:willq:{delayed}:records` | hash | same id → 8-byte big-endian token, then the will record |
//! | `{ns}:sess:{<tenant>:<client key>}:meta` | hash | `token`, `client_id`, `expiry` (s), `next_pid`, `cursor`, `offline_at` (unix ms) |
//! | `{ns}:sess:{<tenant>:<client key>}:subs` | hash | filter → subscription record (opaque bytes) |
//! | `{ns}:sess:{<tenant>:<client key>}:msgs` | hash | decimal seq → message record (opaque bytes) |
//! | `{ns}:sess:{<tenant>:<client key>}:mstate` | hash | decimal seq → message delivery state (opaque bytes) |
//! | `{ns}:sess:{<tenant>:<client key>}:q2in` | set | decimal packet ids of incoming QoS 2 messages awaiting PUBREL |
//!
//! A tenant's retained keys share the tenant's slot, so every retained mutation is one Lua
//! script: it changes the message, the index, the expiry set and the counters together,
//! enforces the quota and increments `version`. The lease registry is small and lives in one
//! slot; wills, written at every CONNECT with a will, are spread by incarnation. A session's
//! keys share the session's slot, so a claim, a batch of writes or a delete is one script; an
//! offline session's keys expire together, at its expiry plus a grace.
//!
//! Architecture invariants: no Redis reply is unbounded (scans and will take-overs page, a
//! load is capped by its caller's limit); no raw tenant string or topic enters this crate
//! ([`TenantId`](stratus_model::TenantId), [`TopicName`](stratus_topics::TopicName) and
//! [`TopicFilter`](stratus_topics::TopicFilter) do); topic matching is
//! [`TopicFilter::matches`](stratus_topics::TopicFilter::matches), never a re-implementation.

mod admission;
mod connection;
mod error;
mod keys;
mod lease;
mod retained;
mod sessions;

pub use admission::{Admission, Admitted};
pub use connection::{CONNECT_TIMEOUT, connect};
pub use error::RedisStateError;
pub use lease::{Lease, NodeLeases, ParkedWill, TakenWill};
pub use retained::{
    RetainedChange, RetainedEntry, RetainedOutcome, RetainedQuota, RetainedSnapshot, RetainedStore,
    RetainedUsage,
};
pub use sessions::{
    Applied, Claim, ClaimMode, MAX_SESSION_BATCH, MAX_SESSION_FILTER_LEN, MAX_SESSION_RECORD_LEN,
    SessionLoadLimits, SessionStore, SessionWrite, StoredSessionMessage, StoredSessionState,
};
