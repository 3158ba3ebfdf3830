//! `RetainedStore::matching` against a real Redis: a table of filter rules, the prefix-range
//! edge cases, the limit, and a property test against a brute-force filter over `load`.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;

use proptest::prelude::*;
use stratus_model::TenantId;
use stratus_redis_state::RetainedStore;
use support::{NOW_MS, ROOMY, filter, store, tenant, topic};

/// Stores each topic with its own name as the record.
async fn store_topics(store: &RetainedStore, tenant: &TenantId, topics: &[&str]) {
    for name in topics {
        store
            .put(tenant, &topic(name), name.as_bytes(), None, ROOMY, NOW_MS)
            .await
            .unwrap();
    }
}

async fn matched(store: &RetainedStore, tenant: &TenantId, text: &str) -> Vec<String> {
    let entries = store
        .matching(tenant, &filter(text), NOW_MS, 1_000)
        .await
        .unwrap();
    for entry in &entries {
        assert_eq!(&entry.record[..], entry.topic.as_str().as_bytes());
    }
    let mut names: Vec<String> = entries.into_iter().map(|e| e.topic.to_string()).collect();
    names.sort();
    names
}

#[tokio::test]
async fn filters_match_by_the_mqtt_rules() {
    let store = store("matching_table").await;
    let acme = tenant("acme");
    store_topics(
        &store,
        &acme,
        &[
            "a",
            "a/b",
            "a/bc",
            "a/b/c",
            "a/b/c/d",
            "a/",
            "a//b",
            "/",
            "/a",
            "ab",
            "b/b",
            "$SYS",
            "$SYS/uptime",
            "$SYS/a/b",
            "$other/x",
            "%/x",
        ],
    )
    .await;
    let table: &[(&str, &[&str])] = &[
        ("a/b", &["a/b"]),
        ("a/b/c", &["a/b/c"]),
        ("nothing", &[]),
        ("a/+", &["a/", "a/b", "a/bc"]),
        ("+/b", &["a/b", "b/b"]),
        ("a/+/c", &["a/b/c"]),
        ("a//+", &["a//b"]),
        ("+/+", &["%/x", "/", "/a", "a/", "a/b", "a/bc", "b/b"]),
        ("+", &["a", "ab"]),
        // `#` matches its parent, and `a/b/#` must not leak `a/bc`.
        ("a/b/#", &["a/b", "a/b/c", "a/b/c/d"]),
        (
            "a/#",
            &["a", "a/", "a//b", "a/b", "a/b/c", "a/b/c/d", "a/bc"],
        ),
        ("a/+/#", &["a/", "a//b", "a/b", "a/b/c", "a/b/c/d", "a/bc"]),
        // Empty levels.
        ("/#", &["/", "/a"]),
        ("/+", &["/", "/a"]),
        ("+/", &["/", "a/"]),
        // A leading wildcard never matches `$` topics; a literal `$` level does.
        (
            "#",
            &[
                "%/x", "/", "/a", "a", "a/", "a//b", "a/b", "a/b/c", "a/b/c/d", "a/bc", "ab", "b/b",
            ],
        ),
        ("+/uptime", &[]),
        ("$SYS/#", &["$SYS", "$SYS/a/b", "$SYS/uptime"]),
        ("$SYS/+", &["$SYS/uptime"]),
        ("$SYS", &["$SYS"]),
        ("$other/+", &["$other/x"]),
    ];
    for (text, expected) in table {
        assert_eq!(
            matched(&store, &acme, text).await,
            *expected,
            "filter {text}"
        );
    }
}

#[tokio::test]
async fn matching_stops_at_the_limit_across_pages() {
    let store = store("matching_limit").await;
    let acme = tenant("acme");
    for i in 0..600 {
        let name = format!("s/{i:04}");
        store
            .put(&acme, &topic(&name), b"x", None, ROOMY, NOW_MS)
            .await
            .unwrap();
    }
    store_topics(&store, &acme, &["s"]).await;
    for (text, limit) in [("#", 550), ("s/#", 550), ("s/+", 3), ("+/+", 599)] {
        let found = store
            .matching(&acme, &filter(text), NOW_MS, limit)
            .await
            .unwrap();
        assert_eq!(found.len(), limit, "{text}");
    }
    assert_eq!(
        store
            .matching(&acme, &filter("+/+"), NOW_MS, 10_000)
            .await
            .unwrap()
            .len(),
        600
    );
    assert!(
        store
            .matching(&acme, &filter("#"), NOW_MS, 0)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Levels random topics and filters are built from: shared prefixes, an empty level, a `$`
/// level and bytes that sort right around `/` (`.` before it, `0` after it).
const LEVELS: &[&str] = &["a", "ab", "b", "", "$SYS", "0", ".", "a0", "é"];

fn level() -> impl Strategy<Value = String> {
    proptest::sample::select(LEVELS).prop_map(str::to_owned)
}

fn topic_name() -> impl Strategy<Value = String> {
    proptest::collection::vec(level(), 1..5)
        .prop_map(|levels| levels.join("/"))
        .prop_filter("a topic is not empty", |name| !name.is_empty())
}

fn filter_text() -> impl Strategy<Value = String> {
    let filter_level = prop_oneof![4 => level(), 2 => Just("+".to_owned())];
    (proptest::collection::vec(filter_level, 0..4), any::<bool>()).prop_filter_map(
        "a filter is not empty",
        |(mut levels, multi)| {
            if multi {
                levels.push("#".to_owned());
            }
            let text = levels.join("/");
            (!text.is_empty()).then_some(text)
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn matching_agrees_with_a_brute_force_filter_over_load(
        topics in proptest::collection::btree_set(topic_name(), 0..40),
        filters in proptest::collection::vec(filter_text(), 1..8),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let store = store("matching_property").await;
            let acme = tenant("acme");
            let names: Vec<&str> = topics.iter().map(String::as_str).collect();
            store_topics(&store, &acme, &names).await;
            let all = store.load(&acme, NOW_MS, 1_000).await.unwrap().entries;
            assert_eq!(all.len(), topics.len());
            for text in &filters {
                let filter = filter(text);
                let expected: BTreeSet<String> = all
                    .iter()
                    .filter(|entry| filter.matches(&entry.topic))
                    .map(|entry| entry.topic.to_string())
                    .collect();
                let found = matched(&store, &acme, text).await;
                let found_set: BTreeSet<String> = found.iter().cloned().collect();
                assert_eq!(found.len(), found_set.len(), "duplicates for {text}");
                assert_eq!(found_set, expected, "filter {text}");
            }
        });
    }
}
