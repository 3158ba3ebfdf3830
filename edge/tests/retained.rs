//! Retained messages (MQTT 5.0 section 3.3.1.3, 3.1.1 section 3.3.1.3): one per topic, replaced
//! by a newer one, cleared by an empty payload; sent with RETAIN=1 to new subscriptions as their
//! Retain Handling asks; forwarded to existing subscriptions per Retain As Published; matched
//! with wildcards, where `$` topics escape filters that start with a wildcard.
//!
//! "Nothing else was sent" is checked with a fence: a later SUBSCRIBE to a topic holding a
//! retained message, whose delivery is queued after everything the earlier SUBSCRIBE produced.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;

use rumqttc::v5::mqttbytes::v5::{Filter, Publish, RetainForwardRule};
use support::TestServer;
use support::clients::{Q4, Q5, V4Client, V5Client, filter5, topic5};

/// A topic holding a retained message in every test, subscribed last as a fence.
const FENCE: &str = "fence/retained";
/// Subscription identifier of the fence subscription (5.0), so that a `#` subscription's copy of
/// the fence message is not mistaken for the fence.
const FENCE_ID: usize = 999;

/// A server with the fence's retained message set, and the publisher that set it.
async fn server_and_publisher(id: &str) -> (TestServer, V5Client) {
    let server = TestServer::start().await;
    let mut publisher = V5Client::connect(server.addr, id).await;
    publisher.publish_acked(FENCE, true, "fence").await;
    (server, publisher)
}

/// Subscribes with `filters` in one SUBSCRIBE and returns what the server sent for it: a second
/// SUBSCRIBE to the fence topic follows, and everything before the fence came from the first.
async fn sent_on_subscribe(sub: &mut V5Client, filters: Vec<Filter>) -> Vec<Publish> {
    let ack = sub.subscribe_filters(filters, None).await;
    assert!(
        ack.return_codes.iter().all(|c| matches!(
            c,
            rumqttc::v5::mqttbytes::v5::SubscribeReasonCode::Success(_)
        )),
        "{ack:?}"
    );
    sub.subscribe_filters(vec![Filter::new(FENCE, Q5::AtLeastOnce)], Some(FENCE_ID))
        .await;
    let mut before = Vec::new();
    loop {
        let p = sub.recv().await;
        let ids = p
            .properties
            .as_ref()
            .map(|pr| pr.subscription_identifiers.clone())
            .unwrap_or_default();
        if ids.contains(&FENCE_ID) {
            return before;
        }
        before.push(p);
    }
}

fn summary(ps: &[Publish]) -> Vec<(String, String, bool)> {
    ps.iter()
        .map(|p| {
            (
                topic5(p).to_owned(),
                String::from_utf8_lossy(&p.payload).into_owned(),
                p.retain,
            )
        })
        .collect()
}

fn topics(ps: &[Publish]) -> BTreeSet<String> {
    ps.iter().map(|p| topic5(p).to_owned()).collect()
}

