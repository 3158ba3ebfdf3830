//! Checking what a device presents: argon2id passwords (with a cache of recent successes, so a
//! reconnecting device does not pay the hash again), and JWTs signed by one of the tenant's keys.
//!
//! The password cache is keyed by device and bound to the stored hash: when the control plane
//! changes or removes the password, the device record changes, the cached entry no longer matches
//! and the password is verified again (a cache hit never skips revocation).

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use argon2::{Argon2, PasswordHash, PasswordVerifier};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use parking_lot::Mutex;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use stratus_model::{DeviceRecord, JwtAlgorithm, JwtKeyRecord, TenantId};
use stratus_policy::{Identity, TopicTemplate};
use stratus_topics::{TopicFilter, TopicName};

/// A device: its tenant and id.
type DeviceKey = (TenantId, String);

/// What a successful check leaves behind: the stored hash it was checked against, and a keyed
/// digest of the password that matched it.
type VerifiedPassword = (String, [u8; 32]);

/// Successful password checks, keyed by device.
#[derive(Debug)]
pub(crate) struct PasswordCache {
    /// Random per process: cached digests are useless outside it.
    key: [u8; 32],
    capacity: usize,
    entries: Mutex<HashMap<DeviceKey, VerifiedPassword>>,
}

impl PasswordCache {
    /// A cache of at most `capacity` devices.
    pub(crate) fn new(capacity: usize) -> Self {
        // Without randomness the cache still works; its digests are just unkeyed.
        let key = read_random().unwrap_or_else(|e| {
            tracing::warn!("cannot read /dev/urandom ({e}); the password cache key is fixed");
            [0u8; 32]
        });
        Self {
            key,
            capacity,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn digest(&self, password: &[u8]) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.key);
        h.update(password);
        h.finalize().into()
    }

    /// Verifies `password` against the device's stored hash. Slow on a cache miss (argon2):
    /// call it off the async threads.
    pub(crate) fn verify(&self, device: &DeviceRecord, password: &[u8]) -> bool {
        let Some(hash) = &device.password_hash else {
            return false;
        };
        let key = (device.tenant.clone(), device.id.clone());
        let digest = self.digest(password);
        if self
            .entries
            .lock()
            .get(&key)
            .is_some_and(|(h, d)| h == hash && *d == digest)
        {
            return true;
        }
        let ok = PasswordHash::new(hash)
            .is_ok_and(|parsed| Argon2::default().verify_password(password, &parsed).is_ok());
        if ok {
            let mut entries = self.entries.lock();
            if entries.len() >= self.capacity && !entries.contains_key(&key) {
                entries.clear();
            }
            entries.insert(key, (hash.clone(), digest));
        }
        ok
    }

    /// Forgets a device (it changed or was deleted).
    pub(crate) fn forget(&self, tenant: &TenantId, device_id: &str) {
        self.entries
            .lock()
            .remove(&(tenant.clone(), device_id.to_owned()));
    }
}

fn read_random() -> std::io::Result<[u8; 32]> {
    use std::io::Read;
    let mut key = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut key)?;
    Ok(key)
}

/// Topic grants carried by a JWT (`acl.publish` / `acl.subscribe`): when present they narrow,
/// never widen, what the tenant's rules allow.
#[derive(Debug, Clone, Default)]
pub(crate) struct JwtGrants {
    publish: Option<Vec<TopicTemplate>>,
    subscribe: Option<Vec<TopicTemplate>>,
}

impl JwtGrants {
    /// Whether the token lets `who` publish to `topic`.
    pub(crate) fn allows_publish(&self, topic: &TopicName, who: &Identity<'_>) -> bool {
        self.publish
            .as_ref()
            .is_none_or(|l| l.iter().any(|t| t.matches_topic(topic, who)))
    }

    /// Whether the token lets `who` subscribe to `filter`.
    pub(crate) fn allows_subscribe(&self, filter: &TopicFilter, who: &Identity<'_>) -> bool {
        self.subscribe
            .as_ref()
            .is_none_or(|l| l.iter().any(|t| t.covers(filter, who)))
    }

    /// Whether the token lets `who` receive a message on `topic`.
    pub(crate) fn allows_receive(&self, topic: &TopicName, who: &Identity<'_>) -> bool {
        self.subscribe
            .as_ref()
            .is_none_or(|l| l.iter().any(|t| t.matches_topic(topic, who)))
    }
}

/// A verified JWT.
#[derive(Debug, Clone)]
pub(crate) struct VerifiedToken {
    /// Its grants.
    pub(crate) grants: JwtGrants,
    /// When it expires.
    pub(crate) expires_at: SystemTime,
}

