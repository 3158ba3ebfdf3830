//! The HTTP side: GET requests to the control plane's `/internal/v1` routes with the operator
//! token, a timeout on each, and answers decoded as the model's records.

use std::fmt;

use reqwest::header::{AUTHORIZATION, HeaderValue};
use reqwest::{StatusCode, Url};
use serde::de::DeserializeOwned;

use crate::{RemoteDirectoryConfig, RemoteDirectoryError};

/// The path of every route below the base URL.
const PREFIX: [&str; 2] = ["internal", "v1"];

/// Why one request failed.
#[derive(Debug)]
pub(crate) enum RequestFailure {
    /// No answer: connection refused or reset, timeout, DNS.
    Transport(String),
    /// An answer other than the one expected.
    Status(StatusCode),
    /// A 200 whose body is not the expected JSON.
    Body(String),
}

impl fmt::Display for RequestFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Transport(reason) => f.write_str(reason),
            Self::Status(status) => write!(f, "answered HTTP {status}"),
            Self::Body(reason) => write!(f, "answered an unreadable body: {reason}"),
        }
    }
}

/// A client of one control plane.
pub(crate) struct ControlPlaneClient {
    http: reqwest::Client,
    /// The configured URL, ending in `/`.
    base: Url,
    /// `Bearer <token>`, marked sensitive.
    authorization: HeaderValue,
}

impl fmt::Debug for ControlPlaneClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ControlPlaneClient")
            .field("base", &self.base.as_str())
            .field("token", &"..")
            .finish()
    }
}

impl ControlPlaneClient {
    /// Checks the configuration and builds the HTTP client (no request yet).
    pub(crate) fn new(config: &RemoteDirectoryConfig) -> Result<Self, RemoteDirectoryError> {
        let invalid = |reason: &str| RemoteDirectoryError::InvalidUrl {
            url: config.url.clone(),
            reason: reason.to_owned(),
        };
        let mut base = Url::parse(&config.url).map_err(|e| invalid(&e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(invalid("use http://HOST:PORT or https://HOST:PORT"));
        }
        if base.query().is_some() || base.fragment().is_some() {
            return Err(invalid("a query or fragment is not allowed"));
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let token = config.token.trim();
        let mut authorization = HeaderValue::from_str(&format!("Bearer {token}"))
            .ok()
            .filter(|_| !token.is_empty())
            .ok_or(RemoteDirectoryError::TokenMalformed)?;
        authorization.set_sensitive(true);
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout)
            .no_proxy()
            .build()
            .map_err(|e| RemoteDirectoryError::Client(describe(e)))?;
        Ok(Self {
            http,
            base,
            authorization,
        })
    }

    /// The configured base URL.
    pub(crate) fn base(&self) -> &str {
        self.base.as_str()
    }

    /// `base/internal/v1/<segments>?<query>`, each segment and pair percent-encoded.
    fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Url {
        let mut url = self.base.clone();
        // The base is http(s) (checked in `new`), so it has path segments.
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(PREFIX).extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    /// The path of a route, for messages (no query: it may hold user names).
    pub(crate) fn describe_route(segments: &[&str]) -> String {
        let mut path = String::from("/internal/v1");
        for segment in segments {
            path.push('/');
            path.push_str(segment);
        }
        path
    }

    /// GETs a route: `Some` on 200, `None` on 404, a failure otherwise.
    pub(crate) async fn get<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        query: &[(&str, &str)],
    ) -> Result<Option<T>, RequestFailure> {
        let response = self
            .http
            .get(self.url(segments, query))
            .header(AUTHORIZATION, self.authorization.clone())
            .send()
            .await
            .map_err(|e| RequestFailure::Transport(describe(e)))?;
        match response.status() {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => return Ok(None),
            status => return Err(RequestFailure::Status(status)),
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| RequestFailure::Transport(describe(e)))?;
        serde_json::from_slice(&body)
            .map(Some)
            .map_err(|e| RequestFailure::Body(e.to_string()))
    }
}

/// A reqwest error and its causes on one line, without the URL (its query may hold user names).
pub(crate) fn describe(err: reqwest::Error) -> String {
    let err = err.without_url();
    let mut text = if err.is_timeout() {
        "timed out".to_owned()
    } else {
        err.to_string()
    };
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
