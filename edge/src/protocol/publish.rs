//! Turning a client's PUBLISH (or will) into a broker [`Message`]: topic validation against the
//! spec and our limits, property checks the codec cannot make, and the expiry deadline.

use bytes::Bytes;
use bytestring::ByteString;
use stratus_codec::{PublishProperties, QoS, ReasonCode, WillProperties};
use stratus_topics::{TopicLimits, TopicName};
use tokio::time::Instant;

use crate::broker::Message;
use crate::config::Limits;

/// Why a message was refused: the reason code and a line for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PublishError {
    /// Reason code to report (PUBACK/PUBREC, DISCONNECT or CONNACK depending on the path).
    pub(crate) reason: ReasonCode,
    /// What was wrong.
    pub(crate) why: String,
}

impl PublishError {
    fn new(reason: ReasonCode, why: impl Into<String>) -> Self {
        Self {
            reason,
            why: why.into(),
        }
    }
}

/// The topic prefix only the broker may publish to.
pub(crate) const SYS_PREFIX: &str = "$SYS";

/// Validates and builds a message. `properties` must already have any topic alias resolved.
pub(crate) fn build_message(
    topic: ByteString,
    payload: Bytes,
    qos: QoS,
    retain: bool,
    mut properties: PublishProperties,
    limits: &Limits,
    now: Instant,
) -> Result<Message, PublishError> {
    let topic = TopicName::new(topic)
        .map_err(|e| PublishError::new(ReasonCode::TopicNameInvalid, e.to_string()))?;
    TopicLimits {
        max_topic_length: limits.max_topic_length,
        max_levels: limits.max_topic_levels,
    }
    .check_name(&topic)
    .map_err(|e| PublishError::new(ReasonCode::TopicNameInvalid, e.to_string()))?;
    if topic.as_str() == SYS_PREFIX || topic.as_str().starts_with("$SYS/") {
        return Err(PublishError::new(
            ReasonCode::NotAuthorized,
            format!("clients may not publish to {SYS_PREFIX} topics ({topic})"),
        ));
    }
    if !properties.subscription_identifiers.is_empty() {
        return Err(PublishError::new(
            ReasonCode::ProtocolError,
            "a client PUBLISH must not carry a Subscription Identifier [MQTT-3.3.4-6]",
        ));
    }
    if let Some(response) = &properties.response_topic
        && TopicName::new(response.clone()).is_err()
    {
        return Err(PublishError::new(
            ReasonCode::ProtocolError,
            "the Response Topic must be a valid topic name without wildcards [MQTT-3.3.2-14]",
        ));
    }
    if properties.payload_format_indicator == Some(true) && std::str::from_utf8(&payload).is_err() {
        return Err(PublishError::new(
            ReasonCode::PayloadFormatInvalid,
            "Payload Format Indicator says UTF-8 but the payload is not valid UTF-8",
        ));
    }
    properties.topic_alias = None;
    let expires_at = properties
        .message_expiry_interval
        .take()
        .map(|secs| now + std::time::Duration::from_secs(u64::from(secs)));
    let properties = (!properties.is_empty()).then(|| Box::new(properties));
    Ok(Message {
        topic,
        payload,
        qos,
        retain,
        properties,
        expires_at,
    })
}

/// The PUBLISH properties a will carries.
pub(crate) fn will_publish_properties(w: WillProperties) -> PublishProperties {
    PublishProperties {
        payload_format_indicator: w.payload_format_indicator,
        message_expiry_interval: w.message_expiry_interval,
        topic_alias: None,
        response_topic: w.response_topic,
        correlation_data: w.correlation_data,
        user_properties: w.user_properties,
        subscription_identifiers: Vec::new(),
        content_type: w.content_type,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(
        topic: &str,
        props: PublishProperties,
        payload: &'static [u8],
    ) -> Result<Message, PublishError> {
        build_message(
            ByteString::from(topic),
            Bytes::from_static(payload),
            QoS::AtLeastOnce,
            false,
            props,
            &Limits::default(),
            Instant::now(),
        )
    }

    #[test]
    fn wildcard_topics_are_topic_name_invalid() {
        for topic in ["a/+", "a/#", "+", "#", ""] {
            assert_eq!(
                build(topic, Default::default(), b"x").unwrap_err().reason,
                ReasonCode::TopicNameInvalid,
                "{topic}"
            );
        }
    }

    #[test]
    fn sys_topics_are_reserved_for_the_broker() {
        assert_eq!(
            build("$SYS/x", Default::default(), b"x")
                .unwrap_err()
                .reason,
            ReasonCode::NotAuthorized
        );
        assert!(build("$foo/x", Default::default(), b"x").is_ok());
    }

    #[test]
    fn property_rules_are_enforced() {
        let props = PublishProperties {
            response_topic: Some("a/+/b".into()),
            ..Default::default()
        };
        assert_eq!(
            build("t", props, b"x").unwrap_err().reason,
            ReasonCode::ProtocolError
        );
        let props = PublishProperties {
            payload_format_indicator: Some(true),
            ..Default::default()
        };
        assert_eq!(
            build("t", props, b"\xff").unwrap_err().reason,
            ReasonCode::PayloadFormatInvalid
        );
        let props = PublishProperties {
            subscription_identifiers: vec![std::num::NonZeroU32::MIN],
            ..Default::default()
        };
        assert_eq!(
            build("t", props, b"x").unwrap_err().reason,
            ReasonCode::ProtocolError
        );
    }

    #[test]
    fn messages_without_properties_carry_none() {
        let msg = build("t", Default::default(), b"x").unwrap();
        assert!(msg.properties.is_none());
        let props = PublishProperties {
            message_expiry_interval: Some(5),
            ..Default::default()
        };
        let msg = build("t", props, b"x").unwrap();
        assert!(
            msg.properties.is_none(),
            "the expiry becomes a deadline, not a stored property"
        );
        assert!(msg.expires_at.is_some());
    }
}
