//! Persistent sessions against a real Redis: claims, fenced writes, every write kind round
//! trip, the offline TTL, load limits and corrupt data.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use redis::aio::ConnectionManager;
use stratus_model::TenantId;
use stratus_redis_state::{
    Applied, Claim, ClaimMode, MAX_SESSION_BATCH, MAX_SESSION_RECORD_LEN, RedisStateError,
    SessionLoadLimits, SessionStore, SessionWrite, StoredSessionMessage, StoredSessionState,
};
use support::{redis_url, sessions, tenant};

const ROOMY: SessionLoadLimits = SessionLoadLimits {
    max_subscriptions: 10_000,
    max_messages: 10_000,
    max_incoming_qos2: 10_000,
};
const KEY: &str = "k7q2mzx";
const CLIENT: &str = "sensor-1";
const SUFFIXES: [&str; 5] = ["meta", "subs", "msgs", "mstate", "q2in"];

/// A session under test: its store, tenant and a raw connection to look at its keys.
struct Fixture {
    store: SessionStore,
    tenant: TenantId,
    raw: ConnectionManager,
}

impl Fixture {
    async fn new(test: &str) -> Self {
        Self {
            store: sessions(test).await,
            tenant: tenant("acme"),
            raw: stratus_redis_state::connect(&redis_url()).await.unwrap(),
        }
    }

    fn key(&self, suffix: &str) -> String {
        format!("{}:sess:{{acme:{KEY}}}:{suffix}", self.store.namespace())
    }

    async fn claim(&self, token: u64, mode: ClaimMode) -> Claim {
        self.try_claim(token, mode, ROOMY).await.unwrap()
    }

    async fn try_claim(
        &self,
        token: u64,
        mode: ClaimMode,
        limits: SessionLoadLimits,
    ) -> Result<Claim, RedisStateError> {
        (self.store)
            .claim(&self.tenant, KEY, CLIENT, token, mode, limits)
            .await
    }

    async fn resume(&self, token: u64) -> Option<StoredSessionState> {
        match self.claim(token, ClaimMode::Resume).await {
            Claim::Resumed(state) => state,
            other => panic!("resume with {token}: {other:?}"),
        }
    }

    async fn apply(&self, token: u64, writes: &[SessionWrite]) -> Applied {
        self.try_apply(token, writes).await.unwrap()
    }

    async fn try_apply(
        &self,
        token: u64,
        writes: &[SessionWrite],
    ) -> Result<Applied, RedisStateError> {
        self.store.apply(&self.tenant, KEY, token, writes).await
    }

    async fn token(&self) -> Option<u64> {
        self.store.token(&self.tenant, KEY).await.unwrap()
    }

    async fn cmd<T: redis::FromRedisValue>(&self, cmd: &mut redis::Cmd) -> T {
        let mut raw = self.raw.clone();
        cmd.query_async(&mut raw).await.unwrap()
    }

    async fn hset(&self, suffix: &str, field: &str, value: &str) {
        let _: i64 = self
            .cmd(
                redis::cmd("HSET")
                    .arg(self.key(suffix))
                    .arg(field)
                    .arg(value),
            )
            .await;
    }

    async fn meta(&self) -> BTreeMap<String, String> {
        self.cmd(redis::cmd("HGETALL").arg(self.key("meta"))).await
    }

    /// Every key under the namespace (SCAN), so nothing outside the five is missed.
    async fn keys(&self) -> Vec<String> {
        let mut keys = Vec::new();
        let mut cursor = 0u64;
        loop {
            let (next, page): (u64, Vec<String>) = self
                .cmd(
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(format!("{}:*", self.store.namespace()))
                        .arg("COUNT")
                        .arg(1000),
                )
                .await;
            keys.extend(page);
            if next == 0 {
                keys.sort();
                return keys;
            }
            cursor = next;
        }
    }

    /// Every key's content and whether it has a TTL, for before/after comparisons.
    async fn dump(&self) -> BTreeMap<String, (Vec<Vec<u8>>, bool)> {
        let mut dump = BTreeMap::new();
        for key in self.keys().await {
            let kind: String = self.cmd(redis::cmd("TYPE").arg(&key)).await;
            let command = if kind == "set" { "SMEMBERS" } else { "HGETALL" };
            let mut content: Vec<Vec<u8>> = self.cmd(redis::cmd(command).arg(&key)).await;
            if kind == "set" {
                content.sort();
            }
            let ttl: i64 = self.cmd(redis::cmd("PTTL").arg(&key)).await;
            dump.insert(key, (content, ttl >= 0));
        }
        dump
    }

