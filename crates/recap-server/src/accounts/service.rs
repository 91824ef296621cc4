//! Account logic and its transaction boundaries. Handlers parse and authorise; this decides.

use std::net::IpAddr;

use time::OffsetDateTime;
use uuid::Uuid;

use super::{
    auth::Invalidation,
    model::{
        Email, LoginIn, ProfilePatch, RefreshOut, RegisterIn, TokenOut, UpgradeIn, UserOut, UserPatch, describe_device,
        field, parse_email,
    },
    password::check_strength,
    store::{self, NewSession, NewUser, Quota, UserRow},
    tokens::{random_token, sha256_hex},
};
use crate::{
    audit::{self, AuditEntry},
    db::{Tx, is_unique_violation},
    error::{ApiError, ApiResult},
    state::AppState,
};

/// Who is asking, for sessions and the audit log.
#[derive(Debug, Clone)]
pub struct RequestMeta {
    pub ip: IpAddr,
    pub user_agent: Option<String>,
}

const ROLES: [&str; 3] = ["admin", "member", "guest"];
const STATUSES: [&str; 3] = ["approved", "pending", "retired"];

fn checked_password(password: &str, name: &str) -> ApiResult<()> {
    check_strength(password).map_err(|msg| ApiError::validation(vec![field(name, msg, "value_error")]))
}

fn clean_name(full_name: Option<&String>, name: Option<&String>) -> ApiResult<Option<String>> {
    let value = full_name.or(name).map(|n| n.trim().to_owned()).filter(|n| !n.is_empty());
    if value.as_ref().is_some_and(|n| n.chars().count() > 255) {
        return Err(ApiError::validation(vec![field(
            "full_name",
            "must be at most 255 characters",
            "string_too_long",
        )]));
    }
    Ok(value)
}

fn duplicate_email(email: &Email) -> ApiError {
    ApiError::already_exists("Email already registered").with_details(serde_json::json!({ "email": email.as_str() }))
}

/// Self-registration (or an admin registering someone, who may then set `role`).
pub async fn register(
    state: &AppState,
    input: RegisterIn,
    caller: Option<&UserRow>,
    meta: &RequestMeta,
) -> ApiResult<UserRow> {
    let email = parse_email(&input.email, "email")?;
    checked_password(&input.password, "password")?;
    let full_name = clean_name(input.full_name.as_ref(), input.name.as_ref())?;
    let requested_role = input.role.as_deref().map(str::trim).filter(|r| !r.is_empty());
    if let Some(role) = requested_role {
        if !ROLES.contains(&role) {
            return Err(ApiError::validation(vec![field("role", "must be admin, member or guest", "enum")]));
        }
        if role != "member" && !caller.is_some_and(UserRow::is_admin) {
            return Err(ApiError::forbidden("Only an admin can assign a role"));
        }
    }
    let hash = state.auth.passwords.hash(&input.password).await?;

    let mut tx = state.db.begin().await?;
    let first = !store::has_real_users(&mut tx).await?;
    let by_admin = caller.is_some_and(UserRow::is_admin);
    let role = if first { "admin" } else { requested_role.unwrap_or("member") };
    let status =
        if !first && !by_admin && state.settings.auth.signup_requires_approval { "pending" } else { "approved" };
    let user = store::insert_user(
        &mut tx,
        &NewUser {
            email: Some(email.as_str()),
            password_hash: Some(&hash),
            full_name: full_name.as_deref(),
            role,
            status,
            remaining_imports: None,
            remaining_messages: None,
        },
    )
    .await
    .map_err(|e| if is_unique_violation(&e) { duplicate_email(&email) } else { e.into() })?;
    audit::record(
        &mut tx,
        AuditEntry::new("register", caller.map(|c| c.id).or(Some(user.id)), Some(meta.ip))
            .resource("user", user.id)
            .details(format!("role {role}, status {status}")),
    )
    .await?;
    tx.commit().await?;
    Ok(user)
}

