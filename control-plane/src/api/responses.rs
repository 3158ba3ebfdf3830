//! The error responses each operation documents, so every status the API can answer is in the
//! OpenAPI document with the [`ErrorBody`](super::error::ErrorBody) schema.

use std::collections::BTreeMap;

use utoipa::IntoResponses;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::{ContentBuilder, Ref, RefOr};

const BAD_REQUEST: (u16, &str) = (
    400,
    "The request does not match the schema (the `field` names what is wrong)",
);
const UNAUTHORIZED: (u16, &str) = (401, "No bearer token, or one that is not valid");
const FORBIDDEN: (u16, &str) = (
    403,
    "The token may not do this (operator-only endpoint, read-only API key)",
);
const NOT_FOUND: (u16, &str) = (
    404,
    "No such resource, or it belongs to a tenant the token cannot see",
);
const CONFLICT: (u16, &str) = (409, "A unique value is taken (the `field` names it)");
const TOO_LARGE: (u16, &str) = (413, "The request body is larger than 256 KiB");
const UNSUPPORTED: (u16, &str) = (415, "The request body is not `application/json`");
const UNPROCESSABLE: (u16, &str) = (
    422,
    "A value matches the schema but is not acceptable (e.g. a topic filter that does not parse)",
);
const INTERNAL: (u16, &str) = (500, "Internal error (the body carries the request id)");

fn errors(list: &[(u16, &str)]) -> BTreeMap<String, RefOr<Response>> {
    list.iter()
        .map(|(status, description)| {
            let content = ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build();
            let response = ResponseBuilder::new()
                .description(*description)
                .content("application/json", content)
                .build();
            (status.to_string(), RefOr::T(response))
        })
        .collect()
}

/// Errors of an operation without a request body.
#[derive(Debug)]
pub(crate) struct ReadErrors;

impl IntoResponses for ReadErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        errors(&[BAD_REQUEST, UNAUTHORIZED, FORBIDDEN, NOT_FOUND, INTERNAL])
    }
}

/// Errors of an operation with a JSON request body.
#[derive(Debug)]
pub(crate) struct WriteErrors;

impl IntoResponses for WriteErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        errors(&[
            BAD_REQUEST,
            UNAUTHORIZED,
            FORBIDDEN,
            NOT_FOUND,
            CONFLICT,
            TOO_LARGE,
            UNSUPPORTED,
            UNPROCESSABLE,
            INTERNAL,
        ])
    }
}
