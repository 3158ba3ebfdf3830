//! MQTT 5.0 message features: Message Expiry Interval (dropped once expired, forwarded with the
//! time left), Subscription Identifiers (every matching subscription's id on one PUBLISH, and
//! only those), No Local, forwarded properties (user properties in order, payload format, content
//! type, response topic, correlation data), and PUBACK reason codes with reason strings.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use bytes::Bytes;
use rumqttc::v5::mqttbytes::v5::{Filter, PubAckReason, PublishProperties, RetainForwardRule};
use support::TestServer;
use support::clients::{Q5, V5Client, filter5, topic5};

/// Connects `id` with a session that outlives the connection by a minute.
async fn persistent(server: &TestServer, id: &str, clean_start: bool) -> V5Client {
    V5Client::connect_with(server.addr, id, |o| {
        o.set_clean_start(clean_start);
        o.set_session_expiry_interval(Some(60));
    })
    .await
}

fn expiring(secs: u32) -> PublishProperties {
    PublishProperties {
        message_expiry_interval: Some(secs),
        ..Default::default()
    }
}

fn ids(p: &rumqttc::v5::mqttbytes::v5::Publish) -> Vec<usize> {
    let mut ids = p
        .properties
        .as_ref()
        .map(|pr| pr.subscription_identifiers.clone())
        .unwrap_or_default();
    ids.sort_unstable();
    ids
}

