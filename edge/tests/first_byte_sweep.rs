//! Bad-input checklist item 5: all 256 first bytes x {before CONNECT, after CONNACK} x {3.1.1,
//! 5.0} = 1,024 cases, each on its own connection, each followed by a body that is valid for the
//! packet type so that only the first byte decides.
//!
//! Before CONNECT every first byte but 0x10 is a silent close. After CONNACK a first byte is
//! either a type/flags pair of MQTT table 2.2 (2-2 in 5.0), answered as that packet is (a
//! server-to-client type sent by a client is a protocol violation: 3.1.1 close, 5.0 DISCONNECT
//! 0x82), or a malformed fixed header (3.1.1 close, 5.0 DISCONNECT 0x81). The server never panics
//! or hangs: every case ends within a bound, and a fresh connection is accepted afterwards.
#![allow(clippy::unwrap_used)]

mod support;
mod wire;

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use stratus_codec::{Packet, ProtocolVersion, ReasonCode};
use support::{RawClient, TestServer};
use tokio::task::JoinSet;
use tokio::time::Instant;
use wire::{Connect, VERSIONS, WAIT, connect, expect_only_pingresp, open, packet, unsubscribe};

/// Cases run at once.
const PARALLEL: usize = 32;

/// Panics seen on tokio worker threads, where the in-process server runs, since the hook went in.
fn worker_panics() -> usize {
    static PANICS: AtomicUsize = AtomicUsize::new(0);
    static HOOK: OnceLock<()> = OnceLock::new();
    HOOK.get_or_init(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let name = std::thread::current().name().map(str::to_owned);
            if name.is_some_and(|n| n.starts_with("tokio-runtime-worker")) {
                PANICS.fetch_add(1, Ordering::SeqCst);
            }
            previous(info);
        }));
    });
    PANICS.load(Ordering::SeqCst)
}

/// What the server must do with one case.
#[derive(Debug, Clone, PartialEq)]
enum Expected {
    /// Close without sending anything.
    SilentClose,
    /// 5.0 DISCONNECT with this reason, then close (3.1.1 cases use `SilentClose`).
    Disconnect(ReasonCode),
    /// CONNACK 0x00, then a healthy connection.
    Accepted,
    /// Exactly these packets, then a healthy connection (PINGREQ answered, nothing else).
    Replies(Vec<Packet>),
}

/// A body that is valid for the type in `first_byte` (whatever its flags), in `version`.
fn body(first_byte: u8, version: ProtocolVersion, client_id: &str) -> Vec<u8> {
    let v5 = version.is_v5();
    let props: &[u8] = if v5 { &[0x00] } else { &[] };
    let id = [0x00, 0x01];
    match first_byte >> 4 {
        1 => Connect::base(version).client_id(client_id).body(),
        2 => [&[0x00, 0x00][..], props].concat(),
        3 => {
            let qos = (first_byte >> 1) & 0b11;
            let pid: &[u8] = if qos > 0 { &id } else { &[] };
            [&[0x00, 0x01, b't'][..], pid, props, b"x"].concat()
        }
        4..=7 => id.to_vec(),
        // Filter `s`: nothing is published there, so no case sees another's messages.
        8 => [&id[..], props, &[0x00, 0x01, b's', 0x00]].concat(),
        9 => [&id[..], props, &[0x00]].concat(),
        10 => [&id[..], props, &[0x00, 0x01, b's']].concat(),
        11 if v5 => [&id[..], props, &[0x00]].concat(),
        11 => id.to_vec(),
        _ => Vec::new(),
    }
}

/// The outcome table 2.2 (2-2) prescribes for `first_byte` after CONNACK.
fn after_connack(first_byte: u8, version: ProtocolVersion) -> Expected {
    let v5 = version.is_v5();
    let refused = |reason| {
        if v5 {
            Expected::Disconnect(reason)
        } else {
            Expected::SilentClose
        }
    };
    let malformed = refused(ReasonCode::MalformedPacket);
    let pid = std::num::NonZeroU16::new(1).unwrap();
    let ack = |reason| stratus_codec::Ack {
        packet_id: pid,
        reason,
        properties: Default::default(),
    };
    let not_found = if v5 {
        ReasonCode::PacketIdentifierNotFound
    } else {
        ReasonCode::Success
    };
    let no_subscribers = if v5 {
        ReasonCode::NoMatchingSubscribers
    } else {
        ReasonCode::Success
    };
    let flags = first_byte & 0x0F;
    match (first_byte >> 4, flags) {
        (3, _) => {
            let qos = (flags >> 1) & 0b11;
            let dup = flags & 0b1000 != 0;
            match qos {
                3 => malformed,
                0 if dup => malformed,
                0 => Expected::Replies(Vec::new()),
                1 => Expected::Replies(vec![Packet::PubAck(ack(no_subscribers))]),
                _ => Expected::Replies(vec![Packet::PubRec(ack(no_subscribers))]),
            }
        }
        (1 | 2 | 9 | 11 | 13, 0) => refused(ReasonCode::ProtocolError),
        (4 | 7, 0) => Expected::Replies(Vec::new()),
        (5, 0) => Expected::Replies(vec![Packet::PubRel(ack(not_found))]),
        (6, 2) => Expected::Replies(vec![Packet::PubComp(ack(not_found))]),
        (8, 2) => Expected::Replies(vec![Packet::SubAck(stratus_codec::SubAck {
            packet_id: pid,
            properties: Default::default(),
            reasons: vec![ReasonCode::Success],
        })]),
        (10, 2) => Expected::Replies(vec![Packet::UnsubAck(stratus_codec::UnsubAck {
            packet_id: pid,
            properties: Default::default(),
            reasons: if v5 {
                vec![ReasonCode::NoSubscriptionExisted]
            } else {
                Vec::new()
            },
        })]),
        (12, 0) => Expected::Replies(vec![Packet::PingResp]),
        (14, 0) => Expected::SilentClose,
        (15, 0) if v5 => refused(ReasonCode::ProtocolError),
        _ => malformed,
    }
}

