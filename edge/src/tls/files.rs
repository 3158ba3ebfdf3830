//! Reading and checking certificate, key and CA files (PEM).
//!
//! Every check fails closed with the file and the problem: a missing or unreadable file, no
//! certificate in it, a key that does not belong to the certificate, an end-entity or CA
//! certificate that has already expired. These functions do blocking file I/O: call them at
//! start-up or from a blocking thread.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::crypto::hash::{Context as HashContext, Hash};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::time::ASN1Time;

use super::error::{FileProblem, TlsError};
use crate::config::CertificateFiles;

/// Largest file read: CA bundles are a few hundred KiB; anything bigger is a wrong path.
const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// SHA-256 from the one crypto provider (aws-lc-rs), through rustls.
pub(super) const SHA256: &dyn Hash =
    match rustls::crypto::aws_lc_rs::cipher_suite::TLS13_AES_128_GCM_SHA256.tls13() {
        Some(suite) => suite.common.hash_provider,
        None => panic!("TLS13_AES_128_GCM_SHA256 is a TLS 1.3 suite"),
    };

/// A certificate chain with its signing key, and the DNS names SNI can select it by.
#[derive(Debug, Clone)]
pub(super) struct LoadedCert {
    /// What rustls serves.
    pub(super) key: Arc<CertifiedKey>,
    /// DNS names of the end-entity certificate's subjectAltName, lowercase (may be wildcards).
    pub(super) dns_names: Vec<String>,
}

/// Reads files and hashes everything read, so a reload can tell whether anything changed.
pub(super) struct FileReader {
    digest: Box<dyn HashContext>,
}

impl std::fmt::Debug for FileReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FileReader")
    }
}

impl FileReader {
    pub(super) fn new() -> Self {
        Self {
            digest: SHA256.start(),
        }
    }

    /// SHA-256 over the paths and contents of every file read so far.
    pub(super) fn finish(self) -> Vec<u8> {
        self.digest.finish().as_ref().to_vec()
    }

