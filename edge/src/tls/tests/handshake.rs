//! Certificate choice by SNI, protocol versions, and what a client sees.

use super::*;

/// A service with a default certificate, an exact-name certificate and a wildcard certificate.
struct Setup {
    ca: Ca,
    default: Leaf,
    exact: Leaf,
    wildcard: Leaf,
    server: EchoServer,
    _files: Files,
}

async fn setup() -> Setup {
    let files = Files::new();
    let ca = Ca::new("Server CA");
    let default = ca.server(&["default.example.net"]);
    let exact = ca.server(&["broker.example.com", "acme.mqtt.example.com"]);
    let wildcard = ca.server(&["*.mqtt.example.com"]);
    let mut tls = tls_config(&files.pair("default", &default));
    tls.certificates = vec![
        files.pair("exact", &exact),
        files.pair("wildcard", &wildcard),
    ];
    let server = EchoServer::start(service(&tls, &[], &files)).await;
    Setup {
        ca,
        default,
        exact,
        wildcard,
        server,
        _files: files,
    }
}

#[tokio::test]
async fn sni_picks_the_certificate_with_the_exact_name() {
    let mut s = setup().await;
    for name in ["broker.example.com", "acme.mqtt.example.com"] {
        let mut stream = connect(s.server.addr, name, client_config(&[&s.ca.der], None))
            .await
            .unwrap();
        assert_eq!(served(&stream), s.exact.der, "{name}");
        echo(&mut stream, b"hello").await.unwrap();
        assert_eq!(s.server.outcome().await.unwrap().sni.as_deref(), Some(name));
    }
}

#[tokio::test]
async fn sni_picks_the_wildcard_certificate_for_one_extra_label() {
    let s = setup().await;
    let mut stream = connect(
        s.server.addr,
        "other.mqtt.example.com",
        client_config(&[&s.ca.der], None),
    )
    .await
    .unwrap();
    assert_eq!(served(&stream), s.wildcard.der);
    echo(&mut stream, b"hello").await.unwrap();
}

#[tokio::test]
async fn unknown_or_missing_sni_gets_the_default_certificate() {
    let mut s = setup().await;
    // Two labels below the wildcard's base are not covered by it.
    for name in ["a.b.mqtt.example.com", "unrelated.example.org"] {
        let stream = connect(s.server.addr, name, trusting_any_server())
            .await
            .unwrap();
        assert_eq!(served(&stream), s.default.der, "{name}");
        assert_eq!(s.server.outcome().await.unwrap().sni.as_deref(), Some(name));
    }

    let mut no_sni = client_config(&[&s.ca.der], None);
    no_sni.enable_sni = false;
    let mut stream = connect(s.server.addr, "default.example.net", no_sni)
        .await
        .unwrap();
    assert_eq!(served(&stream), s.default.der);
    echo(&mut stream, b"hello").await.unwrap();
    assert_eq!(s.server.outcome().await.unwrap().sni, None);
}

#[tokio::test]
async fn certificate_for_the_wrong_host_is_refused_by_the_client() {
    let s = setup().await;
    let err = connect(
        s.server.addr,
        "unrelated.example.org",
        client_config(&[&s.ca.der], None),
    )
    .await
    .unwrap_err();
    let rustls_err = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>());
    assert!(
        matches!(
            rustls_err,
            Some(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName
                    | rustls::CertificateError::NotValidForNameContext { .. }
            ))
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn client_that_does_not_trust_the_ca_is_refused_by_the_client() {
    let s = setup().await;
    let stranger = Ca::new("Someone else");
    let err = connect(
        s.server.addr,
        "broker.example.com",
        client_config(&[&stranger.der], None),
    )
    .await
    .unwrap_err();
    let rustls_err = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>());
    assert!(
        matches!(
            rustls_err,
            Some(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer
            ))
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn tls12_and_tls13_clients_both_complete_the_handshake() {
    let s = setup().await;
    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let config = client_config_versions(&[&s.ca.der], None, &[version]);
        let mut stream = connect(s.server.addr, "broker.example.com", config)
            .await
            .unwrap();
        assert_eq!(stream.get_ref().1.protocol_version(), Some(version.version));
        echo(&mut stream, b"ping").await.unwrap();
    }
}

#[tokio::test]
async fn without_a_default_certificate_an_unknown_name_is_refused() {
    let files = Files::new();
    let ca = Ca::new("Server CA");
    let only = ca.server(&["*.mqtt.example.com"]);
    let tls = TlsConfig {
        certificates: vec![files.pair("only", &only)],
        ..TlsConfig::default()
    };
    let mut server = EchoServer::start(service(&tls, &[], &files)).await;

    let ok = connect(
        server.addr,
        "a.mqtt.example.com",
        client_config(&[&ca.der], None),
    )
    .await
    .unwrap();
    assert_eq!(served(&ok), only.der);
    assert!(server.outcome().await.is_ok());

    let refused = connect(server.addr, "example.org", client_config(&[&ca.der], None)).await;
    assert!(refused.is_err());
    match server.outcome().await {
        Err(TlsError::NoCertificate { sni }) => assert_eq!(sni.as_deref(), Some("example.org")),
        other => panic!("expected NoCertificate, got {other:?}"),
    }
}

#[tokio::test]
async fn a_stream_wrapper_can_be_accepted() {
    // The PROXY-protocol listener hands over its own stream type.
    let files = Files::new();
    let ca = Ca::new("Server CA");
    let svc = service(&basic(&files, &ca, ClientAuth::None), &[], &files);
    let (client_io, server_io) = tokio::io::duplex(16 * 1024);
    let server = tokio::spawn(async move {
        let accepted = svc.accept(server_io).await.unwrap();
        let (mut rd, mut wr) = tokio::io::split(accepted.stream);
        tokio::io::copy(&mut rd, &mut wr).await
    });
    let name = ServerName::try_from("default.example.net").unwrap();
    let mut stream = TlsConnector::from(Arc::new(client_config(&[&ca.der], None)))
        .connect(name, client_io)
        .await
        .unwrap();
    stream.write_all(b"through a wrapper").await.unwrap();
    let mut back = [0u8; 17];
    stream.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"through a wrapper");
    stream.shutdown().await.unwrap();
    assert_eq!(server.await.unwrap().unwrap(), 17);
}

#[tokio::test]
async fn plain_mqtt_on_the_tls_port_is_a_handshake_error() {
    let files = Files::new();
    let ca = Ca::new("Server CA");
    let svc = service(&basic(&files, &ca, ClientAuth::None), &[], &files);
    let (mut client_io, server_io) = tokio::io::duplex(1024);
    client_io
        .write_all(&[
            0x10, 0x0C, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 0x3C, 0x00, 0x00,
        ])
        .await
        .unwrap();
    let err = svc.accept(server_io).await.unwrap_err();
    assert!(matches!(err, TlsError::Handshake(_)), "{err:?}");
}
