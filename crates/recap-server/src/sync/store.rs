//! SQL of commits and of a repository's sync state.
//!
//! Commit dates are compared in SQL, so they are bound through [`SqlTime`]: fixed-width UTC text
//! on SQLite (text order is time order), `timestamptz` on PostgreSQL. The bulk insert is written
//! per engine: multi-row `VALUES` on SQLite (chunks of a few fixed sizes,
//! so each connection caches a handful of prepared statements), one `UNNEST` of column arrays on
//! PostgreSQL (one statement whatever the batch size). Both insert-if-absent on `(repo_id, sha)`.
//!
//! On SQLite commits are found through `sha_key`, a 64-bit key of the SHA salted per repository
//! ([`KeySalt`], migration `…07_commit_keys`), not through `(repo_id, sha)`: every lookup names the
//! key, then compares the repository and the full SHA. Those lookups name the index
//! (`INDEXED BY commits_key`): without statistics SQLite's planner may otherwise prefer an index
//! on `repo_id`, i.e. read the whole repository. PostgreSQL keeps its unique `(repo_id, sha)` index.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, OnceLock},
};

use sqlx::{
    Database, Decode, Encode, FromRow, Postgres, Sqlite, Type,
    encode::IsNull,
    error::BoxDynError,
    postgres::PgArguments,
    query::{Query, QueryScalar},
    sqlite::SqliteArguments,
};
use time::OffsetDateTime;
use uuid::Uuid;

use super::model::{NewCommit, Sha};
use crate::{
    db::{Db, Engine, Tx},
    http::pagination::Paging,
    on_db, on_tx,
};

// ----- bound types -----

/// A timestamp that SQL may compare on both engines (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SqlTime(pub OffsetDateTime);

impl Type<Sqlite> for SqlTime {
    fn type_info() -> <Sqlite as Database>::TypeInfo {
        <String as Type<Sqlite>>::type_info()
    }
}

impl<'q> Encode<'q, Sqlite> for SqlTime {
    fn encode_by_ref(&self, buf: &mut <Sqlite as Database>::ArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <String as Encode<'q, Sqlite>>::encode(crate::time::sortable(self.0), buf)
    }
}

impl Type<Postgres> for SqlTime {
    fn type_info() -> <Postgres as Database>::TypeInfo {
        <OffsetDateTime as Type<Postgres>>::type_info()
    }
}

impl<'q> Encode<'q, Postgres> for SqlTime {
    fn encode_by_ref(&self, buf: &mut <Postgres as Database>::ArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <OffsetDateTime as Encode<'q, Postgres>>::encode_by_ref(&self.0, buf)
    }
}

impl Type<Sqlite> for Sha {
    fn type_info() -> <Sqlite as Database>::TypeInfo {
        <&str as Type<Sqlite>>::type_info()
    }
    fn compatible(ty: &<Sqlite as Database>::TypeInfo) -> bool {
        <&str as Type<Sqlite>>::compatible(ty)
    }
}

impl<'r> Decode<'r, Sqlite> for Sha {
    fn decode(value: <Sqlite as Database>::ValueRef<'r>) -> Result<Self, BoxDynError> {
        let s = <&str as Decode<'r, Sqlite>>::decode(value)?;
        Sha::parse(s).ok_or_else(|| format!("not a SHA: {s:?}").into())
    }
}

impl Type<Postgres> for Sha {
    fn type_info() -> <Postgres as Database>::TypeInfo {
        <&str as Type<Postgres>>::type_info()
    }
    fn compatible(ty: &<Postgres as Database>::TypeInfo) -> bool {
        <&str as Type<Postgres>>::compatible(ty)
    }
}

impl<'r> Decode<'r, Postgres> for Sha {
    fn decode(value: <Postgres as Database>::ValueRef<'r>) -> Result<Self, BoxDynError> {
        let s = <&str as Decode<'r, Postgres>>::decode(value)?;
        Sha::parse(s).ok_or_else(|| format!("not a SHA: {s:?}").into())
    }
}

// ----- ingestion -----

