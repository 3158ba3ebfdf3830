//! `/api/v1/tenants/{tenant}/jwt-keys`: the public keys that verify the JWTs devices present as
//! their password. A key must be a SubjectPublicKeyInfo PEM of the algorithm's type (RSA of at
//! least 2048 bits, EC P-256, Ed25519) that the JWT library loads.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use jsonwebtoken::DecodingKey;
use serde::Deserialize;
use utoipa::ToSchema;
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_PKCS1_RSAENCRYPTION, OID_SIG_ED25519,
};
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;
use x509_parser::x509::SubjectPublicKeyInfo;

use super::auth::{Access, Principal};
use super::error::ApiError;
use super::extract::{JsonBody, ListParams, PathParams};
use super::paths::{ItemPath, TenantPath};
use super::responses::{ReadErrors, WriteErrors};
use super::validate::{self, MAX_NAME};
use super::{AppState, TAG_JWT_KEYS};
use crate::store::{JwtKey, KeyAlgorithm, NewJwtKey, Page};

/// Longest PEM accepted (characters).
const MAX_PEM: usize = 16 * 1024;
/// Smallest RSA modulus accepted (bits).
const MIN_RSA_BITS: usize = 2048;

/// A key to add.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateJwtKey {
    /// RS256, ES256 or EdDSA.
    algorithm: KeyAlgorithm,
    /// Public key as SubjectPublicKeyInfo PEM (`-----BEGIN PUBLIC KEY-----`).
    #[schema(min_length = 1, max_length = 16384)]
    public_key_pem: String,
    /// Required `aud` claim of tokens verified with this key.
    #[schema(
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$",
        min_length = 1,
        max_length = 256
    )]
    audience: Option<String>,
}

impl CreateJwtKey {
    fn validate(self) -> Result<NewJwtKey, ApiError> {
        validate::length("public_key_pem", &self.public_key_pem, 1, MAX_PEM)?;
        validate::optional(self.audience.as_deref(), |v| {
            validate::plain("audience", v, MAX_NAME)
        })?;
        check_key(self.algorithm, &self.public_key_pem)
            .map_err(|why| ApiError::unprocessable("public_key_pem", why))?;
        Ok(NewJwtKey {
            algorithm: self.algorithm,
            public_key_pem: self.public_key_pem,
            audience: self.audience,
        })
    }
}

/// Whether `pem` is a public key for `algorithm`; the reason when it is not.
fn check_key(algorithm: KeyAlgorithm, pem: &str) -> Result<(), String> {
    let (_, parsed) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .map_err(|_| "public_key_pem is not PEM".to_owned())?;
    if parsed.label != "PUBLIC KEY" {
        return Err(format!(
            "public_key_pem must be a '-----BEGIN PUBLIC KEY-----' block, not {:?}",
            parsed.label
        ));
    }
    let (_, spki) = SubjectPublicKeyInfo::from_der(&parsed.contents)
        .map_err(|_| "public_key_pem does not hold a public key".to_owned())?;
    let oid = &spki.algorithm.algorithm;
    let fits = match algorithm {
        KeyAlgorithm::Rs256 => {
            if *oid != OID_PKCS1_RSAENCRYPTION {
                return Err("RS256 needs an RSA public key".to_owned());
            }
            match spki.parsed() {
                Ok(PublicKey::RSA(rsa)) if rsa.key_size() >= MIN_RSA_BITS => {}
                Ok(PublicKey::RSA(rsa)) => {
                    return Err(format!(
                        "the RSA key has {} bits; at least {MIN_RSA_BITS} are needed",
                        rsa.key_size()
                    ));
                }
                _ => return Err("the RSA public key does not parse".to_owned()),
            }
            DecodingKey::from_rsa_pem(pem.as_bytes()).is_ok()
        }
        KeyAlgorithm::Es256 => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok());
            if *oid != OID_KEY_TYPE_EC_PUBLIC_KEY || curve.as_ref() != Some(&OID_EC_P256) {
                return Err("ES256 needs an EC public key on curve P-256".to_owned());
            }
            matches!(spki.parsed(), Ok(PublicKey::EC(point)) if point.data().len() == 65)
                && DecodingKey::from_ec_pem(pem.as_bytes()).is_ok()
        }
        KeyAlgorithm::EdDsa => {
            if *oid != OID_SIG_ED25519 {
                return Err("EdDSA needs an Ed25519 public key".to_owned());
            }
            spki.subject_public_key.data.len() == 32
                && DecodingKey::from_ed_pem(pem.as_bytes()).is_ok()
        }
    };
    if fits {
        Ok(())
    } else {
        Err(format!(
            "public_key_pem is not a valid {} public key",
            algorithm.as_str()
        ))
    }
}

/// Add a JWT verification key to the tenant.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/jwt-keys", tag = TAG_JWT_KEYS,
    params(TenantPath), request_body = CreateJwtKey,
    responses((status = 201, description = "Created", body = JwtKey), WriteErrors))]
pub(crate) async fn create_jwt_key(
    State(state): State<AppState>,
    principal: Principal,
    PathParams(path): PathParams<TenantPath>,
    JsonBody(body): JsonBody<CreateJwtKey>,
) -> Result<(StatusCode, Json<JwtKey>), ApiError> {
    let tenant = principal
        .existing_tenant(&state, &path.tenant, Access::Write)
        .await?;
    let new = body.validate()?;
    let key = state.store.create_jwt_key(&tenant, &new).await?;
    Ok((StatusCode::CREATED, Json(key)))
}

/// List the tenant's JWT keys in creation order.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/jwt-keys", tag = TAG_JWT_KEYS,
    params(TenantPath, ListParams),
    responses((status = 200, description = "A page of keys", body = Page<JwtKey>), ReadErrors))]
pub(crate) async fn list_jwt_keys(
    State(state): State<AppState>,
    principal: Principal,
    PathParams(path): PathParams<TenantPath>,
    params: ListParams,
) -> Result<Json<Page<JwtKey>>, ApiError> {
    let tenant = principal
        .existing_tenant(&state, &path.tenant, Access::Read)
        .await?;
    Ok(Json(
        state.store.list_jwt_keys(&tenant, &params.page()).await?,
    ))
}

/// Get a JWT key.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/jwt-keys/{id}", tag = TAG_JWT_KEYS,
    params(ItemPath),
    responses((status = 200, description = "The key", body = JwtKey), ReadErrors))]
pub(crate) async fn get_jwt_key(
    State(state): State<AppState>,
    principal: Principal,
    PathParams(path): PathParams<ItemPath>,
) -> Result<Json<JwtKey>, ApiError> {
    let tenant = principal.tenant(&path.tenant, Access::Read)?;
    let found = state.store.jwt_key(&tenant, &path.id).await?;
    found.map(Json).ok_or(ApiError::NotFound("JWT key"))
}

/// Remove a JWT key; tokens signed with it stop working within seconds.
#[utoipa::path(delete, path = "/api/v1/tenants/{tenant}/jwt-keys/{id}", tag = TAG_JWT_KEYS,
    params(ItemPath),
    responses((status = 204, description = "Deleted"), ReadErrors))]
pub(crate) async fn delete_jwt_key(
    State(state): State<AppState>,
    principal: Principal,
    PathParams(path): PathParams<ItemPath>,
) -> Result<StatusCode, ApiError> {
    let tenant = principal.tenant(&path.tenant, Access::Write)?;
    if state.store.delete_jwt_key(&tenant, &path.id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("JWT key"))
    }
}
