//! SQL for users, sessions and refresh tokens. Rows never leave the accounts module as rows:
//! handlers get `*Out` types built from them.

use sqlx::FromRow;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{
    db::{Db, Tx},
    http::pagination::Paging,
    on_db, on_tx,
};

#[derive(Clone, FromRow)]
pub struct UserRow {
    pub id: Uuid,
    pub email: Option<String>,
    pub password_hash: Option<String>,
    pub full_name: Option<String>,
    pub role: String,
    pub status: String,
    pub is_active: bool,
    pub is_superuser: bool,
    pub remaining_imports: Option<i64>,
    pub remaining_messages: Option<i64>,
    pub created_at: OffsetDateTime,
    pub updated_at: Option<OffsetDateTime>,
}

impl std::fmt::Debug for UserRow {
    // The password hash never reaches a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRow").field("id", &self.id).field("role", &self.role).field("status", &self.status).finish()
    }
}

impl UserRow {
    pub fn is_admin(&self) -> bool {
        self.role == "admin"
    }
    pub fn is_guest(&self) -> bool {
        self.role == "guest"
    }
}

const USER_COLUMNS: &str = "id, email, password_hash, full_name, role, status, is_active, is_superuser, \
     remaining_imports, remaining_messages, created_at, updated_at";

pub struct NewUser<'a> {
    pub email: Option<&'a str>,
    pub password_hash: Option<&'a str>,
    pub full_name: Option<&'a str>,
    pub role: &'a str,
    pub status: &'a str,
    pub remaining_imports: Option<i64>,
    pub remaining_messages: Option<i64>,
}

pub async fn insert_user(tx: &mut Tx, new: &NewUser<'_>) -> Result<UserRow, sqlx::Error> {
    let sql = format!(
        "INSERT INTO users (id, email, password_hash, full_name, role, status, is_active, is_superuser, \
         remaining_imports, remaining_messages, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, TRUE, $7, $8, $9, $10) RETURNING {USER_COLUMNS}"
    );
    let id = Uuid::new_v4();
    let now = OffsetDateTime::now_utc();
    on_tx!(tx, |conn| sqlx::query_as::<_, UserRow>(sqlx::AssertSqlSafe(sql.clone()))
        .bind(id)
        .bind(new.email)
        .bind(new.password_hash)
        .bind(new.full_name)
        .bind(new.role)
        .bind(new.status)
        .bind(new.role == "admin")
        .bind(new.remaining_imports)
        .bind(new.remaining_messages)
        .bind(now)
        .fetch_one(conn)
        .await)
}

/// Whether any non-guest account exists (the first one becomes admin). Runs inside the
/// registering transaction so two simultaneous first sign-ups cannot both become admin.
pub async fn has_real_users(tx: &mut Tx) -> Result<bool, sqlx::Error> {
    // SQLite's IMMEDIATE transaction already serialises writers; PostgreSQL needs a lock held to
    // the end of the transaction, or two first sign-ups could both see an empty table.
    if let Tx::Postgres(t) = tx {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('recap.first_user'))").execute(&mut **t).await?;
    }
    on_tx!(tx, |conn| sqlx::query_scalar::<_, bool>("SELECT EXISTS (SELECT 1 FROM users WHERE role <> 'guest')")
        .fetch_one(conn)
        .await)
}

pub async fn user_by_id(db: &Db, id: Uuid) -> Result<Option<UserRow>, sqlx::Error> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
    on_db!(db, |pool| sqlx::query_as::<_, UserRow>(sqlx::AssertSqlSafe(sql.clone()))
        .bind(id)
        .fetch_optional(pool)
        .await)
}

pub async fn user_by_id_tx(tx: &mut Tx, id: Uuid) -> Result<Option<UserRow>, sqlx::Error> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
    on_tx!(tx, |conn| sqlx::query_as::<_, UserRow>(sqlx::AssertSqlSafe(sql.clone()))
        .bind(id)
        .fetch_optional(conn)
        .await)
}

pub async fn user_by_email(db: &Db, email: &str) -> Result<Option<UserRow>, sqlx::Error> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE email = $1");
    on_db!(db, |pool| sqlx::query_as::<_, UserRow>(sqlx::AssertSqlSafe(sql.clone()))
        .bind(email)
        .fetch_optional(pool)
        .await)
}

pub async fn list_users(db: &Db, paging: Paging) -> Result<(Vec<UserRow>, i64), sqlx::Error> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users ORDER BY created_at, id LIMIT $1 OFFSET $2");
    let rows = on_db!(db, |pool| sqlx::query_as::<_, UserRow>(sqlx::AssertSqlSafe(sql.clone()))
        .bind(paging.size)
        .bind(paging.offset())
        .fetch_all(pool)
        .await)?;
    let total = on_db!(db, |pool| sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM users").fetch_one(pool).await)?;
    Ok((rows, total))
}

