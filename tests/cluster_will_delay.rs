//! Will delay across an edge's death (SIGKILL), as real processes: `stratus control-plane`,
//! two `stratus edge` of a pool of their own over the shared NATS and Redis, clients on our codec.
//!
//! Clients of the edge that dies, each with a QoS 1 will on `dw/<name>`:
//! - `gone`: will delay 60 s but Session Expiry 0, so the session ends with the connection: the
//!   will goes out when the edge is reaped;
//! - `keep`: will delay 3 s, session kept: published, but not before 3 s after the death;
//! - `back`: will delay 3 s, connects again (to the other edge) right after the death: never
//!   published;
//! - `offline`: will delay 5 s, its connection dropped before the death: published, not before
//!   5 s after the drop;
//! - `clean`: disconnected with DISCONNECT before the death: never published;
//! - `fence`: will delay 8 s: published last; when it arrives, `back` had been decided.
//!
//! Every published will arrives exactly once, and no parked will is left in Redis.
#![allow(clippy::unwrap_used)]

mod cluster_support;

use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

use cluster_support::codec_client::{CodecClient, ConnectSpec};
use cluster_support::mqtt::{Client, Version};
use cluster_support::{ControlPlane, Edge, eventually};
use stratus_codec::{Disconnect, Packet, ProtocolVersion, ReasonCode};
use tokio::time::Instant;

const MARKER: &str = "dw/~marker";

/// A 5.0 client of `name` with a will on `dw/<name>`.
fn spec<'a>(id: &'a str, topic: &'a str, expiry_secs: u32, delay_secs: u32) -> ConnectSpec<'a> {
    ConnectSpec {
        version: ProtocolVersion::V5,
        client_id: id,
        clean_start: true,
        expiry_secs: Some(expiry_secs),
        will: Some((topic, b"gone")),
        will_delay_secs: delay_secs,
    }
}

