//! Limits that hold across edges: a tenant's connection cap and a client id's connect rate are
//! counted in Redis, so spreading connections over edges does not multiply them. The connect
//! rate also holds in the embedded shape.
#![allow(clippy::unwrap_used)]

mod cluster;
mod support;

use std::time::Duration;

use cluster::TestCluster;
use stratus_codec::{ProtocolVersion, ReasonCode};
use support::raw;
use tokio::time::Instant;

const V5: ProtocolVersion = ProtocolVersion::V5;
const V4: ProtocolVersion = ProtocolVersion::V3_1_1;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tenant_connection_cap_holds_across_edges() {
    let c = TestCluster::start_with(3, |config| config.limits.max_connections_per_tenant = 3).await;
    let mut open = Vec::new();
    for i in 0..3 {
        let (client, _) =
            raw::open_ok(c.addrs[i], raw::connect_packet(V5, &format!("c{i}"), true)).await;
        open.push(client);
    }
    // Each edge holds one connection: the fourth, on any edge, is over the tenant's cap.
    let (_, ack) = raw::open(c.addrs[0], raw::connect_packet(V5, "c3", true)).await;
    assert_eq!(ack.reason, ReasonCode::QuotaExceeded);
    let (_, ack) = raw::open(c.addrs[2], raw::connect_packet(V4, "c4", true)).await;
    assert_eq!(
        ack.reason,
        ReasonCode::ServerUnavailable,
        "3.1.1 hears return code 3"
    );
    // A connection closes: its edge's count is rewritten within seconds and a new one fits.
    drop(open.pop());
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (client, ack) = raw::open(c.addrs[1], raw::connect_packet(V5, "c5", true)).await;
        if ack.reason == ReasonCode::Success {
            open.push(client);
            break;
        }
        assert_eq!(ack.reason, ReasonCode::QuotaExceeded);
        assert!(
            Instant::now() < deadline,
            "the closed connection was never released"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_ids_connect_rate_holds_across_edges() {
    let c = TestCluster::start_with(2, |config| {
        config.limits.max_connects_per_client_id_per_second = 4;
    })
    .await;
    // The limit counts fixed one-second windows: a round that took longer than that proves
    // nothing and is repeated with a fresh client id; an assertion always runs.
    let mut decided = None;
    for round in 0..5 {
        let client_id = format!("flapper-{round}");
        let started = Instant::now();
        let mut refused = None;
        for i in 0..5 {
            let (_client, ack) =
                raw::open(c.addrs[i % 2], raw::connect_packet(V5, &client_id, true)).await;
            if ack.reason != ReasonCode::Success {
                refused = Some((i, ack.reason));
                break;
            }
        }
        if started.elapsed() < Duration::from_millis(900) {
            decided = Some(refused);
            break;
        }
    }
    let refused = decided.expect("no round of 5 CONNECTs finished within one second");
    assert_eq!(refused, Some((4, ReasonCode::ConnectionRateExceeded)));
    // Another client id is not affected.
    raw::open_ok(c.addrs[0], raw::connect_packet(V5, "calm", true)).await;
}

#[tokio::test]
async fn a_client_ids_connect_rate_holds_in_the_embedded_shape() {
    let s = support::TestServer::start_with(|config| {
        config.limits.max_connects_per_client_id_per_second = 3;
    })
    .await;
    let mut decided = None;
    for round in 0..5 {
        let client_id = format!("flapper-{round}");
        let started = Instant::now();
        let mut outcomes = Vec::new();
        for _ in 0..4 {
            let (_client, ack) = raw::open(s.addr, raw::connect_packet(V5, &client_id, true)).await;
            outcomes.push(ack.reason);
        }
        if started.elapsed() < Duration::from_millis(900) {
            decided = Some(outcomes);
            break;
        }
    }
    let outcomes = decided.expect("no round of 4 CONNECTs finished within one second");
    assert_eq!(outcomes[..3], [ReasonCode::Success; 3]);
    assert_eq!(outcomes[3], ReasonCode::ConnectionRateExceeded);
}
