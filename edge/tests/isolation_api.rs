//! Tenant isolation of the control-plane API (test plan 8.3): an API key of tenant `acme` can
//! neither see nor change anything of tenant `globex` (devices, access rules, explain, JWT keys,
//! API keys, the tenant itself), whether it names `globex` in the path or names a `globex` id
//! under its own tenant; a `read` key changes nothing; and what a tenant does through its own key
//! never disconnects another tenant's clients.
//!
//! A key that names another tenant gets 404 `not_found` (the tenant is invisible to it); an
//! operator-only endpoint gets 403 `forbidden`; every error has the JSON error shape. After each
//! attack the operator's view of `globex` is compared with the one before it.
#![allow(clippy::unwrap_used)]

mod isolation;
mod support;

use axum::http::{Method, StatusCode};
use isolation::{BAD_LOGIN, api_key, assert_alive5, assert_error, assert_refused, login, v5_as};
use serde_json::{Value, json};
use stratus_codec::ProtocolVersion;
use support::TestServer;
use support::clients::WAIT;

/// An Ed25519 public key (the key itself is never used to verify anything here).
const ED25519_PEM: &str = "-----BEGIN PUBLIC KEY-----\n\
    MCowBQYDK2VwAyEANVK3uw0yMvgNZJdAC9uIfozNXKJvxbUH3g6rbRHaWkE=\n\
    -----END PUBLIC KEY-----\n";

/// Two tenants with one of everything; `acme`'s keys are the attacker's.
struct World {
    server: TestServer,
    acme_write: String,
    acme_read: String,
    globex_key: String,
    globex_key_id: String,
    globex_device: String,
    globex_rule: String,
    globex_jwt: String,
}

async fn world() -> World {
    let server = TestServer::start().await;
    for tenant in ["acme", "globex"] {
        server.add_tenant(tenant, "allow", false).await;
    }
    server
        .add_device("acme", "alice", "alice-pw", Some("meter-1"))
        .await;
    server
        .add_rule("acme", "allow", "publish", "data/#", json!({}))
        .await;
    let device = server
        .add_device("globex", "gina", "gina-pw", Some("meter-1"))
        .await;
    let globex_rule = server
        .add_rule("globex", "deny", "publish", "secret/#", json!({}))
        .await;
    let jwt = server
        .api_ok(
            Method::POST,
            "/api/v1/tenants/globex/jwt-keys",
            Some(json!({ "algorithm": "EdDSA", "public_key_pem": ED25519_PEM })),
        )
        .await;
    let (_, acme_write) = api_key(&server, "acme", "write").await;
    let (_, acme_read) = api_key(&server, "acme", "read").await;
    let (globex_key_id, globex_key) = api_key(&server, "globex", "write").await;
    World {
        server,
        acme_write,
        acme_read,
        globex_key,
        globex_key_id,
        globex_device: device["id"].as_str().unwrap().to_owned(),
        globex_rule,
        globex_jwt: jwt["id"].as_str().unwrap().to_owned(),
    }
}

impl World {
    /// Everything the operator sees of `tenant`.
    async fn snapshot(&self, tenant: &str) -> Value {
        let mut all = serde_json::Map::new();
        for part in ["", "/devices", "/acl-rules", "/api-keys", "/jwt-keys"] {
            let path = format!("/api/v1/tenants/{tenant}{part}");
            all.insert(
                part.to_owned(),
                self.server.api_ok(Method::GET, &path, None).await,
            );
        }
        Value::Object(all)
    }

    /// Sends every request with `token`, asserting each answers `status` with error `code`,
    /// and that neither tenant changed.
    async fn refused(
        &self,
        token: &str,
        requests: &[(Method, String, Option<Value>)],
        status: StatusCode,
        code: &str,
    ) {
        let before = (self.snapshot("acme").await, self.snapshot("globex").await);
        for (method, path, body) in requests {
            let answer = self
                .server
                .api_as(token, method.clone(), path, body.clone())
                .await;
            assert_error(&answer, status, code, &format!("{method} {path}"));
            let text = answer.1.to_string();
            assert!(
                !text.contains("gina") && !text.contains(&self.globex_device),
                "{method} {path} revealed globex's data: {text}"
            );
        }
        let after = (self.snapshot("acme").await, self.snapshot("globex").await);
        assert_eq!(before, after, "a refused request changed a tenant");
    }

