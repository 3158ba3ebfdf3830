//! Edges dying and losing Redis, as real processes: `stratus control-plane` on a database of
//! its own, `stratus edge` processes of a pool of their own over the shared NATS and Redis (or
//! a Redis of the test's own), and raw MQTT clients.
//!
//! - An edge killed with SIGKILL: another edge's reaper publishes every will of its clients
//!   exactly once.
//! - An edge stopped with SIGTERM publishes its clients' wills itself, exactly once; no reaper
//!   publishes them again.
//! - An edge whose Redis stops answering disconnects its clients within the lease TTL (5.0:
//!   DISCONNECT 0x89), refuses CONNECTs (0x88) meanwhile, and accepts them again once Redis answers.
#![allow(clippy::unwrap_used)]

mod cluster_support;

use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

use cluster_support::mqtt::{Client, ConnectError, Version};
use cluster_support::{ControlPlane, Edge, eventually};
use tokio::time::Instant;

/// Clients with a will on the edge that goes away.
const CLIENTS: usize = 50;
/// The marker published after the wills: everything published before it has arrived with it.
const MARKER: &str = "wills/~marker";

/// Registered wills in the pool's Redis namespace (all incarnations).
fn registered_wills(redis_url: &str, pool: &str) -> usize {
    let keys = Command::new("redis-cli")
        .args([
            "-u",
            redis_url,
            "--scan",
            "--pattern",
            &format!("stratus:{pool}:wills:*"),
        ])
        .output()
        .unwrap();
    let keys = String::from_utf8(keys.stdout).unwrap();
    keys.lines()
        .filter(|k| !k.trim().is_empty())
        .map(|key| {
            let out = Command::new("redis-cli")
                .args(["-u", redis_url, "HLEN", key.trim()])
                .output()
                .unwrap();
            String::from_utf8(out.stdout)
                .unwrap()
                .trim()
                .parse::<usize>()
                .unwrap()
        })
        .sum()
}

/// Connects [`CLIENTS`] clients with a QoS 1 will on `wills/<client id>`, 3.1.1 and 5.0 in
/// turn; returns them (kept open) and their will topics.
async fn connect_clients_with_wills(edge: &Edge, pool: &str) -> (Vec<Client>, Vec<String>) {
    let mut clients = Vec::new();
    let mut topics = Vec::new();
    for i in 0..CLIENTS {
        let version = if i % 2 == 0 {
            Version::V311
        } else {
            Version::V5
        };
        let id = format!("{pool}-dev-{i}");
        let topic = format!("wills/{id}");
        let client = Client::connect(edge.mqtt, version, &id, Some((&topic, b"gone")))
            .await
            .unwrap();
        clients.push(client);
        topics.push(topic);
    }
    (clients, topics)
}

/// Reads wills until every topic of `expected` arrived (bounded by `deadline`); counts them.
async fn collect_wills(
    subscriber: &mut Client,
    expected: &[String],
    deadline: Instant,
) -> HashMap<String, usize> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    while !expected.iter().all(|t| seen.contains_key(t)) {
        let Some(msg) = subscriber.next_publish(deadline).await else {
            let missing: Vec<_> = expected.iter().filter(|t| !seen.contains_key(*t)).collect();
            panic!(
                "{} wills missing at the deadline: {missing:?}",
                missing.len()
            );
        };
        assert_eq!(msg.payload, b"gone", "{}", msg.topic);
        *seen.entry(msg.topic).or_default() += 1;
    }
    seen
}

