//! Field checks shared by the request types. Each check mirrors a constraint written into the
//! OpenAPI schema (lengths, ranges and the `PATTERNS`), so a request the schema allows passes,
//! and a request it forbids is answered 400 naming the field. Checks the schema cannot express
//! (topic filter grammar, PEM keys, a password without a user name) answer 422.

use serde::{Deserialize, Deserializer};

use super::error::ApiError;

/// The `pattern`s written into the OpenAPI schema (`#[schema(pattern = ...)]` needs literals),
/// each mirrored by a check below: plain text without control characters (C0, DEL, C1); a user
/// name (plain text without `@`, which separates device and tenant in `device@tenant`); a tenant
/// slug (one DNS label); a plan name; a SHA-256 fingerprint (64 hex digits, optionally as
/// colon-separated pairs).
#[cfg(test)]
pub(crate) const PATTERNS: &[&str] = &[
    r"^[^\u0000-\u001F\u007F-\u009F]*$",
    r"^[^\u0000-\u001F\u007F-\u009F@]*$",
    r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$",
    r"^[a-z0-9][a-z0-9_-]{0,62}$",
    r"^([0-9A-Fa-f]{64}|[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){31})$",
];

/// Longest display name, API key name or audience (characters).
pub(crate) const MAX_NAME: usize = 256;
/// Longest client id, client-id pattern or user name (characters).
pub(crate) const MAX_IDENTITY: usize = 256;
/// Longest password (characters).
pub(crate) const MAX_PASSWORD: usize = 1024;
/// Longest certificate subject (characters).
pub(crate) const MAX_SUBJECT: usize = 1024;
/// Priorities are within ±this.
pub(crate) const MAX_PRIORITY: i32 = 1_000_000;

/// Whether `c` is excluded by [`PLAIN_TEXT`].
fn is_control(c: char) -> bool {
    matches!(c, '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}')
}

/// Checks the length (in characters, as JSON Schema counts) of a required text field.
pub(crate) fn length(field: &str, value: &str, min: usize, max: usize) -> Result<(), ApiError> {
    let n = value.chars().count();
    if n < min {
        return Err(ApiError::bad_request(
            field,
            if min == 1 {
                format!("{field} cannot be empty")
            } else {
                format!("{field} needs at least {min} characters")
            },
        ));
    }
    if n > max {
        return Err(ApiError::bad_request(
            field,
            format!("{field} has {n} characters; at most {max} are allowed"),
        ));
    }
    Ok(())
}

/// Checks a [`PLAIN_TEXT`] field of 1..=`max` characters.
pub(crate) fn plain(field: &str, value: &str, max: usize) -> Result<(), ApiError> {
    length(field, value, 1, max)?;
    if value.chars().any(is_control) {
        return Err(ApiError::bad_request(
            field,
            format!("{field} cannot contain control characters"),
        ));
    }
    Ok(())
}

/// Checks a [`USERNAME`] field.
pub(crate) fn username(field: &str, value: &str) -> Result<(), ApiError> {
    plain(field, value, MAX_IDENTITY)?;
    if value.contains('@') {
        return Err(ApiError::bad_request(
            field,
            format!("{field} cannot contain '@' (devices connect as 'username@tenant')"),
        ));
    }
    Ok(())
}

/// Checks a [`PLAN`] name.
pub(crate) fn plan(field: &str, value: &str) -> Result<(), ApiError> {
    let mut chars = value.chars();
    let ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && value.len() <= 63
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            field,
            format!("{field} must be 1-63 of a-z, 0-9, '-', '_', starting with a letter or digit"),
        ))
    }
}

/// Checks a [`FINGERPRINT`] and returns it as 64 lowercase hex digits.
pub(crate) fn fingerprint(field: &str, value: &str) -> Result<String, ApiError> {
    let bytes = value.as_bytes();
    let paired = bytes.len() == 95
        && bytes.iter().enumerate().all(|(i, &b)| {
            if i % 3 == 2 {
                b == b':'
            } else {
                b.is_ascii_hexdigit()
            }
        });
    let plain = bytes.len() == 64 && bytes.iter().all(u8::is_ascii_hexdigit);
    if paired || plain {
        Ok(value.replace(':', "").to_ascii_lowercase())
    } else {
        Err(ApiError::bad_request(
            field,
            format!(
                "{field} must be a SHA-256 fingerprint: 64 hex digits, optionally as AB:CD:... pairs"
            ),
        ))
    }
}

