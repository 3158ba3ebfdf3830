//! Command-line interface: subcommands, flags and their `STRATUS_*` environment variables, and
//! merging them over the TOML configuration file (flag > environment > file > default).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use stratus_edge::config::{ClientAuth, ListenerName};
use stratus_edge::{BrokerConfig, RunningServer, Services};

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
    /// Load-test an MQTT broker (Stratus or any other): throughput, end-to-end latency, loss,
    /// duplicates, connection rate and idle-connection capacity.
    Bench(stratus_bench::BenchArgs),
    /// Run the control plane on its own (clustered shape): REST API and the edges' directory over
    /// PostgreSQL, change events to NATS.
    ControlPlane(crate::cmd_control_plane::ControlPlaneArgs),
    /// Run one stateless edge of the clustered shape (NATS JetStream, Redis, a control plane).
    Edge(crate::cmd_edge::EdgeArgs),
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
    /// MQTT over WebSocket listen address, path /mqtt; `off` disables it [default: 127.0.0.1:8083]
    #[arg(long, env = "STRATUS_WS_LISTEN", value_name = "ADDR|off", value_parser = parse_optional_addr)]
    pub(crate) ws_listen: Option<OptionalAddr>,
    /// MQTT over TLS listen address (e.g. 127.0.0.1:8883); needs --tls-cert/--tls-key or --tls-self-signed
    #[arg(long, env = "STRATUS_MQTTS_LISTEN", value_name = "ADDR")]
    pub(crate) mqtts_listen: Option<SocketAddr>,
    /// MQTT over WebSocket over TLS listen address (e.g. 127.0.0.1:8084), path /mqtt
    #[arg(long, env = "STRATUS_WSS_LISTEN", value_name = "ADDR")]
    pub(crate) wss_listen: Option<SocketAddr>,
    /// TLS certificate chain (PEM) for the TLS listeners; reloaded when the file changes or on SIGHUP
    #[arg(long, env = "STRATUS_TLS_CERT", value_name = "FILE")]
    pub(crate) tls_cert: Option<PathBuf>,
    /// TLS private key (PEM) of --tls-cert
    #[arg(long, env = "STRATUS_TLS_KEY", value_name = "FILE")]
    pub(crate) tls_key: Option<PathBuf>,
    /// CA (PEM) for client certificates: TLS clients must present a certificate it issued (mutual TLS)
    #[arg(long, env = "STRATUS_TLS_CLIENT_CA", value_name = "FILE")]
    pub(crate) tls_client_ca: Option<PathBuf>,
    /// Generate a self-signed certificate for localhost and *.localhost (development only; its path is printed)
    #[arg(long, env = "STRATUS_TLS_SELF_SIGNED")]
    pub(crate) tls_self_signed: bool,
    /// Base domain of tenant endpoints: clients reaching `<tenant>.<DOMAIN>` (TLS SNI or WebSocket Host) belong to `<tenant>`
    #[arg(long, env = "STRATUS_TENANT_DOMAIN", value_name = "DOMAIN")]
    pub(crate) tenant_domain: Option<String>,
    /// Listeners that expect a PROXY protocol v1/v2 header: any of mqtt, mqtts, ws, wss
    #[arg(long, env = "STRATUS_PROXY_PROTOCOL", value_name = "LISTENER", num_args = 1.., value_delimiter = ',', value_parser = parse_listener)]
    pub(crate) proxy_protocol: Vec<ListenerName>,
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
        if let Some(ws) = &self.ws_listen {
            config.ws_listen = ws.0;
        }
        if let Some(addr) = self.mqtts_listen {
            config.mqtts_listen = Some(addr);
        }
        if let Some(addr) = self.wss_listen {
            config.wss_listen = Some(addr);
        }
        if let Some(cert) = &self.tls_cert {
            config.tls.cert = Some(cert.clone());
        }
        if let Some(key) = &self.tls_key {
            config.tls.key = Some(key.clone());
        }
        if let Some(ca) = &self.tls_client_ca {
            config.tls.client_ca = Some(ca.clone());
            config.tls.client_auth = ClientAuth::Required;
        }
        if self.tls_self_signed {
            config.tls.self_signed = true;
        }
        if let Some(domain) = &self.tenant_domain {
            config.tenant_domain = Some(domain.clone());
        }
        if !self.proxy_protocol.is_empty() {
            config.proxy_protocol = self.proxy_protocol.clone();
        }
        config.validate()?;
        Ok(config)
    }
}

