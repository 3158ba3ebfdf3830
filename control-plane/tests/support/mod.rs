//! Test support: a fresh control plane per test on SQLite (a temporary file) or PostgreSQL (a new
//! database `t_<random>` on the server named by `STRATUS_TEST_POSTGRES_URL`, dropped at the end),
//! the `backend_tests!` macro that runs one test body on both, and helpers to call the API with
//! `oneshot`.

#![allow(dead_code, unreachable_pub)]

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::Value;
use sqlx::Connection;
use stratus_control_plane::{ControlPlane, open_postgres, open_sqlite};
use tower::ServiceExt;

/// The operator token every test router accepts.
pub const ADMIN: &str = "test-operator-token-0123456789";

/// The variable naming the PostgreSQL server tests create their databases on.
pub const POSTGRES_URL_VAR: &str = "STRATUS_TEST_POSTGRES_URL";

/// Public keys for the JWT key tests.
pub const RSA_2048_PEM: &str = include_str!("keys/rsa.pub");
pub const RSA_1024_PEM: &str = include_str!("keys/rsa1k.pub");
pub const EC_P256_PEM: &str = include_str!("keys/ec.pub");
pub const EC_P384_PEM: &str = include_str!("keys/ec384.pub");
pub const ED25519_PEM: &str = include_str!("keys/ed.pub");

/// Runs each named `async fn name(db: &TestDb)` as two tests, `name::sqlite` and
/// `name::postgres`.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                async fn sqlite() {
                    let db = $crate::support::TestDb::sqlite().await;
                    super::$name(&db).await;
                }

                #[tokio::test]
                async fn postgres() {
                    let db = $crate::support::TestDb::postgres().await;
                    super::$name(&db).await;
                }
            }
        )*
    };
}

/// Drops the test's PostgreSQL database, also when the test panicked.
struct DropDatabase {
    admin_url: String,
    name: String,
}

impl Drop for DropDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        // Drop runs inside the test's runtime: use a thread with its own.
        let done = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let mut conn = sqlx::PgConnection::connect(&admin_url).await?;
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                    .execute(&mut conn)
                    .await?;
                conn.close().await
            })
        })
        .join();
        if let Ok(Err(e)) = done {
            eprintln!("could not drop test database {}: {e}", self.name);
        }
    }
}

/// One test's control plane.
pub struct TestDb {
    pub cp: ControlPlane,
    pub backend: &'static str,
    _dir: Option<tempfile::TempDir>,
    _drop: Option<DropDatabase>,
}

impl TestDb {
    /// A control plane over a new SQLite file.
    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let cp = open_sqlite(&dir.path().join("cp.db"))
            .await
            .expect("open sqlite");
        Self {
            cp,
            backend: "sqlite",
            _dir: Some(dir),
            _drop: None,
        }
    }

    /// A control plane over a new PostgreSQL database.
    pub async fn postgres() -> Self {
        let admin_url = std::env::var(POSTGRES_URL_VAR).unwrap_or_else(|_| {
            panic!(
                "{POSTGRES_URL_VAR} is not set: the control plane tests need PostgreSQL. Run \
                 scripts/test.sh, or `source scripts/pg-test-up.sh` in this shell first."
            )
        });
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {POSTGRES_URL_VAR}={admin_url}: {e}"));
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .expect("create test database");
        conn.close().await.expect("close admin connection");
        let guard = DropDatabase {
            admin_url: admin_url.clone(),
            name: name.clone(),
        };
        let cp = open_postgres(&database_url(&admin_url, &name))
            .await
            .expect("open postgres");
        Self {
            cp,
            backend: "postgres",
            _dir: None,
            _drop: Some(guard),
        }
    }

    /// The API router with [`ADMIN`] as operator token.
    pub fn app(&self) -> Router {
        self.cp.router(ADMIN)
    }

    /// Sends `request` to a fresh router.
    pub async fn send(&self, request: Request<Body>) -> Reply {
        let response = self.app().oneshot(request).await.expect("infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&bytes)))
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    /// `method path` with an optional bearer token and JSON body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = match body {
            Some(body) => request
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string())),
            None => request.body(Body::empty()),
        };
        self.send(request.expect("request")).await
    }

    /// As the operator.
    pub async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        self.call(method, path, Some(ADMIN), body).await
    }

    /// Creates tenant `slug` (default effect deny) and returns it.
    pub async fn tenant(&self, slug: &str) -> Value {
        let reply = self
            .admin(
                Method::POST,
                "/api/v1/tenants",
                Some(serde_json::json!({ "slug": slug })),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        reply.body
    }

    /// Creates an API key of `tenant` with `scope` and returns its secret.
    pub async fn api_key(&self, tenant: &str, scope: &str) -> String {
        let reply = self
            .admin(
                Method::POST,
                &format!("/api/v1/tenants/{tenant}/api-keys"),
                Some(serde_json::json!({ "name": "test", "scope": scope })),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        reply.body["secret"].as_str().expect("secret").to_owned()
    }
}

/// `admin_url` with its database replaced by `name`.
fn database_url(admin_url: &str, name: &str) -> String {
    let (base, query) = match admin_url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (admin_url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut url = format!("{}/{name}", &base[..host_end]);
    if let Some(query) = query {
        url.push('?');
        url.push_str(query);
    }
    url
}

/// A response.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    /// Asserts the status, printing the body when it differs.
    #[track_caller]
    pub fn expect(&self, status: StatusCode) -> &Value {
        assert_eq!(self.status, status, "body: {}", self.body);
        &self.body
    }

    /// Asserts an error response with this status and `error.field`.
    #[track_caller]
    pub fn expect_error(&self, status: StatusCode, field: Option<&str>) {
        assert_eq!(self.status, status, "body: {}", self.body);
        let error = &self.body["error"];
        assert!(error["code"].is_string(), "no error code: {}", self.body);
        assert!(
            error["message"].is_string(),
            "no error message: {}",
            self.body
        );
        assert_eq!(error["field"].as_str(), field, "body: {}", self.body);
    }
}
