//! Quality of service levels and packet identifiers.

use std::num::NonZeroU16;

/// A packet identifier: never zero on the wire ([MQTT-2.3.1-1], [MQTT-2.2.1-3]).
pub type PacketId = NonZeroU16;

/// The delivery guarantee of a PUBLISH or the maximum granted for a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum QoS {
    /// QoS 0: at most once.
    AtMostOnce = 0,
    /// QoS 1: at least once.
    AtLeastOnce = 1,
    /// QoS 2: exactly once.
    ExactlyOnce = 2,
}

impl QoS {
    /// Parses the two QoS bits; 3 is not a QoS.
    pub const fn from_bits(bits: u8) -> Option<Self> {
        match bits {
            0 => Some(Self::AtMostOnce),
            1 => Some(Self::AtLeastOnce),
            2 => Some(Self::ExactlyOnce),
            _ => None,
        }
    }

    /// The numeric level (0, 1 or 2).
    pub const fn as_u8(self) -> u8 {
        self as u8
    }
}