/// A listen address or `off`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OptionalAddr(Option<SocketAddr>);

fn parse_optional_addr(s: &str) -> Result<OptionalAddr, String> {
    if s.eq_ignore_ascii_case("off") {
        return Ok(OptionalAddr(None));
    }
    s.parse()
        .map(|a| OptionalAddr(Some(a)))
        .map_err(|e| format!("{e}: use HOST:PORT or off"))
}

fn parse_listener(s: &str) -> Result<ListenerName, String> {
    ListenerName::parse(s)
        .ok_or_else(|| format!("unknown listener {s:?}: use mqtt, mqtts, ws or wss"))
}

/// The embedded control plane of `stratus dev`.
struct EmbeddedControlPlane {
    plane: stratus_control_plane::ControlPlane,
    admin_token: String,
}

/// Opens the control plane's SQLite database under the data directory, makes sure the operator
/// token exists, and creates the default tenant (default effect allow, anonymous clients allowed)
/// and the configured tenants (default effect deny) on first start.
async fn start_control_plane(config: &BrokerConfig) -> anyhow::Result<EmbeddedControlPlane> {
    std::fs::create_dir_all(&config.data_dir).with_context(|| {
        format!(
            "cannot create data directory {} (set another with --data-dir)",
            config.data_dir.display()
        )
    })?;
    let admin_token = stratus_control_plane::ensure_admin_token(&config.data_dir)?;
    let plane =
        stratus_control_plane::open_sqlite(&config.data_dir.join("control-plane.db")).await?;
    let default = stratus_model::TenantId::new(&config.default_tenant)?;
    plane
        .ensure_tenant(&default, stratus_policy::Effect::Allow, true)
        .await?;
    for tenant in &config.tenants {
        let id = stratus_model::TenantId::new(&tenant.id)?;
        plane
            .ensure_tenant(&id, stratus_policy::Effect::Deny, false)
            .await?;
    }
    Ok(EmbeddedControlPlane { plane, admin_token })
}

/// Runs `stratus dev` until SIGINT or SIGTERM.
pub(crate) async fn run_dev(args: DevArgs) -> anyhow::Result<()> {
    let config = args.to_config()?;
    let require_auth = config.require_auth;
    let data_dir = config.data_dir.clone();
    let tenant = config.default_tenant.clone();
    let control_plane = start_control_plane(&config).await?;
    let services = Services {
        directory: control_plane.plane.directory(),
        http: Some(control_plane.plane.router(&control_plane.admin_token)),
        cluster: None,
    };
    let server = RunningServer::start(config, services).await?;
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
    if let Some(addr) = server.ws_addr() {
        println!("  WS    ws://{addr}/mqtt");
    }
    if let Some(addr) = server.mqtts_addr() {
        println!("  MQTTS mqtts://{addr}");
    }
    if let Some(addr) = server.wss_addr() {
        println!("  WSS   wss://{addr}/mqtt");
    }
    if let Some(cert) = server.self_signed_cert() {
        println!(
            "  TLS   self-signed certificate for localhost, *.localhost: {}",
            cert.display()
        );
    }
    println!("  HTTP  http://{http}/healthz");
    println!("  API   http://{http}/api/v1  (docs: http://{http}/api/docs)");
    println!(
        "        operator token: {}  (also in {})",
        control_plane.admin_token,
        data_dir
            .join(stratus_control_plane::ADMIN_TOKEN_FILE)
            .display()
    );
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
    control_plane.plane.close().await;
    Ok(())
}

pub(crate) async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot install the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot install the SIGINT handler")?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}

/// Runs `stratus bench` and prints its summary: JSON on stdout with `--json`, text otherwise.
/// A worker process (started by a parent `stratus bench`) prints nothing: it talks to its parent.
pub(crate) async fn run_bench(args: stratus_bench::BenchArgs) -> anyhow::Result<()> {
    let worker = args.is_worker();
    let json = args.json;
    let summary = stratus_bench::run(args).await?;
    if worker {
        return Ok(());
    }
    if json {
        println!("{}", summary.to_json_pretty());
    } else {
        print!("{summary}");
    }
    Ok(())
}
