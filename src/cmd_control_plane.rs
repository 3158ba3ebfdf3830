//! `stratus control-plane`: the control plane as its own process for the clustered shape. It
//! serves the REST API (`/api/v1`, `/api/openapi.json`, `/api/docs`), the edges' directory
//! (`/internal/v1`) and `/healthz` over PostgreSQL, and publishes every change event to NATS.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use clap::Args;
use stratus_control_plane::ControlPlane;
use tokio::sync::watch;

/// How long NATS may take to accept the first connection.
const NATS_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long PostgreSQL may take to accept a first connection.
const POSTGRES_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long opening the pool and applying the migrations may take once PostgreSQL answered.
const POSTGRES_OPEN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long requests in flight may take to finish after a stop signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Flags of `stratus control-plane`. Each one can also be set with the environment variable
/// shown.
#[derive(Debug, Args)]
pub(crate) struct ControlPlaneArgs {
    /// PostgreSQL URL, e.g. postgres://stratus:PASSWORD@db:5432/stratus (migrations are applied at start)
    #[arg(
        long,
        env = "STRATUS_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub(crate) database_url: String,
    /// NATS server URLs, comma-separated, e.g. nats://n1:4222,nats://n2:4222 (change events go to subject ctl.changes)
    #[arg(
        long,
        env = "STRATUS_NATS_URL",
        value_name = "URL,...",
        value_delimiter = ',',
        required = true,
        hide_env_values = true
    )]
    pub(crate) nats_url: Vec<String>,
    /// HTTP listen address of the API, the edges' /internal/v1 and /healthz
    #[arg(
        long,
        env = "STRATUS_HTTP_LISTEN",
        value_name = "ADDR",
        default_value = "127.0.0.1:8090"
    )]
    pub(crate) http_listen: SocketAddr,
    /// File holding the platform operator token; generated (mode 0600) when missing
    #[arg(long, env = "STRATUS_ADMIN_TOKEN_FILE", value_name = "FILE")]
    pub(crate) admin_token_file: PathBuf,
    /// Create tenant `dev` (everything allowed, anonymous clients accepted) unless it exists
    #[arg(long, env = "STRATUS_DEV_TENANT")]
    pub(crate) dev_tenant: bool,
}

/// `url` with its password replaced by `***`, for messages.
fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let authority_end = url[scheme_end..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| scheme_end + i);
    let Some(at) = url[scheme_end..authority_end]
        .rfind('@')
        .map(|i| scheme_end + i)
    else {
        return url.to_owned();
    };
    match url[scheme_end..at].find(':').map(|i| scheme_end + i) {
        Some(colon) => format!("{}:***{}", &url[..colon], &url[at..]),
        None => url.to_owned(),
    }
}

/// Connects to NATS (any of `urls`), or says why not.
async fn connect_nats(urls: &[String]) -> anyhow::Result<async_nats::Client> {
    let urls: Vec<&str> = urls
        .iter()
        .map(|u| u.trim())
        .filter(|u| !u.is_empty())
        .collect();
    anyhow::ensure!(
        !urls.is_empty(),
        "--nats-url is empty: give at least one NATS server URL"
    );
    let shown = urls.iter().map(|u| redact(u)).collect::<Vec<_>>().join(",");
    let addresses = urls
        .iter()
        .map(|u| u.parse::<async_nats::ServerAddr>())
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("--nats-url {shown} is not a list of NATS URLs"))?;
    let options = async_nats::ConnectOptions::new()
        .name("stratus-control-plane")
        .connection_timeout(NATS_CONNECT_TIMEOUT);
    // Each server gets the connect timeout; the whole attempt one more.
    let overall = NATS_CONNECT_TIMEOUT * u32::try_from(addresses.len() + 1).unwrap_or(u32::MAX);
    match tokio::time::timeout(overall, options.connect(addresses)).await {
        Ok(Ok(client)) => Ok(client),
        Ok(Err(e)) => Err(anyhow::anyhow!("cannot connect to NATS at {shown}: {e}")),
        Err(_) => Err(anyhow::anyhow!(
            "cannot connect to NATS at {shown}: no answer within {} s",
            overall.as_secs()
        )),
    }
}

