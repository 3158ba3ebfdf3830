//! Process-level cluster fixtures: a control plane on a database of its own in the shared
//! PostgreSQL, and `stratus edge` processes of one pool, each killed when dropped.
#![allow(dead_code)]

pub(crate) mod codec_client;
pub(crate) mod mqtt;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use sqlx::Connection;

/// How long a process may take to come up.
pub(crate) const START_DEADLINE: Duration = Duration::from_secs(30);

/// A PostgreSQL database of this test's own.
pub(crate) struct TestDatabase {
    admin_url: String,
    name: String,
}

impl TestDatabase {
    /// A new database named `<prefix><random>` in the shared PostgreSQL.
    pub(crate) async fn create(prefix: &str) -> Self {
        let admin_url = stratus_testkit::shared_postgres_url();
        let name = stratus_testkit::unique_name(prefix);
        let mut conn = sqlx::PgConnection::connect(&admin_url).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
        Self { admin_url, name }
    }

    pub(crate) fn url(&self) -> String {
        let (base, query) = match self.admin_url.split_once('?') {
            Some((base, query)) => (base, format!("?{query}")),
            None => (self.admin_url.as_str(), String::new()),
        };
        let host_end = base.rfind('/').unwrap();
        format!("{}/{}{query}", &base[..host_end], self.name)
    }

    pub(crate) async fn drop_database(self) {
        let mut conn = sqlx::PgConnection::connect(&self.admin_url).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        )))
        .execute(&mut conn)
        .await
        .unwrap();
    }
}

/// A `stratus` process with its stdout and stderr lines collected; killed when dropped.
pub(crate) struct Process {
    child: Child,
    stdout: mpsc::Receiver<String>,
    /// Every line of both streams so far.
    stderr: Arc<Mutex<Vec<String>>>,
}

/// `line` without ANSI escape sequences.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Process {
    pub(crate) fn start(args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_stratus"))
            .args(args)
            .env("STRATUS_LOG", "warn,stratus_edge=info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run stratus");
        // Echoed lines are prefixed with the node id (or the subcommand).
        let label = args
            .iter()
            .position(|a| *a == "--node-id")
            .and_then(|i| args.get(i + 1))
            .unwrap_or(&args[0])
            .to_string();
        let err_label = label.clone();
        // The binary logs to stdout (tracing's default) and prints its addresses there too.
        let log = Arc::new(Mutex::new(Vec::new()));
        let out = child.stdout.take().unwrap();
        let (tx, stdout) = mpsc::channel();
        let lines = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let line = strip_ansi(&line);
                eprintln!("[{label}] {line}");
                lines.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        let err = child.stderr.take().unwrap();
        let lines = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let line = strip_ansi(&line);
                eprintln!("[{err_label}] {line}");
                lines.lock().unwrap().push(line);
            }
        });
        let stderr = log;
        Self {
            child,
            stdout,
            stderr,
        }
    }

    /// The first stdout line starting with `prefix`, without it.
    pub(crate) fn printed(&self, prefix: &str) -> String {
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .stdout
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("nothing printed starting with {prefix:?} in time"));
            if let Some(rest) = line.trim().strip_prefix(prefix) {
                return rest.trim().to_owned();
            }
        }
    }

    /// Whether a logged line so far contains `needle`.
    pub(crate) fn logged(&self, needle: &str) -> bool {
        self.stderr
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains(needle))
    }

    /// Whether one logged line so far contains every one of `needles`.
    pub(crate) fn logged_with(&self, needles: &[&str]) -> bool {
        self.stderr
            .lock()
            .unwrap()
            .iter()
            .any(|l| needles.iter().all(|n| l.contains(n)))
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit.
    pub(crate) fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the process did not exit in time"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A control plane (with the `dev` tenant: anonymous clients, default allow) and what edges
/// need to use it.
pub(crate) struct ControlPlane {
    pub(crate) process: Process,
    pub(crate) url: String,
    pub(crate) token_file: std::path::PathBuf,
    pub(crate) database: Option<TestDatabase>,
    _dir: tempfile::TempDir,
}

impl ControlPlane {
    pub(crate) async fn start(nats_url: &str) -> Self {
        let database = TestDatabase::create("edge_kill_").await;
        let dir = tempfile::tempdir().unwrap();
        let token_file = dir.path().join("operator-token");
        let process = Process::start(&[
            "control-plane",
            "--database-url",
            &database.url(),
            "--nats-url",
            nats_url,
            "--http-listen",
            "127.0.0.1:0",
            "--admin-token-file",
            token_file.to_str().unwrap(),
            "--dev-tenant",
        ]);
        let health = process.printed("health  http://");
        let addr: SocketAddr = health.trim_end_matches("/healthz").parse().unwrap();
        Self {
            process,
            url: format!("http://{addr}"),
            token_file,
            database: Some(database),
            _dir: dir,
        }
    }

    pub(crate) async fn stop(mut self) {
        if let Some(db) = self.database.take() {
            drop(self.process);
            db.drop_database().await;
        }
    }
}

/// One `stratus edge` process.
pub(crate) struct Edge {
    pub(crate) process: Process,
    pub(crate) mqtt: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Edge {
    pub(crate) fn start(
        plane: &ControlPlane,
        nats_url: &str,
        redis_url: &str,
        pool: &str,
        node_id: &str,
        lease_ttl_secs: u64,
    ) -> Self {
        Self::start_with(
            plane,
            nats_url,
            redis_url,
            pool,
            node_id,
            lease_ttl_secs,
            &[],
        )
    }

    /// [`Edge::start`] with `extra` flags.
    pub(crate) fn start_with(
        plane: &ControlPlane,
        nats_url: &str,
        redis_url: &str,
        pool: &str,
        node_id: &str,
        lease_ttl_secs: u64,
        extra: &[&str],
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ttl = lease_ttl_secs.to_string();
        let mut args = vec![
            "edge",
            "--nats-url",
            nats_url,
            "--redis-url",
            redis_url,
            "--control-plane-url",
            &plane.url,
            "--control-plane-token-file",
            plane.token_file.to_str().unwrap(),
            "--node-id",
            node_id,
            "--pool",
            pool,
            "--jetstream-replicas",
            "1",
            "--lease-ttl-secs",
            &ttl,
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--mqtt-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
            "--ws-listen",
            "off",
        ];
        args.extend_from_slice(extra);
        let process = Process::start(&args);
        let mqtt = process.printed("MQTT  mqtt://").parse().unwrap();
        Self {
            process,
            mqtt,
            _dir: dir,
        }
    }
}

/// Polls `condition` every 20 ms until it holds or `limit` passes.
pub(crate) async fn eventually(limit: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
