//! Where ingestion writes, and how: group commit on SQLite.
//!
//! SQLite has one writer at a time, so on SQLite every ingest write goes through one dedicated
//! connection, queued in this process:
//!
//! - Connections racing for SQLite's lock sleep and retry (1, 2, 5, … up to 100 ms per retry),
//!   which leaves the lock idle between transactions and makes the unluckiest push wait for
//!   seconds. Waiting here is a FIFO queue that hands over at once.
//! - A connection drops its page cache whenever another connection wrote since its last
//!   transaction; with one writer, the index pages that batches of random SHAs touch stay cached
//!   (the writer also gets a larger cache and memory-mapped reads).
//! - **Group commit**: a push that finds others queued behind it leaves the transaction open for
//!   them, and the last of a burst commits for all (or after [`MAX_GROUP`] members or
//!   [`MAX_GROUP_OPEN`]). Each member's writes sit in their own savepoint, so a failing member rolls
//!   back alone; every member returns only once the group has committed. Committing a group costs
//!   about what committing one batch does, and pages dirtied by several batches are written once.
//! - Checkpoints run in the background ([`checkpoint_periodically`]), not in the writer's commits.
//!
//! PostgreSQL needs none of this (row locks; rows go in SHA order): a member is a plain
//! transaction of the shared pool.

use std::{
    sync::{
        Arc,
        atomic::{AtomicI64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use sqlx::sqlite::{SqlitePool, SqlitePoolOptions};
use time::OffsetDateTime;
use tokio::sync::{Mutex, OwnedMutexGuard, oneshot};
use tokio_util::sync::CancellationToken;

use crate::{
    db::{Db, Tx},
    on_tx,
};

/// Page cache of the SQLite writer connection (KiB).
const WRITER_CACHE_KIB: i64 = 64 * 1024;
/// Memory-mapped reads of the SQLite writer connection (bytes of address space, not memory).
const WRITER_MMAP_BYTES: i64 = 1 << 30;
/// WAL pages after which the writer checkpoints by itself: only a safety net, checkpoints run in
/// the background. (SQLite's default of 1000 pages is about what one batch of new random SHAs
/// dirties, so it would checkpoint after nearly every batch.)
const WRITER_WAL_AUTOCHECKPOINT: i64 = 20_000;
/// How often the WAL is checkpointed in the background.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);
/// Most members of one group transaction.
pub const MAX_GROUP: usize = 16;
/// Longest a group transaction stays open for more members.
pub const MAX_GROUP_OPEN: Duration = Duration::from_millis(100);
/// A member that waited this long for its group to commit commits it itself (in case the member
/// that should have committed never came).
const GROUP_WAIT: Duration = Duration::from_secs(2);

/// The ingest writer of one app (see the module docs).
pub struct Writer {
    sqlite: Option<SqliteWriter>,
    /// Stops the background checkpoints (SQLite).
    stop: CancellationToken,
    /// The last ingestion time handed out (Unix microseconds), see [`Writer::stamp`].
    last_stamp: AtomicI64,
}

struct SqliteWriter {
    pool: SqlitePool,
    group: Arc<Mutex<Group>>,
    /// Members waiting to join (for the mutex).
    queued: AtomicUsize,
}

/// The open group transaction.
#[derive(Default)]
struct Group {
    tx: Option<Tx>,
    opened_at: Option<Instant>,
    /// Members waiting for the commit.
    waiting: Vec<oneshot::Sender<Result<(), String>>>,
}

impl Group {
    /// Commits the open transaction (if any) and tells every waiting member how it went.
    async fn commit(&mut self) -> Result<(), sqlx::Error> {
        let waiting = std::mem::take(&mut self.waiting);
        self.opened_at = None;
        let result = match self.tx.take() {
            Some(tx) => tx.commit().await,
            None => Ok(()),
        };
        let shared = result.as_ref().map(|_| ()).map_err(|e| e.to_string());
        for member in waiting {
            let _ = member.send(shared.clone());
        }
        result
    }

    /// Rolls the open transaction back (a savepoint could not be released or undone).
    fn abandon(&mut self, why: &str) {
        self.tx = None;
        self.opened_at = None;
        for member in std::mem::take(&mut self.waiting) {
            let _ = member.send(Err(format!("the group transaction failed: {why}")));
        }
    }
}

/// One member's share of a write transaction: write through [`Member::tx`], then [`Member::finish`].
/// Dropped unfinished (a panic mid-write), it takes its group down with it rather than let a
/// half-written member commit.
pub struct Member<'w> {
    kind: Option<MemberKind<'w>>,
}

impl Drop for Member<'_> {
    fn drop(&mut self) {
        if let Some(MemberKind::Sqlite { mut group, .. }) = self.kind.take() {
            group.abandon("a member stopped before finishing");
        }
    }
}

enum MemberKind<'w> {
    Sqlite { writer: &'w SqliteWriter, group: OwnedMutexGuard<Group> },
    Postgres(Tx),
}

impl Writer {
    pub fn new(db: &Db) -> Writer {
        let stop = CancellationToken::new();
        let sqlite = match db {
            Db::Postgres(_) => None,
            Db::Sqlite(pool) => {
                tokio::spawn(checkpoint_periodically(pool.clone(), stop.clone()));
                let options = (*pool.connect_options())
                    .clone()
                    .pragma("cache_size", format!("-{WRITER_CACHE_KIB}"))
                    .pragma("mmap_size", WRITER_MMAP_BYTES.to_string())
                    .pragma("wal_autocheckpoint", WRITER_WAL_AUTOCHECKPOINT.to_string())
                    .pragma("temp_store", "memory");
                let pool = SqlitePoolOptions::new()
                    .max_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None)
                    .connect_lazy_with(options);
                Some(SqliteWriter { pool, group: Arc::default(), queued: AtomicUsize::new(0) })
            }
        };
        Writer { sqlite, stop, last_stamp: AtomicI64::new(0) }
    }

    /// The ingestion time of a batch: now, and strictly after every earlier batch of this
    /// process (microseconds), so on SQLite a batch's rows can be told from a concurrent batch's.
    pub fn stamp(&self) -> OffsetDateTime {
        let now = (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1000) as i64;
        let mut last = self.last_stamp.load(Ordering::Relaxed);
        loop {
            let next = now.max(last + 1);
            match self.last_stamp.compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => {
                    return OffsetDateTime::from_unix_timestamp_nanos(i128::from(next) * 1000)
                        .unwrap_or_else(|_| OffsetDateTime::now_utc());
                }
                Err(seen) => last = seen,
            }
        }
    }

    /// Joins a write transaction (on SQLite the open group's, in a savepoint of its own).
    pub async fn join<'w>(&'w self, db: &Db) -> Result<Member<'w>, sqlx::Error> {
        let Some(writer) = &self.sqlite else {
            return Ok(Member { kind: Some(MemberKind::Postgres(db.begin().await?)) });
        };
        writer.queued.fetch_add(1, Ordering::SeqCst);
        let mut group = writer.group.clone().lock_owned().await;
        writer.queued.fetch_sub(1, Ordering::SeqCst);
        if group.tx.is_none() {
            group.tx = Some(Tx::Sqlite(Db::begin_sqlite_write(&writer.pool).await?));
            group.opened_at = Some(Instant::now());
        }
        let tx = group.tx.as_mut().expect("opened above");
        if let Err(e) = run(tx, "SAVEPOINT member").await {
            group.abandon(&e.to_string());
            return Err(e);
        }
        Ok(Member { kind: Some(MemberKind::Sqlite { writer, group }) })
    }

    pub async fn close(&self) {
        self.stop.cancel();
        if let Some(writer) = &self.sqlite {
            writer.pool.close().await;
        }
    }
}

