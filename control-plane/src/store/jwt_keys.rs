//! JWT verification keys of a tenant: devices flagged `jwt` present a token signed with the
//! private half of one of these keys as their MQTT password.

use serde::Serialize;
use stratus_model::{ChangeEvent, JwtAlgorithm, JwtKeyRecord, TenantId};
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::{Page, PageRequest, Store, StoreError, classify, new_id, now, on_pool, text_enum};

text_enum! {
    /// A JWT signature algorithm.
    KeyAlgorithm {
        /// RSASSA-PKCS1-v1_5 with SHA-256 (RSA key of at least 2048 bits).
        Rs256 = "RS256",
        /// ECDSA with P-256 and SHA-256.
        Es256 = "ES256",
        /// Ed25519.
        EdDsa = "EdDSA",
    }
}

impl From<KeyAlgorithm> for JwtAlgorithm {
    fn from(algorithm: KeyAlgorithm) -> Self {
        match algorithm {
            KeyAlgorithm::Rs256 => Self::RS256,
            KeyAlgorithm::Es256 => Self::ES256,
            KeyAlgorithm::EdDsa => Self::EdDSA,
        }
    }
}

/// A JWT verification key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema, sqlx::FromRow)]
pub struct JwtKey {
    /// Key id; a token whose header names a `kid` is verified only with that key.
    pub id: String,
    /// Tenant slug.
    pub tenant: String,
    /// Signature algorithm.
    #[sqlx(try_from = "String")]
    pub algorithm: KeyAlgorithm,
    /// Public key, SubjectPublicKeyInfo PEM.
    pub public_key_pem: String,
    /// Required `aud` claim, if any.
    pub audience: Option<String>,
    /// When the key was added.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl JwtKey {
    /// The key as the edge reads it.
    pub fn to_record(&self) -> JwtKeyRecord {
        JwtKeyRecord {
            id: self.id.clone(),
            algorithm: self.algorithm.into(),
            public_key_pem: self.public_key_pem.clone(),
            audience: self.audience.clone(),
        }
    }
}

/// A key to add (validated by the caller: the PEM parses for the algorithm).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewJwtKey {
    /// Signature algorithm.
    pub algorithm: KeyAlgorithm,
    /// Public key PEM.
    pub public_key_pem: String,
    /// Required audience.
    pub audience: Option<String>,
}

/// The columns of [`JwtKey`], as a literal for `concat!`.
macro_rules! columns {
    () => {
        "id, tenant, algorithm, public_key_pem, audience, created_at"
    };
}

impl Store {
    /// Adds a key to the tenant.
    pub async fn create_jwt_key(
        &self,
        tenant: &TenantId,
        new: &NewJwtKey,
    ) -> Result<JwtKey, StoreError> {
        let key = JwtKey {
            id: new_id(),
            tenant: tenant.as_str().to_owned(),
            algorithm: new.algorithm,
            public_key_pem: new.public_key_pem.clone(),
            audience: new.audience.clone(),
            created_at: now(),
        };
        on_pool!(self, db => sqlx::query(concat!(
            "INSERT INTO jwt_keys (", columns!(), ") VALUES ($1, $2, $3, $4, $5, $6)"
        ))
        .bind(&key.id)
        .bind(&key.tenant)
        .bind(key.algorithm.as_str())
        .bind(&key.public_key_pem)
        .bind(key.audience.as_deref())
        .bind(key.created_at)
        .execute(db)
        .await
        .map(|_| ()))
        .map_err(|e| classify(e, "JWT key"))?;
        self.emit(ChangeEvent::JwtKeys(tenant.clone()));
        Ok(key)
    }

    /// One key of the tenant.
    pub async fn jwt_key(&self, tenant: &TenantId, id: &str) -> Result<Option<JwtKey>, StoreError> {
        const SQL: &str = concat!(
            "SELECT ",
            columns!(),
            " FROM jwt_keys WHERE tenant = $1 AND id = $2"
        );
        Ok(on_pool!(self, db => sqlx::query_as::<_, JwtKey>(SQL)
            .bind(tenant.as_str())
            .bind(id)
            .fetch_optional(db)
            .await)?)
    }

    /// The tenant's keys in id (creation) order.
    pub async fn list_jwt_keys(
        &self,
        tenant: &TenantId,
        page: &PageRequest,
    ) -> Result<Page<JwtKey>, StoreError> {
        const SQL: &str = concat!(
            "SELECT ",
            columns!(),
            " FROM jwt_keys WHERE tenant = $1 AND ($2 IS NULL OR id > $2) ORDER BY id LIMIT $3"
        );
        let rows = on_pool!(self, db => sqlx::query_as::<_, JwtKey>(SQL)
            .bind(tenant.as_str())
            .bind(page.after.as_deref())
            .bind(page.fetch())
            .fetch_all(db)
            .await)?;
        Ok(Page::from_rows(rows, page, |k| &k.id))
    }

    /// Every key of the tenant.
    pub async fn all_jwt_keys(&self, tenant: &TenantId) -> Result<Vec<JwtKey>, StoreError> {
        const SQL: &str = concat!(
            "SELECT ",
            columns!(),
            " FROM jwt_keys WHERE tenant = $1 ORDER BY id"
        );
        Ok(on_pool!(self, db => sqlx::query_as::<_, JwtKey>(SQL)
            .bind(tenant.as_str())
            .fetch_all(db)
            .await)?)
    }

    /// Removes a key; false when the tenant has no such key.
    pub async fn delete_jwt_key(&self, tenant: &TenantId, id: &str) -> Result<bool, StoreError> {
        let deleted = on_pool!(self, db => sqlx::query(
            "DELETE FROM jwt_keys WHERE tenant = $1 AND id = $2",
        )
        .bind(tenant.as_str())
        .bind(id)
        .execute(db)
        .await
        .map(|r| r.rows_affected()))?;
        if deleted > 0 {
            self.emit(ChangeEvent::JwtKeys(tenant.clone()));
        }
        Ok(deleted > 0)
    }
}
