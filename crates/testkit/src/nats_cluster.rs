//! [`NatsCluster`]: several `nats-server` processes routed into one cluster with one JetStream
//! meta group.

use std::{
    thread,
    time::{Duration, Instant},
};

use serde::Deserialize;

use crate::{
    NatsServer, TestkitError, http,
    nats::{NodeConfig, RouteConfig, START_ATTEMPTS},
    ports::free_ports,
    process::POLL_INTERVAL,
    shared::unique_name,
};

/// How long a cluster may take to elect a JetStream meta leader that every node follows.
const FORMED_TIMEOUT: Duration = Duration::from_secs(60);

/// A NATS cluster on loopback: `n` servers with JetStream, each with its own store directory, all
/// routed to each other. Every node is killed when the cluster is dropped.
///
/// All methods block; see the crate documentation.
#[derive(Debug)]
pub struct NatsCluster {
    name: String,
    nodes: Vec<NatsServer>,
}

impl NatsCluster {
    /// Starts `n` (at least 2; 3 for replicated streams) servers and waits (up to 60 s) until
    /// the cluster has formed: every node's `/healthz` answers 200 (JetStream current with the meta
    /// leader) and `/jsz` shows a meta leader over all `n` peers.
    pub fn start(n: usize) -> Result<Self, TestkitError> {
        if n < 2 {
            return Err(TestkitError::ClusterSize { requested: n });
        }
        let mut attempt = 1;
        loop {
            match Self::try_start(n) {
                Err(error) if error.is_port_conflict() && attempt < START_ATTEMPTS => attempt += 1,
                result => return result,
            }
        }
    }

    fn try_start(n: usize) -> Result<Self, TestkitError> {
        let ports = free_ports(3 * n);
        let (client_ports, rest) = ports.split_at(n);
        let (route_ports, monitor_ports) = rest.split_at(n);
        let name = unique_name("cluster-");
        let mut cluster = Self {
            name: name.clone(),
            nodes: Vec::with_capacity(n),
        };
        for index in 0..n {
            let peer_route_ports = route_ports
                .iter()
                .enumerate()
                .filter(|&(peer, _)| peer != index)
                .map(|(_, &port)| port)
                .collect();
            // On error the nodes launched so far are killed when `cluster` drops.
            cluster.nodes.push(NatsServer::launch(NodeConfig {
                server_name: format!("n{}", index + 1),
                port: client_ports[index],
                monitor_port: monitor_ports[index],
                cluster: Some(RouteConfig {
                    cluster_name: name.clone(),
                    route_port: route_ports[index],
                    peer_route_ports,
                }),
            })?);
        }
        cluster.wait_formed()?;
        Ok(cluster)
    }

    /// Waits (up to 60 s) until every running node answers `/healthz` with 200 and sees a
    /// JetStream meta leader: after start, or after killing or restarting nodes. Killed nodes are
    /// skipped; a node that exited on its own is an error.
    pub fn wait_formed(&mut self) -> Result<(), TestkitError> {
        let started = Instant::now();
        let size = self.nodes.len();
        loop {
            for node in &mut self.nodes {
                if node.is_launched() {
                    node.check_running()?;
                }
            }
            let unready: Vec<&NatsServer> = self
                .nodes
                .iter()
                .filter(|node| node.is_launched() && !node_is_formed(node.monitor_port(), size))
                .collect();
            if unready.is_empty() {
                return Ok(());
            }
            if started.elapsed() >= FORMED_TIMEOUT {
                let first = unready[0];
                let tail = unready
                    .iter()
                    .map(|node| {
                        format!("--- {} ---\n{}", node.log_path().display(), node.log_tail())
                    })
                    .collect::<Vec<_>>()
                    .join("\n");
                return Err(TestkitError::NotReady {
                    service: format!(
                        "NATS cluster {} (nodes not formed: {})",
                        self.name,
                        unready
                            .iter()
                            .map(|node| node.server_name())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    waited: started.elapsed(),
                    log: first.log_path().to_path_buf(),
                    tail,
                });
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// The client URLs of all nodes, comma separated (`nats://127.0.0.1:P1,nats://...`), the form
    /// `--nats-url` takes.
    pub fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(NatsServer::url)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The cluster name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The number of nodes (running or not).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Always false: a cluster has at least 2 nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Node `i` (0-based; its server name is `n{i+1}`), to kill, pause or restart it.
    ///
    /// # Panics
    ///
    /// When `i` is not below [`len`](Self::len).
    pub fn node(&mut self, i: usize) -> &mut NatsServer {
        let len = self.nodes.len();
        match self.nodes.get_mut(i) {
            Some(node) => node,
            None => panic!("NATS cluster has {len} nodes, node({i}) requested"),
        }
    }

    /// The index of the node with server name `server_name` (as JetStream names stream leaders).
    pub fn index_of(&self, server_name: &str) -> Option<usize> {
        self.nodes
            .iter()
            .position(|node| node.server_name() == server_name)
    }
}

/// What `/jsz` tells about the meta group.
#[derive(Debug, Deserialize)]
struct Jsz {
    meta_cluster: Option<MetaCluster>,
}

#[derive(Debug, Deserialize)]
struct MetaCluster {
    leader: Option<String>,
    cluster_size: Option<usize>,
}

/// True when the node is healthy (JetStream current with the meta leader) and its meta group has a
/// leader over `size` peers.
fn node_is_formed(monitor_port: u16, size: usize) -> bool {
    if !http::is_ok(monitor_port, "/healthz") {
        return false;
    }
    let Ok(response) = http::get(monitor_port, "/jsz") else {
        return false;
    };
    let Ok(jsz) = serde_json::from_str::<Jsz>(&response.body) else {
        return false;
    };
    jsz.meta_cluster.is_some_and(|meta| {
        meta.leader.is_some_and(|leader| !leader.is_empty()) && meta.cluster_size == Some(size)
    })
}
