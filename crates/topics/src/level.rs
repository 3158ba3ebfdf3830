//! Topic levels: the `/`-separated parts of a topic name or filter, the helpers that walk them
//! without allocating, and [`LevelKey`], a level as the indexes store it.

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};
use std::iter::FusedIterator;
use std::str::Split;

use crate::compact_map::{Pinning, allocation_size};

/// The topic level separator.
pub(crate) const SEPARATOR: char = '/';
/// The single-level wildcard, as a level.
pub(crate) const SINGLE: &str = "+";
/// The multi-level wildcard, as a level.
pub(crate) const MULTI: &str = "#";

/// Iterator over the levels of a [`TopicName`](crate::TopicName) or
/// [`TopicFilter`](crate::TopicFilter), in order. Empty levels are kept: `a//b` yields `"a"`, `""`,
/// `"b"` and `/` yields `""`, `""`.
#[derive(Debug, Clone)]
pub struct Levels<'a>(Split<'a, char>);

impl<'a> Levels<'a> {
    pub(crate) fn new(s: &'a str) -> Self {
        Self(s.split(SEPARATOR))
    }
}

impl<'a> Iterator for Levels<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        self.0.next()
    }
}

impl DoubleEndedIterator for Levels<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.0.next_back()
    }
}

impl FusedIterator for Levels<'_> {}

/// Number of levels of `s`: one more than the number of separators. O(length), no allocation.
pub(crate) fn count(s: &str) -> usize {
    s.bytes().filter(|&b| b == b'/').count() + 1
}

/// Splits off the first level: `"a/b/c"` gives `("a", Some("b/c"))`, `"a/"` gives
/// `("a", Some(""))` and `"a"` gives `("a", None)`. Walking a topic this way keeps empty levels
/// and needs no iterator state, so a trie walk can carry it on its own stack frame.
///
/// A byte scan rather than `split_once`: levels are short, and this runs once per level of every
/// PUBLISH.
pub(crate) fn split_first(s: &str) -> (&str, Option<&str>) {
    match s.bytes().position(|b| b == b'/') {
        // `/` is ASCII, so both slices fall on character boundaries and `get` always succeeds.
        Some(i) => match (s.get(..i), s.get(i + 1..)) {
            (Some(level), Some(rest)) => (level, Some(rest)),
            _ => (s, None),
        },
        None => (s, None),
    }
}

/// Levels up to this many bytes are stored inline in a [`LevelKey`].
const INLINE_LEN: usize = 22;

/// One level stored in an index: up to 22 bytes inline (most levels: words, numbers, short
/// ids), longer ones in an exactly-sized heap allocation. 24 bytes either way, against 16 bytes
/// plus a 32-byte allocation for a `Box<str>`. Compared as bytes: the indexes never need the
/// level back as a string, and a slice of a valid string is looked up by its bytes.
#[derive(Clone)]
pub(crate) enum LevelKey {
    Inline { len: u8, bytes: [u8; INLINE_LEN] },
    Heap(Box<[u8]>),
}

impl LevelKey {
    pub(crate) fn new(level: &str) -> Self {
        let source = level.as_bytes();
        match (u8::try_from(source.len()), source.len() <= INLINE_LEN) {
            (Ok(len), true) => {
                let mut bytes = [0; INLINE_LEN];
                bytes
                    .iter_mut()
                    .zip(source)
                    .for_each(|(to, from)| *to = *from);
                Self::Inline { len, bytes }
            }
            _ => Self::Heap(source.into()),
        }
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Inline { len, bytes } => bytes.get(..usize::from(*len)).unwrap_or_default(),
            Self::Heap(bytes) => bytes,
        }
    }

    /// Whether the level starts with `$`: at the first level, such a key is only reachable by a
    /// literal, never by a wildcard [MQTT-4.7.2-1].
    pub(crate) fn is_system(&self) -> bool {
        self.as_bytes().first() == Some(&b'$')
    }

    /// Heap bytes this key owns.
    pub(crate) fn heap_bytes(&self) -> usize {
        Self::heap_bytes_for(self.as_bytes().len())
    }

    /// Heap bytes the key for a level of `len` bytes owns.
    pub(crate) fn heap_bytes_for(len: usize) -> usize {
        if len <= INLINE_LEN {
            0
        } else {
            allocation_size(len)
        }
    }
}

impl PartialEq for LevelKey {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for LevelKey {}

impl Hash for LevelKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // As the byte slice, so that `Borrow<[u8]>` lookups in hash maps agree.
        self.as_bytes().hash(state);
    }
}

impl Borrow<[u8]> for LevelKey {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

/// The pinning policy of a node's children: the wildcard levels `+` and `#`, looked up at every
/// node a PUBLISH visits, stay out of a wide node's hash table.
pub(crate) enum Wildcards {}

impl Pinning<[u8]> for Wildcards {
    fn is_pinned(level: &[u8]) -> bool {
        level == SINGLE.as_bytes() || level == MULTI.as_bytes()
    }
}

impl Pinning<LevelKey> for Wildcards {
    fn is_pinned(key: &LevelKey) -> bool {
        Self::is_pinned(key.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_keep_empty_levels() {
        assert_eq!(Levels::new("a//b").collect::<Vec<_>>(), ["a", "", "b"]);
        assert_eq!(Levels::new("/").collect::<Vec<_>>(), ["", ""]);
        assert_eq!(Levels::new("a").rev().collect::<Vec<_>>(), ["a"]);
    }

    #[test]
    fn count_agrees_with_levels() {
        for s in ["a", "/", "a//b", "//", "$SYS/x/", "\u{FEFF}a/b"] {
            assert_eq!(count(s), Levels::new(s).count(), "{s:?}");
        }
    }

    #[test]
    fn level_keys_are_24_bytes_and_inline_up_to_22() {
        assert_eq!(std::mem::size_of::<LevelKey>(), 24);
        for len in [0, 1, 22, 23, 300] {
            let level = "x".repeat(len);
            let key = LevelKey::new(&level);
            assert_eq!(key.as_bytes(), level.as_bytes());
            assert_eq!(key.heap_bytes() == 0, len <= 22, "{len}");
        }
        assert!(LevelKey::new("$SYS").is_system());
        assert!(!LevelKey::new("").is_system());
    }

    #[test]
    fn split_first_walks_every_level() {
        assert_eq!(split_first("a/b/c"), ("a", Some("b/c")));
        assert_eq!(split_first("a/"), ("a", Some("")));
        assert_eq!(split_first(""), ("", None));
        assert_eq!(split_first("/x"), ("", Some("x")));
    }
}
