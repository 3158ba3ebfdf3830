//! Request extractors whose failures are [`ApiError`]s: a JSON body (415 when it is not JSON, 413
//! over the limit, 400 naming the field for anything that does not deserialize, unknown fields
//! included), list parameters and path parameters.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use serde::de::DeserializeOwned;
use utoipa::IntoParams;

use super::error::ApiError;
use crate::store::{MAX_PAGE_LIMIT, PageRequest};

/// The largest request body accepted.
/// (The schema's longest strings, at up to 12 bytes per escaped character, fit.)
pub(crate) const BODY_LIMIT: usize = 256 * 1024;

/// Default page size of list endpoints.
const DEFAULT_LIMIT: u32 = 100;
/// Longest cursor accepted.
const MAX_CURSOR: usize = 256;

/// A JSON request body.
#[derive(Debug)]
pub(crate) struct JsonBody<T>(pub(crate) T);

fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(request.headers()) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge(BODY_LIMIT)
                } else {
                    ApiError::BadRequest {
                        message: "the request body could not be read".to_owned(),
                        field: None,
                    }
                }
            })?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// Deserializes `bytes`, naming the field at fault.
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        json_error(&path, &inner)
    })?;
    deserializer.end().map_err(|err| json_error(".", &err))?;
    Ok(value)
}

fn json_error(path: &str, err: &serde_json::Error) -> ApiError {
    if !err.is_data() {
        return ApiError::BadRequest {
            message: format!("the request body is not valid JSON: {err}"),
            field: None,
        };
    }
    let message = err.to_string();
    let parent = (path != ".").then_some(path);
    // serde reports unknown and missing fields at the enclosing object: name the field itself.
    let named = ["unknown field `", "missing field `"]
        .iter()
        .find_map(|prefix| message.strip_prefix(prefix))
        .and_then(|rest| rest.split('`').next());
    let field = match (parent, named) {
        (Some(parent), Some(name)) if !parent.ends_with(name) => Some(format!("{parent}.{name}")),
        (Some(parent), _) => Some(parent.to_owned()),
        (None, Some(name)) => Some(name.to_owned()),
        (None, None) => None,
    };
    let message = match &field {
        Some(field) => format!("{field}: {message}"),
        None => message,
    };
    ApiError::BadRequest { message, field }
}

/// `limit` and `cursor` of a list endpoint.
#[derive(Debug, Clone, PartialEq, Eq, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListParams {
    /// Page size, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[param(max_length = 256)]
    cursor: Option<String>,
}

impl ListParams {
    /// The page to read.
    pub(crate) fn page(&self) -> PageRequest {
        PageRequest {
            limit: self.limit.unwrap_or(DEFAULT_LIMIT),
            after: self.cursor.clone(),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ListParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let Query(pairs) =
            Query::<Vec<(String, String)>>::try_from_uri(&parts.uri).map_err(|e| {
                ApiError::BadRequest {
                    message: format!("the query string is malformed: {}", e.body_text()),
                    field: None,
                }
            })?;
        let mut params = ListParams {
            limit: None,
            cursor: None,
        };
        for (name, value) in pairs {
            match name.as_str() {
                "limit" if params.limit.is_none() => {
                    let limit = value
                        .parse::<u32>()
                        .ok()
                        .filter(|l| (1..=MAX_PAGE_LIMIT).contains(l))
                        .ok_or_else(|| {
                            ApiError::bad_request(
                                "limit",
                                format!("limit must be an integer from 1 to {MAX_PAGE_LIMIT}"),
                            )
                        })?;
                    params.limit = Some(limit);
                }
                "cursor" if params.cursor.is_none() => {
                    if value.chars().count() > MAX_CURSOR {
                        return Err(ApiError::bad_request(
                            "cursor",
                            "cursor is not one this API returned",
                        ));
                    }
                    params.cursor = Some(value);
                }
                "limit" | "cursor" => {
                    return Err(ApiError::bad_request(
                        name.clone(),
                        format!("{name} is given more than once"),
                    ));
                }
                _ => {
                    return Err(ApiError::bad_request(
                        name.clone(),
                        format!("unknown query parameter {name:?}; use limit and cursor"),
                    ));
                }
            }
        }
        Ok(params)
    }
}

/// Path parameters.
#[derive(Debug)]
pub(crate) struct PathParams<T>(pub(crate) T);

impl<S, T> FromRequestParts<S> for PathParams<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(value)| PathParams(value))
            .map_err(|e| ApiError::BadRequest {
                message: format!("invalid path: {}", e.body_text()),
                field: None,
            })
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        name: String,
        inner: Option<Inner>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        flag: bool,
    }

    fn field_of(json: &str) -> Option<String> {
        match parse_json::<Outer>(json.as_bytes()) {
            Err(ApiError::BadRequest { field, .. }) => field,
            other => panic!("expected a bad request, got {other:?}"),
        }
    }

    #[test]
    fn json_errors_name_the_field() {
        assert_eq!(
            field_of(r#"{"name":"a","nope":1}"#).as_deref(),
            Some("nope")
        );
        assert_eq!(field_of(r#"{}"#).as_deref(), Some("name"));
        assert_eq!(field_of(r#"{"name":5}"#).as_deref(), Some("name"));
        assert_eq!(
            field_of(r#"{"name":"a","inner":{"flag":"x"}}"#).as_deref(),
            Some("inner.flag")
        );
        assert_eq!(
            field_of(r#"{"name":"a","inner":{"flag":true,"extra":1}}"#).as_deref(),
            Some("inner.extra")
        );
        assert_eq!(field_of(r#"{"name":"a"} trailing"#), None);
        assert_eq!(field_of("not json"), None);
    }
}
