//! Retained store writes against a real Redis: outcomes, versions, counters, quotas, expiry,
//! tenant isolation and clearing.

#![allow(clippy::unwrap_used)]

mod support;

use stratus_redis_state::{RetainedOutcome, RetainedQuota, RetainedUsage};
use support::{NOW_MS, ROOMY, store, tenant, topic};

#[tokio::test]
async fn put_replace_delete_move_the_version_and_counters() {
    let store = store("put_replace_delete").await;
    let acme = tenant("acme");
    let t = topic("sensors/1/temp");

    let stored = store
        .put(&acme, &t, b"21.5", None, ROOMY, NOW_MS)
        .await
        .unwrap();
    assert_eq!(stored.outcome, RetainedOutcome::Stored);
    assert_eq!(stored.version, 1);
    let size = (t.as_str().len() + 4) as u64;
    assert_eq!(
        store.usage(&acme).await.unwrap(),
        RetainedUsage {
            messages: 1,
            bytes: size,
            version: 1
        }
    );

    let replaced = store
        .put(&acme, &t, b"22", None, ROOMY, NOW_MS)
        .await
        .unwrap();
    assert_eq!(replaced.outcome, RetainedOutcome::Replaced);
    assert_eq!(replaced.version, 2);
    let usage = store.usage(&acme).await.unwrap();
    assert_eq!((usage.messages, usage.bytes), (1, size - 2));

    let snapshot = store.load(&acme, NOW_MS, 10).await.unwrap();
    assert_eq!(snapshot.version, 2);
    assert_eq!(snapshot.entries.len(), 1);
    assert_eq!(&snapshot.entries[0].record[..], b"22");
    assert!(!snapshot.truncated);

    let deleted = store.delete(&acme, &t).await.unwrap();
    assert_eq!(deleted.outcome, RetainedOutcome::Deleted);
    assert_eq!(deleted.version, 3);
    let absent = store.delete(&acme, &t).await.unwrap();
    assert_eq!(absent.outcome, RetainedOutcome::Absent);
    assert_eq!(absent.version, 3, "a no-op leaves the version alone");
    assert_eq!(
        store.usage(&acme).await.unwrap(),
        RetainedUsage {
            messages: 0,
            bytes: 0,
            version: 3
        }
    );
    assert!(
        store
            .load(&acme, NOW_MS, 10)
            .await
            .unwrap()
            .entries
            .is_empty()
    );
}

#[tokio::test]
async fn binary_records_and_empty_records_round_trip() {
    let store = store("binary_records").await;
    let acme = tenant("acme");
    let record: Vec<u8> = (0..=255).collect();
    store
        .put(&acme, &topic("bin"), &record, None, ROOMY, NOW_MS)
        .await
        .unwrap();
    store
        .put(&acme, &topic("empty"), b"", None, ROOMY, NOW_MS)
        .await
        .unwrap();
    let entries = store.load(&acme, NOW_MS, 10).await.unwrap().entries;
    assert_eq!(entries.len(), 2);
    assert_eq!(&entries[0].record[..], &record[..]);
    assert!(entries[1].record.is_empty());
    assert_eq!(store.usage(&acme).await.unwrap().bytes, 3 + 256 + 5);
}

#[tokio::test]
async fn quota_by_count_refuses_new_topics_but_allows_replacing() {
    let store = store("quota_count").await;
    let acme = tenant("acme");
    let quota = RetainedQuota {
        max_messages: 2,
        max_bytes: 1_000,
    };
    for name in ["a", "b"] {
        let change = store
            .put(&acme, &topic(name), b"x", None, quota, NOW_MS)
            .await
            .unwrap();
        assert_eq!(change.outcome, RetainedOutcome::Stored);
    }
    let before = store.usage(&acme).await.unwrap();
    let refused = store
        .put(&acme, &topic("c"), b"x", None, quota, NOW_MS)
        .await
        .unwrap();
    assert_eq!(refused.outcome, RetainedOutcome::QuotaExceeded);
    assert_eq!(refused.version, before.version);
    assert_eq!(store.usage(&acme).await.unwrap(), before);
    let topics: Vec<_> = store.load(&acme, NOW_MS, 10).await.unwrap().entries;
    assert_eq!(topics.len(), 2);

    let replaced = store
        .put(&acme, &topic("a"), b"yy", None, quota, NOW_MS)
        .await
        .unwrap();
    assert_eq!(replaced.outcome, RetainedOutcome::Replaced);
}

