//! `stratus-edge`: the MQTT edge. It terminates MQTT 3.1, 3.1.1 and 5.0 connections, runs the
//! protocol engine and the broker core (sessions, routing, retained messages, wills), and in the
//! embedded shape (`stratus dev`) keeps durable state in a local SQLite file.
//!
//! Code map: [`config`] (typed configuration), `listener` (sockets), `protocol` (per-connection
//! state machine, no I/O), `broker` (tenants, sessions, routing; synchronous), `store` (durable
//! state), `auth` (who a client is), `tenancy` (which tenant), `tls`, `ws` and `proxy` (transport
//! layers), `http` (`/healthz`), [`cluster`] (the clustered shape's backbone: NATS, JetStream,
//! Redis), [`server`] (assembly and shutdown).

mod access;
mod broker;
pub mod cluster;
pub mod config;
mod http;
mod listener;
mod protocol;
mod proxy;
pub mod runtime;
pub mod server;
mod store;
mod tenancy;
mod tls;
mod ws;

pub use broker::RestoreSummary;
pub use cluster::{ClusterError, ClusterSettings};
pub use config::BrokerConfig;
pub use server::{RunningServer, ServerError, Services};
