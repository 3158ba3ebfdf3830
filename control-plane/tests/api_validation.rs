//! Every bad request is answered with the JSON error shape, the right status and the field at
//! fault, on SQLite and PostgreSQL.
#![allow(clippy::unwrap_used)]

mod support;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::json;
use support::{ADMIN, EC_P256_PEM, EC_P384_PEM, ED25519_PEM, RSA_1024_PEM, RSA_2048_PEM, TestDb};

backend_tests!(
    unknown_fields_are_rejected_naming_the_field,
    a_bad_slug_is_rejected_naming_slug,
    a_bad_filter_is_rejected_naming_filter,
    wrong_types_and_out_of_range_values_name_the_field,
    an_oversized_body_is_413,
    bodies_that_are_not_json_are_415_or_400,
    list_parameters_are_checked,
    unknown_routes_and_methods_answer_json,
    device_credentials_are_checked,
    jwt_keys_must_parse_for_their_algorithm,
    constraint_violations_are_409_naming_the_field,
    missing_resources_are_404,
);

fn json_request(
    method: Method,
    path: &str,
    content_type: Option<&str>,
    body: &str,
) -> Request<Body> {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {ADMIN}"));
    if let Some(content_type) = content_type {
        request = request.header(header::CONTENT_TYPE, content_type);
    }
    request.body(Body::from(body.to_owned())).unwrap()
}

async fn unknown_fields_are_rejected_naming_the_field(db: &TestDb) {
    db.admin(
        Method::POST,
        "/api/v1/tenants",
        Some(json!({"slug": "acme", "colour": "red"})),
    )
    .await
    .expect_error(StatusCode::BAD_REQUEST, Some("colour"));
    db.tenant("acme").await;
    db.admin(
        Method::POST,
        "/api/v1/tenants/acme/devices",
        Some(json!({"username": "a", "passwd": "x"})),
    )
    .await
    .expect_error(StatusCode::BAD_REQUEST, Some("passwd"));
    db.admin(
        Method::PATCH,
        "/api/v1/tenants/acme",
        Some(json!({"default": "allow"})),
    )
    .await
    .expect_error(StatusCode::BAD_REQUEST, Some("default"));
    db.admin(
        Method::POST,
        "/api/v1/tenants/acme/acl-rules",
        Some(json!({"effect": "allow", "action": "all", "filter": "#", "topic": "x"})),
    )
    .await
    .expect_error(StatusCode::BAD_REQUEST, Some("topic"));
}

async fn a_bad_slug_is_rejected_naming_slug(db: &TestDb) {
    for slug in ["Acme", "-acme", "acme-", "", "a.b", "a/b", &"x".repeat(64)] {
        db.admin(
            Method::POST,
            "/api/v1/tenants",
            Some(json!({ "slug": slug })),
        )
        .await
        .expect_error(StatusCode::BAD_REQUEST, Some("slug"));
    }
    db.admin(
        Method::POST,
        "/api/v1/tenants",
        Some(json!({"name": "no slug"})),
    )
    .await
    .expect_error(StatusCode::BAD_REQUEST, Some("slug"));
    // A path that cannot be a slug names no tenant.
    db.admin(Method::GET, "/api/v1/tenants/NOT_A_SLUG", None)
        .await
        .expect_error(StatusCode::NOT_FOUND, None);
}

async fn a_bad_filter_is_rejected_naming_filter(db: &TestDb) {
    db.tenant("acme").await;
    for filter in [
        "a/#/b",
        "a+/b",
        "${nope}/x",
        "${clientid}${username}",
        "x\u{0}y",
    ] {
        db.admin(
            Method::POST,
            "/api/v1/tenants/acme/acl-rules",
            Some(json!({"effect": "deny", "action": "publish", "filter": filter})),
        )
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, Some("filter"));
    }
    db.admin(
        Method::POST,
        "/api/v1/tenants/acme/acl-rules",
        Some(json!({"effect": "deny", "action": "publish", "filter": ""})),
    )
    .await
    .expect_error(StatusCode::BAD_REQUEST, Some("filter"));
    let rules = db
        .admin(Method::GET, "/api/v1/tenants/acme/acl-rules", None)
        .await;
    assert_eq!(rules.expect(StatusCode::OK)["items"], json!([]));
}

