//! SQL for items. Every query is scoped to the owner: an item of someone else is simply not
//! found, which is what the routes answer (404, never 403).

use sqlx::FromRow;
use time::OffsetDateTime;
use uuid::Uuid;

use super::model::{ItemChanges, NewItem};
use crate::{
    db::{Db, Tx},
    http::pagination::Paging,
    on_db, on_tx,
};

#[derive(Debug, Clone, FromRow)]
pub struct ItemRow {
    pub id: Uuid,
    pub owner_id: Uuid,
    pub title: String,
    pub description: Option<String>,
    pub is_active: bool,
    pub created_at: OffsetDateTime,
    pub updated_at: Option<OffsetDateTime>,
}

const ITEM_COLUMNS: &str = "id, owner_id, title, description, is_active, created_at, updated_at";

pub async fn insert(tx: &mut Tx, owner_id: Uuid, new: &NewItem) -> Result<ItemRow, sqlx::Error> {
    let sql = format!(
        "INSERT INTO items (id, owner_id, title, description, is_active, created_at) \
         VALUES ($1, $2, $3, $4, TRUE, $5) RETURNING {ITEM_COLUMNS}"
    );
    // Time-ordered ids break ties between items created in the same instant (newest first).
    let id = Uuid::now_v7();
    let now = OffsetDateTime::now_utc();
    on_tx!(tx, |conn| sqlx::query_as::<_, ItemRow>(sqlx::AssertSqlSafe(sql.clone()))
        .bind(id)
        .bind(owner_id)
        .bind(new.title.as_str())
        .bind(new.description.as_deref())
        .bind(now)
        .fetch_one(conn)
        .await)
}

pub async fn by_id(db: &Db, owner_id: Uuid, id: Uuid) -> Result<Option<ItemRow>, sqlx::Error> {
    let sql = format!("SELECT {ITEM_COLUMNS} FROM items WHERE id = $1 AND owner_id = $2");
    on_db!(db, |pool| sqlx::query_as::<_, ItemRow>(sqlx::AssertSqlSafe(sql.clone()))
        .bind(id)
        .bind(owner_id)
        .fetch_optional(pool)
        .await)
}

/// One page of the owner's items, newest first, and how many they have in all.
pub async fn list(db: &Db, owner_id: Uuid, paging: Paging) -> Result<(Vec<ItemRow>, i64), sqlx::Error> {
    let sql = format!(
        "SELECT {ITEM_COLUMNS} FROM items WHERE owner_id = $1 \
         ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3"
    );
    let rows = on_db!(db, |pool| sqlx::query_as::<_, ItemRow>(sqlx::AssertSqlSafe(sql.clone()))
        .bind(owner_id)
        .bind(paging.size)
        .bind(paging.offset())
        .fetch_all(pool)
        .await)?;
    let total = on_db!(db, |pool| sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM items WHERE owner_id = $1")
        .bind(owner_id)
        .fetch_one(pool)
        .await)?;
    Ok((rows, total))
}

/// Applies the fields `changes` carries in one statement (so concurrent patches of different
/// fields never undo each other) and sets `updated_at`. `None` when the owner has no such item.
pub async fn update(
    tx: &mut Tx,
    owner_id: Uuid,
    id: Uuid,
    changes: &ItemChanges,
) -> Result<Option<ItemRow>, sqlx::Error> {
    let sql = format!(
        "UPDATE items SET title = COALESCE($3, title), \
         description = CASE WHEN $4 THEN $5 ELSE description END, \
         is_active = COALESCE($6, is_active), updated_at = $7 \
         WHERE id = $1 AND owner_id = $2 RETURNING {ITEM_COLUMNS}"
    );
    let description = changes.description.as_ref().map(|d| d.as_deref());
    on_tx!(tx, |conn| sqlx::query_as::<_, ItemRow>(sqlx::AssertSqlSafe(sql.clone()))
        .bind(id)
        .bind(owner_id)
        .bind(changes.title.as_deref())
        .bind(description.is_some())
        .bind(description.flatten())
        .bind(changes.is_active)
        .bind(OffsetDateTime::now_utc())
        .fetch_optional(conn)
        .await)
}

/// `false` when the owner has no such item.
pub async fn delete(tx: &mut Tx, owner_id: Uuid, id: Uuid) -> Result<bool, sqlx::Error> {
    on_tx!(tx, |conn| sqlx::query("DELETE FROM items WHERE id = $1 AND owner_id = $2")
        .bind(id)
        .bind(owner_id)
        .execute(conn)
        .await
        .map(|r| r.rows_affected() > 0))
}
