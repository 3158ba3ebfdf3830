//! Tenant isolation on the MQTT side (test plan 8.3): client ids, wildcard and shared
//! subscriptions, `$SYS`, odd and look-alike topics, retained messages, wills and persistent
//! sessions. Every case asserts that nothing published, retained, willed or queued in one tenant
//! reaches another, and that nothing done in one tenant disconnects or resumes another tenant's
//! client. Absence is proved with fences (see `isolation/mod.rs`), never with sleeps.
#![allow(clippy::unwrap_used)]

mod isolation;
mod support;

use std::time::Duration;

use isolation::{
    Observer, anonymous_in, assert_alive4, assert_alive5, persistent4, persistent5, routed4,
    routed5, v4_as, v5_as,
};
use support::TestServer;
use support::clients::{Q4, Q5, V5Client, WAIT, topic5};

/// A server with tenants `acme` and `globex` (default allow, anonymous clients) besides `dev`.
async fn two_tenants() -> TestServer {
    let server = TestServer::start().await;
    for tenant in ["acme", "globex"] {
        server.add_tenant(tenant, "allow", true).await;
    }
    server
}

/// An anonymous 5.0 client in `tenant`.
async fn anon5(server: &TestServer, tenant: &str, id: &str) -> V5Client {
    v5_as(server.addr, id, &anonymous_in(tenant), "", |_| {}).await
}

// ---- Client ids are per tenant. ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_same_client_id_in_another_tenant_neither_kicks_nor_resumes() {
    let server = two_tenants().await;
    let mut acme = v5_as(server.addr, "X", "@acme", "", persistent5).await;
    acme.subscribe("x/inbox", Q5::AtLeastOnce).await;

    let mut globex = v5_as(server.addr, "X", "@globex", "", persistent5).await;
    assert!(
        !globex.connack.session_present,
        "globex's X resumed acme's session"
    );
    let mut dev = v5_as(server.addr, "X", "dev-user", "", persistent5).await;
    assert!(!dev.connack.session_present, "dev's X resumed a session");
    assert_alive5(&mut acme, "x/alive").await;

    // A takeover inside globex kicks globex's X (the twin) and nobody else.
    let mut globex2 = v5_as(server.addr, "X", "@globex", "", persistent5).await;
    assert!(globex2.connack.session_present, "globex's own session");
    assert!(
        globex.ended(WAIT).await.is_some(),
        "globex's first X kicked"
    );
    assert_alive5(&mut acme, "x/alive").await;
    assert_alive5(&mut dev, "x/alive").await;

    // The subscription of acme's X is still acme's alone.
    globex2.subscribe("x/inbox", Q5::AtMostOnce).await;
    let mut publisher = anon5(&server, "acme", "pub").await;
    routed5(&mut publisher, "x/inbox", false, "for acme").await;
    assert_eq!(acme.recv().await.payload.as_ref(), b"for acme");
    let mut globex2 = Observer::with(globex2, &[]).await;
    globex2.assert_nothing("globex's X").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v311_same_client_id_in_another_tenant_neither_kicks_nor_resumes() {
    let server = two_tenants().await;
    let mut acme = v4_as(server.addr, "X", "@acme", "", persistent4).await;
    acme.subscribe("x/inbox", Q4::AtLeastOnce).await;

    let mut globex = v4_as(server.addr, "X", "@globex", "", persistent4).await;
    assert!(
        !globex.connack.session_present,
        "globex's X resumed acme's session"
    );
    assert_alive4(&mut acme, "x/alive").await;
    let mut globex2 = v4_as(server.addr, "X", "@globex", "", persistent4).await;
    assert!(globex2.connack.session_present, "globex's own session");
    assert!(
        globex.ended(WAIT).await.is_some(),
        "globex's first X kicked"
    );
    assert_alive4(&mut acme, "x/alive").await;

    globex2.subscribe("x/inbox", Q4::AtMostOnce).await;
    globex2.subscribe("x/fence", Q4::AtMostOnce).await;
    let mut publisher = anon5(&server, "acme", "pub").await;
    routed5(&mut publisher, "x/inbox", false, "for acme").await;
    assert_eq!(acme.recv().await.payload.as_ref(), b"for acme");
    // Fence for globex's X: its own message comes back after anything routed to it before.
    globex2
        .publish("x/fence", Q4::AtMostOnce, false, b"fence".to_vec())
        .await;
    let got = globex2.recv_until("x/fence").await;
    assert!(got.is_empty(), "globex's X received {got:?}");
}

