//! SQL of webhooks and their delivery log. Every query a user reaches is scoped to the owner: a
//! webhook of someone else is simply not found (404, never 403).

use sqlx::{FromRow, types::Json};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{
    db::{Db, Tx},
    http::pagination::Paging,
    jobs::store::Stamp,
    on_db, on_tx,
};

#[derive(Clone, FromRow)]
pub struct WebhookRow {
    pub id: Uuid,
    pub owner_id: Uuid,
    pub name: Option<String>,
    pub url: String,
    pub events: Json<Vec<String>>,
    pub description: Option<String>,
    /// Sealed (AES-256-GCM, `crate::crypto`); opened only to sign or to show it to the owner.
    pub secret_sealed: String,
    pub is_active: bool,
    pub disabled_reason: Option<String>,
    pub failing_since: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
    pub updated_at: Option<OffsetDateTime>,
}

impl std::fmt::Debug for WebhookRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookRow").field("id", &self.id).field("url", &self.url).finish_non_exhaustive()
    }
}

const COLUMNS: &str = "id, owner_id, name, url, events, description, secret AS secret_sealed, is_active, \
     disabled_reason, failing_since, created_at, updated_at";

pub struct NewWebhook<'a> {
    pub owner_id: Uuid,
    pub name: Option<&'a str>,
    pub url: &'a str,
    pub events: &'a [String],
    pub description: Option<&'a str>,
    pub secret_sealed: &'a str,
}

pub async fn insert(tx: &mut Tx, id: Uuid, new: &NewWebhook<'_>) -> Result<WebhookRow, sqlx::Error> {
    let sql = format!(
        "INSERT INTO webhooks (id, owner_id, name, url, events, description, secret, is_active, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, TRUE, $8) RETURNING {COLUMNS}"
    );
    on_tx!(tx, |conn| sqlx::query_as::<_, WebhookRow>(sqlx::AssertSqlSafe(sql.clone()))
        .bind(id)
        .bind(new.owner_id)
        .bind(new.name)
        .bind(new.url)
        .bind(Json(new.events))
        .bind(new.description)
        .bind(new.secret_sealed)
        .bind(Stamp::now())
        .fetch_one(conn)
        .await)
}

pub async fn owned(db: &Db, owner_id: Uuid, id: Uuid) -> Result<Option<WebhookRow>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM webhooks WHERE id = $1 AND owner_id = $2");
    on_db!(db, |pool| sqlx::query_as::<_, WebhookRow>(sqlx::AssertSqlSafe(sql.clone()))
        .bind(id)
        .bind(owner_id)
        .fetch_optional(pool)
        .await)
}

/// Any webhook by id (the delivery worker).
pub async fn by_id(db: &Db, id: Uuid) -> Result<Option<WebhookRow>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM webhooks WHERE id = $1");
    on_db!(db, |pool| sqlx::query_as::<_, WebhookRow>(sqlx::AssertSqlSafe(sql.clone()))
        .bind(id)
        .fetch_optional(pool)
        .await)
}

/// One page of the owner's webhooks, newest first.
pub async fn list(db: &Db, owner_id: Uuid, paging: Paging) -> Result<(Vec<WebhookRow>, i64), sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM webhooks WHERE owner_id = $1 ORDER BY id DESC LIMIT $2 OFFSET $3");
    let rows = on_db!(db, |pool| sqlx::query_as::<_, WebhookRow>(sqlx::AssertSqlSafe(sql.clone()))
        .bind(owner_id)
        .bind(paging.size)
        .bind(paging.offset())
        .fetch_all(pool)
        .await)?;
    let total = on_db!(db, |pool| sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM webhooks WHERE owner_id = $1")
        .bind(owner_id)
        .fetch_one(pool)
        .await)?;
    Ok((rows, total))
}

/// The active webhooks of these owners: `(id, events)`.
pub async fn active_for_owner(tx: &mut Tx, owner_id: Uuid) -> Result<Vec<(Uuid, Json<Vec<String>>)>, sqlx::Error> {
    on_tx!(tx, |conn| sqlx::query_as::<_, (Uuid, Json<Vec<String>>)>(
        "SELECT id, events FROM webhooks WHERE owner_id = $1 AND is_active = TRUE"
    )
    .bind(owner_id)
    .fetch_all(conn)
    .await)
}

