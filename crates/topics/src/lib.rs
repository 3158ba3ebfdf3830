//! `stratus-topics`: MQTT topic semantics (MQTT 3.1.1 section 4.7, MQTT 5.0 sections 4.7 and
//! 4.8.2).
//!
//! - [`TopicName`] and [`TopicFilter`]: validated, [`ByteString`](bytestring::ByteString)-backed
//!   strings that cannot hold an invalid topic; raw strings do not cross module boundaries.
//! - [`FilterSpec`] and [`ShareName`]: a SUBSCRIBE entry, shared (`$share/{name}/{filter}`) or not.
//! - [`TopicLimits`]: the server's own bounds on length and depth, checked before anything is
//!   indexed.
//! - [`TopicError`]: why a topic was rejected, naming the spec rule.
//! - [`SubscriptionTrie`]: filters to subscribers, matched against every PUBLISH.
//! - [`TopicTree`]: topic names to retained values, searched with a filter on SUBSCRIBE.
//!
//! [`TopicFilter::matches`] is the reference definition of matching; both indexes are
//! property-tested against it.
//!
//! ```
//! use stratus_topics::{FilterSpec, SubscriptionTrie, TopicName, TopicTree};
//!
//! let spec = FilterSpec::try_from("$share/workers/sensors/+/temperature")?;
//! assert_eq!(spec.share.as_ref().map(|s| s.as_str()), Some("workers"));
//!
//! let mut subscriptions = SubscriptionTrie::new();
//! subscriptions.insert(&spec.filter, 42_u64, 1_u8);
//! let topic = TopicName::try_from("sensors/kitchen/temperature")?;
//! let mut matched = Vec::new();
//! subscriptions.for_each_match(&topic, |session, qos| matched.push((*session, *qos)));
//! assert_eq!(matched, [(42, 1)]);
//!
//! let mut retained = TopicTree::new();
//! retained.insert(&topic, "21.5");
//! let mut found = Vec::new();
//! retained.for_each_match(&spec.filter, |name, value| found.push((name.as_str(), *value)));
//! assert_eq!(found, [("sensors/kitchen/temperature", "21.5")]);
//! # Ok::<(), stratus_topics::TopicError>(())
//! ```
//!
//! Architecture invariant: this crate does no I/O, holds no locks and never panics on input;
//! callers own concurrency (one index per tenant, behind whatever lock or owner task they choose).

mod compact_map;
mod error;
mod filter;
mod level;
mod level_trie;
mod limits;
mod name;
mod share;
mod subject;
mod tree;
mod trie;

pub use error::TopicError;
pub use filter::TopicFilter;
pub use level::Levels;
pub use limits::TopicLimits;
pub use name::TopicName;
pub use share::{FilterSpec, ShareName};
pub use subject::{
    QosClass, SubjectError, SubjectSpace, client_key, decode_level, encode_level, node_subject,
    stream_subjects,
};
pub use tree::{TopicTree, TopicTreeIter};
pub use trie::SubscriptionTrie;

/// The longest topic name or filter the protocol allows, in bytes [MQTT-4.7.3-3].
pub const MAX_TOPIC_LEN: usize = 65_535;
