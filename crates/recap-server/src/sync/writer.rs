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
//!   [`MAX_GROUP_OPEN`]); every member returns only once the group has committed. Committing a
//!   group costs about what committing one batch does, and pages dirtied by several batches are
//!   written once.
//! - **Requests may be cancelled at any await** (a client disconnects, the request times out), so
//!   nothing a group needs is left to a request's future: commits run in tasks of their own (a
//!   member cancelled while its group commits does not lose the others their answer), a group left
//!   open for members that never come is committed by a watchdog task after [`MAX_GROUP_OPEN`],
//!   and the count of queued members is kept by a guard.
//! - Long writes (rebuilding a project's scores, deleting a large repository) take a group of
//!   their own (`write_tx!(alone: …)`): if one of them fails or is cancelled after many seconds,
//!   it does not take other members' work with it.
//! - **A failing member rolls its whole group back**, and the other members run their work again
//!   in a new group ([`write_tx!`] does this, up to [`MAX_REDOS`] times). Failures are rare
//!   (input is validated before it gets here); the alternative, a savepoint per member, made SQLite
//!   copy every page a member touched into a sub-journal first: about a tenth of the writer's time
//!   with batches of random SHAs (bench/ingest.sh: 96–112k → 109–119k new commits/s).
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

use crate::db::{Db, Tx};

/// `write_tx!(writer, db, |tx| work)`: runs `work` (an expression, usually ending in `.await`,
/// that writes through `tx: &mut Tx` and gives a `Result<T, E>` with `E: From<sqlx::Error>`) in a
/// write transaction of `writer` and commits it: on SQLite as a member of the open group
/// transaction, on PostgreSQL in a transaction of its own. An `Err` from `work` rolls it back (on
/// SQLite with its group, whose other members run again) and is the macro's value. `work` may
/// run more than once: when another member of its group failed, it runs again in a new group.
/// `write_tx!(alone: writer, db, |tx| work)` runs it in a group of its own (long writes).
///
/// A macro, not a method taking an async closure: the future of a generic async closure cannot
/// be shown to be `Send`, and the HTTP handlers run on a multi-threaded runtime.
macro_rules! write_tx {
    (alone: $writer:expr, $db:expr, |$tx:ident| $work:expr) => {
        $crate::sync::writer::write_tx!(@run true, $writer, $db, |$tx| $work)
    };
    ($writer:expr, $db:expr, |$tx:ident| $work:expr) => {
        $crate::sync::writer::write_tx!(@run false, $writer, $db, |$tx| $work)
    };
    (@run $alone:expr, $writer:expr, $db:expr, |$tx:ident| $work:expr) => {{
        let (writer, db): (&$crate::sync::Writer, &$crate::db::Db) = ($writer, $db);
        let mut redos = 0;
        loop {
            let mut member = match writer.join(db, $alone).await {
                Ok(member) => member,
                Err(e) => break Err(e.into()),
            };
            let result = {
                let $tx = member.tx();
                $work
            };
            match member.finish(result.is_ok()).await {
                Ok(()) => break result,
                Err(ended) => match writer.redo(ended, &mut redos) {
                    None => continue,
                    Some(e) => break Err(e.into()),
                },
            }
        }
    }};
}
pub(crate) use write_tx;

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
/// How many times [`write_tx!`] runs a member's work again after other members' failures
/// rolled its groups back.
pub const MAX_REDOS: usize = 5;

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
    /// Members waiting to join (for the mutex); see [`Queued`].
    queued: Arc<AtomicUsize>,
}

/// A place in the queue for the group: counted while it exists, so a request cancelled while
/// waiting does not leave a member counted forever (which would keep every later group open for
/// members that never come).
struct Queued(Arc<AtomicUsize>);

impl Queued {
    fn new(count: &Arc<AtomicUsize>) -> Queued {
        count.fetch_add(1, Ordering::SeqCst);
        Queued(count.clone())
    }
}

