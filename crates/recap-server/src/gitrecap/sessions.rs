//! Provider sessions: created only after the credential was validated, kept `SESSION_TTL`
//! seconds from creation (no renewal), in memory or — with `REDIS_URL` — in Redis under a key
//! that expires with them, so every instance sees them.
//!
//! The `session_id` a client holds is a signed token (HS256, claims `sid`, `iat`, `exp`, `typ`)
//! whose `sid` names the server-side state; an unknown, expired or tampered id is "not found".
//! The provider token is sealed with the instance's [`crate::crypto::Sealer`] before it is stored
//! and opened only when a provider is called.

use std::{net::IpAddr, sync::Arc, time::Duration};

use axum::http::StatusCode;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::providers::ProviderKind;
use crate::{
    accounts::tokens::{hmac_hex, random_token},
    config::Settings,
    error::{ApiError, ApiResult},
    redis::RedisHandle,
    state::AppState,
};

/// In-memory sessions at most (each is well under a kilobyte).
const MAX_MEMORY_SESSIONS: u64 = 100_000;
const TOKEN_TYPE: &str = "gitrecap_session";

/// One provider session.
#[derive(Clone, Serialize, Deserialize)]
pub struct Session {
    /// The server-side id (the `sid` claim of the client's `session_id`).
    pub sid: String,
    pub provider: ProviderKind,
    /// What `/pat` answered as `username`.
    pub username: String,
    /// The provider login: the default author (GitHub login, GitLab username, Azure unique name,
    /// Recap e-mail).
    pub login: String,
    /// Other names the provider knows the user by (display name, e-mails); GitLab and `local`
    /// match commit authors against them too.
    pub aliases: Vec<String>,
    /// GitLab instance or Azure DevOps organization URL.
    pub base_url: Option<String>,
    /// `local`: the Recap user.
    pub user_id: Option<Uuid>,
    /// Where the session was opened from (API-key usage is recorded against it).
    pub ip: Option<IpAddr>,
    sealed_token: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

impl std::fmt::Debug for Session {
    // The sealed token stays out of log lines too.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("sid", &self.sid)
            .field("provider", &self.provider)
            .field("username", &self.username)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// The provider credential, unsealed for one call.
    pub fn token(&self, state: &AppState) -> ApiResult<String> {
        state.sealer.open(&self.sealed_token).map_err(ApiError::internal)
    }

    /// Time left before the session expires (zero once it has).
    pub fn remaining(&self) -> Duration {
        let left = self.expires_at - OffsetDateTime::now_utc();
        Duration::try_from(left).unwrap_or(Duration::ZERO)
    }

    pub fn is_expired(&self) -> bool {
        self.expires_at <= OffsetDateTime::now_utc()
    }
}

/// A validated credential about to become a session.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub provider: ProviderKind,
    pub username: String,
    pub login: String,
    pub aliases: Vec<String>,
    pub base_url: Option<String>,
    pub user_id: Option<Uuid>,
    pub ip: Option<IpAddr>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sid: String,
    iat: i64,
    exp: i64,
    typ: String,
}

enum Backend {
    Memory(moka::sync::Cache<String, Arc<Session>>),
    Redis(Arc<RedisHandle>),
}

/// Where sessions live, and the key that signs their ids.
pub struct SessionStore {
    backend: Backend,
    ttl: Duration,
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

fn store_unavailable(cause: anyhow::Error) -> ApiError {
    tracing::error!(error = format!("{cause:#}"), "the Git Recap session store failed");
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "SERVICE_UNAVAILABLE", "Session store unavailable")
}

pub fn not_found() -> ApiError {
    ApiError::not_found("Session not found")
}

