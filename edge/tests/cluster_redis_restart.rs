//! Redis restarting under the clustered shape: two edges on a Redis of the test's own (with an
//! fsynced append-only file, as production runs it), a persistent QoS 1 subscriber on one edge
//! and a steady QoS 1 publisher on the other. Redis is killed (SIGKILL) and started again on
//! the same data mid-stream; the edges keep running and recover on their own, and the
//! subscriber, moving to the other edge afterwards, resumes its session: every message the
//! publisher had acknowledged is delivered (QoS 1 may duplicate), none is lost.
#![allow(clippy::unwrap_used)]

mod cluster;
mod support;

use std::collections::HashMap;
use std::time::Duration;

use cluster::TestCluster;
use stratus_codec::{Packet, ProtocolVersion, QoS, ReasonCode};
use support::RawClient;
use support::raw::{self, publish_packet};
use tokio::time::Instant;

const V5: ProtocolVersion = ProtocolVersion::V5;

/// Publishes `count` numbered QoS 1 messages from `p`, starting at `first`; returns the ones
/// acknowledged with success.
async fn publish_run(p: &mut RawClient, first: u32, count: u32) -> Vec<String> {
    let mut acked = Vec::new();
    for n in first..first + count {
        let id = u16::try_from(n % 60_000 + 1).unwrap();
        let payload = format!("m{n}");
        p.send_packet(
            &Packet::Publish(publish_packet(
                "rr/data",
                QoS::AtLeastOnce,
                Some(id),
                payload.as_bytes(),
            )),
            V5,
        )
        .await;
        // PUBACKs may wait while Redis is away; they still come.
        match p.recv(Duration::from_secs(30)).await {
            Some(Packet::PubAck(a)) if a.reason == ReasonCode::Success => acked.push(payload),
            other => panic!("publish {n}: expected PUBACK, got {other:?}"),
        }
    }
    acked
}

/// Reads and acknowledges messages until every one of `expected` arrived (bounded).
async fn drain(s: &mut RawClient, seen: &mut HashMap<String, usize>, expected: &[String]) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !expected.iter().all(|m| seen.contains_key(m)) {
        let left = deadline.saturating_duration_since(Instant::now());
        match s.recv(left).await {
            Some(Packet::Publish(p)) => {
                *seen
                    .entry(String::from_utf8(p.payload.to_vec()).unwrap())
                    .or_default() += 1;
                raw::send_ack(s, Packet::PubAck, p.packet_id.unwrap(), V5).await;
            }
            Some(_) => {}
            None => {
                let missing = expected.iter().filter(|m| !seen.contains_key(*m)).count();
                panic!("{missing} acknowledged messages not delivered within 30 s");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_loses_nothing_acknowledged() {
    let mut redis = stratus_testkit::RedisServer::start_durable().unwrap();
    let redis_url = redis.url();
    let c = TestCluster::start_on(
        vec![stratus_testkit::shared_nats_url(); 2],
        |_| {},
        move |s| s.redis_url.clone_from(&redis_url),
    )
    .await;
    let (mut sub, _) = raw::open_ok(c.addrs[0], raw::persistent_v5("rr-sub", 600)).await;
    raw::subscribe(&mut sub, V5, 1, "rr/#", QoS::AtLeastOnce).await;
    let (mut publisher, _) =
        raw::open_ok(c.addrs[1], raw::connect_packet(V5, "rr-pub", true)).await;
    let mut seen = HashMap::new();

    let mut acked = publish_run(&mut publisher, 0, 100).await;
    drain(&mut sub, &mut seen, &acked).await;

    // Killed mid-stream and started again on its append-only file.
    redis.kill();
    let during = tokio::spawn(async move {
        let acked = publish_run(&mut publisher, 100, 100).await;
        (publisher, acked)
    });
    redis.restart().unwrap();
    let (mut publisher, more) = during.await.unwrap();
    acked.extend(more);
    drain(&mut sub, &mut seen, &acked).await;

    // The session state written through the restart is whole: it resumes on the other edge.
    let more = publish_run(&mut publisher, 200, 50).await;
    drop(sub);
    let (mut sub, ack) = raw::open_ok(c.addrs[1], raw::persistent_v5("rr-sub", 600)).await;
    assert!(
        ack.session_present,
        "the session survived the Redis restart"
    );
    acked.extend(more);
    drain(&mut sub, &mut seen, &acked).await;

    let duplicated = seen.values().filter(|n| **n > 1).count();
    let lost = acked.iter().filter(|m| !seen.contains_key(*m)).count();
    println!(
        "Redis restart: {} acknowledged, {} delivered, {lost} lost, {duplicated} duplicated",
        acked.len(),
        seen.len()
    );
    assert_eq!(lost, 0);
    // A new connection on a healthy edge after the restart works as before.
    let (mut other, _) = raw::open_ok(c.addrs[0], raw::persistent_v5("rr-late", 60)).await;
    raw::subscribe(&mut other, V5, 1, "rr/late", QoS::AtLeastOnce).await;
}
