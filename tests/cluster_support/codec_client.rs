//! A packet-level MQTT client on our own codec for process-level fault tests that need every
//! field a client library hides (packet ids, DUP, the QoS 2 exchange, Session Present).

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use stratus_codec::{
    Ack, ConnAck, Connect, ConnectProperties, Decoder, LastWill, Packet, PacketId, ProtocolVersion,
    Publish, PublishProperties, QoS, Subscribe, SubscribeProperties, SubscriptionOptions,
    SubscriptionRequest,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a CONNECT may wait for its CONNACK.
const CONNACK_WAIT: Duration = Duration::from_secs(15);

/// One connection.
pub(crate) struct CodecClient {
    stream: TcpStream,
    version: ProtocolVersion,
    decoder: Decoder,
    buf: BytesMut,
}

/// What a CONNECT asks for.
pub(crate) struct ConnectSpec<'a> {
    pub(crate) version: ProtocolVersion,
    pub(crate) client_id: &'a str,
    pub(crate) clean_start: bool,
    /// 5.0 Session Expiry Interval.
    pub(crate) expiry_secs: Option<u32>,
    /// Will topic and payload (QoS 1).
    pub(crate) will: Option<(&'a str, &'static [u8])>,
    /// 5.0 Will Delay Interval (0: none).
    pub(crate) will_delay_secs: u32,
}

impl CodecClient {
    /// Connects and returns the client with the CONNACK; `Err` on I/O failure or no CONNACK.
    pub(crate) async fn connect(
        addr: SocketAddr,
        spec: &ConnectSpec<'_>,
    ) -> Result<(Self, ConnAck), String> {
        let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let mut c = Self {
            stream,
            version: spec.version,
            decoder: Decoder::client(spec.version, stratus_codec::MAX_PACKET_SIZE),
            buf: BytesMut::new(),
        };
        let properties = ConnectProperties {
            session_expiry_interval: spec.expiry_secs,
            ..Default::default()
        };
        let connect = Connect {
            protocol: spec.version,
            clean_start: spec.clean_start,
            keep_alive: 60,
            client_id: ByteString::from(spec.client_id),
            will: spec.will.map(|(topic, payload)| LastWill {
                topic: ByteString::from(topic),
                payload: Bytes::from_static(payload),
                qos: QoS::AtLeastOnce,
                retain: false,
                properties: stratus_codec::WillProperties {
                    will_delay_interval: (spec.will_delay_secs > 0).then_some(spec.will_delay_secs),
                    ..Default::default()
                },
            }),
            username: None,
            password: None,
            properties,
        };
        c.send(&Packet::Connect(Box::new(connect))).await?;
        match c.recv(CONNACK_WAIT).await? {
            Some(Packet::ConnAck(ack)) => Ok((c, ack)),
            other => Err(format!("expected CONNACK, got {other:?}")),
        }
    }

    /// Sends one packet.
    pub(crate) async fn send(&mut self, packet: &Packet) -> Result<(), String> {
        let mut out = BytesMut::new();
        packet
            .encode(self.version, &mut out)
            .map_err(|e| e.to_string())?;
        self.stream.write_all(&out).await.map_err(|e| e.to_string())
    }

    /// The next packet: `Ok(None)` when `wait` passed, `Err` when the connection closed.
    pub(crate) async fn recv(&mut self, wait: Duration) -> Result<Option<Packet>, String> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match self.decoder.decode(&mut self.buf) {
                Ok(Some(p)) => return Ok(Some(p)),
                Ok(None) => {}
                Err(e) => return Err(format!("undecodable packet from the server: {e}")),
            }
            let mut chunk = [0u8; 8192];
            match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
                Err(_) => return Ok(None),
                Ok(Ok(0)) => return Err("connection closed".into()),
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
                Ok(Err(e)) => return Err(e.to_string()),
            }
        }
    }

    /// Subscribes to one filter and waits for a successful SUBACK.
    pub(crate) async fn subscribe(&mut self, filter: &str, qos: QoS) -> Result<(), String> {
        let subscribe = Subscribe {
            packet_id: packet_id(1),
            properties: SubscribeProperties::default(),
            filters: vec![SubscriptionRequest {
                filter: ByteString::from(filter),
                options: SubscriptionOptions::with_qos(qos),
            }],
        };
        self.send(&Packet::Subscribe(subscribe)).await?;
        match self.recv(CONNACK_WAIT).await? {
            Some(Packet::SubAck(ack)) if !ack.reasons[0].is_error() => Ok(()),
            other => Err(format!("expected a successful SUBACK, got {other:?}")),
        }
    }

    /// Publishes and completes the acknowledgement flow; `Ok(true)` once the server took
    /// responsibility (PUBACK, or PUBREC for QoS 2) with a success code.
    pub(crate) async fn publish(
        &mut self,
        topic: &str,
        qos: QoS,
        id: u16,
        payload: &[u8],
    ) -> Result<bool, String> {
        let publish = Publish {
            dup: false,
            qos,
            retain: false,
            topic: ByteString::from(topic),
            packet_id: Some(packet_id(id)),
            properties: PublishProperties::default(),
            payload: Bytes::copy_from_slice(payload),
        };
        self.send(&Packet::Publish(publish)).await?;
        let wait = Duration::from_secs(20);
        match (qos, self.recv(wait).await?) {
            (QoS::AtLeastOnce, Some(Packet::PubAck(a))) => Ok(!a.reason.is_error()),
            (QoS::ExactlyOnce, Some(Packet::PubRec(a))) => {
                if a.reason.is_error() {
                    return Ok(false);
                }
                self.send(&Packet::PubRel(Ack::success(a.packet_id)))
                    .await?;
                match self.recv(wait).await? {
                    Some(Packet::PubComp(_)) => Ok(true),
                    other => Err(format!("expected PUBCOMP, got {other:?}")),
                }
            }
            (_, other) => Err(format!("unexpected answer to a publish: {other:?}")),
        }
    }
}

/// A packet id from a non-zero number.
pub(crate) fn packet_id(id: u16) -> PacketId {
    PacketId::new(id.max(1)).unwrap_or(PacketId::MIN)
}