pub async fn mark_syncing(tx: &mut Tx, repo_id: Uuid) -> Result<(), sqlx::Error> {
    on_tx!(tx, |conn| sqlx::query("UPDATE repositories SET status = 'syncing' WHERE id = $1")
        .bind(repo_id)
        .execute(conn)
        .await
        .map(|_| ()))
}

/// How SQLite keys the commits of one repository: `sha_key` = [`Sha::fold64`] XOR the
/// repository's salt, a random number made when the repository is (by a trigger) and never shown.
/// The salt spreads a fork's commits away from the original's and keeps keys unpredictable (see
/// the migration). PostgreSQL has no keys: there the salt is 0 and unused.
#[derive(Debug, Clone, Copy)]
pub struct KeySalt(i64);

impl KeySalt {
    pub fn key(self, sha: &Sha) -> i64 {
        sha.fold64() ^ self.0
    }
}

/// The repository's [`KeySalt`] (one indexed read on SQLite; nothing on PostgreSQL).
pub async fn key_salt(db: &Db, repo_id: Uuid) -> Result<KeySalt, sqlx::Error> {
    match db {
        Db::Sqlite(pool) => sqlx::query_scalar::<_, i64>("SELECT commit_key_salt FROM repositories WHERE id = $1")
            .bind(repo_id)
            .fetch_optional(pool)
            .await
            .map(|salt| KeySalt(salt.unwrap_or(0))),
        Db::Postgres(_) => Ok(KeySalt(0)),
    }
}

/// How many of `shas` (one or two distinct SHAs) the repository already holds.
pub async fn count_present(db: &Db, repo_id: Uuid, salt: KeySalt, a: &Sha, b: &Sha) -> Result<i64, sqlx::Error> {
    match db {
        Db::Sqlite(pool) => sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM commits INDEXED BY commits_key WHERE sha_key IN ($2, $3) AND repo_id = $1 AND sha IN ($4, $5)",
        )
        .bind(repo_id)
        .bind(salt.key(a))
        .bind(salt.key(b))
        .bind(a.as_str())
        .bind(b.as_str())
        .fetch_one(pool)
        .await,
        Db::Postgres(pool) => {
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM commits WHERE repo_id = $1 AND sha IN ($2, $3)")
                .bind(repo_id)
                .bind(a.as_str())
                .bind(b.as_str())
                .fetch_one(pool)
                .await
        }
    }
}

/// The SHAs of `commits` the repository already holds, sorted.
pub async fn existing_shas(
    db: &Db,
    repo_id: Uuid,
    salt: KeySalt,
    commits: &[NewCommit<'_>],
) -> Result<Vec<Sha>, sqlx::Error> {
    let mut found = match db {
        Db::Sqlite(pool) => {
            let list = sqlite_by_keys(repo_id, salt, commits.iter().map(|c| &c.sha)).fetch_one(pool).await?;
            held_of(&list, commits.iter().map(|c| c.sha))?
        }
        Db::Postgres(pool) => {
            let shas: Vec<&str> = commits.iter().map(|c| c.sha.as_str()).collect();
            sqlx::query_scalar::<_, Sha>("SELECT sha FROM commits WHERE repo_id = $1 AND sha = ANY($2)")
                .bind(repo_id)
                .bind(shas)
                .fetch_all(pool)
                .await?
        }
    };
    found.sort_unstable();
    Ok(found)
}

/// The SHAs stored in the repository under the keys of `shas`, as one comma-separated string.
/// The keys go in as one JSON array and the SHAs come back as one string: rows cross from
/// SQLite's thread one message each, which would cost more than the lookups. A key may also find
/// another SHA that shares it: callers keep only the SHAs they asked for ([`held_of`]).
fn sqlite_by_keys<'q, 's>(
    repo_id: Uuid,
    salt: KeySalt,
    shas: impl ExactSizeIterator<Item = &'s Sha>,
) -> QueryScalar<'q, Sqlite, String, SqliteArguments> {
    let mut keys = String::with_capacity(shas.len() * 21 + 2);
    keys.push('[');
    for (i, sha) in shas.enumerate() {
        if i > 0 {
            keys.push(',');
        }
        keys.push_str(&salt.key(sha).to_string());
    }
    keys.push(']');
    sqlx::query_scalar::<Sqlite, String>(
        "SELECT COALESCE(group_concat(sha, ','), '') FROM commits INDEXED BY commits_key \
         WHERE sha_key IN (SELECT value FROM json_each($2)) AND repo_id = $1",
    )
    .bind(repo_id)
    .bind(keys)
}

