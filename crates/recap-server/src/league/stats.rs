//! Per-author daily totals, kept current by the ingestion transaction ([`record_ingested`]) and
//! rebuilt when a project's coefficients change ([`recompute`]). Leaderboards read only these.

use std::collections::HashMap;

use futures::TryStreamExt;
use sqlx::{QueryBuilder, types::Json};
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use super::scoring::{Coefficients, metrics};
use crate::{db::Tx, on_tx};

/// What a leaderboard needs of one commit.
#[derive(Debug, Clone)]
pub struct StatCommit<'a> {
    pub author_email: &'a str,
    pub author_name: &'a str,
    pub commit_date: OffsetDateTime,
    pub additions: i64,
    pub deletions: i64,
    pub files_changed: i64,
    pub title: &'a str,
}

#[derive(Debug, Default, Clone)]
struct DayTotals {
    author_name: String,
    commits: i64,
    additions: i64,
    deletions: i64,
    pts: i64,
    reb: i64,
    ast: i64,
    blk: i64,
    tov: i64,
    impact: f64,
}

impl DayTotals {
    /// Adds `other`'s sums (not its name).
    fn add_sums(&mut self, other: &DayTotals) {
        self.commits += other.commits;
        self.additions += other.additions;
        self.deletions += other.deletions;
        self.pts += other.pts;
        self.reb += other.reb;
        self.ast += other.ast;
        self.blk += other.blk;
        self.tov += other.tov;
        self.impact += other.impact;
    }
}

/// The project's coefficients, for a write that adds or subtracts metrics computed with them.
/// On PostgreSQL it holds the project's scoring lock shared until the transaction ends, so such
/// a write and a coefficient change ([`lock_for_rescoring`]) never overlap: a push racing a
/// change would otherwise add its commits with the old coefficients to rollups just rebuilt with
/// the new ones. (On SQLite these writes all go through the one ingest writer.)
pub async fn coefficients(tx: &mut Tx, project_id: Uuid) -> Result<Coefficients, sqlx::Error> {
    if let Tx::Postgres(t) = tx {
        sqlx::query("SELECT pg_advisory_xact_lock_shared(hashtext('recap.scoring'), hashtext($1::text))")
            .bind(project_id)
            .execute(&mut **t)
            .await?;
    }
    let stored: Option<Json<Coefficients>> =
        on_tx!(tx, |conn| sqlx::query_scalar("SELECT coefficients FROM scoring_configs WHERE project_id = $1")
            .bind(project_id)
            .fetch_optional(conn)
            .await)?;
    Ok(stored.map(|Json(c)| c).unwrap_or_default())
}

fn add(totals: &mut HashMap<(String, Date), DayTotals>, c: &Coefficients, commit: &StatCommit<'_>) {
    let m = metrics(c, commit.additions, commit.deletions, commit.files_changed, commit.title);
    let day = commit.commit_date.to_offset(time::UtcOffset::UTC).date();
    let t = totals.entry((commit.author_email.to_owned(), day)).or_default();
    if t.author_name.is_empty() {
        t.author_name = commit.author_name.to_owned();
    }
    t.add_sums(&DayTotals {
        author_name: String::new(),
        commits: 1,
        additions: commit.additions,
        deletions: commit.deletions,
        pts: m.pts,
        reb: m.reb,
        ast: m.ast,
        blk: m.blk,
        tov: m.tov,
        impact: m.impact,
    });
}

