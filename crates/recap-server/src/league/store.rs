use sqlx::{FromRow, types::Json};
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use super::scoring::Coefficients;
use crate::{
    db::{Db, Tx},
    on_db, on_tx,
};

#[derive(Debug, Clone, FromRow)]
pub struct ScoringRow {
    pub coefficients: Json<Coefficients>,
    pub created_at: OffsetDateTime,
    pub updated_at: Option<OffsetDateTime>,
}

pub async fn scoring(db: &Db, project_id: Uuid) -> Result<Option<ScoringRow>, sqlx::Error> {
    on_db!(db, |pool| sqlx::query_as::<_, ScoringRow>(
        "SELECT coefficients, created_at, updated_at FROM scoring_configs WHERE project_id = $1"
    )
    .bind(project_id)
    .fetch_optional(pool)
    .await)
}

pub async fn put_scoring(tx: &mut Tx, project_id: Uuid, c: &Coefficients) -> Result<(), sqlx::Error> {
    let now = OffsetDateTime::now_utc();
    on_tx!(tx, |conn| sqlx::query(
        "INSERT INTO scoring_configs (project_id, coefficients, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (project_id) DO UPDATE SET coefficients = excluded.coefficients, updated_at = $3"
    )
    .bind(project_id)
    .bind(Json(c))
    .bind(now)
    .execute(conn)
    .await
    .map(|_| ()))
}

#[derive(Debug, Clone, FromRow)]
pub struct IdentityRow {
    pub id: Uuid,
    pub display_name: String,
    pub created_at: OffsetDateTime,
}

pub async fn insert_identity(
    tx: &mut Tx,
    project_id: Uuid,
    display_name: &str,
    emails: &[String],
) -> Result<Uuid, sqlx::Error> {
    let id = Uuid::now_v7();
    on_tx!(tx, |conn| sqlx::query(
        "INSERT INTO identities (id, project_id, display_name, created_at) VALUES ($1, $2, $3, $4)"
    )
    .bind(id)
    .bind(project_id)
    .bind(display_name)
    .bind(OffsetDateTime::now_utc())
    .execute(conn)
    .await
    .map(|_| ()))?;
    for email in emails {
        on_tx!(tx, |conn| sqlx::query(
            "INSERT INTO identity_emails (project_id, email, identity_id) VALUES ($1, $2, $3)"
        )
        .bind(project_id)
        .bind(email)
        .bind(id)
        .execute(conn)
        .await
        .map(|_| ()))?;
    }
    Ok(id)
}

pub async fn list_identities(db: &Db, project_id: Uuid) -> Result<Vec<(IdentityRow, Vec<String>)>, sqlx::Error> {
    let identities = on_db!(db, |pool| sqlx::query_as::<_, IdentityRow>(
        "SELECT id, display_name, created_at FROM identities WHERE project_id = $1 ORDER BY display_name, id"
    )
    .bind(project_id)
    .fetch_all(pool)
    .await)?;
    let emails: Vec<(Uuid, String)> = on_db!(db, |pool| sqlx::query_as(
        "SELECT identity_id, email FROM identity_emails WHERE project_id = $1 ORDER BY email"
    )
    .bind(project_id)
    .fetch_all(pool)
    .await)?;
    Ok(identities
        .into_iter()
        .map(|i| {
            let mine = emails.iter().filter(|(id, _)| *id == i.id).map(|(_, e)| e.clone()).collect();
            (i, mine)
        })
        .collect())
}

pub async fn delete_identity(tx: &mut Tx, project_id: Uuid, id: Uuid) -> Result<bool, sqlx::Error> {
    on_tx!(tx, |conn| sqlx::query("DELETE FROM identities WHERE id = $1 AND project_id = $2")
        .bind(id)
        .bind(project_id)
        .execute(conn)
        .await
        .map(|r| r.rows_affected() > 0))
}

/// Totals per person (an identity, or an unmerged e-mail) over a day range.
#[derive(Debug, Clone, FromRow)]
pub struct PersonTotals {
    pub person: String,
    pub identity_id: Option<Uuid>,
    pub identity_name: Option<String>,
    pub email: String,
    pub author_name: String,
    pub commits: i64,
    pub additions: i64,
    pub deletions: i64,
    pub pts: i64,
    pub reb: i64,
    pub ast: i64,
    pub blk: i64,
    pub tov: i64,
    pub impact: f64,
    pub active_days: i64,
}

