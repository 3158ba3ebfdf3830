//! Property tests: both indexes agree with the reference matcher [`TopicFilter::matches`] over
//! random topics and filters from a small alphabet (`$` levels, empty levels, wildcards), through
//! inserts, replacements and removals, and return to their empty footprint once emptied.

use std::collections::BTreeMap;

use proptest::prelude::*;
use stratus_topics::{SubscriptionTrie, TopicFilter, TopicName, TopicTree};

/// A level: mostly from a tiny alphabet so that topics and filters collide often, sometimes a
/// number (so some nodes get wide enough to switch to a hash map) or a level too long to be
/// stored inline.
fn level() -> impl Strategy<Value = String> + Clone {
    prop_oneof![
        6 => prop::sample::select(vec!["a", "b", "", "$", "$a", "\u{FEFF}a"]).prop_map(str::to_owned),
        2 => (0u8..24).prop_map(|n| n.to_string()),
        1 => Just("a-level-longer-than-twenty-two-bytes".to_owned()),
    ]
}

fn topic() -> impl Strategy<Value = TopicName> + Clone {
    prop::collection::vec(level(), 1..5).prop_filter_map("not a topic name", join_name)
}

fn filter() -> impl Strategy<Value = TopicFilter> + Clone {
    let filter_level = prop_oneof![3 => level(), 1 => Just("+".to_owned())];
    (prop::collection::vec(filter_level, 0..4), any::<bool>())
        .prop_filter_map("not a topic filter", join_filter)
}

/// Topics under a few first levels with up to 40 second levels each, so that nodes grow past
/// the small-map limit into hash maps and shrink back.
fn wide_topic() -> impl Strategy<Value = TopicName> + Clone {
    (
        prop::sample::select(vec!["a", "$a", ""]),
        prop_oneof![(0u8..40).prop_map(|n| n.to_string()), Just("x".repeat(30))],
        prop::option::of(prop::sample::select(vec!["x", ""])),
    )
        .prop_filter_map("not a topic name", |(first, second, third)| {
            let mut levels = vec![first.to_owned(), second];
            levels.extend(third.map(str::to_owned));
            join_name(levels)
        })
}

/// Filters over the same space as [`wide_topic`], with wildcards among the wide levels.
fn wide_filter() -> impl Strategy<Value = TopicFilter> + Clone {
    (
        prop::sample::select(vec!["a", "$a", "", "+"]),
        prop_oneof![
            8 => (0u8..40).prop_map(|n| n.to_string()),
            1 => Just("+".to_owned()),
            1 => Just("x".repeat(30)),
        ],
        prop::option::of(prop::sample::select(vec!["x", "", "+"])),
        any::<bool>(),
    )
        .prop_filter_map("not a topic filter", |(first, second, third, multi)| {
            let mut levels = vec![first.to_owned(), second];
            levels.extend(third.map(str::to_owned));
            join_filter((levels, multi))
        })
}

fn join_name(levels: Vec<String>) -> Option<TopicName> {
    TopicName::try_from(levels.join("/")).ok()
}

fn join_filter((mut levels, multi): (Vec<String>, bool)) -> Option<TopicFilter> {
    if multi {
        levels.push("#".to_owned());
    }
    TopicFilter::try_from(levels.join("/")).ok()
}

#[derive(Debug, Clone)]
enum SubscriptionOp {
    Subscribe(TopicFilter, u8),
    Unsubscribe(TopicFilter, u8),
}

fn subscription_ops(
    filter: impl Strategy<Value = TopicFilter> + Clone,
    max: usize,
) -> impl Strategy<Value = Vec<SubscriptionOp>> {
    let op = prop_oneof![
        3 => (filter.clone(), 0u8..3).prop_map(|(f, k)| SubscriptionOp::Subscribe(f, k)),
        1 => (filter, 0u8..3).prop_map(|(f, k)| SubscriptionOp::Unsubscribe(f, k)),
    ];
    prop::collection::vec(op, 0..max)
}

#[derive(Debug, Clone)]
enum RetainOp {
    Retain(TopicName),
    Clear(TopicName),
}

fn retain_ops(
    topic: impl Strategy<Value = TopicName> + Clone,
    max: usize,
) -> impl Strategy<Value = Vec<RetainOp>> {
    let op = prop_oneof![
        3 => topic.clone().prop_map(RetainOp::Retain),
        1 => topic.prop_map(RetainOp::Clear),
    ];
    prop::collection::vec(op, 0..max)
}

