//! The checks on the HTTP upgrade request: path, Origin allow-list and the `mqtt` subprotocol,
//! and what the connection keeps from the request (Host, Origin).

use tokio_tungstenite::tungstenite::handshake::server::{
    Callback, ErrorResponse, Request, Response,
};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::http::header::{
    CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HOST, HeaderMap, HeaderValue, ORIGIN,
    SEC_WEBSOCKET_PROTOCOL,
};

use crate::config::WebSocketConfig;

/// The only subprotocol MQTT over WebSocket uses ([MQTT-6.0.0-3], [MQTT-6.0.0-4]).
const MQTT_SUBPROTOCOL: &str = "mqtt";

/// Why an upgrade request was refused; the text is also the HTTP response body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refusal {
    /// The request path is not the configured MQTT endpoint.
    #[error("no MQTT endpoint at this path")]
    WrongPath,
    /// An Origin allow-list is configured and the request has no (ASCII) Origin header.
    #[error("the Origin header is required by this server")]
    MissingOrigin,
    /// The Origin is not in the allow-list.
    #[error("the Origin is not allowed by this server")]
    OriginNotAllowed,
    /// `mqtt` is not among the offered subprotocols.
    #[error(
        "the client must offer the \"mqtt\" WebSocket subprotocol (Sec-WebSocket-Protocol: mqtt)"
    )]
    NoMqttSubprotocol,
}

impl Refusal {
    /// The HTTP status of the refusal.
    pub(crate) fn status(self) -> StatusCode {
        match self {
            Self::WrongPath => StatusCode::NOT_FOUND,
            Self::MissingOrigin | Self::OriginNotAllowed => StatusCode::FORBIDDEN,
            Self::NoMqttSubprotocol => StatusCode::BAD_REQUEST,
        }
    }

    /// The HTTP response: status, a one-line plain-text body, and `Connection: close`.
    fn response(self) -> ErrorResponse {
        let body = format!("{self}\n");
        let mut response = ErrorResponse::new(None);
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
        headers.insert(CONNECTION, HeaderValue::from_static("close"));
        *response.body_mut() = Some(body);
        response
    }
}

/// What the handshake callback learnt from the request.
#[derive(Debug, Default)]
pub(super) struct Admission {
    /// `Host` without port, lowercase.
    pub(super) host: Option<String>,
    /// `Origin` as sent.
    pub(super) origin: Option<String>,
    /// Set when the request was refused.
    pub(super) refusal: Option<Refusal>,
}

/// The tungstenite handshake callback: records Host and Origin in `admission`, then accepts the
/// upgrade with the `mqtt` subprotocol or refuses it.
#[derive(Debug)]
pub(super) struct Gate<'a> {
    pub(super) admission: &'a mut Admission,
    pub(super) settings: &'a WebSocketConfig,
}

impl Callback for Gate<'_> {
    fn on_request(
        self,
        request: &Request,
        mut response: Response,
    ) -> Result<Response, ErrorResponse> {
        let headers = request.headers();
        let admission = self.admission;
        admission.host = headers
            .get(HOST)
            .and_then(|v| v.to_str().ok())
            .and_then(host_without_port);
        admission.origin = headers
            .get(ORIGIN)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if let Err(refusal) = check(request, admission.origin.as_deref(), self.settings) {
            admission.refusal = Some(refusal);
            return Err(refusal.response());
        }
        response.headers_mut().insert(
            SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(MQTT_SUBPROTOCOL),
        );
        Ok(response)
    }
}

/// Path, then Origin, then subprotocol.
fn check(
    request: &Request,
    origin: Option<&str>,
    settings: &WebSocketConfig,
) -> Result<(), Refusal> {
    if request.uri().path() != settings.path {
        return Err(Refusal::WrongPath);
    }
    if !settings.allowed_origins.is_empty()
        && let Some(origin) = origin.or(if settings.allow_missing_origin {
            None
        } else {
            Some("")
        })
    {
        if origin.is_empty() {
            return Err(Refusal::MissingOrigin);
        }
        // Scheme and host are case-insensitive; browsers send them lowercase anyway.
        let allowed = settings
            .allowed_origins
            .iter()
            .any(|a| a.eq_ignore_ascii_case(origin));
        if !allowed {
            return Err(Refusal::OriginNotAllowed);
        }
    }
    if !offers_mqtt(request.headers()) {
        return Err(Refusal::NoMqttSubprotocol);
    }
    Ok(())
}

/// True if any `Sec-WebSocket-Protocol` header lists `mqtt` (the header may repeat, and each
/// holds a comma-separated list).
fn offers_mqtt(headers: &HeaderMap) -> bool {
    headers
        .get_all(SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim() == MQTT_SUBPROTOCOL)
}

/// The host part of a `Host` header, lowercase, without port or trailing dot; `None` unless it
/// is a plain DNS name, IPv4 address or bracketed IPv6 literal.
pub(super) fn host_without_port(raw: &str) -> Option<String> {
    let raw = raw.trim();
    let (host, literal) = if let Some(inner) = raw.strip_prefix('[') {
        let (address, after) = inner.split_once(']')?;
        let port_ok = after.is_empty() || after.strip_prefix(':').is_some_and(is_port);
        let address_ok = !address.is_empty()
            && address
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
        if !port_ok || !address_ok {
            return None;
        }
        (&raw[..address.len() + 2], true)
    } else {
        match raw.rsplit_once(':') {
            Some((host, port)) if is_port(port) => (host, false),
            Some(_) => return None,
            None => (raw, false),
        }
    };
    if literal {
        return Some(host.to_ascii_lowercase());
    }
    let host = host.strip_suffix('.').unwrap_or(host);
    let name_ok = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
    name_ok.then(|| host.to_ascii_lowercase())
}

/// An optional decimal port (RFC 3986 allows `host:` with an empty port).
fn is_port(s: &str) -> bool {
    s.len() <= 5 && s.bytes().all(|b| b.is_ascii_digit())
}
