//! Assembling and running the embedded broker: open the store, restore state, check TLS files,
//! bind listeners, start background tasks; and the graceful shutdown (stop accepting, tell 5.0
//! clients 0x8B, wait for connections to detach, flush the store).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use stratus_codec::ReasonCode;
use stratus_model::{Directory, TenantId};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::access::Access;
use crate::broker::Broker;
use crate::config::{BrokerConfig, ConfigError, ListenerName};
use crate::listener::{self, LiveConnections, ServerContext};
use crate::store::{Store, StoreError};
use crate::tls::TlsService;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A configuration value is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A listener address could not be bound.
    #[error("cannot listen on {addr}: choose another address with {flag}")]
    Bind {
        /// The flag that sets this address.
        flag: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The state store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The edge could not join the cluster (NATS, JetStream or Redis).
    #[error(transparent)]
    Cluster(#[from] crate::cluster::ClusterError),
    /// A TLS certificate, key or CA could not be used (the broker refuses to start).
    #[error("TLS set-up failed: {0}")]
    Tls(String),
}

/// Addresses the listeners are bound to.
#[derive(Debug, Clone, Copy)]
struct Addresses {
    mqtt: SocketAddr,
    http: SocketAddr,
    ws: Option<SocketAddr>,
    mqtts: Option<SocketAddr>,
    wss: Option<SocketAddr>,
}

/// What the process composing the edge gives it.
pub struct Services {
    /// The control plane's directory: tenants, devices, credentials and access rules.
    pub directory: Arc<dyn Directory>,
    /// More routes served on the HTTP listener (the control plane's API in `stratus dev`).
    pub http: Option<axum::Router>,
    /// The clustered shape (`stratus edge`): join the cluster instead of keeping state in the
    /// data directory.
    pub cluster: Option<crate::cluster::ClusterSettings>,
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services")
            .field("directory", &self.directory)
            .finish_non_exhaustive()
    }
}

/// A running broker.
#[derive(Debug)]
pub struct RunningServer {
    addrs: Addresses,
    self_signed_cert: Option<PathBuf>,
    broker: Arc<Broker>,
    shutdown_tx: watch::Sender<bool>,
    live: LiveConnections,
    tasks: Vec<JoinHandle<()>>,
    restored: crate::broker::RestoreSummary,
}

impl RunningServer {
    /// Validates `config`, restores state from its data directory, binds the listeners and
    /// starts serving.
    pub async fn start(config: BrokerConfig, services: Services) -> Result<Self, ServerError> {
        config.validate()?;
        let default_tenant = TenantId::new(&config.default_tenant).map_err(|e| ConfigError {
            key: "default_tenant",
            problem: e.to_string(),
        })?;
        let mqtt = bind(config.mqtt_listen, "--mqtt-listen").await?;
        let http = bind(config.http_listen, "--http-listen").await?;
        let ws = bind_optional(config.ws_listen, "--ws-listen").await?;
        let mqtts = bind_optional(config.mqtts_listen, "--mqtts-listen").await?;
        let wss = bind_optional(config.wss_listen, "--wss-listen").await?;
        // TLS files are checked before anything serves: a bad certificate or CA refuses to start.
        let tls = if mqtts.is_some() || wss.is_some() {
            let service = TlsService::new(
                &config.tls,
                &config.tenants,
                config.tenant_domain.as_deref(),
                &config.data_dir,
            )
            .map_err(|e| ServerError::Tls(e.to_string()))?;
            Some(Arc::new(service))
        } else {
            None
        };
        let addrs = Addresses {
            mqtt: listener::local_addr(&mqtt, config.mqtt_listen),
            http: http.local_addr().unwrap_or(config.http_listen),
            ws: ws.as_ref().map(|(l, a)| listener::local_addr(l, *a)),
            mqtts: mqtts.as_ref().map(|(l, a)| listener::local_addr(l, *a)),
            wss: wss.as_ref().map(|(l, a)| listener::local_addr(l, *a)),
        };

        let config = Arc::new(config);
        let mut cluster_tasks = Vec::new();
        let (broker, restored) = match services.cluster {
            // The clustered shape keeps nothing on local disk: retained messages go to Redis,
            // messages through NATS and JetStream.
            Some(settings) => {
                let (link, store, ops) = crate::cluster::ClusterLink::connect(settings).await?;
                let broker = Arc::new(Broker::new(Arc::clone(&config), store));
                broker.set_cluster(Arc::clone(&link));
                cluster_tasks = link.start(&broker, ops);
                (broker, crate::broker::RestoreSummary::default())
            }
            None => {
                let data_dir = config.data_dir.clone();
                let durability = config.store.durability;
                let (store, snapshot) =
                    tokio::task::spawn_blocking(move || Store::open(&data_dir, durability))
                        .await
                        .map_err(|e| StoreError::Thread(std::io::Error::other(e)))??;
                let broker = Arc::new(Broker::new(Arc::clone(&config), store));
                let restored = broker.restore(snapshot);
                (broker, restored)
            }
        };
        let access = Arc::new(Access::new(
            services.directory,
            config.require_auth,
            default_tenant.clone(),
            crate::access::FailureLimits {
                per_client_id: config.limits.max_failed_connects_per_client_id,
                per_address: config.limits.max_failed_connects_per_address,
                window: Duration::from_secs(config.limits.failed_connect_window_secs),
            },
        ));
        if let Some(link) = broker.cluster() {
            link.liveness.set_access(Arc::clone(&access));
            access.share_failures(link.admission().clone());
        }
        // Rules of every tenant with restored state are loaded before anything is delivered or
        // any will goes out; until then a tenant allows nothing.
        broker.tenant(&default_tenant);
        for tenant in broker.tenants() {
            if let Err(e) = access.load_tenant(&tenant).await {
                tracing::warn!(tenant = %tenant.id, "cannot load access rules at start-up ({e}); the tenant allows nothing until they load");
            }
        }
        broker.publish_deferred_wills();

        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let live = LiveConnections::default();
        let self_signed_cert = tls.as_ref().and_then(|t| t.self_signed_cert_path());
        if let Some(tls) = &tls {
            tls.spawn_reloader();
        }
        let ctx = Arc::new(ServerContext {
            broker: Arc::clone(&broker),
            access: Arc::clone(&access),
            tls,
            proxy_protocol: config.proxy_protocol.clone(),
            shutdown: shutdown_rx.clone(),
            live: live.clone(),
        });
        let mut tasks = cluster_tasks;
        tasks.extend([
            tokio::spawn(listener::run(mqtt, ListenerName::Mqtt, Arc::clone(&ctx))),
            tokio::spawn(Arc::clone(&broker).run_timers()),
            tokio::spawn(Arc::clone(&broker).run_alarms()),
            tokio::spawn(Arc::clone(&access).run_revocation(Arc::clone(&broker))),
        ]);
        for (bound, name) in [
            (ws, ListenerName::Ws),
            (mqtts, ListenerName::Mqtts),
            (wss, ListenerName::Wss),
        ] {
            if let Some((l, _)) = bound {
                tasks.push(tokio::spawn(listener::run(l, name, Arc::clone(&ctx))));
            }
        }
        if config.sys.interval_secs > 0 {
            tasks.push(tokio::spawn(
                Arc::clone(&broker).run_sys(Duration::from_secs(config.sys.interval_secs)),
            ));
        }
        let mut http_shutdown = shutdown_rx.clone();
        tasks.push(tokio::spawn(async move {
            let mut router = crate::http::router(shutdown_rx);
            if let Some(extra) = services.http {
                router = router.merge(extra);
            }
            let serve = axum::serve(http, router).with_graceful_shutdown(async move {
                let _ = http_shutdown.wait_for(|stop| *stop).await;
            });
            if let Err(e) = serve.await {
                tracing::error!("HTTP server failed: {e}");
            }
        }));
        Ok(Self {
            addrs,
            self_signed_cert,
            broker,
            shutdown_tx,
            live,
            tasks,
            restored,
        })
    }

