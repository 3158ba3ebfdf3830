//! `$SYS/broker/...` topics: published every `sys.interval_secs` (1 s here) per tenant, with the
//! version, uptime, connected clients, message and byte counters, subscription and retained
//! message counts of that tenant only; clients cannot publish to `$SYS`.
//!
//! Only live readings (RETAIN=0) count as fresh: a retained reading sent on subscribe may predate
//! what the test just did.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashMap;
use std::time::Duration;

use rumqttc::v5::mqttbytes::v5::PubAckReason;
use support::TestServer;
use support::clients::{Q4, Q5, V4Client, V5Client, topic5};
use tokio::time::Instant;

/// Long enough for several 1 s rounds.
const SYS_WAIT: Duration = Duration::from_secs(8);

async fn sys_server() -> TestServer {
    TestServer::start_with(|c| c.sys.interval_secs = 1).await
}

/// A client watching `$SYS` values, keeping the latest live reading of each topic.
struct Watcher {
    client: V5Client,
    latest: HashMap<String, String>,
}

impl Watcher {
    async fn new(client: V5Client, filter: &str) -> Self {
        let mut w = Self {
            client,
            latest: HashMap::new(),
        };
        w.client.subscribe(filter, Q5::AtMostOnce).await;
        w
    }

    async fn connect(server: &TestServer, id: &str, filter: &str) -> Self {
        Self::new(V5Client::connect(server.addr, id).await, filter).await
    }

    /// Waits for a live reading of `topic` satisfying `ok`; returns it.
    async fn until(&mut self, topic: &str, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + SYS_WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(p) = self.client.try_recv(left).await else {
                panic!(
                    "no live {topic} reading {what} within {SYS_WAIT:?}; latest: {:?}",
                    self.latest.get(topic)
                );
            };
            if p.retain {
                continue;
            }
            let value = String::from_utf8(p.payload.to_vec()).unwrap();
            self.latest.insert(topic5(&p).to_owned(), value.clone());
            if topic5(&p) == topic && ok(&value) {
                return value;
            }
        }
    }

    /// The next live reading of `topic`.
    async fn next(&mut self, topic: &str) -> String {
        self.until(topic, "at all", |_| true).await
    }

    /// A reading of `topic` from a round that started after this call: whatever is already
    /// waiting is discarded, and of the readings that follow, the first may be from a round
    /// still in flight, so the second is returned.
    async fn later(&mut self, topic: &str) -> String {
        while self.client.try_recv(Duration::ZERO).await.is_some() {}
        self.next(topic).await;
        self.next(topic).await
    }

    /// A live reading of `topic` equal to the one before it (nothing else is changing it).
    async fn settled(&mut self, topic: &str) -> u64 {
        let mut previous = self.next(topic).await;
        loop {
            let now = self.next(topic).await;
            if now == previous {
                return now.parse().unwrap();
            }
            previous = now;
        }
    }
}

