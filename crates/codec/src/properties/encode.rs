//! Encoding typed property sets (MQTT 5.0 section 2.2.2).
//!
//! Measuring checks every limit (65,535-byte strings, Subscription Identifier range) and returns
//! the list's length; writing cannot fail and emits only present fields, in the order each
//! packet's properties section lists them, user properties in their stored order.

use bytes::{BufMut, Bytes, BytesMut};
use bytestring::ByteString;
use std::num::NonZeroU32;

use super::scope::id;
use super::{
    AckProperties, AuthProperties, ConnAckProperties, ConnectProperties, DisconnectProperties,
    PublishProperties, SubscribeProperties, UnsubscribeProperties, UserProperty, WillProperties,
};
use crate::MAX_SUBSCRIPTION_IDENTIFIER;
use crate::error::EncodeError;
use crate::wire::{field_len, put_binary, put_vbi, vbi_len};

/// A property set that can be written after a Property Length.
pub(crate) trait EncodeProperties {
    /// Bytes the property list takes, without its Property Length.
    fn measure(&self) -> Result<usize, EncodeError>;

    /// Writes the list; `measure` succeeded.
    fn write(&self, buf: &mut BytesMut);
}

/// Bytes of a property block (Property Length plus list) whose list takes `list` bytes.
pub(crate) const fn block_len(list: usize) -> usize {
    list.saturating_add(vbi_len(list))
}

/// Writes a Property Length and the list it measured.
pub(crate) fn put_block<P: EncodeProperties>(buf: &mut BytesMut, properties: &P, list: usize) {
    put_vbi(buf, list);
    properties.write(buf);
}

const fn fixed<T>(value: &Option<T>, size: usize) -> usize {
    if value.is_some() { 1 + size } else { 0 }
}

fn string(value: &Option<ByteString>, field: &'static str) -> Result<usize, EncodeError> {
    value
        .as_ref()
        .map_or(Ok(0), |v| field_len(v.len(), field).map(|n| 1 + n))
}

fn binary(value: &Option<Bytes>, field: &'static str) -> Result<usize, EncodeError> {
    value
        .as_ref()
        .map_or(Ok(0), |v| field_len(v.len(), field).map(|n| 1 + n))
}

fn users(list: &[UserProperty]) -> Result<usize, EncodeError> {
    list.iter().try_fold(0usize, |total, user| {
        let name = field_len(user.name.len(), "user property name")?;
        let value = field_len(user.value.len(), "user property value")?;
        Ok(total.saturating_add(1 + name + value))
    })
}

fn subscription_identifier(value: NonZeroU32) -> Result<usize, EncodeError> {
    if value.get() > MAX_SUBSCRIPTION_IDENTIFIER {
        return Err(EncodeError::InvalidValue {
            what: "subscription identifier above 268435455",
        });
    }
    Ok(1 + vbi_len(value.get() as usize))
}

/// Adds lengths, saturating so that an absurd total is still caught by the size limit.
fn sum(parts: &[usize]) -> usize {
    parts
        .iter()
        .fold(0usize, |total, part| total.saturating_add(*part))
}

fn put_u8(buf: &mut BytesMut, ident: u8, value: Option<u8>) {
    if let Some(value) = value {
        buf.put_u8(ident);
        buf.put_u8(value);
    }
}

fn put_u16(buf: &mut BytesMut, ident: u8, value: Option<u16>) {
    if let Some(value) = value {
        buf.put_u8(ident);
        buf.put_u16(value);
    }
}

fn put_u32(buf: &mut BytesMut, ident: u8, value: Option<u32>) {
    if let Some(value) = value {
        buf.put_u8(ident);
        buf.put_u32(value);
    }
}

fn put_string(buf: &mut BytesMut, ident: u8, value: &Option<ByteString>) {
    if let Some(value) = value {
        buf.put_u8(ident);
        put_binary(buf, value.as_bytes());
    }
}

fn put_bytes(buf: &mut BytesMut, ident: u8, value: &Option<Bytes>) {
    if let Some(value) = value {
        buf.put_u8(ident);
        put_binary(buf, value);
    }
}

fn put_users(buf: &mut BytesMut, list: &[UserProperty]) {
    for user in list {
        buf.put_u8(id::USER_PROPERTY);
        put_binary(buf, user.name.as_bytes());
        put_binary(buf, user.value.as_bytes());
    }
}

fn put_subscription_identifier(buf: &mut BytesMut, value: NonZeroU32) {
    buf.put_u8(id::SUBSCRIPTION_IDENTIFIER);
    put_vbi(buf, value.get() as usize);
}

impl EncodeProperties for ConnectProperties {
    fn measure(&self) -> Result<usize, EncodeError> {
        Ok(sum(&[
            fixed(&self.session_expiry_interval, 4),
            fixed(&self.receive_maximum, 2),
            fixed(&self.maximum_packet_size, 4),
            fixed(&self.topic_alias_maximum, 2),
            fixed(&self.request_response_information, 1),
            fixed(&self.request_problem_information, 1),
            users(&self.user_properties)?,
            string(&self.authentication_method, "authentication method")?,
            binary(&self.authentication_data, "authentication data")?,
        ]))
    }

