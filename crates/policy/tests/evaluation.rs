//! Rule evaluation: priority, deny before allow at equal priority, scoping to a user name or
//! client id, the tenant default, and what decided.
#![allow(clippy::unwrap_used)]

use stratus_policy::{AclRule, Action, DecidedBy, Effect, Identity, PolicySet, TopicTemplate};
use stratus_topics::{TopicFilter, TopicName};

fn rule(id: &str, effect: Effect, action: Action, filter: &str, priority: i32) -> AclRule {
    AclRule {
        id: id.to_owned(),
        effect,
        action,
        filter: TopicTemplate::parse(filter).unwrap(),
        username: None,
        client_id: None,
        priority,
    }
}

fn me() -> Identity<'static> {
    Identity {
        tenant: "acme",
        client_id: "c1",
        username: Some("bob"),
    }
}

fn topic(s: &str) -> TopicName {
    TopicName::try_from(s).unwrap()
}

fn filter(s: &str) -> TopicFilter {
    TopicFilter::try_from(s).unwrap()
}

#[test]
fn no_matching_rule_falls_back_to_the_tenant_default() {
    let deny = PolicySet::new(vec![], Effect::Deny);
    let d = deny.check_publish(&me(), &topic("a"));
    assert_eq!(
        (d.effect, d.decided_by),
        (Effect::Deny, DecidedBy::TenantDefault)
    );
    assert!(
        PolicySet::allow_all()
            .check_publish(&me(), &topic("a"))
            .is_allowed()
    );
    assert!(PolicySet::allow_all().allows_everything());
}

#[test]
fn deny_wins_over_allow_at_equal_priority_and_higher_priority_wins() {
    let rules = vec![
        rule("allow-all", Effect::Allow, Action::All, "#", 0),
        rule("deny-secret", Effect::Deny, Action::Publish, "secret/#", 0),
        rule(
            "allow-secret-ops",
            Effect::Allow,
            Action::Publish,
            "secret/ops",
            10,
        ),
    ];
    let set = PolicySet::new(rules, Effect::Deny);
    let d = set.check_publish(&me(), &topic("secret/x"));
    assert_eq!(
        (d.effect, d.decided_by),
        (Effect::Deny, DecidedBy::Rule("deny-secret".into()))
    );
    let d = set.check_publish(&me(), &topic("secret/ops"));
    assert_eq!(
        (d.effect, d.decided_by),
        (Effect::Allow, DecidedBy::Rule("allow-secret-ops".into()))
    );
    assert!(set.check_publish(&me(), &topic("public/x")).is_allowed());
}

#[test]
fn actions_and_identity_scopes_limit_where_a_rule_applies() {
    let mut only_alice = rule("alice", Effect::Allow, Action::Publish, "#", 0);
    only_alice.username = Some("alice".into());
    let mut only_c1 = rule("c1-sub", Effect::Allow, Action::Subscribe, "c1/#", 0);
    only_c1.client_id = Some("c1".into());
    let set = PolicySet::new(vec![only_alice, only_c1], Effect::Deny);
    assert!(
        !set.check_publish(&me(), &topic("x")).is_allowed(),
        "bob is not alice"
    );
    assert!(set.check_subscribe(&me(), &filter("c1/+")).0.is_allowed());
    assert!(
        !set.check_publish(&me(), &topic("c1/x")).is_allowed(),
        "subscribe rule does not allow publish"
    );
    let other = Identity {
        client_id: "c2",
        ..me()
    };
    assert!(!set.check_subscribe(&other, &filter("c1/+")).0.is_allowed());
}

#[test]
fn a_subscription_partly_covered_by_a_deny_rule_needs_delivery_checks() {
    let rules = vec![
        rule(
            "deny-secret",
            Effect::Deny,
            Action::Subscribe,
            "secret/#",
            0,
        ),
        rule("allow-all", Effect::Allow, Action::All, "#", 0),
    ];
    let set = PolicySet::new(rules, Effect::Deny);
    let (d, partial) = set.check_subscribe(&me(), &filter("#"));
    assert!(
        d.is_allowed() && partial,
        "# is allowed but secret/# inside it is not"
    );
    assert!(!set.check_receive(&me(), &topic("secret/a")).is_allowed());
    assert!(set.check_receive(&me(), &topic("open/a")).is_allowed());
    let (d, partial) = set.check_subscribe(&me(), &filter("open/#"));
    assert!(d.is_allowed() && !partial);
    let (d, _) = set.check_subscribe(&me(), &filter("secret/x"));
    assert_eq!(d.decided_by, DecidedBy::Rule("deny-secret".into()));
}

#[test]
fn a_narrow_allow_does_not_grant_a_wider_subscription() {
    let set = PolicySet::new(
        vec![rule(
            "temps",
            Effect::Allow,
            Action::Subscribe,
            "sensors/+/temp",
            0,
        )],
        Effect::Deny,
    );
    assert!(
        set.check_subscribe(&me(), &filter("sensors/a/temp"))
            .0
            .is_allowed()
    );
    assert!(
        !set.check_subscribe(&me(), &filter("sensors/#"))
            .0
            .is_allowed()
    );
}
