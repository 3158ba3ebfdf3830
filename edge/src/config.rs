//! Broker configuration: one typed struct, read from a TOML file and overridden by flags and
//! `STRATUS_*` environment variables (the binary merges those), validated before anything starts.
//!
//! Every limit the broker enforces lives in [`Limits`], with its default and the reason code a
//! client sees when it hits it documented on the field.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// Everything `stratus dev` needs to run.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerConfig {
    /// Directory for durable state (sessions, queues, retained messages).
    pub data_dir: PathBuf,
    /// MQTT over TCP listener address.
    pub mqtt_listen: SocketAddr,
    /// HTTP listener address (`/healthz`).
    pub http_listen: SocketAddr,
    /// MQTT over WebSocket listener (path `websocket.path`); `None` turns it off.
    pub ws_listen: Option<SocketAddr>,
    /// MQTT over TLS listener; needs `tls.cert` and `tls.key` (or `tls.self_signed`).
    pub mqtts_listen: Option<SocketAddr>,
    /// MQTT over WebSocket over TLS listener; same TLS settings as `mqtts_listen`.
    pub wss_listen: Option<SocketAddr>,
    /// Base domain of tenant endpoints: a client reaching `<tenant>.<tenant_domain>` (TLS SNI or
    /// WebSocket `Host`) belongs to `<tenant>`.
    pub tenant_domain: Option<String>,
    /// Listeners that expect a PROXY protocol (v1 or v2) header before anything else.
    pub proxy_protocol: Vec<ListenerName>,
    /// TLS certificates and client-certificate authentication.
    pub tls: TlsConfig,
    /// WebSocket settings.
    pub websocket: WebSocketConfig,
    /// Tenants known to this broker besides `default_tenant` (and those of `users`).
    pub tenants: Vec<TenantConfig>,
    /// Refuse clients that present no valid credentials.
    pub require_auth: bool,
    /// The tenant anonymous clients join when `require_auth` is off.
    pub default_tenant: String,
    /// Protocol limits.
    pub limits: Limits,
    /// `$SYS` topics.
    pub sys: SysConfig,
    /// Durable state.
    pub store: StoreConfig,
    /// How access decisions are reported to clients.
    pub access: AccessConfig,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./stratus-data"),
            mqtt_listen: SocketAddr::from(([127, 0, 0, 1], 1883)),
            http_listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            ws_listen: Some(SocketAddr::from(([127, 0, 0, 1], 8083))),
            mqtts_listen: None,
            wss_listen: None,
            tenant_domain: None,
            proxy_protocol: Vec::new(),
            tls: TlsConfig::default(),
            websocket: WebSocketConfig::default(),
            tenants: Vec::new(),
            require_auth: false,
            default_tenant: "dev".to_owned(),
            limits: Limits::default(),
            sys: SysConfig::default(),
            store: StoreConfig::default(),
            access: AccessConfig::default(),
        }
    }
}

/// The listeners a connection can arrive on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListenerName {
    /// MQTT over TCP.
    Mqtt,
    /// MQTT over TLS.
    Mqtts,
    /// MQTT over WebSocket.
    Ws,
    /// MQTT over WebSocket over TLS.
    Wss,
}

impl ListenerName {
    /// Parses a listener name as written on the command line.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "mqtt" => Some(Self::Mqtt),
            "mqtts" => Some(Self::Mqtts),
            "ws" => Some(Self::Ws),
            "wss" => Some(Self::Wss),
            _ => None,
        }
    }

    /// The name as written in configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mqtt => "mqtt",
            Self::Mqtts => "mqtts",
            Self::Ws => "ws",
            Self::Wss => "wss",
        }
    }

    /// True for the TLS listeners.
    pub fn is_tls(self) -> bool {
        matches!(self, Self::Mqtts | Self::Wss)
    }

    /// True for the WebSocket listeners.
    pub fn is_websocket(self) -> bool {
        matches!(self, Self::Ws | Self::Wss)
    }
}

impl std::fmt::Display for ListenerName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// TLS settings shared by the `mqtts` and `wss` listeners.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// Default certificate chain (PEM), served when no other certificate matches the SNI name.
    pub cert: Option<PathBuf>,
    /// Private key (PEM) of `cert`.
    pub key: Option<PathBuf>,
    /// More certificates, each chosen when the client's SNI name matches one of its names
    /// (exact or wildcard such as `*.mqtt.example.com`).
    pub certificates: Vec<CertificateFiles>,
    /// Generate a self-signed certificate for `localhost` and `*.localhost` (development only).
    pub self_signed: bool,
    /// CA (PEM) whose client certificates are accepted on every TLS listener.
    pub client_ca: Option<PathBuf>,
    /// Whether clients must present a certificate: `none` (never asked), `optional`, `required`.
    pub client_auth: ClientAuth,
}

