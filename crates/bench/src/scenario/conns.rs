//! `conns`: open N idle connections, each with one subscription, hold them, count how many the
//! broker kept open.
//!
//! Each connection gets its own task once set up; it holds no buffers while idle, sends
//! PINGREQ in time, and notices when the broker closes it. When N exceeds what one process may
//! hold open (the open-file limit), the run is spread over worker processes (`worker.rs`), each
//! opening its share with [`run_share`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use stratus_codec::{Ack, Packet};
use tokio::sync::watch;
use tokio::time::{Instant, sleep, sleep_until};

use super::{base_summary, connect_spec, open_all};
use crate::args::Settings;
use crate::client::Client;
use crate::error::BenchError;
use crate::procfs::{CpuMeter, StealMeter, open_file_limit, rss_kib};
use crate::stats::{Live, Phase, Progress};
use crate::summary::Summary;

/// File descriptors a process keeps for itself besides its connections.
const FD_MARGIN: u64 = 200;

/// How long closing may take before the run ends anyway.
const CLOSE_WAIT: Duration = Duration::from_secs(10);

/// Connections one process may hold under its open-file limit.
pub(crate) fn per_process_capacity() -> u64 {
    open_file_limit()
        .unwrap_or(1024)
        .saturating_sub(FD_MARGIN)
        .max(1)
}

/// Idle connections of one process.
#[derive(Debug)]
pub(crate) struct Pool {
    pub(crate) live: Arc<Live>,
    stop: watch::Sender<bool>,
    tasks: Arc<AtomicU64>,
    /// Connections established.
    pub(crate) connected: u64,
    /// Attempts that failed, and the first error.
    pub(crate) failed: u64,
    pub(crate) first_error: Option<BenchError>,
    /// Setup wall-clock time.
    pub(crate) elapsed: Duration,
}

impl Pool {
    /// Opens `count` connections numbered from `first` (client ids, topics and source
    /// addresses follow the number, so that worker shares do not overlap).
    pub(crate) async fn open(
        settings: Arc<Settings>,
        first: u32,
        count: u32,
        live: Arc<Live>,
    ) -> Self {
        let (stop, stop_rx) = watch::channel(false);
        let tasks = Arc::new(AtomicU64::new(0));
        let spec = Arc::new(connect_spec(&settings));
        let connectors = settings.args.connectors;
        let opened = {
            let (live, tasks) = (live.clone(), tasks.clone());
            open_all(count as usize, connectors, false, move |i| {
                let (spec, settings) = (spec.clone(), settings.clone());
                let (live, tasks, stop_rx) = (live.clone(), tasks.clone(), stop_rx.clone());
                async move {
                    let n = u64::from(first) + i as u64;
                    let run = &settings.run_id;
                    let id = format!("b{run}-c{n}");
                    let source = settings.source_ip(n);
                    let attempt = async {
                        let mut client = Client::connect(&spec, &id, source, None).await?;
                        let filter = format!("bench/{run}/idle/{n}");
                        let wait = settings.args.connect_timeout;
                        client.subscribe(&filter, settings.qos, wait).await?;
                        Ok::<_, BenchError>(client)
                    };
                    match attempt.await {
                        Ok(client) => {
                            Live::add(&live.connected, 1);
                            Live::add(&live.open, 1);
                            tasks.fetch_add(1, Ordering::Relaxed);
                            tokio::spawn(idle(client, stop_rx, live, tasks));
                            Ok(())
                        }
                        Err(e) => {
                            Live::add(&live.failed, 1);
                            Err(e)
                        }
                    }
                }
            })
            .await
        };
        let connected = opened.succeeded();
        let failed = opened.results.len() as u64 - connected;
        let first_error = opened.results.into_iter().find_map(Result::err);
        Self {
            live,
            stop,
            tasks,
            connected,
            failed,
            first_error,
            elapsed: opened.elapsed,
        }
    }

    /// Connections open now.
    pub(crate) fn open_now(&self) -> u64 {
        Live::get(&self.live.open)
    }

    /// Disconnects every connection and waits (a bounded time) for them to close.
    pub(crate) async fn close(self) {
        let _ = self.stop.send(true);
        let deadline = Instant::now() + CLOSE_WAIT;
        while self.tasks.load(Ordering::Relaxed) > 0 && Instant::now() < deadline {
            sleep(Duration::from_millis(20)).await;
        }
    }
}

