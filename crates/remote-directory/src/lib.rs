//! `stratus-remote-directory`: the edge's [`Directory`] when the control plane runs in another
//! process (`stratus control-plane`, the clustered shape).
//!
//! Reads are GET requests to the control plane's `/internal/v1/...` routes with the operator
//! token, one per question, each with a timeout; any failure (no answer, timeout, an unexpected
//! status, an unreadable body) is a [`DirectoryError`], so the edge refuses the CONNECT with
//! "server unavailable" and never allows on a failed read. Change events arrive over NATS on
//! [`CHANGE_SUBJECT`] and are re-broadcast to [`Directory::changes`] receivers, with
//! [`ChangeEvent::Resync`] after the NATS connection was interrupted (see `events.rs`).
//!
//! ```no_run
//! # async fn edge() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use stratus_remote_directory::{RemoteDirectory, RemoteDirectoryConfig};
//!
//! let nats = async_nats::connect("nats://127.0.0.1:4222").await?;
//! let config = RemoteDirectoryConfig {
//!     url: "http://127.0.0.1:8090".to_owned(),
//!     token: tokio::fs::read_to_string("/etc/stratus/admin-token").await?,
//!     request_timeout: Duration::from_secs(2),
//! };
//! let directory = RemoteDirectory::connect(config, nats).await?;
//! let acme = stratus_model::TenantId::new("acme")?;
//! # use stratus_model::Directory;
//! let tenant = directory.tenant(&acme).await?;
//! # let _ = tenant;
//! # Ok(())
//! # }
//! ```

mod events;
mod http;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use stratus_model::{
    AclRuleRecord, CHANGE_SUBJECT, ChangeEvent, DeviceRecord, Directory, DirectoryError,
    JwtKeyRecord, TenantId, TenantRecord,
};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

pub use events::EventCounts;

use http::{ControlPlaneClient, RequestFailure};

/// How many change events a slow receiver may fall behind before it sees `Lagged` (and then
/// drops every cached answer), as in the control plane's own channel.
const EVENT_CAPACITY: usize = 1024;

/// Where the control plane is and how to talk to it.
#[derive(Clone)]
pub struct RemoteDirectoryConfig {
    /// Base URL of the control plane's HTTP listener: `http(s)://host:port`.
    pub url: String,
    /// The platform operator token (surrounding white space is ignored, so a token file's
    /// contents can be passed as they are).
    pub token: String,
    /// How long one request (connecting included) may take.
    pub request_timeout: Duration,
}

impl fmt::Debug for RemoteDirectoryConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteDirectoryConfig")
            .field("url", &self.url)
            .field("token", &"..")
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

/// Why [`RemoteDirectory::connect`] failed.
#[derive(Debug, thiserror::Error)]
pub enum RemoteDirectoryError {
    /// The URL does not parse or is not `http(s)://host:port`.
    #[error("control plane URL {url:?} is not valid: {reason}")]
    InvalidUrl {
        /// The configured URL.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// The token is empty or cannot be sent in an HTTP header.
    #[error(
        "the control plane token is empty or holds characters an HTTP header cannot carry; \
         use the operator token of the control plane"
    )]
    TokenMalformed,
    /// The HTTP client could not be built (TLS set-up).
    #[error("cannot build the HTTP client for the control plane: {0}")]
    Client(String),
    /// The control plane did not answer.
    #[error("cannot reach the control plane at {url}: {reason}")]
    Unreachable {
        /// The configured URL.
        url: String,
        /// What failed.
        reason: String,
    },
    /// The control plane refused the token.
    #[error(
        "the control plane at {url} refused the token (HTTP {status}): use its operator token \
         (the file given to `stratus control-plane --admin-token-file`)"
    )]
    TokenRefused {
        /// The configured URL.
        url: String,
        /// 401 (unknown token) or 403 (an API key, not the operator token).
        status: u16,
    },
    /// Something answered, but not as a Stratus control plane does.
    #[error(
        "{url} does not answer as a Stratus control plane ({reason}); check the URL and that \
         the control plane's version serves /internal/v1"
    )]
    NotAControlPlane {
        /// The configured URL.
        url: String,
        /// What it answered.
        reason: String,
    },
    /// The NATS subscription for change events failed.
    #[error("cannot subscribe to NATS subject {subject} for control-plane change events: {reason}")]
    Subscribe {
        /// The subject.
        subject: &'static str,
        /// What failed.
        reason: String,
    },
}

/// A [`Directory`] answered by a control plane in another process.
pub struct RemoteDirectory {
    api: ControlPlaneClient,
    changes: broadcast::Sender<ChangeEvent>,
    counters: Arc<events::Counters>,
    relay: JoinHandle<()>,
}

impl fmt::Debug for RemoteDirectory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteDirectory")
            .field("url", &self.api.base())
            .field("events", &self.counters.snapshot())
            .finish_non_exhaustive()
    }
}

impl Drop for RemoteDirectory {
    fn drop(&mut self) {
        self.relay.abort();
    }
}

