//! [`SubscriptionTrie`]: the subscription index, from topic filters to the sessions subscribed
//! with them.
//!
//! # Memory
//!
//! A node is 32 bytes (children and subscribers, each a `CompactMap`: an exactly-sized boxed
//! slice, or a boxed hash map past 16 entries) and sits in its parent's children as a 56-byte slot
//! with its level (a 24-byte key, inline up to 22 bytes). A filter adds a node per level only
//! where it leaves the filters already stored, and a subscriber adds one `(K, V)` pair to its
//! filter's node.
//!
//! One subscription to a unique 3-level filter such as `devices/00001234/telemetry`, with a `u64`
//! key and 8-byte options, costs:
//!
//! | what | bytes |
//! |---|---|
//! | the device level's slot in the wide `devices` node's hash table (57 bytes with its control byte, times 1.14-2.3 for the table's spare buckets) | 65-130 |
//! | the device node's one-child slice (one 56-byte slot, a 64-byte malloc chunk) | 64 |
//! | the leaf's one-subscriber slice (16 bytes, a 32-byte chunk) | 32 |
//! | **total** | **161-226** |
//!
//! Measured with [`SubscriptionTrie::approx_memory_bytes`] (`tests/memory.rs`): 170 bytes per
//! subscription over 100,000 such filters, 215 over 1,000,000 (the table having just doubled), in
//! agreement with a counting allocator and with the process's resident size. A level longer than
//! 22 bytes (a UUID) adds its own allocation (48 bytes for 36 bytes); another subscriber on an
//! existing filter adds 16 bytes.
//!
//! # Matching
//!
//! A PUBLISH walks the topic's levels once. At each node it visits only what the topic can reach:
//! the child named by the topic level, the `+` child and the `#` child (whose subscribers match
//! whatever remains, including nothing: `a/#` matches `a`). A wide node keeps its `+` and `#`
//! children beside its hash table, so looking for them costs no hashing. At the root, `+` and `#`
//! are skipped for topics starting with `$` [MQTT-4.7.2-1]. The walk allocates nothing; it is a
//! loop that only recurses where a topic level has both a literal and a `+` child, so stack depth
//! is bounded by the number of such forks on the path, not by topic depth.

use std::fmt;
use std::hash::Hash;
use std::mem::size_of;

use crate::compact_map::CompactMap;
use crate::filter::TopicFilter;
use crate::level::{self, MULTI, SINGLE};
use crate::level_trie::{LevelTrie, Node, Payload};
use crate::name::TopicName;

/// The subscribers of one filter: key (a session or subscription id) to value (its options).
type Subscribers<K, V> = CompactMap<K, V>;

impl<K, V> Payload for Subscribers<K, V> {
    fn is_empty(&self) -> bool {
        CompactMap::is_empty(self)
    }

    fn heap_bytes(&self) -> usize {
        CompactMap::heap_bytes(self)
    }
}

/// Topic filters to subscribers: `K` identifies a subscriber (a small `Copy` id in practice) and
/// `V` holds its subscription options. A key subscribes at most once per filter.
///
/// Filters are stored as given: the engine checks them against
/// [`TopicLimits`](crate::TopicLimits) first, which bounds the trie's depth.
pub struct SubscriptionTrie<K, V> {
    trie: LevelTrie<Subscribers<K, V>>,
    len: usize,
}

impl<K: Eq + Hash, V> SubscriptionTrie<K, V> {
    /// An empty index.
    pub fn new() -> Self {
        Self {
            trie: LevelTrie::default(),
            len: 0,
        }
    }

    /// Subscribes `key` with `filter`, returning the previous value if `key` was already
    /// subscribed with that filter (a SUBSCRIBE replacing an existing subscription).
    pub fn insert(&mut self, filter: &TopicFilter, key: K, value: V) -> Option<V> {
        let replaced = self.trie.upsert(filter.levels(), |subscribers| {
            subscribers.insert(key, value)
        });
        if replaced.is_none() {
            self.len += 1;
        }
        replaced
    }

    /// Unsubscribes `key` from `filter`, returning its value, and prunes the nodes that no
    /// longer lead to a subscriber.
    pub fn remove(&mut self, filter: &TopicFilter, key: &K) -> Option<V> {
        let removed = self
            .trie
            .update(filter.levels(), |subscribers| subscribers.remove(key))
            .flatten();
        if removed.is_some() {
            self.len -= 1;
        }
        removed
    }

    /// The value `key` subscribed to `filter` with.
    pub fn get(&self, filter: &TopicFilter, key: &K) -> Option<&V> {
        self.trie.find(filter.levels())?.payload.get(key)
    }