    async fn expire_time(&self, suffix: &str) -> i64 {
        self.cmd(redis::cmd("PEXPIRETIME").arg(self.key(suffix)))
            .await
    }
}

fn now_ms() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

fn meta(expiry_secs: u32, next_packet_id: u16) -> SessionWrite {
    SessionWrite::Meta {
        expiry_secs,
        next_packet_id,
    }
}

fn put_sub(filter: &str, record: &[u8]) -> SessionWrite {
    SessionWrite::PutSubscription {
        filter: filter.to_owned(),
        record: Bytes::copy_from_slice(record),
    }
}

fn put_msg(seq: u64, record: &[u8], stream_seq: Option<u64>) -> SessionWrite {
    SessionWrite::PutMessage {
        seq,
        record: Bytes::copy_from_slice(record),
        stream_seq,
    }
}

fn offline(at_ms: Option<u64>, grace_ms: u64) -> SessionWrite {
    SessionWrite::Offline { at_ms, grace_ms }
}

const FRESH_PERSISTENT: ClaimMode = ClaimMode::Fresh { persistent: true };

/// A persistent session with one of each kind of entry, claimed with `token`.
async fn populated(fx: &Fixture, token: u64) {
    assert_eq!(fx.claim(token, FRESH_PERSISTENT).await, Claim::Fresh);
    let writes = [
        meta(3600, 7),
        put_sub("a/+", b"sub-a"),
        put_msg(1, b"m1", Some(100)),
        SessionWrite::UpdateMessage {
            seq: 1,
            state: Bytes::from_static(b"s1"),
        },
        SessionWrite::AddIncomingQos2 { packet_id: 9 },
    ];
    assert_eq!(fx.apply(token, &writes).await, Applied::Done);
}

#[tokio::test]
async fn resume_on_nothing_returns_none_and_stores_the_token() {
    let fx = Fixture::new("sess_resume_nothing").await;
    assert_eq!(fx.token().await, None);
    assert_eq!(fx.resume(42).await, None);
    assert_eq!(fx.token().await, Some(42));
    let expected = BTreeMap::from([
        ("token".to_owned(), "42".to_owned()),
        ("client_id".to_owned(), CLIENT.to_owned()),
    ]);
    assert_eq!(fx.meta().await, expected);
    assert_eq!(fx.keys().await, [fx.key("meta")]);
    assert_eq!(fx.expire_time("meta").await, -1, "no TTL");
}

