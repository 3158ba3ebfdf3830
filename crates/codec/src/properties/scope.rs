//! Which property may appear in which packet (MQTT 5.0 table 2-4 and each packet's properties
//! section), as a static table: one [`Scope`] per packet (or Will), listing the allowed property
//! identifiers in specification order with the section that defines each.

/// Property identifiers (MQTT 5.0 table 2-4).
pub(crate) mod id {
    pub(crate) const PAYLOAD_FORMAT_INDICATOR: u8 = 0x01;
    pub(crate) const MESSAGE_EXPIRY_INTERVAL: u8 = 0x02;
    pub(crate) const CONTENT_TYPE: u8 = 0x03;
    pub(crate) const RESPONSE_TOPIC: u8 = 0x08;
    pub(crate) const CORRELATION_DATA: u8 = 0x09;
    pub(crate) const SUBSCRIPTION_IDENTIFIER: u8 = 0x0B;
    pub(crate) const SESSION_EXPIRY_INTERVAL: u8 = 0x11;
    pub(crate) const ASSIGNED_CLIENT_IDENTIFIER: u8 = 0x12;
    pub(crate) const SERVER_KEEP_ALIVE: u8 = 0x13;
    pub(crate) const AUTHENTICATION_METHOD: u8 = 0x15;
    pub(crate) const AUTHENTICATION_DATA: u8 = 0x16;
    pub(crate) const REQUEST_PROBLEM_INFORMATION: u8 = 0x17;
    pub(crate) const WILL_DELAY_INTERVAL: u8 = 0x18;
    pub(crate) const REQUEST_RESPONSE_INFORMATION: u8 = 0x19;
    pub(crate) const RESPONSE_INFORMATION: u8 = 0x1A;
    pub(crate) const SERVER_REFERENCE: u8 = 0x1C;
    pub(crate) const REASON_STRING: u8 = 0x1F;
    pub(crate) const RECEIVE_MAXIMUM: u8 = 0x21;
    pub(crate) const TOPIC_ALIAS_MAXIMUM: u8 = 0x22;
    pub(crate) const TOPIC_ALIAS: u8 = 0x23;
    pub(crate) const MAXIMUM_QOS: u8 = 0x24;
    pub(crate) const RETAIN_AVAILABLE: u8 = 0x25;
    pub(crate) const USER_PROPERTY: u8 = 0x26;
    pub(crate) const MAXIMUM_PACKET_SIZE: u8 = 0x27;
    pub(crate) const WILDCARD_SUBSCRIPTION_AVAILABLE: u8 = 0x28;
    pub(crate) const SUBSCRIPTION_IDENTIFIER_AVAILABLE: u8 = 0x29;
    pub(crate) const SHARED_SUBSCRIPTION_AVAILABLE: u8 = 0x2A;
}

use id::*;

/// The properties one packet (or the Will) may carry.
#[derive(Debug)]
pub(crate) struct Scope {
    /// Allowed identifiers with the section defining each, in specification order.
    entries: &'static [(u8, &'static str)],
    /// Bit `n` set when identifier `n` is allowed.
    allowed: u64,
    /// Bit `n` set when identifier `n` may appear more than once.
    repeatable: u64,
}

impl Scope {
    const fn new(entries: &'static [(u8, &'static str)], repeatable: &[u8]) -> Self {
        let mut allowed = 0u64;
        let mut index = 0;
        while index < entries.len() {
            allowed |= 1 << entries[index].0;
            index += 1;
        }
        let mut repeats = 0u64;
        let mut index = 0;
        while index < repeatable.len() {
            repeats |= 1 << repeatable[index];
            index += 1;
        }
        Self {
            entries,
            allowed,
            repeatable: repeats,
        }
    }

    /// True when identifier `id` may appear in this packet.
    pub(crate) const fn allows(&self, id: u32) -> bool {
        id < 64 && self.allowed & (1 << id) != 0
    }

    /// True when identifier `id` may appear more than once in this packet.
    pub(crate) const fn repeats(&self, id: u8) -> bool {
        id < 64 && self.repeatable & (1 << id) != 0
    }

    /// The section defining property `id` in this packet, for error messages.
    pub(crate) fn section(&self, id: u8) -> &'static str {
        self.entries
            .iter()
            .find(|(entry, _)| *entry == id)
            .map_or("section 2.2.2.2", |(_, section)| section)
    }
}

