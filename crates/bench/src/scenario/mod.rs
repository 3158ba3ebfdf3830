//! The scenarios: who publishes where, who subscribes to what, and the phases of a run.
//!
//! Message scenarios (`p2p`, `fan-in`, `fan-out`) run in four phases: setup (subscribers, then
//! publishers, `--connectors` at a time), warm-up, measurement (`--duration`), and drain (until
//! every owed delivery arrived, or `--drain` passed). `conns` lives in `conns.rs`.

mod conns;
mod publisher;
mod setup;
mod subscriber;

use std::sync::Arc;
use std::time::Duration;

use bytestring::ByteString;
use tokio::sync::watch;
use tokio::time::{Instant, sleep, sleep_until};

use crate::args::{Scenario, Settings};
use crate::client::{Client, ConnectSpec};
use crate::error::BenchError;
use crate::payload::Clock;
use crate::procfs::{CpuMeter, StealMeter, rss_kib};
use crate::stats::{Latency, LatencyBuffer, Live, Phase, Progress};
use crate::summary::Summary;
use crate::tracking::{Accounting, Sent, account_group};

pub(crate) use conns::{finish_rss, run as run_conns, run_share as run_conns_share};
pub(crate) use setup::open_all;

use publisher::{PublisherPlan, Schedule};
use subscriber::SubscriberPlan;

/// The longest a drain may go on while messages still trickle in.
const MAX_EXTRA_DRAIN: Duration = Duration::from_secs(30);

/// A subscribing connection of the layout.
#[derive(Debug, Clone)]
struct SubscriberSpec {
    client_id: String,
    filter: String,
    group: usize,
}

/// Who talks to whom in a message scenario.
#[derive(Debug, Clone)]
struct Layout {
    /// Client id and topic of each publisher; the index is the publisher id.
    publishers: Vec<(String, ByteString)>,
    subscribers: Vec<SubscriberSpec>,
    /// For each receiving group, the publishers whose every message it must receive.
    groups: Vec<Vec<u32>>,
}

impl Layout {
    fn new(settings: &Settings) -> Self {
        let run = &settings.run_id;
        let n = settings.args.clients;
        let publisher = |i: u32, topic: String| (format!("b{run}-p{i}"), ByteString::from(topic));
        let subscriber = |i: u32, filter: String, group: usize| SubscriberSpec {
            client_id: format!("b{run}-s{i}"),
            filter,
            group,
        };
        match settings.args.scenario {
            Scenario::P2p | Scenario::Conns => Self {
                publishers: (0..n)
                    .map(|i| publisher(i, format!("bench/{run}/{i}")))
                    .collect(),
                subscribers: (0..n)
                    .map(|i| subscriber(i, format!("bench/{run}/{i}"), i as usize))
                    .collect(),
                groups: (0..n).map(|i| vec![i]).collect(),
            },
            Scenario::FanIn => {
                let filter = format!("bench/{run}/+");
                let subscribers = match settings.args.shared {
                    Some(k) => (0..k)
                        .map(|i| subscriber(i, format!("$share/bench/{filter}"), 0))
                        .collect(),
                    None => vec![subscriber(0, filter, 0)],
                };
                Self {
                    publishers: (0..n)
                        .map(|i| publisher(i, format!("bench/{run}/{i}")))
                        .collect(),
                    subscribers,
                    groups: vec![(0..n).collect()],
                }
            }
            Scenario::FanOut => Self {
                publishers: vec![publisher(0, format!("bench/{run}/all"))],
                subscribers: (0..n)
                    .map(|i| subscriber(i, format!("bench/{run}/all"), i as usize))
                    .collect(),
                groups: (0..n).map(|_| vec![0]).collect(),
            },
        }
    }
}

/// The connection settings of every client of a run.
pub(crate) fn connect_spec(settings: &Settings) -> ConnectSpec {
    ConnectSpec {
        target: settings.target.clone(),
        version: settings.version,
        keep_alive: settings.args.keep_alive,
        timeout: settings.args.connect_timeout,
        username: settings.args.username.as_deref().map(ByteString::from),
        password: settings
            .args
            .password
            .as_ref()
            .map(|p| bytes::Bytes::from(p.clone().into_bytes())),
    }
}

