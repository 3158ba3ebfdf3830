//! [`RemoteDirectory`] against a real control plane (its router served on 127.0.0.1:0 over
//! SQLite, with the NATS change-event forwarder) and real NATS: the shared server of
//! `scripts/test.sh` (`STRATUS_TEST_NATS_URL`; tests keep apart by unique tenant names), or a
//! server the test owns when it kills it.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use stratus_control_plane::{ChangeForwarder, ControlPlane};
use stratus_model::{CHANGE_SUBJECT, ChangeEvent, Directory, TenantId};
use stratus_remote_directory::{RemoteDirectory, RemoteDirectoryConfig, RemoteDirectoryError};
use tokio::sync::{broadcast, watch};
use tokio::time::{Instant, timeout};

const ADMIN: &str = "remote-directory-test-operator-token";
const DEADLINE: Duration = Duration::from_secs(10);
const EC_P256_PEM: &str = include_str!("../../../control-plane/tests/support/keys/ec.pub");

/// A control plane serving HTTP on loopback and forwarding its change events to NATS.
struct TestControlPlane {
    plane: ControlPlane,
    addr: SocketAddr,
    http: reqwest::Client,
    stop_http: watch::Sender<bool>,
    server: tokio::task::JoinHandle<()>,
    _forwarder: ChangeForwarder,
    _dir: tempfile::TempDir,
}

async fn nats_client(url: &str) -> async_nats::Client {
    async_nats::ConnectOptions::new()
        .reconnect_delay_callback(|_| Duration::from_millis(50))
        .connect(url)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to NATS at {url}: {e}"))
}

impl TestControlPlane {
    async fn start(nats_url: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let plane = stratus_control_plane::open_sqlite(&dir.path().join("cp.db"))
            .await
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop_http, mut stopped) = watch::channel(false);
        let router = plane.router(ADMIN);
        let server = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = stopped.wait_for(|stop| *stop).await;
                })
                .await
                .unwrap();
        });
        let forwarder = plane.forward_changes_to_nats(nats_client(nats_url).await);
        Self {
            plane,
            addr,
            http: reqwest::Client::new(),
            stop_http,
            server,
            _forwarder: forwarder,
            _dir: dir,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn config(&self, token: &str) -> RemoteDirectoryConfig {
        RemoteDirectoryConfig {
            url: self.url(),
            token: token.to_owned(),
            request_timeout: Duration::from_secs(5),
        }
    }

    /// `POST path body` on the REST API as the operator; the created resource.
    async fn create(&self, path: &str, body: Value) -> Value {
        let response = self
            .http
            .post(format!("{}{path}", self.url()))
            .bearer_auth(ADMIN)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
        assert_eq!(status, reqwest::StatusCode::CREATED, "{path}: {body}");
        body
    }

    /// A new tenant with a name no other test uses.
    async fn unique_tenant(&self) -> TenantId {
        let slug = stratus_testkit::unique_name("rd");
        self.create("/api/v1/tenants", json!({ "slug": slug }))
            .await;
        TenantId::new(&slug).unwrap()
    }

    async fn device(&self, tenant: &TenantId, body: Value) -> String {
        let created = self
            .create(&format!("/api/v1/tenants/{tenant}/devices"), body)
            .await;
        created["id"].as_str().unwrap().to_owned()
    }

    /// Stops serving HTTP (idle connections are closed).
    async fn stop_http(self) -> ControlPlane {
        self.stop_http.send(true).unwrap();
        timeout(DEADLINE, self.server).await.unwrap().unwrap();
        self.plane
    }
}

async fn connect(cp: &TestControlPlane, nats_url: &str) -> Arc<RemoteDirectory> {
    RemoteDirectory::connect(cp.config(ADMIN), nats_client(nats_url).await)
        .await
        .unwrap()
}

/// The next event on `changes` that `wanted` accepts, within the deadline.
async fn next_matching(
    changes: &mut broadcast::Receiver<ChangeEvent>,
    wanted: impl Fn(&ChangeEvent) -> bool,
) -> ChangeEvent {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let event = tokio::time::timeout_at(deadline, changes.recv())
            .await
            .expect("no matching change event before the deadline")
            .unwrap();
        if wanted(&event) {
            return event;
        }
    }
}

