//! Who a connecting client is and what it may do: authentication against the control plane's
//! directory (passwords, JWTs, client certificates), client-id binding, brute-force limits, and
//! each tenant's access rules, kept current by the control plane's change events (see
//! `revocation.rs`).
//!
//! The tenant comes from [`crate::tenancy`] (endpoint or `device@tenant`), else from the client
//! certificate's issuing tenant, else the default tenant. Every failure fails closed: a directory
//! that cannot be read refuses the client ("server unavailable"), never admits it.

mod credentials;
mod limiter;
mod policy;
mod revocation;
mod shared_failures;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use bytestring::ByteString;
use stratus_codec::ReasonCode;
use stratus_model::{DeviceRecord, Directory, DirectoryError, TenantId};
use tokio::time::Instant;

use crate::broker::{Broker, Tenant};
use crate::listener::ClientCertificate;
use crate::tenancy::TenantClaim;
pub(crate) use credentials::JwtGrants;
use credentials::{PasswordCache, TokenError, looks_like_jwt, verify_token};
use limiter::{FailedConnects, FailureKey};
pub(crate) use policy::TenantAccess;
use shared_failures::SharedFailures;

/// Failed-connect limits: per client id, per source address, and their window.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FailureLimits {
    /// Failures per client id in one window.
    pub(crate) per_client_id: u32,
    /// Failures per source address in one window.
    pub(crate) per_address: u32,
    /// The window.
    pub(crate) window: Duration,
}

/// An authenticated client identity.
#[derive(Debug, Clone)]
pub(crate) struct Principal {
    /// The tenant every action of this client is scoped to.
    pub(crate) tenant: TenantId,
    /// The user name it proved (a device's user name); `None` for anonymous clients, whatever
    /// they sent.
    pub(crate) username: Option<ByteString>,
    /// The device it authenticated as.
    pub(crate) device_id: Option<String>,
    /// How it authenticated.
    pub(crate) method: AuthMethod,
    /// Topic grants of its JWT, if it used one.
    pub(crate) grants: Option<Arc<JwtGrants>>,
    /// When its credential expires (JWT `exp`).
    pub(crate) expires_at: Option<SystemTime>,
}

/// How a client proved who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AuthMethod {
    /// A device's password.
    Password,
    /// A JWT signed by one of the tenant's keys.
    Token,
    /// A client certificate chained to a trusted CA.
    Certificate {
        /// Subject of the certificate.
        subject: String,
        /// SHA-256 fingerprint of the certificate.
        fingerprint_sha256: String,
    },
    /// Nothing (the tenant allows anonymous clients).
    Anonymous,
}

/// Why authentication failed (logged; the client only sees the reason code).
#[derive(Debug, thiserror::Error)]
pub(crate) enum AuthError {
    /// The tenant named does not exist here.
    #[error("unknown tenant {asked:?} (asked for by {named_by})")]
    UnknownTenant {
        /// What was asked for.
        asked: String,
        /// How it was named.
        named_by: &'static str,
    },
    /// The tenant is suspended.
    #[error("tenant {0} is suspended")]
    TenantSuspended(TenantId),
    /// No credentials, and the tenant (or the server) requires them.
    #[error("anonymous clients are not allowed in this tenant")]
    AnonymousRefused,
    /// Unknown user name.
    #[error("unknown user name")]
    UnknownUser,
    /// Wrong or missing password.
    #[error("wrong password")]
    BadPassword,
    /// A JWT was refused.
    #[error("{0}")]
    Token(#[from] TokenError),
    /// The device is disabled.
    #[error("device {0} is disabled")]
    DeviceDisabled(String),
    /// The client certificate was issued for another tenant.
    #[error("the client certificate was issued by tenant {cert_tenant}'s CA, not {tenant}'s")]
    CertificateOfAnotherTenant {
        /// The tenant the connection belongs to.
        tenant: TenantId,
        /// The tenant whose CA issued the certificate.
        cert_tenant: TenantId,
    },
    /// The device may not use this client id.
    #[error("client id {0:?} is not one this device may use")]
    ClientIdNotAllowed(String),
    /// Another device owns this client id.
    #[error("client id {0:?} belongs to another device")]
    ClientIdClaimed(String),
    /// Too many failed attempts.
    #[error(
        "too many failed connection attempts from this address or for this client id; retry later"
    )]
    Throttled,
    /// The directory could not be read.
    #[error(transparent)]
    Directory(#[from] DirectoryError),
}

