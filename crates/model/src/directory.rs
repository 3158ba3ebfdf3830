//! What the edge reads from the control plane: tenants, devices and their credentials, access
//! rules and JWT keys, and a stream of change events so cached answers are dropped within seconds
//! of a change. In `stratus dev` the control plane implements [`Directory`] over its database in
//! the same process; in the clustered shape it is reached over HTTP and NATS.

use serde::{Deserialize, Serialize};
use stratus_policy::{Action, Effect};
use tokio::sync::broadcast;

use crate::TenantId;

/// Whether a tenant may connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TenantStatus {
    /// Serving.
    Active,
    /// Refused (connections get "not authorized").
    Suspended,
}

/// A tenant as the edge needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantRecord {
    /// Slug.
    pub id: TenantId,
    /// Serving or suspended.
    pub status: TenantStatus,
    /// Effect when no access rule matches.
    pub default_effect: Effect,
    /// Whether clients without credentials may connect.
    pub allow_anonymous: bool,
}

/// A device: a client id (or pattern) bound to credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRecord {
    /// Control-plane id.
    pub id: String,
    /// Tenant.
    pub tenant: TenantId,
    /// The exact client id this device uses, if bound.
    pub client_id: Option<String>,
    /// A client-id pattern (`*` matches any run of characters) this device may use, if bound.
    pub client_id_pattern: Option<String>,
    /// User name for password or JWT authentication.
    pub username: Option<String>,
    /// argon2id PHC hash of the password.
    pub password_hash: Option<String>,
    /// Whether the device may authenticate with a JWT signed by one of the tenant's keys (sent as
    /// the MQTT password).
    pub jwt: bool,
    /// SHA-256 fingerprint (lowercase hex) of the device's client certificate.
    pub cert_fingerprint: Option<String>,
    /// Subject (RFC 4514) of the device's client certificate.
    pub cert_subject: Option<String>,
    /// Disabled devices cannot connect.
    pub enabled: bool,
}

impl DeviceRecord {
    /// Whether this device may use `client_id` (no binding means any client id).
    pub fn allows_client_id(&self, client_id: &str) -> bool {
        match (&self.client_id, &self.client_id_pattern) {
            (None, None) => true,
            (exact, pattern) => {
                exact.as_deref() == Some(client_id)
                    || pattern
                        .as_deref()
                        .is_some_and(|p| glob_matches(p, client_id))
            }
        }
    }

    /// Whether this device claims `client_id` (so nobody else may use it).
    pub fn claims_client_id(&self, client_id: &str) -> bool {
        self.client_id.as_deref() == Some(client_id)
            || self
                .client_id_pattern
                .as_deref()
                .is_some_and(|p| glob_matches(p, client_id))
    }
}

/// `*` matches any run of characters (including none); everything else matches itself.
pub fn glob_matches(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let [first, middle @ .., last] = parts.as_slice() else {
        return pattern == text;
    };
    if parts.len() == 1 {
        return pattern == text;
    }
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}

/// An access rule as stored (the filter is validated again when loaded).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclRuleRecord {
    /// Control-plane id.
    pub id: String,
    /// Allow or deny.
    pub effect: Effect,
    /// Publish, subscribe or all.
    pub action: Action,
    /// Topic filter with optional `${clientid}`, `${username}`, `${tenant}` placeholders.
    pub filter: String,
    /// Only for this user name.
    pub username: Option<String>,
    /// Only for this client id.
    pub client_id: Option<String>,
    /// Higher first.
    pub priority: i32,
}

/// A JWT signature algorithm devices may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JwtAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// ECDSA P-256 with SHA-256.
    ES256,
    /// Ed25519.
    EdDSA,
}

/// A tenant key that verifies device JWTs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwtKeyRecord {
    /// Control-plane id (also matched against the JWT `kid` header when present).
    pub id: String,
    /// Algorithm.
    pub algorithm: JwtAlgorithm,
    /// Public key, PEM.
    pub public_key_pem: String,
    /// Required `aud` claim, if any.
    pub audience: Option<String>,
}

