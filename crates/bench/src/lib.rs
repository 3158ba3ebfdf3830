//! `stratus-bench`: the load generator behind `stratus bench`.
//!
//! It loads any MQTT broker over `mqtt://` with clients built on our own codec and reports
//! throughput, end-to-end latency (HDR histogram), messages sent, acknowledged, received, lost
//! and duplicated, connection setup rate, and how many idle connections a broker holds.
//!
//! Code map: [`BenchArgs`] (`args.rs`, flags and their validation), `target.rs` (URL and
//! transport), `client.rs` (one MQTT connection), `payload.rs` (the stamp each message
//! carries), `tracking.rs` (loss and duplicates), `stats.rs` (counters, histogram, progress),
//! `scenario/` (p2p, fan-in, fan-out, conns and their phases), `worker.rs` (spreading `conns`
//! over processes), `procfs.rs` (RSS and CPU from `/proc`), [`Summary`] (`summary.rs`, the
//! result and its JSON).
//!
//! How the figures are measured:
//! - **Latency**: each payload starts with the send time (Unix nanoseconds advanced by a
//!   monotonic clock, read when the message is encoded); a subscriber subtracts it from the time
//!   the read that delivered the message returned. Only messages sent inside the measurement
//!   window are recorded.
//! - **Loss and duplicates**: each payload carries its publisher id and a per-publisher
//!   sequence number; receivers keep a bitmap per publisher. After the drain, every message that
//!   was sent (QoS 0) or acknowledged (QoS 1: PUBACK, QoS 2: PUBREC) and that a receiving group
//!   (a subscriber, or a whole `$share` group) should have had but never saw is lost; every
//!   extra copy within a group is a duplicate.

mod args;
mod client;
mod error;
mod payload;
mod procfs;
mod scenario;
mod stats;
mod summary;
mod target;
mod tracking;
mod worker;

use std::sync::Arc;
use std::time::Duration;

pub use args::{BenchArgs, Protocol, Scenario};
pub use error::BenchError;
pub use payload::HEADER_LEN;
pub use summary::Summary;

use args::Settings;
use client::Client;

/// Runs the benchmark `args` describe and returns its summary.
///
/// Errors when the flags are invalid, the broker cannot be reached or refuses the generator's
/// clients, or setup fails; losses and broker-side disconnections during the run are reported
/// in the summary instead. In worker mode ([`BenchArgs::is_worker`]) the process reports to its
/// parent on stdout and the returned summary is only its share.
pub async fn run(args: BenchArgs) -> Result<Summary, BenchError> {
    let settings = Arc::new(Settings::from_args(args).await?);
    if settings.args.is_worker() {
        return worker::run_worker(settings).await;
    }
    probe(&settings).await?;
    match settings.args.scenario {
        Scenario::Conns => scenario::run_conns(settings).await,
        Scenario::P2p | Scenario::FanIn | Scenario::FanOut => {
            scenario::run_messages(settings).await
        }
    }
}

/// One connection before anything else, so that an unreachable or unwilling broker is a
/// clear error rather than N failed connections.
async fn probe(settings: &Settings) -> Result<(), BenchError> {
    let spec = scenario::connect_spec(settings);
    let id = format!("b{}-probe", settings.run_id);
    let client = Client::connect(&spec, &id, settings.source_ip(0), None).await?;
    client.disconnect(Duration::from_millis(500)).await;
    Ok(())
}
