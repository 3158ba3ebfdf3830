//! Why a benchmark run could not produce a result.
//!
//! Anything that makes the numbers meaningless is an error: bad flags, a broker that cannot be
//! reached or refuses the generator's clients, a protocol violation, a worker process that died.
//! Messages lost or duplicated by the broker are results, not errors. Each message includes its
//! cause, so no variant exposes a `source()` as well.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use stratus_codec::{DecodeError, EncodeError};

/// A failed benchmark run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A flag has a value that cannot work; the message names the flag.
    #[error("invalid arguments: {0}")]
    InvalidArgs(String),
    /// The URL names a transport this version does not implement.
    #[error(
        "{scheme}:// is not supported yet (TLS and WebSocket transports come with the transports \
         issue); use mqtt://HOST:PORT"
    )]
    UnsupportedTransport {
        /// The URL scheme given.
        scheme: String,
    },
    /// The broker's host name did not resolve.
    #[error("cannot resolve the broker address {host}: {cause}")]
    Resolve {
        /// `host:port` as given.
        host: String,
        /// The resolver's error.
        cause: io::Error,
    },
    /// The TCP connection to the broker could not be opened.
    #[error("cannot reach the broker at {addr}: {cause}")]
    Unreachable {
        /// The broker address.
        addr: SocketAddr,
        /// Why `connect` failed.
        cause: io::Error,
    },
    /// The broker answered CONNECT or SUBSCRIBE with a failure.
    #[error("the broker refused {what}: {reason}")]
    Refused {
        /// What was refused (e.g. `the connection of client bench-1-s0`).
        what: String,
        /// The reason code or return code.
        reason: String,
    },
    /// The broker did not answer in time.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout {
        /// How long the generator waited.
        after: Duration,
        /// What it waited for.
        what: &'static str,
    },
    /// The broker closed a connection the benchmark needed.
    #[error("the broker closed the connection during {0}")]
    Closed(&'static str),
    /// The broker sent bytes our codec rejects.
    #[error("the broker sent an undecodable packet: {0}")]
    Decode(DecodeError),
    /// A packet could not be encoded (e.g. a payload larger than MQTT allows).
    #[error("cannot encode a packet: {0}")]
    Encode(EncodeError),
    /// The broker sent a packet that makes no sense at this point.
    #[error("unexpected packet from the broker: {0}")]
    Protocol(String),
    /// Some connections of the setup phase failed; the run is aborted.
    #[error("{failed} of {total} connections could not be set up; first error: {first}")]
    Setup {
        /// Connections that failed.
        failed: u64,
        /// Connections attempted.
        total: u64,
        /// The first error seen.
        first: Box<BenchError>,
    },
    /// A worker process failed or broke the worker protocol.
    #[error("worker process: {0}")]
    Worker(String),
    /// Any other I/O error (sockets after setup, stdin/stdout of workers).
    #[error("I/O error: {0}")]
    Io(io::Error),
}

// Conversions without a `source()` chain: each message above already includes its cause, so
// printing the chain (as `{:#}` does) would repeat it.

impl From<DecodeError> for BenchError {
    fn from(e: DecodeError) -> Self {
        Self::Decode(e)
    }
}

impl From<EncodeError> for BenchError {
    fn from(e: EncodeError) -> Self {
        Self::Encode(e)
    }
}

impl From<io::Error> for BenchError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}
