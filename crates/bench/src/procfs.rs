//! Figures read from Linux `/proc`: resident memory, CPU time, the open-file limit, and the
//! machine's CPU steal.
//!
//! Used for the broker (`--broker-pid`: RSS per connection, CPU while measuring) and for the
//! generator itself (its own CPU use, to show it is not the bottleneck). Steal is the time the
//! hypervisor ran something else while one of this virtual machine's CPUs had work: it shows when
//! a latency tail comes from the host rather than from the broker. Anything unreadable is `None`:
//! these figures are extras, never a reason to fail a run.
//!
//! `/proc` files are generated from kernel memory and never wait for a disk, so these small
//! synchronous reads are called from async code, a few times per run, never on a hot path.

use std::time::Instant;

/// Clock ticks per second of `/proc/<pid>/stat` times (`USER_HZ`, 100 on every Linux ABI).
const TICKS_PER_SEC: f64 = 100.0;

/// Resident set size of `pid` in KiB (`VmRSS` of `/proc/<pid>/status`).
pub(crate) fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// User plus system CPU time of `pid` (all its threads) in ticks.
pub(crate) fn cpu_ticks(pid: u32) -> Option<u64> {
    cpu_ticks_at(&format!("/proc/{pid}/stat"))
}

/// User plus system CPU time of this process in ticks.
pub(crate) fn own_cpu_ticks() -> Option<u64> {
    cpu_ticks_at("/proc/self/stat")
}

fn cpu_ticks_at(path: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(path).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count from after it.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let mut fields = rest.split_whitespace();
    // After the name: state is field 3, utime field 14, stime field 15.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// The soft limit on open files of this process (`Max open files` of `/proc/self/limits`).
pub(crate) fn open_file_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// CPU use of a process over an interval, as a percentage of one core.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CpuMeter {
    pid: Option<u32>,
    start_ticks: Option<u64>,
    start: Instant,
}

impl CpuMeter {
    /// Starts measuring `pid`, or this process when `None`.
    pub(crate) fn start(pid: Option<u32>) -> Self {
        Self {
            pid,
            start_ticks: Self::ticks(pid),
            start: Instant::now(),
        }
    }

    fn ticks(pid: Option<u32>) -> Option<u64> {
        match pid {
            Some(pid) => cpu_ticks(pid),
            None => own_cpu_ticks(),
        }
    }

    /// Percent of one core used since `start`.
    pub(crate) fn percent(&self) -> Option<f64> {
        let used = Self::ticks(self.pid)?.checked_sub(self.start_ticks?)?;
        let secs = self.start.elapsed().as_secs_f64();
        (secs > 0.0).then(|| used as f64 / TICKS_PER_SEC / secs * 100.0)
    }

    /// CPU seconds used since `start`.
    pub(crate) fn cpu_secs(&self) -> Option<f64> {
        let used = Self::ticks(self.pid)?.checked_sub(self.start_ticks?)?;
        Some(used as f64 / TICKS_PER_SEC)
    }
}

/// The machine's CPU time counters (the `cpu` line of `/proc/stat`): (steal, total) in ticks.
fn machine_cpu_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    // user nice system idle iowait irq softirq steal [guest guest_nice]: guest time is already
    // counted in user and nice, so the total is the first eight fields.
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|v| v.parse().ok())
        .collect::<Option<_>>()?;
    let steal = *fields.get(7)?;
    Some((steal, fields.iter().sum()))
}

/// The machine's CPU steal over an interval, as a percentage of all its CPUs' time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StealMeter {
    start: Option<(u64, u64)>,
}

impl StealMeter {
    /// Starts measuring.
    pub(crate) fn start() -> Self {
        Self {
            start: machine_cpu_ticks(),
        }
    }

    /// Percent of the machine's CPU time stolen since `start` (`None` when `/proc/stat` is
    /// unreadable or no tick has passed).
    pub(crate) fn percent(&self) -> Option<f64> {
        let (steal0, total0) = self.start?;
        let (steal1, total1) = machine_cpu_ticks()?;
        let total = total1.checked_sub(total0)?;
        let steal = steal1.checked_sub(steal0)?;
        (total > 0).then(|| steal as f64 / total as f64 * 100.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_memory_cpu_time_and_a_file_limit() {
        let pid = std::process::id();
        assert!(rss_kib(pid).is_some_and(|kib| kib > 0));
        assert!(cpu_ticks(pid).is_some());
        assert!(own_cpu_ticks().is_some());
        assert!(open_file_limit().is_some_and(|n| n > 0));
    }

    #[test]
    fn the_machine_has_steal_and_total_counters_and_steal_is_a_share_of_the_total() {
        let (steal, total) = machine_cpu_ticks().expect("/proc/stat has a cpu line");
        assert!(total > 0 && steal <= total);
        let meter = StealMeter::start();
        // Burn CPU until at least one tick has passed, so the interval is not empty.
        let deadline = Instant::now() + std::time::Duration::from_millis(50);
        while Instant::now() < deadline {
            std::hint::black_box(0u64);
        }
        let percent = meter.percent().expect("ticks passed");
        assert!((0.0..=100.0).contains(&percent), "{percent}");
    }

    #[test]
    fn a_missing_process_reads_as_none() {
        assert_eq!(rss_kib(u32::MAX), None);
        assert_eq!(cpu_ticks(u32::MAX), None);
    }
}
