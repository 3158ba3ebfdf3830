//! MQTT topics as NATS subjects: the one place where the subjects of the NATS backbone are
//! built and read back.
//!
//! ```text
//! messages   m.<pool>.<tenant>.<class>.<q>.<L1>.<L2>…<Ln>
//! retained   r.<pool>.<tenant>.<class>.<L1>.<L2>…<Ln>
//! ```
//!
//! - `<pool>` and `<tenant>` are server-issued ids from `[A-Za-z0-9_-]`, checked once by
//!   [`SubjectSpace::new`]; a subject of one tenant can never match a subscription of another.
//! - `<class>` is `s` for topics whose first level starts with `$`, `u` for all others. Filters
//!   whose first level is a wildcard subscribe to class `u` only, which is how `$` topics stay
//!   out of reach of `#` and `+/…` [MQTT-4.7.2-1].
//! - `<q>` is `0` for QoS 0 publishes and `1` for QoS 1 and 2 ([`QosClass`]); the JetStream
//!   stream captures `1` only ([`stream_subjects`]).
//! - Each topic level is exactly one token, written by [`encode_level`]: total, bijective and
//!   free of `.`, `*` and `>`, so no topic can reach into the wildcard syntax of NATS.
//!
//! A filter maps to one or two subscription subjects: `+` becomes `*`, and a trailing `#` becomes
//! both the parent subject and the parent followed by `>`, since `a/#` also matches `a`. The two
//! never match the same subject, so a message is never delivered twice to one filter. The
//! property tests in `tests/subject_props.rs` check that a filter's subjects match a topic's
//! subject exactly when [`TopicFilter::matches`] says the filter matches the topic.
//!
//! Architecture invariant: no other code formats or splits these subjects.

mod client_key;
mod level_codec;

pub use client_key::client_key;
pub use level_codec::{decode_level, encode_level};

use crate::error::TopicError;
use crate::filter::TopicFilter;
use crate::level::{MULTI, SINGLE};
use crate::name::TopicName;

/// First token of message subjects.
const MESSAGES: &str = "m";
/// First token of retained-message notification subjects.
const RETAINED: &str = "r";
/// NATS wildcard for exactly one token.
const ANY_TOKEN: &str = "*";
/// NATS wildcard for one or more trailing tokens.
const ANY_TAIL: &str = ">";

/// Which publishes a subject carries: the `<q>` token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QosClass {
    /// QoS 0 publishes, sent on core NATS only: token `0`.
    AtMostOnce,
    /// QoS 1 and 2 publishes, captured by the JetStream stream: token `1`.
    Durable,
}

impl QosClass {
    /// The subject token: `"0"` or `"1"`.
    pub fn token(self) -> &'static str {
        match self {
            Self::AtMostOnce => "0",
            Self::Durable => "1",
        }
    }

    fn from_token(token: &str) -> Option<Self> {
        match token {
            "0" => Some(Self::AtMostOnce),
            "1" => Some(Self::Durable),
            _ => None,
        }
    }
}

/// The `<class>` token: whether the topic's first level starts with `$`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    User,
    System,
}

impl Class {
    /// The class of a topic or filter, `is_system` being whether it starts with `$`. A filter
    /// starting with a wildcard does not, so it lands in [`Class::User`] [MQTT-4.7.2-1]; one
    /// whose first level is a literal gets that literal's class.
    fn of(is_system: bool) -> Self {
        if is_system { Self::System } else { Self::User }
    }

    fn token(self) -> &'static str {
        match self {
            Self::User => "u",
            Self::System => "s",
        }
    }

    fn from_token(token: &str) -> Option<Self> {
        match token {
            "u" => Some(Self::User),
            "s" => Some(Self::System),
            _ => None,
        }
    }
}

