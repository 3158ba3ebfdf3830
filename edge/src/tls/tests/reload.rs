//! Reloading without a restart: new handshakes get the new files, established connections keep
//! working, a broken file keeps the old certificate serving; triggered by `reload()`, by a file
//! change and by SIGHUP.

use super::*;
use crate::tls::service::ReloadOutcome;
use tokio::time::Instant;

const NAME: &str = "broker.example.com";

/// A service serving `NAME` from `broker.crt` / `broker.key`, and its echo server.
struct Setup {
    ca: Ca,
    old: Leaf,
    files: Files,
    svc: Arc<TlsService>,
    server: EchoServer,
}

async fn setup() -> Setup {
    let files = Files::new();
    let ca = Ca::new("CA");
    let old = ca.server(&[NAME]);
    let pair = files.pair("broker", &old);
    let svc = service(&tls_config(&pair), &[], &files);
    let server = EchoServer::start(Arc::clone(&svc)).await;
    Setup {
        ca,
        old,
        files,
        svc,
        server,
    }
}

impl Setup {
    /// The certificate a new connection is served.
    async fn served_now(&self) -> CertificateDer<'static> {
        let stream = connect(self.server.addr, NAME, client_config(&[&self.ca.der], None))
            .await
            .unwrap();
        served(&stream)
    }

    /// Polls with new connections until `expected` is served (fails after 10 s).
    async fn wait_until_served(&self, expected: &CertificateDer<'static>) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if self.served_now().await == *expected {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the new certificate was not served within 10 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Replaces key and certificate the way certbot does (rename over the old files).
    fn rotate(&self, leaf: &Leaf) {
        self.files.replace("broker.key", &leaf.key_pem);
        self.files.replace("broker.crt", &leaf.cert_pem);
    }
}

#[tokio::test]
async fn reload_serves_the_new_certificate_while_established_connections_keep_working() {
    let s = setup().await;
    let mut established = connect(s.server.addr, NAME, client_config(&[&s.ca.der], None))
        .await
        .unwrap();
    assert_eq!(served(&established), s.old.der);
    echo(&mut established, b"before").await.unwrap();

    let new = s.ca.server(&[NAME]);
    s.rotate(&new);
    // Nothing changes until the files are reloaded.
    assert_eq!(s.served_now().await, s.old.der);
    s.svc.reload().unwrap();

    assert_eq!(s.served_now().await, new.der);
    echo(&mut established, b"after").await.unwrap();
    assert_eq!(served(&established), s.old.der);
}

#[tokio::test]
async fn broken_new_files_keep_the_old_certificate_serving() {
    let s = setup().await;
    let cert = s.files.path("broker.crt");
    let key = s.files.path("broker.key");

    s.files.replace("broker.crt", "garbage\n");
    let err = s.svc.reload().unwrap_err();
    assert!(
        err.to_string().contains(&cert.display().to_string()),
        "{err}"
    );
    assert!(err.to_string().contains("no PEM certificate"), "{err}");
    assert_eq!(s.served_now().await, s.old.der);

    s.files
        .replace("broker.crt", "-----BEGIN CERTIFICATE-----\nAAAA\n");
    let err = s.svc.reload().unwrap_err();
    assert!(
        err.to_string().contains(&cert.display().to_string()),
        "{err}"
    );
    assert!(err.to_string().contains("invalid PEM"), "{err}");
    assert_eq!(s.served_now().await, s.old.der);

    // A new certificate without its key.
    let new = s.ca.server(&[NAME]);
    s.files.replace("broker.crt", &new.cert_pem);
    let err = s.svc.reload().unwrap_err();
    assert!(
        err.to_string().contains(&key.display().to_string()),
        "{err}"
    );
    assert!(err.to_string().contains("does not match"), "{err}");
    assert_eq!(s.served_now().await, s.old.der);

    // An expired certificate.
    let expired = s.ca.issue(NAME, &[NAME], |p| {
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        p.not_after = rcgen::date_time_ymd(2021, 1, 1);
    });
    s.rotate(&expired);
    let err = s.svc.reload().unwrap_err();
    assert!(err.to_string().contains("expired"), "{err}");
    assert_eq!(s.served_now().await, s.old.der);

    // Fixed: served.
    s.rotate(&new);
    s.svc.reload().unwrap();
    assert_eq!(s.served_now().await, new.der);
}

#[tokio::test]
async fn reload_without_changes_keeps_the_snapshot() {
    let s = setup().await;
    assert_eq!(s.svc.reload().unwrap(), ReloadOutcome::Unchanged);
    s.rotate(&s.ca.server(&[NAME]));
    assert_eq!(s.svc.reload().unwrap(), ReloadOutcome::Reloaded);
    assert_eq!(s.svc.reload().unwrap(), ReloadOutcome::Unchanged);
}