impl AuthError {
    /// The CONNACK reason code (mapped to the closest 3.1.1 return code by the codec).
    pub(crate) fn reason_code(&self) -> ReasonCode {
        match self {
            Self::UnknownTenant { .. } | Self::UnknownUser | Self::BadPassword | Self::Token(_) => {
                ReasonCode::BadUserNameOrPassword
            }
            Self::TenantSuspended(_)
            | Self::AnonymousRefused
            | Self::DeviceDisabled(_)
            | Self::CertificateOfAnotherTenant { .. }
            | Self::ClientIdClaimed(_) => ReasonCode::NotAuthorized,
            Self::ClientIdNotAllowed(_) => ReasonCode::ClientIdentifierNotValid,
            Self::Throttled => ReasonCode::Banned,
            Self::Directory(_) => ReasonCode::ServerUnavailable,
        }
    }

    /// Whether this failure counts towards the brute-force limit.
    fn is_guess(&self) -> bool {
        matches!(self, Self::UnknownUser | Self::BadPassword | Self::Token(_))
    }
}

/// What a CONNECT presents.
#[derive(Debug, Clone)]
pub(crate) struct Credentials {
    /// The tenant claim from [`crate::tenancy::resolve`].
    pub(crate) claim: TenantClaim,
    /// The user name to check (the device part of `device@tenant`).
    pub(crate) username: Option<ByteString>,
    /// The password (or JWT).
    pub(crate) password: Option<Bytes>,
    /// A verified client certificate.
    pub(crate) certificate: Option<ClientCertificate>,
    /// The client id asked for.
    pub(crate) client_id: ByteString,
    /// The client's address.
    pub(crate) peer: IpAddr,
}

/// Authentication and access rules for one broker.
#[derive(Debug)]
pub(crate) struct Access {
    directory: Arc<dyn Directory>,
    require_auth: bool,
    default_tenant: TenantId,
    passwords: Arc<PasswordCache>,
    failures: FailedConnects,
    failure_limits: FailureLimits,
    /// The cluster's failed-connect counts (clustered shape only).
    shared_failures: std::sync::OnceLock<SharedFailures>,
}

impl Access {
    /// Access over `directory`.
    pub(crate) fn new(
        directory: Arc<dyn Directory>,
        require_auth: bool,
        default_tenant: TenantId,
        limits: FailureLimits,
    ) -> Self {
        Self {
            directory,
            require_auth,
            default_tenant,
            passwords: Arc::new(PasswordCache::new(100_000)),
            failures: FailedConnects::new(limits, 100_000),
            failure_limits: limits,
            shared_failures: std::sync::OnceLock::new(),
        }
    }

    /// Clustered shape: counts failed CONNECTs in the cluster's Redis too, so a lockout holds
    /// on every edge.
    pub(crate) fn share_failures(&self, admission: stratus_redis_state::Admission) {
        let _ = self
            .shared_failures
            .set(SharedFailures::new(admission, self.failure_limits));
    }

