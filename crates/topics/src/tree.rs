//! [`TopicTree`]: the retained-message index, from topic names to values, searched with topic
//! filters when a client subscribes.
//!
//! # Memory
//!
//! A node is 24 bytes (children, and an optional boxed entry) in a 48-byte slot with its level.
//! One retained topic under a unique 3-level name such as `devices/00001234/telemetry`, with an
//! 8-byte value, costs the device level's slot in the wide `devices` table (56-112 bytes with
//! spare buckets), the device node's one-child slice (64), the boxed entry (40 bytes, a 48-byte
//! chunk) and the tree's copy of the 26-byte name (48): 216-272 bytes. Measured with
//! [`TopicTree::approx_memory_bytes`] (`tests/memory.rs`): 224 bytes per topic over 100,000 topics,
//! 262 over 1,000,000. What `V` owns (the retained payload) is the caller's to count.
//!
//! # Matching
//!
//! [`TopicTree::for_each_match`] walks the filter's literal prefix without allocating and only
//! then expands wildcards: `+` visits every child of the current node, `#` the node itself (`a/#`
//! matches `a`) and its whole subtree. At the first level, wildcards skip topics starting with `$`
//! [MQTT-4.7.2-1]. Expansion uses an explicit stack, so a deep tree cannot overflow the call stack.

use std::fmt;
use std::mem::{self, size_of};

use crate::compact_map::allocation_size;
use crate::filter::TopicFilter;
use crate::level::{self, MULTI, SINGLE};
use crate::level_trie::{LevelTrie, Node, Payload};
use crate::name::TopicName;

/// A stored value with its topic, so lookups hand out the name without rebuilding it.
struct Entry<V> {
    topic: TopicName,
    value: V,
}

/// A node's payload: boxed, because most nodes are intermediate levels without a value.
type Slot<V> = Option<Box<Entry<V>>>;

impl<V> Payload for Slot<V> {
    fn is_empty(&self) -> bool {
        self.is_none()
    }

    fn heap_bytes(&self) -> usize {
        self.as_ref().map_or(0, |entry| {
            allocation_size(size_of::<Entry<V>>()) + allocation_size(entry.topic.as_str().len())
        })
    }
}

type TreeNode<V> = Node<Slot<V>>;

fn entry_of<V>(node: &TreeNode<V>) -> Option<(&TopicName, &V)> {
    node.payload
        .as_deref()
        .map(|entry| (&entry.topic, &entry.value))
}

/// Topic names to values: retained messages, or references to where they are stored.
///
/// The tree keeps a [detached](TopicName::detached) copy of each topic name, so it never pins a
/// packet's read buffer.
pub struct TopicTree<V> {
    trie: LevelTrie<Slot<V>>,
    len: usize,
}

impl<V> TopicTree<V> {
    /// An empty tree.
    pub fn new() -> Self {
        Self {
            trie: LevelTrie::default(),
            len: 0,
        }
    }

    /// Stores `value` under `topic`, returning the value it replaces.
    pub fn insert(&mut self, topic: &TopicName, value: V) -> Option<V> {
        let replaced = self.trie.upsert(topic.levels(), |slot| match slot {
            Some(entry) => Some(mem::replace(&mut entry.value, value)),
            None => {
                *slot = Some(Box::new(Entry {
                    topic: topic.detached(),
                    value,
                }));
                None
            }
        });
        if replaced.is_none() {
            self.len += 1;
        }
        replaced
    }

    /// Removes the value under `topic`, pruning the nodes that no longer lead to a value.
    pub fn remove(&mut self, topic: &TopicName) -> Option<V> {
        let removed = self
            .trie
            .update(topic.levels(), |slot| slot.take().map(|entry| entry.value))
            .flatten();
        if removed.is_some() {
            self.len -= 1;
        }
        removed
    }

    /// The value under `topic`.
    pub fn get(&self, topic: &TopicName) -> Option<&V> {
        let entry = self.trie.find(topic.levels())?.payload.as_deref()?;
        Some(&entry.value)
    }

