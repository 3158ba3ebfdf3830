//! Tenant isolation of identities and access (test plan 8.3): client ids bound to devices,
//! `device@tenant` user names, ACL placeholders fed with hostile identities, and revocation.
//! Every case asserts that one principal cannot take over, read or widen into what belongs to
//! another, and that changing one tenant's devices, rules or status never disconnects or changes
//! another tenant's clients. Absence is proved with fences (see `isolation/mod.rs`).
#![allow(clippy::unwrap_used)]

mod isolation;
mod support;

use axum::http::{Method, StatusCode};
use isolation::{
    BAD_LOGIN, CLIENT_ID_NOT_VALID, NOT_AUTHORIZED, Observer, VERSIONS, assert_alive5,
    assert_refused, connack_code, login, persistent5, refused_code, refused_code_after, routed4,
    routed5, v4_as, v5_as,
};
use rumqttc::v5::mqttbytes::v5::{Filter, PubAckReason, SubscribeReasonCode};
use serde_json::json;
use stratus_codec::ProtocolVersion;
use stratus_edge::config::ListenerName;
use support::TestServer;
use support::clients::{Q5, V5Client, WAIT};
use tokio::time::Instant;

// ---- A client id bound to a device belongs to that device. ----

async fn bound_client_id_case(version: ProtocolVersion) {
    let server = TestServer::start().await;
    server.add_tenant("acme", "allow", true).await;
    server
        .add_device("acme", "alice", "alice-pw", Some("meter-a"))
        .await;
    server
        .add_device("acme", "bob", "bob-pw", Some("meter-b"))
        .await;
    server.add_device("acme", "carol", "carol-pw", None).await;
    let mut alice = v5_as(
        server.addr,
        "meter-a",
        "alice@acme",
        "alice-pw",
        persistent5,
    )
    .await;
    alice.subscribe("meter/a/#", Q5::AtLeastOnce).await;
    alice.disconnect().await;
    let mut p = v5_as(server.addr, "pub", "@acme", "", |_| {}).await;
    routed5(&mut p, "meter/a/cmd", false, "queued for alice").await;

    let intruders = |clean: bool| {
        [
            (
                login(version, "meter-a", "carol@acme", "carol-pw", clean),
                NOT_AUTHORIZED,
                "an unbound device",
            ),
            (
                login(version, "meter-a", "bob@acme", "bob-pw", !clean),
                CLIENT_ID_NOT_VALID,
                "a device bound to another id",
            ),
            (
                login(version, "meter-a", "@acme", "", clean),
                NOT_AUTHORIZED,
                "an anonymous client",
            ),
        ]
    };
    // While alice is offline: nobody resumes or discards her session.
    for (connect, codes, who) in intruders(false) {
        assert_refused(server.addr, connect, codes, who).await;
    }
    let alice = v5_as(
        server.addr,
        "meter-a",
        "alice@acme",
        "alice-pw",
        persistent5,
    )
    .await;
    assert!(alice.connack.session_present, "alice's session is gone");
    let mut alice = Observer::with(alice, &[]).await;
    let got = alice.seen().await;
    assert_eq!(
        got,
        [("meter/a/cmd".to_owned(), "queued for alice".to_owned())]
    );
    // While alice is online: nobody kicks her.
    for (connect, codes, who) in intruders(true) {
        assert_refused(server.addr, connect, codes, who).await;
    }
    assert_alive5(&mut alice.client, "meter/a/alive").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_bound_client_id_refuses_other_principals_without_kick_or_resume() {
    bound_client_id_case(ProtocolVersion::V5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v311_bound_client_id_refuses_other_principals_without_kick_or_resume() {
    bound_client_id_case(ProtocolVersion::V3_1_1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_id_bound_in_one_tenant_is_free_in_another() {
    let server = TestServer::start().await;
    for tenant in ["acme", "globex"] {
        server.add_tenant(tenant, "allow", true).await;
    }
    server
        .add_device("acme", "alice", "acme-pw", Some("meter-1"))
        .await;
    server
        .add_device("globex", "gina", "globex-pw", Some("meter-1"))
        .await;
    let mut alice = v5_as(server.addr, "meter-1", "alice@acme", "acme-pw", persistent5).await;
    let mut gina = v5_as(server.addr, "meter-1", "gina@globex", "globex-pw", |_| {}).await;
    assert!(!gina.connack.session_present);
    // A client id bound in acme is an unbound name for an anonymous client in dev.
    let mut dev = v5_as(server.addr, "meter-1", "dev-user", "", |_| {}).await;
    for c in [&mut alice, &mut gina, &mut dev] {
        assert_alive5(c, "meter/alive").await;
    }
}

// ---- `device@tenant` user names. ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_naming_another_tenant_with_its_own_password_is_refused() {
    let server = TestServer::start().await;
    for tenant in ["acme", "globex", "initech"] {
        server.add_tenant(tenant, "allow", false).await;
    }
    server.add_device("acme", "alice", "acme-pw", None).await;
    server
        .add_device("globex", "alice", "globex-pw", None)
        .await;
    let mut acme = v5_as(server.addr, "alice", "alice@acme", "acme-pw", |_| {}).await;
    let mut globex = v5_as(server.addr, "alice", "alice@globex", "globex-pw", |_| {}).await;
    for version in VERSIONS {
        for (user, id) in [("alice@globex", "alice"), ("alice@initech", "alice")] {
            let connect = login(version, id, user, "acme-pw", true);
            assert_refused(server.addr, connect, BAD_LOGIN, user).await;
        }
    }
    assert_alive5(&mut acme, "alive").await;
    assert_alive5(&mut globex, "alive").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_name_naming_an_unknown_tenant_is_refused() {
    let server = TestServer::start().await;
    server.add_tenant("acme", "allow", true).await;
    server.add_device("acme", "alice", "acme-pw", None).await;
    let mut alice = v5_as(server.addr, "alice", "alice@acme", "acme-pw", |_| {}).await;
    for version in VERSIONS {
        for user in [
            "alice@nosuch",
            "alice@ACME",
            "alice@acme.evil",
            "alice@acme/x",
            "alice@",
            "@nosuch",
        ] {
            let connect = login(version, "alice", user, "acme-pw", true);
            assert_refused(server.addr, connect, BAD_LOGIN, user).await;
        }
    }
    assert_alive5(&mut alice, "alive").await;
}

/// A PROXY protocol v1 header saying the client is at `ip`.
fn proxied_from(ip: &str) -> Vec<u8> {
    format!("PROXY TCP4 {ip} 192.0.2.1 50000 1883\r\n").into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_in_one_tenant_never_lock_out_another_tenants_client_id() {
    // PROXY protocol gives each attempt its own address, so only the client-id limit applies.
    let server = TestServer::start_with(|c| c.proxy_protocol = vec![ListenerName::Mqtt]).await;
    for tenant in ["acme", "globex"] {
        server.add_tenant(tenant, "allow", false).await;
        server.add_device(tenant, "alice", "pw", None).await;
    }
    let v5 = ProtocolVersion::V5;
    for i in 0..10 {
        let from = proxied_from(&format!("10.0.1.{i}"));
        let guess = login(v5, "X", "alice@acme", &format!("guess-{i}"), true);
        let code = refused_code_after(server.addr, &from, guess).await;
        assert_eq!(code, BAD_LOGIN.0, "guess {i}");
    }
    // acme's X is now throttled from any address (the twin showing the limit engaged)...
    let right = login(v5, "X", "alice@acme", "pw", true);
    let code = refused_code_after(server.addr, &proxied_from("10.0.2.1"), right).await;
    assert_eq!(code, 0x8A, "acme's X after ten failed logins");
    // ...and globex's X is not.
    let right = login(v5, "X", "alice@globex", "pw", true);
    let (code, _open) = connack_code(server.addr, &proxied_from("10.0.2.2"), right).await;
    assert_eq!(code, 0x00, "globex's X was locked out by failures in acme");
}

// ---- ACL placeholders fed with hostile identities. ----

/// A tenant `fleet` that denies what no rule allows, with `rules` and a rule letting everyone
/// use fence topics.
async fn fleet(server: &TestServer, anonymous: bool, rules: &[(&str, &str)]) {
    server.add_tenant("fleet", "deny", anonymous).await;
    server
        .add_rule("fleet", "allow", "all", "fence/#", json!({}))
        .await;
    for (action, filter) in rules {
        server
            .add_rule("fleet", "allow", action, filter, json!({}))
            .await;
    }
}

/// Client ids that would widen `devices/${clientid}/#` if substituted into the filter text.
const HOSTILE_IDS: [&str; 8] = [
    "+",
    "#",
    "a/b",
    "%",
    "${clientid}",
    "victim/#",
    "+/victim",
    "*",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_hostile_client_ids_cannot_widen_a_clientid_publish_rule() {
    let server = TestServer::start().await;
    fleet(
        &server,
        true,
        &[
            ("publish", "devices/${clientid}/#"),
            ("subscribe", "devices/#"),
        ],
    )
    .await;
    let mut observer = Observer::anonymous(server.addr, "fleet", "observer", &["devices/#"]).await;
    for id in HOSTILE_IDS {
        let mut c = v5_as(server.addr, id, "@fleet", "", |_| {}).await;
        let mut targets = vec!["devices/victim/cmd".to_owned()];
        if id == "a/b" {
            targets.push("devices/a/b/cmd".to_owned());
        }
        for topic in targets {
            let ack = c.publish_acked(&topic, false, "forged").await;
            assert_eq!(
                ack.reason,
                PubAckReason::NotAuthorized,
                "client id {id:?} published to {topic}"
            );
        }
    }
    let mut victim = v5_as(server.addr, "victim", "@fleet", "", |_| {}).await;
    routed5(&mut victim, "devices/victim/cmd", false, "genuine").await;
    observer
        .assert_exactly("the observer", &[("devices/victim/cmd", "genuine")])
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v311_hostile_client_ids_cannot_widen_a_clientid_publish_rule() {
    let server = TestServer::start().await;
    fleet(
        &server,
        true,
        &[
            ("publish", "devices/${clientid}/#"),
            ("subscribe", "devices/#"),
        ],
    )
    .await;
    let mut observer = Observer::anonymous(server.addr, "fleet", "observer", &["devices/#"]).await;
    for id in HOSTILE_IDS {
        // 3.1.1 cannot say no: the message is acknowledged and dropped.
        let mut c = v4_as(server.addr, id, "@fleet", "", |_| {}).await;
        routed4(
            &mut c,
            "devices/victim/cmd",
            false,
            &format!("forged by {id}"),
        )
        .await;
        routed4(&mut c, "devices/a/b/cmd", false, &format!("forged by {id}")).await;
    }
    let mut victim = v4_as(server.addr, "victim", "@fleet", "", |_| {}).await;
    routed4(&mut victim, "devices/victim/cmd", false, "genuine").await;
    let mut a = v4_as(server.addr, "a", "@fleet", "", |_| {}).await;
    routed4(&mut a, "devices/a/b/cmd", false, "genuine a").await;
    observer
        .assert_exactly(
            "the observer",
            &[
                ("devices/victim/cmd", "genuine"),
                ("devices/a/b/cmd", "genuine a"),
            ],
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_user_names_cannot_widen_a_username_publish_rule() {
    let server = TestServer::start().await;
    fleet(
        &server,
        false,
        &[("publish", "users/${username}/#"), ("subscribe", "users/#")],
    )
    .await;
    let names = ["+", "#", "a/b", "%", "${username}"];
    for (i, name) in names.iter().enumerate() {
        server
            .add_device("fleet", name, &format!("pw-{i}"), None)
            .await;
    }
    server
        .add_device("fleet", "victim", "victim-pw", None)
        .await;
    server.add_device("fleet", "observer", "obs-pw", None).await;
    let mut observer = Observer::start(
        server.addr,
        "observer",
        "observer@fleet",
        "obs-pw",
        &["users/#"],
    )
    .await;
    for (i, name) in names.iter().enumerate() {
        let user = format!("{name}@fleet");
        let mut c = v5_as(
            server.addr,
            &format!("c{i}"),
            &user,
            &format!("pw-{i}"),
            |_| {},
        )
        .await;
        for topic in ["users/victim/cmd", "users/a/b/cmd"] {
            let ack = c.publish_acked(topic, false, "forged").await;
            assert_eq!(
                ack.reason,
                PubAckReason::NotAuthorized,
                "user name {name:?} published to {topic}"
            );
        }
    }
    let mut victim = v5_as(server.addr, "v", "victim@fleet", "victim-pw", |_| {}).await;
    routed5(&mut victim, "users/victim/cmd", false, "genuine").await;
    observer
        .assert_exactly("the observer", &[("users/victim/cmd", "genuine")])
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_client_ids_cannot_widen_a_clientid_subscribe_rule() {
    let server = TestServer::start().await;
    fleet(&server, true, &[("subscribe", "devices/${clientid}/#")]).await;
    server
        .add_rule(
            "fleet",
            "allow",
            "publish",
            "devices/#",
            json!({ "client_id": "pub" }),
        )
        .await;
    let mut attackers = Vec::new();
    for (id, filters) in [
        ("+", &["devices/+/#", "devices/+/cmd", "devices/+"][..]),
        ("#", &["devices/#", "devices/victim/#"]),
        ("a/b", &["devices/a/b/#", "devices/a/#"]),
        ("victim/#", &["devices/victim/#"]),
        ("${clientid}", &["devices/victim/cmd"]),
    ] {
        let mut c = v5_as(server.addr, id, "@fleet", "", |_| {}).await;
        let request = filters
            .iter()
            .map(|f| Filter::new(*f, Q5::AtMostOnce))
            .collect();
        // Refused, whichever failure code the server is configured to give (0x80 or 0x87).
        let ack = c.subscribe_filters(request, None).await;
        assert_eq!(ack.return_codes.len(), filters.len());
        assert!(
            !ack.return_codes
                .iter()
                .any(|r| matches!(r, SubscribeReasonCode::Success(_))),
            "client id {id:?} subscribed to {filters:?}: {:?}",
            ack.return_codes
        );
        attackers.push((id, Observer::with(c, &[]).await));
    }
    let mut victim =
        Observer::anonymous(server.addr, "fleet", "victim", &["devices/victim/#"]).await;
    let mut p = v5_as(server.addr, "pub", "@fleet", "", |_| {}).await;
    routed5(&mut p, "devices/victim/cmd", false, "for victim").await;
    routed5(&mut p, "devices/a/b/x", false, "for a").await;
    victim
        .assert_exactly("victim", &[("devices/victim/cmd", "for victim")])
        .await;
    for (id, o) in &mut attackers {
        o.assert_nothing(&format!("client id {id:?}")).await;
    }
}

// ---- Revocation in one tenant leaves the others alone. ----

/// Tenants `acme` and `globex` (default allow, no anonymous clients), each with a device
/// `alice` whose password is `pw`; returns globex's device id.
async fn twin_devices(server: &TestServer) -> String {
    let mut globex_id = String::new();
    for tenant in ["acme", "globex"] {
        server.add_tenant(tenant, "allow", false).await;
        let device = server.add_device(tenant, "alice", "pw", None).await;
        globex_id = device["id"].as_str().unwrap().to_owned();
    }
    globex_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_device_kicks_only_its_own_tenants_connection() {
    let server = TestServer::start().await;
    let globex_id = twin_devices(&server).await;
    let mut acme = v5_as(server.addr, "alice", "alice@acme", "pw", persistent5).await;
    let mut globex = v5_as(server.addr, "alice", "alice@globex", "pw", |_| {}).await;
    server
        .api_ok(
            Method::DELETE,
            &format!("/api/v1/tenants/globex/devices/{globex_id}"),
            None,
        )
        .await;
    assert!(globex.ended(WAIT).await.is_some(), "globex's alice kicked");
    assert_alive5(&mut acme, "alive").await;
    drop(acme);
    let acme = v5_as(server.addr, "alice", "alice@acme", "pw", persistent5).await;
    assert!(
        acme.connack.session_present,
        "acme's alice keeps her session"
    );
    let connect = login(ProtocolVersion::V5, "alice", "alice@globex", "pw", true);
    assert_refused(server.addr, connect, BAD_LOGIN, "deleted device").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_a_device_kicks_only_its_own_tenants_connection() {
    let server = TestServer::start().await;
    let globex_id = twin_devices(&server).await;
    let mut acme = v5_as(server.addr, "alice", "alice@acme", "pw", |_| {}).await;
    let path = format!("/api/v1/tenants/globex/devices/{globex_id}");
    for change in [json!({ "password": "new-pw" }), json!({ "enabled": false })] {
        let password = if change.get("password").is_some() {
            "pw"
        } else {
            "new-pw"
        };
        let mut globex = v5_as(server.addr, "alice", "alice@globex", password, |_| {}).await;
        server.api_ok(Method::PATCH, &path, Some(change)).await;
        assert!(globex.ended(WAIT).await.is_some(), "globex's alice kicked");
        assert_alive5(&mut acme, "alive").await;
    }
}

/// Publishes `data/x` from `c` until the broker answers "not authorized" (the rule change has
/// reached the edge), or panics after a while.
async fn until_refused(c: &mut V5Client) {
    let deadline = Instant::now() + WAIT;
    while c.publish_acked("data/x", false, "probe").await.reason != PubAckReason::NotAuthorized {
        assert!(Instant::now() < deadline, "the rule change never applied");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_rules_in_one_tenant_never_changes_another_tenants_clients() {
    let server = TestServer::start().await;
    let mut rule_ids = Vec::new();
    for tenant in ["acme", "globex"] {
        server.add_tenant(tenant, "deny", true).await;
        server
            .add_rule(tenant, "allow", "all", "fence/#", json!({}))
            .await;
        rule_ids.push(
            server
                .add_rule(tenant, "allow", "all", "data/#", json!({}))
                .await,
        );
    }
    let mut acme_obs = Observer::anonymous(server.addr, "acme", "obs", &["data/#"]).await;
    let mut acme_pub = v5_as(server.addr, "pub", "@acme", "", |_| {}).await;
    let mut globex_pub = v5_as(server.addr, "pub", "@globex", "", |_| {}).await;
    server
        .api_ok(
            Method::DELETE,
            &format!("/api/v1/tenants/globex/acl-rules/{}", rule_ids[1]),
            None,
        )
        .await;
    until_refused(&mut globex_pub).await;
    assert_alive5(&mut acme_pub, "alive").await;
    routed5(&mut acme_pub, "data/x", false, "acme").await;
    acme_obs
        .assert_exactly("acme's subscriber", &[("data/x", "acme")])
        .await;
    assert_alive5(&mut acme_obs.client, "data/alive").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspending_or_deleting_a_tenant_never_touches_another_tenant() {
    let server = TestServer::start().await;
    for tenant in ["acme", "globex"] {
        server.add_tenant(tenant, "allow", true).await;
    }
    let mut acme = v5_as(server.addr, "X", "@acme", "", persistent5).await;
    acme.subscribe("q/#", Q5::AtLeastOnce).await;
    routed5(&mut acme, "cfg/a", true, "acme-cfg").await;
    let mut globex = v5_as(server.addr, "X", "@globex", "", |_| {}).await;
    server
        .api_ok(
            Method::PATCH,
            "/api/v1/tenants/globex",
            Some(json!({ "status": "suspended" })),
        )
        .await;
    assert!(globex.ended(WAIT).await.is_some(), "globex's X kicked");
    let connect = login(ProtocolVersion::V5, "X", "@globex", "", true);
    assert_refused(server.addr, connect, NOT_AUTHORIZED, "suspended tenant").await;
    assert_alive5(&mut acme, "alive").await;

    let (status, _) = server
        .api(Method::DELETE, "/api/v1/tenants/globex", None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let connect = login(ProtocolVersion::V5, "X", "@globex", "", true);
    let code = refused_code(server.addr, connect).await;
    // Refused either way: "suspended" until the edge has applied the deletion event (it is
    // applied asynchronously), "unknown tenant" after.
    assert!(
        [BAD_LOGIN.0, NOT_AUTHORIZED.0].contains(&code),
        "a deleted tenant answered 0x{code:02x}"
    );
    assert_alive5(&mut acme, "alive").await;
    let mut o = Observer::anonymous(server.addr, "acme", "late", &["cfg/#"]).await;
    o.assert_exactly("acme", &[("cfg/a", "acme-cfg")]).await;
}
