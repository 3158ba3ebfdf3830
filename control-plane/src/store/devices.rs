//! Devices: a client id (or client-id pattern) bound to credentials, a password (argon2id hash),
//! JWT authentication with the tenant's keys, or a client certificate.

use serde::Serialize;
use stratus_model::{ChangeEvent, TenantId};
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::{Page, PageRequest, Store, StoreError, classify, new_id, now, on_pool};
use crate::password::PasswordHash;

/// A device as the API shows it: never its password or hash, only whether it has one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema, sqlx::FromRow)]
pub struct Device {
    /// Device id.
    pub id: String,
    /// Tenant slug.
    pub tenant: String,
    /// Display name.
    pub name: Option<String>,
    /// The client id this device connects with; nobody else in the tenant may use it.
    pub client_id: Option<String>,
    /// Client ids this device may use (`*` matches any run of characters).
    #[schema(example = "sensor-*")]
    pub client_id_pattern: Option<String>,
    /// User name for password or JWT authentication.
    pub username: Option<String>,
    /// Whether a password is set.
    pub has_password: bool,
    /// Whether the device may authenticate with a JWT signed by one of the tenant's keys.
    pub jwt: bool,
    /// SHA-256 fingerprint of the client certificate (64 lowercase hex digits).
    pub cert_fingerprint: Option<String>,
    /// Subject of the client certificate (RFC 4514).
    pub cert_subject: Option<String>,
    /// Disabled devices cannot connect.
    pub enabled: bool,
    /// When the device was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When the device was last changed.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// A device to create (validated by the caller).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewDevice {
    /// Display name.
    pub name: Option<String>,
    /// Exact client id.
    pub client_id: Option<String>,
    /// Client-id pattern.
    pub client_id_pattern: Option<String>,
    /// User name.
    pub username: Option<String>,
    /// Password hash.
    pub password: Option<PasswordHash>,
    /// JWT authentication.
    pub jwt: bool,
    /// Certificate fingerprint.
    pub cert_fingerprint: Option<String>,
    /// Certificate subject.
    pub cert_subject: Option<String>,
    /// Enabled.
    pub enabled: bool,
}

/// Changes to a device: `None` leaves a field as it is, `Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DevicePatch {
    /// Display name.
    pub name: Option<Option<String>>,
    /// Exact client id.
    pub client_id: Option<Option<String>>,
    /// Client-id pattern.
    pub client_id_pattern: Option<Option<String>>,
    /// User name.
    pub username: Option<Option<String>>,
    /// Password hash.
    pub password: Option<Option<PasswordHash>>,
    /// JWT authentication.
    pub jwt: Option<bool>,
    /// Certificate fingerprint.
    pub cert_fingerprint: Option<Option<String>>,
    /// Certificate subject.
    pub cert_subject: Option<Option<String>>,
    /// Enabled.
    pub enabled: Option<bool>,
}

/// The columns of [`Device`], as a literal for `concat!`.
macro_rules! columns {
    () => {
        "id, tenant, name, client_id, client_id_pattern, username, \
         (password_hash IS NOT NULL) AS has_password, jwt, cert_fingerprint, cert_subject, \
         enabled, created_at, updated_at"
    };
}