/// Adds newly inserted commits of `project_id` to the daily totals, inside the ingesting transaction.
pub async fn record_ingested(tx: &mut Tx, project_id: Uuid, commits: &[StatCommit<'_>]) -> Result<(), sqlx::Error> {
    if commits.is_empty() {
        return Ok(());
    }
    let c = coefficients(tx, project_id).await?;
    let mut totals = HashMap::new();
    for commit in commits {
        add(&mut totals, &c, commit);
    }
    upsert(tx, project_id, totals).await
}

/// 13 bound values per row; 500 rows stay well under both engines' parameter limits.
const ROWS_PER_STATEMENT: usize = 500;

/// Adds `totals` to the daily, monthly and all-time rows. A daily row that did not exist before is
/// a new active day for its author: the upsert returns each row's commit count after the change,
/// and a count equal to what this batch added means the row was just created. Negative totals
/// (a removed repository) work the same way: a daily row left with no commits is a lost active
/// day, and rows left with no commits are deleted.
async fn upsert(tx: &mut Tx, project_id: Uuid, totals: HashMap<(String, Date), DayTotals>) -> Result<(), sqlx::Error> {
    // Rows go in key order, so concurrent ingests into one project lock them in the same order
    // (PostgreSQL would otherwise deadlock two pushes that share authors and days).
    let mut rows: Vec<((String, Date), DayTotals)> = totals.into_iter().collect();
    rows.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let mut after: HashMap<(String, Date), i64> = HashMap::with_capacity(rows.len());
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let returned: Vec<(String, Date, i64)> = on_tx!(tx, |conn| {
            let mut q = QueryBuilder::new(
                "INSERT INTO author_daily_stats (project_id, author_email, day, author_name, commits, additions, \
                 deletions, pts, reb, ast, blk, tov, impact) ",
            );
            q.push_values(chunk, |mut b, ((email, day), t)| {
                b.push_bind(project_id)
                    .push_bind(email)
                    .push_bind(*day)
                    .push_bind(&t.author_name)
                    .push_bind(t.commits)
                    .push_bind(t.additions)
                    .push_bind(t.deletions)
                    .push_bind(t.pts)
                    .push_bind(t.reb)
                    .push_bind(t.ast)
                    .push_bind(t.blk)
                    .push_bind(t.tov)
                    .push_bind(t.impact);
            });
            q.push(
                " ON CONFLICT (project_id, day, author_email) DO UPDATE SET \
                 author_name = CASE WHEN excluded.commits > 0 THEN excluded.author_name \
                 ELSE author_daily_stats.author_name END, \
                 commits = author_daily_stats.commits + excluded.commits, \
                 additions = author_daily_stats.additions + excluded.additions, \
                 deletions = author_daily_stats.deletions + excluded.deletions, \
                 pts = author_daily_stats.pts + excluded.pts, reb = author_daily_stats.reb + excluded.reb, \
                 ast = author_daily_stats.ast + excluded.ast, blk = author_daily_stats.blk + excluded.blk, \
                 tov = author_daily_stats.tov + excluded.tov, impact = author_daily_stats.impact + excluded.impact \
                 RETURNING author_email, day, commits",
            );
            q.build_query_as().fetch_all(&mut *conn).await
        })?;
        after.extend(returned.into_iter().map(|(email, day, commits)| ((email, day), commits)));
    }

    // Fold the days into one delta per author and month, and one per author (all time).
    let mut per_month: Deltas<'_> = HashMap::new();
    let mut per_author: Deltas<'_> = HashMap::new();
    for ((email, day), t) in &rows {
        let now = after.get(&(email.clone(), *day)).copied();
        let day_change = match now {
            Some(n) if t.commits > 0 && n == t.commits => 1,
            Some(0) if t.commits < 0 => -1,
            _ => 0,
        };
        for (rollup, key) in [(&mut per_month, month_of(*day)), (&mut per_author, ALL_TIME)] {
            let (sum, days) = rollup.entry((email.as_str(), key)).or_insert_with(|| (DayTotals::default(), 0));
            sum.author_name.clone_from(&t.author_name);
            sum.add_sums(t);
            *days += day_change;
        }
    }
    add_to_rollup(tx, project_id, Rollup::Months, per_month).await?;
    add_to_rollup(tx, project_id, Rollup::AllTime, per_author).await?;
    if rows.iter().any(|(_, t)| t.commits < 0) {
        for table in ["author_daily_stats", "author_monthly_stats", "author_totals"] {
            let sql = format!("DELETE FROM {table} WHERE project_id = $1 AND commits <= 0");
            on_tx!(tx, |conn| sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                .bind(project_id)
                .execute(&mut *conn)
                .await
                .map(|_| ()))?;
        }
    }
    Ok(())
}

/// The first day of `day`'s month: the key of the monthly rows.
pub fn month_of(day: Date) -> Date {
    day.replace_day(1).expect("every month has a first day")
}

/// Placeholder key of the all-time deltas (the all-time table has no date column).
const ALL_TIME: Date = Date::MIN;

/// Per-author deltas of a rollup: `(e-mail, month or ALL_TIME)` → sums and new active days.
type Deltas<'a> = HashMap<(&'a str, Date), (DayTotals, i64)>;

enum Rollup {
    /// `author_monthly_stats`, keyed by author and month.
    Months,
    /// `author_totals`, keyed by author.
    AllTime,
}