/// The NATS subject the control plane publishes every [`ChangeEvent`] on (core NATS, one JSON
/// message per event), and every edge subscribes to.
pub const CHANGE_SUBJECT: &str = "ctl.changes";

/// Something changed in a tenant; cached answers about it must be dropped.
///
/// On NATS ([`CHANGE_SUBJECT`]) each event is one JSON message in serde's externally tagged form.
/// This form is a wire contract between versions of the control plane and the edge: variants and
/// field names are never renamed or removed. A receiver logs and skips a message it cannot parse,
/// so a new variant may be sent only once every edge understands it.
///
/// | event | JSON |
/// |---|---|
/// | `Tenant(acme)` | `{"Tenant":"acme"}` |
/// | `Device { tenant: acme, device_id: "d1" }` | `{"Device":{"tenant":"acme","device_id":"d1"}}` |
/// | `Rules(acme)` | `{"Rules":"acme"}` |
/// | `JwtKeys(acme)` | `{"JwtKeys":"acme"}` |
/// | `Resync` | `"Resync"` |
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChangeEvent {
    /// The tenant itself (status, default effect, anonymous access) or it was deleted.
    Tenant(TenantId),
    /// A device was created, changed or deleted.
    Device {
        /// Tenant.
        tenant: TenantId,
        /// Device id.
        device_id: String,
    },
    /// Access rules changed.
    Rules(TenantId),
    /// JWT keys changed.
    JwtKeys(TenantId),
    /// The receiver may have missed events (its connection to the event stream was interrupted,
    /// or it fell behind): drop every cached answer, for every tenant.
    Resync,
}

/// Why a directory read failed (the edge then refuses with "server unavailable", never allows).
#[derive(Debug, thiserror::Error)]
#[error("directory unavailable: {0}")]
pub struct DirectoryError(pub String);

/// Read access to the control plane's data for one edge.
#[async_trait::async_trait]
pub trait Directory: Send + Sync + std::fmt::Debug {
    /// A tenant, if it exists.
    async fn tenant(&self, id: &TenantId) -> Result<Option<TenantRecord>, DirectoryError>;
    /// The device with this user name in the tenant.
    async fn device_by_username(
        &self,
        tenant: &TenantId,
        username: &str,
    ) -> Result<Option<DeviceRecord>, DirectoryError>;
    /// The device whose certificate has this fingerprint, or else this subject.
    async fn device_by_certificate(
        &self,
        tenant: &TenantId,
        fingerprint: &str,
        subject: &str,
    ) -> Result<Option<DeviceRecord>, DirectoryError>;
    /// Every device of the tenant that claims `client_id` (exactly or by pattern).
    async fn devices_claiming_client_id(
        &self,
        tenant: &TenantId,
        client_id: &str,
    ) -> Result<Vec<DeviceRecord>, DirectoryError>;
    /// The tenant's access rules.
    async fn acl_rules(&self, tenant: &TenantId) -> Result<Vec<AclRuleRecord>, DirectoryError>;
    /// The tenant's JWT verification keys.
    async fn jwt_keys(&self, tenant: &TenantId) -> Result<Vec<JwtKeyRecord>, DirectoryError>;
    /// Change events from now on.
    fn changes(&self) -> broadcast::Receiver<ChangeEvent>;
}

#[cfg(test)]
mod tests {
    use super::glob_matches;

    #[test]
    fn glob_patterns_match_runs_of_characters() {
        assert!(glob_matches("sensor-*", "sensor-1"));
        assert!(glob_matches("sensor-*", "sensor-"));
        assert!(!glob_matches("sensor-*", "sensor"));
        assert!(glob_matches("*-gw-*", "eu-gw-7"));
        assert!(!glob_matches("*-gw-*", "eu-gx-7"));
        assert!(glob_matches("exact", "exact"));
        assert!(!glob_matches("exact", "exact2"));
        assert!(glob_matches("*", ""));
        assert!(glob_matches("a*b*c", "abc"));
        assert!(!glob_matches("a*b*c", "acb"));
    }
}
