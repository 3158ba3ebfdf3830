//! Helpers shared by the access-control suites (`access_auth.rs`, `access_acl.rs`,
//! `access_revocation.rs`): CONNECTs carrying credentials, connecting from a chosen loopback
//! address (the failed-connect limit counts per address), the exchanges whose reason codes the
//! suites assert, fences that prove a message was not delivered, JWT signing keys, and the
//! stopwatch that measures how long a revocation took to reach an open connection.
//!
//! Clients name their tenant with the user name `device@tenant` (`@tenant` for an anonymous
//! client of that tenant).
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::Method;
use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::Value;
use stratus_codec::{
    Ack, ConnAck, Connect, Decoder, LastWill, Packet, ProtocolVersion, Publish, QoS, ReasonCode,
    Subscribe, SubscribeProperties, SubscriptionOptions, SubscriptionRequest,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;
use tokio::time::{Instant, timeout};

use crate::support::raw::{self, WAIT, pid};
use crate::support::{RawClient, TestServer};

/// Both protocol versions the suites cover.
pub const VERSIONS: [ProtocolVersion; 2] = [ProtocolVersion::V3_1_1, ProtocolVersion::V5];

/// Revocation must reach open connections within this (issue 4, item 5).
pub const REVOCATION_LIMIT: Duration = Duration::from_secs(5);

/// A clean-start CONNECT for `client_id` with an optional user name and password.
pub fn login(
    version: ProtocolVersion,
    client_id: &str,
    username: Option<&str>,
    password: Option<&[u8]>,
) -> Connect {
    let mut c = raw::connect_packet(version, client_id, true);
    c.username = username.map(ByteString::from);
    c.password = password.map(Bytes::copy_from_slice);
    c
}

/// A CONNECT of device `user` of `tenant` with `password`.
pub fn device(
    version: ProtocolVersion,
    client_id: &str,
    user: &str,
    tenant: &str,
    password: &str,
) -> Connect {
    login(
        version,
        client_id,
        Some(&format!("{user}@{tenant}")),
        Some(password.as_bytes()),
    )
}

/// A CONNECT of an anonymous client of `tenant` (user name `@tenant`, no password).
pub fn anonymous(version: ProtocolVersion, client_id: &str, tenant: &str) -> Connect {
    login(version, client_id, Some(&format!("@{tenant}")), None)
}

/// `connect` made persistent: 3.1.1 Clean Session 0, 5.0 Clean Start 0 with a 300 s expiry.
pub fn persistent(mut connect: Connect) -> Connect {
    connect.clean_start = false;
    if connect.protocol.is_v5() {
        connect.properties.session_expiry_interval = Some(300);
    }
    connect
}

/// `connect` with a QoS 1 will on `topic`.
pub fn with_will(mut connect: Connect, topic: &str, payload: &'static [u8]) -> Connect {
    connect.will = Some(LastWill {
        topic: ByteString::from(topic),
        payload: Bytes::from_static(payload),
        qos: QoS::AtLeastOnce,
        retain: false,
        properties: Default::default(),
    });
    connect
}

/// Connects and returns the CONNACK's reason (3.1.1 return codes decode to their 5.0 names:
/// 4 is `BadUserNameOrPassword`, 5 is `NotAuthorized`).
pub async fn connack(addr: SocketAddr, connect: Connect) -> ReasonCode {
    raw::open(addr, connect).await.1.reason
}

/// Connects and panics unless the CONNACK accepts.
pub async fn connected(addr: SocketAddr, connect: Connect) -> RawClient {
    raw::open_ok(addr, connect).await.0
}

/// Connects from the loopback address `local` (Linux routes all of 127/8 to the loopback
/// interface) and returns the CONNACK.
pub async fn connack_from(addr: SocketAddr, local: IpAddr, connect: Connect) -> ConnAck {
    let version = connect.protocol;
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(local, 0)).unwrap();
    let mut stream = socket.connect(addr).await.unwrap();
    let mut buf = BytesMut::new();
    Packet::Connect(Box::new(connect))
        .encode(version, &mut buf)
        .unwrap();
    stream.write_all(&buf).await.unwrap();
    let mut decoder = Decoder::client(version, stratus_codec::MAX_PACKET_SIZE);
    let mut input = BytesMut::new();
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(packet) = decoder.decode(&mut input).unwrap() {
            match packet {
                Packet::ConnAck(ack) => return ack,
                other => panic!("expected CONNACK, got {other:?}"),
            }
        }
        let mut chunk = [0u8; 1024];
        let left = deadline.saturating_duration_since(Instant::now());
        match timeout(left, stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => input.extend_from_slice(&chunk[..n]),
            other => panic!("no CONNACK from the server: {other:?}"),
        }
    }
}

