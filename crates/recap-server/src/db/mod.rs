//! Storage: one pool for SQLite or PostgreSQL, chosen by `DATABASE_URL`.
//!
//! Queries are written once where the engines agree and per engine where they do not; a store
//! matches on [`Db`] to pick its SQL. sqlx's `Any` driver is not used: it has no uuid/time types.

pub mod migrate;

/// Runs the same query code on whichever pool `db` holds: `on_db!(db, |pool| sqlx::query(..).fetch_one(pool).await)`.
/// Both arms must produce the same type, so map engine-specific results (e.g. `rows_affected()`).
#[macro_export]
macro_rules! on_db {
    ($db:expr, |$pool:ident| $body:expr) => {
        match $db {
            $crate::db::Db::Sqlite($pool) => $body,
            $crate::db::Db::Postgres($pool) => $body,
        }
    };
}

/// Like [`on_db!`] inside a transaction: `on_tx!(tx, |conn| sqlx::query(..).execute(conn).await)`.
#[macro_export]
macro_rules! on_tx {
    ($tx:expr, |$conn:ident| $body:expr) => {
        match $tx {
            $crate::db::Tx::Sqlite(t) => {
                let $conn = &mut **t;
                $body
            }
            $crate::db::Tx::Postgres(t) => {
                let $conn = &mut **t;
                $body
            }
        }
    };
}

/// A write transaction on either engine (SQLite's begun `IMMEDIATE`). Dropped without
/// [`Tx::commit`], it rolls back.
pub enum Tx {
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

impl Tx {
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Tx::Sqlite(t) => t.commit().await,
            Tx::Postgres(t) => t.commit().await,
        }
    }
}

/// True when `e` is a unique-constraint violation (a duplicate), on either engine.
pub fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

use std::{str::FromStr, time::Duration};

use anyhow::Context;
use sqlx::{
    PgPool, SqlitePool,
    postgres::{PgConnectOptions, PgPoolOptions},
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};

use crate::config::{Settings, redact_url};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

impl Engine {
    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Sqlite => "sqlite",
            Engine::Postgres => "postgres",
        }
    }
}

#[derive(Clone, Debug)]
pub enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Connection counts for the pool gauges.
#[derive(Debug, Clone, Copy)]
pub struct PoolState {
    pub size: u32,
    pub idle: u32,
    pub max: u32,
}

impl Db {
    pub async fn connect(settings: &Settings) -> anyhow::Result<Db> {
        let url = &settings.database_url;
        let max = settings.database_max_connections;
        if url.starts_with("sqlite:") {
            // Pragmas live in the connect options so every pooled connection gets them.
            let options = SqliteConnectOptions::from_str(url)
                .with_context(|| format!("DATABASE_URL {} is not a valid SQLite URL", redact_url(url)))?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(5))
                .foreign_keys(true);
            let pool = SqlitePoolOptions::new()
                .max_connections(max)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options)
                .await
                .with_context(|| format!("could not open the SQLite database {}", redact_url(url)))?;
            Ok(Db::Sqlite(pool))
        } else {
            let options = PgConnectOptions::from_str(url)
                .with_context(|| format!("DATABASE_URL {} is not a valid PostgreSQL URL", redact_url(url)))?;
            let pool = PgPoolOptions::new()
                .max_connections(max)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options)
                .await
                .with_context(|| format!("could not connect to PostgreSQL at {}", redact_url(url)))?;
            Ok(Db::Postgres(pool))
        }
    }

    pub fn engine(&self) -> Engine {
        match self {
            Db::Sqlite(_) => Engine::Sqlite,
            Db::Postgres(_) => Engine::Postgres,
        }
    }

    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        let one: i32 = match self {
            Db::Sqlite(pool) => sqlx::query_scalar("SELECT 1").fetch_one(pool).await?,
            Db::Postgres(pool) => sqlx::query_scalar("SELECT 1").fetch_one(pool).await?,
        };
        debug_assert_eq!(one, 1);
        Ok(())
    }

    pub fn pool_state(&self) -> PoolState {
        match self {
            Db::Sqlite(pool) => {
                PoolState { size: pool.size(), idle: pool.num_idle() as u32, max: pool.options().get_max_connections() }
            }
            Db::Postgres(pool) => {
                PoolState { size: pool.size(), idle: pool.num_idle() as u32, max: pool.options().get_max_connections() }
            }
        }
    }

    pub async fn close(&self) {
        match self {
            Db::Sqlite(pool) => pool.close().await,
            Db::Postgres(pool) => pool.close().await,
        }
    }

    /// Begins a write transaction.
    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        Ok(match self {
            Db::Sqlite(pool) => Tx::Sqlite(Db::begin_sqlite_write(pool).await?),
            Db::Postgres(pool) => Tx::Postgres(pool.begin().await?),
        })
    }

    /// A write transaction on SQLite, begun `IMMEDIATE` so it takes the write lock up front
    /// instead of failing with "database is locked" when it first writes after a read.
    pub async fn begin_sqlite_write(
        pool: &SqlitePool,
    ) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
        pool.begin_with("BEGIN IMMEDIATE").await
    }

    /// This database's instance id, created by the first start after migrations.
    pub async fn ensure_instance_id(&self) -> Result<String, sqlx::Error> {
        let fresh = uuid::Uuid::new_v4();
        match self {
            Db::Sqlite(pool) => {
                let mut tx = Db::begin_sqlite_write(pool).await?;
                sqlx::query(
                    "INSERT INTO recap_instance (id, instance_id, created_at) VALUES (1, $1, $2) ON CONFLICT (id) DO NOTHING",
                )
                .bind(fresh.to_string())
                .bind(crate::time::now_rfc3339())
                .execute(&mut *tx)
                .await?;
                let id = sqlx::query_scalar("SELECT instance_id FROM recap_instance WHERE id = 1")
                    .fetch_one(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(id)
            }
            Db::Postgres(pool) => {
                sqlx::query("INSERT INTO recap_instance (id, instance_id) VALUES (1, $1) ON CONFLICT (id) DO NOTHING")
                    .bind(fresh)
                    .execute(pool)
                    .await?;
                sqlx::query_scalar("SELECT instance_id::text FROM recap_instance WHERE id = 1").fetch_one(pool).await
            }
        }
    }
}
