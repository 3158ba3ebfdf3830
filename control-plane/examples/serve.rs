//! Serves the control plane API over a fresh SQLite database in a temporary directory, for API
//! fuzzing (schemathesis) and manual poking:
//!
//! ```text
//! cargo run -p stratus-control-plane --example serve -- --port 8089 --token secret-token-1234
//! ```
//!
//! With `--tenant SLUG` it also creates that tenant (default effect allow). Stops on Ctrl-C or
//! SIGTERM, and removes the database.

use std::net::SocketAddr;

use anyhow::{Context, bail};
use tokio::net::TcpListener;

struct Args {
    port: u16,
    token: String,
    tenant: Option<String>,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut port = 0;
    let mut token = None;
    let mut tenant = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--port" => port = value()?.parse().context("--port needs a port number")?,
            "--token" => token = Some(value()?),
            "--tenant" => tenant = Some(value()?),
            other => bail!("unknown argument {other:?}; use --port N --token T [--tenant SLUG]"),
        }
    }
    let token = token.context("--token is required")?;
    Ok(Args {
        port,
        token,
        tenant,
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "stratus_control_plane=info".into()),
        )
        .init();
    let args = parse_args()?;
    let dir = tempfile::tempdir().context("creating a temporary directory")?;
    let control_plane = stratus_control_plane::open_sqlite(&dir.path().join("cp.db")).await?;
    if let Some(slug) = &args.tenant {
        let id = stratus_model::TenantId::new(slug).context("--tenant")?;
        control_plane
            .ensure_tenant(&id, stratus_policy::Effect::Allow, false)
            .await?;
    }
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], args.port)))
        .await
        .with_context(|| format!("binding 127.0.0.1:{}", args.port))?;
    println!("serving on http://{}", listener.local_addr()?);
    axum::serve(listener, control_plane.router(&args.token))
        .with_graceful_shutdown(shutdown())
        .await?;
    control_plane.close().await;
    Ok(())
}

async fn shutdown() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