/// Of the SHAs [`sqlite_by_keys`] found (`list`), those asked for, sorted.
fn held_of(list: &str, asked: impl Iterator<Item = Sha>) -> Result<Vec<Sha>, sqlx::Error> {
    let mut asked: Vec<Sha> = asked.collect();
    asked.sort_unstable();
    let mut held = split_shas(list)?;
    held.retain(|sha| asked.binary_search(sha).is_ok());
    held.sort_unstable();
    Ok(held)
}

fn split_shas(list: &str) -> Result<Vec<Sha>, sqlx::Error> {
    list.split(',')
        .filter(|s| !s.is_empty())
        .map(|s| Sha::parse(s).ok_or_else(|| sqlx::Error::Protocol(format!("not a SHA: {s:?}"))))
        .collect()
}

const SQLITE_INSERT_COLUMNS: &str = "repo_id, sha, author_name, author_email, committer_name, committer_email, \
     commit_date, message_title, message_body, additions, deletions, files_changed, is_merge, parent_count, ingested_at, \
     sha_key";

/// Rows per SQLite statement. A batch is cut greedily into these sizes, so a connection never
/// caches more than this many insert statements; 1000 rows × 16 values stays far below SQLite's
/// 32766 bind parameters.
const SQLITE_CHUNKS: [usize; 5] = [1000, 200, 50, 10, 1];
const SQLITE_VALUES_PER_ROW: usize = 16;

/// The SQLite insert of `rows` rows, 16 values per row (the columns of
/// [`SQLITE_INSERT_COLUMNS`], in order). A plain insert: there is no unique index to conflict
/// with (see the module docs); [`insert_absent`] checks first. Built once per size and shared.
///
/// The placeholders are anonymous (`?`): SQLite looks a numbered or named parameter up in a
/// linear list, which makes binding thousands of them quadratic (about a second per 1000 rows).
fn sqlite_insert_sql(rows: usize) -> Arc<str> {
    static CACHE: OnceLock<Mutex<HashMap<usize, Arc<str>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(sql) = cache.lock().expect("sql cache").get(&rows) {
        return sql.clone();
    }
    let mut sql = String::with_capacity(200 + rows * 100);
    sql.push_str("INSERT INTO commits (");
    sql.push_str(SQLITE_INSERT_COLUMNS);
    sql.push_str(") VALUES ");
    for row in 0..rows {
        if row > 0 {
            sql.push(',');
        }
        sql.push_str("(?");
        for _ in 1..SQLITE_VALUES_PER_ROW {
            sql.push_str(",?");
        }
        sql.push(')');
    }
    let sql: Arc<str> = sql.into();
    cache.lock().expect("sql cache").insert(rows, sql.clone());
    sql
}

const PG_INSERT: &str = "INSERT INTO commits (repo_id, sha, author_name, author_email, committer_name, committer_email, \
     commit_date, message_title, message_body, additions, deletions, files_changed, is_merge, parent_count, ingested_at) \
     SELECT $1, u.sha, u.an, u.ae, u.cn, u.ce, u.cd, u.mt, u.mb, u.a, u.d, u.f, u.m, u.p, $2 \
     FROM UNNEST($3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::timestamptz[], $9::text[], $10::text[], \
     $11::int8[], $12::int8[], $13::int8[], $14::bool[], $15::int8[]) AS u(sha, an, ae, cn, ce, cd, mt, mb, a, d, f, m, p) \
     ORDER BY u.sha \
     ON CONFLICT (repo_id, sha) DO NOTHING RETURNING sha";