    /// The MQTT listener's bound address.
    pub fn mqtt_addr(&self) -> SocketAddr {
        self.addrs.mqtt
    }

    /// The HTTP listener's bound address.
    pub fn http_addr(&self) -> SocketAddr {
        self.addrs.http
    }

    /// The MQTT-over-WebSocket listener's bound address, if enabled.
    pub fn ws_addr(&self) -> Option<SocketAddr> {
        self.addrs.ws
    }

    /// The MQTT-over-TLS listener's bound address, if enabled.
    pub fn mqtts_addr(&self) -> Option<SocketAddr> {
        self.addrs.mqtts
    }

    /// The MQTT-over-WebSocket-over-TLS listener's bound address, if enabled.
    pub fn wss_addr(&self) -> Option<SocketAddr> {
        self.addrs.wss
    }

    /// The generated self-signed certificate clients should trust (`tls.self_signed`).
    pub fn self_signed_cert(&self) -> Option<&Path> {
        self.self_signed_cert.as_deref()
    }

    /// What was restored from the data directory at start-up.
    pub fn restored(&self) -> crate::broker::RestoreSummary {
        self.restored
    }

    /// Graceful shutdown: stop accepting, disconnect clients (5.0: DISCONNECT 0x8B), wait up to
    /// `grace` for them to detach, and flush the store.
    pub async fn shutdown(self, grace: Duration) {
        let _ = self.shutdown_tx.send(true);
        let kicked = self.broker.kick_all(ReasonCode::ServerShuttingDown);
        tracing::info!(connections = kicked, "shutting down: disconnecting clients");
        if tokio::time::timeout(grace, self.live.idle()).await.is_err() {
            tracing::warn!(
                remaining = self.live.count(),
                "some connections did not close in time"
            );
        }
        // The wills of the clients just disconnected go out before the lease (and with it the
        // incarnation's registered wills) is released.
        if let Some(link) = self.broker.cluster() {
            link.liveness.shutdown(link, &self.broker.store).await;
        }
        for task in &self.tasks {
            task.abort();
        }
        let store = self.broker.store.clone();
        if tokio::task::spawn_blocking(move || store.close())
            .await
            .is_err()
        {
            tracing::error!("state store did not close cleanly");
        }
        tracing::info!("state flushed; stopped");
    }
}

/// Pending connections the kernel may queue per listener (the default of 128 overflows when
/// thousands of clients reconnect at once).
const LISTEN_BACKLOG: u32 = 4096;

/// Binds a listener, naming the flag to change when the address is taken.
async fn bind(addr: SocketAddr, flag: &'static str) -> Result<TcpListener, ServerError> {
    let err = |source| ServerError::Bind { flag, addr, source };
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(err)?;
    socket.set_reuseaddr(true).map_err(err)?;
    socket.bind(addr).map_err(err)?;
    socket.listen(LISTEN_BACKLOG).map_err(err)
}

/// Binds an optional listener, keeping its configured address.
async fn bind_optional(
    addr: Option<SocketAddr>,
    flag: &'static str,
) -> Result<Option<(TcpListener, SocketAddr)>, ServerError> {
    match addr {
        Some(addr) => Ok(Some((bind(addr, flag).await?, addr))),
        None => Ok(None),
    }
}
