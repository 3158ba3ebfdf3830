//! Who may call what: the operator token, tenant API keys and their scopes, on SQLite and
//! PostgreSQL.
#![allow(clippy::unwrap_used)]

mod support;

use axum::http::{Method, StatusCode, header};
use serde_json::json;
use support::TestDb;

backend_tests!(
    requests_without_a_token_are_unauthorized,
    an_unknown_token_is_unauthorized,
    another_tenants_api_key_sees_nothing_but_404,
    a_read_key_reads_but_cannot_write,
    operator_only_endpoints_refuse_api_keys,
    a_write_key_changes_its_tenant_but_not_its_plan_or_status,
    an_api_key_secret_is_shown_once_and_revocation_is_immediate,
    deleting_a_tenant_revokes_its_api_keys,
);

async fn requests_without_a_token_are_unauthorized(db: &TestDb) {
    db.tenant("acme").await;
    for (method, path) in [
        (Method::GET, "/api/v1/tenants"),
        (Method::GET, "/api/v1/tenants/acme"),
        (Method::GET, "/api/v1/tenants/acme/devices"),
        (Method::DELETE, "/api/v1/tenants/acme"),
        (Method::GET, "/api/v1/tenants/acme/api-keys"),
    ] {
        let reply = db.call(method.clone(), path, None, None).await;
        reply.expect_error(StatusCode::UNAUTHORIZED, None);
        assert_eq!(reply.body["error"]["code"], "unauthorized");
        assert_eq!(
            reply.headers.get(header::WWW_AUTHENTICATE).unwrap(),
            "Bearer"
        );
    }
    // A body is not looked at before the caller is known.
    let reply = db
        .call(
            Method::POST,
            "/api/v1/tenants",
            None,
            Some(json!({"slug": "x"})),
        )
        .await;
    reply.expect_error(StatusCode::UNAUTHORIZED, None);
    // The tenant still exists: nothing happened.
    db.admin(Method::GET, "/api/v1/tenants/acme", None)
        .await
        .expect(StatusCode::OK);
}

async fn an_unknown_token_is_unauthorized(db: &TestDb) {
    for token in [
        "wrong",
        "stratus_key_0000000000000000000000000000000000000000000000000000000000000000",
    ] {
        db.call(Method::GET, "/api/v1/tenants", Some(token), None)
            .await
            .expect_error(StatusCode::UNAUTHORIZED, None);
    }
    let mut request = axum::http::Request::get("/api/v1/tenants");
    request = request.header(header::AUTHORIZATION, format!("Basic {}", support::ADMIN));
    let reply = db
        .send(request.body(axum::body::Body::empty()).unwrap())
        .await;
    reply.expect_error(StatusCode::UNAUTHORIZED, None);
}

