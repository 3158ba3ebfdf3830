//! Brute-force protection: failed CONNECTs are counted per client id and per source address in
//! fixed windows; once a key reaches the limit, its CONNECTs are refused until the window ends,
//! without checking credentials (so a password cannot be guessed by volume). The table is
//! bounded: when full, expired windows are dropped, and if none are, new keys are not tracked.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use parking_lot::Mutex;
use stratus_model::TenantId;
use tokio::time::Instant;

use super::FailureLimits;

/// What failures are counted by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum FailureKey {
    /// A client id of a tenant.
    ClientId(TenantId, String),
    /// A source address.
    Address(IpAddr),
}

#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    failures: u32,
}

/// Failed-connect counters.
#[derive(Debug)]
pub(crate) struct FailedConnects {
    limits: FailureLimits,
    window: Duration,
    capacity: usize,
    table: Mutex<HashMap<FailureKey, Window>>,
}

impl FailedConnects {
    /// Counters under `limits`, at most `capacity` keys tracked.
    pub(crate) fn new(limits: FailureLimits, capacity: usize) -> Self {
        Self {
            limits,
            window: limits.window,
            capacity,
            table: Mutex::new(HashMap::new()),
        }
    }

    /// True when `key` reached the limit in its current window.
    pub(crate) fn is_blocked(&self, key: &FailureKey, now: Instant) -> bool {
        let limit = match key {
            FailureKey::ClientId(..) => self.limits.per_client_id,
            FailureKey::Address(_) => self.limits.per_address,
        };
        self.table
            .lock()
            .get(key)
            .is_some_and(|w| now.duration_since(w.started) < self.window && w.failures >= limit)
    }

    /// Counts a failure.
    pub(crate) fn record_failure(&self, key: FailureKey, now: Instant) {
        let mut table = self.table.lock();
        if !table.contains_key(&key) && table.len() >= self.capacity {
            let window = self.window;
            table.retain(|_, w| now.duration_since(w.started) < window);
            if table.len() >= self.capacity {
                tracing::warn!(
                    "failed-connect table full; not tracking a new key until windows expire"
                );
                return;
            }
        }
        let w = table.entry(key).or_insert(Window {
            started: now,
            failures: 0,
        });
        if now.duration_since(w.started) >= self.window {
            *w = Window {
                started: now,
                failures: 0,
            };
        }
        w.failures = w.failures.saturating_add(1);
    }

    /// Forgets a key after a successful CONNECT.
    pub(crate) fn record_success(&self, key: &FailureKey) {
        self.table.lock().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_blocked_after_the_limit_until_its_window_ends() {
        let limits = FailureLimits {
            per_client_id: 3,
            per_address: 3,
            window: Duration::from_secs(60),
        };
        let limiter = FailedConnects::new(limits, 100);
        let key = FailureKey::Address("10.0.0.1".parse().unwrap());
        let t0 = Instant::now();
        for _ in 0..2 {
            limiter.record_failure(key.clone(), t0);
        }
        assert!(!limiter.is_blocked(&key, t0));
        limiter.record_failure(key.clone(), t0);
        assert!(limiter.is_blocked(&key, t0));
        assert!(!limiter.is_blocked(&key, t0 + Duration::from_secs(61)));
        limiter.record_success(&key);
        assert!(!limiter.is_blocked(&key, t0));
    }

    #[test]
    fn the_table_never_grows_past_its_capacity() {
        let limits = FailureLimits {
            per_client_id: 1,
            per_address: 1,
            window: Duration::from_secs(60),
        };
        let limiter = FailedConnects::new(limits, 2);
        let t0 = Instant::now();
        for i in 0..10u8 {
            limiter.record_failure(FailureKey::Address(IpAddr::from([10, 0, 0, i])), t0);
        }
        assert_eq!(limiter.table.lock().len(), 2);
    }
}
