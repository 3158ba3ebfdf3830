//! One MQTT connection of the generator, over our codec.
//!
//! Setup (CONNECT/CONNACK, SUBSCRIBE/SUBACK) is plain request/response. After that a task drives
//! the connection without blocking: [`Client::try_flush`] writes what is queued in the output
//! buffer, [`Client::try_read`] reads what is there and hands each decoded packet to the task
//! (which may queue answers), and [`Client::wait`] sleeps until the socket is ready. Many
//! packets go out in one write and come in with one read; nothing is allocated per packet once
//! the buffers have grown.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU16;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use stratus_codec::{
    Connect, ConnectProperties, Decoder, Disconnect, Packet, ProtocolVersion, QoS, ReasonCode,
    Subscribe, SubscriptionOptions, SubscriptionRequest,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::{Instant, timeout};

use crate::error::BenchError;
use crate::target::{Target, Transport};

/// Largest packet accepted from the broker.
const MAX_INBOUND_PACKET: u32 = 64 * 1024 * 1024;

/// How the generator's clients connect.
#[derive(Debug, Clone)]
pub(crate) struct ConnectSpec {
    pub(crate) target: Target,
    pub(crate) version: ProtocolVersion,
    pub(crate) keep_alive: u16,
    pub(crate) timeout: Duration,
    pub(crate) username: Option<ByteString>,
    pub(crate) password: Option<Bytes>,
}

/// What one [`Client::try_read`] call saw.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ReadOutcome {
    /// Bytes read.
    pub(crate) bytes: usize,
    /// The broker closed the connection (EOF).
    pub(crate) closed: bool,
}

/// A connected, CONNACKed MQTT client.
#[derive(Debug)]
pub(crate) struct Client {
    stream: TcpStream,
    decoder: Decoder,
    version: ProtocolVersion,
    rbuf: BytesMut,
    wbuf: BytesMut,
    read_chunk: usize,
    receive_maximum: u16,
    keep_alive: Option<Duration>,
    last_write: Instant,
}

impl Client {
    /// Opens a connection from `source` (if given), sends CONNECT as `client_id` (clean start)
    /// and waits for a successful CONNACK. 5.0 clients announce `receive_maximum`.
    pub(crate) async fn connect(
        spec: &ConnectSpec,
        client_id: &str,
        source: Option<IpAddr>,
        receive_maximum: Option<u16>,
    ) -> Result<Self, BenchError> {
        match spec.target.transport {
            Transport::Tcp => {}
            Transport::Tls => {
                return Err(BenchError::UnsupportedTransport {
                    scheme: "mqtts".into(),
                });
            }
            Transport::WebSocket => {
                return Err(BenchError::UnsupportedTransport {
                    scheme: "ws".into(),
                });
            }
        }
        let attempt = Self::connect_tcp(spec, client_id, source, receive_maximum);
        timeout(spec.timeout, attempt)
            .await
            .map_err(|_| BenchError::Timeout {
                after: spec.timeout,
                what: "TCP connect and CONNACK",
            })?
    }

