//! The subject mapping as a table: topics and filters and the exact subjects they map to, and
//! the subjects that must not parse.

use super::*;

/// Whether an error is the one a case expects.
type Expectation = fn(&SubjectError) -> bool;

fn space() -> SubjectSpace {
    SubjectSpace::new("p", "t").unwrap()
}

fn topic(s: &str) -> TopicName {
    TopicName::try_from(s).unwrap()
}

fn filter(s: &str) -> TopicFilter {
    TopicFilter::try_from(s).unwrap()
}

#[test]
fn topics_map_to_one_subject_each_and_back() {
    let table = [
        ("a/b", "m.p.t.u.0.a.b"),
        ("spBv1.0/g1", "m.p.t.u.0.spBv1=2E0.g1"),
        ("a/*", "m.p.t.u.0.a.=2A"),
        ("a/>", "m.p.t.u.0.a.=3E"),
        ("a//b", "m.p.t.u.0.a.=.b"),
        ("/", "m.p.t.u.0.=.="),
        ("/x", "m.p.t.u.0.=.x"),
        ("x/", "m.p.t.u.0.x.="),
        ("=", "m.p.t.u.0.=3D"),
        ("$SYS/broker/uptime", "m.p.t.s.0.=24SYS.broker.uptime"),
        ("$", "m.p.t.s.0.=24"),
        ("a/$x", "m.p.t.u.0.a.=24x"),
        ("dev ice/ü", "m.p.t.u.0.dev=20ice.=C3=BC"),
    ];
    let space = space();
    for (name, subject) in table {
        let name = topic(name);
        assert_eq!(space.publish_subject(&name, QosClass::AtMostOnce), subject);
        assert_eq!(
            space.parse(subject),
            Ok((name.to_string(), QosClass::AtMostOnce))
        );
        let durable = subject.replacen(".0.", ".1.", 1);
        assert_eq!(space.publish_subject(&name, QosClass::Durable), durable);
        assert_eq!(
            space.parse(&durable),
            Ok((name.to_string(), QosClass::Durable))
        );
    }
}

#[test]
fn filters_map_to_their_subscription_subjects() {
    let table: [(&str, &[&str]); 13] = [
        ("a/b", &["m.p.t.u.*.a.b"]),
        ("a/+/c", &["m.p.t.u.*.a.*.c"]),
        ("a/#", &["m.p.t.u.*.a", "m.p.t.u.*.a.>"]),
        ("#", &["m.p.t.u.*.>"]),
        ("+", &["m.p.t.u.*.*"]),
        ("+/#", &["m.p.t.u.*.*", "m.p.t.u.*.*.>"]),
        ("/#", &["m.p.t.u.*.=", "m.p.t.u.*.=.>"]),
        ("$SYS/#", &["m.p.t.s.*.=24SYS", "m.p.t.s.*.=24SYS.>"]),
        ("$SYS/+/x", &["m.p.t.s.*.=24SYS.*.x"]),
        ("+/$SYS", &["m.p.t.u.*.*.=24SYS"]),
        ("a/*", &["m.p.t.u.*.a.=2A"]),
        ("a/>/#", &["m.p.t.u.*.a.=3E", "m.p.t.u.*.a.=3E.>"]),
        ("//+", &["m.p.t.u.*.=.=.*"]),
    ];
    let space = space();
    for (f, subjects) in table {
        assert_eq!(space.filter_subjects(&filter(f), None), subjects, "{f}");
    }
}

#[test]
fn a_qos_class_narrows_the_filter_subjects() {
    let space = space();
    assert_eq!(
        space.filter_subjects(&filter("a/#"), Some(QosClass::Durable)),
        ["m.p.t.u.1.a", "m.p.t.u.1.a.>"]
    );
    assert_eq!(
        space.filter_subjects(&filter("+"), Some(QosClass::AtMostOnce)),
        ["m.p.t.u.0.*"]
    );
}

#[test]
fn tenant_and_pool_wide_subjects() {
    let space = SubjectSpace::new("pool-1", "acme_7").unwrap();
    assert_eq!(space.prefix(), "m.pool-1.acme_7");
    assert_eq!(space.durable_wildcard(), "m.pool-1.acme_7.*.1.>");
    assert_eq!(stream_subjects("pool-1").unwrap(), "m.pool-1.*.*.1.>");
}

#[test]
fn retained_subjects_have_no_qos_token() {
    let space = space();
    let name = topic("$SYS/a.b");
    assert_eq!(space.retained_subject(&name), "r.p.t.s.=24SYS.a=2Eb");
    assert_eq!(
        space.parse_retained("r.p.t.s.=24SYS.a=2Eb").unwrap(),
        "$SYS/a.b"
    );
    assert_eq!(
        space.retained_filter_subjects(&filter("a/#")),
        ["r.p.t.u.a", "r.p.t.u.a.>"]
    );
    assert!(matches!(
        space.parse_retained("m.p.t.u.0.a"),
        Err(SubjectError::OutsideSpace { .. })
    ));
}

