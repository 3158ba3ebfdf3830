//! Loss and duplicate accounting from publisher ids and sequence numbers.
//!
//! Every receiving connection keeps, per publisher, a bitmap of the sequence numbers it saw
//! ([`Seen`]); a second sighting on the same connection is a duplicate at once. Receivers are
//! grouped by what they must receive together: a plain subscriber is its own group, the members
//! of a `$share` group form one. At the end the members' bitmaps are merged per group: a number
//! seen by two members is a duplicate, and a number the publisher sent (and, for QoS 1/2, had
//! acknowledged) that no member saw is lost.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A set of sequence numbers, as a bitmap that grows with the highest number seen.
#[derive(Debug, Default, Clone)]
pub(crate) struct SeqSet {
    words: Vec<u64>,
    len: u64,
}

impl SeqSet {
    /// Adds `seq`; false if it was already there.
    pub(crate) fn insert(&mut self, seq: u32) -> bool {
        let word = (seq / 64) as usize;
        let bit = 1u64 << (seq % 64);
        if word >= self.words.len() {
            // Grow geometrically so that a stream of increasing numbers costs amortised O(1).
            let want = (word + 1).max(self.words.len() * 2).max(16);
            self.words.resize(want, 0);
        }
        let slot = &mut self.words[word];
        let fresh = *slot & bit == 0;
        *slot |= bit;
        self.len += u64::from(fresh);
        fresh
    }

    /// True if `seq` is in the set.
    pub(crate) fn contains(&self, seq: u32) -> bool {
        self.words
            .get((seq / 64) as usize)
            .is_some_and(|w| w & (1u64 << (seq % 64)) != 0)
    }

    /// How many numbers are in the set.
    #[cfg(test)]
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Adds every number of `other`; returns how many were already here.
    pub(crate) fn merge(&mut self, other: &SeqSet) -> u64 {
        if other.words.len() > self.words.len() {
            self.words.resize(other.words.len(), 0);
        }
        let mut overlap = 0u64;
        for (mine, theirs) in self.words.iter_mut().zip(&other.words) {
            overlap += u64::from((*mine & theirs).count_ones());
            *mine |= theirs;
        }
        self.len = self.len + other.len - overlap;
        overlap
    }

    /// How many of `0..end` are missing from the set.
    pub(crate) fn missing_below(&self, end: u32) -> u64 {
        let full_words = (end / 64) as usize;
        let mut present = 0u64;
        for i in 0..full_words {
            present += u64::from(self.words.get(i).map_or(0, |w| w.count_ones()));
        }
        let tail_bits = end % 64;
        if tail_bits > 0 {
            let mask = (1u64 << tail_bits) - 1;
            present += u64::from(
                self.words
                    .get(full_words)
                    .map_or(0, |w| (w & mask).count_ones()),
            );
        }
        u64::from(end) - present
    }
}

/// A hasher for small integer keys (publisher ids): one multiplication, spreads the bits the
/// table uses.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u32(&mut self, value: u32) {
        self.0 = u64::from(value).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// Sequence numbers seen by one receiving connection, per publisher.
pub(crate) type Seen = HashMap<u32, SeqSet, BuildHasherDefault<IdHasher>>;

/// What one publisher sent.
#[derive(Debug, Clone, Default)]
pub(crate) struct Sent {
    /// Sequence numbers `0..count` were sent.
    pub(crate) count: u32,
    /// Of those, the ones no receiver is owed: QoS 1/2 messages never acknowledged, or refused
    /// by the broker (reason code >= 0x80).
    pub(crate) excused: Vec<u32>,
}

/// Totals over all groups.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Accounting {
    /// Deliveries owed: for each group, each message of each publisher it listens to.
    pub(crate) expected: u64,
    /// Owed deliveries that never arrived.
    pub(crate) lost: u64,
    /// Deliveries beyond the first of a message within a group.
    pub(crate) duplicated: u64,
}

/// Merges the members of one group and counts against `sent` for the publishers the group
/// listens to. `within_member_dups` are the duplicates the members already counted themselves.
pub(crate) fn account_group<'a>(
    members: impl IntoIterator<Item = &'a Seen>,
    within_member_dups: u64,
    publishers: impl IntoIterator<Item = u32>,
    sent: &[Sent],
) -> Accounting {
    let mut merged: Seen = Seen::default();
    let mut duplicated = within_member_dups;
    for member in members {
        for (publisher, set) in member {
            duplicated += merged.entry(*publisher).or_default().merge(set);
        }
    }
    let empty = SeqSet::default();
    let mut acc = Accounting {
        duplicated,
        ..Accounting::default()
    };
    for publisher in publishers {
        let Some(sent) = sent.get(publisher as usize) else {
            continue;
        };
        let seen = merged.get(&publisher).unwrap_or(&empty);
        let excused_missing = sent
            .excused
            .iter()
            .filter(|&&seq| seq < sent.count && !seen.contains(seq))
            .count() as u64;
        let excused_in_range = sent.excused.iter().filter(|&&s| s < sent.count).count() as u64;
        acc.expected += u64::from(sent.count) - excused_in_range;
        acc.lost += seen.missing_below(sent.count) - excused_missing;
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(publisher: u32, seqs: impl IntoIterator<Item = u32>) -> Seen {
        let mut set = SeqSet::default();
        for s in seqs {
            set.insert(s);
        }
        Seen::from_iter([(publisher, set)])
    }

    #[test]
    fn a_second_sighting_is_reported() {
        let mut set = SeqSet::default();
        assert!(set.insert(5));
        assert!(!set.insert(5));
        assert!(set.insert(1000));
        assert_eq!(set.len(), 2);
        assert!(set.contains(1000) && !set.contains(999));
        assert_eq!(set.missing_below(6), 5);
        assert_eq!(set.missing_below(1001), 999);
    }

    #[test]
    fn complete_delivery_has_no_loss() {
        let sent = [Sent {
            count: 100,
            excused: vec![],
        }];
        let acc = account_group([&seen(0, 0..100)], 0, [0], &sent);
        assert_eq!(
            acc,
            Accounting {
                expected: 100,
                lost: 0,
                duplicated: 0
            }
        );
    }

    #[test]
    fn missing_numbers_are_lost_unless_unacknowledged() {
        let sent = [Sent {
            count: 10,
            excused: vec![8, 9],
        }];
        // 3 never arrived (lost); 8 arrived although unacknowledged; 9 did not (excused).
        let member = seen(0, (0..10).filter(|&s| s != 3 && s != 9));
        let acc = account_group([&member], 0, [0], &sent);
        assert_eq!(acc.expected, 8);
        assert_eq!(acc.lost, 1);
    }

    #[test]
    fn a_message_seen_by_two_members_of_a_share_group_is_a_duplicate() {
        let sent = [Sent {
            count: 6,
            excused: vec![],
        }];
        let a = seen(0, [0, 2, 4]);
        let b = seen(0, [1, 3, 5, 4]);
        let acc = account_group([&a, &b], 0, [0], &sent);
        assert_eq!(acc.lost, 0);
        assert_eq!(acc.duplicated, 1);
    }

    #[test]
    fn a_publisher_never_heard_from_is_entirely_lost() {
        let sent = [
            Sent {
                count: 4,
                excused: vec![],
            },
            Sent {
                count: 3,
                excused: vec![],
            },
        ];
        let acc = account_group([&seen(0, 0..4)], 0, [0, 1], &sent);
        assert_eq!(acc.expected, 7);
        assert_eq!(acc.lost, 3);
    }
}
