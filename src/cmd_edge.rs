//! `stratus edge`: one stateless edge of the clustered shape. It serves the same listeners as
//! `stratus dev` (same flags), routes messages through NATS and JetStream, keeps retained
//! messages in Redis, claims client ids in NATS KV, and reads tenants, devices and rules from the
//! control plane over HTTP (change events over NATS). It keeps nothing that matters on local
//! disk (`--data-dir` holds at most a generated development certificate).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use stratus_edge::{ClusterSettings, RunningServer, Services};

use crate::cli::DevArgs;

/// Flags of `stratus edge`: the cluster's services, then every listener flag of `stratus dev`.
#[derive(Debug, Args)]
pub(crate) struct EdgeArgs {
    /// NATS servers with JetStream, comma-separated (e.g. nats://10.0.0.1:4222,nats://10.0.0.2:4222)
    #[arg(long, env = "STRATUS_NATS_URL", value_name = "URLS")]
    pub(crate) nats_url: String,
    /// Redis (retained messages; e.g. redis://10.0.0.5:6379)
    #[arg(long, env = "STRATUS_REDIS_URL", value_name = "URL")]
    pub(crate) redis_url: String,
    /// The control plane's HTTP address (e.g. http://10.0.0.9:8090)
    #[arg(long, env = "STRATUS_CONTROL_PLANE_URL", value_name = "URL")]
    pub(crate) control_plane_url: String,
    /// File holding the control plane's operator token (written by `stratus control-plane --admin-token-file`)
    #[arg(long, env = "STRATUS_CONTROL_PLANE_TOKEN_FILE", value_name = "FILE")]
    pub(crate) control_plane_token_file: PathBuf,
    /// This edge's name, unique in the cluster (letters, digits, '-', '_')
    #[arg(long, env = "STRATUS_NODE_ID", value_name = "ID")]
    pub(crate) node_id: String,
    /// Tenant pool this edge serves: names its JetStream stream, KV bucket, subjects and Redis keys
    #[arg(long, env = "STRATUS_POOL", value_name = "NAME", default_value = "p0")]
    pub(crate) pool: String,
    /// JetStream replicas of the pool's stream and ownership bucket (3 on a 3-node NATS cluster)
    #[arg(
        long,
        env = "STRATUS_JETSTREAM_REPLICAS",
        value_name = "N",
        default_value_t = 3
    )]
    pub(crate) jetstream_replicas: usize,
    /// TTL of this edge's node lease in Redis, seconds: renewed every third of it; without a renewal for half of it the edge disconnects its clients; once it lapses other edges publish its clients' wills
    #[arg(
        long,
        env = "STRATUS_LEASE_TTL_SECS",
        value_name = "SECS",
        default_value_t = 10
    )]
    pub(crate) lease_ttl_secs: u64,
    /// Seconds a share group's QoS 1/2 message may stay unacknowledged by the member holding it before it goes to another member (on any edge)
    #[arg(
        long,
        env = "STRATUS_SHARED_ACK_WAIT_SECS",
        value_name = "SECS",
        default_value_t = 30
    )]
    pub(crate) shared_ack_wait_secs: u64,
    /// Most QoS 1/2 messages of one share group out at its members at once, across edges (the rest wait in the stream)
    #[arg(
        long,
        env = "STRATUS_SHARED_MAX_ACK_PENDING",
        value_name = "N",
        default_value_t = 1000
    )]
    pub(crate) shared_max_ack_pending: usize,
    #[command(flatten)]
    pub(crate) listeners: DevArgs,
}

/// Runs `stratus edge` until SIGINT or SIGTERM.
pub(crate) async fn run(args: EdgeArgs) -> anyhow::Result<()> {
    let config = args.listeners.to_config()?;
    let token = std::fs::read_to_string(&args.control_plane_token_file).with_context(|| {
        format!(
            "cannot read --control-plane-token-file {}",
            args.control_plane_token_file.display()
        )
    })?;
    // The directory's own NATS connection (change events); the backbone opens another.
    let nats = async_nats::ConnectOptions::new()
        .name(format!("stratus-edge-{}-directory", args.node_id))
        .connection_timeout(Duration::from_secs(5))
        .connect(
            args.nats_url
                .split(',')
                .map(str::trim)
                .filter(|u| !u.is_empty())
                .collect::<Vec<_>>(),
        )
        .await
        .with_context(|| format!("cannot reach NATS at {} (check --nats-url)", args.nats_url))?;
    let directory = stratus_remote_directory::RemoteDirectory::connect(
        stratus_remote_directory::RemoteDirectoryConfig {
            url: args.control_plane_url.clone(),
            token,
            request_timeout: Duration::from_secs(5),
        },
        nats,
    )
    .await
    .with_context(|| {
        format!(
            "cannot use the control plane at {} (check --control-plane-url and the token file)",
            args.control_plane_url
        )
    })?;
    let mut settings = ClusterSettings::new(
        args.nats_url.clone(),
        args.redis_url.clone(),
        args.node_id.clone(),
        args.pool.clone(),
    );
    settings.replicas = args.jetstream_replicas;
    settings.lease_ttl = Duration::from_secs(args.lease_ttl_secs);
    settings.shared_ack_wait = Duration::from_secs(args.shared_ack_wait_secs);
    settings.shared_max_ack_pending = args.shared_max_ack_pending;
    let services = Services {
        directory,
        http: None,
        cluster: Some(settings),
    };
    let server = RunningServer::start(config, services).await?;
    println!(
        "Stratus edge {} is running (pool {})",
        args.node_id, args.pool
    );
    println!("  MQTT  mqtt://{}", server.mqtt_addr());
    if let Some(addr) = server.ws_addr() {
        println!("  WS    ws://{addr}/mqtt");
    }
    if let Some(addr) = server.mqtts_addr() {
        println!("  MQTTS mqtts://{addr}");
    }
    if let Some(addr) = server.wss_addr() {
        println!("  WSS   wss://{addr}/mqtt");
    }
    println!("  HTTP  http://{}/healthz", server.http_addr());
    println!(
        "  NATS  {}   Redis {}   control plane {}",
        args.nats_url, args.redis_url, args.control_plane_url
    );
    crate::cli::wait_for_signal().await?;
    tracing::info!("signal received: shutting down");
    server.shutdown(Duration::from_secs(5)).await;
    Ok(())
}
