//! Zero-length client identifiers: a 5.0 client is given an Assigned Client Identifier, a 3.1.1
//! client is accepted only with Clean Session 1 ([MQTT-3.1.3-7], [MQTT-3.1.3-8]).
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use rumqttc::v5::mqttbytes::QoS as Qos5;
use stratus_codec::{ProtocolVersion, ReasonCode};
use support::{TestServer, raw, v4, v5};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_empty_client_id_is_given_a_unique_assigned_client_identifier() {
    let server = TestServer::start().await;
    let mut ids = Vec::new();
    let mut open = Vec::new();
    for _ in 0..2 {
        let c = v5::Conn::connect(v5::options(server.addr, "")).await;
        let assigned = c
            .connack
            .properties
            .as_ref()
            .and_then(|p| p.assigned_client_identifier.clone());
        match assigned {
            Some(id) if !id.is_empty() => ids.push(id),
            other => panic!("CONNACK must carry an Assigned Client Identifier, got {other:?}"),
        }
        assert!(!c.session_present());
        // Both stay connected while the next one is assigned its identifier.
        open.push(c);
    }
    assert_ne!(ids[0], ids[1], "each client gets its own identifier");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_assigned_client_identifier_names_a_resumable_session() {
    let server = TestServer::start().await;
    let mut opts = v5::options(server.addr, "");
    opts.set_session_expiry_interval(Some(60));
    let mut c = v5::Conn::connect(opts).await;
    let assigned = c
        .connack
        .properties
        .as_ref()
        .and_then(|p| p.assigned_client_identifier.clone())
        .expect("Assigned Client Identifier");
    c.subscribe("assigned/t", Qos5::AtLeastOnce).await;
    c.disconnect().await;

    let c = v5::Conn::connect(v5::persistent(server.addr, &assigned, 60)).await;
    assert!(
        c.session_present(),
        "the assigned identifier must resume the session it named"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v311_empty_client_id_with_clean_session_is_accepted() {
    let server = TestServer::start().await;
    let mut c = v4::Conn::connect(v4::options(server.addr, "")).await;
    assert!(!c.session_present());
    c.subscribe("anon/v311", rumqttc::QoS::AtLeastOnce).await;
    c.publish("anon/v311", rumqttc::QoS::AtLeastOnce, false, "hello")
        .await;
    assert_eq!(v4::text(&c.expect_publish().await), "hello");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v311_empty_client_id_without_clean_session_is_refused_with_return_code_2() {
    let server = TestServer::start().await;
    let connect = raw::connect_packet(ProtocolVersion::V3_1_1, "", false);
    let (mut c, ack) = raw::open(server.addr, connect).await;
    assert_eq!(
        ack.reason,
        ReasonCode::ClientIdentifierNotValid,
        "3.1.1 CONNACK return code 0x02 (identifier rejected)"
    );
    assert!(!ack.session_present);
    assert!(
        c.expect_close(Duration::from_secs(3)).await.is_empty(),
        "the server closes the connection after the refusal"
    );
}
