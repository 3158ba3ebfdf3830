//! [`connect`]: a [`ConnectionManager`] with bounded timeouts, and the URL redaction its errors
//! use.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::error::RedisStateError;

/// How long [`connect`] waits for Redis to answer before giving up.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// How long one command may wait for its reply once connected. Scripts here touch a bounded
/// number of keys, so anything slower means Redis is overloaded or gone.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Reconnection attempts after a connection drops, with exponential back-off, before a command
/// fails; the next command starts a new round.
const RECONNECT_RETRIES: usize = 4;

/// Connects to the Redis at `url` (`redis://[user:password@]host:port[/db]`) and returns a
/// manager that reconnects by itself.
///
/// Fails within [`CONNECT_TIMEOUT`] with an error naming the URL (password redacted) when Redis
/// does not answer.
pub async fn connect(url: &str) -> Result<ConnectionManager, RedisStateError> {
    let shown = redact_url(url);
    let client = redis::Client::open(url).map_err(|source| RedisStateError::InvalidUrl {
        url: shown.clone(),
        source,
    })?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_number_of_retries(RECONNECT_RETRIES)
        .set_max_delay(Duration::from_secs(1));
    // The manager has its own timeouts; this one bounds the whole attempt, retries included.
    match tokio::time::timeout(
        CONNECT_TIMEOUT,
        ConnectionManager::new_with_config(client, config),
    )
    .await
    {
        Ok(Ok(manager)) => Ok(manager),
        Ok(Err(source)) if source.is_timeout() => Err(RedisStateError::ConnectTimeout {
            url: shown,
            timeout: CONNECT_TIMEOUT,
        }),
        Ok(Err(source)) => Err(RedisStateError::Connect { url: shown, source }),
        Err(_elapsed) => Err(RedisStateError::ConnectTimeout {
            url: shown,
            timeout: CONNECT_TIMEOUT,
        }),
    }
}

/// `url` with the password of its user-info part replaced by `***`, so it can be logged.
pub(crate) fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let Some((user_info, host)) = authority.rsplit_once('@') else {
        return url.to_owned();
    };
    let user = match user_info.split_once(':') {
        Some((user, _password)) => format!("{user}:***"),
        None if user_info.is_empty() => String::new(),
        // `redis://secret@host`: a lone user-info part is the password.
        None => "***".to_owned(),
    };
    format!("{scheme}://{user}@{host}{path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_the_message() {
        for (url, shown) in [
            ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
            ("redis://:hunter2@cache:6379", "redis://:***@cache:6379"),
            ("rediss://app:hunter2@cache/3", "rediss://app:***@cache/3"),
            ("redis://hunter2@cache", "redis://***@cache"),
            ("redis://a:p@ss@cache/1", "redis://a:***@cache/1"),
            ("not a url", "not a url"),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
            assert!(!redact_url(url).contains("hunter2"));
        }
    }
}
