//! PROXY protocol on a real broker: a listener configured for it accepts MQTT after a valid v1 or
//! v2 header and refuses a connection without one; other listeners are unaffected.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use futures_util::SinkExt;
use stratus_codec::{Packet, ProtocolVersion};
use stratus_edge::config::ListenerName;
use support::{CONNECT_V4, CONNECT_V5, RawClient, TestServer};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const WAIT: Duration = Duration::from_secs(5);

const V1_TCP4: &[u8] = b"PROXY TCP4 203.0.113.9 192.0.2.1 51000 1883\r\n";

/// A v2 PROXY header for 203.0.113.9:51000 -> 192.0.2.1:1883 with one TLV.
fn v2_tcp4() -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n\x21\x11".to_vec();
    let mut body = vec![203, 0, 113, 9, 192, 0, 2, 1];
    body.extend_from_slice(&51000u16.to_be_bytes());
    body.extend_from_slice(&1883u16.to_be_bytes());
    body.extend_from_slice(b"\x02\x00\x0bexample.com");
    h.extend_from_slice(&u16::try_from(body.len()).unwrap().to_be_bytes());
    h.extend_from_slice(&body);
    h
}

async fn expect_connack(c: &mut RawClient) {
    match c.recv(WAIT).await {
        Some(Packet::ConnAck(ack)) => assert!(!ack.reason.is_error(), "{ack:?}"),
        other => panic!("expected CONNACK, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_after_a_valid_header_is_served() {
    let server = TestServer::start_with(|c| c.proxy_protocol = vec![ListenerName::Mqtt]).await;
    for (header, version, connect) in [
        (V1_TCP4.to_vec(), ProtocolVersion::V3_1_1, CONNECT_V4),
        (v2_tcp4(), ProtocolVersion::V5, CONNECT_V5),
        (
            b"PROXY UNKNOWN\r\n".to_vec(),
            ProtocolVersion::V5,
            CONNECT_V5,
        ),
        (
            b"\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00".to_vec(),
            ProtocolVersion::V5,
            CONNECT_V5,
        ),
    ] {
        let mut c = RawClient::connect(server.addr, version).await;
        // Header and CONNECT in one segment: the header must not swallow MQTT bytes.
        let mut bytes = header;
        bytes.extend_from_slice(connect);
        c.send(&bytes).await;
        expect_connack(&mut c).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_without_a_valid_header_is_refused() {
    let server = TestServer::start_with(|c| c.proxy_protocol = vec![ListenerName::Mqtt]).await;
    let mut bad_v1 = b"PROXY TCP4 203.0.113.9 192.0.2.1 51000\r\n".to_vec();
    bad_v1.extend_from_slice(CONNECT_V4);
    let mut bad_v2 = v2_tcp4();
    bad_v2[12] = 0x31;
    for bytes in [CONNECT_V4.to_vec(), bad_v1, bad_v2] {
        let mut c = RawClient::connect(server.addr, ProtocolVersion::V3_1_1).await;
        c.send(&bytes).await;
        assert!(
            c.expect_close(WAIT).await.is_empty(),
            "served without a valid header"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listeners_not_configured_for_it_take_plain_mqtt() {
    let server = TestServer::start_with(|c| c.proxy_protocol = vec![ListenerName::Ws]).await;
    let mut c = RawClient::connect(server.addr, ProtocolVersion::V3_1_1).await;
    c.send(CONNECT_V4).await;
    expect_connack(&mut c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_upgrade_follows_the_header() {
    let server = TestServer::start_with(|c| c.proxy_protocol = vec![ListenerName::Ws]).await;
    let addr = server.ws_addr();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut stream, &v2_tcp4())
        .await
        .unwrap();
    let mut request = format!("ws://{addr}/mqtt").into_client_request().unwrap();
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", "mqtt".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::client_async(request, stream)
        .await
        .unwrap();
    ws.send(Message::binary(CONNECT_V5.to_vec())).await.unwrap();
    let reply = tokio::time::timeout(WAIT, futures_util::StreamExt::next(&mut ws))
        .await
        .unwrap();
    match reply {
        Some(Ok(Message::Binary(b))) => assert_eq!(b[0], 0x20, "expected CONNACK, got {b:?}"),
        other => panic!("expected CONNACK, got {other:?}"),
    }
}
