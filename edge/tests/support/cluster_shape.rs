//! The clustered shape behind the behaviour suites: with `STRATUS_TEST_SHAPE=cluster`,
//! `TestServer` starts three clustered edges (the NATS and Redis the test command started, a
//! pool of the test's own) instead of one embedded broker, and puts a round-robin TCP front
//! before their MQTT listeners: consecutive connections of a test land on different edges, so a
//! publisher and its subscriber are on different edges and a session resumes on another edge
//! than the one that made it. `scripts/parity-cluster.sh` runs the suites this way.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use stratus_edge::ClusterSettings;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Edges of the clustered shape.
pub const EDGES: usize = 3;

/// Whether the suites run against the clustered shape.
pub fn enabled() -> bool {
    std::env::var("STRATUS_TEST_SHAPE").is_ok_and(|v| v == "cluster")
}

/// Cluster settings for edge `i` of a test's pool.
pub fn settings(pool: &str, i: usize) -> ClusterSettings {
    let mut settings = ClusterSettings::new(
        stratus_testkit::shared_nats_url(),
        stratus_testkit::shared_redis_url(),
        format!("edge{i}"),
        pool.to_owned(),
    );
    settings.replicas = 1;
    settings
}

/// A TCP front that hands each new connection to the next edge in turn.
pub struct Front {
    /// Where clients connect.
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Front {
    /// Listens on a free loopback port and forwards to `edges` in turn.
    pub async fn start(edges: Vec<SocketAddr>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let next = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(async move {
            while let Ok((mut client, peer)) = listener.accept().await {
                let edge = edges[next.fetch_add(1, Ordering::Relaxed) % edges.len()];
                tokio::spawn(async move {
                    let Ok(mut server) = connect_from(peer.ip(), edge).await else {
                        return;
                    };
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                });
            }
        });
        Self { addr, task }
    }
}

/// Connects to `edge` from the client's own (loopback) address, so that the edge sees the
/// address the client connected from, as without the front (tests of per-address limits use
/// several 127.0.0.x addresses).
async fn connect_from(ip: std::net::IpAddr, edge: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = match ip {
        std::net::IpAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        std::net::IpAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.bind(SocketAddr::new(ip, 0))?;
    socket.connect(edge).await
}

impl Drop for Front {
    fn drop(&mut self) {
        self.task.abort();
    }
}