/// Why a pool or tenant id, a subject or a subject token was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubjectError {
    /// A pool or tenant id is empty or has a byte outside `[A-Za-z0-9_-]`.
    #[error("the {role} id {value:?} must be one or more characters from [A-Za-z0-9_-]")]
    InvalidSpaceToken {
        /// `"pool"` or `"tenant"`.
        role: &'static str,
        /// The rejected id.
        value: String,
    },
    /// A subject has an empty token (`a..b`, a leading or trailing `.`).
    #[error(
        "empty subject token: an encoded topic level is never empty (the empty level is \"=\")"
    )]
    EmptyToken,
    /// A token holds a byte that encoding always escapes.
    #[error("token {token:?}: byte 0x{byte:02X} at offset {offset} must be written as ={byte:02X}")]
    UnescapedByte {
        /// The rejected token.
        token: String,
        /// Where the byte is, in bytes from the start of the token.
        offset: usize,
        /// The byte.
        byte: u8,
    },
    /// `=` not followed by two hex digits, including a lone `=` inside a longer token.
    #[error("token {token:?}: '=' at offset {offset} is not followed by two hex digits")]
    MalformedEscape {
        /// The rejected token.
        token: String,
        /// Where the `=` is.
        offset: usize,
    },
    /// An escape with lowercase hex digits: only uppercase is canonical.
    #[error("token {token:?}: the escape at offset {offset} must use uppercase hex digits")]
    LowercaseEscape {
        /// The rejected token.
        token: String,
        /// Where the `=` is.
        offset: usize,
    },
    /// An escape of a byte from `[A-Za-z0-9_-]`, which is only ever written as itself.
    #[error("token {token:?}: the escape at offset {offset} stands for {:?}, which must be written as itself", char::from(*byte))]
    EscapedPlainByte {
        /// The rejected token.
        token: String,
        /// Where the `=` is.
        offset: usize,
        /// The escaped byte.
        byte: u8,
    },
    /// The escapes of a token decode to bytes that are not UTF-8.
    #[error("token {token:?} decodes to bytes that are not UTF-8")]
    InvalidUtf8 {
        /// The rejected token.
        token: String,
    },
    /// The subject does not start with this space's prefix and a `.`.
    #[error("subject {subject:?} is not under {prefix:?}")]
    OutsideSpace {
        /// The rejected subject.
        subject: String,
        /// The prefix it was expected under.
        prefix: String,
    },
    /// The subject ends before its first topic level.
    #[error("subject {subject:?} ends before its topic levels")]
    Truncated {
        /// The rejected subject.
        subject: String,
    },
    /// The class or QoS token is not one this scheme writes.
    #[error("subject {subject:?}: the {position} token is {found:?}, expected {expected}")]
    UnexpectedToken {
        /// The rejected subject.
        subject: String,
        /// `"class"` or `"QoS"`.
        position: &'static str,
        /// What may stand there.
        expected: &'static str,
        /// What does.
        found: String,
    },
    /// A token decodes to a string with `/`, which would split into more than one level.
    #[error("token {token:?} decodes to a level containing '/'")]
    SeparatorInLevel {
        /// The rejected token.
        token: String,
    },
    /// The class token disagrees with whether the topic starts with `$`.
    #[error("subject {subject:?}: class {class:?} does not fit its topic's first level")]
    ClassMismatch {
        /// The rejected subject.
        subject: String,
        /// The class token.
        class: &'static str,
    },
    /// The decoded topic is not a valid topic name (empty, `+`, `#`, U+0000, too long).
    #[error("the decoded topic is not a valid topic name: {0}")]
    InvalidTopic(#[from] TopicError),
}

/// The subjects of one tenant in one pool: `m.<pool>.<tenant>` and `r.<pool>.<tenant>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SubjectSpace {
    /// `m.<pool>.<tenant>`.
    messages: String,
    /// `r.<pool>.<tenant>`.
    retained: String,
}

impl SubjectSpace {
    /// The space of `tenant` in `pool`; both must be non-empty and from `[A-Za-z0-9_-]`.
    pub fn new(pool: &str, tenant: &str) -> Result<Self, SubjectError> {
        check_space_token("pool", pool)?;
        check_space_token("tenant", tenant)?;
        Ok(Self {
            messages: format!("{MESSAGES}.{pool}.{tenant}"),
            retained: format!("{RETAINED}.{pool}.{tenant}"),
        })
    }

    /// `m.<pool>.<tenant>`: every message subject of this tenant starts with it and a `.`.
    pub fn prefix(&self) -> &str {
        &self.messages
    }

    /// `r.<pool>.<tenant>`: the subject announcing changes to this tenant's retained messages
    /// (no topic levels, so it never equals a [`retained_subject`](Self::retained_subject)).
    pub fn retained_changes(&self) -> &str {
        &self.retained
    }

