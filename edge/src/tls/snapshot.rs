//! One consistent set of TLS material: the certificates by SNI name and the server
//! configurations per tenant, all read from the files at one moment.
//!
//! [`Sources`] is what the configuration names (fixed for the life of the process);
//! [`Snapshot::load`] reads and checks every file and builds everything, or fails with the first
//! broken file. The service swaps whole snapshots, so a handshake never mixes old and new files.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::ResolvesServerCert;
use stratus_model::TenantId;

use super::client_auth::{Routes, TrustAnchors};
use super::error::TlsError;
use super::files::FileReader;
use super::sni::{CertIndex, SniResolver};
use crate::config::{CertificateFiles, ClientAuth, TenantConfig, TlsConfig};

/// The files the TLS settings name.
#[derive(Debug, Clone)]
pub(super) struct Sources {
    /// Served when no other certificate matches the SNI name.
    default: Option<CertificateFiles>,
    /// Chosen by SNI name, in configuration order.
    extra: Vec<CertificateFiles>,
    /// Trusted for client certificates on every connection.
    client_ca: Option<PathBuf>,
    /// Trusted for client certificates on connections to that tenant.
    tenant_cas: Vec<(TenantId, PathBuf)>,
    client_auth: ClientAuth,
}

impl Sources {
    /// Checks that the settings fit together. `self_signed` is the generated development
    /// certificate, if requested: the default certificate unless `tls.cert` is set.
    pub(super) fn new(
        tls: &TlsConfig,
        tenants: &[TenantConfig],
        self_signed: Option<CertificateFiles>,
    ) -> Result<Self, TlsError> {
        let mut default = match (&tls.cert, &tls.key) {
            (Some(cert), Some(key)) => Some(CertificateFiles {
                cert: cert.clone(),
                key: key.clone(),
            }),
            (None, None) => None,
            _ => {
                return Err(TlsError::Config(
                    "tls.cert and tls.key (--tls-cert, --tls-key) must be given together".into(),
                ));
            }
        };
        let mut extra = tls.certificates.clone();
        if let Some(generated) = self_signed {
            match default {
                None => default = Some(generated),
                Some(_) => extra.push(generated),
            }
        }
        if default.is_none() && extra.is_empty() {
            return Err(TlsError::Config(
                "no certificate: set tls.cert and tls.key (--tls-cert, --tls-key), \
                 tls.certificates, or tls.self_signed (--tls-self-signed)"
                    .into(),
            ));
        }

        let mut seen = HashSet::new();
        let mut tenant_cas = Vec::new();
        for tenant in tenants {
            let id = TenantId::new(&tenant.id).map_err(|e| {
                TlsError::Config(format!("tenants: {:?} is not a tenant id: {e}", tenant.id))
            })?;
            if !seen.insert(id.clone()) {
                return Err(TlsError::Config(format!(
                    "tenants: {id} is declared more than once"
                )));
            }
            if let Some(ca) = &tenant.client_ca {
                tenant_cas.push((id, ca.clone()));
            }
        }
        if tls.client_auth != ClientAuth::None && tls.client_ca.is_none() && tenant_cas.is_empty() {
            return Err(TlsError::Config(
                "tls.client_auth asks for client certificates but no CA is configured: set \
                 tls.client_ca (--tls-client-ca) or a tenant's client_ca"
                    .into(),
            ));
        }
        Ok(Self {
            default,
            extra,
            client_ca: tls.client_ca.clone(),
            tenant_cas,
            client_auth: tls.client_auth,
        })
    }

    /// Every file read by [`Snapshot::load`].
    pub(super) fn files(&self) -> Vec<PathBuf> {
        let mut files = Vec::new();
        for pair in self.default.iter().chain(&self.extra) {
            files.push(pair.cert.clone());
            files.push(pair.key.clone());
        }
        files.extend(self.client_ca.iter().cloned());
        files.extend(self.tenant_cas.iter().map(|(_, path)| path.clone()));
        files
    }
}

/// Certificates and server configurations built from one reading of the files.
pub(super) struct Snapshot {
    /// Server certificates by SNI name.
    pub(super) certs: Arc<CertIndex>,
    /// Server configurations by tenant.
    pub(super) routes: Routes,
    /// SHA-256 over every file's path and contents.
    pub(super) digest: Vec<u8>,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("digest", &super::identity::hex(&self.digest))
            .finish_non_exhaustive()
    }
}

impl Snapshot {
    /// Reads and checks every file. Blocking file I/O.
    pub(super) fn load(
        sources: &Sources,
        provider: &Arc<CryptoProvider>,
    ) -> Result<Self, TlsError> {
        let mut reader = FileReader::new();
        let default = sources
            .default
            .as_ref()
            .map(|files| reader.certified_key(files, provider, false))
            .transpose()?;
        let extra = sources
            .extra
            .iter()
            .map(|files| reader.certified_key(files, provider, true))
            .collect::<Result<Vec<_>, _>>()?;
        let listener = match &sources.client_ca {
            Some(path) => reader.ca_certificates(path)?,
            None => Vec::new(),
        };
        let tenants = sources
            .tenant_cas
            .iter()
            .map(|(id, path)| Ok((id.clone(), reader.ca_certificates(path)?)))
            .collect::<Result<Vec<_>, TlsError>>()?;

        let certs = Arc::new(CertIndex::new(default.as_ref(), &extra));
        let resolver: Arc<dyn ResolvesServerCert> = Arc::new(SniResolver(Arc::clone(&certs)));
        let anchors = TrustAnchors { listener, tenants };
        let routes = Routes::new(provider, sources.client_auth, &anchors, &resolver)?;
        Ok(Self {
            certs,
            routes,
            digest: reader.finish(),
        })
    }
}
