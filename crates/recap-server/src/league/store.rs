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
    let plan = RangePlan::new(since, until);
    let mut binds: Vec<Date> = Vec::new();
    // Only the bounds that are set become conditions, so each part is an index range scan
    // (an `$n IS NULL OR …` condition would make SQLite scan every row of the project).
    let mut condition = |column: &str, from: Option<Date>, to: Option<Date>| {
        let mut sql = String::new();
        for (bound, op) in [(from, ">="), (to, "<=")] {
            if let Some(bound) = bound {
                binds.push(bound);
                sql.push_str(&format!(" AND {column} {op} ${}", binds.len() + 1));
            }
        }
        sql
    };
    const SUMS: &str = "author_email, author_name, commits, additions, deletions, pts, reb, ast, blk, tov, impact";
    let mut parts = Vec::new();
    for (from, to) in plan.days {
        let range = condition("day", from, to);
        parts.push(format!("SELECT {SUMS}, 1 AS active_days FROM author_daily_stats WHERE project_id = $1{range}"));
    }
    if let Some((from, to)) = plan.months {
        let range = condition("month", from, to);
        parts.push(format!("SELECT {SUMS}, active_days FROM author_monthly_stats WHERE project_id = $1{range}"));
    }
    let source = format!("({})", parts.join(" UNION ALL "));
    let sql = |person: &str| person_query(person, &source);
    let mut people = match db {
        Db::Sqlite(pool) => {
            let mut q = sqlx::query_as::<_, PersonTotals>(sqlx::AssertSqlSafe(sql(SQLITE_ID))).bind(project_id);
            for bound in &binds {
                q = q.bind(*bound);
            }
            q.fetch_all(pool).await?
        }
        Db::Postgres(pool) => {
            let mut q = sqlx::query_as::<_, PersonTotals>(sqlx::AssertSqlSafe(sql(POSTGRES_ID))).bind(project_id);
            for bound in &binds {
                q = q.bind(*bound);
            }
            q.fetch_all(pool).await?
        }
    };
    merged_active_days(db, project_id, since, until, &mut people).await?;
    Ok(people)
}

/// How a day range is read: its whole months from the monthly rows, the days before the first
/// and after the last whole month from the daily rows (each `None` bound is open).
#[derive(Debug, Clone, PartialEq, Eq)]
struct RangePlan {
    days: Vec<(Option<Date>, Option<Date>)>,
    months: Option<(Option<Date>, Option<Date>)>,
}

impl RangePlan {
    fn new(since: Option<Date>, until: Option<Date>) -> RangePlan {
        // The first whole month starts on or after `since`; the last one ends on or before `until`.
        let first = since.map(|d| if d.day() == 1 { d } else { next_month(d) });
        let last = until.map(|d| {
            let month = month_of(d);
            if d.next_day() == Some(next_month(d)) { month } else { month.previous_day().map_or(month, month_of) }
        });
        let whole_months = match (first, last) {
            (Some(f), Some(l)) => f <= l,
            _ => true,
        };
        if !whole_months {
            return RangePlan { days: vec![(since, until)], months: None };
        }
        let mut days = Vec::new();
        if let (Some(since), Some(first)) = (since, first)
            && since < first
        {
            days.push((Some(since), first.previous_day()));
        }
        if let (Some(until), Some(last)) = (until, last) {
            let after_last = next_month(last);
            if after_last <= until {
                days.push((Some(after_last), Some(until)));
            }
        }
        RangePlan { days, months: Some((first, last)) }
    }
}

use super::stats::month_of;

/// The first day of the month after `day`'s.
fn next_month(day: Date) -> Date {
    let (year, month) = match day.month() {
        time::Month::December => (day.year() + 1, time::Month::January),
        m => (day.year(), m.next()),
    };
    Date::from_calendar_date(year, month, 1).unwrap_or(Date::MAX)
}

/// "uuid as text" in each engine (SQLite's hex(NULL) is '', hence the nullif).
const SQLITE_ID: &str = "nullif(lower(hex(ie.identity_id)), '')";
const POSTGRES_ID: &str = "ie.identity_id::text";

/// Sums per person (an identity, or an unmerged e-mail) of `source`: rows of one project with the
/// author's e-mail, name, sums and `active_days` (exact per e-mail; a merged identity's e-mails
/// may share days, see [`merged_active_days`]). Rows are summed per e-mail before the identity
/// join, so the join sees one row per author. PostgreSQL's SUM(bigint) is numeric, hence the casts.
fn person_query(person: &str, source: &str) -> String {
    format!(
        "SELECT COALESCE({person}, s.author_email) AS person, ie.identity_id, MAX(i.display_name) AS identity_name, \
         MIN(s.author_email) AS email, MAX(s.author_name) AS author_name, \
         CAST(SUM(s.commits) AS BIGINT) AS commits, CAST(SUM(s.additions) AS BIGINT) AS additions, \
         CAST(SUM(s.deletions) AS BIGINT) AS deletions, CAST(SUM(s.pts) AS BIGINT) AS pts, \
         CAST(SUM(s.reb) AS BIGINT) AS reb, CAST(SUM(s.ast) AS BIGINT) AS ast, CAST(SUM(s.blk) AS BIGINT) AS blk, \
         CAST(SUM(s.tov) AS BIGINT) AS tov, SUM(s.impact) AS impact, CAST(SUM(s.active_days) AS BIGINT) AS active_days \
         FROM (SELECT author_email, MAX(author_name) AS author_name, SUM(commits) AS commits, \
               SUM(additions) AS additions, SUM(deletions) AS deletions, SUM(pts) AS pts, SUM(reb) AS reb, \
               SUM(ast) AS ast, SUM(blk) AS blk, SUM(tov) AS tov, SUM(impact) AS impact, \
               SUM(active_days) AS active_days \
               FROM {source} rows GROUP BY author_email) s \
         LEFT JOIN identity_emails ie ON ie.project_id = $1 AND ie.email = s.author_email \
         LEFT JOIN identities i ON i.id = ie.identity_id \
         GROUP BY COALESCE({person}, s.author_email), ie.identity_id"
    )
}

