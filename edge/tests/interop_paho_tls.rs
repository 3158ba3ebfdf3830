//! paho-mqtt 2.x (Python) against a real broker through its tenant endpoints: MQTT over TLS with
//! a server name (SNI), and paho's websockets transport over ws and wss, MQTT 3.1.1 and 5.0.
//! Messages published through `acme.mqtt.test` land in tenant `acme` and nowhere else; an
//! unknown tenant is refused with "bad user name or password"; a certificate for another host is
//! refused by the client, and the broker keeps serving afterwards.
//!
//! Each test starts its own broker with its own certificates (`support::pki`) and runs one
//! scenario of `tests/interop/paho_endpoints.py` as a subprocess. Needs `python3` with paho-mqtt
//! 2.x; without it every test fails saying how to install it.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use stratus_edge::config::{ClientAuth, TenantConfig};
use support::TestServer;
use support::interop::{Finished, interop_dir, require_paho, run_process};
use support::pki::{Ca, ServerPki};
use support::tenant_watch::TenantWatch;
use tokio::process::Command;

/// Longest a scenario may run (the script's own watchdog fires at 30 s).
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(40);
/// The tenant endpoint the tests publish through.
const ACME: &str = "acme.mqtt.test";
/// Topics of the `round_trip` scenario.
const ROUND_TRIP_TOPICS: [&str; 3] = [
    "paho/round-trip/q0",
    "paho/round-trip/q1",
    "paho/round-trip/q2",
];