async fn another_tenants_api_key_sees_nothing_but_404(db: &TestDb) {
    db.tenant("acme").await;
    db.tenant("rival").await;
    let device = db
        .admin(
            Method::POST,
            "/api/v1/tenants/acme/devices",
            Some(json!({"username": "alice", "password": "pw"})),
        )
        .await
        .expect(StatusCode::CREATED)
        .clone();
    let rule = db
        .admin(
            Method::POST,
            "/api/v1/tenants/acme/acl-rules",
            Some(json!({"effect": "allow", "action": "all", "filter": "#"})),
        )
        .await
        .expect(StatusCode::CREATED)
        .clone();
    let rival = db.api_key("rival", "write").await;
    let id = device["id"].as_str().unwrap();
    let rule_id = rule["id"].as_str().unwrap();
    let cases = [
        (Method::GET, "/api/v1/tenants/acme".to_owned(), None),
        (
            Method::PATCH,
            "/api/v1/tenants/acme".to_owned(),
            Some(json!({"default_effect": "allow"})),
        ),
        (Method::GET, "/api/v1/tenants/acme/devices".to_owned(), None),
        (
            Method::GET,
            format!("/api/v1/tenants/acme/devices/{id}"),
            None,
        ),
        (
            Method::PATCH,
            format!("/api/v1/tenants/acme/devices/{id}"),
            Some(json!({"enabled": false})),
        ),
        (
            Method::DELETE,
            format!("/api/v1/tenants/acme/devices/{id}"),
            None,
        ),
        (
            Method::POST,
            "/api/v1/tenants/acme/devices".to_owned(),
            Some(json!({"username": "mallory"})),
        ),
        (
            Method::DELETE,
            format!("/api/v1/tenants/acme/acl-rules/{rule_id}"),
            None,
        ),
        (
            Method::POST,
            "/api/v1/tenants/acme/acl-rules/explain".to_owned(),
            Some(json!({"client_id": "c", "action": "publish", "topic": "t"})),
        ),
        (
            Method::GET,
            "/api/v1/tenants/acme/api-keys".to_owned(),
            None,
        ),
        (
            Method::POST,
            "/api/v1/tenants/acme/api-keys".to_owned(),
            Some(json!({"name": "x", "scope": "write"})),
        ),
        (
            Method::GET,
            "/api/v1/tenants/acme/jwt-keys".to_owned(),
            None,
        ),
    ];
    for (method, path, body) in cases {
        let reply = db.call(method.clone(), &path, Some(&rival), body).await;
        reply.expect_error(StatusCode::NOT_FOUND, None);
        assert!(
            !reply.body.to_string().contains("alice"),
            "{method} {path} leaked data: {}",
            reply.body
        );
    }
    // Nothing changed in acme.
    let got = db
        .admin(
            Method::GET,
            &format!("/api/v1/tenants/acme/devices/{id}"),
            None,
        )
        .await;
    assert_eq!(got.expect(StatusCode::OK)["enabled"], true);
    // A device id of acme under the rival's own tenant is not found either.
    db.call(
        Method::GET,
        &format!("/api/v1/tenants/rival/devices/{id}"),
        Some(&rival),
        None,
    )
    .await
    .expect_error(StatusCode::NOT_FOUND, None);
}

async fn a_read_key_reads_but_cannot_write(db: &TestDb) {
    db.tenant("acme").await;
    let read = db.api_key("acme", "read").await;
    db.call(Method::GET, "/api/v1/tenants/acme", Some(&read), None)
        .await
        .expect(StatusCode::OK);
    db.call(
        Method::GET,
        "/api/v1/tenants/acme/devices",
        Some(&read),
        None,
    )
    .await
    .expect(StatusCode::OK);
    db.call(
        Method::POST,
        "/api/v1/tenants/acme/acl-rules/explain",
        Some(&read),
        Some(json!({"client_id": "c", "action": "publish", "topic": "t"})),
    )
    .await
    .expect(StatusCode::OK);
    for (method, path, body) in [
        (
            Method::POST,
            "/api/v1/tenants/acme/devices",
            Some(json!({"username": "bob"})),
        ),
        (
            Method::PATCH,
            "/api/v1/tenants/acme",
            Some(json!({"name": "x"})),
        ),
        (
            Method::POST,
            "/api/v1/tenants/acme/acl-rules",
            Some(json!({"effect": "allow", "action": "all", "filter": "#"})),
        ),
        (
            Method::POST,
            "/api/v1/tenants/acme/api-keys",
            Some(json!({"name": "escalate", "scope": "write"})),
        ),
        (
            Method::DELETE,
            "/api/v1/tenants/acme/devices/whatever",
            None,
        ),
    ] {
        db.call(method, path, Some(&read), body)
            .await
            .expect_error(StatusCode::FORBIDDEN, None);
    }
    let devices = db
        .admin(Method::GET, "/api/v1/tenants/acme/devices", None)
        .await;
    assert_eq!(devices.expect(StatusCode::OK)["items"], json!([]));
}

