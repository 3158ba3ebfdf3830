//! Table tests: which strings are topic names, topic filters and shared-subscription filters, and
//! the exact error (and so the spec rule) for those that are not.

use stratus_topics::{FilterSpec, MAX_TOPIC_LEN, ShareName, TopicError, TopicFilter, TopicName};

#[test]
fn topic_names_are_accepted_or_rejected_with_the_rule() {
    let longest = "x".repeat(MAX_TOPIC_LEN);
    let too_long = "x".repeat(MAX_TOPIC_LEN + 1);
    let cases: &[(&str, Result<(), TopicError>)] = &[
        ("a", Ok(())),
        ("/", Ok(())),
        ("//", Ok(())),
        ("a/b", Ok(())),
        ("a//b", Ok(())),
        (" ", Ok(())),
        ("$SYS/broker", Ok(())),
        ("$share/g/t", Ok(())),
        ("\u{FEFF}a/b", Ok(())),
        ("caf\u{e9}/\u{1F600}", Ok(())),
        (&longest, Ok(())),
        ("", Err(TopicError::Empty)),
        ("a/+", Err(TopicError::WildcardInTopicName)),
        ("#", Err(TopicError::WildcardInTopicName)),
        ("a#b", Err(TopicError::WildcardInTopicName)),
        ("a/b+", Err(TopicError::WildcardInTopicName)),
        ("a\0b", Err(TopicError::NullCharacter)),
        ("\0", Err(TopicError::NullCharacter)),
        (
            &too_long,
            Err(TopicError::TooLong {
                len: MAX_TOPIC_LEN + 1,
                max: MAX_TOPIC_LEN,
            }),
        ),
    ];
    for (s, expected) in cases {
        let parsed = TopicName::try_from(*s);
        assert_eq!(
            parsed.as_ref().map(|_| ()),
            expected.as_ref().map(|_| ()),
            "{s:?}"
        );
        if let Ok(name) = parsed {
            assert_eq!(name.as_str(), *s);
            assert_eq!(TopicName::new((*s).into()), Ok(name));
        }
    }
}

#[test]
fn topic_filters_are_accepted_or_rejected_with_the_rule() {
    let longest = "x".repeat(MAX_TOPIC_LEN);
    let too_long = "+/".repeat(MAX_TOPIC_LEN / 2 + 1);
    let cases: &[(&str, Result<(), TopicError>)] = &[
        ("a", Ok(())),
        ("#", Ok(())),
        ("+", Ok(())),
        ("/", Ok(())),
        ("a/#", Ok(())),
        ("a//#", Ok(())),
        ("+/+", Ok(())),
        ("/+", Ok(())),
        ("+/", Ok(())),
        ("+/#", Ok(())),
        ("a/+/b", Ok(())),
        ("$SYS/#", Ok(())),
        ("sport/tennis/player1/#", Ok(())),
        ("sport/+/player1", Ok(())),
        ("\u{FEFF}/+/#", Ok(())),
        (&longest, Ok(())),
        ("", Err(TopicError::Empty)),
        ("a#", Err(TopicError::MisplacedMultiLevelWildcard)),
        ("#a", Err(TopicError::MisplacedMultiLevelWildcard)),
        ("a/#/b", Err(TopicError::MisplacedMultiLevelWildcard)),
        (
            "sport/tennis#",
            Err(TopicError::MisplacedMultiLevelWildcard),
        ),
        ("#/", Err(TopicError::MisplacedMultiLevelWildcard)),
        ("##", Err(TopicError::MisplacedMultiLevelWildcard)),
        ("+#", Err(TopicError::MisplacedMultiLevelWildcard)),
        ("a+", Err(TopicError::MisplacedSingleLevelWildcard)),
        ("sport+", Err(TopicError::MisplacedSingleLevelWildcard)),
        ("+a/b", Err(TopicError::MisplacedSingleLevelWildcard)),
        ("a/b/++", Err(TopicError::MisplacedSingleLevelWildcard)),
        // A BOM is a character like any other, not stripped [MQTT-4.7.3-4].
        ("\u{FEFF}+", Err(TopicError::MisplacedSingleLevelWildcard)),
        ("a/\0", Err(TopicError::NullCharacter)),
        ("+/\0/#", Err(TopicError::NullCharacter)),
        (
            &too_long,
            Err(TopicError::TooLong {
                len: too_long.len(),
                max: MAX_TOPIC_LEN,
            }),
        ),
    ];
    for (s, expected) in cases {
        let parsed = TopicFilter::try_from(*s);
        assert_eq!(
            parsed.as_ref().map(|_| ()),
            expected.as_ref().map(|_| ()),
            "{s:?}"
        );
        if let Ok(filter) = parsed {
            assert_eq!(filter.as_str(), *s);
            assert_eq!(TopicFilter::new((*s).into()), Ok(filter));
        }
    }
}

