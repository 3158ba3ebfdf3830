//! Mutual TLS: which CAs a connection trusts, and which tenant a client certificate belongs to.
//!
//! A connection whose SNI name is `<tenant>.<tenant_domain>` trusts the listener-wide CA and that
//! tenant's CA only; any other connection trusts the listener-wide CA only. Each tenant with a CA
//! therefore gets its own `ServerConfig` (built once per snapshot), whose verifier also hints
//! only those CAs to the client. A certificate that fails verification but chains to another
//! tenant's CA is reported as such. After the handshake, the certificate belongs to the tenant if
//! it verifies against that tenant's CA alone, otherwise to the listener-wide CA (`None`).

use std::collections::HashMap;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ResolvesServerCert, WebPkiClientVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, OtherError, RootCertStore,
    ServerConfig, SignatureScheme,
};
use rustls_pki_types::{CertificateDer, UnixTime};
use stratus_model::TenantId;

use super::error::{IssuedForOtherTenant, TlsError};
use crate::config::ClientAuth;

/// A verifier trusting exactly one set of CAs.
type Verifier = Arc<dyn ClientCertVerifier>;

/// The server configurations of one snapshot, by tenant.
#[derive(Debug)]
pub(super) struct Routes {
    /// Connections that name no tenant with a CA. `None` when client certificates are required
    /// but there is no listener-wide CA (such connections are refused).
    listener: Option<Arc<ServerConfig>>,
    /// Connections to a tenant with a CA.
    tenants: HashMap<TenantId, TenantRoute>,
}

#[derive(Debug)]
struct TenantRoute {
    config: Arc<ServerConfig>,
    /// Trusts the tenant's CA only: tells whether a verified certificate is the tenant's.
    own: Verifier,
}

/// The configuration for one connection, and how to attribute its client certificate.
#[derive(Debug)]
pub(super) struct Route<'a> {
    pub(super) config: Option<&'a Arc<ServerConfig>>,
    tenant: Option<(&'a TenantId, &'a Verifier)>,
}

/// The CAs of one snapshot.
#[derive(Debug)]
pub(super) struct TrustAnchors {
    pub(super) listener: Vec<CertificateDer<'static>>,
    pub(super) tenants: Vec<(TenantId, Vec<CertificateDer<'static>>)>,
}

impl Routes {
    /// Builds one `ServerConfig` for the listener-wide trust and one per tenant with a CA, all
    /// serving certificates through `resolver`.
    pub(super) fn new(
        provider: &Arc<CryptoProvider>,
        client_auth: ClientAuth,
        anchors: &TrustAnchors,
        resolver: &Arc<dyn ResolvesServerCert>,
    ) -> Result<Self, TlsError> {
        let mandatory = client_auth == ClientAuth::Required;
        if client_auth == ClientAuth::None {
            return Ok(Self {
                listener: Some(server_config(provider, resolver, None)?),
                tenants: HashMap::new(),
            });
        }
        let mut own = Vec::with_capacity(anchors.tenants.len());
        for (tenant, cas) in &anchors.tenants {
            own.push((tenant.clone(), verifier(provider, cas.iter(), true)?));
        }
        let others: Arc<[(TenantId, Verifier)]> = own.clone().into();

        let listener = if anchors.listener.is_empty() {
            // Nothing could verify a certificate here: never ask for one when optional, refuse
            // the connection when required.
            match mandatory {
                true => None,
                false => Some(server_config(provider, resolver, None)?),
            }
        } else {
            let inner = verifier(provider, anchors.listener.iter(), mandatory)?;
            let checked = TenantAwareVerifier {
                inner,
                requested: None,
                others: Arc::clone(&others),
            };
            Some(server_config(provider, resolver, Some(Arc::new(checked)))?)
        };

        let mut tenants = HashMap::with_capacity(own.len());
        for ((tenant, cas), (_, own)) in anchors.tenants.iter().zip(own) {
            let inner = verifier(provider, anchors.listener.iter().chain(cas), mandatory)?;
            let checked = TenantAwareVerifier {
                inner,
                requested: Some(tenant.clone()),
                others: Arc::clone(&others),
            };
            let config = server_config(provider, resolver, Some(Arc::new(checked)))?;
            tenants.insert(tenant.clone(), TenantRoute { config, own });
        }
        Ok(Self { listener, tenants })
    }

