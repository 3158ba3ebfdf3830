//! rumqttc (with rustls) against a real broker over TLS and WebSocket, MQTT 3.1.1 and 5.0: QoS
//! round trips over TLS; certificate rotation while clients stay connected (new clients get the
//! new certificate, connected ones keep exchanging messages, a client trusting only the old CA is
//! refused); rumqttc's websocket transport over ws and wss with the tenant named by the `Host`
//! header; and `device@tenant` user names on plain TCP, which land in that tenant only (an unknown
//! tenant is refused with "bad user name or password").
//!
//! rumqttc connects by the name it verifies, so TLS tests use `localhost` (the only test name
//! that resolves); the SNI tenant endpoints are covered by the paho, MQTT.js and mosquitto suites.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use rumqttc::{TlsConfiguration, Transport};
use rustls::ClientConfig;
use support::TestServer;
use support::clients::{Q4, Q5, V4Client, V5Client, topic5};
use support::pki::{Ca, ServerPki, client_config, install_crypto_provider};
use support::tenant_watch::TenantWatch;
use tokio::time::Instant;

/// How long a rotated certificate may take to reach new connections.
const ROTATION_WAIT: Duration = Duration::from_secs(10);

async fn start(tenants: &[&str]) -> (TestServer, ServerPki) {
    install_crypto_provider();
    let pki = ServerPki::new();
    let server = TestServer::start_with(|c| pki.configure(c, tenants)).await;
    (server, pki)
}

fn tls(config: ClientConfig) -> Transport {
    Transport::tls_with_config(TlsConfiguration::Rustls(Arc::new(config)))
}

/// A 3.1.1 client over TLS to `localhost`, trusting `ca` only.
async fn v4_tls(server: &TestServer, ca: &Ca, id: &str) -> Result<V4Client, String> {
    let port = server.mqtts_addr().port();
    let transport = tls(client_config(&[&ca.der], None));
    V4Client::try_connect_with(server.mqtts_addr(), id, |o| {
        *o = rumqttc::MqttOptions::new(id, "localhost", port);
        o.set_transport(transport);
    })
    .await
}

/// A 5.0 client over TLS to `localhost`, trusting `ca` only.
async fn v5_tls(server: &TestServer, ca: &Ca, id: &str) -> Result<V5Client, String> {
    let port = server.mqtts_addr().port();
    let transport = tls(client_config(&[&ca.der], None));
    V5Client::try_connect_with(server.mqtts_addr(), id, |o| {
        *o = rumqttc::v5::MqttOptions::new(id, "localhost", port);
        o.set_transport(transport);
    })
    .await
}

