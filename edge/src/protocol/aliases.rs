//! MQTT 5.0 topic aliases (section 3.3.2.3.4), both directions, scoped to one connection.
//!
//! Inbound: the client maps aliases 1..=our maximum to topics. Outbound: we assign aliases to the
//! topics we send most recently, up to the smaller of the client's maximum and our own cap,
//! replacing the oldest assignment when full.

use std::collections::HashMap;

use stratus_topics::TopicName;

/// Aliases the client set towards us. Allocated on first use only.
#[derive(Debug, Default)]
pub(crate) struct InboundAliases {
    // Boxed: an idle connection carries 8 bytes here instead of an empty map's 48.
    #[allow(clippy::box_collection)]
    map: Option<Box<HashMap<u16, TopicName>>>,
}

impl InboundAliases {
    /// Records `alias` -> `topic`.
    pub(crate) fn set(&mut self, alias: u16, topic: TopicName) {
        self.map
            .get_or_insert_with(Default::default)
            .insert(alias, topic);
    }

    /// The topic of `alias`, if the client set it.
    pub(crate) fn get(&self, alias: u16) -> Option<&TopicName> {
        self.map.as_ref().and_then(|m| m.get(&alias))
    }
}

/// Aliases we assign towards the client. Allocated on first use only; the maximum is passed to
/// every call (it is fixed for the connection) rather than kept here.
#[derive(Debug, Default)]
pub(crate) struct OutboundAliases {
    state: Option<Box<OutboundState>>,
}

#[derive(Debug, Default)]
struct OutboundState {
    by_topic: HashMap<TopicName, u16>,
    by_alias: Vec<TopicName>,
    next_victim: usize,
}

/// How to send a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AliasUse {
    /// No alias: send the topic name.
    None,
    /// Send the topic name and establish this alias.
    Establish(u16),
    /// Send an empty topic name and this alias.
    Reuse(u16),
}

impl OutboundAliases {
    /// Chooses how to send `topic`, with aliases up to `maximum` (0 turns them off).
    pub(crate) fn resolve(&mut self, topic: &TopicName, maximum: u16) -> AliasUse {
        if maximum == 0 {
            return AliasUse::None;
        }
        let st = self.state.get_or_insert_with(Default::default);
        if let Some(&alias) = st.by_topic.get(topic) {
            return AliasUse::Reuse(alias);
        }
        if st.by_alias.len() < usize::from(maximum) {
            st.by_alias.push(topic.clone());
            let alias = u16::try_from(st.by_alias.len()).unwrap_or(maximum);
            st.by_topic.insert(topic.clone(), alias);
            return AliasUse::Establish(alias);
        }
        let victim = st.next_victim % st.by_alias.len();
        st.next_victim = victim + 1;
        let old = std::mem::replace(&mut st.by_alias[victim], topic.clone());
        st.by_topic.remove(&old);
        let alias = u16::try_from(victim + 1).unwrap_or(maximum);
        st.by_topic.insert(topic.clone(), alias);
        AliasUse::Establish(alias)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> TopicName {
        TopicName::try_from(s).unwrap()
    }

    #[test]
    fn outbound_aliases_are_established_then_reused_then_recycled() {
        let mut a = OutboundAliases::default();
        assert_eq!(a.resolve(&t("a"), 2), AliasUse::Establish(1));
        assert_eq!(a.resolve(&t("a"), 2), AliasUse::Reuse(1));
        assert_eq!(a.resolve(&t("b"), 2), AliasUse::Establish(2));
        assert_eq!(a.resolve(&t("c"), 2), AliasUse::Establish(1));
        assert_eq!(a.resolve(&t("a"), 2), AliasUse::Establish(2));
        assert_eq!(a.resolve(&t("c"), 2), AliasUse::Reuse(1));
    }

    #[test]
    fn outbound_aliases_are_off_when_the_client_allows_none() {
        let mut a = OutboundAliases::default();
        assert_eq!(a.resolve(&t("a"), 0), AliasUse::None);
        assert!(a.state.is_none());
    }

    #[test]
    fn inbound_aliases_map_and_replace() {
        let mut a = InboundAliases::default();
        assert!(a.get(1).is_none());
        a.set(1, t("x"));
        a.set(1, t("y"));
        assert_eq!(a.get(1), Some(&t("y")));
    }
}
