//! The HTTP side of the edge: `GET /healthz` answers 200 while the broker serves and 503 while it
//! shuts down.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use tokio::sync::watch;

/// The HTTP routes.
pub(crate) fn router(shutdown: watch::Receiver<bool>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .with_state(shutdown)
}

async fn healthz(State(shutdown): State<watch::Receiver<bool>>) -> (StatusCode, &'static str) {
    if *shutdown.borrow() {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n")
    } else {
        (StatusCode::OK, "ok\n")
    }
}
