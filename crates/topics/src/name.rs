//! [`TopicName`]: the topic a PUBLISH is sent to (MQTT 5.0 section 4.7, 3.3.2.1).

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use bytestring::ByteString;

use crate::MAX_TOPIC_LEN;
use crate::error::TopicError;
use crate::level::{self, Levels};

/// A validated topic name: non-empty, at most 65,535 bytes, without `+`, `#` or U+0000.
///
/// Backed by a [`ByteString`], so a name decoded from a packet shares the packet's buffer and a
/// clone only bumps a reference count. Equality, ordering and hashing are those of the string;
/// no normalisation is applied [MQTT-4.7.3-4].
#[derive(Clone)]
pub struct TopicName(ByteString);

impl TopicName {
    /// Validates `s` as a topic name.
    pub fn new(s: ByteString) -> Result<Self, TopicError> {
        validate(&s)?;
        Ok(Self(s))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The underlying string, to hand back to the codec.
    pub fn into_inner(self) -> ByteString {
        self.0
    }

    /// A copy in an allocation of its own. A name decoded from a packet shares the packet's
    /// read buffer, and a clone keeps that whole buffer alive; an index holding names for long
    /// should hold detached ones.
    pub fn detached(&self) -> Self {
        Self(ByteString::from(self.as_str()))
    }

    /// The `/`-separated levels, empty levels included.
    pub fn levels(&self) -> Levels<'_> {
        Levels::new(&self.0)
    }

    /// Number of levels, at least 1. O(length), no allocation.
    pub fn level_count(&self) -> usize {
        level::count(&self.0)
    }

    /// Whether the name starts with `$` (`$SYS/...`, `$share/...`): such topics are not matched
    /// by filters starting with a wildcard [MQTT-4.7.2-1].
    pub fn is_system(&self) -> bool {
        self.0.starts_with('$')
    }
}

/// Checks the rules a topic name must satisfy, in one pass over the bytes.
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
    for b in s.bytes() {
        match b {
            b'+' | b'#' => return Err(TopicError::WildcardInTopicName),
            0 => return Err(TopicError::NullCharacter),
            _ => {}
        }
    }
    Ok(())
}

impl fmt::Debug for TopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TopicName({:?})", self.as_str())
    }
}

impl fmt::Display for TopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq for TopicName {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for TopicName {}

impl PartialOrd for TopicName {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for TopicName {
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl Hash for TopicName {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Hash as the `str`, so that `Borrow<str>` lookups in hash maps agree.
        self.as_str().hash(state);
    }
}

impl AsRef<str> for TopicName {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for TopicName {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl TryFrom<ByteString> for TopicName {
    type Error = TopicError;

    fn try_from(s: ByteString) -> Result<Self, TopicError> {
        Self::new(s)
    }
}

impl TryFrom<&str> for TopicName {
    type Error = TopicError;

    /// Validates first, then copies, so a rejected string costs no allocation.
    fn try_from(s: &str) -> Result<Self, TopicError> {
        validate(s)?;
        Ok(Self(ByteString::from(s)))
    }
}

impl TryFrom<String> for TopicName {
    type Error = TopicError;

    fn try_from(s: String) -> Result<Self, TopicError> {
        validate(&s)?;
        Ok(Self(ByteString::from(s)))
    }
}

impl FromStr for TopicName {
    type Err = TopicError;

    fn from_str(s: &str) -> Result<Self, TopicError> {
        Self::try_from(s)
    }
}

impl From<TopicName> for ByteString {
    fn from(name: TopicName) -> Self {
        name.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_string_constructor_keeps_the_buffer() {
        let s = ByteString::from_static("a/b");
        let name = TopicName::new(s.clone()).unwrap();
        assert_eq!(name.as_str().as_ptr(), s.as_ptr());
        assert_eq!(name.into_inner(), s);
    }

    #[test]
    fn hash_agrees_with_str_for_map_lookups() {
        let mut set = std::collections::HashSet::new();
        set.insert(TopicName::try_from("a/b").unwrap());
        assert!(set.contains("a/b"));
    }

    #[test]
    fn system_topics_start_with_a_dollar() {
        assert!(TopicName::try_from("$SYS/x").unwrap().is_system());
        assert!(TopicName::try_from("$").unwrap().is_system());
        assert!(!TopicName::try_from("a/$SYS").unwrap().is_system());
    }
}