async fn wrong_types_and_out_of_range_values_name_the_field(db: &TestDb) {
    db.tenant("acme").await;
    let rules = "/api/v1/tenants/acme/acl-rules";
    for (body, field) in [
        (
            json!({"effect": "maybe", "action": "all", "filter": "#"}),
            "effect",
        ),
        (
            json!({"effect": "allow", "action": "read", "filter": "#"}),
            "action",
        ),
        (
            json!({"effect": "allow", "action": "all", "filter": 5}),
            "filter",
        ),
        (
            json!({"effect": "allow", "action": "all", "filter": "#", "priority": 1_000_001}),
            "priority",
        ),
        (
            json!({"effect": "allow", "action": "all", "filter": "#", "priority": 1e20}),
            "priority",
        ),
        (json!({"action": "all", "filter": "#"}), "effect"),
    ] {
        db.admin(Method::POST, rules, Some(body))
            .await
            .expect_error(StatusCode::BAD_REQUEST, Some(field));
    }
    db.admin(
        Method::PATCH,
        "/api/v1/tenants/acme",
        Some(json!({"allow_anonymous": "yes"})),
    )
    .await
    .expect_error(StatusCode::BAD_REQUEST, Some("allow_anonymous"));
    db.admin(
        Method::PATCH,
        "/api/v1/tenants/acme",
        Some(json!({"name": "line\nbreak"})),
    )
    .await
    .expect_error(StatusCode::BAD_REQUEST, Some("name"));
    db.admin(
        Method::PATCH,
        "/api/v1/tenants/acme",
        Some(json!({"plan": "Gold Plan"})),
    )
    .await
    .expect_error(StatusCode::BAD_REQUEST, Some("plan"));
}

async fn an_oversized_body_is_413(db: &TestDb) {
    let big = json!({"slug": "acme", "name": "x".repeat(300 * 1024)}).to_string();
    let reply = db
        .send(json_request(
            Method::POST,
            "/api/v1/tenants",
            Some("application/json"),
            &big,
        ))
        .await;
    reply.expect_error(StatusCode::PAYLOAD_TOO_LARGE, None);
    assert_eq!(reply.body["error"]["code"], "payload_too_large");
}

async fn bodies_that_are_not_json_are_415_or_400(db: &TestDb) {
    let body = r#"{"slug":"acme"}"#;
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        db.send(json_request(
            Method::POST,
            "/api/v1/tenants",
            content_type,
            body,
        ))
        .await
        .expect_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, None);
    }
    for bad in ["", "{", "not json", r#"{"slug":"acme"} {}"#, "[]", "null"] {
        db.send(json_request(
            Method::POST,
            "/api/v1/tenants",
            Some("application/json"),
            bad,
        ))
        .await
        .expect_error(StatusCode::BAD_REQUEST, None);
    }
    db.send(json_request(
        Method::POST,
        "/api/v1/tenants",
        Some("application/json; charset=utf-8"),
        body,
    ))
    .await
    .expect(StatusCode::CREATED);
}

async fn list_parameters_are_checked(db: &TestDb) {
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=ten", "limit"),
        ("limit=1&limit=2", "limit"),
        ("sort=slug", "sort"),
    ] {
        db.admin(Method::GET, &format!("/api/v1/tenants?{query}"), None)
            .await
            .expect_error(StatusCode::BAD_REQUEST, Some(field));
    }
    let long = "c".repeat(257);
    db.admin(Method::GET, &format!("/api/v1/tenants?cursor={long}"), None)
        .await
        .expect_error(StatusCode::BAD_REQUEST, Some("cursor"));
    db.admin(Method::GET, "/api/v1/tenants?limit=1000&cursor=zzz", None)
        .await
        .expect(StatusCode::OK);
}

async fn unknown_routes_and_methods_answer_json(db: &TestDb) {
    db.admin(Method::GET, "/api/v1/nothing-here", None)
        .await
        .expect_error(StatusCode::NOT_FOUND, None);
    let reply = db.admin(Method::PUT, "/api/v1/tenants", None).await;
    reply.expect_error(StatusCode::METHOD_NOT_ALLOWED, None);
    let allow = reply.headers.get(header::ALLOW).unwrap().to_str().unwrap();
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
    // Every response carries a request id; a plain one sent by the caller is kept.
    let request = Request::get("/api/v1/tenants")
        .header("x-request-id", "trace-42")
        .body(Body::empty())
        .unwrap();
    let reply = db.send(request).await;
    assert_eq!(reply.headers.get("x-request-id").unwrap(), "trace-42");
}