/// Creates a session with its first refresh token inside `tx`.
async fn open_session(state: &AppState, tx: &mut Tx, user_id: Uuid, meta: &RequestMeta) -> ApiResult<(Uuid, String)> {
    let (device_name, device_type) = describe_device(meta.user_agent.as_deref());
    let ip = meta.ip.to_string();
    let user_agent = meta.user_agent.as_deref().map(|ua| ua.chars().take(500).collect::<String>());
    let session_id = store::insert_session(
        tx,
        &NewSession {
            user_id,
            device_name,
            device_type,
            ip_address: Some(&ip),
            user_agent: user_agent.as_deref(),
            expires_at: OffsetDateTime::now_utc() + state.settings.auth.refresh_token_ttl,
        },
    )
    .await?;
    let refresh = random_token(32);
    store::insert_refresh_token(tx, session_id, &sha256_hex(&refresh)).await?;
    Ok((session_id, refresh))
}

fn tokens(state: &AppState, user: &UserRow, session_id: Uuid, refresh_token: String) -> ApiResult<TokenOut> {
    Ok(TokenOut {
        access_token: state.auth.keys.issue_access(user.id, session_id)?,
        refresh_token,
        token_type: "bearer",
        expires_in: state.auth.keys.access_ttl_secs(),
        user: UserOut::from(user),
    })
}

/// Signs `user` in: a new session, its tokens, and an audit row (`action`), in one transaction.
pub async fn sign_in(
    state: &AppState,
    user: &UserRow,
    meta: &RequestMeta,
    action: &'static str,
) -> ApiResult<TokenOut> {
    let mut tx = state.db.begin().await?;
    let (session_id, refresh) = open_session(state, &mut tx, user.id, meta).await?;
    audit::record(&mut tx, AuditEntry::new(action, Some(user.id), Some(meta.ip)).resource("session", session_id))
        .await?;
    tx.commit().await?;
    tokens(state, user, session_id, refresh)
}

async fn audit_alone(state: &AppState, entry: AuditEntry) -> ApiResult<()> {
    let mut tx = state.db.begin().await?;
    audit::record(&mut tx, entry).await?;
    tx.commit().await?;
    Ok(())
}

/// Password sign-in, limited per client IP and per account, with the same work for unknown
/// e-mails as for known ones.
pub async fn login(state: &AppState, input: LoginIn, meta: &RequestMeta) -> ApiResult<TokenOut> {
    let invalid = || ApiError::unauthorized("Invalid email or password");
    let email = Email::parse(&input.email);
    let account_key =
        email.as_ref().map(|e| e.as_str().to_owned()).unwrap_or_else(|| input.email.trim().to_lowercase());
    state.auth.limits.check_login(&meta.ip.to_string(), &account_key).await?;

    let user = match &email {
        Some(email) => store::user_by_email(&state.db, email.as_str()).await?,
        None => None,
    };
    let hash = user.as_ref().and_then(|u| u.password_hash.as_deref());
    let matches = state.auth.passwords.verify(&input.password, hash).await?;
    let Some(user) = user.filter(|_| matches) else {
        audit_alone(
            state,
            AuditEntry::new("login_failed", None, Some(meta.ip)).details(format!("email {account_key}")),
        )
        .await?;
        return Err(invalid());
    };
    if !user.is_active || user.status == "retired" {
        return Err(ApiError::unauthorized("User account is disabled"));
    }
    if user.status == "pending" {
        return Err(ApiError::forbidden("User account is pending approval"));
    }
    sign_in(state, &user, meta, "login").await
}

