//! Mutual TLS: per-tenant CAs selected by SNI, the listener-wide CA, and the three
//! `client_auth` policies.

use super::*;
use crate::tls::identity::hex;
use stratus_model::TenantId;

/// Server CA, a listener-wide client CA, and client CAs for tenants `a` and `b`.
struct Pki {
    server_ca: Ca,
    listener_ca: Ca,
    a_ca: Ca,
    b_ca: Ca,
    files: Files,
}

impl Pki {
    fn new() -> Self {
        Self {
            server_ca: Ca::new("Server CA"),
            listener_ca: Ca::new("Listener clients CA"),
            a_ca: Ca::new("Tenant A devices CA"),
            b_ca: Ca::new("Tenant B devices CA"),
            files: Files::new(),
        }
    }

    /// A server with a wildcard certificate for the tenant domain and the given policy.
    async fn server(&self, client_auth: ClientAuth, listener_ca: bool) -> EchoServer {
        let files = &self.files;
        let default = files.pair("server", &self.server_ca.server(&["*.mqtt.example.com"]));
        let tls = TlsConfig {
            client_auth,
            client_ca: listener_ca.then(|| files.write("listener-ca.pem", &self.listener_ca.pem)),
            ..tls_config(&default)
        };
        let tenants = [
            tenant("a", Some(files.write("a-ca.pem", &self.a_ca.pem))),
            tenant("b", Some(files.write("b-ca.pem", &self.b_ca.pem))),
            tenant("c", None),
        ];
        EchoServer::start(service(&tls, &tenants, files)).await
    }

    fn client(&self, cert: Option<&Leaf>) -> ClientConfig {
        client_config(&[&self.server_ca.der], cert)
    }
}

/// Connects and, when the server accepted, proves the stream works.
async fn attempt(
    server: &mut EchoServer,
    sni: &str,
    config: ClientConfig,
) -> Result<Seen, TlsError> {
    let client = connect(server.addr, sni, config).await;
    let outcome = server.outcome().await;
    if outcome.is_ok() {
        echo(&mut client.unwrap(), b"authenticated").await.unwrap();
    }
    outcome
}

#[tokio::test]
async fn tenant_certificate_is_accepted_on_its_tenant_name_with_identity() {
    let pki = Pki::new();
    let mut server = pki.server(ClientAuth::Required, true).await;
    let device = pki.a_ca.client("device-17");
    let seen = attempt(&mut server, "a.mqtt.example.com", pki.client(Some(&device)))
        .await
        .unwrap();
    assert_eq!(seen.sni.as_deref(), Some("a.mqtt.example.com"));
    let identity = seen.client_cert.unwrap();
    assert_eq!(identity.tenant, Some(TenantId::new("a").unwrap()));
    assert_eq!(identity.common_name.as_deref(), Some("device-17"));
    assert_eq!(identity.subject, "CN=device-17,O=Stratus Tests");
    let expected = hex(crate::tls::files::SHA256.hash(device.der.as_ref()).as_ref());
    assert_eq!(identity.fingerprint_sha256, expected);
    assert_eq!(expected.len(), 64);
}

