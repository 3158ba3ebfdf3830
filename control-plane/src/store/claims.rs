//! Which tenants have no device binding a client id, remembered so that the edge's per-CONNECT
//! question "who claims this client id?" needs no query for them.
//!
//! Only for SQLite (`stratus dev`), where this store is the database's one writer: every device
//! write goes through it, so it can keep the answer exact. (PostgreSQL may have several
//! control-plane processes writing; there the store always asks the database.)
//!
//! Exactness under concurrency: a device write forgets the tenant before it starts and bumps the
//! generation again when it ends (committed or not). A lookup that finds no binding caches that
//! only if no write started or ended while it was asking, so a binding being written is never
//! hidden by a stale "none".

use std::collections::HashSet;
use std::sync::{Mutex, MutexGuard, PoisonError};

use stratus_model::TenantId;

/// The remembered tenants and a generation counting device writes.
#[derive(Debug, Default)]
pub(crate) struct ClaimCache {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    generation: u64,
    unbound: HashSet<TenantId>,
}

impl ClaimCache {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The set holds no invariant a panic could break half-way.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// True when the tenant is known to have no device binding a client id.
    pub(crate) fn is_unbound(&self, tenant: &TenantId) -> bool {
        self.lock().unbound.contains(tenant)
    }

    /// The generation to hand back to [`ClaimCache::remember_unbound`].
    pub(crate) fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// Remembers that the tenant has no binding, unless a device write started or ended since
    /// `generation` was read.
    pub(crate) fn remember_unbound(&self, tenant: &TenantId, generation: u64) {
        let mut inner = self.lock();
        if inner.generation == generation {
            inner.unbound.insert(tenant.clone());
        }
    }

    /// Marks a device write of `tenant` (or the tenant's deletion): forgets it now and again
    /// when the returned guard drops.
    pub(crate) fn writing<'a>(&'a self, tenant: &TenantId) -> WriteGuard<'a> {
        self.forget(tenant);
        WriteGuard {
            cache: self,
            tenant: tenant.clone(),
        }
    }

    fn forget(&self, tenant: &TenantId) {
        let mut inner = self.lock();
        inner.generation = inner.generation.wrapping_add(1);
        inner.unbound.remove(tenant);
    }
}

/// Forgets the tenant again when the write is over.
#[derive(Debug)]
pub(crate) struct WriteGuard<'a> {
    cache: &'a ClaimCache,
    tenant: TenantId,
}

impl Drop for WriteGuard<'_> {
    fn drop(&mut self) {
        self.cache.forget(&self.tenant);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acme() -> TenantId {
        TenantId::new("acme").expect("valid slug")
    }

    #[test]
    fn a_lookup_overlapping_a_write_is_not_remembered() {
        let cache = ClaimCache::default();
        let before = cache.generation();
        {
            let _write = cache.writing(&acme());
            cache.remember_unbound(&acme(), before);
            assert!(!cache.is_unbound(&acme()), "started before the write");
            let during = cache.generation();
            drop(_write);
            cache.remember_unbound(&acme(), during);
            assert!(!cache.is_unbound(&acme()), "read during the write");
        }
        let after = cache.generation();
        cache.remember_unbound(&acme(), after);
        assert!(cache.is_unbound(&acme()));
        drop(cache.writing(&acme()));
        assert!(!cache.is_unbound(&acme()), "a write forgets the tenant");
    }
}
