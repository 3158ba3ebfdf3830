//! `stratus-model`: identifiers shared by every Stratus process.
//!
//! A [`TenantId`] is the one thing every piece of state is scoped by. It is validated once, where it
//! enters the system (TLS SNI, WebSocket Host, `device@tenant` user names, the REST API), and only
//! the validated type crosses module boundaries.

mod tenant;

pub use tenant::{MAX_TENANT_ID_LEN, TenantId, TenantIdError};
