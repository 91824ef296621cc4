//! SQL of the job queue, and of the clean-up jobs that sweep other domains' expired rows.
//!
//! Timestamps of the queue's own tables are written through [`Stamp`]: on SQLite a fixed-width
//! UTC text (`crate::time::sortable`), so `run_at <= $now` compares correctly as text; on
//! PostgreSQL a plain `timestamptz`. Other tables' timestamps are compared in Rust.

use serde_json::Value;
use sqlx::{
    Database, Decode, Encode, FromRow, Postgres, Sqlite, Type, encode::IsNull, error::BoxDynError, types::Json,
};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{
    db::{Db, Tx},
    http::pagination::Paging,
    on_db, on_tx,
};

/// A timestamp bound so that SQL may compare it on both engines (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Stamp(pub OffsetDateTime);

impl Stamp {
    pub fn now() -> Stamp {
        Stamp(OffsetDateTime::now_utc())
    }
}

impl From<OffsetDateTime> for Stamp {
    fn from(at: OffsetDateTime) -> Stamp {
        Stamp(at)
    }
}

impl Type<Sqlite> for Stamp {
    fn type_info() -> <Sqlite as Database>::TypeInfo {
        <String as Type<Sqlite>>::type_info()
    }
    fn compatible(ty: &<Sqlite as Database>::TypeInfo) -> bool {
        <OffsetDateTime as Type<Sqlite>>::compatible(ty) || <String as Type<Sqlite>>::compatible(ty)
    }
}

impl<'q> Encode<'q, Sqlite> for Stamp {
    fn encode_by_ref(&self, buf: &mut <Sqlite as Database>::ArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <String as Encode<'q, Sqlite>>::encode(crate::time::sortable(self.0), buf)
    }
}

impl<'r> Decode<'r, Sqlite> for Stamp {
    fn decode(value: <Sqlite as Database>::ValueRef<'r>) -> Result<Self, BoxDynError> {
        <OffsetDateTime as Decode<'r, Sqlite>>::decode(value).map(Stamp)
    }
}

impl Type<Postgres> for Stamp {
    fn type_info() -> <Postgres as Database>::TypeInfo {
        <OffsetDateTime as Type<Postgres>>::type_info()
    }
}

impl<'q> Encode<'q, Postgres> for Stamp {
    fn encode_by_ref(&self, buf: &mut <Postgres as Database>::ArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <OffsetDateTime as Encode<'q, Postgres>>::encode_by_ref(&self.0, buf)
    }
}

impl<'r> Decode<'r, Postgres> for Stamp {
    fn decode(value: <Postgres as Database>::ValueRef<'r>) -> Result<Self, BoxDynError> {
        <OffsetDateTime as Decode<'r, Postgres>>::decode(value).map(Stamp)
    }
}

/// A transaction for the queue's own bookkeeping (claims, heartbeats, outcomes). On PostgreSQL it
/// commits without waiting for the WAL flush (`synchronous_commit = off`, this transaction only):
/// a server crash may forget the last few hundred milliseconds of claims and outcomes, which only
/// makes those jobs run again — at least once, as documented — and it multiplies throughput.
async fn begin_bookkeeping(db: &Db) -> Result<Tx, sqlx::Error> {
    let mut tx = db.begin().await?;
    if let Tx::Postgres(t) = &mut tx {
        sqlx::query("SET LOCAL synchronous_commit = off").execute(&mut **t).await?;
    }
    Ok(tx)
}

/// Job states. `failed` is a permanent failure (not retried); `dead` means the retries ran out.
pub const STATES: [&str; 6] = ["pending", "running", "succeeded", "failed", "dead", "cancelled"];
/// States a job never leaves by itself.
pub const FINISHED: [&str; 4] = ["succeeded", "failed", "dead", "cancelled"];

#[derive(Debug, Clone, FromRow)]
pub struct JobRow {
    pub id: Uuid,
    pub kind: String,
    pub payload: Json<Value>,
    pub state: String,
    pub attempts: i32,
    pub max_attempts: i32,
    pub run_at: OffsetDateTime,
    pub locked_by: Option<String>,
    pub locked_until: Option<OffsetDateTime>,
    pub last_error: Option<String>,
    pub unique_key: Option<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub finished_at: Option<OffsetDateTime>,
}

