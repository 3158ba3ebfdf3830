//! Access rules and their evaluation. Rules are ordered by priority (higher first); at equal
//! priority a deny rule is considered before an allow rule. The first rule that applies decides;
//! when none does, the tenant's default effect decides. Every decision names what decided it.

use serde::{Deserialize, Serialize};
use stratus_topics::{TopicFilter, TopicName};

use crate::Identity;
use crate::template::TopicTemplate;

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    /// Permit the action.
    Allow,
    /// Refuse the action.
    Deny,
}

/// What a rule governs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Publishing to matching topics.
    Publish,
    /// Subscribing to matching filters and receiving matching messages.
    Subscribe,
    /// Both.
    All,
}

impl Action {
    fn includes(self, asked: Action) -> bool {
        self == Action::All || self == asked
    }
}

/// One access rule of a tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclRule {
    /// Identifier (the control plane's id), reported when the rule decides.
    pub id: String,
    /// Allow or deny.
    pub effect: Effect,
    /// What it governs.
    pub action: Action,
    /// The topic filter, with placeholders.
    pub filter: TopicTemplate,
    /// Only for this user name, if set.
    pub username: Option<String>,
    /// Only for this client id, if set.
    pub client_id: Option<String>,
    /// Higher runs first.
    pub priority: i32,
}

impl AclRule {
    fn applies_to(&self, who: &Identity<'_>, action: Action) -> bool {
        self.action.includes(action)
            && self
                .username
                .as_deref()
                .is_none_or(|u| who.username == Some(u))
            && self.client_id.as_deref().is_none_or(|c| who.client_id == c)
    }
}

/// What decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecidedBy {
    /// A rule, by id.
    Rule(String),
    /// No rule applied: the tenant's default effect.
    TenantDefault,
}

/// A decision and its reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The effect.
    pub effect: Effect,
    /// What decided it.
    pub decided_by: DecidedBy,
}

impl Decision {
    /// True for allow.
    pub fn is_allowed(&self) -> bool {
        self.effect == Effect::Allow
    }
}

/// The rules of one tenant with its default effect, ready to evaluate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicySet {
    rules: Vec<AclRule>,
    default: Effect,
}

impl PolicySet {
    /// Orders `rules` for evaluation.
    pub fn new(mut rules: Vec<AclRule>, default: Effect) -> Self {
        rules.sort_by(|a, b| {
            b.priority
                .cmp(&a.priority)
                .then_with(|| (a.effect == Effect::Allow).cmp(&(b.effect == Effect::Allow)))
                .then_with(|| a.id.cmp(&b.id))
        });
        Self { rules, default }
    }

    /// Allows everything (a tenant without rules whose default is allow).
    pub fn allow_all() -> Self {
        Self {
            rules: Vec::new(),
            default: Effect::Allow,
        }
    }

    /// The tenant's default effect.
    pub fn default_effect(&self) -> Effect {
        self.default
    }

    /// The rules in evaluation order.
    pub fn rules(&self) -> &[AclRule] {
        &self.rules
    }

    /// True when every decision is "allow" without looking at topics (no rules, default allow):
    /// the edge can skip checks on the hot path.
    pub fn allows_everything(&self) -> bool {
        self.rules.is_empty() && self.default == Effect::Allow
    }

    fn decide(
        &self,
        who: &Identity<'_>,
        action: Action,
        applies: impl Fn(&AclRule) -> bool,
    ) -> Decision {
        self.decide_at(who, action, applies).0
    }

    /// The decision and the position of the deciding rule (`rules.len()` for the default).
    fn decide_at(
        &self,
        who: &Identity<'_>,
        action: Action,
        applies: impl Fn(&AclRule) -> bool,
    ) -> (Decision, usize) {
        for (i, rule) in self.rules.iter().enumerate() {
            if rule.applies_to(who, action) && applies(rule) {
                let decision = Decision {
                    effect: rule.effect,
                    decided_by: DecidedBy::Rule(rule.id.clone()),
                };
                return (decision, i);
            }
        }
        (
            Decision {
                effect: self.default,
                decided_by: DecidedBy::TenantDefault,
            },
            self.rules.len(),
        )
    }

    /// May `who` publish to `topic`?
    pub fn check_publish(&self, who: &Identity<'_>, topic: &TopicName) -> Decision {
        self.decide(who, Action::Publish, |r| r.filter.matches_topic(topic, who))
    }

    /// May `who` receive a message on `topic` (retained delivery, and deliveries on subscriptions
    /// that overlap a deny rule)?
    pub fn check_receive(&self, who: &Identity<'_>, topic: &TopicName) -> Decision {
        self.decide(who, Action::Subscribe, |r| {
            r.filter.matches_topic(topic, who)
        })
    }

    /// May `who` subscribe to `filter`? A rule applies when its filter covers every topic of
    /// `filter`. The second value is true when some deny rule overlaps `filter` without covering
    /// it: the subscription is allowed, but each delivery must then be checked with
    /// [`PolicySet::check_receive`].
    pub fn check_subscribe(&self, who: &Identity<'_>, filter: &TopicFilter) -> (Decision, bool) {
        let (decision, at) =
            self.decide_at(who, Action::Subscribe, |r| r.filter.covers(filter, who));
        // Only a deny rule evaluated before the deciding one can refuse a topic of the filter at
        // delivery time (the deciding rule matches every topic of the filter).
        let partial_deny = decision.is_allowed()
            && self.rules[..at].iter().any(|r| {
                r.effect == Effect::Deny
                    && r.applies_to(who, Action::Subscribe)
                    && r.filter.overlaps(filter, who)
            });
        (decision, partial_deny)
    }
}
