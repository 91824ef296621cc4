//! Password hashing: argon2id off the async runtime, behind a concurrency bound.

use std::sync::Arc;

use argon2::{
    Argon2, PasswordHash, PasswordHasher as _, PasswordVerifier,
    password_hash::{SaltString, rand_core::OsRng},
};
use tokio::sync::{OnceCell, Semaphore};

#[derive(Clone)]
pub struct Passwords {
    permits: Arc<Semaphore>,
    /// Verified against when the account does not exist, so both paths cost the same.
    dummy_hash: Arc<OnceCell<String>>,
}

impl Passwords {
    pub fn new(concurrency: usize) -> Passwords {
        Passwords { permits: Arc::new(Semaphore::new(concurrency.max(1))), dummy_hash: Arc::new(OnceCell::new()) }
    }

    pub async fn hash(&self, password: &str) -> anyhow::Result<String> {
        let password = password.to_owned();
        let _permit = self.permits.acquire().await?;
        tokio::task::spawn_blocking(move || {
            let salt = SaltString::generate(&mut OsRng);
            Argon2::default()
                .hash_password(password.as_bytes(), &salt)
                .map(|h| h.to_string())
                .map_err(|e| anyhow::anyhow!("argon2 hashing failed: {e}"))
        })
        .await?
    }

    /// Checks `password` against `hash`; with no hash (unknown user, OAuth-only account) it still
    /// does the same work and answers `false`.
    pub async fn verify(&self, password: &str, hash: Option<&str>) -> anyhow::Result<bool> {
        let (hash, real) = match hash {
            Some(h) => (h.to_owned(), true),
            None => (self.dummy_hash.get_or_try_init(|| self.hash("recap-dummy-password")).await?.clone(), false),
        };
        let password = password.to_owned();
        let _permit = self.permits.acquire().await?;
        let matches = tokio::task::spawn_blocking(move || {
            let parsed = PasswordHash::new(&hash).map_err(|e| anyhow::anyhow!("stored hash is malformed: {e}"))?;
            Ok::<_, anyhow::Error>(Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
        })
        .await??;
        Ok(matches && real)
    }
}

/// 8 to 128 characters, with at least two kinds of character (letters, digits, others), and not
/// one of the passwords every attacker tries first.
pub fn check_strength(password: &str) -> Result<(), &'static str> {
    let len = password.chars().count();
    if len < 8 {
        return Err("Password must be at least 8 characters");
    }
    if len > 128 {
        return Err("Password must be at most 128 characters");
    }
    let letters = password.chars().any(char::is_alphabetic);
    let digits = password.chars().any(|c| c.is_ascii_digit());
    let others = password.chars().any(|c| !c.is_alphanumeric());
    if [letters, digits, others].iter().filter(|x| **x).count() < 2 {
        return Err("Password must mix letters with digits or symbols");
    }
    const COMMON: &[&str] = &["password1", "password123", "passw0rd", "qwerty123", "abc12345", "letmein1", "welcome1"];
    if COMMON.contains(&password.to_lowercase().as_str()) {
        return Err("Password is too common");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_unknown_users_never_match() {
        let p = Passwords::new(2);
        let hash = p.hash("correct horse 1").await.unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(p.verify("correct horse 1", Some(&hash)).await.unwrap());
        assert!(!p.verify("wrong horse 1", Some(&hash)).await.unwrap());
        assert!(!p.verify("recap-dummy-password", None).await.unwrap());
    }

    #[test]
    fn weak_passwords_are_refused() {
        for weak in ["short1", "abcdefghij", "1234567890", "Password1", &"a1".repeat(65)] {
            assert!(check_strength(weak).is_err(), "{weak}");
        }
        assert!(check_strength("tr0ub4dor&3").is_ok());
    }
}
