//! Every resource's happy path over HTTP, the change events the API's writes emit, and the
//! OpenAPI document and Swagger UI, on SQLite and PostgreSQL.
#![allow(clippy::unwrap_used)]

mod support;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::{Value, json};
use stratus_model::{ChangeEvent, TenantId};
use support::{EC_P256_PEM, TestDb};

backend_tests!(
    tenants_can_be_created_read_listed_changed_and_deleted,
    devices_can_be_created_read_listed_changed_and_deleted,
    device_passwords_are_stored_as_argon2id_and_never_returned,
    acl_rules_can_be_created_read_listed_and_deleted,
    jwt_keys_can_be_added_read_listed_and_removed,
    api_writes_emit_change_events,
    the_openapi_document_and_swagger_ui_are_served,
);

fn id_of(value: &Value) -> String {
    value["id"].as_str().expect("id").to_owned()
}

async fn tenants_can_be_created_read_listed_changed_and_deleted(db: &TestDb) {
    let created = db
        .admin(
            Method::POST,
            "/api/v1/tenants",
            Some(json!({"slug": "acme", "name": "Acme", "plan": "pro"})),
        )
        .await;
    let created = created.expect(StatusCode::CREATED).clone();
    assert_eq!(created["slug"], "acme");
    assert_eq!(created["name"], "Acme");
    assert_eq!(created["plan"], "pro");
    assert_eq!(created["status"], "active");
    assert_eq!(
        created["default_effect"], "deny",
        "new tenants deny by default"
    );
    assert_eq!(created["allow_anonymous"], false);
    db.tenant("beta").await;
    db.tenant("gamma").await;

    let got = db.admin(Method::GET, "/api/v1/tenants/acme", None).await;
    assert_eq!(got.expect(StatusCode::OK), &created);

    let first = db.admin(Method::GET, "/api/v1/tenants?limit=2", None).await;
    let first = first.expect(StatusCode::OK).clone();
    let slugs: Vec<_> = first["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["slug"].as_str().unwrap())
        .collect();
    assert_eq!(slugs, ["acme", "beta"]);
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = db
        .admin(
            Method::GET,
            &format!("/api/v1/tenants?limit=2&cursor={cursor}"),
            None,
        )
        .await;
    let second = second.expect(StatusCode::OK);
    assert_eq!(second["items"][0]["slug"], "gamma");
    assert_eq!(second["next_cursor"], Value::Null);

    let patched = db
        .admin(
            Method::PATCH,
            "/api/v1/tenants/acme",
            Some(json!({"default_effect": "allow", "status": "suspended", "name": null})),
        )
        .await;
    let patched = patched.expect(StatusCode::OK);
    assert_eq!(patched["default_effect"], "allow");
    assert_eq!(patched["status"], "suspended");
    assert_eq!(
        patched["name"], "Acme",
        "null leaves a required field as it is"
    );

    db.admin(Method::DELETE, "/api/v1/tenants/acme", None)
        .await
        .expect(StatusCode::NO_CONTENT);
    db.admin(Method::GET, "/api/v1/tenants/acme", None)
        .await
        .expect_error(StatusCode::NOT_FOUND, None);
}

async fn devices_can_be_created_read_listed_changed_and_deleted(db: &TestDb) {
    db.tenant("acme").await;
    let devices = "/api/v1/tenants/acme/devices";
    let created = db
        .admin(
            Method::POST,
            devices,
            Some(json!({
                "name": "Boiler",
                "client_id": "boiler-1",
                "username": "boiler",
                "password": "hunter2",
                "jwt": true,
                "cert_fingerprint": "AB:".repeat(31) + "AB",
                "cert_subject": "CN=boiler-1,O=Acme",
            })),
        )
        .await;
    let created = created.expect(StatusCode::CREATED).clone();
    assert_eq!(created["tenant"], "acme");
    assert_eq!(created["has_password"], true);
    assert_eq!(created["jwt"], true);
    assert_eq!(created["enabled"], true);
    assert_eq!(created["cert_fingerprint"], "ab".repeat(32));
    let id = id_of(&created);
    let one = format!("{devices}/{id}");

    let got = db.admin(Method::GET, &one, None).await;
    assert_eq!(got.expect(StatusCode::OK), &created);

    let fleet = db
        .admin(
            Method::POST,
            devices,
            Some(json!({"client_id_pattern": "sensor-*"})),
        )
        .await;
    let fleet = fleet.expect(StatusCode::CREATED).clone();
    assert_eq!(fleet["username"], Value::Null);
    assert_eq!(fleet["has_password"], false);

    let page = db
        .admin(Method::GET, &format!("{devices}?limit=1"), None)
        .await;
    let page = page.expect(StatusCode::OK).clone();
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["items"][0]["id"], created["id"]);
    let cursor = page["next_cursor"].as_str().unwrap();
    let rest = db
        .admin(
            Method::GET,
            &format!("{devices}?limit=1&cursor={cursor}"),
            None,
        )
        .await;
    let rest = rest.expect(StatusCode::OK);
    assert_eq!(rest["items"][0]["id"], fleet["id"]);
    assert_eq!(rest["next_cursor"], Value::Null);

    let patched = db
        .admin(
            Method::PATCH,
            &one,
            Some(json!({"enabled": false, "password": null, "jwt": false, "name": null})),
        )
        .await;
    let patched = patched.expect(StatusCode::OK);
    assert_eq!(patched["enabled"], false);
    assert_eq!(patched["has_password"], false);
    assert_eq!(patched["jwt"], false);
    assert_eq!(patched["name"], Value::Null);
    assert_eq!(patched["client_id"], "boiler-1");

    db.admin(Method::DELETE, &one, None)
        .await
        .expect(StatusCode::NO_CONTENT);
    db.admin(Method::GET, &one, None)
        .await
        .expect_error(StatusCode::NOT_FOUND, None);
    db.admin(Method::DELETE, &one, None)
        .await
        .expect_error(StatusCode::NOT_FOUND, None);
}