impl Drop for Queued {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The open group transaction.
#[derive(Default)]
struct Group {
    tx: Option<Tx>,
    opened_at: Option<Instant>,
    /// Counts ended groups, so a watchdog ends only the group it was set for.
    generation: u64,
    /// Whether this group has its watchdog (one is enough).
    watched: bool,
    /// Members waiting for the commit.
    waiting: Vec<oneshot::Sender<Outcome>>,
}

/// How a group transaction ended, for the members waiting on it.
#[derive(Debug, Clone)]
enum Outcome {
    Committed,
    /// Another member failed (or stopped half-way): nothing of the group was kept.
    RolledBack,
    /// The commit itself failed.
    Failed(String),
}

impl Group {
    /// Commits the open transaction (if any) in a task of its own, which tells every waiting
    /// member how it went: whoever asks for the commit may be cancelled, the commit is not. The
    /// next transaction begins when the commit has given the connection back.
    fn commit(&mut self) {
        let waiting = std::mem::take(&mut self.waiting);
        self.opened_at = None;
        self.generation += 1;
        self.watched = false;
        let Some(tx) = self.tx.take() else { return };
        tokio::spawn(async move {
            let outcome = match tx.commit().await {
                Ok(()) => Outcome::Committed,
                Err(e) => Outcome::Failed(e.to_string()),
            };
            for member in waiting {
                let _ = member.send(outcome.clone());
            }
        });
    }

    /// Rolls the open transaction back (dropping it does) for a member that failed: the members
    /// waiting on it run their work again.
    fn abandon(&mut self) {
        self.tx = None;
        self.opened_at = None;
        self.generation += 1;
        self.watched = false;
        for member in std::mem::take(&mut self.waiting) {
            let _ = member.send(Outcome::RolledBack);
        }
    }
}

/// One member's share of a write transaction: write through [`Member::tx`], then [`Member::finish`].
/// Dropped unfinished (a panic mid-write, a cancelled request), it takes its group down with it
/// rather than let a half-written member commit.
pub(crate) struct Member<'w> {
    kind: Option<MemberKind<'w>>,
}

impl Drop for Member<'_> {
    fn drop(&mut self) {
        if let Some(MemberKind::Sqlite { mut group, .. }) = self.kind.take() {
            group.abandon();
        }
    }
}

enum MemberKind<'w> {
    Sqlite { writer: &'w SqliteWriter, group: OwnedMutexGuard<Group>, alone: bool },
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
                Some(SqliteWriter { pool, group: Arc::default(), queued: Arc::new(AtomicUsize::new(0)) })
            }
        };
        Writer { sqlite, stop, last_stamp: AtomicI64::new(0) }
    }

    /// The ingestion time of a batch: now, and strictly after every earlier batch of this
    /// process (microseconds), so ingestion times order batches as they were written.
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

    /// After [`Member::finish`] ended without committing: `None` to run the work again (another
    /// member failed), else the error to give up with. See [`write_tx!`].
    pub(crate) fn redo(&self, ended: Ended, redos: &mut usize) -> Option<sqlx::Error> {
        match ended {
            Ended::RolledBack if *redos < MAX_REDOS => {
                *redos += 1;
                None
            }
            Ended::RolledBack => Some(sqlx::Error::Protocol(format!(
                "the write was rolled back {} times because other writes of its group failed",
                *redos + 1
            ))),
            Ended::Failed(e) => Some(e),
        }
    }

    /// Joins a write transaction: on SQLite the open group's, or (`alone`) a new group after
    /// committing the open one.
    pub(crate) async fn join<'w>(&'w self, db: &Db, alone: bool) -> Result<Member<'w>, sqlx::Error> {
        let Some(writer) = &self.sqlite else {
            return Ok(Member { kind: Some(MemberKind::Postgres(db.begin().await?)) });
        };
        let queued = Queued::new(&writer.queued);
        let mut group = writer.group.clone().lock_owned().await;
        drop(queued);
        if alone {
            group.commit();
        }
        if group.tx.is_none() {
            group.tx = Some(Tx::Sqlite(Db::begin_sqlite_write(&writer.pool).await?));
            group.opened_at = Some(Instant::now());
        }
        Ok(Member { kind: Some(MemberKind::Sqlite { writer, group, alone }) })
    }

    pub async fn close(&self) {
        self.stop.cancel();
        if let Some(writer) = &self.sqlite {
            writer.pool.close().await;
        }
    }
}

/// Why [`Member::finish`] did not commit a member's writes.
#[derive(Debug)]
pub(crate) enum Ended {
    /// Another member of the group failed: run the work again.
    RolledBack,
    Failed(sqlx::Error),
}