#[tokio::test]
async fn quota_by_bytes_counts_topic_and_record_and_frees_the_old_size() {
    let store = store("quota_bytes").await;
    let acme = tenant("acme");
    let quota = RetainedQuota {
        max_messages: 100,
        max_bytes: 20,
    };
    // "t1" + 8 bytes = 10, twice = 20: exactly the quota.
    for name in ["t1", "t2"] {
        let change = store
            .put(&acme, &topic(name), b"12345678", None, quota, NOW_MS)
            .await
            .unwrap();
        assert_eq!(change.outcome, RetainedOutcome::Stored);
    }
    let before = store.usage(&acme).await.unwrap();
    assert_eq!(before.bytes, 20);

    // One byte more, as a new topic or by growing a replacement, is refused.
    let refused = store
        .put(&acme, &topic("t"), b"", None, quota, NOW_MS)
        .await
        .unwrap();
    assert_eq!(refused.outcome, RetainedOutcome::QuotaExceeded);
    let grown = store
        .put(&acme, &topic("t1"), b"123456789", None, quota, NOW_MS)
        .await
        .unwrap();
    assert_eq!(grown.outcome, RetainedOutcome::QuotaExceeded);
    assert_eq!(store.usage(&acme).await.unwrap(), before);
    let entries = store.load(&acme, NOW_MS, 10).await.unwrap().entries;
    assert_eq!(&entries[0].record[..], b"12345678");

    // A replacement of the same size fits, because the old size is freed first.
    let same = store
        .put(&acme, &topic("t1"), b"abcdefgh", None, quota, NOW_MS)
        .await
        .unwrap();
    assert_eq!(same.outcome, RetainedOutcome::Replaced);
    let smaller = store
        .put(&acme, &topic("t2"), b"a", None, quota, NOW_MS)
        .await
        .unwrap();
    assert_eq!(smaller.outcome, RetainedOutcome::Replaced);
    assert_eq!(store.usage(&acme).await.unwrap().bytes, 13);
}

#[tokio::test]
async fn expired_entries_are_not_returned_and_their_counters_are_freed() {
    let store = store("expiry").await;
    let acme = tenant("acme");
    store
        .put(
            &acme,
            &topic("a/old"),
            b"1",
            Some(NOW_MS - 1),
            ROOMY,
            NOW_MS - 10,
        )
        .await
        .unwrap();
    store
        .put(
            &acme,
            &topic("a/now"),
            b"2",
            Some(NOW_MS),
            ROOMY,
            NOW_MS - 10,
        )
        .await
        .unwrap();
    store
        .put(
            &acme,
            &topic("a/later"),
            b"3",
            Some(NOW_MS + 60_000),
            ROOMY,
            NOW_MS - 10,
        )
        .await
        .unwrap();
    store
        .put(&acme, &topic("a/never"), b"4", None, ROOMY, NOW_MS - 10)
        .await
        .unwrap();
    assert_eq!(store.usage(&acme).await.unwrap().messages, 4);

    let matched = store
        .matching(&acme, &support::filter("a/+"), NOW_MS, 10)
        .await
        .unwrap();
    let names: Vec<&str> = matched.iter().map(|e| e.topic.as_str()).collect();
    assert_eq!(names, ["a/later", "a/never"]);
    assert_eq!(matched[0].expires_at_ms, Some(NOW_MS + 60_000));
    assert_eq!(matched[1].expires_at_ms, None);

    let usage = store.usage(&acme).await.unwrap();
    assert_eq!(usage.messages, 2);
    assert_eq!(usage.bytes, ("a/later".len() + "a/never".len() + 2) as u64);
    assert_eq!(usage.version, 5, "four puts and one purge");

    // Later, load purges the next one.
    let snapshot = store.load(&acme, NOW_MS + 60_000, 10).await.unwrap();
    let names: Vec<&str> = snapshot.entries.iter().map(|e| e.topic.as_str()).collect();
    assert_eq!(names, ["a/never"]);
    assert_eq!(snapshot.version, 6);
    assert_eq!(store.usage(&acme).await.unwrap().messages, 1);
}

