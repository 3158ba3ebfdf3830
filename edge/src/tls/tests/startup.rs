//! Start-up refuses broken files with a message naming the file and the problem; the
//! self-signed development certificate is generated once and reused.

use super::*;
use crate::tls::error::FileProblem;

/// The start-up error for `tls` (and `tenants`), which must name `file`.
fn refused(tls: &TlsConfig, tenants: &[TenantConfig], files: &Files, file: &Path) -> TlsError {
    let err = TlsService::new(tls, tenants, Some(DOMAIN), files.data_dir()).unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains(&file.display().to_string()),
        "{message:?} should name {}",
        file.display()
    );
    err
}

fn problem(err: &TlsError) -> &FileProblem {
    match err {
        TlsError::File { problem, .. } => problem,
        other => panic!("expected a file error, got {other:?}"),
    }
}

#[test]
fn missing_certificate_file_is_named() {
    let files = Files::new();
    let ca = Ca::new("CA");
    let mut tls = basic(&files, &ca, ClientAuth::None);
    let missing = files.path("nowhere.crt");
    tls.cert = Some(missing.clone());
    let err = refused(&tls, &[], &files, &missing);
    assert!(matches!(problem(&err), FileProblem::Missing), "{err}");
    assert!(err.to_string().contains("file not found"));
}

#[test]
fn missing_key_file_is_named() {
    let files = Files::new();
    let ca = Ca::new("CA");
    let mut tls = basic(&files, &ca, ClientAuth::None);
    let missing = files.path("nowhere.key");
    tls.key = Some(missing.clone());
    let err = refused(&tls, &[], &files, &missing);
    assert!(matches!(problem(&err), FileProblem::Missing), "{err}");
}

#[test]
fn unreadable_certificate_file_is_named() {
    let files = Files::new();
    let ca = Ca::new("CA");
    let mut tls = basic(&files, &ca, ClientAuth::None);
    // A directory cannot be read as a file, whatever the permissions of the test user.
    let dir = files.path("a-directory.crt");
    std::fs::create_dir(&dir).unwrap();
    tls.cert = Some(dir.clone());
    let err = refused(&tls, &[], &files, &dir);
    assert!(matches!(problem(&err), FileProblem::Unreadable(_)), "{err}");
}

#[test]
fn file_without_a_certificate_is_named() {
    let files = Files::new();
    let ca = Ca::new("CA");
    let mut tls = basic(&files, &ca, ClientAuth::None);
    let garbage = files.write("garbage.crt", "this is not a certificate\n");
    tls.cert = Some(garbage.clone());
    let err = refused(&tls, &[], &files, &garbage);
    assert!(matches!(problem(&err), FileProblem::NoCertificate), "{err}");

    // A key where the certificate should be is no certificate either.
    let leaf = ca.server(&["x.example.com"]);
    let key_as_cert = files.write("key-as-cert.crt", &leaf.key_pem);
    tls.cert = Some(key_as_cert.clone());
    let err = refused(&tls, &[], &files, &key_as_cert);
    assert!(matches!(problem(&err), FileProblem::NoCertificate), "{err}");
}

#[test]
fn key_file_without_a_key_is_named() {
    let files = Files::new();
    let ca = Ca::new("CA");
    let mut tls = basic(&files, &ca, ClientAuth::None);
    let leaf = ca.server(&["x.example.com"]);
    let cert_as_key = files.write("cert-as-key.key", &leaf.cert_pem);
    tls.key = Some(cert_as_key.clone());
    let err = refused(&tls, &[], &files, &cert_as_key);
    assert!(matches!(problem(&err), FileProblem::NoPrivateKey), "{err}");
}

#[test]
fn key_of_another_certificate_is_named() {
    let files = Files::new();
    let ca = Ca::new("CA");
    let one = ca.server(&["one.example.com"]);
    let other = ca.server(&["other.example.com"]);
    let cert = files.write("one.crt", &one.cert_pem);
    let key = files.write("other.key", &other.key_pem);
    let tls = tls_config(&CertificateFiles {
        cert: cert.clone(),
        key: key.clone(),
    });
    let err = refused(&tls, &[], &files, &key);
    assert!(
        matches!(problem(&err), FileProblem::KeyMismatch(c) if *c == cert),
        "{err}"
    );
    assert!(err.to_string().contains("does not match"), "{err}");
}