/// Replays `ops` on a trie and on a model, checking every return value, then checks that each
/// topic's matches are exactly the model's subscriptions whose filter
/// [`matches`](TopicFilter::matches) it, and that removing everything restores the empty
/// footprint.
fn check_trie(ops: Vec<SubscriptionOp>, topics: &[TopicName]) -> Result<(), TestCaseError> {
    let mut trie = SubscriptionTrie::new();
    let mut model: BTreeMap<(TopicFilter, u8), usize> = BTreeMap::new();
    for (step, op) in ops.into_iter().enumerate() {
        match op {
            SubscriptionOp::Subscribe(f, key) => {
                prop_assert_eq!(trie.insert(&f, key, step), model.insert((f, key), step));
            }
            SubscriptionOp::Unsubscribe(f, key) => {
                prop_assert_eq!(trie.remove(&f, &key), model.remove(&(f, key)));
            }
        }
        prop_assert_eq!(trie.len(), model.len());
    }
    for topic in topics {
        let mut found = Vec::new();
        trie.for_each_match(topic, |&key, &step| found.push((key, step)));
        found.sort_unstable();
        let mut expected: Vec<_> = model
            .iter()
            .filter(|((f, _), _)| f.matches(topic))
            .map(|((_, key), &step)| (*key, step))
            .collect();
        expected.sort_unstable();
        prop_assert_eq!(found, expected, "topic {:?}", topic);
    }
    for ((f, key), step) in &model {
        prop_assert_eq!(trie.get(f, key), Some(step));
    }
    for (f, key) in model.keys() {
        prop_assert!(trie.remove(f, key).is_some());
    }
    prop_assert_eq!(trie.node_count(), 0);
    prop_assert_eq!(
        trie.approx_memory_bytes(),
        SubscriptionTrie::<u8, usize>::new().approx_memory_bytes()
    );
    Ok(())
}

/// The same for the retained-message tree, queried with `filters`.
fn check_tree(ops: Vec<RetainOp>, filters: &[TopicFilter]) -> Result<(), TestCaseError> {
    let mut tree = TopicTree::new();
    let mut model: BTreeMap<TopicName, usize> = BTreeMap::new();
    for (step, op) in ops.into_iter().enumerate() {
        match op {
            RetainOp::Retain(t) => prop_assert_eq!(tree.insert(&t, step), model.insert(t, step)),
            RetainOp::Clear(t) => prop_assert_eq!(tree.remove(&t), model.remove(&t)),
        }
        prop_assert_eq!(tree.len(), model.len());
    }
    for filter in filters {
        let mut found = Vec::new();
        tree.for_each_match(filter, |t, &step| found.push((t.clone(), step)));
        found.sort_unstable();
        let expected: Vec<_> = model
            .iter()
            .filter(|(t, _)| filter.matches(t))
            .map(|(t, &step)| (t.clone(), step))
            .collect();
        prop_assert_eq!(found, expected, "filter {:?}", filter);
    }
    let mut all: Vec<_> = tree.iter().map(|(t, &step)| (t.clone(), step)).collect();
    all.sort_unstable();
    prop_assert_eq!(
        all,
        model
            .iter()
            .map(|(t, &s)| (t.clone(), s))
            .collect::<Vec<_>>()
    );
    for (t, step) in &model {
        prop_assert_eq!(tree.get(t), Some(step));
    }
    for t in model.keys() {
        prop_assert!(tree.remove(t).is_some());
    }
    prop_assert_eq!(tree.node_count(), 0);
    prop_assert_eq!(
        tree.approx_memory_bytes(),
        TopicTree::<usize>::new().approx_memory_bytes()
    );
    Ok(())
}

proptest! {
    #[test]
    fn subscription_trie_matches_exactly_what_the_reference_matcher_matches(
        ops in subscription_ops(filter(), 60),
        topics in prop::collection::vec(topic(), 1..20),
    ) {
        check_trie(ops, &topics)?;
    }

    #[test]
    fn subscription_trie_stays_exact_through_wide_nodes(
        ops in subscription_ops(wide_filter(), 300),
        topics in prop::collection::vec(wide_topic(), 1..20),
    ) {
        check_trie(ops, &topics)?;
    }

    #[test]
    fn topic_tree_matches_exactly_what_the_reference_matcher_matches(
        ops in retain_ops(topic(), 60),
        filters in prop::collection::vec(filter(), 1..20),
    ) {
        check_tree(ops, &filters)?;
    }

    #[test]
    fn topic_tree_stays_exact_through_wide_nodes(
        ops in retain_ops(wide_topic(), 300),
        filters in prop::collection::vec(wide_filter(), 1..20),
    ) {
        check_tree(ops, &filters)?;
    }

    #[test]
    fn any_string_parses_without_panicking_and_every_name_is_a_filter_matching_itself(
        s in prop_oneof![
            r"[a+#/$\x00\u{FEFF}\u{e9}]{0,12}",
            r"\$share/[a+#/$]{0,4}(/[a+#/]{0,4})?",
        ],
    ) {
        let name = TopicName::try_from(s.as_str());
        let filter = TopicFilter::try_from(s.as_str());
        let spec = stratus_topics::FilterSpec::try_from(s.as_str());
        if let Ok(name) = &name {
            let filter = filter.clone().expect("a topic name is a valid filter");
            prop_assert!(filter.matches(name));
            prop_assert!(!filter.has_wildcards());
        }
        if let Ok(spec) = &spec
            && spec.share.is_none()
        {
            prop_assert_eq!(Ok(&spec.filter), filter.as_ref());
        }
    }

    #[test]
    fn a_shared_filter_displays_as_it_was_parsed(share in "[a-z0-9$-]{1,8}", f in filter()) {
        let text = format!("$share/{share}/{f}");
        let spec = stratus_topics::FilterSpec::try_from(text.as_str()).unwrap();
        prop_assert_eq!(spec.to_string(), text);
        prop_assert_eq!(spec.filter, f);
    }
}