    /// The configuration for a connection to `tenant` (from the SNI name).
    pub(super) fn route(&self, tenant: Option<&TenantId>) -> Route<'_> {
        match tenant.and_then(|t| self.tenants.get_key_value(t)) {
            Some((tenant, route)) => Route {
                config: Some(&route.config),
                tenant: Some((tenant, &route.own)),
            },
            None => Route {
                config: self.listener.as_ref(),
                tenant: None,
            },
        }
    }
}

impl Route<'_> {
    /// The tenant whose CA issued `chain` (end-entity first), which the handshake verified
    /// against this route's CAs; `None` means the listener-wide CA.
    pub(super) fn issuing_tenant(&self, chain: &[CertificateDer<'_>]) -> Option<TenantId> {
        let (tenant, own) = self.tenant?;
        let (end_entity, intermediates) = chain.split_first()?;
        own.verify_client_cert(end_entity, intermediates, UnixTime::now())
            .ok()
            .map(|_| tenant.clone())
    }
}

/// The tenant an SNI name (normalized) addresses: `<tenant>.<domain>`.
pub(super) fn tenant_from_sni(sni: &str, domain: Option<&str>) -> Option<TenantId> {
    let label = sni.strip_suffix(domain?)?.strip_suffix('.')?;
    TenantId::new(label).ok()
}

fn verifier<'a>(
    provider: &Arc<CryptoProvider>,
    cas: impl Iterator<Item = &'a CertificateDer<'static>>,
    mandatory: bool,
) -> Result<Verifier, TlsError> {
    let mut roots = RootCertStore::empty();
    for ca in cas {
        // Every CA was checked when its file was loaded.
        roots
            .add(ca.clone())
            .map_err(|e| TlsError::Config(format!("client CA certificate: {e}")))?;
    }
    let builder =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(provider));
    let builder = match mandatory {
        true => builder,
        false => builder.allow_unauthenticated(),
    };
    builder
        .build()
        .map_err(|e| TlsError::Config(format!("client certificate verifier: {e}")))
}

fn server_config(
    provider: &Arc<CryptoProvider>,
    resolver: &Arc<dyn ResolvesServerCert>,
    verifier: Option<Verifier>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let builder = ServerConfig::builder_with_provider(Arc::clone(provider))
        .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])
        .map_err(|e| TlsError::Config(format!("TLS 1.2 and 1.3: {e}")))?;
    let builder = match verifier {
        Some(v) => builder.with_client_cert_verifier(v),
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(builder.with_cert_resolver(Arc::clone(resolver))))
}

/// Verifies like `inner`; when that fails, tells whether another tenant's CA issued the
/// certificate, so the refusal says so.
#[derive(Debug)]
struct TenantAwareVerifier {
    inner: Verifier,
    requested: Option<TenantId>,
    others: Arc<[(TenantId, Verifier)]>,
}

impl ClientCertVerifier for TenantAwareVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let refused = match self
            .inner
            .verify_client_cert(end_entity, intermediates, now)
        {
            Ok(verified) => return Ok(verified),
            Err(e) => e,
        };
        let issuer = self
            .others
            .iter()
            .filter(|(tenant, _)| Some(tenant) != self.requested.as_ref())
            .find(|(_, v)| v.verify_client_cert(end_entity, intermediates, now).is_ok());
        match issuer {
            Some((tenant, _)) => Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                OtherError(Arc::new(IssuedForOtherTenant {
                    issuer: tenant.clone(),
                })),
            ))),
            None => Err(refused),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(s: &str) -> Option<TenantId> {
        TenantId::new(s).ok()
    }

    #[test]
    fn sni_names_a_tenant_one_label_below_the_domain() {
        let domain = Some("mqtt.example.com");
        assert_eq!(
            tenant_from_sni("acme.mqtt.example.com", domain),
            tenant("acme")
        );
        assert_eq!(tenant_from_sni("mqtt.example.com", domain), None);
        assert_eq!(tenant_from_sni("x.acme.mqtt.example.com", domain), None);
        assert_eq!(tenant_from_sni("acmemqtt.example.com", domain), None);
        assert_eq!(tenant_from_sni("-bad.mqtt.example.com", domain), None);
        assert_eq!(tenant_from_sni("acme.mqtt.example.org", domain), None);
        assert_eq!(tenant_from_sni("acme.mqtt.example.com", None), None);
    }
}
