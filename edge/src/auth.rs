//! Who a connecting client is: the tenant it belongs to and the user name it proved.
//!
//! In `stratus dev` credentials come from the configuration file (`[[users]]`, argon2 hashes);
//! clients without credentials join the default tenant unless `require_auth` is set. A user name
//! that is configured must present its password: it never falls back to anonymous.

use std::collections::HashMap;
use std::sync::Arc;

use argon2::{Argon2, PasswordHash, PasswordVerifier};
use bytes::Bytes;
use bytestring::ByteString;
use stratus_codec::ReasonCode;
use stratus_model::TenantId;

use crate::config::BrokerConfig;

/// An authenticated client identity.
#[derive(Debug, Clone)]
pub(crate) struct Principal {
    /// The tenant every action of this client is scoped to.
    pub(crate) tenant: TenantId,
    /// The user name it authenticated as (none for anonymous clients).
    pub(crate) username: Option<ByteString>,
}

/// Why authentication failed (logged; the client only sees the reason code).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum AuthError {
    /// No credentials while authentication is required.
    #[error("anonymous clients are not allowed (require_auth is on)")]
    AnonymousRefused,
    /// Unknown user name while authentication is required.
    #[error("unknown user name")]
    UnknownUser,
    /// Wrong or missing password.
    #[error("wrong password")]
    BadPassword,
}

impl AuthError {
    /// The CONNACK reason code (mapped to 0x04/0x05 for 3.1.1 by the codec).
    pub(crate) fn reason_code(&self) -> ReasonCode {
        match self {
            Self::AnonymousRefused => ReasonCode::NotAuthorized,
            Self::UnknownUser | Self::BadPassword => ReasonCode::BadUserNameOrPassword,
        }
    }
}

#[derive(Debug)]
struct UserEntry {
    password_hash: String,
    tenant: TenantId,
}

/// Checks CONNECT credentials.
#[derive(Debug, Clone)]
pub(crate) struct Authenticator {
    require_auth: bool,
    default_tenant: TenantId,
    users: Arc<HashMap<String, UserEntry>>,
}

impl Authenticator {
    /// Builds from validated configuration.
    pub(crate) fn new(config: &BrokerConfig, default_tenant: TenantId) -> Self {
        let users = config
            .users
            .iter()
            .filter_map(|u| {
                let tenant = TenantId::new(&u.tenant).ok()?;
                Some((
                    u.username.clone(),
                    UserEntry {
                        password_hash: u.password_hash.clone(),
                        tenant,
                    },
                ))
            })
            .collect();
        Self {
            require_auth: config.require_auth,
            default_tenant,
            users: Arc::new(users),
        }
    }

    /// Authenticates a CONNECT. Password verification is deliberately slow (argon2): call this
    /// from a blocking context.
    pub(crate) fn authenticate(
        &self,
        username: Option<&ByteString>,
        password: Option<&Bytes>,
    ) -> Result<Principal, AuthError> {
        if let Some(name) = username
            && let Some(entry) = self.users.get(&name[..])
        {
            let password = password.ok_or(AuthError::BadPassword)?;
            let hash =
                PasswordHash::new(&entry.password_hash).map_err(|_| AuthError::BadPassword)?;
            Argon2::default()
                .verify_password(password, &hash)
                .map_err(|_| AuthError::BadPassword)?;
            return Ok(Principal {
                tenant: entry.tenant.clone(),
                username: Some(name.clone()),
            });
        }
        if self.require_auth {
            return Err(if username.is_some() {
                AuthError::UnknownUser
            } else {
                AuthError::AnonymousRefused
            });
        }
        Ok(Principal {
            tenant: self.default_tenant.clone(),
            username: username.cloned(),
        })
    }

    /// True when a CONNECT with this user name needs a password check (a slow operation).
    pub(crate) fn needs_verification(&self, username: Option<&ByteString>) -> bool {
        username.is_some_and(|u| self.users.contains_key(&u[..]))
    }
}
