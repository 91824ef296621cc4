//! Access tokens (HS256 JWTs), opaque refresh tokens, and the hashes they are stored under.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

#[derive(Debug, Serialize, Deserialize)]
pub struct AccessClaims {
    pub sub: String,
    pub sid: String,
    pub jti: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub iat: i64,
    pub exp: i64,
}

pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    access_ttl_secs: i64,
}

/// What a verified access token says.
#[derive(Debug, Clone, Copy)]
pub struct VerifiedAccess {
    pub user_id: Uuid,
    pub session_id: Uuid,
}

impl TokenKeys {
    pub fn new(secret: &str, access_ttl: std::time::Duration) -> TokenKeys {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "sub"]);
        TokenKeys {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            validation,
            access_ttl_secs: access_ttl.as_secs() as i64,
        }
    }

    pub fn access_ttl_secs(&self) -> i64 {
        self.access_ttl_secs
    }

    pub fn issue_access(&self, user_id: Uuid, session_id: Uuid) -> anyhow::Result<String> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let claims = AccessClaims {
            sub: user_id.to_string(),
            sid: session_id.to_string(),
            jti: Uuid::new_v4().simple().to_string(),
            kind: "access".into(),
            iat: now,
            exp: now + self.access_ttl_secs,
        };
        Ok(jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)?)
    }

    /// Signature (HS256 only, so `alg: none` and other algorithms fail), expiry and `type`.
    pub fn verify_access(&self, token: &str) -> Option<VerifiedAccess> {
        let data = jsonwebtoken::decode::<AccessClaims>(token, &self.decoding, &self.validation).ok()?;
        if data.claims.kind != "access" {
            return None;
        }
        Some(VerifiedAccess {
            user_id: Uuid::parse_str(&data.claims.sub).ok()?,
            session_id: Uuid::parse_str(&data.claims.sid).ok()?,
        })
    }

    /// Signs arbitrary claims with the instance key (magic links, OAuth state, tests).
    pub fn sign<T: Serialize>(&self, claims: &T) -> anyhow::Result<String> {
        Ok(jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)?)
    }
}

/// `bytes` of randomness, base64url without padding.
pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

/// How opaque tokens (refresh, magic link) are stored: SHA-256 hex. They are random and long,
/// so a fast hash is enough; the database never holds a usable token.
pub fn sha256_hex(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// HMAC-SHA256 hex, for API keys (keyed so a leaked table cannot be brute-forced offline).
pub fn hmac_hex(key: &[u8], message: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(message.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_tokens_round_trip_and_reject_tampering() {
        let keys = TokenKeys::new("k".repeat(32).as_str(), std::time::Duration::from_secs(60));
        let (user, session) = (Uuid::new_v4(), Uuid::new_v4());
        let token = keys.issue_access(user, session).unwrap();
        let verified = keys.verify_access(&token).unwrap();
        assert_eq!((verified.user_id, verified.session_id), (user, session));
        // Two tokens in the same second differ (the jti).
        assert_ne!(token, keys.issue_access(user, session).unwrap());

        let other = TokenKeys::new("x".repeat(32).as_str(), std::time::Duration::from_secs(60));
        assert!(other.verify_access(&token).is_none(), "wrong key");

        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let payload = token.split('.').nth(1).unwrap();
        assert!(keys.verify_access(&format!("{header}.{payload}.")).is_none(), "alg none");

        let refresh_typed = AccessClaims {
            sub: user.to_string(),
            sid: session.to_string(),
            jti: "j".into(),
            kind: "refresh".into(),
            iat: 0,
            exp: time::OffsetDateTime::now_utc().unix_timestamp() + 60,
        };
        assert!(keys.verify_access(&keys.sign(&refresh_typed).unwrap()).is_none(), "wrong type");
        let expired = AccessClaims { kind: "access".into(), exp: 1_000_000, ..refresh_typed };
        assert!(keys.verify_access(&keys.sign(&expired).unwrap()).is_none(), "expired");
    }
}
