//! [`LevelTrie`]: the trie of topic levels shared by the subscription index and the
//! retained-message index. Each node holds its children by level and a payload (subscribers, or a
//! retained entry); the trie keeps a node count and a running estimate of its heap bytes.
//!
//! Architecture invariants: no node other than the root is ever vacant (no children and an empty
//! payload), so memory returns to the empty baseline once everything is removed; and nothing here
//! recurses over trie depth (walks are loops, teardown uses an explicit stack), so a deep trie
//! cannot overflow the call stack.

use std::mem;

use crate::compact_map::CompactMap;
use crate::level::{LevelKey, Levels, Wildcards};

/// What a node carries besides its children.
pub(crate) trait Payload: Default {
    /// Whether the payload holds nothing, so the node may be pruned.
    fn is_empty(&self) -> bool;
    /// Heap bytes the payload owns.
    fn heap_bytes(&self) -> usize;
}

/// A trie node: children keyed by their level, and a payload. The root stands for the empty
/// prefix; the node for `a/b` is the root's child `a`'s child `b`. Wildcard levels of filters are
/// children named `+` and `#`, which no topic name can contain, so a literal lookup of a topic
/// level never reaches them.
pub(crate) struct Node<P> {
    pub(crate) children: CompactMap<LevelKey, Node<P>, Wildcards>,
    pub(crate) payload: P,
}

impl<P: Default> Default for Node<P> {
    fn default() -> Self {
        Self {
            children: CompactMap::default(),
            payload: P::default(),
        }
    }
}

impl<P> Node<P> {
    /// The child for `level`, if any.
    pub(crate) fn child(&self, level: &str) -> Option<&Self> {
        self.children.get(level.as_bytes())
    }
}

impl<P> Drop for Node<P> {
    /// Tears the subtree down with an explicit stack: the derived drop would recurse once per
    /// level, and a 65,535-byte filter can have 32,768 of them. Leaves are dropped on the spot;
    /// only nodes with children wait on the stack.
    fn drop(&mut self) {
        let mut pending = Vec::new();
        let mut children = mem::take(&mut self.children);
        loop {
            children.drain_each(|child| {
                if !child.children.is_empty() {
                    pending.push(child);
                }
            });
            let Some(mut node) = pending.pop() else {
                return;
            };
            children = mem::take(&mut node.children);
        }
    }
}

/// A trie with its node count and heap estimate kept up to date by every change.
pub(crate) struct LevelTrie<P> {
    root: Node<P>,
    /// Nodes other than the root.
    nodes: usize,
    /// Heap bytes owned by the trie: every node's maps, heap keys and payloads.
    heap: usize,
}

impl<P: Payload> Default for LevelTrie<P> {
    fn default() -> Self {
        Self {
            root: Node::default(),
            nodes: 0,
            heap: 0,
        }
    }
}

impl<P> LevelTrie<P> {
    pub(crate) fn root(&self) -> &Node<P> {
        &self.root
    }

    pub(crate) fn node_count(&self) -> usize {
        self.nodes
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.heap
    }
}

impl<P: Payload> LevelTrie<P> {
    /// The node at `levels`, if it exists.
    pub(crate) fn find(&self, levels: Levels<'_>) -> Option<&Node<P>> {
        let mut node = &self.root;
        for level in levels {
            node = node.child(level)?;
        }
        Some(node)
    }

    /// Applies `change` to the payload at `levels`, creating the path first (and pruning it again
    /// if `change` leaves the node vacant).
    pub(crate) fn upsert<R>(&mut self, levels: Levels<'_>, change: impl FnOnce(&mut P) -> R) -> R {
        let mut node = &mut self.root;
        for level in levels.clone() {
            let (child, inserted) = node.children.get_or_insert_with(
                level.as_bytes(),
                |_| LevelKey::new(level),
                Node::default,
            );
            if let Some(grown) = inserted {
                self.nodes += 1;
                self.heap += grown + LevelKey::heap_bytes_for(level.len());
            }
            node = child;
        }
        let before = node.payload.heap_bytes();
        let result = change(&mut node.payload);
        self.heap = (self.heap + node.payload.heap_bytes()).saturating_sub(before);
        if node.payload.is_empty() && node.children.is_empty() {
            self.prune(levels);
        }
        result
    }

    /// Applies `change` to the payload at `levels` if that node exists, then prunes the path if
    /// the change left the node vacant.
    pub(crate) fn update<R>(
        &mut self,
        levels: Levels<'_>,
        change: impl FnOnce(&mut P) -> R,
    ) -> Option<R> {
        let mut node = &mut self.root;
        for level in levels.clone() {
            node = node.children.get_mut(level.as_bytes())?;
        }
        let before = node.payload.heap_bytes();
        let result = change(&mut node.payload);
        self.heap = (self.heap + node.payload.heap_bytes()).saturating_sub(before);
        if node.payload.is_empty() && node.children.is_empty() {
            self.prune(levels);
        }
        Some(result)
    }

    /// Removes the vacant node at `levels` together with the chain of ancestors that only
    /// existed to lead to it.
    fn prune(&mut self, levels: Levels<'_>) {
        // First pass, read-only: the deepest ancestor that stays (the root, or a node with a
        // payload or another child). Its child on the path heads the chain to remove.
        let mut cut = None;
        let mut node = &self.root;
        for (depth, level) in levels.clone().enumerate() {
            if depth == 0 || !node.payload.is_empty() || node.children.len() > 1 {
                cut = Some(depth);
            }
            let Some(child) = node.child(level) else {
                return;
            };
            node = child;
        }
        let Some(cut) = cut else {
            return;
        };
        // Second pass: walk to that ancestor and detach the chain.
        let mut levels = levels;
        let mut parent = &mut self.root;
        for level in levels.by_ref().take(cut) {
            let Some(child) = parent.children.get_mut(level.as_bytes()) else {
                return;
            };
            parent = child;
        }
        let Some(level) = levels.next() else {
            return;
        };
        let before = parent.children.heap_bytes();
        let Some((key, chain)) = parent.children.remove_entry(level.as_bytes()) else {
            return;
        };
        let shrunk = before.saturating_sub(parent.children.heap_bytes());
        let (chain_bytes, chain_nodes) = subtree_cost(&chain);
        self.heap = self
            .heap
            .saturating_sub(shrunk + key.heap_bytes() + chain_bytes);
        self.nodes = self.nodes.saturating_sub(chain_nodes);
    }

    /// Recomputes (heap bytes, nodes other than the root) from scratch, to check the running
    /// totals.
    #[cfg(test)]
    pub(crate) fn recount(&self) -> (usize, usize) {
        let (bytes, nodes) = subtree_cost(&self.root);
        (bytes, nodes - 1)
    }
}

/// Heap bytes owned by `node` and its descendants (maps, heap keys, payloads), and how many nodes
/// that is, `node` included. Walks with an explicit stack.
fn subtree_cost<P: Payload>(node: &Node<P>) -> (usize, usize) {
    let mut bytes = 0;
    let mut nodes = 0;
    let mut pending = vec![node];
    while let Some(node) = pending.pop() {
        nodes += 1;
        bytes += node.children.heap_bytes() + node.payload.heap_bytes();
        for (key, child) in node.children.iter() {
            bytes += key.heap_bytes();
            pending.push(child);
        }
    }
    (bytes, nodes)
}
