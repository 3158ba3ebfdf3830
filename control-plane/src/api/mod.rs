//! The HTTP API: `/api/v1/...` (bearer-authenticated), the OpenAPI 3.1 document at
//! `/api/openapi.json` and Swagger UI at `/api/docs` (both public, vendored, no data).
//!
//! Every failure, including unknown routes, wrong methods, bodies that are too large or not JSON,
//! answers the JSON error shape of [`error`].

mod acl_rules;
mod api_keys;
mod auth;
mod context;
mod devices;
mod error;
mod extract;
mod internal;
mod jwt_keys;
mod paths;
mod responses;
mod tenants;
mod validate;

use std::fmt;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::SwaggerUi;

use crate::secret;
use crate::store::Store;

pub(crate) const TAG_TENANTS: &str = "tenants";
pub(crate) const TAG_DEVICES: &str = "devices";
pub(crate) const TAG_RULES: &str = "acl-rules";
pub(crate) const TAG_JWT_KEYS: &str = "jwt-keys";
pub(crate) const TAG_API_KEYS: &str = "api-keys";

/// Where the OpenAPI document is served.
pub const OPENAPI_PATH: &str = "/api/openapi.json";
/// Where Swagger UI is served.
pub const DOCS_PATH: &str = "/api/docs";

/// What every request handler shares: the store and the operator token's digest.
#[derive(Clone)]
pub struct AppState {
    pub(crate) store: Arc<Store>,
    pub(crate) admin_digest: [u8; 32],
}

impl AppState {
    /// State over `store`, accepting `admin_token` as the platform operator token.
    pub fn new(store: Arc<Store>, admin_token: &str) -> Self {
        Self {
            store,
            admin_digest: secret::digest(admin_token),
        }
    }
}

impl fmt::Debug for AppState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppState")
            .field("store", &self.store.backend())
            .field("admin_token", &"..")
            .finish()
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Stratus control plane",
        description = "Tenants, devices, credentials and access rules of the Stratus MQTT service. \
                       Every `/api/v1` request needs `Authorization: Bearer <token>`: the platform \
                       operator token, or an API key of one tenant (`read` or `write` scope).",
        license(name = "Apache-2.0", identifier = "Apache-2.0")
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    components(schemas(error::ErrorBody)),
    tags(
        (name = "tenants", description = "Tenants (create, list and delete: operator only)"),
        (name = "devices", description = "Devices and their credentials"),
        (name = "acl-rules", description = "Access rules and the explain simulator"),
        (name = "jwt-keys", description = "Keys that verify device JWTs"),
        (name = "api-keys", description = "Tenant API keys"),
    )
)]
struct ApiDoc;

/// Declares the bearer security scheme every operation requires.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The platform operator token or a tenant API key (`stratus_key_...`)",
                    ))
                    .build(),
            ),
        );
    }
}

/// The API routes and their OpenAPI document.
fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(tenants::create_tenant, tenants::list_tenants))
        .routes(routes!(
            tenants::get_tenant,
            tenants::update_tenant,
            tenants::delete_tenant
        ))
        .routes(routes!(devices::create_device, devices::list_devices))
        .routes(routes!(
            devices::get_device,
            devices::update_device,
            devices::delete_device
        ))
        .routes(routes!(acl_rules::create_rule, acl_rules::list_rules))
        .routes(routes!(acl_rules::get_rule, acl_rules::delete_rule))
        .routes(routes!(acl_rules::explain))
        .routes(routes!(jwt_keys::create_jwt_key, jwt_keys::list_jwt_keys))
        .routes(routes!(jwt_keys::get_jwt_key, jwt_keys::delete_jwt_key))
        .routes(routes!(api_keys::create_api_key, api_keys::list_api_keys))
        .routes(routes!(api_keys::get_api_key, api_keys::delete_api_key))
}

/// The OpenAPI document of the API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes().into_openapi()
}

/// The control plane's HTTP API. Serve it as it is, or merge it into a larger router (it owns
/// `/api/...` and the edges' `/internal/v1/...` (not in the OpenAPI document); `/healthz` belongs to the
/// edge).
pub fn router(state: AppState) -> Router {
    let (api, document) = routes().split_for_parts();
    api.merge(internal::routes())
        .with_state(state)
        .merge(SwaggerUi::new(DOCS_PATH).url(OPENAPI_PATH, document))
        .fallback(|| async { error::ApiError::NoRoute })
        .method_not_allowed_fallback(|| async { error::ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(extract::BODY_LIMIT))
        .layer(middleware::from_fn(context::request_context))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patterns(value: &serde_json::Value, found: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, value) in map {
                    match (key.as_str(), value) {
                        ("pattern", serde_json::Value::String(p)) => found.push(p.clone()),
                        _ => patterns(value, found),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| patterns(v, found)),
            _ => {}
        }
    }

    #[test]
    fn the_document_is_openapi_3_1_and_uses_only_the_checked_patterns() {
        let document = serde_json::to_value(openapi()).unwrap();
        assert_eq!(document["openapi"], "3.1.0");
        let mut found = Vec::new();
        patterns(&document, &mut found);
        assert!(!found.is_empty());
        for pattern in found {
            assert!(
                validate::PATTERNS.contains(&pattern.as_str()),
                "{pattern} is not mirrored by a check in api::validate"
            );
        }
    }
}