/// An insert whose arguments are encoded before the write transaction begins, so the write lock
/// is held only while the database works.
pub enum PreparedInsert<'q> {
    Empty,
    Sqlite(Vec<Query<'q, Sqlite, SqliteArguments>>),
    Postgres(QueryScalar<'q, Postgres, Sha, PgArguments>),
}

pub fn prepare_insert<'q>(
    engine: Engine,
    repo_id: Uuid,
    salt: KeySalt,
    commits: &[&'q NewCommit<'_>],
    now: OffsetDateTime,
) -> PreparedInsert<'q> {
    if commits.is_empty() {
        return PreparedInsert::Empty;
    }
    match engine {
        Engine::Sqlite => {
            let mut queries = Vec::new();
            let mut rest = commits;
            while !rest.is_empty() {
                let size = SQLITE_CHUNKS.into_iter().find(|s| *s <= rest.len()).unwrap_or(1);
                let (chunk, tail) = rest.split_at(size);
                rest = tail;
                let mut q = sqlx::query::<Sqlite>(sqlx::AssertSqlSafe(sqlite_insert_sql(size)));
                let now = crate::time::sortable(now);
                for &c in chunk {
                    q = q
                        .bind(repo_id)
                        .bind(c.sha.as_str())
                        .bind(c.author_name.as_ref())
                        .bind(c.author_email.as_ref())
                        .bind(c.committer_name.as_ref())
                        .bind(c.committer_email.as_ref())
                        .bind(SqlTime(c.commit_date))
                        .bind(c.message_title.as_ref())
                        .bind(c.message_body.as_deref())
                        .bind(c.additions)
                        .bind(c.deletions)
                        .bind(c.files_changed)
                        .bind(c.is_merge)
                        .bind(c.parent_count)
                        .bind(now.clone())
                        .bind(salt.key(&c.sha));
                }
                queries.push(q);
            }
            PreparedInsert::Sqlite(queries)
        }
        Engine::Postgres => {
            // Rows go in SHA order, so concurrent pushes of overlapping batches lock rows in the
            // same order and cannot deadlock.
            let mut sorted: Vec<&'q NewCommit<'_>> = commits.to_vec();
            sorted.sort_unstable_by_key(|c| c.sha);
            let n = sorted.len();
            let mut sha = Vec::with_capacity(n);
            let mut author_name = Vec::with_capacity(n);
            let mut author_email = Vec::with_capacity(n);
            let mut committer_name = Vec::with_capacity(n);
            let mut committer_email = Vec::with_capacity(n);
            let mut commit_date = Vec::with_capacity(n);
            let mut title = Vec::with_capacity(n);
            let mut body = Vec::with_capacity(n);
            let mut additions = Vec::with_capacity(n);
            let mut deletions = Vec::with_capacity(n);
            let mut files = Vec::with_capacity(n);
            let mut merge = Vec::with_capacity(n);
            let mut parents = Vec::with_capacity(n);
            for c in sorted {
                sha.push(c.sha.as_str());
                author_name.push(c.author_name.as_ref());
                author_email.push(c.author_email.as_ref());
                committer_name.push(c.committer_name.as_ref());
                committer_email.push(c.committer_email.as_ref());
                commit_date.push(c.commit_date);
                title.push(c.message_title.as_ref());
                body.push(c.message_body.as_deref());
                additions.push(c.additions);
                deletions.push(c.deletions);
                files.push(c.files_changed);
                merge.push(c.is_merge);
                parents.push(c.parent_count);
            }
            PreparedInsert::Postgres(
                sqlx::query_scalar::<Postgres, Sha>(PG_INSERT)
                    .bind(repo_id)
                    .bind(now)
                    .bind(sha)
                    .bind(author_name)
                    .bind(author_email)
                    .bind(committer_name)
                    .bind(committer_email)
                    .bind(commit_date)
                    .bind(title)
                    .bind(body)
                    .bind(additions)
                    .bind(deletions)
                    .bind(files)
                    .bind(merge)
                    .bind(parents),
            )
        }
    }
}

/// What [`insert_absent`] stored.
#[derive(Debug)]
pub enum Stored {
    /// Every commit it was given (the usual case).
    All,
    /// Only these, sorted: the repository held the others (a concurrent push stored them first).
    Only(Vec<Sha>),
}