    /// Calls `f` once for every (filter, key) subscription whose filter matches `topic`, with
    /// references that live as long as the trie's borrow (so they may be collected). A key
    /// subscribed with several matching filters is reported once per filter; deciding what one
    /// session receives from overlapping subscriptions (MQTT 5.0 section 3.3.4) is the caller's
    /// job. Allocates nothing.
    pub fn for_each_match<'a>(&'a self, topic: &TopicName, mut f: impl FnMut(&'a K, &'a V)) {
        visit(
            self.trie.root(),
            Some(topic.as_str()),
            true,
            topic.is_system(),
            &mut f,
        );
    }

    /// Number of (filter, key) subscriptions.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no subscriptions.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of trie nodes besides the root: one per distinct filter prefix.
    pub fn node_count(&self) -> usize {
        self.trie.node_count()
    }

    /// Estimated bytes used by the index: the struct itself, plus every node, level and
    /// subscriber slot on the heap, with per-allocation overhead modelled on glibc malloc. Heap
    /// memory owned by `K` or `V` themselves is not counted. O(1): kept up to date by every
    /// change. Meant for a `mqtt_subscription_memory_bytes` gauge.
    pub fn approx_memory_bytes(&self) -> usize {
        size_of::<Self>() + self.trie.heap_bytes()
    }
}

/// Walks from `node` with `rest`, the levels of the topic not yet consumed (`None` once all
/// are), reporting the subscribers of every matching filter.
fn visit<'a, K, V, F: FnMut(&'a K, &'a V)>(
    mut node: &'a Node<Subscribers<K, V>>,
    mut rest: Option<&str>,
    mut at_root: bool,
    system: bool,
    f: &mut F,
) {
    loop {
        let wildcards = !(at_root && system);
        if wildcards && let Some(multi) = node.child(MULTI) {
            multi.payload.iter().for_each(|(k, v)| f(k, v));
        }
        let Some(levels) = rest else {
            node.payload.iter().for_each(|(k, v)| f(k, v));
            return;
        };
        let (level, next) = level::split_first(levels);
        let literal = node.child(level);
        let single = if wildcards { node.child(SINGLE) } else { None };
        node = match (literal, single) {
            (Some(literal), Some(single)) => {
                visit(literal, next, false, system, f);
                single
            }
            (Some(only), None) | (None, Some(only)) => only,
            (None, None) => return,
        };
        rest = next;
        at_root = false;
    }
}

impl<K: Eq + Hash, V> Default for SubscriptionTrie<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K, V> fmt::Debug for SubscriptionTrie<K, V> {
    /// A summary; the index itself can hold millions of entries.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubscriptionTrie")
            .field("len", &self.len)
            .field("nodes", &self.trie.node_count())
            .field("heap_bytes", &self.trie.heap_bytes())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(s: &str) -> TopicFilter {
        TopicFilter::try_from(s).unwrap()
    }

    fn assert_totals_exact<K: Eq + Hash, V>(trie: &SubscriptionTrie<K, V>) {
        assert_eq!(
            trie.trie.recount(),
            (trie.trie.heap_bytes(), trie.trie.node_count())
        );
    }

    #[test]
    fn running_totals_agree_with_a_recount_through_growth_and_pruning() {
        let mut trie = SubscriptionTrie::new();
        let filters: Vec<String> = (0..200)
            .map(|i| {
                format!(
                    "a/{}/long-level-name-past-the-inline-limit-{}/#",
                    i % 40,
                    i % 7
                )
            })
            .chain((0..50).map(|i| format!("+/{i}")))
            .chain(["a/+", "a/#", "a/+/#", "#", "+"].map(str::to_owned))
            .collect();
        for (i, f) in filters.iter().enumerate() {
            for key in 0..(i % 20) as u64 {
                trie.insert(&filter(f), key, i);
                assert_totals_exact(&trie);
            }
        }
        for (i, f) in filters.iter().enumerate().rev() {
            for key in 0..(i % 20) as u64 {
                trie.remove(&filter(f), &key);
                assert_totals_exact(&trie);
            }
        }
        assert_eq!(trie.node_count(), 0);
        assert_eq!(
            trie.approx_memory_bytes(),
            size_of::<SubscriptionTrie<u64, usize>>()
        );
    }

    #[test]
    fn a_deep_filter_inserts_matches_and_drops_without_recursing() {
        let deep = "a/".repeat(30_000) + "#";
        let mut trie = SubscriptionTrie::new();
        trie.insert(&filter(&deep), 1u64, ());
        let topic = TopicName::try_from("a/".repeat(32_000)).unwrap();
        let mut hits = 0;
        trie.for_each_match(&topic, |_, _| hits += 1);
        assert_eq!(hits, 1);
        trie.insert(&filter(&deep.replace('#', "b")), 2, ());
        assert_eq!(trie.remove(&filter(&deep), &1), Some(()));
        drop(trie);
    }
}