    /// The subject to publish a message on `topic` to.
    pub fn publish_subject(&self, topic: &TopicName, q: QosClass) -> String {
        let mut subject = head(
            &self.messages,
            Class::of(topic.is_system()),
            Some(q.token()),
            topic,
        );
        push_levels(&mut subject, topic);
        subject
    }

    /// The subjects to subscribe to for `filter`: one, or two for a trailing `#` after at least
    /// one level (the parent and the parent followed by `>`). `q` restricts them to one QoS class;
    /// `None` receives both.
    pub fn filter_subjects(&self, filter: &TopicFilter, q: Option<QosClass>) -> Vec<String> {
        let q = q.map_or(ANY_TOKEN, QosClass::token);
        let base = head(
            &self.messages,
            Class::of(filter.is_system()),
            Some(q),
            filter,
        );
        subscription_subjects(base, filter)
    }

    /// `m.<pool>.<tenant>.*.1.>`: every QoS 1 and 2 message of this tenant.
    pub fn durable_wildcard(&self) -> String {
        format!(
            "{}.{ANY_TOKEN}.{}.{ANY_TAIL}",
            self.messages,
            QosClass::Durable.token()
        )
    }

    /// The topic and QoS class of a message subject of this space: the inverse of
    /// [`publish_subject`](Self::publish_subject).
    ///
    /// Accepts exactly the subjects `publish_subject` produces; anything else (another space, a
    /// wildcard, a non-canonical token, a class that does not fit the topic, a topic that is not
    /// a valid [`TopicName`]) is an error. The returned topic is always a valid topic name.
    pub fn parse(&self, subject: &str) -> Result<(String, QosClass), SubjectError> {
        let mut tokens = tokens_under(&self.messages, subject)?;
        let class = next_class(subject, &mut tokens)?;
        let q = match tokens.next() {
            None => return Err(truncated(subject)),
            Some(token) => {
                QosClass::from_token(token).ok_or_else(|| SubjectError::UnexpectedToken {
                    subject: subject.to_owned(),
                    position: "QoS",
                    expected: "\"0\" or \"1\"",
                    found: token.to_owned(),
                })?
            }
        };
        let topic = decode_topic(subject, class, tokens)?;
        Ok((topic, q))
    }

    /// The subject of the retained-message notification for `topic`.
    pub fn retained_subject(&self, topic: &TopicName) -> String {
        let mut subject = head(&self.retained, Class::of(topic.is_system()), None, topic);
        push_levels(&mut subject, topic);
        subject
    }

    /// The subjects of the retained-message notifications `filter` matches, built by the same
    /// rules as [`filter_subjects`](Self::filter_subjects).
    pub fn retained_filter_subjects(&self, filter: &TopicFilter) -> Vec<String> {
        let base = head(&self.retained, Class::of(filter.is_system()), None, filter);
        subscription_subjects(base, filter)
    }

    /// The topic of a retained-message notification subject of this space: the inverse of
    /// [`retained_subject`](Self::retained_subject), as strict as [`parse`](Self::parse).
    pub fn parse_retained(&self, subject: &str) -> Result<String, SubjectError> {
        let mut tokens = tokens_under(&self.retained, subject)?;
        let class = next_class(subject, &mut tokens)?;
        decode_topic(subject, class, tokens)
    }
}

/// `gw.<pool>.node.<node>.<verb>`: requests addressed to one edge (e.g. `kick`). Every part must
/// be a non-empty token of `[A-Za-z0-9_-]`, so a node name read from elsewhere cannot widen the
/// subject.
pub fn node_subject(pool: &str, node: &str, verb: &str) -> Result<String, SubjectError> {
    check_space_token("pool", pool)?;
    check_space_token("node", node)?;
    check_space_token("verb", verb)?;
    Ok(format!("gw.{pool}.node.{node}.{verb}"))
}

/// `m.<pool>.*.*.1.>`: the subjects of the pool's JetStream stream, every QoS 1 and 2 message of
/// every tenant.
pub fn stream_subjects(pool: &str) -> Result<String, SubjectError> {
    check_space_token("pool", pool)?;
    Ok(format!(
        "{MESSAGES}.{pool}.{ANY_TOKEN}.{ANY_TOKEN}.{}.{ANY_TAIL}",
        QosClass::Durable.token()
    ))
}

