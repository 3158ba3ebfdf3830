//! CONNECT handling: everything between a decoded CONNECT and a CONNACK. Validates what the codec
//! cannot (client id rules, keep-alive and expiry caps, the will's topic), authenticates, attaches
//! the session, and builds the CONNACK with the limits this server enforces.

use std::sync::Arc;

use bytestring::ByteString;
use stratus_codec::{ConnAck, ConnAckProperties, Connect, ProtocolVersion, ReasonCode};
use tokio::time::Instant;

use super::engine::{ClientLimits, Engine};
use super::publish::{PublishError, build_message, will_publish_properties};
use crate::access::Principal;
use crate::broker::{AttachRequest, Broker, ConnControl, PendingWill, Tenant};
use crate::config::Limits;

/// A refused CONNECT: the CONNACK to send (if any) before closing, and why, for the log.
#[derive(Debug)]
pub(crate) struct Refusal {
    /// CONNACK with a failure code, or `None` to close silently.
    pub(crate) connack: Option<ConnAck>,
    /// What went wrong.
    pub(crate) why: String,
}

impl Refusal {
    fn with(reason: ReasonCode, why: impl Into<String>) -> Box<Self> {
        Box::new(Self {
            connack: Some(failure(reason)),
            why: why.into(),
        })
    }

    fn silent(why: impl Into<String>) -> Box<Self> {
        Box::new(Self {
            connack: None,
            why: why.into(),
        })
    }
}

/// A CONNACK carrying a failure code.
pub(crate) fn failure(reason: ReasonCode) -> ConnAck {
    ConnAck {
        session_present: false,
        reason,
        properties: ConnAckProperties::default(),
    }
}

/// Accepts or refuses an authenticated CONNECT.
pub(crate) fn accept(
    broker: &Arc<Broker>,
    tenant: &Arc<Tenant>,
    connect: Connect,
    principal: Arc<Principal>,
    token: u64,
    assigned: Option<ByteString>,
    now: Instant,
) -> Result<(Engine, ConnAck), Box<Refusal>> {
    let limits = &broker.config.limits;
    let version = connect.protocol;
    let v5 = version.is_v5();
    let mut props = ConnAckProperties::default();

    if v5 && connect.properties.authentication_method.is_some() {
        return Err(Refusal::with(
            ReasonCode::BadAuthenticationMethod,
            "enhanced authentication (AUTH) is not supported; connect with a user name and password",
        ));
    }

    // Client identifier.
    // Kept for the session's lifetime: copy it out of the read buffer, which it would pin.
    let mut client_id = ByteString::from(&*connect.client_id);
    if client_id.is_empty() {
        if version == ProtocolVersion::V3_1 || (!v5 && !connect.clean_start) {
            // [MQTT-3.1.3-8]: a zero-length id needs Clean Session = 1.
            return Err(Refusal::with(
                ReasonCode::ClientIdentifierNotValid,
                "empty client id without clean session",
            ));
        }
        client_id = assigned.unwrap_or_else(|| assigned_client_id(broker));
        if v5 {
            props.assigned_client_identifier = Some(client_id.clone());
        }
    } else if client_id.len() > limits.max_client_id_length {
        return Err(Refusal::with(
            ReasonCode::ClientIdentifierNotValid,
            format!(
                "client id of {} bytes is longer than limits.max_client_id_length ({})",
                client_id.len(),
                limits.max_client_id_length
            ),
        ));
    }

    // Keep alive.
    let mut keep_alive = connect.keep_alive;
    if keep_alive > limits.max_keep_alive || (keep_alive == 0 && limits.max_keep_alive < u16::MAX) {
        if v5 {
            keep_alive = limits.max_keep_alive;
            props.server_keep_alive = Some(keep_alive);
        } else if keep_alive > limits.max_keep_alive {
            return Err(Refusal::with(
                ReasonCode::ClientIdentifierNotValid,
                format!(
                    "keep-alive {}s exceeds limits.max_keep_alive ({}s); MQTT 3.1.1 cannot be told \
                     a lower value",
                    keep_alive, limits.max_keep_alive
                ),
            ));
        }
    }

    // Session expiry.
    let requested_expiry = requested_expiry(&connect);
    let expiry_secs = requested_expiry.min(limits.max_session_expiry);
    if v5 && expiry_secs != requested_expiry {
        props.session_expiry_interval = Some(expiry_secs);
    }

    // Will.
    let will = match connect.will {
        None => None,
        Some(mut w) => {
            let delay_secs = w.properties.will_delay_interval.unwrap_or(0);
            // The will's expiry starts when it is published, not now.
            let expiry_secs = w.properties.message_expiry_interval.take();
            match build_message(
                w.topic,
                w.payload,
                w.qos,
                w.retain,
                will_publish_properties(w.properties),
                limits,
                now,
            ) {
                Ok(msg) => {
                    // A token's topic grants cannot change while the connection lasts, so a will
                    // they do not cover is refused now (the tenant's rules, which can change,
                    // are checked when the will is published).
                    let who = stratus_policy::Identity {
                        tenant: tenant.id.as_str(),
                        client_id: &client_id,
                        username: principal.username.as_deref(),
                    };
                    if let Some(grants) = &principal.grants
                        && !grants.allows_publish(&msg.topic, &who)
                    {
                        return Err(Refusal::with(
                            ReasonCode::NotAuthorized,
                            format!(
                                "the client's token does not allow its will topic {}",
                                msg.topic
                            ),
                        ));
                    }
                    // Kept until the connection ends: compact it out of the read buffer.
                    Some(PendingWill {
                        msg: Arc::new(msg).compacted(),
                        delay_secs,
                        expiry_secs,
                        client_id: client_id.clone(),
                        username: principal.username.clone(),
                    })
                }
                Err(PublishError { reason, why }) => {
                    let why = format!("invalid will: {why}");
                    return Err(if v5 {
                        Refusal::with(reason, why)
                    } else {
                        Refusal::silent(why)
                    });
                }
            }
        }
    };

    let control = Arc::new(ConnControl::default());
    let attached = broker
        .attach(
            tenant,
            AttachRequest {
                client_id,
                clean_start: connect.clean_start,
                expiry_secs,
                will,
                control: Arc::clone(&control),
                principal: Arc::clone(&principal),
                token,
            },
        )
        .map_err(|reason| Refusal::with(reason, "session refused"))?;

    if v5 {
        props.receive_maximum = std::num::NonZeroU16::new(limits.receive_maximum);
        props.maximum_packet_size = std::num::NonZeroU32::new(limits.max_packet_size);
        props.topic_alias_maximum = Some(limits.topic_alias_maximum);
    }
    let client = ClientLimits {
        receive_maximum: connect
            .properties
            .receive_maximum
            .map_or(u16::MAX, |v| v.get()),
        maximum_packet_size: connect
            .properties
            .maximum_packet_size
            .map_or(stratus_codec::MAX_PACKET_SIZE, |v| v.get()),
        topic_alias_maximum: connect.properties.topic_alias_maximum.unwrap_or(0),
        request_problem_information: connect
            .properties
            .request_problem_information
            .unwrap_or(true),
    };
    let connack = ConnAck {
        session_present: attached.session_present,
        reason: ReasonCode::Success,
        properties: props,
    };
    let engine = Engine::new(
        Arc::clone(broker),
        Arc::clone(tenant),
        attached,
        control,
        version,
        keep_alive,
        client,
        expiry_secs,
        principal,
        now,
    );
    Ok((engine, connack))
}

