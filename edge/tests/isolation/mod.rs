//! Shared pieces of the tenant isolation suites (`isolation_mqtt.rs`, `isolation_access.rs`,
//! `isolation_api.rs`):
//! clients that log in to a named tenant, observers that prove an absence with a fence, the raw
//! CONNACK code of a refused CONNECT, and tenant API keys.
//!
//! Proving that nothing crossed a tenant boundary without sleeping: a publisher sends at QoS 1
//! and waits for its PUBACK, which the broker writes only after it routed the message to every
//! matching session. An observer subscribed at QoS 0 then publishes a fence to itself; its queue
//! is ordered, so anything routed to it earlier arrives before the fence comes back.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use axum::http::{Method, StatusCode};
use bytes::BytesMut;
use bytestring::ByteString;
use serde_json::{Value, json};
use stratus_codec::{Connect, ConnectProperties, Packet, ProtocolVersion};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};

use crate::support::TestServer;
use crate::support::clients::{Q5, V4Client, V5Client, WAIT, topic5};

/// The user name that names `tenant` without naming a device (an anonymous client there).
pub fn anonymous_in(tenant: &str) -> String {
    format!("@{tenant}")
}

/// A 5.0 client logged in as `user` (`device@tenant`), Clean Start 1; `tweak` may change more.
pub async fn v5_as(
    addr: SocketAddr,
    id: &str,
    user: &str,
    password: &str,
    tweak: impl FnOnce(&mut rumqttc::v5::MqttOptions),
) -> V5Client {
    V5Client::connect_with(addr, id, |o| {
        o.set_credentials(user, password);
        tweak(o);
    })
    .await
}

/// A 3.1.1 client logged in as `user` (`device@tenant`), Clean Session 1; `tweak` may change
/// more.
pub async fn v4_as(
    addr: SocketAddr,
    id: &str,
    user: &str,
    password: &str,
    tweak: impl FnOnce(&mut rumqttc::MqttOptions),
) -> V4Client {
    V4Client::connect_with(addr, id, |o| {
        o.set_credentials(user, password);
        tweak(o);
    })
    .await
}

/// 5.0 options for a persistent session (Clean Start 0, one hour of session expiry).
pub fn persistent5(o: &mut rumqttc::v5::MqttOptions) {
    o.set_clean_start(false);
    o.set_session_expiry_interval(Some(3600));
}

/// 3.1.1 options for a persistent session (Clean Session 0).
pub fn persistent4(o: &mut rumqttc::MqttOptions) {
    o.set_clean_session(false);
}

/// Proves a 5.0 connection is still open and owns its session: a QoS 1 round trip through the
/// broker answers. A kicked connection would have been closed before the PUBACK.
pub async fn assert_alive5(c: &mut V5Client, topic: &str) {
    c.publish_acked(topic, false, "alive").await;
    assert!(
        c.ended(Duration::ZERO).await.is_none(),
        "the connection ended"
    );
}

/// [`assert_alive5`] for a 3.1.1 connection.
pub async fn assert_alive4(c: &mut V4Client, topic: &str) {
    c.publish_acked(topic, false, "alive").await;
    assert!(
        c.ended(Duration::ZERO).await.is_none(),
        "the connection ended"
    );
}

/// Fence topics are unique per observer in the process.
static NEXT_OBSERVER: AtomicU32 = AtomicU32::new(1);

/// A 5.0 client subscribed at QoS 0 to some filters and to its own fence topics, which reports
/// everything it received (fences left out) up to a fence it just sent.
pub struct Observer {
    /// The connection.
    pub client: V5Client,
    fence_prefix: String,
    fences: u32,
}

impl Observer {
    /// Logs in as `user` with client id `id` and subscribes to `filters` (each must be granted).
    pub async fn start(
        addr: SocketAddr,
        id: &str,
        user: &str,
        password: &str,
        filters: &[&str],
    ) -> Self {
        let client = v5_as(addr, id, user, password, |_| {}).await;
        Self::with(client, filters).await
    }

    /// An anonymous observer in `tenant`.
    pub async fn anonymous(addr: SocketAddr, tenant: &str, id: &str, filters: &[&str]) -> Self {
        Self::start(addr, id, &anonymous_in(tenant), "", filters).await
    }