    async fn connect_tcp(
        spec: &ConnectSpec,
        client_id: &str,
        source: Option<IpAddr>,
        receive_maximum: Option<u16>,
    ) -> Result<Self, BenchError> {
        let addr = spec.target.addr;
        let unreachable = |cause| BenchError::Unreachable { addr, cause };
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }
        .map_err(unreachable)?;
        if let Some(ip) = source {
            // SO_REUSEADDR lets the port of a connection in TIME_WAIT be bound again.
            socket.set_reuseaddr(true).map_err(unreachable)?;
            socket
                .bind(SocketAddr::new(ip, 0))
                .map_err(|e| io::Error::new(e.kind(), format!("bind to {ip}: {e}")))
                .map_err(unreachable)?;
        }
        let stream = socket.connect(addr).await.map_err(unreachable)?;
        stream.set_nodelay(true)?;
        let mut client = Self {
            stream,
            decoder: Decoder::client(spec.version, MAX_INBOUND_PACKET),
            version: spec.version,
            rbuf: BytesMut::new(),
            wbuf: BytesMut::new(),
            read_chunk: 4096,
            receive_maximum: u16::MAX,
            keep_alive: (spec.keep_alive > 0).then(|| Duration::from_secs(spec.keep_alive.into())),
            last_write: Instant::now(),
        };
        let properties = ConnectProperties {
            receive_maximum: receive_maximum.and_then(NonZeroU16::new),
            ..ConnectProperties::default()
        };
        let connect = Connect {
            protocol: spec.version,
            clean_start: true,
            keep_alive: spec.keep_alive,
            client_id: client_id.into(),
            will: None,
            username: spec.username.clone(),
            password: spec.password.clone(),
            properties,
        };
        client.queue(&Packet::Connect(Box::new(connect)))?;
        client.flush_all().await?;
        match client.recv_one("CONNACK").await? {
            Packet::ConnAck(ack) if ack.reason == ReasonCode::Success => {
                if let Some(max) = ack.properties.receive_maximum {
                    client.receive_maximum = max.get();
                }
                Ok(client)
            }
            Packet::ConnAck(ack) => Err(BenchError::Refused {
                what: format!("the connection of client {client_id}"),
                reason: format!("{:?} ({:#04x})", ack.reason, ack.reason.as_u8()),
            }),
            other => Err(BenchError::Protocol(format!(
                "{:?} before CONNACK",
                other.packet_type()
            ))),
        }
    }

    /// Subscribes to `filter` at `qos` and waits for a SUBACK granting it.
    pub(crate) async fn subscribe(
        &mut self,
        filter: &str,
        qos: QoS,
        wait: Duration,
    ) -> Result<(), BenchError> {
        let packet_id = NonZeroU16::MIN;
        let subscribe = Subscribe {
            packet_id,
            properties: Default::default(),
            filters: vec![SubscriptionRequest {
                filter: filter.into(),
                options: SubscriptionOptions::with_qos(qos),
            }],
        };
        self.queue(&Packet::Subscribe(subscribe))?;
        let exchange = async {
            self.flush_all().await?;
            self.recv_one("SUBACK").await
        };
        let answer = timeout(wait, exchange)
            .await
            .map_err(|_| BenchError::Timeout {
                after: wait,
                what: "SUBACK",
            })??;
        match answer {
            Packet::SubAck(ack) if ack.packet_id == packet_id => match ack.reasons.first() {
                Some(reason) if !reason.is_error() => Ok(()),
                reason => Err(BenchError::Refused {
                    what: format!("the subscription to {filter}"),
                    reason: format!("{reason:?}"),
                }),
            },
            other => Err(BenchError::Protocol(format!(
                "{:?} instead of SUBACK",
                other.packet_type()
            ))),
        }
    }

    /// The protocol version spoken.
    pub(crate) fn version(&self) -> ProtocolVersion {
        self.version
    }

    /// The broker's Receive Maximum (5.0), or 65,535.
    pub(crate) fn receive_maximum(&self) -> u16 {
        self.receive_maximum
    }

    /// Sets how much a read asks for at once (busy connections read big chunks).
    pub(crate) fn set_read_chunk(&mut self, bytes: usize) {
        self.read_chunk = bytes.max(64);
    }

    /// The output buffer: packets appended here go out with the next flush.
    pub(crate) fn out(&mut self) -> &mut BytesMut {
        &mut self.wbuf
    }

    /// Appends `packet` to the output buffer.
    pub(crate) fn queue(&mut self, packet: &Packet) -> Result<(), BenchError> {
        packet.encode(self.version, &mut self.wbuf)?;
        Ok(())
    }

    /// Bytes waiting to be written.
    pub(crate) fn pending_out(&self) -> usize {
        self.wbuf.len()
    }

    /// Writes as much of the output buffer as the socket takes now; returns the bytes written.
    pub(crate) fn try_flush(&mut self) -> Result<usize, BenchError> {
        let mut written = 0;
        while !self.wbuf.is_empty() {
            match self.stream.try_write(&self.wbuf) {
                Ok(0) => return Err(BenchError::Closed("writing")),
                Ok(n) => {
                    bytes::Buf::advance(&mut self.wbuf, n);
                    written += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e.into()),
            }
        }
        if written > 0 {
            self.last_write = Instant::now();
        }
        Ok(written)
    }

    /// Reads what the socket has now and hands every complete packet to `handle`, which may
    /// append answers to the output buffer it is given. Packets are lent, not moved: a decoded
    /// PUBLISH is a few hundred bytes, and moving it per message showed up in profiles.
    pub(crate) fn try_read(
        &mut self,
        mut handle: impl FnMut(&Packet, &mut BytesMut) -> Result<(), BenchError>,
    ) -> Result<ReadOutcome, BenchError> {
        let mut outcome = ReadOutcome::default();
        // A few reads at most, so that one busy connection does not starve its task's writes.
        for _ in 0..4 {
            if self.rbuf.capacity() - self.rbuf.len() < self.read_chunk / 2 {
                self.rbuf.reserve(self.read_chunk);
            }
            match self.stream.try_read_buf(&mut self.rbuf) {
                Ok(0) => {
                    outcome.closed = true;
                    break;
                }
                Ok(n) => outcome.bytes += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e.into()),
            }
            while let Some(packet) = self.decoder.decode(&mut self.rbuf)? {
                handle(&packet, &mut self.wbuf)?;
            }
        }
        Ok(outcome)
    }

    /// Waits until the socket is readable, or writable when output is pending.
    pub(crate) async fn wait(&self) -> Result<(), BenchError> {
        let interest = if self.wbuf.is_empty() {
            Interest::READABLE
        } else {
            Interest::READABLE | Interest::WRITABLE
        };
        self.stream.ready(interest).await?;
        Ok(())
    }

    /// When a PINGREQ is due to keep the connection alive (three quarters of the keep-alive
    /// after the last write), if keep-alive is on.
    pub(crate) fn ping_due(&self) -> Option<Instant> {
        self.keep_alive.map(|k| self.last_write + k * 3 / 4)
    }

    /// Queues a PINGREQ if one is due.
    pub(crate) fn ping_if_due(&mut self) -> Result<(), BenchError> {
        if self.ping_due().is_some_and(|due| Instant::now() >= due) {
            self.queue(&Packet::PingReq)?;
            // Counts as activity even before the flush, so the ping is queued once.
            self.last_write = Instant::now();
        }
        Ok(())
    }

    /// Frees the read and write buffers when they are empty (idle connections hold none).
    pub(crate) fn release_buffers(&mut self) {
        if self.rbuf.is_empty() && self.rbuf.capacity() > 0 {
            self.rbuf = BytesMut::new();
        }
        if self.wbuf.is_empty() && self.wbuf.capacity() > 0 {
            self.wbuf = BytesMut::new();
        }
    }

    /// Sends DISCONNECT after whatever is queued, then closes, waiting up to `linger` for the
    /// broker to close its side first (so the broker, not the generator, keeps TIME_WAIT).
    /// Best effort: errors only mean the connection was already gone.
    pub(crate) async fn disconnect(mut self, linger: Duration) {
        let disconnect = Packet::Disconnect(Disconnect::new(ReasonCode::Success));
        if self.queue(&disconnect).is_err() {
            return;
        }
        let close = async {
            self.stream.write_all(&self.wbuf).await?;
            let mut sink = [0u8; 1024];
            while self.stream.read(&mut sink).await? > 0 {}
            self.stream.shutdown().await
        };
        let _ = timeout(linger, close).await;
    }

    /// Writes the whole output buffer, waiting as needed (setup only).
    async fn flush_all(&mut self) -> Result<(), BenchError> {
        self.stream.write_all(&self.wbuf).await?;
        self.wbuf.clear();
        self.last_write = Instant::now();
        Ok(())
    }

    /// Reads until one packet decodes (setup only).
    async fn recv_one(&mut self, what: &'static str) -> Result<Packet, BenchError> {
        loop {
            if let Some(packet) = self.decoder.decode(&mut self.rbuf)? {
                return Ok(packet);
            }
            self.rbuf.reserve(self.read_chunk);
            if self.stream.read_buf(&mut self.rbuf).await? == 0 {
                return Err(BenchError::Closed(what));
            }
        }
    }
}
