//! `/api/v1/tenants/{tenant}/devices`: a device binds a client id (or pattern) to credentials.
//! The API takes a `password` and stores only its argon2id hash; it never returns either.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;

use super::auth::{Access, Principal};
use super::error::ApiError;
use super::extract::{JsonBody, ListParams, PathParams};
use super::paths::{ItemPath, TenantPath};
use super::responses::{ReadErrors, WriteErrors};
use super::validate::{self, MAX_IDENTITY, MAX_NAME, MAX_PASSWORD, MAX_SUBJECT, patch_field};
use super::{AppState, TAG_DEVICES};
use crate::password::hash_password;
use crate::store::{Device, DevicePatch, NewDevice, Page};

/// A device to create. A `password` or `jwt` needs a `username`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateDevice {
    /// Display name.
    #[schema(
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$",
        min_length = 1,
        max_length = 256
    )]
    name: Option<String>,
    /// The client id this device connects with; nobody else in the tenant may use it.
    #[schema(
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$",
        min_length = 1,
        max_length = 256
    )]
    client_id: Option<String>,
    /// Client ids this device may use; `*` matches any run of characters.
    #[schema(
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$",
        min_length = 1,
        max_length = 256,
        example = "sensor-*"
    )]
    client_id_pattern: Option<String>,
    /// User name for password or JWT authentication (no `@`).
    #[schema(
        pattern = r"^[^\u0000-\u001F\u007F-\u009F@]*$",
        min_length = 1,
        max_length = 256
    )]
    username: Option<String>,
    /// Password; stored as an argon2id hash and never returned.
    #[schema(min_length = 1, max_length = 1024, format = Password)]
    password: Option<String>,
    /// Whether the device may authenticate with a JWT signed by one of the tenant's keys
    /// (default false).
    jwt: Option<bool>,
    /// SHA-256 fingerprint of the client certificate.
    #[schema(pattern = r"^([0-9A-Fa-f]{64}|[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){31})$")]
    cert_fingerprint: Option<String>,
    /// Subject of the client certificate (RFC 4514).
    #[schema(
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$",
        min_length = 1,
        max_length = 1024
    )]
    cert_subject: Option<String>,
    /// Whether the device may connect (default true).
    enabled: Option<bool>,
}

/// Changes to a device: an absent field stays as it is, `null` clears it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateDevice {
    /// Display name.
    #[serde(default, deserialize_with = "patch_field")]
    #[schema(value_type = Option<String>, pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$", min_length = 1, max_length = 256)]
    name: Option<Option<String>>,
    /// Exact client id.
    #[serde(default, deserialize_with = "patch_field")]
    #[schema(value_type = Option<String>, pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$", min_length = 1, max_length = 256)]
    client_id: Option<Option<String>>,
    /// Client-id pattern.
    #[serde(default, deserialize_with = "patch_field")]
    #[schema(value_type = Option<String>, pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$", min_length = 1, max_length = 256)]
    client_id_pattern: Option<Option<String>>,
    /// User name.
    #[serde(default, deserialize_with = "patch_field")]
    #[schema(value_type = Option<String>, pattern = r"^[^\u0000-\u001F\u007F-\u009F@]*$", min_length = 1, max_length = 256)]
    username: Option<Option<String>>,
    /// New password (`null` removes it).
    #[serde(default, deserialize_with = "patch_field")]
    #[schema(value_type = Option<String>, min_length = 1, max_length = 1024, format = Password)]
    password: Option<Option<String>>,
    /// JWT authentication.
    jwt: Option<bool>,
    /// Certificate fingerprint.
    #[serde(default, deserialize_with = "patch_field")]
    #[schema(value_type = Option<String>, pattern = r"^([0-9A-Fa-f]{64}|[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){31})$")]
    cert_fingerprint: Option<Option<String>>,
    /// Certificate subject.
    #[serde(default, deserialize_with = "patch_field")]
    #[schema(value_type = Option<String>, pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$", min_length = 1, max_length = 1024)]
    cert_subject: Option<Option<String>>,
    /// Whether the device may connect.
    enabled: Option<bool>,
}

/// The identity fields both request types share, checked the same way.
struct Fields<'a> {
    name: Option<&'a str>,
    client_id: Option<&'a str>,
    client_id_pattern: Option<&'a str>,
    username: Option<&'a str>,
    password: Option<&'a str>,
    cert_subject: Option<&'a str>,
}

impl Fields<'_> {
    fn validate(&self) -> Result<(), ApiError> {
        validate::optional(self.name, |v| validate::plain("name", v, MAX_NAME))?;
        validate::optional(self.client_id, |v| {
            validate::plain("client_id", v, MAX_IDENTITY)
        })?;
        validate::optional(self.client_id_pattern, |v| {
            validate::plain("client_id_pattern", v, MAX_IDENTITY)
        })?;
        validate::optional(self.username, |v| validate::username("username", v))?;
        validate::optional(self.password, |v| {
            validate::length("password", v, 1, MAX_PASSWORD)
        })?;
        validate::optional(self.cert_subject, |v| {
            validate::plain("cert_subject", v, MAX_SUBJECT)
        })
    }
}

fn fingerprint(value: Option<&str>) -> Result<Option<String>, ApiError> {
    value
        .map(|v| validate::fingerprint("cert_fingerprint", v))
        .transpose()
}

async fn hash(password: Option<String>) -> Result<Option<crate::password::PasswordHash>, ApiError> {
    match password {
        Some(p) => Ok(Some(hash_password(p).await?)),
        None => Ok(None),
    }
}

