//! Why a string is not a topic name, topic filter or shared subscription, each reason naming
//! the normative statement of the MQTT specification it breaks.

/// Why a topic name, topic filter or shared-subscription filter was rejected.
///
/// Rule numbers follow MQTT 5.0. MQTT 3.1.1 numbers the wildcard rules differently (its
/// `[MQTT-4.7.1-2]` is 5.0's `[MQTT-4.7.1-1]` for `#`, its `[MQTT-4.7.1-3]` is 5.0's
/// `[MQTT-4.7.1-2]` for `+`); the other rules carry the same numbers in both versions.
///
/// A topic name error maps to reason code 0x90 (Topic Name invalid), a filter error to 0x8F
/// (Topic Filter invalid); both close a 3.1.1 connection. That mapping belongs to the protocol
/// engine, which knows which packet the topic came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    /// The string is empty.
    #[error("[MQTT-4.7.3-1] a topic name or topic filter must be at least one character long")]
    Empty,
    /// A topic name contains `+` or `#`.
    #[error("[MQTT-3.3.2-2] a topic name must not contain the wildcard characters '+' or '#'")]
    WildcardInTopicName,
    /// `#` is not alone in the last level of a filter.
    #[error("[MQTT-4.7.1-1] the multi-level wildcard '#' must be the whole of the last level")]
    MisplacedMultiLevelWildcard,
    /// `+` shares its level with other characters.
    #[error("[MQTT-4.7.1-2] the single-level wildcard '+' must occupy an entire level")]
    MisplacedSingleLevelWildcard,
    /// The string contains U+0000.
    #[error("[MQTT-4.7.3-2] a topic name or topic filter must not contain U+0000")]
    NullCharacter,
    /// Longer than the protocol's 65,535 bytes or than the configured maximum.
    #[error("[MQTT-4.7.3-3] a topic of {len} bytes exceeds the maximum of {max} bytes")]
    TooLong {
        /// Length of the rejected topic, in bytes.
        len: usize,
        /// The maximum that applied.
        max: usize,
    },
    /// More levels than the configured maximum. The specification sets no limit on levels
    /// beyond the length of the string and leaves it to the server (section 4.7.3).
    #[error(
        "[MQTT-4.7.3] a topic of {levels} levels exceeds this server's maximum of {max} levels"
    )]
    TooManyLevels {
        /// Number of levels of the rejected topic.
        levels: usize,
        /// The maximum that applied.
        max: usize,
    },
    /// `$share//filter`: the share name is empty.
    #[error("[MQTT-4.8.2-1] a shared subscription must name a share of at least one character")]
    EmptyShareName,
    /// The share name contains `/`, `+` or `#`.
    #[error("[MQTT-4.8.2-2] a share name must not contain '/', '+' or '#'")]
    InvalidShareName,
    /// `$share/name` or `$share/name/`: no topic filter follows the share name.
    #[error("[MQTT-4.8.2-2] a share name must be followed by '/' and a topic filter")]
    MissingSharedFilter,
}

impl TopicError {
    /// The normative statement (or, for a server limit, the section) this error breaks, without
    /// brackets: `"MQTT-4.7.1-1"`.
    pub fn rule(&self) -> &'static str {
        match self {
            Self::Empty => "MQTT-4.7.3-1",
            Self::WildcardInTopicName => "MQTT-3.3.2-2",
            Self::MisplacedMultiLevelWildcard => "MQTT-4.7.1-1",
            Self::MisplacedSingleLevelWildcard => "MQTT-4.7.1-2",
            Self::NullCharacter => "MQTT-4.7.3-2",
            Self::TooLong { .. } => "MQTT-4.7.3-3",
            Self::TooManyLevels { .. } => "MQTT-4.7.3",
            Self::EmptyShareName => "MQTT-4.8.2-1",
            Self::InvalidShareName | Self::MissingSharedFilter => "MQTT-4.8.2-2",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_starts_with_its_rule() {
        let all = [
            TopicError::Empty,
            TopicError::WildcardInTopicName,
            TopicError::MisplacedMultiLevelWildcard,
            TopicError::MisplacedSingleLevelWildcard,
            TopicError::NullCharacter,
            TopicError::TooLong { len: 9, max: 8 },
            TopicError::TooManyLevels { levels: 9, max: 8 },
            TopicError::EmptyShareName,
            TopicError::InvalidShareName,
            TopicError::MissingSharedFilter,
        ];
        for e in all {
            let message = e.to_string();
            assert!(
                message.starts_with(&format!("[{}] ", e.rule())),
                "{message}"
            );
        }
    }
}
