//! Test harness shared by the edge's integration tests: a real broker on 127.0.0.1:0 with its own
//! temporary data directory and its own control plane (SQLite in that directory, as in
//! `stratus dev`), and a raw MQTT client built on our codec for byte-level tests.
//!
//! Tenants: `dev` allows everything and anonymous clients (as in `stratus dev`); every tenant in
//! the configuration's `tenants` list is created the same way so transport tests can use them.
//! Tests of access control create their own tenants and rules through the API (`api`).
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use bytes::BytesMut;
use http_body_util::BodyExt;
use serde_json::Value;
use stratus_codec::{Decoder, Packet, ProtocolVersion};
use stratus_control_plane::ControlPlane;
use stratus_edge::Services;
use stratus_edge::{BrokerConfig, RunningServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};
use tower::ServiceExt;

pub mod cluster_shape;

/// A broker running inside the test process (three clustered edges behind a round-robin front
/// with `STRATUS_TEST_SHAPE=cluster`, see `cluster_shape.rs`).
pub struct TestServer {
    running: Option<RunningServer>,
    /// The clustered shape: the other edges, the front and the pool.
    others: Vec<RunningServer>,
    front: Option<cluster_shape::Front>,
    pool: Option<String>,
    /// MQTT address.
    pub addr: SocketAddr,
    /// HTTP address.
    pub http: SocketAddr,
    config: BrokerConfig,
    plane: ControlPlane,
    dir: tempfile::TempDir,
}

/// The platform operator token of every test server's API.
pub const ADMIN_TOKEN: &str = "test-operator-token-0123456789";

/// Opens the control plane in `dir` and creates the tenants the configuration names.
async fn open_plane(dir: &std::path::Path, config: &BrokerConfig) -> ControlPlane {
    let plane = stratus_control_plane::open_sqlite(&dir.join("control-plane.db"))
        .await
        .unwrap();
    let mut ids = vec![config.default_tenant.clone()];
    ids.extend(config.tenants.iter().map(|t| t.id.clone()));
    for id in ids {
        let id = stratus_model::TenantId::new(&id).unwrap();
        plane
            .ensure_tenant(&id, stratus_policy::Effect::Allow, true)
            .await
            .unwrap();
    }
    plane
}

fn services(plane: &ControlPlane) -> Services {
    Services {
        directory: plane.directory(),
        http: Some(plane.router(ADMIN_TOKEN)),
        cluster: None,
    }
}

/// Starts the broker: one embedded edge, or the clustered shape's edges of `pool` (each with a
/// data directory of its own, the API on the first) and their front.
async fn start_edges(
    config: &BrokerConfig,
    plane: &ControlPlane,
    pool: Option<&str>,
) -> (
    RunningServer,
    Vec<RunningServer>,
    Option<cluster_shape::Front>,
) {
    let Some(pool) = pool else {
        let running = RunningServer::start(config.clone(), services(plane))
            .await
            .unwrap();
        return (running, Vec::new(), None);
    };
    let mut edges = Vec::new();
    for i in 0..cluster_shape::EDGES {
        let mut config = config.clone();
        config.data_dir = config.data_dir.join(format!("edge{i}"));
        if i > 0 {
            config.ws_listen = None;
            config.mqtts_listen = None;
            config.wss_listen = None;
        }
        let mut services = services(plane);
        if i > 0 {
            services.http = None;
        }
        services.cluster = Some(cluster_shape::settings(pool, i));
        edges.push(RunningServer::start(config, services).await.unwrap());
    }
    let front =
        cluster_shape::Front::start(edges.iter().map(RunningServer::mqtt_addr).collect()).await;
    let first = edges.remove(0);
    (first, edges, Some(front))
}

impl TestServer {
    /// Starts a broker with the default configuration.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts a broker after `tweak` adjusted the configuration.
    pub async fn start_with(tweak: impl FnOnce(&mut BrokerConfig)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = BrokerConfig {
            data_dir: dir.path().join("data"),
            mqtt_listen: "127.0.0.1:0".parse().unwrap(),
            http_listen: "127.0.0.1:0".parse().unwrap(),
            ws_listen: Some("127.0.0.1:0".parse().unwrap()),
            ..BrokerConfig::default()
        };
        config.sys.interval_secs = 0;
        tweak(&mut config);
        let plane = open_plane(dir.path(), &config).await;
        let pool = cluster_shape::enabled().then(|| stratus_testkit::unique_name("par"));
        let (running, others, front) = start_edges(&config, &plane, pool.as_deref()).await;
        Self {
            addr: front.as_ref().map_or(running.mqtt_addr(), |f| f.addr),
            http: running.http_addr(),
            running: Some(running),
            others,
            front,
            pool,
            config,
            plane,
            dir,
        }
    }