    /// Calls `f` with every stored topic that `filter` matches, and its value, in no particular
    /// order.
    pub fn for_each_match<'a>(
        &'a self,
        filter: &TopicFilter,
        mut f: impl FnMut(&'a TopicName, &'a V),
    ) {
        let mut report = |node: &'a TreeNode<V>| {
            if let Some((topic, value)) = entry_of(node) {
                f(topic, value);
            }
        };
        // The literal prefix: one node per level, nothing allocated.
        let mut node = self.trie.root();
        let mut rest = filter.as_str();
        let mut at_root = true;
        loop {
            let (level, next) = level::split_first(rest);
            if level == MULTI || level == SINGLE {
                break;
            }
            let Some(child) = node.child(level) else {
                return;
            };
            let Some(next) = next else {
                report(child);
                return;
            };
            node = child;
            rest = next;
            at_root = false;
        }
        // From the first wildcard on: depth first, `rest` being the filter's remaining levels.
        let mut pending = vec![(node, rest, at_root)];
        while let Some((node, rest, at_root)) = pending.pop() {
            let (level, next) = level::split_first(rest);
            let reachable = node
                .children
                .iter()
                .filter(|(key, _)| !(at_root && key.is_system()));
            match (level, next) {
                (MULTI, _) => {
                    report(node);
                    pending.extend(reachable.map(|(_, child)| (child, MULTI, false)));
                }
                (SINGLE, None) => reachable.for_each(|(_, child)| report(child)),
                (SINGLE, Some(next)) => {
                    pending.extend(reachable.map(|(_, child)| (child, next, false)));
                }
                (literal, next) => match (node.child(literal), next) {
                    (None, _) => {}
                    (Some(child), None) => report(child),
                    (Some(child), Some(next)) => pending.push((child, next, false)),
                },
            }
        }
    }

    /// Calls `f` with every stored topic and its value, in no particular order.
    pub fn for_each<'a>(&'a self, mut f: impl FnMut(&'a TopicName, &'a V)) {
        self.iter().for_each(|(topic, value)| f(topic, value));
    }

    /// Every stored topic and its value, in no particular order.
    pub fn iter(&self) -> TopicTreeIter<'_, V> {
        TopicTreeIter {
            pending: vec![self.trie.root()],
            remaining: self.len,
        }
    }

    /// Number of stored topics.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the tree is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of nodes besides the root: one per distinct topic prefix.
    pub fn node_count(&self) -> usize {
        self.trie.node_count()
    }

    /// Estimated bytes used by the tree: the struct, every node and level, each entry's box and
    /// its copy of the topic name, with per-allocation overhead modelled on glibc malloc. Heap
    /// memory owned by `V` itself is not counted. O(1).
    pub fn approx_memory_bytes(&self) -> usize {
        size_of::<Self>() + self.trie.heap_bytes()
    }
}

impl<V> Default for TopicTree<V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V> fmt::Debug for TopicTree<V> {
    /// A summary; the tree itself can hold millions of entries.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TopicTree")
            .field("len", &self.len)
            .field("nodes", &self.trie.node_count())
            .field("heap_bytes", &self.trie.heap_bytes())
            .finish()
    }
}

/// Iterator over a [`TopicTree`]'s topics and values, from [`TopicTree::iter`].
pub struct TopicTreeIter<'a, V> {
    pending: Vec<&'a TreeNode<V>>,
    remaining: usize,
}

impl<'a, V> Iterator for TopicTreeIter<'a, V> {
    type Item = (&'a TopicName, &'a V);

    fn next(&mut self) -> Option<Self::Item> {
        while let Some(node) = self.pending.pop() {
            self.pending.extend(node.children.values());
            if let Some(entry) = entry_of(node) {
                self.remaining = self.remaining.saturating_sub(1);
                return Some(entry);
            }
        }
        None
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl<V> ExactSizeIterator for TopicTreeIter<'_, V> {}

impl<V> fmt::Debug for TopicTreeIter<'_, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TopicTreeIter")
            .field("remaining", &self.remaining)
            .finish_non_exhaustive()
    }
}

impl<'a, V> IntoIterator for &'a TopicTree<V> {
    type Item = (&'a TopicName, &'a V);
    type IntoIter = TopicTreeIter<'a, V>;

    fn into_iter(self) -> TopicTreeIter<'a, V> {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> TopicName {
        TopicName::try_from(s).unwrap()
    }

    #[test]
    fn running_totals_agree_with_a_recount() {
        let mut tree = TopicTree::new();
        let topics: Vec<String> = (0..300)
            .map(|i| format!("site/{}/a-level-longer-than-twenty-two-bytes/{i}", i % 30))
            .collect();
        for t in &topics {
            tree.insert(&name(t), t.len());
            assert_eq!(
                tree.trie.recount(),
                (tree.trie.heap_bytes(), tree.node_count())
            );
        }
        for t in topics.iter().step_by(2) {
            assert_eq!(tree.remove(&name(t)), Some(t.len()));
            assert_eq!(
                tree.trie.recount(),
                (tree.trie.heap_bytes(), tree.node_count())
            );
        }
        assert_eq!(tree.iter().len(), 150);
    }

    #[test]
    fn stored_names_do_not_share_the_callers_buffer() {
        let mut tree = TopicTree::new();
        let topic = name("a/b");
        tree.insert(&topic, ());
        let mut stored = None;
        tree.for_each(|t, _| stored = Some(t.as_str().as_ptr()));
        assert_ne!(stored, Some(topic.as_str().as_ptr()));
    }

    #[test]
    fn a_deep_topic_matches_hash_without_recursing() {
        let mut tree = TopicTree::new();
        let deep = name(&"a/".repeat(32_000));
        tree.insert(&deep, 1);
        let mut hits = Vec::new();
        tree.for_each_match(&TopicFilter::try_from("#").unwrap(), |t, v| {
            hits.push((t.clone(), *v));
        });
        assert_eq!(hits, [(deep.clone(), 1)]);
        assert_eq!(tree.remove(&deep), Some(1));
        assert_eq!(tree.node_count(), 0);
    }
}