/// Every column a profile or admin change can touch, written at once from the merged row.
pub async fn update_user(tx: &mut Tx, user: &UserRow) -> Result<UserRow, sqlx::Error> {
    let sql = format!(
        "UPDATE users SET email = $2, password_hash = $3, full_name = $4, role = $5, status = $6, is_active = $7, \
         is_superuser = $8, remaining_imports = $9, remaining_messages = $10, updated_at = $11 \
         WHERE id = $1 RETURNING {USER_COLUMNS}"
    );
    on_tx!(tx, |conn| sqlx::query_as::<_, UserRow>(sqlx::AssertSqlSafe(sql.clone()))
        .bind(user.id)
        .bind(user.email.as_deref())
        .bind(user.password_hash.as_deref())
        .bind(user.full_name.as_deref())
        .bind(&user.role)
        .bind(&user.status)
        .bind(user.is_active)
        .bind(user.is_superuser)
        .bind(user.remaining_imports)
        .bind(user.remaining_messages)
        .bind(OffsetDateTime::now_utc())
        .fetch_one(conn)
        .await)
}

pub async fn delete_user(tx: &mut Tx, id: Uuid) -> Result<bool, sqlx::Error> {
    on_tx!(tx, |conn| sqlx::query("DELETE FROM users WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await
        .map(|r| r.rows_affected() > 0))
}

/// Spends one unit of a guest quota if any is left; `false` when exhausted. Accounts without a
/// quota (`NULL`) are unlimited.
pub async fn spend_quota(tx: &mut Tx, user_id: Uuid, column: Quota) -> Result<bool, sqlx::Error> {
    let sql = match column {
        Quota::Imports => {
            "UPDATE users SET remaining_imports = remaining_imports - 1 WHERE id = $1 AND remaining_imports > 0"
        }
        Quota::Messages => {
            "UPDATE users SET remaining_messages = remaining_messages - 1 WHERE id = $1 AND remaining_messages > 0"
        }
    };
    let unlimited = match column {
        Quota::Imports => "SELECT remaining_imports IS NULL FROM users WHERE id = $1",
        Quota::Messages => "SELECT remaining_messages IS NULL FROM users WHERE id = $1",
    };
    let is_unlimited =
        on_tx!(tx, |conn| sqlx::query_scalar::<_, bool>(unlimited).bind(user_id).fetch_optional(conn).await)?;
    if is_unlimited.unwrap_or(false) {
        return Ok(true);
    }
    on_tx!(tx, |conn| sqlx::query(sql).bind(user_id).execute(conn).await.map(|r| r.rows_affected() == 1))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quota {
    Imports,
    Messages,
}

// ----- sessions -----

#[derive(Debug, Clone, FromRow)]
pub struct SessionRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub device_name: String,
    pub device_type: String,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
    pub is_active: bool,
    pub created_at: OffsetDateTime,
    pub last_used_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

impl SessionRow {
    pub fn is_valid(&self) -> bool {
        self.is_active && self.expires_at > OffsetDateTime::now_utc()
    }
}

const SESSION_COLUMNS: &str =
    "id, user_id, device_name, device_type, ip_address, user_agent, is_active, created_at, last_used_at, expires_at";

pub struct NewSession<'a> {
    pub user_id: Uuid,
    pub device_name: &'a str,
    pub device_type: &'a str,
    pub ip_address: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub expires_at: OffsetDateTime,
}

pub async fn insert_session(tx: &mut Tx, new: &NewSession<'_>) -> Result<Uuid, sqlx::Error> {
    let id = Uuid::new_v4();
    let now = OffsetDateTime::now_utc();
    on_tx!(tx, |conn| sqlx::query(
        "INSERT INTO sessions (id, user_id, device_name, device_type, ip_address, user_agent, is_active, \
         created_at, last_used_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, TRUE, $7, $7, $8)"
    )
    .bind(id)
    .bind(new.user_id)
    .bind(new.device_name)
    .bind(new.device_type)
    .bind(new.ip_address)
    .bind(new.user_agent)
    .bind(now)
    .bind(new.expires_at)
    .execute(conn)
    .await
    .map(|_| ()))?;
    Ok(id)
}

pub async fn session_by_id(db: &Db, id: Uuid) -> Result<Option<SessionRow>, sqlx::Error> {
    let sql = format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id = $1");
    on_db!(db, |pool| sqlx::query_as::<_, SessionRow>(sqlx::AssertSqlSafe(sql.clone()))
        .bind(id)
        .fetch_optional(pool)
        .await)
}

pub async fn list_sessions(db: &Db, user_id: Uuid, paging: Paging) -> Result<(Vec<SessionRow>, i64), sqlx::Error> {
    let sql = format!(
        "SELECT {SESSION_COLUMNS} FROM sessions WHERE user_id = $1 AND is_active \
         ORDER BY last_used_at DESC, id LIMIT $2 OFFSET $3"
    );
    let rows = on_db!(db, |pool| sqlx::query_as::<_, SessionRow>(sqlx::AssertSqlSafe(sql.clone()))
        .bind(user_id)
        .bind(paging.size)
        .bind(paging.offset())
        .fetch_all(pool)
        .await)?;
    let total = on_db!(db, |pool| sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM sessions WHERE user_id = $1 AND is_active"
    )
    .bind(user_id)
    .fetch_one(pool)
    .await)?;
    Ok((rows, total))
}

