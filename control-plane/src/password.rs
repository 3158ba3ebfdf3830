//! Device passwords: hashed with argon2id (the crate's default parameters, PHC string format) on
//! a blocking thread, because hashing is slow by design. The plain password is never stored,
//! returned or logged.

use std::fmt;

use argon2::Argon2;
use argon2::password_hash::PasswordHasher;

/// An argon2id PHC string (`$argon2id$v=19$...`).
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(String);

impl PasswordHash {
    /// The PHC string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(..)")
    }
}

/// Why a password could not be hashed.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// argon2 refused (e.g. the random salt could not be generated).
    #[error("cannot hash the password: {0}")]
    Hash(String),
    /// The hashing thread failed.
    #[error("the password hashing task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Hashes `password` with argon2id and a fresh random salt, off the async threads.
pub async fn hash_password(password: String) -> Result<PasswordHash, PasswordError> {
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|hash| PasswordHash(hash.to_string()))
            .map_err(|e| PasswordError::Hash(e.to_string()))
    })
    .await?
}

#[cfg(test)]
mod tests {
    use argon2::password_hash::PasswordVerifier;
    use argon2::password_hash::phc::PasswordHash as Phc;

    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2id_and_verify_only_the_right_password() {
        let hash = hash_password("correct horse".to_owned()).await.unwrap();
        assert!(hash.as_str().starts_with("$argon2id$"));
        assert_eq!(format!("{hash:?}"), "PasswordHash(..)");
        let parsed = Phc::new(hash.as_str()).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"correct horse", &parsed)
                .is_ok()
        );
        assert!(
            Argon2::default()
                .verify_password(b"wrong", &parsed)
                .is_err()
        );
    }
}