    /// Asserts `token` can read `path` (200).
    async fn reads(&self, token: &str, path: &str) {
        let (status, body) = self.server.api_as(token, Method::GET, path, None).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
    }
}

fn get(path: impl Into<String>) -> (Method, String, Option<Value>) {
    (Method::GET, path.into(), None)
}

fn delete(path: impl Into<String>) -> (Method, String, Option<Value>) {
    (Method::DELETE, path.into(), None)
}

fn with_body(
    method: Method,
    path: impl Into<String>,
    body: Value,
) -> (Method, String, Option<Value>) {
    (method, path.into(), Some(body))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_key_cannot_list_or_read_another_tenants_devices() {
    let w = world().await;
    let requests = [
        get("/api/v1/tenants/globex/devices"),
        get(format!(
            "/api/v1/tenants/globex/devices/{}",
            w.globex_device
        )),
    ];
    for key in [&w.acme_write, &w.acme_read] {
        w.refused(key, &requests, StatusCode::NOT_FOUND, "not_found")
            .await;
    }
    w.reads(&w.acme_read, "/api/v1/tenants/acme/devices").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_key_cannot_create_change_or_delete_another_tenants_devices() {
    let w = world().await;
    let device = format!("/api/v1/tenants/globex/devices/{}", w.globex_device);
    let requests = [
        with_body(
            Method::POST,
            "/api/v1/tenants/globex/devices",
            json!({ "username": "mallory", "password": "m-pw" }),
        ),
        with_body(Method::PATCH, &device, json!({ "password": "owned" })),
        with_body(Method::PATCH, &device, json!({ "enabled": false })),
        delete(&device),
    ];
    w.refused(&w.acme_write, &requests, StatusCode::NOT_FOUND, "not_found")
        .await;
    // globex's device still logs in with its own password.
    let mut gina = v5_as(w.server.addr, "meter-1", "gina@globex", "gina-pw", |_| {}).await;
    assert_alive5(&mut gina, "alive").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_key_cannot_reach_another_tenants_device_by_id_under_its_own_tenant() {
    let w = world().await;
    let device = format!("/api/v1/tenants/acme/devices/{}", w.globex_device);
    let requests = [
        get(&device),
        with_body(Method::PATCH, &device, json!({ "password": "owned" })),
        delete(&device),
    ];
    w.refused(&w.acme_write, &requests, StatusCode::NOT_FOUND, "not_found")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_key_cannot_list_read_create_or_delete_another_tenants_rules() {
    let w = world().await;
    let rule = format!("/api/v1/tenants/globex/acl-rules/{}", w.globex_rule);
    let requests = [
        get("/api/v1/tenants/globex/acl-rules"),
        get(&rule),
        with_body(
            Method::POST,
            "/api/v1/tenants/globex/acl-rules",
            json!({ "effect": "allow", "action": "all", "filter": "#" }),
        ),
        delete(&rule),
        // The same rule, by id, under the attacker's own tenant.
        get(format!("/api/v1/tenants/acme/acl-rules/{}", w.globex_rule)),
        delete(format!("/api/v1/tenants/acme/acl-rules/{}", w.globex_rule)),
    ];
    w.refused(&w.acme_write, &requests, StatusCode::NOT_FOUND, "not_found")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_key_cannot_run_explain_on_another_tenant() {
    let w = world().await;
    let question = json!({ "client_id": "meter-1", "username": "gina", "action": "publish",
                           "topic": "secret/plans" });
    let requests = [with_body(
        Method::POST,
        "/api/v1/tenants/globex/acl-rules/explain",
        question.clone(),
    )];
    for key in [&w.acme_write, &w.acme_read] {
        w.refused(key, &requests, StatusCode::NOT_FOUND, "not_found")
            .await;
    }
    // Twin: explain on its own tenant answers, from its own rules only.
    let (status, body) = w
        .server
        .api_as(
            &w.acme_read,
            Method::POST,
            "/api/v1/tenants/acme/acl-rules/explain",
            Some(question),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["decision"], "allow",
        "globex's deny rule decided: {body}"
    );
    assert_eq!(body["rule"], Value::Null, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_key_cannot_list_create_or_revoke_another_tenants_api_keys() {
    let w = world().await;
    let key = format!("/api/v1/tenants/globex/api-keys/{}", w.globex_key_id);
    let requests = [
        get("/api/v1/tenants/globex/api-keys"),
        get(&key),
        with_body(
            Method::POST,
            "/api/v1/tenants/globex/api-keys",
            json!({ "name": "backdoor", "scope": "write" }),
        ),
        delete(&key),
        get(format!("/api/v1/tenants/acme/api-keys/{}", w.globex_key_id)),
        delete(format!("/api/v1/tenants/acme/api-keys/{}", w.globex_key_id)),
    ];
    w.refused(&w.acme_write, &requests, StatusCode::NOT_FOUND, "not_found")
        .await;
    w.reads(&w.globex_key, "/api/v1/tenants/globex/devices")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_key_cannot_list_add_or_delete_another_tenants_jwt_keys() {
    let w = world().await;
    let jwt = format!("/api/v1/tenants/globex/jwt-keys/{}", w.globex_jwt);
    let requests = [
        get("/api/v1/tenants/globex/jwt-keys"),
        get(&jwt),
        with_body(
            Method::POST,
            "/api/v1/tenants/globex/jwt-keys",
            json!({ "algorithm": "EdDSA", "public_key_pem": ED25519_PEM }),
        ),
        delete(&jwt),
        get(format!("/api/v1/tenants/acme/jwt-keys/{}", w.globex_jwt)),
        delete(format!("/api/v1/tenants/acme/jwt-keys/{}", w.globex_jwt)),
    ];
    w.refused(&w.acme_write, &requests, StatusCode::NOT_FOUND, "not_found")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_key_cannot_read_or_change_another_tenant() {
    let w = world().await;
    let requests = [
        get("/api/v1/tenants/globex"),
        with_body(
            Method::PATCH,
            "/api/v1/tenants/globex",
            json!({ "allow_anonymous": true, "default_effect": "allow" }),
        ),
        with_body(
            Method::PATCH,
            "/api/v1/tenants/globex",
            json!({ "name": "owned" }),
        ),
    ];
    w.refused(&w.acme_write, &requests, StatusCode::NOT_FOUND, "not_found")
        .await;
    // Deleting a tenant is for the operator only, whichever tenant.
    let requests = [delete("/api/v1/tenants/globex")];
    w.refused(&w.acme_write, &requests, StatusCode::FORBIDDEN, "forbidden")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_key_cannot_list_or_create_tenants() {
    let w = world().await;
    let requests = [
        get("/api/v1/tenants"),
        with_body(
            Method::POST,
            "/api/v1/tenants",
            json!({ "slug": "evil", "name": "evil" }),
        ),
    ];
    for key in [&w.acme_write, &w.acme_read] {
        w.refused(key, &requests, StatusCode::FORBIDDEN, "forbidden")
            .await;
    }
    let (status, _) = w
        .server
        .api(Method::GET, "/api/v1/tenants/evil", None)
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "a tenant key created a tenant"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_scope_key_cannot_change_its_own_tenant() {
    let w = world().await;
    let alice = w
        .server
        .api_ok(Method::GET, "/api/v1/tenants/acme/devices", None)
        .await["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let device = format!("/api/v1/tenants/acme/devices/{alice}");
    let requests = [
        with_body(
            Method::POST,
            "/api/v1/tenants/acme/devices",
            json!({ "username": "mallory", "password": "m-pw" }),
        ),
        with_body(Method::PATCH, &device, json!({ "password": "owned" })),
        delete(&device),
        with_body(
            Method::POST,
            "/api/v1/tenants/acme/acl-rules",
            json!({ "effect": "allow", "action": "all", "filter": "#" }),
        ),
        with_body(
            Method::POST,
            "/api/v1/tenants/acme/api-keys",
            json!({ "name": "escalate", "scope": "write" }),
        ),
        with_body(
            Method::POST,
            "/api/v1/tenants/acme/jwt-keys",
            json!({ "algorithm": "EdDSA", "public_key_pem": ED25519_PEM }),
        ),
        with_body(
            Method::PATCH,
            "/api/v1/tenants/acme",
            json!({ "allow_anonymous": true }),
        ),
    ];
    w.refused(&w.acme_read, &requests, StatusCode::FORBIDDEN, "forbidden")
        .await;
    for path in ["devices", "acl-rules", "api-keys", "jwt-keys"] {
        w.reads(&w.acme_read, &format!("/api/v1/tenants/acme/{path}"))
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn look_alike_tenant_slugs_do_not_reach_another_tenant() {
    let w = world().await;
    let device = &w.globex_device;
    let requests: Vec<_> = [
        "GLOBEX",
        "Globex",
        "glob%65x",
        "globex%20",
        "%20globex",
        "globex%00",
        "acme%2F..%2Fglobex",
        "acme/../globex",
        "acme%2Fglobex",
        "globex.acme",
        "acme,globex",
        "*",
    ]
    .iter()
    .flat_map(|slug| {
        [
            get(format!("/api/v1/tenants/{slug}/devices")),
            get(format!("/api/v1/tenants/{slug}/devices/{device}")),
            delete(format!("/api/v1/tenants/{slug}/devices/{device}")),
        ]
    })
    .collect();
    w.refused(&w.acme_write, &requests, StatusCode::NOT_FOUND, "not_found")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_one_tenants_key_leaves_another_tenants_key_working() {
    let w = world().await;
    let keys = w
        .server
        .api_ok(Method::GET, "/api/v1/tenants/acme/api-keys", None)
        .await;
    for key in keys["items"].as_array().unwrap() {
        let id = key["id"].as_str().unwrap();
        w.server
            .api_ok(
                Method::DELETE,
                &format!("/api/v1/tenants/acme/api-keys/{id}"),
                None,
            )
            .await;
    }
    let answer = w
        .server
        .api_as(
            &w.acme_write,
            Method::GET,
            "/api/v1/tenants/acme/devices",
            None,
        )
        .await;
    assert_error(
        &answer,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "revoked key",
    );
    w.reads(&w.globex_key, "/api/v1/tenants/globex/devices")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binding_a_client_id_in_one_tenant_leaves_another_tenants_device_alone() {
    let w = world().await;
    let (status, body) = w
        .server
        .api_as(
            &w.acme_write,
            Method::POST,
            "/api/v1/tenants/acme/devices",
            Some(json!({ "username": "mallory", "password": "m-pw", "client_id": "meter-2" })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let mut gina = v5_as(w.server.addr, "meter-1", "gina@globex", "gina-pw", |_| {}).await;
    // acme's own binding of meter-1 (alice) and the new one (mallory) are acme's business.
    let mut alice = v5_as(w.server.addr, "meter-1", "alice@acme", "alice-pw", |_| {}).await;
    let mut mallory = v5_as(w.server.addr, "meter-2", "mallory@acme", "m-pw", |_| {}).await;
    for c in [&mut gina, &mut alice, &mut mallory] {
        assert_alive5(c, "alive").await;
    }
    let connect = login(
        ProtocolVersion::V5,
        "meter-2",
        "mallory@globex",
        "m-pw",
        true,
    );
    assert_refused(w.server.addr, connect, BAD_LOGIN, "acme's device in globex").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_deleting_its_own_device_never_kicks_another_tenants_device() {
    let w = world().await;
    let mut alice = v5_as(w.server.addr, "meter-1", "alice@acme", "alice-pw", |_| {}).await;
    let mut gina = v5_as(w.server.addr, "meter-1", "gina@globex", "gina-pw", |_| {}).await;
    let (status, body) = w
        .server
        .api_as(
            &w.globex_key,
            Method::DELETE,
            &format!("/api/v1/tenants/globex/devices/{}", w.globex_device),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert!(gina.ended(WAIT).await.is_some(), "globex's device kicked");
    assert_alive5(&mut alice, "alive").await;
}
