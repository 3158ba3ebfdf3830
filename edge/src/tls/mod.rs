//! TLS for the `mqtts` and `wss` listeners: rustls with aws-lc-rs as the only crypto provider,
//! TLS 1.2 and 1.3.
//!
//! - `service`: [`TlsService`], built at start-up; `accept` runs a handshake and returns the
//!   stream, the SNI name and the verified client certificate.
//! - `files`: reading and checking PEM certificate, key and CA files (fail closed, naming the
//!   file and the problem).
//! - `sni`: the certificate for an SNI name (exact, wildcard, default).
//! - `client_auth`: per-tenant client-certificate trust and which tenant issued a certificate.
//! - `identity`: subject, common name and fingerprint of a client certificate.
//! - `snapshot`: one consistent reading of all files, swapped atomically on reload.
//! - `reloader`: reload on file change and SIGHUP.
//! - `self_signed`: the development certificate.

mod client_auth;
mod error;
mod files;
mod identity;
mod reloader;
mod self_signed;
mod service;
mod snapshot;
mod sni;
#[cfg(test)]
mod tests;

pub(crate) use service::TlsService;