const COLUMNS: &str = "id, kind, payload, state, attempts, max_attempts, run_at, locked_by, locked_until, \
     last_error, unique_key, created_at, updated_at, finished_at";
const JOBS_COLUMNS: &str = "jobs.id, jobs.kind, jobs.payload, jobs.state, jobs.attempts, jobs.max_attempts, \
     jobs.run_at, jobs.locked_by, jobs.locked_until, jobs.last_error, jobs.unique_key, jobs.created_at, \
     jobs.updated_at, jobs.finished_at";

pub struct NewJob<'a> {
    pub kind: &'a str,
    pub payload: &'a Value,
    pub run_at: OffsetDateTime,
    pub max_attempts: i32,
    pub unique_key: Option<&'a str>,
}

/// Inserts a pending job; `None` when a job with the same unique key exists.
pub async fn insert(tx: &mut Tx, new: &NewJob<'_>) -> Result<Option<Uuid>, sqlx::Error> {
    let now = Stamp::now();
    on_tx!(tx, |conn| {
        sqlx::query_scalar::<_, Uuid>(
        "INSERT INTO jobs (id, kind, payload, state, attempts, max_attempts, run_at, unique_key, created_at, updated_at) \
         VALUES ($1, $2, $3, 'pending', 0, $4, $5, $6, $7, $7) ON CONFLICT (unique_key) DO NOTHING RETURNING id"
    )
    .bind(Uuid::now_v7())
    .bind(new.kind)
    .bind(Json(new.payload))
    .bind(new.max_attempts)
    .bind(Stamp(new.run_at))
    .bind(new.unique_key)
    .bind(now)
    .fetch_optional(conn)
    .await
    })
}

/// Frees `key` from finished jobs, so a job that is unique only while unfinished can be enqueued again.
pub async fn release_finished_key(tx: &mut Tx, key: &str) -> Result<(), sqlx::Error> {
    on_tx!(tx, |conn| sqlx::query(
        "UPDATE jobs SET unique_key = NULL \
         WHERE unique_key = $1 AND state IN ('succeeded', 'failed', 'dead', 'cancelled')"
    )
    .bind(key)
    .execute(conn)
    .await
    .map(|_| ()))
}

pub async fn by_unique_key(tx: &mut Tx, key: &str) -> Result<Option<JobRow>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM jobs WHERE unique_key = $1");
    on_tx!(tx, |conn| sqlx::query_as::<_, JobRow>(sqlx::AssertSqlSafe(sql.clone()))
        .bind(key)
        .fetch_optional(conn)
        .await)
}

/// Makes a pending job due now (a manual "retry now" of something already scheduled).
pub async fn run_now(tx: &mut Tx, id: Uuid) -> Result<bool, sqlx::Error> {
    let now = Stamp::now();
    on_tx!(tx, |conn| sqlx::query("UPDATE jobs SET run_at = $2, updated_at = $2 WHERE id = $1 AND state = 'pending'")
        .bind(id)
        .bind(now)
        .execute(conn)
        .await
        .map(|r| r.rows_affected() > 0))
}

