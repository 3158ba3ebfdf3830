//! Opening many connections with a bounded number of concurrent connectors, and timing it.
//!
//! `connectors` tasks take connection numbers from a shared counter until none are left, so
//! at most that many CONNECTs are in flight. The rate reported is connections established over
//! the wall-clock time from the first attempt to the last answer.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::error::BenchError;

/// The outcome of a setup phase.
#[derive(Debug)]
pub(crate) struct Opened<T> {
    /// One entry per connection number that was attempted, in number order.
    pub(crate) results: Vec<Result<T, BenchError>>,
    /// From the first attempt to the last answer.
    pub(crate) elapsed: Duration,
}

impl<T> Opened<T> {
    /// Connections that succeeded.
    pub(crate) fn succeeded(&self) -> u64 {
        self.results.iter().filter(|r| r.is_ok()).count() as u64
    }

    /// All results if every connection succeeded, otherwise the setup error.
    pub(crate) fn all_or_error(self, total: usize) -> Result<Vec<T>, BenchError> {
        let failed = self.results.iter().filter(|r| r.is_err()).count() as u64;
        let missing = (total - self.results.len()) as u64;
        let mut ok = Vec::with_capacity(self.results.len());
        let mut first = None;
        for result in self.results {
            match result {
                Ok(value) => ok.push(value),
                Err(e) => {
                    first.get_or_insert(e);
                }
            }
        }
        match first {
            None if missing == 0 => Ok(ok),
            None => Err(BenchError::Protocol("setup stopped early".into())),
            Some(first) if ok.is_empty() => Err(first),
            Some(first) => Err(BenchError::Setup {
                failed: failed + missing,
                total: total as u64,
                first: Box::new(first),
            }),
        }
    }
}

/// Runs `open(n)` for `n` in `0..total`, at most `connectors` at a time. With `stop_on_error`,
/// no new attempt starts after the first failure.
pub(crate) async fn open_all<T, F, Fut>(
    total: usize,
    connectors: u32,
    stop_on_error: bool,
    open: F,
) -> Opened<T>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<T, BenchError>> + Send,
{
    let start = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicBool::new(false));
    let open = Arc::new(open);
    let workers = (connectors as usize).clamp(1, total.max(1));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..workers {
        let (next, failed, open) = (next.clone(), failed.clone(), open.clone());
        tasks.spawn(async move {
            let mut mine = Vec::new();
            loop {
                if stop_on_error && failed.load(Ordering::Relaxed) {
                    break;
                }
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= total {
                    break;
                }
                let result = open(n).await;
                if result.is_err() {
                    failed.store(true, Ordering::Relaxed);
                }
                mine.push((n, result));
            }
            mine
        });
    }
    let mut numbered = Vec::with_capacity(total);
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(mine) => numbered.extend(mine),
            Err(e) => numbered.push((
                usize::MAX,
                Err(BenchError::Protocol(format!("connector task failed: {e}"))),
            )),
        }
    }
    let elapsed = start.elapsed();
    numbered.sort_by_key(|(n, _)| *n);
    Opened {
        results: numbered.into_iter().map(|(_, r)| r).collect(),
        elapsed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_number_is_opened_once_in_order() {
        let opened = open_all(50, 7, true, |n| async move { Ok(n) }).await;
        assert_eq!(opened.succeeded(), 50);
        let values = opened.all_or_error(50).unwrap();
        assert_eq!(values, (0..50).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn a_failure_stops_new_attempts_and_is_reported() {
        let opened = open_all(1000, 1, true, |n| async move {
            if n == 3 {
                Err(BenchError::Closed("test"))
            } else {
                Ok(n)
            }
        })
        .await;
        assert_eq!(opened.results.len(), 4);
        let err = opened.all_or_error(1000).unwrap_err();
        assert!(
            matches!(err, BenchError::Setup { failed: 997, .. }),
            "{err}"
        );
    }
}