/// How a scenario reaches the broker.
#[derive(Debug, Clone, Copy)]
enum Via<'a> {
    /// MQTT over TLS, presenting this server name.
    Tls(&'a str),
    /// paho's websockets transport without TLS, with this Host header if any.
    Ws(Option<&'a str>),
    /// paho's websockets transport over TLS, presenting this server name (and Host header).
    Wss(&'a str),
}

/// A broker with mqtts, wss and ws listeners, the `mqtt.test` tenant domain and tenant `acme`.
async fn start() -> (TestServer, ServerPki) {
    let pki = ServerPki::new();
    let server = TestServer::start_with(|c| pki.configure(c, &["acme"])).await;
    (server, pki)
}

/// Runs `scenario` of `paho_endpoints.py` with MQTT `version` (4 or 5) and `extra` arguments.
async fn paho(
    server: &TestServer,
    pki: &ServerPki,
    via: Via<'_>,
    version: u8,
    scenario: &str,
    extra: &[String],
) -> Finished {
    require_paho();
    let mut cmd = Command::new("python3");
    cmd.arg("-u")
        .arg(interop_dir().join("paho_endpoints.py"))
        .args(["--protocol", &version.to_string()])
        // Keep the source tree free of __pycache__.
        .env("PYTHONDONTWRITEBYTECODE", "1");
    let tls = |cmd: &mut Command, name: &str| {
        cmd.args(["--ca", &pki.files.arg("ca.pem"), "--server-name", name]);
    };
    match via {
        Via::Tls(name) => {
            cmd.args(["--port", &server.mqtts_addr().port().to_string()]);
            tls(&mut cmd, name);
        }
        Via::Ws(host) => {
            cmd.args(["--port", &server.ws_addr().port().to_string()])
                .args(["--transport", "websockets"]);
            if let Some(host) = host {
                cmd.args(["--host-header", host]);
            }
        }
        Via::Wss(name) => {
            cmd.args(["--port", &server.wss_addr().port().to_string()])
                .args(["--transport", "websockets"]);
            tls(&mut cmd, name);
        }
    }
    cmd.args(extra).arg(scenario);
    let what = format!("paho {scenario} (v{version}) via {via:?}");
    run_process(cmd, &what, SCENARIO_TIMEOUT).await
}

/// Like `paho` without extra arguments, asserting the scenario passed.
async fn paho_ok(server: &TestServer, pki: &ServerPki, via: Via<'_>, version: u8, scenario: &str) {
    let what = format!("paho {scenario} (v{version}) via {via:?}");
    paho(server, pki, via, version, scenario, &[])
        .await
        .assert_success(&what);
}

// ---- MQTT over TLS with a tenant server name. ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v311_over_tls_lands_in_the_tenant_named_by_the_server_name() {
    let (server, pki) = start().await;
    let mut watch = TenantWatch::start(server.addr, &["acme", "dev"]).await;
    paho_ok(&server, &pki, Via::Tls(ACME), 4, "round_trip").await;
    watch.assert_only_in("acme", &ROUND_TRIP_TOPICS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_over_tls_lands_in_the_tenant_named_by_the_server_name() {
    let (server, pki) = start().await;
    let mut watch = TenantWatch::start(server.addr, &["acme", "dev"]).await;
    paho_ok(&server, &pki, Via::Tls(ACME), 5, "round_trip").await;
    watch.assert_only_in("acme", &ROUND_TRIP_TOPICS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_without_a_tenant_server_name_lands_in_the_default_tenant() {
    let (server, pki) = start().await;
    let mut watch = TenantWatch::start(server.addr, &["acme", "dev"]).await;
    paho_ok(&server, &pki, Via::Tls("localhost"), 5, "round_trip").await;
    watch.assert_only_in("dev", &ROUND_TRIP_TOPICS).await;
}

// ---- paho's websockets transport. ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websockets_transport_round_trips_over_ws_in_both_versions() {
    let (server, pki) = start().await;
    for version in [4, 5] {
        paho_ok(&server, &pki, Via::Ws(None), version, "round_trip").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_client_lands_in_the_tenant_named_by_its_host_header() {
    let (server, pki) = start().await;
    let mut watch = TenantWatch::start(server.addr, &["acme", "dev"]).await;
    paho_ok(&server, &pki, Via::Ws(Some(ACME)), 4, "round_trip").await;
    watch.assert_only_in("acme", &ROUND_TRIP_TOPICS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v311_over_wss_lands_in_the_tenant_named_by_the_server_name() {
    let (server, pki) = start().await;
    let mut watch = TenantWatch::start(server.addr, &["acme", "dev"]).await;
    paho_ok(&server, &pki, Via::Wss(ACME), 4, "round_trip").await;
    watch.assert_only_in("acme", &ROUND_TRIP_TOPICS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_over_wss_lands_in_the_tenant_named_by_the_server_name() {
    let (server, pki) = start().await;
    let mut watch = TenantWatch::start(server.addr, &["acme", "dev"]).await;
    paho_ok(&server, &pki, Via::Wss(ACME), 5, "round_trip").await;
    watch.assert_only_in("acme", &ROUND_TRIP_TOPICS).await;
}

// ---- Refusals; the broker keeps serving after each. ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_tenant_server_name_is_refused_with_bad_user_name_or_password() {
    let (server, pki) = start().await;
    for version in [4, 5] {
        paho_ok(
            &server,
            &pki,
            Via::Tls("nope.mqtt.test"),
            version,
            "unknown_tenant",
        )
        .await;
    }
    paho_ok(
        &server,
        &pki,
        Via::Wss("nope.mqtt.test"),
        5,
        "unknown_tenant",
    )
    .await;
    paho_ok(&server, &pki, Via::Tls(ACME), 5, "round_trip").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_client_refuses_a_certificate_that_does_not_name_the_host() {
    let (server, pki) = start().await;
    // No certificate names other.example: the broker serves its default one (localhost).
    paho_ok(&server, &pki, Via::Tls("other.example"), 5, "wrong_host").await;
    paho_ok(&server, &pki, Via::Wss("other.example"), 4, "wrong_host").await;
    paho_ok(&server, &pki, Via::Tls("localhost"), 4, "round_trip").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificate_over_wss_is_checked_against_the_tenants_ca() {
    let pki = ServerPki::new();
    for tenant in ["acme", "beta"] {
        let ca = Ca::new(&format!("{tenant} devices CA"));
        pki.files.write(&format!("{tenant}-ca.pem"), &ca.pem);
        pki.files
            .write_leaf(&format!("{tenant}-device"), &ca.client("sensor-1"));
    }
    let server = TestServer::start_with(|c| {
        pki.configure(c, &[]);
        c.tls.client_auth = ClientAuth::Required;
        c.tenants = ["acme", "beta"]
            .iter()
            .map(|t| TenantConfig {
                id: (*t).to_owned(),
                client_ca: Some(pki.files.path(&format!("{t}-ca.pem"))),
            })
            .collect();
    })
    .await;
    let mut watch = TenantWatch::start(server.addr, &["acme", "beta", "dev"]).await;
    let identity = |stem: &str| {
        let (crt, key) = (format!("{stem}.crt"), format!("{stem}.key"));
        [
            "--cert".to_owned(),
            pki.files.arg(&crt),
            "--key".to_owned(),
            pki.files.arg(&key),
        ]
    };
    let wss = Via::Wss(ACME);

    // Beta's device presenting its certificate at acme's endpoint is refused...
    let (beta, acme) = (identity("beta-device"), identity("acme-device"));
    paho(&server, &pki, wss, 5, "refused_certificate", &beta)
        .await
        .assert_success("paho with beta's certificate at acme");
    // ...acme's own device gets in, and its messages land in acme.
    paho(&server, &pki, wss, 5, "round_trip", &acme)
        .await
        .assert_success("paho with acme's certificate at acme");
    watch.assert_only_in("acme", &ROUND_TRIP_TOPICS).await;
}