fn placeholders(from: usize, count: usize) -> String {
    (from..from + count).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

/// Claims up to `limit` due jobs of `kinds` for `worker`: `running`, one more attempt, leased
/// until `lease_until`. PostgreSQL skips rows other workers are claiming (`FOR UPDATE SKIP
/// LOCKED`); SQLite serialises claims with its write lock (`BEGIN IMMEDIATE`).
pub async fn claim(
    db: &Db,
    worker: &str,
    kinds: &[&'static str],
    limit: i64,
    lease_until: OffsetDateTime,
) -> Result<Vec<JobRow>, sqlx::Error> {
    if kinds.is_empty() {
        return Ok(Vec::new());
    }
    let now = Stamp::now();
    let kinds_sql = placeholders(5, kinds.len());
    let mut rows = match db {
        Db::Sqlite(pool) => {
            let sql = format!(
                "UPDATE jobs SET state = 'running', attempts = attempts + 1, locked_by = $1, locked_until = $2, \
                 updated_at = $3 WHERE id IN (SELECT id FROM jobs WHERE state = 'pending' AND run_at <= $3 \
                 AND kind IN ({kinds_sql}) ORDER BY run_at, id LIMIT $4) RETURNING {COLUMNS}"
            );
            // An idle poll only reads: the write lock is taken when something is due.
            let due: Option<i32> =
                sqlx::query_scalar("SELECT 1 FROM jobs WHERE state = 'pending' AND run_at <= $1 LIMIT 1")
                    .bind(now)
                    .fetch_optional(pool)
                    .await?;
            if due.is_none() {
                return Ok(Vec::new());
            }
            let mut tx = Db::begin_sqlite_write(pool).await?;
            let mut query = sqlx::query_as::<_, JobRow>(sqlx::AssertSqlSafe(sql))
                .bind(worker)
                .bind(Stamp(lease_until))
                .bind(now)
                .bind(limit);
            for kind in kinds {
                query = query.bind(*kind);
            }
            let rows = query.fetch_all(&mut *tx).await?;
            tx.commit().await?;
            rows
        }
        Db::Postgres(pool) => {
            let sql = format!(
                "WITH next AS (SELECT id FROM jobs WHERE state = 'pending' AND run_at <= $3 \
                 AND kind IN ({kinds_sql}) ORDER BY run_at, id LIMIT $4 FOR UPDATE SKIP LOCKED) \
                 UPDATE jobs SET state = 'running', attempts = jobs.attempts + 1, locked_by = $1, \
                 locked_until = $2, updated_at = $3 FROM next WHERE jobs.id = next.id RETURNING {JOBS_COLUMNS}"
            );
            let mut tx = pool.begin().await?;
            sqlx::query("SET LOCAL synchronous_commit = off").execute(&mut *tx).await?;
            let mut query = sqlx::query_as::<_, JobRow>(sqlx::AssertSqlSafe(sql))
                .bind(worker)
                .bind(Stamp(lease_until))
                .bind(now)
                .bind(limit);
            for kind in kinds {
                query = query.bind(*kind);
            }
            let rows = query.fetch_all(&mut *tx).await?;
            tx.commit().await?;
            rows
        }
    };
    rows.sort_by_key(|j| (j.run_at, j.id));
    Ok(rows)
}

/// Extends the lease of every job `worker` holds.
pub async fn heartbeat(db: &Db, worker: &str, lease_until: OffsetDateTime) -> Result<u64, sqlx::Error> {
    let now = Stamp::now();
    let mut tx = begin_bookkeeping(db).await?;
    let n = on_tx!(&mut tx, |conn| sqlx::query(
        "UPDATE jobs SET locked_until = $2, updated_at = $3 WHERE locked_by = $1 AND state = 'running'"
    )
    .bind(worker)
    .bind(Stamp(lease_until))
    .bind(now)
    .execute(conn)
    .await
    .map(|r| r.rows_affected()))?;
    tx.commit().await?;
    Ok(n)
}

/// Returns jobs whose lease ran out (their worker died or hung) to `pending`, or to `dead` when
/// they have no attempt left. Returns how many.
pub async fn reap_expired(db: &Db) -> Result<u64, sqlx::Error> {
    let now = Stamp::now();
    let mut tx = begin_bookkeeping(db).await?;
    let n = on_tx!(&mut tx, |conn| sqlx::query(
        "UPDATE jobs SET state = CASE WHEN attempts >= max_attempts THEN 'dead' ELSE 'pending' END, \
         finished_at = CASE WHEN attempts >= max_attempts THEN $1 ELSE NULL END, \
         run_at = $1, locked_until = NULL, updated_at = $1, \
         last_error = 'lease expired: worker ' || COALESCE(locked_by, '?') || ' stopped before finishing the job' \
         WHERE state = 'running' AND locked_until < $1"
    )
    .bind(now)
    .execute(conn)
    .await
    .map(|r| r.rows_affected()))?;
    tx.commit().await?;
    Ok(n)
}

/// Marks jobs `worker` ran successfully as `succeeded` (in one statement).
pub async fn mark_succeeded(db: &Db, worker: &str, ids: &[Uuid]) -> Result<(), sqlx::Error> {
    if ids.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "UPDATE jobs SET state = 'succeeded', locked_until = NULL, finished_at = $2, updated_at = $2 \
         WHERE locked_by = $1 AND state = 'running' AND id IN ({})",
        placeholders(3, ids.len())
    );
    let now = Stamp::now();
    let mut tx = begin_bookkeeping(db).await?;
    on_tx!(&mut tx, |conn| {
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.clone())).bind(worker).bind(now);
        for id in ids {
            query = query.bind(*id);
        }
        query.execute(conn).await.map(|_| ())
    })?;
    tx.commit().await
}

