//! Live counters, the latency histogram and the once-a-second progress line.
//!
//! Connection tasks count locally and add their counts to the shared atomics once per batch
//! (one write, one read of the socket), so the hot path touches no shared cache line per
//! message. Latencies go into a small per-task buffer that is folded into one of a few sharded
//! HDR histograms under a lock held for the fold only, never across an `.await`.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use parking_lot::Mutex;
use tokio::io::AsyncWriteExt;

/// Counters every task adds to; read by the progress line and the coordinator.
#[derive(Debug, Default)]
pub(crate) struct Live {
    /// PUBLISH packets written by publishers.
    pub(crate) sent: AtomicU64,
    /// PUBACK / PUBREC received by publishers.
    pub(crate) acked: AtomicU64,
    /// PUBLISH packets received by subscribers (duplicates included).
    pub(crate) received: AtomicU64,
    /// Connections established (CONNACK and, for subscribers, SUBACK received).
    pub(crate) connected: AtomicU64,
    /// Connections currently open (conns scenario).
    pub(crate) open: AtomicU64,
    /// Connection attempts that failed.
    pub(crate) failed: AtomicU64,
    /// Which phase the run is in, for the progress line.
    phase: AtomicU8,
}

impl Live {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        if n > 0 {
            counter.fetch_add(n, Ordering::Relaxed);
        }
    }

    pub(crate) fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    pub(crate) fn set_phase(&self, phase: Phase) {
        self.phase.store(phase as u8, Ordering::Relaxed);
    }

    fn phase(&self) -> Phase {
        Phase::from_u8(self.phase.load(Ordering::Relaxed))
    }
}

/// Phases of a run, as shown on the progress line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Phase {
    Connecting = 0,
    Warmup = 1,
    Measuring = 2,
    Draining = 3,
    Holding = 4,
    Closing = 5,
}

impl Phase {
    fn from_u8(value: u8) -> Self {
        match value {
            1 => Self::Warmup,
            2 => Self::Measuring,
            3 => Self::Draining,
            4 => Self::Holding,
            5 => Self::Closing,
            _ => Self::Connecting,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Connecting => "connecting",
            Self::Warmup => "warm-up",
            Self::Measuring => "measuring",
            Self::Draining => "draining",
            Self::Holding => "holding",
            Self::Closing => "closing",
        }
    }
}

/// Shards of the latency histogram; tasks spread over them so two worker threads rarely meet.
const SHARDS: usize = 8;

/// End-to-end latencies in nanoseconds, from 1 ns to 60 s at three significant digits.
#[derive(Debug)]
pub(crate) struct Latency {
    shards: Vec<Mutex<Histogram<u64>>>,
}

impl Latency {
    pub(crate) fn new() -> Self {
        let shards = (0..SHARDS)
            .map(|_| {
                // Constant bounds within what hdrhistogram accepts (low >= 1, high >= 2 * low,
                // sigfig <= 5): this cannot fail.
                #[allow(clippy::expect_used)]
                let h = Histogram::new_with_bounds(1, 60_000_000_000, 3)
                    .expect("constant histogram bounds are valid");
                Mutex::new(h)
            })
            .collect();
        Self { shards }
    }

    /// Folds `samples` into shard `shard % SHARDS`.
    fn record(&self, shard: usize, samples: &[u64]) {
        let mut h = self.shards[shard % SHARDS].lock();
        for &ns in samples {
            h.saturating_record(ns.max(1));
        }
    }

    /// All shards merged.
    pub(crate) fn merged(&self) -> Histogram<u64> {
        let mut total = Histogram::new_from(&*self.shards[0].lock());
        for shard in &self.shards {
            // Same bounds everywhere, so `add` cannot fail on range.
            let _ = total.add(&*shard.lock());
        }
        total
    }
}

/// Latency samples of one task, folded into the shared histogram in batches.
#[derive(Debug)]
pub(crate) struct LatencyBuffer {
    latency: Arc<Latency>,
    shard: usize,
    samples: Vec<u64>,
}

const LATENCY_BATCH: usize = 256;