/// Stores those of `commits` (the rows of `prepared`) the repository does not hold yet.
///
/// PostgreSQL: insert-if-absent on the unique `(repo_id, sha)`, `RETURNING` what it stored.
/// SQLite: under the write lock nothing else can store a commit, so the keys are checked first
/// and the rows go in with a plain insert (an insert that also checked would copy every row into
/// a temporary table first, since it reads the table it writes); in the rare case that some are
/// held, the insert is prepared again without them.
pub async fn insert_absent<'q>(
    tx: &mut Tx,
    prepared: PreparedInsert<'q>,
    repo_id: Uuid,
    salt: KeySalt,
    commits: &[&'q NewCommit<'_>],
    now: OffsetDateTime,
) -> Result<Stored, sqlx::Error> {
    match (tx, prepared) {
        (_, PreparedInsert::Empty) => Ok(Stored::All),
        (Tx::Sqlite(t), PreparedInsert::Sqlite(queries)) => {
            let list = sqlite_by_keys(repo_id, salt, commits.iter().map(|c| &c.sha)).fetch_one(&mut **t).await?;
            let held = held_of(&list, commits.iter().map(|c| c.sha))?;
            let (queries, stored) = if held.is_empty() {
                (queries, Stored::All)
            } else {
                let rest: Vec<&NewCommit<'_>> =
                    commits.iter().copied().filter(|c| held.binary_search(&c.sha).is_err()).collect();
                let mut stored: Vec<Sha> = rest.iter().map(|c| c.sha).collect();
                stored.sort_unstable();
                match prepare_insert(Engine::Sqlite, repo_id, salt, &rest, now) {
                    PreparedInsert::Sqlite(queries) => (queries, Stored::Only(stored)),
                    _ => (Vec::new(), Stored::Only(stored)),
                }
            };
            for q in queries {
                q.execute(&mut **t).await?;
            }
            Ok(stored)
        }
        (Tx::Postgres(t), PreparedInsert::Postgres(q)) => {
            let mut stored = q.fetch_all(&mut **t).await?;
            if stored.len() == commits.len() {
                return Ok(Stored::All);
            }
            stored.sort_unstable();
            Ok(Stored::Only(stored))
        }
        _ => Err(sqlx::Error::Protocol("an insert prepared for the other engine".into())),
    }
}

/// The end of a push, inside its transaction.
pub async fn finish_sync(
    tx: &mut Tx,
    repo_id: Uuid,
    status: &str,
    error_message: Option<&str>,
    last_ingested_sha: Option<&str>,
    now: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    on_tx!(tx, |conn| sqlx::query(
        "UPDATE repositories SET status = $2, error_message = $3, last_sync_at = $4, \
         last_ingested_sha = COALESCE($5, last_ingested_sha) WHERE id = $1"
    )
    .bind(repo_id)
    .bind(status)
    .bind(error_message)
    .bind(now)
    .bind(last_ingested_sha)
    .execute(conn)
    .await
    .map(|_| ()))
}

/// The project's members (the audience of its events).
pub async fn member_ids(tx: &mut Tx, project_id: Uuid) -> Result<Vec<Uuid>, sqlx::Error> {
    on_tx!(tx, |conn| sqlx::query_scalar::<_, Uuid>("SELECT user_id FROM project_members WHERE project_id = $1")
        .bind(project_id)
        .fetch_all(conn)
        .await)
}

/// A failed push: status `error` with the error text.
/// `attempted_at` (pull sync) also moves `last_sync_at`, so a failing remote is tried again once
/// per interval rather than at every scheduler tick.
pub async fn mark_failed(
    tx: &mut Tx,
    repo_id: Uuid,
    message: &str,
    attempted_at: Option<OffsetDateTime>,
) -> Result<(), sqlx::Error> {
    on_tx!(tx, |conn| sqlx::query(
        "UPDATE repositories SET status = 'error', error_message = $2, last_sync_at = COALESCE($3, last_sync_at) \
         WHERE id = $1"
    )
    .bind(repo_id)
    .bind(message)
    .bind(attempted_at)
    .execute(conn)
    .await
    .map(|_| ()))
}

/// Every pull repository with a remote: id, last sync, `sync_frequency` (for the scheduler).
pub async fn pull_repos(db: &Db) -> Result<Vec<(Uuid, Option<OffsetDateTime>, Option<String>)>, sqlx::Error> {
    on_db!(db, |pool| sqlx::query_as(
        "SELECT id, last_sync_at, sync_frequency FROM repositories \
         WHERE sync_method = 'pull' AND remote_url IS NOT NULL AND remote_url <> '' ORDER BY id"
    )
    .fetch_all(pool)
    .await)
}