// ---- Round trips over TLS. ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v311_over_tls_round_trips_at_qos_0_1_and_2() {
    let (server, pki) = start(&[]).await;
    let mut sub = v4_tls(&server, &pki.ca, "tls-sub").await.unwrap();
    sub.subscribe("tls/+", Q4::ExactlyOnce).await;
    let mut publisher = v4_tls(&server, &pki.ca, "tls-pub").await.unwrap();
    for qos in [Q4::AtMostOnce, Q4::AtLeastOnce, Q4::ExactlyOnce] {
        let topic = format!("tls/{qos:?}");
        publisher.publish(&topic, qos, false, topic.clone()).await;
        let got = sub.recv().await;
        assert_eq!((got.topic.as_str(), got.qos), (topic.as_str(), qos));
        assert_eq!(got.payload, topic.as_bytes());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_over_tls_round_trips_at_qos_0_1_and_2() {
    let (server, pki) = start(&[]).await;
    let mut sub = v5_tls(&server, &pki.ca, "tls-sub").await.unwrap();
    sub.subscribe("tls/+", Q5::ExactlyOnce).await;
    let mut publisher = v5_tls(&server, &pki.ca, "tls-pub").await.unwrap();
    for qos in [Q5::AtMostOnce, Q5::AtLeastOnce, Q5::ExactlyOnce] {
        let topic = format!("tls/{qos:?}");
        publisher.publish(&topic, qos, false, topic.clone()).await;
        let got = sub.recv().await;
        assert_eq!((topic5(&got), got.qos), (topic.as_str(), qos));
        assert_eq!(got.payload, topic.as_bytes());
    }
}

// ---- Certificate rotation. ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connected_clients_keep_exchanging_messages_across_a_certificate_rotation() {
    let (server, pki) = start(&[]).await;
    let mut v4 = v4_tls(&server, &pki.ca, "stays-v4").await.unwrap();
    v4.subscribe("rotation/#", Q4::AtLeastOnce).await;
    let mut v5 = v5_tls(&server, &pki.ca, "stays-v5").await.unwrap();
    v5.subscribe("rotation/#", Q5::AtLeastOnce).await;

    // Rotate to a certificate from a new CA, then wait until a new connection gets it: a client
    // trusting only the new CA cannot connect before.
    let new_ca = Ca::new("Rotated server CA");
    pki.files
        .write_leaf("default", &new_ca.server(&["localhost"]));
    let deadline = Instant::now() + ROTATION_WAIT;
    let mut fresh = loop {
        match v5_tls(&server, &new_ca, "fresh").await {
            Ok(c) => break c,
            Err(e) => assert!(
                Instant::now() < deadline,
                "the rotated certificate was not served within {ROTATION_WAIT:?}: {e}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };

    // A client that trusts only the old CA is now refused by its own certificate check...
    let old = v4_tls(&server, &pki.ca, "trusts-old-ca").await.err();
    let old = old.expect("a client trusting only the old CA accepted the rotated certificate");
    assert!(old.contains("UnknownIssuer"), "{old}");

    // ...while the connections made before the rotation still carry messages both ways.
    fresh
        .publish("rotation/from-new", Q5::AtLeastOnce, false, "new")
        .await;
    v4.publish("rotation/from-v4", Q4::AtLeastOnce, false, "v4")
        .await;
    v5.publish("rotation/from-v5", Q5::AtLeastOnce, false, "v5")
        .await;
    let mut got_v4: Vec<String> = Vec::new();
    let mut got_v5: Vec<String> = Vec::new();
    for _ in 0..3 {
        got_v4.push(v4.recv().await.topic);
        got_v5.push(topic5(&v5.recv().await).to_owned());
    }
    got_v4.sort();
    got_v5.sort();
    let want = ["rotation/from-new", "rotation/from-v4", "rotation/from-v5"];
    assert_eq!(got_v4, want);
    assert_eq!(got_v5, want);
}

// ---- rumqttc's websocket transport. ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_client_lands_in_the_tenant_named_by_its_host_header() {
    let (server, _pki) = start(&["acme"]).await;
    let mut watch = TenantWatch::start(server.addr, &["acme", "dev"]).await;
    let url = format!("ws://127.0.0.1:{}/mqtt", server.ws_addr().port());
    let mut c = V5Client::connect_with(server.ws_addr(), "ws-host", |o| {
        *o = rumqttc::v5::MqttOptions::new("ws-host", url, 0);
        o.set_transport(Transport::Ws);
        o.set_request_modifier(|mut request| async move {
            let host = "acme.mqtt.test".parse().unwrap();
            request.headers_mut().insert("Host", host);
            request
        });
    })
    .await;
    c.subscribe("rumqttc/ws/#", Q5::AtLeastOnce).await;
    c.publish_acked("rumqttc/ws/hello", false, "hi").await;
    assert_eq!(topic5(&c.recv().await), "rumqttc/ws/hello");
    watch.assert_only_in("acme", &["rumqttc/ws/hello"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_client_round_trips_and_its_host_header_names_the_tenant() {
    let (server, pki) = start(&["acme"]).await;
    let mut watch = TenantWatch::start(server.addr, &["acme", "dev"]).await;
    let url = format!("wss://localhost:{}/mqtt", server.wss_addr().port());
    let transport = Transport::wss_with_config(TlsConfiguration::Rustls(Arc::new(client_config(
        &[&pki.ca.der],
        None,
    ))));
    // The server name `localhost` names no tenant, so the Host header decides.
    let mut c = V4Client::connect_with(server.wss_addr(), "wss-host", |o| {
        *o = rumqttc::MqttOptions::new("wss-host", url, 0);
        o.set_transport(transport);
        o.set_request_modifier(|mut request| async move {
            let host = "acme.mqtt.test".parse().unwrap();
            request.headers_mut().insert("Host", host);
            request
        });
    })
    .await;
    c.subscribe("rumqttc/wss/#", Q4::ExactlyOnce).await;
    for qos in [Q4::AtMostOnce, Q4::AtLeastOnce, Q4::ExactlyOnce] {
        let topic = format!("rumqttc/wss/{qos:?}");
        c.publish(&topic, qos, false, "x").await;
        let got = c.recv().await;
        assert_eq!((got.topic.as_str(), got.qos), (topic.as_str(), qos));
    }
    let topics = [
        "rumqttc/wss/AtMostOnce",
        "rumqttc/wss/AtLeastOnce",
        "rumqttc/wss/ExactlyOnce",
    ];
    watch.assert_only_in("acme", &topics).await;
}

// ---- `device@tenant` on plain TCP. ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_at_tenant_user_name_lands_in_that_tenant_only() {
    let (server, _pki) = start(&["acme", "beta"]).await;
    let mut watch = TenantWatch::start(server.addr, &["acme", "beta", "dev"]).await;
    let mut v4 = V4Client::connect_with(server.addr, "sensor-v4", |o| {
        o.set_credentials("sensor-v4@beta", "");
    })
    .await;
    v4.publish_acked("plant/temperature", false, "21.5").await;
    watch.assert_only_in("beta", &["plant/temperature"]).await;

    let mut v5 = V5Client::connect_with(server.addr, "sensor-v5", |o| {
        o.set_credentials("sensor-v5@acme", "");
    })
    .await;
    v5.publish_acked("plant/pressure", false, "1013").await;
    watch.assert_only_in("acme", &["plant/pressure"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_tenant_in_the_user_name_is_refused_with_bad_user_name_or_password() {
    let (server, _pki) = start(&["acme"]).await;
    let v4 = V4Client::try_connect_with(server.addr, "lost-v4", |o| {
        o.set_credentials("sensor@nope", "");
    })
    .await
    .err();
    assert_eq!(
        v4.as_deref(),
        Some("ConnectionRefused(BadUserNamePassword)")
    );
    let v5 = V5Client::try_connect_with(server.addr, "lost-v5", |o| {
        o.set_credentials("sensor@nope", "");
    })
    .await
    .err();
    assert_eq!(
        v5.as_deref(),
        Some("ConnectionRefused(BadUserNamePassword)")
    );
    // The broker keeps serving the tenant it knows.
    let mut known = V5Client::connect_with(server.addr, "known", |o| {
        o.set_credentials("sensor@acme", "");
    })
    .await;
    known.subscribe("still/serving", Q5::AtLeastOnce).await;
    known.publish_acked("still/serving", false, "yes").await;
    assert_eq!(topic5(&known.recv().await), "still/serving");
}
