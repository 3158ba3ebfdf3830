//! The MQTT protocol engine: CONNECT handling and the per-connection state machine, free of I/O.

mod aliases;
mod connect;
mod engine;
mod inbound;
mod outbound;
mod output;
mod publish;
mod subscriptions;

pub(crate) use connect::{Refusal, accept, client_id_to_assign, failure, session_intent};
pub(crate) use engine::{Close, Engine, Flow};
