//! The result of a run: what `--json` prints on stdout, and its human-readable form.
//!
//! Counts (`sent` ... `duplicated`) cover the whole run, warm-up and drain included. Rates and
//! latency cover the measurement window only (`measured_secs`, after the warm-up).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::stats::si;

/// Everything a run measured. Field names are the JSON keys.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// `p2p`, `fan-in`, `fan-out` or `conns`.
    pub scenario: String,
    /// The broker URL.
    pub url: String,
    /// `3.1.1` or `5.0`.
    pub protocol: String,
    /// QoS of publications and subscriptions.
    pub qos: u8,
    /// Payload bytes per message.
    pub size: usize,
    /// `--clients`.
    pub clients: u32,
    /// Publishing connections.
    pub publishers: u32,
    /// Subscribing connections (members of the share group with `--shared`).
    pub subscribers: u32,
    /// `--shared` group size, if any.
    pub shared: Option<u32>,
    /// `--rate` (messages per second across publishers), or null for max throughput.
    pub rate: Option<f64>,
    /// QoS 1/2 window per publisher as configured (`--inflight`).
    pub inflight: u16,
    /// Measurement window, seconds (`--duration`).
    pub duration_secs: f64,
    /// Publishing before the window, seconds (`--warmup`).
    pub warmup_secs: f64,
    /// Drain idle timeout: after publishing, waiting ends once nothing arrived for this long.
    pub drain_secs: f64,
    /// Generator processes (more than 1 only for `conns` beyond one process's file limit).
    pub processes: u32,

    /// Connections established during setup.
    pub connections: u64,
    /// Connection attempts that failed during setup.
    pub connect_failures: u64,
    /// Setup time: first connection attempt to last answer.
    pub connect_secs: f64,
    /// Connections established per second during setup, with `connectors` concurrent attempts.
    pub connect_per_sec: f64,
    /// Concurrent connection attempts during setup (`--connectors`).
    pub connectors: u32,
    /// `conns`: connections still open at the end of the hold period.
    pub held: Option<u64>,

    /// PUBLISH packets sent by publishers.
    pub sent: u64,
    /// Of those, acknowledged by the broker (PUBACK for QoS 1, PUBREC for QoS 2).
    pub acked: u64,
    /// Refused by the broker (5.0 PUBACK/PUBREC reason code >= 0x80).
    pub refused: u64,
    /// PUBLISH packets received by subscribers, duplicates included.
    pub received: u64,
    /// Deliveries owed: each sent (QoS 0) or acknowledged (QoS 1/2) message once per
    /// receiving group (each subscriber in fan-out, the one subscriber or share group in fan-in).
    pub expected: u64,
    /// Owed deliveries that had not arrived by the end of the drain period.
    pub lost: u64,
    /// Deliveries of a message a group had already received.
    pub duplicated: u64,
    /// Messages received without this run's stamp (another run's, or not from the generator).
    pub foreign: u64,

    /// Length of the measurement window, seconds.
    pub measured_secs: f64,
    /// Messages sent per second in the window.
    pub sent_per_sec: f64,
    /// Messages received per second in the window (all subscribers together).
    pub received_per_sec: f64,
    /// Latency samples: messages sent in the window and received.
    pub latency_samples: u64,
    /// End-to-end latency, median, milliseconds (null without samples).
    pub p50_ms: Option<f64>,
    /// 99th percentile, milliseconds.
    pub p99_ms: Option<f64>,
    /// 99.9th percentile, milliseconds.
    pub p999_ms: Option<f64>,
    /// Largest latency seen, milliseconds.
    pub max_ms: Option<f64>,

    /// CPU used by the generator (all its processes) in the window, percent of one core
    /// (`conns`: during setup).
    pub generator_cpu_percent: Option<f64>,
    /// `--broker-pid`, when given.
    pub broker_pid: Option<u32>,
    /// Broker RSS before setup, KiB.
    pub broker_rss_before_kib: Option<u64>,
    /// Broker RSS at the end (after measuring, or at the end of the hold for `conns`), KiB.
    pub broker_rss_after_kib: Option<u64>,
    /// (after - before) / connections, bytes.
    pub broker_rss_per_connection_bytes: Option<f64>,
    /// Broker CPU in the window, percent of one core (`conns`: during setup).
    pub broker_cpu_percent: Option<f64>,
    /// The machine's CPU steal in the window (time the hypervisor gave this machine's CPUs to
    /// someone else), percent of all CPU time; Linux guests only (`conns`: during setup).
    pub machine_steal_percent: Option<f64>,

    /// Connections that failed after setup (the run went on without them).
    pub connection_errors: u64,
    /// The first few of those errors.
    pub errors: Vec<String>,
}