    fn write(&self, buf: &mut BytesMut) {
        put_u32(
            buf,
            id::SESSION_EXPIRY_INTERVAL,
            self.session_expiry_interval,
        );
        put_u16(
            buf,
            id::RECEIVE_MAXIMUM,
            self.receive_maximum.map(|v| v.get()),
        );
        put_u32(
            buf,
            id::MAXIMUM_PACKET_SIZE,
            self.maximum_packet_size.map(|v| v.get()),
        );
        put_u16(buf, id::TOPIC_ALIAS_MAXIMUM, self.topic_alias_maximum);
        put_u8(
            buf,
            id::REQUEST_RESPONSE_INFORMATION,
            self.request_response_information.map(u8::from),
        );
        put_u8(
            buf,
            id::REQUEST_PROBLEM_INFORMATION,
            self.request_problem_information.map(u8::from),
        );
        put_users(buf, &self.user_properties);
        put_string(buf, id::AUTHENTICATION_METHOD, &self.authentication_method);
        put_bytes(buf, id::AUTHENTICATION_DATA, &self.authentication_data);
    }
}

impl EncodeProperties for WillProperties {
    fn measure(&self) -> Result<usize, EncodeError> {
        Ok(sum(&[
            fixed(&self.will_delay_interval, 4),
            fixed(&self.payload_format_indicator, 1),
            fixed(&self.message_expiry_interval, 4),
            string(&self.content_type, "content type")?,
            string(&self.response_topic, "response topic")?,
            binary(&self.correlation_data, "correlation data")?,
            users(&self.user_properties)?,
        ]))
    }

    fn write(&self, buf: &mut BytesMut) {
        put_u32(buf, id::WILL_DELAY_INTERVAL, self.will_delay_interval);
        put_u8(
            buf,
            id::PAYLOAD_FORMAT_INDICATOR,
            self.payload_format_indicator.map(u8::from),
        );
        put_u32(
            buf,
            id::MESSAGE_EXPIRY_INTERVAL,
            self.message_expiry_interval,
        );
        put_string(buf, id::CONTENT_TYPE, &self.content_type);
        put_string(buf, id::RESPONSE_TOPIC, &self.response_topic);
        put_bytes(buf, id::CORRELATION_DATA, &self.correlation_data);
        put_users(buf, &self.user_properties);
    }
}

impl EncodeProperties for ConnAckProperties {
    fn measure(&self) -> Result<usize, EncodeError> {
        Ok(sum(&[
            fixed(&self.session_expiry_interval, 4),
            fixed(&self.receive_maximum, 2),
            fixed(&self.maximum_qos, 1),
            fixed(&self.retain_available, 1),
            fixed(&self.maximum_packet_size, 4),
            string(
                &self.assigned_client_identifier,
                "assigned client identifier",
            )?,
            fixed(&self.topic_alias_maximum, 2),
            string(&self.reason_string, "reason string")?,
            users(&self.user_properties)?,
            fixed(&self.wildcard_subscription_available, 1),
            fixed(&self.subscription_identifiers_available, 1),
            fixed(&self.shared_subscription_available, 1),
            fixed(&self.server_keep_alive, 2),
            string(&self.response_information, "response information")?,
            string(&self.server_reference, "server reference")?,
            string(&self.authentication_method, "authentication method")?,
            binary(&self.authentication_data, "authentication data")?,
        ]))
    }

    fn write(&self, buf: &mut BytesMut) {
        put_u32(
            buf,
            id::SESSION_EXPIRY_INTERVAL,
            self.session_expiry_interval,
        );
        put_u16(
            buf,
            id::RECEIVE_MAXIMUM,
            self.receive_maximum.map(|v| v.get()),
        );
        put_u8(buf, id::MAXIMUM_QOS, self.maximum_qos.map(|q| q.as_u8()));
        put_u8(
            buf,
            id::RETAIN_AVAILABLE,
            self.retain_available.map(u8::from),
        );
        put_u32(
            buf,
            id::MAXIMUM_PACKET_SIZE,
            self.maximum_packet_size.map(|v| v.get()),
        );
        put_string(
            buf,
            id::ASSIGNED_CLIENT_IDENTIFIER,
            &self.assigned_client_identifier,
        );
        put_u16(buf, id::TOPIC_ALIAS_MAXIMUM, self.topic_alias_maximum);
        put_string(buf, id::REASON_STRING, &self.reason_string);
        put_users(buf, &self.user_properties);
        put_u8(
            buf,
            id::WILDCARD_SUBSCRIPTION_AVAILABLE,
            self.wildcard_subscription_available.map(u8::from),
        );
        put_u8(
            buf,
            id::SUBSCRIPTION_IDENTIFIER_AVAILABLE,
            self.subscription_identifiers_available.map(u8::from),
        );
        put_u8(
            buf,
            id::SHARED_SUBSCRIPTION_AVAILABLE,
            self.shared_subscription_available.map(u8::from),
        );
        put_u16(buf, id::SERVER_KEEP_ALIVE, self.server_keep_alive);
        put_string(buf, id::RESPONSE_INFORMATION, &self.response_information);
        put_string(buf, id::SERVER_REFERENCE, &self.server_reference);
        put_string(buf, id::AUTHENTICATION_METHOD, &self.authentication_method);
        put_bytes(buf, id::AUTHENTICATION_DATA, &self.authentication_data);
    }
}