/// Repositories left `syncing` by a process that stopped mid-push become `error`.
///
/// A repository whose pull sync job is running keeps its status: that job belongs to a worker of
/// another instance (or, after a crash, will be claimed again when its lease ends) and sets the
/// real status when it finishes.
pub async fn reset_interrupted(db: &Db, message: &str) -> Result<u64, sqlx::Error> {
    // The job's unique key is `repo.pull_sync:<hyphenated id>` (see `pull::PullSync::unique_key`).
    const SQLITE_ID: &str = "lower(substr(hex(r.id), 1, 8) || '-' || substr(hex(r.id), 9, 4) || '-' || \
         substr(hex(r.id), 13, 4) || '-' || substr(hex(r.id), 17, 4) || '-' || substr(hex(r.id), 21))";
    let sql = |id_text: &str| {
        format!(
            "UPDATE repositories SET status = 'error', error_message = $1 WHERE status = 'syncing' \
             AND id NOT IN (SELECT r.id FROM repositories r JOIN jobs j \
             ON j.unique_key = 'repo.pull_sync:' || {id_text} WHERE j.state = 'running')"
        )
    };
    match db {
        Db::Sqlite(pool) => sqlx::query(sqlx::AssertSqlSafe(sql(SQLITE_ID)))
            .bind(message)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()),
        Db::Postgres(pool) => sqlx::query(sqlx::AssertSqlSafe(sql("r.id::text")))
            .bind(message)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()),
    }
}

// ----- queries -----

pub async fn count_commits(db: &Db, repo_id: Uuid) -> Result<i64, sqlx::Error> {
    on_db!(db, |pool| sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM commits WHERE repo_id = $1")
        .bind(repo_id)
        .fetch_one(pool)
        .await)
}

#[derive(Debug, Clone, FromRow)]
pub struct CommitRow {
    pub repo_id: Uuid,
    pub sha: String,
    pub author_name: String,
    pub author_email: String,
    pub committer_name: String,
    pub committer_email: String,
    pub commit_date: OffsetDateTime,
    pub message_title: String,
    pub message_body: Option<String>,
    pub additions: i64,
    pub deletions: i64,
    pub files_changed: i64,
    pub is_merge: bool,
    pub parent_count: i64,
    pub ingested_at: OffsetDateTime,
}

const COMMIT_COLUMNS: &str = "c.repo_id, c.sha, c.author_name, c.author_email, c.committer_name, c.committer_email, \
     c.commit_date, c.message_title, c.message_body, c.additions, c.deletions, c.files_changed, c.is_merge, \
     c.parent_count, c.ingested_at";

/// Optional filters of the commit queries.
#[derive(Debug, Default, Clone)]
pub struct CommitFilter {
    /// Lower-cased; matches the author e-mail or the (lower-cased) author name.
    pub author: Option<String>,
    /// Lower-cased; matches the author e-mail.
    pub author_email: Option<String>,
    pub since: Option<OffsetDateTime>,
    pub until: Option<OffsetDateTime>,
    pub merges: Option<bool>,
}

/// `$1` is the repository; every filter is optional (`$n IS NULL OR …`), so one statement serves
/// every combination.
const FILTER: &str = "c.repo_id = $1 AND ($2 IS NULL OR c.author_email = $2 OR LOWER(c.author_name) = $2) \
     AND ($3 IS NULL OR c.author_email = $3) AND ($4 IS NULL OR c.commit_date >= $4) \
     AND ($5 IS NULL OR c.commit_date <= $5) AND ($6 IS NULL OR c.is_merge = $6)";

/// Binds `$1`..`$6` of [`FILTER`].
macro_rules! bind_filter {
    ($q:expr, $repo_id:expr, $f:expr) => {
        $q.bind($repo_id)
            .bind($f.author.as_deref())
            .bind($f.author_email.as_deref())
            .bind($f.since.map(SqlTime))
            .bind($f.until.map(SqlTime))
            .bind($f.merges)
    };
}

