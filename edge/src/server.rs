//! Assembling and running the embedded broker: open the store, restore state, bind listeners,
//! start background tasks; and the graceful shutdown (stop accepting, tell 5.0 clients 0x8B,
//! wait for connections to detach, flush the store).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use stratus_codec::ReasonCode;
use stratus_model::TenantId;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::auth::Authenticator;
use crate::broker::Broker;
use crate::config::{BrokerConfig, ConfigError};
use crate::listener::{self, LiveConnections, ServerContext};
use crate::store::{Store, StoreError};

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
}

/// A running broker.
#[derive(Debug)]
pub struct RunningServer {
    mqtt_addr: SocketAddr,
    http_addr: SocketAddr,
    broker: Arc<Broker>,
    shutdown_tx: watch::Sender<bool>,
    live: LiveConnections,
    tasks: Vec<JoinHandle<()>>,
    restored: crate::broker::RestoreSummary,
}

impl RunningServer {
    /// Validates `config`, restores state from its data directory, binds the listeners and
    /// starts serving.
    pub async fn start(config: BrokerConfig) -> Result<Self, ServerError> {
        config.validate()?;
        let default_tenant = TenantId::new(&config.default_tenant).map_err(|e| ConfigError {
            key: "default_tenant",
            problem: e.to_string(),
        })?;
        let mqtt = TcpListener::bind(config.mqtt_listen)
            .await
            .map_err(|source| ServerError::Bind {
                flag: "--mqtt-listen",
                addr: config.mqtt_listen,
                source,
            })?;
        let http = TcpListener::bind(config.http_listen)
            .await
            .map_err(|source| ServerError::Bind {
                flag: "--http-listen",
                addr: config.http_listen,
                source,
            })?;
        let data_dir = config.data_dir.clone();
        let durability = config.store.durability;
        let (store, snapshot) =
            tokio::task::spawn_blocking(move || Store::open(&data_dir, durability))
                .await
                .map_err(|e| StoreError::Thread(std::io::Error::other(e)))??;
        let config = Arc::new(config);
        let broker = Arc::new(Broker::new(Arc::clone(&config), store));
        let restored = broker.restore(snapshot);
        broker.tenant(&default_tenant);

        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let live = LiveConnections::default();
        let ctx = Arc::new(ServerContext {
            broker: Arc::clone(&broker),
            auth: Authenticator::new(&config, default_tenant),
            shutdown: shutdown_rx.clone(),
            live: live.clone(),
        });
        let mqtt_addr = listener::local_addr(&mqtt).unwrap_or(config.mqtt_listen);
        let http_addr = http.local_addr().unwrap_or(config.http_listen);
        let mut tasks = vec![
            tokio::spawn(listener::run_tcp(mqtt, ctx)),
            tokio::spawn(Arc::clone(&broker).run_timers()),
        ];
        if config.sys.interval_secs > 0 {
            tasks.push(tokio::spawn(
                Arc::clone(&broker).run_sys(Duration::from_secs(config.sys.interval_secs)),
            ));
        }
        let mut http_shutdown = shutdown_rx.clone();
        tasks.push(tokio::spawn(async move {
            let serve = axum::serve(http, crate::http::router(shutdown_rx)).with_graceful_shutdown(
                async move {
                    let _ = http_shutdown.wait_for(|stop| *stop).await;
                },
            );
            if let Err(e) = serve.await {
                tracing::error!("HTTP server failed: {e}");
            }
        }));
        Ok(Self {
            mqtt_addr,
            http_addr,
            broker,
            shutdown_tx,
            live,
            tasks,
            restored,
        })
    }

    /// The MQTT listener's bound address.
    pub fn mqtt_addr(&self) -> SocketAddr {
        self.mqtt_addr
    }

    /// The HTTP listener's bound address.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
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
