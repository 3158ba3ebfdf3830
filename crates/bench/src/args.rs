//! The flags of `stratus bench` and their validation into [`Settings`].
//!
//! Every flag is documented here, where `stratus bench --help` reads it from. The hidden
//! `--worker-*` flags are how a parent process hands a share of a `conns` run to a copy of itself
//! (see `worker.rs`); they are not meant to be typed.

use std::net::IpAddr;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use stratus_codec::{ProtocolVersion, QoS};

use crate::error::BenchError;
use crate::payload::HEADER_LEN;
use crate::target::Target;

/// Load-test an MQTT broker (any broker, over `mqtt://`): throughput, end-to-end latency, loss,
/// duplicates and connection capacity.
#[derive(Debug, Clone, Parser)]
#[command(name = "bench", args_override_self = true)]
pub struct BenchArgs {
    /// Broker to load: mqtt://HOST:PORT (mqtts:// and ws:// are not supported yet)
    #[arg(long, value_name = "URL", default_value = "mqtt://127.0.0.1:1883")]
    pub url: String,

    /// Subscribers connect here instead of --url (p2p, fan-in, fan-out): another node of a
    /// clustered broker, so that every message crosses its backbone
    #[arg(long, value_name = "URL")]
    pub sub_url: Option<String>,

    /// Scenario to run
    #[arg(long, value_enum, default_value_t = Scenario::P2p)]
    pub scenario: Scenario,

    /// N: publisher/subscriber pairs (p2p), publishers (fan-in), subscribers (fan-out), idle
    /// connections (conns)
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub clients: u32,

    /// fan-in only: K subscribers in the shared subscription `$share/bench/...` instead of one
    /// plain subscriber; every message must reach exactly one of them
    #[arg(long, value_name = "K")]
    pub shared: Option<u32>,

    /// QoS of publications and subscriptions (0, 1 or 2)
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=2))]
    pub qos: u8,

    /// Payload size in bytes; the first 20 carry the send time, publisher id and sequence number
    #[arg(long, value_name = "BYTES", default_value_t = 64)]
    pub size: usize,

    /// Fixed-rate mode: total messages per second across all publishers, paced on an absolute
    /// schedule (no drift) [default: as fast as the broker takes them]
    #[arg(long, value_name = "MSG_PER_SEC")]
    pub rate: Option<f64>,

    /// How long to measure, after the warm-up (e.g. 10, 2.5, 500ms)
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_secs)]
    pub duration: Duration,

    /// Publishing before the measurement starts; counted for loss, not for rates or latency
    #[arg(long, value_name = "SECS", default_value = "1", value_parser = parse_secs)]
    pub warmup: Duration,

    /// After publishing stops, outstanding acknowledgements and deliveries are waited for until
    /// none arrived for this long (30 s more at most); what is missing then counts as lost
    #[arg(long, value_name = "SECS", default_value = "2", value_parser = parse_secs)]
    pub drain: Duration,

    /// MQTT protocol version
    #[arg(long, value_enum, default_value_t = Protocol::V311)]
    pub protocol: Protocol,

    /// QoS 1/2 window: messages a publisher may have unacknowledged (capped by the broker's
    /// Receive Maximum in 5.0)
    #[arg(long, value_name = "N", default_value_t = 128, value_parser = clap::value_parser!(u16).range(1..))]
    pub inflight: u16,

    /// Connection attempts in flight at once during setup (connect_per_sec measures this)
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub connectors: u32,

    /// Bind client sockets to these local addresses, round-robin (e.g. 127.0.0.1-127.0.0.8 or
    /// 127.0.0.2,127.0.0.3): each gives its own space of source ports
    #[arg(long, value_name = "IPS")]
    pub source_ips: Option<String>,

    /// conns only: generator processes to spread the connections over (this binary re-executes
    /// itself as workers) [default: as many as the open-file limit requires]
    #[arg(long, value_name = "P")]
    pub processes: Option<u32>,

    /// Keep-alive in seconds sent in CONNECT; idle clients send PINGREQ in time
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub keep_alive: u16,

    /// Longest wait for TCP connect plus CONNACK, and for SUBACK
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_secs)]
    pub connect_timeout: Duration,

    /// User name sent in CONNECT
    #[arg(long)]
    pub username: Option<String>,

    /// Password sent in CONNECT (needs --username)
    #[arg(long, requires = "username")]
    pub password: Option<String>,

    /// PID of the broker when it runs on this machine: reports its RSS (before setup and at
    /// the end, per connection) and its CPU use while measuring, read from /proc
    #[arg(long, value_name = "PID")]
    pub broker_pid: Option<u32>,

    /// Print the summary as JSON on stdout (progress stays on stderr)
    #[arg(long)]
    pub json: bool,

    /// No progress line on stderr
    #[arg(long)]
    pub quiet: bool,

    /// Worker mode: index of this worker process.
    #[arg(long, hide = true)]
    pub worker_index: Option<u32>,

    /// Worker mode: number of the first client of this worker's share.
    #[arg(long, hide = true, default_value_t = 0)]
    pub worker_first_client: u32,

    /// Worker mode: the parent's run id (client ids and topics of one run share it).
    #[arg(long, hide = true)]
    pub worker_run_id: Option<String>,
}

