//! A subscriber task: decodes PUBLISH packets with our codec, records the end-to-end latency of
//! each stamped message, tracks per-publisher sequence numbers for loss and duplicates, and
//! acknowledges QoS 1/2 deliveries in batches (all answers to one read go out in one write).

use std::sync::Arc;

use bytes::BytesMut;
use stratus_codec::{Ack, Packet, ProtocolVersion, QoS};
use tokio::sync::watch;
use tokio::time::sleep_until;

use crate::client::Client;
use crate::error::BenchError;
use crate::payload::{Clock, Stamp};
use crate::stats::{LatencyBuffer, Live};
use crate::tracking::Seen;

/// What a subscriber needs to know to judge what it receives.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SubscriberPlan {
    /// The receiving group it belongs to (itself, or its `$share` group).
    pub(crate) group: usize,
    /// Messages of other runs carry another tag and are ignored.
    pub(crate) run_tag: u32,
    /// Publisher ids are below this.
    pub(crate) publishers: u32,
    /// Latency is recorded for messages sent in this window (Unix ns, end exclusive).
    pub(crate) measure_from_ns: u64,
    pub(crate) measure_to_ns: u64,
}

/// What a subscriber received.
#[derive(Debug)]
pub(crate) struct SubscriberReport {
    pub(crate) group: usize,
    pub(crate) seen: Seen,
    /// PUBLISH packets received, duplicates included.
    pub(crate) received: u64,
    /// Messages this subscriber received more than once.
    pub(crate) duplicates: u64,
    /// Payloads without our stamp, or from another run.
    pub(crate) foreign: u64,
    pub(crate) error: Option<BenchError>,
}

#[derive(Debug)]
struct State {
    plan: SubscriberPlan,
    seen: Seen,
    received: u64,
    reported: u64,
    duplicates: u64,
    foreign: u64,
    latency: LatencyBuffer,
}

/// Receives until `stop` turns true, then disconnects and reports (also after an error: what
/// arrived before it still counts).
pub(crate) async fn run(
    mut client: Client,
    plan: SubscriberPlan,
    clock: Clock,
    live: Arc<Live>,
    latency: LatencyBuffer,
    mut stop: watch::Receiver<bool>,
) -> SubscriberReport {
    let mut state = State {
        plan,
        seen: Seen::default(),
        received: 0,
        reported: 0,
        duplicates: 0,
        foreign: 0,
        latency,
    };
    client.set_read_chunk(64 * 1024);
    let result = receive(&mut client, &clock, &live, &mut state, &mut stop).await;
    state.latency.flush();
    Live::add(&live.received, state.received - state.reported);
    if result.is_ok() {
        client.disconnect(std::time::Duration::from_secs(1)).await;
    }
    SubscriberReport {
        group: plan.group,
        seen: state.seen,
        received: state.received,
        duplicates: state.duplicates,
        foreign: state.foreign,
        error: result.err(),
    }
}

async fn receive(
    client: &mut Client,
    clock: &Clock,
    live: &Live,
    state: &mut State,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), BenchError> {
    let version = client.version();
    loop {
        // One clock read per batch: the packets of one read arrived together.
        let mut now_ns = None;
        let read = client.try_read(|packet, out| {
            let now = *now_ns.get_or_insert_with(|| clock.now_ns());
            on_packet(packet, out, state, version, now)
        })?;
        let wrote = client.try_flush()?;
        Live::add(&live.received, state.received - state.reported);
        state.reported = state.received;
        // Stop when told to, or when the coordinator is gone.
        if *stop.borrow() || stop.has_changed().is_err() {
            return Ok(());
        }
        if read.closed {
            return Err(BenchError::Closed("receiving"));
        }
        if read.bytes > 0 || wrote > 0 {
            tokio::task::coop::consume_budget().await;
            continue;
        }
        let ping = client.ping_due();
        tokio::select! {
            ready = client.wait() => ready?,
            _ = stop.changed() => {}
            () = async {
                match ping {
                    Some(at) => sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => client.ping_if_due()?,
        }
    }
}

fn on_packet(
    packet: &Packet,
    out: &mut BytesMut,
    state: &mut State,
    version: ProtocolVersion,
    now_ns: u64,
) -> Result<(), BenchError> {
    match packet {
        Packet::Publish(publish) => {
            state.received += 1;
            match (publish.qos, publish.packet_id) {
                (QoS::AtLeastOnce, Some(id)) => {
                    Packet::PubAck(Ack::success(id)).encode(version, out)?
                }
                (QoS::ExactlyOnce, Some(id)) => {
                    Packet::PubRec(Ack::success(id)).encode(version, out)?
                }
                _ => {}
            }
            let plan = &state.plan;
            match Stamp::read(&publish.payload) {
                Some(stamp)
                    if stamp.run_tag == plan.run_tag && stamp.publisher < plan.publishers =>
                {
                    let set = state.seen.entry(stamp.publisher).or_default();
                    if !set.insert(stamp.seq) {
                        state.duplicates += 1;
                    }
                    if (plan.measure_from_ns..plan.measure_to_ns).contains(&stamp.sent_ns) {
                        state.latency.push(now_ns.saturating_sub(stamp.sent_ns));
                    }
                }
                _ => state.foreign += 1,
            }
        }
        Packet::PubRel(ack) => Packet::PubComp(Ack::success(ack.packet_id)).encode(version, out)?,
        Packet::PingResp => {}
        Packet::Disconnect(d) => {
            return Err(BenchError::Protocol(format!(
                "the broker sent DISCONNECT {:?} to a subscriber",
                d.reason
            )));
        }
        other => {
            return Err(BenchError::Protocol(format!(
                "{:?} sent to a subscriber",
                other.packet_type()
            )));
        }
    }
    Ok(())
}
