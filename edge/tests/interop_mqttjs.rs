//! MQTT.js (npm `mqtt` 5.x, pinned in `tests/interop-js/package.json`) from Node against a real
//! broker over WebSocket and WebSocket over TLS, MQTT 3.1.1 and 5.0: QoS 0/1/2 round trips,
//! retained messages, the tenant taken from the TLS server name or the WebSocket `Host` header
//! (and nowhere else: observers in other tenants see nothing), an unknown tenant refused with
//! "bad user name or password", and a certificate for another host refused by the client.
//!
//! Each test starts its own broker with its own certificates (`support::pki`) and runs one
//! scenario of `tests/interop-js/scenarios.js` as a subprocess, which exits 0 when the broker
//! behaved. The test names (`acme.mqtt.test`) resolve nowhere: the script is told to resolve every
//! name to 127.0.0.1 (`--resolve`), so the client still connects by name.
//!
//! Needs Node 18+ and `npm ci --prefix edge/tests/interop-js`; without them every test fails
//! saying so.
#![allow(clippy::unwrap_used)]

mod support;

use support::TestServer;
use support::interop::Finished;
use support::node::run_mqttjs;
use support::pki::ServerPki;
use support::tenant_watch::TenantWatch;

/// The tenant endpoint the tests publish through.
const ACME: &str = "acme.mqtt.test";
/// Topics of the `round_trip` scenario.
const ROUND_TRIP_TOPICS: [&str; 3] = ["js/round-trip/q0", "js/round-trip/q1", "js/round-trip/q2"];

/// A broker with ws, wss and mqtts listeners, the `mqtt.test` tenant domain and tenant `acme`.
async fn start() -> (TestServer, ServerPki) {
    let pki = ServerPki::new();
    let server = TestServer::start_with(|c| pki.configure(c, &["acme"])).await;
    (server, pki)
}

/// Runs `scenario` over `url` with MQTT `version` (4 or 5) and `extra` arguments.
async fn mqttjs(url: &str, scenario: &str, version: u8, extra: &[String]) -> Finished {
    let mut args = vec![
        "--url".to_owned(),
        url.to_owned(),
        "--scenario".to_owned(),
        scenario.to_owned(),
        "--protocol".to_owned(),
        version.to_string(),
    ];
    args.extend_from_slice(extra);
    run_mqttjs(&args).await
}

/// Like `mqttjs`, asserting the scenario passed.
async fn mqttjs_ok(url: &str, scenario: &str, version: u8, extra: &[String]) {
    let what = format!("MQTT.js {scenario} (v{version}) over {url}");
    mqttjs(url, scenario, version, extra)
        .await
        .assert_success(&what);
}

fn ws_url(server: &TestServer) -> String {
    format!("ws://127.0.0.1:{}/mqtt", server.ws_addr().port())
}

/// `wss://HOST:PORT/mqtt` for the broker's WSS listener.
fn wss_url(server: &TestServer, host: &str) -> String {
    format!("wss://{host}:{}/mqtt", server.wss_addr().port())
}

/// Trust the test CA and resolve every name to the loopback.
fn tls_args(pki: &ServerPki) -> Vec<String> {
    vec![
        "--ca".to_owned(),
        pki.files.arg("ca.pem"),
        "--resolve".to_owned(),
        "127.0.0.1".to_owned(),
    ]
}

// ---- Round trips: ws and wss, 3.1.1 and 5.0. ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v311_over_ws_round_trips_at_qos_0_1_and_2() {
    let (server, _pki) = start().await;
    mqttjs_ok(&ws_url(&server), "round_trip", 4, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_over_ws_round_trips_at_qos_0_1_and_2() {
    let (server, _pki) = start().await;
    mqttjs_ok(&ws_url(&server), "round_trip", 5, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v311_over_wss_round_trips_at_qos_0_1_and_2() {
    let (server, pki) = start().await;
    let url = wss_url(&server, "localhost");
    mqttjs_ok(&url, "round_trip", 4, &tls_args(&pki)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_over_wss_round_trips_at_qos_0_1_and_2() {
    let (server, pki) = start().await;
    let url = wss_url(&server, "localhost");
    mqttjs_ok(&url, "round_trip", 5, &tls_args(&pki)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_message_over_wss_reaches_later_subscribers_until_cleared() {
    let (server, pki) = start().await;
    let url = wss_url(&server, ACME);
    for version in [4, 5] {
        mqttjs_ok(&url, "retained", version, &tls_args(&pki)).await;
    }
}

// ---- Tenant endpoints. ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_client_lands_in_the_tenant_named_by_its_server_name() {
    let (server, pki) = start().await;
    let mut watch = TenantWatch::start(server.addr, &["acme", "dev"]).await;
    mqttjs_ok(&wss_url(&server, ACME), "round_trip", 5, &tls_args(&pki)).await;
    watch.assert_only_in("acme", &ROUND_TRIP_TOPICS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_client_lands_in_the_tenant_named_by_its_host_header() {
    let (server, _pki) = start().await;
    let mut watch = TenantWatch::start(server.addr, &["acme", "dev"]).await;
    let host = format!("{ACME}:{}", server.ws_addr().port());
    let args = ["--host-header".to_owned(), host];
    mqttjs_ok(&ws_url(&server), "round_trip", 4, &args).await;
    watch.assert_only_in("acme", &ROUND_TRIP_TOPICS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_tenant_is_refused_with_bad_user_name_or_password() {
    let (server, pki) = start().await;
    let unknown = "nope.mqtt.test";
    let host_header = ["--host-header".to_owned(), unknown.to_owned()];
    for version in [4, 5] {
        // Named by the TLS server name (and the Host header that follows it)...
        let url = wss_url(&server, unknown);
        mqttjs_ok(&url, "unknown_tenant", version, &tls_args(&pki)).await;
        // ...and by the Host header alone.
        mqttjs_ok(&ws_url(&server), "unknown_tenant", version, &host_header).await;
    }
    // The broker keeps serving the tenant it knows.
    mqttjs_ok(&wss_url(&server, ACME), "round_trip", 5, &tls_args(&pki)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_client_refuses_a_certificate_that_does_not_name_the_host() {
    let (server, pki) = start().await;
    // No certificate names other.example: the broker serves its default one (localhost).
    let url = wss_url(&server, "other.example");
    mqttjs_ok(&url, "wrong_host", 5, &tls_args(&pki)).await;
    mqttjs_ok(
        &wss_url(&server, "localhost"),
        "round_trip",
        5,
        &tls_args(&pki),
    )
    .await;
}
