//! Which tenant a connection belongs to, decided in one place.
//!
//! In order: the endpoint the client reached (TLS SNI or WebSocket `Host` of the form
//! `<tenant>.<tenant_domain>`), else a user name of the form `device@tenant`, else "not named"
//! (the authenticator then uses the configured user's tenant, the client certificate's tenant, or
//! the default tenant). A topic never decides a tenant.

use bytestring::ByteString;
use stratus_model::TenantId;

use crate::listener::ConnectionInfo;

/// Where a tenant name came from, for logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TenantSource {
    /// TLS SNI server name.
    Sni,
    /// WebSocket `Host` header.
    Host,
    /// `device@tenant` user name.
    Username,
}

impl TenantSource {
    /// What named the tenant, for logs.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Sni => "TLS server name",
            Self::Host => "WebSocket Host header",
            Self::Username => "user name",
        }
    }
}

/// The tenant a connection asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TenantClaim {
    /// A tenant was named.
    Named {
        /// The tenant.
        tenant: TenantId,
        /// How it was named.
        source: TenantSource,
    },
    /// A name that is not a valid tenant id was given.
    Invalid {
        /// What was asked for.
        asked: String,
        /// How it was named.
        source: TenantSource,
    },
    /// Nothing named a tenant.
    Unnamed,
}

/// The tenant claim of a connection and the user name to authenticate with (the device part of
/// `device@tenant`).
pub(crate) fn resolve(
    info: &ConnectionInfo,
    tenant_domain: Option<&str>,
    username: Option<&ByteString>,
) -> (TenantClaim, Option<ByteString>) {
    if let Some(domain) = tenant_domain {
        for (name, source) in [
            (&info.sni, TenantSource::Sni),
            (&info.host, TenantSource::Host),
        ] {
            if let Some(label) = name.as_deref().and_then(|n| tenant_label(n, domain)) {
                return (claim(label, source), username.cloned());
            }
        }
    }
    if let Some(name) = username
        && let Some((device, tenant)) = name.rsplit_once('@')
    {
        let device = (!device.is_empty()).then(|| ByteString::from(device));
        return (claim(tenant, TenantSource::Username), device);
    }
    (TenantClaim::Unnamed, username.cloned())
}

fn claim(name: &str, source: TenantSource) -> TenantClaim {
    match TenantId::new(name) {
        Ok(tenant) => TenantClaim::Named { tenant, source },
        Err(_) => TenantClaim::Invalid {
            asked: name.chars().take(64).collect(),
            source,
        },
    }
}

/// The leftmost label of `host` when `host` is `<label>.<domain>` (case-insensitive).
fn tenant_label<'a>(host: &'a str, domain: &str) -> Option<&'a str> {
    let host = host.strip_suffix('.').unwrap_or(host);
    let prefix_len = host.len().checked_sub(domain.len() + 1)?;
    let (label, rest) = host.split_at(prefix_len);
    if rest.len() == domain.len() + 1
        && rest.starts_with('.')
        && rest[1..].eq_ignore_ascii_case(domain)
        && !label.is_empty()
        && !label.contains('.')
    {
        Some(label)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ListenerName;

    fn info(sni: Option<&str>, host: Option<&str>) -> ConnectionInfo {
        ConnectionInfo {
            peer: "127.0.0.1:1".parse().unwrap(),
            listener: ListenerName::Mqtts,
            sni: sni.map(str::to_owned),
            host: host.map(str::to_owned),
            client_cert: None,
            connect_deadline: tokio::time::Instant::now(),
        }
    }

    fn named(t: &str, source: TenantSource) -> TenantClaim {
        TenantClaim::Named {
            tenant: TenantId::new(t).unwrap(),
            source,
        }
    }

    #[test]
    fn sni_names_the_tenant_before_host_and_username() {
        let user = ByteString::from("dev1@other");
        let (c, u) = resolve(
            &info(Some("acme.mqtt.example.com"), Some("x.mqtt.example.com")),
            Some("mqtt.example.com"),
            Some(&user),
        );
        assert_eq!(c, named("acme", TenantSource::Sni));
        assert_eq!(
            u.as_deref(),
            Some("dev1@other"),
            "the user name is kept whole when the endpoint names the tenant"
        );
    }

    #[test]
    fn host_names_the_tenant_when_there_is_no_sni() {
        let (c, _) = resolve(
            &info(None, Some("ACME.mqtt.example.com")),
            Some("mqtt.example.com"),
            None,
        );
        assert_eq!(
            c,
            TenantClaim::Invalid {
                asked: "ACME".into(),
                source: TenantSource::Host
            }
        );
        let (c, _) = resolve(
            &info(None, Some("acme.mqtt.example.com")),
            Some("mqtt.example.com"),
            None,
        );
        assert_eq!(c, named("acme", TenantSource::Host));
    }

    #[test]
    fn names_outside_the_tenant_domain_do_not_name_a_tenant() {
        for host in [
            "mqtt.example.com",
            "a.b.mqtt.example.com",
            "acme.example.com",
            "localhost",
            "acmemqtt.example.com",
        ] {
            let (c, _) = resolve(&info(Some(host), None), Some("mqtt.example.com"), None);
            assert_eq!(c, TenantClaim::Unnamed, "{host}");
        }
        let (c, _) = resolve(&info(Some("acme.mqtt.example.com"), None), None, None);
        assert_eq!(c, TenantClaim::Unnamed, "no tenant domain configured");
    }

    #[test]
    fn device_at_tenant_user_names_split_at_the_last_at_sign() {
        let user = ByteString::from("sensor@site@acme");
        let (c, u) = resolve(&info(None, None), None, Some(&user));
        assert_eq!(c, named("acme", TenantSource::Username));
        assert_eq!(u.as_deref(), Some("sensor@site"));
        let user = ByteString::from("sensor@Not_A_Tenant");
        let (c, _) = resolve(&info(None, None), None, Some(&user));
        assert!(matches!(
            c,
            TenantClaim::Invalid {
                source: TenantSource::Username,
                ..
            }
        ));
    }

    #[test]
    fn plain_user_names_name_no_tenant() {
        let user = ByteString::from("sensor");
        let (c, u) = resolve(&info(None, None), None, Some(&user));
        assert_eq!(c, TenantClaim::Unnamed);
        assert_eq!(u.as_deref(), Some("sensor"));
    }
}