fn about(tenant: &TenantId) -> impl Fn(&ChangeEvent) -> bool + '_ {
    move |event| match event {
        ChangeEvent::Tenant(t) | ChangeEvent::Rules(t) | ChangeEvent::JwtKeys(t) => t == tenant,
        ChangeEvent::Device { tenant: t, .. } => t == tenant,
        ChangeEvent::Resync => false,
    }
}

#[tokio::test]
async fn every_directory_question_is_answered_as_the_control_plane_answers_it() {
    let nats_url = stratus_testkit::shared_nats_url();
    let cp = TestControlPlane::start(&nats_url).await;
    let remote = connect(&cp, &nats_url).await;
    let local = cp.plane.directory();
    let tenant = cp.unique_tenant().await;
    cp.device(
        &tenant,
        json!({"username": "alice", "password": "correct horse", "client_id": "alice-1"}),
    )
    .await;
    cp.device(
        &tenant,
        json!({"username": "fleet", "jwt": true, "client_id_pattern": "sensor-*"}),
    )
    .await;
    let fingerprint = "0f".repeat(32);
    cp.device(
        &tenant,
        json!({"cert_fingerprint": fingerprint, "cert_subject": "CN=gw,O=Acme"}),
    )
    .await;
    cp.create(
        &format!("/api/v1/tenants/{tenant}/acl-rules"),
        json!({"effect": "allow", "action": "all", "filter": "t/${clientid}/#"}),
    )
    .await;
    cp.create(
        &format!("/api/v1/tenants/{tenant}/jwt-keys"),
        json!({"algorithm": "ES256", "public_key_pem": EC_P256_PEM}),
    )
    .await;

    let record = remote.tenant(&tenant).await.unwrap();
    assert!(record.is_some());
    assert_eq!(record, local.tenant(&tenant).await.unwrap());
    let ghost = TenantId::new("ghost-tenant-never-created").unwrap();
    assert_eq!(remote.tenant(&ghost).await.unwrap(), None);

    let alice = remote.device_by_username(&tenant, "alice").await.unwrap();
    assert!(alice.as_ref().is_some_and(|d| d.password_hash.is_some()));
    assert_eq!(
        alice,
        local.device_by_username(&tenant, "alice").await.unwrap()
    );
    assert_eq!(
        remote.device_by_username(&tenant, "bob").await.unwrap(),
        None
    );

    let gateway = remote
        .device_by_certificate(&tenant, &fingerprint, "CN=other")
        .await
        .unwrap();
    assert!(gateway.is_some());
    assert_eq!(
        remote
            .device_by_certificate(&tenant, &"aa".repeat(32), "CN=gw,O=Acme")
            .await
            .unwrap(),
        gateway
    );
    assert_eq!(
        remote
            .device_by_certificate(&tenant, &"aa".repeat(32), "")
            .await
            .unwrap(),
        None
    );

    for client_id in ["alice-1", "sensor-42", "free"] {
        let claiming = remote
            .devices_claiming_client_id(&tenant, client_id)
            .await
            .unwrap();
        assert_eq!(
            claiming.len(),
            usize::from(client_id != "free"),
            "{client_id}"
        );
        assert_eq!(
            claiming,
            local
                .devices_claiming_client_id(&tenant, client_id)
                .await
                .unwrap()
        );
    }
    let rules = remote.acl_rules(&tenant).await.unwrap();
    assert_eq!(rules.len(), 1);
    assert_eq!(rules, local.acl_rules(&tenant).await.unwrap());
    let keys = remote.jwt_keys(&tenant).await.unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys, local.jwt_keys(&tenant).await.unwrap());
    assert!(remote.acl_rules(&ghost).await.unwrap().is_empty());
}

