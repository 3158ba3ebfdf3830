//! Shared test setup: the Redis under test, and a fresh namespace per test so tests run in
//! parallel without seeing each other's keys.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code, clippy::unwrap_used)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use stratus_model::TenantId;
use stratus_redis_state::{NodeLeases, RetainedQuota, RetainedStore, SessionStore};
use stratus_topics::{TopicFilter, TopicName};

/// The Redis URL the suite runs against.
pub(crate) fn redis_url() -> String {
    std::env::var("STRATUS_TEST_REDIS_URL")
        .expect("run through scripts/test.sh or export STRATUS_TEST_REDIS_URL")
}

/// A namespace no other test (or earlier run) uses.
pub(crate) fn unique_namespace(test: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("stratus-test:{test}:{}:{nanos}:{n}", std::process::id())
}

pub(crate) async fn store(test: &str) -> RetainedStore {
    RetainedStore::connect(&redis_url(), &unique_namespace(test))
        .await
        .unwrap()
}

pub(crate) async fn leases(test: &str) -> NodeLeases {
    NodeLeases::connect(&redis_url(), &unique_namespace(test))
        .await
        .unwrap()
}

pub(crate) async fn sessions(test: &str) -> SessionStore {
    SessionStore::connect(&redis_url(), &unique_namespace(test))
        .await
        .unwrap()
}

pub(crate) fn tenant(name: &str) -> TenantId {
    TenantId::new(name).unwrap()
}

pub(crate) fn topic(name: &str) -> TopicName {
    TopicName::try_from(name).unwrap()
}

pub(crate) fn filter(text: &str) -> TopicFilter {
    TopicFilter::try_from(text).unwrap()
}

/// A quota no test reaches unless it means to.
pub(crate) const ROOMY: RetainedQuota = RetainedQuota {
    max_messages: 100_000,
    max_bytes: 100_000_000,
};

/// A fixed "now" for tests that do not exercise expiry.
pub(crate) const NOW_MS: u64 = 1_700_000_000_000;