#[tokio::test]
async fn expired_entries_do_not_hold_quota() {
    let store = store("expiry_quota").await;
    let acme = tenant("acme");
    let quota = RetainedQuota {
        max_messages: 1,
        max_bytes: 1_000,
    };
    store
        .put(&acme, &topic("old"), b"1", Some(NOW_MS), quota, NOW_MS - 1)
        .await
        .unwrap();
    let change = store
        .put(&acme, &topic("new"), b"2", None, quota, NOW_MS)
        .await
        .unwrap();
    assert_eq!(change.outcome, RetainedOutcome::Stored);
    assert_eq!(store.usage(&acme).await.unwrap().messages, 1);
}

#[tokio::test]
async fn a_put_without_expiry_clears_the_previous_expiry() {
    let store = store("expiry_cleared").await;
    let acme = tenant("acme");
    let t = topic("a");
    store
        .put(&acme, &t, b"1", Some(NOW_MS + 1), ROOMY, NOW_MS)
        .await
        .unwrap();
    store
        .put(&acme, &t, b"2", None, ROOMY, NOW_MS)
        .await
        .unwrap();
    let entries = store.load(&acme, NOW_MS + 10, 10).await.unwrap().entries;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].expires_at_ms, None);
}

#[tokio::test]
async fn tenants_never_see_each_others_entries() {
    let store = store("tenant_isolation").await;
    let (acme, globex) = (tenant("acme"), tenant("globex"));
    store
        .put(&acme, &topic("shared/topic"), b"acme", None, ROOMY, NOW_MS)
        .await
        .unwrap();
    store
        .put(
            &globex,
            &topic("shared/topic"),
            b"globex",
            None,
            ROOMY,
            NOW_MS,
        )
        .await
        .unwrap();
    store
        .put(&globex, &topic("only/globex"), b"g", None, ROOMY, NOW_MS)
        .await
        .unwrap();

    let acme_all = store
        .matching(&acme, &support::filter("#"), NOW_MS, 10)
        .await
        .unwrap();
    assert_eq!(acme_all.len(), 1);
    assert_eq!(&acme_all[0].record[..], b"acme");
    assert_eq!(
        store.load(&globex, NOW_MS, 10).await.unwrap().entries.len(),
        2
    );

    store.delete(&acme, &topic("shared/topic")).await.unwrap();
    assert_eq!(store.usage(&acme).await.unwrap().messages, 0);
    assert_eq!(store.usage(&globex).await.unwrap().messages, 2);

    store.clear_tenant(&globex).await.unwrap();
    let usage = store.usage(&globex).await.unwrap();
    assert_eq!((usage.messages, usage.bytes), (0, 0));
    assert_eq!(usage.version, 3, "clearing is one more change");
    assert!(
        store
            .load(&globex, NOW_MS, 10)
            .await
            .unwrap()
            .entries
            .is_empty()
    );
    assert_eq!(store.usage(&acme).await.unwrap().version, 2);
}

#[tokio::test]
async fn load_returns_at_most_the_limit_and_says_so() {
    let store = store("load_limit").await;
    let acme = tenant("acme");
    // More than one index page and one fetch batch.
    for i in 0..700 {
        store
            .put(
                &acme,
                &topic(&format!("t/{i:04}")),
                b"x",
                None,
                ROOMY,
                NOW_MS,
            )
            .await
            .unwrap();
    }
    let all = store.load(&acme, NOW_MS, 700).await.unwrap();
    assert_eq!(all.entries.len(), 700);
    assert!(!all.truncated);
    assert_eq!(all.version, 700);
    assert!(
        all.entries
            .windows(2)
            .all(|pair| pair[0].topic < pair[1].topic)
    );

    let some = store.load(&acme, NOW_MS, 600).await.unwrap();
    assert_eq!(some.entries.len(), 600);
    assert!(some.truncated);
    assert_eq!(some.entries[599].topic.as_str(), "t/0599");
}