async fn device_passwords_are_stored_as_argon2id_and_never_returned(db: &TestDb) {
    use argon2::password_hash::PasswordVerifier;
    use argon2::password_hash::phc::PasswordHash;

    db.tenant("acme").await;
    let reply = db
        .admin(
            Method::POST,
            "/api/v1/tenants/acme/devices",
            Some(json!({"username": "alice", "password": "correct horse"})),
        )
        .await;
    let text = reply.expect(StatusCode::CREATED).to_string();
    assert!(!text.contains("correct horse"));
    assert!(!text.contains("argon2"));
    let record = db
        .cp
        .directory()
        .device_by_username(&TenantId::new("acme").unwrap(), "alice")
        .await
        .unwrap()
        .unwrap();
    let hash = record.password_hash.unwrap();
    assert!(hash.starts_with("$argon2id$"));
    let parsed = PasswordHash::new(&hash).unwrap();
    assert!(
        argon2::Argon2::default()
            .verify_password(b"correct horse", &parsed)
            .is_ok()
    );
    // A new password replaces the hash.
    let id = id_of(&serde_json::from_str::<Value>(&text).unwrap());
    db.admin(
        Method::PATCH,
        &format!("/api/v1/tenants/acme/devices/{id}"),
        Some(json!({"password": "battery staple"})),
    )
    .await
    .expect(StatusCode::OK);
    let record = db
        .cp
        .directory()
        .device_by_username(&TenantId::new("acme").unwrap(), "alice")
        .await
        .unwrap()
        .unwrap();
    let parsed = PasswordHash::new(record.password_hash.as_deref().unwrap()).unwrap();
    assert!(
        argon2::Argon2::default()
            .verify_password(b"battery staple", &parsed)
            .is_ok()
    );
}