#[tokio::test]
async fn awkward_user_names_and_client_ids_round_trip() {
    let nats_url = stratus_testkit::shared_nats_url();
    let cp = TestControlPlane::start(&nats_url).await;
    let remote = connect(&cp, &nats_url).await;
    let tenant = cp.unique_tenant().await;
    let long = "λ/".repeat(120);
    for name in [
        "a b+c&d=e%25f/g?h#i;j",
        "%2F..%2f../",
        "ünïcødé 🚀 名前",
        "quote\"apostrophe'back\\slash",
        long.as_str(),
    ] {
        let client_id = format!("{name}#cid");
        let id = cp
            .device(&tenant, json!({"username": name, "client_id": client_id}))
            .await;
        let found = remote.device_by_username(&tenant, name).await.unwrap();
        assert_eq!(found.map(|d| d.id), Some(id.clone()), "{name}");
        let claiming = remote
            .devices_claiming_client_id(&tenant, &client_id)
            .await
            .unwrap();
        assert_eq!(
            claiming.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
            [id.as_str()]
        );
    }
    assert_eq!(
        remote.device_by_username(&tenant, "a b c").await.unwrap(),
        None
    );
}

#[tokio::test]
async fn a_device_change_arrives_as_a_change_event() {
    let nats_url = stratus_testkit::shared_nats_url();
    let cp = TestControlPlane::start(&nats_url).await;
    let remote = connect(&cp, &nats_url).await;
    let mut changes = remote.changes();
    let tenant = cp.unique_tenant().await;
    assert_eq!(
        next_matching(&mut changes, about(&tenant)).await,
        ChangeEvent::Tenant(tenant.clone())
    );
    let device_id = cp.device(&tenant, json!({"username": "alice"})).await;
    assert_eq!(
        next_matching(&mut changes, about(&tenant)).await,
        ChangeEvent::Device { tenant, device_id }
    );
    assert!(remote.event_counts().received >= 2);
}

#[tokio::test]
async fn malformed_change_events_are_skipped() {
    let nats_url = stratus_testkit::shared_nats_url();
    let cp = TestControlPlane::start(&nats_url).await;
    let remote = connect(&cp, &nats_url).await;
    let mut changes = remote.changes();
    let tenant = TenantId::new(&stratus_testkit::unique_name("rd")).unwrap();
    let publisher = nats_client(&nats_url).await;
    for garbage in [
        &b"not json"[..],
        b"{\"Unknown\":\"x\"}",
        b"{\"Rules\":\"NOT A SLUG\"}",
    ] {
        publisher
            .publish(CHANGE_SUBJECT, garbage.to_vec().into())
            .await
            .unwrap();
    }
    let valid = serde_json::to_vec(&ChangeEvent::Rules(tenant.clone())).unwrap();
    publisher
        .publish(CHANGE_SUBJECT, valid.into())
        .await
        .unwrap();
    publisher.flush().await.unwrap();
    assert_eq!(
        next_matching(&mut changes, about(&tenant)).await,
        ChangeEvent::Rules(tenant)
    );
    assert!(
        remote.event_counts().malformed >= 3,
        "{:?}",
        remote.event_counts()
    );
}

#[tokio::test]
async fn a_nats_reconnect_is_followed_by_a_resync() {
    // The control plane publishes on the shared server; the directory follows a server this test
    // owns and kills, so the only resync it can see is its own.
    let cp = TestControlPlane::start(&stratus_testkit::shared_nats_url()).await;
    let server = tokio::task::spawn_blocking(stratus_testkit::NatsServer::start)
        .await
        .unwrap()
        .unwrap();
    let remote = connect(&cp, &server.url()).await;
    let mut changes = remote.changes();
    let server = tokio::task::spawn_blocking(move || {
        let mut server = server;
        server.kill();
        server.restart().unwrap();
        server
    })
    .await
    .unwrap();
    let event = timeout(DEADLINE, changes.recv()).await.unwrap().unwrap();
    assert_eq!(event, ChangeEvent::Resync);
    assert_eq!(remote.event_counts().local_resyncs, 1);
    // After the resync, events flow through the restored subscription.
    let acme = TenantId::new("acme").unwrap();
    let publisher = nats_client(&server.url()).await;
    let payload = serde_json::to_vec(&ChangeEvent::JwtKeys(acme.clone())).unwrap();
    publisher
        .publish(CHANGE_SUBJECT, payload.into())
        .await
        .unwrap();
    publisher.flush().await.unwrap();
    let event = timeout(DEADLINE, changes.recv()).await.unwrap().unwrap();
    assert_eq!(event, ChangeEvent::JwtKeys(acme));
}