    /// Authenticates a CONNECT and returns the principal and its tenant (with access rules
    /// loaded).
    pub(crate) async fn authenticate(
        &self,
        broker: &Broker,
        creds: Credentials,
    ) -> Result<(Principal, Arc<Tenant>), AuthError> {
        let tenant_id = self.tenant_of(&creds)?;
        let now = Instant::now();
        let client_key = FailureKey::ClientId(tenant_id.clone(), creds.client_id.to_string());
        let keys = [FailureKey::Address(creds.peer), client_key.clone()];
        if keys.iter().any(|k| self.failures.is_blocked(k, now)) {
            return Err(AuthError::Throttled);
        }
        let shared = match self.shared_failures.get() {
            Some(s) => s.check(&tenant_id, &creds.client_id, creds.peer).await,
            None => Default::default(),
        };
        if shared.blocked {
            return Err(AuthError::Throttled);
        }
        match self.check(broker, &tenant_id, &creds).await {
            Ok(found) => {
                // Only the client id's count is forgiven: an address's count stays for its
                // window, or a guesser holding any valid credential (or anonymous access to
                // some tenant) could reset it between guesses.
                self.failures.record_success(&client_key);
                if shared.client_failed
                    && let Some(s) = self.shared_failures.get()
                {
                    s.forgive(&tenant_id, &creds.client_id).await;
                }
                Ok(found)
            }
            Err(e) => {
                if e.is_guess() {
                    for key in keys {
                        self.failures.record_failure(key, now);
                    }
                    if let Some(s) = self.shared_failures.get() {
                        s.record_failure(&tenant_id, &creds.client_id, creds.peer)
                            .await;
                    }
                }
                Err(e)
            }
        }
    }

    fn tenant_of(&self, creds: &Credentials) -> Result<TenantId, AuthError> {
        match &creds.claim {
            TenantClaim::Named { tenant, .. } => Ok(tenant.clone()),
            TenantClaim::Invalid { asked, source } => Err(AuthError::UnknownTenant {
                asked: asked.clone(),
                named_by: source.as_str(),
            }),
            TenantClaim::Unnamed => Ok(creds
                .certificate
                .as_ref()
                .and_then(|c| c.tenant.clone())
                .unwrap_or_else(|| self.default_tenant.clone())),
        }
    }

    async fn check(
        &self,
        broker: &Broker,
        tenant_id: &TenantId,
        creds: &Credentials,
    ) -> Result<(Principal, Arc<Tenant>), AuthError> {
        // A tenant the broker does not hold yet is looked up first: names clients invent never
        // become broker state.
        let tenant = match broker.existing_tenant(tenant_id) {
            Some(tenant) => tenant,
            None if self.directory.tenant(tenant_id).await?.is_some() => broker.tenant(tenant_id),
            None => {
                return Err(AuthError::UnknownTenant {
                    asked: tenant_id.to_string(),
                    named_by: match &creds.claim {
                        TenantClaim::Named { source, .. } => source.as_str(),
                        _ => "default tenant",
                    },
                });
            }
        };
        let access = self
            .load_tenant(&tenant)
            .await?
            .ok_or_else(|| AuthError::UnknownTenant {
                asked: tenant_id.to_string(),
                named_by: match &creds.claim {
                    TenantClaim::Named { source, .. } => source.as_str(),
                    _ => "default tenant",
                },
            })?;
        if !access.active {
            return Err(AuthError::TenantSuspended(tenant_id.clone()));
        }
        if let Some(cert) = &creds.certificate
            && let Some(cert_tenant) = &cert.tenant
            && cert_tenant != tenant_id
        {
            return Err(AuthError::CertificateOfAnotherTenant {
                tenant: tenant_id.clone(),
                cert_tenant: cert_tenant.clone(),
            });
        }
        let (principal, device) = self.identify(tenant_id, &access, creds).await?;
        self.check_client_id(tenant_id, device.as_ref(), &creds.client_id)
            .await?;
        Ok((principal, tenant))
    }