impl LatencyBuffer {
    pub(crate) fn new(latency: Arc<Latency>, shard: usize) -> Self {
        Self {
            latency,
            shard,
            samples: Vec::with_capacity(LATENCY_BATCH),
        }
    }

    pub(crate) fn push(&mut self, ns: u64) {
        if self.samples.len() == LATENCY_BATCH {
            self.flush();
        }
        self.samples.push(ns);
    }

    pub(crate) fn flush(&mut self) {
        if !self.samples.is_empty() {
            self.latency.record(self.shard, &self.samples);
            self.samples.clear();
        }
    }
}

impl Drop for LatencyBuffer {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Prints one progress line per second on stderr until dropped.
#[derive(Debug)]
pub(crate) struct Progress {
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Progress {
    /// Starts printing, unless `quiet`. `total` is the connection target shown while connecting.
    pub(crate) fn start(live: Arc<Live>, total: u64, quiet: bool) -> Self {
        if quiet {
            return Self { task: None };
        }
        let task = tokio::spawn(async move {
            let start = Instant::now();
            let mut tick = tokio::time::interval_at(
                tokio::time::Instant::now() + Duration::from_secs(1),
                Duration::from_secs(1),
            );
            let mut last = (0u64, 0u64, Instant::now());
            loop {
                tick.tick().await;
                let now = Instant::now();
                let sent = Live::get(&live.sent);
                let received = Live::get(&live.received);
                let secs = now.duration_since(last.2).as_secs_f64().max(1e-3);
                let line = progress_line(
                    now.duration_since(start),
                    live.phase(),
                    &live,
                    total,
                    (sent - last.0.min(sent)) as f64 / secs,
                    (received - last.1.min(received)) as f64 / secs,
                );
                // Through tokio, so that a slow stderr reader never blocks a runtime thread.
                let mut stderr = tokio::io::stderr();
                let written = stderr.write_all(format!("{line}\n").as_bytes()).await;
                if written.is_err() {
                    break;
                }
                last = (sent, received, now);
            }
        });
        Self { task: Some(task) }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

fn progress_line(
    elapsed: Duration,
    phase: Phase,
    live: &Live,
    total: u64,
    sent_rate: f64,
    received_rate: f64,
) -> String {
    let mut line = format!(
        "bench [{:>4.0}s] {:<10}",
        elapsed.as_secs_f64(),
        phase.label()
    );
    let connected = Live::get(&live.connected);
    let failed = Live::get(&live.failed);
    let _ = write!(line, " conns {connected}/{total}");
    if failed > 0 {
        let _ = write!(line, " ({failed} failed)");
    }
    if matches!(phase, Phase::Holding | Phase::Closing) || Live::get(&live.open) > 0 {
        let _ = write!(line, " open {}", Live::get(&live.open));
    }
    let sent = Live::get(&live.sent);
    if sent > 0 || matches!(phase, Phase::Warmup | Phase::Measuring | Phase::Draining) {
        let _ = write!(
            line,
            "  sent {} ({}/s)  acked {}  recv {} ({}/s)",
            sent,
            si(sent_rate),
            Live::get(&live.acked),
            Live::get(&live.received),
            si(received_rate)
        );
    }
    line
}

/// `1234567.0` as `1.23M`.
pub(crate) fn si(value: f64) -> String {
    if value >= 1e6 {
        format!("{:.2}M", value / 1e6)
    } else if value >= 1e3 {
        format!("{:.1}k", value / 1e3)
    } else {
        format!("{value:.0}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_samples_from_many_buffers_merge() {
        let latency = Arc::new(Latency::new());
        for shard in 0..20 {
            let mut buf = LatencyBuffer::new(latency.clone(), shard);
            for i in 1..=1000u64 {
                buf.push(i * 1000);
            }
        }
        let h = latency.merged();
        assert_eq!(h.len(), 20_000);
        let p50 = h.value_at_quantile(0.5);
        assert!((495_000..=505_000).contains(&p50), "{p50}");
    }

    #[test]
    fn rates_print_with_si_suffixes() {
        assert_eq!(si(12.0), "12");
        assert_eq!(si(12_345.0), "12.3k");
        assert_eq!(si(2_500_000.0), "2.50M");
    }
}
