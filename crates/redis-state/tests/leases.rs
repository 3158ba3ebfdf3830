//! Node leases and dead-hand wills against a real Redis: expiry detection, exclusive reaping,
//! wills taken exactly once, graceful release.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use stratus_redis_state::{Lease, NodeLeases, RedisStateError};
use support::{leases, tenant};

const SHORT_TTL: Duration = Duration::from_millis(300);
const LONG_TTL: Duration = Duration::from_secs(60);

fn lease(node: &str, incarnation: &str) -> Lease {
    Lease::new(node, incarnation).unwrap()
}

/// Polls `expired()` until it lists `lease`, failing after a deadline well past the TTL.
async fn wait_until_expired(leases: &NodeLeases, lease: &Lease) -> Vec<Lease> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let expired = leases.expired().await.unwrap();
        if expired.contains(lease) {
            return expired;
        }
        assert!(
            Instant::now() < deadline,
            "{lease:?} never expired: {expired:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_lease_that_is_not_renewed_shows_up_as_expired() {
    let leases = leases("lease_expiry").await;
    let (dying, living) = (lease("edge-1", "inc-a"), lease("edge-2", "inc-b"));
    leases.renew(&dying, SHORT_TTL).await.unwrap();
    leases.renew(&living, LONG_TTL).await.unwrap();
    assert!(leases.expired().await.unwrap().is_empty());

    let expired = wait_until_expired(&leases, &dying).await;
    assert_eq!(
        expired,
        std::slice::from_ref(&dying),
        "the renewed lease is alive"
    );

    // A dead node that comes back before anyone claims it simply renews.
    leases.renew(&dying, LONG_TTL).await.unwrap();
    assert!(leases.expired().await.unwrap().is_empty());
}

#[tokio::test]
async fn exactly_one_of_several_concurrent_reapers_wins_the_claim() {
    let leases = leases("lease_claim").await;
    let dead = lease("edge-1", "inc-dead");
    leases.renew(&dead, SHORT_TTL).await.unwrap();
    // A live lease cannot be claimed.
    assert!(
        !leases
            .claim_reap(&dead, &lease("edge-9", "early"), LONG_TTL)
            .await
            .unwrap()
    );
    wait_until_expired(&leases, &dead).await;

    let claims = (0..8).map(|i| {
        let leases = leases.clone();
        let dead = dead.clone();
        tokio::spawn(async move {
            let reaper = lease(&format!("edge-r{i}"), "inc");
            leases.claim_reap(&dead, &reaper, LONG_TTL).await.unwrap()
        })
    });
    let mut winners = 0;
    for claim in claims.collect::<Vec<_>>() {
        if claim.await.unwrap() {
            winners += 1;
        }
    }
    assert_eq!(winners, 1);

    // Claimed: the dead incarnation may not come back under the same identity.
    assert!(matches!(
        leases.renew(&dead, LONG_TTL).await,
        Err(RedisStateError::LeaseLost { .. })
    ));

    leases.forget(&dead).await.unwrap();
    assert!(!leases.expired().await.unwrap().contains(&dead));
    assert!(
        !leases
            .claim_reap(&dead, &lease("edge-r0", "inc"), LONG_TTL)
            .await
            .unwrap(),
        "a forgotten incarnation has nothing to claim"
    );
    assert!(matches!(
        leases.renew(&dead, LONG_TTL).await,
        Err(RedisStateError::LeaseLost { .. })
    ));
}