/// Reads until the server closes (`Ok` with what it sent) or `WAIT` passes (`Err`).
async fn until_closed(c: &mut RawClient) -> Result<Vec<Packet>, String> {
    let deadline = Instant::now() + WAIT;
    let mut packets = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match c.recv(left).await {
            Some(p) => packets.push(p),
            None if Instant::now() < deadline => return Ok(packets),
            None => return Err(format!("still open after {WAIT:?}; received {packets:?}")),
        }
    }
}

/// Runs one case on its own connection; `Err` describes a deviation.
async fn run_case(
    addr: SocketAddr,
    version: ProtocolVersion,
    connected: bool,
    first_byte: u8,
) -> Result<(), String> {
    let client_id = format!(
        "sweep-{}-{}-{first_byte:02x}",
        version.level(),
        u8::from(connected)
    );
    let bytes = packet(first_byte, &body(first_byte, version, &client_id));
    let (mut c, expected) = if connected {
        let (c, _) = open(addr, version, &connect(version, &client_id)).await;
        (c, after_connack(first_byte, version))
    } else {
        let expected = if first_byte == 0x10 {
            Expected::Accepted
        } else {
            Expected::SilentClose
        };
        (RawClient::connect(addr, version).await, expected)
    };
    c.send(&bytes).await;
    match expected {
        Expected::SilentClose => match until_closed(&mut c).await? {
            got if got.is_empty() => Ok(()),
            got => Err(format!("expected a silent close, got {got:?}")),
        },
        Expected::Disconnect(reason) => match until_closed(&mut c).await?.as_slice() {
            [Packet::Disconnect(d)] if d.reason == reason => Ok(()),
            got => Err(format!(
                "expected DISCONNECT {reason:?} then close, got {got:?}"
            )),
        },
        Expected::Accepted => match c.recv(WAIT).await {
            Some(Packet::ConnAck(a)) if a.reason == ReasonCode::Success => {
                healthy(&mut c, version).await
            }
            got => Err(format!("expected CONNACK 0x00, got {got:?}")),
        },
        Expected::Replies(replies) => {
            for want in replies {
                match c.recv(WAIT).await {
                    Some(got) if got == want => {}
                    got => return Err(format!("expected {want:?}, got {got:?}")),
                }
            }
            healthy(&mut c, version).await
        }
    }
}

/// The connection is still served and nothing unexpected is pending: an UNSUBSCRIBE with a
/// packet identifier no case uses is answered next.
async fn healthy(c: &mut RawClient, version: ProtocolVersion) -> Result<(), String> {
    c.send(&unsubscribe(version, 0x4242, &[b"s"])).await;
    match c.recv(WAIT).await {
        Some(Packet::UnsubAck(u)) if u.packet_id.get() == 0x4242 => Ok(()),
        got => Err(format!(
            "expected only the UNSUBACK of a healthy connection, got {got:?}"
        )),
    }
}

/// Runs the 512 cases of one phase (both versions), `PARALLEL` at a time, and returns the
/// deviations.
async fn sweep(addr: SocketAddr, connected: bool) -> Vec<String> {
    let mut cases = VERSIONS
        .into_iter()
        .flat_map(|v| (0..=255u8).map(move |b| (v, b)));
    let mut running = JoinSet::new();
    let mut failures = Vec::new();
    let mut count = 0;
    loop {
        while running.len() < PARALLEL {
            let Some((version, byte)) = cases.next() else {
                break;
            };
            count += 1;
            running.spawn(async move {
                let result = run_case(addr, version, connected, byte).await;
                result.map_err(|e| format!("{version} first byte {byte:#04x}: {e}"))
            });
        }
        match running.join_next().await {
            Some(Ok(Ok(()))) => {}
            Some(Ok(Err(failure))) => failures.push(failure),
            Some(Err(e)) => failures.push(format!("case task failed: {e}")),
            None => break,
        }
    }
    assert_eq!(count, 512);
    failures
}

/// After a sweep: no panic, and the server still accepts both versions.
async fn assert_server_fine(server: &TestServer, panics_before: usize) {
    assert_eq!(
        worker_panics(),
        panics_before,
        "the server panicked during the sweep"
    );
    for version in VERSIONS {
        let (mut c, _) = open(server.addr, version, &connect(version, "after-sweep")).await;
        expect_only_pingresp(&mut c).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_first_byte_but_connect_before_connect_is_closed_silently() {
    let panics = worker_panics();
    let server = TestServer::start().await;
    let failures = sweep(server.addr, false).await;
    assert!(
        failures.is_empty(),
        "{} of 512 cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_server_fine(&server, panics).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_first_byte_after_connack_follows_the_packet_type_table() {
    let panics = worker_panics();
    let server = TestServer::start().await;
    let failures = sweep(server.addr, true).await;
    assert!(
        failures.is_empty(),
        "{} of 512 cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_server_fine(&server, panics).await;
}
