//! What can go wrong in the TLS layer: a certificate, key or CA file that cannot be used (at
//! start-up or on reload), and a connection whose handshake is refused.
//!
//! File errors always name the file and the problem, so the operator can fix it from the log line
//! alone. Connection errors name what the peer got wrong; the caller logs them once.

use std::io;
use std::path::PathBuf;

use stratus_model::TenantId;

/// An error of the TLS layer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TlsError {
    /// A certificate, key or CA file cannot be used.
    #[error("{}: {problem}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: FileProblem,
    },
    /// The TLS settings do not fit together (names the setting and the fix).
    #[error("TLS configuration: {0}")]
    Config(String),
    /// The development certificate could not be generated.
    #[error("cannot generate the self-signed certificate: {0}")]
    SelfSigned(String),
    /// The TLS handshake failed (bad ClientHello, no common parameters, the client refused our
    /// certificate, the connection closed...).
    #[error("TLS handshake failed: {0}")]
    Handshake(#[source] io::Error),
    /// The client did not finish the handshake in time.
    #[error("TLS handshake did not finish within {0:?}")]
    HandshakeTimeout(std::time::Duration),
    /// No configured certificate matches the server name and there is no default certificate.
    #[error("no certificate for server name {}", display_sni(.sni))]
    NoCertificate {
        /// The SNI server name the client asked for.
        sni: Option<String>,
    },
    /// Client certificates are required, but no CA applies to this connection (no listener-wide
    /// CA, and the server name does not name a tenant with a CA).
    #[error("client certificates are required but no client CA applies to server name {}", display_sni(.sni))]
    NoClientCa {
        /// The SNI server name the client asked for.
        sni: Option<String>,
    },
    /// Client certificates are required and the client presented none.
    #[error("client certificate required but none presented")]
    ClientCertificateMissing,
    /// The client's certificate did not verify against the CAs of this connection.
    #[error("client certificate refused: {0}")]
    ClientCertificateInvalid(rustls::CertificateError),
    /// The client's certificate chains to another tenant's CA.
    #[error(
        "client certificate refused: issued by tenant {issuer}'s CA, but the server name {} does \
         not name that tenant", display_sni(.sni)
    )]
    ClientCertificateForOtherTenant {
        /// The tenant whose CA issued the certificate.
        issuer: TenantId,
        /// The SNI server name the client asked for.
        sni: Option<String>,
    },
}

/// Why a certificate, key or CA file cannot be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FileProblem {
    /// The file does not exist.
    #[error("file not found")]
    Missing,
    /// The file exists but cannot be read.
    #[error("cannot read the file: {0}")]
    Unreadable(#[source] io::Error),
    /// The file is larger than any certificate or key file should be.
    #[error("file is larger than {0} bytes; is this the right file?")]
    TooLarge(u64),
    /// The PEM text is malformed.
    #[error("invalid PEM: {0}")]
    InvalidPem(String),
    /// No `CERTIFICATE` block in the file.
    #[error("no PEM certificate found (expected a -----BEGIN CERTIFICATE----- block)")]
    NoCertificate,
    /// A certificate in the file cannot be parsed.
    #[error("certificate #{index} is not a valid X.509 certificate: {reason}")]
    InvalidCertificate {
        /// Position in the file, from 1.
        index: usize,
        /// The parser's complaint.
        reason: String,
    },
    /// The (end-entity or CA) certificate's validity period is over.
    #[error("certificate #{index} expired on {not_after}")]
    Expired {
        /// Position in the file, from 1.
        index: usize,
        /// The certificate's notAfter.
        not_after: String,
    },
    /// The certificate names no DNS name, so no SNI name can select it.
    #[error(
        "the certificate has no DNS name in its subjectAltName, so no server name can select it"
    )]
    NoDnsNames,
    /// No private key block in the file.
    #[error("no PEM private key found (expected a PKCS#8, PKCS#1 or SEC1 PRIVATE KEY block)")]
    NoPrivateKey,
    /// The key cannot be used for signing by our crypto provider.
    #[error("unsupported private key: {0}")]
    UnsupportedKey(String),
    /// The key is not the key of the certificate.
    #[error("the private key does not match the certificate in {}", .0.display())]
    KeyMismatch(PathBuf),
    /// The file could not be written (self-signed certificate).
    #[error("cannot write the file: {0}")]
    Unwritable(#[source] io::Error),
}

impl TlsError {
    /// A file error.
    pub(super) fn file(path: impl Into<PathBuf>, problem: FileProblem) -> Self {
        Self::File {
            path: path.into(),
            problem,
        }
    }

    /// Classifies an I/O error from the handshake: rustls reports client-certificate failures
    /// as `InvalidData` errors wrapping a `rustls::Error`.
    pub(super) fn from_handshake(e: io::Error, sni: Option<&str>) -> Self {
        let Some(tls) = e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        else {
            return Self::Handshake(e);
        };
        match tls {
            rustls::Error::NoCertificatesPresented => Self::ClientCertificateMissing,
            rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other)) => {
                match other.0.downcast_ref::<IssuedForOtherTenant>() {
                    Some(found) => Self::ClientCertificateForOtherTenant {
                        issuer: found.issuer.clone(),
                        sni: sni.map(str::to_owned),
                    },
                    None => Self::ClientCertificateInvalid(rustls::CertificateError::Other(
                        other.clone(),
                    )),
                }
            }
            rustls::Error::InvalidCertificate(cert) => Self::ClientCertificateInvalid(cert.clone()),
            _ => Self::Handshake(e),
        }
    }
}

/// Carried inside a rustls certificate error when a client certificate failed verification for
/// this connection but chains to another tenant's CA.
#[derive(Debug, thiserror::Error)]
#[error("certificate issued by tenant {issuer}'s CA")]
pub(super) struct IssuedForOtherTenant {
    pub(super) issuer: TenantId,
}

fn display_sni(sni: &Option<String>) -> String {
    match sni {
        Some(name) => format!("{name:?}"),
        None => "(none sent)".to_owned(),
    }
}
