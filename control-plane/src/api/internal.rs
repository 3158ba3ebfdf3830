//! `/internal/v1/...`: the [`Directory`] an edge reads, over HTTP, for the clustered shape
//! (`stratus-remote-directory` is the client). Each route answers exactly one of the trait's
//! questions with the model's records as JSON; change events travel over NATS instead
//! (`crate::events`).
//!
//! Only the platform operator token is accepted (the same bearer check as `/api/v1`; an API key
//! gets 403). These routes are not part of the public OpenAPI document: they are a contract
//! between the control plane and the edges of one deployment, not an API for customers.
//!
//! | route | answer |
//! |---|---|
//! | `GET /internal/v1/ping` | `{"backend": "postgres"}`: the token works |
//! | `GET /internal/v1/tenants/{tenant}` | [`TenantRecord`], 404 when there is none |
//! | `GET .../{tenant}/device-by-username?username=` | [`DeviceRecord`], 404 when there is none |
//! | `GET .../{tenant}/device-by-certificate?fingerprint=&subject=` | [`DeviceRecord`], 404 when there is none |
//! | `GET .../{tenant}/devices-claiming-client-id?client_id=` | `[DeviceRecord]` |
//! | `GET .../{tenant}/acl-rules` | `[AclRuleRecord]` |
//! | `GET .../{tenant}/jwt-keys` | `[JwtKeyRecord]` |
//!
//! User-controlled strings (user names, client ids, certificate subjects) travel as query
//! parameters (`application/x-www-form-urlencoded`, so any string round-trips); a tenant id in
//! the path is a slug. A path segment that is not a valid slug is a tenant that does not exist.
//!
//! [`TenantRecord`]: stratus_model::TenantRecord
//! [`DeviceRecord`]: stratus_model::DeviceRecord
//! [`AclRuleRecord`]: stratus_model::AclRuleRecord
//! [`JwtKeyRecord`]: stratus_model::JwtKeyRecord

use axum::Json;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::Uri;
use axum::routing::get;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use stratus_model::{
    AclRuleRecord, DeviceRecord, Directory, DirectoryError, JwtKeyRecord, TenantId, TenantRecord,
};

use super::AppState;
use super::auth::Principal;
use super::error::ApiError;
use super::extract::PathParams;

/// The internal routes (merged into the API router, outside the OpenAPI document).
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/internal/v1/ping", get(ping))
        .route("/internal/v1/tenants/{tenant}", get(tenant))
        .route(
            "/internal/v1/tenants/{tenant}/device-by-username",
            get(device_by_username),
        )
        .route(
            "/internal/v1/tenants/{tenant}/device-by-certificate",
            get(device_by_certificate),
        )
        .route(
            "/internal/v1/tenants/{tenant}/devices-claiming-client-id",
            get(devices_claiming_client_id),
        )
        .route("/internal/v1/tenants/{tenant}/acl-rules", get(acl_rules))
        .route("/internal/v1/tenants/{tenant}/jwt-keys", get(jwt_keys))
}

/// What `ping` answers.
#[derive(Debug, serde::Serialize)]
struct Pong {
    backend: &'static str,
}

/// `?username=`
#[derive(Debug, Deserialize)]
struct UsernameQuery {
    username: String,
}

/// `?fingerprint=&subject=`
#[derive(Debug, Deserialize)]
struct CertificateQuery {
    fingerprint: String,
    subject: String,
}

/// `?client_id=`
#[derive(Debug, Deserialize)]
struct ClientIdQuery {
    client_id: String,
}

/// The operator, or the request's error.
fn operator(principal: &Principal) -> Result<(), ApiError> {
    principal.require_operator()
}

/// The tenant named in the path; a segment that is not a slug names no tenant.
fn tenant_id(slug: &str) -> Result<TenantId, ApiError> {
    TenantId::new(slug).map_err(|_| ApiError::NotFound("tenant"))
}

