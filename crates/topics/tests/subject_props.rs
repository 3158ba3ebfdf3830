//! Properties of the MQTT topic <-> NATS subject mapping (`SubjectSpace` and the level codec):
//! the codec round-trips and has one spelling per level, subjects parse back to their topic,
//! filter subjects match a topic's subject exactly when `TopicFilter::matches` says so (checked
//! with a NATS matcher written here, exhaustively over a small alphabet, and against a real
//! `nats-server`), and no subject of one tenant reaches a subscription of another.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use proptest::prelude::*;
use stratus_topics::{
    QosClass, SubjectError, SubjectSpace, TopicFilter, TopicName, decode_level, encode_level,
    stream_subjects,
};

const BOTH_QOS: [QosClass; 2] = [QosClass::AtMostOnce, QosClass::Durable];

/// NATS subject matching: `*` matches one token, `>` (last only) one or more trailing tokens,
/// anything else the same token. Panics on subjects NATS would refuse (empty tokens, `>` before
/// the end, a wildcard in the published subject).
fn nats_matches(pattern: &str, subject: &str) -> bool {
    assert_valid_subject(pattern);
    assert_valid_subject(subject);
    assert!(
        subject.split('.').all(|t| t != "*" && t != ">"),
        "{subject}"
    );
    let mut pattern_tokens = pattern.split('.').peekable();
    let mut subject_tokens = subject.split('.');
    loop {
        match (pattern_tokens.next(), subject_tokens.next()) {
            (Some(">"), Some(_)) => {
                assert!(pattern_tokens.peek().is_none(), "'>' not last: {pattern}");
                return true;
            }
            (Some("*"), Some(_)) => {}
            (Some(p), Some(s)) if p == s => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Every token non-empty and free of whitespace: what NATS requires of any subject.
fn assert_valid_subject(subject: &str) {
    for token in subject.split('.') {
        assert!(!token.is_empty(), "empty token in {subject:?}");
        assert!(
            !token
                .bytes()
                .any(|b| b.is_ascii_whitespace() || b.is_ascii_control()),
            "{subject:?}"
        );
    }
}

/// Every level token of a published subject is one of ours: non-empty, `[A-Za-z0-9_=-]`.
fn assert_encoded_tokens(subject: &str, skip: usize) {
    for token in subject.split('.').skip(skip) {
        assert!(is_token(token), "{token:?} in {subject:?}");
    }
}

fn is_token(token: &str) -> bool {
    !token.is_empty()
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'=')
}

fn encoded(level: &str) -> String {
    let mut token = String::new();
    encode_level(level, &mut token);
    token
}

fn space() -> SubjectSpace {
    SubjectSpace::new("p", "t").expect("a valid space")
}

/// Pieces that exercise the escaping: subject syntax, the escape byte itself, text that looks
/// like an escape, `$`, whitespace, controls and multi-byte characters.
const TRICKY_PIECES: &[&str] = &[
    "a", "Z", "0", "_", "-", ".", "*", ">", "=", "=3D", "=41", "$", "%", "%2E", " ", "\t",
    "\u{7f}", "\u{1}", "é", "😀", "\u{FEFF}", "+", "#",
];

/// Any level of a topic filter: any UTF-8 without `/` and U+0000, including the empty level.
fn any_level() -> impl Strategy<Value = String> {
    prop_oneof![
        "[^/\\x00]{0,12}",
        prop::collection::vec(prop::sample::select(TRICKY_PIECES), 0..6)
            .prop_map(|pieces| pieces.concat()),
    ]
}

/// Any topic name, with every level drawn as by [`any_level`].
fn any_topic() -> impl Strategy<Value = TopicName> {
    prop::collection::vec(any_level(), 1..6).prop_filter_map("not a topic name", |levels| {
        TopicName::try_from(levels.join("/")).ok()
    })
}

/// Topics over a tiny alphabet, so that pairs of distinct topics often look alike.
fn alike_topic() -> impl Strategy<Value = TopicName> {
    "[a.=/$ 2E]{1,6}".prop_filter_map("not a topic name", |s| TopicName::try_from(s).ok())
}

/// Strings that are often, but not always, canonical tokens: random runs of token and hex
/// characters, and escapes of `/`, wildcards, U+0000, `$`, plain bytes and half characters.
fn near_canonical_token() -> impl Strategy<Value = String> {
    const PIECES: &[&str] = &[
        "a", "F", "-", "=", "=2F", "=2E", "=2B", "=23", "=00", "=24", "=3D", "=41", "=4a", "=C3",
        "=A9", "*", ">", "",
    ];
    prop_oneof![
        1 => "=|[=0-9A-Fa-f_.*>-]{1,7}",
        3 => prop::collection::vec(prop::sample::select(PIECES), 1..4).prop_map(|p| p.concat()),
    ]
}

/// Levels for match tests: few, so that filters and topics meet often.
const MATCH_LEVELS: &[&str] = &["a", "b", "", "$", "$SYS", "*", ">", "=", "a.b"];

fn match_topic_levels() -> impl Strategy<Value = Vec<&'static str>> {
    prop::collection::vec(prop::sample::select(MATCH_LEVELS), 1..5)
        .prop_filter("not a topic name", |levels| levels != &[""])
}

fn independent_filter() -> impl Strategy<Value = TopicFilter> {
    let level = prop_oneof![3 => prop::sample::select(MATCH_LEVELS), 1 => Just("+")];
    (prop::collection::vec(level, 0..5), any::<bool>()).prop_filter_map(
        "not a topic filter",
        |(mut levels, multi)| {
            if multi {
                levels.push("#");
            }
            TopicFilter::try_from(levels.join("/")).ok()
        },
    )
}

/// A topic and a filter, usually derived from it (levels kept, made `+`, changed, cut at a `#`,
/// or one level added) so that about half of the pairs match.
fn match_case() -> impl Strategy<Value = (TopicFilter, TopicName)> {
    let derived = match_topic_levels().prop_flat_map(|levels| {
        let n = levels.len();
        (
            Just(levels),
            prop::collection::vec((0u8..7, prop::sample::select(MATCH_LEVELS)), n),
            prop::option::of(0..=n),
            any::<bool>(),
        )
            .prop_filter_map("not a topic filter", |(levels, edits, hash_at, longer)| {
                let topic = TopicName::try_from(levels.join("/")).ok()?;
                let mut filter: Vec<&str> = levels
                    .iter()
                    .zip(edits)
                    .map(|(level, (edit, other))| match edit {
                        0..=3 => *level,
                        4 | 5 => "+",
                        _ => other,
                    })
                    .collect();
                match hash_at {
                    Some(k) => {
                        filter.truncate(k);
                        filter.push("#");
                    }
                    None if longer => filter.push("a"),
                    None => {}
                }
                Some((TopicFilter::try_from(filter.join("/")).ok()?, topic))
            })
    });
    let independent = (
        independent_filter(),
        match_topic_levels().prop_filter_map("not a topic name", |l| {
            TopicName::try_from(l.join("/")).ok()
        }),
    );
    prop_oneof![3 => derived, 1 => independent]
}

/// The reference answer and the mapped answer for one (filter, topic) pair, for every QoS class
/// of the publish and of the subscription; also checks that a filter never has two subjects
/// matching one message, which would deliver it twice.
fn assert_mapping_agrees(space: &SubjectSpace, filter: &TopicFilter, topic: &TopicName) {
    let expected = filter.matches(topic);
    for pattern in space.filter_subjects(filter, None) {
        // `m.p.t.<class>.<q>` and at least one level: a shorter subject could match no message.
        assert!(pattern.split('.').count() > 5, "{filter}: {pattern}");
    }
    for published in BOTH_QOS {
        let subject = space.publish_subject(topic, published);
        for wanted in [None, Some(QosClass::AtMostOnce), Some(QosClass::Durable)] {
            let hits = space
                .filter_subjects(filter, wanted)
                .iter()
                .filter(|pattern| nats_matches(pattern, &subject))
                .count();
            let class_ok = wanted.is_none_or(|q| q == published);
            assert_eq!(
                hits,
                usize::from(expected && class_ok),
                "filter {filter} topic {topic} published {published:?} wanted {wanted:?}"
            );
        }
    }
    let retained = space.retained_subject(topic);
    let hits = space
        .retained_filter_subjects(filter)
        .iter()
        .filter(|pattern| nats_matches(pattern, &retained))
        .count();
    assert_eq!(
        hits,
        usize::from(expected),
        "retained: filter {filter} topic {topic}"
    );
}

proptest! {
    #[test]
    fn levels_round_trip_through_plain_tokens(level in any_level()) {
        let token = encoded(&level);
        prop_assert!(is_token(&token), "{token:?}");
        prop_assert_eq!(decode_level(&token), Ok(level));
    }

    #[test]
    fn distinct_levels_get_distinct_tokens(a in "[a.=$ 3DE]{0,4}", b in "[a.=$ 3DE]{0,4}") {
        prop_assert_eq!(a == b, encoded(&a) == encoded(&b));
    }

    #[test]
    fn a_token_that_decodes_is_the_only_spelling_of_its_level(token in "[=0-9A-Fa-fgG_.-]{0,9}") {
        if let Ok(level) = decode_level(&token) {
            prop_assert_eq!(encoded(&level), token);
        }
    }

    #[test]
    fn topics_round_trip_through_subjects(topic in any_topic()) {
        let space = space();
        for q in BOTH_QOS {
            let subject = space.publish_subject(&topic, q);
            assert_valid_subject(&subject);
            assert_encoded_tokens(&subject, 5);
            prop_assert_eq!(subject.split('.').count(), 5 + topic.level_count());
            prop_assert_eq!(space.parse(&subject), Ok((topic.to_string(), q)));
        }
        let retained = space.retained_subject(&topic);
        assert_encoded_tokens(&retained, 4);
        prop_assert_eq!(space.parse_retained(&retained), Ok(topic.to_string()));
    }

    #[test]
    fn distinct_topics_get_distinct_subjects(
        a in alike_topic(), b in alike_topic(), qa in 0..2usize, qb in 0..2usize,
    ) {
        let space = space();
        let same = a == b && qa == qb;
        let (sa, sb) = (space.publish_subject(&a, BOTH_QOS[qa]), space.publish_subject(&b, BOTH_QOS[qb]));
        prop_assert_eq!(same, sa == sb, "{} / {}", sa, sb);
        prop_assert_eq!(a == b, space.retained_subject(&a) == space.retained_subject(&b));
    }

    #[test]
    fn space_ids_are_exactly_the_plain_tokens(id in prop_oneof!["[a-zA-Z0-9_.*> =/$-]{0,4}", ".{0,4}"]) {
        let plain = !id.is_empty()
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        prop_assert_eq!(SubjectSpace::new("p", &id).is_ok(), plain);
        prop_assert_eq!(SubjectSpace::new(&id, "t").is_ok(), plain);
        prop_assert_eq!(stream_subjects(&id).is_ok(), plain);
        if !plain {
            let is_space_error = matches!(
                SubjectSpace::new("p", &id),
                Err(SubjectError::InvalidSpaceToken { .. })
            );
            prop_assert!(is_space_error);
        }
    }

    /// Tenants and pools that differ by one character, with arbitrary filters and topics: no
    /// subject of space A is matched by, or parses in, space B.
    #[test]
    fn no_subject_crosses_spaces(
        a in (0..3usize, 0..6usize), b in (0..3usize, 0..6usize), (filter, topic) in match_case(),
    ) {
        const POOLS: [&str; 3] = ["p", "p2", "pp"];
        const TENANTS: [&str; 6] = ["t", "t1", "tt", "T", "t-", "t_"];
        prop_assume!(a != b);
        let space_a = SubjectSpace::new(POOLS[a.0], TENANTS[a.1]).unwrap();
        let space_b = SubjectSpace::new(POOLS[b.0], TENANTS[b.1]).unwrap();
        let stream_b = stream_subjects(POOLS[b.0]).unwrap();
        let patterns_b = space_b.filter_subjects(&filter, None);
        for q in BOTH_QOS {
            let subject = space_a.publish_subject(&topic, q);
            for pattern in &patterns_b {
                prop_assert!(!nats_matches(pattern, &subject), "{} ~ {}", pattern, subject);
            }
            prop_assert!(!nats_matches(&space_b.durable_wildcard(), &subject));
            prop_assert!(space_b.parse(&subject).is_err());
            let in_stream = a.0 == b.0 && q == QosClass::Durable;
            prop_assert_eq!(nats_matches(&stream_b, &subject), in_stream, "{}", subject);
            prop_assert_eq!(
                nats_matches(&space_a.durable_wildcard(), &subject),
                q == QosClass::Durable
            );
        }
        let retained = space_a.retained_subject(&topic);
        for pattern in space_b.retained_filter_subjects(&filter) {
            prop_assert!(!nats_matches(&pattern, &retained));
        }
        prop_assert!(space_b.parse_retained(&retained).is_err());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// Subjects made of near-canonical tokens: whatever parses is exactly what publishing its
    /// topic gives, and the topic is a valid topic name.
    #[test]
    fn a_subject_that_parses_is_the_only_spelling_of_its_topic(
        class in prop::sample::select(vec!["u", "u", "u", "s", "x"]),
        q in prop::sample::select(vec!["0", "1", "1", "*"]),
        levels in prop::collection::vec(near_canonical_token(), 0..4),
    ) {
        let subject = format!("m.p.t.{class}.{q}.{}", levels.join("."));
        let subject = subject.trim_end_matches('.');
        if let Ok((topic, q)) = space().parse(subject) {
            let topic = TopicName::try_from(topic).unwrap();
            prop_assert_eq!(space().publish_subject(&topic, q), subject);
        }
    }

    #[test]
    fn filter_subjects_match_exactly_the_topics_the_filter_matches((filter, topic) in match_case()) {
        assert_mapping_agrees(&space(), &filter, &topic);
    }
}

/// Every sequence over `alphabet` with a length in `lengths`.
fn sequences(
    alphabet: &[&'static str],
    lengths: std::ops::RangeInclusive<usize>,
) -> Vec<Vec<&'static str>> {
    let mut all = Vec::new();
    let mut current: Vec<Vec<&'static str>> = vec![Vec::new()];
    for length in 0..=*lengths.end() {
        if lengths.contains(&length) {
            all.extend(current.iter().cloned());
        }
        current = current
            .iter()
            .flat_map(|prefix| {
                alphabet
                    .iter()
                    .map(move |level| [prefix.as_slice(), &[*level]].concat())
            })
            .collect();
    }
    all
}

/// Every topic of up to three levels over `a`, empty, `$` and `>`, and every filter of up to
/// three levels over those and `+`, with and without a trailing `#`: `/`, `//`, `$/+`, `+/#`...
fn small_domain() -> (Vec<TopicFilter>, Vec<TopicName>) {
    const TOPIC_LEVELS: &[&str] = &["a", "", "$", ">"];
    const FILTER_LEVELS: &[&str] = &["a", "", "$", ">", "+"];
    let topics = sequences(TOPIC_LEVELS, 1..=3)
        .into_iter()
        .filter_map(|levels| TopicName::try_from(levels.join("/")).ok())
        .collect();
    let plain = sequences(FILTER_LEVELS, 1..=3).into_iter();
    let multi = sequences(FILTER_LEVELS, 0..=2)
        .into_iter()
        .map(|mut levels| {
            levels.push("#");
            levels
        });
    let filters = plain
        .chain(multi)
        .filter_map(|levels| TopicFilter::try_from(levels.join("/")).ok())
        .collect();
    (filters, topics)
}

#[test]
fn filter_subjects_agree_with_the_matcher_on_every_small_case() {
    let (filters, topics) = small_domain();
    let space = space();
    let mut matches = 0;
    for filter in &filters {
        for topic in &topics {
            assert_mapping_agrees(&space, filter, topic);
            matches += usize::from(filter.matches(topic));
        }
    }
    let pairs = filters.len() * topics.len();
    assert!(
        filters.len() > 150 && topics.len() > 80,
        "{} x {}",
        filters.len(),
        topics.len()
    );
    assert!(
        matches > 500 && pairs - matches > 500,
        "{matches} of {pairs}"
    );
}

/// A `nats-server` on a free loopback port, killed when dropped.
struct NatsServer {
    process: Child,
    port: u16,
}

impl NatsServer {
    fn start() -> Self {
        let mut process = Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", "-1"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("nats-server on PATH (scripts/requirements-test.txt installs it)");
        let stderr = process.stderr.take().expect("stderr is piped");
        let (port_tx, port_rx) = mpsc::channel();
        std::thread::spawn(move || {
            // Read the log to its end, so the server never blocks on a full pipe.
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some((_, address)) = line.split_once("Listening for client connections on ")
                    && let Some((_, port)) = address.trim().rsplit_once(':')
                {
                    let _ = port_tx.send(port.parse::<u16>());
                }
            }
        });
        let port = port_rx
            .recv_timeout(Duration::from_secs(20))
            .expect("nats-server did not report its port")
            .expect("nats-server reported a port that is not a number");
        Self { process, port }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// The small domain again, through a real `nats-server` in pedantic mode (which refuses invalid
/// subjects): every filter subscribes to its subjects, every topic is published with both QoS
/// classes, and each filter must receive exactly the messages whose topic it matches, once.
#[test]
fn a_real_nats_server_delivers_exactly_what_the_filters_match() {
    let server = NatsServer::start();
    let (filters, topics) = small_domain();
    let space = space();
    let stream = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = std::io::BufWriter::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(line.starts_with("INFO "), "{line}");

    write!(
        writer,
        "CONNECT {{\"verbose\":false,\"pedantic\":true}}\r\n"
    )
    .unwrap();
    // Subscription id `2 * filter + n` for the filter's n-th subject.
    for (index, filter) in filters.iter().enumerate() {
        for (n, subject) in space.filter_subjects(filter, None).iter().enumerate() {
            write!(writer, "SUB {subject} {}\r\n", 2 * index + n).unwrap();
        }
    }
    for topic in &topics {
        for q in BOTH_QOS {
            write!(writer, "PUB {} 0\r\n\r\n", space.publish_subject(topic, q)).unwrap();
        }
    }
    // The server answers PING after everything before it, own deliveries included.
    write!(writer, "PING\r\n").unwrap();
    writer.flush().unwrap();

    let mut delivered: HashMap<(usize, String), usize> = HashMap::new();
    loop {
        line.clear();
        assert_ne!(reader.read_line(&mut line).unwrap(), 0, "connection closed");
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.as_slice() {
            ["PONG"] => break,
            ["MSG", subject, sid, "0"] => {
                let filter = sid.parse::<usize>().unwrap() / 2;
                *delivered
                    .entry((filter, (*subject).to_owned()))
                    .or_default() += 1;
                let mut payload = String::new();
                reader.read_line(&mut payload).unwrap();
                assert_eq!(payload, "\r\n");
            }
            _ => panic!("unexpected from nats-server: {line:?}"),
        }
    }

    let mut matches = 0;
    for (index, filter) in filters.iter().enumerate() {
        for topic in &topics {
            let expected = usize::from(filter.matches(topic));
            matches += expected;
            for q in BOTH_QOS {
                let subject = space.publish_subject(topic, q);
                let got = delivered.remove(&(index, subject)).unwrap_or(0);
                assert_eq!(got, expected, "filter {filter} topic {topic} {q:?}");
            }
        }
    }
    assert!(delivered.is_empty(), "{delivered:?}");
    assert!(matches > 500, "{matches}");
}
