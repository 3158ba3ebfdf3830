//! Will messages: published when a connection ends abnormally (dropped TCP connection, keep-alive
//! expiry, 5.0 DISCONNECT 0x04), never after a normal DISCONNECT; 5.0 Will Delay (published after
//! the delay or when the session ends first, cancelled by reconnecting); will properties and the
//! will's QoS and RETAIN flag carried into the published message.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use bytes::Bytes;
use rumqttc::v5::mqttbytes::QoS as Qos5;
use rumqttc::v5::mqttbytes::v5::LastWillProperties;
use stratus_codec::{ProtocolVersion, QoS, ReasonCode};
use support::{TestServer, raw, v4, v5};
use tokio::time::{Instant, sleep_until};

/// A 5.0 client subscribed (QoS 2) to `topic`, watching for the will.
async fn watcher(server: &TestServer, id: &str, topic: &str) -> v5::Conn {
    let mut w = v5::Conn::connect(v5::options(server.addr, id)).await;
    w.subscribe(topic, Qos5::ExactlyOnce).await;
    w
}

/// Publishes `marker` to `topic` and asserts it is the next thing `w` receives: nothing (no will)
/// was published to `topic` before.
async fn assert_no_will_before_marker(server: &TestServer, w: &mut v5::Conn, topic: &str) {
    let mut p = v5::Conn::connect(v5::options(server.addr, &format!("{topic}-marker"))).await;
    p.publish(topic, Qos5::AtLeastOnce, false, "marker").await;
    let got = w.expect_publish().await;
    assert_eq!(v5::text(&got), "marker", "a will was published: {got:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v311_will_is_published_when_the_connection_drops() {
    let server = TestServer::start().await;
    let mut w = watcher(&server, "drop-v311-w", "will/drop-v311").await;
    let opts = v4::with_will(
        v4::options(server.addr, "drop-v311"),
        "will/drop-v311",
        "gone",
        rumqttc::QoS::AtLeastOnce,
        false,
    );
    v4::Conn::connect(opts).await.drop_connection().await;
    let will = w.expect_publish().await;
    assert_eq!(v5::topic(&will), "will/drop-v311");
    assert_eq!(v5::text(&will), "gone");
    assert_eq!(will.qos, Qos5::AtLeastOnce, "delivered at the will's QoS");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_will_is_published_when_the_connection_drops() {
    let server = TestServer::start().await;
    let mut w = watcher(&server, "drop-v5-w", "will/drop-v5").await;
    let opts = v5::with_will(
        v5::options(server.addr, "drop-v5"),
        "will/drop-v5",
        "gone",
        Qos5::ExactlyOnce,
        false,
        None,
    );
    v5::Conn::connect(opts).await.drop_connection().await;
    let will = w.expect_publish().await;
    assert_eq!(v5::text(&will), "gone");
    assert_eq!(will.qos, Qos5::ExactlyOnce);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn will_is_published_when_keep_alive_expires() {
    let server = TestServer::start().await;
    let mut w = watcher(&server, "ka-will-w", "will/keepalive").await;
    let mut connect = raw::connect_packet(ProtocolVersion::V3_1_1, "ka-will", true);
    connect.keep_alive = 1;
    connect.will = Some(raw::will(
        "will/keepalive",
        b"timed out",
        QoS::AtLeastOnce,
        false,
    ));
    let (mut silent, _) = raw::open_ok(server.addr, connect).await;
    let connected = Instant::now();

    let will = w.expect_publish().await;
    let elapsed = connected.elapsed();
    assert_eq!(v5::text(&will), "timed out");
    assert!(
        elapsed >= Duration::from_millis(1400) && elapsed < Duration::from_secs(3),
        "keep-alive 1 s: the will goes out at about 1.5 s, took {elapsed:?}"
    );
    silent.expect_close(raw::WAIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v311_will_is_not_published_after_disconnect() {
    let server = TestServer::start().await;
    let mut w = watcher(&server, "clean-v311-w", "will/clean-v311").await;
    let opts = v4::with_will(
        v4::options(server.addr, "clean-v311"),
        "will/clean-v311",
        "gone",
        rumqttc::QoS::AtLeastOnce,
        false,
    );
    v4::Conn::connect(opts).await.disconnect().await;
    assert_no_will_before_marker(&server, &mut w, "will/clean-v311").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_will_is_not_published_after_normal_disconnect() {
    let server = TestServer::start().await;
    let mut w = watcher(&server, "clean-v5-w", "will/clean-v5").await;
    let opts = v5::with_will(
        v5::persistent(server.addr, "clean-v5", 30),
        "will/clean-v5",
        "gone",
        Qos5::AtLeastOnce,
        false,
        None,
    );
    v5::Conn::connect(opts).await.disconnect().await;
    assert_no_will_before_marker(&server, &mut w, "will/clean-v5").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_disconnect_with_will_message_publishes_the_will() {
    let server = TestServer::start().await;
    let mut w = watcher(&server, "disc04-w", "will/disc04").await;
    let mut connect = raw::connect_packet(ProtocolVersion::V5, "disc04", true);
    connect.will = Some(raw::will(
        "will/disc04",
        b"asked for",
        QoS::AtLeastOnce,
        false,
    ));
    let (mut c, _) = raw::open_ok(server.addr, connect).await;
    raw::disconnect_v5(&mut c, ReasonCode::DisconnectWithWill).await;
    c.expect_close(raw::WAIT).await;
    assert_eq!(v5::text(&w.expect_publish().await), "asked for");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_delayed_will_is_published_after_the_delay() {
    let server = TestServer::start().await;
    let mut w = watcher(&server, "delay-w", "will/delay").await;
    let opts = v5::with_will(
        v5::persistent(server.addr, "delay", 30),
        "will/delay",
        "late",
        Qos5::AtLeastOnce,
        false,
        Some(v5::will_delay(1)),
    );
    let c = v5::Conn::connect(opts).await;
    let dropped = Instant::now();
    c.drop_connection().await;

    let will = w.expect_publish().await;
    let elapsed = dropped.elapsed();
    assert_eq!(v5::text(&will), "late");
    assert!(
        elapsed >= Duration::from_millis(950) && elapsed < Duration::from_secs(3),
        "Will Delay 1 s: published after about 1 s, took {elapsed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_delayed_will_is_cancelled_by_reconnecting_within_the_delay() {
    let server = TestServer::start().await;
    let mut w = watcher(&server, "cancel-w", "will/cancel").await;
    let opts = v5::with_will(
        v5::persistent(server.addr, "cancel", 30),
        "will/cancel",
        "should not",
        Qos5::AtLeastOnce,
        false,
        Some(v5::will_delay(1)),
    );
    let c = v5::Conn::connect(opts).await;
    let dropped = Instant::now();
    c.drop_connection().await;
    let back = v5::Conn::connect(v5::persistent(server.addr, "cancel", 30)).await;
    assert!(back.session_present());
    assert!(
        dropped.elapsed() < Duration::from_secs(1),
        "reconnected too late for this test"
    );

    // Let the delay pass, then show nothing was published in the meantime.
    sleep_until(dropped + Duration::from_millis(1600)).await;
    assert_no_will_before_marker(&server, &mut w, "will/cancel").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_will_is_published_when_the_session_ends_before_the_will_delay() {
    let server = TestServer::start().await;
    let mut w = watcher(&server, "expire-w", "will/expire").await;
    let opts = v5::with_will(
        v5::persistent(server.addr, "expire", 1),
        "will/expire",
        "session over",
        Qos5::AtLeastOnce,
        false,
        Some(v5::will_delay(60)),
    );
    let c = v5::Conn::connect(opts).await;
    let dropped = Instant::now();
    c.drop_connection().await;

    let will = w.expect_publish().await;
    let elapsed = dropped.elapsed();
    assert_eq!(v5::text(&will), "session over");
    assert!(
        elapsed >= Duration::from_millis(950) && elapsed < Duration::from_secs(3),
        "Session Expiry 1 s < Will Delay 60 s: published when the session ends, took {elapsed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_will_properties_are_forwarded_with_the_will() {
    let server = TestServer::start().await;
    let mut w = watcher(&server, "props-w", "will/props").await;
    let user_properties = vec![
        ("k".to_owned(), "1".to_owned()),
        ("a".to_owned(), "2".to_owned()),
        ("k".to_owned(), "3".to_owned()),
    ];
    let properties = LastWillProperties {
        payload_format_indicator: Some(1),
        message_expiry_interval: Some(100),
        content_type: Some("text/plain".to_owned()),
        response_topic: Some("will/props/reply".to_owned()),
        correlation_data: Some(Bytes::from_static(b"\x00corr\xff")),
        user_properties: user_properties.clone(),
        ..v5::will_properties()
    };
    let opts = v5::with_will(
        v5::options(server.addr, "props"),
        "will/props",
        "bye",
        Qos5::AtLeastOnce,
        false,
        Some(properties),
    );
    v5::Conn::connect(opts).await.drop_connection().await;

    let will = w.expect_publish().await;
    let props = will
        .properties
        .expect("the will's properties must be forwarded");
    assert_eq!(props.content_type.as_deref(), Some("text/plain"));
    assert_eq!(props.response_topic.as_deref(), Some("will/props/reply"));
    assert_eq!(
        props.correlation_data.as_deref(),
        Some(&b"\x00corr\xff"[..])
    );
    assert_eq!(
        props.user_properties, user_properties,
        "user properties in order"
    );
    assert_eq!(props.payload_format_indicator, Some(1));
    let expiry = props
        .message_expiry_interval
        .expect("remaining message expiry");
    assert!(
        (95..=100).contains(&expiry),
        "remaining expiry {expiry} s of 100 s"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn will_with_retain_becomes_the_retained_message_of_its_topic() {
    let server = TestServer::start().await;
    let mut w = v4::Conn::connect(v4::options(server.addr, "retain-w")).await;
    w.subscribe("will/retained", rumqttc::QoS::AtLeastOnce)
        .await;
    let opts = v4::with_will(
        v4::options(server.addr, "retain"),
        "will/retained",
        "last words",
        rumqttc::QoS::AtLeastOnce,
        true,
    );
    v4::Conn::connect(opts).await.drop_connection().await;
    let live = w.expect_publish().await;
    assert_eq!(v4::text(&live), "last words");
    assert!(
        !live.retain,
        "3.1.1: RETAIN is 0 for an existing subscription [MQTT-3.3.1-9]"
    );

    let mut later = v4::Conn::connect(v4::options(server.addr, "retain-later")).await;
    later
        .subscribe("will/retained", rumqttc::QoS::AtLeastOnce)
        .await;
    let retained = later.expect_publish().await;
    assert_eq!(v4::text(&retained), "last words");
    assert!(
        retained.retain,
        "sent as a retained message to a new subscriber"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn will_is_published_when_the_server_closes_for_a_protocol_error() {
    let server = TestServer::start().await;
    let mut w = watcher(&server, "violation-w", "will/violation").await;
    let mut connect = raw::connect_packet(ProtocolVersion::V5, "violation", true);
    connect.will = Some(raw::will(
        "will/violation",
        b"broke a rule",
        QoS::AtLeastOnce,
        false,
    ));
    let (mut c, _) = raw::open_ok(server.addr, connect.clone()).await;
    c.send_packet(
        &stratus_codec::Packet::Connect(Box::new(connect)),
        ProtocolVersion::V5,
    )
    .await;
    c.expect_close(raw::WAIT).await;
    assert_eq!(v5::text(&w.expect_publish().await), "broke a rule");
}

/// The will's Message Expiry Interval is "sent as the Publication Expiry Interval when the Server
/// publishes the Will Message" (MQTT 5.0 section 3.1.3.2.4): its lifetime starts at publication,
/// however long the client was connected before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_will_message_expiry_starts_when_the_will_is_published() {
    let server = TestServer::start().await;
    let mut w = watcher(&server, "will-expiry-w", "will/expiry").await;
    let properties = LastWillProperties {
        message_expiry_interval: Some(1),
        ..v5::will_properties()
    };
    let opts = v5::with_will(
        v5::options(server.addr, "will-expiry"),
        "will/expiry",
        "still fresh",
        Qos5::AtLeastOnce,
        false,
        Some(properties),
    );
    let c = v5::Conn::connect(opts).await;
    let connected = Instant::now();
    // Stay connected longer than the will's 1 s lifetime.
    sleep_until(connected + Duration::from_millis(1500)).await;
    c.drop_connection().await;

    let will = w.next_publish(raw::WAIT).await.unwrap_or_else(|| {
        panic!("no will within 5 s: it was dropped as expired, though its 1 s lifetime starts at publication")
    });
    assert_eq!(v5::text(&will), "still fresh");
    assert_eq!(
        will.properties.and_then(|p| p.message_expiry_interval),
        Some(1),
        "forwarded with the will's full Message Expiry Interval"
    );
}
