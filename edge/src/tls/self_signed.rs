//! The development certificate (`--tls-self-signed`): a self-signed certificate for `localhost`,
//! `*.localhost` (and `*.<tenant_domain>` when set), generated with rcgen and kept under
//! `<data_dir>/tls/` so clients can trust it once. A later start reuses it while it is valid for
//! at least another [`RENEW_BEFORE_SECS`] and names the same hosts.
//!
//! rustls (webpki), NSS and OpenSSL refuse a wildcard followed by a single label, so
//! `*.localhost` alone does not cover `acme.localhost` for most clients: each configured tenant
//! also gets its name, `<tenant>.localhost` (and `<tenant>.<tenant_domain>`). Adding a tenant
//! therefore regenerates the certificate.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use stratus_model::TenantId;
use x509_parser::time::ASN1Time;

use super::error::{FileProblem, TlsError};
use super::files::{FileReader, dns_names, parse};
use crate::config::CertificateFiles;

/// Lifetime of a generated certificate.
const VALIDITY_SECS: u64 = 365 * 24 * 3600;
/// A certificate expiring sooner than this is regenerated at start-up.
const RENEW_BEFORE_SECS: i64 = 30 * 24 * 3600;
/// File names inside `<data_dir>/tls/`.
const CERT_FILE: &str = "self-signed-cert.pem";
const KEY_FILE: &str = "self-signed-key.pem";

/// Makes sure `<data_dir>/tls/` holds a usable self-signed certificate and returns its files.
/// Blocking file I/O: start-up only.
pub(super) fn ensure(
    data_dir: &Path,
    tenant_domain: Option<&str>,
    tenants: &[TenantId],
) -> Result<CertificateFiles, TlsError> {
    let dir = data_dir.join("tls");
    let files = CertificateFiles {
        cert: dir.join(CERT_FILE),
        key: dir.join(KEY_FILE),
    };
    let mut names = vec!["localhost".to_owned(), "*.localhost".to_owned()];
    names.extend(tenants.iter().map(|t| format!("{t}.localhost")));
    if let Some(domain) = tenant_domain {
        names.push(format!("*.{domain}"));
        names.extend(tenants.iter().map(|t| format!("{t}.{domain}")));
    }
    names.sort();
    names.dedup();
    match reusable(&files, &names) {
        Ok(true) => {
            tracing::debug!(cert = %files.cert.display(), "reusing the self-signed certificate");
            return Ok(files);
        }
        Ok(false) => {}
        Err(e) => tracing::info!("generating a new self-signed certificate: {e}"),
    }
    generate(&dir, &files, &names)?;
    Ok(files)
}

/// True if the existing files hold a certificate for exactly `names` that stays valid long
/// enough; false if there is none; an error says why an existing one is not reused.
fn reusable(files: &CertificateFiles, names: &[String]) -> Result<bool, TlsError> {
    if !files.cert.exists() && !files.key.exists() {
        return Ok(false);
    }
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let loaded = FileReader::new().certified_key(files, &provider, true)?;
    let Some(der) = loaded.key.cert.first() else {
        return Ok(false);
    };
    let cert = parse(der, 1).map_err(|p| TlsError::file(&files.cert, p))?;
    let have: BTreeSet<String> = dns_names(&cert)
        .map_err(|p| TlsError::file(&files.cert, p))?
        .into_iter()
        .collect();
    let want: BTreeSet<String> = names.iter().cloned().collect();
    if have != want {
        return Err(TlsError::SelfSigned(format!(
            "{} names {have:?}, wanted {want:?}",
            files.cert.display()
        )));
    }
    let remaining = cert.validity().not_after.timestamp() - ASN1Time::now().timestamp();
    if remaining < RENEW_BEFORE_SECS {
        return Err(TlsError::SelfSigned(format!(
            "{} expires on {}",
            files.cert.display(),
            cert.validity().not_after
        )));
    }
    Ok(true)
}

fn generate(dir: &Path, files: &CertificateFiles, names: &[String]) -> Result<(), TlsError> {
    let failed = |e: rcgen::Error| TlsError::SelfSigned(e.to_string());
    let mut params = rcgen::CertificateParams::new(names.to_vec()).map_err(failed)?;
    // Clients reaching the broker by loopback address verify it against an IP address name.
    for ip in [
        std::net::IpAddr::from([127, 0, 0, 1]),
        std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
    ] {
        params.subject_alt_names.push(rcgen::SanType::IpAddress(ip));
    }
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Stratus development certificate");
    let now = ASN1Time::now().to_datetime();
    params.not_before = now - std::time::Duration::from_secs(3600);
    params.not_after = now + std::time::Duration::from_secs(VALIDITY_SECS);
    let key = rcgen::KeyPair::generate().map_err(failed)?;
    let cert = params.self_signed(&key).map_err(failed)?;

    std::fs::create_dir_all(dir).map_err(|e| TlsError::file(dir, FileProblem::Unwritable(e)))?;
    write_atomically(&files.key, key.serialize_pem().as_bytes(), true)?;
    write_atomically(&files.cert, cert.pem().as_bytes(), false)?;
    tracing::info!(cert = %files.cert.display(), "generated a self-signed TLS certificate");
    Ok(())
}

/// Writes through a temporary file and a rename, so a reader never sees half a file. Keys are
/// readable by the owner only.
fn write_atomically(path: &Path, contents: &[u8], secret: bool) -> Result<(), TlsError> {
    let tmp = PathBuf::from(format!("{}.tmp", path.display()));
    let unwritable = |e| TlsError::file(path, FileProblem::Unwritable(e));
    // A leftover from an interrupted write would keep its old permissions.
    let _ = std::fs::remove_file(&tmp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut file = options.open(&tmp).map_err(unwritable)?;
    file.write_all(contents).map_err(unwritable)?;
    file.sync_all().map_err(unwritable)?;
    std::fs::rename(&tmp, path).map_err(unwritable)
}