/// How an attempt that did not succeed ends.
pub struct Outcome<'a> {
    /// `pending` (retry at `run_at`), `failed`, `dead` or `cancelled`.
    pub state: &'static str,
    pub run_at: Option<OffsetDateTime>,
    pub error: &'a str,
}

/// Records the end of attempt `attempt` of job `id`, if `worker` still holds it. A job that dies
/// before its `max_attempts` (its kind gave up) gets `max_attempts = attempts`, so the row reads true.
pub async fn finish_attempt(
    db: &Db,
    worker: &str,
    id: Uuid,
    attempt: i32,
    outcome: &Outcome<'_>,
) -> Result<bool, sqlx::Error> {
    let now = Stamp::now();
    let finished = (outcome.state != "pending").then_some(now);
    let mut tx = begin_bookkeeping(db).await?;
    let updated = on_tx!(&mut tx, |conn| sqlx::query(
        "UPDATE jobs SET state = $4, run_at = COALESCE($5, run_at), last_error = $6, locked_until = NULL, \
         updated_at = $7, finished_at = $8, \
         max_attempts = CASE WHEN $4 = 'dead' THEN attempts ELSE max_attempts END \
         WHERE id = $1 AND locked_by = $2 AND attempts = $3 AND state = 'running'"
    )
    .bind(id)
    .bind(worker)
    .bind(attempt)
    .bind(outcome.state)
    .bind(outcome.run_at.map(Stamp))
    .bind(outcome.error)
    .bind(now)
    .bind(finished)
    .execute(conn)
    .await
    .map(|r| r.rows_affected() > 0))?;
    tx.commit().await?;
    Ok(updated)
}

pub async fn by_id(db: &Db, id: Uuid) -> Result<Option<JobRow>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM jobs WHERE id = $1");
    on_db!(db, |pool| sqlx::query_as::<_, JobRow>(sqlx::AssertSqlSafe(sql.clone())).bind(id).fetch_optional(pool).await)
}

/// One page of jobs, newest first, optionally of one state and/or kind.
pub async fn list(
    db: &Db,
    state: Option<&str>,
    kind: Option<&str>,
    paging: Paging,
) -> Result<(Vec<JobRow>, i64), sqlx::Error> {
    let filter = "($1 IS NULL OR state = $1) AND ($2 IS NULL OR kind = $2)";
    let sql = format!("SELECT {COLUMNS} FROM jobs WHERE {filter} ORDER BY id DESC LIMIT $3 OFFSET $4");
    let rows = on_db!(db, |pool| sqlx::query_as::<_, JobRow>(sqlx::AssertSqlSafe(sql.clone()))
        .bind(state)
        .bind(kind)
        .bind(paging.size)
        .bind(paging.offset())
        .fetch_all(pool)
        .await)?;
    let count = format!("SELECT COUNT(*) FROM jobs WHERE {filter}");
    let total = on_db!(db, |pool| sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(count.clone()))
        .bind(state)
        .bind(kind)
        .fetch_one(pool)
        .await)?;
    Ok((rows, total))
}