/// Why a JWT was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TokenError {
    /// Not a JWT, bad signature, expired, not yet valid, wrong audience...
    #[error("invalid token: {0}")]
    Invalid(String),
    /// No tenant key matches the token's `kid`/algorithm.
    #[error("no key of the tenant verifies this token")]
    NoKey,
    /// The token names another client id.
    #[error("the token is for client id {0:?}")]
    WrongClientId(String),
    /// The token's topic grants are not valid filters.
    #[error("the token's acl claim is invalid: {0}")]
    BadGrants(String),
}

#[derive(Debug, Deserialize)]
struct Claims {
    exp: u64,
    client_id: Option<String>,
    acl: Option<AclClaim>,
}

#[derive(Debug, Deserialize)]
struct AclClaim {
    publish: Option<Vec<String>>,
    subscribe: Option<Vec<String>>,
}

/// Clock skew tolerated on `exp` and `nbf`.
const LEEWAY: Duration = Duration::from_secs(30);

/// Verifies a JWT presented as the MQTT password for `client_id`.
pub(crate) fn verify_token(
    token: &str,
    keys: &[JwtKeyRecord],
    client_id: &str,
) -> Result<VerifiedToken, TokenError> {
    let header =
        jsonwebtoken::decode_header(token).map_err(|e| TokenError::Invalid(e.to_string()))?;
    let candidates = keys.iter().filter(|k| {
        header.kid.as_deref().is_none_or(|kid| kid == k.id) && algorithm(k.algorithm) == header.alg
    });
    let mut last_error = TokenError::NoKey;
    for key in candidates {
        let decoding = match key.algorithm {
            JwtAlgorithm::RS256 => DecodingKey::from_rsa_pem(key.public_key_pem.as_bytes()),
            JwtAlgorithm::ES256 => DecodingKey::from_ec_pem(key.public_key_pem.as_bytes()),
            JwtAlgorithm::EdDSA => DecodingKey::from_ed_pem(key.public_key_pem.as_bytes()),
        };
        let Ok(decoding) = decoding else {
            tracing::error!(key = %key.id, "a tenant JWT key does not parse; it verifies nothing");
            continue;
        };
        let mut validation = Validation::new(header.alg);
        validation.leeway = LEEWAY.as_secs();
        validation.validate_nbf = true;
        match &key.audience {
            // The library checks `aud` only when the token has one: a key that names an
            // audience must also require the claim.
            Some(aud) => {
                validation.set_required_spec_claims(&["exp", "aud"]);
                validation.set_audience(&[aud]);
            }
            None => {
                validation.set_required_spec_claims(&["exp"]);
                validation.validate_aud = false;
            }
        }
        match jsonwebtoken::decode::<Claims>(token, &decoding, &validation) {
            Ok(data) => return accept(data.claims, client_id),
            Err(e) => last_error = TokenError::Invalid(e.to_string()),
        }
    }
    Err(last_error)
}

fn accept(claims: Claims, client_id: &str) -> Result<VerifiedToken, TokenError> {
    if let Some(id) = &claims.client_id
        && id != client_id
    {
        return Err(TokenError::WrongClientId(id.clone()));
    }
    let parse = |list: Option<Vec<String>>| -> Result<Option<Vec<TopicTemplate>>, TokenError> {
        list.map(|l| {
            l.iter()
                .map(|f| {
                    TopicTemplate::parse(f)
                        .map_err(|e| TokenError::BadGrants(format!("{f:?}: {e}")))
                })
                .collect()
        })
        .transpose()
    };
    let (publish, subscribe) = match claims.acl {
        Some(acl) => (parse(acl.publish)?, parse(acl.subscribe)?),
        None => (None, None),
    };
    Ok(VerifiedToken {
        grants: JwtGrants { publish, subscribe },
        expires_at: UNIX_EPOCH + Duration::from_secs(claims.exp),
    })
}

fn algorithm(a: JwtAlgorithm) -> Algorithm {
    match a {
        JwtAlgorithm::RS256 => Algorithm::RS256,
        JwtAlgorithm::ES256 => Algorithm::ES256,
        JwtAlgorithm::EdDSA => Algorithm::EdDSA,
    }
}

/// True when a password looks like a compact JWT (three base64url parts).
pub(crate) fn looks_like_jwt(password: &[u8]) -> bool {
    password.iter().filter(|b| **b == b'.').count() == 2
        && password
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'='))
}