/// A tag that tells this run's payloads from any other's.
pub(crate) fn run_tag(run_id: &str) -> u32 {
    // FNV-1a.
    run_id.bytes().fold(0x811c_9dc5u32, |hash, b| {
        (hash ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// The settings part of a summary.
pub(crate) fn base_summary(settings: &Settings) -> Summary {
    let args = &settings.args;
    Summary {
        scenario: args.scenario.name().to_owned(),
        url: args.url.clone(),
        protocol: settings.version.to_string(),
        qos: settings.qos.as_u8(),
        size: args.size,
        clients: args.clients,
        shared: args.shared,
        rate: args.rate,
        inflight: args.inflight,
        duration_secs: args.duration.as_secs_f64(),
        warmup_secs: args.warmup.as_secs_f64(),
        drain_secs: args.drain.as_secs_f64(),
        processes: 1,
        connectors: args.connectors,
        broker_pid: args.broker_pid,
        ..Summary::default()
    }
}

/// Runs `p2p`, `fan-in` or `fan-out`.
pub(crate) async fn run_messages(settings: Arc<Settings>) -> Result<Summary, BenchError> {
    let args = &settings.args;
    let layout = Arc::new(Layout::new(&settings));
    let live = Arc::new(Live::default());
    let connections = layout.publishers.len() + layout.subscribers.len();
    let _progress = Progress::start(live.clone(), connections as u64, args.quiet);
    let mut summary = base_summary(&settings);
    summary.publishers = layout.publishers.len() as u32;
    summary.subscribers = layout.subscribers.len() as u32;
    summary.broker_rss_before_kib = args.broker_pid.and_then(rss_kib);

    // Setup: subscribers first, so that nothing published is missed.
    let spec = Arc::new(connect_spec(&settings));
    let sub_spec = Arc::new(ConnectSpec {
        target: settings.sub_target.clone(),
        ..connect_spec(&settings)
    });
    let (qos, wait) = (settings.qos, args.connect_timeout);
    let subscribers = {
        let (spec, settings, layout, live) =
            (sub_spec, settings.clone(), layout.clone(), live.clone());
        open_all(layout.subscribers.len(), args.connectors, true, move |i| {
            let (spec, settings, layout, live) =
                (spec.clone(), settings.clone(), layout.clone(), live.clone());
            async move {
                let sub = &layout.subscribers[i];
                let source = settings.source_ip(i as u64);
                let mut client =
                    Client::connect(&spec, &sub.client_id, source, Some(u16::MAX)).await?;
                client.subscribe(&sub.filter, qos, wait).await?;
                Live::add(&live.connected, 1);
                Ok(client)
            }
        })
        .await
    };
    let subscriber_secs = subscribers.elapsed.as_secs_f64();
    let subscribers = subscribers.all_or_error(layout.subscribers.len())?;
    let first_source = layout.subscribers.len() as u64;
    let publishers = {
        let (spec, settings, layout, live) =
            (spec.clone(), settings.clone(), layout.clone(), live.clone());
        open_all(layout.publishers.len(), args.connectors, true, move |i| {
            let (spec, settings, layout, live) =
                (spec.clone(), settings.clone(), layout.clone(), live.clone());
            async move {
                let source = settings.source_ip(first_source + i as u64);
                let client = Client::connect(&spec, &layout.publishers[i].0, source, None).await?;
                Live::add(&live.connected, 1);
                Ok(client)
            }
        })
        .await
    };
    let setup_secs = subscriber_secs + publishers.elapsed.as_secs_f64();
    let publishers = publishers.all_or_error(layout.publishers.len())?;
    summary.connections = connections as u64;
    summary.connect_secs = setup_secs;
    summary.connect_per_sec = connections as f64 / setup_secs.max(1e-9);

    // The schedule, shared by every task.
    let clock = Clock::new();
    let start = Instant::now() + Duration::from_millis(20);
    let measure_from = start + args.warmup;
    let stop = measure_from + args.duration;
    // Draining ends when nothing arrived for --drain, and within a bounded time in any case.
    let give_up = stop + args.drain + MAX_EXTRA_DRAIN;
    let run_tag = run_tag(&settings.run_id);
    let latency = Arc::new(Latency::new());
    let (stop_tx, stop_rx) = watch::channel(false);

    let mut receivers = Vec::with_capacity(subscribers.len());
    for (i, client) in subscribers.into_iter().enumerate() {
        let plan = SubscriberPlan {
            group: layout.subscribers[i].group,
            run_tag,
            publishers: layout.publishers.len() as u32,
            measure_from_ns: clock.at_ns(measure_from.into_std()),
            measure_to_ns: clock.at_ns(stop.into_std()),
        };
        let buffer = LatencyBuffer::new(latency.clone(), i);
        let task = subscriber::run(client, plan, clock, live.clone(), buffer, stop_rx.clone());
        receivers.push(tokio::spawn(task));
    }
    let per_publisher_rate = args.rate.map(|r| r / layout.publishers.len() as f64);
    let mut senders = Vec::with_capacity(publishers.len());
    for (i, client) in publishers.into_iter().enumerate() {
        let offset = args
            .rate
            .map_or(Duration::ZERO, |r| Duration::from_secs_f64(i as f64 / r));
        let plan = PublisherPlan {
            id: i as u32,
            topic: layout.publishers[i].1.clone(),
            qos: settings.qos,
            size: args.size,
            run_tag,
            window: args.inflight,
            schedule: Schedule {
                start,
                stop,
                drain: args.drain,
                give_up,
                rate: per_publisher_rate,
                offset,
            },
        };
        senders.push(tokio::spawn(publisher::run(
            client,
            plan,
            clock,
            live.clone(),
        )));
    }

    live.set_phase(Phase::Warmup);
    sleep_until(measure_from).await;
    live.set_phase(Phase::Measuring);
    let window_start = (Live::get(&live.sent), Live::get(&live.received));
    let generator_cpu = CpuMeter::start(None);
    let broker_cpu = args.broker_pid.map(|pid| CpuMeter::start(Some(pid)));
    let steal = StealMeter::start();
    sleep_until(stop).await;
    let window_secs = measure_from.elapsed().as_secs_f64();
    summary.measured_secs = window_secs;
    summary.sent_per_sec = (Live::get(&live.sent) - window_start.0) as f64 / window_secs;
    summary.received_per_sec = (Live::get(&live.received) - window_start.1) as f64 / window_secs;
    summary.generator_cpu_percent = generator_cpu.percent();
    summary.broker_cpu_percent = broker_cpu.and_then(|m| m.percent());
    summary.machine_steal_percent = steal.percent();
    live.set_phase(Phase::Draining);

    let mut sent = vec![Sent::default(); layout.publishers.len()];
    for task in senders {
        match task.await {
            Ok(report) => {
                summary.sent += u64::from(report.sent.count);
                summary.acked += report.acked;
                summary.refused += report.refused;
                if let Some(e) = &report.error {
                    summary.note_error(&format!("publisher {}: {e}", report.id));
                }
                if let Some(slot) = sent.get_mut(report.id as usize) {
                    *slot = report.sent;
                }
            }
            Err(e) => summary.note_error(&format!("publisher task: {e}")),
        }
    }
    let owed: u64 = layout
        .groups
        .iter()
        .flatten()
        .filter_map(|&p| sent.get(p as usize))
        .map(|s| u64::from(s.count) - s.excused.iter().filter(|&&q| q < s.count).count() as u64)
        .sum();
    let mut last = (Live::get(&live.received), Instant::now());
    loop {
        let (received, now) = (Live::get(&live.received), Instant::now());
        if received != last.0 {
            last = (received, now);
        }
        if received >= owed || now >= give_up || now.duration_since(last.1) >= args.drain {
            break;
        }
        sleep(Duration::from_millis(10)).await;
    }
    live.set_phase(Phase::Closing);
    summary.broker_rss_after_kib = args.broker_pid.and_then(rss_kib);
    let _ = stop_tx.send(true);

    let mut members: Vec<Vec<crate::tracking::Seen>> = vec![Vec::new(); layout.groups.len()];
    let mut group_dups = vec![0u64; layout.groups.len()];
    for task in receivers {
        match task.await {
            Ok(report) => {
                summary.received += report.received;
                summary.foreign += report.foreign;
                if let Some(e) = &report.error {
                    summary.note_error(&format!("subscriber: {e}"));
                }
                if let Some(dups) = group_dups.get_mut(report.group) {
                    *dups += report.duplicates;
                }
                if let Some(list) = members.get_mut(report.group) {
                    list.push(report.seen);
                }
            }
            Err(e) => summary.note_error(&format!("subscriber task: {e}")),
        }
    }
    let mut total = Accounting::default();
    for (g, publishers) in layout.groups.iter().enumerate() {
        let acc = account_group(
            &members[g],
            group_dups[g],
            publishers.iter().copied(),
            &sent,
        );
        total.expected += acc.expected;
        total.lost += acc.lost;
        total.duplicated += acc.duplicated;
    }
    summary.expected = total.expected;
    summary.lost = total.lost;
    summary.duplicated = total.duplicated;

    let histogram = latency.merged();
    summary.latency_samples = histogram.len();
    if !histogram.is_empty() {
        let ms = |ns: u64| ns as f64 / 1e6;
        summary.p50_ms = Some(ms(histogram.value_at_quantile(0.50)));
        summary.p99_ms = Some(ms(histogram.value_at_quantile(0.99)));
        summary.p999_ms = Some(ms(histogram.value_at_quantile(0.999)));
        summary.max_ms = Some(ms(histogram.max()));
    }
    finish_rss(&mut summary);
    Ok(summary)
}
