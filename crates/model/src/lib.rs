//! `stratus-model`: identifiers shared by every Stratus process.
//!
//! A [`TenantId`] is the one thing every piece of state is scoped by. It is validated once, where it
//! enters the system (TLS SNI, WebSocket Host, `device@tenant` user names, the REST API), and only
//! the validated type crosses module boundaries. [`Directory`] is what an edge reads from the
//! control plane.

mod directory;
mod tenant;

pub use directory::{
    AclRuleRecord, CHANGE_SUBJECT, ChangeEvent, DeviceRecord, Directory, DirectoryError,
    JwtAlgorithm, JwtKeyRecord, TenantRecord, TenantStatus, glob_matches,
};
pub use tenant::{MAX_TENANT_ID_LEN, TenantId, TenantIdError};