/// Publishes and returns the acknowledgement's reason: PUBACK (QoS 1) or PUBREC (QoS 2, whose
/// exchange is then completed with PUBREL/PUBCOMP). QoS 0 returns `Success` once written.
pub async fn publish(
    c: &mut RawClient,
    version: ProtocolVersion,
    topic: &str,
    qos: QoS,
    packet_id: u16,
    payload: &[u8],
) -> ReasonCode {
    let id = (qos != QoS::AtMostOnce).then_some(packet_id);
    let packet = Packet::Publish(raw::publish_packet(topic, qos, id, payload));
    c.send_packet(&packet, version).await;
    match qos {
        QoS::AtMostOnce => ReasonCode::Success,
        QoS::AtLeastOnce => match raw::expect_packet(c).await {
            Packet::PubAck(ack) if ack.packet_id == pid(packet_id) => ack.reason,
            other => panic!("expected PUBACK {packet_id}, got {other:?}"),
        },
        QoS::ExactlyOnce => {
            let reason = match raw::expect_packet(c).await {
                Packet::PubRec(ack) if ack.packet_id == pid(packet_id) => ack.reason,
                other => panic!("expected PUBREC {packet_id}, got {other:?}"),
            };
            // A 5.0 PUBREC with an error ends the exchange; 3.1.1 cannot tell, so it goes on.
            if !(version.is_v5() && reason.is_error()) {
                raw::send_ack(c, Packet::PubRel, pid(packet_id), version).await;
                match raw::expect_packet(c).await {
                    Packet::PubComp(ack) if ack.packet_id == pid(packet_id) => {}
                    other => panic!("expected PUBCOMP {packet_id}, got {other:?}"),
                }
            }
            reason
        }
    }
}

/// Subscribes to one filter and returns the SUBACK's reason (a 3.1.1 failure, 0x80, decodes as
/// `UnspecifiedError`).
pub async fn subscribe(
    c: &mut RawClient,
    version: ProtocolVersion,
    packet_id: u16,
    filter: &str,
    qos: QoS,
) -> ReasonCode {
    let subscribe = Subscribe {
        packet_id: pid(packet_id),
        properties: SubscribeProperties::default(),
        filters: vec![SubscriptionRequest {
            filter: ByteString::from(filter),
            options: SubscriptionOptions::with_qos(qos),
        }],
    };
    c.send_packet(&Packet::Subscribe(subscribe), version).await;
    match raw::expect_packet(c).await {
        Packet::SubAck(ack) if ack.packet_id == pid(packet_id) => ack.reasons[0],
        other => panic!("expected SUBACK {packet_id}, got {other:?}"),
    }
}

/// The whole SUBACK for a one-filter SUBSCRIBE (reason code and properties).
pub async fn subscribe_ack(
    c: &mut RawClient,
    version: ProtocolVersion,
    packet_id: u16,
    filter: &str,
) -> stratus_codec::SubAck {
    let subscribe = Subscribe {
        packet_id: pid(packet_id),
        properties: SubscribeProperties::default(),
        filters: vec![SubscriptionRequest {
            filter: ByteString::from(filter),
            options: SubscriptionOptions::with_qos(QoS::AtMostOnce),
        }],
    };
    c.send_packet(&Packet::Subscribe(subscribe), version).await;
    match raw::expect_packet(c).await {
        Packet::SubAck(ack) if ack.packet_id == pid(packet_id) => ack,
        other => panic!("expected SUBACK {packet_id}, got {other:?}"),
    }
}

/// The reason a SUBACK refusing a subscription carries with the default configuration: 0x80
/// in both versions (`access.subscribe_denied = "unspecified"`; 5.0 clients that asked for
/// problem information also get a reason string).
pub fn subscribe_refused(_version: ProtocolVersion) -> ReasonCode {
    ReasonCode::UnspecifiedError
}

/// A PUBLISH's topic and payload as text.
pub fn message(p: &Publish) -> (String, String) {
    (
        p.topic.to_string(),
        String::from_utf8_lossy(&p.payload).into_owned(),
    )
}

