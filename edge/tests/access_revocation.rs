//! Revocation (issue 4, item 5): deleting or changing a device, credential, rule or tenant
//! reaches connections that are already open within 5 seconds. Each case measures the delay from
//! the API call's return to the effect on the connection and prints it (`revocation delay: ...`).
//!
//! A revoked credential closes the connection: 5.0 gets DISCONNECT 0x98 (Administrative action)
//! first, 3.1.1 is closed without one. A revoked right stops deliveries: a subscriber stops
//! receiving (checked with fences, see `access_acl.rs`), a publisher gets 0x87, and messages
//! queued or in flight for an offline session are withheld when it resumes.
#![allow(clippy::unwrap_used)]

mod access;
mod support;

use std::time::Duration;

use access::{
    JwtSigner, Stopwatch, VERSIONS, anonymous, assert_alive, closed_by_server, connack, connected,
    device, login, persistent, publish, subscribe, subscribe_refused, unix_now, until_fence,
};
use axum::http::Method;
use serde_json::json;
use stratus_codec::{Disconnect, Packet, ProtocolVersion, QoS, ReasonCode};
use support::{RawClient, TestServer};

const V5: ProtocolVersion = ProtocolVersion::V5;

/// A server with tenant `acme` (default deny) and device `alice`.
async fn acme(allow_anonymous: bool) -> (TestServer, String) {
    let server = TestServer::start().await;
    server.add_tenant("acme", "deny", allow_anonymous).await;
    let alice = server.add_device("acme", "alice", "s3cret", None).await;
    let id = alice["id"].as_str().unwrap().to_owned();
    (server, id)
}

/// `alice` connected once per protocol version.
async fn alice_everywhere(server: &TestServer) -> Vec<(ProtocolVersion, RawClient)> {
    let mut out = Vec::new();
    for version in VERSIONS {
        let connect = device(
            version,
            &format!("alice-{version:?}"),
            "alice",
            "acme",
            "s3cret",
        );
        out.push((version, connected(server.addr, connect).await));
    }
    out
}

