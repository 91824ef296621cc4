//! Passwordless sign-in by magic link.
//!
//! `POST /api/v1/auth/magic-link` stores the SHA-256 of a random token and mails the link; the
//! answer is the same whether or not the account exists. `GET /api/v1/auth/verify?token=` spends
//! the token (once, within 15 minutes), creates the account on first use and signs it in. The token
//! itself is never stored, never answered, and never logged (except by the mailer of a
//! development instance without SMTP, see [`crate::mail`]).

use std::{sync::Arc, time::Duration};

use axum::extract::State;
use serde::{Deserialize, Serialize};
use sqlx::FromRow;
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    model::{TokenOut, parse_email},
    service::{self, RequestMeta},
    store::{self, NewUser, UserRow},
    tokens::{random_token, sha256_hex},
};
use crate::{
    audit::{self, AuditEntry},
    db::{Tx, is_unique_violation},
    error::{ApiError, ApiResult, ErrorEnvelope},
    http::{
        extract::{Json, Query},
        rate_limit::Policy,
    },
    on_tx,
    redis::RedisHandle,
    state::AppState,
};

/// How long a link works.
pub const MAGIC_LINK_TTL: Duration = Duration::from_secs(15 * 60);

/// Requests per minute, per client IP and per e-mail address.
const REQUESTS_PER_MINUTE: u32 = 5;

/// Rows this long past their expiry are deleted when the same address asks again (until then a
/// reused or late link still gets its precise error).
const KEEP_EXPIRED: time::Duration = time::Duration::days(1);

/// The two request budgets, created once per app.
pub struct MagicLinkLimits {
    per_ip: Arc<Policy>,
    per_email: Arc<Policy>,
}

impl MagicLinkLimits {
    pub fn new(redis: Option<Arc<RedisHandle>>) -> MagicLinkLimits {
        let minute = Duration::from_secs(60);
        MagicLinkLimits {
            per_ip: Policy::new("magic_link_ip", REQUESTS_PER_MINUTE, minute, redis.clone()),
            per_email: Policy::new("magic_link_email", REQUESTS_PER_MINUTE, minute, redis),
        }
    }
}

async fn check(policy: &Policy, key: &str) -> ApiResult<()> {
    let decision = policy.check(key).await;
    if !decision.allowed {
        return Err(ApiError::rate_limited(decision.retry_after_secs));
    }
    Ok(())
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct MagicLinkIn {
    pub email: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MagicLinkOut {
    /// `Magic link sent to <email>`, whether or not the account exists.
    pub message: String,
    /// Seconds the link stays valid (900).
    pub expires_in: u64,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct VerifyParams {
    /// The token from the mailed link.
    pub token: String,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(request_magic_link)).routes(routes!(verify))
}

/// Mail a single-use sign-in link (valid 15 minutes). Same answer for known and unknown addresses.
#[utoipa::path(post, path = "/api/v1/auth/magic-link", tag = "auth", request_body = MagicLinkIn, responses(
    (status = 200, body = MagicLinkOut), (status = 422, body = ErrorEnvelope), (status = 429, body = ErrorEnvelope)))]
async fn request_magic_link(
    State(state): State<AppState>,
    meta: RequestMeta,
    Json(input): Json<MagicLinkIn>,
) -> ApiResult<axum::Json<MagicLinkOut>> {
    // The IP budget first, so malformed requests spend it too.
    check(&state.magic_links.per_ip, &meta.ip.to_string()).await?;
    let email = parse_email(&input.email, "email")?;
    check(&state.magic_links.per_email, email.as_str()).await?;

    let token = random_token(32);
    let now = OffsetDateTime::now_utc();
    let mut tx = state.db.begin().await?;
    delete_stale(&mut tx, email.as_str(), now).await?;
    insert(&mut tx, &sha256_hex(&token), email.as_str(), now + MAGIC_LINK_TTL, now).await?;
    audit::record(
        &mut tx,
        AuditEntry::new("magic_link_request", None, Some(meta.ip)).details(format!("email {}", email.as_str())),
    )
    .await?;
    tx.commit().await?;

    // After the commit: the link works by the time it arrives. A failure changes nothing in the
    // answer (it would tell the caller something about the address); it is logged, without the token.
    if let Err(e) = state.mailer.send_magic_link(email.as_str(), &token, MAGIC_LINK_TTL).await {
        tracing::error!(error = format!("{e:#}"), "could not deliver a magic link");
    }
    Ok(axum::Json(MagicLinkOut {
        message: format!("Magic link sent to {}", email.as_str()),
        expires_in: MAGIC_LINK_TTL.as_secs(),
    }))
}

/// Exchange a magic-link token for tokens. The first use of an unknown address creates the account.
#[utoipa::path(get, path = "/api/v1/auth/verify", tag = "auth", params(VerifyParams), responses(
    (status = 200, body = TokenOut), (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
    (status = 422, body = ErrorEnvelope)))]
