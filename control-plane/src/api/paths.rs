//! Path parameters of the tenant-scoped resources, documented with the tenant slug's pattern.

use serde::Deserialize;
use utoipa::IntoParams;

/// `/tenants/{tenant}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct TenantPath {
    /// Tenant slug.
    #[param(
        pattern = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$",
        min_length = 1,
        max_length = 63
    )]
    pub(crate) tenant: String,
}

/// `/tenants/{tenant}/<resources>/{id}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct ItemPath {
    /// Tenant slug.
    #[param(
        pattern = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$",
        min_length = 1,
        max_length = 63
    )]
    pub(crate) tenant: String,
    /// Resource id.
    #[param(max_length = 64)]
    pub(crate) id: String,
}
