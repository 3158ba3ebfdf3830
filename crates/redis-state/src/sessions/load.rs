//! Reading the claim script's reply (see [`scripts::CLAIM`](super::scripts::CLAIM)) back into a
//! [`Claim`], defensively: whatever is stored, a field that does not parse is a
//! [`RedisStateError::CorruptSession`] naming the key and field, never a panic.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use bytes::Bytes;
use redis::Value;
use stratus_model::TenantId;

use super::{Claim, SessionLoadLimits};
use crate::error::RedisStateError;
use crate::keys::SessionKeys;

/// The operation named in errors.
const OPERATION: &str = "session claim";

/// A persistent session as stored, returned by a resuming claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSessionState {
    /// The session expiry interval, seconds.
    pub expiry_secs: u32,
    /// The next packet id the session uses.
    pub next_packet_id: u16,
    /// The stream sequence the session has consumed up to (0 when none was stored).
    pub cursor: u64,
    /// When the client went offline, unix ms; `None` when the previous owner never marked it
    /// offline (it crashed, or the client moved while connected).
    pub offline_at_ms: Option<u64>,
    /// Subscriptions as (filter, record), sorted by filter.
    pub subscriptions: Vec<(String, Bytes)>,
    /// Queued and in-flight messages, sorted by seq ascending.
    pub messages: Vec<StoredSessionMessage>,
    /// Incoming QoS 2 packet ids awaiting PUBREL, sorted.
    pub incoming_qos2: Vec<u16>,
}

/// One queued or in-flight message of a stored session.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredSessionMessage {
    /// Its sequence in the session.
    pub seq: u64,
    /// The record as written.
    pub record: Bytes,
    /// Its delivery state, if one was written.
    pub state: Option<Bytes>,
}

impl fmt::Debug for StoredSessionMessage {
    /// The record carries a payload: only its length is shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredSessionMessage")
            .field("seq", &self.seq)
            .field("record_len", &self.record.len())
            .field("state_len", &self.state.as_ref().map(Bytes::len))
            .finish()
    }
}

/// Who claimed, for error messages.
pub(super) struct ClaimContext<'a> {
    pub(super) tenant: &'a TenantId,
    pub(super) client_key: &'a str,
    pub(super) client_id: &'a str,
    pub(super) keys: &'a SessionKeys,
    pub(super) limits: SessionLoadLimits,
}

impl ClaimContext<'_> {
    fn corrupt(&self, key: &str, field: &[u8], reason: &'static str) -> RedisStateError {
        RedisStateError::CorruptSession {
            key: key.to_owned(),
            field: String::from_utf8_lossy(field).into_owned(),
            reason,
        }
    }
}

/// The claim script's reply as a [`Claim`], or the error it reports.
pub(super) fn decode_claim(reply: Value, cx: &ClaimContext<'_>) -> Result<Claim, RedisStateError> {
    let mut parts = array(reply)?.into_iter();
    let status = parts.next().and_then(bytes).unwrap_or_default();
    let mut next = || parts.next().unwrap_or(Value::Nil);
    match status.as_slice() {
        b"fresh" => Ok(Claim::Fresh),
        b"none" => Ok(Claim::Resumed(None)),
        b"fenced" => {
            let current = bytes(next()).unwrap_or_default();
            let current = parse(&current)
                .ok_or_else(|| cx.corrupt(&cx.keys.meta, b"token", "not a decimal u64"))?;
            Ok(Claim::Fenced { current })
        }
        b"corrupt" => {
            let field = bytes(next()).unwrap_or_default();
            let reason = if field == b"client_id" {
                "missing"
            } else {
                "not a decimal u64"
            };
            Err(cx.corrupt(&cx.keys.meta, &field, reason))
        }
        b"mismatch" => Err(RedisStateError::SessionClientMismatch {
            tenant: cx.tenant.as_str().to_owned(),
            client_key: cx.client_key.to_owned(),
            stored: String::from_utf8_lossy(&bytes(next()).unwrap_or_default()).into_owned(),
            requested: cx.client_id.to_owned(),
        }),
        b"too_large" => {
            let (which, count) = (int(next()), int(next()));
            let limits = cx.limits;
            let (what, limit) = match which {
                Some(1) => ("subscriptions", limits.max_subscriptions),
                Some(2) => ("messages", limits.max_messages),
                Some(3) => ("message states", limits.max_messages),
                Some(4) => ("incoming QoS 2 packet ids", limits.max_incoming_qos2),
                _ => return Err(unexpected("a too_large reply without a known limit")),
            };
            Err(RedisStateError::SessionTooLarge {
                tenant: cx.tenant.as_str().to_owned(),
                client_key: cx.client_key.to_owned(),
                what,
                count: count.and_then(|n| u64::try_from(n).ok()).unwrap_or(0),
                limit,
            })
        }
        b"resumed" => {
            let (meta, subs, msgs, mstate, q2in) = (next(), next(), next(), next(), next());
            let state = decode_state(cx, meta, subs, msgs, mstate, q2in)?;
            Ok(Claim::Resumed(Some(state)))
        }
        other => Err(unexpected(format!(
            "unknown status {:?}",
            String::from_utf8_lossy(other)
        ))),
    }
}