/// One idle connection: answers the broker, pings in time, notices a close.
async fn idle(
    mut client: Client,
    mut stop: watch::Receiver<bool>,
    live: Arc<Live>,
    tasks: Arc<AtomicU64>,
) {
    client.set_read_chunk(256);
    client.release_buffers();
    let version = client.version();
    let broker_closed = loop {
        if *stop.borrow() || stop.has_changed().is_err() {
            break false;
        }
        let ping = client.ping_due();
        tokio::select! {
            ready = client.wait() => {
                if ready.is_err() {
                    break true;
                }
                let read = client.try_read(|packet, out| match packet {
                    Packet::Publish(p) => {
                        if let Some(id) = p.packet_id {
                            let ack = Ack::success(id);
                            let answer = if p.qos == stratus_codec::QoS::ExactlyOnce {
                                Packet::PubRec(ack)
                            } else {
                                Packet::PubAck(ack)
                            };
                            answer.encode(version, out)?;
                        }
                        Ok(())
                    }
                    Packet::PubRel(ack) => {
                        Packet::PubComp(Ack::success(ack.packet_id)).encode(version, out)?;
                        Ok(())
                    }
                    Packet::Disconnect(_) => Err(BenchError::Closed("holding")),
                    _ => Ok(()),
                });
                match read {
                    Ok(outcome) if !outcome.closed => {}
                    _ => break true,
                }
            }
            _ = stop.changed() => {}
            () = async {
                match ping {
                    Some(at) => sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => {
                if client.ping_if_due().is_err() {
                    break true;
                }
            }
        }
        if client.try_flush().is_err() {
            break true;
        }
        client.release_buffers();
    };
    live.open.fetch_sub(1, Ordering::Relaxed);
    if !broker_closed {
        client.disconnect(Duration::from_secs(2)).await;
    }
    tasks.fetch_sub(1, Ordering::Relaxed);
}

/// Runs `conns`: in this process when the open-file limit allows, otherwise over workers.
pub(crate) async fn run(settings: Arc<Settings>) -> Result<Summary, BenchError> {
    let n = u64::from(settings.args.clients);
    let capacity = per_process_capacity();
    let needed = n.div_ceil(capacity) as u32;
    let processes = settings.args.processes.unwrap_or(needed);
    if processes < needed {
        return Err(BenchError::InvalidArgs(format!(
            "--processes {processes} cannot hold {n} connections: one process may hold about \
             {capacity} under its open-file limit; use --processes {needed} or more"
        )));
    }
    if processes > 1 {
        return crate::worker::run_parent(settings, processes).await;
    }
    let args = &settings.args;
    let mut summary = base_summary(&settings);
    summary.broker_rss_before_kib = args.broker_pid.and_then(rss_kib);
    let live = Arc::new(Live::default());
    let progress = Progress::start(live.clone(), n, args.quiet);
    let generator_cpu = CpuMeter::start(None);
    let broker_cpu = args.broker_pid.map(|pid| CpuMeter::start(Some(pid)));
    let steal = StealMeter::start();
    let pool = Pool::open(settings.clone(), 0, args.clients, live.clone()).await;
    summary.generator_cpu_percent = generator_cpu.percent();
    summary.broker_cpu_percent = broker_cpu.and_then(|m| m.percent());
    summary.machine_steal_percent = steal.percent();
    if pool.connected == 0 {
        return Err(pool
            .first_error
            .unwrap_or_else(|| BenchError::Protocol("no connection was attempted".into())));
    }
    summary.connections = pool.connected;
    summary.connect_failures = pool.failed;
    if let Some(e) = &pool.first_error {
        summary.errors.push(format!("setup: {e}"));
    }
    summary.connect_secs = pool.elapsed.as_secs_f64();
    summary.connect_per_sec = pool.connected as f64 / summary.connect_secs.max(1e-9);
    live.set_phase(Phase::Holding);
    sleep(args.duration).await;
    let held = pool.open_now();
    summary.held = Some(held);
    summary.connection_errors = pool.connected - held;
    summary.broker_rss_after_kib = args.broker_pid.and_then(rss_kib);
    finish_rss(&mut summary);
    live.set_phase(Phase::Closing);
    pool.close().await;
    drop(progress);
    Ok(summary)
}

/// Fills in the broker's RSS per held connection.
pub(crate) fn finish_rss(summary: &mut Summary) {
    if let (Some(before), Some(after)) =
        (summary.broker_rss_before_kib, summary.broker_rss_after_kib)
        && summary.connections > 0
    {
        summary.broker_rss_per_connection_bytes =
            Some((after as f64 - before as f64) * 1024.0 / summary.connections as f64);
    }
}

/// A worker's share of a `conns` run: opens the pool and hands it to the worker protocol.
pub(crate) async fn run_share(settings: Arc<Settings>, live: Arc<Live>) -> Pool {
    let first = settings.args.worker_first_client;
    let count = settings.args.clients;
    Pool::open(settings, first, count, live).await
}