/// A page of commits, newest first, and the number matching.
pub async fn list_commits(
    db: &Db,
    repo_id: Uuid,
    f: &CommitFilter,
    paging: Paging,
) -> Result<(Vec<CommitRow>, i64), sqlx::Error> {
    let sql = format!(
        "SELECT {COMMIT_COLUMNS} FROM commits c WHERE {FILTER} ORDER BY c.commit_date DESC, c.sha DESC LIMIT $7 OFFSET $8"
    );
    let rows =
        on_db!(db, |pool| bind_filter!(sqlx::query_as::<_, CommitRow>(sqlx::AssertSqlSafe(sql.clone())), repo_id, f)
            .bind(paging.size)
            .bind(paging.offset())
            .fetch_all(pool)
            .await)?;
    let count = format!("SELECT COUNT(*) FROM commits c WHERE {FILTER}");
    let total =
        on_db!(db, |pool| bind_filter!(sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(count.clone())), repo_id, f)
            .fetch_one(pool)
            .await)?;
    Ok((rows, total))
}

pub async fn commit_by_sha(db: &Db, repo_id: Uuid, sha: &Sha) -> Result<Option<CommitRow>, sqlx::Error> {
    match db {
        Db::Sqlite(pool) => {
            let sql = format!(
                "SELECT {COMMIT_COLUMNS} FROM repositories r JOIN commits c INDEXED BY commits_key ON c.sha_key = {SQLITE_KEY_OF_R} \
                 WHERE r.id = $1 AND c.repo_id = r.id AND c.sha = $2"
            );
            sqlx::query_as::<_, CommitRow>(sqlx::AssertSqlSafe(sql))
                .bind(repo_id)
                .bind(sha.as_str())
                .bind(sha.fold64())
                .fetch_optional(pool)
                .await
        }
        Db::Postgres(pool) => {
            let sql = format!("SELECT {COMMIT_COLUMNS} FROM commits c WHERE c.repo_id = $1 AND c.sha = $2");
            sqlx::query_as::<_, CommitRow>(sqlx::AssertSqlSafe(sql))
                .bind(repo_id)
                .bind(sha.as_str())
                .fetch_optional(pool)
                .await
        }
    }
}

/// SQLite: the `sha_key` in repository `r` of the SHA whose [`Sha::fold64`] is bound as `$3`
/// (XOR written as `(a | b) - (a & b)`: SQLite has no operator for it).
const SQLITE_KEY_OF_R: &str = "(($3 | r.commit_key_salt) - ($3 & r.commit_key_salt))";

/// A commit with this SHA in any repository of a project the user holds a role in (the first
/// ingested one when several repositories hold it).
pub async fn commit_by_sha_for_user(db: &Db, user_id: Uuid, sha: &Sha) -> Result<Option<CommitRow>, sqlx::Error> {
    match db {
        Db::Sqlite(pool) => {
            let sql = format!(
                "SELECT {COMMIT_COLUMNS} FROM project_members m JOIN repositories r ON r.project_id = m.project_id \
                 JOIN commits c INDEXED BY commits_key ON c.sha_key = {SQLITE_KEY_OF_R} AND c.repo_id = r.id \
                 WHERE m.user_id = $2 AND c.sha = $1 ORDER BY c.ingested_at, c.repo_id LIMIT 1"
            );
            sqlx::query_as::<_, CommitRow>(sqlx::AssertSqlSafe(sql))
                .bind(sha.as_str())
                .bind(user_id)
                .bind(sha.fold64())
                .fetch_optional(pool)
                .await
        }
        Db::Postgres(pool) => {
            let sql = format!(
                "SELECT {COMMIT_COLUMNS} FROM commits c JOIN repositories r ON r.id = c.repo_id \
                 JOIN project_members m ON m.project_id = r.project_id AND m.user_id = $2 \
                 WHERE c.sha = $1 ORDER BY c.ingested_at, c.repo_id LIMIT 1"
            );
            sqlx::query_as::<_, CommitRow>(sqlx::AssertSqlSafe(sql))
                .bind(sha.as_str())
                .bind(user_id)
                .fetch_optional(pool)
                .await
        }
    }
}

