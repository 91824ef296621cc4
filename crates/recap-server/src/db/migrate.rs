//! Reversible migrations, one folder per engine, embedded in the binary.

use anyhow::Context;
use serde::Serialize;
use sqlx::migrate::Migrator;

use super::Db;

static SQLITE: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES: Migrator = sqlx::migrate!("migrations/postgres");

fn migrator(db: &Db) -> &'static Migrator {
    match db {
        Db::Sqlite(_) => &SQLITE,
        Db::Postgres(_) => &POSTGRES,
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct MigrationStatus {
    pub version: i64,
    pub description: String,
    /// When it was applied (RFC 3339), or `None` if pending.
    pub applied_at: Option<String>,
}

/// Applies every pending migration; returns the versions applied.
pub async fn upgrade(db: &Db) -> anyhow::Result<Vec<i64>> {
    let before = applied(db).await?;
    match db {
        Db::Sqlite(pool) => SQLITE.run(pool).await,
        Db::Postgres(pool) => POSTGRES.run(pool).await,
    }
    .context("applying migrations failed")?;
    let after = applied(db).await?;
    Ok(after.into_iter().map(|(v, _)| v).filter(|v| !before.iter().any(|(b, _)| b == v)).collect())
}

/// Reverts the newest `steps` applied migrations; returns the versions reverted, newest first.
pub async fn downgrade(db: &Db, steps: usize) -> anyhow::Result<Vec<i64>> {
    let mut versions: Vec<i64> = applied(db).await?.into_iter().map(|(v, _)| v).collect();
    versions.reverse();
    let target = versions.get(steps).copied().unwrap_or(0);
    match db {
        Db::Sqlite(pool) => SQLITE.undo(pool, target).await,
        Db::Postgres(pool) => POSTGRES.undo(pool, target).await,
    }
    .context("reverting migrations failed")?;
    Ok(versions.into_iter().take(steps).collect())
}

/// The newest applied migration version, if any.
///
/// One query (it serves `GET /api/v1/status`); a database without the migrations table has none.
pub async fn current(db: &Db) -> anyhow::Result<Option<i64>> {
    let newest: Result<Option<i64>, sqlx::Error> =
        crate::on_db!(db, |pool| sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
            .fetch_one(pool)
            .await);
    match newest {
        Ok(version) => Ok(version),
        // SQLite: "no such table"; PostgreSQL: undefined_table.
        Err(sqlx::Error::Database(e))
            if e.code().as_deref() == Some("42P01") || e.message().contains("no such table") =>
        {
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// Every known migration, applied or pending, oldest first.
pub async fn history(db: &Db) -> anyhow::Result<Vec<MigrationStatus>> {
    let applied = applied(db).await?;
    Ok(migrator(db)
        .iter()
        .filter(|m| m.migration_type.is_up_migration())
        .map(|m| MigrationStatus {
            version: m.version,
            description: m.description.to_string(),
            applied_at: applied.iter().find(|(v, _)| *v == m.version).map(|(_, at)| at.clone()),
        })
        .collect())
}

/// The latest version this binary knows.
pub fn latest_known(db: &Db) -> Option<i64> {
    migrator(db).iter().map(|m| m.version).max()
}

/// Successfully applied migrations `(version, applied_at)`, oldest first; empty on a new database.
async fn applied(db: &Db) -> anyhow::Result<Vec<(i64, String)>> {
    let rows = match db {
        Db::Sqlite(pool) => {
            let exists: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
            )
            .fetch_one(pool)
            .await?;
            if exists == 0 {
                return Ok(Vec::new());
            }
            sqlx::query_as(
                "SELECT version, strftime('%Y-%m-%dT%H:%M:%SZ', installed_on) FROM _sqlx_migrations \
                 WHERE success ORDER BY version",
            )
            .fetch_all(pool)
            .await?
        }
        Db::Postgres(pool) => {
            let exists: bool =
                sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL").fetch_one(pool).await?;
            if !exists {
                return Ok(Vec::new());
            }
            sqlx::query_as(
                "SELECT version, to_char(installed_on AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') \
                 FROM _sqlx_migrations WHERE success ORDER BY version",
            )
            .fetch_all(pool)
            .await?
        }
    };
    Ok(rows)
}