/// Exchanges a refresh token for a new access token (and, with rotation, a new refresh token).
/// A spent token presented again revokes its whole session: someone else has a copy.
pub async fn refresh(state: &AppState, refresh_token: &str, meta: &RequestMeta) -> ApiResult<RefreshOut> {
    let invalid = || ApiError::unauthorized("Invalid or expired refresh token");
    let hash = sha256_hex(refresh_token.trim());
    let mut tx = state.db.begin().await?;
    let token = store::refresh_token(&mut tx, &hash).await?.ok_or_else(invalid)?;
    let session = store::session_by_id_tx(&mut tx, token.session_id).await?.ok_or_else(invalid)?;
    if token.spent_at.is_some() {
        if session.is_active {
            store::revoke_session(&mut tx, session.user_id, session.id).await?;
            audit::record(
                &mut tx,
                AuditEntry::new("refresh_token_reuse", Some(session.user_id), Some(meta.ip))
                    .resource("session", session.id)
                    .details("a spent refresh token was presented again; session revoked"),
            )
            .await?;
            tx.commit().await?;
            state.auth.invalidate(Invalidation::Session(session.id)).await;
        }
        return Err(invalid());
    }
    if !session.is_valid() {
        return Err(invalid());
    }
    let user = store::user_by_id_tx(&mut tx, session.user_id).await?.ok_or_else(invalid)?;
    if !user.is_active || user.status != "approved" {
        return Err(ApiError::unauthorized("User account is disabled"));
    }
    let refresh_token = if state.settings.auth.refresh_token_rotation {
        store::spend_refresh_token(&mut tx, &hash).await?;
        let next = random_token(32);
        store::insert_refresh_token(&mut tx, session.id, &sha256_hex(&next)).await?;
        next
    } else {
        refresh_token.trim().to_owned()
    };
    store::touch_session(&mut tx, session.id).await?;
    tx.commit().await?;
    Ok(RefreshOut {
        access_token: state.auth.keys.issue_access(user.id, session.id)?,
        refresh_token,
        token_type: "bearer",
        expires_in: state.auth.keys.access_ttl_secs(),
    })
}

/// Ends a session: the caller's own (by access token) or the one a refresh token belongs to.
/// Unknown tokens are not an error: the session is gone either way.
pub async fn logout(
    state: &AppState,
    session: Option<(Uuid, Uuid)>,
    refresh_token: Option<&str>,
    meta: &RequestMeta,
) -> ApiResult<()> {
    let mut tx = state.db.begin().await?;
    let target = match (session, refresh_token) {
        (Some(s), _) => Some(s),
        (None, Some(token)) => match store::refresh_token(&mut tx, &sha256_hex(token.trim())).await? {
            Some(row) => store::session_by_id_tx(&mut tx, row.session_id).await?.map(|s| (s.user_id, s.id)),
            None => None,
        },
        (None, None) => None,
    };
    let Some((user_id, session_id)) = target else { return Ok(()) };
    if store::revoke_session(&mut tx, user_id, session_id).await? {
        audit::record(&mut tx, AuditEntry::new("logout", Some(user_id), Some(meta.ip)).resource("session", session_id))
            .await?;
    }
    tx.commit().await?;
    state.auth.invalidate(Invalidation::Session(session_id)).await;
    Ok(())
}

/// Revokes one of the user's sessions; 404 when it is not theirs (or already ended).
pub async fn revoke_session(state: &AppState, user_id: Uuid, session_id: Uuid, meta: &RequestMeta) -> ApiResult<()> {
    let mut tx = state.db.begin().await?;
    if !store::revoke_session(&mut tx, user_id, session_id).await? {
        return Err(ApiError::not_found("Session not found"));
    }
    audit::record(
        &mut tx,
        AuditEntry::new("session_revoke", Some(user_id), Some(meta.ip)).resource("session", session_id),
    )
    .await?;
    tx.commit().await?;
    state.auth.invalidate(Invalidation::Session(session_id)).await;
    Ok(())
}

/// Revokes every session of the user (including the current one); returns how many.
pub async fn revoke_all_sessions(state: &AppState, user_id: Uuid, meta: &RequestMeta) -> ApiResult<usize> {
    let mut tx = state.db.begin().await?;
    let revoked = store::revoke_sessions_except(&mut tx, user_id, None).await?;
    audit::record(
        &mut tx,
        AuditEntry::new("session_revoke_all", Some(user_id), Some(meta.ip))
            .details(format!("{} sessions", revoked.len())),
    )
    .await?;
    tx.commit().await?;
    for id in &revoked {
        state.auth.invalidate(Invalidation::Session(*id)).await;
    }
    Ok(revoked.len())
}