fn rh(filter: &str, rule: RetainForwardRule) -> Filter {
    filter5(filter, Q5::AtLeastOnce, false, false, rule)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_message_is_sent_to_a_new_v5_subscription_with_retain_set() {
    let (server, mut publisher) = server_and_publisher("ret5-pub").await;
    publisher.publish_acked("ret5/a", true, "v1").await;
    let mut sub = V5Client::connect(server.addr, "ret5-sub").await;
    let got = sent_on_subscribe(&mut sub, vec![Filter::new("ret5/a", Q5::AtLeastOnce)]).await;
    assert_eq!(
        summary(&got),
        [("ret5/a".to_owned(), "v1".to_owned(), true)]
    );
    assert_eq!(got[0].qos, Q5::AtLeastOnce);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_message_is_sent_to_a_new_v311_subscription_with_retain_set() {
    let server = TestServer::start().await;
    let mut publisher = V4Client::connect(server.addr, "ret4-pub").await;
    publisher.publish_acked("ret4/a", true, "v1").await;
    let mut sub = V4Client::connect(server.addr, "ret4-sub").await;
    sub.subscribe("ret4/a", Q4::AtLeastOnce).await;
    let p = sub.recv().await;
    assert_eq!(
        (p.topic.as_str(), &p.payload[..], p.retain),
        ("ret4/a", &b"v1"[..], true)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newer_retained_message_replaces_the_older_one() {
    let (server, mut publisher) = server_and_publisher("repl-pub").await;
    publisher.publish_acked("repl/a", true, "old").await;
    publisher.publish_acked("repl/a", true, "new").await;
    let mut sub = V5Client::connect(server.addr, "repl-sub").await;
    let got = sent_on_subscribe(&mut sub, vec![Filter::new("repl/#", Q5::AtLeastOnce)]).await;
    assert_eq!(
        summary(&got),
        [("repl/a".to_owned(), "new".to_owned(), true)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newer_retained_message_from_v311_replaces_the_older_one() {
    let server = TestServer::start().await;
    let mut publisher = V4Client::connect(server.addr, "repl4-pub").await;
    publisher.publish_acked("repl4/a", true, "old").await;
    publisher.publish_acked("repl4/a", true, "new").await;
    publisher.publish_acked(FENCE, true, "fence").await;
    let mut sub = V4Client::connect(server.addr, "repl4-sub").await;
    sub.subscribe("repl4/a", Q4::AtLeastOnce).await;
    sub.subscribe(FENCE, Q4::AtLeastOnce).await;
    let got: Vec<_> = sub
        .recv_until(FENCE)
        .await
        .into_iter()
        .map(|p| p.payload)
        .collect();
    assert_eq!(got, [&b"new"[..]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_retained_payload_clears_the_retained_message() {
    let (server, mut publisher) = server_and_publisher("clr-pub").await;
    publisher.publish_acked("clr/a", true, "v1").await;
    publisher.publish_acked("clr/b", true, "kept").await;
    publisher.publish_acked("clr/a", true, "").await;
    let mut sub = V5Client::connect(server.addr, "clr-sub").await;
    let got = sent_on_subscribe(&mut sub, vec![Filter::new("clr/+", Q5::AtLeastOnce)]).await;
    assert_eq!(
        summary(&got),
        [("clr/b".to_owned(), "kept".to_owned(), true)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_retained_payload_from_v311_clears_the_retained_message() {
    let server = TestServer::start().await;
    let mut publisher = V4Client::connect(server.addr, "clr4-pub").await;
    publisher.publish_acked("clr4/a", true, "v1").await;
    publisher.publish_acked("clr4/a", true, Vec::new()).await;
    publisher.publish_acked(FENCE, true, "fence").await;
    let mut sub = V4Client::connect(server.addr, "clr4-sub").await;
    sub.subscribe("clr4/a", Q4::AtLeastOnce).await;
    sub.subscribe(FENCE, Q4::AtLeastOnce).await;
    let got = sub.recv_until(FENCE).await;
    assert!(
        got.is_empty(),
        "a cleared retained message was sent: {got:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retain_handling_0_sends_retained_messages_on_every_subscribe() {
    let (server, mut publisher) = server_and_publisher("rh0-pub").await;
    publisher.publish_acked("rh0/a", true, "v").await;
    let mut sub = V5Client::connect(server.addr, "rh0-sub").await;
    let first = sent_on_subscribe(
        &mut sub,
        vec![rh("rh0/a", RetainForwardRule::OnEverySubscribe)],
    )
    .await;
    assert_eq!(
        summary(&first),
        [("rh0/a".to_owned(), "v".to_owned(), true)]
    );
    let again = sent_on_subscribe(
        &mut sub,
        vec![rh("rh0/a", RetainForwardRule::OnEverySubscribe)],
    )
    .await;
    assert_eq!(
        summary(&again),
        [("rh0/a".to_owned(), "v".to_owned(), true)],
        "re-subscribing resends"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retain_handling_1_sends_retained_messages_only_for_a_new_subscription() {
    let (server, mut publisher) = server_and_publisher("rh1-pub").await;
    publisher.publish_acked("rh1/a", true, "v").await;
    let mut sub = V5Client::connect(server.addr, "rh1-sub").await;
    let first = sent_on_subscribe(
        &mut sub,
        vec![rh("rh1/a", RetainForwardRule::OnNewSubscribe)],
    )
    .await;
    assert_eq!(
        summary(&first),
        [("rh1/a".to_owned(), "v".to_owned(), true)]
    );
    let again = sent_on_subscribe(
        &mut sub,
        vec![rh("rh1/a", RetainForwardRule::OnNewSubscribe)],
    )
    .await;
    assert!(
        again.is_empty(),
        "re-subscribing with Retain Handling 1 resent {:?}",
        summary(&again)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retain_handling_2_never_sends_retained_messages() {
    let (server, mut publisher) = server_and_publisher("rh2-pub").await;
    publisher.publish_acked("rh2/a", true, "v").await;
    let mut sub = V5Client::connect(server.addr, "rh2-sub").await;
    let got = sent_on_subscribe(&mut sub, vec![rh("rh2/a", RetainForwardRule::Never)]).await;
    assert!(got.is_empty(), "Retain Handling 2 sent {:?}", summary(&got));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retain_as_published_0_forwards_retained_publishes_with_retain_cleared() {
    let server = TestServer::start().await;
    let mut sub = V5Client::connect(server.addr, "rap0-sub").await;
    sub.subscribe_filters(
        vec![filter5(
            "rap0/a",
            Q5::AtLeastOnce,
            false,
            false,
            RetainForwardRule::OnEverySubscribe,
        )],
        None,
    )
    .await;
    let mut publisher = V5Client::connect(server.addr, "rap0-pub").await;
    publisher.publish_acked("rap0/a", true, "live").await;
    let p = sub.recv().await;
    assert_eq!((topic5(&p), &p.payload[..]), ("rap0/a", &b"live"[..]));
    assert!(
        !p.retain,
        "RETAIN must be 0 on a message forwarded to an existing subscription"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v311_subscriber_receives_forwarded_retained_publishes_with_retain_cleared() {
    let server = TestServer::start().await;
    let mut sub = V4Client::connect(server.addr, "rap4-sub").await;
    sub.subscribe("rap4/a", Q4::AtLeastOnce).await;
    let mut publisher = V4Client::connect(server.addr, "rap4-pub").await;
    publisher.publish_acked("rap4/a", true, "live").await;
    let p = sub.recv().await;
    assert_eq!(
        (p.topic.as_str(), p.retain),
        ("rap4/a", false),
        "[MQTT-3.3.1-9]"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retain_as_published_1_forwards_the_retain_flag_as_published() {
    let server = TestServer::start().await;
    let mut sub = V5Client::connect(server.addr, "rap1-sub").await;
    sub.subscribe_filters(
        vec![filter5(
            "rap1/a",
            Q5::AtLeastOnce,
            false,
            true,
            RetainForwardRule::OnEverySubscribe,
        )],
        None,
    )
    .await;
    let mut publisher = V5Client::connect(server.addr, "rap1-pub").await;
    publisher.publish_acked("rap1/a", true, "retained").await;
    publisher.publish_acked("rap1/a", false, "plain").await;
    let got: Vec<_> = [sub.recv().await, sub.recv().await]
        .iter()
        .map(|p| (String::from_utf8_lossy(&p.payload).into_owned(), p.retain))
        .collect();
    assert_eq!(
        got,
        [("retained".to_owned(), true), ("plain".to_owned(), false)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dollar_topics_are_not_routed_to_filters_starting_with_a_wildcard() {
    let server = TestServer::start().await;
    let mut hash = V5Client::connect(server.addr, "dlr-hash").await;
    hash.subscribe("#", Q5::AtLeastOnce).await;
    let mut plus = V5Client::connect(server.addr, "dlr-plus").await;
    plus.subscribe("+/x", Q5::AtLeastOnce).await;
    let mut dollar = V5Client::connect(server.addr, "dlr-dollar").await;
    dollar.subscribe("$foo/#", Q5::AtLeastOnce).await;
    let mut publisher = V5Client::connect(server.addr, "dlr-pub").await;
    publisher.publish_acked("$foo/x", false, "dollar").await;
    publisher.publish_acked("fence/x", false, "fence").await;

    let p = dollar.recv().await;
    assert_eq!((topic5(&p), &p.payload[..]), ("$foo/x", &b"dollar"[..]));
    let to_hash = hash.recv_until("fence/x").await;
    assert!(to_hash.is_empty(), "`#` received {:?}", summary(&to_hash));
    let to_plus = plus.recv_until("fence/x").await;
    assert!(to_plus.is_empty(), "`+/x` received {:?}", summary(&to_plus));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_dollar_topics_are_not_sent_to_filters_starting_with_a_wildcard() {
    let (server, mut publisher) = server_and_publisher("rdlr-pub").await;
    publisher.publish_acked("$foo/x", true, "dollar").await;
    publisher.publish_acked("plain/x", true, "plain").await;
    let mut sub = V5Client::connect(server.addr, "rdlr-sub").await;

    let hash = sent_on_subscribe(&mut sub, vec![Filter::new("#", Q5::AtLeastOnce)]).await;
    assert_eq!(
        topics(&hash),
        BTreeSet::from(["plain/x".to_owned(), FENCE.to_owned()])
    );
    let plus = sent_on_subscribe(&mut sub, vec![Filter::new("+/x", Q5::AtLeastOnce)]).await;
    assert_eq!(topics(&plus), BTreeSet::from(["plain/x".to_owned()]));
    let dollar = sent_on_subscribe(&mut sub, vec![Filter::new("$foo/#", Q5::AtLeastOnce)]).await;
    assert_eq!(
        summary(&dollar),
        [("$foo/x".to_owned(), "dollar".to_owned(), true)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_level_wildcard_matches_its_parent_level() {
    let (server, mut publisher) = server_and_publisher("par-pub").await;
    publisher
        .publish_acked("par", true, "retained parent")
        .await;
    let mut sub = V5Client::connect(server.addr, "par-sub").await;
    let retained = sent_on_subscribe(&mut sub, vec![Filter::new("par/#", Q5::AtLeastOnce)]).await;
    assert_eq!(
        summary(&retained),
        [("par".to_owned(), "retained parent".to_owned(), true)]
    );

    publisher.publish_acked("par", false, "live parent").await;
    let p = sub.recv().await;
    assert_eq!((topic5(&p), &p.payload[..]), ("par", &b"live parent"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wildcard_subscriptions_receive_every_matching_retained_message() {
    let (server, mut publisher) = server_and_publisher("wild-pub").await;
    for topic in ["a", "a/b", "x/b", "a/c", "a/b/c", "b", "x/y/b"] {
        publisher.publish_acked(topic, true, topic).await;
    }
    let mut sub = V5Client::connect(server.addr, "wild-sub").await;
    let plus = sent_on_subscribe(&mut sub, vec![Filter::new("+/b", Q5::AtLeastOnce)]).await;
    assert_eq!(
        topics(&plus),
        BTreeSet::from(["a/b".to_owned(), "x/b".to_owned()])
    );
    assert!(
        plus.iter()
            .all(|p| p.retain && p.payload == topic5(p).as_bytes())
    );

    let hash = sent_on_subscribe(&mut sub, vec![Filter::new("a/#", Q5::AtLeastOnce)]).await;
    let expected: BTreeSet<String> = ["a", "a/b", "a/c", "a/b/c"].map(String::from).into();
    assert_eq!(topics(&hash), expected);
    assert_eq!(
        hash.len(),
        4,
        "each retained message once: {:?}",
        summary(&hash)
    );
}