/// Publishes the marker from another connection and reads until it arrives, counting wills
/// that arrive meanwhile; then asserts each will arrived exactly once.
async fn assert_exactly_once_after_marker(
    edge: &Edge,
    subscriber: &mut Client,
    mut seen: HashMap<String, usize>,
    expected: &[String],
) {
    let mut publisher = Client::connect(edge.mqtt, Version::V5, "", None)
        .await
        .unwrap();
    publisher.publish(MARKER, b"fence").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let msg = subscriber
            .next_publish(deadline)
            .await
            .expect("the marker did not arrive");
        if msg.topic == MARKER {
            break;
        }
        *seen.entry(msg.topic).or_default() += 1;
    }
    for topic in expected {
        assert_eq!(
            seen.get(topic),
            Some(&1),
            "{topic} arrived {:?} times",
            seen.get(topic)
        );
    }
    assert_eq!(seen.len(), expected.len(), "unexpected messages: {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wills_of_a_killed_edge_are_published_once_by_a_reaper() {
    let nats_url = stratus_testkit::shared_nats_url();
    let redis_url = stratus_testkit::shared_redis_url();
    let pool = stratus_testkit::unique_name("kill");
    let plane = ControlPlane::start(&nats_url).await;
    let edge_a = Edge::start(&plane, &nats_url, &redis_url, &pool, "edge-a", 3);
    let edge_b = Edge::start(&plane, &nats_url, &redis_url, &pool, "edge-b", 3);

    let mut subscriber = Client::connect(edge_b.mqtt, Version::V5, &format!("{pool}-sub"), None)
        .await
        .unwrap();
    subscriber.subscribe("wills/#").await;
    let (clients, topics) = connect_clients_with_wills(&edge_a, &pool).await;
    eventually(
        Duration::from_secs(10),
        "every will registered in Redis",
        || registered_wills(&redis_url, &pool) == CLIENTS,
    )
    .await;

    edge_a.process.signal("-KILL");
    let killed = Instant::now();
    let seen = collect_wills(&mut subscriber, &topics, killed + Duration::from_secs(15)).await;
    eventually(Duration::from_secs(15), "edge B reaped edge A", || {
        edge_b.process.logged("dead node reaped")
    })
    .await;
    assert_exactly_once_after_marker(&edge_b, &mut subscriber, seen, &topics).await;
    assert_eq!(registered_wills(&redis_url, &pool), 0);
    drop(clients);
    drop(edge_b);
    drop(edge_a);
    plane.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_terminated_edge_publishes_its_wills_once_and_no_reaper_repeats_them() {
    let nats_url = stratus_testkit::shared_nats_url();
    let redis_url = stratus_testkit::shared_redis_url();
    let pool = stratus_testkit::unique_name("term");
    let plane = ControlPlane::start(&nats_url).await;
    let mut edge_a = Edge::start(&plane, &nats_url, &redis_url, &pool, "edge-a", 2);
    let edge_b = Edge::start(&plane, &nats_url, &redis_url, &pool, "edge-b", 2);
    // Killed after A stopped: once a reaper handled C, it would have handled A too.
    let edge_c = Edge::start(&plane, &nats_url, &redis_url, &pool, "edge-c", 2);

    let mut subscriber = Client::connect(edge_b.mqtt, Version::V5, &format!("{pool}-sub"), None)
        .await
        .unwrap();
    subscriber.subscribe("wills/#").await;
    let (clients, topics) = connect_clients_with_wills(&edge_a, &pool).await;
    eventually(
        Duration::from_secs(10),
        "every will registered in Redis",
        || registered_wills(&redis_url, &pool) == CLIENTS,
    )
    .await;

    edge_a.process.signal("-TERM");
    let stopped = Instant::now();
    let seen = collect_wills(&mut subscriber, &topics, stopped + Duration::from_secs(15)).await;
    let status = tokio::task::spawn_blocking(move || {
        let status = edge_a.process.wait_exit(Duration::from_secs(20));
        (status, edge_a)
    })
    .await
    .unwrap();
    assert!(status.0.success(), "{}", status.0);
    eventually(Duration::from_secs(5), "the lease-release log line", || {
        status.1.process.logged("node lease released")
    })
    .await;
    assert_eq!(registered_wills(&redis_url, &pool), 0);

    edge_c.process.signal("-KILL");
    eventually(Duration::from_secs(20), "edge B reaped edge C", || {
        edge_b
            .process
            .logged_with(&["dead node reaped", "node=edge-c"])
    })
    .await;
    assert!(
        !edge_b
            .process
            .logged_with(&["declared dead", "node=edge-a"]),
        "edge A was reaped after a graceful stop"
    );
    assert_exactly_once_after_marker(&edge_b, &mut subscriber, seen, &topics).await;
    drop(clients);
    drop(edge_b);
    drop(edge_c);
    plane.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_edge_that_cannot_renew_its_lease_disconnects_clients_until_redis_returns() {
    let nats_url = stratus_testkit::shared_nats_url();
    let redis = stratus_testkit::RedisServer::start().unwrap();
    let pool = stratus_testkit::unique_name("fence");
    let plane = ControlPlane::start(&nats_url).await;
    let edge = Edge::start(&plane, &nats_url, &redis.url(), &pool, "edge-f", 2);
    let ttl = Duration::from_secs(2);

    let mut client = Client::connect(edge.mqtt, Version::V5, &format!("{pool}-c1"), None)
        .await
        .unwrap();
    let mut old_client = Client::connect(edge.mqtt, Version::V311, &format!("{pool}-c2"), None)
        .await
        .unwrap();
    redis.stop();
    let stopped = Instant::now();
    let reason = client.closed_by_server(stopped + ttl).await;
    assert_eq!(
        reason,
        Some(0x89),
        "5.0 client not disconnected with 0x89 (Server busy) within the lease TTL"
    );
    assert!(old_client.closed_by_server(stopped + ttl).await.is_some());
    // The log line is written with the disconnects; its reader thread may not have it yet.
    eventually(Duration::from_secs(5), "the SELF-FENCED log line", || {
        edge.process.logged("SELF-FENCED")
    })
    .await;

    match Client::connect(edge.mqtt, Version::V5, &format!("{pool}-c3"), None).await {
        Err(ConnectError::Refused(code)) => assert_eq!(code, 0x88),
        other => panic!("a CONNECT while fenced was not refused with 0x88: {other:?}"),
    }

    redis.cont();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match Client::connect(edge.mqtt, Version::V5, &format!("{pool}-c4"), None).await {
            Ok(_) => break,
            Err(ConnectError::Refused(0x88)) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("the edge did not accept connections again: {e:?}"),
        }
    }
    eventually(Duration::from_secs(5), "the recovery log line", || {
        edge.process.logged("accepts connections again")
    })
    .await;
    drop(edge);
    plane.stop().await;
}
