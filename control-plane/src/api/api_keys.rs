//! `/api/v1/tenants/{tenant}/api-keys`: bearer keys for one tenant. The secret is in the answer
//! to the create request only; lists show its last four characters.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::auth::{Access, Principal};
use super::error::ApiError;
use super::extract::{JsonBody, ListParams, PathParams};
use super::paths::{ItemPath, TenantPath};
use super::responses::{ReadErrors, WriteErrors};
use super::validate::{self, MAX_NAME};
use super::{AppState, TAG_API_KEYS};
use crate::store::{ApiKey, ApiKeyScope, NewApiKey, Page};

/// A key to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateApiKey {
    /// What the key is for.
    #[schema(
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$",
        min_length = 1,
        max_length = 256,
        example = "provisioning"
    )]
    name: String,
    /// `read` or `write`.
    scope: ApiKeyScope,
}

/// A new key with its secret, shown this once.
#[derive(Serialize, ToSchema)]
pub(crate) struct CreatedApiKey {
    /// Key id.
    id: String,
    /// Tenant slug.
    tenant: String,
    /// What the key is for.
    name: String,
    /// Read or write.
    scope: ApiKeyScope,
    /// The last four characters of the secret.
    last4: String,
    /// When the key was created.
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    /// The bearer secret. It is not stored and cannot be shown again.
    secret: String,
}

impl std::fmt::Debug for CreatedApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedApiKey")
            .field("id", &self.id)
            .field("tenant", &self.tenant)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// Create an API key for the tenant (needs the operator token or a write key).
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/api-keys", tag = TAG_API_KEYS,
    params(TenantPath), request_body = CreateApiKey,
    responses((status = 201, description = "Created; the only answer with the secret", body = CreatedApiKey), WriteErrors))]
pub(crate) async fn create_api_key(
    State(state): State<AppState>,
    principal: Principal,
    PathParams(path): PathParams<TenantPath>,
    JsonBody(body): JsonBody<CreateApiKey>,
) -> Result<(StatusCode, Json<CreatedApiKey>), ApiError> {
    let tenant = principal
        .existing_tenant(&state, &path.tenant, Access::Write)
        .await?;
    validate::plain("name", &body.name, MAX_NAME)?;
    let new = NewApiKey {
        name: body.name,
        scope: body.scope,
    };
    let (key, secret) = state.store.create_api_key(&tenant, &new).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedApiKey {
            id: key.id,
            tenant: key.tenant,
            name: key.name,
            scope: key.scope,
            last4: key.last4,
            created_at: key.created_at,
            secret: secret.expose().to_owned(),
        }),
    ))
}

/// List the tenant's API keys in creation order.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/api-keys", tag = TAG_API_KEYS,
    params(TenantPath, ListParams),
    responses((status = 200, description = "A page of keys", body = Page<ApiKey>), ReadErrors))]
pub(crate) async fn list_api_keys(
    State(state): State<AppState>,
    principal: Principal,
    PathParams(path): PathParams<TenantPath>,
    params: ListParams,
) -> Result<Json<Page<ApiKey>>, ApiError> {
    let tenant = principal
        .existing_tenant(&state, &path.tenant, Access::Read)
        .await?;
    Ok(Json(
        state.store.list_api_keys(&tenant, &params.page()).await?,
    ))
}

/// Get an API key (without its secret).
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/api-keys/{id}", tag = TAG_API_KEYS,
    params(ItemPath),
    responses((status = 200, description = "The key", body = ApiKey), ReadErrors))]
pub(crate) async fn get_api_key(
    State(state): State<AppState>,
    principal: Principal,
    PathParams(path): PathParams<ItemPath>,
) -> Result<Json<ApiKey>, ApiError> {
    let tenant = principal.tenant(&path.tenant, Access::Read)?;
    let found = state.store.api_key(&tenant, &path.id).await?;
    found.map(Json).ok_or(ApiError::NotFound("API key"))
}

/// Revoke an API key; requests with it fail from now on.
#[utoipa::path(delete, path = "/api/v1/tenants/{tenant}/api-keys/{id}", tag = TAG_API_KEYS,
    params(ItemPath),
    responses((status = 204, description = "Revoked"), ReadErrors))]
pub(crate) async fn delete_api_key(
    State(state): State<AppState>,
    principal: Principal,
    PathParams(path): PathParams<ItemPath>,
) -> Result<StatusCode, ApiError> {
    let tenant = principal.tenant(&path.tenant, Access::Write)?;
    if state.store.delete_api_key(&tenant, &path.id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("API key"))
    }
}