impl BenchArgs {
    /// True when this process is a worker started by a parent `stratus bench`: it then talks
    /// to its parent on stdin/stdout and prints nothing else there.
    pub fn is_worker(&self) -> bool {
        self.worker_index.is_some()
    }
}

/// The benchmark scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// N publishers, each publishing to its own topic read by its own subscriber.
    P2p,
    /// N publishers on N topics, one subscriber (or a --shared group) on all of them.
    FanIn,
    /// One publisher, N subscribers on its topic.
    FanOut,
    /// N idle connections with one subscription each, held for --duration.
    Conns,
}

impl Scenario {
    /// The name used on the command line and in the summary.
    pub fn name(self) -> &'static str {
        match self {
            Self::P2p => "p2p",
            Self::FanIn => "fan-in",
            Self::FanOut => "fan-out",
            Self::Conns => "conns",
        }
    }
}

/// MQTT protocol versions the generator speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Protocol {
    /// MQTT 3.1.1.
    #[value(name = "3.1.1")]
    V311,
    /// MQTT 5.0.
    #[value(name = "5", alias = "5.0")]
    V5,
}

impl Protocol {
    /// The codec's version.
    pub fn version(self) -> ProtocolVersion {
        match self {
            Self::V311 => ProtocolVersion::V3_1_1,
            Self::V5 => ProtocolVersion::V5,
        }
    }
}

/// Validated settings of one run.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) args: BenchArgs,
    pub(crate) target: Target,
    /// Where subscribers connect (`--sub-url`, else `target`).
    pub(crate) sub_target: Target,
    pub(crate) qos: QoS,
    pub(crate) version: ProtocolVersion,
    pub(crate) source_ips: Vec<IpAddr>,
    pub(crate) run_id: String,
}

/// Largest `--size`: keeps a PUBLISH well inside what brokers accept by default.
const MAX_SIZE: usize = 16 * 1024 * 1024;

impl Settings {
    /// Checks the flags against each other and resolves the broker address.
    pub(crate) async fn from_args(args: BenchArgs) -> Result<Self, BenchError> {
        let invalid = |what: String| Err(BenchError::InvalidArgs(what));
        if args.clients == 0 {
            return invalid("--clients must be at least 1".into());
        }
        if args.scenario != Scenario::Conns && (args.size < HEADER_LEN || args.size > MAX_SIZE) {
            return invalid(format!(
                "--size must be between {HEADER_LEN} (the stamp) and {MAX_SIZE} bytes"
            ));
        }
        match args.shared {
            Some(_) if args.scenario != Scenario::FanIn => {
                return invalid("--shared applies to --scenario fan-in only".into());
            }
            Some(0) => return invalid("--shared must be at least 1".into()),
            _ => {}
        }
        if let Some(rate) = args.rate
            && !(rate.is_finite() && rate > 0.0)
        {
            return invalid("--rate must be a positive number of messages per second".into());
        }
        if args.processes == Some(0) {
            return invalid("--processes must be at least 1".into());
        }
        if args.sub_url.is_some() && args.scenario == Scenario::Conns {
            return invalid("--sub-url applies to p2p, fan-in and fan-out only".into());
        }
        if args.processes.is_some_and(|p| p > 1) && args.scenario != Scenario::Conns {
            return invalid("--processes applies to --scenario conns only".into());
        }
        if args.connectors == 0 {
            return invalid("--connectors must be at least 1".into());
        }
        if args.duration.is_zero() {
            return invalid("--duration must be positive".into());
        }
        let source_ips = match &args.source_ips {
            Some(text) => parse_source_ips(text).map_err(BenchError::InvalidArgs)?,
            None => Vec::new(),
        };
        let target = Target::parse(&args.url).await?;
        let sub_target = match &args.sub_url {
            Some(url) => Target::parse(url).await?,
            None => target.clone(),
        };
        if let Some(ip) = source_ips
            .iter()
            .find(|ip| ip.is_ipv4() != target.addr.is_ipv4())
        {
            return invalid(format!(
                "--source-ips {ip} is not of the broker address's family ({})",
                target.addr
            ));
        }
        let qos = QoS::from_bits(args.qos).unwrap_or(QoS::AtMostOnce);
        let run_id = args.worker_run_id.clone().unwrap_or_else(new_run_id);
        Ok(Self {
            qos,
            version: args.protocol.version(),
            target,
            sub_target,
            source_ips,
            run_id,
            args,
        })
    }

