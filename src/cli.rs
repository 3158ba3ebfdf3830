//! Command-line interface: subcommands, flags and their `STRATUS_*` environment variables, and
//! merging them over the TOML configuration file (flag > environment > file > default).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use stratus_edge::{BrokerConfig, RunningServer};

/// Stratus: a multi-tenant MQTT 3.1.1 / 5.0 service.
#[derive(Debug, Parser)]
#[command(name = "stratus", version, about, long_about = None)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The shapes Stratus runs in.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run a complete broker in one process with no external services (state under --data-dir).
    Dev(DevArgs),
}

/// Flags of `stratus dev`. Each one can also be set with the environment variable shown, and in
/// the `--config` TOML file under the same name with underscores (e.g. `mqtt_listen`).
#[derive(Debug, Args)]
pub(crate) struct DevArgs {
    /// Directory for durable state (sessions, queues, retained messages) [default: ./stratus-data]
    #[arg(long, env = "STRATUS_DATA_DIR", value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// MQTT over TCP listen address [default: 127.0.0.1:1883]
    #[arg(long, env = "STRATUS_MQTT_LISTEN", value_name = "ADDR")]
    pub(crate) mqtt_listen: Option<SocketAddr>,
    /// HTTP listen address for /healthz [default: 127.0.0.1:8080]
    #[arg(long, env = "STRATUS_HTTP_LISTEN", value_name = "ADDR")]
    pub(crate) http_listen: Option<SocketAddr>,
    /// TOML configuration file (limits, users, ...); see README.md for every key
    #[arg(long, env = "STRATUS_CONFIG", value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Refuse clients without valid credentials (anonymous clients otherwise join tenant `dev`)
    #[arg(long, env = "STRATUS_REQUIRE_AUTH")]
    pub(crate) require_auth: bool,
}

impl DevArgs {
    /// The effective configuration.
    pub(crate) fn to_config(&self) -> anyhow::Result<BrokerConfig> {
        let mut config = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read --config file {}", path.display()))?;
                BrokerConfig::from_toml(&text)
                    .map_err(|e| anyhow::anyhow!("invalid --config file {}: {e}", path.display()))?
            }
            None => BrokerConfig::default(),
        };
        if let Some(dir) = &self.data_dir {
            config.data_dir = dir.clone();
        }
        if let Some(addr) = self.mqtt_listen {
            config.mqtt_listen = addr;
        }
        if let Some(addr) = self.http_listen {
            config.http_listen = addr;
        }
        if self.require_auth {
            config.require_auth = true;
        }
        config.validate()?;
        Ok(config)
    }
}

/// Runs `stratus dev` until SIGINT or SIGTERM.
pub(crate) async fn run_dev(args: DevArgs) -> anyhow::Result<()> {
    let config = args.to_config()?;
    let require_auth = config.require_auth;
    let data_dir = config.data_dir.clone();
    let tenant = config.default_tenant.clone();
    let server = RunningServer::start(config).await?;
    let restored = server.restored();
    let mqtt = server.mqtt_addr();
    let http = server.http_addr();
    let host = if mqtt.ip().is_unspecified() {
        "127.0.0.1".to_owned()
    } else {
        mqtt.ip().to_string()
    };
    let auth = if require_auth {
        "clients must authenticate".to_owned()
    } else {
        format!("anonymous clients join tenant \"{tenant}\"")
    };
    println!("Stratus dev broker is running");
    println!("  MQTT  mqtt://{mqtt}  ({auth})");
    println!("  HTTP  http://{http}/healthz");
    println!(
        "  data  {}  (restored {} sessions, {} queued messages, {} retained messages)",
        data_dir.display(),
        restored.sessions,
        restored.messages,
        restored.retained
    );
    println!("Try it:");
    println!(
        "  mosquitto_sub -h {host} -p {} -t 'hello/#' -v",
        mqtt.port()
    );
    println!(
        "  mosquitto_pub -h {host} -p {} -t hello/world -m 'hi'",
        mqtt.port()
    );
    wait_for_signal().await?;
    tracing::info!("signal received: shutting down");
    server.shutdown(Duration::from_secs(5)).await;
    Ok(())
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot install the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot install the SIGINT handler")?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}
