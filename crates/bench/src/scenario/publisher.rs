//! A publisher task: stamps and sends PUBLISH packets as fast as allowed or at a fixed rate,
//! keeps a QoS 1/2 window of unacknowledged packet ids, and answers PUBREC with PUBREL.
//!
//! Messages are encoded straight into the connection's output buffer, up to [`WRITE_TARGET`]
//! bytes per write, from one `Publish` whose payload is shared and never copied except into
//! that buffer, where the stamp is then written in place: no allocation per message.

use std::num::NonZeroU16;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use stratus_codec::{Ack, Packet, ProtocolVersion, Publish, PublishProperties, QoS};
use tokio::time::{Instant, sleep_until};

use crate::client::Client;
use crate::error::BenchError;
use crate::payload::{Clock, Stamp};
use crate::stats::Live;
use crate::tracking::Sent;

/// Bytes of output a publisher accumulates before writing.
const WRITE_TARGET: usize = 32 * 1024;

/// When a publisher publishes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Schedule {
    /// First message (plus `offset`).
    pub(crate) start: Instant,
    /// No message is started at or after this.
    pub(crate) stop: Instant,
    /// After `stop`, outstanding acknowledgements are waited for until none came for this
    /// long (`--drain`)...
    pub(crate) drain: Duration,
    /// ...or until this deadline at the latest.
    pub(crate) give_up: Instant,
    /// Messages per second of this publisher in fixed-rate mode.
    pub(crate) rate: Option<f64>,
    /// Shift of this publisher's schedule, so that publishers do not all fire at once.
    pub(crate) offset: Duration,
}

/// One publisher's identity and message shape.
#[derive(Debug, Clone)]
pub(crate) struct PublisherPlan {
    pub(crate) id: u32,
    pub(crate) topic: ByteString,
    pub(crate) qos: QoS,
    pub(crate) size: usize,
    pub(crate) run_tag: u32,
    pub(crate) window: u16,
    pub(crate) schedule: Schedule,
}

/// What a publisher did.
#[derive(Debug)]
pub(crate) struct PublisherReport {
    pub(crate) id: u32,
    pub(crate) sent: Sent,
    pub(crate) acked: u64,
    pub(crate) refused: u64,
    pub(crate) error: Option<BenchError>,
}

/// The QoS 1/2 window: packet id `n` lives in slot `n - 1`.
#[derive(Debug)]
struct Window {
    slots: Vec<Slot>,
    free: Vec<u16>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Free,
    /// Sent, waiting for PUBACK (QoS 1) or PUBREC (QoS 2).
    AwaitAck(u32),
    /// QoS 2: PUBREL sent, waiting for PUBCOMP.
    AwaitComp,
}

impl Window {
    fn new(size: u16) -> Self {
        Self {
            slots: vec![Slot::Free; usize::from(size)],
            free: (0..size).rev().collect(),
        }
    }

    fn has_room(&self) -> bool {
        !self.free.is_empty()
    }

    fn is_empty(&self) -> bool {
        self.free.len() == self.slots.len()
    }

    /// Takes a packet id for message `seq`.
    fn take(&mut self, seq: u32) -> Option<NonZeroU16> {
        let slot = self.free.pop()?;
        self.slots[usize::from(slot)] = Slot::AwaitAck(seq);
        NonZeroU16::new(slot + 1)
    }

    fn slot(&mut self, id: NonZeroU16) -> Option<&mut Slot> {
        self.slots.get_mut(usize::from(id.get() - 1))
    }

    fn release(&mut self, id: NonZeroU16) {
        if let Some(slot) = self.slot(id) {
            *slot = Slot::Free;
            self.free.push(id.get() - 1);
        }
    }

    /// Messages still waiting for their first acknowledgement.
    fn unacknowledged(&self) -> impl Iterator<Item = u32> + '_ {
        self.slots.iter().filter_map(|slot| match slot {
            Slot::AwaitAck(seq) => Some(*seq),
            _ => None,
        })
    }
}

/// A publisher's running state.
#[derive(Debug)]
struct State {
    qos: QoS,
    seq: u32,
    acked: u64,
    refused: Vec<u32>,
    window: Option<Window>,
    reported_sent: u32,
    reported_acked: u64,
    packet_len: usize,
}

