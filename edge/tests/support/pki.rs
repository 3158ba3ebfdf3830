//! A throw-away PKI for the transport interop suites: CAs, server and client certificates made
//! by rcgen at test time, written as PEM files into a temporary directory that both the broker
//! and the client processes read, and the broker settings that serve them.
//!
//! The layout every suite uses: the default certificate names only `localhost`; a second
//! certificate for `*.mqtt.test` is chosen by SNI, so a client reaching `acme.mqtt.test` checks
//! the wildcard certificate and one reaching any other name gets the `localhost` one.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::ClientConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use stratus_edge::BrokerConfig;
use stratus_edge::config::{CertificateFiles, TenantConfig};

/// Base domain of tenant endpoints in these tests (`.test` is reserved and never resolves).
pub const DOMAIN: &str = "mqtt.test";
/// The wildcard name of the SNI-chosen certificate.
pub const WILDCARD: &str = "*.mqtt.test";

/// A certificate authority that can issue server and client certificates.
pub struct Ca {
    params: CertificateParams,
    key: KeyPair,
    /// The CA certificate (DER).
    pub der: CertificateDer<'static>,
    /// The CA certificate (PEM).
    pub pem: String,
}

/// An issued certificate and its private key.
pub struct Leaf {
    /// The certificate (DER).
    pub der: CertificateDer<'static>,
    /// The certificate (PEM).
    pub cert_pem: String,
    /// Its private key (PKCS#8 PEM).
    pub key_pem: String,
}

impl Ca {
    /// A new self-signed CA named `name`.
    pub fn new(name: &str) -> Self {
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Self {
            params,
            key,
            der: cert.der().clone(),
            pem: cert.pem(),
        }
    }

    fn issue(&self, cn: &str, names: &[&str], usage: ExtendedKeyUsagePurpose) -> Leaf {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().unwrap();
        let cert = params
            .signed_by(&key, &Issuer::from_params(&self.params, &self.key))
            .unwrap();
        Leaf {
            der: cert.der().clone(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// A server certificate for `names` (DNS names, wildcards allowed).
    pub fn server(&self, names: &[&str]) -> Leaf {
        self.issue(names[0], names, ExtendedKeyUsagePurpose::ServerAuth)
    }

    /// A client certificate with subject CN `cn`.
    pub fn client(&self, cn: &str) -> Leaf {
        self.issue(cn, &[], ExtendedKeyUsagePurpose::ClientAuth)
    }
}

/// A temporary directory of PEM files.
pub struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    /// A new empty directory.
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// The path of `name` in the directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The path of `name` as a string, for command lines.
    pub fn arg(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }

    /// Writes `contents` to `name` by renaming a temporary file over it, so a reader never sees
    /// half a file. Returns the path.
    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let tmp = self.dir.path().join(format!(".{name}.tmp"));
        std::fs::write(&tmp, contents).unwrap();
        let path = self.path(name);
        std::fs::rename(&tmp, &path).unwrap();
        path
    }

    /// Writes a certificate as `<stem>.crt` and its key as `<stem>.key`.
    pub fn write_leaf(&self, stem: &str, leaf: &Leaf) {
        self.write(&format!("{stem}.key"), &leaf.key_pem);
        self.write(&format!("{stem}.crt"), &leaf.cert_pem);
    }

    /// The directory itself.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// What a suite's broker serves: the server CA, and its files (`ca.pem`, `default.crt/key` for
/// `localhost`, `tenants.crt/key` for `*.mqtt.test`).
pub struct ServerPki {
    /// The CA that issued both server certificates.
    pub ca: Ca,
    /// The PEM files.
    pub files: Files,
}

impl ServerPki {
    /// Issues both server certificates and writes every file.
    pub fn new() -> Self {
        let ca = Ca::new("Stratus test server CA");
        let files = Files::new();
        files.write("ca.pem", &ca.pem);
        files.write_leaf("default", &ca.server(&["localhost"]));
        files.write_leaf("tenants", &ca.server(&[WILDCARD]));
        Self { ca, files }
    }

    /// Turns on the MQTT-over-TLS and WSS listeners with these certificates, the `mqtt.test`
    /// tenant domain, and `tenants` (each without a client CA).
    pub fn configure(&self, config: &mut BrokerConfig, tenants: &[&str]) {
        config.mqtts_listen = Some("127.0.0.1:0".parse().unwrap());
        config.wss_listen = Some("127.0.0.1:0".parse().unwrap());
        config.tenant_domain = Some(DOMAIN.to_owned());
        config.tls.cert = Some(self.files.path("default.crt"));
        config.tls.key = Some(self.files.path("default.key"));
        config.tls.certificates = vec![CertificateFiles {
            cert: self.files.path("tenants.crt"),
            key: self.files.path("tenants.key"),
        }];
        config.tenants = tenants
            .iter()
            .map(|id| TenantConfig {
                id: (*id).to_owned(),
                client_ca: None,
            })
            .collect();
    }
}

/// Makes aws-lc-rs the process-wide rustls provider. rumqttc's dependencies also compile ring
/// into the test binary, and rustls refuses to guess between two providers.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// A rustls client configuration trusting `roots` only, presenting `identity` if given.
pub fn client_config(roots: &[&CertificateDer<'static>], identity: Option<&Leaf>) -> ClientConfig {
    let mut store = rustls::RootCertStore::empty();
    for root in roots {
        store.add((*root).clone()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(store);
    match identity {
        Some(leaf) => builder
            .with_client_auth_cert(
                vec![leaf.der.clone()],
                PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    }
}