/// Job counts per state.
pub async fn counts(db: &Db) -> Result<Vec<(String, i64)>, sqlx::Error> {
    on_db!(db, |pool| sqlx::query_as::<_, (String, i64)>("SELECT state, COUNT(*) FROM jobs GROUP BY state")
        .fetch_all(pool)
        .await)
}

/// A dead or failed job back to `pending`, due now, with one more attempt if it had none left.
pub async fn retry(tx: &mut Tx, id: Uuid) -> Result<Option<JobRow>, sqlx::Error> {
    let sql = format!(
        "UPDATE jobs SET state = 'pending', run_at = $2, updated_at = $2, finished_at = NULL, locked_until = NULL, \
         max_attempts = CASE WHEN attempts >= max_attempts THEN attempts + 1 ELSE max_attempts END \
         WHERE id = $1 AND state IN ('dead', 'failed') RETURNING {COLUMNS}"
    );
    let now = Stamp::now();
    on_tx!(tx, |conn| sqlx::query_as::<_, JobRow>(sqlx::AssertSqlSafe(sql.clone()))
        .bind(id)
        .bind(now)
        .fetch_optional(conn)
        .await)
}

/// A pending job to `cancelled`.
pub async fn cancel(tx: &mut Tx, id: Uuid, reason: &str) -> Result<Option<JobRow>, sqlx::Error> {
    let sql = format!(
        "UPDATE jobs SET state = 'cancelled', finished_at = $2, updated_at = $2, last_error = $3 \
         WHERE id = $1 AND state = 'pending' RETURNING {COLUMNS}"
    );
    let now = Stamp::now();
    on_tx!(tx, |conn| sqlx::query_as::<_, JobRow>(sqlx::AssertSqlSafe(sql.clone()))
        .bind(id)
        .bind(now)
        .bind(reason)
        .fetch_optional(conn)
        .await)
}