impl EncodeProperties for PublishProperties {
    fn measure(&self) -> Result<usize, EncodeError> {
        let mut subscription_identifiers = 0usize;
        for value in &self.subscription_identifiers {
            subscription_identifiers =
                subscription_identifiers.saturating_add(subscription_identifier(*value)?);
        }
        Ok(sum(&[
            fixed(&self.payload_format_indicator, 1),
            fixed(&self.message_expiry_interval, 4),
            fixed(&self.topic_alias, 2),
            string(&self.response_topic, "response topic")?,
            binary(&self.correlation_data, "correlation data")?,
            users(&self.user_properties)?,
            subscription_identifiers,
            string(&self.content_type, "content type")?,
        ]))
    }

    fn write(&self, buf: &mut BytesMut) {
        put_u8(
            buf,
            id::PAYLOAD_FORMAT_INDICATOR,
            self.payload_format_indicator.map(u8::from),
        );
        put_u32(
            buf,
            id::MESSAGE_EXPIRY_INTERVAL,
            self.message_expiry_interval,
        );
        put_u16(buf, id::TOPIC_ALIAS, self.topic_alias.map(|v| v.get()));
        put_string(buf, id::RESPONSE_TOPIC, &self.response_topic);
        put_bytes(buf, id::CORRELATION_DATA, &self.correlation_data);
        put_users(buf, &self.user_properties);
        for value in &self.subscription_identifiers {
            put_subscription_identifier(buf, *value);
        }
        put_string(buf, id::CONTENT_TYPE, &self.content_type);
    }
}

impl EncodeProperties for AckProperties {
    fn measure(&self) -> Result<usize, EncodeError> {
        Ok(sum(&[
            string(&self.reason_string, "reason string")?,
            users(&self.user_properties)?,
        ]))
    }

    fn write(&self, buf: &mut BytesMut) {
        put_string(buf, id::REASON_STRING, &self.reason_string);
        put_users(buf, &self.user_properties);
    }
}

impl EncodeProperties for SubscribeProperties {
    fn measure(&self) -> Result<usize, EncodeError> {
        let identifier = match self.subscription_identifier {
            Some(value) => subscription_identifier(value)?,
            None => 0,
        };
        Ok(sum(&[identifier, users(&self.user_properties)?]))
    }

    fn write(&self, buf: &mut BytesMut) {
        if let Some(value) = self.subscription_identifier {
            put_subscription_identifier(buf, value);
        }
        put_users(buf, &self.user_properties);
    }
}

impl EncodeProperties for UnsubscribeProperties {
    fn measure(&self) -> Result<usize, EncodeError> {
        users(&self.user_properties)
    }

    fn write(&self, buf: &mut BytesMut) {
        put_users(buf, &self.user_properties);
    }
}

impl EncodeProperties for DisconnectProperties {
    fn measure(&self) -> Result<usize, EncodeError> {
        Ok(sum(&[
            fixed(&self.session_expiry_interval, 4),
            string(&self.reason_string, "reason string")?,
            users(&self.user_properties)?,
            string(&self.server_reference, "server reference")?,
        ]))
    }

    fn write(&self, buf: &mut BytesMut) {
        put_u32(
            buf,
            id::SESSION_EXPIRY_INTERVAL,
            self.session_expiry_interval,
        );
        put_string(buf, id::REASON_STRING, &self.reason_string);
        put_users(buf, &self.user_properties);
        put_string(buf, id::SERVER_REFERENCE, &self.server_reference);
    }
}

impl EncodeProperties for AuthProperties {
    fn measure(&self) -> Result<usize, EncodeError> {
        Ok(sum(&[
            string(&self.authentication_method, "authentication method")?,
            binary(&self.authentication_data, "authentication data")?,
            string(&self.reason_string, "reason string")?,
            users(&self.user_properties)?,
        ]))
    }

    fn write(&self, buf: &mut BytesMut) {
        put_string(buf, id::AUTHENTICATION_METHOD, &self.authentication_method);
        put_bytes(buf, id::AUTHENTICATION_DATA, &self.authentication_data);
        put_string(buf, id::REASON_STRING, &self.reason_string);
        put_users(buf, &self.user_properties);
    }
}
