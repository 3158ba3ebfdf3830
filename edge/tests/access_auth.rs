//! Edge authentication against the control plane's devices and credentials (issue 4, item 4),
//! with real clients over MQTT 3.1.1 and 5.0: password devices, disabled devices, anonymous
//! access, JWT devices (ES256 and EdDSA keys registered through the API; expiry, not-before,
//! audience, key, client-id claim and topic grants), client ids bound to a device, and the
//! failed-connect limit (configurable failures per client id and per address in a window, then
//! 5.0 CONNACK 0x8A Banned / 3.1.1 return code 5).
//!
//! 3.1.1 return codes decode to their 5.0 names: 4 is `BadUserNameOrPassword`, 5 is
//! `NotAuthorized`, 2 is `ClientIdentifierNotValid`.
#![allow(clippy::unwrap_used)]

mod access;
mod support;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use access::{
    JwtSigner, VERSIONS, anonymous, assert_alive, closed_by_server, connack, connack_from,
    connected, device, login, publish, subscribe, unix_now, until_fence, with_will,
};
use axum::http::Method;
use serde_json::{Value, json};
use stratus_codec::{ProtocolVersion, QoS, ReasonCode};
use support::TestServer;

const V5: ProtocolVersion = ProtocolVersion::V5;

/// What a 5.0 client hears for a refused credential, and what the 3.1.1 return code decodes to.
fn refused(version: ProtocolVersion, v5: ReasonCode) -> ReasonCode {
    match (version.is_v5(), v5) {
        (true, reason) => reason,
        (false, ReasonCode::BadUserNameOrPassword) => ReasonCode::BadUserNameOrPassword,
        (false, ReasonCode::ClientIdentifierNotValid) => ReasonCode::ClientIdentifierNotValid,
        (false, _) => ReasonCode::NotAuthorized,
    }
}

/// A loopback address other than 127.0.0.1, so that the failed-connect limit of one case does
/// not count another's failures.
fn loopback(n: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, n))
}

