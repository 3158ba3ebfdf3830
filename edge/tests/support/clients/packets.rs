//! Codec-level helpers for behaviour tests: packet builders and [`Raw`], a [`RawClient`] with
//! the exchanges those tests need, for what a client library hides or refuses to send.

use std::net::SocketAddr;
use std::num::{NonZeroU16, NonZeroU32};

use bytes::Bytes;
use bytestring::ByteString;
use stratus_codec::{
    ConnAck, Connect, ConnectProperties, Packet, PacketId, ProtocolVersion, Publish,
    PublishProperties, QoS, SubAck, Subscribe, SubscribeProperties, SubscriptionOptions,
    SubscriptionRequest,
};

use super::WAIT;
use crate::support::RawClient;

/// A packet identifier.
pub fn pid(n: u16) -> PacketId {
    NonZeroU16::new(n).unwrap()
}

/// A CONNECT with a clean start, keep-alive 60 and no properties.
pub fn connect_packet(protocol: ProtocolVersion, client_id: &str) -> Connect {
    Connect {
        protocol,
        clean_start: true,
        keep_alive: 60,
        client_id: ByteString::from(client_id),
        will: None,
        username: None,
        password: None,
        properties: ConnectProperties::default(),
    }
}

/// A PUBLISH without properties; `packet_id` is required for QoS 1 and 2.
pub fn publish_packet(topic: &str, qos: QoS, packet_id: Option<u16>, payload: &[u8]) -> Publish {
    Publish {
        dup: false,
        qos,
        retain: false,
        topic: ByteString::from(topic),
        packet_id: packet_id.map(pid),
        properties: PublishProperties::default(),
        payload: Bytes::copy_from_slice(payload),
    }
}

/// A [`RawClient`] with the exchanges behaviour tests need. A newtype, so that its helpers never
/// collide with helpers other suites add to `RawClient` (which it derefs to).
pub struct Raw(pub RawClient);

impl std::ops::Deref for Raw {
    type Target = RawClient;

    fn deref(&self) -> &RawClient {
        &self.0
    }
}

impl std::ops::DerefMut for Raw {
    fn deref_mut(&mut self) -> &mut RawClient {
        &mut self.0
    }
}

impl Raw {
    /// Opens a connection, sends `connect` and returns the CONNACK, whatever its reason.
    pub async fn open(addr: SocketAddr, connect: Connect) -> (Self, ConnAck) {
        let version = connect.protocol;
        let mut c = RawClient::connect(addr, version).await;
        c.send_packet(&Packet::Connect(Box::new(connect)), version)
            .await;
        match c.recv(WAIT).await {
            Some(Packet::ConnAck(ack)) => (Self(c), ack),
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    /// A 5.0 client with these CONNECT properties; panics unless accepted.
    pub async fn v5(addr: SocketAddr, client_id: &str, properties: ConnectProperties) -> Self {
        let mut connect = connect_packet(ProtocolVersion::V5, client_id);
        connect.properties = properties;
        let (c, ack) = Self::open(addr, connect).await;
        assert_eq!(
            ack.reason,
            stratus_codec::ReasonCode::Success,
            "CONNACK for {client_id}: {ack:?}"
        );
        c
    }

    /// A 3.1.1 clean-session client; panics unless accepted.
    pub async fn v4(addr: SocketAddr, client_id: &str) -> Self {
        let (c, ack) = Self::open(addr, connect_packet(ProtocolVersion::V3_1_1, client_id)).await;
        assert_eq!(
            ack.reason,
            stratus_codec::ReasonCode::Success,
            "CONNACK for {client_id}: {ack:?}"
        );
        c
    }

    /// Sends a packet encoded for this connection's protocol version.
    pub async fn put(&mut self, packet: Packet) {
        let version = self.0.decoder.version().unwrap();
        self.0.send_packet(&packet, version).await;
    }

    /// The next packet; panics if none arrives in time.
    pub async fn next_packet(&mut self) -> Packet {
        match self.0.recv(WAIT).await {
            Some(p) => p,
            None => panic!("no packet from the server within {WAIT:?}"),
        }
    }

    /// The next packet, which must be a PUBLISH.
    pub async fn next_publish(&mut self) -> Publish {
        match self.next_packet().await {
            Packet::Publish(p) => p,
            other => panic!("expected PUBLISH, got {other:?}"),
        }
    }

    /// Subscribes and returns the SUBACK.
    pub async fn subscribe_with(
        &mut self,
        packet_id: u16,
        filters: &[(&str, SubscriptionOptions)],
        id: Option<u32>,
    ) -> SubAck {
        let subscribe = Subscribe {
            packet_id: pid(packet_id),
            properties: SubscribeProperties {
                subscription_identifier: id.map(|i| NonZeroU32::new(i).unwrap()),
                user_properties: Vec::new(),
            },
            filters: filters
                .iter()
                .map(|(f, options)| SubscriptionRequest {
                    filter: ByteString::from(*f),
                    options: *options,
                })
                .collect(),
        };
        self.put(Packet::Subscribe(subscribe)).await;
        match self.next_packet().await {
            Packet::SubAck(ack) => ack,
            other => panic!("expected SUBACK, got {other:?}"),
        }
    }

    /// Subscribes to one filter at `qos`; panics unless granted.
    pub async fn subscribe_to(&mut self, filter: &str, qos: QoS) {
        let ack = self
            .subscribe_with(1, &[(filter, SubscriptionOptions::with_qos(qos))], None)
            .await;
        assert!(!ack.reasons[0].is_error(), "SUBACK for {filter}: {ack:?}");
    }

    /// Acknowledges a QoS 1 PUBLISH.
    pub async fn puback(&mut self, packet_id: PacketId) {
        self.put(Packet::PubAck(stratus_codec::Ack::success(packet_id)))
            .await;
    }

    /// Sends PINGREQ and returns every packet received before the PINGRESP: anything the server
    /// produced before it handled the PINGREQ is in there.
    pub async fn until_pingresp(&mut self) -> Vec<Packet> {
        self.put(Packet::PingReq).await;
        let mut before = Vec::new();
        loop {
            match self.next_packet().await {
                Packet::PingResp => return before,
                p => before.push(p),
            }
        }
    }
}
