use std::collections::HashMap;

use sqlx::FromRow;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{
    accounts::auth::PendingUsage,
    db::{Db, Tx},
    on_db, on_tx,
};

#[derive(Clone, FromRow)]
pub struct ApiKeyRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub name: String,
    pub prefix: String,
    pub key_hash: String,
    pub scopes: String,
    pub status: String,
    pub last_used_at: Option<OffsetDateTime>,
    pub last_used_ip: Option<String>,
    pub usage_count: i64,
    pub expires_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
    pub revoked_at: Option<OffsetDateTime>,
}

impl std::fmt::Debug for ApiKeyRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeyRow").field("id", &self.id).field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

const COLUMNS: &str = "id, user_id, name, prefix, key_hash, scopes, status, last_used_at, last_used_ip, \
     usage_count, expires_at, created_at, revoked_at";

pub struct NewKey<'a> {
    pub user_id: Uuid,
    pub name: &'a str,
    pub prefix: &'a str,
    pub key_hash: &'a str,
    pub scopes: &'a str,
    pub expires_at: Option<OffsetDateTime>,
}

pub async fn insert(tx: &mut Tx, new: &NewKey<'_>) -> Result<ApiKeyRow, sqlx::Error> {
    let sql = format!(
        "INSERT INTO api_keys (id, user_id, name, prefix, key_hash, scopes, status, usage_count, expires_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, 'active', 0, $7, $8) RETURNING {COLUMNS}"
    );
    on_tx!(tx, |conn| sqlx::query_as::<_, ApiKeyRow>(sqlx::AssertSqlSafe(sql.clone()))
        .bind(Uuid::new_v4())
        .bind(new.user_id)
        .bind(new.name)
        .bind(new.prefix)
        .bind(new.key_hash)
        .bind(new.scopes)
        .bind(new.expires_at)
        .bind(OffsetDateTime::now_utc())
        .fetch_one(conn)
        .await)
}

pub async fn by_prefix(db: &Db, prefix: &str) -> Result<Option<ApiKeyRow>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM api_keys WHERE prefix = $1");
    on_db!(db, |pool| sqlx::query_as::<_, ApiKeyRow>(sqlx::AssertSqlSafe(sql.clone()))
        .bind(prefix)
        .fetch_optional(pool)
        .await)
}

pub async fn list_for_user(db: &Db, user_id: Uuid, include_revoked: bool) -> Result<Vec<ApiKeyRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM api_keys WHERE user_id = $1 AND ($2 OR status = 'active') ORDER BY created_at DESC, id"
    );
    on_db!(db, |pool| sqlx::query_as::<_, ApiKeyRow>(sqlx::AssertSqlSafe(sql.clone()))
        .bind(user_id)
        .bind(include_revoked)
        .fetch_all(pool)
        .await)
}

pub async fn owned(tx: &mut Tx, user_id: Uuid, id: Uuid) -> Result<Option<ApiKeyRow>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM api_keys WHERE id = $1 AND user_id = $2");
    on_tx!(tx, |conn| sqlx::query_as::<_, ApiKeyRow>(sqlx::AssertSqlSafe(sql.clone()))
        .bind(id)
        .bind(user_id)
        .fetch_optional(conn)
        .await)
}

pub async fn revoke(tx: &mut Tx, id: Uuid) -> Result<ApiKeyRow, sqlx::Error> {
    let sql = format!("UPDATE api_keys SET status = 'revoked', revoked_at = $2 WHERE id = $1 RETURNING {COLUMNS}");
    on_tx!(tx, |conn| sqlx::query_as::<_, ApiKeyRow>(sqlx::AssertSqlSafe(sql.clone()))
        .bind(id)
        .bind(OffsetDateTime::now_utc())
        .fetch_one(conn)
        .await)
}

/// Adds buffered usage in one transaction.
pub async fn add_usage(db: &Db, pending: &HashMap<Uuid, PendingUsage>) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    for (id, usage) in pending {
        on_tx!(&mut tx, |conn| sqlx::query(
            "UPDATE api_keys SET usage_count = usage_count + $2, last_used_at = $3, last_used_ip = $4 WHERE id = $1"
        )
        .bind(id)
        .bind(usage.count)
        .bind(usage.last_used_at)
        .bind(&usage.last_used_ip)
        .execute(conn)
        .await
        .map(|_| ()))?;
    }
    tx.commit().await
}