impl Store {
    /// Creates a device; a user name, client id or certificate another device of the tenant
    /// has is a conflict on that field.
    pub async fn create_device(
        &self,
        tenant: &TenantId,
        new: &NewDevice,
    ) -> Result<Device, StoreError> {
        let _claims = self.device_write(tenant);
        const SQL: &str = concat!(
            "INSERT INTO devices (id, tenant, name, client_id, client_id_pattern, username, ",
            "password_hash, jwt, cert_fingerprint, cert_subject, enabled, created_at, updated_at) ",
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12) RETURNING ",
            columns!()
        );
        let device = on_pool!(self, db => sqlx::query_as::<_, Device>(SQL)
            .bind(new_id())
            .bind(tenant.as_str())
            .bind(new.name.as_deref())
            .bind(new.client_id.as_deref())
            .bind(new.client_id_pattern.as_deref())
            .bind(new.username.as_deref())
            .bind(new.password.as_ref().map(PasswordHash::as_str))
            .bind(new.jwt)
            .bind(new.cert_fingerprint.as_deref())
            .bind(new.cert_subject.as_deref())
            .bind(new.enabled)
            .bind(now())
            .fetch_one(db)
            .await)
        .map_err(|e| classify(e, "device"))?;
        self.emit(ChangeEvent::Device {
            tenant: tenant.clone(),
            device_id: device.id.clone(),
        });
        Ok(device)
    }

    /// One device of the tenant.
    pub async fn device(&self, tenant: &TenantId, id: &str) -> Result<Option<Device>, StoreError> {
        const SQL: &str = concat!(
            "SELECT ",
            columns!(),
            " FROM devices WHERE tenant = $1 AND id = $2"
        );
        Ok(on_pool!(self, db => sqlx::query_as::<_, Device>(SQL)
            .bind(tenant.as_str())
            .bind(id)
            .fetch_optional(db)
            .await)?)
    }

    /// The tenant's devices in id (creation) order.
    pub async fn list_devices(
        &self,
        tenant: &TenantId,
        page: &PageRequest,
    ) -> Result<Page<Device>, StoreError> {
        const SQL: &str = concat!(
            "SELECT ",
            columns!(),
            " FROM devices WHERE tenant = $1 AND ($2 IS NULL OR id > $2) ORDER BY id LIMIT $3"
        );
        let rows = on_pool!(self, db => sqlx::query_as::<_, Device>(SQL)
            .bind(tenant.as_str())
            .bind(page.after.as_deref())
            .bind(page.fetch())
            .fetch_all(db)
            .await)?;
        Ok(Page::from_rows(rows, page, |d| &d.id))
    }

    /// Applies `patch` in one statement (the database checks the result's invariants); `None`
    /// when the tenant has no such device.
    pub async fn update_device(
        &self,
        tenant: &TenantId,
        id: &str,
        patch: &DevicePatch,
    ) -> Result<Option<Device>, StoreError> {
        let _claims = self.device_write(tenant);
        const SQL: &str = concat!(
            "UPDATE devices SET ",
            "name = CASE WHEN $3 THEN $4 ELSE name END, ",
            "client_id = CASE WHEN $5 THEN $6 ELSE client_id END, ",
            "client_id_pattern = CASE WHEN $7 THEN $8 ELSE client_id_pattern END, ",
            "username = CASE WHEN $9 THEN $10 ELSE username END, ",
            "password_hash = CASE WHEN $11 THEN $12 ELSE password_hash END, ",
            "jwt = COALESCE($13, jwt), ",
            "cert_fingerprint = CASE WHEN $14 THEN $15 ELSE cert_fingerprint END, ",
            "cert_subject = CASE WHEN $16 THEN $17 ELSE cert_subject END, ",
            "enabled = COALESCE($18, enabled), updated_at = $19 ",
            "WHERE tenant = $1 AND id = $2 RETURNING ",
            columns!()
        );
        fn set<T>(field: &Option<Option<T>>) -> bool {
            field.is_some()
        }
        fn value<T>(field: &Option<Option<T>>) -> Option<&T> {
            field.as_ref().and_then(Option::as_ref)
        }
        let device = on_pool!(self, db => sqlx::query_as::<_, Device>(SQL)
            .bind(tenant.as_str())
            .bind(id)
            .bind(set(&patch.name))
            .bind(value(&patch.name).map(String::as_str))
            .bind(set(&patch.client_id))
            .bind(value(&patch.client_id).map(String::as_str))
            .bind(set(&patch.client_id_pattern))
            .bind(value(&patch.client_id_pattern).map(String::as_str))
            .bind(set(&patch.username))
            .bind(value(&patch.username).map(String::as_str))
            .bind(set(&patch.password))
            .bind(value(&patch.password).map(PasswordHash::as_str))
            .bind(patch.jwt)
            .bind(set(&patch.cert_fingerprint))
            .bind(value(&patch.cert_fingerprint).map(String::as_str))
            .bind(set(&patch.cert_subject))
            .bind(value(&patch.cert_subject).map(String::as_str))
            .bind(patch.enabled)
            .bind(now())
            .fetch_optional(db)
            .await)
        .map_err(|e| classify(e, "device"))?;
        if let Some(device) = &device {
            self.emit(ChangeEvent::Device {
                tenant: tenant.clone(),
                device_id: device.id.clone(),
            });
        }
        Ok(device)
    }

    /// Deletes a device; false when the tenant has no such device.
    pub async fn delete_device(&self, tenant: &TenantId, id: &str) -> Result<bool, StoreError> {
        let _claims = self.device_write(tenant);
        let deleted = on_pool!(self, db => sqlx::query(
            "DELETE FROM devices WHERE tenant = $1 AND id = $2",
        )
        .bind(tenant.as_str())
        .bind(id)
        .execute(db)
        .await
        .map(|r| r.rows_affected()))?;
        if deleted > 0 {
            self.emit(ChangeEvent::Device {
                tenant: tenant.clone(),
                device_id: id.to_owned(),
            });
        }
        Ok(deleted > 0)
    }
}
