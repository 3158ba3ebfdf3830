//! The bytes a connection will write, in order, some of them held back until the store has
//! committed what they acknowledge (a PUBACK must not promise a message the store could still
//! lose). Once anything is held back, everything after it waits too, so the order of packets on
//! the wire is the order they were produced.

use std::collections::VecDeque;

use bytes::BytesMut;

use crate::store::Ticket;

/// Output buffer with a durability gate.
#[derive(Debug, Default)]
pub(crate) struct Output {
    ready: BytesMut,
    held: BytesMut,
    /// Held chunks in order: the ticket each waits for, and its length.
    marks: VecDeque<(Ticket, usize)>,
}

/// Capacity kept after a flush; larger buffers are released so idle connections hold nothing.
const RETAIN_CAPACITY: usize = 16 * 1024;

impl Output {
    /// Appends a packet that must not be written before `ticket` is committed.
    pub(crate) fn push(
        &mut self,
        ticket: Ticket,
        committed: Ticket,
        encode: impl FnOnce(&mut BytesMut),
    ) {
        if self.marks.is_empty() && ticket <= committed {
            encode(&mut self.ready);
        } else {
            let before = self.held.len();
            encode(&mut self.held);
            let len = self.held.len() - before;
            match self.marks.back_mut() {
                // Consecutive chunks waiting for an already-waiting ticket merge into one.
                Some((t, l)) if *t >= ticket => *l += len,
                _ => self.marks.push_back((ticket, len)),
            }
        }
    }

    /// Appends a packet after the ready bytes, ahead of anything held (used for the final
    /// DISCONNECT: held output is never written once the connection closes).
    pub(crate) fn push_final(&mut self, encode: impl FnOnce(&mut BytesMut)) {
        encode(&mut self.ready);
    }

    /// Moves every held chunk whose ticket is now committed to the ready bytes.
    pub(crate) fn release(&mut self, committed: Ticket) {
        let mut len = 0;
        while let Some(&(ticket, l)) = self.marks.front() {
            if ticket > committed {
                break;
            }
            len += l;
            self.marks.pop_front();
        }
        if len > 0 {
            let chunk = self.held.split_to(len);
            self.ready.extend_from_slice(&chunk);
            if self.held.is_empty() {
                self.held = BytesMut::new();
            }
        }
    }

    /// The oldest ticket still holding output back.
    pub(crate) fn waiting_for(&self) -> Option<Ticket> {
        self.marks.front().map(|(t, _)| *t)
    }

    /// Bytes ready to write.
    pub(crate) fn ready(&self) -> &[u8] {
        &self.ready
    }

    /// Marks `n` ready bytes as written.
    pub(crate) fn consume(&mut self, n: usize) {
        let _ = self.ready.split_to(n.min(self.ready.len()));
        if self.ready.is_empty() && self.ready.capacity() > RETAIN_CAPACITY {
            self.ready = BytesMut::new();
        }
    }

    /// Bytes produced and not yet written (ready or held).
    pub(crate) fn pending_bytes(&self) -> usize {
        self.ready.len() + self.held.len()
    }

    /// Drops all buffers (the connection is gone).
    pub(crate) fn release_memory(&mut self) {
        *self = Self::default();
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
    }
}
