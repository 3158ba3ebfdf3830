//! Who is calling: `Authorization: Bearer <token>` with the platform operator token or a tenant
//! API key. An API key sees exactly one tenant: any other tenant, and everything in it, answers
//! 404 as if it did not exist; a `read` key asking to change something gets 403.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use stratus_model::TenantId;

use super::AppState;
use super::error::ApiError;
use crate::secret;
use crate::store::{ApiKeyAuth, ApiKeyScope};

/// The authenticated caller.
#[derive(Debug, Clone)]
pub(crate) enum Principal {
    /// The platform operator: every tenant.
    Operator,
    /// A tenant API key.
    ApiKey(ApiKeyAuth),
}

/// What a request does to a tenant's resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Reads.
    Read,
    /// Changes.
    Write,
}

fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts).ok_or(ApiError::Unauthorized(
            "send 'Authorization: Bearer <token>' with the operator token or an API key",
        ))?;
        if secret::digests_equal(&secret::digest(token), &state.admin_digest) {
            return Ok(Self::Operator);
        }
        match state.store.authenticate_api_key(token).await? {
            Some(key) => Ok(Self::ApiKey(key)),
            None => Err(ApiError::Unauthorized(
                "the bearer token is not valid (revoked or mistyped?)",
            )),
        }
    }
}

impl Principal {
    /// Refuses anyone but the operator (tenant create, list and delete).
    pub(crate) fn require_operator(&self) -> Result<(), ApiError> {
        match self {
            Self::Operator => Ok(()),
            Self::ApiKey(_) => Err(ApiError::Forbidden {
                message: "this endpoint needs the operator token; API keys cannot use it",
                field: None,
            }),
        }
    }

    /// Whether this is the operator.
    pub(crate) fn is_operator(&self) -> bool {
        matches!(self, Self::Operator)
    }

    /// The tenant named by `slug`, if the caller may `access` it. Does not check that the tenant
    /// exists (see [`Principal::existing_tenant`]).
    pub(crate) fn tenant(&self, slug: &str, access: Access) -> Result<TenantId, ApiError> {
        let tenant = TenantId::new(slug).map_err(|_| ApiError::NotFound("tenant"))?;
        if let Self::ApiKey(key) = self {
            if key.tenant != tenant {
                return Err(ApiError::NotFound("tenant"));
            }
            if access == Access::Write && key.scope == ApiKeyScope::Read {
                return Err(ApiError::Forbidden {
                    message: "this API key has read scope; use a write key to change resources",
                    field: None,
                });
            }
        }
        Ok(tenant)
    }

    /// Like [`Principal::tenant`], and the tenant exists.
    pub(crate) async fn existing_tenant(
        &self,
        state: &AppState,
        slug: &str,
        access: Access,
    ) -> Result<TenantId, ApiError> {
        let tenant = self.tenant(slug, access)?;
        // An API key's tenant exists: deleting a tenant deletes its keys.
        if self.is_operator() && state.store.tenant(&tenant).await?.is_none() {
            return Err(ApiError::NotFound("tenant"));
        }
        Ok(tenant)
    }
}