/// A validated change; `None` fields stay as they are.
#[derive(Debug, Default)]
pub struct Changes {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    /// `Some(None)` clears it.
    pub name: Option<Option<String>>,
    pub description: Option<Option<String>>,
    pub secret_sealed: Option<String>,
    pub is_active: Option<bool>,
}

/// Applies `changes` in one statement. Re-enabling (`is_active: true`) clears the failure state.
pub async fn update(
    tx: &mut Tx,
    owner_id: Uuid,
    id: Uuid,
    changes: &Changes,
) -> Result<Option<WebhookRow>, sqlx::Error> {
    let sql = format!(
        "UPDATE webhooks SET url = COALESCE($3, url), events = COALESCE($4, events), \
         name = CASE WHEN $5 THEN $6 ELSE name END, description = CASE WHEN $7 THEN $8 ELSE description END, \
         secret = COALESCE($9, secret), is_active = COALESCE($10, is_active), \
         disabled_reason = CASE WHEN $11 THEN NULL ELSE disabled_reason END, \
         failing_since = CASE WHEN $11 THEN NULL ELSE failing_since END, updated_at = $12 \
         WHERE id = $1 AND owner_id = $2 RETURNING {COLUMNS}"
    );
    let reenable = changes.is_active == Some(true);
    on_tx!(tx, |conn| sqlx::query_as::<_, WebhookRow>(sqlx::AssertSqlSafe(sql.clone()))
        .bind(id)
        .bind(owner_id)
        .bind(changes.url.as_deref())
        .bind(changes.events.as_ref().map(Json))
        .bind(changes.name.is_some())
        .bind(changes.name.clone().flatten())
        .bind(changes.description.is_some())
        .bind(changes.description.clone().flatten())
        .bind(changes.secret_sealed.as_deref())
        .bind(changes.is_active)
        .bind(reenable)
        .bind(Stamp::now())
        .fetch_optional(conn)
        .await)
}

pub async fn delete(tx: &mut Tx, owner_id: Uuid, id: Uuid) -> Result<bool, sqlx::Error> {
    on_tx!(tx, |conn| sqlx::query("DELETE FROM webhooks WHERE id = $1 AND owner_id = $2")
        .bind(id)
        .bind(owner_id)
        .execute(conn)
        .await
        .map(|r| r.rows_affected() > 0))
}

/// After a successful delivery: the endpoint is healthy again.
pub async fn clear_failing(tx: &mut Tx, id: Uuid) -> Result<(), sqlx::Error> {
    on_tx!(tx, |conn| sqlx::query(
        "UPDATE webhooks SET failing_since = NULL WHERE id = $1 AND failing_since IS NOT NULL"
    )
    .bind(id)
    .execute(conn)
    .await
    .map(|_| ()))
}

/// When the endpoint started failing (set now if it was healthy); `None` if the webhook is gone.
pub async fn mark_failing(tx: &mut Tx, id: Uuid, now: OffsetDateTime) -> Result<Option<OffsetDateTime>, sqlx::Error> {
    on_tx!(tx, |conn| sqlx::query("UPDATE webhooks SET failing_since = $2 WHERE id = $1 AND failing_since IS NULL")
        .bind(id)
        .bind(Stamp(now))
        .execute(conn)
        .await
        .map(|_| ()))?;
    on_tx!(tx, |conn| sqlx::query_scalar::<_, Option<OffsetDateTime>>(
        "SELECT failing_since FROM webhooks WHERE id = $1"
    )
    .bind(id)
    .fetch_optional(conn)
    .await)
    .map(Option::flatten)
}

pub async fn disable(tx: &mut Tx, id: Uuid, reason: &str) -> Result<(), sqlx::Error> {
    on_tx!(tx, |conn| sqlx::query(
        "UPDATE webhooks SET is_active = FALSE, disabled_reason = $2, updated_at = $3 WHERE id = $1"
    )
    .bind(id)
    .bind(reason)
    .bind(Stamp::now())
    .execute(conn)
    .await
    .map(|_| ()))
}

// --- Delivery log: one row per attempt --------------------------------------------------------------

#[derive(Debug, Clone, FromRow)]
pub struct DeliveryRow {
    pub id: Uuid,
    pub webhook_id: Uuid,
    pub delivery_id: Uuid,
    pub event: String,
    pub payload: String,
    pub attempt: i32,
    pub status_code: Option<i32>,
    pub success: bool,
    pub duration_ms: i64,
    pub response_body: Option<String>,
    pub error: Option<String>,
    pub next_retry_at: Option<OffsetDateTime>,
    pub delivered_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
    /// Attempts logged for the same delivery.
    pub attempt_count: i64,
}

