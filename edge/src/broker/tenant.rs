//! Everything the broker keeps for one tenant: its sessions by client id, its subscription index,
//! shared-subscription groups, retained messages and counters. Nothing here is reachable from
//! another tenant.
//!
//! Lock order (never acquire an earlier lock while holding a later one): `sessions` ->
//! `shared_groups` -> `subscriptions` -> a group's members -> a session's state -> `retained`.

use std::borrow::Borrow;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use bytestring::ByteString;
use parking_lot::{Mutex, RwLock};
use stratus_codec::SubscriptionOptions;
use stratus_model::TenantId;
use stratus_topics::SubscriptionTrie;

use super::retained::RetainedStore;
use super::session::Session;
use super::shared::SharedGroup;
use crate::access::{AuthMethod, Principal, TenantAccess};

/// A subscriber in the subscription index: a session, or a shared group that picks a member.
#[derive(Debug, Clone)]
pub(crate) enum Subscriber {
    /// A session's own subscription.
    Session(Arc<Session>),
    /// A shared subscription group.
    Group(Arc<SharedGroup>),
}

impl Subscriber {
    fn identity(&self) -> usize {
        match self {
            Self::Session(s) => Arc::as_ptr(s) as usize,
            Self::Group(g) => Arc::as_ptr(g) as usize,
        }
    }
}

impl PartialEq for Subscriber {
    fn eq(&self, other: &Self) -> bool {
        self.identity() == other.identity()
    }
}

impl Eq for Subscriber {}

impl std::hash::Hash for Subscriber {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.identity().hash(state);
    }
}

/// Options of one entry in the subscription index.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IndexEntry {
    /// Subscription options (unused for groups: members carry their own).
    pub(crate) options: SubscriptionOptions,
    /// Subscription identifier.
    pub(crate) id: Option<NonZeroU32>,
}

/// A tenant's sessions by client id. The sessions are the keys (hashed and compared by their
/// client id), so an entry is one pointer instead of a copy of the id plus the pointer, and the id
/// is never cloned to become a key.
#[derive(Debug, Default)]
pub(crate) struct SessionMap(HashSet<ByClientId>);

/// A session as a set entry keyed by its client id.
#[derive(Debug)]
struct ByClientId(Arc<Session>);

impl Hash for ByClientId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // As `str` hashes, so that lookups by `&str` find it (`Borrow` contract).
        str::hash(&self.0.client_id, state);
    }
}

impl PartialEq for ByClientId {
    fn eq(&self, other: &Self) -> bool {
        self.0.client_id == other.0.client_id
    }
}

impl Eq for ByClientId {}

impl Borrow<str> for ByClientId {
    fn borrow(&self) -> &str {
        &self.0.client_id
    }
}

impl SessionMap {
    /// The session of `client_id`.
    pub(crate) fn get(&self, client_id: &str) -> Option<&Arc<Session>> {
        self.0.get(client_id).map(|e| &e.0)
    }

    /// Adds `session` under its client id, replacing (and returning) any other with that id.
    pub(crate) fn insert(&mut self, session: Arc<Session>) -> Option<Arc<Session>> {
        self.0.replace(ByClientId(session)).map(|e| e.0)
    }

    /// Removes the session of `client_id`.
    pub(crate) fn remove(&mut self, client_id: &str) -> Option<Arc<Session>> {
        self.0.take(client_id).map(|e| e.0)
    }

    /// Number of sessions.
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// Every session, in no particular order.
    pub(crate) fn values(&self) -> impl Iterator<Item = &Arc<Session>> {
        self.0.iter().map(|e| &e.0)
    }
}

/// Counters of one tenant, published under `$SYS/broker/...`.
#[derive(Debug, Default)]
pub(crate) struct TenantStats {
    /// PUBLISH packets received from clients.
    pub(crate) messages_received: AtomicU64,
    /// PUBLISH packets sent to clients.
    pub(crate) messages_sent: AtomicU64,
    /// Bytes received from clients.
    pub(crate) bytes_received: AtomicU64,
    /// Bytes sent to clients.
    pub(crate) bytes_sent: AtomicU64,
    /// Messages dropped (queue limits, oversize for the receiver, expiry).
    pub(crate) messages_dropped: AtomicU64,
}

impl TenantStats {
    /// Adds to a counter.
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        if n > 0 {
            counter.fetch_add(n, Ordering::Relaxed);
        }
    }
}

/// One tenant's broker state.
#[derive(Debug)]
pub(crate) struct Tenant {
    /// The tenant id.
    pub(crate) id: TenantId,
    /// Sessions by client id.
    pub(crate) sessions: Mutex<SessionMap>,
    /// Shared groups by subscription string.
    pub(crate) shared_groups: Mutex<HashMap<ByteString, Arc<SharedGroup>>>,
    /// The subscription index.
    pub(crate) subscriptions: RwLock<SubscriptionTrie<Subscriber, IndexEntry>>,
    /// Retained messages.
    pub(crate) retained: RwLock<RetainedStore>,
    /// Connections attached right now.
    pub(crate) connections: AtomicUsize,
    /// Counters.
    pub(crate) stats: TenantStats,
    /// Access settings and rules, swapped when the control plane changes them.
    pub(crate) access: arc_swap::ArcSwap<TenantAccess>,
    /// Whether `access` was loaded from the control plane.
    pub(crate) access_loaded: std::sync::atomic::AtomicBool,
    /// The principal all anonymous clients of this tenant share (see [`Tenant::share_principal`]).
    anonymous: std::sync::OnceLock<Arc<Principal>>,
}

impl Tenant {
    /// An empty tenant.
    pub(crate) fn new(id: TenantId) -> Self {
        Self {
            id,
            sessions: Mutex::new(SessionMap::default()),
            shared_groups: Mutex::new(HashMap::new()),
            subscriptions: RwLock::new(SubscriptionTrie::new()),
            retained: RwLock::new(RetainedStore::default()),
            connections: AtomicUsize::new(0),
            stats: TenantStats::default(),
            access: arc_swap::ArcSwap::new(TenantAccess::unloaded()),
            access_loaded: std::sync::atomic::AtomicBool::new(false),
            anonymous: std::sync::OnceLock::new(),
        }
    }

    /// `principal` behind an `Arc`: a fresh one, or for an anonymous client the one every
    /// anonymous client of this tenant shares (they are all equal, and a principal is never
    /// changed once made), which saves each such connection a 176-byte allocation.
    pub(crate) fn share_principal(&self, principal: Principal) -> Arc<Principal> {
        // Every field is named: a new field must be considered here before it compiles.
        let Principal {
            tenant,
            username,
            device_id,
            method,
            grants,
            expires_at,
        } = &principal;
        let plain_anonymous = *method == AuthMethod::Anonymous
            && *tenant == self.id
            && username.is_none()
            && device_id.is_none()
            && grants.is_none()
            && expires_at.is_none();
        if plain_anonymous {
            Arc::clone(self.anonymous.get_or_init(|| Arc::new(principal)))
        } else {
            Arc::new(principal)
        }
    }
}
