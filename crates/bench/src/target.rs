//! The broker under test: its URL, transport and resolved address.
//!
//! Only plain TCP (`mqtt://`) is implemented. TLS (`mqtts://`) and WebSocket (`ws://`, `wss://`)
//! are named here so that the error says what is missing; they arrive with the transports issue.

use std::net::SocketAddr;

use crate::error::BenchError;

/// The default MQTT port when the URL names none.
const DEFAULT_PORT: u16 = 1883;

/// How bytes reach the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    /// MQTT over TCP: `mqtt://` (also `tcp://`).
    Tcp,
    /// MQTT over TLS: `mqtts://` (also `ssl://`, `tls://`). Not implemented yet.
    Tls,
    /// MQTT over WebSocket: `ws://` or `wss://`. Not implemented yet.
    WebSocket,
}

/// Where the load goes.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// The broker's address.
    pub(crate) addr: SocketAddr,
    /// The transport (always [`Transport::Tcp`] once parsing succeeded).
    pub(crate) transport: Transport,
}

impl Target {
    /// Parses `--url` and resolves its host. Unsupported transports are refused here, before
    /// anything connects.
    pub(crate) async fn parse(url: &str) -> Result<Self, BenchError> {
        let (scheme, rest) = url.split_once("://").ok_or_else(|| {
            BenchError::InvalidArgs(format!(
                "--url `{url}` has no scheme; write mqtt://HOST:PORT"
            ))
        })?;
        let transport = match scheme.to_ascii_lowercase().as_str() {
            "mqtt" | "tcp" => Transport::Tcp,
            "mqtts" | "ssl" | "tls" => Transport::Tls,
            "ws" | "wss" => Transport::WebSocket,
            other => {
                return Err(BenchError::InvalidArgs(format!(
                    "--url scheme `{other}` is unknown; write mqtt://HOST:PORT"
                )));
            }
        };
        if transport != Transport::Tcp {
            return Err(BenchError::UnsupportedTransport {
                scheme: scheme.to_owned(),
            });
        }
        let authority = rest.split('/').next().unwrap_or_default();
        if authority.is_empty() {
            return Err(BenchError::InvalidArgs(format!(
                "--url `{url}` has no host; write mqtt://HOST:PORT"
            )));
        }
        let host_port = if has_port(authority) {
            authority.to_owned()
        } else {
            format!("{authority}:{DEFAULT_PORT}")
        };
        let mut addrs =
            tokio::net::lookup_host(&host_port)
                .await
                .map_err(|cause| BenchError::Resolve {
                    host: host_port.clone(),
                    cause,
                })?;
        let addr = addrs.next().ok_or_else(|| BenchError::Resolve {
            host: host_port.clone(),
            cause: std::io::Error::new(std::io::ErrorKind::NotFound, "no address"),
        })?;
        Ok(Self { addr, transport })
    }
}

/// True when `authority` ends in `:PORT` (an IPv6 literal is bracketed: `[::1]:1883`).
fn has_port(authority: &str) -> bool {
    match authority.rsplit_once(':') {
        Some((host, port)) => {
            port.chars().all(|c| c.is_ascii_digit())
                && !port.is_empty()
                && (!host.contains(':') || host.ends_with(']'))
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn mqtt_urls_resolve_with_or_without_a_port() {
        let target = Target::parse("mqtt://127.0.0.1:18830").await.unwrap();
        assert_eq!(target.addr, "127.0.0.1:18830".parse().unwrap());
        assert_eq!(target.transport, Transport::Tcp);
        let target = Target::parse("mqtt://127.0.0.1").await.unwrap();
        assert_eq!(target.addr.port(), 1883);
        let target = Target::parse("mqtt://[::1]:1884").await.unwrap();
        assert_eq!(target.addr, "[::1]:1884".parse().unwrap());
    }

    #[tokio::test]
    async fn tls_and_websocket_urls_are_not_supported_yet() {
        for url in [
            "mqtts://localhost:8883",
            "ws://localhost/mqtt",
            "wss://x:443",
        ] {
            let err = Target::parse(url).await.unwrap_err();
            assert!(
                matches!(err, BenchError::UnsupportedTransport { .. }),
                "{url}"
            );
            assert!(err.to_string().contains("not supported yet"));
        }
    }

    #[tokio::test]
    async fn urls_without_scheme_or_host_are_invalid() {
        for url in ["127.0.0.1:1883", "mqtt://", "http://x"] {
            let err = Target::parse(url).await.unwrap_err();
            assert!(matches!(err, BenchError::InvalidArgs(_)), "{url}");
        }
    }
}