/// Cancels the pending jobs whose unique key starts with `prefix` (e.g. a deleted webhook's deliveries).
pub async fn cancel_pending_with_key_prefix(tx: &mut Tx, prefix: &str, reason: &str) -> Result<u64, sqlx::Error> {
    let pattern = format!("{}%", prefix.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_"));
    let now = Stamp::now();
    on_tx!(tx, |conn| sqlx::query(
        "UPDATE jobs SET state = 'cancelled', finished_at = $2, updated_at = $2, last_error = $3 \
         WHERE state = 'pending' AND unique_key LIKE $1 ESCAPE '\\'"
    )
    .bind(&pattern)
    .bind(now)
    .bind(reason)
    .execute(conn)
    .await
    .map(|r| r.rows_affected()))
}

/// Deletes finished jobs: succeeded/cancelled ones finished before `done_before`, dead/failed
/// ones before `dead_before`.
pub async fn purge_finished(
    db: &Db,
    done_before: OffsetDateTime,
    dead_before: OffsetDateTime,
) -> Result<u64, sqlx::Error> {
    let mut tx = db.begin().await?;
    let n = on_tx!(&mut tx, |conn| sqlx::query(
        "DELETE FROM jobs WHERE (state IN ('succeeded', 'cancelled') AND finished_at < $1) \
         OR (state IN ('dead', 'failed') AND finished_at < $2)"
    )
    .bind(Stamp(done_before))
    .bind(Stamp(dead_before))
    .execute(conn)
    .await
    .map(|r| r.rows_affected()))?;
    tx.commit().await?;
    Ok(n)
}

// --- Clean-up of other domains' expired rows ------------------------------------------------------
// Those tables' timestamps are written by sqlx's default encoding, so they are compared in Rust:
// read a batch of keys and times in key order, delete the expired keys, go on after the last key.

const SWEEP_BATCH: i64 = 500;

#[derive(FromRow)]
struct SessionTimes {
    id: Uuid,
    is_active: bool,
    expires_at: OffsetDateTime,
    revoked_at: Option<OffsetDateTime>,
    last_used_at: OffsetDateTime,
}

/// Deletes sessions expired before `cutoff`, and revoked ones revoked (or last used) before it.
pub async fn sweep_sessions(db: &Db, cutoff: OffsetDateTime) -> Result<u64, sqlx::Error> {
    let mut after = Uuid::nil();
    let mut deleted = 0;
    loop {
        let rows = on_db!(db, |pool| {
            sqlx::query_as::<_, SessionTimes>(
            "SELECT id, is_active, expires_at, revoked_at, last_used_at FROM sessions WHERE id > $1 ORDER BY id LIMIT $2"
        )
        .bind(after)
        .bind(SWEEP_BATCH)
        .fetch_all(pool)
        .await
        })?;
        let Some(last) = rows.last() else { return Ok(deleted) };
        after = last.id;
        let done = (rows.len() as i64) < SWEEP_BATCH;
        let expired: Vec<Uuid> = rows
            .iter()
            .filter(|s| s.expires_at < cutoff || (!s.is_active && s.revoked_at.unwrap_or(s.last_used_at) < cutoff))
            .map(|s| s.id)
            .collect();
        deleted += delete_keys(db, "sessions", "id", &expired).await?;
        if done {
            return Ok(deleted);
        }
    }
}

/// Deletes magic links that were used or expired before `now`.
pub async fn sweep_magic_links(db: &Db, now: OffsetDateTime) -> Result<u64, sqlx::Error> {
    let mut after = String::new();
    let mut deleted = 0;
    loop {
        let rows = on_db!(db, |pool| {
            sqlx::query_as::<_, (String, OffsetDateTime, Option<OffsetDateTime>)>(
            "SELECT token_hash, expires_at, used_at FROM magic_links WHERE token_hash > $1 ORDER BY token_hash LIMIT $2"
        )
        .bind(&after)
        .bind(SWEEP_BATCH)
        .fetch_all(pool)
        .await
        })?;
        let Some(last) = rows.last() else { return Ok(deleted) };
        after = last.0.clone();
        let done = (rows.len() as i64) < SWEEP_BATCH;
        let spent: Vec<String> =
            rows.into_iter().filter(|(_, expires, used)| used.is_some() || *expires < now).map(|r| r.0).collect();
        deleted += delete_keys(db, "magic_links", "token_hash", &spent).await?;
        if done {
            return Ok(deleted);
        }
    }
}

/// Deletes OAuth `state` rows (with their PKCE verifiers) that expired before `now`.
pub async fn sweep_oauth_states(db: &Db, now: OffsetDateTime) -> Result<u64, sqlx::Error> {
    let mut after = String::new();
    let mut deleted = 0;
    loop {
        let rows = on_db!(db, |pool| sqlx::query_as::<_, (String, OffsetDateTime)>(
            "SELECT state, expires_at FROM oauth_states WHERE state > $1 ORDER BY state LIMIT $2"
        )
        .bind(&after)
        .bind(SWEEP_BATCH)
        .fetch_all(pool)
        .await)?;
        let Some(last) = rows.last() else { return Ok(deleted) };
        after = last.0.clone();
        let done = (rows.len() as i64) < SWEEP_BATCH;
        let expired: Vec<String> = rows.into_iter().filter(|(_, expires)| *expires < now).map(|r| r.0).collect();
        deleted += delete_keys(db, "oauth_states", "state", &expired).await?;
        if done {
            return Ok(deleted);
        }
    }
}

/// `DELETE FROM {table} WHERE {key} IN (...)` in one transaction. `table` and `key` are constants.
async fn delete_keys<K>(db: &Db, table: &'static str, key: &'static str, keys: &[K]) -> Result<u64, sqlx::Error>
where
    K: for<'q> Encode<'q, Sqlite> + Type<Sqlite> + for<'q> Encode<'q, Postgres> + Type<Postgres> + Clone + Send + Sync,
{
    if keys.is_empty() {
        return Ok(0);
    }
    let sql = format!("DELETE FROM {table} WHERE {key} IN ({})", placeholders(1, keys.len()));
    let mut tx = db.begin().await?;
    let n = on_tx!(&mut tx, |conn| {
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.clone()));
        for k in keys {
            query = query.bind(k.clone());
        }
        query.execute(conn).await.map(|r| r.rows_affected())
    })?;
    tx.commit().await?;
    Ok(n)
}
