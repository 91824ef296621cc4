//! Secrets stored for integrations (repository tokens, service credentials) are sealed with
//! AES-256-GCM and never returned by the API.
//!
//! The key is `CREDENTIALS_ENCRYPTION_KEY` when set (any string; its SHA-256 is the key), else
//! derived from `SECRET_KEY`. Sealed values are `v1:<base64(nonce || ciphertext)>`.

use aes_gcm::{
    Aes256Gcm, KeyInit, Nonce,
    aead::{Aead, AeadCore, OsRng},
};
use base64::{Engine, engine::general_purpose::STANDARD};
use sha2::{Digest, Sha256};

#[derive(Clone)]
pub struct Sealer {
    cipher: Aes256Gcm,
}

impl Sealer {
    pub fn new(key_material: &str) -> Sealer {
        let key = Sha256::digest(key_material.as_bytes());
        Sealer { cipher: Aes256Gcm::new_from_slice(&key).expect("SHA-256 is 32 bytes") }
    }

    pub fn seal(&self, plaintext: &str) -> anyhow::Result<String> {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let ciphertext =
            self.cipher.encrypt(&nonce, plaintext.as_bytes()).map_err(|_| anyhow::anyhow!("encryption failed"))?;
        let mut sealed = nonce.to_vec();
        sealed.extend(ciphertext);
        Ok(format!("v1:{}", STANDARD.encode(sealed)))
    }

    pub fn open(&self, sealed: &str) -> anyhow::Result<String> {
        let raw = sealed.strip_prefix("v1:").ok_or_else(|| anyhow::anyhow!("unknown sealed format"))?;
        let bytes = STANDARD.decode(raw)?;
        anyhow::ensure!(bytes.len() > 12, "sealed value too short");
        let (nonce, ciphertext) = bytes.split_at(12);
        let nonce: [u8; 12] = nonce.try_into()?;
        let plaintext = self
            .cipher
            .decrypt(&Nonce::from(nonce), ciphertext)
            .map_err(|_| anyhow::anyhow!("decryption failed (wrong key or tampered value)"))?;
        Ok(String::from_utf8(plaintext)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_the_same_key() {
        let sealer = Sealer::new("key one");
        let sealed = sealer.seal("ghp_secret_token").unwrap();
        assert!(!sealed.contains("ghp_secret_token"));
        assert_ne!(sealed, sealer.seal("ghp_secret_token").unwrap(), "a fresh nonce every time");
        assert_eq!(sealer.open(&sealed).unwrap(), "ghp_secret_token");
        assert!(Sealer::new("key two").open(&sealed).is_err());
        let mut tampered = sealed.clone();
        tampered.pop();
        tampered.push(if sealed.ends_with('A') { 'B' } else { 'A' });
        assert!(sealer.open(&tampered).is_err());
    }
}