    /// Subscribes an already connected client.
    pub async fn with(mut client: V5Client, filters: &[&str]) -> Self {
        let n = NEXT_OBSERVER.fetch_add(1, Ordering::Relaxed);
        let fence_prefix = format!("fence/{n}");
        client
            .subscribe(&format!("{fence_prefix}/+"), Q5::AtMostOnce)
            .await;
        for filter in filters {
            client.subscribe(filter, Q5::AtMostOnce).await;
        }
        Self {
            client,
            fence_prefix,
            fences: 0,
        }
    }

    /// Every `(topic, payload)` received since the last call, fences left out.
    pub async fn seen(&mut self) -> Vec<(String, String)> {
        self.fences += 1;
        let fence = format!("{}/{}", self.fence_prefix, self.fences);
        self.client
            .publish(&fence, Q5::AtMostOnce, false, "fence")
            .await;
        self.client
            .recv_until(&fence)
            .await
            .iter()
            .map(|p| {
                (
                    topic5(p).to_owned(),
                    String::from_utf8_lossy(&p.payload).into_owned(),
                )
            })
            .filter(|(topic, _)| !topic.starts_with("fence/"))
            .collect()
    }

    /// Asserts nothing arrived since the last check.
    pub async fn assert_nothing(&mut self, whose: &str) {
        let got = self.seen().await;
        assert!(got.is_empty(), "{whose} received {got:?}");
    }

    /// Asserts exactly these messages (in any order) arrived since the last check.
    pub async fn assert_exactly(&mut self, whose: &str, expected: &[(&str, &str)]) {
        let mut got = self.seen().await;
        let mut want: Vec<(String, String)> = expected
            .iter()
            .map(|(t, p)| ((*t).to_owned(), (*p).to_owned()))
            .collect();
        got.sort();
        want.sort();
        assert_eq!(got, want, "what {whose} received");
    }
}

/// Publishes at QoS 1 from a 5.0 client and waits for the PUBACK (the message is routed).
pub async fn routed5(c: &mut V5Client, topic: &str, retain: bool, payload: &str) {
    let ack = c.publish_acked(topic, retain, payload.to_owned()).await;
    assert!(
        matches!(
            ack.reason,
            rumqttc::v5::mqttbytes::v5::PubAckReason::Success
                | rumqttc::v5::mqttbytes::v5::PubAckReason::NoMatchingSubscribers
        ),
        "publishing to {topic:?} was refused: {ack:?}"
    );
}

/// Publishes at QoS 1 from a 3.1.1 client and waits for the PUBACK.
pub async fn routed4(c: &mut V4Client, topic: &str, retain: bool, payload: &str) {
    c.publish_acked(topic, retain, payload.as_bytes().to_vec())
        .await;
}

/// Sends `prefix` (e.g. a PROXY protocol header) and `connect` on a new connection; returns the
/// CONNACK's reason code (5.0) or return code (3.1.1) byte, and the connection.
pub async fn connack_code(addr: SocketAddr, prefix: &[u8], connect: Connect) -> (u8, TcpStream) {
    let version = connect.protocol;
    let mut buf = BytesMut::from(prefix);
    Packet::Connect(Box::new(connect))
        .encode(version, &mut buf)
        .unwrap();
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(&buf).await.unwrap();
    let deadline = Instant::now() + WAIT;
    let mut got = Vec::new();
    loop {
        if let Some((body, len)) = whole_packet(&got) {
            assert_eq!(got[0], 0x20, "expected a CONNACK, got {got:x?}");
            assert_eq!(got.len(), body + len, "bytes after the CONNACK: {got:x?}");
            return (got[body + 1], stream);
        }
        let mut chunk = [0u8; 512];
        let left = deadline.saturating_duration_since(Instant::now());
        match timeout(left, stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => panic!("closed before a whole CONNACK: {got:x?}"),
            Ok(Ok(n)) => got.extend_from_slice(&chunk[..n]),
            Err(_) => panic!("no CONNACK within {WAIT:?}; received {got:x?}"),
        }
    }
}