/// Revokes one session of `user_id`; `false` if it is not theirs or already revoked.
pub async fn revoke_session(tx: &mut Tx, user_id: Uuid, session_id: Uuid) -> Result<bool, sqlx::Error> {
    on_tx!(tx, |conn| sqlx::query(
        "UPDATE sessions SET is_active = FALSE, revoked_at = $3 WHERE id = $1 AND user_id = $2 AND is_active"
    )
    .bind(session_id)
    .bind(user_id)
    .bind(OffsetDateTime::now_utc())
    .execute(conn)
    .await
    .map(|r| r.rows_affected() > 0))
}

/// Revokes every active session of a user except `keep`; returns the revoked ids.
pub async fn revoke_sessions_except(tx: &mut Tx, user_id: Uuid, keep: Option<Uuid>) -> Result<Vec<Uuid>, sqlx::Error> {
    let ids: Vec<Uuid> =
        on_tx!(tx, |conn| sqlx::query_scalar::<_, Uuid>("SELECT id FROM sessions WHERE user_id = $1 AND is_active")
            .bind(user_id)
            .fetch_all(conn)
            .await)?;
    let ids: Vec<Uuid> = ids.into_iter().filter(|id| Some(*id) != keep).collect();
    for id in &ids {
        revoke_session(tx, user_id, *id).await?;
    }
    Ok(ids)
}

pub async fn touch_session(tx: &mut Tx, session_id: Uuid) -> Result<(), sqlx::Error> {
    on_tx!(tx, |conn| sqlx::query("UPDATE sessions SET last_used_at = $2 WHERE id = $1")
        .bind(session_id)
        .bind(OffsetDateTime::now_utc())
        .execute(conn)
        .await
        .map(|_| ()))
}

// ----- refresh tokens -----

#[derive(Debug, Clone, FromRow)]
pub struct RefreshTokenRow {
    pub session_id: Uuid,
    pub spent_at: Option<OffsetDateTime>,
}

pub async fn insert_refresh_token(tx: &mut Tx, session_id: Uuid, token_hash: &str) -> Result<(), sqlx::Error> {
    on_tx!(tx, |conn| sqlx::query(
        "INSERT INTO refresh_tokens (token_hash, session_id, created_at) VALUES ($1, $2, $3)"
    )
    .bind(token_hash)
    .bind(session_id)
    .bind(OffsetDateTime::now_utc())
    .execute(conn)
    .await
    .map(|_| ()))
}

pub async fn refresh_token(tx: &mut Tx, token_hash: &str) -> Result<Option<RefreshTokenRow>, sqlx::Error> {
    on_tx!(tx, |conn| sqlx::query_as::<_, RefreshTokenRow>(
        "SELECT session_id, spent_at FROM refresh_tokens WHERE token_hash = $1"
    )
    .bind(token_hash)
    .fetch_optional(conn)
    .await)
}

pub async fn spend_refresh_token(tx: &mut Tx, token_hash: &str) -> Result<(), sqlx::Error> {
    on_tx!(tx, |conn| sqlx::query("UPDATE refresh_tokens SET spent_at = $2 WHERE token_hash = $1")
        .bind(token_hash)
        .bind(OffsetDateTime::now_utc())
        .execute(conn)
        .await
        .map(|_| ()))
}

pub async fn session_by_id_tx(tx: &mut Tx, id: Uuid) -> Result<Option<SessionRow>, sqlx::Error> {
    let sql = format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id = $1");
    on_tx!(tx, |conn| sqlx::query_as::<_, SessionRow>(sqlx::AssertSqlSafe(sql.clone()))
        .bind(id)
        .fetch_optional(conn)
        .await)
}

// ----- magic links -----

/// [`user_by_email`] inside a transaction (magic-link sign-in creates the user if missing).
pub async fn user_by_email_tx(tx: &mut Tx, email: &str) -> Result<Option<UserRow>, sqlx::Error> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE email = $1");
    on_tx!(tx, |conn| sqlx::query_as::<_, UserRow>(sqlx::AssertSqlSafe(sql.clone()))
        .bind(email)
        .fetch_optional(conn)
        .await)
}
