//! [`TopicLimits`]: the server's own bounds on topic length and depth, checked on top of the
//! protocol's rules.

use crate::MAX_TOPIC_LEN;
use crate::error::TopicError;
use crate::filter::TopicFilter;
use crate::level;
use crate::name::TopicName;

/// The server's limits on topic names and filters, typically per tenant or plan.
///
/// The indexes in this crate walk one level per trie node, so the protocol engine is expected to
/// check every name and filter against a `TopicLimits` before it reaches them: that is what keeps
/// trie depth, and with it the cost of a walk, bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicLimits {
    /// Longest accepted topic, in bytes.
    pub max_topic_length: usize,
    /// Most accepted levels (`a/b/c` has 3).
    pub max_levels: usize,
}

impl TopicLimits {
    /// No bounds beyond the protocol's: 65,535 bytes, and as many levels as fit in them
    /// (65,536, all empty, for a topic made of 65,535 `/`).
    pub const PROTOCOL: Self = Self {
        max_topic_length: MAX_TOPIC_LEN,
        max_levels: MAX_TOPIC_LEN + 1,
    };

    /// Checks a topic name against the limits.
    pub fn check_name(&self, name: &TopicName) -> Result<(), TopicError> {
        self.check(name.as_str())
    }

    /// Checks a topic filter against the limits. A shared subscription's filter is checked
    /// without its `$share/{name}/` prefix.
    pub fn check_filter(&self, filter: &TopicFilter) -> Result<(), TopicError> {
        self.check(filter.as_str())
    }

    /// Length first (O(1)), then levels (one pass over the bytes, no allocation).
    fn check(&self, s: &str) -> Result<(), TopicError> {
        if s.len() > self.max_topic_length {
            return Err(TopicError::TooLong {
                len: s.len(),
                max: self.max_topic_length,
            });
        }
        let levels = level::count(s);
        if levels > self.max_levels {
            return Err(TopicError::TooManyLevels {
                levels,
                max: self.max_levels,
            });
        }
        Ok(())
    }
}

impl Default for TopicLimits {
    /// The protocol's length limit and 128 levels: deeper than any real topic hierarchy, shallow
    /// enough to bound a trie walk.
    fn default() -> Self {
        Self {
            max_topic_length: MAX_TOPIC_LEN,
            max_levels: 128,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_topic_length: usize, max_levels: usize) -> TopicLimits {
        TopicLimits {
            max_topic_length,
            max_levels,
        }
    }

    #[test]
    fn names_over_the_length_limit_are_rejected() {
        let name = TopicName::try_from("abcde").unwrap();
        assert_eq!(limits(5, 8).check_name(&name), Ok(()));
        assert_eq!(
            limits(4, 8).check_name(&name),
            Err(TopicError::TooLong { len: 5, max: 4 })
        );
    }

    #[test]
    fn filters_over_the_level_limit_are_rejected() {
        let filter = TopicFilter::try_from("a//+/#").unwrap();
        assert_eq!(limits(100, 4).check_filter(&filter), Ok(()));
        assert_eq!(
            limits(100, 3).check_filter(&filter),
            Err(TopicError::TooManyLevels { levels: 4, max: 3 })
        );
    }

    #[test]
    fn protocol_limits_accept_every_valid_topic() {
        let deepest = TopicName::try_from("/".repeat(MAX_TOPIC_LEN)).unwrap();
        assert_eq!(deepest.level_count(), MAX_TOPIC_LEN + 1);
        assert_eq!(TopicLimits::PROTOCOL.check_name(&deepest), Ok(()));
    }
}
