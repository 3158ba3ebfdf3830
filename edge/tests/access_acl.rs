//! ACL enforcement on every path (issue 4, item 4), rules created through the API in tenants
//! whose default is deny: publish (5.0 PUBACK/PUBREC 0x87; 3.1.1 acknowledged and dropped, the
//! connection stays open), subscribe (SUBACK 0x87 / 0x80), rule precedence, `${clientid}` and
//! `${username}` placeholders, retained delivery, will publication, resumed sessions, and the
//! `explain` endpoint agreeing with what the edge enforced.
//!
//! Absence is proved with fences: a message that must not arrive would have been routed before a
//! later marker to the same subscriber, so once the marker arrived, it would have too.
#![allow(clippy::unwrap_used)]

mod access;
mod support;

use std::time::Duration;

use access::{
    VERSIONS, anonymous, connected, device, persistent, publish, subscribe, subscribe_ack,
    subscribe_refused, until_fence, with_will,
};
use axum::http::Method;
use serde_json::json;
use stratus_codec::{Disconnect, Packet, ProtocolVersion, QoS, ReasonCode};
use support::{RawClient, TestServer};

const V5: ProtocolVersion = ProtocolVersion::V5;

/// A server with tenant `acme`: default deny, anonymous clients allowed (rules name them by
/// client id).
async fn acme() -> TestServer {
    let server = TestServer::start().await;
    server.add_tenant("acme", "deny", true).await;
    server
}

/// Allows `client_id` to `action` on `filter` in `acme`; returns the rule id.
async fn allow(server: &TestServer, client_id: &str, action: &str, filter: &str) -> String {
    server
        .add_rule(
            "acme",
            "allow",
            action,
            filter,
            json!({"client_id": client_id}),
        )
        .await
}

/// An anonymous `acme` client subscribed to `filter` at QoS 0.
async fn watcher(
    server: &TestServer,
    version: ProtocolVersion,
    id: &str,
    filter: &str,
) -> RawClient {
    let mut w = connected(server.addr, anonymous(version, id, "acme")).await;
    let granted = subscribe(&mut w, version, 1, filter, QoS::AtMostOnce).await;
    assert_eq!(granted, ReasonCode::Success, "{id} subscribing to {filter}");
    w
}

