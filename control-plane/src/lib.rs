//! `stratus-control-plane`: tenants, devices, credentials, access rules and API keys, stored in
//! PostgreSQL (clustered shape) or SQLite (`stratus dev`), served as a REST API with an OpenAPI
//! document, and read by the edge through [`stratus_model::Directory`].
//!
//! ```no_run
//! # async fn dev(data_dir: &std::path::Path) -> Result<(), stratus_control_plane::Error> {
//! use stratus_control_plane::{ensure_admin_token, open_sqlite};
//!
//! let token = ensure_admin_token(data_dir)?;
//! let control_plane = open_sqlite(&data_dir.join("control-plane.db")).await?;
//! let dev = stratus_model::TenantId::new("dev").expect("a valid slug");
//! control_plane
//!     .ensure_tenant(&dev, stratus_policy::Effect::Allow, true)
//!     .await?;
//! let directory = control_plane.directory(); // for the edge
//! let app = control_plane.router(&token); // serves /api/...
//! # let _ = (directory, app);
//! # Ok(())
//! # }
//! ```
//!
//! Architecture invariants: the control plane never speaks MQTT; the edge reads it only through
//! [`Directory`] (in process in `stratus dev`; over `/internal/v1` and NATS subject
//! [`stratus_model::CHANGE_SUBJECT`] in the clustered shape) and its change events; an API key never reads or
//! changes another tenant; secrets (passwords, API key secrets, the operator token) are stored
//! only as hashes and never logged.

mod admin_token;
mod api;
mod events;
mod password;
mod secret;
mod store;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use stratus_model::{Directory, TenantId};

pub use admin_token::{ADMIN_TOKEN_FILE, ensure_admin_token, ensure_admin_token_file};
pub use api::{AppState, DOCS_PATH, OPENAPI_PATH, openapi, router};
pub use events::{ChangeForwarder, ForwarderCounts, forward_changes};
pub use password::{PasswordError, PasswordHash, hash_password};
pub use secret::Secret;
pub use store::{
    AclRule, ApiKey, ApiKeyAuth, ApiKeyScope, Device, DevicePatch, JwtKey, KeyAlgorithm,
    MAX_PAGE_LIMIT, NewAclRule, NewApiKey, NewDevice, NewJwtKey, NewTenant, Page, PageRequest,
    RuleAction, RuleEffect, Store, StoreError, Tenant, TenantPatch, TenantStatus,
};

/// Why the control plane could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database could not be opened, migrated or written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The operator token file could not be read or written.
    #[error("admin token file {}: {source}", path.display())]
    AdminToken {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The operator token file holds no usable token (delete it to generate a new one).
    #[error(
        "admin token file {} holds no usable token (at least 16 printable characters); delete it to generate a new one",
        path.display()
    )]
    AdminTokenMalformed {
        /// The file.
        path: PathBuf,
    },
    /// The operating system's random number generator failed.
    #[error("no randomness available: {0}")]
    Random(getrandom::Error),
}

/// An open control plane: its store, what the edge reads, and the HTTP API.
#[derive(Debug, Clone)]
pub struct ControlPlane {
    store: Arc<Store>,
}

/// Opens (creating when missing) the SQLite database at `path` for `stratus dev`, applying the
/// migrations.
pub async fn open_sqlite(path: &Path) -> Result<ControlPlane, Error> {
    Ok(ControlPlane {
        store: Arc::new(Store::open_sqlite(path).await?),
    })
}

/// Connects to PostgreSQL at `url` (e.g. `postgres://user@host:5432/stratus`), applying the
/// migrations.
pub async fn open_postgres(url: &str) -> Result<ControlPlane, Error> {
    Ok(ControlPlane {
        store: Arc::new(Store::open_postgres(url).await?),
    })
}

/// Opens one connection to PostgreSQL at `url` and closes it again: a quick answer to "is the
/// server reachable and does it accept these credentials" ([`open_postgres`] keeps retrying a
/// refused connection until its pool's acquire timeout).
pub async fn check_postgres(url: &str) -> Result<(), Error> {
    use sqlx::Connection;
    let connection = sqlx::PgConnection::connect(url)
        .await
        .map_err(StoreError::Database)?;
    connection.close().await.map_err(StoreError::Database)?;
    Ok(())
}

impl ControlPlane {
    /// The HTTP API (`/api/v1/...`, `/api/openapi.json`, `/api/docs`) with `admin_token` as the
    /// platform operator token.
    pub fn router(&self, admin_token: &str) -> axum::Router {
        router(AppState::new(Arc::clone(&self.store), admin_token))
    }

    /// What the edge reads: tenants, devices, rules, JWT keys and change events.
    pub fn directory(&self) -> Arc<dyn Directory> {
        Arc::clone(&self.store) as Arc<dyn Directory>
    }

    /// Starts publishing every change event to NATS (subject [`stratus_model::CHANGE_SUBJECT`])
    /// for the edges of the clustered shape; see [`forward_changes`].
    pub fn forward_changes_to_nats(&self, nats: async_nats::Client) -> ChangeForwarder {
        forward_changes(self.store.changes(), nats)
    }

    /// The store, for callers that provision without HTTP.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Creates tenant `id` with this default effect and anonymous access unless it exists (an
    /// existing tenant is left as the operator set it). True when it was created.
    pub async fn ensure_tenant(
        &self,
        id: &TenantId,
        default_effect: stratus_policy::Effect,
        allow_anonymous: bool,
    ) -> Result<bool, Error> {
        let new = NewTenant::new(id.clone(), default_effect.into(), allow_anonymous);
        Ok(self.store.ensure_tenant(&new).await?)
    }

    /// Closes the database connections.
    pub async fn close(&self) {
        self.store.close().await;
    }
}
