//! The one error type of the HTTP API. Every error answers JSON
//! `{"error":{"code","message","field"}}`; internal errors are logged with the request id and
//! answered with that id only, never with their cause.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::context;
use crate::password::PasswordError;
use crate::store::StoreError;

/// An API failure and the response it becomes.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    /// No or an unknown bearer token.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// The caller is known but may not do this.
    #[error("{message}")]
    Forbidden {
        message: &'static str,
        field: Option<&'static str>,
    },
    /// The resource does not exist, or belongs to a tenant the caller cannot see.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A unique value is taken.
    #[error("{message}")]
    Conflict {
        message: String,
        field: &'static str,
    },
    /// The request does not match the documented schema (syntax, type, unknown or missing field,
    /// length, pattern, range).
    #[error("{message}")]
    BadRequest {
        message: String,
        field: Option<String>,
    },
    /// The request matches the schema but a value is not acceptable (a topic filter that does not
    /// parse, a PEM that is not a key for the algorithm, ...).
    #[error("{message}")]
    Unprocessable { message: String, field: String },
    /// The body is not JSON.
    #[error("the request body must be JSON (Content-Type: application/json)")]
    UnsupportedMediaType,
    /// The body is larger than the limit.
    #[error("the request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// No route has this path.
    #[error("no such endpoint")]
    NoRoute,
    /// The route exists but not with this method.
    #[error("method not allowed on this endpoint")]
    MethodNotAllowed,
    /// Something failed on our side; the cause is logged, not answered.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub(crate) fn bad_request(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::BadRequest {
            message: message.into(),
            field: Some(field.into()),
        }
    }

    pub(crate) fn unprocessable(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Unprocessable {
            message: message.into(),
            field: field.into(),
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden { .. } => StatusCode::FORBIDDEN,
            Self::NotFound(_) | Self::NoRoute => StatusCode::NOT_FOUND,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::Unauthorized(_) => "unauthorized",
            Self::Forbidden { .. } => "forbidden",
            Self::NotFound(_) | Self::NoRoute => "not_found",
            Self::Conflict { .. } => "conflict",
            Self::BadRequest { .. } => "bad_request",
            Self::Unprocessable { .. } => "invalid_value",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::PayloadTooLarge(_) => "payload_too_large",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Internal(_) => "internal",
        }
    }

    fn field(&self) -> Option<String> {
        match self {
            Self::Forbidden { field, .. } => field.map(str::to_owned),
            Self::Conflict { field, .. } => Some((*field).to_owned()),
            Self::BadRequest { field, .. } => field.clone(),
            Self::Unprocessable { field, .. } => Some(field.clone()),
            _ => None,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Conflict { entity, field } => Self::Conflict {
                message: format!("another {entity} already has this {field}"),
                field,
            },
            StoreError::Invalid { field, message } => Self::unprocessable(field, message),
            StoreError::NotFound(what) => Self::NotFound(what),
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<PasswordError> for ApiError {
    fn from(err: PasswordError) -> Self {
        Self::Internal(err.to_string())
    }
}

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ErrorBody {
    error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ErrorDetail {
    /// Stable machine-readable code (`unauthorized`, `forbidden`, `not_found`, `conflict`,
    /// `bad_request`, `invalid_value`, `unsupported_media_type`, `payload_too_large`,
    /// `method_not_allowed`, `internal`).
    #[schema(example = "conflict")]
    code: String,
    /// What went wrong, for people.
    message: String,
    /// The request field at fault (dotted path for nested fields), if one is.
    #[schema(example = "username")]
    field: Option<String>,
    /// For internal errors: the id to quote when reporting the problem (also sent as the
    /// `x-request-id` header of every response).
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<String>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let (message, request_id) = match &self {
            Self::Internal(cause) => {
                let id = context::request_id();
                tracing::error!(request_id = id.as_deref().unwrap_or("-"), error = %cause, "request failed");
                let message = match &id {
                    Some(id) => format!("internal error; quote request id {id} when reporting it"),
                    None => "internal error".to_owned(),
                };
                (message, id)
            }
            other => (other.to_string(), None),
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code().to_owned(),
                message,
                field: self.field(),
                request_id,
            },
        };
        let mut response = (status, axum::Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
