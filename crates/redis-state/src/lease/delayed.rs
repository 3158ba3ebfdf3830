//! Wills waiting out their delay after their edge died.
//!
//! A reaper takes a dead incarnation's wills at once ([`NodeLeases::take_wills`]), but a will
//! with a Will Delay Interval is not due yet: its client may still reconnect and cancel it. The
//! reaper parks such a will here, pool-wide, until it is due; every edge's reaper then
//! [claims](NodeLeases::claim_due_wills) the due ones, decides, and
//! [drops](NodeLeases::drop_parked_will) each once published or cancelled.
//!
//! Two keys in one hash slot: a sorted set of will ids scored with the time (unix ms, the edges'
//! clocks) when each is due, and a hash of will id → token and record (the layout of the
//! incarnation registry). A claim moves the will's score to the end of the claim instead of
//! removing it, so a will whose claimant died before dropping it is claimed again afterwards.

use std::fmt;
use std::sync::LazyLock;
use std::time::Duration;

use bytes::Bytes;
use redis::Script;
use stratus_model::TenantId;

use super::wills::{TOKEN_LEN, encode_value};
use super::{NodeLeases, TakenWill, millis};
use crate::error::RedisStateError;

/// `KEYS = [due, records]`, `ARGV = [now_ms, claim_until_ms, limit]` → flat `[id, value, ...]`
/// of up to `limit` wills due by `now_ms`, each rescored to `claim_until_ms`. An id without a
/// record (dropped meanwhile) is removed.
static CLAIM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
local out = {}
for _, id in ipairs(ids) do
  local value = redis.call('HGET', KEYS[2], id)
  if value then
    redis.call('ZADD', KEYS[1], ARGV[2], id)
    out[#out + 1] = id
    out[#out + 1] = value
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
return out
"#,
    )
});

/// A parked will, claimed.
#[derive(Clone, PartialEq, Eq)]
pub struct ParkedWill {
    /// Its id in the parking keys (pass it to [`NodeLeases::drop_parked_will`]).
    pub id: String,
    /// The will as it was taken from its dead incarnation.
    pub will: TakenWill,
}

impl fmt::Debug for ParkedWill {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParkedWill")
            .field("id", &self.id)
            .field("will", &self.will)
            .finish()
    }
}

impl NodeLeases {
    /// Parks `will` until `due_ms` (unix ms). Parking the same will (tenant, client key and
    /// token) again replaces it.
    pub async fn park_will(&self, will: &TakenWill, due_ms: u64) -> Result<(), RedisStateError> {
        let keys = self.namespace.delayed_wills();
        let id = parked_id(&will.tenant, &will.client_key, will.token);
        let mut conn = self.conn.clone();
        let _: () = redis::pipe()
            .atomic()
            .cmd("HSET")
            .arg(&keys.records)
            .arg(&id)
            .arg(encode_value(will.token, &will.record))
            .ignore()
            .cmd("ZADD")
            .arg(&keys.due)
            .arg(due_ms)
            .arg(&id)
            .ignore()
            .query_async(&mut conn)
            .await
            .map_err(RedisStateError::command("delayed will park"))?;
        Ok(())
    }

    /// Claims up to `limit` parked wills due by `now_ms`, for `claim`: until it runs out, no
    /// other caller gets them; after it, they are due again unless dropped. An entry this
    /// crate did not write is dropped with a warning.
    pub async fn claim_due_wills(
        &self,
        now_ms: u64,
        limit: usize,
        claim: Duration,
    ) -> Result<Vec<ParkedWill>, RedisStateError> {
        let keys = self.namespace.delayed_wills();
        let mut invocation = CLAIM.prepare_invoke();
        invocation
            .key(&keys.due)
            .key(&keys.records)
            .arg(now_ms)
            .arg(now_ms.saturating_add(millis(claim)?))
            .arg(limit);
        let claimed: Vec<(String, Vec<u8>)> = self.run(&invocation, "delayed will claim").await?;
        let mut wills = Vec::with_capacity(claimed.len());
        for (id, value) in claimed {
            match decode_parked(&id, value) {
                Some(will) => wills.push(ParkedWill { id, will }),
                None => {
                    tracing::warn!(id, "dropping a delayed will entry this crate did not write");
                    self.drop_parked_will(&id).await?;
                }
            }
        }
        Ok(wills)
    }

    /// Removes a parked will (published, or cancelled by its client reconnecting).
    pub async fn drop_parked_will(&self, id: &str) -> Result<(), RedisStateError> {
        let keys = self.namespace.delayed_wills();
        let mut conn = self.conn.clone();
        let _: () = redis::pipe()
            .atomic()
            .cmd("ZREM")
            .arg(&keys.due)
            .arg(id)
            .ignore()
            .cmd("HDEL")
            .arg(&keys.records)
            .arg(id)
            .ignore()
            .query_async(&mut conn)
            .await
            .map_err(RedisStateError::command("delayed will drop"))?;
        Ok(())
    }

    /// How many wills are parked (due or not).
    pub async fn parked_wills(&self) -> Result<u64, RedisStateError> {
        let keys = self.namespace.delayed_wills();
        let mut conn = self.conn.clone();
        redis::cmd("ZCARD")
            .arg(&keys.due)
            .query_async(&mut conn)
            .await
            .map_err(RedisStateError::command("delayed will count"))
    }
}

/// The id of a parked will: token, tenant and client key (a tenant id has no `/`).
fn parked_id(tenant: &TenantId, client_key: &str, token: u64) -> String {
    format!("{token:016x}/{}/{client_key}", tenant.as_str())
}

/// A parked will back, if `id` and `value` have the shape [`NodeLeases::park_will`] writes.
fn decode_parked(id: &str, mut value: Vec<u8>) -> Option<TakenWill> {
    let (token_hex, rest) = id.split_once('/')?;
    let (tenant, client_key) = rest.split_once('/')?;
    let token = u64::from_be_bytes(value.get(..TOKEN_LEN)?.try_into().ok()?);
    if u64::from_str_radix(token_hex, 16).ok()? != token {
        return None;
    }
    let record = Bytes::from(value.split_off(TOKEN_LEN));
    Some(TakenWill {
        tenant: TenantId::new(tenant).ok()?,
        client_key: client_key.to_owned(),
        record,
        token,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_parked_will_decodes_to_what_was_parked() {
        let tenant = TenantId::new("acme").unwrap();
        let id = parked_id(&tenant, "dev/1", 42);
        let will = decode_parked(&id, encode_value(42, b"will")).unwrap();
        assert_eq!(will.tenant, tenant);
        assert_eq!(will.client_key, "dev/1");
        assert_eq!(will.token, 42);
        assert_eq!(&will.record[..], b"will");
    }

    #[test]
    fn foreign_or_inconsistent_entries_do_not_decode() {
        let tenant = TenantId::new("acme").unwrap();
        let id = parked_id(&tenant, "x", 7);
        assert!(decode_parked(&id, encode_value(8, b"r")).is_none());
        assert!(decode_parked(&id, vec![0; 7]).is_none());
        assert!(decode_parked("nope", encode_value(7, b"r")).is_none());
        assert!(decode_parked("zz/acme/x", encode_value(7, b"r")).is_none());
    }
}