async fn acl_rules_can_be_created_read_listed_and_deleted(db: &TestDb) {
    db.tenant("acme").await;
    let rules = "/api/v1/tenants/acme/acl-rules";
    let created = db
        .admin(
            Method::POST,
            rules,
            Some(json!({
                "effect": "allow",
                "action": "publish",
                "filter": "devices/${clientid}/#",
                "username": "alice",
                "client_id": "alice-1",
                "priority": 10,
            })),
        )
        .await;
    let created = created.expect(StatusCode::CREATED).clone();
    assert_eq!(created["filter"], "devices/${clientid}/#");
    assert_eq!(created["priority"], 10);
    let defaulted = db
        .admin(
            Method::POST,
            rules,
            Some(json!({"effect": "deny", "action": "subscribe", "filter": "test/nosubscribe"})),
        )
        .await;
    let defaulted = defaulted.expect(StatusCode::CREATED).clone();
    assert_eq!(defaulted["priority"], 0);
    assert_eq!(defaulted["username"], Value::Null);

    let one = format!("{rules}/{}", id_of(&created));
    let got = db.admin(Method::GET, &one, None).await;
    assert_eq!(got.expect(StatusCode::OK), &created);
    let listed = db.admin(Method::GET, rules, None).await;
    let listed = listed.expect(StatusCode::OK);
    assert_eq!(listed["items"], json!([created, defaulted]));

    db.admin(Method::DELETE, &one, None)
        .await
        .expect(StatusCode::NO_CONTENT);
    db.admin(Method::GET, &one, None)
        .await
        .expect_error(StatusCode::NOT_FOUND, None);
    let listed = db.admin(Method::GET, rules, None).await;
    assert_eq!(listed.expect(StatusCode::OK)["items"], json!([defaulted]));
}

async fn jwt_keys_can_be_added_read_listed_and_removed(db: &TestDb) {
    db.tenant("acme").await;
    let keys = "/api/v1/tenants/acme/jwt-keys";
    let created = db
        .admin(
            Method::POST,
            keys,
            Some(json!({"algorithm": "ES256", "public_key_pem": EC_P256_PEM, "audience": "mqtt"})),
        )
        .await;
    let created = created.expect(StatusCode::CREATED).clone();
    assert_eq!(created["algorithm"], "ES256");
    assert_eq!(created["audience"], "mqtt");
    let one = format!("{keys}/{}", id_of(&created));
    let got = db.admin(Method::GET, &one, None).await;
    assert_eq!(got.expect(StatusCode::OK), &created);
    let listed = db.admin(Method::GET, keys, None).await;
    assert_eq!(listed.expect(StatusCode::OK)["items"], json!([created]));
    db.admin(Method::DELETE, &one, None)
        .await
        .expect(StatusCode::NO_CONTENT);
    let listed = db.admin(Method::GET, keys, None).await;
    assert_eq!(listed.expect(StatusCode::OK)["items"], json!([]));
}

