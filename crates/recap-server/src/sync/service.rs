//! The logic of the sync routes and commit queries, and the transaction boundary of an ingest.

use std::{borrow::Cow, net::IpAddr};

use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{
    Writer,
    model::{self, CommitResultOut, NewCommit, Sha, SyncCommitsOut, SyncStatusOut},
    store::{self, CommitFilter, CommitRow, KeySalt, Stored},
    writer::write_tx,
};
use crate::{
    audit::{self, AuditEntry},
    db::{Db, Tx},
    error::{ApiError, ApiResult},
    http::pagination::Paging,
    league::stats::StatCommit,
    projects::{
        access::{ProjectRole, repo_not_found, require_project, require_repo},
        store::{self as projects_store, RepoRow},
    },
    time::rfc3339,
    webhooks::{self, Audience, events},
};

/// Runs a few milliseconds of CPU work (parsing a 1000-commit body, encoding its insert) without
/// holding up the async worker it runs on: on the multi-threaded runtime the worker's other tasks
/// move to another thread meanwhile. That matters for the ingest writer: its task is woken once
/// per statement and would otherwise wait behind other requests' parsing each time.
fn cpu_bound<R>(work: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        _ => work(),
    }
}

/// Who ingests, for the audit row.
#[derive(Debug, Clone, Copy)]
pub struct Actor {
    /// `None` for work nobody asked for (a scheduled pull sync).
    pub user_id: Option<Uuid>,
    pub ip: Option<IpAddr>,
}

const ALREADY_EXISTS: &str = "Commit already exists";

/// `POST /api/v1/sync/projects/{project_id}/repos/{repo_id}/commits` after authentication and the
/// per-credential rate limit: validation (422), project access (404 / 403), repository (404),
/// push method (400), then [`ingest`].
pub async fn push(
    db: &Db,
    writer: &Writer,
    user_id: Uuid,
    ip: Option<IpAddr>,
    project_id: &str,
    repo_ref: &str,
    body: &[u8],
) -> ApiResult<SyncCommitsOut> {
    let batch = cpu_bound(|| model::parse_push(body))?;
    let (project, _) = require_project(db, project_id, user_id, ProjectRole::Maintainer).await?;
    let repo = projects_store::repo_in_project(db, project.id, repo_ref).await?.ok_or_else(repo_not_found)?;
    if repo.sync_method != "push_client" {
        return Err(ApiError::bad_request(format!(
            "Repository is not configured for push-based sync (current method: {})",
            repo.sync_method
        )));
    }
    let actor = Actor { user_id: Some(user_id), ip };
    ingest(db, writer, &repo, &batch.commits, actor, batch.client_version.as_deref()).await
}