impl SessionStore {
    pub fn new(settings: &Settings, redis: Option<Arc<RedisHandle>>) -> SessionStore {
        let secret = settings.secret_key.as_deref().expect("the secret key is resolved before the app is built");
        // A key of its own, so a session id is never mistaken for an access token (or back).
        let key = hmac_hex(secret.as_bytes(), "recap gitrecap session ids");
        let ttl = settings.gitrecap.session_ttl;
        let backend = match redis {
            Some(redis) => Backend::Redis(redis),
            None => Backend::Memory(
                moka::sync::Cache::builder().max_capacity(MAX_MEMORY_SESSIONS).time_to_live(ttl).build(),
            ),
        };
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp"]);
        SessionStore {
            backend,
            ttl,
            encoding: EncodingKey::from_secret(key.as_bytes()),
            decoding: DecodingKey::from_secret(key.as_bytes()),
            validation,
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    pub fn is_shared(&self) -> bool {
        matches!(self.backend, Backend::Redis(_))
    }

    /// The `sid` of a well-signed, unexpired session id.
    fn sid_of(&self, session_id: &str) -> Option<String> {
        if session_id.is_empty() || session_id.len() > 1024 {
            return None;
        }
        let data = jsonwebtoken::decode::<Claims>(session_id, &self.decoding, &self.validation).ok()?;
        (data.claims.typ == TOKEN_TYPE).then_some(data.claims.sid)
    }

    fn redis_key(redis: &RedisHandle, sid: &str) -> String {
        redis.key(&["gitrecap", "session", sid])
    }

    async fn put(&self, session: &Session) -> ApiResult<()> {
        match &self.backend {
            Backend::Memory(cache) => {
                cache.insert(session.sid.clone(), Arc::new(session.clone()));
                Ok(())
            }
            Backend::Redis(redis) => {
                let value = serde_json::to_string(session).map_err(ApiError::internal)?;
                let stored = async {
                    let mut conn = redis.connection().await?;
                    let _: () = redis::cmd("SET")
                        .arg(Self::redis_key(redis, &session.sid))
                        .arg(value)
                        .arg("EX")
                        .arg(self.ttl.as_secs().max(1))
                        .query_async(&mut conn)
                        .await?;
                    anyhow::Ok(())
                };
                stored.await.map_err(store_unavailable)
            }
        }
    }

    async fn load(&self, sid: &str) -> ApiResult<Option<Arc<Session>>> {
        let session = match &self.backend {
            Backend::Memory(cache) => cache.get(sid),
            Backend::Redis(redis) => {
                let loaded = async {
                    let mut conn = redis.connection().await?;
                    let value: Option<String> =
                        redis::cmd("GET").arg(Self::redis_key(redis, sid)).query_async(&mut conn).await?;
                    anyhow::Ok(value)
                };
                match loaded.await.map_err(store_unavailable)? {
                    Some(value) => Some(Arc::new(serde_json::from_str::<Session>(&value).map_err(ApiError::internal)?)),
                    None => None,
                }
            }
        };
        Ok(session.filter(|s| s.sid == sid && !s.is_expired()))
    }

    async fn delete(&self, sid: &str) -> ApiResult<()> {
        match &self.backend {
            Backend::Memory(cache) => {
                cache.invalidate(sid);
                Ok(())
            }
            Backend::Redis(redis) => {
                let deleted = async {
                    let mut conn = redis.connection().await?;
                    let _: i64 = redis::cmd("DEL").arg(Self::redis_key(redis, sid)).query_async(&mut conn).await?;
                    anyhow::Ok(())
                };
                deleted.await.map_err(store_unavailable)
            }
        }
    }
}

/// Stores a session for a validated credential and returns the client's `session_id`.
pub async fn create(state: &AppState, new: NewSession, token: &str) -> ApiResult<String> {
    let store = &state.gitrecap.sessions;
    let now = OffsetDateTime::now_utc();
    let expires_at = now + store.ttl;
    let session = Session {
        sid: random_token(18),
        provider: new.provider,
        username: new.username,
        login: new.login,
        aliases: new.aliases,
        base_url: new.base_url,
        user_id: new.user_id,
        ip: new.ip,
        sealed_token: state.sealer.seal(token).map_err(ApiError::internal)?,
        created_at: now,
        expires_at,
    };
    let claims = Claims {
        sid: session.sid.clone(),
        iat: now.unix_timestamp(),
        // Rounded up: the id never dies before the state does (whose expiry is the one that counts).
        exp: expires_at.unix_timestamp() + 1,
        typ: TOKEN_TYPE.into(),
    };
    let session_id =
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &store.encoding).map_err(ApiError::internal)?;
    store.put(&session).await?;
    tracing::info!(provider = session.provider.as_str(), "opened a Git Recap session");
    Ok(session_id)
}

/// The session a client's `session_id` names: 404 `Session not found` when it is unknown,
/// expired, or not a session id this instance signed.
pub async fn get(state: &AppState, session_id: &str) -> ApiResult<Arc<Session>> {
    let store = &state.gitrecap.sessions;
    let sid = store.sid_of(session_id.trim()).ok_or_else(not_found)?;
    store.load(&sid).await?.ok_or_else(not_found)
}

/// Ends a session before its time (unknown ids are ignored).
pub async fn remove(state: &AppState, session_id: &str) -> ApiResult<()> {
    let store = &state.gitrecap.sessions;
    match store.sid_of(session_id.trim()) {
        Some(sid) => store.delete(&sid).await,
        None => Ok(()),
    }
}
