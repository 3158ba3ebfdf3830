//! Shared subscription groups (`$share/{group}/{filter}`, MQTT 5.0 section 4.8.2, also offered to
//! 3.1.1 clients): each message matching the filter goes to one member, chosen round-robin among
//! the members whose connection is attached, falling back to an offline persistent member.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;
use stratus_codec::SubscriptionOptions;

use super::session::{Session, SessionId};

/// One shared subscription group of one tenant.
#[derive(Debug)]
pub(crate) struct SharedGroup {
    members: Mutex<Vec<GroupMember>>,
    cursor: AtomicUsize,
}

/// A session in a group, with the options it subscribed with.
#[derive(Debug, Clone)]
pub(crate) struct GroupMember {
    /// The member's session.
    pub(crate) session: Arc<Session>,
    /// Its subscription options.
    pub(crate) options: SubscriptionOptions,
    /// Its subscription identifier.
    pub(crate) id: Option<NonZeroU32>,
}

impl SharedGroup {
    /// An empty group.
    pub(crate) fn new() -> Self {
        Self {
            members: Mutex::new(Vec::new()),
            cursor: AtomicUsize::new(0),
        }
    }

    /// Adds or updates a member.
    pub(crate) fn upsert(&self, member: GroupMember) {
        let mut members = self.members.lock();
        match members
            .iter_mut()
            .find(|m| m.session.id == member.session.id)
        {
            Some(existing) => *existing = member,
            None => members.push(member),
        }
    }

    /// Removes a member; returns true when the group is now empty.
    pub(crate) fn remove(&self, session: SessionId) -> bool {
        let mut members = self.members.lock();
        members.retain(|m| m.session.id != session);
        members.is_empty()
    }

    /// Members in dispatch order for the next message: attached members first (starting at the
    /// round-robin cursor), then the others. `exclude` skips one session (the one that left).
    pub(crate) fn candidates(&self, exclude: Option<SessionId>) -> Vec<GroupMember> {
        let members = self.members.lock();
        let n = members.len();
        if n == 0 {
            return Vec::new();
        }
        let start = self.cursor.fetch_add(1, Ordering::Relaxed) % n;
        let mut online = Vec::with_capacity(n);
        let mut offline = Vec::new();
        for i in 0..n {
            let m = &members[(start + i) % n];
            if Some(m.session.id) == exclude {
                continue;
            }
            if m.session.state.lock().attachment.is_some() {
                online.push(m.clone());
            } else {
                offline.push(m.clone());
            }
        }
        online.extend(offline);
        online
    }
}