async fn verify(
    State(state): State<AppState>,
    meta: RequestMeta,
    Query(params): Query<VerifyParams>,
) -> ApiResult<axum::Json<TokenOut>> {
    let hash = sha256_hex(params.token.trim());
    // A concurrent sign-up of the same address can win the insert; the token is then still
    // unspent (the transaction rolled back) and the second attempt finds the account.
    let user = match redeem(&state, &hash, &meta).await? {
        Some(user) => user,
        None => redeem(&state, &hash, &meta).await?.ok_or_else(|| {
            ApiError::internal(anyhow::anyhow!("magic link: the account vanished between two attempts"))
        })?,
    };
    if !user.is_active || user.status == "retired" {
        return Err(ApiError::unauthorized("User account is disabled"));
    }
    if user.status == "pending" {
        return Err(ApiError::forbidden("User account is pending approval"));
    }
    Ok(axum::Json(service::sign_in(&state, &user, &meta, "magic_link_login").await?))
}

/// Spends the token and finds (or creates) its account, in one transaction. A presented valid
/// token is spent even when the account then may not sign in. `None`: lost a creation race.
async fn redeem(state: &AppState, hash: &str, meta: &RequestMeta) -> ApiResult<Option<UserRow>> {
    let mut tx = state.db.begin().await?;
    let link = by_hash(&mut tx, hash).await?.ok_or_else(|| ApiError::unauthorized("Invalid or expired token"))?;
    let used = || ApiError::unauthorized("Token already used or invalid");
    if link.used_at.is_some() {
        return Err(used());
    }
    let now = OffsetDateTime::now_utc();
    if link.expires_at <= now {
        return Err(ApiError::unauthorized("Token has expired"));
    }
    if !spend(&mut tx, hash, now).await? {
        return Err(used());
    }
    let user = match store::user_by_email_tx(&mut tx, &link.email).await? {
        Some(user) => user,
        None => {
            let first = !store::has_real_users(&mut tx).await?;
            let role = if first { "admin" } else { "member" };
            let status = if !first && state.settings.auth.signup_requires_approval { "pending" } else { "approved" };
            let new = NewUser {
                email: Some(link.email.as_str()),
                password_hash: None,
                full_name: None,
                role,
                status,
                remaining_imports: None,
                remaining_messages: None,
            };
            let user = match store::insert_user(&mut tx, &new).await {
                Ok(user) => user,
                Err(e) if is_unique_violation(&e) => return Ok(None),
                Err(e) => return Err(e.into()),
            };
            audit::record(
                &mut tx,
                AuditEntry::new("magic_link_signup", Some(user.id), Some(meta.ip))
                    .resource("user", user.id)
                    .details(format!("role {role}, status {status}")),
            )
            .await?;
            user
        }
    };
    tx.commit().await?;
    Ok(Some(user))
}

// ----- SQL -----

#[derive(Debug, FromRow)]
struct MagicLinkRow {
    email: String,
    expires_at: OffsetDateTime,
    used_at: Option<OffsetDateTime>,
}

async fn insert(
    tx: &mut Tx,
    token_hash: &str,
    email: &str,
    expires_at: OffsetDateTime,
    now: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    on_tx!(tx, |conn| sqlx::query(
        "INSERT INTO magic_links (token_hash, email, expires_at, used_at, created_at) VALUES ($1, $2, $3, NULL, $4)"
    )
    .bind(token_hash)
    .bind(email)
    .bind(expires_at)
    .bind(now)
    .execute(conn)
    .await
    .map(|_| ()))
}

async fn by_hash(tx: &mut Tx, token_hash: &str) -> Result<Option<MagicLinkRow>, sqlx::Error> {
    on_tx!(tx, |conn| sqlx::query_as::<_, MagicLinkRow>(
        "SELECT email, expires_at, used_at FROM magic_links WHERE token_hash = $1"
    )
    .bind(token_hash)
    .fetch_optional(conn)
    .await)
}

/// Marks the token used; `false` when another request spent it first.
async fn spend(tx: &mut Tx, token_hash: &str, now: OffsetDateTime) -> Result<bool, sqlx::Error> {
    on_tx!(tx, |conn| sqlx::query("UPDATE magic_links SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL")
        .bind(token_hash)
        .bind(now)
        .execute(conn)
        .await
        .map(|r| r.rows_affected() == 1))
}

/// Deletes this address's links that expired more than [`KEEP_EXPIRED`] ago. Expiry is compared
/// here, not in SQL (SQLite stores timestamps as text).
async fn delete_stale(tx: &mut Tx, email: &str, now: OffsetDateTime) -> Result<(), sqlx::Error> {
    let rows: Vec<(String, OffsetDateTime)> = on_tx!(tx, |conn| sqlx::query_as::<_, (String, OffsetDateTime)>(
        "SELECT token_hash, expires_at FROM magic_links WHERE email = $1"
    )
    .bind(email)
    .fetch_all(conn)
    .await)?;
    for (hash, _) in rows.iter().filter(|(_, expires_at)| *expires_at + KEEP_EXPIRED < now) {
        on_tx!(tx, |conn| sqlx::query("DELETE FROM magic_links WHERE token_hash = $1")
            .bind(hash)
            .execute(conn)
            .await
            .map(|_| ()))?;
    }
    Ok(())
}
