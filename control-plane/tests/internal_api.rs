//! `/internal/v1`: the edges' directory over HTTP, on SQLite and PostgreSQL. Every answer is
//! compared with what the in-process [`Directory`] says for the same question.
#![allow(clippy::unwrap_used)]

mod support;

use axum::http::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::json;
use stratus_model::{AclRuleRecord, DeviceRecord, JwtKeyRecord, TenantId, TenantRecord};
use support::{EC_P256_PEM, TestDb};

backend_tests!(
    internal_routes_accept_only_the_operator_token,
    internal_routes_answer_as_the_directory_does,
    absent_records_are_404_and_absent_lists_are_empty,
    user_controlled_strings_round_trip_in_query_parameters,
    a_missing_query_parameter_is_a_bad_request,
    internal_routes_are_not_in_the_openapi_document,
);

/// Percent-encodes every byte but the unreserved ones (RFC 3986), as a strict client would.
fn encode(value: &str) -> String {
    let mut out = String::new();
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

async fn get_as<T: DeserializeOwned>(db: &TestDb, path: &str) -> T {
    let reply = db.admin(Method::GET, path, None).await;
    serde_json::from_value(reply.expect(StatusCode::OK).clone()).unwrap()
}

async fn create_device(db: &TestDb, tenant: &str, body: serde_json::Value) -> String {
    let reply = db
        .admin(
            Method::POST,
            &format!("/api/v1/tenants/{tenant}/devices"),
            Some(body),
        )
        .await;
    reply.expect(StatusCode::CREATED)["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn internal_routes_accept_only_the_operator_token(db: &TestDb) {
    db.tenant("acme").await;
    let key = db.api_key("acme", "write").await;
    for path in [
        "/internal/v1/ping",
        "/internal/v1/tenants/acme",
        "/internal/v1/tenants/acme/acl-rules",
        "/internal/v1/tenants/acme/device-by-username?username=u",
    ] {
        db.call(Method::GET, path, None, None)
            .await
            .expect_error(StatusCode::UNAUTHORIZED, None);
        db.call(Method::GET, path, Some("not-the-token-at-all"), None)
            .await
            .expect_error(StatusCode::UNAUTHORIZED, None);
        db.call(Method::GET, path, Some(&key), None)
            .await
            .expect_error(StatusCode::FORBIDDEN, None);
    }
    let pong = db.admin(Method::GET, "/internal/v1/ping", None).await;
    assert_eq!(pong.expect(StatusCode::OK)["backend"], db.backend);
}

async fn internal_routes_answer_as_the_directory_does(db: &TestDb) {
    db.tenant("acme").await;
    let acme = TenantId::new("acme").unwrap();
    let directory = db.cp.directory();
    create_device(
        db,
        "acme",
        json!({"username": "alice", "password": "correct horse", "client_id": "alice-1"}),
    )
    .await;
    create_device(
        db,
        "acme",
        json!({"client_id_pattern": "sensor-*", "username": "fleet", "jwt": true}),
    )
    .await;
    let fingerprint = "ab".repeat(32);
    create_device(
        db,
        "acme",
        json!({"cert_fingerprint": fingerprint, "cert_subject": "CN=gw-1,O=Acme"}),
    )
    .await;
    db.admin(
        Method::POST,
        "/api/v1/tenants/acme/acl-rules",
        Some(json!({"effect": "allow", "action": "publish", "filter": "devices/${clientid}/#", "priority": 3})),
    )
    .await
    .expect(StatusCode::CREATED);
    db.admin(
        Method::POST,
        "/api/v1/tenants/acme/jwt-keys",
        Some(json!({"algorithm": "ES256", "public_key_pem": EC_P256_PEM, "audience": "mqtt"})),
    )
    .await
    .expect(StatusCode::CREATED);

    let tenant: TenantRecord = get_as(db, "/internal/v1/tenants/acme").await;
    assert_eq!(Some(tenant), directory.tenant(&acme).await.unwrap());

    let alice: DeviceRecord = get_as(
        db,
        "/internal/v1/tenants/acme/device-by-username?username=alice",
    )
    .await;
    assert!(alice.password_hash.is_some(), "the edge needs the hash");
    assert_eq!(
        Some(alice),
        directory.device_by_username(&acme, "alice").await.unwrap()
    );

    let by_certificate: DeviceRecord = get_as(
        db,
        &format!(
            "/internal/v1/tenants/acme/device-by-certificate?fingerprint={}&subject={}",
            fingerprint.to_uppercase(),
            encode("CN=other")
        ),
    )
    .await;
    assert_eq!(
        by_certificate.cert_fingerprint.as_deref(),
        Some(&*fingerprint)
    );
    let by_subject: DeviceRecord = get_as(
        db,
        &format!(
            "/internal/v1/tenants/acme/device-by-certificate?fingerprint={}&subject={}",
            "cd".repeat(32),
            encode("CN=gw-1,O=Acme")
        ),
    )
    .await;
    assert_eq!(by_subject, by_certificate);

    for client_id in ["alice-1", "sensor-9", "nobody"] {
        let claiming: Vec<DeviceRecord> = get_as(
            db,
            &format!(
                "/internal/v1/tenants/acme/devices-claiming-client-id?client_id={}",
                encode(client_id)
            ),
        )
        .await;
        let expected = directory
            .devices_claiming_client_id(&acme, client_id)
            .await
            .unwrap();
        assert_eq!(claiming, expected, "{client_id}");
        assert_eq!(claiming.len(), usize::from(client_id != "nobody"));
    }

    let rules: Vec<AclRuleRecord> = get_as(db, "/internal/v1/tenants/acme/acl-rules").await;
    assert_eq!(rules.len(), 1);
    assert_eq!(rules, directory.acl_rules(&acme).await.unwrap());
    let keys: Vec<JwtKeyRecord> = get_as(db, "/internal/v1/tenants/acme/jwt-keys").await;
    assert_eq!(keys.len(), 1);
    assert_eq!(keys, directory.jwt_keys(&acme).await.unwrap());
}

async fn absent_records_are_404_and_absent_lists_are_empty(db: &TestDb) {
    db.tenant("acme").await;
    for path in [
        "/internal/v1/tenants/ghost",
        "/internal/v1/tenants/NOT_A_SLUG",
        "/internal/v1/tenants/acme/device-by-username?username=nobody",
        "/internal/v1/tenants/ghost/device-by-username?username=nobody",
        "/internal/v1/tenants/acme/device-by-certificate?fingerprint=00&subject=",
    ] {
        db.admin(Method::GET, path, None)
            .await
            .expect_error(StatusCode::NOT_FOUND, None);
    }
    for path in [
        "/internal/v1/tenants/ghost/acl-rules",
        "/internal/v1/tenants/ghost/jwt-keys",
        "/internal/v1/tenants/acme/acl-rules",
        "/internal/v1/tenants/acme/devices-claiming-client-id?client_id=x",
        "/internal/v1/tenants/NOT_A_SLUG/devices-claiming-client-id?client_id=x",
    ] {
        let list: Vec<serde_json::Value> = get_as(db, path).await;
        assert!(list.is_empty(), "{path}");
    }
}

async fn user_controlled_strings_round_trip_in_query_parameters(db: &TestDb) {
    db.tenant("acme").await;
    let awkward = [
        "a b+c&d=e%25f/g?h#i;j",
        "plus+only",
        "percent%2Fencoded-looking",
        "ünïcødé 🚀 名前",
        "quote\"apostrophe'back\\slash",
    ];
    for (i, name) in awkward.iter().enumerate() {
        let client_id = format!("{name}-{i}");
        let id = create_device(
            db,
            "acme",
            json!({"username": name, "client_id": client_id}),
        )
        .await;
        let found: DeviceRecord = get_as(
            db,
            &format!(
                "/internal/v1/tenants/acme/device-by-username?username={}",
                encode(name)
            ),
        )
        .await;
        assert_eq!(found.id, id, "{name}");
        assert_eq!(found.username.as_deref(), Some(*name));
        let claiming: Vec<DeviceRecord> = get_as(
            db,
            &format!(
                "/internal/v1/tenants/acme/devices-claiming-client-id?client_id={}",
                encode(&client_id)
            ),
        )
        .await;
        assert_eq!(claiming.len(), 1, "{client_id}");
        assert_eq!(claiming[0].id, id);
    }
    // Form encoding: `+` is a space, so a literal plus must be sent as %2B.
    db.admin(
        Method::GET,
        "/internal/v1/tenants/acme/device-by-username?username=plus%2Bonly",
        None,
    )
    .await
    .expect(StatusCode::OK);
    db.admin(
        Method::GET,
        "/internal/v1/tenants/acme/device-by-username?username=plus+only",
        None,
    )
    .await
    .expect_error(StatusCode::NOT_FOUND, None);
}

async fn a_missing_query_parameter_is_a_bad_request(db: &TestDb) {
    db.tenant("acme").await;
    for path in [
        "/internal/v1/tenants/acme/device-by-username",
        "/internal/v1/tenants/acme/device-by-certificate?fingerprint=00",
        "/internal/v1/tenants/acme/devices-claiming-client-id?clientid=x",
    ] {
        db.admin(Method::GET, path, None)
            .await
            .expect_error(StatusCode::BAD_REQUEST, None);
    }
}

async fn internal_routes_are_not_in_the_openapi_document(db: &TestDb) {
    let reply = db.call(Method::GET, "/api/openapi.json", None, None).await;
    let paths = reply.expect(StatusCode::OK)["paths"]
        .as_object()
        .unwrap()
        .clone();
    assert!(paths.keys().any(|p| p.starts_with("/api/v1/")));
    assert!(
        paths.keys().all(|p| !p.starts_with("/internal")),
        "{:?}",
        paths.keys().collect::<Vec<_>>()
    );
}
