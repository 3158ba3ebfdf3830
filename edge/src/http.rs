//! The HTTP side of the edge: `GET /healthz` and `GET /readyz` answer 200 while the broker serves
//! and 503 while it shuts down. The server is only started once the edge is ready (listeners bound
//! and, on a clustered edge, NATS, JetStream and Redis reached), so both say the same today.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use tokio::sync::watch;

/// The HTTP routes.
pub(crate) fn router(shutdown: watch::Receiver<bool>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(healthz))
        .with_state(shutdown)
}

async fn healthz(State(shutdown): State<watch::Receiver<bool>>) -> (StatusCode, &'static str) {
    if *shutdown.borrow() {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n")
    } else {
        (StatusCode::OK, "ok\n")
    }
}