/// Where the body of the packet at the start of `bytes` begins and how long it is, once the
/// whole packet is there (the Remaining Length is a Variable Byte Integer after the first byte).
fn whole_packet(bytes: &[u8]) -> Option<(usize, usize)> {
    let mut len = 0usize;
    for (i, b) in bytes.iter().enumerate().skip(1).take(4) {
        len |= usize::from(b & 0x7F) << (7 * (i - 1));
        if b & 0x80 == 0 {
            return (bytes.len() > i + len).then_some((i + 1, len));
        }
    }
    None
}

/// What the server answered a CONNECT it refused: the CONNACK's code byte. Panics unless the
/// CONNACK is followed by the close.
pub async fn refused_code(addr: SocketAddr, connect: Connect) -> u8 {
    refused_code_after(addr, &[], connect).await
}

/// [`refused_code`] after sending `prefix`.
pub async fn refused_code_after(addr: SocketAddr, prefix: &[u8], connect: Connect) -> u8 {
    let (code, mut stream) = connack_code(addr, prefix, connect).await;
    let mut rest = Vec::new();
    match timeout(WAIT, stream.read_to_end(&mut rest)).await {
        Ok(Ok(_)) | Ok(Err(_)) => {}
        Err(_) => panic!("the connection is still open {WAIT:?} after CONNACK 0x{code:02x}"),
    }
    assert!(rest.is_empty(), "bytes after a refusing CONNACK: {rest:x?}");
    code
}

/// A CONNECT for `version` with a user name and password.
pub fn login(
    version: ProtocolVersion,
    client_id: &str,
    user: &str,
    password: &str,
    clean_start: bool,
) -> Connect {
    let mut properties = ConnectProperties::default();
    if version.is_v5() && !clean_start {
        properties.session_expiry_interval = Some(3600);
    }
    Connect {
        protocol: version,
        clean_start,
        keep_alive: 60,
        client_id: ByteString::from(client_id),
        will: None,
        username: Some(ByteString::from(user)),
        password: Some(bytes::Bytes::copy_from_slice(password.as_bytes())),
        properties,
    }
}

/// CONNACK codes by version: `(5.0 reason code, 3.1.1 return code)`.
pub fn expected_code(version: ProtocolVersion, v5: u8, v4: u8) -> u8 {
    if version.is_v5() { v5 } else { v4 }
}

/// 5.0 "Not authorized" / 3.1.1 "not authorized".
pub const NOT_AUTHORIZED: (u8, u8) = (0x87, 0x05);
/// 5.0 "Client Identifier not valid" / 3.1.1 "identifier rejected".
pub const CLIENT_ID_NOT_VALID: (u8, u8) = (0x85, 0x02);
/// 5.0 "Bad User Name or Password" / 3.1.1 "bad user name or password".
pub const BAD_LOGIN: (u8, u8) = (0x86, 0x04);

/// Both protocol versions.
pub const VERSIONS: [ProtocolVersion; 2] = [ProtocolVersion::V3_1_1, ProtocolVersion::V5];

/// Asserts a refusal with the code pair `codes` for `version`.
pub async fn assert_refused(addr: SocketAddr, connect: Connect, codes: (u8, u8), what: &str) {
    let version = connect.protocol;
    let code = refused_code(addr, connect).await;
    assert_eq!(
        code,
        expected_code(version, codes.0, codes.1),
        "{what} ({version:?})"
    );
}

/// Creates an API key of `tenant` with `scope` (`read` or `write`) as the operator; returns
/// `(id, secret)`.
pub async fn api_key(server: &TestServer, tenant: &str, scope: &str) -> (String, String) {
    let (status, body) = server
        .api(
            Method::POST,
            &format!("/api/v1/tenants/{tenant}/api-keys"),
            Some(json!({ "name": format!("{tenant} {scope} key"), "scope": scope })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "creating an API key: {body}");
    (
        body["id"].as_str().unwrap().to_owned(),
        body["secret"].as_str().unwrap().to_owned(),
    )
}

/// Asserts an API answer is `status` with the JSON error shape and `code`.
pub fn assert_error(answer: &(StatusCode, Value), status: StatusCode, code: &str, what: &str) {
    let (got, body) = answer;
    assert_eq!(*got, status, "{what}: status (body {body})");
    assert_eq!(body["error"]["code"], code, "{what}: error code in {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{what}: error message in {body}"
    );
}