/// Receives PUBLISHes (acknowledging QoS 1 ones) until one carries `fence` as its payload, and
/// returns those before it: anything routed to this client before the fence was published.
pub async fn until_fence(
    c: &mut RawClient,
    version: ProtocolVersion,
    fence: &str,
) -> Vec<(String, String)> {
    let mut before = Vec::new();
    loop {
        let p = raw::expect_publish(c).await;
        if let (QoS::AtLeastOnce, Some(id)) = (p.qos, p.packet_id) {
            c.send_packet(&Packet::PubAck(Ack::success(id)), version)
                .await;
        }
        let m = message(&p);
        if m.1 == fence {
            return before;
        }
        before.push(m);
    }
}

/// Asserts the connection is open and idle: a PINGREQ is answered by PINGRESP first.
pub async fn assert_alive(c: &mut RawClient, version: ProtocolVersion) {
    c.send_packet(&Packet::PingReq, version).await;
    match c.recv(WAIT).await {
        Some(Packet::PingResp) => {}
        other => panic!("expected PINGRESP from an open connection, got {other:?}"),
    }
}

/// Waits until the server closes `c`; returns the DISCONNECT reason it sent first (5.0), or
/// `None` (3.1.1 has no server DISCONNECT).
pub async fn closed_by_server(c: &mut RawClient, wait: Duration) -> Option<ReasonCode> {
    let packets = c.expect_close(wait).await;
    packets.iter().find_map(|p| match p {
        Packet::Disconnect(d) => Some(d.reason),
        _ => None,
    })
}

/// Times one revocation from the API call's return to its effect on a connection.
#[derive(Debug)]
pub struct Stopwatch {
    what: String,
    since: Instant,
}

impl Stopwatch {
    /// Starts timing `what` (call right after the API call returned).
    pub fn start(what: impl Into<String>) -> Self {
        Self {
            what: what.into(),
            since: Instant::now(),
        }
    }

    /// Time since the start.
    pub fn elapsed(&self) -> Duration {
        self.since.elapsed()
    }

    /// Whether the limit has passed (polling loops give up then).
    pub fn expired(&self) -> bool {
        self.since.elapsed() >= REVOCATION_LIMIT
    }

    /// The effect was observed: prints the delay and asserts it is within the limit.
    pub fn stop(self) -> Duration {
        let delay = self.since.elapsed();
        eprintln!(
            "revocation delay: {}: {:.1} ms",
            self.what,
            delay.as_secs_f64() * 1000.0
        );
        assert!(
            delay < REVOCATION_LIMIT,
            "{} took {delay:?}, more than {REVOCATION_LIMIT:?}",
            self.what
        );
        delay
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A JWT signing key made for one test; its public half is registered with a tenant.
pub struct JwtSigner {
    /// The algorithm's name in the API.
    pub algorithm: &'static str,
    alg: Algorithm,
    encoding: EncodingKey,
    /// SubjectPublicKeyInfo PEM.
    pub public_pem: String,
}

impl JwtSigner {
    /// A fresh ECDSA P-256 key (ES256).
    pub fn es256() -> Self {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        Self {
            algorithm: "ES256",
            alg: Algorithm::ES256,
            encoding: EncodingKey::from_ec_pem(key.serialize_pem().as_bytes()).unwrap(),
            public_pem: key.public_key_pem(),
        }
    }

    /// A fresh Ed25519 key (EdDSA).
    pub fn ed25519() -> Self {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        Self {
            algorithm: "EdDSA",
            alg: Algorithm::EdDSA,
            encoding: EncodingKey::from_ed_pem(key.serialize_pem().as_bytes()).unwrap(),
            public_pem: key.public_key_pem(),
        }
    }

    /// Registers the public key with `tenant` (tokens must carry `audience` if given); returns
    /// the key's id.
    pub async fn register(
        &self,
        server: &TestServer,
        tenant: &str,
        audience: Option<&str>,
    ) -> String {
        let mut body = serde_json::json!({
            "algorithm": self.algorithm,
            "public_key_pem": self.public_pem,
        });
        if let Some(aud) = audience {
            body["audience"] = Value::from(aud);
        }
        let key = server
            .api_ok(
                Method::POST,
                &format!("/api/v1/tenants/{tenant}/jwt-keys"),
                Some(body),
            )
            .await;
        key["id"].as_str().unwrap().to_owned()
    }

    /// Signs `claims` (with `kid` in the header if given).
    pub fn sign(&self, claims: &Value, kid: Option<&str>) -> String {
        let mut header = Header::new(self.alg);
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }
}