async fn device_credentials_are_checked(db: &TestDb) {
    db.tenant("acme").await;
    let devices = "/api/v1/tenants/acme/devices";
    for (body, status, field) in [
        (
            json!({"password": "pw"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "username",
        ),
        (
            json!({"jwt": true}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "username",
        ),
        (
            json!({"username": "a@b"}),
            StatusCode::BAD_REQUEST,
            "username",
        ),
        (json!({"username": ""}), StatusCode::BAD_REQUEST, "username"),
        (
            json!({"username": "a", "password": ""}),
            StatusCode::BAD_REQUEST,
            "password",
        ),
        (
            json!({"cert_fingerprint": "abc"}),
            StatusCode::BAD_REQUEST,
            "cert_fingerprint",
        ),
        (
            json!({"client_id": "x".repeat(257)}),
            StatusCode::BAD_REQUEST,
            "client_id",
        ),
        (
            json!({"cert_subject": "CN=a\u{7}"}),
            StatusCode::BAD_REQUEST,
            "cert_subject",
        ),
    ] {
        db.admin(Method::POST, devices, Some(body.clone()))
            .await
            .expect_error(status, Some(field));
    }
    let created = db
        .admin(
            Method::POST,
            devices,
            Some(json!({"username": "a", "password": "pw"})),
        )
        .await;
    let id = created.expect(StatusCode::CREATED)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    db.admin(
        Method::PATCH,
        &format!("{devices}/{id}"),
        Some(json!({"username": null})),
    )
    .await
    .expect_error(StatusCode::UNPROCESSABLE_ENTITY, Some("username"));
}

async fn jwt_keys_must_parse_for_their_algorithm(db: &TestDb) {
    db.tenant("acme").await;
    let keys = "/api/v1/tenants/acme/jwt-keys";
    for (algorithm, pem) in [
        ("RS256", "not a pem"),
        ("RS256", EC_P256_PEM),
        ("RS256", RSA_1024_PEM),
        ("ES256", RSA_2048_PEM),
        ("ES256", EC_P384_PEM),
        ("EdDSA", EC_P256_PEM),
        (
            "ES256",
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
        ),
    ] {
        db.admin(
            Method::POST,
            keys,
            Some(json!({"algorithm": algorithm, "public_key_pem": pem})),
        )
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, Some("public_key_pem"));
    }
    db.admin(
        Method::POST,
        keys,
        Some(json!({"algorithm": "HS256", "public_key_pem": RSA_2048_PEM})),
    )
    .await
    .expect_error(StatusCode::BAD_REQUEST, Some("algorithm"));
    for (algorithm, pem) in [
        ("RS256", RSA_2048_PEM),
        ("ES256", EC_P256_PEM),
        ("EdDSA", ED25519_PEM),
    ] {
        db.admin(
            Method::POST,
            keys,
            Some(json!({"algorithm": algorithm, "public_key_pem": pem})),
        )
        .await
        .expect(StatusCode::CREATED);
    }
}

async fn constraint_violations_are_409_naming_the_field(db: &TestDb) {
    db.tenant("acme").await;
    db.admin(
        Method::POST,
        "/api/v1/tenants",
        Some(json!({"slug": "acme"})),
    )
    .await
    .expect_error(StatusCode::CONFLICT, Some("slug"));
    let devices = "/api/v1/tenants/acme/devices";
    db.admin(
        Method::POST,
        devices,
        Some(json!({"username": "alice", "client_id": "c1", "cert_fingerprint": "AB".repeat(32)})),
    )
    .await
    .expect(StatusCode::CREATED);
    for (body, field) in [
        (json!({"username": "alice"}), "username"),
        (json!({"username": "bob", "client_id": "c1"}), "client_id"),
        (
            json!({"username": "bob", "cert_fingerprint": "ab".repeat(32)}),
            "cert_fingerprint",
        ),
    ] {
        let reply = db.admin(Method::POST, devices, Some(body)).await;
        reply.expect_error(StatusCode::CONFLICT, Some(field));
        assert_eq!(reply.body["error"]["code"], "conflict");
    }
}

async fn missing_resources_are_404(db: &TestDb) {
    db.tenant("acme").await;
    for path in [
        "/api/v1/tenants/ghost",
        "/api/v1/tenants/ghost/devices",
        "/api/v1/tenants/acme/devices/01234567-0000-7000-8000-000000000000",
        "/api/v1/tenants/acme/acl-rules/nope",
        "/api/v1/tenants/acme/jwt-keys/nope",
        "/api/v1/tenants/acme/api-keys/nope",
    ] {
        db.admin(Method::GET, path, None)
            .await
            .expect_error(StatusCode::NOT_FOUND, None);
    }
    db.admin(
        Method::POST,
        "/api/v1/tenants/ghost/devices",
        Some(json!({"username": "a"})),
    )
    .await
    .expect_error(StatusCode::NOT_FOUND, None);
    db.admin(Method::DELETE, "/api/v1/tenants/ghost", None)
        .await
        .expect_error(StatusCode::NOT_FOUND, None);
}
