//! Harness for the clustered shape inside one test process: N edges (`RunningServer` with
//! cluster settings) sharing the NATS and Redis servers the test command started, under a pool
//! of their own (so tests run in parallel), and one control plane (SQLite, in process) as the
//! directory of every edge. Tenant `dev` allows anonymous clients, as in `stratus dev`.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use stratus_control_plane::ControlPlane;
use stratus_edge::{BrokerConfig, ClusterSettings, RunningServer, Services};

/// Edges of one test cluster.
pub struct TestCluster {
    edges: Vec<Option<RunningServer>>,
    /// MQTT address of each edge.
    pub addrs: Vec<SocketAddr>,
    /// The pool (isolates this test's subjects, streams and Redis keys).
    pub pool: String,
    plane: ControlPlane,
    _dir: tempfile::TempDir,
}

impl TestCluster {
    /// Starts `n` edges.
    pub async fn start(n: usize) -> Self {
        Self::start_with(n, |_| {}).await
    }

    /// Starts `n` edges after `tweak` adjusted their configuration.
    pub async fn start_with(n: usize, tweak: impl Fn(&mut BrokerConfig)) -> Self {
        Self::start_custom(n, &stratus_testkit::shared_nats_url(), tweak, |_| {}).await
    }

    /// Starts `n` edges on the NATS servers at `nats_url`, with `tweak` applied to their
    /// configuration and `cluster` to their cluster settings.
    pub async fn start_custom(
        n: usize,
        nats_url: &str,
        tweak: impl Fn(&mut BrokerConfig),
        cluster: impl Fn(&mut ClusterSettings),
    ) -> Self {
        Self::start_on(vec![nats_url.to_owned(); n], tweak, cluster).await
    }

    /// Starts one edge per entry of `nats_urls`, each connecting to those NATS servers.
    pub async fn start_on(
        nats_urls: Vec<String>,
        tweak: impl Fn(&mut BrokerConfig),
        cluster: impl Fn(&mut ClusterSettings),
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let pool = stratus_testkit::unique_name("p");
        let plane = stratus_control_plane::open_sqlite(&dir.path().join("control-plane.db"))
            .await
            .unwrap();
        let dev = stratus_model::TenantId::new("dev").unwrap();
        plane
            .ensure_tenant(&dev, stratus_policy::Effect::Allow, true)
            .await
            .unwrap();
        let mut edges = Vec::new();
        let mut addrs = Vec::new();
        for (i, nats_url) in nats_urls.iter().enumerate() {
            let mut config = BrokerConfig {
                data_dir: dir.path().join(format!("edge{i}")),
                mqtt_listen: "127.0.0.1:0".parse().unwrap(),
                http_listen: "127.0.0.1:0".parse().unwrap(),
                ws_listen: None,
                ..BrokerConfig::default()
            };
            config.sys.interval_secs = 0;
            tweak(&mut config);
            let mut settings = ClusterSettings::new(
                nats_url.clone(),
                stratus_testkit::shared_redis_url(),
                format!("edge{i}"),
                pool.clone(),
            );
            settings.replicas = 1;
            cluster(&mut settings);
            let services = Services {
                directory: plane.directory(),
                http: None,
                cluster: Some(settings),
            };
            let running = RunningServer::start(config, services).await.unwrap();
            addrs.push(running.mqtt_addr());
            edges.push(Some(running));
        }
        Self {
            edges,
            addrs,
            pool,
            plane,
            _dir: dir,
        }
    }

    /// The control plane every edge reads.
    pub fn plane(&self) -> &ControlPlane {
        &self.plane
    }

    /// Stops edge `i` gracefully.
    pub async fn stop_edge(&mut self, i: usize) {
        if let Some(edge) = self.edges[i].take() {
            edge.shutdown(Duration::from_secs(2)).await;
        }
    }
}
