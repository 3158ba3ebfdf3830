//! [`SessionWrite`]: one change to a stored session, its limits, and how a batch is encoded as
//! the arguments of the apply script (see [`scripts::APPLY`](super::scripts::APPLY)).

use std::fmt;

use bytes::Bytes;
use redis::ScriptInvocation;

use crate::error::RedisStateError;

/// Most writes in one [`apply`](super::SessionStore::apply) batch; callers batch far fewer
/// (about 256).
pub const MAX_SESSION_BATCH: usize = 1_000;

/// Largest subscription, message or message-state record, in bytes: an MQTT packet of the
/// largest size a Stratus edge accepts fits, with room for its envelope.
pub const MAX_SESSION_RECORD_LEN: usize = 300 * 1024;

/// Longest subscription filter, in bytes (an MQTT string holds at most 65,535).
pub const MAX_SESSION_FILTER_LEN: usize = 65_535;

/// One change to a stored session, applied in order with the rest of its batch.
#[derive(Clone, PartialEq, Eq)]
pub enum SessionWrite {
    /// Sets meta.expiry and meta.next_pid.
    Meta {
        /// The session expiry interval, seconds.
        expiry_secs: u32,
        /// The next packet id the session will use.
        next_packet_id: u16,
    },
    /// Online (`at_ms: None`): HDEL offline_at and PERSIST every key. Offline (`Some(at_ms)`):
    /// sets offline_at and PEXPIREAT every existing key of the session at
    /// `at_ms + expiry * 1000 + grace_ms` (expiry from meta, after earlier writes in the same
    /// batch). Every later `apply` batch on an offline session re-applies that PEXPIREAT to
    /// all existing keys at its end, so keys created later do not outlive it.
    Offline {
        /// When the client went offline, unix ms; `None`: it is online.
        at_ms: Option<u64>,
        /// Extra time before Redis drops the keys, so the session's owner expires it first.
        grace_ms: u64,
    },
    /// Stores (or replaces) the subscription to `filter`.
    PutSubscription {
        /// The subscription filter, 1 to [`MAX_SESSION_FILTER_LEN`] bytes.
        filter: String,
        /// The subscription record (opaque here), at most [`MAX_SESSION_RECORD_LEN`] bytes.
        record: Bytes,
    },
    /// Removes the subscription to `filter`, if any.
    DeleteSubscription {
        /// The subscription filter.
        filter: String,
    },
    /// HSET msgs seq record; if stream_seq is Some, cursor = max(cursor, stream_seq).
    PutMessage {
        /// The message's sequence in the session (orders the messages on load).
        seq: u64,
        /// The message record (opaque here), at most [`MAX_SESSION_RECORD_LEN`] bytes.
        record: Bytes,
        /// The stream sequence this message was read at, if it came from the stream.
        stream_seq: Option<u64>,
    },
    /// HSET mstate seq state (only if msgs has seq; otherwise ignored: the message was
    /// deleted).
    UpdateMessage {
        /// The message's sequence.
        seq: u64,
        /// Its delivery state (opaque here), at most [`MAX_SESSION_RECORD_LEN`] bytes.
        state: Bytes,
    },
    /// Removes the message and its state.
    DeleteMessage {
        /// The message's sequence.
        seq: u64,
    },
    /// cursor = max(cursor, stream_seq).
    Cursor {
        /// A stream sequence the session has consumed up to.
        stream_seq: u64,
    },
    /// Records an incoming QoS 2 packet id awaiting PUBREL.
    AddIncomingQos2 {
        /// The packet id.
        packet_id: u16,
    },
    /// Forgets an incoming QoS 2 packet id (PUBREL arrived).
    RemoveIncomingQos2 {
        /// The packet id.
        packet_id: u16,
    },
    /// Removes subs, msgs, mstate, q2in and meta fields other than token/client_id (a clean
    /// start of the same owner) and the meta key's TTL; keeps the token so later writes are
    /// still fenced.
    Clear,
}