#[tokio::test]
async fn every_write_kind_round_trips_through_a_resume() {
    let fx = Fixture::new("sess_round_trip").await;
    assert_eq!(fx.resume(5).await, None);
    let binary = [0u8, 0xff, b'\n', 0x80, 0];
    let first = [
        meta(120, 1),
        put_sub("z/#", b"sub-z"),
        put_sub("a/+/b", &binary),
        put_sub("gone", b"x"),
        put_sub("a/+/b", b"sub-a-replaced"),
        SessionWrite::DeleteSubscription {
            filter: "gone".to_owned(),
        },
        put_msg(30, b"m30", Some(1_000)),
        put_msg(4, &binary, None),
        put_msg(12, b"m12", Some(900)),
        put_msg(99, b"deleted", None),
        SessionWrite::UpdateMessage {
            seq: 12,
            state: Bytes::from_static(b"sent pid=3"),
        },
        SessionWrite::UpdateMessage {
            seq: 77,
            state: Bytes::from_static(b"no such message"),
        },
        SessionWrite::UpdateMessage {
            seq: 99,
            state: Bytes::from_static(b"dropped with its message"),
        },
        SessionWrite::DeleteMessage { seq: 99 },
        SessionWrite::Cursor { stream_seq: 1_200 },
        SessionWrite::AddIncomingQos2 { packet_id: 65_535 },
        SessionWrite::AddIncomingQos2 { packet_id: 2 },
        SessionWrite::AddIncomingQos2 { packet_id: 300 },
        SessionWrite::RemoveIncomingQos2 { packet_id: 300 },
    ];
    assert_eq!(fx.apply(5, &first).await, Applied::Done);
    // States of absent (77) and deleted (99) messages are not kept.
    let states: Vec<String> = fx.cmd(redis::cmd("HKEYS").arg(fx.key("mstate"))).await;
    assert_eq!(states, ["12"]);
    let at = now_ms();
    let second = [
        meta(3_600, 17),
        SessionWrite::UpdateMessage {
            seq: 30,
            state: Bytes::copy_from_slice(&binary),
        },
        offline(Some(at), 5_000),
    ];
    assert_eq!(fx.apply(5, &second).await, Applied::Done);

    let expected = StoredSessionState {
        expiry_secs: 3_600,
        next_packet_id: 17,
        cursor: 1_200,
        offline_at_ms: Some(at),
        subscriptions: vec![
            ("a/+/b".to_owned(), Bytes::from_static(b"sub-a-replaced")),
            ("z/#".to_owned(), Bytes::from_static(b"sub-z")),
        ],
        messages: vec![
            StoredSessionMessage {
                seq: 4,
                record: Bytes::copy_from_slice(&binary),
                state: None,
            },
            StoredSessionMessage {
                seq: 12,
                record: Bytes::from_static(b"m12"),
                state: Some(Bytes::from_static(b"sent pid=3")),
            },
            StoredSessionMessage {
                seq: 30,
                record: Bytes::from_static(b"m30"),
                state: Some(Bytes::copy_from_slice(&binary)),
            },
        ],
        incoming_qos2: vec![2, 65_535],
    };
    assert_eq!(fx.resume(6).await, Some(expected.clone()));
    // The new owner is online: no TTL, no offline_at; a second resume sees the same session.
    assert_eq!(fx.token().await, Some(6));
    assert!(!fx.meta().await.contains_key("offline_at"));
    for suffix in SUFFIXES {
        assert_eq!(fx.expire_time(suffix).await, -1, "{suffix} still expires");
    }
    let again = fx.resume(6).await.unwrap();
    assert_eq!(again.offline_at_ms, None);
    assert_eq!(
        again,
        StoredSessionState {
            offline_at_ms: None,
            ..expected
        }
    );
}

#[tokio::test]
async fn a_stale_owner_is_fenced_and_changes_nothing() {
    let fx = Fixture::new("sess_fencing").await;
    // Never claimed: nothing to write to.
    assert_eq!(fx.apply(1, &[meta(60, 1)]).await, Applied::Fenced);
    assert!(fx.keys().await.is_empty());

    populated(&fx, 10).await;
    assert!(fx.resume(11).await.is_some(), "the new owner takes over");
    let before = fx.dump().await;

    let stale = [put_sub("evil", b"x"), SessionWrite::Clear, meta(1, 1)];
    assert_eq!(fx.apply(10, &stale).await, Applied::Fenced);
    assert_eq!(
        fx.apply(12, &stale).await,
        Applied::Fenced,
        "a future token"
    );
    assert_eq!(
        fx.store.delete(&fx.tenant, KEY, 10).await.unwrap(),
        Applied::Fenced
    );
    assert_eq!(
        fx.claim(9, ClaimMode::Resume).await,
        Claim::Fenced { current: 11 }
    );
    assert_eq!(
        fx.claim(10, FRESH_PERSISTENT).await,
        Claim::Fenced { current: 11 }
    );
    assert_eq!(fx.dump().await, before);
    // The owner itself may claim again with its own token.
    assert!(fx.resume(11).await.is_some());
}

#[tokio::test]
async fn tokens_compare_as_u64_even_where_doubles_cannot() {
    let fx = Fixture::new("sess_token_order").await;
    // "10" > "9" despite sorting first as text.
    assert_eq!(fx.resume(10).await, None);
    assert_eq!(
        fx.claim(9, ClaimMode::Resume).await,
        Claim::Fenced { current: 10 }
    );
    // 2^53 + 1 and 2^53 are the same double.
    let big = (1u64 << 53) + 1;
    assert_eq!(fx.resume(big).await, None);
    assert_eq!(
        fx.claim(big - 1, ClaimMode::Resume).await,
        Claim::Fenced { current: big }
    );
    assert_eq!(fx.apply(big - 1, &[]).await, Applied::Fenced);
    assert_eq!(fx.apply(big, &[]).await, Applied::Done);
    assert_eq!(fx.resume(u64::MAX).await, None);
    assert_eq!(fx.token().await, Some(u64::MAX));
}