/// Runs one publisher to the end of its schedule and returns what it did, also after an error
/// (the messages sent before it still count).
pub(crate) async fn run(
    mut client: Client,
    plan: PublisherPlan,
    clock: Clock,
    live: Arc<Live>,
) -> PublisherReport {
    let window = match plan.qos {
        QoS::AtMostOnce => None,
        _ => Some(Window::new(
            plan.window.min(client.receive_maximum()).max(1),
        )),
    };
    let mut state = State {
        qos: plan.qos,
        seq: 0,
        acked: 0,
        refused: Vec::new(),
        window,
        reported_sent: 0,
        reported_acked: 0,
        packet_len: 0,
    };
    client.set_read_chunk(16 * 1024);
    let result = publish(&mut client, &plan, &clock, &live, &mut state).await;
    report(&mut state, &live);
    let refused = state.refused.len() as u64;
    let mut excused = state.refused;
    if let Some(window) = &state.window {
        excused.extend(window.unacknowledged());
    } else if client.pending_out() > 0 && state.packet_len > 0 {
        // QoS 0 messages still in the output buffer at give-up never left.
        let unsent = client.pending_out().div_ceil(state.packet_len) as u32;
        excused.extend(state.seq.saturating_sub(unsent)..state.seq);
    }
    if result.is_ok() {
        client.disconnect(Duration::from_secs(1)).await;
    }
    PublisherReport {
        id: plan.id,
        sent: Sent {
            count: state.seq,
            excused,
        },
        acked: state.acked,
        refused,
        error: result.err(),
    }
}

async fn publish(
    client: &mut Client,
    plan: &PublisherPlan,
    clock: &Clock,
    live: &Live,
    state: &mut State,
) -> Result<(), BenchError> {
    let version = client.version();
    let mut message = Publish {
        dup: false,
        qos: plan.qos,
        retain: false,
        topic: plan.topic.clone(),
        packet_id: None,
        properties: PublishProperties::default(),
        payload: Bytes::from(vec![0u8; plan.size]),
    };
    let schedule = plan.schedule;
    let first = schedule.start + schedule.offset;
    sleep_until(schedule.start).await;
    let mut last_progress = Instant::now();
    loop {
        let now = Instant::now();
        let publishing = now < schedule.stop;
        if publishing {
            let mut budget = match schedule.rate {
                Some(rate) if now >= first => {
                    let due = (now.duration_since(first).as_secs_f64() * rate) as u64 + 1;
                    due.saturating_sub(u64::from(state.seq))
                }
                Some(_) => 0,
                None => u64::MAX,
            };
            while budget > 0
                && client.pending_out() < WRITE_TARGET
                && state.window.as_ref().is_none_or(Window::has_room)
            {
                let seq = state.seq;
                message.packet_id = state.window.as_mut().and_then(|w| w.take(seq));
                let out = client.out();
                let before = out.len();
                message.encode(version, out)?;
                state.packet_len = out.len() - before;
                let len = out.len();
                let stamp = Stamp {
                    sent_ns: clock.now_ns(),
                    run_tag: plan.run_tag,
                    publisher: plan.id,
                    seq,
                };
                stamp.write(&mut out[len - plan.size..]);
                state.seq += 1;
                budget -= 1;
            }
        }
        let wrote = client.try_flush()?;
        let read = client.try_read(|packet, out| on_packet(packet, out, state, version))?;
        report(state, live);
        if read.closed {
            return Err(BenchError::Closed("publishing"));
        }
        let settled = state.window.as_ref().is_none_or(Window::is_empty);
        if !publishing && settled && client.pending_out() == 0 {
            return Ok(());
        }
        if wrote > 0 || read.bytes > 0 {
            last_progress = now;
            tokio::task::coop::consume_budget().await;
            continue;
        }
        let drained_at = (last_progress.max(schedule.stop) + schedule.drain).min(schedule.give_up);
        if !publishing && now >= drained_at {
            return Ok(());
        }
        let mut wake = if publishing {
            schedule.stop
        } else {
            drained_at
        };
        if let Some(rate) = schedule.rate
            && publishing
            && state.window.as_ref().is_none_or(Window::has_room)
        {
            let next = first + Duration::from_secs_f64(f64::from(state.seq) / rate);
            wake = wake.min(next);
        }
        if let Some(ping) = client.ping_due() {
            wake = wake.min(ping);
        }
        tokio::select! {
            ready = client.wait() => ready?,
            () = sleep_until(wake) => {}
        }
        client.ping_if_due()?;
    }
}

