//! Table of matching cases, checked against the reference matcher and both indexes.

use stratus_topics::{SubscriptionTrie, TopicFilter, TopicName, TopicTree};

/// (filter, topic, matches)
const CASES: &[(&str, &str, bool)] = &[
    // [MQTT-4.7.2-1]: wildcards at the first level never reach `$` topics.
    ("#", "$SYS/x", false),
    ("#", "$", false),
    ("+/x", "$SYS/x", false),
    ("+", "$SYS", false),
    ("+/#", "$SYS/x", false),
    ("$SYS/#", "$SYS/x", true),
    ("$SYS/#", "$SYS", true),
    ("$SYS/+", "$SYS/x", true),
    ("$SYS/monitor/+", "$SYS/monitor/Clients", true),
    ("+/monitor/Clients", "$SYS/monitor/Clients", false),
    ("a/+", "a/$x", true),
    ("#", "a/$x", true),
    // `#` matches its parent level and anything below.
    ("a/#", "a", true),
    ("a/#", "a/", true),
    ("a/#", "a/b/c", true),
    ("a/#", "ab", false),
    ("a/#", "b/a", false),
    ("#", "a", true),
    ("#", "/", true),
    ("+/#", "a", true),
    ("a/+/#", "a", false),
    ("a/+/#", "a/b", true),
    // `+` matches exactly one level, empty ones included.
    ("+/+", "/", true),
    ("/+", "/", true),
    ("+", "/", false),
    ("+", "a", true),
    ("+", "a/b", false),
    ("a/+", "a/", true),
    ("a/+", "a", false),
    ("+/+", "/finance", true),
    ("/+", "/finance", true),
    ("+", "/finance", false),
    // Empty levels are levels.
    ("a//b", "a//b", true),
    ("a/+/b", "a//b", true),
    ("a/b", "a//b", false),
    ("a//b", "a/b", false),
    ("a/b/", "a/b", false),
    ("a/b", "a/b/", false),
    ("/", "/", true),
    // The specification's own examples (section 4.7.1).
    ("sport/tennis/player1/#", "sport/tennis/player1", true),
    (
        "sport/tennis/player1/#",
        "sport/tennis/player1/ranking",
        true,
    ),
    (
        "sport/tennis/player1/#",
        "sport/tennis/player1/score/wimbledon",
        true,
    ),
    ("sport/tennis/player1/#", "sport/tennis/player2", false),
    ("sport/#", "sport", true),
    ("sport/tennis/+", "sport/tennis/player1", true),
    ("sport/tennis/+", "sport/tennis/player2", true),
    ("sport/tennis/+", "sport/tennis/player1/ranking", false),
    ("sport/+", "sport", false),
    ("sport/+", "sport/", true),
    ("ACCOUNTS", "Accounts", false),
    // No normalisation [MQTT-4.7.3-4]: a BOM is part of the level, composed and decomposed
    // characters differ.
    ("\u{FEFF}a/b", "\u{FEFF}a/b", true),
    ("a/b", "\u{FEFF}a/b", false),
    ("\u{FEFF}a/b", "a/b", false),
    ("+/b", "\u{FEFF}a/b", true),
    ("caf\u{e9}", "cafe\u{301}", false),
];

#[test]
fn table_of_matching_cases_holds_for_the_reference_matcher() {
    for &(filter, topic, expected) in CASES {
        let f = TopicFilter::try_from(filter).unwrap();
        let t = TopicName::try_from(topic).unwrap();
        assert_eq!(f.matches(&t), expected, "{filter:?} vs {topic:?}");
    }
}

#[test]
fn table_of_matching_cases_holds_for_the_subscription_trie() {
    let mut trie = SubscriptionTrie::new();
    for (i, &(filter, _, _)) in CASES.iter().enumerate() {
        trie.insert(&TopicFilter::try_from(filter).unwrap(), i, ());
    }
    for &(filter, topic, expected) in CASES {
        let mut matched = Vec::new();
        trie.for_each_match(&TopicName::try_from(topic).unwrap(), |&i, _| {
            matched.push(CASES[i].0);
        });
        assert_eq!(
            matched.contains(&filter),
            expected,
            "{filter:?} vs {topic:?}"
        );
    }
}

#[test]
fn table_of_matching_cases_holds_for_the_topic_tree() {
    let mut tree = TopicTree::new();
    for &(_, topic, _) in CASES {
        tree.insert(&TopicName::try_from(topic).unwrap(), ());
    }
    for &(filter, topic, expected) in CASES {
        let mut matched = Vec::new();
        tree.for_each_match(&TopicFilter::try_from(filter).unwrap(), |t, _| {
            matched.push(t.as_str().to_owned());
        });
        assert_eq!(
            matched.iter().any(|m| m == topic),
            expected,
            "{filter:?} vs {topic:?}"
        );
    }
}

#[test]
fn one_callback_per_matching_filter_and_key() {
    let mut trie = SubscriptionTrie::new();
    for filter in ["a/b", "a/+", "+/b", "#", "a/#", "+/+"] {
        let filter = TopicFilter::try_from(filter).unwrap();
        trie.insert(&filter, 1u64, ());
        trie.insert(&filter, 2u64, ());
    }
    let mut calls = 0;
    trie.for_each_match(&TopicName::try_from("a/b").unwrap(), |_, _| calls += 1);
    assert_eq!(calls, 12);
}

#[test]
fn resubscribing_replaces_the_value_and_unsubscribing_returns_it() {
    let mut trie = SubscriptionTrie::new();
    let filter = TopicFilter::try_from("a/+").unwrap();
    assert_eq!(trie.insert(&filter, 7u64, 0u8), None);
    assert_eq!(trie.insert(&filter, 7, 1), Some(0));
    assert_eq!(trie.len(), 1);
    assert_eq!(trie.get(&filter, &7), Some(&1));
    assert_eq!(trie.remove(&filter, &8), None);
    assert_eq!(trie.remove(&TopicFilter::try_from("a").unwrap(), &7), None);
    assert_eq!(trie.remove(&filter, &7), Some(1));
    assert!(trie.is_empty());
}

#[test]
fn retained_topics_are_replaced_fetched_and_removed() {
    let mut tree = TopicTree::new();
    let topic = TopicName::try_from("a/b").unwrap();
    let parent = TopicName::try_from("a").unwrap();
    assert_eq!(tree.insert(&topic, 1), None);
    assert_eq!(tree.insert(&topic, 2), Some(1));
    assert_eq!(tree.get(&topic), Some(&2));
    assert_eq!(tree.get(&parent), None);
    assert_eq!(tree.remove(&parent), None);
    assert_eq!(tree.len(), 1);
    assert_eq!(tree.iter().collect::<Vec<_>>(), [(&topic, &2)]);
    assert_eq!(tree.remove(&topic), Some(2));
    assert!(tree.is_empty());
}