#[tokio::test]
async fn a_wrong_token_is_an_error_naming_the_token() {
    let nats_url = stratus_testkit::shared_nats_url();
    let cp = TestControlPlane::start(&nats_url).await;
    let err = RemoteDirectory::connect(
        cp.config("not-the-operator-token"),
        nats_client(&nats_url).await,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, RemoteDirectoryError::TokenRefused { status: 401, .. }),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(message.contains("token"), "{message}");
    assert!(!message.contains("not-the-operator-token"), "{message}");
}

#[tokio::test]
async fn an_unreachable_url_is_an_error_naming_the_url() {
    let nats_url = stratus_testkit::shared_nats_url();
    let url = format!("http://127.0.0.1:{}", stratus_testkit::free_port());
    let config = RemoteDirectoryConfig {
        url: url.clone(),
        token: ADMIN.to_owned(),
        request_timeout: Duration::from_secs(2),
    };
    let err = RemoteDirectory::connect(config, nats_client(&nats_url).await)
        .await
        .unwrap_err();
    assert!(
        matches!(err, RemoteDirectoryError::Unreachable { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains(&url), "{err}");
}

#[tokio::test]
async fn a_control_plane_that_does_not_answer_times_out() {
    let nats_url = stratus_testkit::shared_nats_url();
    // Accepts connections (the kernel completes the handshake) but never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", silent.local_addr().unwrap());
    let config = RemoteDirectoryConfig {
        url: url.clone(),
        token: ADMIN.to_owned(),
        request_timeout: Duration::from_millis(300),
    };
    let started = Instant::now();
    let err = RemoteDirectory::connect(config, nats_client(&nats_url).await)
        .await
        .unwrap_err();
    assert!(started.elapsed() < DEADLINE);
    let message = err.to_string();
    assert!(
        message.contains(&url) && message.contains("timed out"),
        "{message}"
    );
}

#[tokio::test]
async fn reads_after_the_control_plane_stopped_are_directory_errors() {
    let nats_url = stratus_testkit::shared_nats_url();
    let cp = TestControlPlane::start(&nats_url).await;
    let remote = connect(&cp, &nats_url).await;
    let tenant = cp.unique_tenant().await;
    assert!(remote.tenant(&tenant).await.unwrap().is_some());
    let _plane = cp.stop_http().await;
    let err = remote.tenant(&tenant).await.unwrap_err();
    assert!(err.to_string().contains("/internal/v1/tenants/"), "{err}");
    assert!(remote.device_by_username(&tenant, "alice").await.is_err());
    assert!(remote.acl_rules(&tenant).await.is_err());
}

#[test]
fn the_token_is_not_printed_by_debug() {
    let config = RemoteDirectoryConfig {
        url: "http://127.0.0.1:1".to_owned(),
        token: "secret-token-value".to_owned(),
        request_timeout: Duration::from_secs(1),
    };
    assert!(!format!("{config:?}").contains("secret-token-value"));
}

#[tokio::test]
async fn an_invalid_url_is_refused_before_any_request() {
    let nats_url = stratus_testkit::shared_nats_url();
    for url in ["127.0.0.1:8090", "ftp://127.0.0.1:8090", "http://h:1/?x=1"] {
        let config = RemoteDirectoryConfig {
            url: url.to_owned(),
            token: ADMIN.to_owned(),
            request_timeout: Duration::from_secs(1),
        };
        let err = RemoteDirectory::connect(config, nats_client(&nats_url).await)
            .await
            .unwrap_err();
        assert!(
            matches!(err, RemoteDirectoryError::InvalidUrl { .. }),
            "{url}: {err:?}"
        );
    }
}
