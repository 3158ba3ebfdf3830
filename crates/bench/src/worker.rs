//! Spreading `conns` over several generator processes, and the worker side of it.
//!
//! A process may hold only so many open files, so a parent `stratus bench --scenario conns`
//! beyond that limit re-executes its own binary P times with hidden `--worker-*` flags, each with
//! its share of the connections. Protocol, one JSON object per line:
//!
//! - worker -> parent (stdout): `progress` once a second, `ready` when its share is set up,
//!   `done` after the parent said stop (with the connections still open then), `error`.
//! - parent -> worker (stdin): `stop`. End of input also means stop, so a worker never outlives
//!   its parent.
//!
//! The parent sums the workers' figures; the setup rate is all connections over the span from
//! the earliest start to the latest end, timed with Unix nanoseconds on the same machine.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};

use crate::args::Settings;
use crate::error::BenchError;
use crate::payload::Clock;
use crate::procfs::{CpuMeter, StealMeter, rss_kib};
use crate::scenario::{base_summary, finish_rss, run_conns_share};
use crate::stats::{Live, Phase, Progress};
use crate::summary::Summary;

/// One line of the worker protocol, worker to parent.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
enum Event {
    Progress {
        connected: u64,
        open: u64,
        failed: u64,
    },
    Ready {
        connected: u64,
        failed: u64,
        start_unix_ns: u64,
        end_unix_ns: u64,
        cpu_secs: Option<f64>,
        first_error: Option<String>,
    },
    Done {
        held: u64,
    },
    Error {
        message: String,
    },
}

/// Runs this process as worker `--worker-index`: opens its share, reports, waits for stop.
pub(crate) async fn run_worker(settings: Arc<Settings>) -> Result<Summary, BenchError> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Event>();
    let writer = tokio::spawn(async move {
        let mut stdout = tokio::io::stdout();
        while let Some(event) = rx.recv().await {
            let mut line = serde_json::to_string(&event).unwrap_or_default();
            line.push('\n');
            if stdout.write_all(line.as_bytes()).await.is_err() || stdout.flush().await.is_err() {
                break;
            }
        }
    });
    let live = Arc::new(Live::default());
    let ticker = {
        let (live, tx) = (live.clone(), tx.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let event = Event::Progress {
                    connected: Live::get(&live.connected),
                    open: Live::get(&live.open),
                    failed: Live::get(&live.failed),
                };
                if tx.send(event).is_err() {
                    break;
                }
            }
        })
    };
    let clock = Clock::new();
    let cpu = CpuMeter::start(None);
    let start_unix_ns = clock.now_ns();
    let pool = run_conns_share(settings.clone(), live.clone()).await;
    let _ = tx.send(Event::Ready {
        connected: pool.connected,
        failed: pool.failed,
        start_unix_ns,
        end_unix_ns: clock.now_ns(),
        cpu_secs: cpu.cpu_secs(),
        first_error: pool.first_error.as_ref().map(ToString::to_string),
    });
    // Hold until the parent says stop or goes away.
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = stdin.next_line().await {
        if line.trim() == "stop" {
            break;
        }
    }
    let held = pool.open_now();
    let connected = pool.connected;
    ticker.abort();
    let _ = tx.send(Event::Done { held });
    pool.close().await;
    drop(tx);
    let _ = writer.await;
    let mut summary = base_summary(&settings);
    summary.connections = connected;
    summary.held = Some(held);
    Ok(summary)
}

/// A running worker process, as the parent sees it.
#[derive(Debug)]
struct Worker {
    child: Child,
    stdin: Option<ChildStdin>,
    progress: (u64, u64, u64),
    ready: Option<Event>,
    held: Option<u64>,
}

