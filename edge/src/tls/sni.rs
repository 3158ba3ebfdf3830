//! Choosing the server certificate by SNI name: exact names first, then wildcards
//! (`*.mqtt.example.com` matches exactly one more leftmost label), then the default certificate.
//!
//! A [`CertIndex`] belongs to one snapshot of the TLS files and never changes; a reload builds a
//! new index and swaps the whole snapshot, so a handshake sees one consistent set of
//! certificates.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::files::LoadedCert;

/// Certificates by the names they serve.
#[derive(Debug, Default)]
pub(super) struct CertIndex {
    /// Exact DNS names.
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// `*.suffix` names, keyed by `suffix`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    /// Served when nothing else matches (including clients that send no SNI).
    default: Option<Arc<CertifiedKey>>,
}

impl CertIndex {
    /// Indexes `certs` by their DNS names. When two certificates claim the same name, the one
    /// listed first keeps it.
    pub(super) fn new(default: Option<&LoadedCert>, certs: &[LoadedCert]) -> Self {
        let mut index = Self {
            default: default.map(|c| Arc::clone(&c.key)),
            ..Self::default()
        };
        for cert in certs.iter().chain(default) {
            for name in &cert.dns_names {
                let (map, key) = match name.strip_prefix("*.") {
                    Some(suffix) => (&mut index.wildcard, suffix),
                    None => (&mut index.exact, name.as_str()),
                };
                if let Entry::Vacant(slot) = map.entry(key.to_owned()) {
                    slot.insert(Arc::clone(&cert.key));
                }
            }
        }
        index
    }

    /// The certificate for `sni` (already lowercase, no trailing dot).
    pub(super) fn resolve(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let found = sni.and_then(|name| {
            self.exact.get(name).or_else(|| {
                let (first, rest) = name.split_once('.')?;
                if first.is_empty() || first == "*" {
                    return None;
                }
                self.wildcard.get(rest)
            })
        });
        found.or(self.default.as_ref()).cloned()
    }
}

/// The rustls hook: picks from one [`CertIndex`].
#[derive(Debug)]
pub(super) struct SniResolver(pub(super) Arc<CertIndex>);

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let sni = client_hello.server_name().map(normalize);
        self.0.resolve(sni.as_deref())
    }
}

/// An SNI name as we compare it: ASCII lowercase, without a trailing dot.
pub(super) fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::sign::SigningKey;

    #[derive(Debug)]
    struct NoKey;

    impl SigningKey for NoKey {
        fn choose_scheme(
            &self,
            _offered: &[rustls::SignatureScheme],
        ) -> Option<Box<dyn rustls::sign::Signer>> {
            None
        }

        fn algorithm(&self) -> rustls::SignatureAlgorithm {
            rustls::SignatureAlgorithm::ECDSA
        }
    }

    fn cert(tag: u8, names: &[&str]) -> LoadedCert {
        let der = rustls_pki_types::CertificateDer::from(vec![tag]);
        LoadedCert {
            key: Arc::new(CertifiedKey::new(vec![der], Arc::new(NoKey))),
            dns_names: names.iter().map(|n| (*n).to_owned()).collect(),
        }
    }

    fn tag(found: Option<Arc<CertifiedKey>>) -> Option<u8> {
        found.map(|k| k.cert[0].as_ref()[0])
    }

    #[test]
    fn exact_then_wildcard_then_default() {
        let default = cert(0, &["default.example.net"]);
        let certs = [
            cert(1, &["mqtt.example.com", "a.mqtt.example.com"]),
            cert(2, &["*.mqtt.example.com"]),
        ];
        let index = CertIndex::new(Some(&default), &certs);
        let pick = |sni: Option<&str>| tag(index.resolve(sni));
        assert_eq!(pick(Some("a.mqtt.example.com")), Some(1));
        assert_eq!(pick(Some("mqtt.example.com")), Some(1));
        assert_eq!(pick(Some("b.mqtt.example.com")), Some(2));
        // A wildcard covers exactly one label.
        assert_eq!(pick(Some("x.b.mqtt.example.com")), Some(0));
        assert_eq!(pick(Some("default.example.net")), Some(0));
        assert_eq!(pick(Some("other.example.org")), Some(0));
        assert_eq!(pick(None), Some(0));
        // A literal '*' label or an empty label is not matched by a wildcard.
        assert_eq!(pick(Some("*.mqtt.example.com")), Some(0));
        assert_eq!(pick(Some(".mqtt.example.com")), Some(0));
    }

    #[test]
    fn first_listed_certificate_keeps_a_shared_name() {
        let certs = [cert(1, &["a.example.com"]), cert(2, &["a.example.com"])];
        let index = CertIndex::new(None, &certs);
        assert_eq!(tag(index.resolve(Some("a.example.com"))), Some(1));
    }

    #[test]
    fn without_default_an_unknown_name_has_no_certificate() {
        let index = CertIndex::new(None, &[cert(1, &["*.example.com"])]);
        assert_eq!(tag(index.resolve(Some("a.example.com"))), Some(1));
        assert_eq!(tag(index.resolve(Some("example.com"))), None);
        assert_eq!(tag(index.resolve(None)), None);
    }

    #[test]
    fn names_are_compared_case_insensitively_without_trailing_dot() {
        assert_eq!(normalize("A.Mqtt.Example.COM."), "a.mqtt.example.com");
    }
}