/// The query string as `T`, naming what is wrong.
fn query<T: DeserializeOwned>(uri: &Uri) -> Result<T, ApiError> {
    Query::<T>::try_from_uri(uri)
        .map(|Query(value)| value)
        .map_err(|e| ApiError::BadRequest {
            message: format!("the query string is malformed: {}", e.body_text()),
            field: None,
        })
}

fn unavailable(err: DirectoryError) -> ApiError {
    ApiError::Internal(err.to_string())
}

async fn ping(principal: Principal, State(state): State<AppState>) -> Result<Json<Pong>, ApiError> {
    operator(&principal)?;
    Ok(Json(Pong {
        backend: state.store.backend(),
    }))
}

async fn tenant(
    principal: Principal,
    State(state): State<AppState>,
    PathParams(slug): PathParams<String>,
) -> Result<Json<TenantRecord>, ApiError> {
    operator(&principal)?;
    let id = tenant_id(&slug)?;
    state
        .store
        .tenant_record(&id)
        .await?
        .map(Json)
        .ok_or(ApiError::NotFound("tenant"))
}

async fn device_by_username(
    principal: Principal,
    State(state): State<AppState>,
    PathParams(slug): PathParams<String>,
    uri: Uri,
) -> Result<Json<DeviceRecord>, ApiError> {
    operator(&principal)?;
    let UsernameQuery { username } = query(&uri)?;
    let Ok(tenant) = TenantId::new(&slug) else {
        return Err(ApiError::NotFound("device"));
    };
    Directory::device_by_username(state.store.as_ref(), &tenant, &username)
        .await
        .map_err(unavailable)?
        .map(Json)
        .ok_or(ApiError::NotFound("device"))
}

async fn device_by_certificate(
    principal: Principal,
    State(state): State<AppState>,
    PathParams(slug): PathParams<String>,
    uri: Uri,
) -> Result<Json<DeviceRecord>, ApiError> {
    operator(&principal)?;
    let CertificateQuery {
        fingerprint,
        subject,
    } = query(&uri)?;
    let Ok(tenant) = TenantId::new(&slug) else {
        return Err(ApiError::NotFound("device"));
    };
    Directory::device_by_certificate(state.store.as_ref(), &tenant, &fingerprint, &subject)
        .await
        .map_err(unavailable)?
        .map(Json)
        .ok_or(ApiError::NotFound("device"))
}

async fn devices_claiming_client_id(
    principal: Principal,
    State(state): State<AppState>,
    PathParams(slug): PathParams<String>,
    uri: Uri,
) -> Result<Json<Vec<DeviceRecord>>, ApiError> {
    operator(&principal)?;
    let ClientIdQuery { client_id } = query(&uri)?;
    let Ok(tenant) = TenantId::new(&slug) else {
        return Ok(Json(Vec::new()));
    };
    Directory::devices_claiming_client_id(state.store.as_ref(), &tenant, &client_id)
        .await
        .map(Json)
        .map_err(unavailable)
}

async fn acl_rules(
    principal: Principal,
    State(state): State<AppState>,
    PathParams(slug): PathParams<String>,
) -> Result<Json<Vec<AclRuleRecord>>, ApiError> {
    operator(&principal)?;
    let Ok(tenant) = TenantId::new(&slug) else {
        return Ok(Json(Vec::new()));
    };
    Directory::acl_rules(state.store.as_ref(), &tenant)
        .await
        .map(Json)
        .map_err(unavailable)
}

async fn jwt_keys(
    principal: Principal,
    State(state): State<AppState>,
    PathParams(slug): PathParams<String>,
) -> Result<Json<Vec<JwtKeyRecord>>, ApiError> {
    operator(&principal)?;
    let Ok(tenant) = TenantId::new(&slug) else {
        return Ok(Json(Vec::new()));
    };
    Directory::jwt_keys(state.store.as_ref(), &tenant)
        .await
        .map(Json)
        .map_err(unavailable)
}
