//! What one subscription and one retained topic cost, measured with `approx_memory_bytes()`
//! over 100,000 unique 3-level topics. Run with `--nocapture` to see the figures.

use stratus_topics::{SubscriptionTrie, TopicFilter, TopicName, TopicTree};

const COUNT: usize = 100_000;

/// Options a broker keeps per subscription: QoS, flags, a subscription identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Options {
    qos: u8,
    flags: u8,
    identifier: u32,
}

/// Typical device topics: a shared first level, a unique device id, a common leaf.
fn device_topic(i: usize) -> String {
    format!("devices/{i:08}/telemetry")
}

#[test]
fn one_unique_three_level_subscription_costs_under_192_bytes() {
    let mut trie = SubscriptionTrie::new();
    let empty = trie.approx_memory_bytes();
    let filters: Vec<_> = (0..COUNT)
        .map(|i| TopicFilter::try_from(device_topic(i)).unwrap())
        .collect();
    for (i, filter) in filters.iter().enumerate() {
        let options = Options {
            qos: 1,
            flags: 0,
            identifier: 0,
        };
        trie.insert(filter, i as u64, options);
    }
    let per_subscription = (trie.approx_memory_bytes() - empty) / COUNT;
    println!("SubscriptionTrie<u64, Options>: {per_subscription} bytes per unique 3-level filter");
    // Budget (see the `trie` module docs): at 100,000 entries the wide `devices` node's table
    // has 131,072 buckets of 57 bytes, 75 bytes per subscription; plus the device node's
    // one-child slice (64) and the leaf's one-subscriber slice (32): 171 bytes. The bound leaves
    // 12% for changes that are not regressions; a node or slot grown by a word trips it.
    assert!(
        per_subscription < 192,
        "{per_subscription} bytes per subscription"
    );

    for (i, filter) in filters.iter().enumerate() {
        assert!(trie.remove(filter, &(i as u64)).is_some());
    }
    assert_eq!(trie.node_count(), 0);
    assert_eq!(trie.approx_memory_bytes(), empty);
}

#[test]
fn one_unique_three_level_retained_topic_costs_under_256_bytes() {
    let mut tree = TopicTree::new();
    let empty = tree.approx_memory_bytes();
    let topics: Vec<_> = (0..COUNT)
        .map(|i| TopicName::try_from(device_topic(i)).unwrap())
        .collect();
    for (i, topic) in topics.iter().enumerate() {
        tree.insert(topic, i as u64);
    }
    let per_topic = (tree.approx_memory_bytes() - empty) / COUNT;
    println!("TopicTree<u64>: {per_topic} bytes per unique 3-level topic");
    // Budget (see the `tree` module docs): 131,072 buckets of 49 bytes in the wide table (64
    // bytes per topic), the device node's one-child slice (64), the boxed entry (48) and the
    // tree's copy of the 26-byte name (48): 224 bytes, with the same 12% margin.
    assert!(per_topic < 256, "{per_topic} bytes per retained topic");

    for topic in &topics {
        assert!(tree.remove(topic).is_some());
    }
    assert_eq!(tree.node_count(), 0);
    assert_eq!(tree.approx_memory_bytes(), empty);
}