impl CreateDevice {
    async fn validate(self) -> Result<NewDevice, ApiError> {
        Fields {
            name: self.name.as_deref(),
            client_id: self.client_id.as_deref(),
            client_id_pattern: self.client_id_pattern.as_deref(),
            username: self.username.as_deref(),
            password: self.password.as_deref(),
            cert_subject: self.cert_subject.as_deref(),
        }
        .validate()?;
        let cert_fingerprint = fingerprint(self.cert_fingerprint.as_deref())?;
        let jwt = self.jwt.unwrap_or(false);
        if self.username.is_none() && (self.password.is_some() || jwt) {
            return Err(ApiError::unprocessable(
                "username",
                "a device with a password or JWT authentication needs a username",
            ));
        }
        Ok(NewDevice {
            name: self.name,
            client_id: self.client_id,
            client_id_pattern: self.client_id_pattern,
            username: self.username,
            password: hash(self.password).await?,
            jwt,
            cert_fingerprint,
            cert_subject: self.cert_subject,
            enabled: self.enabled.unwrap_or(true),
        })
    }
}

impl UpdateDevice {
    async fn validate(self) -> Result<DevicePatch, ApiError> {
        fn inner(field: &Option<Option<String>>) -> Option<&str> {
            field.as_ref().and_then(|v| v.as_deref())
        }
        Fields {
            name: inner(&self.name),
            client_id: inner(&self.client_id),
            client_id_pattern: inner(&self.client_id_pattern),
            username: inner(&self.username),
            password: inner(&self.password),
            cert_subject: inner(&self.cert_subject),
        }
        .validate()?;
        let cert_fingerprint = match &self.cert_fingerprint {
            Some(value) => Some(fingerprint(value.as_deref())?),
            None => None,
        };
        let password = match self.password {
            Some(value) => Some(hash(value).await?),
            None => None,
        };
        Ok(DevicePatch {
            name: self.name,
            client_id: self.client_id,
            client_id_pattern: self.client_id_pattern,
            username: self.username,
            password,
            jwt: self.jwt,
            cert_fingerprint,
            cert_subject: self.cert_subject,
            enabled: self.enabled,
        })
    }
}

/// Create a device.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/devices", tag = TAG_DEVICES,
    params(TenantPath), request_body = CreateDevice,
    responses((status = 201, description = "Created", body = Device), WriteErrors))]
pub(crate) async fn create_device(
    State(state): State<AppState>,
    principal: Principal,
    PathParams(path): PathParams<TenantPath>,
    JsonBody(body): JsonBody<CreateDevice>,
) -> Result<(StatusCode, Json<Device>), ApiError> {
    let tenant = principal
        .existing_tenant(&state, &path.tenant, Access::Write)
        .await?;
    let new = body.validate().await?;
    let device = state.store.create_device(&tenant, &new).await?;
    Ok((StatusCode::CREATED, Json(device)))
}

/// List the tenant's devices in creation order.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/devices", tag = TAG_DEVICES,
    params(TenantPath, ListParams),
    responses((status = 200, description = "A page of devices", body = Page<Device>), ReadErrors))]
pub(crate) async fn list_devices(
    State(state): State<AppState>,
    principal: Principal,
    PathParams(path): PathParams<TenantPath>,
    params: ListParams,
) -> Result<Json<Page<Device>>, ApiError> {
    let tenant = principal
        .existing_tenant(&state, &path.tenant, Access::Read)
        .await?;
    Ok(Json(
        state.store.list_devices(&tenant, &params.page()).await?,
    ))
}

/// Get a device.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/devices/{id}", tag = TAG_DEVICES,
    params(ItemPath),
    responses((status = 200, description = "The device", body = Device), ReadErrors))]
pub(crate) async fn get_device(
    State(state): State<AppState>,
    principal: Principal,
    PathParams(path): PathParams<ItemPath>,
) -> Result<Json<Device>, ApiError> {
    let tenant = principal.tenant(&path.tenant, Access::Read)?;
    let found = state.store.device(&tenant, &path.id).await?;
    found.map(Json).ok_or(ApiError::NotFound("device"))
}

/// Change a device. Open connections of the device re-authenticate within seconds.
#[utoipa::path(patch, path = "/api/v1/tenants/{tenant}/devices/{id}", tag = TAG_DEVICES,
    params(ItemPath), request_body = UpdateDevice,
    responses((status = 200, description = "The changed device", body = Device), WriteErrors))]
pub(crate) async fn update_device(
    State(state): State<AppState>,
    principal: Principal,
    PathParams(path): PathParams<ItemPath>,
    JsonBody(body): JsonBody<UpdateDevice>,
) -> Result<Json<Device>, ApiError> {
    let tenant = principal.tenant(&path.tenant, Access::Write)?;
    // Do not spend a password hash on a device that does not exist.
    if state.store.device(&tenant, &path.id).await?.is_none() {
        return Err(ApiError::NotFound("device"));
    }
    let patch = body.validate().await?;
    let updated = state.store.update_device(&tenant, &path.id, &patch).await?;
    updated.map(Json).ok_or(ApiError::NotFound("device"))
}

/// Delete a device; its connections are closed within seconds.
#[utoipa::path(delete, path = "/api/v1/tenants/{tenant}/devices/{id}", tag = TAG_DEVICES,
    params(ItemPath),
    responses((status = 204, description = "Deleted"), ReadErrors))]
pub(crate) async fn delete_device(
    State(state): State<AppState>,
    principal: Principal,
    PathParams(path): PathParams<ItemPath>,
) -> Result<StatusCode, ApiError> {
    let tenant = principal.tenant(&path.tenant, Access::Write)?;
    if state.store.delete_device(&tenant, &path.id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("device"))
    }
}