/// Handles what the broker sends a publisher: acknowledgements, PINGRESP, DISCONNECT.
fn on_packet(
    packet: &Packet,
    out: &mut BytesMut,
    state: &mut State,
    version: ProtocolVersion,
) -> Result<(), BenchError> {
    match packet {
        Packet::PubAck(ack) if state.qos == QoS::AtLeastOnce => {
            first_ack(state, ack, "PUBACK", out, version)
        }
        Packet::PubRec(ack) if state.qos == QoS::ExactlyOnce => {
            first_ack(state, ack, "PUBREC", out, version)
        }
        Packet::PubComp(ack) if state.qos == QoS::ExactlyOnce => {
            let window = state
                .window
                .as_mut()
                .ok_or(not_in_flight("PUBCOMP", ack.packet_id))?;
            if window.slot(ack.packet_id) != Some(&mut Slot::AwaitComp) {
                return Err(not_in_flight("PUBCOMP", ack.packet_id));
            }
            window.release(ack.packet_id);
            Ok(())
        }
        Packet::PingResp => Ok(()),
        Packet::Disconnect(d) => Err(BenchError::Protocol(format!(
            "the broker sent DISCONNECT {:?} to a publisher",
            d.reason
        ))),
        other => Err(BenchError::Protocol(format!(
            "{:?} sent to a QoS {} publisher",
            other.packet_type(),
            state.qos.as_u8()
        ))),
    }
}

/// PUBACK (QoS 1) or PUBREC (QoS 2): the broker took the message, or refused it (reason code
/// >= 0x80, 5.0). A QoS 2 exchange continues with PUBREL.
fn first_ack(
    state: &mut State,
    ack: &Ack,
    what: &'static str,
    out: &mut BytesMut,
    version: ProtocolVersion,
) -> Result<(), BenchError> {
    let id = ack.packet_id;
    let window = state.window.as_mut().ok_or(not_in_flight(what, id))?;
    let Some(&mut Slot::AwaitAck(seq)) = window.slot(id) else {
        return Err(not_in_flight(what, id));
    };
    if ack.reason.is_error() {
        state.refused.push(seq);
        window.release(id);
        return Ok(());
    }
    state.acked += 1;
    if state.qos == QoS::ExactlyOnce {
        if let Some(slot) = window.slot(id) {
            *slot = Slot::AwaitComp;
        }
        Packet::PubRel(Ack::success(id)).encode(version, out)?;
    } else {
        window.release(id);
    }
    Ok(())
}

fn not_in_flight(what: &str, id: NonZeroU16) -> BenchError {
    BenchError::Protocol(format!("{what} for packet id {id}, which is not in flight"))
}

/// Adds what happened since the last report to the shared counters.
fn report(state: &mut State, live: &Live) {
    Live::add(&live.sent, u64::from(state.seq - state.reported_sent));
    Live::add(&live.acked, state.acked - state.reported_acked);
    state.reported_sent = state.seq;
    state.reported_acked = state.acked;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_hands_out_distinct_ids_until_full() {
        let mut window = Window::new(3);
        let ids: Vec<u16> = (0..3).map(|seq| window.take(seq).unwrap().get()).collect();
        assert_eq!(ids, [1, 2, 3]);
        assert!(!window.has_room());
        assert_eq!(window.take(3), None);
        window.release(NonZeroU16::new(2).unwrap());
        assert_eq!(window.take(3).map(NonZeroU16::get), Some(2));
    }

    #[test]
    fn only_messages_awaiting_their_first_ack_are_unacknowledged() {
        let mut window = Window::new(4);
        let a = window.take(10).unwrap();
        let b = window.take(11).unwrap();
        window.take(12).unwrap();
        window.release(a);
        if let Some(slot) = window.slot(b) {
            *slot = Slot::AwaitComp;
        }
        assert_eq!(window.unacknowledged().collect::<Vec<_>>(), [12]);
        assert!(!window.is_empty());
    }

    #[test]
    fn a_pubrec_moves_a_qos_2_message_on_to_pubrel() {
        let mut state = State {
            qos: QoS::ExactlyOnce,
            seq: 1,
            acked: 0,
            refused: Vec::new(),
            window: Some(Window::new(2)),
            reported_sent: 0,
            reported_acked: 0,
            packet_len: 0,
        };
        let id = state.window.as_mut().unwrap().take(0).unwrap();
        let mut out = BytesMut::new();
        let v = ProtocolVersion::V3_1_1;
        on_packet(&Packet::PubRec(Ack::success(id)), &mut out, &mut state, v).unwrap();
        assert_eq!(state.acked, 1);
        assert_eq!(&out[..], &[0x62, 0x02, 0x00, 0x01]);
        assert!(on_packet(&Packet::PubRec(Ack::success(id)), &mut out, &mut state, v).is_err());
        on_packet(&Packet::PubComp(Ack::success(id)), &mut out, &mut state, v).unwrap();
        assert!(state.window.as_ref().unwrap().is_empty());
    }
}
