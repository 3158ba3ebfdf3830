//! MQTT over WebSocket against a real broker: bad-input checklist section E (item 55) and the
//! round trip. The client is tungstenite carrying packets encoded by our codec, so every test
//! chooses exactly how the MQTT bytes are cut into WebSocket messages.
#![allow(clippy::unwrap_used)]

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use futures_util::{SinkExt, StreamExt};
use stratus_codec::{
    Decoder, Packet, ProtocolVersion, QoS, Subscribe, SubscribeProperties, SubscriptionOptions,
    SubscriptionRequest,
};
use support::TestServer;
use support::raw::{connect_packet, open_ok, pid, publish_packet};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

const VERSIONS: [ProtocolVersion; 2] = [ProtocolVersion::V3_1_1, ProtocolVersion::V5];
const WAIT: Duration = Duration::from_secs(5);

/// An MQTT client over WebSocket that sends whatever byte slices it is given as messages.
struct WsClient {
    ws: WebSocketStream<TcpStream>,
    version: ProtocolVersion,
    decoder: Decoder,
    buf: BytesMut,
}

/// Opens a WebSocket on `path` offering `protocols` (if any) with extra headers.
async fn upgrade(
    addr: SocketAddr,
    path: &str,
    protocols: Option<&str>,
    headers: &[(&'static str, &str)],
) -> Result<WebSocketStream<TcpStream>, WsError> {
    let mut request = format!("ws://{addr}{path}").into_client_request().unwrap();
    if let Some(p) = protocols {
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", p.parse().unwrap());
    }
    for (name, value) in headers {
        request.headers_mut().insert(*name, value.parse().unwrap());
    }
    let stream = TcpStream::connect(addr).await.unwrap();
    let (ws, response) = tokio_tungstenite::client_async(request, stream).await?;
    assert_eq!(response.headers()["Sec-WebSocket-Protocol"], "mqtt");
    Ok(ws)
}

/// The HTTP status of a refused upgrade.
fn refused_status(result: Result<WebSocketStream<TcpStream>, WsError>) -> u16 {
    match result {
        Err(WsError::Http(response)) => response.status().as_u16(),
        Err(e) => panic!("expected an HTTP refusal, got {e}"),
        Ok(_) => panic!("expected an HTTP refusal, the upgrade succeeded"),
    }
}

impl WsClient {
    async fn open(addr: SocketAddr, version: ProtocolVersion) -> Self {
        Self::wrap(
            upgrade(addr, "/mqtt", Some("mqtt"), &[]).await.unwrap(),
            version,
        )
    }

    fn wrap(ws: WebSocketStream<TcpStream>, version: ProtocolVersion) -> Self {
        let decoder = Decoder::client(version, stratus_codec::MAX_PACKET_SIZE);
        Self {
            ws,
            version,
            decoder,
            buf: BytesMut::new(),
        }
    }

    /// Sends `bytes` as one binary message.
    async fn send(&mut self, bytes: &[u8]) {
        self.ws.send(Message::binary(bytes.to_vec())).await.unwrap();
    }

    fn encode(&self, packet: &Packet) -> Vec<u8> {
        let mut buf = BytesMut::new();
        packet.encode(self.version, &mut buf).unwrap();
        buf.to_vec()
    }

    /// CONNECT as one message and a successful CONNACK.
    async fn connect(&mut self, client_id: &str) {
        let connect = self.encode(&Packet::Connect(Box::new(connect_packet(
            self.version,
            client_id,
            true,
        ))));
        self.send(&connect).await;
        self.expect_connack().await;
    }

    async fn expect_connack(&mut self) {
        match self.recv(WAIT).await {
            Some(Packet::ConnAck(ack)) => assert!(!ack.reason.is_error(), "{ack:?}"),
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    /// The next packet, or `None` when the connection ended or `wait` passed.
    async fn recv(&mut self, wait: Duration) -> Option<Packet> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(p) = self.decoder.decode(&mut self.buf).unwrap() {
                return Some(p);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match timeout(left, self.ws.next()).await {
                Ok(Some(Ok(Message::Binary(b)))) => self.buf.extend_from_slice(&b),
                Ok(Some(Ok(Message::Text(t)))) => panic!("server sent a text message: {t}"),
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)))) => {}
                Ok(Some(Ok(Message::Close(_)) | Err(_)) | None) | Err(_) => return None,
            }
        }
    }

    /// Waits for the server to end the connection; returns the packets it sent before.
    async fn expect_close(&mut self, wait: Duration) -> Vec<Packet> {
        let deadline = Instant::now() + wait;
        let mut packets = Vec::new();
        loop {
            while let Some(p) = self.decoder.decode(&mut self.buf).unwrap() {
                packets.push(p);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match timeout(left, self.ws.next()).await {
                Ok(Some(Ok(Message::Binary(b)))) => self.buf.extend_from_slice(&b),
                Ok(Some(Ok(Message::Close(_)) | Err(_)) | None) => return packets,
                Ok(Some(Ok(_))) => {}
                Err(_) => panic!("connection still open after {wait:?}; received {packets:?}"),
            }
        }
    }

    /// True if nothing arrives and the connection stays open for `wait`.
    async fn stays_open(&mut self, wait: Duration) -> bool {
        timeout(wait, self.ws.next()).await.is_err()
    }
}