    /// The control plane (its store, for provisioning without HTTP).
    pub fn plane(&self) -> &ControlPlane {
        &self.plane
    }

    /// Calls the control plane's API as the platform operator: `(status, JSON body)`.
    pub async fn api(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.api_as(ADMIN_TOKEN, method, path, body).await
    }

    /// Calls the control plane's API with `token`: `(status, JSON body or Null)`.
    pub async fn api_as(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {token}"));
        let body = match body {
            Some(json) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Body::from(json.to_string())
            }
            None => Body::empty(),
        };
        let response = self
            .plane
            .router(ADMIN_TOKEN)
            .oneshot(request.body(body).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let json = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        (status, json)
    }

    /// Calls the API and asserts the status is a success; returns the body.
    pub async fn api_ok(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let (status, json) = self.api(method.clone(), path, body).await;
        assert!(
            status.is_success(),
            "{method} {path} answered {status}: {json}"
        );
        json
    }

    /// Creates tenant `slug` with `default_effect` (`allow` or `deny`) and anonymous access as
    /// given.
    pub async fn add_tenant(&self, slug: &str, default_effect: &str, allow_anonymous: bool) {
        self.api_ok(
            Method::POST,
            "/api/v1/tenants",
            Some(serde_json::json!({
                "slug": slug,
                "name": slug,
                "default_effect": default_effect,
                "allow_anonymous": allow_anonymous,
            })),
        )
        .await;
    }

    /// Creates a device with `username`/`password` in `tenant`, optionally bound to
    /// `client_id`; returns the device's JSON.
    pub async fn add_device(
        &self,
        tenant: &str,
        username: &str,
        password: &str,
        client_id: Option<&str>,
    ) -> Value {
        let mut body = serde_json::json!({
            "username": username,
            "password": password,
        });
        if let Some(id) = client_id {
            body["client_id"] = Value::from(id);
        }
        self.api_ok(
            Method::POST,
            &format!("/api/v1/tenants/{tenant}/devices"),
            Some(body),
        )
        .await
    }

    /// Adds an ACL rule (`effect`, `action`, `filter`, more fields in `extra`); returns its id.
    pub async fn add_rule(
        &self,
        tenant: &str,
        effect: &str,
        action: &str,
        filter: &str,
        extra: Value,
    ) -> String {
        let mut body = serde_json::json!({
            "effect": effect,
            "action": action,
            "filter": filter,
        });
        if let (Some(obj), Value::Object(more)) = (body.as_object_mut(), extra) {
            obj.extend(more);
        }
        let json = self
            .api_ok(
                Method::POST,
                &format!("/api/v1/tenants/{tenant}/acl-rules"),
                Some(body),
            )
            .await;
        json["id"].as_str().unwrap().to_owned()
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.config.data_dir.clone()
    }

    /// Stops gracefully and starts again on the same data directory (new ports); the clustered
    /// shape restarts every edge of the same pool.
    pub async fn restart(&mut self) {
        self.restart_after(|_| {}).await;
    }

    /// Stops gracefully, runs `between` on the data directory (to leave state as a crash
    /// would), and starts again on it (new ports).
    pub async fn restart_after(&mut self, between: impl FnOnce(&Path)) {
        self.shutdown_all().await;
        between(&self.config.data_dir);
        let (running, others, front) =
            start_edges(&self.config, &self.plane, self.pool.as_deref()).await;
        self.addr = front.as_ref().map_or(running.mqtt_addr(), |f| f.addr);
        self.http = running.http_addr();
        self.running = Some(running);
        self.others = others;
        self.front = front;
    }

    async fn shutdown_all(&mut self) {
        self.front = None;
        for r in self.others.drain(..) {
            r.shutdown(Duration::from_secs(5)).await;
        }
        if let Some(r) = self.running.take() {
            r.shutdown(Duration::from_secs(5)).await;
        }
    }

    /// What the last start restored.
    pub fn restored(&self) -> stratus_edge::RestoreSummary {
        self.running.as_ref().unwrap().restored()
    }

    /// Graceful shutdown.
    pub async fn stop(mut self) {
        self.shutdown_all().await;
    }

    /// The MQTT-over-WebSocket listener (on by default in tests).
    pub fn ws_addr(&self) -> SocketAddr {
        self.running
            .as_ref()
            .and_then(|r| r.ws_addr())
            .expect("the WebSocket listener is on")
    }

    /// The MQTT-over-TLS listener (when the test configured `mqtts_listen`).
    pub fn mqtts_addr(&self) -> SocketAddr {
        self.running
            .as_ref()
            .and_then(|r| r.mqtts_addr())
            .expect("configure mqtts_listen")
    }

