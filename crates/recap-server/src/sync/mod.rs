//! Git activity data: push ingestion of commits (the league contract's `/api/v1/sync/...` routes),
//! the sync status of a repository, and the commit queries.
//!
//! `service::ingest` is the one write path for commits: the push route calls it, and pull sync
//! is meant to call it too, so both keep the same status lifecycle, audit row and event.

pub mod model;
pub mod routes;
pub mod service;
pub mod store;

use std::{
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
    time::Duration,
};

use utoipa_axum::router::OpenApiRouter;

use sqlx::sqlite::{SqlitePool, SqlitePoolOptions};
use time::OffsetDateTime;

use crate::{
    config::ConfigError,
    db::{Db, Tx},
    http::rate_limit::Policy,
    redis::RedisHandle,
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    routes::router()
}

/// Settings of the sync routes.
#[derive(Debug, Clone)]
pub struct SyncSettings {
    /// Requests per minute on the push route per credential (API key, or user for a JWT), and on
    /// the status route per client IP and path (`SYNC_RATE_LIMIT`, default 100).
    pub rate_limit: u32,
}

impl Default for SyncSettings {
    fn default() -> Self {
        SyncSettings { rate_limit: 100 }
    }
}

impl SyncSettings {
    pub fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Result<SyncSettings, ConfigError> {
        let mut s = SyncSettings::default();
        if let Some(v) = get("SYNC_RATE_LIMIT") {
            s.rate_limit = match v.parse::<u32>() {
                Ok(n) if n > 0 => n,
                _ => {
                    return Err(ConfigError {
                        var: "SYNC_RATE_LIMIT",
                        message: format!("must be a whole number greater than zero, got {v:?}"),
                    });
                }
            };
        }
        Ok(s)
    }
}

/// What the sync routes share, created once per app: the request budgets of the two routes and
/// the write queue of ingestion.
pub struct SyncState {
    /// `POST …/commits`: per API key (or per user for a JWT), across its repositories.
    pub push_limit: Arc<Policy>,
    /// `GET …/status`: per client IP and exact path, as in the original service.
    pub status_limit: Arc<Policy>,
    pub writer: Writer,
}

impl SyncState {
    pub fn new(settings: &SyncSettings, db: &Db, redis: Option<Arc<RedisHandle>>) -> SyncState {
        let minute = Duration::from_secs(60);
        SyncState {
            push_limit: Policy::new("sync_push", settings.rate_limit, minute, redis.clone()),
            status_limit: Policy::new("sync_status", settings.rate_limit, minute, redis),
            writer: Writer::new(db),
        }
    }
}

/// Where ingestion writes: on PostgreSQL the shared pool; on SQLite one dedicated connection.
///
/// SQLite has one writer at a time. Connections racing for the lock sleep and retry (1, 2, 5, …
/// up to 100 ms per retry), which leaves the lock idle between transactions and makes the
/// unluckiest push wait for seconds; waiting for the one writer connection instead is a queue
/// that hands over the moment the previous transaction commits. And a connection drops its page
/// cache whenever another connection wrote since its last transaction, so with one writer the
/// index pages a batch touches stay cached from batch to batch (reads are the largest cost of
/// inserting random SHAs otherwise). The writer gets a larger cache, memory-mapped reads and a
/// larger WAL before it checkpoints. PostgreSQL needs none of this (row locks; rows go in SHA order).
pub struct Writer {
    sqlite: Option<SqlitePool>,
    /// The last ingestion time handed out (Unix microseconds), see [`Writer::stamp`].
    last_stamp: AtomicI64,
}

/// Page cache of the SQLite writer connection (KiB).
const WRITER_CACHE_KIB: i64 = 64 * 1024;
/// Memory-mapped reads of the SQLite writer connection (bytes of address space, not memory).
const WRITER_MMAP_BYTES: i64 = 1 << 30;
/// WAL pages after which the writer checkpoints (SQLite's default is 1000; a batch of new random
/// SHAs dirties about that many, so the default would checkpoint after nearly every batch).
const WRITER_WAL_AUTOCHECKPOINT: i64 = 10_000;

impl Writer {
    pub fn new(db: &Db) -> Writer {
        let sqlite = match db {
            Db::Postgres(_) => None,
            Db::Sqlite(pool) => {
                let options = (*pool.connect_options())
                    .clone()
                    .pragma("cache_size", format!("-{WRITER_CACHE_KIB}"))
                    .pragma("mmap_size", WRITER_MMAP_BYTES.to_string())
                    .pragma("wal_autocheckpoint", WRITER_WAL_AUTOCHECKPOINT.to_string())
                    .pragma("temp_store", "memory");
                Some(
                    SqlitePoolOptions::new()
                        .max_connections(1)
                        .idle_timeout(None)
                        .max_lifetime(None)
                        .connect_lazy_with(options),
                )
            }
        };
        Writer { sqlite, last_stamp: AtomicI64::new(0) }
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

    /// A write transaction (on SQLite, `BEGIN IMMEDIATE` on the writer connection).
    pub async fn begin(&self, db: &Db) -> Result<Tx, sqlx::Error> {
        match &self.sqlite {
            Some(writer) => Ok(Tx::Sqlite(Db::begin_sqlite_write(writer).await?)),
            None => db.begin().await,
        }
    }

    pub async fn close(&self) {
        if let Some(writer) = &self.sqlite {
            writer.close().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_setting_is_checked() {
        let s = SyncSettings::from_lookup(&|_: &str| None).unwrap();
        assert_eq!(s.rate_limit, 100);
        let s = SyncSettings::from_lookup(&|k: &str| (k == "SYNC_RATE_LIMIT").then(|| "5000".to_owned())).unwrap();
        assert_eq!(s.rate_limit, 5000);
        for bad in ["0", "-1", "many"] {
            let err =
                SyncSettings::from_lookup(&|k: &str| (k == "SYNC_RATE_LIMIT").then(|| bad.to_owned())).unwrap_err();
            assert_eq!(err.var, "SYNC_RATE_LIMIT");
        }
    }
}
