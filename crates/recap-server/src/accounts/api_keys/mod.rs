//! API keys for machine clients (gitleague-client): `tgl_<8 alphanumerics>_<secret>`.
//!
//! Only an HMAC of the whole key is stored, and verification is one keyed hash and a
//! constant-time compare (never argon2 per request). Usage is counted in memory and written in
//! batches by [`flush_usage`], so a busy key costs no database write per request.

pub mod model;
pub mod routes;
pub mod store;

use std::{sync::Arc, time::Duration};

use rand::{Rng, distr::Alphanumeric};
use tokio_util::sync::CancellationToken;

pub use store::ApiKeyRow;

use super::auth::Auth;
use crate::db::Db;

pub const KEY_PREFIX: &str = "tgl_";
pub const SCOPES: [&str; 2] = ["sync:commits", "read:repos"];

/// A new key: `(full_key, prefix)`. 8 alphanumerics of id, 43 base64url characters (256 bits) of secret.
pub fn generate() -> (String, String) {
    let id: String = rand::rng().sample_iter(&Alphanumeric).take(8).map(char::from).collect();
    let prefix = format!("{KEY_PREFIX}{id}");
    let full = format!("{prefix}_{}", super::tokens::random_token(32));
    (full, prefix)
}

/// The lookup prefix (`tgl_` + 8 characters) of a well-formed key, whatever the id's alphabet.
pub fn parse_prefix(key: &str) -> Option<&str> {
    let bytes = key.as_bytes();
    if !key.starts_with(KEY_PREFIX) || bytes.len() < 14 || bytes[12] != b'_' || !key.is_char_boundary(12) {
        return None;
    }
    Some(&key[..12])
}

/// Writes buffered usage every `every` until shutdown, and once more on the way out.
pub async fn flush_usage_periodically(auth: Arc<Auth>, db: Db, every: Duration, shutdown: CancellationToken) {
    loop {
        let stopping = tokio::select! {
            _ = shutdown.cancelled() => true,
            _ = tokio::time::sleep(every) => false,
        };
        flush_usage(&auth, &db).await;
        if stopping {
            return;
        }
    }
}

pub async fn flush_usage(auth: &Auth, db: &Db) {
    let pending = auth.take_usage();
    if pending.is_empty() {
        return;
    }
    if let Err(e) = store::add_usage(db, &pending).await {
        // Usage is statistics: losing one batch is better than blocking requests on it.
        tracing::warn!(error = %e, keys = pending.len(), "could not record API key usage");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_the_documented_shape() {
        for _ in 0..200 {
            let (full, prefix) = generate();
            assert_eq!(prefix.len(), 12);
            assert!(prefix[4..].chars().all(|c| c.is_ascii_alphanumeric()), "{prefix}");
            assert!(full.len() >= 45, "{full}");
            assert_eq!(parse_prefix(&full), Some(prefix.as_str()));
        }
        // Legacy ids containing '_' still parse by position.
        assert_eq!(parse_prefix("tgl_ab_d1234_secretsecret"), Some("tgl_ab_d1234"));
        for bad in ["tgl_short", "xyz_abcd1234_secret", "tgl_abcd1234-secret", ""] {
            assert_eq!(parse_prefix(bad), None, "{bad}");
        }
    }
}