#[tokio::test]
async fn concurrent_takers_get_every_will_exactly_once() {
    let leases = leases("wills_take").await;
    let dead = lease("edge-1", "inc-dead");
    let (acme, globex) = (tenant("acme"), tenant("globex"));
    let mut registered = BTreeSet::new();
    for i in 0..600_u64 {
        let tenant = if i % 2 == 0 { &acme } else { &globex };
        let client = format!("client/{i}");
        let record = format!("will of {i}");
        leases
            .put_will(&dead, tenant, &client, record.as_bytes(), i)
            .await
            .unwrap();
        registered.insert((tenant.to_string(), client, record.into_bytes(), i));
    }
    // Replaced and deleted wills are not taken.
    leases
        .put_will(&dead, &acme, "client/0", b"newer", 1_000)
        .await
        .unwrap();
    registered.remove(&(
        acme.to_string(),
        "client/0".into(),
        b"will of 0".to_vec(),
        0,
    ));
    registered.insert((
        acme.to_string(),
        "client/0".into(),
        b"newer".to_vec(),
        1_000,
    ));
    leases
        .delete_will(&dead, &globex, "client/1")
        .await
        .unwrap();
    registered.remove(&(
        globex.to_string(),
        "client/1".into(),
        b"will of 1".to_vec(),
        1,
    ));
    // Wills of another incarnation stay where they are.
    let other = lease("edge-2", "inc-live");
    leases
        .put_will(&other, &acme, "elsewhere", b"w", 7)
        .await
        .unwrap();

    let takers = (0..4).map(|_| {
        let leases = leases.clone();
        let dead = dead.clone();
        tokio::spawn(async move { leases.take_wills(&dead).await.unwrap() })
    });
    let mut taken = Vec::new();
    for taker in takers.collect::<Vec<_>>() {
        taken.extend(taker.await.unwrap());
    }
    let taken_set: BTreeSet<_> = taken
        .iter()
        .map(|w| {
            (
                w.tenant.to_string(),
                w.client_key.clone(),
                w.record.to_vec(),
                w.token,
            )
        })
        .collect();
    assert_eq!(taken.len(), taken_set.len(), "a will was taken twice");
    assert_eq!(taken_set, registered);
    assert!(leases.take_wills(&dead).await.unwrap().is_empty());
    assert_eq!(leases.take_wills(&other).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_released_lease_leaves_nothing_to_reap() {
    let leases = leases("lease_release").await;
    let (released, crashed) = (lease("edge-1", "inc-a"), lease("edge-2", "inc-b"));
    for lease in [&released, &crashed] {
        leases.renew(lease, SHORT_TTL).await.unwrap();
        leases
            .put_will(lease, &tenant("acme"), "c", b"w", 1)
            .await
            .unwrap();
    }
    leases.release(&released).await.unwrap();

    // Once the crashed node's identical lease has lapsed, the released one would have too.
    let expired = wait_until_expired(&leases, &crashed).await;
    assert_eq!(expired, std::slice::from_ref(&crashed));
    let reaper = lease("edge-3", "inc-c");
    assert!(
        !leases
            .claim_reap(&released, &reaper, LONG_TTL)
            .await
            .unwrap()
    );
    assert!(leases.take_wills(&released).await.unwrap().is_empty());
    assert_eq!(leases.take_wills(&crashed).await.unwrap().len(), 1);
    assert!(matches!(
        leases.renew(&released, LONG_TTL).await,
        Err(RedisStateError::LeaseLost { .. })
    ));
}

#[tokio::test]
async fn namespaces_keep_leases_apart() {
    let (first, second) = (leases("lease_ns_a").await, leases("lease_ns_b").await);
    let dying = lease("edge-1", "inc-a");
    first.renew(&dying, SHORT_TTL).await.unwrap();
    wait_until_expired(&first, &dying).await;
    assert!(second.expired().await.unwrap().is_empty());
}

#[tokio::test]
async fn invalid_leases_and_durations_are_refused_before_redis() {
    let leases = leases("lease_invalid").await;
    let mut bad = lease("edge-1", "inc");
    bad.incarnation = "has:colon".into();
    assert!(matches!(
        leases.renew(&bad, LONG_TTL).await,
        Err(RedisStateError::InvalidLease { .. })
    ));
    assert!(matches!(
        leases
            .renew(&lease("edge-1", "inc"), Duration::from_micros(10))
            .await,
        Err(RedisStateError::InvalidDuration(_))
    ));
}
