//! Retained messages of one tenant (MQTT 5.0 section 3.3.1.3): one per topic, replaced by a newer
//! retained PUBLISH, cleared by an empty payload, indexed by topic levels so that a filter with a
//! literal prefix is answered without scanning the whole store. Count and bytes are capped.

use std::sync::Arc;

use stratus_topics::{TopicFilter, TopicName, TopicTree};
use tokio::time::Instant;

use super::message::Message;

/// Why a retained message was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RetainRefused {
    /// The tenant's retained-message count or byte quota is used up.
    QuotaExceeded,
}

/// The retained messages of one tenant.
#[derive(Debug, Default)]
pub(crate) struct RetainedStore {
    tree: TopicTree<Arc<Message>>,
    bytes: usize,
}

impl RetainedStore {
    /// Stores `msg` as the retained message of its topic (or clears it when the payload is empty).
    /// Returns whether anything changed.
    pub(crate) fn set(
        &mut self,
        msg: &Arc<Message>,
        max_count: usize,
        max_bytes: usize,
    ) -> Result<bool, RetainRefused> {
        if msg.payload.is_empty() {
            return Ok(self.clear(&msg.topic));
        }
        let existing = self.tree.get(&msg.topic);
        let is_new = existing.is_none();
        let old_weight = existing.map_or(0, |m| m.weight());
        if (is_new && self.tree.len() >= max_count)
            || self.bytes - old_weight + msg.weight() > max_bytes
        {
            return Err(RetainRefused::QuotaExceeded);
        }
        self.bytes = self.bytes - old_weight + msg.weight();
        self.tree.insert(&msg.topic, Arc::clone(msg));
        Ok(true)
    }

    /// Removes the retained message of `topic`; true if there was one.
    pub(crate) fn clear(&mut self, topic: &TopicName) -> bool {
        match self.tree.remove(topic) {
            Some(old) => {
                self.bytes -= old.weight();
                true
            }
            None => false,
        }
    }

    /// Every unexpired retained message matching `filter`; expired ones are reported in
    /// `expired` so the caller can remove them under a write lock.
    pub(crate) fn matching(
        &self,
        filter: &TopicFilter,
        now: Instant,
        out: &mut Vec<Arc<Message>>,
        expired: &mut Vec<TopicName>,
    ) {
        self.tree.for_each_match(filter, |topic, msg| {
            if msg.is_expired(now) {
                expired.push(topic.clone());
            } else {
                out.push(Arc::clone(msg));
            }
        });
    }

    /// Number of retained messages.
    pub(crate) fn len(&self) -> usize {
        self.tree.len()
    }
}