/// Opens the PostgreSQL database (applying the migrations), or says why not.
async fn open_postgres(url: &str) -> anyhow::Result<ControlPlane> {
    let shown = redact(url);
    anyhow::ensure!(
        url.starts_with("postgres://") || url.starts_with("postgresql://"),
        "--database-url {shown} is not a PostgreSQL URL (postgres://USER:PASSWORD@HOST:PORT/DATABASE)"
    );
    match tokio::time::timeout(
        POSTGRES_CONNECT_TIMEOUT,
        stratus_control_plane::check_postgres(url),
    )
    .await
    {
        Ok(Ok(())) => {}
        Ok(Err(e)) => anyhow::bail!("cannot connect to PostgreSQL at {shown}: {e}"),
        Err(_) => anyhow::bail!(
            "cannot connect to PostgreSQL at {shown}: no answer within {} s",
            POSTGRES_CONNECT_TIMEOUT.as_secs()
        ),
    }
    match tokio::time::timeout(
        POSTGRES_OPEN_TIMEOUT,
        stratus_control_plane::open_postgres(url),
    )
    .await
    {
        Ok(Ok(plane)) => Ok(plane),
        Ok(Err(e)) => Err(anyhow::anyhow!(
            "cannot open the PostgreSQL database at {shown}: {e}"
        )),
        Err(_) => Err(anyhow::anyhow!(
            "cannot open the PostgreSQL database at {shown}: no answer within {} s",
            POSTGRES_OPEN_TIMEOUT.as_secs()
        )),
    }
}

/// `GET /healthz`: 200 while serving, 503 once shutting down.
async fn healthz(State(stopping): State<watch::Receiver<bool>>) -> (StatusCode, &'static str) {
    if *stopping.borrow() {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n")
    } else {
        (StatusCode::OK, "ok\n")
    }
}

async fn stop_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot install the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot install the SIGINT handler")?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}

/// Runs `stratus control-plane` until SIGINT or SIGTERM.
pub(crate) async fn run(args: ControlPlaneArgs) -> anyhow::Result<()> {
    let token_file = args.admin_token_file.clone();
    let admin_token = tokio::task::spawn_blocking(move || {
        stratus_control_plane::ensure_admin_token_file(&token_file)
    })
    .await
    .context("the operator token task failed")??;
    // NATS first: when it is unreachable nothing touches the database.
    let nats = connect_nats(&args.nats_url).await?;
    let plane = open_postgres(&args.database_url).await?;
    if args.dev_tenant {
        let dev = stratus_model::TenantId::new("dev")?;
        plane
            .ensure_tenant(&dev, stratus_policy::Effect::Allow, true)
            .await?;
    }
    let forwarder = plane.forward_changes_to_nats(nats.clone());
    let listener = tokio::net::TcpListener::bind(args.http_listen)
        .await
        .with_context(|| format!("cannot listen on {} (--http-listen)", args.http_listen))?;
    let http = listener.local_addr()?;
    let (stopping_tx, stopping) = watch::channel(false);
    let app = Router::new()
        .route("/healthz", get(healthz))
        .with_state(stopping.clone())
        .merge(plane.router(&admin_token));
    let mut stop_serving = stopping.clone();
    let mut server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop_serving.wait_for(|stop| *stop).await;
            })
            .await
    });

    println!("Stratus control plane is running");
    println!("  API     http://{http}/api/v1  (docs: http://{http}/api/docs)");
    println!("  edges   http://{http}/internal/v1  (operator token)");
    println!("  health  http://{http}/healthz");
    println!("  events  NATS subject {}", stratus_model::CHANGE_SUBJECT);
    println!("  operator token file: {}", args.admin_token_file.display());
    if args.dev_tenant {
        println!("  tenant  dev (everything allowed, anonymous clients accepted)");
    }

    tokio::select! {
        signal = stop_signal() => signal?,
        served = &mut server => {
            return match served {
                Ok(Ok(())) => Err(anyhow::anyhow!("the HTTP server stopped unexpectedly")),
                Ok(Err(e)) => Err(anyhow::anyhow!("the HTTP server failed: {e}")),
                Err(e) => Err(anyhow::anyhow!("the HTTP server task failed: {e}")),
            };
        }
    }
    tracing::info!("signal received: shutting down");
    let _ = stopping_tx.send(true);
    match tokio::time::timeout(SHUTDOWN_GRACE, &mut server).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => tracing::warn!("the HTTP server failed while stopping: {e}"),
        Ok(Err(e)) => tracing::warn!("the HTTP server task failed while stopping: {e}"),
        Err(_) => {
            tracing::warn!(
                "requests still running after {} s were cut off",
                SHUTDOWN_GRACE.as_secs()
            );
            server.abort();
        }
    }
    shutdown(forwarder, nats, plane).await;
    Ok(())
}

/// Publishes the change events still queued, then closes NATS and the database.
async fn shutdown(
    forwarder: stratus_control_plane::ChangeForwarder,
    nats: async_nats::Client,
    plane: ControlPlane,
) {
    let counts = forwarder.stop().await;
    tracing::info!(
        published = counts.published,
        resyncs = counts.resyncs,
        failures = counts.failures,
        "change event forwarder stopped"
    );
    match tokio::time::timeout(SHUTDOWN_GRACE, nats.drain()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!("cannot drain the NATS connection: {e}"),
        Err(_) => tracing::warn!("the NATS connection did not drain within the grace period"),
    }
    plane.close().await;
}