    /// The local address for connection number `index`, if `--source-ips` was given.
    pub(crate) fn source_ip(&self, index: u64) -> Option<IpAddr> {
        let n = self.source_ips.len() as u64;
        (n > 0).then(|| self.source_ips[(index % n) as usize])
    }
}

/// A run id that keeps topics and client ids of concurrent or successive runs apart.
fn new_run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() ^ (d.as_secs() as u32))
        .unwrap_or(0);
    format!("{:x}{:05x}", std::process::id(), nanos & 0xF_FFFF)
}

/// Parses seconds: `10`, `2.5`, `500ms`, `3s`.
fn parse_secs(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, scale) = if let Some(ms) = text.strip_suffix("ms") {
        (ms, 1e-3)
    } else if let Some(s) = text.strip_suffix('s') {
        (s, 1.0)
    } else {
        (text, 1.0)
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a number of seconds (e.g. 10, 2.5, 500ms)"))?;
    Duration::try_from_secs_f64(value * scale)
        .map_err(|_| format!("`{text}` is not a valid duration"))
}

/// Parses `--source-ips`: comma-separated addresses or IPv4 ranges `A-B` (at most 1024).
pub(crate) fn parse_source_ips(text: &str) -> Result<Vec<IpAddr>, String> {
    let mut ips = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bad = || format!("--source-ips: `{part}` is not an address or a range A-B");
        if let Some((from, to)) = part.split_once('-') {
            let from: std::net::Ipv4Addr = from.trim().parse().map_err(|_| bad())?;
            let to: std::net::Ipv4Addr = to.trim().parse().map_err(|_| bad())?;
            let (from, to) = (u32::from(from), u32::from(to));
            if to < from || to - from >= 1024 {
                return Err(format!(
                    "--source-ips: range `{part}` must be ascending and at most 1024 addresses"
                ));
            }
            ips.extend((from..=to).map(|ip| IpAddr::from(std::net::Ipv4Addr::from(ip))));
        } else {
            ips.push(part.parse().map_err(|_| bad())?);
        }
    }
    if ips.is_empty() {
        return Err("--source-ips is empty".into());
    }
    Ok(ips)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_accept_plain_fractional_and_suffixed_values() {
        assert_eq!(parse_secs("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_secs("2.5"), Ok(Duration::from_millis(2500)));
        assert_eq!(parse_secs("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_secs("3s"), Ok(Duration::from_secs(3)));
        assert!(parse_secs("soon").is_err());
        assert!(parse_secs("-1").is_err());
    }

    #[test]
    fn source_ip_ranges_expand_in_order() {
        let ips = parse_source_ips("127.0.0.1-127.0.0.3, 127.0.0.9").unwrap();
        let text: Vec<String> = ips.iter().map(ToString::to_string).collect();
        assert_eq!(text, ["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.9"]);
        assert!(parse_source_ips("127.0.0.5-127.0.0.1").is_err());
        assert!(parse_source_ips("nope").is_err());
    }

    #[test]
    fn every_flag_parses_from_the_command_line() {
        let args = BenchArgs::try_parse_from([
            "bench",
            "--scenario",
            "fan-in",
            "--shared",
            "3",
            "--qos",
            "2",
            "--protocol",
            "5",
            "--rate",
            "1000",
            "--duration",
            "1.5",
        ])
        .unwrap();
        assert_eq!(args.scenario, Scenario::FanIn);
        assert_eq!(args.shared, Some(3));
        assert_eq!(args.protocol, Protocol::V5);
        assert_eq!(args.duration, Duration::from_millis(1500));
        assert!(BenchArgs::try_parse_from(["bench", "--qos", "3"]).is_err());
    }
}