fn number(s: &str) -> u64 {
    s.parse().unwrap_or_else(|_| panic!("not a number: {s:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sys_topics_report_version_uptime_and_every_counter() {
    let server = sys_server().await;
    let mut w = Watcher::connect(&server, "sys-all", "$SYS/#").await;
    let version = w.next("$SYS/broker/version").await;
    assert!(version.starts_with("stratus "), "{version}");
    let uptime = w.next("$SYS/broker/uptime").await;
    let secs = uptime
        .strip_suffix(" seconds")
        .unwrap_or_else(|| panic!("uptime format: {uptime:?}"));
    number(secs);
    for topic in [
        "$SYS/broker/clients/connected",
        "$SYS/broker/messages/received",
        "$SYS/broker/messages/sent",
        "$SYS/broker/bytes/received",
        "$SYS/broker/bytes/sent",
        "$SYS/broker/subscriptions/count",
        "$SYS/broker/retained messages/count",
    ] {
        let value = w.next(topic).await;
        number(&value);
    }
    let later = w
        .until("$SYS/broker/uptime", "past the first", |v| v != uptime)
        .await;
    assert!(
        number(later.strip_suffix(" seconds").unwrap()) > number(secs),
        "uptime grows: {uptime} -> {later}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sys_connected_clients_follow_connections() {
    let server = sys_server().await;
    let topic = "$SYS/broker/clients/connected";
    let mut w = Watcher::connect(&server, "sysc-watch", topic).await;
    w.until(topic, "of 1", |v| v == "1").await;
    let a = V5Client::connect(server.addr, "sysc-a").await;
    let b = V4Client::connect(server.addr, "sysc-b").await;
    w.until(topic, "of 3", |v| v == "3").await;
    a.disconnect().await;
    b.disconnect().await;
    w.until(topic, "back to 1", |v| v == "1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sys_message_and_byte_counters_reflect_published_messages() {
    let server = sys_server().await;
    let mut w = Watcher::connect(&server, "sysm-watch", "$SYS/broker/+/+").await;
    let mut sub = V4Client::connect(server.addr, "sysm-sub").await;
    sub.subscribe("sysm/t", Q4::AtLeastOnce).await;
    let mut publisher = V5Client::connect(server.addr, "sysm-pub").await;
    for i in 0..3 {
        publisher
            .publish_acked("sysm/t", false, format!("message {i}"))
            .await;
    }
    for _ in 0..3 {
        sub.recv().await;
    }
    w.until("$SYS/broker/messages/received", ">= 3", |v| number(v) >= 3)
        .await;
    w.until("$SYS/broker/messages/sent", ">= 3", |v| number(v) >= 3)
        .await;
    // Three PUBLISH packets with a 6-byte topic and 9-byte payloads: well over 45 bytes each way.
    w.until("$SYS/broker/bytes/received", ">= 45", |v| number(v) >= 45)
        .await;
    w.until("$SYS/broker/bytes/sent", ">= 45", |v| number(v) >= 45)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sys_subscription_and_retained_counts_reflect_activity() {
    let server = sys_server().await;
    let subs = "$SYS/broker/subscriptions/count";
    let retained = "$SYS/broker/retained messages/count";
    let mut w = Watcher::connect(&server, "sysr-watch", "$SYS/broker/+/count").await;
    w.client
        .subscribe("$SYS/broker/retained messages/count", Q5::AtMostOnce)
        .await;
    let base_subs = w.settled(subs).await;
    let base_retained = w.settled(retained).await;

    let mut other = V5Client::connect(server.addr, "sysr-other").await;
    for f in ["sysr/a", "sysr/b/+", "sysr/#"] {
        other.subscribe(f, Q5::AtMostOnce).await;
    }
    other.publish_acked("sysr/r1", true, "one").await;
    other.publish_acked("sysr/r2", true, "two").await;
    w.until(subs, "up by 3", |v| number(v) == base_subs + 3)
        .await;
    w.until(retained, "up by 2", |v| number(v) == base_retained + 2)
        .await;

    other.publish_acked("sysr/r1", true, "").await;
    w.until(retained, "down by 1 after clearing", |v| {
        number(v) == base_retained + 1
    })
    .await;
    other.disconnect().await;
    w.until(subs, "back to the baseline", |v| number(v) == base_subs)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sys_values_are_per_tenant() {
    let server = TestServer::start_with(|c| c.sys.interval_secs = 1).await;
    server.add_tenant("acme", "allow", false).await;
    server.add_device("acme", "alice", "s3cret", None).await;
    let received = "$SYS/broker/messages/received";
    let connected = "$SYS/broker/clients/connected";
    let mut dev = Watcher::connect(&server, "syst-dev", "$SYS/broker/#").await;
    let alice = V5Client::connect_with(server.addr, "syst-alice", |o| {
        o.set_credentials("alice@acme", "s3cret");
    })
    .await;
    let mut acme = Watcher::new(alice, "$SYS/broker/#").await;

    let _other = V5Client::connect(server.addr, "syst-dev-2").await;
    let mut publisher = V5Client::connect(server.addr, "syst-dev-pub").await;
    for _ in 0..3 {
        publisher
            .publish_acked("syst/t", false, "dev traffic")
            .await;
    }
    dev.until(received, ">= 3 in the dev tenant", |v| number(v) >= 3)
        .await;
    dev.until(connected, "3 in the dev tenant", |v| v == "3")
        .await;
    // A round computed after the dev tenant's figures showed its activity; connected comes
    // before received in a round, so its latest reading is from the same round.
    let acme_received = acme.later(received).await;
    assert_eq!(
        acme_received, "0",
        "acme's $SYS shows another tenant's messages"
    );
    assert_eq!(
        acme.latest[connected], "1",
        "acme's $SYS counts another tenant's clients"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_cannot_publish_to_sys_topics() {
    let server = sys_server().await;
    let topic = "$SYS/broker/version";
    let mut w = Watcher::connect(&server, "sysp-watch", topic).await;
    w.client.subscribe("fence/sysp", Q5::AtMostOnce).await;
    let version = w.next(topic).await;

    let mut v5 = V5Client::connect(server.addr, "sysp-v5").await;
    let ack = v5.publish_acked(topic, true, "hacked by 5.0").await;
    assert_eq!(ack.reason, PubAckReason::NotAuthorized);
    v5.publish("fence/sysp", Q5::AtMostOnce, false, "fence")
        .await;
    let mut v4 = V4Client::connect(server.addr, "sysp-v4").await;
    v4.publish_acked(topic, true, "hacked by 3.1.1").await;
    v4.publish("fence/sysp", Q4::AtMostOnce, false, "fence")
        .await;

    // A refused message would have reached the watcher before the fence its publisher sent next.
    for _ in 0..2 {
        let before = w.client.recv_until("fence/sysp").await;
        let values: Vec<_> = before
            .iter()
            .map(|p| String::from_utf8_lossy(&p.payload).into_owned())
            .collect();
        assert!(
            values.iter().all(|v| *v == version),
            "subscribers see only the broker's value: {values:?}"
        );
    }
    let mut fresh = V5Client::connect(server.addr, "sysp-fresh").await;
    fresh.subscribe(topic, Q5::AtMostOnce).await;
    let retained = fresh.recv().await;
    assert_eq!(
        &retained.payload[..],
        version.as_bytes(),
        "the retained value is the broker's"
    );
}
