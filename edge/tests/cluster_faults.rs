//! Faults in the clustered shape that CI runs (the longer ones are in `scripts/fault-tests.sh`):
//! a NATS server that stops answering (SIGSTOP, the partition an edge sees) never turns into a
//! PUBACK for a message JetStream did not take, and a client id hopping between two edges
//! twenty times a second is never connected twice and loses no acknowledged message.
#![allow(clippy::unwrap_used)]

mod cluster;
mod support;

use std::time::Duration;

use cluster::TestCluster;
use stratus_codec::{Packet, ProtocolVersion, QoS, ReasonCode};
use support::raw::{self, pid, publish_packet};
use tokio::time::Instant;

const V5: ProtocolVersion = ProtocolVersion::V5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_puback_while_jetstream_cannot_acknowledge() {
    let nats = tokio::task::spawn_blocking(stratus_testkit::NatsServer::start)
        .await
        .unwrap()
        .unwrap();
    let c = TestCluster::start_custom(
        2,
        &nats.url(),
        |_| {},
        |s| {
            s.publish_deadline = Duration::from_secs(30);
        },
    )
    .await;
    let (mut sub, _) = raw::open_ok(c.addrs[1], raw::connect_packet(V5, "sub", true)).await;
    raw::subscribe(&mut sub, V5, 1, "p/#", QoS::AtLeastOnce).await;
    let (mut publ, _) = raw::open_ok(c.addrs[0], raw::connect_packet(V5, "pub", true)).await;
    publ.send_packet(
        &Packet::Publish(publish_packet("p/before", QoS::AtLeastOnce, Some(1), b"1")),
        V5,
    )
    .await;
    assert!(
        matches!(raw::expect_packet(&mut publ).await, Packet::PubAck(a) if a.packet_id == pid(1))
    );
    let got = raw::expect_publish(&mut sub).await;
    raw::send_ack(&mut sub, Packet::PubAck, got.packet_id.unwrap(), V5).await;

    // NATS stops answering: the message cannot be acknowledged by JetStream, so no PUBACK.
    nats.stop();
    publ.send_packet(
        &Packet::Publish(publish_packet("p/during", QoS::AtLeastOnce, Some(2), b"2")),
        V5,
    )
    .await;
    let held = publ.recv(Duration::from_secs(3)).await;
    assert!(
        held.is_none(),
        "acknowledged while JetStream was unreachable: {held:?}"
    );
    // NATS comes back: the publish (or its retry, de-duplicated by message id) is acknowledged,
    // and only then the PUBACK goes out; the subscriber gets the message.
    nats.cont();
    match publ.recv(Duration::from_secs(25)).await {
        Some(Packet::PubAck(a)) => {
            assert_eq!((a.packet_id, a.reason), (pid(2), ReasonCode::Success))
        }
        other => panic!("expected the held PUBACK after NATS returned, got {other:?}"),
    }
    let deadline = Instant::now() + Duration::from_secs(25);
    loop {
        let p = match sub
            .recv(deadline.saturating_duration_since(Instant::now()))
            .await
        {
            Some(Packet::Publish(p)) => p,
            other => panic!("the acknowledged message never arrived: {other:?}"),
        };
        if let Some(id) = p.packet_id {
            raw::send_ack(&mut sub, Packet::PubAck, id, V5).await;
        }
        if &*p.topic == "p/during" {
            break;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_jetstream_never_takes_disconnects_its_publisher_unacknowledged() {
    let nats = tokio::task::spawn_blocking(stratus_testkit::NatsServer::start)
        .await
        .unwrap()
        .unwrap();
    let c = TestCluster::start_custom(
        1,
        &nats.url(),
        |_| {},
        |s| {
            s.publish_deadline = Duration::from_secs(2);
        },
    )
    .await;
    let (mut publ, _) = raw::open_ok(c.addrs[0], raw::connect_packet(V5, "pub", true)).await;
    nats.stop();
    publ.send_packet(
        &Packet::Publish(publish_packet("x", QoS::AtLeastOnce, Some(9), b"x")),
        V5,
    )
    .await;
    let closed = publ.expect_close(Duration::from_secs(20)).await;
    nats.cont();
    assert!(
        !closed.iter().any(|p| matches!(p, Packet::PubAck(_))),
        "a PUBACK went out for a message JetStream never acknowledged: {closed:?}"
    );
    assert!(
        closed
            .iter()
            .any(|p| matches!(p, Packet::Disconnect(d) if d.reason == ReasonCode::ServerBusy)),
        "expected DISCONNECT 0x89, got {closed:?}"
    );
}

/// The takeover storm: one client id connecting alternately to two edges 20 times a
/// second for `STRATUS_STORM_SECS` (default 30) seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn takeover_storm_never_has_two_live_connections_and_loses_nothing() {
    let secs: u64 = std::env::var("STRATUS_STORM_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let c = TestCluster::start(3).await;
    let (mut sub, _) = raw::open_ok(c.addrs[2], raw::connect_packet(V5, "watcher", true)).await;
    raw::subscribe(&mut sub, V5, 1, "storm/#", QoS::AtLeastOnce).await;
    let collector = tokio::spawn(async move {
        let mut seen = std::collections::HashMap::<u32, u32>::new();
        loop {
            match sub.recv(Duration::from_secs(10)).await {
                Some(Packet::Publish(p)) => {
                    if let Some(id) = p.packet_id {
                        raw::send_ack(&mut sub, Packet::PubAck, id, V5).await;
                    }
                    if &*p.topic == "storm/end" {
                        return seen;
                    }
                    let n: u32 = std::str::from_utf8(&p.payload).unwrap().parse().unwrap();
                    *seen.entry(n).or_default() += 1;
                }
                other => panic!("watcher stopped: {other:?}"),
            }
        }
    });

    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    let mut previous: Option<support::RawClient> = None;
    let mut acked = Vec::new();
    let mut i = 0u32;
    while started.elapsed() < Duration::from_secs(secs) {
        tick.tick().await;
        let (mut conn, _) = raw::open_ok(
            c.addrs[(i % 2) as usize],
            raw::connect_packet(V5, "roamer", true),
        )
        .await;
        if let Some(mut old) = previous.take() {
            // The old connection was closed (0x8E written) before this CONNACK was sent: on
            // loopback its DISCONNECT is already readable, nothing else follows it.
            match old.recv(Duration::ZERO).await {
                Some(Packet::Disconnect(d)) => assert_eq!(d.reason, ReasonCode::SessionTakenOver),
                other => panic!(
                    "connection {i}: the previous connection was still live at CONNACK ({other:?})"
                ),
            }
        }
        conn.send_packet(
            &Packet::Publish(publish_packet(
                "storm/m",
                QoS::AtLeastOnce,
                Some(1),
                i.to_string().as_bytes(),
            )),
            V5,
        )
        .await;
        match raw::expect_packet(&mut conn).await {
            Packet::PubAck(a) if a.reason == ReasonCode::Success => acked.push(i),
            other => panic!("connection {i}: expected PUBACK, got {other:?}"),
        }
        previous = Some(conn);
        i += 1;
    }
    let (mut end, _) = raw::open_ok(c.addrs[0], raw::connect_packet(V5, "ender", true)).await;
    end.send_packet(
        &Packet::Publish(publish_packet(
            "storm/end",
            QoS::AtLeastOnce,
            Some(1),
            b"end",
        )),
        V5,
    )
    .await;
    assert!(matches!(
        raw::expect_packet(&mut end).await,
        Packet::PubAck(_)
    ));
    let seen = collector.await.unwrap();
    let lost: Vec<_> = acked.iter().filter(|n| !seen.contains_key(n)).collect();
    let duplicated = seen.values().filter(|&&k| k > 1).count();
    println!(
        "takeover storm: {i} connections in {secs} s, {} acknowledged messages: {} delivered, {} lost, {duplicated} duplicated",
        acked.len(),
        seen.len(),
        lost.len()
    );
    assert!(
        lost.is_empty(),
        "acknowledged but never delivered: {lost:?}"
    );
    assert!(
        i >= 20 * u32::try_from(secs).unwrap() * 9 / 10,
        "only {i} connections in {secs} s"
    );
}

/// `kill -9` of one of three NATS servers under steady QoS 1 load (the stream has 3 replicas):
/// every message acknowledged to the publisher is delivered. Run by `scripts/fault-tests.sh`
/// (it starts its own 3-node NATS cluster and takes about 20 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "fault test: run by scripts/fault-tests.sh"]
async fn killing_one_of_three_nats_servers_loses_no_acknowledged_message() {
    let mut nats = tokio::task::spawn_blocking(|| stratus_testkit::NatsCluster::start(3))
        .await
        .unwrap()
        .unwrap();
    // The subscriber's edge knows only the server that will be killed (it learns the others
    // from the server, as clients do): its core subscription has to move to another server.
    let doomed = nats.node(0).url();
    let c = TestCluster::start_on(vec![nats.urls(), doomed], |_| {}, |s| s.replicas = 3).await;
    let (mut sub, _) = raw::open_ok(c.addrs[1], raw::connect_packet(V5, "sub", true)).await;
    raw::subscribe(&mut sub, V5, 1, "load/#", QoS::AtLeastOnce).await;
    let collector = tokio::spawn(async move {
        let mut seen = std::collections::HashMap::<u32, u32>::new();
        loop {
            match sub.recv(Duration::from_secs(30)).await {
                Some(Packet::Publish(p)) => {
                    if let Some(id) = p.packet_id {
                        raw::send_ack(&mut sub, Packet::PubAck, id, V5).await;
                    }
                    if &*p.topic == "load/end" {
                        return seen;
                    }
                    let n: u32 = std::str::from_utf8(&p.payload).unwrap().parse().unwrap();
                    *seen.entry(n).or_default() += 1;
                }
                other => panic!("subscriber stopped: {other:?}"),
            }
        }
    });
    let (mut publ, _) = raw::open_ok(c.addrs[0], raw::connect_packet(V5, "pub", true)).await;
    let mut acked = Vec::new();
    let total = 1000u32;
    for n in 0..total {
        if n == total / 3 {
            let node = nats.node(0);
            tokio::task::block_in_place(|| node.kill());
        }
        let id = u16::try_from(n % 60_000 + 1).unwrap();
        publ.send_packet(
            &Packet::Publish(publish_packet(
                "load/m",
                QoS::AtLeastOnce,
                Some(id),
                n.to_string().as_bytes(),
            )),
            V5,
        )
        .await;
        match publ.recv(Duration::from_secs(30)).await {
            Some(Packet::PubAck(a)) if a.reason == ReasonCode::Success => acked.push(n),
            other => panic!("message {n}: expected PUBACK, got {other:?}"),
        }
    }
    publ.send_packet(
        &Packet::Publish(publish_packet(
            "load/end",
            QoS::AtLeastOnce,
            Some(1),
            b"end",
        )),
        V5,
    )
    .await;
    let seen = collector.await.unwrap();
    let lost: Vec<_> = acked.iter().filter(|n| !seen.contains_key(n)).collect();
    let duplicated = seen.values().filter(|&&k| k > 1).count();
    println!(
        "NATS node kill: {} acknowledged, {} delivered, {} lost, {duplicated} duplicated",
        acked.len(),
        seen.len(),
        lost.len()
    );
    assert!(
        lost.is_empty(),
        "acknowledged but never delivered: {} messages",
        lost.len()
    );
}
