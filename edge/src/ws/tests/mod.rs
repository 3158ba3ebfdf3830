//! WebSocket tests: a real tungstenite client against `accept` and an echo loop over the
//! resulting `ByteTransport` (this file), the upgrade checks (`handshake.rs`, with raw HTTP for
//! the refusals) and the message handling (`transport.rs`).

mod handshake;
mod transport;

use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::{Refusal, WsError, accept};
use crate::config::WebSocketConfig;
use crate::listener::ByteTransport;

const WAIT: Duration = Duration::from_secs(10);

/// What the in-test server saw.
#[derive(Debug)]
enum Served {
    Refused(WsError),
    /// The echo loop ended: `Ok` on end of stream, else the read error.
    Echoed {
        host: Option<String>,
        origin: Option<String>,
        end: io::Result<()>,
    },
}

/// Accepts one connection with `accept`, echoes every read back as one write, and on end of
/// stream or error shuts the transport down and drains it.
async fn serve_one(
    settings: WebSocketConfig,
    max_packet_size: u32,
) -> (SocketAddr, JoinHandle<Served>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let accepted = match accept(stream, &settings, max_packet_size).await {
            Ok(accepted) => accepted,
            Err(e) => return Served::Refused(e),
        };
        let mut t = accepted.transport;
        let mut buf = BytesMut::new();
        let end = loop {
            match poll_fn(|cx| t.poll_read(cx, &mut buf)).await {
                Ok(0) => break Ok(()),
                Ok(_) => {
                    let data = buf.split();
                    write_all(&mut *t, &data).await.unwrap();
                }
                Err(e) => break Err(e),
            }
        };
        let _ = poll_fn(|cx| t.poll_shutdown(cx)).await;
        while let Ok(n) = poll_fn(|cx| t.poll_read(cx, &mut buf)).await {
            if n == 0 {
                break;
            }
        }
        Served::Echoed {
            host: accepted.host,
            origin: accepted.origin,
            end,
        }
    });
    (addr, task)
}

async fn write_all(t: &mut dyn ByteTransport, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        let n = poll_fn(|cx| t.poll_write(cx, data)).await?;
        data = &data[n..];
    }
    poll_fn(|cx| t.poll_flush(cx)).await
}

fn settings(origins: &[&str]) -> WebSocketConfig {
    WebSocketConfig {
        allowed_origins: origins.iter().map(|o| (*o).to_owned()).collect(),
        ..WebSocketConfig::default()
    }
}

type Client = WebSocketStream<TcpStream>;

/// Connects a tungstenite client offering `protocols`, with extra headers.
async fn client(
    addr: SocketAddr,
    protocols: &str,
    headers: &[(&'static str, &str)],
) -> (Client, String) {
    let mut request = format!("ws://{addr}/mqtt").into_client_request().unwrap();
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", protocols.parse().unwrap());
    for (name, value) in headers {
        request.headers_mut().insert(*name, value.parse().unwrap());
    }
    let stream = TcpStream::connect(addr).await.unwrap();
    let (ws, response) = tokio_tungstenite::client_async(request, stream)
        .await
        .unwrap();
    let chosen = response.headers()["Sec-WebSocket-Protocol"]
        .to_str()
        .unwrap()
        .to_owned();
    (ws, chosen)
}

async fn mqtt_client(addr: SocketAddr) -> Client {
    client(addr, "mqtt", &[]).await.0
}

/// Sends a raw upgrade request for `path` with extra header lines; returns the whole response.
async fn raw_upgrade(addr: SocketAddr, path: &str, extra: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    timeout(WAIT, stream.read_to_end(&mut response))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8(response).unwrap()
}

async fn refused_with(task: JoinHandle<Served>, expected: Refusal) {
    match timeout(WAIT, task).await.unwrap().unwrap() {
        Served::Refused(WsError::Refused(r)) => assert_eq!(r, expected),
        other => panic!("expected refusal {expected:?}, got {other:?}"),
    }
}

/// Receives binary messages until `len` bytes arrived; returns them and the message count.
async fn receive(ws: &mut Client, len: usize) -> (Vec<u8>, usize) {
    let mut got = Vec::new();
    let mut messages = 0;
    while got.len() < len {
        match timeout(WAIT, ws.next()).await.unwrap() {
            Some(Ok(Message::Binary(b))) => {
                got.extend_from_slice(&b);
                messages += 1;
            }
            other => panic!("expected a binary message, got {other:?}"),
        }
    }
    (got, messages)
}

/// The close code the client receives, or `None` if the stream ends without a close frame.
async fn close_code(ws: &mut Client) -> Option<CloseCode> {
    loop {
        match timeout(WAIT, ws.next()).await.unwrap() {
            Some(Ok(Message::Close(frame))) => return frame.map(|f| f.code),
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return None,
        }
    }
}
