//! `stratus-policy`: who may publish and subscribe to what, within one tenant.
//!
//! Rules are written by tenant admins (through the control plane) as topic filters that may name
//! the connecting identity with `${clientid}`, `${username}` or `${tenant}`. The same evaluation
//! answers the edge (every publish, subscribe, retained delivery, will) and the control plane's
//! "explain" endpoint, so both always agree.

mod rule;
mod template;

pub use rule::{AclRule, Action, DecidedBy, Decision, Effect, PolicySet};
pub use template::{MAX_TEMPLATE_LEN, Placeholder, TemplateError, TopicTemplate};

/// The identity a rule is evaluated for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity<'a> {
    /// Tenant slug.
    pub tenant: &'a str,
    /// MQTT client identifier.
    pub client_id: &'a str,
    /// User name, if the client presented one.
    pub username: Option<&'a str>,
}