// ---- Wildcards, shared subscriptions and $SYS. ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wildcard_and_shared_subscribers_see_only_their_own_tenant() {
    let server = two_tenants().await;
    let filters: [&[&str]; 4] = [&["#"], &["+/#"], &["+"], &["$share/g/#"]];
    let mut observers = Vec::new();
    for tenant in ["acme", "globex", "dev"] {
        for (i, f) in filters.iter().enumerate() {
            let o = Observer::anonymous(server.addr, tenant, &format!("obs-{i}"), f).await;
            observers.push((tenant, f[0], o));
        }
    }
    for tenant in ["acme", "globex", "dev"] {
        let mut p = anon5(&server, tenant, "pub").await;
        for topic in ["t", "t/x", "t/x/y"] {
            routed5(&mut p, topic, false, tenant).await;
        }
    }
    for (tenant, filter, o) in &mut observers {
        let expected: &[&str] = if *filter == "+" {
            &["t"]
        } else {
            &["t", "t/x", "t/x/y"]
        };
        let expected: Vec<(&str, &str)> = expected.iter().map(|t| (*t, *tenant)).collect();
        o.assert_exactly(&format!("{tenant}'s {filter} subscriber"), &expected)
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn share_group_names_are_scoped_to_their_tenant() {
    let server = two_tenants().await;
    let mut members = Vec::new();
    for tenant in ["acme", "globex"] {
        for id in ["m1", "m2"] {
            let o = Observer::anonymous(server.addr, tenant, id, &["$share/g/jobs/#"]).await;
            members.push((tenant, o));
        }
    }
    for (tenant, count) in [("acme", 6), ("globex", 4)] {
        let mut p = anon5(&server, tenant, "pub").await;
        for i in 0..count {
            routed5(
                &mut p,
                &format!("jobs/{i}"),
                false,
                &format!("{tenant}-{i}"),
            )
            .await;
        }
    }
    for (tenant, count) in [("acme", 6), ("globex", 4)] {
        let mut got = Vec::new();
        for (_, o) in members.iter_mut().filter(|(t, _)| *t == tenant) {
            got.extend(o.seen().await.into_iter().map(|(_, p)| p));
        }
        got.sort();
        let mut want: Vec<String> = (0..count).map(|i| format!("{tenant}-{i}")).collect();
        want.sort();
        assert_eq!(got, want, "what {tenant}'s group g received");
    }
}

/// The next live (not retained) reading of `topic` as a number.
async fn sys_reading(o: &mut Observer, topic: &str) -> u64 {
    loop {
        let p = o.client.recv().await;
        if !p.retain && topic5(&p) == topic {
            return String::from_utf8_lossy(&p.payload).parse().unwrap();
        }
    }
}

/// Waits until `o` reads a value of `topic` of at least `floor`.
async fn sys_reaches(o: &mut Observer, topic: &str, floor: u64) {
    let reached = async { while sys_reading(o, topic).await < floor {} };
    tokio::time::timeout(Duration::from_secs(10), reached)
        .await
        .unwrap_or_else(|_| panic!("{topic} never reached {floor}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sys_subscribers_see_only_their_own_tenant_figures() {
    let server = TestServer::start_with(|c| c.sys.interval_secs = 1).await;
    for tenant in ["acme", "globex"] {
        server.add_tenant(tenant, "allow", true).await;
    }
    let received = "$SYS/broker/messages/received";
    let connected = "$SYS/broker/clients/connected";
    let mut observers = Vec::new();
    for tenant in ["acme", "globex"] {
        for (id, filter) in [("sys", "$SYS/#"), ("sys-shared", "$share/g/$SYS/#")] {
            let o = Observer::anonymous(server.addr, tenant, id, &[filter]).await;
            observers.push((tenant, filter, o));
        }
    }
    // acme receives 40 messages; globex holds 10 connections (acme: 3).
    let mut p = anon5(&server, "acme", "pub").await;
    for i in 0..40 {
        routed5(&mut p, "load/x", false, &i.to_string()).await;
    }
    let mut idle = Vec::new();
    for i in 0..8 {
        idle.push(anon5(&server, "globex", &format!("idle-{i}")).await);
    }
    sys_reaches(&mut observers[0].2, received, 40).await;
    sys_reaches(&mut observers[2].2, connected, 10).await;
    // From now on every round reports at least those figures. After a fence (which drops older
    // rounds), each round gives a subscriber one reading per tenant it can see, so four
    // readings in a row would include the other tenant's if its figures leaked.
    for (tenant, filter, o) in &mut observers {
        let leaked: Vec<_> = o
            .seen()
            .await
            .into_iter()
            .filter(|(t, _)| !t.starts_with("$SYS/"))
            .collect();
        assert!(leaked.is_empty(), "{tenant}'s {filter} received {leaked:?}");
    }
    for (tenant, filter, o) in &mut observers {
        let (topic, other_tenants_floor) = if *tenant == "acme" {
            (connected, 10)
        } else {
            (received, 40)
        };
        for _ in 0..4 {
            let value = sys_reading(o, topic).await;
            assert!(
                value < other_tenants_floor,
                "{tenant}'s {filter} subscriber read {topic} = {value}: the other tenant's figure"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_looking_dollar_prefixes_stay_in_their_tenant() {
    let server = two_tenants().await;
    let topics = [
        "$internal/x",
        "$retained/acme/x",
        "$JS/API/STREAM/x",
        "$MQTT/msgs/x",
        "$tenant/globex/x",
        "$sys/x",
        "$/x",
    ];
    let filters = [
        "#",
        "$internal/#",
        "$retained/#",
        "$JS/#",
        "$MQTT/#",
        "$tenant/#",
        "$sys/#",
        "$/#",
        "+/#",
    ];
    let mut acme = Observer::anonymous(server.addr, "acme", "obs", &filters).await;
    let mut globex = Observer::anonymous(server.addr, "globex", "obs", &filters).await;
    let mut dev = Observer::anonymous(server.addr, "dev", "obs", &filters).await;
    let mut p = anon5(&server, "acme", "pub").await;
    for topic in topics {
        routed5(&mut p, topic, false, "acme").await;
    }
    let expected: Vec<(&str, &str)> = topics.iter().map(|t| (*t, "acme")).collect();
    acme.assert_exactly("acme", &expected).await;
    globex.assert_nothing("globex").await;
    dev.assert_nothing("dev").await;
}

// ---- Topics that a naive mapping would alias. ----

/// Topics with characters a subject mapping could turn into separators, wildcards or internal
/// prefixes, and look-alikes of other tenants' names.
const ODD_TOPICS: [&str; 14] = [
    "a.b",
    "a/*",
    "a/>",
    "*",
    ">",
    "a b",
    "a/$x",
    "a//b",
    "\u{FEFF}a/b",
    "a@globex",
    "globex.a",
    "globex/a",
    "a/b.c/>",
    "$tenant/globex/a",
];

/// What the odd topics would become if separators, wildcards or a BOM were mangled.
const ALIASES: [&str; 6] = ["a/b", "a", "b", "globex", "a/b/c", "a/b.c"];

async fn odd_topics_case(v311_publisher: bool) {
    let server = two_tenants().await;
    let mut filters = vec!["#", "$tenant/#"];
    filters.extend(ODD_TOPICS.iter().filter(|t| !t.starts_with('$')));
    let mut globex = Observer::anonymous(server.addr, "globex", "obs", &filters).await;
    let mut dev = Observer::anonymous(server.addr, "dev", "obs", &filters).await;
    let mut acme = Observer::anonymous(server.addr, "acme", "obs", &["#", "$tenant/#"]).await;
    let mut aliases = Observer::anonymous(server.addr, "acme", "aliases", &ALIASES).await;
    if v311_publisher {
        let mut p = v4_as(server.addr, "pub", "@acme", "", |_| {}).await;
        for topic in ODD_TOPICS {
            routed4(&mut p, topic, false, "acme").await;
        }
    } else {
        let mut p = anon5(&server, "acme", "pub").await;
        for topic in ODD_TOPICS {
            routed5(&mut p, topic, false, "acme").await;
        }
    }
    let expected: Vec<(&str, &str)> = ODD_TOPICS.iter().map(|t| (*t, "acme")).collect();
    acme.assert_exactly("acme's # subscriber (topics byte for byte)", &expected)
        .await;
    aliases
        .assert_nothing("acme's subscriber to mangled forms")
        .await;
    globex.assert_nothing("globex").await;
    dev.assert_nothing("dev").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_odd_topic_characters_never_reach_another_tenant_or_alias() {
    odd_topics_case(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v311_odd_topic_characters_never_reach_another_tenant_or_alias() {
    odd_topics_case(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_named_topics_stay_in_the_publishing_tenant() {
    let server = two_tenants().await;
    let filters = ["#", "$tenant/#", "acme/#", "dev/#", "globex/#"];
    let mut acme = Observer::anonymous(server.addr, "acme", "obs", &filters).await;
    let mut globex = Observer::anonymous(server.addr, "globex", "obs", &filters).await;
    let mut dev = Observer::anonymous(server.addr, "dev", "obs", &filters).await;
    let from_dev = [
        "acme/x",
        "acme",
        "$tenant/acme/x",
        "tenants/acme/x",
        "acme@dev",
    ];
    let mut p = anon5(&server, "dev", "pub").await;
    for topic in from_dev {
        routed5(&mut p, topic, false, "dev").await;
    }
    let from_acme = ["dev/x", "globex/x", "$tenant/dev/x", "$tenant/globex/x"];
    let mut p = anon5(&server, "acme", "pub").await;
    for topic in from_acme {
        routed5(&mut p, topic, false, "acme").await;
    }
    let expected: Vec<(&str, &str)> = from_dev.iter().map(|t| (*t, "dev")).collect();
    dev.assert_exactly("dev", &expected).await;
    let expected: Vec<(&str, &str)> = from_acme.iter().map(|t| (*t, "acme")).collect();
    acme.assert_exactly("acme", &expected).await;
    globex.assert_nothing("globex").await;
}

// ---- Retained messages. ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_message_is_never_sent_to_another_tenants_subscriber() {
    let server = two_tenants().await;
    let mut p = anon5(&server, "acme", "pub").await;
    routed5(&mut p, "cfg/a", true, "acme-cfg").await;
    routed5(&mut p, "$cfg/a", true, "acme-dollar").await;
    let filters = ["#", "+/#", "cfg/a", "+/a", "cfg/#", "$cfg/#", "$cfg/a"];
    for (tenant, id) in [("globex", "late"), ("dev", "late")] {
        let mut o = Observer::anonymous(server.addr, tenant, id, &filters).await;
        o.assert_nothing(&format!("{tenant}'s new subscriber"))
            .await;
    }
    let mut acme = Observer::anonymous(server.addr, "acme", "late", &filters).await;
    let got = acme.seen().await;
    assert!(
        got.contains(&("cfg/a".into(), "acme-cfg".into())),
        "{got:?}"
    );
    assert!(
        got.contains(&("$cfg/a".into(), "acme-dollar".into())),
        "{got:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clearing_a_retained_message_in_one_tenant_keeps_the_other_tenants() {
    let server = two_tenants().await;
    let mut acme = anon5(&server, "acme", "pub").await;
    let mut globex = anon5(&server, "globex", "pub").await;
    routed5(&mut acme, "cfg/a", true, "acme-cfg").await;
    routed5(&mut globex, "cfg/a", true, "globex-cfg").await;
    routed5(&mut globex, "cfg/a", true, "").await;

    let mut o = Observer::anonymous(server.addr, "globex", "late", &["cfg/#"]).await;
    o.assert_nothing("globex after clearing its retained message")
        .await;
    let mut o = Observer::anonymous(server.addr, "acme", "late", &["cfg/#"]).await;
    o.assert_exactly("acme", &[("cfg/a", "acme-cfg")]).await;
}

// ---- Wills. ----

async fn will_case(v311: bool) {
    let server = two_tenants().await;
    let filters = ["#", "status/#"];
    let mut acme = Observer::anonymous(server.addr, "acme", "obs", &filters).await;
    let mut globex = Observer::anonymous(server.addr, "globex", "obs", &filters).await;
    let mut dev = Observer::anonymous(server.addr, "dev", "obs", &filters).await;
    if v311 {
        let will = rumqttc::LastWill::new("status/X", "acme-will", Q4::AtLeastOnce, false);
        let c = v4_as(server.addr, "X", "@acme", "", |o| {
            o.set_last_will(will);
        })
        .await;
        drop(c);
    } else {
        let will = rumqttc::v5::mqttbytes::v5::LastWill::new(
            "status/X",
            "acme-will",
            Q5::AtLeastOnce,
            false,
            None,
        );
        let c = v5_as(server.addr, "X", "@acme", "", |o| {
            o.set_last_will(will);
        })
        .await;
        drop(c);
    }
    // The will is routed once to every matching session; acme's copy has arrived.
    let p = acme.client.recv().await;
    assert_eq!(
        (topic5(&p), p.payload.as_ref()),
        ("status/X", &b"acme-will"[..])
    );
    globex.assert_nothing("globex").await;
    dev.assert_nothing("dev").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_will_of_one_tenant_never_reaches_another() {
    will_case(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v311_will_of_one_tenant_never_reaches_another() {
    will_case(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn takeover_in_one_tenant_never_fires_another_tenants_will() {
    let server = two_tenants().await;
    let mut acme = Observer::anonymous(server.addr, "acme", "obs", &["status/#"]).await;
    let mut globex = Observer::anonymous(server.addr, "globex", "obs", &["status/#"]).await;
    let with_will = |payload: &'static str| {
        move |o: &mut rumqttc::v5::MqttOptions| {
            o.set_last_will(rumqttc::v5::mqttbytes::v5::LastWill::new(
                "status/X",
                payload,
                Q5::AtLeastOnce,
                false,
                None,
            ));
        }
    };
    let mut first = v5_as(server.addr, "X", "@acme", "", with_will("acme-will")).await;
    let mut other = v5_as(server.addr, "X", "@globex", "", with_will("globex-will")).await;
    let _second = v5_as(server.addr, "X", "@acme", "", |_| {}).await;
    assert!(first.ended(WAIT).await.is_some(), "acme's first X kicked");
    let p = acme.client.recv().await;
    assert_eq!(p.payload.as_ref(), b"acme-will");
    globex.assert_nothing("globex").await;
    assert_alive5(&mut other, "x/alive").await;
    acme.assert_nothing("acme after its will").await;
}

// ---- Persistent sessions. ----

/// Opens `tenant`'s persistent session `X` subscribed to `q/#` and leaves it offline.
async fn park_session(server: &TestServer, tenant: &str, v311: bool) {
    let user = anonymous_in(tenant);
    if v311 {
        let mut c = v4_as(server.addr, "X", &user, "", persistent4).await;
        c.subscribe("q/#", Q4::AtLeastOnce).await;
        c.disconnect().await;
    } else {
        let mut c = v5_as(server.addr, "X", &user, "", persistent5).await;
        c.subscribe("q/#", Q5::AtLeastOnce).await;
        c.disconnect().await;
    }
}

/// Resumes `tenant`'s session `X`; returns the payloads queued for it (up to a fence it sends).
async fn resume_session(server: &TestServer, tenant: &str, v311: bool) -> Vec<String> {
    let user = anonymous_in(tenant);
    let queued: Vec<bytes::Bytes> = if v311 {
        let mut c = v4_as(server.addr, "X", &user, "", persistent4).await;
        assert!(c.connack.session_present, "{tenant}'s X has its session");
        routed4(&mut c, "q/fence", false, "fence").await;
        c.recv_until("q/fence")
            .await
            .into_iter()
            .map(|p| p.payload)
            .collect()
    } else {
        let mut c = v5_as(server.addr, "X", &user, "", persistent5).await;
        assert!(c.connack.session_present, "{tenant}'s X has its session");
        routed5(&mut c, "q/fence", false, "fence").await;
        c.recv_until("q/fence")
            .await
            .into_iter()
            .map(|p| p.payload)
            .collect()
    };
    queued
        .iter()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect()
}

async fn separate_queues_case(v311: bool) {
    let server = two_tenants().await;
    for tenant in ["acme", "globex"] {
        park_session(&server, tenant, v311).await;
    }
    let counts = [("acme", 3), ("globex", 2)];
    for (tenant, count) in counts {
        let mut p = anon5(&server, tenant, "pub").await;
        for i in 0..count {
            routed5(&mut p, &format!("q/{i}"), false, &format!("{tenant}-{i}")).await;
        }
    }
    for (tenant, count) in counts {
        let want: Vec<String> = (0..count).map(|i| format!("{tenant}-{i}")).collect();
        let got = resume_session(&server, tenant, v311).await;
        assert_eq!(got, want, "{tenant}'s X queue");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_persistent_sessions_with_one_client_id_keep_separate_queues() {
    separate_queues_case(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v311_persistent_sessions_with_one_client_id_keep_separate_queues() {
    separate_queues_case(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_start_in_one_tenant_never_discards_another_tenants_session() {
    let server = two_tenants().await;
    park_session(&server, "acme", false).await;
    let mut p = anon5(&server, "acme", "pub").await;
    routed5(&mut p, "q/1", false, "queued in acme").await;

    // globex's X and dev's X start clean (5.0 and 3.1.1): only their own sessions go.
    let c = v5_as(server.addr, "X", "@globex", "", |_| {}).await;
    c.disconnect().await;
    let c = v4_as(server.addr, "X", "dev-user", "", |_| {}).await;
    c.disconnect().await;

    let got = resume_session(&server, "acme", false).await;
    assert_eq!(got, ["queued in acme"], "acme's X queue");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_and_retained_messages_stay_in_their_tenant_across_a_restart() {
    let mut server = two_tenants().await;
    for tenant in ["acme", "globex"] {
        let mut c = v5_as(server.addr, "X", &anonymous_in(tenant), "", persistent5).await;
        c.subscribe("q/#", Q5::AtLeastOnce).await;
        c.disconnect().await;
        let mut p = anon5(&server, tenant, "pub").await;
        routed5(&mut p, "q/1", false, &format!("{tenant}-queued")).await;
        routed5(&mut p, "cfg/a", true, &format!("{tenant}-cfg")).await;
    }
    // acme's W is connected at shutdown: its will (retained) goes out in acme as the server
    // stops.
    let will = rumqttc::v5::mqttbytes::v5::LastWill::new(
        "status/W",
        "acme-gone",
        Q5::AtLeastOnce,
        true,
        None,
    );
    let _w = v5_as(server.addr, "W", "@acme", "", |o| {
        o.set_last_will(will);
    })
    .await;
    server.restart().await;
    for tenant in ["acme", "globex"] {
        let c = v5_as(server.addr, "X", &anonymous_in(tenant), "", persistent5).await;
        assert!(c.connack.session_present, "{tenant}'s session restored");
        let mut o = Observer::with(c, &["cfg/#", "status/#"]).await;
        let mut got = o.seen().await;
        got.sort();
        let mut want = vec![
            ("cfg/a".to_owned(), format!("{tenant}-cfg")),
            ("q/1".to_owned(), format!("{tenant}-queued")),
        ];
        if tenant == "acme" {
            want.push(("status/W".to_owned(), "acme-gone".to_owned()));
        }
        assert_eq!(got, want, "{tenant}'s X after the restart");
    }
    let mut o = Observer::anonymous(server.addr, "dev", "late", &["#"]).await;
    o.assert_nothing("dev after the restart").await;
}
