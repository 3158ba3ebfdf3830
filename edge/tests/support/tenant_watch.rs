//! Observers that show which tenant a message landed in: one rumqttc 5.0 client per tenant,
//! connected over plain TCP as `watch@<tenant>` and subscribed to `#`, so a test can assert that
//! what a third-party client published through a tenant endpoint (SNI, WebSocket Host, user
//! name) reached that tenant and no other.
//!
//! Absence is checked with a fence: each observer publishes to `watch/fence` in its own tenant and
//! takes everything it received before its fence came back. Observers subscribe at QoS 0 and
//! fence at QoS 0, so every delivery to them shares one ordered queue.

use std::net::SocketAddr;

use super::clients::{Q5, V5Client, topic5};

const FENCE: &str = "watch/fence";

/// One observer per tenant.
pub struct TenantWatch {
    observers: Vec<(String, V5Client)>,
}

impl TenantWatch {
    /// Connects an observer for each of `tenants` to the plain MQTT listener at `mqtt`.
    pub async fn start(mqtt: SocketAddr, tenants: &[&str]) -> Self {
        let mut observers = Vec::new();
        for tenant in tenants {
            let mut c = V5Client::connect_with(mqtt, &format!("watch-{tenant}"), |o| {
                o.set_credentials(format!("watch@{tenant}"), "");
            })
            .await;
            c.subscribe("#", Q5::AtMostOnce).await;
            observers.push(((*tenant).to_owned(), c));
        }
        Self { observers }
    }

    /// Every message `tenant`'s observer received so far (fenced), as `(topic, payload)`.
    pub async fn received(&mut self, tenant: &str) -> Vec<(String, String)> {
        let (_, observer) = self
            .observers
            .iter_mut()
            .find(|(t, _)| t == tenant)
            .unwrap_or_else(|| panic!("no observer for tenant {tenant}"));
        observer
            .publish(FENCE, Q5::AtMostOnce, false, tenant.to_owned())
            .await;
        observer
            .recv_until(FENCE)
            .await
            .iter()
            .map(|p| {
                (
                    topic5(p).to_owned(),
                    String::from_utf8_lossy(&p.payload).into_owned(),
                )
            })
            .collect()
    }

    /// Asserts that `tenant` received a message on each of `topics` and that every other
    /// observed tenant received nothing at all.
    pub async fn assert_only_in(&mut self, tenant: &str, topics: &[&str]) {
        let tenants: Vec<String> = self.observers.iter().map(|(t, _)| t.clone()).collect();
        for other in tenants {
            let got = self.received(&other).await;
            if other == tenant {
                for topic in topics {
                    assert!(
                        got.iter().any(|(t, _)| t == topic),
                        "tenant {tenant} did not receive {topic}; it received {got:?}"
                    );
                }
            } else {
                assert!(
                    got.is_empty(),
                    "tenant {other} received messages meant for {tenant}: {got:?}"
                );
            }
        }
    }

    /// Asserts that no observed tenant received anything since the last check.
    pub async fn assert_quiet(&mut self) {
        let tenants: Vec<String> = self.observers.iter().map(|(t, _)| t.clone()).collect();
        for tenant in tenants {
            let got = self.received(&tenant).await;
            assert!(got.is_empty(), "tenant {tenant} received {got:?}");
        }
    }
}
