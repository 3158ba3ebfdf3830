//! `/api/v1/tenants`: create, list and delete are the operator's; a tenant's API keys may read
//! their own tenant, and a write key may change its name, default effect and anonymous access
//! (plan and status stay the operator's).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use stratus_model::TenantId;
use utoipa::ToSchema;

use super::auth::{Access, Principal};
use super::error::ApiError;
use super::extract::{JsonBody, ListParams, PathParams};
use super::paths::TenantPath;
use super::responses::{ReadErrors, WriteErrors};
use super::validate::{self, MAX_NAME};
use super::{AppState, TAG_TENANTS};
use crate::store::{NewTenant, Page, RuleEffect, Tenant, TenantPatch, TenantStatus};

/// A tenant to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateTenant {
    /// DNS-label slug (1-63 of a-z, 0-9, '-', not starting or ending with '-').
    #[schema(
        pattern = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$",
        min_length = 1,
        max_length = 63,
        example = "acme"
    )]
    slug: String,
    /// Display name (default: the slug).
    #[schema(
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$",
        min_length = 1,
        max_length = 256
    )]
    name: Option<String>,
    /// Plan (default `free`).
    #[schema(
        pattern = r"^[a-z0-9][a-z0-9_-]{0,62}$",
        min_length = 1,
        max_length = 63
    )]
    plan: Option<String>,
    /// Status (default `active`).
    status: Option<TenantStatus>,
    /// Effect when no ACL rule matches (default `deny`).
    default_effect: Option<RuleEffect>,
    /// Whether clients without credentials may connect (default false).
    allow_anonymous: Option<bool>,
}

impl CreateTenant {
    fn validate(self) -> Result<NewTenant, ApiError> {
        let slug = TenantId::new(&self.slug)
            .map_err(|e| ApiError::bad_request("slug", format!("slug: {e}")))?;
        validate::optional(self.name.as_deref(), |v| {
            validate::plain("name", v, MAX_NAME)
        })?;
        validate::optional(self.plan.as_deref(), |v| validate::plan("plan", v))?;
        Ok(NewTenant {
            name: self.name.unwrap_or_else(|| slug.as_str().to_owned()),
            slug,
            plan: self.plan.unwrap_or_else(|| "free".to_owned()),
            status: self.status.unwrap_or(TenantStatus::Active),
            default_effect: self.default_effect.unwrap_or(RuleEffect::Deny),
            allow_anonymous: self.allow_anonymous.unwrap_or(false),
        })
    }
}

/// Changes to a tenant; absent (or null) fields stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateTenant {
    /// Display name.
    #[schema(
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$",
        min_length = 1,
        max_length = 256
    )]
    name: Option<String>,
    /// Plan (operator only).
    #[schema(
        pattern = r"^[a-z0-9][a-z0-9_-]{0,62}$",
        min_length = 1,
        max_length = 63
    )]
    plan: Option<String>,
    /// Status (operator only).
    status: Option<TenantStatus>,
    /// Effect when no ACL rule matches.
    default_effect: Option<RuleEffect>,
    /// Whether clients without credentials may connect.
    allow_anonymous: Option<bool>,
}

impl UpdateTenant {
    fn validate(self, principal: &Principal) -> Result<TenantPatch, ApiError> {
        validate::optional(self.name.as_deref(), |v| {
            validate::plain("name", v, MAX_NAME)
        })?;
        validate::optional(self.plan.as_deref(), |v| validate::plan("plan", v))?;
        if !principal.is_operator() {
            for (field, set) in [
                ("plan", self.plan.is_some()),
                ("status", self.status.is_some()),
            ] {
                if set {
                    return Err(ApiError::Forbidden {
                        message: "only the operator can change a tenant's plan or status",
                        field: Some(field),
                    });
                }
            }
        }
        Ok(TenantPatch {
            name: self.name,
            plan: self.plan,
            status: self.status,
            default_effect: self.default_effect,
            allow_anonymous: self.allow_anonymous,
        })
    }
}

/// Create a tenant (operator only). New tenants deny what no rule allows.
#[utoipa::path(post, path = "/api/v1/tenants", tag = TAG_TENANTS,
    request_body = CreateTenant,
    responses((status = 201, description = "Created", body = Tenant), WriteErrors))]
pub(crate) async fn create_tenant(
    State(state): State<AppState>,
    principal: Principal,
    JsonBody(body): JsonBody<CreateTenant>,
) -> Result<(StatusCode, Json<Tenant>), ApiError> {
    principal.require_operator()?;
    let new = body.validate()?;
    let tenant = state.store.create_tenant(&new).await?;
    Ok((StatusCode::CREATED, Json(tenant)))
}

/// List tenants in slug order (operator only).
#[utoipa::path(get, path = "/api/v1/tenants", tag = TAG_TENANTS, params(ListParams),
    responses((status = 200, description = "A page of tenants", body = Page<Tenant>), ReadErrors))]
pub(crate) async fn list_tenants(
    State(state): State<AppState>,
    principal: Principal,
    params: ListParams,
) -> Result<Json<Page<Tenant>>, ApiError> {
    principal.require_operator()?;
    Ok(Json(state.store.list_tenants(&params.page()).await?))
}

/// Get a tenant.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}", tag = TAG_TENANTS,
    params(TenantPath),
    responses((status = 200, description = "The tenant", body = Tenant), ReadErrors))]
pub(crate) async fn get_tenant(
    State(state): State<AppState>,
    principal: Principal,
    PathParams(TenantPath { tenant: slug }): PathParams<TenantPath>,
) -> Result<Json<Tenant>, ApiError> {
    let tenant = principal.tenant(&slug, Access::Read)?;
    let found = state.store.tenant(&tenant).await?;
    found.map(Json).ok_or(ApiError::NotFound("tenant"))
}

/// Change a tenant. API keys with write scope may change everything but plan and status.
#[utoipa::path(patch, path = "/api/v1/tenants/{tenant}", tag = TAG_TENANTS,
    params(TenantPath),
    request_body = UpdateTenant,
    responses((status = 200, description = "The changed tenant", body = Tenant), WriteErrors))]
pub(crate) async fn update_tenant(
    State(state): State<AppState>,
    principal: Principal,
    PathParams(TenantPath { tenant: slug }): PathParams<TenantPath>,
    JsonBody(body): JsonBody<UpdateTenant>,
) -> Result<Json<Tenant>, ApiError> {
    let tenant = principal.tenant(&slug, Access::Write)?;
    let patch = body.validate(&principal)?;
    let updated = state.store.update_tenant(&tenant, &patch).await?;
    updated.map(Json).ok_or(ApiError::NotFound("tenant"))
}

/// Delete a tenant and everything it owns (operator only).
#[utoipa::path(delete, path = "/api/v1/tenants/{tenant}", tag = TAG_TENANTS,
    params(TenantPath),
    responses((status = 204, description = "Deleted"), ReadErrors))]
pub(crate) async fn delete_tenant(
    State(state): State<AppState>,
    principal: Principal,
    PathParams(TenantPath { tenant: slug }): PathParams<TenantPath>,
) -> Result<StatusCode, ApiError> {
    principal.require_operator()?;
    let tenant = principal.tenant(&slug, Access::Write)?;
    if state.store.delete_tenant(&tenant).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("tenant"))
    }
}