async fn api_writes_emit_change_events(db: &TestDb) {
    let mut events = db.cp.directory().changes();
    let acme = TenantId::new("acme").unwrap();
    db.tenant("acme").await;
    assert_eq!(
        events.try_recv().unwrap(),
        ChangeEvent::Tenant(acme.clone())
    );

    let device = db
        .admin(
            Method::POST,
            "/api/v1/tenants/acme/devices",
            Some(json!({"username": "alice"})),
        )
        .await;
    let id = id_of(device.expect(StatusCode::CREATED));
    let device_event = ChangeEvent::Device {
        tenant: acme.clone(),
        device_id: id.clone(),
    };
    assert_eq!(events.try_recv().unwrap(), device_event);
    let one = format!("/api/v1/tenants/acme/devices/{id}");
    db.admin(Method::PATCH, &one, Some(json!({"enabled": false})))
        .await
        .expect(StatusCode::OK);
    assert_eq!(events.try_recv().unwrap(), device_event);
    db.admin(Method::DELETE, &one, None)
        .await
        .expect(StatusCode::NO_CONTENT);
    assert_eq!(events.try_recv().unwrap(), device_event);

    let rule = db
        .admin(
            Method::POST,
            "/api/v1/tenants/acme/acl-rules",
            Some(json!({"effect": "deny", "action": "all", "filter": "#"})),
        )
        .await;
    let rule_id = id_of(rule.expect(StatusCode::CREATED));
    assert_eq!(events.try_recv().unwrap(), ChangeEvent::Rules(acme.clone()));
    db.admin(
        Method::DELETE,
        &format!("/api/v1/tenants/acme/acl-rules/{rule_id}"),
        None,
    )
    .await
    .expect(StatusCode::NO_CONTENT);
    assert_eq!(events.try_recv().unwrap(), ChangeEvent::Rules(acme.clone()));

    let key = db
        .admin(
            Method::POST,
            "/api/v1/tenants/acme/jwt-keys",
            Some(json!({"algorithm": "ES256", "public_key_pem": EC_P256_PEM})),
        )
        .await;
    let key_id = id_of(key.expect(StatusCode::CREATED));
    assert_eq!(
        events.try_recv().unwrap(),
        ChangeEvent::JwtKeys(acme.clone())
    );
    db.admin(
        Method::DELETE,
        &format!("/api/v1/tenants/acme/jwt-keys/{key_id}"),
        None,
    )
    .await
    .expect(StatusCode::NO_CONTENT);
    assert_eq!(
        events.try_recv().unwrap(),
        ChangeEvent::JwtKeys(acme.clone())
    );

    db.admin(
        Method::PATCH,
        "/api/v1/tenants/acme",
        Some(json!({"allow_anonymous": true})),
    )
    .await
    .expect(StatusCode::OK);
    assert_eq!(
        events.try_recv().unwrap(),
        ChangeEvent::Tenant(acme.clone())
    );
    db.admin(Method::DELETE, "/api/v1/tenants/acme", None)
        .await
        .expect(StatusCode::NO_CONTENT);
    assert_eq!(
        events.try_recv().unwrap(),
        ChangeEvent::Tenant(acme.clone())
    );
    assert!(events.try_recv().is_err());
}

async fn the_openapi_document_and_swagger_ui_are_served(db: &TestDb) {
    let reply = db
        .send(
            Request::get("/api/openapi.json")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    let document = reply.expect(StatusCode::OK);
    assert_eq!(document["openapi"], "3.1.0");
    let paths = document["paths"].as_object().unwrap();
    for (path, methods) in [
        ("/api/v1/tenants", &["get", "post"][..]),
        ("/api/v1/tenants/{tenant}", &["get", "patch", "delete"]),
        ("/api/v1/tenants/{tenant}/devices", &["get", "post"]),
        (
            "/api/v1/tenants/{tenant}/devices/{id}",
            &["get", "patch", "delete"],
        ),
        ("/api/v1/tenants/{tenant}/acl-rules", &["get", "post"]),
        (
            "/api/v1/tenants/{tenant}/acl-rules/{id}",
            &["get", "delete"],
        ),
        ("/api/v1/tenants/{tenant}/acl-rules/explain", &["post"]),
        ("/api/v1/tenants/{tenant}/jwt-keys", &["get", "post"]),
        ("/api/v1/tenants/{tenant}/jwt-keys/{id}", &["get", "delete"]),
        ("/api/v1/tenants/{tenant}/api-keys", &["get", "post"]),
        ("/api/v1/tenants/{tenant}/api-keys/{id}", &["get", "delete"]),
    ] {
        for method in methods {
            assert!(
                paths[path].get(*method).is_some(),
                "{method} {path} is not documented"
            );
        }
    }
    assert_eq!(document["security"], json!([{"bearer": []}]));
    assert_eq!(
        document["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );

    let request = Request::get("/api/docs/").body(Body::empty()).unwrap();
    let response = tower::ServiceExt::oneshot(db.app(), request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    assert!(String::from_utf8_lossy(&bytes).contains("swagger"));
}