pub async fn totals(
    db: &Db,
    project_id: Uuid,
    since: Option<Date>,
    until: Option<Date>,
) -> Result<Vec<PersonTotals>, sqlx::Error> {
    if since.is_none() && until.is_none() {
        return all_time_totals(db, project_id).await;
    }
    // Only the bounds that are set become conditions, so a day range is an index range scan
    // (an `$n IS NULL OR …` condition would make SQLite scan every row of the project).
    let mut range = String::new();
    let mut next = 2;
    for (bound, op) in [(since, ">="), (until, "<=")] {
        if bound.is_some() {
            range.push_str(&format!(" AND s.day {op} ${next}"));
            next += 1;
        }
    }
    let sql = |person: &str| person_query(person, "author_daily_stats", "COUNT(DISTINCT s.day)", &range);
    let bounds = [since, until];
    match db {
        Db::Sqlite(pool) => {
            let mut q = sqlx::query_as::<_, PersonTotals>(sqlx::AssertSqlSafe(sql(SQLITE_ID))).bind(project_id);
            for bound in bounds.into_iter().flatten() {
                q = q.bind(bound);
            }
            q.fetch_all(pool).await
        }
        Db::Postgres(pool) => {
            let mut q = sqlx::query_as::<_, PersonTotals>(sqlx::AssertSqlSafe(sql(POSTGRES_ID))).bind(project_id);
            for bound in bounds.into_iter().flatten() {
                q = q.bind(bound);
            }
            q.fetch_all(pool).await
        }
    }
}

/// "uuid as text" in each engine (SQLite's hex(NULL) is '', hence the nullif).
const SQLITE_ID: &str = "nullif(lower(hex(ie.identity_id)), '')";
const POSTGRES_ID: &str = "ie.identity_id::text";

/// Sums of `table` (daily rows or all-time rows) per person: an identity, or an unmerged e-mail.
/// PostgreSQL's SUM(bigint) is numeric, hence the casts.
fn person_query(person: &str, table: &str, active_days: &str, range: &str) -> String {
    format!(
        "SELECT COALESCE({person}, s.author_email) AS person, ie.identity_id, MAX(i.display_name) AS identity_name, \
         MIN(s.author_email) AS email, MAX(s.author_name) AS author_name, \
         CAST(SUM(s.commits) AS BIGINT) AS commits, CAST(SUM(s.additions) AS BIGINT) AS additions, \
         CAST(SUM(s.deletions) AS BIGINT) AS deletions, CAST(SUM(s.pts) AS BIGINT) AS pts, \
         CAST(SUM(s.reb) AS BIGINT) AS reb, CAST(SUM(s.ast) AS BIGINT) AS ast, CAST(SUM(s.blk) AS BIGINT) AS blk, \
         CAST(SUM(s.tov) AS BIGINT) AS tov, SUM(s.impact) AS impact, CAST({active_days} AS BIGINT) AS active_days \
         FROM {table} s \
         LEFT JOIN identity_emails ie ON ie.project_id = s.project_id AND ie.email = s.author_email \
         LEFT JOIN identities i ON i.id = ie.identity_id \
         WHERE s.project_id = $1{range} \
         GROUP BY COALESCE({person}, s.author_email), ie.identity_id"
    )
}

/// All time: one row per author from `author_totals`. Summing active days is exact for a single
/// e-mail; a merged identity's e-mails may share days, so those are counted from the daily rows.
async fn all_time_totals(db: &Db, project_id: Uuid) -> Result<Vec<PersonTotals>, sqlx::Error> {
    let sql = |person: &str| person_query(person, "author_totals", "SUM(s.active_days)", "");
    let mut people = match db {
        Db::Sqlite(pool) => {
            sqlx::query_as::<_, PersonTotals>(sqlx::AssertSqlSafe(sql(SQLITE_ID)))
                .bind(project_id)
                .fetch_all(pool)
                .await?
        }
        Db::Postgres(pool) => {
            sqlx::query_as::<_, PersonTotals>(sqlx::AssertSqlSafe(sql(POSTGRES_ID)))
                .bind(project_id)
                .fetch_all(pool)
                .await?
        }
    };
    if people.iter().any(|p| p.identity_id.is_some()) {
        let days: Vec<(Uuid, i64)> = on_db!(db, |pool| sqlx::query_as(
            "SELECT ie.identity_id, CAST(COUNT(DISTINCT s.day) AS BIGINT) FROM identity_emails ie \
             JOIN author_daily_stats s ON s.project_id = ie.project_id AND s.author_email = ie.email \
             WHERE ie.project_id = $1 GROUP BY ie.identity_id"
        )
        .bind(project_id)
        .fetch_all(pool)
        .await)?;
        for person in people.iter_mut() {
            if let Some((_, d)) = days.iter().find(|(id, _)| Some(*id) == person.identity_id) {
                person.active_days = *d;
            }
        }
    }
    Ok(people)
}