/// The Session Expiry Interval a CONNECT asks for, before the cap: the 5.0 property, or for
/// 3.1.1 0 with clean session and "as long as allowed" without.
fn requested_expiry(connect: &Connect) -> u32 {
    if connect.protocol == ProtocolVersion::V5 {
        connect.properties.session_expiry_interval.unwrap_or(0)
    } else if connect.clean_start {
        0
    } else {
        u32::MAX
    }
}

/// What a CONNECT asks of its session, for the clustered shape's preparation before it attaches.
pub(crate) fn session_intent(connect: &Connect, limits: &Limits) -> crate::cluster::SessionIntent {
    crate::cluster::SessionIntent {
        clean_start: connect.clean_start,
        expiry_secs: requested_expiry(connect).min(limits.max_session_expiry),
    }
}

/// The client id to claim across the cluster before [`accept`] for a CONNECT with an empty one,
/// when its session outlives the connection (5.0 with a Session Expiry Interval): claimed like
/// any other, the session can move to another edge when the client reconnects with it.
/// `None` otherwise: an assigned id is unique, and a session that ends with its connection has
/// nothing to move.
pub(crate) fn client_id_to_assign(
    broker: &Broker,
    connect: &Connect,
    intent: &crate::cluster::SessionIntent,
) -> Option<ByteString> {
    (connect.client_id.is_empty() && connect.protocol.is_v5() && intent.expiry_secs > 0)
        .then(|| assigned_client_id(broker))
}

/// A fresh client id for a client that sent an empty one.
fn assigned_client_id(broker: &Broker) -> ByteString {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let started = broker.started_unix_ms();
    match broker.cluster() {
        // Unique across edges too.
        Some(link) => ByteString::from(format!("stratus-{}-{n:x}", link.incarnation)),
        None => ByteString::from(format!("stratus-{started:x}-{n:x}")),
    }
}
