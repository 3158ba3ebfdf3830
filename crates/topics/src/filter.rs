//! [`TopicFilter`]: what a SUBSCRIBE asks for, possibly with wildcards (MQTT 5.0 section 4.7.1),
//! and the reference matcher every index is tested against.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use bytestring::ByteString;

use crate::MAX_TOPIC_LEN;
use crate::error::TopicError;
use crate::level::{self, Levels, MULTI, SINGLE};
use crate::name::TopicName;

/// A validated topic filter: non-empty, at most 65,535 bytes, no U+0000, `+` only as a whole
/// level, `#` only as the whole last level.
///
/// Backed by a [`ByteString`] like [`TopicName`]. A shared subscription's `$share/{name}/`
/// prefix is not part of a `TopicFilter`; see [`FilterSpec`](crate::FilterSpec).
#[derive(Clone)]
pub struct TopicFilter(ByteString);

impl TopicFilter {
    /// Validates `s` as a topic filter.
    pub fn new(s: ByteString) -> Result<Self, TopicError> {
        validate(&s)?;
        Ok(Self(s))
    }

    /// The filter.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The underlying string.
    pub fn into_inner(self) -> ByteString {
        self.0
    }

    /// The `/`-separated levels, empty levels included.
    pub fn levels(&self) -> Levels<'_> {
        Levels::new(&self.0)
    }

    /// Number of levels, at least 1. O(length), no allocation.
    pub fn level_count(&self) -> usize {
        level::count(&self.0)
    }

    /// Whether the filter starts with `$`.
    pub fn is_system(&self) -> bool {
        self.0.starts_with('$')
    }

    /// Whether the filter contains `+` or `#`; a filter without them matches one topic only.
    pub fn has_wildcards(&self) -> bool {
        self.0.bytes().any(|b| b == b'+' || b == b'#')
    }

    /// Whether the filter's first level is a wildcard, which keeps it from matching topics that
    /// start with `$` [MQTT-4.7.2-1].
    pub fn starts_with_wildcard(&self) -> bool {
        self.0.starts_with(['+', '#'])
    }

    /// Whether `topic` matches this filter.
    ///
    /// A plain level-by-level comparison, kept simple on purpose: it is the oracle the indexes
    /// ([`SubscriptionTrie`](crate::SubscriptionTrie), [`TopicTree`](crate::TopicTree)) are
    /// property-tested against. `+` matches exactly one level, empty levels included (`a/+`
    /// matches `a/`); `#` matches any number of levels including none, so `a/#` matches `a`
    /// (section 4.7.1.2); a filter starting with a wildcard never matches a topic starting with
    /// `$` [MQTT-4.7.2-1].
    pub fn matches(&self, topic: &TopicName) -> bool {
        if topic.is_system() && self.starts_with_wildcard() {
            return false;
        }
        let mut filter_levels = self.levels();
        let mut topic_levels = topic.levels();
        loop {
            match (filter_levels.next(), topic_levels.next()) {
                (Some(MULTI), _) => return true,
                (None, None) => return true,
                (Some(SINGLE), Some(_)) => {}
                (Some(f), Some(t)) if f == t => {}
                _ => return false,
            }
        }
    }
}

/// Checks the rules a topic filter must satisfy, level by level.
fn validate(s: &str) -> Result<(), TopicError> {
    if s.is_empty() {
        return Err(TopicError::Empty);
    }
    if s.len() > MAX_TOPIC_LEN {
        return Err(TopicError::TooLong {
            len: s.len(),
            max: MAX_TOPIC_LEN,
        });
    }
    let mut levels = Levels::new(s).peekable();
    while let Some(level) = levels.next() {
        if level.as_bytes().contains(&0) {
            return Err(TopicError::NullCharacter);
        }
        if level.contains('#') && (level != MULTI || levels.peek().is_some()) {
            return Err(TopicError::MisplacedMultiLevelWildcard);
        }
        if level.contains('+') && level != SINGLE {
            return Err(TopicError::MisplacedSingleLevelWildcard);
        }
    }
    Ok(())
}

impl From<TopicName> for TopicFilter {
    /// Every topic name is a filter that matches exactly that name.
    fn from(name: TopicName) -> Self {
        Self(name.into_inner())
    }
}

impl fmt::Debug for TopicFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TopicFilter({:?})", self.as_str())
    }
}

impl fmt::Display for TopicFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq for TopicFilter {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for TopicFilter {}

impl PartialOrd for TopicFilter {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for TopicFilter {
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl Hash for TopicFilter {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl AsRef<str> for TopicFilter {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for TopicFilter {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl TryFrom<ByteString> for TopicFilter {
    type Error = TopicError;

    fn try_from(s: ByteString) -> Result<Self, TopicError> {
        Self::new(s)
    }
}

impl TryFrom<&str> for TopicFilter {
    type Error = TopicError;

    /// Validates first, then copies, so a rejected string costs no allocation.
    fn try_from(s: &str) -> Result<Self, TopicError> {
        validate(s)?;
        Ok(Self(ByteString::from(s)))
    }
}

impl TryFrom<String> for TopicFilter {
    type Error = TopicError;

    fn try_from(s: String) -> Result<Self, TopicError> {
        validate(&s)?;
        Ok(Self(ByteString::from(s)))
    }
}

impl FromStr for TopicFilter {
    type Err = TopicError;

    fn from_str(s: &str) -> Result<Self, TopicError> {
        Self::try_from(s)
    }
}

impl From<TopicFilter> for ByteString {
    fn from(filter: TopicFilter) -> Self {
        filter.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_topic_name_is_a_filter_matching_only_itself() {
        let name = TopicName::try_from("a/b").unwrap();
        let filter = TopicFilter::from(name.clone());
        assert!(!filter.has_wildcards());
        assert!(filter.matches(&name));
        assert!(!filter.matches(&TopicName::try_from("a/b/c").unwrap()));
    }

    #[test]
    fn wildcards_are_detected_anywhere() {
        for (f, wild) in [("a/b", false), ("+", true), ("a/#", true), ("a/+/b", true)] {
            assert_eq!(
                TopicFilter::try_from(f).unwrap().has_wildcards(),
                wild,
                "{f}"
            );
        }
    }
}