/// Adds per-author deltas (sums and new active days) to a rollup table.
async fn add_to_rollup(tx: &mut Tx, project_id: Uuid, rollup: Rollup, deltas: Deltas<'_>) -> Result<(), sqlx::Error> {
    let (table, month_column, key) = match rollup {
        Rollup::Months => ("author_monthly_stats", "month, ", "project_id, month, author_email"),
        Rollup::AllTime => ("author_totals", "", "project_id, author_email"),
    };
    let mut rows: Vec<_> = deltas.into_iter().collect();
    rows.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        on_tx!(tx, |conn| {
            let mut q = QueryBuilder::new(format!(
                "INSERT INTO {table} (project_id, {month_column}author_email, author_name, commits, additions, \
                 deletions, pts, reb, ast, blk, tov, impact, active_days) "
            ));
            q.push_values(chunk, |mut b, ((email, month), (t, days))| {
                b.push_bind(project_id);
                if matches!(rollup, Rollup::Months) {
                    b.push_bind(*month);
                }
                b.push_bind(*email)
                    .push_bind(&t.author_name)
                    .push_bind(t.commits)
                    .push_bind(t.additions)
                    .push_bind(t.deletions)
                    .push_bind(t.pts)
                    .push_bind(t.reb)
                    .push_bind(t.ast)
                    .push_bind(t.blk)
                    .push_bind(t.tov)
                    .push_bind(t.impact)
                    .push_bind(*days);
            });
            q.push(format!(
                " ON CONFLICT ({key}) DO UPDATE SET \
                 author_name = CASE WHEN excluded.commits > 0 THEN excluded.author_name ELSE {table}.author_name END, \
                 commits = {table}.commits + excluded.commits, \
                 additions = {table}.additions + excluded.additions, \
                 deletions = {table}.deletions + excluded.deletions, \
                 pts = {table}.pts + excluded.pts, reb = {table}.reb + excluded.reb, \
                 ast = {table}.ast + excluded.ast, blk = {table}.blk + excluded.blk, \
                 tov = {table}.tov + excluded.tov, impact = {table}.impact + excluded.impact, \
                 active_days = {table}.active_days + excluded.active_days"
            ));
            q.build().execute(&mut *conn).await.map(|_| ())
        })?;
    }
    Ok(())
}

#[derive(sqlx::FromRow)]
struct CommitRow {
    author_email: String,
    author_name: String,
    commit_date: OffsetDateTime,
    additions: i64,
    deletions: i64,
    files_changed: i64,
    message_title: String,
}

/// Takes a repository's commits out of its project's totals, before the repository is deleted:
/// reads only that repository's commits (not the whole project's) and subtracts them.
pub async fn remove_repository(tx: &mut Tx, project_id: Uuid, repo_id: Uuid) -> Result<(), sqlx::Error> {
    let c = coefficients(tx, project_id).await?;
    let totals = sum_commits(tx, &c, Commits::OfRepository(repo_id)).await?;
    let negated = totals
        .into_iter()
        .map(|(key, t)| {
            let negative = DayTotals {
                author_name: t.author_name,
                commits: -t.commits,
                additions: -t.additions,
                deletions: -t.deletions,
                pts: -t.pts,
                reb: -t.reb,
                ast: -t.ast,
                blk: -t.blk,
                tov: -t.tov,
                impact: -t.impact,
            };
            (key, negative)
        })
        .collect();
    upsert(tx, project_id, negated).await
}

/// Whose commits [`sum_commits`] reads.
#[derive(Debug, Clone, Copy)]
enum Commits {
    OfProject(Uuid),
    OfRepository(Uuid),
}

/// Commits per page when SQLite reads a repository's commits for [`sum_commits`].
const SQLITE_PAGE: i64 = 10_000;