#[tokio::test]
async fn fresh_claims_and_deletes_remove_every_key() {
    let fx = Fixture::new("sess_fresh").await;
    populated(&fx, 3).await;
    assert_eq!(fx.claim(4, FRESH_PERSISTENT).await, Claim::Fresh);
    assert_eq!(fx.keys().await, [fx.key("meta")]);
    assert_eq!(fx.meta().await.len(), 2, "{:?}", fx.meta().await);
    assert_eq!(fx.token().await, Some(4));

    populated(&fx, 5).await;
    let fresh = ClaimMode::Fresh { persistent: false };
    assert_eq!(fx.claim(6, fresh).await, Claim::Fresh);
    assert!(fx.keys().await.is_empty(), "{:?}", fx.keys().await);
    for suffix in SUFFIXES {
        let exists: i64 = fx.cmd(redis::cmd("EXISTS").arg(fx.key(suffix))).await;
        assert_eq!(exists, 0, "{suffix}");
    }
    // Without meta, even the last claimant's writes are refused.
    assert_eq!(fx.apply(6, &[meta(60, 1)]).await, Applied::Fenced);
    assert!(fx.keys().await.is_empty());

    // So is a delete by the owner.
    populated(&fx, 7).await;
    assert_eq!(fx.keys().await.len(), 5);
    let deleted = fx.store.delete(&fx.tenant, KEY, 7).await.unwrap();
    assert_eq!((deleted, fx.keys().await), (Applied::Done, vec![]));
}

#[tokio::test]
async fn clear_empties_the_session_but_keeps_fencing() {
    let fx = Fixture::new("sess_clear").await;
    populated(&fx, 3).await;
    assert_eq!(fx.apply(3, &[SessionWrite::Clear]).await, Applied::Done);
    assert_eq!(fx.keys().await, [fx.key("meta")]);
    assert_eq!(fx.token().await, Some(3));
    assert_eq!(fx.apply(2, &[meta(1, 1)]).await, Applied::Fenced);
    // No expiry stored: nothing to resume.
    assert_eq!(fx.resume(3).await, None);
}

#[tokio::test]
async fn the_cursor_only_increases_even_above_2_pow_53() {
    let fx = Fixture::new("sess_cursor").await;
    populated(&fx, 1).await; // cursor 100
    let cursor = |stream_seq| SessionWrite::Cursor { stream_seq };
    let big = (1u64 << 53) + 1;
    let steps: [(SessionWrite, u64); 8] = [
        (cursor(99), 100),
        (cursor(1_000), 1_000),
        (cursor(999), 1_000),
        (cursor(big - 1), big - 1),
        (cursor(big), big),
        (cursor(big - 1), big),
        (put_msg(2, b"m", Some(5)), big),
        (put_msg(3, b"m", Some(u64::MAX)), u64::MAX),
    ];
    for (write, expected) in steps {
        let label = format!("{write:?}");
        assert_eq!(fx.apply(1, &[write]).await, Applied::Done);
        assert_eq!(fx.meta().await["cursor"], expected.to_string(), "{label}");
    }
    assert_eq!(fx.resume(2).await.unwrap().cursor, u64::MAX);
}

#[tokio::test]
async fn offline_expires_every_key_together_and_online_persists_them() {
    let fx = Fixture::new("sess_offline_ttl").await;
    assert_eq!(fx.claim(1, FRESH_PERSISTENT).await, Claim::Fresh);
    let writes = [meta(3_600, 1), put_sub("t", b"s"), put_msg(1, b"m", None)];
    assert_eq!(fx.apply(1, &writes).await, Applied::Done);
    let at = now_ms();
    let grace = 60_000;
    // The Meta write before Offline in the same batch sets the expiry it uses.
    let writes = [meta(7_200, 1), offline(Some(at), grace)];
    assert_eq!(fx.apply(1, &writes).await, Applied::Done);
    let deadline = i64::try_from(at + 7_200_000 + grace).unwrap();
    for suffix in ["meta", "subs", "msgs"] {
        assert_eq!(fx.expire_time(suffix).await, deadline, "{suffix}");
        let ttl: i64 = fx.cmd(redis::cmd("PTTL").arg(fx.key(suffix))).await;
        assert!(ttl > 7_200_000 && ttl <= 7_260_000, "{suffix}: {ttl}");
    }

    // Keys a later batch creates get the same deadline.
    let writes = [
        SessionWrite::UpdateMessage {
            seq: 1,
            state: Bytes::from_static(b"s"),
        },
        SessionWrite::AddIncomingQos2 { packet_id: 4 },
    ];
    assert_eq!(fx.apply(1, &writes).await, Applied::Done);
    for suffix in SUFFIXES {
        assert_eq!(fx.expire_time(suffix).await, deadline, "{suffix}");
    }

    assert_eq!(fx.apply(1, &[offline(None, 0)]).await, Applied::Done);
    for suffix in SUFFIXES {
        assert_eq!(fx.expire_time(suffix).await, -1, "{suffix}");
    }
    assert!(!fx.meta().await.contains_key("offline_at"));
    assert_eq!(fx.apply(1, &[put_msg(2, b"m", None)]).await, Applied::Done);
    assert_eq!(fx.expire_time("msgs").await, -1);
}