#[test]
fn expired_server_certificate_is_refused_at_start_up() {
    let files = Files::new();
    let ca = Ca::new("CA");
    let expired = ca.issue("old.example.com", &["old.example.com"], |p| {
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        p.not_after = rcgen::date_time_ymd(2021, 1, 1);
    });
    let pair = files.pair("old", &expired);
    let err = refused(&tls_config(&pair), &[], &files, &pair.cert);
    assert!(
        matches!(problem(&err), FileProblem::Expired { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("expired"), "{err}");

    // The same as an extra certificate.
    let mut tls = basic(&files, &ca, ClientAuth::None);
    tls.certificates = vec![pair.clone()];
    let err = refused(&tls, &[], &files, &pair.cert);
    assert!(
        matches!(problem(&err), FileProblem::Expired { .. }),
        "{err}"
    );
}

#[test]
fn extra_certificate_without_dns_names_is_refused() {
    let files = Files::new();
    let ca = Ca::new("CA");
    let nameless = files.pair("nameless", &ca.client("no names"));
    let mut tls = basic(&files, &ca, ClientAuth::None);
    tls.certificates = vec![nameless.clone()];
    let err = refused(&tls, &[], &files, &nameless.cert);
    assert!(matches!(problem(&err), FileProblem::NoDnsNames), "{err}");
}

#[test]
fn missing_listener_client_ca_is_named() {
    let files = Files::new();
    let ca = Ca::new("CA");
    let mut tls = basic(&files, &ca, ClientAuth::Required);
    let missing = files.path("clients-ca.pem");
    tls.client_ca = Some(missing.clone());
    let err = refused(&tls, &[], &files, &missing);
    assert!(matches!(problem(&err), FileProblem::Missing), "{err}");
}

#[test]
fn tenant_ca_file_without_a_certificate_is_named() {
    let files = Files::new();
    let ca = Ca::new("CA");
    let tls = basic(&files, &ca, ClientAuth::Optional);
    let empty = files.write("tenant-a-ca.pem", "");
    let tenants = [tenant("a", Some(empty.clone()))];
    let err = refused(&tls, &tenants, &files, &empty);
    assert!(matches!(problem(&err), FileProblem::NoCertificate), "{err}");
}

#[test]
fn expired_client_ca_is_named() {
    let files = Files::new();
    let ca = Ca::new("CA");
    let old_ca = Ca::with("Old CA", |p| {
        p.not_before = rcgen::date_time_ymd(2019, 1, 1);
        p.not_after = rcgen::date_time_ymd(2020, 1, 1);
    });
    let mut tls = basic(&files, &ca, ClientAuth::Required);
    let path = files.write("old-ca.pem", &old_ca.pem);
    tls.client_ca = Some(path.clone());
    let err = refused(&tls, &[], &files, &path);
    assert!(
        matches!(problem(&err), FileProblem::Expired { .. }),
        "{err}"
    );
}

#[test]
fn inconsistent_settings_are_configuration_errors() {
    let files = Files::new();
    let ca = Ca::new("CA");
    let dir = files.data_dir();

    let mut cert_only = basic(&files, &ca, ClientAuth::None);
    cert_only.key = None;
    let err = TlsService::new(&cert_only, &[], None, dir).unwrap_err();
    assert!(matches!(err, TlsError::Config(_)), "{err}");

    let nothing = TlsConfig::default();
    let err = TlsService::new(&nothing, &[], None, dir).unwrap_err();
    assert!(matches!(err, TlsError::Config(_)), "{err}");

    // Client certificates asked for, but nothing to verify them with: fail closed.
    let no_ca = basic(&files, &ca, ClientAuth::Required);
    let err = TlsService::new(&no_ca, &[tenant("a", None)], None, dir).unwrap_err();
    assert!(matches!(err, TlsError::Config(_)), "{err}");

    let tls = basic(&files, &ca, ClientAuth::None);
    let err = TlsService::new(&tls, &[tenant("Not A Tenant", None)], None, dir).unwrap_err();
    assert!(err.to_string().contains("Not A Tenant"), "{err}");
}

#[tokio::test]
async fn self_signed_certificate_is_generated_reused_and_trusted() {
    let files = Files::new();
    let tls = TlsConfig {
        self_signed: true,
        ..TlsConfig::default()
    };
    let tenants = [tenant("a", None)];
    let first = TlsService::new(&tls, &tenants, Some(DOMAIN), files.data_dir()).unwrap();
    let path = first.self_signed_cert_path().unwrap();
    assert!(path.is_absolute());
    assert!(path.starts_with(files.data_dir().join("tls")));
    let pem = std::fs::read_to_string(&path).unwrap();

    // A second start reuses it.
    let second = service(&tls, &tenants, &files);
    assert_eq!(second.self_signed_cert_path(), Some(path.clone()));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), pem);

    // Clients trusting the file reach localhost, each tenant below it, and the tenant domain.
    let der = CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
    let server = EchoServer::start(second).await;
    for name in [
        "localhost",
        "a.localhost",
        "a.mqtt.example.com",
        "b.mqtt.example.com",
    ] {
        let mut stream = connect(server.addr, name, client_config(&[&der], None))
            .await
            .unwrap();
        echo(&mut stream, b"dev").await.unwrap();
    }

    // Another tenant domain needs other names: a new certificate.
    let third = TlsService::new(&tls, &tenants, Some("other.example"), files.data_dir()).unwrap();
    assert_eq!(third.self_signed_cert_path(), Some(path.clone()));
    assert_ne!(std::fs::read_to_string(&path).unwrap(), pem);
}

#[cfg(unix)]
#[test]
fn self_signed_key_is_private_to_the_owner() {
    use std::os::unix::fs::PermissionsExt;
    let files = Files::new();
    let tls = TlsConfig {
        self_signed: true,
        ..TlsConfig::default()
    };
    TlsService::new(&tls, &[], None, files.data_dir()).unwrap();
    let key = files.data_dir().join("tls").join("self-signed-key.pem");
    let mode = std::fs::metadata(key).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "mode {mode:o}");
}