/// A certificate chain and its key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateFiles {
    /// Certificate chain (PEM).
    pub cert: PathBuf,
    /// Private key (PEM).
    pub key: PathBuf,
}

/// Client-certificate policy of the TLS listeners.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    /// No client certificate is requested.
    #[default]
    None,
    /// A certificate is requested and verified if presented.
    Optional,
    /// A verified certificate is required to connect.
    Required,
}

/// WebSocket settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebSocketConfig {
    /// HTTP path of the MQTT endpoint.
    pub path: String,
    /// Allowed `Origin` header values; empty allows any.
    pub allowed_origins: Vec<String>,
    /// With an allow-list, also accept upgrades that carry no `Origin` header. Browsers always
    /// send one (the allow-list protects against other sites' pages); devices usually do not.
    pub allow_missing_origin: bool,
}

impl Default for WebSocketConfig {
    fn default() -> Self {
        Self {
            path: "/mqtt".to_owned(),
            allowed_origins: Vec::new(),
            allow_missing_origin: true,
        }
    }
}

/// A tenant declared in the configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    /// Tenant slug.
    pub id: String,
    /// CA (PEM) whose client certificates identify devices of this tenant (mutual TLS).
    pub client_ca: Option<PathBuf>,
}

/// Per-connection and per-tenant limits. Each names what a client sees when it exceeds it.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest packet accepted, fixed header included (5.0: advertised as Maximum Packet Size;
    /// larger: DISCONNECT 0x95, or CONNACK 0x95 for CONNECT; 3.1.1: close).
    pub max_packet_size: u32,
    /// Inbound QoS 1/2 publishes a client may have unacknowledged (5.0: advertised as Receive
    /// Maximum; more: DISCONNECT 0x93. 3.1.1: the connection stops being read until acks go out).
    pub receive_maximum: u16,
    /// Outbound QoS 1/2 messages in flight to one client (capped further by the client's own
    /// Receive Maximum). Further messages wait in the session queue.
    pub max_inflight_messages: u16,
    /// Messages queued for one session (offline, or beyond the inflight window). When full, new
    /// messages for that session are dropped and counted.
    pub max_queued_messages: usize,
    /// Payload bytes queued for one session; same policy as `max_queued_messages`.
    pub max_queued_bytes: usize,
    /// Queue QoS 0 messages for offline persistent sessions (off by default, like Mosquitto).
    pub queue_qos0_messages: bool,
    /// Longest topic name or filter in bytes (5.0: PUBACK 0x90 / SUBACK 0x8F, 3.1.1: close /
    /// SUBACK 0x80).
    pub max_topic_length: usize,
    /// Most `/`-separated levels in a topic name or filter (same outcome as length).
    pub max_topic_levels: usize,
    /// Subscriptions one session may hold (SUBACK 0x97 quota exceeded / 0x80).
    pub max_subscriptions_per_session: usize,
    /// Longest client identifier (CONNACK 0x85 / 0x02).
    pub max_client_id_length: usize,
    /// Largest keep-alive accepted, seconds. 5.0 clients asking for more (or 0) are given this
    /// as Server Keep Alive; 3.1.1 clients asking for more are refused (CONNACK 0x02).
    pub max_keep_alive: u16,
    /// Longest session expiry, seconds; also the lifetime of 3.1.1 persistent sessions.
    pub max_session_expiry: u32,
    /// Seconds a new connection has to send CONNECT.
    pub connect_timeout_secs: u64,
    /// Topic aliases a 5.0 client may use towards us (Topic Alias Maximum in CONNACK).
    pub topic_alias_maximum: u16,
    /// Topic aliases we assign towards a client, at most (and at most what it allows).
    pub outbound_topic_aliases: u16,
    /// How long a publisher waits (reading paused) for a congested subscriber before that
    /// subscriber is treated as slow and its excess messages are dropped.
    pub max_publisher_pause_ms: u64,
    /// Failed CONNECTs (bad credentials) per client id in one window before that client id
    /// is refused (0x8A / 0x05) without checking credentials until the window ends.
    pub max_failed_connects_per_client_id: u32,
    /// Failed CONNECTs per source address in one window before that address is refused. Higher
    /// than per client id: many devices may share an address behind NAT.
    pub max_failed_connects_per_address: u32,
    /// The failed-connect window, in seconds.
    pub failed_connect_window_secs: u64,
    /// Concurrent connections per tenant (CONNACK 0x97 / 0x03); across all edges in the
    /// clustered shape.
    pub max_connections_per_tenant: usize,
    /// CONNECTs of one client id per second (fixed one-second windows; across all edges in the
    /// clustered shape). Stops two devices sharing a client id from taking the session from each
    /// other in a loop (CONNACK 0x9F / 0x03).
    pub max_connects_per_client_id_per_second: u32,
    /// Sessions (online and offline) per tenant (CONNACK 0x97 / 0x03).
    pub max_sessions_per_tenant: usize,
    /// Retained messages per tenant (5.0: PUBACK 0x97; 3.1.1: message dropped and logged).
    pub max_retained_messages: usize,
    /// Retained payload bytes per tenant (same policy).
    pub max_retained_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_packet_size: 1024 * 1024,
            receive_maximum: 1024,
            max_inflight_messages: 1024,
            max_queued_messages: 10_000,
            max_queued_bytes: 64 * 1024 * 1024,
            queue_qos0_messages: false,
            max_topic_length: 65_535,
            max_topic_levels: 128,
            max_subscriptions_per_session: 1_000,
            max_client_id_length: 256,
            max_keep_alive: 65_535,
            max_session_expiry: 7 * 24 * 3600,
            connect_timeout_secs: 10,
            topic_alias_maximum: 1024,
            max_publisher_pause_ms: 2000,
            max_failed_connects_per_client_id: 10,
            max_failed_connects_per_address: 100,
            failed_connect_window_secs: 60,
            outbound_topic_aliases: 64,
            max_connections_per_tenant: 1_000_000,
            max_connects_per_client_id_per_second: 30,
            max_sessions_per_tenant: 1_000_000,
            max_retained_messages: 1_000_000,
            max_retained_bytes: 1024 * 1024 * 1024,
        }
    }
}