/// A user's change to their own profile. A password change needs the current password and
/// ends every other session.
pub async fn update_profile(
    state: &AppState,
    me: &UserRow,
    current_session: Option<Uuid>,
    patch: ProfilePatch,
    meta: &RequestMeta,
) -> ApiResult<UserRow> {
    if patch.role.is_some() || patch.is_active.is_some() {
        return Err(ApiError::forbidden("You cannot change your own role or activation"));
    }
    let mut next = me.clone();
    let mut password_changed = false;
    if let Some(email) = &patch.email {
        next.email = Some(parse_email(email, "email")?.as_str().to_owned());
    }
    if patch.full_name.is_some() || patch.name.is_some() {
        next.full_name = clean_name(patch.full_name.as_ref(), patch.name.as_ref())?;
    }
    if let Some(password) = &patch.password {
        checked_password(password, "password")?;
        let current = patch.current_password.as_deref().ok_or_else(|| {
            ApiError::validation(vec![field("current_password", "is required to change the password", "missing")])
        })?;
        if !state.auth.passwords.verify(current, me.password_hash.as_deref()).await? {
            return Err(ApiError::bad_request("Current password is incorrect"));
        }
        next.password_hash = Some(state.auth.passwords.hash(password).await?);
        password_changed = true;
    }
    let mut tx = state.db.begin().await?;
    let updated = store::update_user(&mut tx, &next).await.map_err(|e| {
        if is_unique_violation(&e) { ApiError::already_exists("Email already registered") } else { e.into() }
    })?;
    let mut ended = Vec::new();
    if password_changed {
        ended = store::revoke_sessions_except(&mut tx, me.id, current_session).await?;
        audit::record(
            &mut tx,
            AuditEntry::new("password_change", Some(me.id), Some(meta.ip))
                .resource("user", me.id)
                .details(format!("{} other sessions ended", ended.len())),
        )
        .await?;
    }
    tx.commit().await?;
    state.auth.invalidate(Invalidation::User(me.id)).await;
    for id in ended {
        state.auth.invalidate(Invalidation::Session(id)).await;
    }
    Ok(updated)
}

/// An admin's change to another user's role, activation, status or name.
pub async fn admin_update(
    state: &AppState,
    admin: &UserRow,
    target: Uuid,
    patch: UserPatch,
    meta: &RequestMeta,
) -> ApiResult<UserRow> {
    if target == admin.id && (patch.role.is_some() || patch.is_active.is_some() || patch.status.is_some()) {
        return Err(ApiError::forbidden("You cannot change your own role, activation or status"));
    }
    let mut tx = state.db.begin().await?;
    let mut next = store::user_by_id_tx(&mut tx, target).await?.ok_or_else(|| ApiError::not_found("User not found"))?;
    let before = (next.role.clone(), next.is_active, next.status.clone());
    if let Some(role) = &patch.role {
        if !ROLES.contains(&role.as_str()) {
            return Err(ApiError::validation(vec![field("role", "must be admin, member or guest", "enum")]));
        }
        next.role = role.clone();
        next.is_superuser = role == "admin";
    }
    if let Some(status) = &patch.status {
        if !STATUSES.contains(&status.as_str()) {
            return Err(ApiError::validation(vec![field("status", "must be approved, pending or retired", "enum")]));
        }
        next.status = status.clone();
    }
    if let Some(active) = patch.is_active {
        next.is_active = active;
    }
    if patch.full_name.is_some() {
        next.full_name = clean_name(patch.full_name.as_ref(), None)?;
    }
    let updated = store::update_user(&mut tx, &next).await?;
    if before.0 != updated.role {
        audit::record(
            &mut tx,
            AuditEntry::new("role_change", Some(admin.id), Some(meta.ip))
                .resource("user", target)
                .details(format!("{} -> {}", before.0, updated.role)),
        )
        .await?;
    }
    if before.1 != updated.is_active || before.2 != updated.status {
        audit::record(
            &mut tx,
            AuditEntry::new("user_status_change", Some(admin.id), Some(meta.ip)).resource("user", target).details(
                format!("active {} -> {}, status {} -> {}", before.1, updated.is_active, before.2, updated.status),
            ),
        )
        .await?;
    }
    tx.commit().await?;
    state.auth.invalidate(Invalidation::User(target)).await;
    Ok(updated)
}