    /// Finds the device and checks its credential.
    async fn identify(
        &self,
        tenant: &TenantId,
        access: &TenantAccess,
        creds: &Credentials,
    ) -> Result<(Principal, Option<DeviceRecord>), AuthError> {
        let anonymous_ok = access.allow_anonymous && !self.require_auth;
        // A user name counts only once verified: access rules may name it (`${username}`), so an
        // anonymous client must not be able to claim one.
        let base = Principal {
            tenant: tenant.clone(),
            username: None,
            device_id: None,
            method: AuthMethod::Anonymous,
            grants: None,
            expires_at: None,
        };
        if let Some(name) = &creds.username
            && let Some(device) = self.directory.device_by_username(tenant, name).await?
        {
            if !device.enabled {
                return Err(AuthError::DeviceDisabled(device.id));
            }
            let password = creds.password.clone().ok_or(AuthError::BadPassword)?;
            if device.jwt && looks_like_jwt(&password) {
                let keys = self.directory.jwt_keys(tenant).await?;
                let token = std::str::from_utf8(&password).map_err(|_| AuthError::BadPassword)?;
                let verified = verify_token(token, &keys, &creds.client_id)?;
                let principal = Principal {
                    username: Some(name.clone()),
                    device_id: Some(device.id.clone()),
                    method: AuthMethod::Token,
                    grants: Some(Arc::new(verified.grants)),
                    expires_at: Some(verified.expires_at),
                    ..base
                };
                return Ok((principal, Some(device)));
            }
            if self.verify_password(&device, password).await {
                let principal = Principal {
                    username: Some(name.clone()),
                    device_id: Some(device.id.clone()),
                    method: AuthMethod::Password,
                    ..base
                };
                return Ok((principal, Some(device)));
            }
            return Err(AuthError::BadPassword);
        }
        if let Some(cert) = &creds.certificate {
            let device = self
                .directory
                .device_by_certificate(tenant, &cert.fingerprint_sha256, &cert.subject)
                .await?;
            if let Some(d) = &device
                && !d.enabled
            {
                return Err(AuthError::DeviceDisabled(d.id.clone()));
            }
            let principal = Principal {
                username: device
                    .as_ref()
                    .and_then(|d| d.username.as_deref().map(ByteString::from)),
                device_id: device.as_ref().map(|d| d.id.clone()),
                method: AuthMethod::Certificate {
                    subject: cert.subject.clone(),
                    fingerprint_sha256: cert.fingerprint_sha256.clone(),
                },
                ..base
            };
            return Ok((principal, device));
        }
        if anonymous_ok {
            return Ok((base, None));
        }
        Err(if creds.username.is_some() {
            AuthError::UnknownUser
        } else {
            AuthError::AnonymousRefused
        })
    }

    /// Argon2 is slow by design: verify off the async threads.
    async fn verify_password(&self, device: &DeviceRecord, password: Bytes) -> bool {
        let cache = Arc::clone(&self.passwords);
        let device = device.clone();
        tokio::task::spawn_blocking(move || cache.verify(&device, &password))
            .await
            .unwrap_or_else(|e| {
                tracing::error!("password check failed to run ({e}); refusing the client");
                false
            })
    }

    /// A client id bound to a device cannot be used by another principal, and a device bound to
    /// client ids cannot use others.
    async fn check_client_id(
        &self,
        tenant: &TenantId,
        device: Option<&DeviceRecord>,
        client_id: &str,
    ) -> Result<(), AuthError> {
        if let Some(device) = device
            && !device.allows_client_id(client_id)
        {
            return Err(AuthError::ClientIdNotAllowed(client_id.to_owned()));
        }
        if client_id.is_empty() {
            return Ok(());
        }
        let claimants = self
            .directory
            .devices_claiming_client_id(tenant, client_id)
            .await?;
        if let Some(other) = claimants
            .iter()
            .find(|d| Some(&d.id) != device.map(|d| &d.id))
        {
            tracing::info!(client_id, owner = %other.id, "client id belongs to another device");
            return Err(AuthError::ClientIdClaimed(client_id.to_owned()));
        }
        Ok(())
    }

