//! Wills parked until their delay ends, against a real Redis: only due wills are claimed, a
//! claim hides a will from other callers until it runs out, and a dropped will is gone.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use bytes::Bytes;
use stratus_redis_state::TakenWill;
use support::{leases, tenant};

fn will(client_key: &str, token: u64) -> TakenWill {
    TakenWill {
        tenant: tenant("acme"),
        client_key: client_key.to_owned(),
        record: Bytes::from(format!("record of {client_key}")),
        token,
    }
}

#[tokio::test]
async fn only_due_wills_are_claimed_each_by_one_caller_until_dropped() {
    let leases = leases("delayed_due").await;
    let (early, late) = (will("dev/early", 3), will("dev/late", 4));
    leases.park_will(&early, 1_000).await.unwrap();
    leases.park_will(&late, 5_000).await.unwrap();
    assert_eq!(leases.parked_wills().await.unwrap(), 2);

    assert!(
        leases
            .claim_due_wills(999, 10, Duration::from_secs(60))
            .await
            .unwrap()
            .is_empty()
    );
    let claimed = leases
        .claim_due_wills(1_000, 10, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].will, early);
    // Claimed for 60 s: not handed out again before the claim ends, even though it is due.
    let again = leases
        .claim_due_wills(4_999, 10, Duration::from_secs(60))
        .await
        .unwrap();
    assert!(again.is_empty(), "{again:?}");

    // The later one comes due; the earlier one's claim ran out (1,000 + 60,000 ms).
    let at_late = leases
        .claim_due_wills(61_000, 10, Duration::from_secs(60))
        .await
        .unwrap();
    let ids: BTreeSet<_> = at_late.iter().map(|w| w.will.client_key.clone()).collect();
    assert_eq!(
        ids,
        BTreeSet::from(["dev/early".to_owned(), "dev/late".to_owned()])
    );

    for parked in at_late {
        leases.drop_parked_will(&parked.id).await.unwrap();
    }
    assert_eq!(leases.parked_wills().await.unwrap(), 0);
    assert!(
        leases
            .claim_due_wills(u64::MAX / 2, 10, Duration::from_secs(1))
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn wills_of_two_connections_of_one_client_are_parked_apart_and_a_limit_is_kept() {
    let leases = leases("delayed_limit").await;
    for token in 1..=5 {
        leases
            .park_will(&will("dev/same", token), 100)
            .await
            .unwrap();
    }
    assert_eq!(leases.parked_wills().await.unwrap(), 5);
    let first = leases
        .claim_due_wills(100, 2, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(first.len(), 2);
    let rest = leases
        .claim_due_wills(100, 10, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(rest.len(), 3);
    let tokens: BTreeSet<u64> = first.iter().chain(&rest).map(|w| w.will.token).collect();
    assert_eq!(tokens, (1..=5).collect());
}

#[tokio::test]
async fn parking_the_same_will_again_replaces_it() {
    let leases = leases("delayed_replace").await;
    let w = will("dev/r", 9);
    leases.park_will(&w, 100).await.unwrap();
    leases.park_will(&w, 200).await.unwrap();
    assert_eq!(leases.parked_wills().await.unwrap(), 1);
    assert!(
        leases
            .claim_due_wills(150, 10, Duration::from_secs(1))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        leases
            .claim_due_wills(200, 10, Duration::from_secs(1))
            .await
            .unwrap()
            .len(),
        1
    );
}
