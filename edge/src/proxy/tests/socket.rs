//! `read_header` over real sockets: it takes exactly the header and leaves the rest unread.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{some_tlvs, v1_line, v2, v2_addresses};
use crate::proxy::{ProxyError, ProxyHeader, read_header};

/// A connected pair: (client side, server side).
async fn socket_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (server, _) = listener.accept().await.unwrap();
    (client, server)
}

const WAIT: Duration = Duration::from_secs(10);

async fn rest_of(mut server: TcpStream) -> Vec<u8> {
    let mut rest = Vec::new();
    server.read_to_end(&mut rest).await.unwrap();
    rest
}

#[tokio::test]
async fn read_header_leaves_the_following_bytes_unread() {
    let (src, dst) = (
        "192.0.2.1:5000".parse().unwrap(),
        "192.0.2.2:1883".parse().unwrap(),
    );
    let (fam, block) = v2_addresses(src, dst);
    for header in [v1_line(src, dst), v2(0x21, fam, &block, &some_tlvs())] {
        let (mut client, mut server) = socket_pair().await;
        let mut sent = header.clone();
        sent.extend_from_slice(b"\x10\x0e\x00\x04MQTT\x04\x02\x00\x3c\x00\x02c1");
        client.write_all(&sent).await.unwrap();
        client.shutdown().await.unwrap();
        let got = read_header(&mut server, WAIT).await.unwrap();
        assert_eq!(
            got,
            ProxyHeader {
                source: Some(src),
                destination: Some(dst)
            }
        );
        assert_eq!(rest_of(server).await, &sent[header.len()..]);
    }
}

#[tokio::test]
async fn read_header_assembles_a_header_sent_in_pieces() {
    let (src, dst) = (
        "[2001:db8::5]:7".parse().unwrap(),
        "[2001:db8::6]:8".parse().unwrap(),
    );
    for header in [v1_line(src, dst), {
        let (fam, block) = v2_addresses(src, dst);
        v2(0x21, fam, &block, &some_tlvs())
    }] {
        let (mut client, mut server) = socket_pair().await;
        let reader = tokio::spawn(async move {
            let got = read_header(&mut server, WAIT).await.unwrap();
            (got, rest_of(server).await)
        });
        for piece in header.chunks(5) {
            client.write_all(piece).await.unwrap();
            client.flush().await.unwrap();
            tokio::task::yield_now().await;
        }
        client.write_all(b"after").await.unwrap();
        client.shutdown().await.unwrap();
        let (got, rest) = reader.await.unwrap();
        assert_eq!(got.source, Some(src));
        assert_eq!(rest, b"after");
    }
}

#[tokio::test]
async fn read_header_refuses_a_connection_without_header() {
    let (mut client, mut server) = socket_pair().await;
    client
        .write_all(b"\x10\x0e\x00\x04MQTT\x04\x02\x00\x3c\x00\x02c1")
        .await
        .unwrap();
    assert!(matches!(
        read_header(&mut server, WAIT).await,
        Err(ProxyError::Missing(0x10))
    ));
}

#[tokio::test]
async fn read_header_refuses_a_header_cut_short_by_close() {
    let (mut client, mut server) = socket_pair().await;
    client.write_all(b"PROXY TCP4 1.2.3.4").await.unwrap();
    client.shutdown().await.unwrap();
    assert!(matches!(
        read_header(&mut server, WAIT).await,
        Err(ProxyError::Truncated(18))
    ));
}

#[tokio::test]
async fn read_header_refuses_an_oversized_v2_header() {
    let (mut client, mut server) = socket_pair().await;
    let mut head = v2(0x21, 0x11, &[], &[]);
    head[14..16].copy_from_slice(&1000u16.to_be_bytes());
    client.write_all(&head).await.unwrap();
    assert!(matches!(
        read_header(&mut server, WAIT).await,
        Err(ProxyError::V2TooLong { len: 1016, .. })
    ));
}

#[tokio::test]
async fn read_header_gives_up_after_the_timeout() {
    let (mut client, mut server) = socket_pair().await;
    client.write_all(b"PROXY TCP4 ").await.unwrap();
    let timeout = Duration::from_millis(200);
    assert!(
        matches!(read_header(&mut server, timeout).await, Err(ProxyError::Timeout(t)) if t == timeout)
    );
    drop(client);
}
