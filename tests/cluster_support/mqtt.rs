//! A minimal MQTT client for process-level tests: CONNECT (3.1.1 or 5.0, with a will),
//! SUBSCRIBE, PUBLISH QoS 1, and reading what the server sends, written straight on a TCP
//! stream so the tests depend on no client library.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// MQTT protocol level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Version {
    V311,
    V5,
}

/// A packet from the server: the first byte and the rest after the remaining length.
#[derive(Debug)]
pub(crate) struct Packet {
    pub(crate) header: u8,
    pub(crate) body: Vec<u8>,
}

impl Packet {
    pub(crate) fn kind(&self) -> u8 {
        self.header >> 4
    }
}

/// A received PUBLISH.
#[derive(Debug)]
pub(crate) struct Received {
    pub(crate) topic: String,
    pub(crate) payload: Vec<u8>,
}

/// One connection.
#[derive(Debug)]
pub(crate) struct Client {
    stream: TcpStream,
    version: Version,
    inbuf: Vec<u8>,
    next_id: u16,
}

/// Why a CONNECT did not succeed.
#[derive(Debug)]
pub(crate) enum ConnectError {
    Io(std::io::Error),
    Refused(u8),
}

fn put_len(out: &mut Vec<u8>, mut len: usize) {
    loop {
        let mut byte = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if len == 0 {
            break;
        }
    }
}

fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s);
}

fn frame(header: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![header];
    put_len(&mut out, body.len());
    out.extend_from_slice(body);
    out
}

impl Client {
    /// Connects with a clean session and, optionally, a QoS 1 will (`topic`, `payload`).
    /// Returns the CONNACK reason code as an error when the server refuses.
    pub(crate) async fn connect(
        addr: SocketAddr,
        version: Version,
        client_id: &str,
        will: Option<(&str, &[u8])>,
    ) -> Result<Self, ConnectError> {
        let stream = TcpStream::connect(addr).await.map_err(ConnectError::Io)?;
        stream.set_nodelay(true).map_err(ConnectError::Io)?;
        let mut client = Self {
            stream,
            version,
            inbuf: Vec::new(),
            next_id: 1,
        };
        let mut body = Vec::new();
        put_str(&mut body, b"MQTT");
        body.push(if version == Version::V5 { 5 } else { 4 });
        let mut flags = 0x02;
        if will.is_some() {
            flags |= 0x04 | 0x08;
        }
        body.push(flags);
        body.extend_from_slice(&60u16.to_be_bytes());
        if version == Version::V5 {
            body.push(0);
        }
        put_str(&mut body, client_id.as_bytes());
        if let Some((topic, payload)) = will {
            if version == Version::V5 {
                body.push(0);
            }
            put_str(&mut body, topic.as_bytes());
            put_str(&mut body, payload);
        }
        client
            .stream
            .write_all(&frame(0x10, &body))
            .await
            .map_err(ConnectError::Io)?;
        let connack = client
            .read(Duration::from_secs(10))
            .await
            .map_err(ConnectError::Io)?;
        let Some(connack) = connack else {
            return Err(ConnectError::Io(std::io::ErrorKind::UnexpectedEof.into()));
        };
        assert_eq!(connack.kind(), 2, "expected CONNACK, got {connack:?}");
        match connack.body.get(1) {
            Some(0) => Ok(client),
            Some(&code) => Err(ConnectError::Refused(code)),
            None => Err(ConnectError::Io(std::io::ErrorKind::InvalidData.into())),
        }
    }

    /// Subscribes to `filter` at QoS 1 and waits for the SUBACK.
    pub(crate) async fn subscribe(&mut self, filter: &str) {
        let id = self.packet_id();
        let mut body = id.to_be_bytes().to_vec();
        if self.version == Version::V5 {
            body.push(0);
        }
        put_str(&mut body, filter.as_bytes());
        body.push(1);
        self.stream.write_all(&frame(0x82, &body)).await.unwrap();
        loop {
            let p = self
                .read(Duration::from_secs(10))
                .await
                .unwrap()
                .expect("closed before SUBACK");
            if p.kind() == 9 {
                assert!(
                    p.body.last().is_some_and(|&rc| rc < 0x80),
                    "subscription refused: {p:?}"
                );
                return;
            }
        }
    }

    /// Publishes at QoS 1 and waits for the PUBACK.
    pub(crate) async fn publish(&mut self, topic: &str, payload: &[u8]) {
        let id = self.packet_id();
        let mut body = Vec::new();
        put_str(&mut body, topic.as_bytes());
        body.extend_from_slice(&id.to_be_bytes());
        if self.version == Version::V5 {
            body.push(0);
        }
        body.extend_from_slice(payload);
        self.stream.write_all(&frame(0x32, &body)).await.unwrap();
        loop {
            let p = self
                .read(Duration::from_secs(10))
                .await
                .unwrap()
                .expect("closed before PUBACK");
            if p.kind() == 4 {
                return;
            }
        }
    }

    /// The next PUBLISH (acknowledged when QoS 1) before `deadline`; `None` on timeout or close.
    pub(crate) async fn next_publish(&mut self, deadline: Instant) -> Option<Received> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let p = self.read(left).await.ok()??;
            if p.kind() != 3 {
                continue;
            }
            let qos = (p.header >> 1) & 3;
            let body = &p.body;
            let topic_len = usize::from(u16::from_be_bytes([body[0], body[1]]));
            let topic = String::from_utf8(body[2..2 + topic_len].to_vec()).unwrap();
            let mut at = 2 + topic_len;
            if qos > 0 {
                let id = [body[at], body[at + 1]];
                at += 2;
                self.stream.write_all(&[0x40, 2, id[0], id[1]]).await.ok()?;
            }
            if self.version == Version::V5 {
                let (props, used) = read_len(&body[at..])?;
                at += used + props;
            }
            return Some(Received {
                topic,
                payload: body[at..].to_vec(),
            });
        }
    }

    /// Waits until the server closes the connection; returns the DISCONNECT reason code when it
    /// sent one (5.0), `Some(0)` for a bare close. `None` when still open at `deadline`.
    pub(crate) async fn closed_by_server(&mut self, deadline: Instant) -> Option<u8> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            match self.read(left).await {
                Ok(Some(p)) if p.kind() == 14 => return Some(p.body.first().copied().unwrap_or(0)),
                Ok(Some(_)) => continue,
                Ok(None) => return Some(0),
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return None,
                Err(_) => return Some(0),
            }
        }
    }

    fn packet_id(&mut self) -> u16 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        id
    }

    /// One packet; `Ok(None)` when the server closed the connection.
    async fn read(&mut self, limit: Duration) -> std::io::Result<Option<Packet>> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some((len, used)) = self.inbuf.get(1..).and_then(read_len) {
                let total = 1 + used + len;
                if self.inbuf.len() >= total {
                    let header = self.inbuf[0];
                    let body = self.inbuf[1 + used..total].to_vec();
                    self.inbuf.drain(..total);
                    return Ok(Some(Packet { header, body }));
                }
            }
            let mut chunk = [0u8; 4096];
            let n = match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
                Ok(r) => r?,
                Err(_) => return Err(std::io::ErrorKind::TimedOut.into()),
            };
            if n == 0 {
                return Ok(None);
            }
            self.inbuf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// A variable byte integer at the start of `buf`: (value, bytes used); `None` if incomplete.
fn read_len(buf: &[u8]) -> Option<(usize, usize)> {
    let mut value = 0usize;
    for (i, &b) in buf.iter().take(4).enumerate() {
        value |= usize::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}