const DELIVERY_COLUMNS: &str = "d.id, d.webhook_id, d.delivery_id, d.event, d.payload, d.attempt, d.status_code, \
     d.success, d.duration_ms, d.response_body, d.error, d.next_retry_at, d.delivered_at, d.created_at, \
     (SELECT COUNT(*) FROM webhook_deliveries x WHERE x.delivery_id = d.delivery_id) AS attempt_count";

pub struct NewAttempt<'a> {
    pub webhook_id: Uuid,
    pub delivery_id: Uuid,
    pub event: &'a str,
    pub payload: &'a str,
    pub status_code: Option<u16>,
    pub success: bool,
    pub duration_ms: i64,
    pub response_body: Option<&'a str>,
    pub error: Option<&'a str>,
    pub next_retry_at: Option<OffsetDateTime>,
}

/// Logs an attempt, numbered after the delivery's earlier ones; returns its number.
pub async fn insert_attempt(tx: &mut Tx, new: &NewAttempt<'_>) -> Result<i32, sqlx::Error> {
    let attempt = on_tx!(tx, |conn| sqlx::query_scalar::<_, i32>(
        "SELECT CAST(COALESCE(MAX(attempt), 0) + 1 AS INTEGER) FROM webhook_deliveries WHERE delivery_id = $1"
    )
    .bind(new.delivery_id)
    .fetch_one(conn)
    .await)?;
    let now = OffsetDateTime::now_utc();
    on_tx!(tx, |conn| sqlx::query(
        "INSERT INTO webhook_deliveries (id, webhook_id, delivery_id, event, payload, attempt, status_code, success, \
         duration_ms, response_body, error, next_retry_at, delivered_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
    )
    .bind(Uuid::now_v7())
    .bind(new.webhook_id)
    .bind(new.delivery_id)
    .bind(new.event)
    .bind(new.payload)
    .bind(attempt)
    .bind(new.status_code.map(i32::from))
    .bind(new.success)
    .bind(new.duration_ms)
    .bind(new.response_body)
    .bind(new.error)
    .bind(new.next_retry_at.map(Stamp))
    .bind(new.success.then_some(Stamp(now)))
    .bind(Stamp(now))
    .execute(conn)
    .await
    .map(|_| ()))?;
    Ok(attempt)
}

/// One page of a webhook's delivery log, newest first.
pub async fn list_deliveries(
    db: &Db,
    webhook_id: Uuid,
    paging: Paging,
) -> Result<(Vec<DeliveryRow>, i64), sqlx::Error> {
    let sql = format!(
        "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d WHERE d.webhook_id = $1 ORDER BY d.id DESC LIMIT $2 OFFSET $3"
    );
    let rows = on_db!(db, |pool| sqlx::query_as::<_, DeliveryRow>(sqlx::AssertSqlSafe(sql.clone()))
        .bind(webhook_id)
        .bind(paging.size)
        .bind(paging.offset())
        .fetch_all(pool)
        .await)?;
    let total = on_db!(db, |pool| sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM webhook_deliveries WHERE webhook_id = $1"
    )
    .bind(webhook_id)
    .fetch_one(pool)
    .await)?;
    Ok((rows, total))
}

pub async fn delivery(db: &Db, webhook_id: Uuid, id: Uuid) -> Result<Option<DeliveryRow>, sqlx::Error> {
    let sql = format!("SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d WHERE d.id = $1 AND d.webhook_id = $2");
    on_db!(db, |pool| sqlx::query_as::<_, DeliveryRow>(sqlx::AssertSqlSafe(sql.clone()))
        .bind(id)
        .bind(webhook_id)
        .fetch_optional(pool)
        .await)
}

/// Deletes log entries written before `before`.
pub async fn purge_deliveries(db: &Db, before: OffsetDateTime) -> Result<u64, sqlx::Error> {
    let mut tx = db.begin().await?;
    let n = on_tx!(&mut tx, |conn| sqlx::query("DELETE FROM webhook_deliveries WHERE created_at < $1")
        .bind(Stamp(before))
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))?;
    tx.commit().await?;
    Ok(n)
}
