//! Dead-hand wills: each incarnation registers the will of every client it serves, so that if
//! it dies a reaper can take them over.
//!
//! All wills of one incarnation live in one hash (`{ns}:wills:{<node>:<incarnation>}`), field
//! `<tenant>/<client key>` (a tenant id has no `/`), value the fencing token as 8 big-endian
//! bytes followed by the will record. A client that moved to another edge may leave a stale
//! will behind on a dead one; its token no longer matches the session's, which is how the
//! reaper tells.

use std::fmt;
use std::sync::LazyLock;

use bytes::Bytes;
use redis::Script;
use stratus_model::TenantId;

use super::{Lease, NodeLeases};
use crate::error::RedisStateError;

/// Wills one take script removes and returns at most.
const TAKE_PAGE: usize = 256;

/// Length of the token prefix of a stored will.
pub(super) const TOKEN_LEN: usize = 8;

/// `KEYS = [wills]`, `ARGV = [count]` → flat `[field, value, ...]` of up to `count` wills, which
/// it deletes: each will is returned to exactly one caller.
static TAKE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local picked = redis.call('HRANDFIELD', KEYS[1], ARGV[1], 'WITHVALUES')
for i = 1, #picked, 2 do
  redis.call('HDEL', KEYS[1], picked[i])
end
return picked
"#,
    )
});

/// A will taken from a dead incarnation.
#[derive(Clone, PartialEq, Eq)]
pub struct TakenWill {
    /// The client's tenant.
    pub tenant: TenantId,
    /// The client key the will was registered under.
    pub client_key: String,
    /// The will record as registered.
    pub record: Bytes,
    /// The session token when the will was registered; publish only if it is still current.
    pub token: u64,
}

impl fmt::Debug for TakenWill {
    /// The record carries a payload: only its length is shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TakenWill")
            .field("tenant", &self.tenant)
            .field("client_key", &self.client_key)
            .field("record_len", &self.record.len())
            .field("token", &self.token)
            .finish()
    }
}

impl NodeLeases {
    /// Registers (or replaces) the will of `client_key` in `tenant`, served by `owner`.
    pub async fn put_will(
        &self,
        owner: &Lease,
        tenant: &TenantId,
        client_key: &str,
        will_record: &[u8],
        token: u64,
    ) -> Result<(), RedisStateError> {
        let wills = self.namespace.incarnation(&owner.member()?).wills;
        let value = encode_value(token, will_record);
        let mut conn = self.conn.clone();
        let _: i64 = redis::cmd("HSET")
            .arg(&wills)
            .arg(field(tenant, client_key))
            .arg(value)
            .query_async(&mut conn)
            .await
            .map_err(RedisStateError::command("will put"))?;
        Ok(())
    }

    /// Removes the will of `client_key` in `tenant` from `owner`'s registry (clean
    /// DISCONNECT, or the will was published).
    pub async fn delete_will(
        &self,
        owner: &Lease,
        tenant: &TenantId,
        client_key: &str,
    ) -> Result<(), RedisStateError> {
        let wills = self.namespace.incarnation(&owner.member()?).wills;
        let mut conn = self.conn.clone();
        let _: i64 = redis::cmd("HDEL")
            .arg(&wills)
            .arg(field(tenant, client_key))
            .query_async(&mut conn)
            .await
            .map_err(RedisStateError::command("will delete"))?;
        Ok(())
    }

    /// Removes and returns every will registered under `dead`, in pages of a bounded size,
    /// each page atomically: with concurrent callers every will is returned exactly once.
    /// An entry this crate did not write is dropped with a warning.
    pub async fn take_wills(&self, dead: &Lease) -> Result<Vec<TakenWill>, RedisStateError> {
        let wills = self.namespace.incarnation(&dead.member()?).wills;
        let mut taken = Vec::new();
        loop {
            let mut invocation = TAKE.prepare_invoke();
            invocation.key(&wills).arg(TAKE_PAGE);
            let mut conn = self.conn.clone();
            let page: Vec<(Vec<u8>, Vec<u8>)> = invocation
                .invoke_async(&mut conn)
                .await
                .map_err(RedisStateError::command("will take"))?;
            if page.is_empty() {
                return Ok(taken);
            }
            for (field, value) in page {
                match decode(&field, value) {
                    Some(will) => taken.push(will),
                    None => tracing::warn!(
                        field = %String::from_utf8_lossy(&field),
                        "dropping a will registry entry this crate did not write"
                    ),
                }
            }
        }
    }
}

/// A stored will: the token as 8 big-endian bytes, then the record.
pub(super) fn encode_value(token: u64, record: &[u8]) -> Vec<u8> {
    let mut value = Vec::with_capacity(TOKEN_LEN + record.len());
    value.extend_from_slice(&token.to_be_bytes());
    value.extend_from_slice(record);
    value
}

/// The hash field of a client's will.
fn field(tenant: &TenantId, client_key: &str) -> String {
    format!("{}/{client_key}", tenant.as_str())
}

/// A stored will back as a [`TakenWill`], if it has the shape [`NodeLeases::put_will`] writes.
fn decode(field: &[u8], mut value: Vec<u8>) -> Option<TakenWill> {
    let field = std::str::from_utf8(field).ok()?;
    let (tenant, client_key) = field.split_once('/')?;
    let tenant = TenantId::new(tenant).ok()?;
    let token = u64::from_be_bytes(value.get(..TOKEN_LEN)?.try_into().ok()?);
    let record = Bytes::from(value.split_off(TOKEN_LEN));
    Some(TakenWill {
        tenant,
        client_key: client_key.to_owned(),
        record,
        token,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_wills_decode_to_what_was_put() {
        let tenant = TenantId::new("acme").unwrap();
        let mut value = 42_u64.to_be_bytes().to_vec();
        value.extend_from_slice(b"will");
        let will = decode(field(&tenant, "dev/1").as_bytes(), value).unwrap();
        assert_eq!(will.tenant, tenant);
        assert_eq!(will.client_key, "dev/1");
        assert_eq!(&will.record[..], b"will");
        assert_eq!(will.token, 42);
    }

    #[test]
    fn foreign_entries_do_not_decode() {
        assert!(decode(b"no-slash", vec![0; 8]).is_none());
        assert!(decode(b"Bad Tenant/x", vec![0; 8]).is_none());
        assert!(decode(b"acme/x", vec![0; 7]).is_none());
    }
}