impl Limits {
    /// The CONNECT deadline.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_secs(self.connect_timeout_secs)
    }
}

/// `$SYS/broker/...` publication.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SysConfig {
    /// Seconds between `$SYS` updates; 0 turns `$SYS` off.
    pub interval_secs: u64,
}

impl Default for SysConfig {
    fn default() -> Self {
        Self { interval_secs: 10 }
    }
}

/// How durable the embedded store is.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// `process` (default): a commit survives a crash of the broker process (SQLite WAL,
    /// synchronous=NORMAL). `power`: it also survives a power loss (fsync on every commit).
    pub durability: Durability,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            durability: Durability::Process,
        }
    }
}

/// What an acknowledged QoS 1/2 message survives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// Survives the broker process dying.
    Process,
    /// Survives the machine losing power.
    Power,
}

/// How access decisions are reported to clients. (Devices, credentials and rules themselves live
/// in the control plane.)
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AccessConfig {
    /// What a 5.0 client's SUBACK says for a filter the rules deny (3.1.1 has only 0x80).
    pub subscribe_denied: SubscribeDenied,
}

/// The SUBACK reason code of a denied subscription for MQTT 5.0 clients.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubscribeDenied {
    /// 0x80 Unspecified error, as AWS IoT Core answers, with the reason string "not
    /// authorized" when the client asked for problem information. Clients written against
    /// 3.1.1 semantics (and the Eclipse Paho interoperability suite) expect this.
    #[default]
    Unspecified,
    /// 0x87 Not authorized.
    NotAuthorized,
}

impl SubscribeDenied {
    /// The reason code.
    pub fn reason_code(self) -> stratus_codec::ReasonCode {
        match self {
            Self::Unspecified => stratus_codec::ReasonCode::UnspecifiedError,
            Self::NotAuthorized => stratus_codec::ReasonCode::NotAuthorized,
        }
    }
}

/// A configuration value that cannot work, with the key and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration `{key}`: {problem}")]
pub struct ConfigError {
    /// The offending key, as written in the TOML file.
    pub key: &'static str,
    /// What is wrong and how to fix it.
    pub problem: String,
}

