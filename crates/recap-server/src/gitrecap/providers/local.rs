//! `local` (alias `recap`): the repositories already ingested into Recap. The credential is a
//! Recap access token or API key (scope `read:repos`); the session sees the repositories of the
//! projects its user holds a role in, and its activity is the ingested commits.
//!
//! The credential is verified again on every use, so revoking the Recap session or key, or
//! leaving a project, takes effect at once.

use std::net::IpAddr;

use sqlx::FromRow;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Credential, ProviderKind, RepoRef, authors_or_identity, bad_credentials, same_name};
use crate::{
    accounts::{
        api_keys,
        auth::{ApiCaller, Authenticated},
    },
    db::Db,
    error::{ApiError, ApiResult},
    gitrecap::{
        activity::Filters,
        model::{Entry, EntryKind},
        sessions::{NewSession, Session},
    },
    state::AppState,
};

const KIND: ProviderKind = ProviderKind::Local;
/// Commits read per request at most (newest first); far more than any token budget keeps.
const MAX_COMMITS: i64 = 50_000;

async fn authenticate(state: &AppState, token: &str, ip: IpAddr) -> ApiResult<Authenticated> {
    let token = token.trim();
    let result = if token.starts_with(api_keys::KEY_PREFIX) {
        state.auth.authenticate_api_key(&state.db, token, ip).await
    } else {
        state.auth.authenticate_jwt(&state.db, token).await
    };
    let auth = result.map_err(|e| if e.status.is_server_error() { e } else { bad_credentials(KIND) })?;
    let caller = ApiCaller { user: auth.user.clone(), api_key: auth.api_key.clone(), ip };
    caller.require_scope("read:repos")?;
    Ok(auth)
}

pub async fn validate(state: &AppState, credential: &Credential) -> ApiResult<NewSession> {
    let auth = authenticate(state, &credential.secret, credential.ip).await?;
    let user = &auth.user;
    let email = user.email.clone().unwrap_or_default();
    let name = user.full_name.clone().filter(|n| !n.trim().is_empty());
    let username = if !email.is_empty() { email.clone() } else { name.clone().unwrap_or_else(|| "unknown".into()) };
    Ok(NewSession {
        provider: KIND,
        username,
        login: email,
        aliases: name.into_iter().collect(),
        base_url: None,
        user_id: Some(user.id),
        ip: Some(credential.ip),
    })
}

/// The session's user, after checking its credential again.
async fn user_id(state: &AppState, session: &Session) -> ApiResult<Uuid> {
    let token = session.token(state)?;
    let ip = session.ip.unwrap_or(IpAddr::from([127, 0, 0, 1]));
    let auth = authenticate(state, &token, ip).await.map_err(|e| {
        if e.status.is_server_error() { e } else { ApiError::unauthorized("Upstream Recap error: bad credentials") }
    })?;
    match session.user_id {
        Some(id) if id == auth.user.id => Ok(id),
        _ => Err(ApiError::unauthorized("Upstream Recap error: bad credentials")),
    }
}

#[derive(FromRow)]
struct RepoItem {
    id: Uuid,
    name: String,
    slug: String,
}

/// Repositories of the projects `user_id` holds a role in, by project then name.
pub async fn member_repos(db: &Db, user_id: Uuid) -> Result<Vec<RepoRef>, sqlx::Error> {
    let rows: Vec<RepoItem> = crate::on_db!(db, |pool| sqlx::query_as::<_, RepoItem>(
        "SELECT r.id, r.name, p.slug FROM repositories r \
         JOIN projects p ON p.id = r.project_id \
         JOIN project_members m ON m.project_id = r.project_id AND m.user_id = $1 \
         ORDER BY p.name, p.slug, r.name"
    )
    .bind(user_id)
    .fetch_all(pool)
    .await)?;
    Ok(rows
        .into_iter()
        .map(|r| RepoRef { full_name: format!("{}/{}", r.slug, r.name), name: r.name, key: r.id.to_string() })
        .collect())
}

pub async fn repos(state: &AppState, session: &Session) -> ApiResult<Vec<RepoRef>> {
    let user_id = user_id(state, session).await?;
    Ok(member_repos(&state.db, user_id).await?)
}

/// Whose commits to read.
#[derive(Debug, Clone, Copy)]
pub enum Scope {
    /// Every project the user holds a role in.
    Member(Uuid),
    /// One project (access checked by the caller).
    Project(Uuid),
}

#[derive(FromRow)]
struct CommitItem {
    repo: String,
    sha: String,
    author_name: String,
    author_email: String,
    commit_date: OffsetDateTime,
    message_title: String,
    message_body: Option<String>,
}

