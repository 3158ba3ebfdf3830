//! Tenant identifiers: DNS-label slugs, because a tenant is reached at `<tenant>.<domain>`.

use std::fmt;
use std::sync::Arc;

/// The longest tenant slug: one DNS label.
pub const MAX_TENANT_ID_LEN: usize = 63;

/// A validated tenant slug: 1-63 characters of `a-z`, `0-9` and `-`, neither starting nor ending
/// with `-`. Cheap to clone.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(Arc<str>);

/// Why a string is not a tenant id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TenantIdError {
    /// Empty string.
    #[error("a tenant id cannot be empty")]
    Empty,
    /// Longer than one DNS label.
    #[error("a tenant id has at most {MAX_TENANT_ID_LEN} characters, got {0}")]
    TooLong(usize),
    /// A character outside `a-z0-9-`.
    #[error("a tenant id may contain only a-z, 0-9 and '-', found {0:?}")]
    InvalidCharacter(char),
    /// Leading or trailing hyphen.
    #[error("a tenant id cannot start or end with '-'")]
    EdgeHyphen,
}

impl TenantId {
    /// Validates `s` as a tenant slug.
    pub fn new(s: &str) -> Result<Self, TenantIdError> {
        if s.is_empty() {
            return Err(TenantIdError::Empty);
        }
        if s.len() > MAX_TENANT_ID_LEN {
            return Err(TenantIdError::TooLong(s.len()));
        }
        if let Some(c) = s
            .chars()
            .find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '-'))
        {
            return Err(TenantIdError::InvalidCharacter(c));
        }
        if s.starts_with('-') || s.ends_with('-') {
            return Err(TenantIdError::EdgeHyphen);
        }
        Ok(Self(Arc::from(s)))
    }

    /// The slug.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TenantId({})", self.0)
    }
}

impl serde::Serialize for TenantId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for TenantId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Self::new(&s).map_err(serde::de::Error::custom)
    }
}

impl std::str::FromStr for TenantId {
    type Err = TenantIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_slugs_are_accepted() {
        for s in ["dev", "a", "acme-corp", "t1", &"x".repeat(63)] {
            assert_eq!(
                TenantId::new(s).map(|t| t.as_str().to_owned()),
                Ok(s.to_owned())
            );
        }
    }

    #[test]
    fn invalid_slugs_are_rejected_with_the_reason() {
        assert_eq!(TenantId::new(""), Err(TenantIdError::Empty));
        assert_eq!(
            TenantId::new(&"x".repeat(64)),
            Err(TenantIdError::TooLong(64))
        );
        assert_eq!(
            TenantId::new("Acme"),
            Err(TenantIdError::InvalidCharacter('A'))
        );
        assert_eq!(
            TenantId::new("a.b"),
            Err(TenantIdError::InvalidCharacter('.'))
        );
        assert_eq!(
            TenantId::new("a/b"),
            Err(TenantIdError::InvalidCharacter('/'))
        );
        assert_eq!(TenantId::new("-a"), Err(TenantIdError::EdgeHyphen));
        assert_eq!(TenantId::new("a-"), Err(TenantIdError::EdgeHyphen));
    }
}
