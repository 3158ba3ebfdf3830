//! A SOCKS5 proxy that stands in for DNS: every host name a client asks for resolves to
//! 127.0.0.1 (the port is kept). The test names (`acme.mqtt.test`) resolve nowhere, and a client
//! that verifies the server's certificate must be given the name itself: through this proxy
//! (`mosquitto_pub --proxy socks5h://127.0.0.1:PORT`) it connects by name, so its SNI, its
//! hostname check and the broker's tenant resolution all see that name, while the bytes go to
//! the broker on the loopback.
//!
//! Only what the clients use is implemented: no authentication, CONNECT, domain-name or IPv4
//! destinations. The names asked for are recorded, so a test can check the client really
//! connected by name.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// The proxy, serving until dropped.
pub struct NameProxy {
    /// Where clients reach it.
    pub addr: SocketAddr,
    asked: Arc<Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

impl Drop for NameProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl NameProxy {
    /// Starts the proxy on 127.0.0.1:0.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let asked = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&asked);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let record = Arc::clone(&record);
                tokio::spawn(async move {
                    // A client that breaks the exchange only loses its own connection.
                    let _ = serve(client, record).await;
                });
            }
        });
        Self { addr, asked, task }
    }

    /// The client option that sends connections through the proxy.
    pub fn url(&self) -> String {
        format!("socks5h://{}", self.addr)
    }

    /// Every destination name asked for so far, in order.
    pub fn names_asked(&self) -> Vec<String> {
        self.asked.lock().clone()
    }
}

async fn serve(mut client: TcpStream, asked: Arc<Mutex<Vec<String>>>) -> std::io::Result<()> {
    // Greeting: version 5, the methods offered; "no authentication" is chosen.
    let mut head = [0u8; 2];
    client.read_exact(&mut head).await?;
    let mut methods = vec![0u8; usize::from(head[1])];
    client.read_exact(&mut methods).await?;
    if head[0] != 5 || !methods.contains(&0) {
        client.write_all(&[5, 0xFF]).await?;
        return Ok(());
    }
    client.write_all(&[5, 0]).await?;

    // Request: version, command (1 = CONNECT), reserved, address type, address, port.
    let mut request = [0u8; 4];
    client.read_exact(&mut request).await?;
    let name = match request[3] {
        1 => {
            let mut ip = [0u8; 4];
            client.read_exact(&mut ip).await?;
            Ipv4Addr::from(ip).to_string()
        }
        3 => {
            let mut len = [0u8; 1];
            client.read_exact(&mut len).await?;
            let mut name = vec![0u8; usize::from(len[0])];
            client.read_exact(&mut name).await?;
            String::from_utf8_lossy(&name).into_owned()
        }
        _ => {
            // Address type not supported.
            client.write_all(&[5, 8, 0, 1, 0, 0, 0, 0, 0, 0]).await?;
            return Ok(());
        }
    };
    let mut port = [0u8; 2];
    client.read_exact(&mut port).await?;
    if request[1] != 1 {
        // Command not supported.
        client.write_all(&[5, 7, 0, 1, 0, 0, 0, 0, 0, 0]).await?;
        return Ok(());
    }
    asked.lock().push(name);
    let target = SocketAddr::from((Ipv4Addr::LOCALHOST, u16::from_be_bytes(port)));
    let Ok(mut upstream) = TcpStream::connect(target).await else {
        // Connection refused.
        client.write_all(&[5, 5, 0, 1, 0, 0, 0, 0, 0, 0]).await?;
        return Ok(());
    };
    client.write_all(&[5, 0, 0, 1, 0, 0, 0, 0, 0, 0]).await?;
    tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
    Ok(())
}
