//! Topic templates: parsing, matching, coverage and overlap, including placeholder safety.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use stratus_policy::{Identity, TemplateError, TopicTemplate};
use stratus_topics::{TopicFilter, TopicName};

fn who<'a>(client_id: &'a str, username: Option<&'a str>) -> Identity<'a> {
    Identity {
        tenant: "acme",
        client_id,
        username,
    }
}

fn t(s: &str) -> TopicTemplate {
    TopicTemplate::parse(s).unwrap()
}

fn topic(s: &str) -> TopicName {
    TopicName::try_from(s).unwrap()
}

fn filter(s: &str) -> TopicFilter {
    TopicFilter::try_from(s).unwrap()
}

#[test]
fn templates_are_validated_like_filters_with_known_placeholders() {
    assert!(TopicTemplate::parse("devices/${clientid}/#").is_ok());
    assert!(TopicTemplate::parse("t/${tenant}/u-${username}-x").is_ok());
    assert_eq!(TopicTemplate::parse(""), Err(TemplateError::Empty));
    assert!(matches!(
        TopicTemplate::parse("a/${client}"),
        Err(TemplateError::UnknownPlaceholder(_))
    ));
    assert!(matches!(
        TopicTemplate::parse("a/${clientid"),
        Err(TemplateError::UnknownPlaceholder(_))
    ));
    assert!(matches!(
        TopicTemplate::parse("a/${clientid}${username}"),
        Err(TemplateError::SeveralPlaceholders(_))
    ));
    for bad in ["a/#/b", "a#", "+a", "a/b+"] {
        assert!(
            matches!(
                TopicTemplate::parse(bad),
                Err(TemplateError::InvalidFilter(_))
            ),
            "{bad}"
        );
    }
    assert!(matches!(
        TopicTemplate::parse(&"a".repeat(1025)),
        Err(TemplateError::TooLong(1025))
    ));
}

#[test]
fn placeholders_match_the_identity_as_one_literal_level() {
    let rule = t("devices/${clientid}/#");
    assert!(rule.matches_topic(&topic("devices/c1/temp"), &who("c1", None)));
    assert!(
        rule.matches_topic(&topic("devices/c1"), &who("c1", None)),
        "# matches the parent level"
    );
    assert!(!rule.matches_topic(&topic("devices/c2/temp"), &who("c1", None)));
    let partial = t("site/dev-${username}-x");
    assert!(partial.matches_topic(&topic("site/dev-bob-x"), &who("c", Some("bob"))));
    assert!(!partial.matches_topic(&topic("site/dev-bob-y"), &who("c", Some("bob"))));
    assert!(
        !partial.matches_topic(&topic("site/dev--x"), &who("c", None)),
        "no user name, no match"
    );
}

#[test]
fn identities_with_separators_or_wildcards_never_widen_a_rule() {
    let rule = t("devices/${clientid}/#");
    for id in ["a/b", "+", "#", "", "a+", "x#"] {
        let me = who(id, None);
        for tp in ["devices/a/b/c", "devices/a/b", "devices/x/y", "devices/+/y"] {
            if let Ok(name) = TopicName::try_from(tp) {
                assert!(
                    !rule.matches_topic(&name, &me),
                    "client id {id:?} matched {tp}"
                );
            }
        }
        for f in ["devices/+/#", "devices/#", "#", "devices/+"] {
            assert!(
                !rule.covers(&filter(f), &me),
                "client id {id:?} covered {f}"
            );
        }
    }
}

#[test]
fn coverage_requires_every_topic_of_the_filter() {
    let who = who("c1", None);
    assert!(t("sensors/#").covers(&filter("sensors/+/temp"), &who));
    assert!(t("sensors/#").covers(&filter("sensors/#"), &who));
    assert!(t("sensors/#").covers(&filter("sensors"), &who));
    assert!(t("sensors/+/temp").covers(&filter("sensors/a/temp"), &who));
    assert!(!t("sensors/+/temp").covers(&filter("sensors/#"), &who));
    assert!(!t("sensors/a").covers(&filter("sensors/+"), &who));
    assert!(
        !t("#").covers(&filter("$SYS/#"), &who),
        "a leading wildcard never covers $ topics"
    );
    assert!(t("$SYS/#").covers(&filter("$SYS/broker/+"), &who));
}

#[test]
fn overlap_finds_filters_sharing_a_topic() {
    let who = who("c1", None);
    assert!(t("secret/#").overlaps(&filter("#"), &who));
    assert!(t("secret/x").overlaps(&filter("+/x"), &who));
    assert!(t("a/b").overlaps(&filter("a/b/#"), &who));
    assert!(!t("a/+").overlaps(&filter("a"), &who));
    assert!(!t("secret/#").overlaps(&filter("public/#"), &who));
    assert!(
        !t("$SYS/#").overlaps(&filter("#"), &who),
        "# never reaches $ topics"
    );
}

fn level() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("a".to_owned()),
        Just("b".to_owned()),
        Just("$s".to_owned()),
        Just(String::new())
    ]
}

fn topic_strategy() -> impl Strategy<Value = String> {
    prop::collection::vec(level(), 1..4).prop_map(|l| l.join("/"))
}

fn filter_strategy() -> impl Strategy<Value = String> {
    let lvl = prop_oneof![level(), Just("+".to_owned())];
    (prop::collection::vec(lvl, 1..4), any::<bool>()).prop_map(|(mut l, hash)| {
        if hash {
            l.push("#".to_owned());
        }
        l.join("/")
    })
}

proptest! {
    #[test]
    fn templates_without_placeholders_match_like_filters(f in filter_strategy(), tp in topic_strategy()) {
        let (Ok(filt), Ok(name)) = (TopicFilter::try_from(f.as_str()), TopicName::try_from(tp.as_str())) else {
            return Ok(());
        };
        let tmpl = TopicTemplate::parse(&f).unwrap();
        prop_assert_eq!(tmpl.matches_topic(&name, &who("c", None)), filt.matches(&name));
    }

    #[test]
    fn coverage_and_overlap_never_claim_what_topics_contradict(
        rule in filter_strategy(),
        f in filter_strategy(),
        topics in prop::collection::vec(topic_strategy(), 1..24),
    ) {
        let (Ok(tmpl), Ok(filt)) = (TopicTemplate::parse(&rule), TopicFilter::try_from(f.as_str())) else {
            return Ok(());
        };
        let me = who("c", None);
        for tp in topics {
            let Ok(name) = TopicName::try_from(tp.as_str()) else { continue };
            if filt.matches(&name) {
                if tmpl.covers(&filt, &me) {
                    prop_assert!(tmpl.matches_topic(&name, &me), "{} covers {} but not topic {}", rule, f, tp);
                }
                if tmpl.matches_topic(&name, &me) {
                    prop_assert!(tmpl.overlaps(&filt, &me), "{} and {} share topic {} but overlaps() said no", rule, f, tp);
                }
            }
        }
    }
}