/// What a client hears for a publish the rules deny: 5.0 0x87; 3.1.1 a plain acknowledgement.
fn publish_denied(version: ProtocolVersion) -> ReasonCode {
    if version.is_v5() {
        ReasonCode::NotAuthorized
    } else {
        ReasonCode::Success
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denied_publish_is_refused_in_v5_dropped_in_v311_and_never_routed() {
    let server = acme().await;
    server
        .add_rule("acme", "allow", "publish", "open/#", json!({}))
        .await;
    for version in VERSIONS {
        allow(&server, &format!("watcher-{version:?}"), "subscribe", "#").await;
    }
    for version in VERSIONS {
        let w = format!("watcher-{version:?}");
        let mut watcher = watcher(&server, version, &w, "#").await;
        let mut p = connected(server.addr, anonymous(version, "pub", "acme")).await;
        let denied = publish_denied(version);
        let q1 = publish(&mut p, version, "closed/a", QoS::AtLeastOnce, 1, b"q1").await;
        assert_eq!(q1, denied, "{version:?} QoS 1");
        let q2 = publish(&mut p, version, "closed/a", QoS::ExactlyOnce, 2, b"q2").await;
        assert_eq!(q2, denied, "{version:?} QoS 2");
        publish(&mut p, version, "closed/a", QoS::AtMostOnce, 0, b"q0").await;
        // The connection stays open and publishes where it may; its marker is the first thing
        // the watcher receives.
        let ok = publish(&mut p, version, "open/a", QoS::AtLeastOnce, 3, b"fence").await;
        assert!(!ok.is_error(), "{version:?}: {ok:?}");
        assert_eq!(until_fence(&mut watcher, version, "fence").await, vec![]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denied_subscribe_is_refused_and_receives_nothing() {
    let server = acme().await;
    server
        .add_rule("acme", "allow", "subscribe", "public/#", json!({}))
        .await;
    allow(&server, "pub", "publish", "#").await;
    let mut p = connected(server.addr, anonymous(V5, "pub", "acme")).await;
    for version in VERSIONS {
        let mut s = connected(server.addr, anonymous(version, "sub", "acme")).await;
        let refused = subscribe(&mut s, version, 1, "private/#", QoS::AtLeastOnce).await;
        assert_eq!(refused, subscribe_refused(version), "{version:?}");
        let all = subscribe(&mut s, version, 2, "#", QoS::AtLeastOnce).await;
        assert_eq!(
            all,
            subscribe_refused(version),
            "{version:?}: # reaches private/"
        );
        let ok = subscribe(&mut s, version, 3, "public/#", QoS::AtMostOnce).await;
        assert_eq!(ok, ReasonCode::Success, "{version:?}");
        publish(&mut p, V5, "private/x", QoS::AtLeastOnce, 1, b"secret").await;
        publish(&mut p, V5, "public/x", QoS::AtLeastOnce, 2, b"fence").await;
        assert_eq!(until_fence(&mut s, version, "fence").await, vec![]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deny_wins_over_allow_at_equal_priority_and_higher_priority_decides() {
    let server = acme().await;
    let rule = |effect: &'static str, action: &'static str, filter: &'static str, priority: i32| {
        let server = &server;
        async move {
            server
                .add_rule(
                    "acme",
                    effect,
                    action,
                    filter,
                    json!({"priority": priority}),
                )
                .await
        }
    };
    rule("allow", "publish", "a/b", 0).await;
    rule("deny", "publish", "a/#", 0).await;
    rule("allow", "publish", "x/b", 5).await;
    rule("deny", "publish", "x/#", 0).await;
    rule("allow", "subscribe", "s/#", 0).await;
    rule("deny", "subscribe", "s/#", 0).await;
    rule("deny", "subscribe", "t/#", -1).await;
    rule("allow", "subscribe", "t/#", 0).await;
    for version in VERSIONS {
        let mut c = connected(server.addr, anonymous(version, "c", "acme")).await;
        if version.is_v5() {
            let cases = [
                ("a/b", false),
                ("a/c", false),
                ("x/b", true),
                ("x/c", false),
            ];
            for (n, (topic, allowed)) in cases.into_iter().enumerate() {
                let r = publish(&mut c, version, topic, QoS::AtLeastOnce, n as u16 + 1, b"m").await;
                assert_eq!(!r.is_error(), allowed, "publish {topic}: {r:?}");
            }
        }
        let s = subscribe(&mut c, version, 10, "s/#", QoS::AtMostOnce).await;
        assert_eq!(
            s,
            subscribe_refused(version),
            "{version:?}: equal priority, deny wins"
        );
        let t = subscribe(&mut c, version, 11, "t/#", QoS::AtMostOnce).await;
        assert_eq!(t, ReasonCode::Success, "{version:?}: higher priority allow");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_subscription_says_why_and_its_code_is_configurable() {
    // Default: 0x80 with a reason string naming the filter (the client asked for problem
    // information, as 5.0 clients do unless they opt out).
    let server = acme().await;
    let mut c = connected(server.addr, anonymous(V5, "why", "acme")).await;
    let ack = subscribe_ack(&mut c, V5, 1, "secret/#").await;
    assert_eq!(ack.reasons, vec![ReasonCode::UnspecifiedError]);
    let why = ack.properties.reason_string.as_deref().unwrap_or_default();
    assert!(
        why.contains("not authorized") && why.contains("secret/#"),
        "{why:?}"
    );
    // `access.subscribe_denied = "not_authorized"`: 0x87 for 5.0, still 0x80 for 3.1.1.
    let strict = TestServer::start_with(|c| {
        c.access.subscribe_denied = stratus_edge::config::SubscribeDenied::NotAuthorized;
    })
    .await;
    strict.add_tenant("acme", "deny", true).await;
    for (version, code) in [
        (V5, ReasonCode::NotAuthorized),
        (ProtocolVersion::V3_1_1, ReasonCode::UnspecifiedError),
    ] {
        let mut c = connected(strict.addr, anonymous(version, "strict", "acme")).await;
        let ack = subscribe_ack(&mut c, version, 1, "secret/#").await;
        assert_eq!(ack.reasons, vec![code], "{version:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placeholders_expand_to_the_verified_identity_and_never_widen() {
    let server = acme().await;
    server.add_device("acme", "u7", "pw", None).await;
    server
        .add_rule("acme", "allow", "all", "devices/${clientid}/#", json!({}))
        .await;
    server
        .add_rule(
            "acme",
            "allow",
            "subscribe",
            "users/${username}/#",
            json!({}),
        )
        .await;
    for version in VERSIONS {
        let refused = subscribe_refused(version);
        let mut c = connected(server.addr, device(version, "c-7", "u7", "acme", "pw")).await;
        if version.is_v5() {
            let own = publish(&mut c, V5, "devices/c-7/t", QoS::AtLeastOnce, 1, b"m").await;
            assert!(!own.is_error(), "{own:?}");
            let other = publish(&mut c, V5, "devices/c-8/t", QoS::AtLeastOnce, 2, b"m").await;
            assert_eq!(other, ReasonCode::NotAuthorized);
        }
        let cases = [
            ("devices/c-7/#", ReasonCode::Success),
            ("devices/c-8/#", refused),
            ("devices/+/#", refused),
            ("users/u7/#", ReasonCode::Success),
            ("users/u8/#", refused),
            ("users/+/#", refused),
        ];
        for (n, (filter, expected)) in cases.into_iter().enumerate() {
            let got = subscribe(&mut c, version, n as u16 + 10, filter, QoS::AtMostOnce).await;
            assert_eq!(got, expected, "{version:?} c-7/u7 subscribing to {filter}");
        }
        // A user name that was not verified never fills `${username}`: `ghost` has no device,
        // so it connects as an anonymous client.
        let ghost = access::login(version, "ghost", Some("ghost@acme"), None);
        let mut g = connected(server.addr, ghost).await;
        let got = subscribe(&mut g, version, 1, "users/ghost/#", QoS::AtMostOnce).await;
        assert_eq!(got, refused, "{version:?}: unverified user name");
        // An identity holding a wildcard or a separator matches no level.
        // (Substituted as text, `devices/${clientid}/#` would read `devices/+/#` or
        // `devices/a/b/#` and cover these filters.)
        for (n, id) in ["+", "a/b"].into_iter().enumerate() {
            let mut c = connected(server.addr, anonymous(version, id, "acme")).await;
            let filter = format!("devices/{id}/x");
            let got = subscribe(&mut c, version, n as u16 + 1, &filter, QoS::AtMostOnce).await;
            assert_eq!(
                got, refused,
                "{version:?}: client id {id:?} subscribing to {filter}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_messages_under_a_denied_subtree_are_not_delivered_on_subscribe() {
    let server = acme().await;
    allow(&server, "pub", "publish", "#").await;
    server
        .add_rule("acme", "allow", "subscribe", "#", json!({}))
        .await;
    server
        .add_rule("acme", "deny", "subscribe", "private/#", json!({}))
        .await;
    let spy = json!({"client_id": "spy", "priority": 10});
    server
        .add_rule("acme", "allow", "subscribe", "#", spy)
        .await;
    let mut p = connected(server.addr, anonymous(V5, "pub", "acme")).await;
    for (n, (topic, payload)) in [
        ("public/a", "pa"),
        ("private/b", "pb"),
        ("private/c/d", "pcd"),
    ]
    .into_iter()
    .enumerate()
    {
        let mut m = support::raw::publish_packet(
            topic,
            QoS::AtLeastOnce,
            Some(n as u16 + 1),
            payload.as_bytes(),
        );
        m.retain = true;
        p.send_packet(&Packet::Publish(m), V5).await;
        assert!(matches!(
            support::raw::expect_packet(&mut p).await,
            Packet::PubAck(_)
        ));
    }
    // Control: a client a higher-priority rule lets read everything gets all three.
    let mut spy = watcher(&server, V5, "spy", "#").await;
    publish(&mut p, V5, "public/fence", QoS::AtLeastOnce, 9, b"fence").await;
    assert_eq!(until_fence(&mut spy, V5, "fence").await.len(), 3);
    for version in VERSIONS {
        let mut s = connected(server.addr, anonymous(version, "sub", "acme")).await;
        let direct = subscribe(&mut s, version, 1, "private/+", QoS::AtMostOnce).await;
        assert_eq!(direct, subscribe_refused(version), "{version:?}");
        // `#` is allowed (the deny rule covers only part of it): each message is checked.
        let all = subscribe(&mut s, version, 2, "#", QoS::AtMostOnce).await;
        assert_eq!(all, ReasonCode::Success, "{version:?}");
        publish(&mut p, V5, "private/live", QoS::AtLeastOnce, 10, b"live").await;
        publish(&mut p, V5, "public/fence", QoS::AtLeastOnce, 11, b"fence").await;
        let seen = until_fence(&mut s, version, "fence").await;
        assert_eq!(
            seen,
            vec![("public/a".to_owned(), "pa".to_owned())],
            "{version:?}: only the retained message outside private/"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn will_is_checked_when_published_not_only_at_connect() {
    let server = acme().await;
    allow(&server, "watcher", "subscribe", "will/#").await;
    allow(&server, "fencer", "publish", "will/fence").await;
    let will_rule = server
        .add_rule("acme", "allow", "publish", "will/#", json!({}))
        .await;
    let mut watcher = watcher(&server, V5, "watcher", "will/#").await;
    let mut fencer = connected(server.addr, anonymous(V5, "fencer", "acme")).await;

    // Control: while the rule stands, an abnormal close publishes the will.
    for (n, version) in VERSIONS.into_iter().enumerate() {
        let id = format!("ok-{version:?}");
        let will = format!("will/{id}");
        let connect = with_will(anonymous(version, &id, "acme"), &will, b"gone");
        close_abnormally(connected(server.addr, connect).await, version).await;
        let marker = format!("fence-{n}");
        publish(
            &mut fencer,
            V5,
            "will/fence",
            QoS::AtLeastOnce,
            1,
            marker.as_bytes(),
        )
        .await;
        let seen = until_fence(&mut watcher, V5, &marker).await;
        assert_eq!(seen, vec![(will, "gone".to_owned())], "{version:?} control");
    }

    // The right is revoked between CONNECT and the close: the will is not published.
    let mut dying = Vec::new();
    for version in VERSIONS {
        let id = format!("dying-{version:?}");
        let connect = with_will(
            anonymous(version, &id, "acme"),
            &format!("will/{id}"),
            b"gone",
        );
        dying.push((version, connected(server.addr, connect).await));
    }
    let path = format!("/api/v1/tenants/acme/acl-rules/{will_rule}");
    server.api_ok(Method::DELETE, &path, None).await;
    // Wait until the edge applied the change: a publish on the revoked right is refused.
    let mut probe = connected(server.addr, anonymous(V5, "probe", "acme")).await;
    let stopwatch = access::Stopwatch::start("rule deleted -> publish refused (will test)");
    for id in 1.. {
        let reason = publish(&mut probe, V5, "will/probe", QoS::AtLeastOnce, id, b"p").await;
        if reason == ReasonCode::NotAuthorized {
            break;
        }
        assert!(
            !stopwatch.expired(),
            "the rule deletion never reached the edge"
        );
    }
    stopwatch.stop();
    for (version, c) in dying {
        close_abnormally(c, version).await;
    }
    publish(
        &mut fencer,
        V5,
        "will/fence",
        QoS::AtLeastOnce,
        2,
        b"fence-last",
    )
    .await;
    let seen = until_fence(&mut watcher, V5, "fence-last").await;
    assert!(
        seen.iter().all(|(topic, _)| topic == "will/probe"),
        "a will was published after its right was revoked: {seen:?}"
    );
}

/// Ends a connection in a way that publishes its will, and waits until the server closed it
/// (by then the will was published or withheld): 5.0 DISCONNECT 0x04; 3.1.1 a second CONNECT,
/// a protocol violation the server closes the connection for.
async fn close_abnormally(mut c: RawClient, version: ProtocolVersion) {
    if version.is_v5() {
        let disconnect = Disconnect::new(ReasonCode::DisconnectWithWill);
        c.send_packet(&Packet::Disconnect(disconnect), version)
            .await;
    } else {
        let again = support::raw::connect_packet(version, "again", true);
        c.send_packet(&Packet::Connect(Box::new(again)), version)
            .await;
    }
    c.expect_close(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumed_session_receives_nothing_on_a_subscription_whose_right_was_removed_offline() {
    let server = acme().await;
    allow(&server, "pub", "publish", "#").await;
    let mut feed_rules = Vec::new();
    for version in VERSIONS {
        let id = format!("sleeper-{version:?}");
        feed_rules.push(allow(&server, &id, "subscribe", "feed/#").await);
        allow(&server, &id, "subscribe", "fence/#").await;
    }
    for (version, feed_rule) in VERSIONS.into_iter().zip(feed_rules) {
        let id = format!("sleeper-{version:?}");
        let connect = || persistent(anonymous(version, &id, "acme"));
        let mut s = connected(server.addr, connect()).await;
        assert_eq!(
            subscribe(&mut s, version, 1, "feed/#", QoS::AtLeastOnce).await,
            ReasonCode::GrantedQoS1
        );
        assert_eq!(
            subscribe(&mut s, version, 2, "fence/#", QoS::AtLeastOnce).await,
            ReasonCode::GrantedQoS1
        );
        s.send_packet(
            &Packet::Disconnect(Disconnect::new(ReasonCode::Success)),
            version,
        )
        .await;
        s.expect_close(Duration::from_secs(5)).await;

        // Queued while offline, then the right goes.
        let mut p = connected(server.addr, anonymous(V5, "pub", "acme")).await;
        publish(&mut p, V5, "feed/queued", QoS::AtLeastOnce, 1, b"queued").await;
        server
            .api_ok(
                Method::DELETE,
                &format!("/api/v1/tenants/acme/acl-rules/{feed_rule}"),
                None,
            )
            .await;
        wait_for_rules(&server, &id).await;
        publish(&mut p, V5, "feed/later", QoS::AtLeastOnce, 2, b"later").await;
        publish(&mut p, V5, "fence/a", QoS::AtLeastOnce, 3, b"fence-1").await;

        let mut s = connected(server.addr, connect()).await;
        assert_eq!(
            until_fence(&mut s, version, "fence-1").await,
            vec![],
            "{version:?}"
        );
        publish(&mut p, V5, "feed/live", QoS::AtLeastOnce, 4, b"live").await;
        publish(&mut p, V5, "fence/b", QoS::AtLeastOnce, 5, b"fence-2").await;
        assert_eq!(
            until_fence(&mut s, version, "fence-2").await,
            vec![],
            "{version:?}"
        );
        let again = subscribe(&mut s, version, 3, "feed/#", QoS::AtLeastOnce).await;
        assert_eq!(again, subscribe_refused(version), "{version:?}");
    }
}

/// Waits until the edge applied every rule change made so far: it reloads all of a tenant's
/// rules on each change, in order, so once a rule added now (allowing `marker/<tag>`, a topic
/// no other rule allows) is enforced, the earlier changes are too.
async fn wait_for_rules(server: &TestServer, tag: &str) {
    let topic = format!("marker/{tag}");
    allow(server, "probe", "publish", &topic).await;
    let mut probe = connected(server.addr, anonymous(V5, "probe", "acme")).await;
    let stopwatch = access::Stopwatch::start("rule added -> publish allowed");
    for id in 1.. {
        let reason = publish(&mut probe, V5, &topic, QoS::AtLeastOnce, id, b"m").await;
        if !reason.is_error() {
            break;
        }
        assert!(
            !stopwatch.expired(),
            "the rule change never reached the edge"
        );
    }
    stopwatch.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_agrees_with_what_the_edge_enforced() {
    let server = acme().await;
    let telemetry = server
        .add_rule("acme", "allow", "publish", "telemetry/#", json!({}))
        .await;
    let secret = server
        .add_rule("acme", "deny", "publish", "telemetry/secret/#", json!({}))
        .await;
    let own = server
        .add_rule("acme", "allow", "subscribe", "cmd/${clientid}/#", json!({}))
        .await;
    let mut c = connected(server.addr, anonymous(V5, "c1", "acme")).await;
    let cases = [
        ("publish", "telemetry/a", Some(&telemetry)),
        ("publish", "telemetry/secret/x", Some(&secret)),
        ("publish", "other/x", None),
        ("subscribe", "cmd/c1/#", Some(&own)),
        ("subscribe", "cmd/c2/#", None),
        ("subscribe", "cmd/+/#", None),
    ];
    for (n, (action, topic, rule)) in cases.into_iter().enumerate() {
        let id = n as u16 + 1;
        let allowed = if action == "publish" {
            !publish(&mut c, V5, topic, QoS::AtLeastOnce, id, b"m")
                .await
                .is_error()
        } else {
            !subscribe(&mut c, V5, id, topic, QoS::AtMostOnce)
                .await
                .is_error()
        };
        let answer = server
            .api_ok(
                Method::POST,
                "/api/v1/tenants/acme/acl-rules/explain",
                Some(json!({"client_id": "c1", "action": action, "topic": topic})),
            )
            .await;
        let decision = if allowed { "allow" } else { "deny" };
        assert_eq!(
            answer["decision"], decision,
            "{action} {topic}: edge said {decision}, explain {answer}"
        );
        assert_eq!(
            answer["rule"].as_str(),
            rule.map(String::as_str),
            "{action} {topic}: {answer}"
        );
    }
}