#[tokio::test]
async fn an_expired_session_resumes_as_none() {
    let fx = Fixture::new("sess_expired").await;
    populated(&fx, 1).await;
    let writes = [meta(1, 1), offline(Some(now_ms()), 100)];
    assert_eq!(fx.apply(1, &writes).await, Applied::Done);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !fx.keys().await.is_empty() {
        assert!(
            Instant::now() < deadline,
            "never expired: {:?}",
            fx.dump().await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(fx.apply(1, &[meta(60, 1)]).await, Applied::Fenced);
    assert_eq!(fx.resume(2).await, None);
    assert_eq!(fx.keys().await, [fx.key("meta")]);
}

#[tokio::test]
async fn a_session_over_the_load_limits_is_refused_unchanged() {
    let fx = Fixture::new("sess_limits").await;
    populated(&fx, 1).await;
    let writes = [
        put_sub("b", b"s"),
        put_sub("c", b"s"),
        put_msg(2, b"m", None),
        SessionWrite::AddIncomingQos2 { packet_id: 10 },
    ];
    assert_eq!(fx.apply(1, &writes).await, Applied::Done);
    let before = fx.dump().await;
    let limits = |max_subscriptions, max_messages, max_incoming_qos2| SessionLoadLimits {
        max_subscriptions,
        max_messages,
        max_incoming_qos2,
    };
    let cases = [
        (limits(2, 10, 10), "subscriptions", 3),
        (limits(10, 1, 10), "messages", 2),
        (limits(10, 10, 1), "incoming QoS 2 packet ids", 2),
    ];
    for (limits, what, count) in cases {
        let err = fx
            .try_claim(2, ClaimMode::Resume, limits)
            .await
            .unwrap_err();
        match &err {
            RedisStateError::SessionTooLarge {
                what: w, count: c, ..
            } => assert_eq!((*w, *c), (what, count), "{err}"),
            other => panic!("expected SessionTooLarge, got {other:?}"),
        }
        assert!(err.to_string().contains("load limit"), "{err}");
    }
    assert_eq!(fx.dump().await, before, "a refused claim changes nothing");
    let exact = limits(3, 2, 2);
    assert!(matches!(
        fx.try_claim(2, ClaimMode::Resume, exact).await.unwrap(),
        Claim::Resumed(Some(_))
    ));
}

#[tokio::test]
async fn corrupt_meta_fields_are_errors_that_change_nothing() {
    for field in ["cursor", "expiry", "next_pid", "offline_at"] {
        let fx = Fixture::new("sess_corrupt_meta").await;
        populated(&fx, 1).await;
        fx.hset("meta", field, "12x").await;
        let before = fx.dump().await;
        let err = fx.try_claim(2, ClaimMode::Resume, ROOMY).await.unwrap_err();
        assert!(
            matches!(&err, RedisStateError::CorruptSession { field: f, .. } if f == field),
            "{field}: {err:?}"
        );
        assert!(err.to_string().contains(&fx.key("meta")), "{err}");
        assert_eq!(fx.dump().await, before, "{field}");
    }

    let fx = Fixture::new("sess_corrupt_cursor_apply").await;
    populated(&fx, 1).await;
    fx.hset("meta", "cursor", "-1").await;
    let before = fx.dump().await;
    let err = fx.try_apply(1, &[put_sub("new", b"s")]).await.unwrap_err();
    assert!(
        matches!(err, RedisStateError::CorruptSession { .. }),
        "{err:?}"
    );
    assert_eq!(fx.dump().await, before);

    let fx = Fixture::new("sess_corrupt_token").await;
    populated(&fx, 1).await;
    fx.hset("meta", "token", "1.5e3").await;
    assert!(fx.store.token(&fx.tenant, KEY).await.is_err());
    let err = fx.try_claim(2, FRESH_PERSISTENT, ROOMY).await.unwrap_err();
    assert!(
        matches!(err, RedisStateError::CorruptSession { .. }),
        "{err:?}"
    );
    assert_eq!(fx.apply(1, &[meta(1, 1)]).await, Applied::Fenced);
}

#[tokio::test]
async fn corrupt_entries_are_errors_and_a_fresh_claim_recovers() {
    let cases = [
        ("msgs", "not-a-seq"),
        ("mstate", "12x"),
        ("subs", ""),
        ("q2in", "70000"),
    ];
    for (suffix, field) in cases {
        let fx = Fixture::new("sess_corrupt_entry").await;
        populated(&fx, 1).await;
        if suffix == "q2in" {
            let _: i64 = fx
                .cmd(redis::cmd("SADD").arg(fx.key(suffix)).arg(field))
                .await;
        } else {
            fx.hset(suffix, field, "v").await;
        }
        let err = fx.try_claim(2, ClaimMode::Resume, ROOMY).await.unwrap_err();
        match &err {
            RedisStateError::CorruptSession { key, field: f, .. } => {
                assert_eq!((key.as_str(), f.as_str()), (fx.key(suffix).as_str(), field));
            }
            other => panic!("{suffix}: expected CorruptSession, got {other:?}"),
        }
        assert_eq!(fx.claim(2, FRESH_PERSISTENT).await, Claim::Fresh);
        assert_eq!(fx.keys().await, [fx.key("meta")]);
    }
}

#[tokio::test]
async fn another_client_ids_session_is_refused_unchanged() {
    let fx = Fixture::new("sess_client_mismatch").await;
    populated(&fx, 1).await;
    let before = fx.dump().await;
    for mode in [ClaimMode::Resume, FRESH_PERSISTENT] {
        let err = fx
            .store
            .claim(&fx.tenant, KEY, "other-client", 2, mode, ROOMY)
            .await
            .unwrap_err();
        match &err {
            RedisStateError::SessionClientMismatch {
                stored, requested, ..
            } => assert_eq!(
                (stored.as_str(), requested.as_str()),
                (CLIENT, "other-client")
            ),
            other => panic!("expected SessionClientMismatch, got {other:?}"),
        }
    }
    assert_eq!(fx.dump().await, before);
}

#[tokio::test]
async fn invalid_writes_and_client_keys_are_refused_before_redis() {
    let fx = Fixture::new("sess_invalid").await;
    populated(&fx, 1).await;
    let before = fx.dump().await;
    let too_big = Bytes::from(vec![0u8; MAX_SESSION_RECORD_LEN + 1]);
    let bad_batches = [
        vec![put_sub("ok", b"s"), put_sub("", b"s")],
        vec![put_sub(&"f".repeat(65_536), b"s")],
        vec![SessionWrite::PutSubscription {
            filter: "t".to_owned(),
            record: too_big.clone(),
        }],
        vec![put_msg(1, &too_big, None)],
        vec![SessionWrite::UpdateMessage {
            seq: 1,
            state: too_big,
        }],
        vec![SessionWrite::Cursor { stream_seq: 1 }; MAX_SESSION_BATCH + 1],
    ];
    for batch in bad_batches {
        let err = fx.try_apply(1, &batch).await.unwrap_err();
        assert!(
            matches!(err, RedisStateError::InvalidSessionWrite(_)),
            "{err:?}"
        );
    }
    let full = vec![SessionWrite::Cursor { stream_seq: 1 }; MAX_SESSION_BATCH];
    assert_eq!(fx.apply(1, &full).await, Applied::Done);
    let max = Bytes::from(vec![7u8; MAX_SESSION_RECORD_LEN]);
    assert_eq!(fx.dump().await, before, "refused batches wrote nothing");
    let writes = [SessionWrite::PutSubscription {
        filter: "big".to_owned(),
        record: max,
    }];
    assert_eq!(fx.apply(1, &writes).await, Applied::Done);

    for key in ["", "a}b", "a{b", "a b", &"k".repeat(129)] {
        let err = fx.store.token(&fx.tenant, key).await.unwrap_err();
        assert!(
            matches!(err, RedisStateError::InvalidClientKey { .. }),
            "{key:?}: {err:?}"
        );
    }
}