impl Member<'_> {
    pub(crate) fn tx(&mut self) -> &mut Tx {
        match self.kind.as_mut().expect("an unfinished member") {
            MemberKind::Sqlite { group, .. } => group.tx.as_mut().expect("a member's group is open"),
            MemberKind::Postgres(tx) => tx,
        }
    }

    /// Keeps (`ok`) or undoes this member's writes; when kept, returns once they are committed.
    /// Undoing a SQLite member undoes its group (see the module docs): `Ok` for the member itself.
    pub(crate) async fn finish(mut self, ok: bool) -> Result<(), Ended> {
        let (writer, mut group, alone) = match self.kind.take().expect("an unfinished member") {
            MemberKind::Postgres(tx) => return if ok { tx.commit().await.map_err(Ended::Failed) } else { Ok(()) },
            MemberKind::Sqlite { writer, group, alone } => (writer, group, alone),
        };
        if !ok {
            group.abandon();
            return Ok(());
        }
        let (tell, told) = oneshot::channel();
        group.waiting.push(tell);
        let commit_now = alone
            || writer.queued.load(Ordering::SeqCst) == 0
            || group.waiting.len() >= MAX_GROUP
            || group.opened_at.is_some_and(|at| at.elapsed() >= MAX_GROUP_OPEN);
        if commit_now {
            group.commit();
        } else if !group.watched {
            // Open for the members queued now; if they never join (cancelled), the watchdog
            // commits what is there.
            group.watched = true;
            let (generation, group_of_writer) = (group.generation, writer.group.clone());
            tokio::spawn(async move {
                tokio::time::sleep(MAX_GROUP_OPEN).await;
                let mut group = group_of_writer.lock_owned().await;
                if group.generation == generation {
                    group.commit();
                }
            });
        }
        drop(group);
        match told.await {
            Ok(Outcome::Committed) => Ok(()),
            Ok(Outcome::RolledBack) => Err(Ended::RolledBack),
            Ok(Outcome::Failed(message)) => {
                Err(Ended::Failed(sqlx::Error::Protocol(format!("commit failed: {message}"))))
            }
            Err(_) => Err(Ended::Failed(sqlx::Error::Protocol("the group transaction was dropped".into()))),
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};

    use super::*;
    use crate::on_tx;

    async fn insert(tx: &mut Tx, value: &str) -> Result<(), sqlx::Error> {
        on_tx!(tx, |conn| sqlx::query("INSERT INTO t (v) VALUES ($1)").bind(value).execute(conn).await.map(|_| ()))
    }

    /// A database with a table `t` that refuses the value 'bad', its shared pool and a writer.
    async fn setup() -> (tempfile::TempDir, SqlitePool, Db, Arc<Writer>) {
        let dir = tempfile::tempdir().unwrap();
        let options = SqliteConnectOptions::new()
            .filename(dir.path().join("w.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_millis(500));
        let pool = SqlitePoolOptions::new().connect_with(options).await.unwrap();
        sqlx::query("CREATE TABLE t (v TEXT NOT NULL CHECK (v <> 'bad'))").execute(&pool).await.unwrap();
        let db = Db::Sqlite(pool.clone());
        let writer = Arc::new(Writer::new(&db));
        (dir, pool, db, writer)
    }

    async fn rows(pool: &SqlitePool) -> Vec<String> {
        sqlx::query_scalar("SELECT v FROM t ORDER BY v").fetch_all(pool).await.unwrap()
    }

    fn queued(writer: &Writer) -> usize {
        writer.sqlite.as_ref().unwrap().queued.load(Ordering::SeqCst)
    }

    /// A member that fails rolls its group back: the member that shared the group runs its work
    /// again and is committed once; nothing of the failing one is kept.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_member_makes_its_group_run_again() {
        let (_dir, pool, db, writer) = setup().await;
        // A writes, then waits until B queues behind it, so A leaves the group open for B.
        let runs_of_a = Arc::new(AtomicUsize::new(0));
        let a = {
            let (writer, db, runs) = (writer.clone(), db.clone(), runs_of_a.clone());
            tokio::spawn(async move {
                let writer: &Writer = &writer;
                write_tx!(writer, &db, |tx| async {
                    runs.fetch_add(1, Ordering::SeqCst);
                    insert(tx, "a").await?;
                    let wait = Instant::now();
                    while queued(writer) == 0 && wait.elapsed() < Duration::from_millis(500) {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    Ok::<_, sqlx::Error>(())
                }
                .await)
            })
        };
        while runs_of_a.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // B breaks the CHECK constraint after A's insert, in A's group.
        let b: Result<(), sqlx::Error> = write_tx!(&*writer, &db, |tx| insert(tx, "bad").await);
        assert!(b.unwrap_err().to_string().contains("CHECK constraint failed"));
        a.await.unwrap().unwrap();
        assert_eq!(runs_of_a.load(Ordering::SeqCst), 2, "A ran again after B rolled the group back");
        assert_eq!(rows(&pool).await, ["a"]);
        writer.close().await;
    }

    /// A request cancelled while queued for the group is not counted as queued afterwards (a
    /// later lone write would otherwise wait for it and keep its group open).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_member_cancelled_in_the_queue_is_not_waited_for() {
        let (_dir, pool, db, writer) = setup().await;
        let holder = writer.join(&db, false).await.unwrap();
        let waiting = {
            let (writer, db) = (writer.clone(), db.clone());
            tokio::spawn(async move {
                let _member = writer.join(&db, false).await;
            })
        };
        while queued(&writer) == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        waiting.abort();
        let _ = waiting.await;
        assert_eq!(queued(&writer), 0);
        assert!(holder.finish(true).await.is_ok());

        let start = Instant::now();
        let solo: Result<(), sqlx::Error> = write_tx!(&*writer, &db, |tx| insert(tx, "solo").await);
        solo.unwrap();
        assert!(start.elapsed() < MAX_GROUP_OPEN, "a lone write commits at once: {:?}", start.elapsed());
        assert_eq!(rows(&pool).await, ["solo"]);
        writer.close().await;
    }

    /// A member leaves its group open for one queued behind it, which never joins (cancelled
    /// between the two), and its own request is cancelled while it waits for the commit. The
    /// watchdog commits the group, so SQLite's write lock is not held by nobody for ever.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_group_left_open_by_cancelled_requests_is_committed() {
        let (_dir, pool, db, writer) = setup().await;
        let mut holder = writer.join(&db, false).await.unwrap();
        insert(holder.tx(), "a").await.unwrap();
        // Counted as queued, never joins.
        let never_joins = Queued::new(&writer.sqlite.as_ref().unwrap().queued);
        assert!(tokio::time::timeout(Duration::from_millis(20), holder.finish(true)).await.is_err());
        drop(never_joins);

        tokio::time::sleep(MAX_GROUP_OPEN * 3).await;
        assert_eq!(rows(&pool).await, ["a"], "A's write was committed");
        // The write lock is free: another connection writes.
        sqlx::query("INSERT INTO t (v) VALUES ('other')").execute(&pool).await.unwrap();
        writer.close().await;
    }

    /// The member that commits its group is cancelled during the commit: the others still hear
    /// that their writes were committed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_committer_cancelled_mid_commit_does_not_fail_the_others() {
        let (_dir, pool, db, writer) = setup().await;
        let a = async {
            let a: Result<(), sqlx::Error> = write_tx!(&*writer, &db, |tx| async {
                insert(tx, "a").await?;
                while queued(&writer) == 0 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                Ok::<_, sqlx::Error>(())
            }
            .await);
            a
        };
        let b = async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            let mut member = writer.join(&db, false).await.unwrap();
            insert(member.tx(), "b").await.unwrap();
            // B commits the group; its request goes away before the commit is done.
            let mut finishing = Box::pin(member.finish(true));
            assert!(futures::poll!(finishing.as_mut()).is_pending());
        };
        let (a, ()) = tokio::join!(a, b);
        a.unwrap();
        assert_eq!(rows(&pool).await, ["a", "b"]);
        writer.close().await;
    }

    /// A write `alone` commits the open group first and is not joined by others.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_long_write_runs_in_a_group_of_its_own() {
        let (_dir, pool, db, writer) = setup().await;
        let mut first = writer.join(&db, false).await.unwrap();
        insert(first.tx(), "a").await.unwrap();
        // Someone is queued (the long write below), so A leaves the group open...
        let long = {
            let (writer, db) = (writer.clone(), db.clone());
            tokio::spawn(async move {
                let writer: &Writer = &writer;
                // ... and the long write fails: A is not rolled back with it.
                let long: Result<(), sqlx::Error> = write_tx!(alone: writer, &db, |tx| insert(tx, "bad").await);
                long
            })
        };
        while queued(&writer) == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        first.finish(true).await.unwrap();
        assert!(long.await.unwrap().is_err());
        assert_eq!(rows(&pool).await, ["a"]);
        writer.close().await;
    }
}