/// Deserializes an optional whole number that JSON may spell `5` or `5.0` (JSON Schema's
/// `integer` admits both); a fraction or a value outside `i32` is refused.
pub(crate) fn optional_whole_number<'de, D>(deserializer: D) -> Result<Option<i32>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    use serde::Deserialize;
    use serde::de::Error;
    let Some(value) = Option::<serde_json::Number>::deserialize(deserializer)? else {
        return Ok(None);
    };
    let whole = if let Some(i) = value.as_i64() {
        Some(i)
    } else {
        value
            .as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() < 1e15)
            // The filter bounds the value well inside i64.
            .map(|f| f as i64)
    };
    whole
        .and_then(|i| i32::try_from(i).ok())
        .map(Some)
        .ok_or_else(|| D::Error::custom(format!("expected a whole number, got {value}")))
}

/// Checks a priority.
pub(crate) fn priority(field: &str, value: i32) -> Result<(), ApiError> {
    if !(-MAX_PRIORITY..=MAX_PRIORITY).contains(&value) {
        return Err(ApiError::bad_request(
            field,
            format!("{field} must be between -{MAX_PRIORITY} and {MAX_PRIORITY}"),
        ));
    }
    Ok(())
}

/// Checks an optional field with `check` when present.
pub(crate) fn optional<T: ?Sized>(
    value: Option<&T>,
    check: impl FnOnce(&T) -> Result<(), ApiError>,
) -> Result<(), ApiError> {
    value.map_or(Ok(()), check)
}

/// For PATCH bodies: a field that is absent stays as it is (`None`), `null` clears it
/// (`Some(None)`), a value sets it (`Some(Some(v))`). Use with `#[serde(default)]`.
pub(crate) fn patch_field<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    struct Priority {
        #[serde(default, deserialize_with = "optional_whole_number")]
        priority: Option<i32>,
    }

    fn parse_priority(json: &str) -> Result<Option<i32>, serde_json::Error> {
        serde_json::from_str::<Priority>(json).map(|p| p.priority)
    }

    #[test]
    fn whole_numbers_are_accepted_however_json_spells_them() {
        assert_eq!(parse_priority("{}").unwrap(), None);
        assert_eq!(parse_priority(r#"{"priority": null}"#).unwrap(), None);
        assert_eq!(parse_priority(r#"{"priority": -5}"#).unwrap(), Some(-5));
        assert_eq!(parse_priority(r#"{"priority": 7.0}"#).unwrap(), Some(7));
        assert_eq!(
            parse_priority(r#"{"priority": -2e3}"#).unwrap(),
            Some(-2000)
        );
        for bad in ["1.5", "3000000000", "1e300", "\"1\"", "true"] {
            let json = format!(r#"{{"priority": {bad}}}"#);
            assert!(parse_priority(&json).is_err(), "{json} was accepted");
        }
    }

    #[test]
    fn fingerprints_are_normalised_to_lowercase_hex() {
        let hex = "AB".repeat(32);
        assert_eq!(fingerprint("f", &hex).unwrap(), "ab".repeat(32));
        let pairs = vec!["Ab"; 32].join(":");
        assert_eq!(fingerprint("f", &pairs).unwrap(), "ab".repeat(32));
        assert!(fingerprint("f", &"ab".repeat(31)).is_err());
        assert!(fingerprint("f", &"zz".repeat(32)).is_err());
        assert!(fingerprint("f", &format!("{pairs}:")).is_err());
    }

    #[test]
    fn text_checks_count_characters_and_refuse_controls() {
        assert!(plain("name", "ünïcödé", 7).is_ok());
        assert!(plain("name", "ünïcödé!", 7).is_err());
        assert!(plain("name", "", 7).is_err());
        assert!(plain("name", "a\u{85}b", 7).is_err());
        assert!(username("username", "alice@acme").is_err());
        assert!(plan("plan", "pro_2").is_ok());
        assert!(plan("plan", "-pro").is_err());
        assert!(priority("priority", 1_000_001).is_err());
        assert!(priority("priority", -1_000_000).is_ok());
        assert!(priority("priority", i32::MIN).is_err());
    }
}
