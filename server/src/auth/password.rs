//! Password hashing with argon2id (the `argon2` crate's defaults follow
//! OWASP's recommended parameters). Hashing is deliberately slow: callers on
//! the async runtime run these in `spawn_blocking`.

use argon2::Argon2;
use argon2::password_hash::{
    PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng,
};

pub const MIN_LEN: usize = 8;
/// Bounds the work a hostile client can make us do per login attempt.
pub const MAX_LEN: usize = 256;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PasswordError {
    #[error("passwords need at least {MIN_LEN} characters")]
    TooShort,
    #[error("passwords may have at most {MAX_LEN} characters")]
    TooLong,
}

pub fn check_strength(password: &str) -> Result<(), PasswordError> {
    let n = password.chars().count();
    if n < MIN_LEN {
        Err(PasswordError::TooShort)
    } else if password.len() > MAX_LEN {
        Err(PasswordError::TooLong)
    } else {
        Ok(())
    }
}

pub fn hash(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        // Only fails for parameters out of range, and ours are the defaults.
        .expect("argon2 with default parameters hashes any input")
}

/// Verifies a password against a stored PHC string. A corrupt stored hash
/// counts as a mismatch rather than an error the attacker could observe.
pub fn verify(password: &str, stored: &str) -> bool {
    if password.len() > MAX_LEN {
        return false;
    }
    match PasswordHash::new(stored) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// Spends the same time as a real verification, so a login for an unknown
/// name cannot be told apart from a wrong password by timing.
pub fn verify_dummy(password: &str) {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let stored = DUMMY.get_or_init(|| hash("layerlab-dummy-password"));
    let _ = verify(password, stored);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_verifies_only_the_same_password() {
        let stored = hash("correct horse");
        assert!(stored.starts_with("$argon2id$"));
        assert!(verify("correct horse", &stored));
        assert!(!verify("correct horsE", &stored));
        assert!(!verify("correct horse", "not a phc string"));
    }

    #[test]
    fn strength_rules() {
        assert_eq!(check_strength("short"), Err(PasswordError::TooShort));
        assert_eq!(
            check_strength(&"x".repeat(300)),
            Err(PasswordError::TooLong)
        );
        assert_eq!(check_strength("long enough"), Ok(()));
    }
}
