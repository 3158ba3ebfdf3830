//! [`TlsService`]: the TLS side of the `mqtts` and `wss` listeners. Built once at start-up from
//! the TLS settings; accepts connections (SNI certificate choice, per-tenant client-certificate
//! trust, client identity) and reloads its files without a restart.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use rustls::crypto::CryptoProvider;
use stratus_model::TenantId;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};
use tokio_rustls::LazyConfigAcceptor;

use super::client_auth::tenant_from_sni;
use super::error::TlsError;
use super::identity::client_certificate;
use super::reloader::ReloaderHandle;
use super::self_signed;
use super::snapshot::{Snapshot, Sources};
use super::sni::normalize;
use crate::config::{TenantConfig, TlsConfig};
use crate::listener::ClientCertificate;

/// How long a client has for the whole handshake, ClientHello included.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Certificates, client-certificate trust and the handshake.
#[derive(Debug)]
pub(crate) struct TlsService {
    /// The files the settings name.
    sources: Sources,
    /// aws-lc-rs, explicitly: nothing depends on a process-default provider.
    provider: Arc<CryptoProvider>,
    /// Lowercase, without leading or trailing dots.
    tenant_domain: Option<String>,
    /// What new handshakes use.
    snapshot: ArcSwap<Snapshot>,
    /// One reload at a time, so an older reading never replaces a newer one.
    reload_lock: Mutex<()>,
    /// The generated development certificate, for clients to trust.
    self_signed_cert: Option<PathBuf>,
    /// The file watcher and SIGHUP task, stopped when the service is dropped.
    pub(super) reloader: ReloaderHandle,
}

/// A connection after a successful handshake.
#[derive(Debug)]
pub(crate) struct TlsAccepted<S = TcpStream> {
    /// The encrypted stream.
    pub(crate) stream: tokio_rustls::server::TlsStream<S>,
    /// The SNI server name, lowercase without a trailing dot.
    pub(crate) sni: Option<String>,
    /// The verified client certificate, if the client presented one.
    pub(crate) client_cert: Option<ClientCertificate>,
}

impl TlsService {
    /// Reads and checks every certificate, key and CA file (generating the self-signed
    /// certificate under `<data_dir>/tls/` first if asked to). Any problem is an error naming
    /// the file: the broker must not start. Blocking file I/O.
    pub(crate) fn new(
        tls: &TlsConfig,
        tenants: &[TenantConfig],
        tenant_domain: Option<&str>,
        data_dir: &Path,
    ) -> Result<Self, TlsError> {
        let tenant_domain = tenant_domain
            .map(|d| d.trim_matches('.').to_ascii_lowercase())
            .filter(|d| !d.is_empty());
        let self_signed = match tls.self_signed {
            true => {
                // Invalid tenant ids are reported by `Sources::new`.
                let ids: Vec<TenantId> = tenants
                    .iter()
                    .filter_map(|t| TenantId::new(&t.id).ok())
                    .collect();
                Some(self_signed::ensure(
                    data_dir,
                    tenant_domain.as_deref(),
                    &ids,
                )?)
            }
            false => None,
        };
        let self_signed_cert = self_signed
            .as_ref()
            .map(|files| std::path::absolute(&files.cert).unwrap_or_else(|_| files.cert.clone()));
        let sources = Sources::new(tls, tenants, self_signed)?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let snapshot = Snapshot::load(&sources, &provider)?;
        Ok(Self {
            sources,
            provider,
            tenant_domain,
            snapshot: ArcSwap::from_pointee(snapshot),
            reload_lock: Mutex::new(()),
            self_signed_cert,
            reloader: ReloaderHandle::default(),
        })
    }

    /// The generated development certificate (absolute path), if `tls.self_signed` is on.
    pub(crate) fn self_signed_cert_path(&self) -> Option<PathBuf> {
        self.self_signed_cert.clone()
    }

    /// Every certificate, key and CA file in use.
    pub(crate) fn files(&self) -> Vec<PathBuf> {
        self.sources.files()
    }

    /// Runs the server side of the handshake on `stream` (a TCP stream, or a wrapper such as a
    /// PROXY-protocol stream). The ClientHello is read first: its SNI name picks the
    /// certificate and, for `<tenant>.<tenant_domain>`, the tenant whose CA is trusted
    /// alongside the listener-wide CA. Bounded by [`HANDSHAKE_TIMEOUT`].
    pub(crate) async fn accept<S>(&self, stream: S) -> Result<TlsAccepted<S>, TlsError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
        let acceptor = LazyConfigAcceptor::new(rustls::server::Acceptor::default(), stream);
        let start = timeout_at(deadline, acceptor)
            .await
            .map_err(|_| TlsError::HandshakeTimeout(HANDSHAKE_TIMEOUT))?
            .map_err(TlsError::Handshake)?;
        let sni = start.client_hello().server_name().map(normalize);

        let snapshot = self.snapshot.load_full();
        if snapshot.certs.resolve(sni.as_deref()).is_none() {
            return Err(TlsError::NoCertificate { sni });
        }
        let tenant = sni
            .as_deref()
            .and_then(|name| tenant_from_sni(name, self.tenant_domain.as_deref()));
        let route = snapshot.routes.route(tenant.as_ref());
        let Some(config) = route.config else {
            return Err(TlsError::NoClientCa { sni });
        };
        let stream = timeout_at(deadline, start.into_stream(Arc::clone(config)))
            .await
            .map_err(|_| TlsError::HandshakeTimeout(HANDSHAKE_TIMEOUT))?
            .map_err(|e| TlsError::from_handshake(e, sni.as_deref()))?;

        let chain = stream.get_ref().1.peer_certificates().unwrap_or_default();
        let client_cert = match chain.first() {
            Some(end_entity) => {
                let issuer = route.issuing_tenant(chain);
                let described = client_certificate(end_entity, issuer)
                    .map_err(TlsError::ClientCertificateInvalid)?;
                Some(described)
            }
            None => None,
        };
        Ok(TlsAccepted {
            stream,
            sni,
            client_cert,
        })
    }

    /// Re-reads every file and, if all are valid and any changed, makes new handshakes use
    /// them; connections already established keep what they negotiated. Unchanged files keep
    /// the current snapshot (and with it the session-resumption caches). If any file is broken,
    /// the previous files keep serving and the error names the broken one. Blocking file I/O:
    /// from async code, call it through `spawn_blocking`.
    pub(crate) fn reload(&self) -> Result<ReloadOutcome, TlsError> {
        let _one_at_a_time = self.reload_lock.lock();
        let fresh = Snapshot::load(&self.sources, &self.provider)?;
        if fresh.digest == self.snapshot.load().digest {
            return Ok(ReloadOutcome::Unchanged);
        }
        self.snapshot.store(Arc::new(fresh));
        Ok(ReloadOutcome::Reloaded)
    }
}

/// What a successful [`TlsService::reload`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReloadOutcome {
    /// New handshakes use the files just read.
    Reloaded,
    /// The files are as before; nothing was swapped.
    Unchanged,
}
