//! The bytes a connection will write, in order, some of them held back until the store has
//! committed what they acknowledge (a PUBACK must not promise a message the store could still
//! lose). Once anything is held back, everything after it waits too, so the order of packets on
//! the wire is the order they were produced.
//!
//! The buffers live behind an allocation that exists only while something is pending: an idle
//! connection's output is a null pointer (8 bytes instead of about 130 with two empty buffers and
//! two empty queues inline), and the held-back part has an allocation of its own, made only by
//! connections whose acknowledgements wait for the store.

use std::collections::VecDeque;

use bytes::BytesMut;

use crate::store::Ticket;

/// Output buffer with a durability gate.
#[derive(Debug, Default)]
pub(crate) struct Output {
    /// `None` while nothing is pending (see [`Output::release_if_idle`]).
    buffers: Option<Box<Buffers>>,
}

#[derive(Debug, Default)]
struct Buffers {
    ready: BytesMut,
    /// `None` while nothing is held back.
    held: Option<Box<Held>>,
}

/// Output waiting for the store.
#[derive(Debug, Default)]
struct Held {
    bytes: BytesMut,
    /// Held chunks in order: the ticket each waits for, and its length.
    marks: VecDeque<(Ticket, usize)>,
    /// Tickets of held inbound QoS 1/2 acknowledgements, oldest first (they count against the
    /// client's receive maximum until released).
    acks: VecDeque<Ticket>,
}

impl Held {
    fn is_empty(&self) -> bool {
        self.bytes.is_empty() && self.marks.is_empty() && self.acks.is_empty()
    }
}

/// Capacity kept after a flush while the connection stays busy; larger buffers are released.
const RETAIN_CAPACITY: usize = 16 * 1024;

impl Output {
    fn buffers(&mut self) -> &mut Buffers {
        self.buffers.get_or_insert_with(Box::default)
    }

    fn held(&self) -> Option<&Held> {
        self.buffers.as_ref()?.held.as_deref()
    }

    /// Appends a packet that must not be written before `ticket` is committed.
    pub(crate) fn push(
        &mut self,
        ticket: Ticket,
        committed: Ticket,
        encode: impl FnOnce(&mut BytesMut),
    ) {
        let b = self.buffers();
        let waiting = b.held.as_ref().is_some_and(|h| !h.marks.is_empty());
        if !waiting && ticket <= committed {
            encode(&mut b.ready);
        } else {
            let h = b.held.get_or_insert_with(Box::default);
            let before = h.bytes.len();
            encode(&mut h.bytes);
            let len = h.bytes.len() - before;
            match h.marks.back_mut() {
                // Consecutive chunks waiting for an already-waiting ticket merge into one.
                Some((t, l)) if *t >= ticket => *l += len,
                _ => h.marks.push_back((ticket, len)),
            }
        }
    }

    /// Appends a packet after the ready bytes, ahead of anything held (used for the final
    /// DISCONNECT: held output is never written once the connection closes).
    pub(crate) fn push_final(&mut self, encode: impl FnOnce(&mut BytesMut)) {
        encode(&mut self.buffers().ready);
    }

    /// Counts an inbound QoS 1/2 acknowledgement held back until `ticket` is committed.
    pub(crate) fn hold_ack(&mut self, ticket: Ticket) {
        let b = self.buffers();
        b.held
            .get_or_insert_with(Box::default)
            .acks
            .push_back(ticket);
    }

    /// Inbound acknowledgements still held back.
    pub(crate) fn held_acks(&self) -> usize {
        self.held().map_or(0, |h| h.acks.len())
    }

    /// Moves every held chunk whose ticket is now committed to the ready bytes, and forgets the
    /// held acknowledgements it covers.
    pub(crate) fn release(&mut self, committed: Ticket) {
        let Some(b) = self.buffers.as_deref_mut() else {
            return;
        };
        let Some(h) = b.held.as_deref_mut() else {
            return;
        };
        let mut len = 0;
        while let Some(&(ticket, l)) = h.marks.front() {
            if ticket > committed {
                break;
            }
            len += l;
            h.marks.pop_front();
        }
        if len > 0 {
            let chunk = h.bytes.split_to(len);
            b.ready.extend_from_slice(&chunk);
            if h.bytes.is_empty() {
                h.bytes = BytesMut::new();
            }
        }
        while h.acks.front().is_some_and(|t| *t <= committed) {
            h.acks.pop_front();
        }
        if h.is_empty() {
            b.held = None;
        }
    }

    /// The oldest ticket still holding output back.
    pub(crate) fn waiting_for(&self) -> Option<Ticket> {
        self.held()?.marks.front().map(|(t, _)| *t)
    }

    /// Bytes ready to write.
    pub(crate) fn ready(&self) -> &[u8] {
        self.buffers.as_ref().map_or(&[], |b| &b.ready[..])
    }

    /// Marks `n` ready bytes as written.
    pub(crate) fn consume(&mut self, n: usize) {
        let Some(b) = self.buffers.as_deref_mut() else {
            return;
        };
        let _ = b.ready.split_to(n.min(b.ready.len()));
        if b.ready.is_empty() && b.ready.capacity() > RETAIN_CAPACITY {
            b.ready = BytesMut::new();
        }
    }

    /// Bytes produced and not yet written (ready or held).
    pub(crate) fn pending_bytes(&self) -> usize {
        self.buffers.as_ref().map_or(0, |b| {
            b.ready.len() + b.held.as_ref().map_or(0, |h| h.bytes.len())
        })
    }

    /// Frees the buffers when nothing is pending (called when the connection goes idle).
    pub(crate) fn release_if_idle(&mut self) {
        if self
            .buffers
            .as_ref()
            .is_some_and(|b| b.ready.is_empty() && b.held.is_none())
        {
            self.buffers = None;
        }
    }

    /// Drops all buffers (the connection is gone).
    pub(crate) fn release_memory(&mut self) {
        self.buffers = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_output_is_ready_at_once() {
        let mut o = Output::default();
        o.push(3, 5, |b| b.extend_from_slice(b"ab"));
        assert_eq!(o.ready(), b"ab");
    }

    #[test]
    fn held_output_keeps_later_output_behind_it_until_released() {
        let mut o = Output::default();
        o.push(7, 5, |b| b.extend_from_slice(b"x"));
        o.push(0, 5, |b| b.extend_from_slice(b"y"));
        o.push(9, 5, |b| b.extend_from_slice(b"z"));
        assert_eq!(o.ready(), b"");
        assert_eq!(o.waiting_for(), Some(7));
        o.release(8);
        assert_eq!(o.ready(), b"xy");
        o.release(9);
        assert_eq!(o.ready(), b"xyz");
        assert_eq!(o.waiting_for(), None);
        o.consume(3);
        assert_eq!(o.pending_bytes(), 0);
        o.release_if_idle();
        assert!(o.buffers.is_none());
    }

    #[test]
    fn held_acks_are_released_with_their_ticket_and_keep_the_buffers_until_then() {
        let mut o = Output::default();
        o.push(7, 5, |b| b.extend_from_slice(b"ack"));
        o.hold_ack(7);
        assert_eq!(o.held_acks(), 1);
        o.release(6);
        o.release_if_idle();
        assert_eq!(o.held_acks(), 1);
        o.release(7);
        assert_eq!(o.held_acks(), 0);
        assert_eq!(o.ready(), b"ack");
        o.consume(3);
        o.release_if_idle();
        assert!(o.buffers.is_none());
        assert_eq!(o.ready(), b"");
    }
}
