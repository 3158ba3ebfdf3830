//! The edge's view of the store: [`stratus_model::Directory`] answered from the same tables the
//! API writes, and the change events every mutation emits.

use stratus_model::{
    AclRuleRecord, ChangeEvent, DeviceRecord, Directory, DirectoryError, JwtKeyRecord, TenantId,
    TenantRecord,
};
use tokio::sync::broadcast;

use super::{Store, StoreError, TenantStatus, on_pool};

/// A device row with its password hash, for authentication only.
#[derive(sqlx::FromRow)]
struct DeviceRow {
    id: String,
    tenant: String,
    client_id: Option<String>,
    client_id_pattern: Option<String>,
    username: Option<String>,
    password_hash: Option<String>,
    jwt: bool,
    cert_fingerprint: Option<String>,
    cert_subject: Option<String>,
    enabled: bool,
}

impl DeviceRow {
    fn into_record(self) -> Result<DeviceRecord, StoreError> {
        let tenant = TenantId::new(&self.tenant)
            .map_err(|e| StoreError::Corrupt(format!("device {}: {e}", self.id)))?;
        Ok(DeviceRecord {
            id: self.id,
            tenant,
            client_id: self.client_id,
            client_id_pattern: self.client_id_pattern,
            username: self.username,
            password_hash: self.password_hash,
            jwt: self.jwt,
            cert_fingerprint: self.cert_fingerprint,
            cert_subject: self.cert_subject,
            enabled: self.enabled,
        })
    }
}

/// The columns of [`DeviceRow`], as a literal for `concat!`.
macro_rules! device_columns {
    () => {
        "id, tenant, client_id, client_id_pattern, username, password_hash, jwt, \
         cert_fingerprint, cert_subject, enabled"
    };
}

impl Store {
    async fn device_where(
        &self,
        sql: &'static str,
        tenant: &TenantId,
        value: &str,
    ) -> Result<Vec<DeviceRecord>, StoreError> {
        let rows = on_pool!(self, db => sqlx::query_as::<_, DeviceRow>(sql)
            .bind(tenant.as_str())
            .bind(value)
            .fetch_all(db)
            .await)?;
        rows.into_iter().map(DeviceRow::into_record).collect()
    }

    /// Whether any device of the tenant binds a client id or a client-id pattern.
    async fn binds_client_ids(&self, tenant: &TenantId) -> Result<bool, StoreError> {
        let any = on_pool!(self, db => sqlx::query_scalar::<_, String>(
            "SELECT id FROM devices WHERE tenant = $1 \
             AND (client_id IS NOT NULL OR client_id_pattern IS NOT NULL) LIMIT 1",
        )
        .bind(tenant.as_str())
        .fetch_optional(db)
        .await)?;
        Ok(any.is_some())
    }

    /// The tenant as the edge needs it.
    pub async fn tenant_record(&self, id: &TenantId) -> Result<Option<TenantRecord>, StoreError> {
        Ok(self.tenant(id).await?.map(|t| TenantRecord {
            id: id.clone(),
            status: match t.status {
                TenantStatus::Active => stratus_model::TenantStatus::Active,
                TenantStatus::Suspended => stratus_model::TenantStatus::Suspended,
            },
            default_effect: t.default_effect.into(),
            allow_anonymous: t.allow_anonymous,
        }))
    }
}

fn unavailable(err: StoreError) -> DirectoryError {
    tracing::error!(error = %err, "control plane store read failed");
    DirectoryError(err.to_string())
}

#[async_trait::async_trait]
impl Directory for Store {
    async fn tenant(&self, id: &TenantId) -> Result<Option<TenantRecord>, DirectoryError> {
        self.tenant_record(id).await.map_err(unavailable)
    }

    async fn device_by_username(
        &self,
        tenant: &TenantId,
        username: &str,
    ) -> Result<Option<DeviceRecord>, DirectoryError> {
        const SQL: &str = concat!(
            "SELECT ",
            device_columns!(),
            " FROM devices WHERE tenant = $1 AND username = $2"
        );
        let mut found = self
            .device_where(SQL, tenant, username)
            .await
            .map_err(unavailable)?;
        Ok(found.pop())
    }

    async fn device_by_certificate(
        &self,
        tenant: &TenantId,
        fingerprint: &str,
        subject: &str,
    ) -> Result<Option<DeviceRecord>, DirectoryError> {
        const BY_FINGERPRINT: &str = concat!(
            "SELECT ",
            device_columns!(),
            " FROM devices WHERE tenant = $1 AND cert_fingerprint = $2"
        );
        const BY_SUBJECT: &str = concat!(
            "SELECT ",
            device_columns!(),
            " FROM devices WHERE tenant = $1 AND cert_subject = $2"
        );
        let fingerprint = fingerprint.to_ascii_lowercase();
        let mut found = self
            .device_where(BY_FINGERPRINT, tenant, &fingerprint)
            .await
            .map_err(unavailable)?;
        if found.is_empty() && !subject.is_empty() {
            found = self
                .device_where(BY_SUBJECT, tenant, subject)
                .await
                .map_err(unavailable)?;
        }
        Ok(found.pop())
    }

    async fn devices_claiming_client_id(
        &self,
        tenant: &TenantId,
        client_id: &str,
    ) -> Result<Vec<DeviceRecord>, DirectoryError> {
        const SQL: &str = concat!(
            "SELECT ",
            device_columns!(),
            " FROM devices WHERE tenant = $1 AND (client_id = $2 OR client_id_pattern IS NOT NULL) \
             ORDER BY id"
        );
        let cache = self.claim_cache();
        if cache.is_some_and(|c| c.is_unbound(tenant)) {
            return Ok(Vec::new());
        }
        let generation = cache.map(|c| c.generation());
        let found = self
            .device_where(SQL, tenant, client_id)
            .await
            .map_err(unavailable)?;
        if let (Some(cache), Some(generation)) = (cache, generation)
            && found.is_empty()
            && !self.binds_client_ids(tenant).await.map_err(unavailable)?
        {
            cache.remember_unbound(tenant, generation);
        }
        Ok(found
            .into_iter()
            .filter(|d| d.claims_client_id(client_id))
            .collect())
    }

    async fn acl_rules(&self, tenant: &TenantId) -> Result<Vec<AclRuleRecord>, DirectoryError> {
        let rules = self.all_rules(tenant).await.map_err(unavailable)?;
        Ok(rules
            .into_iter()
            .map(|r| AclRuleRecord {
                id: r.id,
                effect: r.effect.into(),
                action: r.action.into(),
                filter: r.filter,
                username: r.username,
                client_id: r.client_id,
                priority: r.priority,
            })
            .collect())
    }

    async fn jwt_keys(&self, tenant: &TenantId) -> Result<Vec<JwtKeyRecord>, DirectoryError> {
        let keys = self.all_jwt_keys(tenant).await.map_err(unavailable)?;
        Ok(keys.iter().map(|k| k.to_record()).collect())
    }

    fn changes(&self) -> broadcast::Receiver<ChangeEvent> {
        Store::changes(self)
    }
}