/// Asserts every client is closed by the server within the limit, timed from now (call right
/// after the API call returned): 5.0 with DISCONNECT 0x98, 3.1.1 without a DISCONNECT.
async fn expect_kicked(clients: Vec<(ProtocolVersion, RawClient)>, what: &str) {
    let watches: Vec<_> = clients
        .iter()
        .map(|(v, _)| Stopwatch::start(format!("{what} -> {v:?} connection closed")))
        .collect();
    for ((version, mut c), watch) in clients.into_iter().zip(watches) {
        let reason = closed_by_server(&mut c, Duration::from_secs(6)).await;
        watch.stop();
        let expected = version.is_v5().then_some(ReasonCode::AdministrativeAction);
        assert_eq!(reason, expected, "{what}: {version:?} close reason");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_device_disconnects_its_open_connections() {
    let (server, alice) = acme(false).await;
    server.add_device("acme", "bob", "pw", None).await;
    let mut bob = connected(server.addr, device(V5, "bob", "bob", "acme", "pw")).await;
    let clients = alice_everywhere(&server).await;
    let path = format!("/api/v1/tenants/acme/devices/{alice}");
    server.api_ok(Method::DELETE, &path, None).await;
    expect_kicked(clients, "device deleted").await;
    assert_alive(&mut bob, V5).await;
    let again = device(V5, "alice-V5", "alice", "acme", "s3cret");
    assert_eq!(
        connack(server.addr, again).await,
        ReasonCode::BadUserNameOrPassword
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_a_device_password_disconnects_it_and_only_the_new_one_works() {
    let (server, alice) = acme(false).await;
    let clients = alice_everywhere(&server).await;
    let path = format!("/api/v1/tenants/acme/devices/{alice}");
    server
        .api_ok(Method::PATCH, &path, Some(json!({"password": "n3w"})))
        .await;
    expect_kicked(clients, "password changed").await;
    // The old password was verified (and cached) before: the cache does not outlive the change.
    let old = device(V5, "alice-V5", "alice", "acme", "s3cret");
    assert_eq!(
        connack(server.addr, old).await,
        ReasonCode::BadUserNameOrPassword
    );
    let mut new = connected(server.addr, device(V5, "alice-V5", "alice", "acme", "n3w")).await;
    assert_alive(&mut new, V5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabling_a_device_disconnects_it_and_refuses_it_afterwards() {
    let (server, alice) = acme(false).await;
    let clients = alice_everywhere(&server).await;
    let path = format!("/api/v1/tenants/acme/devices/{alice}");
    server
        .api_ok(Method::PATCH, &path, Some(json!({"enabled": false})))
        .await;
    expect_kicked(clients, "device disabled").await;
    let again = device(V5, "alice-V5", "alice", "acme", "s3cret");
    assert_eq!(connack(server.addr, again).await, ReasonCode::NotAuthorized);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_jwt_key_disconnects_token_clients_only() {
    let server = TestServer::start().await;
    server.add_tenant("meters", "allow", false).await;
    let devices = "/api/v1/tenants/meters/devices";
    let body = json!({"username": "meter", "jwt": true});
    server.api_ok(Method::POST, devices, Some(body)).await;
    server.add_device("meters", "ops", "pw", None).await;
    let signer = JwtSigner::ed25519();
    let kid = signer.register(&server, "meters", None).await;
    let mut clients = Vec::new();
    for version in VERSIONS {
        let id = format!("m-{version:?}");
        let token = signer.sign(&json!({"exp": unix_now() + 600, "client_id": id}), None);
        let connect = login(version, &id, Some("meter@meters"), Some(token.as_bytes()));
        clients.push((version, connected(server.addr, connect).await));
    }
    let mut ops = connected(server.addr, device(V5, "ops", "ops", "meters", "pw")).await;
    let path = format!("/api/v1/tenants/meters/jwt-keys/{kid}");
    server.api_ok(Method::DELETE, &path, None).await;
    expect_kicked(clients, "JWT key deleted").await;
    assert_alive(&mut ops, V5).await;
    let token = signer.sign(&json!({"exp": unix_now() + 600}), None);
    let again = login(V5, "m-V5", Some("meter@meters"), Some(token.as_bytes()));
    assert_eq!(
        connack(server.addr, again).await,
        ReasonCode::BadUserNameOrPassword
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspending_a_tenant_disconnects_its_clients_and_refuses_new_ones() {
    let (server, _) = acme(true).await;
    server.add_tenant("other", "allow", true).await;
    let mut clients = alice_everywhere(&server).await;
    let anon = connected(server.addr, anonymous(V5, "anon", "acme")).await;
    clients.push((V5, anon));
    let mut bystander = connected(server.addr, anonymous(V5, "anon", "other")).await;
    let status = |s: &str| Some(json!({"status": s}));
    let path = "/api/v1/tenants/acme";
    server
        .api_ok(Method::PATCH, path, status("suspended"))
        .await;
    expect_kicked(clients, "tenant suspended").await;
    assert_alive(&mut bystander, V5).await;
    let again = device(V5, "alice-V5", "alice", "acme", "s3cret");
    assert_eq!(connack(server.addr, again).await, ReasonCode::NotAuthorized);
    // Reactivated, it serves again.
    server.api_ok(Method::PATCH, path, status("active")).await;
    let stopwatch = Stopwatch::start("tenant reactivated -> accepted");
    loop {
        let again = device(V5, "alice-V5", "alice", "acme", "s3cret");
        if connack(server.addr, again).await == ReasonCode::Success {
            break;
        }
        assert!(!stopwatch.expired(), "the tenant stayed suspended");
    }
    stopwatch.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disallowing_anonymous_clients_disconnects_them_and_keeps_devices() {
    let (server, _) = acme(true).await;
    let mut clients = Vec::new();
    for version in VERSIONS {
        let id = format!("anon-{version:?}");
        clients.push((
            version,
            connected(server.addr, anonymous(version, &id, "acme")).await,
        ));
    }
    let mut alice = alice_everywhere(&server).await;
    let body = Some(json!({"allow_anonymous": false}));
    server
        .api_ok(Method::PATCH, "/api/v1/tenants/acme", body)
        .await;
    expect_kicked(clients, "anonymous access withdrawn").await;
    for (version, c) in &mut alice {
        assert_alive(c, *version).await;
    }
}

// ---- Rights of open connections ----

/// A publisher, subscribers, and numbered rounds of "message, then fence".
struct Rounds {
    publisher: RawClient,
    subscribers: Vec<(ProtocolVersion, RawClient)>,
    next: u16,
}

impl Rounds {
    /// Publishes a message on `topic`, then a fence on `fence_topic`; returns what each
    /// subscriber received before the fence.
    async fn round(&mut self, topic: &str, fence_topic: &str) -> Vec<Vec<(String, String)>> {
        self.next += 2;
        let (id, fence) = (self.next, format!("fence-{}", self.next));
        let payload = format!("m-{id}");
        let p = &mut self.publisher;
        publish(p, V5, topic, QoS::AtLeastOnce, id, payload.as_bytes()).await;
        publish(
            p,
            V5,
            fence_topic,
            QoS::AtLeastOnce,
            id + 1,
            fence.as_bytes(),
        )
        .await;
        let mut seen = Vec::new();
        for (version, s) in &mut self.subscribers {
            seen.push(until_fence(s, *version, &fence).await);
        }
        seen
    }

    /// Runs rounds until no subscriber receives `topic` any more, timing each subscriber from
    /// now; then asserts two more rounds deliver nothing.
    async fn until_revoked(&mut self, topic: &str, fence_topic: &str, what: &str) {
        let mut watches: Vec<_> = self
            .subscribers
            .iter()
            .map(|(v, _)| {
                Some(Stopwatch::start(format!(
                    "{what} -> {v:?} delivery stopped"
                )))
            })
            .collect();
        while watches.iter().any(Option::is_some) {
            let seen = self.round(topic, fence_topic).await;
            for (watch, got) in watches.iter_mut().zip(seen) {
                match watch.take() {
                    Some(w) if got.is_empty() => {
                        w.stop();
                    }
                    Some(w) => {
                        assert!(!w.expired(), "{what}: still delivered after 5 s: {got:?}");
                        *watch = Some(w);
                    }
                    None => assert_eq!(got, vec![], "{what}: delivered again after it stopped"),
                }
            }
        }
        for _ in 0..2 {
            let seen = self.round(topic, fence_topic).await;
            assert!(
                seen.iter().all(Vec::is_empty),
                "{what}: delivered: {seen:?}"
            );
        }
    }
}

/// One subscriber per version (`<prefix>-<version>`) on each filter of `filters`, at QoS 0.
async fn subscribers(
    server: &TestServer,
    prefix: &str,
    filters: &[&str],
) -> Vec<(ProtocolVersion, RawClient)> {
    let mut out = Vec::new();
    for version in VERSIONS {
        let mut s = connected(
            server.addr,
            anonymous(version, &format!("{prefix}-{version:?}"), "acme"),
        )
        .await;
        for (n, filter) in filters.iter().enumerate() {
            let granted = subscribe(&mut s, version, n as u16 + 1, filter, QoS::AtMostOnce).await;
            assert_eq!(granted, ReasonCode::Success, "{version:?} {filter}");
        }
        out.push((version, s));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_rule_behind_a_live_subscription_stops_its_deliveries() {
    let (server, _) = acme(true).await;
    let feed = server
        .add_rule("acme", "allow", "subscribe", "feed/#", json!({}))
        .await;
    server
        .add_rule("acme", "allow", "subscribe", "fence/#", json!({}))
        .await;
    server
        .add_rule("acme", "allow", "publish", "#", json!({"client_id": "pub"}))
        .await;
    let mut rounds = Rounds {
        publisher: connected(server.addr, anonymous(V5, "pub", "acme")).await,
        subscribers: subscribers(&server, "sub", &["feed/#", "fence/#"]).await,
        next: 0,
    };
    let before = rounds.round("feed/x", "fence/x").await;
    assert!(before.iter().all(|s| s.len() == 1), "control: {before:?}");
    let path = format!("/api/v1/tenants/acme/acl-rules/{feed}");
    server.api_ok(Method::DELETE, &path, None).await;
    rounds
        .until_revoked("feed/x", "fence/x", "subscribe rule deleted")
        .await;
    for (version, s) in &mut rounds.subscribers {
        let again = subscribe(s, *version, 9, "feed/#", QoS::AtMostOnce).await;
        assert_eq!(again, subscribe_refused(*version), "{version:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adding_a_deny_rule_stops_deliveries_under_it_on_a_live_wildcard_subscription() {
    let (server, _) = acme(true).await;
    server
        .add_rule("acme", "allow", "subscribe", "feed/#", json!({}))
        .await;
    server
        .add_rule("acme", "allow", "publish", "#", json!({"client_id": "pub"}))
        .await;
    let mut rounds = Rounds {
        publisher: connected(server.addr, anonymous(V5, "pub", "acme")).await,
        subscribers: subscribers(&server, "sub", &["feed/#"]).await,
        next: 0,
    };
    let before = rounds.round("feed/secret/x", "feed/public/fence").await;
    assert!(before.iter().all(|s| s.len() == 1), "control: {before:?}");
    server
        .add_rule("acme", "deny", "subscribe", "feed/secret/#", json!({}))
        .await;
    rounds
        .until_revoked("feed/secret/x", "feed/public/fence", "deny rule added")
        .await;
    // The subscription itself stays: the rest of `feed/#` is still delivered.
    let after = rounds.round("feed/public/x", "feed/public/fence").await;
    assert!(after.iter().all(|s| s.len() == 1), "after: {after:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_publish_right_refuses_the_next_publish() {
    let (server, _) = acme(true).await;
    let data = server
        .add_rule("acme", "allow", "publish", "data/#", json!({}))
        .await;
    server
        .add_rule("acme", "allow", "subscribe", "data/#", json!({}))
        .await;
    server
        .add_rule(
            "acme",
            "allow",
            "publish",
            "data/fence",
            json!({"client_id": "fencer"}),
        )
        .await;
    let mut p5 = connected(server.addr, anonymous(V5, "p5", "acme")).await;
    let mut fencer = connected(server.addr, anonymous(V5, "fencer", "acme")).await;
    let mut subs = subscribers(&server, "sub", &["data/#"]).await;
    let mut p3 = connected(
        server.addr,
        anonymous(ProtocolVersion::V3_1_1, "p3", "acme"),
    )
    .await;
    let path = format!("/api/v1/tenants/acme/acl-rules/{data}");
    server.api_ok(Method::DELETE, &path, None).await;
    // 5.0: the next publish after the change is refused.
    let watch = Stopwatch::start("publish rule deleted -> V5 PUBACK 0x87");
    for id in 1.. {
        let reason = publish(&mut p5, V5, "data/x", QoS::AtLeastOnce, id, b"m").await;
        if reason == ReasonCode::NotAuthorized {
            break;
        }
        assert!(!watch.expired(), "still accepted after 5 s: {reason:?}");
    }
    watch.stop();
    let q2 = publish(&mut p5, V5, "data/x", QoS::ExactlyOnce, 999, b"m").await;
    assert_eq!(q2, ReasonCode::NotAuthorized, "PUBREC");
    // 3.1.1 (the change has reached the edge by now): acknowledged, not delivered.
    publish(
        &mut p3,
        ProtocolVersion::V3_1_1,
        "data/x",
        QoS::AtLeastOnce,
        1,
        b"v3",
    )
    .await;
    publish(&mut fencer, V5, "data/fence", QoS::AtLeastOnce, 1, b"fence").await;
    for (version, s) in &mut subs {
        let seen = until_fence(s, *version, "fence").await;
        // Publishes accepted before the change reached the edge were delivered; not this one.
        assert!(seen.iter().all(|(_, m)| m == "m"), "{version:?}: {seen:?}");
    }
}

// ---- Offline sessions ----

/// A persistent client of `acme` subscribed (QoS 1) to `feed/#` and `fence/#`.
async fn sleeper(server: &TestServer, version: ProtocolVersion) -> RawClient {
    let mut s = connected(
        server.addr,
        persistent(anonymous(version, &sleeper_id(version), "acme")),
    )
    .await;
    for (n, filter) in ["feed/#", "fence/#"].into_iter().enumerate() {
        let granted = subscribe(&mut s, version, n as u16 + 1, filter, QoS::AtLeastOnce).await;
        assert_eq!(granted, ReasonCode::GrantedQoS1, "{version:?} {filter}");
    }
    s
}

fn sleeper_id(version: ProtocolVersion) -> String {
    format!("sleeper-{version:?}")
}

async fn resume(server: &TestServer, version: ProtocolVersion) -> RawClient {
    let (c, ack) = support::raw::open(
        server.addr,
        persistent(anonymous(version, &sleeper_id(version), "acme")),
    )
    .await;
    assert_eq!(ack.reason, ReasonCode::Success);
    assert!(ack.session_present, "{version:?}: the session was kept");
    c
}

async fn disconnect(mut c: RawClient, version: ProtocolVersion) {
    c.send_packet(
        &Packet::Disconnect(Disconnect::new(ReasonCode::Success)),
        version,
    )
    .await;
    c.expect_close(Duration::from_secs(5)).await;
}

/// Rules for the offline cases: subscribing to `feed/#` (the rule returned), `fence/#` and
/// `probe-fence/#` for every client, publishing for `pub`. Live subscribers `probe-*` on
/// `feed/probe/#` show when a change took effect (their rounds use `feed/probe/x`, fenced on
/// `probe-fence/x`, so the sleepers' own traffic never reaches them).
async fn offline_setup(server: &TestServer) -> (String, Rounds) {
    let feed = server
        .add_rule("acme", "allow", "subscribe", "feed/#", json!({}))
        .await;
    for filter in ["fence/#", "probe-fence/#"] {
        server
            .add_rule("acme", "allow", "subscribe", filter, json!({}))
            .await;
    }
    server
        .add_rule("acme", "allow", "publish", "#", json!({"client_id": "pub"}))
        .await;
    let rounds = Rounds {
        publisher: connected(server.addr, anonymous(V5, "pub", "acme")).await,
        subscribers: subscribers(server, "probe", &["feed/probe/#", "probe-fence/#"]).await,
        next: 1000,
    };
    (feed, rounds)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_offline_messages_are_withheld_once_the_right_is_revoked() {
    let (server, _) = acme(true).await;
    let (feed, mut rounds) = offline_setup(&server).await;
    for version in VERSIONS {
        disconnect(sleeper(&server, version).await, version).await;
        // Control: a message queued while offline is delivered on resume.
        let p = &mut rounds.publisher;
        let fence = format!("fence-{version:?}");
        publish(p, V5, "feed/0", QoS::AtLeastOnce, 1, b"control").await;
        publish(p, V5, "fence/0", QoS::AtLeastOnce, 2, fence.as_bytes()).await;
        let mut s = resume(&server, version).await;
        let seen = until_fence(&mut s, version, &fence).await;
        assert_eq!(seen, vec![("feed/0".to_owned(), "control".to_owned())]);
        disconnect(s, version).await;
        for id in 1..=3u16 {
            publish(
                p,
                V5,
                &format!("feed/{id}"),
                QoS::AtLeastOnce,
                10 + id,
                b"queued",
            )
            .await;
        }
    }
    let path = format!("/api/v1/tenants/acme/acl-rules/{feed}");
    server.api_ok(Method::DELETE, &path, None).await;
    let what = "subscribe rule deleted (offline case, live probe)";
    rounds
        .until_revoked("feed/probe/x", "probe-fence/x", what)
        .await;
    publish(
        &mut rounds.publisher,
        V5,
        "fence/1",
        QoS::AtLeastOnce,
        20,
        b"fence-last",
    )
    .await;
    for version in VERSIONS {
        let mut s = resume(&server, version).await;
        let seen = until_fence(&mut s, version, "fence-last").await;
        // (The 3.1.1 session also holds the 5.0 control's fence, queued while it was offline.)
        assert!(
            seen.iter().all(|(topic, _)| topic.starts_with("fence/")),
            "{version:?}: queued messages delivered after revocation: {seen:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inflight_qos1_resend_after_reconnect_is_rechecked() {
    let (server, _) = acme(true).await;
    let (feed, mut rounds) = offline_setup(&server).await;
    let mut dropped = Vec::new();
    for version in VERSIONS {
        let mut s = sleeper(&server, version).await;
        publish(
            &mut rounds.publisher,
            V5,
            "feed/1",
            QoS::AtLeastOnce,
            1,
            b"unacked",
        )
        .await;
        // Received and never acknowledged: it stays in flight.
        let first = support::raw::expect_publish(&mut s).await;
        assert_eq!((first.qos, first.dup), (QoS::AtLeastOnce, false));
        drop(s);
        // Control: a resumed session resends it (DUP) before anything else.
        let mut s = resume(&server, version).await;
        let again = support::raw::expect_publish(&mut s).await;
        assert_eq!(
            (again.packet_id, again.dup),
            (first.packet_id, true),
            "{version:?} control"
        );
        dropped.push((version, s));
    }
    drop(dropped);
    let path = format!("/api/v1/tenants/acme/acl-rules/{feed}");
    server.api_ok(Method::DELETE, &path, None).await;
    let what = "subscribe rule deleted (in-flight case, live probe)";
    rounds
        .until_revoked("feed/probe/x", "probe-fence/x", what)
        .await;
    // The resend comes first on resuming, before anything queued (such as this fence).
    publish(
        &mut rounds.publisher,
        V5,
        "fence/1",
        QoS::AtLeastOnce,
        30,
        b"fence-last",
    )
    .await;
    for version in VERSIONS {
        let mut s = resume(&server, version).await;
        let seen = until_fence(&mut s, version, "fence-last").await;
        assert_eq!(
            seen,
            vec![],
            "{version:?}: in-flight message resent after revocation"
        );
    }
}