async fn operator_only_endpoints_refuse_api_keys(db: &TestDb) {
    db.tenant("acme").await;
    let write = db.api_key("acme", "write").await;
    for (method, path, body) in [
        (Method::GET, "/api/v1/tenants", None),
        (
            Method::POST,
            "/api/v1/tenants",
            Some(json!({"slug": "sneaky"})),
        ),
        (Method::DELETE, "/api/v1/tenants/acme", None),
    ] {
        db.call(method, path, Some(&write), body)
            .await
            .expect_error(StatusCode::FORBIDDEN, None);
    }
    db.admin(Method::GET, "/api/v1/tenants/acme", None)
        .await
        .expect(StatusCode::OK);
    db.admin(Method::GET, "/api/v1/tenants/sneaky", None)
        .await
        .expect_error(StatusCode::NOT_FOUND, None);
}

async fn a_write_key_changes_its_tenant_but_not_its_plan_or_status(db: &TestDb) {
    db.tenant("acme").await;
    let write = db.api_key("acme", "write").await;
    let reply = db
        .call(
            Method::PATCH,
            "/api/v1/tenants/acme",
            Some(&write),
            Some(json!({"default_effect": "allow", "allow_anonymous": true})),
        )
        .await;
    let body = reply.expect(StatusCode::OK);
    assert_eq!(body["default_effect"], "allow");
    assert_eq!(body["allow_anonymous"], true);
    for (field, value) in [("plan", json!("enterprise")), ("status", json!("active"))] {
        db.call(
            Method::PATCH,
            "/api/v1/tenants/acme",
            Some(&write),
            Some(json!({ field: value })),
        )
        .await
        .expect_error(StatusCode::FORBIDDEN, Some(field));
    }
    let reply = db
        .admin(
            Method::PATCH,
            "/api/v1/tenants/acme",
            Some(json!({"plan": "enterprise", "status": "suspended"})),
        )
        .await;
    let body = reply.expect(StatusCode::OK);
    assert_eq!(body["plan"], "enterprise");
    assert_eq!(body["status"], "suspended");
}

async fn an_api_key_secret_is_shown_once_and_revocation_is_immediate(db: &TestDb) {
    db.tenant("acme").await;
    let created = db
        .admin(
            Method::POST,
            "/api/v1/tenants/acme/api-keys",
            Some(json!({"name": "ci", "scope": "read"})),
        )
        .await;
    let created = created.expect(StatusCode::CREATED).clone();
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("stratus_key_"));
    assert_eq!(
        created["last4"].as_str().unwrap(),
        &secret[secret.len() - 4..]
    );
    let id = created["id"].as_str().unwrap();

    let listed = db
        .admin(Method::GET, "/api/v1/tenants/acme/api-keys", None)
        .await;
    let listed = listed.expect(StatusCode::OK);
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    assert!(listed["items"][0].get("secret").is_none());
    assert!(!listed.to_string().contains(&secret));
    let one = db
        .admin(
            Method::GET,
            &format!("/api/v1/tenants/acme/api-keys/{id}"),
            None,
        )
        .await;
    assert!(!one.expect(StatusCode::OK).to_string().contains(&secret));

    db.call(Method::GET, "/api/v1/tenants/acme", Some(&secret), None)
        .await
        .expect(StatusCode::OK);
    db.admin(
        Method::DELETE,
        &format!("/api/v1/tenants/acme/api-keys/{id}"),
        None,
    )
    .await
    .expect(StatusCode::NO_CONTENT);
    db.call(Method::GET, "/api/v1/tenants/acme", Some(&secret), None)
        .await
        .expect_error(StatusCode::UNAUTHORIZED, None);
    db.admin(
        Method::DELETE,
        &format!("/api/v1/tenants/acme/api-keys/{id}"),
        None,
    )
    .await
    .expect_error(StatusCode::NOT_FOUND, None);
}

async fn deleting_a_tenant_revokes_its_api_keys(db: &TestDb) {
    db.tenant("acme").await;
    let write = db.api_key("acme", "write").await;
    db.admin(Method::DELETE, "/api/v1/tenants/acme", None)
        .await
        .expect(StatusCode::NO_CONTENT);
    db.tenant("acme").await;
    db.call(Method::GET, "/api/v1/tenants/acme", Some(&write), None)
        .await
        .expect_error(StatusCode::UNAUTHORIZED, None);
}