/// All time: one row per author from `author_totals`.
async fn all_time_totals(db: &Db, project_id: Uuid) -> Result<Vec<PersonTotals>, sqlx::Error> {
    let source = "(SELECT * FROM author_totals WHERE project_id = $1)";
    let sql = |person: &str| person_query(person, source);
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
    merged_active_days(db, project_id, None, None, &mut people).await?;
    Ok(people)
}

/// Summed active days are exact for a single e-mail; a merged identity's e-mails may share days,
/// so identities count their distinct days from the daily rows (of their e-mails only).
async fn merged_active_days(
    db: &Db,
    project_id: Uuid,
    since: Option<Date>,
    until: Option<Date>,
    people: &mut [PersonTotals],
) -> Result<(), sqlx::Error> {
    if !people.iter().any(|p| p.identity_id.is_some()) {
        return Ok(());
    }
    // Only the set bounds become conditions (and no sentinel dates: PostgreSQL's range is smaller).
    let mut sql = "SELECT ie.identity_id, CAST(COUNT(DISTINCT s.day) AS BIGINT) FROM identity_emails ie \
         JOIN author_daily_stats s ON s.project_id = ie.project_id AND s.author_email = ie.email \
         WHERE ie.project_id = $1"
        .to_owned();
    let mut bounds: Vec<Date> = Vec::new();
    for (bound, op) in [(since, ">="), (until, "<=")] {
        if let Some(bound) = bound {
            bounds.push(bound);
            sql.push_str(&format!(" AND s.day {op} ${}", bounds.len() + 1));
        }
    }
    sql.push_str(" GROUP BY ie.identity_id");
    let days: Vec<(Uuid, i64)> = on_db!(db, |pool| {
        let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())).bind(project_id);
        for bound in &bounds {
            q = q.bind(*bound);
        }
        q.fetch_all(pool).await
    })?;
    for person in people.iter_mut() {
        if let Some((_, d)) = days.iter().find(|(id, _)| Some(*id) == person.identity_id) {
            person.active_days = *d;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use time::macros::date;

    use super::*;

    #[test]
    fn a_range_reads_whole_months_from_the_monthly_rows_and_its_ends_from_the_daily_rows() {
        let plan = RangePlan::new(Some(date!(2025 - 11 - 15)), Some(date!(2026 - 11 - 30)));
        assert_eq!(plan.months, Some((Some(date!(2025 - 12 - 01)), Some(date!(2026 - 11 - 01)))));
        assert_eq!(plan.days, vec![(Some(date!(2025 - 11 - 15)), Some(date!(2025 - 11 - 30)))]);

        let plan = RangePlan::new(Some(date!(2026 - 01 - 01)), Some(date!(2026 - 03 - 10)));
        assert_eq!(plan.months, Some((Some(date!(2026 - 01 - 01)), Some(date!(2026 - 02 - 01)))));
        assert_eq!(plan.days, vec![(Some(date!(2026 - 03 - 01)), Some(date!(2026 - 03 - 10)))]);

        // December to January, and a leap February.
        let plan = RangePlan::new(Some(date!(2023 - 12 - 31)), Some(date!(2024 - 02 - 29)));
        assert_eq!(plan.months, Some((Some(date!(2024 - 01 - 01)), Some(date!(2024 - 02 - 01)))));
        assert_eq!(plan.days, vec![(Some(date!(2023 - 12 - 31)), Some(date!(2023 - 12 - 31)))]);

        // No whole month inside: days only.
        let plan = RangePlan::new(Some(date!(2026 - 02 - 03)), Some(date!(2026 - 03 - 30)));
        assert_eq!(
            plan,
            RangePlan { days: vec![(Some(date!(2026 - 02 - 03)), Some(date!(2026 - 03 - 30)))], months: None }
        );
        let plan = RangePlan::new(Some(date!(2026 - 02 - 03)), Some(date!(2026 - 02 - 03)));
        assert_eq!(plan.months, None);

        // Open ends.
        let plan = RangePlan::new(None, Some(date!(2026 - 05 - 20)));
        assert_eq!(plan.months, Some((None, Some(date!(2026 - 04 - 01)))));
        assert_eq!(plan.days, vec![(Some(date!(2026 - 05 - 01)), Some(date!(2026 - 05 - 20)))]);
        let plan = RangePlan::new(Some(date!(2026 - 05 - 20)), None);
        assert_eq!(plan.months, Some((Some(date!(2026 - 06 - 01)), None)));
        assert_eq!(plan.days, vec![(Some(date!(2026 - 05 - 20)), Some(date!(2026 - 05 - 31)))]);
    }
}
