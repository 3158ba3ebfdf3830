//! `$SYS/broker/...` topics, per tenant: each tenant sees only its own figures, published as
//! retained QoS 0 messages every `sys.interval_secs`.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use stratus_codec::QoS;
use stratus_topics::TopicName;
use tokio::time::Instant;

use super::Broker;
use super::message::Message;
use super::tenant::Tenant;

/// The version string published at `$SYS/broker/version`.
pub(crate) const VERSION: &str = concat!("stratus ", env!("CARGO_PKG_VERSION"));

impl Broker {
    /// Publishes one round of `$SYS` values for every tenant.
    pub(crate) fn publish_sys(&self, now: Instant) {
        let uptime = now.saturating_duration_since(self.started()).as_secs();
        for tenant in self.tenants() {
            for (topic, value) in sys_values(&tenant, uptime) {
                self.publish_sys_value(&tenant, topic, value);
            }
        }
    }

    fn publish_sys_value(&self, tenant: &Tenant, topic: &'static str, value: String) {
        let Ok(topic) = TopicName::try_from(topic) else {
            return;
        };
        let msg = Arc::new(Message {
            topic,
            payload: Bytes::from(value),
            qos: QoS::AtMostOnce,
            retain: true,
            properties: None,
            expires_at: None,
        });
        if let Err(reason) = self.publish(tenant, &msg, None, None) {
            tracing::debug!(tenant = %tenant.id, ?reason, "$SYS value not retained");
        }
    }

    /// Publishes `$SYS` values every `interval` until dropped.
    pub(crate) async fn run_sys(self: Arc<Self>, interval: Duration) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.publish_sys(Instant::now());
        }
    }
}

/// The `$SYS` topics and their current values for one tenant.
fn sys_values(tenant: &Tenant, uptime_secs: u64) -> Vec<(&'static str, String)> {
    let s = &tenant.stats;
    let sessions = tenant.sessions.lock().len();
    let subscriptions = tenant.subscriptions.read().len();
    let retained = tenant.retained.read().len();
    let connected = tenant.connections.load(Ordering::Relaxed);
    vec![
        ("$SYS/broker/version", VERSION.to_owned()),
        ("$SYS/broker/uptime", format!("{uptime_secs} seconds")),
        ("$SYS/broker/clients/connected", connected.to_string()),
        ("$SYS/broker/clients/total", sessions.to_string()),
        (
            "$SYS/broker/clients/disconnected",
            sessions.saturating_sub(connected).to_string(),
        ),
        (
            "$SYS/broker/messages/received",
            s.messages_received.load(Ordering::Relaxed).to_string(),
        ),
        (
            "$SYS/broker/messages/sent",
            s.messages_sent.load(Ordering::Relaxed).to_string(),
        ),
        (
            "$SYS/broker/messages/dropped",
            s.messages_dropped.load(Ordering::Relaxed).to_string(),
        ),
        (
            "$SYS/broker/bytes/received",
            s.bytes_received.load(Ordering::Relaxed).to_string(),
        ),
        (
            "$SYS/broker/bytes/sent",
            s.bytes_sent.load(Ordering::Relaxed).to_string(),
        ),
        ("$SYS/broker/subscriptions/count", subscriptions.to_string()),
        ("$SYS/broker/retained messages/count", retained.to_string()),
    ]
}