#[tokio::test]
async fn tenant_certificate_is_refused_on_another_tenant_name() {
    let pki = Pki::new();
    let mut server = pki.server(ClientAuth::Required, true).await;
    let device = pki.a_ca.client("device-17");
    for sni in ["b.mqtt.example.com", "c.mqtt.example.com"] {
        match attempt(&mut server, sni, pki.client(Some(&device))).await {
            Err(TlsError::ClientCertificateForOtherTenant { issuer, sni: seen }) => {
                assert_eq!(issuer.as_str(), "a");
                assert_eq!(seen.as_deref(), Some(sni));
            }
            other => panic!("{sni}: expected a refusal for another tenant, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn tenant_certificate_is_refused_without_a_tenant_name() {
    let pki = Pki::new();
    let mut server = pki.server(ClientAuth::Optional, true).await;
    let device = pki.b_ca.client("device-2");
    let mut no_sni = pki.client(Some(&device));
    no_sni.enable_sni = false;
    let err = attempt(&mut server, "b.mqtt.example.com", no_sni)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, TlsError::ClientCertificateForOtherTenant { issuer, sni: None } if issuer.as_str() == "b"),
        "{err:?}"
    );
    assert!(err.to_string().contains("tenant b"), "{err}");
}

#[tokio::test]
async fn listener_certificate_is_accepted_everywhere_without_a_tenant() {
    let pki = Pki::new();
    let mut server = pki.server(ClientAuth::Required, true).await;
    let operator = pki.listener_ca.client("operator");
    for (sni, send_sni) in [
        ("a.mqtt.example.com", true),
        ("c.mqtt.example.com", true),
        ("unknown.mqtt.example.com", true),
        ("a.mqtt.example.com", false),
    ] {
        let mut config = pki.client(Some(&operator));
        config.enable_sni = send_sni;
        let seen = attempt(&mut server, sni, config).await.unwrap();
        let identity = seen.client_cert.unwrap();
        assert_eq!(identity.tenant, None, "{sni}");
        assert_eq!(identity.common_name.as_deref(), Some("operator"));
    }
}

#[tokio::test]
async fn required_certificate_that_is_absent_is_refused() {
    let pki = Pki::new();
    let mut server = pki.server(ClientAuth::Required, true).await;
    let err = attempt(&mut server, "a.mqtt.example.com", pki.client(None))
        .await
        .unwrap_err();
    assert!(matches!(err, TlsError::ClientCertificateMissing), "{err:?}");
}

#[tokio::test]
async fn optional_certificate_that_is_absent_is_accepted_without_identity() {
    let pki = Pki::new();
    let mut server = pki.server(ClientAuth::Optional, true).await;
    for sni in ["a.mqtt.example.com", "broker.mqtt.example.com"] {
        let seen = attempt(&mut server, sni, pki.client(None)).await.unwrap();
        assert!(seen.client_cert.is_none(), "{sni}");
    }
}

#[tokio::test]
async fn optional_certificate_from_an_unknown_ca_is_refused() {
    let pki = Pki::new();
    let mut server = pki.server(ClientAuth::Optional, true).await;
    let stranger = Ca::new("Nobody's CA").client("intruder");
    let err = attempt(
        &mut server,
        "a.mqtt.example.com",
        pki.client(Some(&stranger)),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            TlsError::ClientCertificateInvalid(rustls::CertificateError::UnknownIssuer)
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn no_client_auth_does_not_ask_for_a_certificate() {
    let pki = Pki::new();
    let mut server = pki.server(ClientAuth::None, true).await;
    let device = pki.a_ca.client("device-17");
    let seen = attempt(&mut server, "a.mqtt.example.com", pki.client(Some(&device)))
        .await
        .unwrap();
    assert!(seen.client_cert.is_none());
}

#[tokio::test]
async fn tenant_cas_alone_serve_their_tenants_and_refuse_other_names() {
    // Required, no listener-wide CA: only connections to a tenant with a CA can authenticate.
    let pki = Pki::new();
    let mut server = pki.server(ClientAuth::Required, false).await;
    let device = pki.a_ca.client("device-17");
    let seen = attempt(&mut server, "a.mqtt.example.com", pki.client(Some(&device)))
        .await
        .unwrap();
    assert_eq!(
        seen.client_cert.unwrap().tenant,
        Some(TenantId::new("a").unwrap())
    );

    let err = attempt(&mut server, "c.mqtt.example.com", pki.client(Some(&device)))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, TlsError::NoClientCa { sni } if sni.as_deref() == Some("c.mqtt.example.com")),
        "{err:?}"
    );
}

#[tokio::test]
async fn resumed_session_keeps_the_tenant_identity() {
    let pki = Pki::new();
    let mut server = pki.server(ClientAuth::Required, true).await;
    let device = pki.a_ca.client("device-17");
    // Clones share the client's session cache.
    let config = pki.client(Some(&device));
    for round in 0..2 {
        let mut stream = connect(server.addr, "a.mqtt.example.com", config.clone())
            .await
            .unwrap();
        // Reading the echo also reads the session tickets sent after the handshake.
        echo(&mut stream, b"resume").await.unwrap();
        let kind = stream.get_ref().1.handshake_kind();
        let expected = match round {
            0 => rustls::HandshakeKind::Full,
            _ => rustls::HandshakeKind::Resumed,
        };
        assert_eq!(kind, Some(expected), "round {round}");
        let identity = server.outcome().await.unwrap().client_cert.unwrap();
        assert_eq!(
            identity.tenant,
            Some(TenantId::new("a").unwrap()),
            "round {round}"
        );
        assert_eq!(identity.common_name.as_deref(), Some("device-17"));
    }
}
