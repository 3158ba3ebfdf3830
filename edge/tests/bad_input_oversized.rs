//! Bad-input checklist item 10: an oversized first packet. For each of the 14 non-CONNECT packet
//! types, and for a 3.1.1 and a 5.0 CONNECT, the fixed header declares a Remaining Length of
//! 100 MiB and the client then streams megabytes of body. The server decides from the fixed
//! header alone: a silent close for anything but CONNECT, and for the CONNECT a close after
//! CONNACK 0x95 (5.0) or a silent one (3.1.1), long before the body could be buffered; the
//! process RSS grows by less than 20 MB. (Item 11, a CONNECT over the maximum packet size, is in
//! `bad_input_framing.rs`.)
//!
//! This file holds a single test so that no other test's allocations blur the RSS figure.
#![allow(clippy::unwrap_used)]

mod support;
mod wire;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use stratus_codec::{Decoder, Packet, ProtocolVersion, ReasonCode};
use support::TestServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};
use wire::{VERSIONS, WAIT, connect, expect_only_pingresp, open, vbi};

/// The Remaining Length every case declares.
const DECLARED: usize = 100 * 1024 * 1024;

/// Body bytes a case tries to send after the header: more than socket buffers hold, so the
/// writes only end early if the server closes the connection.
const STREAMED: usize = 32 * 1024 * 1024;

/// The first byte of each type that is not CONNECT, with the flags of table 2.2.
const NON_CONNECT: [u8; 14] = [
    0x20, 0x30, 0x40, 0x50, 0x62, 0x70, 0x82, 0x90, 0xA2, 0xB0, 0xC0, 0xD0, 0xE0, 0xF0,
];

/// The resident set size of this process in KiB, from `/proc/self/status`.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// What one case observed.
#[derive(Debug)]
struct Observed {
    /// Packets the server sent before closing.
    packets: Vec<Packet>,
    /// Time from the first byte to the close.
    closed_after: Duration,
    /// Body bytes the kernel accepted before the writes failed.
    body_accepted: usize,
}

/// Sends `head` then streams `STREAMED` bytes of body while reading until the server closes.
async fn oversized(
    addr: SocketAddr,
    version: ProtocolVersion,
    head: Vec<u8>,
    chunk: &'static [u8],
) -> Observed {
    let stream = TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (mut rd, mut wr) = stream.into_split();
    let first_byte = head[0];
    let started = Instant::now();
    let writer = tokio::spawn(async move {
        let mut accepted = 0;
        if wr.write_all(&head).await.is_err() {
            return accepted;
        }
        while accepted < STREAMED {
            match timeout(WAIT, wr.write_all(chunk)).await {
                Ok(Ok(())) => accepted += chunk.len(),
                _ => break,
            }
        }
        accepted
    });
    let mut received = BytesMut::new();
    let closed_after = loop {
        let mut buf = [0u8; 1024];
        match timeout(WAIT, rd.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break started.elapsed(),
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
            Err(_) => panic!("{version} first byte {first_byte:#04x}: still open after {WAIT:?}"),
        }
    };
    let body_accepted = writer.await.unwrap();
    let mut decoder = Decoder::client(version, stratus_codec::MAX_PACKET_SIZE);
    let mut packets = Vec::new();
    while let Some(p) = decoder.decode(&mut received).unwrap() {
        packets.push(p);
    }
    Observed {
        packets,
        closed_after,
        body_accepted,
    }
}

/// The fixed header declaring `DECLARED` bytes after `first_byte`.
fn header(first_byte: u8) -> Vec<u8> {
    let mut head = vec![first_byte];
    head.extend(vbi(DECLARED));
    head
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_first_packets_are_refused_from_the_header_without_buffering_the_body() {
    let server = TestServer::start().await;
    let chunk: &'static [u8] = Box::leak(vec![b'x'; 64 * 1024].into_boxed_slice());
    // Warm up: one ordinary connection per version, so lazily built state is not counted.
    for version in VERSIONS {
        expect_only_pingresp(
            &mut open(server.addr, version, &connect(version, "warm"))
                .await
                .0,
        )
        .await;
    }
    let rss_before = rss_kib();

    let mut observed = Vec::new();
    for first_byte in NON_CONNECT {
        for version in VERSIONS {
            let o = oversized(server.addr, version, header(first_byte), chunk).await;
            observed.push((version, first_byte, o));
        }
    }
    for version in VERSIONS {
        // The CONNECT header and its protocol name and level: enough to answer in its format.
        let mut head = header(0x10);
        head.extend_from_slice(&connect(version, "big")[2..9]);
        let o = oversized(server.addr, version, head, chunk).await;
        observed.push((version, 0x10, o));
    }

    let grown_kib = rss_kib().saturating_sub(rss_before);
    for (version, first_byte, o) in &observed {
        let what = format!("{version} first byte {first_byte:#04x}: {o:?}");
        assert!(o.closed_after < WAIT, "{what}");
        // The writes failed (the server closed instead of reading) well before the body ended.
        assert!(o.body_accepted < STREAMED, "{what}");
        match (*first_byte, version.is_v5()) {
            (0x10, true) => assert!(
                matches!(o.packets.as_slice(), [Packet::ConnAck(a)] if a.reason == ReasonCode::PacketTooLarge),
                "{what}"
            ),
            _ => assert!(o.packets.is_empty(), "{what}"),
        }
    }
    assert!(
        grown_kib < 20 * 1024,
        "RSS grew by {grown_kib} KiB over {} oversized packets",
        observed.len()
    );
    // The server is still serving.
    for version in VERSIONS {
        expect_only_pingresp(
            &mut open(server.addr, version, &connect(version, "after"))
                .await
                .0,
        )
        .await;
    }
}