/// Daily totals of the commits of a project or repository, read without holding them all.
///
/// PostgreSQL streams the rows. SQLite hands rows over from its thread one message each, which
/// was most of the time of a rebuild (6–11 s for a million commits), so it reads each repository
/// in pages of [`SQLITE_PAGE`] commits along the `(repo_id, commit_date)` index, a page as one
/// JSON array.
async fn sum_commits(
    tx: &mut Tx,
    c: &Coefficients,
    of: Commits,
) -> Result<HashMap<(String, Date), DayTotals>, sqlx::Error> {
    let mut totals = HashMap::new();
    match tx {
        Tx::Postgres(t) => {
            let sql = match of {
                Commits::OfProject(_) => {
                    "SELECT c.author_email, c.author_name, c.commit_date, c.additions, c.deletions, c.files_changed, \
                     c.message_title FROM commits c JOIN repositories r ON r.id = c.repo_id WHERE r.project_id = $1"
                }
                Commits::OfRepository(_) => {
                    "SELECT author_email, author_name, commit_date, additions, deletions, files_changed, message_title \
                     FROM commits WHERE repo_id = $1"
                }
            };
            let (Commits::OfProject(id) | Commits::OfRepository(id)) = of;
            let mut rows = sqlx::query_as::<_, CommitRow>(sql).bind(id).fetch(&mut **t);
            while let Some(r) = rows.try_next().await? {
                add(&mut totals, c, &r.as_stat());
            }
        }
        Tx::Sqlite(t) => {
            let repos = match of {
                Commits::OfRepository(id) => vec![id],
                Commits::OfProject(id) => {
                    sqlx::query_scalar::<_, Uuid>("SELECT id FROM repositories WHERE project_id = $1")
                        .bind(id)
                        .fetch_all(&mut **t)
                        .await?
                }
            };
            for repo_id in repos {
                // After the last (commit_date, rowid) read; every date is after ''.
                let mut after = (String::new(), i64::MIN);
                loop {
                    let page: String = sqlx::query_scalar(
                        "SELECT json_group_array(json_array(rowid, author_email, author_name, commit_date, additions, \
                         deletions, files_changed, message_title)) \
                         FROM (SELECT rowid, * FROM commits WHERE repo_id = $1 AND (commit_date, rowid) > ($2, $3) \
                         ORDER BY commit_date, rowid LIMIT $4)",
                    )
                    .bind(repo_id)
                    .bind(&after.0)
                    .bind(after.1)
                    .bind(SQLITE_PAGE)
                    .fetch_one(&mut **t)
                    .await?;
                    let rows: Vec<PagedRow> = serde_json::from_str(&page)
                        .map_err(|e| sqlx::Error::Protocol(format!("a page of commits: {e}")))?;
                    for row in &rows {
                        add(&mut totals, c, &row.as_stat()?);
                    }
                    let Some(last) = rows.into_iter().max_by(|a, b| (&a.3, a.0).cmp(&(&b.3, b.0))) else { break };
                    after = (last.3, last.0);
                }
            }
        }
    }
    Ok(totals)
}

/// One commit of a SQLite page: rowid, author e-mail and name, commit date (`time::sortable`),
/// additions, deletions, files changed, title.
#[derive(serde::Deserialize)]
struct PagedRow(i64, String, String, String, i64, i64, i64, String);

impl PagedRow {
    fn as_stat(&self) -> Result<StatCommit<'_>, sqlx::Error> {
        let commit_date = OffsetDateTime::parse(&self.3, &time::format_description::well_known::Rfc3339)
            .map_err(|e| sqlx::Error::Protocol(format!("a stored commit date {:?}: {e}", self.3)))?;
        Ok(StatCommit {
            author_email: &self.1,
            author_name: &self.2,
            commit_date,
            additions: self.4,
            deletions: self.5,
            files_changed: self.6,
            title: &self.7,
        })
    }
}

impl CommitRow {
    fn as_stat(&self) -> StatCommit<'_> {
        StatCommit {
            author_email: &self.author_email,
            author_name: &self.author_name,
            commit_date: self.commit_date,
            additions: self.additions,
            deletions: self.deletions,
            files_changed: self.files_changed,
            title: &self.message_title,
        }
    }
}

/// Takes the project's scoring lock exclusively (PostgreSQL; see [`coefficients`]) before its
/// coefficients change.
pub async fn lock_for_rescoring(tx: &mut Tx, project_id: Uuid) -> Result<(), sqlx::Error> {
    if let Tx::Postgres(t) = tx {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('recap.scoring'), hashtext($1::text))")
            .bind(project_id)
            .execute(&mut **t)
            .await?;
    }
    Ok(())
}

/// Rebuilds a project's totals from its commits (after a coefficient change). Streams the
/// commits, so memory is bounded by the number of (author, day) pairs, not of commits.
pub async fn recompute(tx: &mut Tx, project_id: Uuid) -> Result<(), sqlx::Error> {
    let c = coefficients(tx, project_id).await?;
    for table in [
        "DELETE FROM author_daily_stats WHERE project_id = $1",
        "DELETE FROM author_monthly_stats WHERE project_id = $1",
        "DELETE FROM author_totals WHERE project_id = $1",
    ] {
        on_tx!(tx, |conn| sqlx::query(table).bind(project_id).execute(&mut *conn).await.map(|_| ()))?;
    }
    let totals = sum_commits(tx, &c, Commits::OfProject(project_id)).await?;
    upsert(tx, project_id, totals).await
}
