//! CONNECTs per client id per second in the embedded shape (the clustered shape counts them in
//! Redis, across edges). Fixed one-second windows per (tenant, client id); the table is bounded:
//! when full, windows that ended are dropped, and if none have, a new key is admitted untracked
//! (the limit protects sessions from flapping, it is not a security boundary: failed logins have
//! their own limiter).

use std::collections::HashMap;
use std::time::Duration;

use parking_lot::Mutex;
use stratus_model::TenantId;
use tokio::time::Instant;

const WINDOW: Duration = Duration::from_secs(1);
/// Keys tracked at most.
const CAPACITY: usize = 100_000;

/// A client id of a tenant.
type Key = (TenantId, Box<str>);
/// When the key's window started, and its CONNECTs in it.
type Window = (Instant, u32);

/// Connect counters.
#[derive(Debug, Default)]
pub(crate) struct ConnectRate {
    table: Mutex<HashMap<Key, Window>>,
}

impl ConnectRate {
    /// Counts a CONNECT of `client_id`; false when it is over `limit` in the current window.
    pub(crate) fn admit(
        &self,
        tenant: &TenantId,
        client_id: &str,
        limit: u32,
        now: Instant,
    ) -> bool {
        let mut table = self.table.lock();
        let key = (tenant.clone(), Box::from(client_id));
        if !table.contains_key(&key) && table.len() >= CAPACITY {
            table.retain(|_, (started, _)| now.duration_since(*started) < WINDOW);
            if table.len() >= CAPACITY {
                return true;
            }
        }
        let entry = table.entry(key).or_insert((now, 0));
        if now.duration_since(entry.0) >= WINDOW {
            *entry = (now, 0);
        }
        entry.1 += 1;
        entry.1 <= limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_id_is_limited_per_window_and_others_are_not() {
        let rate = ConnectRate::default();
        let t = TenantId::new("acme").unwrap_or_else(|_| unreachable!());
        let now = Instant::now();
        assert!(rate.admit(&t, "a", 2, now));
        assert!(rate.admit(&t, "a", 2, now));
        assert!(!rate.admit(&t, "a", 2, now));
        assert!(rate.admit(&t, "b", 2, now));
        assert!(rate.admit(&t, "a", 2, now + WINDOW));
    }
}
