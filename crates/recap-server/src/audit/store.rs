use sqlx::FromRow;
use time::OffsetDateTime;
use uuid::Uuid;

use super::AuditEntry;
use crate::{
    db::{Db, Tx},
    http::pagination::Paging,
    on_db, on_tx,
};

#[derive(Debug, FromRow)]
pub struct AuditRow {
    pub id: Uuid,
    pub actor_id: Option<Uuid>,
    pub action: String,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub details: Option<String>,
    pub ip_address: Option<String>,
    pub created_at: OffsetDateTime,
}

pub async fn insert(tx: &mut Tx, e: &AuditEntry) -> Result<(), sqlx::Error> {
    on_tx!(tx, |conn| sqlx::query(
        "INSERT INTO audit_log (id, actor_id, action, resource_type, resource_id, details, ip_address, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
    )
    .bind(Uuid::new_v4())
    .bind(e.actor_id)
    .bind(e.action)
    .bind(e.resource_type)
    .bind(e.resource_id.as_deref())
    .bind(e.details.as_deref())
    .bind(e.ip.map(|ip| ip.to_string()))
    .bind(OffsetDateTime::now_utc())
    .execute(conn)
    .await
    .map(|_| ()))
}

#[derive(Debug, Default)]
pub struct AuditFilter {
    pub actor_id: Option<Uuid>,
    pub action: Option<String>,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub since: Option<OffsetDateTime>,
    pub until: Option<OffsetDateTime>,
}

/// Filters are optional: `($n IS NULL OR column = $n)` keeps one statement for every combination.
pub async fn list(db: &Db, f: &AuditFilter, paging: Paging) -> Result<(Vec<AuditRow>, i64), sqlx::Error> {
    const WHERE: &str = "WHERE ($1 IS NULL OR actor_id = $1) AND ($2 IS NULL OR action = $2) \
         AND ($3 IS NULL OR resource_type = $3) AND ($4 IS NULL OR resource_id = $4) \
         AND ($5 IS NULL OR created_at >= $5) AND ($6 IS NULL OR created_at <= $6)";
    let rows_sql = format!(
        "SELECT id, actor_id, action, resource_type, resource_id, details, ip_address, created_at FROM audit_log \
         {WHERE} ORDER BY created_at DESC, id LIMIT $7 OFFSET $8"
    );
    let count_sql = format!("SELECT COUNT(*) FROM audit_log {WHERE}");
    let rows = on_db!(db, |pool| sqlx::query_as::<_, AuditRow>(sqlx::AssertSqlSafe(rows_sql.clone()))
        .bind(f.actor_id)
        .bind(f.action.as_deref())
        .bind(f.resource_type.as_deref())
        .bind(f.resource_id.as_deref())
        .bind(f.since)
        .bind(f.until)
        .bind(paging.size)
        .bind(paging.offset())
        .fetch_all(pool)
        .await)?;
    let total = on_db!(db, |pool| sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(count_sql.clone()))
        .bind(f.actor_id)
        .bind(f.action.as_deref())
        .bind(f.resource_type.as_deref())
        .bind(f.resource_id.as_deref())
        .bind(f.since)
        .bind(f.until)
        .fetch_one(pool)
        .await)?;
    Ok((rows, total))
}
