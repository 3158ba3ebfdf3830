//! The stamp at the front of every benchmark payload, and the clock it is read from.
//!
//! Layout (big-endian, [`HEADER_LEN`] bytes, the rest of the payload is zeros):
//!
//! | bytes | field |
//! |---|---|
//! | 0..8 | send time: nanoseconds since the Unix epoch, from [`Clock`] |
//! | 8..12 | run tag: messages of other runs are ignored |
//! | 12..16 | publisher id (0-based, dense) |
//! | 16..20 | sequence number of the message within its publisher (0-based, dense) |
//!
//! The clock is read once for a Unix base at start-up and advanced with the monotonic
//! `Instant`, so times taken in one process are monotonic and processes on one machine agree to
//! within the jitter of that first read.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Bytes of the stamp; `--size` cannot be smaller.
pub const HEADER_LEN: usize = 20;

/// What a payload says about its message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    /// When the publisher encoded it, [`Clock::now_ns`].
    pub(crate) sent_ns: u64,
    /// The run it belongs to.
    pub(crate) run_tag: u32,
    /// Which publisher sent it.
    pub(crate) publisher: u32,
    /// Its sequence number within that publisher.
    pub(crate) seq: u32,
}

impl Stamp {
    /// Writes the stamp over the first [`HEADER_LEN`] bytes of `payload` (which is at least that
    /// long: `--size` is validated).
    pub(crate) fn write(&self, payload: &mut [u8]) {
        if let Some(header) = payload.get_mut(..HEADER_LEN) {
            header[0..8].copy_from_slice(&self.sent_ns.to_be_bytes());
            header[8..12].copy_from_slice(&self.run_tag.to_be_bytes());
            header[12..16].copy_from_slice(&self.publisher.to_be_bytes());
            header[16..20].copy_from_slice(&self.seq.to_be_bytes());
        }
    }

    /// Reads the stamp of a received payload; `None` when it is too short to carry one.
    pub(crate) fn read(payload: &[u8]) -> Option<Self> {
        let header: &[u8; HEADER_LEN] = payload.get(..HEADER_LEN)?.try_into().ok()?;
        let u32_at = |at: usize| {
            u32::from_be_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
        };
        let mut sent = [0u8; 8];
        sent.copy_from_slice(&header[0..8]);
        Some(Self {
            sent_ns: u64::from_be_bytes(sent),
            run_tag: u32_at(8),
            publisher: u32_at(12),
            seq: u32_at(16),
        })
    }
}

/// A cheap clock shared by every task of a process: nanoseconds since the Unix epoch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    base: Instant,
    base_unix_ns: u64,
}

impl Clock {
    /// Reads the wall clock once.
    pub(crate) fn new() -> Self {
        let base_unix_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        Self {
            base: Instant::now(),
            base_unix_ns,
        }
    }

    /// Now, in nanoseconds since the Unix epoch (monotonic within the process).
    pub(crate) fn now_ns(&self) -> u64 {
        self.at_ns(Instant::now())
    }

    /// `instant` in the clock's nanoseconds.
    pub(crate) fn at_ns(&self, instant: Instant) -> u64 {
        let since = instant.saturating_duration_since(self.base);
        self.base_unix_ns
            .saturating_add(u64::try_from(since.as_nanos()).unwrap_or(u64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_reads_back_as_written() {
        let stamp = Stamp {
            sent_ns: 1_700_000_000_123_456_789,
            run_tag: 0xDEAD_BEEF,
            publisher: 7,
            seq: 123_456,
        };
        let mut payload = vec![0u8; 64];
        stamp.write(&mut payload);
        assert_eq!(Stamp::read(&payload), Some(stamp));
        assert_eq!(Stamp::read(&payload[..HEADER_LEN - 1]), None);
    }

    #[test]
    fn the_clock_is_monotonic_and_near_unix_time() {
        let clock = Clock::new();
        let a = clock.now_ns();
        let b = clock.now_ns();
        assert!(b >= a);
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        assert!(unix.abs_diff(a) < 1_000_000_000);
    }
}