/// Runs `conns` over `processes` workers and adds up their results.
pub(crate) async fn run_parent(
    settings: Arc<Settings>,
    processes: u32,
) -> Result<Summary, BenchError> {
    let args = &settings.args;
    let exe = std::env::current_exe()
        .map_err(|e| BenchError::Worker(format!("cannot find this program to re-execute: {e}")))?;
    let mut summary = base_summary(&settings);
    summary.processes = processes;
    summary.broker_rss_before_kib = args.broker_pid.and_then(rss_kib);
    let live = Arc::new(Live::default());
    let progress = Progress::start(live.clone(), u64::from(args.clients), args.quiet);
    let broker_cpu = args.broker_pid.map(|pid| CpuMeter::start(Some(pid)));
    let steal = StealMeter::start();
    let (tx, mut rx) = mpsc::unbounded_channel::<(usize, Option<Event>)>();
    let mut workers = Vec::with_capacity(processes as usize);
    let mut first = 0u32;
    for index in 0..processes {
        let share = args.clients / processes + u32::from(index < args.clients % processes);
        let mut child = spawn(&exe, &settings, index, first, share, processes)?;
        first += share;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| BenchError::Worker("worker stdout is not piped".into()))?;
        let stdin = child.stdin.take();
        let tx = tx.clone();
        let i = workers.len();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let event = serde_json::from_str::<Event>(&line).unwrap_or(Event::Error {
                    message: format!("unreadable line from worker: {line}"),
                });
                if tx.send((i, Some(event))).is_err() {
                    return;
                }
            }
            let _ = tx.send((i, None));
        });
        workers.push(Worker {
            child,
            stdin,
            progress: (0, 0, 0),
            ready: None,
            held: None,
        });
    }
    drop(tx);

    // Setup: until every worker is ready.
    while workers.iter().any(|w| w.ready.is_none()) {
        let Some((i, event)) = rx.recv().await else {
            break;
        };
        handle(&mut workers, i, event, &live).await?;
    }
    summary.broker_cpu_percent = broker_cpu.and_then(|m| m.percent());
    summary.machine_steal_percent = steal.percent();
    let (mut start, mut end, mut cpu) = (u64::MAX, 0u64, 0.0f64);
    for w in &workers {
        if let Some(Event::Ready {
            connected,
            failed,
            start_unix_ns,
            end_unix_ns,
            cpu_secs,
            first_error,
        }) = &w.ready
        {
            summary.connections += connected;
            summary.connect_failures += failed;
            start = start.min(*start_unix_ns);
            end = end.max(*end_unix_ns);
            cpu += cpu_secs.unwrap_or(0.0);
            if let Some(e) = first_error
                && summary.errors.len() < 5
            {
                summary.errors.push(format!("setup: {e}"));
            }
        }
    }
    if summary.connections == 0 {
        shutdown(&mut workers).await;
        return Err(BenchError::Worker(format!(
            "no worker could open a connection: {}",
            summary.errors.first().cloned().unwrap_or_default()
        )));
    }
    summary.connect_secs = end.saturating_sub(start) as f64 / 1e9;
    summary.connect_per_sec = summary.connections as f64 / summary.connect_secs.max(1e-9);
    summary.generator_cpu_percent = Some(cpu / summary.connect_secs.max(1e-9) * 100.0);

    // Hold, still reading progress so the workers' pipes never fill.
    live.set_phase(Phase::Holding);
    let hold_until = Instant::now() + args.duration;
    loop {
        tokio::select! {
            () = sleep_until(hold_until) => break,
            got = rx.recv() => match got {
                Some((i, event)) => handle(&mut workers, i, event, &live).await?,
                None => break,
            }
        }
    }
    summary.broker_rss_after_kib = args.broker_pid.and_then(rss_kib);
    live.set_phase(Phase::Closing);
    for w in &mut workers {
        if let Some(stdin) = w.stdin.as_mut() {
            let _ = stdin.write_all(b"stop\n").await;
            let _ = stdin.flush().await;
        }
    }
    while workers.iter().any(|w| w.held.is_none()) {
        let Some((i, event)) = rx.recv().await else {
            break;
        };
        handle(&mut workers, i, event, &live).await?;
    }
    let held: u64 = workers.iter().filter_map(|w| w.held).sum();
    summary.held = Some(held);
    summary.connection_errors = summary.connections.saturating_sub(held);
    finish_rss(&mut summary);
    shutdown(&mut workers).await;
    drop(progress);
    Ok(summary)
}