impl Summary {
    /// The summary as one line of JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// The summary as indented JSON.
    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// Keeps the first few error messages (and counts them all).
    pub(crate) fn note_error(&mut self, error: &impl fmt::Display) {
        self.connection_errors += 1;
        if self.errors.len() < 5 {
            self.errors.push(error.to_string());
        }
    }
}

fn opt(value: Option<f64>, unit: &str) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{v:.3}{unit}"))
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.held.is_some() {
            writeln!(
                f,
                "{} against {}: MQTT {}, {} idle connections with a QoS {} subscription each, \
                 {} process(es)",
                self.scenario, self.url, self.protocol, self.clients, self.qos, self.processes
            )?;
        } else {
            let rate = self
                .rate
                .map_or_else(|| "max".to_owned(), |r| format!("{}/s", si(r)));
            let shared = self
                .shared
                .map_or_else(String::new, |k| format!(" (to a $share group of {k})"));
            writeln!(
                f,
                "{} against {}: MQTT {}, QoS {}, {} B payload, {} publishers, {} subscribers{}, \
                 rate {}",
                self.scenario,
                self.url,
                self.protocol,
                self.qos,
                self.size,
                self.publishers,
                self.subscribers,
                shared,
                rate
            )?;
        }
        writeln!(
            f,
            "  setup      {} connections in {:.2}s ({}/s, {} connectors){}",
            self.connections,
            self.connect_secs,
            si(self.connect_per_sec),
            self.connectors,
            if self.connect_failures > 0 {
                format!(", {} failed", self.connect_failures)
            } else {
                String::new()
            }
        )?;
        if let Some(held) = self.held {
            writeln!(f, "  held       {held} connections open at the end")?;
        } else {
            writeln!(
                f,
                "  messages   sent {}  acked {}  received {}  expected {}  lost {}  duplicated {}",
                self.sent, self.acked, self.received, self.expected, self.lost, self.duplicated
            )?;
            writeln!(
                f,
                "  throughput {}/s sent, {}/s received over {:.1}s",
                si(self.sent_per_sec),
                si(self.received_per_sec),
                self.measured_secs
            )?;
            if let Some(rate) = self.rate
                && self.sent_per_sec < rate * 0.95
            {
                writeln!(
                    f,
                    "  warning    publishers fell behind --rate {}/s: the broker did not take \
                     messages fast enough (QoS 1/2 window or TCP back-pressure)",
                    si(rate)
                )?;
            }
            writeln!(
                f,
                "  latency    p50 {}  p99 {}  p999 {}  max {}  ({} samples)",
                opt(self.p50_ms, "ms"),
                opt(self.p99_ms, "ms"),
                opt(self.p999_ms, "ms"),
                opt(self.max_ms, "ms"),
                self.latency_samples
            )?;
        }
        if let Some(cpu) = self.generator_cpu_percent {
            writeln!(f, "  generator  {cpu:.0}% of one core")?;
        }
        if let Some(steal) = self.machine_steal_percent {
            writeln!(
                f,
                "  machine    {steal:.1}% of CPU time stolen by the hypervisor"
            )?;
        }
        if let Some(pid) = self.broker_pid {
            writeln!(
                f,
                "  broker     pid {pid}: RSS {} -> {} KiB ({} B per connection), CPU {}",
                self.broker_rss_before_kib
                    .map_or_else(|| "-".into(), |v| v.to_string()),
                self.broker_rss_after_kib
                    .map_or_else(|| "-".into(), |v| v.to_string()),
                self.broker_rss_per_connection_bytes
                    .map_or_else(|| "-".into(), |v| format!("{v:.0}")),
                opt(self.broker_cpu_percent, "%")
            )?;
        }
        if self.connection_errors > 0 {
            writeln!(
                f,
                "  errors     {} connections failed after setup:",
                self.connection_errors
            )?;
            for e in &self.errors {
                writeln!(f, "             {e}")?;
            }
        }
        Ok(())
    }
}
