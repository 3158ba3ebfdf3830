//! Tickets completed out of order, published in order: the commit position of the clustered
//! shape, where a ticket stands for an asynchronous write elsewhere (a JetStream publish
//! acknowledged, a Redis write applied, a NATS subscription registered). The commit position is
//! the highest ticket such that it and every ticket before it completed; output held behind a
//! ticket is released only then, so acknowledgements still leave in the order they were produced.

use std::collections::BTreeSet;

use parking_lot::Mutex;

use super::{CommitState, Ticket};

/// Reserved and completed tickets.
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    state: Mutex<TrackerState>,
}

#[derive(Debug, Default)]
struct TrackerState {
    /// The last ticket handed out.
    last: Ticket,
    /// Every ticket up to this one completed.
    committed: Ticket,
    /// Completed tickets above `committed`.
    done: BTreeSet<Ticket>,
}

impl Tracker {
    /// A new ticket, committed once [`Tracker::complete`] was called for it and every earlier
    /// one.
    pub(crate) fn reserve(&self) -> Ticket {
        let mut st = self.state.lock();
        st.last += 1;
        st.last
    }

    /// Records `ticket` as complete and publishes the new commit position when it moved.
    pub(crate) fn complete(&self, ticket: Ticket, commit: &CommitState) {
        let moved_to = {
            let mut st = self.state.lock();
            if ticket <= st.committed || ticket > st.last {
                return;
            }
            st.done.insert(ticket);
            let before = st.committed;
            while let Some(&next) = st.done.first() {
                if next != st.committed + 1 {
                    break;
                }
                st.done.pop_first();
                st.committed = next;
            }
            (st.committed != before).then_some(st.committed)
        };
        if let Some(committed) = moved_to {
            commit.publish(committed);
        }
    }

    /// Tickets reserved and not yet committed.
    #[cfg(test)]
    pub(crate) fn outstanding(&self) -> u64 {
        let st = self.state.lock();
        st.last - st.committed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    #[test]
    fn commit_position_moves_only_over_contiguous_completions() {
        let commit = CommitState::default();
        let t = Tracker::default();
        let (a, b, c) = (t.reserve(), t.reserve(), t.reserve());
        t.complete(b, &commit);
        assert_eq!(commit.committed.load(Ordering::Acquire), 0);
        t.complete(c, &commit);
        assert_eq!(commit.committed.load(Ordering::Acquire), 0);
        assert_eq!(t.outstanding(), 3);
        t.complete(a, &commit);
        assert_eq!(commit.committed.load(Ordering::Acquire), 3);
        assert_eq!(t.outstanding(), 0);
    }

    #[test]
    fn unknown_and_repeated_completions_are_ignored() {
        let commit = CommitState::default();
        let t = Tracker::default();
        let a = t.reserve();
        t.complete(a + 5, &commit);
        t.complete(a, &commit);
        t.complete(a, &commit);
        assert_eq!(commit.committed.load(Ordering::Acquire), 1);
        assert_eq!(t.outstanding(), 0);
    }
}