/// Stores a batch of validated commits in a repository: the one write path of commits (push and
/// pull sync).
///
/// The repository turns `syncing` (committed first, so readers see it), then one transaction
/// inserts whatever the repository does not hold yet, sets the final status, updates the league
/// totals, writes the `sync_commits` audit row and the `commits.ingested` event: all or nothing
/// (on SQLite that transaction may be shared with concurrent batches, each in its own savepoint;
/// see [`super::writer`]). Concurrent batches are safe: inserts are insert-if-absent on
/// `(repo_id, sha)` and tell which rows they stored, so a SHA is stored once and counted as
/// inserted by exactly one batch. If the transaction fails, the repository turns `error` with the
/// error text (and an audit row says so) and the caller gets a 500; if it failed because the
/// repository was deleted meanwhile, the caller gets the 404 a later push would get.
pub async fn ingest(
    db: &Db,
    writer: &Writer,
    repo: &RepoRow,
    commits: &[NewCommit<'_>],
    actor: Actor,
    client_version: Option<&str>,
) -> ApiResult<SyncCommitsOut> {
    write_tx!(writer, db, |tx| store::mark_syncing(tx, repo.id).await)?;
    match ingest_batch(db, writer, repo, commits, actor, client_version).await {
        Ok(out) => Ok(out),
        // Deleted while this push ran (its commits then fail the foreign key): nothing to record.
        Err(_) if projects_store::repo_by_id(db, repo.id).await?.is_none() => Err(repo_not_found()),
        Err(e) => {
            let message = e.to_string();
            if let Err(record) = record_failure(db, writer, repo.id, &message, actor, None).await {
                tracing::error!(error = %record, repo_id = %repo.id, "could not record a failed sync");
            }
            Err(ApiError::internal(anyhow::Error::new(e).context(format!("ingesting into repository {}", repo.id))))
        }
    }
}

pub(crate) async fn record_failure(
    db: &Db,
    writer: &Writer,
    repo_id: Uuid,
    message: &str,
    actor: Actor,
    attempted_at: Option<OffsetDateTime>,
) -> Result<(), sqlx::Error> {
    write_tx!(writer, db, |tx| async {
        store::mark_failed(tx, repo_id, message, attempted_at).await?;
        audit::record(
            tx,
            AuditEntry::new("sync_commits", actor.user_id, actor.ip)
                .resource("repository", repo_id)
                .details(truncate(&format!("Sync failed: {message}"), 1000)),
        )
        .await
    }
    .await)
}

fn truncate(s: &str, max_chars: usize) -> String {
    match s.char_indices().nth(max_chars) {
        Some((i, _)) => s[..i].to_owned(),
        None => s.to_owned(),
    }
}

/// Which commits the repository already holds, found without the write lock.
///
/// The first and last SHA are probed (one cheap query); only when both are present (a re-push,
/// typically) is the whole batch looked up, so a batch of new commits pays for two index probes
/// and a repeated batch inserts nothing at all. Whatever this misses (a commit stored meanwhile
/// by a concurrent push) is still caught by the insert-if-absent.
async fn already_present(
    db: &Db,
    repo_id: Uuid,
    salt: KeySalt,
    commits: &[NewCommit<'_>],
) -> Result<Vec<Sha>, sqlx::Error> {
    let (Some(first), Some(last)) = (commits.first(), commits.last()) else { return Ok(Vec::new()) };
    let probes = if first.sha == last.sha { 1 } else { 2 };
    if store::count_present(db, repo_id, salt, &first.sha, &last.sha).await? < probes {
        return Ok(Vec::new());
    }
    store::existing_shas(db, repo_id, salt, commits).await
}

async fn ingest_batch(
    db: &Db,
    writer: &Writer,
    repo: &RepoRow,
    commits: &[NewCommit<'_>],
    actor: Actor,
    client_version: Option<&str>,
) -> Result<SyncCommitsOut, sqlx::Error> {
    let salt = store::key_salt(db, repo.id).await?;
    let present = already_present(db, repo.id, salt, commits).await?;
    let to_insert: Vec<&NewCommit<'_>> =
        commits.iter().filter(|c| present.is_empty() || present.binary_search(&c.sha).is_err()).collect();
    let now = writer.stamp();
    let mut prepared = Some(cpu_bound(|| store::prepare_insert(db.engine(), repo.id, salt, &to_insert, now)));

    write_tx!(writer, db, |tx| {
        // Encoded again only when the write runs again (see `write_tx!`).
        let prepared =
            prepared.take().unwrap_or_else(|| store::prepare_insert(db.engine(), repo.id, salt, &to_insert, now));
        write_batch(tx, repo, salt, commits, &present, &to_insert, prepared, now, actor, client_version).await
    })
}

/// The transaction of [`ingest_batch`]: insert, details in request order, repository state,
/// league totals, audit row, event.
#[allow(clippy::too_many_arguments)]
async fn write_batch(
    tx: &mut Tx,
    repo: &RepoRow,
    salt: KeySalt,
    commits: &[NewCommit<'_>],
    present: &[Sha],
    to_insert: &[&NewCommit<'_>],
    prepared: store::PreparedInsert<'_>,
    now: OffsetDateTime,
    actor: Actor,
    client_version: Option<&str>,
) -> Result<SyncCommitsOut, sqlx::Error> {
    // `None`: every attempted commit was stored (the usual case, no lookup per commit); otherwise
    // the sorted SHAs this call stored (a concurrent push stored the others first).
    let stored = match store::insert_absent(tx, prepared, repo.id, salt, to_insert, now).await? {
        Stored::All => None,
        Stored::Only(shas) => Some(shas),
    };

    let mut details = Vec::with_capacity(commits.len());
    let mut last_ingested_sha = None;
    for c in commits {
        let inserted = (present.is_empty() || present.binary_search(&c.sha).is_err())
            && stored.as_ref().is_none_or(|s| s.binary_search(&c.sha).is_ok());
        if inserted {
            last_ingested_sha = Some(c.sha);
        }
        details.push(CommitResultOut {
            sha: c.sha,
            inserted,
            error: if inserted { None } else { Some(Cow::Borrowed(ALREADY_EXISTS)) },
        });
    }
    let inserted = details.iter().filter(|d| d.inserted).count();
    let errors = 0;
    let out = SyncCommitsOut {
        total: commits.len(),
        inserted,
        skipped: commits.len() - inserted - errors,
        errors,
        last_ingested_sha,
        details,
    };

    let (status, error_message) = if out.errors > 0 {
        ("error", Some(format!("Failed to ingest {} commits", out.errors)))
    } else {
        ("healthy", None)
    };
    let last = out.last_ingested_sha.as_ref().map(Sha::as_str);
    store::finish_sync(tx, repo.id, status, error_message.as_deref(), last, now).await?;
    // Leaderboard totals move with the commits, in the same transaction: boards are never stale.
    let stats: Vec<StatCommit<'_>> = commits
        .iter()
        .zip(&out.details)
        .filter(|(_, d)| d.inserted)
        .map(|(c, _)| StatCommit {
            author_email: &c.author_email,
            author_name: &c.author_name,
            commit_date: c.commit_date,
            additions: c.additions,
            deletions: c.deletions,
            files_changed: c.files_changed,
            title: &c.message_title,
        })
        .collect();
    crate::league::stats::record_ingested(tx, repo.project_id, &stats).await?;
    let mut details = format!(
        "Synced {} commits: {} inserted, {} skipped, {} errors",
        out.total, out.inserted, out.skipped, out.errors
    );
    if let Some(version) = client_version {
        details.push_str(&format!(" (client_version {})", truncate(version, 100)));
    }
    audit::record(
        tx,
        AuditEntry::new("sync_commits", actor.user_id, actor.ip).resource("repository", repo.id).details(details),
    )
    .await?;
    // The event commits (or rolls back) with the commits; it goes to the project members' webhooks.
    let members = store::member_ids(tx, repo.project_id).await?;
    webhooks::emit(tx, Audience::Users(members), events::COMMITS_INGESTED, commits_ingested_event(repo, &out, now))
        .await?;
    Ok(out)
}

/// The `data` of the `commits.ingested` event (the catalogue's fields, plus the push's counts).
pub fn commits_ingested_event(repo: &RepoRow, out: &SyncCommitsOut, at: OffsetDateTime) -> serde_json::Value {
    json!({
        "project_id": repo.project_id,
        "repo_id": repo.id,
        "repository": repo.name,
        "inserted": out.inserted,
        "duplicates": out.skipped,
        "head_sha": out.last_ingested_sha,
        "total": out.total,
        "errors": out.errors,
        "synced_at": rfc3339(at),
    })
}

/// At start-up: a repository still `syncing` was interrupted by a stop mid-push.
pub async fn reset_interrupted(db: &Db) {
    match store::reset_interrupted(db, "Sync interrupted: the server stopped during the sync").await {
        Ok(0) => {}
        Ok(n) => tracing::warn!(repositories = n, "reset interrupted syncs to error"),
        Err(e) => tracing::warn!(error = %e, "could not reset interrupted syncs"),
    }
}

/// `GET …/status`: any role in the project; works for pull repositories too.
pub async fn status(db: &Db, user_id: Uuid, project_id: &str, repo_ref: &str) -> ApiResult<SyncStatusOut> {
    let (project, _) = require_project(db, project_id, user_id, ProjectRole::Viewer).await?;
    let repo = projects_store::repo_in_project(db, project.id, repo_ref).await?.ok_or_else(repo_not_found)?;
    let total_commits = store::count_commits(db, repo.id).await?;
    Ok(SyncStatusOut {
        repo_id: repo.id,
        status: repo.status,
        last_sync_at: repo.last_sync_at.map(rfc3339),
        last_ingested_sha: repo.last_ingested_sha,
        total_commits,
        error_message: repo.error_message,
    })
}

// ----- commit queries -----

fn query_error(field: &'static str, message: &str) -> ApiError {
    ApiError::validation(vec![crate::error::FieldError::new(
        vec!["query".into(), field.into()],
        message,
        "datetime_parsing",
    )])
}

/// `since` / `until` of a query string.
pub fn time_range(
    since: Option<&str>,
    until: Option<&str>,
) -> ApiResult<(Option<OffsetDateTime>, Option<OffsetDateTime>)> {
    let parse = |value: Option<&str>, field: &'static str, end: bool| -> ApiResult<Option<OffsetDateTime>> {
        match value.map(str::trim).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => model::parse_query_time(v, end)
                .map(Some)
                .ok_or_else(|| query_error(field, "Input should be a valid datetime or date (RFC 3339 or YYYY-MM-DD)")),
        }
    };
    Ok((parse(since, "since", false)?, parse(until, "until", true)?))
}

fn lower(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_lowercase()).filter(|v| !v.is_empty())
}

impl CommitFilter {
    pub fn new(
        author: Option<String>,
        author_email: Option<String>,
        since: Option<&str>,
        until: Option<&str>,
        merges: Option<bool>,
    ) -> ApiResult<CommitFilter> {
        let (since, until) = time_range(since, until)?;
        Ok(CommitFilter { author: lower(author), author_email: lower(author_email), since, until, merges })
    }
}

/// A repository the caller may read (any project role; 404 for outsiders).
pub async fn readable_repo(db: &Db, user_id: Uuid, repo_id: &str) -> ApiResult<RepoRow> {
    Ok(require_repo(db, repo_id, user_id, ProjectRole::Viewer).await?.0)
}

pub async fn list_commits(
    db: &Db,
    user_id: Uuid,
    repo_id: &str,
    filter: &CommitFilter,
    paging: Paging,
) -> ApiResult<(Vec<CommitRow>, i64)> {
    let repo = readable_repo(db, user_id, repo_id).await?;
    Ok(store::list_commits(db, repo.id, filter, paging).await?)
}

fn commit_not_found() -> ApiError {
    ApiError::not_found("Commit not found")
}

/// One commit of a repository by its full SHA (any case).
pub async fn get_commit(db: &Db, user_id: Uuid, repo_id: &str, sha: &str) -> ApiResult<CommitRow> {
    let repo = readable_repo(db, user_id, repo_id).await?;
    let sha = Sha::parse(sha.trim()).ok_or_else(commit_not_found)?;
    store::commit_by_sha(db, repo.id, &sha).await?.ok_or_else(commit_not_found)
}

/// A commit by SHA in any repository the caller may read.
pub async fn find_commit(db: &Db, user_id: Uuid, sha: &str) -> ApiResult<CommitRow> {
    let sha = Sha::parse(sha.trim()).ok_or_else(commit_not_found)?;
    store::commit_by_sha_for_user(db, user_id, &sha).await?.ok_or_else(commit_not_found)
}

/// A commit by its id (`<repo_id>:<sha>`, see `CommitOut::id`), or by a bare SHA.
pub async fn commit_by_id(db: &Db, user_id: Uuid, id: &str) -> ApiResult<CommitRow> {
    match id.split_once(':') {
        Some((repo_id, sha)) => get_commit(db, user_id, repo_id, sha)
            .await
            .map_err(|e| if e.report.code == "NOT_FOUND" { commit_not_found() } else { e }),
        None => find_commit(db, user_id, id).await,
    }
}

pub struct RepoStats {
    pub repo: RepoRow,
    pub totals: store::TotalsRow,
    pub authors: Vec<store::AuthorStatsRow>,
    pub days: Vec<store::DayStatsRow>,
}

pub async fn stats(db: &Db, user_id: Uuid, repo_id: &str, filter: &CommitFilter) -> ApiResult<RepoStats> {
    let repo = readable_repo(db, user_id, repo_id).await?;
    let totals = store::totals(db, repo.id, filter).await?;
    let authors = store::author_stats(db, repo.id, filter).await?;
    let days = store::day_stats(db, repo.id, filter).await?;
    Ok(RepoStats { repo, totals, authors, days })
}

pub async fn totals(db: &Db, user_id: Uuid, repo_id: &str, filter: &CommitFilter) -> ApiResult<store::TotalsRow> {
    let repo = readable_repo(db, user_id, repo_id).await?;
    Ok(store::totals(db, repo.id, filter).await?)
}