impl BrokerConfig {
    /// Parses a TOML document (the `--config` file).
    pub fn from_toml(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// Checks every value; the first problem found is returned.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let l = &self.limits;
        let err = |key, problem: &str| {
            Err(ConfigError {
                key,
                problem: problem.to_owned(),
            })
        };
        if stratus_model::TenantId::new(&self.default_tenant).is_err() {
            return err(
                "default_tenant",
                "use 1-63 characters of a-z, 0-9 and '-' (a DNS label)",
            );
        }
        if !(64..=stratus_codec::MAX_PACKET_SIZE).contains(&l.max_packet_size) {
            return err(
                "limits.max_packet_size",
                "must be between 64 and 268435460 bytes",
            );
        }
        if l.max_failed_connects_per_client_id == 0 {
            return err(
                "limits.max_failed_connects_per_client_id",
                "must be at least 1",
            );
        }
        if l.max_failed_connects_per_address == 0 {
            return err(
                "limits.max_failed_connects_per_address",
                "must be at least 1",
            );
        }
        if l.failed_connect_window_secs == 0 {
            return err(
                "limits.failed_connect_window_secs",
                "must be at least 1 second",
            );
        }
        if l.receive_maximum == 0 {
            return err("limits.receive_maximum", "must be at least 1");
        }
        if l.max_inflight_messages == 0 {
            return err("limits.max_inflight_messages", "must be at least 1");
        }
        if l.max_queued_messages == 0 {
            return err("limits.max_queued_messages", "must be at least 1");
        }
        if l.max_topic_length == 0 || l.max_topic_length > 65_535 {
            return err("limits.max_topic_length", "must be between 1 and 65535");
        }
        if l.max_topic_levels == 0 {
            return err("limits.max_topic_levels", "must be at least 1");
        }
        if l.max_client_id_length < 23 {
            return err(
                "limits.max_client_id_length",
                "must be at least 23 (MQTT requires accepting 1-23 character client ids)",
            );
        }
        if l.max_keep_alive == 0 {
            return err("limits.max_keep_alive", "must be at least 1 second");
        }
        if l.connect_timeout_secs == 0 {
            return err("limits.connect_timeout_secs", "must be at least 1 second");
        }
        if l.max_connects_per_client_id_per_second == 0 {
            return err(
                "limits.max_connects_per_client_id_per_second",
                "must be at least 1",
            );
        }
        if l.max_connections_per_tenant == 0 || l.max_sessions_per_tenant == 0 {
            return err(
                "limits.max_connections_per_tenant",
                "connection and session caps must be at least 1",
            );
        }
        let tls_listener = self.mqtts_listen.is_some() || self.wss_listen.is_some();
        if tls_listener
            && !self.tls.self_signed
            && (self.tls.cert.is_none() || self.tls.key.is_none())
        {
            return err(
                "tls.cert",
                "a TLS listener (--mqtts-listen / --wss-listen) needs --tls-cert and --tls-key, \
                 or --tls-self-signed for development",
            );
        }
        if self.tls.cert.is_some() != self.tls.key.is_some() {
            return err("tls.key", "--tls-cert and --tls-key must be given together");
        }
        if self.tls.client_auth != ClientAuth::None
            && self.tls.client_ca.is_none()
            && self.tenants.iter().all(|t| t.client_ca.is_none())
        {
            return err(
                "tls.client_auth",
                "client certificates are requested but no CA is configured: set --tls-client-ca \
                 or a tenant's client_ca",
            );
        }
        for name in &self.proxy_protocol {
            let on = match name {
                ListenerName::Mqtt => true,
                ListenerName::Mqtts => self.mqtts_listen.is_some(),
                ListenerName::Ws => self.ws_listen.is_some(),
                ListenerName::Wss => self.wss_listen.is_some(),
            };
            if !on {
                return Err(ConfigError {
                    key: "proxy_protocol",
                    problem: format!("the {name} listener is not enabled"),
                });
            }
        }
        if let Some(domain) = &self.tenant_domain
            && (domain.is_empty()
                || domain.starts_with('.')
                || domain.contains(char::is_whitespace))
        {
            return err(
                "tenant_domain",
                "use a domain name such as mqtt.example.com",
            );
        }
        if !self.websocket.path.starts_with('/') {
            return err("websocket.path", "must start with '/', e.g. /mqtt");
        }
        for tenant in &self.tenants {
            if stratus_model::TenantId::new(&tenant.id).is_err() {
                return err("tenants.id", "use a valid tenant slug (a-z, 0-9, '-')");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(BrokerConfig::default().validate(), Ok(()));
    }

    #[test]
    fn toml_overrides_limits_and_rejects_unknown_keys() {
        let cfg = BrokerConfig::from_toml("[limits]\nmax_packet_size = 4096\n").unwrap();
        assert_eq!(cfg.limits.max_packet_size, 4096);
        assert_eq!(
            cfg.limits.receive_maximum,
            Limits::default().receive_maximum
        );
        let err = BrokerConfig::from_toml("[limits]\nmax_pakcet_size = 1\n").unwrap_err();
        assert!(err.contains("max_pakcet_size"), "{err}");
    }

    #[test]
    fn invalid_values_name_the_key() {
        let mut cfg = BrokerConfig::default();
        cfg.limits.receive_maximum = 0;
        assert_eq!(cfg.validate().unwrap_err().key, "limits.receive_maximum");
        let cfg = BrokerConfig {
            default_tenant: "Not A Slug".into(),
            ..Default::default()
        };
        assert_eq!(cfg.validate().unwrap_err().key, "default_tenant");
    }
}