    /// Loads a tenant's settings and rules into the broker, once; change events keep them
    /// current afterwards. `None` when the tenant does not exist.
    pub(crate) async fn load_tenant(
        &self,
        tenant: &Tenant,
    ) -> Result<Option<Arc<TenantAccess>>, AuthError> {
        if tenant
            .access_loaded
            .load(std::sync::atomic::Ordering::Acquire)
        {
            return Ok(Some(tenant.access.load_full()));
        }
        self.reload_tenant(tenant).await
    }

    /// Reads a tenant's settings and rules again and swaps them in.
    pub(crate) async fn reload_tenant(
        &self,
        tenant: &Tenant,
    ) -> Result<Option<Arc<TenantAccess>>, AuthError> {
        let Some(record) = self.directory.tenant(&tenant.id).await? else {
            // Deleted (or never existed): nothing is allowed, and the next CONNECT asks the
            // directory again and hears "unknown tenant".
            tenant.access.store(TenantAccess::unloaded());
            tenant
                .access_loaded
                .store(false, std::sync::atomic::Ordering::Release);
            return Ok(None);
        };
        let rules = self.directory.acl_rules(&tenant.id).await?;
        let access = Arc::new(TenantAccess::from_records(&record, rules));
        tenant.access.store(Arc::clone(&access));
        tenant
            .access_loaded
            .store(true, std::sync::atomic::Ordering::Release);
        Ok(Some(access))
    }

    /// Forgets cached verifications of a device.
    pub(crate) fn forget_device(&self, tenant: &TenantId, device_id: &str) {
        self.passwords.forget(tenant, device_id);
    }

    /// The directory.
    pub(crate) fn directory(&self) -> &Arc<dyn Directory> {
        &self.directory
    }
}

/// May `who` subscribe to `filter`: the tenant's rules, narrowed by the JWT's grants.
pub(crate) fn may_subscribe(
    access: &TenantAccess,
    grants: Option<&JwtGrants>,
    who: &stratus_policy::Identity<'_>,
    filter: &stratus_topics::TopicFilter,
) -> stratus_policy::Decision {
    let (decision, _) = access.policy.check_subscribe(who, filter);
    narrow(
        decision,
        grants.is_none_or(|g| g.allows_subscribe(filter, who)),
    )
}

/// May `who` publish to `topic`.
pub(crate) fn may_publish(
    access: &TenantAccess,
    grants: Option<&JwtGrants>,
    who: &stratus_policy::Identity<'_>,
    topic: &stratus_topics::TopicName,
) -> stratus_policy::Decision {
    if access.policy.allows_everything() && grants.is_none() {
        return allowed_by_default();
    }
    let decision = access.policy.check_publish(who, topic);
    narrow(
        decision,
        grants.is_none_or(|g| g.allows_publish(topic, who)),
    )
}

/// May `who` receive a message on `topic`.
pub(crate) fn may_receive(
    access: &TenantAccess,
    grants: Option<&JwtGrants>,
    who: &stratus_policy::Identity<'_>,
    topic: &stratus_topics::TopicName,
) -> stratus_policy::Decision {
    if access.policy.allows_everything() && grants.is_none() {
        return allowed_by_default();
    }
    let decision = access.policy.check_receive(who, topic);
    narrow(
        decision,
        grants.is_none_or(|g| g.allows_receive(topic, who)),
    )
}

fn allowed_by_default() -> stratus_policy::Decision {
    stratus_policy::Decision {
        effect: stratus_policy::Effect::Allow,
        decided_by: stratus_policy::DecidedBy::TenantDefault,
    }
}

/// A JWT can only narrow a decision.
fn narrow(decision: stratus_policy::Decision, token_allows: bool) -> stratus_policy::Decision {
    if decision.is_allowed() && !token_allows {
        stratus_policy::Decision {
            effect: stratus_policy::Effect::Deny,
            decided_by: stratus_policy::DecidedBy::Rule("token".into()),
        }
    } else {
        decision
    }
}
