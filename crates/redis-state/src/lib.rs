//! `stratus-redis-state`: the clustered shape's shared state in Redis.
//!
//! - [`RetainedStore`]: retained messages per tenant, with a lexicographic index that serves
//!   wildcard filters without scanning other prefixes, quotas enforced inside Redis, and
//!   message expiry.
//! - [`NodeLeases`]: every edge incarnation keeps a lease; surviving edges list the
//!   incarnations whose lease lapsed, claim one exclusively, take its registered wills and
//!   forget it.
//!
//! Both are clone-cheap handles over one [`redis::aio::ConnectionManager`] (which reconnects on
//! its own); [`connect`] builds one with bounded timeouts, so a caller can share it between the
//! two with `from_manager`.
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
//!
//! A tenant's retained keys share the tenant's slot, so every retained mutation is one Lua
//! script: it changes the message, the index, the expiry set and the counters together,
//! enforces the quota and increments `version`. The lease registry is small and lives in one
//! slot; wills, written at every CONNECT with a will, are spread by incarnation.
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

pub use admission::{Admission, Admitted};
pub use connection::{CONNECT_TIMEOUT, connect};
pub use error::RedisStateError;
pub use lease::{Lease, NodeLeases, TakenWill};
pub use retained::{
    RetainedChange, RetainedEntry, RetainedOutcome, RetainedQuota, RetainedSnapshot, RetainedStore,
    RetainedUsage,
};
