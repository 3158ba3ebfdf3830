//! The upgrade: subprotocol, path, Origin allow-list, Host.

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::timeout;

use super::{Served, WAIT, client, raw_upgrade, refused_with, serve_one, settings};
use crate::config::WebSocketConfig;
use crate::ws::handshake::host_without_port;
use crate::ws::{Refusal, WsError};

#[tokio::test]
async fn upgrade_with_mqtt_subprotocol_selects_exactly_mqtt() {
    let (addr, _task) = serve_one(settings(&[]), 1024).await;
    let (_ws, chosen) = client(addr, "mqttv3.1, mqtt", &[]).await;
    assert_eq!(chosen, "mqtt");
}

#[tokio::test]
async fn upgrade_without_subprotocol_is_refused_with_400() {
    let (addr, task) = serve_one(settings(&[]), 1024).await;
    let response = raw_upgrade(addr, "/mqtt", "").await;
    assert!(
        response.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "{response}"
    );
    assert!(response.ends_with("\r\n\r\nthe client must offer the \"mqtt\" WebSocket subprotocol (Sec-WebSocket-Protocol: mqtt)\n"), "{response}");
    refused_with(task, Refusal::NoMqttSubprotocol).await;
}

#[tokio::test]
async fn upgrade_offering_only_other_subprotocols_is_refused_with_400() {
    let (addr, task) = serve_one(settings(&[]), 1024).await;
    let response = raw_upgrade(
        addr,
        "/mqtt",
        "Sec-WebSocket-Protocol: wamp, mqttv3.1, MQTT\r\n",
    )
    .await;
    assert!(
        response.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "{response}"
    );
    refused_with(task, Refusal::NoMqttSubprotocol).await;
}

#[tokio::test]
async fn upgrade_on_another_path_is_refused_with_404() {
    let (addr, task) = serve_one(settings(&[]), 1024).await;
    let response = raw_upgrade(addr, "/other", "Sec-WebSocket-Protocol: mqtt\r\n").await;
    assert!(
        response.starts_with("HTTP/1.1 404 Not Found\r\n"),
        "{response}"
    );
    refused_with(task, Refusal::WrongPath).await;
}

#[tokio::test]
async fn request_that_is_not_an_upgrade_fails_the_handshake() {
    let (addr, task) = serve_one(settings(&[]), 1024).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /mqtt HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    match timeout(WAIT, task).await.unwrap().unwrap() {
        Served::Refused(WsError::Handshake(_)) => {}
        other => panic!("expected a handshake error, got {other:?}"),
    }
}

#[tokio::test]
async fn origin_in_the_allow_list_is_accepted() {
    let (addr, task) = serve_one(settings(&["https://app.example.com"]), 1024).await;
    let (ws, _) = client(addr, "mqtt", &[("Origin", "https://APP.example.com")]).await;
    drop(ws);
    match timeout(WAIT, task).await.unwrap().unwrap() {
        Served::Echoed { origin, .. } => {
            assert_eq!(origin.as_deref(), Some("https://APP.example.com"))
        }
        other => panic!("expected an accepted connection, got {other:?}"),
    }
}

#[tokio::test]
async fn origin_outside_the_allow_list_is_refused_with_403() {
    let (addr, task) = serve_one(settings(&["https://app.example.com"]), 1024).await;
    let extra = "Sec-WebSocket-Protocol: mqtt\r\nOrigin: https://evil.example.net\r\n";
    let response = raw_upgrade(addr, "/mqtt", extra).await;
    assert!(
        response.starts_with("HTTP/1.1 403 Forbidden\r\n"),
        "{response}"
    );
    refused_with(task, Refusal::OriginNotAllowed).await;
}

#[tokio::test]
async fn missing_origin_is_accepted_with_an_allow_list_by_default() {
    let (addr, _task) = serve_one(settings(&["https://app.example.com"]), 1024).await;
    let (_ws, chosen) = client(addr, "mqtt", &[]).await;
    assert_eq!(chosen, "mqtt");
}

#[tokio::test]
async fn missing_origin_is_refused_when_the_allow_list_requires_one() {
    let strict = WebSocketConfig {
        allow_missing_origin: false,
        ..settings(&["https://app.example.com"])
    };
    let (addr, task) = serve_one(strict, 1024).await;
    let response = raw_upgrade(addr, "/mqtt", "Sec-WebSocket-Protocol: mqtt\r\n").await;
    assert!(
        response.starts_with("HTTP/1.1 403 Forbidden\r\n"),
        "{response}"
    );
    refused_with(task, Refusal::MissingOrigin).await;
}

#[tokio::test]
async fn any_origin_is_accepted_when_the_allow_list_is_empty() {
    let (addr, _task) = serve_one(settings(&[]), 1024).await;
    let (_ws, chosen) = client(addr, "mqtt", &[("Origin", "https://anything.example")]).await;
    assert_eq!(chosen, "mqtt");
}

#[tokio::test]
async fn host_header_is_returned_lowercase_without_port() {
    let (addr, task) = serve_one(settings(&[]), 1024).await;
    let (ws, _) = client(addr, "mqtt", &[("Host", "Acme.MQTT.example.com:8083")]).await;
    drop(ws);
    match timeout(WAIT, task).await.unwrap().unwrap() {
        Served::Echoed { host, .. } => assert_eq!(host.as_deref(), Some("acme.mqtt.example.com")),
        other => panic!("expected an accepted connection, got {other:?}"),
    }
}

#[test]
fn host_without_port_normalises_or_rejects() {
    let cases = [
        ("example.com", Some("example.com")),
        ("Tenant.Example.COM:443", Some("tenant.example.com")),
        ("example.com.", Some("example.com")),
        ("example.com:", Some("example.com")),
        ("127.0.0.1:8083", Some("127.0.0.1")),
        ("[::1]:8083", Some("[::1]")),
        ("[2001:DB8::1]", Some("[2001:db8::1]")),
        ("", None),
        (":80", None),
        ("example.com:http", None),
        ("exa mple.com", None),
        ("example.com/evil", None),
        ("[::1", None),
        ("[::1]x", None),
        ("[zz::1]", None),
        ("example.com:123456", None),
    ];
    for (raw, expected) in cases {
        assert_eq!(host_without_port(raw).as_deref(), expected, "{raw:?}");
    }
}