/// Publishes one QoS 1 message with `properties` and returns what a subscriber received.
async fn forwarded(id: &str, properties: PublishProperties) -> rumqttc::v5::mqttbytes::v5::Publish {
    let server = TestServer::start().await;
    let topic = format!("{id}/t");
    let mut sub = V5Client::connect(server.addr, &format!("{id}-sub")).await;
    sub.subscribe(&topic, Q5::AtLeastOnce).await;
    let mut publisher = V5Client::connect(server.addr, &format!("{id}-pub")).await;
    publisher
        .publish_with(&topic, Q5::AtLeastOnce, false, "payload", properties)
        .await;
    assert_eq!(publisher.puback().await.reason, PubAckReason::Success);
    let p = sub.recv().await;
    assert_eq!(
        (topic5(&p), &p.payload[..]),
        (topic.as_str(), &b"payload"[..])
    );
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_that_expires_while_the_session_is_offline_is_dropped() {
    let server = TestServer::start().await;
    let mut sub = persistent(&server, "exp-sub", true).await;
    sub.subscribe("exp/t", Q5::AtLeastOnce).await;
    sub.disconnect().await;

    let mut publisher = V5Client::connect(server.addr, "exp-pub").await;
    publisher
        .publish_with("exp/t", Q5::AtLeastOnce, false, "short-lived", expiring(1))
        .await;
    publisher.puback().await;
    publisher.publish_acked("exp/t", false, "no expiry").await;
    // Sleeping is the point here: the 1 s expiry must run out while the session is offline.
    tokio::time::sleep(Duration::from_millis(2_000)).await;

    let mut sub = persistent(&server, "exp-sub", false).await;
    assert!(sub.connack.session_present);
    let p = sub.recv().await;
    assert_eq!(
        &p.payload[..],
        b"no expiry",
        "the expired message must not be delivered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_delivered_within_its_expiry_carries_the_remaining_interval() {
    let server = TestServer::start().await;
    let mut sub = persistent(&server, "rem-sub", true).await;
    sub.subscribe("rem/t", Q5::AtLeastOnce).await;
    sub.disconnect().await;

    let mut publisher = V5Client::connect(server.addr, "rem-pub").await;
    publisher
        .publish_with("rem/t", Q5::AtLeastOnce, false, "m", expiring(10))
        .await;
    publisher.puback().await;
    // Let more than a second of the interval pass while the message waits.
    tokio::time::sleep(Duration::from_millis(1_200)).await;

    let mut sub = persistent(&server, "rem-sub", false).await;
    let p = sub.recv().await;
    let left = p
        .properties
        .as_ref()
        .and_then(|pr| pr.message_expiry_interval);
    assert!(
        matches!(left, Some(1..=9)),
        "remaining expiry must be below the original 10 s: {left:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_subscriptions_give_one_publish_with_every_identifier() {
    let server = TestServer::start().await;
    let mut sub = V5Client::connect(server.addr, "sid-sub").await;
    sub.subscribe_filters(vec![Filter::new("sid/#", Q5::AtLeastOnce)], Some(1))
        .await;
    sub.subscribe_filters(vec![Filter::new("sid/a", Q5::AtLeastOnce)], Some(2))
        .await;
    sub.subscribe("fence/sid", Q5::AtLeastOnce).await;
    let mut publisher = V5Client::connect(server.addr, "sid-pub").await;
    publisher.publish_acked("sid/a", false, "both").await;
    publisher.publish_acked("fence/sid", false, "fence").await;

    let got = sub.recv_until("fence/sid").await;
    assert_eq!(
        got.len(),
        1,
        "overlapping subscriptions deliver one PUBLISH: {got:?}"
    );
    assert_eq!(ids(&got[0]), [1, 2], "[MQTT-3.3.4-3]");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_identifier_is_sent_only_with_messages_matching_its_subscription() {
    let server = TestServer::start().await;
    let mut sub = V5Client::connect(server.addr, "sidx-sub").await;
    sub.subscribe_filters(vec![Filter::new("sidx/a", Q5::AtLeastOnce)], Some(7))
        .await;
    sub.subscribe_filters(vec![Filter::new("sidx/b", Q5::AtLeastOnce)], Some(8))
        .await;
    sub.subscribe("sidx/c", Q5::AtLeastOnce).await;
    let mut publisher = V5Client::connect(server.addr, "sidx-pub").await;
    for topic in ["sidx/a", "sidx/b", "sidx/c"] {
        publisher.publish_acked(topic, false, topic).await;
    }
    let got: Vec<(String, Vec<usize>)> = [sub.recv().await, sub.recv().await, sub.recv().await]
        .iter()
        .map(|p| (topic5(p).to_owned(), ids(p)))
        .collect();
    assert_eq!(
        got,
        [
            ("sidx/a".to_owned(), vec![7]),
            ("sidx/b".to_owned(), vec![8]),
            ("sidx/c".to_owned(), vec![])
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_local_subscription_does_not_receive_the_clients_own_messages() {
    let server = TestServer::start().await;
    let mut a = V5Client::connect(server.addr, "nl-a").await;
    a.subscribe_filters(
        vec![filter5(
            "nl/t",
            Q5::AtLeastOnce,
            true,
            false,
            RetainForwardRule::OnEverySubscribe,
        )],
        None,
    )
    .await;
    let mut b = V5Client::connect(server.addr, "nl-b").await;
    b.subscribe("nl/t", Q5::AtLeastOnce).await;

    a.publish_acked("nl/t", false, "from a").await;
    assert_eq!(
        &b.recv().await.payload[..],
        b"from a",
        "other clients still receive it"
    );
    b.publish_acked("nl/t", false, "from b").await;
    assert_eq!(
        &a.recv().await.payload[..],
        b"from b",
        "a must not have received its own message first"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_properties_are_forwarded_in_order() {
    let user_properties: Vec<(String, String)> = [("k", "1"), ("a", "2"), ("k", "3"), ("z", "")]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .into();
    let p = forwarded(
        "up",
        PublishProperties {
            user_properties: user_properties.clone(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        p.properties.unwrap().user_properties,
        user_properties,
        "[MQTT-3.3.2-18]"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payload_format_indicator_and_content_type_are_forwarded() {
    let props = PublishProperties {
        payload_format_indicator: Some(1),
        content_type: Some("text/plain; charset=utf-8".to_owned()),
        ..Default::default()
    };
    let got = forwarded("pfi", props).await.properties.unwrap();
    assert_eq!(got.payload_format_indicator, Some(1), "[MQTT-3.3.2-4]");
    assert_eq!(
        got.content_type.as_deref(),
        Some("text/plain; charset=utf-8")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_topic_and_correlation_data_are_forwarded() {
    let props = PublishProperties {
        response_topic: Some("rr/replies/42".to_owned()),
        correlation_data: Some(Bytes::from_static(b"\x00\x01corr\xff")),
        ..Default::default()
    };
    let got = forwarded("rr", props).await.properties.unwrap();
    assert_eq!(
        got.response_topic.as_deref(),
        Some("rr/replies/42"),
        "[MQTT-3.3.2-15]"
    );
    assert_eq!(
        got.correlation_data.as_deref(),
        Some(&b"\x00\x01corr\xff"[..]),
        "[MQTT-3.3.2-16]"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn negative_puback_carries_a_reason_string() {
    let server = TestServer::start().await;
    let mut c = V5Client::connect(server.addr, "rs-default").await;
    let ack = c.publish_acked("$SYS/x", false, "not allowed").await;
    assert_eq!(ack.reason, PubAckReason::NotAuthorized);
    let reason = ack.properties.and_then(|p| p.reason_string);
    assert!(
        reason.is_some_and(|r| !r.is_empty()),
        "a negative PUBACK explains itself"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn negative_puback_has_no_reason_string_when_problem_information_is_declined() {
    let server = TestServer::start().await;
    let mut c = V5Client::connect_with(server.addr, "rs-declined", |o| {
        o.set_request_problem_info(Some(0));
    })
    .await;
    let ack = c.publish_acked("$SYS/x", false, "not allowed").await;
    assert_eq!(ack.reason, PubAckReason::NotAuthorized);
    assert_eq!(
        ack.properties.and_then(|p| p.reason_string),
        None,
        "[MQTT-3.1.2-29]"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos1_publish_nobody_subscribes_to_is_acknowledged_with_no_matching_subscribers() {
    let server = TestServer::start().await;
    let mut c = V5Client::connect(server.addr, "nms-pub").await;
    assert_eq!(
        c.publish_acked("nms/nobody", false, "m").await.reason,
        PubAckReason::NoMatchingSubscribers
    );
    let mut sub = V5Client::connect(server.addr, "nms-sub").await;
    sub.subscribe("nms/somebody", Q5::AtMostOnce).await;
    assert_eq!(
        c.publish_acked("nms/somebody", false, "m").await.reason,
        PubAckReason::Success
    );
}