#[test]
fn shared_subscription_filters_parse_into_share_and_filter() {
    // (input, Ok((share, filter)) or the error)
    type Parsed = Result<(Option<&'static str>, &'static str), TopicError>;
    let cases: &[(&str, Parsed)] = &[
        ("$share/g/a/b", Ok((Some("g"), "a/b"))),
        ("$share/g/#", Ok((Some("g"), "#"))),
        ("$share/g/+/x", Ok((Some("g"), "+/x"))),
        ("$share/g//", Ok((Some("g"), "/"))),
        ("$share/g/$SYS/#", Ok((Some("g"), "$SYS/#"))),
        ("$share/$share/t", Ok((Some("$share"), "t"))),
        ("$share/consumer-1/t", Ok((Some("consumer-1"), "t"))),
        ("$share", Ok((None, "$share"))),
        ("$share/#", Err(TopicError::InvalidShareName)),
        ("$sharex/g/t", Ok((None, "$sharex/g/t"))),
        ("$SHARE/g/t", Ok((None, "$SHARE/g/t"))),
        ("a/$share/g/t", Ok((None, "a/$share/g/t"))),
        ("$queue/t", Ok((None, "$queue/t"))),
        ("a/+", Ok((None, "a/+"))),
        ("$share//t", Err(TopicError::EmptyShareName)),
        ("$share/", Err(TopicError::EmptyShareName)),
        ("$share/g", Err(TopicError::MissingSharedFilter)),
        ("$share/g/", Err(TopicError::MissingSharedFilter)),
        ("$share/g+/t", Err(TopicError::InvalidShareName)),
        ("$share/g#/t", Err(TopicError::InvalidShareName)),
        ("$share/+/t", Err(TopicError::InvalidShareName)),
        ("$share/g+", Err(TopicError::InvalidShareName)),
        ("$share/g\0/t", Err(TopicError::NullCharacter)),
        ("$share/g/a#", Err(TopicError::MisplacedMultiLevelWildcard)),
        (
            "$share/g/a/#/b",
            Err(TopicError::MisplacedMultiLevelWildcard),
        ),
        ("$share/g/a+", Err(TopicError::MisplacedSingleLevelWildcard)),
        ("$share/g/a\0", Err(TopicError::NullCharacter)),
        ("a/#/b", Err(TopicError::MisplacedMultiLevelWildcard)),
        ("", Err(TopicError::Empty)),
    ];
    for (s, expected) in cases {
        let parsed = FilterSpec::try_from(*s).map(|spec| {
            (
                spec.share.map(|share| share.as_str().to_owned()),
                spec.filter.as_str().to_owned(),
            )
        });
        let expected =
            expected.map(|(share, filter)| (share.map(str::to_owned), filter.to_owned()));
        assert_eq!(parsed, expected, "{s:?}");
    }
}

#[test]
fn share_names_reject_separators_and_wildcards() {
    assert!(ShareName::try_from("group-1").is_ok());
    assert!(ShareName::try_from("$").is_ok());
    assert_eq!(ShareName::try_from(""), Err(TopicError::EmptyShareName));
    for bad in ["a/b", "a+", "#", "/"] {
        assert_eq!(
            ShareName::try_from(bad),
            Err(TopicError::InvalidShareName),
            "{bad}"
        );
    }
    assert_eq!(ShareName::try_from("a\0"), Err(TopicError::NullCharacter));
}

#[test]
fn a_long_shared_filter_is_rejected_before_parsing() {
    let s = format!("$share/g/{}", "x".repeat(MAX_TOPIC_LEN));
    assert_eq!(
        FilterSpec::try_from(s.as_str()),
        Err(TopicError::TooLong {
            len: s.len(),
            max: MAX_TOPIC_LEN
        })
    );
}

#[test]
fn errors_name_their_spec_rule() {
    assert_eq!(
        TopicError::MisplacedMultiLevelWildcard.rule(),
        "MQTT-4.7.1-1"
    );
    assert_eq!(
        TopicError::MisplacedSingleLevelWildcard.rule(),
        "MQTT-4.7.1-2"
    );
    assert_eq!(TopicError::WildcardInTopicName.rule(), "MQTT-3.3.2-2");
    assert_eq!(TopicError::EmptyShareName.rule(), "MQTT-4.8.2-1");
    assert!(
        TopicError::MissingSharedFilter
            .to_string()
            .starts_with("[MQTT-4.8.2-2]")
    );
}

#[test]
fn levels_and_level_counts_keep_empty_levels() {
    let name = TopicName::try_from("/a//b/").unwrap();
    assert_eq!(name.levels().collect::<Vec<_>>(), ["", "a", "", "b", ""]);
    assert_eq!(name.level_count(), 5);
    let filter = TopicFilter::try_from("+//#").unwrap();
    assert_eq!(filter.levels().collect::<Vec<_>>(), ["+", "", "#"]);
    assert_eq!(filter.level_count(), 3);
}
