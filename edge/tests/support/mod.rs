//! Test harness shared by the edge's integration tests: a real broker on 127.0.0.1:0 with its own
//! temporary data directory, and a raw MQTT client built on our codec for byte-level tests.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use bytes::BytesMut;
use stratus_codec::{Decoder, Packet, ProtocolVersion};
use stratus_edge::{BrokerConfig, RunningServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};

/// A broker running inside the test process.
pub struct TestServer {
    running: Option<RunningServer>,
    /// MQTT address.
    pub addr: SocketAddr,
    /// HTTP address.
    pub http: SocketAddr,
    config: BrokerConfig,
    dir: tempfile::TempDir,
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
            ..BrokerConfig::default()
        };
        config.sys.interval_secs = 0;
        tweak(&mut config);
        let running = RunningServer::start(config.clone()).await.unwrap();
        Self {
            addr: running.mqtt_addr(),
            http: running.http_addr(),
            running: Some(running),
            config,
            dir,
        }
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.config.data_dir.clone()
    }

    /// Stops gracefully and starts again on the same data directory (new ports).
    pub async fn restart(&mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown(Duration::from_secs(5)).await;
        }
        let running = RunningServer::start(self.config.clone()).await.unwrap();
        self.addr = running.mqtt_addr();
        self.http = running.http_addr();
        self.running = Some(running);
    }

    /// What the last start restored.
    pub fn restored(&self) -> stratus_edge::RestoreSummary {
        self.running.as_ref().unwrap().restored()
    }

    /// Graceful shutdown.
    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown(Duration::from_secs(5)).await;
        }
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