/// The resumed session from the script's five reply parts.
fn decode_state(
    cx: &ClaimContext<'_>,
    meta: Value,
    subs: Value,
    msgs: Value,
    mstate: Value,
    q2in: Value,
) -> Result<StoredSessionState, RedisStateError> {
    let keys = cx.keys;
    let mut fields = array(meta)?.into_iter().map(bytes);
    let mut field = |name: &'static str| -> Result<Option<Vec<u8>>, RedisStateError> {
        match fields.next() {
            Some(value) => Ok(value),
            None => Err(unexpected(format!("meta reply without {name}"))),
        }
    };
    let (expiry, next_pid, cursor, offline_at) = (
        field("expiry")?,
        field("next_pid")?,
        field("cursor")?,
        field("offline_at")?,
    );
    let expiry_secs = meta_field(cx, "expiry", expiry, "not a u32 number of seconds")?
        .ok_or_else(|| cx.corrupt(&keys.meta, b"expiry", "missing"))?;
    let next_packet_id = meta_field(cx, "next_pid", next_pid, "not a u16 packet id")?
        .ok_or_else(|| cx.corrupt(&keys.meta, b"next_pid", "missing"))?;
    let cursor = meta_field(cx, "cursor", cursor, "not a u64 stream sequence")?.unwrap_or(0);
    let offline_at_ms = meta_field(cx, "offline_at", offline_at, "not a u64 unix ms time")?;

    let mut subscriptions = pairs(subs)?
        .into_iter()
        .map(|(filter, record)| match String::from_utf8(filter) {
            Ok(filter) if !filter.is_empty() => Ok((filter, Bytes::from(record))),
            Ok(_) => Err(cx.corrupt(&keys.subs, b"", "an empty filter")),
            Err(e) => Err(cx.corrupt(&keys.subs, e.as_bytes(), "a filter that is not UTF-8")),
        })
        .collect::<Result<Vec<_>, _>>()?;
    subscriptions.sort_by(|a, b| a.0.cmp(&b.0));

    let mut states = HashMap::new();
    for (seq, state) in pairs(mstate)? {
        let seq: u64 =
            parse(&seq).ok_or_else(|| cx.corrupt(&keys.mstate, &seq, "not a decimal sequence"))?;
        states.insert(seq, Bytes::from(state));
    }
    let mut messages = pairs(msgs)?
        .into_iter()
        .map(|(seq, record)| {
            let seq = parse(&seq)
                .ok_or_else(|| cx.corrupt(&keys.msgs, &seq, "not a decimal sequence"))?;
            Ok(StoredSessionMessage {
                seq,
                record: Bytes::from(record),
                state: states.remove(&seq),
            })
        })
        .collect::<Result<Vec<_>, RedisStateError>>()?;
    messages.sort_by_key(|m| m.seq);

    let mut incoming_qos2 = array(q2in)?
        .into_iter()
        .map(|member| {
            let member = bytes(member).unwrap_or_default();
            parse(&member).ok_or_else(|| cx.corrupt(&keys.q2in, &member, "not a u16 packet id"))
        })
        .collect::<Result<Vec<u16>, _>>()?;
    incoming_qos2.sort_unstable();

    Ok(StoredSessionState {
        expiry_secs,
        next_packet_id,
        cursor,
        offline_at_ms,
        subscriptions,
        messages,
        incoming_qos2,
    })
}

/// A meta field's number, `None` when absent.
fn meta_field<T: FromStr>(
    cx: &ClaimContext<'_>,
    name: &'static str,
    value: Option<Vec<u8>>,
    reason: &'static str,
) -> Result<Option<T>, RedisStateError> {
    value
        .map(|raw| parse(&raw).ok_or_else(|| cx.corrupt(&cx.keys.meta, name.as_bytes(), reason)))
        .transpose()
}

/// A decimal number of type `T`: ASCII digits only (no sign, no spaces), in range.
fn parse<T: FromStr>(raw: &[u8]) -> Option<T> {
    if raw.is_empty() || !raw.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(raw).ok()?.parse().ok()
}

/// The elements of an array reply.
fn array(value: Value) -> Result<Vec<Value>, RedisStateError> {
    match value {
        Value::Array(items) | Value::Set(items) => Ok(items),
        Value::Nil => Ok(Vec::new()),
        other => Err(unexpected(format!("expected an array, got {other:?}"))),
    }
}

/// A hash field and its value.
type HashEntry = (Vec<u8>, Vec<u8>);

/// A flat `[field, value, ...]` array as pairs.
fn pairs(value: Value) -> Result<Vec<HashEntry>, RedisStateError> {
    let items = array(value)?;
    if items.len() % 2 != 0 {
        return Err(unexpected("a hash reply with an odd number of elements"));
    }
    let mut pairs = Vec::with_capacity(items.len() / 2);
    let mut items = items.into_iter();
    while let (Some(field), Some(value)) = (items.next(), items.next()) {
        match (bytes(field), bytes(value)) {
            (Some(field), Some(value)) => pairs.push((field, value)),
            _ => return Err(unexpected("a hash reply with a non-string element")),
        }
    }
    Ok(pairs)
}

/// A string reply's bytes; `None` for nil or anything else.
fn bytes(value: Value) -> Option<Vec<u8>> {
    match value {
        Value::BulkString(bytes) => Some(bytes),
        Value::SimpleString(text) => Some(text.into_bytes()),
        _ => None,
    }
}

/// An integer reply.
fn int(value: Value) -> Option<i64> {
    match value {
        Value::Int(n) => Some(n),
        _ => None,
    }
}

fn unexpected(detail: impl Into<String>) -> RedisStateError {
    RedisStateError::unexpected(OPERATION, detail)
}