impl fmt::Debug for SessionWrite {
    /// Records carry payloads: only their lengths are shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Meta {
                expiry_secs,
                next_packet_id,
            } => f
                .debug_struct("Meta")
                .field("expiry_secs", expiry_secs)
                .field("next_packet_id", next_packet_id)
                .finish(),
            Self::Offline { at_ms, grace_ms } => f
                .debug_struct("Offline")
                .field("at_ms", at_ms)
                .field("grace_ms", grace_ms)
                .finish(),
            Self::PutSubscription { filter, record } => f
                .debug_struct("PutSubscription")
                .field("filter", filter)
                .field("record_len", &record.len())
                .finish(),
            Self::DeleteSubscription { filter } => f
                .debug_struct("DeleteSubscription")
                .field("filter", filter)
                .finish(),
            Self::PutMessage {
                seq,
                record,
                stream_seq,
            } => f
                .debug_struct("PutMessage")
                .field("seq", seq)
                .field("record_len", &record.len())
                .field("stream_seq", stream_seq)
                .finish(),
            Self::UpdateMessage { seq, state } => f
                .debug_struct("UpdateMessage")
                .field("seq", seq)
                .field("state_len", &state.len())
                .finish(),
            Self::DeleteMessage { seq } => {
                f.debug_struct("DeleteMessage").field("seq", seq).finish()
            }
            Self::Cursor { stream_seq } => f
                .debug_struct("Cursor")
                .field("stream_seq", stream_seq)
                .finish(),
            Self::AddIncomingQos2 { packet_id } => f
                .debug_struct("AddIncomingQos2")
                .field("packet_id", packet_id)
                .finish(),
            Self::RemoveIncomingQos2 { packet_id } => f
                .debug_struct("RemoveIncomingQos2")
                .field("packet_id", packet_id)
                .finish(),
            Self::Clear => f.write_str("Clear"),
        }
    }
}

impl SessionWrite {
    /// Checks the limits; `Err` says what is wrong.
    fn check(&self) -> Result<(), String> {
        let check_record = |what: &str, record: &Bytes| {
            if record.len() > MAX_SESSION_RECORD_LEN {
                Err(format!(
                    "{what} of {} bytes exceeds the limit of {MAX_SESSION_RECORD_LEN} bytes",
                    record.len()
                ))
            } else {
                Ok(())
            }
        };
        match self {
            Self::PutSubscription { filter, record } => {
                check_filter(filter)?;
                check_record("subscription record", record)
            }
            Self::DeleteSubscription { filter } => check_filter(filter),
            Self::PutMessage { record, .. } => check_record("message record", record),
            Self::UpdateMessage { state, .. } => check_record("message state", state),
            Self::Meta { .. }
            | Self::Offline { .. }
            | Self::DeleteMessage { .. }
            | Self::Cursor { .. }
            | Self::AddIncomingQos2 { .. }
            | Self::RemoveIncomingQos2 { .. }
            | Self::Clear => Ok(()),
        }
    }

    /// Appends the op code and arguments the apply script reads.
    fn encode(&self, invocation: &mut ScriptInvocation<'_>) {
        let optional = |value: Option<u64>| value.map(|v| v.to_string()).unwrap_or_default();
        match self {
            Self::Meta {
                expiry_secs,
                next_packet_id,
            } => invocation.arg("M").arg(*expiry_secs).arg(*next_packet_id),
            Self::Offline { at_ms, grace_ms } => {
                invocation.arg("O").arg(optional(*at_ms)).arg(*grace_ms)
            }
            Self::PutSubscription { filter, record } => invocation
                .arg("S")
                .arg(filter.as_str())
                .arg(record.as_ref()),
            Self::DeleteSubscription { filter } => invocation.arg("s").arg(filter.as_str()),
            Self::PutMessage {
                seq,
                record,
                stream_seq,
            } => invocation
                .arg("P")
                .arg(*seq)
                .arg(record.as_ref())
                .arg(optional(*stream_seq)),
            Self::UpdateMessage { seq, state } => invocation.arg("U").arg(*seq).arg(state.as_ref()),
            Self::DeleteMessage { seq } => invocation.arg("D").arg(*seq),
            Self::Cursor { stream_seq } => invocation.arg("C").arg(*stream_seq),
            Self::AddIncomingQos2 { packet_id } => invocation.arg("Q").arg(*packet_id),
            Self::RemoveIncomingQos2 { packet_id } => invocation.arg("q").arg(*packet_id),
            Self::Clear => invocation.arg("X"),
        };
    }
}

/// A filter that fits a hash field and an MQTT string.
fn check_filter(filter: &str) -> Result<(), String> {
    if filter.is_empty() {
        return Err("a subscription filter cannot be empty".to_owned());
    }
    if filter.len() > MAX_SESSION_FILTER_LEN {
        return Err(format!(
            "a subscription filter of {} bytes exceeds the limit of {MAX_SESSION_FILTER_LEN} bytes",
            filter.len()
        ));
    }
    Ok(())
}

/// Checks every write of the batch, then appends them all to `invocation` (after the token).
/// Nothing is appended when any write is refused.
pub(super) fn encode_batch(
    writes: &[SessionWrite],
    invocation: &mut ScriptInvocation<'_>,
) -> Result<(), RedisStateError> {
    if writes.len() > MAX_SESSION_BATCH {
        return Err(RedisStateError::InvalidSessionWrite(format!(
            "{} writes exceed the limit of {MAX_SESSION_BATCH} per batch: split the batch",
            writes.len()
        )));
    }
    for (index, write) in writes.iter().enumerate() {
        write.check().map_err(|reason| {
            RedisStateError::InvalidSessionWrite(format!("write {index}: {reason}"))
        })?;
    }
    for write in writes {
        write.encode(invocation);
    }
    Ok(())
}