/// A server with tenant `acme` (default deny, no anonymous clients) and device `alice`.
async fn acme() -> TestServer {
    let server = TestServer::start().await;
    server.add_tenant("acme", "deny", false).await;
    server.add_device("acme", "alice", "s3cret", None).await;
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_device_is_accepted_and_wrong_or_missing_passwords_are_refused() {
    let server = acme().await;
    for version in VERSIONS {
        let mut ok = connected(
            server.addr,
            device(version, "a1", "alice", "acme", "s3cret"),
        )
        .await;
        assert_alive(&mut ok, version).await;
        let bad = refused(version, ReasonCode::BadUserNameOrPassword);
        let wrong = device(version, "a2", "alice", "acme", "s3cret ");
        assert_eq!(connack(server.addr, wrong).await, bad, "{version:?} wrong");
        let missing = login(version, "a3", Some("alice@acme"), None);
        assert_eq!(connack(server.addr, missing).await, bad, "{version:?} none");
        let unknown = device(version, "a4", "mallory", "acme", "s3cret");
        assert_eq!(connack(server.addr, unknown).await, bad, "{version:?} user");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_device_is_refused_even_with_its_password() {
    let server = acme().await;
    server
        .api_ok(
            Method::POST,
            "/api/v1/tenants/acme/devices",
            Some(json!({"username": "bob", "password": "pw", "enabled": false})),
        )
        .await;
    for version in VERSIONS {
        let bob = device(version, "b1", "bob", "acme", "pw");
        let expected = refused(version, ReasonCode::NotAuthorized);
        assert_eq!(connack(server.addr, bob).await, expected, "{version:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_clients_are_refused_unless_the_tenant_allows_them() {
    let server = acme().await;
    server.add_tenant("open", "deny", true).await;
    for version in VERSIONS {
        let closed = anonymous(version, "anon", "acme");
        let expected = refused(version, ReasonCode::NotAuthorized);
        assert_eq!(connack(server.addr, closed).await, expected, "{version:?}");
        let mut ok = connected(server.addr, anonymous(version, "anon", "open")).await;
        assert_alive(&mut ok, version).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_id_bound_to_a_device_refuses_other_principals_and_keeps_its_owner() {
    let server = acme().await;
    server.add_tenant("open", "allow", true).await;
    server
        .add_device("acme", "pump", "pump-pw", Some("pump-7"))
        .await;
    server
        .add_device("open", "pump", "pump-pw", Some("pump-7"))
        .await;
    server.add_device("open", "eve", "eve-pw", None).await;
    for version in VERSIONS {
        let mut owner = connected(
            server.addr,
            device(version, "pump-7", "pump", "open", "pump-pw"),
        )
        .await;
        let not_authorized = refused(version, ReasonCode::NotAuthorized);
        let intruders = [
            (
                "another device",
                device(version, "pump-7", "eve", "open", "eve-pw"),
            ),
            ("anonymous", anonymous(version, "pump-7", "open")),
        ];
        for (who, connect) in intruders {
            assert_eq!(
                connack(server.addr, connect).await,
                not_authorized,
                "{version:?}: {who} took a bound client id"
            );
        }
        // The owner was not kicked: its connection answers before anything else arrives.
        assert_alive(&mut owner, version).await;
        // A device bound to a client id cannot use another one.
        let elsewhere = device(version, "pump-8", "pump", "open", "pump-pw");
        let expected = refused(version, ReasonCode::ClientIdentifierNotValid);
        assert_eq!(connack(server.addr, elsewhere).await, expected);
        // The same client id in another tenant is another client.
        let mut twin = connected(
            server.addr,
            device(version, "pump-7", "pump", "acme", "pump-pw"),
        )
        .await;
        assert_alive(&mut twin, version).await;
        assert_alive(&mut owner, version).await;
    }
}

// ---- JWT devices ----

/// Tenant `meters` (default allow, no anonymous clients) with JWT device `meter`; returns the
/// server and a signer whose key (audience `stratus`) the tenant trusts, with the key's id.
async fn jwt_tenant(signer: JwtSigner) -> (TestServer, JwtSigner, String) {
    let server = TestServer::start().await;
    server.add_tenant("meters", "allow", false).await;
    server
        .api_ok(
            Method::POST,
            "/api/v1/tenants/meters/devices",
            Some(json!({"username": "meter", "jwt": true})),
        )
        .await;
    let kid = signer.register(&server, "meters", Some("stratus")).await;
    (server, signer, kid)
}

/// Claims valid for ten minutes for `client_id`, audience `stratus`.
fn claims(client_id: &str) -> Value {
    json!({"sub": client_id, "aud": "stratus", "exp": unix_now() + 600, "client_id": client_id})
}

/// A CONNECT of the JWT device `meter` presenting `token`.
fn token_login(version: ProtocolVersion, client_id: &str, token: &str) -> stratus_codec::Connect {
    login(
        version,
        client_id,
        Some("meter@meters"),
        Some(token.as_bytes()),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_device_with_a_valid_token_is_accepted_for_es256_and_eddsa_keys() {
    for signer in [JwtSigner::es256(), JwtSigner::ed25519()] {
        let (server, signer, kid) = jwt_tenant(signer).await;
        for version in VERSIONS {
            let id = format!("m-{}-{version:?}", signer.algorithm);
            let with_kid = signer.sign(&claims(&id), Some(&kid));
            let mut c = connected(server.addr, token_login(version, &id, &with_kid)).await;
            assert_alive(&mut c, version).await;
            let without_kid = signer.sign(&claims(&id), None);
            let mut c = connected(server.addr, token_login(version, &id, &without_kid)).await;
            assert_alive(&mut c, version).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_tokens_failing_validation_are_refused() {
    let (server, signer, kid) = jwt_tenant(JwtSigner::es256()).await;
    let stranger = JwtSigner::es256();
    let now = unix_now();
    let mut cases: Vec<(&str, String)> = Vec::new();
    let with = |patch: Value| {
        let mut c = claims("m1");
        c.as_object_mut()
            .unwrap()
            .extend(patch.as_object().unwrap().clone());
        c
    };
    // `exp` and `nbf` have 30 s of leeway for clock skew.
    cases.push((
        "expired",
        signer.sign(&with(json!({"exp": now - 120})), None),
    ));
    let early = with(json!({"nbf": now + 300}));
    cases.push(("not yet valid", signer.sign(&early, None)));
    let wrong_aud = with(json!({"aud": "someone-else"}));
    cases.push(("wrong audience", signer.sign(&wrong_aud, None)));
    let mut no_aud = claims("m1");
    no_aud.as_object_mut().unwrap().remove("aud");
    cases.push(("no audience", signer.sign(&no_aud, None)));
    cases.push(("unknown key", stranger.sign(&claims("m1"), None)));
    cases.push((
        "unknown kid",
        stranger.sign(&claims("m1"), Some("no-such-key")),
    ));
    cases.push((
        "stranger under our kid",
        stranger.sign(&claims("m1"), Some(&kid)),
    ));
    cases.push(("another client id", signer.sign(&claims("m2"), None)));
    let mut forged = signer.sign(&claims("m1"), None);
    forged.replace_range(forged.len() - 4.., "AAAA");
    cases.push(("bad signature", forged));
    for version in VERSIONS {
        for (i, (case, token)) in cases.iter().enumerate() {
            // Each case from its own address: together they exceed the failed-connect limit.
            let from = loopback(10 + i as u8 + if version.is_v5() { 20 } else { 0 });
            let ack = connack_from(server.addr, from, token_login(version, "m1", token)).await;
            let expected = refused(version, ReasonCode::BadUserNameOrPassword);
            assert_eq!(ack.reason, expected, "{version:?}: {case}");
        }
        // The positive twin: the same client id with a good token.
        let good = signer.sign(&claims("m1"), None);
        let ack = connack_from(server.addr, loopback(50), token_login(version, "m1", &good)).await;
        assert_eq!(ack.reason, ReasonCode::Success, "{version:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_topic_grants_narrow_what_the_tenant_allows() {
    let (server, signer, _) = jwt_tenant(JwtSigner::ed25519()).await;
    server.add_device("meters", "ops", "ops-pw", None).await;
    let mut ops = connected(server.addr, device(V5, "ops", "ops", "meters", "ops-pw")).await;
    assert_eq!(
        subscribe(&mut ops, V5, 1, "#", QoS::AtMostOnce).await,
        ReasonCode::Success
    );
    for version in VERSIONS {
        let id = format!("m-{version:?}");
        let mut c = claims(&id);
        c["acl"] = json!({"publish": ["meters/${clientid}/#"], "subscribe": ["cmd/${clientid}"]});
        let token = signer.sign(&c, None);
        let mut m = connected(server.addr, token_login(version, &id, &token)).await;
        let own = format!("meters/{id}/t");
        assert!(
            !publish(&mut m, version, &own, QoS::AtLeastOnce, 1, b"own")
                .await
                .is_error()
        );
        let denied = if version.is_v5() {
            ReasonCode::NotAuthorized
        } else {
            ReasonCode::Success // 3.1.1 cannot say no: acknowledged and dropped
        };
        for (n, topic) in ["meters/other/t", "alarms/x"].into_iter().enumerate() {
            let reason =
                publish(&mut m, version, topic, QoS::AtLeastOnce, 2 + n as u16, b"x").await;
            assert_eq!(reason, denied, "{version:?} {topic}");
        }
        assert_eq!(
            subscribe(&mut m, version, 9, &format!("cmd/{id}"), QoS::AtMostOnce).await,
            ReasonCode::Success
        );
        assert_eq!(
            subscribe(&mut m, version, 10, "cmd/#", QoS::AtMostOnce).await,
            access::subscribe_refused(version),
            "{version:?}: the token grants one command topic, not all"
        );
        let fence = format!("fence-{version:?}");
        publish(
            &mut m,
            version,
            &own,
            QoS::AtLeastOnce,
            11,
            fence.as_bytes(),
        )
        .await;
        let seen = until_fence(&mut ops, V5, &fence).await;
        assert_eq!(seen, vec![(own.clone(), "own".to_owned())], "{version:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_will_outside_the_token_grants_is_refused() {
    let (server, signer, _) = jwt_tenant(JwtSigner::es256()).await;
    for version in VERSIONS {
        let id = format!("w-{version:?}");
        let mut c = claims(&id);
        c["acl"] = json!({"publish": ["meters/${clientid}/#"]});
        let token = signer.sign(&c, None);
        // The tenant would allow the will's topic; the token does not, and the token cannot
        // change while the connection lasts, so the will is refused at CONNECT.
        let outside = with_will(token_login(version, &id, &token), "alarms/x", b"gone");
        let expected = refused(version, ReasonCode::NotAuthorized);
        assert_eq!(connack(server.addr, outside).await, expected, "{version:?}");
        let inside = with_will(
            token_login(version, &id, &token),
            &format!("meters/{id}/status"),
            b"gone",
        );
        let mut ok = connected(server.addr, inside).await;
        assert_alive(&mut ok, version).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_connection_is_closed_when_its_token_expires() {
    let (server, signer, _) = jwt_tenant(JwtSigner::es256()).await;
    let mut c = claims("short");
    c["exp"] = json!(unix_now() + 2);
    let token = signer.sign(&c, None);
    let mut m = connected(server.addr, token_login(V5, "short", &token)).await;
    let reason = closed_by_server(&mut m, Duration::from_secs(5)).await;
    assert_eq!(reason, Some(ReasonCode::NotAuthorized));
}

// ---- Failed-connect limit ----

/// A server whose failed-connect limits are small and differ per client id and per address.
async fn acme_with_failure_limits() -> TestServer {
    let server = TestServer::start_with(|c| {
        c.limits.max_failed_connects_per_client_id = 4;
        c.limits.max_failed_connects_per_address = 6;
    })
    .await;
    server.add_tenant("acme", "deny", false).await;
    server.add_device("acme", "alice", "s3cret", None).await;
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_connects_block_the_client_id_and_the_address_for_the_window() {
    let server = acme_with_failure_limits().await;
    let (guesser, elsewhere) = (loopback(2), loopback(3));
    let attempt = |id: &str, password: &str| device(V5, id, "alice", "acme", password);
    for i in 0..4 {
        let ack = connack_from(
            server.addr,
            guesser,
            attempt("victim", &format!("guess-{i}")),
        )
        .await;
        assert_eq!(ack.reason, ReasonCode::BadUserNameOrPassword, "guess {i}");
    }
    // The client id's limit is reached: the right password no longer helps, from anywhere.
    for from in [guesser, elsewhere] {
        let ack = connack_from(server.addr, from, attempt("victim", "s3cret")).await;
        assert_eq!(ack.reason, ReasonCode::Banned, "victim from {from}");
    }
    let v3 = device(ProtocolVersion::V3_1_1, "victim", "alice", "acme", "s3cret");
    let ack = connack_from(server.addr, elsewhere, v3).await;
    assert_eq!(ack.reason, ReasonCode::NotAuthorized, "3.1.1 return code 5");
    // The address (4 failures, limit 6) still admits another client id...
    let ack = connack_from(server.addr, guesser, attempt("fresh", "s3cret")).await;
    assert_eq!(ack.reason, ReasonCode::Success);
    // ...until it reaches its own limit, whatever client ids it guesses with.
    for i in 0..2 {
        let ack = connack_from(server.addr, guesser, attempt(&format!("other-{i}"), "nope")).await;
        assert_eq!(ack.reason, ReasonCode::BadUserNameOrPassword, "other-{i}");
    }
    let ack = connack_from(server.addr, guesser, attempt("fresh-2", "s3cret")).await;
    assert_eq!(
        ack.reason,
        ReasonCode::Banned,
        "the address reached its limit"
    );
    // Another client id from another address is not affected.
    let ack = connack_from(server.addr, elsewhere, attempt("fresh-3", "s3cret")).await;
    assert_eq!(ack.reason, ReasonCode::Success);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_successful_connect_does_not_reset_its_address_failure_count() {
    let server = acme_with_failure_limits().await;
    server.add_device("acme", "mallory", "own-pw", None).await;
    let from = loopback(4);
    for i in 0..5 {
        let guess = device(V5, &format!("g{i}"), "alice", "acme", "nope");
        let ack = connack_from(server.addr, from, guess).await;
        assert_eq!(ack.reason, ReasonCode::BadUserNameOrPassword, "guess {i}");
    }
    // The guesser's own valid credentials must not buy it more guesses.
    let own = device(V5, "mine", "mallory", "acme", "own-pw");
    assert_eq!(
        connack_from(server.addr, from, own).await.reason,
        ReasonCode::Success
    );
    let sixth = device(V5, "g5", "alice", "acme", "nope");
    assert_eq!(
        connack_from(server.addr, from, sixth).await.reason,
        ReasonCode::BadUserNameOrPassword
    );
    let right = device(V5, "g6", "alice", "acme", "s3cret");
    assert_eq!(
        connack_from(server.addr, from, right).await.reason,
        ReasonCode::Banned,
        "six failures from this address in the window"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connect_gets_no_session_and_no_will() {
    // A refused CONNECT must leave nothing behind: its will is not published.
    let server = acme().await;
    server
        .add_rule("acme", "allow", "all", "#", json!({}))
        .await;
    let mut watcher = connected(server.addr, device(V5, "w", "alice", "acme", "s3cret")).await;
    assert_eq!(
        subscribe(&mut watcher, V5, 1, "will/#", QoS::AtMostOnce).await,
        ReasonCode::Success
    );
    let bad = with_will(device(V5, "x", "alice", "acme", "wrong"), "will/x", b"gone");
    let (mut c, ack) = support::raw::open(server.addr, bad).await;
    assert_eq!(ack.reason, ReasonCode::BadUserNameOrPassword);
    assert!(c.expect_close(Duration::from_secs(5)).await.is_empty());
    publish(
        &mut watcher,
        V5,
        "will/fence",
        QoS::AtLeastOnce,
        2,
        b"fence",
    )
    .await;
    assert_eq!(until_fence(&mut watcher, V5, "fence").await, vec![]);
}
