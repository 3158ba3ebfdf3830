//! Session life cycle as clients see it: Clean Session / Clean Start and Session Present, 5.0
//! Session Expiry, and the offline queue of a persistent session (bounded by
//! `limits.max_queued_messages`; QoS 0 kept only with `limits.queue_qos0_messages`).
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use rumqttc::v5::mqttbytes::QoS as Qos5;
use stratus_codec::{Disconnect, Packet, ProtocolVersion, QoS, ReasonCode};
use support::{TestServer, raw, v4, v5};
use tokio::time::{Instant, sleep_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v311_persistent_session_is_resumed_with_subscriptions_and_queued_messages() {
    let server = TestServer::start().await;
    let mut sub = v4::Conn::connect(v4::persistent(server.addr, "resume-v311")).await;
    assert!(!sub.session_present(), "a new session is not present");
    sub.subscribe("resume/v311", rumqttc::QoS::AtLeastOnce)
        .await;
    sub.disconnect().await;

    let mut publisher = v4::Conn::connect(v4::options(server.addr, "resume-v311-pub")).await;
    publisher.publish_numbered("resume/v311", 3).await;

    let mut sub = v4::Conn::connect(v4::persistent(server.addr, "resume-v311")).await;
    assert!(
        sub.session_present(),
        "the stored session must be reported present"
    );
    for i in 0..3 {
        let p = sub.expect_publish().await;
        assert_eq!(v4::text(&p), i.to_string());
        assert_eq!(p.qos, rumqttc::QoS::AtLeastOnce);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v311_clean_session_discards_the_stored_session_and_keeps_none() {
    let server = TestServer::start().await;
    let id = "clean-v311";
    let mut c = v4::Conn::connect(v4::persistent(server.addr, id)).await;
    c.subscribe("clean/v311", rumqttc::QoS::AtLeastOnce).await;
    c.disconnect().await;

    let c = v4::Conn::connect(v4::options(server.addr, id)).await;
    assert!(
        !c.session_present(),
        "Clean Session 1 always gets Session Present 0 [MQTT-3.2.2-1]"
    );
    c.disconnect().await;

    let mut c = v4::Conn::connect(v4::persistent(server.addr, id)).await;
    assert!(
        !c.session_present(),
        "neither the discarded session nor the clean one may be resumed"
    );
    // The old subscription went with the discarded session.
    let mut publisher = v4::Conn::connect(v4::options(server.addr, "clean-v311-pub")).await;
    publisher
        .publish("clean/v311", rumqttc::QoS::AtLeastOnce, false, "lost")
        .await;
    c.subscribe("clean/v311/marker", rumqttc::QoS::AtLeastOnce)
        .await;
    publisher
        .publish(
            "clean/v311/marker",
            rumqttc::QoS::AtLeastOnce,
            false,
            "marker",
        )
        .await;
    assert_eq!(v4::text(&c.expect_publish().await), "marker");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_clean_start_discards_the_session_and_its_queue() {
    let server = TestServer::start().await;
    let id = "clean-v5";
    let mut c = v5::Conn::connect(v5::persistent(server.addr, id, 60)).await;
    c.subscribe("clean/v5", Qos5::AtLeastOnce).await;
    c.disconnect().await;
    let mut publisher = v5::Conn::connect(v5::options(server.addr, "clean-v5-pub")).await;
    publisher
        .publish("clean/v5", Qos5::AtLeastOnce, false, "queued")
        .await;

    let mut opts = v5::options(server.addr, id);
    opts.set_session_expiry_interval(Some(60));
    let mut c = v5::Conn::connect(opts).await;
    assert!(!c.session_present(), "Clean Start 1 starts a new session");
    c.subscribe("clean/v5", Qos5::AtLeastOnce).await;
    publisher
        .publish("clean/v5", Qos5::AtLeastOnce, false, "fresh")
        .await;
    assert_eq!(
        v5::text(&c.expect_publish().await),
        "fresh",
        "the message queued for the discarded session must not be delivered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_session_without_expiry_ends_with_its_connection() {
    let server = TestServer::start().await;
    let mut opts = v5::options(server.addr, "noexpiry-v5");
    opts.set_clean_start(false);
    let mut c = v5::Conn::connect(opts.clone()).await;
    c.subscribe("noexpiry/v5", Qos5::AtLeastOnce).await;
    c.disconnect().await;
    let c = v5::Conn::connect(opts).await;
    assert!(
        !c.session_present(),
        "Session Expiry 0 (absent): the session ended with the connection"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_session_is_present_within_its_expiry_and_gone_after_it() {
    let server = TestServer::start().await;
    let early = v5::Conn::connect(v5::persistent(server.addr, "expiry-early", 2)).await;
    let late = v5::Conn::connect(v5::persistent(server.addr, "expiry-late", 2)).await;
    early.disconnect().await;
    late.disconnect().await;
    let offline_at = Instant::now();

    sleep_until(offline_at + Duration::from_secs(1)).await;
    let early = v5::Conn::connect(v5::persistent(server.addr, "expiry-early", 2)).await;
    assert!(
        early.session_present(),
        "1 s into a 2 s expiry the session must still exist"
    );

    sleep_until(offline_at + Duration::from_millis(2600)).await;
    let late = v5::Conn::connect(v5::persistent(server.addr, "expiry-late", 2)).await;
    assert!(
        !late.session_present(),
        "2.6 s after going offline a session with a 2 s expiry must be gone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_disconnect_with_session_expiry_zero_ends_the_session() {
    let server = TestServer::start().await;
    let id = "disc-expiry-v5";
    let v = ProtocolVersion::V5;
    let (mut c, _) = raw::open_ok(server.addr, raw::persistent_v5(id, 60)).await;
    raw::subscribe(&mut c, v, 1, "disc/expiry", QoS::AtLeastOnce).await;
    let mut disconnect = Disconnect::new(ReasonCode::Success);
    disconnect.properties.session_expiry_interval = Some(0);
    c.send_packet(&Packet::Disconnect(disconnect), v).await;
    assert!(
        c.expect_close(raw::WAIT).await.is_empty(),
        "the server closes after DISCONNECT"
    );

    let (_c, ack) = raw::open_ok(server.addr, raw::persistent_v5(id, 60)).await;
    assert!(
        !ack.session_present,
        "DISCONNECT set the expiry to 0: the session ended"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_queue_keeps_max_queued_messages_and_drops_the_rest() {
    let server = TestServer::start_with(|c| c.limits.max_queued_messages = 5).await;
    let mut sub = v5::Conn::connect(v5::persistent(server.addr, "bounded", 60)).await;
    sub.subscribe("bounded/q", Qos5::AtLeastOnce).await;
    sub.disconnect().await;

    let mut publisher = v5::Conn::connect(v5::options(server.addr, "bounded-pub")).await;
    publisher.publish_numbered("bounded/q", 8).await;

    let mut sub = v5::Conn::connect(v5::persistent(server.addr, "bounded", 60)).await;
    assert!(sub.session_present());
    for i in 0..5 {
        assert_eq!(
            v5::text(&sub.expect_publish().await),
            i.to_string(),
            "the first 5 messages are kept, in order"
        );
    }
    publisher
        .publish("bounded/q", Qos5::AtLeastOnce, false, "marker")
        .await;
    assert_eq!(
        v5::text(&sub.expect_publish().await),
        "marker",
        "messages beyond limits.max_queued_messages (5, 6, 7) must have been dropped"
    );
}

/// A persistent 5.0 subscriber (QoS 1) goes offline; two QoS 0 messages and a QoS 1 marker are
/// published; the subscriber resumes and returns the payloads it receives up to the marker.
async fn offline_payloads_up_to_marker(server: &TestServer, id: &str) -> Vec<(String, Qos5)> {
    let topic = format!("offline0/{id}");
    let mut sub = v5::Conn::connect(v5::persistent(server.addr, id, 60)).await;
    sub.subscribe(&topic, Qos5::AtLeastOnce).await;
    sub.disconnect().await;
    let mut publisher = v5::Conn::connect(v5::options(server.addr, &format!("{id}-pub"))).await;
    publisher
        .publish(&topic, Qos5::AtMostOnce, false, "q0-a")
        .await;
    publisher
        .publish(&topic, Qos5::AtMostOnce, false, "q0-b")
        .await;
    publisher
        .publish(&topic, Qos5::AtLeastOnce, false, "marker")
        .await;

    let mut sub = v5::Conn::connect(v5::persistent(server.addr, id, 60)).await;
    assert!(sub.session_present());
    let mut got = Vec::new();
    loop {
        let p = sub.expect_publish().await;
        got.push((v5::text(&p).to_owned(), p.qos));
        if v5::text(&p) == "marker" {
            return got;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos0_messages_are_not_queued_for_an_offline_session_by_default() {
    let server = TestServer::start().await;
    let got = offline_payloads_up_to_marker(&server, "q0-default").await;
    assert_eq!(got, [("marker".to_owned(), Qos5::AtLeastOnce)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos0_messages_are_queued_for_an_offline_session_when_enabled() {
    let server = TestServer::start_with(|c| c.limits.queue_qos0_messages = true).await;
    let got = offline_payloads_up_to_marker(&server, "q0-enabled").await;
    assert_eq!(
        got,
        [
            ("q0-a".to_owned(), Qos5::AtMostOnce),
            ("q0-b".to_owned(), Qos5::AtMostOnce),
            ("marker".to_owned(), Qos5::AtLeastOnce),
        ]
    );
}