async fn run(tx: &mut Tx, statement: &'static str) -> Result<(), sqlx::Error> {
    on_tx!(tx, |conn| sqlx::query(statement).execute(conn).await.map(|_| ()))
}

impl Member<'_> {
    pub fn tx(&mut self) -> &mut Tx {
        match self.kind.as_mut().expect("an unfinished member") {
            MemberKind::Sqlite { group, .. } => group.tx.as_mut().expect("a member's group is open"),
            MemberKind::Postgres(tx) => tx,
        }
    }

    /// Keeps (`ok`) or undoes this member's writes and returns once they are committed (when
    /// kept). A failure of the commit itself is returned to every member of the group.
    pub async fn finish(mut self, ok: bool) -> Result<(), sqlx::Error> {
        let (writer, mut group) = match self.kind.take().expect("an unfinished member") {
            MemberKind::Postgres(tx) => return if ok { tx.commit().await } else { Ok(()) },
            MemberKind::Sqlite { writer, group } => (writer, group),
        };
        let tx = group.tx.as_mut().expect("a member's group is open");
        let settled = if ok {
            run(tx, "RELEASE member").await
        } else {
            match run(tx, "ROLLBACK TO member").await {
                Ok(()) => run(tx, "RELEASE member").await,
                Err(e) => Err(e),
            }
        };
        if let Err(e) = settled {
            group.abandon(&e.to_string());
            return Err(e);
        }
        let committed = ok.then(|| {
            let (tell, told) = oneshot::channel();
            group.waiting.push(tell);
            told
        });
        let commit_now = writer.queued.load(Ordering::SeqCst) == 0
            || group.waiting.len() >= MAX_GROUP
            || group.opened_at.is_some_and(|at| at.elapsed() >= MAX_GROUP_OPEN);
        if commit_now {
            // Every waiting member (this one included) hears the outcome.
            let _ = group.commit().await;
        }
        drop(group);
        let Some(told) = committed else { return Ok(()) };
        let mut told = told;
        let outcome = match tokio::time::timeout(GROUP_WAIT, &mut told).await {
            Ok(outcome) => outcome,
            Err(_) => {
                // Whoever should have committed never did: commit the group from here (which
                // answers `told`, unless someone else committed it meanwhile and already did).
                let mut group = writer.group.clone().lock_owned().await;
                let _ = group.commit().await;
                drop(group);
                told.await
            }
        };
        match outcome {
            Ok(Ok(())) => Ok(()),
            Ok(Err(message)) => Err(sqlx::Error::Protocol(format!("commit failed: {message}"))),
            Err(_) => Err(sqlx::Error::Protocol("the group transaction was dropped".into())),
        }
    }
}

/// Copies the WAL back into the database file every [`CHECKPOINT_EVERY`] from a connection of
/// the shared pool (`PASSIVE`: never waits for readers or the writer), so the writer's commits do
/// not pay for checkpoints and the WAL stays small.
async fn checkpoint_periodically(pool: SqlitePool, stop: CancellationToken) {
    let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        if pool.is_closed() {
            return;
        }
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&pool).await {
            tracing::debug!(error = %e, "background WAL checkpoint failed");
        }
    }
}
