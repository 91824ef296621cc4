//! Authentication of every request: the `CurrentUser` extractors, and the caches that make a
//! verified request cost no database round trip.
//!
//! Sessions, users and API keys are cached for a short time. Every change that can take access
//! away (session revoked, user disabled or changed, key revoked) goes through
//! [`Auth::invalidate`], which drops the local entry at once and, with Redis, publishes the
//! invalidation so every other instance drops it too (well within a second).

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    extract::FromRequestParts,
    http::{header, request::Parts},
};
use futures::StreamExt;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{
    api_keys::{self, ApiKeyRow},
    password::Passwords,
    store::{self, UserRow},
    tokens::{TokenKeys, hmac_hex},
};
use crate::{
    config::Settings,
    db::Db,
    error::ApiError,
    http::{client_ip::ClientIp, rate_limit::Policy},
    redis::RedisHandle,
    state::AppState,
};

const CACHE_TTL: Duration = Duration::from_secs(60);

/// What can lose its access, and so must leave every instance's cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalidation {
    Session(Uuid),
    User(Uuid),
    ApiKey(String),
}

impl Invalidation {
    fn encode(&self) -> String {
        match self {
            Invalidation::Session(id) => format!("s:{id}"),
            Invalidation::User(id) => format!("u:{id}"),
            Invalidation::ApiKey(prefix) => format!("k:{prefix}"),
        }
    }
    fn decode(message: &str) -> Option<Invalidation> {
        let (kind, value) = message.split_once(':')?;
        match kind {
            "s" => Uuid::parse_str(value).ok().map(Invalidation::Session),
            "u" => Uuid::parse_str(value).ok().map(Invalidation::User),
            "k" => Some(Invalidation::ApiKey(value.to_owned())),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct SessionSnapshot {
    user_id: Uuid,
    active: bool,
    expires_at: OffsetDateTime,
}

/// Usage of an API key not yet written to the database.
#[derive(Debug, Clone)]
pub struct PendingUsage {
    pub count: i64,
    pub last_used_at: OffsetDateTime,
    pub last_used_ip: String,
}

/// Password attempts per client IP and per account.
pub struct LoginLimits {
    per_ip: Arc<Policy>,
    per_account: Arc<Policy>,
}

impl LoginLimits {
    pub async fn check_login(&self, ip: &str, account: &str) -> Result<(), ApiError> {
        for (policy, key) in [(&self.per_ip, ip), (&self.per_account, account)] {
            let decision = policy.check(key).await;
            if !decision.allowed {
                return Err(ApiError::rate_limited(decision.retry_after_secs));
            }
        }
        Ok(())
    }
}

pub struct Auth {
    pub keys: TokenKeys,
    pub passwords: Passwords,
    pub limits: LoginLimits,
    api_key_secret: Vec<u8>,
    sessions: moka::sync::Cache<Uuid, SessionSnapshot>,
    users: moka::sync::Cache<Uuid, Arc<UserRow>>,
    api_keys: moka::sync::Cache<String, Arc<ApiKeyRow>>,
    usage: Mutex<HashMap<Uuid, PendingUsage>>,
    redis: Option<Arc<RedisHandle>>,
}

fn cache<K: std::hash::Hash + Eq + Send + Sync + 'static, V: Clone + Send + Sync + 'static>() -> moka::sync::Cache<K, V>
{
    moka::sync::Cache::builder().max_capacity(100_000).time_to_live(CACHE_TTL).build()
}

impl Auth {
    pub fn new(settings: &Settings, redis: Option<Arc<RedisHandle>>) -> Auth {
        let secret = settings.secret_key.as_deref().expect("the secret key is resolved before the app is built");
        // API_KEY_HASH_SECRET when set; otherwise derived from SECRET_KEY (then rotating
        // SECRET_KEY also invalidates every API key, as the configuration docs say).
        let api_key_secret = match &settings.auth.api_key_hash_secret {
            Some(k) => k.as_bytes().to_vec(),
            None => hmac_hex(secret.as_bytes(), "recap api key hashing").into_bytes(),
        };
        Auth {
            keys: TokenKeys::new(secret, settings.auth.access_token_ttl),
            passwords: Passwords::new(settings.auth.password_hash_concurrency),
            limits: LoginLimits {
                per_ip: Policy::new(
                    "login_ip",
                    settings.auth.login_limit_per_ip,
                    Duration::from_secs(60),
                    redis.clone(),
                ),
                per_account: Policy::new(
                    "login_account",
                    settings.auth.login_limit_per_account,
                    Duration::from_secs(60),
                    redis.clone(),
                ),
            },
            api_key_secret,
            sessions: cache(),
            users: cache(),
            api_keys: cache(),
            usage: Mutex::new(HashMap::new()),
            redis,
        }
    }

    pub fn hash_api_key(&self, full_key: &str) -> String {
        hmac_hex(&self.api_key_secret, full_key)
    }

    /// Drops the entry here and tells every other instance to drop it too.
    pub async fn invalidate(&self, what: Invalidation) {
        self.apply(&what);
        if let Some(redis) = &self.redis {
            let channel = redis.key(&["invalidate"]);
            let published = async {
                let mut conn = redis.connection().await?;
                let _: i64 = redis::cmd("PUBLISH").arg(&channel).arg(what.encode()).query_async(&mut conn).await?;
                anyhow::Ok(())
            };
            if let Err(e) = published.await {
                // Other instances still expire the entry within the cache TTL.
                tracing::warn!(error = format!("{e:#}"), "could not publish a revocation to Redis");
            }
        }
    }

    fn apply(&self, what: &Invalidation) {
        match what {
            Invalidation::Session(id) => self.sessions.invalidate(id),
            Invalidation::User(id) => self.users.invalidate(id),
            Invalidation::ApiKey(prefix) => self.api_keys.invalidate(prefix),
        }
    }

    fn clear(&self) {
        self.sessions.invalidate_all();
        self.users.invalidate_all();
        self.api_keys.invalidate_all();
    }

    /// Listens for other instances' invalidations until shutdown, reconnecting as needed. After
    /// a (re)connection everything cached is dropped, since messages may have been missed.
    pub async fn listen_for_invalidations(self: Arc<Self>, shutdown: CancellationToken) {
        let Some(redis) = self.redis.clone() else { return };
        let channel = redis.key(&["invalidate"]);
        while !shutdown.is_cancelled() {
            let subscribed = async {
                let mut pubsub = redis.client().get_async_pubsub().await?;
                pubsub.subscribe(&channel).await?;
                anyhow::Ok(pubsub)
            };
            match subscribed.await {
                Ok(mut pubsub) => {
                    self.clear();
                    let mut messages = pubsub.on_message();
                    loop {
                        tokio::select! {
                            _ = shutdown.cancelled() => return,
                            message = messages.next() => match message {
                                Some(m) => {
                                    let payload: String = m.get_payload().unwrap_or_default();
                                    if let Some(what) = Invalidation::decode(&payload) {
                                        self.apply(&what);
                                    }
                                }
                                None => break,
                            },
                        }
                    }
                    tracing::warn!("lost the Redis revocation channel; reconnecting");
                }
                Err(e) => tracing::warn!(error = format!("{e:#}"), "could not subscribe to Redis revocations"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    async fn user(&self, db: &Db, id: Uuid) -> Result<Option<Arc<UserRow>>, ApiError> {
        if let Some(user) = self.users.get(&id) {
            return Ok(Some(user));
        }
        let Some(user) = store::user_by_id(db, id).await? else { return Ok(None) };
        let user = Arc::new(user);
        self.users.insert(id, user.clone());
        Ok(Some(user))
    }

    async fn session(&self, db: &Db, id: Uuid) -> Result<Option<SessionSnapshot>, ApiError> {
        if let Some(s) = self.sessions.get(&id) {
            return Ok(Some(s));
        }
        let Some(row) = store::session_by_id(db, id).await? else { return Ok(None) };
        let snapshot = SessionSnapshot { user_id: row.user_id, active: row.is_active, expires_at: row.expires_at };
        self.sessions.insert(id, snapshot);
        Ok(Some(snapshot))
    }

    async fn api_key(&self, db: &Db, prefix: &str) -> Result<Option<Arc<ApiKeyRow>>, ApiError> {
        if let Some(key) = self.api_keys.get(prefix) {
            return Ok(Some(key));
        }
        let Some(row) = api_keys::store::by_prefix(db, prefix).await? else { return Ok(None) };
        let row = Arc::new(row);
        self.api_keys.insert(prefix.to_owned(), row.clone());
        Ok(Some(row))
    }

    fn record_usage(&self, key_id: Uuid, ip: IpAddr) {
        let mut usage = self.usage.lock().expect("usage lock");
        let entry = usage.entry(key_id).or_insert_with(|| PendingUsage {
            count: 0,
            last_used_at: OffsetDateTime::now_utc(),
            last_used_ip: String::new(),
        });
        entry.count += 1;
        entry.last_used_at = OffsetDateTime::now_utc();
        entry.last_used_ip = ip.to_string();
    }

    /// Takes the buffered usage for writing; see [`api_keys::flush_usage`].
    pub fn take_usage(&self) -> HashMap<Uuid, PendingUsage> {
        std::mem::take(&mut *self.usage.lock().expect("usage lock"))
    }

    /// Verifies a JWT access token: signature, expiry, type, a live session, an enabled user.
    pub async fn authenticate_jwt(&self, db: &Db, token: &str) -> Result<Authenticated, ApiError> {
        let verified = self.keys.verify_access(token).ok_or_else(invalid_credentials)?;
        let session = self.session(db, verified.session_id).await?.ok_or_else(invalid_credentials)?;
        if !session.active || session.expires_at <= OffsetDateTime::now_utc() || session.user_id != verified.user_id {
            return Err(invalid_credentials());
        }
        let user = self.user(db, verified.user_id).await?.ok_or_else(invalid_credentials)?;
        check_account(&user)?;
        Ok(Authenticated { user, session_id: Some(verified.session_id), api_key: None })
    }

    /// Verifies an API key (`tgl_<id>_<secret>`) by its keyed hash; records usage in memory.
    pub async fn authenticate_api_key(&self, db: &Db, key: &str, ip: IpAddr) -> Result<Authenticated, ApiError> {
        let prefix = api_keys::parse_prefix(key).ok_or_else(invalid_credentials)?;
        let row = self.api_key(db, prefix).await?.ok_or_else(invalid_credentials)?;
        let presented = self.hash_api_key(key);
        let matches: bool = subtle::ConstantTimeEq::ct_eq(presented.as_bytes(), row.key_hash.as_bytes()).into();
        if !matches || row.status != "active" || row.expires_at.is_some_and(|at| at <= OffsetDateTime::now_utc()) {
            return Err(invalid_credentials());
        }
        let user = self.user(db, row.user_id).await?.ok_or_else(invalid_credentials)?;
        check_account(&user)?;
        self.record_usage(row.id, ip);
        Ok(Authenticated { user, session_id: None, api_key: Some(row) })
    }
}

/// Disabled accounts cannot authenticate; pending ones are told why.
fn check_account(user: &UserRow) -> Result<(), ApiError> {
    if !user.is_active || user.status == "retired" {
        return Err(ApiError::unauthorized("User account is disabled"));
    }
    if user.status == "pending" {
        return Err(ApiError::forbidden("User account is pending approval"));
    }
    Ok(())
}

fn invalid_credentials() -> ApiError {
    ApiError::unauthorized("Invalid authentication credentials")
}

pub struct Authenticated {
    pub user: Arc<UserRow>,
    pub session_id: Option<Uuid>,
    pub api_key: Option<Arc<ApiKeyRow>>,
}

/// A signed-in user, by JWT only (an API key here is refused with 401).
pub struct CurrentUser {
    pub user: Arc<UserRow>,
    pub session_id: Option<Uuid>,
    pub ip: IpAddr,
}

/// A user signed in by JWT or by API key (the routes machine clients call).
pub struct ApiCaller {
    pub user: Arc<UserRow>,
    pub api_key: Option<Arc<ApiKeyRow>>,
    pub ip: IpAddr,
}

impl ApiCaller {
    /// JWTs carry every scope of their user; an API key only the scopes it was given.
    pub fn require_scope(&self, scope: &str) -> Result<(), ApiError> {
        match &self.api_key {
            Some(key) if !key.scopes.split(',').any(|s| s.trim() == scope) => {
                Err(ApiError::forbidden(format!("API key lacks scope {scope}")))
            }
            _ => Ok(()),
        }
    }
}

/// An admin, by JWT.
pub struct AdminUser(pub CurrentUser);

fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    let value = parts.headers.get(header::AUTHORIZATION).ok_or_else(|| ApiError::unauthorized("Not authenticated"))?;
    let value = value.to_str().map_err(|_| invalid_credentials())?;
    let (scheme, token) = value.split_once(' ').ok_or_else(invalid_credentials)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(invalid_credentials());
    }
    Ok(token.trim())
}

fn client_ip(parts: &Parts) -> IpAddr {
    parts.extensions.get::<ClientIp>().map(|c| c.0).unwrap_or(IpAddr::from([127, 0, 0, 1]))
}

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = bearer(parts)?;
        if token.starts_with(api_keys::KEY_PREFIX) {
            return Err(invalid_credentials());
        }
        let auth = state.auth.authenticate_jwt(&state.db, token).await?;
        Ok(CurrentUser { user: auth.user, session_id: auth.session_id, ip: client_ip(parts) })
    }
}

/// `Option<CurrentUser>`: `None` without an `Authorization` header; a present but invalid
/// credential is still refused.
impl axum::extract::OptionalFromRequestParts<AppState> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Option<Self>, Self::Rejection> {
        if !parts.headers.contains_key(header::AUTHORIZATION) {
            return Ok(None);
        }
        <CurrentUser as FromRequestParts<AppState>>::from_request_parts(parts, state).await.map(Some)
    }
}

impl FromRequestParts<AppState> for ApiCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = bearer(parts)?;
        let ip = client_ip(parts);
        // A key is recognised by its prefix, so no JWT verification is wasted on it (and back).
        let auth = if token.starts_with(api_keys::KEY_PREFIX) {
            state.auth.authenticate_api_key(&state.db, token, ip).await?
        } else {
            state.auth.authenticate_jwt(&state.db, token).await?
        };
        Ok(ApiCaller { user: auth.user, api_key: auth.api_key, ip })
    }
}

impl FromRequestParts<AppState> for AdminUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let user = CurrentUser::from_request_parts(parts, state).await?;
        if !user.user.is_admin() {
            return Err(ApiError::forbidden("Role 'admin' required for this action"));
        }
        Ok(AdminUser(user))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalidations_survive_the_wire() {
        for what in [
            Invalidation::Session(Uuid::new_v4()),
            Invalidation::User(Uuid::new_v4()),
            Invalidation::ApiKey("tgl_abcd1234".into()),
        ] {
            assert_eq!(Invalidation::decode(&what.encode()), Some(what));
        }
        assert_eq!(Invalidation::decode("x:1"), None);
        assert_eq!(Invalidation::decode("s:not-a-uuid"), None);
    }
}
