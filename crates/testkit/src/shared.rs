//! The services `scripts/test.sh` starts once for all tests, and names that keep tests apart on
//! them.

use std::ffi::OsString;

/// The URL of the shared NATS server (JetStream, no auth) from `STRATUS_TEST_NATS_URL`.
///
/// # Panics
///
/// When the variable is unset or empty, saying how to set it.
pub fn shared_nats_url() -> String {
    shared_url(
        "STRATUS_TEST_NATS_URL",
        "source scripts/services-test-up.sh",
    )
}

/// The URL of the shared Redis from `STRATUS_TEST_REDIS_URL`.
///
/// # Panics
///
/// When the variable is unset or empty, saying how to set it.
pub fn shared_redis_url() -> String {
    shared_url(
        "STRATUS_TEST_REDIS_URL",
        "source scripts/services-test-up.sh",
    )
}

/// The URL of the shared PostgreSQL server (superuser, trust authentication) from
/// `STRATUS_TEST_POSTGRES_URL`.
///
/// # Panics
///
/// When the variable is unset or empty, saying how to set it.
pub fn shared_postgres_url() -> String {
    shared_url("STRATUS_TEST_POSTGRES_URL", "source scripts/pg-test-up.sh")
}

fn shared_url(variable: &str, how_to_start: &str) -> String {
    match url_from_value(variable, how_to_start, std::env::var_os(variable)) {
        Ok(url) => url,
        Err(message) => panic!("{message}"),
    }
}

/// The URL held by `value`, or the message for a missing one.
fn url_from_value(
    variable: &str,
    how_to_start: &str,
    value: Option<OsString>,
) -> Result<String, String> {
    match value.map(|value| value.into_string()) {
        Some(Ok(url)) if !url.trim().is_empty() => Ok(url),
        Some(Err(raw)) => Err(format!("{variable} is not valid UTF-8: {raw:?}")),
        _ => Err(format!(
            "{variable} is not set: run through scripts/test.sh, or export {variable} \
             (`{how_to_start}` starts the service and exports it)"
        )),
    }
}

/// A fresh name for per-test isolation on shared services (pool, tenant, stream, key prefix):
/// `prefix` followed by 10 random characters from `[a-z0-9]`. `unique_name("t")` gives e.g.
/// `t0k3x9aq2mz`.
pub fn unique_name(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut name = String::with_capacity(prefix.len() + 10);
    name.push_str(prefix);
    for _ in 0..10 {
        name.push(char::from(ALPHABET[fastrand::usize(..ALPHABET.len())]));
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_have_the_prefix_and_ten_safe_characters() {
        let name = unique_name("t");
        assert_eq!(name.len(), 11);
        assert!(name.starts_with('t'));
        assert!(
            name[1..]
                .bytes()
                .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit())
        );
        assert_ne!(unique_name("t"), unique_name("t"));
    }

    #[test]
    fn a_missing_url_says_how_to_get_one() {
        let message = url_from_value("STRATUS_TEST_X_URL", "source x.sh", None).unwrap_err();
        assert!(message.contains("run through scripts/test.sh, or export STRATUS_TEST_X_URL"));
        assert!(message.contains("source x.sh"));
        let empty = url_from_value("STRATUS_TEST_X_URL", "", Some(OsString::new()));
        assert!(empty.is_err());
    }

    #[test]
    fn a_set_url_is_returned() {
        let url = url_from_value("V", "", Some("nats://127.0.0.1:4222".into())).unwrap();
        assert_eq!(url, "nats://127.0.0.1:4222");
    }
}