#[tokio::test]
async fn replaced_files_are_reloaded_by_the_watcher() {
    let s = setup().await;
    s.svc.spawn_reloader();
    let renamed = s.ca.server(&[NAME]);
    s.rotate(&renamed);
    s.wait_until_served(&renamed.der).await;

    // Rewritten in place, too.
    let rewritten = s.ca.server(&[NAME]);
    s.files.write("broker.key", &rewritten.key_pem);
    s.files.write("broker.crt", &rewritten.cert_pem);
    s.wait_until_served(&rewritten.der).await;
}

#[cfg(unix)]
#[tokio::test]
async fn kubernetes_style_symlink_swap_is_reloaded_by_the_watcher() {
    use std::os::unix::fs::symlink;
    let files = Files::new();
    let ca = Ca::new("CA");
    // dir/tls.crt -> ..data/tls.crt, ..data -> ..v1: a mounted secret.
    fn publish(files: &Files, version: &str, leaf: &Leaf) {
        std::fs::create_dir(files.path(version)).unwrap();
        std::fs::write(files.path(version).join("tls.crt"), &leaf.cert_pem).unwrap();
        std::fs::write(files.path(version).join("tls.key"), &leaf.key_pem).unwrap();
        symlink(version, files.path("..data_tmp")).unwrap();
        std::fs::rename(files.path("..data_tmp"), files.path("..data")).unwrap();
    }
    let old = ca.server(&[NAME]);
    publish(&files, "..v1", &old);
    symlink("..data/tls.crt", files.path("tls.crt")).unwrap();
    symlink("..data/tls.key", files.path("tls.key")).unwrap();
    let pair = CertificateFiles {
        cert: files.path("tls.crt"),
        key: files.path("tls.key"),
    };
    let svc = service(&tls_config(&pair), &[], &files);
    let server = EchoServer::start(Arc::clone(&svc)).await;
    svc.spawn_reloader();
    let s = Setup {
        ca,
        old,
        files,
        svc,
        server,
    };
    assert_eq!(s.served_now().await, s.old.der);

    let new = s.ca.server(&[NAME]);
    publish(&s.files, "..v2", &new);
    s.wait_until_served(&new.der).await;
}

#[tokio::test]
async fn sighup_reloads_the_files() {
    let s = setup().await;
    // Changed before the watcher starts, so only the signal can pick it up.
    let new = s.ca.server(&[NAME]);
    s.rotate(&new);
    s.svc.spawn_reloader();
    let status = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    s.wait_until_served(&new.der).await;
}

#[tokio::test]
async fn reload_applies_a_rotated_tenant_ca() {
    let files = Files::new();
    let server_ca = Ca::new("Server CA");
    let old_ca = Ca::new("Tenant A CA 2024");
    let new_ca = Ca::new("Tenant A CA 2025");
    let default = files.pair("server", &server_ca.server(&["*.mqtt.example.com"]));
    let tls = TlsConfig {
        client_auth: ClientAuth::Required,
        ..tls_config(&default)
    };
    let tenants = [tenant("a", Some(files.write("a-ca.pem", &old_ca.pem)))];
    let svc = service(&tls, &tenants, &files);
    let mut server = EchoServer::start(Arc::clone(&svc)).await;
    let old_device = old_ca.client("old-device");
    let new_device = new_ca.client("new-device");
    let sni = "a.mqtt.example.com";

    let config = |leaf: &Leaf| client_config(&[&server_ca.der], Some(leaf));
    let _kept = connect(server.addr, sni, config(&old_device))
        .await
        .unwrap();
    assert!(server.outcome().await.is_ok());
    let _ = connect(server.addr, sni, config(&new_device)).await;
    assert!(server.outcome().await.is_err());

    files.replace("a-ca.pem", &new_ca.pem);
    svc.reload().unwrap();

    let _ = connect(server.addr, sni, config(&old_device)).await;
    let err = server.outcome().await.unwrap_err();
    assert!(
        matches!(
            err,
            TlsError::ClientCertificateInvalid(rustls::CertificateError::UnknownIssuer)
        ),
        "{err:?}"
    );
    let _new = connect(server.addr, sni, config(&new_device))
        .await
        .unwrap();
    let seen = server.outcome().await.unwrap();
    assert_eq!(
        seen.client_cert.unwrap().common_name.as_deref(),
        Some("new-device")
    );
}