/// Applies one worker event; a worker error or an early exit fails the run.
async fn handle(
    workers: &mut [Worker],
    i: usize,
    event: Option<Event>,
    live: &Live,
) -> Result<(), BenchError> {
    let fail = |message: String| BenchError::Worker(format!("worker {i}: {message}"));
    let result = match event {
        Some(Event::Progress {
            connected,
            open,
            failed,
        }) => {
            if let Some(w) = workers.get_mut(i) {
                w.progress = (connected, open, failed);
            }
            Ok(())
        }
        Some(ready @ Event::Ready { .. }) => {
            if let Some(w) = workers.get_mut(i) {
                if let Event::Ready {
                    connected, failed, ..
                } = &ready
                {
                    w.progress = (*connected, *connected, *failed);
                }
                w.ready = Some(ready);
            }
            Ok(())
        }
        Some(Event::Done { held }) => {
            if let Some(w) = workers.get_mut(i) {
                w.held = Some(held);
                w.progress.1 = held;
            }
            Ok(())
        }
        Some(Event::Error { message }) => Err(fail(message)),
        None if workers.get(i).is_some_and(|w| w.held.is_none()) => {
            Err(fail("exited before reporting its result".into()))
        }
        None => Ok(()),
    };
    let sum = |f: fn(&(u64, u64, u64)) -> u64| workers.iter().map(|w| f(&w.progress)).sum::<u64>();
    live.connected
        .store(sum(|p| p.0), std::sync::atomic::Ordering::Relaxed);
    live.open
        .store(sum(|p| p.1), std::sync::atomic::Ordering::Relaxed);
    live.failed
        .store(sum(|p| p.2), std::sync::atomic::Ordering::Relaxed);
    if result.is_err() {
        shutdown(workers).await;
    }
    result
}

/// Closes the workers' input and waits for them to exit, killing those that do not in time.
async fn shutdown(workers: &mut [Worker]) {
    for w in workers.iter_mut() {
        w.stdin = None;
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    for w in workers.iter_mut() {
        let left = deadline.saturating_duration_since(Instant::now());
        if tokio::time::timeout(left, w.child.wait()).await.is_err() {
            let _ = w.child.kill().await;
        }
    }
}

/// Starts worker `index` with `share` connections numbered from `first`.
fn spawn(
    exe: &std::path::Path,
    settings: &Settings,
    index: u32,
    first: u32,
    share: u32,
    processes: u32,
) -> Result<Child, BenchError> {
    let args = &settings.args;
    let mut command = Command::new(exe);
    command
        .arg("bench")
        .args(["--scenario", "conns", "--url", &args.url])
        .args(["--clients", &share.to_string()])
        .args(["--qos", &args.qos.to_string()])
        .args(["--protocol", &settings.version.to_string()])
        .args(["--keep-alive", &args.keep_alive.to_string()])
        .args([
            "--connect-timeout",
            &format!("{}", args.connect_timeout.as_secs_f64()),
        ])
        .args([
            "--connectors",
            &args.connectors.div_ceil(processes).to_string(),
        ])
        .args(["--worker-index", &index.to_string()])
        .args(["--worker-first-client", &first.to_string()])
        .args(["--worker-run-id", &settings.run_id])
        .arg("--quiet");
    if let Some(ips) = &args.source_ips {
        command.args(["--source-ips", ips]);
    }
    if let Some(user) = &args.username {
        command.args(["--username", user]);
    }
    if let Some(password) = &args.password {
        command.args(["--password", password]);
    }
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    command
        .spawn()
        .map_err(|e| BenchError::Worker(format!("cannot start {}: {e}", exe.display())))
}