pub async fn approve(state: &AppState, admin: &UserRow, target: Uuid, meta: &RequestMeta) -> ApiResult<UserRow> {
    let mut tx = state.db.begin().await?;
    let mut user = store::user_by_id_tx(&mut tx, target).await?.ok_or_else(|| ApiError::not_found("User not found"))?;
    user.status = "approved".into();
    let updated = store::update_user(&mut tx, &user).await?;
    audit::record(&mut tx, AuditEntry::new("user_approve", Some(admin.id), Some(meta.ip)).resource("user", target))
        .await?;
    tx.commit().await?;
    state.auth.invalidate(Invalidation::User(target)).await;
    Ok(updated)
}

pub async fn delete_user(state: &AppState, admin: &UserRow, target: Uuid, meta: &RequestMeta) -> ApiResult<()> {
    if target == admin.id {
        return Err(ApiError::forbidden("You cannot delete your own account here"));
    }
    let mut tx = state.db.begin().await?;
    if !store::delete_user(&mut tx, target).await? {
        return Err(ApiError::not_found("User not found"));
    }
    audit::record(&mut tx, AuditEntry::new("user_delete", Some(admin.id), Some(meta.ip)).resource("user", target))
        .await?;
    tx.commit().await?;
    state.auth.invalidate(Invalidation::User(target)).await;
    Ok(())
}

/// A guest account with quotas, signed in at once.
pub async fn create_guest(state: &AppState, meta: &RequestMeta) -> ApiResult<TokenOut> {
    let mut tx = state.db.begin().await?;
    let user = store::insert_user(
        &mut tx,
        &NewUser {
            email: None,
            password_hash: None,
            full_name: None,
            role: "guest",
            status: "approved",
            remaining_imports: Some(state.settings.auth.guest_imports),
            remaining_messages: Some(state.settings.auth.guest_messages),
        },
    )
    .await?;
    let (session_id, refresh) = open_session(state, &mut tx, user.id, meta).await?;
    audit::record(&mut tx, AuditEntry::new("guest_create", Some(user.id), Some(meta.ip)).resource("user", user.id))
        .await?;
    tx.commit().await?;
    tokens(state, &user, session_id, refresh)
}

/// Turns a guest into a full member, keeping the account (and so everything it owns).
pub async fn upgrade_guest(
    state: &AppState,
    guest: &UserRow,
    input: UpgradeIn,
    meta: &RequestMeta,
) -> ApiResult<UserRow> {
    if !guest.is_guest() {
        return Err(ApiError::bad_request("Only a guest account can be upgraded"));
    }
    let email = parse_email(&input.email, "email")?;
    checked_password(&input.password, "password")?;
    let full_name = clean_name(input.full_name.as_ref(), input.name.as_ref())?;
    let hash = state.auth.passwords.hash(&input.password).await?;
    let mut next = guest.clone();
    next.email = Some(email.as_str().to_owned());
    next.password_hash = Some(hash);
    next.full_name = full_name;
    next.role = "member".into();
    next.remaining_imports = None;
    next.remaining_messages = None;
    let mut tx = state.db.begin().await?;
    let updated = store::update_user(&mut tx, &next)
        .await
        .map_err(|e| if is_unique_violation(&e) { duplicate_email(&email) } else { e.into() })?;
    audit::record(&mut tx, AuditEntry::new("guest_upgrade", Some(guest.id), Some(meta.ip)).resource("user", guest.id))
        .await?;
    tx.commit().await?;
    state.auth.invalidate(Invalidation::User(guest.id)).await;
    Ok(updated)
}

/// The check features call before spending a guest's import or message: 403 when the quota is
/// used up. Accounts without a quota are unlimited. Runs inside the caller's transaction so
/// the spend and the work commit together.
pub async fn spend_quota(state: &AppState, tx: &mut Tx, user_id: Uuid, quota: Quota) -> ApiResult<()> {
    if store::spend_quota(tx, user_id, quota).await? {
        // The cached user carries the remaining counts.
        state.auth.invalidate(Invalidation::User(user_id)).await;
        return Ok(());
    }
    let what = match quota {
        Quota::Imports => "imports",
        Quota::Messages => "messages",
    };
    Err(ApiError::forbidden(format!(
        "Guest quota exhausted: no {what} left. Create an account (POST /api/v1/auth/upgrade) to continue."
    )))
}
