//! Decode and encode errors. A decode error names the specification rule it enforces and knows
//! the reason code a server reports for it.

use crate::reason::ReasonCode;

/// Why bytes could not be decoded into a packet. "Not enough bytes yet" is not an error: the
/// decoder returns `Ok(None)` for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The first packet on a connection was not CONNECT ([MQTT-3.1.0-1]): close silently.
    #[error("the first packet must be CONNECT [MQTT-3.1.0-1], got first byte {first_byte:#04x}")]
    FirstPacketNotConnect {
        /// The offending first byte.
        first_byte: u8,
    },
    /// The declared packet size exceeds the limit; detected from the fixed header alone.
    #[error("packet of {size} bytes exceeds the maximum packet size of {max} bytes")]
    PacketTooLarge {
        /// Total packet size declared by the fixed header (header included).
        size: u64,
        /// The limit in force.
        max: u32,
    },
    /// CONNECT named a protocol level we do not speak ([MQTT-3.1.2-2]).
    #[error("unsupported protocol level {level} [MQTT-3.1.2-2]")]
    UnsupportedProtocolVersion {
        /// The protocol level byte received.
        level: u8,
    },
    /// The bytes violate the packet grammar ([MQTT-4.13.1-1] Malformed Packet, 0x81).
    #[error("malformed packet: {what} [{rule}]")]
    Malformed {
        /// What was wrong, for logs.
        what: &'static str,
        /// The specification rule, e.g. `MQTT-1.5.4-2`.
        rule: &'static str,
    },
    /// The packet is well formed but violates a protocol rule; `reason` is 0x82 Protocol Error
    /// unless the specification names a more precise code (e.g. 0x94 Topic Alias invalid).
    #[error("protocol error: {what} [{rule}]")]
    Protocol {
        /// What was wrong, for logs.
        what: &'static str,
        /// The specification rule.
        rule: &'static str,
        /// The reason code to report.
        reason: ReasonCode,
    },
}

impl DecodeError {
    /// The reason code a 5.0 server sends (CONNACK or DISCONNECT) before closing.
    pub fn reason_code(&self) -> ReasonCode {
        match self {
            Self::FirstPacketNotConnect { .. } => ReasonCode::ProtocolError,
            Self::PacketTooLarge { .. } => ReasonCode::PacketTooLarge,
            Self::UnsupportedProtocolVersion { .. } => ReasonCode::UnsupportedProtocolVersion,
            Self::Malformed { .. } => ReasonCode::MalformedPacket,
            Self::Protocol { reason, .. } => *reason,
        }
    }

    pub(crate) const fn malformed(what: &'static str, rule: &'static str) -> Self {
        Self::Malformed { what, rule }
    }

    pub(crate) const fn protocol(what: &'static str, rule: &'static str) -> Self {
        Self::Protocol {
            what,
            rule,
            reason: ReasonCode::ProtocolError,
        }
    }
}

/// Why a packet could not be encoded. Only values a caller built wrongly produce these.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// A string or binary field is longer than 65,535 bytes.
    #[error("{field} is {len} bytes; MQTT strings and binary data hold at most 65535")]
    FieldTooLong {
        /// Which field.
        field: &'static str,
        /// Its length.
        len: usize,
    },
    /// The packet would exceed the largest remaining length (268,435,455 bytes).
    #[error("packet remaining length {len} exceeds 268435455")]
    PacketTooLarge {
        /// The remaining length it would have.
        len: usize,
    },
    /// QoS and packet identifier disagree in a PUBLISH.
    #[error("a QoS {qos} PUBLISH {expectation}")]
    PacketIdMismatch {
        /// The QoS level.
        qos: u8,
        /// What was expected.
        expectation: &'static str,
    },
    /// The packet type or a value does not exist in the target protocol version.
    #[error("{what} cannot be encoded for MQTT {version}")]
    NotInVersion {
        /// What cannot be encoded.
        what: &'static str,
        /// The target version.
        version: crate::version::ProtocolVersion,
    },
    /// A value is outside what the wire format can carry (e.g. a subscription identifier above
    /// 268,435,455, or a SUBSCRIBE with no filters).
    #[error("invalid value for {what}")]
    InvalidValue {
        /// Which value.
        what: &'static str,
    },
}