/// CONNECT (section 3.1.2.11).
pub(crate) static CONNECT: Scope = Scope::new(
    &[
        (SESSION_EXPIRY_INTERVAL, "section 3.1.2.11.2"),
        (RECEIVE_MAXIMUM, "section 3.1.2.11.3"),
        (MAXIMUM_PACKET_SIZE, "section 3.1.2.11.4"),
        (TOPIC_ALIAS_MAXIMUM, "section 3.1.2.11.5"),
        (REQUEST_RESPONSE_INFORMATION, "section 3.1.2.11.6"),
        (REQUEST_PROBLEM_INFORMATION, "section 3.1.2.11.7"),
        (USER_PROPERTY, "section 3.1.2.11.8"),
        (AUTHENTICATION_METHOD, "section 3.1.2.11.9"),
        (AUTHENTICATION_DATA, "section 3.1.2.11.10"),
    ],
    &[USER_PROPERTY],
);

/// The Will in CONNECT (section 3.1.3.2).
pub(crate) static WILL: Scope = Scope::new(
    &[
        (WILL_DELAY_INTERVAL, "section 3.1.3.2.2"),
        (PAYLOAD_FORMAT_INDICATOR, "section 3.1.3.2.3"),
        (MESSAGE_EXPIRY_INTERVAL, "section 3.1.3.2.4"),
        (CONTENT_TYPE, "section 3.1.3.2.5"),
        (RESPONSE_TOPIC, "section 3.1.3.2.6"),
        (CORRELATION_DATA, "section 3.1.3.2.7"),
        (USER_PROPERTY, "section 3.1.3.2.8"),
    ],
    &[USER_PROPERTY],
);

/// CONNACK (section 3.2.2.3).
pub(crate) static CONNACK: Scope = Scope::new(
    &[
        (SESSION_EXPIRY_INTERVAL, "section 3.2.2.3.2"),
        (RECEIVE_MAXIMUM, "section 3.2.2.3.3"),
        (MAXIMUM_QOS, "section 3.2.2.3.4"),
        (RETAIN_AVAILABLE, "section 3.2.2.3.5"),
        (MAXIMUM_PACKET_SIZE, "section 3.2.2.3.6"),
        (ASSIGNED_CLIENT_IDENTIFIER, "section 3.2.2.3.7"),
        (TOPIC_ALIAS_MAXIMUM, "section 3.2.2.3.8"),
        (REASON_STRING, "section 3.2.2.3.9"),
        (USER_PROPERTY, "section 3.2.2.3.10"),
        (WILDCARD_SUBSCRIPTION_AVAILABLE, "section 3.2.2.3.11"),
        (SUBSCRIPTION_IDENTIFIER_AVAILABLE, "section 3.2.2.3.12"),
        (SHARED_SUBSCRIPTION_AVAILABLE, "section 3.2.2.3.13"),
        (SERVER_KEEP_ALIVE, "section 3.2.2.3.14"),
        (RESPONSE_INFORMATION, "section 3.2.2.3.15"),
        (SERVER_REFERENCE, "section 3.2.2.3.16"),
        (AUTHENTICATION_METHOD, "section 3.2.2.3.17"),
        (AUTHENTICATION_DATA, "section 3.2.2.3.18"),
    ],
    &[USER_PROPERTY],
);

/// PUBLISH (section 3.3.2.3); the Subscription Identifier may repeat here only.
pub(crate) static PUBLISH: Scope = Scope::new(
    &[
        (PAYLOAD_FORMAT_INDICATOR, "section 3.3.2.3.2"),
        (MESSAGE_EXPIRY_INTERVAL, "section 3.3.2.3.3"),
        (TOPIC_ALIAS, "section 3.3.2.3.4"),
        (RESPONSE_TOPIC, "section 3.3.2.3.5"),
        (CORRELATION_DATA, "section 3.3.2.3.6"),
        (USER_PROPERTY, "section 3.3.2.3.7"),
        (SUBSCRIPTION_IDENTIFIER, "section 3.3.2.3.8"),
        (CONTENT_TYPE, "section 3.3.2.3.9"),
    ],
    &[USER_PROPERTY, SUBSCRIPTION_IDENTIFIER],
);

/// PUBACK (section 3.4.2.2).
pub(crate) static PUBACK: Scope = Scope::new(
    &[
        (REASON_STRING, "section 3.4.2.2.2"),
        (USER_PROPERTY, "section 3.4.2.2.3"),
    ],
    &[USER_PROPERTY],
);

/// PUBREC (section 3.5.2.2).
pub(crate) static PUBREC: Scope = Scope::new(
    &[
        (REASON_STRING, "section 3.5.2.2.2"),
        (USER_PROPERTY, "section 3.5.2.2.3"),
    ],
    &[USER_PROPERTY],
);