fn subscribe(id: u16, filter: &str) -> Packet {
    Packet::Subscribe(Subscribe {
        packet_id: pid(id),
        properties: SubscribeProperties::default(),
        filters: vec![SubscriptionRequest {
            filter: ByteString::from(filter),
            options: SubscriptionOptions::with_qos(QoS::AtLeastOnce),
        }],
    })
}

fn expect_publish(packet: Option<Packet>, topic: &str, payload: &[u8]) {
    match packet {
        Some(Packet::Publish(p)) => {
            assert_eq!(&p.topic[..], topic);
            assert_eq!(p.payload, Bytes::copy_from_slice(payload));
        }
        other => panic!("expected PUBLISH on {topic}, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_over_websocket_round_trip_with_a_tcp_client() {
    let server = TestServer::start().await;
    for version in VERSIONS {
        let mut ws = WsClient::open(server.ws_addr(), version).await;
        ws.connect("ws-sub").await;
        ws.send(&ws.encode(&subscribe(1, "ws/t"))).await;
        assert!(matches!(ws.recv(WAIT).await, Some(Packet::SubAck(_))));

        let (mut tcp, _) = open_ok(server.addr, connect_packet(version, "tcp-pub", true)).await;
        let publish = Packet::Publish(publish_packet("ws/t", QoS::AtMostOnce, None, b"from tcp"));
        tcp.send_packet(&publish, version).await;
        expect_publish(ws.recv(WAIT).await, "ws/t", b"from tcp");

        // And back: the WebSocket client publishes to itself.
        let publish = Packet::Publish(publish_packet("ws/t", QoS::AtMostOnce, None, b"from ws"));
        ws.send(&ws.encode(&publish)).await;
        expect_publish(ws.recv(WAIT).await, "ws/t", b"from ws");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_message_closes_the_connection() {
    let server = TestServer::start().await;
    for version in VERSIONS {
        let mut ws = WsClient::open(server.ws_addr(), version).await;
        let connect = ws.encode(&Packet::Connect(Box::new(connect_packet(
            version, "text", true,
        ))));
        // The base CONNECT is all ASCII, so it is a valid text message.
        let text = String::from_utf8(connect.clone()).unwrap();
        ws.ws.send(Message::text(text)).await.unwrap();
        assert!(
            ws.expect_close(WAIT).await.is_empty(),
            "no CONNACK after a text message"
        );

        // Twin: the same bytes in a binary message are accepted.
        let mut ws = WsClient::open(server.ws_addr(), version).await;
        ws.send(&connect).await;
        ws.expect_connack().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packets_split_across_messages_and_sharing_messages_are_parsed_in_order() {
    let server = TestServer::start().await;
    for version in VERSIONS {
        let mut ws = WsClient::open(server.ws_addr(), version).await;
        let connect = ws.encode(&Packet::Connect(Box::new(connect_packet(
            version, "split", true,
        ))));
        for byte in &connect {
            ws.send(&[*byte]).await;
        }
        ws.expect_connack().await;

        // SUBSCRIBE, PINGREQ and the start of a PUBLISH in one message, the rest of the PUBLISH
        // in the next. (The PINGRESP comes before the routed PUBLISH: it answers at once.)
        let mut stream = ws.encode(&subscribe(7, "split/t"));
        stream.extend(ws.encode(&Packet::PingReq));
        let publish = publish_packet("split/t", QoS::AtMostOnce, None, b"p1");
        stream.extend(ws.encode(&Packet::Publish(publish)));
        let cut = stream.len() - 5;
        ws.send(&stream[..cut]).await;
        ws.send(&stream[cut..]).await;
        assert!(
            matches!(ws.recv(WAIT).await, Some(Packet::SubAck(ack)) if ack.packet_id == pid(7))
        );
        assert!(matches!(ws.recv(WAIT).await, Some(Packet::PingResp)));
        expect_publish(ws.recv(WAIT).await, "split/t", b"p1");

        // Several whole packets in one message.
        let mut three = Vec::new();
        for payload in [&b"a"[..], b"b", b"c"] {
            three.extend(ws.encode(&Packet::Publish(publish_packet(
                "split/t",
                QoS::AtMostOnce,
                None,
                payload,
            ))));
        }
        ws.send(&three).await;
        for payload in [&b"a"[..], b"b", b"c"] {
            expect_publish(ws.recv(WAIT).await, "split/t", payload);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_without_the_mqtt_subprotocol_is_refused() {
    let server = TestServer::start().await;
    let addr = server.ws_addr();
    assert_eq!(refused_status(upgrade(addr, "/mqtt", None, &[]).await), 400);
    assert_eq!(
        refused_status(upgrade(addr, "/mqtt", Some("wamp, mqttv3.1"), &[]).await),
        400
    );
    assert_eq!(
        refused_status(upgrade(addr, "/other", Some("mqtt"), &[]).await),
        404
    );
    // Twin: `mqtt` among others is accepted and echoed alone (checked in `upgrade`).
    let ws = upgrade(addr, "/mqtt", Some("wamp, mqtt"), &[])
        .await
        .unwrap();
    WsClient::wrap(ws, ProtocolVersion::V5)
        .connect("twin")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declared_4096_bytes_with_3_sent_waits_then_closes_at_the_connect_deadline() {
    let server = TestServer::start_with(|c| c.limits.connect_timeout_secs = 1).await;
    // CONNECT, remaining length 4096 (VBI 80 20), then 3 bytes of its body in the same message.
    let partial = [0x10, 0x80, 0x20, 0x00, 0x04, b'M'];
    let mut ws = WsClient::open(server.ws_addr(), ProtocolVersion::V5).await;
    let started = Instant::now();
    ws.send(&partial).await;
    assert!(
        ws.stays_open(Duration::from_millis(500)).await,
        "closed before the deadline"
    );
    assert!(
        ws.expect_close(Duration::from_millis(2500))
            .await
            .is_empty()
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900),
        "closed after {took:?}, before the deadline"
    );

    // The client may also give up first: its close frame ends the connection at once.
    let mut ws = WsClient::open(server.ws_addr(), ProtocolVersion::V5).await;
    ws.send(&partial).await;
    ws.ws.close(None).await.unwrap();
    assert!(ws.expect_close(Duration::from_millis(500)).await.is_empty());

    // Twin: a whole CONNECT in time.
    let mut ws = WsClient::open(server.ws_addr(), ProtocolVersion::V5).await;
    ws.connect("twin").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origin_outside_the_allow_list_is_refused() {
    let allowed = "https://dashboard.example.com";
    let server =
        TestServer::start_with(|c| c.websocket.allowed_origins = vec![allowed.to_owned()]).await;
    let addr = server.ws_addr();
    let evil = upgrade(
        addr,
        "/mqtt",
        Some("mqtt"),
        &[("Origin", "https://evil.example.net")],
    )
    .await;
    assert_eq!(refused_status(evil), 403);
    // No Origin at all (a device, not a browser) is accepted by default...
    let device = upgrade(addr, "/mqtt", Some("mqtt"), &[]).await.unwrap();
    WsClient::wrap(device, ProtocolVersion::V3_1_1)
        .connect("device")
        .await;
    // ...and refused when the configuration asks for an Origin.
    let strict = TestServer::start_with(|c| {
        c.websocket.allowed_origins = vec![allowed.to_owned()];
        c.websocket.allow_missing_origin = false;
    })
    .await;
    assert_eq!(
        refused_status(upgrade(strict.ws_addr(), "/mqtt", Some("mqtt"), &[]).await),
        403
    );
    // Twin: the allowed origin connects.
    let ws = upgrade(addr, "/mqtt", Some("mqtt"), &[("Origin", allowed)])
        .await
        .unwrap();
    WsClient::wrap(ws, ProtocolVersion::V3_1_1)
        .connect("dashboard")
        .await;

    // Without an allow-list any Origin (or none) is accepted.
    let open = TestServer::start().await;
    let ws = upgrade(
        open.ws_addr(),
        "/mqtt",
        Some("mqtt"),
        &[("Origin", "https://evil.example.net")],
    )
    .await;
    WsClient::wrap(ws.unwrap(), ProtocolVersion::V3_1_1)
        .connect("anyone")
        .await;
}