/// Ingested commits in the window, of the selected repositories (short `name` or
/// `project-slug/name`), by `authors` (names or e-mails, any case; `None` = everyone).
///
/// On SQLite the stored timestamps are text whose exact format may vary (fractions, offsets), so
/// SQL only narrows by day prefix, a day wider on each side, and the exact window is applied
/// here. PostgreSQL compares `timestamptz` values directly.
pub async fn commits(
    db: &Db,
    scope: Scope,
    filters: &Filters,
    authors: Option<&[String]>,
) -> Result<Vec<Entry>, sqlx::Error> {
    let mut sql = String::from(
        "SELECT r.name AS repo, c.sha, c.author_name, c.author_email, c.commit_date, c.message_title, c.message_body \
         FROM commits c JOIN repositories r ON r.id = c.repo_id JOIN projects p ON p.id = r.project_id ",
    );
    sql.push_str(match scope {
        Scope::Member(_) => "JOIN project_members m ON m.project_id = r.project_id AND m.user_id = $1 WHERE ",
        Scope::Project(_) => "WHERE r.project_id = $1 AND ",
    });
    sql.push_str("c.commit_date >= $2 AND c.commit_date <= $3");
    // Values bound after $1..$3, each with its own numbered placeholder.
    let mut texts: Vec<String> = Vec::new();
    fn placeholders(values: &[String], texts: &mut Vec<String>) -> String {
        let list: Vec<String> = values
            .iter()
            .map(|v| {
                texts.push(v.clone());
                format!("${}", texts.len() + 3)
            })
            .collect();
        list.join(", ")
    }
    if let Some(authors) = authors.filter(|a| !a.is_empty()) {
        let lowered: Vec<String> = authors.iter().map(|a| a.trim().to_ascii_lowercase()).collect();
        let emails = placeholders(&lowered, &mut texts);
        let names = placeholders(&lowered, &mut texts);
        sql.push_str(&format!(" AND (LOWER(c.author_email) IN ({emails}) OR LOWER(c.author_name) IN ({names}))"));
    }
    if !filters.repos.is_empty() {
        let short = placeholders(&filters.repos, &mut texts);
        let full = placeholders(&filters.repos, &mut texts);
        sql.push_str(&format!(" AND (r.name IN ({short}) OR p.slug || '/' || r.name IN ({full}))"));
    }
    sql.push_str(&format!(" ORDER BY c.commit_date DESC LIMIT {MAX_COMMITS}"));
    let scope_id = match scope {
        Scope::Member(id) | Scope::Project(id) => id,
    };
    let rows: Vec<CommitItem> = match db {
        Db::Sqlite(pool) => {
            let day = |d: time::Date| format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day());
            let low = day(filters.start.date().previous_day().unwrap_or(filters.start.date()));
            let high = day(filters.end.date().next_day().and_then(|d| d.next_day()).unwrap_or(filters.end.date()));
            let mut query =
                sqlx::query_as::<_, CommitItem>(sqlx::AssertSqlSafe(sql)).bind(scope_id).bind(low).bind(high);
            for text in &texts {
                query = query.bind(text.clone());
            }
            query.fetch_all(pool).await?
        }
        Db::Postgres(pool) => {
            let mut query = sqlx::query_as::<_, CommitItem>(sqlx::AssertSqlSafe(sql))
                .bind(scope_id)
                .bind(filters.start)
                .bind(filters.end);
            for text in &texts {
                query = query.bind(text.clone());
            }
            query.fetch_all(pool).await?
        }
    };
    Ok(rows
        .into_iter()
        .filter(|c| filters.in_window(c.commit_date))
        .filter(|c| {
            authors.is_none_or(|list| {
                list.is_empty() || list.iter().any(|a| same_name(a, &c.author_email) || same_name(a, &c.author_name))
            })
        })
        .map(|c| {
            let message = match c.message_body.as_deref().map(str::trim).filter(|b| !b.is_empty()) {
                Some(body) => format!("{}\n\n{}", c.message_title.trim(), body),
                None => c.message_title.clone(),
            };
            Entry::new(EntryKind::Commit, c.repo, &message, c.commit_date).sha(c.sha).author(Some(&c.author_name))
        })
        .collect())
}

pub async fn activity(state: &AppState, session: &Session, filters: &Filters) -> ApiResult<Vec<Entry>> {
    let user_id = user_id(state, session).await?;
    let authors = authors_or_identity(filters, session);
    if authors.is_empty() {
        // A user known by no name or e-mail has authored nothing we could find.
        return Ok(Vec::new());
    }
    Ok(commits(&state.db, Scope::Member(user_id), filters, Some(&authors)).await?)
}