fn check_space_token(role: &'static str, value: &str) -> Result<(), SubjectError> {
    if !value.is_empty() && value.bytes().all(level_codec::is_plain) {
        Ok(())
    } else {
        Err(SubjectError::InvalidSpaceToken {
            role,
            value: value.to_owned(),
        })
    }
}

/// `<prefix>.<class>[.<q>]`, with room for the levels of `topic` when they need no escapes.
fn head(prefix: &str, class: Class, q: Option<&str>, topic: &impl AsRef<str>) -> String {
    let mut subject = String::with_capacity(prefix.len() + 5 + topic.as_ref().len() + 1);
    subject.push_str(prefix);
    subject.push('.');
    subject.push_str(class.token());
    if let Some(q) = q {
        subject.push('.');
        subject.push_str(q);
    }
    subject
}

fn push_levels(subject: &mut String, topic: &TopicName) {
    for level in topic.levels() {
        subject.push('.');
        encode_level(level, subject);
    }
}

/// The subscription subjects of `filter` under `base`: `+` as `*`, and a trailing `#` as the
/// parent subject plus the parent followed by `>`, or `>` alone when `#` is the whole filter.
fn subscription_subjects(mut base: String, filter: &TopicFilter) -> Vec<String> {
    for (index, level) in filter.levels().enumerate() {
        match level {
            SINGLE => {
                base.push('.');
                base.push_str(ANY_TOKEN);
            }
            // Validation puts `#` last, so this is the end of the filter.
            MULTI if index == 0 => {
                base.push('.');
                base.push_str(ANY_TAIL);
                return vec![base];
            }
            MULTI => {
                let mut below = String::with_capacity(base.len() + 2);
                below.push_str(&base);
                below.push('.');
                below.push_str(ANY_TAIL);
                return vec![base, below];
            }
            literal => {
                base.push('.');
                encode_level(literal, &mut base);
            }
        }
    }
    vec![base]
}

/// The tokens of `subject` after `prefix` and a `.`.
fn tokens_under<'a>(
    prefix: &str,
    subject: &'a str,
) -> Result<std::str::Split<'a, char>, SubjectError> {
    subject
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('.'))
        .map(|rest| rest.split('.'))
        .ok_or_else(|| SubjectError::OutsideSpace {
            subject: subject.to_owned(),
            prefix: prefix.to_owned(),
        })
}

fn next_class<'a>(
    subject: &str,
    tokens: &mut impl Iterator<Item = &'a str>,
) -> Result<Class, SubjectError> {
    let token = tokens.next().ok_or_else(|| truncated(subject))?;
    Class::from_token(token).ok_or_else(|| SubjectError::UnexpectedToken {
        subject: subject.to_owned(),
        position: "class",
        expected: "\"u\" or \"s\"",
        found: token.to_owned(),
    })
}

fn truncated(subject: &str) -> SubjectError {
    SubjectError::Truncated {
        subject: subject.to_owned(),
    }
}

/// Decodes the level tokens of `subject` into a topic name of class `class`.
fn decode_topic<'a>(
    subject: &str,
    class: Class,
    tokens: impl Iterator<Item = &'a str>,
) -> Result<String, SubjectError> {
    let mut topic = String::with_capacity(subject.len());
    let mut level_count = 0_usize;
    for token in tokens {
        let level = decode_level(token)?;
        if level.contains('/') {
            return Err(SubjectError::SeparatorInLevel {
                token: token.to_owned(),
            });
        }
        if level_count > 0 {
            topic.push('/');
        }
        topic.push_str(&level);
        level_count += 1;
    }
    if level_count == 0 {
        return Err(truncated(subject));
    }
    // `TopicName` owns the rules for names; the round trip through it moves the buffer, it does
    // not copy it.
    let name = TopicName::try_from(topic)?;
    if Class::of(name.is_system()) != class {
        return Err(SubjectError::ClassMismatch {
            subject: subject.to_owned(),
            class: class.token(),
        });
    }
    Ok(String::from(name.into_inner()))
}

#[cfg(test)]
mod tests;
