//! `stratus control-plane` as an operator runs it: against the shared PostgreSQL (a database of
//! its own) and NATS of `scripts/test.sh`, its REST API, its change events on NATS, its exit
//! status when a dependency is unreachable, and a clean stop on SIGTERM.
#![allow(clippy::unwrap_used)]

mod cluster_support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use cluster_support::TestDatabase;
use futures_util::StreamExt;
use serde_json::{Value, json};
use stratus_model::{CHANGE_SUBJECT, ChangeEvent, TenantId};

const DEADLINE: Duration = Duration::from_secs(20);

/// The running binary, killed when dropped.
struct ControlPlaneProcess {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Drop for ControlPlaneProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ControlPlaneProcess {
    fn start(args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_stratus"))
            .arg("control-plane")
            .args(args)
            .env("STRATUS_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("run stratus control-plane");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self { child, lines }
    }

    /// The HTTP address it prints once it serves.
    fn http_addr(&self) -> SocketAddr {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .expect("the control plane did not print its address in time");
            if let Some(rest) = line.trim().strip_prefix("health  http://") {
                return rest.trim_end_matches("/healthz").parse().unwrap();
            }
        }
    }

    /// Sends SIGTERM and waits for the exit status.
    fn terminate(&mut self) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "no exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Runs `stratus control-plane args...` to completion (it is expected to fail fast).
fn run_to_exit(args: &[&str]) -> (Output, Duration) {
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_stratus"))
        .arg("control-plane")
        .args(args)
        .output()
        .expect("run stratus control-plane");
    (output, started.elapsed())
}

async fn request(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: &str,
    body: Option<Value>,
) -> (reqwest::StatusCode, Value) {
    let mut request = http.request(method, url).bearer_auth(token);
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let bytes = response.bytes().await.unwrap();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, body)
}

#[tokio::test]
async fn the_control_plane_serves_the_api_and_publishes_changes_on_nats() {
    let nats_url = stratus_testkit::shared_nats_url();
    let database = TestDatabase::create("cp_cli_").await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("operator-token");
    let database_url = database.url();
    let mut process = ControlPlaneProcess::start(&[
        "--database-url",
        &database_url,
        "--nats-url",
        &nats_url,
        "--http-listen",
        "127.0.0.1:0",
        "--admin-token-file",
        token_file.to_str().unwrap(),
        "--dev-tenant",
    ]);
    let addr = process.http_addr();
    let token = std::fs::read_to_string(&token_file).unwrap();
    let token = token.trim();
    let base = format!("http://{addr}");
    let http = reqwest::Client::new();

    let nats = async_nats::connect(&nats_url).await.unwrap();
    let mut changes = nats.subscribe(CHANGE_SUBJECT).await.unwrap();
    nats.flush().await.unwrap();

    let get = |path: &str| {
        request(
            &http,
            reqwest::Method::GET,
            format!("{base}{path}"),
            token,
            None,
        )
    };
    assert_eq!(get("/healthz").await.0, reqwest::StatusCode::OK);
    assert_eq!(get("/api/openapi.json").await.0, reqwest::StatusCode::OK);
    let (status, dev) = get("/internal/v1/tenants/dev").await;
    assert_eq!(status, reqwest::StatusCode::OK, "{dev}");
    assert_eq!(dev["allow_anonymous"], true);
    assert_eq!(dev["default_effect"], "allow");

    let slug = stratus_testkit::unique_name("cli");
    let post = |path: &str, body: Value| {
        request(
            &http,
            reqwest::Method::POST,
            format!("{base}{path}"),
            token,
            Some(body),
        )
    };
    let (status, body) = post("/api/v1/tenants", json!({ "slug": slug })).await;
    assert_eq!(status, reqwest::StatusCode::CREATED, "{body}");
    let (status, device) = post(
        &format!("/api/v1/tenants/{slug}/devices"),
        json!({"username": "alice", "password": "correct horse"}),
    )
    .await;
    assert_eq!(status, reqwest::StatusCode::CREATED, "{device}");
    let expected = ChangeEvent::Device {
        tenant: TenantId::new(&slug).unwrap(),
        device_id: device["id"].as_str().unwrap().to_owned(),
    };
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let message = tokio::time::timeout_at(deadline, changes.next())
            .await
            .expect("the device change did not reach NATS in time")
            .unwrap();
        if serde_json::from_slice::<ChangeEvent>(&message.payload).ok() == Some(expected.clone()) {
            break;
        }
    }

    // A restart reads the same token back.
    let status = tokio::task::spawn_blocking(move || {
        let status = process.terminate();
        drop(process);
        status
    })
    .await
    .unwrap();
    assert!(status.success(), "{status}");
    assert_eq!(
        stratus_control_plane::ensure_admin_token_file(&token_file).unwrap(),
        token
    );
    database.drop_database().await;
}

#[test]
fn an_unreachable_nats_is_a_start_up_error_naming_nats() {
    let nats_url = format!("nats://127.0.0.1:{}", stratus_testkit::free_port());
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    let (output, took) = run_to_exit(&[
        "--database-url",
        "postgres://stratus:secret@127.0.0.1:1/stratus",
        "--nats-url",
        &nats_url,
        "--admin-token-file",
        token_file.to_str().unwrap(),
        "--http-listen",
        "127.0.0.1:0",
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("NATS") && stderr.contains(&nats_url),
        "{stderr}"
    );
    assert!(took < DEADLINE, "took {took:?}");
}

#[test]
fn an_unreachable_postgres_is_a_start_up_error_naming_postgres_without_its_password() {
    let nats_url = stratus_testkit::shared_nats_url();
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    let port = stratus_testkit::free_port();
    let (output, took) = run_to_exit(&[
        "--database-url",
        &format!("postgres://stratus:hunter2@127.0.0.1:{port}/stratus"),
        "--nats-url",
        &nats_url,
        "--admin-token-file",
        token_file.to_str().unwrap(),
        "--http-listen",
        "127.0.0.1:0",
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("PostgreSQL"), "{stderr}");
    assert!(stderr.contains(&format!("127.0.0.1:{port}")), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
    assert!(took < DEADLINE, "took {took:?}");
}