/// PUBREL (section 3.6.2.2).
pub(crate) static PUBREL: Scope = Scope::new(
    &[
        (REASON_STRING, "section 3.6.2.2.2"),
        (USER_PROPERTY, "section 3.6.2.2.3"),
    ],
    &[USER_PROPERTY],
);

/// PUBCOMP (section 3.7.2.2).
pub(crate) static PUBCOMP: Scope = Scope::new(
    &[
        (REASON_STRING, "section 3.7.2.2.2"),
        (USER_PROPERTY, "section 3.7.2.2.3"),
    ],
    &[USER_PROPERTY],
);

/// SUBSCRIBE (section 3.8.2.1).
pub(crate) static SUBSCRIBE: Scope = Scope::new(
    &[
        (SUBSCRIPTION_IDENTIFIER, "section 3.8.2.1.2"),
        (USER_PROPERTY, "section 3.8.2.1.3"),
    ],
    &[USER_PROPERTY],
);

/// SUBACK (section 3.9.2.1).
pub(crate) static SUBACK: Scope = Scope::new(
    &[
        (REASON_STRING, "section 3.9.2.1.2"),
        (USER_PROPERTY, "section 3.9.2.1.3"),
    ],
    &[USER_PROPERTY],
);

/// UNSUBSCRIBE (section 3.10.2.1).
pub(crate) static UNSUBSCRIBE: Scope =
    Scope::new(&[(USER_PROPERTY, "section 3.10.2.1.2")], &[USER_PROPERTY]);

/// UNSUBACK (section 3.11.2.1).
pub(crate) static UNSUBACK: Scope = Scope::new(
    &[
        (REASON_STRING, "section 3.11.2.1.2"),
        (USER_PROPERTY, "section 3.11.2.1.3"),
    ],
    &[USER_PROPERTY],
);

/// DISCONNECT (section 3.14.2.2).
pub(crate) static DISCONNECT: Scope = Scope::new(
    &[
        (SESSION_EXPIRY_INTERVAL, "section 3.14.2.2.2"),
        (REASON_STRING, "section 3.14.2.2.3"),
        (USER_PROPERTY, "section 3.14.2.2.4"),
        (SERVER_REFERENCE, "section 3.14.2.2.5"),
    ],
    &[USER_PROPERTY],
);

/// AUTH (section 3.15.2.2).
pub(crate) static AUTH: Scope = Scope::new(
    &[
        (AUTHENTICATION_METHOD, "section 3.15.2.2.2"),
        (AUTHENTICATION_DATA, "section 3.15.2.2.3"),
        (REASON_STRING, "section 3.15.2.2.4"),
        (USER_PROPERTY, "section 3.15.2.2.5"),
    ],
    &[USER_PROPERTY],
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_property_is_allowed_and_repeatable_everywhere() {
        for scope in [
            &CONNECT,
            &WILL,
            &CONNACK,
            &PUBLISH,
            &PUBACK,
            &PUBREC,
            &PUBREL,
            &PUBCOMP,
            &SUBSCRIBE,
            &SUBACK,
            &UNSUBSCRIBE,
            &UNSUBACK,
            &DISCONNECT,
            &AUTH,
        ] {
            assert!(scope.allows(u32::from(USER_PROPERTY)));
            assert!(scope.repeats(USER_PROPERTY));
        }
    }

    #[test]
    fn subscription_identifier_repeats_only_in_publish() {
        assert!(PUBLISH.repeats(SUBSCRIPTION_IDENTIFIER));
        assert!(SUBSCRIBE.allows(u32::from(SUBSCRIPTION_IDENTIFIER)));
        assert!(!SUBSCRIBE.repeats(SUBSCRIPTION_IDENTIFIER));
    }

    #[test]
    fn identifiers_outside_the_table_are_not_allowed() {
        assert!(!CONNECT.allows(0));
        assert!(!CONNECT.allows(MAXIMUM_QOS.into()));
        assert!(!WILL.allows(MAXIMUM_QOS.into()));
        assert!(!CONNACK.allows(64));
        assert!(!CONNACK.allows(u32::MAX));
    }

    #[test]
    fn errors_name_the_defining_section() {
        assert_eq!(CONNECT.section(RECEIVE_MAXIMUM), "section 3.1.2.11.3");
        assert_eq!(CONNACK.section(RECEIVE_MAXIMUM), "section 3.2.2.3.3");
    }
}