/// The UTC day of `c.commit_date` as `YYYY-MM-DD`.
fn day_expr(engine: Engine) -> &'static str {
    match engine {
        // Stored as fixed-width UTC text.
        Engine::Sqlite => "substr(c.commit_date, 1, 10)",
        Engine::Postgres => "to_char(c.commit_date AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
    }
}

#[derive(Debug, Clone, FromRow)]
pub struct TotalsRow {
    pub commits: i64,
    pub additions: i64,
    pub deletions: i64,
    pub files_changed: i64,
    pub merges: i64,
    pub authors: i64,
    pub active_days: i64,
    pub first_commit_at: Option<OffsetDateTime>,
    pub last_commit_at: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, FromRow)]
pub struct AuthorStatsRow {
    pub author_email: String,
    pub author_name: String,
    pub commits: i64,
    pub additions: i64,
    pub deletions: i64,
    pub files_changed: i64,
    pub active_days: i64,
    pub first_commit_at: OffsetDateTime,
    pub last_commit_at: OffsetDateTime,
}

#[derive(Debug, Clone, FromRow)]
pub struct DayStatsRow {
    pub day: String,
    pub commits: i64,
    pub additions: i64,
    pub deletions: i64,
}

const SUMS: &str = "CAST(COALESCE(SUM(c.additions), 0) AS BIGINT) AS additions, \
     CAST(COALESCE(SUM(c.deletions), 0) AS BIGINT) AS deletions";

pub async fn totals(db: &Db, repo_id: Uuid, f: &CommitFilter) -> Result<TotalsRow, sqlx::Error> {
    let day = day_expr(db.engine());
    let sql = format!(
        "SELECT COUNT(*) AS commits, {SUMS}, CAST(COALESCE(SUM(c.files_changed), 0) AS BIGINT) AS files_changed, \
         CAST(COALESCE(SUM(CASE WHEN c.is_merge THEN 1 ELSE 0 END), 0) AS BIGINT) AS merges, \
         COUNT(DISTINCT c.author_email) AS authors, COUNT(DISTINCT {day}) AS active_days, \
         MIN(c.commit_date) AS first_commit_at, MAX(c.commit_date) AS last_commit_at FROM commits c WHERE {FILTER}"
    );
    on_db!(db, |pool| bind_filter!(sqlx::query_as::<_, TotalsRow>(sqlx::AssertSqlSafe(sql.clone())), repo_id, f)
        .fetch_one(pool)
        .await)
}

/// Per author e-mail, most commits first.
pub async fn author_stats(db: &Db, repo_id: Uuid, f: &CommitFilter) -> Result<Vec<AuthorStatsRow>, sqlx::Error> {
    let day = day_expr(db.engine());
    let sql = format!(
        "SELECT c.author_email, MAX(c.author_name) AS author_name, COUNT(*) AS commits, {SUMS}, \
         CAST(COALESCE(SUM(c.files_changed), 0) AS BIGINT) AS files_changed, COUNT(DISTINCT {day}) AS active_days, \
         MIN(c.commit_date) AS first_commit_at, MAX(c.commit_date) AS last_commit_at \
         FROM commits c WHERE {FILTER} GROUP BY c.author_email ORDER BY COUNT(*) DESC, c.author_email"
    );
    on_db!(db, |pool| bind_filter!(sqlx::query_as::<_, AuthorStatsRow>(sqlx::AssertSqlSafe(sql.clone())), repo_id, f)
        .fetch_all(pool)
        .await)
}

/// Per UTC day, oldest first.
pub async fn day_stats(db: &Db, repo_id: Uuid, f: &CommitFilter) -> Result<Vec<DayStatsRow>, sqlx::Error> {
    let day = day_expr(db.engine());
    let sql =
        format!("SELECT {day} AS day, COUNT(*) AS commits, {SUMS} FROM commits c WHERE {FILTER} GROUP BY 1 ORDER BY 1");
    on_db!(db, |pool| bind_filter!(sqlx::query_as::<_, DayStatsRow>(sqlx::AssertSqlSafe(sql.clone())), repo_id, f)
        .fetch_all(pool)
        .await)
}