    /// The MQTT-over-WebSocket-over-TLS listener (when the test configured `wss_listen`).
    pub fn wss_addr(&self) -> SocketAddr {
        self.running
            .as_ref()
            .and_then(|r| r.wss_addr())
            .expect("configure wss_listen")
    }

    /// `host:port` of the MQTT listener.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

/// A byte-level MQTT client.
pub struct RawClient {
    stream: TcpStream,
    decoder: Decoder,
    buf: BytesMut,
}

impl RawClient {
    /// Opens a TCP connection; `version` is used to decode what the server sends.
    pub async fn connect(addr: SocketAddr, version: ProtocolVersion) -> Self {
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        Self {
            stream,
            decoder: Decoder::client(version, stratus_codec::MAX_PACKET_SIZE),
            buf: BytesMut::new(),
        }
    }

    /// Sends raw bytes (errors are ignored: the server may already have closed).
    pub async fn send(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes).await;
    }

    /// Sends a packet encoded for `version`.
    pub async fn send_packet(&mut self, packet: &Packet, version: ProtocolVersion) {
        let mut buf = BytesMut::new();
        packet.encode(version, &mut buf).unwrap();
        self.send(&buf).await;
    }

    /// The next packet from the server, or `None` if the connection closed or `wait` passed.
    pub async fn recv(&mut self, wait: Duration) -> Option<Packet> {
        let deadline = Instant::now() + wait;
        loop {
            match self.decoder.decode(&mut self.buf) {
                Ok(Some(p)) => return Some(p),
                Ok(None) => {}
                Err(e) => panic!("server sent an undecodable packet: {e}"),
            }
            let mut chunk = [0u8; 4096];
            let left = deadline.saturating_duration_since(Instant::now());
            match timeout(left, self.stream.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return None,
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Waits until the server closes the connection, returning every packet it sent before.
    /// Panics if it is still open after `wait`.
    pub async fn expect_close(&mut self, wait: Duration) -> Vec<Packet> {
        let deadline = Instant::now() + wait;
        let mut packets = Vec::new();
        loop {
            while let Ok(Some(p)) = self.decoder.decode(&mut self.buf) {
                packets.push(p);
            }
            let mut chunk = [0u8; 4096];
            let left = deadline.saturating_duration_since(Instant::now());
            match timeout(left, self.stream.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) => {
                    while let Ok(Some(p)) = self.decoder.decode(&mut self.buf) {
                        packets.push(p);
                    }
                    return packets;
                }
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
                Err(_) => panic!("connection still open after {wait:?}; received {packets:?}"),
            }
        }
    }

    /// True if the connection is still open after `wait` with nothing received.
    pub async fn stays_open(&mut self, wait: Duration) -> bool {
        let mut chunk = [0u8; 1];
        timeout(wait, self.stream.read(&mut chunk)).await.is_err()
    }
}

/// The checklist's base CONNECT for MQTT 3.1.1: client id `c1`, keep-alive 60, clean session.
pub const CONNECT_V4: &[u8] = &[
    0x10, 0x0E, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 0x3C, 0x00, 0x02, b'c', b'1',
];

/// The checklist's base CONNECT for MQTT 5.0.
pub const CONNECT_V5: &[u8] = &[
    0x10, 0x0F, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, 0x02, 0x00, 0x3C, 0x00, 0x00, 0x02, b'c',
    b'1',
];

/// Waits until `cond` holds, polling every 10 ms, or panics after `wait` naming `what`.
pub async fn eventually(wait: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + wait;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {wait:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// Client helpers for the behaviour tests: packet-level exchanges over `RawClient`, and real
// rumqttc clients (3.1.1 and 5.0) whose event loops run until the first connection error.
pub mod raw;
pub mod v4;
pub mod v5;

// ---- Interop suites (interop_paho.rs, interop_mosquitto.rs): third-party client processes. ----
pub mod interop;

// ---- Behaviour-test clients (retained, shared subscriptions, MQTT 5 features, flow control,
// $SYS, limits): rumqttc wrappers in `clients.rs`, codec-level ones in `clients/packets.rs`. ----

pub mod clients;

// ---- Transport interop suites (interop_mqttjs.rs, interop_paho_tls.rs, interop_rumqttc_tls.rs,
// interop_mosquitto_tls.rs): a throw-away PKI, a SOCKS5 proxy standing in for DNS, per-tenant
// observers, and the MQTT.js runner. ----
pub mod node;
pub mod pki;
pub mod socks;
pub mod tenant_watch;
