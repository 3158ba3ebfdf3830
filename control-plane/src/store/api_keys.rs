//! Tenant API keys: bearer secrets with `read` or `write` scope over one tenant. Only the
//! SHA-256 of a secret is stored (see [`crate::secret`]); the secret is returned once, when the
//! key is created.

use serde::Serialize;
use stratus_model::TenantId;
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::{Page, PageRequest, Store, StoreError, classify, new_id, now, on_pool, text_enum};
use crate::secret::{self, API_KEY_PREFIX, Secret};

text_enum! {
    /// What an API key may do within its tenant.
    ApiKeyScope {
        /// Read the tenant's resources.
        Read = "read",
        /// Read and change the tenant's resources.
        Write = "write",
    }
}

/// An API key as listed (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema, sqlx::FromRow)]
pub struct ApiKey {
    /// Key id.
    pub id: String,
    /// Tenant slug.
    pub tenant: String,
    /// What the key is for.
    pub name: String,
    /// Read or write.
    #[sqlx(try_from = "String")]
    pub scope: ApiKeyScope,
    /// The last four characters of the secret.
    pub last4: String,
    /// When the key was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// A key to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewApiKey {
    /// What the key is for.
    pub name: String,
    /// Read or write.
    pub scope: ApiKeyScope,
}

/// Who a presented API key is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyAuth {
    /// Key id.
    pub id: String,
    /// The one tenant the key may see.
    pub tenant: TenantId,
    /// Read or write.
    pub scope: ApiKeyScope,
}

#[derive(sqlx::FromRow)]
struct AuthRow {
    id: String,
    tenant: String,
    #[sqlx(try_from = "String")]
    scope: ApiKeyScope,
}

/// The columns of [`ApiKey`], as a literal for `concat!`.
macro_rules! columns {
    () => {
        "id, tenant, name, scope, last4, created_at"
    };
}

impl Store {
    /// Creates a key and its secret; the secret is not kept and cannot be read again.
    pub async fn create_api_key(
        &self,
        tenant: &TenantId,
        new: &NewApiKey,
    ) -> Result<(ApiKey, Secret), StoreError> {
        let secret = Secret::generate(API_KEY_PREFIX).map_err(StoreError::Random)?;
        let key = ApiKey {
            id: new_id(),
            tenant: tenant.as_str().to_owned(),
            name: new.name.clone(),
            scope: new.scope,
            last4: secret.last4(),
            created_at: now(),
        };
        on_pool!(self, db => sqlx::query(
            "INSERT INTO api_keys (id, tenant, name, scope, secret_sha256, last4, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&key.id)
        .bind(&key.tenant)
        .bind(&key.name)
        .bind(key.scope.as_str())
        .bind(secret::digest_hex(secret.expose()))
        .bind(&key.last4)
        .bind(key.created_at)
        .execute(db)
        .await
        .map(|_| ()))
        .map_err(|e| classify(e, "API key"))?;
        Ok((key, secret))
    }

    /// The key a presented secret belongs to, if any.
    pub async fn authenticate_api_key(
        &self,
        secret: &str,
    ) -> Result<Option<ApiKeyAuth>, StoreError> {
        if !secret.starts_with(API_KEY_PREFIX) {
            return Ok(None);
        }
        let row = on_pool!(self, db => sqlx::query_as::<_, AuthRow>(
            "SELECT id, tenant, scope FROM api_keys WHERE secret_sha256 = $1",
        )
        .bind(secret::digest_hex(secret))
        .fetch_optional(db)
        .await)?;
        row.map(|row| {
            let tenant = TenantId::new(&row.tenant)
                .map_err(|e| StoreError::Corrupt(format!("API key {}: {e}", row.id)))?;
            Ok(ApiKeyAuth {
                id: row.id,
                tenant,
                scope: row.scope,
            })
        })
        .transpose()
    }

    /// One key of the tenant.
    pub async fn api_key(&self, tenant: &TenantId, id: &str) -> Result<Option<ApiKey>, StoreError> {
        const SQL: &str = concat!(
            "SELECT ",
            columns!(),
            " FROM api_keys WHERE tenant = $1 AND id = $2"
        );
        Ok(on_pool!(self, db => sqlx::query_as::<_, ApiKey>(SQL)
            .bind(tenant.as_str())
            .bind(id)
            .fetch_optional(db)
            .await)?)
    }

    /// The tenant's keys in id (creation) order.
    pub async fn list_api_keys(
        &self,
        tenant: &TenantId,
        page: &PageRequest,
    ) -> Result<Page<ApiKey>, StoreError> {
        const SQL: &str = concat!(
            "SELECT ",
            columns!(),
            " FROM api_keys WHERE tenant = $1 AND ($2 IS NULL OR id > $2) ORDER BY id LIMIT $3"
        );
        let rows = on_pool!(self, db => sqlx::query_as::<_, ApiKey>(SQL)
            .bind(tenant.as_str())
            .bind(page.after.as_deref())
            .bind(page.fetch())
            .fetch_all(db)
            .await)?;
        Ok(Page::from_rows(rows, page, |k| &k.id))
    }

    /// Revokes a key; false when the tenant has no such key. Requests with it fail from now on.
    pub async fn delete_api_key(&self, tenant: &TenantId, id: &str) -> Result<bool, StoreError> {
        let deleted = on_pool!(self, db => sqlx::query(
            "DELETE FROM api_keys WHERE tenant = $1 AND id = $2",
        )
        .bind(tenant.as_str())
        .bind(id)
        .execute(db)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(deleted > 0)
    }
}