    /// Reads `path` (at most [`MAX_FILE_BYTES`]).
    pub(super) fn read(&mut self, path: &Path) -> Result<Vec<u8>, TlsError> {
        let file = std::fs::File::open(path).map_err(|e| {
            let problem = match e.kind() {
                std::io::ErrorKind::NotFound => FileProblem::Missing,
                _ => FileProblem::Unreadable(e),
            };
            TlsError::file(path, problem)
        })?;
        let mut bytes = Vec::new();
        file.take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| TlsError::file(path, FileProblem::Unreadable(e)))?;
        if bytes.len() as u64 > MAX_FILE_BYTES {
            return Err(TlsError::file(path, FileProblem::TooLarge(MAX_FILE_BYTES)));
        }
        let name = path.as_os_str().as_encoded_bytes();
        self.digest.update(&(name.len() as u64).to_be_bytes());
        self.digest.update(name);
        self.digest.update(&(bytes.len() as u64).to_be_bytes());
        self.digest.update(&bytes);
        Ok(bytes)
    }

    /// Loads a certificate chain and its key, checking that the key matches, that the
    /// end-entity certificate has not expired and, with `need_dns_name`, that it names at least
    /// one DNS name.
    pub(super) fn certified_key(
        &mut self,
        files: &CertificateFiles,
        provider: &CryptoProvider,
        need_dns_name: bool,
    ) -> Result<LoadedCert, TlsError> {
        let chain = self.certificates(&files.cert)?;
        let Some(end_entity) = chain.first() else {
            return Err(TlsError::file(&files.cert, FileProblem::NoCertificate));
        };
        let parsed = parse(end_entity, 1).map_err(|p| TlsError::file(&files.cert, p))?;
        check_not_expired(&parsed, 1).map_err(|p| TlsError::file(&files.cert, p))?;
        let dns_names = dns_names(&parsed).map_err(|p| TlsError::file(&files.cert, p))?;
        if need_dns_name && dns_names.is_empty() {
            return Err(TlsError::file(&files.cert, FileProblem::NoDnsNames));
        }

        let key_pem = self.read(&files.key)?;
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
            let problem = match e {
                pem::Error::NoItemsFound => FileProblem::NoPrivateKey,
                other => FileProblem::InvalidPem(other.to_string()),
            };
            TlsError::file(&files.key, problem)
        })?;
        let signer = provider
            .key_provider
            .load_private_key(key)
            .map_err(|e| TlsError::file(&files.key, FileProblem::UnsupportedKey(e.to_string())))?;
        let certified = CertifiedKey::new(chain, signer);
        match certified.keys_match() {
            // Unknown: the key cannot report its public half; the handshake will tell.
            Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
            Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
                return Err(TlsError::file(
                    &files.key,
                    FileProblem::KeyMismatch(files.cert.clone()),
                ));
            }
            Err(e) => {
                return Err(TlsError::file(
                    &files.cert,
                    FileProblem::InvalidCertificate {
                        index: 1,
                        reason: e.to_string(),
                    },
                ));
            }
        }
        Ok(LoadedCert {
            key: Arc::new(certified),
            dns_names,
        })
    }

    /// Loads a CA file: at least one certificate, each usable as a trust anchor and not expired.
    pub(super) fn ca_certificates(
        &mut self,
        path: &Path,
    ) -> Result<Vec<CertificateDer<'static>>, TlsError> {
        let certs = self.certificates(path)?;
        let mut trial = RootCertStore::empty();
        for (i, cert) in certs.iter().enumerate() {
            let index = i + 1;
            let parsed = parse(cert, index).map_err(|p| TlsError::file(path, p))?;
            check_not_expired(&parsed, index).map_err(|p| TlsError::file(path, p))?;
            trial.add(cert.clone()).map_err(|e| {
                TlsError::file(
                    path,
                    FileProblem::InvalidCertificate {
                        index,
                        reason: e.to_string(),
                    },
                )
            })?;
        }
        Ok(certs)
    }

    /// Every `CERTIFICATE` block of a PEM file; none is an error.
    fn certificates(&mut self, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
        let bytes = self.read(path)?;
        let certs = CertificateDer::pem_slice_iter(&bytes)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TlsError::file(path, FileProblem::InvalidPem(e.to_string())))?;
        if certs.is_empty() {
            return Err(TlsError::file(path, FileProblem::NoCertificate));
        }
        Ok(certs)
    }
}

/// Parses a DER certificate; `index` is its position in its file, for the message.
pub(super) fn parse<'a>(
    der: &'a CertificateDer<'_>,
    index: usize,
) -> Result<X509Certificate<'a>, FileProblem> {
    x509_parser::parse_x509_certificate(der)
        .map(|(_, cert)| cert)
        .map_err(|e| FileProblem::InvalidCertificate {
            index,
            reason: e.to_string(),
        })
}

fn check_not_expired(cert: &X509Certificate<'_>, index: usize) -> Result<(), FileProblem> {
    let not_after = cert.validity().not_after;
    if not_after.timestamp() < ASN1Time::now().timestamp() {
        return Err(FileProblem::Expired {
            index,
            not_after: not_after.to_string(),
        });
    }
    Ok(())
}

/// The DNS names of a certificate's subjectAltName, lowercase, without a trailing dot.
pub(super) fn dns_names(cert: &X509Certificate<'_>) -> Result<Vec<String>, FileProblem> {
    let san = cert
        .subject_alternative_name()
        .map_err(|e| FileProblem::InvalidCertificate {
            index: 1,
            reason: format!("subjectAltName: {e}"),
        })?;
    let Some(san) = san else {
        return Ok(Vec::new());
    };
    Ok(san
        .value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::DNSName(dns) => Some(dns.trim_end_matches('.').to_ascii_lowercase()),
            _ => None,
        })
        .collect())
}