#[test]
fn pool_and_tenant_ids_must_be_single_plain_tokens() {
    for bad in [
        "", ".", "a.b", "*", ">", "a*", "t>", " ", "é", "a=b", "a/b", "$t",
    ] {
        assert!(
            matches!(
                SubjectSpace::new("p", bad),
                Err(SubjectError::InvalidSpaceToken { role: "tenant", .. })
            ),
            "tenant {bad:?}"
        );
        assert!(
            matches!(
                SubjectSpace::new(bad, "t"),
                Err(SubjectError::InvalidSpaceToken { role: "pool", .. })
            ),
            "pool {bad:?}"
        );
        assert!(stream_subjects(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn subjects_that_publish_subject_cannot_produce_do_not_parse() {
    use SubjectError as E;
    let cases: [(&str, Expectation); 20] = [
        ("m.p.u.u.0.a", |e| matches!(e, E::OutsideSpace { .. })),
        ("m.p.tt.u.0.a", |e| matches!(e, E::OutsideSpace { .. })),
        ("m.p.t", |e| matches!(e, E::OutsideSpace { .. })),
        ("r.p.t.u.0.a", |e| matches!(e, E::OutsideSpace { .. })),
        ("m.p.t.", |e| {
            matches!(
                e,
                E::UnexpectedToken {
                    position: "class",
                    ..
                }
            )
        }),
        ("m.p.t.x.0.a", |e| {
            matches!(
                e,
                E::UnexpectedToken {
                    position: "class",
                    ..
                }
            )
        }),
        ("m.p.t.u", |e| matches!(e, E::Truncated { .. })),
        ("m.p.t.u.0", |e| matches!(e, E::Truncated { .. })),
        ("m.p.t.u.2.a", |e| {
            matches!(
                e,
                E::UnexpectedToken {
                    position: "QoS",
                    ..
                }
            )
        }),
        ("m.p.t.u.*.a", |e| {
            matches!(
                e,
                E::UnexpectedToken {
                    position: "QoS",
                    ..
                }
            )
        }),
        ("m.p.t.u.0.a..b", |e| matches!(e, E::EmptyToken)),
        ("m.p.t.u.0.a.", |e| matches!(e, E::EmptyToken)),
        ("m.p.t.u.0.a.*", |e| {
            matches!(e, E::UnescapedByte { byte: b'*', .. })
        }),
        ("m.p.t.u.0.a.>", |e| {
            matches!(e, E::UnescapedByte { byte: b'>', .. })
        }),
        ("m.p.t.u.0.a=2fb", |e| {
            matches!(e, E::LowercaseEscape { .. })
        }),
        ("m.p.t.u.0.a=2Fb", |e| {
            matches!(e, E::SeparatorInLevel { .. })
        }),
        ("m.p.t.u.0.=2B", |e| {
            matches!(e, E::InvalidTopic(TopicError::WildcardInTopicName))
        }),
        ("m.p.t.u.0.a=00", |e| {
            matches!(e, E::InvalidTopic(TopicError::NullCharacter))
        }),
        ("m.p.t.u.0.=", |e| {
            matches!(e, E::InvalidTopic(TopicError::Empty))
        }),
        ("m.p.t.u.0.=24SYS", |e| {
            matches!(e, E::ClassMismatch { class: "u", .. })
        }),
    ];
    let space = space();
    for (subject, expected) in cases {
        match space.parse(subject) {
            Err(e) => assert!(expected(&e), "{subject:?}: {e}"),
            Ok(parsed) => panic!("{subject:?} parsed as {parsed:?}"),
        }
    }
    assert!(matches!(
        space.parse("m.p.t.s.0.a"),
        Err(E::ClassMismatch { class: "s", .. })
    ));
}

#[test]
fn error_messages_name_the_problem() {
    let e = decode_level("=41").unwrap_err();
    assert_eq!(
        e.to_string(),
        "token \"=41\": the escape at offset 0 stands for 'A', which must be written as itself"
    );
    let e = SubjectSpace::new("p", "a.b").unwrap_err();
    assert_eq!(
        e.to_string(),
        "the tenant id \"a.b\" must be one or more characters from [A-Za-z0-9_-]"
    );
}

#[test]
fn node_subjects_take_only_plain_tokens() {
    assert_eq!(
        super::node_subject("p0", "edge-1", "kick").ok().as_deref(),
        Some("gw.p0.node.edge-1.kick")
    );
    for bad in ["", "a.b", "*", ">", "a b", "edge.>"] {
        assert!(super::node_subject("p0", bad, "kick").is_err(), "{bad:?}");
    }
}

#[test]
fn the_retained_changes_subject_is_no_retained_topic_subject() {
    let space = SubjectSpace::new("p0", "acme")
        .ok()
        .unwrap_or_else(|| unreachable!());
    assert_eq!(space.retained_changes(), "r.p0.acme");
    let topic = TopicName::try_from("a").unwrap_or_else(|_| unreachable!());
    assert_ne!(space.retained_subject(&topic), space.retained_changes());
}