impl RemoteDirectory {
    /// Checks the control plane answers (one authenticated request) and subscribes to
    /// [`CHANGE_SUBJECT`]; errors name what failed. Must be called inside a tokio runtime (it
    /// starts the task that relays change events; dropping the directory stops it).
    pub async fn connect(
        config: RemoteDirectoryConfig,
        nats: async_nats::Client,
    ) -> Result<Arc<Self>, RemoteDirectoryError> {
        let api = ControlPlaneClient::new(&config)?;
        check_control_plane(&api).await?;
        let connects = nats.statistics().connects.load(Ordering::Relaxed);
        let subscriber =
            nats.subscribe(CHANGE_SUBJECT)
                .await
                .map_err(|e| RemoteDirectoryError::Subscribe {
                    subject: CHANGE_SUBJECT,
                    reason: e.to_string(),
                })?;
        let (changes, _) = broadcast::channel(EVENT_CAPACITY);
        let counters = Arc::new(events::Counters::default());
        let relay = events::Relay {
            nats,
            subscriber: Some(subscriber),
            sender: changes.clone(),
            counters: Arc::clone(&counters),
            connects,
        };
        tracing::info!(
            url = api.base(),
            subject = CHANGE_SUBJECT,
            "directory: remote control plane"
        );
        Ok(Arc::new(Self {
            api,
            changes,
            counters,
            relay: tokio::spawn(relay.run()),
        }))
    }

    /// What the change-event relay has seen so far.
    pub fn event_counts(&self) -> EventCounts {
        self.counters.snapshot()
    }

    /// GETs `/internal/v1/tenants/{tenant}[/{route}]`: `None` on 404.
    async fn tenant_get<T: serde::de::DeserializeOwned>(
        &self,
        tenant: &TenantId,
        route: Option<&str>,
        query: &[(&str, &str)],
    ) -> Result<Option<T>, DirectoryError> {
        let segments: &[&str] = match route {
            None => &["tenants", tenant.as_str()],
            Some(route) => &["tenants", tenant.as_str(), route],
        };
        self.api
            .get(segments, query)
            .await
            .map_err(|failure| read_failed(segments, &failure))
    }

    /// Like [`RemoteDirectory::tenant_get`] for a list: 404 is an error, not "none".
    async fn tenant_list<T: serde::de::DeserializeOwned>(
        &self,
        tenant: &TenantId,
        route: &str,
        query: &[(&str, &str)],
    ) -> Result<Vec<T>, DirectoryError> {
        self.tenant_get(tenant, Some(route), query)
            .await?
            .ok_or_else(|| {
                read_failed(
                    &["tenants", tenant.as_str(), route],
                    &RequestFailure::Status(reqwest::StatusCode::NOT_FOUND),
                )
            })
    }
}

/// The one request `connect` makes.
async fn check_control_plane(api: &ControlPlaneClient) -> Result<(), RemoteDirectoryError> {
    let url = api.base().to_owned();
    match api.get::<serde_json::Value>(&["ping"], &[]).await {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(RemoteDirectoryError::NotAControlPlane {
            url,
            reason: "GET /internal/v1/ping answered 404".to_owned(),
        }),
        Err(RequestFailure::Transport(reason)) => {
            Err(RemoteDirectoryError::Unreachable { url, reason })
        }
        Err(RequestFailure::Status(status))
            if status == reqwest::StatusCode::UNAUTHORIZED
                || status == reqwest::StatusCode::FORBIDDEN =>
        {
            Err(RemoteDirectoryError::TokenRefused {
                url,
                status: status.as_u16(),
            })
        }
        Err(failure) => Err(RemoteDirectoryError::NotAControlPlane {
            url,
            reason: format!("GET /internal/v1/ping {failure}"),
        }),
    }
}

fn read_failed(segments: &[&str], failure: &RequestFailure) -> DirectoryError {
    DirectoryError(format!(
        "control plane GET {}: {failure}",
        ControlPlaneClient::describe_route(segments)
    ))
}

#[async_trait::async_trait]
impl Directory for RemoteDirectory {
    async fn tenant(&self, id: &TenantId) -> Result<Option<TenantRecord>, DirectoryError> {
        self.tenant_get(id, None, &[]).await
    }

    async fn device_by_username(
        &self,
        tenant: &TenantId,
        username: &str,
    ) -> Result<Option<DeviceRecord>, DirectoryError> {
        self.tenant_get(
            tenant,
            Some("device-by-username"),
            &[("username", username)],
        )
        .await
    }

    async fn device_by_certificate(
        &self,
        tenant: &TenantId,
        fingerprint: &str,
        subject: &str,
    ) -> Result<Option<DeviceRecord>, DirectoryError> {
        self.tenant_get(
            tenant,
            Some("device-by-certificate"),
            &[("fingerprint", fingerprint), ("subject", subject)],
        )
        .await
    }

    async fn devices_claiming_client_id(
        &self,
        tenant: &TenantId,
        client_id: &str,
    ) -> Result<Vec<DeviceRecord>, DirectoryError> {
        self.tenant_list(
            tenant,
            "devices-claiming-client-id",
            &[("client_id", client_id)],
        )
        .await
    }

    async fn acl_rules(&self, tenant: &TenantId) -> Result<Vec<AclRuleRecord>, DirectoryError> {
        self.tenant_list(tenant, "acl-rules", &[]).await
    }

    async fn jwt_keys(&self, tenant: &TenantId) -> Result<Vec<JwtKeyRecord>, DirectoryError> {
        self.tenant_list(tenant, "jwt-keys", &[]).await
    }

    fn changes(&self) -> broadcast::Receiver<ChangeEvent> {
        self.changes.subscribe()
    }
}