/// Output of `redis-cli -u <url> <args>`, trimmed.
fn redis(redis_url: &str, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-u", redis_url])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Wills registered under any incarnation of the pool.
fn registered_wills(redis_url: &str, pool: &str) -> usize {
    let pattern = format!("stratus:{pool}:wills:*");
    redis(redis_url, &["--scan", "--pattern", &pattern])
        .lines()
        .filter(|k| !k.trim().is_empty())
        .map(|key| {
            redis(redis_url, &["HLEN", key.trim()])
                .parse::<usize>()
                .unwrap()
        })
        .sum()
}

/// Wills parked until their delay ends.
fn parked_wills(redis_url: &str, pool: &str) -> usize {
    let key = format!("stratus:{pool}:willq:{{delayed}}:due");
    redis(redis_url, &["ZCARD", &key]).parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn delayed_wills_of_a_killed_edge_wait_out_their_delay_and_a_reconnect_cancels_them() {
    let nats_url = stratus_testkit::shared_nats_url();
    let redis_url = stratus_testkit::shared_redis_url();
    let pool = stratus_testkit::unique_name("wdl");
    let plane = ControlPlane::start(&nats_url).await;
    let edge_a = Edge::start(&plane, &nats_url, &redis_url, &pool, "edge-a", 2);
    let edge_b = Edge::start(&plane, &nats_url, &redis_url, &pool, "edge-b", 2);

    let mut watcher = Client::connect(edge_b.mqtt, Version::V5, &format!("{pool}-w"), None)
        .await
        .unwrap();
    watcher.subscribe("dw/#").await;

    // (name, session expiry, will delay)
    let plan = [
        ("gone", 0, 60),
        ("keep", 300, 3),
        ("back", 300, 3),
        ("offline", 300, 5),
        ("clean", 300, 0),
        ("fence", 300, 8),
    ];
    let ids: HashMap<&str, String> = plan
        .iter()
        .map(|(name, ..)| (*name, format!("{pool}-{name}")))
        .collect();
    let topics: HashMap<&str, String> = plan
        .iter()
        .map(|(name, ..)| (*name, format!("dw/{name}")))
        .collect();
    let mut clients = HashMap::new();
    for (name, expiry, delay) in plan {
        let (client, ack) =
            CodecClient::connect(edge_a.mqtt, &spec(&ids[name], &topics[name], expiry, delay))
                .await
                .unwrap();
        assert_eq!(ack.reason, ReasonCode::Success, "{name}");
        clients.insert(name, client);
    }
    eventually(Duration::from_secs(10), "every will registered", || {
        registered_wills(&redis_url, &pool) == plan.len()
    })
    .await;

    // A clean DISCONNECT: its registration goes (no reaper may publish the will).
    let mut clean = clients.remove("clean").unwrap();
    clean
        .send(&Packet::Disconnect(Disconnect::new(ReasonCode::Success)))
        .await
        .unwrap();
    eventually(
        Duration::from_secs(10),
        "the clean client's will unregistered",
        || registered_wills(&redis_url, &pool) == plan.len() - 1,
    )
    .await;
    // A dropped connection: its will's delay starts now, on edge A.
    drop(clients.remove("offline"));
    let dropped = Instant::now();

    edge_a.process.signal("-KILL");
    let killed = Instant::now();
    let (mut back, ack) = CodecClient::connect(
        edge_b.mqtt,
        &ConnectSpec {
            version: ProtocolVersion::V5,
            client_id: &ids["back"],
            clean_start: false,
            expiry_secs: Some(300),
            will: None,
            will_delay_secs: 0,
        },
    )
    .await
    .unwrap();
    assert_eq!(ack.reason, ReasonCode::Success);
    assert!(ack.session_present, "the session moved to edge B");

    // Wills until the fence's, with when each arrived.
    let mut arrived: HashMap<String, Vec<Duration>> = HashMap::new();
    let deadline = killed + Duration::from_secs(40);
    while !arrived.contains_key(&topics["fence"]) {
        let Some(msg) = watcher.next_publish(deadline).await else {
            panic!("the fence will did not arrive; arrived: {arrived:?}");
        };
        arrived.entry(msg.topic).or_default().push(killed.elapsed());
    }
    let offline_lag = dropped.elapsed() - killed.elapsed();
    // Everything published before the marker has arrived with it.
    let mut publisher = Client::connect(edge_b.mqtt, Version::V5, "", None)
        .await
        .unwrap();
    publisher.publish(MARKER, b"fence").await;
    loop {
        let msg = watcher
            .next_publish(Instant::now() + Duration::from_secs(10))
            .await
            .expect("the marker did not arrive");
        if msg.topic == MARKER {
            break;
        }
        arrived.entry(msg.topic).or_default().push(killed.elapsed());
    }

    for name in ["gone", "keep", "offline", "fence"] {
        assert_eq!(
            arrived.get(&topics[name]).map(Vec::len),
            Some(1),
            "{name}: {arrived:?}"
        );
    }
    for name in ["back", "clean"] {
        assert!(!arrived.contains_key(&topics[name]), "{name}: {arrived:?}");
    }
    let at = |name: &str| arrived[&topics[name]][0];
    assert!(
        at("keep") >= Duration::from_secs(3),
        "keep early: {arrived:?}"
    );
    assert!(
        at("fence") >= Duration::from_secs(8),
        "fence early: {arrived:?}"
    );
    assert!(
        at("offline") + offline_lag >= Duration::from_secs(5),
        "offline early: {arrived:?}"
    );
    assert!(at("gone") < at("keep"), "gone waited: {arrived:?}");
    eventually(Duration::from_secs(10), "no will left parked", || {
        parked_wills(&redis_url, &pool) == 0
    })
    .await;

    drop(
        back.send(&Packet::Disconnect(Disconnect::new(ReasonCode::Success)))
            .await,
    );
    drop(clients);
    drop(edge_b);
    drop(edge_a);
    plane.stop().await;
}
