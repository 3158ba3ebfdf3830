//! Shared subscriptions (MQTT 5.0 section 4.8.2): `$share/{ShareName}/{filter}` parsed into a
//! [`ShareName`] and a [`TopicFilter`].

use std::borrow::Borrow;
use std::fmt;
use std::str::FromStr;

use bytestring::ByteString;

use crate::MAX_TOPIC_LEN;
use crate::error::TopicError;
use crate::filter::TopicFilter;

/// The prefix that marks a shared subscription.
const SHARE_PREFIX: &str = "$share/";

/// The name of a shared-subscription group: at least one character, without `/`, `+`, `#` or
/// U+0000 [MQTT-4.8.2-1], [MQTT-4.8.2-2].
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShareName(ByteString);

impl ShareName {
    /// Validates `s` as a share name.
    pub fn new(s: ByteString) -> Result<Self, TopicError> {
        validate_share(&s)?;
        Ok(Self(s))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The underlying string.
    pub fn into_inner(self) -> ByteString {
        self.0
    }
}

fn validate_share(s: &str) -> Result<(), TopicError> {
    if s.is_empty() {
        return Err(TopicError::EmptyShareName);
    }
    if s.len() > MAX_TOPIC_LEN {
        return Err(TopicError::TooLong {
            len: s.len(),
            max: MAX_TOPIC_LEN,
        });
    }
    for b in s.bytes() {
        match b {
            b'/' | b'+' | b'#' => return Err(TopicError::InvalidShareName),
            0 => return Err(TopicError::NullCharacter),
            _ => {}
        }
    }
    Ok(())
}

impl fmt::Debug for ShareName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ShareName({:?})", self.as_str())
    }
}

impl fmt::Display for ShareName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl AsRef<str> for ShareName {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for ShareName {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl TryFrom<&str> for ShareName {
    type Error = TopicError;

    fn try_from(s: &str) -> Result<Self, TopicError> {
        validate_share(s)?;
        Ok(Self(ByteString::from(s)))
    }
}

impl FromStr for ShareName {
    type Err = TopicError;

    fn from_str(s: &str) -> Result<Self, TopicError> {
        Self::try_from(s)
    }
}

/// One entry of a SUBSCRIBE or UNSUBSCRIBE: a topic filter, shared by a group when `share` is
/// set. A plain filter is a `FilterSpec` without a share.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FilterSpec {
    /// The share group, for `$share/{share}/{filter}`.
    pub share: Option<ShareName>,
    /// The filter the subscription matches topics with. For a shared subscription the
    /// [MQTT-4.7.2-1] `$` rule applies to this filter, not to the `$share/` prefix.
    pub filter: TopicFilter,
}

impl FilterSpec {
    /// Parses a filter as it appears in SUBSCRIBE: `$share/{ShareName}/{filter}` or a plain
    /// filter. Both parts are zero-copy slices of `s`. Only the exact prefix `$share/` marks a
    /// shared subscription; `$share` alone or `$sharefoo/x` are plain filters.
    pub fn parse(s: ByteString) -> Result<Self, TopicError> {
        if s.len() > MAX_TOPIC_LEN {
            return Err(TopicError::TooLong {
                len: s.len(),
                max: MAX_TOPIC_LEN,
            });
        }
        let Some(rest) = s.strip_prefix(SHARE_PREFIX) else {
            return Ok(Self::from(TopicFilter::new(s)?));
        };
        let Some((share, filter)) = rest.split_once('/') else {
            // `$share/` or `$share/g`: the name, if any, is not followed by `/` and a filter.
            return Err(if rest.is_empty() {
                TopicError::EmptyShareName
            } else {
                validate_share(rest)
                    .err()
                    .unwrap_or(TopicError::MissingSharedFilter)
            });
        };
        validate_share(share)?;
        if filter.is_empty() {
            return Err(TopicError::MissingSharedFilter);
        }
        Ok(Self {
            share: Some(ShareName(s.slice_ref(share))),
            filter: TopicFilter::new(s.slice_ref(filter))?,
        })
    }

    /// Whether this is a shared subscription.
    pub fn is_shared(&self) -> bool {
        self.share.is_some()
    }
}

impl From<TopicFilter> for FilterSpec {
    fn from(filter: TopicFilter) -> Self {
        Self {
            share: None,
            filter,
        }
    }
}

impl fmt::Display for FilterSpec {
    /// The filter as it was written in SUBSCRIBE.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.share {
            Some(share) => write!(f, "{SHARE_PREFIX}{share}/{}", self.filter),
            None => fmt::Display::fmt(&self.filter, f),
        }
    }
}

impl TryFrom<&str> for FilterSpec {
    type Error = TopicError;

    fn try_from(s: &str) -> Result<Self, TopicError> {
        Self::parse(ByteString::from(s))
    }
}

impl FromStr for FilterSpec {
    type Err = TopicError;

    fn from_str(s: &str) -> Result<Self, TopicError> {
        Self::try_from(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_parts_are_slices_of_the_input() {
        let s = ByteString::from_static("$share/g/a/+");
        let spec = FilterSpec::parse(s.clone()).unwrap();
        let share = spec.share.as_ref().unwrap();
        assert_eq!(share.as_str().as_ptr(), s[7..].as_ptr());
        assert_eq!(spec.filter.as_str().as_ptr(), s[9..].as_ptr());
    }

    #[test]
    fn display_round_trips() {
        for s in ["$share/g/a/+", "a/#", "$share", "$SYS/#"] {
            assert_eq!(FilterSpec::try_from(s).unwrap().to_string(), s);
        }
    }
}
